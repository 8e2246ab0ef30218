//! The manager's side of SNMP request/response exchanges as a sans-IO state machine
//! (quinn-proto style, as `ipmi`'s RMCP+ session): it is fed datagrams
//! ([`Exchange::handle_datagram`]) and time ([`Exchange::handle_timeout`]), and
//! hands back datagrams to send ([`Exchange::poll_transmit`]), the next instant it
//! wants to be woken ([`Exchange::poll_timeout`]) and each request's outcome
//! ([`Exchange::poll_outcome`]). No socket and no clock inside: the driver
//! ([`crate::driver`]) and the tests bring both.
//!
//! One request at a time, all ending by one deadline. A request is sent again after
//! each per-request timeout, stale answers (another request id) are skipped, and
//! SNMPv3 first learns the agent's engine (RFC 3414 §4 discovery) and resynchronises
//! its clock on usmStatsNotInTimeWindows / usmStatsUnknownEngineIDs (twice at most).
//!
//! The rule for writes that must not happen twice ([`Resend::Never`], an outlet
//! reboot) lives here, once: once such a request has left, it is never sent again,
//! whatever comes back — not after silence, not after an ICMP refusal (which may
//! belong to an earlier datagram), not after a Report (read unauthenticated, so no
//! proof that the write was not carried out).
//!
//! SNMPv3 answers are trusted as far as they are authenticated (RFC 3414 §3.2). An
//! answer that fails its authentication check or cannot be decrypted or read is
//! discarded and the request waits on, as v1/v2c skip garbage. A Report about the
//! request (usmStatsWrongDigests, usmStatsUnknownUserNames, ...) comes
//! unauthenticated by nature, so one alone does not end the request: it is
//! remembered, and ends it when the agent answers a later try of ours with the same
//! Report (a wrong pass phrase is told after one more try, not at the deadline),
//! when the request may not be sent again, or at the deadline. One forged or
//! corrupted datagram thus never ends a fence. Discovery (RFC 3414 §4) and the
//! clock resynchronisation still take Reports at their word, as net-snmp does: no
//! keys exist yet to check them by, and what they set is checked by the next
//! authenticated answer.

use std::time::Duration;

use fencekit_core::{DeviceError, Instant};
use zeroize::Zeroizing;

use crate::ber::{self, tag, Oid, ReportKind, SetValue};
use crate::credentials::{Credentials, SecLevel, Usm, Version};
use crate::message::{community_response, Response};
use crate::usm::{report_error, Engine, Reply};

#[cfg(test)]
mod tests;

/// Whether a request may be sent again when no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Reads, and writes that do the same thing twice (outlet on, outlet off).
    Safe,
    /// Writes that must not happen twice (outlet reboot).
    Never,
}

/// The request PDUs a manager sends (RFC 3416 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduKind {
    Get,
    GetNext,
    /// GetBulkRequest (SNMPv2c and v3) with this many repetitions.
    GetBulk(u16),
    Set,
}

impl PduKind {
    fn tag(self) -> u8 {
        match self {
            PduKind::Get => tag::GET,
            PduKind::GetNext => tag::GET_NEXT,
            PduKind::GetBulk(_) => tag::GET_BULK,
            PduKind::Set => tag::SET,
        }
    }
}

/// One request: its PDU and whether it may be sent twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: PduKind,
    pub binds: Vec<(Oid, SetValue)>,
    pub resend: Resend,
}

impl Request {
    /// A GetRequest for these objects (always [`Resend::Safe`]).
    pub fn get(names: &[Oid]) -> Request {
        Request {
            kind: PduKind::Get,
            binds: names.iter().map(|n| (n.clone(), SetValue::Null)).collect(),
            resend: Resend::Safe,
        }
    }

    /// A GetNextRequest for one object (always [`Resend::Safe`]).
    pub fn get_next(name: &Oid) -> Request {
        Request {
            kind: PduKind::GetNext,
            binds: vec![(name.clone(), SetValue::Null)],
            resend: Resend::Safe,
        }
    }

    /// A GetNextRequest for several objects at once: each answered with its own
    /// successor (always [`Resend::Safe`]).
    pub fn get_next_each(names: &[Oid]) -> Request {
        Request {
            kind: PduKind::GetNext,
            binds: names.iter().map(|n| (n.clone(), SetValue::Null)).collect(),
            resend: Resend::Safe,
        }
    }

    /// A GetBulkRequest for the `max_repetitions` objects after `name` (always
    /// [`Resend::Safe`]; SNMPv2c and v3 only).
    pub fn get_bulk(name: &Oid, max_repetitions: u16) -> Request {
        Request {
            kind: PduKind::GetBulk(max_repetitions),
            binds: vec![(name.clone(), SetValue::Null)],
            resend: Resend::Safe,
        }
    }

    /// A SetRequest.
    pub fn set(binds: &[(Oid, SetValue)], resend: Resend) -> Request {
        Request {
            kind: PduKind::Set,
            binds: binds.to_vec(),
            resend,
        }
    }
}

/// Where the agent is and how long each try waits: what the exchange needs to know
/// before it starts.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The host as configured (for credential errors: "user X on HOST").
    pub host: String,
    /// `host:port` (`[v6]:port`), for every other message.
    pub endpoint: String,
    pub credentials: Credentials,
    /// How long one try waits for its answer before the request is sent again.
    pub request_timeout: Duration,
}

/// Which datagram is out and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// RFC 3414 §4 engine discovery (a read: sent again freely).
    Discovery,
    /// The request itself.
    Request,
}

/// The datagram of the current step, sent and sent again.
struct Flight {
    purpose: Purpose,
    id: i32,
    message: Zeroizing<Vec<u8>>,
    /// How often this message left. Once it has, a [`Resend::Never`] request is
    /// never sent again.
    left: u32,
    /// When the current try gives up waiting (never after the deadline).
    try_end: Instant,
}

/// The exchanges of one operation with one agent.
pub struct Exchange {
    peer: Peer,
    deadline: Instant,
    started: Instant,
    engine: Option<Engine>,
    next_id: i32,
    /// Datagrams that left, over the whole operation (for the no-answer message).
    sent: u32,
    /// An ICMP port unreachable was seen: nothing listens (yet).
    refused: bool,
    request: Option<Request>,
    resyncs: u32,
    /// A Report the agent sent about the current request, not yet confirmed, and
    /// `sent` when it came: a later try answered by the same Report confirms it.
    reported: Option<(ReportKind, u32)>,
    /// SNMPv3 answers to the current request discarded because they failed their
    /// authentication check or could not be decrypted or read.
    discarded: u32,
    flight: Option<Flight>,
    transmit: Option<Zeroizing<Vec<u8>>>,
    outcome: Option<Result<Response, DeviceError>>,
}

impl std::fmt::Debug for Exchange {
    // The engine holds keys: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("peer", &self.peer)
            .field("sent", &self.sent)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// An exchange that ends by `deadline`. `engine` is the SNMPv3 engine learnt by
    /// an earlier operation (discovery is skipped while it stays valid);
    /// `first_id` the first request id (the driver picks one two processes are
    /// unlikely to share).
    pub fn new(
        peer: Peer,
        engine: Option<Engine>,
        first_id: i32,
        now: Instant,
        deadline: Instant,
    ) -> Exchange {
        Exchange {
            peer,
            deadline,
            started: now,
            engine,
            next_id: first_id & 0x7fff_ffff,
            sent: 0,
            refused: false,
            request: None,
            resyncs: 0,
            reported: None,
            discarded: 0,
            flight: None,
            transmit: None,
            outcome: None,
        }
    }

    /// Starts a request; an unfinished one is dropped (its late answers are then
    /// stale, skipped by request id).
    pub fn start(&mut self, request: Request, now: Instant) {
        self.request = Some(request);
        self.resyncs = 0;
        self.reported = None;
        self.discarded = 0;
        self.flight = None;
        self.transmit = None;
        self.outcome = None;
        self.begin(now);
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.transmit.take()
    }

    /// When [`Exchange::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        self.flight.as_ref().map(|f| f.try_end)
    }

    /// The finished request's answer or why it failed.
    pub fn poll_outcome(&mut self) -> Option<Result<Response, DeviceError>> {
        self.outcome.take()
    }

    /// The SNMPv3 engine as now known, for the next operation.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Datagrams that left so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether an ICMP port unreachable was seen.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The datagram last handed out did not leave: the socket reported the pending
    /// error of an earlier datagram (ICMP port unreachable) instead of sending it.
    /// It is sent again when the try ends, also for a [`Resend::Never`] request,
    /// since this one never left.
    pub fn handle_unsent(&mut self, _now: Instant) {
        self.refused = true;
        self.sent = self.sent.saturating_sub(1);
        if let Some(flight) = self.flight.as_mut() {
            flight.left = flight.left.saturating_sub(1);
        }
    }

    /// The socket reported an ICMP port unreachable: nothing listens. Kept trying
    /// until the deadline (an agent may be restarting), at the normal pace.
    pub fn handle_refused(&mut self, _now: Instant) {
        self.refused = true;
    }

    /// Time passed: a try whose time is up is sent again (or the request fails).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        if self.flight.as_ref().is_some_and(|f| now >= f.try_end) {
            self.send(now);
        }
    }

    /// A datagram from the agent.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let id = flight.id;
        match (flight.purpose, &self.peer.credentials) {
            (Purpose::Discovery, Credentials::Usm(usm)) => {
                let usm = usm.clone();
                self.discovered(now, bytes, id, &usm);
            }
            (Purpose::Discovery, Credentials::Community { .. }) => {}
            (Purpose::Request, Credentials::Community { .. }) => {
                if let Some(response) = community_response(bytes, id) {
                    self.finish(Ok(response));
                }
                // Anything else is a stale answer to an earlier try, or garbage.
            }
            (Purpose::Request, Credentials::Usm(_)) => self.v3_answer(now, bytes, id),
        }
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) & 0x7fff_ffff;
        id
    }

    fn finish(&mut self, outcome: Result<Response, DeviceError>) {
        self.flight = None;
        self.transmit = None;
        self.outcome = Some(outcome);
    }

    fn resend_rule(&self) -> Resend {
        self.request.as_ref().map_or(Resend::Safe, |r| r.resend)
    }

    /// Puts the current request (or the discovery it first needs) in flight.
    fn begin(&mut self, now: Instant) {
        let Some(request) = self.request.clone() else {
            return;
        };
        let usm = match &self.peer.credentials {
            Credentials::Usm(usm) if self.engine.is_none() => Some(usm.clone()),
            _ => None,
        };
        if usm.is_some() {
            let id = self.take_id();
            let Some(pdu) = ber::pdu(tag::GET, id, &[]) else {
                return self.finish(Err(DeviceError::Failed("cannot encode discovery".into())));
            };
            let message = ber::v3_plain_message(id, ber::FLAG_REPORTABLE, &[], 0, 0, &[], &pdu);
            return self.fly(Purpose::Discovery, id, Zeroizing::new(message), now);
        }
        let id = self.take_id();
        let pdu = match request.kind {
            PduKind::GetBulk(repetitions) => ber::bulk_pdu(id, repetitions, &request.binds),
            kind => ber::pdu(kind.tag(), id, &request.binds),
        };
        let Some(pdu) = pdu else {
            return self.finish(Err(DeviceError::Failed(
                "cannot encode an object identifier".into(),
            )));
        };
        let message = match (&self.peer.credentials, &self.engine) {
            (Credentials::Community { version, community }, _) => {
                let version = if *version == Version::V1 { 0 } else { 1 };
                ber::community_message(version, community.expose().as_bytes(), &pdu)
            }
            (Credentials::Usm(usm), Some(engine)) => {
                match engine.encode(id, &usm.user, &pdu, now) {
                    Ok(message) => Zeroizing::new(message),
                    Err(e) => return self.finish(Err(e)),
                }
            }
            (Credentials::Usm(_), None) => return,
        };
        self.fly(Purpose::Request, id, message, now);
    }

    fn fly(&mut self, purpose: Purpose, id: i32, message: Zeroizing<Vec<u8>>, now: Instant) {
        self.flight = Some(Flight {
            purpose,
            id,
            message,
            left: 0,
            try_end: now,
        });
        self.send(now);
    }

    /// Sends the flight's message (again), unless the deadline has passed or the
    /// request must not be sent twice and already left.
    fn send(&mut self, now: Instant) {
        if now >= self.deadline {
            let error = match self.reported {
                Some((kind, _)) => self.report_error(kind),
                None => self.no_answer(now),
            };
            return self.finish(Err(error));
        }
        let never = self.resend_rule() == Resend::Never;
        let Some(flight) = self.flight.as_mut() else {
            return;
        };
        if flight.left > 0 && never && flight.purpose == Purpose::Request {
            if let Some((kind, _)) = self.reported {
                let error = self.report_error(kind);
                return self.finish(Err(error));
            }
            let error = DeviceError::TimedOut(format!(
                "no SNMP answer from {} to a command that must not be sent twice; \
                 it may have been carried out: read the outlet before trying again",
                self.peer.endpoint
            ));
            return self.finish(Err(error));
        }
        flight.left += 1;
        // Each try waits twice as long as the one before, up to four request
        // timeouts: an agent that is slow rather than deaf (a PDU's card busy, a
        // pass_persist program working through a GetBulk) is not sent ever more
        // copies of a request it is still working on, each one more to answer.
        let backoff = 1u32 << flight.left.saturating_sub(1).min(2);
        flight.try_end = std::cmp::min(now + self.peer.request_timeout * backoff, self.deadline);
        self.transmit = Some(flight.message.clone());
        self.sent += 1;
    }

    /// RFC 3414 §4: the agent's snmpEngineID (and boots/time, which net-snmp and
    /// APC cards put in the same Report).
    fn discovered(&mut self, now: Instant, bytes: &[u8], id: i32, usm: &Usm) {
        let Some(header) = ber::v3_header(bytes) else {
            return;
        };
        if header.msg_id != i64::from(id) {
            return;
        }
        if header.engine_id.is_empty() {
            let error = DeviceError::Protocol(format!(
                "{} answered SNMPv3 discovery without an engine ID",
                self.peer.endpoint
            ));
            return self.finish(Err(error));
        }
        match Engine::new(usm, &header.engine_id, header.boots, header.time, now) {
            Ok(engine) => {
                self.engine = Some(engine);
                self.begin(now);
            }
            Err(e) => self.finish(Err(e)),
        }
    }

    fn v3_answer(&mut self, now: Instant, bytes: &[u8], id: i32) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let Some((reply, clock)) = engine.classify(bytes, id, now) else {
            return;
        };
        if let Some(clock) = clock {
            // A new engine ID means a new agent (or a replaced card): discover again.
            if !engine.resync(&clock, now) {
                self.engine = None;
            }
        }
        let endpoint = &self.peer.endpoint;
        match reply {
            // RFC 3414 §3.2: discarded. The try waits on; the request is sent again
            // when it ends, or fails by its deadline.
            Err(e) => {
                self.discarded += 1;
                tracing::debug!(
                    endpoint = %endpoint,
                    "SNMPv3 answer discarded (failed its authentication check or could \
                     not be decrypted or read): {e}"
                );
            }
            Ok(Reply::Pdu(response)) => self.finish(Ok(response)),
            Ok(Reply::Report(ReportKind::NotInTimeWindow | ReportKind::UnknownEngineId))
                if self.resyncs < 2 && self.resend_rule() == Resend::Safe =>
            {
                self.resyncs += 1;
                tracing::debug!(endpoint = %endpoint, "SNMPv3 engine resynchronised");
                self.begin(now);
            }
            Ok(Reply::Report(kind)) => self.reported(kind),
        }
    }

    /// A Report that, taken at its word, ends the request. It is read
    /// unauthenticated, so one alone could be forged: it ends the request only when
    /// the agent answered a later try with the same Report; otherwise it is kept
    /// for when the request can go no further (a command that must not be sent
    /// twice, or the deadline).
    fn reported(&mut self, kind: ReportKind) {
        match self.reported {
            Some((earlier, at)) if earlier == kind => {
                // The same try's Report twice (a duplicate) confirms nothing.
                if at < self.sent {
                    let error = self.report_error(kind);
                    self.finish(Err(error));
                }
            }
            // The first Report, or another than before: the latest counts.
            _ => {
                tracing::warn!(
                    endpoint = %self.peer.endpoint,
                    report = ?kind,
                    "SNMPv3 agent answered with a Report; waiting for the request's next \
                     try to confirm it (Reports are not authenticated)"
                );
                self.reported = Some((kind, self.sent));
            }
        }
    }

    /// What a Report the request ends with says, for the operator.
    fn report_error(&self, kind: ReportKind) -> DeviceError {
        let endpoint = &self.peer.endpoint;
        // The agent says it discarded the request, but a Report is read
        // unauthenticated: it is no proof that a command that must not run twice
        // did not run. Never sent again.
        if self.resend_rule() == Resend::Never {
            return DeviceError::Protocol(format!(
                "{endpoint} answered a command that must not be sent twice with a Report \
                 ({kind:?}) instead of a Response; it was not sent again: read the outlet \
                 before trying again ({})",
                report_error(&self.peer.credentials, &self.peer.host, endpoint, kind)
            ));
        }
        report_error(&self.peer.credentials, &self.peer.host, endpoint, kind)
    }

    fn no_answer(&self, now: Instant) -> DeviceError {
        let endpoint = self.peer.endpoint.clone();
        let hint = if self.refused {
            "; nothing is listening there (ICMP port unreachable)".to_string()
        } else if matches!(
            &self.peer.credentials,
            Credentials::Usm(usm) if usm.level == SecLevel::AuthPriv
        ) {
            // net-snmp drops a request it cannot decrypt without a Report.
            "; check `ip` and `ipport`, and `snmp_priv_passwd` and `snmp_priv_prot`: an \
             agent stays silent when it cannot decrypt a request"
                .to_string()
        } else if self.peer.credentials.version() == Version::V3 {
            "; check `ip` and `ipport`".to_string()
        } else {
            "; an SNMPv1/v2c agent stays silent when the community is wrong, so check \
             `community` and `snmp_version` as well as `ip` and `ipport`"
                .to_string()
        };
        let discarded = if self.discarded > 0 {
            format!(
                "; {} SNMPv3 answers were discarded because they failed their \
                 authentication check or could not be decrypted (a corrupting link or \
                 forged datagrams)",
                self.discarded
            )
        } else {
            String::new()
        };
        DeviceError::NoAnswer {
            endpoint: endpoint.clone(),
            detail: format!(
                "no SNMP answer from {endpoint} within {:.1} s ({} requests sent){discarded}{hint}",
                now.saturating_duration_since(self.started).as_secs_f64(),
                self.sent
            ),
        }
    }
}
