//! From what the user names to a kernel block device: a mount point (through
//! `ROOT/proc/self/mountinfo`), `/dev/sdX`, `/dev/dm-N`, `/dev/emcpowerX`,
//! `/dev/mapper/NAME`, `/dev/VG/LV`, `/dev/disk/by-*/…`, `-L label`, `LABEL=`, `-U uuid`,
//! `UUID=`, `PARTUUID=`, `PARTLABEL=`, or a bare kernel name. The seed script failed on
//! `-L label` (it took `-L` for the device); here every form the `Filesystem` agent
//! accepts as `device` resolves.
//!
//! Links are followed by their last component only (`../../sdb1` → `sdb1`): udev's
//! links all point into `/dev` directly, and a fixture root needs no real `/dev`.

use std::fs;
use std::path::Path;

use thiserror::Error;

use crate::sysfs::{is_kernel_name, Sysfs};

/// Why a name does not lead to a block device.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    #[error("{named}: no filesystem is mounted there (per {mountinfo})")]
    NotMounted { named: String, mountinfo: String },
    #[error("{named}: mounted from {mounted_from}, which is not a block device ({fstype})")]
    NotBlock {
        named: String,
        mounted_from: String,
        fstype: String,
    },
    #[error("{named}: no {kind} link {link}")]
    NoLink {
        named: String,
        kind: &'static str,
        link: String,
    },
    #[error("{named}: no such block device")]
    NoDevice { named: String },
    #[error("{named}: cannot read {file}: {cause}")]
    Unreadable {
        named: String,
        file: String,
        cause: String,
    },
}

/// One mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub devt: String,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
}

/// Parses `/proc/self/mountinfo` (proc(5)): fields up to the ` - ` separator, then
/// fstype, source, super options. Octal escapes (`\040`) are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        mounts.push(Mount {
            devt: fields[2].to_string(),
            mount_point: unescape_octal(fields[4]),
            fstype: fields[sep + 1].to_string(),
            source: unescape_octal(fields[sep + 2]),
        });
    }
    mounts
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// udev's encoding of names in `/dev/disk/by-label` (`encode_devnode_name`): bytes
/// outside `[0-9A-Za-z#+-.:=@_]` and non-ASCII become `\xNN`.
fn udev_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Resolves what the user named to a kernel block-device name (possibly a partition).
pub fn resolve(sysfs: &Sysfs, named: &str) -> Result<String, ResolveError> {
    let n = named.trim();
    let no_device = || ResolveError::NoDevice {
        named: named.to_string(),
    };
    let by = |kind: &'static str, dir: &str, value: &str| {
        by_link(sysfs.root(), named, kind, dir, value.trim())
    };
    if let Some(label) = n.strip_prefix("-L") {
        return by("label", "by-label", label);
    }
    if let Some(uuid) = n.strip_prefix("-U") {
        return by("uuid", "by-uuid", uuid);
    }
    for (prefix, kind, dir) in [
        ("LABEL=", "label", "by-label"),
        ("UUID=", "uuid", "by-uuid"),
        ("PARTUUID=", "partuuid", "by-partuuid"),
        ("PARTLABEL=", "partlabel", "by-partlabel"),
    ] {
        if let Some(value) = n.strip_prefix(prefix) {
            let value = value.trim_matches('"');
            return by(kind, dir, value);
        }
    }
    if let Some(rest) = n.strip_prefix("/dev/") {
        if let Some(alias) = rest.strip_prefix("mapper/") {
            if let Some(dm) = sysfs.dm_by_name(alias) {
                return Ok(dm);
            }
            return link_name(&sysfs.root().join("dev").join(rest)).ok_or_else(no_device);
        }
        if is_kernel_name(rest) {
            return if sysfs.exists(rest) || rest.starts_with("emcpower") {
                Ok(rest.to_string())
            } else {
                Err(no_device())
            };
        }
        // `/dev/disk/by-*/…`, `/dev/VG/LV`: udev links.
        if rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        {
            if let Some(name) = link_name(&sysfs.root().join("dev").join(rest)) {
                return Ok(name);
            }
        }
        return Err(no_device());
    }
    if n.starts_with('/') {
        return resolve_mount(sysfs, named, n);
    }
    if is_kernel_name(n) {
        if sysfs.exists(n) || n.starts_with("emcpower") {
            return Ok(n.to_string());
        }
        if let Some(dm) = sysfs.dm_by_name(n) {
            return Ok(dm);
        }
    }
    Err(no_device())
}

fn by_link(
    root: &Path,
    named: &str,
    kind: &'static str,
    dir: &str,
    value: &str,
) -> Result<String, ResolveError> {
    let base = root.join("dev/disk").join(dir);
    let err = || ResolveError::NoLink {
        named: named.to_string(),
        kind,
        link: format!("/dev/disk/{dir}/{}", udev_encode(value)),
    };
    if value.is_empty() {
        return Err(err());
    }
    let encoded = udev_encode(value);
    let mut tries = vec![encoded];
    if !value.contains('/') && value != "." && value != ".." {
        tries.push(value.to_string());
    }
    tries
        .iter()
        .find_map(|v| link_name(&base.join(v)))
        .ok_or_else(err)
}

/// The kernel name a `/dev` link points at (its last component).
fn link_name(link: &Path) -> Option<String> {
    let target = fs::read_link(link).ok()?;
    let name = target.file_name()?.to_str()?;
    is_kernel_name(name).then(|| name.to_string())
}

fn resolve_mount(sysfs: &Sysfs, named: &str, path: &str) -> Result<String, ResolveError> {
    let file = sysfs.root().join("proc/self/mountinfo");
    let shown = "/proc/self/mountinfo".to_string();
    let text = fs::read_to_string(&file).map_err(|e| ResolveError::Unreadable {
        named: named.to_string(),
        file: shown.clone(),
        cause: e.to_string(),
    })?;
    let wanted = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    // The last mount on a point is the one on top.
    let mount = parse_mountinfo(&text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == wanted)
        .ok_or_else(|| ResolveError::NotMounted {
            named: named.to_string(),
            mountinfo: shown,
        })?;
    if let Some(name) = sysfs.block_by_devt(&mount.devt) {
        return Ok(name);
    }
    if mount.source.starts_with("/dev/") && mount.source != path {
        if let Ok(name) = resolve(sysfs, &mount.source) {
            return Ok(name);
        }
    }
    Err(ResolveError::NotBlock {
        named: named.to_string(),
        mounted_from: mount.source,
        fstype: mount.fstype,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mountinfo_fields_and_escapes_are_read() {
        let m = parse_mountinfo(
            "36 35 253:3 / /srv/pvfs\\040data rw,noatime shared:1 - ext4 /dev/mapper/mpatha rw\n\
             37 35 0:52 / /mnt/nfs rw - nfs 10.0.0.1:/x rw\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/srv/pvfs data");
        assert_eq!(m[0].devt, "253:3");
        assert_eq!(m[0].source, "/dev/mapper/mpatha");
        assert_eq!(m[1].fstype, "nfs");
    }

    #[test]
    fn labels_are_encoded_like_udev() {
        assert_eq!(udev_encode("pvfs data/1"), "pvfs\\x20data\\x2f1");
        assert_eq!(udev_encode("label1"), "label1");
    }

    proptest! {
        #[test]
        fn mountinfo_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_mountinfo(&s);
            let _ = unescape_octal(&s);
        }
    }
}
