//! The fence-agent `metadata` XML (fence-agents' `metadata.rng`), generated from the
//! plugin's schema, the fence algorithm's schema and the agent's own options.

use fencekit_core::schema::{ParamSpec, ParamType, Schema};
use fencekit_plugins::PowerPlugin;

use super::options::{self, long_name};
use crate::xml::escape;

/// The agent's name for a plugin: `fence_fencekit_<plugin>`.
pub fn agent_name(plugin: &str) -> String {
    format!("fence_fencekit_{}", plugin.replace('-', "_"))
}

pub fn render(plugin: &PowerPlugin) -> String {
    let schema = plugin.schema;
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" ?>\n");
    out.push_str(&format!(
        "<resource-agent name=\"{}\" shortdesc=\"Fence agent for {} (fencekit)\" >\n",
        agent_name(schema.plugin),
        escape(schema.summary)
    ));
    out.push_str(&format!(
        "<longdesc>{} fencekit reports success only when every plug reads back in the requested state.</longdesc>\n",
        escape(schema.description)
    ));
    out.push_str(&format!(
        "<vendor-url>{}</vendor-url>\n",
        escape(schema.url)
    ));
    out.push_str("<parameters>\n");
    // A fabric agent's default action is off (fence-agents' fabric_fencing).
    let action = if schema.fabric() {
        options::PARAMS[0].default("off")
    } else {
        options::PARAMS[0]
    };
    parameter(&mut out, schema, &action, true, None);
    for spec in schema.params {
        // With `port_as_ip` the address may come as the plug: `ip` is then not
        // required, as fence_ipmilan and fence_redfish say (the agent checks it).
        let required = spec.required && !(spec.name == "ip" && schema.find("port_as_ip").is_some());
        parameter(&mut out, schema, spec, required, None);
    }
    for spec in fencekit_core::fence::SCHEMA.params {
        if schema.find(spec.name).is_none() {
            parameter(&mut out, schema, spec, false, None);
        }
    }
    for spec in &options::PARAMS[1..] {
        if schema.find(spec.name).is_some() {
            continue;
        }
        let required = spec.name == "plug" && schema.plug_required();
        let description = if spec.name == "plug" {
            schema.plug_note()
        } else {
            None
        };
        parameter(&mut out, schema, spec, required, description);
    }
    out.push_str("</parameters>\n<actions>\n");
    let diag = schema
        .commands
        .contains(&fencekit_core::DeviceCommand::Diag)
        .then_some("diag");
    for action in [
        "on",
        "off",
        "reboot",
        "status",
        "list",
        "list-status",
        "monitor",
        "metadata",
        "validate-all",
    ]
    .into_iter()
    // A device of one plug (a BMC) has no outlets to list: like fence_ipmilan it
    // offers no `list`, so that Pacemaker, given no pcmk_host_list, checks a node
    // with `status` rather than looking for it in a list that names no node. A
    // device whose plug is optional (a Redfish service: its list names systems, not
    // nodes) does the same, as fence_redfish; `-o list` still answers an admin.
    .filter(|action| schema.plug_required() || !matches!(*action, "list" | "list-status"))
    // A fabric device never reboots a node (see `PowerSwitch::fabric`).
    .filter(|action| !(schema.fabric() && *action == "reboot"))
    .chain(diag)
    {
        if action == "on" {
            // A node fenced at the fabric must be let back (unfenced) before it
            // rejoins: Pacemaker runs an automatic `on` for it, as for fence_ifmib.
            let automatic = u8::from(schema.fabric());
            out.push_str(&format!(
                "\t<action name=\"on\" automatic=\"{automatic}\"/>\n"
            ));
        } else {
            out.push_str(&format!("\t<action name=\"{action}\" />\n"));
        }
    }
    out.push_str("</actions>\n</resource-agent>\n");
    out
}

/// One parameter, then its aliases as deprecated parameters (fence-agents' way of
/// keeping legacy stdin keys), then for secrets the `_script` and `_file` forms.
fn parameter(
    out: &mut String,
    plugin: &Schema,
    spec: &ParamSpec,
    required: bool,
    description: Option<&str>,
) {
    let description = description.unwrap_or(spec.description);
    let getopt = getopt(plugin, spec, &long_name(spec.name));
    let obsoletes = spec.aliases.first();
    entry(
        out,
        spec.name,
        required,
        Attr::Obsoletes(obsoletes.copied()),
        &getopt,
        spec,
        description,
    );
    // A deprecated name is never required (fence-agents mark `ipaddr` and `option`
    // required="0" beside the required `ip` and `action`).
    for alias in spec.aliases {
        entry(
            out,
            alias,
            false,
            Attr::Deprecated,
            &getopt,
            spec,
            description,
        );
    }
    if spec.secret {
        for suffix in ["script", "file"] {
            let name = format!("{}_{suffix}", spec.name);
            let text = if suffix == "script" {
                format!("Script to run to retrieve {}", spec.name)
            } else {
                format!("File whose first line is the {}", spec.name)
            };
            let short = options::script_short(spec.name)
                .filter(|_| suffix == "script")
                .map(|c| format!("-{c}, "))
                .unwrap_or_default();
            let mixed = format!("{short}--{}=[{suffix}]", long_name(&name));
            let string = ParamSpec::new("", "");
            let legacy = obsoletes.map(|a| format!("{a}_{suffix}"));
            entry(
                out,
                &name,
                false,
                Attr::Obsoletes(legacy.as_deref()),
                &mixed,
                &string,
                &text,
            );
            if let Some(legacy) = &legacy {
                entry(out, legacy, false, Attr::Deprecated, &mixed, &string, &text);
            }
        }
    }
}

enum Attr<'a> {
    Obsoletes(Option<&'a str>),
    Deprecated,
}

/// The `getopt` text of `spec` in the agent of `plugin`: its short option only where
/// the letter is its own in that agent (ipmi's `-C` is `cipher`, not `separator`).
pub(crate) fn getopt(plugin: &Schema, spec: &ParamSpec, long: &str) -> String {
    let schemas = [plugin, &fencekit_core::fence::SCHEMA, &options::SCHEMA];
    let short = spec
        .short
        .filter(|_| options::owns_short(&schemas, spec))
        .map(|c| format!("-{c}, "))
        .unwrap_or_default();
    match spec.ty {
        ParamType::Boolean => format!("{short}--{long}"),
        _ => format!("{short}--{long}=[{}]", spec.name),
    }
}

fn entry(
    out: &mut String,
    name: &str,
    required: bool,
    attr: Attr<'_>,
    getopt: &str,
    spec: &ParamSpec,
    description: &str,
) {
    let attr = match attr {
        Attr::Obsoletes(Some(old)) => format!(" obsoletes=\"{}\"", escape(old)),
        Attr::Obsoletes(None) => String::new(),
        Attr::Deprecated => " deprecated=\"1\"".to_string(),
    };
    out.push_str(&format!(
        "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"{attr}>\n",
        escape(name),
        u8::from(required)
    ));
    out.push_str(&format!("\t\t<getopt mixed=\"{}\" />\n", escape(getopt)));
    let default = spec
        .default
        .map(|d| format!(" default=\"{}\"", escape(d)))
        .unwrap_or_default();
    match spec.ty {
        ParamType::Select(choices) => {
            out.push_str(&format!("\t\t<content type=\"select\"{default} >\n"));
            for choice in choices {
                out.push_str(&format!("\t\t\t<option value=\"{}\" />\n", escape(choice)));
            }
            out.push_str("\t\t</content>\n");
        }
        ty => out.push_str(&format!(
            "\t\t<content type=\"{}\"{default} />\n",
            ty.metadata_name()
        )),
    }
    out.push_str(&format!(
        "\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n",
        escape(description)
    ));
}

/// For `--help`: one line per option.
pub fn usage(schema: &Schema) -> String {
    let mut out = format!(
        "Usage: {} [options]   (or key=value lines on stdin)\n{}\n\nOptions:\n",
        agent_name(schema.plugin),
        schema.summary
    );
    let all = [schema, &fencekit_core::fence::SCHEMA, &options::SCHEMA];
    for spec in all.iter().flat_map(|s| s.params.iter()) {
        out.push_str(&format!(
            "  {:<40} {}\n",
            getopt(schema, spec, &long_name(spec.name)),
            spec.description
        ));
    }
    out
}
