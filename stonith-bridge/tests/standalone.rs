//! The standalone `fence` command: exit codes, messages for broken configurations,
//! and secrets kept out of every output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    // Private, as a configuration holding a password must be.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `fence -c PATH -n node1 -a off`.
fn off_node1(config: &Path) -> Output {
    run(
        &[
            "fence",
            "-c",
            config.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "off",
        ],
        None,
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(dir: &Path, extra_device: &str) -> PathBuf {
    let state = dir.join("pdu.state");
    write(
        dir,
        "fencekit.toml",
        &format!(
            r#"[fence]
power_timeout = 2

[devices.pdu-a]
plugin = "sim"
plugs = 4
state_file = "{}"
{extra_device}

[nodes.node1]
plugs = [{{ device = "pdu-a", plug = "1" }}, {{ device = "pdu-a", plug = 2 }}]
"#,
            state.display()
        ),
    )
}

#[test]
fn off_then_status_confirms_and_reports_off_with_exit_7() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let out = run(&["fence", "-c", cfg, "-n", "node1", "-a", "status"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["fence", "-c", cfg, "-n", "node1", "-a", "off"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("node1: fenced, all 2 plug(s) confirmed off"),
        "{}",
        text(&out)
    );
    let out = run(&["fence", "-c", cfg, "-n", "node1", "-a", "status"], None);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = run(
        &["fence", "-c", cfg, "-n", "node1", "-a", "reboot", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["success"], true);
    assert_eq!(json["fenced"], true);
    assert_eq!(json["state"], "on");
}

#[test]
fn a_lying_plug_fails_with_exit_1_naming_plug_and_device() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "lying_plugs = \"2\"");
    let out = run(
        &[
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "off",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("plug 2 on pdu-a still on 2.0 s after off was accepted"),
        "{}",
        text(&out)
    );
}

/// Each broken file gives exit 2 and one message naming the file, the line and the
/// parameter (or section) at fault.
#[test]
fn broken_configurations_are_refused_with_file_line_and_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown-plugin.toml",
            "[devices.pdu-a]\nplugin = \"apc9000\"\n",
            ":2:10: unknown plugin `apc9000` for device `pdu-a`",
        ),
        (
            "wrong-type.toml",
            "[devices.pdu-a]\nplugin = \"sim\"\nplugs = \"eight\"\n",
            ":3:1: parameter `plugs`: expected an integer, found \"eight\"",
        ),
        (
            "unknown-parameter.toml",
            "[devices.pdu-a]\nplugin = \"sim\"\nplugz = 8\n",
            ":3:1: parameter `plugz`: unknown parameter",
        ),
        (
            "duplicate-plug.toml",
            "[devices.pdu-a]\nplugin = \"sim\"\n\n[nodes.node1]\nplugs = [{ device = \"pdu-a\", plug = \"1\" }, { device = \"pdu-a\", plug = \"1\" }]\n",
            ":5:44: node `node1` lists plug 1 on pdu-a twice",
        ),
        (
            "unknown-device.toml",
            "[nodes.node1]\nplugs = [{ device = \"pdu-z\" }]\n",
            ":2:10: node `node1` uses device `pdu-z`, which is not configured",
        ),
        (
            "no-plugin.toml",
            "[devices.pdu-a]\nplugs = 3\n",
            ":1:10: device `pdu-a` has no `plugin`",
        ),
        (
            "not-toml.toml",
            "[devices.pdu-a\nplugin = \"sim\"\n",
            ":1:",
        ),
        (
            "bad-secret-file.toml",
            "[devices.pdu-a]\nplugin = \"sim\"\npassword_file = \"missing.pw\"\n",
            ":3:1: parameter `password_file`: cannot read secret file",
        ),
    ];
    for (name, body, expected) in cases {
        let path = write(dir.path(), name, body);
        let out = off_node1(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        let wanted = format!("{}{expected}", path.display());
        assert!(
            stderr.contains(&wanted),
            "{name}: wanted {wanted:?} in {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn a_node_without_plugs_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "f.toml",
        "[devices.a]\nplugin = \"sim\"\n[nodes.node1]\n",
    );
    let out = run(
        &[
            "fence",
            "-c",
            path.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "off",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node `node1` has no `plugs`"));
}

#[test]
fn an_unknown_node_is_refused_with_the_list_of_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = run(
        &[
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "node7",
            "-a",
            "off",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown node `node7`; the file configures: node1"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_action_is_a_usage_error() {
    let out = run(
        &["fence", "-c", "x.toml", "-n", "node1", "-a", "explode"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'explode'"));
}

const PASSWORD: &str = "Tr0ub4dor-and-3";

fn assert_no_secret(out: &Output, what: &str) {
    let all = text(out);
    assert!(
        !all.contains(PASSWORD),
        "{what}: the password leaked:\n{all}"
    );
}

#[test]
fn a_password_from_a_file_never_appears_in_output_or_logs_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pdu.pw", &format!("{PASSWORD}\n"));
    let cfg = config(
        dir.path(),
        "password_file = \"pdu.pw\"\nexpect_password_file = \"pdu.pw\"",
    );
    let out = run(
        &[
            "-vvv",
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "off",
            "--progress",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TRACE")
            || String::from_utf8_lossy(&out.stderr).contains("DEBUG")
    );
    assert_no_secret(&out, "success");

    // A wrong password: the error says what failed, and still shows no secret.
    write(dir.path(), "wrong.pw", "not-the-password\n");
    let cfg = config(
        dir.path(),
        "password_file = \"wrong.pw\"\nexpect_password_file = \"pdu.pw\"",
    );
    let out = run(
        &[
            "-vvv",
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "off",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("authentication failed"),
        "{}",
        text(&out)
    );
    assert_no_secret(&out, "wrong password");
    assert!(!text(&out).contains("not-the-password"));
}

#[test]
fn a_password_from_stdin_never_appears_in_output_or_logs_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pdu.pw", PASSWORD);
    let cfg = config(
        dir.path(),
        "password_file = \"/dev/stdin\"\nexpect_password_file = \"pdu.pw\"",
    );
    let out = run(
        &[
            "-vvv",
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "node1",
            "-a",
            "status",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret(&out, "stdin");
}

#[test]
fn the_demo_prints_a_confirmed_fence_and_a_refused_lie() {
    let out = run(&["demo"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("RESULT: node1: fenced, all 1 plug(s) confirmed off"),
        "{stdout}"
    );
    assert!(
        stdout.contains("still on 2.0 s after off was accepted"),
        "{stdout}"
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let out = run(&["fence", "--help"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for code in [
        "0  done and confirmed",
        "1  failed",
        "2  bad command line",
        "3  reboot",
        "7  status",
    ] {
        assert!(stdout.contains(code), "{code} missing from:\n{stdout}");
    }
}

fn two_node_config(dir: &Path, lying: &str) -> PathBuf {
    let state = dir.join("pdu.state");
    write(
        dir,
        "two.toml",
        &format!(
            r#"[fence]
power_timeout = 1

[devices.pdu-a]
plugin = "sim"
plugs = 4
state_file = "{}"
names = "web-a,web-b,db-a,db-b"
{lying}

[nodes.web]
plugs = [{{ device = "pdu-a", plug = "1" }}, {{ device = "pdu-a", plug = "2" }}]

[nodes.db]
plugs = [{{ device = "pdu-a", plug = "db-a" }}, {{ device = "pdu-a", plug = "db-b" }}]
"#,
            state.display()
        ),
    )
}

#[test]
fn several_nodes_are_fenced_at_once_with_a_summary_table() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_node_config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let out = run(&["fence", "-c", cfg, "-n", "web,db", "-a", "off"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("web: fenced, all 2 plug(s) confirmed off"),
        "{stdout}"
    );
    assert!(
        stdout.contains("db: fenced, all 2 plug(s) confirmed off"),
        "{stdout}"
    );
    let table = stdout.split("node ").nth(1).unwrap_or_default();
    assert!(table.contains("web") && table.contains("db"), "{stdout}");
    let out = run(
        &["fence", "-c", cfg, "-n", "web,db", "-a", "status", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

#[test]
fn one_failing_node_among_several_makes_the_run_fail_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_node_config(dir.path(), "lying_plugs = \"3\"");
    let out = run(
        &[
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "web,db",
            "-a",
            "off",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("web: fenced"), "{stdout}");
    assert!(stdout.contains("db: off FAILED"), "{stdout}");
    assert!(
        stdout.contains("plug db-a on pdu-a still on 1.0 s after off was accepted"),
        "{stdout}"
    );
}

#[test]
fn list_and_check_cover_the_configured_devices() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_node_config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    run(&["fence", "-c", cfg, "-n", "db", "-a", "off"], None);
    let out = run(&["list", "-c", cfg], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("web-a") && l.ends_with("on")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("db-b") && l.ends_with("off")),
        "{stdout}"
    );
    let out = run(&["check", "-c", cfg, "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["device"], "pdu-a");
    assert_eq!(json[0]["ok"], true);
    let out = run(&["check", "-c", cfg, "-d", "pdu-z"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no device named pdu-z"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_fails_for_a_device_that_refuses_the_password() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "right.pw", "right\n");
    write(dir.path(), "wrong.pw", "wrong\n");
    let cfg = config(
        dir.path(),
        "password_file = \"wrong.pw\"\nexpect_password_file = \"right.pw\"",
    );
    let out = run(&["check", "-c", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("pdu-a: FAILED: authentication failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_node_named_twice_is_refused_before_anything_is_switched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = two_node_config(dir.path(), "");
    let out = run(
        &[
            "fence",
            "-c",
            cfg.to_str().unwrap(),
            "-n",
            "web,db,web",
            "-a",
            "reboot",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("web twice"), "{}", text(&out));
}

fn run_with_env(args: &[&str], config_variable: Option<&Path>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("FENCEKIT_CONFIG")
        .stdin(Stdio::null());
    if let Some(path) = config_variable {
        command.env("FENCEKIT_CONFIG", path);
    }
    command.output().unwrap()
}

#[test]
fn without_config_the_file_named_by_fencekit_config_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = run_with_env(&["fence", "-n", "node1", "-a", "off"], Some(&cfg));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run_with_env(&["list"], Some(&cfg));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("pdu-a"), "{}", text(&out));
    // --config wins over the variable.
    let missing = dir.path().join("missing.toml");
    let out = run_with_env(&["check", "-c", &cfg.display().to_string()], Some(&missing));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn without_any_configuration_the_error_names_every_place_looked_at() {
    if Path::new("/etc/fencekit/fencekit.toml").exists() {
        // This machine has a default configuration: it would be read, as it should.
        return;
    }
    let out = run_with_env(&["fence", "-n", "node1", "-a", "status"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("--config")
            && all.contains("$FENCEKIT_CONFIG")
            && all.contains("/etc/fencekit/fencekit.toml"),
        "{all}"
    );
}

#[test]
fn a_configuration_every_user_may_read_with_a_password_in_it_is_refused_and_nothing_switched() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "password = \"fk-open-secret\"\nexpect_password = \"fk-open-secret\"",
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = cfg.display().to_string();
    let out = run(&["fence", "-c", &c, "-n", "node1", "-a", "off"], None);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains(&format!("chmod 600 {c}")), "{all}");
    assert!(!all.contains("fk-open-secret"), "{all}");
    assert!(
        !dir.path().join("pdu.state").exists(),
        "the device was touched: {all}"
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["fence", "-c", &c, "-n", "node1", "-a", "off"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A node's plug without `plug` (or a blank one) on a device of many outlets would
/// reach the device as `chassis`, which no outlet is (a script whose status of
/// `chassis` says off reported the node fenced): refused, nothing switched, as the
/// fence agent refuses a missing `plug` there.
#[test]
fn a_plug_without_its_outlet_on_a_device_of_many_is_refused() {
    for plug in ["", ", plug = \" \""] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pdu.state");
        let path = write(
            dir.path(),
            "fencekit.toml",
            &format!(
                "[devices.a]\nplugin = \"sim\"\nplugs = 3\nstate_file = \"{}\"\n\n\
                 [nodes.node1]\nplugs = [{{ device = \"a\"{plug} }}]\n",
                state.display()
            ),
        );
        let out = off_node1(&path);
        assert_eq!(out.status.code(), Some(2), "{plug:?}: {}", text(&out));
        assert!(text(&out).contains("without `plug`"), "{}", text(&out));
        let states = std::fs::read_to_string(&state).unwrap_or_default();
        assert!(!states.contains("off"), "{plug:?}: {states}");
    }
}
