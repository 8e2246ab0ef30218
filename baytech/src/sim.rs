//! A simulated Baytech console: an RPC strip (`RPC-28A>`-style prompt, `On N`,
//! `Off N`, `Reboot N` each asking `(Y/N)`, `Status` printing the outlet table
//! two entries to a line as an RPC-28 does), either alone or behind a DS/MMP
//! management module whose "Enter Request :" menu selects the strip by number.
//! Strips behind one module have different models (and so prompts), so a driver
//! that hard-codes `RPC-28A>` fails against strip 2. `--mode menu` is an RPC strip
//! that greets with its own main menu (`RPC-3 Menu:` ... `1)...Outlet Control` ...
//! `Enter Selection>`, the dialogue cluster-glue's `baytech` plugin drives), whose
//! entry 1 reaches the strip prompt and `MENU` returns to.
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
                return Ok(());
            }
        },
        None => None,
    };
    if !fencekit_console::sim::login(args, term)? {
        return Ok(());
    }
    if args.mode.as_deref() == Some("menu") {
        let outlets = OutletFile::new(&args.state);
        if outlets.load()?.is_empty() {
            OutletFile::create(&args.state, 1, args.outlets.unwrap_or(8))?;
        }
        return main_menu(args, term, &outlets);
    }
    let module = args.mode.as_deref() != Some("direct");
    let strips = if module { args.strips.unwrap_or(2) } else { 1 };
    let outlets = OutletFile::new(&args.state);
    if outlets.load()?.is_empty() {
        OutletFile::create(&args.state, strips, args.outlets.unwrap_or(8))?;
    }
    if !module {
        term.say("\n")?;
        return strip(args, term, &outlets, 1).map(|_| ());
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
                if !strip(args, term, &outlets, s)? {
                    return Ok(());
                }
            }
            _ => term.say("\nInvalid request\n")?,
        }
    }
}

/// An RPC strip's own main menu, as an RPC-3 shows it after login.
fn main_menu<R: Read, W: Write>(
    args: &SimArgs,
    term: &mut Term<R, W>,
    outlets: &OutletFile,
) -> io::Result<()> {
    term.say(
        "\n\nRPC-3 Telnet Host\nRevision F 5.01, (C) 2001\nBay Technical Associates\n\
         Unit ID: RPC3-SIM\n\nOption(s) installed:\nTrue RMS Current\nInternal Temperature\n",
    )?;
    if args.has(Fault::Silent) {
        return term.ignore_until_eof();
    }
    loop {
        term.say(
            "\n\nRPC-3 Menu:\n\n    1)...Outlet Control\n    2)...Manage Users\n    \
             3)...Configuration\n    4)...Unit Status\n    5)...Reset Unit\n    \
             6)...Logout\n\nEnter Selection>",
        )?;
        let line = match term.read_input()? {
            Input::Eof => return Ok(()),
            Input::Line(line) => line.trim().to_string(),
            _ => continue,
        };
        match line.as_str() {
            "1" => {
                if !strip(args, term, outlets, 1)? {
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
) -> io::Result<bool> {
    let prompt = format!("{}>", model(s));
    term.say(&format!("\n{} Series\n(C) 2001 by BayTech\n", model(s)))?;
    term.say(&table(&on_strip(outlets, s)?))?;
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
            "status" => term.say(&table(&on_strip(outlets, s)?))?,
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
                term.say(&format!("\n{verb} Outlet {number} (Y/N)? "))?;
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
                term.say(&table(&on_strip(outlets, s)?))?;
            }
            "help" => term.say("\nOn n, Off n, Reboot n, Status, Menu, Logout\n\n")?,
            _ => term.say("\nInput error\n\n")?,
        }
    }
}
