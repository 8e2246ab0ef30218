//! `stonith-bridge install --prefix DIR`: lays out the binary and every name it
//! answers to, for tests (a temporary prefix) and packagers (`/`).
//!
//! * `DIR/usr/sbin/stonith-bridge`, the binary (mode 0755);
//! * `DIR/usr/sbin/fence_fencekit_<plugin>`, links to it (fence-agent API);
//! * `DIR/usr/lib/stonith/plugins/external/fencekit-<plugin>` (or under the
//!   `--stonith-dir` given, `/usr/lib64/stonith/plugins` on RPM distributions), small wrapper scripts
//!   (cluster-glue refuses plugins that are not regular files, or are writable by
//!   group or others, so these are files of mode 0755, not links);
//! * `DIR/usr/lib/ocf/resource.d/fencekit/SANFilesystem`, the OCF agent, a wrapper
//!   script of mode 0755 as well (ocf-tester and the cluster run it as it is, also as
//!   user `nobody` for meta-data).

use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::agent::metadata::agent_name;
use crate::external::plugin_name;

/// cluster-glue's plugin directory on Debian (and where it looks without one given).
pub const STONITH_DIR: &str = "/usr/lib/stonith/plugins";

/// Installs into `prefix`, cluster-glue's plugins under `stonith_dir` (as on the
/// target system: [`STONITH_DIR`] on Debian, `/usr/lib64/stonith/plugins` on RPM
/// distributions) + `external`; returns every path written.
pub fn install_with(prefix: &Path, stonith_dir: &Path) -> io::Result<Vec<PathBuf>> {
    // `DIR/.` is `DIR` (a `.` after the first component says nothing, and a
    // directory not there yet has no `.` to look up).
    let prefix: PathBuf = prefix.components().collect();
    let prefix = prefix.as_path();
    let sbin = prefix.join("usr/sbin");
    let relative = stonith_dir.strip_prefix("/").unwrap_or(stonith_dir);
    if relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
        || relative.as_os_str().is_empty()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--stonith-dir {}: give a plain directory such as {STONITH_DIR}",
                stonith_dir.display()
            ),
        ));
    }
    // The external plugins' own directory, as cluster-glue's documentation names
    // it (`/usr/lib64/stonith/plugins/external`), is taken as that directory: not
    // `external/external`, where cluster-glue would never find a plugin.
    let relative = if relative.file_name() == Some(std::ffi::OsStr::new("external")) {
        relative.parent().unwrap_or(relative)
    } else {
        relative
    };
    if relative.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--stonith-dir {}: give a plain directory such as {STONITH_DIR}",
                stonith_dir.display()
            ),
        ));
    }
    let external = prefix.join(relative).join("external");
    let ocf = prefix
        .join("usr/lib/ocf/resource.d")
        .join(crate::ocf::PROVIDER);
    let binary = sbin.join("stonith-bridge");
    let agent = ocf.join(crate::ocf::AGENT);
    let mut paths = vec![
        binary.clone(),
        agent.clone(),
        new_name(&binary),
        new_name(&agent),
    ];
    for plugin in fencekit_plugins::POWER {
        let name = plugin.schema.plugin;
        let wrapper = external.join(plugin_name(name));
        paths.extend([sbin.join(agent_name(name)), new_name(&wrapper), wrapper]);
    }
    refuse_before_writing(prefix, &[&sbin, &external, &ocf], &paths)?;
    make_dir(prefix)?;
    for dir in [&sbin, &external, &ocf] {
        make_dir(dir)?;
        up_to(dir, prefix)?;
    }
    // From `external/` back to the prefix's root, then to the binary.
    let up = up_to(&external, prefix)?;
    let mut written = Vec::new();

    // Left as it is only when it is this very binary, a file of the prefix (a link
    // there, even to this binary, would leave the agents running a file elsewhere).
    let me = std::env::current_exe()?;
    let same = match (fs::symlink_metadata(&binary), fs::metadata(&me)) {
        (Ok(there), Ok(mine)) => {
            there.file_type().is_file() && there.dev() == mine.dev() && there.ino() == mine.ino()
        }
        _ => false,
    };
    if !same {
        let tmp = new_name(&binary);
        let mut from = fs::File::open(&me).map_err(at(&me))?;
        io::copy(&mut from, &mut create_new(&tmp)?).map_err(at(&tmp))?;
        fs::rename(&tmp, &binary).map_err(at(&binary))?;
    }
    written.push(binary.clone());

    for plugin in fencekit_plugins::POWER {
        let name = plugin.schema.plugin;
        let agent = sbin.join(agent_name(name));
        replace_with_link(Path::new("stonith-bridge"), &agent).map_err(at(&agent))?;
        written.push(agent);

        let wrapper = external.join(plugin_name(name));
        // The wrapper finds the binary where install put it, relative to itself, so a
        // prefix can be moved as a whole.
        let text = format!(
            "#!/bin/sh\n# cluster-glue external stonith plugin: fencekit {name}\nexec \"$(dirname \"$(readlink -f \"$0\")\")/{up}usr/sbin/stonith-bridge\" external {name} \"$@\"\n"
        );
        let tmp = new_name(&wrapper);
        create_new(&tmp)?
            .write_all(text.as_bytes())
            .map_err(at(&tmp))?;
        fs::rename(&tmp, &wrapper).map_err(at(&wrapper))?;
        written.push(wrapper);
    }

    let up = up_to(&ocf, prefix)?;
    let text = format!(
        "#!/bin/sh\n# OCF resource agent ocf:{provider}:{name}: Filesystem with a SAN path check\nexec \"$(dirname \"$(readlink -f \"$0\")\")/{up}usr/sbin/stonith-bridge\" ocf {name} \"$@\"\n",
        provider = crate::ocf::PROVIDER,
        name = crate::ocf::AGENT
    );
    let tmp = new_name(&agent);
    create_new(&tmp)?
        .write_all(text.as_bytes())
        .map_err(at(&tmp))?;
    fs::rename(&tmp, &agent).map_err(at(&agent))?;
    written.push(agent);
    Ok(written)
}

/// Why install would write outside `prefix` or leave it half done, found before
/// anything is made: every directory of `dirs` stays inside the prefix (links
/// followed), is a directory where it exists, and lies under none of the files
/// `paths` (a `--stonith-dir` naming one); no file's place is taken by a directory.
/// A refusal leaves everything as it was, the prefix not made.
fn refuse_before_writing(prefix: &Path, dirs: &[&PathBuf], paths: &[PathBuf]) -> io::Result<()> {
    let root = resolved(prefix)?;
    for dir in dirs {
        let existing = existing_part(dir);
        if !resolved(dir)?.starts_with(&root) {
            return Err(out_of(dir, prefix));
        }
        if !fs::metadata(&existing).map_err(at(&existing))?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is not a directory, where install makes {}: remove it, or install \
                     elsewhere",
                    existing.display(),
                    dir.display()
                ),
            ));
        }
    }
    // A directory install makes must not be one of its files, or lie under one
    // (`--stonith-dir` naming a file's path), links in the way followed.
    // A file's own path is not followed: a link there is replaced, not used.
    let files = paths
        .iter()
        .map(|p| match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => resolved(parent).map(|dir| dir.join(name)),
            _ => resolved(p),
        })
        .collect::<io::Result<Vec<_>>>()?;
    for dir in dirs {
        let real = resolved(dir)?;
        if let Some(file) = files.iter().find(|f| real.starts_with(f)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} would be a directory where install puts the file {}: give \
                     another --stonith-dir",
                    dir.display(),
                    file.display()
                ),
            ));
        }
    }
    if let Some(dir) = paths
        .iter()
        .find(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} is a directory, where install puts a file: remove it, or install \
                 elsewhere",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// A new file of mode 0755 at `path`, never through a link or into a file that
/// was there (whatever was at `path`, a link included, is removed first and not
/// followed).
fn create_new(path: &Path) -> io::Result<fs::File> {
    match fs::symlink_metadata(path) {
        Ok(_) => fs::remove_file(path).map_err(at(path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(path)(e)),
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(at(path))?;
    // Whatever the umask: cluster-glue runs what others may read and run.
    file.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(at(path))?;
    Ok(file)
}

/// The temporary name `path` is written under before it takes its place.
fn new_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.new"))
}

/// An I/O error that names the path it is about.
fn at(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Creates `dir` and its missing parents, each of mode 0755 whatever the umask
/// (the OCF agent is also run as `nobody`, and cluster-glue's plugins by others).
fn make_dir(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
        .collect();
    fs::create_dir_all(dir).map_err(at(dir))?;
    for made in missing {
        fs::set_permissions(made, fs::Permissions::from_mode(0o755)).map_err(at(made))?;
    }
    Ok(())
}

/// `path` with the links of its existing part followed (the rest, not there yet,
/// holds none).
fn resolved(path: &Path) -> io::Result<PathBuf> {
    let existing = existing_part(path);
    let real = fs::canonicalize(&existing).map_err(at(&existing))?;
    let rest = if existing == Path::new(".") && path.is_relative() {
        Ok(path)
    } else {
        path.strip_prefix(&existing)
    };
    Ok(match rest {
        Ok(rest) if !rest.as_os_str().is_empty() => real.join(rest),
        _ => real,
    })
}

/// The longest part of `dir` that exists (what a check of where it leads can
/// read before anything is created).
fn existing_part(dir: &Path) -> PathBuf {
    // A relative path's last ancestor is the empty path: the current directory.
    let here = |a: &Path| {
        if a.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            a.to_path_buf()
        }
    };
    dir.ancestors()
        .map(here)
        .find(|a| fs::symlink_metadata(a).is_ok())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// The way up (`../` repeated) from directory `dir` to `prefix`, counted on the
/// path a wrapper there finds itself at (`readlink -f`): through a directory that
/// is a link (`lib` -> `usr/lib` on a merged /usr) the levels are those of the
/// link's target. A directory that leads out of the prefix is refused.
fn up_to(dir: &Path, prefix: &Path) -> io::Result<String> {
    let root = fs::canonicalize(prefix).map_err(at(prefix))?;
    let real = fs::canonicalize(dir).map_err(at(dir))?;
    let inside = real.strip_prefix(&root).map_err(|_| out_of(dir, prefix))?;
    Ok("../".repeat(inside.components().count()))
}

fn out_of(dir: &Path, prefix: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} leads out of the prefix {} (through a link): give the directory it leads to",
            dir.display(),
            prefix.display()
        ),
    )
}

fn replace_with_link(target: &Path, link: &Path) -> io::Result<()> {
    match fs::symlink_metadata(link) {
        Ok(_) => fs::remove_file(link)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(target, link)
}
