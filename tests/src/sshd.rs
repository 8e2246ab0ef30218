//! Launcher for OpenSSH's `sshd` as a loopback console server (the transport of APC
//! and Baytech consoles): generates its own host key, writes a configuration that lets
//! in only the given test users, each with a `ForceCommand` (the console simulator),
//! and runs `sshd -D -e -f CONF -p PORT` until the guard drops. Needs root: sshd
//! refuses configuration and keys not owned by root, and logs users in.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::daemon::{daemon_dir, Daemon};
use crate::{peers, ports, tool, HarnessError};

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);

/// sshd's compiled-in privilege separation directory; it will not start without it.
const PRIVSEP_DIR: &str = "/run/sshd";

/// One user let in, and the command sshd runs for every login of that user (whatever
/// the client asked for). The program and its directories must be readable and
/// executable by that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedCommand {
    pub user: String,
    pub command: String,
}

/// How to set up one sshd.
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// The only users allowed in; with none, nobody can log in.
    pub users: Vec<ForcedCommand>,
    /// Further global sshd_config lines, written before the `Match` blocks.
    pub extra_config: Vec<String>,
}

/// A running sshd on 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    daemon: Daemon,
    port: u16,
    // Dropped after the daemon (field order), so /run/sshd outlives the sshd.
    _privsep: PrivsepDir,
}

impl Sshd {
    /// Starts sshd on a free TCP port of 127.0.0.1 and waits for its SSH banner.
    pub fn start(options: SshdOptions) -> Result<Sshd, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HarnessError::NotRoot {
                what: "sshd".into(),
            });
        }
        let sshd = find("sshd")?;
        let keygen = find("ssh-keygen")?;
        let privsep = PrivsepDir::acquire()?;
        for user in &options.users {
            check("user name", &user.user, false)?;
            check("command", &user.command, true)?;
        }
        for line in &options.extra_config {
            check("config line", line, true)?;
        }
        let (daemon, port) =
            ports::retry_on_address_in_use(|| start_once(&sshd, &keygen, &options))?;
        Ok(Sshd {
            daemon,
            port,
            _privsep: privsep,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1 and [`Sshd::port`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The public half of the host key (`ssh-ed25519 AAAA... comment`), for a
    /// known_hosts file.
    pub fn host_key(&self) -> Result<String, HarnessError> {
        let path = self.daemon.dir().join("host_ed25519.pub");
        std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))
    }

    /// The guard of the sshd process (PID, directory, log).
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

fn find(program: &str) -> Result<PathBuf, HarnessError> {
    let path = peers::find(program).ok_or_else(|| HarnessError::PeerMissing {
        program: program.into(),
        package: if program == "sshd" {
            "openssh-server".into()
        } else {
            "openssh-client".into()
        },
    })?;
    // sshd re-executes itself for every connection and insists on an absolute path.
    std::fs::canonicalize(&path)
        .map_err(|e| HarnessError::io(format!("resolve {}", path.display()), e))
}

fn start_once(
    sshd: &Path,
    keygen: &Path,
    options: &SshdOptions,
) -> Result<(Daemon, u16), HarnessError> {
    let dir = daemon_dir("sshd")?;
    let path = dir.path().to_path_buf();
    // Logged-in users run programs from here; sshd wants nothing group/world writable.
    set_mode(&path, 0o755)?;
    let port = ports::free_tcp_port()?;
    let host_key = path.join("host_ed25519");
    let mut command = Command::new(keygen);
    command
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "fencekit-test-host",
            "-f",
        ])
        .arg(&host_key);
    tool::run_ok(command, None, KEYGEN_TIMEOUT)?;

    let conf = path.join("sshd_config");
    std::fs::write(&conf, sshd_config(port, &path, options))
        .map_err(|e| HarnessError::io(format!("write {}", conf.display()), e))?;
    set_mode(&conf, 0o644)?;

    let mut command = Command::new(sshd);
    // -D: foreground; -e: log to stderr (our log file).
    command
        .args(["-D", "-e", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(port.to_string());
    let mut daemon = Daemon::spawn("sshd", dir, command)?;
    daemon.wait_ready(Instant::now() + READY_TIMEOUT, |_| banner_probe(port))?;
    Ok((daemon, port))
}

fn sshd_config(port: u16, dir: &Path, options: &SshdOptions) -> String {
    let mut lines = vec![
        "# sshd configuration written by fencekit-tests (see sshd_config(5)).".to_owned(),
        "ListenAddress 127.0.0.1".to_owned(),
        format!("Port {port}"),
        format!("HostKey {}", dir.join("host_ed25519").display()),
        format!("PidFile {}", dir.join("sshd.pid").display()),
        "PasswordAuthentication yes".to_owned(),
        "KbdInteractiveAuthentication no".to_owned(),
        "PubkeyAuthentication no".to_owned(),
        "AuthorizedKeysFile none".to_owned(),
        "PermitRootLogin no".to_owned(),
        "UsePAM yes".to_owned(),
        "PrintMotd no".to_owned(),
        "X11Forwarding no".to_owned(),
        "AllowTcpForwarding no".to_owned(),
        "AllowAgentForwarding no".to_owned(),
        // Tests open sessions in parallel; the default 10:30:100 would drop some.
        "MaxStartups 100".to_owned(),
    ];
    if options.users.is_empty() {
        lines.push("DenyUsers *".to_owned());
    } else {
        let names: Vec<&str> = options.users.iter().map(|u| u.user.as_str()).collect();
        lines.push(format!("AllowUsers {}", names.join(" ")));
    }
    lines.extend(options.extra_config.iter().cloned());
    for user in &options.users {
        lines.push(format!("Match User {}", user.user));
        lines.push(format!("    ForceCommand {}", user.command));
    }
    lines.push(String::new());
    lines.join("\n")
}

fn check(what: &str, value: &str, spaces: bool) -> Result<(), HarnessError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_control() && (spaces || !c.is_whitespace()));
    if ok {
        Ok(())
    } else {
        Err(HarnessError::BadConfigValue {
            peer: "sshd".into(),
            what: what.into(),
            why: "must be one line of printable characters".into(),
        })
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), HarnessError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| HarnessError::io(format!("chmod {mode:o} {}", path.display()), e))
}

/// Ready once a TCP connection gets the SSH identification string (RFC 4253 §4.2).
fn banner_probe(port: u16) -> Result<(), String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| format!("set timeout: {e}"))?;
    let mut banner = [0u8; 8];
    stream
        .read_exact(&mut banner)
        .map_err(|e| format!("no banner: {e}"))?;
    if &banner == b"SSH-2.0-" {
        Ok(())
    } else {
        Err(format!(
            "unexpected banner {:?}",
            String::from_utf8_lossy(&banner)
        ))
    }
}

/// Counts this process's running sshds so that /run/sshd, when this process had to
/// create it, is removed again after the last one stops, unless some other sshd (of
/// another test process, or the system's) is running then and still needs it.
static PRIVSEP_USERS: Mutex<(usize, bool)> = Mutex::new((0, false));

#[derive(Debug)]
struct PrivsepDir;

/// Whether any process named `sshd` is alive (ours are gone when this is asked).
fn any_sshd_running() -> bool {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "sshd")
            })
        })
        .unwrap_or(false)
}

impl PrivsepDir {
    fn acquire() -> Result<PrivsepDir, HarnessError> {
        let mut state = PRIVSEP_USERS.lock().unwrap_or_else(|p| p.into_inner());
        let dir = Path::new(PRIVSEP_DIR);
        if !dir.exists() {
            std::fs::create_dir(dir)
                .map_err(|e| HarnessError::io(format!("create {PRIVSEP_DIR}"), e))?;
            set_mode(dir, 0o755)?;
            state.1 = true;
        }
        state.0 += 1;
        Ok(PrivsepDir)
    }
}

impl Drop for PrivsepDir {
    fn drop(&mut self) {
        let mut state = PRIVSEP_USERS.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 && state.1 {
            state.1 = false;
            // The per-connection sshd processes of the last sessions go a moment
            // after their listener: give them that moment.
            for _ in 0..30 {
                if !any_sshd_running() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if !any_sshd_running() {
                // remove_dir only removes an empty directory: anything else there is not ours.
                let _ = std::fs::remove_dir(PRIVSEP_DIR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_forced_command_users_are_let_in() {
        let options = SshdOptions {
            users: vec![ForcedCommand {
                user: "fkabc".into(),
                command: "/opt/console --menu".into(),
            }],
            extra_config: Vec::new(),
        };
        let conf = sshd_config(2222, Path::new("/srv/peer"), &options);
        let lines: Vec<&str> = conf.lines().collect();
        assert!(lines.contains(&"AllowUsers fkabc"));
        assert!(lines.contains(&"ListenAddress 127.0.0.1"));
        let at = lines.iter().position(|l| *l == "Match User fkabc").unwrap();
        assert_eq!(lines[at + 1], "    ForceCommand /opt/console --menu");
    }

    #[test]
    fn without_users_nobody_is_let_in() {
        let conf = sshd_config(2222, Path::new("/srv/peer"), &SshdOptions::default());
        assert!(conf.lines().any(|l| l == "DenyUsers *"));
    }

    #[test]
    fn newlines_cannot_smuggle_config_lines() {
        assert!(check("command", "/bin/true\nPermitRootLogin yes", true).is_err());
        assert!(check("user name", "a b", false).is_err());
        assert!(check("command", "/opt/console --menu", true).is_ok());
    }
}
