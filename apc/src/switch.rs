//! `ApcSnmpSwitch`: an APC switched PDU as a [`PowerSwitch`] over SNMP, with the
//! profile read from `sysObjectID` once per operation, outlets found by number or
//! exact name (never a guess between two with one name), and the parameter schema
//! fence_apc_snmp users already know.

use std::time::Duration;

use async_trait::async_trait;
use fencekit_core::device_params;
use fencekit_core::schema::PluginKind;
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, ParamSpec, ParamType, Params, Plug, PlugInfo, PowerState,
    PowerSwitch, Schema, SwitchTo,
};

use crate::profile::{self, Command, Family, Instance, OutletCount};
use fencekit_snmp::ber::{self, Oid, SetValue};
use fencekit_snmp::params as snmp_params;
use fencekit_snmp::{Agent, Credentials, Resend, Response, Session, VarValue};

/// How long one SNMP request waits before it is sent again (net-snmp's default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The write community fence_apc_snmp assumes when none is given (APC's factory one).
const FACTORY_COMMUNITY: &str = "private";

/// The most units a chain is taken to have (APC chains four; a larger count is a
/// unit's error, not a reason to ask it for hundreds of objects).
const MAX_UNITS: u32 = 16;

/// How many outlets' state objects go into one GetRequest while listing.
const LIST_BATCH: usize = 8;

/// An APC PDU driven over SNMP.
#[derive(Debug)]
pub struct ApcSnmpSwitch {
    agent: Agent,
    /// A forced profile; `None` reads sysObjectID.
    profile: Option<Family>,
    /// The profile read from sysObjectID, once per device object: the front ends
    /// build one per operation, so a confirmed off is sysObjectID, set, read back.
    detected: std::sync::OnceLock<Family>,
    /// The sysObjectID named no family, and the MasterSwitch table is tried.
    fell_back: std::sync::OnceLock<String>,
    /// MasterSwitch Plus: the unit a bare outlet number or name refers to.
    unit: Option<u32>,
    /// The outlet table (numbers and names), read once per device object: a plug
    /// is resolved against it by the one rule of [`fencekit_core::resolve_outlet`]
    /// on every call of an operation.
    listed: std::sync::OnceLock<Vec<(Instance, String)>>,
    /// A unit did not answer its outlet count: rows its table leaves out cannot be
    /// told, so names are not looked up in it (numbers still are).
    uncounted: std::sync::atomic::AtomicBool,
}

impl ApcSnmpSwitch {
    pub fn new(agent: Agent, profile: Option<Family>, unit: Option<u32>) -> ApcSnmpSwitch {
        ApcSnmpSwitch {
            agent,
            profile,
            detected: std::sync::OnceLock::new(),
            fell_back: std::sync::OnceLock::new(),
            unit,
            listed: std::sync::OnceLock::new(),
            uncounted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Builds the switch from parameters validated against [`SCHEMA`].
    pub fn from_params(params: &Params) -> Result<ApcSnmpSwitch, DeviceError> {
        let config = |text: String| DeviceError::Failed(text);
        let host = params
            .text("ip")
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| config("parameter `ip` is required".into()))?
            .trim()
            .to_string();
        let port = params.integer("ipport").unwrap_or(161);
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| config(format!("parameter `ipport` must be 1 to 65535, not {port}")))?;
        let credentials = Credentials::from_params(params, Some(FACTORY_COMMUNITY))?;
        let profile = match params.text("profile").unwrap_or("auto") {
            p if p.eq_ignore_ascii_case("auto") => None,
            p => Some(Family::from_name(p).ok_or_else(|| {
                config(format!(
                    "parameter `profile`: {p} is not auto, rpdu, rpdu2, masterswitch or masterswitchplus"
                ))
            })?),
        };
        let unit = match params.integer("switch") {
            Some(n) => Some(u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                config(format!("parameter `switch` must be a unit number, not {n}"))
            })?),
            None => None,
        };
        // `switch` is fence_apc's (the console's); fence_apc_snmp has none, ignores a
        // `switch=2` it is given, and switches unit 1. Honouring it here would switch
        // another machine than the configuration did; ignoring it would switch
        // another than it says. Over SNMP the unit goes in the plug.
        if let Some(unit) = unit.filter(|u| *u != 1) {
            return Err(config(format!(
                "parameter `switch` ({unit}) is fence_apc's, for the console; over SNMP \
                 (as fence_apc_snmp, which ignores it and switches unit 1) give the unit in \
                 the plug: plug={unit}:OUTLET"
            )));
        }
        // fence_apc_snmp's address family options, as its net-snmp peer name says.
        let family = match (
            params.boolean("inet4_only").unwrap_or(false),
            params.boolean("inet6_only").unwrap_or(false),
        ) {
            (true, true) => {
                return Err(config(
                    "inet4_only and inet6_only exclude each other: give one".into(),
                ))
            }
            (true, false) => Some(false),
            (false, true) => Some(true),
            (false, false) => None,
        };
        Ok(ApcSnmpSwitch::new(
            Agent::new(&host, port, credentials, REQUEST_TIMEOUT).only_family(family),
            profile,
            unit,
        ))
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The profile for this operation: forced, or read from sysObjectID.
    async fn family(&self, session: &mut Session<'_>) -> Result<Family, DeviceError> {
        if let Some(family) = self.profile.or_else(|| self.detected.get().copied()) {
            return Ok(family);
        }
        let response = session.get(&[profile::sys_object_id()]).await?;
        match response.binds.first().map(|(_, v)| v) {
            Some(VarValue::Oid(oid)) if response.status == 0 => {
                let family = match Family::from_sys_object_id(oid) {
                    Some(family) => family,
                    // fence_apc_snmp's fallback: the MasterSwitch (sPDUOutletCtl)
                    // table, which most APC units answer. Every write is still
                    // checked and every state read back; a unit without the table
                    // fails naming this.
                    None => {
                        tracing::warn!(
                            device = %self.agent.endpoint(),
                            sys_object_id = %ber::dotted(oid),
                            "sysObjectID names no PDU family fencekit knows: trying the \
                             MasterSwitch outlet table (sPDUOutletCtl), as fence_apc_snmp does"
                        );
                        let _ = self.fell_back.set(ber::dotted(oid));
                        Family::MasterSwitch
                    }
                };
                Ok(*self.detected.get_or_init(|| family))
            }
            // An error status says why (authorizationError: the user's view lacks
            // the object), whatever the varbind left behind (NULL).
            _ if response.status != 0 => Err(DeviceError::Protocol(format!(
                "{} refused to give its sysObjectID: {}",
                self.agent.endpoint(),
                status_text(&response)
            ))),
            other => Err(DeviceError::Protocol(format!(
                "{} did not give its sysObjectID ({}); force a profile with `profile=`",
                self.agent.endpoint(),
                other.map_or_else(|| status_text(&response), VarValue::describe)
            ))),
        }
    }

    /// [`ApcSnmpSwitch::outlets`], read once per device object.
    async fn listed(
        &self,
        session: &mut Session<'_>,
        family: Family,
    ) -> Result<&[(Instance, String)], DeviceError> {
        if self.listed.get().is_none() {
            let outlets = self.outlets(session, family).await?;
            let _ = self.listed.set(outlets);
        }
        Ok(self.listed.get().map(Vec::as_slice).unwrap_or_default())
    }

    /// Every outlet with its name, from the family's name column.
    async fn outlets(
        &self,
        session: &mut Session<'_>,
        family: Family,
    ) -> Result<Vec<(Instance, String)>, DeviceError> {
        let rows = session.walk(&family.name_column()).await?;
        let mut outlets = Vec::with_capacity(rows.len());
        for (name, value) in rows {
            let instance = match family.instance_of(&name) {
                None => continue,
                Some(Ok(instance)) => instance,
                Some(Err(row)) => {
                    return Err(DeviceError::Protocol(format!(
                        "{} ({}): {row}; refusing to pick outlets from a table read \
                         another way than fencekit knows",
                        self.agent.endpoint(),
                        family.title()
                    )))
                }
            };
            outlets.push((instance, value.display_string()));
        }
        if let Some(missing) = numbering_gap(&outlets) {
            return Err(DeviceError::Protocol(format!(
                "{} ({}): the outlet table skips outlet {missing}; refusing to pick outlets \
                 from a table missing a row (an outlet named like the plug could be the \
                 one missing)",
                self.agent.endpoint(),
                family.title()
            )));
        }
        self.check_count(session, family, &outlets).await?;
        Ok(outlets)
    }

    /// Refuses a listing with fewer rows than the unit says it has outlets: its
    /// first or last rows missing (a walk ended early) could hide a second outlet
    /// named like the plug, and a host's plug set would shrink to what was listed. A
    /// unit that does not answer its count is listed as before, with a warning.
    async fn check_count(
        &self,
        session: &mut Session<'_>,
        family: Family,
        outlets: &[(Instance, String)],
    ) -> Result<(), DeviceError> {
        let missing = |what: String, listed: usize, count: i64| {
            DeviceError::Protocol(format!(
                "{} ({}): its outlet table lists {listed} outlets{what} and {} says {count}; \
                 refusing to pick outlets from a table missing rows (an outlet named like the \
                 plug could be one missing)",
                self.agent.endpoint(),
                family.title(),
                match family.outlet_count() {
                    OutletCount::Total { object, .. } | OutletCount::PerUnit { object, .. } =>
                        object,
                }
            ))
        };
        let fewer = |listed: usize, count: i64| i64::try_from(listed).is_ok_and(|l| l < count);
        match family.outlet_count() {
            OutletCount::Total { oid, object } => {
                let Some(count) = self.count_of(session, &[oid], object).await?.pop() else {
                    return Ok(());
                };
                if fewer(outlets.len(), count) {
                    return Err(missing(String::new(), outlets.len(), count));
                }
            }
            OutletCount::PerUnit {
                units,
                column,
                object,
                by_unit,
            } => {
                let at = |unit: u32| [column.as_slice(), &[unit]].concat();
                // The unit count and the first unit's outlets in one exchange.
                let first = self.count_of(session, &[units, at(1)], object).await?;
                let [units, first] = first[..] else {
                    return Ok(());
                };
                let said = units;
                let units = u32::try_from(said)
                    .ok()
                    .filter(|u| (1..=MAX_UNITS).contains(u));
                let Some(units) = units else {
                    return Err(DeviceError::Protocol(format!(
                        "{} ({}): it says it has {said} units in its chain; refusing a table \
                         fencekit cannot check",
                        self.agent.endpoint(),
                        family.title()
                    )));
                };
                let mut counts = vec![first];
                if units > 1 {
                    let rest: Vec<Oid> = (2..=units).map(at).collect();
                    match self.count_of(session, &rest, object).await? {
                        more if more.len() == rest.len() => counts.extend(more),
                        _ => return Ok(()),
                    }
                }
                if by_unit {
                    for (unit, count) in (1..=units).zip(&counts) {
                        let listed = outlets
                            .iter()
                            .filter(|(i, _)| i.first() == Some(&unit))
                            .count();
                        if fewer(listed, *count) {
                            return Err(missing(format!(" on unit {unit}"), listed, *count));
                        }
                    }
                } else if fewer(outlets.len(), counts.iter().sum()) {
                    return Err(missing(String::new(), outlets.len(), counts.iter().sum()));
                }
            }
        }
        Ok(())
    }

    /// Refuses to look a name up in a table whose rows could not be counted: a second
    /// outlet carrying the name (a node's other power supply) could be a row left
    /// out, and the node would be reported fenced while it still fed it.
    fn names_counted(&self, family: Family, plug: &Plug) -> Result<(), DeviceError> {
        if !self.uncounted.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        Err(DeviceError::Failed(format!(
            "{} ({}) does not say how many outlets it has, so an outlet its table leaves \
             out could carry the name {plug} too: refusing to look a name up there; give \
             the outlet's number (every outlet of the host, in hostmap for cluster-glue)",
            self.agent.endpoint(),
            family.title()
        )))
    }

    /// The integers at `oids` in one GetRequest; empty (and a warning) when the unit
    /// does not answer them all, as firmware without the objects would.
    async fn count_of(
        &self,
        session: &mut Session<'_>,
        oids: &[Oid],
        object: &str,
    ) -> Result<Vec<i64>, DeviceError> {
        let response = session.get(oids).await?;
        let counts: Vec<i64> = response
            .binds
            .iter()
            .filter_map(|(_, value)| match value {
                VarValue::Integer(n) if response.status == 0 => Some(*n),
                _ => None,
            })
            .collect();
        if counts.len() == oids.len() {
            return Ok(counts);
        }
        let answer = match response
            .binds
            .iter()
            .find(|(_, v)| !matches!(v, VarValue::Integer(_)))
        {
            Some((_, value)) if response.status == 0 => value.describe(),
            _ => status_text(&response),
        };
        tracing::warn!(
            device = %self.agent.endpoint(),
            "{object} not answered ({answer}): a row the outlet table leaves out cannot be \
             told, so outlets are taken by number only; name a host's every outlet by \
             number (hostmap)"
        );
        self.uncounted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Vec::new())
    }

    fn plug_of(family: Family, instance: &[u32]) -> Plug {
        match (family.chained(), instance) {
            (true, [unit, outlet]) => Plug::OnUnit {
                unit: *unit,
                outlet: Box::new(Plug::Number(*outlet)),
            },
            (_, [n]) => Plug::Number(*n),
            _ => Plug::Name(ber::dotted(instance)),
        }
    }

    async fn unknown_plug(
        &self,
        session: &mut Session<'_>,
        family: Family,
        plug: &Plug,
    ) -> DeviceError {
        let known = match self.outlets(session, family).await {
            Ok(outlets) if outlets.is_empty() => "no outlets".to_string(),
            Ok(outlets) => outlets
                .iter()
                .map(|(instance, name)| format!("{} ({name})", Self::plug_of(family, instance)))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("(cannot list them: {e})"),
        };
        let known = match self.fell_back.get() {
            Some(oid) => format!("{known}; {}", profile::unknown_family_message(oid)),
            None => known,
        };
        DeviceError::UnknownPlug {
            plug: plug.to_string(),
            known,
        }
    }

    /// Finds the outlet a plug names, by the one rule of
    /// [`fencekit_core::resolve_outlet`], within one unit of a chain: a bare plug
    /// is on the configured unit (`switch`, default 1), `unit:outlet` on its own.
    async fn resolve(
        &self,
        session: &mut Session<'_>,
        family: Family,
        plug: &Plug,
    ) -> Result<Instance, DeviceError> {
        if let Some(unit) = self.unit.filter(|u| *u != 1 && !family.chained()) {
            return Err(DeviceError::Failed(format!(
                "parameter `switch` ({unit}) names a unit of a daisy chain, and {} ({}) has \
                 none: refusing rather than switching outlet {plug} of its only unit",
                self.agent.endpoint(),
                family.title()
            )));
        }
        // A name on a chain with no unit given is looked for on every unit, as
        // fence_apc_snmp does (and refused if two outlets anywhere carry it).
        if let (Plug::Name(text), true, None) = (plug, family.chained(), self.unit) {
            return self.resolve_on_chain(session, family, plug, text).await;
        }
        // `unit:outlet` addresses an outlet: its number is that outlet only. A PDU of
        // one unit is unit 1 (fence_apc_snmp's `1:N`).
        let (unit, outlet, addressed) = match plug {
            Plug::OnUnit { unit, outlet } if family.chained() => (*unit, outlet.as_ref(), true),
            Plug::OnUnit { unit: 1, outlet } => (1, outlet.as_ref(), true),
            Plug::OnUnit { unit, .. } => {
                return Err(DeviceError::UnknownPlug {
                    plug: plug.to_string(),
                    known: format!(
                        "unit 1 only (this {} has one unit; unit {unit} does not exist)",
                        family.title()
                    ),
                })
            }
            Plug::Number(_) | Plug::Name(_) => (self.unit.unwrap_or(1), plug, false),
            _ => return Err(self.unknown_plug(session, family, plug).await),
        };
        let place = |number: u32| {
            if family.chained() {
                vec![unit, number]
            } else {
                vec![number]
            }
        };
        match outlet {
            // A number or a name, by the one rule: a number another outlet is named
            // after is ambiguous, as on every other device. The outlet table is
            // read once per operation; a PDU that lists no outlets at all (an
            // unknown family's fallback table) takes a number as that outlet, and a
            // missing one shows in the read or the set.
            Plug::Number(_) | Plug::Name(_) => {
                let listed = self.listed(session, family).await?;
                if let (Plug::Number(n), true) = (outlet, listed.is_empty()) {
                    return Ok(place(*n));
                }
                if let Plug::Name(_) = outlet {
                    self.names_counted(family, plug)?;
                }
                let on_unit: Vec<(u32, &str)> = listed
                    .iter()
                    .filter_map(|(instance, name)| match instance.as_slice() {
                        [u, n] if family.chained() && *u == unit => Some((*n, name.as_str())),
                        [n] if !family.chained() => Some((*n, name.as_str())),
                        _ => None,
                    })
                    .collect();
                let found = if addressed {
                    fencekit_core::resolve_addressed(outlet, on_unit.iter().copied())
                } else {
                    fencekit_core::resolve_outlet(outlet, on_unit.iter().copied())
                };
                match found {
                    Ok(number) => Ok(place(number)),
                    Err(DeviceError::UnknownPlug { .. }) => {
                        Err(self.unknown_plug(session, family, plug).await)
                    }
                    Err(DeviceError::AmbiguousPlug { outlets, .. }) => {
                        Err(DeviceError::AmbiguousPlug {
                            plug: plug.to_string(),
                            outlets: if family.chained() {
                                outlets
                                    .split(", ")
                                    .map(|n| format!("{unit}:{n}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            } else {
                                outlets
                            },
                        })
                    }
                    Err(other) => Err(other),
                }
            }
            _ => Err(self.unknown_plug(session, family, plug).await),
        }
    }

    /// The outlet named `text` on any unit of a chain: the one outlet with exactly
    /// that name, or, for digits (`07`), outlet 7 of unit 1 (as a bare number is);
    /// both, or two named so, is ambiguous.
    async fn resolve_on_chain(
        &self,
        session: &mut Session<'_>,
        family: Family,
        plug: &Plug,
        text: &str,
    ) -> Result<Instance, DeviceError> {
        let listed = self.listed(session, family).await?;
        self.names_counted(family, plug)?;
        let mut found: Vec<Instance> = listed
            .iter()
            .filter(|(_, name)| name == text)
            .map(|(instance, _)| instance.clone())
            .collect();
        if let Some(number) = fencekit_core::power::canonical_digits(text) {
            let by_number = vec![1, number];
            if listed.iter().any(|(i, _)| *i == by_number) && !found.contains(&by_number) {
                found.push(by_number);
            }
        }
        // The rule of resolve_outlet across the units: beside a match, a name alike
        // (case, blanks, unseen characters, a number's padding) is the other
        // supply, and the plug ambiguous.
        if !found.is_empty() {
            for (instance, name) in listed {
                if fencekit_core::power::named_alike(name, text) && !found.contains(instance) {
                    found.push(instance.clone());
                }
            }
        }
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(self.unknown_plug(session, family, plug).await),
            many => Err(DeviceError::AmbiguousPlug {
                plug: plug.to_string(),
                outlets: many
                    .iter()
                    .map(|i| Self::plug_of(family, i).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Reads an outlet's state; `None` when the outlet does not exist.
    async fn read_state(
        &self,
        session: &mut Session<'_>,
        family: Family,
        instance: &[u32],
    ) -> Result<Option<PowerState>, DeviceError> {
        let response = session
            .get(&[family.state_oid(instance), family.pending_oid(instance)])
            .await?;
        Ok(self.decode_states(family, &response, 1)?.pop().flatten())
    }

    /// Decodes `count` (state, pending) pairs from one GetRequest's answer.
    fn decode_states(
        &self,
        family: Family,
        response: &Response,
        count: usize,
    ) -> Result<Vec<Option<PowerState>>, DeviceError> {
        let pairs = fencekit_snmp::integer_pairs(
            &self.agent.endpoint(),
            response,
            count,
            "an outlet status read",
            ["an outlet state", "a command-pending flag"],
        )?;
        Ok(pairs
            .into_iter()
            .map(|pair| {
                pair.map(|(state, pending)| {
                    // Not every firmware has the pending column; its absence says nothing.
                    if pending.is_some_and(|p| family.decode_pending(p)) {
                        PowerState::Unknown
                    } else {
                        family.decode_state(state)
                    }
                })
            })
            .collect())
    }

    async fn send_command(
        &self,
        plug: &Plug,
        command: Command,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let family = self.family(&mut session).await?;
        let instance = self.resolve(&mut session, family, plug).await?;
        // The PDU's reboot is not idempotent: make sure the outlet exists before it
        // is sent. On and off go straight out (a confirmed off is then sysObjectID,
        // set, read back); a refused set is told apart below.
        if command == Command::Reboot
            && self
                .read_state(&mut session, family, &instance)
                .await?
                .is_none()
        {
            return Err(self.unknown_plug(&mut session, family, plug).await);
        }
        let resend = if command == Command::Reboot {
            Resend::Never
        } else {
            Resend::Safe
        };
        tracing::info!(
            device = %self.agent.endpoint(),
            plug = %plug,
            profile = family.name(),
            action = ?command,
            "APC outlet command"
        );
        let sent = session
            .set(
                &[(
                    family.control_oid(&instance),
                    SetValue::Integer(family.command_value(command)),
                )],
                resend,
            )
            .await;
        match sent {
            // SNMPv1 answers both a missing outlet and a read-only community with
            // noSuchName: a read tells which.
            Err(refused @ (DeviceError::Refused(_) | DeviceError::Protocol(_))) => {
                match self.read_state(&mut session, family, &instance).await {
                    Ok(None) => Err(self.unknown_plug(&mut session, family, plug).await),
                    _ => Err(refused),
                }
            }
            other => other,
        }
    }
}

fn status_text(response: &Response) -> String {
    fencekit_snmp::status_name(response.status).to_string()
}

#[async_trait]
impl PowerSwitch for ApcSnmpSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let family = self.family(&mut session).await?;
        let instance = self.resolve(&mut session, family, plug).await?;
        match self.read_state(&mut session, family, &instance).await? {
            Some(state) => Ok(state),
            None => Err(self.unknown_plug(&mut session, family, plug).await),
        }
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let command = match to {
            SwitchTo::On => Command::On,
            SwitchTo::Off => Command::Off,
        };
        self.send_command(plug, command, deadline).await
    }

    /// `Cycle` is the outlet's immediateReboot: the PDU switches it off and on again
    /// after its configured reboot duration. It is never sent twice. It is not
    /// offered to the fence algorithm ([`PowerSwitch::supports`]): while it runs the
    /// outlet reads "command pending", never off, so a fence through it could not be
    /// confirmed; a fence drives the outlet off, reads it off, and on again.
    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        match command {
            DeviceCommand::Cycle => self.send_command(plug, Command::Reboot, deadline).await,
            other => Err(DeviceError::Unsupported(format!(
                "an APC PDU has no {} command",
                other.as_str()
            ))),
        }
    }

    fn supports(&self, _command: DeviceCommand) -> bool {
        false
    }

    fn names_complete(&self) -> bool {
        !self.uncounted.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn least_off(&self) -> std::time::Duration {
        fencekit_core::switch::OUTLET_LEAST_OFF
    }

    fn address(&self, listed: &Plug) -> Plug {
        fencekit_core::power::on_unit(self.unit.unwrap_or(1), listed)
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let family = self.family(&mut session).await?;
        let outlets = self.outlets(&mut session, family).await?;
        let mut out = Vec::with_capacity(outlets.len());
        for batch in outlets.chunks(LIST_BATCH) {
            let names: Vec<_> = batch
                .iter()
                .flat_map(|(i, _)| [family.state_oid(i), family.pending_oid(i)])
                .collect();
            let response = session.get(&names).await?;
            let states = if response.status == 2 {
                // SNMPv1: one missing object spoils the batch; read the outlets one by one.
                let mut states = Vec::new();
                for (instance, _) in batch {
                    states.push(self.read_state(&mut session, family, instance).await?);
                }
                states
            } else {
                self.decode_states(family, &response, batch.len())?
            };
            for ((instance, name), state) in batch.iter().zip(states) {
                out.push(PlugInfo {
                    plug: Self::plug_of(family, instance),
                    name: Some(name.clone()),
                    alias: None,
                    state: state.unwrap_or(PowerState::Unknown),
                });
            }
        }
        Ok(out)
    }

    /// Proves that the PDU answers with these credentials and that its outlets can be
    /// listed: reads only. (A monitor runs every few seconds; writing anything, even an
    /// outlet's own name back, would log a configuration change on the card each time.
    /// Write access shows at the first switch, whose answer is checked.)
    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        let mut session = self.agent.session(deadline).await?;
        let family = self.family(&mut session).await?;
        let outlets = self.outlets(&mut session, family).await?;
        if outlets.is_empty() {
            return Err(DeviceError::Failed(format!(
                "{} ({}) lists no outlets",
                self.agent.endpoint(),
                family.title()
            )));
        }
        Ok(())
    }
}

/// The first outlet a listing skips: APC numbers the outlets of a unit 1, 2, ... N,
/// so a row missing between two listed ones (an agent that failed to read it) is
/// told here, as `unit:outlet` on a chain. `None` when every unit's rows run on. A
/// unit's first or last rows missing cannot be told from its numbering.
fn numbering_gap(outlets: &[(Instance, String)]) -> Option<String> {
    let mut per_unit: std::collections::BTreeMap<Option<u32>, Vec<u32>> = Default::default();
    for (instance, _) in outlets {
        match instance.as_slice() {
            [unit, outlet] => per_unit.entry(Some(*unit)).or_default().push(*outlet),
            [outlet] => per_unit.entry(None).or_default().push(*outlet),
            _ => {}
        }
    }
    for (unit, mut numbers) in per_unit {
        numbers.sort_unstable();
        numbers.dedup();
        let mut expected = numbers.first().copied().unwrap_or(1);
        for n in numbers {
            if n > expected {
                return Some(match unit {
                    Some(unit) => format!("{unit}:{expected}"),
                    None => expected.to_string(),
                });
            }
            expected = n.saturating_add(1);
        }
    }
    None
}

const PARAMS: &[ParamSpec] = &[
    device_params::ip("IP address or host name of the PDU"),
    device_params::ipport("UDP port of the PDU's SNMP agent (default 161); with transport=ssh alone, the \
         console's TCP port (default 22, or 23 with telnet=1)"),
    ParamSpec::new(
        "transport",
        "snmp, ssh (the console, over SSH or with telnet=1 over telnet), or snmp,ssh (SNMP, \
         with the console when SNMP gives no answer); default snmp, or the console when \
         secure=1 (fence_apc's --ssh) or telnet=1",
    )
    .ty(ParamType::Select(&["snmp", "ssh", "snmp,ssh"])),
    // The SNMP group, declared in fencekit-snmp; fence_apc_snmp's defaults:
    // version 1 and APC's factory write community.
    ParamSpec {
        description: "SNMPv1/v2c community with write access (default: APC's factory \
                      `private`, as fence_apc_snmp; a warning is logged when the default \
                      is used)",
        ..snmp_params::COMMUNITY
    },
    snmp_params::SNMP_VERSION.default("1"),
    snmp_params::USERNAME,
    snmp_params::PASSWORD,
    snmp_params::SNMP_AUTH_PROT,
    snmp_params::SNMP_SEC_LEVEL,
    snmp_params::SNMP_PRIV_PROT,
    snmp_params::SNMP_PRIV_PASSWD,
    ParamSpec::new(
        "switch",
        "The unit in a daisy chain (fence_apc's, for the console); over SNMP only 1, as \
         fence_apc_snmp has no such parameter and switches unit 1: give the unit in the plug \
         (unit:outlet); a bare name is looked for on every unit",
    )
    .short('s')
    .ty(ParamType::Integer),
    ParamSpec::new(
        "profile",
        "PDU family: auto reads sysObjectID; force rpdu, rpdu2, masterswitch or masterswitchplus for a unit that reports another ID",
    )
    .ty(ParamType::Select(&["auto", "rpdu", "rpdu2", "masterswitch", "masterswitchplus"]))
    .default("auto"),
    // The SSH console's own parameters (fence_apc's names); `ip`, `ipport`,
    // `username`, `password` and `switch` above serve both transports.
    ParamSpec::new(
        "secure",
        "Use the SSH console (fence_apc's -x, --ssh); fence_apc's telnet default is \
         telnet=1 here, never implied",
    )
    .aliases(&["ssh"])
    .short('x')
    .ty(ParamType::Boolean),
    fencekit_console::target::TELNET,
    ParamSpec::new(
        "cmd_prompt",
        "The console's prompt, when it is neither the menu's `>` nor `apc>` (fence_apc's \
         -c on a command line with -x; elsewhere -c is fence_apc_snmp's community)",
    )
    .aliases(&["command_prompt"]),
    fencekit_console::target::IDENTITY_FILE,
    fencekit_console::target::HOST_KEY,
    fencekit_console::target::KNOWN_HOSTS,
    fencekit_console::target::INSECURE_SKIP_HOST_KEY_CHECK,
    fencekit_console::target::SSH_LEGACY,
    ParamSpec::new(
        "ssh_username",
        "Console login with transport=snmp,ssh (default: username)",
    ),
    ParamSpec::new(
        "ssh_password",
        "Console password with transport=snmp,ssh (default: password)",
    )
    .secret(),
    ParamSpec::new(
        "ssh_port",
        "TCP port of the SSH console with transport=snmp,ssh (default 22)",
    )
    .ty(ParamType::Integer),
    fencekit_console::target::LOCK_DIR,
    // fence_apc's and fence_apc_snmp's other names.
    fencekit_console::target::INET4_ONLY,
    fencekit_console::target::INET6_ONLY,
    ParamSpec::new(
        "ssh_options",
        "fence_apc's options for the ssh command: refused when given, since fencekit speaks \
         SSH itself and runs no ssh (use ssh_port, identity_file, host_key, ssh_legacy)",
    ),
    ParamSpec::new(
        "ssh_path",
        "fence_apc's path to ssh: not used (fencekit speaks SSH itself)",
    ),
    ParamSpec::new(
        "telnet_path",
        "fence_apc's path to telnet: not used (with telnet=1 fencekit speaks telnet itself)",
    ),
    ParamSpec::new(
        "snmpget_path",
        "fence_apc_snmp's path to snmpget: not used (fencekit speaks SNMP itself)",
    ),
    ParamSpec::new(
        "snmpset_path",
        "fence_apc_snmp's path to snmpset: not used (fencekit speaks SNMP itself)",
    ),
    ParamSpec::new(
        "snmpwalk_path",
        "fence_apc_snmp's path to snmpwalk: not used (fencekit speaks SNMP itself)",
    ),
];

/// The `apc` plugin's schema (parameter names and aliases as fence_apc_snmp's).
pub const SCHEMA: Schema = Schema {
    plugin: "apc",
    kind: PluginKind::Power,
    summary: "APC switched PDUs over SNMP v1/v2c/v3 or the SSH console",
    description: "Switches outlets of APC switched PDUs (rack PDUs AP78xx/AP79xx and AP8xxx, \
                  MasterSwitch, MasterSwitch Plus chains) over SNMP v1, v2c or v3 (USM with \
                  MD5/SHA/SHA-2 authentication and DES/AES privacy), or over the SSH console \
                  (menus or the apc> command line), or SNMP with the console as fallback. The \
                  PDU family is read from sysObjectID once per operation; outlets are named by \
                  number, by their exact name, or as unit:outlet on a MasterSwitch Plus chain.",
    url: "https://www.apc.com/",
    multi_plug: true,
    plug_optional: false,
    // The PDU's reboot is never seen off (see `command`): reboots are off, on.
    commands: &[],
    params: PARAMS,
    open: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_missing_between_listed_outlets_is_found() {
        let rows = |numbers: &[&[u32]]| -> Vec<(Instance, String)> {
            numbers
                .iter()
                .map(|n| (n.to_vec(), String::new()))
                .collect()
        };
        assert_eq!(numbering_gap(&rows(&[&[1], &[2], &[3]])), None);
        assert_eq!(numbering_gap(&rows(&[&[1], &[3]])), Some("2".into()));
        assert_eq!(numbering_gap(&rows(&[&[2], &[3]])), None);
        assert_eq!(
            numbering_gap(&rows(&[&[1, 1], &[1, 2], &[2, 1], &[2, 3]])),
            Some("2:2".into())
        );
    }
    use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
    use fencekit_snmp::{SecLevel, Version};

    fn params(pairs: &[(&str, &str)]) -> Result<Params, String> {
        let raw: Vec<RawParam> = pairs
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
        validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .map(|v| v.params)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_schema_takes_fence_apc_snmp_names() {
        let p = params(&[
            ("ipaddr", "127.0.0.1"),
            ("login", "alice"),
            ("passwd", "authpass1"),
            ("snmp_version", "3"),
            ("snmp_auth_prot", "sha"),
        ])
        .unwrap();
        let switch = ApcSnmpSwitch::from_params(&p).unwrap();
        assert_eq!(switch.agent.version(), Version::V3);
        assert_eq!(switch.agent.endpoint(), "127.0.0.1:161");
        assert!(params(&[("ip", "x"), ("community_script", "echo private")]).is_ok());
    }

    #[test]
    fn v1_without_a_community_uses_the_factory_default_as_fence_apc_snmp() {
        let p = params(&[("ip", "127.0.0.1")]).unwrap();
        let switch = ApcSnmpSwitch::from_params(&p).unwrap();
        assert_eq!(switch.agent.version(), Version::V1);
    }

    #[test]
    fn a_forced_profile_is_taken_and_a_bad_one_is_not() {
        let p = params(&[("ip", "h"), ("community", "c"), ("profile", "RPDU2")]).unwrap();
        assert_eq!(
            ApcSnmpSwitch::from_params(&p).unwrap().profile,
            Some(Family::Rpdu2)
        );
        assert!(params(&[("ip", "h"), ("profile", "tripplite")]).is_err());
    }

    #[test]
    fn the_security_level_is_inferred_as_fence_apc_snmp_does() {
        let p = params(&[
            ("ip", "h"),
            ("snmp_version", "3"),
            ("username", "u"),
            ("password", "12345678"),
            ("snmp_priv_passwd", "87654321"),
        ])
        .unwrap();
        let switch = ApcSnmpSwitch::from_params(&p).unwrap();
        match &switch.agent.credentials() {
            Credentials::Usm(usm) => assert_eq!(usm.level, SecLevel::AuthPriv),
            _ => panic!("not v3"),
        }
    }

    #[test]
    fn debug_output_of_the_switch_hides_secrets() {
        let p = params(&[("ip", "h"), ("community", "topsecret-c")]).unwrap();
        let switch = ApcSnmpSwitch::from_params(&p).unwrap();
        assert!(!format!("{switch:?}").contains("topsecret"));
    }
}
