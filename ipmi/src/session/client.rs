//! The console side of an RMCP+ session as a sans-IO state machine (quinn-proto
//! style): it is fed datagrams ([`Session::handle_datagram`]) and time
//! ([`Session::handle_timeout`]), and hands back datagrams to send
//! ([`Session::poll_transmit`]), the next instant it wants to be woken
//! ([`Session::poll_timeout`]) and what happened ([`Session::poll_event`]).
//!
//! Steps (ipmi.md §2): Open Session (one suite per request; next allowed suite on
//! status 0x04/0x05/0x10/0x11, also when that status comes truncated without our
//! session ID as ipmi_sim sends it, or when the BMC answers with algorithms other
//! than the proposed ones; never on time-outs), RAKP 1, RAKP 2 verified *before*
//! RAKP 3 is sent, RAKP 4 verified, then the queued commands. An RAKP 2 or 4 with
//! a transient status (invalid or inactive session ID) starts a fresh login from
//! Open Session, a few times within the deadline; any other status fails at once.
//! Quirks of real BMCs are worked around on request ([`Workarounds`]), never by
//! skipping a check of the BMC's proof. Set Session Privilege
//! Level is sent only before the first command that needs more than USER (Chassis
//! Control), so a status read takes 4 round trips. Close Session is never
//! retransmitted. Idempotent requests are retransmitted with a new session sequence
//! number and the same `rq_seq`; cycle, reset and NMI never are: when their reply is
//! lost the chassis status is read instead and the command reported unconfirmed.
//!
//! The same session speaks IPMI 1.5 when its configuration asks for it
//! ([`Protocol::Ipmi15`]): Get Channel Authentication Capabilities (1.5 form),
//! Get Session Challenge, Activate Session (IPMI v2.0 §22.13, §22.16, §22.17), then
//! the very same in-session steps, requests and rules as above; only the wrapper
//! differs (an AuthCode per message, checked on every reply, and a ±8 sequence
//! window). An unanswered Activate Session after an answered challenge is a wrong
//! password: a BMC drops a message whose AuthCode does not verify (§22.17.1;
//! ipmi_sim does), so there is no error code to wait for.

use std::collections::VecDeque;
use std::time::Duration;

use fencekit_core::{Instant, PowerState, Secret};
use rand::rngs::StdRng;
use rand::Rng;
use zeroize::Zeroizing;

use crate::crypto::{kuid, AuthAlgorithm, RakpInputs, SessionKeys};
use crate::error::{completion_meaning, rmcp_status_meaning, IpmiError, Phase};
use crate::message::{
    power_is_on, ChassisControl, Privilege, Request, Response, CMD_CHASSIS_CONTROL,
    CMD_CLOSE_SESSION, CMD_GET_CHANNEL_AUTH_CAPS, CMD_GET_CHASSIS_STATUS,
    CMD_SET_SESSION_PRIVILEGE, NETFN_APP, NETFN_CHASSIS,
};
use crate::packet::{decode_v2, encode_v2, peek, Framing, PayloadType, V15Packet};
use crate::session::window::{next_seq, SeqWindow};
use crate::setup::{
    OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp34, NAME_ONLY_LOOKUP,
};
use crate::suite::CipherSuite;
use crate::v15::{self, AuthType};

/// Open Session sends (the first and its retransmissions) left unanswered before the
/// next allowed suite is offered: about 1.5 s at the default interval.
const UNANSWERED_SUITE_SENDS: u32 = 3;

/// Handshakes started again from Open Session after an unanswered RAKP 1 or 3,
/// before RAKP messages are simply sent again.
const HANDSHAKE_RESTARTS: u32 = 4;

/// Fresh logins (from Open Session, with a new tag, Rm, BMC session ID and keys)
/// after RAKP 2 or RAKP 4 answered with a transient status.
const FRESH_LOGINS: u32 = 3;

/// RAKP 2 / RAKP 4 statuses that end only this attempt, not the login: 0x02
/// "invalid session ID", which pyghmi (ipmi/private/session.py) takes for a
/// half-open session that a retry in flight invalidated and answers by logging
/// in again; and 0x08 "inactive session ID", the same situation said otherwise
/// (the BMC has already dropped the half-open session; ipmi.md §6). Unauthorized
/// name or role, invalid integrity check value and the rest are the account's or
/// the BMC's answer and fail at once; "insufficient resources" (0x01, 0x0B) too,
/// as FreeIPMI and pyghmi report it: logging in again would take another slot.
fn is_transient_rakp_status(status: u8) -> bool {
    matches!(status, 0x02 | 0x08)
}

/// Times an unanswered Close Session is sent again before the session is left to
/// the BMC's own timeout.
const CLOSE_RESENDS: u32 = 2;

/// Set Session Privilege Level "busy" or "timed out" answers taken before the
/// command that needed the privilege fails with it.
const PRIVILEGE_RETRIES: u32 = 6;

/// Activate Session sends (the first and its retransmissions) left unanswered,
/// after the BMC answered Get Session Challenge, before a fresh challenge is
/// asked for; when that one's Activate Session goes unanswered as often too, the
/// password is taken for wrong: a BMC silently drops an Activate Session whose
/// AuthCode does not verify. Two rounds, so that lost answers alone rarely end a
/// session with the wrong reason (both rounds lost: 0.36^6 at 20 % loss).
const ACTIVATE_SENDS: u32 = 3;

/// The session protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IPMI v2.0 RMCP+ with the configured cipher suites.
    RmcpPlus,
    /// IPMI 1.5 with this authentication type; `explicit: false` is the default
    /// (MD5) that a BMC without MD5 refuses with what it offers instead.
    Ipmi15 { auth: AuthType, explicit: bool },
}

/// BMC quirks worked around on request, named as FreeIPMI's `-W` list names them
/// (`chu11/freeipmi-mirror` man/manpage-common-workaround-outofband-20-text.man;
/// the code in libfreeipmi/api/ipmi-lan-session-common.c). None of them lets a
/// BMC skip its proof: where FreeIPMI's workaround drops a check, ours keeps it
/// (each field says how).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workarounds {
    /// `opensesspriv`: the BMC hashes keys with the Open Session privilege, so it
    /// must be the requested one (ipmi_sim, Sun ILOM, Supermicro X8, ...). We send
    /// the requested level in Open Session by default; this one also wins over
    /// `privzero`, as ipmipower's does over its default of 0.
    pub open_session_privilege: bool,
    /// `privzero`: ask for privilege 0 ("highest matching") in Open Session, as
    /// FreeIPMI does without `opensesspriv`, for BMCs binding suites to exact levels.
    /// Overrides the default, not `opensesspriv`, `intel20` or `sun20`.
    pub open_session_privilege_zero: bool,
    /// `intel20` (Intel SE7520AF2 with the Server Management Module): the
    /// requested level in Open Session, answered with that very level; the name
    /// zero-padded to 16 bytes in RAKP 1, the RAKP 2 check and the SIK; RAKP 3
    /// over the name unpadded with the name-only bit cleared; under HMAC-MD5 the
    /// password cut to 16 bytes; the RAKP 4 ICV hashed and cut as the integrity
    /// algorithm says. FreeIPMI accepts an empty ICV where the suite has no
    /// integrity algorithm; we refuse such a session (nothing would prove the
    /// BMC's K_g/SIK).
    pub intel20: bool,
    /// `supermicro20` (Supermicro H8QME, Peppercon firmware): an RAKP 2 auth code
    /// one byte longer than the digest is taken without its last byte; the
    /// digest itself is checked in full.
    pub supermicro20: bool,
    /// `sun20` (Sun Fire 4100/4200/4500 ILOM): as `supermicro20` for HMAC-SHA1
    /// auth codes, and `opensesspriv`.
    pub sun20: bool,
    /// `integritycheckvalue` (Supermicro X8DTG/X8DTU, Intel S5500WBV/S2600JF):
    /// under cipher suite 0 (no authentication: pinned with
    /// allow_insecure_cipher only) RAKP 4's non-empty ICV is ignored, as
    /// FreeIPMI does; such a suite has no key an ICV could be checked with.
    /// Under every other suite the ICV is checked as ever.
    pub integrity_check_value: bool,
    /// `nochecksumcheck`: ignore bad IPMI message checksums (Supermicro X9).
    pub no_checksum_check: bool,
    /// `idzero`: accept a BMC session ID of 0 (Tyan S2882).
    pub accept_session_id_zero: bool,
}

impl Workarounds {
    pub const NAMES: &'static [&'static str] = &[
        "opensesspriv",
        "privzero",
        "intel20",
        "supermicro20",
        "sun20",
        "integritycheckvalue",
        "nochecksumcheck",
        "idzero",
    ];

    /// Parses a comma-separated list (`opensesspriv,nochecksumcheck`).
    pub fn parse(text: &str) -> Result<Workarounds, IpmiError> {
        let mut out = Workarounds::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "opensesspriv" => out.open_session_privilege = true,
                "privzero" => out.open_session_privilege_zero = true,
                "intel20" => out.intel20 = true,
                "supermicro20" => out.supermicro20 = true,
                "sun20" => out.sun20 = true,
                "integritycheckvalue" => out.integrity_check_value = true,
                "nochecksumcheck" => out.no_checksum_check = true,
                "idzero" => out.accept_session_id_zero = true,
                other => {
                    return Err(IpmiError::Config(format!(
                        "unknown workaround `{other}`; known: {}",
                        Workarounds::NAMES.join(", ")
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Whether Open Session asks for privilege 0 ("highest matching") rather
    /// than the configured level: only with `privzero`, and never with a
    /// workaround for a BMC that hashes with the Open Session level (ipmipower:
    /// `intel20`, `sun20` and `opensesspriv` all send the level).
    fn open_session_privilege_zero(&self) -> bool {
        self.open_session_privilege_zero
            && !(self.open_session_privilege || self.intel20 || self.sun20)
    }

    /// Whether an RAKP 2 auth code one byte longer than the `auth` digest is
    /// taken without that byte (`supermicro20`; `sun20` for HMAC-SHA1).
    fn long_rakp2_code(&self, auth: AuthAlgorithm) -> bool {
        self.supermicro20 || (self.sun20 && auth == AuthAlgorithm::HmacSha1)
    }
}

/// Everything a session needs to know before it starts.
#[derive(Clone)]
pub struct SessionConfig {
    /// The BMC as users name it (`host:port`), for messages.
    pub host: String,
    username: Vec<u8>,
    kuid: Zeroizing<[u8; 20]>,
    kg: Option<Zeroizing<Vec<u8>>>,
    pub privilege: Privilege,
    /// Suites to offer, in order (see [`crate::suite::offer`]).
    pub suites: Vec<CipherSuite>,
    pub workarounds: Workarounds,
    /// First retransmission interval; it grows by one multiple every 8 retries.
    pub retransmit_interval: Duration,
    /// Role byte bit 4 (ipmi.md §2.1); on by default, as ipmitool and ipmipower do.
    pub name_only_lookup: bool,
    /// RMCP+ (the default) or IPMI 1.5 (see [`SessionConfig::use_ipmi15`]).
    protocol: Protocol,
    /// The password padded to 16 bytes, for IPMI 1.5 (`None`: longer than 16).
    password16: Option<Zeroizing<[u8; 16]>>,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("host", &self.host)
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("privilege", &self.privilege)
            .field(
                "suites",
                &self.suites.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
            .field("workarounds", &self.workarounds)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// Checks lengths: username ≤ 16 bytes, password ≤ 20, K_g ≤ 20.
    pub fn new(
        host: impl Into<String>,
        username: &str,
        password: &Secret,
        kg: Option<&[u8]>,
        privilege: Privilege,
        suites: Vec<CipherSuite>,
    ) -> Result<SessionConfig, IpmiError> {
        if username.len() > 16 {
            return Err(IpmiError::Config(format!(
                "username `{username}` is {} bytes; IPMI allows at most 16",
                username.len()
            )));
        }
        let kuid = kuid(password.expose().as_bytes()).map_err(|_| {
            IpmiError::Config(format!(
                "the password is {} bytes; IPMI v2.0 allows at most 20",
                password.len()
            ))
        })?;
        if let Some(kg) = kg {
            if kg.len() > 20 {
                return Err(IpmiError::Config(format!(
                    "K_g is {} bytes; IPMI v2.0 allows at most 20",
                    kg.len()
                )));
            }
        }
        if suites.is_empty() {
            return Err(IpmiError::Config("no cipher suite to offer".into()));
        }
        Ok(SessionConfig {
            host: host.into(),
            username: username.as_bytes().to_vec(),
            kuid,
            // K_g is used zero-padded to 20 bytes, like Kuid.
            kg: kg.filter(|k| !k.is_empty()).map(|k| {
                let mut padded = Zeroizing::new(vec![0u8; 20]);
                padded[..k.len()].copy_from_slice(k);
                padded
            }),
            privilege,
            suites,
            workarounds: Workarounds::default(),
            retransmit_interval: Duration::from_millis(500),
            name_only_lookup: true,
            protocol: Protocol::RmcpPlus,
            password16: v15::password16(password.expose().as_bytes()).ok(),
        })
    }

    /// Speaks IPMI 1.5 with `auth` instead of RMCP+; `explicit: false` marks MD5
    /// as the default rather than asked for. MD2 is refused (no implementation
    /// we trust, and broken), and so is a password longer than 1.5's 16 bytes.
    pub fn use_ipmi15(&mut self, auth: AuthType, explicit: bool) -> Result<(), IpmiError> {
        if auth == AuthType::Md2 {
            return Err(IpmiError::Config(
                "IPMI 1.5 authentication type MD2 is not supported; use md5 or password".into(),
            ));
        }
        if self.password16.is_none() {
            return Err(IpmiError::Config(
                "the password is longer than 16 bytes, the most IPMI 1.5 allows; \
                 use RMCP+ (lanplus=1) or a shorter password"
                    .into(),
            ));
        }
        self.protocol = Protocol::Ipmi15 { auth, explicit };
        Ok(())
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn username(&self) -> String {
        String::from_utf8_lossy(&self.username).into_owned()
    }
}

/// Open Session statuses that refuse the proposed suite, on which the next allowed
/// suite is tried (ipmi.md §1): invalid authentication (0x04), integrity (0x05) or
/// confidentiality (0x10) algorithm, no matching integrity payload (0x11).
fn is_suite_refusal(status: u8) -> bool {
    matches!(status, 0x04 | 0x05 | 0x10 | 0x11)
}

/// What a caller can ask of an established session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    GetChassisStatus,
    ChassisControl(ChassisControl),
    /// Set Session Privilege Level to the configured level now (a credentials check).
    RaisePrivilege,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::GetChassisStatus => "Get Chassis Status",
            Command::ChassisControl(c) => c.as_str(),
            Command::RaisePrivilege => "Set Session Privilege Level",
        }
    }
}

/// A command's successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Power(PowerState),
    Accepted,
}

/// What happened in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Established {
        suite: u8,
    },
    /// An IPMI 1.5 session was activated with this auth type.
    EstablishedV15 {
        auth: AuthType,
    },
    Reply {
        command: Command,
        result: Result<Reply, IpmiError>,
    },
    /// The session ended with this error; queued commands will not run.
    Failed(IpmiError),
    /// The session is over (closed, or failed and torn down).
    Closed,
}

/// What an outstanding in-session request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Privilege,
    Command(Command),
    /// Status read after the reply to a non-idempotent control was lost.
    LostReplyCheck {
        control: ChassisControl,
        control_rq_seq: u8,
    },
    Close,
}

#[derive(Debug)]
struct Outstanding {
    request: Request,
    purpose: Purpose,
    retries: u32,
    next: Instant,
}

/// How an established session wraps its messages.
enum Link {
    RmcpPlus(SessionKeys),
    /// IPMI 1.5: this auth type on every message (none when the BMC disabled
    /// per-message authentication), the padded password, the BMC's session ID.
    V15 {
        auth: AuthType,
        password: Zeroizing<[u8; 16]>,
    },
}

enum State {
    /// IPMI 1.5: Get Channel Authentication Capabilities sent.
    V15AuthCaps {
        request: Request,
        packet: Vec<u8>,
    },
    /// IPMI 1.5: Get Session Challenge sent.
    V15Challenge {
        auth: AuthType,
        per_message: bool,
        request: Request,
        packet: Vec<u8>,
    },
    /// IPMI 1.5: Activate Session sent with the temporary session ID.
    V15Activate {
        auth: AuthType,
        per_message: bool,
        temp_session_id: u32,
        initial_outbound: u32,
        request: Request,
        packet: Vec<u8>,
    },
    OpenSession {
        suite_index: usize,
        packet: Vec<u8>,
    },
    Rakp1 {
        suite: CipherSuite,
        bmc_session_id: u32,
        console_random: [u8; 16],
        packet: Vec<u8>,
    },
    Rakp3 {
        suite: CipherSuite,
        bmc_session_id: u32,
        console_random: [u8; 16],
        bmc_random: [u8; 16],
        bmc_guid: [u8; 16],
        sik: Zeroizing<Vec<u8>>,
        packet: Vec<u8>,
    },
    Established {
        bmc_session_id: u32,
        link: Link,
        outstanding: Option<Outstanding>,
    },
    Done,
}

/// One RMCP+ session with one BMC.
pub struct Session {
    config: SessionConfig,
    console_session_id: u32,
    deadline: Instant,
    rng: StdRng,
    state: State,
    tag: u8,
    retries: u32,
    next_retransmit: Option<Instant>,
    queue: VecDeque<Command>,
    privilege_raised: bool,
    /// The level Set Session Privilege Level asks for: the configured one, or
    /// OPERATOR after the BMC refused ADMINISTRATOR (enough to switch power).
    raise_to: Privilege,
    /// Set Session Privilege Level answers "busy" or "timed out" taken so far.
    privilege_retries: u32,
    /// Handshakes started again from Open Session after an unanswered RAKP 1 or 3.
    handshake_restarts: u32,
    /// Fresh logins after a transient RAKP 2 / RAKP 4 status.
    fresh_logins: u32,
    /// IPMI 1.5: a fresh challenge was asked for after an unanswered Activate.
    rechallenged: bool,
    /// Suites left for the next one only because their Open Session went
    /// unanswered (a BMC may drop an offer of a suite it lacks; packets may also
    /// just be lost): offered again, in order, once every later one was refused.
    unanswered: Vec<usize>,
    /// A suite offered again after the others were refused is kept until the
    /// deadline: no more skipping on silence.
    revisiting: bool,
    closing: bool,
    out_seq: u32,
    rq_seq: u8,
    window: SeqWindow,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    /// Starts a session: the Open Session request is ready to send at once.
    /// `console_session_id` 0 draws a random one (never 0).
    pub fn new(
        config: SessionConfig,
        console_session_id: u32,
        now: Instant,
        deadline: Instant,
        rng: StdRng,
    ) -> Session {
        Session::with_first_tag(config, console_session_id, now, deadline, rng, None)
    }

    /// As [`Session::new`], the first request's message tag `first_tag` (random when
    /// `None`). A driver running several sessions to one BMC gives each a range of
    /// its own: a truncated Open Session refusal carries only its tag, so two
    /// sessions whose tags meet could take each other's refusals and skip a suite
    /// they were never refused.
    pub fn with_first_tag(
        config: SessionConfig,
        console_session_id: u32,
        now: Instant,
        deadline: Instant,
        mut rng: StdRng,
        first_tag: Option<u8>,
    ) -> Session {
        let raise_to = config.privilege;
        let mut console_session_id = console_session_id;
        while console_session_id == 0 {
            console_session_id = rng.next_u32();
        }
        // The tag is advanced before each request is built.
        let tag = first_tag
            .map(|t| t.wrapping_sub(1))
            .unwrap_or_else(|| (rng.next_u32() & 0x3f) as u8);
        let mut session = Session {
            config,
            console_session_id,
            deadline,
            rng,
            state: State::Done,
            tag,
            retries: 0,
            next_retransmit: None,
            queue: VecDeque::new(),
            privilege_raised: false,
            raise_to,
            privilege_retries: 0,
            handshake_restarts: 0,
            fresh_logins: 0,
            rechallenged: false,
            unanswered: Vec::new(),
            revisiting: false,
            closing: false,
            out_seq: 0,
            rq_seq: 0,
            window: SeqWindow::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        match session.config.protocol {
            Protocol::RmcpPlus => session.open_session(0, now),
            Protocol::Ipmi15 { .. } => {
                // rq_seq from a random start: sessionless replies to two sessions
                // with one BMC are told apart by it.
                session.rq_seq = (session.rng.next_u32() & 0x3f) as u8;
                session.v15_auth_caps(now)
            }
        }
        session
    }

    pub fn console_session_id(&self) -> u32 {
        self.console_session_id
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done) && self.transmit.is_empty()
    }

    /// Queues a command; it runs once the session is established.
    pub fn queue(&mut self, command: Command, now: Instant) {
        self.queue.push_back(command);
        self.pump(now);
    }

    /// Closes the session after the commands already queued.
    pub fn close(&mut self, now: Instant) {
        self.closing = true;
        match self.state {
            State::Established { .. } => self.pump(now),
            State::Done => {}
            // Nothing established yet: the BMC drops half-open sessions itself.
            _ => self.finish(None),
        }
    }

    /// Gives up on what is queued and outstanding, and closes the session: for a
    /// kept session whose caller stopped waiting for a read (a chassis control is
    /// never run in one).
    pub fn abandon(&mut self, now: Instant) {
        self.queue.clear();
        if let State::Established { outstanding, .. } = &mut self.state {
            *outstanding = None;
        }
        self.close(now);
    }

    /// Whether the session is established with nothing queued or outstanding: a
    /// kept session waiting for its next command.
    pub fn is_idle(&self) -> bool {
        matches!(
            self.state,
            State::Established {
                outstanding: None,
                ..
            }
        ) && self.queue.is_empty()
            && !self.closing
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, State::Done) {
            return None;
        }
        let next = match &self.state {
            State::Established {
                outstanding: Some(o),
                ..
            } => Some(o.next),
            State::Established { .. } => None,
            _ => self.next_retransmit,
        };
        Some(next.map_or(self.deadline, |n| n.min(self.deadline)))
    }

    fn fail(&mut self, error: IpmiError) {
        tracing::debug!(host = %self.config.host, %error, "IPMI session failed");
        self.finish(Some(error));
    }

    fn finish(&mut self, error: Option<IpmiError>) {
        if let Some(error) = error {
            self.events.push_back(Event::Failed(error));
        }
        self.state = State::Done;
        self.next_retransmit = None;
        self.events.push_back(Event::Closed);
    }

    fn host(&self) -> String {
        self.config.host.clone()
    }

    fn role(&self) -> u8 {
        self.config.privilege.level()
            | if self.config.name_only_lookup {
                NAME_ONLY_LOOKUP
            } else {
                0
            }
    }

    /// The name as RAKP 1 carries it and RAKP 2 and the SIK hash it: zero-padded
    /// to 16 bytes for an intel20 BMC, though the spec forbids 00h in names
    /// (FreeIPMI's intel20).
    fn rakp_name(&self) -> Vec<u8> {
        let mut name = self.config.username.clone();
        if self.config.workarounds.intel20 {
            name.resize(16, 0);
        }
        name
    }

    /// Kuid, cut to 16 bytes under HMAC-MD5 for an intel20 BMC (FreeIPMI's
    /// intel20: that BMC truncates longer passwords so).
    fn user_key(&self, auth: AuthAlgorithm) -> Zeroizing<[u8; 20]> {
        let mut key = self.config.kuid.clone();
        if self.config.workarounds.intel20 && auth == AuthAlgorithm::HmacMd5 {
            key[16..].fill(0);
        }
        key
    }

    fn interval(&self, retries: u32) -> Duration {
        // ipmipower: t × (1 + n/8) after n retransmissions.
        self.config.retransmit_interval * (1 + retries / 8)
    }

    fn send_setup(&mut self, packet: Vec<u8>, now: Instant) {
        self.transmit.push_back(packet);
        self.next_retransmit = Some(now + self.interval(self.retries));
    }

    fn open_session(&mut self, suite_index: usize, now: Instant) {
        // Past the last suite: one that was only unanswered may have been a lost
        // packet or a slow BMC, not a missing suite; offer it again, and keep it.
        let suite_index = if suite_index >= self.config.suites.len() && !self.unanswered.is_empty()
        {
            let again = self.unanswered.remove(0);
            self.revisiting = true;
            tracing::info!(host = %self.config.host, suite = self.config.suites[again].id,
                "every later suite was refused; offering again one that went unanswered");
            again
        } else {
            suite_index
        };
        let Some(suite) = self.config.suites.get(suite_index).copied() else {
            let tried: Vec<String> = self
                .config
                .suites
                .iter()
                .map(|s| s.id.to_string())
                .collect();
            let host = self.host();
            self.fail(IpmiError::CipherSuiteUnavailable {
                host,
                tried: tried.join(", "),
            });
            return;
        };
        self.tag = self.tag.wrapping_add(1);
        let privilege = if self.config.workarounds.open_session_privilege_zero() {
            0
        } else {
            self.config.privilege.level()
        };
        let request = OpenSessionRequest {
            tag: self.tag,
            privilege,
            console_session_id: self.console_session_id,
            algorithms: suite.algorithms(),
        };
        let packet = match encode_v2(
            PayloadType::OpenSessionRequest,
            0,
            0,
            &request.encode(),
            None,
            [0; 16],
        ) {
            Ok(p) => p,
            Err(e) => return self.fail(self.protocol(format!("cannot encode Open Session: {e}"))),
        };
        self.retries = 0;
        self.state = State::OpenSession {
            suite_index,
            packet: packet.clone(),
        };
        self.send_setup(packet, now);
    }

    fn protocol(&self, detail: String) -> IpmiError {
        IpmiError::Protocol {
            host: self.host(),
            detail,
        }
    }

    /// Time passed: retransmit what is due, or end at the deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Done) {
            return;
        }
        if now >= self.deadline {
            let phase = match self.state {
                State::OpenSession { .. } => Phase::OpenSession,
                State::Rakp1 { .. } | State::Rakp3 { .. } => Phase::Rakp,
                State::V15AuthCaps { .. } => Phase::AuthCaps,
                State::V15Challenge { .. } | State::V15Activate { .. } => Phase::Activation,
                _ => Phase::InSession,
            };
            if let State::Established {
                outstanding: Some(o),
                ..
            } = &self.state
            {
                if o.purpose == Purpose::Close {
                    return self.finish(None);
                }
            }
            let host = self.host();
            return self.fail(IpmiError::NoAnswer { host, phase });
        }
        if let State::Established { .. } = self.state {
            return self.in_session_timeout(now);
        }
        if self.next_retransmit.is_some_and(|t| now >= t) {
            if self.v15_timeout(now) {
                return;
            }
            // A BMC may drop an Open Session for a suite it lacks instead of refusing
            // it: after this many sends with no answer at all, offer the next
            // allowed suite (a late answer to the old offer has the old tag and is
            // ignored).
            if let State::OpenSession { suite_index, .. } = self.state {
                if self.retries + 1 >= UNANSWERED_SUITE_SENDS
                    && suite_index + 1 < self.config.suites.len()
                    && !self.revisiting
                {
                    tracing::info!(host = %self.config.host,
                        suite = self.config.suites[suite_index].id,
                        "no answer to Open Session; trying the next allowed suite");
                    if !self.unanswered.contains(&suite_index) {
                        self.unanswered.push(suite_index);
                    }
                    return self.open_session(suite_index + 1, now);
                }
            }
            // An unanswered RAKP 1 or RAKP 3 is not sent again: some BMCs refuse a
            // repeated one and drop the session (pyghmi's session.py), and ipmitool
            // starts again from Open Session; so do we, with the same suite, a few
            // times before falling back to resending.
            let restart = match &self.state {
                State::Rakp1 { suite, .. } | State::Rakp3 { suite, .. } => Some(suite.id),
                _ => None,
            };
            if let Some(suite_id) = restart.filter(|_| self.handshake_restarts < HANDSHAKE_RESTARTS)
            {
                self.handshake_restarts += 1;
                let index = self
                    .config
                    .suites
                    .iter()
                    .position(|s| s.id == suite_id)
                    .unwrap_or(0);
                tracing::debug!(host = %self.config.host, "RAKP unanswered; starting again from Open Session");
                return self.open_session(index, now);
            }
            let packet = match &self.state {
                State::OpenSession { packet, .. }
                | State::Rakp1 { packet, .. }
                | State::Rakp3 { packet, .. } => packet.clone(),
                _ => return,
            };
            // Pre-session retransmits reuse tag, console SID and Rm (ipmi.md §5).
            self.retries += 1;
            self.send_setup(packet, now);
        }
    }

    fn in_session_timeout(&mut self, now: Instant) {
        let State::Established { outstanding, .. } = &mut self.state else {
            return;
        };
        let Some(o) = outstanding.as_mut().filter(|o| now >= o.next) else {
            return;
        };
        match o.purpose {
            // Close Session is idempotent: sent again while its answer is missing
            // (a lost request leaves the session holding one of the BMC's few
            // slots), a few times, then given up on.
            Purpose::Close if o.retries >= CLOSE_RESENDS => self.finish(None),
            Purpose::Command(Command::ChassisControl(control)) if !control.is_idempotent() => {
                let control_rq_seq = o.request.rq_seq;
                tracing::warn!(host = %self.config.host, command = control.as_str(),
                    "reply lost; reading chassis status instead of repeating it");
                *outstanding = None;
                self.send_request(
                    NETFN_CHASSIS,
                    CMD_GET_CHASSIS_STATUS,
                    vec![],
                    Purpose::LostReplyCheck {
                        control,
                        control_rq_seq,
                    },
                    now,
                );
            }
            _ => {
                o.retries += 1;
                let request = o.request.clone();
                let retries = o.retries;
                let next = now + self.interval(retries);
                if let State::Established {
                    outstanding: Some(o),
                    ..
                } = &mut self.state
                {
                    o.next = next;
                }
                self.transmit_request(&request);
            }
        }
    }

    /// A datagram arrived (from the BMC's address: the driver checks that).
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let header = match peek(datagram) {
            Ok(Framing::V2(header)) => header,
            Ok(Framing::V15) => return self.on_v15(datagram, now),
            _ => return,
        };
        match header.payload_type {
            PayloadType::OpenSessionResponse => self.on_open_session_response(datagram, now),
            PayloadType::Rakp2 => self.on_rakp2(datagram, now),
            PayloadType::Rakp4 => self.on_rakp4(datagram, now),
            PayloadType::Ipmi => self.on_ipmi(datagram, now),
            _ => {}
        }
    }

    /// The next request's `rq_seq`, for a request outside [`State::Established`].
    fn v15_request(&mut self, command: u8, data: Vec<u8>) -> Request {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        Request {
            net_fn: NETFN_APP,
            command,
            rq_seq: self.rq_seq,
            data,
        }
    }

    /// Starts an IPMI 1.5 session: Get Channel Authentication Capabilities at the
    /// configured privilege, to learn the auth types offered at it (§22.13).
    fn v15_auth_caps(&mut self, now: Instant) {
        let level = self.config.privilege.level();
        let request = self.v15_request(CMD_GET_CHANNEL_AUTH_CAPS, v15::auth_caps_request(level));
        match V15Packet::sessionless(request.encode()).encode() {
            Ok(packet) => {
                self.retries = 0;
                self.state = State::V15AuthCaps {
                    request,
                    packet: packet.clone(),
                };
                self.send_setup(packet, now);
            }
            Err(e) => self.fail(self.protocol(e.to_string())),
        }
    }

    /// Pre-session time-outs of an IPMI 1.5 session (true: handled). Get Channel
    /// Authentication Capabilities and Get Session Challenge change nothing and
    /// are sent again until the deadline; Activate Session a few times, then the
    /// password is the likely reason (see the module documentation).
    fn v15_timeout(&mut self, now: Instant) -> bool {
        let (packet, activate) = match &self.state {
            State::V15AuthCaps { packet, .. } | State::V15Challenge { packet, .. } => {
                (packet.clone(), None)
            }
            State::V15Activate {
                packet,
                auth,
                per_message,
                ..
            } => (packet.clone(), Some((*auth, *per_message))),
            _ => return false,
        };
        if let Some((auth, per_message)) = activate {
            if self.retries + 1 >= ACTIVATE_SENDS && !self.rechallenged {
                self.rechallenged = true;
                tracing::debug!(host = %self.config.host, "Activate Session unanswered; asking for a fresh challenge");
                self.send_challenge(auth, per_message, now);
                return true;
            }
            if self.retries + 1 >= ACTIVATE_SENDS && auth != AuthType::None {
                let error = IpmiError::PasswordInvalid {
                    user: self.config.username(),
                    host: self.host(),
                    detail: format!(
                        "the BMC answered Get Session Challenge but not Activate Session ({} \
                         sends, two challenges): a BMC drops an Activate Session whose {} AuthCode does not \
                         verify, which a wrong password causes (or every answer was lost)",
                        2 * ACTIVATE_SENDS,
                        auth.as_str()
                    ),
                };
                self.fail(error);
                return true;
            }
        }
        self.retries += 1;
        self.send_setup(packet, now);
        true
    }

    /// The reply to a sessionless or activation request `request`, if this
    /// datagram is it (IPMI 1.5 wrapper, matching rq_seq, NetFn and command).
    fn v15_reply(&self, datagram: &[u8], request: &Request) -> Option<(V15Packet, Response)> {
        let packet = V15Packet::decode(datagram).ok()?;
        let response =
            Response::decode(&packet.message, !self.config.workarounds.no_checksum_check).ok()?;
        (response.rq_seq == request.rq_seq
            && response.command == request.command
            && response.net_fn == request.net_fn)
            .then_some((packet, response))
    }

    /// An IPMI 1.5 datagram: a step of session activation, or a reply inside an
    /// IPMI 1.5 session.
    fn on_v15(&mut self, datagram: &[u8], now: Instant) {
        match &self.state {
            State::V15AuthCaps { request, .. } => {
                let request = request.clone();
                self.on_v15_auth_caps(datagram, &request, now)
            }
            State::V15Challenge {
                auth,
                per_message,
                request,
                ..
            } => {
                let (auth, per_message, request) = (*auth, *per_message, request.clone());
                self.on_v15_challenge(datagram, auth, per_message, &request, now)
            }
            State::V15Activate { .. } => self.on_v15_activated(datagram, now),
            State::Established {
                bmc_session_id,
                link: Link::V15 { auth, password },
                ..
            } => {
                let Ok(packet) = V15Packet::decode(datagram) else {
                    return;
                };
                // Every reply carries the session's AuthCode (per-message
                // authentication); one that does not verify is dropped, as the
                // BMC drops ours (§22.17.1).
                if packet.session_id != *bmc_session_id || !v15::verify(&packet, *auth, password) {
                    return;
                }
                let Ok(response) =
                    Response::decode(&packet.message, !self.config.workarounds.no_checksum_check)
                else {
                    return;
                };
                self.on_session_response(response, packet.sequence, now);
            }
            _ => {}
        }
    }

    fn on_v15_auth_caps(&mut self, datagram: &[u8], request: &Request, now: Instant) {
        let Some((packet, response)) = self.v15_reply(datagram, request) else {
            return;
        };
        if packet.session_id != 0 {
            return;
        }
        let Protocol::Ipmi15 { auth, explicit } = self.config.protocol else {
            return;
        };
        if response.completion != 0 {
            let error = IpmiError::Completion {
                host: self.host(),
                command: "Get Channel Authentication Capabilities",
                code: response.completion,
                meaning: completion_meaning(response.completion),
            };
            return self.fail(error);
        }
        let caps = match v15::V15Caps::decode(&response.data) {
            Ok(caps) => caps,
            Err(e) => return self.fail(self.protocol(e.to_string())),
        };
        if caps.support & auth.support_bit() == 0 {
            let offered: Vec<&str> = AuthType::offered(caps.support)
                .into_iter()
                .map(AuthType::as_str)
                .collect();
            let error = IpmiError::AuthTypeUnavailable {
                host: self.host(),
                wanted: auth.as_str(),
                offered: if offered.is_empty() {
                    "no IPMI 1.5 authentication type".into()
                } else {
                    offered.join(", ")
                },
                hint: if explicit {
                    "set `auth` to one it offers (md5 or password), or use RMCP+ (lanplus=1, interface=lanplus)"
                } else {
                    "without `auth`, IPMI 1.5 is spoken with MD5 only: set auth=password or \
                     auth=none explicitly to accept a weaker one, or use RMCP+ (lanplus=1, interface=lanplus)"
                },
            };
            return self.fail(error);
        }
        let per_message = !caps.per_message_disabled;
        // Without per-message authentication no reply carries an AuthCode: the power
        // state read back to confirm a fence could come from anyone on the path. A
        // session asked to be authenticated is refused rather than run so; with
        // auth=none nothing was to be authenticated.
        if !per_message && auth != AuthType::None {
            return self.fail(IpmiError::UnauthenticatedReplies { host: self.host() });
        }
        self.send_challenge(auth, per_message, now);
    }

    /// Sends Get Session Challenge for the configured user (§22.16).
    fn send_challenge(&mut self, auth: AuthType, per_message: bool, now: Instant) {
        let data = match v15::challenge_request(auth, &self.config.username) {
            Ok(data) => data,
            Err(e) => return self.fail(IpmiError::Config(e.to_string())),
        };
        let request = self.v15_request(v15::CMD_GET_SESSION_CHALLENGE, data);
        match V15Packet::sessionless(request.encode()).encode() {
            Ok(packet) => {
                self.retries = 0;
                self.state = State::V15Challenge {
                    auth,
                    per_message,
                    request,
                    packet: packet.clone(),
                };
                self.send_setup(packet, now);
            }
            Err(e) => self.fail(self.protocol(e.to_string())),
        }
    }

    fn on_v15_challenge(
        &mut self,
        datagram: &[u8],
        auth: AuthType,
        per_message: bool,
        request: &Request,
        now: Instant,
    ) {
        let Some((packet, response)) = self.v15_reply(datagram, request) else {
            return;
        };
        if packet.session_id != 0 {
            return;
        }
        let user = self.config.username();
        let host = self.host();
        match response.completion {
            0 => {}
            code @ (0x81 | 0x82) => {
                let detail = if code == 0x81 {
                    "Get Session Challenge: invalid user name (0x81)"
                } else {
                    "Get Session Challenge: null user name not enabled (0x82)"
                };
                return self.fail(IpmiError::UsernameInvalid {
                    user,
                    host,
                    detail: detail.into(),
                });
            }
            code => {
                return self.fail(IpmiError::Completion {
                    host,
                    command: "Get Session Challenge",
                    code,
                    meaning: completion_meaning(code),
                })
            }
        }
        let challenge = match v15::Challenge::decode(&response.data) {
            Ok(c) => c,
            Err(e) => return self.fail(self.protocol(e.to_string())),
        };
        let Some(password) = self.config.password16.clone() else {
            return self.fail(IpmiError::Config(
                "the password is longer than 16 bytes, the most IPMI 1.5 allows".into(),
            ));
        };
        let mut initial_outbound = 0;
        while initial_outbound == 0 {
            initial_outbound = self.rng.next_u32();
        }
        let activate = v15::ActivateRequest {
            auth: auth as u8,
            privilege: self.config.privilege.level(),
            challenge: challenge.challenge,
            initial_outbound,
        };
        let request = self.v15_request(v15::CMD_ACTIVATE_SESSION, activate.encode());
        // Sent with the temporary session ID, sequence 0, and the AuthCode of the
        // auth type asked for (§22.17).
        match v15::seal(
            auth,
            &password,
            challenge.temp_session_id,
            0,
            request.encode(),
        ) {
            Ok(packet) => {
                self.retries = 0;
                self.state = State::V15Activate {
                    auth,
                    per_message,
                    temp_session_id: challenge.temp_session_id,
                    initial_outbound,
                    request,
                    packet: packet.clone(),
                };
                self.send_setup(packet, now);
            }
            Err(e) => self.fail(self.protocol(e.to_string())),
        }
    }

    fn on_v15_activated(&mut self, datagram: &[u8], now: Instant) {
        let State::V15Activate {
            auth,
            per_message,
            temp_session_id,
            initial_outbound,
            ref request,
            ..
        } = self.state
        else {
            return;
        };
        let Some((packet, response)) = self.v15_reply(datagram, request) else {
            return;
        };
        let Some(password) = self.config.password16.clone() else {
            return;
        };
        // The answer comes under the temporary session ID with the AuthCode of the
        // requested auth type (ipmi_sim's lanserv answers so); an unverified one is
        // dropped: it cannot be from the BMC that knows the password.
        if packet.session_id != temp_session_id || !v15::verify(&packet, auth, &password) {
            return;
        }
        let host = self.host();
        if response.completion != 0 {
            let code = response.completion;
            let detail = format!(
                "Activate Session: completion code {code:#04x}: {}",
                v15::activate_completion_meaning(code)
            );
            let error = match code {
                0x81..=0x83 => IpmiError::Busy { host, detail },
                0x86 => IpmiError::PrivilegeUnavailable {
                    user: self.config.username(),
                    host,
                    privilege: self.config.privilege.as_str(),
                    detail,
                },
                _ => IpmiError::Protocol { host, detail },
            };
            return self.fail(error);
        }
        let activated = match v15::Activated::decode(&response.data) {
            Ok(a) => a,
            Err(e) => return self.fail(self.protocol(e.to_string())),
        };
        if per_message && activated.auth != auth as u8 {
            // ipmitool refuses this too: the session would run unauthenticated or
            // with an auth type nobody asked for.
            return self.fail(self.protocol(format!(
                "Activate Session answered with auth type {}, not the requested {}",
                activated.auth,
                auth.as_str()
            )));
        }
        if activated.session_id == 0 {
            return self.fail(self.protocol("Activate Session gave session ID 0".into()));
        }
        // The console's first in-session number is the BMC's initial inbound one:
        // `next_seq` hands it out next (0 becomes 1, as ipmitool does).
        self.out_seq = activated.initial_inbound.wrapping_sub(1);
        self.window = SeqWindow::v15_expecting(initial_outbound);
        let link_auth = if per_message { auth } else { AuthType::None };
        tracing::debug!(host = %self.config.host, auth = auth.as_str(), "IPMI 1.5 session activated");
        self.state = State::Established {
            bmc_session_id: activated.session_id,
            link: Link::V15 {
                auth: link_auth,
                password,
            },
            outstanding: None,
        };
        self.next_retransmit = None;
        self.events.push_back(Event::EstablishedV15 { auth });
        self.pump(now);
    }

    fn on_open_session_response(&mut self, datagram: &[u8], now: Instant) {
        let State::OpenSession { suite_index, .. } = self.state else {
            return;
        };
        let Some(resp) = decode_v2(datagram, None)
            .ok()
            .and_then(|p| OpenSessionResponse::decode(&p.payload).ok())
        else {
            return;
        };
        if resp.tag != self.tag {
            return;
        }
        let Some(suite) = self.config.suites.get(suite_index).copied() else {
            return;
        };
        let host = self.host();
        match resp.console_session_id {
            Some(id) if id == self.console_session_id => {}
            Some(_) => return,
            // A truncated error response (tag and status only, as ipmi_sim sends
            // when it refuses a suite) names no session, so anyone could have sent
            // it: it may only move us on to the next suite we offer anyway (or
            // back to one that went unanswered), never let anything else happen;
            // past the last suite it ends the login, as a forger on the path could
            // by dropping every packet.
            None if is_suite_refusal(resp.status) => {
                tracing::info!(%host, suite = suite.id, status = resp.status,
                    "cipher suite refused (truncated answer); trying the next allowed one");
                return self.open_session(suite_index + 1, now);
            }
            None => {
                tracing::debug!(%host, status = resp.status,
                    "ignoring a truncated Open Session error that names no session");
                return;
            }
        }
        match (resp.status, resp.accepted) {
            (0, Some((bmc_session_id, algorithms))) => {
                if algorithms != suite.algorithms() {
                    // The BMC must take our proposal or refuse it (ipmi.md §7); some
                    // (pyghmi's BMC) answer a suite they lack with one of their own.
                    // Never take theirs: treat it as a refusal and propose our next
                    // allowed suite, which they are free to accept as proposed.
                    if suite_index + 1 < self.config.suites.len() || !self.unanswered.is_empty() {
                        tracing::info!(%host, suite = suite.id, ?algorithms,
                            "the BMC answered with other algorithms; trying the next allowed suite");
                        return self.open_session(suite_index + 1, now);
                    }
                    return self.fail(self.protocol(format!(
                        "Open Session answered with algorithms {algorithms:?}, not the proposed suite {}",
                        suite.id
                    )));
                }
                // An intel20 BMC answers 0 for "highest matching" instead of a level
                // and then fails; FreeIPMI checks that it granted the very level
                // asked for (ipmipower_check.c), and so do we.
                if self.config.workarounds.intel20
                    && resp.privilege != self.config.privilege.level()
                {
                    return self.fail(IpmiError::PrivilegeUnavailable {
                        user: self.config.username(),
                        host,
                        privilege: self.config.privilege.as_str(),
                        detail: format!(
                            "Open Session granted privilege {:#04x}, not the level asked for \
                             (workaround intel20)",
                            resp.privilege
                        ),
                    });
                }
                if bmc_session_id == 0 && !self.config.workarounds.accept_session_id_zero {
                    return self.fail(
                        self.protocol("BMC session ID 0 (workaround `idzero` accepts it)".into()),
                    );
                }
                let mut console_random = [0u8; 16];
                self.rng.fill_bytes(&mut console_random);
                self.tag = self.tag.wrapping_add(1);
                let rakp1 = Rakp1 {
                    tag: self.tag,
                    bmc_session_id,
                    console_random,
                    role: self.role(),
                    username: self.rakp_name(),
                };
                let packet = match rakp1
                    .encode()
                    .and_then(|p| encode_v2(PayloadType::Rakp1, 0, 0, &p, None, [0; 16]))
                {
                    Ok(p) => p,
                    Err(e) => return self.fail(IpmiError::Config(e.to_string())),
                };
                self.retries = 0;
                self.state = State::Rakp1 {
                    suite,
                    bmc_session_id,
                    console_random,
                    packet: packet.clone(),
                };
                self.send_setup(packet, now);
            }
            (status, _) if is_suite_refusal(status) => {
                tracing::info!(%host, suite = suite.id, status = resp.status,
                    "cipher suite refused; trying the next allowed one");
                self.open_session(suite_index + 1, now);
            }
            (status, _) => {
                let error = self.status_error(status, "Open Session");
                self.fail(error);
            }
        }
    }

    /// Starts a fresh login with suite `suite_id` after `step` answered with a
    /// transient `status`, if fewer than [`FRESH_LOGINS`] were started (true:
    /// started). The console session ID stays (the driver routes by it); the
    /// tag, Rm, the BMC's session ID and every key are new, and a late answer to
    /// the abandoned attempt carries an old tag and is ignored. The deadline
    /// still bounds it all.
    fn fresh_login(&mut self, status: u8, suite_id: u8, step: &str, now: Instant) -> bool {
        if !is_transient_rakp_status(status) || self.fresh_logins >= FRESH_LOGINS {
            return false;
        }
        self.fresh_logins += 1;
        tracing::info!(host = %self.config.host, status, step,
            "transient RAKP status; logging in again from Open Session");
        let index = self
            .config
            .suites
            .iter()
            .position(|s| s.id == suite_id)
            .unwrap_or(0);
        self.open_session(index, now);
        true
    }

    /// Whether the session waits for the answer to an Open Session Request that
    /// carried `tag` (the driver routes truncated error answers with this).
    pub fn awaits_open_session_response(&self, tag: u8) -> bool {
        matches!(self.state, State::OpenSession { .. }) && self.tag == tag
    }

    /// Whether this session waits for an RAKP 2 or RAKP 4 answer with `tag`: an
    /// RAKP error addressed to console session ID 0 is routed by its tag.
    pub fn awaits_rakp_response(&self, tag: u8) -> bool {
        matches!(self.state, State::Rakp1 { .. } | State::Rakp3 { .. }) && self.tag == tag
    }

    /// Maps an RMCP+ status code to an error (ipmi.md §6).
    fn status_error(&self, status: u8, step: &str) -> IpmiError {
        let host = self.host();
        let user = self.config.username();
        let detail = format!(
            "{step} status {status:#04x}: {}",
            rmcp_status_meaning(status)
        );
        match status {
            0x01 | 0x0b => IpmiError::Busy { host, detail },
            0x09 | 0x0a => IpmiError::PrivilegeUnavailable {
                user,
                host,
                privilege: self.config.privilege.as_str(),
                detail,
            },
            0x0c | 0x0d => IpmiError::UsernameInvalid { user, host, detail },
            0x0f => IpmiError::PasswordInvalid { user, host, detail },
            0x04 | 0x05 | 0x06 | 0x07 | 0x10 | 0x11 => IpmiError::CipherSuiteUnavailable {
                host,
                tried: detail,
            },
            _ => IpmiError::Protocol { host, detail },
        }
    }

    fn on_rakp2(&mut self, datagram: &[u8], now: Instant) {
        let State::Rakp1 {
            suite,
            bmc_session_id,
            console_random,
            ..
        } = self.state
        else {
            return;
        };
        let Some(rakp2) = decode_v2(datagram, None)
            .ok()
            .and_then(|p| Rakp2::decode(&p.payload).ok())
        else {
            return;
        };
        // Some BMCs address an RAKP 2 error to console session ID 0; the tag ties it
        // to this session (the driver routes it here by tag). An error can only end
        // the session, never advance it.
        let error_to_zero = rakp2.console_session_id == 0 && rakp2.status != 0;
        if rakp2.tag != self.tag
            || (rakp2.console_session_id != self.console_session_id && !error_to_zero)
        {
            return;
        }
        let Some(body) = rakp2.accepted.filter(|_| rakp2.status == 0) else {
            if self.fresh_login(rakp2.status, suite.id, "RAKP 2", now) {
                return;
            }
            let error = self.status_error(rakp2.status, "RAKP 2");
            return self.fail(error);
        };
        let rakp_name = self.rakp_name();
        let inputs = RakpInputs {
            console_session_id: self.console_session_id,
            bmc_session_id,
            console_random,
            bmc_random: body.bmc_random,
            bmc_guid: body.bmc_guid,
            role: self.role(),
            username: &rakp_name,
        };
        let key = self.user_key(suite.auth);
        // Verify the BMC's proof before sending anything keyed by the password: an
        // impostor must not get an RAKP 3 code over a nonce it chose (ipmi.md §7).
        let want = inputs.rakp2_auth_code(suite.auth, &key[..]);
        let mut given = &body.auth_code[..];
        if given.len() == want.len() + 1 && self.config.workarounds.long_rakp2_code(suite.auth) {
            // The extra byte is outside the digest (FreeIPMI's supermicro20 and
            // sun20 drop it too); the digest is still compared in full.
            given = &given[..want.len()];
        }
        if !crate::crypto::macs_equal(&want, given) {
            let error = IpmiError::PasswordInvalid {
                user: self.config.username(),
                host: self.host(),
                detail: "the BMC's RAKP 2 proof does not match this password (or the answer is not from the BMC)".into(),
            };
            return self.fail(error);
        }
        // An intel20 BMC checks RAKP 3 over the unpadded name with the name-only
        // bit cleared (FreeIPMI's intel20; ipmitool's intelplus does the same).
        let code = if self.config.workarounds.intel20 {
            RakpInputs {
                role: self.role() & !NAME_ONLY_LOOKUP,
                username: &self.config.username,
                ..inputs.clone()
            }
            .rakp3_auth_code(suite.auth, &key[..])
        } else {
            inputs.rakp3_auth_code(suite.auth, &key[..])
        };
        let sik = inputs.sik(
            suite.auth,
            &key[..],
            self.config.kg.as_ref().map(|k| &k[..]),
        );
        self.tag = self.tag.wrapping_add(1);
        let rakp3 = Rakp34 {
            tag: self.tag,
            status: 0,
            session_id: bmc_session_id,
            auth_code: code.to_vec(),
        };
        let packet = match encode_v2(PayloadType::Rakp3, 0, 0, &rakp3.encode(), None, [0; 16]) {
            Ok(p) => p,
            Err(e) => return self.fail(self.protocol(e.to_string())),
        };
        self.retries = 0;
        self.state = State::Rakp3 {
            suite,
            bmc_session_id,
            console_random,
            bmc_random: body.bmc_random,
            bmc_guid: body.bmc_guid,
            sik,
            packet: packet.clone(),
        };
        self.send_setup(packet, now);
    }

    fn on_rakp4(&mut self, datagram: &[u8], now: Instant) {
        let State::Rakp3 {
            suite,
            bmc_session_id,
            console_random,
            bmc_random,
            bmc_guid,
            ref sik,
            ..
        } = self.state
        else {
            return;
        };
        let Some(rakp4) = decode_v2(datagram, None)
            .ok()
            .and_then(|p| Rakp34::decode(&p.payload).ok())
        else {
            return;
        };
        let error_to_zero = rakp4.session_id == 0 && rakp4.status != 0;
        if rakp4.tag != self.tag || (rakp4.session_id != self.console_session_id && !error_to_zero)
        {
            return;
        }
        if rakp4.status != 0 {
            if self.fresh_login(rakp4.status, suite.id, "RAKP 4", now) {
                return;
            }
            let error = self.status_error(rakp4.status, "RAKP 4");
            return self.fail(error);
        }
        let inputs = RakpInputs {
            console_session_id: self.console_session_id,
            bmc_session_id,
            console_random,
            bmc_random,
            bmc_guid,
            role: self.role(),
            username: &self.config.username,
        };
        // An intel20 BMC hashes and cuts the ICV as its integrity algorithm says.
        // FreeIPMI then takes an empty ICV from a suite without integrity (and
        // gives up on MD5-128); nothing would prove the SIK then, so we refuse.
        let icv_auth = if self.config.workarounds.intel20 {
            match suite.integrity.rakp_auth() {
                Some(auth) if auth != AuthAlgorithm::None => auth,
                _ => {
                    return self.fail(self.protocol(format!(
                        "workaround intel20: cipher suite {} gives the BMC no integrity \
                         algorithm to compute its RAKP 4 check value with; use suite 3 or 17",
                        suite.id
                    )))
                }
            }
        } else {
            suite.auth
        };
        let want = inputs.rakp4_icv(icv_auth, sik);
        // integritycheckvalue: a suite-0 BMC that sends an ICV where none belongs.
        // Suite 0 has no key to compute one with (want is empty), so these bytes
        // cannot be checked, only ignored, as FreeIPMI does; any other suite's
        // ICV is compared as ever.
        let ignore_icv =
            suite.auth == AuthAlgorithm::None && self.config.workarounds.integrity_check_value;
        if !ignore_icv && !crate::crypto::macs_equal(&want, &rakp4.auth_code) {
            let host = self.host();
            let error = if self.config.kg.is_some() {
                IpmiError::KgInvalid {
                    host,
                    detail: "RAKP 4 integrity check value does not verify with this K_g".into(),
                }
            } else {
                IpmiError::Protocol {
                    host,
                    detail:
                        "RAKP 4 integrity check value does not verify (does the BMC need a K_g?)"
                            .into(),
                }
            };
            return self.fail(error);
        }
        let keys = SessionKeys::new(
            suite.auth,
            suite.integrity,
            suite.confidentiality,
            sik,
            &self.user_key(suite.auth),
        );
        tracing::debug!(host = %self.config.host, suite = suite.id, "RMCP+ session established");
        self.state = State::Established {
            bmc_session_id,
            link: Link::RmcpPlus(keys),
            outstanding: None,
        };
        self.next_retransmit = None;
        self.events
            .push_back(Event::Established { suite: suite.id });
        self.pump(now);
    }

    /// Sends the next queued command (or Set Session Privilege Level before it, or
    /// Close Session when asked and idle).
    fn pump(&mut self, now: Instant) {
        let State::Established { outstanding, .. } = &self.state else {
            return;
        };
        if outstanding.is_some() {
            return;
        }
        let Some(command) = self.queue.front().copied() else {
            if self.closing {
                self.send_close(now);
            }
            return;
        };
        let needs_raise = match command {
            Command::ChassisControl(_) | Command::RaisePrivilege => {
                self.config.privilege > Privilege::User
            }
            Command::GetChassisStatus => false,
        };
        if needs_raise && !self.privilege_raised {
            let level = self.raise_to.level();
            self.send_request(
                NETFN_APP,
                CMD_SET_SESSION_PRIVILEGE,
                vec![level],
                Purpose::Privilege,
                now,
            );
            return;
        }
        self.queue.pop_front();
        match command {
            Command::GetChassisStatus => self.send_request(
                NETFN_CHASSIS,
                CMD_GET_CHASSIS_STATUS,
                vec![],
                Purpose::Command(command),
                now,
            ),
            Command::ChassisControl(control) => self.send_request(
                NETFN_CHASSIS,
                CMD_CHASSIS_CONTROL,
                vec![control as u8],
                Purpose::Command(command),
                now,
            ),
            Command::RaisePrivilege => {
                // Already raised (or USER asked): nothing to send.
                self.events.push_back(Event::Reply {
                    command,
                    result: Ok(Reply::Accepted),
                });
                self.pump(now);
            }
        }
    }

    fn send_close(&mut self, now: Instant) {
        let State::Established { bmc_session_id, .. } = self.state else {
            return;
        };
        self.send_request(
            NETFN_APP,
            CMD_CLOSE_SESSION,
            bmc_session_id.to_le_bytes().to_vec(),
            Purpose::Close,
            now,
        );
    }

    fn send_request(
        &mut self,
        net_fn: u8,
        command: u8,
        data: Vec<u8>,
        purpose: Purpose,
        now: Instant,
    ) {
        let next = now + self.interval(0);
        let request = self.defer_request(net_fn, command, data, purpose, next);
        self.transmit_request(&request);
    }

    /// Makes a new request the outstanding one without sending it: it leaves at
    /// `at`, as a retransmission would (see `in_session_timeout`), unless the
    /// caller sends it now ([`Session::send_request`]).
    fn defer_request(
        &mut self,
        net_fn: u8,
        command: u8,
        data: Vec<u8>,
        purpose: Purpose,
        at: Instant,
    ) -> Request {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let request = Request {
            net_fn,
            command,
            rq_seq: self.rq_seq,
            data,
        };
        if let State::Established { outstanding, .. } = &mut self.state {
            *outstanding = Some(Outstanding {
                request: request.clone(),
                purpose,
                retries: 0,
                next: at,
            });
        }
        request
    }

    /// Seals a request with a fresh session sequence number, IV and AuthCode.
    fn transmit_request(&mut self, request: &Request) {
        let seq = next_seq(&mut self.out_seq);
        let mut iv = [0u8; 16];
        self.rng.fill_bytes(&mut iv);
        let State::Established {
            bmc_session_id,
            link,
            ..
        } = &self.state
        else {
            return;
        };
        let sealed = match link {
            Link::RmcpPlus(keys) => encode_v2(
                PayloadType::Ipmi,
                *bmc_session_id,
                seq,
                &request.encode(),
                Some(keys),
                iv,
            ),
            Link::V15 { auth, password } => {
                v15::seal(*auth, password, *bmc_session_id, seq, request.encode())
            }
        };
        match sealed {
            Ok(packet) => self.transmit.push_back(packet),
            Err(e) => {
                tracing::error!(host = %self.config.host, error = %e, "cannot encode request")
            }
        }
    }

    fn on_ipmi(&mut self, datagram: &[u8], now: Instant) {
        let State::Established {
            link: Link::RmcpPlus(keys),
            ..
        } = &self.state
        else {
            return;
        };
        let Ok(packet) = decode_v2(datagram, Some(keys)) else {
            return;
        };
        // After RAKP 4 only packets protected as the suite says count (ipmi.md §7).
        let want_auth = keys.integrity != crate::crypto::IntegrityAlgorithm::None;
        let want_enc = keys.confidentiality != crate::crypto::ConfidentialityAlgorithm::None;
        if packet.header.session_id != self.console_session_id
            || packet.header.authenticated != want_auth
            || packet.header.encrypted != want_enc
        {
            return;
        }
        let Ok(response) =
            Response::decode(&packet.payload, !self.config.workarounds.no_checksum_check)
        else {
            return;
        };
        self.on_session_response(response, packet.header.sequence, now);
    }

    /// A reply inside the session, its wrapper verified: matched to the
    /// outstanding request, its sequence number checked against the window.
    fn on_session_response(&mut self, response: Response, sequence: u32, now: Instant) {
        let State::Established { outstanding, .. } = &self.state else {
            return;
        };
        let Some(o) = outstanding else {
            return;
        };
        let matches_late_control = matches!(o.purpose,
            Purpose::LostReplyCheck { control_rq_seq, .. } if control_rq_seq == response.rq_seq
                && response.command == CMD_CHASSIS_CONTROL);
        if !matches_late_control
            && (response.rq_seq != o.request.rq_seq
                || response.command != o.request.command
                || response.net_fn != o.request.net_fn)
        {
            return;
        }
        if !self.window.accept(sequence) {
            return;
        }
        let purpose = o.purpose;
        if let State::Established { outstanding, .. } = &mut self.state {
            *outstanding = None;
        }
        self.on_response(purpose, matches_late_control, response, now);
    }

    fn completion_error(&self, command: Command, code: u8) -> IpmiError {
        let host = self.host();
        match code {
            0xd5 => IpmiError::NotInPresentState {
                host,
                command: command.name(),
            },
            0xc0 => IpmiError::Busy {
                host,
                detail: format!("{}: node busy (0xc0)", command.name()),
            },
            _ => IpmiError::Completion {
                host,
                command: command.name(),
                code,
                meaning: completion_meaning(code),
            },
        }
    }

    fn on_response(
        &mut self,
        purpose: Purpose,
        late_control: bool,
        response: Response,
        now: Instant,
    ) {
        match purpose {
            Purpose::Close => return self.finish(None),
            Purpose::Privilege => {
                if response.completion == 0 {
                    self.privilege_raised = true;
                } else if matches!(response.completion, 0xc0 | 0xc3)
                    && self.privilege_retries < PRIVILEGE_RETRIES
                {
                    // Node busy / timed out (Lenovo XCC): transient, and Set Session
                    // Privilege Level changes nothing but this session, so it is
                    // asked again after a retransmission interval (pyghmi does too).
                    self.privilege_retries += 1;
                    tracing::info!(host = %self.config.host, completion = response.completion,
                        "Set Session Privilege Level: BMC busy; asking again");
                    let at = now + self.interval(self.privilege_retries);
                    let level = self.raise_to.level();
                    self.defer_request(
                        NETFN_APP,
                        CMD_SET_SESSION_PRIVILEGE,
                        vec![level],
                        Purpose::Privilege,
                        at,
                    );
                } else if matches!(response.completion, 0x80 | 0x81)
                    && self.raise_to == Privilege::Administrator
                {
                    // The BMC will not grant ADMINISTRATOR on this channel; power
                    // control needs OPERATOR only (IPMI v2.0 §28.3).
                    tracing::info!(host = %self.config.host, completion = response.completion,
                        "ADMINISTRATOR refused for this session; asking for OPERATOR");
                    self.raise_to = Privilege::Operator;
                    self.send_request(
                        NETFN_APP,
                        CMD_SET_SESSION_PRIVILEGE,
                        vec![Privilege::Operator.level()],
                        Purpose::Privilege,
                        now,
                    );
                } else {
                    // The command that needed the privilege fails with it.
                    let command = self.queue.pop_front().unwrap_or(Command::RaisePrivilege);
                    let error = IpmiError::PrivilegeUnavailable {
                        user: self.config.username(),
                        host: self.host(),
                        privilege: self.config.privilege.as_str(),
                        detail: format!(
                            "Set Session Privilege Level: completion code {:#04x}: {}",
                            response.completion,
                            completion_meaning(response.completion)
                        ),
                    };
                    self.events.push_back(Event::Reply {
                        command,
                        result: Err(error),
                    });
                }
            }
            Purpose::Command(command) => {
                let result = if response.completion != 0 {
                    Err(self.completion_error(command, response.completion))
                } else if command == Command::GetChassisStatus {
                    match power_is_on(&response.data) {
                        Ok(on) => Ok(Reply::Power(if on {
                            PowerState::On
                        } else {
                            PowerState::Off
                        })),
                        Err(e) => Err(self.protocol(e.to_string())),
                    }
                } else {
                    Ok(Reply::Accepted)
                };
                self.events.push_back(Event::Reply { command, result });
            }
            Purpose::LostReplyCheck { control, .. } => {
                let command = Command::ChassisControl(control);
                let result = if late_control {
                    if response.completion == 0 {
                        Ok(Reply::Accepted)
                    } else {
                        Err(self.completion_error(command, response.completion))
                    }
                } else {
                    let state = match (response.completion, power_is_on(&response.data)) {
                        (0, Ok(true)) => PowerState::On,
                        (0, Ok(false)) => PowerState::Off,
                        _ => PowerState::Unknown,
                    };
                    if control == ChassisControl::PowerCycle && state == PowerState::Off {
                        // Off right after a cycle was sent: the cycle is running.
                        Ok(Reply::Accepted)
                    } else {
                        Err(IpmiError::Unconfirmed {
                            host: self.host(),
                            command: control.as_str(),
                            state,
                        })
                    }
                };
                self.events.push_back(Event::Reply { command, result });
            }
        }
        self.pump(now);
    }
}
