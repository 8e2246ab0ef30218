//! The console plugins over telnet, asked for with `telnet=1`, against a real telnet
//! server (GNU inetutils `telnetd`, its login program our simulator asking for user
//! name and password as an APC NMC or a Baytech strip does), side by side with
//! fence-agents' own `fence_apc`, whose default transport is telnet. Judged from
//! the simulator's outlet file, never through fencekit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fencekit_console::sim::OutletFile;
use fencekit_core::PowerState;
use fencekit_tests::bridge::{self, Installed};
use fencekit_tests::peers;
use fencekit_tests::telnetd::Telnetd;
use fencekit_tests::tool::{self, ToolOutput};

const USER: &str = "apc";
const PASSWORD: &str = "fk-telnet-pw-4c1e";

/// A console simulator behind telnetd, asking for its own login.
struct Device {
    telnetd: Telnetd,
    state: PathBuf,
    /// The unit's one session: held, a login finds it in use.
    lock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Device {
    /// `package`/`bin` is the simulator, `mode` its `--mode`.
    fn start(package: &str, bin: &str, mode: &str) -> Option<Device> {
        let telnetd = peers::require("telnetd", "inetutils-telnetd")?;
        if !peers::require_root("telnetd (a PTY per session)") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("outlets");
        let lock = dir.path().join("session.lock");
        let password = dir.path().join("password");
        std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        let sim = bridge::workspace_binary(package, bin).unwrap();
        let login = format!(
            "{} --state {} --lock {} --mode {mode} --outlets 4 --login {USER}:{}",
            sim.display(),
            state.display(),
            lock.display(),
            password.display()
        );
        Some(Device {
            telnetd: Telnetd::start(&telnetd, &login).unwrap(),
            state,
            lock,
            _dir: dir,
        })
    }

    fn stdin(&self, action: &str, plug: &str, password: &str, extra: &str) -> String {
        format!(
            "action={action}\nip=127.0.0.1\nipport={}\nusername={USER}\npassword={password}\n\
             plug={plug}\npower_timeout=5\n{extra}",
            self.telnetd.port()
        )
    }

    /// Outlet `n`'s true state, from the simulator's file (`None` before the first
    /// session made it).
    fn outlet(&self, strip: u32, n: u32) -> Option<PowerState> {
        OutletFile::new(&self.state).state(strip, n).unwrap()
    }

    fn states(&self, strip: u32) -> Vec<Option<PowerState>> {
        (1..=4).map(|n| self.outlet(strip, n)).collect()
    }

    /// Every outlet on.
    fn reset(&self) {
        let file = OutletFile::new(&self.state);
        if file.load().map(|o| o.is_empty()).unwrap_or(true) {
            return;
        }
        file.update(|all| all.iter_mut().for_each(|o| o.on = true))
            .unwrap();
    }
}

fn run(agent: &Path, stdin: &str) -> ToolOutput {
    let mut command = Command::new(agent);
    command.env_remove("RUST_LOG").env("LC_ALL", "C");
    tool::run(command, Some(stdin.as_bytes()), Duration::from_secs(60)).unwrap()
}

#[test]
fn an_apc_console_over_telnet_is_switched_and_read_back_in_both_uis() {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    for mode in ["menu", "cli"] {
        let Some(pdu) = Device::start("fencekit-apc", "fencekit-apc-console-sim", mode) else {
            return;
        };
        let out = run(&ours, &pdu.stdin("off", "2", PASSWORD, "telnet=1\n"));
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", out.text());
        assert_eq!(pdu.outlet(1, 2), Some(PowerState::Off), "{mode}");
        assert_eq!(pdu.outlet(1, 1), Some(PowerState::On), "{mode}");
        let out = run(&ours, &pdu.stdin("status", "2", PASSWORD, "telnet=1\n"));
        assert_eq!(out.status.code(), Some(2), "{mode}: {}", out.text());
        let out = run(&ours, &pdu.stdin("reboot", "3", PASSWORD, "telnet=1\n"));
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", out.text());
        assert_eq!(pdu.outlet(1, 3), Some(PowerState::On), "{mode}");
        // The warning that the password crossed in clear text.
        assert!(out.stderr.contains("clear text"), "{mode}: {}", out.text());
        assert!(!out.text().contains(PASSWORD), "{mode}: {}", out.text());
    }
}

#[test]
fn fence_apcs_telnet_default_and_ours_with_telnet_1_leave_the_same_outlets() {
    let Some(theirs) = peers::require("fence_apc", "fence-agents") else {
        return;
    };
    if peers::require("telnet", "telnet").is_none() {
        return;
    }
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let Some(pdu) = Device::start("fencekit-apc", "fencekit-apc-console-sim", "menu") else {
        return;
    };
    let steps = [
        ("off", "1"),
        ("status", "1"),
        ("off", "3"),
        ("on", "1"),
        ("status", "4"),
    ];
    let drive = |agent: &Path, extra: &str| {
        pdu.reset();
        steps
            .iter()
            .map(|(action, plug)| {
                let out = run(agent, &pdu.stdin(action, plug, PASSWORD, extra));
                (out.status.code(), pdu.states(1))
            })
            .collect::<Vec<_>>()
    };
    // Their first session makes the outlet file; ours starts from the same.
    let with_theirs = drive(&theirs, "");
    let with_ours = drive(&ours, "telnet=1\n");
    assert_eq!(
        with_theirs, with_ours,
        "fence_apc (telnet) vs ours (telnet=1)"
    );
    let codes: Vec<Option<i32>> = with_ours.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [Some(0), Some(2), Some(0), Some(0), Some(0)]);
    let on = Some(PowerState::On);
    assert_eq!(
        with_ours.last().unwrap().1,
        vec![on, on, Some(PowerState::Off), on]
    );
}

#[test]
fn telnet_is_never_implied_and_a_wrong_password_fails_at_once() {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let Some(pdu) = Device::start("fencekit-apc", "fencekit-apc-console-sim", "menu") else {
        return;
    };
    // fence_apc's telnet configuration without telnet=1: refused, nothing switched.
    let out = run(&ours, &pdu.stdin("off", "2", PASSWORD, ""));
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.stderr.contains("telnet=1"), "{}", out.text());
    assert_eq!(
        pdu.outlet(1, 2),
        None,
        "a session was opened: {}",
        out.text()
    );
    for extra in ["telnet=1\nsecure=1\n", "telnet=1\nhost_key=SHA256:x\n"] {
        let out = run(&ours, &pdu.stdin("off", "2", PASSWORD, extra));
        assert_eq!(out.status.code(), Some(1), "{extra}: {}", out.text());
    }
    assert_eq!(pdu.outlet(1, 2), None);
    // A wrong password: the device's refusal, well before the timeout.
    let started = Instant::now();
    let out = run(
        &ours,
        &pdu.stdin("off", "2", "not-the-pw", "telnet=1\ntimeout=20\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}: {}",
        started.elapsed(),
        out.text()
    );
    assert_ne!(pdu.outlet(1, 2), Some(PowerState::Off));
    assert!(!out.text().contains("not-the-pw"), "{}", out.text());
}

#[test]
fn a_baytech_strip_over_telnet_is_switched_and_read_back() {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("baytech");
    for mode in ["direct", "menu"] {
        let Some(strip) = Device::start("fencekit-baytech", "fencekit-baytech-sim", mode) else {
            return;
        };
        let out = run(&ours, &strip.stdin("off", "3", PASSWORD, "telnet=1\n"));
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", out.text());
        assert_eq!(strip.outlet(1, 3), Some(PowerState::Off), "{mode}");
        assert_eq!(strip.outlet(1, 1), Some(PowerState::On), "{mode}");
        let out = run(&ours, &strip.stdin("on", "3", PASSWORD, "telnet=1\n"));
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", out.text());
        assert_eq!(strip.outlet(1, 3), Some(PowerState::On), "{mode}");
    }
}

/// A strip whose one session is in use says so before its login prompt and hangs
/// up: a monitor and a fence wait for it until their deadline (as cluster-glue's
/// `baytech` tries its login again), and go through once the other session ends.
#[test]
fn a_baytech_strip_in_use_over_telnet_is_waited_for() {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("baytech");
    let Some(strip) = Device::start("fencekit-baytech", "fencekit-baytech-sim", "direct") else {
        return;
    };
    for action in ["monitor", "off"] {
        let held = fencekit_console::sim::SessionLock::try_take(&strip.lock)
            .unwrap()
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(held);
        });
        let out = run(
            &ours,
            &strip.stdin(action, "2", PASSWORD, "telnet=1\ntimeout=20\n"),
        );
        release.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{action}: {}", out.text());
    }
    assert_eq!(strip.outlet(1, 2), Some(PowerState::Off));
    assert_eq!(strip.outlet(1, 1), Some(PowerState::On));
}

#[test]
fn a_telnet_port_that_accepts_and_never_speaks_ends_by_the_deadline() {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    // Accepts every connection (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let stdin = format!(
        "action=off\nip=127.0.0.1\nipport={port}\nusername={USER}\npassword={PASSWORD}\n\
         plug=2\ntelnet=1\ntimeout=3\n"
    );
    let started = Instant::now();
    let out = run(&ours, &stdin);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(
        took < Duration::from_secs(4),
        "ended {took:?} after a 3 s deadline: {}",
        out.text()
    );
    drop(silent);
}
