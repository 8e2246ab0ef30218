//! Shared by the `san_*` tests: a SAN in a temporary directory (sysfs, mountinfo and
//! `/dev` links in the layouts of qla-monitor's fixtures: two qla2xxx HBAs, four
//! rports, four disks, dm-multipath map `mpatha` = dm-3 over them), stand-in tools,
//! running the binary, and guards for the real system objects the root tests make
//! (loop devices, mounts, blkio cgroups), each undone on drop, also on panic.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// (disk, devt, host, rport index, target id)
pub const FOUR_PATHS: [(&str, &str, u32, u32, u32); 4] = [
    ("sdc", "8:32", 3, 0, 0),
    ("sdd", "8:48", 3, 1, 1),
    ("sdk", "8:160", 4, 2, 0),
    ("sdl", "8:176", 4, 3, 1),
];

pub const WWID: &str = "36005076801810523a800000000000011";

pub struct San {
    dir: tempfile::TempDir,
}

impl San {
    pub fn new() -> San {
        let san = San {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in [
            "sys/block",
            "sys/dev/block",
            "sys/class/fc_host",
            "sys/class/fc_remote_ports",
            "sys/class/scsi_host",
            "proc/self",
            "dev/disk/by-label",
            "dev/mapper",
            "bin",
            "run",
        ] {
            fs::create_dir_all(san.root().join(d)).unwrap();
        }
        fs::write(san.root().join("proc/self/mountinfo"), "").unwrap();
        san
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn sys(&self) -> PathBuf {
        self.root().join("sys")
    }

    fn write(&self, path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{text}\n")).unwrap();
    }

    fn host_dir(&self, host: u32) -> PathBuf {
        self.sys()
            .join(format!("devices/pci0000:00/0000:00:0{host}.0/host{host}"))
    }

    pub fn hba(&self, host: u32, port_state: &str, link_state: &str) {
        fs::create_dir_all(self.host_dir(host)).unwrap();
        let fc = self.sys().join(format!("class/fc_host/host{host}"));
        self.write(fc.join("port_state"), port_state);
        let scsi = self.sys().join(format!("class/scsi_host/host{host}"));
        self.write(scsi.join("proc_name"), "qla2xxx");
        self.write(scsi.join("link_state"), link_state);
    }

    pub fn rport(&self, host: u32, n: u32, state: &str) {
        fs::create_dir_all(self.host_dir(host).join(format!("rport-{host}:0-{n}"))).unwrap();
        let dir = self
            .sys()
            .join(format!("class/fc_remote_ports/rport-{host}:0-{n}"));
        self.write(dir.join("port_state"), state);
        self.write(dir.join("roles"), "FCP Target");
    }

    pub fn disk(&self, name: &str, devt: &str, host: u32, rport: u32, target: u32, state: &str) {
        let dev = self.host_dir(host).join(format!(
            "rport-{host}:0-{rport}/target{host}:0:{target}/{host}:0:{target}:1"
        ));
        self.write(dev.join("state"), state);
        let block = self.sys().join("block").join(name);
        fs::create_dir_all(&block).unwrap();
        self.write(block.join("dev"), devt);
        symlink(&dev, block.join("device")).unwrap();
        symlink(&block, self.sys().join("dev/block").join(devt)).unwrap();
    }

    pub fn set_disk_state(&self, name: &str, state: &str) {
        self.write(
            self.sys().join("block").join(name).join("device/state"),
            state,
        );
    }

    pub fn dm(&self, dm: &str, devt: &str, name: &str, uuid: &str, slaves: &[&str]) {
        let dir = self.sys().join("block").join(dm);
        self.write(dir.join("dm/name"), name);
        self.write(dir.join("dm/uuid"), uuid);
        self.write(dir.join("dev"), devt);
        fs::create_dir_all(dir.join("slaves")).unwrap();
        for s in slaves {
            symlink(self.sys().join("block").join(s), dir.join("slaves").join(s)).unwrap();
        }
        symlink(&dir, self.sys().join("dev/block").join(devt)).unwrap();
        symlink(
            format!("../{dm}"),
            self.root().join("dev/mapper").join(name),
        )
        .unwrap();
    }

    /// Two HBAs, four rports, four disks, `mpatha` (dm-3, 253:3) over them; all well.
    pub fn four_path_map(&self) {
        self.hba(3, "Online", "Link Up - F_Port");
        self.hba(4, "Online", "Link Up - F_Port");
        for (disk, devt, host, rport, target) in FOUR_PATHS {
            self.rport(host, rport, "Online");
            self.disk(disk, devt, host, rport, target, "running");
        }
        let slaves: Vec<&str> = FOUR_PATHS.iter().map(|p| p.0).collect();
        self.dm("dm-3", "253:3", "mpatha", &format!("mpath-{WWID}"), &slaves);
    }

    /// Both HBAs lose their link and every rport is blocked: no path left.
    pub fn lose_all_paths(&self) {
        for host in [3, 4] {
            self.write(
                self.sys()
                    .join(format!("class/fc_host/host{host}/port_state")),
                "Linkdown",
            );
            self.write(
                self.sys()
                    .join(format!("class/scsi_host/host{host}/link_state")),
                "Link Down",
            );
        }
        for (_, _, host, rport, _) in FOUR_PATHS {
            self.write(
                self.sys().join(format!(
                    "class/fc_remote_ports/rport-{host}:0-{rport}/port_state"
                )),
                "Blocked",
            );
        }
    }

    /// A line in the fixture's mountinfo: `mount_point` is mounted from `devt`.
    pub fn mount(&self, mount_point: &str, devt: &str, source: &str, fstype: &str) {
        let file = self.root().join("proc/self/mountinfo");
        let mut text = fs::read_to_string(&file).unwrap();
        let n = 30 + text.lines().count();
        text.push_str(&format!(
            "{n} 1 {devt} / {} rw,relatime shared:{n} - {fstype} {source} rw\n",
            mount_point.replace(' ', "\\040")
        ));
        fs::write(file, text).unwrap();
    }

    /// `ROOT/dev/NAME` pointing at a real device node, so that the read probe of the
    /// fixture's `NAME` reads the real device.
    pub fn dev_link(&self, name: &str, target: &Path) {
        symlink(target, self.root().join("dev").join(name)).unwrap();
    }

    pub fn label(&self, label: &str, dm: &str) {
        symlink(
            format!("../../{dm}"),
            self.root().join("dev/disk/by-label").join(label),
        )
        .unwrap();
    }

    /// A stand-in tool: a shell script in the fixture's `bin/`.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.root().join("bin").join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `dmsetup` answering `status` for `mpatha` with each path `A` or `F`.
    pub fn dmsetup(&self, flags: [char; 4]) -> PathBuf {
        let mut status = String::from("0 41943040 multipath 2 0 0 0 2 1 A 0 2 2");
        for (i, f) in flags.iter().enumerate() {
            if i == 2 {
                status.push_str(" E 0 2 2");
            }
            status.push_str(&format!(
                " {} {f} {} 0 1",
                FOUR_PATHS[i].1,
                u8::from(*f == 'F')
            ));
        }
        let out = self.scratch().join("dmsetup.status");
        fs::write(&out, format!("{status}\n")).unwrap();
        let table = self.scratch().join("dmsetup.table");
        fs::write(
            &table,
            "0 41943040 multipath 0 1 alua 2 1 service-time 0 2 1 8:32 1 8:48 1 service-time 0 2 1 8:160 1 8:176 1\n",
        )
        .unwrap();
        self.script(
            "dmsetup",
            &format!(
                "case \"$1\" in\n status) cat '{}';;\n table) cat '{}';;\n *) exit 1;;\nesac",
                out.display(),
                table.display()
            ),
        )
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root().join("run/fencekit")
    }
}

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
