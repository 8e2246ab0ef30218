//! Local user accounts for tests that log in (sshd's `Match User` + `ForceCommand`):
//! a [`TestUser`] guard creates a uniquely named user with `useradd` and `chpasswd`
//! (the password on stdin, never in argv) and removes it with `userdel -r` on drop.
//! Needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{peers, random_hex, tool, HarnessError};

/// Deadline for each of useradd, chpasswd and userdel.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// useradd and userdel fail while another process holds the passwd/group locks
/// (exit 1 or 10); parallel tests do that to each other, so they try again.
const LOCK_ATTEMPTS: usize = 10;

/// A local user that exists as long as the guard lives. Its home directory is inside
/// a temporary directory of the guard.
pub struct TestUser {
    name: String,
    // Holds the home directory; removed after userdel when the guard drops.
    dir: TempDir,
}

impl std::fmt::Debug for TestUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestUser")
            .field("name", &self.name)
            .finish()
    }
}

impl TestUser {
    /// Creates user `fk<random hex>` with shell /bin/sh and this password.
    pub fn create(password: &str) -> Result<TestUser, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HarnessError::NotRoot {
                what: "creating a local test user".into(),
            });
        }
        if password.is_empty() || password.contains([':', '\n', '\r']) {
            return Err(HarnessError::BadConfigValue {
                peer: "chpasswd".into(),
                what: "the password".into(),
                why: "must be non-empty without ':' or newlines".into(),
            });
        }
        let useradd = find("useradd")?;
        let chpasswd = find("chpasswd")?;
        let dir = tempfile::Builder::new()
            .prefix("fencekit-user-")
            .tempdir()
            .map_err(|e| HarnessError::io("create a temporary directory for a test user", e))?;
        // The user must be able to reach its home (and sshd to chdir there).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("open a test user's directory", e))?;
        let name = format!("fk{}", random_hex(5));
        let home = dir.path().join("home");
        with_lock_retries(|| {
            let mut command = Command::new(&useradd);
            command
                .args(["--create-home", "--shell", "/bin/sh", "--home-dir"])
                .arg(&home)
                .arg(&name);
            tool::run_ok(command, None, TOOL_TIMEOUT)
        })?;
        // From here on the guard exists, so a failure below still removes the user.
        let user = TestUser { name, dir };
        let input = format!("{}:{password}\n", user.name);
        tool::run_ok(
            Command::new(&chpasswd),
            Some(input.as_bytes()),
            TOOL_TIMEOUT,
        )?;
        Ok(user)
    }

    /// The user's login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's home directory.
    pub fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("home")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let Some(userdel) = peers::find("userdel") else {
            eprintln!(
                "fencekit-tests: userdel not found; user {} is left behind",
                self.name
            );
            return;
        };
        let result = with_lock_retries(|| {
            let mut command = Command::new(&userdel);
            command.args(["--remove", &self.name]);
            tool::run(command, None, TOOL_TIMEOUT).and_then(|out| {
                // 12: home not removed (the TempDir removes it next); 6: already gone.
                match out.status.code() {
                    Some(0 | 6 | 12) => Ok(out),
                    _ => Err(HarnessError::Tool {
                        program: "userdel".into(),
                        status: out.status.to_string(),
                        output: out.text(),
                    }),
                }
            })
        });
        if let Err(e) = result {
            eprintln!(
                "fencekit-tests: could not remove test user {}: {e}",
                self.name
            );
        }
    }
}

fn find(program: &str) -> Result<std::path::PathBuf, HarnessError> {
    peers::find(program).ok_or_else(|| HarnessError::PeerMissing {
        program: program.into(),
        package: "passwd".into(),
    })
}

fn with_lock_retries<T>(
    mut run: impl FnMut() -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let mut attempt = 1;
    loop {
        match run() {
            Err(HarnessError::Tool { ref output, .. })
                if attempt < LOCK_ATTEMPTS && output.contains("lock") =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 * attempt as u64));
            }
            other => return other,
        }
    }
}

/// Whether a user of this name exists (reads /etc/passwd; for tests of the guard).
pub fn user_exists(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/etc/passwd"))
        .map(|passwd| {
            passwd
                .lines()
                .any(|line| line.split(':').next() == Some(name))
        })
        .unwrap_or(false)
}
