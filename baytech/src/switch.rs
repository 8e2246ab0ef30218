//! [`BaytechSwitch`]: a Baytech RPC strip, alone or behind a DS/MMP management
//! module, as a `PowerSwitch` over the SSH console; and the plugin's [`SCHEMA`].
//!
//! Dialogue (compare seed-scripts.md §6, which waited a fixed 5 s and a
//! hard-coded `RPC-28A>`): log in; if the module's "Enter Request" menu shows,
//! send the strip number and wait for the strip's prompt (one extra Enter if it
//! does not come within a few seconds, the quirk the seed slept for); learn the
//! strip prompt from what it shows; `Status` and parse the outlet table; `On N`
//! / `Off N` / `Reboot N`, answer `Y` to `(Y/N)`, wait for the prompt; log out.
//! Sessions are serialised per device as for APC (see `fencekit_console::lock`).

use std::time::Duration;

use async_trait::async_trait;
use fencekit_console::parse::{baytech, Census, Outlet, ParseError};
use fencekit_console::target::{
    self, says_busy, ConsoleSession, ConsoleStream, ConsoleTarget, ParamNames,
};
use fencekit_console::{Console, ConsoleDevice, ConsoleError, ConsoleSwitch, Key, Pattern, Wait};
use fencekit_core::device_params;
use fencekit_core::schema::{ParamSpec, ParamType, Params, PluginKind, Schema};
use fencekit_core::{DeviceCommand, DeviceError, Instant, Plug, PlugInfo, PowerState, SwitchTo};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long the strip prompt may take after selecting a strip before one more
/// Enter is sent (the seed's scripts slept 5 s, then sent it blindly).
const STRIP_NUDGE: Duration = Duration::from_secs(3);
const LOGOUT_WAIT: Duration = Duration::from_secs(2);
/// The prompts of Baytech menus that do not end with `>`: the DS/MMP module's
/// "Enter Request :".
const MENU_PROMPTS: &[&str] = &["Enter Request :", "Enter Request:"];
/// How long a `Status` whose first prompt held no table waits for a later one.
const LATER_PROMPT_WAIT: Duration = Duration::from_secs(1);

const PARAMS: &[ParamSpec] = &[
    device_params::ip("IP address or host name of the strip or its management module"),
    device_params::ipport("TCP port of the console (default 22, or 23 with telnet=1)"),
    device_params::username("Console login name"),
    device_params::password("Console password (or the identity_file's pass phrase)"),
    ParamSpec::new(
        "strip",
        "Behind a DS/MMP management module: the strip number chosen at \"Enter Request\" \
         (default 1; a plug written unit:outlet names its strip itself); `switch` as \
         fence_apc names its unit",
    )
    .aliases(&["switch"])
    .ty(ParamType::Integer),
    target::IDENTITY_FILE,
    target::HOST_KEY,
    target::KNOWN_HOSTS,
    target::INSECURE_SKIP_HOST_KEY_CHECK,
    target::TELNET,
    target::SSH_LEGACY,
    target::LOCK_DIR,
];

/// The `baytech` plugin's schema.
pub const SCHEMA: Schema = Schema {
    plugin: "baytech",
    kind: PluginKind::Power,
    summary: "Baytech RPC power strips over the SSH console",
    description: "Switches outlets of Baytech RPC power strips (RPC-28A and kin) over their SSH \
                  console, directly or behind a DS/MMP management module (strip chosen by \
                  number). The strip's prompt is learned, each command is confirmed with Y, and \
                  the outlet table is read back; the host key is verified; one session per \
                  device at a time.",
    url: "https://www.baytech.net/",
    multi_plug: true,
    plug_optional: false,
    // `Reboot` is never seen off (see `supports`): reboots are off, on.
    commands: &[],
    params: PARAMS,
    open: false,
};

/// A Baytech strip (or the strips of a management module) over SSH or telnet, as
/// a power switch.
pub type BaytechSwitch = ConsoleSwitch<BaytechStrip>;

/// A Baytech strip's console dialogue.
#[derive(Debug, Clone)]
pub struct BaytechStrip {
    target: ConsoleTarget,
    strip: u32,
    /// The outlet state the strip printed after a command, in the session that
    /// switched it: the next status read of that plug takes it (once, while fresh),
    /// so a confirmed off is one console session.
    observed: Observed,
    /// Whether `strip` was given: behind a management module a name is looked up
    /// on that strip only, so a name without it would miss a second outlet of
    /// that name on another strip.
    strip_given: bool,
    /// A management module answered a session (its strips are not all searched).
    module_seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Each strip's outlet count in its first table: every later table must agree.
    census: Census,
}

/// A plug's state read with a command, and when.
type Observed = std::sync::Arc<std::sync::Mutex<Option<(Plug, PowerState, Instant)>>>;

/// How long a state read with a command may stand in for the next status read.
const OBSERVED_FRESH: Duration = Duration::from_millis(500);

/// A logged-in session at a strip prompt.
struct StripSession {
    session: ConsoleSession,
    prompt: Pattern,
    module: bool,
}

impl BaytechStrip {
    /// `strip`: the strip a plug without one names, `None` for strip 1 (names
    /// behind a management module then need `strip:name`).
    pub fn new(target: ConsoleTarget, strip: Option<u32>) -> BaytechStrip {
        BaytechStrip {
            target,
            strip: strip.unwrap_or(1),
            observed: Observed::default(),
            strip_given: strip.is_some(),
            module_seen: Default::default(),
            census: Census::default(),
        }
    }

    /// The outlet `plug` names in a session's table ([`find`]). Behind a management
    /// module, a bare name is refused unless `strip` was given: only that strip is
    /// searched, and a second outlet of the name on another strip (the node's
    /// other supply) would stay on.
    fn find<'a>(
        &self,
        s: &StripSession,
        plug: &Plug,
        outlets: &'a [Outlet],
    ) -> Result<&'a Outlet, DeviceError> {
        if s.module && !self.strip_given && matches!(plug, Plug::Name(_)) {
            return Err(DeviceError::Failed(format!(
                "{}: plug `{plug}` is a name, and behind a management module only one \
                 strip's outlets are searched: give `strip=N`, or the plug as \
                 `STRIP:{plug}`",
                self.target.device()
            )));
        }
        find(plug, outlets)
    }

    /// The state read back with the last command on `plug`, if fresh; taken once.
    fn take_observed(&self, plug: &Plug) -> Option<PowerState> {
        let (seen, state, at) = self.observed.lock().ok()?.take()?;
        (seen == *plug && at.elapsed() < OBSERVED_FRESH).then_some(state)
    }

    /// The strip and outlet a plug names.
    fn place<'p>(&self, plug: &'p Plug) -> Result<(u32, &'p Plug), DeviceError> {
        match plug {
            Plug::OnUnit { unit, outlet } => Ok((*unit, outlet.as_ref())),
            Plug::Chassis => Err(DeviceError::UnknownPlug {
                plug: plug.to_string(),
                known: "outlet numbers or names".into(),
            }),
            other => Ok((self.strip, other)),
        }
    }

    async fn login(
        &self,
        strip: u32,
        wait: Wait,
        deadline: Instant,
    ) -> Result<StripSession, DeviceError> {
        wait.while_busy(self.target.device(), deadline, || async {
            // A unit that says it is in use before its login prompt (telnet)
            // and hangs up is busy too.
            let mut session = self
                .target
                .open(wait, deadline)
                .await
                .map_err(|e| match e {
                    DeviceError::Busy(_) => e,
                    e if says_busy(&e.to_string()) => DeviceError::Busy(e.to_string()),
                    e => e,
                })?;
            let (prompt, module) = reach_strip(&mut session.console, strip, deadline).await?;
            if module {
                self.module_seen
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(StripSession {
                session,
                prompt,
                module,
            })
        })
        .await
    }

    /// The strip's status table, with as many outlets as every earlier table of
    /// that strip showed ([`Census`]).
    async fn outlets(
        &self,
        strip: u32,
        s: &mut StripSession,
        deadline: Instant,
    ) -> Result<Vec<Outlet>, DeviceError> {
        let outlets = status_table(&mut s.session.console, &s.prompt, deadline).await?;
        self.census
            .check(strip, &outlets, "Baytech status table")
            .map_err(|e| DeviceError::Protocol(format!("{}: Status: {e}", self.target.device())))?;
        Ok(outlets)
    }

    async fn run(&self, plug: &Plug, word: &str, deadline: Instant) -> Result<(), DeviceError> {
        let (strip, _) = self.place(plug)?;
        let mut s = self.login(strip, Wait::UntilDeadline, deadline).await?;
        let outlets = self.outlets(strip, &mut s, deadline).await?;
        let found = self.find(&s, plug, &outlets)?;
        if found.locked {
            return Err(DeviceError::Refused(format!(
                "{}: outlet {} ({}) is locked on the strip",
                self.target.device(),
                found.number,
                found.name
            )));
        }
        let number = found.number;
        let console = &mut s.session.console;
        console.discard_pending();
        console
            .send_line(&format!("{word} {number}"), deadline)
            .await?;
        let m = console
            .answer_confirmations(&[Pattern::text("Y/N")], "Y", &[s.prompt.clone()], deadline)
            .await?;
        // An error word, not an outlet name that holds one (`mirror-terror1`).
        let error = m
            .before
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word.to_ascii_lowercase().starts_with("error"));
        if error {
            return Err(DeviceError::Refused(format!(
                "{}: {word} {number}: {}",
                self.target.device(),
                console.redact(m.before.trim())
            )));
        }
        // Most strips print the table after a command; read the state from it, if
        // it lists as many outlets as the table before the command (one that lost
        // or ran together lines may show another outlet's state).
        let read_back = baytech::parse_status(&m.before)
            .ok()
            .filter(|all| all.len() == outlets.len())
            .and_then(|all| all.into_iter().find(|o| o.number == number))
            .map_or(PowerState::Unknown, |o| o.state);
        tracing::info!(
            device = self.target.device(),
            strip,
            outlet = number,
            command = word,
            %read_back,
            "outlet command accepted"
        );
        logout(&mut s, deadline).await;
        // A reboot's table shows the outlet mid-cycle: never taken for a read.
        if word != "Reboot" && read_back != PowerState::Unknown {
            if let Ok(mut observed) = self.observed.lock() {
                *observed = Some((plug.clone(), read_back, Instant::now()));
            }
        }
        Ok(())
    }
}

/// From login to a strip prompt: the module's menu (if any), the strip's number,
/// the strip's learned prompt. Returns the prompt and whether a module was there.
async fn reach_strip<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    strip: u32,
    deadline: Instant,
) -> Result<(Pattern, bool), DeviceError> {
    let device = console.options().device.clone();
    // The module's menu ends with a question, not `>`: known, it needs no quiet wait.
    console.also_prompts(MENU_PROMPTS);
    let first = learn(console, deadline).await?;
    let module = first.matched.contains("Enter Request");
    let prompt = if first.matched.contains("Enter Selection") {
        // An RPC strip's own main menu: its Outlet Control entry reaches the prompt.
        outlet_control(console, &first, deadline).await?
    } else if module {
        console.send_line(&strip.to_string(), deadline).await?;
        let nudge = (Instant::now() + STRIP_NUDGE).min(deadline);
        match learn(console, nudge).await {
            Ok(m) => m.matched,
            Err(DeviceError::TimedOut(_)) if Instant::now() < deadline => {
                console.send_key(Key::Enter, deadline).await?;
                learn(console, deadline).await?.matched
            }
            Err(e) => return Err(e),
        }
    } else {
        first.matched
    };
    let prompt = if module && prompt.contains("Enter Selection") {
        let shown = fencekit_console::Match {
            index: 0,
            before: String::new(),
            matched: prompt,
        };
        outlet_control(console, &shown, deadline).await?
    } else {
        prompt
    };
    if prompt.contains("Enter Request") || prompt.contains("Enter Selection") {
        return Err(DeviceError::UnknownPlug {
            plug: format!("strip {strip}"),
            known: "the strips the management module lists".into(),
        });
    }
    if !prompt.ends_with('>') {
        return Err(DeviceError::Protocol(format!(
            "{device}: no strip prompt; the console shows {:?}",
            console.redact(&prompt)
        )));
    }
    tracing::debug!(device, prompt = %console.redact(&prompt), module, "at the strip prompt");
    Ok((Pattern::prompt(prompt), module))
}

/// From an RPC strip's main menu (`... 1)...Outlet Control ... Enter Selection>`)
/// to its strip prompt: the entry named Outlet Control (1 when the menu does not
/// say), as cluster-glue's `baytech` plugin chooses it.
async fn outlet_control<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    menu: &fencekit_console::Match,
    deadline: Instant,
) -> Result<String, DeviceError> {
    let shown = format!("{}{}", menu.before, menu.matched);
    let entry = shown
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("outlet control"))
        .and_then(|l| {
            let digits: String = l
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_else(|| "1".to_string());
    console.send_line(&entry, deadline).await?;
    Ok(learn(console, deadline).await?.matched)
}

async fn learn<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    deadline: Instant,
) -> Result<fencekit_console::Match, DeviceError> {
    match console.learn_prompt(deadline).await {
        Ok(m) if says_busy(&m.matched) || (says_busy(&m.before) && !m.matched.ends_with('>')) => {
            Err(DeviceError::Busy(format!(
                "{}: the console refused the session: {}",
                console.options().device,
                console.redact(m.matched.trim())
            )))
        }
        Ok(m) => Ok(m),
        Err(e) if says_busy(&e.to_string()) => Err(DeviceError::Busy(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

async fn status_table<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    prompt: &Pattern,
    deadline: Instant,
) -> Result<Vec<Outlet>, DeviceError> {
    console.discard_pending();
    console.send_line("Status", deadline).await?;
    // A prompt the strip printed before it read the command (a second line end
    // answered, a redraw arriving late) holds no table: the table comes before a
    // later prompt. A few prompts at most; a later one only briefly waited for.
    let mut text = String::new();
    for attempt in 0..3 {
        let until = if attempt == 0 {
            deadline
        } else {
            (Instant::now() + LATER_PROMPT_WAIT).min(deadline)
        };
        let m = match console.expect(std::slice::from_ref(prompt), until).await {
            Ok(m) => m,
            Err(ConsoleError::TimedOut { .. }) if attempt > 0 && Instant::now() < deadline => break,
            Err(e) => return Err(e.into()),
        };
        text.push_str(&m.before);
        match baytech::parse_status(&text) {
            Err(ParseError::NoOutlets { .. }) => continue,
            result => {
                return result.map_err(|e| {
                    DeviceError::Protocol(format!("{}: Status: {e}", console.options().device))
                })
            }
        }
    }
    baytech::parse_status(&text)
        .map_err(|e| DeviceError::Protocol(format!("{}: Status: {e}", console.options().device)))
}

/// The outlet a plug names on its strip (`strip:outlet` or an outlet of the
/// configured strip), by the one rule of [`fencekit_core::resolve_outlet`]: two
/// outlets with the plug's name (the two power supplies of one node) are an error,
/// never the first of them; a number after its strip is that outlet only.
fn find<'a>(plug: &Plug, outlets: &'a [Outlet]) -> Result<&'a Outlet, DeviceError> {
    let listed = || outlets.iter().map(|o| (o.number, o.name.as_str()));
    let number = match plug {
        Plug::Number(_) | Plug::Name(_) => fencekit_core::resolve_outlet(plug, listed())?,
        Plug::OnUnit { outlet, .. } => fencekit_core::resolve_addressed(outlet, listed())?,
        Plug::Chassis => {
            return Err(DeviceError::UnknownPlug {
                plug: plug.to_string(),
                known: listed()
                    .map(|(n, name)| format!("{n} ({name})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    outlets
        .iter()
        .find(|o| o.number == number)
        .ok_or_else(|| DeviceError::Protocol(format!("outlet {number} vanished from the table")))
}

/// Logs out (Baytech units often do not close cleanly: failures are logged only).
async fn logout(s: &mut StripSession, deadline: Instant) {
    let until = (Instant::now() + LOGOUT_WAIT).min(deadline);
    let console: &mut Console<ConsoleStream> = &mut s.session.console;
    let result: Result<(), DeviceError> = async {
        console.send_line("Logout", until).await?;
        console.expect_eof(until).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(module = s.module, error = %e, "Baytech console did not close after Logout");
    }
}

/// The dialogue steps; [`ConsoleSwitch`] runs them with every error masked by
/// [`ConsoleTarget::redact_error`](fencekit_console::target::ConsoleTarget::redact_error).
#[async_trait]
impl ConsoleDevice for BaytechStrip {
    /// Builds the switch from parameters validated against [`SCHEMA`].
    fn from_params(params: &Params) -> Result<BaytechStrip, DeviceError> {
        let target = ConsoleTarget::from_params(
            params,
            ParamNames {
                user: &["username"],
                password: &["password"],
                port: &["ipport"],
                default_port: 22,
            },
        )?;
        let strip = params
            .integer("strip")
            .map(|strip| {
                u32::try_from(strip)
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| {
                        DeviceError::Failed(format!(
                            "parameter `strip` must be 1 or more, not {strip}"
                        ))
                    })
            })
            .transpose()?;
        Ok(BaytechStrip::new(target, strip))
    }

    fn target(&self) -> &ConsoleTarget {
        &self.target
    }

    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        if let Some(state) = self.take_observed(plug) {
            return Ok(state);
        }
        let (strip, _) = self.place(plug)?;
        let mut s = self.login(strip, Wait::UntilDeadline, deadline).await?;
        let outlets = self.outlets(strip, &mut s, deadline).await?;
        let state = self.find(&s, plug, &outlets)?.state;
        logout(&mut s, deadline).await;
        Ok(state)
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let word = match to {
            SwitchTo::On => "On",
            SwitchTo::Off => "Off",
        };
        self.run(plug, word, deadline).await
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        match command {
            DeviceCommand::Cycle => self.run(plug, "Reboot", deadline).await,
            other => Err(DeviceError::Unsupported(format!(
                "a Baytech outlet has no {} command",
                other.as_str()
            ))),
        }
    }

    /// The outlets of the configured strip (plugs as numbers on it).
    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let mut s = self
            .login(self.strip, Wait::UntilDeadline, deadline)
            .await?;
        let outlets = self.outlets(self.strip, &mut s, deadline).await?;
        logout(&mut s, deadline).await;
        Ok(outlets.iter().map(Outlet::plug_info).collect())
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        let mut s = self
            .login(self.strip, Wait::UntilDeadline, deadline)
            .await?;
        logout(&mut s, deadline).await;
        Ok(())
    }

    /// Behind a management module, a listing holds one strip's outlets only, unless
    /// `strip` chose that strip.
    fn names_complete(&self) -> bool {
        self.strip_given || !self.module_seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A bare number is an outlet of the configured strip.
    fn address(&self, listed: &Plug) -> Plug {
        fencekit_core::power::on_unit(self.strip, listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_console::sim::OutletFile;
    use fencekit_console::ThreadStream;
    use fencekit_core::PowerSwitch;

    /// The simulator on a thread at one end of a socket pair, a console at the
    /// other: the dialogue without sshd.
    fn device(mode: &str, state: &std::path::Path) -> Console<ThreadStream> {
        fencekit_console::sim::paired_console("rpc-test", mode, state, crate::sim::run).unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    #[tokio::test]
    async fn the_strip_prompt_is_learned_behind_a_module_and_alone() {
        for (mode, strip, prompt) in [
            ("module", 1, "RPC-28A>"),
            ("module", 2, "RPC3-NC>"),
            ("direct", 1, "RPC-28A>"),
            // An RPC strip that greets with its own main menu ("Enter Selection>").
            ("menu", 1, "RPC-3>"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            let state = OutletFile::create(&path, 2, 8).unwrap();
            state.set(strip, 4, false, Some("db node 4")).unwrap();
            let mut console = device(mode, &path);
            let (learned, module) = reach_strip(&mut console, strip, soon()).await.unwrap();
            assert_eq!(learned, Pattern::prompt(prompt));
            assert_eq!(module, mode == "module");
            let outlets = status_table(&mut console, &learned, soon()).await.unwrap();
            assert_eq!(outlets.len(), 8);
            let four = find(&Plug::Name("db node 4".into()), &outlets).unwrap();
            assert_eq!((four.number, four.state), (4, PowerState::Off));
            assert!(find(&Plug::Number(9), &outlets).is_err());
        }
    }

    #[tokio::test]
    async fn two_outlets_with_one_name_are_ambiguous_on_each_strip_never_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let state = OutletFile::create(&path, 2, 8).unwrap();
        // Two power supplies named alike on strip 2; the name once on strip 1.
        state.set(2, 2, true, Some("db1")).unwrap();
        state.set(2, 6, true, Some("db1")).unwrap();
        state.set(1, 4, true, Some("db1")).unwrap();
        for (strip, ambiguous) in [(2, true), (1, false)] {
            let mut console = device("module", &path);
            let (prompt, _) = reach_strip(&mut console, strip, soon()).await.unwrap();
            let outlets = status_table(&mut console, &prompt, soon()).await.unwrap();
            let found = find(&Plug::Name("db1".into()), &outlets);
            if ambiguous {
                let err = found.unwrap_err();
                assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
                assert!(err.to_string().contains("2, 6"), "{err}");
            } else {
                assert_eq!(found.unwrap().number, 4);
            }
            // `07` names outlet 7; numbers are numbers.
            assert_eq!(find(&Plug::parse("07"), &outlets).unwrap().number, 7);
            assert_eq!(find(&Plug::parse("6"), &outlets).unwrap().number, 6);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_strip_that_prints_the_password_in_its_prompt_never_gets_it_into_an_error() {
        use tokio::io::AsyncWriteExt;
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let device = tokio::spawn(async move {
            theirs
                .write_all(b"RPC-28 Series\r\nlogged in as uniq-Zq81x:")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(theirs);
        });
        let mut console = Console::new(
            ours,
            fencekit_console::ConsoleOptions {
                device: "rpc-test".into(),
                ..Default::default()
            },
        );
        console.add_secret(&fencekit_core::Secret::new("uniq-Zq81x"));
        let err = reach_strip(&mut console, 1, soon()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("Zq81x") && text.contains("withheld"),
            "{text}"
        );
        device.abort();
    }

    #[test]
    fn telnet_reaches_port_23_and_ssh_port_22_unless_ipport_says() {
        let build = |pairs: &[(&str, &str)]| {
            let raw: Vec<_> = pairs
                .iter()
                .map(|(k, v)| {
                    fencekit_core::schema::RawParam::text(
                        *k,
                        *v,
                        fencekit_core::schema::Origin::new("test"),
                    )
                })
                .collect();
            let params = fencekit_core::schema::validate(
                &[&SCHEMA],
                &raw,
                fencekit_core::schema::Unknown::Reject,
                None,
            )
            .unwrap()
            .params;
            BaytechSwitch::from_params(&params)
                .unwrap()
                .device()
                .target
                .ssh
                .port
        };
        let base = [
            ("ipaddr", "127.0.0.1"),
            ("login", "admin"),
            ("passwd", "pw"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            build(&all)
        };
        assert_eq!(with(&[("telnet", "1")]), 23);
        assert_eq!(with(&[("insecure_skip_host_key_check", "1")]), 22);
        assert_eq!(with(&[("telnet", "1"), ("ipport", "2323")]), 2323);
    }

    /// fence_apc's `switch` (the unit of a daisy chain) is the strip: never
    /// ignored, which would switch that outlet of strip 1.
    #[test]
    fn fence_apcs_switch_names_the_strip() {
        let origin = || fencekit_core::schema::Origin::new("test");
        let params = fencekit_core::schema::validate(
            &[&SCHEMA],
            &[
                fencekit_core::schema::RawParam::text("ipaddr", "127.0.0.1", origin()),
                fencekit_core::schema::RawParam::text("login", "admin", origin()),
                fencekit_core::schema::RawParam::text("passwd", "secret", origin()),
                fencekit_core::schema::RawParam::text("host_key", "SHA256:abc", origin()),
                fencekit_core::schema::RawParam::text("switch", "2", origin()),
            ],
            fencekit_core::schema::Unknown::Reject,
            None,
        )
        .unwrap()
        .params;
        let switch = BaytechSwitch::from_params(&params).unwrap();
        assert_eq!(
            switch.device().place(&Plug::Number(1)).unwrap(),
            (2, &Plug::Number(1))
        );
    }

    #[test]
    fn plugs_on_a_unit_choose_their_strip() {
        let params = fencekit_core::schema::validate(
            &[&SCHEMA],
            &[
                fencekit_core::schema::RawParam::text(
                    "ipaddr",
                    "127.0.0.1",
                    fencekit_core::schema::Origin::new("test"),
                ),
                fencekit_core::schema::RawParam::text(
                    "login",
                    "admin",
                    fencekit_core::schema::Origin::new("test"),
                ),
                fencekit_core::schema::RawParam::text(
                    "passwd",
                    "secret",
                    fencekit_core::schema::Origin::new("test"),
                ),
                fencekit_core::schema::RawParam::text(
                    "host_key",
                    "SHA256:abc",
                    fencekit_core::schema::Origin::new("test"),
                ),
                fencekit_core::schema::RawParam::text(
                    "strip",
                    "3",
                    fencekit_core::schema::Origin::new("test"),
                ),
            ],
            fencekit_core::schema::Unknown::Reject,
            None,
        )
        .unwrap()
        .params;
        let switch = BaytechSwitch::from_params(&params).unwrap();
        assert_eq!(switch.device().target.ssh.port, 22);
        let plug = Plug::parse("2:5");
        assert_eq!(switch.device().place(&plug).unwrap(), (2, &Plug::Number(5)));
        assert_eq!(
            switch.device().place(&Plug::Number(5)).unwrap(),
            (3, &Plug::Number(5))
        );
        assert!(!format!("{switch:?}").contains("secret"));
        // The strip's Reboot is never seen off: reboots are off, confirm, on.
        assert!(!switch.supports(DeviceCommand::Cycle));
    }
}
