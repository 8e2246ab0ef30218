//! End-to-end: `BaytechSwitch` through the REAL OpenSSH `sshd` on 127.0.0.1, with
//! `fencekit-baytech-sim` as the `ForceCommand` of throwaway local users (a strip
//! behind a DS/MMP module with two strips of different models, and a strip alone;
//! healthy and faulty). Needs root (sshd, local users); the peer-missing rule
//! applies.

use std::time::Duration;

use fencekit_baytech::{BaytechSwitch, SCHEMA};
use fencekit_core::{DeviceError, FenceAction, Plug, PowerState, PowerSwitch, SwitchTo};
use fencekit_tests::consoles::{fence_outlets, in_secs, peers_present, validated, ConsoleRig};

const SIM: &str = env!("CARGO_BIN_EXE_fencekit-baytech-sim");

type Rig = ConsoleRig;

/// The console rig with this crate's simulator.
fn start_rig(specs: &[(&str, &[&str])]) -> Rig {
    ConsoleRig::start(SIM, "bt", 2, specs)
}

/// This plugin's device for console `i` of the rig.
trait Switches {
    fn switch(&self, i: usize, extra: &[(&str, &str)]) -> BaytechSwitch;
}

impl Switches for ConsoleRig {
    fn switch(&self, i: usize, extra: &[(&str, &str)]) -> BaytechSwitch {
        switch_from(&self.params(i, extra))
    }
}

fn switch_from(pairs: &[(String, String)]) -> BaytechSwitch {
    BaytechSwitch::from_params(&validated(&SCHEMA, pairs)).unwrap()
}

async fn status_on_off_list(rig: &Rig, i: usize, strip: u32) {
    let pdu = rig.switch(i, &[("strip", &strip.to_string())]);
    let state = &rig.consoles[i].state;
    state.set(strip, 3, true, Some("db-node3")).unwrap();
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::On
    );
    pdu.switch(&Plug::Name("db-node3".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(strip, 3).unwrap(), Some(PowerState::Off));
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::Off
    );
    pdu.switch(&Plug::Number(3), SwitchTo::On, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(strip, 3).unwrap(), Some(PowerState::On));
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
async fn a_strip_behind_a_management_module_reads_switches_and_lists() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("module", &[])]);
    status_on_off_list(&rig, 0, 1).await;
    // Strip 2 has another model, so another prompt: learned, not assumed.
    status_on_off_list(&rig, 0, 2).await;
    // unit:outlet names the strip itself.
    let pdu = rig.switch(0, &[]);
    pdu.switch(&Plug::parse("2:6"), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(
        rig.consoles[0].state.state(2, 6).unwrap(),
        Some(PowerState::Off)
    );
    assert_eq!(
        rig.consoles[0].state.state(1, 6).unwrap(),
        Some(PowerState::On)
    );
}

/// Behind a module, a bare name is looked up on one strip only: without `strip`
/// it is refused (the node's other supply, named alike on strip 2, would stay on
/// while strip 1's was reported fenced); `STRIP:NAME` and `strip=` say where.
#[tokio::test]
async fn a_bare_name_behind_a_management_module_needs_its_strip() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("module", &[])]);
    let state = &rig.consoles[0].state;
    // Make the outlet file (the first session does), then name one supply per strip.
    rig.switch(0, &[]).check(in_secs(30)).await.unwrap();
    state.set(1, 3, true, Some("db1")).unwrap();
    state.set(2, 5, true, Some("db1")).unwrap();
    let pdu = rig.switch(0, &[]);
    let err = pdu
        .switch(&Plug::Name("db1".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("strip=N"), "{err}");
    assert_eq!(state.state(1, 3).unwrap(), Some(PowerState::On));
    assert_eq!(state.state(2, 5).unwrap(), Some(PowerState::On));
    // The listing of strip 1 alone cannot stand for the module's names.
    pdu.list(in_secs(30)).await.unwrap();
    assert!(!pdu.names_complete());
    pdu.switch(&Plug::parse("2:db1"), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(2, 5).unwrap(), Some(PowerState::Off));
    assert_eq!(state.state(1, 3).unwrap(), Some(PowerState::On));
    let pdu = rig.switch(0, &[("strip", "1")]);
    pdu.switch(&Plug::Name("db1".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(1, 3).unwrap(), Some(PowerState::Off));
    assert!(pdu.names_complete());
}

#[tokio::test]
async fn a_strip_without_a_module_reads_switches_and_lists() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("direct", &[])]);
    status_on_off_list(&rig, 0, 1).await;
}

/// An RPC strip that shows its main menu first (`RPC-3 Menu:` ... `Enter
/// Selection>`, as cluster-glue's `baytech` plugin meets it): Outlet Control is
/// chosen, and the outlets are read, switched and listed; a fence is confirmed from
/// the simulator's own state.
#[tokio::test]
async fn a_strip_that_greets_with_its_main_menu_reads_switches_and_lists() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("menu", &[])]);
    status_on_off_list(&rig, 0, 1).await;
    let outcome = fence_outlets(rig.switch(0, &[]), &[6], FenceAction::Off, 60).await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(
        rig.consoles[0].state.state(1, 6).unwrap(),
        Some(PowerState::Off)
    );
}

#[tokio::test]
async fn reboot_through_core_fence_confirms_off_then_on() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("module", &[]), ("direct", &[])]);
    for i in 0..2 {
        let outcome = fence_outlets(rig.switch(i, &[]), &[5], FenceAction::Reboot, 60).await;
        assert!(outcome.success, "{}", outcome.summary());
        assert!(outcome.plugs[0].off_confirmed.is_some());
        assert!(outcome.plugs[0].on_confirmed.is_some());
        assert_eq!(
            rig.consoles[i].state.state(1, 5).unwrap(),
            Some(PowerState::On)
        );
    }
}

#[tokio::test]
async fn faults_fail_the_fence_with_a_clear_error_and_nothing_fenced() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[
        ("module", &["lie"]),
        ("direct", &["stall"]),
        ("module", &["silent"]),
        ("module", &["drop"]),
    ]);
    // The lie shows as "still on" or, when the polls outlast the fence's
    // deadline, as a timeout of the last read; either way the outlet is on.
    let expected: [&[&str]; 4] = [
        &["still on", "timed out"],
        &["timed out"],
        &["timed out"],
        &["Connection lost"],
    ];
    for (i, words) in expected.iter().enumerate() {
        let outcome = fence_outlets(rig.switch(i, &[]), &[4], FenceAction::Off, 8).await;
        assert!(!outcome.success, "console {i}: {}", outcome.summary());
        assert!(!outcome.fenced, "console {i}: {}", outcome.summary());
        let first = outcome
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            words.iter().any(|w| first.contains(w)),
            "console {i}: {first}"
        );
    }
    assert_eq!(
        rig.consoles[0].state.state(1, 4).unwrap(),
        Some(PowerState::On)
    );
}

#[tokio::test]
async fn wrong_password_wrong_host_key_and_a_busy_unit_are_clear_errors() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("module", &[])]);
    let err = rig
        .switch(0, &[("password", "not-the-password")])
        .status(&Plug::Number(1), in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err}");
    let presented = rig.fingerprint();
    let err = rig
        .switch(
            0,
            &[(
                "host_key",
                "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )],
        )
        .status(&Plug::Number(1), in_secs(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&presented), "{err}");
    rig.switch(0, &[("host_key", presented.as_str())])
        .check(in_secs(30))
        .await
        .unwrap();
    let other = fencekit_console::sim::SessionLock::try_take(&rig.consoles[0].session_lock)
        .unwrap()
        .unwrap();
    // A monitor waits for the console until its deadline, then says busy.
    let err = rig.switch(0, &[]).check(in_secs(6)).await.unwrap_err();
    assert!(matches!(err, DeviceError::Busy(_)), "{err}");
    let outcome = fence_outlets(rig.switch(0, &[]), &[1], FenceAction::Off, 4).await;
    assert!(!outcome.fenced, "{}", outcome.summary());
    drop(other);
}

/// A listing (a fence by host name starts with one) and a monitor wait for a
/// console another session holds, as cluster-glue's `baytech` retries its login:
/// the other session ends after a second, and both get through.
#[tokio::test]
async fn a_listing_and_a_monitor_wait_for_a_console_another_session_holds() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("direct", &[])]);
    for what in ["list", "check"] {
        let other = fencekit_console::sim::SessionLock::try_take(&rig.consoles[0].session_lock)
            .unwrap()
            .unwrap();
        let switch = rig.switch(0, &[]);
        let asked = async {
            match what {
                "list" => switch.list(in_secs(20)).await.map(|listed| listed.len()),
                _ => switch.check(in_secs(20)).await.map(|()| 8),
            }
        };
        let release = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(other);
        };
        let (answer, ()) = tokio::join!(asked, release);
        assert_eq!(answer.unwrap(), 8, "{what}");
    }
}

#[tokio::test]
async fn two_fences_on_one_single_session_unit_are_serialised_beside_a_monitor() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("direct", &[])]);
    let a = fence_outlets(rig.switch(0, &[]), &[6], FenceAction::Off, 60);
    let b = fence_outlets(rig.switch(0, &[]), &[7], FenceAction::Off, 60);
    let monitor = rig.switch(0, &[]);
    let watch = async {
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(monitor.list(in_secs(20)).await);
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
    assert_eq!(
        rig.consoles[0].state.state(1, 6).unwrap(),
        Some(PowerState::Off)
    );
    assert_eq!(
        rig.consoles[0].state.state(1, 7).unwrap(),
        Some(PowerState::Off)
    );
}

#[tokio::test]
async fn a_table_that_ran_its_last_row_into_the_one_before_is_no_read_back() {
    if !peers_present() {
        return;
    }
    // Outlet 7 of 8 is the node's; outlet 8 is off. After the (ignored) off, every
    // table shows row 7 with row 8's "Off" and no row 8: the table the strip prints
    // after the command, and every later `Status`.
    let rig = start_rig(&[
        ("direct", &["lie", "splice-last"]),
        ("module", &["lie", "splice-last"]),
    ]);
    for i in 0..2 {
        let state = &rig.consoles[i].state;
        state.set(1, 8, false, None).unwrap();
        let outcome = fence_outlets(rig.switch(i, &[]), &[7], FenceAction::Off, 8).await;
        assert!(!outcome.success, "console {i}: {}", outcome.summary());
        assert!(!outcome.fenced, "console {i}: {}", outcome.summary());
        assert_eq!(state.state(1, 7).unwrap(), Some(PowerState::On));
        let errors = outcome
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        assert!(errors.contains("shows 7 outlets"), "console {i}: {errors}");
    }
}

#[tokio::test]
async fn two_outlets_with_one_name_are_refused_as_ambiguous_and_neither_is_switched() {
    if !peers_present() {
        return;
    }
    let rig = start_rig(&[("module", &[])]);
    let state = &rig.consoles[0].state;
    // The two power supplies of one node, on strip 2.
    state.set(2, 3, true, Some("db1")).unwrap();
    state.set(2, 5, true, Some("db1")).unwrap();
    let pdu = rig.switch(0, &[("strip", "2")]);
    let err = pdu
        .switch(&Plug::Name("db1".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
    assert_eq!(state.state(2, 3).unwrap(), Some(PowerState::On));
    assert_eq!(state.state(2, 5).unwrap(), Some(PowerState::On));
    // Within strip 2 on a unit plug too; `07` names outlet 7 of its strip.
    let err = rig
        .switch(0, &[])
        .switch(&Plug::parse("2:db1"), SwitchTo::Off, in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
    pdu.switch(&Plug::parse("07"), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(2, 7).unwrap(), Some(PowerState::Off));
}
