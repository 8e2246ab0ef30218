//! The fence algorithm's behaviour, on the simulated device with paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::power::Plug;
use crate::sim::{Behaviour, SimSwitch};

fn plug(device: &str, n: u32) -> TargetPlug {
    TargetPlug {
        device: device.into(),
        plug: Plug::Number(n),
    }
}

fn node(plugs: Vec<TargetPlug>) -> FenceTarget {
    FenceTarget {
        node: "node1".into(),
        plugs,
    }
}

fn devices(list: &[(&str, &Arc<SimSwitch>)]) -> Devices {
    list.iter()
        .map(|(name, sim)| {
            (
                (*name).to_string(),
                Arc::clone(*sim) as Arc<dyn PowerSwitch>,
            )
        })
        .collect()
}

fn options() -> FenceOptions {
    FenceOptions {
        timeout: Duration::from_secs(60),
        power_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(500),
        ..FenceOptions::default()
    }
}

/// A device whose plug accepts off at once but is read as off only after a while:
/// it records every read, so a test can see success was not claimed before.
#[tokio::test(start_paused = true)]
async fn off_is_not_success_until_every_plug_reads_off() {
    let pdu = Arc::new(SimSwitch::new(2));
    pdu.set_behaviour(1, Behaviour::Slow(Duration::from_secs(3)));
    let steps = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&steps);
    let mut opts = options();
    opts.observer = Some(Arc::new(move |s: &Step| {
        seen.lock().unwrap().push(s.clone());
    }));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-a", 2)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    assert!(outcome.fenced);
    // Plug 1 was read on at least once after off was accepted, and the outcome came
    // only after it read off.
    let steps = steps.lock().unwrap();
    let read_on = steps.iter().any(|s| {
        s.target.as_ref() == Some(&plug("pdu-a", 1))
            && matches!(s.kind, StepKind::Read(PowerState::On))
    });
    assert!(read_on, "plug 1 should have been seen on while going off");
    let confirmed = outcome.plugs[0].off_confirmed.unwrap();
    assert!(confirmed >= Duration::from_secs(3), "{confirmed:?}");
    assert!(outcome.elapsed >= confirmed);
    assert_eq!(pdu.state(1), Some(PowerState::Off));
    assert_eq!(pdu.state(2), Some(PowerState::Off));
}

#[tokio::test(start_paused = true)]
async fn a_lying_plug_fails_at_the_deadline_naming_device_and_plug() {
    let pdu = Arc::new(SimSwitch::new(4));
    pdu.set_behaviour(3, Behaviour::Lie);
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 3)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(!outcome.success);
    assert!(!outcome.fenced);
    let message = outcome.errors[0].to_string();
    assert_eq!(
        message,
        "plug 3 on pdu-a still on 20.0 s after off was accepted"
    );
    assert!(
        outcome.summary().contains("FAILED"),
        "{}",
        outcome.summary()
    );
    assert_eq!(outcome.plugs[0].state, PowerState::On);
}

#[tokio::test(start_paused = true)]
async fn a_slow_plug_that_goes_off_before_the_deadline_succeeds() {
    let pdu = Arc::new(SimSwitch::new(1));
    pdu.set_behaviour(1, Behaviour::Slow(Duration::from_secs(19)));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(outcome.plugs[0].state, PowerState::Off);
}

#[tokio::test(start_paused = true)]
async fn a_plug_reaching_off_exactly_at_power_timeout_still_counts() {
    let pdu = Arc::new(SimSwitch::new(1));
    pdu.set_behaviour(1, Behaviour::Slow(Duration::from_secs(20)));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
}

#[tokio::test(start_paused = true)]
async fn with_two_plugs_no_plug_is_switched_on_before_all_are_confirmed_off() {
    // Dual supplies on two PDUs; the second goes off slowly.
    let pdu_a = Arc::new(SimSwitch::new(4));
    let pdu_b = Arc::new(SimSwitch::new(4));
    pdu_b.set_behaviour(3, Behaviour::Slow(Duration::from_secs(5)));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
        &node(vec![plug("pdu-a", 3), plug("pdu-b", 3)]),
        FenceAction::Reboot,
        &options(),
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    let b_off_confirmed = outcome.plugs[1].off_confirmed.unwrap();
    assert!(b_off_confirmed >= Duration::from_secs(5));
    let first_on = pdu_a
        .received()
        .into_iter()
        .chain(pdu_b.received())
        .filter(|r| r.command == "on")
        .map(|r| r.at)
        .min()
        .unwrap();
    let b_off_at = pdu_b
        .received()
        .iter()
        .find(|r| r.command == "off")
        .unwrap()
        .at
        + Duration::from_secs(5);
    assert!(
        first_on >= b_off_at,
        "a plug went on before pdu-b's plug was off"
    );
    assert_eq!(pdu_a.state(3), Some(PowerState::On));
    // pdu-b's plug is slow both ways: it was told on, and reads on once it gets there.
    assert_eq!(outcome.plugs[1].state, PowerState::On);
}

#[tokio::test(start_paused = true)]
async fn a_failed_off_phase_switches_no_plug_back_on() {
    let pdu_a = Arc::new(SimSwitch::new(2));
    let pdu_b = Arc::new(SimSwitch::new(2));
    pdu_b.set_behaviour(1, Behaviour::Lie);
    let outcome = fence(
        &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-b", 1)]),
        FenceAction::Reboot,
        &options(),
    )
    .await;
    assert!(!outcome.success);
    assert!(!outcome.fenced);
    assert!(pdu_a.received().iter().all(|r| r.command != "on"));
    assert_eq!(pdu_a.state(1), Some(PowerState::Off));
}

#[tokio::test(start_paused = true)]
async fn a_device_error_on_one_plug_is_reported_with_device_and_plug() {
    let pdu_a = Arc::new(SimSwitch::new(2));
    let pdu_b = Arc::new(SimSwitch::new(2));
    pdu_b.set_behaviour(
        2,
        Behaviour::FailSwitch(DeviceError::Refused("outlet 2 is locked".into())),
    );
    let outcome = fence(
        &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
        &node(vec![plug("pdu-a", 2), plug("pdu-b", 2)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(outcome.errors.len(), 1);
    let error = &outcome.errors[0];
    assert_eq!(error.target(), &plug("pdu-b", 2));
    assert_eq!(
        error.to_string(),
        "off plug 2 on pdu-b: refused: outlet 2 is locked"
    );
    // The other plug was still switched off and confirmed.
    assert_eq!(pdu_a.state(2), Some(PowerState::Off));
    assert!(outcome.plugs[0].off_confirmed.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_whole_operation_ends_by_its_deadline_even_if_the_device_never_answers() {
    let bmc = Arc::new(SimSwitch::new(1));
    bmc.set_behaviour(1, Behaviour::Hang);
    let mut opts = options();
    opts.timeout = Duration::from_secs(15);
    let started = Instant::now();
    let outcome = fence(
        &devices(&[("bmc1", &bmc)]),
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(!outcome.success);
    // Paused time: the clock moved exactly as far as the algorithm waited.
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    let message = outcome.errors[0].to_string();
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("plug 1 on bmc1"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_status_read_error_is_retried_until_the_plug_confirms() {
    // The plug refuses reads for a while (a busy device), then answers.
    let pdu = Arc::new(SimSwitch::new(1));
    pdu.set_behaviour(
        1,
        Behaviour::FailStatus(DeviceError::Busy("session in use".into())),
    );
    let switch = Arc::clone(&pdu);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        switch.set_behaviour(1, Behaviour::Obey);
    });
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
}

#[tokio::test(start_paused = true)]
async fn an_unknown_plug_fails_at_once_with_the_device_s_plug_list() {
    let pdu = Arc::new(SimSwitch::new(2));
    let started = Instant::now();
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 9)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(started.elapsed(), Duration::ZERO);
    let message = outcome.errors[0].to_string();
    assert!(message.contains("unknown plug 9"), "{message}");
    assert!(message.contains("1 (outlet-1), 2 (outlet-2)"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn an_unconfigured_device_is_an_error_and_other_plugs_are_still_fenced() {
    let pdu = Arc::new(SimSwitch::new(2));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1), plug("ghost", 1)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(pdu.state(1), Some(PowerState::Off));
    assert!(outcome.errors[0]
        .to_string()
        .contains("no device named ghost"));
}

#[tokio::test(start_paused = true)]
async fn a_reboot_whose_on_phase_fails_is_fenced_but_not_successful() {
    let pdu = Arc::new(SimSwitch::new(1));
    let switch = Arc::clone(&pdu);
    let mut opts = options();
    // Once off is confirmed, the outlet refuses to switch on.
    opts.observer = Some(Arc::new(move |s: &Step| {
        if matches!(s.kind, StepKind::Confirmed(PowerState::Off)) {
            switch.set_behaviour(
                1,
                Behaviour::FailSwitch(DeviceError::Failed("relay stuck".into())),
            );
        }
    }));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(outcome.fenced);
    assert!(!outcome.success);
    assert!(
        outcome
            .summary()
            .contains("fenced (all plugs confirmed off)"),
        "{}",
        outcome.summary()
    );
}

#[tokio::test(start_paused = true)]
async fn cycle_is_used_only_when_asked_and_confirms_power_returns() {
    let bmc = Arc::new(SimSwitch::new(1));
    let mut opts = options();
    let outcome = fence(
        &devices(&[("bmc1", &bmc)]),
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(outcome.success);
    assert!(bmc.received().iter().all(|r| r.command != "cycle"));

    opts.method = Method::Cycle;
    let outcome = fence(
        &devices(&[("bmc1", &bmc)]),
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    assert!(
        outcome.fenced,
        "the simulated cycle's off second should be seen"
    );
    assert_eq!(
        bmc.received()
            .iter()
            .filter(|r| r.command == "cycle")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn cycle_of_a_node_that_is_off_switches_it_on() {
    let bmc = Arc::new(SimSwitch::new(1));
    bmc.set_state(1, PowerState::Off);
    let opts = FenceOptions {
        method: Method::Cycle,
        ..options()
    };
    let outcome = fence(
        &devices(&[("bmc1", &bmc)]),
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(bmc.state(1), Some(PowerState::On));
    assert!(bmc.received().iter().all(|r| r.command != "cycle"));
    // The off was sent and read back before the on: a read made before any command
    // is no fence.
    let commands: Vec<&str> = bmc.received().iter().map(|r| r.command).collect();
    assert_eq!(commands, ["off", "on"], "{}", outcome.summary());
}

#[tokio::test(start_paused = true)]
async fn cycle_of_a_node_that_reads_off_but_refuses_every_command_is_no_fence() {
    // The device says off before anything was sent (it may be wrong about the plug);
    // it then refuses the off. Nothing was read off after a command: not fenced.
    let bmc = Arc::new(SimSwitch::new(1));
    bmc.set_state(1, PowerState::Off);
    bmc.set_behaviour(
        1,
        Behaviour::FailSwitch(DeviceError::Failed("refused".into())),
    );
    let opts = FenceOptions {
        method: Method::Cycle,
        ..options()
    };
    let outcome = fence(
        &devices(&[("bmc1", &bmc)]),
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(!outcome.fenced, "{}", outcome.summary());
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(outcome.plugs[0].off_confirmed.is_none());
}

#[tokio::test(start_paused = true)]
async fn cycle_is_never_used_for_a_node_with_two_plugs() {
    let pdu = Arc::new(SimSwitch::new(2));
    let opts = FenceOptions {
        method: Method::Cycle,
        ..options()
    };
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-a", 2)]),
        FenceAction::Reboot,
        &opts,
    )
    .await;
    assert!(outcome.success);
    assert!(pdu.received().iter().all(|r| r.command != "cycle"));
    assert!(outcome.notes[0].contains("method=cycle not used"));
}

#[tokio::test(start_paused = true)]
async fn status_reads_every_plug_and_aggregates_as_fence_agents_do() {
    let pdu = Arc::new(SimSwitch::new(2));
    pdu.set_state(1, PowerState::Off);
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-a", 2)]),
        FenceAction::Status,
        &options(),
    )
    .await;
    assert!(outcome.success);
    assert_eq!(outcome.plugs[0].state, PowerState::Off);
    assert_eq!(outcome.plugs[1].state, PowerState::On);
    assert_eq!(outcome.aggregate_state(), PowerState::On);
    assert!(pdu.received().is_empty(), "status must switch nothing");
}

#[tokio::test(start_paused = true)]
async fn delay_is_waited_before_off_but_not_before_status() {
    let pdu = Arc::new(SimSwitch::new(1));
    let opts = FenceOptions {
        delay: Duration::from_secs(7),
        ..options()
    };
    let started = Instant::now();
    fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Status,
        &opts,
    )
    .await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(outcome.success);
    assert!(pdu.received()[0].at >= started + Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn plugs_on_different_devices_are_switched_concurrently() {
    let pdu_a = Arc::new(SimSwitch::new(1).with_latency(Duration::from_secs(1)));
    let pdu_b = Arc::new(SimSwitch::new(1).with_latency(Duration::from_secs(1)));
    let started = Instant::now();
    let outcome = fence(
        &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-b", 1)]),
        FenceAction::Off,
        &options(),
    )
    .await;
    assert!(outcome.success);
    // One switch, one read and the final re-read each, on both devices at once:
    // three seconds, not six.
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(pdu_a.received()[0].at, pdu_b.received()[0].at);
}

#[tokio::test]
async fn the_notify_command_sees_the_outcome_and_cannot_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let pdu = Arc::new(SimSwitch::new(1));
    pdu.set_behaviour(1, Behaviour::Lie);
    let opts = FenceOptions {
        power_timeout: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        notify_command: Some(format!(
            "echo \"$FENCEKIT_NODE $FENCEKIT_ACTION $FENCEKIT_SUCCESS $FENCEKIT_FENCED $FENCEKIT_PLUGS\" > {}; exit 0",
            record.display()
        )),
        ..options()
    };
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap().trim(),
        "node1 off 0 0 pdu-a:1=on"
    );
}

#[tokio::test]
async fn a_hanging_notify_command_is_killed_and_the_fence_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // A sleep length no other process runs marks the hook in /proc.
    let mark = crate::child::tests::marked_sleep();
    let pdu = Arc::new(SimSwitch::new(1));
    let opts = FenceOptions {
        notify_command: Some(format!(
            "echo $$ > {}; exec sleep {mark}",
            pid_file.display()
        )),
        notify_timeout: Duration::from_millis(300),
        ..options()
    };
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(outcome.success, "{}", outcome.summary());
    assert!(pid_file.exists(), "the hook never ran");
    // The hook was killed: within moments its process is gone (or a zombie).
    let gone = crate::child::tests::ends_soon(&mark);
    assert!(gone, "the hook outlived its deadline");
}

/// A one-plug device whose reads after a cycle follow a script: `after_cycle(t)` is
/// what the plug reads `t` after the cycle was accepted. Before the cycle it reads on.
struct ScriptedCycle {
    cycled_at: Mutex<Option<Instant>>,
    after_cycle: fn(Duration) -> Result<PowerState, DeviceError>,
}

impl ScriptedCycle {
    fn new(after_cycle: fn(Duration) -> Result<PowerState, DeviceError>) -> Arc<ScriptedCycle> {
        Arc::new(ScriptedCycle {
            cycled_at: Mutex::new(None),
            after_cycle,
        })
    }
}

#[async_trait::async_trait]
impl PowerSwitch for ScriptedCycle {
    async fn status(&self, _plug: &Plug, _deadline: Instant) -> Result<PowerState, DeviceError> {
        match *self.cycled_at.lock().unwrap() {
            None => Ok(PowerState::On),
            Some(at) => (self.after_cycle)(at.elapsed()),
        }
    }

    async fn switch(&self, _: &Plug, _: SwitchTo, _: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("only cycles in this test".into()))
    }

    async fn command(
        &self,
        _: &Plug,
        command: DeviceCommand,
        _: Instant,
    ) -> Result<(), DeviceError> {
        assert_eq!(command, DeviceCommand::Cycle);
        *self.cycled_at.lock().unwrap() = Some(Instant::now());
        Ok(())
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        command == DeviceCommand::Cycle
    }

    async fn list(&self, _: Instant) -> Result<Vec<crate::PlugInfo>, DeviceError> {
        Ok(Vec::new())
    }

    async fn check(&self, _: Instant) -> Result<(), DeviceError> {
        Ok(())
    }
}

fn cycle_options() -> FenceOptions {
    FenceOptions {
        method: Method::Cycle,
        power_timeout: Duration::from_secs(2),
        ..options()
    }
}

async fn cycle_on(device: Arc<dyn PowerSwitch>, opts: &FenceOptions) -> Outcome {
    let devices: Devices = [("bmc1".to_string(), device)].into_iter().collect();
    fence(
        &devices,
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Reboot,
        opts,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_cycle_accepted_while_the_plug_never_reads_off_fails_naming_device_and_plug() {
    let bmc = Arc::new(SimSwitch::new(1));
    bmc.set_behaviour(1, Behaviour::Lie);
    let started = Instant::now();
    let outcome = cycle_on(bmc.clone(), &cycle_options()).await;
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(!outcome.fenced);
    assert_eq!(outcome.plugs[0].off_confirmed, None);
    let said = outcome.summary();
    assert!(
        said.contains("plug 1 on bmc1: cycle accepted but power never read off within 2.0 s"),
        "{said}"
    );
    assert!(said.contains("may not have lost power"), "{said}");
    // By power_timeout after the cycle, plus one last read.
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        bmc.state(1),
        Some(PowerState::On),
        "the oracle: it never went off"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_that_reads_pending_until_power_is_back_is_not_a_fence() {
    // An APC outlet's reboot: "command pending" (unknown) all through, then on.
    let pdu = ScriptedCycle::new(|t| {
        Ok(if t < Duration::from_secs(1) {
            PowerState::Unknown
        } else {
            PowerState::On
        })
    });
    let outcome = cycle_on(pdu, &cycle_options()).await;
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(!outcome.fenced);
    assert!(
        outcome.summary().contains("never read off"),
        "{}",
        outcome.summary()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_whose_reads_fail_after_acceptance_is_not_a_fence() {
    let bmc = ScriptedCycle::new(|_| Err(DeviceError::Busy("session lost".into())));
    let started = Instant::now();
    let outcome = cycle_on(bmc, &cycle_options()).await;
    assert!(!outcome.success);
    assert!(!outcome.fenced);
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_read_off_that_never_comes_back_on_is_fenced_but_not_successful() {
    let bmc = ScriptedCycle::new(|_| Ok(PowerState::Off));
    let outcome = cycle_on(bmc, &cycle_options()).await;
    assert!(outcome.fenced, "{}", outcome.summary());
    assert!(!outcome.success);
    assert!(outcome.plugs[0].off_confirmed.is_some());
    assert_eq!(outcome.plugs[0].on_confirmed, None);
}

#[tokio::test(start_paused = true)]
async fn a_cycle_past_the_whole_deadline_ends_by_it_unfenced() {
    let bmc = ScriptedCycle::new(|_| Ok(PowerState::On));
    let opts = FenceOptions {
        timeout: Duration::from_secs(1),
        power_timeout: Duration::from_secs(20),
        ..cycle_options()
    };
    let started = Instant::now();
    let outcome = cycle_on(bmc, &opts).await;
    assert!(!outcome.success && !outcome.fenced);
    assert!(
        started.elapsed() <= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_without_plugs_is_never_fenced_and_its_power_is_unknown() {
    let pdu = Arc::new(SimSwitch::new(1));
    for action in [FenceAction::Off, FenceAction::Reboot, FenceAction::Status] {
        let outcome = fence(
            &devices(&[("pdu-a", &pdu)]),
            &node(vec![]),
            action,
            &options(),
        )
        .await;
        assert!(!outcome.success, "{action}: {}", outcome.summary());
        assert!(!outcome.fenced, "{action}");
        assert_eq!(outcome.aggregate_state(), PowerState::Unknown);
        assert!(
            outcome.summary().contains("no plugs"),
            "{}",
            outcome.summary()
        );
    }
}

#[tokio::test]
async fn the_notify_hook_of_a_node_without_plugs_sees_unknown_power() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let opts = FenceOptions {
        notify_command: Some(format!(
            "echo \"$FENCEKIT_SUCCESS $FENCEKIT_FENCED $FENCEKIT_STATE\" > {}",
            record.display()
        )),
        ..options()
    };
    let pdu = Arc::new(SimSwitch::new(1));
    fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&record).unwrap().trim(),
        "0 0 unknown"
    );
}

#[tokio::test(start_paused = true)]
async fn with_two_devices_one_lying_nothing_is_switched_back_on() {
    let honest = Arc::new(SimSwitch::new(1));
    let liar = Arc::new(SimSwitch::new(1));
    liar.set_behaviour(1, Behaviour::Lie);
    let outcome = fence(
        &devices(&[("pdu-a", &honest), ("pdu-b", &liar)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-b", 1)]),
        FenceAction::Reboot,
        &options(),
    )
    .await;
    assert!(!outcome.success && !outcome.fenced, "{}", outcome.summary());
    assert_eq!(
        honest.state(1),
        Some(PowerState::Off),
        "the honest plug stays off"
    );
    assert!(honest.received().iter().all(|r| r.command != "on"));
}

#[tokio::test]
async fn the_notify_hook_sees_the_outcome_and_no_secret_read_from_the_environment() {
    // As a `password_env = "..."` parameter reads it.
    let name = "FENCEKIT_TEST_NOTIFY_PASSWORD";
    std::env::set_var(name, "notify-pw-5d2e9a");
    let password = crate::Secret::from_env(name).unwrap();
    assert_eq!(password.expose(), "notify-pw-5d2e9a");
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("env");
    let opts = FenceOptions {
        notify_command: Some(format!("env > {}", record.display())),
        ..options()
    };
    let pdu = Arc::new(SimSwitch::new(1));
    let outcome = fence(
        &devices(&[("pdu-a", &pdu)]),
        &node(vec![plug("pdu-a", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(outcome.success);
    let env = std::fs::read_to_string(&record).unwrap();
    assert!(env.contains("FENCEKIT_FENCED=1"), "{env}");
    assert!(
        !env.contains("notify-pw-5d2e9a"),
        "the hook saw the password"
    );
    assert!(!env.contains(name), "the hook saw the password's variable");
}

/// Two plugs, one slow: the fast one is confirmed off, then switched back on (by a
/// hand, another agent) while the slow one is still going off. The node is not
/// fenced, and the reboot does not switch anything on.
#[tokio::test(start_paused = true)]
async fn a_plug_switched_back_on_while_another_is_still_going_off_is_not_fenced() {
    for action in [FenceAction::Off, FenceAction::Reboot] {
        let pdu_a = Arc::new(SimSwitch::new(1));
        let pdu_b = Arc::new(SimSwitch::new(1));
        pdu_b.set_behaviour(1, Behaviour::Slow(Duration::from_secs(3)));
        let meddler = Arc::clone(&pdu_a);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            meddler.set_state(1, PowerState::On);
        });
        let outcome = fence(
            &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
            &node(vec![plug("pdu-a", 1), plug("pdu-b", 1)]),
            action,
            &options(),
        )
        .await;
        assert!(
            !outcome.fenced && !outcome.success,
            "{action}: {}",
            outcome.summary()
        );
        assert!(
            outcome
                .summary()
                .contains("again after it was confirmed off"),
            "{action}: {}",
            outcome.summary()
        );
        assert_eq!(
            pdu_b.state(1),
            Some(PowerState::Off),
            "{action}: nothing switched back on"
        );
    }
}

/// The same for on: two plugs, one slow; the fast one is confirmed on, then
/// switched off again while the slow one is still coming on. Not reported on.
#[tokio::test(start_paused = true)]
async fn a_plug_switched_off_while_another_is_still_coming_on_is_not_reported_on() {
    let pdu_a = Arc::new(SimSwitch::new(1));
    let pdu_b = Arc::new(SimSwitch::new(1));
    pdu_a.set_state(1, PowerState::Off);
    pdu_b.set_state(1, PowerState::Off);
    pdu_b.set_behaviour(1, Behaviour::Slow(Duration::from_secs(3)));
    let meddler = Arc::clone(&pdu_a);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        meddler.set_state(1, PowerState::Off);
    });
    let outcome = fence(
        &devices(&[("pdu-a", &pdu_a), ("pdu-b", &pdu_b)]),
        &node(vec![plug("pdu-a", 1), plug("pdu-b", 1)]),
        FenceAction::On,
        &options(),
    )
    .await;
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(
        outcome
            .summary()
            .contains("again after it was confirmed on"),
        "{}",
        outcome.summary()
    );
}

/// A one-plug device that takes off and keeps reading on, until its reads start
/// hanging one second after the off.
struct OnThenSilent {
    off_at: Mutex<Option<Instant>>,
    /// Silent as a device with its own time limit: "no answer" at the deadline.
    own_limit: bool,
}

#[async_trait::async_trait]
impl PowerSwitch for OnThenSilent {
    async fn status(&self, _plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let off_at = *self.off_at.lock().unwrap();
        if off_at.is_some_and(|at| at.elapsed() >= Duration::from_secs(1)) {
            if self.own_limit {
                // As an SNMP read does: silence until the deadline is "no answer".
                tokio::time::sleep_until(deadline).await;
                return Err(DeviceError::NoAnswer {
                    endpoint: "pdu:161".into(),
                    detail: "no SNMP answer from pdu:161 within 0.0 s (0 requests sent); \
                             check `community`"
                        .into(),
                });
            }
            std::future::pending::<()>().await;
        }
        Ok(PowerState::On)
    }

    async fn switch(&self, _: &Plug, _: SwitchTo, _: Instant) -> Result<(), DeviceError> {
        *self.off_at.lock().unwrap() = Some(Instant::now());
        Ok(())
    }

    async fn list(&self, _: Instant) -> Result<Vec<crate::PlugInfo>, DeviceError> {
        Ok(Vec::new())
    }

    async fn check(&self, _: Instant) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// An off of plug 1 of `device` whose power_timeout is as long as the whole
/// operation (5 s): the last read has no time of its own.
async fn off_with_no_time_for_a_last_read(device: Arc<dyn PowerSwitch>) -> Outcome {
    let devices: Devices = [("dev".to_string(), device)].into_iter().collect();
    let opts = FenceOptions {
        timeout: Duration::from_secs(5),
        power_timeout: Duration::from_secs(5),
        ..options()
    };
    fence(
        &devices,
        &node(vec![plug("dev", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_last_read_cut_off_by_the_deadline_reports_the_state_the_reads_before_it_saw() {
    // Cut off by fencekit's deadline, or by the device's own time limit at it.
    for own_limit in [false, true] {
        let device: Arc<dyn PowerSwitch> = Arc::new(OnThenSilent {
            off_at: Mutex::new(None),
            own_limit,
        });
        let outcome = off_with_no_time_for_a_last_read(device).await;
        assert!(!outcome.success, "{}", outcome.summary());
        let said = outcome.summary();
        assert!(
            said.contains("still on") && !said.contains("community"),
            "own limit {own_limit}: {said}"
        );
    }
}

/// A one-plug device that takes off, then answers every read with a garbled
/// listing for a second, and then not at all.
struct GarbledThenSilent {
    off_at: Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl PowerSwitch for GarbledThenSilent {
    async fn status(&self, _plug: &Plug, _deadline: Instant) -> Result<PowerState, DeviceError> {
        let off_at = *self.off_at.lock().unwrap();
        match off_at {
            None => Ok(PowerState::On),
            Some(at) if at.elapsed() < Duration::from_secs(1) => Err(DeviceError::Protocol(
                "the listing shows 7 outlets where an earlier one showed 8".into(),
            )),
            Some(_) => std::future::pending().await,
        }
    }

    async fn switch(&self, _: &Plug, _: SwitchTo, _: Instant) -> Result<(), DeviceError> {
        *self.off_at.lock().unwrap() = Some(Instant::now());
        Ok(())
    }

    async fn list(&self, _: Instant) -> Result<Vec<crate::PlugInfo>, DeviceError> {
        Ok(Vec::new())
    }

    async fn check(&self, _: Instant) -> Result<(), DeviceError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn reads_that_failed_until_the_deadline_cut_the_last_short_are_reported_by_their_error() {
    let device: Arc<dyn PowerSwitch> = Arc::new(GarbledThenSilent {
        off_at: Mutex::new(None),
    });
    let outcome = off_with_no_time_for_a_last_read(device).await;
    assert!(!outcome.success && !outcome.fenced, "{}", outcome.summary());
    let error = &outcome.errors[0];
    assert!(matches!(error, FenceError::Unread { .. }), "{error}");
    assert!(error.is_timeout(), "{error}");
    assert!(error.to_string().contains("shows 7 outlets"), "{error}");
}

/// The simulated device as another kind: a fabric switch (its plugs taken as switch
/// ports) or a power strip that holds its outlets off in a reboot.
struct AsKind {
    sim: Arc<SimSwitch>,
    fabric: bool,
    least_off: Duration,
}

impl AsKind {
    fn fabric(sim: &Arc<SimSwitch>) -> Arc<dyn PowerSwitch> {
        Arc::new(AsKind {
            sim: Arc::clone(sim),
            fabric: true,
            least_off: Duration::ZERO,
        })
    }

    fn strip(sim: &Arc<SimSwitch>) -> Arc<dyn PowerSwitch> {
        Arc::new(AsKind {
            sim: Arc::clone(sim),
            fabric: false,
            least_off: crate::switch::OUTLET_LEAST_OFF,
        })
    }
}

#[async_trait::async_trait]
impl PowerSwitch for AsKind {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        self.sim.status(plug, deadline).await
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.sim.switch(plug, to, deadline).await
    }

    fn fabric(&self) -> bool {
        self.fabric
    }

    fn least_off(&self) -> Duration {
        self.least_off
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<crate::PlugInfo>, DeviceError> {
        self.sim.list(deadline).await
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        self.sim.check(deadline).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_with_a_port_on_a_fabric_device_is_never_rebooted_and_nothing_is_switched() {
    let pdu = Arc::new(SimSwitch::new(1));
    let switch = Arc::new(SimSwitch::new(1));
    let mut devices = devices(&[("pdu-a", &pdu)]);
    devices.insert("switch-a".into(), AsKind::fabric(&switch));
    let target = node(vec![plug("pdu-a", 1), plug("switch-a", 1)]);
    let outcome = fence(&devices, &target, FenceAction::Reboot, &options()).await;
    assert!(!outcome.success && !outcome.fenced, "{}", outcome.summary());
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.to_string().contains("fabric")),
        "{:?}",
        outcome.errors
    );
    assert_eq!(pdu.state(1), Some(PowerState::On));
    assert_eq!(switch.state(1), Some(PowerState::On));

    // Off and on go through: off fences, on lets the node back.
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert!(outcome.success && outcome.fenced, "{}", outcome.summary());
    assert_eq!(switch.state(1), Some(PowerState::Off));
    let outcome = fence(&devices, &target, FenceAction::On, &options()).await;
    assert!(outcome.success, "{}", outcome.summary());
    assert_eq!(switch.state(1), Some(PowerState::On));
}

/// A device whose read blocks its thread past the deadline and then answers off: the
/// answer is ready the first time it is looked at, but late.
struct LateOff;

#[async_trait::async_trait]
impl PowerSwitch for LateOff {
    async fn status(&self, _plug: &Plug, _deadline: Instant) -> Result<PowerState, DeviceError> {
        std::thread::sleep(std::time::Duration::from_millis(120));
        Ok(PowerState::Off)
    }

    async fn switch(&self, _: &Plug, _: SwitchTo, _: Instant) -> Result<(), DeviceError> {
        Ok(())
    }

    async fn list(&self, _: Instant) -> Result<Vec<crate::PlugInfo>, DeviceError> {
        Ok(Vec::new())
    }

    async fn check(&self, _: Instant) -> Result<(), DeviceError> {
        Ok(())
    }
}

#[tokio::test]
async fn an_off_read_back_after_the_deadline_does_not_confirm_the_fence() {
    let device: Arc<dyn PowerSwitch> = Arc::new(LateOff);
    let devices: Devices = [("bmc1".to_string(), device)].into_iter().collect();
    let opts = FenceOptions {
        timeout: Duration::from_millis(50),
        power_timeout: Duration::from_millis(50),
        power_wait: Duration::ZERO,
        ..options()
    };
    let outcome = fence(
        &devices,
        &node(vec![plug("bmc1", 1)]),
        FenceAction::Off,
        &opts,
    )
    .await;
    assert!(!outcome.success, "{}", outcome.summary());
    assert!(!outcome.fenced, "{}", outcome.summary());
}

#[tokio::test(start_paused = true)]
async fn a_reboot_keeps_a_strips_outlets_off_for_its_least_off_time_or_reboot_wait_if_longer() {
    for (reboot_wait, held) in [
        (Duration::ZERO, crate::switch::OUTLET_LEAST_OFF),
        (Duration::from_secs(3), Duration::from_secs(3)),
    ] {
        let sim = Arc::new(SimSwitch::new(2));
        let devices: Devices = [("pdu-a".to_string(), AsKind::strip(&sim))]
            .into_iter()
            .collect();
        let mut opts = options();
        opts.reboot_wait = reboot_wait;
        let outcome = fence(
            &devices,
            &node(vec![plug("pdu-a", 1), plug("pdu-a", 2)]),
            FenceAction::Reboot,
            &opts,
        )
        .await;
        assert!(outcome.success, "{}", outcome.summary());
        let received = sim.received();
        let last_off = received
            .iter()
            .filter(|r| r.command == "off")
            .map(|r| r.at)
            .max()
            .unwrap();
        let first_on = received
            .iter()
            .filter(|r| r.command == "on")
            .map(|r| r.at)
            .min()
            .unwrap();
        assert!(first_on - last_off >= held, "{:?}", first_on - last_off);
    }
    // A BMC (the sim here) reads the machine's own power: no hold of its own.
    let bmc = Arc::new(SimSwitch::new(1));
    let outcome = fence(
        &devices(&[("bmc", &bmc)]),
        &node(vec![plug("bmc", 1)]),
        FenceAction::Reboot,
        &options(),
    )
    .await;
    assert!(outcome.success);
    let received = bmc.received();
    assert!(received[1].at - received[0].at < crate::switch::OUTLET_LEAST_OFF);
}
