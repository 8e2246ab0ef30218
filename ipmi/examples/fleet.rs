//! Fleet benchmark: many BMCs driven from one process over one UDP socket.
//!
//! ```text
//! fleet serve N PORT_FILE          N test BMCs (the responder) on 127.0.0.1, one
//!                                  socket each; writes their ports to PORT_FILE
//!                                  and serves until killed
//! fleet status|off HOST_FILE       reads the password from the first line of stdin
//!                                  and `host:port` lines from HOST_FILE; reads the
//!                                  power of every BMC at once (status), or fences
//!                                  every one with core's algorithm (off: accepted
//!                                  and confirmed off); prints counts and time
//! ```
//!
//! Used by `bench/ipmi-fleet.sh`, which also runs `ipmipower` against ipmi_sims.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fencekit_core::fence::{Devices, FenceOptions};
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{
    FenceAction, FenceTarget, Instant, Plug, PowerState, PowerSwitch, Secret, TargetPlug,
};
use fencekit_ipmi::driver::{spawn_bmcs, Driver};
use fencekit_ipmi::responder::BmcConfig;
use fencekit_ipmi::IpmiSwitch;

fn usage() -> ! {
    eprintln!("usage: fleet serve N PORT_FILE | fleet status|off HOST_FILE (password on stdin)");
    std::process::exit(2)
}

fn read_password() -> Secret {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim().is_empty() {
        eprintln!("fleet: the password must be the first line of stdin");
        std::process::exit(2)
    }
    Secret::new(line.trim_end_matches(['\r', '\n']))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("fleet: cannot start the runtime: {e}");
            std::process::exit(1)
        });
    let code = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", n, port_file] => {
            let n: usize = n.parse().unwrap_or_else(|_| usage());
            runtime.block_on(serve(n, port_file))
        }
        ["status", host_file] => runtime.block_on(drive(false, host_file)),
        ["off", host_file] => runtime.block_on(drive(true, host_file)),
        _ => usage(),
    };
    std::process::exit(code)
}

async fn serve(n: usize, port_file: &str) -> i32 {
    let password = read_password();
    let configs = (0..n)
        .map(|i| {
            let mut config = BmcConfig::new(password.expose());
            config.seed = i as u64 + 1;
            config
        })
        .collect();
    let bmcs = match spawn_bmcs(configs).await {
        Ok(bmcs) => bmcs,
        Err(e) => {
            eprintln!("fleet: cannot start {n} BMCs: {e}");
            return 1;
        }
    };
    let ports: String = bmcs.iter().map(|(a, _)| format!("{a}\n")).collect();
    let scratch = format!("{port_file}.new");
    if let Err(e) =
        std::fs::write(&scratch, ports).and_then(|()| std::fs::rename(&scratch, port_file))
    {
        eprintln!("fleet: cannot write {port_file}: {e}");
        return 1;
    }
    std::future::pending::<()>().await;
    0
}

fn switch(addr: SocketAddr, password: &Secret, driver: &Driver) -> Option<IpmiSwitch> {
    let origin = Origin::new("fleet");
    let raw = vec![
        RawParam::text("ip", addr.ip().to_string(), origin.clone()),
        RawParam::text("ipport", addr.port().to_string(), origin.clone()),
        RawParam::text("username", "admin", origin.clone()),
        RawParam::text("password", password.expose(), origin.clone()),
        // A fleet of loopback BMCs: nothing worth remembering between runs.
        RawParam::text("suite_memory_dir", "", origin),
    ];
    let params = validate(&[&fencekit_ipmi::SCHEMA], &raw, Unknown::Reject, None)
        .ok()?
        .params;
    Some(
        IpmiSwitch::from_params(&params)
            .ok()?
            .with_driver(driver.clone()),
    )
}

async fn drive(off: bool, host_file: &str) -> i32 {
    let password = read_password();
    let text = std::fs::read_to_string(host_file).unwrap_or_else(|e| {
        eprintln!("fleet: cannot read {host_file}: {e}");
        std::process::exit(2)
    });
    let addrs: Vec<SocketAddr> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let driver = match Driver::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fleet: cannot bind: {e}");
            return 1;
        }
    };
    let mut devices: Devices = BTreeMap::new();
    for (i, addr) in addrs.iter().enumerate() {
        let Some(sw) = switch(*addr, &password, &driver) else {
            eprintln!("fleet: bad BMC {addr}");
            return 2;
        };
        devices.insert(format!("bmc{i}"), Arc::new(sw) as Arc<dyn PowerSwitch>);
    }
    let devices = Arc::new(devices);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..addrs.len() {
        let devices = Arc::clone(&devices);
        tasks.spawn(async move {
            let name = format!("bmc{i}");
            if off {
                let target = FenceTarget {
                    node: format!("node{i}"),
                    plugs: vec![TargetPlug {
                        device: name,
                        plug: Plug::Chassis,
                    }],
                };
                let options = FenceOptions {
                    timeout: Duration::from_secs(30),
                    ..FenceOptions::default()
                };
                let outcome =
                    fencekit_core::fence(&devices, &target, FenceAction::Off, &options).await;
                outcome.success
            } else {
                let Some(device) = devices.get(&name) else {
                    return false;
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                matches!(
                    device.status(&Plug::Chassis, deadline).await,
                    Ok(PowerState::On | PowerState::Off)
                )
            }
        });
    }
    let mut ok = 0usize;
    let mut failed = 0usize;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(true) => ok += 1,
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} of {} BMCs: {ok} ok, {failed} failed, in {:.3} s",
        if off { "confirmed off" } else { "status" },
        addrs.len(),
        elapsed.as_secs_f64()
    );
    i32::from(failed > 0)
}
