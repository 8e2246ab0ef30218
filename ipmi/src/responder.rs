//! A BMC responder on the same codec as the client: the managed-system side of
//! RMCP+ session setup and the chassis commands, with power state, users, the
//! cipher suites it offers, a power cycle that keeps the machine off for a while
//! (as ipmi_sim's), and faults to test against (a BMC that lies about off or about
//! a cycle, refuses power down or up in the state it is already in with 0xD5 as
//! iDRACs do, answers late, drops a share of datagrams by a seeded RNG, proves a
//! wrong key, or stops answering mid-session). Sans-IO like the client: the UDP runner in
//! [`crate::driver`] and the in-memory tests feed it datagrams and time.
//! IPMI 1.5 sessions (Get Session Challenge, Activate Session, MD5 / straight
//! password / none) where its configuration offers them, with the spec's silence
//! towards a message whose AuthCode does not verify (IPMI v2.0 §22.17.1).
//! For the demo, fault tests and benchmarks only: it is no hardened BMC.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use fencekit_core::{Instant, PowerState};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use zeroize::Zeroizing;

use crate::crypto::{kuid, macs_equal, AuthAlgorithm, RakpInputs, SessionKeys};
use crate::message::{
    ChassisControl, Privilege, Request, Response, CMD_CHASSIS_CONTROL, CMD_CLOSE_SESSION,
    CMD_GET_CHANNEL_AUTH_CAPS, CMD_GET_CHASSIS_STATUS, CMD_SET_SESSION_PRIVILEGE, NETFN_APP,
    NETFN_CHASSIS,
};
use crate::packet::{decode_v2, encode_v2, peek, Framing, PayloadType, V15Packet};
use crate::session::window::{next_seq, SeqWindow};
use crate::setup::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp2Body, Rakp34};
use crate::suite::CipherSuite;
use crate::v15::{self, AuthType};

/// A user the BMC knows.
#[derive(Clone)]
pub struct BmcUser {
    pub name: String,
    pub password: Zeroizing<Vec<u8>>,
    pub max_privilege: Privilege,
}

impl BmcUser {
    pub fn new(name: &str, password: &str, max_privilege: Privilege) -> BmcUser {
        BmcUser {
            name: name.into(),
            password: Zeroizing::new(password.as_bytes().to_vec()),
            max_privilege,
        }
    }
}

/// Misbehaviour to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Acknowledge power down but stay on.
    pub lie_about_off: bool,
    /// Acknowledge a power cycle but stay on (never read off).
    pub lie_about_cycle: bool,
    /// Answer power down of a machine that is off, and power up of one that is on,
    /// with completion code 0xD5 "not supported in present state", as Dell iDRACs do.
    pub refuse_when_already_there: bool,
    /// Answer every power down with 0xD5, whatever the state (a BMC that will not
    /// switch from the state it is in).
    pub refuse_power_down: bool,
    /// Carry out the first Chassis Control but lose its reply (the console then
    /// sends an idempotent one again).
    pub lose_first_control_reply: bool,
    /// Hold every reply this long.
    pub reply_delay: Duration,
    /// Share (0.0-1.0) of received datagrams silently dropped.
    pub drop_share: f64,
    /// Prove a password other than the user's in RAKP 2 (an impostor).
    pub wrong_key: bool,
    /// Stop answering after this many in-session requests.
    pub silent_after_requests: Option<u32>,
    /// Answer a refused Open Session with only the tag and the status, without the
    /// console session ID, as ipmi_sim 2.0.33 does (e.g. `01 04` for suite 17).
    pub truncated_error_responses: bool,
    /// Address an RAKP 2 or RAKP 4 error to console session ID 0 instead of the
    /// console's, as some BMCs do (FreeIPMI's ipmipower and pyghmi's session.py
    /// both accept such an error for the session awaiting it).
    pub rakp_errors_to_session_zero: bool,
    /// Leave an Open Session for a suite it lacks unanswered instead of refusing
    /// it, as some BMCs do (issue reports against ipmitool's suite 17 default).
    pub drop_unsupported_suites: bool,
    /// Answer this many Set Session Privilege Level requests with 0xC0 (node busy)
    /// first, as Lenovo XCC does while busy (pyghmi retries these).
    pub privilege_busy: u32,
    /// The channel's privilege limit: Set Session Privilege Level above it is
    /// refused with 0x81, though the user's own limit is higher.
    pub channel_limit: Option<Privilege>,
    /// Lose the first Close Session request (the network's doing): the session
    /// stays open unless the console sends it again.
    pub lose_first_close: bool,
    /// Lose the first RAKP 2 answer (the network's doing).
    pub lose_first_rakp2: bool,
    /// Refuse a repeated RAKP 1 for a session (status 0x02, session dropped), as
    /// BMCs that "do not take kindly to receiving RAKP1 or RAKP3 twice" do
    /// (pyghmi's ipmi/private/session.py).
    pub refuse_repeated_rakp1: bool,
    /// Answer this many RAKP 1 messages with RAKP 2 status `transient_status`
    /// and forget the session, as a BMC does whose half-open session was
    /// invalidated by a retry in flight (pyghmi's ipmi/private/session.py: status
    /// 0x02 "99% of the time means a retry scenario invalidated an in-flight
    /// transaction").
    pub transient_rakp2: u32,
    /// The same for RAKP 3, answered by RAKP 4 with `transient_status` (pyghmi
    /// logs in again on RAKP 4 status 0x02).
    pub transient_rakp4: u32,
    /// The status of those answers (0x02 unless set).
    pub transient_status: u8,
    /// IPMI 1.5: lose the first Get Session Challenge answer (the network's doing).
    pub lose_first_challenge_reply: bool,
    /// IPMI 1.5: activate the first session but lose the Activate Session answer
    /// (the network's doing); a repeated Activate Session gets the same answer.
    pub lose_first_activate_reply: bool,
    /// IPMI 1.5: send in-session replies with an AuthCode that does not verify
    /// (an impostor, or a corrupted reply).
    pub bad_v15_auth_code: bool,
}

/// Firmware quirks of real BMCs, each as FreeIPMI documents it
/// (`chu11/freeipmi-mirror` libfreeipmi/api/ipmi-lan-session-common.c and
/// ipmipower/ipmipower_check.c, the comments naming the boards; man page text in
/// man/manpage-common-workaround-outofband-20-text.man), so that a console's
/// `workarounds` can be shown to be needed and to keep checking the BMC's proof.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Keys and auth codes hashed with the privilege of Open Session instead of
    /// the one in RAKP 1's role byte (the name-only bit still from RAKP 1): Sun
    /// ILOM, Supermicro X8, Intel S5500WBV/S2600JF, Quanta, Dell C5220, and
    /// OpenIPMI's ipmi_sim. FreeIPMI's `opensesspriv`.
    pub open_session_privilege: bool,
    /// Intel SE7520AF2 with the Intel Server Management Module (FreeIPMI's
    /// `intel20`): the name in RAKP 1 must be zero-padded to 16 bytes (ULen 16)
    /// and RAKP 2 and the SIK are hashed over that padded name; RAKP 3 is checked
    /// over the name unpadded, with the name-only bit cleared; the RAKP 4
    /// integrity check value follows the *integrity* algorithm; with HMAC-MD5
    /// the password is cut to 16 bytes; a privilege of 0 in Open Session is
    /// answered with 0, not a real level. An unpadded name is refused as
    /// unauthorized (status 0x0D).
    pub intel20: bool,
    /// Supermicro H8QME with a Peppercon SIMSO card (FreeIPMI's `supermicro20`):
    /// RAKP 2's payload is one byte longer than it should be, so the auth code
    /// read from it is one byte too long (the digest, then one extra byte).
    pub supermicro20: bool,
    /// Sun Fire 4100/4200/4500 ILOM (FreeIPMI's `sun20`): an HMAC-SHA1 RAKP 2
    /// auth code one byte too long, and keys hashed with the Open Session
    /// privilege (as `open_session_privilege`).
    pub sun20: bool,
    /// Supermicro X8DTG/X8DTU, Intel S5500WBV, Intel S2600JF (FreeIPMI's
    /// `integritycheckvalue`): under cipher suite 0 RAKP 4 carries a non-empty
    /// integrity check value where it must be empty.
    pub suite0_icv: bool,
}

/// How a responder BMC is set up.
#[derive(Clone)]
pub struct BmcConfig {
    pub users: Vec<BmcUser>,
    /// Suite ids it accepts in Open Session.
    pub suites: Vec<u8>,
    pub guid: [u8; 16],
    pub power: PowerState,
    pub kg: Option<Zeroizing<Vec<u8>>>,
    pub faults: Faults,
    /// Firmware quirks of real BMCs (none by default).
    pub quirks: Quirks,
    pub seed: u64,
    /// How long a power cycle keeps the machine off (ipmi_sim's is about 1 s).
    pub cycle_off: Duration,
    /// IPMI 1.5 authentication types it activates sessions with (empty: RMCP+
    /// only, the default).
    pub v15_auths: Vec<AuthType>,
    /// IPMI 1.5 per-message authentication disabled (Get Channel Authentication
    /// Capabilities byte 3 bit 4): only Activate Session carries an AuthCode.
    pub v15_per_message_disabled: bool,
}

impl BmcConfig {
    /// One `admin` user with `password`, suites 3 and 17, powered on.
    pub fn new(password: &str) -> BmcConfig {
        BmcConfig {
            users: vec![BmcUser::new("admin", password, Privilege::Administrator)],
            suites: vec![3, 17],
            guid: *b"fencekit-bmc-001",
            power: PowerState::On,
            kg: None,
            faults: Faults::default(),
            quirks: Quirks::default(),
            seed: 1,
            cycle_off: Duration::from_secs(1),
            v15_auths: Vec::new(),
            v15_per_message_disabled: false,
        }
    }
}

/// The key for RAKP auth codes and the SIK: the password zero-padded to 20
/// bytes; cut to 16 by an intel20 BMC under HMAC-MD5 (FreeIPMI).
fn user_key(
    quirks: Quirks,
    password: &[u8],
    auth: AuthAlgorithm,
) -> Result<Zeroizing<[u8; 20]>, crate::error::CodecError> {
    let mut key = kuid(password)?;
    if quirks.intel20 && auth == AuthAlgorithm::HmacMd5 {
        key[16..].fill(0);
    }
    Ok(key)
}

/// Get Device ID (App, IPMI v2.0 §20.1).
const CMD_GET_DEVICE_ID: u8 = 0x01;

enum Stage {
    Opened,
    Rakp2Sent {
        user: usize,
        /// RAKP 1's role byte, which says the privilege asked for.
        role: u8,
        /// The role byte the keys are hashed with (see [`Quirks`]).
        hash_role: u8,
        /// The name as RAKP 1 carried it (padded, for an `intel20` BMC).
        name: Vec<u8>,
        console_random: [u8; 16],
        bmc_random: [u8; 16],
    },
    Active {
        keys: SessionKeys,
        privilege: Privilege,
        max_privilege: Privilege,
        window: SeqWindow,
        out_seq: u32,
    },
}

/// An IPMI 1.5 session being activated: what Get Session Challenge handed out
/// under a temporary session ID.
struct V15Challenge {
    user: usize,
    auth: AuthType,
    challenge: [u8; 16],
    /// The Activate Session answer given, repeated for a retransmitted request so
    /// that a lost answer does not open a second session.
    answer: Option<Vec<u8>>,
}

/// An active IPMI 1.5 session.
struct V15Session {
    auth: AuthType,
    password: Zeroizing<[u8; 16]>,
    privilege: Privilege,
    max_privilege: Privilege,
    window: SeqWindow,
    out_seq: u32,
}

struct BmcSession {
    console_session_id: u32,
    /// The privilege asked for in Open Session (0: highest matching).
    open_session_privilege: u8,
    /// Answers already given, repeated for a retransmitted RAKP 1 / RAKP 3 so that
    /// a duplicate does not change Rc under the console's feet.
    rakp2: Option<Vec<u8>>,
    rakp4: Option<Vec<u8>>,
    suite: CipherSuite,
    stage: Stage,
}

/// One simulated BMC.
pub struct Bmc {
    config: BmcConfig,
    power: PowerState,
    /// A power cycle in progress: off until then, on after.
    cycle_until: Option<Instant>,
    sessions: HashMap<u32, BmcSession>,
    rng: StdRng,
    outgoing: VecDeque<(Instant, Vec<u8>)>,
    requests: u32,
    controls: Vec<ChassisControl>,
    /// Sessions opened so far (Open Session requests accepted, IPMI 1.5
    /// sessions activated).
    opened: usize,
    v15_challenges: HashMap<u32, V15Challenge>,
    v15_sessions: HashMap<u32, V15Session>,
    /// Datagrams received (dropped ones included) and sent, as the BMC's side of
    /// the wire counts them.
    received: u64,
    sent: u64,
}

impl Bmc {
    pub fn new(config: BmcConfig) -> Bmc {
        Bmc {
            power: config.power,
            cycle_until: None,
            rng: StdRng::seed_from_u64(config.seed),
            config,
            sessions: HashMap::new(),
            outgoing: VecDeque::new(),
            requests: 0,
            controls: Vec::new(),
            opened: 0,
            v15_challenges: HashMap::new(),
            v15_sessions: HashMap::new(),
            received: 0,
            sent: 0,
        }
    }

    /// The chassis power state now (the oracle tests judge by).
    pub fn power(&self) -> PowerState {
        self.power_at(Instant::now())
    }

    /// The chassis power state at `now`: a cycle in progress reads off until it ends.
    fn power_at(&self, now: Instant) -> PowerState {
        match self.cycle_until {
            Some(until) if now < until => PowerState::Off,
            Some(_) => PowerState::On,
            None => self.power,
        }
    }

    /// Ends a cycle whose off phase is over.
    fn settle(&mut self, now: Instant) {
        if self.cycle_until.is_some_and(|until| now >= until) {
            self.cycle_until = None;
            self.power = PowerState::On;
        }
    }

    pub fn set_power(&mut self, power: PowerState) {
        self.cycle_until = None;
        self.power = power;
    }

    /// Every Chassis Control executed, in order (retransmissions included).
    pub fn controls(&self) -> &[ChassisControl] {
        &self.controls
    }

    /// Sessions open or being opened (IPMI 1.5 ones once activated).
    pub fn session_count(&self) -> usize {
        self.sessions.len() + self.v15_sessions.len()
    }

    /// Sessions opened since the BMC started.
    pub fn sessions_opened(&self) -> usize {
        self.opened
    }

    /// Forgets every session, as a BMC that restarts does: their requests go
    /// unanswered from now on.
    pub fn forget_sessions(&mut self) {
        self.sessions.clear();
        self.v15_challenges.clear();
        self.v15_sessions.clear();
    }

    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.config.faults
    }

    /// A reply that is due by `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.outgoing.front().is_some_and(|(at, _)| *at <= now) {
            self.sent += 1;
            return self.outgoing.pop_front().map(|(_, p)| p);
        }
        None
    }

    /// Datagrams received and sent so far (the benchmark's count of a fence).
    pub fn datagrams(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// Replies queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.outgoing.len()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outgoing.front().map(|(at, _)| *at)
    }

    fn reply(&mut self, now: Instant, packet: Vec<u8>) {
        self.outgoing
            .push_back((now + self.config.faults.reply_delay, packet));
    }

    fn setup_reply(&mut self, now: Instant, kind: PayloadType, payload: Vec<u8>) {
        if let Ok(packet) = encode_v2(kind, 0, 0, &payload, None, [0; 16]) {
            self.reply(now, packet);
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        self.received += 1;
        if self.config.faults.drop_share > 0.0
            && self.rng.random_bool(self.config.faults.drop_share.min(1.0))
        {
            return;
        }
        let header = match peek(datagram) {
            Ok(Framing::V2(header)) => header,
            Ok(Framing::V15) => return self.on_v15(now, datagram),
            _ => return,
        };
        let Ok(packet) = (match header.payload_type {
            PayloadType::Ipmi => match self.sessions.get(&header.session_id) {
                Some(BmcSession {
                    stage: Stage::Active { keys, .. },
                    ..
                }) => decode_v2(datagram, Some(keys)),
                _ => return,
            },
            _ => decode_v2(datagram, None),
        }) else {
            return;
        };
        match header.payload_type {
            PayloadType::OpenSessionRequest => self.on_open_session(now, &packet.payload),
            PayloadType::Rakp1 => self.on_rakp1(now, &packet.payload),
            PayloadType::Rakp3 => self.on_rakp3(now, &packet.payload),
            PayloadType::Ipmi => {
                self.on_ipmi(now, header.session_id, header.sequence, &packet.payload)
            }
            _ => {}
        }
    }

    /// An IPMI 1.5 datagram: sessionless (session ID 0), an Activate Session
    /// under a temporary session ID, or a request in an IPMI 1.5 session.
    fn on_v15(&mut self, now: Instant, datagram: &[u8]) {
        let Ok(packet) = V15Packet::decode(datagram) else {
            return;
        };
        if packet.session_id == 0 {
            self.on_sessionless(now, packet)
        } else if self.v15_challenges.contains_key(&packet.session_id) {
            self.on_activate(now, packet)
        } else {
            self.on_v15_request(now, packet)
        }
    }

    /// The auth-type support byte of Get Channel Authentication Capabilities
    /// (§22.13): the IPMI 1.5 types offered, and bit 7, "IPMI v2.0 extended data".
    fn auth_support(&self) -> u8 {
        if self.config.v15_auths.is_empty() {
            // Auth type "none" only: no 1.5 session is activated.
            return 0x81;
        }
        self.config
            .v15_auths
            .iter()
            .fold(0x80, |bits, auth| bits | auth.support_bit())
    }

    /// IPMI 1.5 sessionless requests: Get Channel Authentication Capabilities
    /// (IPMI v2.0 §22.13), which ipmitool and pyghmi send before Open Session to
    /// learn that the BMC speaks RMCP+, and Get Session Challenge (§22.16).
    fn on_sessionless(&mut self, now: Instant, packet: V15Packet) {
        let Ok(request) = Request::decode(&packet.message) else {
            return;
        };
        let (completion, data) = match (request.net_fn, request.command) {
            (NETFN_APP, CMD_GET_CHANNEL_AUTH_CAPS) => (
                0,
                vec![
                    // Channel 1.
                    0x01,
                    self.auth_support(),
                    // K_g status, non-null user names enabled; per-message
                    // authentication on unless disabled (bit 4).
                    (if self.config.kg.is_some() { 0x24 } else { 0x04 })
                        | if self.config.v15_per_message_disabled {
                            0x10
                        } else {
                            0
                        },
                    // IPMI v2.0 (RMCP+) supported; bit 0: and 1.5.
                    0x02 | u8::from(!self.config.v15_auths.is_empty()),
                    0,
                    0,
                    0,
                    0,
                ],
            ),
            (NETFN_APP, v15::CMD_GET_SESSION_CHALLENGE) => self.challenge(&request.data),
            _ => (0xc1, vec![]),
        };
        if request.command == v15::CMD_GET_SESSION_CHALLENGE
            && std::mem::take(&mut self.config.faults.lose_first_challenge_reply)
        {
            return;
        }
        let response = Response {
            net_fn: request.net_fn,
            command: request.command,
            rq_seq: request.rq_seq,
            completion,
            data,
        };
        if let Ok(bytes) = V15Packet::sessionless(response.encode()).encode() {
            self.reply(now, bytes);
        }
    }

    /// Get Session Challenge: a temporary session ID and a random challenge for a
    /// known user and an offered auth type (0x81: no such user, §22.16).
    fn challenge(&mut self, data: &[u8]) -> (u8, Vec<u8>) {
        if data.len() < 17 {
            return (0xc7, vec![]);
        }
        let name: Vec<u8> = data[1..17]
            .iter()
            .copied()
            .take_while(|b| *b != 0)
            .collect();
        let Some(user) = self
            .config
            .users
            .iter()
            .position(|u| u.name.as_bytes() == name.as_slice())
        else {
            return (0x81, vec![]);
        };
        let Some(auth) = AuthType::from_byte(data[0]).filter(|a| self.config.v15_auths.contains(a))
        else {
            return (0xcc, vec![]);
        };
        let mut temp_session_id = 0;
        while temp_session_id == 0
            || self.v15_challenges.contains_key(&temp_session_id)
            || self.v15_sessions.contains_key(&temp_session_id)
        {
            temp_session_id = self.rng.next_u32();
        }
        let mut challenge = [0u8; 16];
        self.rng.fill_bytes(&mut challenge);
        self.v15_challenges.insert(
            temp_session_id,
            V15Challenge {
                user,
                auth,
                challenge,
                answer: None,
            },
        );
        (
            0,
            v15::Challenge {
                temp_session_id,
                challenge,
            }
            .encode(),
        )
    }

    /// Activate Session under a temporary session ID (§22.17). A request whose
    /// AuthCode does not verify gets no answer at all, as the spec and ipmi_sim
    /// have it: a wrong password shows as silence.
    fn on_activate(&mut self, now: Instant, packet: V15Packet) {
        let Some(pending) = self.v15_challenges.get(&packet.session_id) else {
            return;
        };
        let Ok(password) = v15::password16(&self.config.users[pending.user].password) else {
            return;
        };
        if !v15::verify(&packet, pending.auth, &password) {
            return;
        }
        if let Some(answer) = pending.answer.clone() {
            return self.reply(now, answer);
        }
        let Ok(request) = Request::decode(&packet.message) else {
            return;
        };
        let Ok(activate) = v15::ActivateRequest::decode(&request.data) else {
            return;
        };
        if request.net_fn != NETFN_APP
            || request.command != v15::CMD_ACTIVATE_SESSION
            || activate.challenge != pending.challenge
            || activate.auth != pending.auth as u8
        {
            return;
        }
        let (auth, user) = (pending.auth, pending.user);
        let max_privilege = self.config.users[user].max_privilege;
        let (completion, data) = match Privilege::from_level(activate.privilege) {
            _ if activate.initial_outbound == 0 => (0x84, vec![]),
            Some(wanted) if wanted <= max_privilege => {
                let mut session_id = 0;
                while session_id == 0
                    || self.v15_sessions.contains_key(&session_id)
                    || self.v15_challenges.contains_key(&session_id)
                {
                    session_id = self.rng.next_u32();
                }
                let mut initial_inbound = 0;
                while initial_inbound == 0 {
                    initial_inbound = self.rng.next_u32();
                }
                self.opened += 1;
                self.v15_sessions.insert(
                    session_id,
                    V15Session {
                        auth,
                        password: password.clone(),
                        // Sessions start at USER (§22.17, as RMCP+ ones).
                        privilege: Privilege::User,
                        max_privilege: wanted,
                        window: SeqWindow::v15_expecting(initial_inbound),
                        // Replies continue after the number the answer carries.
                        out_seq: activate.initial_outbound,
                    },
                );
                (
                    0,
                    v15::Activated {
                        auth: auth as u8,
                        session_id,
                        initial_inbound,
                        max_privilege: wanted.level(),
                    }
                    .encode(),
                )
            }
            _ => (0x86, vec![]),
        };
        let response = Response {
            net_fn: request.net_fn,
            command: request.command,
            rq_seq: request.rq_seq,
            completion,
            data,
        };
        // Answered under the temporary session ID, numbered with the console's
        // initial outbound number, with the requested auth type's AuthCode.
        let Ok(answer) = v15::seal(
            auth,
            &password,
            packet.session_id,
            activate.initial_outbound,
            response.encode(),
        ) else {
            return;
        };
        if let Some(pending) = self.v15_challenges.get_mut(&packet.session_id) {
            pending.answer = Some(answer.clone());
        }
        if std::mem::take(&mut self.config.faults.lose_first_activate_reply) {
            return;
        }
        self.reply(now, answer);
    }

    /// A request in an IPMI 1.5 session: AuthCode and sequence window checked
    /// (silence otherwise), then run as in an RMCP+ session.
    fn on_v15_request(&mut self, now: Instant, packet: V15Packet) {
        self.settle(now);
        if let Some(limit) = self.config.faults.silent_after_requests {
            if self.requests >= limit {
                return;
            }
        }
        let Some(session) = self.v15_sessions.get_mut(&packet.session_id) else {
            return;
        };
        if !v15::verify(&packet, session.auth, &session.password)
            || !session.window.accept(packet.sequence)
        {
            return;
        }
        let Ok(request) = Request::decode(&packet.message) else {
            return;
        };
        if request.net_fn == NETFN_APP
            && request.command == CMD_CLOSE_SESSION
            && std::mem::take(&mut self.config.faults.lose_first_close)
        {
            return;
        }
        let (privilege, max_privilege) = (session.privilege, session.max_privilege);
        self.requests += 1;
        let (completion, data, privilege) = self.execute(now, &request, privilege, max_privilege);
        let response = Response {
            net_fn: request.net_fn,
            command: request.command,
            rq_seq: request.rq_seq,
            completion,
            data,
        };
        let bad_code = self.config.faults.bad_v15_auth_code;
        let Some(session) = self.v15_sessions.get_mut(&packet.session_id) else {
            return;
        };
        session.privilege = privilege;
        let seq = next_seq(&mut session.out_seq);
        let mut password = session.password.clone();
        if bad_code {
            password[0] ^= 0x55;
        }
        let sealed = v15::seal(
            session.auth,
            &password,
            packet.session_id,
            seq,
            response.encode(),
        );
        if request.net_fn == NETFN_APP && request.command == CMD_CLOSE_SESSION {
            self.v15_sessions.remove(&packet.session_id);
        }
        if request.net_fn == NETFN_CHASSIS
            && request.command == CMD_CHASSIS_CONTROL
            && std::mem::take(&mut self.config.faults.lose_first_control_reply)
        {
            return;
        }
        if let Ok(bytes) = sealed {
            self.reply(now, bytes);
        }
    }

    fn on_open_session(&mut self, now: Instant, payload: &[u8]) {
        let Ok(req) = OpenSessionRequest::decode(payload) else {
            return;
        };
        let suite = CipherSuite::from_algorithms(req.algorithms)
            .filter(|s| self.config.suites.contains(&s.id));
        if suite.is_none() && self.config.faults.drop_unsupported_suites {
            return;
        }
        let mut resp = OpenSessionResponse {
            tag: req.tag,
            status: self.refusal_status(req.algorithms),
            privilege: 0,
            console_session_id: (!self.config.faults.truncated_error_responses)
                .then_some(req.console_session_id),
            accepted: None,
        };
        if let Some(suite) = suite {
            let mut bmc_session_id = 0;
            while bmc_session_id == 0 || self.sessions.contains_key(&bmc_session_id) {
                bmc_session_id = self.rng.next_u32();
            }
            self.opened += 1;
            self.sessions.insert(
                bmc_session_id,
                BmcSession {
                    console_session_id: req.console_session_id,
                    open_session_privilege: req.privilege & 0x0f,
                    rakp2: None,
                    rakp4: None,
                    suite,
                    stage: Stage::Opened,
                },
            );
            resp.status = 0;
            resp.console_session_id = Some(req.console_session_id);
            // An intel20 BMC answers "highest matching" with 0 rather than a
            // level (FreeIPMI's ipmi-lan-session-common.c).
            resp.privilege = match req.privilege {
                0 if self.config.quirks.intel20 => 0,
                0 => 4,
                level => level,
            };
            resp.accepted = Some((bmc_session_id, req.algorithms));
        }
        self.setup_reply(now, PayloadType::OpenSessionResponse, resp.encode());
    }

    /// Why a proposal is refused (RMCP+ status, IPMI v2.0 table 13-15): the first
    /// of its algorithms that no accepted suite has, else "no matching suite".
    fn refusal_status(&self, proposal: crate::setup::Algorithms) -> u8 {
        let accepted: Vec<crate::setup::Algorithms> = self
            .config
            .suites
            .iter()
            .filter_map(|id| CipherSuite::by_id(*id))
            .map(|s| s.algorithms())
            .collect();
        if !accepted.iter().any(|a| a.auth == proposal.auth) {
            0x04
        } else if !accepted.iter().any(|a| a.integrity == proposal.integrity) {
            0x05
        } else if !accepted
            .iter()
            .any(|a| a.confidentiality == proposal.confidentiality)
        {
            0x10
        } else {
            0x11
        }
    }

    fn on_rakp1(&mut self, now: Instant, payload: &[u8]) {
        let Ok(rakp1) = Rakp1::decode(payload) else {
            return;
        };
        let Some(session) = self.sessions.get(&rakp1.bmc_session_id) else {
            return;
        };
        if let Some(previous) = session.rakp2.clone() {
            if self.config.faults.refuse_repeated_rakp1 {
                let refusal = Rakp2 {
                    tag: rakp1.tag,
                    status: 0x02,
                    console_session_id: session.console_session_id,
                    accepted: None,
                };
                self.sessions.remove(&rakp1.bmc_session_id);
                return self.setup_reply(now, PayloadType::Rakp2, refusal.encode());
            }
            return self.setup_reply(now, PayloadType::Rakp2, previous);
        }
        let console_session_id = session.console_session_id;
        if self.config.faults.transient_rakp2 > 0 {
            self.config.faults.transient_rakp2 -= 1;
            let refusal = Rakp2 {
                tag: rakp1.tag,
                status: self.transient_status(),
                console_session_id,
                accepted: None,
            };
            self.sessions.remove(&rakp1.bmc_session_id);
            return self.setup_reply(now, PayloadType::Rakp2, refusal.encode());
        }
        let auth = session.suite.auth;
        let quirks = self.config.quirks;
        // The role byte the keys are hashed with: a BMC with the Open Session
        // privilege quirk puts that privilege in place of RAKP 1's.
        let hash_role = if quirks.open_session_privilege || quirks.sun20 {
            (rakp1.role & 0xf0) | session.open_session_privilege
        } else {
            rakp1.role
        };
        // An intel20 BMC reads the name from a zero-padded 16-byte field and
        // knows no other form.
        let lookup_name: Option<&[u8]> = if quirks.intel20 {
            (rakp1.username.len() == 16).then(|| {
                let end = rakp1.username.iter().position(|b| *b == 0).unwrap_or(16);
                &rakp1.username[..end]
            })
        } else {
            Some(&rakp1.username)
        };
        let mut rakp2 = Rakp2 {
            tag: rakp1.tag,
            status: 0x0d,
            console_session_id,
            accepted: None,
        };
        let user = self
            .config
            .users
            .iter()
            .position(|u| lookup_name == Some(u.name.as_bytes()));
        let requested = Privilege::from_level(rakp1.role);
        // Name-only lookup (bit 4 set): the user by name, any level up to its own.
        // Username/privilege lookup: the user whose level is the one asked for
        // (IPMI v2.0 §13.20).
        let name_only = rakp1.role & 0x10 != 0;
        match (user, requested) {
            (Some(index), Some(requested))
                if (name_only && requested <= self.config.users[index].max_privilege)
                    || (!name_only && requested == self.config.users[index].max_privilege) =>
            {
                let mut bmc_random = [0u8; 16];
                self.rng.fill_bytes(&mut bmc_random);
                let wrong = Zeroizing::new(b"not-the-password".to_vec());
                let password = if self.config.faults.wrong_key {
                    &wrong
                } else {
                    &self.config.users[index].password
                };
                let Ok(key) = user_key(quirks, password, auth) else {
                    return;
                };
                let inputs = RakpInputs {
                    console_session_id,
                    bmc_session_id: rakp1.bmc_session_id,
                    console_random: rakp1.console_random,
                    bmc_random,
                    bmc_guid: self.config.guid,
                    role: hash_role,
                    username: &rakp1.username,
                };
                let mut auth_code = inputs.rakp2_auth_code(auth, &key[..]).to_vec();
                // One byte too many after the digest (FreeIPMI's supermicro20 and,
                // for HMAC-SHA1 only, sun20).
                if quirks.supermicro20 || (quirks.sun20 && auth == AuthAlgorithm::HmacSha1) {
                    auth_code.push(self.rng.random());
                }
                rakp2.status = 0;
                rakp2.accepted = Some(Rakp2Body {
                    bmc_random,
                    bmc_guid: self.config.guid,
                    auth_code,
                });
                if let Some(session) = self.sessions.get_mut(&rakp1.bmc_session_id) {
                    session.rakp2 = Some(rakp2.encode());
                    session.stage = Stage::Rakp2Sent {
                        user: index,
                        role: rakp1.role,
                        hash_role,
                        name: rakp1.username.clone(),
                        console_random: rakp1.console_random,
                        bmc_random,
                    };
                }
            }
            (Some(_), _) => rakp2.status = 0x09,
            _ => {}
        }
        if rakp2.status != 0 && self.config.faults.rakp_errors_to_session_zero {
            rakp2.console_session_id = 0;
        }
        if std::mem::take(&mut self.config.faults.lose_first_rakp2) {
            return;
        }
        self.setup_reply(now, PayloadType::Rakp2, rakp2.encode());
    }

    fn transient_status(&self) -> u8 {
        match self.config.faults.transient_status {
            0 => 0x02,
            status => status,
        }
    }

    fn on_rakp3(&mut self, now: Instant, payload: &[u8]) {
        let Ok(rakp3) = Rakp34::decode(payload) else {
            return;
        };
        let guid = self.config.guid;
        let Some(session) = self.sessions.get_mut(&rakp3.session_id) else {
            return;
        };
        if let Some(previous) = session.rakp4.clone() {
            // A retransmitted RAKP 3: answer it the same way.
            return self.setup_reply(now, PayloadType::Rakp4, previous);
        }
        if self.config.faults.transient_rakp4 > 0 {
            self.config.faults.transient_rakp4 -= 1;
            let refusal = Rakp34 {
                tag: rakp3.tag,
                status: if self.config.faults.transient_status == 0 {
                    0x02
                } else {
                    self.config.faults.transient_status
                },
                session_id: session.console_session_id,
                auth_code: vec![],
            };
            self.sessions.remove(&rakp3.session_id);
            return self.setup_reply(now, PayloadType::Rakp4, refusal.encode());
        }
        let Stage::Rakp2Sent {
            user,
            role,
            hash_role,
            ref name,
            console_random,
            bmc_random,
        } = session.stage
        else {
            return;
        };
        let name = name.clone();
        let suite = session.suite;
        let console_session_id = session.console_session_id;
        let quirks = self.config.quirks;
        let account = &self.config.users[user];
        let Ok(key) = user_key(quirks, &account.password, suite.auth) else {
            return;
        };
        let inputs = RakpInputs {
            console_session_id,
            bmc_session_id: rakp3.session_id,
            console_random,
            bmc_random,
            bmc_guid: guid,
            role: hash_role,
            username: &name,
        };
        // An intel20 BMC checks RAKP 3 over the unpadded name with the name-only
        // bit cleared (FreeIPMI; ipmitool's intelplus does the same).
        let unpadded = account.name.as_bytes().to_vec();
        let rakp3_inputs = if quirks.intel20 {
            RakpInputs {
                role: hash_role & !0x10,
                username: &unpadded,
                ..inputs.clone()
            }
        } else {
            inputs.clone()
        };
        let want = rakp3_inputs.rakp3_auth_code(suite.auth, &key[..]);
        let mut rakp4 = Rakp34 {
            tag: rakp3.tag,
            status: 0x0f,
            session_id: console_session_id,
            auth_code: vec![],
        };
        if rakp3.status == 0 && macs_equal(&want, &rakp3.auth_code) {
            let kg = self.config.kg.as_ref().map(|k| {
                let mut padded = vec![0u8; 20];
                padded[..k.len().min(20)].copy_from_slice(&k[..k.len().min(20)]);
                padded
            });
            let sik = inputs.sik(suite.auth, &key[..], kg.as_deref());
            rakp4.status = 0;
            // An intel20 BMC truncates (and hashes) the RAKP 4 ICV as its
            // integrity algorithm says, not its authentication algorithm.
            let icv_auth = if quirks.intel20 {
                suite.integrity.rakp_auth().unwrap_or(suite.auth)
            } else {
                suite.auth
            };
            rakp4.auth_code = inputs.rakp4_icv(icv_auth, &sik).to_vec();
            if quirks.suite0_icv && suite.auth == AuthAlgorithm::None {
                // A suite-0 ICV where none belongs; there is no key it could be
                // computed with, so any bytes.
                let mut junk = [0u8; 12];
                self.rng.fill_bytes(&mut junk);
                rakp4.auth_code = junk.to_vec();
            }
            let max_privilege = Privilege::from_level(role)
                .unwrap_or(Privilege::User)
                .min(account.max_privilege);
            session.rakp4 = Some(rakp4.encode());
            session.stage = Stage::Active {
                keys: SessionKeys::new(
                    suite.auth,
                    suite.integrity,
                    suite.confidentiality,
                    &sik,
                    &key,
                ),
                // Sessions start at USER (IPMI v2.0 §13.14; ipmi_sim does so too).
                privilege: Privilege::User,
                max_privilege,
                window: SeqWindow::default(),
                out_seq: 0,
            };
        } else {
            self.sessions.remove(&rakp3.session_id);
        }
        self.setup_reply(now, PayloadType::Rakp4, rakp4.encode());
    }

    fn on_ipmi(&mut self, now: Instant, bmc_session_id: u32, sequence: u32, payload: &[u8]) {
        self.settle(now);
        if let Some(limit) = self.config.faults.silent_after_requests {
            if self.requests >= limit {
                return;
            }
        }
        let Ok(request) = Request::decode(payload) else {
            return;
        };
        if request.net_fn == NETFN_APP
            && request.command == CMD_CLOSE_SESSION
            && std::mem::take(&mut self.config.faults.lose_first_close)
        {
            return;
        }
        let Some(session) = self.sessions.get_mut(&bmc_session_id) else {
            return;
        };
        let console_session_id = session.console_session_id;
        let Stage::Active {
            privilege,
            max_privilege,
            window,
            ..
        } = &mut session.stage
        else {
            return;
        };
        if !window.accept(sequence) {
            return;
        }
        self.requests += 1;
        let (current, max) = (*privilege, *max_privilege);
        let (completion, data, granted) = self.execute(now, &request, current, max);
        if let Some(BmcSession {
            stage: Stage::Active { privilege, .. },
            ..
        }) = self.sessions.get_mut(&bmc_session_id)
        {
            *privilege = granted;
        }
        let response = Response {
            net_fn: request.net_fn,
            command: request.command,
            rq_seq: request.rq_seq,
            completion,
            data,
        };
        let mut iv = [0u8; 16];
        self.rng.fill_bytes(&mut iv);
        let Some(BmcSession {
            stage: Stage::Active { keys, out_seq, .. },
            ..
        }) = self.sessions.get_mut(&bmc_session_id)
        else {
            return;
        };
        let seq = next_seq(out_seq);
        let packet = encode_v2(
            PayloadType::Ipmi,
            console_session_id,
            seq,
            &response.encode(),
            Some(keys),
            iv,
        );
        if request.net_fn == NETFN_APP && request.command == CMD_CLOSE_SESSION {
            self.sessions.remove(&bmc_session_id);
        }
        if request.net_fn == NETFN_CHASSIS
            && request.command == CMD_CHASSIS_CONTROL
            && std::mem::take(&mut self.config.faults.lose_first_control_reply)
        {
            return;
        }
        if let Ok(packet) = packet {
            self.reply(now, packet);
        }
    }

    /// Runs one in-session request (RMCP+ or IPMI 1.5) at the session's
    /// `privilege`: the completion code, the reply data and the session's
    /// privilege after it.
    fn execute(
        &mut self,
        now: Instant,
        request: &Request,
        mut privilege: Privilege,
        max_privilege: Privilege,
    ) -> (u8, Vec<u8>, Privilege) {
        let (completion, data) = match (request.net_fn, request.command) {
            (NETFN_APP, CMD_SET_SESSION_PRIVILEGE) if self.config.faults.privilege_busy > 0 => {
                self.config.faults.privilege_busy -= 1;
                (0xc0, vec![])
            }
            (NETFN_APP, CMD_SET_SESSION_PRIVILEGE) => {
                let limit = self
                    .config
                    .faults
                    .channel_limit
                    .unwrap_or(Privilege::Administrator);
                match request.data.first().copied().map(Privilege::from_level) {
                    Some(Some(wanted)) if wanted <= max_privilege && wanted <= limit => {
                        privilege = wanted;
                        (0, vec![wanted.level()])
                    }
                    Some(None) if request.data[0] & 0x0f == 0 => (0, vec![privilege.level()]),
                    _ => (0x81, vec![]),
                }
            }
            (NETFN_APP, CMD_CLOSE_SESSION) => (0, vec![]),
            // Get Device ID (§20.1), which some consoles (pyghmi) ask first:
            // device 0x20, revision 1, firmware 1.0, IPMI 2.0, a chassis device.
            (NETFN_APP, CMD_GET_DEVICE_ID) => {
                (0, vec![0x20, 0x01, 0x01, 0x00, 0x02, 0x80, 0, 0, 0, 0, 0])
            }
            (NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS) => (
                0,
                vec![u8::from(self.power_at(now) == PowerState::On), 0, 0],
            ),
            (NETFN_CHASSIS, CMD_CHASSIS_CONTROL) => {
                match request
                    .data
                    .first()
                    .copied()
                    .and_then(ChassisControl::from_byte)
                {
                    _ if privilege < Privilege::Operator => (0xd4, vec![]),
                    Some(control) => (self.control(control, now), vec![]),
                    None => (0xcc, vec![]),
                }
            }
            _ => (0xc1, vec![]),
        };
        (completion, data, privilege)
    }

    fn control(&mut self, control: ChassisControl, now: Instant) -> u8 {
        self.controls.push(control);
        let on = self.power == PowerState::On;
        let refuse_when_there = self.config.faults.refuse_when_already_there;
        match control {
            ChassisControl::PowerDown if refuse_when_there && !on => 0xd5,
            ChassisControl::PowerDown if self.config.faults.refuse_power_down => 0xd5,
            ChassisControl::PowerUp if refuse_when_there && on => 0xd5,
            ChassisControl::PowerDown | ChassisControl::SoftShutdown => {
                if !self.config.faults.lie_about_off {
                    self.power = PowerState::Off;
                }
                0
            }
            ChassisControl::PowerUp => {
                self.power = PowerState::On;
                0
            }
            // Cycle and reset of a machine that is off: "not supported in present
            // state", as BMCs answer (ipmi.md §12).
            ChassisControl::PowerCycle | ChassisControl::HardReset if !on => 0xd5,
            ChassisControl::PowerCycle => {
                if !self.config.faults.lie_about_cycle {
                    // Off now, on again after the cycle's off time.
                    self.power = PowerState::Off;
                    self.cycle_until = Some(now + self.config.cycle_off);
                }
                0
            }
            ChassisControl::HardReset => 0,
            ChassisControl::DiagnosticInterrupt => 0,
        }
    }
}
