//! A front end stopped from outside takes its children with it: SIGTERM (an
//! admin's ^C, a caller's stop) kills every child's process group before exiting,
//! and SIGKILL (Pacemaker's timeout kills the agent's process group, which a
//! child's own group is not part of) kills the child through its parent-death
//! signal. Either way a script's late `on` never lands after the run has ended,
//! where it would power a node back on that a later fence reported off.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// A one-outlet device whose `on` takes two seconds before it lands in `outlet`.
fn slow_on_script(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("slow-on");
    std::fs::write(
        &script,
        r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) echo started > "$dir/on-started"; sleep 2; echo on > "$dir/outlet" ;;
    off) echo off > "$dir/outlet" ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("outlet"), "off\n").unwrap();
    script
}

/// Starts `on` through the fence agent, waits until the script runs, sends
/// `signal`, and returns how the agent ended.
fn stop_an_on(dir: &Path, signal: Signal) -> std::process::ExitStatus {
    let script = slow_on_script(dir);
    let mut child = Command::new(BIN)
        .args(["fence-agent", "script"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "action=on\nscript={}\nplug=1\ntimeout=30",
            script.display()
        )
        .unwrap();
    }
    let until = Instant::now() + Duration::from_secs(20);
    while !dir.join("on-started").exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dir.join("on-started").exists(), "the script never ran");
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    kill(pid, signal).unwrap();
    let status = child.wait().unwrap();
    // Past the time the script's `on` would have landed.
    std::thread::sleep(Duration::from_secs(3));
    status
}

#[test]
fn sigterm_kills_the_childrens_process_groups_before_the_agent_exits() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the orphaned `on` landed");
}

#[test]
fn sigkill_of_the_agent_takes_its_child_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), Signal::SIGKILL);
    assert!(status.code().is_none(), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the orphaned `on` landed");
}
