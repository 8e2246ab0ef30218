//! The RMCP+ session-setup payloads (IPMI v2.0 §13.17-13.23): Open Session
//! Request/Response and RAKP messages 1-4. Both ends use these codecs.

use crate::error::CodecError;
use crate::wire::Reader;

/// The three algorithm proposals of Open Session, as numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms {
    pub auth: u8,
    pub integrity: u8,
    pub confidentiality: u8,
}

impl Algorithms {
    fn encode(&self, out: &mut Vec<u8>) {
        for (kind, id) in [
            (0u8, self.auth),
            (1, self.integrity),
            (2, self.confidentiality),
        ] {
            out.extend_from_slice(&[kind, 0, 0, 0x08, id & 0x3f, 0, 0, 0]);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Algorithms, CodecError> {
        let mut ids = [0u8; 3];
        for (kind, id) in ids.iter_mut().enumerate() {
            let record = r.take(8)?;
            if usize::from(record[0]) != kind || record[3] != 0x08 {
                return Err(CodecError::Unexpected {
                    what: "algorithm payload record",
                    value: u32::from(record[0]) << 8 | u32::from(record[3]),
                });
            }
            *id = record[4] & 0x3f;
        }
        Ok(Algorithms {
            auth: ids[0],
            integrity: ids[1],
            confidentiality: ids[2],
        })
    }
}

fn no_trailing(r: &Reader<'_>, what: &'static str, len: usize) -> Result<(), CodecError> {
    if r.remaining() != 0 {
        return Err(CodecError::Oversized {
            what,
            len,
            max: len - r.remaining(),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// Requested maximum privilege (0 = highest matching the proposal).
    pub privilege: u8,
    pub console_session_id: u32,
    pub algorithms: Algorithms,
}

impl OpenSessionRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.privilege & 0x0f, 0, 0];
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        self.algorithms.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<OpenSessionRequest, CodecError> {
        let mut r = Reader::new("Open Session Request", bytes);
        let tag = r.u8()?;
        let privilege = r.u8()? & 0x0f;
        r.take(2)?;
        let console_session_id = r.u32()?;
        let algorithms = Algorithms::decode(&mut r)?;
        no_trailing(&r, "Open Session Request", bytes.len())?;
        Ok(OpenSessionRequest {
            tag,
            privilege,
            console_session_id,
            algorithms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub privilege: u8,
    /// Absent only in a truncated *error* response: some BMCs (ipmi_sim 2.0.33
    /// among them) answer a refused proposal with just the tag and the status.
    pub console_session_id: Option<u32>,
    /// Present when the status is 0.
    pub accepted: Option<(u32, Algorithms)>,
}

/// The shortest Open Session Response that carries the console session ID.
const OPEN_SESSION_RESPONSE_WITH_ID: usize = 8;

impl OpenSessionResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status];
        let Some(console_session_id) = self.console_session_id else {
            return out;
        };
        out.extend_from_slice(&[self.privilege, 0]);
        out.extend_from_slice(&console_session_id.to_le_bytes());
        if let Some((bmc_session_id, algorithms)) = &self.accepted {
            out.extend_from_slice(&bmc_session_id.to_le_bytes());
            algorithms.encode(&mut out);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<OpenSessionResponse, CodecError> {
        let mut r = Reader::new("Open Session Response", bytes);
        let tag = r.u8()?;
        let status = r.u8()?;
        if status != 0 && bytes.len() < OPEN_SESSION_RESPONSE_WITH_ID {
            // A truncated error response (tag, status, maybe a stray byte or
            // three): it names no session, and callers may only use it to move
            // on to the next suite they were willing to offer anyway.
            return Ok(OpenSessionResponse {
                tag,
                status,
                privilege: 0,
                console_session_id: None,
                accepted: None,
            });
        }
        let privilege = r.u8()? & 0x0f;
        r.u8()?;
        let console_session_id = r.u32()?;
        // An error response may stop after the console session ID (§13.18).
        let accepted = if status == 0 {
            let bmc_session_id = r.u32()?;
            Some((bmc_session_id, Algorithms::decode(&mut r)?))
        } else {
            r.rest();
            None
        };
        no_trailing(&r, "Open Session Response", bytes.len())?;
        Ok(OpenSessionResponse {
            tag,
            status,
            privilege,
            console_session_id: Some(console_session_id),
            accepted,
        })
    }

    /// The tag and status of a truncated error response (an Open Session Response
    /// payload without the console session ID), for routing it by tag.
    pub fn truncated_error(payload: &[u8]) -> Option<(u8, u8)> {
        match OpenSessionResponse::decode(payload) {
            Ok(OpenSessionResponse {
                tag,
                status,
                console_session_id: None,
                ..
            }) => Some((tag, status)),
            _ => None,
        }
    }
}

/// Role byte bit 4: look the user up by name only (ipmi.md §2.1).
pub const NAME_ONLY_LOOKUP: u8 = 0x10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    /// Requested privilege in bits 3:0, name-only lookup in bit 4.
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        if self.username.len() > 16 {
            return Err(CodecError::Oversized {
                what: "username",
                len: self.username.len(),
                max: 16,
            });
        }
        let mut out = vec![self.tag, 0, 0, 0];
        out.extend_from_slice(&self.bmc_session_id.to_le_bytes());
        out.extend_from_slice(&self.console_random);
        out.extend_from_slice(&[self.role, 0, 0, self.username.len() as u8]);
        out.extend_from_slice(&self.username);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Rakp1, CodecError> {
        let mut r = Reader::new("RAKP 1", bytes);
        let tag = r.u8()?;
        r.take(3)?;
        let bmc_session_id = r.u32()?;
        let console_random = r.array16()?;
        let role = r.u8()?;
        r.take(2)?;
        let len = usize::from(r.u8()?);
        if len > 16 {
            return Err(CodecError::Oversized {
                what: "username",
                len,
                max: 16,
            });
        }
        let username = r.take(len)?.to_vec();
        // Some consoles send the name zero-padded to 16 bytes: ignore the rest.
        if r.remaining() > 16 - len {
            return Err(CodecError::Oversized {
                what: "RAKP 1",
                len: bytes.len(),
                max: 44,
            });
        }
        Ok(Rakp1 {
            tag,
            bmc_session_id,
            console_random,
            role,
            username,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    /// Present when the status is 0.
    pub accepted: Option<Rakp2Body>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2Body {
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        if let Some(body) = &self.accepted {
            out.extend_from_slice(&body.bmc_random);
            out.extend_from_slice(&body.bmc_guid);
            out.extend_from_slice(&body.auth_code);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Rakp2, CodecError> {
        let mut r = Reader::new("RAKP 2", bytes);
        let tag = r.u8()?;
        let status = r.u8()?;
        r.take(2)?;
        let console_session_id = r.u32()?;
        let accepted = if status == 0 {
            let bmc_random = r.array16()?;
            let bmc_guid = r.array16()?;
            let auth_code = r.rest().to_vec();
            // 32 bytes (HMAC-SHA256) plus the one extra byte some BMCs send
            // (FreeIPMI's supermicro20, sun20 workarounds); lengths are checked
            // against the suite by the session.
            if auth_code.len() > 33 {
                return Err(CodecError::Oversized {
                    what: "RAKP 2 auth code",
                    len: auth_code.len(),
                    max: 33,
                });
            }
            Some(Rakp2Body {
                bmc_random,
                bmc_guid,
                auth_code,
            })
        } else {
            None
        };
        Ok(Rakp2 {
            tag,
            status,
            console_session_id,
            accepted,
        })
    }
}

/// RAKP 3 (console to BMC) and RAKP 4 (BMC to console) share one layout: tag,
/// status, two reserved bytes, a session ID (the receiver's), an auth code / ICV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp34 {
    pub tag: u8,
    pub status: u8,
    pub session_id: u32,
    pub auth_code: Vec<u8>,
}

impl Rakp34 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&self.auth_code);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Rakp34, CodecError> {
        let mut r = Reader::new("RAKP 3/4", bytes);
        let tag = r.u8()?;
        let status = r.u8()?;
        r.take(2)?;
        let session_id = r.u32()?;
        let auth_code = r.rest().to_vec();
        if auth_code.len() > 32 {
            return Err(CodecError::Oversized {
                what: "RAKP 3/4 auth code",
                len: auth_code.len(),
                max: 32,
            });
        }
        Ok(Rakp34 {
            tag,
            status,
            session_id,
            auth_code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_open_session_request_is_32_bytes_with_three_proposals() {
        let req = OpenSessionRequest {
            tag: 1,
            privilege: 4,
            console_session_id: 0xa0a2a3a4,
            algorithms: Algorithms {
                auth: 1,
                integrity: 1,
                confidentiality: 1,
            },
        };
        let bytes = req.encode();
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 8, 1, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[2, 0, 0, 8, 1, 0, 0, 0]);
        assert_eq!(OpenSessionRequest::decode(&bytes).unwrap(), req);
    }

    #[test]
    fn a_short_error_open_session_response_decodes() {
        let bytes = [7, 0x11, 0, 0, 1, 2, 3, 4];
        let resp = OpenSessionResponse::decode(&bytes).unwrap();
        assert_eq!(resp.status, 0x11);
        assert_eq!(resp.console_session_id, Some(0x04030201));
        assert_eq!(resp.accepted, None);
    }

    #[test]
    fn a_truncated_error_response_of_tag_and_status_decodes_without_a_session_id() {
        // ipmi_sim 2.0.33 refusing suite 17: payload `01 04` (tag 1, status 0x04).
        let resp = OpenSessionResponse::decode(&[0x01, 0x04]).unwrap();
        assert_eq!(resp.tag, 1);
        assert_eq!(resp.status, 0x04);
        assert_eq!(resp.console_session_id, None);
        assert_eq!(resp.accepted, None);
        assert_eq!(
            OpenSessionResponse::truncated_error(&[0x01, 0x04]),
            Some((1, 4))
        );
        assert_eq!(resp.encode(), vec![0x01, 0x04]);
    }

    #[test]
    fn a_truncated_response_can_never_be_a_success() {
        for len in 0..8 {
            let mut bytes = vec![0u8; len];
            if len > 0 {
                bytes[0] = 9;
            }
            assert!(OpenSessionResponse::decode(&bytes).is_err(), "{len} bytes");
            assert_eq!(OpenSessionResponse::truncated_error(&bytes), None);
        }
        // A full-length error response is not a truncated one.
        assert_eq!(
            OpenSessionResponse::truncated_error(&[7, 0x11, 0, 0, 1, 2, 3, 4]),
            None
        );
    }

    #[test]
    fn a_username_over_16_bytes_is_refused() {
        let rakp1 = Rakp1 {
            tag: 0,
            bmc_session_id: 1,
            console_random: [0; 16],
            role: 0x14,
            username: vec![b'u'; 17],
        };
        assert!(rakp1.encode().is_err());
    }

    proptest! {
        #[test]
        fn setup_messages_round_trip(tag in any::<u8>(), status in any::<u8>(), sid in any::<u32>(), sid2 in any::<u32>(),
                                     rnd in any::<[u8; 16]>(), guid in any::<[u8; 16]>(),
                                     name in proptest::collection::vec(any::<u8>(), 0..=16),
                                     code in proptest::collection::vec(any::<u8>(), 0..=32),
                                     a in 0u8..64, i in 0u8..64, c in 0u8..64) {
            let algorithms = Algorithms { auth: a, integrity: i, confidentiality: c };
            let req = OpenSessionRequest { tag, privilege: status & 0x0f, console_session_id: sid, algorithms };
            prop_assert_eq!(OpenSessionRequest::decode(&req.encode()).unwrap(), req);
            let resp = OpenSessionResponse { tag, status, privilege: 4, console_session_id: Some(sid),
                accepted: (status == 0).then_some((sid2, algorithms)) };
            prop_assert_eq!(OpenSessionResponse::decode(&resp.encode()).unwrap(), resp);
            if status != 0 {
                let short = OpenSessionResponse { tag, status, privilege: 0, console_session_id: None, accepted: None };
                prop_assert_eq!(OpenSessionResponse::decode(&short.encode()).unwrap(), short);
            }
            let rakp1 = Rakp1 { tag, bmc_session_id: sid, console_random: rnd, role: 0x14, username: name };
            prop_assert_eq!(Rakp1::decode(&rakp1.encode().unwrap()).unwrap(), rakp1);
            let rakp2 = Rakp2 { tag, status, console_session_id: sid,
                accepted: (status == 0).then(|| Rakp2Body { bmc_random: rnd, bmc_guid: guid, auth_code: code.clone() }) };
            prop_assert_eq!(Rakp2::decode(&rakp2.encode()).unwrap(), rakp2);
            let rakp3 = Rakp34 { tag, status, session_id: sid, auth_code: code };
            prop_assert_eq!(Rakp34::decode(&rakp3.encode()).unwrap(), rakp3);
        }

        #[test]
        fn setup_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = OpenSessionRequest::decode(&bytes);
            let _ = OpenSessionResponse::decode(&bytes);
            let _ = Rakp1::decode(&bytes);
            let _ = Rakp2::decode(&bytes);
            let _ = Rakp34::decode(&bytes);
        }
    }
}
