//! `fencekit-ifmib-snmp-sim STATE_FILE`: a switch emulator (IF-MIB) for net-snmp's
//! `snmpd`, configured as `pass_persist .1.3.6.1.2.1.2 PROGRAM` and
//! `pass_persist .1.3.6.1.2.1.31 PROGRAM` with snmpd's own IF-MIB modules left out
//! (`-I -ifTable,-ifXTable,-interfaces`); the state file may also come from
//! `FENCEKIT_IFMIB_SIM_STATE`. For tests only; see `fencekit_ifmib::sim`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let state = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("FENCEKIT_IFMIB_SIM_STATE"))
        .map(PathBuf::from);
    let Some(state) = state else {
        eprintln!("usage: fencekit-ifmib-snmp-sim STATE_FILE (or FENCEKIT_IFMIB_SIM_STATE)");
        return ExitCode::from(2);
    };
    let emulator = fencekit_ifmib::sim::Emulator::new(state);
    let stdin = std::io::stdin();
    match emulator.serve(stdin.lock(), std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fencekit-ifmib-snmp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
