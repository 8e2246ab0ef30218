//! The peer test harness of fencekit: every end-to-end test starts the real programs
//! fencekit talks to (OpenIPMI's `ipmi_sim`, net-snmp's `snmpd`, OpenSSH's `sshd`) on
//! a free loopback port, each in a temporary directory of its own with its own
//! configuration, waits until the peer answers, and kills it by PID when the guard
//! drops, also when the test panics. A test whose peer is not installed skips loudly,
//! or fails under `FENCEKIT_REQUIRE_PEERS=1` (see [`peers`]).
//!
//! ```no_run
//! use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions};
//! use fencekit_tests::peers;
//!
//! # fn a_test() {
//! let Some(_) = peers::require("ipmi_sim", "openipmi") else { return };
//! let bmc = IpmiSim::start(IpmiSimOptions::default()).unwrap();
//! assert!(bmc.power_state().unwrap());
//! # }
//! ```

pub mod accounts;
pub mod bridge;
pub mod cluster;
pub mod consoles;
pub mod daemon;
mod error;
pub mod fabric;
pub mod ipmi_sim;
pub mod leaks;
pub mod matrix;
pub mod pacemaker;
pub mod peers;
pub mod ports;
pub mod pyenv;
pub mod redfish;
pub mod san;
pub mod snmpd;
pub mod sshd;
pub mod system;
pub mod telnetd;
pub mod tool;
pub mod toy;

pub use daemon::Daemon;
pub use error::HarnessError;

/// `bytes` random bytes as lower-case hex, for unique names and GUIDs. Test names and
/// GUIDs need uniqueness, not secrecy: std's randomly keyed hasher is enough and keeps
/// the harness free of a random-number dependency.
pub(crate) fn random_hex(bytes: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        for byte in hasher.finish().to_be_bytes() {
            if out.len() < bytes * 2 {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_hex_has_the_asked_length_and_differs_between_calls() {
        let a = super::random_hex(16);
        let b = super::random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
