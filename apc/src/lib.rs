//! APC switched PDUs for fencekit: SNMP v1/v2c/v3 device profiles chosen from
//! `sysObjectID` (rPDU, rPDU2, MasterSwitch, MasterSwitch Plus), and the SSH console
//! (numbered menus and the `apc>` command line) as a fallback; implements
//! `PowerSwitch` with every outlet read back after it is switched.
//!
//! Nothing is implemented here yet: this crate only reserves its place in the
//! workspace.
