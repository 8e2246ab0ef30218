//! The check itself: configuration, the backend choice, and [`SanCheck`], which
//! resolves each named device, finds the units under it (dm-multipath maps through
//! LVM/kpartx, PowerPath pseudo devices, lone SCSI disks), reads their paths, judges
//! them and optionally probes the device, all by one deadline.
//!
//! Time: external commands get the deadline less a small margin (a tenth of the
//! time, at most 250 ms) so that their own "did not answer" reason reaches the
//! report; multipathd, which is optional and can stall behind a synchronous checker,
//! gets at most half of the time left. Devices are checked in parallel, each on its
//! own thread, so one hung `powermt` cannot starve another device. Whatever has not
//! answered by the deadline is reported "unknown"; nothing waits past it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fencekit_core::storage::{DeviceHealth, StorageHealth};
use fencekit_core::DeviceError;
use serde::Serialize;

use crate::command::{BoundedCommand, DEFAULT_OUTPUT_LIMIT};
use crate::multipath::{self, CheckerRow, CheckerVerdict, MULTIPATHD_FORMAT};
use crate::powermt;
use crate::probe::{ProbeOutcome, ProbeRegistry};
use crate::report::{DeviceReport, Layer, PathState, Status, UnitReport};
use crate::resolve::resolve;
use crate::sysfs::{DmInfo, Sysfs};

/// Which layer counts the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// dm-multipath maps through `dmsetup`, `emcpowerX` through `powermt`, lone
    /// SCSI disks through FC sysfs.
    Auto,
    /// sysfs only: no command is run. A map's paths are its `slaves/`; a path whose
    /// disk was removed (after `dev_loss_tmo`) is then invisible, so set
    /// `expected_paths`.
    Fc,
    /// dm-multipath (`dmsetup status`, multipathd when it answers).
    Multipath,
    /// EMC PowerPath (`powermt display dev=NAME`).
    PowerPath,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "fc" => Ok(Backend::Fc),
            "multipath" | "dm" | "dm-multipath" => Ok(Backend::Multipath),
            "powerpath" | "powermt" => Ok(Backend::PowerPath),
            other => Err(format!(
                "unknown backend {other:?}: expected auto, fc, multipath or powerpath"
            )),
        }
    }
}

/// How to check. `Default` gives the system's own paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanConfig {
    pub backend: Backend,
    /// The directory that stands for `/`: sysfs is `root/sys`, mountinfo
    /// `root/proc/self/mountinfo`, udev links `root/dev/disk/by-*`, `root/dev/mapper`.
    /// The read probe opens `root/dev/NAME`.
    pub root: PathBuf,
    pub powermt: PathBuf,
    pub multipathd: PathBuf,
    pub dmsetup: PathBuf,
    /// The probe's reader (GNU coreutils or BusyBox `dd`).
    pub dd: PathBuf,
    /// Fewer usable paths than this: failed. Default 1.
    pub min_paths: usize,
    /// Paths each unit should have; `None`: as many as the layer lists.
    pub expected_paths: Option<usize>,
    /// Time for a whole check when the caller gives no deadline.
    pub timeout: Duration,
    /// Run the read probe on each device whose paths are not already failed.
    pub probe: bool,
    /// Where stuck probes are recorded for later processes; `None`: this process only.
    pub run_dir: Option<PathBuf>,
    /// Cap on kept stdout/stderr per command.
    pub output_limit: usize,
}

impl Default for SanConfig {
    fn default() -> SanConfig {
        SanConfig {
            backend: Backend::Auto,
            root: PathBuf::from("/"),
            powermt: PathBuf::from("/sbin/powermt"),
            multipathd: PathBuf::from("/sbin/multipathd"),
            dmsetup: PathBuf::from("/sbin/dmsetup"),
            dd: PathBuf::from("/bin/dd"),
            min_paths: 1,
            expected_paths: None,
            timeout: Duration::from_secs(10),
            probe: false,
            run_dir: Some(PathBuf::from("/run/fencekit")),
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}

/// What sits under a device and has paths.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    Map(DmInfo),
    PowerPath(String),
    Disk(String),
    /// Not a SAN device we can see paths of, with why.
    Opaque(String, String),
}

impl Unit {
    fn kernel(&self) -> &str {
        match self {
            Unit::Map(dm) => &dm.dm,
            Unit::PowerPath(n) | Unit::Disk(n) | Unit::Opaque(n, _) => n,
        }
    }
}

/// A named device resolved to its kernel name and the units under it, or why not.
type Plan = Result<(String, Vec<Unit>), String>;

/// The SAN path check; implements `StorageHealth`.
#[derive(Debug, Clone)]
pub struct SanCheck {
    config: Arc<SanConfig>,
    probes: Arc<ProbeRegistry>,
}

impl SanCheck {
    pub fn new(config: SanConfig) -> SanCheck {
        let probes = ProbeRegistry::new(config.run_dir.clone());
        SanCheck {
            config: Arc::new(config),
            probes,
        }
    }

    pub fn config(&self) -> &SanConfig {
        &self.config
    }

    /// Checks every device by `deadline`; a device not done by then is "unknown".
    pub async fn run(
        &self,
        devices: &[String],
        deadline: fencekit_core::Instant,
    ) -> Vec<DeviceReport> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let names = devices.to_vec();
        let std_deadline = deadline.into_std();
        std::thread::spawn(move || {
            let _ = tx.send(this.run_blocking(&names, std_deadline));
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reports)) => reports,
            _ => devices
                .iter()
                .map(|d| DeviceReport::unknown(d, format!("check of {d} did not finish in time")))
                .collect(),
        }
    }

    /// [`SanCheck::run`] with `config.timeout` from now.
    pub async fn run_for_timeout(&self, devices: &[String]) -> Vec<DeviceReport> {
        let deadline = fencekit_core::Instant::now() + self.config.timeout;
        self.run(devices, deadline).await
    }

    /// The same check without an async runtime; returns by `deadline`.
    pub fn run_blocking(&self, devices: &[String], deadline: Instant) -> Vec<DeviceReport> {
        let start = Instant::now();
        let total = deadline.saturating_duration_since(start);
        let margin = (total / 10).min(Duration::from_millis(250));
        let commands_by = deadline.checked_sub(margin).unwrap_or(deadline);
        let collect_by = deadline.checked_sub(margin / 2).unwrap_or(deadline);
        let sysfs = Sysfs::new(&self.config.root);

        let plans: Vec<(String, Plan)> = devices
            .iter()
            .map(|d| (d.clone(), plan(&sysfs, d)))
            .collect();

        let wants_checker = matches!(self.config.backend, Backend::Auto | Backend::Multipath)
            && plans.iter().any(|(_, p)| {
                p.as_ref()
                    .is_ok_and(|(_, units)| units.iter().any(|u| matches!(u, Unit::Map(_))))
            });
        let checker = Arc::new(if wants_checker {
            let half = start + commands_by.saturating_duration_since(start) / 2;
            self.checker_rows(half)
        } else {
            Ok(HashMap::new())
        });

        let mut pending = Vec::new();
        for (named, plan) in plans {
            let (tx, rx) = mpsc::channel();
            let this = self.clone();
            let checker = Arc::clone(&checker);
            let name_for_thread = named.clone();
            std::thread::spawn(move || {
                let report = this.examine(&name_for_thread, plan, &checker, commands_by);
                let _ = tx.send(report);
            });
            pending.push((named, rx));
        }
        let waited = format!("{:.1} s", total.as_secs_f64());
        pending
            .into_iter()
            .map(|(named, rx)| {
                rx.recv_timeout(collect_by.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|_| {
                        DeviceReport::unknown(
                            &named,
                            format!("check of {named} did not finish within {waited}"),
                        )
                    })
            })
            .collect()
    }

    fn checker_rows(&self, by: Instant) -> Result<HashMap<String, CheckerRow>, String> {
        if !self.config.multipathd.exists() {
            return Err(format!(
                "multipathd not found at {}",
                self.config.multipathd.display()
            ));
        }
        let mut cmd = BoundedCommand::new(
            "multipathd",
            &self.config.multipathd,
            ["show", "paths", "raw", "format", MULTIPATHD_FORMAT],
        );
        cmd.output_limit = self.config.output_limit;
        match cmd.run_by(by) {
            Ok(out) if out.status.success() => {
                Ok(multipath::parse_checker_rows(&out.stdout_text()))
            }
            Ok(out) => Err(format!("multipathd refused: {}", out.first_complaint())),
            Err(e) => Err(e.to_string()),
        }
    }

    fn examine(
        &self,
        named: &str,
        plan: Plan,
        checker: &Result<HashMap<String, CheckerRow>, String>,
        by: Instant,
    ) -> DeviceReport {
        let (resolved, units) = match plan {
            Ok(p) => p,
            Err(why) => return DeviceReport::unknown(named, why),
        };
        let sysfs = Sysfs::new(&self.config.root);
        let units: Vec<UnitReport> = units
            .iter()
            .map(|u| self.unit_report(&sysfs, u, checker, by))
            .collect();
        let mut report = DeviceReport {
            device: named.to_string(),
            resolved: Some(resolved.clone()),
            status: units
                .iter()
                .map(|u| u.status)
                .max()
                .unwrap_or(Status::Unknown),
            units,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        if self.config.probe {
            self.probe_into(&mut report, &resolved, by);
        }
        report
    }

    fn probe_into(&self, report: &mut DeviceReport, resolved: &str, by: Instant) {
        let device = format!("/dev/{resolved}");
        // With no usable path the read could only hang (queue_if_no_path) and leave
        // a child in D state; the verdict is already known.
        if matches!(report.status, Status::Failed | Status::Unknown) {
            report.notes.push(format!(
                "read probe of {device} not run: the paths already decide"
            ));
            return;
        }
        let path = self.config.root.join("dev").join(resolved);
        let outcome = self.probes.probe(&self.config.dd, resolved, &path, by);
        match &outcome {
            ProbeOutcome::Read => report.notes.push(format!("read probe of {device} ok")),
            ProbeOutcome::Running { since } => report.notes.push(format!(
                "read probe of {device} started at {} still running; none started",
                crate::probe::utc(*since)
            )),
            ProbeOutcome::Unavailable(why) => {
                report
                    .problems
                    .push(format!("read probe of {device} not run: {why}"));
                report.status = report.status.max(Status::Unknown);
            }
            _ => {}
        }
        if let Some(failure) = outcome.failure(&device) {
            report.problems.push(failure);
            report.status = Status::Failed;
        }
    }

    fn unit_report(
        &self,
        sysfs: &Sysfs,
        unit: &Unit,
        checker: &Result<HashMap<String, CheckerRow>, String>,
        by: Instant,
    ) -> UnitReport {
        let cfg = &self.config;
        match (unit, cfg.backend) {
            (Unit::Opaque(name, why), _) => UnitReport::unknown(name, name, Layer::Fc, why.clone()),
            (Unit::Map(dm), Backend::Fc) => self.map_from_sysfs(sysfs, dm),
            (Unit::Map(dm), Backend::Auto | Backend::Multipath) => {
                self.map_from_dmsetup(sysfs, dm, checker, by)
            }
            (Unit::Map(dm), Backend::PowerPath) => UnitReport::unknown(
                dm.label(),
                &dm.dm,
                Layer::PowerPath,
                format!(
                    "{} is a dm-multipath map; backend powerpath cannot check it",
                    dm.label()
                ),
            ),
            (Unit::PowerPath(name), Backend::Auto | Backend::PowerPath) => {
                self.powerpath(sysfs, name, by)
            }
            (Unit::PowerPath(name), _) => UnitReport::unknown(
                name,
                name,
                Layer::PowerPath,
                format!("{name} is a PowerPath device; use backend powerpath or auto"),
            ),
            (Unit::Disk(disk), _) => {
                let mut u = empty_unit(disk, disk, Layer::Fc);
                u.paths.push(scsi_path_state(sysfs, disk));
                u.judge(cfg.min_paths, cfg.expected_paths, None, Vec::new());
                u
            }
        }
    }

    fn map_from_sysfs(&self, sysfs: &Sysfs, dm: &DmInfo) -> UnitReport {
        let mut u = empty_unit(dm.label(), &dm.dm, Layer::Fc);
        u.wwid = dm.wwid().map(str::to_string);
        u.paths = dm
            .slaves
            .iter()
            .map(|s| scsi_path_state(sysfs, s))
            .collect();
        u.notes
            .push("path states from sysfs only (backend fc)".to_string());
        u.judge(
            self.config.min_paths,
            self.config.expected_paths,
            None,
            Vec::new(),
        );
        u
    }

    fn map_from_dmsetup(
        &self,
        sysfs: &Sysfs,
        dm: &DmInfo,
        checker: &Result<HashMap<String, CheckerRow>, String>,
        by: Instant,
    ) -> UnitReport {
        let cfg = &self.config;
        let target: Vec<String> = match (&dm.name, &dm.uuid) {
            (Some(name), _) => vec![name.clone()],
            (None, Some(uuid)) => vec!["-u".into(), uuid.clone()],
            (None, None) => vec![dm.dm.clone()],
        };
        let run = |verb: &str| {
            let mut args = vec![verb.to_string()];
            args.extend(target.iter().cloned());
            let mut cmd = BoundedCommand::new("dmsetup", &cfg.dmsetup, args);
            cmd.output_limit = cfg.output_limit;
            cmd.run_by(by)
        };
        let unknown = |why: String| {
            let mut u = self.map_from_sysfs(sysfs, dm);
            u.layer = Layer::Multipath;
            u.notes.retain(|n| !n.contains("backend fc"));
            u.notes
                .push("paths listed from sysfs, for information".to_string());
            u.status = Status::Unknown;
            u.causes = vec![why];
            u
        };
        let status = match run("status") {
            Ok(out) if out.status.success() => match multipath::parse_dm_status(&out.stdout_text())
            {
                Ok(s) => s,
                Err(e) => {
                    return unknown(format!("cannot read dmsetup status of {}: {e}", dm.label()))
                }
            },
            Ok(out) => {
                return unknown(format!(
                    "dmsetup status {} failed: {}",
                    dm.label(),
                    out.first_complaint()
                ))
            }
            Err(e) => return unknown(e.to_string()),
        };

        let mut u = empty_unit(dm.label(), &dm.dm, Layer::Multipath);
        u.wwid = dm.wwid().map(str::to_string);
        let rows = match checker {
            Ok(rows) => Some(rows),
            Err(why) => {
                u.notes
                    .push(format!("{why}; kernel path flags only, no checker states"));
                None
            }
        };
        for p in &status.paths {
            let disk = sysfs.block_by_devt(&p.devt);
            let mut state = match &disk {
                Some(disk) => scsi_path_state(sysfs, disk),
                None => PathState {
                    name: p.devt.clone(),
                    usable: false,
                    standby: false,
                    marginal: false,
                    reasons: vec![format!("path {} gone from sysfs", p.devt)],
                    scsi: None,
                },
            };
            let label = state.name.clone();
            if let Some(row) = rows.and_then(|r| r.get(&p.devt)) {
                match row.checker_verdict() {
                    CheckerVerdict::Down => {
                        state.usable = false;
                        state
                            .reasons
                            .push(format!("{label} checker {}", row.checker_state));
                    }
                    CheckerVerdict::Standby => state.standby = true,
                    CheckerVerdict::Marginal => {
                        state.marginal = true;
                        state
                            .reasons
                            .push(format!("{label} checker {}", row.checker_state));
                    }
                    CheckerVerdict::NoOpinion => {}
                }
            }
            if !p.active {
                state.usable = false;
                state.reasons.push(format!(
                    "{label} failed in dm-multipath (fail count {})",
                    p.fail_count
                ));
            }
            u.paths.push(state);
        }
        let mut extra = Vec::new();
        if status.paths.is_empty() {
            extra.push(format!("{} has no paths left", dm.label()));
        }
        if status.usable() == 0 {
            if let Ok(out) = run("table") {
                u.queue_if_no_path = multipath::table_queues_if_no_path(&out.stdout_text());
            }
            if u.queue_if_no_path == Some(true) || status.queue_io {
                extra.push(format!(
                    "I/O to {} queues (queue_if_no_path): umount will hang",
                    dm.label()
                ));
            }
        }
        u.judge(cfg.min_paths, cfg.expected_paths, None, extra);
        u
    }

    fn powerpath(&self, sysfs: &Sysfs, name: &str, by: Instant) -> UnitReport {
        let cfg = &self.config;
        let mut cmd = BoundedCommand::new(
            "powermt",
            &cfg.powermt,
            ["display".to_string(), format!("dev={name}")],
        );
        cmd.output_limit = cfg.output_limit;
        let out = match cmd.run_by(by) {
            Ok(out) => out,
            Err(e) => return UnitReport::unknown(name, name, Layer::PowerPath, e.to_string()),
        };
        let devices = powermt::parse_display(&out.stdout_text());
        let Some(dev) = devices.into_iter().find(|d| d.pseudo == name) else {
            return UnitReport::unknown(
                name,
                name,
                Layer::PowerPath,
                format!("powermt does not show {name}: {}", out.first_complaint()),
            );
        };
        let mut u = empty_unit(name, name, Layer::PowerPath);
        u.wwid = dev.logical_device.clone();
        for row in &dev.paths {
            let mut state = match row.io_path.as_deref().filter(|io| sysfs.exists(io)) {
                Some(io) => scsi_path_state(sysfs, io),
                None => PathState {
                    name: row
                        .io_path
                        .clone()
                        .unwrap_or_else(|| format!("path (HBA {})", row.hba)),
                    usable: true,
                    standby: false,
                    marginal: false,
                    reasons: Vec::new(),
                    scsi: None,
                },
            };
            if !row.alive() {
                state.usable = false;
                state.reasons.push(format!("{} {}", row.label(), row.state));
            }
            match row.mode.as_str() {
                "standby" => state.standby = true,
                "unlic" => u
                    .notes
                    .push(format!("{} unlicensed (failover only)", row.label())),
                _ => {}
            }
            u.paths.push(state);
        }
        let dead = (dev.state.as_deref() == Some("dead")).then(|| format!("{name} state=dead"));
        if out.truncated {
            u.notes.push("powermt output truncated".to_string());
        }
        u.judge(cfg.min_paths, cfg.expected_paths, dead, Vec::new());
        u
    }
}

#[async_trait]
impl StorageHealth for SanCheck {
    /// core's view: one verdict per device, "unknown" where a tool hung or is missing.
    async fn check(
        &self,
        devices: &[String],
        deadline: fencekit_core::Instant,
    ) -> Result<Vec<DeviceHealth>, DeviceError> {
        self.run(devices, deadline)
            .await
            .iter()
            .map(DeviceReport::to_health)
            .collect()
    }
}

fn empty_unit(name: &str, kernel: &str, layer: Layer) -> UnitReport {
    let mut u = UnitReport::unknown(name, kernel, layer, String::new());
    u.causes.clear();
    u
}

fn scsi_path_state(sysfs: &Sysfs, disk: &str) -> PathState {
    let scsi = sysfs.scsi_path(disk);
    let a = scsi.assess();
    PathState {
        name: disk.to_string(),
        usable: a.usable,
        standby: false,
        marginal: a.marginal,
        reasons: a.causes,
        scsi: Some(scsi),
    }
}

/// Resolves a named device and lists the units under it.
fn plan(sysfs: &Sysfs, named: &str) -> Plan {
    let resolved = resolve(sysfs, named).map_err(|e| e.to_string())?;
    let whole = sysfs
        .whole_disk(&resolved)
        .unwrap_or_else(|| powerpath_base(&resolved).unwrap_or_else(|| resolved.clone()));
    let mut units = Vec::new();
    discover(sysfs, &whole, 0, &mut units);
    Ok((resolved, units))
}

/// `emcpowera1` → `emcpowera` when sysfs does not say.
fn powerpath_base(name: &str) -> Option<String> {
    let rest = name.strip_prefix("emcpower")?;
    let letters: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
    (!letters.is_empty()).then(|| format!("emcpower{letters}"))
}

/// Walks `slaves/` through LVM, kpartx and crypt to the multipath maps, PowerPath
/// devices and disks (`storage.md` §3.5).
fn discover(sysfs: &Sysfs, name: &str, depth: usize, out: &mut Vec<Unit>) {
    if out.iter().any(|u| u.kernel() == name) {
        return;
    }
    if depth > 8 {
        out.push(Unit::Opaque(
            name.to_string(),
            format!("{name}: device stack too deep"),
        ));
        return;
    }
    if name.starts_with("dm-") {
        match sysfs.dm(name) {
            Some(dm) if dm.is_multipath() => out.push(Unit::Map(dm)),
            Some(dm) if dm.slaves.is_empty() => out.push(Unit::Opaque(
                name.to_string(),
                format!("{} ({name}) has no member devices", dm.label()),
            )),
            Some(dm) => {
                for s in &dm.slaves {
                    let whole = sysfs.whole_disk(s).unwrap_or_else(|| s.clone());
                    discover(sysfs, &whole, depth + 1, out);
                }
            }
            None => out.push(Unit::Opaque(
                name.to_string(),
                format!("{name} not found in sysfs"),
            )),
        }
    } else if name.starts_with("emcpower") {
        out.push(Unit::PowerPath(name.to_string()));
    } else if name.starts_with("sd") && sysfs.exists(name) {
        out.push(Unit::Disk(name.to_string()));
    } else if sysfs.exists(name) {
        out.push(Unit::Opaque(
            name.to_string(),
            format!("no SAN path information for {name} (not SCSI, dm-multipath or PowerPath)"),
        ));
    } else {
        out.push(Unit::Opaque(
            name.to_string(),
            format!("{name} not found in sysfs"),
        ));
    }
}

/// Whether a configured tool is present, for `validate-all`-style checks.
pub fn tool_present(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_from_their_names() {
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert_eq!("PowerPath".parse::<Backend>().unwrap(), Backend::PowerPath);
        assert_eq!("multipath".parse::<Backend>().unwrap(), Backend::Multipath);
        assert!("scsi".parse::<Backend>().is_err());
    }

    #[test]
    fn powerpath_partitions_map_to_their_pseudo_device() {
        assert_eq!(powerpath_base("emcpowera1").as_deref(), Some("emcpowera"));
        assert_eq!(powerpath_base("emcpowerbc").as_deref(), Some("emcpowerbc"));
        assert_eq!(powerpath_base("emcpower"), None);
    }
}
