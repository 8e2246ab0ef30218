//! `fencekit-apc-console-sim`: a simulated APC PDU console for one SSH login (run
//! as a test sshd's `ForceCommand`). `--mode menu` (default) shows the numbered
//! menus of AOS v3, `--mode cli` the `apc>` command line of AOS v6. Outlet state is
//! kept in `--state FILE`; `--lock FILE` makes it a single-session unit;
//! `--fault lie|stall-pager|silent|drop` plays a fault.

use std::process::ExitCode;

use fencekit_console::sim::{raw_stdin, SimArgs, Term};

fn main() -> ExitCode {
    let args = match SimArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fencekit-apc-console-sim: {e}");
            return ExitCode::from(2);
        }
    };
    raw_stdin();
    let mut term = Term::new(std::io::stdin(), std::io::stdout());
    match fencekit_apc::console_sim::run(&args, &mut term) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fencekit-apc-console-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
