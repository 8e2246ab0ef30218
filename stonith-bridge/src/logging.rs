//! Logs on stderr through `tracing`: the level from `-v` (warn, info, debug, trace)
//! or `RUST_LOG`. Secrets never reach a log: they are `Secret`s, which print `***`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sets up logging; `quiet` makes the default level `off` (the demo prints its own
/// account of every step).
pub fn init(verbose: u8, quiet: bool) {
    let level = match verbose {
        0 if quiet => "off",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = if verbose == 0 {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
    } else {
        EnvFilter::new(level)
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Lossy(std::io::stderr()))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Logs to `path` (appended) instead of stderr, at `verbose` (2 debug, 3 trace):
/// fence-agents' `debug_file`. Secrets never reach a log, here either.
pub fn init_to_file(path: &std::path::Path, verbose: u8) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let level = if verbose >= 3 { "trace" } else { "debug" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::sync::Mutex::new(Lossy(file)))
        .with_target(false)
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// A log writer whose writes never fail. `tracing_subscriber` reports a failed write
/// on stderr through `eprintln!`, which panics when stderr is a closed pipe (the
/// fencer or a `| head` went away): a log line that cannot be written is lost, and
/// the fence goes on to its confirmed end and exit code.
struct Lossy<W>(W);

impl<W: std::io::Write> std::io::Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
