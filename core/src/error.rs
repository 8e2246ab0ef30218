//! Errors: what a device said went wrong ([`DeviceError`]), and what went wrong with a
//! fence, naming the device, the plug and the operation ([`FenceError`]).

use std::time::Duration;

use thiserror::Error;

use crate::power::{PowerState, TargetPlug};

/// What a device (or the way to it) did wrong. Messages say what failed and, where
/// we know it, what to check. They never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeviceError {
    /// Nothing answered by the deadline.
    #[error("no answer from {endpoint}: {detail}")]
    NoAnswer { endpoint: String, detail: String },
    /// The device answered, then stopped before the operation ended.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// The device refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The credentials work but may not do this (read-only community, user privilege).
    #[error("refused: {0}")]
    Refused(String),
    /// The plug does not exist on the device.
    #[error("unknown plug {plug}; the device has: {known}")]
    UnknownPlug { plug: String, known: String },
    /// The plug text fits more than one outlet; switching one of them could leave
    /// the node powered by the other.
    #[error(
        "plug {plug} is ambiguous: these all match it: {outlets}; give the number of one in \
         the unit:outlet form (1:N on a device of one unit; 1:ifIndex on a switch), \
         which names that number only, or a name no other has"
    )]
    AmbiguousPlug { plug: String, outlets: String },
    /// The device does not offer this operation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The device is busy (sessions exhausted, another console session open).
    #[error("device busy: {0}")]
    Busy(String),
    /// The device answered something we cannot use.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Anything else the device reported.
    #[error("{0}")]
    Failed(String),
}

impl DeviceError {
    /// Whether this error means time ran out (front ends word these as "timed out",
    /// which Pacemaker maps to ETIME).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            DeviceError::NoAnswer { .. } | DeviceError::TimedOut(_)
        )
    }
}

/// What went wrong with one plug of a fence.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FenceError {
    /// The device reported an error for an operation on a plug.
    #[error("{operation} {target}: {cause}")]
    Device {
        target: TargetPlug,
        operation: &'static str,
        cause: DeviceError,
    },
    /// The device accepted the command but the plug did not reach the wanted state.
    #[error(
        "{target} still {state} {:.1} s after {action} was accepted",
        elapsed.as_secs_f64()
    )]
    NotConfirmed {
        target: TargetPlug,
        action: &'static str,
        state: PowerState,
        elapsed: Duration,
    },
    /// The device accepted the command, but no read of the plug succeeded before
    /// time ran out; `cause` is the last read error that was not itself the
    /// deadline (it says why better than a last read the deadline cut short).
    #[error(
        "{target}: not read after {action} was accepted, for {:.1} s; the reads failed: {cause}",
        elapsed.as_secs_f64()
    )]
    Unread {
        target: TargetPlug,
        action: &'static str,
        cause: DeviceError,
        elapsed: Duration,
    },
    /// The device accepted its own power cycle, but the plug was never read off
    /// afterwards: nothing shows the node lost power.
    #[error(
        "{target}: cycle accepted but power never read off within {:.1} s; the node may not have lost power",
        waited.as_secs_f64()
    )]
    CycleNotSeenOff {
        target: TargetPlug,
        waited: Duration,
    },
    /// A plug confirmed off read otherwise again before the node's other plugs were
    /// all confirmed: something switched it back on meanwhile.
    #[error(
        "{target} read {state} again after it was confirmed off, before every plug of the node was: something switched it back"
    )]
    CameBack {
        target: TargetPlug,
        state: PowerState,
    },
    /// A plug confirmed on read otherwise once every plug was: something switched it
    /// off again.
    #[error(
        "{target} read {state} again after it was confirmed on, before every plug of the node was: something switched it off"
    )]
    WentOff {
        target: TargetPlug,
        state: PowerState,
    },
    /// A device call did not return by the operation's deadline.
    #[error(
        "{operation} {target}: timed out, no answer within {:.1} s",
        waited.as_secs_f64()
    )]
    Deadline {
        target: TargetPlug,
        operation: &'static str,
        waited: Duration,
    },
    /// The plug names a device that is not configured.
    #[error("{target}: no device named {}", target.device)]
    UnknownDevice { target: TargetPlug },
    /// A later phase was not started because an earlier one failed.
    #[error("{target}: not switched {action}, because {reason}")]
    Skipped {
        target: TargetPlug,
        action: &'static str,
        reason: String,
    },
}

impl FenceError {
    pub fn target(&self) -> &TargetPlug {
        match self {
            FenceError::Device { target, .. }
            | FenceError::NotConfirmed { target, .. }
            | FenceError::Unread { target, .. }
            | FenceError::CycleNotSeenOff { target, .. }
            | FenceError::CameBack { target, .. }
            | FenceError::WentOff { target, .. }
            | FenceError::Deadline { target, .. }
            | FenceError::UnknownDevice { target }
            | FenceError::Skipped { target, .. } => target,
        }
    }

    /// Whether this error means time ran out.
    pub fn is_timeout(&self) -> bool {
        match self {
            FenceError::Deadline { .. }
            | FenceError::NotConfirmed { .. }
            | FenceError::Unread { .. }
            | FenceError::CycleNotSeenOff { .. } => true,
            FenceError::Device { cause, .. } => cause.is_timeout(),
            _ => false,
        }
    }
}
