//! What the console simulators (APC menu and `apc>` CLI, Baytech RPC) share: a
//! terminal that reads keys and lines as a device does, outlet state kept in a
//! file (so that every SSH login, a process of its own, sees the same strip),
//! the one-session lock of single-session units, and the faults tests inject
//! (a lying outlet, a pager that never ends, silence, a dropped connection).
//!
//! Simulators run as the `ForceCommand` of a user of a real `sshd`, with the
//! session's PTY in raw mode (a device reads ESC and Ctrl-C as keys, not as
//! signals), or over any byte stream in unit tests.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use fencekit_core::PowerState;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A fault a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts on/off commands and reports success, but the outlet keeps its state.
    Lie,
    /// After a switch command, the "Press <ENTER> to continue" pager (or, on a
    /// command line, the answer) never ends: the pager comes back after every
    /// Enter (menus) or nothing more is said (command lines).
    StallPager,
    /// Shows the banner, then never a prompt.
    Silent,
    /// Closes the connection when a switch command arrives, before answering.
    Drop,
    /// Carries a switch command out, then closes the connection before answering.
    DropAfter,
    /// Takes this many milliseconds before carrying a switch command out (and
    /// answering); a session whose client left meanwhile ends without switching.
    Delay(u64),
    /// Refuses every switch command with an error message; nothing changes.
    Refuse,
    /// Once a switch command was taken (the command log is not empty), every
    /// listing runs its last row into the row before, as a line end and the text
    /// between lost: that row shows the last row's state, and the last row is gone.
    SpliceLast,
}

impl Fault {
    pub fn parse(text: &str) -> Option<Fault> {
        match text {
            "lie" => Some(Fault::Lie),
            "stall-pager" | "stall" => Some(Fault::StallPager),
            "silent" => Some(Fault::Silent),
            "drop" => Some(Fault::Drop),
            "drop-after" => Some(Fault::DropAfter),
            "refuse" => Some(Fault::Refuse),
            "splice-last" => Some(Fault::SpliceLast),
            _ => text
                .strip_prefix("delay:")
                .and_then(|ms| ms.parse().ok())
                .map(Fault::Delay),
        }
    }
}

/// How long an outlet reboot keeps the outlet off, as a real strip's reboot
/// duration does (shortened).
pub const REBOOT_MS: u64 = 1000;

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The command line every simulator takes:
/// `--state FILE [--lock FILE] [--fault NAME]... [--mode NAME] [--outlets N]
/// [--strips N]`.
#[derive(Debug, Clone, Default)]
pub struct SimArgs {
    pub state: PathBuf,
    pub lock: Option<PathBuf>,
    pub faults: Vec<Fault>,
    pub mode: Option<String>,
    pub outlets: Option<u32>,
    pub strips: Option<u32>,
    /// `--login USER:FILE`: the device asks for a login itself (a telnet
    /// session), the password being FILE's first line.
    pub login: Option<(String, PathBuf)>,
}

impl SimArgs {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<SimArgs, String> {
        let mut out = SimArgs::default();
        let mut state = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--state" => state = Some(PathBuf::from(value()?)),
                "--lock" => out.lock = Some(PathBuf::from(value()?)),
                "--fault" => {
                    let v = value()?;
                    out.faults
                        .push(Fault::parse(&v).ok_or_else(|| format!("unknown fault {v:?}"))?);
                }
                "--mode" => out.mode = Some(value()?),
                "--outlets" => {
                    out.outlets = Some(value()?.parse().map_err(|_| "bad --outlets".to_string())?)
                }
                "--strips" => {
                    out.strips = Some(value()?.parse().map_err(|_| "bad --strips".to_string())?)
                }
                "--login" => {
                    let v = value()?;
                    let (user, file) = v.split_once(':').ok_or("--login is USER:FILE")?;
                    out.login = Some((user.to_string(), PathBuf::from(file)));
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        out.state = state.ok_or("--state FILE is required")?;
        Ok(out)
    }

    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// `listed` as a listing shows it: for [`Fault::SpliceLast`], once a switch
    /// command was logged beside `outlets`, the last row's state goes to the row
    /// before and the last row is gone.
    pub fn as_listed(&self, outlets: &OutletFile, mut listed: Vec<SimOutlet>) -> Vec<SimOutlet> {
        let switched = std::fs::metadata(outlets.log_path()).is_ok_and(|m| m.len() > 0);
        if self.has(Fault::SpliceLast) && switched && listed.len() >= 2 {
            if let Some(last) = listed.pop() {
                if let Some(before) = listed.last_mut() {
                    before.on = last.on;
                }
            }
        }
        listed
    }

    /// Waits as a [`Fault::Delay`] says, before a switch command is carried out.
    /// The session ends (without switching) when its client is gone: sshd, our
    /// parent, has left.
    pub fn delay_switch(&self) {
        let Some(ms) = self.faults.iter().find_map(|f| match f {
            Fault::Delay(ms) => Some(*ms),
            _ => None,
        }) else {
            return;
        };
        let parent = std::os::unix::process::parent_id();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    }
}

/// One outlet of a simulated strip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOutlet {
    /// The strip (unit) it is on, 1-based; 1 for single-strip devices.
    pub strip: u32,
    pub number: u32,
    pub name: String,
    pub on: bool,
    /// When a reboot that left the outlet off brings it back on (Unix ms).
    pub back_on_at: Option<u64>,
}

/// Outlet state in a file shared by every session: lines
/// `strip<TAB>number<TAB>on|off<TAB>name`. Every access locks the file.
#[derive(Debug, Clone)]
pub struct OutletFile {
    path: PathBuf,
}

impl OutletFile {
    pub fn new(path: impl Into<PathBuf>) -> OutletFile {
        OutletFile { path: path.into() }
    }

    /// The command log beside the state file: its name with `.log` added.
    pub fn log_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".log");
        PathBuf::from(name)
    }

    /// Appends a switch command the simulator took to the log, as
    /// `ACCEPTED_MS OUTLET on|off EFFECTIVE_MS|-` (Unix milliseconds; `-`: the state
    /// never changes, a lie), for tests that check what the strip truly did. A
    /// failure to log changes nothing the client sees.
    pub fn log_command(&self, number: u32, on: bool, took_effect: bool) {
        self.log_command_after(number, on, took_effect.then_some(0));
    }

    /// Like [`OutletFile::log_command`] for a change that takes effect `after_ms`
    /// from now (`None`: never).
    pub fn log_command_after(&self, number: u32, on: bool, after_ms: Option<u64>) {
        let now = unix_ms();
        let effective = after_ms.map_or("-".to_string(), |ms| (now + ms).to_string());
        let line = format!(
            "{now} {number} {} {effective}\n",
            if on { "on" } else { "off" }
        );
        let _ = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }

    /// Writes a fresh file: `strips` strips of `outlets` outlets, all on, named
    /// "Outlet N".
    pub fn create(path: &Path, strips: u32, outlets: u32) -> io::Result<OutletFile> {
        let file = OutletFile::new(path);
        let mut all = Vec::new();
        for strip in 1..=strips {
            for number in 1..=outlets {
                all.push(SimOutlet {
                    strip,
                    number,
                    name: format!("Outlet {number}"),
                    on: true,
                    back_on_at: None,
                });
            }
        }
        file.store(&all)?;
        Ok(file)
    }

    fn open(&self) -> io::Result<Flock<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
    }

    fn parse(text: &str) -> Vec<SimOutlet> {
        text.lines()
            .filter_map(|line| {
                let mut parts = line.splitn(5, '\t');
                let strip = parts.next()?.parse().ok()?;
                let number = parts.next()?.parse().ok()?;
                let mut on = parts.next()? == "on";
                let name = parts.next().unwrap_or("").to_string();
                // `on@MS`: a reboot brings the outlet back on then.
                let mut back_on_at = parts
                    .next()
                    .and_then(|p| p.strip_prefix("on@"))
                    .and_then(|ms| ms.parse::<u64>().ok());
                if back_on_at.is_some_and(|at| unix_ms() >= at) {
                    on = true;
                    back_on_at = None;
                }
                Some(SimOutlet {
                    strip,
                    number,
                    name,
                    on,
                    back_on_at,
                })
            })
            .collect()
    }

    fn render(all: &[SimOutlet]) -> String {
        all.iter()
            .map(|o| {
                let back_on = o
                    .back_on_at
                    .map_or(String::new(), |at| format!("\ton@{at}"));
                format!(
                    "{}\t{}\t{}\t{}{back_on}\n",
                    o.strip,
                    o.number,
                    if o.on { "on" } else { "off" },
                    o.name
                )
            })
            .collect()
    }

    /// Every outlet, in file order.
    pub fn load(&self) -> io::Result<Vec<SimOutlet>> {
        let mut file = self.open()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(Self::parse(&text))
    }

    pub fn store(&self, all: &[SimOutlet]) -> io::Result<()> {
        let file = self.open()?;
        write_locked(file, &Self::render(all))
    }

    /// Changes outlets under the file's lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut Vec<SimOutlet>) -> T) -> io::Result<T> {
        let mut file = self.open()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut all = Self::parse(&text);
        let result = change(&mut all);
        write_locked(file, &Self::render(&all))?;
        Ok(result)
    }

    /// The state of outlet `number` on `strip`, for tests.
    pub fn state(&self, strip: u32, number: u32) -> io::Result<Option<PowerState>> {
        Ok(self
            .load()?
            .iter()
            .find(|o| o.strip == strip && o.number == number)
            .map(|o| {
                if o.on {
                    PowerState::On
                } else {
                    PowerState::Off
                }
            }))
    }

    /// Sets outlet `number` on `strip`, for tests.
    pub fn set(&self, strip: u32, number: u32, on: bool, name: Option<&str>) -> io::Result<()> {
        self.update(|all| {
            for o in all.iter_mut() {
                if o.strip == strip && o.number == number {
                    o.on = on;
                    o.back_on_at = None;
                    if let Some(name) = name {
                        o.name = name.to_string();
                    }
                }
            }
        })
    }
}

fn write_locked(mut file: Flock<File>, text: &str) -> io::Result<()> {
    use std::io::Seek;
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// The single console session of a unit: held while a simulator runs.
#[derive(Debug)]
pub struct SessionLock(#[allow(dead_code)] Flock<File>);

impl SessionLock {
    /// Takes the lock at `path`, or `None` when another session holds it.
    pub fn try_take(path: &Path) -> io::Result<Option<SessionLock>> {
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
        {
            // Made by another user: flock works on a read-only descriptor too.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path)?,
            other => other?,
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => Ok(Some(SessionLock(locked))),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e.into()),
        }
    }
}

/// What a device reads from its keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line ended by Enter (CR, LF or CR LF), without the ending.
    Line(String),
    Escape,
    CtrlC,
    /// The session closed.
    Eof,
}

/// A device's side of a terminal: echoes what is typed, as consoles do, and
/// writes `\r\n` line endings itself (the PTY is raw).
pub struct Term<R, W> {
    input: BufReader<R>,
    output: W,
    /// A CR was the last byte: a following LF belongs to it.
    after_cr: bool,
}

impl<R: Read, W: Write> Term<R, W> {
    pub fn new(input: R, output: W) -> Term<R, W> {
        Term {
            input: BufReader::new(input),
            output,
            after_cr: false,
        }
    }

    /// Writes `text`, turning every `\n` into `\r\n`.
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.output.write_all(text.as_bytes())?;
        self.output.flush()
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = match self.input.fill_buf() {
            Ok(buf) => buf,
            // A PTY whose other side closed reads EIO.
            Err(e) if e.raw_os_error() == Some(5) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        Ok(Some(b))
    }

    /// Reads a line, or a key that acts at once (ESC, Ctrl-C).
    pub fn read_input(&mut self) -> io::Result<Input> {
        let mut line = Vec::new();
        loop {
            let Some(b) = self.byte()? else {
                return Ok(Input::Eof);
            };
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr && line.is_empty() => continue,
                b'\r' | b'\n' => {
                    self.say("\n")?;
                    return Ok(Input::Line(String::from_utf8_lossy(&line).into_owned()));
                }
                0x1b => return Ok(Input::Escape),
                0x03 => return Ok(Input::CtrlC),
                0x08 | 0x7f if line.pop().is_some() => {
                    self.output.write_all(b"\x08 \x08")?;
                    self.output.flush()?;
                }
                b if b >= 0x20 => {
                    line.push(b);
                    self.output.write_all(&[b])?;
                    self.output.flush()?;
                }
                _ => {}
            }
        }
    }

    /// Reads a line typed without echo, a `*` shown for each character (a
    /// password), or `None` if the session closed first.
    pub fn read_hidden(&mut self) -> io::Result<Option<String>> {
        let mut line = Vec::new();
        loop {
            let Some(b) = self.byte()? else {
                return Ok(None);
            };
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr && line.is_empty() => continue,
                b'\r' | b'\n' => {
                    self.say("\n")?;
                    return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                }
                b if b >= 0x20 => {
                    line.push(b);
                    self.output.write_all(b"*")?;
                    self.output.flush()?;
                }
                _ => {}
            }
        }
    }

    /// Reads and discards input until the session closes (a device gone silent).
    pub fn ignore_until_eof(&mut self) -> io::Result<()> {
        while self.byte()?.is_some() {}
        Ok(())
    }
}

/// The device's own login, for a session SSH did not authenticate (telnet): `User
/// Name :`, then `Password  :` (shown as `*`), checked against `--login`. Whether
/// the session may go on; a wrong login is told, and the session ends.
pub fn login<R: Read, W: Write>(args: &SimArgs, term: &mut Term<R, W>) -> io::Result<bool> {
    let Some((user, file)) = &args.login else {
        return Ok(true);
    };
    let expected = std::fs::read_to_string(file)?;
    let expected = expected.lines().next().unwrap_or("");
    term.say("\nUser Name : ")?;
    let Input::Line(name) = term.read_input()? else {
        return Ok(false);
    };
    term.say("Password  : ")?;
    let Some(password) = term.read_hidden()? else {
        return Ok(false);
    };
    if name.trim() == user && password == expected {
        Ok(true)
    } else {
        term.say("\nAccess denied\n")?;
        Ok(false)
    }
}

/// Puts the controlling terminal on stdin, if any, into raw mode: no echo (the
/// simulator echoes), no signals from Ctrl-C, no CR/LF translation.
pub fn raw_stdin() {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let stdin = io::stdin();
    if let Ok(mut attrs) = tcgetattr(&stdin) {
        cfmakeraw(&mut attrs);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &attrs);
    }
}

/// A simulator on a thread at one end of a socket pair and a [`crate::Console`] at the
/// other: a device's whole dialogue without sshd, for the plugins' unit tests.
/// `run` is the simulator's entry point; `mode` and `state` its arguments.
pub fn paired_console(
    device: &str,
    mode: &str,
    state: &Path,
    run: fn(
        &SimArgs,
        &mut Term<std::os::unix::net::UnixStream, std::os::unix::net::UnixStream>,
    ) -> io::Result<()>,
) -> io::Result<crate::Console<crate::ThreadStream>> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_read_timeout(Some(std::time::Duration::from_millis(20)))?;
    let state = state
        .to_str()
        .ok_or_else(|| io::Error::other("the state path is not UTF-8"))?;
    let args = SimArgs::parse(["--state", state, "--mode", mode].map(String::from))
        .map_err(io::Error::other)?;
    let input = theirs.try_clone()?;
    std::thread::spawn(move || {
        let mut term = Term::new(input, theirs);
        let _ = run(&args, &mut term);
    });
    let stream = crate::ThreadStream::spawn(ours, device, std::time::Duration::from_millis(5))?;
    Ok(crate::Console::new(
        stream,
        crate::ConsoleOptions {
            device: device.into(),
            ..Default::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_cr_lf_or_crlf_and_keys_act_at_once() {
        let input: &[u8] = b"1\r\n2\r3\nYES\r\n\x1b\x03";
        let mut out = Vec::new();
        let mut term = Term::new(input, &mut out);
        let mut got = Vec::new();
        loop {
            let i = term.read_input().unwrap();
            if i == Input::Eof {
                break;
            }
            got.push(i);
        }
        assert_eq!(
            got,
            vec![
                Input::Line("1".into()),
                Input::Line("2".into()),
                Input::Line("3".into()),
                Input::Line("YES".into()),
                Input::Escape,
                Input::CtrlC
            ]
        );
    }

    #[test]
    fn outlet_state_survives_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = OutletFile::create(&path, 2, 4).unwrap();
        file.set(2, 3, false, Some("db node")).unwrap();
        let again = OutletFile::new(&path);
        assert_eq!(again.state(2, 3).unwrap(), Some(PowerState::Off));
        assert_eq!(again.state(1, 3).unwrap(), Some(PowerState::On));
        assert_eq!(again.load().unwrap().len(), 8);
        assert!(again.load().unwrap().iter().any(|o| o.name == "db node"));
    }

    #[test]
    fn a_second_session_does_not_get_the_session_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = SessionLock::try_take(&path).unwrap();
        assert!(first.is_some());
        assert!(SessionLock::try_take(&path).unwrap().is_none());
        drop(first);
        assert!(SessionLock::try_take(&path).unwrap().is_some());
    }

    #[test]
    fn simulator_arguments_parse() {
        let args = SimArgs::parse(
            [
                "--state",
                "s",
                "--fault",
                "lie",
                "--mode",
                "cli",
                "--outlets",
                "8",
            ]
            .map(String::from),
        )
        .unwrap();
        assert!(args.has(Fault::Lie));
        assert_eq!(args.mode.as_deref(), Some("cli"));
        assert_eq!(args.outlets, Some(8));
        assert!(SimArgs::parse(["--fault".to_string(), "x".into()]).is_err());
    }
}
