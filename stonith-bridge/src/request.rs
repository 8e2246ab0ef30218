//! What every front end shares: the parameters a front end collected, validated
//! against the plugin's schema, the fence algorithm's schema and the front end's own;
//! the device built from them; and the plugs a node name maps to.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use fencekit_core::fence::{self, Devices};
use fencekit_core::schema::{
    self, normalize, Params, RawParam, RawValue, Schema, Unknown, Validated,
};
use fencekit_core::{
    DeviceCommand, DeviceError, FenceOptions, FenceTarget, Instant, Plug, PlugInfo, PowerSwitch,
    TargetPlug,
};
use fencekit_plugins::{PowerPlugin, Registry};

/// What a front end's first stage, run while the process has one thread, gives
/// the second: an exit code (done, or refused), or the work to run.
pub enum Stage<T> {
    Done(u8),
    Run(T),
}

/// Raw parameters as a front end collected them. Their texts are wiped when
/// dropped: a value may be a secret before the schema says which ones are. (A
/// [`RawParam`]'s `Debug` shows no value.)
#[derive(Debug, Default)]
pub struct RawParams(pub Vec<RawParam>);

impl Drop for RawParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for param in &mut self.0 {
            if let RawValue::Text(text) = &mut param.value {
                text.zeroize();
            }
        }
    }
}

impl Deref for RawParams {
    type Target = Vec<RawParam>;
    fn deref(&self) -> &Vec<RawParam> {
        &self.0
    }
}

impl DerefMut for RawParams {
    fn deref_mut(&mut self) -> &mut Vec<RawParam> {
        &mut self.0
    }
}

/// Reads the `NAME_env` forms of secret parameters (`password_env=VAR`) here, in the
/// front end, and removes each variable from the environment once read, so that
/// no child (notify command, `password_script`, script plugin) inherits it. The
/// value is passed on as the parameter itself. Call only while the process has one
/// thread: changing the environment is unsound while another thread may read it.
pub fn take_env_secrets(schemas: &[&Schema], raw: &mut RawParams) -> Result<(), String> {
    for param in raw.iter_mut() {
        let key = normalize(&param.key);
        let Some(base) = key.strip_suffix("_env") else {
            continue;
        };
        let Some(spec) = schemas
            .iter()
            .find_map(|schema| schema.find(base))
            .filter(|spec| spec.secret)
        else {
            continue;
        };
        let RawValue::Text(variable) = &param.value else {
            return Err(format!(
                "parameter `{key}`: expected the name of an environment variable"
            ));
        };
        let variable = variable.trim().to_string();
        let valid_name = !variable.is_empty()
            && variable.len() <= 255
            && !variable.contains(['=', '\0'])
            && !variable.chars().any(char::is_control);
        if !valid_name {
            return Err(format!(
                "{}: parameter `{key}`: not the name of an environment variable",
                param.origin
            ));
        }
        let value = match std::env::var_os(&variable).map(std::ffi::OsString::into_string) {
            Some(Ok(value)) => zeroize::Zeroizing::new(value),
            Some(Err(_)) => {
                std::env::remove_var(&variable);
                let _ = fencekit_core::environ::blank_initial(&[variable.as_str()]);
                return Err(format!(
                    "{}: parameter `{key}`: the environment variable {variable} is not UTF-8 text",
                    param.origin
                ));
            }
            None => {
                return Err(format!(
                    "{}: parameter `{key}`: the environment variable {variable} is not set",
                    param.origin
                ))
            }
        };
        std::env::remove_var(&variable);
        if let Err(e) = fencekit_core::environ::blank_initial(&[variable.as_str()]) {
            tracing::warn!("cannot blank {variable} in the process's initial environment: {e}");
        }
        param.key = spec.name.to_string();
        param.value = RawValue::Text(value.as_str().to_string());
    }
    Ok(())
}

/// A front end's validated request for one plugin's device.
pub struct Request {
    pub plugin: &'static PowerPlugin,
    pub params: Params,
    pub warnings: Vec<String>,
    /// When the run started: the operation's timeout counts from here, so that
    /// loading a plugin and reading secrets come out of it too.
    pub started: Instant,
    /// Whether `timeout` was given (not the default).
    timeout_given: bool,
}

/// How long a device check (`monitor`, cluster-glue `status`) may take when no
/// `timeout` is given: inside the 20 s Pacemaker gives a monitor operation unless
/// configured otherwise, so that a device that does not answer fails the check with
/// fencekit's own reason rather than Pacemaker's kill. A `timeout` given rules.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

impl Request {
    /// Validates `raw` against the plugin, the fence algorithm and `frontend`.
    pub fn validate(
        plugin: &'static PowerPlugin,
        frontend: &'static Schema,
        raw: &[RawParam],
        started: Instant,
    ) -> Result<Request, String> {
        let Validated { params, warnings } = schema::validate(
            &[plugin.schema, &fence::SCHEMA, frontend],
            raw,
            Unknown::Warn,
            None,
        )
        .map_err(|e| e.to_string())?;
        FenceOptions::check_timing(&params)?;
        let timeout_given = raw.iter().any(|p| schema::normalize(&p.key) == "timeout");
        Ok(Request {
            plugin,
            params,
            warnings,
            started,
            timeout_given,
        })
    }

    /// The fence options, with the timeout reduced by the time this run has
    /// already spent (at least a few milliseconds, so that the operation reports
    /// its own timeout).
    pub fn options(&self) -> FenceOptions {
        let mut options = FenceOptions::from_params(&self.params);
        options.timeout = options
            .timeout
            .saturating_sub(self.started.elapsed())
            .max(Duration::from_millis(10));
        options
    }

    /// When the whole operation must have ended.
    pub fn deadline(&self) -> Instant {
        self.started + FenceOptions::from_params(&self.params).timeout
    }

    pub fn device(&self) -> Result<Arc<dyn PowerSwitch>, String> {
        self.plugin
            .build_by(&self.params, self.deadline())
            .map_err(|e| e.to_string())
    }

    /// The device's name in messages: its address, or the plugin's name.
    pub fn device_name(&self) -> String {
        self.params
            .text("ip")
            .map(str::to_string)
            .unwrap_or_else(|| self.plugin.schema.plugin.to_string())
    }

    /// Lists the device's plugs, by the operation's deadline.
    pub async fn list(&self) -> Result<Vec<PlugInfo>, String> {
        self.bounded("list", |device, deadline| async move {
            device.list(deadline).await
        })
        .await
    }

    /// Lists the device's plugs, each with its address on the device
    /// ([`fencekit_core::PowerSwitch::address`]), by the operation's deadline; and
    /// whether the list holds every plug a name could find
    /// ([`fencekit_core::PowerSwitch::names_complete`]).
    pub async fn list_addressed(&self) -> Result<(Vec<(PlugInfo, Plug)>, bool), String> {
        self.bounded("list", |device, deadline| async move {
            let listed = device.list(deadline).await?;
            let addressed = listed
                .into_iter()
                .map(|info| {
                    let address = device.address(&info.plug);
                    (info, address)
                })
                .collect();
            Ok((addressed, device.names_complete()))
        })
        .await
    }

    /// Checks the device answers, by the operation's deadline ([`CHECK_TIMEOUT`] when
    /// no `timeout` is given).
    pub async fn check(&self) -> Result<(), String> {
        let limit = (!self.timeout_given).then_some(CHECK_TIMEOUT);
        self.bounded_within("device check", limit, |device, deadline| async move {
            device.check(deadline).await
        })
        .await
    }

    /// Sends one of the device's own commands to `plug`, by the operation's deadline.
    pub async fn command(&self, plug: &Plug, command: DeviceCommand) -> Result<(), String> {
        let plug = plug.clone();
        self.bounded(command.as_str(), |device, deadline| async move {
            device.command(&plug, command, deadline).await
        })
        .await
    }

    /// Builds the device and runs one call on it, abandoned at the operation's
    /// deadline; errors say what failed (and "timed out" when time ran out, the word
    /// Pacemaker looks for).
    async fn bounded<T, F, Fut>(&self, what: &str, call: F) -> Result<T, String>
    where
        F: FnOnce(Arc<dyn PowerSwitch>, Instant) -> Fut,
        Fut: Future<Output = Result<T, DeviceError>>,
    {
        self.bounded_within(what, None, call).await
    }

    /// [`Request::bounded`], within `limit` when that is sooner.
    async fn bounded_within<T, F, Fut>(
        &self,
        what: &str,
        limit: Option<Duration>,
        call: F,
    ) -> Result<T, String>
    where
        F: FnOnce(Arc<dyn PowerSwitch>, Instant) -> Fut,
        Fut: Future<Output = Result<T, DeviceError>>,
    {
        let timeout = self.options().timeout;
        let timeout = limit.map_or(timeout, |limit| {
            timeout.min(
                limit
                    .saturating_sub(self.started.elapsed())
                    .max(Duration::from_millis(10)),
            )
        });
        let deadline = Instant::now() + timeout;
        let device = self.device()?;
        match tokio::time::timeout_at(deadline, call(device, deadline)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!(
                "{what} timed out after {:.1} s",
                timeout.as_secs_f64()
            )),
        }
    }

    pub fn devices(&self) -> Result<Devices, String> {
        let mut devices = Devices::new();
        devices.insert(self.device_name(), self.device()?);
        Ok(devices)
    }

    /// [`Request::devices`] for fencing `node`, named to the device as Pacemaker's
    /// `nodename` names it to a fence agent: a device that takes the node's name for
    /// a plug (a Redfish service's only system) then takes no other plug for it.
    pub fn devices_for_node(&self, node: &str) -> Result<Devices, String> {
        let mut params = self.params.clone();
        params.insert(
            "nodename",
            fencekit_core::schema::Value::Text(node.to_string()),
        );
        let device = self
            .plugin
            .build_by(&params, self.deadline())
            .map_err(|e| e.to_string())?;
        let mut devices = Devices::new();
        devices.insert(self.device_name(), device);
        Ok(devices)
    }

    /// A fence target of `plugs` on the one device; a single-plug device (a BMC)
    /// is always its chassis, and so is a device whose plug is optional when none
    /// is named (it refuses that itself where it has several).
    pub fn target(&self, node: &str, plugs: &[Plug]) -> FenceTarget {
        let device = self.device_name();
        let optional = self.plugin.schema.plug_optional && plugs.is_empty();
        let plugs = if self.plugin.schema.multi_plug && !optional {
            plugs
                .iter()
                .map(|plug| TargetPlug {
                    device: device.clone(),
                    plug: plug.clone(),
                })
                .collect()
        } else {
            vec![TargetPlug {
                device: device.clone(),
                plug: Plug::Chassis,
            }]
        };
        FenceTarget {
            node: node.to_string(),
            plugs,
        }
    }
}

/// Finds a plugin by name, or says which exist.
pub fn plugin(registry: &Registry, name: &str) -> Result<&'static PowerPlugin, String> {
    // `fence_fencekit_example_relay` names the plugin `example-relay`: command names
    // cannot hold a `-` comfortably, plugin names do.
    let dashed = name.replace('_', "-");
    registry
        .power(name)
        .or_else(|| registry.power(&dashed))
        .ok_or_else(|| {
            let mut message = format!(
                "unknown plugin `{name}`; plugins: {}",
                registry.names().join(", ")
            );
            // A plugin that failed to load may be the one asked for: say why.
            for problem in registry.problems() {
                message.push_str(&format!("; not loaded: {problem}"));
            }
            message
        })
}

/// The most plugs one node may name: no machine has more power supplies than this,
/// and a bound keeps a runaway list from becoming a runaway fence.
pub const MAX_PLUGS: usize = 256;

/// The longest host name a map or list may hold (DNS allows 253).
const MAX_HOST: usize = 255;

/// Splits a plug list (`1,2`; `1+2` with `+` as the separator) into plugs. Blanks
/// around each plug are trimmed; an empty plug (`1,,2`, a trailing `,`) is refused
/// rather than skipped, because a list that lost a plug to a typo would fence a
/// node only partly. Each plug is read by [`Plug::try_parse`], which bounds it.
pub fn split_plugs(text: &str, separator: &str) -> Result<Vec<Plug>, String> {
    let separator = if separator.is_empty() { "," } else { separator };
    let mut plugs = Vec::new();
    for (index, token) in text.split(separator).enumerate() {
        let token = token.trim();
        if token.is_empty() {
            return Err(format!(
                "plug list: entry {} is empty (plugs are separated by `{separator}`; write each plug once)",
                index + 1
            ));
        }
        if plugs.len() == MAX_PLUGS {
            return Err(format!(
                "plug list: more than {MAX_PLUGS} plugs for one node"
            ));
        }
        let plug =
            Plug::try_parse(token).map_err(|e| format!("plug list: entry {}: {e}", index + 1))?;
        plugs.push(plug);
    }
    Ok(plugs)
}

/// A host name read from a map or a list: not empty, no control character, bounded.
fn host_name(text: &str, what: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err(format!("{what}: an entry has no host name before `:`"));
    }
    if text.len() > MAX_HOST {
        return Err(format!(
            "{what}: a host name of {} bytes is too long (at most {MAX_HOST})",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what}: a host name holds a control character"));
    }
    // A comma separates plugs: a "host" holding one is a plug list misread.
    if text.contains(',') {
        return Err(format!(
            "{what}: host name {text:?} holds a comma (write node1:1,2;node2:3)"
        ));
    }
    Ok(text.to_string())
}

/// A host map as Pacemaker's `pcmk_host_map` writes it: `node1:1;node2:2,3` (`=` for
/// `:` and blanks for `;` also do), every host with its plugs, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMap {
    entries: Vec<(String, Vec<Plug>)>,
}

impl HostMap {
    /// Reads a map. Unlike Pacemaker's own reader, which logs what it cannot read at
    /// debug level, drops it, and keeps the last of two entries for one host, a map
    /// that cannot be read whole is refused: a dropped plug is a node left running.
    /// A blank after a comma or a colon continues the plug list (`node1:1, 2` is
    /// plugs 1 and 2; `node1: 1` is plug 1).
    pub fn parse(map: &str) -> Result<HostMap, String> {
        const WHAT: &str = "hostmap";
        let mut entries: Vec<(String, String)> = Vec::new();
        // Words split at blanks; `;` and line ends end an entry for certain.
        let mut hard_break = true;
        let mut word = String::new();
        let mut words: Vec<(String, bool)> = Vec::new();
        for c in map.chars() {
            match c {
                ';' | '\n' | '\r' | ' ' | '\t' => {
                    if !word.is_empty() {
                        words.push((std::mem::take(&mut word), hard_break));
                        hard_break = false;
                    }
                    if c == ';' || c == '\n' || c == '\r' {
                        hard_break = true;
                    }
                }
                _ => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push((word, hard_break));
        }
        for (position, (word, after_break)) in words.into_iter().enumerate() {
            // A word that begins with a comma continues the plug list whatever it
            // holds: `node1:1 ,1:2` is outlet 2 of unit 1 for node1, never a host
            // named `,1`.
            let split = if word.starts_with(',') {
                None
            } else {
                word.split_once([':', '='])
            };
            match split {
                Some((host, plugs)) => {
                    entries.push((host_name(host.trim(), WHAT)?, plugs.to_string()))
                }
                None => {
                    let continues = entries.last_mut().filter(|(_, plugs)| {
                        !after_break
                            && (plugs.is_empty() || plugs.ends_with(',') || word.starts_with(','))
                    });
                    match continues {
                        Some((_, plugs)) => plugs.push_str(&word),
                        None => {
                            return Err(format!(
                                "{WHAT}: word {} is neither `host:plugs` nor a plug after a comma (write node1:1;node2:2,3)",
                                position + 1
                            ))
                        }
                    }
                }
            }
        }
        if entries.is_empty() {
            return Err(format!("{WHAT}: maps no host (write node1:1;node2:2,3)"));
        }
        let mut read: Vec<(String, Vec<Plug>)> = Vec::with_capacity(entries.len());
        let mut seen = std::collections::HashSet::new();
        for (host, plugs) in entries {
            if !seen.insert(host.to_ascii_lowercase()) {
                return Err(format!(
                    "{WHAT}: host {host} is listed twice; give all its plugs in one entry (node1:1,2)"
                ));
            }
            if plugs.trim().is_empty() {
                return Err(format!("{WHAT}: host {host} has no plugs"));
            }
            let plugs =
                split_plugs(&plugs, ",").map_err(|e| format!("{WHAT}: host {host}: {e}"))?;
            read.push((host, plugs));
        }
        Ok(HostMap { entries: read })
    }

    /// The plugs of `host` (compared without regard to case).
    pub fn plugs(&self, host: &str) -> Option<&[Plug]> {
        self.entries
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host.trim()))
            .map(|(_, plugs)| plugs.as_slice())
    }

    /// The hosts, in the order given.
    pub fn hosts(&self) -> Vec<&str> {
        self.entries.iter().map(|(host, _)| host.as_str()).collect()
    }
}

/// Reads a host list (`hostname`, `hostlist`: names separated by blanks, commas or
/// semicolons, as Pacemaker splits a host list).
pub fn host_list(list: &str, what: &str) -> Result<Vec<String>, String> {
    list.split([' ', ',', ';', '\n', '\t', '\r'])
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| host_name(h, what))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(numbers: &[u32]) -> Vec<Plug> {
        numbers.iter().map(|n| Plug::Number(*n)).collect()
    }

    #[test]
    fn host_maps_are_read_as_pacemaker_writes_them() {
        let map = HostMap::parse("node1:1;node2:2,3").unwrap();
        assert_eq!(map.plugs("NODE2"), Some(n(&[2, 3]).as_slice()));
        assert_eq!(map.plugs("node3"), None);
        assert_eq!(map.hosts(), vec!["node1", "node2"]);
        let map = HostMap::parse("node1=1 node2=4\nnode3:1:5").unwrap();
        assert_eq!(map.plugs("node2"), Some(n(&[4]).as_slice()));
        assert_eq!(
            map.plugs("node3"),
            Some(
                [Plug::OnUnit {
                    unit: 1,
                    outlet: Box::new(Plug::Number(5))
                }]
                .as_slice()
            )
        );
    }

    #[test]
    fn a_blank_after_a_comma_in_a_host_map_keeps_every_plug() {
        let map = HostMap::parse("node1:1, 2;node2:3 ,4 node3: 5").unwrap();
        assert_eq!(map.plugs("node1"), Some(n(&[1, 2]).as_slice()));
        assert_eq!(map.plugs("node2"), Some(n(&[3, 4]).as_slice()));
        assert_eq!(map.plugs("node3"), Some(n(&[5]).as_slice()));
        assert!(HostMap::parse("node1: node2:2")
            .unwrap_err()
            .contains("node1 has no plugs"));
    }

    #[test]
    fn a_word_after_a_blank_that_begins_with_a_comma_continues_the_plug_list_whatever_it_holds() {
        let map = HostMap::parse("n1:1 ,1:2").unwrap();
        let on_unit = |unit, outlet| Plug::OnUnit {
            unit,
            outlet: Box::new(Plug::Number(outlet)),
        };
        assert_eq!(
            map.plugs("n1"),
            Some([Plug::Number(1), on_unit(1, 2)].as_slice())
        );
        assert_eq!(map.hosts(), vec!["n1"]);
        let map = HostMap::parse("n1:1:1 ,1:2;n2:3").unwrap();
        assert_eq!(
            map.plugs("n1"),
            Some([on_unit(1, 1), on_unit(1, 2)].as_slice())
        );
        assert_eq!(map.plugs("n2"), Some(n(&[3]).as_slice()));
        // A comma at the start of the map, or of an entry, has no list to continue.
        assert!(HostMap::parse(",1:2").is_err());
        assert!(HostMap::parse("n1:1; ,1:2").is_err());
        // A host name never holds a comma.
        let err = HostMap::parse("n1:1 2,x:3").unwrap_err();
        assert!(err.contains("comma"), "{err}");
    }

    #[test]
    fn a_host_map_word_that_cannot_be_read_is_an_error_not_dropped() {
        let err = HostMap::parse("node1:1 2").unwrap_err();
        assert!(err.contains("word 2"), "{err}");
        let err = HostMap::parse("node1:1; 2").unwrap_err();
        assert!(err.contains("word 2"), "{err}");
        assert!(HostMap::parse("stray node1:1").is_err());
        assert!(HostMap::parse(":1").unwrap_err().contains("no host name"));
        assert!(HostMap::parse("node1:").unwrap_err().contains("no plugs"));
        assert!(HostMap::parse("node1:1,,2").unwrap_err().contains("empty"));
        assert!(HostMap::parse(" ; ").unwrap_err().contains("maps no host"));
    }

    #[test]
    fn a_host_listed_twice_in_a_host_map_is_refused_naming_it() {
        let err = HostMap::parse("node1:1;NODE1:2").unwrap_err();
        assert!(err.contains("NODE1") && err.contains("twice"), "{err}");
    }

    #[test]
    fn plug_lists_split_on_the_separator_and_keep_every_plug() {
        assert_eq!(
            split_plugs("1, 2 ,db", ",").unwrap(),
            vec![Plug::Number(1), Plug::Number(2), Plug::Name("db".into())]
        );
        assert_eq!(split_plugs("1+2", "+").unwrap(), n(&[1, 2]));
        assert_eq!(split_plugs("1 + 2", "+").unwrap(), n(&[1, 2]));
    }

    #[test]
    fn an_empty_plug_in_a_list_is_refused() {
        for text in ["1,,2", "1,", ",1", "", " "] {
            let err = split_plugs(text, ",").unwrap_err();
            assert!(err.contains("empty"), "{text:?}: {err}");
        }
    }

    #[test]
    fn deep_or_huge_plug_text_is_a_clear_error() {
        let deep = "1:".repeat(50_000) + "1";
        let err = split_plugs(&deep, ",").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        let many = vec!["1"; MAX_PLUGS + 1].join(",");
        assert!(split_plugs(&many, ",").unwrap_err().contains("more than"));
        let err = HostMap::parse(&format!("node1:{deep}")).unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(split_plugs("a\u{1b}b", ",")
            .unwrap_err()
            .contains("control"));
    }

    #[test]
    fn host_lists_split_on_blanks_commas_and_semicolons() {
        assert_eq!(
            host_list(" a, b\tc ,", "hostlist").unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            host_list("a;b; c", "hostlist").unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(host_list(&"h".repeat(300), "hostlist").is_err());
        assert!(host_list("a\u{7}b", "hostlist").is_err());
    }

    proptest::proptest! {
        #[test]
        fn host_maps_of_any_text_give_a_map_or_an_error(text in "(?s).{0,400}") {
            let _ = HostMap::parse(&text);
            let _ = host_list(&text, "hostlist");
            let _ = split_plugs(&text, ",");
        }

        #[test]
        fn host_maps_of_any_bytes_give_a_map_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = HostMap::parse(&text);
            let _ = split_plugs(&text, ":");
        }
    }

    #[test]
    fn a_mebibyte_of_map_or_plug_text_is_an_error_not_a_crash() {
        let big = "1:".repeat(512 * 1024);
        assert!(HostMap::parse(&format!("n:{big}")).is_err());
        assert!(split_plugs(&big, ",").is_err());
        assert!(split_plugs(&",".repeat(1 << 20), ",").is_err());
        assert!(host_list(&"x".repeat(1 << 20), "hostlist").is_err());
        let many_hosts: String = (0..100_000).map(|i| format!("n{i}:1;")).collect();
        assert!(HostMap::parse(&many_hosts).is_ok());
    }
}
