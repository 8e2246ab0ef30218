//! `stonith-bridge demo`: fences a node fed by two plugs of a simulated PDU and
//! prints every step with its timing and the confirmed result; then shows the same
//! fence failing against a plug that accepts off and stays on. Needs no set-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fencekit_core::fence::{Devices, FenceOptions, Step};
use fencekit_core::sim::{Behaviour, SimSwitch};
use fencekit_core::{FenceAction, FenceTarget, Plug, PowerSwitch, TargetPlug};

use crate::cli::DemoArgs;
use crate::{exit, report};

pub async fn run(args: DemoArgs) -> u8 {
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };
    let pdu = Arc::new(SimSwitch::new(8));
    for (n, name) in [(3, "node1-psu-a"), (4, "node1-psu-b")] {
        pdu.set_name(n, name);
    }
    // The second supply takes a while to read off, as real outlets and BMCs do.
    pdu.set_behaviour(4, Behaviour::Slow(Duration::from_millis(400)));
    let mut devices: Devices = BTreeMap::new();
    devices.insert("pdu-demo".into(), Arc::clone(&pdu) as Arc<dyn PowerSwitch>);
    let target = FenceTarget {
        node: "node1".into(),
        plugs: vec![
            TargetPlug {
                device: "pdu-demo".into(),
                plug: Plug::Number(3),
            },
            TargetPlug {
                device: "pdu-demo".into(),
                plug: Plug::Number(4),
            },
        ],
    };
    let mut options = FenceOptions::default();
    if !args.json {
        options.observer = Some(Arc::new(|step: &Step| println!("{step}")));
    }

    say("fencekit demo: node1 is fed by plugs 3 and 4 of a simulated PDU, pdu-demo.");
    say("Fencing means every plug switched off AND read back off before success.\n");
    let outcome = fencekit_core::fence(&devices, &target, FenceAction::Off, &options).await;
    if args.json {
        println!("{}", report::json(&outcome));
    } else {
        println!();
        print!("RESULT: {}", report::human(&outcome));
    }
    if !outcome.success {
        return exit::FAILED;
    }

    say("\nNow plug 4 accepts \"off\" but stays on (a lying device), with power_timeout 2 s:\n");
    pdu.set_state(3, fencekit_core::PowerState::On);
    pdu.set_state(4, fencekit_core::PowerState::On);
    pdu.set_behaviour(4, Behaviour::Lie);
    options.power_timeout = Duration::from_secs(2);
    let lied = fencekit_core::fence(&devices, &target, FenceAction::Off, &options).await;
    if args.json {
        println!("{}", report::json(&lied));
    } else {
        println!();
        print!("RESULT: {}", report::human(&lied));
        println!("\nfencekit reports this as a failure: the node still has power.");
    }
    if lied.success {
        // The algorithm must never call a lying plug fenced.
        return exit::FAILED;
    }
    exit::OK
}
