//! `stonith-bridge demo`: starts two of fencekit's test BMCs on 127.0.0.1 (random
//! ports; real IPMI v2.0 RMCP+ over UDP, cipher suite 17), fences `node1` through
//! the first with the native IPMI client and prints every step with its timing and
//! the confirmed result; then fences `node2`, whose BMC accepts off and stays on,
//! and shows that as a failure. Needs no set-up and talks to nothing but loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fencekit_core::fence::{Devices, FenceOptions, Step};
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{FenceAction, FenceTarget, Plug, PowerSwitch, Secret, TargetPlug};
use fencekit_ipmi::driver::spawn_bmcs;
use fencekit_ipmi::responder::BmcConfig;
use fencekit_ipmi::IpmiSwitch;

use crate::cli::DemoArgs;
use crate::{exit, report};

/// The demo BMCs' user.
const USER: &str = "admin";

/// A fresh password for this run's BMCs, known only to this process.
fn demo_password() -> Secret {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    Secret::new(format!("demo-{:012x}", hasher.finish() & 0xffff_ffff_ffff))
}

/// An `ipmi` device for the BMC at `port`, built from parameters as a
/// configuration file or fence agent would give them.
fn device(port: u16, password: &Secret) -> Result<IpmiSwitch, String> {
    let origin = Origin::new("demo");
    let raw = vec![
        RawParam::text("ip", "127.0.0.1", origin.clone()),
        RawParam::text("ipport", port.to_string(), origin.clone()),
        RawParam::text("username", USER, origin.clone()),
        RawParam::text("password", password.expose(), origin),
    ];
    let params = validate(&[&fencekit_ipmi::SCHEMA], &raw, Unknown::Reject, None)
        .map_err(|e| e.to_string())?
        .params;
    IpmiSwitch::from_params(&params).map_err(|e| e.to_string())
}

fn target(node: &str, device: &str) -> FenceTarget {
    FenceTarget {
        node: node.into(),
        plugs: vec![TargetPlug {
            device: device.into(),
            plug: Plug::Chassis,
        }],
    }
}

pub async fn run(args: DemoArgs) -> u8 {
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };
    let password = demo_password();
    let mut honest = BmcConfig::new(password.expose());
    honest.seed = 1;
    let mut liar = BmcConfig::new(password.expose());
    liar.seed = 2;
    liar.faults.lie_about_off = true;
    let bmcs = match spawn_bmcs(vec![honest, liar]).await {
        Ok(bmcs) => bmcs,
        Err(e) => {
            eprintln!("demo: cannot start the test BMCs on 127.0.0.1: {e}");
            return exit::FAILED;
        }
    };
    let (node1_addr, node2_addr) = (bmcs[0].0, bmcs[1].0);
    // Devices named after their BMC's address, so that every step and error names
    // the host it is about.
    let node1_bmc = format!("bmc-node1@{node1_addr}");
    let node2_bmc = format!("bmc-node2@{node2_addr}");
    let mut devices: Devices = BTreeMap::new();
    for (name, addr) in [(&node1_bmc, node1_addr), (&node2_bmc, node2_addr)] {
        match device(addr.port(), &password) {
            Ok(switch) => {
                devices.insert(name.clone(), Arc::new(switch) as Arc<dyn PowerSwitch>);
            }
            Err(e) => {
                eprintln!("demo: cannot set up {name}: {e}");
                return exit::FAILED;
            }
        }
    }
    let mut options = FenceOptions::default();
    if !args.json {
        options.observer = Some(Arc::new(|step: &Step| println!("{step}")));
    }

    say(&format!(
        "fencekit demo: node1's BMC is a test BMC on {node1_addr} speaking IPMI v2.0 RMCP+ \
         over UDP;\nfencekit offers cipher suite 17, then 3. Fencing means power off \
         accepted AND read back off before success.\n"
    ));
    let outcome = fencekit_core::fence(
        &devices,
        &target("node1", &node1_bmc),
        FenceAction::Off,
        &options,
    )
    .await;
    if args.json {
        println!("{}", report::json(&outcome));
    } else {
        println!();
        print!("RESULT: {}", report::human(&outcome));
    }
    if !outcome.success {
        return exit::FAILED;
    }

    say(&format!(
        "\nnode2's BMC, a test BMC on {node2_addr}, accepts \"off\" but keeps the power on \
         (a lying BMC), with power_timeout 2 s:\n"
    ));
    options.power_timeout = Duration::from_secs(2);
    let lied = fencekit_core::fence(
        &devices,
        &target("node2", &node2_bmc),
        FenceAction::Off,
        &options,
    )
    .await;
    if args.json {
        println!("{}", report::json(&lied));
    } else {
        println!();
        print!("RESULT: {}", report::human(&lied));
        println!("\nfencekit reports this as a failure: node2 still has power.");
    }
    if lied.success {
        // The algorithm must never call a lying BMC's node fenced.
        return exit::FAILED;
    }
    exit::OK
}
