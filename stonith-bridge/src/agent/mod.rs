//! The fence-agent API (`fence_fencekit_<plugin>`): the contract Pacemaker's fencer,
//! `pcs` and `crm` use for `fence_*` agents. Options on the command line or as
//! `key=value` lines on stdin; actions on, off, reboot, status, list, list-status,
//! monitor, metadata, validate-all; exit codes as fence-agents (status: 0 on, 2 off,
//! 1 error); failure text with the words Pacemaker reads ("timed out",
//! "unsupported action").

pub mod metadata;
pub mod options;

use std::io::Read;

use fencekit_core::schema::{normalize, RawParam, RawValue};
use fencekit_core::{DeviceCommand, FenceAction, Plug, PowerState};
use fencekit_plugins::Registry;

use crate::logging;
use crate::request::{self, Request};

/// fence-agents' exit codes.
const OK: u8 = 0;
const FAIL: u8 = 1;
const STATUS_OFF: u8 = 2;

/// Most that is read from stdin: options are a few lines.
const STDIN_LIMIT: u64 = 1 << 20;

pub async fn run(plugin_name: &str, args: &[String]) -> u8 {
    let name = metadata::agent_name(plugin_name);
    let registry = Registry::discover(None);
    let plugin = match request::plugin(&registry, plugin_name) {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{name}: {e}");
            return FAIL;
        }
    };
    let schemas = [
        plugin.schema,
        &fencekit_core::fence::SCHEMA,
        &options::SCHEMA,
    ];
    let raw = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().take(STDIN_LIMIT).read_to_string(&mut text) {
            eprintln!("{name}: cannot read options from stdin: {e}");
            return FAIL;
        }
        options::from_stdin(&text)
    } else {
        match options::from_args(&schemas, args) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{name}: {e}\nRun `{name} --help` for the options.");
                return FAIL;
            }
        }
    };
    // `-v` may be stacked; `verbose=0` on stdin means off, as fence-agents read it.
    let verbose = raw
        .iter()
        .filter(|p| p.key == "verbose")
        .filter(|p| match &p.value {
            RawValue::Text(t) => fencekit_core::schema::parse_bool(t) != Some(false),
            _ => true,
        })
        .count();
    let quiet =
        last(&raw, &["quiet"]).is_some_and(|v| fencekit_core::schema::parse_bool(&v) == Some(true));
    let verbose = last(&raw, &["verbose_level"])
        .and_then(|level| level.trim().parse::<usize>().ok())
        .map_or(verbose, |level| level.max(verbose));
    let level = if quiet { 0 } else { verbose.min(3) as u8 };
    match last(&raw, &["debug_file", "debug"]) {
        // fence-agents' debug file: everything at debug level, appended.
        Some(path) => {
            if let Err(e) = logging::init_to_file(std::path::Path::new(&path), level.max(2)) {
                eprintln!("{name}: cannot write the debug file {path}: {e}");
                return FAIL;
            }
        }
        None => logging::init(level, quiet),
    }

    if last(&raw, &["help"]).is_some() {
        print!("{}", metadata::usage(plugin.schema));
        return OK;
    }
    if last(&raw, &["version"]).is_some() {
        println!("{name} (fencekit) {}", env!("CARGO_PKG_VERSION"));
        return OK;
    }
    let action = last(&raw, &["action", "option"]).unwrap_or_else(|| "reboot".to_string());
    let action = action.trim().to_ascii_lowercase();
    if action == "metadata" || action == "meta-data" {
        print!("{}", metadata::render(plugin));
        return OK;
    }
    let request = match Request::validate(plugin, &options::SCHEMA, &raw) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("{name}: {e}");
            return FAIL;
        }
    };
    if !quiet {
        for warning in &request.warnings {
            eprintln!("{name}: warning: {warning}");
        }
        warn_secrets_in_argv(&name, &schemas, &raw);
    }
    let plugs = request::split_plugs(
        request.params.text("plug").unwrap_or(""),
        request.params.text("plug_separator").unwrap_or(","),
    );
    let needs_plug =
        plugin.schema.multi_plug && matches!(action.as_str(), "on" | "off" | "reboot" | "status");
    if needs_plug && plugs.is_empty() {
        eprintln!("{name}: Failed: parameter `plug` is required for action {action} on this multi-outlet device (e.g. plug=3 or port=3)");
        return FAIL;
    }
    match action.as_str() {
        "validate-all" => {
            // No device I/O: the parameters parsed and validated.
            match request.device() {
                Ok(_) => OK,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    FAIL
                }
            }
        }
        "on" | "off" | "reboot" | "status" => power(&name, &request, &action, &plugs).await,
        "list" | "list-status" => list(&name, &request, action == "list-status").await,
        "diag" if plugin.schema.commands.contains(&DeviceCommand::Diag) => {
            diag(&name, &request, &plugs).await
        }
        "monitor" => monitor(&name, &request).await,
        other => {
            eprintln!("{name}: Failed: unsupported action '{other}'; actions: on, off, reboot, status, list, list-status, monitor, metadata, validate-all");
            FAIL
        }
    }
}

/// The last value given for any of `keys`.
fn last(raw: &[RawParam], keys: &[&str]) -> Option<String> {
    raw.iter()
        .rev()
        .find(|p| keys.contains(&normalize(&p.key).as_str()))
        .map(|p| match &p.value {
            RawValue::Text(t) => t.clone(),
            RawValue::Integer(n) => n.to_string(),
            RawValue::Float(f) => f.to_string(),
            RawValue::Boolean(b) => b.to_string(),
        })
}

/// fence-agents accept `-p PASSWORD`; so do we, but say what it exposes.
fn warn_secrets_in_argv(name: &str, schemas: &[&fencekit_core::Schema], raw: &[RawParam]) {
    for param in raw.iter().filter(|p| p.origin.source == "command line") {
        let secret = schemas
            .iter()
            .find_map(|s| s.find(&param.key))
            .is_some_and(|spec| spec.secret);
        if secret {
            eprintln!(
                "{name}: warning: `{}` was given on the command line, where every user can read it (ps, /proc); pass it on stdin, or use {}_script or {}_file",
                param.key, param.key, param.key
            );
        }
    }
}

async fn power(name: &str, request: &Request, action: &str, plugs: &[fencekit_core::Plug]) -> u8 {
    let fence_action = FenceAction::parse(action).unwrap_or(FenceAction::Status);
    let devices = match request.devices() {
        Ok(devices) => devices,
        Err(e) => {
            eprintln!("{name}: Failed: {e}");
            return FAIL;
        }
    };
    let node = request
        .params
        .text("nodename")
        .map(str::to_string)
        .or_else(|| request.params.text("plug").map(str::to_string))
        .unwrap_or_else(|| "the node".to_string());
    let target = request.target(&node, plugs);
    let outcome = fencekit_core::fence(&devices, &target, fence_action, &request.options()).await;
    for note in &outcome.notes {
        eprintln!("{name}: note: {note}");
    }
    match fence_action {
        FenceAction::Status if outcome.success => match outcome.aggregate_state() {
            PowerState::On => {
                println!("Status: ON");
                OK
            }
            PowerState::Off => {
                println!("Status: OFF");
                STATUS_OFF
            }
            PowerState::Unknown => {
                eprintln!("{name}: Failed: the device reports an unknown power state for {node}");
                FAIL
            }
        },
        _ if outcome.success => {
            println!(
                "{}",
                match fence_action {
                    FenceAction::On => "Success: Powered ON",
                    FenceAction::Off => "Success: Powered OFF",
                    _ => "Success: Rebooted",
                }
            );
            OK
        }
        // The API: a reboot succeeds when its off portion did.
        FenceAction::Reboot if outcome.fenced => {
            eprintln!(
                "{name}: warning: {node} was fenced (power confirmed off) but did not power back on: {}",
                outcome.errors.first().map(ToString::to_string).unwrap_or_default()
            );
            println!("Success: Rebooted");
            OK
        }
        _ => {
            failed(name, &outcome);
            FAIL
        }
    }
}

fn failed(name: &str, outcome: &fencekit_core::Outcome) {
    for error in &outcome.errors {
        // Pacemaker maps "timed out" in stderr to ETIME.
        let timed_out = if error.is_timeout() && !error.to_string().contains("timed out") {
            " (timed out)"
        } else {
            ""
        };
        eprintln!("{name}: Failed: {error}{timed_out}");
    }
    if outcome.errors.is_empty() {
        eprintln!("{name}: Failed: {}", outcome.summary());
    }
}

async fn list(name: &str, request: &Request, with_status: bool) -> u8 {
    let separator = request.params.text("separator").unwrap_or(",");
    match request.list().await {
        Ok(plugs) => {
            for plug in plugs {
                let id = plug.plug.to_string();
                let alias = plug.name.clone().unwrap_or_else(|| id.clone());
                if with_status {
                    println!(
                        "{id}{separator}{alias}{separator}{}",
                        plug.state.as_str().to_ascii_uppercase()
                    );
                } else {
                    println!("{id}{separator}{alias}");
                }
            }
            OK
        }
        Err(e) => {
            eprintln!("{name}: Failed: {e}");
            FAIL
        }
    }
}

async fn monitor(name: &str, request: &Request) -> u8 {
    match request.check().await {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("{name}: Failed: monitor: {e}");
            FAIL
        }
    }
}

/// fence_ipmilan's `diag`: a diagnostic interrupt (NMI) so the node writes a crash
/// dump. The BMC can only accept it; nothing reads back whether the node stopped,
/// so it is reported as sent, not as fenced.
async fn diag(name: &str, request: &Request, plugs: &[Plug]) -> u8 {
    let plug = match plugs.first() {
        Some(plug) if request.plugin.schema.multi_plug => plug.clone(),
        _ => Plug::Chassis,
    };
    match request.command(&plug, DeviceCommand::Diag).await {
        Ok(()) => {
            println!(
                "Success: Diagnostic interrupt sent (unverified: nothing can read back its effect)"
            );
            OK
        }
        Err(e) => {
            eprintln!("{name}: Failed: {e}");
            FAIL
        }
    }
}
