//! The SAN fixture of `fencekit_tests::san`, with this crate's configuration for
//! it, the captured command outputs under `tests/fixtures`, and a child guard.

#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use fencekit_qla_monitor::{Backend, SanConfig};
pub use fencekit_tests::san::*;

/// The check's configuration for a fixture SAN.
pub trait Configured {
    /// Backend auto, all tools pointing at names that do not exist until a test
    /// installs them, 10 s timeout, stuck probes recorded under the fixture's run dir.
    fn config(&self) -> SanConfig;
}

impl Configured for San {
    fn config(&self) -> SanConfig {
        let missing = |n: &str| self.scratch().join("missing").join(n);
        SanConfig {
            backend: Backend::Auto,
            root: self.root(),
            powermt: missing("powermt"),
            multipathd: missing("multipathd"),
            dmsetup: missing("dmsetup"),
            dd: missing("dd"),
            min_paths: 1,
            expected_paths: None,
            timeout: Duration::from_secs(10),
            probe: false,
            run_dir: Some(self.run_dir()),
            ..SanConfig::default()
        }
    }
}

pub fn fixture(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// Kills a process we started when the test ends, also on panic.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
