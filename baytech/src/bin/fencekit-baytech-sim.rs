//! `fencekit-baytech-sim`: a simulated Baytech RPC strip console for one SSH login
//! (run as a test sshd's `ForceCommand`). `--mode module` (default) shows a DS/MMP
//! management module's "Enter Request" menu of `--strips N` strips; `--mode direct`
//! goes straight to the strip prompt. Outlet state is kept in `--state FILE`;
//! `--lock FILE` makes it a single-session unit; `--fault lie|stall|silent|drop`.

use std::process::ExitCode;

use fencekit_console::sim::{raw_stdin, SimArgs, Term};

fn main() -> ExitCode {
    let args = match SimArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fencekit-baytech-sim: {e}");
            return ExitCode::from(2);
        }
    };
    raw_stdin();
    let mut term = Term::new(std::io::stdin(), std::io::stdout());
    match fencekit_baytech::sim::run(&args, &mut term) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fencekit-baytech-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
