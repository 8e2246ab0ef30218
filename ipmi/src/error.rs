//! Errors: [`CodecError`] for bytes that do not decode, [`IpmiError`] for what a BMC
//! session can end with, in the classes operators know from `ipmipower` (ipmi.md §6).
//! Messages name the user and host where that helps; they never hold a secret.

use std::fmt;

use fencekit_core::{DeviceError, PowerState};
use thiserror::Error;

/// Why a datagram or payload could not be decoded. Decoders return this for every
/// malformed, truncated or oversized input; they never panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what} too long: {len} bytes, at most {max}")]
    Oversized {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: unexpected value {value:#04x}")]
    Unexpected { what: &'static str, value: u32 },
    #[error("{0} checksum mismatch")]
    Checksum(&'static str),
    #[error("integrity check value (AuthCode) does not verify")]
    Integrity,
    #[error("bad confidentiality padding or length")]
    Confidentiality,
    #[error("packet is authenticated or encrypted but the session has no keys yet")]
    NoKeys,
}

/// The step a session was at, to say where an answer went missing (ipmi.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Open Session: nothing answered at all.
    OpenSession,
    /// RAKP 1-4: the BMC answered Open Session, then stopped.
    Rakp,
    /// Inside the established session.
    InSession,
    /// IPMI 1.5: Get Channel Authentication Capabilities, nothing answered at all.
    AuthCaps,
    /// IPMI 1.5: Get Session Challenge or Activate Session, after the BMC answered.
    Activation,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::OpenSession => {
                "no answer to Open Session (is the address, port and lanplus right?)"
            }
            Phase::Rakp => "BMC stopped answering during RAKP authentication",
            Phase::InSession => "BMC stopped answering inside the session",
            Phase::AuthCaps => {
                "no answer to Get Channel Authentication Capabilities (IPMI 1.5; is the \
                 address, port and lanplus right?)"
            }
            Phase::Activation => "BMC stopped answering during IPMI 1.5 session activation",
        })
    }
}

/// How an IPMI session with a BMC failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpmiError {
    /// A parameter cannot work (password longer than 20 bytes, bad K_g, ...).
    #[error("configuration: {0}")]
    Config(String),
    #[error("authentication failed for user `{user}` on {host}: username invalid ({detail})")]
    UsernameInvalid {
        user: String,
        host: String,
        detail: String,
    },
    #[error("authentication failed for user `{user}` on {host}: password invalid ({detail}); not retried, to avoid locking the account")]
    PasswordInvalid {
        user: String,
        host: String,
        detail: String,
    },
    #[error("authentication failed on {host}: K_g (BMC key) invalid ({detail})")]
    KgInvalid { host: String, detail: String },
    #[error("{host}: privilege level {privilege} cannot be obtained for user `{user}` ({detail})")]
    PrivilegeUnavailable {
        user: String,
        host: String,
        privilege: &'static str,
        detail: String,
    },
    #[error("{host}: no allowed cipher suite is available (tried {tried}); pin one with `cipher` or check the BMC's LAN settings")]
    CipherSuiteUnavailable { host: String, tried: String },
    #[error("{host}: the BMC does not offer IPMI 1.5 authentication type {wanted} (it offers: {offered}); {hint}")]
    AuthTypeUnavailable {
        host: String,
        wanted: &'static str,
        offered: String,
        hint: &'static str,
    },
    #[error(
        "{host}: the BMC has IPMI 1.5 per-message authentication disabled, so no reply \
         (the power state read back) could be checked: refusing; enable it on the BMC, \
         or use RMCP+ (lanplus=1, interface=lanplus)"
    )]
    UnauthenticatedReplies { host: String },
    #[error("{host}: timed out: {phase}")]
    NoAnswer { host: String, phase: Phase },
    #[error("{host}: BMC busy: {detail}")]
    Busy { host: String, detail: String },
    #[error("{host}: {command} not supported in the present state (completion code 0xd5; e.g. cycle or reset of a machine that is off)")]
    NotInPresentState { host: String, command: &'static str },
    #[error("{host}: {command} failed with completion code {code:#04x}: {meaning}")]
    Completion {
        host: String,
        command: &'static str,
        code: u8,
        meaning: &'static str,
    },
    #[error("{host}: the reply to {command} was lost; it was not repeated because it may already have run (chassis now reads {state})")]
    Unconfirmed {
        host: String,
        command: &'static str,
        state: PowerState,
    },
    #[error("{host}: protocol error: {detail}")]
    Protocol { host: String, detail: String },
}

impl From<IpmiError> for DeviceError {
    fn from(error: IpmiError) -> DeviceError {
        let text = error.to_string();
        match error {
            IpmiError::Config(_) => DeviceError::Failed(text),
            IpmiError::UsernameInvalid { .. }
            | IpmiError::PasswordInvalid { .. }
            | IpmiError::KgInvalid { .. } => DeviceError::Auth(text),
            IpmiError::PrivilegeUnavailable { .. } => DeviceError::Refused(text),
            IpmiError::CipherSuiteUnavailable { .. }
            | IpmiError::AuthTypeUnavailable { .. }
            | IpmiError::UnauthenticatedReplies { .. } => DeviceError::Unsupported(text),
            IpmiError::NoAnswer { host, phase } => match phase {
                Phase::OpenSession | Phase::AuthCaps => DeviceError::NoAnswer {
                    endpoint: host,
                    detail: phase.to_string(),
                },
                _ => DeviceError::TimedOut(text),
            },
            IpmiError::Busy { .. } => DeviceError::Busy(text),
            IpmiError::NotInPresentState { .. } => DeviceError::Refused(text),
            IpmiError::Completion { code: 0xd4, .. } => DeviceError::Refused(text),
            IpmiError::Completion { code: 0xc1, .. } | IpmiError::Completion { code: 0xd6, .. } => {
                DeviceError::Unsupported(text)
            }
            IpmiError::Completion { .. } | IpmiError::Unconfirmed { .. } => {
                DeviceError::Failed(text)
            }
            IpmiError::Protocol { .. } => DeviceError::Protocol(text),
        }
    }
}

/// The meaning of an IPMI completion code (IPMI v2.0 §5.2, table 5-2), for messages.
pub fn completion_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0xc0 => "node busy",
        0xc1 => "invalid command (unsupported by this BMC)",
        0xc2 => "command invalid for this LUN",
        0xc3 => "time-out while processing",
        0xc4 => "out of space",
        0xc5 => "reservation cancelled",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return the requested number of bytes",
        0xcb => "requested sensor, data or record not present",
        0xcc => "invalid data field in request (the BMC does not take this command or value; ipmi_sim answers it for power commands without a chassis_control program, and always for diag)",
        0xcd => "command illegal for this sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialisation in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "not supported in the present state",
        0xd6 => "sub-function disabled or unavailable",
        0xff => "unspecified error",
        0x81 => "requested privilege level not available for this user",
        0x82 => "requested privilege level exceeds the channel or user limit",
        0x83 => "cannot disable user-level authentication",
        0x87 => "invalid session ID",
        _ => "unknown completion code",
    }
}

/// The meaning of an RMCP+ status code (Open Session, RAKP 2, RAKP 4; IPMI v2.0 §13.24).
pub fn rmcp_status_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status code",
    }
}
