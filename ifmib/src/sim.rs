//! A switch emulator for tests: IF-MIB interfaces behind net-snmp's `snmpd` as a
//! `pass_persist` program (for the interfaces group `.1.3.6.1.2.1.2` and ifMIB
//! `.1.3.6.1.2.1.31`, with snmpd's own IF-MIB modules left out), so that a port can
//! misbehave on purpose, which snmpd's IF-MIB over real interfaces never does.
//!
//! It serves ifNumber, and per interface ifIndex, ifDescr, ifAdminStatus (writable:
//! up(1), down(2)), ifOperStatus (following ifAdminStatus) and ifName. Interfaces
//! live in a state file re-read for every request and written after every change,
//! so a test can set faults and read the true port state while snmpd runs. Faults
//! per interface ([`Fault`]): `obey`; `lie` (a set is accepted, ifAdminStatus stays);
//! `slow:MS` (every answer about the interface takes MS milliseconds); `pending:MS`
//! (ifAdminStatus changes MS milliseconds after the set: IF-MIB has no pending
//! object, so this is a slow switch; `delay:MS` is the same); `error` (the
//! interface's rows absent, a set refused); `hang` (a request about the interface is
//! never answered); `drop` (a set is carried out, then the emulator exits before
//! answering: reads are answered, so that the manager gets as far as the set and
//! may read back what it did).
//!
//! Every set accepted is appended to the command log beside the state file
//! ([`CommandLog`]), up as `on` and down as `off`, so that a test knows what the port
//! truly did and when. The object numbers are written here from RFC 2863 on purpose
//! apart from [`crate::mib`], so that a wrong number in one does not hide in the
//! other.
//!
//! State file, one item a line (`#` comments):
//! ```text
//! interface 2 up obey - Gi1/0/2 GigabitEthernet1/0/2   # ifIndex admin fault pending ifName ifDescr...
//! ```
//! `pending` is `-` or `up@MS`/`down@MS`: the ifAdminStatus the port reaches at that
//! Unix time in milliseconds. An interface with no ifDescr text has no ifDescr row
//! (listed in ifXTable only); one whose ifName is `-` has no ifName row (listed in
//! ifTable only). A line `names unwalked` hides every ifName from GetNext (a walk of
//! the column finds nothing) while a Get still answers it. A line `oper up 3 7`
//! makes ports 3 and 7 read ifOperStatus up whatever their ifAdminStatus.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use fencekit_snmp::ber::{parse_dotted, Oid};
use fencekit_snmp::pass_persist::{
    self, answer, drop_connection, lookup, now_ms, set_value, stall, Responder, StateFile, Value,
    NONE,
};
pub use fencekit_snmp::pass_persist::{DeviceState, Fault};

/// One emulated port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimInterface {
    pub index: u32,
    /// ifName (ifXTable): one word.
    pub name: String,
    /// ifDescr: the rest of its line.
    pub descr: String,
    /// ifAdminStatus up.
    pub up: bool,
    pub fault: Fault,
    /// The ifAdminStatus the port will reach, and when (Unix milliseconds).
    pub pending: Option<(bool, u64)>,
}

/// The emulated switch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimSwitch {
    pub interfaces: Vec<SimInterface>,
    /// ifName answers a Get but never a GetNext (`names unwalked`): a walk of the
    /// column finds nothing, as an agent losing the whole column would show it.
    pub names_unwalked: bool,
    /// ifIndexes whose ifOperStatus reads up whatever ifAdminStatus says (`oper up
    /// N...`): a port that still passes traffic after it was set down.
    pub oper_stuck_up: Vec<u32>,
}

fn word(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

impl SimSwitch {
    /// A switch with ports `1..=count`, all up, obeying, named `GiN`/`portN`.
    pub fn new(count: u32) -> SimSwitch {
        SimSwitch {
            interfaces: (1..=count)
                .map(|n| SimInterface {
                    index: n,
                    name: format!("Gi{n}"),
                    descr: format!("port{n}"),
                    up: true,
                    fault: Fault::Obey,
                    pending: None,
                })
                .collect(),
            names_unwalked: false,
            oper_stuck_up: Vec::new(),
        }
    }

    pub fn interface(&self, index: u32) -> Option<&SimInterface> {
        self.interfaces.iter().find(|i| i.index == index)
    }
}

impl DeviceState for SimSwitch {
    fn parse(text: &str) -> Result<SimSwitch, String> {
        let mut switch = SimSwitch::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let bad = || format!("state line {}: cannot read `{line}`", n + 1);
            let state = |w: &str| match w {
                "up" => Ok(true),
                "down" => Ok(false),
                _ => Err(bad()),
            };
            let mut words = line.split_whitespace();
            match words.next() {
                None => {}
                Some("interface") => {
                    let index = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                    let up = state(words.next().unwrap_or(""))?;
                    let fault = words.next().and_then(Fault::parse).ok_or_else(bad)?;
                    let pending = match words.next().ok_or_else(bad)? {
                        "-" => None,
                        change => {
                            let (to, at) = change.split_once('@').ok_or_else(bad)?;
                            Some((state(to)?, at.parse().map_err(|_| bad())?))
                        }
                    };
                    let name = match words.next().ok_or_else(bad)? {
                        "-" => String::new(),
                        name => name.to_string(),
                    };
                    let descr = words.collect::<Vec<_>>().join(" ");
                    switch.interfaces.push(SimInterface {
                        index,
                        name,
                        descr,
                        up,
                        fault,
                        pending,
                    });
                }
                Some("names") if words.next() == Some("unwalked") => {
                    switch.names_unwalked = true;
                }
                Some("oper") if words.next() == Some("up") => {
                    for w in words {
                        switch.oper_stuck_up.push(w.parse().map_err(|_| bad())?);
                    }
                }
                Some(_) => return Err(bad()),
            }
        }
        Ok(switch)
    }

    fn render(&self) -> String {
        let mut header = String::new();
        if self.names_unwalked {
            header.push_str("names unwalked\n");
        }
        if !self.oper_stuck_up.is_empty() {
            let stuck: Vec<String> = self.oper_stuck_up.iter().map(u32::to_string).collect();
            header.push_str(&format!("oper up {}\n", stuck.join(" ")));
        }
        let lines: String = self
            .interfaces
            .iter()
            .map(|i| {
                let pending = i
                    .pending
                    .map_or("-".to_string(), |(up, at)| format!("{}@{at}", word(up)));
                format!(
                    "interface {} {} {} {pending} {} {}\n",
                    i.index,
                    word(i.up),
                    i.fault.word(),
                    if i.name.is_empty() { "-" } else { &i.name },
                    i.descr
                )
            })
            .collect();
        format!("{header}{lines}")
    }

    /// Applies pending changes whose time has come.
    fn settle(&mut self, now: u64) {
        for i in &mut self.interfaces {
            if let Some((up, at)) = i.pending {
                if now >= at {
                    i.up = up;
                    i.pending = None;
                }
            }
        }
    }
}

// RFC 2863: interfaces group and ifMIB.
const IF_NUMBER: &str = ".1.3.6.1.2.1.2.1.0";
const IF_INDEX: &str = ".1.3.6.1.2.1.2.2.1.1";
const IF_DESCR: &str = ".1.3.6.1.2.1.2.2.1.2";
const IF_ADMIN_STATUS: &str = ".1.3.6.1.2.1.2.2.1.7";
const IF_OPER_STATUS: &str = ".1.3.6.1.2.1.2.2.1.8";
const IF_NAME: &str = ".1.3.6.1.2.1.31.1.1.1.1";

/// How many arcs name a mib-2 group (`.1.3.6.1.2.1.G`): the subtree snmpd handed a
/// request from.
const GROUP_ARCS: usize = 7;

/// One object: its value, the interface it belongs to, and what asking for it does.
struct Entry {
    value: Value,
    interface: Option<usize>,
    /// ifAdminStatus: the one writable object.
    writable: bool,
}

fn oid(base: &str, index: u32) -> Oid {
    let mut o = parse_dotted(base).unwrap_or_default();
    o.push(index);
    o
}

fn objects(switch: &SimSwitch) -> BTreeMap<Oid, Entry> {
    let mut map = BTreeMap::new();
    map.insert(
        parse_dotted(IF_NUMBER).unwrap_or_default(),
        Entry {
            // Every interface the switch has, `error` ones included.
            value: Value::Integer(switch.interfaces.len() as i64),
            interface: None,
            writable: false,
        },
    );
    for (n, i) in switch.interfaces.iter().enumerate() {
        if i.fault == Fault::Error {
            continue;
        }
        let up_down = Value::Integer(if i.up { 1 } else { 2 });
        for (column, value, writable) in [
            (IF_INDEX, Value::Integer(i.index.into()), false),
            // An interface with no description is listed in ifXTable only, one with
            // no name in ifTable only (as an agent whose columns disagree).
            (IF_DESCR, Value::Text(i.descr.clone()), false),
            (IF_ADMIN_STATUS, up_down.clone(), true),
            // A port that is administratively down passes nothing (RFC 2863 §3.1.13),
            // unless the test made it one that does.
            (
                IF_OPER_STATUS,
                if switch.oper_stuck_up.contains(&i.index) {
                    Value::Integer(1)
                } else {
                    up_down
                },
                false,
            ),
            (IF_NAME, Value::Text(i.name.clone()), false),
        ] {
            if (column == IF_DESCR && i.descr.is_empty())
                || (column == IF_NAME && i.name.is_empty())
            {
                continue;
            }
            map.insert(
                oid(column, i.index),
                Entry {
                    value,
                    interface: Some(n),
                    writable,
                },
            );
        }
    }
    map
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

    /// Runs the pass_persist dialogue until stdin closes.
    pub fn serve(&self, input: impl BufRead, output: impl std::io::Write) -> std::io::Result<()> {
        pass_persist::serve(self, input, output)
    }
}

impl Responder for Emulator {
    /// A `getnext` stays inside the mib-2 group it was asked in: snmpd hands each
    /// registered subtree its own requests, and an answer from the next group would
    /// skip whatever snmpd serves between them.
    fn read(&self, name: &str, next: bool) -> String {
        let (Ok(switch), Some(name)) = (self.file.load::<SimSwitch>(), parse_dotted(name)) else {
            return NONE.into();
        };
        let map = objects(&switch);
        let group = &name[..name.len().min(GROUP_ARCS)];
        let if_name = parse_dotted(IF_NAME).unwrap_or_default();
        match lookup(&map, &name, next) {
            Some((k, _)) if next && switch.names_unwalked && k.starts_with(&if_name) => NONE.into(),
            Some((k, entry)) if k.starts_with(group) => {
                stall(
                    entry
                        .interface
                        .and_then(|n| switch.interfaces.get(n))
                        .map(|i| i.fault),
                );
                answer(&k, &entry.value)
            }
            _ => NONE.into(),
        }
    }

    fn write(&self, name: &str, type_and_value: &str) -> String {
        let (Ok(mut switch), Some(name)) = (self.file.load::<SimSwitch>(), parse_dotted(name))
        else {
            return "not-writable\n".into();
        };
        let map = objects(&switch);
        let Some(Entry {
            writable: true,
            interface: Some(n),
            ..
        }) = map.get(&name)
        else {
            return "not-writable\n".into();
        };
        let Some(i) = switch.interfaces.get_mut(*n) else {
            return "not-writable\n".into();
        };
        let fault = i.fault;
        stall(Some(fault));
        let (kind, value) = set_value(type_and_value);
        if kind != "integer" {
            return "wrong-type\n".into();
        }
        // testing(3) is a state a manager may ask for, but not of a fencing switch.
        let up = match value {
            "1" => true,
            "2" => false,
            _ => return "wrong-value\n".into(),
        };
        let now = now_ms();
        let effective = match fault {
            Fault::Lie => None,
            Fault::Pending(ms) | Fault::Delay(ms) => {
                i.pending = Some((up, now + ms));
                Some(now + ms)
            }
            _ => {
                i.up = up;
                i.pending = None;
                Some(now)
            }
        };
        let index = i.index;
        match self.file.save(&switch) {
            Ok(()) => {
                self.file.log().record(index, up, now, effective);
                drop_connection(Some(fault));
                "DONE\n".into()
            }
            Err(_) => "not-writable\n".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN_2: &str = ".1.3.6.1.2.1.2.2.1.7.2";

    fn emulator(switch: &SimSwitch) -> (tempfile::TempDir, Emulator) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switch.state");
        switch.save(&path).unwrap();
        (dir, Emulator::new(path))
    }

    fn state(dir: &tempfile::TempDir) -> SimSwitch {
        SimSwitch::load(&dir.path().join("switch.state")).unwrap()
    }

    #[test]
    fn state_files_round_trip() {
        let mut switch = SimSwitch::new(3);
        switch.interfaces[1].descr = "GigabitEthernet 1/0/2".into();
        switch.interfaces[1].fault = Fault::Pending(500);
        switch.interfaces[1].pending = Some((false, 12));
        switch.interfaces[2].up = false;
        assert_eq!(SimSwitch::parse(&switch.render()).unwrap(), switch);
    }

    #[test]
    fn the_dialogue_walks_the_interface_table_and_sets_a_port_down() {
        let (dir, emulator) = emulator(&SimSwitch::new(2));
        let input = format!(
            "PING\ngetnext\n.1.3.6.1.2.1.2.2.1.2\ngetnext\n.1.3.6.1.2.1.2.2.1.2.1\n\
             set\n{ADMIN_2}\ninteger 2\n\nget\n{ADMIN_2}\nget\n.1.3.6.1.2.1.2.2.1.8.2\n\
             getnext\n.1.3.6.1.2.1.31.1.1.1.1.1\n"
        );
        let mut out = Vec::new();
        emulator.serve(input.as_bytes(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "PONG\n.1.3.6.1.2.1.2.2.1.2.1\nstring\nport1\n\
                 .1.3.6.1.2.1.2.2.1.2.2\nstring\nport2\nDONE\n\
                 {ADMIN_2}\ninteger\n2\n.1.3.6.1.2.1.2.2.1.8.2\ninteger\n2\n\
                 .1.3.6.1.2.1.31.1.1.1.1.2\nstring\nGi2\n"
            )
        );
        assert!(!state(&dir).interface(2).unwrap().up);
        let log = std::fs::read_to_string(dir.path().join("switch.state.log")).unwrap();
        let words: Vec<&str> = log.split_whitespace().collect();
        assert_eq!(words[1..3], ["2", "off"]);
        assert_eq!(words[0], words[3], "an obeying port goes down at once");
    }

    #[test]
    fn a_getnext_never_leaves_the_group_it_was_asked_in() {
        let (_dir, emulator) = emulator(&SimSwitch::new(1));
        // After the last ifTable object comes ifMIB's ifName: another subtree.
        assert_eq!(emulator.read(".1.3.6.1.2.1.2.2.1.8.1", true), NONE);
        assert_eq!(emulator.read(".1.3.6.1.2.1.31.1.1.1.1.1", true), NONE);
        assert_eq!(
            emulator.read(".1.3.6.1.2.1.2", true),
            ".1.3.6.1.2.1.2.1.0\ninteger\n1\n"
        );
    }

    #[test]
    fn a_lying_port_accepts_down_and_stays_up_and_says_so_in_the_log() {
        let mut switch = SimSwitch::new(2);
        switch.interfaces[1].fault = Fault::Lie;
        let (dir, emulator) = emulator(&switch);
        assert_eq!(emulator.write(ADMIN_2, "integer 2"), "DONE\n");
        assert!(state(&dir).interface(2).unwrap().up);
        let log = std::fs::read_to_string(dir.path().join("switch.state.log")).unwrap();
        assert!(log.trim_end().ends_with("2 off -"), "{log}");
    }

    #[test]
    fn a_pending_port_changes_only_when_its_time_comes() {
        let mut switch = SimSwitch::new(2);
        switch.interfaces[1].fault = Fault::Pending(60_000);
        let (dir, emulator) = emulator(&switch);
        assert_eq!(emulator.write(ADMIN_2, "integer 2"), "DONE\n");
        assert_eq!(
            emulator.read(ADMIN_2, false),
            format!("{ADMIN_2}\ninteger\n1\n")
        );
        let mut later = state(&dir);
        let (_, at) = later.interface(2).unwrap().pending.unwrap();
        later.settle(at);
        assert!(!later.interface(2).unwrap().up);
    }

    #[test]
    fn an_erring_port_has_no_rows_and_refuses_sets_and_bad_values_are_refused() {
        let mut switch = SimSwitch::new(3);
        switch.interfaces[1].fault = Fault::Error;
        let (_dir, emulator) = emulator(&switch);
        assert_eq!(emulator.write(ADMIN_2, "integer 2"), "not-writable\n");
        assert_eq!(
            emulator.read(".1.3.6.1.2.1.2.2.1.2.1", true),
            ".1.3.6.1.2.1.2.2.1.2.3\nstring\nport3\n"
        );
        assert_eq!(
            emulator.read(".1.3.6.1.2.1.2.1.0", false),
            ".1.3.6.1.2.1.2.1.0\ninteger\n3\n"
        );
        let a3 = ".1.3.6.1.2.1.2.2.1.7.3";
        assert_eq!(emulator.write(a3, "integer 3"), "wrong-value\n");
        assert_eq!(emulator.write(a3, "string \"down\""), "wrong-type\n");
        assert_eq!(
            emulator.write(".1.3.6.1.2.1.2.2.1.8.3", "integer 2"),
            "not-writable\n"
        );
    }
}
