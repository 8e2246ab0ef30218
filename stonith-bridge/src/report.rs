//! Printing a fence's outcome: a human account, or JSON for scripts; and the exit
//! code of the standalone commands.

use std::io::IsTerminal;
use std::sync::Arc;

use fencekit_core::fence::{Observer, Outcome, Step};
use fencekit_core::{FenceAction, PowerState};
use serde_json::json;

use crate::exit;

/// Prints each step as it happens, to stderr.
pub fn progress_on_stderr() -> Observer {
    Arc::new(|step: &Step| eprintln!("{step}"))
}

/// Whether stderr is a terminal (progress is shown by default there).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The human account: the summary, then one line per plug, then errors and notes.
pub fn human(outcome: &Outcome) -> String {
    let mut out = String::new();
    out.push_str(&outcome.summary());
    out.push('\n');
    for plug in &outcome.plugs {
        let mut line = format!(
            "  {:<28} {:<7}",
            plug.target.to_string(),
            plug.state.to_string()
        );
        if let Some(at) = plug.off_confirmed {
            line.push_str(&format!(" off confirmed at {:.3} s", at.as_secs_f64()));
        }
        if let Some(at) = plug.on_confirmed {
            line.push_str(&format!(" on confirmed at {:.3} s", at.as_secs_f64()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for error in &outcome.errors {
        out.push_str(&format!("  error: {error}\n"));
    }
    for note in &outcome.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

pub fn json(outcome: &Outcome) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let value = json!({
        "node": outcome.node,
        "action": outcome.action.as_str(),
        "success": outcome.success,
        "fenced": outcome.fenced,
        "state": outcome.aggregate_state().as_str(),
        "elapsed_ms": ms(outcome.elapsed),
        "plugs": outcome.plugs.iter().map(|p| json!({
            "device": p.target.device,
            "plug": p.target.plug.to_string(),
            "state": p.state.as_str(),
            "off_confirmed_ms": p.off_confirmed.map(ms),
            "on_confirmed_ms": p.on_confirmed.map(ms),
        })).collect::<Vec<_>>(),
        "errors": outcome.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "notes": outcome.notes,
    });
    value.to_string()
}

/// The standalone exit code for an outcome.
pub fn exit_code(outcome: &Outcome) -> u8 {
    match outcome.action {
        FenceAction::Status if outcome.success => match outcome.aggregate_state() {
            PowerState::On => exit::OK,
            PowerState::Off => exit::IS_OFF,
            PowerState::Unknown => exit::FAILED,
        },
        FenceAction::Reboot if !outcome.success && outcome.fenced => exit::FENCED_NOT_ON,
        _ if outcome.success => exit::OK,
        _ => exit::FAILED,
    }
}

/// The summary table of several nodes' outcomes.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "\n{:<20} {:<8} {:<10} {:<8} {:>10}\n",
        "node", "action", "result", "power", "seconds"
    );
    for o in outcomes {
        let result = match (o.success, o.fenced) {
            (true, _) => "ok",
            (false, true) => "fenced",
            (false, false) => "FAILED",
        };
        out.push_str(&format!(
            "{:<20} {:<8} {:<10} {:<8} {:>10.3}\n",
            o.node,
            o.action.as_str(),
            result,
            o.aggregate_state().as_str(),
            o.elapsed.as_secs_f64()
        ));
    }
    out
}

/// The exit code for several nodes: the single node's code; for several, any
/// failure wins, then a reboot that did not come back, then (status) all off.
pub fn exit_code_of_all(outcomes: &[Outcome]) -> u8 {
    if let [one] = outcomes {
        return exit_code(one);
    }
    let codes: Vec<u8> = outcomes.iter().map(exit_code).collect();
    if codes.contains(&exit::FAILED) {
        exit::FAILED
    } else if codes.contains(&exit::FENCED_NOT_ON) {
        exit::FENCED_NOT_ON
    } else if !codes.is_empty() && codes.iter().all(|c| *c == exit::IS_OFF) {
        exit::IS_OFF
    } else {
        exit::OK
    }
}
