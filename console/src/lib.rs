//! The console dialogue engine shared by the APC and Baytech plugins: send a line
//! or a key, wait for one of several patterns by a deadline, page through "Press
//! <ENTER> to continue", answer confirmations, learn a device's prompt, over any
//! async byte stream (so it is testable without a network), with a transcript at
//! trace level that masks secrets; plus the parsers of the outlet listings those
//! consoles print.
//!
//! The seed's expect scripts looped for ever when a pager went silent, hard-coded
//! a model's prompt (`RPC-28A>`) and never read an outlet back. Here every wait
//! takes the operation's deadline and ends by it ([`ConsoleError::TimedOut`]),
//! a closed session is [`ConsoleError::ConnectionLost`] at once, prompts are
//! learned ([`Console::learn_prompt`]) or configured, and outlet state is read
//! with [`parse`].
//!
//! A dialogue, in outline:
//!
//! ```no_run
//! # async fn run<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: S, password: fencekit_core::Secret, deadline: fencekit_core::Instant) -> Result<(), Box<dyn std::error::Error>> {
//! use fencekit_console::{parse, Console, ConsoleOptions, Pattern};
//! let mut console = Console::new(stream, ConsoleOptions { device: "pdu-a".into(), ..Default::default() });
//! console.add_secret(&password);
//! console.expect(&[Pattern::text("assword:").ignore_case()], deadline).await?;
//! console.send_secret_line(&password, deadline).await?;
//! let prompt = Pattern::prompt(console.learn_prompt(deadline).await?.matched);
//! console.send_line("olStatus all", deadline).await?;
//! let listing = console.expect(&[prompt], deadline).await?;
//! let outlets = parse::apc_cli::parse_ol_status(&listing.before)?;
//! # let _ = outlets; Ok(()) }
//! ```

pub mod blocking;
mod console;
mod error;
pub mod lock;
pub mod parse;
mod pattern;
pub mod sim;
pub mod ssh;
mod switch;
pub mod target;
pub mod telnet;
pub mod terminal;
mod transcript;

pub use blocking::ThreadStream;
pub use console::{Console, ConsoleOptions, Key, LineEnding, Match, PagedMatch};
pub use error::ConsoleError;
pub use lock::{DeviceLock, Wait, DEFAULT_LOCK_DIR};
pub use parse::{Outlet, ParseError};
pub use pattern::Pattern;
pub use ssh::{HostKeyCheck, SshAuth, SshConfig, SshError, SshStream};
pub use switch::{ConsoleDevice, ConsoleSwitch};
pub use transcript::{MASK, TRANSCRIPT_TARGET, WITHHELD};

/// The pagers APC and Baytech consoles show: "Press <ENTER> to continue..."
/// (APC menus, fence_apc waits for "Press <ENTER>"), "<Strike CR to continue.>"
/// (Baytech RPC-3 help) and the common "--More--". Not the bare "to continue"
/// the seed scripts waited for: APC's confirmation "Enter 'YES' to continue or
/// <ENTER> to cancel" holds it too, and answering that with Enter cancels.
pub fn common_pagers() -> Vec<Pattern> {
    vec![
        Pattern::text("Press <ENTER> to continue").ignore_case(),
        Pattern::text("Strike CR to continue").ignore_case(),
        Pattern::text("--More--").ignore_case(),
    ]
}
