//! `stonith-bridge san-check`: the SAN path check of `fencekit-qla-monitor` as a
//! monitoring plugin. One line per device (verdict, device, summary) followed by the
//! reason of every path that is not plainly usable, or the whole report as JSON; the
//! exit status follows the Nagios plugin convention (0 OK, 1 WARNING = degraded,
//! 2 CRITICAL = failed, 3 UNKNOWN = a tool hung or is missing, or a bad command
//! line), so Nagios, Icinga or a cron job can run it as it is.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fencekit_qla_monitor::{overall, Backend, DeviceReport, SanCheck, SanConfig, Status};

/// Nagios UNKNOWN: also the answer to a command line we cannot act on, because
/// "the check did not run" must not read as "the SAN failed" (2).
pub const USAGE: u8 = 3;

pub const HELP: &str = "\
Exit codes (Nagios plugin convention):
  0  every device healthy
  1  degraded: at least one path lost, but no device below --min-paths
  2  failed: a device has fewer usable paths than --min-paths, or its read probe
     failed or is stuck
  3  unknown: the paths could not be seen (a tool hung or is missing, the name does
     not lead to a SAN device) or the command line is wrong; this is not a verdict
     on the SAN";

#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct SanCheckArgs {
    /// The device to check: /dev/sdX, /dev/mapper/NAME, /dev/emcpowerX, /dev/VG/LV, a
    /// mount point, `-L LABEL`, `LABEL=…`, `-U UUID`, `UUID=…` (repeatable).
    #[arg(
        long = "device",
        value_name = "DEV",
        required = true,
        allow_hyphen_values = true
    )]
    pub devices: Vec<String>,
    /// Which layer counts the paths: auto (dm-multipath maps through dmsetup,
    /// emcpowerX through powermt, lone SCSI disks through sysfs), fc (sysfs only),
    /// multipath or powerpath.
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = parse_backend)]
    pub backend: Backend,
    /// Fewer usable paths than this: failed (CRITICAL).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    pub min_paths: usize,
    /// Paths each device should have; fewer: degraded. Default: as many as the layer
    /// lists (with --backend fc, paths whose disk was removed are then not counted).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub expected_paths: Option<usize>,
    /// Seconds the whole check may take; whatever has not answered by then is unknown.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// The directory that stands for `/`: sysfs is read from DIR/sys, mounts from
    /// DIR/proc/self/mountinfo, udev links from DIR/dev (for test fixtures).
    #[arg(
        long = "root",
        visible_alias = "sysfs-root",
        value_name = "DIR",
        default_value = "/"
    )]
    pub root: PathBuf,
    /// EMC PowerPath's powermt [default: /sbin/powermt].
    #[arg(long, value_name = "PATH")]
    pub powermt: Option<PathBuf>,
    /// multipathd, asked for its checker states [default: /sbin/multipathd].
    #[arg(long, value_name = "PATH")]
    pub multipathd: Option<PathBuf>,
    /// dmsetup, asked for the kernel's path flags [default: /sbin/dmsetup].
    #[arg(long, value_name = "PATH")]
    pub dmsetup: Option<PathBuf>,
    /// dd, the read probe's reader [default: /bin/dd].
    #[arg(long, value_name = "PATH")]
    pub dd: Option<PathBuf>,
    /// Where probes that did not come back are recorded, so that a later run does
    /// not start another one on the same device [default: /run/fencekit].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Also read the first 4 KiB of each device with O_DIRECT, in a child process
    /// that is abandoned (and reported failed) if it is still reading at the deadline.
    #[arg(long)]
    pub probe: bool,
    /// Print the reports as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// Seconds, whole or decimal, with an optional `s` (`10`, `2.5`, `30s`); at most a day.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let t = t.strip_suffix('s').unwrap_or(t);
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

impl SanCheckArgs {
    pub fn config(&self) -> SanConfig {
        let defaults = SanConfig::default();
        SanConfig {
            backend: self.backend,
            root: self.root.clone(),
            powermt: self.powermt.clone().unwrap_or(defaults.powermt),
            multipathd: self.multipathd.clone().unwrap_or(defaults.multipathd),
            dmsetup: self.dmsetup.clone().unwrap_or(defaults.dmsetup),
            dd: self.dd.clone().unwrap_or(defaults.dd),
            min_paths: self.min_paths,
            expected_paths: self.expected_paths,
            timeout: self.timeout,
            probe: self.probe,
            run_dir: self.run_dir.clone().or(defaults.run_dir),
            ..defaults
        }
    }
}

/// Runs the check and prints it; returns the Nagios exit code.
pub async fn run(args: SanCheckArgs) -> u8 {
    let config = args.config();
    if !config.root.is_dir() {
        eprintln!(
            "stonith-bridge san-check: root {} is not a directory",
            config.root.display()
        );
        return USAGE;
    }
    let check = SanCheck::new(config);
    let deadline = fencekit_core::Instant::now() + args.timeout;
    let reports = check.run(&args.devices, deadline).await;
    let status = overall(&reports);
    if args.json {
        match json(&reports) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("stonith-bridge san-check: cannot write the report as JSON: {e}");
                return USAGE;
            }
        }
    } else {
        print!("{}", text(&reports));
    }
    status.nagios_code()
}

/// `{"status": …, "code": …, "devices": [reports]}`.
pub fn json(reports: &[DeviceReport]) -> Result<String, serde_json::Error> {
    let status = overall(reports);
    serde_json::to_string_pretty(&serde_json::json!({
        "status": status,
        "code": status.nagios_code(),
        "devices": reports,
    }))
}

/// The Nagios service state word for a verdict.
pub fn state_word(status: Status) -> &'static str {
    match status {
        Status::Healthy => "OK",
        Status::Degraded => "DEGRADED",
        Status::Failed => "FAILED",
        Status::Unknown => "UNKNOWN",
    }
}

/// One line per device, `VERDICT device (kernel name): summary`, then one indented
/// line per path that is lost, standby or marginal, and the device's notes.
pub fn text(reports: &[DeviceReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let resolved = match &r.resolved {
            Some(k) if !r.device.ends_with(k.as_str()) => format!(" ({k})"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{} {}{resolved}: {}\n",
            state_word(r.status),
            r.device,
            r.summary()
        ));
        for unit in &r.units {
            for p in &unit.paths {
                let what = if !p.usable {
                    "lost"
                } else if p.marginal {
                    "marginal"
                } else if p.standby {
                    "standby"
                } else {
                    continue;
                };
                let why = if p.reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", p.reasons.join("; "))
                };
                out.push_str(&format!("  {} path {} {what}{why}\n", unit.name, p.name));
            }
            for note in &unit.notes {
                out.push_str(&format!("  {}: {note}\n", unit.name));
            }
        }
        for note in &r.notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_qla_monitor::{Layer, PathState, UnitReport};

    fn path(name: &str, usable: bool, reason: Option<&str>) -> PathState {
        PathState {
            name: name.into(),
            usable,
            standby: false,
            marginal: false,
            reasons: reason.map(|r| vec![r.to_string()]).unwrap_or_default(),
            scsi: None,
        }
    }

    fn degraded() -> DeviceReport {
        let mut unit = UnitReport::unknown("mpatha", "dm-3", Layer::Multipath, String::new());
        unit.paths = vec![
            path("sdc", true, None),
            path("sdk", false, Some("HBA host4 Linkdown")),
        ];
        unit.judge(1, None, None, vec![]);
        DeviceReport {
            device: "/srv/pvfs".into(),
            resolved: Some("dm-4".into()),
            status: unit.status,
            units: vec![unit],
            problems: vec![],
            notes: vec!["read probe of /dev/dm-4 ok".into()],
        }
    }

    #[test]
    fn text_gives_the_verdict_line_then_each_lost_path_with_its_reason() {
        assert_eq!(
            text(&[degraded()]),
            "DEGRADED /srv/pvfs (dm-4): 1 of 2 paths to mpatha left: HBA host4 Linkdown\n\
             \x20 mpatha path sdk lost: HBA host4 Linkdown\n\
             \x20 read probe of /dev/dm-4 ok\n"
        );
    }

    #[test]
    fn a_device_named_by_its_kernel_name_is_not_repeated() {
        let r = DeviceReport::unknown("/dev/sdz", "/dev/sdz: no such block device".into());
        assert_eq!(
            text(&[r]),
            "UNKNOWN /dev/sdz: /dev/sdz: no such block device\n"
        );
    }

    #[test]
    fn json_carries_the_overall_status_and_its_exit_code() {
        let v: serde_json::Value = serde_json::from_str(&json(&[degraded()]).unwrap()).unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["code"], 1);
        assert_eq!(v["devices"][0]["units"][0]["paths"][1]["usable"], false);
    }

    #[test]
    fn seconds_accept_decimals_and_a_unit_but_not_zero_or_words() {
        assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_seconds("30s").unwrap(), Duration::from_secs(30));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("ten").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(at_least_one("0").is_err());
        assert_eq!(at_least_one("4").unwrap(), 4);
    }
}
