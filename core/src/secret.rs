//! Secrets (passwords, communities, pass phrases, BMC keys): held zeroized, printed
//! as `***`, and read from a file, a command, the environment or stdin, never from
//! argv alone.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
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

    /// Reads a secret from a file: its first line, without the line ending.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let raw = Zeroizing::new(std::fs::read(path).map_err(|e| SecretError::File {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?);
        let text = std::str::from_utf8(&raw).map_err(|_| SecretError::File {
            path: path.display().to_string(),
            cause: "not UTF-8 text".into(),
        })?;
        Ok(Secret::new(first_line(text)))
    }

    /// Reads a secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Secret, SecretError> {
        match std::env::var(name) {
            Ok(value) => Ok(Secret::new(value)),
            Err(_) => Err(SecretError::Env {
                name: name.to_string(),
            }),
        }
    }

    /// Runs `command` through `/bin/sh -c` (as fence-agents' `password_script` does)
    /// and takes the first line it prints. The command is killed if it runs longer
    /// than `timeout`. Its output never appears in errors.
    pub fn from_command(command: &str, timeout: Duration) -> Result<Secret, SecretError> {
        let failed = |cause: String| SecretError::Command {
            command: command.to_string(),
            cause,
        };
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env("LC_ALL", "C")
            .spawn()
            .map_err(|e| failed(format!("cannot start it: {e}")))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no standard output".into()))?;
        // Read on a thread so that a command that never closes its output cannot
        // hold us past the timeout.
        let reader = std::thread::spawn(move || {
            let mut out = Zeroizing::new(Vec::new());
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= timeout => {
                    // The whole group: a shell's children must not outlive it.
                    kill_group(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(format!(
                        "timed out after {:.1} s",
                        timeout.as_secs_f64()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(failed(e.to_string())),
            }
        };
        if !status.success() {
            return Err(failed(format!("it exited with {status}")));
        }
        let out = reader
            .join()
            .map_err(|_| failed("reading its output failed".into()))?;
        let text =
            std::str::from_utf8(&out).map_err(|_| failed("its output is not UTF-8".into()))?;
        Ok(Secret::new(first_line(text)))
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

/// Kills the process group led by `pid` (started with `process_group(0)`).
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
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
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
