//! The thin tokio UDP driver (IPv4 and IPv6): [`Agent`] is one SNMP agent — where it
//! is, how we log in, and the SNMPv3 engine learnt so far — and [`Session`] one
//! operation's requests to it over a connected socket, all ending by one deadline.
//! Every protocol decision (retries, stale answers, discovery, resynchronisation,
//! the no-resend rule) is the sans-IO [`Exchange`]'s; this file only moves its
//! datagrams and tells it the time.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use fencekit_core::{DeviceError, Instant};
use tokio::net::UdpSocket;

use crate::ber::{self, Oid, SetValue};
use crate::credentials::{Credentials, Version};
use crate::exchange::{Exchange, Peer, Request, Resend};
use crate::message::{check_count, check_names, set_outcome, status_name, Response, VarValue};
use crate::usm::Engine;

/// One SNMP agent: where it is and how we log in. Cheap to share; holds the SNMPv3
/// engine state so that later operations skip discovery.
pub struct Agent {
    host: String,
    port: u16,
    credentials: Credentials,
    request_timeout: Duration,
    engine: Mutex<Option<Engine>>,
    /// The address the name gave first, kept for every later session: a state read
    /// goes to the agent the command went to, never to another address the name
    /// resolves to later (round-robin DNS, a changed record).
    address: Mutex<Option<SocketAddr>>,
    /// Only IPv6 (`Some(true)`) or only IPv4 (`Some(false)`) addresses of the name
    /// (fence-agents' `inet6_only`, `inet4_only`).
    family: Option<bool>,
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
            address: Mutex::new(None),
            family: None,
        }
    }

    /// Reaches the agent at the name's IPv6 (`Some(true)`) or IPv4 (`Some(false)`)
    /// addresses only.
    pub fn only_family(self, v6: Option<bool>) -> Agent {
        Agent { family: v6, ..self }
    }

    /// The address this agent's sessions go to, once the first looked it up.
    pub fn address(&self) -> Option<SocketAddr> {
        *self.address.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn version(&self) -> Version {
        self.credentials.version()
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Opens a session that ends by `deadline`.
    pub async fn session(&self, deadline: Instant) -> Result<Session<'_>, DeviceError> {
        let endpoint = self.endpoint();
        let kept = *self.address.lock().unwrap_or_else(|e| e.into_inner());
        let addr: SocketAddr = match kept {
            Some(addr) => addr,
            None => match fencekit_core::lookup::lookup(&self.host, self.port, deadline).await {
                Ok(addrs) => {
                    let Some(first) = addrs
                        .iter()
                        .find(|a| {
                            self.family
                                .map_or(true, |v6| fencekit_core::lookup::reaches_ipv6(a) == v6)
                        })
                        .copied()
                    else {
                        return Err(DeviceError::Failed(format!(
                            "{} has no {} address ({})",
                            self.host,
                            if self.family == Some(true) {
                                "IPv6"
                            } else {
                                "IPv4"
                            },
                            if self.family == Some(true) {
                                "inet6_only"
                            } else {
                                "inet4_only"
                            }
                        )));
                    };
                    *self.address.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
                    first
                }
                Err(e) if e.is_timeout() => {
                    return Err(DeviceError::NoAnswer {
                        endpoint,
                        detail: "name lookup did not finish before the deadline".into(),
                    })
                }
                Err(e) => return Err(DeviceError::Failed(e.to_string())),
            },
        };
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let io = |e: std::io::Error| DeviceError::Failed(format!("UDP socket for {endpoint}: {e}"));
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        let peer = Peer {
            host: self.host.clone(),
            endpoint: endpoint.clone(),
            credentials: self.credentials.clone(),
            request_timeout: self.request_timeout,
        };
        let exchange = Exchange::new(
            peer,
            self.engine(),
            first_request_id(),
            Instant::now(),
            deadline,
        );
        Ok(Session {
            agent: self,
            socket,
            exchange,
        })
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
}

fn first_request_id() -> i32 {
    // Unpredictable enough that two quick processes do not share ids; not security.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    ((nanos ^ std::process::id().rotate_left(16)) & 0x3fff_ffff) as i32
}

/// How many objects one GetBulk of a walk asks for: a 48-outlet PDU's column in two
/// exchanges, each answer well inside a UDP datagram.
pub const WALK_REPETITIONS: u16 = 32;

/// The most rows a walk reads: a column that never ends (an agent answering ever
/// further rows) is refused here instead of growing until the deadline. Far above
/// any PDU's outlets or switch's ports.
pub const WALK_MAX_ROWS: usize = 65_536;

/// The most a walk's rows may weigh (names and values): a datagram can carry a
/// 64 KiB row, so the row count alone would still let an agent fill gigabytes of
/// the fencing node's memory. 65,536 interfaces with a full ifDescr (DisplayString,
/// 255 octets) and their names fit twice over.
pub const WALK_MAX_BYTES: usize = 32 << 20;

/// What a walk has read so far, against [`WALK_MAX_ROWS`] and [`WALK_MAX_BYTES`].
#[derive(Default)]
struct WalkLimit {
    rows: usize,
    bytes: usize,
}

impl WalkLimit {
    /// Counts one more row; `false` once the walk has read more than it may.
    fn take(&mut self, name: &Oid, value: &VarValue) -> bool {
        let weight = std::mem::size_of_val(name.as_slice())
            + match value {
                VarValue::Text(bytes) => bytes.len(),
                VarValue::Oid(oid) => std::mem::size_of_val(oid.as_slice()),
                _ => 0,
            };
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(weight);
        self.rows <= WALK_MAX_ROWS && self.bytes <= WALK_MAX_BYTES
    }
}

/// One operation's exchanges with an agent, all ending by one deadline.
pub struct Session<'a> {
    agent: &'a Agent,
    socket: UdpSocket,
    exchange: Exchange,
}

impl Session<'_> {
    pub fn agent(&self) -> &Agent {
        self.agent
    }

    /// GetRequest for several objects.
    pub async fn get(&mut self, names: &[Oid]) -> Result<Response, DeviceError> {
        let response = self.run(Request::get(names)).await?;
        check_names(
            &self.agent.endpoint(),
            &response,
            &names.iter().collect::<Vec<_>>(),
        )?;
        Ok(response)
    }

    /// GetNextRequest for one object.
    pub async fn get_next(&mut self, name: &Oid) -> Result<Response, DeviceError> {
        let response = self.run(Request::get_next(name)).await?;
        check_count(&self.agent.endpoint(), &response, 1)?;
        Ok(response)
    }

    /// Every object under `prefix`, in order: a GetBulk walk with SNMPv2c and v3
    /// ([`WALK_REPETITIONS`] objects an exchange, so a PDU's outlet table is read in
    /// one or two), a GetNext walk with SNMPv1, which has no GetBulk.
    pub async fn walk(&mut self, prefix: &Oid) -> Result<Vec<(Oid, VarValue)>, DeviceError> {
        let bulk = self.agent.version() != Version::V1;
        if !bulk {
            if let Some(rows) = self.walk_column_v1(prefix).await? {
                return Ok(rows);
            }
        }
        let mut out = Vec::new();
        let mut limit = WalkLimit::default();
        let mut cursor = prefix.clone();
        loop {
            let response = if bulk {
                self.run(Request::get_bulk(&cursor, WALK_REPETITIONS))
                    .await?
            } else {
                self.get_next(&cursor).await?
            };
            // SNMPv1 ends a walk with noSuchName; v2c with endOfMibView, never with
            // an error-status: one there is a table read broken off, not its end.
            if response.status == 2 && !bulk {
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
            // A table ends with a row past it or endOfMibView; an answer with no
            // row at all to a request for one or more is a read broken off.
            if response.binds.is_empty() {
                return Err(DeviceError::Protocol(format!(
                    "{} answered with no object while listing {}; refusing a table read \
                     broken off",
                    self.agent.endpoint(),
                    ber::dotted(prefix)
                )));
            }
            for (name, value) in response.binds {
                if name.is_empty() {
                    return Err(self.unreadable(prefix));
                }
                if !name.starts_with(prefix) || value == VarValue::EndOfMibView {
                    return Ok(out);
                }
                if name <= cursor {
                    return Err(DeviceError::Protocol(format!(
                        "{} returned {} after {}: its table does not advance",
                        self.agent.endpoint(),
                        ber::dotted(&name),
                        ber::dotted(&cursor)
                    )));
                }
                if !limit.take(&name, &value) {
                    return Err(self.endless(prefix));
                }
                cursor = name.clone();
                out.push((name, value));
            }
        }
        Ok(out)
    }

    /// SNMPv1 has no GetBulk; a column whose rows are indexed by one number (an
    /// outlet table) is read [`WALK_REPETITIONS`] rows an exchange all the same: one
    /// GetNext names the column at indexes `b`, `b+1`, ... `b+31`, and each answer is
    /// the first row after its index, so together they are every row up to `b+32`.
    /// `None` (and the caller walks one row an exchange) as soon as a row has an index
    /// of another shape, or the agent answers with an error (SNMPv1 fails the whole
    /// request when one object has no successor).
    async fn walk_column_v1(
        &mut self,
        prefix: &Oid,
    ) -> Result<Option<Vec<(Oid, VarValue)>>, DeviceError> {
        let mut rows: std::collections::BTreeMap<Oid, VarValue> = Default::default();
        let mut limit = WalkLimit::default();
        let mut base: Option<u32> = None;
        loop {
            let mut names = Vec::with_capacity(usize::from(WALK_REPETITIONS));
            for i in 0..u32::from(WALK_REPETITIONS) {
                let name = match base {
                    // The first round starts at the column itself: its first row
                    // may be index 0.
                    None if i == 0 => prefix.clone(),
                    None => [prefix.as_slice(), &[i - 1]].concat(),
                    Some(b) => match b.checked_add(i) {
                        Some(index) => [prefix.as_slice(), &[index]].concat(),
                        None => return Ok(None),
                    },
                };
                names.push(name);
            }
            let asked = names.len();
            let response = self.run(Request::get_next_each(&names)).await?;
            if response.status != 0 || response.binds.len() != asked {
                return Ok(None);
            }
            let mut last_in_column = false;
            for (n, (name, value)) in response.binds.into_iter().enumerate() {
                if name.is_empty() {
                    return Err(self.unreadable(prefix));
                }
                let inside = name.starts_with(prefix) && value != VarValue::EndOfMibView;
                if n + 1 == asked {
                    last_in_column = inside;
                }
                if !inside {
                    continue;
                }
                if name.len() != prefix.len() + 1 || name <= names[n] {
                    return Ok(None);
                }
                if !limit.take(&name, &value) {
                    return Err(self.endless(prefix));
                }
                rows.insert(name, value);
            }
            if !last_in_column {
                return Ok(Some(rows.into_iter().collect()));
            }
            // More rows past this round's last index: go on from it.
            let last = names[asked - 1].last().copied().unwrap_or(0);
            base = Some(last);
        }
    }

    /// Why a walk stops at an object name that cannot be read (an arc beyond 32 bits,
    /// which the answer's reader leaves empty): a row fencekit cannot place is a
    /// table read broken off, never its end.
    fn unreadable(&self, prefix: &Oid) -> DeviceError {
        DeviceError::Protocol(format!(
            "{} answered an object name that cannot be read while listing {}; refusing a \
             table read broken off",
            self.agent.endpoint(),
            ber::dotted(prefix)
        ))
    }

    /// Why a walk past [`WalkLimit`] stops: the agent and the column.
    fn endless(&self, prefix: &Oid) -> DeviceError {
        DeviceError::Protocol(format!(
            "{} answered more than {WALK_MAX_ROWS} rows or {} MiB under {}: refusing a \
             table that does not end",
            self.agent.endpoint(),
            WALK_MAX_BYTES >> 20,
            ber::dotted(prefix)
        ))
    }

    /// SetRequest. An error-status that means "you may not write" becomes
    /// [`DeviceError::Refused`].
    pub async fn set(
        &mut self,
        binds: &[(Oid, SetValue)],
        resend: Resend,
    ) -> Result<(), DeviceError> {
        let response = self.run(Request::set(binds, resend)).await?;
        check_names(
            &self.agent.endpoint(),
            &response,
            &binds.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        )?;
        set_outcome(
            &self.agent.endpoint(),
            &self.agent.credentials,
            binds,
            &response,
        )
    }

    /// Runs one request through the exchange: its datagrams out, the socket's in,
    /// the clock on each wake-up.
    async fn run(&mut self, request: Request) -> Result<Response, DeviceError> {
        self.exchange.start(request, Instant::now());
        let outcome = self.drive().await;
        // What the exchange learnt of the SNMPv3 engine serves the next operation.
        self.agent.set_engine(self.exchange.engine().cloned());
        outcome
    }

    async fn drive(&mut self) -> Result<Response, DeviceError> {
        let mut buf = vec![0u8; 65_536];
        loop {
            while let Some(datagram) = self.exchange.poll_transmit() {
                match self.socket.send(&datagram).await {
                    Ok(_) => {}
                    // The socket's pending error from an earlier datagram: this one
                    // was not sent (the kernel reports the error instead of sending).
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        self.exchange.handle_unsent(Instant::now());
                    }
                    Err(e) => {
                        return Err(DeviceError::Failed(format!(
                            "cannot send to {}: {e}",
                            self.agent.endpoint()
                        )))
                    }
                }
            }
            if let Some(outcome) = self.exchange.poll_outcome() {
                return outcome;
            }
            let Some(wake) = self.exchange.poll_timeout() else {
                return Err(DeviceError::Failed(format!(
                    "the SNMP exchange with {} stopped without an outcome",
                    self.agent.endpoint()
                )));
            };
            match tokio::time::timeout_at(wake, self.socket.recv(&mut buf)).await {
                Err(_) => self.exchange.handle_timeout(Instant::now()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    self.exchange.handle_refused(Instant::now());
                }
                Ok(Err(e)) => {
                    return Err(DeviceError::Failed(format!(
                        "cannot receive from {}: {e}",
                        self.agent.endpoint()
                    )))
                }
                Ok(Ok(n)) => {
                    let datagram = buf.get(..n).unwrap_or_default();
                    self.exchange.handle_datagram(Instant::now(), datagram);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ber::tag;
    use crate::credentials::{AuthProtocol, PrivProtocol, SecLevel, Usm};
    use fencekit_core::Secret;

    /// `inet4_only`/`inet6_only`: an address of the other family is never used.
    #[tokio::test]
    async fn an_agent_held_to_one_family_uses_no_address_of_the_other() {
        let agent = |host: &str, v6| {
            Agent::new(
                host,
                161,
                Credentials::Community {
                    version: Version::V2c,
                    community: Secret::new("public"),
                },
                Duration::from_millis(200),
            )
            .only_family(v6)
        };
        let soon = || Instant::now() + Duration::from_secs(2);
        for (host, v6, says) in [
            ("127.0.0.1", Some(true), "inet6_only"),
            ("::1", Some(false), "inet4_only"),
            // An IPv4 host behind an IPv6 address is no IPv6 host.
            ("::ffff:127.0.0.1", Some(true), "inet6_only"),
        ] {
            let error = agent(host, v6).session(soon()).await.err().unwrap();
            assert!(error.to_string().contains(says), "{host}: {error}");
        }
        let held = agent("127.0.0.1", Some(false));
        assert!(held.session(soon()).await.is_ok());
        assert_eq!(
            held.address(),
            Some(SocketAddr::from(([127, 0, 0, 1], 161)))
        );
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

    /// An outlet reboot (which must not happen twice) that fails.
    async fn reboot_outlet(session: &mut Session<'_>) -> DeviceError {
        session
            .set(
                &[(
                    vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1],
                    SetValue::Integer(3),
                )],
                Resend::Never,
            )
            .await
            .unwrap_err()
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
    async fn a_v2c_walk_reads_a_table_with_getbulk_in_one_exchange() {
        // The agent answers a GetBulk with the table's three rows and the next object
        // past it; a GetNext would get one row an exchange.
        let (port, task) = fake_agent(|id, _| {
            let column = [1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 2];
            let mut binds: Vec<(Oid, SetValue)> = (1..=3)
                .map(|n| {
                    let mut name = column.to_vec();
                    name.push(n);
                    (name, SetValue::Integer(i64::from(n)))
                })
                .collect();
            binds.push((
                vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1],
                SetValue::Integer(1),
            ));
            let pdu = ber::pdu(tag::RESPONSE, id, &binds).unwrap();
            vec![ber::community_message(1, b"c", &pdu).to_vec()]
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let rows = session
            .walk(&vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 2])
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        drop(session);
        assert_eq!(task.await.unwrap(), 1, "one request for the whole table");
    }

    /// A v2c answer of rows `first..first+count` of `column`.
    fn rows_answer(id: i32, column: &[u32], first: u32, count: u32, error: Option<u8>) -> Vec<u8> {
        let binds: Vec<(Oid, SetValue)> = (first..first + count)
            .map(|n| ([column, &[n]].concat(), SetValue::Integer(i64::from(n))))
            .collect();
        let mut pdu = ber::pdu(tag::RESPONSE, id, &binds).unwrap();
        if let Some(status) = error {
            // error-status and error-index follow the request-id: 02 01 00 02 01 00.
            let at = pdu
                .windows(6)
                .position(|w| w == [2, 1, 0, 2, 1, 0])
                .unwrap();
            pdu[at + 2] = status;
            pdu[at + 5] = 1;
        }
        ber::community_message(1, b"c", &pdu).to_vec()
    }

    #[tokio::test]
    async fn a_v2c_walk_broken_off_by_an_error_status_is_refused_not_taken_as_complete() {
        let column = [1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
        let (port, _task) = fake_agent(move |id, seen| match seen {
            1 => vec![rows_answer(id, &column, 1, 32, None)],
            _ => vec![rows_answer(id, &column, 33, 1, Some(2))],
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let err = session.walk(&column.to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("noSuchName"), "{err}");
    }

    #[tokio::test]
    async fn a_v2c_walk_answered_with_no_rows_is_refused_not_taken_as_complete() {
        let column = [1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
        let (port, _task) = fake_agent(move |id, seen| match seen {
            1 => vec![rows_answer(id, &column, 1, 32, None)],
            // error-status 0 and not one varbind: no row, no end of the table.
            _ => vec![rows_answer(id, &column, 33, 0, None)],
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let err = session.walk(&column.to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("no object"), "{err}");
    }

    /// `datagram` (short-form lengths only) with its one row's last arc, 127, made
    /// 2^32: a name no 32-bit arc holds, in an answer that is otherwise good BER.
    fn with_an_arc_beyond_32_bits(datagram: &[u8]) -> Vec<u8> {
        // ifDescr.127 as BER arcs: 1.3 is 0x2b, then one byte each.
        let name = [0x2b, 6, 1, 2, 1, 2, 2, 1, 2, 0x7f];
        let at = datagram
            .windows(name.len())
            .position(|w| w == name)
            .unwrap()
            + 9;
        // The length bytes of every TLV holding `at` grow by the four added bytes.
        fn grow(bytes: &mut [u8], from: usize, to: usize, at: usize) {
            let mut i = from;
            while i + 1 < to {
                let (tag, len) = (bytes[i], usize::from(bytes[i + 1]));
                assert!(len < 0x80 - 4, "short-form lengths only");
                let end = i + 2 + len;
                if (i + 2..end).contains(&at) {
                    bytes[i + 1] += 4;
                    if tag & 0x20 != 0 {
                        grow(bytes, i + 2, end, at);
                    }
                }
                i = end;
            }
        }
        let mut bytes = datagram.to_vec();
        grow(&mut bytes, 0, datagram.len(), at);
        bytes.splice(at..=at, [0x90, 0x80, 0x80, 0x80, 0x00]);
        bytes
    }

    #[tokio::test]
    async fn a_walk_answered_with_an_object_name_that_cannot_be_read_is_refused() {
        let column = [1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
        let (port, _task) = fake_agent(move |id, seen| match seen {
            1 => vec![rows_answer(id, &column, 1, 32, None)],
            // Row 33 named with an arc no u32 holds.
            _ => vec![with_an_arc_beyond_32_bits(&rows_answer(
                id, &column, 127, 1, None,
            ))],
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let err = session.walk(&column.to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }

    #[tokio::test]
    async fn a_column_that_never_ends_is_refused_at_the_row_limit() {
        let column = [1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
        let (port, _task) = fake_agent(move |id, seen| {
            vec![rows_answer(id, &column, (seen - 1) * 32 + 1, 32, None)]
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(20))
            .await
            .unwrap();
        let err = session.walk(&column.to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("does not end"), "{err}");
    }

    /// A fake agent on loopback that reads each request whole.
    async fn fake_agent_reading(
        replies: impl Fn(&snmp2::Pdu<'_>) -> Vec<u8> + Send + 'static,
    ) -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await
            {
                let request = snmp2::Pdu::from_bytes(&buf[..n]).unwrap();
                if socket.send_to(&replies(&request), from).await.is_err() {
                    break;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn a_v1_column_that_never_ends_is_refused_at_the_row_limit() {
        // Each GetNext object is answered with the row after it, forever: the
        // 32-rows-an-exchange column walk and the one-row walk alike must stop.
        let port = fake_agent_reading(|request| {
            let binds: Vec<(Oid, SetValue)> = request
                .varbinds
                .clone()
                .map(|(name, _)| {
                    let mut next = ber::arcs(&name).unwrap();
                    match next.len() {
                        10 => next.push(1),
                        _ => *next.last_mut().unwrap() += 1,
                    }
                    (next, SetValue::Integer(1))
                })
                .collect();
            let pdu = ber::pdu(tag::RESPONSE, request.req_id, &binds).unwrap();
            ber::community_message(0, b"c", &pdu).to_vec()
        })
        .await;
        let agent = Agent::new(
            "127.0.0.1",
            port,
            Credentials::Community {
                version: Version::V1,
                community: Secret::new("c"),
            },
            Duration::from_millis(200),
        );
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(20))
            .await
            .unwrap();
        let err = session
            .walk(&vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not end"), "{err}");
        assert!(err.to_string().contains("1.3.6.1.2.1.2.2.1.2"), "{err}");
    }

    #[tokio::test]
    async fn a_walk_of_ever_heavier_rows_is_refused_before_it_fills_memory() {
        // One 8 KiB row an answer: the row limit alone would let this grow to 512 MiB.
        let port = fake_agent_reading(|request| {
            let (name, _) = request.varbinds.clone().next().unwrap();
            let mut next = ber::arcs(&name).unwrap();
            match next.len() {
                10 => next.push(1),
                _ => *next.last_mut().unwrap() += 1,
            }
            let pdu = ber::pdu(
                tag::RESPONSE,
                request.req_id,
                &[(next, SetValue::OctetString(vec![b'x'; 8192]))],
            )
            .unwrap();
            ber::community_message(1, b"c", &pdu).to_vec()
        })
        .await;
        let agent = v2c_agent(port);
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(20))
            .await
            .unwrap();
        let err = session
            .walk(&vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("32 MiB"), "{err}");
    }

    /// An SNMPv1 agent with a column of rows `1, 3, 40` (and what follows the
    /// column): answers each GetNext object with its successor.
    fn v1_column_agent(request: &snmp2::Pdu<'_>) -> Vec<u8> {
        let column: Oid = vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 2];
        let rows: Vec<Oid> = [1u32, 3, 40]
            .iter()
            .map(|n| [column.as_slice(), &[*n]].concat())
            .collect();
        let after: Oid = vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1];
        let binds: Vec<(Oid, SetValue)> = request
            .varbinds
            .clone()
            .map(|(name, _)| {
                let asked = ber::arcs(&name).unwrap();
                let next = rows
                    .iter()
                    .find(|r| **r > asked)
                    .cloned()
                    .unwrap_or_else(|| after.clone());
                let value = next.last().copied().unwrap_or(0);
                (next, SetValue::Integer(i64::from(value)))
            })
            .collect();
        let pdu = ber::pdu(tag::RESPONSE, request.req_id, &binds).unwrap();
        ber::community_message(0, b"c", &pdu).to_vec()
    }

    #[tokio::test]
    async fn a_v1_walk_of_a_column_reads_32_rows_an_exchange() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            let mut seen = 0u32;
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await
            {
                seen += 1;
                let request = snmp2::Pdu::from_bytes(&buf[..n]).unwrap();
                socket
                    .send_to(&v1_column_agent(&request), from)
                    .await
                    .unwrap();
            }
            seen
        });
        let agent = Agent::new(
            "127.0.0.1",
            port,
            Credentials::Community {
                version: Version::V1,
                community: Secret::new("c"),
            },
            Duration::from_millis(200),
        );
        let mut session = agent
            .session(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let rows = session
            .walk(&vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 2])
            .await
            .unwrap();
        let indexes: Vec<u32> = rows.iter().map(|(n, _)| *n.last().unwrap()).collect();
        assert_eq!(indexes, [1, 3, 40]);
        drop(session);
        // Rows 1 and 3 in the first exchange, 40 (past index 31) in the second, and
        // the end of the column in both.
        assert_eq!(task.await.unwrap(), 2);
    }

    #[test]
    fn a_getbulk_request_is_what_snmp2_reads_as_one() {
        let pdu = bulk_request();
        let message = ber::community_message(1, b"c", &pdu);
        let parsed = snmp2::Pdu::from_bytes(&message).unwrap();
        assert_eq!(parsed.message_type, snmp2::MessageType::GetBulkRequest);
        assert_eq!(parsed.req_id, 42);
    }

    fn bulk_request() -> Vec<u8> {
        ber::bulk_pdu(
            42,
            WALK_REPETITIONS,
            &[(vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 2], SetValue::Null)],
        )
        .unwrap()
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
        let err = reboot_outlet(&mut session).await;
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
        assert!(
            session.exchange.refused(),
            "the first read met ICMP port unreachable"
        );
        let err = reboot_outlet(&mut session).await;
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
        let err = reboot_outlet(&mut session).await;
        assert!(err.to_string().contains("not sent again"), "{err}");
        drop(session);
        assert_eq!(
            agent_task.await.unwrap(),
            1,
            "the reboot was sent exactly once"
        );
    }
}
