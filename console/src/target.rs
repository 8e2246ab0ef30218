//! A console device as plugins configure it: where it is, how to log in, how to
//! check its host key, where its session lock lives; and opening a session on it
//! (lock first, then SSH), which both the APC and the Baytech plugins do for every
//! operation. Also the parameter declarations those plugins share, so that the
//! names and descriptions are written once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use fencekit_core::schema::{ParamSpec, ParamType, Params};
use fencekit_core::{DeviceError, Instant, Secret};

use crate::lock::{DeviceLock, Wait, DEFAULT_LOCK_DIR};
use crate::ssh::{connect_to, AddressFamily, HostKeyCheck, SshAuth, SshConfig, SshStream};
use crate::telnet::TelnetStream;
use crate::transcript::Redactor;
use crate::{Console, ConsoleOptions, Pattern};

/// `host_key`: the pinned fingerprint.
pub const HOST_KEY: ParamSpec = ParamSpec::new(
    "host_key",
    "Pinned SSH host key fingerprint as `ssh-keygen -lf` prints it (SHA256:...); \
     the session is refused when the device presents another key",
);
/// `known_hosts`: an OpenSSH known_hosts file.
pub const KNOWN_HOSTS: ParamSpec = ParamSpec::new(
    "known_hosts",
    "OpenSSH known_hosts file holding the device's host key (checked when host_key is not \
     given; default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, as ssh reads them)",
);
/// The explicit opt-out of host-key checking.
pub const INSECURE_SKIP_HOST_KEY_CHECK: ParamSpec = ParamSpec::new(
    "insecure_skip_host_key_check",
    "Accept any SSH host key (INSECURE: anyone on the path can pose as the device; \
     logged as a warning at every connection). Without it, host_key or known_hosts is required",
)
.ty(ParamType::Boolean)
.default("false");
/// Old algorithms for old firmware.
pub const SSH_LEGACY: ParamSpec = ParamSpec::new(
    "ssh_legacy",
    "Also offer old SSH algorithms (SHA-1 key exchange, CBC ciphers, ssh-rsa/ssh-dss host keys) \
     for old console firmware",
)
.ty(ParamType::Boolean)
.default("false");
/// Key authentication (fence-agents' name and short option).
pub const IDENTITY_FILE: ParamSpec = ParamSpec::new(
    "identity_file",
    "SSH private key file for key authentication; the password, if given, is its pass phrase",
)
.short('k');
/// IPv4 addresses only (fence-agents' name and short option).
pub const INET4_ONLY: ParamSpec =
    ParamSpec::new("inet4_only", "Connect to the device's IPv4 addresses only")
        .short('4')
        .ty(ParamType::Boolean);
/// IPv6 addresses only (fence-agents' name and short option).
pub const INET6_ONLY: ParamSpec =
    ParamSpec::new("inet6_only", "Connect to the device's IPv6 addresses only")
        .short('6')
        .ty(ParamType::Boolean);
/// Telnet instead of SSH, as an explicit choice.
pub const TELNET: ParamSpec = ParamSpec::new(
    "telnet",
    "Use telnet instead of SSH, for consoles that speak nothing else (INSECURE: the login \
     and password cross the network in clear text; logged as a warning at every connection; \
     the port defaults to 23)",
)
.ty(ParamType::Boolean)
.default("false");
/// The telnet port.
pub const TELNET_PORT: u16 = 23;
/// Where device locks live.
pub const LOCK_DIR: ParamSpec = ParamSpec::new(
    "lock_dir",
    "Directory of the per-device console session locks shared by every fencekit process \
     (a fence waits for the lock, a monitor gives up at once)",
)
.default(DEFAULT_LOCK_DIR);

/// The parameter names a plugin reads a console target from.
#[derive(Debug, Clone, Copy)]
pub struct ParamNames<'a> {
    /// Tried in order; the first given wins.
    pub user: &'a [&'a str],
    pub password: &'a [&'a str],
    pub port: &'a [&'a str],
    pub default_port: u16,
}

/// A console device.
#[derive(Debug, Clone)]
pub struct ConsoleTarget {
    /// Where and how to log in; over telnet the same host, port, user and
    /// password, with no host key.
    pub ssh: SshConfig,
    /// Telnet instead of SSH ([`TELNET`]).
    pub telnet: bool,
    pub lock_dir: PathBuf,
    /// The address the first session of this device connected to: every later
    /// session (the reads that confirm a switch) goes there only, never to another
    /// address the name resolves to by then (round-robin DNS, a changed record).
    pub connected: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

/// The byte stream of a console session: an SSH channel, or a telnet connection.
pub enum ConsoleStream {
    Ssh(SshStream),
    Telnet(TelnetStream),
}

impl tokio::io::AsyncRead for ConsoleStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ConsoleStream::Ssh(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            ConsoleStream::Telnet(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for ConsoleStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ConsoleStream::Ssh(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            ConsoleStream::Telnet(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ConsoleStream::Ssh(s) => std::pin::Pin::new(s).poll_flush(cx),
            ConsoleStream::Telnet(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ConsoleStream::Ssh(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            ConsoleStream::Telnet(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An open session, holding the device's lock until dropped.
pub struct ConsoleSession {
    pub console: Console<ConsoleStream>,
    lock: DeviceLock,
}

impl ConsoleSession {
    pub fn lock_path(&self) -> &std::path::Path {
        self.lock.path()
    }
}

/// The system-wide known-hosts file of OpenSSH.
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// OpenSSH's own known-hosts files, those that exist: the user's
/// (`$HOME/.ssh/known_hosts`) and the system's (`/etc/ssh/ssh_known_hosts`).
fn default_known_hosts() -> Vec<PathBuf> {
    // Pacemaker's fencer may run without HOME: then the account's home, as ssh does.
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        });
    known_hosts_files(home.as_deref(), std::path::Path::new(SYSTEM_KNOWN_HOSTS))
}

fn known_hosts_files(home: Option<&std::path::Path>, system: &std::path::Path) -> Vec<PathBuf> {
    home.map(|h| h.join(".ssh/known_hosts"))
        .into_iter()
        .chain(std::iter::once(system.to_path_buf()))
        .filter(|p| p.is_file())
        .collect()
}

impl ConsoleTarget {
    /// Reads `ip`, the port, user and password names in `names`, `identity_file`,
    /// `host_key`, `known_hosts`, `insecure_skip_host_key_check`, `ssh_legacy` and
    /// `lock_dir`.
    pub fn from_params(
        params: &Params,
        names: ParamNames<'_>,
    ) -> Result<ConsoleTarget, DeviceError> {
        let config = |text: String| DeviceError::Failed(text);
        let host = params
            .text("ip")
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config("parameter `ip` is required".into()))?
            .to_string();
        let port = names
            .port
            .iter()
            .find_map(|n| params.integer(n).map(|p| (*n, p)));
        let telnet = params.boolean(TELNET.name).unwrap_or(false);
        let port = match port {
            None if telnet => TELNET_PORT,
            None => names.default_port,
            Some((name, p)) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| config(format!("parameter `{name}` must be 1 to 65535, not {p}")))?,
        };
        let user = names
            .user
            .iter()
            .find_map(|n| params.text(n))
            .map(str::to_string)
            .ok_or_else(|| {
                config(format!(
                    "parameter `{}` (the console login) is required",
                    names.user.first().copied().unwrap_or("username")
                ))
            })?;
        let password: Option<Secret> = names
            .password
            .iter()
            .find_map(|n| params.secret(n))
            .cloned();
        let auth =
            match params
                .text("identity_file")
                .filter(|p| !p.trim().is_empty())
            {
                Some(_) if telnet => return Err(config(
                    "identity_file is an SSH key, and telnet=1 has no keys: give the password, \
                     or use SSH"
                        .into(),
                )),
                Some(path) => SshAuth::Key {
                    path: PathBuf::from(path),
                    passphrase: password,
                },
                None => SshAuth::Password(password.ok_or_else(|| {
                    config(format!(
                        "parameter `{}` (or identity_file) is required for the console login",
                        names.password.first().copied().unwrap_or("password")
                    ))
                })?),
            };
        let insecure = params
            .boolean(INSECURE_SKIP_HOST_KEY_CHECK.name)
            .unwrap_or(false);
        if telnet
            && (params.text(HOST_KEY.name).is_some() || params.text(KNOWN_HOSTS.name).is_some())
        {
            return Err(config(
                "host_key and known_hosts check an SSH host key, and telnet=1 has none: \
                 refusing a setting that would not be checked"
                    .into(),
            ));
        }
        let host_key = match (
            params.text(HOST_KEY.name).filter(|t| !t.trim().is_empty()),
            params.text(KNOWN_HOSTS.name).filter(|t| !t.trim().is_empty()),
        ) {
            (Some(fingerprint), _) => HostKeyCheck::Fingerprint(fingerprint.trim().to_string()),
            (None, Some(path)) => HostKeyCheck::KnownHosts(vec![PathBuf::from(path)]),
            (None, None) if insecure || telnet => HostKeyCheck::Insecure,
            // As the ssh command fence_apc runs: the user's and the system's files.
            (None, None) => match default_known_hosts() {
                files if !files.is_empty() => HostKeyCheck::KnownHosts(files),
                _ => {
                    return Err(config(
                        "the SSH host key must be verified: give host_key (SHA256:... as `ssh-keygen -lf` prints it) \
                         or known_hosts (neither ~/.ssh/known_hosts nor /etc/ssh/ssh_known_hosts exists), \
                         or set insecure_skip_host_key_check=1 to accept any key; a console that \
                         speaks only telnet (as cluster-glue's baytech and fence_apc's default \
                         reach it) needs telnet=1"
                            .into(),
                    ))
                }
            },
        };
        let family = match (
            params.boolean(INET4_ONLY.name).unwrap_or(false),
            params.boolean(INET6_ONLY.name).unwrap_or(false),
        ) {
            (true, true) => {
                return Err(config(
                    "inet4_only and inet6_only exclude each other: give one".into(),
                ))
            }
            (true, false) => AddressFamily::V4,
            (false, true) => AddressFamily::V6,
            (false, false) => AddressFamily::Any,
        };
        Ok(ConsoleTarget {
            ssh: SshConfig {
                device: format!("{host}:{port}"),
                host,
                port,
                user,
                auth,
                host_key,
                legacy: params.boolean(SSH_LEGACY.name).unwrap_or(false),
                term: "vt100".into(),
                family,
            },
            telnet,
            lock_dir: PathBuf::from(params.text(LOCK_DIR.name).unwrap_or(DEFAULT_LOCK_DIR)),
            connected: Arc::default(),
        })
    }

    /// The device's name in messages.
    pub fn device(&self) -> &str {
        &self.ssh.device
    }

    /// Holds every session of this device to the host at `ip` (the console's own
    /// port): another interface of the same device, here its SNMP agent, found the
    /// device there. Refused when a session already went to another host.
    pub fn keep_host(&self, ip: std::net::IpAddr) -> Result<(), DeviceError> {
        let mut connected = self.connected.lock().unwrap_or_else(|e| e.into_inner());
        match *connected {
            Some(addr) if addr.ip() != ip => Err(DeviceError::Failed(format!(
                "{}: the console was reached at {} and the device's other interface at {ip}: \
                 refusing to take one's word for the other",
                self.ssh.device,
                addr.ip()
            ))),
            Some(_) => Ok(()),
            None => {
                *connected = Some(SocketAddr::new(ip, self.ssh.port));
                Ok(())
            }
        }
    }

    /// Takes the device's lock (waiting or not, see [`Wait`]) and opens an SSH
    /// session, all by `deadline`.
    pub async fn open(&self, wait: Wait, deadline: Instant) -> Result<ConsoleSession, DeviceError> {
        let lock = DeviceLock::acquire(
            &self.lock_dir,
            &self.ssh.host,
            self.ssh.port,
            &self.ssh.device,
            wait,
            deadline,
        )
        .await?;
        let kept = *self.connected.lock().unwrap_or_else(|e| e.into_inner());
        let addrs = match kept {
            Some(addr) => vec![addr],
            None => crate::ssh::resolve(&self.ssh, deadline).await?,
        };
        let (stream, addr) = if self.telnet {
            tracing::warn!(
                device = %self.ssh.device,
                "telnet=1: the login and password cross the network in clear text"
            );
            let endpoint = format!("{}:{}", self.ssh.host, self.ssh.port);
            let (stream, addr) =
                crate::telnet::connect(&self.ssh.device, &endpoint, &addrs, deadline).await?;
            (ConsoleStream::Telnet(stream), addr)
        } else {
            let (stream, addr) = connect_to(&self.ssh, addrs, deadline).await?;
            (ConsoleStream::Ssh(stream), addr)
        };
        *self.connected.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        let mut console = Console::new(
            stream,
            ConsoleOptions {
                device: self.ssh.device.clone(),
                ..Default::default()
            },
        );
        // A console that echoes or prints a secret must not get it into a log.
        for secret in self.secrets() {
            console.add_secret(secret);
        }
        if self.telnet {
            self.telnet_login(&mut console, deadline).await?;
        }
        Ok(ConsoleSession { console, lock })
    }

    /// Answers a telnet console's own login: its user name prompt, then its
    /// password prompt. What comes next (a menu, a prompt) is the plugin's.
    async fn telnet_login(
        &self,
        console: &mut Console<ConsoleStream>,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let device = &self.ssh.device;
        let failed = |e: crate::ConsoleError| DeviceError::from(e);
        let password_prompt = Pattern::text("password").ignore_case();
        let first = [
            password_prompt.clone(),
            Pattern::text("user name").ignore_case(),
            Pattern::text("username").ignore_case(),
            Pattern::text("login:").ignore_case(),
        ];
        // A console that asks for a password alone (no user name) gets just that.
        let asked = console.expect(&first, deadline).await.map_err(failed)?;
        if asked.index != 0 {
            console
                .send_line(&self.ssh.user, deadline)
                .await
                .map_err(failed)?;
            console
                .expect(&[password_prompt], deadline)
                .await
                .map_err(failed)?;
        }
        let SshAuth::Password(password) = &self.ssh.auth else {
            return Err(DeviceError::Failed(format!(
                "{device}: telnet needs a password"
            )));
        };
        console
            .send_secret_line(password, deadline)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The secrets of this target: the password, or the key file's pass phrase.
    fn secrets(&self) -> impl Iterator<Item = &Secret> {
        match &self.ssh.auth {
            SshAuth::Password(password) => Some(password),
            SshAuth::Key { passphrase, .. } => passphrase.as_ref(),
        }
        .into_iter()
    }

    /// `error` with every secret of this target masked in its text: the last guard
    /// before what a device printed leaves a plugin (in an error that front ends
    /// print and clusters log), whichever dialogue step put it there.
    pub fn redact_error(&self, error: DeviceError) -> DeviceError {
        let mut redactor = Redactor::default();
        for secret in self.secrets() {
            redactor.add(secret);
        }
        let r = |text: String| redactor.redact(&text);
        match error {
            DeviceError::NoAnswer { endpoint, detail } => DeviceError::NoAnswer {
                endpoint: r(endpoint),
                detail: r(detail),
            },
            DeviceError::TimedOut(text) => DeviceError::TimedOut(r(text)),
            DeviceError::Auth(text) => DeviceError::Auth(r(text)),
            DeviceError::Refused(text) => DeviceError::Refused(r(text)),
            DeviceError::UnknownPlug { plug, known } => DeviceError::UnknownPlug {
                plug: r(plug),
                known: r(known),
            },
            DeviceError::AmbiguousPlug { plug, outlets } => DeviceError::AmbiguousPlug {
                plug: r(plug),
                outlets: r(outlets),
            },
            DeviceError::Unsupported(text) => DeviceError::Unsupported(r(text)),
            DeviceError::Busy(text) => DeviceError::Busy(r(text)),
            DeviceError::Protocol(text) => DeviceError::Protocol(r(text)),
            DeviceError::Failed(text) => DeviceError::Failed(r(text)),
            // A kind added later: shown only as its kind, never with device text.
            #[allow(unreachable_patterns)]
            other => {
                if redactor.redact(&other.to_string()) == other.to_string() {
                    other
                } else {
                    DeviceError::Failed(redactor.redact(&other.to_string()))
                }
            }
        }
    }
}

/// Whether a device's last words before closing mean "someone else is logged in".
pub fn says_busy(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "busy",
        "in use",
        "another user",
        "already logged",
        "session limit",
    ]
    .iter()
    .any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_host_key_or_known_hosts_openssh_s_own_files_are_used_when_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("ssh_known_hosts");
        assert!(known_hosts_files(Some(dir.path()), &system).is_empty());
        std::fs::create_dir(dir.path().join(".ssh")).unwrap();
        std::fs::write(dir.path().join(".ssh/known_hosts"), "").unwrap();
        assert_eq!(
            known_hosts_files(Some(dir.path()), &system),
            vec![dir.path().join(".ssh/known_hosts")]
        );
        std::fs::write(&system, "").unwrap();
        assert_eq!(known_hosts_files(None, &system), vec![system.clone()]);
        assert_eq!(known_hosts_files(Some(dir.path()), &system).len(), 2);
    }

    fn target(auth: SshAuth) -> ConsoleTarget {
        ConsoleTarget {
            ssh: SshConfig {
                device: "pdu-a".into(),
                host: "127.0.0.1".into(),
                port: 22,
                user: "apc".into(),
                auth,
                host_key: HostKeyCheck::Insecure,
                legacy: false,
                term: "vt100".into(),
                family: AddressFamily::Any,
            },
            telnet: false,
            lock_dir: PathBuf::from("/nonexistent"),
            connected: Arc::default(),
        }
    }

    #[test]
    fn every_kind_of_error_leaves_with_the_secret_masked() {
        let password = target(SshAuth::Password(Secret::new("uniq-Zq81x")));
        let key = target(SshAuth::Key {
            path: PathBuf::from("/nonexistent/key"),
            passphrase: Some(Secret::new("uniq-Zq81x")),
        });
        let echo = "the device printed uniq-Zq81x";
        for target in [password, key] {
            for error in [
                DeviceError::NoAnswer {
                    endpoint: echo.into(),
                    detail: echo.into(),
                },
                DeviceError::TimedOut(echo.into()),
                DeviceError::Auth(echo.into()),
                DeviceError::Refused(echo.into()),
                DeviceError::UnknownPlug {
                    plug: "x".into(),
                    known: echo.into(),
                },
                DeviceError::AmbiguousPlug {
                    plug: "x".into(),
                    outlets: echo.into(),
                },
                DeviceError::Unsupported(echo.into()),
                DeviceError::Busy(echo.into()),
                DeviceError::Protocol(echo.into()),
                DeviceError::Failed(echo.into()),
            ] {
                let kind = std::mem::discriminant(&error);
                let masked = target.redact_error(error);
                assert_eq!(std::mem::discriminant(&masked), kind, "the kind is kept");
                let text = masked.to_string();
                assert!(!text.contains("Zq81x"), "{text}");
                assert!(text.contains(crate::transcript::WITHHELD), "{text}");
            }
        }
    }

    /// A later session of a device goes to the address its first one connected to,
    /// never to where the name (here: the configured port) leads by then, so a
    /// read that confirms a switch comes from the console that switched.
    #[tokio::test]
    async fn a_later_session_goes_where_the_first_connected() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        first.set_nonblocking(true).unwrap();
        other.set_nonblocking(true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut console = target(SshAuth::Password(Secret::new("pw")));
        console.telnet = true;
        console.lock_dir = dir.path().to_path_buf();
        console.ssh.port = first.local_addr().unwrap().port();
        let soon = || Instant::now() + std::time::Duration::from_millis(300);
        // No login prompt ever comes: each open fails, after connecting.
        assert!(console.open(Wait::No, soon()).await.is_err());
        console.ssh.port = other.local_addr().unwrap().port();
        assert!(console.open(Wait::No, soon()).await.is_err());
        let accepted = |listener: &std::net::TcpListener| {
            std::iter::from_fn(|| listener.accept().ok()).count()
        };
        assert_eq!((accepted(&first), accepted(&other)), (2, 0));
        // Another interface of the device found it elsewhere: refused, not followed.
        assert!(console.keep_host("127.0.0.9".parse().unwrap()).is_err());
        assert!(console.keep_host("127.0.0.1".parse().unwrap()).is_ok());
    }

    /// A listing's line quoted in an error is cut short before it is masked: a
    /// secret cut there leaves only its start, which is withheld all the same.
    #[test]
    fn a_secret_cut_short_in_a_quoted_line_is_withheld() {
        let target = target(SshAuth::Password(Secret::new("Sekr3tPassXY")));
        let line = format!("3 {}Sekr3tPassXY: On", "x".repeat(68));
        let cut: String = line.chars().take(80).collect();
        let error = DeviceError::Protocol(format!(
            "the olStatus output has a line we cannot read: {cut:?}"
        ));
        let text = target.redact_error(error).to_string();
        assert!(!text.contains("Sekr3tPass"), "{text}");
        assert!(text.contains(crate::transcript::WITHHELD), "{text}");
    }

    /// A listing line holding a piece of a secret inside other text (a device
    /// that printed part of an echo into its table) is withheld.
    #[test]
    fn a_piece_of_a_secret_inside_a_quoted_line_is_withheld() {
        let target = target(SshAuth::Password(Secret::new("Sekr3tPassXYzw91")));
        for piece in ["Sekr3tPa", "3tPassXY", "ssXYzw91"] {
            let error = DeviceError::Protocol(format!(
                "the Baytech status table has a line we cannot read: \" 5)...{piece} : On Extra\""
            ));
            let text = target.redact_error(error).to_string();
            assert!(!text.contains(piece), "{text}");
            assert!(text.contains(crate::transcript::WITHHELD), "{text}");
        }
    }
}
