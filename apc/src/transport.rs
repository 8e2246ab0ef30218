//! SNMP over UDP for one PDU: SNMPv1/v2c with a community, SNMPv3 with the
//! user-based security model (RFC 3414) at any security level, engine-ID discovery
//! and time-window resynchronisation; every request retransmitted within the
//! operation's deadline, stale answers skipped, and each way of failing told apart
//! (silence, refused credentials, refused writes).
//!
//! `snmp2` does the USM cryptography (key localisation, HMAC, DES/AES) and decodes
//! answers; the socket, the request ids, the retries and the reading of Report PDUs
//! are ours, because `snmp2`'s session neither retries nor says which USM check failed.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use fencekit_core::{DeviceError, Instant, Secret};
use snmp2::v3;
use tokio::net::UdpSocket;

use crate::ber::{self, tag, Oid, ReportKind, SetValue};

/// SNMP message versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2c,
    V3,
}

/// USM authentication protocols (RFC 3414, RFC 7860).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AuthProtocol {
    fn snmp2(self) -> v3::AuthProtocol {
        match self {
            AuthProtocol::Md5 => v3::AuthProtocol::Md5,
            AuthProtocol::Sha1 => v3::AuthProtocol::Sha1,
            AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
            AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
            AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
            AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
        }
    }
}

/// USM privacy protocols. AES-192/256 come in two key-extension flavours: the
/// draft-blumenthal-aes-usm one (net-snmp's `AES192`/`AES256`) and the one Cisco
/// and others use (net-snmp's `AES192C`/`AES256C`, after Reeder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    Des,
    Aes128,
    Aes192,
    Aes256,
    Aes192Reeder,
    Aes256Reeder,
}

impl PrivProtocol {
    fn snmp2(self) -> (v3::Cipher, v3::KeyExtension) {
        match self {
            PrivProtocol::Des => (v3::Cipher::Des, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes128 => (v3::Cipher::Aes128, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes192 => (v3::Cipher::Aes192, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes256 => (v3::Cipher::Aes256, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes192Reeder => (v3::Cipher::Aes192, v3::KeyExtension::Reeder),
            PrivProtocol::Aes256Reeder => (v3::Cipher::Aes256, v3::KeyExtension::Reeder),
        }
    }
}

/// USM security levels (RFC 3411 §3.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecLevel {
    NoAuthNoPriv,
    AuthNoPriv,
    AuthPriv,
}

impl SecLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SecLevel::NoAuthNoPriv => "noAuthNoPriv",
            SecLevel::AuthNoPriv => "authNoPriv",
            SecLevel::AuthPriv => "authPriv",
        }
    }
}

/// An SNMPv3 user.
#[derive(Debug, Clone)]
pub struct Usm {
    pub user: String,
    pub level: SecLevel,
    pub auth: AuthProtocol,
    pub auth_pass: Option<Secret>,
    pub privacy: PrivProtocol,
    pub priv_pass: Option<Secret>,
}

/// How we prove who we are.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// SNMPv1 or v2c.
    Community {
        version: Version,
        community: Secret,
    },
    Usm(Usm),
}

/// A varbind value as we use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    Integer(i64),
    Text(Vec<u8>),
    Oid(Oid),
    Null,
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// A type we never expect from a PDU (named for error messages).
    Other(&'static str),
}

impl VarValue {
    fn from_snmp2(value: &snmp2::Value<'_>) -> VarValue {
        use snmp2::Value as V;
        match value {
            V::Integer(n) => VarValue::Integer(*n),
            V::OctetString(b) => VarValue::Text(b.to_vec()),
            V::ObjectIdentifier(o) => ber::arcs(o)
                .map(VarValue::Oid)
                .unwrap_or(VarValue::Other("object identifier")),
            V::Null => VarValue::Null,
            V::Counter32(n) | V::Unsigned32(n) | V::Timeticks(n) => {
                VarValue::Integer(i64::from(*n))
            }
            V::Counter64(n) => i64::try_from(*n)
                .map(VarValue::Integer)
                .unwrap_or(VarValue::Other("Counter64")),
            V::NoSuchObject => VarValue::NoSuchObject,
            V::NoSuchInstance => VarValue::NoSuchInstance,
            V::EndOfMibView => VarValue::EndOfMibView,
            V::Boolean(_) => VarValue::Other("BOOLEAN"),
            V::IpAddress(_) => VarValue::Other("IpAddress"),
            V::Opaque(_) => VarValue::Other("Opaque"),
            _ => VarValue::Other("constructed value"),
        }
    }

    /// Whether the agent said the object is not there.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            VarValue::NoSuchObject | VarValue::NoSuchInstance | VarValue::EndOfMibView
        )
    }

    pub fn describe(&self) -> String {
        match self {
            VarValue::Integer(n) => format!("INTEGER {n}"),
            // Escaped and shortened: what an agent sends must not drive a terminal
            // or flood a log line.
            VarValue::Text(t) => {
                let text: String = String::from_utf8_lossy(t).chars().take(80).collect();
                format!("STRING {text:?}")
            }
            VarValue::Oid(o) => format!("OID {}", ber::dotted(o)),
            VarValue::Null => "NULL".into(),
            VarValue::NoSuchObject => "noSuchObject".into(),
            VarValue::NoSuchInstance => "noSuchInstance".into(),
            VarValue::EndOfMibView => "endOfMibView".into(),
            VarValue::Other(kind) => format!("a {kind}"),
        }
    }
}

/// A Response PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// error-status (RFC 3416 §3): 0 noError, 2 noSuchName, 6 noAccess, ...
    pub status: u32,
    /// error-index, 1-based.
    pub index: u32,
    pub binds: Vec<(Oid, VarValue)>,
}

/// The error-status names of RFC 3416 §3.
pub fn status_name(status: u32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("an unknown error-status")
}

/// Reads a v1/v2c Response to request `id`; `None` for anything else (a stale answer,
/// garbage, another kind of PDU).
pub fn community_response(bytes: &[u8], id: i32) -> Option<Response> {
    let pdu = snmp2::Pdu::from_bytes(bytes).ok()?;
    if pdu.message_type != snmp2::MessageType::Response || pdu.req_id != id {
        return None;
    }
    Some(response_of(&pdu))
}

fn response_of(pdu: &snmp2::Pdu<'_>) -> Response {
    Response {
        status: pdu.error_status,
        index: pdu.error_index,
        binds: pdu
            .varbinds
            .clone()
            .map(|(name, value)| {
                (
                    ber::arcs(&name).unwrap_or_default(),
                    VarValue::from_snmp2(&value),
                )
            })
            .collect(),
    }
}

/// The SNMPv3 engine state we keep between operations: the localised keys and the
/// agent's snmpEngineBoots/Time with the moment we learnt them.
#[derive(Clone)]
struct Engine {
    security: v3::Security,
    engine_id: Vec<u8>,
    boots: i64,
    time: i64,
    at: std::time::Instant,
}

/// One SNMP agent: where it is and how we log in. Cheap to share; holds the SNMPv3
/// engine state so that later operations skip discovery.
pub struct Agent {
    host: String,
    port: u16,
    credentials: Credentials,
    request_timeout: Duration,
    engine: Mutex<Option<Engine>>,
}

impl std::fmt::Debug for Agent {
    // The engine state holds pass phrases and keys: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// What one datagram meant for the request we wait on.
enum Reply {
    Pdu(Response),
    Report(ReportKind),
}

impl Agent {
    pub fn new(
        host: &str,
        port: u16,
        credentials: Credentials,
        request_timeout: Duration,
    ) -> Agent {
        Agent {
            host: host.to_string(),
            port,
            credentials,
            request_timeout,
            engine: Mutex::new(None),
        }
    }

    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn version(&self) -> Version {
        match &self.credentials {
            Credentials::Community { version, .. } => *version,
            Credentials::Usm(_) => Version::V3,
        }
    }

    /// Opens a session that ends by `deadline`.
    pub async fn session(&self, deadline: Instant) -> Result<Session<'_>, DeviceError> {
        let endpoint = self.endpoint();
        let addr: SocketAddr =
            match fencekit_core::lookup::lookup(&self.host, self.port, deadline).await {
                Ok(addrs) => addrs[0],
                Err(e) if e.is_timeout() => {
                    return Err(DeviceError::NoAnswer {
                        endpoint,
                        detail: "name lookup did not finish before the deadline".into(),
                    })
                }
                Err(e) => return Err(DeviceError::Failed(e.to_string())),
            };
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let io = |e: std::io::Error| DeviceError::Failed(format!("UDP socket for {endpoint}: {e}"));
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        Ok(Session {
            agent: self,
            socket,
            deadline,
            next_id: first_request_id(),
            sent: 0,
            refused: false,
            started: Instant::now(),
        })
    }

    #[cfg(test)]
    pub(crate) fn credentials_for_tests(&self) -> &Credentials {
        &self.credentials
    }

    fn user(&self) -> &str {
        match &self.credentials {
            Credentials::Usm(usm) => &usm.user,
            Credentials::Community { .. } => "",
        }
    }

    fn engine(&self) -> Option<Engine> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_engine(&self, engine: Option<Engine>) {
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) = engine;
    }

    /// Applies the boots/time an agent sent (in a Report or a verified Response).
    fn resync(&self, engine_id: &[u8], boots: i64, time: i64) {
        let mut guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(engine) if engine.engine_id == engine_id => {
                engine.boots = boots;
                engine.time = time;
                engine.at = std::time::Instant::now();
            }
            // A new engine ID means a new agent (or a replaced card): discover again.
            _ => *guard = None,
        }
    }

    fn auth_error(&self, kind: ReportKind) -> DeviceError {
        let level = match &self.credentials {
            Credentials::Usm(usm) => usm.level.as_str(),
            Credentials::Community { .. } => "",
        };
        let reason = match kind {
            ReportKind::UnknownUserName => {
                "the agent does not know this user (usmStatsUnknownUserNames)".to_string()
            }
            ReportKind::WrongDigest => "wrong authentication pass phrase or protocol \
                 (usmStatsWrongDigests); check `password` and `snmp_auth_prot`"
                .to_string(),
            ReportKind::DecryptionError => "the agent could not decrypt the request: wrong \
                 privacy pass phrase or protocol (usmStatsDecryptionErrors); check \
                 `snmp_priv_passwd` and `snmp_priv_prot`"
                .to_string(),
            ReportKind::UnsupportedSecLevel => format!(
                "the user is not set up for security level {level} \
                 (usmStatsUnsupportedSecLevels); check `snmp_sec_level`"
            ),
            ReportKind::NotInTimeWindow => "the agent keeps rejecting our engine time \
                 (usmStatsNotInTimeWindows) even after resynchronising"
                .to_string(),
            ReportKind::UnknownEngineId => "the agent's engine ID keeps changing \
                 (usmStatsUnknownEngineIDs)"
                .to_string(),
            ReportKind::Other => {
                return DeviceError::Protocol(format!(
                    "{} answered with a Report PDU we did not expect",
                    self.endpoint()
                ))
            }
        };
        DeviceError::Auth(format!("user {} on {}: {reason}", self.user(), self.host))
    }

    fn new_engine(
        &self,
        usm: &Usm,
        engine_id: &[u8],
        boots: i64,
        time: i64,
    ) -> Result<Engine, DeviceError> {
        let bad = |what: &str| DeviceError::Failed(format!("SNMPv3 user {}: {what}", usm.user));
        // Our copies of the pass phrases are wiped when dropped; `snmp2` keeps its
        // own inside `v3::Security` (moved in, not copied).
        let pass = |secret: &Option<Secret>,
                    name: &str|
         -> Result<zeroize::Zeroizing<Vec<u8>>, DeviceError> {
            let secret = secret.as_ref().ok_or_else(|| {
                bad(&format!(
                    "security level {} needs `{name}`",
                    usm.level.as_str()
                ))
            })?;
            // RFC 3414 §11.2 and net-snmp: pass phrases have at least 8 characters
            // (an empty one would also break key localisation).
            if secret.len() < 8 {
                return Err(bad(&format!("`{name}` must have at least 8 characters")));
            }
            Ok(zeroize::Zeroizing::new(secret.expose().as_bytes().to_vec()))
        };
        let auth_pass = match usm.level {
            SecLevel::NoAuthNoPriv => zeroize::Zeroizing::new(Vec::new()),
            _ => pass(&usm.auth_pass, "password")?,
        };
        let mut security =
            v3::Security::new(usm.user.as_bytes(), &auth_pass).with_auth_protocol(usm.auth.snmp2());
        security = match usm.level {
            SecLevel::NoAuthNoPriv => security.with_auth(v3::Auth::NoAuthNoPriv),
            SecLevel::AuthNoPriv => security.with_auth(v3::Auth::AuthNoPriv),
            SecLevel::AuthPriv => {
                let (cipher, extension) = usm.privacy.snmp2();
                security
                    .with_auth(v3::Auth::AuthPriv {
                        cipher,
                        privacy_password: std::mem::take(&mut *pass(
                            &usm.priv_pass,
                            "snmp_priv_passwd",
                        )?),
                    })
                    .with_key_extension_method(extension)
            }
        };
        let security = security
            .with_engine_id(engine_id)
            .map_err(|e| bad(&format!("cannot derive keys: {e}")))?
            .with_engine_boots_and_time(boots, time);
        Ok(Engine {
            security,
            engine_id: engine_id.to_vec(),
            boots,
            time,
            at: std::time::Instant::now(),
        })
    }
}

fn first_request_id() -> i32 {
    // Unpredictable enough that two quick processes do not share ids; not security.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    ((nanos ^ std::process::id().rotate_left(16)) & 0x3fff_ffff) as i32
}

/// One operation's exchanges with an agent, all ending by one deadline.
pub struct Session<'a> {
    agent: &'a Agent,
    socket: UdpSocket,
    deadline: Instant,
    next_id: i32,
    sent: u32,
    refused: bool,
    started: Instant,
}

/// Whether a request may be sent again when no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Reads, and writes that do the same thing twice (outlet on, outlet off).
    Safe,
    /// Writes that must not happen twice (outlet reboot).
    Never,
}

impl Session<'_> {
    pub fn agent(&self) -> &Agent {
        self.agent
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) & 0x7fff_ffff;
        id
    }

    /// GetRequest for several objects.
    pub async fn get(&mut self, names: &[Oid]) -> Result<Response, DeviceError> {
        let binds: Vec<(Oid, SetValue)> =
            names.iter().map(|n| (n.clone(), SetValue::Null)).collect();
        let response = self.exchange(tag::GET, &binds, Resend::Safe).await?;
        self.check_count(&response, binds.len())?;
        Ok(response)
    }

    /// GetNextRequest for one object.
    pub async fn get_next(&mut self, name: &Oid) -> Result<Response, DeviceError> {
        let binds = [(name.clone(), SetValue::Null)];
        let response = self.exchange(tag::GET_NEXT, &binds, Resend::Safe).await?;
        self.check_count(&response, 1)?;
        Ok(response)
    }

    /// Every object under `prefix`, in order (GetNext walk, which SNMPv1 also has).
    pub async fn walk(&mut self, prefix: &Oid) -> Result<Vec<(Oid, VarValue)>, DeviceError> {
        let mut out = Vec::new();
        let mut cursor = prefix.clone();
        loop {
            let response = self.get_next(&cursor).await?;
            // SNMPv1 ends a walk with noSuchName; v2c with endOfMibView.
            if response.status == 2 {
                break;
            }
            if response.status != 0 {
                return Err(DeviceError::Protocol(format!(
                    "{} answered {} while listing {}",
                    self.agent.endpoint(),
                    status_name(response.status),
                    ber::dotted(prefix)
                )));
            }
            let Some((name, value)) = response.binds.into_iter().next() else {
                break;
            };
            if !name.starts_with(prefix) || value == VarValue::EndOfMibView {
                break;
            }
            if name <= cursor {
                return Err(DeviceError::Protocol(format!(
                    "{} returned {} after {}: its table does not advance",
                    self.agent.endpoint(),
                    ber::dotted(&name),
                    ber::dotted(&cursor)
                )));
            }
            cursor = name.clone();
            out.push((name, value));
        }
        Ok(out)
    }

    /// SetRequest. An error-status that means "you may not write" becomes
    /// [`DeviceError::Refused`].
    pub async fn set(
        &mut self,
        binds: &[(Oid, SetValue)],
        resend: Resend,
    ) -> Result<(), DeviceError> {
        let response = self.exchange(tag::SET, binds, resend).await?;
        let object = usize::try_from(response.index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| binds.get(i))
            .or(binds.first())
            .map(|(name, _)| ber::dotted(name))
            .unwrap_or_default();
        let who = match &self.agent.credentials {
            Credentials::Community { .. } => "the community is read-only".to_string(),
            Credentials::Usm(usm) => format!(
                "user {} may not write (check its access, e.g. net-snmp's rwuser)",
                usm.user
            ),
        };
        match response.status {
            0 => Ok(()),
            // readOnly, noAccess, authorizationError, notWritable (RFC 3416 §4.2.5).
            4 | 6 | 16 | 17 => Err(DeviceError::Refused(format!(
                "write refused ({} on {object}): {who}",
                status_name(response.status)
            ))),
            // SNMPv1 agents report a read-only community as noSuchName (RFC 2576
            // §4.3); we only write objects we have just read, so it means refusal.
            2 if self.agent.version() == Version::V1 => Err(DeviceError::Refused(format!(
                "write refused (noSuchName on {object}, which SNMPv1 agents answer \
                 for a read-only community): {who}"
            ))),
            status => Err(DeviceError::Failed(format!(
                "{} refused to set {object}: {}",
                self.agent.endpoint(),
                status_name(status)
            ))),
        }
    }

    fn check_count(&self, response: &Response, wanted: usize) -> Result<(), DeviceError> {
        if response.status == 0 && response.binds.len() != wanted {
            return Err(DeviceError::Protocol(format!(
                "{} answered {} varbinds to a request for {wanted}",
                self.agent.endpoint(),
                response.binds.len()
            )));
        }
        Ok(())
    }

    async fn exchange(
        &mut self,
        pdu_tag: u8,
        binds: &[(Oid, SetValue)],
        resend: Resend,
    ) -> Result<Response, DeviceError> {
        let mut resyncs = 0;
        loop {
            let id = self.take_id();
            let pdu = ber::pdu(pdu_tag, id, binds)
                .ok_or_else(|| DeviceError::Failed("cannot encode an object identifier".into()))?;
            let agent = self.agent;
            let reply = match &agent.credentials {
                Credentials::Community { version, community } => {
                    let version = if *version == Version::V1 { 0 } else { 1 };
                    let message =
                        ber::community_message(version, community.expose().as_bytes(), &pdu);
                    self.send_and_wait(&message, resend, |bytes| {
                        community_response(bytes, id).map(|r| Ok(Reply::Pdu(r)))
                    })
                    .await?
                }
                Credentials::Usm(usm) => {
                    let engine = match agent.engine() {
                        Some(engine) => engine,
                        None => self.discover(usm).await?,
                    };
                    let message = encode_v3(&engine, id, &usm.user, &pdu)?;
                    self.send_and_wait(&message, resend, |bytes| {
                        classify_v3(agent, &engine, bytes, id)
                    })
                    .await?
                }
            };
            match reply {
                Reply::Pdu(response) => return Ok(response),
                // The agent says it discarded the request, but a Report is read
                // unauthenticated: it is no proof that a command that must not run
                // twice did not run. Never sent again.
                Reply::Report(
                    kind @ (ReportKind::NotInTimeWindow | ReportKind::UnknownEngineId),
                ) if resend == Resend::Never => {
                    return Err(DeviceError::Protocol(format!(
                        "{} answered a command that must not be sent twice with a Report \
                         ({kind:?}) instead of a Response; it was not sent again: read the \
                         outlet before trying again",
                        agent.endpoint()
                    )))
                }
                Reply::Report(ReportKind::NotInTimeWindow | ReportKind::UnknownEngineId)
                    if resyncs < 2 =>
                {
                    resyncs += 1;
                    tracing::debug!(endpoint = %agent.endpoint(), "SNMPv3 engine resynchronised");
                }
                Reply::Report(kind) => return Err(agent.auth_error(kind)),
            }
        }
    }

    /// RFC 3414 §4: learn the agent's snmpEngineID (and boots/time, which net-snmp and
    /// APC cards put in the same Report).
    async fn discover(&mut self, usm: &Usm) -> Result<Engine, DeviceError> {
        let id = self.take_id();
        let pdu = ber::pdu(tag::GET, id, &[])
            .ok_or_else(|| DeviceError::Failed("cannot encode discovery".into()))?;
        let message = ber::v3_plain_message(id, ber::FLAG_REPORTABLE, &[], 0, 0, &[], &pdu);
        let header = self
            .send_and_wait(&message, Resend::Safe, |bytes| {
                let header = ber::v3_header(bytes)?;
                (header.msg_id == i64::from(id)).then_some(Ok(header))
            })
            .await?;
        if header.engine_id.is_empty() {
            return Err(DeviceError::Protocol(format!(
                "{} answered SNMPv3 discovery without an engine ID",
                self.agent.endpoint()
            )));
        }
        let engine = self
            .agent
            .new_engine(usm, &header.engine_id, header.boots, header.time)?;
        self.agent.set_engine(Some(engine.clone()));
        Ok(engine)
    }

    /// Sends `message` and waits for the datagram `classify` accepts, sending again
    /// after each per-request timeout (when `resend` allows), until the deadline.
    async fn send_and_wait<T>(
        &mut self,
        message: &[u8],
        resend: Resend,
        mut classify: impl FnMut(&[u8]) -> Option<Result<T, DeviceError>>,
    ) -> Result<T, DeviceError> {
        let mut buf = vec![0u8; 65_536];
        // How often this message left the socket. Once it has, a message that must
        // not be carried out twice is never sent again, whatever came back: an ICMP
        // port unreachable may belong to an earlier datagram of this session (they
        // arrive late and are not matched to a datagram), so it does not prove that
        // this one was not delivered.
        let mut left = 0u32;
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(self.no_answer());
            }
            if left > 0 && resend == Resend::Never {
                return Err(DeviceError::TimedOut(format!(
                    "no SNMP answer from {} to a command that must not be sent twice; \
                     it may have been carried out: read the outlet before trying again",
                    self.agent.endpoint()
                )));
            }
            let try_end = std::cmp::min(now + self.agent.request_timeout, self.deadline);
            match self.socket.send(message).await {
                Ok(_) => {
                    self.sent += 1;
                    left += 1;
                }
                // The socket's pending error from an earlier datagram: this one was
                // not sent (the kernel reports the error instead of sending).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    self.refused = true;
                    tokio::time::sleep_until(try_end).await;
                    continue;
                }
                Err(e) => {
                    return Err(DeviceError::Failed(format!(
                        "cannot send to {}: {e}",
                        self.agent.endpoint()
                    )))
                }
            }
            loop {
                match tokio::time::timeout_at(try_end, self.socket.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        // ICMP port unreachable: nothing listens. Keep trying until the
                        // deadline (an agent may be restarting), at the normal pace.
                        self.refused = true;
                        tokio::time::sleep_until(try_end).await;
                        break;
                    }
                    Ok(Err(e)) => {
                        return Err(DeviceError::Failed(format!(
                            "cannot receive from {}: {e}",
                            self.agent.endpoint()
                        )))
                    }
                    Ok(Ok(n)) => {
                        if let Some(result) = classify(&buf[..n]) {
                            return result;
                        }
                        // A stale answer to an earlier try, or garbage: keep waiting.
                    }
                }
            }
        }
    }

    fn no_answer(&self) -> DeviceError {
        let endpoint = self.agent.endpoint();
        let hint = if self.refused {
            "; nothing is listening there (ICMP port unreachable)".to_string()
        } else if self.agent.version() == Version::V3 {
            "; check `ip` and `ipport`".to_string()
        } else {
            "; an SNMPv1/v2c agent stays silent when the community is wrong, so check \
             `community` and `snmp_version` as well as `ip` and `ipport`"
                .to_string()
        };
        DeviceError::NoAnswer {
            endpoint: endpoint.clone(),
            detail: format!(
                "no SNMP answer from {endpoint} within {:.1} s ({} requests sent){hint}",
                self.started.elapsed().as_secs_f64(),
                self.sent
            ),
        }
    }
}

/// Encodes an SNMPv3 request with the user's keys: our plaintext template, read
/// back by `snmp2` and written again with authentication and privacy.
fn encode_v3(engine: &Engine, id: i32, user: &str, pdu: &[u8]) -> Result<Vec<u8>, DeviceError> {
    let fail =
        |e: snmp2::Error| DeviceError::Failed(format!("cannot encode an SNMPv3 request: {e}"));
    let template = ber::v3_plain_message(
        id,
        ber::FLAG_REPORTABLE,
        &engine.engine_id,
        0,
        0,
        user.as_bytes(),
        pdu,
    );
    let mut reader = v3::Security::new(b"", b"")
        .with_auth(v3::Auth::NoAuthNoPriv)
        .with_engine_id(&engine.engine_id)
        .map_err(fail)?;
    let parsed =
        snmp2::Pdu::from_bytes_with_security(&template, Some(&mut reader)).map_err(fail)?;
    // snmp2 sends the engine time it last saw; send the agent's clock as it is now
    // (RFC 3414 §2.3), so that a session idle for minutes stays in the time window.
    let elapsed = i64::try_from(engine.at.elapsed().as_secs()).unwrap_or(0);
    let security = engine
        .security
        .clone()
        .with_engine_boots_and_time(engine.boots, engine.time.saturating_add(elapsed));
    parsed.to_bytes_with_security(Some(&security)).map_err(fail)
}

/// Reads an SNMPv3 answer to request `id`: a Report is classified from its plaintext;
/// anything else is verified and decrypted by `snmp2`.
fn classify_v3(
    agent: &Agent,
    engine: &Engine,
    bytes: &[u8],
    id: i32,
) -> Option<Result<Reply, DeviceError>> {
    let header = ber::v3_header(bytes)?;
    if header.msg_id != i64::from(id) {
        return None;
    }
    if let Some(name) = &header.report {
        let kind = ber::report_kind(name);
        if matches!(
            kind,
            ReportKind::NotInTimeWindow | ReportKind::UnknownEngineId
        ) {
            agent.resync(&header.engine_id, header.boots, header.time);
        }
        return Some(Ok(Reply::Report(kind)));
    }
    let mut security = engine.security.clone();
    let copy = bytes.to_vec();
    let parsed = snmp2::Pdu::from_bytes_with_security(&copy, Some(&mut security));
    let result = match parsed {
        Ok(pdu) if pdu.message_type == snmp2::MessageType::Report => {
            let name = pdu
                .varbinds
                .clone()
                .next()
                .and_then(|(name, _)| ber::arcs(&name))
                .unwrap_or_default();
            Ok(Reply::Report(ber::report_kind(&name)))
        }
        Ok(pdu) if pdu.message_type == snmp2::MessageType::Response => {
            Ok(Reply::Pdu(response_of(&pdu)))
        }
        Ok(_) => return None,
        Err(snmp2::Error::AuthFailure(v3::AuthErrorKind::EngineTimeMismatch)) => {
            Ok(Reply::Report(ReportKind::NotInTimeWindow))
        }
        Err(snmp2::Error::AuthFailure(v3::AuthErrorKind::SignatureMismatch)) => {
            Ok(Reply::Report(ReportKind::WrongDigest))
        }
        Err(e) => Err(DeviceError::Protocol(format!(
            "cannot read the SNMPv3 answer from {}: {e}",
            agent.endpoint()
        ))),
    };
    if result.is_ok() {
        // A verified answer carries the agent's clock: keep it.
        agent.resync(&header.engine_id, header.boots, header.time);
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_string_from_an_agent_is_escaped_and_shortened_in_messages() {
        let shown = VarValue::Text(b"\x1b[2Jname\r\nforged log line".to_vec()).describe();
        assert!(!shown.contains('\x1b') && !shown.contains('\n'), "{shown}");
        let long = VarValue::Text(vec![b'x'; 10_000]).describe();
        assert!(long.len() < 100, "{}", long.len());
    }

    #[test]
    fn status_names_follow_rfc_3416() {
        assert_eq!(status_name(2), "noSuchName");
        assert_eq!(status_name(6), "noAccess");
        assert_eq!(status_name(17), "notWritable");
        assert_eq!(status_name(99), "an unknown error-status");
    }

    #[test]
    fn a_community_response_is_matched_by_request_id() {
        let pdu = ber::pdu(
            tag::RESPONSE,
            9,
            &[(vec![1, 3, 6, 1, 2, 1, 1, 2, 0], SetValue::Integer(2))],
        )
        .unwrap();
        let msg = ber::community_message(1, b"c", &pdu);
        let response = community_response(&msg, 9).unwrap();
        assert_eq!(response.binds[0].1, VarValue::Integer(2));
        assert!(community_response(&msg, 8).is_none());
    }

    #[test]
    fn agent_debug_output_holds_no_secret() {
        let agent = Agent::new(
            "127.0.0.1",
            161,
            Credentials::Community {
                version: Version::V2c,
                community: Secret::new("s3cr3t-community"),
            },
            Duration::from_secs(1),
        );
        assert!(!format!("{agent:?}").contains("s3cr3t"));
    }

    /// A fake agent on loopback: answers each request with `replies(request_id)`.
    async fn fake_agent(
        replies: impl Fn(i32, u32) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (u16, tokio::task::JoinHandle<u32>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = 0u32;
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await
            {
                seen += 1;
                let request = snmp2::Pdu::from_bytes(&buf[..n]).unwrap();
                for reply in replies(request.req_id, seen) {
                    socket.send_to(&reply, from).await.unwrap();
                }
            }
            seen
        });
        (port, task)
    }

    fn answer(id: i32, value: i64) -> Vec<u8> {
        let pdu = ber::pdu(
            tag::RESPONSE,
            id,
            &[(vec![1, 3, 6, 1, 2, 1, 1, 3, 0], SetValue::Integer(value))],
        )
        .unwrap();
        ber::community_message(1, b"c", &pdu).to_vec()
    }

    fn v2c_agent(port: u16) -> Agent {
        Agent::new(
            "127.0.0.1",
            port,
            Credentials::Community {
                version: Version::V2c,
                community: Secret::new("c"),
            },
            Duration::from_millis(200),
        )
    }

    #[tokio::test]
    async fn a_stale_answer_is_skipped_and_the_right_one_taken() {
        let (port, _task) =
            fake_agent(|id, _| vec![answer(id.wrapping_sub(1), 1), answer(id, 2)]).await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let response = session
            .get(&[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]])
            .await
            .unwrap();
        assert_eq!(response.binds[0].1, VarValue::Integer(2));
    }

    #[tokio::test]
    async fn a_lost_request_is_sent_again() {
        // The agent ignores the first datagram and answers the second.
        let (port, _task) = fake_agent(|id, seen| {
            if seen == 1 {
                vec![]
            } else {
                vec![answer(id, 7)]
            }
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let response = session
            .get(&[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]])
            .await
            .unwrap();
        assert_eq!(response.binds[0].1, VarValue::Integer(7));
    }

    #[tokio::test]
    async fn a_command_that_must_not_repeat_is_sent_once_and_reported_ambiguous() {
        let (port, task) = fake_agent(|_, _| vec![]).await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        let err = session
            .set(
                &[(
                    vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1],
                    SetValue::Integer(3),
                )],
                Resend::Never,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("may have been carried out"),
            "{err}"
        );
        drop(session);
        assert_eq!(task.await.unwrap(), 1, "the reboot was sent exactly once");
    }

    #[tokio::test]
    async fn a_command_that_must_not_repeat_is_sent_once_even_after_an_earlier_icmp_refusal() {
        // A port where nothing listens yet: the session's first read meets ICMP
        // port unreachable; the agent comes up, answers reads, and never answers
        // the set (a lost answer).
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(4))
            .await
            .unwrap();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let socket = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut sets = 0u32;
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
            {
                let request = snmp2::Pdu::from_bytes(&buf[..n]).unwrap();
                if request.message_type == snmp2::MessageType::SetRequest {
                    sets += 1;
                    continue;
                }
                socket
                    .send_to(&answer(request.req_id, 1), from)
                    .await
                    .unwrap();
            }
            sets
        });
        session
            .get(&[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]])
            .await
            .unwrap();
        assert!(session.refused, "the first read met ICMP port unreachable");
        let err = session
            .set(
                &[(
                    vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1],
                    SetValue::Integer(3),
                )],
                Resend::Never,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("may have been carried out"),
            "{err}"
        );
        drop(session);
        assert_eq!(server.await.unwrap(), 1, "the reboot was sent exactly once");
    }

    #[tokio::test]
    async fn a_command_that_must_not_repeat_is_not_sent_again_after_a_time_window_report() {
        // A v3 agent: discovery gives its engine; every request after it is
        // answered with a (plaintext, unauthenticated) usmStatsNotInTimeWindows.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let agent_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut requests = 0u32;
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
            {
                let header = ber::v3_header(&buf[..n]).unwrap();
                let id = i32::try_from(header.msg_id).unwrap();
                let counter = if header.engine_id.is_empty() {
                    4 // usmStatsUnknownEngineIDs: discovery
                } else {
                    requests += 1;
                    2 // usmStatsNotInTimeWindows
                };
                let report = ber::pdu(
                    tag::REPORT,
                    id,
                    &[(
                        vec![1, 3, 6, 1, 6, 3, 15, 1, 1, counter, 0],
                        SetValue::Integer(1),
                    )],
                )
                .unwrap();
                let answer = ber::v3_plain_message(id, 0, b"fake-engine-01", 1, 100, b"", &report);
                socket.send_to(&answer, from).await.unwrap();
            }
            requests
        });
        let agent = Agent::new(
            "127.0.0.1",
            port,
            Credentials::Usm(Usm {
                user: "alice".into(),
                level: SecLevel::AuthNoPriv,
                auth: AuthProtocol::Sha1,
                auth_pass: Some(Secret::new("alice-auth-pass")),
                privacy: PrivProtocol::Des,
                priv_pass: None,
            }),
            Duration::from_millis(200),
        );
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(3))
            .await
            .unwrap();
        let err = session
            .set(
                &[(
                    vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1],
                    SetValue::Integer(3),
                )],
                Resend::Never,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not sent again"), "{err}");
        drop(session);
        assert_eq!(
            agent_task.await.unwrap(),
            1,
            "the reboot was sent exactly once"
        );
    }

    proptest! {
        #[test]
        fn reading_a_community_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = community_response(&bytes, 1);
        }

        #[test]
        fn reading_a_mangled_community_response_never_panics(flip in 0usize..60, bit in 0u8..8, cut in 0usize..60) {
            let pdu = ber::pdu(tag::RESPONSE, 1, &[
                (vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 2, 1], SetValue::OctetString(b"db-1".to_vec())),
                (vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 5, 1, 1, 4, 1], SetValue::Integer(1)),
            ]).unwrap();
            let mut msg = ber::community_message(0, b"private", &pdu).to_vec();
            if flip < msg.len() { msg[flip] ^= 1 << bit; }
            msg.truncate(cut.max(1).min(msg.len()));
            let _ = community_response(&msg, 1);
        }
    }
}
