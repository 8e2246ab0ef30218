//! The fault matrix (see `fencekit_tests::matrix`): every power plugin, and the
//! fabric plugin `ifmib` (switch ports), against its real peer or simulator, × off, reboot (onoff and cycle), on, status, × the fence
//! agent, cluster-glue's `stonith` and `stonith-bridge fence`, × a device that obeys,
//! lies, is slow, reports pending, errors, hangs, drops the connection, is already
//! off, has two outlets of one name, or is one of two devices of which the other
//! lies. Each cell is judged by the simulator's own record of what happened. The
//! table is printed (run with `--nocapture` to see it on success) and written to
//! `TARGET/fault-matrix.txt`; the test fails when any cell fails.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Mutex;

use fencekit_tests::consoles::ConsoleRig;
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::matrix::{
    initially_on, judge, judge_refused_reboot, parse_log, truth_of, Action, Behaviour, DeviceSpec,
    FrontEnd, FrontEnds, Record, Row, SimFiles, Truth, CONSOLE_TIMEOUT_SECS, PAST_DEADLINE_MS,
    SLOW_IN_TIME_MS, TIMEOUT_SECS,
};
use fencekit_tests::peers;
use fencekit_tests::redfish::{Mode, Responder, ResponderOptions};
use fencekit_tests::snmpd::{Community, PassPersist, Snmpd, SnmpdOptions};
use fencekit_tests::toy::{self, ToyDevice};

/// Cells run at once: most of a cell's time is spent waiting for a deadline.
const WORKERS: usize = 10;

/// A cell's devices, ready: what the front ends get, how to read the truth, and
/// what must live until the cell is judged.
struct Prepared {
    devices: Vec<DeviceSpec>,
    truth: Box<dyn Fn() -> Truth + Send>,
    _keep: Box<dyn Any + Send>,
}

impl Prepared {
    /// A cell whose front ends get `devices` and whose oracle reads `records`, the
    /// node's plugs being `targets[i] = (record, plug)`, each starting in
    /// `initial`; the records and `keep` live until the cell is judged.
    fn new<D: Record + Send + Sync + 'static>(
        devices: Vec<DeviceSpec>,
        records: Vec<D>,
        targets: Vec<(usize, u32)>,
        initial: bool,
        keep: impl Any + Send,
    ) -> Prepared {
        let initial = vec![initial; targets.len()];
        Prepared {
            devices,
            truth: Box::new(move || {
                let refs: Vec<&dyn Record> = records.iter().map(|d| d as &dyn Record).collect();
                truth_of(&refs, &targets, &initial)
            }),
            _keep: Box::new(keep),
        }
    }
}

/// How many devices a cell of `behaviour` drives: two when the second one lies.
fn device_count(behaviour: Behaviour) -> usize {
    if behaviour == Behaviour::TwoDevicesOneLies {
        2
    } else {
        1
    }
}

/// The node's plugs on `count` devices: plug 2 of each of two devices, or `plugs`
/// of the one.
fn plug_targets(count: usize, plugs: &[u32]) -> Vec<(usize, u32)> {
    if count == 2 {
        vec![(0, 2), (1, 2)]
    } else {
        plugs.iter().map(|p| (0, *p)).collect()
    }
}

/// A plugin with its simulator.
trait Rig: Sync {
    /// The plugin's name, as the front ends take it.
    fn plugin(&self) -> &str;
    /// The label in the table.
    fn label(&self) -> &str {
        self.plugin()
    }
    /// The `timeout` of this plugin's runs.
    fn timeout_secs(&self) -> u64 {
        TIMEOUT_SECS
    }
    /// The external plugin directory, for `.so` plugins.
    fn plugin_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Whether fencekit reboots a node through this plugin: not through a fabric
    /// device, whose reboot cells must be refused with nothing switched.
    fn reboots(&self) -> bool {
        true
    }
    /// Fresh devices for one cell, or why the cell cannot exist.
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String>;
}

/// Names of a four-plug device; with duplicate names, plugs 2 and 3 are both `db1`.
fn names(behaviour: Behaviour) -> Vec<&'static str> {
    if behaviour == Behaviour::DuplicateNames {
        vec!["outlet-1", "db1", "db1", "outlet-4"]
    } else {
        vec!["outlet-1", "outlet-2", "outlet-3", "outlet-4"]
    }
}

/// The plug text naming the node's plug, and the plugs it truly designates.
fn target(behaviour: Behaviour) -> (&'static str, Vec<u32>) {
    if behaviour == Behaviour::DuplicateNames {
        ("db1", vec![2, 3])
    } else {
        ("2", vec![2])
    }
}

/// The two-device behaviour exists only where one run drives two devices.
fn two_devices_possible(front: FrontEnd, behaviour: Behaviour) -> Result<(), String> {
    if behaviour == Behaviour::TwoDevicesOneLies && front != FrontEnd::Fence {
        return Err("n/a: this front end drives one device per run (see the fence column)".into());
    }
    Ok(())
}

/// The script plugin and the external `.so` plugin share the toy device.
struct ToyRig {
    plugin: &'static str,
    label: &'static str,
    plugin_dir: Option<PathBuf>,
}

impl ToyRig {
    fn fault(behaviour: Behaviour) -> String {
        match behaviour {
            Behaviour::Obeys | Behaviour::AlreadyOff | Behaviour::DuplicateNames => "obey".into(),
            Behaviour::TwoDevicesOneLies => "obey".into(),
            Behaviour::Lies => "lie".into(),
            Behaviour::SlowInTime => format!("slow:{}", SLOW_IN_TIME_MS),
            Behaviour::SlowPastDeadline => {
                format!("slow:{}", PAST_DEADLINE_MS)
            }
            Behaviour::Pending => format!("pending:{}", PAST_DEADLINE_MS),
            Behaviour::Errors => "error".into(),
            Behaviour::Hangs => "hang".into(),
            Behaviour::Drops => "drop".into(),
        }
    }
}

impl Rig for ToyRig {
    fn plugin(&self) -> &str {
        self.plugin
    }
    fn label(&self) -> &str {
        self.label
    }
    fn plugin_dir(&self) -> Option<PathBuf> {
        self.plugin_dir.clone()
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        let dir = tempfile::Builder::new()
            .prefix("fencekit-matrix-toy-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let on = initially_on(action, behaviour);
        let names = names(behaviour);
        let (plug, plugs) = target(behaviour);
        let states = [true, on, if plugs.len() > 1 { on } else { true }, true];
        let count = device_count(behaviour);
        let mut devices = Vec::new();
        let mut specs = Vec::new();
        for d in 0..count {
            let fault = if d == 1 {
                "lie".to_string()
            } else {
                Self::fault(behaviour)
            };
            let device =
                ToyDevice::create(&dir.path().join(format!("dev{d}")), &names, &states, &fault);
            let params = match self.plugin {
                "script" => vec![(
                    "script".to_string(),
                    toy::write_script(device.dir()).display().to_string(),
                )],
                _ => vec![("state_dir".to_string(), device.dir().display().to_string())],
            };
            specs.push(DeviceSpec {
                plugin: self.plugin.to_string(),
                params,
                plug: Some(plug.to_string()),
                plugin_dir: self.plugin_dir.clone(),
            });
            devices.push(device);
        }
        let targets = plug_targets(count, &plugs);
        Ok(Prepared::new(specs, devices, targets, on, dir))
    }
}

/// The built-in `sim` plugin, its devices in state files.
struct SimRig;

impl SimRig {
    /// The parameters that make plug `plug` behave so.
    fn fault(behaviour: Behaviour, plug: &str) -> Vec<(String, String)> {
        let p = |k: &str, v: String| (k.to_string(), v);
        let secs = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
        match behaviour {
            Behaviour::Lies => vec![p("lying_plugs", plug.into())],
            Behaviour::SlowInTime => vec![p("off_delay", secs(SLOW_IN_TIME_MS))],
            Behaviour::SlowPastDeadline => vec![p("off_delay", secs(PAST_DEADLINE_MS))],
            Behaviour::Pending => vec![
                p("pending_plugs", plug.into()),
                p("off_delay", secs(PAST_DEADLINE_MS)),
            ],
            Behaviour::Errors => vec![p("failing_plugs", plug.into())],
            Behaviour::Hangs => vec![p("hanging_plugs", plug.into())],
            Behaviour::Drops => vec![p("dropping_plugs", plug.into())],
            _ => Vec::new(),
        }
    }
}

impl Rig for SimRig {
    fn plugin(&self) -> &str {
        "sim"
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        let dir = tempfile::Builder::new()
            .prefix("fencekit-matrix-sim-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let on = initially_on(action, behaviour);
        let (plug, plugs) = target(behaviour);
        let count = device_count(behaviour);
        let mut files = Vec::new();
        let mut specs = Vec::new();
        for d in 0..count {
            let sim = SimFiles {
                state: dir.path().join(format!("dev{d}.state")),
                log: dir.path().join(format!("dev{d}.log")),
            };
            let states: String = (1..=4u32)
                .map(|n| {
                    let target = plugs.contains(&n);
                    format!("{n} {}\n", if !target || on { "on" } else { "off" })
                })
                .collect();
            std::fs::write(&sim.state, states).map_err(|e| e.to_string())?;
            let mut params = vec![
                ("plugs".to_string(), "4".to_string()),
                ("names".to_string(), names(behaviour).join(",")),
                ("state_file".to_string(), sim.state.display().to_string()),
                ("command_log".to_string(), sim.log.display().to_string()),
            ];
            if d == 1 {
                params.push(("lying_plugs".into(), "2".into()));
            } else {
                params.extend(Self::fault(behaviour, "2"));
            }
            specs.push(DeviceSpec {
                plugin: "sim".into(),
                params,
                plug: Some(plug.to_string()),
                plugin_dir: None,
            });
            files.push(sim);
        }
        let targets = plug_targets(count, &plugs);
        Ok(Prepared::new(specs, files, targets, on, dir))
    }
}

/// The built-in `ipmi` plugin against OpenIPMI's `ipmi_sim`, one simulator per
/// device of each cell, its power program playing the behaviour.
struct IpmiRig;

/// The truth of one ipmi_sim: its power program's state file and event log.
struct IpmiRecord(IpmiSim);

impl Record for IpmiRecord {
    fn states(&self) -> Vec<(u32, bool)> {
        self.0
            .power_state()
            .map(|on| vec![(1, on)])
            .unwrap_or_default()
    }
    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        parse_log(&self.0.events_file())
    }
}

impl Rig for IpmiRig {
    fn plugin(&self) -> &str {
        "ipmi"
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        if behaviour == Behaviour::DuplicateNames {
            return Err("n/a: a BMC has one chassis and no outlet names".into());
        }
        let on = initially_on(action, behaviour);
        let power = match behaviour {
            Behaviour::Lies => PowerProgram::Stuck,
            Behaviour::SlowInTime => PowerProgram::Delayed {
                ms: SLOW_IN_TIME_MS,
            },
            Behaviour::SlowPastDeadline => PowerProgram::Delayed {
                ms: PAST_DEADLINE_MS,
            },
            Behaviour::Pending => PowerProgram::Pending {
                ms: PAST_DEADLINE_MS,
            },
            Behaviour::Errors => PowerProgram::Error,
            Behaviour::Hangs => PowerProgram::Hang,
            Behaviour::Drops => PowerProgram::Drop,
            _ => PowerProgram::Obey,
        };
        let count = device_count(behaviour);
        let mut sims = Vec::new();
        let mut specs = Vec::new();
        for d in 0..count {
            let options = IpmiSimOptions {
                power: if d == 1 { PowerProgram::Stuck } else { power },
                initially_on: on,
                ..IpmiSimOptions::default()
            };
            let password = options.password.clone();
            let sim = IpmiSim::start(options).map_err(|e| e.to_string())?;
            specs.push(DeviceSpec {
                plugin: "ipmi".into(),
                params: vec![
                    ("ip".into(), "127.0.0.1".into()),
                    ("ipport".into(), sim.port().to_string()),
                    ("username".into(), sim.user().to_string()),
                    ("password".into(), password),
                ],
                plug: None,
                plugin_dir: None,
            });
            sims.push(IpmiRecord(sim));
        }
        let targets: Vec<(usize, u32)> = (0..count).map(|d| (d, 1)).collect();
        Ok(Prepared::new(specs, sims, targets, on, ()))
    }
}

/// The built-in `redfish` plugin against our Redfish responder over verified HTTPS
/// (sushy-emulator's fake driver takes 1 to 11 s per change, at random: too slow and
/// too loose for a deadline matrix; the redfish suite runs it).
struct RedfishRig;

/// The truth of one responder: its state file and its events log.
struct RedfishRecord(Responder);

impl Record for RedfishRecord {
    fn states(&self) -> Vec<(u32, bool)> {
        // Only `Off` is off: `PoweringOff` still runs the node.
        self.0
            .power_state("System.Embedded.1")
            .map(|state| vec![(1, state != "Off")])
            .unwrap_or_default()
    }
    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        parse_log(&self.0.events_file())
    }
}

impl Rig for RedfishRig {
    fn plugin(&self) -> &str {
        "redfish"
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        if behaviour == Behaviour::DuplicateNames {
            return Err("n/a: a Redfish system is chosen by its unique Id".into());
        }
        let on = initially_on(action, behaviour);
        let (mode, delay) = match behaviour {
            Behaviour::Lies => (Mode::Stuck, 0),
            Behaviour::SlowInTime => (Mode::Obey, SLOW_IN_TIME_MS),
            Behaviour::SlowPastDeadline => (Mode::Obey, PAST_DEADLINE_MS),
            Behaviour::Pending => (Mode::Pending(PAST_DEADLINE_MS), 0),
            Behaviour::Errors => (Mode::Status(500), 0),
            Behaviour::Hangs => (Mode::Hang, 0),
            Behaviour::Drops => (Mode::Drop, 0),
            _ => (Mode::Obey, 0),
        };
        let count = device_count(behaviour);
        let mut services = Vec::new();
        let mut specs = Vec::new();
        for d in 0..count {
            let responder = Responder::start(&ResponderOptions {
                mode: if d == 1 { Mode::Stuck } else { mode.clone() },
                delay: std::time::Duration::from_millis(delay),
                initially_on: on,
                ..ResponderOptions::default()
            })
            .map_err(|e| e.to_string())?;
            specs.push(DeviceSpec {
                plugin: "redfish".into(),
                params: vec![
                    ("ip".into(), "127.0.0.1".into()),
                    ("ipport".into(), responder.port().to_string()),
                    ("username".into(), fencekit_tests::redfish::USER.into()),
                    ("password".into(), responder.password().to_string()),
                    (
                        "ssl_ca_file".into(),
                        responder.tls().ca.display().to_string(),
                    ),
                ],
                plug: None,
                plugin_dir: None,
            });
            services.push(RedfishRecord(responder));
        }
        let targets: Vec<(usize, u32)> = (0..count).map(|d| (d, 1)).collect();
        Ok(Prepared::new(specs, services, targets, on, ()))
    }
}

/// Where an emulator's state file keeps its plugs: lines that start with
/// `keyword`, with the plug's number, its state (`on_word` or another word) and
/// its changes to come (`-`, `STATE@MS` or `STATE@MS,STATE@MS`) in these columns.
#[derive(Debug, Clone, Copy)]
struct Layout {
    keyword: &'static str,
    number: usize,
    state: usize,
    pending: usize,
    on_word: &'static str,
}

impl Layout {
    /// Each plug's state at `now` (Unix ms), changes whose time came applied.
    fn states(self, text: &str, now: u64) -> Vec<(u32, bool)> {
        text.lines()
            .filter_map(|line| {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.first() != Some(&self.keyword) {
                    return None;
                }
                let n: u32 = w.get(self.number)?.parse().ok()?;
                let mut on = *w.get(self.state)? == self.on_word;
                for change in w.get(self.pending)?.split(',') {
                    if let Some((state, at)) = change.split_once('@') {
                        if at.parse::<u64>().is_ok_and(|at| now >= at) {
                            on = state == self.on_word;
                        }
                    }
                }
                Some((n, on))
            })
            .collect()
    }
}

/// One device emulated behind net-snmp's `snmpd` (an APC PDU, a switch): its snmpd
/// and state file (the command log beside it) and the file's layout.
struct Emulated {
    snmpd: Snmpd,
    state: PathBuf,
    layout: Layout,
    _dir: tempfile::TempDir,
}

impl Record for Emulated {
    fn states(&self) -> Vec<(u32, bool)> {
        let text = std::fs::read_to_string(&self.state).unwrap_or_default();
        self.layout.states(&text, fencekit_tests::matrix::now_ms())
    }
    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        let mut name = self.state.as_os_str().to_owned();
        name.push(".log");
        parse_log(std::path::Path::new(&name))
    }
}

/// Writes `state_text` to a fresh state file and starts `emulator` on it behind
/// net-snmp's `snmpd`, with a write community `private` and the emulator behind
/// `pass_persist` for each of `subtrees` (through a wrapper beside the state file,
/// as pass_persist takes a program without arguments), snmpd's own modules
/// `without` left out so that the emulator alone answers there.
fn emulated_agent(
    emulator: &std::path::Path,
    state_text: &str,
    layout: Layout,
    subtrees: &[&str],
    sys_object_id: Option<&str>,
    without: &[&str],
) -> Result<Emulated, String> {
    let dir = tempfile::Builder::new()
        .prefix("fencekit-matrix-snmp-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let state = dir.path().join("device.state");
    std::fs::write(&state, state_text).map_err(|e| e.to_string())?;
    let wrapper = fencekit_tests::snmpd::emulator_program(dir.path(), emulator, &state)
        .map_err(|e| e.to_string())?;
    let snmpd = Snmpd::start(SnmpdOptions {
        communities: vec![Community {
            name: "private".into(),
            write: true,
        }],
        pass_persist: subtrees
            .iter()
            .map(|oid| PassPersist {
                oid: oid.to_string(),
                program: wrapper.clone(),
            })
            .collect(),
        sys_object_id: sys_object_id.map(Into::into),
        without_modules: without.iter().map(|m| m.to_string()).collect(),
        ..SnmpdOptions::default()
    })
    .map_err(|e| e.to_string())?;
    Ok(Emulated {
        snmpd,
        state,
        layout,
        _dir: dir,
    })
}

/// A cell of an SNMP plugin whose devices are emulated: `start(fault, on)` makes
/// one device whose target plugs play `fault` and start `on`; with two devices the
/// second lies.
fn emulated_cell(
    plugin: &str,
    action: Action,
    behaviour: Behaviour,
    fault: &str,
    start: impl Fn(&str, bool) -> Result<Emulated, String>,
) -> Result<Prepared, String> {
    let on = initially_on(action, behaviour);
    let (plug, plugs) = target(behaviour);
    let count = device_count(behaviour);
    let mut devices = Vec::new();
    let mut specs = Vec::new();
    for d in 0..count {
        let device = start(if d == 1 { "lie" } else { fault }, on)?;
        specs.push(DeviceSpec {
            plugin: plugin.into(),
            params: vec![
                ("ip".into(), "127.0.0.1".into()),
                ("ipport".into(), device.snmpd.port().to_string()),
                ("community".into(), "private".into()),
                ("snmp_version".into(), "2c".into()),
            ],
            plug: Some(plug.to_string()),
            plugin_dir: None,
        });
        devices.push(device);
    }
    let targets = plug_targets(count, &plugs);
    Ok(Prepared::new(specs, devices, targets, on, ()))
}

/// The built-in `apc` plugin over SNMP against net-snmp's `snmpd` with fencekit's
/// PDU emulator behind pass_persist, one snmpd per device of each cell (a hanging
/// emulator stalls its snmpd).
struct ApcSnmpRig {
    emulator: PathBuf,
}

/// sysObjectID of an rPDU (AP78xx/79xx), PowerNet-MIB.
const RPDU: &str = ".1.3.6.1.4.1.318.1.3.4.5";

/// A PDU emulator's outlets: `outlet UNIT N on|off FAULT PENDING NAME`, PENDING
/// `-` or `on|off@MS[,on|off@MS]`.
const OUTLETS: Layout = Layout {
    keyword: "outlet",
    number: 2,
    state: 3,
    pending: 5,
    on_word: "on",
};

impl Rig for ApcSnmpRig {
    fn plugin(&self) -> &str {
        "apc"
    }
    fn label(&self) -> &str {
        "apc-snmp"
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        let fault = match behaviour {
            Behaviour::Lies => "lie".to_string(),
            Behaviour::SlowInTime => format!("delay:{SLOW_IN_TIME_MS}"),
            Behaviour::SlowPastDeadline => format!("delay:{PAST_DEADLINE_MS}"),
            Behaviour::Pending => format!("pending:{PAST_DEADLINE_MS}"),
            Behaviour::Errors => "error".into(),
            Behaviour::Hangs => "hang".into(),
            Behaviour::Drops => "drop".into(),
            _ => "obey".into(),
        };
        emulated_cell("apc", action, behaviour, &fault, |fault, on| {
            let (_, plugs) = target(behaviour);
            let mut text = String::from("family rpdu\nreboot_ms 1000\n");
            for (n, name) in (1u32..).zip(names(behaviour)) {
                let target = plugs.contains(&n);
                let state = if !target || on { "on" } else { "off" };
                let fault = if target { fault } else { "obey" };
                text.push_str(&format!("outlet 1 {n} {state} {fault} - {name}\n"));
            }
            emulated_agent(
                &self.emulator,
                &text,
                OUTLETS,
                &[".1.3.6.1.4.1.318"],
                Some(RPDU),
                &[],
            )
        })
    }
}

/// The built-in `ifmib` plugin (fabric fencing: a node's switch port) against
/// net-snmp's `snmpd` with its own IF-MIB modules left out and fencekit's switch
/// emulator behind pass_persist, one snmpd per switch of each cell. "Off" is
/// ifAdminStatus down(2). IF-MIB has no pending object: a port that switches late
/// reads its old state until it does, so the slow-past-deadline and pending cells
/// play the same device. A port cut resets nothing, so fencekit refuses a reboot
/// through it before anything is sent: those cells are judged by
/// [`judge_refused_reboot`].
struct IfmibRig {
    emulator: PathBuf,
}

/// snmpd 5.9's own IF-MIB: ifNumber and ifTable (`interfaces`, `ifTable`), ifXTable.
const IF_MIB_MODULES: [&str; 3] = ["interfaces", "ifTable", "ifXTable"];

/// A switch emulator's ports: `interface INDEX up|down FAULT PENDING IFNAME
/// IFDESCR`, PENDING `-` or `up|down@MS`.
const PORTS: Layout = Layout {
    keyword: "interface",
    number: 1,
    state: 2,
    pending: 4,
    on_word: "up",
};

impl Rig for IfmibRig {
    fn plugin(&self) -> &str {
        "ifmib"
    }
    fn reboots(&self) -> bool {
        false
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        let fault = match behaviour {
            Behaviour::Lies => "lie".to_string(),
            Behaviour::SlowInTime => format!("pending:{SLOW_IN_TIME_MS}"),
            Behaviour::SlowPastDeadline | Behaviour::Pending => {
                format!("pending:{PAST_DEADLINE_MS}")
            }
            Behaviour::Errors => "error".into(),
            Behaviour::Hangs => "hang".into(),
            Behaviour::Drops => "drop".into(),
            _ => "obey".into(),
        };
        emulated_cell("ifmib", action, behaviour, &fault, |fault, up| {
            let (_, plugs) = target(behaviour);
            let mut text = String::new();
            for n in 1u32..=4 {
                let target = plugs.contains(&n);
                let state = if !target || up { "up" } else { "down" };
                let fault = if target { fault } else { "obey" };
                // Two ports of one ifDescr and ifName (a stack whose members repeat it).
                let (name, descr) = if behaviour == Behaviour::DuplicateNames && target {
                    ("db1".to_string(), "db1".to_string())
                } else {
                    (format!("Gi1/0/{n}"), format!("GigabitEthernet1/0/{n}"))
                };
                text.push_str(&format!("interface {n} {state} {fault} - {name} {descr}\n"));
            }
            emulated_agent(
                &self.emulator,
                &text,
                PORTS,
                &[".1.3.6.1.2.1.2", ".1.3.6.1.2.1.31"],
                None,
                &IF_MIB_MODULES,
            )
        })
    }
}

/// A console plugin (APC console, Baytech) through a real `sshd` whose test users
/// each run the simulator with one fault. Cells of one behaviour share that user's
/// console one at a time (users are slow to make); each cell resets the outlets
/// and the command log first.
struct ConsoleRigFor {
    label: &'static str,
    plugin: &'static str,
    extra: Vec<(&'static str, &'static str)>,
    rig: ConsoleRig,
    /// The console index per fault word, and which consoles a cell is using.
    index: Vec<(&'static str, usize)>,
    slots: std::sync::Arc<Slots>,
}

/// Consoles in use by a cell.
struct Slots {
    busy: Mutex<Vec<bool>>,
    freed: std::sync::Condvar,
}

/// A cell's hold on its consoles, given back when the cell is judged.
struct Held {
    slots: std::sync::Arc<Slots>,
    taken: Vec<usize>,
}

impl Slots {
    /// Waits until every console of `wanted` is free, then holds them all at once
    /// (so that two cells never hold one each and wait for the other).
    fn hold(slots: &std::sync::Arc<Slots>, wanted: &[usize]) -> Held {
        let mut busy = slots.busy.lock().unwrap_or_else(|e| e.into_inner());
        while wanted.iter().any(|i| busy[*i]) {
            busy = slots.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        for i in wanted {
            busy[*i] = true;
        }
        Held {
            slots: slots.clone(),
            taken: wanted.to_vec(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut busy = self.slots.busy.lock().unwrap_or_else(|e| e.into_inner());
        for i in &self.taken {
            busy[*i] = false;
        }
        self.slots.freed.notify_all();
    }
}

/// The console faults, one user each.
const CONSOLE_FAULTS: [&str; 7] = [
    "obey",
    "lie",
    "delay:700",
    "delay:15000",
    "refuse",
    "silent",
    "drop-after",
];

/// One console's true state and log.
struct ConsoleRecord {
    state: fencekit_console::sim::OutletFile,
}

impl Record for ConsoleRecord {
    fn states(&self) -> Vec<(u32, bool)> {
        self.state
            .load()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.strip == 1)
            .map(|o| (o.number, o.on))
            .collect()
    }
    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        parse_log(&self.state.log_path())
    }
}

impl ConsoleRigFor {
    fn start(
        label: &'static str,
        plugin: &'static str,
        simulator: &str,
        mode: &'static str,
        extra: Vec<(&'static str, &'static str)>,
    ) -> ConsoleRigFor {
        let specs: Vec<(&str, Vec<&str>)> = CONSOLE_FAULTS
            .iter()
            .map(|f| (mode, if *f == "obey" { Vec::new() } else { vec![*f] }))
            .collect();
        let specs: Vec<(&str, &[&str])> = specs.iter().map(|(m, f)| (*m, f.as_slice())).collect();
        let rig = ConsoleRig::start(simulator, label, 1, &specs);
        ConsoleRigFor {
            label,
            plugin,
            extra,
            rig,
            index: CONSOLE_FAULTS.iter().copied().zip(0..).collect(),
            slots: std::sync::Arc::new(Slots {
                busy: Mutex::new(vec![false; CONSOLE_FAULTS.len()]),
                freed: std::sync::Condvar::new(),
            }),
        }
    }

    fn console(&self, fault: &str) -> usize {
        self.index
            .iter()
            .find(|(f, _)| *f == fault)
            .map_or(0, |(_, i)| *i)
    }

    /// Outlets 1-8 on and named `outlet-N` (plugs 2 and 3 `db1` for duplicate
    /// names), the target ones in state `on`; the log emptied; no session left.
    fn reset(&self, i: usize, behaviour: Behaviour, on: bool) -> Result<(), String> {
        let console = &self.rig.consoles[i];
        // A session of the previous cell may linger until its client is gone.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match fencekit_console::sim::SessionLock::try_take(&console.session_lock) {
                Ok(Some(_)) => break,
                _ if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => return Err("the previous session never ended".into()),
            }
        }
        let (_, plugs) = target(behaviour);
        let names = names(behaviour);
        for n in 1..=8u32 {
            let name = names
                .get(n as usize - 1)
                .map_or(format!("outlet-{n}"), |s| s.to_string());
            let state = !plugs.contains(&n) || on;
            console
                .state
                .set(1, n, state, Some(&name))
                .map_err(|e| e.to_string())?;
        }
        // The simulators run as the console's user and append to the log.
        let log = console.state.log_path();
        std::fs::write(&log, "").map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Rig for ConsoleRigFor {
    fn plugin(&self) -> &str {
        self.plugin
    }
    fn timeout_secs(&self) -> u64 {
        CONSOLE_TIMEOUT_SECS
    }
    fn label(&self) -> &str {
        self.label
    }
    fn prepare(
        &self,
        action: Action,
        behaviour: Behaviour,
        front: FrontEnd,
    ) -> Result<Prepared, String> {
        two_devices_possible(front, behaviour)?;
        let fault = match behaviour {
            Behaviour::Lies => "lie",
            Behaviour::SlowInTime => "delay:700",
            Behaviour::SlowPastDeadline => "delay:15000",
            Behaviour::Pending => {
                return Err("n/a: a console shows an outlet on or off, never pending".into())
            }
            Behaviour::Errors => "refuse",
            Behaviour::Hangs => "silent",
            Behaviour::Drops => "drop-after",
            _ => "obey",
        };
        let on = initially_on(action, behaviour);
        let consoles: Vec<usize> = if behaviour == Behaviour::TwoDevicesOneLies {
            vec![self.console("obey"), self.console("lie")]
        } else {
            vec![self.console(fault)]
        };
        let held = Slots::hold(&self.slots, &consoles);
        let (plug, plugs) = target(behaviour);
        let mut specs = Vec::new();
        let mut records = Vec::new();
        for i in &consoles {
            self.reset(*i, behaviour, on)?;
            // A lock directory per console: the plugin's lock serialises sessions
            // to one address and port, which all consoles of the rig share.
            let locks = self.rig.dir().join(format!("locks-{i}"));
            std::fs::create_dir_all(&locks).map_err(|e| e.to_string())?;
            let locks = locks.display().to_string();
            let mut extra = self.extra.clone();
            extra.push(("lock_dir", &locks));
            let params = self.rig.params(*i, &extra);
            specs.push(DeviceSpec {
                plugin: self.plugin.to_string(),
                params,
                plug: Some(plug.to_string()),
                plugin_dir: None,
            });
            records.push(ConsoleRecord {
                state: self.rig.consoles[*i].state.clone(),
            });
        }
        let targets = plug_targets(consoles.len(), &plugs);
        // No other cell uses these consoles until this one is judged.
        Ok(Prepared::new(specs, records, targets, on, held))
    }
}

/// Runs every cell of every rig, `WORKERS` at a time.
fn run_matrix(fronts: &FrontEnds, rigs: &[&dyn Rig]) -> Vec<Row> {
    // The rigs interleaved: cells that share a console (or wait for a deadline)
    // spread over the run instead of queueing at its end.
    let mut cells = Vec::new();
    for action in Action::ALL {
        for front in FrontEnd::ALL {
            for behaviour in Behaviour::ALL {
                for (r, _) in rigs.iter().enumerate() {
                    cells.push((r, action, front, behaviour));
                }
            }
        }
    }
    let queue = Mutex::new(cells);
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let Some((r, action, front, behaviour)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let rig = rigs[r];
                let verdict = match rig.prepare(action, behaviour, front) {
                    Err(why) if why.starts_with("n/a") => Ok(why),
                    Err(why) => Err(format!("cannot set the device up: {why}")),
                    Ok(prepared) => {
                        let ran = fronts.run(front, action, &prepared.devices, rig.timeout_secs());
                        let truth = (prepared.truth)();
                        if action.is_reboot() && !rig.reboots() {
                            judge_refused_reboot(&ran, &truth)
                        } else {
                            judge(front, action, behaviour, &ran, &truth)
                        }
                    }
                };
                rows.lock().unwrap().push(Row {
                    plugin: rig.label().to_string(),
                    action,
                    front,
                    behaviour,
                    verdict,
                });
            });
        }
    });
    rows.into_inner().unwrap()
}

#[test]
fn every_plugin_action_front_end_and_device_fault_is_judged_by_the_devices_true_state() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root("linking plugins into cluster-glue's plugin directory") {
        return;
    }
    let started = std::time::Instant::now();
    let script = ToyRig {
        plugin: "script",
        label: "script",
        plugin_dir: None,
    };
    let mut rigs: Vec<&dyn Rig> = vec![&script, &SimRig];
    if peers::require("ipmi_sim", "openipmi").is_some() {
        rigs.push(&IpmiRig);
    }
    if peers::require_all(&[("python3", "python3"), ("openssl", "openssl")]).is_some() {
        rigs.push(&RedfishRig);
    }
    let apc_snmp = peers::require("snmpd", "snmpd").map(|_| ApcSnmpRig {
        emulator: fencekit_tests::bridge::workspace_binary("fencekit-apc", "fencekit-apc-snmp-sim")
            .expect("build the APC emulator"),
    });
    if let Some(rig) = &apc_snmp {
        rigs.push(rig);
    }
    let ifmib = peers::require("snmpd", "snmpd").map(|_| IfmibRig {
        emulator: fencekit_tests::bridge::workspace_binary(
            "fencekit-ifmib",
            "fencekit-ifmib-snmp-sim",
        )
        .expect("build the IF-MIB emulator"),
    });
    if let Some(rig) = &ifmib {
        rigs.push(rig);
    }
    let consoles = fencekit_tests::consoles::peers_present().then(|| {
        let apc =
            fencekit_tests::bridge::workspace_binary("fencekit-apc", "fencekit-apc-console-sim")
                .expect("build the APC console simulator");
        let baytech =
            fencekit_tests::bridge::workspace_binary("fencekit-baytech", "fencekit-baytech-sim")
                .expect("build the Baytech simulator");
        (
            ConsoleRigFor::start(
                "apc-ssh",
                "apc",
                &apc.display().to_string(),
                "cli",
                vec![("transport", "ssh")],
            ),
            ConsoleRigFor::start(
                "baytech",
                "baytech",
                &baytech.display().to_string(),
                "direct",
                Vec::new(),
            ),
        )
    });
    if let Some((apc, baytech)) = &consoles {
        rigs.push(apc);
        rigs.push(baytech);
    }
    let plugin_dir = tempfile::Builder::new()
        .prefix("fencekit-matrix-plugins-")
        .tempdir()
        .expect("temporary directory");
    let library = fencekit_tests::bridge::workspace_library("fencekit-test-plugin-faulty")
        .expect("build the faulty test plugin");
    std::fs::copy(
        &library,
        plugin_dir.path().join("libfencekit_test_plugin_faulty.so"),
    )
    .expect("copy the plugin");
    let external = ToyRig {
        plugin: "test-faulty",
        label: "so",
        plugin_dir: Some(plugin_dir.path().to_path_buf()),
    };
    rigs.push(&external);
    let dirs: Vec<Option<PathBuf>> = rigs.iter().map(|r| r.plugin_dir()).collect();
    let links: Vec<(&str, Option<&std::path::Path>)> = rigs
        .iter()
        .zip(&dirs)
        .map(|(r, d)| (r.plugin(), d.as_deref()))
        .collect();
    let fronts = FrontEnds::new(stonith, &links);
    let setup = started.elapsed();
    let started = std::time::Instant::now();
    let rows = run_matrix(&fronts, &rigs);
    let table = fencekit_tests::matrix::table(&rows);
    let report = format!(
        "FAULT MATRIX (cells ran {:.0}s after {:.0}s of set-up)\n{table}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
    println!("{report}");
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe
            .parent()
            .and_then(|d| d.parent())
            .and_then(|d| d.parent())
        {
            let _ = std::fs::write(target.join("fault-matrix.txt"), &report);
        }
    }
    let failed = rows.iter().filter(|r| r.verdict.is_err()).count();
    assert_eq!(
        failed, 0,
        "{failed} cell(s) of the fault matrix failed:\n{table}"
    );
}
