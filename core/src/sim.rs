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
    behaviour: Behaviour,
}

impl SimPlug {
    fn settle(&mut self, now: Instant) {
        if let Some((state, at)) = self.pending {
            if now >= at {
                self.state = state;
                self.pending = None;
            }
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

    fn load(&self) -> Result<(), DeviceError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(path) {
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
                plug.state = match state {
                    "on" => PowerState::On,
                    "off" => PowerState::Off,
                    _ => PowerState::Unknown,
                };
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
        let plugs = self.lock();
        let text: String = plugs
            .iter()
            .map(|(n, p)| format!("{n} {}\n", p.pending.map_or(p.state, |(s, _)| s)))
            .collect();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        drop(plugs);
        written.map_err(|e| {
            DeviceError::Failed(format!("cannot write state file {}: {e}", path.display()))
        })
    }
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
        if let Behaviour::FailStatus(error) = &p.behaviour {
            return Err(error.clone());
        }
        p.settle(now);
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
                Behaviour::FailSwitch(error) => return Err(error.clone()),
                Behaviour::Lie => {}
                Behaviour::Slow(delay) => p.pending = Some((to.state(), now + *delay)),
                _ => {
                    p.state = to.state();
                    p.pending = None;
                }
            }
        }
        self.save()
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
            if p.behaviour != Behaviour::Lie {
                // Off now, back on a second later, as a BMC's cycle does.
                p.state = PowerState::Off;
                p.pending = Some((PowerState::On, now + Duration::from_secs(1)));
            }
        }
        self.save()
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        command == DeviceCommand::Cycle
    }

    async fn list(&self, _deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        self.login.clone()?;
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
                    state: p.state,
                }
            })
            .collect())
    }

    async fn check(&self, _deadline: Instant) -> Result<(), DeviceError> {
        self.login.clone()?;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(())
    }
}

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
    commands: &[DeviceCommand::Cycle],
    params: PARAMS,
};
