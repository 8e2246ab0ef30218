//! The fence algorithm: the one place that decides what "fenced" means.
//!
//! **The rule.** Success of `off`, `reboot` or a cycle means each plug was *read*
//! off after the device accepted the command and before the deadline. Nothing else
//! counts: not a device's word that it switched, not a cycle it says it ran, not a
//! timeout that "probably" did it. [`Outcome::fenced`] is set only from such reads; a
//! node with no plugs is never fenced. Each path below follows from it.
//!
//! * `off`: every plug is told to switch off, then read back until it is *confirmed*
//!   off, within `power_timeout` of the device accepting the command. A device that
//!   accepts "off" and still reads "on" at that point is a failure that says so.
//! * `on`: the same towards on.
//! * `reboot`: `off` for every plug; only when *all* plugs are confirmed off, an
//!   optional wait, then `on` for all. A failed off phase switches nothing back on.
//!   The device's own cycle is used only with [`Method::Cycle`], on a node fed by one
//!   plug (cycling one of two supplies never cuts the node's power).
//! * `cycle` ([`Method::Cycle`]): the plug must read off after the cycle was
//!   accepted, then on after that, each within `power_timeout`. A device that accepts
//!   the cycle and is never seen off (it lies, reads "pending" all along, or the off
//!   was too short to see) fails by the deadline naming device and plug. A node that
//!   already *reads* off is switched on instead.
//! * `status`: every plug read once.
//! * A node with a plug on a fabric device ([`PowerSwitch::fabric`]: a switch port,
//!   not power) is never rebooted: the reboot is refused before anything is switched,
//!   since cutting a link resets nothing and switching it back at once would let a
//!   node that may still run back onto the fabric.
//!
//! Plugs on different devices are worked on concurrently; plugs on one device one
//! after the other (many devices allow one session at a time). Every device call is
//! bounded by the operation's deadline from outside, so a plugin that hangs cannot
//! hold a fence past it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at};

use crate::error::{DeviceError, FenceError};
use crate::join::join_all;
use crate::power::{FenceTarget, PowerState, TargetPlug};
use crate::schema::{ParamSpec, ParamType, Params, PluginKind, Schema};
use crate::switch::{DeviceCommand, PowerSwitch, SwitchTo};
use crate::Instant;

/// How long the devices get, at most, to end what they kept open for an operation
/// once its outcome is known ([`PowerSwitch::close`]): one exchange on a live link.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The devices a fence may use, by their configured names.
pub type Devices = BTreeMap<String, Arc<dyn PowerSwitch>>;

/// What to do to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FenceAction {
    Off,
    On,
    Reboot,
    Status,
}

impl FenceAction {
    pub fn parse(text: &str) -> Option<FenceAction> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Some(FenceAction::Off),
            "on" => Some(FenceAction::On),
            "reboot" | "reset" => Some(FenceAction::Reboot),
            "status" => Some(FenceAction::Status),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Reboot => "reboot",
            FenceAction::Status => "status",
        }
    }
}

impl fmt::Display for FenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `reboot` is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// Off, confirmed off, then on, confirmed on (the default, and the safe one).
    #[default]
    OnOff,
    /// The device's own power cycle, where the device has one and the node has one
    /// plug; otherwise falls back to [`Method::OnOff`].
    Cycle,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text.trim().to_ascii_lowercase().as_str() {
            "onoff" => Some(Method::OnOff),
            "cycle" => Some(Method::Cycle),
            _ => None,
        }
    }
}

/// One step of a fence as it happens, for progress output and audit logs.
#[derive(Debug, Clone)]
pub struct Step {
    /// Time since the operation started.
    pub elapsed: Duration,
    pub target: Option<TargetPlug>,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// A command was sent and the device accepted it.
    Accepted(&'static str),
    /// A plug was read.
    Read(PowerState),
    /// A plug reached the wanted state.
    Confirmed(PowerState),
    /// Something went wrong with a plug.
    Failed(String),
    /// The algorithm waits on purpose (`delay`, `reboot_wait`).
    Waiting(&'static str, Duration),
    /// A remark that does not change the outcome (a method fallback, a plug already
    /// read off).
    Note(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8.3} s  ", self.elapsed.as_secs_f64())?;
        if let Some(target) = &self.target {
            write!(f, "{target}: ")?;
        }
        match &self.kind {
            StepKind::Accepted(what) => write!(f, "{what} accepted"),
            StepKind::Read(state) => write!(f, "reads {state}"),
            StepKind::Confirmed(state) => write!(f, "confirmed {state}"),
            StepKind::Failed(why) => write!(f, "FAILED: {why}"),
            StepKind::Waiting(what, how_long) => {
                write!(f, "waiting {:.1} s ({what})", how_long.as_secs_f64())
            }
            StepKind::Note(text) => f.write_str(text),
        }
    }
}

/// Receives every [`Step`] as it happens.
pub type Observer = Arc<dyn Fn(&Step) + Send + Sync>;

/// Timing and method of a fence. Defaults follow fence-agents where they have one.
#[derive(Clone)]
pub struct FenceOptions {
    /// The whole operation ends by this, whatever the devices do. The default, 50 s,
    /// ends before Pacemaker's default fencing timeout (60 s) kills the agent, so the
    /// cluster gets our reason rather than a kill.
    pub timeout: Duration,
    /// How long after a device accepted a command the plug may take to reach the
    /// state (fence-agents' `power_timeout`, but counted in seconds, not in polls).
    pub power_timeout: Duration,
    /// The longest pause between two reads of a plug while waiting; the first reads
    /// come sooner.
    pub poll_interval: Duration,
    /// A pause after each accepted command before reading it back (`power_wait`).
    pub power_wait: Duration,
    /// A pause between the confirmed off and the on of a reboot.
    pub reboot_wait: Duration,
    /// A pause before `off` and `reboot` (`delay`: the fence-race mitigation).
    pub delay: Duration,
    pub method: Method,
    /// A command run after the fence with the outcome in its environment
    /// ([`crate::notify`]); it cannot change the outcome.
    pub notify_command: Option<String>,
    /// How long the notify command may run (never past the operation's deadline).
    pub notify_timeout: Duration,
    pub observer: Option<Observer>,
}

impl Default for FenceOptions {
    fn default() -> Self {
        FenceOptions {
            timeout: Duration::from_secs(50),
            power_timeout: Duration::from_secs(20),
            poll_interval: Duration::from_millis(500),
            power_wait: Duration::ZERO,
            reboot_wait: Duration::ZERO,
            delay: Duration::ZERO,
            method: Method::OnOff,
            notify_command: None,
            notify_timeout: Duration::from_secs(5),
            observer: None,
        }
    }
}

impl fmt::Debug for FenceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceOptions")
            .field("timeout", &self.timeout)
            .field("power_timeout", &self.power_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("power_wait", &self.power_wait)
            .field("reboot_wait", &self.reboot_wait)
            .field("delay", &self.delay)
            .field("method", &self.method)
            .field("notify_command", &self.notify_command)
            .field("notify_timeout", &self.notify_timeout)
            .finish_non_exhaustive()
    }
}

/// What happened to one plug.
#[derive(Debug, Clone)]
pub struct PlugReport {
    pub target: TargetPlug,
    /// The last state read, `Unknown` if it was never read.
    pub state: PowerState,
    /// When off was confirmed, from the start of the operation.
    pub off_confirmed: Option<Duration>,
    /// When on was confirmed, from the start of the operation.
    pub on_confirmed: Option<Duration>,
}

/// The result of a fence.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub node: String,
    pub action: FenceAction,
    /// Everything asked for was done and confirmed.
    pub success: bool,
    /// Every plug was confirmed off (for `off` and `reboot`): the node has no power,
    /// even if a reboot's on phase then failed.
    pub fenced: bool,
    pub plugs: Vec<PlugReport>,
    pub errors: Vec<FenceError>,
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

impl Outcome {
    /// The node's power as fence-agents aggregate it: on if any plug is not off.
    /// A node without plugs is `Unknown`: nothing was read, so nothing is off.
    pub fn aggregate_state(&self) -> PowerState {
        if self.plugs.is_empty() {
            PowerState::Unknown
        } else if self.plugs.iter().all(|p| p.state == PowerState::Off) {
            PowerState::Off
        } else if self.plugs.iter().any(|p| p.state == PowerState::On) {
            PowerState::On
        } else {
            PowerState::Unknown
        }
    }

    /// One line for the user: what was confirmed, or the first thing that failed.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        match (self.action, self.success, self.fenced) {
            (FenceAction::Status, true, _) => format!(
                "{}: power {} ({} plug(s) read in {secs:.3} s)",
                self.node,
                self.aggregate_state(),
                self.plugs.len()
            ),
            (FenceAction::Off, true, _) => format!(
                "{}: fenced, all {} plug(s) confirmed off in {secs:.3} s",
                self.node,
                self.plugs.len()
            ),
            (FenceAction::On, true, _) => format!(
                "{}: all {} plug(s) confirmed on in {secs:.3} s",
                self.node,
                self.plugs.len()
            ),
            (FenceAction::Reboot, true, _) => format!(
                "{}: rebooted, all {} plug(s) confirmed off then on in {secs:.3} s",
                self.node,
                self.plugs.len()
            ),
            (FenceAction::Reboot, false, true) => format!(
                "{}: fenced (all plugs confirmed off) but switching back on failed: {}",
                self.node,
                self.first_error()
            ),
            (_, false, _) => format!(
                "{}: {} FAILED after {secs:.3} s: {}",
                self.node,
                self.action,
                self.first_error()
            ),
        }
    }

    fn first_error(&self) -> String {
        self.errors
            .first()
            .map(ToString::to_string)
            .or_else(|| self.notes.first().cloned())
            .unwrap_or_else(|| "no error recorded".into())
    }
}

/// Runs `action` on every plug of `target`.
pub async fn fence(
    devices: &Devices,
    target: &FenceTarget,
    action: FenceAction,
    options: &FenceOptions,
) -> Outcome {
    let run = Run::new(devices, target, options);
    let span = tracing::info_span!("fence", node = %target.node, action = %action);
    let _enter = span.enter();
    run.execute(action).await
}

struct Run<'a> {
    devices: &'a Devices,
    target: &'a FenceTarget,
    options: &'a FenceOptions,
    start: Instant,
    deadline: Instant,
}

/// A plug's progress through one phase.
struct PlugProgress {
    target: TargetPlug,
    state: PowerState,
    confirmed: Option<Duration>,
    error: Option<FenceError>,
}

impl<'a> Run<'a> {
    fn new(devices: &'a Devices, target: &'a FenceTarget, options: &'a FenceOptions) -> Self {
        let start = Instant::now();
        Run {
            devices,
            target,
            options,
            start,
            deadline: start + options.timeout,
        }
    }

    async fn execute(&self, action: FenceAction) -> Outcome {
        let mut outcome = Outcome {
            node: self.target.node.clone(),
            action,
            success: false,
            fenced: false,
            plugs: self
                .target
                .plugs
                .iter()
                .map(|t| PlugReport {
                    target: t.clone(),
                    state: PowerState::Unknown,
                    off_confirmed: None,
                    on_confirmed: None,
                })
                .collect(),
            errors: Vec::new(),
            notes: Vec::new(),
            elapsed: Duration::ZERO,
        };
        if self.target.plugs.is_empty() {
            // Nothing read, nothing off: a failure, reported like any other (the
            // notify hook sees success=0, fenced=0, state unknown).
            outcome.notes.push(format!(
                "{}: the node has no plugs configured",
                self.target.node
            ));
        } else if let Some(refused) = self.fabric_reboot(action) {
            outcome.errors.extend(refused);
        } else {
            if matches!(action, FenceAction::Off | FenceAction::Reboot)
                && !self.options.delay.is_zero()
            {
                self.wait(self.options.delay, "delay before fencing").await;
            }
            match action {
                FenceAction::Status => self.status_all(&mut outcome).await,
                FenceAction::Off => {
                    let ok = self.phase(SwitchTo::Off, &mut outcome).await
                        && self.still(SwitchTo::Off, &mut outcome).await;
                    outcome.fenced = ok;
                    outcome.success = ok;
                }
                FenceAction::On => {
                    outcome.success = self.phase(SwitchTo::On, &mut outcome).await
                        && self.still(SwitchTo::On, &mut outcome).await;
                }
                FenceAction::Reboot => self.reboot(&mut outcome).await,
            }
        }
        // The rule, checked once more at the end whatever path was taken: fenced only
        // if every plug was read off, and never with no plugs.
        if outcome.fenced
            && (outcome.plugs.is_empty() || outcome.plugs.iter().any(|p| p.off_confirmed.is_none()))
        {
            outcome.fenced = false;
            outcome.success = false;
        }
        outcome.elapsed = self.start.elapsed();
        self.close_devices().await;
        if let Some(command) = &self.options.notify_command {
            if action != FenceAction::Status {
                let by = (Instant::now() + self.options.notify_timeout).min(self.deadline);
                let said = crate::notify::run(command, &outcome, by).await;
                tracing::info!("{said}");
            }
        }
        if outcome.success {
            tracing::info!(
                elapsed_ms = outcome.elapsed.as_millis() as u64,
                "{}",
                outcome.summary()
            );
        } else {
            tracing::error!(
                elapsed_ms = outcome.elapsed.as_millis() as u64,
                "{}",
                outcome.summary()
            );
        }
        outcome
    }

    /// A reboot of a node with a plug on a fabric device, refused before anything is
    /// switched: cutting a link does not reset the node, and switching it back on at
    /// once would let a node that may still run back onto the fabric. `None` when the
    /// action may go ahead.
    fn fabric_reboot(&self, action: FenceAction) -> Option<Vec<FenceError>> {
        if action != FenceAction::Reboot {
            return None;
        }
        let refused: Vec<FenceError> = self
            .target
            .plugs
            .iter()
            .filter(|t| self.devices.get(&t.device).is_some_and(|d| d.fabric()))
            .map(|t| FenceError::Device {
                target: t.clone(),
                operation: "reboot",
                cause: DeviceError::Unsupported(
                    "the device fences by cutting the node's link (fabric fencing): a \
                     reboot would let the node back at once; fence with off, and let it \
                     back with on once it was reset"
                        .into(),
                ),
            })
            .collect();
        (!refused.is_empty()).then_some(refused)
    }

    async fn reboot(&self, outcome: &mut Outcome) {
        if self.options.method == Method::Cycle {
            match self.cycle_device() {
                Ok(device) => {
                    if self.cycle(device, outcome).await {
                        return;
                    }
                }
                Err(why) => self.note(outcome, why),
            }
        }
        if !(self.phase(SwitchTo::Off, outcome).await && self.still(SwitchTo::Off, outcome).await) {
            self.note(
                outcome,
                "off was not confirmed for every plug, so no plug was switched back on".into(),
            );
            return;
        }
        outcome.fenced = true;
        // An outlet switched back on at once may never have stopped the node behind
        // it: each device's least off time holds, `reboot_wait` may lengthen it.
        let hold = self
            .target
            .plugs
            .iter()
            .filter_map(|plug| self.devices.get(&plug.device))
            .map(|device| device.least_off())
            .max()
            .unwrap_or_default();
        let wait = self.options.reboot_wait.max(hold);
        if !wait.is_zero() {
            self.wait(wait, "between off and on").await;
        }
        outcome.success =
            self.phase(SwitchTo::On, outcome).await && self.still(SwitchTo::On, outcome).await;
    }

    /// The device to cycle, or why the cycle method cannot be used for this node.
    fn cycle_device(&self) -> Result<&'a Arc<dyn PowerSwitch>, String> {
        if self.target.plugs.len() != 1 {
            return Err(format!(
                "method=cycle not used: {} has {} plugs, and cycling them one at a time \
                 would never cut its power; rebooting off-then-on instead",
                self.target.node,
                self.target.plugs.len()
            ));
        }
        let plug = &self.target.plugs[0];
        match self.devices.get(&plug.device) {
            Some(device) if device.supports(DeviceCommand::Cycle) => Ok(device),
            Some(_) => Err(format!(
                "method=cycle not used: {} has no power cycle command; rebooting off-then-on instead",
                plug.device
            )),
            // The unknown device is reported by the off-then-on path.
            None => Err(format!("method=cycle not used: no device {}", plug.device)),
        }
    }

    /// The device's own cycle for a node with one plug; false when the node is to be
    /// rebooted off-then-on instead. A node that reads off is: a cycle of an off
    /// machine is refused by many BMCs, and users mean "make it run again". A read
    /// made before any command is no fence (the device may be wrong about the plug,
    /// or the node may be on its way up): the off is sent and read back like any off.
    async fn cycle(&self, device: &Arc<dyn PowerSwitch>, outcome: &mut Outcome) -> bool {
        let target = &self.target.plugs[0];
        let before = match self.read(device, target, self.deadline).await {
            Ok(state) => state,
            Err(error) => {
                self.fail(outcome, error);
                return true;
            }
        };
        outcome.plugs[0].state = before;
        if before == PowerState::Off {
            self.note(
                outcome,
                format!("{target} reads off already: rebooting off-then-on instead of cycling"),
            );
            return false;
        }
        let result = self
            .bounded(
                "cycle",
                target,
                self.deadline,
                device.command(&target.plug, DeviceCommand::Cycle, self.deadline),
            )
            .await;
        if let Err(error) = result {
            self.fail(outcome, error);
            return true;
        }
        self.step(Some(target), StepKind::Accepted("cycle"));
        let accepted = Instant::now();
        // The off half: the plug must be *read* off after the device accepted the
        // cycle. A device that says it cycled but never lets us see off (it lies, it
        // reads "pending" throughout, or the off was too short to see) has not been
        // shown to have cut the node's power, so this is a failure, not a success
        // with a remark.
        let off_by = (accepted + self.options.power_timeout).min(self.deadline);
        let mut progress = PlugProgress {
            target: target.clone(),
            state: before,
            confirmed: None,
            error: None,
        };
        self.poll_until(device, &mut progress, "cycle", accepted, off_by, |state| {
            state == PowerState::Off
        })
        .await;
        outcome.plugs[0].state = progress.state;
        if progress.confirmed.is_none() {
            // A device error that no retry mends keeps its own words; running out of
            // time (whatever the last read said) is the unverified cycle.
            let error =
                match progress.error {
                    Some(
                        error @ (FenceError::Device { .. } | FenceError::UnknownDevice { .. }),
                    ) if !error.is_timeout() => error,
                    _ => FenceError::CycleNotSeenOff {
                        target: target.clone(),
                        waited: Instant::now() - accepted,
                    },
                };
            self.fail(outcome, error);
            return true;
        }
        outcome.fenced = true;
        outcome.plugs[0].off_confirmed = progress.confirmed;
        // The on half: power must come back, read on, after the off was read.
        let off_read = Instant::now();
        let on_by = (off_read + self.options.power_timeout).min(self.deadline);
        progress.confirmed = None;
        progress.error = None;
        self.poll_until(device, &mut progress, "cycle", off_read, on_by, |state| {
            state == PowerState::On
        })
        .await;
        outcome.plugs[0].state = progress.state;
        match progress.error {
            None => {
                outcome.plugs[0].on_confirmed = progress.confirmed;
                outcome.success = true;
            }
            Some(error) => self.fail(outcome, error),
        }
        true
    }

    /// Every plug read once: devices at once, the plugs of one device one after
    /// the other. Each plug's index with its read.
    async fn read_all(&self) -> Vec<(usize, Result<PowerState, FenceError>)> {
        let groups = self.groups();
        join_all(
            groups
                .iter()
                .map(|(device, plugs)| self.read_group(device, plugs))
                .collect(),
        )
        .await
        .into_iter()
        .flatten()
        .collect()
    }

    async fn status_all(&self, outcome: &mut Outcome) {
        let mut ok = true;
        for (index, result) in self.read_all().await {
            match result {
                Ok(state) => outcome.plugs[index].state = state,
                Err(error) => {
                    ok = false;
                    self.fail(outcome, error);
                }
            }
        }
        outcome.success = ok;
    }

    async fn read_group(
        &self,
        device: &str,
        plugs: &[usize],
    ) -> Vec<(usize, Result<PowerState, FenceError>)> {
        let mut results = Vec::new();
        for &index in plugs {
            let target = &self.target.plugs[index];
            let result = match self.devices.get(device) {
                Some(switch) => self.read(switch, target, self.deadline).await,
                None => Err(FenceError::UnknownDevice {
                    target: target.clone(),
                }),
            };
            results.push((index, result));
        }
        results
    }

    /// After every plug of a node was confirmed off (or on), one at a time: every
    /// plug is read once more, so that one switched back meanwhile (by a hand, a
    /// schedule, another agent) is not reported fenced (or on). Every plug, the last
    /// confirmed too: a confirmation is stamped when its read returned, and a slow
    /// read may have sampled the device well before that. True when each still
    /// reads as `to` left it.
    async fn still(&self, to: SwitchTo, outcome: &mut Outcome) -> bool {
        if outcome.plugs.len() < 2 {
            return true;
        }
        let mut ok = true;
        for (index, result) in self.read_all().await {
            let target = self.target.plugs[index].clone();
            let plug = &mut outcome.plugs[index];
            let error = match result {
                Ok(state) if state == to.state() => continue,
                Ok(state) => {
                    plug.state = state;
                    match to {
                        SwitchTo::Off => FenceError::CameBack { target, state },
                        SwitchTo::On => FenceError::WentOff { target, state },
                    }
                }
                Err(error) => error,
            };
            match to {
                SwitchTo::Off => plug.off_confirmed = None,
                SwitchTo::On => plug.on_confirmed = None,
            }
            ok = false;
            self.fail(outcome, error);
        }
        ok
    }

    /// Switches every plug towards `to` and confirms it. True when every plug is
    /// confirmed.
    async fn phase(&self, to: SwitchTo, outcome: &mut Outcome) -> bool {
        let groups = self.groups();
        let results = join_all(
            groups
                .iter()
                .map(|(device, plugs)| self.phase_on_device(device, plugs, to))
                .collect(),
        )
        .await;
        let mut all = true;
        for (index, progress) in results.into_iter().flatten() {
            let report = &mut outcome.plugs[index];
            report.state = progress.state;
            match to {
                SwitchTo::Off => report.off_confirmed = progress.confirmed,
                SwitchTo::On => report.on_confirmed = progress.confirmed,
            }
            if let Some(error) = progress.error {
                all = false;
                outcome.errors.push(error);
            }
        }
        all
    }

    /// One device's plugs in one phase: switch each, then confirm each.
    async fn phase_on_device(
        &self,
        device: &str,
        plugs: &[usize],
        to: SwitchTo,
    ) -> Vec<(usize, PlugProgress)> {
        let mut progress: Vec<(usize, PlugProgress, Option<Instant>)> = plugs
            .iter()
            .map(|&index| {
                (
                    index,
                    PlugProgress {
                        target: self.target.plugs[index].clone(),
                        state: PowerState::Unknown,
                        confirmed: None,
                        error: None,
                    },
                    None,
                )
            })
            .collect();
        let Some(switch) = self.devices.get(device) else {
            for (_, p, _) in &mut progress {
                let error = FenceError::UnknownDevice {
                    target: p.target.clone(),
                };
                self.step(Some(&p.target), StepKind::Failed(error.to_string()));
                p.error = Some(error);
            }
            return progress.into_iter().map(|(i, p, _)| (i, p)).collect();
        };
        for (_, p, accepted) in &mut progress {
            let result = self
                .bounded(
                    to.as_str(),
                    &p.target,
                    self.deadline,
                    switch.switch(&p.target.plug, to, self.deadline),
                )
                .await;
            match result {
                Ok(()) => {
                    self.step(Some(&p.target), StepKind::Accepted(to.as_str()));
                    *accepted = Some(Instant::now());
                    if !self.options.power_wait.is_zero() {
                        sleep_until((Instant::now() + self.options.power_wait).min(self.deadline))
                            .await;
                    }
                }
                Err(error) => {
                    self.step(Some(&p.target), StepKind::Failed(error.to_string()));
                    p.error = Some(error);
                }
            }
        }
        for (_, p, accepted) in &mut progress {
            let Some(accepted) = *accepted else { continue };
            let confirm_by = (accepted + self.options.power_timeout).min(self.deadline);
            let wanted = to.state();
            self.poll_until(switch, p, to.as_str(), accepted, confirm_by, |state| {
                state == wanted
            })
            .await;
        }
        progress.into_iter().map(|(i, p, _)| (i, p)).collect()
    }

    /// Reads a plug until `done` says yes or `confirm_by` passes. Read errors are
    /// retried until then (a busy device may answer the next poll), except those no
    /// retry can mend.
    async fn poll_until(
        &self,
        switch: &Arc<dyn PowerSwitch>,
        progress: &mut PlugProgress,
        action: &'static str,
        accepted: Instant,
        confirm_by: Instant,
        mut done: impl FnMut(PowerState) -> bool,
    ) {
        let mut pause = Duration::from_millis(50).min(self.options.poll_interval);
        // Whether a read since the command was accepted gave a state.
        let mut read_once = false;
        // The last read error the deadline did not cut off: it says why the reads
        // failed better than a last read the deadline cut short.
        let mut told: Option<DeviceError> = None;
        loop {
            // The last read may use what is left of the whole operation: a plug that
            // reaches its state exactly at `confirm_by` still counts.
            let read_by = if Instant::now() >= confirm_by {
                self.deadline
            } else {
                confirm_by.max(Instant::now() + pause).min(self.deadline)
            };
            let last_error = match self.read(switch, &progress.target, read_by).await {
                Ok(state) => {
                    progress.state = state;
                    read_once = true;
                    if done(state) {
                        progress.confirmed = Some(self.start.elapsed());
                        self.step(Some(&progress.target), StepKind::Confirmed(state));
                        return;
                    }
                    None
                }
                Err(error) => {
                    let permanent = matches!(
                        &error,
                        FenceError::Device {
                            cause: DeviceError::Auth(_)
                                | DeviceError::UnknownPlug { .. }
                                | DeviceError::AmbiguousPlug { .. }
                                | DeviceError::Unsupported(_)
                                | DeviceError::Refused(_),
                            ..
                        } | FenceError::UnknownDevice { .. }
                    );
                    if permanent {
                        self.step(Some(&progress.target), StepKind::Failed(error.to_string()));
                        progress.error = Some(error);
                        return;
                    }
                    Some(error)
                }
            };
            let now = Instant::now();
            if now >= confirm_by {
                // A last read cut off by the deadline says less than the reads
                // before it: the plug was still in their state.
                let cut_off = last_error.as_ref().is_some_and(timed_out);
                let error = match last_error {
                    Some(error) if !cut_off => error,
                    Some(error) if !read_once => match told.take() {
                        Some(cause) => FenceError::Unread {
                            target: progress.target.clone(),
                            action,
                            cause,
                            elapsed: now - accepted,
                        },
                        None => error,
                    },
                    _ => FenceError::NotConfirmed {
                        target: progress.target.clone(),
                        action,
                        state: progress.state,
                        elapsed: now - accepted,
                    },
                };
                self.step(Some(&progress.target), StepKind::Failed(error.to_string()));
                progress.error = Some(error);
                return;
            }
            if let Some(FenceError::Device { cause, .. }) = last_error.filter(|e| !timed_out(e)) {
                told = Some(cause);
            }
            sleep_until((now + pause).min(confirm_by)).await;
            pause = (pause * 3 / 2).min(self.options.poll_interval);
        }
    }

    async fn read(
        &self,
        switch: &Arc<dyn PowerSwitch>,
        target: &TargetPlug,
        by: Instant,
    ) -> Result<PowerState, FenceError> {
        let state = self
            .bounded("status", target, by, switch.status(&target.plug, by))
            .await?;
        self.step(Some(target), StepKind::Read(state));
        Ok(state)
    }

    /// Runs one device call, abandoning it at `by`.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        target: &TargetPlug,
        by: Instant,
        call: impl Future<Output = Result<T, DeviceError>>,
    ) -> Result<T, FenceError> {
        let started = Instant::now();
        match timeout_at(by, call).await {
            // `timeout_at` takes an answer that is ready when it looks, even past
            // `by`: an answer that came after the deadline is no answer in time (a
            // plug read off after it does not confirm the fence).
            Ok(Ok(_)) if Instant::now() > by => Err(FenceError::Deadline {
                target: target.clone(),
                operation,
                waited: started.elapsed(),
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(cause)) => Err(FenceError::Device {
                target: target.clone(),
                operation,
                cause,
            }),
            Err(_) => Err(FenceError::Deadline {
                target: target.clone(),
                operation,
                waited: started.elapsed(),
            }),
        }
    }

    /// Lets every device of the node end what it kept open for this operation
    /// ([`PowerSwitch::close`]), all at once, within [`CLOSE_GRACE`] and never past
    /// the deadline.
    async fn close_devices(&self) {
        let by = (Instant::now() + CLOSE_GRACE).min(self.deadline);
        let closing = self.groups().into_iter().filter_map(|(name, _)| {
            let switch = self.devices.get(&name)?;
            Some(async move {
                let _ = timeout_at(by, switch.close(by)).await;
            })
        });
        join_all(closing.collect()).await;
    }

    /// Plug indices grouped by device, in the order the devices first appear.
    fn groups(&self) -> Vec<(String, Vec<usize>)> {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, plug) in self.target.plugs.iter().enumerate() {
            match groups.iter_mut().find(|(device, _)| *device == plug.device) {
                Some((_, plugs)) => plugs.push(index),
                None => groups.push((plug.device.clone(), vec![index])),
            }
        }
        groups
    }

    async fn wait(&self, how_long: Duration, why: &'static str) {
        self.step(None, StepKind::Waiting(why, how_long));
        sleep_until((Instant::now() + how_long).min(self.deadline)).await;
    }

    fn fail(&self, outcome: &mut Outcome, error: FenceError) {
        self.step(Some(error.target()), StepKind::Failed(error.to_string()));
        outcome.errors.push(error);
    }

    fn note(&self, outcome: &mut Outcome, text: String) {
        self.step(None, StepKind::Note(text.clone()));
        outcome.notes.push(text);
    }

    fn step(&self, target: Option<&TargetPlug>, kind: StepKind) {
        let step = Step {
            elapsed: self.start.elapsed(),
            target: target.cloned(),
            kind,
        };
        let elapsed_ms = step.elapsed.as_millis() as u64;
        let device = step.target.as_ref().map(|t| t.device.as_str());
        let plug = step.target.as_ref().map(|t| t.plug.to_string());
        match &step.kind {
            StepKind::Failed(why) => {
                tracing::warn!(device, plug, elapsed_ms, "{why}")
            }
            StepKind::Read(state) => {
                tracing::debug!(device, plug, elapsed_ms, state = %state, "read")
            }
            StepKind::Accepted(what) => {
                tracing::info!(device, plug, elapsed_ms, action = *what, "accepted")
            }
            StepKind::Confirmed(state) => {
                tracing::info!(device, plug, elapsed_ms, state = %state, "confirmed")
            }
            StepKind::Waiting(why, how_long) => {
                tracing::info!(elapsed_ms, wait_ms = how_long.as_millis() as u64, "{why}")
            }
            StepKind::Note(text) => tracing::warn!(elapsed_ms, "{text}"),
        }
        if let Some(observer) = &self.options.observer {
            observer(&step);
        }
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "timeout",
        "the whole operation ends by this many seconds, whatever the devices do",
    )
    .ty(ParamType::Seconds)
    .default("50"),
    ParamSpec::new(
        "power_timeout",
        "seconds a plug may take to reach the state after the device accepted the command",
    )
    .ty(ParamType::Seconds)
    .default("20"),
    ParamSpec::new(
        "power_wait",
        "seconds to pause after each accepted command before reading it back",
    )
    .ty(ParamType::Seconds)
    .default("0"),
    ParamSpec::new(
        "poll_interval",
        "longest pause in seconds between two reads of a plug while waiting for it",
    )
    .aliases(&["stonith_status_sleep"])
    .ty(ParamType::Seconds)
    .default("0.5"),
    ParamSpec::new(
        "reboot_wait",
        "seconds to wait between the confirmed off and the on of a reboot",
    )
    .ty(ParamType::Seconds)
    .default("0"),
    ParamSpec::new(
        "delay",
        "seconds to wait before off or reboot (fence-race mitigation); part of timeout, \
         and refused when it leaves less than power_timeout to fence",
    )
    .ty(ParamType::Seconds)
    .default("0"),
    ParamSpec::new(
        "method",
        "reboot method: onoff (off, confirmed, then on) or cycle (the device's own power cycle)",
    )
    .short('m')
    .ty(ParamType::Select(&["onoff", "cycle"]))
    .default("onoff"),
    ParamSpec::new(
        "notify_command",
        "a command run (by /bin/sh) after each fence, with the outcome in FENCEKIT_* \
         environment variables; it cannot change the outcome",
    ),
    ParamSpec::new(
        "notify_timeout",
        "seconds the notify command may run before it is killed",
    )
    .ty(ParamType::Seconds)
    .default("5"),
];

/// The fence algorithm's own parameters, accepted by every power plugin's front
/// ends and in the `[fence]` table of a configuration file.
pub const SCHEMA: Schema = Schema {
    plugin: "fence",
    kind: PluginKind::Power,
    summary: "fence algorithm timing",
    description: "Timing and method of the fence algorithm.",
    url: "",
    multi_plug: false,
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: false,
};

impl FenceOptions {
    /// Options from parameters validated against [`SCHEMA`]; what is missing keeps
    /// its default.
    pub fn from_params(params: &Params) -> FenceOptions {
        let defaults = FenceOptions::default();
        FenceOptions {
            timeout: params.seconds("timeout").unwrap_or(defaults.timeout),
            power_timeout: params
                .seconds("power_timeout")
                .unwrap_or(defaults.power_timeout),
            poll_interval: params
                .seconds("poll_interval")
                .unwrap_or(defaults.poll_interval)
                .max(Duration::from_millis(10)),
            power_wait: params.seconds("power_wait").unwrap_or(defaults.power_wait),
            reboot_wait: params
                .seconds("reboot_wait")
                .unwrap_or(defaults.reboot_wait),
            delay: params.seconds("delay").unwrap_or(defaults.delay),
            method: params
                .text("method")
                .and_then(Method::parse)
                .unwrap_or(defaults.method),
            notify_command: params
                .text("notify_command")
                .filter(|c| !c.trim().is_empty())
                .map(str::to_string),
            notify_timeout: params
                .seconds("notify_timeout")
                .unwrap_or(defaults.notify_timeout),
            observer: None,
        }
        .without_power_timeout_if(
            params
                .text("disable_timeout")
                .and_then(crate::schema::parse_bool)
                .unwrap_or(false),
        )
    }

    /// fence-agents' `disable_timeout=true` takes away their own step timeouts and
    /// leaves the bound to Pacemaker. Here `timeout` bounds the whole run (ending
    /// before Pacemaker's own operation timeout): a plug may take until then to read
    /// back, `power_timeout` no longer cuts the wait short.
    fn without_power_timeout_if(mut self, disabled: bool) -> FenceOptions {
        if disabled {
            self.power_timeout = self.timeout;
        }
        self
    }

    /// Refuses timing that cannot work, naming the parameter: a `timeout` of zero, or
    /// a `delay` that leaves less than one `power_timeout` (at most half the timeout)
    /// for the fence itself. The delay is part of the timeout, so that the whole run stays
    /// inside Pacemaker's operation timeout (`pcmk_off_timeout`,
    /// `pcmk_reboot_timeout`, 60 s unless set); it is never cut short silently.
    pub fn check_timing(params: &Params) -> Result<(), String> {
        let options = FenceOptions::from_params(params);
        if options.timeout.is_zero() {
            return Err(
                "parameter `timeout`: must be more than 0 s (the whole operation ends by it)"
                    .into(),
            );
        }
        let configured_power_timeout = params
            .seconds("power_timeout")
            .unwrap_or(FenceOptions::default().power_timeout)
            .min(options.timeout / 2);
        if options.delay + configured_power_timeout > options.timeout {
            return Err(format!(
                "parameter `delay`: {} s of delay and {} s to switch and read back do not fit in \
                 timeout ({} s), which bounds the whole run including the delay; raise \
                 timeout (and Pacemaker's pcmk_off_timeout / pcmk_reboot_timeout above it) \
                 or lower delay",
                options.delay.as_secs_f64(),
                configured_power_timeout.as_secs_f64(),
                options.timeout.as_secs_f64()
            ));
        }
        // A pause after each command (and between a reboot's off and on) that
        // alone reaches the deadline leaves no read: refused here, not found out
        // at the deadline with the node left off.
        let waits = options.delay + options.power_wait + options.reboot_wait;
        let waiting = if !options.power_wait.is_zero() {
            Some("power_wait")
        } else if !options.reboot_wait.is_zero() {
            // A reboot that waits past the deadline between its off and its on
            // leaves the node off: refused here, as said above.
            Some("reboot_wait")
        } else {
            None
        };
        if let Some(name) = waiting.filter(|_| waits >= options.timeout) {
            return Err(format!(
                "parameter `{name}`: {} s of waiting (delay, power_wait, reboot_wait) \
                 leaves no time to read back within timeout ({} s); raise timeout or lower \
                 {name}",
                waits.as_secs_f64(),
                options.timeout.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// Whether `error` is a call the deadline (or its own time limit) cut short: a
/// device that stopped answering, or one that had no time to answer at all (an SNMP
/// read with no time left to send a request says "no answer").
fn timed_out(error: &FenceError) -> bool {
    match error {
        FenceError::Deadline { .. } => true,
        FenceError::Device { cause, .. } => cause.is_timeout(),
        _ => false,
    }
}

#[cfg(test)]
#[path = "fence_tests.rs"]
mod tests;
