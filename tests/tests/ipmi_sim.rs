//! fencekit's native IPMI client against a real BMC: OpenIPMI's `ipmi_sim` on
//! loopback, driven through the `stonith-bridge fence-agent ipmi` front end (options
//! on stdin, as Pacemaker's fencer passes them), so every check runs the whole path:
//! option parsing, `IpmiSwitch::from_params`, core's fence algorithm, the RMCP+
//! session. A loopback UDP relay between the agent and ipmi_sim records every
//! datagram, so the tests can say which suites were offered and how many sessions
//! were attempted; the power program's call log says what the chassis really did.
//!
//! ipmi_sim 2.0.33 has no HMAC-SHA256, so the default offer (17, then 3) proves the
//! fallback here; suite 17 itself is proven against other peers in the ipmi crate.
//! IPMI 1.5 (`lanplus=0`, `interface=lan`) is proven here too: ipmi_sim's user is
//! allowed MD5, straight password and none, and `fence_ipmilan` / `ipmitool -I lan`
//! read back what fencekit's 1.5 sessions did.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::tool::{self, ToolOutput};
use fencekit_tests::{bridge, peers};

/// Far above any run here (the slowest, a cycle against a 3 s power program, takes
/// about 10 s); a hang fails the test instead of blocking the suite.
const AGENT_TIMEOUT: Duration = Duration::from_secs(90);

/// RMCP+ payload types (IPMI v2.0 table 13-16) as they appear in byte 5.
const OPEN_SESSION_REQUEST: u8 = 0x10;
const RAKP_1: u8 = 0x12;
const RAKP_3: u8 = 0x14;

/// A UDP relay on 127.0.0.1 between fence agents and one BMC: forwards both ways
/// and keeps every datagram the agents sent. Stopped and joined on drop.
struct Relay {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(bmc: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front.set_nonblocking(true).unwrap();
        let addr = front.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // One upstream socket per agent socket, so replies find their way back.
            let mut upstream: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let mut idle = true;
                while let Ok((len, from)) = front.recv_from(&mut buf) {
                    idle = false;
                    sent2.lock().unwrap().push(buf[..len].to_vec());
                    let socket = upstream.entry(from).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    });
                    let _ = socket.send_to(&buf[..len], bmc);
                }
                for (client, socket) in &upstream {
                    while let Ok(len) = socket.recv(&mut buf) {
                        idle = false;
                        let _ = front.send_to(&buf[..len], client);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Relay {
            addr,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams the agents sent, of one RMCP+ payload type.
    fn sent_of_type(&self, payload_type: u8) -> Vec<Vec<u8>> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.len() > 5 && d[4] == 0x06 && d[5] & 0x3f == payload_type)
            .cloned()
            .collect()
    }

    /// The (authentication, integrity, confidentiality) algorithm ids of every Open
    /// Session Request sent (payload at byte 16; proposals at payload 12, 20, 28).
    fn offered(&self) -> Vec<(u8, u8, u8)> {
        self.sent_of_type(OPEN_SESSION_REQUEST)
            .iter()
            .filter(|d| d.len() >= 48)
            .map(|d| (d[28] & 0x3f, d[36] & 0x3f, d[44] & 0x3f))
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Suite ids by algorithm triple (IPMI v2.0 table 22-20).
fn suite_id(algorithms: (u8, u8, u8)) -> Option<u8> {
    match algorithms {
        (0, 0, 0) => Some(0),
        (1, 0, 0) => Some(1),
        (1, 1, 0) => Some(2),
        (1, 1, 1) => Some(3),
        (3, 4, 1) => Some(17),
        _ => None,
    }
}

fn ipmi_sim_present() -> bool {
    peers::require("ipmi_sim", "openipmi").is_some()
}

fn start(power: PowerProgram) -> IpmiSim {
    IpmiSim::start(IpmiSimOptions {
        power,
        ..IpmiSimOptions::default()
    })
    .unwrap()
}

/// Runs `stonith-bridge fence-agent ipmi` with `options` (key=value) on stdin,
/// against `port` on 127.0.0.1 with the simulator's user and `password`; no suite
/// memory (every run offers what its options say) unless `options` give one.
fn agent(port: u16, password: &str, options: &[(&str, &str)]) -> ToolOutput {
    let binary = bridge::binary().unwrap();
    let mut command = std::process::Command::new(binary);
    command.args(["fence-agent", "ipmi"]);
    let mut stdin = format!(
        "ip=127.0.0.1\nipport={port}\nusername={}\npassword={password}\nsuite_memory_dir=\n",
        IpmiSimOptions::default().user
    );
    for (key, value) in options {
        stdin.push_str(&format!("{key}={value}\n"));
    }
    tool::run(command, Some(stdin.as_bytes()), AGENT_TIMEOUT).unwrap()
}

fn password() -> String {
    IpmiSimOptions::default().password
}

fn exit_code(out: &ToolOutput) -> Option<i32> {
    out.status.code()
}

/// status, off, status, on, reboot through one cipher-suite setting; checks the
/// chassis state after each step.
fn status_off_on_reboot(extra: &[(&str, &str)]) {
    let sim = start(PowerProgram::Obey);
    let with = |action: &str| {
        let mut options = vec![("action", action)];
        options.extend_from_slice(extra);
        agent(sim.port(), &password(), &options)
    };
    let out = with("status");
    assert_eq!(exit_code(&out), Some(0), "{extra:?}: {}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());

    let out = with("off");
    assert_eq!(exit_code(&out), Some(0), "{extra:?}: {}", out.text());
    assert!(
        !sim.power_state().unwrap(),
        "off was reported but the chassis is on"
    );

    let out = with("status");
    assert_eq!(exit_code(&out), Some(2), "{extra:?}: {}", out.text());
    assert!(out.stdout.contains("Status: OFF"), "{}", out.text());

    let out = with("on");
    assert_eq!(exit_code(&out), Some(0), "{extra:?}: {}", out.text());
    assert!(sim.power_state().unwrap());

    let before = sim.call_log().unwrap().len();
    let out = with("reboot");
    assert_eq!(exit_code(&out), Some(0), "{extra:?}: {}", out.text());
    assert!(sim.power_state().unwrap());
    let sets: Vec<String> = sim.call_log().unwrap()[before..]
        .iter()
        .filter(|l| l.contains("set "))
        .cloned()
        .collect();
    // Off confirmed, then on: two separate power changes, never a cycle or reset.
    assert_eq!(
        sets.iter()
            .map(|l| l.split("set ").nth(1).unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["power 0", "power 1"],
        "{sets:?}"
    );
}

#[test]
fn the_default_offer_falls_back_from_17_to_3_and_status_off_on_reboot_work() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    let out = agent(relay.addr.port(), &password(), &[("action", "status")]);
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());
    // ipmi_sim refuses 17 with a truncated answer; 3 follows at once.
    let offered: Vec<Option<u8>> = relay.offered().into_iter().map(suite_id).collect();
    assert_eq!(offered, vec![Some(17), Some(3)]);
    drop(relay);
    drop(sim);
    status_off_on_reboot(&[]);
}

#[test]
fn the_suite_a_bmc_accepted_is_offered_first_next_time() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    let memory = tempfile::tempdir().unwrap();
    let dir = memory.path().display().to_string();
    let options = [("action", "status"), ("suite_memory_dir", dir.as_str())];
    let out = agent(relay.addr.port(), &password(), &options);
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    let offered: Vec<Option<u8>> = relay.offered().into_iter().map(suite_id).collect();
    assert_eq!(offered, vec![Some(17), Some(3)], "first run");
    let file = memory
        .path()
        .join(format!("127.0.0.1_{}.suite", relay.addr.port()));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "3");
    // The second run offers 3 first: accepted at once, 17 never sent.
    let out = agent(relay.addr.port(), &password(), &options);
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    let offered: Vec<Option<u8>> = relay.offered().into_iter().map(suite_id).collect();
    assert_eq!(offered, vec![Some(17), Some(3), Some(3)], "second run");
    // A pinned cipher is what is offered, whatever is remembered.
    std::fs::write(&file, "17\n").unwrap();
    let pinned = [
        ("action", "status"),
        ("suite_memory_dir", dir.as_str()),
        ("cipher", "3"),
    ];
    let out = agent(relay.addr.port(), &password(), &pinned);
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    let offered: Vec<Option<u8>> = relay.offered().into_iter().map(suite_id).collect();
    assert_eq!(offered.last(), Some(&Some(3)));
    assert_eq!(offered.len(), 4);
}

#[test]
fn pinned_suites_3_and_2_work() {
    if !ipmi_sim_present() {
        return;
    }
    for suite in ["3", "2"] {
        status_off_on_reboot(&[("cipher", suite)]);
    }
}

#[test]
fn suite_1_works_only_with_allow_insecure_cipher() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    let out = agent(
        relay.addr.port(),
        &password(),
        &[("action", "status"), ("cipher", "1")],
    );
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(
        out.text().contains("allow_insecure_cipher"),
        "{}",
        out.text()
    );
    assert!(relay.offered().is_empty(), "nothing may be sent");
    drop(relay);
    drop(sim);
    status_off_on_reboot(&[("cipher", "1"), ("allow_insecure_cipher", "1")]);
}

#[test]
fn method_cycle_reboots_with_one_cycle_and_waits_until_the_chassis_is_on_again() {
    if !ipmi_sim_present() {
        return;
    }
    let suites: [&[(&str, &str)]; 3] = [
        &[("cipher", "3")],
        &[("cipher", "2")],
        &[("cipher", "1"), ("allow_insecure_cipher", "1")],
    ];
    for suite in suites {
        let sim = start(PowerProgram::Obey);
        let mut options = vec![("action", "reboot"), ("method", "cycle")];
        options.extend_from_slice(suite);
        let out = agent(sim.port(), &password(), &options);
        assert_eq!(exit_code(&out), Some(0), "{suite:?}: {}", out.text());
        assert!(sim.power_state().unwrap());
        let log = sim.call_log().unwrap();
        let sets: Vec<&String> = log.iter().filter(|l| l.contains("set ")).collect();
        // ipmi_sim's cycle: `set power 0`, then its own timer's `set power 1` ~1 s
        // later. Success was reported after that, since the chassis reads on.
        assert_eq!(sets.len(), 2, "{suite:?}: {log:?}");
        assert!(sets[0].ends_with("set power 0") && sets[1].ends_with("set power 1"));
    }
}

#[test]
fn a_cycle_of_a_machine_that_is_off_reboots_it_off_then_on_without_a_cycle() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions {
        initially_on: false,
        ..IpmiSimOptions::default()
    })
    .unwrap();
    let out = agent(
        sim.port(),
        &password(),
        &[("action", "reboot"), ("method", "cycle")],
    );
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(sim.power_state().unwrap());
    let sets: Vec<String> = sim
        .call_log()
        .unwrap()
        .into_iter()
        .filter(|l| l.contains("set "))
        .collect();
    // core's contract since the fence algorithm changed (a node that reads off
    // before any command is rebooted off-then-on, the off sent and read back): a
    // power down, then a power up, and no cycle sent.
    assert_eq!(sets.len(), 2, "{sets:?} {}", out.text());
    assert!(sets[0].ends_with("set power 0"), "{sets:?}");
    assert!(sets[1].ends_with("set power 1"), "{sets:?}");
    assert!(out.text().contains("off-then-on"), "{}", out.text());
}

#[test]
fn a_wrong_password_fails_at_once_naming_user_and_host_without_retrying() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    for action in ["status", "off"] {
        let out = agent(relay.addr.port(), "not-the-password", &[("action", action)]);
        assert_eq!(exit_code(&out), Some(1), "{}", out.text());
        let text = out.text();
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains("`admin`"), "{text}");
        assert!(
            text.contains(&format!("127.0.0.1:{}", relay.addr.port())),
            "{text}"
        );
        assert!(!text.contains("not-the-password"), "{text}");
    }
    // One authentication attempt per run: RAKP 1 once (suite 17 was refused before
    // it), RAKP 3 never (the BMC's proof did not match, so nothing keyed by the
    // password left), and no command ran.
    assert_eq!(relay.sent_of_type(RAKP_1).len(), 2);
    assert_eq!(relay.sent_of_type(RAKP_3).len(), 0);
    assert_eq!(relay.offered().len(), 4, "17 and 3, once per run");
    assert!(
        sim.call_log().unwrap().iter().all(|l| !l.contains("set ")),
        "{:?}",
        sim.call_log()
    );
    assert!(sim.power_state().unwrap());
}

#[test]
fn nothing_listening_says_no_answer_from_the_address_by_the_deadline() {
    // No peer needed: a port nothing listens on (bound, noted, released).
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = agent(
        port,
        "whatever",
        &[
            ("action", "status"),
            ("timeout", "2"),
            ("power_timeout", "2"),
        ],
    );
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(
        out.text()
            .contains(&format!("no answer from 127.0.0.1:{port}")),
        "{}",
        out.text()
    );
}

#[test]
fn a_bmc_that_accepts_off_and_stays_on_is_a_failed_fence_naming_the_host() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Lie);
    let out = agent(
        sim.port(),
        &password(),
        &[("action", "off"), ("power_timeout", "2")],
    );
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(out.text().contains("127.0.0.1"), "{}", out.text());
    assert!(sim.power_state().unwrap(), "the lying chassis is still on");
    assert!(
        sim.call_log()
            .unwrap()
            .iter()
            .any(|l| l.ends_with("set power 0")),
        "off was sent"
    );
}

#[test]
fn a_slow_bmc_runs_a_cycle_exactly_once() {
    if !ipmi_sim_present() {
        return;
    }
    // Each `set power` takes 3 s, far beyond our 0.5 s retransmission interval:
    // a client that resent the cycle would make ipmi_sim run it again.
    let sim = start(PowerProgram::Slow { seconds: 3 });
    let out = agent(
        sim.port(),
        &password(),
        &[
            ("action", "reboot"),
            ("method", "cycle"),
            ("power_timeout", "30"),
        ],
    );
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    let log = sim.call_log().unwrap();
    let offs = log.iter().filter(|l| l.ends_with("set power 0")).count();
    assert_eq!(offs, 1, "the cycle ran {offs} times: {log:?}");
    // The cycle's off plus ipmi_sim's own power-on after it.
    assert_eq!(sim.calls().unwrap(), 2, "{log:?}");
}

#[test]
fn suite_0_is_never_offered_and_only_an_explicit_opt_in_shows_why() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    // Pinned without the opt-in: refused before anything is sent.
    let out = agent(
        relay.addr.port(),
        &password(),
        &[("action", "status"), ("cipher", "0")],
    );
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(
        out.text().contains("allow_insecure_cipher"),
        "{}",
        out.text()
    );
    assert!(relay.offered().is_empty());
    // The default offer with a wrong password: refused, and suite 0 never proposed.
    let out = agent(relay.addr.port(), "wrong", &[("action", "status")]);
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(relay
        .offered()
        .into_iter()
        .all(|a| suite_id(a).is_some_and(|id| id == 17 || id == 3)));
    // With the opt-in, ipmi_sim answers power status to a WRONG password under
    // suite 0: the reason it is never offered by default.
    let out = agent(
        relay.addr.port(),
        "wrong",
        &[
            ("action", "status"),
            ("cipher", "0"),
            ("allow_insecure_cipher", "1"),
        ],
    );
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());
}

#[test]
fn diag_is_sent_once_and_ipmi_sim_s_refusal_is_reported_with_its_completion_code() {
    if !ipmi_sim_present() {
        return;
    }
    // OpenIPMI's simulator does not take the diagnostic pulse (completion code
    // 0xCC); the refusal must reach the user as it is, with nothing switched.
    let sim = start(PowerProgram::Obey);
    let out = agent(sim.port(), &password(), &[("action", "diag")]);
    assert_eq!(exit_code(&out), Some(1), "{}", out.text());
    assert!(
        out.stderr.contains("diag") && out.stderr.contains("0xcc"),
        "{}",
        out.text()
    );
    assert!(sim.power_state().unwrap());
    assert!(
        !sim.call_log().unwrap().iter().any(|l| l.contains("set ")),
        "diag must not touch the power"
    );
}

#[test]
fn a_user_looked_up_by_name_and_privilege_logs_in_at_its_own_level() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    // ipmitool's `-L ADMINISTRATOR+`: the simulator's user is an administrator.
    let out = agent(
        sim.addr().port(),
        &password(),
        &[("action", "status"), ("privlvl", "administrator+")],
    );
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());
}

/// FreeIPMI's workaround names that concern a BMC like ipmi_sim (which hashes the
/// RAKP keys with the Open Session privilege: FreeIPMI's `opensesspriv` list names
/// the OpenIPMI software BMC) fence it, confirmed by the simulator: none of them
/// breaks a well-formed answer, and `opensesspriv` / `sun20` win over `privzero`.
#[test]
fn freeipmi_workarounds_fence_ipmi_sim_with_its_proofs_checked() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    let port = sim.addr().port();
    for workarounds in [
        "opensesspriv",
        "privzero,opensesspriv",
        "sun20,privzero",
        "supermicro20",
        "integritycheckvalue",
    ] {
        let out = agent(
            port,
            &password(),
            &[
                ("action", "off"),
                ("cipher", "3"),
                ("workarounds", workarounds),
            ],
        );
        assert_eq!(exit_code(&out), Some(0), "{workarounds}: {}", out.text());
        assert!(
            !sim.power_state().unwrap(),
            "{workarounds}: off was reported but the chassis is on"
        );
        let out = agent(port, &password(), &[("action", "on"), ("cipher", "3")]);
        assert_eq!(exit_code(&out), Some(0), "{}", out.text());
        assert!(sim.power_state().unwrap());
        // And a wrong password is still refused with it.
        let out = agent(
            port,
            "not-the-password",
            &[
                ("action", "off"),
                ("cipher", "3"),
                ("workarounds", workarounds),
            ],
        );
        assert_ne!(exit_code(&out), Some(0), "{workarounds}: {}", out.text());
        assert!(
            sim.power_state().unwrap(),
            "{workarounds}: switched with a wrong password"
        );
    }
}

/// The IPMI 1.5 auth types (session header byte 4) of the agents' datagrams sent
/// inside a session or to activate one (session ID, bytes 9-12, not 0); `None`
/// when any datagram was RMCP+ (auth type 0x06).
fn v15_session_auth_types(relay: &Relay) -> Option<Vec<u8>> {
    let sent = relay.sent.lock().unwrap();
    if sent.iter().any(|d| d.len() > 4 && d[4] == 0x06) {
        return None;
    }
    Some(
        sent.iter()
            .filter(|d| d.len() > 13 && d[9..13] != [0, 0, 0, 0])
            .map(|d| d[4])
            .collect(),
    )
}

/// status, off, on, reboot over IPMI 1.5 with `options`, each confirmed by the
/// simulator's power state; through a relay that shows every datagram was IPMI
/// 1.5 with auth type `want_auth`, none RMCP+.
fn v15_status_off_on_reboot(options: &[(&str, &str)], want_auth: u8) {
    let sim = start(PowerProgram::Obey);
    let relay = Relay::start(sim.addr());
    let with = |action: &str| {
        let mut all = vec![("action", action)];
        all.extend_from_slice(options);
        agent(relay.addr.port(), &password(), &all)
    };
    let out = with("status");
    assert_eq!(exit_code(&out), Some(0), "{options:?}: {}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());

    let out = with("off");
    assert_eq!(exit_code(&out), Some(0), "{options:?}: {}", out.text());
    assert!(!sim.power_state().unwrap(), "off reported, chassis on");

    let out = with("status");
    assert_eq!(exit_code(&out), Some(2), "{options:?}: {}", out.text());
    assert!(out.stdout.contains("Status: OFF"), "{}", out.text());

    let out = with("on");
    assert_eq!(exit_code(&out), Some(0), "{options:?}: {}", out.text());
    assert!(sim.power_state().unwrap(), "on reported, chassis off");

    let before = sim.call_log().unwrap().len();
    let out = with("reboot");
    assert_eq!(exit_code(&out), Some(0), "{options:?}: {}", out.text());
    assert!(sim.power_state().unwrap());
    let sets: Vec<String> = sim.call_log().unwrap()[before..]
        .iter()
        .filter(|l| l.contains("set "))
        .cloned()
        .collect();
    assert_eq!(sets.len(), 2, "off then on, never a cycle: {sets:?}");
    assert!(sets[0].ends_with("set power 0") && sets[1].ends_with("set power 1"));

    let auths = v15_session_auth_types(&relay).expect("an RMCP+ datagram was sent");
    assert!(!auths.is_empty());
    assert!(
        auths.iter().all(|a| *a == want_auth),
        "auth types sent: {auths:?}, want {want_auth}"
    );
}

#[test]
fn ipmi_1_5_with_md5_does_status_off_on_and_reboot_confirmed_by_the_simulator() {
    if !ipmi_sim_present() {
        return;
    }
    v15_status_off_on_reboot(&[("lanplus", "0"), ("auth", "md5")], 2);
}

#[test]
fn ipmi_1_5_without_auth_speaks_md5() {
    if !ipmi_sim_present() {
        return;
    }
    v15_status_off_on_reboot(&[("lanplus", "false")], 2);
}

#[test]
fn ipmi_1_5_with_straight_password_and_with_none_work_when_asked_for() {
    if !ipmi_sim_present() {
        return;
    }
    v15_status_off_on_reboot(&[("lanplus", "0"), ("auth", "password")], 4);
    v15_status_off_on_reboot(&[("interface", "lan"), ("auth", "none")], 0);
}

#[test]
fn ipmi_1_5_with_a_wrong_password_fails_as_such_within_the_timeout_and_switches_nothing() {
    if !ipmi_sim_present() {
        return;
    }
    let sim = start(PowerProgram::Obey);
    for auth in ["md5", "password"] {
        let started = std::time::Instant::now();
        let out = agent(
            sim.port(),
            "not-the-password",
            &[
                ("action", "off"),
                ("lanplus", "0"),
                ("auth", auth),
                ("timeout", "20"),
            ],
        );
        let took = started.elapsed();
        assert_eq!(exit_code(&out), Some(1), "{auth}: {}", out.text());
        let text = out.text();
        assert!(text.contains("password invalid"), "{auth}: {text}");
        assert!(text.contains("`admin`"), "{text}");
        assert!(!text.contains("not-the-password"), "{text}");
        // Two challenges, three Activate Session sends each (about 3 s), inside the
        // timeout (20 s) even on a loaded machine.
        assert!(took < Duration::from_secs(18), "{auth}: took {took:?}");
    }
    assert!(
        sim.call_log().unwrap().iter().all(|l| !l.contains("set ")),
        "{:?}",
        sim.call_log()
    );
    assert!(sim.power_state().unwrap());
}

/// fence_ipmilan (ipmitool -I lan) on the same stdin reads what fencekit's agent
/// did to the same ipmi_sim, and fencekit reads what fence_ipmilan did.
#[test]
fn fence_ipmilan_over_ipmi_1_5_agrees_with_the_agent_on_the_same_stdin() {
    if !ipmi_sim_present() {
        return;
    }
    let Some(fence_ipmilan) = peers::require("fence_ipmilan", "fence-agents") else {
        return;
    };
    let sim = start(PowerProgram::Obey);
    let stdin = |action: &str| {
        format!(
            "action={action}\nip=127.0.0.1\nipport={}\nusername={}\npassword={}\nlanplus=0\n\
             auth=md5\n",
            sim.port(),
            sim.user(),
            password()
        )
    };
    let theirs = |action: &str| {
        let command = std::process::Command::new(&fence_ipmilan);
        tool::run(command, Some(stdin(action).as_bytes()), AGENT_TIMEOUT).unwrap()
    };
    let ours = |action: &str| {
        let mut command = std::process::Command::new(bridge::binary().unwrap());
        command.args(["fence-agent", "ipmi"]);
        let input = format!("{}suite_memory_dir=\n", stdin(action));
        tool::run(command, Some(input.as_bytes()), AGENT_TIMEOUT).unwrap()
    };
    let out = ours("off");
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(!sim.power_state().unwrap());
    let out = theirs("status");
    assert_eq!(exit_code(&out), Some(2), "fence_ipmilan: {}", out.text());
    assert!(out.stdout.contains("Status: OFF"), "{}", out.text());

    let out = theirs("on");
    assert_eq!(exit_code(&out), Some(0), "fence_ipmilan: {}", out.text());
    assert!(sim.power_state().unwrap());
    let out = ours("status");
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());
}

/// ipmitool -I lan -A MD5 reads back what the agent's IPMI 1.5 session did.
#[test]
fn ipmitool_over_ipmi_1_5_reads_the_state_the_agent_left() {
    if !ipmi_sim_present() {
        return;
    }
    let Some(ipmitool) = peers::require("ipmitool", "ipmitool") else {
        return;
    };
    let sim = start(PowerProgram::Obey);
    let out = agent(
        sim.port(),
        &password(),
        &[("action", "off"), ("lanplus", "0")],
    );
    assert_eq!(exit_code(&out), Some(0), "{}", out.text());
    let mut command = std::process::Command::new(ipmitool);
    command
        .args(["-I", "lan", "-A", "MD5", "-H", "127.0.0.1", "-p"])
        .arg(sim.port().to_string())
        .args([
            "-U",
            sim.user(),
            "-E",
            "-N",
            "1",
            "-R",
            "3",
            "chassis",
            "power",
            "status",
        ])
        .env("IPMI_PASSWORD", password());
    let out = tool::run(command, None, AGENT_TIMEOUT).unwrap();
    assert!(out.status.success(), "{}", out.text());
    assert!(
        out.stdout.contains("Chassis Power is off"),
        "{}",
        out.text()
    );
    assert!(!sim.power_state().unwrap());
}
