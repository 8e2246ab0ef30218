//! What can go wrong in a console dialogue. Every message names the device and what
//! the dialogue was doing; "last received" text is plain, escaped, shortened and
//! has every known secret masked.

use std::time::Duration;

use fencekit_core::DeviceError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsoleError {
    /// The device closed the session (or the stream failed) mid-dialogue. Worded
    /// as fence-agents' `EC_CONNECTION_LOST` ("Connection lost").
    #[error("Connection lost to {device} while {activity} ({cause}); last received: {last_seen}")]
    ConnectionLost {
        device: String,
        activity: String,
        cause: String,
        last_seen: String,
    },
    /// The operation's deadline passed first.
    #[error(
        "{device}: timed out after {:.1} s while {activity}; last received: {last_seen}",
        waited.as_secs_f64()
    )]
    TimedOut {
        device: String,
        activity: String,
        waited: Duration,
        last_seen: String,
    },
    /// The device answered, but not as the dialogue allows (a confirmation asked
    /// again and again).
    #[error("{device}: {what}; last received: {last_seen}")]
    Unexpected {
        device: String,
        what: String,
        last_seen: String,
    },
    /// A line to send holds a control character (CR, LF, ESC, ...), which could
    /// drive the menu somewhere else: refused, nothing sent.
    #[error("{device}: refusing to send {what}: it contains a control character")]
    Unsendable { device: String, what: String },
    /// Writing to the stream failed for another reason.
    #[error("{device}: {operation} failed: {cause}")]
    Io {
        device: String,
        operation: &'static str,
        cause: String,
    },
}

impl ConsoleError {
    /// Whether time ran out (front ends report these as "timed out").
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConsoleError::TimedOut { .. })
    }
}

impl From<ConsoleError> for DeviceError {
    fn from(e: ConsoleError) -> DeviceError {
        let message = e.to_string();
        match e {
            ConsoleError::TimedOut { .. } => DeviceError::TimedOut(message),
            ConsoleError::Unexpected { .. } => DeviceError::Protocol(message),
            ConsoleError::ConnectionLost { .. }
            | ConsoleError::Unsendable { .. }
            | ConsoleError::Io { .. } => DeviceError::Failed(message),
        }
    }
}
