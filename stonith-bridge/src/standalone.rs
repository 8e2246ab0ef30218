//! `stonith-bridge fence`: fence a node described in a configuration file.

use std::collections::BTreeMap;

use fencekit_core::config::{self, Config};
use fencekit_core::fence::Devices;
use fencekit_core::FenceTarget;
use fencekit_plugins::Registry;

use crate::cli::FenceArgs;
use crate::{exit, report};

pub async fn fence(args: FenceArgs) -> u8 {
    let registry = Registry::discover(args.plugin_dir.as_deref());
    let config = match config::load(&args.config, &registry) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("stonith-bridge: {e}");
            return exit::USAGE;
        }
    };
    let target = match config.node(&args.node) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("stonith-bridge: {e}");
            return exit::USAGE;
        }
    };
    let devices = match devices_for(&config, target, &registry) {
        Ok(devices) => devices,
        Err(message) => {
            eprintln!("stonith-bridge: {message}");
            return exit::USAGE;
        }
    };
    let mut options = config.fence_options();
    if args.progress || (!args.json && report::stderr_is_terminal()) {
        options.observer = Some(report::progress_on_stderr());
    }
    let outcome =
        fencekit_core::fence(&devices, target, args.action.fence_action(), &options).await;
    if args.json {
        println!("{}", report::json(&outcome));
    } else {
        print!("{}", report::human(&outcome));
    }
    report::exit_code(&outcome)
}

/// Builds the devices a node uses (and only those).
pub fn devices_for(
    config: &Config,
    target: &FenceTarget,
    registry: &Registry,
) -> Result<Devices, String> {
    let mut devices: Devices = BTreeMap::new();
    for plug in &target.plugs {
        if devices.contains_key(&plug.device) {
            continue;
        }
        let Some(device) = config.devices.get(&plug.device) else {
            return Err(format!(
                "{}: node {} uses device {}, which is not configured",
                config.source, target.node, plug.device
            ));
        };
        let switch = registry
            .build(&device.plugin, &device.params)
            .map_err(|e| format!("{}: device {}: {e}", config.source, device.name))?;
        devices.insert(device.name.clone(), switch);
    }
    Ok(devices)
}
