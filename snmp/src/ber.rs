//! The few BER pieces we write or read ourselves: request messages (SNMPv1/v2c whole,
//! SNMPv3 as an unauthenticated template that `snmp2` then signs and encrypts), and
//! the plaintext header and Report PDU of an SNMPv3 answer, which `snmp2` does not
//! expose but which say *why* an agent refused us (RFC 3414 §3.2 usmStats counters).
//!
//! Encoding follows X.690 definite-length BER as RFC 3416 and RFC 3412 lay out the
//! messages. Nothing here is cryptographic.

use snmp2::AsnReader;

/// An object identifier as a list of arcs.
pub type Oid = Vec<u32>;

/// BER tags of the PDUs we send and receive (RFC 3416 §3).
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const GET: u8 = 0xa0;
    pub const GET_NEXT: u8 = 0xa1;
    pub const RESPONSE: u8 = 0xa2;
    pub const SET: u8 = 0xa3;
    pub const GET_BULK: u8 = 0xa5;
    pub const REPORT: u8 = 0xa8;
}

/// msgFlags bits (RFC 3412 §6.4).
pub const FLAG_AUTH: u8 = 0x01;
pub const FLAG_PRIV: u8 = 0x02;
pub const FLAG_REPORTABLE: u8 = 0x04;

/// The largest message we say we accept (msgMaxSize); snmp2 refuses larger values.
pub const MAX_MESSAGE: i64 = 65_507;

/// A value we put into a request varbind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    Null,
    Integer(i64),
    OctetString(Vec<u8>),
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

pub fn integer(n: i64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    // Minimal two's complement: drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(tag::INTEGER, &bytes[start..])
}

pub fn octets(bytes: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, bytes)
}

/// Encodes an OID; `None` if it has fewer than two arcs or an impossible first arc.
pub fn oid(arcs: &[u32]) -> Option<Vec<u8>> {
    let (first, second) = (*arcs.first()?, *arcs.get(1)?);
    if first > 2 || (first < 2 && second >= 40) {
        return None;
    }
    let mut content = Vec::new();
    let head = u64::from(first) * 40 + u64::from(second);
    for arc in std::iter::once(head).chain(arcs[2..].iter().map(|a| u64::from(*a))) {
        let mut chunk = [0u8; 10];
        let mut n = arc;
        let mut i = chunk.len();
        loop {
            i -= 1;
            chunk[i] = (n & 0x7f) as u8 | if i == chunk.len() - 1 { 0 } else { 0x80 };
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        content.extend_from_slice(&chunk[i..]);
    }
    Some(tlv(tag::OID, &content))
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

fn varbinds(binds: &[(Oid, SetValue)]) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    for (name, value) in binds {
        let value = match value {
            SetValue::Null => tlv(tag::NULL, &[]),
            SetValue::Integer(n) => integer(*n),
            SetValue::OctetString(b) => octets(b),
        };
        all.extend(sequence(&[&oid(name)?, &value]));
    }
    Some(tlv(tag::SEQUENCE, &all))
}

/// A request PDU (GetRequest, GetNextRequest, SetRequest): RFC 3416 §3.
pub fn pdu(pdu_tag: u8, request_id: i32, binds: &[(Oid, SetValue)]) -> Option<Vec<u8>> {
    let body = [
        integer(i64::from(request_id)),
        integer(0),
        integer(0),
        varbinds(binds)?,
    ]
    .concat();
    Some(tlv(pdu_tag, &body))
}

/// A GetBulkRequest PDU (RFC 3416 §4.2.3): no non-repeaters, `max_repetitions`
/// successors of each object, in the places a request's error-status and
/// error-index take.
pub fn bulk_pdu(
    request_id: i32,
    max_repetitions: u16,
    binds: &[(Oid, SetValue)],
) -> Option<Vec<u8>> {
    let body = [
        integer(i64::from(request_id)),
        integer(0),
        integer(i64::from(max_repetitions)),
        varbinds(binds)?,
    ]
    .concat();
    Some(tlv(tag::GET_BULK, &body))
}

/// A whole SNMPv1 (`version` 0) or SNMPv2c (`version` 1) message (RFC 1157 §4,
/// RFC 1901 §3).
///
/// The community is a password: every buffer that holds it (sized so that none
/// grows and leaves a copy behind) is wiped when dropped, the message included.
pub fn community_message(
    version: i64,
    community: &[u8],
    pdu: &[u8],
) -> zeroize::Zeroizing<Vec<u8>> {
    let version = integer(version);
    let community = zeroize::Zeroizing::new(octets(community));
    let mut body = zeroize::Zeroizing::new(Vec::with_capacity(
        version.len() + community.len() + pdu.len(),
    ));
    body.extend_from_slice(&version);
    body.extend_from_slice(&community);
    body.extend_from_slice(pdu);
    zeroize::Zeroizing::new(tlv(tag::SEQUENCE, &body))
}

/// An SNMPv3 message without authentication or privacy (RFC 3412 §6, RFC 3414 §2.4).
/// Used as it is for engine discovery, and as the template `snmp2` re-encodes with
/// the user's keys for every other request.
pub fn v3_plain_message(
    msg_id: i32,
    flags: u8,
    engine_id: &[u8],
    boots: i64,
    time: i64,
    user: &[u8],
    pdu: &[u8],
) -> Vec<u8> {
    let header = sequence(&[
        &integer(i64::from(msg_id)),
        &integer(MAX_MESSAGE),
        &octets(&[flags]),
        &integer(3), // msgSecurityModel: USM
    ]);
    let usm = sequence(&[
        &octets(engine_id),
        &integer(boots),
        &integer(time),
        &octets(user),
        &octets(&[]),
        &octets(&[]),
    ]);
    let scoped = sequence(&[&octets(engine_id), &octets(&[]), pdu]);
    sequence(&[&integer(3), &header, &octets(&usm), &scoped])
}

/// What an SNMPv3 answer's plaintext parts say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Header {
    pub msg_id: i64,
    pub flags: u8,
    pub engine_id: Vec<u8>,
    pub boots: i64,
    pub time: i64,
    pub user: Vec<u8>,
    /// For a plaintext Report PDU: the name of its first varbind (a usmStats or
    /// snmpStats counter saying what went wrong).
    pub report: Option<Oid>,
}

/// Converts an `snmp2` OID into arcs; `None` for arcs beyond 32 bits.
pub fn arcs(oid: &snmp2::Oid<'_>) -> Option<Oid> {
    oid.iter()?.map(|a| u32::try_from(a).ok()).collect()
}

/// Reads the header of an SNMPv3 message. `None` for anything that is not one.
pub fn v3_header(bytes: &[u8]) -> Option<V3Header> {
    let mut outer = AsnReader::from_bytes(bytes);
    let mut msg = AsnReader::from_bytes(outer.read_raw(tag::SEQUENCE).ok()?);
    if msg.read_asn_integer().ok()? != 3 {
        return None;
    }
    let mut header = AsnReader::from_bytes(msg.read_raw(tag::SEQUENCE).ok()?);
    let msg_id = header.read_asn_integer().ok()?;
    let _max_size = header.read_asn_integer().ok()?;
    let flags = *header.read_asn_octetstring().ok()?.first()?;
    let usm_bytes = msg.read_asn_octetstring().ok()?;
    let mut usm_outer = AsnReader::from_bytes(usm_bytes);
    let mut usm = AsnReader::from_bytes(usm_outer.read_raw(tag::SEQUENCE).ok()?);
    let engine_id = usm.read_asn_octetstring().ok()?.to_vec();
    let boots = usm.read_asn_integer().ok()?;
    let time = usm.read_asn_integer().ok()?;
    let user = usm.read_asn_octetstring().ok()?.to_vec();
    let mut report = None;
    if flags & FLAG_PRIV == 0 {
        let mut scoped = AsnReader::from_bytes(msg.read_raw(tag::SEQUENCE).ok()?);
        let _context_engine = scoped.read_asn_octetstring().ok()?;
        let _context_name = scoped.read_asn_octetstring().ok()?;
        if scoped.peek_byte().ok()? == tag::REPORT {
            let mut pdu = AsnReader::from_bytes(scoped.read_raw(tag::REPORT).ok()?);
            let _request_id = pdu.read_asn_integer().ok()?;
            let _status = pdu.read_asn_integer().ok()?;
            let _index = pdu.read_asn_integer().ok()?;
            let mut binds = AsnReader::from_bytes(pdu.read_raw(tag::SEQUENCE).ok()?);
            // A Report without a varbind still is a Report: say so with an empty name.
            report = Some(match binds.read_raw(tag::SEQUENCE) {
                Ok(bind) => {
                    let mut bind = AsnReader::from_bytes(bind);
                    arcs(&bind.read_asn_objectidentifier().ok()?)?
                }
                Err(_) => Vec::new(),
            });
        }
    }
    Some(V3Header {
        msg_id,
        flags,
        engine_id,
        boots,
        time,
        user,
        report,
    })
}

/// What a Report PDU's counter says went wrong (RFC 3414 §3.2, RFC 3412 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// usmStatsUnsupportedSecLevels: the user exists, not at this security level.
    UnsupportedSecLevel,
    /// usmStatsNotInTimeWindows: our engine boots/time are stale; resynchronise.
    NotInTimeWindow,
    /// usmStatsUnknownUserNames.
    UnknownUserName,
    /// usmStatsUnknownEngineIDs: discovery answer, or the agent's engine changed.
    UnknownEngineId,
    /// usmStatsWrongDigests: wrong authentication pass phrase or protocol.
    WrongDigest,
    /// usmStatsDecryptionErrors: wrong privacy pass phrase or protocol.
    DecryptionError,
    /// Any other counter (snmpUnknownContexts, snmpInvalidMsgs, ...).
    Other,
}

/// usmStats (SNMP-USER-BASED-SM-MIB, 1.3.6.1.6.3.15.1.1).
const USM_STATS: [u32; 9] = [1, 3, 6, 1, 6, 3, 15, 1, 1];

pub fn report_kind(name: &[u32]) -> ReportKind {
    match name.strip_prefix(&USM_STATS[..]) {
        Some([1, ..]) => ReportKind::UnsupportedSecLevel,
        Some([2, ..]) => ReportKind::NotInTimeWindow,
        Some([3, ..]) => ReportKind::UnknownUserName,
        Some([4, ..]) => ReportKind::UnknownEngineId,
        Some([5, ..]) => ReportKind::WrongDigest,
        Some([6, ..]) => ReportKind::DecryptionError,
        _ => ReportKind::Other,
    }
}

/// Writes an OID in dotted form, as net-snmp prints it.
pub fn dotted(arcs: &[u32]) -> String {
    arcs.iter().map(|a| format!(".{a}")).collect()
}

/// Parses a dotted OID (leading dot optional); `None` if any arc is not a number.
pub fn parse_dotted(text: &str) -> Option<Oid> {
    let text = text.trim();
    let text = text.strip_prefix('.').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    text.split('.').map(|a| a.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_are_encoded_minimally_in_twos_complement() {
        assert_eq!(integer(0), vec![2, 1, 0]);
        assert_eq!(integer(127), vec![2, 1, 0x7f]);
        assert_eq!(integer(128), vec![2, 2, 0, 0x80]);
        assert_eq!(integer(-1), vec![2, 1, 0xff]);
        assert_eq!(integer(-129), vec![2, 2, 0xff, 0x7f]);
    }

    #[test]
    fn oids_are_encoded_as_x690_says() {
        assert_eq!(
            oid(&[1, 3, 6, 1, 4, 1, 318]).unwrap(),
            vec![6, 7, 0x2b, 6, 1, 4, 1, 0x82, 0x3e]
        );
        assert!(oid(&[1]).is_none());
        assert!(oid(&[3, 1]).is_none());
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let t = tlv(4, &[0u8; 300]);
        assert_eq!(&t[..4], &[4, 0x82, 1, 44]);
    }

    #[test]
    fn a_community_get_is_read_back_by_snmp2() {
        let name = vec![1, 3, 6, 1, 2, 1, 1, 2, 0];
        let msg = community_message(
            1,
            b"public",
            &pdu(tag::GET, 7, &[(name.clone(), SetValue::Null)]).unwrap(),
        );
        let parsed = snmp2::Pdu::from_bytes(&msg).unwrap();
        assert_eq!(parsed.req_id, 7);
        assert_eq!(parsed.message_type, snmp2::MessageType::GetRequest);
        let (got, _) = parsed.varbinds.clone().next().unwrap();
        assert_eq!(arcs(&got).unwrap(), name);
    }

    #[test]
    fn a_plaintext_v3_report_names_its_counter() {
        let report = pdu(
            tag::REPORT,
            0,
            &[(vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0], SetValue::Integer(3))],
        )
        .unwrap();
        let msg = v3_plain_message(42, 0, b"\x80\x00\x1f\x88\x01", 5, 1000, b"alice", &report);
        let header = v3_header(&msg).unwrap();
        assert_eq!(header.msg_id, 42);
        assert_eq!(header.boots, 5);
        assert_eq!(header.time, 1000);
        assert_eq!(header.user, b"alice");
        assert_eq!(
            report_kind(header.report.as_deref().unwrap()),
            ReportKind::WrongDigest
        );
    }

    #[test]
    fn dotted_oids_round_trip() {
        let o = parse_dotted(".1.3.6.1.4.1.318.1.3.4.5").unwrap();
        assert_eq!(dotted(&o), ".1.3.6.1.4.1.318.1.3.4.5");
        assert!(parse_dotted("1.3.x").is_none());
        assert!(parse_dotted("").is_none());
    }

    proptest! {
        #[test]
        fn reading_a_v3_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = v3_header(&bytes);
        }

        #[test]
        fn reading_a_mangled_report_never_panics(cut in 0usize..80, flip in 0usize..80, bit in 0u8..8) {
            let report = pdu(tag::REPORT, 0, &[(vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0], SetValue::Integer(1))]).unwrap();
            let mut msg = v3_plain_message(1, 0, b"engine", 1, 2, b"bob", &report);
            if flip < msg.len() { msg[flip] ^= 1 << bit; }
            msg.truncate(cut.min(msg.len()));
            let _ = v3_header(&msg);
        }

        #[test]
        fn integers_round_trip_through_snmp2(n in any::<i64>()) {
            let bytes = integer(n);
            prop_assert_eq!(AsnReader::from_bytes(&bytes).read_asn_integer().unwrap(), n);
        }

        #[test]
        fn oids_round_trip_through_snmp2(tail in proptest::collection::vec(any::<u32>(), 0..12)) {
            let mut name = vec![1, 3, 6];
            name.extend(tail);
            let bytes = oid(&name).unwrap();
            let read = AsnReader::from_bytes(&bytes).read_asn_objectidentifier().unwrap();
            prop_assert_eq!(arcs(&read).unwrap(), name);
        }
    }
}
