//! The fault matrix: every power plugin, against its real peer or simulator, driven
//! through every front end (the fence agent, cluster-glue, `stonith-bridge fence`)
//! for every action while the device misbehaves in one way, judged by an oracle that
//! reads the device's *true* state and command log from the simulator's side, never
//! through fencekit.
//!
//! A cell is one (plugin, action, front end, behaviour). Its run is checked against
//! the rules every cell shares, and against what its behaviour demands so that no
//! cell passes vacuously:
//! * a claim of success (exit 0, `Success`, fenced) after off or reboot means every
//!   plug was truly off at some moment of the run, and, for off, is still off;
//! * the run ends by its `timeout` plus [`DEADLINE_MARGIN`];
//! * after a reboot whose off phase failed (some plug never truly off), no plug was
//!   switched back on;
//! * obeying devices must succeed, lying ones must fail, and so on ([`expect`]).
//!
//! A fabric device (a switch port) never reboots a node: its reboot cells must be
//! refused with nothing switched ([`judge_refused_reboot`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bridge::{self, Installed};
use crate::system::SystemLink;

/// The fence algorithm's timing every cell runs with: short, so that the whole
/// matrix fits in a few minutes, and long enough for the slow-but-in-time devices.
pub const TIMEOUT_SECS: u64 = 4;
/// Console plugins log in over SSH for every read and command (about a second each
/// on a busy machine): their cells get this `timeout` instead.
pub const CONSOLE_TIMEOUT_SECS: u64 = 6;
pub const POWER_TIMEOUT_SECS: u64 = 2;
pub const POLL_INTERVAL: &str = "0.1";
/// How long after its deadline a run may still be going: process start-up and exit,
/// cluster-glue's own runner.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);
/// A slow device that is in time reaches the state after this long.
pub const SLOW_IN_TIME_MS: u64 = 700;
/// A slow device past the deadline, or a pending command, reaches it after this long.
pub const PAST_DEADLINE_MS: u64 = 15_000;

/// The node every cell fences.
pub const NODE: &str = "node1";

/// Milliseconds since the Unix epoch, the clock every simulator's log uses.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a cell asks the node's power to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Off,
    RebootOnOff,
    RebootCycle,
    On,
    Status,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Off,
        Action::RebootOnOff,
        Action::RebootCycle,
        Action::On,
        Action::Status,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::RebootOnOff => "reboot/onoff",
            Action::RebootCycle => "reboot/cycle",
            Action::On => "on",
            Action::Status => "status",
        }
    }

    pub fn is_reboot(self) -> bool {
        matches!(self, Action::RebootOnOff | Action::RebootCycle)
    }

    fn method(self) -> &'static str {
        if self == Action::RebootCycle {
            "cycle"
        } else {
            "onoff"
        }
    }
}

/// How the front end is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrontEnd {
    /// `fence_fencekit_<plugin>` with options on stdin.
    Agent,
    /// cluster-glue's `stonith -t external/fencekit-<plugin> -E`.
    Glue,
    /// `stonith-bridge fence -c TOML`.
    Fence,
}

impl FrontEnd {
    pub const ALL: [FrontEnd; 3] = [FrontEnd::Agent, FrontEnd::Glue, FrontEnd::Fence];

    pub fn label(self) -> &'static str {
        match self {
            FrontEnd::Agent => "agent",
            FrontEnd::Glue => "glue",
            FrontEnd::Fence => "fence",
        }
    }
}

/// How the device misbehaves during the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    Obeys,
    /// Accepts every command, never changes.
    Lies,
    /// Reaches the state [`SLOW_IN_TIME_MS`] after accepting the command.
    SlowInTime,
    /// Reaches it [`PAST_DEADLINE_MS`] after: past the run's deadline.
    SlowPastDeadline,
    /// Accepts; reads as pending or unknown for the whole run.
    Pending,
    /// Refuses with an error.
    Errors,
    /// Never answers.
    Hangs,
    /// Carries the command out, then the connection drops before the answer.
    Drops,
    /// The plug is off before the run.
    AlreadyOff,
    /// Two outlets carry the node's name; the node names its plug by that name.
    DuplicateNames,
    /// Two plugs on two devices; the second device lies.
    TwoDevicesOneLies,
}

impl Behaviour {
    pub const ALL: [Behaviour; 11] = [
        Behaviour::Obeys,
        Behaviour::Lies,
        Behaviour::SlowInTime,
        Behaviour::SlowPastDeadline,
        Behaviour::Pending,
        Behaviour::Errors,
        Behaviour::Hangs,
        Behaviour::Drops,
        Behaviour::AlreadyOff,
        Behaviour::DuplicateNames,
        Behaviour::TwoDevicesOneLies,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Behaviour::Obeys => "obeys",
            Behaviour::Lies => "lies",
            Behaviour::SlowInTime => "slow-in-time",
            Behaviour::SlowPastDeadline => "slow-past-deadline",
            Behaviour::Pending => "pending/unknown",
            Behaviour::Errors => "errors",
            Behaviour::Hangs => "hangs",
            Behaviour::Drops => "drops-mid-command",
            Behaviour::AlreadyOff => "already-off",
            Behaviour::DuplicateNames => "duplicate-names",
            Behaviour::TwoDevicesOneLies => "two-devices-one-lies",
        }
    }
}

/// The state the target plugs start in for a cell: off for `on` (so that on has
/// something to do) and for an already-off device, on otherwise.
pub fn initially_on(action: Action, behaviour: Behaviour) -> bool {
    !(action == Action::On || behaviour == Behaviour::AlreadyOff)
}

/// One command a simulator accepted: when, for which of the cell's target plugs
/// (index into the cell's plug list), to which state, and when the state was (or
/// will be) reached: `None` when never (a lying device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub accepted_ms: u64,
    pub plug: usize,
    pub on: bool,
    pub effective_ms: Option<u64>,
}

/// What the simulator says really happened to the cell's target plugs.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// The state of each target plug at the start of the run (true: on).
    pub initial: Vec<bool>,
    /// The state of each target plug read right after the run ended.
    pub now: Vec<bool>,
    /// Every command accepted during the run, in order.
    pub events: Vec<Event>,
    /// Plugs that are not targets but were switched (a wrong outlet).
    pub bystanders_switched: Vec<String>,
}

impl Truth {
    /// The state changes of `plug` in time order: commands superseded by a later
    /// command accepted before they took effect never happen.
    fn transitions(&self, plug: usize) -> Vec<(u64, bool)> {
        let mine: Vec<&Event> = self.events.iter().filter(|e| e.plug == plug).collect();
        let mut out: Vec<(u64, bool)> = mine
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let at = e.effective_ms?;
                // A device's own later step of one command (a reboot's on) shares
                // the command's accepted time and supersedes nothing.
                let superseded = mine[i + 1..]
                    .iter()
                    .any(|later| later.accepted_ms > e.accepted_ms && later.accepted_ms < at);
                (!superseded).then_some((at, e.on))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether `plug` was truly off at some moment in `[from, to]` (Unix ms).
    pub fn off_at_some_moment(&self, plug: usize, from: u64, to: u64) -> bool {
        let mut on = self.initial.get(plug).copied().unwrap_or(true);
        if !on {
            return true;
        }
        for (at, state) in self.transitions(plug) {
            if at > to {
                break;
            }
            on = state;
            if !on && at >= from.saturating_sub(1) {
                return true;
            }
        }
        false
    }

    /// Whether any "on" command was accepted in `[from, to]`.
    pub fn on_commands(&self, from: u64, to: u64) -> usize {
        self.events
            .iter()
            .filter(|e| e.on && e.accepted_ms + 1 >= from && e.accepted_ms <= to)
            .count()
    }

    /// Whether any command at all was accepted.
    pub fn any_command(&self) -> bool {
        !self.events.is_empty()
    }
}

/// A simulator's own record of one device: the plugs' true states now and every
/// command it accepted.
pub trait Record {
    /// The plugs' true states now (changes whose time came applied), by number.
    fn states(&self) -> Vec<(u32, bool)>;
    /// Every accepted command: (accepted ms, plug, on, effective ms or never).
    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)>;
}

/// Reads a command log of `ACCEPTED_MS PLUG on|off EFFECTIVE_MS|-` lines.
pub fn parse_log(path: &Path) -> Vec<(u64, u32, bool, Option<u64>)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            let accepted = w.next()?.parse().ok()?;
            let plug = w.next()?.parse().ok()?;
            let on = w.next()? == "on";
            let effective = w.next()?.parse().ok();
            Some((accepted, plug, on, effective))
        })
        .collect()
}

/// The `sim` plugin's files: its `state_file` (`N on|off [STATE@UNIX_MS]`) and
/// its `command_log`.
#[derive(Debug, Clone)]
pub struct SimFiles {
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Record for SimFiles {
    fn states(&self) -> Vec<(u32, bool)> {
        let text = std::fs::read_to_string(&self.state).unwrap_or_default();
        let now = now_ms();
        text.lines()
            .filter_map(|line| {
                let mut w = line.split_whitespace();
                let n: u32 = w.next()?.parse().ok()?;
                let mut on = w.next()? == "on";
                for change in w.take(2) {
                    if let Some((state, at)) = change.split_once('@') {
                        if at.parse::<u64>().is_ok_and(|at| now >= at) {
                            on = state == "on";
                        }
                    }
                }
                Some((n, on))
            })
            .collect()
    }

    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        parse_log(&self.log)
    }
}

/// The truth of a cell whose target plugs are `targets[i] = (device index, plug
/// number)` on `devices`, in states `initial` at the start. A command to a plug that
/// is no target is a bystander switched.
pub fn truth_of(devices: &[&dyn Record], targets: &[(usize, u32)], initial: &[bool]) -> Truth {
    let mut truth = Truth {
        initial: initial.to_vec(),
        ..Truth::default()
    };
    for (d, n) in targets {
        let on = devices[*d]
            .states()
            .into_iter()
            .find(|(p, _)| p == n)
            .map_or(true, |(_, on)| on);
        truth.now.push(on);
    }
    for (d, device) in devices.iter().enumerate() {
        for (accepted, plug, on, effective) in device.log() {
            match targets.iter().position(|t| *t == (d, plug)) {
                Some(index) => truth.events.push(Event {
                    accepted_ms: accepted,
                    plug: index,
                    on,
                    effective_ms: effective,
                }),
                None => truth
                    .bystanders_switched
                    .push(format!("device {d} plug {plug}")),
            }
        }
    }
    truth.events.sort_by_key(|e| e.accepted_ms);
    truth
}

/// One device of a cell as the front ends take it: plugin, parameters, the plug.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub plugin: String,
    pub params: Vec<(String, String)>,
    /// The node's plug on the device; `None` for a BMC, which has only the chassis.
    pub plug: Option<String>,
    /// An external plugin's directory (`FENCEKIT_PLUGIN_DIR`).
    pub plugin_dir: Option<PathBuf>,
}

/// What a run of a front end gave.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The `timeout` the run was given.
    pub timeout_secs: u64,
    pub code: Option<i32>,
    pub output: String,
    pub elapsed: Duration,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// What a run claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// off/reboot/on done (for reboot: fenced and back on).
    Done,
    /// reboot: fenced (all plugs confirmed off) but not back on.
    FencedNotOn,
    /// status: on.
    StatusOn,
    /// status: off.
    StatusOff,
    Failed,
}

/// Reads the claim from the exit code, as each front end documents it.
pub fn claim(front: FrontEnd, action: Action, code: Option<i32>) -> Claim {
    match (front, action, code) {
        (_, Action::Status, Some(0)) => Claim::StatusOn,
        // fence-agents: status 2 means off.
        (FrontEnd::Agent, Action::Status, Some(2)) => Claim::StatusOff,
        (FrontEnd::Fence, Action::Status, Some(7)) => Claim::StatusOff,
        (_, Action::Status, _) => Claim::Failed,
        (_, _, Some(0)) => Claim::Done,
        (FrontEnd::Fence, a, Some(3)) if a.is_reboot() => Claim::FencedNotOn,
        _ => Claim::Failed,
    }
}

/// What a behaviour demands of an action's outcome, beyond the shared rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Success,
    Failure,
    /// Status must say this (true: on).
    Status(bool),
    /// Either outcome may be right; the shared rules still judge it.
    Either,
}

/// The outcome a behaviour demands. Glue's status is the device's status (cluster-
/// glue has no node status): it must succeed when the device answers truthfully.
pub fn expect(front: FrontEnd, action: Action, behaviour: Behaviour) -> Expect {
    use Behaviour::*;
    if action == Action::Status {
        if front == FrontEnd::Glue {
            // cluster-glue's status is the device's own check, which need not touch
            // the faulty plug (an APC's check reads the agent, not the outlet).
            return match behaviour {
                Obeys | Lies | SlowInTime | SlowPastDeadline | AlreadyOff | DuplicateNames => {
                    Expect::Success
                }
                _ => Expect::Either,
            };
        }
        return match behaviour {
            Obeys | Lies | SlowInTime | SlowPastDeadline | TwoDevicesOneLies => {
                Expect::Status(true)
            }
            AlreadyOff => Expect::Status(false),
            // A device that shows pending only after a command may read fine before.
            Pending => Expect::Either,
            // Devices whose fault is in switching (a console that refuses or drops a
            // command) read fine; a read they answer is still judged by the truth.
            Errors | Drops => Expect::Either,
            // A device that never answers cannot give a state.
            Hangs => Expect::Failure,
            // Which of the two outlets?
            DuplicateNames => Expect::Failure,
        };
    }
    match behaviour {
        Obeys | SlowInTime => Expect::Success,
        AlreadyOff => Expect::Success,
        Lies | SlowPastDeadline | Pending | Errors | Hangs | DuplicateNames => Expect::Failure,
        TwoDevicesOneLies => Expect::Failure,
        // The command took effect; whether the plugin reconnects and reads it back in
        // time is its choice: the shared rules judge any success.
        Drops => Expect::Either,
    }
}

/// The verdict on one cell: `Ok(note)` passes, `Err(reason)` fails.
pub fn judge(
    front: FrontEnd,
    action: Action,
    behaviour: Behaviour,
    ran: &Ran,
    truth: &Truth,
) -> Result<String, String> {
    let claim = claim(front, action, ran.code);
    let timeout = ran.timeout_secs;
    let deadline = Duration::from_secs(timeout) + DEADLINE_MARGIN;
    let mut problems = Vec::new();
    if ran.elapsed > deadline {
        problems.push(format!(
            "ran {:.1}s, past the deadline {timeout}s + margin",
            ran.elapsed.as_secs_f64()
        ));
    }
    let plugs = truth.initial.len();
    let (from, to) = (ran.start_ms, ran.end_ms);
    let never_off: Vec<usize> = (0..plugs)
        .filter(|p| !truth.off_at_some_moment(*p, from, to))
        .collect();
    match (action, claim) {
        (Action::Off, Claim::Done) => {
            let still_on: Vec<usize> = (0..plugs).filter(|p| truth.now[*p]).collect();
            if !still_on.is_empty() {
                problems.push(format!(
                    "claimed off, yet plug(s) {still_on:?} truly on (FALSE FENCED)"
                ));
            }
        }
        (a, Claim::Done | Claim::FencedNotOn) if a.is_reboot() => {
            if !never_off.is_empty() {
                problems.push(format!(
                    "claimed rebooted, yet plug(s) {never_off:?} never truly off (FALSE FENCED)"
                ));
            }
            // Only `fence` promises "back on" with exit 0 (it has exit 3 for fenced
            // and still off); the agent and cluster-glue report fenced.
            if front == FrontEnd::Fence && claim == Claim::Done && truth.now.iter().any(|on| !on) {
                problems.push("claimed rebooted and on, yet a plug is truly off".into());
            }
        }
        (Action::On, Claim::Done) if truth.now.iter().any(|on| !on) => {
            problems.push("claimed on, yet a plug is truly off".into());
        }
        (Action::Status, Claim::StatusOn | Claim::StatusOff) if front != FrontEnd::Glue => {
            let said_on = claim == Claim::StatusOn;
            // fencekit's status: on when any plug is on.
            let truly_on = truth.now.iter().any(|on| *on);
            if said_on != truly_on {
                problems.push(format!(
                    "status said {}, truly {}",
                    if said_on { "on" } else { "off" },
                    if truly_on { "on" } else { "off" }
                ));
            }
        }
        _ => {}
    }
    // A power cycle's on is the device's own; after onoff's failed off phase, an on
    // can only have come from fencekit.
    if action == Action::RebootOnOff && !never_off.is_empty() {
        let ons = truth.on_commands(from, to);
        if ons > 0 {
            problems.push(format!(
                "off phase failed (plug(s) {never_off:?} never off), yet {ons} on command(s) sent"
            ));
        }
    }
    if !truth.bystanders_switched.is_empty() {
        problems.push(format!(
            "switched plugs that are not the node's: {:?}",
            truth.bystanders_switched
        ));
    }
    let expected = expect(front, action, behaviour);
    let success = matches!(claim, Claim::Done | Claim::StatusOn | Claim::StatusOff);
    match expected {
        Expect::Success if !success => {
            problems.push(format!("expected success, got exit {:?}", ran.code))
        }
        Expect::Failure if claim != Claim::Failed => problems.push(format!(
            "expected failure, got exit {:?} ({claim:?})",
            ran.code
        )),
        Expect::Status(on) => {
            let want = if on {
                Claim::StatusOn
            } else {
                Claim::StatusOff
            };
            if claim != want {
                problems.push(format!("expected status {want:?}, got exit {:?}", ran.code));
            }
        }
        _ => {}
    }
    if behaviour == Behaviour::DuplicateNames && truth.any_command() {
        problems.push("switched an outlet of an ambiguous name".into());
    }
    verdict(ran, "", problems)
}

/// A cell passes when `problems` is empty (its note led by `note`), and fails
/// naming them with the run's exit, time and last line of output.
fn verdict(ran: &Ran, note: &str, problems: Vec<String>) -> Result<String, String> {
    let run = format!("exit {:?} in {:.1}s", ran.code, ran.elapsed.as_secs_f64());
    if problems.is_empty() {
        Ok(format!("{note}{run}"))
    } else {
        Err(format!(
            "{} [{run}; output: {}]",
            problems.join("; "),
            summary(&ran.output)
        ))
    }
}

/// The verdict on a reboot through a fabric device (a switch port), which fencekit
/// refuses before anything is sent whatever the device does (a port cut resets
/// nothing, and a port let back at once would let a node that may still run back
/// onto the fabric): the run must fail, by its deadline, with no command accepted by
/// any device.
pub fn judge_refused_reboot(ran: &Ran, truth: &Truth) -> Result<String, String> {
    let mut problems = Vec::new();
    let deadline = Duration::from_secs(ran.timeout_secs) + DEADLINE_MARGIN;
    if ran.elapsed > deadline {
        problems.push(format!(
            "ran {:.1}s, past the deadline {}s + margin",
            ran.elapsed.as_secs_f64(),
            ran.timeout_secs
        ));
    }
    if ran.code == Some(0) {
        problems.push("a reboot through a fabric device claimed success".into());
    }
    if truth.any_command() || !truth.bystanders_switched.is_empty() {
        problems.push(format!(
            "a refused reboot switched ports: {} command(s) to the node's, {:?} others",
            truth.events.len(),
            truth.bystanders_switched
        ));
    }
    verdict(ran, "refused, ", problems)
}

/// The last informative line of a run's output, short.
fn summary(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(160).collect()
}

/// The installed binary, and the system links cluster-glue needs, for every cell.
pub struct FrontEnds {
    pub installed: Installed,
    pub stonith: PathBuf,
    // The wrappers of external plugins, which the links point to.
    _glue_dir: tempfile::TempDir,
    _links: Vec<SystemLink>,
}

impl FrontEnds {
    /// Installs the binary and links `external/fencekit-<plugin>` for each plugin
    /// (external ones through a wrapper naming their plugin directory).
    pub fn new(stonith: PathBuf, plugins: &[(&str, Option<&Path>)]) -> FrontEnds {
        let installed = Installed::new().expect("install stonith-bridge");
        let glue_dir = tempfile::Builder::new()
            .prefix("fencekit-matrix-glue-")
            .tempdir()
            .expect("temporary directory");
        let mut links = Vec::new();
        let mut linked = std::collections::BTreeSet::new();
        for (plugin, dir) in plugins {
            // Two rigs of one plugin (APC over SNMP and over SSH) share its link.
            if !linked.insert(*plugin) {
                continue;
            }
            let target = match dir {
                None => installed.external(plugin),
                Some(dir) => {
                    let wrapper = glue_dir.path().join(bridge::external_name(plugin));
                    std::fs::write(
                        &wrapper,
                        format!(
                            "#!/bin/sh\nFENCEKIT_PLUGIN_DIR='{}' exec '{}' external {plugin} \"$@\"\n",
                            dir.display(),
                            installed.binary().display()
                        ),
                    )
                    .expect("write wrapper");
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                        .expect("chmod wrapper");
                    wrapper
                }
            };
            let link =
                Path::new(crate::system::EXTERNAL_PLUGIN_DIR).join(bridge::external_name(plugin));
            links.push(SystemLink::create(&link, &target).expect("link the cluster-glue plugin"));
        }
        FrontEnds {
            installed,
            stonith,
            _glue_dir: glue_dir,
            _links: links,
        }
    }

    /// Runs `action` on the node whose plugs are `devices` (one plug each) through
    /// `front`.
    pub fn run(
        &self,
        front: FrontEnd,
        action: Action,
        devices: &[DeviceSpec],
        timeout_secs: u64,
    ) -> Ran {
        let limit = Duration::from_secs(timeout_secs * 4 + 10);
        let start_ms = now_ms();
        let started = std::time::Instant::now();
        let (code, output) = match front {
            FrontEnd::Agent => self.agent(action, &devices[0], timeout_secs, limit),
            FrontEnd::Glue => self.glue(action, &devices[0], timeout_secs, limit),
            FrontEnd::Fence => self.fence(action, devices, timeout_secs, limit),
        };
        let elapsed = started.elapsed();
        Ran {
            timeout_secs,
            code,
            output,
            elapsed,
            start_ms,
            end_ms: now_ms(),
        }
    }

    fn timing(timeout_secs: u64) -> Vec<(String, String)> {
        vec![
            ("timeout".into(), timeout_secs.to_string()),
            ("power_timeout".into(), POWER_TIMEOUT_SECS.to_string()),
            ("poll_interval".into(), POLL_INTERVAL.into()),
        ]
    }

    fn agent(
        &self,
        action: Action,
        device: &DeviceSpec,
        timeout_secs: u64,
        limit: Duration,
    ) -> (Option<i32>, String) {
        let mut command = if device.plugin_dir.is_some() {
            let mut c = Command::new(self.installed.binary());
            c.args(["fence-agent", &device.plugin]);
            c
        } else {
            Command::new(self.installed.agent(&device.plugin))
        };
        if let Some(dir) = &device.plugin_dir {
            command.env("FENCEKIT_PLUGIN_DIR", dir);
        }
        let verb = match action {
            Action::Off => "off",
            Action::RebootOnOff | Action::RebootCycle => "reboot",
            Action::On => "on",
            Action::Status => "status",
        };
        let mut stdin = format!("action={verb}\nmethod={}\n", action.method());
        if let Some(plug) = &device.plug {
            let _ = writeln!(stdin, "plug={plug}");
        }
        for (k, v) in Self::timing(timeout_secs).iter().chain(&device.params) {
            let _ = writeln!(stdin, "{k}={v}");
        }
        run_bounded(command, Some(stdin), limit)
    }

    fn glue(
        &self,
        action: Action,
        device: &DeviceSpec,
        timeout_secs: u64,
        limit: Duration,
    ) -> (Option<i32>, String) {
        let mut command = Command::new(&self.stonith);
        let plugin = format!("external/{}", bridge::external_name(&device.plugin));
        command
            .args(["-t", &plugin, "-E"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        match action {
            Action::Status => {
                command.arg("-S");
            }
            _ => {
                let verb = match action {
                    Action::Off => "off",
                    Action::On => "on",
                    _ => "reset",
                };
                command.args(["-T", verb, NODE]);
            }
        }
        match &device.plug {
            Some(plug) => command.env("hostmap", format!("{NODE}:{plug}")),
            None => command.env("hostlist", NODE),
        };
        command.env("method", action.method());
        for (k, v) in Self::timing(timeout_secs).iter().chain(&device.params) {
            command.env(k, v);
        }
        run_bounded(command, None, limit)
    }

    fn fence(
        &self,
        action: Action,
        devices: &[DeviceSpec],
        timeout_secs: u64,
        limit: Duration,
    ) -> (Option<i32>, String) {
        let dir = tempfile::Builder::new()
            .prefix("fencekit-matrix-fence-")
            .tempdir()
            .expect("temporary directory");
        let mut toml = String::from("[fence]\n");
        let _ = writeln!(toml, "timeout = {timeout_secs}");
        let _ = writeln!(toml, "power_timeout = {POWER_TIMEOUT_SECS}");
        let _ = writeln!(toml, "poll_interval = {POLL_INTERVAL}");
        let _ = writeln!(toml, "method = \"{}\"", action.method());
        let mut plugs = Vec::new();
        let mut plugin_dir = None;
        for (i, device) in devices.iter().enumerate() {
            let _ = writeln!(toml, "\n[devices.dev{i}]\nplugin = \"{}\"", device.plugin);
            for (k, v) in &device.params {
                let _ = writeln!(toml, "{k} = {}", toml_string(v));
            }
            plugs.push(match &device.plug {
                Some(plug) => format!("{{ device = \"dev{i}\", plug = {} }}", toml_string(plug)),
                None => format!("{{ device = \"dev{i}\" }}"),
            });
            if device.plugin_dir.is_some() {
                plugin_dir.clone_from(&device.plugin_dir);
            }
        }
        let _ = writeln!(toml, "\n[nodes.{NODE}]\nplugs = [{}]", plugs.join(", "));
        let config = dir.path().join("fencekit.toml");
        std::fs::write(&config, &toml).expect("write the configuration");
        // Private, as a configuration holding a password must be.
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("make the configuration private");
        let verb = match action {
            Action::Off => "off",
            Action::RebootOnOff | Action::RebootCycle => "reboot",
            Action::On => "on",
            Action::Status => "status",
        };
        let mut command = Command::new(self.installed.binary());
        command
            .arg("fence")
            .arg("-c")
            .arg(&config)
            .args(["-n", NODE, "-a", verb]);
        if let Some(dir) = plugin_dir {
            command.arg("--plugin-dir").arg(dir);
        }
        run_bounded(command, None, limit)
    }
}

fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `command` with `stdin`, killed (its process group) after `limit`; the exit
/// code and stdout then stderr.
pub fn run_bounded(
    mut command: Command,
    stdin: Option<String>,
    limit: Duration,
) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return (None, format!("cannot start: {e}")),
    };
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    });
    let out = child.wait_with_output();
    let _ = done_tx.send(());
    let _ = killer.join();
    match out {
        Ok(out) => (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (None, format!("cannot wait: {e}")),
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub plugin: String,
    pub action: Action,
    pub front: FrontEnd,
    pub behaviour: Behaviour,
    /// `Ok(note)`: passed; `Err(reason)`: failed; notes that start with `n/a` mark a
    /// cell that cannot exist (said why).
    pub verdict: Result<String, String>,
}

/// The table, one line per cell, failures marked, and a count.
pub fn table(rows: &[Row]) -> String {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by(|a, b| {
        (&a.plugin, a.action, a.front, a.behaviour).cmp(&(
            &b.plugin,
            b.action,
            b.front,
            b.behaviour,
        ))
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<13} {:<6} {:<21} {:<6} DETAIL",
        "PLUGIN", "ACTION", "FRONT", "BEHAVIOUR", "RESULT"
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        let (result, detail) = match &row.verdict {
            Ok(note) if note.starts_with("n/a") => ("n/a", note.as_str()),
            Ok(note) => ("pass", note.as_str()),
            Err(reason) => ("FAIL", reason.as_str()),
        };
        *counts.entry(result).or_default() += 1;
        let _ = writeln!(
            out,
            "{:<9} {:<13} {:<6} {:<21} {:<6} {detail}",
            row.plugin,
            row.action.label(),
            row.front.label(),
            row.behaviour.label(),
            result
        );
    }
    let _ = writeln!(
        out,
        "cells: {} pass, {} FAIL, {} n/a",
        counts.get("pass").unwrap_or(&0),
        counts.get("FAIL").unwrap_or(&0),
        counts.get("n/a").unwrap_or(&0)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(initial: bool, events: Vec<Event>, now: bool) -> Truth {
        Truth {
            initial: vec![initial],
            now: vec![now],
            events,
            bystanders_switched: Vec::new(),
        }
    }

    #[test]
    fn a_superseded_pending_change_never_happens() {
        let t = truth(
            true,
            vec![
                Event {
                    accepted_ms: 100,
                    plug: 0,
                    on: false,
                    effective_ms: Some(500),
                },
                Event {
                    accepted_ms: 200,
                    plug: 0,
                    on: true,
                    effective_ms: Some(200),
                },
            ],
            true,
        );
        assert!(!t.off_at_some_moment(0, 0, 1000));
    }

    #[test]
    fn an_off_that_took_effect_counts_and_a_lie_does_not() {
        let off = Event {
            accepted_ms: 100,
            plug: 0,
            on: false,
            effective_ms: Some(150),
        };
        assert!(truth(true, vec![off.clone()], false).off_at_some_moment(0, 0, 1000));
        assert!(!truth(true, vec![off], false).off_at_some_moment(0, 0, 120));
        let lie = Event {
            accepted_ms: 100,
            plug: 0,
            on: false,
            effective_ms: None,
        };
        assert!(!truth(true, vec![lie], true).off_at_some_moment(0, 0, 1000));
    }

    #[test]
    fn a_reboot_through_a_fabric_device_passes_only_when_refused_with_nothing_switched() {
        let ran = |code| Ran {
            timeout_secs: TIMEOUT_SECS,
            code: Some(code),
            output: String::new(),
            elapsed: Duration::from_millis(100),
            start_ms: 0,
            end_ms: 100,
        };
        let off = Event {
            accepted_ms: 10,
            plug: 0,
            on: false,
            effective_ms: Some(10),
        };
        assert!(judge_refused_reboot(&ran(1), &truth(true, Vec::new(), true)).is_ok());
        assert!(judge_refused_reboot(&ran(0), &truth(true, Vec::new(), true)).is_err());
        assert!(judge_refused_reboot(&ran(1), &truth(true, vec![off], false)).is_err());
    }

    #[test]
    fn a_claimed_off_with_the_plug_truly_on_fails_the_cell() {
        let ran = Ran {
            timeout_secs: TIMEOUT_SECS,
            code: Some(0),
            output: String::new(),
            elapsed: Duration::from_millis(100),
            start_ms: 0,
            end_ms: 100,
        };
        let verdict = judge(
            FrontEnd::Agent,
            Action::Off,
            Behaviour::Lies,
            &ran,
            &truth(true, Vec::new(), true),
        );
        assert!(verdict.unwrap_err().contains("FALSE FENCED"));
    }
}
