//! The exchange against an in-memory agent: simulated time, seeded loss, reordering
//! and duplication, no sockets (quinn-proto's style of test, as `ipmi`'s session
//! tests). The agent here reads requests as an agent does — SNMPv3 ones through
//! `snmp2` with the user's keys, after its own time-window check — so a request
//! the exchange encodes wrongly is not answered.

use std::time::Duration;

use fencekit_core::{DeviceError, Instant, Secret};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snmp2::v3;

use super::*;
use crate::ber::{tag, SetValue};
use crate::credentials::{AuthProtocol, PrivProtocol, SecLevel, Usm, Version};
use crate::message::VarValue;

const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
const OUTLET: [u32; 16] = [1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 3, 3, 1, 1, 4, 1];
const ENGINE_ID: &[u8] = b"\x80\x00\x1f\x88\x80fencekit-test";
/// RFC 3414 §3.2: the time window.
const TIME_WINDOW: i64 = 150;

/// What the agent does to one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Reply,
    /// Carried out (a SET takes effect), the answer lost.
    Lose,
}

/// A request the agent read, as its log (the oracle) records it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Discovery,
    Get,
    GetNext,
    Set(i64),
    /// A request the agent refused with a Report (counter's last arc).
    Reported(u32),
}

/// The agent's user, as its configuration holds it.
struct AgentUser {
    name: &'static str,
    security: v3::Security,
}

/// An SNMP agent in memory.
struct TestAgent {
    community: &'static [u8],
    user: Option<AgentUser>,
    boots: i64,
    /// snmpEngineTime is `now - started` seconds.
    started: Instant,
    /// The value an outlet was last set to.
    outlet: i64,
    get: Answer,
    set: Answer,
    /// Each reply is sent this many times (a duplicating network or agent).
    copies: usize,
    log: Vec<Seen>,
}

impl TestAgent {
    fn community(now: Instant) -> TestAgent {
        TestAgent {
            community: b"private",
            user: None,
            boots: 1,
            started: now,
            outlet: 1,
            get: Answer::Reply,
            set: Answer::Reply,
            copies: 1,
            log: Vec::new(),
        }
    }

    /// An SNMPv3 agent with one authPriv user (SHA, AES-128).
    fn usm(now: Instant, user: &'static str, auth: &str, privacy: &str) -> TestAgent {
        let security = v3::Security::new(user.as_bytes(), auth.as_bytes())
            .with_auth_protocol(v3::AuthProtocol::Sha1)
            .with_auth(v3::Auth::AuthPriv {
                cipher: v3::Cipher::Aes128,
                privacy_password: privacy.as_bytes().to_vec(),
            })
            .with_engine_id(ENGINE_ID)
            .unwrap();
        TestAgent {
            user: Some(AgentUser {
                name: user,
                security,
            }),
            ..TestAgent::community(now)
        }
    }

    fn engine_time(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.started).as_secs()).unwrap()
    }

    /// The agent restarts: snmpEngineBoots goes up, its time starts again.
    fn reboot(&mut self, now: Instant) {
        self.boots += 1;
        self.started = now;
    }

    fn sets(&self) -> usize {
        self.log
            .iter()
            .filter(|s| matches!(s, Seen::Set(_)))
            .count()
    }

    fn handle(&mut self, now: Instant, bytes: &[u8]) -> Vec<Vec<u8>> {
        let reply = if self.user.is_some() {
            self.handle_v3(now, bytes)
        } else {
            self.handle_community(bytes)
        };
        reply.map(|r| vec![r; self.copies]).unwrap_or_default()
    }

    /// Carries out a request; `None` when its answer is to be lost.
    fn serve(&mut self, pdu: &snmp2::Pdu<'_>) -> Option<(u8, Vec<(Oid, SetValue)>)> {
        let names: Vec<Oid> = pdu
            .varbinds
            .clone()
            .map(|(name, _)| ber::arcs(&name).unwrap())
            .collect();
        let (seen, answer) = match pdu.message_type {
            snmp2::MessageType::GetRequest => (Seen::Get, self.get),
            snmp2::MessageType::GetNextRequest => (Seen::GetNext, self.get),
            snmp2::MessageType::SetRequest => {
                let value = match pdu.varbinds.clone().next() {
                    Some((_, snmp2::Value::Integer(n))) => n,
                    _ => 0,
                };
                self.outlet = value;
                (Seen::Set(value), self.set)
            }
            _ => return None,
        };
        self.log.push(seen);
        if answer == Answer::Lose {
            return None;
        }
        let value = if names.first() == Some(&OUTLET.to_vec()) {
            self.outlet
        } else {
            42
        };
        Some((
            tag::RESPONSE,
            names
                .into_iter()
                .map(|n| (n, SetValue::Integer(value)))
                .collect(),
        ))
    }

    fn handle_community(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let pdu = snmp2::Pdu::from_bytes(bytes).ok()?;
        // A wrong community is not answered (RFC 3584 §4.1: silently dropped).
        if pdu.community != self.community {
            return None;
        }
        let id = pdu.req_id;
        let (pdu_tag, binds) = self.serve(&pdu)?;
        let answer = ber::pdu(pdu_tag, id, &binds)?;
        Some(ber::community_message(1, self.community, &answer).to_vec())
    }

    /// A plaintext Report naming a usmStats counter, with the agent's clock.
    fn report(&mut self, now: Instant, id: i32, counter: u32) -> Vec<u8> {
        self.log.push(Seen::Reported(counter));
        self.report_message(now, id, counter)
    }

    /// The datagram of such a Report, as the agent sends it or anyone can forge it
    /// (it is not authenticated).
    fn report_message(&self, now: Instant, id: i32, counter: u32) -> Vec<u8> {
        let pdu = ber::pdu(
            tag::REPORT,
            id,
            &[(
                vec![1, 3, 6, 1, 6, 3, 15, 1, 1, counter, 0],
                SetValue::Integer(1),
            )],
        )
        .unwrap();
        let time = self.engine_time(now);
        ber::v3_plain_message(id, 0, ENGINE_ID, self.boots, time, b"", &pdu)
    }

    fn handle_v3(&mut self, now: Instant, bytes: &[u8]) -> Option<Vec<u8>> {
        let header = ber::v3_header(bytes)?;
        let id = i32::try_from(header.msg_id).ok()?;
        if header.engine_id.is_empty() {
            // Discovery (RFC 3414 §4).
            let report = self.report(now, id, 4);
            self.log.pop();
            self.log.push(Seen::Discovery);
            return Some(report);
        }
        if header.engine_id != ENGINE_ID {
            return Some(self.report(now, id, 4));
        }
        let user = self.user.as_ref()?;
        if header.user != user.name.as_bytes() {
            return Some(self.report(now, id, 3));
        }
        // RFC 3414 §3.2 step 7: outside the time window → usmStatsNotInTimeWindows.
        let time = self.engine_time(now);
        if header.boots != self.boots || (header.time - time).abs() > TIME_WINDOW {
            return Some(self.report(now, id, 2));
        }
        let mut security = user
            .security
            .clone()
            .with_engine_boots_and_time(self.boots, time);
        let copy = bytes.to_vec();
        let pdu = match snmp2::Pdu::from_bytes_with_security(&copy, Some(&mut security)) {
            Ok(pdu) => pdu,
            Err(snmp2::Error::AuthFailure(v3::AuthErrorKind::SignatureMismatch)) => {
                return Some(self.report(now, id, 5))
            }
            Err(_) => return Some(self.report(now, id, 6)),
        };
        let (pdu_tag, binds) = self.serve(&pdu)?;
        let user = self.user.as_ref()?;
        let answer = ber::pdu(pdu_tag, id, &binds)?;
        // A template for snmp2 to sign and encrypt, as the manager's side does:
        // boots/time 0 here (snmp2 reads others as a discovery answer), the real
        // ones from `security`.
        let template = ber::v3_plain_message(id, 0, ENGINE_ID, 0, 0, user.name.as_bytes(), &answer);
        let mut reader = v3::Security::new(b"", b"")
            .with_auth(v3::Auth::NoAuthNoPriv)
            .with_engine_id(ENGINE_ID)
            .ok()?;
        let parsed = snmp2::Pdu::from_bytes_with_security(&template, Some(&mut reader)).ok()?;
        parsed.to_bytes_with_security(Some(&security)).ok()
    }
}

/// The network between the two: loss, delay (which reorders) and a log of every
/// datagram the manager sent.
struct Net {
    rng: StdRng,
    /// Chance that a datagram in either direction is lost.
    loss: f64,
    /// Up to this much delay per datagram.
    jitter_ms: u64,
    /// Every datagram that left the manager: the oracle for "sent once".
    from_manager: usize,
    /// How many of the agent's next answers arrive with their last byte flipped
    /// (a corrupted or forged datagram).
    corrupt_replies: usize,
    /// The next this many SNMPv3 requests are answered first by a forged Report
    /// naming this usmStats counter (someone who saw the request), then by the
    /// agent.
    forged_reports: usize,
    forged_counter: u32,
    in_flight: Vec<(Instant, bool, Vec<u8>)>,
}

impl Net {
    fn new(seed: u64, loss: f64) -> Net {
        Net {
            rng: StdRng::seed_from_u64(seed),
            loss,
            jitter_ms: 30,
            from_manager: 0,
            corrupt_replies: 0,
            forged_reports: 0,
            forged_counter: 5,
            in_flight: Vec::new(),
        }
    }

    fn perfect() -> Net {
        Net {
            jitter_ms: 1,
            ..Net::new(0, 0.0)
        }
    }

    fn carry(&mut self, now: Instant, to_agent: bool, mut datagram: Vec<u8>) {
        if self.rng.random_bool(self.loss) {
            return;
        }
        if !to_agent && self.corrupt_replies > 0 {
            self.corrupt_replies -= 1;
            if let Some(last) = datagram.last_mut() {
                *last ^= 0x5a;
            }
        }
        let delay = Duration::from_millis(self.rng.random_range(1..=self.jitter_ms));
        self.in_flight.push((now + delay, to_agent, datagram));
    }

    /// Runs one request to its outcome; returns it and the simulated time it ended.
    fn run(
        &mut self,
        exchange: &mut Exchange,
        agent: &mut TestAgent,
        request: Request,
        start: Instant,
    ) -> (Result<Response, DeviceError>, Instant) {
        let mut now = start;
        exchange.start(request, now);
        for _ in 0..100_000 {
            while let Some(datagram) = exchange.poll_transmit() {
                self.from_manager += 1;
                self.carry(now, true, datagram.to_vec());
            }
            if let Some(outcome) = exchange.poll_outcome() {
                return (outcome, now);
            }
            let next = self
                .in_flight
                .iter()
                .map(|(t, _, _)| *t)
                .chain(exchange.poll_timeout())
                .min()
                .expect("a request in progress always has a wake-up");
            assert!(next >= now, "time never runs backwards");
            now = next;
            self.in_flight.sort_by_key(|(t, _, _)| *t);
            let due: Vec<_> = self
                .in_flight
                .iter()
                .filter(|(t, _, _)| *t <= now)
                .cloned()
                .collect();
            self.in_flight.retain(|(t, _, _)| *t > now);
            for (_, to_agent, datagram) in due {
                if to_agent {
                    let header = ber::v3_header(&datagram)
                        .filter(|h| !h.engine_id.is_empty() && self.forged_reports > 0);
                    if let Some(id) = header.and_then(|h| i32::try_from(h.msg_id).ok()) {
                        self.forged_reports -= 1;
                        let forged = agent.report_message(now, id, self.forged_counter);
                        exchange.handle_datagram(now, &forged);
                    }
                    for reply in agent.handle(now, &datagram) {
                        self.carry(now, false, reply);
                    }
                } else {
                    exchange.handle_datagram(now, &datagram);
                }
            }
            exchange.handle_timeout(now);
        }
        panic!("the exchange did not end");
    }
}

fn peer(credentials: Credentials) -> Peer {
    Peer {
        host: "pdu1".into(),
        endpoint: "pdu1:161".into(),
        credentials,
        request_timeout: Duration::from_secs(1),
    }
}

fn v2c(community: &str) -> Credentials {
    Credentials::Community {
        version: Version::V2c,
        community: Secret::new(community),
    }
}

fn v3(user: &str, auth: &str, privacy: &str) -> Credentials {
    Credentials::Usm(Usm {
        user: user.into(),
        level: SecLevel::AuthPriv,
        auth: AuthProtocol::Sha1,
        auth_pass: Some(Secret::new(auth)),
        privacy: PrivProtocol::Aes128,
        priv_pass: Some(Secret::new(privacy)),
    })
}

fn exchange(credentials: Credentials, now: Instant, seconds: u64) -> Exchange {
    Exchange::new(
        peer(credentials),
        None,
        1000,
        now,
        now + Duration::from_secs(seconds),
    )
}

/// A perfect network, an agent whose user is alice, and an exchange logged in as
/// her that ends `seconds` after `start`.
fn alice(start: Instant, seconds: u64) -> (Net, TestAgent, Exchange) {
    (
        Net::perfect(),
        TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass"),
        exchange(
            v3("alice", "alice-auth-pass", "alice-priv-pass"),
            start,
            seconds,
        ),
    )
}

fn uptime() -> Request {
    Request::get(&[SYS_UPTIME.to_vec()])
}

fn reboot_outlet() -> Request {
    Request::set(&[(OUTLET.to_vec(), SetValue::Integer(3))], Resend::Never)
}

fn value(outcome: &Result<Response, DeviceError>) -> Option<&VarValue> {
    outcome.as_ref().ok()?.binds.first().map(|(_, v)| v)
}

#[test]
fn a_get_over_a_lossy_reordering_network_is_answered_by_the_deadline() {
    let start = Instant::now();
    let mut answered = 0;
    for seed in 0..100 {
        let mut net = Net::new(seed, 0.3);
        net.jitter_ms = 400;
        let mut agent = TestAgent::community(start);
        let mut exchange = exchange(v2c("private"), start, 10);
        let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), start);
        assert!(end <= start + Duration::from_secs(10), "seed {seed}");
        match outcome {
            Ok(response) => {
                assert_eq!(response.binds[0].1, VarValue::Integer(42), "seed {seed}");
                answered += 1;
            }
            Err(DeviceError::NoAnswer { .. }) => {}
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    // 30% loss each way: a try is answered about half the time, ten tries each.
    assert!(answered >= 95, "{answered} of 100 answered");
}

#[test]
fn an_authpriv_get_over_a_lossy_reordering_network_is_answered() {
    let start = Instant::now();
    for seed in 0..10 {
        let mut net = Net::new(seed, 0.2);
        net.jitter_ms = 300;
        let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
        let mut exchange = exchange(v3("alice", "alice-auth-pass", "alice-priv-pass"), start, 20);
        let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), start);
        assert_eq!(value(&outcome), Some(&VarValue::Integer(42)), "seed {seed}");
        assert_eq!(agent.log.first(), Some(&Seen::Discovery), "seed {seed}");
    }
}

#[test]
fn a_set_whose_reply_was_lost_is_never_sent_twice() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::community(start);
    agent.set = Answer::Lose;
    let mut exchange = exchange(v2c("private"), start, 10);
    let (outcome, end) = net.run(&mut exchange, &mut agent, reboot_outlet(), start);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeviceError::TimedOut(_)), "{err:?}");
    assert!(
        err.to_string().contains("may have been carried out"),
        "{err}"
    );
    assert_eq!(agent.sets(), 1, "the agent saw the reboot once");
    assert_eq!(net.from_manager, 1, "one datagram left the manager");
    assert_eq!(agent.outlet, 3, "it was carried out");
    // Given up when the one try ended, not at the deadline.
    assert_eq!(end, start + Duration::from_secs(1));
}

#[test]
fn a_set_is_never_sent_twice_over_any_lossy_network() {
    let start = Instant::now();
    for seed in 0..200 {
        let mut net = Net::new(seed, 0.5);
        let mut agent = TestAgent::community(start);
        let mut exchange = exchange(v2c("private"), start, 10);
        let (outcome, _) = net.run(&mut exchange, &mut agent, reboot_outlet(), start);
        assert_eq!(net.from_manager, 1, "seed {seed}: sent once");
        assert!(agent.sets() <= 1, "seed {seed}");
        if outcome.is_ok() {
            assert_eq!(
                agent.sets(),
                1,
                "seed {seed}: success means it was carried out"
            );
        }
    }
}

#[test]
fn a_get_whose_reply_was_lost_is_sent_again_after_the_request_timeout() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::community(start);
    agent.get = Answer::Lose;
    let mut exchange = exchange(v2c("private"), start, 10);
    let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeviceError::NoAnswer { .. }), "{err:?}");
    assert!(err.to_string().contains("4 requests sent"), "{err}");
    // Tries of 1, 2, 4 and 4 s (at most four request timeouts): sent at 0, 1, 3
    // and 7 s.
    assert_eq!(
        agent.log,
        vec![Seen::Get; 4],
        "tries twice as long each time"
    );
    assert_eq!(end, start + Duration::from_secs(10), "ends at the deadline");
}

#[test]
fn an_idempotent_set_is_sent_again_and_succeeds_once_answered() {
    let start = Instant::now();
    for seed in 0..50 {
        let mut net = Net::new(seed, 0.4);
        let mut agent = TestAgent::community(start);
        // 40% of datagrams lost each way: a try gets through one time in three; with
        // tries of up to 4 s, 90 s hold 24 of them.
        let mut exchange = exchange(v2c("private"), start, 90);
        let off = Request::set(&[(OUTLET.to_vec(), SetValue::Integer(2))], Resend::Safe);
        let (outcome, _) = net.run(&mut exchange, &mut agent, off, start);
        outcome.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(agent.outlet, 2);
    }
}

#[test]
fn duplicated_and_stale_replies_are_skipped_and_each_request_takes_its_own() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::community(start);
    agent.copies = 3;
    let mut exchange = exchange(v2c("private"), start, 10);
    let (first, now) = net.run(
        &mut exchange,
        &mut agent,
        Request::get(&[OUTLET.to_vec()]),
        start,
    );
    assert_eq!(value(&first), Some(&VarValue::Integer(1)));
    // The two other copies of the first answer are still on their way while the
    // outlet is switched: its Response must be the SET's, not a copy of the GET's.
    let off = Request::set(&[(OUTLET.to_vec(), SetValue::Integer(2))], Resend::Safe);
    let (second, now) = net.run(&mut exchange, &mut agent, off, now);
    assert_eq!(value(&second), Some(&VarValue::Integer(2)));
    let (third, _) = net.run(
        &mut exchange,
        &mut agent,
        Request::get(&[OUTLET.to_vec()]),
        now,
    );
    assert_eq!(value(&third), Some(&VarValue::Integer(2)));
    assert_eq!(net.from_manager, 3, "no request was sent twice");
}

#[test]
fn a_late_answer_to_an_earlier_try_is_taken_as_an_answer_to_that_request_only() {
    let start = Instant::now();
    let mut exchange = exchange(v2c("private"), start, 10);
    exchange.start(uptime(), start);
    let first = exchange.poll_transmit().unwrap();
    let first_id = snmp2::Pdu::from_bytes(&first).unwrap().req_id;
    let answer = |id: i32, n: i64| {
        let pdu = ber::pdu(
            tag::RESPONSE,
            id,
            &[(SYS_UPTIME.to_vec(), SetValue::Integer(n))],
        )
        .unwrap();
        ber::community_message(1, b"private", &pdu).to_vec()
    };
    // Garbage and an answer to another id change nothing.
    exchange.handle_datagram(start, b"\x30\x03\x02\x01");
    exchange.handle_datagram(start, &answer(first_id.wrapping_add(7), 1));
    assert!(exchange.poll_outcome().is_none());
    // The try times out: the same request is sent again (same id, same bytes).
    let later = start + Duration::from_secs(1);
    assert_eq!(exchange.poll_timeout(), Some(later));
    exchange.handle_timeout(later);
    assert_eq!(
        exchange.poll_transmit().map(|d| d.to_vec()),
        Some(first.to_vec())
    );
    exchange.handle_datagram(later, &answer(first_id, 5));
    let response = exchange.poll_outcome().unwrap().unwrap();
    assert_eq!(response.binds[0].1, VarValue::Integer(5));
    assert_eq!(exchange.poll_timeout(), None, "nothing left to wait for");
}

#[test]
fn a_wrong_community_is_told_apart_from_a_wrong_address_only_by_a_hint() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::community(start);
    let mut exchange = exchange(v2c("public"), start, 3);
    let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("check `community`"), "{err}");
    assert!(
        !err.contains("public"),
        "the community is never shown: {err}"
    );
}

#[test]
fn a_datagram_the_socket_did_not_send_is_sent_when_its_try_ends_even_for_a_set() {
    let start = Instant::now();
    let mut exchange = exchange(v2c("private"), start, 10);
    exchange.start(reboot_outlet(), start);
    assert!(exchange.poll_transmit().is_some());
    // The kernel returned an earlier datagram's ICMP error instead of sending.
    exchange.handle_unsent(start);
    assert!(exchange.refused());
    let later = start + Duration::from_secs(1);
    exchange.handle_timeout(later);
    assert!(
        exchange.poll_transmit().is_some(),
        "the reboot never left, so it is sent"
    );
    // That one left; its answer is lost: never a third time.
    exchange.handle_timeout(later + Duration::from_secs(1));
    assert!(exchange.poll_transmit().is_none());
    let err = exchange.poll_outcome().unwrap().unwrap_err();
    assert!(
        err.to_string().contains("may have been carried out"),
        "{err}"
    );
}

#[test]
fn an_icmp_refusal_after_a_set_left_does_not_make_it_sent_again() {
    let start = Instant::now();
    let mut exchange = exchange(v2c("private"), start, 10);
    exchange.start(reboot_outlet(), start);
    assert!(exchange.poll_transmit().is_some());
    // An ICMP port unreachable may belong to an earlier datagram: no proof.
    exchange.handle_refused(start + Duration::from_millis(10));
    exchange.handle_timeout(start + Duration::from_secs(1));
    assert!(exchange.poll_transmit().is_none());
    let err = exchange.poll_outcome().unwrap().unwrap_err();
    assert!(matches!(err, DeviceError::TimedOut(_)), "{err:?}");
}

#[test]
fn snmpv3_discovers_the_engine_then_sends_the_request_with_the_users_keys() {
    let start = Instant::now();
    let (mut net, mut agent, mut exchange) = alice(start, 10);
    let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
    assert_eq!(value(&outcome), Some(&VarValue::Integer(42)));
    assert_eq!(agent.log, vec![Seen::Discovery, Seen::Get]);
    // The engine is kept: the next request goes straight out.
    let (outcome, _) = net.run(&mut exchange, &mut agent, reboot_outlet(), now);
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(agent.log, vec![Seen::Discovery, Seen::Get, Seen::Set(3)]);
}

#[test]
fn an_engine_learnt_minutes_ago_stays_in_the_time_window() {
    let start = Instant::now();
    let (mut net, mut agent, mut first) = alice(start, 10);
    let (outcome, _) = net.run(&mut first, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    // A later operation, ten minutes on, with the engine the first one learnt.
    let later = start + Duration::from_secs(600);
    let mut second = Exchange::new(
        peer(v3("alice", "alice-auth-pass", "alice-priv-pass")),
        first.engine().cloned(),
        2000,
        later,
        later + Duration::from_secs(10),
    );
    let (outcome, _) = net.run(&mut second, &mut agent, reboot_outlet(), later);
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        agent.log,
        vec![Seen::Discovery, Seen::Get, Seen::Set(3)],
        "no Report: the engine time sent was the agent's as it is now"
    );
}

#[test]
fn a_time_window_report_resynchronises_and_a_get_is_sent_again() {
    let start = Instant::now();
    let (mut net, mut agent, mut exchange) = alice(start, 30);
    let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    // The agent restarts: our boots are stale.
    agent.reboot(now);
    let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), now);
    assert_eq!(value(&outcome), Some(&VarValue::Integer(42)));
    assert_eq!(
        agent.log[2..],
        [Seen::Reported(2), Seen::Get],
        "usmStatsNotInTimeWindows, then the read with the agent's new clock"
    );
}

#[test]
fn a_set_answered_by_a_time_window_report_is_not_sent_again() {
    let start = Instant::now();
    let (mut net, mut agent, mut exchange) = alice(start, 30);
    let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    agent.reboot(now);
    let (outcome, _) = net.run(&mut exchange, &mut agent, reboot_outlet(), now);
    let err = outcome.unwrap_err();
    assert!(err.to_string().contains("not sent again"), "{err}");
    assert_eq!(agent.log[2..], [Seen::Reported(2)]);
    assert_eq!(net.from_manager, 3, "discovery, read, and the reboot once");
}

#[test]
fn a_new_engine_id_means_discovery_again() {
    let start = Instant::now();
    let (mut net, mut agent, mut first) = alice(start, 10);
    let (outcome, now) = net.run(&mut first, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    // An engine learnt from another card at this address.
    let other = Usm {
        user: "alice".into(),
        level: SecLevel::AuthPriv,
        auth: AuthProtocol::Sha1,
        auth_pass: Some(Secret::new("alice-auth-pass")),
        privacy: PrivProtocol::Aes128,
        priv_pass: Some(Secret::new("alice-priv-pass")),
    };
    let stale = Engine::new(&other, b"\x80\x00\x00\x00\x01old-card", 7, 9000, now).unwrap();
    let mut second = Exchange::new(
        peer(v3("alice", "alice-auth-pass", "alice-priv-pass")),
        Some(stale),
        5000,
        now,
        now + Duration::from_secs(10),
    );
    agent.log.clear();
    let (outcome, _) = net.run(&mut second, &mut agent, uptime(), now);
    assert_eq!(value(&outcome), Some(&VarValue::Integer(42)));
    assert_eq!(
        agent.log,
        [Seen::Reported(4), Seen::Discovery, Seen::Get],
        "usmStatsUnknownEngineIDs, discovery, then the read"
    );
}

#[test]
fn a_corrupted_v3_answer_is_dropped_and_the_request_answered_by_a_good_one() {
    // RFC 3414: a message whose authentication fails is discarded. One bad datagram
    // (line noise, or one forged packet) must not end a fence as a wrong pass phrase.
    for corrupted in 1..=3 {
        let start = Instant::now();
        let mut net = Net::perfect();
        let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
        let mut exchange = exchange(v3("alice", "alice-auth-pass", "alice-priv-pass"), start, 10);
        // Discovery first, uncorrupted; then the answers to the request.
        let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), start);
        assert_eq!(value(&outcome), Some(&VarValue::Integer(42)));
        net.corrupt_replies = corrupted;
        let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), start);
        assert_eq!(
            value(&outcome),
            Some(&VarValue::Integer(42)),
            "{corrupted} corrupted: {outcome:?}"
        );
        assert!(end <= start + Duration::from_secs(10));
    }
}

#[test]
fn a_wrong_authentication_pass_phrase_is_named_as_such() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
    let mut exchange = exchange(v3("alice", "not-the-pass", "alice-priv-pass"), start, 10);
    let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("usmStatsWrongDigests"), "{err}");
    assert!(err.to_string().contains("`password`"), "{err}");
    assert!(!err.to_string().contains("not-the-pass"), "{err}");
    // One Report could be forged: the agent's answer to the next try confirms it.
    assert_eq!(agent.log[1..], [Seen::Reported(5), Seen::Reported(5)]);
    assert!(
        end < start + Duration::from_secs(2),
        "told after the second try, not at the deadline"
    );
}

#[test]
fn a_forged_report_of_another_kind_does_not_mask_the_agents_own() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
    let mut exchange = exchange(v3("alice", "not-the-pass", "alice-priv-pass"), start, 10);
    net.forged_reports = 1;
    net.forged_counter = 3;
    let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("usmStatsWrongDigests"), "{err}");
    assert!(end < start + Duration::from_secs(2), "after the second try");
}

#[test]
fn one_forged_report_never_ends_a_v3_request_the_agent_answers() {
    // usmStatsNotInTimeWindows, UnknownUserNames, WrongDigests, DecryptionErrors.
    for counter in [2, 3, 5, 6] {
        for request in [uptime(), reboot_outlet()] {
            let start = Instant::now();
            let (mut net, mut agent, mut exchange) = alice(start, 10);
            let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
            assert!(outcome.is_ok(), "{outcome:?}");
            net.forged_reports = 1;
            net.forged_counter = counter;
            let never = request.resend == Resend::Never;
            let (outcome, end) = net.run(&mut exchange, &mut agent, request, now);
            assert!(
                outcome.is_ok(),
                "counter {counter}, never {never}: {outcome:?}"
            );
            assert!(
                end < now + Duration::from_secs(1),
                "answered by the agent at once"
            );
            if never {
                assert_eq!(agent.sets(), 1, "the reboot was sent once");
            }
        }
    }
}

#[test]
fn a_report_on_a_reboot_that_is_not_answered_otherwise_ends_it_when_its_try_ends() {
    let start = Instant::now();
    let (mut net, mut agent, mut exchange) = alice(start, 30);
    let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    // The agent carries the reboot out and its answer is lost; a Report comes.
    agent.set = Answer::Lose;
    net.forged_reports = 1;
    let (outcome, end) = net.run(&mut exchange, &mut agent, reboot_outlet(), now);
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("not sent again"), "{err}");
    assert!(err.contains("usmStatsWrongDigests"), "{err}");
    assert_eq!(agent.sets(), 1, "never sent twice");
    assert!(
        end <= now + Duration::from_millis(1010),
        "ended with its one try"
    );
}

#[test]
fn answers_that_never_pass_authentication_end_at_the_deadline_saying_so() {
    let start = Instant::now();
    let (mut net, mut agent, mut exchange) = alice(start, 10);
    let (outcome, now) = net.run(&mut exchange, &mut agent, uptime(), start);
    assert!(outcome.is_ok(), "{outcome:?}");
    net.corrupt_replies = usize::MAX;
    let (outcome, end) = net.run(&mut exchange, &mut agent, uptime(), now);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeviceError::NoAnswer { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("4 SNMPv3 answers were discarded because they failed"),
        "{err}"
    );
    assert!(!err.to_string().contains("pass phrase"), "{err}");
    assert_eq!(end, start + Duration::from_secs(10), "at the deadline");
}

#[test]
fn an_unknown_user_is_named_as_such() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
    let mut exchange = exchange(
        v3("mallory", "alice-auth-pass", "alice-priv-pass"),
        start,
        10,
    );
    let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err:?}");
    assert!(
        err.to_string().contains("usmStatsUnknownUserNames"),
        "{err}"
    );
    assert!(err.to_string().contains("user mallory on pdu1"), "{err}");
}

#[test]
fn a_pass_phrase_too_short_for_key_localisation_is_refused_before_anything_is_sent_with_it() {
    let start = Instant::now();
    let mut net = Net::perfect();
    let mut agent = TestAgent::usm(start, "alice", "alice-auth-pass", "alice-priv-pass");
    let mut exchange = exchange(v3("alice", "short", "alice-priv-pass"), start, 10);
    let (outcome, _) = net.run(&mut exchange, &mut agent, uptime(), start);
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("at least 8 characters"), "{err}");
    assert_eq!(
        agent.log,
        vec![Seen::Discovery],
        "only the keyless discovery left"
    );
}

#[test]
fn every_wake_up_is_by_the_deadline() {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(2500);
    let mut exchange = Exchange::new(peer(v2c("private")), None, 1, start, deadline);
    exchange.start(uptime(), start);
    let mut now = start;
    let mut sent = 0;
    while exchange.poll_outcome().is_none() {
        sent += usize::from(exchange.poll_transmit().is_some());
        let wake = exchange.poll_timeout().expect("a wake-up while waiting");
        assert!(wake <= deadline);
        now = wake;
        exchange.handle_timeout(now);
    }
    assert_eq!(now, deadline);
    assert_eq!(
        sent, 2,
        "at 0 s and 1 s; the next at 3 s is past the deadline"
    );
}
