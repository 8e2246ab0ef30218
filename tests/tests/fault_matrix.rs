//! The fault matrix (see `fencekit_tests::matrix`): every power plugin against its
//! real peer or simulator, × off, reboot (onoff and cycle), on, status, × the fence
//! agent, cluster-glue's `stonith` and `stonith-bridge fence`, × a device that obeys,
//! lies, is slow, reports pending, errors, hangs, drops the connection, is already
//! off, has two outlets of one name, or is one of two devices of which the other
//! lies. Each cell is judged by the simulator's own record of what happened. The
//! table is printed (run with `--nocapture` to see it on success) and written to
//! `TARGET/fault-matrix.txt`; the test fails when any cell fails.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Mutex;

use fencekit_tests::matrix::{
    initially_on, judge, Action, Behaviour, DeviceSpec, FrontEnd, FrontEnds, Row, Truth,
};
use fencekit_tests::peers;
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

/// A plugin with its simulator.
trait Rig: Sync {
    /// The plugin's name, as the front ends take it.
    fn plugin(&self) -> &str;
    /// The label in the table.
    fn label(&self) -> &str {
        self.plugin()
    }
    /// The external plugin directory, for `.so` plugins.
    fn plugin_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Fresh devices for one cell, or why the cell cannot exist.
    fn prepare(&self, action: Action, behaviour: Behaviour, front: FrontEnd)
        -> Result<Prepared, String>;
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
        return Err(
            "n/a: this front end drives one device per run (see the fence column)".into(),
        );
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
            Behaviour::SlowInTime => format!("slow:{}", fencekit_tests::matrix::SLOW_IN_TIME_MS),
            Behaviour::SlowPastDeadline => {
                format!("slow:{}", fencekit_tests::matrix::PAST_DEADLINE_MS)
            }
            Behaviour::Pending => format!("pending:{}", fencekit_tests::matrix::PAST_DEADLINE_MS),
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
        let count = if behaviour == Behaviour::TwoDevicesOneLies { 2 } else { 1 };
        let mut devices = Vec::new();
        let mut specs = Vec::new();
        for d in 0..count {
            let fault = if d == 1 { "lie".to_string() } else { Self::fault(behaviour) };
            let device = ToyDevice::create(&dir.path().join(format!("dev{d}")), &names, &states, &fault);
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
                plug: plug.to_string(),
                plugin_dir: self.plugin_dir.clone(),
            });
            devices.push(device);
        }
        let targets: Vec<(usize, u32)> = if count == 2 {
            vec![(0, 2), (1, 2)]
        } else {
            plugs.iter().map(|p| (0, *p)).collect()
        };
        let initial = vec![on; targets.len()];
        let devices = std::sync::Arc::new(devices);
        let for_truth = devices.clone();
        Ok(Prepared {
            devices: specs,
            truth: Box::new(move || {
                let refs: Vec<&ToyDevice> = for_truth.iter().collect();
                toy::truth(&refs, &targets, &initial)
            }),
            _keep: Box::new((dir, devices)),
        })
    }
}

/// Runs every cell of every rig, `WORKERS` at a time.
fn run_matrix(fronts: &FrontEnds, rigs: &[&dyn Rig]) -> Vec<Row> {
    let mut cells = Vec::new();
    for (r, _) in rigs.iter().enumerate() {
        for action in Action::ALL {
            for front in FrontEnd::ALL {
                for behaviour in Behaviour::ALL {
                    cells.push((r, action, front, behaviour));
                }
            }
        }
    }
    // The slow cells first, so that the quick ones fill the gaps at the end.
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
                        let ran = fronts.run(front, action, &prepared.devices);
                        let truth = (prepared.truth)();
                        judge(front, action, behaviour, &ran, &truth)
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
    let rigs: Vec<&dyn Rig> = vec![&script];
    let links: Vec<(&str, Option<&std::path::Path>)> = rigs.iter().map(|r| (r.plugin(), None)).collect();
    let fronts = FrontEnds::new(stonith, &links);
    let rows = run_matrix(&fronts, &rigs);
    let table = fencekit_tests::matrix::table(&rows);
    let report = format!(
        "FAULT MATRIX ({:.0}s)\n{table}",
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()) {
            let _ = std::fs::write(target.join("fault-matrix.txt"), &report);
        }
    }
    let failed = rows.iter().filter(|r| r.verdict.is_err()).count();
    assert_eq!(failed, 0, "{failed} cell(s) of the fault matrix failed:\n{table}");
}
