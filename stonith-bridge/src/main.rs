//! `stonith-bridge`: fencekit's one binary. It maps each interface's conventions
//! (argv, environment, stdin, exit codes) onto `fencekit_core` calls; it never talks
//! to a device itself. This release has the standalone `fence` command and `demo`;
//! the cluster-glue and fence-agent front ends grow from the same pieces.

mod cli;
mod demo;
mod exit;
mod logging;
mod report;
mod standalone;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.verbose, matches!(cli.command, cli::Command::Demo(_)));
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
        match cli.command {
            cli::Command::Fence(args) => standalone::fence(args).await,
            cli::Command::Demo(args) => demo::run(args).await,
        }
    });
    ExitCode::from(code)
}
