//! Finding peer programs, and the peer-missing rule: a test whose peer is not
//! installed FAILS when `FENCEKIT_REQUIRE_PEERS=1` (CI, where the peers are part of
//! the image) and otherwise prints a loud `SKIPPED:` line and returns, so a developer
//! without the package still gets a green run that says what it did not test.
//!
//! ```no_run
//! # fn a_test() {
//! let Some(ipmi_sim) = fencekit_tests::peers::require("ipmi_sim", "openipmi") else { return };
//! # let _ = ipmi_sim;
//! # }
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable that turns a missing peer from a skip into a failure.
pub const REQUIRE_PEERS_ENV: &str = "FENCEKIT_REQUIRE_PEERS";

/// Directories searched after PATH: daemons live in sbin, which a non-login PATH may
/// lack.
const SBIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"];

/// Where `program` is installed: PATH, then the sbin directories. A name with a `/`
/// is taken as a path.
pub fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether peers are required (`FENCEKIT_REQUIRE_PEERS=1`).
pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The path of `program` (from Debian package `package`), or `None` after a loud
/// `SKIPPED:` line on stderr. Panics when the program is missing and
/// `FENCEKIT_REQUIRE_PEERS=1`.
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    if let Some(path) = find(program) {
        return Some(path);
    }
    missing(
        &format!("peer {program} is required ({REQUIRE_PEERS_ENV}=1) but not installed: apt-get install {package}"),
        &format!("{program} not installed (apt-get install {package})"),
    );
    None
}

/// Like [`require`] for a data file a peer package installs (a schema, a
/// configuration template): the path, or `None` after a loud `SKIPPED:` line; a panic
/// under `FENCEKIT_REQUIRE_PEERS=1`.
pub fn require_file(path: &str, package: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.is_file() {
        return Some(path);
    }
    missing(
        &format!(
            "{} is required ({REQUIRE_PEERS_ENV}=1) but not installed: apt-get install {package}",
            path.display()
        ),
        &format!(
            "{} not installed (apt-get install {package})",
            path.display()
        ),
    );
    None
}

/// Like [`require`] for several programs at once: all paths in order, or `None` after
/// one `SKIPPED:` (or panic) line per missing program.
pub fn require_all(programs: &[(&str, &str)]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = programs
        .iter()
        .map(|(program, package)| require(program, package))
        .collect();
    found.into_iter().collect()
}

/// Whether the test runs as root, which `what` needs (sshd, local test users);
/// otherwise treated like a missing peer: `SKIPPED:` line, or a panic under
/// `FENCEKIT_REQUIRE_PEERS=1`.
pub fn require_root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    missing(
        &format!("{what} is required ({REQUIRE_PEERS_ENV}=1) but needs root"),
        &format!("{what} needs root"),
    );
    false
}

fn missing(failure: &str, skip: &str) {
    if peers_required() {
        panic!("{failure}");
    }
    let test = std::thread::current()
        .name()
        .map(|name| format!(" [{name}]"))
        .unwrap_or_default();
    eprintln!(
        "\n*** SKIPPED{test}: {skip}; set {REQUIRE_PEERS_ENV}=1 to make this a failure ***\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_is_found_in_path() {
        let sh = find("sh").unwrap();
        assert!(sh.is_absolute());
        assert!(sh.ends_with("sh"));
    }

    #[test]
    fn an_absent_program_is_not_found() {
        assert_eq!(find("fencekit-no-such-peer"), None);
        assert_eq!(find("/nonexistent/fencekit-no-such-peer"), None);
    }

    #[test]
    fn a_missing_peer_skips_or_fails_as_the_environment_says() {
        // Whichever way the variable is set for this run, `require` must follow it.
        let outcome = std::panic::catch_unwind(|| require("fencekit-no-such-peer", "nothing"));
        if peers_required() {
            let panic = outcome.unwrap_err();
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(message.contains(
                "peer fencekit-no-such-peer is required (FENCEKIT_REQUIRE_PEERS=1) but not installed: apt-get install nothing"
            ));
        } else {
            assert_eq!(outcome.unwrap(), None);
        }
    }
}
