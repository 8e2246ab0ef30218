//! An APC PDU emulator for tests, run by net-snmp's `snmpd` as a `pass_persist`
//! program for the PowerNet subtree `.1.3.6.1.4.1.318`: snmpd does the SNMP (v1, v2c,
//! v3, communities, users, access control) and asks us, line by line on stdin, to
//! `get`, `getnext` or `set` one object (`man snmpd.conf`, "pass_persist").
//!
//! Outlets live in a state file that the emulator re-reads for every request and
//! writes after every change, so a test can set faults and read the true outlet
//! state while snmpd runs. Faults per outlet: `obey`; `lie` (accept every command,
//! never change); `slow:MS` (every answer about the outlet takes MS milliseconds);
//! `pending:MS` (a command stays pending for MS milliseconds, the state unchanged,
//! then takes effect); `delay:MS` (the same without saying pending: a slow power
//! supply); `error` (every command refused, the outlet's objects absent); `hang`
//! (a request about the outlet is never answered); `drop` (a command is carried out,
//! then the emulator exits before answering; a read of the outlet's objects ends it
//! too, as a connection that drops).
//!
//! Every command accepted is appended to `STATE.log` (the state file's name with
//! `.log` added) as `ACCEPTED_MS OUTLET on|off EFFECTIVE_MS|-` (Unix milliseconds,
//! `-`: never), so that a test knows what the outlet truly did and when.
//!
//! The object tables are written here from the PowerNet-MIB on purpose apart from
//! [`crate::profile`], so that a wrong number in one does not hide in the other.
//!
//! State file, one item a line (`#` comments):
//! ```text
//! family rpdu                      # rpdu | rpdu2 | masterswitch | masterswitchplus
//! reboot_ms 1000                   # how long an outlet reboot keeps it off
//! counts no                        # the outlet count left out (default yes)
//! outlet 1 1 on obey - db-1        # unit number state fault pending name...
//! ```
//! `pending` is `-` or `on@MS`/`off@MS`: the state the outlet reaches at that Unix time
//! in milliseconds; a second change may follow after a comma (`off@MS,on@MS`, a late
//! reboot).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use crate::profile::Family;
use fencekit_snmp::ber::{parse_dotted, Oid};
use fencekit_snmp::pass_persist::{
    self, answer, drop_connection, lookup, now_ms, set_value, stall, Responder, StateFile,
    Value as SimValue, NONE,
};
pub use fencekit_snmp::pass_persist::{DeviceState, Fault};

/// One emulated outlet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOutlet {
    /// The unit in a MasterSwitch Plus chain (the module of an rPDU2); 1 elsewhere.
    pub unit: u32,
    pub number: u32,
    pub name: String,
    pub on: bool,
    pub fault: Fault,
    /// The state the outlet will reach, and when (Unix milliseconds).
    pub pending: Option<(bool, u64)>,
    /// The change after `pending` (the on of a late reboot).
    pub then: Option<(bool, u64)>,
}

/// The emulated PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPdu {
    pub family: Family,
    pub reboot_ms: u64,
    pub outlets: Vec<SimOutlet>,
    /// Whether the unit answers its outlet count (`counts no`: older firmware).
    pub counts: bool,
}

impl SimPdu {
    /// A PDU of `family` with outlets `1..=count` on unit 1, all on, named `outlet-N`.
    pub fn new(family: Family, count: u32) -> SimPdu {
        SimPdu {
            family,
            reboot_ms: 1000,
            counts: true,
            outlets: (1..=count)
                .map(|n| SimOutlet {
                    unit: 1,
                    number: n,
                    name: format!("outlet-{n}"),
                    on: true,
                    fault: Fault::Obey,
                    pending: None,
                    then: None,
                })
                .collect(),
        }
    }

    pub fn outlet_mut(&mut self, unit: u32, number: u32) -> Option<&mut SimOutlet> {
        self.outlets
            .iter_mut()
            .find(|o| o.unit == unit && o.number == number)
    }

    pub fn outlet(&self, unit: u32, number: u32) -> Option<&SimOutlet> {
        self.outlets
            .iter()
            .find(|o| o.unit == unit && o.number == number)
    }
}

impl DeviceState for SimPdu {
    fn parse(text: &str) -> Result<SimPdu, String> {
        let mut pdu = SimPdu::new(Family::Rpdu, 0);
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let bad = || format!("state line {}: cannot read `{line}`", i + 1);
            let mut words = line.split_whitespace();
            match words.next() {
                None => {}
                Some("family") => {
                    pdu.family = words.next().and_then(Family::from_name).ok_or_else(bad)?
                }
                Some("reboot_ms") => {
                    pdu.reboot_ms = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?
                }
                Some("counts") => {
                    pdu.counts = match words.next() {
                        Some("yes") => true,
                        Some("no") => false,
                        _ => return Err(bad()),
                    }
                }
                Some("outlet") => {
                    let unit = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                    let number = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                    let on = match words.next() {
                        Some("on") => true,
                        Some("off") => false,
                        _ => return Err(bad()),
                    };
                    let fault = words.next().and_then(Fault::parse).ok_or_else(bad)?;
                    // `-`, `STATE@MS` or `STATE@MS,STATE@MS` (a change and the next).
                    let change = |p: &str| -> Result<(bool, u64), String> {
                        let (state, at) = p.split_once('@').ok_or_else(bad)?;
                        Ok((state == "on", at.parse().map_err(|_| bad())?))
                    };
                    let (pending, then) = match words.next() {
                        Some("-") => (None, None),
                        Some(p) => match p.split_once(',') {
                            Some((first, second)) => (Some(change(first)?), Some(change(second)?)),
                            None => (Some(change(p)?), None),
                        },
                        None => return Err(bad()),
                    };
                    let name = words.collect::<Vec<_>>().join(" ");
                    pdu.outlets.push(SimOutlet {
                        unit,
                        number,
                        name,
                        on,
                        fault,
                        pending,
                        then,
                    });
                }
                Some(_) => return Err(bad()),
            }
        }
        Ok(pdu)
    }

    fn render(&self) -> String {
        let mut out = format!(
            "family {}\nreboot_ms {}\n",
            self.family.name(),
            self.reboot_ms
        );
        if !self.counts {
            out.push_str("counts no\n");
        }
        for o in &self.outlets {
            let word = |(on, at): (bool, u64)| format!("{}@{at}", if on { "on" } else { "off" });
            let pending = match (o.pending, o.then) {
                (Some(first), Some(second)) => format!("{},{}", word(first), word(second)),
                (Some(first), None) => word(first),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "outlet {} {} {} {} {pending} {}\n",
                o.unit,
                o.number,
                if o.on { "on" } else { "off" },
                o.fault.word(),
                o.name
            ));
        }
        out
    }

    /// Applies pending changes whose time has come.
    fn settle(&mut self, now: u64) {
        for o in &mut self.outlets {
            while let Some((on, at)) = o.pending {
                if now < at {
                    break;
                }
                o.on = on;
                o.pending = o.then.take();
            }
        }
    }
}

/// What a writable object does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writable {
    Command,
    Name,
}

struct Entry {
    value: SimValue,
    write: Option<Writable>,
    outlet: usize,
}

fn oid(base: &str, instance: &[u32]) -> Oid {
    let mut o = parse_dotted(base).unwrap_or_default();
    o.extend_from_slice(instance);
    o
}

/// The PowerNet-MIB objects of every outlet, by family.
fn objects(pdu: &SimPdu) -> BTreeMap<Oid, Entry> {
    let mut map = BTreeMap::new();
    for (i, o) in pdu.outlets.iter().enumerate() {
        if o.fault == Fault::Error {
            continue;
        }
        // A delayed outlet changes late without saying so.
        let pending = o.pending.is_some() && !matches!(o.fault, Fault::Delay(_));
        let mut put = |base: &str, instance: &[u32], value: SimValue, write: Option<Writable>| {
            map.insert(
                oid(base, instance),
                Entry {
                    value,
                    write,
                    outlet: i,
                },
            );
        };
        let n = o.number;
        let on_off = |on: bool| SimValue::Integer(if on { 1 } else { 2 });
        let pend = SimValue::Integer(if pending { 1 } else { 2 });
        let name = || SimValue::Text(o.name.clone());
        match pdu.family {
            Family::Rpdu => {
                let i = [n];
                // rPDUOutletControlTable: Index, OutletName, OutletCommand
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.2", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
                    &i,
                    on_off(o.on),
                    Some(Writable::Command),
                );
                // rPDUOutletConfigTable: Index, OutletName (read-write)
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.4.1.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.4.1.1.2",
                    &i,
                    name(),
                    Some(Writable::Name),
                );
                // rPDUOutletConfigRebootDuration (seconds), which cluster-glue's
                // apcmastersnmp reads before it switches.
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.4.1.1.6",
                    &i,
                    SimValue::Integer(5),
                    None,
                );
                // rPDUOutletStatusTable: Index, OutletName, OutletState, CommandPending
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.12.3.5.1.1.2", &i, name(), None);
                put(".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4", &i, on_off(o.on), None);
                put(".1.3.6.1.4.1.318.1.1.12.3.5.1.1.5", &i, pend, None);
            }
            Family::Rpdu2 => {
                let i = [n];
                let (module, off_on) = (
                    SimValue::Integer(o.unit.into()),
                    SimValue::Integer(if o.on { 2 } else { 1 }),
                );
                // rPDU2OutletSwitchedConfigTable: Index, Module, Name (read-write), Number
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.1.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.1.1.2",
                    &i,
                    module.clone(),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.1.1.3",
                    &i,
                    name(),
                    Some(Writable::Name),
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.1.1.4",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                // rPDU2OutletSwitchedStatusTable: Index, Module, Name, Number, State (off 1,
                // on 2), CommandPending
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.2",
                    &i,
                    module.clone(),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.26.9.2.3.1.3", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.4",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.26.9.2.3.1.5", &i, off_on, None);
                put(".1.3.6.1.4.1.318.1.1.26.9.2.3.1.6", &i, pend.clone(), None);
                // rPDU2OutletSwitchedControlTable: Index, Module, Name, Number, Command
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.4.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.26.9.2.4.1.2", &i, module, None);
                put(".1.3.6.1.4.1.318.1.1.26.9.2.4.1.3", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.4.1.4",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.26.9.2.4.1.5",
                    &i,
                    on_off(o.on),
                    Some(Writable::Command),
                );
                // The older tables AP8xxx firmware keeps answering over the same outlets,
                // which fence_apc_snmp drives for this sysObjectID (its `ApcMS6`): the
                // state and name from sPDUOutletControlTable, the command written to
                // rPDUOutletControlOutletCommand.
                put(
                    ".1.3.6.1.4.1.318.1.1.4.4.2.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.4.4.2.1.2", &i, pend, None);
                put(".1.3.6.1.4.1.318.1.1.4.4.2.1.3", &i, on_off(o.on), None);
                put(".1.3.6.1.4.1.318.1.1.4.4.2.1.4", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.2", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
                    &i,
                    on_off(o.on),
                    Some(Writable::Command),
                );
            }
            Family::MasterSwitch => {
                let i = [n];
                // sPDUOutletControlTable: Index, Pending, Ctl, CtlName
                put(
                    ".1.3.6.1.4.1.318.1.1.4.4.2.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.4.4.2.1.2", &i, pend, None);
                put(
                    ".1.3.6.1.4.1.318.1.1.4.4.2.1.3",
                    &i,
                    on_off(o.on),
                    Some(Writable::Command),
                );
                put(".1.3.6.1.4.1.318.1.1.4.4.2.1.4", &i, name(), None);
                // sPDUOutletConfigTable: Index, ..., Name (read-write)
                put(
                    ".1.3.6.1.4.1.318.1.1.4.5.2.1.1",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.4.5.2.1.3",
                    &i,
                    name(),
                    Some(Writable::Name),
                );
            }
            Family::MasterSwitchPlus => {
                // Rows are .unit.1.outlet, as the units answer (fence_apc_snmp's
                // `.%d.1.%d`).
                let i = [o.unit, 1, n];
                let unit_name = SimValue::Text(format!("unit-{}", o.unit));
                // sPDUOutletControlMSPTable: Index, Name, OutletIndex, OutletName, OutletCommand
                // (reads immediateOnMSP 1 / immediateOffMSP 3)
                put(
                    ".1.3.6.1.4.1.318.1.1.6.5.1.1.1",
                    &i,
                    SimValue::Integer(o.unit.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.6.5.1.1.2",
                    &i,
                    unit_name.clone(),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.6.5.1.1.3",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.6.5.1.1.4", &i, name(), None);
                put(
                    ".1.3.6.1.4.1.318.1.1.6.5.1.1.5",
                    &i,
                    SimValue::Integer(if o.on { 1 } else { 3 }),
                    Some(Writable::Command),
                );
                // sPDUOutletConfigMSPallTable: Index, Name, OutletIndex, OutletName (read-write)
                put(
                    ".1.3.6.1.4.1.318.1.1.6.6.1.1.1.1",
                    &i,
                    SimValue::Integer(o.unit.into()),
                    None,
                );
                put(
                    ".1.3.6.1.4.1.318.1.1.6.6.1.1.1.4",
                    &i,
                    name(),
                    Some(Writable::Name),
                );
                // sPDUOutletStatusMSPTable: Index, Name, OutletIndex, OutletName, OutletState,
                // CommandPending
                put(
                    ".1.3.6.1.4.1.318.1.1.6.7.1.1.1",
                    &i,
                    SimValue::Integer(o.unit.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.6.7.1.1.2", &i, unit_name, None);
                put(
                    ".1.3.6.1.4.1.318.1.1.6.7.1.1.3",
                    &i,
                    SimValue::Integer(n.into()),
                    None,
                );
                put(".1.3.6.1.4.1.318.1.1.6.7.1.1.4", &i, name(), None);
                put(".1.3.6.1.4.1.318.1.1.6.7.1.1.5", &i, on_off(o.on), None);
                put(".1.3.6.1.4.1.318.1.1.6.7.1.1.6", &i, pend, None);
            }
        }
    }
    if pdu.counts {
        // How many outlets the unit has, `error` ones included (their rows are absent
        // from the tables): rPDUOutletDevNumCntrlOutlets, sPDUOutletControlTableSize
        // (also kept by rPDU2 firmware); per unit of a chain, with the number of units:
        // rPDU2DeviceTableSize and rPDU2DevicePropertiesNumSwitchedOutlets,
        // sPDUMasterStatusMSPTableSize and sPDUMasterStatusMSPOutletCount.
        let integer = |n: usize| Entry {
            value: SimValue::Integer(n as i64),
            write: None,
            outlet: usize::MAX,
        };
        let mut units: Vec<u32> = pdu.outlets.iter().map(|o| o.unit).collect();
        units.sort_unstable();
        units.dedup();
        let mut per_unit = |count_of_units: &str, column: &str| {
            map.insert(oid(count_of_units, &[]), integer(units.len()));
            for unit in &units {
                let n = pdu.outlets.iter().filter(|o| o.unit == *unit).count();
                map.insert(oid(column, &[*unit]), integer(n));
            }
        };
        match pdu.family {
            Family::Rpdu2 => per_unit(
                ".1.3.6.1.4.1.318.1.1.26.3.0",
                ".1.3.6.1.4.1.318.1.1.26.4.2.1.5",
            ),
            Family::MasterSwitchPlus => per_unit(
                ".1.3.6.1.4.1.318.1.1.6.4.1.0",
                ".1.3.6.1.4.1.318.1.1.6.4.2.1.3",
            ),
            Family::Rpdu | Family::MasterSwitch => {}
        }
        let total = integer(pdu.outlets.len());
        match pdu.family {
            Family::Rpdu => {
                // rPDUOutletDevNumCntrlOutlets, rPDUIdentDeviceNumOutlets and
                // rPDUIdentModelNumber (what cluster-glue's apcmastersnmp reads).
                map.insert(
                    oid(".1.3.6.1.4.1.318.1.1.12.1.8.0", &[]),
                    integer(pdu.outlets.len()),
                );
                map.insert(
                    oid(".1.3.6.1.4.1.318.1.1.12.1.5.0", &[]),
                    Entry {
                        value: SimValue::Text("AP7900".to_string()),
                        write: None,
                        outlet: usize::MAX,
                    },
                );
                map.insert(oid(".1.3.6.1.4.1.318.1.1.12.3.1.3.0", &[]), total);
            }
            Family::Rpdu2 | Family::MasterSwitch => {
                map.insert(oid(".1.3.6.1.4.1.318.1.1.4.4.1.0", &[]), total);
            }
            Family::MasterSwitchPlus => {}
        }
    }
    map
}

/// The command a written value means: Some(Some(on)) on/off, Some(None) reboot.
fn command(family: Family, value: i64) -> Option<Option<bool>> {
    match (family, value) {
        (Family::MasterSwitchPlus, 1) => Some(Some(true)), // immediateOnMSP
        (Family::MasterSwitchPlus, 3) => Some(Some(false)), // immediateOffMSP
        (Family::MasterSwitchPlus, 5) => Some(None),       // immediateRebootMSP
        (Family::MasterSwitchPlus, _) => None,
        (_, 1) => Some(Some(true)),  // immediateOn / outletOn
        (_, 2) => Some(Some(false)), // immediateOff / outletOff
        (_, 3) => Some(None),        // immediateReboot / outletReboot
        _ => None,
    }
}

/// The emulator: answers pass_persist requests against the state file.
pub struct Emulator {
    file: StateFile,
}

impl Emulator {
    pub fn new(state: PathBuf) -> Emulator {
        Emulator {
            file: StateFile::new(state),
        }
    }

    /// Answers `get` (exact) or `getnext` (the first object after `name`).
    pub fn read(&self, name: &str, next: bool) -> String {
        let (Ok(pdu), Some(name)) = (self.file.load::<SimPdu>(), parse_dotted(name)) else {
            return NONE.into();
        };
        let map = objects(&pdu);
        match lookup(&map, &name, next) {
            Some((k, entry)) => {
                // A read of a dropping outlet's objects ends the program too, as a
                // connection that drops.
                let fault = pdu.outlets.get(entry.outlet).map(|o| o.fault);
                stall(fault);
                drop_connection(fault);
                answer(&k, &entry.value)
            }
            None => NONE.into(),
        }
    }

    /// Applies `set NAME` with `TYPE VALUE`; answers DONE or a pass_persist error word.
    /// Every set that reaches the PDU, accepted or not, is recorded in `STATE.sets`
    /// (the object's name), so a test can see that a read-only operation wrote nothing.
    pub fn write(&self, name: &str, type_and_value: &str) -> String {
        let mut sets = self.file.path().as_os_str().to_owned();
        sets.push(".sets");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(sets))
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, format!("{}\n", name.trim()).as_bytes())
            });
        let (Ok(mut pdu), Some(name)) = (self.file.load::<SimPdu>(), parse_dotted(name)) else {
            return "not-writable\n".into();
        };
        let map = objects(&pdu);
        let Some(entry) = map.get(&name) else {
            return "not-writable\n".into();
        };
        let (Some(write), outlet) = (entry.write, entry.outlet) else {
            return "not-writable\n".into();
        };
        let fault = pdu.outlets.get(outlet).map(|o| o.fault);
        stall(fault);
        let (kind, value) = set_value(type_and_value);
        let family = pdu.family;
        let reboot_ms = pdu.reboot_ms;
        let Some(o) = pdu.outlets.get_mut(outlet) else {
            return "not-writable\n".into();
        };
        match write {
            Writable::Name => {
                if kind != "string" {
                    return "wrong-type\n".into();
                }
                let text = value
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(value);
                o.name = text.replace(['\n', '\r'], " ");
            }
            Writable::Command => {
                if kind != "integer" {
                    return "wrong-type\n".into();
                }
                let Some(cmd) = value.parse().ok().and_then(|v| command(family, v)) else {
                    return "wrong-value\n".into();
                };
                let now = now_ms();
                let number = o.number;
                let mut log = Vec::new();
                match (o.fault, cmd) {
                    (Fault::Lie, cmd) => log.push((cmd.unwrap_or(false), None)),
                    (Fault::Pending(ms) | Fault::Delay(ms), Some(on)) => {
                        o.pending = Some((on, now + ms));
                        o.then = None;
                        log.push((on, Some(now + ms)));
                    }
                    (_, Some(on)) => {
                        o.on = on;
                        o.pending = None;
                        o.then = None;
                        log.push((on, Some(now)));
                    }
                    (Fault::Pending(ms) | Fault::Delay(ms), None) => {
                        // A late reboot: off after the delay, on a reboot duration
                        // later.
                        o.pending = Some((false, now + ms));
                        o.then = Some((true, now + ms + reboot_ms));
                        log.push((false, Some(now + ms)));
                        log.push((true, Some(now + ms + reboot_ms)));
                    }
                    (_, None) => {
                        // A reboot: off now, on again after the reboot duration.
                        o.on = false;
                        o.pending = Some((true, now + reboot_ms));
                        o.then = None;
                        log.push((false, Some(now)));
                        log.push((true, Some(now + reboot_ms)));
                    }
                }
                for (on, effective) in log {
                    self.file.log().record(number, on, now, effective);
                }
            }
        }
        match self.file.save(&pdu) {
            Ok(()) => {
                drop_connection(fault);
                "DONE\n".into()
            }
            Err(_) => "not-writable\n".into(),
        }
    }

    /// Runs the pass_persist dialogue until stdin closes.
    pub fn serve(&self, input: impl BufRead, output: impl std::io::Write) -> std::io::Result<()> {
        pass_persist::serve(self, input, output)
    }
}

impl Responder for Emulator {
    fn read(&self, name: &str, next: bool) -> String {
        Emulator::read(self, name, next)
    }
    fn write(&self, name: &str, type_and_value: &str) -> String {
        Emulator::write(self, name, type_and_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulator(pdu: &SimPdu) -> (tempfile::TempDir, Emulator) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdu.state");
        pdu.save(&path).unwrap();
        (dir, Emulator::new(path))
    }

    #[test]
    fn state_files_round_trip() {
        let mut pdu = SimPdu::new(Family::MasterSwitchPlus, 2);
        pdu.outlets[1].name = "db 1".into();
        pdu.outlets[1].fault = Fault::Pending(500);
        pdu.outlets[0].pending = Some((false, 12));
        pdu.outlets[0].then = Some((true, 14));
        assert_eq!(SimPdu::parse(&pdu.render()).unwrap(), pdu);
    }

    #[test]
    fn the_dialogue_answers_ping_get_getnext_and_set() {
        let (dir, emulator) = emulator(&SimPdu::new(Family::Rpdu, 2));
        let input = "PING\nget\n.1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.1\n\
                     set\n.1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.1\ninteger 2\n\n\
                     get\n.1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.1\n\
                     getnext\n.1.3.6.1.4.1.318.1.1.12.3.5.1.1.2\n\
                     get\n.1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.9\n";
        let mut out = Vec::new();
        emulator.serve(input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "PONG\n.1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.1\ninteger\n1\nDONE\n\
             .1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.1\ninteger\n2\n\
             .1.3.6.1.4.1.318.1.1.12.3.5.1.1.2.1\nstring\noutlet-1\nNONE\n"
        );
        let pdu = SimPdu::load(&dir.path().join("pdu.state")).unwrap();
        assert!(!pdu.outlet(1, 1).unwrap().on);
    }

    #[test]
    fn a_lying_outlet_accepts_off_and_stays_on() {
        let mut pdu = SimPdu::new(Family::Rpdu2, 1);
        pdu.outlets[0].fault = Fault::Lie;
        let (dir, emulator) = emulator(&pdu);
        assert_eq!(
            emulator.write(".1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.1", "integer 2"),
            "DONE\n"
        );
        assert!(SimPdu::load(&dir.path().join("pdu.state")).unwrap().outlets[0].on);
    }

    #[test]
    fn read_only_objects_and_wrong_values_are_refused() {
        let (_dir, emulator) = emulator(&SimPdu::new(Family::MasterSwitchPlus, 1));
        assert_eq!(
            emulator.write(".1.3.6.1.4.1.318.1.1.6.7.1.1.5.1.1.1", "integer 2"),
            "not-writable\n"
        );
        // immediateOffMSP is 3; 2 is delayedOnMSP, which the emulator does not offer.
        assert_eq!(
            emulator.write(".1.3.6.1.4.1.318.1.1.6.5.1.1.5.1.1.1", "integer 2"),
            "wrong-value\n"
        );
        assert_eq!(
            emulator.write(".1.3.6.1.4.1.318.1.1.6.5.1.1.5.1.1.1", "string \"x\""),
            "wrong-type\n"
        );
        assert_eq!(
            emulator.write(".1.3.6.1.4.1.318.1.1.6.5.1.1.5.1.1.1", "integer 3"),
            "DONE\n"
        );
    }

    #[test]
    fn a_pending_outlet_changes_only_when_its_time_comes() {
        let mut pdu = SimPdu::new(Family::Rpdu, 1);
        pdu.outlets[0].pending = Some((false, 1_000));
        pdu.settle(999);
        assert!(pdu.outlets[0].on);
        pdu.settle(1_000);
        assert!(!pdu.outlets[0].on);
        assert_eq!(pdu.outlets[0].pending, None);
    }
}
