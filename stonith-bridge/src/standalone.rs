//! The admin's commands over a configuration file: `fence` (one node or several,
//! concurrently, with a summary table), `list` (every plug of the devices) and
//! `check` (every device answers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fencekit_core::config::{self, Config};
use fencekit_core::fence::{Devices, Outcome};
use fencekit_core::{FenceTarget, Instant};
use fencekit_plugins::Registry;

use crate::cli::{DevicesArgs, FenceArgs};
use crate::{exit, report};

pub async fn fence(args: FenceArgs) -> u8 {
    let started = Instant::now();
    let Some((config, registry)) =
        load(args.config.as_deref(), args.plugin_dir.as_deref(), started)
    else {
        return exit::USAGE;
    };
    let names: Vec<&str> = args
        .node
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    // A node named twice would be fenced twice at once, the two runs switching the
    // same plugs against each other (a reboot's on racing the other's off).
    for (index, name) in names.iter().enumerate() {
        if names[..index].contains(name) {
            eprintln!("stonith-bridge: --node names {name} twice");
            return exit::USAGE;
        }
    }
    let mut targets = Vec::new();
    for name in &names {
        match config.node(name) {
            Ok(target) => targets.push(target.clone()),
            Err(e) => {
                eprintln!("stonith-bridge: {e}");
                return exit::USAGE;
            }
        }
    }
    if targets.is_empty() {
        eprintln!("stonith-bridge: --node names no node");
        return exit::USAGE;
    }
    // One device object per configured device, shared by every node fenced now (a
    // device several nodes use is told no node's name, see `devices_for`, so the
    // object is the same whichever node built it).
    let mut devices: Devices = BTreeMap::new();
    for target in &targets {
        match devices_for(&config, target, &registry) {
            Ok(built) => {
                for (name, device) in built {
                    devices.entry(name).or_insert(device);
                }
            }
            Err(message) => {
                eprintln!("stonith-bridge: {message}");
                return exit::USAGE;
            }
        }
    }
    let mut options = config.fence_options();
    // The timeout counts from the start of the run: reading the configuration (a
    // `password_script`) and building the devices took part of it.
    options.timeout = options.timeout.saturating_sub(started.elapsed());
    if args.progress || (!args.json && report::stderr_is_terminal()) {
        options.observer = Some(report::progress_on_stderr());
    }
    let action = args.action.fence_action();
    // Nodes are fenced concurrently: one slow device does not hold the others.
    let devices = Arc::new(devices);
    let mut running = tokio::task::JoinSet::new();
    for (index, target) in targets.into_iter().enumerate() {
        let devices = Arc::clone(&devices);
        let options = options.clone();
        running.spawn(async move {
            (
                index,
                fencekit_core::fence(&devices, &target, action, &options).await,
            )
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = running.join_next().await {
        match done {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                eprintln!("stonith-bridge: a fence task failed: {e}");
                return exit::FAILED;
            }
        }
    }
    outcomes.sort_by_key(|(index, _)| *index);
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();
    if args.json {
        // The reports quote devices' errors: screened as stderr is.
        if let [one] = outcomes.as_slice() {
            println!("{}", screened(&report::json(one)));
        } else {
            println!(
                "[{}]",
                outcomes
                    .iter()
                    .map(|o| screened(&report::json(o)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    } else {
        for outcome in &outcomes {
            print!("{}", screened(&report::human(outcome)));
        }
        if outcomes.len() > 1 {
            print!("{}", screened(&report::table(&outcomes)));
        }
    }
    report::exit_code_of_all(&outcomes)
}

/// `text` past the secret screen (a line quoting a device that repeated a secret is
/// withheld whole).
fn screened(text: &str) -> String {
    fencekit_core::screen::screen_lines(text).into_owned()
}

/// The configuration `--config` names, else `$FENCEKIT_CONFIG`, else the default
/// path, and the plugins to build its devices with; an error is printed and `None`
/// returned. Everything it runs (plugin discovery, `password_script`s) ends by the
/// file's `[fence]` timeout, counted from `started`.
fn load(
    given: Option<&Path>,
    plugin_dir: Option<&Path>,
    started: Instant,
) -> Option<(Config, Registry)> {
    let from_env = std::env::var_os(config::PATH_VARIABLE).filter(|v| !v.is_empty());
    let path = match (given, &from_env) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => {
            let path = PathBuf::from(config::DEFAULT_PATH);
            if !path.exists() {
                eprintln!(
                    "stonith-bridge: no configuration: give --config FILE, set ${}, or write {}",
                    config::PATH_VARIABLE,
                    config::DEFAULT_PATH
                );
                return None;
            }
            path
        }
    };
    let timeout = config::timeout_hint(&path);
    fencekit_core::secret::set_operation_deadline((started + timeout).into_std());
    let registry = Registry::discover(plugin_dir).with_deadline(started + timeout);
    match config::load(&path, &registry) {
        Ok(config) => Some((config, registry)),
        Err(e) => {
            eprintln!("stonith-bridge: {e}");
            None
        }
    }
}

/// `stonith-bridge list`: every plug of the configured devices, read now.
pub async fn list(args: DevicesArgs) -> u8 {
    let started = Instant::now();
    let Some((config, devices)) = devices_of(&args, started) else {
        return exit::USAGE;
    };
    let deadline = started + config.fence_options().timeout;
    let mut code = exit::OK;
    let mut rows = Vec::new();
    for (name, device) in &devices {
        match tokio::time::timeout_at(deadline, device.list(deadline)).await {
            Ok(Ok(plugs)) => {
                for plug in plugs {
                    rows.push((name.clone(), plug));
                }
            }
            Ok(Err(e)) => {
                eprintln!("stonith-bridge: list {name}: {e}");
                code = exit::FAILED;
            }
            Err(_) => {
                eprintln!("stonith-bridge: list {name}: timed out");
                code = exit::FAILED;
            }
        }
    }
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(device, p)| {
                serde_json::json!({
                    "device": device,
                    "plug": p.plug.to_string(),
                    "name": p.name,
                    "state": p.state.as_str(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for (device, p) in &rows {
            println!(
                "{device:<16} {:<8} {:<24} {}",
                p.plug.to_string(),
                p.name.as_deref().unwrap_or("-"),
                p.state
            );
        }
    }
    code
}

/// `stonith-bridge check`: every configured device answers with its credentials.
pub async fn check(args: DevicesArgs) -> u8 {
    let started = Instant::now();
    let Some((config, devices)) = devices_of(&args, started) else {
        return exit::USAGE;
    };
    let deadline = started + config.fence_options().timeout;
    let mut code = exit::OK;
    let mut results = Vec::new();
    for (name, device) in &devices {
        let result = match tokio::time::timeout_at(deadline, device.check(deadline)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        if result.is_err() {
            code = exit::FAILED;
        }
        results.push((name.clone(), result));
    }
    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(device, r)| {
                serde_json::json!({
                    "device": device,
                    "ok": r.is_ok(),
                    "error": r.as_ref().err(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for (device, result) in &results {
            match result {
                Ok(()) => println!("{device}: ok"),
                Err(e) => println!("{}", screened(&format!("{device}: FAILED: {e}"))),
            }
        }
    }
    code
}

/// The configuration and the devices `--device` names (all when it names none).
fn devices_of(args: &DevicesArgs, started: Instant) -> Option<(Config, Devices)> {
    let (config, registry) = load(args.config.as_deref(), args.plugin_dir.as_deref(), started)?;
    let mut devices = Devices::new();
    for (name, device) in &config.devices {
        if !args.device.is_empty() && !args.device.iter().any(|d| d == name) {
            continue;
        }
        match registry.build(&device.plugin, &device.params) {
            Ok(built) => {
                devices.insert(name.clone(), built);
            }
            Err(e) => {
                eprintln!("stonith-bridge: {}: device {name}: {e}", config.source);
                return None;
            }
        }
    }
    if let Some(unknown) = args
        .device
        .iter()
        .find(|d| !config.devices.contains_key(d.as_str()))
    {
        eprintln!(
            "stonith-bridge: {}: no device named {unknown}; devices: {}",
            config.source,
            config
                .devices
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return None;
    }
    Some((config, devices))
}

/// Builds the devices a node uses (and only those).
pub fn devices_for(
    config: &Config,
    target: &FenceTarget,
    registry: &Registry,
) -> Result<Devices, String> {
    let mut devices: Devices = BTreeMap::new();
    for plug in &target.plugs {
        let Some(device) = config.devices.get(&plug.device) else {
            return Err(format!(
                "{}: node {} uses device {}, which is not configured",
                config.source, target.node, plug.device
            ));
        };
        // No plug on a device of many outlets would reach it as `chassis`, which no
        // outlet is: refused, as the fence agent refuses a missing `plug` there.
        if plug.plug == fencekit_core::Plug::Chassis
            && registry
                .power(&device.plugin)
                .is_some_and(|p| p.schema.plug_required())
        {
            return Err(format!(
                "{}: node {} has a plug on device {} without `plug` (or a blank one); \
                 that device has many outlets: name the node's outlet",
                config.source, target.node, device.name
            ));
        }
        if devices.contains_key(&plug.device) {
            continue;
        }
        // The node's name, as Pacemaker's `nodename` gives it to a fence agent, to a
        // device of this node alone: a device that takes the node's name for a plug
        // (a Redfish service's only system) takes no other plug for it. A device
        // several nodes use (a blade chassis) is told no node: each plug must name
        // what it switches there.
        let shared = config.nodes.values().any(|other| {
            other.node != target.node && other.plugs.iter().any(|p| p.device == plug.device)
        });
        let mut params = device.params.clone();
        if !shared {
            params.insert(
                "nodename",
                fencekit_core::schema::Value::Text(target.node.clone()),
            );
        }
        let switch = registry
            .build(&device.plugin, &params)
            .map_err(|e| format!("{}: device {}: {e}", config.source, device.name))?;
        devices.insert(device.name.clone(), switch);
    }
    Ok(devices)
}
