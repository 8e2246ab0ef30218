//! The optional read probe: one O_DIRECT read of the device's first 4 KiB in a
//! sacrificial child process, and the registry of probes that did not come back.
//!
//! Why a child process and not a thread: a read on a device with no path left and
//! `queue_if_no_path` sits in D state and cannot be interrupted; a thread stuck there
//! keeps its whole process from exiting cleanly, a child does not. The child is
//! `dd if=DEV of=/dev/null bs=4096 count=1 iflag=direct` (the `dd` path is a
//! parameter), run like every command here (own process group, deadline, SIGKILL to
//! the group at the deadline). 4096 bytes rather than 512 so that the read is aligned
//! on 4Kn devices too, as the stock `Filesystem` agent's depth-10 check does.
//!
//! A child still alive at the deadline is a failed probe, and the check returns on
//! time anyway. The device is then recorded as having a stuck probe until the child
//! is reaped: in this process (a map by device) and in a state file
//! `RUN_DIR/probe-<device>.state` (`pid=`, `starttime=` from `/proc/PID/stat` to tell a
//! reused pid apart, `since=` and `deadline=` in Unix seconds), written when the probe
//! starts and removed when the child is reaped. While such a record names a live
//! process, no new probe starts on that device: the check answers "probe stuck since
//! T" instead. A record whose process is gone (or whose pid now belongs to another
//! process) is removed. Process liveness is read from the real `/proc`, whatever the
//! sysfs root: the probe runs on this machine.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::command::{BoundedCommand, CommandError, Observer};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The read completed.
    Read,
    /// The read failed (I/O error, device gone).
    Failed(String),
    /// The child was still reading at the deadline.
    TimedOut { waited: Duration },
    /// An earlier probe is still stuck: no new one was started.
    Stuck { pid: u32, since: SystemTime },
    /// An earlier probe is still within its own deadline: no new one was started.
    Running { since: SystemTime },
    /// The probe could not be run at all (no `dd`): a configuration error.
    Unavailable(String),
}

impl ProbeOutcome {
    /// A reason for the report; `None` when the read worked or another is under way.
    pub fn failure(&self, device: &str) -> Option<String> {
        match self {
            ProbeOutcome::Read | ProbeOutcome::Running { .. } | ProbeOutcome::Unavailable(_) => {
                None
            }
            ProbeOutcome::Failed(why) => Some(format!("read probe of {device} failed: {why}")),
            ProbeOutcome::TimedOut { waited } => Some(format!(
                "read probe of {device} did not complete within {:.1} s",
                waited.as_secs_f64()
            )),
            ProbeOutcome::Stuck { pid, since } => Some(format!(
                "read probe of {device} stuck since {} (pid {pid}); no new probe started",
                utc(*since)
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeRecord {
    /// 0 while the child is being started.
    pid: u32,
    starttime: Option<u64>,
    since: SystemTime,
    deadline: SystemTime,
}

/// Probes in flight or stuck, by device, in this process and in the run directory.
#[derive(Debug, Default)]
pub struct ProbeRegistry {
    run_dir: Option<PathBuf>,
    records: Mutex<HashMap<String, ProbeRecord>>,
}

impl ProbeRegistry {
    /// `run_dir` holds the state files; `None` keeps the registry in this process only.
    pub fn new(run_dir: Option<PathBuf>) -> Arc<ProbeRegistry> {
        Arc::new(ProbeRegistry {
            run_dir,
            records: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProbeRecord>> {
        match self.records.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn state_file(&self, key: &str) -> Option<PathBuf> {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.run_dir
            .as_ref()
            .map(|d| d.join(format!("probe-{safe}.state")))
    }

    /// Reads one sector of `device_path` in a child, unless a probe of `key` is
    /// still stuck. Returns by `deadline`.
    pub fn probe(
        self: &Arc<Self>,
        dd: &Path,
        key: &str,
        device_path: &Path,
        deadline: Instant,
    ) -> ProbeOutcome {
        let now = SystemTime::now();
        let budget = deadline.saturating_duration_since(Instant::now());
        if budget.is_zero() {
            return ProbeOutcome::Unavailable("no time left before the deadline".to_string());
        }
        {
            let mut records = self.lock();
            if let Some(busy) = self.busy(&mut records, key, now) {
                return busy;
            }
            records.insert(
                key.to_string(),
                ProbeRecord {
                    pid: 0,
                    starttime: None,
                    since: now,
                    deadline: now + budget,
                },
            );
        }
        let mut arg_if = std::ffi::OsString::from("if=");
        arg_if.push(device_path.as_os_str());
        let cmd = BoundedCommand::new(
            "dd",
            dd,
            [
                arg_if,
                "of=/dev/null".into(),
                "bs=4096".into(),
                "count=1".into(),
                "iflag=direct".into(),
            ],
        );
        let on_spawn = {
            let registry = Arc::clone(self);
            let key = key.to_string();
            Box::new(move |pid: u32| {
                let record = ProbeRecord {
                    pid,
                    starttime: process_starttime(pid),
                    since: now,
                    deadline: now + budget,
                };
                registry.lock().insert(key.clone(), record);
                registry.write_state(&key, &record);
            })
        };
        let on_reaped = {
            let registry = Arc::clone(self);
            let key = key.to_string();
            Box::new(move || registry.forget(&key))
        };
        let result = cmd.run_observed(
            deadline,
            Observer {
                on_spawn,
                on_reaped,
            },
        );
        match result {
            Ok(out) if out.status.success() => ProbeOutcome::Read,
            Ok(out) => ProbeOutcome::Failed(out.first_complaint()),
            Err(CommandError::TimedOut { waited, .. }) => ProbeOutcome::TimedOut { waited },
            Err(e) => {
                // Never started: nothing to wait for.
                self.forget(key);
                ProbeOutcome::Unavailable(e.to_string())
            }
        }
    }

    /// An earlier probe of `key` that still holds the device, from this process or
    /// from the state file; forgets records whose process is gone.
    fn busy(
        &self,
        records: &mut HashMap<String, ProbeRecord>,
        key: &str,
        now: SystemTime,
    ) -> Option<ProbeOutcome> {
        let file = self.state_file(key);
        let record = match records.get(key) {
            Some(r) => Some(*r),
            None => file.as_deref().and_then(read_state),
        };
        let record = record?;
        // pid 0 past its deadline: the child was never started (the deadline came
        // first), so nothing holds the device.
        let never_started = record.pid == 0 && now > record.deadline;
        if never_started || (record.pid != 0 && !process_alive(record.pid, record.starttime)) {
            records.remove(key);
            if let Some(file) = file {
                let _ = fs::remove_file(file);
            }
            return None;
        }
        if now > record.deadline {
            Some(ProbeOutcome::Stuck {
                pid: record.pid,
                since: record.since,
            })
        } else {
            Some(ProbeOutcome::Running {
                since: record.since,
            })
        }
    }

    fn forget(&self, key: &str) {
        self.lock().remove(key);
        if let Some(file) = self.state_file(key) {
            let _ = fs::remove_file(file);
        }
    }

    fn write_state(&self, key: &str, r: &ProbeRecord) {
        let (Some(dir), Some(file)) = (&self.run_dir, self.state_file(key)) else {
            return;
        };
        let text = format!(
            "pid={}\nstarttime={}\nsince={}\ndeadline={}\n",
            r.pid,
            r.starttime.map(|s| s.to_string()).unwrap_or_default(),
            unix(r.since),
            unix(r.deadline)
        );
        let tmp = file.with_extension("tmp");
        let written = fs::create_dir_all(dir)
            .and_then(|()| fs::write(&tmp, text))
            .and_then(|()| fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::warn!(device = key, file = %file.display(), error = %e, "cannot record the probe in the run directory");
        }
    }

    /// Test hook: records a probe of `key` by `pid` as if it had started `ago` before
    /// now with a deadline already passed, in the state file only (as a previous
    /// process would leave it).
    #[doc(hidden)]
    pub fn record_foreign_probe(&self, key: &str, pid: u32, ago: Duration) {
        let since = SystemTime::now() - ago;
        self.write_state(
            key,
            &ProbeRecord {
                pid,
                starttime: process_starttime(pid),
                since,
                deadline: since,
            },
        );
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_state(file: &Path) -> Option<ProbeRecord> {
    let text = fs::read_to_string(file).ok()?;
    let mut pid = None;
    let mut starttime = None;
    let mut since = None;
    let mut deadline = None;
    for line in text.lines().take(16) {
        match line.split_once('=') {
            Some(("pid", v)) => pid = v.trim().parse::<u32>().ok(),
            Some(("starttime", v)) => starttime = v.trim().parse::<u64>().ok(),
            Some(("since", v)) => since = v.trim().parse::<u64>().ok(),
            Some(("deadline", v)) => deadline = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    let pid = pid.filter(|p| *p > 0);
    match (pid, since) {
        (Some(pid), Some(since)) => Some(ProbeRecord {
            pid,
            starttime,
            since: at(since),
            deadline: at(deadline.unwrap_or(since)),
        }),
        // A file we cannot read as a record blocks nothing; `busy` would keep it
        // forever otherwise.
        _ => {
            let _ = fs::remove_file(file);
            None
        }
    }
}

/// `/proc/PID/stat`: the state (field 3) and starttime (field 22), read after the
/// last `)` because the command name may hold spaces and parentheses.
fn proc_stat(pid: u32) -> Option<(char, Option<u64>)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19).and_then(|s| s.parse().ok())))
}

fn process_starttime(pid: u32) -> Option<u64> {
    proc_stat(pid).and_then(|(_, s)| s)
}

/// Alive, not a zombie, and (when we know it) the same process we started.
fn process_alive(pid: u32, starttime: Option<u64>) -> bool {
    match proc_stat(pid) {
        Some(('Z', _)) | None => false,
        Some((_, now)) => starttime.is_none() || now == starttime,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn utc(t: SystemTime) -> String {
    let secs = unix(t);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29T12:34:56Z"
        );
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_starttime_is_not() {
        let me = std::process::id();
        let start = process_starttime(me);
        assert!(start.is_some());
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start.map(|s| s + 1)));
    }

    #[test]
    fn an_unreadable_state_file_is_removed_and_blocks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("probe-sdc.state");
        fs::write(&file, "garbage").unwrap();
        assert!(read_state(&file).is_none());
        assert!(!file.exists());
    }
}
