//! The OCF agent `ocf:fencekit:SANFilesystem`.
//!
//! Without root: against a stand-in `Filesystem` under a temporary `OCF_ROOT`, that
//! start/stop/validate-all are the stock agent's (same action, every `OCF_RESKEY_*`),
//! that monitor adds the SAN verdict of a fixture only when the stock one says
//! running, that bad parameters are OCF_ERR_CONFIGURED, and that meta-data is the
//! stock agent's, extended.
//!
//! As root, against the real resource-agents `Filesystem` and `ocf-tester`, on a real
//! ext4 filesystem on a loop device: ocf-tester passes, and with a fixture sysfs root
//! that maps the mount onto a multipath map whose paths are gone, the stock agent
//! still says running (0) while SANFilesystem fails (1) with the reason.

mod san_fixture;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use san_fixture::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A stand-in `Filesystem` that records each call (action, device, our parameter)
/// and answers what the environment tells it.
struct FakeStock {
    dir: tempfile::TempDir,
}

impl FakeStock {
    fn new() -> FakeStock {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("resource.d/heartbeat");
        fs::create_dir_all(&agents).unwrap();
        let meta = dir.path().join("meta.xml");
        fs::write(
            &meta,
            r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Filesystem" version="1.1">
<version>1.0</version>
<longdesc lang="en">Stand-in.</longdesc>
<shortdesc lang="en">Stand-in</shortdesc>
<parameters>
<parameter name="device" required="1">
<longdesc lang="en">device</longdesc>
<shortdesc lang="en">device</shortdesc>
<content type="string" default="" />
</parameter>
</parameters>
<actions>
<action name="monitor" depth="0" timeout="40s" interval="20s" />
</actions>
</resource-agent>
"#,
        )
        .unwrap();
        let script = agents.join("Filesystem");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$# $1 device=$OCF_RESKEY_device min_paths=$OCF_RESKEY_min_paths\" >> \"$FAKE_LOG\"\n\
                 case \"$1\" in\n meta-data) cat '{}';;\n monitor|status) echo 'stock says' >&2; exit ${{FAKE_MONITOR_RC:-0}};;\n *) exit ${{FAKE_RC:-0}};;\nesac\n",
                meta.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        FakeStock { dir }
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// A fixture where `mount_point` is mounted from mpatha (dm-3, backend fc).
fn fixture_with_mount(mount_point: &Path) -> San {
    let san = San::new();
    san.four_path_map();
    san.mount(
        mount_point.to_str().unwrap(),
        "253:3",
        "/dev/mapper/mpatha",
        "ext4",
    );
    san
}

fn agent(action: &str, env: &[(&str, &str)]) -> std::process::Output {
    run_bin(&["ocf", "SANFilesystem", action], env, LIMIT)
}

#[test]
fn start_stop_and_validate_all_are_the_stock_agents_with_every_parameter() {
    let stock = FakeStock::new();
    let root = stock.root();
    let log = stock.log().display().to_string();
    for (action, rc) in [
        ("start", "0"),
        ("stop", "0"),
        ("validate-all", "0"),
        ("notify", "3"),
    ] {
        let out = agent(
            action,
            &[
                ("OCF_ROOT", root.as_str()),
                ("FAKE_LOG", log.as_str()),
                ("FAKE_RC", rc),
                ("OCF_RESKEY_device", "-L data1"),
                ("OCF_RESKEY_min_paths", "2"),
            ],
        );
        assert_eq!(code(&out).to_string(), rc, "{action}: {}", text(&out));
    }
    assert_eq!(
        stock.calls(),
        "1 start device=-L data1 min_paths=2\n\
         1 stop device=-L data1 min_paths=2\n\
         1 validate-all device=-L data1 min_paths=2\n\
         1 notify device=-L data1 min_paths=2\n"
    );
}

#[test]
fn bad_parameters_are_refused_before_the_stock_agent_runs_except_on_stop() {
    let stock = FakeStock::new();
    let root = stock.root();
    let log = stock.log().display().to_string();
    for (name, value) in [
        ("OCF_RESKEY_san_backend", "scsi"),
        ("OCF_RESKEY_min_paths", "0"),
        ("OCF_RESKEY_probe", "perhaps"),
        ("OCF_RESKEY_probe_timeout", "-3"),
    ] {
        for action in ["validate-all", "start"] {
            let out = agent(
                action,
                &[
                    ("OCF_ROOT", root.as_str()),
                    ("FAKE_LOG", log.as_str()),
                    (name, value),
                ],
            );
            assert_eq!(code(&out), 6, "{action} {name}={value}: {}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let param = name.trim_start_matches("OCF_RESKEY_");
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with("ocf-exit-reason:parameter ") && l.contains(param)),
                "{stderr}"
            );
        }
    }
    assert_eq!(stock.calls(), "");
    // A stop must not depend on our parameters.
    let out = agent(
        "stop",
        &[
            ("OCF_ROOT", root.as_str()),
            ("FAKE_LOG", log.as_str()),
            ("OCF_RESKEY_san_backend", "scsi"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_tool_the_backend_needs_missing_on_this_node_is_not_installed() {
    let stock = FakeStock::new();
    let root = stock.root();
    let log = stock.log().display().to_string();
    let out = agent(
        "validate-all",
        &[
            ("OCF_ROOT", root.as_str()),
            ("FAKE_LOG", log.as_str()),
            ("OCF_RESKEY_san_backend", "powerpath"),
            ("OCF_RESKEY_powermt", "/nonexistent/powermt"),
        ],
    );
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(text(&out).contains("powermt not found at /nonexistent/powermt"));
}

#[test]
fn monitor_checks_the_paths_only_when_the_stock_agent_says_running() {
    let stock = FakeStock::new();
    let mnt = tempfile::tempdir().unwrap();
    let mount_point = fs::canonicalize(mnt.path()).unwrap().join("data");
    let san = fixture_with_mount(&mount_point);
    let root = stock.root();
    let log = stock.log().display().to_string();
    let sysfs_root = san.root().display().to_string();
    let dir = format!("{}/", mount_point.display());
    let env = |rc: &'static str| {
        vec![
            ("OCF_ROOT", root.clone()),
            ("FAKE_LOG", log.clone()),
            ("FAKE_MONITOR_RC", rc.to_string()),
            ("OCF_RESKEY_device", "/dev/loop7".to_string()),
            ("OCF_RESKEY_directory", dir.clone()),
            ("OCF_RESKEY_san_backend", "fc".to_string()),
            ("OCF_RESKEY_sysfs_root", sysfs_root.clone()),
            ("OCF_RESKEY_expected_paths", "4".to_string()),
        ]
    };
    let call = |action: &str, rc: &'static str| {
        let env = env(rc);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        agent(action, &env)
    };

    let out = call("monitor", "0");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("stock says"),
        "the stock agent's stderr is passed on"
    );

    san.lose_all_paths();
    for action in ["monitor", "status"] {
        let out = call(action, "0");
        assert_eq!(code(&out), 1, "{action}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .unwrap_or_else(|| panic!("no exit reason: {stderr}"));
        assert!(
            reason.starts_with(&format!(
                "SAN paths of {} failed: 0 of 4 paths to mpatha left",
                mount_point.display()
            )),
            "{reason}"
        );
        assert!(reason.contains("HBA host3 Linkdown"), "{reason}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("SANFilesystem") && l.contains(": ERROR: SAN paths of")),
            "{stderr}"
        );
    }

    // Not running, or any other stock failure, is passed on unchanged.
    assert_eq!(code(&call("monitor", "7")), 7);
    assert_eq!(code(&call("monitor", "1")), 1);
    assert!(stock.calls().contains("1 monitor device=/dev/loop7"));
}

#[test]
fn degraded_paths_keep_the_monitor_green_with_a_warning() {
    let stock = FakeStock::new();
    let mnt = tempfile::tempdir().unwrap();
    let mount_point = fs::canonicalize(mnt.path()).unwrap().join("data");
    let san = fixture_with_mount(&mount_point);
    san.set_disk_state("sdk", "offline");
    let root = stock.root();
    let log = stock.log().display().to_string();
    let sysfs_root = san.root().display().to_string();
    let out = agent(
        "monitor",
        &[
            ("OCF_ROOT", root.as_str()),
            ("FAKE_LOG", log.as_str()),
            ("OCF_RESKEY_directory", mount_point.to_str().unwrap()),
            ("OCF_RESKEY_san_backend", "fc"),
            ("OCF_RESKEY_sysfs_root", sysfs_root.as_str()),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(": WARNING: SAN paths of") && stderr.contains("sdk offline"),
        "{stderr}"
    );
    assert!(!stderr.contains("ocf-exit-reason:"), "{stderr}");
}

#[test]
fn unknown_path_state_fails_by_default_and_warns_when_told() {
    let stock = FakeStock::new();
    let mnt = tempfile::tempdir().unwrap();
    let mount_point = fs::canonicalize(mnt.path()).unwrap().join("data");
    let san = fixture_with_mount(&mount_point);
    let hung = san.script("dmsetup", "sleep 60");
    let root = stock.root();
    let log = stock.log().display().to_string();
    let sysfs_root = san.root().display().to_string();
    let run = |on_unknown: &str| {
        agent(
            "monitor",
            &[
                ("OCF_ROOT", root.as_str()),
                ("FAKE_LOG", log.as_str()),
                ("OCF_RESKEY_directory", mount_point.to_str().unwrap()),
                ("OCF_RESKEY_san_backend", "multipath"),
                ("OCF_RESKEY_dmsetup", hung.to_str().unwrap()),
                ("OCF_RESKEY_multipathd", "/nonexistent/multipathd"),
                ("OCF_RESKEY_sysfs_root", sysfs_root.as_str()),
                ("OCF_RESKEY_probe_timeout", "1"),
                ("OCF_RESKEY_san_unknown", on_unknown),
            ],
        )
    };
    let out = run("fail");
    assert_eq!(code(&out), 1, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ocf-exit-reason:SAN path state of")
            && stderr.contains("configuration or timeout problem")
            && stderr.contains("dmsetup did not answer within"),
        "{stderr}"
    );
    let out = run("warn");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("san_unknown=warn"), "{}", text(&out));
}

#[test]
fn san_backend_none_is_exactly_the_stock_agent() {
    let stock = FakeStock::new();
    let root = stock.root();
    let log = stock.log().display().to_string();
    for rc in ["0", "7", "1"] {
        let out = agent(
            "monitor",
            &[
                ("OCF_ROOT", root.as_str()),
                ("FAKE_LOG", log.as_str()),
                ("FAKE_MONITOR_RC", rc),
                ("OCF_RESKEY_san_backend", "none"),
                ("OCF_RESKEY_directory", "/nonexistent/mnt"),
            ],
        );
        assert_eq!(code(&out).to_string(), rc, "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "stock says\n");
    }
}

#[test]
fn meta_data_is_the_stock_agents_renamed_with_our_parameters() {
    let stock = FakeStock::new();
    let root = stock.root();
    let log = stock.log().display().to_string();
    let out = agent(
        "meta-data",
        &[("OCF_ROOT", root.as_str()), ("FAKE_LOG", log.as_str())],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.contains("<resource-agent name=\"SANFilesystem\" version=\"1.1\">"));
    assert!(xml.contains("<parameter name=\"device\" required=\"1\">"));
    for p in [
        "san_backend",
        "min_paths",
        "expected_paths",
        "probe",
        "probe_timeout",
        "san_unknown",
        "sysfs_root",
    ] {
        assert!(xml.contains(&format!("<parameter name=\"{p}\"")), "{p}");
    }

    // No stock agent: not installed, with the path it looked for.
    let out = agent("meta-data", &[("OCF_ROOT", "/nonexistent/ocf")]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(text(&out).contains("/nonexistent/ocf/resource.d/heartbeat/Filesystem"));
}

#[test]
fn no_action_is_a_usage_error_and_the_installed_wrapper_is_the_agent() {
    let out = run_bin(&["ocf", "SANFilesystem"], &[], LIMIT);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("usage: SANFilesystem"));

    // argv[0] personality: a link named SANFilesystem is the agent.
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("SANFilesystem");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = run_command(&mut Command::new(&link), &[], LIMIT);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = run_command(Command::new(&link).arg("usage"), &[], LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("usage: SANFilesystem"));

    let installed = Installed::new();
    let mode = fs::metadata(&installed.agent).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let out = run_command(Command::new(&installed.agent).arg("usage"), &[], LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("usage: SANFilesystem"));
}

// ---- against the real Filesystem agent and ocf-tester (root) ----

fn stock_filesystem() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/lib/ocf/resource.d/heartbeat/Filesystem");
    if path.is_file() {
        return Some(path);
    }
    // Reported like any missing peer.
    fencekit_tests::peers::require(
        "/usr/lib/ocf/resource.d/heartbeat/Filesystem",
        "resource-agents",
    )
}

struct RealFs {
    // Drop order: unmount before detaching.
    mount: MountPoint,
    dev: LoopDevice,
}

fn real_fs() -> Option<RealFs> {
    if !fencekit_tests::peers::require_root("mounting a loop-device filesystem") {
        return None;
    }
    fencekit_tests::peers::require_all(&[
        ("losetup", "util-linux"),
        ("mkfs.ext4", "e2fsprogs"),
        ("mount", "mount"),
    ])?;
    stock_filesystem()?;
    let dev = LoopDevice::attach();
    dev.mkfs_ext4();
    Some(RealFs {
        mount: MountPoint::new(),
        dev,
    })
}

fn ocf_tester(agent: &Path, fs: &RealFs, extra: &[String]) -> std::process::Output {
    let mut cmd = Command::new("ocf-tester");
    cmd.args(["-n", "sanfs"])
        .arg("-o")
        .arg(format!("device={}", fs.dev.dev.display()))
        .arg("-o")
        .arg(format!("directory={}", fs.mount.path.display()))
        .args(["-o", "fstype=ext4"]);
    for e in extra {
        cmd.arg("-o").arg(e);
    }
    cmd.arg(agent);
    run_command(&mut cmd, &[], LIMIT)
}

#[test]
fn ocf_tester_passes_on_a_real_ext4_loop_filesystem_with_and_without_the_san_check() {
    let _lock = system_lock();
    let Some(fs) = real_fs() else { return };
    let Some(_) = fencekit_tests::peers::require_all(&[
        ("ocf-tester", "resource-agents"),
        ("xmllint", "libxml2-utils"),
    ]) else {
        return;
    };
    let installed = Installed::new();
    let san = fixture_with_mount(&fs.mount.path);
    // The fixture tree is read by the agent as root only; nobody runs meta-data.
    let sysfs_root = format!("sysfs_root={}", san.root().display());
    for extra in [
        vec![
            "san_backend=fc".to_string(),
            sysfs_root.clone(),
            "expected_paths=4".to_string(),
        ],
        vec!["san_backend=none".to_string()],
    ] {
        let out = ocf_tester(&installed.agent, &fs, &extra);
        assert!(
            out.status.success(),
            "ocf-tester {extra:?} failed:\n{}",
            text(&out)
        );
        assert!(text(&out).contains("passed all tests"), "{}", text(&out));
        assert!(!fs.mount.is_mounted(), "ocf-tester ends with a stop");
    }
}

#[test]
fn monitor_fails_on_lost_paths_while_the_stock_agent_still_says_running() {
    let _lock = system_lock();
    let Some(fs) = real_fs() else { return };
    let Some(stock) = stock_filesystem() else {
        return;
    };
    fs.mount.mount(&fs.dev.dev);
    let san = fixture_with_mount(&fs.mount.path);
    san.lose_all_paths();
    let device = fs.dev.dev.display().to_string();
    let directory = fs.mount.path.display().to_string();
    let sysfs_root = san.root().display().to_string();
    let env = [
        ("OCF_ROOT", "/usr/lib/ocf"),
        ("OCF_RESOURCE_INSTANCE", "sanfs"),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
        ("OCF_RESKEY_device", device.as_str()),
        ("OCF_RESKEY_directory", directory.as_str()),
        ("OCF_RESKEY_fstype", "ext4"),
        ("OCF_RESKEY_san_backend", "fc"),
        ("OCF_RESKEY_sysfs_root", sysfs_root.as_str()),
        ("OCF_RESKEY_expected_paths", "4"),
    ];
    let stock_out = run_command(Command::new(&stock).arg("monitor"), &env, LIMIT);
    assert_eq!(code(&stock_out), 0, "stock: {}", text(&stock_out));

    let ours = agent("monitor", &env);
    assert_eq!(code(&ours), 1, "{}", text(&ours));
    let stderr = String::from_utf8_lossy(&ours.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with(&format!(
            "ocf-exit-reason:SAN paths of {directory} failed: 0 of 4 paths to mpatha left: HBA host3 Linkdown"
        ))),
        "{stderr}"
    );
    // Nothing was done to the node or the mount: the cluster decides.
    assert!(fs.mount.is_mounted());

    // The same mount with san_backend=none: the stock agent's answer.
    let mut none = env.to_vec();
    none.retain(|(k, _)| *k != "OCF_RESKEY_san_backend");
    none.push(("OCF_RESKEY_san_backend", "none"));
    assert_eq!(code(&agent("monitor", &none)), 0);
}
