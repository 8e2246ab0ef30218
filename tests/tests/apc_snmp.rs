//! The APC plugin through the fence-agent front end, against the real net-snmp
//! `snmpd` with fencekit's emulated PDU behind it as a pass_persist program, side by
//! side with fence-agents' own `fence_apc_snmp`: the same stdin lines must leave the
//! emulated outlets in the same states.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fencekit_tests::bridge::{self, Installed};
use fencekit_tests::fabric::{Fabric, FabricOptions};
use fencekit_tests::peers;
use fencekit_tests::snmpd::{
    AuthProtocol, Community, PassPersist, PrivProtocol, SnmpUser, Snmpd, SnmpdOptions,
};

/// sysObjectID of an rPDU (AP78xx/79xx), PowerNet-MIB.
const RPDU: &str = ".1.3.6.1.4.1.318.1.3.4.5";
/// sysObjectID of a MasterSwitch Plus (masterSwitchMSP), PowerNet-MIB.
const MSP: &str = ".1.3.6.1.4.1.318.1.3.4.4";
/// masterSwitchrPDU2 (AP8xxx).
const RPDU2: &str = ".1.3.6.1.4.1.318.1.3.4.6";
const OUTLETS: u32 = 4;
const V3_USER: &str = "fenceuser";
const V3_AUTH: &str = "fk-auth-phrase-1";
const V3_PRIV: &str = "fk-priv-phrase-1";

struct Pdu {
    agent: Agent,
    state: PathBuf,
    /// The emulator's family and how many units of OUTLETS outlets are chained.
    family: &'static str,
    units: u32,
    _dir: tempfile::TempDir,
}

/// snmpd with the emulator behind it: on a free port of 127.0.0.1, or on port 161
/// of a network namespace of the test's own (for clients that reach no other port).
enum Agent {
    Local(Snmpd),
    Netns(Fabric),
}

impl Pdu {
    fn start() -> Option<Pdu> {
        Pdu::start_as(RPDU, "rpdu", 1)
    }

    fn start_as(sys_object_id: &str, family: &'static str, units: u32) -> Option<Pdu> {
        Pdu::start_with(sys_object_id, family, units, false)
    }

    /// An rPDU whose agent answers on 127.0.0.1:161 inside a namespace of its own.
    fn start_in_netns() -> Option<Pdu> {
        Pdu::start_with(RPDU, "rpdu", 1, true)
    }

    fn start_with(
        sys_object_id: &str,
        family: &'static str,
        units: u32,
        in_netns: bool,
    ) -> Option<Pdu> {
        peers::require("snmpd", "snmpd")?;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pdu.state");
        let emulator = bridge::workspace_binary("fencekit-apc", "fencekit-apc-snmp-sim").unwrap();
        let wrapper =
            fencekit_tests::snmpd::emulator_program(dir.path(), &emulator, &state).unwrap();
        let options = SnmpdOptions {
            communities: vec![Community {
                name: "private".into(),
                write: true,
            }],
            users: vec![SnmpUser {
                name: V3_USER.into(),
                auth: AuthProtocol::Sha,
                auth_pass: V3_AUTH.into(),
                privacy: Some((PrivProtocol::Aes, V3_PRIV.into())),
                write: true,
            }],
            pass_persist: vec![PassPersist {
                oid: ".1.3.6.1.4.1.318".into(),
                program: wrapper,
            }],
            sys_object_id: Some(sys_object_id.into()),
            ..SnmpdOptions::default()
        };
        // The emulator reads its state file as snmpd starts it: written first.
        write_all_on(&state, family, units);
        let agent = if in_netns {
            Agent::Netns(
                Fabric::start(FabricOptions {
                    pairs: Vec::new(),
                    snmpd: options,
                })
                .unwrap(),
            )
        } else {
            Agent::Local(Snmpd::start(options).unwrap())
        };
        let pdu = Pdu {
            agent,
            state,
            family,
            units,
            _dir: dir,
        };
        Some(pdu)
    }

    /// Every outlet on, obeying.
    fn reset(&self) {
        write_all_on(&self.state, self.family, self.units);
    }

    /// The agent's UDP port, as a client of it reaches it.
    fn port(&self) -> u16 {
        match &self.agent {
            Agent::Local(snmpd) => snmpd.port(),
            Agent::Netns(_) => 161,
        }
    }

    /// A command running `program` where [`Pdu::port`] of 127.0.0.1 is the agent.
    fn command(&self, program: &Path) -> Command {
        match &self.agent {
            Agent::Local(_) => Command::new(program),
            Agent::Netns(fabric) => fabric.command(program),
        }
    }

    /// Outlet states, in outlet order.
    fn states(&self) -> Vec<bool> {
        let text = std::fs::read_to_string(&self.state).unwrap();
        text.lines()
            .filter(|l| l.starts_with("outlet "))
            .map(|l| l.split_whitespace().nth(3) == Some("on"))
            .collect()
    }

    fn v1(&self, action: &str, plug: &str) -> String {
        format!(
            "action={action}\nip=127.0.0.1\nipport={}\ncommunity=private\nsnmp_version=1\nplug={plug}\n",
            self.port()
        )
    }

    fn v3(&self, action: &str, plug: &str) -> String {
        format!(
            "action={action}\nip=127.0.0.1\nipport={}\nsnmp_version=3\nusername={V3_USER}\n\
             password={V3_AUTH}\nsnmp_auth_prot=SHA\nsnmp_sec_level=authPriv\n\
             snmp_priv_prot=AES\nsnmp_priv_passwd={V3_PRIV}\nplug={plug}\n",
            self.port()
        )
    }
}

/// A state file of `units` units of OUTLETS outlets, every one on and obeying.
fn write_all_on(state: &Path, family: &str, units: u32) {
    let mut text = format!("family {family}\nreboot_ms 1000\n");
    for unit in 1..=units {
        for n in 1..=OUTLETS {
            let name = if units == 1 {
                format!("outlet-{n}")
            } else {
                format!("u{unit}-outlet-{n}")
            };
            text.push_str(&format!("outlet {unit} {n} on obey - {name}\n"));
        }
    }
    std::fs::write(state, text).unwrap();
}

/// Runs `stonith-bridge external apc OP HOST` as cluster-glue does, with the PDU's
/// address in apcmastersnmp's names and `extra` variables; gives success and output.
fn glue(
    pdu: &Pdu,
    installed: &Installed,
    op: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> (bool, String) {
    let mut command = Command::new(installed.binary());
    command
        .args(["external", "apc", op, host])
        .env_remove("RUST_LOG")
        .env("ipaddr", format!("127.0.0.1:{}", pdu.port()))
        .env("community", "private");
    for (k, v) in extra {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs an agent with options on stdin; gives its exit code and output.
fn run(agent: &Path, stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(agent)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The same sequence of stdin inputs through one agent: exit codes and the outlet
/// states after each step.
fn drive(
    pdu: &Pdu,
    agent: &Path,
    input: impl Fn(&Pdu, &str, &str) -> String,
) -> Vec<(Option<i32>, Vec<bool>)> {
    pdu.reset();
    let steps = [
        ("status", "1"),
        ("off", "2"),
        ("status", "2"),
        ("off", "3"),
        ("on", "2"),
        ("reboot", "4"),
        ("status", "4"),
    ];
    steps
        .iter()
        .map(|(action, plug)| {
            let (code, output) = run(agent, &input(pdu, action, plug));
            assert!(
                code.is_some(),
                "{} {action} {plug} died: {output}",
                agent.display()
            );
            (code, pdu.states())
        })
        .collect()
}

/// The same stdin through fence_apc_snmp and ours, over v1 and v3 authPriv: the same
/// exit codes and outlet states after each step (the emulator's own state), and the
/// sequence did what it says: status on (0), off, status off (2), ...
fn same_states_as_fence_apc_snmp(pdu: &Pdu, theirs: &Path) {
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    for (version, input) in [
        ("v1", Pdu::v1 as fn(&Pdu, &str, &str) -> String),
        ("v3 authPriv SHA+AES", Pdu::v3),
    ] {
        let with_theirs = drive(pdu, theirs, input);
        let with_ours = drive(pdu, &ours, input);
        assert_eq!(with_theirs, with_ours, "{version}: fence_apc_snmp vs ours");
        let codes: Vec<Option<i32>> = with_ours.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            codes,
            [
                Some(0),
                Some(0),
                Some(2),
                Some(0),
                Some(0),
                Some(0),
                Some(0)
            ],
            "{version}"
        );
        assert_eq!(with_ours.last().unwrap().1, vec![true, true, false, true]);
    }
}

#[test]
fn the_same_stdin_drives_fence_apc_snmp_and_ours_to_the_same_outlet_states() {
    let Some(theirs) = peers::require("fence_apc_snmp", "fence-agents") else {
        return;
    };
    let Some(pdu) = Pdu::start() else { return };
    same_states_as_fence_apc_snmp(&pdu, &theirs);
}

/// An AP8xxx (masterSwitchrPDU2): ours drives its rPDU2 tables, fence_apc_snmp the
/// older tables the same firmware answers for the same outlets (its `ApcMS6`:
/// sPDUOutletControl read, rPDUOutletControl written). The same stdin ends in the same
/// outlet states and exit codes, read from the emulator's own state.
#[test]
fn an_rpdu2_strip_is_switched_as_fence_apc_snmp_switches_it_through_its_older_tables() {
    let Some(theirs) = peers::require("fence_apc_snmp", "fence-agents") else {
        return;
    };
    let Some(pdu) = Pdu::start_as(RPDU2, "rpdu2", 1) else {
        return;
    };
    same_states_as_fence_apc_snmp(&pdu, &theirs);
    // Ours wrote only the rPDU2 control table; fence_apc_snmp only rPDUOutletControl.
    let sets = std::fs::read_to_string(format!("{}.sets", pdu.state.display())).unwrap_or_default();
    assert!(
        sets.lines()
            .any(|l| l.starts_with(".1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.")),
        "sets: {sets}"
    );
    assert!(
        sets.lines()
            .any(|l| l.starts_with(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.")),
        "sets: {sets}"
    );
}

/// A MasterSwitch Plus chain of two units: `unit:outlet` and outlet names (on any
/// unit) reach the same outlet through fence_apc_snmp and ours, the objects at
/// `.unit.1.outlet` (the emulator answers no other shape). fence_apc_snmp has no
/// `switch` parameter (it ignores `switch=2` and switches unit 1): ours refuses it
/// over SNMP rather than switch either machine.
#[test]
fn a_masterswitch_plus_chain_is_switched_like_fence_apc_snmp_does_it() {
    let Some(theirs) = peers::require("fence_apc_snmp", "fence-agents") else {
        return;
    };
    let Some(pdu) = Pdu::start_as(MSP, "masterswitchplus", 2) else {
        return;
    };
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let steps = [
        ("status", "2:1", ""),
        ("off", "2:3", ""),
        ("status", "2:3", ""),
        ("off", "1:2", ""),
        ("off", "1", ""),
        ("on", "2:3", ""),
        ("status", "u2-outlet-4", ""),
        ("off", "u2-outlet-4", ""),
    ];
    let drive = |agent: &Path| {
        pdu.reset();
        steps
            .iter()
            .map(|(action, plug, extra)| {
                let stdin = format!("{}{extra}", pdu.v1(action, plug));
                let (code, output) = run(agent, &stdin);
                assert!(
                    code.is_some(),
                    "{} {action} {plug} died: {output}",
                    agent.display()
                );
                (code, pdu.states())
            })
            .collect::<Vec<_>>()
    };
    let with_theirs = drive(&theirs);
    let with_ours = drive(&ours);
    assert_eq!(with_theirs, with_ours, "fence_apc_snmp vs ours");
    let codes: Vec<Option<i32>> = with_ours.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            Some(0),
            Some(0),
            Some(2),
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(0)
        ]
    );
    // Unit 1: outlets 1 and 2 off; unit 2: outlet 4 off, 3 back on.
    assert_eq!(
        with_ours.last().unwrap().1,
        vec![false, false, true, true, true, true, true, false]
    );
    // `switch=2` is fence_apc's (the console's): fence_apc_snmp ignores it and
    // switches unit 1, so over SNMP it is refused, nothing switched.
    let before = pdu.states();
    let (code, output) = run(&ours, &format!("{}switch=2\n", pdu.v1("off", "2")));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("plug=2:OUTLET"), "{output}");
    assert_eq!(pdu.states(), before);
    // And the listing names every outlet unit:outlet, as fence_apc_snmp's does.
    let (code, listed) = run(&ours, &pdu.v1("list", "1"));
    assert_eq!(code, Some(0), "{listed}");
    for unit in 1..=2 {
        for n in 1..=OUTLETS {
            assert!(
                listed.contains(&format!("{unit}:{n},u{unit}-outlet-{n}")),
                "{listed}"
            );
        }
    }
}

#[test]
fn two_plugs_of_one_node_are_both_switched_and_confirmed() {
    // fence_apc_snmp caches one outlet index for all plugs of a call; ours reads and
    // switches each.
    let Some(pdu) = Pdu::start() else { return };
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let (code, output) = run(&ours, &pdu.v1("off", "1,3"));
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(pdu.states(), vec![false, true, false, true]);
    let (code, output) = run(&ours, &pdu.v1("status", "1,3"));
    assert_eq!(code, Some(2), "{output}");
}

#[test]
fn list_status_reports_every_outlet_with_its_real_state() {
    let Some(pdu) = Pdu::start() else { return };
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    run(&ours, &pdu.v1("off", "2"));
    let (code, output) = run(&ours, &pdu.v1("list-status", ""));
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("1,outlet-1,ON"), "{output}");
    assert!(output.contains("2,outlet-2,OFF"), "{output}");
}

#[test]
fn a_lying_outlet_fails_the_fence_naming_outlet_and_pdu() {
    let Some(pdu) = Pdu::start() else { return };
    // Outlet 2 accepts every command and stays as it is.
    let text = std::fs::read_to_string(&pdu.state)
        .unwrap()
        .replace("outlet 1 2 on obey", "outlet 1 2 on lie");
    std::fs::write(&pdu.state, text).unwrap();
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let (code, output) = run(&ours, &format!("{}power_timeout=2\n", pdu.v1("off", "2")));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("plug 2 on 127.0.0.1 still on 2.0 s after off was accepted"),
        "{output}"
    );
    assert!(pdu.states()[1], "outlet 2 is still on");
}

/// A number another outlet is named after is ambiguous (outlet 4 named `2`, as a
/// site that names outlets after its nodes might): refused with nothing switched,
/// as on every other device; fence_apc_snmp would switch outlet 2.
#[test]
fn a_number_another_outlet_is_named_after_is_refused() {
    let Some(pdu) = Pdu::start() else { return };
    let text = std::fs::read_to_string(&pdu.state)
        .unwrap()
        .replace("outlet 1 4 on obey - outlet-4", "outlet 1 4 on obey - 2");
    std::fs::write(&pdu.state, text).unwrap();
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    for action in ["off", "status"] {
        let (code, output) = run(&ours, &pdu.v1(action, "2"));
        assert_eq!(code, Some(1), "{action}: {output}");
        assert!(output.contains("2, 4"), "{action}: {output}");
    }
    assert_eq!(pdu.states(), vec![true; 4], "something was switched");
    // The error says how to name the number alone: 1:2 (unit 1, fence_apc_snmp's
    // switch:plug), which switches outlet 2 and nothing else.
    let (_, output) = run(&ours, &pdu.v1("off", "2"));
    assert!(output.contains("1:N"), "{output}");
    let (code, output) = run(&ours, &pdu.v1("off", "1:2"));
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(pdu.states(), vec![true, false, true, true]);
    // A unit this PDU does not have is refused, saying so.
    let (code, output) = run(&ours, &pdu.v1("off", "2:3"));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("unit 2 does not exist"), "{output}");
    // Outlet 1, named by nobody else, is switched as before.
    let (code, output) = run(&ours, &pdu.v1("off", "1"));
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(pdu.states(), vec![false, false, true, true]);
}

/// cluster-glue finds a host's outlets by name: node2 on outlet 2 is fenced even
/// though another outlet is named "2" (its number is handed to the PDU as the
/// address 1:2, never read again as a name).
#[test]
fn a_hosts_outlet_whose_number_another_outlet_is_named_after_is_fenced_through_cluster_glue() {
    let Some(pdu) = Pdu::start() else { return };
    let text = std::fs::read_to_string(&pdu.state)
        .unwrap()
        .replace(
            "outlet 1 2 on obey - outlet-2",
            "outlet 1 2 on obey - node2",
        )
        .replace("outlet 1 4 on obey - outlet-4", "outlet 1 4 on obey - 2");
    std::fs::write(&pdu.state, text).unwrap();
    let installed = Installed::new().unwrap();
    let (ok, text) = glue(&pdu, &installed, "off", "node2", &[]);
    assert!(ok, "{text}");
    assert_eq!(pdu.states(), vec![true, false, true, true]);
}

/// An outlet whose name holds a blank is no host cluster-glue can name (it reads
/// what `gethosts` prints as words): it is left out of the host list, with a
/// warning, rather than listed as two hosts; so are two outlets named alike but
/// not the same (`outlet-2` and one with a zero-width space in it), whose host a
/// fence by name refuses.
#[test]
fn cluster_glue_lists_no_host_for_an_outlet_name_with_a_blank() {
    let Some(pdu) = Pdu::start() else { return };
    let text = std::fs::read_to_string(&pdu.state)
        .unwrap()
        .replace(
            "outlet 1 3 on obey - outlet-3",
            "outlet 1 3 on obey - db one",
        )
        .replace(
            "outlet 1 4 on obey - outlet-4",
            "outlet 1 4 on obey - outlet-\u{200b}2",
        );
    std::fs::write(&pdu.state, text).unwrap();
    let installed = Installed::new().unwrap();
    let (ok, text) = glue(&pdu, &installed, "gethosts", "", &[]);
    assert!(ok, "{text}");
    assert!(text.contains("holds a blank"), "{text}");
    assert!(text.contains("alike"), "{text}");
    let hosts: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("is not listed as a host"))
        .collect();
    assert_eq!(hosts, ["outlet-1"], "{text}");
    let (ok, text) = glue(&pdu, &installed, "off", "outlet-2", &[]);
    assert!(!ok, "{text}");
    assert_eq!(pdu.states(), vec![true, true, true, true]);
}

/// A PDU that does not tell its outlet count could leave a row out of its table
/// unseen: cluster-glue's lookup of a host's outlets by name refuses there, and no
/// outlet moves; so do the monitor (`status`) and the host list (`gethosts`, which
/// Pacemaker's dynamic list reads), so that the device fails where it is watched
/// rather than only when a node needs fencing. `hostmap` with the numbers works.
#[test]
fn cluster_glue_finds_no_host_by_name_on_a_pdu_that_does_not_count_its_outlets() {
    let Some(pdu) = Pdu::start() else { return };
    let text = std::fs::read_to_string(&pdu.state)
        .unwrap()
        .replace("outlet 1 2 on obey - outlet-2", "outlet 1 2 on obey - db");
    std::fs::write(&pdu.state, format!("counts no\n{text}")).unwrap();
    let installed = Installed::new().unwrap();
    for op in ["status", "gethosts"] {
        let (ok, text) = glue(&pdu, &installed, op, "", &[]);
        assert!(!ok, "{op}: {text}");
        assert!(text.contains("hostmap"), "{op}: {text}");
        let (ok, text) = glue(&pdu, &installed, op, "", &[("hostmap", "db:2")]);
        assert!(ok, "{op} with hostmap: {text}");
    }
    let (ok, text) = glue(&pdu, &installed, "off", "db", &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("hostmap"), "{text}");
    assert_eq!(pdu.states(), vec![true, true, true, true]);
    let (ok, text) = glue(&pdu, &installed, "off", "db", &[("hostmap", "db:2")]);
    assert!(ok, "{text}");
    assert_eq!(pdu.states(), vec![true, false, true, true]);
}

/// A monitor, a status and a list read only: Pacemaker runs the monitor every few
/// seconds, and every write is a configuration change the card logs. The emulator
/// records each set that reaches it; an off (the control) records its one set.
#[test]
fn monitor_status_and_list_write_nothing_to_the_pdu() {
    let Some(pdu) = Pdu::start() else { return };
    let installed = Installed::new().unwrap();
    let ours = installed.agent("apc");
    let sets = {
        let mut name = pdu.state.as_os_str().to_owned();
        name.push(".sets");
        PathBuf::from(name)
    };
    let recorded = || std::fs::read_to_string(&sets).unwrap_or_default();
    for input in [
        pdu.v1("monitor", ""),
        pdu.v1("status", "1"),
        pdu.v1("list", ""),
        pdu.v1("list-status", ""),
        pdu.v3("monitor", ""),
        pdu.v3("status", "2"),
    ] {
        let (code, output) = run(&ours, &input);
        assert!(matches!(code, Some(0) | Some(2)), "{input}: {output}");
        assert_eq!(recorded(), "", "{input} wrote to the PDU");
    }
    let (code, output) = run(&ours, &pdu.v1("off", "3"));
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(recorded().lines().count(), 1, "{}", recorded());
}

/// cluster-glue `apcmastersnmp`'s own names (`ipaddr port community`) on `stonith`'s
/// command line reach `external/fencekit-apc`, with their meanings there: the agent
/// is on UDP port 161 of `ipaddr` (apcmastersnmp ignores `port`), a host is every
/// outlet carrying its name. The installed `apcmastersnmp` runs first with the very
/// same words against the same emulator (snmpd on port 161 of a namespace of the
/// test's own, the only port it reaches), so the configuration is one that works
/// with it; then ours: gethosts lists the outlet names, an off is confirmed (the
/// emulator's state file shows it) and no other outlet moves.
#[test]
fn apcmastersnmps_own_parameter_names_work_unchanged_through_stonith() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root(
        "a network namespace, and linking a plugin into cluster-glue's plugin directory",
    ) {
        return;
    }
    let Some(pdu) = Pdu::start_in_netns() else {
        return;
    };
    let installed = Installed::new().unwrap();
    let _link = fencekit_tests::system::SystemLink::external_plugin(&installed, "apc").unwrap();
    let with = |plugin: &str, words: &[&str], args: &[&str]| {
        let mut command = pdu.command(&stonith);
        command
            .args(["-t", plugin])
            .args(words)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        fencekit_tests::tool::run(command, None, std::time::Duration::from_secs(90)).unwrap()
    };
    let words = ["ipaddr=127.0.0.1", "port=161", "community=private"];
    for plugin in ["apcmastersnmp", "external/fencekit-apc"] {
        pdu.reset();
        let out = with(plugin, &words, &["-S"]);
        assert!(out.status.success(), "{plugin} status: {}", out.text());
        let out = with(plugin, &words, &["-l"]);
        assert!(out.status.success(), "{plugin} list: {}", out.text());
        assert!(
            out.stdout.lines().any(|l| l.trim() == "outlet-2"),
            "{plugin}: {}",
            out.text()
        );
        let out = with(plugin, &words, &["-T", "off", "outlet-2"]);
        assert!(out.status.success(), "{plugin} off: {}", out.text());
        assert_eq!(pdu.states(), vec![true, false, true, true], "{plugin}");
        let out = with(plugin, &words, &["-T", "on", "outlet-2"]);
        assert!(out.status.success(), "{plugin} on: {}", out.text());
        assert_eq!(pdu.states(), vec![true, true, true, true], "{plugin}");

        // apcmastersnmp's positional configuration (`stonith -p`, `-F`, Heartbeat's
        // `stonith_host`): one word for each of `ipaddr port community`, in order.
        let out = with(
            plugin,
            &["-p", "127.0.0.1 161 private"],
            &["-T", "off", "outlet-3"],
        );
        assert!(out.status.success(), "{plugin} -p off: {}", out.text());
        assert_eq!(pdu.states(), vec![true, true, false, true], "{plugin}");
    }

    // Pacemaker 2.1 through fence_legacy: the device's attributes and `nodename` on
    // stdin (no plug). Both fence the host by its outlet's name; the others stay on.
    let Some(legacy) = peers::require("fence_legacy", "pacemaker") else {
        return;
    };
    for plugin in ["apcmastersnmp", "external/fencekit-apc"] {
        pdu.reset();
        let mut command = pdu.command(&legacy);
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        let stdin = format!(
            "plugin={plugin}\nipaddr=127.0.0.1\nport=161\ncommunity=private\n\
             action=off\nnodename=outlet-2\n"
        );
        let out = fencekit_tests::tool::run(
            command,
            Some(stdin.as_bytes()),
            std::time::Duration::from_secs(90),
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{plugin} fence_legacy: {}",
            out.text()
        );
        assert_eq!(pdu.states(), vec![true, false, true, true], "{plugin}");
    }

    // A `port` apcmastersnmp never used is refused by ours, not sent elsewhere.
    pdu.reset();
    let out = with(
        "external/fencekit-apc",
        &["ipaddr=127.0.0.1", "port=1161", "community=private"],
        &["-T", "off", "outlet-2"],
    );
    assert!(!out.status.success(), "{}", out.text());
    assert!(out.text().contains("port"), "{}", out.text());
    assert_eq!(pdu.states(), vec![true, true, true, true]);
}
