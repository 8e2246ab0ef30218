//! cluster-glue's own `baytech` stonith plugin and fencekit's
//! `external/fencekit-baytech` (with `telnet=1`), side by side through cluster-glue's
//! `stonith` tool with the same configuration (`ipaddr login password`), against
//! one simulated RPC-3 strip: the strip that greets with its main menu, behind a
//! real telnet server on port 23 (the only port `baytech` reaches) in a network
//! namespace of the test's own. Every step starts from the same outlets, and each
//! tool's result is judged by the simulator's outlet file, never through either
//! tool. The side-by-side table is printed (run with `--nocapture` to see it).
//!
//! The tools agree on success and on the outlets; the exit codes of failures are
//! their own and only printed: an unknown host is `baytech`'s `S_BADHOST` (4) and
//! fencekit's 5, and with a wrong password `baytech` retries its login 20 times,
//! then writes its logout to the connection the strip closed and dies of SIGPIPE.
//! `baytech` never reads an outlet back (its success is the strip's prompt after
//! the command); fencekit's is the outlet table read after it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_console::sim::OutletFile;
use fencekit_core::PowerState;
use fencekit_tests::bridge::{self, Installed};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;
use fencekit_tests::telnetd::NetnsTelnetd;
use fencekit_tests::tool::{self, ToolOutput};

const USER: &str = "admin";
const PASSWORD: &str = "fk-glue-bt-7d2a";
const HOSTS: [&str; 4] = ["node1", "node2", "node3", "node4"];
/// cluster-glue's runner, a login per outlet command, and a reboot's cycle.
const STONITH_TIMEOUT: Duration = Duration::from_secs(90);

/// The strip behind telnetd, its outlets named after the hosts, and our plugin
/// linked where `stonith` finds it.
struct Rig {
    stonith: PathBuf,
    telnetd: NetnsTelnetd,
    outlets: OutletFile,
    _link: SystemLink,
    _installed: Installed,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start() -> Option<Rig> {
        let stonith = peers::require("stonith", "cluster-glue")?;
        let busybox = peers::require("busybox", "busybox-static")?;
        peers::require_file(
            "/usr/lib/stonith/plugins/stonith2/baytech.so",
            "cluster-glue",
        )?;
        if !peers::require_root("telnetd on port 23 in a network namespace") {
            return None;
        }
        if !has_telnetd_applet(&busybox) {
            assert!(
                !peers::peers_required(),
                "busybox has no telnetd applet: apt-get install busybox-static"
            );
            eprintln!(
                "\n*** SKIPPED: busybox has no telnetd (apt-get install busybox-static) ***\n"
            );
            return None;
        }
        let installed = Installed::new().unwrap();
        let link = SystemLink::external_plugin(&installed, "baytech").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("outlets");
        let password = dir.path().join("password");
        std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        let outlets = OutletFile::create(&state, 1, 4).unwrap();
        for (i, host) in HOSTS.iter().enumerate() {
            outlets.set(1, i as u32 + 1, true, Some(host)).unwrap();
        }
        let sim = bridge::workspace_binary("fencekit-baytech", "fencekit-baytech-sim").unwrap();
        let login = format!("{USER}:{}", password.display());
        let telnetd = NetnsTelnetd::start(
            &busybox,
            &[
                &sim.display().to_string(),
                "--state",
                &state.display().to_string(),
                "--mode",
                "menu",
                "--outlets",
                "4",
                "--login",
                &login,
            ],
        )
        .unwrap();
        Some(Rig {
            stonith,
            telnetd,
            outlets,
            _link: link,
            _installed: installed,
            _dir: dir,
        })
    }

    /// `stonith -t PLUGIN -E ARGS` in the namespace, the configuration in the
    /// environment as `-E` takes it (no password in argv), `extra` variables (the
    /// password among them) too.
    fn stonith(&self, plugin: &str, args: &[&str], extra: &[(&str, &str)]) -> ToolOutput {
        let mut command = self.telnetd.netns().command(&self.stonith);
        command
            .args(["-t", plugin, "-E"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("ipaddr", "127.0.0.1")
            .env("login", USER);
        for (name, value) in extra {
            command.env(name, value);
        }
        tool::run(command, None, STONITH_TIMEOUT).unwrap()
    }

    /// The oracle: every outlet's state from the simulator's own file.
    fn states(&self) -> Vec<PowerState> {
        (1..=4)
            .map(|n| self.outlets.state(1, n).unwrap().unwrap())
            .collect()
    }

    fn reset(&self, on: [bool; 4]) {
        for (i, on) in on.into_iter().enumerate() {
            self.outlets.set(1, i as u32 + 1, on, None).unwrap();
        }
    }
}

fn has_telnetd_applet(busybox: &Path) -> bool {
    let mut command = Command::new(busybox);
    command.args(["--list"]);
    tool::run(command, None, Duration::from_secs(10))
        .is_ok_and(|out| out.stdout.lines().any(|l| l.trim() == "telnetd"))
}

/// (action, `stonith` arguments, password, outlets before, outlets after, whether
/// it succeeds)
type Step = (
    &'static str,
    &'static [&'static str],
    &'static str,
    [bool; 4],
    [PowerState; 4],
    bool,
);

/// One row of the comparison: what a tool returned and what the strip then held.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    /// `exit N`, or `signal N` for a tool that was killed.
    exit: String,
    success: bool,
    states: Vec<PowerState>,
}

fn shown(o: &Outcome) -> String {
    let states: Vec<&str> = o
        .states
        .iter()
        .map(|s| match s {
            PowerState::On => "on",
            PowerState::Off => "off",
            _ => "?",
        })
        .collect();
    format!("{:<10} {}", o.exit, states.join(","))
}

#[test]
fn cluster_glues_baytech_and_fencekit_leave_an_rpc3_strip_alike_over_telnet() {
    let Some(rig) = Rig::start() else { return };
    let glue = ("baytech", &[][..]);
    let ours = ("external/fencekit-baytech", &[("telnet", "1")][..]);
    let (on, off) = (PowerState::On, PowerState::Off);

    // Listing: cluster-glue lower-cases the names it reads from the table.
    let mut lists = Vec::new();
    for (plugin, extra) in [glue, ours] {
        let mut extra = extra.to_vec();
        extra.push(("password", PASSWORD));
        let out = rig.stonith(plugin, &["-l"], &extra);
        assert!(out.status.success(), "{plugin} -l: {}", out.text());
        let mut hosts: Vec<String> = out
            .stdout
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        hosts.sort();
        lists.push(hosts);
    }
    assert_eq!(lists[0], HOSTS, "cluster-glue baytech -l");
    assert_eq!(lists[1], HOSTS, "external/fencekit-baytech -l");

    let steps: [Step; 7] = [
        ("status", &["-S"], PASSWORD, [true; 4], [on; 4], true),
        (
            "off node2",
            &["-T", "off", "node2"],
            PASSWORD,
            [true; 4],
            [on, off, on, on],
            true,
        ),
        (
            "on node2",
            &["-T", "on", "node2"],
            PASSWORD,
            [true, false, true, true],
            [on; 4],
            true,
        ),
        (
            "reset node3",
            &["-T", "reset", "node3"],
            PASSWORD,
            [true; 4],
            [on; 4],
            true,
        ),
        (
            "reset node1 (off)",
            &["-T", "reset", "node1"],
            PASSWORD,
            [false, true, true, true],
            [on; 4],
            true,
        ),
        (
            "off nodex (unknown)",
            &["-T", "off", "nodex"],
            PASSWORD,
            [true; 4],
            [on; 4],
            false,
        ),
        (
            "off node2 (wrong pw)",
            &["-T", "off", "node2"],
            "fk-not-the-pw",
            [true; 4],
            [on; 4],
            false,
        ),
    ];
    let mut rows = Vec::new();
    for (action, args, password, before, expected, succeeds) in steps {
        let mut outcomes = Vec::new();
        for (plugin, extra) in [glue, ours] {
            rig.reset(before);
            let mut extra = extra.to_vec();
            extra.push(("password", password));
            let out = rig.stonith(plugin, args, &extra);
            let outcome = Outcome {
                exit: match (out.status.code(), out.status.signal()) {
                    (Some(code), _) => format!("exit {code}"),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "exit ?".into(),
                },
                success: out.status.success(),
                states: rig.states(),
            };
            assert_eq!(
                outcome.states,
                expected,
                "{plugin} {action}: the strip holds {:?}: {}",
                outcome.states,
                out.text()
            );
            assert_eq!(
                out.status.success(),
                succeeds,
                "{plugin} {action}: {}",
                out.text()
            );
            // Neither prints the password.
            assert!(
                !out.text().contains(PASSWORD),
                "{plugin} {action}: {}",
                out.text()
            );
            outcomes.push(outcome);
        }
        rows.push((action, outcomes[0].clone(), outcomes[1].clone()));
    }

    println!(
        "\n{:<22} | {:<28} | {:<28}",
        "action", "cluster-glue baytech", "external/fencekit-baytech"
    );
    println!("{}", "-".repeat(84));
    for (action, theirs, ours) in &rows {
        println!("{action:<22} | {:<28} | {:<28}", shown(theirs), shown(ours));
    }
    for (action, theirs, ours) in &rows {
        assert_eq!(
            (theirs.success, &theirs.states),
            (ours.success, &ours.states),
            "{action}: cluster-glue and fencekit differ"
        );
    }
}
