//! Launcher for net-snmp's `snmpd` as a loopback SNMP agent (a PDU stand-in): writes
//! a configuration with the caller's communities, SNMPv3 users and `pass_persist`
//! subtree, runs `snmpd -f -Lo -C -c CONF udp:127.0.0.1:PORT` with its persistent
//! directory inside the temporary directory, and waits until it answers.
//!
//! Readiness is an SNMPv3 engine-ID discovery request (RFC 3414 §4) built by hand:
//! every agent answers it with a Report whatever communities and users it has, so the
//! probe needs neither net-snmp's tools nor a credential.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{daemon_dir, Daemon};
use crate::{peers, ports, HarnessError};

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// A v1/v2c community, accepted from 127.0.0.1 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    pub name: String,
    /// `rwcommunity` when true, `rocommunity` otherwise.
    pub write: bool,
}

/// SNMPv3 authentication protocols net-snmp's `createUser` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    Md5,
    Sha,
    /// HMAC-SHA-256 (RFC 7860), net-snmp's `SHA-256`.
    Sha256,
}

/// SNMPv3 privacy protocols net-snmp's `createUser` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    Des,
    Aes,
}

/// One SNMPv3 user (`createUser` plus `rwuser`/`rouser`).
#[derive(Clone)]
pub struct SnmpUser {
    pub name: String,
    pub auth: AuthProtocol,
    /// At least 8 characters (net-snmp refuses shorter pass phrases).
    pub auth_pass: String,
    /// Privacy protocol and pass phrase; `None` makes an authNoPriv user.
    pub privacy: Option<(PrivProtocol, String)>,
    pub write: bool,
}

impl std::fmt::Debug for SnmpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpUser")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("privacy", &self.privacy.as_ref().map(|(p, _)| p))
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

/// A subtree handed to a program speaking snmpd's pass_persist protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassPersist {
    /// Numeric OID, e.g. `.1.3.6.1.4.1.318` (APC PowerNet).
    pub oid: String,
    pub program: PathBuf,
}

/// A pass_persist program that runs `emulator` on the state file `state`: snmpd
/// runs it with no arguments of ours, so a wrapper script in `dir` names the state.
pub fn emulator_program(
    dir: &Path,
    emulator: &Path,
    state: &Path,
) -> Result<PathBuf, HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    let program = dir.join(format!(
        "{}-sim",
        emulator
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("emulator")
    ));
    let io = |source| HarnessError::Io {
        what: format!("writing {}", program.display()),
        source,
    };
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nexec '{}' '{}'\n",
            emulator.display(),
            state.display()
        ),
    )
    .map_err(io)?;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    Ok(program)
}

/// The subtrees an IF-MIB emulator answers (the interfaces group and ifMIB), and
/// snmpd's own modules for them, left out so that it answers them alone.
pub const IF_MIB_SUBTREES: [&str; 2] = [".1.3.6.1.2.1.2", ".1.3.6.1.2.1.31"];
pub const IF_MIB_MODULES: [&str; 3] = ["interfaces", "ifTable", "ifXTable"];

impl SnmpdOptions {
    /// An agent whose interface tables `program` (an IF-MIB emulator's pass_persist
    /// wrapper) answers, snmpd's own IF-MIB modules left out when `alone`.
    pub fn if_mib_emulator(program: &Path, alone: bool) -> SnmpdOptions {
        SnmpdOptions {
            pass_persist: IF_MIB_SUBTREES
                .iter()
                .map(|oid| PassPersist {
                    oid: oid.to_string(),
                    program: program.to_path_buf(),
                })
                .collect(),
            without_modules: if alone {
                IF_MIB_MODULES.map(String::from).to_vec()
            } else {
                Vec::new()
            },
            ..SnmpdOptions::default()
        }
    }
}

/// How to set up one agent.
#[derive(Debug, Clone)]
pub struct SnmpdOptions {
    pub communities: Vec<Community>,
    pub users: Vec<SnmpUser>,
    pub pass_persist: Vec<PassPersist>,
    /// sysDescr.0 (`.1.3.6.1.2.1.1.1.0`).
    pub sys_descr: String,
    /// sysObjectID.0 (`.1.3.6.1.2.1.1.2.0`), numeric: what PDU clients pick a model by.
    pub sys_object_id: Option<String>,
    /// Further snmpd.conf lines, written as given.
    pub extra_config: Vec<String>,
    /// snmpd's own MIB modules left out (`-I -NAME,...`), so that a `pass_persist`
    /// program alone answers their subtrees: `ifTable`, `ifXTable` and `interfaces`
    /// for an IF-MIB emulator.
    pub without_modules: Vec<String>,
}

impl Default for SnmpdOptions {
    /// Communities `public` (read) and `private` (write), as APC units ship.
    fn default() -> Self {
        SnmpdOptions {
            communities: vec![
                Community {
                    name: "public".into(),
                    write: false,
                },
                Community {
                    name: "private".into(),
                    write: true,
                },
            ],
            users: Vec::new(),
            pass_persist: Vec::new(),
            sys_descr: "fencekit test agent".into(),
            sys_object_id: None,
            extra_config: Vec::new(),
            without_modules: Vec::new(),
        }
    }
}

/// A running snmpd on 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct Snmpd {
    daemon: Daemon,
    port: u16,
}

impl Snmpd {
    /// Starts snmpd on a free UDP port of 127.0.0.1 and waits until it answers.
    pub fn start(options: SnmpdOptions) -> Result<Snmpd, HarnessError> {
        let program = peers::find("snmpd").ok_or_else(|| HarnessError::PeerMissing {
            program: "snmpd".into(),
            package: "snmpd".into(),
        })?;
        let config = snmpd_conf(&options)?;
        for module in &options.without_modules {
            token("module name", module)?;
        }
        let without = &options.without_modules;
        ports::retry_on_address_in_use(|| start_once(&program, &config, without))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1 and [`Snmpd::port`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The `host:port` argument net-snmp's tools take for this agent.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A command running a net-snmp tool (`snmpget`, `snmpset`, ...) whose persistent
    /// files and configuration search stay inside this agent's temporary directory, so
    /// the tool writes nothing under /var/lib/snmp.
    pub fn client_command(&self, tool: &Path) -> Command {
        let client_dir = self.daemon.dir().join("client");
        let mut command = Command::new(tool);
        command
            .env("SNMP_PERSISTENT_DIR", &client_dir)
            .env("SNMPCONFPATH", &client_dir)
            .env("MIBDIRS", &client_dir)
            .env("MIBS", "");
        command
    }

    /// The guard of the snmpd process (PID, directory, log).
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

fn start_once(program: &Path, config: &str, without: &[String]) -> Result<Snmpd, HarnessError> {
    let dir = daemon_dir("snmpd")?;
    let port = ports::free_udp_port()?;
    let path = dir.path().to_path_buf();
    let conf = path.join("snmpd.conf");
    std::fs::write(&conf, config)
        .map_err(|e| HarnessError::io(format!("write {}", conf.display()), e))?;
    let client_dir = path.join("client");
    std::fs::create_dir(&client_dir)
        .map_err(|e| HarnessError::io(format!("create {}", client_dir.display()), e))?;

    let mut command = Command::new(program);
    command
        // Foreground, log to stdout, no system configuration files, only ours.
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(&conf)
        .arg("-p")
        .arg(path.join("snmpd.pid"));
    if !without.is_empty() {
        // One `-` before the list leaves out every module in it (`snmpd(8)`, -I); a
        // `-` before a later name would make it part of that name.
        command.arg("-I").arg(format!("-{}", without.join(",")));
    }
    command
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", path.join("persist"))
        // No MIB files: the agent serves numeric OIDs and the log stays readable.
        .env("MIBDIRS", &client_dir)
        .env("MIBS", "");
    let mut daemon = Daemon::spawn("snmpd", dir, command)?;
    daemon.wait_ready(Instant::now() + READY_TIMEOUT, |_| discovery_probe(port))?;
    Ok(Snmpd { daemon, port })
}

/// The snmpd.conf for `options`, communities and users accepted from 127.0.0.1.
pub(crate) fn snmpd_conf(options: &SnmpdOptions) -> Result<String, HarnessError> {
    let mut lines =
        vec!["# snmpd configuration written by fencekit-tests (see snmpd.conf(5)).".to_owned()];
    for community in &options.communities {
        token("community", &community.name)?;
        let directive = if community.write {
            "rwcommunity"
        } else {
            "rocommunity"
        };
        lines.push(format!("{directive} {} 127.0.0.1", community.name));
    }
    for user in &options.users {
        token("user name", &user.name)?;
        pass_phrase("auth pass phrase", &user.auth_pass)?;
        let auth = match user.auth {
            AuthProtocol::Md5 => "MD5",
            AuthProtocol::Sha => "SHA",
            AuthProtocol::Sha256 => "SHA-256",
        };
        let (privacy, level) = match &user.privacy {
            Some((protocol, pass)) => {
                pass_phrase("privacy pass phrase", pass)?;
                let protocol = match protocol {
                    PrivProtocol::Des => "DES",
                    PrivProtocol::Aes => "AES",
                };
                (format!(" {protocol} {pass}"), "priv")
            }
            None => (String::new(), "auth"),
        };
        lines.push(format!(
            "createUser {} {auth} {}{privacy}",
            user.name, user.auth_pass
        ));
        let directive = if user.write { "rwuser" } else { "rouser" };
        lines.push(format!("{directive} {} {level}", user.name));
    }
    for pass in &options.pass_persist {
        token("pass_persist OID", &pass.oid)?;
        let program = pass.program.to_string_lossy();
        token("pass_persist program", &program)?;
        lines.push(format!("pass_persist {} {program}", pass.oid));
    }
    if options.sys_descr.contains(['\n', '\r']) {
        return Err(bad("sysDescr", "contains a newline"));
    }
    lines.push(format!("sysDescr {}", options.sys_descr));
    if let Some(oid) = &options.sys_object_id {
        token("sysObjectID", oid)?;
        lines.push(format!("sysObjectID {oid}"));
    }
    lines.extend(options.extra_config.iter().cloned());
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// One whitespace-free token of snmpd.conf.
fn token(what: &str, value: &str) -> Result<(), HarnessError> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'#')
    {
        return Err(bad(
            what,
            "must be printable ASCII without spaces, quotes or #",
        ));
    }
    Ok(())
}

fn pass_phrase(what: &str, value: &str) -> Result<(), HarnessError> {
    token(what, value)?;
    if value.len() < 8 {
        return Err(bad(what, "net-snmp needs at least 8 characters"));
    }
    Ok(())
}

fn bad(what: &str, why: &str) -> HarnessError {
    HarnessError::BadConfigValue {
        peer: "snmpd".into(),
        what: what.into(),
        why: why.into(),
    }
}

fn discovery_probe(port: u16) -> Result<(), String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    discovery_probe_on(&socket, port)
}

/// [`discovery_probe`] from `socket`, bound where the caller wants it (in another
/// network namespace), to 127.0.0.1:`port` there.
pub(crate) fn discovery_probe_on(socket: &UdpSocket, port: u16) -> Result<(), String> {
    socket
        .connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| format!("set timeout: {e}"))?;
    socket
        .send(&discovery_request(0x4642))
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = [0u8; 1500];
    let len = socket
        .recv(&mut reply)
        .map_err(|e| format!("no reply: {e}"))?;
    check_discovery_reply(&reply[..len])
}

// BER tags (X.690) and SNMP PDU tags (RFC 3416 §3).
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const SEQUENCE: u8 = 0x30;
const GET_REQUEST: u8 = 0xa0;
const RESPONSE: u8 = 0xa2;
const REPORT: u8 = 0xa8;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn integer(value: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = value
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    // A leading 1 bit would make the value negative.
    if bytes.first().map_or(true, |b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    tlv(INTEGER, &bytes)
}

/// An SNMPv3 GetRequest with no engine ID, no user and no variables, flagged
/// reportable: the agent answers with a Report carrying usmStatsUnknownEngineIDs
/// (RFC 3414 §4).
fn discovery_request(id: u32) -> Vec<u8> {
    let global = [
        integer(id),
        integer(65507),             // msgMaxSize
        tlv(OCTET_STRING, &[0x04]), // msgFlags: reportable, noAuthNoPriv
        integer(3),                 // msgSecurityModel: USM
    ]
    .concat();
    let usm = tlv(
        SEQUENCE,
        &[
            tlv(OCTET_STRING, &[]), // msgAuthoritativeEngineID
            integer(0),             // msgAuthoritativeEngineBoots
            integer(0),             // msgAuthoritativeEngineTime
            tlv(OCTET_STRING, &[]), // msgUserName
            tlv(OCTET_STRING, &[]), // msgAuthenticationParameters
            tlv(OCTET_STRING, &[]), // msgPrivacyParameters
        ]
        .concat(),
    );
    let pdu = tlv(
        GET_REQUEST,
        &[integer(id), integer(0), integer(0), tlv(SEQUENCE, &[])].concat(),
    );
    let scoped = tlv(
        SEQUENCE,
        &[tlv(OCTET_STRING, &[]), tlv(OCTET_STRING, &[]), pdu].concat(),
    );
    tlv(
        SEQUENCE,
        &[
            integer(3),
            tlv(SEQUENCE, &global),
            tlv(OCTET_STRING, &usm),
            scoped,
        ]
        .concat(),
    )
}

/// Splits one BER TLV off the front: (tag, content, rest).
fn read_tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn check_discovery_reply(reply: &[u8]) -> Result<(), String> {
    let parse = || -> Option<u8> {
        let (tag, message, _) = read_tlv(reply)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, version, rest) = read_tlv(message)?;
        if tag != INTEGER || version != [3] {
            return None;
        }
        let (_, _global, rest) = read_tlv(rest)?;
        let (_, _usm, rest) = read_tlv(rest)?;
        let (tag, scoped, _) = read_tlv(rest)?;
        if tag != SEQUENCE {
            return None;
        }
        let (_, _context_engine, rest) = read_tlv(scoped)?;
        let (_, _context_name, rest) = read_tlv(rest)?;
        let (pdu, _, _) = read_tlv(rest)?;
        Some(pdu)
    };
    match parse() {
        Some(REPORT | RESPONSE) => Ok(()),
        Some(other) => Err(format!("unexpected PDU tag {other:#04x}")),
        None => Err(format!("not an SNMPv3 message: {reply:02x?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_never_negative() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(3), [0x02, 0x01, 0x03]);
        assert_eq!(integer(0x80), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(65507), [0x02, 0x03, 0x00, 0xff, 0xe3]);
    }

    #[test]
    fn long_contents_get_a_long_form_length() {
        let encoded = tlv(OCTET_STRING, &[0u8; 200]);
        assert_eq!(&encoded[..3], &[0x04, 0x81, 200]);
        assert_eq!(read_tlv(&encoded).unwrap().1.len(), 200);
    }

    #[test]
    fn the_discovery_request_parses_back_as_a_v3_get_request() {
        let request = discovery_request(7);
        assert_eq!(
            check_discovery_reply(&request),
            Err("unexpected PDU tag 0xa0".to_owned())
        );
    }

    #[test]
    fn truncated_replies_are_not_ready() {
        let request = discovery_request(7);
        for len in 0..request.len() {
            assert!(check_discovery_reply(&request[..len]).is_err());
        }
    }

    #[test]
    fn the_config_holds_communities_users_and_the_pass_persist_subtree() {
        let options = SnmpdOptions {
            users: vec![SnmpUser {
                name: "fence".into(),
                auth: AuthProtocol::Sha,
                auth_pass: "authpass1".into(),
                privacy: Some((PrivProtocol::Aes, "privpass1".into())),
                write: true,
            }],
            pass_persist: vec![PassPersist {
                oid: ".1.3.6.1.4.1.318".into(),
                program: "/opt/apc-sim".into(),
            }],
            sys_object_id: Some(".1.3.6.1.4.1.318.1.3.4.5".into()),
            ..SnmpdOptions::default()
        };
        let conf = snmpd_conf(&options).unwrap();
        for line in [
            "rocommunity public 127.0.0.1",
            "rwcommunity private 127.0.0.1",
            "createUser fence SHA authpass1 AES privpass1",
            "rwuser fence priv",
            "pass_persist .1.3.6.1.4.1.318 /opt/apc-sim",
            "sysObjectID .1.3.6.1.4.1.318.1.3.4.5",
        ] {
            assert!(
                conf.lines().any(|l| l == line),
                "{line} missing from\n{conf}"
            );
        }
    }

    #[test]
    fn short_pass_phrases_and_spaces_are_refused() {
        let mut options = SnmpdOptions::default();
        options.users.push(SnmpUser {
            name: "fence".into(),
            auth: AuthProtocol::Md5,
            auth_pass: "short".into(),
            privacy: None,
            write: false,
        });
        assert!(snmpd_conf(&options).is_err());
        let options = SnmpdOptions {
            communities: vec![Community {
                name: "two words".into(),
                write: false,
            }],
            ..SnmpdOptions::default()
        };
        assert!(snmpd_conf(&options).is_err());
    }
}
