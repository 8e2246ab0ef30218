//! Manual pages and shell completions, generated: `stonith-bridge(8)` and its
//! commands from the same clap definitions as `--help`, and one page per fence agent
//! (`fence_fencekit_<plugin>(8)`) from the same schemas as its `metadata`, so that a
//! parameter, default or alias is never documented in a second place.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use fencekit_core::schema::{ParamSpec, ParamType, Schema};
use fencekit_plugins::PowerPlugin;
use roff::{bold, italic, roman, Roff};

use crate::agent::metadata::{agent_name, getopt};
use crate::agent::options::{self, long_name};
use crate::cli::Cli;

const SECTION: &str = "8";
const MANUAL: &str = "System Manager's Manual";

fn source() -> String {
    format!("fencekit {}", env!("CARGO_PKG_VERSION"))
}

/// The pages' date: `$SOURCE_DATE_EPOCH` when set (reproducible package builds), else
/// today, as YYYY-MM-DD.
fn date() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let (year, month, day) = civil_date(seconds / 86_400);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes every page into `dir`; returns the paths written.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, page) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

/// Every page as (file name, roff text).
pub fn pages() -> io::Result<Vec<(String, String)>> {
    let mut pages = Vec::new();
    let command = Cli::command();
    pages.push(("stonith-bridge.8".to_string(), clap_page(command.clone())?));
    for sub in command.get_subcommands() {
        let name = format!("stonith-bridge-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("stonith-bridge {}", sub.get_name()));
        pages.push((format!("{name}.{SECTION}"), clap_page(sub)?));
    }
    for plugin in fencekit_plugins::POWER {
        pages.push((
            format!("{}.{SECTION}", agent_name(plugin.schema.plugin)),
            agent_page(plugin),
        ));
    }
    Ok(pages)
}

fn clap_page(command: clap::Command) -> io::Result<String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .section(SECTION)
        .date(date())
        .source(source())
        .manual(MANUAL)
        .render(&mut out)?;
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Completions for `shell` (bash, zsh, ...), from the clap definition.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "stonith-bridge", out);
}

/// The parameters a fence agent takes, in `metadata`'s order: the plugin's, the
/// fence algorithm's, then the fence-agent options the plugin does not redefine.
fn agent_params(schema: &'static Schema) -> Vec<&'static ParamSpec> {
    let mut params: Vec<&'static ParamSpec> = Vec::new();
    for spec in [schema, &fencekit_core::fence::SCHEMA, &options::SCHEMA]
        .into_iter()
        .flat_map(|s| s.params.iter())
    {
        if !params.iter().any(|p| p.name == spec.name) {
            params.push(spec);
        }
    }
    params
}

/// The page of `fence_fencekit_<plugin>`.
pub fn agent_page(plugin: &PowerPlugin) -> String {
    let schema = plugin.schema;
    let name = agent_name(schema.plugin);
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            name.to_uppercase().as_str(),
            SECTION,
            date().as_str(),
            source().as_str(),
            MANUAL,
        ],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(format!(
        "{name} - fence agent for {} (fencekit)",
        schema.summary
    ))]);
    page.control("SH", ["SYNOPSIS"]);
    page.text([
        bold(name.as_str()),
        roman(" ["),
        italic("OPTIONS"),
        roman("]"),
    ]);
    page.control("br", []);
    page.text([
        bold(name.as_str()),
        roman(" < "),
        italic("name=value lines"),
    ]);
    page.control("SH", ["DESCRIPTION"]);
    page.text([roman(schema.description)]);
    page.control("PP", []);
    page.text([roman(
        "Options are given on the command line or, when there is no argument at all, as \
         name=value lines on standard input (one per line, the names below without the \
         leading dashes), as every fence agent of fence-agents takes them. off and reboot \
         succeed only when every plug was read back off after the command, before the \
         deadline.",
    )]);
    page.control("SH", ["OPTIONS"]);
    for spec in agent_params(schema) {
        option(&mut page, schema, spec);
    }
    page.control("SH", ["ACTIONS"]);
    for (action, text) in ACTIONS
        .iter()
        .filter(|(a, _)| schema.multi_plug || !matches!(*a, "list" | "list-status"))
        // A fabric device never reboots a node (see `PowerSwitch::fabric`).
        .filter(|(a, _)| !(schema.fabric() && *a == "reboot"))
    {
        page.control("TP", []);
        page.text([bold(*action)]);
        page.text([roman(*text)]);
    }
    page.control("SH", ["EXIT STATUS"]);
    for (code, text) in EXIT_STATUS {
        page.control("TP", []);
        page.text([bold(*code)]);
        page.text([roman(*text)]);
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([
        bold("stonith-bridge"),
        roman("(8), "),
        bold("stonith_admin"),
        roman("(8), "),
        bold("pacemaker-fenced"),
        roman("(7)"),
    ]);
    page.render()
}

fn option(page: &mut Roff, schema: &Schema, spec: &ParamSpec) {
    page.control("TP", []);
    page.text([bold(getopt(schema, spec, &long_name(spec.name)))]);
    let mut text = spec.description.to_string();
    if let Some(note) = schema.plug_note().filter(|_| spec.name == "plug") {
        text = note.to_string();
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    if let ParamType::Select(choices) = spec.ty {
        text.push_str(&format!(" One of: {}.", choices.join(", ")));
    }
    if let Some(default) = spec.default {
        text.push_str(&format!(" Default: {default}."));
    }
    if spec.required || (spec.name == "plug" && schema.plug_required()) {
        text.push_str(" Required.");
    }
    text.push_str(&format!(" On standard input: {}", spec.name));
    for alias in spec.aliases {
        text.push_str(&format!(", {alias}"));
    }
    text.push('.');
    if spec.secret {
        text.push_str(
            " A secret: better given by one of the three options below than on the \
             command line, where every user can read it (ps, /proc).",
        );
    }
    page.text([roman(text)]);
    if spec.secret {
        for (suffix, what) in [
            ("file", "A file whose first line is"),
            ("script", "A command whose first line of output is"),
            ("env", "An environment variable that holds"),
        ] {
            let name = format!("{}_{suffix}", spec.name);
            page.control("TP", []);
            page.text([bold(format!("--{}=[{suffix}]", long_name(&name)))]);
            let mut also = format!("{what} the {}. On standard input: {name}", spec.name);
            for alias in spec.aliases {
                also.push_str(&format!(", {alias}_{suffix}"));
            }
            also.push('.');
            page.text([roman(also)]);
        }
    }
}

const ACTIONS: &[(&str, &str)] = &[
    ("off", "Switch every plug off and read each back until it is off."),
    (
        "on",
        "Switch every plug on and read each back until it is on.",
    ),
    (
        "reboot",
        "Off, confirmed for every plug, then on (or the device's own cycle with method=cycle, counted only when the plug was read off during it). The default action.",
    ),
    ("status", "Read the power state of every plug."),
    ("list", "List the plugs of the device with their names."),
    ("list-status", "List the plugs with their names and states."),
    ("monitor", "Check that the device answers; switches nothing."),
    ("metadata", "Print the agent's description as XML, as Pacemaker reads it."),
    ("manpage", "Print this page."),
    (
        "validate-all",
        "Check the parameters without talking to the device.",
    ),
];

const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Done and confirmed; for status: the node has power. A reboot whose off was confirmed for every plug but whose on failed also exits 0 (the node is fenced), with a warning.",
    ),
    (
        "1",
        "Failed, or a bad option: power was not confirmed in the requested state. After off or reboot the node may NOT be fenced; the message names the plug, the device and why.",
    ),
    ("2", "status: every plug of the node is off."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_page_documents_every_parameter_alias_default_and_exit_code() {
        for plugin in fencekit_plugins::POWER {
            let page = agent_page(plugin);
            assert!(page.contains("\n.TH "), "{page}");
            for spec in agent_params(plugin.schema) {
                let long = format!("--{}", long_name(spec.name)).replace('-', "\\-");
                assert!(
                    page.contains(&long),
                    "{}: {long} missing",
                    plugin.schema.plugin
                );
                for alias in spec.aliases {
                    let alias = alias.replace('-', "\\-");
                    assert!(
                        page.contains(&alias),
                        "{}: alias {alias} missing",
                        spec.name
                    );
                }
                if let Some(default) = spec.default {
                    let default = format!("Default: {}.", default.replace('-', "\\-"));
                    assert!(page.contains(&default), "{}: {default} missing", spec.name);
                }
            }
            for section in ["NAME", "SYNOPSIS", "OPTIONS", "ACTIONS", "EXIT STATUS"] {
                assert!(
                    page.contains(&format!(".SH \"{section}\""))
                        || page.contains(&format!(".SH {section}")),
                    "{section}:\n{page}"
                );
            }
        }
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_790), (2026, 12, 3));
    }

    #[test]
    fn there_is_a_page_for_the_binary_each_command_and_each_agent() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"stonith-bridge.8".to_string()));
        assert!(names.contains(&"stonith-bridge-fence.8".to_string()));
        assert!(names.contains(&"fence_fencekit_ipmi.8".to_string()));
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("fence_fencekit_"))
                .count(),
            fencekit_plugins::POWER.len()
        );
    }
}
