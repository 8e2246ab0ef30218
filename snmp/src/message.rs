//! What an agent answers, as managers use it: varbind values ([`VarValue`]), the
//! Response PDU ([`Response`]) with RFC 3416's error-status names, and the reading
//! of an SNMPv1/v2c Response matched to its request id.

use fencekit_core::DeviceError;

use crate::ber::{self, Oid, SetValue};
use crate::credentials::{Credentials, Version};

/// A varbind value as we use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    Integer(i64),
    Text(Vec<u8>),
    Oid(Oid),
    Null,
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// A type we never expect from a PDU (named for error messages).
    Other(&'static str),
}

impl VarValue {
    fn from_snmp2(value: &snmp2::Value<'_>) -> VarValue {
        use snmp2::Value as V;
        match value {
            V::Integer(n) => VarValue::Integer(*n),
            V::OctetString(b) => VarValue::Text(b.to_vec()),
            V::ObjectIdentifier(o) => ber::arcs(o)
                .map(VarValue::Oid)
                .unwrap_or(VarValue::Other("object identifier")),
            V::Null => VarValue::Null,
            V::Counter32(n) | V::Unsigned32(n) | V::Timeticks(n) => {
                VarValue::Integer(i64::from(*n))
            }
            V::Counter64(n) => i64::try_from(*n)
                .map(VarValue::Integer)
                .unwrap_or(VarValue::Other("Counter64")),
            V::NoSuchObject => VarValue::NoSuchObject,
            V::NoSuchInstance => VarValue::NoSuchInstance,
            V::EndOfMibView => VarValue::EndOfMibView,
            V::Boolean(_) => VarValue::Other("BOOLEAN"),
            V::IpAddress(_) => VarValue::Other("IpAddress"),
            V::Opaque(_) => VarValue::Other("Opaque"),
            _ => VarValue::Other("constructed value"),
        }
    }

    /// Whether the agent said the object is not there.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            VarValue::NoSuchObject | VarValue::NoSuchInstance | VarValue::EndOfMibView
        )
    }

    /// The text of a DisplayString (an outlet's or interface's name), as a manager
    /// shows it; empty for a value of another type. Trailing NULs are dropped:
    /// agents pad names with them (C strings copied whole), and net-snmp's tools,
    /// which the anchors read names through, never show them. What an agent sends
    /// must not drive a terminal or flood a line (names go into `list` and error
    /// messages): tabs and line ends become blanks, other control characters U+FFFD, which no plug can contain
    /// (plugs with control characters are refused), and a name is at most the 255
    /// characters a DisplayString allows.
    pub fn display_string(&self) -> String {
        match self {
            VarValue::Text(bytes) => String::from_utf8_lossy(bytes)
                .trim_end_matches('\0')
                .chars()
                .take(255)
                // A tab or line end is a blank, as a manager's screen shows it (so
                // that `db1<TAB>` is `db1` but for blanks); other control
                // characters can be shown as no blank.
                .map(|c| match c {
                    '\t' | '\n' | '\r' | '\u{b}' | '\u{c}' => ' ',
                    c if c.is_control() => '\u{fffd}',
                    c => c,
                })
                .collect(),
            _ => String::new(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            VarValue::Integer(n) => format!("INTEGER {n}"),
            // Escaped and shortened: what an agent sends must not drive a terminal
            // or flood a log line.
            VarValue::Text(t) => {
                let text: String = String::from_utf8_lossy(t).chars().take(80).collect();
                format!("STRING {text:?}")
            }
            VarValue::Oid(o) => format!("OID {}", ber::dotted(o)),
            VarValue::Null => "NULL".into(),
            VarValue::NoSuchObject => "noSuchObject".into(),
            VarValue::NoSuchInstance => "noSuchInstance".into(),
            VarValue::EndOfMibView => "endOfMibView".into(),
            VarValue::Other(kind) => format!("a {kind}"),
        }
    }
}

/// A Response PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// error-status (RFC 3416 §3): 0 noError, 2 noSuchName, 6 noAccess, ...
    pub status: u32,
    /// error-index, 1-based.
    pub index: u32,
    pub binds: Vec<(Oid, VarValue)>,
}

/// The error-status names of RFC 3416 §3.
pub fn status_name(status: u32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("an unknown error-status")
}

/// Reads a v1/v2c Response to request `id`; `None` for anything else (a stale answer,
/// garbage, another kind of PDU).
pub fn community_response(bytes: &[u8], id: i32) -> Option<Response> {
    let pdu = snmp2::Pdu::from_bytes(bytes).ok()?;
    if pdu.message_type != snmp2::MessageType::Response || pdu.req_id != id {
        return None;
    }
    Some(response_of(&pdu))
}

pub(crate) fn response_of(pdu: &snmp2::Pdu<'_>) -> Response {
    Response {
        status: pdu.error_status,
        index: pdu.error_index,
        binds: pdu
            .varbinds
            .clone()
            .map(|(name, value)| {
                (
                    ber::arcs(&name).unwrap_or_default(),
                    VarValue::from_snmp2(&value),
                )
            })
            .collect(),
    }
}

/// Checks that a successful Response to a Get or Set names exactly the objects
/// asked for, in order (RFC 3416 §4.2.1, §4.2.5): values are read by position, and
/// an agent (or anyone answering on its address) that returns other objects must
/// not have another object's value taken for an outlet's state.
pub(crate) fn check_names(
    endpoint: &str,
    response: &Response,
    asked: &[&Oid],
) -> Result<(), DeviceError> {
    check_count(endpoint, response, asked.len())?;
    if response.status != 0 {
        return Ok(());
    }
    for ((name, _), wanted) in response.binds.iter().zip(asked) {
        if name != *wanted {
            return Err(DeviceError::Protocol(format!(
                "{endpoint} answered {} to a request for {}",
                ber::dotted(name),
                ber::dotted(wanted)
            )));
        }
    }
    Ok(())
}

/// Reads the answer to a GetRequest that named two INTEGER columns of each of `rows`
/// rows, row by row (`a1, b1, a2, b2, ...`; objects named after them are not read).
/// A row is `None` when its first column is missing, as is the one row of an SNMPv1
/// read answered noSuchName (v1's way of saying so for the whole request); otherwise
/// the first column's value and the second's, `None` when the agent lacks that
/// column. `read` names the read (`"an outlet status read"`), `columns` the two
/// columns, for the errors.
#[allow(clippy::type_complexity)]
pub fn integer_pairs(
    endpoint: &str,
    response: &Response,
    rows: usize,
    read: &str,
    columns: [&str; 2],
) -> Result<Vec<Option<(i64, Option<i64>)>>, DeviceError> {
    if response.status == 2 && rows == 1 {
        return Ok(vec![None]);
    }
    if response.status != 0 {
        return Err(DeviceError::Protocol(format!(
            "{endpoint} answered {} to {read}",
            status_name(response.status)
        )));
    }
    let Some(binds) = response.binds.get(..rows * 2) else {
        return Err(DeviceError::Protocol(format!(
            "{endpoint} answered {} varbinds to {read} of {rows} row(s) of two",
            response.binds.len()
        )));
    };
    let wrong_type = |column: &str, value: &VarValue| {
        DeviceError::Protocol(format!(
            "{endpoint} answered {} for {column}, which should be an INTEGER",
            value.describe()
        ))
    };
    binds
        .chunks_exact(2)
        .map(|pair| {
            let (first, second) = (&pair[0].1, &pair[1].1);
            if first.is_missing() {
                return Ok(None);
            }
            let VarValue::Integer(first) = first else {
                return Err(wrong_type(columns[0], first));
            };
            let second = match second {
                VarValue::Integer(value) => Some(*value),
                missing if missing.is_missing() => None,
                other => return Err(wrong_type(columns[1], other)),
            };
            Ok(Some((*first, second)))
        })
        .collect()
}

/// Checks that a successful Response carries as many varbinds as were asked for.
pub(crate) fn check_count(
    endpoint: &str,
    response: &Response,
    wanted: usize,
) -> Result<(), DeviceError> {
    if response.status == 0 && response.binds.len() != wanted {
        return Err(DeviceError::Protocol(format!(
            "{endpoint} answered {} varbinds to a request for {wanted}",
            response.binds.len()
        )));
    }
    Ok(())
}

/// What a Response to a SetRequest means: done, refused (an error-status that says
/// "you may not write", told apart so that the operator checks the credentials'
/// access), or failed.
pub(crate) fn set_outcome(
    endpoint: &str,
    credentials: &Credentials,
    binds: &[(Oid, SetValue)],
    response: &Response,
) -> Result<(), DeviceError> {
    let object = usize::try_from(response.index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| binds.get(i))
        .or(binds.first())
        .map(|(name, _)| ber::dotted(name))
        .unwrap_or_default();
    let who = match credentials {
        Credentials::Community { .. } => "the community is read-only".to_string(),
        Credentials::Usm(usm) => format!(
            "user {} may not write (check its access, e.g. net-snmp's rwuser)",
            usm.user
        ),
    };
    match response.status {
        0 => Ok(()),
        // readOnly, noAccess, authorizationError, notWritable (RFC 3416 §4.2.5).
        4 | 6 | 16 => Err(DeviceError::Refused(format!(
            "write refused ({} on {object}): {who}",
            status_name(response.status)
        ))),
        // notWritable is also what an agent answers for an object it never lets a
        // manager set (an IF-MIB implementation without write support).
        17 => Err(DeviceError::Refused(format!(
            "write refused (notWritable on {object}): {who}, or the agent does not \
             let this object be set at all"
        ))),
        // SNMPv1 agents report a read-only community as noSuchName (RFC 2576
        // §4.3); we only write objects we have just read, so it means refusal.
        2 if credentials.version() == Version::V1 => Err(DeviceError::Refused(format!(
            "write refused (noSuchName on {object}, which SNMPv1 agents answer \
             for a read-only community): {who}"
        ))),
        status => Err(DeviceError::Failed(format!(
            "{endpoint} refused to set {object}: {}",
            status_name(status)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_set_names_the_likely_cause() {
        let community = Credentials::Community {
            version: Version::V2c,
            community: fencekit_core::Secret::new("c0mmunity-x"),
        };
        let binds = [(vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 7, 3], SetValue::Integer(2))];
        let refused = |status| {
            let response = Response {
                status,
                index: 1,
                binds: Vec::new(),
            };
            set_outcome("sw", &community, &binds, &response)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(6).contains("noAccess"), "{}", refused(6));
        assert!(refused(6).contains("read-only"), "{}", refused(6));
        let not_writable = refused(17);
        assert!(
            not_writable.contains("read-only") && not_writable.contains("set at all"),
            "{not_writable}"
        );
        assert!(!not_writable.contains("c0mmunity"), "{not_writable}");
    }

    #[test]
    fn names_from_the_agent_carry_no_control_characters_and_no_padding() {
        let name = VarValue::Text(b"Gi1/0/1\x1b[2J\0\0".to_vec()).display_string();
        assert_eq!(name, "Gi1/0/1\u{fffd}[2J");
        assert_eq!(VarValue::Text(b"db1\0".to_vec()).display_string(), "db1");
        assert_eq!(VarValue::Text(b"db1\t".to_vec()).display_string(), "db1 ");
        assert_eq!(VarValue::Text(b"a\r\nb".to_vec()).display_string(), "a  b");
        assert_eq!(VarValue::Text(vec![b'x'; 1000]).display_string().len(), 255);
        assert_eq!(VarValue::Integer(3).display_string(), "");
    }
    use crate::ber::tag;
    use proptest::prelude::*;

    #[test]
    fn a_string_from_an_agent_is_escaped_and_shortened_in_messages() {
        let shown = VarValue::Text(b"\x1b[2Jname\r\nforged log line".to_vec()).describe();
        assert!(!shown.contains('\x1b') && !shown.contains('\n'), "{shown}");
        let long = VarValue::Text(vec![b'x'; 10_000]).describe();
        assert!(long.len() < 100, "{}", long.len());
    }

    #[test]
    fn an_answer_naming_other_objects_than_asked_is_refused_not_read_by_position() {
        let asked: Oid = vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 1];
        let other: Oid = vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 2];
        let answer = |name: &Oid| Response {
            status: 0,
            index: 0,
            binds: vec![(name.clone(), VarValue::Integer(2))],
        };
        assert!(check_names("pdu", &answer(&asked), &[&asked]).is_ok());
        let err = check_names("pdu", &answer(&other), &[&asked]).unwrap_err();
        assert!(err.to_string().contains("to a request for"), "{err}");
        // An error-status answer is told by its status, whatever it names.
        let refused = Response {
            status: 2,
            ..answer(&other)
        };
        assert!(check_names("pdu", &refused, &[&asked]).is_ok());
    }

    #[test]
    fn pairs_of_integer_columns_are_read_row_by_row_and_anything_else_is_an_error() {
        let answer = |status, values: Vec<VarValue>| Response {
            status,
            index: 0,
            binds: values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 7, i as u32], v))
                .collect(),
        };
        let read = |response: &Response, rows| {
            integer_pairs("pdu", response, rows, "a read", ["first", "second"])
        };
        let rows = answer(
            0,
            vec![
                VarValue::Integer(2),
                VarValue::Integer(1),
                VarValue::NoSuchInstance,
                VarValue::Integer(1),
                VarValue::Integer(1),
                VarValue::NoSuchObject,
                // A name asked after the pairs is not read.
                VarValue::Text(b"eth1".to_vec()),
            ],
        );
        assert_eq!(
            read(&rows, 3).unwrap(),
            [Some((2, Some(1))), None, Some((1, None))]
        );
        // SNMPv1 says "missing" with noSuchName for the whole request: one row only.
        assert_eq!(read(&answer(2, Vec::new()), 1).unwrap(), [None]);
        let error = |response: &Response, rows| read(response, rows).unwrap_err().to_string();
        assert!(error(&answer(2, Vec::new()), 2).contains("noSuchName to a read"));
        assert!(error(&answer(5, Vec::new()), 1).contains("genErr"));
        let short = answer(0, vec![VarValue::Integer(2)]);
        assert!(error(&short, 1).contains("1 varbinds to a read of 1 row"));
        let text = answer(
            0,
            vec![VarValue::Text(b"off".to_vec()), VarValue::Integer(1)],
        );
        assert!(error(&text, 1).contains("for first, which should be an INTEGER"));
        let null = answer(0, vec![VarValue::Integer(2), VarValue::Null]);
        assert!(error(&null, 1).contains("NULL for second"));
    }

    #[test]
    fn status_names_follow_rfc_3416() {
        assert_eq!(status_name(2), "noSuchName");
        assert_eq!(status_name(6), "noAccess");
        assert_eq!(status_name(17), "notWritable");
        assert_eq!(status_name(99), "an unknown error-status");
    }

    #[test]
    fn a_community_response_is_matched_by_request_id() {
        let pdu = ber::pdu(
            tag::RESPONSE,
            9,
            &[(vec![1, 3, 6, 1, 2, 1, 1, 2, 0], SetValue::Integer(2))],
        )
        .unwrap();
        let msg = ber::community_message(1, b"c", &pdu);
        let response = community_response(&msg, 9).unwrap();
        assert_eq!(response.binds[0].1, VarValue::Integer(2));
        assert!(community_response(&msg, 8).is_none());
    }

    proptest! {
        #[test]
        fn reading_a_community_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = community_response(&bytes, 1);
        }

        #[test]
        fn reading_a_mangled_community_response_never_panics(flip in 0usize..60, bit in 0u8..8, cut in 0usize..60) {
            let pdu = ber::pdu(tag::RESPONSE, 1, &[
                (vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 2, 1], SetValue::OctetString(b"db-1".to_vec())),
                (vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 4, 1], SetValue::Integer(1)),
            ]).unwrap();
            let mut msg = ber::community_message(0, b"private", &pdu).to_vec();
            if flip < msg.len() { msg[flip] ^= 1 << bit; }
            msg.truncate(cut.max(1).min(msg.len()));
            let _ = community_response(&msg, 1);
        }
    }
}
