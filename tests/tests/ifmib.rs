//! The `ifmib` plugin through the fence-agent front end against net-snmp's own IF-MIB
//! on real Linux interfaces: a network namespace of the test's own with veth pairs,
//! `snmpd` serving them, and `fence_fencekit_ifmib` run inside the namespace. The
//! oracle is the kernel (`ip link show`: the UP flag), never fencekit's own read. Side
//! by side with fence-agents' `fence_ifmib`: the same stdin must give the same exit
//! codes and leave the ports in the same states.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fencekit_tests::bridge::Installed;
use fencekit_tests::fabric::{Fabric, FabricOptions, PORT};
use fencekit_tests::peers;
use fencekit_tests::snmpd::{AuthProtocol, Community, PrivProtocol, SnmpUser, SnmpdOptions};
use fencekit_tests::tool::{self, ToolOutput};

const COMMUNITY: &str = "fk-write-community";
const V3_USER: &str = "fenceuser";
const V3_AUTH: &str = "fk-auth-phrase-1";
const V3_PRIV: &str = "fk-priv-phrase-1";

/// The ports fenced (each a veth whose peer stays up).
const PORT_A: &str = "fkport-a";
const PORT_B: &str = "fkport-b";
/// An interface named `1`: loopback is ifIndex 1 in every namespace, so plug `1`
/// fits two interfaces.
const NAMED_ONE: &str = "1";

/// Every run of an agent ends well before this; a hang fails the test.
const AGENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Fence-agent exit codes: 0 success (status: on), 1 failure, 2 status off.
const ON: Option<i32> = Some(0);
const FAILED: Option<i32> = Some(1);
const OFF: Option<i32> = Some(2);

struct Switch {
    fabric: Fabric,
    /// Persistent files and configuration of net-snmp's tools run by fence_ifmib:
    /// here, never under /var/lib/snmp.
    tools_dir: tempfile::TempDir,
}

impl Switch {
    /// The switch with its write community and SNMPv3 authPriv user, or `None` when a
    /// peer is missing (a failure under FENCEKIT_REQUIRE_PEERS=1).
    fn start() -> Option<Switch> {
        peers::require_all(&[
            ("snmpd", "snmpd"),
            ("ip", "iproute2"),
            ("nsenter", "util-linux"),
        ])?;
        if !peers::require_root("a network namespace of the test's own") {
            return None;
        }
        let pair = |name: &str, peer: &str| (name.to_string(), peer.to_string());
        let fabric = Fabric::start(FabricOptions {
            pairs: vec![
                pair(PORT_A, "fkpeer-a"),
                pair(PORT_B, "fkpeer-b"),
                pair(NAMED_ONE, "fkpeer-1"),
            ],
            snmpd: SnmpdOptions {
                communities: vec![Community {
                    name: COMMUNITY.into(),
                    write: true,
                }],
                users: vec![SnmpUser {
                    name: V3_USER.into(),
                    auth: AuthProtocol::Sha,
                    auth_pass: V3_AUTH.into(),
                    privacy: Some((PrivProtocol::Aes, V3_PRIV.into())),
                    write: true,
                }],
                ..SnmpdOptions::default()
            },
        })
        .unwrap();
        Some(Switch {
            fabric,
            tools_dir: tempfile::tempdir().unwrap(),
        })
    }

    /// Every interface of the namespace as the kernel sees it: (name, up).
    fn ports(&self) -> Vec<(&'static str, bool)> {
        [
            "lo", PORT_A, "fkpeer-a", PORT_B, "fkpeer-b", NAMED_ONE, "fkpeer-1",
        ]
        .into_iter()
        .map(|dev| (dev, self.fabric.is_up(dev).unwrap()))
        .collect()
    }

    fn is_up(&self, dev: &str) -> bool {
        self.fabric.is_up(dev).unwrap()
    }

    fn all_up(&self) {
        for dev in [PORT_A, PORT_B, NAMED_ONE] {
            self.fabric.set_up(dev, true).unwrap();
        }
    }

    fn index(&self, dev: &str) -> String {
        self.fabric.if_index(dev).unwrap().to_string()
    }

    /// Runs `agent` inside the namespace with `stdin`.
    fn run(&self, agent: &Path, stdin: &str) -> ToolOutput {
        let mut command = self.fabric.command(agent);
        command
            .env("LC_ALL", "C")
            .env("SNMP_PERSISTENT_DIR", self.tools_dir.path())
            .env("SNMPCONFPATH", self.tools_dir.path());
        tool::run(command, Some(stdin.as_bytes()), AGENT_TIMEOUT).unwrap()
    }
}

/// The `action=` line; none for an empty action (the agent's default).
fn action_line(action: &str) -> String {
    if action.is_empty() {
        String::new()
    } else {
        format!("action={action}\n")
    }
}

fn v2c(action: &str, plug: &str) -> String {
    format!(
        "{}ip=127.0.0.1\nipport={PORT}\nsnmp_version=2c\ncommunity={COMMUNITY}\nplug={plug}\n",
        action_line(action)
    )
}

fn v3(action: &str, plug: &str) -> String {
    format!(
        "{}ip=127.0.0.1\nipport={PORT}\nsnmp_version=3\nusername={V3_USER}\n\
         password={V3_AUTH}\nsnmp_auth_prot=SHA\nsnmp_sec_level=authPriv\n\
         snmp_priv_prot=AES\nsnmp_priv_passwd={V3_PRIV}\nplug={plug}\n",
        action_line(action)
    )
}

fn ours(installed: &Installed) -> PathBuf {
    installed.agent("ifmib")
}

/// off and on by name and by ifIndex, each confirmed by the kernel; status agrees.
fn fence_and_unfence(switch: &Switch, agent: &Path, input: fn(&str, &str) -> String) {
    switch.all_up();
    let index_b = switch.index(PORT_B);
    let step = |action: &str, plug: &str| {
        let out = switch.run(agent, &input(action, plug));
        (out.status.code(), out.text())
    };

    let (code, text) = step("off", PORT_A);
    assert_eq!(code, ON, "off {PORT_A}: {text}");
    assert!(!switch.is_up(PORT_A), "{PORT_A} still up after off: {text}");
    assert!(switch.is_up(PORT_B), "off {PORT_A} touched {PORT_B}");
    assert!(
        switch.is_up("fkpeer-a"),
        "the peer of a port is not the port"
    );
    assert_eq!(step("status", PORT_A).0, OFF);
    assert_eq!(step("status", &switch.index(PORT_A)).0, OFF);

    let (code, text) = step("on", &switch.index(PORT_A));
    assert_eq!(code, ON, "on by ifIndex: {text}");
    assert!(switch.is_up(PORT_A), "{PORT_A} still down after on: {text}");
    assert_eq!(step("status", PORT_A).0, ON);

    let (code, text) = step("off", &index_b);
    assert_eq!(code, ON, "off by ifIndex {index_b}: {text}");
    assert!(!switch.is_up(PORT_B), "{PORT_B} still up after off: {text}");
    assert!(switch.is_up(PORT_A));
    assert_eq!(step("status", PORT_B).0, OFF);
    let (code, text) = step("on", PORT_B);
    assert_eq!(code, ON, "on {PORT_B}: {text}");
    assert!(switch.is_up(PORT_B));
}

#[test]
fn a_port_is_cut_and_restored_over_v2c_by_name_and_by_ifindex_as_the_kernel_shows() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    fence_and_unfence(&switch, &ours(&installed), v2c);
}

#[test]
fn a_port_is_cut_and_restored_over_v3_auth_priv_by_name_and_by_ifindex_as_the_kernel_shows() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    fence_and_unfence(&switch, &ours(&installed), v3);
}

#[test]
fn list_prints_each_interface_by_ifdescr_and_ifalias_as_fence_ifmib_does() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let Some(snmpset) = peers::require("snmpset", "snmp") else {
        return;
    };
    let installed = Installed::new().unwrap();
    // The port's description, set on the switch's side as an operator would.
    let alias = "db1 storage, rack 4";
    let mut command = switch.fabric.command(&snmpset);
    command
        .env("SNMP_PERSISTENT_DIR", switch.tools_dir.path())
        .env("SNMPCONFPATH", switch.tools_dir.path())
        .args(["-v2c", "-c", COMMUNITY, "-On", &format!("127.0.0.1:{PORT}")])
        .arg(format!(".1.3.6.1.2.1.31.1.1.1.18.{}", switch.index(PORT_A)))
        .args(["s", alias]);
    let set = tool::run(command, None, AGENT_TIMEOUT).unwrap();
    assert!(set.status.success(), "snmpset ifAlias: {}", set.text());

    let theirs = peers::require("fence_ifmib", "fence-agents");
    for input in [v2c as fn(&str, &str) -> String, v3] {
        let out = switch.run(&ours(&installed), &input("list", ""));
        assert!(out.status.success(), "{}", out.text());
        let lines: Vec<_> = out.stdout.lines().collect();
        assert!(
            lines.contains(&format!("{PORT_A},{alias}").as_str()),
            "{lines:?}"
        );
        for dev in ["lo", PORT_B, "fkpeer-b", NAMED_ONE] {
            assert!(
                lines.contains(&format!("{dev},").as_str()),
                "{dev} in {lines:?}"
            );
        }
        if let Some(theirs) = &theirs {
            let with_theirs = switch.run(theirs, &input("list", ""));
            assert!(with_theirs.status.success(), "{}", with_theirs.text());
            assert_eq!(out.stdout, with_theirs.stdout, "list: ours vs fence_ifmib");
        }
    }
}

#[test]
fn an_ambiguous_or_unknown_plug_is_refused_and_no_port_changes() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    switch.all_up();
    let before = switch.ports();
    for input in [v2c as fn(&str, &str) -> String, v3] {
        // `1` is loopback's ifIndex and the other interface's name.
        let out = switch.run(&ours(&installed), &input("off", NAMED_ONE));
        assert_eq!(out.status.code(), FAILED, "{}", out.text());
        assert!(out.text().contains("ambiguous"), "{}", out.text());
        assert_eq!(switch.ports(), before, "an ambiguous plug switched a port");

        let out = switch.run(&ours(&installed), &input("off", "fkport-nonesuch"));
        assert_eq!(out.status.code(), FAILED, "{}", out.text());
        assert!(out.text().contains("unknown plug"), "{}", out.text());
        assert!(
            out.text().contains(PORT_A),
            "names the interfaces: {}",
            out.text()
        );
        assert_eq!(switch.ports(), before, "an unknown plug switched a port");
    }
}

#[test]
fn a_wrong_community_or_pass_phrase_fails_clearly_by_the_timeout_and_switches_nothing() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    switch.all_up();
    let before = switch.ports();
    // snmpd drops a request with a community it does not know: no answer at all.
    let started = Instant::now();
    let out = switch.run(
        &ours(&installed),
        &format!(
            "{}timeout=6\n",
            v2c("off", PORT_A).replace(COMMUNITY, "fk-wrong-community")
        ),
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), FAILED, "{}", out.text());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: {}",
        out.text()
    );
    assert!(out.text().contains("no answer"), "{}", out.text());
    assert!(!out.text().contains("fk-wrong-community"), "{}", out.text());
    assert_eq!(switch.ports(), before);

    // A wrong pass phrase is told once the agent has reported it on two tries
    // (usmStatsWrongDigests), well before the deadline.
    let started = Instant::now();
    let out = switch.run(
        &ours(&installed),
        &format!(
            "{}timeout=6\n",
            v3("off", PORT_A).replace(V3_AUTH, "fk-wrong-phrase")
        ),
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), FAILED, "{}", out.text());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: {}",
        out.text()
    );
    assert!(
        out.text().contains("authentication"),
        "not told as an authentication failure: {}",
        out.text()
    );
    assert!(!out.text().contains("fk-wrong-phrase"), "{}", out.text());
    assert_eq!(switch.ports(), before);

    // A wrong privacy pass phrase: snmpd cannot decrypt the request and drops it
    // without a Report; the error names the privacy parameters among the causes.
    let started = Instant::now();
    let out = switch.run(
        &ours(&installed),
        &format!(
            "{}timeout=4\n",
            v3("off", PORT_A).replace(V3_PRIV, "fk-wrong-privacy")
        ),
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), FAILED, "{}", out.text());
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}: {}",
        out.text()
    );
    assert!(out.text().contains("snmp_priv_passwd"), "{}", out.text());
    assert!(!out.text().contains("fk-wrong-privacy"), "{}", out.text());
    assert_eq!(switch.ports(), before);
}

/// One stdin sequence through one agent: exit codes and the kernel's port states
/// after each step.
fn drive(
    switch: &Switch,
    agent: &Path,
    input: fn(&str, &str) -> String,
) -> Vec<(String, Option<i32>, bool, bool)> {
    switch.all_up();
    let index_a = switch.index(PORT_A);
    let steps = [
        ("status", PORT_A.to_string()),
        ("off", PORT_A.to_string()),
        ("status", PORT_A.to_string()),
        ("status", index_a.clone()),
        ("off", index_a.clone()),
        ("on", index_a.clone()),
        ("status", PORT_A.to_string()),
        ("off", PORT_B.to_string()),
        ("list", String::new()),
        ("on", PORT_B.to_string()),
        ("status", PORT_B.to_string()),
        // Fabric fencing: no reboot (it would let the node back at once), off by
        // default, and fence-agents' enable and disable for on and off.
        ("reboot", PORT_A.to_string()),
        ("", PORT_A.to_string()),
        ("status", PORT_A.to_string()),
        ("enable", PORT_A.to_string()),
        ("disable", PORT_B.to_string()),
        ("enable", PORT_B.to_string()),
    ];
    steps
        .iter()
        .map(|(action, plug)| {
            let out = switch.run(agent, &input(action, plug));
            assert!(
                out.status.code().is_some(),
                "{} {action} {plug} died: {}",
                agent.display(),
                out.text()
            );
            (
                format!("{action} {plug}"),
                out.status.code(),
                switch.is_up(PORT_A),
                switch.is_up(PORT_B),
            )
        })
        .collect()
}

#[test]
fn the_same_stdin_gives_fence_ifmib_and_ours_the_same_exit_codes_and_port_states() {
    let Some(theirs) = peers::require("fence_ifmib", "fence-agents") else {
        return;
    };
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    for (version, input) in [
        ("v2c", v2c as fn(&str, &str) -> String),
        ("v3 authPriv SHA+AES", v3),
    ] {
        let with_theirs = drive(&switch, &theirs, input);
        let with_ours = drive(&switch, &ours(&installed), input);
        assert_eq!(with_theirs, with_ours, "{version}: fence_ifmib vs ours");
        // Agreement alone would also hold if both failed alike: what both did.
        let codes: Vec<_> = with_ours.iter().map(|(_, code, _, _)| *code).collect();
        let expected = [
            ON, ON, OFF, OFF, ON, ON, ON, ON, ON, ON, ON, FAILED, ON, OFF, ON, ON, ON,
        ];
        assert_eq!(codes, expected, "{version}: {with_ours:?}");
        let ports: Vec<_> = with_ours.iter().map(|(_, _, a, b)| (*a, *b)).collect();
        let (up, a_down, b_down) = ((true, true), (false, true), (true, false));
        let expected = [
            up, a_down, a_down, a_down, a_down, up, up, b_down, b_down, up, up, up, a_down, a_down,
            up, b_down, up,
        ];
        assert_eq!(ports, expected, "{version}: {with_ours:?}");
    }
}

#[test]
fn v3_pass_phrases_stay_out_of_trace_output_the_debug_file_and_snmpds_argv_and_environment() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    switch.all_up();
    let out = switch.run(
        &ours(&installed),
        &format!("{}verbose=1\nverbose_level=3\n", v3("off", PORT_A)),
    );
    assert_eq!(out.status.code(), ON, "{}", out.text());
    assert!(!switch.is_up(PORT_A));
    assert!(
        out.stderr.contains("ifAdminStatus"),
        "no trace output to look at: {}",
        out.text()
    );
    // fence-agents' debug file, at trace level, holds none either.
    let dir = tempfile::tempdir().unwrap();
    let debug_file = dir.path().join("debug.log");
    let out_on = switch.run(
        &ours(&installed),
        &format!(
            "{}verbose_level=3\ndebug_file={}\n",
            v3("on", PORT_A),
            debug_file.display()
        ),
    );
    assert_eq!(out_on.status.code(), ON, "{}", out_on.text());
    assert!(switch.is_up(PORT_A));
    let debug = std::fs::read_to_string(&debug_file).unwrap();
    assert!(debug.contains("ifAdminStatus"), "no debug output: {debug}");
    let snmpd = switch.fabric.snmpd().unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", snmpd.pid())).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", snmpd.pid())).unwrap();
    for secret in [V3_AUTH, V3_PRIV, COMMUNITY] {
        for (what, text) in [
            ("the agent's output", out.text()),
            ("the agent's output", out_on.text()),
            ("the debug file", debug.clone()),
        ] {
            assert!(!text.contains(secret), "{secret} in {what}");
        }
        for (what, bytes) in [("environment", &environ), ("argv", &cmdline)] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(secret),
                "{secret} in snmpd's {what}"
            );
        }
    }
}

#[test]
fn the_metadata_offers_fence_ifmibs_actions_and_validates_against_fence_agents_schema() {
    let Some(found) = peers::require_all(&[
        ("fence_ifmib", "fence-agents"),
        ("xmllint", "libxml2-utils"),
    ]) else {
        return;
    };
    let Some(schema) =
        peers::require_file("/usr/share/cluster/relaxng/metadata.rng", "fence-agents")
    else {
        return;
    };
    let installed = Installed::new().unwrap();
    let run = |agent: &Path| {
        let mut command = std::process::Command::new(agent);
        command.args(["-o", "metadata"]);
        let out = tool::run(command, None, AGENT_TIMEOUT).unwrap();
        assert!(out.status.success(), "{}", out.text());
        out.stdout
    };
    let theirs = run(&found[0]);
    let ours_xml = run(&ours(&installed));
    // The action lines, fabric fencing's: no reboot, `on` automatic (unfencing).
    let actions = |xml: &str| -> Vec<String> {
        xml.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("<action "))
            .map(|l| l.replace(" />", "/>"))
            .filter(|l| !l.contains("\"manpage\""))
            .collect()
    };
    assert_eq!(actions(&ours_xml), actions(&theirs), "{ours_xml}");
    assert!(
        ours_xml.contains("<action name=\"on\" automatic=\"1\"/>"),
        "{ours_xml}"
    );
    assert!(!ours_xml.contains("\"reboot\""), "{ours_xml}");
    // The default action is off, as fence_ifmib's.
    let default_action = |xml: &str| {
        xml.split("<parameter name=\"action\"")
            .nth(1)
            .and_then(|rest| rest.split("default=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string)
    };
    assert_eq!(default_action(&ours_xml).as_deref(), Some("off"));
    assert_eq!(default_action(&ours_xml), default_action(&theirs));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metadata.xml");
    std::fs::write(&file, &ours_xml).unwrap();
    let mut command = std::process::Command::new(&found[1]);
    command
        .arg("--noout")
        .arg("--relaxng")
        .arg(&schema)
        .arg(&file);
    let check = tool::run(command, None, AGENT_TIMEOUT).unwrap();
    assert!(check.status.success(), "{}\n{ours_xml}", check.text());
}

#[test]
fn the_fence_command_cuts_a_nodes_port_and_power_together_and_never_reboots_through_the_port() {
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    switch.all_up();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("pdu-state");
    fencekit_tests::bridge::write_sim_states(&state, &[true, true]).unwrap();
    let config = dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        format!(
            "[fence]\npower_timeout = 10\ntimeout = 30\n\n\
             [devices.switch]\nplugin = \"ifmib\"\nip = \"127.0.0.1\"\ncommunity = \"{COMMUNITY}\"\n\n\
             [devices.pdu]\nplugin = \"sim\"\nplugs = 2\nstate_file = \"{}\"\n\n\
             [nodes.node1]\nplugs = [{{ device = \"pdu\", plug = \"1\" }}, {{ device = \"switch\", plug = \"{PORT_A}\" }}]\n",
            state.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let fence = |action: &str| {
        let mut command = switch.fabric.command(&installed.binary());
        command
            .args(["fence", "--config"])
            .arg(&config)
            .args(["--node", "node1", "--action", action]);
        tool::run(command, None, AGENT_TIMEOUT).unwrap()
    };
    let power = || fencekit_tests::bridge::sim_states(&state).unwrap()[&1];

    let out = fence("reboot");
    assert!(
        !out.status.success(),
        "reboot through a port: {}",
        out.text()
    );
    assert!(out.text().contains("fabric"), "{}", out.text());
    assert!(
        switch.is_up(PORT_A) && power(),
        "a refused reboot switched something"
    );

    let out = fence("off");
    assert!(out.status.success(), "{}", out.text());
    assert!(!switch.is_up(PORT_A) && !power(), "{}", out.text());
    assert!(switch.is_up(PORT_B));

    let out = fence("on");
    assert!(out.status.success(), "{}", out.text());
    assert!(switch.is_up(PORT_A) && power(), "{}", out.text());
}

#[test]
fn cluster_glue_stonith_cuts_the_hosts_port_and_refuses_a_reset() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    let Some(switch) = Switch::start() else {
        return;
    };
    let installed = Installed::new().unwrap();
    let _link = fencekit_tests::system::SystemLink::external_plugin(&installed, "ifmib").unwrap();
    switch.all_up();
    let glue = |op: &str, host: &str| {
        let mut command = switch.fabric.command(&stonith);
        command
            .args(["-t", "external/fencekit-ifmib", "-E", "-T", op, host])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("ip", "127.0.0.1")
            .env("community", COMMUNITY)
            .env("hostmap", format!("node1:{PORT_A};node2:{PORT_B}"));
        tool::run(command, None, AGENT_TIMEOUT).unwrap()
    };
    let out = glue("reset", "node1");
    assert!(
        !out.status.success(),
        "reset through a port: {}",
        out.text()
    );
    assert!(out.text().contains("fabric"), "{}", out.text());
    assert!(switch.is_up(PORT_A), "a refused reset switched the port");

    let out = glue("off", "node1");
    assert!(out.status.success(), "{}", out.text());
    assert!(!switch.is_up(PORT_A), "{}", out.text());
    assert!(switch.is_up(PORT_B));

    let out = glue("on", "node1");
    assert!(out.status.success(), "{}", out.text());
    assert!(switch.is_up(PORT_A), "{}", out.text());
}
