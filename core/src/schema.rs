//! The parameter schema: each plugin declares its parameters once, and everything a
//! user touches (TOML validation, fence-agent options and metadata, cluster-glue
//! `getconfignames` and `getinfo-xml`, `--help`) is generated from it.
//!
//! A parameter has a name, the aliases other agents use for it (`ipaddr` for `ip`,
//! `passwd` for `password`), a type, a default, whether it is required, and whether
//! it is a secret. A secret parameter `password` is also accepted as
//! `password_file` (a file holding it), `password_script` (a command printing it) and
//! `password_env` (an environment variable holding it), under each of its aliases
//! too (`passwd_script`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::secret::Secret;

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    /// A duration in seconds (fractions allowed), as fence-agents' `second` type.
    Seconds,
    /// One of a fixed set of words, matched without regard to case.
    Select(&'static [&'static str]),
}

impl ParamType {
    /// The type's name in fence-agents metadata.
    pub fn metadata_name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Seconds => "second",
            ParamType::Select(_) => "select",
        }
    }

    fn describe(self) -> String {
        match self {
            ParamType::String => "a string".into(),
            ParamType::Integer => "an integer".into(),
            ParamType::Boolean => "a boolean (1/yes/on/true or 0/no/off/false)".into(),
            ParamType::Seconds => "a number of seconds".into(),
            ParamType::Select(options) => format!("one of {}", options.join(", ")),
        }
    }
}

/// One parameter of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// The canonical name (fence-agents' long option name where one exists).
    pub name: &'static str,
    /// Other names users already type for it (legacy stdin keys, other agents').
    pub aliases: &'static [&'static str],
    /// The short command-line option of fence-agents, if it has one.
    pub short: Option<char>,
    pub ty: ParamType,
    pub default: Option<&'static str>,
    pub required: bool,
    pub secret: bool,
    pub description: &'static str,
}

impl ParamSpec {
    /// A plain optional string parameter; the `const fn` builders below refine it.
    pub const fn new(name: &'static str, description: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            aliases: &[],
            short: None,
            ty: ParamType::String,
            default: None,
            required: false,
            secret: false,
            description,
        }
    }

    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    pub const fn short(mut self, short: char) -> Self {
        self.short = Some(short);
        self
    }

    pub const fn ty(mut self, ty: ParamType) -> Self {
        self.ty = ty;
        self
    }

    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Every name this parameter answers to, canonical first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

/// What kind of plugin a schema belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A power device: a [`crate::PowerSwitch`].
    Power,
    /// A fabric device: a [`crate::PowerSwitch`] whose plugs are a node's links
    /// (switch ports), not its power ([`crate::PowerSwitch::fabric`]). Front ends
    /// offer off (their default action) and on (unfencing), never reboot, as
    /// fence-agents do for `fabric_fencing` agents.
    Fabric,
    /// A storage check: a [`crate::StorageHealth`].
    Storage,
}

/// A plugin's declaration of itself and its parameters.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The plugin's name in configurations and command names (`ipmi`, `apc`).
    pub plugin: &'static str,
    pub kind: PluginKind,
    /// One line: what the plugin drives.
    pub summary: &'static str,
    /// A paragraph for metadata and `--help`.
    pub description: &'static str,
    /// Where to read about the device.
    pub url: &'static str,
    /// Whether the device has several plugs (so a plug must be named to fence).
    pub multi_plug: bool,
    /// Whether a multi-plug device may be fenced with no plug named: its plugs are
    /// alternatives (the systems of a Redfish service), and one of them alone needs
    /// no name. The device refuses a missing plug where it has several.
    pub plug_optional: bool,
    /// The device's own commands the front ends may offer as actions (`diag` for a
    /// BMC's NMI); on, off and status are always there.
    pub commands: &'static [crate::switch::DeviceCommand],
    pub params: &'static [ParamSpec],
    /// Whether parameters no schema names are the plugin's too, taken as text and
    /// handed to it (the script plugin passes them to its script) instead of warned
    /// about or refused as unknown.
    pub open: bool,
}

impl Schema {
    /// Whether the plugin switches plugs: a power or a fabric device.
    pub fn switches_plugs(&self) -> bool {
        matches!(self.kind, PluginKind::Power | PluginKind::Fabric)
    }

    /// Whether the plugin fences by cutting links ([`PluginKind::Fabric`]).
    pub fn fabric(&self) -> bool {
        self.kind == PluginKind::Fabric
    }

    /// Whether fencing needs a plug named.
    pub fn plug_required(&self) -> bool {
        self.multi_plug && !self.plug_optional
    }

    /// What the `plug` parameter means where that is not "the outlet to switch".
    pub fn plug_note(&self) -> Option<&'static str> {
        if !self.multi_plug {
            Some("Accepted and ignored: this device powers one machine")
        } else if self.plug_optional {
            Some(
                "The system to switch, by its Id, where the device has several; with one \
                 system none is needed, and a plug that names none (the node name \
                 Pacemaker passes) means that one",
            )
        } else {
            None
        }
    }

    /// The parameter answering to `key` (`-` and `_` equal, case ignored).
    pub fn find(&self, key: &str) -> Option<&'static ParamSpec> {
        let key = normalize(key);
        self.params.iter().find(|p| p.names().any(|n| n == key))
    }
}

/// Where a raw parameter came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A file path, or `stdin`, `environment`, `command line`.
    pub source: String,
    /// 1-based line and column, when the source has lines.
    pub line: Option<(usize, usize)>,
}

impl Origin {
    pub fn new(source: impl Into<String>) -> Origin {
        Origin {
            source: source.into(),
            line: None,
        }
    }

    pub fn at(source: impl Into<String>, line: usize, column: usize) -> Origin {
        Origin {
            source: source.into(),
            line: Some((line, column)),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// A value as it arrived, before the schema gave it a type. It may be a secret
/// nobody has classified yet, so its `Debug` never shows text, and text is zeroed
/// when the value is dropped.
#[derive(Clone, PartialEq)]
pub enum RawValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
            RawValue::Integer(_) => f.write_str("Integer(..)"),
            RawValue::Float(_) => f.write_str("Float(..)"),
            RawValue::Boolean(b) => write!(f, "Boolean({b})"),
        }
    }
}

impl Drop for RawValue {
    fn drop(&mut self) {
        if let RawValue::Text(text) = self {
            zeroize::Zeroize::zeroize(text);
        }
    }
}

impl RawValue {
    fn type_name(&self) -> &'static str {
        match self {
            RawValue::Text(_) => "a string",
            RawValue::Integer(_) => "an integer",
            RawValue::Float(_) => "a number",
            RawValue::Boolean(_) => "a boolean",
        }
    }
}

/// One parameter as a user gave it.
#[derive(Clone, PartialEq)]
pub struct RawParam {
    pub key: String,
    pub value: RawValue,
    pub origin: Origin,
}

impl fmt::Debug for RawParam {
    // A raw value may be a secret nobody has classified yet: never print values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawParam")
            .field("key", &self.key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl RawParam {
    pub fn text(key: impl Into<String>, value: impl Into<String>, origin: Origin) -> RawParam {
        RawParam {
            key: key.into(),
            value: RawValue::Text(value.into()),
            origin,
        }
    }
}

/// A parameter's value after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Boolean(bool),
    Seconds(Duration),
    Secret(Secret),
}

/// A validated parameter set, keyed by canonical names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
    /// Parameters no schema names, for an open schema ([`Schema::open`]): kept as
    /// secrets, since nothing says which of them are.
    extra: BTreeMap<String, Secret>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Value::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn seconds(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(Value::Seconds(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn secret(&self, name: &str) -> Option<&Secret> {
        match self.values.get(name) {
            Some(Value::Secret(s)) => Some(s),
            _ => None,
        }
    }

    pub fn insert(&mut self, name: &'static str, value: Value) {
        self.values.insert(name, value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }

    /// The parameters no schema names (an open schema's), by normalized name.
    pub fn extra(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.extra.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A parameter that is wrong, naming where it came from, the parameter, and what to
/// fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}parameter `{param}`: {problem}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
pub struct ParamError {
    pub origin: Option<Origin>,
    pub param: String,
    pub problem: String,
}

/// What to do with a key no schema knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// A configuration file: an unknown key is an error (most are typos).
    Reject,
    /// The fence-agent API: warn and go on, as fence-agents do.
    Warn,
}

/// A successful validation: the parameters, and warnings for the user.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    pub params: Params,
    pub warnings: Vec<String>,
}

/// How a secret was given.
enum SecretSource {
    Inline,
    File,
    Script,
    Env,
}

/// Time a `*_script` secret command may run (less when the operation's deadline
/// comes sooner: [`crate::secret::set_operation_deadline`]).
const SECRET_SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lower case, `-` as `_`: fence-agents treat `ip-port` and `ip_port` alike.
pub fn normalize(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// Watches every secret given inline in `raw` ([`crate::screen::watch`]). Done
/// before any parameter is checked: an error about another parameter (the password
/// pasted into the wrong field) must not show it, whatever the order. A front end
/// that checks parameters of its own before [`validate`] calls this first.
pub fn watch_inline_secrets(schemas: &[&Schema], raw: &[RawParam]) {
    for text in inline_secrets(schemas, raw) {
        crate::screen::watch(&Secret::new(text));
    }
}

/// The values of the secrets given inline in `raw` (a password typed as itself,
/// not as a file, script or variable that holds it).
pub fn inline_secrets<'r>(schemas: &[&Schema], raw: &'r [RawParam]) -> Vec<&'r str> {
    raw.iter()
        .filter_map(
            |item| match (lookup(schemas, &normalize(&item.key)), &item.value) {
                (Some((spec, SecretSource::Inline)), RawValue::Text(text)) if spec.secret => {
                    Some(text.as_str())
                }
                _ => None,
            },
        )
        .collect()
}

/// Whether a parameter no schema declares (an open schema's, such as the script
/// plugin's) is named like a secret, and so is handled as one: given to a script on
/// stdin only, screened from output, taken out of cluster-glue's environment, and
/// refused in a configuration file every user may read.
pub fn named_like_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let anywhere = [
        "pass",
        "secret",
        "token",
        "key",
        "community",
        "credential",
        "auth",
        "pwd",
    ];
    // Short words only as a part of their own (`bmc_pw`, `pin`, `wifi-psk`), not
    // inside another (`mapping`, `opinion`).
    let parts = ["pw", "pin", "psk", "otp"];
    anywhere.iter().any(|word| name.contains(word))
        || name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|part| parts.contains(&part))
}

/// Validates `raw` against the union of `schemas`. When the same parameter is given
/// twice, the last one wins under [`Unknown::Warn`] (fence-agents' stdin rule) and is
/// an error under [`Unknown::Reject`]. Relative secret files are taken from `base`.
pub fn validate(
    schemas: &[&Schema],
    raw: &[RawParam],
    unknown: Unknown,
    base: Option<&Path>,
) -> Result<Validated, ParamError> {
    let mut out = Validated::default();
    // Each parameter's names as given so far (each with its last origin), and
    // whether a secret's value came from its `_script`.
    type Names<'a> = Vec<(String, &'a Origin)>;
    let mut seen: BTreeMap<&'static str, (Names, bool)> = BTreeMap::new();
    watch_inline_secrets(schemas, raw);
    for item in raw {
        let key = normalize(&item.key);
        let Some((spec, source)) = lookup(schemas, &key) else {
            let is_name = !key.is_empty()
                && key.len() <= 64
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if is_name && schemas.iter().any(|s| s.open) {
                let text = match &item.value {
                    RawValue::Text(t) => Secret::new(t.as_str()),
                    RawValue::Integer(n) => Secret::new(n.to_string()),
                    RawValue::Float(f) => Secret::new(f.to_string()),
                    RawValue::Boolean(b) => Secret::new(b.to_string()),
                };
                if out.params.extra.insert(key.clone(), text).is_some()
                    && unknown == Unknown::Reject
                {
                    return Err(ParamError {
                        origin: Some(item.origin.clone()),
                        param: item.key.clone(),
                        problem: "given twice".into(),
                    });
                }
                continue;
            }
            match unknown {
                Unknown::Reject => {
                    return Err(ParamError {
                        origin: Some(item.origin.clone()),
                        param: item.key.clone(),
                        problem: format!(
                            "unknown parameter; {} accept{}: {}",
                            schemas
                                .iter()
                                .map(|s| s.plugin)
                                .collect::<Vec<_>>()
                                .join(" and "),
                            if schemas.len() == 1 { "s" } else { "" },
                            known_names(schemas)
                        ),
                    })
                }
                Unknown::Warn => {
                    out.warnings.push(format!(
                        "{}: ignoring unknown parameter `{}`",
                        item.origin, item.key
                    ));
                    continue;
                }
            }
        };
        let scripted = matches!(source, SecretSource::Script);
        let value = convert(spec, source, item, base)?;
        if let Some((names, was_scripted)) = seen.get(spec.name) {
            if let (Unknown::Reject, Some((_, before))) = (unknown, names.first()) {
                return Err(ParamError {
                    origin: Some(item.origin.clone()),
                    param: item.key.clone(),
                    problem: format!("given twice (first at {before})"),
                });
            }
            // The same name again: the last wins, as fence-agents read stdin. Under
            // another of its names (`ip` and `ipaddr`, `username` and `login`) with
            // another value: which one the site meant cannot be told (Pacemaker
            // writes a device's parameters in no fixed order), and either may be
            // another machine. A secret given inline and by its `_script`: the
            // script's, in any order, as fence-agents run the script and take its
            // answer over the inline value.
            if *was_scripted && !scripted {
                continue;
            }
            // Any other name given before, not only the last: `ip=A ipaddr=A
            // ipaddr=B` is two values under two names as well.
            let other = names.iter().find(|(name, _)| *name != key);
            if let (Some((name, before)), true, true) = (
                other,
                scripted == *was_scripted,
                out.params.get(spec.name) != Some(&value),
            ) {
                return Err(ParamError {
                    origin: Some(item.origin.clone()),
                    param: item.key.clone(),
                    problem: format!(
                        "given as `{name}` too ({before}), with another value: both name `{}`; \
                         refusing rather than guessing which one is meant",
                        spec.name
                    ),
                });
            }
        }
        let entry = seen
            .entry(spec.name)
            .or_insert_with(|| (Vec::new(), scripted));
        if scripted != entry.1 {
            // The script's answer replaces an inline value: only its names count.
            *entry = (Vec::new(), scripted);
        }
        entry.0.retain(|(name, _)| *name != key);
        entry.0.push((key.clone(), &item.origin));
        out.params.insert(spec.name, value);
    }
    for schema in schemas {
        for spec in schema.params {
            if out.params.get(spec.name).is_some() {
                continue;
            }
            if let Some(default) = spec.default {
                let item = RawParam::text(spec.name, default, Origin::new("default"));
                out.params
                    .insert(spec.name, convert(spec, SecretSource::Inline, &item, None)?);
            } else if spec.required {
                let mut also: Vec<String> = spec.aliases.iter().map(|a| format!("`{a}`")).collect();
                if spec.secret {
                    also.push(format!("`{}_file`", spec.name));
                    also.push(format!("`{}_script`", spec.name));
                }
                return Err(ParamError {
                    origin: None,
                    param: spec.name.to_string(),
                    problem: if also.is_empty() {
                        format!(
                            "missing; {} requires it ({})",
                            schema.plugin, spec.description
                        )
                    } else {
                        format!(
                            "missing; {} requires it ({}; also accepted as {})",
                            schema.plugin,
                            spec.description,
                            also.join(", ")
                        )
                    },
                });
            }
        }
    }
    Ok(out)
}

fn known_names(schemas: &[&Schema]) -> String {
    let mut names: Vec<&str> = schemas
        .iter()
        .flat_map(|s| s.params.iter().map(|p| p.name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

fn lookup(schemas: &[&Schema], key: &str) -> Option<(&'static ParamSpec, SecretSource)> {
    for schema in schemas {
        if let Some(spec) = schema.find(key) {
            return Some((spec, SecretSource::Inline));
        }
    }
    for (suffix, source) in [
        ("_file", SecretSource::File),
        ("_script", SecretSource::Script),
        ("_env", SecretSource::Env),
    ] {
        let Some(base) = key.strip_suffix(suffix) else {
            continue;
        };
        if let Some(spec) = schemas
            .iter()
            .find_map(|schema| schema.find(base))
            .filter(|spec| spec.secret)
        {
            return Some((spec, source));
        }
    }
    None
}

fn convert(
    spec: &ParamSpec,
    source: SecretSource,
    item: &RawParam,
    base: Option<&Path>,
) -> Result<Value, ParamError> {
    let wrong = |problem: String| ParamError {
        origin: Some(item.origin.clone()),
        param: item.key.clone(),
        problem,
    };
    let expected = || {
        wrong(format!(
            "expected {}, found {}",
            spec.ty.describe(),
            match &item.value {
                RawValue::Text(t) if !spec.secret && !crate::screen::shows_watched(t) => {
                    format!("\"{t}\"")
                }
                RawValue::Text(_) if !spec.secret =>
                    "a text that holds a secret (not shown)".into(),
                other => other.type_name().to_string(),
            }
        ))
    };
    if spec.secret {
        let RawValue::Text(text) = &item.value else {
            return Err(expected());
        };
        let secret = match source {
            SecretSource::Inline => Secret::new(text.as_str()),
            SecretSource::File => {
                let path = PathBuf::from(text);
                let path = match base {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path,
                };
                Secret::from_file(&path).map_err(|e| wrong(e.to_string()))?
            }
            SecretSource::Script => Secret::from_command(
                text,
                crate::secret::bounded_by_operation(SECRET_SCRIPT_TIMEOUT),
            )
            .map_err(|e| wrong(e.to_string()))?,
            SecretSource::Env => Secret::from_env(text).map_err(|e| wrong(e.to_string()))?,
        };
        crate::screen::watch(&secret);
        return Ok(Value::Secret(secret));
    }
    match (spec.ty, &item.value) {
        (ParamType::String, RawValue::Text(t)) => Ok(Value::Text(t.clone())),
        (ParamType::String, RawValue::Integer(n)) => Ok(Value::Text(n.to_string())),
        (ParamType::Integer, RawValue::Integer(n)) => Ok(Value::Integer(*n)),
        (ParamType::Integer, RawValue::Text(t)) => {
            t.trim().parse().map(Value::Integer).map_err(|_| expected())
        }
        (ParamType::Boolean, RawValue::Boolean(b)) => Ok(Value::Boolean(*b)),
        (ParamType::Boolean, RawValue::Integer(n @ (0 | 1))) => Ok(Value::Boolean(*n == 1)),
        (ParamType::Boolean, RawValue::Text(t)) => {
            parse_bool(t).map(Value::Boolean).ok_or_else(expected)
        }
        // The same range as any other number of seconds: a deadline of i64::MAX
        // seconds from now overflows the clock.
        (ParamType::Seconds, RawValue::Integer(n)) => seconds(*n as f64).ok_or_else(expected),
        (ParamType::Seconds, RawValue::Float(f)) => seconds(*f).ok_or_else(expected),
        (ParamType::Seconds, RawValue::Text(t)) => t
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(seconds)
            .ok_or_else(expected),
        (ParamType::Select(options), RawValue::Text(t)) => options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(t.trim()))
            .map(|o| Value::Text(o.to_string()))
            .ok_or_else(expected),
        (ParamType::Select(options), RawValue::Integer(n)) => options
            .iter()
            .find(|o| **o == n.to_string())
            .map(|o| Value::Text(o.to_string()))
            .ok_or_else(expected),
        _ => Err(expected()),
    }
}

/// fence-agents' booleans.
///
/// Exactly the words fencing.py takes, in any case: `1 yes on true`, `0 no off
/// false`. Anything else (`y`, ` 1` with a blank before it, as `ssl_insecure= 1`
/// reads) is none: fence-agents ignore such a value, so honouring it could turn
/// off a certificate check or move a fence to another address they would not.
/// A trailing blank is dropped (fence-agents strip each stdin line).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim_end().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

fn seconds(value: f64) -> Option<Value> {
    (value.is_finite() && (0.0..1e9).contains(&value))
        .then(|| Value::Seconds(Duration::from_secs_f64(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_told_by_their_words() {
        for name in [
            "password",
            "api_token",
            "bmc_pwd",
            "wifi-psk",
            "pin",
            "admin_pw",
            "otp",
            "ssh_key",
            "AuthCode",
        ] {
            assert!(named_like_secret(name), "{name}");
        }
        for name in ["state_dir", "mapping", "opinion", "mode", "pinger2"] {
            assert!(!named_like_secret(name), "{name}");
        }
    }

    const PARAMS: &[ParamSpec] = &[
        ParamSpec::new("ip", "device address")
            .aliases(&["ipaddr"])
            .short('a')
            .required(),
        ParamSpec::new("ipport", "port")
            .ty(ParamType::Integer)
            .default("623"),
        ParamSpec::new("password", "password")
            .aliases(&["passwd"])
            .secret(),
        ParamSpec::new("lanplus", "use RMCP+").ty(ParamType::Boolean),
        ParamSpec::new("method", "reboot method")
            .ty(ParamType::Select(&["onoff", "cycle"]))
            .default("onoff"),
        ParamSpec::new("power_wait", "pause").ty(ParamType::Seconds),
    ];

    const SCHEMA: Schema = Schema {
        plugin: "test",
        kind: PluginKind::Power,
        summary: "a test device",
        description: "a test device",
        url: "",
        multi_plug: false,
        plug_optional: false,
        commands: &[],
        params: PARAMS,
        open: false,
    };

    fn raw(pairs: &[(&str, &str)]) -> Vec<RawParam> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| RawParam::text(*k, *v, Origin::at("stdin", i + 1, 1)))
            .collect()
    }

    #[test]
    fn aliases_types_and_defaults_are_applied() {
        let v = validate(
            &[&SCHEMA],
            &raw(&[
                ("ipaddr", "192.0.2.1"),
                ("LANPLUS", "yes"),
                ("method", "CYCLE"),
                ("power-wait", "1.5"),
            ]),
            Unknown::Reject,
            None,
        )
        .unwrap();
        assert_eq!(v.params.text("ip"), Some("192.0.2.1"));
        assert_eq!(v.params.integer("ipport"), Some(623));
        assert_eq!(v.params.boolean("lanplus"), Some(true));
        assert_eq!(v.params.text("method"), Some("cycle"));
        assert_eq!(
            v.params.seconds("power_wait"),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn a_password_given_for_another_parameter_is_not_shown_in_its_error() {
        let err = validate(
            &[&SCHEMA],
            &raw(&[
                ("ipport", "Jq4-wrong-field"),
                ("password", "Jq4-wrong-field"),
            ]),
            Unknown::Reject,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("Jq4"), "{err}");
        assert!(
            err.contains("ipport") && err.contains("holds a secret"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_required_parameter_is_named_with_its_aliases() {
        let err = validate(&[&SCHEMA], &raw(&[]), Unknown::Reject, None).unwrap_err();
        assert_eq!(err.param, "ip");
        assert!(err.to_string().contains("`ipaddr`"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_origin_parameter_and_expectation() {
        let err = validate(
            &[&SCHEMA],
            &raw(&[("ip", "x"), ("ipport", "many")]),
            Unknown::Reject,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdin:2:1: parameter `ipport`: expected an integer, found \"many\""
        );
    }

    #[test]
    fn unknown_keys_are_errors_in_files_and_warnings_on_stdin() {
        let input = raw(&[("ip", "x"), ("colour", "blue")]);
        let err = validate(&[&SCHEMA], &input, Unknown::Reject, None).unwrap_err();
        assert_eq!(err.param, "colour");
        let ok = validate(&[&SCHEMA], &input, Unknown::Warn, None).unwrap();
        assert_eq!(ok.warnings.len(), 1);
    }

    #[test]
    fn secrets_come_from_files_and_scripts_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "filepw\n").unwrap();
        let v = validate(
            &[&SCHEMA],
            &raw(&[("ip", "x"), ("passwd_file", "pw")]),
            Unknown::Reject,
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(v.params.secret("password").unwrap().expose(), "filepw");
        assert!(!format!("{:?}", v.params).contains("filepw"));
        let v = validate(
            &[&SCHEMA],
            &raw(&[("ip", "x"), ("password_script", "echo scriptpw")]),
            Unknown::Reject,
            None,
        )
        .unwrap();
        assert_eq!(v.params.secret("password").unwrap().expose(), "scriptpw");
    }

    #[test]
    fn a_wrong_secret_type_does_not_echo_the_value() {
        let input = vec![
            RawParam::text("ip", "x", Origin::new("t")),
            RawParam {
                key: "password".into(),
                value: RawValue::Integer(123456789),
                origin: Origin::new("t"),
            },
        ];
        let err = validate(&[&SCHEMA], &input, Unknown::Reject, None).unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
    }

    #[test]
    fn the_same_parameter_twice_is_an_error_in_files_and_last_wins_on_stdin() {
        let input = raw(&[("ip", "a"), ("ip", "b")]);
        let err = validate(&[&SCHEMA], &input, Unknown::Reject, None).unwrap_err();
        assert!(err.problem.contains("given twice"), "{err}");
        let ok = validate(&[&SCHEMA], &input, Unknown::Warn, None).unwrap();
        assert_eq!(ok.params.text("ip"), Some("b"));
    }

    /// Two names of one parameter with two values (`ip` and `ipaddr`): in no order
    /// is either the one meant (Pacemaker writes a device's attributes in none),
    /// and either may be another machine. Refused, naming both; the same value
    /// under both names is one parameter.
    #[test]
    fn two_names_of_one_parameter_with_two_values_are_refused_in_any_order() {
        for pair in [
            [("ip", "a"), ("ipaddr", "b")],
            [("ipaddr", "b"), ("ip", "a")],
        ] {
            let err = validate(&[&SCHEMA], &raw(&pair), Unknown::Warn, None).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("`ip`")
                    && text.contains("`ipaddr`")
                    && text.contains("another value"),
                "{text}"
            );
        }
        let three = raw(&[("ip", "a"), ("ip", "b"), ("ipaddr", "a")]);
        assert!(validate(&[&SCHEMA], &three, Unknown::Warn, None).is_err());
        // The other name given before the last one counts too.
        let repeated = raw(&[("ip", "a"), ("ipaddr", "a"), ("ipaddr", "b")]);
        let err = validate(&[&SCHEMA], &repeated, Unknown::Warn, None).unwrap_err();
        assert!(err.to_string().contains("`ip`"), "{err}");
        let same = raw(&[("ip", "a"), ("IPADDR", "a"), ("ip", "a")]);
        let ok = validate(&[&SCHEMA], &same, Unknown::Warn, None).unwrap();
        assert_eq!(ok.params.text("ip"), Some("a"));
        // A secret under two names: refused without showing either.
        let secrets = raw(&[
            ("ip", "a"),
            ("password", "uniq-pw-one"),
            ("passwd", "uniq-pw-two"),
        ]);
        let err = validate(&[&SCHEMA], &secrets, Unknown::Warn, None).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("uniq-pw"), "{text}");
        // Inline and by its script: the script's answer, in either order, as
        // fence-agents take it.
        for pair in [
            [
                ("password", "inline-pw"),
                ("password_script", "echo script-pw"),
            ],
            [("passwd_script", "echo script-pw"), ("passwd", "inline-pw")],
        ] {
            let mut input = raw(&[("ip", "a")]);
            input.extend(raw(&pair));
            let ok = validate(&[&SCHEMA], &input, Unknown::Warn, None).unwrap();
            assert_eq!(ok.params.secret("password").unwrap().expose(), "script-pw");
        }
    }

    #[test]
    fn no_debug_of_raw_or_validated_parameters_shows_a_secret() {
        const PW: &str = "uniq-raw-pw-61ad0e";
        let raw = raw(&[("ip", "x"), ("passwd", PW)]);
        assert!(!format!("{raw:?}").contains(PW));
        assert!(!format!("{:?}", raw[1].value).contains(PW));
        let validated = validate(&[&SCHEMA], &raw, Unknown::Reject, None).unwrap();
        assert!(!format!("{:?}", validated.params).contains(PW));
        assert!(!format!("{validated:?}").contains(PW));
        // A secret under a name this schema does not know, and a secret of the
        // wrong type: errors and warnings name the key, never the value.
        let unknown = vec![RawParam::text("pasword", PW, Origin::new("t"))];
        let err = validate(&[&SCHEMA], &unknown, Unknown::Reject, None).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(PW));
        let warned = validate(&[&SCHEMA], &unknown, Unknown::Warn, None);
        assert!(!format!("{warned:?}").contains(PW));
    }

    #[test]
    fn an_integer_number_of_seconds_out_of_range_is_an_error_as_a_fraction_is() {
        // i64::MAX seconds from now overflows the clock when a deadline is set.
        for n in [i64::MAX, 1_000_000_000, -1] {
            let raw = vec![RawParam {
                key: "power_wait".into(),
                value: RawValue::Integer(n),
                origin: Origin::new("t"),
            }];
            let err = validate(&[&SCHEMA], &raw, Unknown::Warn, None).unwrap_err();
            assert!(err.to_string().contains("seconds"), "{err}");
        }
    }
}
