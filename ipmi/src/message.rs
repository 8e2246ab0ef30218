//! IPMI LAN messages (IPMI v2.0 §13.8, table 13-4): rsAddr, NetFn/LUN, checksum,
//! rqAddr, rq_seq/LUN, command, data, checksum; and the few commands fencing needs:
//! Get Channel Authentication Capabilities, Set Session Privilege Level, Close
//! Session (App), Get Chassis Status and Chassis Control (Chassis).

use crate::error::CodecError;
use crate::wire::Reader;

/// The BMC's responder address.
pub const BMC_ADDR: u8 = 0x20;
/// A remote console's software ID (§5.5).
pub const CONSOLE_ADDR: u8 = 0x81;
pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

pub const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
pub const CMD_CHASSIS_CONTROL: u8 = 0x02;
pub const CMD_GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
pub const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3b;
pub const CMD_CLOSE_SESSION: u8 = 0x3c;

/// Two's complement checksum: the bytes plus it sum to zero (§13.8).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// A request from the console to the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub net_fn: u8,
    pub command: u8,
    /// 6-bit request sequence number, matching the reply to its request.
    pub rq_seq: u8,
    pub data: Vec<u8>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![BMC_ADDR, (self.net_fn & 0x3f) << 2];
        out.push(checksum(&out));
        let body_start = out.len();
        out.extend_from_slice(&[CONSOLE_ADDR, (self.rq_seq & 0x3f) << 2, self.command]);
        out.extend_from_slice(&self.data);
        out.push(checksum(&out[body_start..]));
        out
    }

    /// Decodes a request (the responder's side).
    pub fn decode(bytes: &[u8]) -> Result<Request, CodecError> {
        let (header, body) = split_checked(bytes, "IPMI request", true)?;
        let mut r = Reader::new("IPMI request", body);
        let _rq_addr = r.u8()?;
        let rq_seq = r.u8()? >> 2;
        let command = r.u8()?;
        Ok(Request {
            net_fn: header[1] >> 2,
            command,
            rq_seq,
            data: r.rest().to_vec(),
        })
    }
}

/// A reply from the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's NetFn (the reply carries it plus one; this is the even one).
    pub net_fn: u8,
    pub command: u8,
    pub rq_seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONSOLE_ADDR, ((self.net_fn | 1) & 0x3f) << 2];
        out.push(checksum(&out));
        let body_start = out.len();
        out.extend_from_slice(&[
            BMC_ADDR,
            (self.rq_seq & 0x3f) << 2,
            self.command,
            self.completion,
        ]);
        out.extend_from_slice(&self.data);
        out.push(checksum(&out[body_start..]));
        out
    }

    /// Decodes a reply. `check_sums: false` is the `nochecksumcheck` workaround
    /// (Supermicro X9 sends bad checksums).
    pub fn decode(bytes: &[u8], check_sums: bool) -> Result<Response, CodecError> {
        let (header, body) = split_checked(bytes, "IPMI response", check_sums)?;
        let net_fn = header[1] >> 2;
        if net_fn & 1 == 0 {
            return Err(CodecError::Unexpected {
                what: "response NetFn (must be odd)",
                value: net_fn.into(),
            });
        }
        let mut r = Reader::new("IPMI response", body);
        let _rs_addr = r.u8()?;
        let rq_seq = r.u8()? >> 2;
        let command = r.u8()?;
        let completion = r.u8()?;
        Ok(Response {
            net_fn: net_fn & !1,
            command,
            rq_seq,
            completion,
            data: r.rest().to_vec(),
        })
    }
}

/// Splits a LAN message into its 3-byte header and the body without the final
/// checksum, checking both checksums.
fn split_checked<'a>(
    bytes: &'a [u8],
    what: &'static str,
    check_sums: bool,
) -> Result<(&'a [u8], &'a [u8]), CodecError> {
    if bytes.len() < 7 {
        return Err(CodecError::Truncated {
            what,
            need: 7,
            have: bytes.len(),
        });
    }
    if bytes.len() > 255 {
        return Err(CodecError::Oversized {
            what,
            len: bytes.len(),
            max: 255,
        });
    }
    let (header, rest) = bytes.split_at(3);
    let (body, sum) = rest.split_at(rest.len() - 1);
    if check_sums {
        if checksum(&header[..2]) != header[2] {
            return Err(CodecError::Checksum("IPMI header"));
        }
        if checksum(body) != sum[0] {
            return Err(CodecError::Checksum("IPMI body"));
        }
    }
    Ok((header, body))
}

/// Privilege levels (§6.8; Open Session also allows 0 = highest matching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Privilege {
    Callback = 1,
    User = 2,
    Operator = 3,
    Administrator = 4,
}

impl Privilege {
    pub fn from_level(level: u8) -> Option<Privilege> {
        match level & 0x0f {
            1 => Some(Privilege::Callback),
            2 => Some(Privilege::User),
            3 => Some(Privilege::Operator),
            4 => Some(Privilege::Administrator),
            _ => None,
        }
    }

    pub fn parse(text: &str) -> Option<Privilege> {
        match text.trim().to_ascii_lowercase().as_str() {
            "callback" => Some(Privilege::Callback),
            "user" => Some(Privilege::User),
            "operator" => Some(Privilege::Operator),
            "administrator" | "admin" => Some(Privilege::Administrator),
            _ => None,
        }
    }

    pub fn level(self) -> u8 {
        self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Callback => "CALLBACK",
            Privilege::User => "USER",
            Privilege::Operator => "OPERATOR",
            Privilege::Administrator => "ADMINISTRATOR",
        }
    }
}

/// Chassis Control sub-functions (§28.3, table 28-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisControl {
    PowerDown = 0,
    PowerUp = 1,
    PowerCycle = 2,
    HardReset = 3,
    DiagnosticInterrupt = 4,
    SoftShutdown = 5,
}

impl ChassisControl {
    pub fn from_byte(byte: u8) -> Option<ChassisControl> {
        match byte & 0x0f {
            0 => Some(ChassisControl::PowerDown),
            1 => Some(ChassisControl::PowerUp),
            2 => Some(ChassisControl::PowerCycle),
            3 => Some(ChassisControl::HardReset),
            4 => Some(ChassisControl::DiagnosticInterrupt),
            5 => Some(ChassisControl::SoftShutdown),
            _ => None,
        }
    }

    /// Whether sending it twice does the same as once. Cycle, reset and NMI do not:
    /// they are never retransmitted blindly (ipmi.md §5, §9.1: ipmi_sim runs every
    /// retransmitted request again).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            ChassisControl::PowerDown | ChassisControl::PowerUp | ChassisControl::SoftShutdown
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChassisControl::PowerDown => "power down",
            ChassisControl::PowerUp => "power up",
            ChassisControl::PowerCycle => "power cycle",
            ChassisControl::HardReset => "hard reset",
            ChassisControl::DiagnosticInterrupt => "diagnostic interrupt",
            ChassisControl::SoftShutdown => "soft shutdown",
        }
    }
}

/// Get Chassis Status reply byte 1, bit 0: system power is on (§28.2).
pub fn power_is_on(status: &[u8]) -> Result<bool, CodecError> {
    status
        .first()
        .map(|b| b & 1 != 0)
        .ok_or(CodecError::Truncated {
            what: "Get Chassis Status reply",
            need: 1,
            have: 0,
        })
}

/// Get Channel Authentication Capabilities request data (§22.13): this channel
/// (0x0E), bit 7 = "IPMI v2.0 extended data", and the wanted privilege.
pub fn auth_caps_request(privilege: Privilege) -> Vec<u8> {
    vec![0x8e, privilege.level()]
}

/// What Get Channel Authentication Capabilities says about RMCP+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCaps {
    pub channel: u8,
    pub ipmi20: bool,
    pub kg_non_null: bool,
    pub null_users: bool,
}

impl AuthCaps {
    pub fn decode(data: &[u8]) -> Result<AuthCaps, CodecError> {
        let mut r = Reader::new("Get Channel Auth Capabilities reply", data);
        let channel = r.u8()?;
        let auth = r.u8()?;
        let status = r.u8()?;
        let ext = r.u8()?;
        Ok(AuthCaps {
            channel,
            ipmi20: auth & 0x80 != 0 && ext & 0x02 != 0,
            kg_non_null: status & 0x20 != 0,
            null_users: status & 0x02 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_get_chassis_status_request_has_both_checksums() {
        let req = Request {
            net_fn: NETFN_CHASSIS,
            command: CMD_GET_CHASSIS_STATUS,
            rq_seq: 5,
            data: vec![],
        };
        let bytes = req.encode();
        assert_eq!(bytes, vec![0x20, 0x00, 0xe0, 0x81, 0x14, 0x01, 0x6a]);
        assert_eq!(Request::decode(&bytes).unwrap(), req);
    }

    #[test]
    fn a_bad_checksum_is_refused_unless_the_workaround_is_on() {
        let resp = Response {
            net_fn: NETFN_CHASSIS,
            command: CMD_GET_CHASSIS_STATUS,
            rq_seq: 1,
            completion: 0,
            data: vec![1, 0, 0],
        };
        let mut bytes = resp.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        assert_eq!(
            Response::decode(&bytes, true),
            Err(CodecError::Checksum("IPMI body"))
        );
        assert_eq!(Response::decode(&bytes, false).unwrap(), resp);
    }

    #[test]
    fn only_power_up_down_and_soft_off_are_idempotent() {
        assert!(ChassisControl::PowerDown.is_idempotent());
        assert!(!ChassisControl::PowerCycle.is_idempotent());
        assert!(!ChassisControl::HardReset.is_idempotent());
        assert!(!ChassisControl::DiagnosticInterrupt.is_idempotent());
    }

    proptest! {
        #[test]
        fn responses_round_trip(net_fn in 0u8..32, cmd in any::<u8>(), seq in 0u8..64, cc in any::<u8>(),
                                data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let resp = Response { net_fn: net_fn * 2, command: cmd, rq_seq: seq, completion: cc, data };
            prop_assert_eq!(Response::decode(&resp.encode(), true).unwrap(), resp);
        }

        #[test]
        fn requests_round_trip(net_fn in 0u8..64, cmd in any::<u8>(), seq in 0u8..64,
                               data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let req = Request { net_fn, command: cmd, rq_seq: seq, data };
            prop_assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        }

        #[test]
        fn message_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes, true);
            let _ = Response::decode(&bytes, false);
            let _ = AuthCaps::decode(&bytes);
            let _ = power_is_on(&bytes);
        }
    }
}
