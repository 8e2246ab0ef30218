//! The cluster-glue *external* stonith plugin API (`external/fencekit-<plugin>`):
//! one operation per run as argv, parameters in environment variables (the names
//! `getconfignames` prints and every other name fencekit reads), exit status 0 for
//! success. `off` and
//! `reset` succeed only when the fence algorithm confirmed power off.

use std::time::Duration;

use fencekit_core::schema::{Origin, ParamSpec, ParamType, PluginKind, RawParam, RawValue, Schema};
use fencekit_core::{FenceAction, FenceOptions, Instant, Plug};
use fencekit_plugins::Registry;

use crate::logging;
use crate::request::{self, RawParams, Request, Stage};
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
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: false,
};

const OK: u8 = 0;
const FAIL: u8 = 1;

/// The plugin's name as cluster-glue knows it.
pub fn plugin_name(plugin: &str) -> String {
    format!("fencekit-{plugin}")
}

/// The parameter names of cluster-glue's own plugins, taken with their meanings by
/// the fencekit plugin that stands in for them: (plugin, cluster-glue's name,
/// fencekit's). `external/ipmi`: `hostname ipaddr userid passwd interface`, with
/// `port` (the BMC's UDP port), `passwd_method` and `priv`; `baytech`: `ipaddr login
/// password`; `apcmastersnmp`: `ipaddr port community` (`port`: the SNMP agent's UDP
/// port).
const GLUE_NAMES: &[(&str, &str, &str)] = &[
    ("ipmi", "hostname", "hostname"),
    ("ipmi", "ipaddr", "ip"),
    ("ipmi", "userid", "username"),
    ("ipmi", "passwd", "password"),
    ("ipmi", "interface", "interface"),
    ("ipmi", "port", "ipport"),
    ("ipmi", "passwd_method", "passwd_method"),
    ("ipmi", "priv", "privlvl"),
    ("ipmi", "ipmitool", "ipmitool_path"),
    ("baytech", "ipaddr", "ip"),
    ("baytech", "login", "username"),
    ("baytech", "password", "password"),
    ("apc", "ipaddr", "ip"),
    ("apc", "port", "ipport"),
    ("apc", "community", "community"),
];

/// The names cluster-glue's own plugin prints for `getconfignames`, in its order:
/// `stonith -p`/`-F` (and Heartbeat's `stonith_host` lines) give one word for each
/// of them, in that order, and refuse a configuration with fewer words than names.
const GLUE_CONFIG_NAMES: &[(&str, &[&str])] = &[
    (
        "ipmi",
        &["hostname", "ipaddr", "userid", "passwd", "interface"],
    ),
    ("baytech", &["ipaddr", "login", "password"]),
    ("apc", &["ipaddr", "port", "community"]),
];

/// cluster-glue's names for `plugin`, in its order.
fn glue_names(plugin: &str) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    GLUE_NAMES
        .iter()
        .filter(move |(p, _, _)| *p == plugin)
        .map(|(_, glue, ours)| (*glue, *ours))
}

/// The names `getconfignames` prints. A plugin standing in for one of
/// cluster-glue's prints exactly that plugin's names, so that its positional
/// configurations (`stonith -p`, `-F`, `stonith_host`) map word for word as before;
/// every other name still reaches it from the environment (`read_names`), where
/// `stonith` name=value pairs and Pacemaker's `fence_legacy` put them. Any other
/// plugin prints every name it reads: fencekit's own, then the fence options.
fn config_names(schema: &Schema) -> Vec<String> {
    if let Some((_, names)) = GLUE_CONFIG_NAMES.iter().find(|(p, _)| *p == schema.plugin) {
        return names.iter().map(ToString::to_string).collect();
    }
    all_names(schema)
}

/// Every parameter name: cluster-glue's own plugin's names first, then fencekit's.
fn all_names(schema: &Schema) -> Vec<String> {
    let mut names: Vec<String> = glue_names(schema.plugin)
        .map(|(glue, _)| glue.to_string())
        .collect();
    for spec in schema
        .params
        .iter()
        .chain(PARAMS)
        .chain(fencekit_core::fence::SCHEMA.params)
    {
        if names.iter().any(|n| n == spec.name) {
            continue;
        }
        names.push(spec.name.to_string());
        if spec.secret {
            names.push(format!("{}_file", spec.name));
            names.push(format!("{}_script", spec.name));
        }
    }
    names
}

/// cluster-glue's names (see [`GLUE_NAMES`]) turned into fencekit's, as the plugin
/// they come from reads them. A name of fencekit's given as well says the same
/// ([`refuse_differing_names`] has refused it otherwise). `passwd_method`
/// is `external/ipmi`'s: `param` and `env` (the password is `passwd` either way),
/// `file` (`passwd` names a file holding it); `priv` is upper case there.
fn from_glue_names(plugin: &str, raw: &mut RawParams) -> Result<(), String> {
    let given = |raw: &RawParams, name: &str| raw.iter().any(|p| p.key == name);
    let value = |raw: &RawParams, name: &str| {
        raw.iter()
            .rev()
            .find(|p| p.key == name)
            .and_then(|p| match &p.value {
                RawValue::Text(t) => Some(t.clone()),
                _ => None,
            })
    };
    if plugin == "apc" {
        apcmastersnmp_address(raw, value(raw, "ipaddr"), value(raw, "port"))?;
    }
    let method = value(raw, "passwd_method");
    let method = method.as_deref().map(str::trim).unwrap_or("param");
    if !matches!(method, "param" | "env" | "file" | "") {
        return Err(format!(
            "parameter `passwd_method`: `{}` is not param, env or file",
            crate::agent::options::shown_word(method)
        ));
    }
    raw.retain(|p| p.key != "passwd_method");
    for (glue, ours) in glue_names(plugin) {
        if glue == ours || glue == "passwd_method" {
            continue;
        }
        let Some(mut text) = value(raw, glue) else {
            continue;
        };
        let mut ours = ours;
        if glue == "passwd" && method == "file" {
            ours = "password_file";
        }
        if glue == "priv" {
            text = text.to_ascii_lowercase();
        }
        let taken = given(raw, ours);
        raw.retain(|p| p.key != glue);
        if !taken {
            raw.push(RawParam::text(ours, text, Origin::new("environment")));
        }
    }
    Ok(())
}

/// cluster-glue's `apcmastersnmp` hands `ipaddr` to net-snmp as the peer's name
/// and ignores `port` (its metadata says so): the agent's UDP port is 161, or the
/// one `ipaddr` gives (`host:port`, `udp:host:port`, `udp:[v6]:port`). The same
/// here: a port in `ipaddr` is the port; `port` alone may only say 161, since any
/// other value was never used by apcmastersnmp and would send the commands
/// elsewhere than the configuration that worked (fencekit's own `ipport` is there
/// for that).
fn apcmastersnmp_address(
    raw: &mut RawParams,
    ipaddr: Option<String>,
    port: Option<String>,
) -> Result<(), String> {
    let peer = ipaddr.as_deref().and_then(snmp_peer);
    let origin = || Origin::new("environment");
    if let Some((host, peer_port)) = peer {
        let other = raw.iter().any(|p| {
            p.key == "ipport"
                && matches!(&p.value, RawValue::Text(t) if t.trim().parse::<u16>().ok() != Some(peer_port))
        });
        // `port=161` was taken out before (it says apcmastersnmp's own port).
        let differs = port
            .as_deref()
            .is_some_and(|p| p.trim().parse::<u16>().ok() != Some(peer_port));
        if other || differs {
            return Err(format!(
                "the agent's UDP port is given in `ipaddr` and as `{}`, with different \
                 values: refusing rather than guessing which one is meant; set one of them",
                if other { "ipport" } else { "port" }
            ));
        }
        raw.retain(|p| p.key != "ipaddr" && p.key != "port");
        raw.push(RawParam::text("ipaddr", host, origin()));
        raw.push(RawParam::text("port", peer_port.to_string(), origin()));
        return Ok(());
    }
    match port.as_deref().map(str::trim) {
        None | Some("" | "161") => Ok(()),
        Some(_) => Err(
            "parameter `port`: a value other than 161 (not shown: with a word \
             too few in a configuration in words it is the community) was never used by \
             cluster-glue's apcmastersnmp, which always reached the agent on UDP port 161 \
             unless `ipaddr` named another (`host:port`); give the port that way, or as \
             `ipport`, or leave `port` at 161"
                .to_string(),
        ),
    }
}

/// An SNMP peer name as net-snmp reads it, when it names a port: `host:port`,
/// `udp:host:port`, `[v6]:port`, `udp:[v6]:port`. The host and the port.
fn snmp_peer(text: &str) -> Option<(String, u16)> {
    let text = text.trim();
    let (udp, text) = match text.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("udp:") => (true, &text[4..]),
        _ => (false, text),
    };
    if udp && !text.contains(':') {
        return (!text.is_empty()).then(|| (text.to_string(), 161));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        (host, rest.strip_prefix(':')?)
    } else {
        let (host, port) = text.split_once(':')?;
        if port.contains(':') {
            // An IPv6 address without brackets: no port in it.
            return None;
        }
        (host, port)
    };
    let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Pacemaker runs a cluster-glue plugin through `fence_legacy`, which puts every
/// option it is given into the environment. Pacemaker 2.1 gives it the device's
/// attributes and `nodename` only; older ones added the node as `port` where the
/// device set none. Where cluster-glue's plugin calls a UDP port `port`
/// (external/ipmi, apcmastersnmp), a `port` that is not a port number is that
/// node's name: it is left out, since the node arrives as the operation's host
/// argument. A number is the device's own `port`, read with its meaning on every
/// operation (monitor and fence alike). apcmastersnmp's `port=161` says the port it
/// always used: left out, so that `ipport` or a port in `ipaddr` may say another.
fn drop_fence_legacy_port(plugin: &str, raw: &mut RawParams) -> Result<(), String> {
    if !glue_names(plugin).any(|(glue, _)| glue == "port") {
        return Ok(());
    }
    // The node's name arrives as `port` beside the same `nodename` only. Any other
    // `port` that is no port number (a typing mistake, or with a configuration in
    // words a word short the community or password) is refused, its value not shown,
    // never left out for the default port.
    let nodename = raw
        .iter()
        .rev()
        .find(|p| p.key == "nodename")
        .and_then(|p| match &p.value {
            RawValue::Text(t) => Some(t.trim().to_string()),
            _ => None,
        })
        .or_else(|| std::env::var("nodename").ok().map(|t| t.trim().to_string()))
        .filter(|name| !name.is_empty());
    let bad = raw.iter().any(|p| {
        p.key == "port"
            && !matches!(&p.value, RawValue::Text(t)
                if t.trim().parse::<u16>().is_ok_and(|n| n > 0)
                    || nodename.as_deref().is_some_and(|name| t.trim().eq_ignore_ascii_case(name)))
    });
    if bad {
        return Err(
            "parameter `port` is no UDP port number (1-65535) nor the node's name beside \
             `nodename` (not shown, as it may be another name's word: with a word too few \
             in a configuration in words, the community or password)"
                .to_string(),
        );
    }
    raw.retain(|p| {
        let number = match &p.value {
            RawValue::Text(t) => t.trim().parse::<u16>().ok().filter(|&n| n > 0),
            _ => None,
        };
        p.key != "port" || (number.is_some() && !(plugin == "apc" && number == Some(161)))
    });
    Ok(())
}

/// A configuration given in words (`stonith -p`, `-F`, Heartbeat's `stonith_host`)
/// gives one word to each of the plugin's names in order ([`GLUE_CONFIG_NAMES`]),
/// the last taking the rest of the line: a word too many (two host names) moves
/// every later word one name on, the password into a name whose error would quote
/// its value (external/ipmi's `interface`), and a word too few in `-F` the
/// password alone. A last name that is no secret and holds several words, or one
/// its choices do not hold, is refused, its value not shown.
fn refuse_shifted_words(plugin: &str, schemas: &[&Schema], raw: &RawParams) -> Result<(), String> {
    let Some((_, names)) = GLUE_CONFIG_NAMES.iter().find(|(p, _)| *p == plugin) else {
        return Ok(());
    };
    let Some(&last) = names.last() else {
        return Ok(());
    };
    let ours = glue_names(plugin)
        .find(|(glue, _)| *glue == last)
        .map_or(last, |(_, ours)| ours);
    let spec = schemas.iter().find_map(|schema| schema.find(ours));
    if spec.is_some_and(|spec| spec.secret) {
        return Ok(());
    }
    let out_of_place = |t: &str| {
        t.split_ascii_whitespace().nth(1).is_some()
            || matches!(spec.map(|spec| spec.ty), Some(ParamType::Select(choices))
                if !t.trim().is_empty()
                    && !choices.iter().any(|c| c.eq_ignore_ascii_case(t.trim())))
    };
    let shifted = raw
        .iter()
        .any(|p| p.key == last && matches!(&p.value, RawValue::Text(t) if out_of_place(t)));
    if !shifted {
        return Ok(());
    }
    Err(format!(
        "parameter `{last}` holds several words, or a word that is none of its values{} (not \
         shown, as it may be another name's word, the password): a configuration in words \
         (`stonith -p`, `-F`, `stonith_host`) gives {} one word each, in that order, and the \
         last the rest of the line, so a word too many (two host names) moves every later \
         word, the password among them, to the next name; give one word for each name, or \
         the parameters as name=value",
        match spec.map(|spec| spec.ty) {
            Some(ParamType::Select(choices)) => format!(" ({})", choices.join(", ")),
            _ => String::new(),
        },
        names.join(" ")
    ))
}

/// Refuses a parameter given under two of its names with different values (`ip`
/// and `ipaddr`, `ipport` and external/ipmi's `port`, `password` and `passwd`).
/// cluster-glue's environment has no order to tell which was meant, and taking
/// either could switch another device: the error names both, never a value.
fn refuse_differing_names(
    plugin: &str,
    schemas: &[&Schema],
    raw: &RawParams,
) -> Result<(), String> {
    let canonical = |key: &str| -> Option<&'static ParamSpec> {
        let key = glue_names(plugin)
            .find(|(glue, _)| *glue == key)
            .map_or(key, |(_, ours)| ours);
        schemas.iter().find_map(|schema| schema.find(key))
    };
    let texts: Vec<(&str, &'static ParamSpec, &str)> = raw
        .iter()
        .filter_map(|param| match &param.value {
            RawValue::Text(text) => {
                canonical(&param.key).map(|name| (param.key.as_str(), name, text.trim()))
            }
            _ => None,
        })
        .collect();
    for (i, (key, name, text)) in texts.iter().enumerate() {
        if let Some((other, _, _)) = texts[i + 1..].iter().find(|(other, spec, t)| {
            // A choice is read whatever its case (`priv=OPERATOR`).
            let same = if matches!(spec.ty, ParamType::Select(_)) {
                t.eq_ignore_ascii_case(text)
            } else {
                t == text
            };
            spec.name == name.name && other != key && !same
        }) {
            let name = name.name;
            return Err(format!(
                "parameter `{name}` is given as `{key}` and as `{other}`, with different values: \
                 refusing rather than guessing which one is meant; set one of them"
            ));
        }
    }
    Ok(())
}

/// Every name a parameter is read from the environment under: the names
/// `getconfignames` prints, and also each alias and, for a secret, the `_file`,
/// `_script` and `_env` forms of each of its names. cluster-glue exports every
/// parameter of the resource, listed or not: a `passwd` or `password_env` left in
/// the environment would be ignored and inherited by every child (notify command,
/// `password_script`, script plugin).
fn read_names(schema: &Schema) -> Vec<String> {
    let mut names = all_names(schema);
    for spec in schema
        .params
        .iter()
        .chain(PARAMS)
        .chain(fencekit_core::fence::SCHEMA.params)
    {
        for name in spec.names() {
            names.push(name.to_string());
            if spec.secret {
                for suffix in ["_file", "_script", "_env"] {
                    names.push(format!("{name}{suffix}"));
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The work of one run, read and validated.
pub struct Prepared {
    me: String,
    request: Request,
    op: String,
    host: Option<String>,
}

/// Answers what needs no parameters; otherwise reads the parameters from the
/// environment, removes every variable it read from it (so that no child, such as
/// the notify command, a `password_script` or a script plugin, inherits them), and
/// validates them. Runs while the process has one thread (see `main`).
pub fn prepare(plugin_name: &str, op: &str, words: &[String]) -> Stage<Prepared> {
    let started = Instant::now();
    let me = format!("external/{}", self::plugin_name(plugin_name));
    logging::set_syslog_ident(&me);
    // cluster-glue runs `plugin OP HOST` through the shell, the host unquoted: a
    // host name holding a blank (`outlet 4`) arrives as several words. Taking the
    // first would switch another outlet (`outlet`); the name cannot be rebuilt (how
    // many blanks stood where is lost).
    if words.len() > 1 {
        logging::report!(
            "{me}: the host arrived as {} words ({}): cluster-glue passes a host to an \
             external plugin unquoted, so a name holding a blank cannot reach it; refusing \
             rather than switching the outlet the first word names. Rename the outlet, or \
             map a host name without blanks to it (hostmap)",
            words.len(),
            words
                .iter()
                .take(8)
                .map(|w| format!("`{}`", shown_host(w)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        return Stage::Done(FAIL);
    }
    let host = words.first().map(String::as_str);
    let timeout = std::env::var("timeout")
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && (0.0..1e9).contains(t))
        .map(Duration::from_secs_f64)
        .unwrap_or(FenceOptions::default().timeout);
    fencekit_core::secret::set_operation_deadline((started + timeout).into_std());
    let registry = Registry::discover(None).with_deadline(started + timeout);
    let plugin = match request::plugin(&registry, plugin_name) {
        Ok(plugin) => plugin,
        Err(e) => {
            logging::report!("{me}: {e}");
            return Stage::Done(FAIL);
        }
    };
    let schema = plugin.schema;
    match op {
        "getconfignames" => {
            println!("{}", config_names(schema).join(" "));
            return Stage::Done(OK);
        }
        "getinfo-devid" => {
            println!("fencekit {} device", schema.plugin);
            return Stage::Done(OK);
        }
        "getinfo-devname" => {
            println!("fencekit {} STONITH device", schema.plugin);
            return Stage::Done(OK);
        }
        "getinfo-devdescr" => {
            println!("{} {}", schema.summary, schema.description);
            return Stage::Done(OK);
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
            return Stage::Done(OK);
        }
        "getinfo-xml" => {
            print!("{}", info_xml(schema));
            return Stage::Done(OK);
        }
        _ => {}
    }
    let mut names = read_names(schema);
    // Variables named like a secret that the plugin does not declare: an open
    // plugin's (the script's) parameters, read as such; for any other plugin a
    // secret it has no use for (`ipmi_password` mistyped, `api_token` copied),
    // taken out of the environment all the same, so that no child inherits it.
    let unread = secret_named_env(&names);
    if schema.open {
        names.extend(unread);
    } else {
        for name in &unread {
            std::env::remove_var(name);
        }
        let unread: Vec<&str> = unread.iter().map(String::as_str).collect();
        if let Err(e) = fencekit_core::environ::blank_initial(&unread) {
            tracing::warn!("cannot blank a variable in the process's initial environment: {e}");
        }
    }
    let mut raw = match take_env_params(&names) {
        Ok(raw) => raw,
        Err(e) => {
            logging::report!("{me}: {e}");
            return Stage::Done(FAIL);
        }
    };
    if let Err(e) = drop_fence_legacy_port(schema.plugin, &mut raw) {
        logging::report!("{me}: {e}");
        return Stage::Done(FAIL);
    }
    let schemas = [schema, &SCHEMA, &fencekit_core::fence::SCHEMA];
    if let Err(e) = refuse_shifted_words(schema.plugin, &schemas, &raw) {
        logging::report!("{me}: {e}");
        return Stage::Done(FAIL);
    }
    // The checks of cluster-glue's own names below may quote a value. With
    // `passwd_method=file`, `passwd` names the file that holds the password.
    let file_method = raw
        .iter()
        .rev()
        .find(|p| p.key == "passwd_method")
        .is_some_and(|p| matches!(&p.value, RawValue::Text(t) if t.trim() == "file"));
    let inline = RawParams(
        raw.iter()
            .filter(|p| {
                // A path; anything else may be the password itself, left there.
                !(file_method
                    && p.key == "passwd"
                    && matches!(&p.value, RawValue::Text(t) if t.trim().starts_with('/')))
            })
            .cloned()
            .collect(),
    );
    fencekit_core::schema::watch_inline_secrets(&schemas, &inline);
    if let Err(e) = refuse_differing_names(schema.plugin, &schemas, &raw) {
        logging::report!("{me}: {e}");
        return Stage::Done(FAIL);
    }
    if schema.plugin == "ipmi" && raw.iter().any(|p| p.key == "port") {
        // external/ipmi 1.0.12 has no `port` and reaches the BMC on 623:
        // fencekit takes it as the BMC's UDP port, and
        // says so, since a configuration moved from external/ipmi unchanged had
        // reached the BMC at 623 whatever `port` said.
        logging::report!(
            "{me}: warning: `port` is taken as the BMC's UDP port (as `ipport`); \
             cluster-glue's external/ipmi ignores it and uses 623"
        );
    }
    if let Err(e) = from_glue_names(schema.plugin, &mut raw) {
        logging::report!("{me}: {e}");
        return Stage::Done(FAIL);
    }
    if let Err(e) = request::take_env_secrets(&schemas, &mut raw) {
        logging::report!("{me}: {e}");
        return Stage::Done(FAIL);
    }
    let request = match Request::validate(plugin, &SCHEMA, &raw, started) {
        Ok(request) => request,
        Err(e) => {
            logging::report!("{me}: {e}");
            return Stage::Done(FAIL);
        }
    };
    Stage::Run(Prepared {
        me,
        request,
        op: op.to_string(),
        host: host.map(str::to_string),
    })
}

/// The variables of the environment named like a secret (a script plugin's
/// `api_token`, `Bmc_Password`, `PASSWORD`), besides the declared `names`.
/// Parameters are named as the site wrote them; the system's own variables
/// (`SSH_AUTH_SOCK`, `PWD`, `XAUTHORITY`, Pacemaker's `PCMK_*`) are not taken.
fn secret_named_env(names: &[String]) -> Vec<String> {
    const SYSTEM: &[&str] = &[
        "PWD",
        "OLDPWD",
        "XAUTHORITY",
        "PASSWORD_STORE_DIR",
        "KRB5_KTNAME",
        "KRB5_CLIENT_KTNAME",
    ];
    const SYSTEM_PREFIXES: &[&str] = &[
        "SSH_", "SUDO_", "GIT_", "XDG_", "PCMK_", "HA_", "OCF_", "CRM_", "CIB_", "GPG_", "DBUS_",
    ];
    let system = |name: &str| {
        !name.bytes().any(|b| b.is_ascii_lowercase())
            && (SYSTEM.contains(&name) || SYSTEM_PREFIXES.iter().any(|p| name.starts_with(p)))
    };
    // A variable a declared `*_env` parameter names (`password_env=bmc_pass`) is
    // that parameter's source, read where secrets are read.
    let sources: Vec<String> = names
        .iter()
        .filter(|name| name.ends_with("_env"))
        .filter_map(|name| std::env::var(name).ok())
        .map(|source| source.trim().to_string())
        .collect();
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !system(name)
                && fencekit_core::schema::named_like_secret(name)
                && !names.contains(name)
                && !sources.contains(name)
        })
        .collect()
}

/// Reads the parameters `names` from the environment and removes each of them from
/// it. A value that is not UTF-8 is an error naming the variable (never its value);
/// an empty one counts as not given, as cluster-glue sets unset parameters empty.
/// Call only while the process has one thread.
fn take_env_params(names: &[String]) -> Result<RawParams, String> {
    // A secret another plugin would take (`password` handed to a plugin that has
    // none) is not read, but it leaves the environment all the same.
    for plugin in fencekit_plugins::POWER {
        for spec in plugin.schema.params.iter().filter(|spec| spec.secret) {
            for name in spec.names() {
                if !names.iter().any(|n| n == name) {
                    std::env::remove_var(name);
                }
            }
        }
    }
    let mut raw = RawParams::default();
    let mut bad = None;
    for name in names {
        let Some(value) = std::env::var_os(name) else {
            continue;
        };
        std::env::remove_var(name);
        match value.into_string() {
            Ok(value) if value.is_empty() => {}
            Ok(value) => raw.push(RawParam::text(
                name.clone(),
                value,
                Origin::new("environment"),
            )),
            Err(_) => {
                bad.get_or_insert_with(|| name.clone());
            }
        }
    }
    // The text the process started with still holds the values: blank it too, so
    // that /proc/PID/environ shows none of them for the rest of the run.
    let mut taken: Vec<&str> = names.iter().map(String::as_str).collect();
    for plugin in fencekit_plugins::POWER {
        for spec in plugin.schema.params.iter().filter(|spec| spec.secret) {
            for name in spec.names() {
                taken.push(name);
            }
        }
    }
    if let Err(e) = fencekit_core::environ::blank_initial(&taken) {
        tracing::warn!("cannot blank the parameters in the process's initial environment: {e}");
    }
    match bad {
        // Every variable is gone from the environment before the error is told.
        Some(name) => Err(format!(
            "parameter `{name}` in the environment is not UTF-8 text"
        )),
        None => Ok(raw),
    }
}

/// Talks to the device: the operation prepared.
pub async fn execute(prepared: Prepared) -> u8 {
    let Prepared {
        me,
        request,
        op,
        host,
    } = prepared;
    match (op.as_str(), host.as_deref()) {
        ("status", _) => status(&me, &request).await,
        ("gethosts", _) => gethosts(&me, &request).await,
        ("on" | "off" | "reset", Some(host)) => {
            let action = match op.as_str() {
                "on" => FenceAction::On,
                "off" => FenceAction::Off,
                _ => FenceAction::Reboot,
            };
            power(&me, &request, action, host).await
        }
        ("on" | "off" | "reset", None) => {
            logging::report!("{me}: {op} needs the host to act on");
            FAIL
        }
        (other, _) => {
            let other = crate::agent::options::shown_word(other);
            logging::report!("{me}: unsupported operation '{other}'");
            FAIL
        }
    }
}

/// A device that powers one machine (a BMC) fences one host. A configuration that
/// names more (a `hostmap` or `hostlist` of several hosts, `hostname` with two
/// names) would power that one machine off for any of them and report the other
/// fenced, and `gethosts` would offer them all to the cluster: refused at every
/// operation. A host map there can give its host no outlet, only `chassis`. Two
/// names of one host (`node1` and `node1.example.com`) are one host.
fn one_machine(request: &Request) -> Result<(), String> {
    if request.plugin.schema.multi_plug {
        return Ok(());
    }
    let hosts = match request.params.text("hostmap") {
        Some(map) => {
            let map = request::HostMap::parse(map)?;
            for host in map.hosts() {
                let plugs = map.plugs(host).unwrap_or_default();
                if plugs.iter().any(|plug| *plug != Plug::Chassis) {
                    return Err(format!(
                        "hostmap: host {} is mapped to {}, but this device powers one machine \
                         and has no outlets to choose: map it to `chassis`, or name it in \
                         `hostname`",
                        shown_host(host),
                        plugs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
            }
            let mut hosts: Vec<String> = map.hosts().into_iter().map(str::to_string).collect();
            // `hostname`/`hostlist` beside a map (which a fence reads first) name
            // hosts of this device too.
            hosts.extend(hosts_listed(request)?);
            hosts
        }
        None => hosts_listed(request)?,
    };
    // Each name once: names of one host are few, so the pairs stay few.
    let mut hosts = hosts;
    hosts.sort_unstable_by_key(|h| h.to_ascii_lowercase());
    hosts.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    if hosts.iter().any(|a| hosts.iter().any(|b| !same_host(a, b))) {
        return Err(format!(
            "this device powers one machine, but its configuration names several hosts ({}): \
             fencing any of them would power off that one machine and call the host asked \
             for fenced; configure one device for each host's BMC",
            hosts
                .iter()
                .map(|h| shown_host(h))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// The plugs that feed `host`, or why there are none (also when a map or list
/// cannot be read whole).
fn plugs_of(request: &Request, host: &str) -> Result<Vec<Plug>, String> {
    one_machine(request)?;
    let multi = request.plugin.schema.multi_plug;
    if let Some(map) = request.params.text("hostmap") {
        let map = request::HostMap::parse(map)?;
        return map.plugs(host).map(<[Plug]>::to_vec).ok_or_else(|| {
            format!(
                "host {} is not in hostmap; it maps: {}",
                shown_host(host),
                map.hosts().join(", ")
            )
        });
    }
    let listed = hosts_listed(request)?;
    // A full name the configuration gives (`node1.a.com`) says which `node1` it is:
    // `node1.b.com` is another host, whatever a bare `node1` beside it matches.
    let short = |name: &str| name.split('.').next().unwrap_or(name).to_ascii_lowercase();
    let contradicted = host.contains('.')
        && listed
            .iter()
            .any(|h| h.contains('.') && short(h) == short(host) && !h.eq_ignore_ascii_case(host));
    if !listed.is_empty() && (contradicted || !listed.iter().any(|h| same_host(h, host))) {
        // external/ipmi powers its BMC's machine off whatever host it is asked for;
        // a host this device does not say it fences is refused instead, since a
        // mapping that sends the wrong node here would switch the wrong machine.
        return Err(format!(
            "host {} is not fenced by this device; it fences: {} (from `hostname`/\
             `hostlist`: name the host there as the cluster names it)",
            shown_host(host),
            listed.join(", ")
        ));
    }
    if multi {
        // The outlet carries the host's name: read as a name, bounded like any plug.
        Plug::try_parse(host)
            .map_err(|e| format!("host as an outlet name: {e}"))
            .map(|_| vec![Plug::Name(host.to_string())])
    } else if listed.is_empty() {
        Err(format!(
            "this device powers one machine: set `hostname` to that machine's name before fencing {}",
            shown_host(host)
        ))
    } else {
        Ok(vec![Plug::Chassis])
    }
}

/// Every outlet named after `host` (case aside), as cluster-glue's power-strip
/// plugins take a host's outlets: a machine with two power supplies has two
/// outlets carrying its name, and both are its. None is an error.
async fn outlets_named(request: &Request, host: &str) -> Result<Vec<Plug>, String> {
    let (addressed, complete) = request.list_addressed().await?;
    if !complete {
        return Err(incomplete(&format!("named {}", shown_host(host))));
    }
    // An outlet's number that another outlet is also named after would read as
    // ambiguous when handed back to the device: it goes as the device's own address
    // of that outlet (`strip:number` on a Baytech, `1:number` on a PDU of one unit),
    // which names that number only.
    let named_as = |n: u32| {
        addressed.iter().any(|(info, _)| {
            info.name
                .as_deref()
                .and_then(|name| fencekit_core::power::canonical_digits(name.trim()))
                == Some(n)
        })
    };
    let plugs: Vec<Plug> = addressed
        .iter()
        .filter(|(info, _)| {
            info.name
                .as_deref()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case(host))
        })
        .map(|(info, address)| match &info.plug {
            Plug::Number(n) if named_as(*n) => address.clone(),
            plug => plug.clone(),
        })
        .collect();
    // An outlet whose name a reader would take for the host's (`node 1`, `nöde1`,
    // a zero-width mark) but that is not it: a power supply of this host labelled
    // another way, or another machine's. Either way not left on unsaid.
    let alike: Vec<String> = addressed
        .iter()
        .filter_map(|(info, _)| {
            let name = info.name.as_deref()?;
            (!name.trim().eq_ignore_ascii_case(host)
                && fencekit_core::power::names_alike(name, host))
            .then(|| info.plug.to_string())
        })
        .collect();
    if !alike.is_empty() {
        return Err(format!(
            "outlet(s) {} carry a name alike to {} but not the same: refusing to guess \
             whether they power this host; rename them, or map the host to its outlets' \
             numbers (hostmap)",
            alike.join(", "),
            shown_host(host)
        ));
    }
    let listed: Vec<fencekit_core::PlugInfo> =
        addressed.into_iter().map(|(info, _)| info).collect();
    if plugs.is_empty() {
        return Err(format!(
            "no outlet is named {}; outlets: {}",
            shown_host(host),
            listed
                .iter()
                .map(|info| match &info.name {
                    Some(name) => format!("{} ({name})", info.plug),
                    None => info.plug.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(plugs)
}

/// A host name from argv as shown in a message: bounded, control characters out.
fn shown_host(host: &str) -> String {
    let shown: String = host
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if shown.len() < host.len() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// Why a power strip whose listing may leave outlets out cannot find a host's
/// outlets by name (`what`: what an outlet left out could be, "named node1").
fn incomplete(what: &str) -> String {
    format!(
        "the device cannot show that its list holds every outlet, so an outlet left out \
         could be {what} too: refusing to find a host's outlets by name there; map each \
         host to its outlets' numbers (hostmap)"
    )
}

/// The hosts `hostname` and `hostlist` name. `hostname` is split at blanks only,
/// as cluster-glue splits what `external/ipmi`'s `gethosts` prints; a comma or
/// semicolon in it is refused (Pacemaker would split that word into hosts all
/// fenced through one BMC), never read as several hosts.
fn hosts_listed(request: &Request) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    if let Some(names) = request.params.text("hostname") {
        for name in names.split_ascii_whitespace() {
            if name.contains([',', ';']) {
                return Err(format!(
                    "hostname: {:?} holds a comma or semicolon: external/ipmi lists it as one \
                     word, which Pacemaker would split into hosts all fenced through this one \
                     BMC; name the one machine it powers (hosts are separated by blanks)",
                    shown_host(name)
                ));
            }
            hosts.push(request::host_list(name, "hostname")?.concat());
        }
    }
    if let Some(list) = request.params.text("hostlist") {
        hosts.extend(request::host_list(list, "hostlist")?);
    }
    Ok(hosts)
}

/// Whether `listed` (a host the configuration names) is `host` (the one asked
/// for): the same name, case aside, or one the short name of the other
/// (`node1` and `node1.example.com`: a cluster that names its nodes by their
/// full names, a device configured with the short one, which `external/ipmi`
/// fences alike, as it fences whatever host it is asked for).
fn same_host(listed: &str, host: &str) -> bool {
    let short = |name: &str| name.split('.').next().unwrap_or(name).to_string();
    let label = short(listed);
    listed.eq_ignore_ascii_case(host)
        || ((!listed.contains('.') || !host.contains('.'))
            && !label.is_empty()
            // An address's first number is no host's short name, and an address
            // (`fe80::1`) has none at all.
            && !label.bytes().all(|b| b.is_ascii_digit())
            && !label.contains(':')
            && label.eq_ignore_ascii_case(&short(host)))
}

/// Whether the device is a power strip whose outlets carry the hosts' names (not
/// a BMC whose plug is optional, such as a Redfish service).
fn is_strip(request: &Request) -> bool {
    request.plugin.schema.multi_plug && !request.plugin.schema.plug_optional
}

async fn power(me: &str, request: &Request, action: FenceAction, host: &str) -> u8 {
    let plugs = match plugs_of(request, host) {
        Ok(plugs) => plugs,
        Err(e) => {
            logging::report!("{me}: {e}");
            return FAIL;
        }
    };
    // A power strip: the host's outlets are those named after it.
    let strip = is_strip(request);
    let plugs = match plugs.as_slice() {
        [Plug::Name(name)] if strip && request.params.text("hostmap").is_none() => {
            match outlets_named(request, name).await {
                Ok(plugs) => plugs,
                Err(e) => {
                    logging::report!("{me}: {e}");
                    return FAIL;
                }
            }
        }
        _ => plugs,
    };
    // The device is told the host as Pacemaker's `nodename` tells a fence agent the
    // node (a Redfish service then takes the host's name for its only system) only
    // where the configuration says it fences that host and no other: a device named
    // for no host in particular, or for several (a blade chassis, whose collection
    // may lack a blade for a moment), must find the host's name among its own (a
    // Redfish system's Id) or refuse, as external/fencekit-ipmi refuses without
    // `hostname`.
    let only = |hosts: &[&str]| matches!(hosts, [one] if same_host(one, host));
    let declared = match request.params.text("hostmap") {
        Some(map) => request::HostMap::parse(map).is_ok_and(|map| only(&map.hosts())),
        None => hosts_listed(request)
            .is_ok_and(|hosts| only(&hosts.iter().map(String::as_str).collect::<Vec<_>>())),
    };
    let devices = match if declared {
        request.devices_for_node(host)
    } else {
        request.devices()
    } {
        Ok(devices) => devices,
        Err(e) => {
            logging::report!("{me}: {e}");
            return FAIL;
        }
    };
    let target = request.target(host, &plugs);
    let outcome = fencekit_core::fence(&devices, &target, action, &request.options()).await;
    // cluster-glue logs each output line of on/off/reset.
    println!(
        "{}",
        fencekit_core::screen::screen_lines(&outcome.summary())
    );
    logging::syslog(
        if outcome.success {
            logging::LOG_INFO
        } else {
            logging::LOG_ERR
        },
        &format!("{action:?} of {}: {}", shown_host(host), outcome.summary()),
    );
    for note in &outcome.notes {
        println!(
            "{}",
            fencekit_core::screen::screen_lines(&format!("note: {note}"))
        );
    }
    if outcome.success {
        OK
    } else {
        for error in &outcome.errors {
            logging::report!("{me}: {error}");
        }
        FAIL
    }
}

/// The monitor: the device answers, and the hosts can be fenced as configured
/// (a host map or list that a fence would refuse, or a power strip whose outlets
/// can only be found by name while its listing may leave some out, fails here,
/// not only when a node needs fencing).
async fn status(me: &str, request: &Request) -> u8 {
    let map = request.params.text("hostmap");
    let configured = match map {
        Some(map) => request::HostMap::parse(map).map(|_| ()),
        None => hosts_listed(request).map(|_| ()),
    }
    .and_then(|()| one_machine(request));
    let answered =
        match configured {
            Err(e) => Err(e),
            Ok(()) if is_strip(request) && map.is_none() => request
                .list_addressed()
                .await
                .and_then(|(_, complete)| match complete {
                    true => Ok(()),
                    false => Err(incomplete("named after a host")),
                }),
            Ok(()) => request.check().await,
        };
    match answered {
        Ok(()) => OK,
        Err(e) => {
            logging::report!("{me}: {e}");
            FAIL
        }
    }
}

async fn gethosts(me: &str, request: &Request) -> u8 {
    if let Err(e) = one_machine(request) {
        logging::report!("{me}: {e}");
        return FAIL;
    }
    if let Some(map) = request.params.text("hostmap") {
        return match request::HostMap::parse(map) {
            Ok(map) => {
                for host in map.hosts() {
                    println!("{host}");
                }
                OK
            }
            Err(e) => {
                logging::report!("{me}: {e}");
                FAIL
            }
        };
    }
    let listed = match hosts_listed(request) {
        Ok(listed) => listed,
        Err(e) => {
            logging::report!("{me}: {e}");
            return FAIL;
        }
    };
    if !listed.is_empty() {
        for host in listed {
            println!("{host}");
        }
        return OK;
    }
    if !request.plugin.schema.multi_plug {
        logging::report!("{me}: set `hostname` to the machine this device powers");
        return FAIL;
    }
    // A power strip whose outlets carry the hosts' names: each once (a host with
    // two power supplies names two outlets), case aside; none from a listing that
    // may leave outlets out, as a fence by those names would be refused.
    match request.list_addressed().await {
        Ok((_, false)) => {
            logging::report!("{me}: {}", incomplete("named after a host"));
            FAIL
        }
        Ok((plugs, true)) => {
            let names: Vec<String> = plugs
                .into_iter()
                .filter_map(|(plug, _)| plug.name)
                .map(|name| name.trim().to_string())
                .collect();
            let mut seen: Vec<String> = Vec::new();
            for name in &names {
                let name = name.clone();
                if name.is_empty() || seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                    continue;
                }
                if name.chars().any(char::is_whitespace) {
                    // cluster-glue would read it as several hosts, each a word of
                    // it, and no host name with a blank can be fenced here.
                    logging::report!(
                        "{me}: outlet {:?} is not listed as a host: its name holds a blank",
                        shown_host(&name)
                    );
                    continue;
                }
                // A fence of this host by name would be refused (see
                // `outlets_named`): not offered as a host the device fences.
                if names.iter().any(|other| {
                    !other.eq_ignore_ascii_case(&name)
                        && fencekit_core::power::names_alike(other, &name)
                }) {
                    logging::report!(
                        "{me}: outlet {:?} is not listed as a host: another outlet carries a \
                         name alike to it but not the same",
                        shown_host(&name)
                    );
                    continue;
                }
                println!("{name}");
                seen.push(name);
            }
            OK
        }
        Err(e) => {
            logging::report!("{me}: {e}");
            FAIL
        }
    }
}

/// `getinfo-xml`: only a `<parameters>` block, as cluster-glue wants it.
fn info_xml(schema: &Schema) -> String {
    let mut out = String::from("<parameters>\n");
    let described = |name: &str| {
        schema
            .params
            .iter()
            .chain(PARAMS)
            .chain(fencekit_core::fence::SCHEMA.params)
            .any(|spec| spec.name == name)
    };
    for (glue, ours) in glue_names(schema.plugin) {
        if described(glue) {
            continue;
        }
        let description = match (schema.plugin, glue) {
            ("ipmi", "port") => "The BMC's UDP port, as ipport (623 when unset); cluster-glue 1.0.12's external/ipmi has no such parameter and always reaches the BMC on 623".to_string(),
            ("apc", "port") => "Ignored by cluster-glue's apcmastersnmp, so only 161 is taken: give another UDP port in ipaddr (host:port) or as ipport".to_string(),
            ("apc", "ipaddr") => "The PDU's address, as net-snmp's peer name: host, host:port or udp:host:port".to_string(),
            (_, "passwd_method") => "How passwd is given: param or env (passwd is the password) or file (passwd names a file holding it), as external/ipmi".to_string(),
            (_, "ipmitool") => "The ipmitool program external/ipmi runs; taken and not used (fencekit speaks IPMI itself)".to_string(),
            _ => format!("The name cluster-glue's own plugin gives `{ours}`"),
        };
        out.push_str(&format!(
            "<parameter name=\"{}\" unique=\"0\" required=\"0\">\n<content type=\"string\" />\n<shortdesc lang=\"en\">{}</shortdesc>\n<longdesc lang=\"en\">{}</longdesc>\n</parameter>\n",
            escape(glue),
            escape(glue),
            escape(&description),
        ));
    }
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
        // Required under either name when cluster-glue's plugin has its own for it
        // (`ip` or `ipaddr`): a configuration with only `ipaddr` is complete, and a
        // tool that checks required parameters (pcs) must not refuse it.
        let glue_name = glue_names(schema.plugin)
            .find(|(glue, ours)| *ours == spec.name && glue != ours)
            .map(|(glue, _)| glue);
        let mut names = vec![match glue_name {
            Some(glue) if spec.required => (
                spec.name.to_string(),
                format!("{} (required, as this or as `{glue}`)", spec.description),
                false,
            ),
            _ => (
                spec.name.to_string(),
                spec.description.to_string(),
                spec.required,
            ),
        }];
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

#[cfg(test)]
mod tests {
    use super::{same_host, snmp_peer};

    #[test]
    fn a_host_is_its_name_case_aside_or_its_short_name() {
        for (listed, host) in [
            ("node1", "node1"),
            ("NODE1", "node1"),
            ("node1", "node1.example.com"),
            ("node1.example.com", "Node1"),
            ("10.0.0.5", "10.0.0.5"),
        ] {
            assert!(same_host(listed, host), "{listed} {host}");
        }
        for (listed, host) in [
            ("node1", "node2"),
            ("node1", "node10"),
            ("node1.a.example", "node1.b.example"),
            ("10", "10.0.0.5"),
            ("10.0.0.5", "10.0.0.6"),
            ("", "node1"),
            ("node1", ""),
            ("node1", ".node1"),
            ("fe80::1", "fe80::1.example.com"),
            ("fe80::1.example.com", "fe80::1"),
        ] {
            assert!(!same_host(listed, host), "{listed} {host}");
        }
    }

    #[test]
    fn an_snmp_peer_name_gives_its_host_and_port() {
        let peer = snmp_peer;
        assert_eq!(peer("10.0.0.5:1161"), Some(("10.0.0.5".into(), 1161)));
        assert_eq!(peer("udp:pdu1:161"), Some(("pdu1".into(), 161)));
        assert_eq!(peer("UDP:pdu1"), Some(("pdu1".into(), 161)));
        assert_eq!(
            peer("[2001:db8::1]:1161"),
            Some(("2001:db8::1".into(), 1161))
        );
        assert_eq!(peer("udp:[::1]:16100"), Some(("::1".into(), 16100)));
        for none in [
            "10.0.0.5",
            "2001:db8::1",
            "pdu1:0",
            "pdu1:x",
            ":161",
            "pdu1:70000",
        ] {
            assert_eq!(peer(none), None, "{none}");
        }
    }
}
