//! The `stonith-bridge` binary under test, for end-to-end tests of its front ends.
//!
//! This crate cannot use `CARGO_BIN_EXE_*` of another package, so the binary is found
//! next to the test executable: a test runs as `TARGET/PROFILE/deps/NAME-HASH`, and
//! cargo puts the binary at `TARGET/PROFILE/stonith-bridge`. When the tests run under
//! cargo (env `CARGO` set), the binary is rebuilt once per test process first, so a
//! test never drives a stale build. [`Installed`] lays the binary out in a temporary
//! prefix with `stonith-bridge install`, as a packager would.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

use crate::{tool, HarnessError};

/// The binary's name, which is also its package's name.
pub const BINARY: &str = "stonith-bridge";

/// A cold build of the workspace on a small machine takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `install` copies one file and writes a few links and scripts.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The up-to-date `stonith-bridge` binary of this build's profile.
pub fn binary() -> Result<PathBuf, HarnessError> {
    workspace_binary(BINARY, BINARY)
}

/// The up-to-date binary `bin` of workspace package `package` (an emulator, a
/// simulator), built once per test process like [`binary`].
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf, HarnessError> {
    type Built = Mutex<HashMap<(String, String), Result<PathBuf, String>>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // One build at a time: cargo would serialise them anyway, on its own lock.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry((package.to_string(), bin.to_string()))
        .or_insert_with(|| locate_and_build(package, bin).map_err(|e| e.to_string()))
        .clone()
        .map_err(|why| {
            // A failed build's output is long: the first test to ask carries it, the
            // others point there.
            static REPORTED: AtomicBool = AtomicBool::new(false);
            let why = if REPORTED.swap(true, Ordering::Relaxed) {
                "failed; the first test that failed on it in this run has the details".into()
            } else {
                why
            };
            HarnessError::Io {
                what: format!("find or build {bin}"),
                source: std::io::Error::other(why),
            }
        })
}

fn locate_and_build(package: &str, bin: &str) -> Result<PathBuf, HarnessError> {
    let profile_dir = &profile_dir()?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        build(
            Path::new(&cargo),
            profile_dir,
            &["-p", package, "--bin", bin],
        )?;
    }
    let binary = profile_dir.join(bin);
    let executable = binary
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Err(HarnessError::Io {
            what: format!("find {}", binary.display()),
            source: std::io::Error::other(format!(
                "not built; run `cargo build -p {package} --bin {bin}` or the tests under cargo"
            )),
        });
    }
    Ok(binary)
}

/// The shared object of workspace package `package`, a `cdylib` (an external
/// plugin), built once per test process: `TARGET/PROFILE/lib<crate name>.so`.
pub fn workspace_library(package: &str) -> Result<PathBuf, HarnessError> {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(package.to_string())
        .or_insert_with(|| {
            let profile_dir = profile_dir().map_err(|e| e.to_string())?;
            if let Some(cargo) = std::env::var_os("CARGO") {
                build(Path::new(&cargo), &profile_dir, &["-p", package, "--lib"])
                    .map_err(|e| e.to_string())?;
            }
            let library = profile_dir.join(format!("lib{}.so", package.replace('-', "_")));
            if library.is_file() {
                Ok(library)
            } else {
                Err(format!("{} not built", library.display()))
            }
        })
        .clone()
        .map_err(|why| HarnessError::Io {
            what: format!("find or build {package}"),
            source: std::io::Error::other(why),
        })
}

fn profile_dir() -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe()
        .map_err(|e| HarnessError::io("find the running test executable", e))?;
    exe.parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| HarnessError::Io {
            what: format!("find the target directory from {}", exe.display()),
            source: std::io::Error::other("the test does not run from TARGET/PROFILE/deps"),
        })
}

/// `cargo build ARGS` into the same target directory and profile as the running
/// test.
fn build(cargo: &Path, profile_dir: &Path, args: &[&str]) -> Result<(), HarnessError> {
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet"]).args(args);
    // The profile directory is named after the profile, except that `dev` and `test`
    // build into `debug` and `bench` into `release`.
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    // The package directory: inside the workspace, whatever directory the test has.
    if let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        command.current_dir(manifest_dir);
    }
    tool::run_ok(command, None, BUILD_TIMEOUT).map(|_| ())
}

/// `stonith-bridge install --prefix TEMPDIR`: the binary, its `fence_fencekit_*`
/// links and its cluster-glue wrapper scripts, removed when the guard drops.
pub struct Installed {
    dir: TempDir,
}

impl std::fmt::Debug for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed")
            .field("prefix", &self.dir.path())
            .finish()
    }
}

impl Installed {
    /// Installs the up-to-date binary into a fresh temporary prefix.
    pub fn new() -> Result<Installed, HarnessError> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("fencekit-install-")
            .tempdir()
            .map_err(|e| HarnessError::io("create a temporary install prefix", e))?;
        // Cluster daemons that run agents as other users must reach them.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("open the install prefix to other users", e))?;
        let mut command = Command::new(&binary);
        command.arg("install").arg("--prefix").arg(dir.path());
        tool::run_ok(command, None, INSTALL_TIMEOUT)?;
        let installed = Installed { dir };
        for path in [installed.binary(), installed.agent("sim")] {
            if !path.exists() {
                return Err(HarnessError::Io {
                    what: format!(
                        "check the install layout in {}",
                        installed.prefix().display()
                    ),
                    source: std::io::Error::other(format!("{} is missing", path.display())),
                });
            }
        }
        Ok(installed)
    }

    /// The install prefix (stands for `/`).
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// `PREFIX/usr/sbin/stonith-bridge`.
    pub fn binary(&self) -> PathBuf {
        self.prefix().join("usr/sbin").join(BINARY)
    }

    /// `PREFIX/usr/sbin/fence_fencekit_<plugin>`, the fence agent.
    pub fn agent(&self, plugin: &str) -> PathBuf {
        self.prefix().join("usr/sbin").join(agent_name(plugin))
    }

    /// `PREFIX/usr/lib/ocf/resource.d/fencekit`, the OCF provider directory (holding
    /// `SANFilesystem`).
    pub fn ocf_provider(&self) -> PathBuf {
        self.prefix().join("usr/lib/ocf/resource.d/fencekit")
    }

    /// `PREFIX/usr/lib/stonith/plugins/external/fencekit-<plugin>`, the cluster-glue
    /// plugin.
    pub fn external(&self, plugin: &str) -> PathBuf {
        self.prefix()
            .join("usr/lib/stonith/plugins/external")
            .join(external_name(plugin))
    }
}

/// The fence agent's name for a plugin, as Pacemaker's `stonith:` resources name it.
pub fn agent_name(plugin: &str) -> String {
    format!("fence_fencekit_{}", plugin.replace('-', "_"))
}

/// The cluster-glue plugin's name, without the `external/` directory.
pub fn external_name(plugin: &str) -> String {
    format!("fencekit-{plugin}")
}

/// The plugs' states in the `sim` plugin's `state_file` (lines `N on|off`), which
/// separate processes share: what a test reads to see what the device really did.
pub fn sim_states(
    state_file: &Path,
) -> Result<std::collections::BTreeMap<u32, bool>, HarnessError> {
    let text = std::fs::read_to_string(state_file)
        .map_err(|e| HarnessError::io(format!("read {}", state_file.display()), e))?;
    let bad = || HarnessError::BadState {
        path: state_file.to_path_buf(),
        content: text.clone(),
    };
    let mut states = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let plug = words.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let on = match words.next() {
            Some("on") => true,
            Some("off") => false,
            _ => return Err(bad()),
        };
        states.insert(plug, on);
    }
    Ok(states)
}

/// Writes a `sim` state file with plugs `1..=states.len()` in these states (true: on).
pub fn write_sim_states(state_file: &Path, states: &[bool]) -> Result<(), HarnessError> {
    let text: String = (1..)
        .zip(states)
        .map(|(n, on)| format!("{n} {}\n", if *on { "on" } else { "off" }))
        .collect();
    std::fs::write(state_file, text)
        .map_err(|e| HarnessError::io(format!("write {}", state_file.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_state_files_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_sim_states(&path, &[true, false, true]).unwrap();
        let states = sim_states(&path).unwrap();
        assert_eq!(
            states.into_iter().collect::<Vec<_>>(),
            [(1, true), (2, false), (3, true)]
        );
    }

    #[test]
    fn a_garbled_sim_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, "1 maybe\n").unwrap();
        assert!(matches!(
            sim_states(&path),
            Err(HarnessError::BadState { .. })
        ));
    }

    #[test]
    fn agent_and_plugin_names_follow_the_install_layout() {
        assert_eq!(agent_name("apc-snmp"), "fence_fencekit_apc_snmp");
        assert_eq!(external_name("sim"), "fencekit-sim");
    }
}
