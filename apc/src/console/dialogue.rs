//! The APC console dialogues over any byte stream: log in and tell the UI from
//! what the device shows, list outlets, send Immediate On/Off/Reboot, log out.
//!
//! The UI is chosen from the screen, not from a firmware version regex (which
//! broke fence_apc at every new AOS major): a `Control Console` menu before a
//! `>` prompt is the numbered menu UI; any other prompt (`apc>`, or the
//! configured `cmd_prompt`) is the command line. Menu entries are chosen by
//! their titles ("Device Manager", "Outlet Management", "Control Outlet",
//! "Immediate Off"), never by fixed digits, and every screen is checked to be
//! the one expected before a key is sent, so a firmware with another layout
//! fails with a clear error instead of switching the wrong thing.

use fencekit_console::parse::{apc_cli, apc_menu, Outlet};
use fencekit_console::target::says_busy;
use fencekit_console::{common_pagers, Console, Key, Pattern};
use fencekit_core::{DeviceError, Instant, PowerState};
use tokio::io::{AsyncRead, AsyncWrite};

/// Longest wait for the session to close after logging out.
const LOGOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Which console UI the device runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ui {
    /// The numbered menus of AOS before v5.
    Menu,
    /// The `apc>` command line (AOS v5 and later), with the prompt it showed.
    Cli { prompt: String },
}

/// What to do to an outlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutletCommand {
    On,
    Off,
    Reboot,
}

impl OutletCommand {
    fn menu_entry(self) -> &'static str {
        match self {
            OutletCommand::On => "Immediate On",
            OutletCommand::Off => "Immediate Off",
            OutletCommand::Reboot => "Immediate Reboot",
        }
    }

    fn cli_word(self) -> &'static str {
        match self {
            OutletCommand::On => "olOn",
            OutletCommand::Off => "olOff",
            OutletCommand::Reboot => "olReboot",
        }
    }
}

fn protocol(console_device: &str, what: String) -> DeviceError {
    DeviceError::Protocol(format!("{console_device}: {what}"))
}

/// Waits for the first prompt after login and tells the UI from it.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    cmd_prompt: Option<&str>,
    deadline: Instant,
) -> Result<Ui, DeviceError> {
    let device = console.options().device.clone();
    let first = match console.learn_prompt(deadline).await {
        Ok(m) => m,
        Err(e) => {
            let text = e.to_string();
            if says_busy(&text) {
                return Err(DeviceError::Busy(text));
            }
            return Err(e.into());
        }
    };
    let banner = console.redact(&first.before);
    let prompt = first.matched.clone();
    if says_busy(&prompt) || (says_busy(&banner) && !prompt.ends_with('>')) {
        return Err(DeviceError::Busy(format!(
            "{device}: the console refused the session: {}",
            shorten(&console.redact(&format!("{banner} {prompt}")))
        )));
    }
    if let Some(wanted) = cmd_prompt.filter(|p| !p.trim().is_empty()) {
        if !shows_prompt(&prompt, wanted) {
            return Err(protocol(
                &device,
                format!(
                    "expected the prompt {wanted:?} (cmd_prompt), the console shows {:?}",
                    console.redact(&prompt)
                ),
            ));
        }
    } else if !prompt.ends_with('>') {
        return Err(protocol(
            &device,
            format!(
                "no console prompt after login; the device shows {:?}",
                shorten(&console.redact(&prompt))
            ),
        ));
    }
    if prompt == ">" && first.last_screen().contains("Control Console") {
        Ok(Ui::Menu)
    } else if prompt == ">" {
        Err(protocol(
            &device,
            "a `>` prompt without the Control Console menu: unknown APC console layout".into(),
        ))
    } else {
        Ok(Ui::Cli { prompt })
    }
}

/// Whether the learned `prompt` is one `cmd_prompt` names. fence_apc searches the
/// session for its prompts (default `['\n>', '\napc>']`), so `>` also finds the
/// end of `apc>`: a prompt that ends with one of them (the whole prompt when it
/// begins with a line break) is taken; Python's list form is read too.
fn shows_prompt(prompt: &str, cmd_prompt: &str) -> bool {
    let prompt = prompt.trim();
    let blank = |c: char| c == ' ' || c == '\t';
    let list = cmd_prompt.trim_matches(blank);
    let list = list
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or(list);
    list.split(',').any(|wanted| {
        let wanted = wanted.trim_matches(|c| blank(c) || c == '\'' || c == '"');
        match wanted
            .strip_prefix("\\n")
            .or_else(|| wanted.strip_prefix('\n'))
        {
            Some(whole) => !whole.is_empty() && prompt == whole.trim(),
            None => !wanted.trim().is_empty() && prompt.ends_with(wanted.trim()),
        }
    })
}

fn shorten(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(160).collect()
}

/// Lists every outlet with its state.
pub async fn list<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    ui: &Ui,
    deadline: Instant,
) -> Result<Vec<Outlet>, DeviceError> {
    match ui {
        Ui::Cli { prompt } => cli_status(console, prompt, deadline).await,
        Ui::Menu => {
            let list = open_outlet_list(console, deadline).await?;
            // Back to the main menu, where logout is.
            to_main_menu(console, deadline).await?;
            Ok(list)
        }
    }
}

async fn cli_status<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    prompt: &str,
    deadline: Instant,
) -> Result<Vec<Outlet>, DeviceError> {
    console.discard_pending();
    console.send_line("olStatus all", deadline).await?;
    let m = console.expect(&[Pattern::prompt(prompt)], deadline).await?;
    apc_cli::parse_ol_status(&m.before).map_err(|e| {
        protocol(
            &console.options().device,
            format!(
                "olStatus all: {}; the device printed: {}",
                console.redact(&e.to_string()),
                shorten(&console.redact(&m.before))
            ),
        )
    })
}

/// A menu entry `N- title` of a screen: its number.
fn entry(screen: &str, title: &str) -> Option<String> {
    screen.lines().find_map(|line| {
        let line = line.trim();
        let (number, text) = line.split_once("- ")?;
        let number = number.trim();
        (!number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && text.trim().starts_with(title))
        .then(|| number.to_string())
    })
}

/// Sends the entry titled `title` of `screen` and returns the next screen.
async fn choose<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    screen: &str,
    title: &str,
    deadline: Instant,
) -> Result<String, DeviceError> {
    let device = console.options().device.clone();
    let number = entry(screen, title).ok_or_else(|| {
        protocol(
            &device,
            format!(
                "the menu has no entry {title:?}; it shows: {}",
                shorten(&console.redact(screen))
            ),
        )
    })?;
    console.send_line(&number, deadline).await?;
    let m = console.expect(&[Pattern::prompt(">")], deadline).await?;
    Ok(m.last_screen().to_string())
}

async fn to_main_menu<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    deadline: Instant,
) -> Result<String, DeviceError> {
    console.discard_pending();
    // Ctrl-C goes to the main menu from any depth (fence_apc relies on it too).
    console.send_key(Key::CtrlC, deadline).await?;
    let m = console
        .expect_through_pagers(&[Pattern::prompt(">")], &common_pagers(), deadline)
        .await?;
    let screen = m.before;
    if entry(&screen, "Logout").is_none() {
        return Err(protocol(
            &console.options().device,
            format!(
                "Ctrl-C did not lead to the main menu; it shows: {}",
                shorten(&console.redact(&screen))
            ),
        ));
    }
    Ok(screen)
}

/// From the main menu to the outlet list; returns the outlets listed.
async fn open_outlet_list<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    deadline: Instant,
) -> Result<Vec<Outlet>, DeviceError> {
    let device = console.options().device.clone();
    // The main menu was drawn before the login prompt, or after Ctrl-C: draw it
    // again (Enter refreshes) to read its entries.
    console.discard_pending();
    console.send_key(Key::Enter, deadline).await?;
    let main = console.expect(&[Pattern::prompt(">")], deadline).await?;
    let device_manager = choose(console, main.last_screen(), "Device Manager", deadline).await?;
    let outlet_menu = if entry(&device_manager, "Outlet Management").is_some() {
        choose(console, &device_manager, "Outlet Management", deadline).await?
    } else {
        device_manager
    };
    // The entry is "Outlet Control/Configuration" (rack PDUs) or "Outlet
    // Control" (MasterSwitch).
    let number = entry(&outlet_menu, "Outlet Control").ok_or_else(|| {
        protocol(
            &device,
            format!(
                "no Outlet Control entry; the menu shows: {}",
                shorten(&console.redact(&outlet_menu))
            ),
        )
    })?;
    console.send_line(&number, deadline).await?;
    let listing = console
        .expect_through_pagers(&[Pattern::prompt(">")], &common_pagers(), deadline)
        .await?;
    apc_menu::parse_outlet_menu(&listing.before).map_err(|e| {
        protocol(
            &device,
            format!(
                "outlet list: {}; the device printed: {}",
                console.redact(&e.to_string()),
                shorten(&console.redact(&listing.before))
            ),
        )
    })
}

/// Switches outlet `number`, and reads its state back from the screen that
/// follows (for the log: the fence algorithm confirms with its own reads).
pub async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    ui: &Ui,
    number: u32,
    what: OutletCommand,
    listed: usize,
    deadline: Instant,
) -> Result<PowerState, DeviceError> {
    let device = console.options().device.clone();
    match ui {
        Ui::Cli { prompt } => {
            console.discard_pending();
            console
                .send_line(&format!("{} {number}", what.cli_word()), deadline)
                .await?;
            let m = console.expect(&[Pattern::prompt(prompt)], deadline).await?;
            match apc_cli::check_result(&m.before) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(protocol(
                        &device,
                        format!(
                            "{} {number}: no result code; the device printed: {}",
                            what.cli_word(),
                            shorten(&console.redact(&m.before))
                        ),
                    ))
                }
                Err(e) => {
                    return Err(DeviceError::Refused(format!(
                        "{device}: {} {number}: {}",
                        what.cli_word(),
                        console.redact(&e.to_string())
                    )))
                }
            }
            let outlets = cli_status(console, prompt, deadline).await?;
            // A listing with another count than the one before the command lost or
            // ran together lines: its state is no read-back (a status read decides).
            if outlets.len() != listed {
                return Ok(PowerState::Unknown);
            }
            Ok(outlets
                .iter()
                .find(|o| o.number == number)
                .map_or(PowerState::Unknown, |o| o.state))
        }
        Ui::Menu => {
            let outlets = open_outlet_list(console, deadline).await?;
            if !outlets.iter().any(|o| o.number == number) {
                return Err(unknown(&number.to_string(), &outlets));
            }
            console.send_line(&number.to_string(), deadline).await?;
            let outlet_screen = console.expect(&[Pattern::prompt(">")], deadline).await?;
            let control = choose(
                console,
                outlet_screen.last_screen(),
                "Control Outlet",
                deadline,
            )
            .await?;
            let digit = entry(&control, what.menu_entry()).ok_or_else(|| {
                protocol(
                    &device,
                    format!(
                        "Control Outlet has no {:?}; it shows: {}",
                        what.menu_entry(),
                        shorten(&console.redact(&control))
                    ),
                )
            })?;
            console.send_line(&digit, deadline).await?;
            console
                .confirm(
                    &[Pattern::text("Enter 'YES' to continue").ignore_case()],
                    "YES",
                    deadline,
                )
                .await?;
            let done = console
                .expect(
                    &[Pattern::text("Press <ENTER> to continue").ignore_case()],
                    deadline,
                )
                .await?;
            if !done.before.to_ascii_lowercase().contains("success") {
                return Err(DeviceError::Refused(format!(
                    "{device}: {} of outlet {number} not accepted: {}",
                    what.menu_entry(),
                    shorten(&console.redact(&done.before))
                )));
            }
            console.send_key(Key::Enter, deadline).await?;
            // The Control Outlet screen comes back with the outlet's state; a
            // pager that keeps coming back costs the deadline, never more.
            let after = console
                .expect_through_pagers(&[Pattern::prompt(">")], &common_pagers(), deadline)
                .await?;
            to_main_menu(console, deadline).await?;
            Ok(screen_state(&after.before))
        }
    }
}

/// "State : ON" on an outlet's screen.
fn screen_state(screen: &str) -> PowerState {
    screen
        .lines()
        .rev()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "State").then(|| match value.trim() {
                "ON" => PowerState::On,
                "OFF" => PowerState::Off,
                _ => PowerState::Unknown,
            })
        })
        .unwrap_or(PowerState::Unknown)
}

pub(crate) fn unknown(plug: &str, outlets: &[Outlet]) -> DeviceError {
    DeviceError::UnknownPlug {
        plug: plug.to_string(),
        known: outlets
            .iter()
            .map(|o| {
                if o.name.is_empty() {
                    o.number.to_string()
                } else {
                    format!("{} ({})", o.number, o.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Logs out and waits (briefly) for the device to close the session. Failing
/// to log out cleanly is logged, not an error of the operation.
pub async fn logout<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    ui: &Ui,
    deadline: Instant,
) {
    let device = console.options().device.clone();
    let until = (Instant::now() + LOGOUT_WAIT).min(deadline);
    let result: Result<(), DeviceError> = async {
        match ui {
            Ui::Cli { .. } => console.send_line("exit", until).await?,
            Ui::Menu => {
                // Operations end on the main menu.
                console.send_line("4", until).await?;
            }
        }
        console.expect_eof(until).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(device, error = %e, "console did not log out cleanly");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use fencekit_console::sim::OutletFile;
    use fencekit_console::ThreadStream;

    use std::time::Duration;

    /// `cmd_prompt` as fence_apc searches for it: `>` finds the end of `apc>`, a
    /// leading line break asks for the whole prompt, and Python's list form is
    /// read; a prompt that is none of them is not taken.
    #[test]
    fn cmd_prompt_is_found_at_the_end_of_the_prompt_as_fence_apc_searches_for_it() {
        for (prompt, wanted) in [
            ("apc>", ">"),
            ("apc>", "apc>"),
            (">", ">"),
            ("apc>", r"['\n>', '\napc>']"),
            (">", r"['\n>', '\napc>']"),
            ("apc>", "\napc>"),
        ] {
            assert!(shows_prompt(prompt, wanted), "{prompt} {wanted}");
        }
        for (prompt, wanted) in [
            ("apc>", "\n>"),
            ("apc>", r"['\n>']"),
            ("pdu$", ">"),
            ("apc>", "APC>"),
            ("apc>", "[]"),
        ] {
            assert!(!shows_prompt(prompt, wanted), "{prompt} {wanted}");
        }
    }

    /// The simulator on a thread at one end of a socket pair, a console at the
    /// other: the dialogue without sshd.
    fn device(mode: &str, state: &std::path::Path) -> Console<ThreadStream> {
        fencekit_console::sim::paired_console("pdu-test", mode, state, crate::console_sim::run)
            .unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    #[tokio::test]
    async fn both_uis_are_told_apart_listed_switched_and_logged_out_of() {
        for mode in ["menu", "cli"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            let state = OutletFile::create(&path, 1, 8).unwrap();
            let mut console = device(mode, &path);
            let ui = login(&mut console, None, soon()).await.unwrap();
            assert_eq!(ui == Ui::Menu, mode == "menu", "{ui:?}");
            let outlets = list(&mut console, &ui, soon()).await.unwrap();
            assert_eq!(outlets.len(), 8);
            let after = command(&mut console, &ui, 2, OutletCommand::Off, 8, soon())
                .await
                .unwrap();
            assert_eq!(after, PowerState::Off, "{mode}");
            assert_eq!(state.state(1, 2).unwrap(), Some(PowerState::Off));
            logout(&mut console, &ui, soon()).await;
            // Logged out: the device closed the session.
            assert!(console.expect_eof(soon()).await.is_ok());
        }
    }

    #[tokio::test]
    async fn a_configured_prompt_that_the_device_does_not_show_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        OutletFile::create(&path, 1, 8).unwrap();
        let mut console = device("cli", &path);
        let err = login(&mut console, Some("pdu1>"), soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::Protocol(_)), "{err}");
    }

    /// A console on an in-memory stream whose device side prints `shown` and
    /// then stays silent, with the password known as the plugins open it.
    fn echoing_device(shown: &'static [u8]) -> Console<tokio::io::DuplexStream> {
        use tokio::io::AsyncWriteExt;
        let (ours, mut theirs) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            theirs.write_all(shown).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(theirs);
        });
        let mut console = Console::new(
            ours,
            fencekit_console::ConsoleOptions {
                device: "pdu-test".into(),
                ..Default::default()
            },
        );
        console.add_secret(&fencekit_core::Secret::new("uniq-Zq81x"));
        console
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_prints_the_password_never_gets_it_into_an_error() {
        for (shown, prompt) in [
            // Busy, with the password in the last line.
            (&b"Welcome\r\nuser uniq-Zq81x busy"[..], None),
            // A prompt that is not the configured one.
            (&b"Welcome\r\nuniq-Zq81x>"[..], Some("apc>")),
            // No prompt at all.
            (&b"Welcome\r\nlast login by uniq-Zq81x"[..], None),
        ] {
            let mut console = echoing_device(shown);
            let err = login(&mut console, prompt, soon()).await.unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("Zq81x"), "{text}");
            assert!(text.contains("withheld"), "{text}");
        }
    }

    #[test]
    fn menu_entries_are_found_by_title_not_position() {
        let screen = "------- Device Manager ----\n\n     1- Phase Management\n     2- Outlet Management\n     3- Power Supply Status\n\n     <ESC>- Back, <ENTER>- Refresh\n";
        assert_eq!(entry(screen, "Outlet Management").as_deref(), Some("2"));
        assert_eq!(entry(screen, "Logout"), None);
        assert_eq!(entry(screen, "Back"), None);
    }

    #[test]
    fn the_outlet_screen_state_is_read() {
        let screen = "        Name         : db1\n        Outlet       : 2\n        State        : OFF\n\n     1- Immediate On\n";
        assert_eq!(screen_state(screen), PowerState::Off);
        assert_eq!(screen_state("nothing"), PowerState::Unknown);
    }
}
