//! End-to-end: `ApcConsoleSwitch` through the REAL OpenSSH `sshd` on 127.0.0.1,
//! with `fencekit-apc-console-sim` as the `ForceCommand` of throwaway local users
//! (menu UI and `apc>` command line, healthy and faulty), and fence-agents'
//! `fence_apc` against the same simulators. Needs root (sshd, local users); the
//! peer-missing rule applies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_apc::console::{ApcConsoleSwitch, CONSOLE_SCHEMA};
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{DeviceError, FenceAction, Plug, PowerState, PowerSwitch, SwitchTo};
use fencekit_tests::consoles::{fence_outlets, in_secs, peers_present, validated, ConsoleRig};
use fencekit_tests::peers;

const SIM: &str = env!("CARGO_BIN_EXE_fencekit-apc-console-sim");

type Rig = ConsoleRig;

/// The console rig with this crate's simulator.
fn start_rig(specs: &[(&str, &[&str])]) -> Rig {
    ConsoleRig::start(SIM, "apc", 1, specs)
}

/// This plugin's device for console `i` of the rig.
trait Switches {
    fn switch(&self, i: usize, extra: &[(&str, &str)]) -> ApcConsoleSwitch;
}

impl Switches for ConsoleRig {
    fn switch(&self, i: usize, extra: &[(&str, &str)]) -> ApcConsoleSwitch {
        switch_from(&self.params(i, extra))
    }
}

fn switch_from(pairs: &[(String, String)]) -> ApcConsoleSwitch {
    ApcConsoleSwitch::from_params(&validated(&CONSOLE_SCHEMA, pairs)).unwrap()
}

async fn status_on_off_list(rig: &Rig, i: usize) {
    let pdu = rig.switch(i, &[]);
    let state = &rig.consoles[i].state;
    state.set(1, 3, true, Some("db-node3")).unwrap();
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::On
    );
    pdu.switch(&Plug::Name("db-node3".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(1, 3).unwrap(), Some(PowerState::Off));
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::Off
    );
    pdu.switch(&Plug::Number(3), SwitchTo::On, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(1, 3).unwrap(), Some(PowerState::On));
    let listed = pdu.list(in_secs(30)).await.unwrap();
    assert_eq!(listed.len(), 8);
    assert_eq!(listed[2].name.as_deref(), Some("db-node3"));
    pdu.check(in_secs(30)).await.unwrap();
    let err = pdu
        .status(&Plug::Number(42), in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::UnknownPlug { .. }), "{err}");
}

#[tokio::test]
async fn menu_console_reads_switches_and_lists_outlets_through_real_sshd() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    status_on_off_list(&rig, 0).await;
}

#[tokio::test]
async fn cli_console_reads_switches_and_lists_outlets_through_real_sshd() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("cli", &[])]);
    status_on_off_list(&rig, 0).await;
}

#[tokio::test]
async fn reboot_through_core_fence_confirms_off_then_on_on_both_uis() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[]), ("cli", &[])]);
    for i in 0..2 {
        let outcome = fence_outlets(rig.switch(i, &[]), &[5], FenceAction::Reboot, 60).await;
        assert!(outcome.success, "{}", outcome.summary());
        assert!(outcome.fenced);
        assert!(outcome.plugs[0].off_confirmed.is_some());
        assert!(outcome.plugs[0].on_confirmed.is_some());
        assert_eq!(
            rig.consoles[i].state.state(1, 5).unwrap(),
            Some(PowerState::On)
        );
    }
}

#[tokio::test]
async fn a_lying_outlet_fails_the_fence() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &["lie"]), ("cli", &["lie"])]);
    for i in 0..2 {
        let outcome = fence_outlets(rig.switch(i, &[]), &[2], FenceAction::Off, 8).await;
        assert!(!outcome.success, "{}", outcome.summary());
        assert!(!outcome.fenced);
        assert_eq!(
            rig.consoles[i].state.state(1, 2).unwrap(),
            Some(PowerState::On)
        );
    }
}

#[tokio::test]
async fn a_listing_that_ran_its_last_row_into_the_one_before_is_no_read_back() {
    if !peers_present() {
        return;
    }
    // Outlet 7 of 8 is the node's; outlet 8 is off. After the (ignored) off, every
    // listing shows row 7 with row 8's "Off" and no row 8.
    let rig = start_rig(&[("cli", &["lie", "splice-last"])]);
    let state = &rig.consoles[0].state;
    state.set(1, 8, false, None).unwrap();
    let outcome = fence_outlets(rig.switch(0, &[]), &[7], FenceAction::Off, 8).await;
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(!outcome.fenced, "{}", outcome.summary());
    assert_eq!(state.state(1, 7).unwrap(), Some(PowerState::On));
    let errors = outcome
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    assert!(errors.contains("shows 7 outlets"), "{errors}");
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    let pdu = rig.switch(0, &[("password", "not-the-password")]);
    let err = pdu.status(&Plug::Number(1), in_secs(30)).await.unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let outcome = fence_outlets(
        rig.switch(0, &[("password", "not-the-password")]),
        &[1],
        FenceAction::Off,
        20,
    )
    .await;
    assert!(!outcome.fenced, "{}", outcome.summary());
}

#[tokio::test]
async fn host_keys_are_verified_and_a_mismatch_shows_the_presented_fingerprint() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("cli", &[])]);
    let presented = rig.fingerprint();
    // The right pin works.
    let pinned = rig.switch(0, &[("host_key", presented.as_str())]);
    pinned.check(in_secs(30)).await.unwrap();
    // A wrong pin is refused before any password is sent, naming what was shown.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let pdu = rig.switch(0, &[("host_key", wrong)]);
    let err = pdu.status(&Plug::Number(1), in_secs(30)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("host key verification FAILED"), "{text}");
    assert!(text.contains(&presented), "{text} lacks {presented}");
    // A known_hosts file without the host: refused too.
    let empty = rig.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let pdu = rig.switch(0, &[("known_hosts", empty.to_str().unwrap())]);
    let err = pdu.check(in_secs(30)).await.unwrap_err();
    assert!(err.to_string().contains("has no key"), "{err}");
    // The host's key marked @revoked, or on a line negating the host, as OpenSSH
    // reads them (libssh2 skips both): refused though another line holds it.
    let good = std::fs::read_to_string(rig.known_hosts()).unwrap();
    let line = good.lines().next().unwrap();
    let (host, rest) = line.split_once(' ').unwrap();
    for (text, why) in [
        (format!("{good}@revoked * {rest}\n"), "@revoked"),
        (format!("!{host},{line}\n"), "negated"),
    ] {
        let file = rig.dir().join("marked_known_hosts");
        std::fs::write(&file, text).unwrap();
        let pdu = rig.switch(0, &[("known_hosts", file.to_str().unwrap())]);
        let err = pdu.check(in_secs(30)).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
    // No check at all only when asked for explicitly.
    let mut pairs = rig.params(0, &[]);
    pairs.retain(|(k, _)| k != "known_hosts");
    let raw: Vec<RawParam> = pairs
        .iter()
        .map(|(k, v)| RawParam::text(k.as_str(), v.as_str(), Origin::new("test")))
        .collect();
    let params = validate(&[&CONSOLE_SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    let refused = ApcConsoleSwitch::from_params(&params).unwrap_err();
    assert!(
        refused.to_string().contains("insecure_skip_host_key_check"),
        "{refused}"
    );
    pairs.push(("insecure_skip_host_key_check".into(), "1".into()));
    switch_from(&pairs).check(in_secs(30)).await.unwrap();
}

#[tokio::test]
async fn a_stalled_pager_silence_or_dropped_connection_fails_by_the_deadline_unfenced() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[
        ("menu", &["stall-pager"]),
        ("cli", &["stall-pager"]),
        ("menu", &["silent"]),
        ("menu", &["drop"]),
        ("cli", &["drop"]),
    ]);
    let expected = [
        "Press <ENTER>",
        "timed out",
        "waiting for a prompt",
        "Connection lost",
        "Connection lost",
    ];
    for (i, words) in expected.iter().enumerate() {
        let outcome = fence_outlets(rig.switch(i, &[]), &[4], FenceAction::Off, 6).await;
        assert!(!outcome.success, "console {i}: {}", outcome.summary());
        assert!(!outcome.fenced, "console {i}: {}", outcome.summary());
        // The console's own error, naming what it was doing, not only the
        // fence's deadline guard.
        let first = outcome
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(first.contains(words), "console {i}: {first}");
    }
}

#[tokio::test]
async fn a_busy_console_is_a_clear_busy_error_and_nothing_is_fenced() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    // Someone else is logged in to the single-session unit.
    let other = fencekit_console::sim::SessionLock::try_take(&rig.consoles[0].session_lock)
        .unwrap()
        .unwrap();
    let pdu = rig.switch(0, &[]);
    // A monitor waits for the console until its deadline, then says busy.
    let err = pdu.check(in_secs(6)).await.unwrap_err();
    assert!(matches!(err, DeviceError::Busy(_)), "{err}");
    let err = pdu.status(&Plug::Number(1), in_secs(3)).await.unwrap_err();
    assert!(matches!(err, DeviceError::Busy(_)), "{err}");
    let outcome = fence_outlets(rig.switch(0, &[]), &[1], FenceAction::Off, 4).await;
    assert!(!outcome.fenced, "{}", outcome.summary());
    assert_eq!(
        rig.consoles[0].state.state(1, 1).unwrap(),
        Some(PowerState::On)
    );
    drop(other);
    pdu.check(in_secs(30)).await.unwrap();
}

#[tokio::test]
async fn two_fences_on_a_single_session_unit_are_serialised_and_a_monitor_does_not_break_them() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    let a = fence_outlets(rig.switch(0, &[]), &[6], FenceAction::Off, 60);
    let b = fence_outlets(rig.switch(0, &[]), &[7], FenceAction::Off, 60);
    let monitor = rig.switch(0, &[]);
    let watch = async {
        // Monitors either get through or are told "busy"; never anything else.
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(monitor.check(in_secs(20)).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers
    };
    let (a, b, answers) = tokio::join!(a, b, watch);
    assert!(a.success, "{}", a.summary());
    assert!(b.success, "{}", b.summary());
    for answer in answers {
        if let Err(e) = answer {
            assert!(matches!(e, DeviceError::Busy(_)), "{e}");
        }
    }
    let state = &rig.consoles[0].state;
    assert_eq!(state.state(1, 6).unwrap(), Some(PowerState::Off));
    assert_eq!(state.state(1, 7).unwrap(), Some(PowerState::Off));
}

// ------------------------------------------------------------ fence_apc

fn fence_apc() -> Option<PathBuf> {
    peers::require("fence_apc", "fence-agents")
}

/// Runs fence_apc against console `i`. The throwaway test password goes in
/// argv here only because that is fence_apc's interface; fencekit never puts a
/// secret in argv.
fn run_fence_apc(bin: &Path, rig: &Rig, i: usize, action: &str, plug: u32) -> (i32, String) {
    let c = &rig.consoles[i];
    // A single-session unit refuses a second login, and fence_apc does not try
    // again: the session of the previous run (ours) may linger a moment on a
    // loaded machine until its client is gone.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !matches!(
        fencekit_console::sim::SessionLock::try_take(&c.session_lock),
        Ok(Some(_))
    ) && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(bin)
        .args([
            "--ssh",
            "--ssh-options=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "-a",
            "127.0.0.1",
            "-u",
            &rig.sshd().port().to_string(),
            "-l",
            c.user.name(),
            "-p",
            &c.password,
            "-n",
            &plug.to_string(),
            "-o",
            action,
            "--shell-timeout=10",
            "--login-timeout=10",
            "--power-timeout=10",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn fence_apc_drives_both_simulators() {
    if !peers_present() {
        return;
    }
    let Some(bin) = fence_apc() else { return };
    let rig = start_rig(&[("menu", &[]), ("cli", &[])]);
    for i in 0..2 {
        let state = &rig.consoles[i].state;
        let (rc, text) = run_fence_apc(&bin, &rig, i, "status", 1);
        assert_eq!(rc, 0, "console {i} status: {text}");
        assert!(text.contains("Status: ON"), "console {i}: {text}");
        let (rc, text) = run_fence_apc(&bin, &rig, i, "off", 1);
        assert_eq!(rc, 0, "console {i} off: {text}");
        assert_eq!(state.state(1, 1).unwrap(), Some(PowerState::Off));
        let (rc, text) = run_fence_apc(&bin, &rig, i, "status", 1);
        assert_eq!(rc, 2, "console {i} status after off: {text}");
        let (rc, text) = run_fence_apc(&bin, &rig, i, "reboot", 1);
        assert_eq!(rc, 0, "console {i} reboot: {text}");
        assert_eq!(state.state(1, 1).unwrap(), Some(PowerState::On));
        let (rc, text) = run_fence_apc(&bin, &rig, i, "list", 1);
        assert_eq!(rc, 0, "console {i} list: {text}");
        assert!(text.contains("Outlet 8"), "console {i}: {text}");
    }
}

#[tokio::test]
async fn fence_apc_and_fencekit_agree_on_the_same_simulator_and_inputs() {
    if !peers_present() {
        return;
    }
    let Some(bin) = fence_apc() else { return };
    let rig = start_rig(&[("menu", &[]), ("cli", &[])]);
    for i in 0..2 {
        let state = &rig.consoles[i].state;
        let pdu = rig.switch(i, &[]);
        for (outlet, on) in [(2u32, false), (3, true), (4, false)] {
            state.set(1, outlet, on, None).unwrap();
            let (rc, text) = run_fence_apc(&bin, &rig, i, "status", outlet);
            let ours = pdu
                .status(&Plug::Number(outlet), in_secs(30))
                .await
                .unwrap();
            let theirs = match rc {
                0 => PowerState::On,
                2 => PowerState::Off,
                _ => panic!("console {i}: fence_apc status failed: {text}"),
            };
            assert_eq!(ours, theirs, "console {i} outlet {outlet}");
        }
        // The same off by each: both confirm it.
        let (rc, text) = run_fence_apc(&bin, &rig, i, "off", 3);
        assert_eq!(rc, 0, "{text}");
        assert_eq!(
            pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
            PowerState::Off
        );
        let outcome = fence_outlets(rig.switch(i, &[]), &[5], FenceAction::Off, 60).await;
        assert!(outcome.success, "{}", outcome.summary());
        let (rc, text) = run_fence_apc(&bin, &rig, i, "status", 5);
        assert_eq!(rc, 2, "console {i}: fence_apc should read our off: {text}");
    }
}

/// The `apc` plugin's own schema and device, with `transport` chosen by parameters.
fn plugin_device(pairs: &[(String, String)]) -> fencekit_apc::ApcSwitch {
    fencekit_apc::ApcSwitch::from_params(&validated(&fencekit_apc::SCHEMA, pairs)).unwrap()
}

#[tokio::test]
async fn with_snmp_silent_the_fence_goes_through_the_console_fallback() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("cli", &[])]);
    // Nothing answers SNMP on this port; the console is on sshd's.
    let silent_snmp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let ssh_port = rig.sshd().port().to_string();
    let pairs = rig.params(
        0,
        &[
            ("transport", "snmp,ssh"),
            ("ipport", &silent_snmp),
            ("ssh_port", &ssh_port),
        ],
    );
    let device = plugin_device(&pairs);
    let outcome = fence_outlets(device, &[5], FenceAction::Off, 30).await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(
        rig.consoles[0].state.state(1, 5).unwrap(),
        Some(PowerState::Off)
    );
}

/// With `transport=snmp,ssh` the console is held to the address the SNMP agent
/// was tried at: here the agent's name led to 127.0.0.2 (silent), and the console
/// of another PDU answers at 127.0.0.1. Nothing there is switched or read for this
/// PDU's outlet; the fence fails.
#[tokio::test]
async fn the_console_fallback_goes_to_the_pdu_snmp_was_tried_at_only() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("cli", &[])]);
    let silent = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let pairs = rig.params(0, &[("transport", "ssh")]);
    let fencekit_apc::ApcSwitch::Console(console) = plugin_device(&pairs) else {
        panic!("transport=ssh builds the console");
    };
    let agent = fencekit_snmp::Agent::new(
        "127.0.0.2",
        silent.local_addr().unwrap().port(),
        fencekit_snmp::Credentials::Community {
            version: fencekit_snmp::Version::V2c,
            community: fencekit_core::Secret::new("private"),
        },
        Duration::from_millis(300),
    );
    let device = fencekit_apc::ApcSwitch::Fallback {
        snmp: Box::new(fencekit_apc::ApcSnmpSwitch::new(agent, None, None)),
        console,
        snmp_silent: std::sync::atomic::AtomicBool::new(false),
    };
    let outcome = fence_outlets(device, &[4], FenceAction::Off, 10).await;
    assert!(!outcome.success && !outcome.fenced, "{}", outcome.summary());
    assert_eq!(
        rig.consoles[0].state.state(1, 4).unwrap(),
        Some(PowerState::On)
    );
    drop(silent);
}

/// The console alone: `ssh_port` names its port as `ipport` does (it was silently
/// left for 22 once); the two with different values, or `ssh_port` with telnet,
/// are refused before anything is reached.
#[tokio::test]
async fn ssh_port_names_the_console_port_without_snmp_too() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("cli", &[])]);
    let ssh_port = rig.sshd().port().to_string();
    let mut pairs = rig.params(0, &[("transport", "ssh"), ("ssh_port", &ssh_port)]);
    pairs.retain(|(k, _)| k != "ipport");
    let device = plugin_device(&pairs);
    let outcome = fence_outlets(device, &[4], FenceAction::Off, 30).await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(
        rig.consoles[0].state.state(1, 4).unwrap(),
        Some(PowerState::Off)
    );
    for (extra, says) in [
        (
            &[("transport", "ssh"), ("ssh_port", "2222")][..],
            "both name",
        ),
        (&[("telnet", "1"), ("ssh_port", "2222")][..], "telnet"),
    ] {
        let pairs = rig.params(0, extra);
        let refused =
            fencekit_apc::ApcSwitch::from_params(&validated(&fencekit_apc::SCHEMA, &pairs))
                .unwrap_err();
        assert!(refused.to_string().contains(says), "{extra:?}: {refused}");
    }
    assert_eq!(
        rig.consoles[0].state.state(1, 1).unwrap(),
        Some(PowerState::On)
    );
}

#[tokio::test]
async fn secure_1_alone_selects_the_console_as_fence_apc_s_ssh_does() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    let pairs = rig.params(0, &[("secure", "1")]);
    let device = plugin_device(&pairs);
    assert!(matches!(device, fencekit_apc::ApcSwitch::Console(_)));
    assert_eq!(
        device.status(&Plug::Number(2), in_secs(30)).await.unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn two_outlets_with_one_name_are_refused_as_ambiguous_and_neither_is_switched() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[]), ("cli", &[])]);
    for i in 0..2 {
        let state = &rig.consoles[i].state;
        // The two power supplies of one node.
        state.set(1, 2, true, Some("db1")).unwrap();
        state.set(1, 6, true, Some("db1")).unwrap();
        let pdu = rig.switch(i, &[]);
        let err = pdu
            .switch(&Plug::Name("db1".into()), SwitchTo::Off, in_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
        assert_eq!(state.state(1, 2).unwrap(), Some(PowerState::On));
        assert_eq!(state.state(1, 6).unwrap(), Some(PowerState::On));
        // `07` names outlet 7 (fence-agents users write it so).
        pdu.switch(&Plug::parse("07"), SwitchTo::Off, in_secs(30))
            .await
            .unwrap();
        assert_eq!(state.state(1, 7).unwrap(), Some(PowerState::Off));
    }
}
