//! Secrets (passwords, communities, pass phrases, BMC keys): held zeroized, printed
//! as `***`, and read from a file, a command, the environment or stdin, never from
//! argv alone.
//!
//! It also keeps the process-wide list of environment variables that hold secrets
//! ([`hide_env_var`]), which every child core starts is spawned without
//! ([`scrub_env`], used by [`crate::child`]).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;
use zeroize::Zeroizing;

/// A secret value. Its `Debug` and `Display` print `***`; its memory is zeroed when
/// it is dropped. Only [`Secret::expose`] gives the value, at the one place that
/// sends it to a device.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value, for the code that hands it to a device. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a secret from a file: its first line, without the line ending. Only a
    /// regular file of at most [`SECRET_FILE_LIMIT`] bytes ([`crate::files`]).
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        if path == Path::new(STDIN_PATH) {
            // Standard input, whatever it is (a pipe, a terminal): its first line,
            // by the operation's deadline.
            let by = Instant::now() + bounded_by_operation(STDIN_SECRET_TIMEOUT);
            let line = crate::files::read_stdin_line(SECRET_FILE_LIMIT, by)
                .map(Zeroizing::new)
                .map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    cause: e.to_string(),
                })?;
            let text = std::str::from_utf8(&line).map_err(|_| SecretError::File {
                path: path.display().to_string(),
                cause: "not UTF-8 text".into(),
            })?;
            return Ok(Secret::new(text));
        }
        let read = crate::files::read_bounded(path, SECRET_FILE_LIMIT);
        let raw = Zeroizing::new(read.map_err(|e| SecretError::File {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?);
        let text = std::str::from_utf8(&raw).map_err(|_| SecretError::File {
            path: path.display().to_string(),
            cause: "not UTF-8 text".into(),
        })?;
        Ok(Secret::new(first_line(text)))
    }

    /// Reads a secret from the environment variable `name`, and registers `name`
    /// with [`hide_env_var`], so that no child core starts inherits it.
    pub fn from_env(name: &str) -> Result<Secret, SecretError> {
        hide_env_var(name);
        match std::env::var(name).map(Zeroizing::new) {
            Ok(value) => Ok(Secret::new(value.as_str())),
            Err(_) => Err(SecretError::Env {
                name: name.to_string(),
            }),
        }
    }

    /// Runs `command` through `/bin/sh -c` (as fence-agents' `password_script` does)
    /// and takes the first line it prints, without trailing blanks. The command, and whatever it left
    /// running, is killed if it runs longer than `timeout`; a command that exits
    /// but leaves a child holding its output open (`echo pw; sleep 25 &`) is done
    /// when it exits. Its environment has no registered secret ([`scrub_env`]). Its
    /// output never appears in errors.
    pub fn from_command(command: &str, timeout: Duration) -> Result<Secret, SecretError> {
        let failed = |cause: String| SecretError::Command {
            command: command.to_string(),
            cause,
        };
        let mut child = crate::child::shell(command);
        child.env("LC_ALL", "C");
        let limits = crate::child::Limits {
            stdout: SECRET_OUTPUT_LIMIT,
            stderr: 0,
        };
        let done = crate::child::run_by(child, None, Instant::now() + timeout, limits).map_err(
            |e| match e {
                crate::child::ChildError::TimedOut(_) => {
                    failed(format!("timed out after {:.1} s", timeout.as_secs_f64()))
                }
                other => failed(other.to_string()),
            },
        )?;
        if !done.status.success() {
            return Err(failed(format!("it exited with {}", done.status)));
        }
        let text = std::str::from_utf8(&done.stdout)
            .map_err(|_| failed("its output is not UTF-8".into()))?;
        // fence-agents take the output with every trailing blank stripped
        // (`.rstrip()`): a password file saved with a trailing space works there.
        Ok(Secret::new(first_line(text).trim_end()))
    }

    /// Reads a secret from standard input: its first line.
    pub fn from_reader(mut input: impl Read) -> Result<Secret, SecretError> {
        let mut raw = Zeroizing::new(Vec::new());
        input
            .read_to_end(&mut raw)
            .map_err(|e| SecretError::Stdin(e.to_string()))?;
        let text =
            std::str::from_utf8(&raw).map_err(|_| SecretError::Stdin("not UTF-8 text".into()))?;
        Ok(Secret::new(first_line(text)))
    }
}

/// The deadline of the operation this process runs, once a front end knows it: a
/// `*_script` secret command ends by it (or by its own limit, if sooner).
static OPERATION_DEADLINE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Sets the deadline [`Secret::from_command`] keeps to (the first call wins). Front
/// ends call it as soon as they know the operation's timeout, before any parameter
/// is read.
pub fn set_operation_deadline(deadline: std::time::Instant) {
    let _ = OPERATION_DEADLINE.set(deadline);
}

/// `limit` from now, or less if the operation's deadline comes sooner.
pub fn bounded_by_operation(limit: Duration) -> Duration {
    let own = limit;
    match OPERATION_DEADLINE.get() {
        Some(deadline) => own.min(deadline.saturating_duration_since(std::time::Instant::now())),
        None => own,
    }
}

/// The file name that means standard input for a `*_file` secret.
const STDIN_PATH: &str = "/dev/stdin";

/// The longest wait for standard input's line (less when the operation's deadline
/// comes sooner).
const STDIN_SECRET_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest secret file read: far more than a line.
pub const SECRET_FILE_LIMIT: usize = 64 * 1024;

/// The most of a `password_script`'s output that is read: far more than a line.
const SECRET_OUTPUT_LIMIT: usize = 64 * 1024;

/// Names of environment variables that hold secrets, for the whole process.
static HIDDEN_ENV: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Registers an environment variable as holding a secret: no child that core starts
/// (notify hook, `password_script`, script plugin) inherits it. Front ends call it
/// for variables that carry parameters (cluster-glue passes a device's password in
/// the environment); [`Secret::from_env`] calls it for the variable it reads.
/// Thread-safe and idempotent; a name is never unregistered.
///
/// Removing the variable from this process's own environment as well is the
/// caller's job, and must happen before any thread starts (`std::env::remove_var`).
pub fn hide_env_var(name: &str) {
    if name.is_empty() {
        return;
    }
    HIDDEN_ENV
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string());
}

/// The variables registered with [`hide_env_var`], sorted.
pub fn hidden_env_vars() -> Vec<String> {
    HIDDEN_ENV
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Removes every registered variable ([`hide_env_var`]) from what `command` will
/// inherit. [`crate::child`] does this for every child core starts; other code that
/// spawns a program should call it too.
pub fn scrub_env(command: &mut Command) {
    for name in HIDDEN_ENV.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        command.env_remove(name);
    }
}

fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read. Never holds the secret or what a command printed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {cause}")]
    File { path: String, cause: String },
    #[error("secret command `{command}` failed: {cause}")]
    Command { command: String, cause: String },
    #[error("environment variable {name} is not set")]
    Env { name: String },
    #[error("cannot read secret from standard input: {0}")]
    Stdin(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_secret_file_gives_its_first_line_without_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\nignored\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "s3cret");
    }

    #[test]
    fn a_missing_secret_file_names_the_file() {
        let err = Secret::from_file(Path::new("/nonexistent/fencekit.pw")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/fencekit.pw"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_command_gives_its_first_line() {
        let secret = Secret::from_command("printf 'abc\\nxyz'", Duration::from_secs(5)).unwrap();
        assert_eq!(secret.expose(), "abc");
    }

    #[test]
    fn a_secret_command_s_trailing_blanks_are_not_the_secret_s_as_fence_agents_strip_them() {
        for command in [
            "printf 'secretpw  \\n'",
            "printf 'secretpw\\t'",
            "printf 'secretpw \\r\\n'",
        ] {
            let secret = Secret::from_command(command, Duration::from_secs(5)).unwrap();
            assert_eq!(secret.expose(), "secretpw", "{command}");
        }
        let secret = Secret::from_command("printf ' in side '", Duration::from_secs(5)).unwrap();
        assert_eq!(secret.expose(), " in side");
    }

    #[test]
    fn a_failing_secret_command_does_not_leak_its_output() {
        let err = Secret::from_command("echo $((40 + 2))leak; exit 3", Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("42leak"), "{err}");
        assert!(err.contains("exit"), "{err}");
    }

    #[test]
    fn a_hanging_secret_command_is_killed_at_its_timeout() {
        let started = Instant::now();
        let err = Secret::from_command("sleep 30", Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_secret_command_that_leaves_its_output_open_gives_its_line_at_once() {
        let started = Instant::now();
        let secret = Secret::from_command("echo pw; sleep 25 &", Duration::from_secs(10)).unwrap();
        assert_eq!(secret.expose(), "pw");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_secret_command_does_not_inherit_a_secret_read_from_the_environment() {
        // A name of this test's own: tests run in threads of one process.
        let name = "FENCEKIT_TEST_SECRET_CMD_ENV";
        std::env::set_var(name, "envpw-7c1f");
        assert_eq!(Secret::from_env(name).unwrap().expose(), "envpw-7c1f");
        assert!(hidden_env_vars().contains(&name.to_string()));
        let seen = Secret::from_command(
            &format!("echo \"seen:${{{name}:-none}}\""),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(seen.expose(), "seen:none");
    }

    #[test]
    fn a_hidden_variable_is_removed_from_a_command() {
        let name = "FENCEKIT_TEST_HIDDEN_VAR";
        hide_env_var(name);
        let mut command = Command::new("/bin/sh");
        command.env(name, "x");
        scrub_env(&mut command);
        assert!(command.get_envs().any(|(k, v)| k == name && v.is_none()));
    }
}
