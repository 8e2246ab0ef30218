//! The RMCP header every datagram starts with (`06 00 FF 07`: version 6, reserved,
//! sequence 0xFF = no RMCP ACK, class 7 IPMI; DMTF ASF 2.0 §3.2.2) and the ASF
//! Presence Ping/Pong (class 6) used only to see whether a BMC is alive.

use crate::error::CodecError;
use crate::wire::Reader;

pub const RMCP_VERSION: u8 = 0x06;
/// Sequence 0xFF: the sender wants no RMCP ACK (IPMI over RMCP never uses them).
pub const RMCP_NO_ACK: u8 = 0xff;
pub const CLASS_ASF: u8 = 0x06;
pub const CLASS_IPMI: u8 = 0x07;
/// The largest datagram we accept; chassis traffic is far smaller.
pub const MAX_DATAGRAM: usize = 1024;

/// The RMCP header of an IPMI datagram.
pub const IPMI_HEADER: [u8; 4] = [RMCP_VERSION, 0x00, RMCP_NO_ACK, CLASS_IPMI];

/// Splits a datagram into its RMCP class and the bytes after the header.
pub fn split(datagram: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(CodecError::Oversized {
            what: "datagram",
            len: datagram.len(),
            max: MAX_DATAGRAM,
        });
    }
    let mut r = Reader::new("RMCP header", datagram);
    let version = r.u8()?;
    if version != RMCP_VERSION {
        return Err(CodecError::Unexpected {
            what: "RMCP version",
            value: version.into(),
        });
    }
    let _reserved = r.u8()?;
    let _sequence = r.u8()?;
    // Bit 7 of the class byte marks an RMCP ACK; we never ask for one.
    let class = r.u8()?;
    if class != CLASS_ASF && class != CLASS_IPMI {
        return Err(CodecError::Unexpected {
            what: "RMCP class",
            value: class.into(),
        });
    }
    Ok((class, r.rest()))
}

/// ASF's IANA enterprise number, 4542, big-endian as ASF writes it.
const ASF_IANA: [u8; 4] = [0x00, 0x00, 0x11, 0xbe];
const ASF_PING: u8 = 0x80;
const ASF_PONG: u8 = 0x40;

/// An ASF presence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asf {
    Ping {
        tag: u8,
    },
    /// `ipmi`: the entity supports IPMI (supported-entities bit 7).
    Pong {
        tag: u8,
        ipmi: bool,
    },
}

impl Asf {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RMCP_VERSION, 0x00, RMCP_NO_ACK, CLASS_ASF];
        out.extend_from_slice(&ASF_IANA);
        match *self {
            Asf::Ping { tag } => out.extend_from_slice(&[ASF_PING, tag, 0x00, 0x00]),
            Asf::Pong { tag, ipmi } => {
                out.extend_from_slice(&[ASF_PONG, tag, 0x00, 0x10]);
                out.extend_from_slice(&ASF_IANA);
                out.extend_from_slice(&[0; 4]); // OEM-defined
                out.push(if ipmi { 0x81 } else { 0x01 }); // entities: IPMI, ASF 1.0
                out.push(0x00); // interactions
                out.extend_from_slice(&[0; 6]);
            }
        }
        out
    }

    pub fn decode(datagram: &[u8]) -> Result<Asf, CodecError> {
        let (class, body) = split(datagram)?;
        if class != CLASS_ASF {
            return Err(CodecError::Unexpected {
                what: "RMCP class for ASF",
                value: class.into(),
            });
        }
        let mut r = Reader::new("ASF message", body);
        let iana = r.take(4)?;
        if iana != ASF_IANA {
            return Err(CodecError::Unexpected {
                what: "ASF IANA number",
                value: u32::from_be_bytes([iana[0], iana[1], iana[2], iana[3]]),
            });
        }
        let kind = r.u8()?;
        let tag = r.u8()?;
        let _reserved = r.u8()?;
        let len = usize::from(r.u8()?);
        let data = r.take(len)?;
        match kind {
            ASF_PING => Ok(Asf::Ping { tag }),
            ASF_PONG => {
                let entities = *data.get(8).ok_or(CodecError::Truncated {
                    what: "ASF pong",
                    need: 9,
                    have: data.len(),
                })?;
                Ok(Asf::Pong {
                    tag,
                    ipmi: entities & 0x80 != 0,
                })
            }
            other => Err(CodecError::Unexpected {
                what: "ASF message type",
                value: other.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_ping_and_a_pong_round_trip() {
        for msg in [Asf::Ping { tag: 7 }, Asf::Pong { tag: 9, ipmi: true }] {
            assert_eq!(Asf::decode(&msg.encode()).unwrap(), msg);
        }
        assert_eq!(&Asf::Ping { tag: 1 }.encode()[..4], &[6, 0, 0xff, 6]);
    }

    #[test]
    fn a_wrong_rmcp_version_or_class_is_refused() {
        assert!(split(&[5, 0, 0xff, 7]).is_err());
        assert!(split(&[6, 0, 0xff, 9]).is_err());
        assert!(split(&[6, 0]).is_err());
        assert!(split(&vec![6; MAX_DATAGRAM + 1]).is_err());
    }

    proptest! {
        #[test]
        fn asf_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Asf::decode(&bytes);
        }

        #[test]
        fn asf_decode_never_panics_behind_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = vec![6, 0, 0xff, 6, 0, 0, 0x11, 0xbe];
            bytes.extend(tail);
            let _ = Asf::decode(&bytes);
        }
    }
}
