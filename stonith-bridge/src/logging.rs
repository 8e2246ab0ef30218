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
        .with_writer(|| Queued)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Logs to `path` (appended) instead of stderr, at `verbose` (2 debug, 3 trace):
/// fence-agents' `debug_file`. Secrets never reach a log, here either.
pub fn init_to_file(path: &std::path::Path, verbose: u8) -> std::io::Result<()> {
    // A regular file only: opening a FIFO with no reader would block the run.
    let file = fencekit_core::files::open_regular(
        path,
        std::fs::OpenOptions::new().create(true).append(true),
    )?;
    let level = if verbose >= 3 { "trace" } else { "debug" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::sync::Mutex::new(Lossy(file)))
        .with_target(false)
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// Standard error, written by a thread of its own from a bounded queue: a reader
/// that stops reading (a pipe nobody drains) blocks that thread, never the
/// operation, whose deadline and exit code stand; what does not fit in the queue
/// is lost. [`drain_stderr`] gives the queue a moment at the end of the run.
mod queue {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// Lines (log events, report lines) waiting at most.
    const CAPACITY: usize = 4096;

    struct Queue {
        tx: SyncSender<Vec<u8>>,
    }

    static QUEUE: OnceLock<Option<Queue>> = OnceLock::new();
    /// Lines queued and not yet written.
    static PENDING: AtomicUsize = AtomicUsize::new(0);

    fn queue() -> Option<&'static Queue> {
        QUEUE
            .get_or_init(|| {
                let (tx, rx) = sync_channel::<Vec<u8>>(CAPACITY);
                // The thread only writes to fd 2: it reads no environment, so it
                // may start while the main thread still edits its own.
                std::thread::Builder::new()
                    .name("fencekit-stderr".into())
                    .spawn(move || {
                        let mut stderr = std::io::stderr();
                        for bytes in rx {
                            let _ = stderr.write_all(&bytes);
                            let _ = stderr.flush();
                            PENDING.fetch_sub(1, Ordering::SeqCst);
                        }
                    })
                    .ok()
                    .map(|_| Queue { tx })
            })
            .as_ref()
    }

    /// Starts the writer thread now (see `start_stderr`).
    pub fn start() {
        let _ = queue();
    }

    /// Queues `bytes` for standard error; dropped when the queue is full. Without
    /// a thread (none could start), written here.
    pub fn write(bytes: &[u8]) {
        match queue() {
            Some(queue) => {
                PENDING.fetch_add(1, Ordering::SeqCst);
                if queue.tx.try_send(bytes.to_vec()).is_err() {
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                }
            }
            None => {
                let _ = std::io::stderr().write_all(bytes);
            }
        }
    }

    /// Waits until every queued line is written, or `max`.
    pub fn drain(max: Duration) {
        let until = Instant::now() + max;
        while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Writes `text` (one or more whole lines) to standard error through the queue,
/// past the secret screen.
pub fn stderr_text(text: &str) {
    queue::write(fencekit_core::screen::screen_lines(text).as_bytes());
}

/// Starts standard error's writer thread. Called first thing in `main`: a thread
/// started later, while an external plugin's abandoned initialiser holds the
/// dynamic loader's lock, could not set itself up, and every message would be lost.
pub fn start_stderr() {
    queue::start();
}

/// Gives the standard error queue up to `max` to be written out.
pub fn drain_stderr(max: std::time::Duration) {
    queue::drain(max);
}

/// The tracing writer for standard error: each event, screened, into the queue.
struct Queued;

impl std::io::Write for Queued {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        queue::write(fencekit_core::screen::screen_lines(&text).as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A log writer whose writes never fail. `tracing_subscriber` reports a failed write
/// on stderr through `eprintln!`, which panics when stderr is a closed pipe (the
/// fencer or a `| head` went away): a log line that cannot be written is lost, and
/// the fence goes on to its confirmed end and exit code.
struct Lossy<W>(W);

impl<W: std::io::Write> std::io::Write for Lossy<W> {
    /// Also the log's secret screen: a formatted event (one write) that shows a
    /// secret of this run is written as a withheld line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let screened = fencekit_core::screen::screen_lines(&text);
        let _ = if matches!(screened, std::borrow::Cow::Borrowed(_)) {
            self.0.write_all(buf)
        } else {
            self.0.write_all(screened.as_bytes())
        };
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Where syslog messages go: the system logger's socket, or, for tests,
/// `$FENCEKIT_SYSLOG_SOCKET`.
const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog's `LOG_DAEMON` facility, as fence-agents and cluster daemons log.
const LOG_DAEMON: u8 = 3 << 3;
/// Severities used here.
pub const LOG_ERR: u8 = 3;
pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;
/// The longest message sent: far more than one report line.
const SYSLOG_MAX: usize = 2048;

static IDENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process in syslog (`fence_fencekit_ipmi`, `external/fencekit-apc`);
/// the first call wins.
pub fn set_syslog_ident(ident: &str) {
    let _ = IDENT.set(
        ident
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(48)
            .collect(),
    );
}

/// Sends `text` to syslog at `severity`, facility daemon, as one datagram. Never
/// fails and never waits: a logger that is absent or full loses the line, and the
/// operation goes on to its confirmed end. Report lines hold no secret (they are the
/// same lines as on stderr).
pub fn syslog(severity: u8, text: &str) {
    let path = std::env::var_os("FENCEKIT_SYSLOG_SOCKET")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(SYSLOG_SOCKET));
    let ident = IDENT.get().map_or("stonith-bridge", String::as_str);
    let mut body: String = fencekit_core::screen::screen_lines(text)
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > SYSLOG_MAX {
        let mut end = SYSLOG_MAX;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    let line = format!(
        "<{}>{ident}[{}]: {body}",
        LOG_DAEMON | (severity & 7),
        std::process::id()
    );
    if let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = socket.set_nonblocking(true);
        let _ = socket.send_to(line.as_bytes(), path);
    }
}

/// A report line of a front end: on stderr (unless quiet), and in syslog as a
/// warning when it is one, else as an error.
pub fn report_line(line: &str) {
    let line = fencekit_core::screen::screen_lines(line);
    queue::write(format!("{line}\n").as_bytes());
    let severity = if line.contains(": warning:") || line.contains(": note:") {
        LOG_WARNING
    } else {
        LOG_ERR
    };
    for part in line.lines().filter(|l| !l.trim().is_empty()) {
        syslog(severity, part);
    }
}

/// `eprintln!` for a front end's report lines, also sent to syslog
/// ([`report_line`]).
macro_rules! report {
    ($($arg:tt)*) => {
        $crate::logging::report_line(&format!($($arg)*))
    };
}
pub(crate) use report;
