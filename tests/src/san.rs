//! A SAN in a temporary directory, for the SAN checks' tests: sysfs, mountinfo and
//! udev links in the real layouts of FC HBAs (qla2xxx, lpfc), remote ports, SCSI
//! disks and dm-multipath maps (symlinks made in code), and stand-in tools
//! (`powermt`, `dmsetup`, `multipathd`, `dd`) that print given output, fail or hang.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct San {
    dir: tempfile::TempDir,
}

/// The usual four paths to one LUN: two HBAs, two target ports each.
/// (disk, devt, host, rport index, target id)
pub const FOUR_PATHS: [(&str, &str, u32, u32, u32); 4] = [
    ("sdc", "8:32", 3, 0, 0),
    ("sdd", "8:48", 3, 1, 1),
    ("sdk", "8:160", 4, 2, 0),
    ("sdl", "8:176", 4, 3, 1),
];

pub const WWID: &str = "36005076801810523a800000000000011";

impl Default for San {
    fn default() -> San {
        San::new()
    }
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
            "sys/class/fc_transport",
            "proc/self",
            "dev/disk/by-label",
            "dev/disk/by-uuid",
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

    /// An FC HBA: fc_host `port_state`, scsi_host `proc_name` and `link_state`.
    pub fn hba(&self, host: u32, port_state: &str, driver: &str, link_state: &str) {
        fs::create_dir_all(self.host_dir(host)).unwrap();
        let fc = self.sys().join(format!("class/fc_host/host{host}"));
        self.write(fc.join("port_state"), port_state);
        self.write(fc.join("port_name"), &format!("0x21000024ff3c5a{host:02x}"));
        let scsi = self.sys().join(format!("class/scsi_host/host{host}"));
        self.write(scsi.join("proc_name"), driver);
        self.write(scsi.join("link_state"), link_state);
    }

    pub fn set_hba_state(&self, host: u32, port_state: &str, link_state: &str) {
        self.write(
            self.sys()
                .join(format!("class/fc_host/host{host}/port_state")),
            port_state,
        );
        self.write(
            self.sys()
                .join(format!("class/scsi_host/host{host}/link_state")),
            link_state,
        );
    }

    /// A remote port with the `FCP Target` role.
    pub fn rport(&self, host: u32, n: u32, state: &str) {
        fs::create_dir_all(self.host_dir(host).join(format!("rport-{host}:0-{n}"))).unwrap();
        let dir = self
            .sys()
            .join(format!("class/fc_remote_ports/rport-{host}:0-{n}"));
        self.write(dir.join("port_state"), state);
        self.write(dir.join("roles"), "FCP Target");
        self.write(
            dir.join("port_name"),
            &format!("0x5006016{host}41e0a5{n:02x}"),
        );
    }

    pub fn set_rport_state(&self, host: u32, n: u32, state: &str) {
        self.write(
            self.sys().join(format!(
                "class/fc_remote_ports/rport-{host}:0-{n}/port_state"
            )),
            state,
        );
    }

    /// A SCSI disk behind `rport-H:0-N`, target T, LUN 1; `device` is the symlink
    /// chain of §1.3 and `/sys/dev/block/MAJ:MIN` points at it.
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

    /// The disk is deleted (after `dev_loss_tmo`): its block entry, its dev link and
    /// its SCSI device go, and so does the map's `slaves/` link.
    pub fn remove_disk(&self, name: &str, devt: &str) {
        let block = self.sys().join("block").join(name);
        let dev = fs::canonicalize(block.join("device")).unwrap();
        fs::remove_dir_all(dev).unwrap();
        fs::remove_dir_all(&block).unwrap();
        fs::remove_file(self.sys().join("dev/block").join(devt)).unwrap();
        for dm in fs::read_dir(self.sys().join("block")).unwrap() {
            let _ = fs::remove_file(dm.unwrap().path().join("slaves").join(name));
        }
    }

    /// A device-mapper device with `dm/name`, `dm/uuid` and `slaves/`.
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

    /// Two HBAs (qla2xxx), four rports, four disks, and `mpatha` (dm-3, 253:3) over them.
    pub fn four_path_map(&self) {
        self.four_path_map_numbered("253:3");
    }

    /// [`San::four_path_map`] with the map's `major:minor` given: a fixture can then
    /// describe the paths to a real device (a loop device standing for the LUN), whose
    /// number the kernel reports in the real mountinfo.
    pub fn four_path_map_numbered(&self, devt: &str) {
        self.hba(3, "Online", "qla2xxx", "Link Up - F_Port");
        self.hba(4, "Online", "qla2xxx", "Link Up - F_Port");
        for (disk, devt, host, rport, target) in FOUR_PATHS {
            self.rport(host, rport, "Online");
            self.disk(disk, devt, host, rport, target, "running");
        }
        let slaves: Vec<&str> = FOUR_PATHS.iter().map(|p| p.0).collect();
        self.dm("dm-3", devt, "mpatha", &format!("mpath-{WWID}"), &slaves);
    }

    /// The fixture's mountinfo becomes the reader's own (`/proc/self/mountinfo`):
    /// what is really mounted where the check runs, instead of lines the test wrote.
    pub fn real_mountinfo(&self) {
        let file = self.root().join("proc/self/mountinfo");
        fs::remove_file(&file).unwrap();
        symlink("/proc/self/mountinfo", file).unwrap();
    }

    /// A kpartx partition `mpatha1` (dm-4) on `mpatha`, mounted on `mount_point`,
    /// labelled `label`, with a filesystem UUID.
    pub fn partition_mounted(&self, mount_point: &str, label: &str, uuid: &str) {
        self.dm(
            "dm-4",
            "253:4",
            "mpatha1",
            &format!("part1-mpath-{WWID}"),
            &["dm-3"],
        );
        self.mount(mount_point, "253:4", "/dev/mapper/mpatha1", "ext4");
        symlink(
            "../../dm-4",
            self.root().join("dev/disk/by-label").join(label),
        )
        .unwrap();
        symlink(
            "../../dm-4",
            self.root().join("dev/disk/by-uuid").join(uuid),
        )
        .unwrap();
    }

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

    /// A stand-in tool: for each (first argument, output, exit code), prints the
    /// output; anything else exits 1 with a complaint.
    pub fn tool(&self, name: &str, answers: &[(&str, &str, i32)]) -> PathBuf {
        let mut body = String::from("case \"$1\" in\n");
        for (i, (verb, output, code)) in answers.iter().enumerate() {
            let file = self.dir.path().join(format!("{name}.{i}.out"));
            fs::write(&file, output).unwrap();
            body.push_str(&format!(
                "  {verb}) cat '{}'; exit {code};;\n",
                file.display()
            ));
        }
        body.push_str("  *) echo \"unexpected arguments: $*\" >&2; exit 1;;\nesac\n");
        self.script(name, &body)
    }

    /// A stand-in tool that never answers.
    pub fn hanging_tool(&self, name: &str) -> PathBuf {
        self.script(name, "sleep 30")
    }

    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.root().join("bin").join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `dmsetup` answering `status` and `table` for one map.
    pub fn dmsetup(&self, status: &str, table: &str) -> PathBuf {
        self.tool("dmsetup", &[("status", status, 0), ("table", table, 0)])
    }

    /// Both HBAs lose their link and every rport is blocked: no path left.
    pub fn lose_all_paths(&self) {
        for host in [3, 4] {
            self.set_hba_state(host, "Linkdown", "Link Down");
        }
        for (_, _, host, rport, _) in FOUR_PATHS {
            self.set_rport_state(host, rport, "Blocked");
        }
    }

    /// Both HBAs and every rport come back.
    pub fn restore_all_paths(&self) {
        for host in [3, 4] {
            self.set_hba_state(host, "Online", "Link Up - F_Port");
        }
        for (_, _, host, rport, _) in FOUR_PATHS {
            self.set_rport_state(host, rport, "Online");
        }
    }

    /// `ROOT/dev/NAME` pointing at a real device node, so that the read probe of the
    /// fixture's `NAME` reads the real device.
    pub fn dev_link(&self, name: &str, target: &Path) {
        symlink(target, self.root().join("dev").join(name)).unwrap();
    }

    /// `ROOT/dev/disk/by-label/LABEL` pointing at a dm device.
    pub fn label(&self, label: &str, dm: &str) {
        symlink(
            format!("../../{dm}"),
            self.root().join("dev/disk/by-label").join(label),
        )
        .unwrap();
    }

    /// `dmsetup` for `mpatha` with each of the four paths `A` or `F`, without
    /// `queue_if_no_path`.
    pub fn dmsetup_paths(&self, flags: [char; 4]) -> PathBuf {
        self.dmsetup(&dm_status(flags), TABLE_FAILING)
    }

    /// Where stuck probes are recorded.
    pub fn run_dir(&self) -> PathBuf {
        self.root().join("run/fencekit")
    }
}

/// `dmsetup status` for the four paths, each `A` or `F` (service-time: 2 selector args).
pub fn dm_status(flags: [char; 4]) -> String {
    let mut s = String::from("0 41943040 multipath 2 0 0 0 2 1 A 0 2 2");
    for (i, f) in flags.iter().take(2).enumerate() {
        s.push_str(&format!(
            " {} {f} {} 0 1",
            FOUR_PATHS[i].1,
            u8::from(*f == 'F')
        ));
    }
    s.push_str(" E 0 2 2");
    for (i, f) in flags.iter().skip(2).enumerate() {
        s.push_str(&format!(
            " {} {f} {} 0 1",
            FOUR_PATHS[i + 2].1,
            u8::from(*f == 'F')
        ));
    }
    s.push('\n');
    s
}

pub const TABLE_QUEUEING: &str =
    "0 41943040 multipath 1 queue_if_no_path 1 alua 2 1 service-time 0 2 1 8:32 1 8:48 1 service-time 0 2 1 8:160 1 8:176 1\n";
pub const TABLE_FAILING: &str =
    "0 41943040 multipath 0 1 alua 2 1 service-time 0 2 1 8:32 1 8:48 1 service-time 0 2 1 8:160 1 8:176 1\n";
