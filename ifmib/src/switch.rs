//! [`IfMibSwitch`]: a switch's interfaces as a [`PowerSwitch`] over SNMP IF-MIB, and
//! the `ifmib` plugin's parameter [`SCHEMA`] under fence_ifmib's names.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use fencekit_core::device_params;
use fencekit_core::schema::PluginKind;
use fencekit_core::{
    resolve_outlet, DeviceError, Instant, ParamSpec, Params, Plug, PlugInfo, PowerState,
    PowerSwitch, Schema, SwitchTo,
};

use fencekit_snmp::ber::SetValue;
use fencekit_snmp::{params, status_name, Agent, Credentials, Resend, Response, Session, VarValue};

use crate::mib;

/// How long one SNMP request waits before it is sent again (net-snmp's default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How many interfaces' status objects go into one GetRequest while listing.
const LIST_BATCH: usize = 8;

/// One row of the interface table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interface {
    index: u32,
    descr: String,
    /// ifName, when the agent has ifXTable.
    name: Option<String>,
}

impl Interface {
    fn describe(&self) -> String {
        match &self.name {
            Some(name) if *name != self.descr => format!("{} ({}, {name})", self.index, self.descr),
            _ => format!("{} ({})", self.index, self.descr),
        }
    }
}

/// A switch (or any IF-MIB agent) whose ports fence nodes by `ifAdminStatus`.
#[derive(Debug)]
pub struct IfMibSwitch {
    agent: Agent,
    /// The interface table, read once per device object: the front ends build one
    /// per operation, so every read-back of a fence resolves the plug against the
    /// same table without walking it again.
    table: OnceLock<Vec<Interface>>,
}

impl IfMibSwitch {
    pub fn new(agent: Agent) -> IfMibSwitch {
        IfMibSwitch {
            agent,
            table: OnceLock::new(),
        }
    }

    /// Builds the switch from parameters validated against [`SCHEMA`].
    pub fn from_params(params: &Params) -> Result<IfMibSwitch, DeviceError> {
        let config = |text: String| DeviceError::Failed(text);
        let host = params
            .text("ip")
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config("parameter `ip` is required".into()))?
            .to_string();
        let port = params.integer("ipport").unwrap_or(161);
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| config(format!("parameter `ipport` must be 1 to 65535, not {port}")))?;
        // fence_ifmib assumes no community: net-snmp's tools refuse to run without
        // one, and a switch's factory community is nothing to assume.
        let credentials = Credentials::from_params(params, None)?;
        Ok(IfMibSwitch::new(Agent::new(
            &host,
            port,
            credentials,
            REQUEST_TIMEOUT,
        )))
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// [`IfMibSwitch::interfaces`], read once per device object.
    async fn table(&self, session: &mut Session<'_>) -> Result<&[Interface], DeviceError> {
        if self.table.get().is_none() {
            let interfaces = self.interfaces(session).await?;
            let _ = self.table.set(interfaces);
        }
        Ok(self.table.get().map(Vec::as_slice).unwrap_or_default())
    }

    /// Every interface: ifDescr, and ifName where the agent has ifXTable.
    async fn interfaces(&self, session: &mut Session<'_>) -> Result<Vec<Interface>, DeviceError> {
        let mut interfaces = Vec::new();
        for (oid, value) in session.walk(&mib::IF_DESCR.to_vec()).await? {
            let index =
                mib::index_of(mib::IF_DESCR, &oid).ok_or_else(|| self.odd_row("ifDescr", &oid))?;
            interfaces.push(Interface {
                index,
                descr: value.display_string(),
                name: None,
            });
        }
        // An agent without ifXTable ends this walk at once (noSuchName, endOfMibView
        // or the next table): its interfaces are named by ifDescr alone. Any other
        // failure is one: a name left unread could hide that a plug is ambiguous.
        for (oid, value) in session.walk(&mib::IF_NAME.to_vec()).await? {
            let index =
                mib::index_of(mib::IF_NAME, &oid).ok_or_else(|| self.odd_row("ifName", &oid))?;
            // ifXTable augments ifTable: a name whose interface ifDescr does not list
            // means the columns disagree, and the unlisted interface could carry the
            // plug's name too.
            let Some(interface) = interfaces.iter_mut().find(|i| i.index == index) else {
                return Err(DeviceError::Protocol(format!(
                    "{} lists interface {index} under ifName but not under ifDescr; refusing \
                     to pick ports from a table whose columns disagree",
                    self.agent.endpoint()
                )));
            };
            interface.name = Some(value.display_string());
        }
        // A walk of ifName that found nothing is an agent without ifXTable, or one
        // that lost the whole column: each interface's ifName is asked for by name,
        // and one that answers is a name the walk hid.
        if interfaces.iter().all(|i| i.name.is_none()) {
            self.no_names_hidden(session, &interfaces).await?;
        }
        // ifXTable augments ifTable row for row: an agent that names some interfaces
        // and not others lost rows of the walk, and an interface left unnamed could
        // carry the plug's name.
        if let Some(unnamed) = interfaces.iter().find(|i| i.name.is_none()) {
            if interfaces.iter().any(|i| i.name.is_some()) {
                return Err(DeviceError::Protocol(format!(
                    "{} lists interface {} under ifDescr but not under ifName, and others \
                     under both; refusing to pick ports from a table missing rows",
                    self.agent.endpoint(),
                    unnamed.index
                )));
            }
        }
        // A walk that ended early (an agent losing its last rows) lists fewer
        // interfaces than ifNumber says, and a row left out could carry the plug's
        // name too. An agent without ifNumber is taken as listed.
        let response = session.get(&[mib::IF_NUMBER.to_vec()]).await?;
        match response.binds.first().map(|(_, v)| v) {
            Some(VarValue::Integer(count))
                if response.status == 0
                    && i64::try_from(interfaces.len()).is_ok_and(|n| n < *count) =>
            {
                return Err(DeviceError::Protocol(format!(
                    "{} lists {} interfaces under ifDescr and ifNumber says {count}; refusing \
                     to pick ports from a table missing rows",
                    self.agent.endpoint(),
                    interfaces.len()
                )));
            }
            _ => {}
        }
        Ok(interfaces)
    }

    /// Refuses when any of `interfaces` answers a Get of its ifName, which the walk
    /// of the column did not show.
    async fn no_names_hidden(
        &self,
        session: &mut Session<'_>,
        interfaces: &[Interface],
    ) -> Result<(), DeviceError> {
        let hidden = |index: u32| {
            DeviceError::Protocol(format!(
                "{} answers ifName of interface {index} but listed no ifName when walked; \
                 refusing to pick ports from a table read that hides names",
                self.agent.endpoint()
            ))
        };
        for batch in interfaces.chunks(LIST_BATCH) {
            let names: Vec<_> = batch
                .iter()
                .map(|i| mib::object(mib::IF_NAME, i.index))
                .collect();
            let response = session.get(&names).await?;
            match response.status {
                0 => {
                    for (interface, (_, value)) in batch.iter().zip(&response.binds) {
                        if matches!(value, VarValue::Text(_)) {
                            return Err(hidden(interface.index));
                        }
                    }
                }
                // SNMPv1: one missing object spoils the batch; ask one by one.
                2 => {
                    for interface in batch {
                        let one = [mib::object(mib::IF_NAME, interface.index)];
                        let response = session.get(&one).await?;
                        if response.status == 0
                            && matches!(response.binds.first(), Some((_, VarValue::Text(_))))
                        {
                            return Err(hidden(interface.index));
                        }
                    }
                }
                status => {
                    return Err(DeviceError::Protocol(format!(
                        "{} answered {} to a read of ifName",
                        self.agent.endpoint(),
                        status_name(status)
                    )))
                }
            }
        }
        Ok(())
    }

    fn odd_row(&self, column: &str, oid: &[u32]) -> DeviceError {
        DeviceError::Protocol(format!(
            "{} listed {} under {column}, which is not one interface's row; refusing to \
             pick ports from a table read another way than IF-MIB says",
            self.agent.endpoint(),
            fencekit_snmp::ber::dotted(oid)
        ))
    }

    /// The ifIndex a plug names: digits are an ifIndex, anything else an exact
    /// ifDescr or ifName, by the one rule of [`resolve_outlet`]: a plug that fits
    /// two interfaces (a name two carry, or digits that are one's index and
    /// another's name) is refused rather than guessed.
    async fn resolve(
        &self,
        session: &mut Session<'_>,
        plug: &Plug,
    ) -> Result<Interface, DeviceError> {
        let table = self.table(session).await?;
        let index = pick(table, plug)?;
        table
            .iter()
            .find(|i| i.index == index)
            .cloned()
            .ok_or_else(|| DeviceError::Protocol(format!("interface {index} left the table")))
    }

    /// ifAdminStatus and ifOperStatus of one interface; `None` when it has none. Its
    /// names come in the same request and must still be the ones the plug was
    /// matched against: an ifIndex given to another interface since the table was
    /// read (interfaces come and go, and agents reuse indexes) would otherwise have
    /// its state read as the plug's. A plug given as an ifIndex is held to the same
    /// names: the index was chosen for the interface it showed when the table was
    /// read, and another interface at that index since is another port.
    async fn read(
        &self,
        session: &mut Session<'_>,
        interface: &Interface,
    ) -> Result<Option<(i64, Option<i64>)>, DeviceError> {
        let index = interface.index;
        let mut objects = vec![
            mib::object(mib::IF_ADMIN_STATUS, index),
            mib::object(mib::IF_OPER_STATUS, index),
            mib::object(mib::IF_DESCR, index),
        ];
        if interface.name.is_some() {
            objects.push(mib::object(mib::IF_NAME, index));
        }
        let response = session.get(&objects).await?;
        if response.status == 0 {
            let descr = response.binds.get(2).map(|(_, v)| v.display_string());
            let name = response.binds.get(3).map(|(_, v)| v.display_string());
            if descr.as_deref() != Some(interface.descr.as_str()) || name != interface.name {
                return Err(DeviceError::Protocol(format!(
                    "{}: interface {index} is no longer the one the plug named ({} when \
                     the table was read, now {}); refusing to take its state as the plug's",
                    self.agent.endpoint(),
                    interface.describe(),
                    Interface {
                        index,
                        descr: descr.unwrap_or_default(),
                        name,
                    }
                    .describe()
                )));
            }
        }
        Ok(self.decode(&response, 1)?.pop().flatten())
    }

    /// `count` (ifAdminStatus, ifOperStatus) pairs from one GetRequest's answer; an
    /// agent without ifOperStatus is judged by ifAdminStatus (`None` beside it).
    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        response: &Response,
        count: usize,
    ) -> Result<Vec<Option<(i64, Option<i64>)>>, DeviceError> {
        fencekit_snmp::integer_pairs(
            &self.agent.endpoint(),
            response,
            count,
            "an interface status read",
            ["ifAdminStatus", "ifOperStatus"],
        )
    }

    fn unknown_index(&self, plug: &Plug, index: u32) -> DeviceError {
        DeviceError::UnknownPlug {
            plug: plug.to_string(),
            known: format!(
                "interface {index} is listed in ifDescr but has no ifAdminStatus on {}",
                self.agent.endpoint()
            ),
        }
    }
}

/// The interface of `table` a plug names (see [`IfMibSwitch::resolve`]).
fn pick(table: &[Interface], plug: &Plug) -> Result<u32, DeviceError> {
    // `1:N` is the interface with ifIndex N and nothing else (the form the plug
    // ambiguity error names), unless an interface is called `1:N` itself.
    if let Plug::OnUnit { unit: 1, outlet } = plug {
        if let Plug::Number(index) = outlet.as_ref() {
            let text = plug.to_string();
            let named = table
                .iter()
                .any(|i| i.descr == text || i.name.as_deref() == Some(text.as_str()));
            if !named {
                return match table.iter().find(|i| i.index == *index) {
                    Some(i) => Ok(i.index),
                    None => Err(DeviceError::UnknownPlug {
                        plug: text,
                        known: table
                            .iter()
                            .map(Interface::describe)
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                };
            }
        }
    }
    let plug = match plug {
        Plug::Number(_) | Plug::Name(_) => plug.clone(),
        // Another `a:b` is a name here (interfaces have no units); `chassis` or
        // nothing names no port.
        Plug::OnUnit { .. } => Plug::Name(plug.to_string()),
        Plug::Chassis => {
            return Err(DeviceError::Failed(
                "a plug is needed: the interface's ifIndex, ifDescr or ifName".into(),
            ))
        }
    };
    let names = table.iter().flat_map(|i| {
        std::iter::once((i.index, i.descr.as_str())).chain(
            i.name
                .as_deref()
                .filter(|name| *name != i.descr)
                .map(|name| (i.index, name)),
        )
    });
    match resolve_outlet(&plug, names) {
        Ok(index) => Ok(index),
        Err(DeviceError::UnknownPlug { plug, .. }) => Err(DeviceError::UnknownPlug {
            plug,
            known: if table.is_empty() {
                "no interfaces".into()
            } else {
                table
                    .iter()
                    .map(Interface::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
        Err(DeviceError::AmbiguousPlug { plug, outlets }) => {
            let described: Vec<String> = outlets
                .split(", ")
                .map(|index| {
                    table
                        .iter()
                        .find(|i| i.index.to_string() == index)
                        .map_or_else(|| index.to_string(), Interface::describe)
                })
                .collect();
            Err(DeviceError::AmbiguousPlug {
                plug,
                outlets: described.join(", "),
            })
        }
        Err(other) => Err(other),
    }
}

#[async_trait]
impl PowerSwitch for IfMibSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let interface = self.resolve(&mut session, plug).await?;
        let index = interface.index;
        let (admin, oper) = self
            .read(&mut session, &interface)
            .await?
            .ok_or_else(|| self.unknown_index(plug, index))?;
        tracing::info!(
            device = %self.agent.endpoint(),
            plug = %plug,
            if_index = index,
            admin_status = mib::admin_name(admin),
            oper_status = oper.map_or("absent", mib::oper_name),
            "interface read"
        );
        Ok(mib::port_state(admin, oper))
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let interface = self.resolve(&mut session, plug).await?;
        let index = interface.index;
        let value = match to {
            SwitchTo::On => mib::ADMIN_UP,
            SwitchTo::Off => mib::ADMIN_DOWN,
        };
        tracing::info!(
            device = %self.agent.endpoint(),
            plug = %plug,
            if_index = index,
            action = to.as_str(),
            "ifAdminStatus set"
        );
        // Setting ifAdminStatus twice to one value is the same as once: the set may
        // be sent again when no answer came.
        let sent = session
            .set(
                &[(
                    mib::object(mib::IF_ADMIN_STATUS, index),
                    SetValue::Integer(value),
                )],
                Resend::Safe,
            )
            .await;
        match sent {
            // A refused set on an interface without ifAdminStatus is an unknown
            // plug, not a refusal: a read tells which.
            Err(refused @ (DeviceError::Refused(_) | DeviceError::Protocol(_))) => {
                match self.read(&mut session, &interface).await {
                    Ok(None) => Err(self.unknown_index(plug, index)),
                    _ => Err(refused),
                }
            }
            other => other,
        }
    }

    /// A port cut resets nothing: the fence algorithm never reboots through it.
    fn fabric(&self) -> bool {
        true
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let table = self.table(&mut session).await?.to_vec();
        // fence_ifmib lists each port's ifAlias beside its ifDescr (empty where the
        // agent has none, or no ifXTable: then this walk ends at once).
        let mut aliases = std::collections::HashMap::new();
        for (oid, value) in session.walk(&mib::IF_ALIAS.to_vec()).await? {
            if let Some(index) = mib::index_of(mib::IF_ALIAS, &oid) {
                aliases.insert(index, value.display_string());
            }
        }
        let mut out = Vec::with_capacity(table.len());
        for batch in table.chunks(LIST_BATCH) {
            let names: Vec<_> = batch
                .iter()
                .flat_map(|i| {
                    [
                        mib::object(mib::IF_ADMIN_STATUS, i.index),
                        mib::object(mib::IF_OPER_STATUS, i.index),
                    ]
                })
                .collect();
            let response = session.get(&names).await?;
            let states = if response.status == 2 {
                // SNMPv1: one missing object spoils the batch; read them one by one.
                let mut states = Vec::new();
                for interface in batch {
                    states.push(self.read(&mut session, interface).await?);
                }
                states
            } else {
                self.decode(&response, batch.len())?
            };
            for (interface, state) in batch.iter().zip(states) {
                out.push(PlugInfo {
                    plug: Plug::Number(interface.index),
                    name: Some(interface.descr.clone()),
                    alias: Some(aliases.remove(&interface.index).unwrap_or_default()),
                    state: state.map_or(PowerState::Unknown, |(admin, oper)| {
                        mib::port_state(admin, oper)
                    }),
                });
            }
        }
        Ok(out)
    }

    /// Proves that the agent answers with these credentials and lists interfaces:
    /// reads only (a monitor runs every few seconds; write access shows at the first
    /// set, whose answer is checked).
    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        if self.interfaces(&mut session).await?.is_empty() {
            return Err(DeviceError::Failed(format!(
                "{} lists no interfaces (ifDescr)",
                self.agent.endpoint()
            )));
        }
        Ok(())
    }
}

const PARAMS: &[ParamSpec] = &[
    device_params::ip("IP address or host name of the switch's SNMP agent"),
    device_params::ipport("UDP port of the switch's SNMP agent").default("161"),
    // The SNMP group, with fence_ifmib's default version.
    params::COMMUNITY,
    params::SNMP_VERSION.default("2c"),
    params::USERNAME,
    params::PASSWORD,
    params::SNMP_AUTH_PROT,
    params::SNMP_SEC_LEVEL,
    params::SNMP_PRIV_PROT,
    params::SNMP_PRIV_PASSWD,
    ParamSpec::new(
        "snmpget_path",
        "fence_ifmib's path to snmpget: not used (fencekit speaks SNMP itself)",
    ),
    ParamSpec::new(
        "snmpset_path",
        "fence_ifmib's path to snmpset: not used (fencekit speaks SNMP itself)",
    ),
    ParamSpec::new(
        "snmpwalk_path",
        "fence_ifmib's path to snmpwalk: not used (fencekit speaks SNMP itself)",
    ),
];

/// The `ifmib` plugin's schema (parameter names and aliases as fence_ifmib's).
pub const SCHEMA: Schema = Schema {
    plugin: "ifmib",
    kind: PluginKind::Fabric,
    summary: "switch ports over SNMP IF-MIB (fabric fencing, as fence_ifmib)",
    description: "Fences a node by cutting its port on a managed switch (its iSCSI or NFS \
                  storage network, or the cluster network) rather than its power: off sets \
                  IF-MIB::ifAdminStatus of the interface down(2), on sets it up(1), and the \
                  state read back is ifAdminStatus, and a port set down counts as off only once \
                  ifOperStatus no longer reads up (up, testing or unknown may still \
                  forward). Any \
                  SNMP v1, v2c or v3 agent with IF-MIB will do. A plug is an interface by \
                  ifIndex, or by its exact ifDescr or ifName; a name that fits two \
                  interfaces is refused.",
    url: "http://www.ietf.org/wg/concluded/ifmib.html",
    multi_plug: true,
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
    use fencekit_snmp::Version;

    fn validated(pairs: &[(&str, &str)]) -> Result<Params, String> {
        let raw: Vec<RawParam> = pairs
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
        validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .map(|v| v.params)
            .map_err(|e| e.to_string())
    }

    fn build(pairs: &[(&str, &str)]) -> Result<IfMibSwitch, String> {
        IfMibSwitch::from_params(&validated(pairs)?).map_err(|e| e.to_string())
    }

    #[test]
    fn the_schema_takes_fence_ifmib_names_and_defaults_to_v2c_on_port_161() {
        let switch = build(&[("ipaddr", "127.0.0.1"), ("community", "c")]).unwrap();
        assert_eq!(switch.agent.version(), Version::V2c);
        assert_eq!(switch.agent.endpoint(), "127.0.0.1:161");
        let switch = build(&[
            ("ip", "h"),
            ("ipport", "1161"),
            ("snmp_version", "3"),
            ("login", "alice"),
            ("passwd", "authpass1"),
            ("snmp_auth_prot", "SHA"),
        ])
        .unwrap();
        assert_eq!(switch.agent.version(), Version::V3);
        assert_eq!(switch.agent.endpoint(), "h:1161");
    }

    #[test]
    fn v2c_without_a_community_is_refused_as_fence_ifmib_assumes_none() {
        let err = build(&[("ip", "h")]).err().unwrap();
        assert!(err.contains("`community` is required"), "{err}");
    }

    #[test]
    fn unknown_protocols_and_versions_are_refused() {
        assert!(build(&[("ip", "h"), ("community", "c"), ("snmp_version", "4")]).is_err());
        assert!(build(&[
            ("ip", "h"),
            ("snmp_version", "3"),
            ("username", "u"),
            ("snmp_auth_prot", "CRC32")
        ])
        .is_err());
    }

    fn table() -> Vec<Interface> {
        let row = |index, descr: &str, name: Option<&str>| Interface {
            index,
            descr: descr.into(),
            name: name.map(Into::into),
        };
        vec![
            row(1, "lo", Some("lo")),
            row(10101, "GigabitEthernet1/0/1", Some("Gi1/0/1")),
            row(10102, "GigabitEthernet1/0/2", Some("Gi1/0/2")),
            // Two ports with one description (a stack whose members repeat it).
            row(20001, "uplink", Some("Te1/1/1")),
            row(20002, "uplink", Some("Te2/1/1")),
            // One port's description is another's short name.
            row(30001, "Gi1/0/2", None),
            // A port named after another's ifIndex.
            row(40001, "1", None),
        ]
    }

    #[test]
    fn one_colon_and_an_ifindex_is_that_interface_only_as_the_ambiguity_error_says() {
        let table = table();
        // `1` is ifIndex 1 and the name of 40001: ambiguous, and `1:1` says which.
        let err = pick(&table, &Plug::parse("1")).unwrap_err().to_string();
        assert!(err.contains("1:N"), "{err}");
        assert_eq!(pick(&table, &Plug::parse("1:1")), Ok(1));
        assert_eq!(pick(&table, &Plug::parse("1:40001")), Ok(40001));
        assert!(pick(&table, &Plug::parse("1:7")).is_err());
        // An interface called `1:1` itself is not overruled by the form.
        let mut named = table.clone();
        named.push(Interface {
            index: 50001,
            descr: "1:1".into(),
            name: None,
        });
        assert_eq!(pick(&named, &Plug::parse("1:1")), Ok(50001));
    }

    #[test]
    fn a_plug_is_an_ifindex_or_an_exact_ifdescr_or_ifname() {
        let table = table();
        assert_eq!(pick(&table, &Plug::parse("10101")), Ok(10101));
        assert_eq!(
            pick(&table, &Plug::parse("GigabitEthernet1/0/1")),
            Ok(10101)
        );
        assert_eq!(pick(&table, &Plug::parse("Gi1/0/1")), Ok(10101));
        assert_eq!(pick(&table, &Plug::parse("Te2/1/1")), Ok(20002));
        assert!(matches!(
            pick(&table, &Plug::parse("gi1/0/1")),
            Err(DeviceError::UnknownPlug { .. })
        ));
    }

    #[test]
    fn a_plug_that_fits_two_interfaces_is_refused_naming_both() {
        let table = table();
        for (plug, both) in [
            ("uplink", ["20001", "20002"]),
            ("Gi1/0/2", ["10102", "30001"]),
            ("1", ["1 (lo)", "40001"]),
        ] {
            match pick(&table, &Plug::parse(plug)) {
                Err(DeviceError::AmbiguousPlug { outlets, .. }) => {
                    for one in both {
                        assert!(outlets.contains(one), "{plug}: {outlets}");
                    }
                }
                other => panic!("{plug}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unknown_plug_names_every_interface_and_no_plug_is_refused() {
        match pick(&table(), &Plug::parse("eth9")) {
            Err(DeviceError::UnknownPlug { known, .. }) => {
                assert!(
                    known.contains("10101 (GigabitEthernet1/0/1, Gi1/0/1)"),
                    "{known}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(pick(&table(), &Plug::parse("")).is_err());
        assert!(pick(&[], &Plug::parse("3")).is_err());
    }

    #[test]
    fn the_schema_and_the_device_both_say_fabric() {
        let switch = build(&[("ip", "h"), ("community", "c")]).unwrap();
        assert!(SCHEMA.fabric() && switch.fabric());
    }

    #[test]
    fn debug_output_of_the_switch_hides_secrets() {
        let switch = build(&[("ip", "h"), ("community", "topsecret-c")]).unwrap();
        assert!(!format!("{switch:?}").contains("topsecret"));
        let switch = build(&[
            ("ip", "h"),
            ("snmp_version", "3"),
            ("username", "u"),
            ("password", "topsecret-a"),
            ("snmp_priv_passwd", "topsecret-p"),
        ])
        .unwrap();
        assert!(!format!("{switch:?}").contains("topsecret"));
    }
}
