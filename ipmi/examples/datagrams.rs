//! Datagrams per fence: status, off (accepted and confirmed) and reboot, each run
//! with core's fence algorithm through `IpmiSwitch` against the test BMC (the
//! responder) on loopback, over RMCP+ and over IPMI 1.5, with the BMC answering
//! at once and slowly. The count is the BMC's own (datagrams it received plus
//! those it sent), so it is what crossed the wire, retransmissions included.
//!
//! ```text
//! datagrams [RUNS]      prints one table row per protocol, latency and action:
//!                       the median datagram count and wall time of RUNS runs
//! ```
//!
//! Used by `bench/ipmi-datagrams.sh`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fencekit_core::fence::{Devices, FenceOptions};
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{FenceAction, FenceTarget, Plug, PowerState, PowerSwitch, TargetPlug};
use fencekit_ipmi::driver::spawn_bmcs;
use fencekit_ipmi::responder::{Bmc, BmcConfig};
use fencekit_ipmi::v15::AuthType;
use fencekit_ipmi::IpmiSwitch;

const PASSWORD: &str = "bench-password";

/// What one row measures: a name, the switch's options, and the BMC's setup.
struct Setup {
    name: &'static str,
    options: &'static [(&'static str, &'static str)],
    bmc_suites: &'static [u8],
    v15: bool,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "rmcp+ 17",
        options: &[],
        bmc_suites: &[3, 17],
        v15: false,
    },
    Setup {
        name: "rmcp+ 17->3",
        options: &[],
        bmc_suites: &[3],
        v15: false,
    },
    Setup {
        name: "ipmi1.5 md5",
        options: &[("lanplus", "0"), ("auth", "md5")],
        bmc_suites: &[3, 17],
        v15: true,
    },
];

const LATENCIES_MS: [u64; 3] = [0, 300, 700];

fn switch(addr: SocketAddr, setup: &Setup) -> Option<IpmiSwitch> {
    let origin = Origin::new("datagrams");
    let mut raw = vec![
        RawParam::text("ip", addr.ip().to_string(), origin.clone()),
        RawParam::text("ipport", addr.port().to_string(), origin.clone()),
        RawParam::text("username", "admin", origin.clone()),
        RawParam::text("password", PASSWORD, origin.clone()),
        // Every run pays for the suite fallback, if any: no memory between runs.
        RawParam::text("suite_memory_dir", "", origin.clone()),
    ];
    for (key, value) in setup.options {
        raw.push(RawParam::text(*key, *value, origin.clone()));
    }
    let params = validate(&[&fencekit_ipmi::SCHEMA], &raw, Unknown::Reject, None)
        .ok()?
        .params;
    IpmiSwitch::from_params(&params).ok()
}

/// One fence: its datagram count and wall time, or why it failed.
async fn fence_once(
    bmc: &Arc<Mutex<Bmc>>,
    addr: SocketAddr,
    setup: &Setup,
    action: FenceAction,
) -> Result<(u64, Duration), String> {
    if let Ok(mut b) = bmc.lock() {
        b.set_power(PowerState::On);
    }
    let before = bmc
        .lock()
        .map(|b| b.datagrams())
        .map_err(|e| e.to_string())?;
    let sw = switch(addr, setup).ok_or("bad switch options")?;
    let mut devices: Devices = BTreeMap::new();
    devices.insert("bmc".into(), Arc::new(sw) as Arc<dyn PowerSwitch>);
    let target = FenceTarget {
        node: "node1".into(),
        plugs: vec![TargetPlug {
            device: "bmc".into(),
            plug: Plug::Chassis,
        }],
    };
    let options = FenceOptions {
        timeout: Duration::from_secs(30),
        ..FenceOptions::default()
    };
    let started = std::time::Instant::now();
    let outcome = fencekit_core::fence(&devices, &target, action, &options).await;
    let elapsed = started.elapsed();
    // Let a Close Session and its answer finish before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = bmc
        .lock()
        .map(|b| b.datagrams())
        .map_err(|e| e.to_string())?;
    let want = match action {
        FenceAction::Off => PowerState::Off,
        _ => PowerState::On,
    };
    let power = bmc.lock().map(|b| b.power()).map_err(|e| e.to_string())?;
    if action != FenceAction::Status && (!outcome.success || power != want) {
        return Err(format!(
            "{action:?} failed: {outcome:?}, BMC reads {power:?}"
        ));
    }
    Ok(((after.0 - before.0) + (after.1 - before.1), elapsed))
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> Option<T> {
    values.sort();
    values.get(values.len() / 2).copied()
}

async fn measure(runs: usize) -> Result<(), String> {
    println!(
        "{:<13} {:>10} {:<7} {:>10} {:>10}",
        "protocol", "latency ms", "action", "datagrams", "median ms"
    );
    for setup in &SETUPS {
        for latency in LATENCIES_MS {
            let mut config = BmcConfig::new(PASSWORD);
            config.suites = setup.bmc_suites.to_vec();
            config.faults.reply_delay = Duration::from_millis(latency);
            if setup.v15 {
                config.v15_auths = vec![AuthType::Md5];
            }
            let (addr, bmc) = spawn_bmcs(vec![config])
                .await
                .map_err(|e| e.to_string())?
                .remove(0);
            for (name, action) in [
                ("status", FenceAction::Status),
                ("off", FenceAction::Off),
                ("reboot", FenceAction::Reboot),
            ] {
                let mut counts = Vec::new();
                let mut times = Vec::new();
                for _ in 0..runs {
                    let (count, time) = fence_once(&bmc, addr, setup, action).await?;
                    counts.push(count);
                    times.push(time);
                }
                let count = median(counts).unwrap_or(0);
                let time = median(times).unwrap_or_default();
                println!(
                    "{:<13} {:>10} {:<7} {:>10} {:>10.1}",
                    setup.name,
                    latency,
                    name,
                    count,
                    time.as_secs_f64() * 1000.0
                );
            }
        }
    }
    Ok(())
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("datagrams: cannot start the runtime: {e}");
            std::process::exit(1)
        });
    if let Err(e) = runtime.block_on(measure(runs)) {
        eprintln!("datagrams: {e}");
        std::process::exit(1)
    }
}
