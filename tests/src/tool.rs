//! Running a short-lived program (ipmitool, snmpget, ssh-keygen, useradd, ...) to the
//! end within a deadline: input fed on stdin (that is where secrets go, never argv),
//! output captured, the program killed by PID if the deadline passes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// What a finished program printed and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// Stdout and stderr together, for error messages and assertions.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to its end, with `stdin` as its input (or /dev/null), killing it if
/// it is still running after `timeout`. The exit status is not judged: see [`run_ok`].
pub fn run(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ToolOutput, HarnessError> {
    let program = command.get_program().to_string_lossy().into_owned();
    // Files rather than pipes: nothing can block on a full pipe while we poll.
    let stdout = tempfile::tempfile().map_err(|e| HarnessError::io("create a capture file", e))?;
    let stderr = tempfile::tempfile().map_err(|e| HarnessError::io("create a capture file", e))?;
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(
            stdout
                .try_clone()
                .map_err(|e| HarnessError::io("duplicate a capture file", e))?,
        )
        .stderr(
            stderr
                .try_clone()
                .map_err(|e| HarnessError::io("duplicate a capture file", e))?,
        );
    let mut child = command
        .spawn()
        .map_err(|e| HarnessError::io(format!("start {program}"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Inputs are a few lines, far below the pipe buffer, so this does not block; a
        // program that exits without reading gives EPIPE, which is its business.
        let _ = pipe.write_all(input);
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::ToolTimedOut {
                    program,
                    waited: started.elapsed(),
                });
            }
            Err(e) => return Err(HarnessError::io(format!("wait for {program}"), e)),
        }
    };
    Ok(ToolOutput {
        status,
        stdout: read_capture(stdout)?,
        stderr: read_capture(stderr)?,
    })
}

/// Like [`run`], but a non-zero exit is an error carrying the program's output.
pub fn run_ok(
    command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ToolOutput, HarnessError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = run(command, stdin, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(HarnessError::Tool {
            program,
            status: output.status.to_string(),
            output: output.text(),
        })
    }
}

fn read_capture(mut file: File) -> Result<String, HarnessError> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| HarnessError::io("read a capture file", e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_reaches_the_program_and_its_output_comes_back() {
        let mut cat = Command::new("sh");
        cat.args(["-c", "cat; echo err >&2"]);
        let out = run_ok(cat, Some(b"hello\n"), Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn a_failing_program_is_an_error_with_its_output() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo broken; exit 3"]);
        let err = run_ok(sh, None, Duration::from_secs(10)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broken"), "{text}");
        assert!(text.contains('3'), "{text}");
    }

    #[test]
    fn a_program_past_its_deadline_is_killed() {
        let mut sleep = Command::new("sleep");
        sleep.arg("600");
        let err = run(sleep, None, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, HarnessError::ToolTimedOut { .. }), "{err}");
    }
}
