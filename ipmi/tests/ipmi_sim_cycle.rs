//! `IpmiSwitch`'s power cycle against OpenIPMI's `ipmi_sim` on loopback: its
//! cycle runs `set power 0` at once and powers on again about a second later
//! (its own timer), so the off phase can be read. The cycle reads the chassis in
//! its own session, so the fence algorithm sees that off phase, and a cycle is
//! confirmed off, then on, by reads: never assumed.

use std::sync::Arc;
use std::time::Duration;

use fencekit_core::fence::Devices;
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{
    fence, FenceAction, FenceOptions, FenceTarget, Instant, Method, Plug, PowerState, TargetPlug,
};
use fencekit_ipmi::{IpmiSwitch, SCHEMA};
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::peers;

fn switch_for(sim: &IpmiSim) -> IpmiSwitch {
    let options = IpmiSimOptions::default();
    let port = sim.port().to_string();
    let raw: Vec<RawParam> = [
        ("ip", "127.0.0.1"),
        ("ipport", port.as_str()),
        ("username", options.user.as_str()),
        ("password", options.password.as_str()),
        ("cipher", "3"),
    ]
    .iter()
    .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
    .collect();
    let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    IpmiSwitch::from_params(&params).unwrap()
}

async fn cycle(sim: &IpmiSim) -> fencekit_core::Outcome {
    let mut devices = Devices::new();
    devices.insert("bmc1".into(), Arc::new(switch_for(sim)) as _);
    let target = FenceTarget {
        node: "node1".into(),
        plugs: vec![TargetPlug {
            device: "bmc1".into(),
            plug: Plug::Chassis,
        }],
    };
    let options = FenceOptions {
        timeout: Duration::from_secs(20),
        power_timeout: Duration::from_secs(8),
        method: Method::Cycle,
        ..FenceOptions::default()
    };
    fence(&devices, &target, FenceAction::Reboot, &options).await
}

#[tokio::test]
async fn an_ipmi_sim_cycle_is_read_off_and_then_on() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let outcome = cycle(&sim).await;
    assert!(outcome.success && outcome.fenced, "{}", outcome.summary());
    assert!(outcome.plugs[0].off_confirmed.is_some(), "{outcome:?}");
    assert!(outcome.plugs[0].on_confirmed.is_some(), "{outcome:?}");
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    // The oracle: ipmi_sim's power program went off, then on again.
    let log = sim.call_log().unwrap();
    let sets: Vec<&String> = log.iter().filter(|l| l.contains("set ")).collect();
    assert!(
        sets.len() == 2 && sets[0].ends_with("set power 0") && sets[1].ends_with("set power 1"),
        "{log:?}"
    );
    assert!(sim.power_state().unwrap());
}

#[tokio::test]
async fn the_state_read_in_the_cycle_s_session_is_the_off_phase() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let switch = switch_for(&sim);
    let soon = || Instant::now() + Duration::from_secs(10);
    use fencekit_core::{DeviceCommand, PowerSwitch};
    switch
        .command(&Plug::Chassis, DeviceCommand::Cycle, soon())
        .await
        .unwrap();
    // Read in the cycle's own session, right after it was accepted.
    assert_eq!(
        switch.status(&Plug::Chassis, soon()).await.unwrap(),
        PowerState::Off
    );
}

#[tokio::test]
async fn a_lying_ipmi_sim_never_reads_off_so_the_cycle_is_not_confirmed() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    // The lying power program accepts power off and stays on: ipmi_sim's cycle
    // (`set power 0`) never shows off.
    let sim = IpmiSim::start(IpmiSimOptions {
        power: PowerProgram::Lie,
        ..IpmiSimOptions::default()
    })
    .unwrap();
    let outcome = cycle(&sim).await;
    // Core's rule: a cycle succeeds only when the plug was read off after it was
    // accepted.
    assert!(!outcome.success && !outcome.fenced, "{}", outcome.summary());
    assert!(outcome.summary().contains("bmc1"), "{}", outcome.summary());
    assert!(sim.power_state().unwrap());
}
