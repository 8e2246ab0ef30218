//! Changes to the machine itself that some peers force on a test, each held by a guard
//! that undoes it on drop (also while a failing test unwinds): Pacemaker's fencer and
//! `stonith_admin` look for fence agents only in `/usr/sbin`, and cluster-glue's
//! `stonith` looks for external plugins only in `/usr/lib/stonith/plugins/external`,
//! so a test links its installed binary there.
//!
//! Tests that touch the same system path are serialized: inside one test process by a
//! set of held paths, across test processes (cargo runs test binaries one after
//! another, but a developer may run several) by an `flock`ed lock file per path.
//! Needs root.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::bridge::{agent_name, external_name, Installed};
use crate::HarnessError;

/// Where Pacemaker looks for fence agents (its compiled-in `RH_STONITH_DIR`).
pub const FENCE_AGENT_DIR: &str = "/usr/sbin";
/// Where Pacemaker looks for OCF resource agents (`OCF_RA_PATH`'s default), one
/// directory per provider.
pub const OCF_RESOURCE_DIR: &str = "/usr/lib/ocf/resource.d";
/// Where cluster-glue looks for external stonith plugins.
pub const EXTERNAL_PLUGIN_DIR: &str = "/usr/lib/stonith/plugins/external";

/// How long a test waits for another test to give a system path up. The longest
/// holder, the Pacemaker test, keeps its agent link for about a minute.
const LOCK_WAIT: Duration = Duration::from_secs(10 * 60);
const LOCK_POLL: Duration = Duration::from_millis(50);

/// Exclusive use of one system path by this test, across threads and processes.
pub struct PathLock {
    path: PathBuf,
    // Released (closed) when the guard drops.
    _file: Flock<File>,
}

impl std::fmt::Debug for PathLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathLock")
            .field("path", &self.path)
            .finish()
    }
}

/// Paths held by tests of this process, and the signal that one was given up.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
static RELEASED: Condvar = Condvar::new();

impl PathLock {
    /// Waits (bounded) until no other test of any process holds `path`, then holds it.
    pub fn acquire(path: &Path) -> Result<PathLock, HarnessError> {
        let deadline = Instant::now() + LOCK_WAIT;
        Self::hold_in_process(path, deadline)?;
        match Self::hold_across_processes(path, deadline) {
            Ok(file) => Ok(PathLock {
                path: path.to_path_buf(),
                _file: file,
            }),
            Err(e) => {
                Self::release_in_process(path);
                Err(e)
            }
        }
    }

    fn hold_in_process(path: &Path, deadline: Instant) -> Result<(), HarnessError> {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let set = held.get_or_insert_with(HashSet::new);
            if set.insert(path.to_path_buf()) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(busy(path));
            }
            held = RELEASED
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn release_in_process(path: &Path) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = held.as_mut() {
            set.remove(path);
        }
        RELEASED.notify_all();
    }

    fn hold_across_processes(path: &Path, deadline: Instant) -> Result<Flock<File>, HarnessError> {
        let lock_path = lock_file(path);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| HarnessError::io(format!("open lock file {}", lock_path.display()), e))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => return Ok(locked),
                Err((back, Errno::EWOULDBLOCK | Errno::EINTR)) if Instant::now() < deadline => {
                    file = back;
                    std::thread::sleep(LOCK_POLL);
                }
                Err((_, Errno::EWOULDBLOCK)) => return Err(busy(path)),
                Err((_, errno)) => {
                    return Err(HarnessError::io(
                        format!("lock {}", lock_path.display()),
                        std::io::Error::from(errno),
                    ))
                }
            }
        }
    }
}

impl Drop for PathLock {
    fn drop(&mut self) {
        Self::release_in_process(&self.path);
    }
}

fn busy(path: &Path) -> HarnessError {
    HarnessError::Refused {
        what: format!("use {}", path.display()),
        why: format!("another test held it for more than {LOCK_WAIT:?}"),
    }
}

/// The lock file for a system path: in /run/lock when it exists (cleared at boot),
/// else in the temporary directory. Lock files stay: removing one while another
/// process waits on it would let two tests in.
fn lock_file(path: &Path) -> PathBuf {
    let name: String = path
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = Path::new("/run/lock");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("fencekit-test{name}.lock"))
}

/// A symbolic link at a system path, there while the guard lives. A link that was
/// there before is put back on drop; a dangling one (left by a killed test) is
/// replaced; a regular file or directory is never touched.
pub struct SystemLink {
    link: PathBuf,
    target: PathBuf,
    previous: Option<PathBuf>,
    // Dropped after Drop::drop restored the path.
    _lock: PathLock,
}

impl std::fmt::Debug for SystemLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemLink")
            .field("link", &self.link)
            .field("target", &self.target)
            .finish()
    }
}

impl SystemLink {
    /// Makes `link` a symbolic link to `target`, once no other test uses `link`.
    pub fn create(link: &Path, target: &Path) -> Result<SystemLink, HarnessError> {
        let lock = PathLock::acquire(link)?;
        let refuse = |why: String| HarnessError::Refused {
            what: format!("link {} to {}", link.display(), target.display()),
            why,
        };
        let parent_exists = link.parent().is_some_and(Path::is_dir);
        if !parent_exists {
            return Err(refuse(
                "its directory does not exist (is the peer package installed?)".into(),
            ));
        }
        let previous = match std::fs::symlink_metadata(link) {
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(HarnessError::io(format!("inspect {}", link.display()), e)),
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(refuse(
                    "a file that is not a symbolic link is there; it is not ours to replace".into(),
                ))
            }
            Ok(_) => {
                let old = std::fs::read_link(link)
                    .map_err(|e| HarnessError::io(format!("read link {}", link.display()), e))?;
                // `exists` follows the link: false for a dangling one, debris of a
                // killed test run, which is not worth restoring.
                let live = link.exists();
                std::fs::remove_file(link).map_err(|e| {
                    HarnessError::io(format!("remove the old link {}", link.display()), e)
                })?;
                live.then_some(old)
            }
        };
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| HarnessError::io(format!("create link {}", link.display()), e))?;
        Ok(SystemLink {
            link: link.to_path_buf(),
            target: target.to_path_buf(),
            previous,
            _lock: lock,
        })
    }

    /// `/usr/sbin/fence_fencekit_<plugin>` → the installed agent.
    pub fn fence_agent(installed: &Installed, plugin: &str) -> Result<SystemLink, HarnessError> {
        SystemLink::create(
            &Path::new(FENCE_AGENT_DIR).join(agent_name(plugin)),
            &installed.agent(plugin),
        )
    }

    /// `/usr/lib/ocf/resource.d/fencekit` → the installed provider directory, so that
    /// `ocf:fencekit:SANFilesystem` runs the installed agent.
    pub fn ocf_provider(installed: &Installed) -> Result<SystemLink, HarnessError> {
        SystemLink::create(
            &Path::new(OCF_RESOURCE_DIR).join("fencekit"),
            &installed.ocf_provider(),
        )
    }

    /// `/usr/lib/stonith/plugins/external/fencekit-<plugin>` → the installed wrapper.
    pub fn external_plugin(
        installed: &Installed,
        plugin: &str,
    ) -> Result<SystemLink, HarnessError> {
        SystemLink::create(
            &Path::new(EXTERNAL_PLUGIN_DIR).join(external_name(plugin)),
            &installed.external(plugin),
        )
    }

    /// The system path of the link.
    pub fn path(&self) -> &Path {
        &self.link
    }

    /// What the link points to while the guard lives.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for SystemLink {
    fn drop(&mut self) {
        // Only our own link is removed: if something else replaced it meanwhile, it
        // stays.
        let ours = std::fs::read_link(&self.link).is_ok_and(|t| t == self.target);
        if !ours {
            eprintln!(
                "fencekit-tests: {} no longer links to {}; left as it is",
                self.link.display(),
                self.target.display()
            );
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.link) {
            eprintln!("fencekit-tests: cannot remove {}: {e}", self.link.display());
            return;
        }
        if let Some(previous) = &self.previous {
            if let Err(e) = std::os::unix::fs::symlink(previous, &self.link) {
                eprintln!(
                    "fencekit-tests: cannot restore {} -> {}: {e}",
                    self.link.display(),
                    previous.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent");
        std::fs::write(&target, "#!/bin/sh\n").unwrap();
        let link = dir.path().join("fence_x");
        (dir, target, link)
    }

    #[test]
    fn a_link_exists_while_the_guard_lives_and_goes_with_it() {
        let (_dir, target, link) = fixture();
        let guard = SystemLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        assert_eq!(guard.path(), link);
        drop(guard);
        assert!(std::fs::symlink_metadata(&link).is_err());
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let (_dir, target, link) = fixture();
        std::fs::write(&link, "the real agent").unwrap();
        let err = SystemLink::create(&link, &target).unwrap_err();
        assert!(matches!(err, HarnessError::Refused { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "the real agent");
    }

    #[test]
    fn a_live_link_that_was_there_is_put_back() {
        let (dir, target, link) = fixture();
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let guard = SystemLink::create(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(guard);
        assert_eq!(std::fs::read_link(&link).unwrap(), other);
    }

    #[test]
    fn a_dangling_link_is_replaced_and_not_restored() {
        let (dir, target, link) = fixture();
        std::os::unix::fs::symlink(dir.path().join("gone"), &link).unwrap();
        drop(SystemLink::create(&link, &target).unwrap());
        assert!(std::fs::symlink_metadata(&link).is_err());
    }

    #[test]
    fn a_link_someone_else_replaced_is_left_alone() {
        let (dir, target, link) = fixture();
        let guard = SystemLink::create(&link, &target).unwrap();
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.path().join("theirs"), &link).unwrap();
        drop(guard);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            dir.path().join("theirs")
        );
    }

    #[test]
    fn a_second_user_of_a_path_waits_for_the_first_to_let_go() {
        let (_dir, target, link) = fixture();
        let first = SystemLink::create(&link, &target).unwrap();
        let first_dropped = Arc::new(AtomicBool::new(false));
        let seen_by_second = {
            let (link, target, first_dropped) =
                (link.clone(), target.clone(), first_dropped.clone());
            std::thread::spawn(move || {
                let second = SystemLink::create(&link, &target).unwrap();
                let dropped = first_dropped.load(Ordering::SeqCst);
                drop(second);
                dropped
            })
        };
        // Whenever the second thread gets through, the first guard must be gone.
        std::thread::sleep(Duration::from_millis(100));
        first_dropped.store(true, Ordering::SeqCst);
        drop(first);
        assert!(seen_by_second.join().unwrap());
    }

    #[test]
    fn lock_files_are_named_after_the_path() {
        let file = lock_file(Path::new("/usr/sbin/fence_fencekit_sim"));
        assert!(file
            .to_string_lossy()
            .ends_with("fencekit-test_usr_sbin_fence_fencekit_sim.lock"));
    }
}
