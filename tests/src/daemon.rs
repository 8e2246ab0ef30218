//! The daemon guard: a peer process started in its own process group inside a
//! temporary directory it owns, with its output in a log file there, polled until it
//! answers, and killed by PID (the whole group) and reaped when the guard drops, also
//! while a failing test unwinds.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::HarnessError;

/// How long a daemon may take to leave after SIGTERM before the group gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Pause between two readiness probes or two exit checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many lines of log an error carries.
const LOG_TAIL_LINES: usize = 30;

/// A running peer daemon. Dropping it kills the daemon's process group (SIGTERM, a
/// short grace, then SIGKILL), reaps the daemon and removes its directory.
pub struct Daemon {
    name: String,
    child: Child,
    log_path: PathBuf,
    // Dropped after `Drop::drop` has killed the process, so the daemon never sees its
    // files vanish under it.
    dir: TempDir,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// A fresh temporary directory for one daemon, named after it.
pub fn daemon_dir(name: &str) -> Result<TempDir, HarnessError> {
    tempfile::Builder::new()
        .prefix(&format!("fencekit-{name}-"))
        .tempdir()
        .map_err(|e| HarnessError::io(format!("create a temporary directory for {name}"), e))
}

impl Daemon {
    /// Starts `command` as daemon `name`: in its own process group, with `dir` as its
    /// working directory, stdin from /dev/null and stdout and stderr both appended to
    /// `dir/NAME.log`. The guard owns `dir` from now on.
    pub fn spawn(name: &str, dir: TempDir, mut command: Command) -> Result<Daemon, HarnessError> {
        let log_path = dir.path().join(format!("{name}.log"));
        let log = File::create(&log_path)
            .map_err(|e| HarnessError::io(format!("create {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| HarnessError::io(format!("duplicate the log of {name}"), e))?;
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own group, so that Drop reaches whatever the daemon forks (ipmi_sim's
            // power program, snmpd's pass_persist program, sshd's sessions).
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io(format!("start {name}"), e))?;
        Ok(Daemon {
            name: name.to_owned(),
            child,
            log_path,
            dir,
        })
    }

    /// Polls `probe` until it returns `Ok(())`, the daemon exits, or `deadline` passes.
    /// The probe returns `Err(reason)` while the daemon is not ready yet; the last reason
    /// goes into the error if the deadline passes. A probe must itself end quickly
    /// (a socket read timeout of a few hundred milliseconds is right).
    pub fn wait_ready<F>(&mut self, deadline: Instant, mut probe: F) -> Result<(), HarnessError>
    where
        F: FnMut(&Daemon) -> Result<(), String>,
    {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Err(HarnessError::Exited {
                    name: self.name.clone(),
                    status,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            let last_probe = match probe(self) {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(HarnessError::NotReady {
                    name: self.name.clone(),
                    waited: now.duration_since(started),
                    last_probe,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    }

    /// The daemon's PID, which is also its process group ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory the daemon runs in; removed when the guard drops.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's name as given to `spawn`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let mut bytes = Vec::new();
        match File::open(&self.log_path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})", self.log_path.display()),
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let from = all.len().saturating_sub(lines);
        all[from..].join("\n")
    }

    /// Whether the daemon is still running (not exited).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// How the daemon ended, if it has; `None` while it runs. The daemon is left a
    /// zombie (WNOWAIT) rather than reaped, so its PID, and so its process group ID,
    /// cannot be reused before Drop has signalled the group.
    fn exit_status(&self) -> Option<String> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.group()), flags) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status {code}")),
            Ok(WaitStatus::Signaled(_, signal, _)) => Some(format!("killed by {signal}")),
            Ok(other) => Some(format!("{other:?}")),
            // ECHILD: already reaped, which only Drop does.
            Err(e) => Some(format!("not waitable: {e}")),
        }
    }

    fn group(&self) -> Pid {
        // A PID always fits in pid_t; a value that did not would make kill a no-op
        // (ESRCH) rather than hit another process.
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = self.group();
        if self.is_running() {
            // ESRCH and EPERM are ignored: there is nothing more a guard can do.
            let _ = killpg(group, Signal::SIGTERM);
            let grace_end = Instant::now() + TERM_GRACE;
            while self.is_running() && Instant::now() < grace_end {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        // Also after a clean exit: sweeps children the daemon left behind in its
        // group. The leader is still an unreaped zombie here, so the group ID is ours.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
