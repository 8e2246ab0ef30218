//! The `StorageHealth` trait: a verdict on the paths to shared storage, read from
//! path *state* so that a check never hangs on a device with no path left.

use std::fmt;

use async_trait::async_trait;

use crate::error::DeviceError;
use crate::Instant;

/// A verdict on one storage device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every expected path is usable.
    Healthy,
    /// Fewer usable paths than expected, but at least the minimum.
    Degraded { reasons: Vec<String> },
    /// Fewer usable paths than the minimum: the device cannot be trusted.
    Failed { reasons: Vec<String> },
    /// The check could not see the paths (a tool hung or is missing, the device
    /// could not be resolved): not evidence of a dead SAN, nor of a healthy one.
    Unknown { reasons: Vec<String> },
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded { .. } => "degraded",
            Verdict::Failed { .. } => "failed",
            Verdict::Unknown { .. } => "unknown",
        }
    }

    pub fn reasons(&self) -> &[String] {
        match self {
            Verdict::Healthy => &[],
            Verdict::Degraded { reasons }
            | Verdict::Failed { reasons }
            | Verdict::Unknown { reasons } => reasons,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())?;
        let reasons = self.reasons();
        if !reasons.is_empty() {
            write!(f, ": {}", reasons.join("; "))?;
        }
        Ok(())
    }
}

/// One path to a device, as the check saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReport {
    /// The path's name (`sdc`, `8:32`, `host3 rport-3:0-1`).
    pub path: String,
    pub usable: bool,
    /// What is wrong with it, when it is not usable.
    pub reason: Option<String>,
}

/// The verdict on one device with its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHealth {
    /// The device as the user named it.
    pub device: String,
    pub verdict: Verdict,
    pub paths: Vec<PathReport>,
}

impl DeviceHealth {
    pub fn usable_paths(&self) -> usize {
        self.paths.iter().filter(|p| p.usable).count()
    }
}

/// A storage path check (FC sysfs, dm-multipath, PowerPath).
#[async_trait]
pub trait StorageHealth: Send + Sync {
    /// Gives a verdict for each device, by the deadline.
    async fn check(
        &self,
        devices: &[String],
        deadline: Instant,
    ) -> Result<Vec<DeviceHealth>, DeviceError>;
}
