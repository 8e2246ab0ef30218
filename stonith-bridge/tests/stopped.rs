//! A front end stopped from outside takes its children with it: SIGTERM (an
//! admin's ^C, a caller's stop) kills every child's process group before exiting,
//! and SIGKILL (Pacemaker's timeout kills the agent's process group, which a
//! child's own group is not part of) has the child's supervisor, told by its
//! parent-death signal, kill the child's group. Either way a script's late `on`
//! never lands after the run has ended, where it would power a node back on that a
//! later fence reported off, even when a helper the script started does the `on`.
//! A helper that left the script's process group (`setsid`, `set -m`) is ended
//! too: the script's supervisor adopts the orphans below it, and the run (or, when
//! fencekit is killed outright, the supervisor itself) kills them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// A one-outlet device whose `on` takes two seconds before it lands in `outlet`.
const SLOW_ON: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) echo started > "$dir/on-started"; sleep 2; echo on > "$dir/outlet" ;;
    off) echo off > "$dir/outlet" ;;
esac
"#;

/// The same, with the late `on` done by a helper program the script waits for: a
/// grandchild of the agent, which the parent-death signal does not reach.
const HELPER_ON: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) echo started > "$dir/on-started"
        sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" ;;
    off) echo off > "$dir/outlet" ;;
esac
"#;

/// A helper that moves into the process group of the script's supervisor's
/// parent (fencekit), forks, and has its child switch the outlet on two seconds
/// later.
const JOIN_FENCEKITS_GROUP: &str = r#"import os, sys, time
def parent(pid):
    return int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])
supervisor = os.getppid()
while b"fencekit-child" not in open("/proc/%d/cmdline" % supervisor, "rb").read().split(b"\0"):
    supervisor = parent(supervisor)
    if supervisor <= 1:
        # Out of sight (a PID namespace of the script's own): nothing to join.
        open(sys.argv[1] + "/ready", "w").close()
        sys.exit(0)
os.setpgid(0, os.getpgid(parent(supervisor)))
if os.fork():
    os._exit(0)
open(sys.argv[1] + "/ready", "w").close()
time.sleep(2)
open(sys.argv[1] + "/outlet", "w").write("on\n")
"#;

/// The script fence agent's `off` of plug 1 through `script` (timeout 20 s), with
/// `extra` stdin lines; waits for it and gives its output.
fn off_through_script(script: &Path, extra: &str) -> std::process::Output {
    off_through(Command::new(BIN), script, extra)
}

/// [`off_through_script`] with at most `descriptors` open files.
fn off_through_script_limited(script: &Path, descriptors: u32) -> std::process::Output {
    let mut command = Command::new("/bin/sh");
    command.args([
        "-c",
        &format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""),
        BIN,
    ]);
    off_through(command, script, "")
}

fn off_through(mut command: Command, script: &Path, extra: &str) -> std::process::Output {
    let output = command
        .args(["fence-agent", "script"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(
                stdin,
                "action=off\nscript={}\nplug=1\ntimeout=20\n{extra}",
                script.display()
            )?;
            drop(stdin);
            let pid = child.id();
            child.wait_with_output().map(|output| (pid, output))
        })
        .unwrap();
    assert_no_cgroup_left(output.0);
    output.1
}

/// That no cgroup the agent `pid` made for a program is left (the agent runs in
/// this test's own cgroup).
fn assert_no_cgroup_left(pid: u32) {
    let Some(home) = fencekit_core::child::cgroup_home() else {
        return;
    };
    let prefix = format!("fencekit-{pid}-");
    let left: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(
        left.is_empty(),
        "cgroups left in {}: {left:?}",
        home.display()
    );
}

fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    let script = dir.join("device");
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("outlet"), "off\n").unwrap();
    script
}

/// Starts the script fence agent's `on` of plug 1 through `script` (timeout
/// 30 s), its input written and closed, its output dropped.
fn start_an_on(script: &Path) -> std::process::Child {
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
    child
}

/// Starts `on` through the fence agent, waits until the script runs, sends
/// `signal`, and returns how the agent ended.
fn stop_an_on(dir: &Path, body: &str, signal: Signal) -> std::process::ExitStatus {
    let script = script(dir, body);
    let mut child = start_an_on(&script);
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
    assert_no_cgroup_left(child.id());
    status
}

#[test]
fn sigterm_kills_the_childrens_process_groups_before_the_agent_exits() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), SLOW_ON, Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the orphaned `on` landed");
}

#[test]
fn sigkill_of_the_agent_takes_its_child_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), SLOW_ON, Signal::SIGKILL);
    assert!(status.code().is_none(), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the orphaned `on` landed");
}

#[test]
fn sigkill_of_the_agent_takes_what_its_child_started_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), HELPER_ON, Signal::SIGKILL);
    assert!(status.code().is_none(), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the helper's orphaned `on` landed");
}

/// A device whose `on` lands a third of a second after the script starts.
const LATE_ON: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) sleep 0.3; echo on > "$dir/outlet" ;;
    off) echo off > "$dir/outlet" ;;
esac
"#;

/// fencekit SIGKILLed while it starts the script (Pacemaker's timeout may land
/// there): the parent-death signal came while the child still had fencekit's
/// own SIGTERM handler, which took it, and the supervisor started orphaned, never
/// to know; the script's `on` landed after the agent was dead (19 times in 30
/// before). Now the child dies before anything runs, or the supervisor ends the
/// script. The cgroups made for programs that never started are swept by the
/// next fencekit.
#[test]
fn sigkill_while_the_script_is_being_started_lets_nothing_run_on() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), LATE_ON);
    let mut killed = Vec::new();
    for i in 0..20u64 {
        std::fs::write(dir.path().join("outlet"), "off\n").unwrap();
        let mut child = start_an_on(&script);
        std::thread::sleep(Duration::from_millis(5 + (i * 7) % 21));
        kill(
            Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        killed.push(child.id());
        std::thread::sleep(Duration::from_millis(700));
        let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
        assert_eq!(
            outlet.trim(),
            "off",
            "try {i}: the script's `on` landed after the agent was killed"
        );
    }
    // Another run of fencekit sweeps what the killed ones left.
    let out = off_through_script(&script, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in killed {
        assert_no_cgroup_left(pid);
    }
}

#[test]
fn sigterm_takes_what_its_child_started_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), HELPER_ON, Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the helper's orphaned `on` landed");
}

#[test]
fn any_other_deadly_signal_takes_the_children_with_it_too() {
    for signal in [Signal::SIGUSR1, Signal::SIGALRM, Signal::SIGQUIT] {
        let dir = tempfile::tempdir().unwrap();
        let _ = stop_an_on(dir.path(), HELPER_ON, signal);
        let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
        assert_eq!(
            outlet.trim(),
            "off",
            "{signal}: the helper's orphaned `on` landed"
        );
    }
}

/// A device whose `off` lands, and which then starts a helper outside its process
/// group (`setsid`, or job control with `set -m`) that switches the outlet back on
/// two seconds later: after a reported off, the node would come back.
fn escaping_on(how: &str) -> String {
    let start = match how {
        "setsid" => r#"setsid sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" &"#,
        // A chain of 500 nested shells in a session of its own, the innermost of
        // which switches the outlet back on.
        "setsid chain" => {
            r#"(setsid sh "$dir/chain" 500 "$dir" </dev/null >/dev/null 2>&1 &)
        i=0; while [ ! -e "$dir/ready" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done"#
        }
        // The script lets its supervisor go itself, writing into the pipe the
        // supervisor waits on (open to it through /proc), before it exits
        // (where the script can see it: not from a PID namespace of its own).
        "releases its supervisor" => {
            r#"s=$PPID; until [ "$s" -le 1 ] || tr '\0' '\n' < /proc/$s/cmdline | grep -qx fencekit-child; do
            read -r a < /proc/$s/stat; set -- ${a##*)}; s=$2; done
        [ "$s" -gt 1 ] && echo go > /proc/$s/fd/4
        setsid sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" </dev/null >/dev/null 2>&1 &"#
        }
        // A helper in a session of its own whose main thread ended while another
        // thread lives on: its pid reads as a zombie.
        "main thread gone" => {
            r#"setsid python3 -c 'import ctypes, sys, threading, time
def late():
    time.sleep(2)
    open(sys.argv[1] + "/outlet", "w").write("on\n")
threading.Thread(target=late).start()
ctypes.CDLL(None).pthread_exit(None)' "$dir" </dev/null >/dev/null 2>&1 &
        sleep 0.3"#
        }
        // The script kills its own process group, or its parent, with SIGKILL
        // once the helper runs: before, the supervisor shared that group and
        // died with it, and the helper went to init.
        "kills its own group" => {
            r#"setsid sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" </dev/null >/dev/null 2>&1 &
        sleep 0.2; kill -KILL 0"#
        }
        "kills its parent" => {
            r#"setsid sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" </dev/null >/dev/null 2>&1 &
        sleep 0.2; kill -KILL $PPID"#
        }
        // Twenty helpers in sessions of their own, each with ten children in
        // groups of their own that ignore SIGHUP and, on SIGCONT, fork a child
        // that switches the outlet on: killing a helper orphans its children's
        // groups while they are stopped, and the kernel sends them SIGHUP and
        // SIGCONT; a child woken so forks before its own kill.
        "woken by an orphaned group" => {
            r#"for q in $(seq 20); do
            setsid perl -MPOSIX -e 'for (1..10) { next if fork; setpgid(0, 0);
                $SIG{HUP} = "IGNORE";
                $SIG{CONT} = sub { return if fork; sleep 2;
                    open F, ">", $ARGV[0]; print F "on\n"; close F; POSIX::_exit(0) };
                sleep 99 while 1 }
              sleep 99 while 1' "$dir/outlet" </dev/null >/dev/null 2>&1 &
        done; sleep 0.5"#
        }
        // A child subreaper that ignores SIGCHLD (its children are reaped by the
        // kernel, leaving no zombie), below which a helper hops from pid to pid
        // for two seconds (forks, and the parent exits), then switches the
        // outlet on: a read of /proc misses a process that moved meanwhile.
        "hops from pid to pid" => {
            r#"perl -MPOSIX -e 'syscall(157, 36, 1, 0, 0, 0); $SIG{CHLD} = "IGNORE"; $t = time;
            if (fork) { sleep 99 while 1 }
            while (time - $t < 2) { POSIX::_exit(0) if fork }
            sleep 1; open F, ">", $ARGV[0]; print F "on\n"' "$dir/outlet" </dev/null >/dev/null 2>&1 &
        sleep 0.2"#
        }
        // A helper in a session of its own that hops from pid to pid as fast as
        // it can fork for a second and a half, each copy sending the script's
        // supervisor SIGTERM (whose trap has the supervisor reap the zombies the
        // hops leave), beside 300 other processes that slow each read of /proc:
        // a hunt through /proc alone missed it three times in four.
        "hops while it signals its supervisor" => {
            r#"s=$PPID; until [ "$s" -le 1 ] || tr '\0' '\n' < /proc/$s/cmdline | grep -qx fencekit-child; do
            read -r a < /proc/$s/stat; set -- ${a##*)}; s=$2; done
        i=0; while [ $i -lt 300 ]; do sleep 4.5 & i=$((i+1)); done
        setsid perl -MPOSIX -MTime::HiRes=time,sleep -e '$t = time;
            while (time - $t < 1.5) { POSIX::_exit(0) if fork; kill "TERM", $ARGV[1] }
            sleep 0.5; open F, ">", $ARGV[0]; print F "on\n"' "$dir/outlet" "$s" </dev/null >/dev/null 2>&1 &
        sleep 0.2"#
        }
        // More processes than fencekit may open descriptors (its limit is set
        // to 256 for this case): a hunt that kept one open per process could no
        // longer read /proc and took that for nothing left.
        "outnumbers the descriptors" => {
            r#"i=0; while [ $i -lt 300 ]; do sleep 4.5 & i=$((i+1)); done
        sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" &"#
        }
        // A helper that joins the process group of fencekit itself (the
        // supervisor's parent), then leaves its own parent.
        "own group" => {
            r#"python3 "$dir/join" "$dir" &
        i=0; while [ ! -e "$dir/ready" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done"#
        }
        _ => r#"set -m; sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" &"#,
    };
    format!(
        r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    off) echo off > "$dir/outlet"; {start} ;;
    on) echo on > "$dir/outlet" ;;
esac
"#
    )
}

#[test]
fn a_helper_that_left_the_scripts_process_group_ends_with_the_run() {
    for how in [
        "setsid",
        "set -m",
        "setsid chain",
        "own group",
        "releases its supervisor",
        "main thread gone",
        "kills its own group",
        "kills its parent",
        "woken by an orphaned group",
        "hops from pid to pid",
        "outnumbers the descriptors",
        "hops while it signals its supervisor",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let script = script(dir.path(), &escaping_on(how));
        std::fs::write(dir.path().join("join"), JOIN_FENCEKITS_GROUP).unwrap();
        std::fs::write(
            dir.path().join("chain"),
            "if [ \"$1\" -le 0 ]; then touch \"$2/ready\"; sleep 2; echo on > \"$2/outlet\"; \
             else sh \"$2/chain\" $(($1 - 1)) \"$2\"; :; fi\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("outlet"), "on\n").unwrap();
        let out = if how == "outnumbers the descriptors" {
            off_through_script_limited(&script, 256)
        } else {
            off_through_script(&script, "")
        };
        // A script killed (by itself) may fail the run; what counts is the outlet.
        assert!(
            out.status.success() || how.starts_with("kills"),
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Past the time the helper's `on` would have landed.
        std::thread::sleep(Duration::from_secs(3));
        let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
        assert_eq!(
            outlet.trim(),
            "off",
            "{how}: a helper outside the script's group switched the fenced outlet back on"
        );
    }
}

#[test]
fn sigterm_takes_a_helper_that_left_the_scripts_process_group_with_it() {
    let escaping = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) echo started > "$dir/on-started"
        setsid sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" &
        sleep 30 ;;
    off) echo off > "$dir/outlet" ;;
esac
"#;
    let dir = tempfile::tempdir().unwrap();
    let status = stop_an_on(dir.path(), escaping, Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "{status:?}");
    let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
    assert_eq!(outlet.trim(), "off", "the escaped helper's `on` landed");
}

/// A script's `on` that starts a helper outside its process group (`setsid`, or
/// `set -m`) and waits: the helper switches the outlet on two seconds later.
fn escaping_helper_on(how: &str) -> String {
    let prefix = if how == "setsid" {
        "setsid "
    } else {
        "set -m; "
    };
    format!(
        r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    on) {prefix}sh -c 'sleep 2; echo on > "$1/outlet"' helper "$dir" &
        echo started > "$dir/on-started"
        sleep 30 ;;
    off) echo off > "$dir/outlet" ;;
esac
"#
    )
}

#[test]
fn any_deadly_signal_takes_a_helper_that_left_the_scripts_process_group_with_it() {
    // Caught ones end the run as SIGTERM does; SIGKILL leaves it to the script's
    // supervisor, which kills what it adopts once the script is killed.
    for how in ["setsid", "set -m"] {
        for signal in [Signal::SIGUSR1, Signal::SIGALRM, Signal::SIGKILL] {
            let dir = tempfile::tempdir().unwrap();
            let status = stop_an_on(dir.path(), &escaping_helper_on(how), signal);
            if signal != Signal::SIGKILL {
                assert_eq!(status.code(), Some(128 + signal as i32), "{status:?}");
            }
            let outlet = std::fs::read_to_string(dir.path().join("outlet")).unwrap();
            assert_eq!(
                outlet.trim(),
                "off",
                "{how}, {signal}: the escaped helper's `on` landed"
            );
        }
    }
}

#[test]
fn a_stray_that_keeps_forking_is_ended_without_holding_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // A unique sleep length marks the stray's children among the machine's.
    let mark = format!("100.{}", std::process::id());
    let body = format!(
        r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
    status) cat "$dir/outlet" ;;
    off) echo off > "$dir/outlet"
         setsid sh -c 'while :; do sleep {mark} & done' & ;;
    on) echo on > "$dir/outlet" ;;
esac
"#
    );
    let script = script(dir.path(), &body);
    std::fs::write(dir.path().join("outlet"), "on\n").unwrap();
    let started = Instant::now();
    let out = off_through_script(&script, "");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::thread::sleep(Duration::from_millis(300));
    let left = Command::new("pgrep")
        .args(["-f", &format!("sleep {mark}")])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&left.stdout).to_string();
    // Whatever escaped is ended here, so that the machine is left clean.
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(
        pids.trim().is_empty(),
        "the stray's children live on: {pids}"
    );
}
