//! The APC SSH console: [`ApcConsoleSwitch`], a `PowerSwitch` over the console
//! of an APC switched PDU, menu UI or `apc>` command line (chosen from what the
//! device shows, see [`dialogue`]), one SSH session per operation.
//!
//! Sessions to one device are serialised across processes by the device lock of
//! [`fencekit_console::lock`]: `status`, `switch` and `command` (what a fence
//! does) wait for it until their deadline; `list` and `check` (what monitors do)
//! try once and answer "busy" at once, so a monitor never delays a fence by more
//! than the session already running. A console that says someone else is logged
//! in (many units allow one session) is retried until the deadline by fence
//! operations, and is "busy" at once for monitors.
//!
//! Parameters ([`CONSOLE_PARAMS`]) keep fence_apc's names.

pub mod dialogue;

use std::time::Duration;

use async_trait::async_trait;
use fencekit_console::parse::{Census, Outlet};
use fencekit_console::target::{self, ConsoleSession, ConsoleTarget, ParamNames};
use fencekit_console::{ConsoleDevice, ConsoleSwitch, Wait};
use fencekit_core::device_params;
use fencekit_core::schema::{ParamSpec, ParamType, Params, PluginKind, Schema};
use fencekit_core::{DeviceCommand, DeviceError, Instant, Plug, PlugInfo, PowerState, SwitchTo};

use dialogue::{OutletCommand, Ui};

/// Every parameter of the APC console, with fence_apc's names. Merged into the
/// `apc` schema for `transport = ssh`; `ip`, `ipport`, `username`, `password`
/// and `switch` are the ones the SNMP side declares too (see the crate docs for
/// how they combine).
pub const CONSOLE_PARAMS: &[ParamSpec] = &[
    device_params::ip("IP address or host name of the PDU"),
    device_params::ipport("TCP port of the PDU's console (default 22, or 23 with telnet=1) when the console is \
         the only transport"),
    device_params::username("Console login name"),
    device_params::password("Console password (or the identity_file's pass phrase)"),
    ParamSpec::new(
        "secure",
        "Use SSH (fence_apc's -x); fence_apc's telnet default is telnet=1 here, never implied",
    )
    .aliases(&["ssh"])
    .short('x')
    .ty(ParamType::Boolean),
    target::TELNET,
    ParamSpec::new(
        "cmd_prompt",
        "The console's prompt, when it is neither the menu's `>` nor learned (fence_apc's \
         defaults \\n> and \\napc> are recognised without it)",
    ),
    ParamSpec::new(
        "switch",
        "MasterSwitch Plus: the unit in the daisy chain (only unit 1 over the console)",
    )
    .short('s')
    .ty(ParamType::Integer),
    target::IDENTITY_FILE,
    target::HOST_KEY,
    target::KNOWN_HOSTS,
    target::INSECURE_SKIP_HOST_KEY_CHECK,
    target::SSH_LEGACY,
    ParamSpec::new(
        "ssh_username",
        "Console login when SNMP is configured too and its username differs",
    ),
    ParamSpec::new(
        "ssh_password",
        "Console password when SNMP is configured too (its password is then the SNMPv3 pass phrase)",
    )
    .secret(),
    ParamSpec::new(
        "ssh_port",
        "TCP port of the SSH console (default 22); with SNMP configured too, where ipport is \
         SNMP's, the only name of it",
    )
    .ty(ParamType::Integer),
    target::LOCK_DIR,
];

/// A schema of the console alone (plugin `apc`), for validating console-only
/// configurations and in tests; the lead's `apc` schema merges
/// [`CONSOLE_PARAMS`] into the SNMP one.
pub const CONSOLE_SCHEMA: Schema = Schema {
    plugin: "apc",
    kind: PluginKind::Power,
    summary: "APC switched PDUs over the SSH console",
    description: "Switches outlets of APC switched PDUs over their SSH console: the numbered \
                  menus of older firmware or the apc> command line of AOS v5 and later, told \
                  apart from what the console shows. The host key is verified; each outlet is \
                  read back after switching; one session per device at a time.",
    url: "https://www.apc.com/",
    multi_plug: true,
    plug_optional: false,
    commands: &[],
    params: CONSOLE_PARAMS,
    open: false,
};

/// An APC PDU driven over its SSH (or telnet) console, as a power switch.
pub type ApcConsoleSwitch = ConsoleSwitch<ApcConsole>;

/// An APC PDU's console dialogue.
#[derive(Debug, Clone)]
pub struct ApcConsole {
    target: ConsoleTarget,
    cmd_prompt: Option<String>,
    unit: u32,
    /// The outlet state read back in the session that switched it; the next status
    /// read of that plug takes it, so a confirmed off is one console session.
    observed: Observed,
    /// The outlet count of the first listing: every later one must agree.
    census: Census,
}

/// A plug's state read with a command, and when.
type Observed = std::sync::Arc<std::sync::Mutex<Option<(Plug, PowerState, Instant)>>>;

/// How long a state read with a command may stand in for the next status read.
const OBSERVED_FRESH: Duration = Duration::from_millis(500);

impl ApcConsole {
    pub fn new(target: ConsoleTarget, cmd_prompt: Option<String>) -> ApcConsole {
        ApcConsole {
            target,
            cmd_prompt,
            unit: 1,
            observed: Observed::default(),
            census: Census::default(),
        }
    }

    /// Every outlet with its state ([`dialogue::list`]), with as many outlets as
    /// every earlier listing of this device showed ([`Census`]).
    async fn listing(
        &self,
        console: &mut fencekit_console::Console<fencekit_console::target::ConsoleStream>,
        ui: &Ui,
        deadline: Instant,
    ) -> Result<Vec<Outlet>, DeviceError> {
        let outlets = dialogue::list(console, ui, deadline).await?;
        self.census
            .check(self.unit, &outlets, "outlet listing")
            .map_err(|e| DeviceError::Protocol(format!("{}: {e}", self.target.device())))?;
        Ok(outlets)
    }

    /// Opens a session and logs in. Fence operations retry a console that says
    /// it is busy until `deadline`; monitors do not.
    async fn login(
        &self,
        wait: Wait,
        deadline: Instant,
    ) -> Result<(ConsoleSession, Ui), DeviceError> {
        let (session, ui) = wait
            .while_busy(self.target.device(), deadline, || async {
                let mut session = self.target.open(wait, deadline).await?;
                let ui =
                    dialogue::login(&mut session.console, self.cmd_prompt.as_deref(), deadline)
                        .await?;
                Ok((session, ui))
            })
            .await?;
        tracing::debug!(
            device = self.target.device(),
            ui = %session.console.redact(&format!("{ui:?}")),
            "logged in"
        );
        Ok((session, ui))
    }

    async fn run_command(
        &self,
        plug: &Plug,
        what: OutletCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let (mut session, ui) = self.login(Wait::UntilDeadline, deadline).await?;
        let console = &mut session.console;
        let outlets = self.listing(console, &ui, deadline).await?;
        let number = outlet_number(self.unit, plug, &outlets)?;
        let after = dialogue::command(console, &ui, number, what, outlets.len(), deadline).await?;
        tracing::info!(
            device = self.target.device(),
            plug = %plug,
            outlet = number,
            command = ?what,
            read_back = %after,
            "outlet command accepted"
        );
        dialogue::logout(console, &ui, deadline).await;
        if what != OutletCommand::Reboot && after != PowerState::Unknown {
            if let Ok(mut observed) = self.observed.lock() {
                *observed = Some((plug.clone(), after, Instant::now()));
            }
        }
        Ok(())
    }

    /// The state read back with the last command on `plug`, if fresh; taken once.
    fn take_observed(&self, plug: &Plug) -> Option<PowerState> {
        let (seen, state, at) = self.observed.lock().ok()?.take()?;
        (seen == *plug && at.elapsed() < OBSERVED_FRESH).then_some(state)
    }
}

/// The outlet of `unit` a plug names, by the one rule of
/// [`fencekit_core::resolve_outlet`]: two outlets named alike (the two power
/// supplies of one node) are an error, never the first of them.
fn outlet_number(unit: u32, plug: &Plug, outlets: &[Outlet]) -> Result<u32, DeviceError> {
    let plug = match plug {
        // `unit:outlet` addresses an outlet: its number is that outlet only.
        Plug::OnUnit { unit: on, outlet } if *on == unit => {
            return fencekit_core::resolve_addressed(
                outlet,
                outlets.iter().map(|o| (o.number, o.name.as_str())),
            )
        }
        Plug::OnUnit { unit: on, .. } => {
            return Err(DeviceError::Unsupported(format!(
                "unit {on}: daisy-chained MasterSwitch Plus units are switched over SNMP only"
            )))
        }
        other => other,
    };
    match plug {
        Plug::Number(_) | Plug::Name(_) => {
            fencekit_core::resolve_outlet(plug, outlets.iter().map(|o| (o.number, o.name.as_str())))
        }
        Plug::Chassis | Plug::OnUnit { .. } => Err(dialogue::unknown(&plug.to_string(), outlets)),
    }
}

/// The dialogue steps; [`ConsoleSwitch`] runs them with every error masked by
/// [`ConsoleTarget::redact_error`](fencekit_console::target::ConsoleTarget::redact_error).
#[async_trait]
impl ConsoleDevice for ApcConsole {
    /// Builds the switch from parameters validated against a schema holding
    /// [`CONSOLE_PARAMS`]. When `transport` names SNMP as well, the console
    /// login is `ssh_username`/`ssh_password` (falling back to
    /// `username`/`password`) on `ssh_port`; otherwise `ipport` (default 22).
    fn from_params(params: &Params) -> Result<ApcConsole, DeviceError> {
        let telnet = params.boolean(target::TELNET.name).unwrap_or(false);
        match (params.boolean("secure"), telnet) {
            (Some(false), false) => {
                return Err(DeviceError::Failed(
                    "secure=0 asks for telnet, which sends the login in clear text: set telnet=1 \
                     to mean it, or secure=1 for SSH"
                        .into(),
                ))
            }
            (Some(true), true) => {
                return Err(DeviceError::Failed(
                    "secure=1 (SSH) and telnet=1 exclude each other: give one".into(),
                ))
            }
            _ => {}
        }
        let with_snmp = params
            .text("transport")
            .is_some_and(|t| t.to_ascii_lowercase().contains("snmp"));
        let port: &[&str] = if with_snmp {
            &["ssh_port"]
        } else {
            // The console alone: `ipport` and `ssh_port` both name its port (one
            // value), and over telnet `ipport` only.
            match (params.integer("ipport"), params.integer("ssh_port")) {
                (_, Some(_)) if telnet => {
                    return Err(DeviceError::Failed(
                        "ssh_port names the SSH console's port, and telnet=1 asks for telnet: \
                         give the telnet port as ipport"
                            .into(),
                    ))
                }
                (Some(a), Some(b)) if a != b => {
                    return Err(DeviceError::Failed(format!(
                        "ipport={a} and ssh_port={b} both name the console's port: give one"
                    )))
                }
                _ => &["ipport", "ssh_port"],
            }
        };
        let target = ConsoleTarget::from_params(
            params,
            ParamNames {
                user: &["ssh_username", "username"],
                password: &["ssh_password", "password"],
                port,
                default_port: 22,
            },
        )?;
        let unit = params.integer("switch").unwrap_or(1);
        if unit != 1 {
            return Err(DeviceError::Unsupported(format!(
                "switch={unit}: daisy-chained MasterSwitch Plus units are switched over SNMP only"
            )));
        }
        Ok(ApcConsole::new(
            target,
            params.text("cmd_prompt").map(str::to_string),
        ))
    }

    fn target(&self) -> &ConsoleTarget {
        &self.target
    }

    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        if let Some(state) = self.take_observed(plug) {
            return Ok(state);
        }
        let (mut session, ui) = self.login(Wait::UntilDeadline, deadline).await?;
        let outlets = self.listing(&mut session.console, &ui, deadline).await?;
        let number = outlet_number(self.unit, plug, &outlets)?;
        dialogue::logout(&mut session.console, &ui, deadline).await;
        Ok(outlets
            .iter()
            .find(|o| o.number == number)
            .map_or(PowerState::Unknown, |o| o.state))
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let what = match to {
            SwitchTo::On => OutletCommand::On,
            SwitchTo::Off => OutletCommand::Off,
        };
        self.run_command(plug, what, deadline).await
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        match command {
            DeviceCommand::Cycle => {
                self.run_command(plug, OutletCommand::Reboot, deadline)
                    .await
            }
            other => Err(DeviceError::Unsupported(format!(
                "an APC outlet has no {} command",
                other.as_str()
            ))),
        }
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let (mut session, ui) = self.login(Wait::UntilDeadline, deadline).await?;
        let outlets = self.listing(&mut session.console, &ui, deadline).await?;
        dialogue::logout(&mut session.console, &ui, deadline).await;
        Ok(outlets.iter().map(Outlet::plug_info).collect())
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        let (mut session, ui) = self.login(Wait::UntilDeadline, deadline).await?;
        dialogue::logout(&mut session.console, &ui, deadline).await;
        Ok(())
    }

    fn address(&self, listed: &Plug) -> Plug {
        fencekit_core::power::on_unit(self.unit, listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_console::sim::OutletFile;
    use fencekit_core::PowerSwitch;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// The outlets as the console simulator lists them, over the paired console.
    async fn listed(mode: &str, names: &[(u32, &str)]) -> Vec<Outlet> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let state = OutletFile::create(&path, 1, 8).unwrap();
        for (number, name) in names {
            state.set(1, *number, true, Some(name)).unwrap();
        }
        let mut console =
            fencekit_console::sim::paired_console("pdu-test", mode, &path, crate::console_sim::run)
                .unwrap();
        let ui = dialogue::login(&mut console, None, soon()).await.unwrap();
        let outlets = dialogue::list(&mut console, &ui, soon()).await.unwrap();
        dialogue::logout(&mut console, &ui, soon()).await;
        outlets
    }

    #[tokio::test]
    async fn two_outlets_with_one_name_are_ambiguous_on_both_uis_never_the_first() {
        for mode in ["menu", "cli"] {
            let outlets = listed(mode, &[(2, "db1"), (5, "db1")]).await;
            let err = outlet_number(1, &Plug::Name("db1".into()), &outlets).unwrap_err();
            assert!(
                matches!(err, DeviceError::AmbiguousPlug { .. }),
                "{mode}: {err}"
            );
            assert!(err.to_string().contains("2, 5"), "{mode}: {err}");
            // On the unit too.
            let on_unit = Plug::parse("1:db1");
            assert!(matches!(
                outlet_number(1, &on_unit, &outlets),
                Err(DeviceError::AmbiguousPlug { .. })
            ));
        }
    }

    #[tokio::test]
    async fn a_plug_07_names_the_outlet_called_07_and_numbers_stay_numbers() {
        for mode in ["menu", "cli"] {
            let outlets = listed(mode, &[(3, "db-3")]).await;
            assert_eq!(outlet_number(1, &Plug::parse("07"), &outlets).unwrap(), 7);
            assert_eq!(outlet_number(1, &Plug::parse("3"), &outlets).unwrap(), 3);
            assert_eq!(outlet_number(1, &Plug::parse("db-3"), &outlets).unwrap(), 3);
            assert!(matches!(
                outlet_number(1, &Plug::parse("db-4"), &outlets),
                Err(DeviceError::UnknownPlug { .. })
            ));
            assert!(matches!(
                outlet_number(1, &Plug::parse("2:3"), &outlets),
                Err(DeviceError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn the_console_offers_no_cycle_to_the_fence_algorithm() {
        let switch = ApcConsoleSwitch::from_params(
            &fencekit_core::schema::validate(
                &[&CONSOLE_SCHEMA],
                &[
                    fencekit_core::schema::RawParam::text(
                        "ip",
                        "127.0.0.1",
                        fencekit_core::schema::Origin::new("test"),
                    ),
                    fencekit_core::schema::RawParam::text(
                        "host_key",
                        "SHA256:abc",
                        fencekit_core::schema::Origin::new("test"),
                    ),
                    fencekit_core::schema::RawParam::text(
                        "username",
                        "apc",
                        fencekit_core::schema::Origin::new("test"),
                    ),
                    fencekit_core::schema::RawParam::text(
                        "password",
                        "pw",
                        fencekit_core::schema::Origin::new("test"),
                    ),
                ],
                fencekit_core::schema::Unknown::Reject,
                None,
            )
            .unwrap()
            .params,
        )
        .unwrap();
        assert!(!switch.supports(DeviceCommand::Cycle));
    }
}
