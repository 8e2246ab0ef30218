//! `fencekit-apc-snmp-sim STATE_FILE`: an APC PDU emulator for net-snmp's `snmpd`,
//! configured as `pass_persist .1.3.6.1.4.1.318 PROGRAM STATE_FILE` (the state file may
//! also come from `FENCEKIT_APC_SIM_STATE`). For tests only; see `fencekit_apc::sim`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let state = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("FENCEKIT_APC_SIM_STATE"))
        .map(PathBuf::from);
    let Some(state) = state else {
        eprintln!("usage: fencekit-apc-snmp-sim STATE_FILE (or FENCEKIT_APC_SIM_STATE)");
        return ExitCode::from(2);
    };
    let emulator = fencekit_apc::sim::Emulator::new(state);
    let stdin = std::io::stdin();
    match emulator.serve(stdin.lock(), std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fencekit-apc-snmp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
