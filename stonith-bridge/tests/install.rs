//! `stonith-bridge install --prefix DIR [--stonith-dir DIR]`: cluster-glue's plugin
//! directory is Debian's by default and another where RPM distributions keep it; the
//! wrappers find the binary wherever they are put, and a directory that is not plain
//! is refused.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn install(prefix: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn cluster_glue_plugins_go_where_the_distribution_keeps_them_and_run_from_there() {
    for (extra, dir) in [
        (&[][..], "usr/lib/stonith/plugins/external"),
        (
            &["--stonith-dir", "/usr/lib64/stonith/plugins"][..],
            "usr/lib64/stonith/plugins/external",
        ),
        // The external plugins' directory itself, as cluster-glue documents it.
        (
            &["--stonith-dir", "/usr/lib64/stonith/plugins/external"][..],
            "usr/lib64/stonith/plugins/external",
        ),
    ] {
        let prefix = tempfile::tempdir().unwrap();
        let out = install(prefix.path(), extra);
        assert!(out.status.success(), "{out:?}");
        let wrapper = prefix.path().join(dir).join("fencekit-ipmi");
        let names = Command::new(&wrapper)
            .arg("getconfignames")
            .output()
            .unwrap();
        assert!(names.status.success(), "{wrapper:?}: {names:?}");
        assert!(
            String::from_utf8_lossy(&names.stdout).contains("ipaddr"),
            "{names:?}"
        );
        assert!(
            !prefix.path().join(dir).join("external").exists(),
            "no external/external"
        );
    }
    // A merged /usr: `lib` is a link to `usr/lib`, and the directory is given
    // through it. The wrapper counts its way up from where it really is.
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", prefix.path().join("lib")).unwrap();
    let out = install(prefix.path(), &["--stonith-dir", "/lib/stonith/plugins"]);
    assert!(out.status.success(), "{out:?}");
    for wrapper in [
        "lib/stonith/plugins/external/fencekit-ipmi",
        "usr/lib/stonith/plugins/external/fencekit-ipmi",
    ] {
        let names = Command::new(prefix.path().join(wrapper))
            .arg("getconfignames")
            .output()
            .unwrap();
        assert!(names.status.success(), "{wrapper}: {names:?}");
    }
    // A link that leads out of the prefix: refused, nothing run from elsewhere.
    let outside = tempfile::tempdir().unwrap();
    let prefix = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), prefix.path().join("lib")).unwrap();
    let out = install(prefix.path(), &["--stonith-dir", "/lib/stonith/plugins"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leads out of the prefix"),
        "{out:?}"
    );
    let prefix = tempfile::tempdir().unwrap();
    let out = install(prefix.path(), &["--stonith-dir", "../elsewhere"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stonith-dir"));
    let out = install(prefix.path(), &["--stonith-dir", "/external"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stonith-dir"));
}

/// Links planted in a prefix never make install write outside it: a temporary
/// file that is a link is replaced, not written through; `usr/sbin` or the OCF
/// directory leading out is refused before anything is written, there or here.
#[test]
fn links_in_the_prefix_never_lead_a_write_outside_it() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let prefix = tempfile::tempdir().unwrap();
    let external = prefix.path().join("usr/lib/stonith/plugins/external");
    let sbin = prefix.path().join("usr/sbin");
    std::fs::create_dir_all(&external).unwrap();
    std::fs::create_dir_all(&sbin).unwrap();
    for tmp in [
        external.join(".fencekit-ipmi.new"),
        sbin.join(".stonith-bridge.new"),
    ] {
        std::os::unix::fs::symlink(&victim, tmp).unwrap();
    }
    let out = install(prefix.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    for written in [external.join("fencekit-ipmi"), sbin.join("stonith-bridge")] {
        let meta = std::fs::symlink_metadata(&written).unwrap();
        assert!(meta.file_type().is_file(), "{written:?} is a regular file");
    }
    let names = Command::new(external.join("fencekit-ipmi"))
        .arg("getconfignames")
        .output()
        .unwrap();
    assert!(names.status.success(), "{names:?}");

    // A link in the binary's place, even to the very binary installing: replaced
    // by a file of the prefix, so that no agent runs a file elsewhere.
    let prefix = tempfile::tempdir().unwrap();
    let sbin = prefix.path().join("usr/sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::os::unix::fs::symlink(BIN, sbin.join("stonith-bridge")).unwrap();
    let out = install(prefix.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::symlink_metadata(sbin.join("stonith-bridge")).unwrap();
    assert!(meta.file_type().is_file(), "{meta:?}");

    // Something in a file's way: refused naming it, before anything is written.
    let prefix = tempfile::tempdir().unwrap();
    let blocking = prefix
        .path()
        .join("usr/lib/ocf/resource.d/fencekit/.SANFilesystem.new");
    std::fs::create_dir_all(&blocking).unwrap();
    let out = install(prefix.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".SANFilesystem.new is a directory"),
        "{out:?}"
    );
    assert!(!prefix.path().join("usr/sbin").exists(), "nothing written");

    // A directory install would make where it puts a file (`--stonith-dir` naming
    // a file's path), a file where it makes a directory, a link leading nowhere:
    // refused, named, before anything is made or written.
    for (stonith_dir, plant, says) in [
        (
            "/usr/lib/ocf/resource.d/fencekit/SANFilesystem",
            None,
            "would be a directory where install puts the file",
        ),
        (
            "/usr/sbin/stonith-bridge",
            None,
            "would be a directory where install puts the file",
        ),
        (
            "/usr/sbin/fence_fencekit_apc",
            None,
            "would be a directory where install puts the file",
        ),
        (
            "/usr/lib/stonith/plugins",
            Some(("usr/lib/ocf", false)),
            "usr/lib/ocf is not a directory",
        ),
        (
            "/usr/lib/stonith/plugins",
            Some(("usr/lib/ocf", true)),
            "usr/lib/ocf",
        ),
    ] {
        let prefix = tempfile::tempdir().unwrap();
        if let Some((path, dangling)) = plant {
            let path = prefix.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if dangling {
                std::os::unix::fs::symlink("nowhere/at/all", &path).unwrap();
            } else {
                std::fs::write(&path, "a file").unwrap();
            }
        }
        let out = install(prefix.path(), &["--stonith-dir", stonith_dir]);
        assert_eq!(out.status.code(), Some(1), "{stonith_dir}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{stonith_dir}: {out:?}"
        );
        assert!(
            !prefix.path().join("usr/sbin").exists(),
            "{stonith_dir}: nothing made"
        );
    }

    for linked in ["usr/sbin", "usr/lib/ocf"] {
        let away = tempfile::tempdir().unwrap();
        let prefix = tempfile::tempdir().unwrap();
        let link = prefix.path().join(linked);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(away.path(), &link).unwrap();
        let out = install(prefix.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{linked}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("leads out of the prefix"),
            "{linked}: {out:?}"
        );
        let left: Vec<_> = std::fs::read_dir(away.path()).unwrap().collect();
        assert!(left.is_empty(), "{linked}: written outside: {left:?}");
        assert!(
            !prefix.path().join("usr/lib/stonith").exists()
                && !prefix.path().join("usr/sbin/stonith-bridge").exists(),
            "{linked}: nothing written in the prefix either"
        );
    }
}

/// The directories install makes are 0755 whatever the umask: the OCF agent is run
/// as `nobody` for its meta-data, and cluster-glue's plugins by whoever runs stonith.
#[test]
fn directories_made_under_a_strict_umask_are_still_open_to_read() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let prefix = parent.path().join("new-prefix");
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" install --prefix \"$1\"")
        .arg(BIN)
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for dir in [
        "",
        "usr",
        "usr/sbin",
        "usr/lib",
        "usr/lib/stonith/plugins/external",
        "usr/lib/ocf/resource.d/fencekit",
    ] {
        let mode = std::fs::metadata(prefix.join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{dir:?}: {mode:o}");
    }
}

/// A refusal makes nothing, not even the prefix; an install whose binary was
/// removed (its agents' links left dangling) is repaired by installing again; a
/// relative prefix works.
#[test]
fn a_refused_install_makes_nothing_and_a_broken_one_is_repaired() {
    let parent = tempfile::tempdir().unwrap();
    let prefix = parent.path().join("a/b");
    let out = install(&prefix, &["--stonith-dir", "/usr/sbin/stonith-bridge"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!parent.path().join("a").exists(), "the prefix was made");

    let out = install(&prefix, &[]);
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(prefix.join("usr/sbin/stonith-bridge")).unwrap();
    let out = install(&prefix, &[]);
    assert!(out.status.success(), "{out:?}");
    let agent = Command::new(prefix.join("usr/sbin/fence_fencekit_ipmi"))
        .args(["-o", "metadata"])
        .output()
        .unwrap();
    assert!(agent.status.success(), "{agent:?}");

    let out = Command::new(BIN)
        .current_dir(parent.path())
        .args(["install", "--prefix", "rel/p/."])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let names = Command::new(
        parent
            .path()
            .join("rel/p/usr/lib/stonith/plugins/external/fencekit-ipmi"),
    )
    .arg("getconfignames")
    .output()
    .unwrap();
    assert!(names.status.success(), "{names:?}");
}
