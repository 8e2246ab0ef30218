//! The Debian package, as an admin meets it: `scripts/package-deb.sh` builds it,
//! lintian has nothing to say (or each override carries its reason), `dpkg -i`
//! installs it, Pacemaker, cluster-glue and man find what it holds, `dpkg -r` removes
//! everything but the conffile and `dpkg -P` that too.
//!
//! Runs as root and changes the system (files under /usr and /etc): the package is
//! purged when the test ends, also on failure, and the system paths the other tests
//! link their agents at are locked meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_tests::system::{PathLock, EXTERNAL_PLUGIN_DIR, FENCE_AGENT_DIR};
use fencekit_tests::{bridge, peers, tool};

const PACKAGE: &str = "fencekit";
const CONFFILE: &str = "/etc/fencekit/fencekit.toml";
const PLUGINS: [&str; 5] = ["apc", "baytech", "ipmi", "script", "sim"];
const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_secs(60);

fn run(program: &str, args: &[&str]) -> tool::ToolOutput {
    let mut command = Command::new(program);
    command.args(args);
    tool::run(command, None, SHORT).unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])
        .stdout
        .contains("install ok installed")
}

fn known_to_dpkg() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])
        .status
        .success()
}

/// Purges the package when dropped: the system is left as the test found it.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if known_to_dpkg() {
            let _ = run("dpkg", &["--purge", PACKAGE]);
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

#[test]
fn the_package_installs_is_found_by_every_consumer_and_leaves_nothing_when_purged() {
    if !peers::require_root("installing a Debian package") {
        return;
    }
    let Some(_) = peers::require_all(&[
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("lintian", "lintian"),
        ("man", "man-db"),
        ("stonith_admin", "pacemaker-cli-utils"),
        ("stonith", "cluster-glue"),
    ]) else {
        return;
    };
    assert!(
        !known_to_dpkg(),
        "a {PACKAGE} package is already on this machine; not ours to replace"
    );
    // The paths other tests link their agents at are ours while the package is in.
    let _locks: Vec<PathLock> = PLUGINS
        .iter()
        .flat_map(|p| {
            [
                Path::new(FENCE_AGENT_DIR).join(format!("fence_fencekit_{p}")),
                Path::new(EXTERNAL_PLUGIN_DIR).join(format!("fencekit-{p}")),
            ]
        })
        .map(|path| PathLock::acquire(&path).expect("lock a system path"))
        .collect();

    let binary = bridge::binary().expect("the stonith-bridge binary");
    let mut build = Command::new("bash");
    build
        .arg(workspace().join("scripts/package-deb.sh"))
        .env("FENCEKIT_DEB_BINARY", &binary)
        .current_dir(workspace());
    let built = tool::run_ok(build, None, LONG).expect("scripts/package-deb.sh");
    let deb = built
        .stdout
        .lines()
        .last()
        .map(|l| workspace().join(l.trim()))
        .expect("the script names the package it built");
    assert!(deb.is_file(), "{}", deb.display());

    let fields = run(
        "dpkg-deb",
        &["--field", &deb.display().to_string(), "Depends"],
    );
    let depends = fields.stdout;
    for library in ["libc6", "libssl3", "libssh2-1"] {
        assert!(depends.contains(library), "Depends: {depends}");
    }

    let lint = run(
        "lintian",
        &["--tag-display-limit", "0", &deb.display().to_string()],
    );
    let findings: Vec<&str> = lint
        .stdout
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(findings.is_empty(), "lintian: {findings:#?}");

    let _purge = Purge;
    let install = run("dpkg", &["-i", &deb.display().to_string()]);
    assert!(install.status.success(), "dpkg -i: {}", install.text());

    // Pacemaker finds the fence agent and reads its metadata.
    let metadata = run(
        "stonith_admin",
        &["--metadata", "-a", "fence_fencekit_ipmi"],
    );
    assert!(
        metadata
            .stdout
            .contains("<resource-agent name=\"fence_fencekit_ipmi\""),
        "stonith_admin --metadata: {}",
        metadata.text()
    );
    // cluster-glue lists the plugin's parameters.
    let names = run("stonith", &["-t", "external/fencekit-ipmi", "-n"]);
    assert!(names.status.success(), "stonith -n: {}", names.text());
    assert!(!names.stdout.trim().is_empty(), "{}", names.text());
    // The agent prints its page; every page renders without a warning.
    let page = run("fence_fencekit_ipmi", &["-o", "manpage"]);
    assert!(
        page.stdout.contains(".TH FENCE_FENCEKIT_IPMI 8"),
        "{}",
        page.text()
    );
    let files = run("dpkg", &["-L", PACKAGE]).stdout;
    let pages: Vec<&str> = files.lines().filter(|f| f.ends_with(".8.gz")).collect();
    assert!(pages.len() > PLUGINS.len(), "{files}");
    for page in &pages {
        let mut man = Command::new("man");
        man.args(["--warnings", "-l", page]).env("MANWIDTH", "80");
        let out = tool::run(man, None, SHORT).expect("man");
        assert!(
            out.status.success() && out.stderr.trim().is_empty(),
            "{page}: {}",
            out.text()
        );
    }
    let man = run("man", &["-w", "fence_fencekit_ipmi"]);
    assert!(man.status.success(), "man finds the page: {}", man.text());
    // `fence` reads the installed configuration when none is named.
    let fence = run("stonith-bridge", &["fence", "-n", "node1", "-a", "status"]);
    assert_eq!(fence.status.code(), Some(2), "{}", fence.text());
    assert!(
        fence.stderr.contains(CONFFILE) && fence.stderr.contains("no nodes"),
        "{}",
        fence.text()
    );

    // Removed: nothing left but the conffile; purged: that too.
    let remove = run("dpkg", &["-r", PACKAGE]);
    assert!(remove.status.success(), "dpkg -r: {}", remove.text());
    assert!(!installed());
    for file in files.lines().filter(|f| !f.starts_with("/etc")) {
        let path = Path::new(file);
        assert!(
            path.is_dir() || std::fs::symlink_metadata(path).is_err(),
            "{file} is left after dpkg -r"
        );
    }
    assert!(Path::new(CONFFILE).is_file(), "dpkg -r keeps the conffile");
    let purge = run("dpkg", &["-P", PACKAGE]);
    assert!(purge.status.success(), "dpkg -P: {}", purge.text());
    assert!(
        !Path::new(CONFFILE).exists(),
        "dpkg -P removes the conffile"
    );
    assert!(!known_to_dpkg());
}
