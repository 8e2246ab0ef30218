//! Tests of the peer harness itself: the daemon guard's kill-on-drop (also while a
//! test panics) and start-up errors, and each launcher against its real peer.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fencekit_tests::accounts::{user_exists, TestUser};
use fencekit_tests::daemon::daemon_dir;
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::snmpd::{
    AuthProtocol, PassPersist, PrivProtocol, SnmpUser, Snmpd, SnmpdOptions,
};
use fencekit_tests::sshd::{ForcedCommand, Sshd, SshdOptions};
use fencekit_tests::{peers, tool, Daemon, HarnessError};

const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn shell_daemon(name: &str, script: &str) -> Daemon {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    Daemon::spawn(name, daemon_dir(name).unwrap(), command).unwrap()
}

/// Gone means no such process, or a zombie waiting for whoever reaps orphans.
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits (bounded) for a SIGKILLed process to disappear; SIGKILL is asynchronous.
fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_gone(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn file_ready(daemon: &Daemon, name: &str) -> Result<(), String> {
    match std::fs::read_to_string(daemon.dir().join(name)) {
        Ok(text) if text.ends_with('\n') => Ok(()),
        _ => Err(format!("{name} not written yet")),
    }
}

fn read_pid(daemon: &Daemon, name: &str) -> u32 {
    std::fs::read_to_string(daemon.dir().join(name))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_daemon_guard_kills_its_process_and_the_processes_it_forked_on_drop() {
    let mut daemon = shell_daemon("forker", "sleep 600 & echo $! > child.pid; exec sleep 600");
    daemon
        .wait_ready(Instant::now() + Duration::from_secs(10), |d| {
            file_ready(d, "child.pid")
        })
        .unwrap();
    let pid = daemon.pid();
    let child = read_pid(&daemon, "child.pid");
    let dir = daemon.dir().to_path_buf();
    assert!(!is_gone(pid) && !is_gone(child));

    drop(daemon);

    assert!(is_gone(pid), "daemon {pid} survived its guard");
    assert!(wait_gone(child), "forked child {child} survived the guard");
    assert!(!dir.exists(), "the daemon's directory was left behind");
}

#[test]
fn the_daemon_guard_kills_its_process_when_the_test_panics() {
    let pids = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let mut daemon = shell_daemon("doomed", "echo $$ > self.pid; exec sleep 600");
        daemon
            .wait_ready(Instant::now() + Duration::from_secs(10), |d| {
                file_ready(d, "self.pid")
            })
            .unwrap();
        *pids.lock().unwrap() = Some(daemon.pid());
        panic!("the test body fails while the daemon runs");
    });
    assert!(outcome.is_err());
    let pid = pids.lock().unwrap().expect("the daemon started");
    assert!(is_gone(pid), "daemon {pid} survived a panicking test");
}

#[test]
fn a_daemon_that_ignores_sigterm_is_killed_anyway() {
    // An ignored signal stays ignored across exec, so the whole group ignores TERM.
    let mut daemon = shell_daemon("stubborn", "trap '' TERM; echo up > up; exec sleep 600");
    daemon
        .wait_ready(Instant::now() + Duration::from_secs(10), |d| {
            file_ready(d, "up")
        })
        .unwrap();
    let pid = daemon.pid();
    drop(daemon);
    assert!(is_gone(pid));
}

#[test]
fn a_daemon_that_exits_during_start_up_reports_its_status_and_log() {
    let mut daemon = shell_daemon(
        "broken",
        "echo 'line 3: unknown directive frobnicate' >&2; exit 4",
    );
    let err = daemon
        .wait_ready(Instant::now() + Duration::from_secs(30), |_| {
            Err("not answering".to_owned())
        })
        .unwrap_err();
    assert!(matches!(err, HarnessError::Exited { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("unknown directive frobnicate"), "{text}");
    assert!(text.contains("exit status 4"), "{text}");
    assert!(!err.is_address_in_use());
}

#[test]
fn a_daemon_that_never_answers_fails_with_the_last_probe_reason() {
    let mut daemon = shell_daemon("mute", "echo starting; exec sleep 600");
    let err = daemon
        .wait_ready(Instant::now() + Duration::from_millis(200), |_| {
            Err("connection refused".to_owned())
        })
        .unwrap_err();
    assert!(matches!(err, HarnessError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(daemon.is_running());
}

#[test]
fn a_daemon_that_lost_its_port_is_recognised() {
    let mut daemon = shell_daemon(
        "late",
        "echo 'Unable to bind to LAN port: Address already in use'; exit 1",
    );
    let err = daemon
        .wait_ready(Instant::now() + Duration::from_secs(30), |_| {
            Err("no".into())
        })
        .unwrap_err();
    assert!(err.is_address_in_use(), "{err}");
}

// ---------------------------------------------------------------- ipmi_sim

const IPMI_PASSWORD: &str = "fk-test-pw-1";

fn ipmi_options(power: PowerProgram) -> IpmiSimOptions {
    IpmiSimOptions {
        user: "fenceuser".into(),
        password: IPMI_PASSWORD.into(),
        power,
        initially_on: true,
    }
}

fn ipmitool(bmc: &IpmiSim, ipmitool: &Path, password: &str, words: &[&str]) -> tool::ToolOutput {
    let mut command = bmc.ipmitool(ipmitool, password);
    command.args(words);
    tool::run(command, None, TOOL_TIMEOUT).unwrap()
}

#[test]
fn ipmi_sim_answers_ipmitool_with_the_state_its_power_program_keeps() {
    let Some(paths) = peers::require_all(&[("ipmi_sim", "openipmi"), ("ipmitool", "ipmitool")])
    else {
        return;
    };
    let ipmitool_path = &paths[1];
    let bmc = IpmiSim::start(ipmi_options(PowerProgram::Obey)).unwrap();

    let status = ipmitool(
        &bmc,
        ipmitool_path,
        IPMI_PASSWORD,
        &["chassis", "power", "status"],
    );
    assert!(status.status.success(), "{}", status.text());
    assert!(
        status.stdout.contains("Chassis Power is on"),
        "{}",
        status.text()
    );

    let off = ipmitool(
        &bmc,
        ipmitool_path,
        IPMI_PASSWORD,
        &["chassis", "power", "off"],
    );
    assert!(off.status.success(), "{}", off.text());
    assert!(!bmc.power_state().unwrap());
    assert_eq!(bmc.calls().unwrap(), 1, "{:?}", bmc.call_log().unwrap());

    let status = ipmitool(
        &bmc,
        ipmitool_path,
        IPMI_PASSWORD,
        &["chassis", "power", "status"],
    );
    assert!(
        status.stdout.contains("Chassis Power is off"),
        "{}",
        status.text()
    );

    // A node switched on behind the BMC's back.
    bmc.set_power(true).unwrap();
    let status = ipmitool(
        &bmc,
        ipmitool_path,
        IPMI_PASSWORD,
        &["chassis", "power", "status"],
    );
    assert!(
        status.stdout.contains("Chassis Power is on"),
        "{}",
        status.text()
    );
}

#[test]
fn a_lying_ipmi_sim_accepts_off_and_stays_on() {
    let Some(paths) = peers::require_all(&[("ipmi_sim", "openipmi"), ("ipmitool", "ipmitool")])
    else {
        return;
    };
    let bmc = IpmiSim::start(ipmi_options(PowerProgram::Lie)).unwrap();
    let off = ipmitool(&bmc, &paths[1], IPMI_PASSWORD, &["chassis", "power", "off"]);
    assert!(off.status.success(), "{}", off.text());
    assert!(bmc.power_state().unwrap(), "a lying BMC must stay on");
    assert!(bmc
        .call_log()
        .unwrap()
        .iter()
        .any(|c| c.ends_with("set power 0")));
}

#[test]
fn a_slow_ipmi_sim_still_switches_off_in_the_end() {
    let Some(paths) = peers::require_all(&[("ipmi_sim", "openipmi"), ("ipmitool", "ipmitool")])
    else {
        return;
    };
    let bmc = IpmiSim::start(ipmi_options(PowerProgram::Slow { seconds: 1 })).unwrap();
    let off = ipmitool(&bmc, &paths[1], IPMI_PASSWORD, &["chassis", "power", "off"]);
    assert!(off.status.success(), "{}", off.text());
    assert!(!bmc.power_state().unwrap());
    // ipmitool retransmits while the program sleeps, and ipmi_sim runs every copy:
    // how often depends on timing, so only the lower bound is certain.
    assert!(bmc.calls().unwrap() >= 1);
}

#[test]
fn ipmi_sim_refuses_a_wrong_password() {
    let Some(paths) = peers::require_all(&[("ipmi_sim", "openipmi"), ("ipmitool", "ipmitool")])
    else {
        return;
    };
    let bmc = IpmiSim::start(ipmi_options(PowerProgram::Obey)).unwrap();
    let status = ipmitool(
        &bmc,
        &paths[1],
        "not-the-password",
        &["chassis", "power", "off"],
    );
    assert!(!status.status.success(), "{}", status.text());
    assert!(bmc.power_state().unwrap());
    assert_eq!(bmc.calls().unwrap(), 0);
}

#[test]
fn ipmi_sim_is_killed_with_its_guard() {
    let Some(_) = peers::require("ipmi_sim", "openipmi") else {
        return;
    };
    let bmc = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let pid = bmc.daemon().pid();
    drop(bmc);
    assert!(is_gone(pid));
}

// ---------------------------------------------------------------- snmpd

const OUTLET_1_STATE: &str = ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.1";

/// A pass_persist program (snmpd.conf(5)) that knows one APC outlet, which is on.
fn write_outlet_program(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("outlets");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
while read -r cmd; do\n\
  case \"$cmd\" in\n\
    PING) echo PONG ;;\n\
    get) read -r oid; if [ \"$oid\" = {OUTLET_1_STATE} ]; then printf '%s\\ninteger\\n1\\n' \"$oid\"; else echo NONE; fi ;;\n\
    getnext) read -r oid; echo NONE ;;\n\
    set) read -r oid; read -r value; echo not-writable ;;\n\
    *) exit 0 ;;\n\
  esac\n\
done\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn snmpd_answers_snmpget_for_its_own_objects_and_the_pass_persist_subtree() {
    let Some(paths) = peers::require_all(&[("snmpd", "snmpd"), ("snmpget", "snmp")]) else {
        return;
    };
    let snmpget = &paths[1];
    let program_dir = tempfile::tempdir().unwrap();
    let options = SnmpdOptions {
        pass_persist: vec![PassPersist {
            oid: ".1.3.6.1.4.1.318".into(),
            program: write_outlet_program(program_dir.path()),
        }],
        ..SnmpdOptions::default()
    };
    let agent = Snmpd::start(options).unwrap();

    let mut command = agent.client_command(snmpget);
    command
        .args(["-v2c", "-c", "public", &agent.target()])
        .args([".1.3.6.1.2.1.1.1.0", OUTLET_1_STATE]);
    let out = tool::run_ok(command, None, TOOL_TIMEOUT).unwrap();
    assert!(out.stdout.contains("fencekit test agent"), "{}", out.text());
    assert!(out.stdout.contains("INTEGER: 1"), "{}", out.text());
}

#[test]
fn snmpd_serves_v3_users_with_auth_and_privacy() {
    let Some(paths) = peers::require_all(&[("snmpd", "snmpd"), ("snmpget", "snmp")]) else {
        return;
    };
    let options = SnmpdOptions {
        communities: Vec::new(),
        users: vec![SnmpUser {
            name: "fence".into(),
            auth: AuthProtocol::Sha,
            auth_pass: "fk-auth-pass".into(),
            privacy: Some((PrivProtocol::Aes, "fk-priv-pass".into())),
            write: true,
        }],
        ..SnmpdOptions::default()
    };
    let agent = Snmpd::start(options).unwrap();
    // The pass phrases go into the client's snmp.conf, not argv.
    std::fs::write(
        agent.daemon().dir().join("client/snmp.conf"),
        "defVersion 3\ndefSecurityName fence\ndefSecurityLevel authPriv\n\
defAuthType SHA\ndefAuthPassphrase fk-auth-pass\ndefPrivType AES\ndefPrivPassphrase fk-priv-pass\n",
    )
    .unwrap();
    let mut command = agent.client_command(&paths[1]);
    command.args([&agent.target(), ".1.3.6.1.2.1.1.1.0"]);
    let out = tool::run_ok(command, None, TOOL_TIMEOUT).unwrap();
    assert!(out.stdout.contains("fencekit test agent"), "{}", out.text());
}

/// snmpd with fencekit's IF-MIB emulator behind pass_persist for the interfaces
/// group and ifMIB, snmpd's own modules for them left out when `alone`.
fn ifmib_agent(dir: &Path, alone: bool) -> Snmpd {
    let emulator =
        fencekit_tests::bridge::workspace_binary("fencekit-ifmib", "fencekit-ifmib-snmp-sim")
            .unwrap();
    let state = dir.join("switch.state");
    std::fs::write(
        &state,
        "interface 7 up obey - Gi1/0/7 GigabitEthernet1/0/7\n\
         interface 9 down obey - Gi1/0/9 GigabitEthernet1/0/9\n",
    )
    .unwrap();
    let program = fencekit_tests::snmpd::emulator_program(dir, &emulator, &state).unwrap();
    Snmpd::start(SnmpdOptions::if_mib_emulator(&program, alone)).unwrap()
}

fn snmpwalk(agent: &Snmpd, snmpwalk: &Path, subtree: &str) -> Vec<String> {
    let mut command = agent.client_command(snmpwalk);
    command.args(["-v2c", "-c", "public", "-On", &agent.target(), subtree]);
    let out = tool::run_ok(command, None, TOOL_TIMEOUT).unwrap();
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn snmpd_without_its_if_mib_modules_leaves_the_interface_tables_to_the_emulator_alone() {
    let Some(paths) = peers::require_all(&[("snmpd", "snmpd"), ("snmpwalk", "snmp")]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = ifmib_agent(dir.path(), true);
    let mut walked = snmpwalk(&agent, &paths[1], ".1.3.6.1.2.1.2");
    walked.extend(snmpwalk(&agent, &paths[1], ".1.3.6.1.2.1.31"));
    let row = |column: &str, index: u32, value: &str| format!("{column}.{index} = {value}");
    let mut expected = vec![".1.3.6.1.2.1.2.1.0 = INTEGER: 2".to_string()];
    for (column, values) in [
        (".1.3.6.1.2.1.2.2.1.1", ["INTEGER: 7", "INTEGER: 9"]),
        (
            ".1.3.6.1.2.1.2.2.1.2",
            [
                "STRING: \"GigabitEthernet1/0/7\"",
                "STRING: \"GigabitEthernet1/0/9\"",
            ],
        ),
        (".1.3.6.1.2.1.2.2.1.7", ["INTEGER: 1", "INTEGER: 2"]),
        (".1.3.6.1.2.1.2.2.1.8", ["INTEGER: 1", "INTEGER: 2"]),
        (
            ".1.3.6.1.2.1.31.1.1.1.1",
            ["STRING: \"Gi1/0/7\"", "STRING: \"Gi1/0/9\""],
        ),
    ] {
        expected.push(row(column, 7, values[0]));
        expected.push(row(column, 9, values[1]));
    }
    assert_eq!(walked, expected);
    drop(agent);
    // With its own modules, snmpd answers there too (the loopback interface at
    // least): what leaving them out prevents.
    let dir = tempfile::tempdir().unwrap();
    let agent = ifmib_agent(dir.path(), false);
    let walked = snmpwalk(&agent, &paths[1], ".1.3.6.1.2.1.2.2.1.2");
    assert!(walked.iter().any(|l| l.contains("\"lo\"")), "{walked:?}");
}

#[test]
fn snmpd_and_its_pass_persist_program_are_killed_with_the_guard() {
    let Some(_) = peers::require("snmpd", "snmpd") else {
        return;
    };
    let program_dir = tempfile::tempdir().unwrap();
    // This program writes its PID first, so the test can look for it afterwards.
    let program = program_dir.path().join("pid-then-serve");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho $$ > {}/program.pid\nexec {}\n",
            program_dir.path().display(),
            write_outlet_program(program_dir.path()).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = Snmpd::start(SnmpdOptions {
        pass_persist: vec![PassPersist {
            oid: ".1.3.6.1.4.1.318".into(),
            program,
        }],
        ..SnmpdOptions::default()
    })
    .unwrap();
    let pid = agent.daemon().pid();
    // snmpd starts a pass_persist program on the first request into its subtree.
    let Some(snmpget) = peers::require("snmpget", "snmp") else {
        return;
    };
    let mut command = agent.client_command(&snmpget);
    command.args(["-v2c", "-c", "public", &agent.target(), OUTLET_1_STATE]);
    tool::run_ok(command, None, TOOL_TIMEOUT).unwrap();
    let program_pid: u32 = std::fs::read_to_string(program_dir.path().join("program.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(agent);
    assert!(is_gone(pid));
    assert!(
        wait_gone(program_pid),
        "pass_persist program {program_pid} survived"
    );
}

// ---------------------------------------------------------------- sshd

fn read_banner(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut banner = Vec::new();
    let mut byte = [0u8; 1];
    while banner.len() < 255 && stream.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        banner.push(byte[0]);
    }
    String::from_utf8_lossy(&banner).into_owned()
}

#[test]
fn sshd_starts_and_greets_with_an_openssh_banner() {
    let Some(_) = peers::require("sshd", "openssh-server") else {
        return;
    };
    if !peers::require_root("sshd") {
        return;
    }
    let user = TestUser::create("fk-ssh-pass-1").unwrap();
    let sshd = Sshd::start(SshdOptions {
        users: vec![ForcedCommand {
            user: user.name().to_owned(),
            command: "/bin/echo console-ready".into(),
        }],
        extra_config: Vec::new(),
    })
    .unwrap();
    let banner = read_banner(sshd.addr());
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner:?}");
    assert!(sshd.host_key().unwrap().starts_with("ssh-ed25519 "));
}

#[test]
fn a_test_user_logs_in_by_password_and_gets_the_forced_command() {
    let Some(paths) = peers::require_all(&[("sshd", "openssh-server"), ("ssh", "openssh-client")])
    else {
        return;
    };
    if !peers::require_root("sshd") {
        return;
    }
    let password = "fk-ssh-pass-2";
    let user = TestUser::create(password).unwrap();
    let sshd = Sshd::start(SshdOptions {
        users: vec![ForcedCommand {
            user: user.name().to_owned(),
            command: "/bin/echo console-ready".into(),
        }],
        extra_config: Vec::new(),
    })
    .unwrap();
    // ssh reads the password from an askpass program, which reads it from the
    // environment: never in argv.
    let askpass_dir = tempfile::tempdir().unwrap();
    let askpass = askpass_dir.path().join("askpass");
    std::fs::write(
        &askpass,
        "#!/bin/sh\nprintf '%s\\n' \"$FK_TEST_PASSWORD\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut ssh = Command::new(&paths[1]);
    ssh.args(["-F", "/dev/null", "-T", "-p", &sshd.port().to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args([
            "-o",
            "ConnectTimeout=10",
            "-l",
            user.name(),
            "127.0.0.1",
            "ignored",
        ])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("FK_TEST_PASSWORD", password)
        .env_remove("DISPLAY");
    let out = tool::run(ssh, None, TOOL_TIMEOUT).unwrap();
    assert!(
        out.stdout.contains("console-ready"),
        "{}\nsshd log:\n{}",
        out.text(),
        sshd.daemon().log()
    );
}

#[test]
fn a_test_user_is_removed_when_its_guard_drops() {
    if !peers::require_root("local test users") {
        return;
    }
    let Some(_) = peers::require("useradd", "passwd") else {
        return;
    };
    let user = TestUser::create("fk-user-pass-3").unwrap();
    let name = user.name().to_owned();
    let home = user.home();
    assert!(user_exists(&name));
    assert!(home.is_dir());
    drop(user);
    assert!(!user_exists(&name), "user {name} left behind");
    assert!(!home.exists());
}
