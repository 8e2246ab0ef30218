//! The timing model against Pacemaker's: `timeout` bounds the whole run, `delay`
//! included, so that the agent ends inside Pacemaker's operation timeout; a `delay`
//! that leaves no time to switch and read back is refused at validation (exit 1, as
//! fence-agents' usage errors), never cut short silently; fence-agents'
//! `disable_timeout=true` lets a slow plug take until `timeout` instead of
//! `power_timeout`. Judged with the sim device's state file (its own record).

use std::process::Command;
use std::time::{Duration, Instant};

use fencekit_tests::tool::{self, ToolOutput};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// The sim's fence agent with `stdin`, and how long it ran (killed past a minute).
fn agent(stdin: &str) -> (ToolOutput, Duration) {
    let started = Instant::now();
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]).env_remove("RUST_LOG");
    let out = tool::run(command, Some(stdin.as_bytes()), Duration::from_secs(60)).unwrap();
    (out, started.elapsed())
}

fn states(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_delay_that_leaves_no_time_to_fence_is_refused_before_anything_is_switched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for action in ["validate-all", "off", "reboot"] {
        let (out, took) = agent(&format!(
            "action={action}\nplugs=2\nplug=1\nstate_file={}\ndelay=5\ntimeout=3\n",
            state.display()
        ));
        assert_eq!(out.status.code(), Some(1), "{action}: {}", out.text());
        assert!(out.text().contains("delay"), "{action}: {}", out.text());
        assert!(out.text().contains("pcmk_off_timeout"), "{}", out.text());
        assert!(took < Duration::from_secs(2), "{action} took {took:?}");
    }
    // Nothing was switched: the device was never built.
    assert!(!states(&state).contains("off"), "{}", states(&state));
    let (out, _) = agent("action=validate-all\nplugs=2\ntimeout=0\n");
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("timeout"), "{}", out.text());
}

#[test]
fn a_delay_that_fits_is_waited_in_full_and_the_run_still_ends_by_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (out, took) = agent(&format!(
        "action=off\nplugs=2\nplug=1\nstate_file={}\ndelay=2\npower_timeout=3\ntimeout=8\n",
        state.display()
    ));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(
        took >= Duration::from_secs(2),
        "the delay was cut: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn disable_timeout_lets_a_slow_plug_take_until_the_timeout_instead_of_power_timeout() {
    for (disable, expect) in [("false", Some(1)), ("true", Some(0))] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (out, took) = agent(&format!(
            "action=off\nplugs=2\nplug=1\nstate_file={}\noff_delay=3\npower_timeout=1\n\
             timeout=10\ndisable_timeout={disable}\n",
            state.display()
        ));
        assert_eq!(
            out.status.code(),
            expect,
            "disable_timeout={disable}: {}",
            out.text()
        );
        assert!(took < Duration::from_secs(11), "{took:?}");
    }
}

/// A `password_script` runs inside the operation's deadline, not for a fixed time of
/// its own: a script that hangs ends the run by `timeout`, with a clear error.
#[test]
fn a_hanging_password_script_ends_by_the_operations_timeout() {
    let (out, took) = agent(
        "action=status\nplugs=2\nplug=1\npassword_script=sleep 30\nexpect_password=x\ntimeout=2\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("password"), "{}", out.text());
    assert!(took < Duration::from_secs(3), "ran {took:?} with timeout=2");
}

#[test]
fn a_power_wait_that_leaves_no_time_to_read_back_is_refused_before_anything_is_switched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (out, took) = agent(&format!(
        "action=reboot\nplugs=2\nplug=1\nstate_file={}\npower_wait=20\ntimeout=9\n",
        state.display()
    ));
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("power_wait"), "{}", out.text());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!states(&state).contains("off"), "{}", states(&state));
    // The same for the wait between a reboot's off and its on: past the deadline
    // it left the node off (reported rebooted, with a warning).
    let (out, took) = agent(&format!(
        "action=reboot\nplugs=2\nplug=1\nstate_file={}\nreboot_wait=10\ntimeout=4\n",
        state.display()
    ));
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("reboot_wait"), "{}", out.text());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!states(&state).contains("off"), "{}", states(&state));
}

/// The sim fence agent with its stdin a pipe the test holds open, stderr kept.
fn sim_agent_on_a_pipe() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_stonith-bridge"))
        .args(["fence-agent", "sim"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A caller that writes the options and never closes stdin does not hold the
/// agent: the options are read by the operation's timeout (the `timeout=` line
/// read so far, else the default 50 s), then the run ends, saying why.
#[test]
fn options_on_a_stdin_never_closed_end_the_run_by_the_timeout_they_give() {
    use std::io::Write;
    let started = Instant::now();
    let mut child = sim_agent_on_a_pipe();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"plugs=2\nplug=1\naction=status\ntimeout=5\n")
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent still waits on its stdin after 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}: {said}");
    assert!(said.contains("stdin"), "{said}");
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(7)).contains(&took),
        "{took:?}: {said}"
    );
}

/// A `timeout=` on the last line, without its line end, counts once stdin closes:
/// options that arrive after the timeout they give end the run before any command.
#[test]
fn a_timeout_on_an_unterminated_last_line_that_is_already_spent_switches_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let started = Instant::now();
    let mut child = sim_agent_on_a_pipe();
    let mut stdin = child.stdin.take().unwrap();
    // Spelled as the options reader also takes it.
    write!(
        stdin,
        "action=off\nplugs=2\nplug=1\nstate_file={}\nTimeout = 1",
        state.display()
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    drop(stdin);
    let status = child.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}: {said}");
    assert!(said.contains("stdin"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(4), "{said}");
    assert!(!states(&state).contains("off"), "{}", states(&state));
}

/// A device check (`monitor`, cluster-glue `status`) of a BMC that never answers,
/// with no `timeout` given, ends by fencekit's own 15 s with its reason: inside the
/// 20 s Pacemaker gives a monitor operation by default, rather than being killed
/// there at the 50 s default `timeout`. A `timeout` given rules.
#[test]
fn a_device_check_of_a_silent_device_ends_inside_pacemakers_monitor_timeout() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let run = |args: &[&str], stdin: Option<String>, env: &[(&str, &str)]| {
        let started = Instant::now();
        let mut command = Command::new(BIN);
        command.args(args).env_remove("RUST_LOG");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = tool::run(
            command,
            stdin.as_deref().map(str::as_bytes),
            Duration::from_secs(60),
        )
        .unwrap();
        (out, started.elapsed())
    };
    let stdin = |extra: &str| {
        Some(format!(
            "action=monitor\nip=127.0.0.1\nipport={port}\nusername=u\npassword=p\nlanplus=1\n{extra}"
        ))
    };
    std::thread::scope(|s| {
        let by_default = s.spawn(|| run(&["fence-agent", "ipmi"], stdin(""), &[]));
        let given = s.spawn(|| run(&["fence-agent", "ipmi"], stdin("timeout=3\n"), &[]));
        let glue = s.spawn(|| {
            run(
                &["external", "ipmi", "status"],
                None,
                &[
                    ("hostname", "node1"),
                    ("ipaddr", "127.0.0.1"),
                    ("port", port.as_str()),
                    ("userid", "u"),
                    ("passwd", "p"),
                    ("interface", "lanplus"),
                ],
            )
        });
        for (what, handle, within) in [
            ("monitor", by_default, 14.0..16.5),
            ("monitor timeout=3", given, 2.0..4.5),
            ("cluster-glue status", glue, 14.0..16.5),
        ] {
            let (out, took) = handle.join().unwrap();
            assert_eq!(out.status.code(), Some(1), "{what}: {}", out.text());
            assert!(
                out.text().contains("no answer from 127.0.0.1"),
                "{what}: {}",
                out.text()
            );
            assert!(
                within.contains(&took.as_secs_f64()),
                "{what} took {took:?}, not {within:?}"
            );
        }
    });
}
