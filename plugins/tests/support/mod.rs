//! What the plugin tests share: building the example and test plugins with cargo
//! (once per test binary), validating parameters, and fence options for real time.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fencekit_core::fence::Devices;
use fencekit_core::schema::{self, Origin, Params, RawParam, Unknown};
use fencekit_core::{FenceOptions, FenceTarget, Plug, PowerSwitch, TargetPlug};
use fencekit_plugins::PowerPlugin;

/// The target directory these tests run from: the test binary is `TARGET/PROFILE/deps/NAME`.
fn target_root() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (profile_dir.parent().unwrap().to_path_buf(), profile)
}

/// Builds `package` (a cdylib of this workspace) with `features`, in a target
/// directory of its own under this one (so that feature variants do not overwrite
/// each other and no lock is shared with the cargo running the tests), and gives the
/// shared object's path. Each variant is built once per test binary.
pub fn build_plugin(package: &str, features: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<(String, String), PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (package.to_string(), features.to_string());
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let (root, profile) = target_root();
    let variant = if features.is_empty() {
        "default"
    } else {
        features
    };
    let target_dir = root.join("fencekit-plugin-tests").join(variant);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--target-dir"])
        .arg(&target_dir);
    if !features.is_empty() {
        command.args(["--features", features]);
    }
    if profile == "release" {
        command.arg("--release");
    }
    let status = command.status().unwrap();
    assert!(
        status.success(),
        "cargo build -p {package} failed; the plugin crates under plugins/ must be members of the workspace"
    );
    let lib = format!("lib{}.so", package.replace('-', "_"));
    let path = target_dir.join(&profile).join(lib);
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(key, path.clone());
    path
}

/// Copies a plugin into `dir` under `name` (a plugin directory of a test's own).
pub fn install(plugin: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(plugin, &to).unwrap();
    to
}

/// Validates `pairs` against the plugin's schema, as a configuration file would.
pub fn params(plugin: &PowerPlugin, pairs: &[(&str, &str)]) -> Result<Params, String> {
    let raw: Vec<RawParam> = pairs
        .iter()
        .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
        .collect();
    schema::validate(&[plugin.schema], &raw, Unknown::Reject, None)
        .map(|v| v.params)
        .map_err(|e| e.to_string())
}

pub fn device(plugin: &PowerPlugin, pairs: &[(&str, &str)]) -> Arc<dyn PowerSwitch> {
    plugin.build(&params(plugin, pairs).unwrap()).unwrap()
}

/// One device named `dev` feeding a node through `plugs`.
pub fn one_device(device: Arc<dyn PowerSwitch>, plugs: &[u32]) -> (Devices, FenceTarget) {
    let mut devices = Devices::new();
    devices.insert("dev".into(), device);
    let target = FenceTarget {
        node: "node1".into(),
        plugs: plugs
            .iter()
            .map(|n| TargetPlug {
                device: "dev".into(),
                plug: Plug::Number(*n),
            })
            .collect(),
    };
    (devices, target)
}

/// Fence options for devices that run in real time (plugins on threads, scripts as
/// processes), short enough for tests.
pub fn options() -> FenceOptions {
    FenceOptions {
        timeout: Duration::from_secs(20),
        power_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(100),
        ..FenceOptions::default()
    }
}

/// The deadline for one device call `after` from now.
pub fn deadline(after: Duration) -> fencekit_core::Instant {
    fencekit_core::Instant::now() + after
}
