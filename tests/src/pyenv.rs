//! Peers that come from PyPI (pyghmi, sushy-tools): each in a virtual environment of
//! its own under the cargo target directory, made on first use with Debian's Python
//! (`python3-venv`) and a pinned requirement, and reused by later runs. Never the
//! system's Python packages, never `pip` outside the environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::{peers, tool};

/// The Python of the environment `name` (`fencekit-NAME-venv` in the target
/// directory), with `requirement` installed and `import` importable; made once per
/// target directory and process. `Err` says why it could not be made.
pub fn python(name: &str, requirement: &str, import: &str) -> Result<PathBuf, String> {
    static MADE: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let made = MADE.get_or_init(|| Mutex::new(HashMap::new()));
    // Held while the environment is made: two tests of one binary must not both run
    // pip into the same directory.
    let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
    made.entry(name.to_string())
        .or_insert_with(|| make(name, requirement, import))
        .clone()
}

/// [`python`], or `None` after a loud `SKIPPED:` line; a panic under
/// `FENCEKIT_REQUIRE_PEERS=1`.
pub fn require(name: &str, requirement: &str, import: &str) -> Option<PathBuf> {
    match python(name, requirement, import) {
        Ok(python) => Some(python),
        Err(why) => {
            if peers::peers_required() {
                panic!(
                    "peer {requirement} is required ({}=1): {why}",
                    peers::REQUIRE_PEERS_ENV
                );
            }
            eprintln!("SKIPPED: {requirement} ({why})");
            None
        }
    }
}

fn make(name: &str, requirement: &str, import: &str) -> Result<PathBuf, String> {
    // Debian's own Python (with python3-venv) over whatever is first in PATH.
    let system = ["/usr/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| peers::find("python3"))
        .ok_or("python3 not installed (apt-get install python3 python3-venv)")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // TARGET/PROFILE/deps/TEST: keep the environment in TARGET.
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("cannot find the target directory")?;
    let venv = target.join(format!("fencekit-{name}-venv"));
    let python = venv.join("bin/python3");
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {import}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let stamp = venv.join("fencekit-requirement");
    let pinned = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == requirement);
    if pinned && imports(&python) {
        return Ok(python);
    }
    let mut venv_cmd = Command::new(&system);
    venv_cmd.args(["-m", "venv", "--clear"]).arg(&venv);
    tool::run_ok(venv_cmd, None, Duration::from_secs(180))
        .map_err(|e| format!("python3 -m venv failed (apt-get install python3-venv): {e}"))?;
    let mut install = Command::new(&python);
    install.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        requirement,
    ]);
    tool::run_ok(install, None, Duration::from_secs(600))
        .map_err(|e| format!("pip install {requirement} failed: {e}"))?;
    if !imports(&python) {
        return Err(format!(
            "{import} does not import after installing {requirement}"
        ));
    }
    std::fs::write(&stamp, requirement).map_err(|e| e.to_string())?;
    Ok(python)
}
