//! One console session per device at a time, across processes: an advisory
//! `flock` on `<lock_dir>/<host>_<port>.lock`.
//!
//! Why: many APC and Baytech units allow a single console session, and a second
//! login either is refused or throws the first one out. fence_apc's own
//! description warns that a long session blocks fencing. So every fencekit
//! process that talks to a device takes its lock first, and the priorities are
//! fixed: a fence ([`Wait::UntilDeadline`]) waits for the lock until its
//! deadline, while a monitor or a listing ([`Wait::No`]) tries once and gives up
//! at once with "busy". A monitor therefore never makes a fence wait longer than
//! one session it already started, and never queues in front of one.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fencekit_core::{DeviceError, Instant};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where fencekit keeps device locks unless told otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/fencekit/locks";

/// How often a waiting fence tries the lock again.
const RETRY: Duration = Duration::from_millis(25);

/// How long a fence pauses before trying again a console that said it is busy.
const BUSY_RETRY: Duration = Duration::from_millis(250);

/// Whether to wait for a lock another session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fences and status reads: wait until the deadline.
    UntilDeadline,
    /// Monitors and listings: give up at once.
    No,
}

impl Wait {
    /// Runs `attempt` (a session's opening and login) until it gives anything
    /// but [`DeviceError::Busy`]; with [`Wait::UntilDeadline`] a busy console is
    /// tried again every [`BUSY_RETRY`] while the deadline leaves room, with
    /// [`Wait::No`] it is reported at once. Running out of time once the console
    /// has said it is busy is still "busy" (and says so): that is what the
    /// operator must act on, not a mute device.
    pub async fn while_busy<T, F, Fut>(
        self,
        device: &str,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, DeviceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DeviceError>>,
    {
        let mut busy: Option<String> = None;
        loop {
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(DeviceError::Busy(why))
                    if self == Wait::UntilDeadline && Instant::now() + BUSY_RETRY < deadline =>
                {
                    tracing::info!(device, %why, "console busy; trying again");
                    busy = Some(why);
                    tokio::time::sleep(BUSY_RETRY).await;
                }
                Err(e) => {
                    return Err(match busy {
                        Some(why) if e.is_timeout() => {
                            DeviceError::Busy(format!("{why} (still busy at the deadline)"))
                        }
                        _ => e,
                    })
                }
            }
        }
    }
}

/// A held device lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DeviceLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl DeviceLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file of `host:port` under `dir`.
    pub fn path_for(dir: &Path, host: &str, port: u16) -> PathBuf {
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        dir.join(format!("{host}_{port}.lock"))
    }

    /// Takes the lock of `host:port`. `device` names the device in errors.
    pub async fn acquire(
        dir: &Path,
        host: &str,
        port: u16,
        device: &str,
        wait: Wait,
        deadline: Instant,
    ) -> Result<DeviceLock, DeviceError> {
        let path = Self::path_for(dir, host, port);
        std::fs::create_dir_all(dir).map_err(|e| {
            DeviceError::Failed(format!(
                "{device}: cannot create the lock directory {} (set lock_dir): {e}",
                dir.display()
            ))
        })?;
        // A regular file only, opened without blocking: a FIFO planted there must
        // not hang the operation.
        let mut file = fencekit_core::files::open_regular(
            &path,
            OpenOptions::new().create(true).truncate(false).write(true),
        )
        .map_err(|e| {
            DeviceError::Failed(format!(
                "{device}: cannot open the lock file {}: {e}",
                path.display()
            ))
        })?;
        let started = Instant::now();
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => {
                    return Ok(DeviceLock {
                        _file: locked,
                        path,
                    });
                }
                Err((unlocked, Errno::EWOULDBLOCK)) => file = unlocked,
                Err((_, e)) => {
                    return Err(DeviceError::Failed(format!(
                        "{device}: cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
            match wait {
                Wait::No => {
                    return Err(DeviceError::Busy(format!(
                        "{device}: another session (a fence, or another fencekit process) holds the console; not waiting ({})",
                        path.display()
                    )))
                }
                Wait::UntilDeadline => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(DeviceError::Busy(format!(
                            "{device}: the console stayed in use by another session for {:.1} s, until the deadline ({})",
                            now.saturating_duration_since(started).as_secs_f64(),
                            path.display()
                        )));
                    }
                    tokio::time::sleep_until((now + RETRY).min(deadline)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// An attempt that says "busy" `busy` times, then gives `then`.
    async fn tried(
        wait: Wait,
        deadline: Instant,
        busy: usize,
        then: fn() -> Result<(), DeviceError>,
    ) -> (Result<(), DeviceError>, usize) {
        let tries = std::cell::Cell::new(0);
        let done = wait
            .while_busy("pdu", deadline, || {
                tries.set(tries.get() + 1);
                async {
                    if tries.get() <= busy {
                        Err(DeviceError::Busy("pdu: in use".into()))
                    } else {
                        then()
                    }
                }
            })
            .await;
        (done, tries.get())
    }

    #[tokio::test(start_paused = true)]
    async fn a_fence_tries_a_busy_console_again_until_its_deadline_and_a_monitor_does_not() {
        let (done, tries) = tried(Wait::UntilDeadline, soon(), 3, || Ok(())).await;
        assert!(done.is_ok() && tries == 4, "{done:?} after {tries}");

        let (done, tries) = tried(Wait::No, soon(), 3, || Ok(())).await;
        assert!(
            matches!(done, Err(DeviceError::Busy(_))) && tries == 1,
            "{done:?}"
        );

        // Busy to the end: the last try is one that still fits before the deadline.
        let started = Instant::now();
        let (done, _) = tried(Wait::UntilDeadline, soon(), usize::MAX, || Ok(())).await;
        assert!(matches!(done, Err(DeviceError::Busy(_))), "{done:?}");
        assert!(
            started.elapsed() <= Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_strikes_after_busy_is_still_busy_and_other_errors_stay_themselves() {
        let timed_out = || Err(DeviceError::TimedOut("pdu: no prompt".into()));
        let (done, _) = tried(Wait::UntilDeadline, soon(), 2, timed_out).await;
        match done {
            Err(DeviceError::Busy(why)) => {
                assert_eq!(why, "pdu: in use (still busy at the deadline)")
            }
            other => panic!("{other:?}"),
        }
        // Never busy: a timeout is a timeout.
        let (done, _) = tried(Wait::UntilDeadline, soon(), 0, timed_out).await;
        assert!(matches!(done, Err(DeviceError::TimedOut(_))), "{done:?}");
        // Busy, then refused: the refusal, not "busy".
        let refused = || Err(DeviceError::Refused("pdu: wrong password".into()));
        let (done, tries) = tried(Wait::UntilDeadline, soon(), 1, refused).await;
        assert!(
            matches!(done, Err(DeviceError::Refused(_))) && tries == 2,
            "{done:?}"
        );
    }

    #[test]
    fn lock_files_are_named_by_host_and_port_without_path_tricks() {
        let p = DeviceLock::path_for(Path::new("/x"), "../pdu 1", 22);
        assert_eq!(p, Path::new("/x/.._pdu_1_22.lock"));
        assert_eq!(p.parent(), Some(Path::new("/x")));
    }

    #[tokio::test]
    async fn a_monitor_gives_up_at_once_while_a_session_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = DeviceLock::acquire(dir.path(), "pdu", 22, "pdu", Wait::No, soon())
            .await
            .unwrap();
        let err = DeviceLock::acquire(dir.path(), "pdu", 22, "pdu", Wait::No, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::Busy(_)), "{err}");
        drop(held);
        DeviceLock::acquire(dir.path(), "pdu", 22, "pdu", Wait::No, soon())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_fence_waits_for_the_lock_and_gets_it_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = DeviceLock::acquire(dir.path(), "pdu", 22, "pdu", Wait::No, soon())
            .await
            .unwrap();
        let path = dir.path().to_path_buf();
        let waiter = tokio::spawn(async move {
            DeviceLock::acquire(&path, "pdu", 22, "pdu", Wait::UntilDeadline, soon()).await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_fence_waiting_past_its_deadline_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DeviceLock::acquire(dir.path(), "pdu", 22, "pdu", Wait::No, soon())
            .await
            .unwrap();
        let err = DeviceLock::acquire(
            dir.path(),
            "pdu",
            22,
            "pdu",
            Wait::UntilDeadline,
            Instant::now() + Duration::from_millis(60),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DeviceError::Busy(_)), "{err}");
    }
}
