//! fencekit as a fence agent (`fence_fencekit_sim`), held to the contract of
//! fence-agents and Pacemaker's fencer: metadata valid against fence-agents' RelaxNG
//! schema and read by `stonith_admin`; options as `key=value` lines on stdin or as
//! getopt options; exit codes and output formats; secrets kept out of output and argv;
//! and the same stdin lines accepted as real fence-agents agents accept them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fencekit_tests::bridge::{sim_states, write_sim_states, Installed};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;
use fencekit_tests::tool::{self, ToolOutput};

const AGENT: &str = "fence_fencekit_sim";
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const RELAXNG: &str = "/usr/share/cluster/relaxng/metadata.rng";

/// The installed agent and a simulated 4-outlet device (names a, b, c, d) whose
/// state file starts all on.
struct Agent {
    installed: Installed,
    dir: tempfile::TempDir,
}

impl Agent {
    fn new() -> Agent {
        let installed = Installed::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let agent = Agent { installed, dir };
        write_sim_states(&agent.state(), &[true; 4]).unwrap();
        agent
    }

    fn path(&self) -> PathBuf {
        self.installed.agent("sim")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("pdu-state")
    }

    fn states(&self) -> Vec<bool> {
        sim_states(&self.state()).unwrap().into_values().collect()
    }

    /// The device's lines, for stdin.
    fn device_lines(&self) -> String {
        format!(
            "plugs=4\nnames=a,b,c,d\nstate_file={}\n",
            self.state().display()
        )
    }

    /// The device's options, for argv.
    fn device_args(&self) -> Vec<String> {
        vec![
            "--plugs".into(),
            "4".into(),
            "--names".into(),
            "a,b,c,d".into(),
            "--state-file".into(),
            self.state().display().to_string(),
        ]
    }

    /// Runs the agent with no argument and `lines` plus the device's lines on stdin.
    fn stdin(&self, lines: &str) -> ToolOutput {
        let input = format!("{lines}\n{}", self.device_lines());
        tool::run(
            Command::new(self.path()),
            Some(input.as_bytes()),
            RUN_TIMEOUT,
        )
        .unwrap()
    }

    /// Runs the agent with `args` plus the device's options.
    fn args(&self, args: &[&str]) -> ToolOutput {
        let mut command = Command::new(self.path());
        command.args(args).args(self.device_args());
        tool::run(command, None, RUN_TIMEOUT).unwrap()
    }
}

fn code(out: &ToolOutput) -> Option<i32> {
    out.status.code()
}

// ---- metadata --------------------------------------------------------------------

#[test]
fn metadata_validates_against_fence_agents_relaxng_schema() {
    let Some(xmllint) = peers::require("xmllint", "libxml2-utils") else {
        return;
    };
    let Some(schema) = peers::require_file(RELAXNG, "fence-agents") else {
        return;
    };
    let agent = Agent::new();
    for action in ["metadata", "meta-data"] {
        let out = agent.stdin(&format!("action={action}"));
        assert_eq!(code(&out), Some(0), "{}", out.text());
        let file = agent.dir.path().join("metadata.xml");
        std::fs::write(&file, &out.stdout).unwrap();
        let mut command = Command::new(&xmllint);
        command
            .arg("--noout")
            .arg("--relaxng")
            .arg(&schema)
            .arg(&file);
        let check = tool::run(command, None, RUN_TIMEOUT).unwrap();
        assert!(check.status.success(), "{}\n{}", check.text(), out.stdout);
    }
}

#[test]
fn metadata_declares_the_plug_parameter_pacemaker_maps_hosts_to() {
    let agent = Agent::new();
    let out = agent.args(&["-o", "metadata"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert!(out
        .stdout
        .contains("<resource-agent name=\"fence_fencekit_sim\""));
    // Pacemaker's default pcmk_host_argument is `port` or `plug`, if declared.
    assert!(
        out.stdout.contains("<parameter name=\"plug\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("<parameter name=\"port\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("<action name=\"off\""),
        "{}",
        out.stdout
    );
}

// ---- through stonith_admin (no cluster needed) ------------------------------------

fn stonith_admin_with_agent_linked() -> Option<(PathBuf, Agent, SystemLink)> {
    let stonith_admin = peers::require("stonith_admin", "pacemaker-cli-utils")?;
    if !peers::require_root("linking a fence agent into /usr/sbin") {
        return None;
    }
    let agent = Agent::new();
    let link = SystemLink::fence_agent(&agent.installed, "sim").unwrap();
    Some((stonith_admin, agent, link))
}

fn stonith_admin(program: &Path, args: &[&str]) -> ToolOutput {
    let mut command = Command::new(program);
    command.args(args);
    tool::run(command, None, RUN_TIMEOUT).unwrap()
}

#[test]
fn stonith_admin_reads_the_agents_metadata() {
    let Some((program, _agent, _link)) = stonith_admin_with_agent_linked() else {
        return;
    };
    let out = stonith_admin(&program, &["--metadata", "-a", AGENT]);
    assert!(out.status.success(), "{}", out.text());
    assert!(out.stdout.contains("fence_fencekit_sim"), "{}", out.text());
    assert!(out.stdout.contains("name=\"plug\""), "{}", out.text());
    let installed = stonith_admin(&program, &["--list-installed"]);
    assert!(
        installed.stdout.lines().any(|l| l.trim() == AGENT),
        "{}",
        installed.text()
    );
}

#[test]
fn stonith_admin_validate_runs_validate_all_and_names_a_bad_parameter() {
    let Some((program, _agent, _link)) = stonith_admin_with_agent_linked() else {
        return;
    };
    let good = stonith_admin(
        &program,
        &["--validate", "--agent", AGENT, "--option", "plugs=4"],
    );
    assert!(good.status.success(), "{}", good.text());
    let bad = stonith_admin(
        &program,
        &["--validate", "--agent", AGENT, "--option", "plugs=many"],
    );
    assert!(!bad.status.success(), "{}", bad.text());
    assert!(bad.text().contains("plugs"), "{}", bad.text());
}

// ---- stdin and argv --------------------------------------------------------------

#[test]
fn stdin_off_switches_every_listed_plug_and_only_warns_about_what_it_does_not_know() {
    let agent = Agent::new();
    let out = agent.stdin(
        "# written by hand\n\naction=off\nport=1,2\nnodename=node2\nfoo=bar\nthis line has no equals sign\n",
    );
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout.trim(), "Success: Powered OFF");
    assert_eq!(agent.states(), [false, false, true, true]);
    assert!(out.stderr.contains("foo"), "{}", out.stderr);
    // A line without `=` is warned about by its line number only: it may be a
    // password (`password hunter2`), and Pacemaker logs stderr.
    assert!(out.stderr.contains("stdin:7"), "{}", out.stderr);
    assert!(!out.stderr.contains("this line"), "{}", out.stderr);
    // nodename is always sent by Pacemaker: never worth a warning.
    assert!(!out.stderr.contains("nodename"), "{}", out.stderr);
}

#[test]
fn stdin_values_may_be_quoted_and_plugs_split_on_plug_separator() {
    let agent = Agent::new();
    let out = agent.stdin("action=\"off\"\nplug=\"1+3\"\nplug_separator=+\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [false, true, false, true]);
}

#[test]
fn stdin_takes_the_last_occurrence_and_dashes_equal_underscores() {
    let agent = Agent::new();
    let out = agent.stdin("action=on\naction=off\nport=1\nport=4\npower-timeout=5\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [true, true, true, false]);
}

#[test]
fn stdin_plugs_may_be_outlet_names() {
    let agent = Agent::new();
    let out = agent.stdin("action=off\nport=c\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [true, true, false, true]);
}

#[test]
fn argv_options_work_as_getopt_parses_them() {
    let agent = Agent::new();
    let out = agent.args(&["-o", "off", "-n", "1"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [false, true, true, true]);
    let out = agent.args(&["--action=off", "--plug=2"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    let out = agent.args(&["-ooff", "--plug", "3"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [false, false, false, true]);
    let out = agent.args(&["--action", "on", "--plug", "1,2,3"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout.trim(), "Success: Powered ON");
    assert_eq!(agent.states(), [true, true, true, true]);
}

#[test]
fn argv_wins_and_stdin_is_not_read_when_there_are_arguments() {
    let agent = Agent::new();
    let mut command = Command::new(agent.path());
    command
        .args(["-o", "status", "-n", "1"])
        .args(agent.device_args());
    let out = tool::run(command, Some(b"action=off\nport=1,2,3,4\n"), RUN_TIMEOUT).unwrap();
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(agent.states(), [true; 4]);
}

#[test]
fn an_unknown_command_line_option_is_an_error() {
    let agent = Agent::new();
    let out = agent.args(&["-o", "status", "-n", "1", "--colour", "blue"]);
    assert_eq!(code(&out), Some(1), "{}", out.text());
    assert!(out.stderr.contains("colour"), "{}", out.stderr);
}

// ---- exit codes and messages -----------------------------------------------------

#[test]
fn status_exits_0_when_on_2_when_off_and_1_on_error() {
    let agent = Agent::new();
    write_sim_states(&agent.state(), &[true, false, true, true]).unwrap();
    let on = agent.stdin("action=status\nport=1\n");
    assert_eq!(code(&on), Some(0), "{}", on.text());
    assert_eq!(on.stdout.trim(), "Status: ON");
    let off = agent.stdin("action=status\nport=2\n");
    assert_eq!(code(&off), Some(2), "{}", off.text());
    assert_eq!(off.stdout.trim(), "Status: OFF");
    let missing = agent.stdin("action=status\nport=9\n");
    assert_eq!(code(&missing), Some(1), "{}", missing.text());
    let refused = agent.stdin("action=status\nport=1\npassword=wrong\nexpect_password=right\n");
    assert_eq!(code(&refused), Some(1), "{}", refused.text());
}

#[test]
fn an_unknown_action_fails_with_the_words_pacemaker_reads() {
    let agent = Agent::new();
    let out = agent.stdin("action=dance\nport=1\n");
    assert_eq!(code(&out), Some(1), "{}", out.text());
    // Pacemaker maps "unsupported action" in stderr to EOPNOTSUPP.
    assert!(out.stderr.contains("unsupported action"), "{}", out.stderr);
    assert_eq!(agent.states(), [true; 4]);
}

#[test]
fn a_multi_outlet_device_needs_a_plug_to_switch() {
    let agent = Agent::new();
    for action in ["off", "on", "reboot", "status"] {
        let out = agent.stdin(&format!("action={action}\n"));
        assert_eq!(code(&out), Some(1), "{action}: {}", out.text());
        assert!(out.stderr.contains("plug"), "{action}: {}", out.stderr);
        assert!(out.stderr.contains("required"), "{action}: {}", out.stderr);
    }
    assert_eq!(agent.states(), [true; 4]);
}

#[test]
fn reboot_ends_with_every_plug_on_and_says_rebooted() {
    let agent = Agent::new();
    write_sim_states(&agent.state(), &[false, true, true, true]).unwrap();
    let out = agent.stdin("action=reboot\nport=1,2\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout.trim(), "Success: Rebooted");
    assert_eq!(agent.states(), [true; 4]);
}

#[test]
fn off_fails_when_the_outlet_stays_on() {
    let agent = Agent::new();
    let out = agent.stdin("action=off\nport=1,2\nlying_plugs=2\npower_timeout=1\n");
    assert_eq!(code(&out), Some(1), "{}", out.text());
    assert!(!out.stdout.contains("Success"), "{}", out.stdout);
    assert!(agent.states()[1], "plug 2 must still be on");
}

// ---- list and list-status --------------------------------------------------------

#[test]
fn list_prints_id_and_alias_joined_by_the_separator() {
    let agent = Agent::new();
    let out = agent.stdin("action=list\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout, "1,a\n2,b\n3,c\n4,d\n");
    let out = agent.args(&["-o", "list", "--separator", ";"]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout, "1;a\n2;b\n3;c\n4;d\n");
    let out = agent.stdin("action=list\nseparator=|\n");
    assert_eq!(out.stdout, "1|a\n2|b\n3|c\n4|d\n");
}

#[test]
fn list_status_adds_each_outlets_state() {
    let agent = Agent::new();
    write_sim_states(&agent.state(), &[true, false, true, false]).unwrap();
    let out = agent.stdin("action=list-status\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert_eq!(out.stdout, "1,a,ON\n2,b,OFF\n3,c,ON\n4,d,OFF\n");
    let out = agent.args(&["-o", "list-status", "-C", ":"]);
    assert_eq!(out.stdout, "1:a:ON\n2:b:OFF\n3:c:ON\n4:d:OFF\n");
}

// ---- secrets ---------------------------------------------------------------------

const SECRET: &str = "Zq7-fencekit-s3cret";

#[test]
fn a_password_on_the_command_line_works_but_is_warned_about() {
    let agent = Agent::new();
    let out = agent.args(&[
        "-o",
        "status",
        "-n",
        "1",
        "--password",
        SECRET,
        "--expect-password",
        SECRET,
    ]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert!(out.stderr.contains("command line"), "{}", out.stderr);
    assert!(!out.text().contains(SECRET), "{}", out.text());
}

#[test]
fn the_password_never_appears_in_output_even_at_full_verbosity() {
    let agent = Agent::new();
    let wrong = "Wr0ng-fencekit-guess";
    // Accepted and refused logins, every action, stdin and argv, most verbose.
    for password in [SECRET, wrong] {
        for action in [
            "status",
            "off",
            "on",
            "reboot",
            "list",
            "list-status",
            "monitor",
        ] {
            let out = agent.stdin(&format!(
                "action={action}\nport=1\npassword={password}\nexpect_password={SECRET}\nverbose=1\nverbose=1\nverbose=1\n"
            ));
            let text = out.text();
            assert!(!text.contains(SECRET), "{action}: {text}");
            assert!(!text.contains(wrong), "{action}: {text}");
            let out = agent.args(&[
                "-o",
                action,
                "-n",
                "1",
                "--password",
                password,
                "--expect-password",
                SECRET,
                "-vvv",
            ]);
            let text = out.text();
            assert!(!text.contains(SECRET), "{action}: {text}");
            assert!(!text.contains(wrong), "{action}: {text}");
        }
        // Something was logged at all, or the check above proves little.
        let out = agent.args(&["-o", "status", "-n", "1", "-vvv"]);
        assert!(
            out.stderr.contains("DEBUG") || out.stderr.contains("INFO"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_password_on_stdin_never_reaches_the_agents_command_line_or_environment() {
    let agent = Agent::new();
    let mut child = Command::new(agent.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let input = format!(
        "action=status\nport=1\nlatency=2\npassword={SECRET}\nexpect_password={SECRET}\n{}",
        agent.device_lines()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    // Between fork and exec /proc shows this test's own command line: wait for the
    // agent's binary. The device's latency keeps it running while we look.
    let pid = child.id();
    let binary = std::fs::canonicalize(agent.installed.binary()).unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let (cmdline, environ) = loop {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.as_deref() == Some(binary.as_path()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            // Both read empty for a moment while exec sets the new image up.
            if !cmdline.is_empty() && !environ.is_empty() {
                break (cmdline, environ);
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the agent ended before it could be inspected"
        );
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Still running while read: what we saw is the agent's, not a dead PID's.
    let still_running = child.try_wait().unwrap().is_none();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(still_running, "the agent ended while /proc was read");
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains(AGENT), "{cmdline:?}");
    assert!(!cmdline.contains(SECRET), "{cmdline:?}");
    assert!(!String::from_utf8_lossy(&environ).contains(SECRET));
}

// ---- the same stdin as fence-agents ----------------------------------------------

/// Stdin as Pacemaker or a person writes it, which fence-agents' own agents take.
const PACEMAKER_STYLE: &str = "# written by hand\n\naction=\"validate-all\"\nipaddr=127.0.0.1\nlogin=admin\npasswd=\"secret\"\nport=1\nplug-separator=+\nnodename=node2\nfoo=bar\ngarbage\n";

#[test]
fn stdin_that_fence_agents_accept_is_accepted_alike() {
    let Some(real) = peers::require_all(&[
        ("fence_apc_snmp", "fence-agents"),
        ("fence_ipmilan", "fence-agents"),
    ]) else {
        return;
    };
    let agent = Agent::new();
    let run = |program: &Path, input: &str| {
        let mut command = Command::new(program);
        command.env("LC_ALL", "C");
        tool::run(command, Some(input.as_bytes()), RUN_TIMEOUT).unwrap()
    };
    let mut agents: Vec<PathBuf> = real;
    agents.push(agent.path());
    for program in &agents {
        let name = program.display();
        // validate-all: no device I/O; comments, blank lines, quotes, legacy keys,
        // `-` for `_`, nodename, an unknown key and a line without `=` all pass.
        let out = run(program, PACEMAKER_STYLE);
        assert_eq!(code(&out), Some(0), "{name}: {}", out.text());
        assert!(
            out.stderr.contains("foo"),
            "{name} did not warn: {}",
            out.stderr
        );
        // A line without `=` is warned about; fencekit names its line only, since
        // such a line may be a password (`password hunter2`) and Pacemaker logs stderr.
        if *program == agent.path() {
            assert!(
                out.stderr.contains("stdin:11") && !out.stderr.contains("garbage"),
                "{name} did not warn by line number only: {}",
                out.stderr
            );
        } else {
            assert!(
                out.stderr.contains("garbage"),
                "{name} did not warn: {}",
                out.stderr
            );
        }
        // metadata, quoted.
        let out = run(program, "action=\"metadata\"\nport=1\n");
        assert_eq!(code(&out), Some(0), "{name}: {}", out.text());
        assert!(
            out.stdout.contains("<resource-agent"),
            "{name}: {}",
            out.stdout
        );
        // An unknown action: exit 1 with a word Pacemaker maps to EOPNOTSUPP.
        let out = run(
            program,
            "action=dance\nipaddr=127.0.0.1\nlogin=admin\npasswd=x\nport=1\n",
        );
        assert_eq!(code(&out), Some(1), "{name}: {}", out.text());
        let stderr = out.stderr.to_ascii_lowercase();
        assert!(
            ["unrecognised", "unrecognized", "unsupported action"]
                .iter()
                .any(|w| stderr.contains(w)),
            "{name}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_password_given_with_dash_p_works_but_is_warned_about() {
    let agent = Agent::new();
    let out = agent.args(&[
        "-o",
        "status",
        "-n",
        "1",
        "-p",
        SECRET,
        "--expect-password",
        SECRET,
    ]);
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert!(out.stderr.contains("command line"), "{}", out.stderr);
    assert!(!out.text().contains(SECRET), "{}", out.text());
    // And a wrong one given with -p is refused by the device, not by the parser.
    let out = agent.args(&[
        "-o",
        "status",
        "-n",
        "1",
        "-p",
        "wrong",
        "--expect-password",
        SECRET,
    ]);
    assert_eq!(code(&out), Some(1), "{}", out.text());
    assert!(!out.stderr.contains("invalid option"), "{}", out.stderr);
}

#[test]
fn verbose_0_on_stdin_means_quiet() {
    let agent = Agent::new();
    let out = agent.stdin("action=status\nport=1\nverbose=0\n");
    assert_eq!(code(&out), Some(0), "{}", out.text());
    assert!(!out.stderr.contains("INFO"), "{}", out.stderr);
}

#[test]
fn a_debug_file_gets_the_log_and_never_the_password() {
    let agent = Agent::new();
    let log = agent.dir.path().join("debug.log");
    let out = agent.stdin(&format!(
        "action=off\nport=2\npassword={SECRET}\nexpect_password={SECRET}\ndebug_file={}\n",
        log.display()
    ));
    assert_eq!(code(&out), Some(0), "{}", out.text());
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("confirmed"), "{written}");
    assert!(!written.contains(SECRET), "{written}");
}

#[test]
fn only_a_device_with_a_diagnostic_interrupt_lists_and_takes_diag() {
    let bridge = fencekit_tests::bridge::binary().unwrap();
    let metadata = |plugin: &str| {
        let mut command = Command::new(&bridge);
        command.args(["fence-agent", plugin, "-o", "metadata"]);
        tool::run(command, None, RUN_TIMEOUT).unwrap().stdout
    };
    assert!(metadata("ipmi").contains("<action name=\"diag\" />"));
    assert!(!metadata("sim").contains("\"diag\""));
    let agent = Agent::new();
    let out = agent.stdin("action=diag\nport=1\n");
    assert_eq!(code(&out), Some(1), "{}", out.text());
    assert!(out.stderr.contains("unsupported action"), "{}", out.stderr);
}
