//! What a check found: per path, per multipath unit (a dm map, a PowerPath pseudo
//! device, a lone SCSI disk), per named device; the verdict rule (`storage.md` §1.6:
//! failed only below `min_paths`, degraded below the expected count), the one-line
//! summary, and the mapping onto core's `DeviceHealth` and Nagios exit codes.

use fencekit_core::storage::{DeviceHealth, PathReport, Verdict};
use fencekit_core::DeviceError;
use serde::Serialize;

use crate::sysfs::ScsiPath;

/// A verdict, with "unknown" for a check that could not see the paths (a tool that
/// hung or is missing): that is not a dead SAN. Ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unknown,
    Failed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unknown => "unknown",
            Status::Failed => "failed",
        }
    }

    /// Nagios plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn nagios_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Failed => 2,
            Status::Unknown => 3,
        }
    }
}

/// The worst status of several devices (failed over unknown over degraded).
pub fn overall(reports: &[DeviceReport]) -> Status {
    reports
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(Status::Unknown)
}

/// Which layer counted the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// FC transport and SCSI state in sysfs only.
    Fc,
    /// dm-multipath (`dmsetup status`, multipathd when it answers).
    Multipath,
    /// EMC PowerPath (`powermt`).
    PowerPath,
}

/// One path as the check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathState {
    /// `sdc`, or `8:144` when the disk is gone, or `path (HBA 4)`.
    pub name: String,
    pub usable: bool,
    /// Usable, but carries no I/O until failover (PowerPath `standby`, multipath `ghost`).
    pub standby: bool,
    /// Usable but flaky (rport `Marginal`, checker `delayed`).
    pub marginal: bool,
    /// Everything wrong with it, most significant first.
    pub reasons: Vec<String>,
    /// The FC/SCSI view of the path, when sysfs has one.
    pub scsi: Option<ScsiPath>,
}

impl PathState {
    /// The reason that goes into the summary.
    pub fn cause(&self) -> Option<&str> {
        self.reasons.first().map(String::as_str)
    }
}

/// One unit that has paths: a dm-multipath map, a PowerPath pseudo device or a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitReport {
    /// `mpatha`, `emcpowerc`, `sdc`.
    pub name: String,
    /// Kernel name (`dm-3`).
    pub kernel: String,
    pub wwid: Option<String>,
    pub layer: Layer,
    pub status: Status,
    pub usable: usize,
    /// Paths the layer lists.
    pub total: usize,
    /// Paths there should be (configured, else `total`).
    pub expected: usize,
    pub paths: Vec<PathState>,
    /// Why the unit is not healthy (distinct, most significant first).
    pub causes: Vec<String>,
    /// Facts worth logging that do not change the verdict.
    pub notes: Vec<String>,
    /// dm-multipath only: whether I/O queues with no path left.
    pub queue_if_no_path: Option<bool>,
}

impl UnitReport {
    /// A unit whose paths could not be read.
    pub fn unknown(name: &str, kernel: &str, layer: Layer, why: String) -> UnitReport {
        UnitReport {
            name: name.to_string(),
            kernel: kernel.to_string(),
            wwid: None,
            layer,
            status: Status::Unknown,
            usable: 0,
            total: 0,
            expected: 0,
            paths: Vec::new(),
            causes: vec![why],
            notes: Vec::new(),
            queue_if_no_path: None,
        }
    }

    /// Applies the verdict rule. `dead` forces failure (PowerPath `state=dead`);
    /// `extra` are unit-level causes to list after the per-path ones.
    pub fn judge(
        &mut self,
        min_paths: usize,
        expected: Option<usize>,
        dead: Option<String>,
        extra: Vec<String>,
    ) {
        self.total = self.paths.len();
        self.usable = self.paths.iter().filter(|p| p.usable).count();
        self.expected = expected.unwrap_or(self.total);
        let forced_dead = dead.is_some();
        let mut causes: Vec<String> = Vec::new();
        let mut add = |c: String| {
            if !causes.contains(&c) {
                causes.push(c);
            }
        };
        if let Some(dead) = dead {
            add(dead);
        }
        for p in &self.paths {
            if !p.usable || p.marginal {
                if let Some(c) = p.cause() {
                    add(c.to_string());
                }
            }
        }
        if self.total < self.expected {
            let missing = self.expected - self.total;
            add(format!(
                "{missing} expected path{} not seen",
                if missing == 1 { "" } else { "s" }
            ));
        } else if self.total > self.expected {
            self.notes.push(format!(
                "{} paths seen, {} expected",
                self.total, self.expected
            ));
        }
        for c in extra {
            add(c);
        }
        self.status = if forced_dead || self.usable < min_paths {
            Status::Failed
        } else if self.usable < self.expected || self.paths.iter().any(|p| p.marginal) {
            Status::Degraded
        } else {
            Status::Healthy
        };
        self.causes = causes;
    }

    /// `0 of 4 paths to mpatha left: HBA host3 Linkdown; host4 rport-4:0-2 Blocked`.
    pub fn summary(&self) -> String {
        let standby = self.paths.iter().filter(|p| p.usable && p.standby).count();
        let standby = if standby > 0 {
            format!(" ({standby} standby)")
        } else {
            String::new()
        };
        match self.status {
            Status::Unknown => format!("{}: {}", self.name, self.causes.join("; ")),
            Status::Healthy => format!(
                "all {} path{} to {} usable{standby}",
                self.usable,
                if self.usable == 1 { "" } else { "s" },
                self.name
            ),
            _ => {
                let mut s = format!(
                    "{} of {} paths to {} left{standby}",
                    self.usable,
                    self.expected.max(self.total),
                    self.name
                );
                if !self.causes.is_empty() {
                    s.push_str(": ");
                    s.push_str(&self.causes.join("; "));
                }
                s
            }
        }
    }
}

/// The verdict on one device as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    /// As named (`/srv/pvfs`, `-L label1`, `/dev/mapper/mpatha`).
    pub device: String,
    /// Kernel block device it resolved to (`dm-4`, `sdc1`).
    pub resolved: Option<String>,
    pub status: Status,
    pub units: Vec<UnitReport>,
    /// Device-level findings that change the verdict (resolution, read probe).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl DeviceReport {
    pub fn unknown(device: &str, why: String) -> DeviceReport {
        DeviceReport {
            device: device.to_string(),
            resolved: None,
            status: Status::Unknown,
            units: Vec::new(),
            problems: vec![why],
            notes: Vec::new(),
        }
    }

    /// Every unit's summary, then the device-level problems, joined by ` | `.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.units.iter().map(UnitReport::summary).collect();
        parts.extend(self.problems.iter().cloned());
        if parts.is_empty() {
            return format!("{}: {}", self.device, self.status.word());
        }
        parts.join(" | ")
    }

    pub fn usable_paths(&self) -> usize {
        self.units.iter().map(|u| u.usable).sum()
    }

    /// core's view of this report.
    pub fn to_health(&self) -> Result<DeviceHealth, DeviceError> {
        let reasons = || {
            let mut r: Vec<String> = self
                .units
                .iter()
                .filter(|u| u.status != Status::Healthy)
                .map(UnitReport::summary)
                .collect();
            r.extend(self.problems.iter().cloned());
            r
        };
        let verdict = match self.status {
            Status::Healthy => Verdict::Healthy,
            Status::Degraded => Verdict::Degraded { reasons: reasons() },
            Status::Failed => Verdict::Failed { reasons: reasons() },
            Status::Unknown => Verdict::Unknown { reasons: reasons() },
        };
        let paths = self
            .units
            .iter()
            .flat_map(|u| u.paths.iter())
            .map(|p| PathReport {
                path: p.name.clone(),
                usable: p.usable,
                reason: p.cause().map(str::to_string),
            })
            .collect();
        Ok(DeviceHealth {
            device: self.device.clone(),
            verdict,
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str, usable: bool, cause: Option<&str>) -> PathState {
        PathState {
            name: name.into(),
            usable,
            standby: false,
            marginal: false,
            reasons: cause.map(|c| vec![c.to_string()]).unwrap_or_default(),
            scsi: None,
        }
    }

    fn unit(paths: Vec<PathState>) -> UnitReport {
        let mut u = UnitReport::unknown("mpatha", "dm-3", Layer::Multipath, String::new());
        u.causes.clear();
        u.status = Status::Healthy;
        u.paths = paths;
        u
    }

    #[test]
    fn one_hba_down_of_two_is_degraded_not_failed() {
        let mut u = unit(vec![
            path("sdc", true, None),
            path("sdk", false, Some("HBA host4 Linkdown")),
        ]);
        u.judge(1, None, None, vec![]);
        assert_eq!(u.status, Status::Degraded);
        assert_eq!(
            u.summary(),
            "1 of 2 paths to mpatha left: HBA host4 Linkdown"
        );
    }

    #[test]
    fn below_min_paths_is_failed_and_causes_are_deduplicated() {
        let mut u = unit(vec![
            path("sdc", false, Some("HBA host3 Linkdown")),
            path("sdd", false, Some("HBA host3 Linkdown")),
            path("sdk", false, Some("host4 rport-4:0-2 Blocked")),
            path("sdl", false, Some("host4 rport-4:0-2 Blocked")),
        ]);
        u.judge(1, None, None, vec![]);
        assert_eq!(u.status, Status::Failed);
        assert_eq!(
            u.summary(),
            "0 of 4 paths to mpatha left: HBA host3 Linkdown; host4 rport-4:0-2 Blocked"
        );
    }

    #[test]
    fn fewer_paths_than_expected_is_degraded_even_if_all_seen_are_fine() {
        let mut u = unit(vec![path("sdc", true, None)]);
        u.judge(1, Some(2), None, vec![]);
        assert_eq!(u.status, Status::Degraded);
        assert_eq!(
            u.summary(),
            "1 of 2 paths to mpatha left: 1 expected path not seen"
        );
    }

    #[test]
    fn a_min_paths_of_two_fails_a_device_with_one_path_left() {
        let mut u = unit(vec![
            path("sdc", true, None),
            path("sdk", false, Some("sdk offline")),
        ]);
        u.judge(2, None, None, vec![]);
        assert_eq!(u.status, Status::Failed);
    }

    #[test]
    fn unknown_becomes_core_s_unknown_verdict_and_code_3_for_nagios() {
        let r = DeviceReport::unknown(
            "/dev/emcpowera",
            "powermt did not answer within 0.3 s".into(),
        );
        let health = r.to_health().unwrap();
        assert_eq!(
            health.verdict,
            Verdict::Unknown {
                reasons: vec!["powermt did not answer within 0.3 s".into()]
            }
        );
        assert_eq!(r.status.nagios_code(), 3);
        assert_eq!(overall(&[r]), Status::Unknown);
    }
}
