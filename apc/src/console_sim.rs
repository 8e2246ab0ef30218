//! A simulated APC switched rack PDU console, in both flavours fence_apc drives:
//! the numbered menus of AOS v3 (Control Console → Device Manager → Outlet
//! Management → Outlet Control/Configuration → outlet → Control Outlet →
//! Immediate On/Off/Reboot → "Enter 'YES' to continue or <ENTER> to cancel" →
//! "Press <ENTER> to continue...", ESC back one level, Ctrl-C to the main menu,
//! `4` logout), and the `apc>` command line of AOS v6 (`olStatus all`, `olOn N`,
//! `olOff N`, `olReboot N`, `E000: Success`).
//!
//! The screens follow fence_apc's expectations (read from its source): the
//! banner names the AOS version (`v3.` → menus, `v6.` → command line), prompts
//! start a line (`\n>`, `\napc>`), outlet lines read `N- name  ON|OFF`, the
//! Outlet Management menu lists "2- Outlet Restriction" (so fence_apc enters
//! Control Outlet with `1` before the command digit, as the seed script did), and
//! Ctrl-C lands on the main menu with its "4- Logout".
//!
//! Run as binary `fencekit-apc-console-sim` (the `ForceCommand` of a test sshd);
//! faults and state as in [`fencekit_console::sim`].

use std::io::{self, Read, Write};

use fencekit_console::sim::{
    unix_ms, Fault, Input, OutletFile, SessionLock, SimArgs, SimOutlet, Term, REBOOT_MS,
};

/// Outlets shown per page of the outlet list before "Press <ENTER> to continue...".
const PAGE: usize = 4;

const MENU_BANNER: &str = "\n\nAmerican Power Conversion               Network Management Card AOS      v3.5.7\n(c) Copyright 2009 All Rights Reserved  Rack PDU APP                     v3.5.6\n-------------------------------------------------------------------------------\nName      : fencekit-sim                              Date : 01/01/2024\nContact   : nobody                                    Time : 12:00:00\nLocation  : lab                                       User : Administrator\nUp Time   : 0 Days 1 Hour 0 Minutes                   Stat : P+ N+ A+\n\nSwitched Rack PDU: Communication Established\n";

const CLI_BANNER: &str = "\n\nSchneider Electric                      Network Management Card AOS      v6.8.2\n(c) Copyright 2019 All Rights Reserved  RPDU 2g APP                      v6.8.0\n-------------------------------------------------------------------------------\nName      : fencekit-sim                              Date : 01/01/2024\nContact   : nobody                                    Time : 12:00:00\nLocation  : lab                                       User : Super User\nUp Time   : 0 Days 1 Hour 0 Minutes                   Stat : P+ N4+ N6+ A+\n\nType ? for command listing\nUse tcpip command for IP address(-i), subnet(-s), and gateway(-g)\n\n";

const FOOTER: &str = "\n     <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log\n> ";

/// Runs one console session on `term`.
pub fn run<R: Read, W: Write>(args: &SimArgs, term: &mut Term<R, W>) -> io::Result<()> {
    let _session = match &args.lock {
        Some(path) => match SessionLock::try_take(path)? {
            Some(lock) => Some(lock),
            None => {
                term.say("\nConsole is busy: another user is logged in. Try again later.\n")?;
                return Ok(());
            }
        },
        None => None,
    };
    if !fencekit_console::sim::login(args, term)? {
        return Ok(());
    }
    let outlets = OutletFile::new(&args.state);
    if outlets.load()?.is_empty() {
        OutletFile::create(&args.state, 1, args.outlets.unwrap_or(8))?;
    }
    let cli = args.mode.as_deref() == Some("cli");
    term.say(if cli { CLI_BANNER } else { MENU_BANNER })?;
    if args.has(Fault::Silent) {
        return term.ignore_until_eof();
    }
    if cli {
        Cli { args, outlets }.run(term)
    } else {
        Menu { args, outlets }.run(term)
    }
}

fn list(outlets: &OutletFile) -> io::Result<Vec<SimOutlet>> {
    Ok(outlets
        .load()?
        .into_iter()
        .filter(|o| o.strip == 1)
        .collect())
}

/// Switches an outlet (or pretends to, for [`Fault::Lie`]). Reboot ends on.
fn switch(args: &SimArgs, outlets: &OutletFile, number: u32, command: u32) -> io::Result<bool> {
    args.delay_switch();
    if args.has(Fault::Lie) {
        let found = outlets
            .load()?
            .iter()
            .any(|o| o.strip == 1 && o.number == number);
        if found {
            outlets.log_command(number, command == 1, false);
        }
        return Ok(found);
    }
    let found = outlets.update(|all| {
        match all.iter_mut().find(|o| o.strip == 1 && o.number == number) {
            Some(o) => {
                // A reboot is off now, on again a reboot duration later.
                o.on = command == 1;
                o.back_on_at = (command == 3).then(|| unix_ms() + REBOOT_MS);
                true
            }
            None => false,
        }
    })?;
    if found {
        outlets.log_command(number, command == 1, true);
        if command == 3 {
            outlets.log_command_after(number, true, Some(REBOOT_MS));
        }
    }
    Ok(found)
}

struct Cli<'a> {
    args: &'a SimArgs,
    outlets: OutletFile,
}

impl Cli<'_> {
    fn run<R: Read, W: Write>(&mut self, term: &mut Term<R, W>) -> io::Result<()> {
        loop {
            term.say("apc>")?;
            let line = match term.read_input()? {
                Input::Eof => return Ok(()),
                Input::Line(line) => line,
                Input::Escape | Input::CtrlC => {
                    term.say("\n")?;
                    continue;
                }
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(command) = words.first() else {
                continue;
            };
            let command = command.to_ascii_lowercase();
            match command.as_str() {
                "exit" | "quit" | "logout" | "bye" => {
                    term.say("Bye.\n")?;
                    return Ok(());
                }
                "olstatus" => self.status(term, words.get(1).copied())?,
                "olon" | "oloff" | "olreboot" => {
                    let code = match command.as_str() {
                        "olon" => 1,
                        "oloff" => 2,
                        _ => 3,
                    };
                    if self.args.has(Fault::Drop) {
                        return Ok(());
                    }
                    let Some(number) = words.get(1).and_then(|w| self.resolve(w).ok().flatten())
                    else {
                        term.say("E102: Parameter Error\n")?;
                        continue;
                    };
                    if self.args.has(Fault::Refuse) {
                        term.say("E104: Refused, outlet is locked\n\n")?;
                        continue;
                    }
                    switch(self.args, &self.outlets, number, code)?;
                    if self.args.has(Fault::DropAfter) {
                        return Ok(());
                    }
                    if self.args.has(Fault::StallPager) {
                        return term.ignore_until_eof();
                    }
                    term.say("E000: Success\n\n")?;
                }
                "?" | "help" => {
                    term.say("E000: Success\nolStatus  olOn  olOff  olReboot  olName  exit\n\n")?
                }
                _ => term.say("E101: Command Not Found\n\n")?,
            }
        }
    }

    fn resolve(&self, word: &str) -> io::Result<Option<u32>> {
        let all = list(&self.outlets)?;
        if let Ok(n) = word.parse::<u32>() {
            return Ok(all.iter().any(|o| o.number == n).then_some(n));
        }
        Ok(all.iter().find(|o| o.name == word).map(|o| o.number))
    }

    fn status<R: Read, W: Write>(
        &self,
        term: &mut Term<R, W>,
        which: Option<&str>,
    ) -> io::Result<()> {
        let all = self.args.as_listed(&self.outlets, list(&self.outlets)?);
        let chosen: Vec<&SimOutlet> = match which {
            None | Some("all") => all.iter().collect(),
            Some(word) => match self.resolve(word)? {
                Some(n) => all.iter().filter(|o| o.number == n).collect(),
                None => {
                    return term.say("E102: Parameter Error\n\n");
                }
            },
        };
        let mut text = String::from("E000: Success\n");
        for o in chosen {
            text.push_str(&format!(
                "{:2}: {}: {}\n",
                o.number,
                o.name,
                if o.on { "On" } else { "Off" }
            ));
        }
        text.push('\n');
        term.say(&text)
    }
}

/// Where the menu user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screen {
    Main,
    DeviceManager,
    OutletManagement,
    OutletList,
    Outlet(u32),
    Control(u32),
}

struct Menu<'a> {
    args: &'a SimArgs,
    outlets: OutletFile,
}

impl Menu<'_> {
    fn run<R: Read, W: Write>(&mut self, term: &mut Term<R, W>) -> io::Result<()> {
        let mut screen = Screen::Main;
        loop {
            let input = match self.draw(term, screen)? {
                Some(Input::Line(_)) | None => term.read_input()?,
                // A key pressed at a pager acts on the menu.
                Some(key) => key,
            };
            let line = match input {
                Input::Eof => return Ok(()),
                Input::CtrlC => {
                    screen = Screen::Main;
                    continue;
                }
                Input::Escape => {
                    screen = back(screen);
                    continue;
                }
                Input::Line(line) => line.trim().to_string(),
            };
            if line.is_empty() {
                continue; // refresh
            }
            screen = match (screen, line.as_str()) {
                (Screen::Main, "1") => Screen::DeviceManager,
                (Screen::Main, "4") => {
                    term.say("\nConnection Closed - Bye\n")?;
                    return Ok(());
                }
                (Screen::DeviceManager, "2") => Screen::OutletManagement,
                (Screen::OutletManagement, "1") => Screen::OutletList,
                (Screen::OutletList, n) => match n.parse::<u32>() {
                    Ok(n) if list(&self.outlets)?.iter().any(|o| o.number == n) => {
                        Screen::Outlet(n)
                    }
                    _ => screen,
                },
                (Screen::Outlet(n), "1") => Screen::Control(n),
                (Screen::Control(n), digit @ ("1" | "2" | "3")) => {
                    let code = digit.parse().unwrap_or(0);
                    if !self.command(term, n, code)? {
                        return Ok(());
                    }
                    screen
                }
                _ => screen,
            };
        }
    }

    /// Draws `screen`. A key other than Enter at a pager stops the drawing and
    /// is returned.
    fn draw<R: Read, W: Write>(
        &self,
        term: &mut Term<R, W>,
        screen: Screen,
    ) -> io::Result<Option<Input>> {
        let title = |t: &str| {
            format!(
                "\n------- {t} {}\n\n",
                "-".repeat(70usize.saturating_sub(t.len()))
            )
        };
        match screen {
            Screen::Main => term.say(&format!(
                "{}     1- Device Manager\n     2- Network\n     3- System\n     4- Logout\n{FOOTER}",
                title("Control Console")
            ))?,
            Screen::DeviceManager => term.say(&format!(
                "{}     1- Phase Management\n     2- Outlet Management\n     3- Power Supply Status\n{FOOTER}",
                title("Device Manager")
            ))?,
            Screen::OutletManagement => term.say(&format!(
                "{}     1- Outlet Control/Configuration\n     2- Outlet Restriction\n{FOOTER}",
                title("Outlet Management")
            ))?,
            Screen::OutletList => {
                let all = list(&self.outlets)?;
                term.say(&title("Outlet Control/Configuration"))?;
                for (i, o) in all.iter().enumerate() {
                    if i > 0 && i % PAGE == 0 {
                        term.say("\nPress <ENTER> to continue...")?;
                        match term.read_input()? {
                            Input::Line(_) => term.say("\n")?,
                            key => return Ok(Some(key)),
                        }
                    }
                    term.say(&format!(
                        "     {:>2}- {:<24} {}\n",
                        o.number,
                        o.name,
                        if o.on { "ON" } else { "OFF" }
                    ))?;
                }
                term.say(&format!(
                    "     {:>2}- Master Control/Configuration\n{FOOTER}",
                    all.len() + 1
                ))?;
            }
            Screen::Outlet(n) | Screen::Control(n) => {
                let all = list(&self.outlets)?;
                let Some(o) = all.iter().find(|o| o.number == n) else {
                    return Ok(None);
                };
                let head = format!(
                    "        Name         : {}\n        Outlet       : {}\n        State        : {}\n\n",
                    o.name,
                    o.number,
                    if o.on { "ON" } else { "OFF" }
                );
                if let Screen::Outlet(_) = screen {
                    term.say(&format!(
                        "{}{head}     1- Control Outlet\n     2- Configure Outlet\n{FOOTER}",
                        title(&format!("Outlet {n}"))
                    ))?;
                } else {
                    term.say(&format!(
                        "{}{head}     1- Immediate On\n     2- Immediate Off\n     3- Immediate Reboot\n     4- Delayed On\n     5- Delayed Off\n     6- Delayed Reboot\n     7- Cancel\n{FOOTER}",
                        title("Control Outlet")
                    ))?;
                }
            }
        }
        Ok(None)
    }

    /// Immediate On/Off/Reboot with its confirmation; false when the session ends.
    fn command<R: Read, W: Write>(
        &self,
        term: &mut Term<R, W>,
        n: u32,
        code: u32,
    ) -> io::Result<bool> {
        let (what, does) = match code {
            1 => ("Immediate On", "turn the outlet on"),
            2 => ("Immediate Off", "turn the outlet off"),
            _ => ("Immediate Reboot", "reboot the outlet"),
        };
        term.say(&format!(
            "\n        -----------------------------------------------------------------------\n        {what}\n        -----------------------------------------------------------------------\n\n        This command will immediately {does}.\n\n        Enter 'YES' to continue or <ENTER> to cancel : "
        ))?;
        let answer = match term.read_input()? {
            Input::Eof => return Ok(false),
            Input::Line(line) => line,
            _ => String::new(),
        };
        if answer.trim() != "YES" {
            term.say("\n        Command cancelled.\n\n        Press <ENTER> to continue...")?;
            return Ok(!matches!(term.read_input()?, Input::Eof));
        }
        if self.args.has(Fault::Drop) {
            return Ok(false);
        }
        if self.args.has(Fault::Refuse) {
            term.say("\n        Command failed: outlet is locked.\n\n        Press <ENTER> to continue...")?;
            return Ok(!matches!(term.read_input()?, Input::Eof));
        }
        switch(self.args, &self.outlets, n, code)?;
        if self.args.has(Fault::DropAfter) {
            return Ok(false);
        }
        term.say("\n        Command successfully issued.\n\n        Press <ENTER> to continue...")?;
        loop {
            if matches!(term.read_input()?, Input::Eof) {
                return Ok(false);
            }
            if !self.args.has(Fault::StallPager) {
                return Ok(true);
            }
            term.say("\n        Press <ENTER> to continue...")?;
        }
    }
}

fn back(screen: Screen) -> Screen {
    match screen {
        Screen::Main | Screen::DeviceManager => Screen::Main,
        Screen::OutletManagement => Screen::DeviceManager,
        Screen::OutletList => Screen::OutletManagement,
        Screen::Outlet(_) => Screen::OutletList,
        Screen::Control(n) => Screen::Outlet(n),
    }
}
