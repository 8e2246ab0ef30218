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
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::agent::metadata::agent_name;
use crate::external::plugin_name;

/// cluster-glue's plugin directory on Debian (and where it looks without one given).
pub const STONITH_DIR: &str = "/usr/lib/stonith/plugins";

/// Installs into `prefix`, cluster-glue's plugins under `stonith_dir` (as on the
/// target system: [`STONITH_DIR`] on Debian, `/usr/lib64/stonith/plugins` on RPM
/// distributions) + `external`; returns every path written.
pub fn install_with(prefix: &Path, stonith_dir: &Path) -> io::Result<Vec<PathBuf>> {
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
    // Every directory written into stays inside the prefix, links followed: checked
    // before anything is created or written, and again once they exist.
    for dir in [&sbin, &external, &ocf] {
        up_to(&existing_part(dir), prefix)?;
    }
    for dir in [&sbin, &external, &ocf] {
        fs::create_dir_all(dir)?;
        up_to(dir, prefix)?;
    }
    // From `external/` back to the prefix's root, then to the binary.
    let up = up_to(&external, prefix)?;
    let mut written = Vec::new();

    let binary = sbin.join("stonith-bridge");
    let me = std::env::current_exe()?;
    if fs::canonicalize(&me).ok() != fs::canonicalize(&binary).ok() {
        let tmp = sbin.join(".stonith-bridge.new");
        let mut from = fs::File::open(&me)?;
        io::copy(&mut from, &mut create_new(&tmp)?)?;
        fs::rename(&tmp, &binary)?;
    }
    written.push(binary.clone());

    for plugin in fencekit_plugins::POWER {
        let name = plugin.schema.plugin;
        let agent = sbin.join(agent_name(name));
        replace_with_link(Path::new("stonith-bridge"), &agent)?;
        written.push(agent);

        let wrapper = external.join(plugin_name(name));
        // The wrapper finds the binary where install put it, relative to itself, so a
        // prefix can be moved as a whole.
        let text = format!(
            "#!/bin/sh\n# cluster-glue external stonith plugin: fencekit {name}\nexec \"$(dirname \"$(readlink -f \"$0\")\")/{up}usr/sbin/stonith-bridge\" external {name} \"$@\"\n"
        );
        let tmp = external.join(format!(".{}.new", plugin_name(name)));
        create_new(&tmp)?.write_all(text.as_bytes())?;
        fs::rename(&tmp, &wrapper)?;
        written.push(wrapper);
    }

    let up = up_to(&ocf, prefix)?;
    let agent = ocf.join(crate::ocf::AGENT);
    let text = format!(
        "#!/bin/sh\n# OCF resource agent ocf:{provider}:{name}: Filesystem with a SAN path check\nexec \"$(dirname \"$(readlink -f \"$0\")\")/{up}usr/sbin/stonith-bridge\" ocf {name} \"$@\"\n",
        provider = crate::ocf::PROVIDER,
        name = crate::ocf::AGENT
    );
    let tmp = ocf.join(format!(".{}.new", crate::ocf::AGENT));
    create_new(&tmp)?.write_all(text.as_bytes())?;
    fs::rename(&tmp, &agent)?;
    written.push(agent);
    Ok(written)
}

/// A new file of mode 0755 at `path`, never through a link or into a file that
/// was there (whatever was at `path`, a link included, is removed first and not
/// followed).
fn create_new(path: &Path) -> io::Result<fs::File> {
    match fs::symlink_metadata(path) {
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    // Whatever the umask: cluster-glue runs what others may read and run.
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    Ok(file)
}

/// The longest part of `dir` that exists (what a check of where it leads can
/// read before anything is created).
fn existing_part(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| fs::symlink_metadata(a).is_ok())
        .unwrap_or(dir)
        .to_path_buf()
}

/// The way up (`../` repeated) from directory `dir` to `prefix`, counted on the
/// path a wrapper there finds itself at (`readlink -f`): through a directory that
/// is a link (`lib` -> `usr/lib` on a merged /usr) the levels are those of the
/// link's target. A directory that leads out of the prefix is refused.
fn up_to(dir: &Path, prefix: &Path) -> io::Result<String> {
    let root = fs::canonicalize(prefix)?;
    let real = fs::canonicalize(dir)?;
    let inside = real.strip_prefix(&root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} leads out of the prefix {} (through a link): give the directory it \
                 leads to",
                dir.display(),
                prefix.display()
            ),
        )
    })?;
    Ok("../".repeat(inside.components().count()))
}

fn replace_with_link(target: &Path, link: &Path) -> io::Result<()> {
    match fs::symlink_metadata(link) {
        Ok(_) => fs::remove_file(link)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(target, link)
}
