//! The OCF resource agent `ocf:fencekit:SANFilesystem` (argv[0] `SANFilesystem`, or
//! `stonith-bridge ocf SANFilesystem ACTION`): the stock `Filesystem` agent of
//! resource-agents (`$OCF_ROOT/resource.d/heartbeat/Filesystem`) with a SAN path check
//! added to `monitor` and `status`.
//!
//! * `start`, `validate-all`: our parameters are checked first (a bad value is
//!   OCF_ERR_CONFIGURED, a tool the chosen layer needs missing on this node is
//!   OCF_ERR_INSTALLED), then the stock agent is exec'd with the same action and the
//!   whole environment (every `OCF_RESKEY_*`), so its answer is the answer.
//! * `stop` and every other action: the stock agent, exec'd as is. Stop never waits
//!   on our parameters.
//! * `monitor`, `status`: the stock agent's, run as a child with a deadline; when it
//!   says running (0), the paths to the device mounted on `directory` are checked
//!   (see [`judge`] for the verdicts). The deadline is the operation's own timeout
//!   (`OCF_RESKEY_CRM_meta_timeout`, ms; 20 s when absent) less a margin, so that a
//!   hung tool gives a reason instead of an operation timeout.
//! * `meta-data`: the stock agent's, extended ([`metadata`]).
//! * `san_backend=none`: every action is exactly the stock agent's.
//!
//! The agent never reboots or fences its own node (the seed agent did, from inside
//! `monitor`): it reports, and recovery stays with the cluster manager.
//!
//! Which device is checked: the one the kernel has mounted on `directory` (through
//! mountinfo), which is what the stock monitor has just found mounted, whatever form
//! `device` takes (`-L label`, `UUID=`, a udev link); `device` only when no
//! `directory` is set.

pub mod metadata;
pub mod params;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use fencekit_qla_monitor::{BoundedCommand, CommandError, DeviceReport, SanCheck, Status};

use params::{OnUnknown, ParamError, SanParams};

pub const OCF_SUCCESS: u8 = 0;
pub const OCF_ERR_GENERIC: u8 = 1;
pub const OCF_ERR_ARGS: u8 = 2;
pub const OCF_ERR_INSTALLED: u8 = 5;
pub const OCF_ERR_CONFIGURED: u8 = 6;

/// The agent's name, which is also its argv[0] personality.
pub const AGENT: &str = "SANFilesystem";
/// The OCF provider directory it is installed under.
pub const PROVIDER: &str = "fencekit";

/// The operation timeout assumed when the cluster gives none (ocf-tester sets 20 s).
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for the stock agent's meta-data.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: SANFilesystem {start|stop|status|monitor|validate-all|meta-data}";

/// `OCF_ROOT`, `/usr/lib/ocf` when unset.
fn ocf_root() -> PathBuf {
    std::env::var_os("OCF_ROOT")
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OCF_ROOT))
}

const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// The stock agent: `$OCF_ROOT/resource.d/heartbeat/Filesystem`.
pub fn stock_agent() -> PathBuf {
    ocf_root().join("resource.d/heartbeat/Filesystem")
}

/// Runs one action of `agent`; returns the OCF exit code. Call it while the process
/// has one thread: it may set `OCF_ROOT` in the environment.
pub fn run(agent: &str, action: Option<&str>) -> u8 {
    let log = Log::new();
    // The stock agent finds ocf-shellfuncs through OCF_ROOT; the cluster always sets
    // it, a shell user running the agent by hand may not.
    if std::env::var_os("OCF_ROOT")
        .filter(|r| !r.is_empty())
        .is_none()
    {
        std::env::set_var("OCF_ROOT", DEFAULT_OCF_ROOT);
    }
    if agent != AGENT {
        eprintln!("stonith-bridge: no OCF agent {agent:?} (there is {PROVIDER}:{AGENT})");
        return OCF_ERR_INSTALLED;
    }
    let Some(action) = action else {
        eprintln!("{USAGE}");
        return OCF_ERR_ARGS;
    };
    let stock = stock_agent();
    let params = SanParams::parse(|name| std::env::var(format!("OCF_RESKEY_{name}")).ok());
    match action {
        "meta-data" => meta_data(&stock, &log),
        "usage" | "help" => {
            println!("{USAGE}");
            OCF_SUCCESS
        }
        "start" | "validate-all" => match params.and_then(|p| p.check_node()) {
            Ok(()) => exec_stock(&stock, action, &log),
            Err(e) => {
                log.exit_reason(&e.to_string());
                e.ocf_code()
            }
        },
        "monitor" | "status" => match params {
            Ok(p) if p.backend.is_none() => exec_stock(&stock, action, &log),
            params => monitor(&stock, action, params, &log),
        },
        _ => exec_stock(&stock, action, &log),
    }
}

/// Replaces this process with the stock agent running `action`.
fn exec_stock(stock: &Path, action: &str, log: &Log) -> u8 {
    let mut command = Command::new(stock);
    fencekit_core::secret::scrub_env(&mut command);
    let err = command.arg(action).exec();
    log.exit_reason(&format!(
        "cannot run the stock Filesystem agent {}: {err}",
        stock.display()
    ));
    if err.kind() == std::io::ErrorKind::NotFound {
        OCF_ERR_INSTALLED
    } else {
        OCF_ERR_GENERIC
    }
}

fn meta_data(stock: &Path, log: &Log) -> u8 {
    let out = BoundedCommand::new("Filesystem", stock, ["meta-data"])
        .run_by(Instant::now() + METADATA_TIMEOUT);
    let text = match out {
        Ok(out) if out.status.success() => out.stdout_text(),
        Ok(out) => {
            log.exit_reason(&format!(
                "the stock Filesystem agent {} refused meta-data: {}",
                stock.display(),
                out.first_complaint()
            ));
            return OCF_ERR_GENERIC;
        }
        Err(e) => {
            log.exit_reason(&e.to_string());
            return stock_error_code(&e);
        }
    };
    match metadata::extend(&text, AGENT) {
        Ok(ours) => {
            print!("{ours}");
            OCF_SUCCESS
        }
        Err(e) => {
            log.exit_reason(&format!("{e} ({})", stock.display()));
            OCF_ERR_GENERIC
        }
    }
}

fn stock_error_code(e: &CommandError) -> u8 {
    match e {
        CommandError::NotFound { .. } => OCF_ERR_INSTALLED,
        _ => OCF_ERR_GENERIC,
    }
}

/// The monitor's own deadline: the operation timeout less a tenth of it (at least
/// 1 s, at most 5 s) for us to report and exit before the cluster kills us.
pub fn monitor_budget(meta_timeout_ms: Option<&str>) -> Duration {
    let total = meta_timeout_ms
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_OPERATION_TIMEOUT);
    let margin = if total < Duration::from_secs(2) {
        total / 2
    } else {
        (total / 10).clamp(Duration::from_secs(1), Duration::from_secs(5))
    };
    total - margin
}

fn monitor(stock: &Path, action: &str, params: Result<SanParams, ParamError>, log: &Log) -> u8 {
    let deadline = Instant::now()
        + monitor_budget(std::env::var("OCF_RESKEY_CRM_meta_timeout").ok().as_deref());
    let out = match BoundedCommand::new("Filesystem", stock, [action]).run_by(deadline) {
        Ok(out) => out,
        Err(e) => {
            log.exit_reason(&format!("stock Filesystem {action}: {e}"));
            return stock_error_code(&e);
        }
    };
    // What the stock agent said is passed on as it said it (its log lines and
    // exit reason on stderr).
    let _ = std::io::stdout().write_all(&out.stdout);
    crate::logging::stderr_text(&String::from_utf8_lossy(&out.stderr));
    let Some(rc) = out.status.code().and_then(|c| u8::try_from(c).ok()) else {
        log.exit_reason(&format!("stock Filesystem {action} ended by a signal"));
        return OCF_ERR_GENERIC;
    };
    if rc != OCF_SUCCESS {
        return rc;
    }
    let params = match params {
        Ok(p) => p,
        Err(e) => {
            log.exit_reason(&e.to_string());
            return e.ocf_code();
        }
    };
    let Some(target) = san_target() else {
        log.exit_reason("neither directory nor device is set: no device to check the paths of");
        return OCF_ERR_CONFIGURED;
    };
    let check_by = deadline.min(Instant::now() + params.timeout);
    let reports =
        SanCheck::new(params.config.clone()).run_blocking(std::slice::from_ref(&target), check_by);
    let judgement = match reports.first() {
        Some(report) => judge(report, &target, params.on_unknown),
        None => Judgement {
            code: OCF_ERR_GENERIC,
            warning: None,
            reason: Some(format!("SAN check of {target} gave no report")),
        },
    };
    if let Some(w) = &judgement.warning {
        log.line("WARNING", w);
    }
    if let Some(r) = &judgement.reason {
        log.exit_reason(r);
    }
    judgement.code
}

/// The device to check: what is mounted on `directory` (its parent resolved, so a
/// symlinked parent matches mountinfo; the mount point itself is not stat'ed), else
/// `device`.
fn san_target() -> Option<String> {
    let directory = std::env::var("OCF_RESKEY_directory").unwrap_or_default();
    let trimmed = directory.trim_end_matches('/');
    if !directory.is_empty() {
        if trimmed.is_empty() {
            return Some("/".to_string());
        }
        let path = Path::new(trimmed);
        let resolved = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or_else(|_| path.to_path_buf()),
            _ => path.to_path_buf(),
        };
        return Some(resolved.to_string_lossy().into_owned());
    }
    std::env::var("OCF_RESKEY_device")
        .ok()
        .filter(|d| !d.trim().is_empty())
}

/// What monitor answers for a SAN verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub code: u8,
    /// Logged as a warning; the monitor still succeeds.
    pub warning: Option<String>,
    /// The exit reason of a failed monitor.
    pub reason: Option<String>,
}

/// healthy: 0. degraded: 0 and a warning. failed (below `min_paths`, or the read probe
/// failed or is stuck): OCF_ERR_GENERIC with the reason, so the cluster recovers the
/// resource (stop here, start elsewhere; with `queue_if_no_path` the stop may hang
/// and the cluster fences, which is its decision). unknown (a tool missing or hung,
/// or not a device the layer knows): by `san_unknown`; `fail` (default) is
/// OCF_ERR_GENERIC with a reason that says it is a configuration or timeout problem
/// and not a verdict on the SAN, because a SAN loss often hangs the very tools that
/// would report it, and a hidden loss costs more than a needless failover.
pub fn judge(report: &DeviceReport, target: &str, on_unknown: OnUnknown) -> Judgement {
    let summary = report.summary();
    match report.status {
        Status::Healthy => Judgement {
            code: OCF_SUCCESS,
            warning: None,
            reason: None,
        },
        Status::Degraded => Judgement {
            code: OCF_SUCCESS,
            warning: Some(format!("SAN paths of {target} degraded: {summary}")),
            reason: None,
        },
        Status::Failed => Judgement {
            code: OCF_ERR_GENERIC,
            warning: None,
            reason: Some(format!("SAN paths of {target} failed: {summary}")),
        },
        Status::Unknown => {
            let text = format!(
                "SAN path state of {target} unknown (a configuration or timeout problem, not a verdict on the SAN): {summary}"
            );
            match on_unknown {
                OnUnknown::Fail => Judgement {
                    code: OCF_ERR_GENERIC,
                    warning: None,
                    reason: Some(text),
                },
                OnUnknown::Warn => Judgement {
                    code: OCF_SUCCESS,
                    warning: Some(format!("{text}; san_unknown=warn: monitor succeeds")),
                    reason: None,
                },
            }
        }
    }
}

/// Log lines as ocf-shellfuncs writes them (`TAG: LEVEL: message` on stderr, which
/// Pacemaker's executor logs, and appended to `HA_LOGFILE` when the cluster sets it),
/// and `ocf_exit_reason`'s `ocf-exit-reason:` line.
struct Log {
    tag: String,
}

impl Log {
    fn new() -> Log {
        let instance = std::env::var("OCF_RESOURCE_INSTANCE").unwrap_or_default();
        let tag = if instance.is_empty() {
            format!("{AGENT}[{}]", std::process::id())
        } else {
            format!("{AGENT}({instance})[{}]", std::process::id())
        };
        Log { tag }
    }

    fn line(&self, level: &str, message: &str) {
        let message = one_line(message);
        eprintln!("{}: {level}: {message}", self.tag);
        if let Some(file) = std::env::var_os("HA_LOGFILE").filter(|f| !f.is_empty()) {
            let line = format!(
                "{} {}: {level}: {message}\n",
                fencekit_qla_monitor::probe::utc(SystemTime::now()),
                self.tag
            );
            // A log that cannot be written must not change the agent's answer.
            let _ = fencekit_core::files::open_regular(
                std::path::Path::new(&file),
                std::fs::OpenOptions::new().append(true).create(true),
            )
            .and_then(|mut f| f.write_all(line.as_bytes()));
        }
    }

    fn exit_reason(&self, message: &str) {
        let prefix = std::env::var("OCF_EXIT_REASON_PREFIX")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "ocf-exit-reason:".to_string());
        eprintln!("{prefix}{}", one_line(message));
        self.line("ERROR", message);
    }
}

fn one_line(message: &str) -> String {
    message.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_qla_monitor::{Layer, UnitReport};

    fn report(status: Status, cause: &str) -> DeviceReport {
        let mut unit = UnitReport::unknown("mpatha", "dm-3", Layer::Fc, cause.to_string());
        unit.status = status;
        let mut r = DeviceReport::unknown("/srv/data", String::new());
        r.problems.clear();
        r.status = status;
        r.units = vec![unit];
        r
    }

    #[test]
    fn the_budget_is_the_operation_timeout_less_a_margin() {
        assert_eq!(monitor_budget(Some("20000")), Duration::from_secs(18));
        assert_eq!(monitor_budget(Some("120000")), Duration::from_secs(115));
        assert_eq!(monitor_budget(Some("5000")), Duration::from_secs(4));
        assert_eq!(monitor_budget(Some("1000")), Duration::from_millis(500));
        assert_eq!(monitor_budget(None), Duration::from_secs(18));
        assert_eq!(monitor_budget(Some("soon")), Duration::from_secs(18));
        assert_eq!(monitor_budget(Some("0")), Duration::from_secs(18));
    }

    #[test]
    fn healthy_and_degraded_keep_the_resource_running() {
        let j = judge(&report(Status::Healthy, ""), "/srv/data", OnUnknown::Fail);
        assert_eq!((j.code, j.warning, j.reason), (0, None, None));
        let j = judge(
            &report(Status::Degraded, "sdk offline"),
            "/srv/data",
            OnUnknown::Fail,
        );
        assert_eq!(j.code, 0);
        assert!(j
            .warning
            .unwrap()
            .starts_with("SAN paths of /srv/data degraded"));
        assert_eq!(j.reason, None);
    }

    #[test]
    fn failed_paths_fail_the_monitor_with_the_reason() {
        let j = judge(
            &report(Status::Failed, "HBA host3 Linkdown"),
            "/srv/data",
            OnUnknown::Warn,
        );
        assert_eq!(j.code, OCF_ERR_GENERIC);
        let reason = j.reason.unwrap();
        assert!(
            reason.starts_with("SAN paths of /srv/data failed: "),
            "{reason}"
        );
        assert!(reason.contains("HBA host3 Linkdown"), "{reason}");
    }

    #[test]
    fn unknown_fails_by_default_and_says_it_is_not_a_san_verdict() {
        let unknown = report(Status::Unknown, "powermt did not answer within 9.0 s");
        let j = judge(&unknown, "/srv/data", OnUnknown::Fail);
        assert_eq!(j.code, OCF_ERR_GENERIC);
        let reason = j.reason.unwrap();
        assert!(
            reason.contains("configuration or timeout problem"),
            "{reason}"
        );
        assert!(reason.contains("powermt did not answer"), "{reason}");

        let j = judge(&unknown, "/srv/data", OnUnknown::Warn);
        assert_eq!(j.code, OCF_SUCCESS);
        assert!(j.warning.unwrap().contains("san_unknown=warn"));
    }

    #[test]
    fn the_stock_agent_lives_under_ocf_root() {
        assert!(stock_agent().ends_with("resource.d/heartbeat/Filesystem"));
    }

    #[test]
    fn exit_reasons_stay_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
