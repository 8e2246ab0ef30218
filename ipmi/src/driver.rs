//! The thin tokio UDP layer: [`Driver`] runs many client sessions over one socket
//! (replies demultiplexed by console session ID and checked against the BMC's
//! address), so one process can drive hundreds of BMCs; [`serve`] runs responder
//! BMCs on loopback sockets for the demo, tests and the fleet benchmark. All protocol
//! logic stays in the sans-IO [`Session`] and [`Bmc`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fencekit_core::Instant;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::IpmiError;
use crate::packet::{peek, Framing, PayloadType};
use crate::responder::Bmc;
use crate::rmcp::MAX_DATAGRAM;
use crate::session::client::{Command, Event, Reply, Session, SessionConfig};

/// The replies to a session's commands, in order, or why the session failed.
pub type Replies = Result<Vec<Result<Reply, IpmiError>>, IpmiError>;

struct Job {
    peer: SocketAddr,
    config: SessionConfig,
    commands: Vec<Command>,
    deadline: Instant,
    done: oneshot::Sender<Replies>,
}

struct Entry {
    peer: SocketAddr,
    session: Session,
    wanted: usize,
    replies: Vec<Result<Reply, IpmiError>>,
    done: Option<oneshot::Sender<Replies>>,
}

/// A handle to the task that owns the socket; cheap to clone.
#[derive(Clone)]
pub struct Driver {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Driver {
    /// Binds `local` (e.g. `0.0.0.0:0`, or `127.0.0.1:0` in tests) and starts the
    /// socket task on the current tokio runtime.
    pub async fn bind(local: SocketAddr) -> std::io::Result<Driver> {
        let socket = UdpSocket::bind(local).await?;
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, rx));
        Ok(Driver { jobs })
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
        let host = config.host.clone();
        let (done, rx) = oneshot::channel();
        let gone = || IpmiError::Protocol {
            host: host.clone(),
            detail: "the UDP driver stopped".into(),
        };
        self.jobs
            .send(Job {
                peer,
                config,
                commands,
                deadline,
                done,
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

/// The console session ID a BMC's datagram is addressed to.
fn console_session_id(datagram: &[u8]) -> Option<u32> {
    let Ok(Framing::V2(header)) = peek(datagram) else {
        return None;
    };
    match header.payload_type {
        // Setup replies carry session ID 0 in the header; the console's is at
        // payload offset 4 (after tag, status and two bytes) in all three.
        PayloadType::OpenSessionResponse | PayloadType::Rakp2 | PayloadType::Rakp4 => {
            let payload = datagram.get(16..)?;
            let id = payload.get(4..8)?;
            Some(u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
        }
        _ => Some(header.session_id),
    }
}

async fn run(socket: UdpSocket, mut jobs: mpsc::UnboundedReceiver<Job>) {
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
            .filter_map(|e| e.session.poll_timeout())
            .min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            job = jobs.recv(), if accepting => {
                let Some(job) = job else {
                    accepting = false;
                    continue;
                };
                let mut id = 0;
                while id == 0 || sessions.contains_key(&id) {
                    id = rng.next_u32();
                }
                let now = Instant::now();
                let seed: StdRng = rand::make_rng();
                let mut session = Session::new(job.config, id, now, job.deadline, seed);
                for command in &job.commands {
                    session.queue(*command, now);
                }
                sessions.insert(id, Entry {
                    peer: job.peer,
                    session,
                    wanted: job.commands.len(),
                    replies: Vec::new(),
                    done: Some(job.done),
                });
                step(&socket, &mut sessions, id).await;
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let datagram = &buf[..len];
                let Some(id) = console_session_id(datagram) else { continue };
                let Some(entry) = sessions.get_mut(&id) else { continue };
                if entry.peer != from {
                    continue;
                }
                entry.session.handle_datagram(Instant::now(), datagram);
                step(&socket, &mut sessions, id).await;
            }
            () = sleep => {
                let now = Instant::now();
                let due: Vec<u32> = sessions
                    .iter()
                    .filter(|(_, e)| e.session.poll_timeout().is_some_and(|t| t <= now))
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    if let Some(entry) = sessions.get_mut(&id) {
                        entry.session.handle_timeout(now);
                    }
                    step(&socket, &mut sessions, id).await;
                }
            }
        }
    }
}

/// Sends what a session wants sent and hands its results back.
async fn step(socket: &UdpSocket, sessions: &mut HashMap<u32, Entry>, id: u32) {
    let Some(entry) = sessions.get_mut(&id) else {
        return;
    };
    let mut finished = false;
    loop {
        let mut progressed = false;
        while let Some(event) = entry.session.poll_event() {
            progressed = true;
            match event {
                Event::Established { .. } => {}
                Event::Reply { result, .. } => {
                    entry.replies.push(result);
                    if entry.replies.len() == entry.wanted {
                        if let Some(done) = entry.done.take() {
                            let _ = done.send(Ok(std::mem::take(&mut entry.replies)));
                        }
                        entry.session.close(Instant::now());
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
