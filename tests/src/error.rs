//! The one error type of the harness: what failed (which peer, which step) and why,
//! with the daemon's log tail when a daemon is involved, so a failing end-to-end test
//! explains itself without rerunning it by hand.

use std::path::PathBuf;
use std::time::Duration;

/// Why starting, probing or driving a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file or process operation of the harness itself failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// The peer program is not installed (tests normally ask `peers::require` first).
    #[error("peer {program} is not installed (apt-get install {package})")]
    PeerMissing { program: String, package: String },

    /// The launcher needs root (sshd, local test users) and the process is not root.
    #[error("{what} needs root")]
    NotRoot { what: String },

    /// The daemon exited before it answered its readiness probe.
    #[error("{name} exited during start-up ({status}); log tail:\n{log_tail}")]
    Exited {
        name: String,
        status: String,
        log_tail: String,
    },

    /// The daemon kept running but did not answer its readiness probe in time.
    #[error(
        "{name} did not answer within {waited:?} (last probe: {last_probe}); log tail:\n{log_tail}"
    )]
    NotReady {
        name: String,
        waited: Duration,
        last_probe: String,
        log_tail: String,
    },

    /// A short-lived tool (ssh-keygen, useradd, ipmitool, ...) failed.
    #[error("{program} failed ({status}): {output}")]
    Tool {
        program: String,
        status: String,
        output: String,
    },

    /// A short-lived tool did not finish by its deadline and was killed.
    #[error("{program} did not finish within {waited:?} and was killed")]
    ToolTimedOut { program: String, waited: Duration },

    /// A value cannot be written into a peer's configuration file safely.
    #[error("cannot use {what} in a {peer} configuration: {why}")]
    BadConfigValue {
        peer: String,
        what: String,
        why: String,
    },

    /// A launcher or guard would have to touch something that is not its own (a
    /// cluster already running, a file it did not create).
    #[error("refusing to {what}: {why}")]
    Refused { what: String, why: String },

    /// A state file kept by a simulated device holds something unexpected.
    #[error("state file {path} holds {content:?}")]
    BadState { path: PathBuf, content: String },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }

    /// True when the daemon failed because its port was taken between
    /// `ports::free_*_port` and its bind: the launchers then retry on a new port.
    pub fn is_address_in_use(&self) -> bool {
        match self {
            HarnessError::Exited { log_tail, .. } => {
                let log = log_tail.to_ascii_lowercase();
                // ipmi_sim and sshd name the errno; snmpd only says it could not open
                // the endpoint, which on a loopback address means the port was taken.
                log.contains("address already in use")
                    || log.contains("cannot bind")
                    || log.contains("error opening specified endpoint")
            }
            _ => false,
        }
    }
}
