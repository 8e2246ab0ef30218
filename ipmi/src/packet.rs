//! The two session wrappers around a payload: IPMI 1.5 (§13.6, table 13-8: auth
//! type, session sequence, session ID, a 16-byte AuthCode unless the auth type is
//! none, message length; used sessionless for Get Channel Authentication
//! Capabilities and for IPMI 1.5 sessions, see [`crate::v15`]) and
//! IPMI 2.0 / RMCP+ (§13.6, table 13-8): auth type 0x06, payload type with the
//! encrypted and authenticated bits, session ID, session sequence, payload length,
//! then for authenticated packets the integrity trailer (0xFF pad to a multiple of
//! 4, pad length, next header 0x07, AuthCode). Encryption and integrity use the
//! session's [`SessionKeys`].

use crate::crypto::{macs_equal, SessionKeys};
use crate::error::CodecError;
use crate::rmcp::{self, CLASS_IPMI, IPMI_HEADER};
use crate::wire::Reader;

pub const AUTH_TYPE_NONE: u8 = 0x00;
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
const NEXT_HEADER: u8 = 0x07;
const ENCRYPTED: u8 = 0x80;
const AUTHENTICATED: u8 = 0x40;

/// RMCP+ payload types (§13.27.3, table 13-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Ipmi,
    Sol,
    Oem,
    OpenSessionRequest,
    OpenSessionResponse,
    Rakp1,
    Rakp2,
    Rakp3,
    Rakp4,
    Other(u8),
}

impl PayloadType {
    pub fn from_bits(bits: u8) -> PayloadType {
        match bits & 0x3f {
            0x00 => PayloadType::Ipmi,
            0x01 => PayloadType::Sol,
            0x02 => PayloadType::Oem,
            0x10 => PayloadType::OpenSessionRequest,
            0x11 => PayloadType::OpenSessionResponse,
            0x12 => PayloadType::Rakp1,
            0x13 => PayloadType::Rakp2,
            0x14 => PayloadType::Rakp3,
            0x15 => PayloadType::Rakp4,
            other => PayloadType::Other(other),
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            PayloadType::Ipmi => 0x00,
            PayloadType::Sol => 0x01,
            PayloadType::Oem => 0x02,
            PayloadType::OpenSessionRequest => 0x10,
            PayloadType::OpenSessionResponse => 0x11,
            PayloadType::Rakp1 => 0x12,
            PayloadType::Rakp2 => 0x13,
            PayloadType::Rakp3 => 0x14,
            PayloadType::Rakp4 => 0x15,
            PayloadType::Other(bits) => bits & 0x3f,
        }
    }
}

/// An IPMI 1.5 session-wrapped message. The AuthCode is carried as received:
/// whoever decodes it checks it with [`crate::v15::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V15Packet {
    /// 0 none, 1 MD2, 2 MD5, 4 straight password, 5 OEM (§13.6).
    pub auth_type: u8,
    pub sequence: u32,
    pub session_id: u32,
    /// Present exactly when `auth_type` is not none.
    pub auth_code: Option<[u8; 16]>,
    pub message: Vec<u8>,
}

impl V15Packet {
    /// A sessionless packet (auth type none, sequence 0, session ID 0).
    pub fn sessionless(message: Vec<u8>) -> V15Packet {
        V15Packet {
            auth_type: AUTH_TYPE_NONE,
            sequence: 0,
            session_id: 0,
            auth_code: None,
            message,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let len = u8::try_from(self.message.len()).map_err(|_| CodecError::Oversized {
            what: "IPMI 1.5 message",
            len: self.message.len(),
            max: 255,
        })?;
        if (self.auth_type == AUTH_TYPE_NONE) != self.auth_code.is_none() {
            return Err(CodecError::Unexpected {
                what: "IPMI 1.5 AuthCode presence for auth type",
                value: self.auth_type.into(),
            });
        }
        let mut out = IPMI_HEADER.to_vec();
        out.push(self.auth_type);
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.session_id.to_le_bytes());
        if let Some(code) = &self.auth_code {
            out.extend_from_slice(code);
        }
        out.push(len);
        out.extend_from_slice(&self.message);
        Ok(out)
    }

    pub fn decode(datagram: &[u8]) -> Result<V15Packet, CodecError> {
        let (class, body) = rmcp::split(datagram)?;
        if class != CLASS_IPMI {
            return Err(CodecError::Unexpected {
                what: "RMCP class",
                value: class.into(),
            });
        }
        let mut r = Reader::new("IPMI 1.5 session header", body);
        let auth_type = r.u8()?;
        if auth_type == AUTH_TYPE_RMCP_PLUS || auth_type > 0x05 {
            return Err(CodecError::Unexpected {
                what: "IPMI 1.5 auth type",
                value: auth_type.into(),
            });
        }
        let sequence = r.u32()?;
        let session_id = r.u32()?;
        let auth_code = if auth_type != AUTH_TYPE_NONE {
            Some(r.array16()?)
        } else {
            None
        };
        let len = usize::from(r.u8()?);
        let message = r.take(len)?.to_vec();
        Ok(V15Packet {
            auth_type,
            sequence,
            session_id,
            auth_code,
            message,
        })
    }
}

/// The fields of an RMCP+ session header, read without checking integrity: enough
/// to find the session (and its keys) a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Header {
    pub payload_type: PayloadType,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub sequence: u32,
}

/// What a datagram is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Asf,
    V15,
    V2(V2Header),
}

/// Looks at a datagram's headers without verifying anything.
pub fn peek(datagram: &[u8]) -> Result<Framing, CodecError> {
    let (class, body) = rmcp::split(datagram)?;
    if class != CLASS_IPMI {
        return Ok(Framing::Asf);
    }
    let mut r = Reader::new("session header", body);
    if r.u8()? != AUTH_TYPE_RMCP_PLUS {
        return Ok(Framing::V15);
    }
    let bits = r.u8()?;
    let payload_type = PayloadType::from_bits(bits);
    if payload_type == PayloadType::Oem {
        r.take(6)?; // OEM IANA (4), OEM payload ID (2)
    }
    Ok(Framing::V2(V2Header {
        payload_type,
        encrypted: bits & ENCRYPTED != 0,
        authenticated: bits & AUTHENTICATED != 0,
        session_id: r.u32()?,
        sequence: r.u32()?,
    }))
}

/// A decoded RMCP+ packet, payload decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Packet {
    pub header: V2Header,
    pub payload: Vec<u8>,
}

/// Encodes an RMCP+ packet. With `keys`, the payload is encrypted and authenticated
/// as the session's algorithms say; without, it goes in clear (session setup).
pub fn encode_v2(
    payload_type: PayloadType,
    session_id: u32,
    sequence: u32,
    payload: &[u8],
    keys: Option<&SessionKeys>,
    iv: [u8; 16],
) -> Result<Vec<u8>, CodecError> {
    let (body, mut bits) = match keys {
        Some(keys) => {
            let encrypted = keys.confidentiality != crate::crypto::ConfidentialityAlgorithm::None;
            let authenticated = keys.integrity != crate::crypto::IntegrityAlgorithm::None;
            (
                keys.seal(payload, iv)?,
                (if encrypted { ENCRYPTED } else { 0 })
                    | (if authenticated { AUTHENTICATED } else { 0 }),
            )
        }
        None => (payload.to_vec(), 0),
    };
    bits |= payload_type.bits();
    let len = u16::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= rmcp::MAX_DATAGRAM)
        .ok_or(CodecError::Oversized {
            what: "payload",
            len: body.len(),
            max: rmcp::MAX_DATAGRAM,
        })?;
    let mut out = IPMI_HEADER.to_vec();
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(bits);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    if let Some(keys) = keys.filter(|_| bits & AUTHENTICATED != 0) {
        // Pad so that auth type .. next header is a multiple of 4 (§13.28.4).
        let covered = out.len() - 4 + 2;
        let pad = (4 - covered % 4) % 4;
        out.resize(out.len() + pad, 0xff);
        out.push(pad as u8);
        out.push(NEXT_HEADER);
        let code = keys.auth_code(&out[4..]);
        out.extend_from_slice(&code);
    }
    Ok(out)
}

/// Decodes an RMCP+ packet. An authenticated or encrypted packet needs `keys`, and
/// its AuthCode must verify (compared in constant time).
pub fn decode_v2(datagram: &[u8], keys: Option<&SessionKeys>) -> Result<V2Packet, CodecError> {
    let header = match peek(datagram)? {
        Framing::V2(header) => header,
        Framing::Asf | Framing::V15 => {
            return Err(CodecError::Unexpected {
                what: "auth type (expected RMCP+ 0x06)",
                value: datagram.get(4).copied().unwrap_or(0).into(),
            })
        }
    };
    let mut r = Reader::new("RMCP+ packet", datagram);
    r.take(6)?; // RMCP header, auth type, payload type
    if header.payload_type == PayloadType::Oem {
        r.take(6)?;
    }
    r.take(8)?; // session ID, sequence
    let len = usize::from(r.u16()?);
    let body = r.take(len)?;
    let trailer_start = r.position();
    if header.authenticated {
        let keys = keys.ok_or(CodecError::NoKeys)?;
        let code_len = keys.integrity.auth_code_len();
        if code_len == 0 {
            return Err(CodecError::Unexpected {
                what: "authenticated bit without an integrity algorithm",
                value: 1,
            });
        }
        let trailer_len = r.remaining();
        if trailer_len < code_len + 2 {
            return Err(CodecError::Truncated {
                what: "integrity trailer",
                need: code_len + 2,
                have: trailer_len,
            });
        }
        let pad = trailer_len - code_len - 2;
        if pad > 3 {
            return Err(CodecError::Oversized {
                what: "integrity pad",
                len: pad,
                max: 3,
            });
        }
        let code_start = datagram.len() - code_len;
        let pad_len = datagram[code_start - 2];
        let next = datagram[code_start - 1];
        if usize::from(pad_len) != pad || next != NEXT_HEADER {
            return Err(CodecError::Unexpected {
                what: "integrity pad length / next header",
                value: u32::from(pad_len) << 8 | u32::from(next),
            });
        }
        let want = keys.auth_code(&datagram[4..code_start]);
        if !macs_equal(&want, &datagram[code_start..]) {
            return Err(CodecError::Integrity);
        }
    } else if r.remaining() != 0 {
        return Err(CodecError::Oversized {
            what: "unauthenticated packet",
            len: datagram.len(),
            max: trailer_start,
        });
    }
    let payload = if header.encrypted {
        keys.ok_or(CodecError::NoKeys)?.open(body)?
    } else {
        body.to_vec()
    };
    Ok(V2Packet { header, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AuthAlgorithm, ConfidentialityAlgorithm, IntegrityAlgorithm};
    use proptest::prelude::*;

    fn keys(integrity: IntegrityAlgorithm, conf: ConfidentialityAlgorithm) -> SessionKeys {
        SessionKeys::new(
            AuthAlgorithm::HmacSha1,
            integrity,
            conf,
            &[5u8; 20],
            &[6u8; 20],
        )
    }

    fn all_keys() -> Vec<SessionKeys> {
        vec![
            keys(
                IntegrityAlgorithm::HmacSha1_96,
                ConfidentialityAlgorithm::AesCbc128,
            ),
            keys(
                IntegrityAlgorithm::HmacSha1_96,
                ConfidentialityAlgorithm::None,
            ),
            keys(
                IntegrityAlgorithm::HmacSha256_128,
                ConfidentialityAlgorithm::AesCbc128,
            ),
            keys(
                IntegrityAlgorithm::HmacMd5_128,
                ConfidentialityAlgorithm::AesCbc128,
            ),
            keys(IntegrityAlgorithm::Md5_128, ConfidentialityAlgorithm::None),
            keys(IntegrityAlgorithm::None, ConfidentialityAlgorithm::None),
        ]
    }

    #[test]
    fn an_authenticated_packet_has_the_trailer_ipmi_specifies() {
        let k = keys(
            IntegrityAlgorithm::HmacSha1_96,
            ConfidentialityAlgorithm::None,
        );
        let out = encode_v2(
            PayloadType::Ipmi,
            0x11223344,
            1,
            &[1, 2, 3],
            Some(&k),
            [0; 16],
        )
        .unwrap();
        assert_eq!(out[5], 0x40);
        // auth type .. next header: 12 + 3 payload + pad + 2 ≡ 0 mod 4 → pad 3.
        let code_start = out.len() - 12;
        assert_eq!(&out[code_start - 5..code_start], &[0xff, 0xff, 0xff, 3, 7]);
        assert_eq!((code_start - 4) % 4, 0);
    }

    #[test]
    fn a_flipped_bit_fails_integrity() {
        let k = keys(
            IntegrityAlgorithm::HmacSha1_96,
            ConfidentialityAlgorithm::AesCbc128,
        );
        let mut out = encode_v2(PayloadType::Ipmi, 9, 2, b"chassis", Some(&k), [3; 16]).unwrap();
        out[20] ^= 1;
        assert_eq!(decode_v2(&out, Some(&k)), Err(CodecError::Integrity));
    }

    #[test]
    fn an_authenticated_packet_without_keys_is_refused() {
        let k = keys(
            IntegrityAlgorithm::HmacSha1_96,
            ConfidentialityAlgorithm::None,
        );
        let out = encode_v2(PayloadType::Ipmi, 9, 2, b"x", Some(&k), [3; 16]).unwrap();
        assert_eq!(decode_v2(&out, None), Err(CodecError::NoKeys));
    }

    #[test]
    fn a_v15_packet_round_trips() {
        let p = V15Packet::sessionless(vec![0x20, 0x18, 0xc8]);
        assert_eq!(V15Packet::decode(&p.encode().unwrap()).unwrap(), p);
        assert_eq!(peek(&p.encode().unwrap()).unwrap(), Framing::V15);
    }

    proptest! {
        #[test]
        fn v2_round_trips_under_every_algorithm(payload in proptest::collection::vec(any::<u8>(), 0..80),
                                                sid in any::<u32>(), seq in any::<u32>(), iv in any::<[u8; 16]>()) {
            for k in all_keys() {
                let out = encode_v2(PayloadType::Ipmi, sid, seq, &payload, Some(&k), iv).unwrap();
                let p = decode_v2(&out, Some(&k)).unwrap();
                prop_assert_eq!(&p.payload, &payload);
                prop_assert_eq!(p.header.session_id, sid);
                prop_assert_eq!(p.header.sequence, seq);
            }
            let out = encode_v2(PayloadType::Rakp1, sid, seq, &payload, None, iv).unwrap();
            prop_assert_eq!(decode_v2(&out, None).unwrap().payload, payload);
        }

        #[test]
        fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = peek(&bytes);
            let _ = V15Packet::decode(&bytes);
            for k in all_keys() {
                let _ = decode_v2(&bytes, Some(&k));
            }
            let _ = decode_v2(&bytes, None);
        }

        #[test]
        fn decoders_never_panic_behind_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..100), bits in any::<u8>()) {
            let mut bytes = vec![6, 0, 0xff, 7, 6, bits];
            bytes.extend(tail);
            for k in all_keys() {
                let _ = decode_v2(&bytes, Some(&k));
            }
            let mut v15 = vec![6, 0, 0xff, 7, 0];
            v15.extend(&bytes[6..]);
            let _ = V15Packet::decode(&v15);
        }
    }
}
