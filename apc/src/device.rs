//! The `apc` plugin's device: SNMP, the SSH console, or SNMP with the console as a
//! fallback (`transport = snmp,ssh`), as the seed's hybrid script did, but safely:
//! the console is used only when SNMP gives no answer at all (a refused password or
//! a read-only community is a configuration error to report, not to route around),
//! an outlet is read over the console before it is switched there (an SNMP set that
//! got no answer may still have landed), and the PDU's own reboot is never sent
//! again over the console after SNMP went silent.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, Params, Plug, PlugInfo, PowerState, PowerSwitch, SwitchTo,
};

use crate::console::ApcConsoleSwitch;
use crate::switch::ApcSnmpSwitch;

/// How an APC PDU is reached.
#[derive(Debug)]
pub enum ApcSwitch {
    Snmp(Box<ApcSnmpSwitch>),
    Console(Box<ApcConsoleSwitch>),
    /// SNMP first; the console when SNMP does not answer. Once SNMP has been silent,
    /// the rest of the operation goes to the console directly.
    Fallback {
        snmp: Box<ApcSnmpSwitch>,
        console: Box<ApcConsoleSwitch>,
        snmp_silent: AtomicBool,
    },
}

impl ApcSwitch {
    /// Builds the device from parameters validated against [`crate::SCHEMA`].
    pub fn from_params(params: &Params) -> Result<ApcSwitch, DeviceError> {
        if params
            .text("ssh_options")
            .is_some_and(|o| !o.trim().is_empty())
        {
            return Err(DeviceError::Failed(
                "`ssh_options` is not supported: fencekit speaks SSH itself and runs no ssh \
                 command; use ssh_port, identity_file, host_key or ssh_legacy"
                    .into(),
            ));
        }
        let transport = match params.text("transport") {
            Some(transport) => transport,
            // fence_apc's `--ssh` (secure=1): its inputs work unchanged.
            None if params.boolean("secure") == Some(true) => "ssh",
            // The console over telnet, asked for by name.
            None if params.boolean("telnet") == Some(true) => "ssh",
            // A login with no SNMP setting is fence_apc's configuration without
            // `--ssh`, which fence_apc drives over telnet: not SNMP v1 with the
            // factory community, which would ignore the login it names.
            None if looks_like_fence_apc_telnet(params) => {
                return Err(DeviceError::Failed(
                    "a login (username/password) with neither ssh=1 nor an SNMP setting is \
                     fence_apc's telnet configuration, which sends the login in clear text: \
                     set telnet=1 to mean it, ssh=1 (secure=1) for the SSH console, or \
                     transport=snmp with community (or snmp_version=3) for SNMP"
                        .into(),
                ));
            }
            None if community_looks_like_a_prompt(params) => {
                return Err(DeviceError::Failed(
                    "a login (username/password) with an SNMP v1/v2c community that ends like \
                     a command prompt (>, #, $) is fence_apc's console configuration, whose -c \
                     is the command prompt: here -c is the SNMP community (fence_apc_snmp's); \
                     give the prompt as command_prompt (--command-prompt) with ssh=1 or \
                     telnet=1, or set transport=snmp to mean SNMP"
                        .into(),
                ));
            }
            None => "snmp",
        };
        match transport {
            "snmp" => Ok(ApcSwitch::Snmp(Box::new(ApcSnmpSwitch::from_params(
                params,
            )?))),
            "ssh" => Ok(ApcSwitch::Console(Box::new(ApcConsoleSwitch::from_params(
                params,
            )?))),
            "snmp,ssh" => Ok(ApcSwitch::Fallback {
                snmp: Box::new(ApcSnmpSwitch::from_params(params)?),
                console: Box::new(ApcConsoleSwitch::from_params(params)?),
                snmp_silent: AtomicBool::new(false),
            }),
            other => Err(DeviceError::Failed(format!(
                "parameter `transport`: {other} is not snmp, ssh or snmp,ssh"
            ))),
        }
    }
}

/// Whether `params` are fence_apc's telnet configuration: a login, and nothing that
/// speaks of SNMP or the SSH console.
fn looks_like_fence_apc_telnet(params: &Params) -> bool {
    let login = params.text("username").is_some() || params.secret("password").is_some();
    let snmp = [
        "community",
        "snmp_sec_level",
        "snmp_auth_prot",
        "snmp_priv_prot",
    ]
    .iter()
    .any(|n| params.get(n).is_some())
        || params.secret("snmp_priv_passwd").is_some()
        || params.text("snmp_version").is_some_and(|v| v != "1");
    login && !snmp && params.boolean("secure") != Some(true)
}

/// Whether `params` hold a login and, as the SNMP v1/v2c community, what reads as
/// a console's command prompt (fence_apc's `-c >`): the login would go unused and
/// the prompt be sent as a community.
fn community_looks_like_a_prompt(params: &Params) -> bool {
    let login = params.text("username").is_some() || params.secret("password").is_some();
    let v3 = params.text("snmp_version").is_some_and(|v| v.trim() == "3");
    let prompt = params
        .secret("community")
        .is_some_and(|c| c.expose().trim_end().ends_with(['>', '#', '$']));
    login && !v3 && prompt && params.boolean("secure") != Some(true)
}

/// The console of the PDU whose SNMP agent was tried: held to the address SNMP
/// used (a name with several addresses could lead the console to another PDU, whose
/// outlet read would then stand for this one's). When SNMP got no address at all
/// (its name lookup did not finish), the console is not tried: a lookup of its own
/// could give another address than SNMP's would have (round robin, a changed
/// record), and nothing would say which PDU answered.
fn same_pdu(snmp: &ApcSnmpSwitch, console: &ApcConsoleSwitch) -> Result<(), DeviceError> {
    match snmp.agent().address() {
        Some(addr) => {
            fencekit_console::ConsoleDevice::target(console.device()).keep_host(addr.ip())
        }
        None => Err(DeviceError::NoAnswer {
            endpoint: snmp.agent().endpoint(),
            detail: "SNMP's name lookup did not finish, so the SSH console is not tried \
                     either: a lookup of its own could lead it to another address, another \
                     PDU"
            .into(),
        }),
    }
}

/// SNMP gave no answer: the one failure the console may stand in for.
fn silent(error: &DeviceError) -> bool {
    matches!(error, DeviceError::NoAnswer { .. })
}

/// The part of the time left that SNMP may use before the console takes over.
fn snmp_share(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now) / 2
}

#[async_trait]
impl PowerSwitch for ApcSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.status(plug, deadline).await,
            ApcSwitch::Console(console) => console.status(plug, deadline).await,
            ApcSwitch::Fallback {
                snmp,
                console,
                snmp_silent,
            } => {
                if !snmp_silent.load(Ordering::Relaxed) {
                    match snmp.status(plug, snmp_share(deadline)).await {
                        Err(e) if silent(&e) => {
                            tracing::warn!(error = %e, "SNMP gave no answer: reading the outlet over the SSH console");
                            snmp_silent.store(true, Ordering::Relaxed);
                        }
                        other => return other,
                    }
                }
                same_pdu(snmp, console)?;
                console.status(plug, deadline).await
            }
        }
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.switch(plug, to, deadline).await,
            ApcSwitch::Console(console) => console.switch(plug, to, deadline).await,
            ApcSwitch::Fallback {
                snmp,
                console,
                snmp_silent,
            } => {
                if !snmp_silent.load(Ordering::Relaxed) {
                    match snmp.switch(plug, to, snmp_share(deadline)).await {
                        Err(e) if silent(&e) => {
                            tracing::warn!(error = %e, "SNMP gave no answer: switching over the SSH console");
                            snmp_silent.store(true, Ordering::Relaxed);
                        }
                        other => return other,
                    }
                }
                same_pdu(snmp, console)?;
                // The SNMP set may have landed: never switch an outlet that is
                // already where it should be.
                if console.status(plug, deadline).await? == to.state() {
                    return Ok(());
                }
                console.switch(plug, to, deadline).await
            }
        }
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.command(plug, command, deadline).await,
            ApcSwitch::Console(console) => console.command(plug, command, deadline).await,
            ApcSwitch::Fallback {
                snmp,
                console,
                snmp_silent,
            } => {
                if snmp_silent.load(Ordering::Relaxed) {
                    same_pdu(snmp, console)?;
                    return console.command(plug, command, deadline).await;
                }
                // A reboot is not idempotent: after a silent SNMP agent nobody knows
                // whether it ran, so it is not sent again over the console.
                snmp.command(plug, command, deadline).await
            }
        }
    }

    /// None: the PDU's own reboot is never seen off (the outlet reads "command
    /// pending" throughout), so the fence algorithm drives it off, reads it off,
    /// and switches it on, on every transport.
    fn supports(&self, _command: DeviceCommand) -> bool {
        false
    }

    fn least_off(&self) -> std::time::Duration {
        fencekit_core::switch::OUTLET_LEAST_OFF
    }

    /// The SNMP side's word: a console listing has no count to miss (a line it
    /// loses shows as a gap in its numbering, or fails to read).
    fn names_complete(&self) -> bool {
        match self {
            ApcSwitch::Snmp(snmp) | ApcSwitch::Fallback { snmp, .. } => snmp.names_complete(),
            ApcSwitch::Console(_) => true,
        }
    }

    fn address(&self, listed: &Plug) -> Plug {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.address(listed),
            ApcSwitch::Console(console) => console.address(listed),
            ApcSwitch::Fallback { snmp, .. } => snmp.address(listed),
        }
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.list(deadline).await,
            ApcSwitch::Console(console) => console.list(deadline).await,
            ApcSwitch::Fallback {
                snmp,
                console,
                snmp_silent,
            } => {
                if !snmp_silent.load(Ordering::Relaxed) {
                    match snmp.list(snmp_share(deadline)).await {
                        Err(e) if silent(&e) => snmp_silent.store(true, Ordering::Relaxed),
                        other => return other,
                    }
                }
                same_pdu(snmp, console)?;
                console.list(deadline).await
            }
        }
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        match self {
            ApcSwitch::Snmp(snmp) => snmp.check(deadline).await,
            ApcSwitch::Console(console) => console.check(deadline).await,
            // A monitor checks both ways in: a silent SNMP agent is worth a warning
            // even when the console would still fence.
            ApcSwitch::Fallback { snmp, console, .. } => {
                match snmp.check(snmp_share(deadline)).await {
                    Ok(()) => Ok(()),
                    Err(e) if silent(&e) => {
                        tracing::warn!(error = %e, "SNMP gave no answer; checking the SSH console");
                        same_pdu(snmp, console)?;
                        console.check(deadline).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_core::schema::{validate, Origin, RawParam, Unknown};

    #[test]
    fn debug_output_of_every_transport_holds_no_secret() {
        let secrets = [
            ("password", "uniq-auth-Zq81x"),
            ("snmp_priv_passwd", "uniq-priv-Zq81x"),
            ("ssh_password", "uniq-ssh-Zq81x"),
        ];
        for transport in ["snmp", "ssh", "snmp,ssh"] {
            let mut pairs = vec![
                ("ip", "127.0.0.1"),
                ("transport", transport),
                ("snmp_version", "3"),
                ("username", "alice"),
                ("host_key", "SHA256:abc"),
            ];
            pairs.extend(secrets);
            let raw: Vec<RawParam> = pairs
                .iter()
                .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
                .collect();
            let params = validate(&[&crate::SCHEMA], &raw, Unknown::Reject, None)
                .unwrap()
                .params;
            let device = ApcSwitch::from_params(&params).unwrap();
            let shown = format!("{device:?} {device:#?}");
            assert!(!shown.contains("Zq81x"), "{transport}: {shown}");
        }
        for version in ["1", "2c"] {
            let raw: Vec<RawParam> = [
                ("ip", "127.0.0.1"),
                ("snmp_version", version),
                ("community", "uniq-community-Zq81x"),
            ]
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
            let params = validate(&[&crate::SCHEMA], &raw, Unknown::Reject, None)
                .unwrap()
                .params;
            let device = ApcSwitch::from_params(&params).unwrap();
            assert!(!format!("{device:?} {device:#?}").contains("Zq81x"));
        }
    }

    #[test]
    fn fence_apcs_command_prompt_given_as_its_c_is_refused_not_sent_as_a_community() {
        let build = |pairs: &[(&str, &str)]| {
            let raw: Vec<RawParam> = pairs
                .iter()
                .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
                .collect();
            let params = validate(&[&crate::SCHEMA], &raw, Unknown::Reject, None)
                .unwrap()
                .params;
            ApcSwitch::from_params(&params)
        };
        let login = [
            ("ip", "127.0.0.1"),
            ("username", "apc"),
            ("password", "apc-pw"),
        ];
        for prompt in [">", "apc>", "APC# "] {
            let mut pairs = login.to_vec();
            pairs.push(("community", prompt));
            let err = build(&pairs).unwrap_err().to_string();
            assert!(err.contains("command prompt"), "{prompt}: {err}");
        }
        // A community of another shape, or SNMP asked for by name, is SNMP.
        let mut pairs = login.to_vec();
        pairs.push(("community", "private"));
        assert!(matches!(build(&pairs), Ok(ApcSwitch::Snmp(_))));
        pairs.pop();
        pairs.extend([("community", ">"), ("transport", "snmp")]);
        assert!(matches!(build(&pairs), Ok(ApcSwitch::Snmp(_))));
    }

    #[test]
    fn no_transport_offers_the_pdu_reboot_as_a_cycle() {
        for transport in ["snmp", "ssh", "snmp,ssh"] {
            let raw: Vec<RawParam> = [
                ("ip", "127.0.0.1"),
                ("transport", transport),
                ("username", "apc"),
                ("password", "apc-password"),
                ("host_key", "SHA256:abc"),
            ]
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
            let params = validate(&[&crate::SCHEMA], &raw, Unknown::Reject, None)
                .unwrap()
                .params;
            let device = ApcSwitch::from_params(&params).unwrap();
            assert!(!device.supports(DeviceCommand::Cycle), "{transport}");
        }
        assert!(crate::SCHEMA.commands.is_empty());
    }
}
