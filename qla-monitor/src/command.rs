//! Running an external tool (`powermt`, `multipathd`, `dmsetup`, the probe's `dd`)
//! so that it can never hold the check past its deadline.
//!
//! Each command starts in a process group of its own (`setpgid(0, 0)` in the child),
//! with stdin from `/dev/null`, `LC_ALL=C`, no shell, and stdout/stderr read by
//! threads that keep at most `output_limit` bytes and drain the rest. A waiter thread
//! owns the child: it sees the leader exit with `waitid(WEXITED | WNOWAIT)` (the zombie
//! keeps the group id reserved, so the group id cannot have been reused), kills the
//! whole group with SIGKILL so that no helper the tool left behind survives it, and
//! only then reaps the leader. If the deadline comes first, the caller kills the whole
//! group with SIGKILL (under the same lock, so never after the reap) and returns at
//! once; the waiter thread stays behind to reap the child whenever the kernel lets it
//! die (a reader stuck in D state dies only when its I/O ends).

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use thiserror::Error;

/// Default cap on what we keep of a command's stdout and of its stderr.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;

/// Why a command gave no usable output.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The program is not there: a configuration error, not a SAN failure.
    #[error("{tool} not found at {}: install it or give its path", program.display())]
    NotFound { tool: String, program: PathBuf },
    /// The program is there but could not be started.
    #[error("cannot run {tool} ({}): {cause}", program.display())]
    Spawn {
        tool: String,
        program: PathBuf,
        cause: String,
    },
    /// The program did not finish (or did not close its output) by the deadline.
    #[error("{tool} did not answer within {:.1} s", waited.as_secs_f64())]
    TimedOut { tool: String, waited: Duration },
}

impl CommandError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, CommandError::TimedOut { .. })
    }
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether stdout or stderr went over the limit (the rest was discarded).
    pub truncated: bool,
}

impl CommandOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The first non-empty line of stderr (else stdout), for a reason text.
    pub fn first_complaint(&self) -> String {
        let pick = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.chars().take(200).collect::<String>())
        };
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| "no output".to_string())
    }
}

/// A command line to run with a deadline.
#[derive(Debug, Clone)]
pub struct BoundedCommand {
    /// Short name used in reasons (`powermt`), independent of the path.
    pub tool: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub output_limit: usize,
}

/// Calls made from the command's threads: when it has started and when it is reaped.
pub(crate) struct Observer {
    pub on_spawn: Box<dyn FnOnce(u32) + Send>,
    pub on_reaped: Box<dyn FnOnce() + Send>,
}

impl Observer {
    fn none() -> Observer {
        Observer {
            on_spawn: Box::new(|_| {}),
            on_reaped: Box::new(|| {}),
        }
    }
}

/// Shared between the caller and the waiter so that a kill never lands after the reap.
struct Group {
    pgid: Pid,
    reaped: bool,
}

impl BoundedCommand {
    pub fn new<I, S>(tool: &str, program: &Path, args: I) -> BoundedCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        BoundedCommand {
            tool: tool.to_string(),
            program: program.to_path_buf(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }

    /// Runs the command; returns by `deadline` whatever the command does.
    pub fn run_by(&self, deadline: Instant) -> Result<CommandOutput, CommandError> {
        self.run_observed(deadline, Observer::none())
    }

    pub(crate) fn run_observed(
        &self,
        deadline: Instant,
        observer: Observer,
    ) -> Result<CommandOutput, CommandError> {
        let started = Instant::now();
        let timed_out = || CommandError::TimedOut {
            tool: self.tool.clone(),
            waited: started.elapsed(),
        };
        if !self.program.exists() {
            return Err(CommandError::NotFound {
                tool: self.tool.clone(),
                program: self.program.clone(),
            });
        }
        // No time left: starting the tool would only mean killing it at once.
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        let mut child = self.spawn_retrying(deadline)?;
        let pid = child.id();
        (observer.on_spawn)(pid);
        let group = Arc::new(Mutex::new(Group {
            pgid: Pid::from_raw(pid as i32),
            reaped: false,
        }));

        let (out_tx, out_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let limit = self.output_limit;
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, limit, out_tx);
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, limit, err_tx);
        }
        let (exit_tx, exit_rx) = mpsc::channel();
        let waiter_group = Arc::clone(&group);
        let on_reaped = observer.on_reaped;
        std::thread::spawn(move || {
            let status = wait_then_reap(child, &waiter_group);
            on_reaped();
            let _ = exit_tx.send(status);
        });

        let status = match exit_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Ok(status)) => status,
            Ok(Err(cause)) => {
                return Err(CommandError::Spawn {
                    tool: self.tool.clone(),
                    program: self.program.clone(),
                    cause,
                })
            }
            Err(_) => {
                kill_group(&group);
                return Err(timed_out());
            }
        };
        let collect = |rx: mpsc::Receiver<(Vec<u8>, bool)>| {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        };
        // A reader that never sees EOF means something outside the group still holds
        // the pipe; the deadline bounds that wait too.
        let (stdout, t1) = collect(out_rx).map_err(|_| timed_out())?;
        let (stderr, t2) = collect(err_rx).map_err(|_| timed_out())?;
        Ok(CommandOutput {
            status,
            stdout,
            stderr,
            truncated: t1 || t2,
        })
    }

    fn spawn_retrying(&self, deadline: Instant) -> Result<Child, CommandError> {
        loop {
            let mut command = Command::new(&self.program);
            // No secret this process holds reaches a path tool.
            fencekit_core::secret::scrub_env(&mut command);
            let spawned = command
                .args(&self.args)
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn();
            match spawned {
                Ok(child) => return Ok(child),
                // ETXTBSY: another thread of this process forked while the program
                // file was open for writing (freshly installed); it passes at exec.
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::ETXTBSY)
                        && Instant::now() + Duration::from_millis(20) < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(CommandError::NotFound {
                        tool: self.tool.clone(),
                        program: self.program.clone(),
                    })
                }
                Err(e) => {
                    return Err(CommandError::Spawn {
                        tool: self.tool.clone(),
                        program: self.program.clone(),
                        cause: e.to_string(),
                    })
                }
            }
        }
    }
}

fn spawn_reader<R: Read + Send + 'static>(
    mut source: R,
    limit: usize,
    done: mpsc::Sender<(Vec<u8>, bool)>,
) {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 8192];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send((kept, truncated));
    });
}

/// Waits for the leader to exit without reaping it, kills what is left of its group,
/// then reaps it.
fn wait_then_reap(mut child: Child, group: &Mutex<Group>) -> Result<ExitStatus, String> {
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            // Nothing to wait for (should not happen for our own child): fall through
            // to the reap, which reports it.
            Err(_) => break,
        }
    }
    let mut group = match group.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    // The leader is a zombie: its pid, and so the group id, cannot be reused yet.
    let _ = killpg(group.pgid, Signal::SIGKILL);
    let status = child.wait().map_err(|e| e.to_string());
    group.reaped = true;
    status
}

fn kill_group(group: &Mutex<Group>) {
    let group = match group.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !group.reaped {
        let _ = killpg(group.pgid, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn output_and_status_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "t", "echo hello; echo oops >&2; exit 3");
        let out = BoundedCommand::new("t", &p, ["x"]).run_by(soon()).unwrap();
        assert_eq!(out.stdout_text(), "hello\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.first_complaint(), "oops");
    }

    #[test]
    fn a_missing_program_is_named_as_not_found() {
        let err = BoundedCommand::new("powermt", Path::new("/nonexistent/powermt"), ["display"])
            .run_by(soon())
            .unwrap_err();
        assert!(matches!(err, CommandError::NotFound { .. }));
        assert!(err
            .to_string()
            .contains("powermt not found at /nonexistent/powermt"));
    }

    #[test]
    fn a_hanging_program_is_killed_with_its_group_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let p = script(
            dir.path(),
            "hang",
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        );
        let begun = Instant::now();
        let err = BoundedCommand::new("powermt", &p, Vec::<String>::new())
            .run_by(Instant::now() + Duration::from_millis(300))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().starts_with("powermt did not answer within"));
        assert!(begun.elapsed() < Duration::from_secs(20));
        // The backgrounded sleep was in the group: it must be gone (or a zombie
        // about to be reaped by init) once the kill has been delivered.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if pid > 0 {
            let mut gone = false;
            for _ in 0..200 {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if stat.is_empty()
                    || stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                {
                    gone = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            assert!(gone, "grandchild {pid} survived the group kill");
        }
    }

    #[test]
    fn output_beyond_the_limit_is_dropped_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "big", "yes x | head -c 100000");
        let mut cmd = BoundedCommand::new("big", &p, Vec::<String>::new());
        cmd.output_limit = 1000;
        let out = cmd.run_by(soon()).unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
    }
}
