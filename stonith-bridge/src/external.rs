//! The cluster-glue *external* stonith plugin API (`external/fencekit-<plugin>`):
//! one operation per run as argv, parameters in environment variables named exactly
//! like the names `getconfignames` prints, exit status 0 for success. `off` and
//! `reset` succeed only when the fence algorithm confirmed power off.

use fencekit_core::schema::{Origin, ParamSpec, ParamType, PluginKind, RawParam, Schema};
use fencekit_core::{FenceAction, Plug};
use fencekit_plugins::Registry;

use crate::request::{self, Request};
use crate::xml::escape;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "hostname",
        "The one host this device fences (a BMC's machine), or a space-separated list",
    ),
    ParamSpec::new(
        "hostlist",
        "Hosts this device fences, separated by spaces or commas; on a power strip each host's outlet carries the host's name",
    ),
    ParamSpec::new(
        "hostmap",
        "Which plugs feed which host, as Pacemaker's pcmk_host_map: node1:1;node2:2,3",
    ),
];

const SCHEMA: Schema = Schema {
    plugin: "external",
    kind: PluginKind::Power,
    summary: "cluster-glue host mapping",
    description: "How cluster-glue host names map to plugs.",
    url: "",
    multi_plug: false,
    commands: &[],
    params: PARAMS,
};

const OK: u8 = 0;
const FAIL: u8 = 1;

/// The plugin's name as cluster-glue knows it.
pub fn plugin_name(plugin: &str) -> String {
    format!("fencekit-{plugin}")
}

/// Every parameter name, in the order `getconfignames` prints them.
fn config_names(schema: &Schema) -> Vec<String> {
    let mut names = Vec::new();
    for spec in schema
        .params
        .iter()
        .chain(PARAMS)
        .chain(fencekit_core::fence::SCHEMA.params)
    {
        names.push(spec.name.to_string());
        if spec.secret {
            names.push(format!("{}_file", spec.name));
            names.push(format!("{}_script", spec.name));
        }
    }
    names
}

pub async fn run(plugin_name: &str, op: &str, host: Option<&str>) -> u8 {
    let me = format!("external/{}", self::plugin_name(plugin_name));
    let registry = Registry::discover(None);
    let plugin = match request::plugin(&registry, plugin_name) {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{me}: {e}");
            return FAIL;
        }
    };
    let schema = plugin.schema;
    match op {
        "getconfignames" => {
            println!("{}", config_names(schema).join(" "));
            return OK;
        }
        "getinfo-devid" => {
            println!("fencekit {} device", schema.plugin);
            return OK;
        }
        "getinfo-devname" => {
            println!("fencekit {} STONITH device", schema.plugin);
            return OK;
        }
        "getinfo-devdescr" => {
            println!("{} {}", schema.summary, schema.description);
            return OK;
        }
        "getinfo-devurl" => {
            println!(
                "{}",
                if schema.url.is_empty() {
                    "fencekit"
                } else {
                    schema.url
                }
            );
            return OK;
        }
        "getinfo-xml" => {
            print!("{}", info_xml(schema));
            return OK;
        }
        _ => {}
    }
    // Everything else needs the parameters, from the environment.
    let raw: Vec<RawParam> = config_names(schema)
        .into_iter()
        .filter_map(|name| {
            std::env::var(&name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|value| RawParam::text(name, value, Origin::new("environment")))
        })
        .collect();
    let request = match Request::validate(plugin, &SCHEMA, &raw) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("{me}: {e}");
            return FAIL;
        }
    };
    match (op, host) {
        ("status", _) => status(&me, &request).await,
        ("gethosts", _) => gethosts(&me, &request).await,
        ("on" | "off" | "reset", Some(host)) => {
            let action = match op {
                "on" => FenceAction::On,
                "off" => FenceAction::Off,
                _ => FenceAction::Reboot,
            };
            power(&me, &request, action, host).await
        }
        ("on" | "off" | "reset", None) => {
            eprintln!("{me}: {op} needs the host to act on");
            FAIL
        }
        (other, _) => {
            eprintln!("{me}: unsupported operation '{other}'");
            FAIL
        }
    }
}

/// The plugs that feed `host`, or why there are none.
fn plugs_of(request: &Request, host: &str) -> Result<Vec<Plug>, String> {
    let multi = request.plugin.schema.multi_plug;
    if let Some(map) = request.params.text("hostmap") {
        return request::host_map_plugs(map, host).ok_or_else(|| {
            format!(
                "host {host} is not in hostmap; it maps: {}",
                request::host_map_hosts(map).join(", ")
            )
        });
    }
    let listed = hosts_listed(request);
    if !listed.is_empty() && !listed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(format!(
            "host {host} is not fenced by this device; it fences: {}",
            listed.join(", ")
        ));
    }
    if multi {
        Ok(vec![Plug::Name(host.to_string())])
    } else if listed.is_empty() {
        Err(format!(
            "this device powers one machine: set `hostname` to that machine's name before fencing {host}"
        ))
    } else {
        Ok(vec![Plug::Chassis])
    }
}

fn hosts_listed(request: &Request) -> Vec<String> {
    ["hostname", "hostlist"]
        .iter()
        .filter_map(|key| request.params.text(key))
        .flat_map(|list| list.split([' ', ',', '\n']))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

async fn power(me: &str, request: &Request, action: FenceAction, host: &str) -> u8 {
    let plugs = match plugs_of(request, host) {
        Ok(plugs) => plugs,
        Err(e) => {
            eprintln!("{me}: {e}");
            return FAIL;
        }
    };
    let devices = match request.devices() {
        Ok(devices) => devices,
        Err(e) => {
            eprintln!("{me}: {e}");
            return FAIL;
        }
    };
    let target = request.target(host, &plugs);
    let outcome = fencekit_core::fence(&devices, &target, action, &request.options()).await;
    // cluster-glue logs each output line of on/off/reset.
    println!("{}", outcome.summary());
    for note in &outcome.notes {
        println!("note: {note}");
    }
    if outcome.success {
        OK
    } else {
        for error in &outcome.errors {
            eprintln!("{me}: {error}");
        }
        FAIL
    }
}

async fn status(me: &str, request: &Request) -> u8 {
    match request.check().await {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("{me}: {e}");
            FAIL
        }
    }
}

async fn gethosts(me: &str, request: &Request) -> u8 {
    if let Some(map) = request.params.text("hostmap") {
        for host in request::host_map_hosts(map) {
            println!("{host}");
        }
        return OK;
    }
    let listed = hosts_listed(request);
    if !listed.is_empty() {
        for host in listed {
            println!("{host}");
        }
        return OK;
    }
    if !request.plugin.schema.multi_plug {
        eprintln!("{me}: set `hostname` to the machine this device powers");
        return FAIL;
    }
    // A power strip whose outlets carry the hosts' names.
    match request.list().await {
        Ok(plugs) => {
            for name in plugs.into_iter().filter_map(|plug| plug.name) {
                println!("{name}");
            }
            OK
        }
        Err(e) => {
            eprintln!("{me}: {e}");
            FAIL
        }
    }
}

/// `getinfo-xml`: only a `<parameters>` block, as cluster-glue wants it.
fn info_xml(schema: &Schema) -> String {
    let mut out = String::from("<parameters>\n");
    for spec in schema
        .params
        .iter()
        .chain(PARAMS)
        .chain(fencekit_core::fence::SCHEMA.params)
    {
        let content_type = match spec.ty {
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            _ => "string",
        };
        let default = spec
            .default
            .map(|d| format!(" default=\"{}\"", escape(d)))
            .unwrap_or_default();
        let mut names = vec![(
            spec.name.to_string(),
            spec.description.to_string(),
            spec.required,
        )];
        if spec.secret {
            names.push((
                format!("{}_file", spec.name),
                format!("File whose first line is the {}", spec.name),
                false,
            ));
            names.push((
                format!("{}_script", spec.name),
                format!("Command that prints the {}", spec.name),
                false,
            ));
        }
        for (name, description, required) in names {
            out.push_str(&format!(
                "<parameter name=\"{}\" unique=\"0\" required=\"{}\">\n<content type=\"{content_type}\"{default} />\n<shortdesc lang=\"en\">{}</shortdesc>\n<longdesc lang=\"en\">{}</longdesc>\n</parameter>\n",
                escape(&name),
                u8::from(required),
                escape(&name),
                escape(&description),
            ));
        }
    }
    out.push_str("</parameters>\n");
    out
}
