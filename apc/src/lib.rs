//! APC switched PDUs for fencekit over SNMP v1/v2c/v3: device profiles chosen from
//! `sysObjectID` (rPDU, rPDU2, MasterSwitch, MasterSwitch Plus), outlets found by
//! number or exact name, and [`ApcSnmpSwitch`], a `PowerSwitch` whose commands the
//! core fence algorithm confirms by reading every outlet back.
//!
//! Layers: [`ber`] (the BER we write and the SNMPv3 parts we read ourselves),
//! [`transport`] (UDP, retries within the deadline, USM via `snmp2`, errors told
//! apart), [`profile`] (PowerNet-MIB objects and values per family), [`switch`]
//! (the `PowerSwitch` and the parameter [`SCHEMA`]), and [`sim`], the PDU emulator
//! tests run behind net-snmp's `snmpd` (binary `fencekit-apc-snmp-sim`).
//!
//! The SSH console fallback is not here yet.

pub mod ber;
pub mod profile;
pub mod sim;
pub mod switch;
pub mod transport;

pub use profile::Family;
pub use switch::{ApcSnmpSwitch, SCHEMA};
