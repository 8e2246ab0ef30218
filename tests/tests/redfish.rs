//! The `redfish` plugin against Redfish services on loopback over HTTPS: DMTF's
//! `sushy-emulator` (fake driver, htpasswd) for the real protocol, with the
//! certificate verified against the test's CA; fence-agents' own `fence_redfish`
//! fed the same stdin against the same service; cluster-glue's `stonith` and the
//! `fence` command; and our responder for the faults sushy cannot show (a service
//! that accepts ForceOff and stays On, error statuses, garbage, silence). Every
//! state is judged from the service's side: sushy's REST API read with curl, the
//! responder's state file and request log.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fencekit_tests::bridge::Installed;
use fencekit_tests::peers;
use fencekit_tests::redfish::{
    FakeSystem, Mode, Responder, ResponderOptions, Sushy, SushyOptions, USER,
};
use fencekit_tests::system::SystemLink;
use fencekit_tests::tool::{self, ToolOutput};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const NODE1: &str = "7a4a8a3c-0e4f-4d0a-9d4e-5f5d0a6c1e01";
const NODE2: &str = "0c7d1f7e-56c3-4b8e-a1a9-2f6a3c9d8e02";

/// sushy's fake driver applies a power change 1 to 11 s after it was asked.
const SUSHY_FENCE: &str = "power_timeout=20\ntimeout=60\n";

fn run_agent(agent: &PathBuf, stdin: &str) -> ToolOutput {
    tool::run(Command::new(agent), Some(stdin.as_bytes()), RUN_TIMEOUT).unwrap()
}

fn sushy_lines(sushy: &Sushy) -> String {
    format!(
        "ip=127.0.0.1\nipport={}\nusername={USER}\npassword={}\nssl_ca_file={}\n",
        sushy.port(),
        sushy.password(),
        sushy.tls().ca.display()
    )
}

fn responder_lines(responder: &Responder) -> String {
    format!(
        "ip=127.0.0.1\nipport={}\nusername={USER}\npassword={}\nssl_ca_file={}\n",
        responder.port(),
        responder.password(),
        responder.tls().ca.display()
    )
}

/// status, list, monitor, off, on and reboot through `fence_fencekit_redfish`
/// against sushy-emulator, each confirmed by sushy's own view of the system.
#[test]
fn the_fence_agent_confirms_off_on_and_reboot_against_sushy_over_verified_tls() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let sushy = Sushy::start(&python, &SushyOptions::default()).unwrap();
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let device = sushy_lines(&sushy);

    let out = run_agent(&agent, &format!("action=status\n{device}"));
    assert_eq!(out.status.code(), Some(0), "status: {}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());

    let out = run_agent(&agent, &format!("action=list\n{device}"));
    assert_eq!(out.status.code(), Some(0), "list: {}", out.text());
    assert_eq!(
        out.stdout.trim(),
        format!("{NODE1},node1"),
        "{}",
        out.text()
    );

    let out = run_agent(&agent, &format!("action=monitor\n{device}"));
    assert_eq!(out.status.code(), Some(0), "monitor: {}", out.text());
    assert!(sushy.resets().is_empty(), "{:?}", sushy.resets());

    // Pacemaker passes the node's name as the plug: the only system is meant.
    let out = run_agent(
        &agent,
        &format!("action=off\nport=node1\n{SUSHY_FENCE}{device}"),
    );
    assert_eq!(out.status.code(), Some(0), "off: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "Off");

    let out = run_agent(&agent, &format!("action=status\n{device}"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "status of an off node: {}",
        out.text()
    );

    let out = run_agent(&agent, &format!("action=on\n{SUSHY_FENCE}{device}"));
    assert_eq!(out.status.code(), Some(0), "on: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");

    let out = run_agent(&agent, &format!("action=reboot\n{SUSHY_FENCE}{device}"));
    assert_eq!(out.status.code(), Some(0), "reboot: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
    let resets = sushy.resets();
    assert_eq!(
        resets.len(),
        4,
        "off, on, and reboot as off then on: {resets:?}\n{}",
        sushy.daemon().log_tail(30)
    );
    assert!(!out.text().contains(sushy.password()), "{}", out.text());
}

/// A service that serves a certificate nobody vouches for is refused, naming the
/// certificate problem, before any credential is sent; `ssl_insecure` is the
/// explicit way past it, with a warning.
#[test]
fn a_self_signed_certificate_is_refused_unless_ssl_insecure_is_given() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let options = SushyOptions {
        self_signed: true,
        ..SushyOptions::default()
    };
    let sushy = Sushy::start(&python, &options).unwrap();
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let device = format!(
        "ip=127.0.0.1\nipport={}\nusername={USER}\npassword={}\n",
        sushy.port(),
        sushy.password()
    );
    let out = run_agent(&agent, &format!("action=off\n{device}"));
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(
        out.stderr.contains("certificate") && out.stderr.contains("ssl_ca_file"),
        "{}",
        out.text()
    );
    assert!(sushy.resets().is_empty());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");

    let out = run_agent(&agent, &format!("action=status\nssl_insecure=1\n{device}"));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.stderr.contains("not verified"), "{}", out.text());
}

/// Two systems behind one service (a blade chassis): with no plug, nothing is
/// guessed (fence_redfish takes the last member); the plug names one by Id, and only
/// that one is switched; `list` shows both.
#[test]
fn a_service_with_two_systems_switches_only_the_one_the_plug_names() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let mut options = SushyOptions::default();
    options.systems.push(FakeSystem {
        uuid: NODE2.into(),
        name: "node2".into(),
        on: true,
    });
    let sushy = Sushy::start(&python, &options).unwrap();
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let device = sushy_lines(&sushy);

    let out = run_agent(&agent, &format!("action=list\n{device}"));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(
        out.stdout.contains(&format!("{NODE1},node1")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{NODE2},node2")),
        "{}",
        out.stdout
    );

    for plug in ["", "port=node9\n"] {
        let out = run_agent(&agent, &format!("action=off\n{plug}{device}"));
        assert_eq!(out.status.code(), Some(1), "{plug}: {}", out.text());
        assert!(out.stderr.contains(NODE2), "{}", out.text());
    }
    assert!(sushy.resets().is_empty(), "{:?}", sushy.resets());

    // systems_uri pins a system; a plug that is another listed system's Name or
    // Id is refused rather than the pinned one switched (fence_redfish switches
    // the pinned one); a plug that names no system (the node's name) is fine.
    let pinned = format!("systems_uri=/redfish/v1/Systems/{NODE1}\n");
    for plug in ["node2", NODE2] {
        let out = run_agent(
            &agent,
            &format!("action=off\nport={plug}\n{pinned}{SUSHY_FENCE}{device}"),
        );
        assert_eq!(out.status.code(), Some(1), "{plug}: {}", out.text());
        assert!(out.stderr.contains("systems_uri"), "{}", out.text());
    }
    assert!(sushy.resets().is_empty(), "{:?}", sushy.resets());
    for plug in ["node1", "db-node-7"] {
        let out = run_agent(
            &agent,
            &format!("action=status\nport={plug}\n{pinned}{device}"),
        );
        assert_eq!(out.status.code(), Some(0), "{plug}: {}", out.text());
    }
    // ssl=0, as fence_redfish takes it: HTTPS all the same, verified, said.
    let out = run_agent(&agent, &format!("action=status\nssl=0\n{pinned}{device}"));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.stderr.contains("HTTPS all the same"), "{}", out.text());

    let out = run_agent(
        &agent,
        &format!("action=off\nport={NODE2}\n{SUSHY_FENCE}{device}"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(sushy.power_state(NODE2).unwrap(), "Off");
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
}

/// A plug that is one system's Name and, but for case, another's (`node1` and
/// `Node1`: likely one machine's two halves) is refused, nothing switched; an Id
/// that names one system only is taken.
#[test]
fn a_plug_that_two_systems_answer_to_is_refused() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let mut options = SushyOptions::default();
    options.systems.push(FakeSystem {
        uuid: NODE2.into(),
        name: "Node1".into(),
        on: true,
    });
    let sushy = Sushy::start(&python, &options).unwrap();
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let device = sushy_lines(&sushy);
    for plug in ["node1", "Node1"] {
        let out = run_agent(
            &agent,
            &format!(
                "action=off
port={plug}
{SUSHY_FENCE}{device}"
            ),
        );
        assert_eq!(out.status.code(), Some(1), "{plug}: {}", out.text());
        assert!(out.stderr.contains(NODE2), "{plug}: {}", out.text());
    }
    // ssl_secure beside ssl_insecure: contradictory, refused (fence_redfish
    // skips verification).
    let out = run_agent(
        &agent,
        &format!("action=off\nport={NODE2}\nssl_secure=1\nssl_insecure=1\n{SUSHY_FENCE}{device}"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.stderr.contains("ssl_secure"), "{}", out.text());
    assert!(sushy.resets().is_empty(), "{:?}", sushy.resets());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
    assert_eq!(sushy.power_state(NODE2).unwrap(), "On");
    let out = run_agent(
        &agent,
        &format!(
            "action=off
port={NODE2}
{SUSHY_FENCE}{device}"
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(sushy.power_state(NODE2).unwrap(), "Off");
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
}

/// fence-agents' `fence_redfish` and `fence_fencekit_redfish` take the same stdin
/// and take turns on one sushy system; each leaves the state the other reads.
#[test]
fn fence_redfish_and_fencekit_take_the_same_stdin_and_agree() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let Some(theirs) = peers::require("fence_redfish", "fence-agents") else {
        return;
    };
    let sushy = Sushy::start(&python, &SushyOptions::default()).unwrap();
    let installed = Installed::new().unwrap();
    let ours = installed.agent("redfish");
    // fence_redfish cannot be given a CA file; both skip verification alike.
    let device = format!(
        "ip=127.0.0.1:{}\nusername={USER}\npassword={}\nssl_insecure=1\n{SUSHY_FENCE}",
        sushy.port(),
        sushy.password()
    );
    let out = run_agent(&theirs, &format!("action=off\n{device}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "fence_redfish off: {}",
        out.text()
    );
    assert_eq!(sushy.power_state(NODE1).unwrap(), "Off");
    let out = run_agent(&ours, &format!("action=status\n{device}"));
    assert_eq!(out.status.code(), Some(2), "ours reads off: {}", out.text());

    let out = run_agent(&ours, &format!("action=on\n{device}"));
    assert_eq!(out.status.code(), Some(0), "ours on: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
    let out = run_agent(&theirs, &format!("action=status\n{device}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "fence_redfish reads on: {}",
        out.text()
    );

    let out = run_agent(&ours, &format!("action=off\n{device}"));
    assert_eq!(out.status.code(), Some(0), "ours off: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "Off");
    let out = run_agent(&theirs, &format!("action=status\n{device}"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "fence_redfish reads off: {}",
        out.text()
    );
}

/// cluster-glue's `stonith` drives `external/fencekit-redfish`, and the `fence`
/// command fences from a configuration file; both confirmed by sushy.
#[test]
fn stonith_and_the_fence_command_fence_through_sushy() {
    let Some(python) = Sushy::require() else {
        return;
    };
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
        return;
    }
    let sushy = Sushy::start(&python, &SushyOptions::default()).unwrap();
    let installed = Installed::new().unwrap();
    let _link = SystemLink::external_plugin(&installed, "redfish").unwrap();
    let mut command = Command::new(&stonith);
    command
        .args([
            "-t",
            "external/fencekit-redfish",
            "-E",
            "-T",
            "off",
            "node1",
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("hostlist", "node1")
        .env("ip", "127.0.0.1")
        .env("ipport", sushy.port().to_string())
        .env("username", USER)
        .env("password", sushy.password())
        .env("ssl_ca_file", &sushy.tls().ca)
        .env("power_timeout", "20")
        .env("timeout", "60");
    let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
    assert!(out.status.success(), "stonith off: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "Off");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        format!(
            "[fence]\npower_timeout = 20\ntimeout = 60\n\n[devices.bmc1]\nplugin = \"redfish\"\n\
             ip = \"127.0.0.1\"\nipport = {}\nusername = \"{USER}\"\npassword = \"{}\"\n\
             ssl_ca_file = \"{}\"\n\n[nodes.node1]\nplugs = [{{ device = \"bmc1\" }}]\n",
            sushy.port(),
            sushy.password(),
            sushy.tls().ca.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = Command::new(installed.binary());
    command
        .args(["fence", "--config"])
        .arg(&config)
        .args(["--node", "node1", "--action", "on"]);
    let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
    assert!(out.status.success(), "fence on: {}", out.text());
    assert_eq!(sushy.power_state(NODE1).unwrap(), "On");
}

/// One row of the fault table: a service's misbehaviour, the action, and what must
/// follow.
struct Fault {
    mode: Mode,
    action: &'static str,
    /// Extra stdin lines.
    extra: &'static str,
    /// Words the failure must name.
    says: &'static str,
    /// How many resets the service may have been sent.
    resets: usize,
}

/// Each misbehaving service makes the action fail by its deadline with exit 1 and
/// a message that says why; the system's true state is unchanged unless the fault
/// is the lie itself; a reset is sent at most once.
#[test]
fn a_misbehaving_service_fails_the_action_by_its_deadline_and_says_why() {
    if peers::require("python3", "python3").is_none() {
        return;
    }
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let rows = [
        Fault {
            mode: Mode::Liar,
            action: "off",
            extra: "power_timeout=2\ntimeout=4\n",
            says: "still on",
            resets: 1,
        },
        Fault {
            mode: Mode::Liar,
            action: "reboot",
            extra: "power_timeout=2\ntimeout=4\n",
            says: "still on",
            resets: 1,
        },
        Fault {
            mode: Mode::Liar,
            action: "reboot",
            extra: "method=cycle\npower_timeout=2\ntimeout=4\n",
            says: "off",
            resets: 1,
        },
        Fault {
            mode: Mode::PoweringOff,
            action: "off",
            extra: "power_timeout=2\ntimeout=4\n",
            says: "unknown",
            resets: 1,
        },
        Fault {
            mode: Mode::Status(403),
            action: "off",
            extra: "",
            says: "refused",
            resets: 0,
        },
        Fault {
            mode: Mode::Status(404),
            action: "off",
            extra: "",
            says: "HTTP 404",
            resets: 0,
        },
        Fault {
            mode: Mode::Status(500),
            action: "status",
            extra: "",
            says: "HTTP 500",
            resets: 0,
        },
        Fault {
            mode: Mode::Status(503),
            action: "off",
            extra: "",
            says: "busy",
            resets: 0,
        },
        Fault {
            mode: Mode::PostStatus(500),
            action: "off",
            extra: "",
            says: "HTTP 500",
            resets: 1,
        },
        Fault {
            mode: Mode::PostStatus(501),
            action: "diag",
            extra: "",
            says: "HTTP 501",
            resets: 1,
        },
        Fault {
            mode: Mode::Garbage,
            action: "off",
            extra: "",
            says: "not JSON",
            resets: 0,
        },
        Fault {
            mode: Mode::NoPowerState,
            action: "status",
            extra: "",
            says: "PowerState",
            resets: 0,
        },
        Fault {
            mode: Mode::Hang,
            action: "off",
            extra: "timeout=3\n",
            says: "deadline",
            resets: 0,
        },
    ];
    for row in rows {
        let responder = Responder::start(&ResponderOptions {
            mode: row.mode.clone(),
            ..ResponderOptions::default()
        })
        .unwrap();
        let started = Instant::now();
        let out = run_agent(
            &agent,
            &format!(
                "action={}\n{}{}",
                row.action,
                row.extra,
                responder_lines(&responder)
            ),
        );
        let took = started.elapsed();
        let case = format!(
            "{:?} {} {}",
            row.mode,
            row.action,
            row.extra.replace('\n', " ")
        );
        eprintln!("{case}: exit {:?} in {took:.1?}", out.status.code());
        assert_eq!(out.status.code(), Some(1), "{case}: {}", out.text());
        assert!(!out.stdout.contains("Success"), "{case}: {}", out.text());
        assert!(
            out.stderr.to_lowercase().contains(&row.says.to_lowercase()),
            "{case}: expected `{}` in: {}",
            row.says,
            out.text()
        );
        assert!(took < Duration::from_secs(6), "{case}: took {took:?}");
        assert!(
            responder.resets().len() <= row.resets,
            "{case}: {:?}",
            responder.resets()
        );
        if row.mode != Mode::Hang {
            let state = responder.power_state("System.Embedded.1").unwrap();
            let changed = matches!(row.mode, Mode::PoweringOff);
            assert_eq!(state == "On", !changed, "{case}: {state}");
        }
        assert!(
            !out.text().contains(responder.password()),
            "{case}: {}",
            out.text()
        );
    }
}

/// A wrong password is refused at once, with the refusal named, and nothing is
/// switched; the device's own cycle is PowerCycle where offered, confirmed by
/// reading the system off and on again, every request on one kept-alive connection;
/// `port_as_ip` takes the address from the plug, as fence_redfish does.
#[test]
fn a_wrong_password_fails_in_under_a_second_and_a_cycle_is_read_back() {
    if peers::require("python3", "python3").is_none() {
        return;
    }
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let responder = Responder::start(&ResponderOptions::default()).unwrap();
    let wrong = responder_lines(&responder).replace(responder.password(), "not-the-password");
    let started = Instant::now();
    let out = run_agent(&agent, &format!("action=off\n{wrong}"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.stderr.contains("HTTP 401"), "{}", out.text());
    assert!(
        out.stderr.contains("authentication failed"),
        "{}",
        out.text()
    );
    assert!(responder.resets().is_empty());

    let before = responder.requests().len();
    let out = run_agent(
        &agent,
        &format!(
            "action=reboot\nmethod=cycle\n{}",
            responder_lines(&responder)
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(responder.resets(), vec!["PowerCycle"]);
    // The connection is kept for the discovery, the reset and the polls: far fewer
    // connections than requests. (Not always exactly one: on a loaded machine the
    // client may ask for the next request before the last one's connection is back
    // in its pool, and open another.)
    let requests = responder.requests();
    assert!(requests.len() >= before + 4, "{requests:?}");
    let connections = responder.connections(before);
    assert!(
        connections * 3 <= requests.len() - before,
        "{connections} connections: {requests:?}"
    );
    let on = Instant::now() + Duration::from_secs(5);
    while responder.power_state("System.Embedded.1").unwrap() != "On" && Instant::now() < on {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(responder.power_state("System.Embedded.1").unwrap(), "On");

    // diag is the NMI the system offers, reported as sent, never as fenced.
    let out = run_agent(
        &agent,
        &format!("action=diag\n{}", responder_lines(&responder)),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(
        out.stdout.contains("Diagnostic interrupt sent"),
        "{}",
        out.text()
    );
    assert_eq!(responder.resets().last().map(String::as_str), Some("Nmi"));

    // With port_as_ip the plug is the address: `ip` (port 1, where nothing
    // listens) is replaced by it, port included.
    let lines =
        responder_lines(&responder).replace(&format!("ipport={}", responder.port()), "ipport=1");
    let out = run_agent(
        &agent,
        &format!(
            "action=off\nport_as_ip=1\nport=127.0.0.1:{}\n{lines}",
            responder.port()
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(responder.power_state("System.Embedded.1").unwrap(), "Off");
}

/// A systems collection in pages: every page is followed, and the plug's system is
/// the one switched. A collection that declares more members than it lists is
/// refused rather than chosen from: its "only" system may not be the only one.
#[test]
fn a_paged_collection_is_read_whole_and_a_short_one_is_refused() {
    if peers::require("python3", "python3").is_none() {
        return;
    }
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let systems = vec!["A".to_string(), "B".to_string()];
    let paged = Responder::start(&ResponderOptions {
        mode: Mode::Paged,
        systems: systems.clone(),
        ..ResponderOptions::default()
    })
    .unwrap();
    let out = run_agent(
        &agent,
        &format!("action=off\nport=B\n{}", responder_lines(&paged)),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(paged.power_state("B").unwrap(), "Off");
    assert_eq!(paged.power_state("A").unwrap(), "On");

    let short = Responder::start(&ResponderOptions {
        mode: Mode::ShortList,
        systems,
        ..ResponderOptions::default()
    })
    .unwrap();
    for plug in ["port=B\n", "port=node1\n", ""] {
        let out = run_agent(
            &agent,
            &format!("action=off\n{plug}{}", responder_lines(&short)),
        );
        assert_eq!(out.status.code(), Some(1), "{plug}: {}", out.text());
        assert!(out.stderr.contains("Members@odata.count"), "{}", out.text());
    }
    assert!(short.resets().is_empty(), "{:?}", short.resets());
    assert_eq!(short.power_state("A").unwrap(), "On");
    assert_eq!(short.power_state("B").unwrap(), "On");
}

/// A `fence` configuration of one Redfish device, `responder`, that node1 and node2
/// use with the plugs `plugs`.
fn two_node_config(responder: &Responder, plugs: [&str; 2]) -> String {
    format!(
        "[fence]\ntimeout = 10\n\n[devices.chassis]\nplugin = \"redfish\"\n\
         ip = \"127.0.0.1\"\nipport = {}\nusername = \"{USER}\"\npassword = \"{}\"\n\
         ssl_ca_file = \"{}\"\n\n[nodes.node1]\nplugs = [{{ device = \"chassis\", \
         plug = \"{}\" }}]\n\n[nodes.node2]\nplugs = [{{ device = \"chassis\", \
         plug = \"{}\" }}]\n",
        responder.port(),
        responder.password(),
        responder.tls().ca.display(),
        plugs[0],
        plugs[1]
    )
}

/// One system, and a plug that names none. Pacemaker's own node name as the plug
/// (no host map) means the only system, as in fence_redfish; but a plug that is
/// not the node's name (a host map gave a system Id) names a system the service
/// does not list now (a blade chassis that lacks that blade for a moment), and the
/// only system is then another node's: refused, nothing switched, from every front
/// end (each tells the device the node's name, as Pacemaker's `nodename` does), and
/// from a hand-run agent that names no node. The only system's own Id is its plug.
#[test]
fn a_plug_naming_no_system_takes_the_only_one_only_when_it_is_the_nodes_name() {
    if peers::require("python3", "python3").is_none() {
        return;
    }
    let installed = Installed::new().unwrap();
    let agent = installed.agent("redfish");
    let responder = Responder::start(&ResponderOptions {
        systems: vec!["Blade1".into()],
        ..ResponderOptions::default()
    })
    .unwrap();
    let lines = responder_lines(&responder);
    let untouched = |what: &str, out: &ToolOutput| {
        assert_ne!(out.status.code(), Some(0), "{what}: {}", out.text());
        assert!(out.text().contains("Blade2"), "{what}: {}", out.text());
        assert!(
            responder.resets().is_empty(),
            "{what}: {:?}",
            responder.resets()
        );
        assert_eq!(responder.power_state("Blade1").unwrap(), "On", "{what}");
    };
    for nodename in ["nodename=node2\n", ""] {
        let out = run_agent(
            &agent,
            &format!("action=off\nplug=Blade2\n{nodename}{lines}"),
        );
        assert_eq!(out.status.code(), Some(1), "{}", out.text());
        untouched(&format!("agent, {nodename:?}"), &out);
    }

    // The `fence` command: node2's plug is a system this service does not list.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fencekit.toml");
    std::fs::write(&config, two_node_config(&responder, ["Blade1", "Blade2"])).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = Command::new(installed.binary());
    command
        .args(["fence", "--config"])
        .arg(&config)
        .args(["--node", "node2", "--action", "off"]);
    untouched("fence", &tool::run(command, None, RUN_TIMEOUT).unwrap());

    // cluster-glue: the host map sends node2 to the unlisted system; a device that
    // names no host fences none by its name; one that lists the host takes it.
    let glue = |host: &str, config: (&str, &str)| {
        let mut command = Command::new(installed.binary());
        command
            .args(["external", "redfish", "off", host])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env(config.0, config.1)
            .env("ip", "127.0.0.1")
            .env("ipport", responder.port().to_string())
            .env("username", USER)
            .env("password", responder.password())
            .env("ssl_ca_file", &responder.tls().ca)
            .env("timeout", "10");
        tool::run(command, None, RUN_TIMEOUT).unwrap()
    };
    untouched(
        "cluster-glue",
        &glue("node2", ("hostmap", "node1:Blade1;node2:Blade2")),
    );
    let out = glue("node2", ("hostlist", ""));
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("node2"), "{}", out.text());
    assert!(responder.resets().is_empty(), "{:?}", responder.resets());
    let out = glue("node1", ("hostlist", "node1"));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(responder.power_state("Blade1").unwrap(), "Off");
    let out = run_agent(
        &agent,
        &format!("action=on\nplug=node1\nnodename=node1\n{lines}"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());

    // A chassis whose systems are named after their nodes, listing node1's alone for
    // the moment: a device several hosts use is told no node, so node2's plug must
    // name a system there, from `fence` and cluster-glue alike; node1's still does.
    let chassis = Responder::start(&ResponderOptions {
        systems: vec!["node1".into()],
        ..ResponderOptions::default()
    })
    .unwrap();
    std::fs::write(&config, two_node_config(&chassis, ["node1", "node2"])).unwrap();
    let fence = |nodes: &str, action: &str| {
        let mut command = Command::new(installed.binary());
        command
            .args(["fence", "--config"])
            .arg(&config)
            .args(["--node", nodes, "--action", action]);
        tool::run(command, None, RUN_TIMEOUT).unwrap()
    };
    let out = fence("node2", "off");
    assert_ne!(out.status.code(), Some(0), "{}", out.text());
    for nodes in ["node1,node2", "node2,node1"] {
        let out = fence(nodes, "status");
        assert_ne!(out.status.code(), Some(0), "{nodes}: {}", out.text());
    }
    assert_eq!(fence("node1", "status").status.code(), Some(0));
    for config in [
        ("hostlist", "node1,node2"),
        ("hostmap", "node1:node1;node2:node2"),
    ] {
        let mut command = Command::new(installed.binary());
        command
            .args(["external", "redfish", "off", "node2"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env(config.0, config.1)
            .env("ip", "127.0.0.1")
            .env("ipport", chassis.port().to_string())
            .env("username", USER)
            .env("password", chassis.password())
            .env("ssl_ca_file", &chassis.tls().ca)
            .env("timeout", "10");
        let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
        assert_eq!(out.status.code(), Some(1), "{config:?}: {}", out.text());
    }
    assert!(chassis.resets().is_empty(), "{:?}", chassis.resets());
    assert_eq!(chassis.power_state("node1").unwrap(), "On");

    // The node's own name: the service's only system.
    let out = run_agent(
        &agent,
        &format!("action=off\nplug=node1\nnodename=node1\n{lines}"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(responder.power_state("Blade1").unwrap(), "Off");
    // The only system's Id, as a host map gives it, beside the node's name.
    let out = run_agent(
        &agent,
        &format!("action=on\nplug=Blade1\nnodename=node1\n{lines}"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(responder.power_state("Blade1").unwrap(), "On");
}
