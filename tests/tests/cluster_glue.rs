//! fencekit as a cluster-glue external stonith plugin, driven by cluster-glue's own
//! `stonith` tool: `external/fencekit-sim` is linked into cluster-glue's plugin
//! directory (the only place `stonith` looks), parameters travel as environment
//! variables exactly as `stonith -E` passes them, and the simulated device's state
//! file shows what each operation really did to the outlets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_tests::bridge::{sim_states, write_sim_states, Installed};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;
use fencekit_tests::tool::{self, ToolOutput};

const PLUGIN: &str = "external/fencekit-sim";
/// cluster-glue's runner adds a second per operation; a lying outlet takes the
/// plugin's power_timeout on top.
const STONITH_TIMEOUT: Duration = Duration::from_secs(60);

/// The plugin linked where `stonith` finds it, and a simulated 4-outlet device
/// whose state file starts all on.
struct Glue {
    stonith: PathBuf,
    _link: SystemLink,
    installed: Installed,
    dir: tempfile::TempDir,
}

impl Glue {
    fn new() -> Option<Glue> {
        let stonith = peers::require("stonith", "cluster-glue")?;
        if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
            return None;
        }
        let installed = Installed::new().unwrap();
        let link = SystemLink::external_plugin(&installed, "sim").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let glue = Glue {
            stonith,
            _link: link,
            installed,
            dir,
        };
        write_sim_states(&glue.state(), &[true; 4]).unwrap();
        Some(glue)
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("pdu-state")
    }

    fn states(&self) -> Vec<bool> {
        sim_states(&self.state()).unwrap().into_values().collect()
    }

    /// `stonith ARGS` with the plugin's parameters in a clean environment: only
    /// these variables, as `stonith -E` hands them to the plugin.
    fn stonith(&self, args: &[&str], params: &[(&str, &str)]) -> ToolOutput {
        let mut command = Command::new(&self.stonith);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        let state = self.state();
        command.env("plugs", "4").env("state_file", &state);
        for (name, value) in params {
            command.env(name, value);
        }
        tool::run(command, None, STONITH_TIMEOUT).unwrap()
    }
}

fn xml_is_well_formed(xml: &str) -> Result<(), String> {
    let Some(xmllint) = peers::require("xmllint", "libxml2-utils") else {
        return Ok(());
    };
    let mut command = Command::new(xmllint);
    command.args(["--noout", "-"]);
    let out = tool::run(command, Some(xml.as_bytes()), Duration::from_secs(30)).unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(out.text())
    }
}

#[test]
fn stonith_lists_the_plugins_parameter_names() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(&["-t", PLUGIN, "-n"], &[]);
    assert!(out.status.success(), "{}", out.text());
    let names: Vec<&str> = out.stdout.split_whitespace().collect();
    for name in [
        "plugs",
        "state_file",
        "password",
        "hostlist",
        "hostmap",
        "power_timeout",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn stonith_status_succeeds_only_when_the_device_answers() {
    let Some(glue) = Glue::new() else { return };
    let ok = glue.stonith(&["-t", PLUGIN, "-E", "-S"], &[]);
    assert!(ok.status.success(), "{}", ok.text());
    // The device refuses this password: status must say the device is not usable.
    let refused = glue.stonith(
        &["-t", PLUGIN, "-E", "-S"],
        &[("password", "wrong"), ("expect_password", "right")],
    );
    assert!(!refused.status.success(), "{}", refused.text());
}

#[test]
fn stonith_lists_the_hosts_of_hostmap_hostlist_or_outlet_names() {
    let Some(glue) = Glue::new() else { return };
    let hosts = |params: &[(&str, &str)]| {
        let out = glue.stonith(&["-t", PLUGIN, "-E", "-l"], params);
        assert!(out.status.success(), "{}", out.text());
        out.stdout
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hosts(&[("hostmap", "node1:1;node2:2,3")]),
        ["node1", "node2"]
    );
    assert_eq!(
        hosts(&[("hostlist", "node1 node2 node3")]),
        ["node1", "node2", "node3"]
    );
    // A power strip whose outlets carry the hosts' names, as apcmastersnmp expects.
    assert_eq!(
        hosts(&[("names", "alpha,beta,gamma,delta")]),
        ["alpha", "beta", "gamma", "delta"]
    );
}

#[test]
fn stonith_off_switches_off_every_outlet_of_the_host_and_no_other() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "off", "node2"],
        &[("hostmap", "node1:1;node2:2,3")],
    );
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(glue.states(), [true, false, false, true]);
}

#[test]
fn stonith_off_finds_the_outlet_named_like_the_host() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "off", "gamma"],
        &[("names", "alpha,beta,gamma,delta")],
    );
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(glue.states(), [true, true, false, true]);
}

#[test]
fn stonith_reset_brings_the_host_back_on() {
    let Some(glue) = Glue::new() else { return };
    // node1 starts off, so only a completed off-and-on leaves it on.
    write_sim_states(&glue.state(), &[false, true, true, true]).unwrap();
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "reset", "node1"],
        &[("hostmap", "node1:1;node2:2,3")],
    );
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(glue.states(), [true, true, true, true]);
}

#[test]
fn stonith_on_powers_the_host_on() {
    let Some(glue) = Glue::new() else { return };
    write_sim_states(&glue.state(), &[true, false, false, true]).unwrap();
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "on", "node2"],
        &[("hostmap", "node1:1;node2:2,3")],
    );
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(glue.states(), [true, true, true, true]);
}

#[test]
fn stonith_off_fails_when_the_outlet_stays_on() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "off", "node3"],
        &[
            ("hostmap", "node1:1;node2:2;node3:4"),
            ("lying_plugs", "4"),
            ("power_timeout", "1"),
        ],
    );
    assert!(
        !out.status.success(),
        "off reported success against a lying outlet: {}",
        out.text()
    );
    assert_eq!(glue.states(), [true, true, true, true]);
}

#[test]
fn stonith_refuses_a_host_it_does_not_fence_and_names_those_it_does() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "off", "node9"],
        &[("hostmap", "node1:1;node2:2,3")],
    );
    assert!(!out.status.success(), "{}", out.text());
    let text = out.text();
    assert!(text.contains("node9"), "{text}");
    assert!(text.contains("node1, node2"), "{text}");
    assert_eq!(glue.states(), [true, true, true, true]);

    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "off", "node9"],
        &[("hostlist", "node1 node2")],
    );
    assert!(!out.status.success(), "{}", out.text());
    assert!(out.text().contains("node1, node2"), "{}", out.text());
    assert_eq!(glue.states(), [true, true, true, true]);
}

#[test]
fn stonith_metadata_carries_every_parameter() {
    let Some(glue) = Glue::new() else { return };
    let out = glue.stonith(&["-t", PLUGIN, "-m"], &[]);
    assert!(out.status.success(), "{}", out.text());
    for name in ["plugs", "state_file", "hostlist", "hostmap", "password"] {
        assert!(
            out.stdout.contains(&format!("<parameter name=\"{name}\"")),
            "{name} missing:\n{}",
            out.stdout
        );
    }
    // cluster-glue wraps getinfo-xml into resource-agent metadata; without the DTD
    // at hand, well-formedness is what can be checked.
    let body = out
        .stdout
        .lines()
        .filter(|line| !line.starts_with("<!DOCTYPE"))
        .collect::<Vec<_>>()
        .join("\n");
    xml_is_well_formed(&body).unwrap();
}

#[test]
fn the_plugins_getinfo_xml_is_well_formed() {
    let Some(glue) = Glue::new() else { return };
    // Run through the system link and the wrapper, as cluster-glue runs it.
    let plugin = Path::new(fencekit_tests::system::EXTERNAL_PLUGIN_DIR).join("fencekit-sim");
    let mut command = Command::new(plugin);
    command.arg("getinfo-xml");
    let out = tool::run(command, None, STONITH_TIMEOUT).unwrap();
    assert!(out.status.success(), "{}", out.text());
    assert!(out.stdout.starts_with("<parameters>"), "{}", out.stdout);
    xml_is_well_formed(&out.stdout).unwrap();
    // The same binary, reached through the install prefix, agrees.
    let mut command = Command::new(glue.installed.external("sim"));
    command.arg("getinfo-xml");
    let direct = tool::run(command, None, STONITH_TIMEOUT).unwrap();
    assert_eq!(direct.stdout, out.stdout);
}

/// Installed with `--stonith-dir` where RPM distributions keep cluster-glue's
/// plugins, a plugin finds the binary from there: cluster-glue's own `stonith`
/// (linked to it from the directory this machine's `stonith` reads) fences through
/// it, and the simulated device's state file shows the outlet off.
#[test]
fn stonith_fences_through_a_plugin_installed_in_the_rpm_directory() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(fencekit_tests::bridge::binary().unwrap());
    command
        .arg("install")
        .arg("--prefix")
        .arg(prefix.path())
        .args(["--stonith-dir", "/usr/lib64/stonith/plugins"]);
    let out = tool::run(command, None, STONITH_TIMEOUT).unwrap();
    assert!(out.status.success(), "install: {}", out.text());
    let wrapper = prefix
        .path()
        .join("usr/lib64/stonith/plugins/external/fencekit-sim");
    let _link = SystemLink::create(
        &Path::new(fencekit_tests::system::EXTERNAL_PLUGIN_DIR).join("fencekit-sim"),
        &wrapper,
    )
    .unwrap();
    let state = prefix.path().join("pdu-state");
    write_sim_states(&state, &[true; 4]).unwrap();
    let mut command = Command::new(&stonith);
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .args(["-t", PLUGIN, "plugs=4"])
        .arg(format!("state_file={}", state.display()))
        .args(["hostmap=node1:2", "-T", "off", "node1"]);
    let out = tool::run(command, None, STONITH_TIMEOUT).unwrap();
    assert!(out.status.success(), "off: {}", out.text());
    let states: Vec<bool> = sim_states(&state).unwrap().into_values().collect();
    assert_eq!(states, [true, false, true, true]);
}

/// A configuration written with only the names of cluster-glue's own plugin
/// (`stonith -t external/ipmi -n`, `baytech`, `apcmastersnmp`) is complete for the
/// fencekit plugin that stands in for it: every parameter its metadata marks
/// required is one of those names, so a tool that checks required parameters
/// against the metadata (pcs) takes the configuration unchanged.
#[test]
fn a_configuration_in_cluster_glues_names_has_every_required_parameter() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
        return;
    }
    let installed = Installed::new().unwrap();
    for (ours, theirs) in [
        ("ipmi", "external/ipmi"),
        ("baytech", "baytech"),
        ("apc", "apcmastersnmp"),
    ] {
        let _link = SystemLink::external_plugin(&installed, ours).unwrap();
        let run = |plugin: &str, flag: &str| {
            let mut command = Command::new(&stonith);
            command
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LC_ALL", "C")
                .args(["-t", plugin, flag]);
            let out = tool::run(command, None, STONITH_TIMEOUT).unwrap();
            assert!(out.status.success(), "{plugin} {flag}: {}", out.text());
            out.stdout
        };
        let their_names = run(theirs, "-n");
        let metadata = run(&format!("external/fencekit-{ours}"), "-m");
        let required: Vec<&str> = metadata
            .split("<parameter ")
            .skip(1)
            .filter(|p| p.contains("required=\"1\""))
            .filter_map(|p| p.split('"').nth(1))
            .collect();
        assert!(
            metadata.contains("<parameter "),
            "no parameters: {metadata}"
        );
        for name in required {
            assert!(
                their_names.split_whitespace().any(|n| n == name),
                "external/fencekit-{ours} requires `{name}`, which {theirs} does not have ({their_names})"
            );
        }
    }
}
