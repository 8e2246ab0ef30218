//! A reader that goes away is not bad input the run may crash on: the fencer, or a
//! `| head` after a `list`, may close our stdout or stderr while the run goes on. A
//! write that fails loses its text; the fence still ends confirmed, with its exit
//! code, never with a panic (exit 101). A run whose answer was on stdout (a list, a
//! status) and could not be written there ends 1: its caller never got it.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// A pipe whose read end is already closed: every write to it fails (EPIPE).
fn closed_pipe() -> Stdio {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    Stdio::from(write)
}

/// Runs the fence agent for `plugin` with `options` on stdin and `stdout`/`stderr`
/// as given, killed by its PID after 30 s, and gives its exit code.
fn agent_exit(options: &str, stdout: Stdio, stderr: Stdio) -> Option<i32> {
    let mut command = Command::new(BIN);
    command
        .args(["fence-agent", "sim"])
        .stdout(stdout)
        .stderr(stderr);
    exit_of(command, options)
}

/// Spawns `command` with `options` on its stdin, kills it by its PID past 30 s, and
/// gives its exit code.
fn exit_of(command: Command, options: &str) -> Option<i32> {
    exit_within_30_s(spawn_fed(command, options))
}

/// `command` started with `options` written to its stdin.
fn spawn_fed(mut command: Command, options: &str) -> std::process::Child {
    let mut child = command
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(options.as_bytes())
        .unwrap();
    child
}

/// `child`'s exit code; killed by its PID past 30 s.
fn exit_within_30_s(mut child: std::process::Child) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent ran past 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_closed_stderr_during_a_verbose_off_still_fences_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let options = format!(
        "action=off\nplug=1\nverbose_level=3\nstate_file={}\n",
        state.display()
    );
    let code = agent_exit(&options, Stdio::null(), closed_pipe());
    assert_eq!(code, Some(0), "exit code with stderr closed");
    // The oracle: the simulator's own state file, not fencekit's report.
    let text = std::fs::read_to_string(&state).unwrap();
    let plug1 = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no plug 1 in the state file: {text:?}"));
    assert_eq!(
        plug1.split_whitespace().nth(1),
        Some("off"),
        "state file: {text:?}"
    );
}

#[test]
fn a_list_into_a_closed_stdout_ends_without_a_panic_and_not_zero() {
    let code = agent_exit("action=list\nplugs=1024\n", closed_pipe(), Stdio::piped());
    assert_eq!(code, Some(1), "exit code of a list nobody got");
}

#[test]
fn a_status_into_a_full_disk_is_not_zero() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let code = agent_exit(
        "action=status\nplugs=2\nplug=1\n",
        Stdio::from(full),
        Stdio::null(),
    );
    assert_eq!(code, Some(1), "exit code of a status nobody got");
}

#[test]
fn a_failure_told_into_closed_pipes_keeps_its_exit_code() {
    // The sim refuses the password: the failure message cannot be written anywhere.
    let code = agent_exit(
        "action=off\nplug=1\npassword=a\nexpect_password=b\n",
        closed_pipe(),
        closed_pipe(),
    );
    assert_eq!(code, Some(1), "exit code of a refused fence");
}

#[test]
fn completions_into_a_full_disk_end_1_without_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = Command::new(BIN)
        .args(["completions", "zsh"])
        .stdout(Stdio::from(full))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn a_stderr_nobody_reads_does_not_hold_the_run_past_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // 200 lying plugs polled fast at trace level: far more log than a pipe holds.
    let lies: Vec<String> = (1..=200).map(|n| n.to_string()).collect();
    let options = format!(
        "action=off\nplugs=200\nport={}\nlying_plugs={}\ntimeout=2\npoll_interval=0.01\n\
         verbose_level=3\nstate_file={}\n",
        lies.join(","),
        lies.join(","),
        state.display()
    );
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["fence-agent", "sim"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(options.as_bytes())
        .unwrap();
    // The stderr pipe is held and never read.
    let _unread = child.stderr.take();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent ran past 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1), "a lying fence");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn closed_standard_output_and_error_are_dev_null_so_no_device_file_takes_their_numbers() {
    // With descriptors 1 and 2 closed, the next files the agent opens (its runtime's,
    // a device's socket) would take their numbers, and "Success: Off" or a log line
    // would be written into them. Rust's runtime opens /dev/null on a closed standard
    // descriptor before main; this holds it to that. The test reads what the
    // agent's descriptors are while the script's first run waits for it.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("device");
    std::fs::write(
        &script,
        r#"#!/bin/sh
d=$FENCEKIT_PARAM_STATE_DIR
if [ ! -e "$d/ready" ]; then
    touch "$d/ready"
    i=0; while [ ! -e "$d/go" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done
fi
case "$1" in
    status) cat "$d/outlet" ;;
    off) echo off > "$d/outlet" ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("outlet"), "on\n").unwrap();
    let options = format!(
        "action=off\nscript={}\nplug=1\nstate_dir={}\n",
        script.display(),
        dir.path().display()
    );
    // The shell execs the agent: its pid is the agent's.
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "exec \"$0\" fence-agent script >&- 2>&-", BIN])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let agent = spawn_fed(command, &options);
    let until = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("ready").exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let fds: Vec<String> = [1, 2]
        .iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", agent.id()));
            format!(
                "{fd} {}",
                target.map_or("?".into(), |t| t.display().to_string())
            )
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let code = exit_within_30_s(agent);
    assert_eq!(code, Some(0), "exit code; descriptors seen: {fds:?}");
    for line in &fds {
        assert!(line.ends_with(" /dev/null"), "descriptors seen: {fds:?}");
    }
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off");
}
