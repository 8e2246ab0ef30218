//! [`RedfishSwitch`]: a Redfish service as a `PowerSwitch` whose plugs are its
//! systems.
//!
//! Which system a plug means: `systems_uri` when given (fence_redfish's way);
//! otherwise the system whose Id or Name the plug is, exactly one (one whose Id or
//! Name differs from it only in case makes it ambiguous, as does one system's Id
//! that is another's Name);
//! and the name of the node being fenced (`nodename`, which every front end gives)
//! on a service that has only one system means that one, because Pacemaker passes
//! the node's name as the plug and fence_redfish switches the service's system
//! whatever it is. Any other plug that names no system is refused, never taken for
//! the only system listed (it may be another node's). A service with several
//! systems and no system named is refused, never guessed (fence_redfish takes the
//! last member).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, Params, Plug, PlugInfo, PowerState, PowerSwitch, Secret,
    SwitchTo,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::http::{Http, HttpError, Tls};
use crate::system::{self, ResetType, ShapeError, System};

/// The most pages of a systems collection followed.
const MAX_PAGES: usize = 64;

/// A Redfish service.
pub struct RedfishSwitch {
    host: String,
    port: u16,
    tls: Tls,
    username: String,
    password: Secret,
    redfish_uri: String,
    systems_uri: Option<String>,
    /// The connection, made on first use (after the name lookup, by its deadline).
    http: Mutex<Option<Arc<Http>>>,
    /// The system each plug text was found to mean, so the polls of a fence read the
    /// same resource without walking the collection again.
    chosen: std::sync::Mutex<HashMap<String, String>>,
    /// The node being fenced, as Pacemaker names it (`nodename`), when given.
    node: Option<String>,
}

impl std::fmt::Debug for RedfishSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishSwitch")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("systems_uri", &self.systems_uri)
            .finish_non_exhaustive()
    }
}

fn failed(text: impl Into<String>) -> DeviceError {
    DeviceError::Failed(text.into())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, as fence_redfish
/// reads `ip` (a port written there wins over `ipport`).
fn split_host_port(text: &str) -> Result<(String, Option<u16>), DeviceError> {
    let text = text.trim();
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| failed(format!("`ip` {text}: `{p}` is not a TCP port")))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| failed(format!("`ip` {text}: no closing `]`")))?;
        return match after {
            "" => Ok((host.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host.to_string(), Some(port(p)?))),
                None => Err(failed(format!("`ip` {text}: text after `]`"))),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text.to_string(), None)),
        1 => {
            let (host, p) = text.split_once(':').unwrap_or((text, ""));
            Ok((host.to_string(), Some(port(p)?)))
        }
        // An IPv6 address without brackets: no port in it.
        _ => Ok((text.to_string(), None)),
    }
}

impl RedfishSwitch {
    /// Builds the switch from parameters validated against [`crate::SCHEMA`].
    pub fn from_params(params: &Params) -> Result<RedfishSwitch, DeviceError> {
        let ip = params
            .text("ip")
            .filter(|ip| !ip.trim().is_empty())
            .ok_or_else(|| failed("parameter `ip` is missing"))?;
        let (host, port_in_ip) = split_host_port(ip)?;
        if host.is_empty() {
            return Err(failed("parameter `ip` names no host"));
        }
        let port = match port_in_ip {
            Some(port) => port,
            None => {
                let port = params.integer("ipport").unwrap_or(443);
                u16::try_from(port)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| failed(format!("ipport {port} is not a TCP port")))?
            }
        };
        let username = params
            .text("username")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| failed("parameter `username` is missing"))?
            .to_string();
        let password = params
            .secret("password")
            .cloned()
            .ok_or_else(|| failed("parameter `password` is missing"))?;
        // fence_redfish builds every URL with https:// whatever `ssl` says (and
        // verifies the certificate unless ssl_insecure): a configuration with ssl=0
        // that works there means HTTPS, verified. The same here, said once.
        if params.boolean("ssl") == Some(false) || params.boolean("ssl_secure") == Some(false) {
            tracing::warn!(
                "ssl=0 / ssl_secure=0 taken as fence_redfish takes them: HTTPS all the same \
                 (there is no plain HTTP), the certificate verified unless ssl_insecure=1"
            );
        }
        let insecure = params.boolean("ssl_insecure").unwrap_or(false);
        let ca_file = params
            .text("ssl_ca_file")
            .filter(|p| !p.trim().is_empty())
            .map(std::path::PathBuf::from);
        if insecure && params.boolean("ssl_secure") == Some(true) {
            return Err(failed(
                "ssl_insecure=1 and ssl_secure=1 contradict each other: give ssl_secure \
                 (or nothing) to verify the certificate, or ssl_insecure alone to skip \
                 verification",
            ));
        }
        let tls = match (insecure, ca_file) {
            (true, Some(_)) => {
                return Err(failed(
                    "ssl_insecure=1 and ssl_ca_file contradict each other: give the CA file \
                     to verify the certificate, or ssl_insecure alone to skip verification",
                ))
            }
            (true, None) => {
                tracing::warn!(
                    device = %host,
                    "ssl_insecure: the BMC's certificate is not verified; anyone on the path \
                     can pose as it and report a node off that is not"
                );
                Tls::Insecure
            }
            (false, ca_file) => Tls::Verify { ca_file },
        };
        if params.boolean("port_as_ip") == Some(true) {
            return Err(failed(
                "`port_as_ip` (the plug is the BMC's address) is a fence-agent option, where \
                 Pacemaker passes the plug; here, give the address as `ip`",
            ));
        }
        let redfish_uri = params
            .text("redfish_uri")
            .unwrap_or("/redfish/v1")
            .trim()
            .to_string();
        let systems_uri = params
            .text("systems_uri")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(RedfishSwitch {
            host,
            port,
            tls,
            username,
            password,
            redfish_uri,
            systems_uri,
            http: Mutex::new(None),
            chosen: std::sync::Mutex::new(HashMap::new()),
            node: params
                .text("nodename")
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        })
    }

    async fn http(&self, deadline: Instant) -> Result<Arc<Http>, DeviceError> {
        let mut slot = self.http.lock().await;
        if let Some(http) = slot.as_ref() {
            return Ok(http.clone());
        }
        let addrs = match fencekit_core::lookup::lookup(&self.host, self.port, deadline).await {
            Ok(addrs) => addrs,
            Err(e) if e.is_timeout() => return Err(DeviceError::TimedOut(e.to_string())),
            Err(e) => return Err(failed(e.to_string())),
        };
        let http = Arc::new(
            Http::new(
                &self.host,
                self.port,
                &addrs,
                &self.tls,
                &self.username,
                &self.password,
            )
            .map_err(|e| self.error(e))?,
        );
        *slot = Some(http.clone());
        Ok(http)
    }

    /// An HTTP error in the fence algorithm's words.
    fn error(&self, error: HttpError) -> DeviceError {
        match error {
            HttpError::Status { code: 401, .. } => DeviceError::Auth(format!(
                "{error}: the service refused user `{}` (check username and password)",
                self.username
            )),
            HttpError::Status { code: 403, .. } => DeviceError::Refused(format!(
                "{error}: user `{}` may not do this (its Redfish role)",
                self.username
            )),
            HttpError::Status { code: 503, .. } => DeviceError::Busy(error.to_string()),
            HttpError::Status { .. } => failed(error.to_string()),
            HttpError::Timeout { .. } => DeviceError::TimedOut(error.to_string()),
            HttpError::Tls { .. } => match &self.tls {
                Tls::Verify { ca_file: None } => failed(format!(
                    "{error}; to trust the BMC's certificate, give its CA as ssl_ca_file=PATH \
                     (or set ssl_insecure=1 to skip verification)"
                )),
                Tls::Verify {
                    ca_file: Some(path),
                } => failed(format!(
                    "{error}; the certificate is not signed by a CA of ssl_ca_file {}",
                    path.display()
                )),
                Tls::Insecure => failed(error.to_string()),
            },
            HttpError::Connect { ref detail, .. } if detail.contains("timed out") => {
                DeviceError::NoAnswer {
                    endpoint: format!("{}:{}", self.host, self.port),
                    detail: detail.clone(),
                }
            }
            HttpError::Config(_) | HttpError::Connect { .. } => failed(error.to_string()),
            HttpError::Body { .. } => DeviceError::Protocol(error.to_string()),
        }
    }

    fn shape(error: ShapeError) -> DeviceError {
        DeviceError::Protocol(error.to_string())
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<serde_json::Value, DeviceError> {
        let http = self.http(deadline).await?;
        http.get(path, deadline).await.map_err(|e| self.error(e))
    }

    async fn read_system(&self, uri: &str, deadline: Instant) -> Result<System, DeviceError> {
        let value = self.get(uri, deadline).await?;
        System::parse(uri, &value).map_err(Self::shape)
    }

    /// The members of the service's systems collection, every page of it. The
    /// count the collection declares must match what its pages list: a member
    /// missed (on a page not followed, or not listed) could turn "the only system"
    /// or "the one with this Id" into the wrong one.
    async fn members(&self, deadline: Instant) -> Result<Vec<String>, DeviceError> {
        let root = self.get(&self.redfish_uri, deadline).await?;
        let collection =
            system::systems_collection(&root, &self.redfish_uri).map_err(Self::shape)?;
        let mut members = Vec::new();
        let mut page = collection.clone();
        let mut declared = None;
        for _ in 0..MAX_PAGES {
            let listed = self.get(&page, deadline).await?;
            members.extend(system::members(&listed, &page).map_err(Self::shape)?);
            declared = declared.or(system::declared_count(&listed));
            match system::next_page(&listed) {
                Some(next) => page = next.to_string(),
                None => {
                    if let Some(count) = declared.filter(|c| *c != members.len() as u64) {
                        return Err(DeviceError::Protocol(format!(
                            "{collection}: Members@odata.count says {count} systems, its pages \
                             list {}; refusing to choose among a partial list",
                            members.len()
                        )));
                    }
                    return Ok(members);
                }
            }
        }
        Err(DeviceError::Protocol(format!(
            "{collection}: more than {MAX_PAGES} pages of systems; refusing to choose among a partial list"
        )))
    }

    /// The resource path of the system `plug` means (see the module's doc).
    async fn system_uri(&self, plug: &Plug, deadline: Instant) -> Result<String, DeviceError> {
        let key = plug.to_string();
        if let Some(uri) = &self.systems_uri {
            if !matches!(plug, Plug::Chassis) && self.lock().get(&key) != Some(uri) {
                self.check_pinned(uri, &key, deadline).await?;
                self.lock().insert(key, uri.clone());
            }
            return Ok(uri.clone());
        }
        if let Some(uri) = self.lock().get(&key) {
            return Ok(uri.clone());
        }
        let members = self.members(deadline).await?;
        let uri = match plug {
            Plug::Chassis => match members.as_slice() {
                [one] => one.clone(),
                [] => return Err(failed("the service lists no system")),
                many => {
                    return Err(DeviceError::Refused(format!(
                        "this service has {} systems ({}) and no plug names one: give the \
                         plug (a system's Id) or systems_uri, rather than have one guessed",
                        many.len(),
                        shortlist(many.iter().cloned())
                    )))
                }
            },
            _ => self.find(&key, &members, deadline).await?,
        };
        self.lock().insert(key, uri.clone());
        Ok(uri)
    }

    /// With `systems_uri` set, the plug (Pacemaker's node name, a host map's
    /// system) is not needed to find the system, as for fence_redfish; but a plug
    /// that is another listed system's Id or Name says the configuration means
    /// that one: refused rather than switching the pinned system. Only on that
    /// evidence: a service whose collection cannot be read keeps `systems_uri`.
    async fn check_pinned(
        &self,
        uri: &str,
        text: &str,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let names = |system: &System| system.id == text || system.name.as_deref() == Some(text);
        if self
            .read_system(uri, deadline)
            .await
            .is_ok_and(|s| names(&s))
        {
            return Ok(());
        }
        let members = match self.members(deadline).await {
            Ok(members) => members,
            Err(e) => {
                tracing::debug!(error = %e, "systems collection unread; systems_uri taken as given");
                return Ok(());
            }
        };
        let pinned = uri.trim_end_matches('/');
        for member in members.iter().filter(|m| m.trim_end_matches('/') != pinned) {
            if let Ok(system) = self.read_system(member, deadline).await {
                if names(&system) {
                    return Err(DeviceError::Refused(format!(
                        "the plug `{text}` names the system {member}, while systems_uri is {uri}: \
                         refusing to switch a system the plug does not name (give the plug of \
                         the system at systems_uri, or drop systems_uri)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The member whose Id, or else whose Name, is `text`.
    async fn find(
        &self,
        text: &str,
        members: &[String],
        deadline: Instant,
    ) -> Result<String, DeviceError> {
        // Pacemaker passes the node's name as the plug; a service with one system has
        // nothing else to switch (fence_redfish's meaning), so that plug is its
        // system whatever the system is called. Any other plug must name the system:
        // a host map's system Id that this service does not list now (a blade
        // chassis whose collection lacks a blade for a moment) would otherwise be
        // taken for the only system listed, another node's.
        let the_node = self.node.as_deref() == Some(text);
        if let ([only], true) = (members, the_node) {
            return Ok(only.clone());
        }
        let mut systems = Vec::with_capacity(members.len());
        for uri in members {
            systems.push(self.read_system(uri, deadline).await?);
        }
        // Every system the plug may mean: its Id or its Name, and, once one is
        // found, any other whose Id or Name is the plug but for case and blanks
        // around it (`Node1` beside `node1`: most likely the same machine's
        // other half, as for outlets): more than one is refused, never the first
        // taken.
        let exact = |s: &&System| s.id == text || s.name.as_deref() == Some(text);
        let alike = |s: &&System| {
            let same = |t: &str| t.trim().eq_ignore_ascii_case(text.trim());
            same(&s.id) || s.name.as_deref().is_some_and(same)
        };
        let found = systems.iter().any(|s| exact(&s));
        let meant: Vec<&System> = systems
            .iter()
            .filter(|s| exact(s) || (found && alike(s)))
            .collect();
        match (meant.as_slice(), members) {
            ([one], _) => Ok(one.uri.clone()),
            ([], []) => Err(failed("the service lists no system")),
            ([], [_]) => Err(DeviceError::UnknownPlug {
                plug: text.to_string(),
                known: format!(
                    "{} (the only system; the plug is neither its Id nor its Name, nor the \
                     name of the node being fenced ({}), so it is not taken to mean it: give \
                     the system's Id, or no plug)",
                    listing(&systems),
                    self.node.as_deref().unwrap_or("not given")
                ),
            }),
            ([], _) => Err(DeviceError::UnknownPlug {
                plug: text.to_string(),
                known: listing(&systems),
            }),
            (many, _) => Err(DeviceError::AmbiguousPlug {
                plug: text.to_string(),
                outlets: shortlist(many.iter().map(|s| s.uri.clone())),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.chosen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// POSTs the first of `choices` the system offers to its reset action.
    async fn reset(
        &self,
        plug: &Plug,
        choices: &[ResetType],
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let uri = self.system_uri(plug, deadline).await?;
        let system = self.read_system(&uri, deadline).await?;
        let reset = system
            .choose(choices)
            .map_err(|e| DeviceError::Unsupported(e.to_string()))?;
        let target = system
            .reset_target()
            .map_err(|e| DeviceError::Unsupported(e.to_string()))?;
        let http = self.http(deadline).await?;
        tracing::debug!(system = %uri, reset = reset.as_str(), "ComputerSystem.Reset");
        http.post(target, &json!({ "ResetType": reset.as_str() }), deadline)
            .await
            .map_err(|e| self.error(e))
    }
}

fn listing(systems: &[System]) -> String {
    shortlist(systems.iter().map(|s| match &s.name {
        Some(name) if name != &s.id => format!("{} ({name})", s.id),
        _ => s.id.clone(),
    }))
}

/// How many systems a message names at most.
const LISTED: usize = 16;

/// `items` joined for a message, the first [`LISTED`] of them and how many more: a
/// chassis of thousands of members must not become a megabyte log line.
fn shortlist(items: impl Iterator<Item = String>) -> String {
    let mut shown = Vec::new();
    let mut more = 0usize;
    for item in items {
        if shown.len() < LISTED {
            shown.push(item);
        } else {
            more += 1;
        }
    }
    let mut text = shown.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

#[async_trait]
impl PowerSwitch for RedfishSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let uri = self.system_uri(plug, deadline).await?;
        let system = self.read_system(&uri, deadline).await?;
        system.power_state().map_err(Self::shape)
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let choices: &[ResetType] = match to {
            SwitchTo::Off => &[ResetType::ForceOff],
            SwitchTo::On => &[ResetType::On, ResetType::ForceOn],
        };
        self.reset(plug, choices, deadline).await
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let choices: &[ResetType] = match command {
            DeviceCommand::Cycle => &[ResetType::PowerCycle, ResetType::ForceRestart],
            DeviceCommand::Diag => &[ResetType::Nmi],
            DeviceCommand::SoftOff => &[ResetType::GracefulShutdown],
            DeviceCommand::Reset => &[ResetType::ForceRestart],
        };
        self.reset(plug, choices, deadline).await
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        matches!(
            command,
            DeviceCommand::Cycle | DeviceCommand::Diag | DeviceCommand::SoftOff
        )
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let members = match &self.systems_uri {
            Some(uri) => vec![uri.clone()],
            None => self.members(deadline).await?,
        };
        let mut listed = Vec::with_capacity(members.len());
        for uri in members {
            let system = self.read_system(&uri, deadline).await?;
            listed.push(PlugInfo {
                plug: Plug::parse(&system.id),
                state: system.power_state().unwrap_or(PowerState::Unknown),
                name: system.name.clone(),
                alias: None,
            });
        }
        Ok(listed)
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        // The service root may be read without credentials (DSP0266 §13.3); a
        // system may not, so reading one proves the account.
        match &self.systems_uri {
            Some(uri) => self.read_system(uri, deadline).await.map(|_| ()),
            None => self.members(deadline).await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_takes_a_port_as_fence_redfish_does() {
        assert_eq!(split_host_port("bmc1").unwrap(), ("bmc1".into(), None));
        assert_eq!(
            split_host_port("10.0.0.5:8443").unwrap(),
            ("10.0.0.5".into(), Some(8443))
        );
        assert_eq!(split_host_port("::1").unwrap(), ("::1".into(), None));
        assert_eq!(
            split_host_port("[::1]:8443").unwrap(),
            ("::1".into(), Some(8443))
        );
        assert_eq!(
            split_host_port("[fe80::1]").unwrap(),
            ("fe80::1".into(), None)
        );
        for bad in ["bmc1:x", "bmc1:0", "bmc1:70000", "[::1", "[::1]x"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
