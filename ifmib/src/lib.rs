//! Fabric fencing over SNMP IF-MIB, as fence-agents' `fence_ifmib`: a node is cut
//! off from its network or storage fabric by setting its switch port's
//! `ifAdminStatus` down, and let back by setting it up. [`IfMibSwitch`] is the
//! `PowerSwitch` the `ifmib` plugin builds: a plug is an interface, by `ifIndex`
//! (digits) or by its exact `ifDescr` or `ifName` (a name two interfaces answer to
//! is refused, nothing switched), "off" is `ifAdminStatus` down(2), "on" is up(1),
//! and the state the core fence algorithm reads back is `ifAdminStatus` with
//! `ifOperStatus`: a port set down is off only once it no longer reads up. [`mib`] holds the IF-MIB objects (RFC 2863);
//! [`switch`] the device and the parameter [`SCHEMA`] under fence_ifmib's names.
//! SNMP itself (v1, v2c, v3 with USM) and its parameter group are `fencekit_snmp`'s.
//! [`sim`] is a switch emulator for tests, behind snmpd, whose ports can misbehave.

pub mod mib;
pub mod sim;
pub mod switch;

pub use switch::{IfMibSwitch, SCHEMA};
