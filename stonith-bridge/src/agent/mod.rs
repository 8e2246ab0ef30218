//! The fence-agent API (`fence_fencekit_<plugin>`): the contract Pacemaker's fencer,
//! `pcs` and `crm` use for `fence_*` agents. Options on the command line or as
//! `key=value` lines on stdin; actions on, off, reboot, status, list, list-status,
//! monitor, metadata, validate-all; exit codes as fence-agents (status: 0 on, 2 off,
//! 1 error); failure text with the words Pacemaker reads ("timed out",
//! "unsupported action").

pub mod metadata;
pub mod options;

use std::io::Read;
use std::time::Duration;

use fencekit_core::schema::{normalize, Origin, RawParam, RawValue, Schema};
use fencekit_core::{DeviceCommand, FenceAction, FenceOptions, Instant, Plug, PowerState};
use fencekit_plugins::Registry;
use zeroize::Zeroizing;

use crate::logging;
use crate::request::{self, RawParams, Request, Stage};

/// fence-agents' exit codes.
const OK: u8 = 0;
const FAIL: u8 = 1;
const STATUS_OFF: u8 = 2;

/// Most that is read from stdin: options are a few lines.
const STDIN_LIMIT: u64 = 1 << 20;

/// The work of one run, read and validated.
pub struct Prepared {
    name: String,
    request: Request,
    action: String,
    plugs: Vec<Plug>,
}

/// The operation's timeout as given, read before validation: it also bounds loading
/// an external plugin, which validation needs.
fn timeout_hint(raw: &[RawParam]) -> Duration {
    last(raw, &["timeout"])
        .as_deref()
        .and_then(timeout_seconds)
        .unwrap_or(FenceOptions::default().timeout)
}

/// A `timeout` value read before validation, if it is a sane number of seconds.
fn timeout_seconds(text: &str) -> Option<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && (0.0..1e9).contains(t))
        .map(Duration::from_secs_f64)
}

/// `--timeout X` or `--timeout=X` on the command line, before the plugin's schema
/// (which says how to read the rest) is known.
fn timeout_in_args(args: &[String]) -> Duration {
    let mut raw = Vec::new();
    for (index, arg) in args.iter().enumerate() {
        let value = match arg.strip_prefix("--timeout") {
            Some(rest) if rest.starts_with('=') => rest.get(1..).map(str::to_string),
            Some("") => args.get(index + 1).cloned(),
            _ => None,
        };
        if let Some(value) = value {
            raw.push(RawParam::text(
                "timeout",
                value,
                Origin::new("command line"),
            ));
        }
    }
    timeout_hint(&RawParams(raw))
}

/// Reads the options (stdin or argv), validates them and answers what needs no
/// device. Runs while the process has one thread (see `main`).
pub fn prepare(plugin_name: &str, args: &[String]) -> Stage<Prepared> {
    let started = Instant::now();
    let name = metadata::agent_name(plugin_name);
    logging::set_syslog_ident(&name);
    let stdin_raw = if args.is_empty() {
        match read_stdin() {
            Ok(text) => Some(options::from_stdin(&text)),
            Err(e) => {
                logging::report!("{name}: cannot read options from stdin: {e}");
                return Stage::Done(FAIL);
            }
        }
    } else {
        None
    };
    let timeout = match &stdin_raw {
        Some(raw) => timeout_hint(raw),
        None => timeout_in_args(args),
    };
    fencekit_core::secret::set_operation_deadline((started + timeout).into_std());
    let registry = Registry::discover(None).with_deadline(started + timeout);
    let plugin = match request::plugin(&registry, plugin_name) {
        Ok(plugin) => plugin,
        Err(e) => {
            logging::report!("{name}: {e}");
            return Stage::Done(FAIL);
        }
    };
    let schemas = [
        plugin.schema,
        &fencekit_core::fence::SCHEMA,
        &options::SCHEMA,
    ];
    let mut raw = match stdin_raw {
        Some(raw) => raw,
        None => match options::from_args(&schemas, args) {
            Ok(raw) => {
                // A password given as `-p SECRET` stays in /proc/PID/cmdline (and
                // `ps`) for the whole run unless the argument block is blanked (it
                // was visible until now, which fence-agents' own warning about
                // passwords on the command line is for). Best effort: without /proc
                // the arguments stay as they were.
                let secrets = fencekit_core::schema::inline_secrets(&schemas, &raw);
                let _ = fencekit_core::environ::blank_initial_args(&secrets);
                raw
            }
            Err(e) => {
                logging::report!("{name}: {e}\nRun `{name} --help` for the options.");
                return Stage::Done(FAIL);
            }
        },
    };
    if let Err(e) = options::refuse_misspelt(&schemas, &raw) {
        logging::report!("{name}: {e}");
        return Stage::Done(FAIL);
    }
    // `-v` may be stacked; `verbose=0` on stdin means off, as fence-agents read it.
    let verbose = raw
        .iter()
        .filter(|p| p.key == "verbose")
        .filter(|p| match &p.value {
            RawValue::Text(t) => fencekit_core::schema::parse_bool(t) != Some(false),
            _ => true,
        })
        .count();
    // Every warning from here on may quote a value: the secrets are screened first.
    fencekit_core::schema::watch_inline_secrets(&schemas, &raw);
    // A `verbose` line whose value is no boolean (`verbose=2`) turns verbosity on
    // above; the schema would refuse it, fence-agents ignore it with a warning: it
    // changes nothing that is switched, so it is dropped here and the run goes on.
    raw.retain(|p| match &p.value {
        RawValue::Text(t)
            if normalize(&p.key) == "verbose" && fencekit_core::schema::parse_bool(t).is_none() =>
        {
            // The value is not quoted: a secret read later (a password_script's)
            // is not screened yet.
            logging::report!(
                "{name}: warning: `verbose` has a value that is no boolean: taken as verbose"
            );
            false
        }
        _ => true,
    });
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
                logging::report!("{name}: cannot write the debug file {path}: {e}");
                return Stage::Done(FAIL);
            }
        }
        None => logging::init(level, quiet),
    }

    if last(&raw, &["help"]).is_some() {
        print!("{}", metadata::usage(plugin.schema));
        return Stage::Done(OK);
    }
    if last(&raw, &["version"]).is_some() {
        println!("{name} (fencekit) {}", env!("CARGO_PKG_VERSION"));
        return Stage::Done(OK);
    }
    let fabric = plugin.schema.fabric();
    // A fabric agent's default is off, as fence-agents' fabric_fencing agents have it.
    // `option` was `action`'s name before fence-agents 4; today's ignore it with a
    // warning and run their default, and Pacemaker may pass a device's stale
    // `option` attribute on beside the action it asks for: ignored the same way,
    // alone or not, so that `option=off` never turns a monitor into a fence and
    // `option=on` alone fences as fence_ipmilan does.
    if let Some(option) = last(&raw, &["option"]) {
        logging::report!(
            "{name}: warning: ignoring `option={}`: fence agents read the action from \
             `action` only",
            options::shown_word(option.trim())
        );
        raw.retain(|p| normalize(&p.key) != "option");
    }
    let action = last(&raw, &["action"])
        .unwrap_or_else(|| if fabric { "off" } else { "reboot" }.to_string());
    let mut action = action.trim().to_ascii_lowercase();
    if fabric {
        // fence-agents' names for unfencing and fencing a port.
        match action.as_str() {
            "enable" => action = "on".into(),
            "disable" => action = "off".into(),
            // Cutting a link resets nothing: the core refuses it too, this says so
            // before any parameter is read, as fence_ifmib does.
            "reboot" | "reset" => {
                logging::report!(
                    "{name}: Failed: Unrecognised action '{action}': {name} fences a node's \
                     switch port (fabric fencing), not its power; use off, and on to let \
                     the node back"
                );
                return Stage::Done(FAIL);
            }
            _ => {}
        }
    }
    if action == "manpage" {
        print!("{}", crate::man::agent_page(plugin));
        return Stage::Done(OK);
    }
    if action == "metadata" || action == "meta-data" {
        print!("{}", metadata::render(plugin));
        return Stage::Done(OK);
    }
    if !quiet {
        warn_secrets_in_argv(&name, &schemas, &raw);
    }
    if let Err(e) = plug_on_the_command_line(plugin.schema, &raw) {
        logging::report!("{name}: {e}");
        return Stage::Done(FAIL);
    }
    if let Err(e) = port_as_ip(plugin.schema, &mut raw) {
        logging::report!("{name}: {e}");
        return Stage::Done(FAIL);
    }
    if let Err(e) = request::take_env_secrets(&schemas, &mut raw) {
        logging::report!("{name}: {e}");
        return Stage::Done(FAIL);
    }
    let request = match Request::validate(plugin, &options::SCHEMA, &raw, started) {
        Ok(request) => request,
        Err(e) => {
            logging::report!("{name}: {e}");
            return Stage::Done(FAIL);
        }
    };
    drop(raw);
    if !quiet {
        for warning in &request.warnings {
            logging::report!("{name}: warning: {warning}");
        }
    }
    // Bad plug text is bad input: exit 1 with fence-agents (their usage errors exit
    // 1; 2 would read as "off" to a caller of `status`).
    let plug_text = request.params.text("plug").unwrap_or("");
    let plugs = if plug_text.trim().is_empty() {
        Vec::new()
    } else {
        match request::split_plugs(
            plug_text,
            request.params.text("plug_separator").unwrap_or(","),
        ) {
            Ok(plugs) => plugs,
            Err(e) => {
                logging::report!("{name}: Failed: parameter `plug`: {e}");
                return Stage::Done(FAIL);
            }
        }
    };
    let needs_plug = plugin.schema.plug_required()
        && matches!(action.as_str(), "on" | "off" | "reboot" | "status");
    if needs_plug && plugs.is_empty() {
        logging::report!("{name}: Failed: parameter `plug` is required for action {action} on this multi-outlet device (e.g. plug=3 or port=3)");
        return Stage::Done(FAIL);
    }
    Stage::Run(Prepared {
        name,
        request,
        action,
        plugs,
    })
}

/// Reads stdin, at most [`STDIN_LIMIT`] bytes, into one buffer that is wiped when
/// dropped (it holds the password). The buffer is allocated once at its full size:
/// a growing buffer would leave copies of the text in freed memory.
fn read_stdin() -> Result<Zeroizing<String>, String> {
    // A caller that never closes stdin must not hold the run: the options are read
    // by the operation's timeout, the default until a `timeout=` line is read.
    let started = std::time::Instant::now();
    let by = std::rc::Rc::new(std::cell::Cell::new(
        started + FenceOptions::default().timeout,
    ));
    let input = ByDeadline {
        by: std::rc::Rc::clone(&by),
        started,
    };
    let bytes = read_wiped(input, STDIN_LIMIT + 1, |text| {
        if let Some(timeout) = timeout_line(text) {
            by.set(by.get().min(started + timeout));
        }
    })
    .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > STDIN_LIMIT {
        return Err(format!(
            "more than {} KiB; options are a few lines",
            STDIN_LIMIT / 1024
        ));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => Zeroizing::new(text.to_string()),
        Err(e) => return Err(format!("not UTF-8 text (at byte {})", e.valid_up_to())),
    };
    // The last line may hold the `timeout=` without a line end: once stdin closed,
    // it is known, and a timeout already spent ends the run before any command.
    let timeout = text.lines().rev().find_map(timeout_of_line);
    if let Some(timeout) = timeout.filter(|t| started.elapsed() >= *t) {
        return Err(format!(
            "not closed within {:.1} s of the start, the operation's timeout \
             (options end where stdin does)",
            timeout.as_secs_f64()
        ));
    }
    Ok(text)
}

/// The last `timeout=` among the whole lines of `text` (options read so far), as
/// [`timeout_hint`] reads it.
fn timeout_line(text: &[u8]) -> Option<Duration> {
    let whole = &text[..text.iter().rposition(|b| *b == b'\n')?];
    let whole = std::str::from_utf8(whole).ok()?;
    whole.lines().rev().find_map(timeout_of_line)
}

/// The timeout a stdin line gives, however the options reader spells its key
/// (`timeout=3`, `Timeout=3`, `timeout = 3`).
fn timeout_of_line(line: &str) -> Option<Duration> {
    let (key, value) = line.split_once('=')?;
    (fencekit_core::schema::normalize(key) == "timeout")
        .then(|| timeout_seconds(value))
        .flatten()
}

/// Standard input, each read waiting no later than `by`.
struct ByDeadline {
    by: std::rc::Rc<std::cell::Cell<std::time::Instant>>,
    started: std::time::Instant,
}

impl Read for ByDeadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let stdin = std::io::stdin();
        loop {
            let by = self.by.get();
            let left = by.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "not closed within {:.1} s of the start, the operation's timeout \
                         (options end where stdin does)",
                        by.duration_since(self.started).as_secs_f64()
                    ),
                ));
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).map_err(std::io::Error::from)? > 0 {
                return stdin.lock().read(buf);
            }
        }
    }
}

/// Reads at most `limit` bytes. The buffer grows by doubling, each outgrown copy
/// wiped as it is dropped, so no copy of a secret is left behind; it starts small,
/// since wiping (and so touching) a buffer sized for the limit would cost more than
/// reading a few lines of options.
/// `read` is shown the bytes read so far after each read.
fn read_wiped(
    mut input: impl Read,
    limit: u64,
    mut read: impl FnMut(&[u8]),
) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let room = usize::try_from(limit.saturating_sub(bytes.len() as u64))
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        if room == 0 {
            return Ok(bytes);
        }
        let n = match input.read(&mut chunk[..room]) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if bytes.len() + n > bytes.capacity() {
            let mut grown = Zeroizing::new(Vec::with_capacity((bytes.len() + n) * 2));
            grown.extend_from_slice(&bytes);
            bytes = grown;
        }
        bytes.extend_from_slice(&chunk[..n]);
        read(&bytes);
    }
}

/// Talks to the device: the action prepared.
pub async fn execute(prepared: Prepared) -> u8 {
    let Prepared {
        name,
        request,
        action,
        plugs,
    } = prepared;
    let plugin = request.plugin;
    match action.as_str() {
        "validate-all" => {
            // No device I/O: the parameters parsed and validated.
            match request.device() {
                Ok(_) => OK,
                Err(e) => {
                    logging::report!("{name}: {e}");
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
            let other = options::shown_word(other);
            let reboot = if plugin.schema.fabric() {
                ""
            } else {
                "reboot, "
            };
            logging::report!("{name}: Failed: unsupported action '{other}'; actions: on, off, {reboot}status, list, list-status, monitor, metadata, validate-all");
            FAIL
        }
    }
}

/// A plug named on the command line (`-n`, `--plug`) of a device of one plug (a
/// BMC) without `--port-as-ip`: fence_ipmilan and fence_redfish refuse the option
/// ("option -n/--plug is not recognized"), and dropping it would switch the BMC
/// of `ip` for a user who meant another machine. On stdin, where Pacemaker puts
/// the node's name in `port`, it stays ignored, as there.
fn plug_on_the_command_line(schema: &Schema, raw: &RawParams) -> Result<(), String> {
    if schema.multi_plug || schema.find("port_as_ip").is_none() {
        return Ok(());
    }
    let on_command_line = |keys: &[&str]| {
        raw.iter().any(|p| {
            p.origin.source == "command line" && keys.contains(&normalize(&p.key).as_str())
        })
    };
    let port_as_ip = raw.iter().any(|p| normalize(&p.key) == "port_as_ip");
    if on_command_line(&["plug", "port"]) && !port_as_ip {
        return Err(
            "Failed: option -n/--plug: this device switches one machine (the BMC at \
             `ip`); a plug names nothing on it. With --port-as-ip the plug is the BMC's \
             address; without, leave it out"
                .to_string(),
        );
    }
    Ok(())
}

/// fence-agents' `port_as_ip`: the plug (`port`, which Pacemaker fills with the
/// node's name) is the device's address, and the plug itself is then not used.
///
/// fence-agents take the option as given whatever its value (`port_as_ip=0` too:
/// fencing.py asks only whether it is there), so a false value beside a plug is
/// refused: honoured, it would switch `ip` where fence-agents switch the plug's
/// address; taken as fence-agents take it, it would say the opposite of what it says.
fn port_as_ip(schema: &Schema, raw: &mut RawParams) -> Result<(), String> {
    let Some(given) = last(raw, &["port_as_ip"]).filter(|_| schema.find("port_as_ip").is_some())
    else {
        return Ok(());
    };
    if fencekit_core::schema::parse_bool(&given) != Some(true) {
        if last(raw, &["plug", "port"]).is_some() {
            return Err(format!(
                "parameter `port_as_ip`: `{}` with a plug is refused: fence-agents take \
                 port_as_ip given in any form as on (the plug is the address) and would \
                 switch the plug's address, not `ip`; set port_as_ip=1, or leave it out",
                options::shown_word(&given)
            ));
        }
        return Ok(());
    }
    // Applied here, where Pacemaker's `port` arrives; the plugin refuses it from any
    // other front end, where there is no such plug to take the address from.
    raw.retain(|p| normalize(&p.key) != "port_as_ip");
    let Some(address) = last(raw, &["plug", "port"]) else {
        return Ok(());
    };
    raw.retain(|p| !matches!(normalize(&p.key).as_str(), "plug" | "port"));
    raw.push(RawParam::text(
        "ip",
        address,
        Origin::new("plug (port_as_ip)"),
    ));
    Ok(())
}

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
            logging::report!(
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
            logging::report!("{name}: Failed: {e}");
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
        logging::report!("{name}: note: {note}");
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
                logging::report!(
                    "{name}: Failed: the device reports an unknown power state for {node}"
                );
                FAIL
            }
        },
        _ if outcome.success => {
            let text = match fence_action {
                FenceAction::On => "Success: Powered ON",
                FenceAction::Off => "Success: Powered OFF",
                _ => "Success: Rebooted",
            };
            println!("{text}");
            logging::syslog(
                logging::LOG_INFO,
                &format!("{action} of {node}: {text} ({})", outcome.summary()),
            );
            OK
        }
        // The API: a reboot succeeds when its off portion did.
        FenceAction::Reboot if outcome.fenced => {
            logging::report!(
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
        logging::report!("{name}: Failed: {error}{timed_out}");
    }
    if outcome.errors.is_empty() {
        logging::report!("{name}: Failed: {}", outcome.summary());
    }
}

async fn list(name: &str, request: &Request, with_status: bool) -> u8 {
    let separator = request.params.text("separator").unwrap_or(",");
    match request.list().await {
        Ok(plugs) => {
            for plug in plugs {
                // fence_ifmib lists a port as ifDescr and ifAlias; the others list
                // a plug as its number (or id) and its name.
                let (id, alias) = match (&plug.alias, &plug.name) {
                    (Some(alias), Some(name)) => (name.clone(), alias.clone()),
                    _ => {
                        let id = plug.plug.to_string();
                        (id.clone(), plug.name.clone().unwrap_or(id))
                    }
                };
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
            logging::report!("{name}: Failed: {e}");
            FAIL
        }
    }
}

async fn monitor(name: &str, request: &Request) -> u8 {
    match request.check().await {
        Ok(()) => OK,
        Err(e) => {
            logging::report!("{name}: Failed: monitor: {e}");
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
            logging::report!("{name}: Failed: {e}");
            FAIL
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stdin_is_read_whole_up_to_its_limit_whatever_the_chunks() {
        let text: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let read = super::read_wiped(&text[..], 1 << 20, |_| {}).unwrap();
        assert_eq!(&read[..], &text[..]);
        let read = super::read_wiped(&text[..], 9_000, |_| {}).unwrap();
        assert_eq!(&read[..], &text[..9_000]);
        assert!(super::read_wiped(&b""[..], 10, |_| {}).unwrap().is_empty());
    }
}
