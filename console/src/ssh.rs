//! The SSH transport of console devices: one interactive shell channel with a
//! PTY (APC and Baytech consoles draw screens and read keys), over `ssh2`
//! (libssh2), presented as a tokio stream for [`crate::Console`].
//!
//! Safety rules this module keeps, against the seed's `ssh -o "StrictHostKeyChecking
//! no"` (a man in the middle on the fencing path):
//! - the host key is verified before any credential is sent, against a pinned
//!   fingerprint (`SHA256:...` as `ssh-keygen -lf` prints it, or `MD5:aa:bb:...`)
//!   or an OpenSSH `known_hosts` file; a mismatch names the fingerprint the host
//!   presented, so that an operator can compare it with the device's;
//! - skipping the check takes [`HostKeyCheck::Insecure`], chosen explicitly, and is
//!   logged as a warning at every connection;
//! - old key exchanges, ciphers and host-key types (SHA-1 Diffie-Hellman, CBC,
//!   `ssh-dss`, `ssh-rsa` with SHA-1) are offered only when [`SshConfig::legacy`] is
//!   set, for old PDU firmware;
//! - every blocking libssh2 call runs on a blocking thread with libssh2's own
//!   timeout set to what is left of the deadline, so nothing blocks past it;
//! - passwords and pass phrases are [`Secret`]s, sent to libssh2 only.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use fencekit_core::{DeviceError, Instant, Secret};
use ssh2::{CheckResult, HashType, KnownHostFileKind, MethodType, Session};
use thiserror::Error;

use crate::blocking::ThreadStream;

/// libssh2's timeout while the dialogue runs: reads return this often so that
/// the stream's thread can write what the console queued (see
/// [`crate::blocking`]).
const POLL_TIMEOUT_MS: u32 = 50;
/// Nap of the stream's thread after a read that found nothing.
const IDLE: Duration = Duration::from_millis(5);

/// Algorithms offered by default: what OpenSSH 7.4 and later (and current APC
/// and Baytech firmware) speak. libssh2 drops names it does not implement.
const MODERN_KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
const MODERN_HOSTKEY: &str = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
const MODERN_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";
const MODERN_MACS: &str =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512";

/// Added after the modern ones with `ssh_legacy`: what old APC (AOS v3) and
/// Baytech DS firmware offer.
const LEGACY_KEX: &str =
    "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1";
const LEGACY_HOSTKEY: &str = "ssh-rsa,ssh-dss";
const LEGACY_CIPHERS: &str = "aes256-cbc,aes192-cbc,aes128-cbc,3des-cbc,blowfish-cbc";
const LEGACY_MACS: &str = "hmac-sha1,hmac-sha1-96,hmac-md5";

/// How the client proves who it is.
#[derive(Clone)]
pub enum SshAuth {
    Password(Secret),
    /// A private key file (OpenSSH or PEM format), with its pass phrase if it has one.
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
}

impl fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshAuth::Password(_) => f.write_str("Password(***)"),
            SshAuth::Key { path, passphrase } => f
                .debug_struct("Key")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// How the server's host key is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// A fingerprint as `ssh-keygen -lf` prints it: `SHA256:<base64>` (padding
    /// optional) or `MD5:<hex pairs>`.
    Fingerprint(String),
    /// OpenSSH `known_hosts` files, read together; the host must be in them with
    /// this key.
    KnownHosts(Vec<PathBuf>),
    /// No check at all: anyone on the path can pose as the device. Only by an
    /// explicit parameter, and logged as a warning.
    Insecure,
}

/// Where and how to open a console session.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The device's name for messages (the configured name, or host:port).
    pub device: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub host_key: HostKeyCheck,
    /// Also offer SHA-1 key exchange, CBC ciphers, `ssh-rsa`/`ssh-dss` host keys.
    pub legacy: bool,
    /// The terminal type requested with the PTY.
    pub term: String,
    /// Which addresses of a host name may be used (fence-agents' `-4`, `-6`).
    pub family: AddressFamily,
}

/// Which addresses of a host name a connection may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    #[default]
    Any,
    /// IPv4 only (`inet4_only`, `-4`).
    V4,
    /// IPv6 only (`inet6_only`, `-6`).
    V6,
}

impl AddressFamily {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            AddressFamily::Any => true,
            AddressFamily::V4 => !fencekit_core::lookup::reaches_ipv6(addr),
            AddressFamily::V6 => fencekit_core::lookup::reaches_ipv6(addr),
        }
    }
}

/// What went wrong opening a session. Messages name the device and never hold a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SshError {
    #[error("{device}: cannot connect to {endpoint}: {cause}")]
    Connect {
        device: String,
        endpoint: String,
        cause: String,
    },
    #[error("{device}: timed out while {activity}")]
    TimedOut { device: String, activity: String },
    #[error("{device}: SSH handshake failed: {cause}{hint}")]
    Handshake {
        device: String,
        cause: String,
        hint: &'static str,
    },
    /// The host key does not match: possibly a man in the middle.
    #[error("{device}: host key verification FAILED: {problem}; the host presented {presented}")]
    HostKey {
        device: String,
        problem: String,
        /// The presented key's fingerprint, `SHA256:...` (and its type).
        presented: String,
    },
    #[error("{device}: bad host key setting: {problem}")]
    Config { device: String, problem: String },
    #[error("{device}: authentication as {user:?} failed: {cause}")]
    Auth {
        device: String,
        user: String,
        cause: String,
    },
    #[error("{device}: cannot open a console channel: {cause}")]
    Channel { device: String, cause: String },
}

impl From<SshError> for DeviceError {
    fn from(e: SshError) -> DeviceError {
        let message = e.to_string();
        match e {
            SshError::Connect {
                device,
                endpoint,
                cause,
            } => DeviceError::NoAnswer {
                endpoint,
                detail: format!("{device}: {cause}"),
            },
            SshError::TimedOut { .. } => DeviceError::TimedOut(message),
            SshError::Auth { .. } => DeviceError::Auth(message),
            SshError::HostKey { .. } | SshError::Config { .. } => DeviceError::Refused(message),
            SshError::Handshake { .. } | SshError::Channel { .. } => DeviceError::Protocol(message),
        }
    }
}

/// How long before the deadline the connecting thread gives up, to report why.
const REASON_MARGIN: Duration = Duration::from_millis(150);

/// An open console session: the shell channel as a tokio stream.
pub type SshStream = ThreadStream;

/// Opens a session: TCP connect, handshake, host-key check, authentication, PTY,
/// shell. Ends by `deadline` whatever the server does.
pub async fn connect(config: &SshConfig, deadline: Instant) -> Result<SshStream, SshError> {
    let addrs = resolve(config, deadline).await?;
    connect_to(config, addrs, deadline)
        .await
        .map(|(stream, _)| stream)
}

/// [`connect`] to the first of `addrs` that takes the TCP connection; the session
/// and the address it is connected to.
pub(crate) async fn connect_to(
    config: &SshConfig,
    addrs: Vec<SocketAddr>,
    deadline: Instant,
) -> Result<(SshStream, SocketAddr), SshError> {
    let config = config.clone();
    let device = config.device.clone();
    let timed_out = |activity: &str| SshError::TimedOut {
        device: device.clone(),
        activity: activity.to_string(),
    };
    // The blocking work ends by `until` by itself (connect and libssh2 timeouts
    // are what is left), so the runtime never waits long for this thread. It ends a
    // little before the deadline, so that its own reason (no banner, no answer to
    // the password) arrives before the outer bound below has to speak instead.
    let until = {
        let end = deadline.into_std();
        let left = end.saturating_duration_since(std::time::Instant::now());
        end - (left / 10).min(REASON_MARGIN)
    };
    let opening = tokio::task::spawn_blocking(move || open_blocking(&config, &addrs, until));
    match tokio::time::timeout_at(deadline, opening).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(SshError::Channel {
            device: device.clone(),
            cause: format!("the connecting thread failed: {join}"),
        }),
        // The thread ends by itself: libssh2's timeout is what was left.
        Err(_) => Err(timed_out("opening the SSH session")),
    }
}

/// The device's addresses, by `deadline` (see [`fencekit_core::lookup`]).
pub(crate) async fn resolve(
    config: &SshConfig,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, SshError> {
    match fencekit_core::lookup::lookup(&config.host, config.port, deadline).await {
        Ok(addrs) => {
            let all = addrs.len();
            let addrs: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| config.family.admits(a))
                .collect();
            if addrs.is_empty() {
                return Err(SshError::Connect {
                    device: config.device.clone(),
                    endpoint: format!("{}:{}", config.host, config.port),
                    cause: format!(
                        "none of its {all} address(es) is {} (inet{}_only)",
                        if config.family == AddressFamily::V4 {
                            "IPv4"
                        } else {
                            "IPv6"
                        },
                        if config.family == AddressFamily::V4 {
                            4
                        } else {
                            6
                        },
                    ),
                });
            }
            Ok(addrs)
        }
        Err(e) if e.is_timeout() => Err(SshError::TimedOut {
            device: config.device.clone(),
            activity: format!("looking up {} (the resolver did not answer)", config.host),
        }),
        Err(e) => Err(SshError::Connect {
            device: config.device.clone(),
            endpoint: format!("{}:{}", config.host, config.port),
            cause: e.to_string(),
        }),
    }
}

/// Time left until `until`, for libssh2 (milliseconds, at least 1: 0 means "no
/// timeout" to libssh2).
fn left_ms(until: std::time::Instant) -> Option<u32> {
    let left = until.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return None;
    }
    Some(left.as_millis().clamp(1, u128::from(u32::MAX)) as u32)
}

fn open_blocking(
    config: &SshConfig,
    addrs: &[SocketAddr],
    until: std::time::Instant,
) -> Result<(SshStream, SocketAddr), SshError> {
    let device = config.device.as_str();
    let endpoint = format!("{}:{}", config.host, config.port);
    let timed_out = |activity: &str| SshError::TimedOut {
        device: device.to_string(),
        activity: activity.to_string(),
    };
    let connect_err = |cause: String| SshError::Connect {
        device: device.to_string(),
        endpoint: endpoint.clone(),
        cause,
    };
    let mut tcp = None;
    let mut last = String::from("no address");
    for addr in addrs {
        let Some(ms) = left_ms(until) else {
            return Err(timed_out("connecting"));
        };
        match TcpStream::connect_timeout(addr, Duration::from_millis(u64::from(ms))) {
            Ok(stream) => {
                tcp = Some((stream, *addr));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = "timed out".into(),
            Err(e) => last = e.to_string(),
        }
    }
    let (tcp, connected) = tcp.ok_or_else(|| connect_err(last))?;
    let _ = tcp.set_nodelay(true);

    let mut session = Session::new().map_err(|e| SshError::Handshake {
        device: device.to_string(),
        cause: e.to_string(),
        hint: "",
    })?;
    session.set_tcp_stream(tcp);
    let step = |session: &Session, activity: &str| -> Result<(), SshError> {
        let ms = left_ms(until).ok_or_else(|| timed_out(activity))?;
        session.set_timeout(ms);
        Ok(())
    };
    prefer_algorithms(&session, config.legacy).map_err(|cause| SshError::Handshake {
        device: device.to_string(),
        cause,
        hint: "",
    })?;
    step(&session, "the SSH handshake")?;
    session.handshake().map_err(|e| {
        if is_timeout(&e) && session.banner().is_none() {
            // Accepted and silent: a hung SSH daemon, or not SSH at all.
            timed_out(&format!(
                "waiting for the SSH banner: {endpoint} accepted the connection but sent no SSH banner"
            ))
        } else if is_timeout(&e) {
            timed_out("the SSH handshake")
        } else {
            SshError::Handshake {
                device: device.to_string(),
                cause: e.message().to_string(),
                hint: if config.legacy {
                    ""
                } else {
                    " (old firmware may need the ssh_legacy parameter)"
                },
            }
        }
    })?;
    verify_host_key(&session, config)?;

    step(&session, "authenticating")?;
    let auth = match &config.auth {
        SshAuth::Password(password) => session.userauth_password(&config.user, password.expose()),
        SshAuth::Key { path, passphrase } => session.userauth_pubkey_file(
            &config.user,
            None,
            path,
            passphrase.as_ref().map(Secret::expose),
        ),
    };
    if let Err(e) = auth {
        if is_timeout(&e) {
            return Err(timed_out("authenticating"));
        }
        return Err(SshError::Auth {
            device: device.to_string(),
            user: config.user.clone(),
            cause: match &config.auth {
                SshAuth::Password(_) => "the device refused the password".to_string(),
                SshAuth::Key { path, .. } => {
                    format!("key {}: {}", path.display(), e.message())
                }
            },
        });
    }
    if !session.authenticated() {
        return Err(SshError::Auth {
            device: device.to_string(),
            user: config.user.clone(),
            cause: "the server did not accept the authentication".into(),
        });
    }

    let channel_err = |activity: &str, e: ssh2::Error| {
        if is_timeout(&e) {
            timed_out(activity)
        } else {
            SshError::Channel {
                device: device.to_string(),
                cause: format!("{activity}: {}", e.message()),
            }
        }
    };
    step(&session, "opening a channel")?;
    let mut channel = session
        .channel_session()
        .map_err(|e| channel_err("opening a session channel", e))?;
    step(&session, "requesting a terminal")?;
    // Consoles draw menus and read single keys: they need a terminal.
    channel
        .request_pty(&config.term, None, Some((80, 24, 0, 0)))
        .map_err(|e| channel_err("requesting a PTY", e))?;
    step(&session, "starting the shell")?;
    channel
        .shell()
        .map_err(|e| channel_err("starting the shell", e))?;
    session.set_timeout(POLL_TIMEOUT_MS);
    let io = ShellIo { channel, session };
    // Nothing is written to the device after the operation's deadline.
    ThreadStream::spawn_until(io, &format!("ssh {endpoint}"), IDLE, Some(until))
        .map(|stream| (stream, connected))
        .map_err(|e| SshError::Channel {
            device: device.to_string(),
            cause: format!("cannot start the session thread: {e}"),
        })
}

fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(code) if code == -9 /* LIBSSH2_ERROR_TIMEOUT */
    )
}

fn prefer_algorithms(session: &Session, legacy: bool) -> Result<(), String> {
    let join = |modern: &str, old: &str| {
        if legacy {
            format!("{modern},{old}")
        } else {
            modern.to_string()
        }
    };
    let prefs = [
        ("kex", MethodType::Kex, join(MODERN_KEX, LEGACY_KEX)),
        (
            "host key",
            MethodType::HostKey,
            join(MODERN_HOSTKEY, LEGACY_HOSTKEY),
        ),
        (
            "cipher",
            MethodType::CryptCs,
            join(MODERN_CIPHERS, LEGACY_CIPHERS),
        ),
        (
            "cipher",
            MethodType::CryptSc,
            join(MODERN_CIPHERS, LEGACY_CIPHERS),
        ),
        ("mac", MethodType::MacCs, join(MODERN_MACS, LEGACY_MACS)),
        ("mac", MethodType::MacSc, join(MODERN_MACS, LEGACY_MACS)),
    ];
    for (what, kind, list) in prefs {
        session
            .method_pref(kind, &list)
            .map_err(|e| format!("{what} algorithms {list}: {}", e.message()))?;
    }
    Ok(())
}

/// The presented host key's SHA-256 fingerprint, as `ssh-keygen -lf` prints it.
fn presented(session: &Session) -> String {
    let kind = session
        .host_key()
        .map(|(_, kind)| format!(" ({kind:?} key)"))
        .unwrap_or_default();
    match session.host_key_hash(HashType::Sha256) {
        Some(hash) => format!("SHA256:{}{kind}", base64_unpadded(hash)),
        None => format!("an unreadable key{kind}"),
    }
}

fn verify_host_key(session: &Session, config: &SshConfig) -> Result<(), SshError> {
    let device = config.device.as_str();
    let failed = |problem: String| SshError::HostKey {
        device: device.to_string(),
        problem,
        presented: presented(session),
    };
    match &config.host_key {
        HostKeyCheck::Insecure => {
            tracing::warn!(
                device,
                presented = %presented(session),
                "host key NOT verified (insecure_skip_host_key_check is set): anyone on the path can pose as this device"
            );
            Ok(())
        }
        HostKeyCheck::Fingerprint(pinned) => {
            let pinned = pinned.trim();
            let matches = if let Some(b64) = pinned.strip_prefix("SHA256:") {
                let hash = session.host_key_hash(HashType::Sha256).unwrap_or_default();
                !hash.is_empty() && base64_unpadded(hash) == b64.trim_end_matches('=')
            } else if let Some(hex) = pinned.strip_prefix("MD5:") {
                let hash = session.host_key_hash(HashType::Md5).unwrap_or_default();
                let ours: Vec<String> = hash.iter().map(|b| format!("{b:02x}")).collect();
                !hash.is_empty() && ours.join(":").eq_ignore_ascii_case(hex)
            } else {
                return Err(SshError::Config {
                    device: device.to_string(),
                    problem: format!(
                        "host_key {pinned:?} is not a fingerprint: write it as `ssh-keygen -lf` prints it, SHA256:<base64> (the host presented {})",
                        presented(session)
                    ),
                });
            };
            if matches {
                Ok(())
            } else {
                Err(failed(format!(
                    "it does not match the pinned fingerprint {pinned}"
                )))
            }
        }
        HostKeyCheck::KnownHosts(paths) => {
            let Some((key, _)) = session.host_key() else {
                return Err(failed("the host presented no key".into()));
            };
            let mut known = session.known_hosts().map_err(|e| SshError::Config {
                device: device.to_string(),
                problem: format!("cannot set up known-hosts checking: {}", e.message()),
            })?;
            for path in paths {
                known
                    .read_file(path, KnownHostFileKind::OpenSSH)
                    .map_err(|e| SshError::Config {
                        device: device.to_string(),
                        problem: format!(
                            "cannot read known_hosts {}: {}",
                            path.display(),
                            e.message()
                        ),
                    })?;
            }
            let files = paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ");
            let (has, holds) = if paths.len() == 1 {
                ("has", "holds")
            } else {
                ("have", "hold")
            };
            let name = known_hosts_name(&config.host, config.port);
            for path in paths {
                // Read above already: a file that vanished since says nothing more.
                let text = std::fs::read_to_string(path).unwrap_or_default();
                if let Some((line, why)) = refused_in_known_hosts(&text, &name, key) {
                    return Err(failed(format!("{} line {line} {why}", path.display())));
                }
            }
            match known.check_port(&config.host, config.port, key) {
                CheckResult::Match => Ok(()),
                CheckResult::Mismatch => Err(failed(format!(
                    "{files} {holds} a DIFFERENT key for {}",
                    known_hosts_name(&config.host, config.port)
                ))),
                CheckResult::NotFound => Err(failed(format!(
                    "{files} {has} no key for {}",
                    known_hosts_name(&config.host, config.port)
                ))),
                CheckResult::Failure => Err(failed(format!("checking against {files} failed"))),
            }
        }
    }
}

/// What libssh2's known-hosts check does not read, as OpenSSH reads it: a key
/// marked `@revoked` (never accepted, whatever else the files say) and a line whose
/// host patterns negate `name` (`!pattern`: the line does not apply to that host,
/// though another of its patterns matches). The line (1-based) and why, when the
/// presented `key` (its wire form) is on such a line; refused then, which is
/// stricter than OpenSSH only where a negated line and another line hold the same
/// key.
fn refused_in_known_hosts(text: &str, name: &str, key: &[u8]) -> Option<(usize, String)> {
    let presented = base64_padded(key);
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let (marker, hosts) = match first.strip_prefix('@') {
            Some(marker) => (Some(marker), fields.next().unwrap_or_default()),
            None => (None, first),
        };
        let (Some(_kind), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if blob != presented {
            continue;
        }
        if marker.is_some_and(|m| m.eq_ignore_ascii_case("revoked")) {
            return Some((n + 1, "marks the presented key @revoked".to_string()));
        }
        let negated = hosts
            .split(',')
            .filter_map(|pattern| pattern.strip_prefix('!'))
            .any(|pattern| glob_matches(pattern, name));
        if marker.is_none() && negated {
            return Some((
                n + 1,
                format!("holds the presented key with `{name}` negated (`!`): it does not apply to this host"),
            ));
        }
    }
    None
}

/// OpenSSH's host pattern match: `*` any run, `?` any one character, ASCII case
/// ignored.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == b'?' || p[i].eq_ignore_ascii_case(&n[j])) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Standard base64 with padding, as known_hosts holds keys.
fn base64_padded(bytes: &[u8]) -> String {
    let mut out = base64_unpadded(bytes);
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

/// Standard base64 without padding, as OpenSSH prints SHA-256 fingerprints.
fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The shell channel and its session, moved onto the stream's thread together
/// (the channel needs its session alive).
struct ShellIo {
    channel: ssh2::Channel,
    session: Session,
}

impl Read for ShellIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A read that hits the short poll timeout reports TimedOut: the thread
        // then writes what is queued and reads again.
        self.channel.read(buf)
    }
}

impl Write for ShellIo {
    /// One try, of at most the poll timeout: a write the peer's window holds up
    /// returns `TimedOut`, and the stream's thread tries again only until the
    /// operation's deadline (see [`crate::blocking`]).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.channel.write(buf)
    }

    /// Nothing to do: libssh2 sends what `write` took. (`Channel::flush` would
    /// discard the channel's unread *incoming* data: libssh2_channel_flush_ex.)
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ShellIo {
    fn drop(&mut self) {
        // Tell the server we are gone rather than leave the device's console
        // session open until its idle timeout (many units allow one session).
        self.session.set_timeout(500);
        let _ = self.channel.close();
        let _ = self
            .session
            .disconnect(Some(ssh2::DisconnectCode::ByApplication), "bye", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_base64_without_padding_as_ssh_keygen_prints_them() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
        // A SHA-256 hash is 32 bytes: 43 characters, no '='.
        assert_eq!(base64_unpadded(&[0xff; 32]).len(), 43);
    }

    #[test]
    fn a_revoked_key_or_a_line_negating_the_host_is_refused() {
        let key = b"a host key's wire form";
        let blob = base64_padded(key);
        let other = base64_padded(b"another key");
        let name = "[127.0.0.1]:2222";
        let refused = |text: &str| refused_in_known_hosts(text, name, key).map(|(n, _)| n);
        // Revoked: whatever the host patterns, and after a line that holds it.
        assert_eq!(
            refused(&format!(
                "{name} ssh-ed25519 {blob}\n@revoked * ssh-ed25519 {blob}\n"
            )),
            Some(2)
        );
        assert_eq!(
            refused(&format!("@REVOKED other ssh-ed25519 {blob}\n")),
            Some(1)
        );
        // Negated on the line that holds it, by name or by pattern.
        assert_eq!(
            refused(&format!("!{name},{name} ssh-ed25519 {blob}\n")),
            Some(1)
        );
        assert_eq!(
            refused(&format!("[127.0.0.?]:*,!*:2222 ssh-ed25519 {blob}\n")),
            Some(1)
        );
        // What OpenSSH takes is left to libssh2's check.
        for text in [
            format!("{name} ssh-ed25519 {blob}\n"),
            format!("@revoked * ssh-ed25519 {other}\n{name} ssh-ed25519 {blob}\n"),
            format!("!other,{name} ssh-ed25519 {blob}\n"),
            format!("# @revoked * ssh-ed25519 {blob}\n"),
            format!("@cert-authority * ssh-ed25519 {blob}\n"),
            "\n@revoked\n!x\n".to_string(),
        ] {
            assert_eq!(refused(&text), None, "{text}");
        }
        assert!(glob_matches("*", "x"));
        assert!(glob_matches("a*c", "abbbc"));
        assert!(!glob_matches("a*c", "abbbd"));
        assert!(glob_matches("PDU?", "pdu1"));
    }

    #[test]
    fn known_hosts_names_a_non_standard_port_in_brackets() {
        assert_eq!(known_hosts_name("pdu1", 22), "pdu1");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let auth = SshAuth::Password(Secret::new("hunter2-secret"));
        let key = SshAuth::Key {
            path: "id".into(),
            passphrase: Some(Secret::new("phrase-secret")),
        };
        let shown = format!("{auth:?} {key:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("phrase-secret"),
            "{shown}"
        );
    }

    fn config_for(host: &str, port: u16) -> SshConfig {
        SshConfig {
            device: "pdu-test".into(),
            host: host.into(),
            port,
            user: "apc".into(),
            auth: SshAuth::Password(Secret::new("x")),
            host_key: HostKeyCheck::Insecure,
            legacy: false,
            term: "vt100".into(),
            family: AddressFamily::Any,
        }
    }

    #[tokio::test]
    async fn a_peer_that_accepts_and_never_speaks_fails_by_the_deadline_with_no_banner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, holds the connection open, says nothing.
        let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let started = std::time::Instant::now();
        let err = connect(
            &config_for("127.0.0.1", port),
            Instant::now() + Duration::from_millis(1500),
        )
        .await
        .err()
        .unwrap();
        let took = started.elapsed();
        let text = err.to_string();
        assert!(matches!(err, SshError::TimedOut { .. }), "{text}");
        assert!(text.contains("no SSH banner"), "{text}");
        assert!(took < Duration::from_millis(1800), "took {took:?}");
        // The blocking work itself has ended too (libssh2's own timeout), so
        // nothing is left for the runtime to wait for.
        let _connection = held.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_clear_connect_error() {
        let err = connect(
            &config_for("no-such-host.invalid", 22),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(err, SshError::Connect { .. } | SshError::TimedOut { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error_by_the_deadline() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = SshConfig {
            device: "pdu-test".into(),
            host: "127.0.0.1".into(),
            port,
            user: "apc".into(),
            auth: SshAuth::Password(Secret::new("x")),
            host_key: HostKeyCheck::Insecure,
            legacy: false,
            term: "vt100".into(),
            family: AddressFamily::Any,
        };
        let err = connect(&config, Instant::now() + Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SshError::Connect { .. }), "{err}");
        assert!(matches!(
            DeviceError::from(err),
            DeviceError::NoAnswer { .. }
        ));
    }
}
