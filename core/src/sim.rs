//! A simulated power device: plugs held in memory (or in a state file, so that
//! separate processes see one device), each of which can be told to obey, to lie
//! (accept off and stay on), to change state slowly, to fail, or never to answer.
//! Time is tokio's, so tests run it with paused time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::DeviceError;
use crate::power::{Plug, PlugInfo, PowerState};
use crate::schema::{ParamSpec, ParamType, Params, PluginKind, Schema};
use crate::switch::{DeviceCommand, PowerSwitch, SwitchTo};
use crate::Instant;

/// How one simulated plug behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Switches at once.
    Obey,
    /// Accepts every command and never changes state.
    Lie,
    /// Accepts a command and reaches the state after this long.
    Slow(Duration),
    /// Refuses every switch command with this error.
    FailSwitch(DeviceError),
    /// Fails every status read with this error.
    FailStatus(DeviceError),
    /// Never answers anything.
    Hang,
    /// Accepts a command and reaches the state after this long; status always reads
    /// unknown (a device that cannot tell).
    Pending(Duration),
    /// Refuses every switch command and every status read with this error.
    Fail(DeviceError),
    /// Carries a switch command out, then fails as a dropped connection does, before
    /// the answer; status reads fail the same way.
    Drop,
}

/// One command the device received, for tests to check the order of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    pub plug: u32,
    pub command: &'static str,
}

#[derive(Debug)]
struct SimPlug {
    name: String,
    state: PowerState,
    pending: Option<(PowerState, Instant)>,
    /// The change after `pending` (the on of a slow power cycle); kept in memory
    /// only.
    then: Option<(PowerState, Instant)>,
    behaviour: Behaviour,
}

impl SimPlug {
    fn settle(&mut self, now: Instant) {
        while let Some((state, at)) = self.pending {
            if now < at {
                break;
            }
            self.state = state;
            self.pending = self.then.take();
        }
    }
}

/// The simulated device.
#[derive(Debug)]
pub struct SimSwitch {
    plugs: Mutex<BTreeMap<u32, SimPlug>>,
    received: Mutex<Vec<Received>>,
    latency: Duration,
    state_file: Option<PathBuf>,
    command_log: Option<PathBuf>,
    login: Result<(), DeviceError>,
}

impl SimSwitch {
    /// A device with plugs `1..=count`, named `outlet-N`, all on.
    pub fn new(count: u32) -> SimSwitch {
        let plugs = (1..=count)
            .map(|n| {
                (
                    n,
                    SimPlug {
                        name: format!("outlet-{n}"),
                        state: PowerState::On,
                        pending: None,
                        then: None,
                        behaviour: Behaviour::Obey,
                    },
                )
            })
            .collect();
        SimSwitch {
            plugs: Mutex::new(plugs),
            received: Mutex::new(Vec::new()),
            latency: Duration::ZERO,
            state_file: None,
            command_log: None,
            login: Ok(()),
        }
    }

    /// Every call takes this long before it answers.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn set_behaviour(&self, plug: u32, behaviour: Behaviour) {
        if let Some(p) = self.lock().get_mut(&plug) {
            p.behaviour = behaviour;
        }
    }

    pub fn set_name(&self, plug: u32, name: &str) {
        if let Some(p) = self.lock().get_mut(&plug) {
            p.name = name.to_string();
        }
    }

    pub fn set_state(&self, plug: u32, state: PowerState) {
        if let Some(p) = self.lock().get_mut(&plug) {
            p.state = state;
            p.pending = None;
            p.then = None;
        }
    }

    /// The plug's true state right now, as a test sees it.
    pub fn state(&self, plug: u32) -> Option<PowerState> {
        let now = Instant::now();
        self.lock().get_mut(&plug).map(|p| {
            p.settle(now);
            p.state
        })
    }

    /// Every switch command received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds the `sim` plugin's device from validated parameters.
    pub fn from_params(params: &Params) -> Result<SimSwitch, DeviceError> {
        let count = params.integer("plugs").unwrap_or(2);
        let count = u32::try_from(count)
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| DeviceError::Failed(format!("plugs must be 1 to 1024, not {count}")))?;
        let mut sim =
            SimSwitch::new(count).with_latency(params.seconds("latency").unwrap_or(Duration::ZERO));
        if let Some(names) = params.text("names") {
            for (n, name) in (1..).zip(names.split(',')) {
                sim.set_name(n, name.trim());
            }
        }
        let off_delay = params.seconds("off_delay").unwrap_or(Duration::ZERO);
        for n in 1..=count {
            if !off_delay.is_zero() {
                sim.set_behaviour(n, Behaviour::Slow(off_delay));
            }
        }
        for plug in list_of_numbers(params.text("lying_plugs"))? {
            sim.set_behaviour(plug, Behaviour::Lie);
        }
        for plug in list_of_numbers(params.text("pending_plugs"))? {
            // A pending command with no delay given stays pending for a long while.
            let delay = if off_delay.is_zero() {
                Duration::from_secs(3600)
            } else {
                off_delay
            };
            sim.set_behaviour(plug, Behaviour::Pending(delay));
        }
        for plug in list_of_numbers(params.text("failing_plugs"))? {
            sim.set_behaviour(
                plug,
                Behaviour::Fail(DeviceError::Refused(format!(
                    "the simulated device refuses every command for plug {plug}"
                ))),
            );
        }
        for plug in list_of_numbers(params.text("hanging_plugs"))? {
            sim.set_behaviour(plug, Behaviour::Hang);
        }
        for plug in list_of_numbers(params.text("dropping_plugs"))? {
            sim.set_behaviour(plug, Behaviour::Drop);
        }
        sim.command_log = params.text("command_log").map(PathBuf::from);
        if let Some(expected) = params.secret("expect_password") {
            if params.secret("password") != Some(expected) {
                sim.login = Err(DeviceError::Auth(
                    "the simulated device refused the password; check `password`".into(),
                ));
            }
        }
        if let Some(path) = params.text("state_file") {
            sim.state_file = Some(PathBuf::from(path));
            sim.load()?;
        }
        Ok(sim)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, SimPlug>> {
        self.plugs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resolve(&self, plug: &Plug) -> Result<u32, DeviceError> {
        let plugs = self.lock();
        crate::power::resolve_outlet(plug, plugs.iter().map(|(n, p)| (*n, p.name.as_str())))
    }

    async fn answer(&self, plug: u32) -> Result<(), DeviceError> {
        self.login.clone()?;
        let hang = self
            .lock()
            .get(&plug)
            .is_some_and(|p| p.behaviour == Behaviour::Hang);
        if hang {
            std::future::pending::<()>().await;
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(())
    }

    /// A plug that fails, drops or hangs every call makes the device's own calls
    /// (check, list) fail, drop or hang too: its fault is the device's, not the
    /// plug's.
    async fn device_wide(&self) -> Result<(), DeviceError> {
        let (hang, error) = {
            let plugs = self.lock();
            let hang = plugs.values().any(|p| p.behaviour == Behaviour::Hang);
            let error = plugs.values().find_map(|p| match &p.behaviour {
                Behaviour::Fail(error) => Some(error.clone()),
                Behaviour::Drop => Some(dropped()),
                _ => None,
            });
            (hang, error)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        error.map_or(Ok(()), Err)
    }

    /// Appends `ACCEPTED_MS PLUG STATE EFFECTIVE_MS|-` to the command log, if there
    /// is one: when the plug reaches `state` (after `after`), or `-` for never. A
    /// test reads it to know what the device truly did and when.
    fn log_command(&self, plug: u32, state: PowerState, after: Option<Duration>) {
        self.log_command_at(plug, state, Duration::ZERO, after);
    }

    /// Like [`SimSwitch::log_command`] for a step the device takes by itself
    /// `accepted_after` from now (the on of its own power cycle), so that the step is
    /// not mistaken for a command that overtook the one before.
    fn log_command_at(
        &self,
        plug: u32,
        state: PowerState,
        accepted_after: Duration,
        after: Option<Duration>,
    ) {
        let Some(path) = &self.command_log else {
            return;
        };
        let now = unix_ms();
        let accepted = now + accepted_after.as_millis() as u64;
        let effective = after.map_or("-".to_string(), |d| {
            (now + d.as_millis() as u64).to_string()
        });
        let line = format!("{accepted} {plug} {state} {effective}\n");
        // The log is a test's record: a failure to write it must not change what the
        // device does, so it is only reported.
        let written =
            crate::files::open_regular(path, std::fs::OpenOptions::new().create(true).append(true))
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("sim: cannot write command log {}: {e}", path.display());
        }
    }

    fn load(&self) -> Result<(), DeviceError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let text = match crate::files::read_text_bounded(path, STATE_FILE_LIMIT) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.save(),
            Err(e) => {
                return Err(DeviceError::Failed(format!(
                    "cannot read state file {}: {e}",
                    path.display()
                )))
            }
        };
        let mut plugs = self.lock();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(n), Some(state)) = (words.next(), words.next()) else {
                continue;
            };
            if let Some(plug) = n.parse::<u32>().ok().and_then(|n| plugs.get_mut(&n)) {
                plug.state = parse_state(state);
                plug.pending = None;
                plug.then = None;
                // `STATE@UNIX_MS` (up to two): changes that another process's command
                // started, in order.
                let now = Instant::now();
                for change in words.take(2) {
                    let Some((to, at)) = change.split_once('@') else {
                        continue;
                    };
                    let to = parse_state(to);
                    match at.parse::<u64>().map(|at| at.checked_sub(unix_ms())) {
                        Ok(None) => plug.state = to,
                        Ok(Some(left)) => {
                            let change = Some((to, now + Duration::from_millis(left)));
                            if plug.pending.is_none() {
                                plug.pending = change;
                            } else {
                                plug.then = change;
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn save(&self) -> Result<(), DeviceError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        // Written under the plugs' lock, through a file of this process's own, so
        // that concurrent calls (several nodes on one device) and other processes
        // sharing the file never rename each other's half-written state.
        // The true state, and a change still on its way with the wall-clock time it
        // arrives, so that the file tells another process (and a test) what the
        // device really shows now and later.
        let plugs = self.lock();
        let now = Instant::now();
        let text: String = plugs
            .iter()
            .map(|(n, p)| {
                let mut line = format!("{n} {}", p.state);
                for (to, at) in p.pending.iter().chain(&p.then) {
                    let at = unix_ms() + at.saturating_duration_since(now).as_millis() as u64;
                    line.push_str(&format!(" {to}@{at}"));
                }
                line.push('\n');
                line
            })
            .collect();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = crate::files::open_regular(
            &tmp,
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true),
        )
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
        drop(plugs);
        written.map_err(|e| {
            DeviceError::Failed(format!("cannot write state file {}: {e}", path.display()))
        })
    }
}

fn dropped() -> DeviceError {
    DeviceError::Protocol("the simulated connection dropped before the answer".into())
}

fn parse_state(word: &str) -> PowerState {
    match word {
        "on" => PowerState::On,
        "off" => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

/// Wall-clock milliseconds since the Unix epoch: what the state file and the command
/// log are written in, as other processes read them.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn list_of_numbers(text: Option<&str>) -> Result<Vec<u32>, DeviceError> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| DeviceError::Failed(format!("not a plug number: {s}")))
        })
        .collect()
}

#[async_trait]
impl PowerSwitch for SimSwitch {
    async fn status(&self, plug: &Plug, _deadline: Instant) -> Result<PowerState, DeviceError> {
        let n = self.resolve(plug)?;
        self.answer(n).await?;
        let now = Instant::now();
        let mut plugs = self.lock();
        let p = plugs
            .get_mut(&n)
            .ok_or_else(|| DeviceError::Failed("plug vanished".into()))?;
        match &p.behaviour {
            Behaviour::FailStatus(error) | Behaviour::Fail(error) => return Err(error.clone()),
            Behaviour::Drop => return Err(dropped()),
            _ => {}
        }
        p.settle(now);
        if matches!(p.behaviour, Behaviour::Pending(_)) {
            return Ok(PowerState::Unknown);
        }
        Ok(p.state)
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        _deadline: Instant,
    ) -> Result<(), DeviceError> {
        let n = self.resolve(plug)?;
        self.answer(n).await?;
        let now = Instant::now();
        {
            let mut plugs = self.lock();
            let p = plugs
                .get_mut(&n)
                .ok_or_else(|| DeviceError::Failed("plug vanished".into()))?;
            self.received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Received {
                    at: now,
                    plug: n,
                    command: to.as_str(),
                });
            p.settle(now);
            match &p.behaviour {
                Behaviour::FailSwitch(error) | Behaviour::Fail(error) => return Err(error.clone()),
                Behaviour::Lie => self.log_command(n, to.state(), None),
                Behaviour::Slow(delay) | Behaviour::Pending(delay) => {
                    p.pending = Some((to.state(), now + *delay));
                    p.then = None;
                    self.log_command(n, to.state(), Some(*delay));
                }
                _ => {
                    p.state = to.state();
                    p.pending = None;
                    p.then = None;
                    self.log_command(n, to.state(), Some(Duration::ZERO));
                }
            }
        }
        self.save()?;
        if self
            .lock()
            .get(&n)
            .is_some_and(|p| p.behaviour == Behaviour::Drop)
        {
            return Err(dropped());
        }
        Ok(())
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        _deadline: Instant,
    ) -> Result<(), DeviceError> {
        if command != DeviceCommand::Cycle {
            return Err(DeviceError::Unsupported(format!(
                "the simulated device has no {} command",
                command.as_str()
            )));
        }
        let n = self.resolve(plug)?;
        self.answer(n).await?;
        let now = Instant::now();
        {
            let mut plugs = self.lock();
            let p = plugs
                .get_mut(&n)
                .ok_or_else(|| DeviceError::Failed("plug vanished".into()))?;
            self.received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Received {
                    at: now,
                    plug: n,
                    command: "cycle",
                });
            match &p.behaviour {
                Behaviour::FailSwitch(error) | Behaviour::Fail(error) => return Err(error.clone()),
                Behaviour::Lie => self.log_command(n, PowerState::Off, None),
                Behaviour::Slow(delay) | Behaviour::Pending(delay) => {
                    // A slow device starts its cycle late: off after the delay, on a
                    // second later.
                    let delay = *delay;
                    p.pending = Some((PowerState::Off, now + delay));
                    p.then = Some((PowerState::On, now + delay + Duration::from_secs(1)));
                    self.log_command(n, PowerState::Off, Some(delay));
                    self.log_command_at(
                        n,
                        PowerState::On,
                        delay,
                        Some(delay + Duration::from_secs(1)),
                    );
                }
                _ => {
                    // Off now, back on a second later, as a BMC's cycle does.
                    p.state = PowerState::Off;
                    p.pending = Some((PowerState::On, now + Duration::from_secs(1)));
                    p.then = None;
                    self.log_command(n, PowerState::Off, Some(Duration::ZERO));
                    self.log_command_at(
                        n,
                        PowerState::On,
                        Duration::ZERO,
                        Some(Duration::from_secs(1)),
                    );
                }
            }
        }
        self.save()?;
        if self
            .lock()
            .get(&n)
            .is_some_and(|p| p.behaviour == Behaviour::Drop)
        {
            return Err(dropped());
        }
        Ok(())
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        command == DeviceCommand::Cycle
    }

    fn address(&self, listed: &Plug) -> Plug {
        crate::power::on_unit(1, listed)
    }

    async fn list(&self, _deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        self.login.clone()?;
        self.device_wide().await?;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let now = Instant::now();
        Ok(self
            .lock()
            .iter_mut()
            .map(|(n, p)| {
                p.settle(now);
                PlugInfo {
                    plug: Plug::Number(*n),
                    name: Some(p.name.clone()),
                    alias: None,
                    state: p.state,
                }
            })
            .collect())
    }

    async fn check(&self, _deadline: Instant) -> Result<(), DeviceError> {
        self.login.clone()?;
        self.device_wide().await?;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(())
    }
}

/// The largest state file read: a line per plug.
const STATE_FILE_LIMIT: usize = 4 << 20;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("plugs", "how many plugs the device has")
        .ty(ParamType::Integer)
        .default("2"),
    ParamSpec::new("names", "comma-separated plug names, in plug order"),
    ParamSpec::new("latency", "how long every call takes").ty(ParamType::Seconds),
    ParamSpec::new("off_delay", "how long a plug takes to reach a new state")
        .ty(ParamType::Seconds),
    ParamSpec::new(
        "lying_plugs",
        "comma-separated plugs that accept every command and never change state",
    ),
    ParamSpec::new(
        "pending_plugs",
        "comma-separated plugs whose status always reads unknown (a device that cannot \
         tell); their commands take effect after off_delay, or an hour without it",
    ),
    ParamSpec::new(
        "failing_plugs",
        "comma-separated plugs that refuse every command and status read",
    ),
    ParamSpec::new("hanging_plugs", "comma-separated plugs that never answer"),
    ParamSpec::new(
        "dropping_plugs",
        "comma-separated plugs whose commands are carried out, then fail as a dropped \
         connection does; their status reads fail",
    ),
    ParamSpec::new(
        "command_log",
        "a file every accepted switch command is appended to (time, plug, state, when \
         reached), for tests that check what the device did",
    ),
    ParamSpec::new(
        "password",
        "the password to log in with (checked against expect_password)",
    )
    .aliases(&["passwd"])
    .short('p')
    .secret(),
    ParamSpec::new(
        "expect_password",
        "when set, the device refuses every call whose password differs",
    )
    .secret(),
    ParamSpec::new(
        "state_file",
        "a file holding the plugs' states, so that several processes share one device",
    ),
];

/// The `sim` plugin's schema.
pub const SCHEMA: Schema = Schema {
    plugin: "sim",
    kind: PluginKind::Power,
    summary: "simulated power device (for demos and tests)",
    description: "An in-memory power device whose plugs obey, lie, or change state slowly. \
                  It drives no hardware; use it to try fencekit and to test cluster set-ups.",
    url: "",
    multi_plug: true,
    plug_optional: false,
    commands: &[DeviceCommand::Cycle],
    params: PARAMS,
    open: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{validate, Origin, RawParam, Unknown};

    fn sim(pairs: &[(&str, &str)]) -> SimSwitch {
        let raw: Vec<RawParam> = pairs
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
        let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .unwrap()
            .params;
        SimSwitch::from_params(&params).unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn a_dropping_plug_switches_and_then_fails_like_a_lost_answer() {
        let sim = sim(&[("plugs", "2"), ("dropping_plugs", "2")]);
        let err = sim
            .switch(&Plug::Number(2), SwitchTo::Off, far())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::Protocol(_)), "{err}");
        assert_eq!(sim.state(2), Some(PowerState::Off));
        assert!(sim.status(&Plug::Number(2), far()).await.is_err());
    }

    #[tokio::test]
    async fn a_failing_plug_refuses_and_keeps_its_state() {
        let sim = sim(&[("plugs", "2"), ("failing_plugs", "1")]);
        assert!(sim
            .switch(&Plug::Number(1), SwitchTo::Off, far())
            .await
            .is_err());
        assert_eq!(sim.state(1), Some(PowerState::On));
        assert!(sim.status(&Plug::Number(1), far()).await.is_err());
        assert!(sim.check(far()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_plug_reads_unknown_and_changes_after_the_delay() {
        let sim = sim(&[("plugs", "1"), ("pending_plugs", "1"), ("off_delay", "2")]);
        sim.switch(&Plug::Number(1), SwitchTo::Off, far())
            .await
            .unwrap();
        assert_eq!(
            sim.status(&Plug::Number(1), far()).await.unwrap(),
            PowerState::Unknown
        );
        assert_eq!(sim.state(1), Some(PowerState::On));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(sim.state(1), Some(PowerState::Off));
    }

    #[tokio::test]
    async fn the_state_file_keeps_a_change_on_its_way_and_the_log_records_commands() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("log");
        let (state_text, log_text) = (state.display().to_string(), log.display().to_string());
        let slow = sim(&[
            ("plugs", "1"),
            ("off_delay", "30"),
            ("state_file", &state_text),
            ("command_log", &log_text),
        ]);
        slow.switch(&Plug::Number(1), SwitchTo::Off, far())
            .await
            .unwrap();
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.starts_with("1 on off@"), "{text}");
        // Another process sees the plug still on, the change still coming.
        let other = sim(&[("plugs", "1"), ("state_file", &state_text)]);
        assert_eq!(other.state(1), Some(PowerState::On));
        let logged = std::fs::read_to_string(&log).unwrap();
        let words: Vec<&str> = logged.split_whitespace().collect();
        assert_eq!(words[1..3], ["1", "off"]);
        let (accepted, effective): (u64, u64) =
            (words[0].parse().unwrap(), words[3].parse().unwrap());
        assert!(
            (29_000..=31_000).contains(&(effective - accepted)),
            "{logged}"
        );
    }

    #[tokio::test]
    async fn a_lying_plug_is_logged_as_never_taking_effect() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let sim = sim(&[
            ("plugs", "1"),
            ("lying_plugs", "1"),
            ("command_log", &log.display().to_string()),
        ]);
        sim.switch(&Plug::Number(1), SwitchTo::Off, far())
            .await
            .unwrap();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.trim_end().ends_with(" 1 off -"), "{logged}");
    }
}
