//! A simulated Baytech console: an RPC strip (`RPC-28A>`-style prompt, `On N`,
//! `Off N`, `Reboot N` each asking `(Y/N)`, `Status` printing the outlet table
//! two entries to a line as an RPC-28 does), either alone or behind a DS/MMP
//! management module whose "Enter Request :" menu selects the strip by number.
//! Strips behind one module have different models (and so prompts), so a driver
//! that hard-codes `RPC-28A>` fails against strip 2. `--mode menu` is an RPC strip
//! that greets with its own main menu (`RPC-3 Menu:` ... `1)...Outlet Control` ...
//! `Enter Selection>`, the dialogue cluster-glue's `baytech` plugin drives), whose
//! entry 1 reaches the strip prompt and `MENU` returns to. It plays an RPC-3 of
//! firmware F 5.01 as cluster-glue's `baytech.c` and powerman's RPC-3 script (both
//! written against real units) read it: the welcome (`RPC-3 Telnet Host`, `Bay
//! Technical Associates`, `Unit ID:`) before the login, `Enter username>` /
//! `Enter password>`, the prompt `RPC-3>`, the outlet table in columns under a
//! `Selection / Outlet Name / Outlet Number / Power Status` header (the number in
//! the first seven columns and the name from column 14, where cluster-glue reads
//! them), `(Y/N)>` confirmations, and `Rebooting selected outlet` ... `Power
//! applied to outlet` around a reboot.
//!
//! Faults as in [`fencekit_console::sim`]: `lie` (Y accepted, state kept),
//! `stall` (silence after Y), `silent` (banner, no prompt), `drop` (hang up at Y).

use std::io::{self, Read, Write};

use fencekit_console::sim::{
    unix_ms, Fault, Input, OutletFile, SessionLock, SimArgs, SimOutlet, Term, REBOOT_MS,
};

/// Model of strip `n` (1-based): its prompt is `<model>>`.
pub fn model(strip: u32) -> &'static str {
    match strip {
        1 => "RPC-28A",
        2 => "RPC3-NC",
        _ => "RPC-5",
    }
}

/// Runs one console session on `term`.
pub fn run<R: Read, W: Write>(args: &SimArgs, term: &mut Term<R, W>) -> io::Result<()> {
    let _session = match &args.lock {
        Some(path) => match SessionLock::try_take(path)? {
            Some(lock) => Some(lock),
            None => {
                term.say("\nThe unit is in use by another user (session limit reached).\n")?;
                // A unit's refusal reaches its client before it hangs up; a
                // telnet server tears its PTY down when this program exits, with
                // what it had not sent yet.
                std::thread::sleep(std::time::Duration::from_millis(300));
                return Ok(());
            }
        },
        None => None,
    };
    if args.mode.as_deref() == Some("menu") {
        let outlets = OutletFile::new(&args.state);
        if outlets.load()?.is_empty() {
            OutletFile::create(&args.state, 1, args.outlets.unwrap_or(8))?;
        }
        return main_menu(args, term, &outlets);
    }
    if !fencekit_console::sim::login(args, term)? {
        return Ok(());
    }
    let module = args.mode.as_deref() != Some("direct");
    let strips = if module { args.strips.unwrap_or(2) } else { 1 };
    let outlets = OutletFile::new(&args.state);
    if outlets.load()?.is_empty() {
        OutletFile::create(&args.state, strips, args.outlets.unwrap_or(8))?;
    }
    if !module {
        term.say("\n")?;
        return strip(args, term, &outlets, 1, Model::Rpc28).map(|_| ());
    }
    term.say("\n\nDS-RPC Management Module\n(C) 2000 by BayTech\nF4.01\n")?;
    if args.has(Fault::Silent) {
        return term.ignore_until_eof();
    }
    loop {
        let mut menu = String::from("\n\nDS-RPC Menu:\n\n");
        for s in 1..=strips {
            menu.push_str(&format!(
                "    {s})...Outlet Control {} (strip {s})\n",
                model(s)
            ));
        }
        menu.push_str("    T)...Logout\n\nEnter Request :");
        term.say(&menu)?;
        let line = match term.read_input()? {
            Input::Eof => return Ok(()),
            Input::Line(line) => line.trim().to_string(),
            _ => continue,
        };
        if line.eq_ignore_ascii_case("t") {
            term.say("\nLogged out.\n")?;
            return Ok(());
        }
        match line.parse::<u32>() {
            Ok(s) if (1..=strips).contains(&s) => {
                if !strip(args, term, &outlets, s, Model::Rpc28)? {
                    return Ok(());
                }
            }
            _ => term.say("\nInvalid request\n")?,
        }
    }
}

/// The RPC-3's own login: user name, then password, each at a `>` prompt. A wrong
/// user name or password ends the session after `Invalid password.` (cluster-glue
/// takes that text, or a second `username>`, as refused credentials).
fn rpc3_login<R: Read, W: Write>(args: &SimArgs, term: &mut Term<R, W>) -> io::Result<bool> {
    let Some((user, file)) = &args.login else {
        return Ok(true);
    };
    let expected = std::fs::read_to_string(file)?;
    let expected = expected.lines().next().unwrap_or("");
    term.say("\n    Enter username>")?;
    let Input::Line(name) = term.read_input()? else {
        return Ok(false);
    };
    term.say("    Enter password>")?;
    let Some(password) = term.read_hidden()? else {
        return Ok(false);
    };
    if name.trim() == user && password == expected {
        Ok(true)
    } else {
        term.say("    Invalid password.\n\n")?;
        Ok(false)
    }
}

/// An RPC strip's own main menu, as an RPC-3 shows it: the welcome before the
/// login, the installed options after it.
fn main_menu<R: Read, W: Write>(
    args: &SimArgs,
    term: &mut Term<R, W>,
    outlets: &OutletFile,
) -> io::Result<()> {
    term.say(
        "\n\n\n        RPC-3 Telnet Host\n    Revision F 5.01, (C) 2001\n    \
         Bay Technical Associates\n    Unit ID: RPC3-SIM\n",
    )?;
    if !rpc3_login(args, term)? {
        return Ok(());
    }
    term.say("  Option(s) installed:\n  True RMS Current\n  Internal Temperature\n\n")?;
    if args.has(Fault::Silent) {
        return term.ignore_until_eof();
    }
    loop {
        term.say(
            "\n  RPC-3 Menu:\n\n    1)...Outlet Control\n    2)...Manage Users\n    \
             3)...Configuration\n    4)...Unit Status\n    5)...Reset Unit\n    \
             6)...Logout\n\n  Enter Selection>",
        )?;
        let line = match term.read_input()? {
            Input::Eof => return Ok(()),
            Input::Line(line) => line.trim().to_string(),
            _ => continue,
        };
        match line.as_str() {
            "1" => {
                if !strip(args, term, outlets, 1, Model::Rpc3)? {
                    return Ok(());
                }
            }
            "6" => {
                term.say("\nLogged out.\n")?;
                return Ok(());
            }
            "" => {}
            _ => term.say("\nInvalid selection\n")?,
        }
    }
}

/// Which strip's console a strip session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// RPC-28 and kin (alone or behind a DS/MMP module): `N)...name : On` entries
    /// two to a line, `(Y/N)?` confirmations.
    Rpc28,
    /// An RPC-3 of firmware F 5.01 (behind its main menu): the table in columns,
    /// `(Y/N)>` confirmations, reboot notices.
    Rpc3,
}

/// The RPC-3's outlet table (as powerman's RPC-3 F 5.01 script reads it, and
/// cluster-glue's `parse_socket_line`: `%7d`, the name from column 14, ten wide).
fn rpc3_table(outlets: &[SimOutlet]) -> String {
    let mut text = String::from(
        "\n  True RMS current:  1.7 Amps\n  Maximum Detected:  2.5 Amps\n\n  \
         Internal Temperature: 32.0 C\n\n  Circuit Breaker: On \n\n  \
         Selection   Outlet    Outlet   Power\n    Number     Name     Number   Status\n",
    );
    for o in outlets {
        text.push_str(&format!(
            "{:>7}       {:<10}  {:<2}      {} \n",
            o.number,
            o.name,
            o.number,
            if o.on { "On " } else { "Off" }
        ));
    }
    text.push_str("\n  Type \"Help\" for a list of commands\n\n");
    text
}

fn table(outlets: &[SimOutlet]) -> String {
    let mut text = String::from(
        "\n                    Outlet  1-10         Outlet 11-20\n   Average Power:     312 Watts     :        0 Watts\n Circuit Breaker:       Good        :        Good\n\nInternal Temperature:  30.0 C\n\n",
    );
    for pair in outlets.chunks(2) {
        for o in pair {
            text.push_str(&format!(
                " {:>2})...{:<15} : {:<3}         ",
                o.number,
                o.name,
                if o.on { "On" } else { "Off" }
            ));
        }
        text.push('\n');
    }
    text.push_str("\nType \"Help\" for a list of commands\n\n");
    text
}

fn on_strip(outlets: &OutletFile, s: u32) -> io::Result<Vec<SimOutlet>> {
    Ok(outlets
        .load()?
        .into_iter()
        .filter(|o| o.strip == s)
        .collect())
}

/// The strip prompt loop; false when the whole session ends.
fn strip<R: Read, W: Write>(
    args: &SimArgs,
    term: &mut Term<R, W>,
    outlets: &OutletFile,
    s: u32,
    kind: Model,
) -> io::Result<bool> {
    let show = |all: &[SimOutlet]| match kind {
        Model::Rpc28 => table(all),
        Model::Rpc3 => rpc3_table(all),
    };
    let prompt = match kind {
        Model::Rpc28 => format!("{}>", model(s)),
        Model::Rpc3 => "  RPC-3>".to_string(),
    };
    if kind == Model::Rpc28 {
        term.say(&format!("\n{} Series\n(C) 2001 by BayTech\n", model(s)))?;
    }
    term.say(&show(&args.as_listed(outlets, on_strip(outlets, s)?)))?;
    if args.has(Fault::Silent) {
        term.ignore_until_eof()?;
        return Ok(false);
    }
    loop {
        term.say(&prompt)?;
        let line = match term.read_input()? {
            Input::Eof => return Ok(false),
            Input::Line(line) => line.trim().to_string(),
            _ => continue,
        };
        let mut words = line.split_whitespace();
        let Some(command) = words.next() else {
            continue;
        };
        let argument = words.collect::<Vec<_>>().join(" ");
        match command.to_ascii_lowercase().as_str() {
            "status" => term.say(&show(&args.as_listed(outlets, on_strip(outlets, s)?)))?,
            "logout" | "exit" | "quit" => {
                term.say("\nLogged out.\n")?;
                return Ok(false);
            }
            "menu" => return Ok(true),
            word @ ("on" | "off" | "reboot") => {
                let all = on_strip(outlets, s)?;
                let found = all.iter().find(|o| {
                    argument.parse::<u32>().is_ok_and(|n| n == o.number) || o.name == argument
                });
                let Some(outlet) = found else {
                    term.say("\nInput error: no such outlet\n\n")?;
                    continue;
                };
                let number = outlet.number;
                let verb = match word {
                    "on" => "Turn On",
                    "off" => "Turn Off",
                    _ => "Reboot",
                };
                term.say(&match kind {
                    Model::Rpc28 => format!("\n{verb} Outlet {number} (Y/N)? "),
                    Model::Rpc3 => format!("\n  {verb} Outlet {number} (Y/N)>"),
                })?;
                let answer = match term.read_input()? {
                    Input::Eof => return Ok(false),
                    Input::Line(answer) => answer,
                    _ => String::new(),
                };
                if !answer.trim().eq_ignore_ascii_case("y") {
                    term.say("\n")?;
                    continue;
                }
                if args.has(Fault::Drop) {
                    return Ok(false);
                }
                if args.has(Fault::Refuse) {
                    term.say("\nInput error: outlet is locked\n\n")?;
                    continue;
                }
                args.delay_switch();
                if !args.has(Fault::Lie) {
                    outlets.update(|all| {
                        if let Some(o) = all.iter_mut().find(|o| o.strip == s && o.number == number)
                        {
                            // A reboot is off now, on again a reboot duration later.
                            o.on = word == "on";
                            o.back_on_at = (word == "reboot").then(|| unix_ms() + REBOOT_MS);
                        }
                    })?;
                    outlets.log_command(number, word == "on", true);
                    if word == "reboot" {
                        outlets.log_command_after(number, true, Some(REBOOT_MS));
                    }
                } else {
                    outlets.log_command(number, word == "on", false);
                }
                if args.has(Fault::DropAfter) {
                    return Ok(false);
                }
                if args.has(Fault::StallPager) {
                    term.ignore_until_eof()?;
                    return Ok(false);
                }
                if kind == Model::Rpc3 && word == "reboot" {
                    // The RPC-3 tells when the cycle starts and when power is back
                    // (cluster-glue's RPCReset waits for both texts).
                    term.say("\n  Rebooting selected outlet(s)...\n")?;
                    std::thread::sleep(std::time::Duration::from_millis(REBOOT_MS));
                    term.say("  Power applied to outlet(s).\n")?;
                }
                term.say(&show(&args.as_listed(outlets, on_strip(outlets, s)?)))?;
            }
            "help" => term.say("\nOn n, Off n, Reboot n, Status, Menu, Logout\n\n")?,
            _ => term.say("\nInput error\n\n")?,
        }
    }
}
