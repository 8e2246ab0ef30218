//! The thin tokio UDP layer: [`Driver`] runs many client sessions over one socket
//! (replies demultiplexed by console session ID and checked against the BMC's
//! address; a truncated Open Session refusal, which carries no session ID, goes by
//! tag to that BMC's sessions awaiting one), so one process can drive thousands of
//! BMCs; [`serve`] runs responder BMCs on loopback sockets for the demo, tests and
//! the fleet benchmark. All protocol logic stays in the sans-IO [`Session`] and
//! [`Bmc`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fencekit_core::Instant;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::IpmiError;
use crate::packet::{decode_v2, peek, Framing, PayloadType};
use crate::responder::Bmc;
use crate::rmcp::MAX_DATAGRAM;
use crate::session::client::{Command, Event, Reply, Session, SessionConfig};
use crate::setup::OpenSessionResponse;

/// The replies to a session's commands, in order, or why the session failed.
pub type Replies = Result<Vec<Result<Reply, IpmiError>>, IpmiError>;

/// What the socket task is asked to do.
enum Job {
    /// Open a session, run the commands; close it after them, or keep it (its ID
    /// sent on `kept`) for more reads.
    Open {
        peer: SocketAddr,
        config: Box<SessionConfig>,
        commands: Vec<Command>,
        deadline: Instant,
        done: oneshot::Sender<Replies>,
        kept: Option<oneshot::Sender<KeptSession>>,
    },
    /// Run more commands in a kept session.
    More {
        id: KeptSession,
        commands: Vec<Command>,
        done: oneshot::Sender<Replies>,
    },
    /// Close a kept session (or give up on it, if a read is still outstanding).
    Close {
        id: KeptSession,
        done: oneshot::Sender<()>,
    },
}

/// A session the driver keeps open after its commands, for more of them; it is
/// closed when asked ([`Driver::close`]), after [`KEEP_IDLE`] without a command, or
/// at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptSession(u32);

/// How long a kept session may wait for its next command before the driver closes
/// it: longer than the pause between two status reads of a fence.
pub const KEEP_IDLE: std::time::Duration = std::time::Duration::from_secs(3);

struct Entry {
    peer: SocketAddr,
    /// Which of [`TAG_SLOTS`] ranges of message tags the session started in, among
    /// the sessions to its BMC.
    tag_slot: Option<u8>,
    session: Session,
    wanted: usize,
    replies: Vec<Result<Reply, IpmiError>>,
    done: Option<oneshot::Sender<Replies>>,
    /// Kept open after its commands (see [`KeptSession`]).
    keep: bool,
    /// When an idle kept session is closed.
    idle_until: Option<Instant>,
    /// Told when the session has closed.
    closed: Vec<oneshot::Sender<()>>,
}

/// A handle to the task that owns the socket; cheap to clone.
#[derive(Clone)]
pub struct Driver {
    jobs: mpsc::UnboundedSender<Job>,
    /// The cipher suite each BMC last accepted, by address.
    accepted: Accepted,
}

type Accepted = Arc<Mutex<HashMap<SocketAddr, u8>>>;

impl Driver {
    /// Binds `local` (e.g. `0.0.0.0:0`, or `127.0.0.1:0` in tests) and starts the
    /// socket task on the current tokio runtime.
    pub async fn bind(local: SocketAddr) -> std::io::Result<Driver> {
        let socket = bind_udp(local)?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let accepted = Accepted::default();
        tokio::spawn(run(socket, rx, Arc::clone(&accepted)));
        Ok(Driver { jobs, accepted })
    }

    /// The cipher suite the BMC at `peer` accepted in the last session established
    /// with it.
    pub fn accepted_suite(&self, peer: SocketAddr) -> Option<u8> {
        self.accepted.lock().ok()?.get(&peer).copied()
    }

    /// Whether the socket task is still running (it ends with its runtime).
    pub fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Opens a session with the BMC at `peer`, runs `commands`, closes the session,
    /// and returns the replies; ends by `deadline`. The replies return as soon as
    /// the last one arrives: Close Session goes on in the background.
    pub async fn run(
        &self,
        peer: SocketAddr,
        config: SessionConfig,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Replies {
        self.open(peer, config, commands, deadline, None).await
    }

    /// [`Driver::run`], the session kept open after the commands for more reads
    /// ([`Driver::more`]) when it was established: its handle, if so.
    pub async fn run_and_keep(
        &self,
        peer: SocketAddr,
        config: SessionConfig,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> (Replies, Option<KeptSession>) {
        let (kept, kept_rx) = oneshot::channel();
        let replies = self
            .open(peer, config, commands, deadline, Some(kept))
            .await;
        let kept = match &replies {
            Ok(_) => kept_rx.await.ok(),
            Err(_) => None,
        };
        (replies, kept)
    }

    /// Runs `commands` in the kept session `id`, waiting for them until `by`; an
    /// error if the session is gone or did not answer by then (it is then closed).
    /// For reads only: what is sent here may be sent again.
    pub async fn more(&self, id: KeptSession, commands: Vec<Command>, by: Instant) -> Replies {
        let gone = |detail: &str| IpmiError::Protocol {
            host: String::new(),
            detail: detail.into(),
        };
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job::More { id, commands, done })
            .map_err(|_| gone("the UDP driver stopped"))?;
        match tokio::time::timeout_at(by, rx).await {
            Ok(Ok(replies)) => replies,
            Ok(Err(_)) => Err(gone("the kept session ended")),
            Err(_) => {
                self.close_now(id);
                Err(gone("no answer in the kept session"))
            }
        }
    }

    /// Closes the kept session `id`, waiting for the BMC's answer until `by`.
    pub async fn close(&self, id: KeptSession, by: Instant) {
        let (done, rx) = oneshot::channel();
        if self.jobs.send(Job::Close { id, done }).is_ok() {
            let _ = tokio::time::timeout_at(by, rx).await;
        }
    }

    fn close_now(&self, id: KeptSession) {
        let (done, _) = oneshot::channel();
        let _ = self.jobs.send(Job::Close { id, done });
    }

    async fn open(
        &self,
        peer: SocketAddr,
        config: SessionConfig,
        commands: Vec<Command>,
        deadline: Instant,
        kept: Option<oneshot::Sender<KeptSession>>,
    ) -> Replies {
        let host = config.host.clone();
        let (done, rx) = oneshot::channel();
        let gone = || IpmiError::Protocol {
            host: host.clone(),
            detail: "the UDP driver stopped".into(),
        };
        self.jobs
            .send(Job::Open {
                peer,
                config: Box::new(config),
                commands,
                deadline,
                done,
                kept,
            })
            .map_err(|_| gone())?;
        // The session ends itself at the deadline; this is a second guard.
        match tokio::time::timeout_at(deadline + std::time::Duration::from_millis(100), rx).await {
            Ok(Ok(replies)) => replies,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(IpmiError::NoAnswer {
                host,
                phase: crate::error::Phase::InSession,
            }),
        }
    }
}

/// The receive buffer the driver asks for: replies from a fleet of BMCs arrive in
/// bursts (2,000 Open Session answers at once), and the default (~200 KiB, some
/// 200 datagrams' worth of kernel buffers) would drop most of a burst, costing a
/// retransmission interval each. The kernel caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 4 << 20;

fn bind_udp(local: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

/// How many sessions to one BMC get message tags of their own range (a session uses
/// a few tags: each suite it offers, then RAKP 1 and 3; a range is 31 wide).
const TAG_SLOTS: u8 = 8;

/// Where a BMC's datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// To the session with this console session ID.
    Session(u32),
    /// A truncated Open Session error (tag and status only, as ipmi_sim sends):
    /// to the sessions with this peer that await an Open Session answer with this
    /// tag. Such an answer can only make a session try its next allowed suite.
    OpenSessionError { tag: u8 },
    /// An RAKP 2 or 4 error addressed to console session ID 0 (some BMCs do):
    /// only its tag says whose it is. It can only end the session it reaches.
    RakpError { tag: u8 },
    /// An IPMI 1.5 datagram: its session ID is the BMC's (0 before activation),
    /// never ours, so it goes to every session with this peer, and each takes only
    /// the reply to its own request whose AuthCode verifies.
    V15,
}

/// Where a datagram from a BMC is addressed.
fn route(datagram: &[u8]) -> Option<Route> {
    let header = match peek(datagram) {
        Ok(Framing::V2(header)) => header,
        Ok(Framing::V15) => return Some(Route::V15),
        _ => return None,
    };
    match header.payload_type {
        PayloadType::OpenSessionResponse => {
            let packet = decode_v2(datagram, None).ok()?;
            if let Some((tag, _)) = OpenSessionResponse::truncated_error(&packet.payload) {
                return Some(Route::OpenSessionError { tag });
            }
            setup_console_session_id(&packet.payload).map(Route::Session)
        }
        PayloadType::Rakp2 | PayloadType::Rakp4 => {
            let payload = datagram.get(16..)?;
            match setup_console_session_id(payload)? {
                0 if payload.get(1).is_some_and(|status| *status != 0) => {
                    Some(Route::RakpError { tag: payload[0] })
                }
                id => Some(Route::Session(id)),
            }
        }
        _ => Some(Route::Session(header.session_id)),
    }
}

/// Setup replies carry session ID 0 in the header; the console's is at payload
/// offset 4 (after tag, status and two bytes) in all three.
fn setup_console_session_id(payload: &[u8]) -> Option<u32> {
    let id = payload.get(4..8)?;
    Some(u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
}

async fn run(socket: UdpSocket, mut jobs: mpsc::UnboundedReceiver<Job>, accepted: Accepted) {
    let mut sessions: HashMap<u32, Entry> = HashMap::new();
    let mut rng: StdRng = rand::make_rng();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut accepting = true;
    loop {
        if !accepting && sessions.is_empty() {
            return;
        }
        let next = sessions
            .values()
            .flat_map(|e| [e.session.poll_timeout(), e.idle_until])
            .flatten()
            .min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            job = jobs.recv(), if accepting => {
                let (peer, config, commands, deadline, done, kept) = match job {
                    None => {
                        accepting = false;
                        continue;
                    }
                    Some(Job::Open { peer, config, commands, deadline, done, kept }) => {
                        (peer, config, commands, deadline, done, kept)
                    }
                    Some(Job::More { id, commands, done }) => {
                        let Some(entry) = sessions
                            .get_mut(&id.0)
                            .filter(|e| e.keep && e.done.is_none() && e.session.is_idle())
                        else {
                            // Dropped: the caller hears the session ended.
                            drop(done);
                            continue;
                        };
                        let now = Instant::now();
                        entry.idle_until = None;
                        entry.wanted = commands.len();
                        entry.replies.clear();
                        entry.done = Some(done);
                        for command in &commands {
                            entry.session.queue(*command, now);
                        }
                        step(&socket, &mut sessions, id.0, &accepted).await;
                        continue;
                    }
                    Some(Job::Close { id, done }) => {
                        match sessions.get_mut(&id.0) {
                            Some(entry) if entry.keep => {
                                entry.keep = false;
                                entry.idle_until = None;
                                entry.closed.push(done);
                                entry.session.abandon(Instant::now());
                                step(&socket, &mut sessions, id.0, &accepted).await;
                            }
                            _ => {
                                let _ = done.send(());
                            }
                        }
                        continue;
                    }
                };
                let job_peer = peer;
                let mut id = 0;
                while id == 0 || sessions.contains_key(&id) {
                    id = rng.next_u32();
                }
                let now = Instant::now();
                let seed: StdRng = rand::make_rng();
                // Tags apart from every other session's to this BMC (see
                // `Session::with_first_tag`): a range each, while ranges last.
                let taken: Vec<u8> = sessions
                    .values()
                    .filter(|e| e.peer == job_peer)
                    .filter_map(|e| e.tag_slot)
                    .collect();
                let tag_slot = (0..TAG_SLOTS).find(|slot| !taken.contains(slot));
                let first_tag =
                    tag_slot.map(|slot| slot * (u8::MAX / TAG_SLOTS) + (rng.next_u32() % 8) as u8);
                let mut session =
                    Session::with_first_tag(*config, id, now, deadline, seed, first_tag);
                for command in &commands {
                    session.queue(*command, now);
                }
                let keep = kept.is_some();
                if let Some(kept) = kept {
                    let _ = kept.send(KeptSession(id));
                }
                sessions.insert(id, Entry {
                    peer,
                    tag_slot,
                    session,
                    wanted: commands.len(),
                    replies: Vec::new(),
                    done: Some(done),
                    keep,
                    idle_until: None,
                    closed: Vec::new(),
                });
                step(&socket, &mut sessions, id, &accepted).await;
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let datagram = &buf[..len];
                let ids: Vec<u32> = match route(datagram) {
                    None => continue,
                    Some(Route::Session(id)) => vec![id],
                    Some(Route::OpenSessionError { tag }) => sessions
                        .iter()
                        .filter(|(_, e)| e.peer == from && e.session.awaits_open_session_response(tag))
                        .map(|(id, _)| *id)
                        .collect(),
                    Some(Route::V15) => sessions
                        .iter()
                        .filter(|(_, e)| e.peer == from)
                        .map(|(id, _)| *id)
                        .collect(),
                    Some(Route::RakpError { tag }) => sessions
                        .iter()
                        .filter(|(_, e)| e.peer == from && e.session.awaits_rakp_response(tag))
                        .map(|(id, _)| *id)
                        .collect(),
                };
                for id in ids {
                    let Some(entry) = sessions.get_mut(&id) else { continue };
                    if entry.peer != from {
                        continue;
                    }
                    entry.session.handle_datagram(Instant::now(), datagram);
                    step(&socket, &mut sessions, id, &accepted).await;
                }
            }
            () = sleep => {
                let now = Instant::now();
                let due: Vec<u32> = sessions
                    .iter()
                    .filter(|(_, e)| {
                        e.session.poll_timeout().is_some_and(|t| t <= now)
                            || e.idle_until.is_some_and(|t| t <= now)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    if let Some(entry) = sessions.get_mut(&id) {
                        if entry.idle_until.is_some_and(|t| t <= now) {
                            // A kept session nobody used for a while.
                            entry.keep = false;
                            entry.idle_until = None;
                            entry.session.close(now);
                        } else {
                            entry.session.handle_timeout(now);
                        }
                    }
                    step(&socket, &mut sessions, id, &accepted).await;
                }
            }
        }
    }
}

/// Sends what a session wants sent and hands its results back.
async fn step(
    socket: &UdpSocket,
    sessions: &mut HashMap<u32, Entry>,
    id: u32,
    accepted: &Accepted,
) {
    let Some(entry) = sessions.get_mut(&id) else {
        return;
    };
    let mut finished = false;
    loop {
        let mut progressed = false;
        while let Some(event) = entry.session.poll_event() {
            progressed = true;
            match event {
                Event::Established { suite } => {
                    if let Ok(mut accepted) = accepted.lock() {
                        accepted.insert(entry.peer, suite);
                    }
                }
                Event::EstablishedV15 { .. } => {}
                Event::Reply { result, .. } => {
                    entry.replies.push(result);
                    if entry.replies.len() == entry.wanted {
                        if let Some(done) = entry.done.take() {
                            let _ = done.send(Ok(std::mem::take(&mut entry.replies)));
                        }
                        if entry.keep {
                            entry.idle_until = Some(Instant::now() + KEEP_IDLE);
                        } else {
                            entry.session.close(Instant::now());
                        }
                    }
                }
                Event::Failed(error) => {
                    if let Some(done) = entry.done.take() {
                        let _ = done.send(Err(error));
                    }
                }
                Event::Closed => finished = true,
            }
        }
        while let Some(datagram) = entry.session.poll_transmit() {
            progressed = true;
            if let Err(e) = socket.send_to(&datagram, entry.peer).await {
                tracing::debug!(peer = %entry.peer, error = %e, "send failed");
            }
        }
        if !progressed {
            break;
        }
    }
    if finished {
        if let Some(mut entry) = sessions.remove(&id) {
            for closed in entry.closed.drain(..) {
                let _ = closed.send(());
            }
            if let Some(done) = entry.done.take() {
                let _ = done.send(Err(IpmiError::Protocol {
                    host: entry.peer.to_string(),
                    detail: "session closed before every command was answered".into(),
                }));
            }
        }
    }
}

/// Serves one responder BMC on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, bmc: Arc<Mutex<Bmc>>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // Replies leave in the order they were queued; remember each one's address.
    let mut to: VecDeque<SocketAddr> = VecDeque::new();
    loop {
        let next = bmc.lock().map(|b| b.poll_timeout()).unwrap_or(None);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                if let Ok(mut b) = bmc.lock() {
                    let before = b.queued();
                    b.handle_datagram(Instant::now(), &buf[..len]);
                    for _ in before..b.queued() {
                        to.push_back(from);
                    }
                }
            }
            () = sleep => {}
        }
        let now = Instant::now();
        let mut out = Vec::new();
        if let Ok(mut b) = bmc.lock() {
            while let Some(datagram) = b.poll_transmit(now) {
                if let Some(addr) = to.pop_front() {
                    out.push((datagram, addr));
                }
            }
        }
        for (datagram, addr) in out {
            let _ = socket.send_to(&datagram, addr).await;
        }
    }
}

/// Starts responder BMCs, one loopback socket each, on the current runtime.
/// Returns each BMC's address and handle (to set power or faults, read controls).
pub async fn spawn_bmcs(
    configs: Vec<crate::responder::BmcConfig>,
) -> std::io::Result<Vec<(SocketAddr, Arc<Mutex<Bmc>>)>> {
    let mut out = Vec::new();
    for config in configs {
        let socket = UdpSocket::bind(("127.0.0.1", 0)).await?;
        let addr = socket.local_addr()?;
        let bmc = Arc::new(Mutex::new(Bmc::new(config)));
        tokio::spawn(serve(socket, bmc.clone()));
        out.push((addr, bmc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ChassisControl, Privilege};
    use crate::responder::BmcConfig;
    use crate::session::client::Reply;
    use crate::suite::offer;
    use fencekit_core::{PowerState, Secret};
    use std::time::Duration;

    #[test]
    fn ipmi_sims_truncated_refusal_routes_by_tag_and_full_answers_by_session_id() {
        // Captured from ipmi_sim 2.0.33 refusing suite 17: tag 1, status 0x04.
        let captured = [
            0x06, 0x00, 0xff, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x01, 0x04,
        ];
        assert_eq!(route(&captured), Some(Route::OpenSessionError { tag: 1 }));
        let full = crate::packet::encode_v2(
            PayloadType::OpenSessionResponse,
            0,
            0,
            &[1, 0x04, 0, 0, 0x44, 0x33, 0x22, 0x11],
            None,
            [0; 16],
        )
        .unwrap();
        assert_eq!(route(&full), Some(Route::Session(0x1122_3344)));
        // A truncated "success" is malformed and goes nowhere.
        let mut bad = captured;
        bad[17] = 0;
        assert_eq!(route(&bad), None);
        assert_eq!(route(&captured[..16]), None);
    }

    proptest::proptest! {
        #[test]
        fn routing_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                payload_type in proptest::prelude::any::<u8>()) {
            let _ = route(&bytes);
            let mut framed = vec![6, 0, 0xff, 7, 6, payload_type];
            framed.extend(&bytes);
            let _ = route(&framed);
        }
    }

    fn config(host: String, password: &str) -> SessionConfig {
        SessionConfig::new(
            host,
            "admin",
            &Secret::new(password),
            None,
            Privilege::Operator,
            offer(None, false).unwrap(),
        )
        .unwrap()
    }

    /// One run of `commands` against a fresh responder BMC set up as `cfg`, as
    /// `user` at `privilege`, by `within`: the replies, the BMC, the time taken.
    async fn one_run(
        cfg: BmcConfig,
        user: &str,
        privilege: Privilege,
        commands: Vec<Command>,
        within: Duration,
    ) -> (Replies, Arc<Mutex<Bmc>>, Duration) {
        let (addr, bmc) = spawn_bmcs(vec![cfg]).await.unwrap().remove(0);
        let driver = Driver::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let session = SessionConfig::new(
            addr.to_string(),
            user,
            &Secret::new("secretpw"),
            None,
            privilege,
            offer(None, false).unwrap(),
        )
        .unwrap();
        let started = Instant::now();
        let replies = driver.run(addr, session, commands, started + within).await;
        (replies, bmc, started.elapsed())
    }

    fn status_on() -> Vec<Result<Reply, IpmiError>> {
        vec![Ok(Reply::Power(PowerState::On))]
    }

    /// A BMC that addresses its RAKP 2 refusal to console session ID 0: the
    /// refusal reaches the session by its tag and says why at once, instead of the
    /// session waiting for its deadline and reporting no answer.
    #[tokio::test]
    async fn an_rakp_error_addressed_to_session_zero_reaches_its_session() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.suites = vec![3];
        cfg.faults.rakp_errors_to_session_zero = true;
        let (replies, _, took) = one_run(
            cfg,
            "nobody",
            Privilege::Operator,
            vec![Command::GetChassisStatus],
            Duration::from_secs(5),
        )
        .await;
        let error = replies.unwrap_err();
        assert!(
            error.to_string().contains("0x0d"),
            "the BMC's refusal (unauthorized name) expected: {error}"
        );
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    /// A BMC that leaves an Open Session for suite 17 unanswered (it lacks it) gets
    /// suite 3 offered next, within a default fence timeout.
    #[tokio::test]
    async fn the_default_offer_falls_back_to_3_when_the_bmc_ignores_17() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.suites = vec![3];
        cfg.faults.drop_unsupported_suites = true;
        let (replies, _, took) = one_run(
            cfg,
            "admin",
            Privilege::Operator,
            vec![Command::GetChassisStatus],
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(replies.unwrap(), status_on());
        assert!(took < Duration::from_secs(4), "{took:?}");
    }

    /// Set Session Privilege Level answered "node busy" (Lenovo XCC) is asked
    /// again, and ADMINISTRATOR refused on the channel falls back to OPERATOR: in
    /// both, the power command then goes through.
    #[tokio::test]
    async fn a_busy_or_limited_privilege_answer_still_lets_the_command_through() {
        let mut busy = BmcConfig::new("secretpw");
        busy.faults.privilege_busy = 3;
        let mut limited = BmcConfig::new("secretpw");
        limited.faults.channel_limit = Some(Privilege::Operator);
        for cfg in [busy, limited] {
            let (replies, bmc, _) = one_run(
                cfg,
                "admin",
                Privilege::Administrator,
                vec![Command::ChassisControl(ChassisControl::PowerDown)],
                Duration::from_secs(8),
            )
            .await;
            assert_eq!(replies.unwrap(), vec![Ok(Reply::Accepted)]);
            assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
        }
    }

    /// A lost RAKP 2 answer to a BMC that refuses a repeated RAKP 1: the handshake
    /// starts again from Open Session instead of repeating RAKP 1, and succeeds.
    #[tokio::test]
    async fn an_unanswered_rakp_1_starts_the_handshake_again() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.faults.lose_first_rakp2 = true;
        cfg.faults.refuse_repeated_rakp1 = true;
        let (replies, _, _) = one_run(
            cfg,
            "admin",
            Privilege::Operator,
            vec![Command::GetChassisStatus],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(replies.unwrap(), status_on());
    }

    /// A lost Close Session is sent again: the BMC's session slot is freed.
    #[tokio::test]
    async fn a_lost_close_session_is_sent_again() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.faults.lose_first_close = true;
        let (replies, bmc, _) = one_run(
            cfg,
            "admin",
            Privilege::Operator,
            vec![Command::GetChassisStatus],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(replies.unwrap(), status_on());
        let until = Instant::now() + Duration::from_secs(3);
        while bmc.lock().unwrap().session_count() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            bmc.lock().unwrap().session_count(),
            0,
            "the session was left open"
        );
    }

    #[tokio::test]
    async fn the_default_offer_falls_back_to_3_over_udp_when_refusals_are_truncated() {
        let mut cfg = BmcConfig::new("secretpw");
        cfg.suites = vec![3];
        cfg.faults.truncated_error_responses = true;
        let bmcs = spawn_bmcs(vec![cfg.clone(), cfg]).await.unwrap();
        let driver = Driver::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Two sessions at once to the same BMC, and one to another.
        let runs = [bmcs[0].0, bmcs[0].0, bmcs[1].0].map(|addr| {
            driver.run(
                addr,
                config(addr.to_string(), "secretpw"),
                vec![Command::GetChassisStatus],
                deadline,
            )
        });
        let [a, b, c] = runs;
        let (a, b, c) = tokio::join!(a, b, c);
        for replies in [a, b, c] {
            assert_eq!(replies.unwrap(), vec![Ok(Reply::Power(PowerState::On))]);
        }
    }
}
