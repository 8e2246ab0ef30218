//! What every front end owes the cluster whatever the input or the network does: the
//! process ends by its deadline even when a name lookup or an SSH connect hangs; bad
//! plug text is a clear error with the interface's exit code, never a crash; what a
//! user typed is not echoed into logs; and the process holds its secrets where no
//! core dump, other user or child can read them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fencekit_tests::peers;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// How far past its deadline a run may end.
const MARGIN: Duration = Duration::from_secs(1);

/// Runs `command` with `stdin`, killed (by its PID) if it outlives `limit`, and gives
/// its output and how long it ran.
fn run_timed(mut command: Command, stdin: &str, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The process may stop reading early (it refuses too long an input).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = wait_or_kill(child, limit);
    (output, started.elapsed())
}

fn wait_or_kill(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- deadlines: a resolver that never answers, an SSH peer that never speaks ------

/// A network namespace of this test's own whose resolver (127.0.0.1:53, named in
/// `/etc/netns/NAME/resolv.conf`) receives every query and never answers. Dropped,
/// it stops the resolver and removes the namespace and the file.
struct BlackholedResolver {
    name: String,
    resolver: Option<Child>,
}

impl BlackholedResolver {
    fn new() -> BlackholedResolver {
        let name = format!("fk-dns-{}-{}", std::process::id(), rand_suffix());
        let mut made = BlackholedResolver {
            name: name.clone(),
            resolver: None,
        };
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        std::fs::create_dir_all(made.etc_dir()).unwrap();
        std::fs::write(made.etc_dir().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let resolver = Command::new("ip")
            .args(["netns", "exec", &name, "python3", "-c"])
            .arg(
                "import socket,sys\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 s.bind(('127.0.0.1',53))\n\
                 print('ready',flush=True)\n\
                 while True: s.recvfrom(4096)\n",
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        made.resolver = Some(resolver);
        // Ready once bound: a query sent before would be refused, not blackholed.
        let mut ready = [0u8; 5];
        made.resolver
            .as_mut()
            .and_then(|r| r.stdout.as_mut())
            .unwrap()
            .read_exact(&mut ready)
            .unwrap();
        assert_eq!(&ready, b"ready");
        made
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// `command` run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for BlackholedResolver {
    fn drop(&mut self) {
        if let Some(mut resolver) = self.resolver.take() {
            let _ = resolver.kill();
            let _ = resolver.wait();
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}: {status}");
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 100_000
}

#[test]
fn a_blackholed_resolver_does_not_keep_the_agent_past_its_deadline() {
    if !peers::require_root("a network namespace of the test's own")
        || peers::require_all(&[("ip", "iproute2"), ("python3", "python3")]).is_none()
    {
        return;
    }
    let namespace = BlackholedResolver::new();
    let timeout = Duration::from_secs(3);
    for (plugin, extra) in [
        ("ipmi", "username=admin\npassword=pw\n"),
        ("apc", "community=private\nport=1\n"),
        ("apc", "transport=ssh\nlogin=apc\npassword=pw\nport=1\n"),
        ("baytech", "login=admin\npassword=pw\nport=1\n"),
        (
            "apc",
            "transport=snmp,ssh\ncommunity=private\nlogin=apc\npassword=pw\nport=1\ninsecure_skip_host_key_check=1\n",
        ),
    ] {
        let mut command = namespace.exec(BIN);
        command.args(["fence-agent", plugin]);
        let stdin = format!(
            "action=off\nip=bmc1.fencekit.test\ntimeout={}\n{extra}",
            timeout.as_secs()
        );
        let (out, took) = run_timed(command, &stdin, Duration::from_secs(60));
        assert_ne!(out.status.code(), Some(0), "{plugin}: {}", text(&out));
        assert!(
            took < timeout + MARGIN,
            "{plugin} {extra:?}: ran {took:?} with timeout {timeout:?}: {}",
            text(&out)
        );
        // SNMP's lookup cut off: the console is not tried, since a lookup of its own
        // could lead it to another address than SNMP's, another PDU.
        if extra.contains("snmp,ssh") {
            assert!(
                text(&out).contains("SSH console is not tried"),
                "{}",
                text(&out)
            );
        }
    }
}

/// A TCP listener on loopback that accepts and never sends an SSH banner.
fn silent_ssh_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn an_ssh_peer_that_never_sends_a_banner_does_not_keep_the_agent_past_its_deadline() {
    let port = silent_ssh_peer();
    let timeout = Duration::from_secs(3);
    for (plugin, extra) in [
        ("apc", "transport=ssh\nlogin=apc\npassword=pw\nport=1\n"),
        ("baytech", "login=admin\npassword=pw\nport=1\n"),
    ] {
        let mut command = Command::new(BIN);
        command.args(["fence-agent", plugin]);
        let stdin = format!(
            "action=off\nip=127.0.0.1\nipport={port}\ntimeout={}\ninsecure_skip_host_key_check=1\n{extra}",
            timeout.as_secs()
        );
        let (out, took) = run_timed(command, &stdin, Duration::from_secs(60));
        assert_ne!(out.status.code(), Some(0), "{plugin}: {}", text(&out));
        assert!(
            took < timeout + MARGIN,
            "{plugin}: ran {took:?} with timeout {timeout:?}: {}",
            text(&out)
        );
    }
}

// ---- bad plug text ---------------------------------------------------------------

fn deep_plug() -> String {
    format!("{}1", "1:".repeat(50_000))
}

#[test]
fn deep_plug_text_is_a_clear_error_in_every_front_end() {
    let deep = deep_plug();
    // The fence agent: stdin and argv. fence-agents exit 1 on bad input (2 would
    // read as "off" to a caller of `status`).
    let (out, _) = run_timed(
        {
            let mut c = Command::new(BIN);
            c.args(["fence-agent", "sim"]);
            c
        },
        &format!("action=off\nport={deep}\n"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("too long"), "{}", text(&out));
    let (out, _) = run_timed(
        {
            let mut c = Command::new(BIN);
            c.args(["fence-agent", "sim", "-o", "off", "--plug", &deep]);
            c
        },
        "",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("too long"), "{}", text(&out));
    // cluster-glue: a host map, a host list, and a host named by argv on a power
    // strip (its outlet carries the host's name).
    for (key, value) in [
        ("hostmap", format!("node1:{deep}")),
        ("hostlist", format!("node1 {}", "h".repeat(100_000))),
    ] {
        let mut command = Command::new(BIN);
        command
            .args(["external", "sim", "off", "node1"])
            .env(key, &value);
        let (out, _) = run_timed(command, "", Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{key}: {}", text(&out));
        assert!(text(&out).contains("too long"), "{key}: {}", text(&out));
        assert!(text(&out).len() < 2_000, "{key} was echoed whole");
    }
    let mut command = Command::new(BIN);
    command.args(["external", "sim", "off", &"h".repeat(100_000)]);
    let (out, _) = run_timed(command, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).len() < 2_000, "the host was echoed whole");
}

#[test]
fn a_host_map_entry_that_cannot_be_read_fails_the_fence_naming_the_problem() {
    for (map, says) in [
        ("node1:1 2", "neither"),
        ("node1:1;node1:2", "listed twice"),
        ("node1:1,,2", "empty"),
    ] {
        let mut command = Command::new(BIN);
        command
            .args(["external", "sim", "off", "node1"])
            .env("hostmap", map);
        let (out, _) = run_timed(command, "", Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{map}: {}", text(&out));
        assert!(text(&out).contains(says), "{map}: {}", text(&out));
    }
    // A host the device does not list is refused, naming where the list comes from
    // (external/ipmi would power its machine off whatever host it is asked for);
    // its short name is the one listed, whose full name it is not.
    let mut command = Command::new(BIN);
    command
        .args(["external", "sim", "off", "node1"])
        .env("hostlist", "node2.example.com");
    let (out, _) = run_timed(command, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("node2.example.com") && text(&out).contains("`hostname`"),
        "{}",
        text(&out)
    );
    // A blank after a comma continues the list: both plugs are fenced.
    let mut command = Command::new(BIN);
    command
        .args(["external", "sim", "off", "node1"])
        .env("hostmap", "node1:1, 2");
    let (out, _) = run_timed(command, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("all 2 plug(s) confirmed off"),
        "{}",
        text(&out)
    );
}

// ---- nothing the user typed is echoed ----------------------------------------------

#[test]
fn a_stdin_line_without_equals_is_warned_about_by_line_number_only() {
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]);
    let (out, _) = run_timed(
        command,
        "action=validate-all\npassword hunter2\nhunter2 x=y\n",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("stdin:2"), "{all}");
    assert!(all.contains("stdin:3"), "{all}");
}

#[test]
fn stdin_longer_than_the_limit_is_refused_not_cut() {
    // Cut at the limit, the last lines would be lost without a word.
    let stdin = format!("{}action=validate-all\nport=1\n", "#\n".repeat(600 * 1024));
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]);
    let (out, _) = run_timed(command, &stdin, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("more than"), "{}", text(&out));
}

#[test]
fn stdin_that_is_not_utf8_is_refused_without_showing_it() {
    let mut child = Command::new(BIN)
        .args(["fence-agent", "sim"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"action=off\npassword=hunter2\xff\nport=1\n")
        .unwrap();
    let out = wait_or_kill(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not UTF-8"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
}

#[test]
fn argument_errors_name_no_value() {
    for args in [
        &["-o", "off", "hunter2"][..],
        &["--pass word=hunter2"][..],
        &["-o", "off", "--plug", "1", "--pasword=hunter2"][..],
    ] {
        let mut command = Command::new(BIN);
        command.args(["fence-agent", "sim"]).args(args);
        let (out, _) = run_timed(command, "", Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("hunter2"), "{args:?}: {}", text(&out));
    }
}

#[test]
fn arguments_that_are_not_utf8_are_refused_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("fence_fencekit_sim", &[][..]),
        ("fencekit-sim", &["off"][..]),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(BIN, &link).unwrap();
        let mut command = Command::new(&link);
        command.args(args).arg(bad);
        let (out, _) = run_timed(command, "", Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(text(&out).contains("argument"), "{}", text(&out));
        assert!(text(&out).contains("not UTF-8"), "{}", text(&out));
    }
    // The subcommands: a usage error from the command-line parser.
    for front in [&["fence-agent", "sim"][..], &["external", "sim", "off"][..]] {
        let mut command = Command::new(BIN);
        command.args(front).arg(bad);
        let (out, _) = run_timed(command, "", Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{front:?}: {}", text(&out));
    }
    let mut command = Command::new(BIN);
    command.args(["external", "sim", "off", "node1"]);
    command.env("hostlist", std::ffi::OsStr::from_bytes(b"node1 \xff"));
    let (out, _) = run_timed(command, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("`hostlist`"), "{}", text(&out));
}

// ---- secrets: core dumps, /proc, children ----------------------------------------

/// The binary where an unprivileged user can run it.
fn binary_for_anyone(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("stonith-bridge");
    std::fs::copy(BIN, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

#[test]
fn while_it_reads_its_options_the_agent_has_no_core_dump_and_is_not_dumpable() {
    use std::os::unix::process::CommandExt;
    if !peers::require_root("running the agent as another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = binary_for_anyone(dir.path());
    // As `nobody`: /proc/PID of a dumpable process belongs to its user, of a
    // process that is not dumpable to root.
    let mut child = Command::new(&binary)
        .args(["fence-agent", "sim"])
        .uid(65534)
        .gid(65534)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"action=status\npassword=hunter2\n")
        .unwrap();
    // Still reading stdin (not closed): read its limits and owner meanwhile.
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let started = Instant::now();
    let mut seen = (String::new(), u32::MAX);
    while started.elapsed() < Duration::from_secs(5) {
        let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_default()
            .split_whitespace()
            .skip(4)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let owner = std::fs::metadata(proc_dir.join("environ")).map_or(u32::MAX, |m| m.uid());
        seen = (core, owner);
        if seen == ("0 0".to_string(), 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let still_running = child.try_wait().unwrap().is_none();
    drop(stdin);
    let _ = wait_or_kill(child, Duration::from_secs(10));
    assert!(still_running, "the agent ended before /proc was read");
    assert_eq!(seen.0, "0 0", "core file size soft and hard limits");
    assert_eq!(
        seen.1, 0,
        "/proc/PID/environ belongs to root only when the process is not dumpable"
    );
}

#[test]
fn cluster_glue_parameters_do_not_reach_the_notify_command() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("env");
    let mut command = Command::new(BIN);
    command
        .args(["external", "sim", "off", "node1"])
        .env("hostlist", "node1")
        .env("names", "node1,marker-outlet")
        .env("notify_command", format!("env > {}", seen.display()));
    let (out, _) = run_timed(command, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let env = std::fs::read_to_string(&seen).unwrap();
    for leaked in ["hostlist=", "names=", "notify_command=", "marker-outlet"] {
        assert!(!env.contains(leaked), "{leaked} reached the notify command");
    }
}

#[test]
fn a_password_env_variable_is_read_and_removed_before_any_child_starts() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("env");
    let mut command = Command::new(BIN);
    command
        .args(["fence-agent", "ipmi"])
        .env("FK_TEST_BMC_PASSWORD", "pw-from-env-marker");
    let (out, _) = run_timed(
        command,
        &format!(
            "action=off\nip=127.0.0.1\nipport=9\nusername=admin\npassword_env=FK_TEST_BMC_PASSWORD\ntimeout=2\nnotify_command=env > {}\n",
            seen.display()
        ),
        Duration::from_secs(30),
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(
        !env.contains("pw-from-env-marker"),
        "the password reached the notify command"
    );
    assert!(!text(&out).contains("pw-from-env-marker"));
}

// ---- external plugins: loaded lazily, by the deadline -----------------------------

/// Builds the test plugin `fencekit-test-plugin-raw` with `features`, in a target
/// directory of its own under this build's (as the plugin tests do), and gives the
/// shared object.
fn raw_plugin(features: &str) -> PathBuf {
    let profile_dir = Path::new(BIN).parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let target_dir = profile_dir
        .parent()
        .unwrap()
        .join("fencekit-plugin-tests")
        .join(features);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "fencekit-test-plugin-raw",
            "--features",
            features,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    if profile == "release" {
        command.arg("--release");
    }
    assert!(
        command.status().unwrap().success(),
        "cannot build the test plugin"
    );
    let path = target_dir
        .join(profile)
        .join("libfencekit_test_plugin_raw.so");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[test]
fn a_plugin_whose_loading_hangs_delays_no_other_plugin_and_fails_by_its_deadline() {
    let in_info = raw_plugin("hang-in-info");
    let in_constructor = raw_plugin("hang-in-constructor");
    for (hanging, why) in [(in_info, "info call"), (in_constructor, "initialiser")] {
        let dir = tempfile::tempdir().unwrap();
        // Named as the plugin it declares (`test-raw`), and first in name order.
        std::fs::copy(&hanging, dir.path().join("test-raw.so")).unwrap();
        std::fs::copy(&hanging, dir.path().join("aaa.so")).unwrap();
        // A fence through a built-in plugin: not delayed at all.
        let mut command = Command::new(BIN);
        command
            .args(["fence-agent", "sim"])
            .env("FENCEKIT_PLUGIN_DIR", dir.path());
        let (out, took) = run_timed(command, "action=off\nport=1\n", Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "{why}: {}", text(&out));
        assert!(took < Duration::from_millis(900), "{why}: took {took:?}");
        // A fence through the hanging plugin: fails by its deadline, saying why.
        let timeout = Duration::from_secs(2);
        let mut command = Command::new(BIN);
        command
            .args(["fence-agent", "test-raw"])
            .env("FENCEKIT_PLUGIN_DIR", dir.path());
        let (out, took) = run_timed(
            command,
            &format!("action=off\nport=1\ntimeout={}\n", timeout.as_secs()),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(1), "{why}: {}", text(&out));
        assert!(
            took < timeout + MARGIN,
            "{why}: took {took:?}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("test-raw.so") && text(&out).contains("did not finish within"),
            "{why}: {}",
            text(&out)
        );
    }
}
