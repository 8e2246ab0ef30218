//! `stonith-bridge`: fencekit's one binary. It maps each interface's conventions
//! (argv, environment, stdin, exit codes, XML) onto `fencekit_core` calls; it never
//! talks to a device itself. It answers as:
//!
//! * `fence_fencekit_<plugin>` (or `stonith-bridge fence-agent <plugin>`): the
//!   fence-agent API of Pacemaker's fencer;
//! * `fencekit-<plugin>` under cluster-glue's `external/` directory (or
//!   `stonith-bridge external <plugin> <op> [host]`): a cluster-glue external plugin;
//! * `SANFilesystem` under `resource.d/fencekit/` (or `stonith-bridge ocf
//!   SANFilesystem <action>`): the OCF agent `ocf:fencekit:SANFilesystem`, the stock
//!   `Filesystem` agent with a SAN path check in `monitor`;
//! * `stonith-bridge fence|demo|san-check|install`: the admin's commands
//!   (`san-check` exits as a Nagios plugin).

// The standard printing macros panic when a write fails; the reader of our stdout or
// stderr (the fencer, a pipe into `head`) may have gone away in the middle of a fence,
// and a panic there would end the run with exit 101 instead of finishing the work
// and its exit code. Defined before the modules, these shadow the standard ones in
// the whole crate: output that cannot be written is lost, and a run whose standard
// output was lost does not exit 0 (see `finish`). Standard error passes the secret
// screen (`fencekit_core::screen`); standard output carries answers a caller parses
// (a host list, a status), which a screen must not change, and the few lines of it
// that can quote a device's error (a summary) are screened where they are printed.
macro_rules! println {
    () => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout()).is_err() {
            $crate::stdout_lost();
        }
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        if writeln!(std::io::stdout(), "{text}").is_err() {
            $crate::stdout_lost();
        }
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        if write!(std::io::stdout(), "{text}").is_err() {
            $crate::stdout_lost();
        }
    }};
}
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        let mut text = format!($($arg)*);
        text.push('\n');
        $crate::logging::stderr_text(&text);
    }};
}

mod agent;
mod cli;
mod demo;
mod exit;
mod external;
mod install;
mod logging;
mod man;
mod ocf;
mod plugins_cmd;
mod report;
mod request;
mod san;
mod standalone;
mod xml;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

/// Which interface this run serves, chosen from argv[0] or the subcommand.
enum Personality {
    Agent {
        plugin: String,
        args: Vec<String>,
    },
    External {
        plugin: String,
        op: String,
        /// The words after the operation: the host, which is one word.
        host: Vec<String>,
    },
    Ocf {
        agent: String,
        action: Option<String>,
    },
    Command(cli::Cli),
}

/// The arguments after argv[0] as text; an argument that is not UTF-8 is refused
/// by its position (its bytes are not shown: it may be a secret).
fn text_args(invoked: &str, args: &[OsString]) -> Result<Vec<String>, u8> {
    args.iter()
        .enumerate()
        .map(|(index, arg)| {
            arg.to_str().map(str::to_string).ok_or_else(|| {
                eprintln!("{invoked}: argument {} is not UTF-8 text", index + 1);
                exit::FAILED
            })
        })
        .collect()
}

fn personality() -> Result<Personality, u8> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("stonith-bridge")
        .to_string();
    let rest = args.get(1..).unwrap_or_default();
    if let Some(plugin) = invoked.strip_prefix("fence_fencekit_") {
        return Ok(Personality::Agent {
            plugin: plugin.to_string(),
            args: text_args(&invoked, rest)?,
        });
    }
    if let Some(plugin) = invoked.strip_prefix("fencekit-") {
        let rest = text_args(&invoked, rest)?;
        return Ok(Personality::External {
            plugin: plugin.to_string(),
            op: rest.first().cloned().unwrap_or_default(),
            host: rest.get(1..).unwrap_or_default().to_vec(),
        });
    }
    if invoked == ocf::AGENT {
        let rest = text_args(&invoked, rest)?;
        return Ok(Personality::Ocf {
            agent: ocf::AGENT.to_string(),
            action: rest.first().cloned(),
        });
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A monitoring system reads 2 as "SAN failed": a san-check command line it
        // cannot act on is UNKNOWN (3) instead.
        Err(e) if e.use_stderr() && rest.iter().any(|a| a == "san-check") => {
            let _ = e.print();
            return Err(san::USAGE);
        }
        Err(e) => e.exit(),
    };
    Ok(match cli.command {
        cli::Command::FenceAgent { plugin, args } => Personality::Agent { plugin, args },
        cli::Command::Ocf { agent, action } => Personality::Ocf { agent, action },
        cli::Command::External { plugin, op, host } => Personality::External { plugin, op, host },
        _ => Personality::Command(cli),
    })
}

/// Keeps secrets out of core dumps and out of other users' reach: no core file, and
/// not dumpable (which also makes `/proc/PID/environ`, `mem` and the like readable
/// by root only, and forbids ptrace by the same user). Done first, before any
/// secret is read.
fn harden() {
    use nix::sys::resource::{setrlimit, Resource};
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("stonith-bridge: warning: cannot disable core dumps: {e}");
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("stonith-bridge: warning: cannot make the process non-dumpable: {e}");
    }
}

/// What runs on the async runtime, prepared while the process had one thread.
enum Work {
    Agent(agent::Prepared),
    External(external::Prepared),
    Command(cli::Cli),
}

fn main() -> ExitCode {
    logging::start_stderr();
    harden();
    let personality = match personality() {
        Ok(personality) => personality,
        Err(code) => return finish(code),
    };
    // Everything that reads input (stdin, the environment) and may remove variables
    // from the environment runs here, while this is the only thread: the async
    // runtime below starts threads, and changing the environment is only sound
    // while no other thread may read it.
    let work = match personality {
        // The OCF agent needs no async runtime, and sets OCF_ROOT for the stock agent
        // while it is still the only thread.
        Personality::Ocf { agent, action } => {
            logging::init(0, false);
            return finish(ocf::run(&agent, action.as_deref()));
        }
        Personality::Agent { plugin, args } => match agent::prepare(&plugin, &args) {
            request::Stage::Done(code) => return finish(code),
            request::Stage::Run(prepared) => Work::Agent(prepared),
        },
        Personality::External { plugin, op, host } => {
            logging::init(0, false);
            match external::prepare(&plugin, &op, &host) {
                request::Stage::Done(code) => return finish(code),
                request::Stage::Run(prepared) => Work::External(prepared),
            }
        }
        Personality::Command(cli) => Work::Command(cli),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stonith-bridge: cannot start the async runtime: {e}");
            return finish(exit::FAILED);
        }
    };
    let code = runtime.block_on(async {
        let work = async move { run_work(work).await };
        tokio::select! {
            code = work => code,
            signal = stop_signal() => {
                // Stopped from outside (SIGTERM, ^C): the children go too, so that
                // no script's late `on` or `off` lands after this run has ended.
                let killed = fencekit_core::child::kill_all();
                logging::report!(
                    "stonith-bridge: stopped by signal {signal}; killed {killed} child process group(s)"
                );
                u8::try_from(128 + signal).unwrap_or(exit::FAILED)
            }
        }
    });
    // The result is out: do not wait for blocking tasks (a name lookup or an SSH
    // connect the deadline abandoned may hang for minutes in the resolver); the
    // process ends now and takes them with it.
    runtime.shutdown_background();
    finish(code)
}

/// The signals whose default action ends the process and that can be caught:
/// each one stops the run as SIGTERM does, so that the children go too (SIGKILL,
/// and a crash's SIGSEGV or SIGABRT, leave that to each child's supervisor).
const STOP_SIGNALS: &[nix::sys::signal::Signal] = {
    use nix::sys::signal::Signal as S;
    &[
        S::SIGTERM,
        S::SIGINT,
        S::SIGHUP,
        S::SIGQUIT,
        S::SIGUSR1,
        S::SIGUSR2,
        S::SIGALRM,
        S::SIGVTALRM,
        S::SIGPROF,
        S::SIGIO,
        S::SIGPWR,
        S::SIGXCPU,
        S::SIGXFSZ,
        S::SIGSTKFLT,
    ]
};

/// The first of [`STOP_SIGNALS`] to arrive, as its number; never, for none that
/// can be listened for.
async fn stop_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for sig in STOP_SIGNALS {
        let number = *sig as i32;
        if let Ok(mut stream) = signal(SignalKind::from_raw(number)) {
            streams.push(Box::pin(async move {
                stream.recv().await;
                number
            }));
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    futures_select_first(streams).await
}

/// The value of whichever of `futures` finishes first.
async fn futures_select_first<F: std::future::Future<Output = i32> + Unpin>(
    mut futures: Vec<F>,
) -> i32 {
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(n) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(n);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn run_work(work: Work) -> u8 {
    match work {
        Work::Agent(prepared) => agent::execute(prepared).await,
        Work::External(prepared) => external::execute(prepared).await,
        Work::Command(cli) => {
            logging::init(cli.verbose, matches!(cli.command, cli::Command::Demo(_)));
            match cli.command {
                cli::Command::Fence(args) => standalone::fence(args).await,
                cli::Command::Demo(args) => demo::run(args).await,
                cli::Command::List(args) => standalone::list(args).await,
                cli::Command::Check(args) => standalone::check(args).await,
                cli::Command::SanCheck(args) => san::run(args).await,
                cli::Command::Plugins { plugin_dir } => plugins_cmd::run(plugin_dir.as_deref()),
                cli::Command::Install {
                    prefix,
                    stonith_dir,
                } => match install::install_with(&prefix, &stonith_dir) {
                    Ok(paths) => {
                        for path in paths {
                            println!("{}", path.display());
                        }
                        exit::OK
                    }
                    Err(e) => {
                        eprintln!(
                            "stonith-bridge: install into {} failed: {e}",
                            prefix.display()
                        );
                        exit::FAILED
                    }
                },
                cli::Command::Man { dir } => match man::write_all(&dir) {
                    Ok(paths) => {
                        for path in paths {
                            println!("{}", path.display());
                        }
                        exit::OK
                    }
                    Err(e) => {
                        eprintln!(
                            "stonith-bridge: writing the manual pages into {} failed: {e}",
                            dir.display()
                        );
                        exit::FAILED
                    }
                },
                cli::Command::Completions { shell } => {
                    // Made in memory, then written like any output: the generator
                    // panics when its writer fails (a closed pipe, a full disk).
                    let mut script = Vec::new();
                    man::completions(shell, &mut script);
                    print!("{}", String::from_utf8_lossy(&script));
                    exit::OK
                }
                cli::Command::FenceAgent { .. }
                | cli::Command::External { .. }
                | cli::Command::Ocf { .. } => exit::USAGE,
            }
        }
    }
}

/// Flushes what was printed, and exits with `code`. After plugin code was
/// abandoned at a deadline, the process ends at once (see
/// [`fencekit_plugins::external::exit`]): an abandoned plugin initialiser holds the
/// dynamic loader's lock, which an ordinary exit waits for forever.
/// How long the end of a run waits for standard error's queue to be written: long
/// enough for any reader that reads, short next to every deadline.
const STDERR_DRAIN: std::time::Duration = std::time::Duration::from_millis(300);

/// Set when a write to standard output failed.
static STDOUT_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that standard output lost a write (a closed pipe, a full disk).
fn stdout_lost() {
    STDOUT_LOST.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The process's exit: output flushed, and a run whose standard output (a status, a
/// list, metadata) could not be written ends 1, not 0: its caller did not get
/// what it asked for. A failure stays the failure it was.
fn finish(code: u8) -> ExitCode {
    // Nothing a program of the site's started outlives the run: not the programs
    // a deadline abandoned, not what left their process groups.
    fencekit_core::child::wind_up();
    if std::io::stdout().flush().is_err() {
        stdout_lost();
    }
    let code = if code == 0 && STDOUT_LOST.load(std::sync::atomic::Ordering::SeqCst) {
        logging::report!("stonith-bridge: standard output could not be written; exit 1");
        exit::FAILED
    } else {
        code
    };
    // Standard error is written by its own thread, which may be blocked on a
    // reader that stopped reading (and holds stderr's lock): it gets a moment,
    // and is never waited for beyond it.
    logging::drain_stderr(STDERR_DRAIN);
    if fencekit_plugins::external::abandoned() {
        fencekit_plugins::external::exit(code);
    }
    ExitCode::from(code)
}
