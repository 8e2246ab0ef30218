//! The agent's side of net-snmp's `pass_persist` protocol (`man snmpd.conf`,
//! "pass_persist"), for the device emulators tests run behind `snmpd`: snmpd does the
//! SNMP (versions, communities, users, access control) and asks the program, line by
//! line on stdin, to `get`, `getnext` or `set` one object of its subtree.
//!
//! What every emulator shares lives here once: the dialogue ([`serve`]), exact and
//! next lookups over an object map ([`lookup`]), the answer format ([`answer`]), the
//! faults a device plays per plug ([`Fault`]) with their effect on an answer
//! ([`stall`], [`drop_connection`]), the state file written atomically ([`save`]),
//! and the command log a test judges by ([`CommandLog`]). The objects themselves,
//! and what a set does, are each emulator's.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ber::{dotted, Oid};

/// How an emulated plug (an outlet, a switch port) behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Obey,
    /// Accepts every command, never changes.
    Lie,
    /// Every answer about the plug takes this many milliseconds.
    Slow(u64),
    /// A command takes effect this many milliseconds later, the device saying so
    /// where it has a way to (an APC's command-pending object).
    Pending(u64),
    /// A command takes effect this many milliseconds later without a word.
    Delay(u64),
    /// Commands refused, the plug's objects absent.
    Error,
    /// A request about the plug is never answered.
    Hang,
    /// A command is carried out, then the program exits before answering.
    Drop,
}

impl Fault {
    /// `obey`, `lie`, `slow:MS`, `pending:MS`, `delay:MS`, `error`, `hang`, `drop`.
    pub fn parse(text: &str) -> Option<Fault> {
        match text.split_once(':') {
            None if text == "obey" => Some(Fault::Obey),
            None if text == "lie" => Some(Fault::Lie),
            None if text == "error" => Some(Fault::Error),
            None if text == "hang" => Some(Fault::Hang),
            None if text == "drop" => Some(Fault::Drop),
            Some(("delay", ms)) => ms.parse().ok().map(Fault::Delay),
            Some(("slow", ms)) => ms.parse().ok().map(Fault::Slow),
            Some(("pending", ms)) => ms.parse().ok().map(Fault::Pending),
            _ => None,
        }
    }

    /// The word [`Fault::parse`] reads back.
    pub fn word(self) -> String {
        match self {
            Fault::Obey => "obey".into(),
            Fault::Lie => "lie".into(),
            Fault::Slow(ms) => format!("slow:{ms}"),
            Fault::Pending(ms) => format!("pending:{ms}"),
            Fault::Delay(ms) => format!("delay:{ms}"),
            Fault::Error => "error".into(),
            Fault::Hang => "hang".into(),
            Fault::Drop => "drop".into(),
        }
    }
}

/// Milliseconds since the Unix epoch: the clock of state files and command logs.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A value as pass_persist prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i64),
    Text(String),
}

/// The answer to a `get` or `getnext` that found `name` holding `value`.
pub fn answer(name: &[u32], value: &Value) -> String {
    match value {
        Value::Integer(n) => format!("{}\ninteger\n{n}\n", dotted(name)),
        // A text that a line cannot carry (a NUL, a line end) goes as hex bytes.
        Value::Text(t) if t.bytes().any(|b| b < 0x20 || b == 0x7f) => {
            let hex: Vec<String> = t.bytes().map(|b| format!("{b:02x}")).collect();
            format!("{}\noctet\n{}\n", dotted(name), hex.join(" "))
        }
        Value::Text(t) => format!("{}\nstring\n{t}\n", dotted(name)),
    }
}

/// The answer when there is no such object (or nothing after it).
pub const NONE: &str = "NONE\n";

/// `get` (the object `name`) or `getnext` (the first object after it) in `map`.
pub fn lookup<'a, E>(map: &'a BTreeMap<Oid, E>, name: &Oid, next: bool) -> Option<(Oid, &'a E)> {
    if next {
        map.range((
            std::ops::Bound::Excluded(name.clone()),
            std::ops::Bound::Unbounded,
        ))
        .next()
        .map(|(k, v)| (k.clone(), v))
    } else {
        map.get(name).map(|v| (name.clone(), v))
    }
}

/// The type word and the value of a set's second line (`integer 2`, `string "x"`).
pub fn set_value(type_and_value: &str) -> (&str, &str) {
    let line = type_and_value.trim();
    let (kind, value) = line.split_once(' ').unwrap_or((line, ""));
    (kind, value.trim())
}

/// Holds an answer back as a `slow` plug's does; never returns for a `hang` one
/// (snmpd's request times out, the test's guard ends the program).
pub fn stall(fault: Option<Fault>) {
    match fault {
        Some(Fault::Slow(ms)) => std::thread::sleep(Duration::from_millis(ms)),
        Some(Fault::Hang) => loop {
            std::thread::sleep(Duration::from_secs(600));
        },
        _ => {}
    }
}

/// Ends the program without an answer when the plug `drop`s, as a dropped
/// connection does: snmpd sees its pass_persist program gone, answers the manager
/// with an error and starts the program again at the next request.
pub fn drop_connection(fault: Option<Fault>) {
    if fault == Some(Fault::Drop) {
        std::process::exit(1);
    }
}

/// Writes a state file atomically (a rename), so a reader never sees half a file.
pub fn save(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// An emulated device's state, kept in a text file between pass_persist requests, so
/// that a test reads the device's truth from the file, never through the manager.
pub trait DeviceState: Sized {
    fn parse(text: &str) -> Result<Self, String>;
    fn render(&self) -> String;
    /// Applies pending changes whose time (Unix milliseconds) has come.
    fn settle(&mut self, now: u64);

    fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text)
    }

    /// Writes the state atomically, so a reader never sees half a file.
    fn save(&self, path: &Path) -> Result<(), String> {
        save(path, &self.render())
    }
}

/// An emulator's state file and the log of the commands its device accepted.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    log: CommandLog,
}

impl StateFile {
    pub fn new(path: PathBuf) -> StateFile {
        StateFile {
            log: CommandLog::beside(&path),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log(&self) -> &CommandLog {
        &self.log
    }

    /// The device as it is now: its file, with the changes due by now applied.
    pub fn load<S: DeviceState>(&self) -> Result<S, String> {
        let mut state = S::load(&self.path)?;
        state.settle(now_ms());
        Ok(state)
    }

    pub fn save<S: DeviceState>(&self, state: &S) -> Result<(), String> {
        state.save(&self.path)
    }
}

/// The log of every command a device accepted, beside its state file (its name with
/// `.log` added), one `ACCEPTED_MS PLUG on|off EFFECTIVE_MS|-` line each (Unix
/// milliseconds; `-`: never), so that a test knows what the plug truly did and when.
#[derive(Debug, Clone)]
pub struct CommandLog {
    path: PathBuf,
}

impl CommandLog {
    /// The log beside `state`.
    pub fn beside(state: &Path) -> CommandLog {
        let mut name = state.as_os_str().to_owned();
        name.push(".log");
        CommandLog {
            path: PathBuf::from(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one accepted command; a test's record only, so a failure to write it
    /// changes nothing the manager sees.
    pub fn record(&self, plug: u32, on: bool, accepted: u64, effective: Option<u64>) {
        let effective = effective.map_or("-".to_string(), |ms| ms.to_string());
        let line = format!(
            "{accepted} {plug} {} {effective}\n",
            if on { "on" } else { "off" }
        );
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
}

/// An emulated device as the dialogue drives it.
pub trait Responder {
    /// Answers `get` (exact) or `getnext`: [`answer`] or [`NONE`].
    fn read(&self, name: &str, next: bool) -> String;
    /// Applies `set NAME` with `TYPE VALUE`: `DONE` or a pass_persist error word
    /// (`not-writable`, `wrong-type`, `wrong-value`), each with its newline.
    fn write(&self, name: &str, type_and_value: &str) -> String;
}

/// Runs the pass_persist dialogue with `device` until stdin closes.
pub fn serve(
    device: &impl Responder,
    input: impl BufRead,
    mut output: impl std::io::Write,
) -> std::io::Result<()> {
    let mut lines = input.lines();
    while let Some(line) = lines.next() {
        let line = line?;
        let reply = match line.trim() {
            "" => continue, // snmpd ends a set with an empty line
            "PING" => "PONG\n".to_string(),
            "get" | "getnext" => {
                let name = lines.next().transpose()?.unwrap_or_default();
                device.read(&name, line.trim() == "getnext")
            }
            "set" => {
                let name = lines.next().transpose()?.unwrap_or_default();
                let value = lines.next().transpose()?.unwrap_or_default();
                device.write(&name, &value)
            }
            _ => NONE.to_string(),
        };
        output.write_all(reply.as_bytes())?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_word_reads_back_as_itself() {
        for fault in [
            Fault::Obey,
            Fault::Lie,
            Fault::Slow(5),
            Fault::Pending(6),
            Fault::Delay(7),
            Fault::Error,
            Fault::Hang,
            Fault::Drop,
        ] {
            assert_eq!(Fault::parse(&fault.word()), Some(fault));
        }
        assert_eq!(Fault::parse("slow:x"), None);
        assert_eq!(Fault::parse("sometimes"), None);
    }

    #[test]
    fn getnext_finds_the_first_object_after_the_name_and_get_only_the_name() {
        let map: BTreeMap<Oid, u8> = [(vec![1, 3, 1], 1), (vec![1, 3, 2], 2)].into();
        assert_eq!(lookup(&map, &vec![1, 3], true), Some((vec![1, 3, 1], &1)));
        assert_eq!(
            lookup(&map, &vec![1, 3, 1], true),
            Some((vec![1, 3, 2], &2))
        );
        assert_eq!(lookup(&map, &vec![1, 3, 2], true), None);
        assert_eq!(lookup(&map, &vec![1, 3], false), None);
        assert_eq!(
            lookup(&map, &vec![1, 3, 2], false),
            Some((vec![1, 3, 2], &2))
        );
    }

    #[test]
    fn a_set_line_splits_into_its_type_and_value() {
        assert_eq!(set_value("integer 2\n"), ("integer", "2"));
        assert_eq!(set_value("string \"db 1\""), ("string", "\"db 1\""));
        assert_eq!(set_value("integer"), ("integer", ""));
    }
}
