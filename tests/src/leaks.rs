//! Hunting a secret wherever another user or a log could read it: a run of fencekit
//! is watched while it runs, and every process it starts is looked at through
//! `/proc` (its command line and, where the secret has no business, its
//! environment), its output is kept, and files its hooks write can be searched too.
//!
//! Secrets are made unique per run ([`unique_secret`]) and distinctive, so a search
//! cannot miss one and cannot find one by chance; a leak is also any long enough
//! piece of one (a log that cuts a line after 20 characters still leaks). Findings
//! name the channel, never the secret: what a failing test prints is redacted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{random_hex, HarnessError};

/// What every test secret starts with: nothing else a run prints looks like it.
pub const SECRET_PREFIX: &str = "fk-SECRET-";

/// Any piece of a secret this long, found in a channel, counts as a leak.
const FRAGMENT: usize = 12;

/// How often `/proc` is walked while a watched run lives.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);
/// How long standard input stays open after it was written (see [`run_watched`]).
const STDIN_HELD: Duration = Duration::from_millis(200);

/// A fresh secret of exactly `len` bytes (at least 16): the prefix, then random hex.
pub fn unique_secret(len: usize) -> String {
    let len = len.max(SECRET_PREFIX.len() + 6);
    let tail = len - SECRET_PREFIX.len();
    let mut secret = String::from(SECRET_PREFIX);
    secret.push_str(&random_hex(tail.div_ceil(2))[..tail]);
    secret
}

/// A fresh secret as short as people's passwords are (10 bytes, 8 of them random):
/// for channels that cut what they echo after a few characters.
pub fn short_secret() -> String {
    format!("pw{}", random_hex(4))
}

/// The secrets of one run, each with a label that may be printed ("password",
/// "community", "privacy pass phrase").
#[derive(Clone, Default)]
pub struct Secrets {
    secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.secrets.iter().map(|(label, _)| label))
            .finish()
    }
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Adds `value`, known as `label`.
    pub fn with(mut self, label: &str, value: &str) -> Secrets {
        self.secrets.push((label.to_owned(), value.to_owned()));
        self
    }

    /// The labels of the secrets found in `text` (whole, or any piece of
    /// [`FRAGMENT`] bytes that is not the common prefix alone).
    pub fn found_in(&self, text: &[u8]) -> Vec<String> {
        self.secrets
            .iter()
            .filter(|(_, value)| pieces(value).iter().any(|p| contains(text, p.as_bytes())))
            .map(|(label, _)| label.clone())
            .collect()
    }

    /// `text` with every secret, and every piece of one, replaced by `<secret>`:
    /// safe to print.
    pub fn redact(&self, text: &str) -> String {
        // Pieces overlap: mark every byte any of them covers, then blank each run.
        let bytes = text.as_bytes();
        let mut marked = vec![false; bytes.len()];
        for (_, value) in &self.secrets {
            for piece in pieces(value) {
                let piece = piece.as_bytes();
                if piece.is_empty() || piece.len() > bytes.len() {
                    continue;
                }
                for start in 0..=bytes.len() - piece.len() {
                    if &bytes[start..start + piece.len()] == piece {
                        marked[start..start + piece.len()].fill(true);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if marked[i] {
                out.extend_from_slice(b"<secret>");
                while i < bytes.len() && marked[i] {
                    i += 1;
                }
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The whole secret and its pieces of [`FRAGMENT`] bytes (ASCII secrets only).
fn pieces(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    if value.is_ascii() && value.len() > FRAGMENT {
        for start in 0..=value.len() - FRAGMENT {
            let piece = &value[start..start + FRAGMENT];
            if !SECRET_PREFIX.contains(piece) {
                out.push(piece.to_owned());
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// How to watch one run.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The fencekit binary: a process running it is "the bridge".
    pub bridge: PathBuf,
    /// Whether the caller put secrets into the run's environment on purpose
    /// (cluster-glue does, `password_env` does): then the environment of the bridge
    /// and of the processes above it is the caller's business, and only the
    /// bridge's descendants are searched.
    pub secrets_in_callers_environment: bool,
    /// The run is killed (its process group) after this long.
    pub timeout: Duration,
}

/// A process seen below the watched run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenProcess {
    pub comm: String,
    /// Whether a bridge process was one of its ancestors.
    pub below_bridge: bool,
}

/// What a watched run did and where its secrets went.
#[derive(Debug)]
pub struct Watched {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Channels a secret was seen in while the run lived: "environ of sh (pid 12)
    /// below the bridge: password".
    pub proc_leaks: BTreeSet<String>,
    /// Every process of the run's tree seen at least once (the bridge included).
    pub seen: BTreeSet<SeenProcess>,
    /// The bridge's "Max core file size" soft and hard limits, as last read while it
    /// ran; `None` when the bridge was never seen.
    pub bridge_core_limit: Option<(String, String)>,
}

/// Runs `command` (in a process group of its own) with `stdin`, walking `/proc` for
/// its whole process tree every few milliseconds until it ends, and searching each
/// process's command line and environment for `secrets`.
pub fn run_watched(
    mut command: Command,
    stdin: Option<&[u8]>,
    watch: &Watch,
    secrets: &Secrets,
) -> Result<Watched, HarnessError> {
    use std::os::unix::process::CommandExt;
    let program = command.get_program().to_string_lossy().into_owned();
    let bridge = std::fs::canonicalize(&watch.bridge)
        .map_err(|e| HarnessError::io(format!("resolve {}", watch.bridge.display()), e))?;
    let capture = || tempfile::tempfile().map_err(|e| HarnessError::io("create a capture file", e));
    let (stdout, stderr) = (capture()?, capture()?);
    let dup = |f: &File| {
        f.try_clone()
            .map_err(|e| HarnessError::io("duplicate a capture file", e))
    };
    command
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(dup(&stdout)?)
        .stderr(dup(&stderr)?);
    let mut child = command
        .spawn()
        .map_err(|e| HarnessError::io(format!("start {program}"), e))?;
    // Standard input stays open a little after it is written, so that samples see
    // the bridge while it reads it (past its first steps, which lower the core
    // limit), not only the instant between exec and `main`.
    let mut open_stdin = None;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input);
        open_stdin = Some(pipe);
    }
    let root = child.id();
    let mut watched = Watched {
        status: ExitStatus::default(),
        stdout: String::new(),
        stderr: String::new(),
        proc_leaks: BTreeSet::new(),
        seen: BTreeSet::new(),
        bridge_core_limit: None,
    };
    let started = Instant::now();
    let status = loop {
        sample(root, &bridge, watch, secrets, &mut watched);
        if open_stdin.is_some() && started.elapsed() >= STDIN_HELD {
            open_stdin = None;
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < watch.timeout => std::thread::sleep(SAMPLE_EVERY),
            Ok(None) => {
                // The whole group: the run's children must not outlive the test.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{root}")])
                    .status();
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
    watched.status = status;
    watched.stdout = read_capture(stdout)?;
    watched.stderr = read_capture(stderr)?;
    Ok(watched)
}

fn read_capture(mut file: File) -> Result<String, HarnessError> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| HarnessError::io("read a capture file", e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every process's parent, from `/proc/PID/stat` (the field after the command name,
/// which may itself hold spaces and parentheses).
fn parents() -> BTreeMap<u32, u32> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            out.insert(pid, ppid);
        }
    }
    out
}

fn sample(root: u32, bridge: &Path, watch: &Watch, secrets: &Secrets, watched: &mut Watched) {
    let parents = parents();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (pid, ppid) in &parents {
        children.entry(*ppid).or_default().push(*pid);
    }
    // (pid, whether an ancestor is the bridge)
    let mut queue = vec![(root, false)];
    while let Some((pid, below_bridge)) = queue.pop() {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let is_bridge = std::fs::read_link(dir.join("exe")).is_ok_and(|exe| exe == bridge);
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        watched.seen.insert(SeenProcess {
            comm: comm.clone(),
            below_bridge,
        });
        let place = if below_bridge {
            " below the bridge"
        } else if is_bridge {
            " (the bridge)"
        } else {
            ""
        };
        if let Ok(cmdline) = std::fs::read(dir.join("cmdline")) {
            for label in secrets.found_in(&cmdline) {
                watched
                    .proc_leaks
                    .insert(format!("cmdline of {comm}{place}: {label}"));
            }
        }
        // A child between fork and exec still shows the bridge's own environment:
        // only a process that is not the bridge's image is judged below it.
        let judge_environ = !watch.secrets_in_callers_environment || (below_bridge && !is_bridge);
        if judge_environ {
            if let Ok(environ) = std::fs::read(dir.join("environ")) {
                for label in secrets.found_in(&environ) {
                    watched
                        .proc_leaks
                        .insert(format!("environ of {comm}{place}: {label}"));
                }
            }
        }
        if is_bridge {
            if let Ok(limits) = std::fs::read_to_string(dir.join("limits")) {
                if let Some(line) = limits.lines().find(|l| l.starts_with("Max core file size")) {
                    let mut words = line["Max core file size".len()..].split_whitespace();
                    if let (Some(soft), Some(hard)) = (words.next(), words.next()) {
                        watched.bridge_core_limit = Some((soft.to_owned(), hard.to_owned()));
                    }
                }
            }
        }
        for child in children.get(&pid).into_iter().flatten() {
            queue.push((*child, below_bridge || is_bridge));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_distinctive_and_of_the_asked_length() {
        let a = unique_secret(20);
        let b = unique_secret(20);
        assert_eq!(a.len(), 20);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_ne!(a, b);
    }

    #[test]
    fn a_piece_of_a_secret_is_found_and_redacted_but_the_prefix_alone_is_not() {
        let secret = unique_secret(32);
        let secrets = Secrets::new().with("password", &secret);
        let cut = format!("line without '=': password {}", &secret[..20]);
        assert_eq!(secrets.found_in(cut.as_bytes()), ["password"]);
        assert!(secrets.found_in(SECRET_PREFIX.as_bytes()).is_empty());
        assert!(!secrets.redact(&cut).contains(&secret[12..20]));
        assert!(secrets.found_in(b"nothing here").is_empty());
    }

    #[test]
    fn a_watched_run_sees_a_secret_in_a_childs_environment_and_command_line() {
        let secret = unique_secret(24);
        let secrets = Secrets::new().with("token", &secret);
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("sleep 0.3; true")
            .env("TOKEN", &secret);
        let watch = Watch {
            bridge: PathBuf::from("/bin/sh"),
            secrets_in_callers_environment: false,
            timeout: Duration::from_secs(10),
        };
        let watched = run_watched(command, None, &watch, &secrets).unwrap();
        assert!(watched.status.success());
        assert!(
            watched
                .proc_leaks
                .iter()
                .any(|l| l.starts_with("environ of")),
            "{:?}",
            watched.proc_leaks
        );
        assert!(watched.bridge_core_limit.is_some());
    }
}
