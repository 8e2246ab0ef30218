//! The TOML configuration: devices (a plugin and its parameters) and nodes (the
//! plugs that feed them), validated against each plugin's schema, with errors that
//! name the file, the line and the parameter.
//!
//! ```toml
//! [fence]                 # optional: the fence algorithm's timing
//! power_timeout = 20
//!
//! [devices.pdu-a]
//! plugin = "apc"
//! ip = "192.0.2.10"
//! community_file = "/etc/fencekit/pdu-a.community"
//!
//! [nodes.node1]
//! plugs = [{ device = "pdu-a", plug = "3" }, { device = "pdu-b", plug = "3" }]
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use thiserror::Error;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::fence::{self, FenceOptions};
use crate::power::{FenceTarget, Plug, TargetPlug};
use crate::schema::{self, Origin, ParamError, Params, RawParam, RawValue, Schema, Unknown};

/// Where the schemas of plugins come from (the plugin registry).
pub trait Catalog {
    fn schema(&self, plugin: &str) -> Option<&'static Schema>;
    /// Every plugin name, for error messages.
    fn plugins(&self) -> Vec<&'static str>;
}

/// A device in the configuration.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub name: String,
    pub plugin: String,
    pub params: Params,
}

/// A whole configuration file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub source: String,
    pub devices: BTreeMap<String, DeviceConfig>,
    pub nodes: BTreeMap<String, FenceTarget>,
    /// The fence algorithm's parameters from `[fence]`, defaults filled in.
    pub fence: Params,
    /// Where the file holds a secret's value itself (`password = "..."`), not its
    /// source (`password_file`, `password_script`, `password_env`): the parameter's
    /// name and place, never the value.
    pub inline_secrets: Vec<(String, Origin)>,
}

impl Config {
    /// The fence options of `[fence]`.
    pub fn fence_options(&self) -> FenceOptions {
        FenceOptions::from_params(&self.fence)
    }

    /// A node by name, or an error that lists the nodes there are.
    pub fn node(&self, name: &str) -> Result<&FenceTarget, ConfigError> {
        // Names alike are refused when the file is read: this finds one node at most.
        let found = self.nodes.get(name).or_else(|| {
            self.nodes
                .iter()
                .find(|(node, _)| crate::power::names_match(node, name))
                .map(|(_, target)| target)
        });
        found.ok_or_else(|| ConfigError {
            origin: Origin::new(self.source.clone()),
            message: format!(
                "unknown node `{name}`; the file configures: {}",
                if self.nodes.is_empty() {
                    "no nodes".to_string()
                } else {
                    self.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        })
    }
}

/// A configuration that cannot be used, with the place in the file and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: Origin,
    pub message: String,
}

impl From<ParamError> for ConfigError {
    fn from(e: ParamError) -> Self {
        ConfigError {
            origin: e.origin.clone().unwrap_or_else(|| Origin::new("?")),
            message: format!("parameter `{}`: {}", e.param, e.problem),
        }
    }
}

/// Where `fence`, `list` and `check` look for their configuration when none is named.
pub const DEFAULT_PATH: &str = "/etc/fencekit/fencekit.toml";

/// The variable that names the configuration when no `--config` is given.
pub const PATH_VARIABLE: &str = "FENCEKIT_CONFIG";

/// The largest configuration file read (a regular file: [`crate::files`]).
const CONFIG_LIMIT: usize = 16 << 20;

/// The operation timeout the file at `path` sets in `[fence]` (`timeout`), read
/// before anything else of it (no secret is read, no device built), so that a front
/// end can bound everything that follows by it; the default when the file has none
/// or cannot be read.
pub fn timeout_hint(path: &Path) -> std::time::Duration {
    let default = FenceOptions::default().timeout;
    let Ok(text) = crate::files::read_text_bounded(path, CONFIG_LIMIT) else {
        return default;
    };
    let text = zeroize::Zeroizing::new(text);
    let Ok(root) = DeTable::parse(&text) else {
        return default;
    };
    let root = Wiped(root.into_inner());
    let Some(DeValue::Table(fence)) = root.0.get("fence").map(|v| v.get_ref()) else {
        return default;
    };
    let seconds = match fence.get("timeout").map(|v| v.get_ref()) {
        Some(DeValue::Integer(n)) => integer(n).map(|n| n as f64),
        Some(DeValue::Float(f)) => f.as_str().parse().ok(),
        Some(DeValue::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    seconds
        .filter(|t: &f64| t.is_finite() && (0.0..1e9).contains(t))
        .map(std::time::Duration::from_secs_f64)
        .unwrap_or(default)
}

/// Reads and validates a configuration file. A file every user may read is refused
/// when it holds a secret's value: a BMC or PDU password there is a password of every
/// local user.
pub fn load(path: &Path, catalog: &dyn Catalog) -> Result<Config, ConfigError> {
    let origin = || Origin::new(path.display().to_string());
    // The file may hold inline secrets: its text is zeroed when dropped.
    let read = crate::files::read_text_bounded(path, CONFIG_LIMIT);
    let text = zeroize::Zeroizing::new(read.map_err(|e| ConfigError {
        origin: origin(),
        message: format!("cannot read the configuration: {e}"),
    })?);
    let config = parse(&text, &path.display().to_string(), path.parent(), catalog)?;
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0);
    if let (true, Some((key, at))) = (mode & 0o004 != 0, config.inline_secrets.first()) {
        // A secret key inside the script plugin's `params` has its own parameter.
        let source = if key == "params" {
            "secret_params"
        } else {
            key.as_str()
        };
        return Err(ConfigError {
            origin: at.clone(),
            message: format!(
                "`{key}` is written in a file every user may read (mode {:o}): make it private \
                 (chmod 600 {}), or name the secret's source instead ({source}_file, \
                 {source}_script or {source}_env)",
                mode & 0o777,
                path.display()
            ),
        });
    }
    Ok(config)
}

/// The longest error message: a name or key from the file is quoted in errors, and a
/// 1 MiB key must not become a 1 MiB log line.
const MAX_MESSAGE: usize = 400;

/// Validates configuration text; `source` names it in errors, `base` is where
/// relative secret files are found.
pub fn parse(
    text: &str,
    source: &str,
    base: Option<&Path>,
    catalog: &dyn Catalog,
) -> Result<Config, ConfigError> {
    parse_unbounded(text, source, base, catalog).map_err(|mut e| {
        if e.message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !e.message.is_char_boundary(end) {
                end -= 1;
            }
            e.message.truncate(end);
            e.message.push('…');
        }
        e
    })
}

fn parse_unbounded(
    text: &str,
    source: &str,
    base: Option<&Path>,
    catalog: &dyn Catalog,
) -> Result<Config, ConfigError> {
    let lines = Lines::new(text, source);
    let root = DeTable::parse(text).map_err(|e| ConfigError {
        origin: lines.origin(e.span().map_or(0, |s| s.start)),
        message: format!("not valid TOML: {}", e.message()),
    })?;
    let root_span = root.span();
    let root = Wiped(root.into_inner());
    let root = &root.0;
    let mut config = Config {
        source: source.to_string(),
        devices: BTreeMap::new(),
        nodes: BTreeMap::new(),
        fence: Params::default(),
        inline_secrets: Vec::new(),
    };
    for (key, _) in root.iter() {
        if !matches!(key.get_ref().as_ref(), "devices" | "nodes" | "fence") {
            return Err(lines.error(
                key.span().start,
                format!(
                    "unknown section `{}`; a configuration has [devices.NAME], [nodes.NAME] and [fence]",
                    key.get_ref()
                ),
            ));
        }
    }

    let fence_raw = match root.get("fence") {
        Some(value) => raw_params(table(value, "fence", &lines)?, &lines)?,
        None => Vec::new(),
    };
    config.fence = schema::validate(&[&fence::SCHEMA], &fence_raw, Unknown::Reject, base)
        .map_err(|e| with_origin(e, lines.origin(root_span.start)))?
        .params;
    fence::FenceOptions::check_timing(&config.fence).map_err(|message| ConfigError {
        origin: lines.origin(
            root.get_key_value("fence")
                .map_or(0, |(k, _)| k.span().start),
        ),
        message,
    })?;

    if let Some(devices) = root.get("devices") {
        for (name, section) in table(devices, "devices", &lines)? {
            let (device, inline) = device(name, section, &lines, base, catalog)?;
            config.inline_secrets.extend(inline);
            config.devices.insert(device.name.clone(), device);
        }
    }
    if let Some(nodes) = root.get("nodes") {
        for (name, section) in table(nodes, "nodes", &lines)? {
            // One host under two spellings would get two plug sets, and a fence by
            // either would leave the other's plugs on (cluster tools match host
            // names without regard to case).
            if let Some(other) = config
                .nodes
                .keys()
                .find(|other| crate::power::names_alike(other, name.get_ref()))
            {
                return Err(lines.error(
                    name.span().start,
                    format!(
                        "node `{}` and node `{other}` differ only in case, blanks, \
                         accents or the Unicode form they are written in: give one host \
                         all its plugs under one name",
                        name.get_ref()
                    ),
                ));
            }
            let target = node(name, section, &lines, &config.devices)?;
            config.nodes.insert(target.node.clone(), target);
        }
    }
    Ok(config)
}

fn device(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    section: &Spanned<DeValue<'_>>,
    lines: &Lines<'_>,
    base: Option<&Path>,
    catalog: &dyn Catalog,
) -> Result<(DeviceConfig, Vec<(String, Origin)>), ConfigError> {
    let here = lines.origin(name.span().start);
    let entries = table(section, &format!("devices.{}", name.get_ref()), lines)?;
    let plugin = match entries.get("plugin").map(|v| (v.get_ref(), v.span())) {
        Some((DeValue::String(plugin), _)) => plugin.to_string(),
        Some((_, span)) => {
            return Err(lines.error(span.start, "`plugin` must be a string".into()));
        }
        None => {
            return Err(ConfigError {
                origin: here,
                message: format!(
                    "device `{}` has no `plugin`; one of: {}",
                    name.get_ref(),
                    catalog.plugins().join(", ")
                ),
            })
        }
    };
    let plugin_span = entries.get("plugin").map_or(name.span(), |v| v.span());
    let schema = catalog
        .schema(&plugin)
        .filter(|s| s.switches_plugs())
        .ok_or_else(|| {
            lines.error(
                plugin_span.start,
                format!(
                    "unknown plugin `{plugin}` for device `{}`; known plugins: {}",
                    name.get_ref(),
                    catalog.plugins().join(", ")
                ),
            )
        })?;
    let raw: Vec<RawParam> = raw_params(entries, lines)?
        .into_iter()
        .filter(|p| p.key != "plugin")
        .collect();
    for param in &raw {
        if fence::SCHEMA.find(&param.key).is_some() && schema.find(&param.key).is_none() {
            return Err(ConfigError {
                origin: param.origin.clone(),
                message: format!(
                    "parameter `{}` belongs in the [fence] table, not in a device",
                    param.key
                ),
            });
        }
    }
    let inline = raw
        .iter()
        .filter(|p| match schema.find(&p.key) {
            Some(spec) => spec.secret || holds_secret_named_key(spec.name, &p.value),
            None => schema.open && schema::named_like_secret(&p.key),
        })
        .map(|p| (p.key.clone(), p.origin.clone()))
        .collect();
    let params = schema::validate(&[schema], &raw, Unknown::Reject, base)
        .map_err(|e| with_origin(e, here.clone()))?
        .params;
    Ok((
        DeviceConfig {
            name: name.get_ref().to_string(),
            plugin,
            params,
        },
        inline,
    ))
}

/// Whether a `params` value (the script plugin's `key=value,key=value` list) holds
/// a key named like a secret: the plugin handles its value as one.
fn holds_secret_named_key(name: &str, value: &RawValue) -> bool {
    match (name, value) {
        ("params", RawValue::Text(text)) => text
            .split(',')
            .filter_map(|item| item.split_once('='))
            .any(|(key, _)| schema::named_like_secret(key.trim())),
        _ => false,
    }
}

fn node(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    section: &Spanned<DeValue<'_>>,
    lines: &Lines<'_>,
    devices: &BTreeMap<String, DeviceConfig>,
) -> Result<FenceTarget, ConfigError> {
    let node = name.get_ref().to_string();
    let entries = table(section, &format!("nodes.{node}"), lines)?;
    for (key, _) in entries.iter() {
        if key.get_ref() != "plugs" {
            return Err(lines.error(
                key.span().start,
                format!(
                    "unknown key `{}` in node `{node}`; a node has only `plugs`",
                    key.get_ref()
                ),
            ));
        }
    }
    let Some(plugs) = entries.get("plugs") else {
        return Err(lines.error(
            name.span().start,
            format!("node `{node}` has no `plugs`, e.g. plugs = [{{ device = \"bmc1\" }}]"),
        ));
    };
    let DeValue::Array(list) = plugs.get_ref() else {
        return Err(lines.error(
            plugs.span().start,
            format!("`plugs` of node `{node}` must be a list of {{ device = ..., plug = ... }}"),
        ));
    };
    if list.is_empty() {
        return Err(lines.error(
            plugs.span().start,
            format!("node `{node}` has an empty `plugs` list"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut target = FenceTarget {
        node: node.clone(),
        plugs: Vec::new(),
    };
    for item in list.iter() {
        let at = item.span().start;
        let DeValue::Table(fields) = item.get_ref() else {
            return Err(lines.error(
                at,
                "each plug must be a table like { device = \"pdu-a\", plug = \"3\" }".into(),
            ));
        };
        let mut device = None;
        let mut plug = Plug::Chassis;
        for (key, value) in fields.iter() {
            match (key.get_ref().as_ref(), value.get_ref()) {
                ("device", DeValue::String(d)) => device = Some(d.to_string()),
                ("plug", DeValue::String(p)) => {
                    plug = Plug::try_parse(p).map_err(|e| {
                        lines.error(value.span().start, format!("plug of node `{node}`: {e}"))
                    })?
                }
                ("plug", DeValue::Integer(n)) => {
                    // An outlet number is 1 to u32::MAX; anything else must not fall
                    // back to "the chassis" (the whole machine behind a BMC).
                    plug = integer(n)
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Plug::Number)
                        .ok_or_else(|| {
                            lines.error(
                                value.span().start,
                                format!(
                                    "plug {} of node `{node}` is not an outlet number \
                                     (0 to {}); write a name as a string",
                                    n.as_str(),
                                    u32::MAX
                                ),
                            )
                        })?
                }
                ("device" | "plug", _) => {
                    return Err(lines.error(
                        value.span().start,
                        format!("`{}` must be a string", key.get_ref()),
                    ))
                }
                (other, _) => {
                    return Err(lines.error(
                        key.span().start,
                        format!("unknown key `{other}` in a plug; a plug has `device` and `plug`"),
                    ))
                }
            }
        }
        let Some(device) = device else {
            return Err(lines.error(at, format!("a plug of node `{node}` names no `device`")));
        };
        let Some(config) = devices.get(&device) else {
            return Err(lines.error(
                at,
                format!(
                    "node `{node}` uses device `{device}`, which is not configured; devices: {}",
                    devices.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let _ = config;
        let target_plug = TargetPlug { device, plug };
        if !seen.insert(target_plug.clone()) {
            return Err(lines.error(at, format!("node `{node}` lists {target_plug} twice")));
        }
        target.plugs.push(target_plug);
    }
    Ok(target)
}

type Entries<'a, 'i> = &'a DeTable<'i>;

/// The parsed document, its own copies of strings (those the parser had to unescape,
/// which may be a password) overwritten when it is dropped. Strings without escapes
/// borrow from the file's text, which the caller wipes.
struct Wiped<'i>(DeTable<'i>);

impl Drop for Wiped<'_> {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites every string value the document owns. A stack instead of recursion:
/// the nesting depth is the document's to choose.
fn wipe(table: &mut DeTable<'_>) {
    let mut pending: Vec<&mut DeValue<'_>> = table.iter_mut().map(|(_, v)| v.get_mut()).collect();
    while let Some(value) = pending.pop() {
        match value {
            DeValue::String(Cow::Owned(text)) => zeroize::Zeroize::zeroize(text),
            DeValue::Array(array) => pending.extend(array.iter_mut().map(|v| v.get_mut())),
            DeValue::Table(table) => pending.extend(table.iter_mut().map(|(_, v)| v.get_mut())),
            _ => {}
        }
    }
}

fn table<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    name: &str,
    lines: &Lines<'_>,
) -> Result<Entries<'a, 'i>, ConfigError> {
    match value.get_ref() {
        DeValue::Table(table) => Ok(table),
        _ => Err(lines.error(value.span().start, format!("`{name}` must be a table"))),
    }
}

fn raw_params(entries: Entries<'_, '_>, lines: &Lines<'_>) -> Result<Vec<RawParam>, ConfigError> {
    let mut raw = Vec::new();
    for (key, value) in entries.iter() {
        let origin = lines.origin(key.span().start);
        let value = match value.get_ref() {
            DeValue::String(s) => RawValue::Text(s.to_string()),
            DeValue::Integer(n) => RawValue::Integer(integer(n).ok_or_else(|| ConfigError {
                origin: origin.clone(),
                message: format!("parameter `{}`: integer out of range", key.get_ref()),
            })?),
            DeValue::Float(f) => RawValue::Float(f.as_str().parse().map_err(|_| ConfigError {
                origin: origin.clone(),
                message: format!("parameter `{}`: not a number", key.get_ref()),
            })?),
            DeValue::Boolean(b) => RawValue::Boolean(*b),
            _ => {
                return Err(ConfigError {
                    origin,
                    message: format!(
                        "parameter `{}`: expected a string, number or boolean",
                        key.get_ref()
                    ),
                })
            }
        };
        raw.push(RawParam {
            key: key.get_ref().to_string(),
            value,
            origin,
        });
    }
    Ok(raw)
}

fn integer(n: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(n.as_str(), n.radix()).ok()
}

fn with_origin(e: ParamError, fallback: Origin) -> ConfigError {
    ConfigError {
        origin: e.origin.clone().unwrap_or(fallback),
        message: format!("parameter `{}`: {}", e.param, e.problem),
    }
}

/// Byte offsets to lines and columns.
struct Lines<'a> {
    text: &'a str,
    source: &'a str,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, source: &'a str) -> Self {
        Lines { text, source }
    }

    fn origin(&self, offset: usize) -> Origin {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Origin::at(self.source, line, column)
    }

    fn error(&self, offset: usize, message: String) -> ConfigError {
        ConfigError {
            origin: self.origin(offset),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sims;

    const BMC_PARAMS: &[crate::schema::ParamSpec] = &[
        crate::schema::ParamSpec::new("ip", "the BMC's address")
            .aliases(&["ipaddr"])
            .required(),
        crate::schema::ParamSpec::new("password", "the BMC password").secret(),
    ];

    const BMC: Schema = Schema {
        plugin: "bmc",
        kind: crate::schema::PluginKind::Power,
        summary: "a BMC",
        description: "a BMC",
        url: "",
        multi_plug: false,
        plug_optional: false,
        commands: &[],
        params: BMC_PARAMS,
        open: false,
    };

    impl Catalog for Sims {
        fn schema(&self, plugin: &str) -> Option<&'static Schema> {
            match plugin {
                "sim" => Some(&crate::sim::SCHEMA),
                "bmc" => Some(&BMC),
                _ => None,
            }
        }
        fn plugins(&self) -> Vec<&'static str> {
            vec!["sim", "bmc"]
        }
    }

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, "fencekit.toml", None, &Sims)
    }

    const GOOD: &str = r#"
[fence]
power_timeout = 5

[devices.pdu-a]
plugin = "sim"
plugs = 8

[devices.pdu-b]
plugin = "sim"

[nodes.node1]
plugs = [{ device = "pdu-a", plug = "3" }, { device = "pdu-b", plug = 3 }]
"#;

    #[test]
    fn a_good_file_gives_devices_nodes_and_fence_options() {
        let config = parse_str(GOOD).unwrap();
        assert_eq!(config.devices["pdu-a"].params.integer("plugs"), Some(8));
        assert_eq!(config.devices["pdu-b"].params.integer("plugs"), Some(2));
        let node = config.node("node1").unwrap();
        assert_eq!(node.plugs.len(), 2);
        assert_eq!(node.plugs[1].plug, Plug::Number(3));
        assert_eq!(
            config.fence_options().power_timeout,
            std::time::Duration::from_secs(5)
        );
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_plugin_is_named_with_its_line() {
        let err = error_of("[devices.x]\nplugin = \"nope\"\n");
        assert!(
            err.starts_with("fencekit.toml:2:10: unknown plugin `nope`"),
            "{err}"
        );
        assert!(err.contains("known plugins: sim, bmc"), "{err}");
    }

    #[test]
    fn a_missing_required_parameter_names_the_device_line_and_parameter() {
        let err = error_of("\n[devices.bmc1]\nplugin = \"bmc\"\npassword = \"x\"\n");
        assert!(
            err.starts_with("fencekit.toml:2:10: parameter `ip`: missing; bmc requires it"),
            "{err}"
        );
        assert!(err.contains("also accepted as `ipaddr`"), "{err}");
    }

    #[test]
    fn a_validated_configuration_prints_no_secret() {
        let config =
            parse_str("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"pw-in-file\"\n")
                .unwrap();
        assert!(!format!("{config:?}").contains("pw-in-file"));
    }

    #[test]
    fn a_wrong_type_is_named_with_its_line_and_parameter() {
        let err = error_of("[devices.x]\nplugin = \"sim\"\nplugs = \"many\"\n");
        assert!(
            err.starts_with("fencekit.toml:3:1: parameter `plugs`"),
            "{err}"
        );
    }

    #[test]
    fn nodes_named_alike_but_for_case_or_blanks_are_refused_not_given_two_plug_sets() {
        for other in ["NODE1", "\"node1 \"", "\" Node1\"", "\"n\u{f6}de1\""] {
            let err = error_of(&format!(
                "[devices.a]\nplugin = \"sim\"\n[nodes.node1]\nplugs = [{{ device = \"a\", plug = 1 }}]\n\
                 [nodes.{other}]\nplugs = [{{ device = \"a\", plug = 2 }}]\n"
            ));
            assert!(err.contains("differ only in case, blanks"), "{err}");
        }
        // One spelling: found by any other of the same host.
        let config = parse_str(GOOD).unwrap();
        assert_eq!(config.node("NODE1").unwrap().node, "node1");
        assert_eq!(config.node(" node1 ").unwrap().node, "node1");
        // A name alike in another form is another host: not found.
        assert!(config.node("n\u{f6}de1").is_err());
    }

    #[test]
    fn an_unknown_node_lists_the_nodes() {
        let config = parse_str(GOOD).unwrap();
        let err = config.node("node9").unwrap_err().to_string();
        assert!(err.contains("unknown node `node9`"), "{err}");
        assert!(err.contains("node1"), "{err}");
    }

    #[test]
    fn a_duplicate_plug_is_an_error_on_its_line() {
        let err = error_of(
            "[devices.a]\nplugin = \"sim\"\n[nodes.n]\nplugs = [{ device = \"a\", plug = \"1\" },\n  { device = \"a\", plug = 1 }]\n",
        );
        assert!(err.starts_with("fencekit.toml:5:3:"), "{err}");
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn a_node_on_an_unknown_device_is_an_error() {
        let err = error_of("[nodes.n]\nplugs = [{ device = \"ghost\" }]\n");
        assert!(
            err.contains("device `ghost`, which is not configured"),
            "{err}"
        );
    }

    #[test]
    fn broken_toml_is_an_error_with_a_line() {
        let err = error_of("[devices.x\nplugin = 1\n");
        assert!(err.starts_with("fencekit.toml:1:"), "{err}");
    }

    #[test]
    fn fence_parameters_in_a_device_point_to_the_fence_table() {
        let err = error_of("[devices.x]\nplugin = \"sim\"\npower_timeout = 3\n");
        assert!(err.contains("belongs in the [fence] table"), "{err}");
    }

    #[test]
    fn an_out_of_range_integer_plug_is_an_error_never_the_chassis() {
        for plug in ["4294967296", "-1", "9223372036854775807", "0x1_0000_0000"] {
            let err = error_of(&format!(
                "[devices.a]\nplugin = \"sim\"\n[nodes.n]\nplugs = [{{ device = \"a\", plug = {plug} }}]\n"
            ));
            assert!(err.starts_with("fencekit.toml:4:"), "{plug}: {err}");
            assert!(err.contains("not an outlet number"), "{plug}: {err}");
        }
        let ok = parse_str(
            "[devices.a]\nplugin = \"sim\"\n[nodes.n]\nplugs = [{ device = \"a\", plug = 4294967295 }]\n",
        )
        .unwrap();
        assert_eq!(ok.nodes["n"].plugs[0].plug, Plug::Number(u32::MAX));
    }

    #[test]
    fn a_plug_string_that_is_too_long_or_holds_a_line_break_is_an_error_with_its_line() {
        let long = "x".repeat(100_000);
        for plug in [long.as_str(), "db1\\nreboot 1", &"1:".repeat(50_000)] {
            let err = error_of(&format!(
                "[devices.a]\nplugin = \"sim\"\n[nodes.n]\nplugs = [{{ device = \"a\", plug = \"{plug}\" }}]\n"
            ));
            assert!(err.starts_with("fencekit.toml:4:"), "{err:.200}");
            assert!(
                err.len() < 400,
                "the error should not echo the text: {err:.200}"
            );
        }
    }

    #[test]
    fn deeply_nested_or_huge_toml_is_an_error_never_a_stack_overflow() {
        let deep_tables = "[".repeat(100_000);
        let deep_arrays = format!("a = {}", "[".repeat(100_000));
        let deep_inline = format!("a = {}", "{ b = ".repeat(100_000));
        let closed_arrays = format!(
            "[fence]\na = {}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let huge_key = format!("{} = 1", "k".repeat(1 << 20));
        let huge_string = format!("[fence]\ntimeout = \"{}\"", "9".repeat(1 << 20));
        for text in [
            deep_tables,
            deep_arrays,
            deep_inline,
            closed_arrays,
            huge_key,
            huge_string,
        ] {
            let err = error_of(&text);
            assert!(err.starts_with("fencekit.toml:"), "{err:.200}");
            assert!(err.len() < 1000, "{err:.200}");
        }
    }

    #[test]
    fn a_file_every_user_may_read_is_refused_only_when_it_holds_a_secret_value() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        std::fs::write(dir.path().join("bmc.pw"), "pw-in-a-file\n").unwrap();
        let inline =
            "[devices.b]\nplugin = \"bmc\"\nip = \"192.0.2.1\"\npassword = \"hunter2-inline\"\n";
        let sourced =
            "[devices.b]\nplugin = \"bmc\"\nip = \"192.0.2.1\"\npassword_file = \"bmc.pw\"\n";

        let open = write("open.toml", inline, 0o644);
        let e = load(&open, &Sims).unwrap_err().to_string();
        assert!(e.contains(":4:1:"), "{e}");
        assert!(e.contains("`password`") && e.contains("mode 644"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", open.display())), "{e}");
        assert!(!e.contains("hunter2-inline"), "{e}");

        assert!(load(&write("private.toml", inline, 0o600), &Sims).is_ok());
        assert!(load(&write("group.toml", inline, 0o640), &Sims).is_ok());
        // Naming where the secret is kept is not the secret.
        assert!(load(&write("sourced.toml", sourced, 0o644), &Sims).is_ok());
    }

    #[test]
    fn a_fence_table_whose_delay_cannot_fit_its_timeout_is_an_error_with_its_line() {
        let err = error_of("[fence]\ndelay = 40\n");
        assert!(err.contains("delay") && err.contains("timeout"), "{err}");
        assert!(err.contains(":1:"), "{err}");
        let err = error_of("[fence]\ntimeout = 0\n");
        assert!(err.contains("timeout"), "{err}");
        assert!(parse_str("[fence]\ndelay = 15\n").is_ok());
    }

    #[test]
    fn strings_the_parser_unescaped_are_wiped_at_any_depth() {
        let text = "[devices.a]\npassword = \"s\\u0065cret\"\nplain = \"kept\"\n\
                    [devices.b.c]\nlist = [[\"d\\u0065ep\"]]\n";
        let mut table = DeTable::parse(text).unwrap().into_inner();
        let owned = |t: &DeTable<'_>| format!("{t:?}");
        assert!(owned(&table).contains("secret") && owned(&table).contains("deep"));
        wipe(&mut table);
        let after = owned(&table);
        assert!(
            !after.contains("secret") && !after.contains("deep"),
            "{after}"
        );
        assert!(
            after.contains("kept"),
            "a borrowed string is the caller's to wipe: {after}"
        );
    }

    #[test]
    fn no_error_or_debug_of_a_configuration_shows_a_password() {
        const PW: &str = "uniq-pw-83f1c2";
        let good = format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"{PW}\"\n");
        let config = parse_str(&good).unwrap();
        assert!(!format!("{config:?}").contains(PW));
        assert!(!format!("{:?}", config.devices["bmc1"].params).contains(PW));
        // Every way a file holding the password can be wrong.
        let broken = [
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"{PW}\"\nbogus = 1\n"),
            format!("[devices.bmc1]\nplugin = \"nope\"\npassword = \"{PW}\"\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"{PW}\"\npassword = \"{PW}\"\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"{PW}"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = {PW}\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = [\"{PW}\"]\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword_env = \"{PW}\"\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword_file = \"/nonexistent/{PW}x\"\n"),
            format!("[devices.bmc1]\nplugin = \"sim\"\npassword = \"{PW}\"\n"),
            format!("[fence]\npassword = \"{PW}\"\n"),
            format!("[devices.bmc1]\nplugin = \"bmc\"\nip = \"x\"\npassword = \"{PW}\"\n[nodes.n]\nplugs = [{{ device = \"bmc1\", plug = \"db\\n\" }}]\n"),
            format!("{PW} = 1\n"),
        ];
        for text in &broken {
            let shown = match parse_str(text) {
                Ok(config) => vec![format!("{config:?}")],
                Err(err) => vec![err.to_string(), format!("{err:?}")],
            };
            for shown in shown {
                // The file may name the secret's *source* (a variable, a path): that
                // is not the secret. Only an inline value must never be echoed.
                if text.contains(&format!("password = \"{PW}\""))
                    || text.contains(&format!("= {PW}"))
                    || text.contains(&format!("[\"{PW}\"]"))
                {
                    assert!(!shown.contains(PW), "{text:?} gave {shown}");
                }
            }
        }
    }
}
