//! Shared by the `san_*` tests: the SAN fixture of `fencekit_tests::san` (sysfs, mountinfo and
//! `/dev` links in the layouts of qla-monitor's fixtures: two qla2xxx HBAs, four
//! rports, four disks, dm-multipath map `mpatha` = dm-3 over them), stand-in tools,
//! running the binary, and guards for the real system objects the root tests make
//! (loop devices, mounts, blkio cgroups), each undone on drop, also on panic.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

pub use fencekit_tests::san::San;

/// Runs the binary with `args` and `env`, killing it if it runs past `limit` (a
/// safety net for a broken build, not a timing assertion).
pub fn run_bin(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    run_command(Command::new(BIN).args(args), env, limit)
}

pub fn run_command(command: &mut Command, env: &[(&str, &str)], limit: Duration) -> Output {
    command
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{command:?} did not end within {limit:?}");
        }
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

// ---- real system objects (root) ----

/// Tests in one binary that attach loop devices, mount or make cgroups take turns.
pub fn system_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A loop device on a 64 MiB file in a temporary directory; detached on drop.
pub struct LoopDevice {
    pub dev: PathBuf,
    pub dir: tempfile::TempDir,
}

impl LoopDevice {
    pub fn attach() -> LoopDevice {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        let image = image.to_str().unwrap().to_string();
        // Another process may take the free device between the search and the
        // attach: try again a few times.
        let mut last = String::new();
        for _ in 0..5 {
            match sh("losetup", &["-f", "--show", &image]) {
                Ok(dev) => {
                    return LoopDevice {
                        dev: PathBuf::from(dev),
                        dir,
                    }
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("cannot attach a loop device: {last}");
    }

    pub fn name(&self) -> String {
        self.dev.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// `MAJ:MIN` from sysfs.
    pub fn devt(&self) -> String {
        fs::read_to_string(format!("/sys/block/{}/dev", self.name()))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn mkfs_ext4(&self) {
        sh("mkfs.ext4", &["-q", "-F", self.dev.to_str().unwrap()]).unwrap();
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // The device may still be busy for a moment after an umount.
        for _ in 0..20 {
            if sh("losetup", &["-d", self.dev.to_str().unwrap()]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {}", self.dev.display());
    }
}

/// A mount point in a temporary directory readable by `nobody` (ocf-tester runs
/// meta-data as that user); unmounted on drop if still mounted.
pub struct MountPoint {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl MountPoint {
    pub fn new() -> MountPoint {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = fs::canonicalize(dir.path()).unwrap().join("mnt");
        fs::create_dir(&path).unwrap();
        MountPoint { path, _dir: dir }
    }

    pub fn is_mounted(&self) -> bool {
        let wanted = self.path.to_string_lossy().replace(' ', "\\040");
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
    }

    pub fn mount(&self, dev: &Path) {
        sh(
            "mount",
            &[
                "-t",
                "ext4",
                dev.to_str().unwrap(),
                self.path.to_str().unwrap(),
            ],
        )
        .unwrap();
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        for _ in 0..20 {
            if !self.is_mounted() {
                return;
            }
            let _ = sh("umount", &[self.path.to_str().unwrap()]);
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not unmount {}", self.path.display());
    }
}

/// `stonith-bridge install --prefix` into a temporary directory that `nobody` can
/// traverse; the agent's path.
pub struct Installed {
    pub dir: tempfile::TempDir,
    pub agent: PathBuf,
}

impl Installed {
    pub fn new() -> Installed {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let out = run_bin(
            &["install", "--prefix", dir.path().to_str().unwrap()],
            &[],
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{}", text(&out));
        let agent = dir
            .path()
            .join("usr/lib/ocf/resource.d/fencekit/SANFilesystem");
        assert!(
            text(&out).contains(agent.to_str().unwrap()),
            "{}",
            text(&out)
        );
        Installed { dir, agent }
    }
}

/// Waits (bounded) until `done` holds.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
