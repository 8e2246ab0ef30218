//! APC switched PDUs for fencekit over SNMP v1/v2c/v3: device profiles chosen from
//! `sysObjectID` (rPDU, rPDU2, MasterSwitch, MasterSwitch Plus), outlets found by
//! number or exact name, and [`ApcSnmpSwitch`], a `PowerSwitch` whose commands the
//! core fence algorithm confirms by reading every outlet back.
//!
//! Layers: SNMP itself is the `fencekit-snmp` crate (still reachable here as
//! [`ber`] and [`transport`]), [`profile`] (PowerNet-MIB objects and values per
//! family), [`switch`] (the `PowerSwitch` and the parameter [`SCHEMA`], whose SNMP
//! group is `fencekit-snmp`'s), and [`sim`], the PDU emulator tests run behind
//! net-snmp's `snmpd` (binary `fencekit-apc-snmp-sim`).
//!
//! [`ApcSwitch`] ([`device`]) is what the `apc` plugin builds: SNMP, the console,
//! or SNMP with the console as fallback (`transport`). The SSH console is [`console`]: [`ApcConsoleSwitch`] drives the menu UI or the
//! `apc>` command line over SSH (the fallback transport), with its parameters in
//! [`console::CONSOLE_PARAMS`]; [`console_sim`] is the console simulator tests run
//! behind a real sshd (binary `fencekit-apc-console-sim`).

pub mod console;
pub mod console_sim;
pub mod device;
pub mod profile;
pub mod sim;
pub mod switch;

/// The BER codec of `fencekit-snmp`, under the name it had in this crate (code
/// written against it keeps compiling; new code imports `fencekit_snmp`).
pub use fencekit_snmp::ber;

/// SNMP over UDP (`fencekit-snmp`), under the name it had in this crate.
pub mod transport {
    pub use fencekit_snmp::{
        community_response, status_name, Agent, AuthProtocol, Credentials, PrivProtocol, Resend,
        Response, SecLevel, Session, Usm, VarValue, Version,
    };
}

pub use console::{ApcConsoleSwitch, CONSOLE_PARAMS};
pub use device::ApcSwitch;
pub use profile::Family;
pub use switch::{ApcSnmpSwitch, SCHEMA};
