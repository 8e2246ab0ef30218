//! The FC transport, SCSI and device-mapper view in sysfs (`storage.md` §1, §3.5):
//! fc_host and rport `port_state`, qla2xxx/lpfc `link_state`, the SCSI disk's
//! `device/state`, and the links that lead from a disk to its HBA and remote port.
//!
//! Every attribute read here is in-memory transport state: none does I/O to the LUN,
//! so none blocks on dead storage. Nothing here ever writes sysfs (lpfc's `link_state`
//! and fc_host's `issue_lip` are writable and reset links). `statistics/*` is never
//! read: on qla2xxx and lpfc each read is a mailbox command that can sleep.
//!
//! The root is a parameter: it is the directory that stands for `/` (sysfs is read
//! from `ROOT/sys`), so test fixtures stand in for hardware.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// sysfs attributes are at most a page; anything longer is not an attribute.
const ATTR_LIMIT: u64 = 8192;

/// A SCSI address `H:C:T:L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hctl {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u64,
}

impl Hctl {
    pub fn parse(s: &str) -> Option<Hctl> {
        let mut it = s.split(':');
        let h = it.next()?.parse().ok()?;
        let c = it.next()?.parse().ok()?;
        let t = it.next()?.parse().ok()?;
        let l = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Hctl {
            host: h,
            channel: c,
            target: t,
            lun: l,
        })
    }
}

impl std::fmt::Display for Hctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}

/// One SCSI disk as a path: its own state and the FC states above it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScsiPath {
    /// Kernel name (`sdc`).
    pub disk: String,
    /// `device/state`; `None` when the disk is gone from sysfs.
    pub disk_state: Option<String>,
    pub hctl: Option<Hctl>,
    /// `hostN` of the HBA, when the device link shows one.
    pub host: Option<String>,
    /// `rport-H:C-N`, when the disk sits behind an FC remote port.
    pub rport: Option<String>,
    /// fc_host `port_state` (absent: not an FC HBA).
    pub host_port_state: Option<String>,
    /// scsi_host `link_state` first line (qla2xxx, lpfc).
    pub link_state: Option<String>,
    /// lpfc's topology line (second line of `link_state`).
    pub link_topology: Option<String>,
    /// scsi_host `proc_name` (driver: `qla2xxx`, `lpfc`).
    pub driver: Option<String>,
    pub rport_state: Option<String>,
    pub rport_roles: Option<String>,
    /// Target WWPN, from the rport (or `fc_transport/targetH:C:T`).
    pub target_wwpn: Option<String>,
}

/// What the FC and SCSI layers say about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub usable: bool,
    /// Works but flaky (rport `Marginal`): counts as usable, makes the device degraded.
    pub marginal: bool,
    /// Most significant first: HBA, then link, then remote port, then disk.
    pub causes: Vec<String>,
}

impl ScsiPath {
    /// Judges the path from the top of the stack down (`storage.md` §1.6): HBA port,
    /// driver link, remote port, disk. A layer that is absent (not FC) is not held
    /// against the path; a disk that is gone is.
    pub fn assess(&self) -> Assessment {
        let mut a = Assessment {
            usable: true,
            ..Assessment::default()
        };
        let host = self.host.as_deref().unwrap_or("host?");
        if let Some(state) = &self.host_port_state {
            if state != "Online" {
                a.usable = false;
                a.causes.push(format!("HBA {host} {state}"));
            }
        }
        if let Some(link) = &self.link_state {
            if !link_is_up(self.driver.as_deref(), link) {
                a.usable = false;
                a.causes.push(format!("HBA {host} link {link}"));
            }
        }
        if let (Some(rport), Some(state)) = (&self.rport, &self.rport_state) {
            match state.as_str() {
                "Online" => {}
                // §1.2: Marginal = works but flaky: degraded, not down.
                "Marginal" => {
                    a.marginal = true;
                    a.causes.push(format!("{host} {rport} Marginal"));
                }
                other => {
                    a.usable = false;
                    a.causes.push(format!("{host} {rport} {other}"));
                }
            }
        }
        match self.disk_state.as_deref() {
            Some("running") => {}
            Some(state) => {
                a.usable = false;
                a.causes.push(format!("{} {state}", self.disk));
            }
            None => {
                a.usable = false;
                a.causes.push(format!("{} gone", self.disk));
            }
        }
        a
    }
}

/// §1.4: qla2xxx is up on any `Link Up - …`; lpfc only on `Link Up - Ready`
/// (`Configuring Link`, `Discovery`, `Failed`, `Unknown` are not ready).
fn link_is_up(driver: Option<&str>, link: &str) -> bool {
    let Some(rest) = link.strip_prefix("Link Up") else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '-']);
    if driver == Some("lpfc") {
        return rest == "Ready";
    }
    !matches!(
        rest,
        "Configuring Link" | "Discovery" | "Failed" | "Unknown"
    )
}

/// device-mapper identity of a `dm-N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DmInfo {
    pub dm: String,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub slaves: Vec<String>,
}

impl DmInfo {
    /// A dm-multipath map (`mpath-<wwid>`; kpartx partitions are `partN-mpath-…`).
    pub fn is_multipath(&self) -> bool {
        self.uuid
            .as_deref()
            .is_some_and(|u| u.starts_with("mpath-"))
    }

    pub fn wwid(&self) -> Option<&str> {
        self.uuid.as_deref().and_then(|u| u.strip_prefix("mpath-"))
    }

    /// The alias if it has one, else the kernel name.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.dm)
    }
}

/// sysfs (and the rest of the system view) under a root directory.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// `root` stands for `/`: sysfs is `root/sys`.
    pub fn new(root: &Path) -> Sysfs {
        Sysfs {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }

    /// Reads one attribute, trimmed; `None` when absent or unreadable (an attribute
    /// that errors, e.g. ENOENT during an adapter reset, says nothing we can use).
    fn attr(&self, path: &Path) -> Option<String> {
        read_attr(path).map(|s| s.trim().to_string())
    }

    /// The state of every layer above one disk.
    pub fn scsi_path(&self, disk: &str) -> ScsiPath {
        let mut p = ScsiPath {
            disk: disk.to_string(),
            ..ScsiPath::default()
        };
        if !is_kernel_name(disk) {
            return p;
        }
        let device = self.sys().join("block").join(disk).join("device");
        p.disk_state = self.attr(&device.join("state"));
        let Ok(real) = fs::canonicalize(&device) else {
            return p;
        };
        // §1.3: …/hostH/rport-H:C-N/targetH:C:T/H:C:T:L. Only the part below the
        // root counts, so a fixture's own directory names cannot be misread.
        let below = match fs::canonicalize(&self.root) {
            Ok(root) => real
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or(real),
            Err(_) => real,
        };
        for comp in below.components() {
            let Component::Normal(name) = comp else {
                continue;
            };
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("host") && name[4..].parse::<u32>().is_ok() {
                p.host = Some(name.to_string());
            } else if name.starts_with("rport-") {
                p.rport = Some(name.to_string());
            } else if let Some(hctl) = Hctl::parse(name) {
                p.hctl = Some(hctl);
            }
        }
        if let Some(host) = p.host.clone() {
            p.host_port_state = self.attr(
                &self
                    .sys()
                    .join("class/fc_host")
                    .join(&host)
                    .join("port_state"),
            );
            let scsi_host = self.sys().join("class/scsi_host").join(&host);
            p.driver = self.attr(&scsi_host.join("proc_name"));
            if let Some(link) = read_attr(&scsi_host.join("link_state")) {
                let mut lines = link.lines().map(str::trim).filter(|l| !l.is_empty());
                p.link_state = lines.next().map(str::to_string);
                p.link_topology = lines
                    .find(|l| !l.starts_with("Trunk port"))
                    .map(str::to_string);
            }
        }
        if let Some(rport) = p.rport.clone() {
            let dir = self.sys().join("class/fc_remote_ports").join(&rport);
            p.rport_state = self.attr(&dir.join("port_state"));
            p.rport_roles = self.attr(&dir.join("roles"));
            p.target_wwpn = self.attr(&dir.join("port_name"));
        }
        if p.target_wwpn.is_none() {
            if let Some(h) = p.hctl {
                p.target_wwpn = self.attr(
                    &self
                        .sys()
                        .join("class/fc_transport")
                        .join(format!("target{}:{}:{}", h.host, h.channel, h.target))
                        .join("port_name"),
                );
            }
        }
        p
    }

    /// The kernel name of the block device `major:minor`, if it exists.
    pub fn block_by_devt(&self, devt: &str) -> Option<String> {
        let link = self.sys().join("dev/block").join(devt);
        if let Ok(target) = fs::read_link(&link) {
            if let Some(name) = target.file_name().and_then(|n| n.to_str()) {
                return Some(name.to_string());
            }
        }
        // No class link: look for a disk or partition whose `dev` matches.
        for disk in self.list(&self.sys().join("block")) {
            let dir = self.sys().join("block").join(&disk);
            if self.attr(&dir.join("dev")).as_deref() == Some(devt) {
                return Some(disk);
            }
            for part in self.partitions(&disk) {
                if self.attr(&dir.join(&part).join("dev")).as_deref() == Some(devt) {
                    return Some(part);
                }
            }
        }
        None
    }

    /// `major:minor` of a block device.
    pub fn devt(&self, name: &str) -> Option<String> {
        let (disk, part) = self.locate(name)?;
        let dir = self.sys().join("block").join(disk);
        match part {
            Some(part) => self.attr(&dir.join(part).join("dev")),
            None => self.attr(&dir.join("dev")),
        }
    }

    /// Whether `name` is a block device (disk or partition) in sysfs.
    pub fn exists(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    /// The whole disk a block device belongs to (itself for a whole disk).
    pub fn whole_disk(&self, name: &str) -> Option<String> {
        self.locate(name).map(|(disk, _)| disk)
    }

    fn locate(&self, name: &str) -> Option<(String, Option<String>)> {
        if !is_kernel_name(name) {
            return None;
        }
        let block = self.sys().join("block");
        if block.join(name).exists() {
            return Some((name.to_string(), None));
        }
        self.list(&block)
            .into_iter()
            .find(|disk| block.join(disk).join(name).join("partition").exists())
            .map(|disk| (disk, Some(name.to_string())))
    }

    fn partitions(&self, disk: &str) -> Vec<String> {
        let dir = self.sys().join("block").join(disk);
        self.list(&dir)
            .into_iter()
            .filter(|p| dir.join(p).join("partition").exists())
            .collect()
    }

    /// A device-mapper device's name, uuid and members.
    pub fn dm(&self, dm: &str) -> Option<DmInfo> {
        if !is_kernel_name(dm) {
            return None;
        }
        let dir = self.sys().join("block").join(dm);
        if !dir.join("dm").exists() {
            return None;
        }
        let mut slaves = self.list(&dir.join("slaves"));
        slaves.sort();
        Some(DmInfo {
            dm: dm.to_string(),
            name: self.attr(&dir.join("dm/name")).filter(|s| !s.is_empty()),
            uuid: self.attr(&dir.join("dm/uuid")).filter(|s| !s.is_empty()),
            slaves,
        })
    }

    /// The `dm-N` whose `dm/name` is `alias`.
    pub fn dm_by_name(&self, alias: &str) -> Option<String> {
        let block = self.sys().join("block");
        self.list(&block).into_iter().find(|d| {
            d.starts_with("dm-")
                && self.attr(&block.join(d).join("dm/name")).as_deref() == Some(alias)
        })
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }
}

/// A kernel block-device name: no path separators, no `..`, nothing odd.
pub fn is_kernel_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '!'))
}

fn read_attr(path: &Path) -> Option<String> {
    let file = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(ATTR_LIMIT).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(host: &str, link: &str, rport: &str, disk: &str) -> ScsiPath {
        ScsiPath {
            disk: "sdc".into(),
            disk_state: Some(disk.into()),
            host: Some("host3".into()),
            rport: Some("rport-3:0-2".into()),
            host_port_state: Some(host.into()),
            link_state: Some(link.into()),
            driver: Some("qla2xxx".into()),
            rport_state: Some(rport.into()),
            ..ScsiPath::default()
        }
    }

    #[test]
    fn all_layers_up_is_usable() {
        let a = path("Online", "Link Up - F_Port", "Online", "running").assess();
        assert!(a.usable && !a.marginal && a.causes.is_empty());
    }

    #[test]
    fn linkdown_hba_is_named_first() {
        let a = path("Linkdown", "Link Down", "Blocked", "blocked").assess();
        assert!(!a.usable);
        assert_eq!(a.causes[0], "HBA host3 Linkdown");
        assert_eq!(a.causes[2], "host3 rport-3:0-2 Blocked");
    }

    #[test]
    fn marginal_rport_is_usable_but_marked() {
        let a = path("Online", "Link Up - F_Port", "Marginal", "running").assess();
        assert!(a.usable && a.marginal);
    }

    #[test]
    fn lpfc_is_up_only_when_ready() {
        assert!(link_is_up(Some("lpfc"), "Link Up - Ready"));
        assert!(!link_is_up(Some("lpfc"), "Link Up - Discovery"));
        assert!(!link_is_up(Some("lpfc"), "Link Down - User disabled"));
        assert!(link_is_up(Some("qla2xxx"), "Link Up - Loop"));
        assert!(!link_is_up(Some("qla2xxx"), "Unknown Link State"));
    }

    #[test]
    fn transport_offline_disk_is_not_usable() {
        let a = path("Online", "Link Up - F_Port", "Online", "transport-offline").assess();
        assert!(!a.usable);
        assert_eq!(a.causes, vec!["sdc transport-offline".to_string()]);
    }

    #[test]
    fn hctl_parses_and_rejects() {
        assert_eq!(Hctl::parse("3:0:1:4").unwrap().to_string(), "3:0:1:4");
        assert!(Hctl::parse("3:0:1").is_none());
        assert!(Hctl::parse("3:0:1:4:5").is_none());
        assert!(Hctl::parse("a:b:c:d").is_none());
    }

    #[test]
    fn path_names_cannot_escape_the_root() {
        assert!(!is_kernel_name("../etc"));
        assert!(!is_kernel_name("a/b"));
        assert!(is_kernel_name("dm-3"));
        assert!(is_kernel_name("cciss!c0d0"));
    }
}
