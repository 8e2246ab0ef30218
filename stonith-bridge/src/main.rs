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

mod agent;
mod cli;
mod demo;
mod exit;
mod external;
mod install;
mod logging;
mod ocf;
mod plugins_cmd;
mod report;
mod request;
mod san;
mod standalone;
mod xml;

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
        host: Option<String>,
    },
    Ocf {
        agent: String,
        action: Option<String>,
    },
    Command(cli::Cli),
}

fn personality() -> Personality {
    let args: Vec<String> = std::env::args().collect();
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("stonith-bridge");
    if let Some(plugin) = invoked.strip_prefix("fence_fencekit_") {
        return Personality::Agent {
            plugin: plugin.to_string(),
            args: args[1..].to_vec(),
        };
    }
    if let Some(plugin) = invoked.strip_prefix("fencekit-") {
        return Personality::External {
            plugin: plugin.to_string(),
            op: args.get(1).cloned().unwrap_or_default(),
            host: args.get(2).cloned(),
        };
    }
    if invoked == ocf::AGENT {
        return Personality::Ocf {
            agent: ocf::AGENT.to_string(),
            action: args.get(1).cloned(),
        };
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A monitoring system reads 2 as "SAN failed": a san-check command line it
        // cannot act on is UNKNOWN (3) instead.
        Err(e) if e.use_stderr() && args.iter().skip(1).any(|a| a == "san-check") => {
            let _ = e.print();
            std::process::exit(i32::from(san::USAGE));
        }
        Err(e) => e.exit(),
    };
    match cli.command {
        cli::Command::FenceAgent { plugin, args } => Personality::Agent { plugin, args },
        cli::Command::Ocf { agent, action } => Personality::Ocf { agent, action },
        cli::Command::External { plugin, op, host } => Personality::External { plugin, op, host },
        _ => Personality::Command(cli),
    }
}

fn main() -> ExitCode {
    let personality = personality();
    // The OCF agent needs no async runtime, and sets OCF_ROOT for the stock agent
    // while it is still the only thread.
    if let Personality::Ocf { agent, action } = &personality {
        logging::init(0, false);
        return ExitCode::from(ocf::run(agent, action.as_deref()));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stonith-bridge: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(async {
        match personality {
            Personality::Agent { plugin, args } => agent::run(&plugin, &args).await,
            Personality::External { plugin, op, host } => {
                logging::init(0, false);
                external::run(&plugin, &op, host.as_deref()).await
            }
            // Served above, before the runtime starts.
            Personality::Ocf { .. } => exit::USAGE,
            Personality::Command(cli) => {
                logging::init(cli.verbose, matches!(cli.command, cli::Command::Demo(_)));
                match cli.command {
                    cli::Command::Fence(args) => standalone::fence(args).await,
                    cli::Command::Demo(args) => demo::run(args).await,
                    cli::Command::List(args) => standalone::list(args).await,
                    cli::Command::Check(args) => standalone::check(args).await,
                    cli::Command::SanCheck(args) => san::run(args).await,
                    cli::Command::Plugins { plugin_dir } => plugins_cmd::run(plugin_dir.as_deref()),
                    cli::Command::Install { prefix } => match install::install(&prefix) {
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
                    cli::Command::FenceAgent { .. }
                    | cli::Command::External { .. }
                    | cli::Command::Ocf { .. } => exit::USAGE,
                }
            }
        }
    });
    ExitCode::from(code)
}
