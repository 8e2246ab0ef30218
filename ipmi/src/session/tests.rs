//! Client against responder in memory: simulated time, injected loss and
//! reordering, no sockets (quinn-proto's style of test).

use std::time::Duration;

use fencekit_core::{Instant, PowerState, Secret};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{IpmiError, Phase};
use crate::message::{ChassisControl, Privilege};
use crate::responder::{Bmc, BmcConfig};
use crate::session::client::{Command, Event, Reply, Session, SessionConfig, Workarounds};
use crate::suite::{offer, CipherSuite};

struct Net {
    rng: StdRng,
    loss: f64,
    /// Up to this much random delay per datagram, which reorders them.
    jitter_ms: u64,
    sent_by_client: usize,
}

impl Net {
    fn new(seed: u64, loss: f64) -> Net {
        Net {
            rng: StdRng::seed_from_u64(seed),
            loss,
            jitter_ms: 30,
            sent_by_client: 0,
        }
    }

    /// Runs `commands` in one session, closing it after the last reply; returns the
    /// events and the simulated time it took.
    fn run(
        &mut self,
        session: &mut Session,
        bmc: &mut Bmc,
        commands: &[Command],
        start: Instant,
    ) -> Vec<Event> {
        let mut now = start;
        for c in commands {
            session.queue(*c, now);
        }
        let mut in_flight: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        let mut events = Vec::new();
        let mut replies = 0;
        for _ in 0..100_000 {
            while let Some(e) = session.poll_event() {
                if matches!(e, Event::Reply { .. }) {
                    replies += 1;
                    if replies == commands.len() {
                        session.close(now);
                    }
                }
                let closed = e == Event::Closed;
                events.push(e);
                if closed {
                    return events;
                }
            }
            while let Some(p) = session.poll_transmit() {
                self.sent_by_client += 1;
                if !self.rng.random_bool(self.loss) {
                    let at = now + Duration::from_millis(self.rng.random_range(0..=self.jitter_ms));
                    in_flight.push((at, true, p));
                }
            }
            while let Some(p) = bmc.poll_transmit(now) {
                if !self.rng.random_bool(self.loss) {
                    let at = now + Duration::from_millis(self.rng.random_range(0..=self.jitter_ms));
                    in_flight.push((at, false, p));
                }
            }
            let next = in_flight
                .iter()
                .map(|(t, _, _)| *t)
                .chain(session.poll_timeout())
                .chain(bmc.poll_timeout())
                .min();
            let Some(next) = next else { return events };
            now = now.max(next);
            in_flight.sort_by_key(|(t, _, _)| *t);
            let due: Vec<_> = in_flight
                .iter()
                .filter(|(t, _, _)| *t <= now)
                .cloned()
                .collect();
            in_flight.retain(|(t, _, _)| *t > now);
            for (_, to_bmc, p) in due {
                if to_bmc {
                    bmc.handle_datagram(now, &p);
                } else {
                    session.handle_datagram(now, &p);
                }
            }
            session.handle_timeout(now);
        }
        panic!("simulation did not end");
    }
}

fn config(password: &str, suites: Vec<CipherSuite>) -> SessionConfig {
    SessionConfig::new(
        "bmc1:623",
        "admin",
        &Secret::new(password),
        None,
        Privilege::Operator,
        suites,
    )
    .unwrap()
}

fn session(config: SessionConfig, seed: u64, now: Instant) -> Session {
    Session::new(
        config,
        0,
        now,
        now + Duration::from_secs(20),
        StdRng::seed_from_u64(seed),
    )
}

fn replies(events: &[Event]) -> Vec<Result<Reply, IpmiError>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply { result, .. } => Some(result.clone()),
            _ => None,
        })
        .collect()
}

fn failure(events: &[Event]) -> Option<IpmiError> {
    events.iter().find_map(|e| match e {
        Event::Failed(err) => Some(err.clone()),
        _ => None,
    })
}

#[test]
fn status_takes_four_round_trips_and_reads_the_power_state() {
    let now = Instant::now();
    for suite in [3, 17] {
        let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
        let mut net = Net::new(1, 0.0);
        let mut s = session(
            config("secretpw", offer(Some(suite), false).unwrap()),
            2,
            now,
        );
        let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
        assert_eq!(events[0], Event::Established { suite });
        assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
        // Open Session, RAKP 1, RAKP 3, Get Chassis Status, Close Session.
        assert_eq!(net.sent_by_client, 5, "{events:?}");
        assert_eq!(bmc.session_count(), 0, "the session was closed: {events:?}");
    }
}

#[test]
fn power_down_raises_the_privilege_first_and_the_bmc_switches_off() {
    let now = Instant::now();
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let mut net = Net::new(3, 0.0);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 4, now);
    let events = net.run(
        &mut s,
        &mut bmc,
        &[
            Command::ChassisControl(ChassisControl::PowerDown),
            Command::GetChassisStatus,
        ],
        now,
    );
    assert_eq!(events[0], Event::Established { suite: 17 });
    assert_eq!(
        replies(&events),
        vec![Ok(Reply::Accepted), Ok(Reply::Power(PowerState::Off))]
    );
    assert_eq!(bmc.power(), PowerState::Off);
}

#[test]
fn a_bmc_without_suite_17_falls_back_to_3() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.suites = vec![3];
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 5, now);
    let events = Net::new(5, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(events[0], Event::Established { suite: 3 });
}

#[test]
fn no_common_suite_is_a_clear_error() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.suites = vec![2];
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 5, now);
    let events = Net::new(5, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(
        matches!(failure(&events), Some(IpmiError::CipherSuiteUnavailable { tried, .. }) if tried == "17, 3")
    );
}

#[test]
fn a_wrong_password_fails_at_rakp_2_without_sending_rakp_3() {
    let now = Instant::now();
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let mut net = Net::new(6, 0.0);
    let mut s = session(config("wrong", offer(Some(3), false).unwrap()), 7, now);
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    let err = failure(&events).unwrap();
    assert!(matches!(err, IpmiError::PasswordInvalid { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("admin") && text.contains("bmc1:623"),
        "{text}"
    );
    // Open Session and RAKP 1 only: no RAKP 3 code for a possible impostor.
    assert_eq!(net.sent_by_client, 2);
}

#[test]
fn an_impostor_proving_another_key_gets_no_rakp_3() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.wrong_key = true;
    let mut bmc = Bmc::new(cfg);
    let mut net = Net::new(8, 0.0);
    let mut s = session(config("secretpw", offer(Some(17), false).unwrap()), 9, now);
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(matches!(
        failure(&events),
        Some(IpmiError::PasswordInvalid { .. })
    ));
    assert_eq!(net.sent_by_client, 2);
}

#[test]
fn an_unknown_user_is_named_as_username_invalid() {
    let now = Instant::now();
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let cfg = SessionConfig::new(
        "bmc1",
        "nobody",
        &Secret::new("x"),
        None,
        Privilege::Operator,
        offer(Some(3), false).unwrap(),
    )
    .unwrap();
    let mut s = session(cfg, 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(matches!(
        failure(&events),
        Some(IpmiError::UsernameInvalid { .. })
    ));
}

#[test]
fn a_wrong_k_g_fails_at_rakp_4() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.kg = Some(zeroize::Zeroizing::new(b"bmckey".to_vec()));
    let mut bmc = Bmc::new(cfg);
    let c = SessionConfig::new(
        "bmc1",
        "admin",
        &Secret::new("secretpw"),
        Some(b"other"),
        Privilege::Operator,
        offer(Some(3), false).unwrap(),
    )
    .unwrap();
    let mut s = session(c, 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(matches!(
        failure(&events),
        Some(IpmiError::KgInvalid { .. })
    ));
    // And the right one works.
    let c = SessionConfig::new(
        "bmc1",
        "admin",
        &Secret::new("secretpw"),
        Some(b"bmckey"),
        Privilege::Operator,
        offer(Some(3), false).unwrap(),
    )
    .unwrap();
    let mut s = session(c, 2, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
}

#[test]
fn sessions_survive_30_percent_loss_and_reordering() {
    let start = Instant::now();
    for seed in 0..40u64 {
        for suite in [3, 17] {
            let mut cfg = BmcConfig::new("secretpw");
            cfg.seed = seed;
            let mut bmc = Bmc::new(cfg);
            let mut net = Net::new(seed, 0.3);
            let mut s = session(
                config("secretpw", offer(Some(suite), false).unwrap()),
                seed + 100,
                start,
            );
            let events = net.run(
                &mut s,
                &mut bmc,
                &[
                    Command::ChassisControl(ChassisControl::PowerDown),
                    Command::GetChassisStatus,
                ],
                start,
            );
            // Retransmission carries every run through 30 % loss within the deadline.
            if let Some(error) = failure(&events) {
                panic!("seed {seed} suite {suite}: {error}");
            }
            let r = replies(&events);
            assert_eq!(
                r,
                vec![Ok(Reply::Accepted), Ok(Reply::Power(PowerState::Off))],
                "seed {seed}"
            );
            assert_eq!(bmc.power(), PowerState::Off);
        }
    }
}

#[test]
fn a_bmc_that_stops_answering_mid_session_ends_by_the_deadline() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.silent_after_requests = Some(0);
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(Some(17), false).unwrap()), 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(
        failure(&events),
        Some(IpmiError::NoAnswer {
            host: "bmc1:623".into(),
            phase: Phase::InSession
        })
    );
}

#[test]
fn a_silent_address_says_nothing_answered_open_session() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.drop_share = 1.0;
    let mut bmc = Bmc::new(cfg);
    let mut net = Net::new(1, 0.0);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 1, now);
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(matches!(
        failure(&events),
        Some(IpmiError::NoAnswer {
            phase: Phase::OpenSession,
            ..
        })
    ));
    // Time-outs never fall back to the next suite: only suite 17 was sent, retried.
    assert!(net.sent_by_client > 5);
}

#[test]
fn a_lost_cycle_reply_is_not_repeated_but_checked_with_status() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    // The BMC runs the command, then falls silent for the control reply only:
    // emulate by dropping every reply after the third in-session request.
    cfg.faults.reply_delay = Duration::ZERO;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(Some(3), false).unwrap()), 1, now);
    let mut net = Net::new(1, 0.0);
    // Establish and raise privilege first.
    let events = net.run(&mut s, &mut bmc, &[Command::RaisePrivilege], now);
    assert_eq!(replies(&events), vec![Ok(Reply::Accepted)]);
    // A fresh session where the cycle's reply is lost: the BMC stops answering
    // after executing it, so the status check times out too.
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.silent_after_requests = Some(2);
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(Some(3), false).unwrap()), 2, now);
    let mut s_events = Vec::new();
    s.queue(Command::ChassisControl(ChassisControl::PowerCycle), now);
    let mut t = now;
    for _ in 0..1000 {
        let mut moved = true;
        while moved {
            moved = false;
            while let Some(p) = s.poll_transmit() {
                bmc.handle_datagram(t, &p);
                moved = true;
            }
            while let Some(p) = bmc.poll_transmit(t) {
                s.handle_datagram(t, &p);
                moved = true;
            }
        }
        while let Some(e) = s.poll_event() {
            s_events.push(e);
        }
        if s.is_done() {
            break;
        }
        match s.poll_timeout() {
            Some(next) => {
                t = t.max(next);
                s.handle_timeout(t);
            }
            None => break,
        }
    }
    // Set Session Privilege and the cycle reached the BMC once; the cycle was
    // never sent again.
    assert_eq!(
        bmc.controls(),
        &[ChassisControl::PowerCycle],
        "{s_events:?}"
    );
    assert!(matches!(
        failure(&s_events),
        Some(IpmiError::NoAnswer { .. })
    ));
}

#[test]
fn a_cycle_of_a_machine_that_is_off_is_its_own_error() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.power = PowerState::Off;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 1, now);
    let events = Net::new(1, 0.0).run(
        &mut s,
        &mut bmc,
        &[Command::ChassisControl(ChassisControl::HardReset)],
        now,
    );
    assert!(matches!(
        replies(&events)[0],
        Err(IpmiError::NotInPresentState { .. })
    ));
}

#[test]
fn user_privilege_cannot_switch_power() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.users[0].max_privilege = Privilege::User;
    let mut bmc = Bmc::new(cfg);
    let c = SessionConfig::new(
        "bmc1",
        "admin",
        &Secret::new("secretpw"),
        None,
        Privilege::User,
        offer(None, false).unwrap(),
    )
    .unwrap();
    let mut s = session(c, 1, now);
    let events = Net::new(1, 0.0).run(
        &mut s,
        &mut bmc,
        &[Command::ChassisControl(ChassisControl::PowerDown)],
        now,
    );
    assert!(matches!(
        &replies(&events)[0],
        Err(IpmiError::Completion { code: 0xd4, .. })
    ));
    assert_eq!(bmc.power(), PowerState::On);
}

#[test]
fn a_lying_bmc_acknowledges_off_and_status_still_reads_on() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.lie_about_off = true;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 1, now);
    let events = Net::new(1, 0.0).run(
        &mut s,
        &mut bmc,
        &[
            Command::ChassisControl(ChassisControl::PowerDown),
            Command::GetChassisStatus,
        ],
        now,
    );
    assert_eq!(
        replies(&events),
        vec![Ok(Reply::Accepted), Ok(Reply::Power(PowerState::On))]
    );
}

#[test]
fn workarounds_parse_by_name_and_unknown_ones_are_refused() {
    let w = Workarounds::parse("opensesspriv, nochecksumcheck,idzero").unwrap();
    assert!(w.open_session_privilege && w.no_checksum_check && w.accept_session_id_zero);
    assert!(!w.open_session_privilege_zero);
    assert!(
        Workarounds::parse("privzero")
            .unwrap()
            .open_session_privilege_zero
    );
    assert!(Workarounds::parse("authcap").is_err());
}

#[test]
fn open_session_carries_the_requested_privilege_unless_privzero() {
    let now = Instant::now();
    let decode = |s: &mut Session| {
        let p = s.poll_transmit().unwrap();
        let packet = crate::packet::decode_v2(&p, None).unwrap();
        crate::setup::OpenSessionRequest::decode(&packet.payload)
            .unwrap()
            .privilege
    };
    let mut s = session(config("pw", offer(None, false).unwrap()), 1, now);
    assert_eq!(decode(&mut s), Privilege::Operator.level());
    let mut c = config("pw", offer(None, false).unwrap());
    c.workarounds = Workarounds::parse("opensesspriv").unwrap();
    assert_eq!(decode(&mut session(c, 1, now)), Privilege::Operator.level());
    let mut c = config("pw", offer(None, false).unwrap());
    c.workarounds = Workarounds::parse("privzero").unwrap();
    assert_eq!(decode(&mut session(c, 1, now)), 0);
}

#[test]
fn the_first_open_session_offers_suite_17_and_never_suite_0() {
    let now = Instant::now();
    let mut s = session(config("pw", offer(None, false).unwrap()), 1, now);
    let p = s.poll_transmit().unwrap();
    let packet = crate::packet::decode_v2(&p, None).unwrap();
    let req = crate::setup::OpenSessionRequest::decode(&packet.payload).unwrap();
    assert_eq!(CipherSuite::from_algorithms(req.algorithms).unwrap().id, 17);
    assert_ne!(req.console_session_id, 0);
}

#[test]
fn passwords_over_20_bytes_and_names_over_16_are_refused_up_front() {
    let suites = offer(None, false).unwrap();
    let err = SessionConfig::new(
        "h",
        "admin",
        &Secret::new("a".repeat(21)),
        None,
        Privilege::Operator,
        suites.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("at most 20"), "{err}");
    assert!(!err.to_string().contains("aaaa"));
    assert!(SessionConfig::new(
        "h",
        &"u".repeat(17),
        &Secret::new("p"),
        None,
        Privilege::Operator,
        suites
    )
    .is_err());
}

#[test]
fn idzero_accepts_a_bmc_session_id_of_zero() {
    let now = Instant::now();
    let answer = |workarounds: &str| {
        let mut c = config("pw", offer(Some(3), false).unwrap());
        c.workarounds = Workarounds::parse(workarounds).unwrap();
        let mut s = session(c, 1, now);
        let p = s.poll_transmit().unwrap();
        let packet = crate::packet::decode_v2(&p, None).unwrap();
        let req = crate::setup::OpenSessionRequest::decode(&packet.payload).unwrap();
        let resp = crate::setup::OpenSessionResponse {
            tag: req.tag,
            status: 0,
            privilege: 3,
            console_session_id: Some(req.console_session_id),
            accepted: Some((0, req.algorithms)),
        };
        let bytes = crate::packet::encode_v2(
            crate::packet::PayloadType::OpenSessionResponse,
            0,
            0,
            &resp.encode(),
            None,
            [0; 16],
        )
        .unwrap();
        s.handle_datagram(now, &bytes);
        (s.poll_transmit().is_some(), s.poll_event())
    };
    let (sent, event) = answer("");
    assert!(!sent);
    assert!(matches!(
        event,
        Some(Event::Failed(IpmiError::Protocol { .. }))
    ));
    let (sent, event) = answer("idzero");
    assert!(sent, "RAKP 1 follows");
    assert_eq!(event, None);
}

/// The Open Session request a fresh session sends first.
fn first_open_session(s: &mut Session) -> crate::setup::OpenSessionRequest {
    let p = s.poll_transmit().unwrap();
    let packet = crate::packet::decode_v2(&p, None).unwrap();
    crate::setup::OpenSessionRequest::decode(&packet.payload).unwrap()
}

/// An Open Session Response datagram of only tag and status (ipmi_sim's refusal).
fn truncated_refusal(tag: u8, status: u8) -> Vec<u8> {
    crate::packet::encode_v2(
        crate::packet::PayloadType::OpenSessionResponse,
        0,
        0,
        &[tag, status],
        None,
        [0; 16],
    )
    .unwrap()
}

#[test]
fn the_datagram_ipmi_sim_sends_for_suite_17_makes_the_client_offer_suite_3() {
    let now = Instant::now();
    let mut s = session(config("pw", offer(None, false).unwrap()), 1, now);
    let req = first_open_session(&mut s);
    assert_eq!(CipherSuite::from_algorithms(req.algorithms).unwrap().id, 17);
    // Captured from ipmi_sim 2.0.33 (tag 1, status 0x04); here with our tag.
    let mut captured = vec![
        0x06, 0x00, 0xff, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x01, 0x04,
    ];
    captured[16] = req.tag;
    s.handle_datagram(now, &captured);
    let next = first_open_session(&mut s);
    assert_eq!(CipherSuite::from_algorithms(next.algorithms).unwrap().id, 3);
    assert_eq!(next.console_session_id, req.console_session_id);
    assert_eq!(s.poll_event(), None, "a fallback, not a failure");
}

/// A suite whose offers went unanswered (lost packets, a BMC slow to answer) is
/// left for the next, but offered again once every later one is refused, and then
/// kept until the deadline: it may be the BMC's only one. (The suite memory puts
/// the suite that worked last first; a burst of loss then ended the login with
/// "no allowed cipher suite" and most of the timeout left.)
#[test]
fn a_suite_that_went_unanswered_is_offered_again_once_the_others_are_refused() {
    let now = Instant::now();
    let suites = vec![
        CipherSuite::by_id(3).unwrap(),
        CipherSuite::by_id(17).unwrap(),
    ];
    let mut s = session(config("pw", suites), 11, now);
    let first = first_open_session(&mut s);
    assert_eq!(
        CipherSuite::from_algorithms(first.algorithms).unwrap().id,
        3
    );
    // No answer: retransmitted, then the next suite is offered.
    let mut t = now;
    let seventeen = loop {
        t += Duration::from_millis(100);
        assert!(t < now + Duration::from_secs(10), "suite 17 never offered");
        s.handle_timeout(t);
        let Some(p) = s.poll_transmit() else { continue };
        let packet = crate::packet::decode_v2(&p, None).unwrap();
        let req = crate::setup::OpenSessionRequest::decode(&packet.payload).unwrap();
        if CipherSuite::from_algorithms(req.algorithms).unwrap().id == 17 {
            break req;
        }
    };
    s.handle_datagram(t, &truncated_refusal(seventeen.tag, 0x04));
    let again = first_open_session(&mut s);
    assert_eq!(
        CipherSuite::from_algorithms(again.algorithms).unwrap().id,
        3
    );
    assert_eq!(s.poll_event(), None, "offered again, not a failure");
    // Kept until the deadline: every later send offers suite 3.
    let mut sends = 0;
    while t < now + Duration::from_secs(19) {
        t += Duration::from_millis(100);
        s.handle_timeout(t);
        while let Some(p) = s.poll_transmit() {
            let packet = crate::packet::decode_v2(&p, None).unwrap();
            let req = crate::setup::OpenSessionRequest::decode(&packet.payload).unwrap();
            assert_eq!(CipherSuite::from_algorithms(req.algorithms).unwrap().id, 3);
            sends += 1;
        }
        if let Some(event) = s.poll_event() {
            assert!(t >= now + Duration::from_secs(19), "ended early: {event:?}");
        }
    }
    assert!(sends >= 3, "{sends}");
}

#[test]
fn a_bmc_answering_refusals_truncated_still_gets_suite_3() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.suites = vec![3];
    cfg.faults.truncated_error_responses = true;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 7, now);
    let events = Net::new(7, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(events[0], Event::Established { suite: 3 });
    assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
}

#[test]
fn a_truncated_refusal_of_the_last_allowed_suite_is_a_clear_error() {
    let now = Instant::now();
    let mut cfg = BmcConfig::new("secretpw");
    cfg.suites = vec![2];
    cfg.faults.truncated_error_responses = true;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 8, now);
    let events = Net::new(8, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(
        matches!(failure(&events), Some(IpmiError::CipherSuiteUnavailable { tried, .. }) if tried == "17, 3"),
        "{events:?}"
    );
}

#[test]
fn a_truncated_answer_with_another_tag_or_a_non_refusal_status_changes_nothing() {
    let now = Instant::now();
    let mut s = session(config("pw", offer(None, false).unwrap()), 9, now);
    let req = first_open_session(&mut s);
    // Another tag: not ours.
    s.handle_datagram(now, &truncated_refusal(req.tag.wrapping_add(1), 0x04));
    // Our tag, but a status that would end the session (busy, unauthorised name):
    // without our session ID it cannot be trusted to, so it is ignored.
    for status in [0x01, 0x0d, 0x0f, 0x12] {
        s.handle_datagram(now, &truncated_refusal(req.tag, status));
    }
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.poll_event(), None);
    assert!(s.awaits_open_session_response(req.tag));
}

#[test]
fn a_truncated_refusal_cannot_skip_the_suite_once_rakp_started() {
    let now = Instant::now();
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 10, now);
    let open = s.poll_transmit().unwrap();
    let tag = first_tag(&open);
    bmc.handle_datagram(now, &open);
    let answer = bmc.poll_transmit(now).unwrap();
    s.handle_datagram(now, &answer);
    let rakp1 = s.poll_transmit().unwrap();
    assert!(!s.awaits_open_session_response(tag));
    // A late (or forged) refusal of the Open Session is ignored in RAKP.
    s.handle_datagram(now, &truncated_refusal(tag, 0x04));
    s.handle_datagram(now, &truncated_refusal(tag.wrapping_add(1), 0x04));
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.poll_event(), None);
    bmc.handle_datagram(now, &rakp1);
    s.handle_datagram(now, &bmc.poll_transmit(now).unwrap());
    assert!(s.poll_transmit().is_some(), "RAKP 3 follows");
}

fn first_tag(open_session: &[u8]) -> u8 {
    let packet = crate::packet::decode_v2(open_session, None).unwrap();
    crate::setup::OpenSessionRequest::decode(&packet.payload)
        .unwrap()
        .tag
}

/// A client session and a BMC that completed RAKP 4 in memory, and the client's
/// first in-session datagram (its header carries the BMC's session ID).
fn established_pair(now: Instant) -> (Session, Bmc, Vec<u8>) {
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 11, now);
    s.queue(Command::GetChassisStatus, now);
    for _ in 0..10 {
        let Some(p) = s.poll_transmit() else { break };
        if crate::packet::peek(&p).is_ok_and(|f| {
            matches!(f, crate::packet::Framing::V2(h) if h.payload_type == crate::packet::PayloadType::Ipmi)
        }) {
            return (s, bmc, p);
        }
        bmc.handle_datagram(now, &p);
        while let Some(r) = bmc.poll_transmit(now) {
            s.handle_datagram(now, &r);
        }
    }
    panic!("the session did not get established");
}

proptest::proptest! {
    /// Whole receivers, not just decoders: whatever arrives, in whatever state,
    /// neither end panics (random bytes, random bytes behind an RMCP+ header of any
    /// payload type, and random payloads under a live session's header).
    #[test]
    fn sessions_and_bmcs_never_panic_on_any_datagram(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        payload_type in proptest::prelude::any::<u8>(),
        auth_type in proptest::prelude::any::<u8>(),
    ) {
        let now = Instant::now();
        let mut framed = vec![6, 0, 0xff, 7, if auth_type & 1 == 0 { 6 } else { auth_type }, payload_type];
        framed.extend(&tail);
        let mut fresh = session(config("pw", offer(None, false).unwrap()), 12, now);
        let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
        for datagram in [&tail, &framed] {
            fresh.handle_datagram(now, datagram);
            bmc.handle_datagram(now, datagram);
        }
        let (mut live, mut live_bmc, authentic) = established_pair(now);
        let mut forged = authentic[..14].to_vec();
        forged.extend((tail.len() as u16).to_le_bytes());
        forged.extend(&tail);
        forged[5] = payload_type;
        for datagram in [&tail, &framed, &forged] {
            live.handle_datagram(now, datagram);
            live_bmc.handle_datagram(now, datagram);
        }
        // The genuine request still works after the garbage.
        live_bmc.handle_datagram(now, &authentic);
        let reply = live_bmc.poll_transmit(now);
        proptest::prop_assert!(reply.is_some());
    }
}

/// An Open Session success that names `suite`'s algorithms, whatever was asked.
fn accepted_with(req: &crate::setup::OpenSessionRequest, suite: u8) -> Vec<u8> {
    let resp = crate::setup::OpenSessionResponse {
        tag: req.tag,
        status: 0,
        privilege: 3,
        console_session_id: Some(req.console_session_id),
        accepted: Some((0x1234, CipherSuite::by_id(suite).unwrap().algorithms())),
    };
    crate::packet::encode_v2(
        crate::packet::PayloadType::OpenSessionResponse,
        0,
        0,
        &resp.encode(),
        None,
        [0; 16],
    )
    .unwrap()
}

#[test]
fn a_bmc_that_picks_its_own_suite_gets_our_next_proposal_not_its_choice() {
    // pyghmi's BMC answers a suite-17 proposal with suite 3's algorithms.
    let now = Instant::now();
    let mut s = session(config("pw", offer(None, false).unwrap()), 13, now);
    let req = first_open_session(&mut s);
    s.handle_datagram(now, &accepted_with(&req, 3));
    let next = first_open_session(&mut s);
    assert_eq!(CipherSuite::from_algorithms(next.algorithms).unwrap().id, 3);
    assert_eq!(s.poll_event(), None);
    // With nothing left to propose, the answer is a protocol error, and a suite we
    // never allowed (2 here) is never taken.
    let mut pinned = session(config("pw", offer(Some(3), false).unwrap()), 14, now);
    let req = first_open_session(&mut pinned);
    pinned.handle_datagram(now, &accepted_with(&req, 2));
    assert_eq!(pinned.poll_transmit(), None);
    assert!(matches!(
        pinned.poll_event(),
        Some(Event::Failed(IpmiError::Protocol { .. }))
    ));
}

#[test]
fn the_test_bmc_answers_get_channel_auth_capabilities_saying_it_speaks_rmcp_plus() {
    let now = Instant::now();
    let mut bmc = Bmc::new(BmcConfig::new("pw"));
    let request = crate::message::Request {
        net_fn: crate::message::NETFN_APP,
        command: crate::message::CMD_GET_CHANNEL_AUTH_CAPS,
        rq_seq: 0,
        data: crate::message::auth_caps_request(Privilege::Administrator),
    };
    let datagram = crate::packet::V15Packet::sessionless(request.encode())
        .encode()
        .unwrap();
    bmc.handle_datagram(now, &datagram);
    let reply = crate::packet::V15Packet::decode(&bmc.poll_transmit(now).unwrap()).unwrap();
    let response = crate::message::Response::decode(&reply.message, true).unwrap();
    assert_eq!(response.completion, 0);
    let caps = crate::message::AuthCaps::decode(&response.data).unwrap();
    assert!(caps.ipmi20 && !caps.kg_non_null && !caps.null_users);
}

// IPMI 1.5 sessions (lanplus=0) against the responder's IPMI 1.5 side.

use crate::v15::AuthType;

/// A BMC that offers IPMI 1.5 with MD5, straight password and none.
fn v15_bmc(seed: u64) -> BmcConfig {
    let mut cfg = BmcConfig::new("secretpw");
    cfg.v15_auths = vec![AuthType::Md5, AuthType::Password, AuthType::None];
    cfg.seed = seed;
    cfg
}

fn v15_config(password: &str, auth: AuthType, explicit: bool) -> SessionConfig {
    let mut cfg = config(password, offer(None, false).unwrap());
    cfg.use_ipmi15(auth, explicit).unwrap();
    cfg
}

fn count_v15_established(events: &[Event], auth: AuthType) -> usize {
    events
        .iter()
        .filter(|e| **e == Event::EstablishedV15 { auth })
        .count()
}

#[test]
fn ipmi_1_5_reads_status_and_switches_off_with_each_auth_type() {
    let now = Instant::now();
    for auth in [AuthType::Md5, AuthType::Password, AuthType::None] {
        let mut bmc = Bmc::new(v15_bmc(1));
        let mut net = Net::new(1, 0.0);
        let mut s = session(v15_config("secretpw", auth, true), 1, now);
        let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
        assert_eq!(count_v15_established(&events, auth), 1, "{events:?}");
        assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
        // Auth caps, challenge, activate, status, close: no privilege raise for a read.
        assert_eq!(net.sent_by_client, 5, "{auth:?}");

        let mut s = session(v15_config("secretpw", auth, true), 2, now);
        let events = net.run(
            &mut s,
            &mut bmc,
            &[
                Command::ChassisControl(ChassisControl::PowerDown),
                Command::GetChassisStatus,
            ],
            now,
        );
        assert_eq!(
            replies(&events),
            vec![Ok(Reply::Accepted), Ok(Reply::Power(PowerState::Off))],
            "{auth:?}"
        );
        // Judged from the BMC's side.
        assert_eq!(bmc.power(), PowerState::Off);
        assert_eq!(bmc.session_count(), 0, "both sessions were closed");
    }
}

#[test]
fn ipmi_1_5_sessions_survive_20_percent_loss_and_reordering() {
    // 20 %, not the 30 % RMCP+ takes: an unanswered Activate Session is how a BMC
    // says "wrong password", so only a few of them are sent (3 for each of two
    // challenges, each answer through with 64 %); RMCP+ has an explicit answer for
    // that and can resend.
    let start = Instant::now();
    for seed in 0..40u64 {
        let mut bmc = Bmc::new(v15_bmc(seed));
        let mut net = Net::new(seed, 0.2);
        let mut s = session(
            v15_config("secretpw", AuthType::Md5, false),
            seed + 100,
            start,
        );
        let events = net.run(
            &mut s,
            &mut bmc,
            &[
                Command::ChassisControl(ChassisControl::PowerDown),
                Command::GetChassisStatus,
            ],
            start,
        );
        if let Some(error) = failure(&events) {
            panic!("seed {seed}: {error}");
        }
        assert_eq!(
            replies(&events),
            vec![Ok(Reply::Accepted), Ok(Reply::Power(PowerState::Off))],
            "seed {seed}"
        );
        assert_eq!(bmc.power(), PowerState::Off);
        // A lost Activate Session answer is answered again without a second
        // session; only a fresh challenge after three lost answers opens one (the
        // first is left to the BMC's session timeout: its ID never arrived).
        assert!(bmc.sessions_opened() <= 2, "seed {seed}");
        assert_eq!(
            bmc.session_count(),
            bmc.sessions_opened() - 1,
            "seed {seed}"
        );
    }
}

#[test]
fn ipmi_1_5_lost_challenge_and_activate_answers_are_retried_into_one_session() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.faults.lose_first_challenge_reply = true;
    cfg.faults.lose_first_activate_reply = true;
    let mut bmc = Bmc::new(cfg);
    let mut net = Net::new(1, 0.0);
    let mut s = session(v15_config("secretpw", AuthType::Md5, false), 1, now);
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
    assert_eq!(bmc.sessions_opened(), 1);
    // Auth caps, challenge twice, activate twice, status, close.
    assert_eq!(net.sent_by_client, 7);
}

#[test]
fn ipmi_1_5_a_lost_cycle_reply_is_never_answered_by_a_second_cycle() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.faults.lose_first_control_reply = true;
    let mut bmc = Bmc::new(cfg);
    let mut net = Net::new(1, 0.0);
    let mut s = session(v15_config("secretpw", AuthType::Md5, false), 1, now);
    let events = net.run(
        &mut s,
        &mut bmc,
        &[Command::ChassisControl(ChassisControl::PowerCycle)],
        now,
    );
    assert_eq!(bmc.controls(), &[ChassisControl::PowerCycle], "{events:?}");
    // The status read after the lost reply finds the cycle's off phase.
    assert_eq!(replies(&events), vec![Ok(Reply::Accepted)]);
}

#[test]
fn ipmi_1_5_a_lost_power_down_reply_is_sent_again_as_it_is_idempotent() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.faults.lose_first_control_reply = true;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(v15_config("secretpw", AuthType::Md5, false), 1, now);
    let events = Net::new(1, 0.0).run(
        &mut s,
        &mut bmc,
        &[Command::ChassisControl(ChassisControl::PowerDown)],
        now,
    );
    assert_eq!(replies(&events), vec![Ok(Reply::Accepted)]);
    assert_eq!(
        bmc.controls(),
        &[ChassisControl::PowerDown, ChassisControl::PowerDown]
    );
}

#[test]
fn ipmi_1_5_a_wrong_password_is_password_invalid_long_before_the_deadline() {
    let start = Instant::now();
    for auth in [AuthType::Md5, AuthType::Password] {
        let mut bmc = Bmc::new(v15_bmc(1));
        let mut s = session(v15_config("not-the-pw", auth, true), 1, start);
        let mut net = Net::new(1, 0.0);
        let events = net.run(
            &mut s,
            &mut bmc,
            &[Command::ChassisControl(ChassisControl::PowerDown)],
            start,
        );
        let error = failure(&events);
        assert!(
            matches!(error, Some(IpmiError::PasswordInvalid { .. })),
            "{auth:?}: {error:?}"
        );
        // Auth caps, then twice a challenge and three Activate Session sends;
        // nothing switched.
        assert_eq!(net.sent_by_client, 9);
        assert!(bmc.controls().is_empty());
        assert_eq!(bmc.sessions_opened(), 0);
    }
}

#[test]
fn ipmi_1_5_replies_whose_auth_code_does_not_verify_are_dropped() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.faults.bad_v15_auth_code = true;
    let mut bmc = Bmc::new(cfg);
    let mut s = session(v15_config("secretpw", AuthType::Md5, false), 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(replies(&events).is_empty(), "{events:?}");
    assert_eq!(
        failure(&events),
        Some(IpmiError::NoAnswer {
            host: "bmc1:623".into(),
            phase: Phase::InSession
        })
    );
}

#[test]
fn ipmi_1_5_without_auth_is_md5_only_and_names_what_the_bmc_offers() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.v15_auths = vec![AuthType::Password, AuthType::None];
    let mut bmc = Bmc::new(cfg);
    let mut s = session(v15_config("secretpw", AuthType::Md5, false), 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    let Some(error @ IpmiError::AuthTypeUnavailable { .. }) = failure(&events) else {
        panic!("{events:?}");
    };
    let text = error.to_string();
    assert!(text.contains("it offers: none, password"), "{text}");
    assert!(text.contains("auth=password or auth=none"), "{text}");
    assert_eq!(bmc.sessions_opened(), 0);
    // Asked for explicitly, password is taken.
    let mut s = session(v15_config("secretpw", AuthType::Password, true), 2, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(replies(&events), vec![Ok(Reply::Power(PowerState::On))]);
}

#[test]
fn ipmi_1_5_with_per_message_authentication_disabled_is_refused_unless_auth_is_none() {
    let now = Instant::now();
    let mut cfg = v15_bmc(1);
    cfg.v15_per_message_disabled = true;
    let mut bmc = Bmc::new(cfg);
    for (auth, explicit) in [(AuthType::Md5, false), (AuthType::Password, true)] {
        let mut s = session(v15_config("secretpw", auth, explicit), 1, now);
        let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
        let Some(error @ IpmiError::UnauthenticatedReplies { .. }) = failure(&events) else {
            panic!("{auth:?}: {events:?}");
        };
        assert!(error.to_string().contains("per-message"), "{error}");
    }
    assert_eq!(bmc.sessions_opened(), 0);
}

#[test]
fn ipmi_1_5_refuses_md2_and_passwords_over_16_bytes_up_front() {
    let mut cfg = config("secretpw", offer(None, false).unwrap());
    assert!(matches!(
        cfg.use_ipmi15(AuthType::Md2, true),
        Err(IpmiError::Config(text)) if text.contains("MD2")
    ));
    let mut cfg_long = config("a-password-of-20-byt", offer(None, false).unwrap());
    assert!(matches!(
        cfg_long.use_ipmi15(AuthType::Md5, false),
        Err(IpmiError::Config(text)) if text.contains("16 bytes")
    ));
    assert!(cfg.use_ipmi15(AuthType::Md5, false).is_ok());
}

#[test]
fn ipmi_1_5_an_unknown_user_is_username_invalid() {
    let now = Instant::now();
    let mut bmc = Bmc::new(v15_bmc(1));
    let mut cfg = SessionConfig::new(
        "bmc1:623",
        "nobody",
        &Secret::new("secretpw"),
        None,
        Privilege::Operator,
        offer(None, false).unwrap(),
    )
    .unwrap();
    cfg.use_ipmi15(AuthType::Md5, false).unwrap();
    let mut s = session(cfg, 1, now);
    let events = Net::new(1, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(
        matches!(failure(&events), Some(IpmiError::UsernameInvalid { .. })),
        "{events:?}"
    );
}

mod workarounds;

/// A BMC answering the first `rakp2` RAKP 1s and `rakp4` RAKP 3s with `status`.
fn transient_bmc(rakp2: u32, rakp4: u32, status: u8) -> Bmc {
    let mut cfg = BmcConfig::new("secretpw");
    cfg.faults.transient_rakp2 = rakp2;
    cfg.faults.transient_rakp4 = rakp4;
    cfg.faults.transient_status = status;
    Bmc::new(cfg)
}

#[test]
fn rakp_2_or_4_status_invalid_session_id_starts_a_fresh_login_from_open_session() {
    let now = Instant::now();
    for (rakp2, rakp4) in [(2, 0), (0, 2), (1, 1)] {
        let mut bmc = transient_bmc(rakp2, rakp4, 0x02);
        let mut s = session(config("secretpw", offer(None, false).unwrap()), 41, now);
        let events = Net::new(42, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
        assert_eq!(
            replies(&events),
            vec![Ok(Reply::Power(PowerState::On))],
            "{rakp2}/{rakp4}: {events:?}"
        );
        // Each refused handshake was a session of its own at the BMC.
        assert_eq!(bmc.sessions_opened(), 3, "{rakp2}/{rakp4}");
    }
}

#[test]
fn fresh_logins_on_transient_rakp_statuses_are_few_and_end_long_before_the_deadline() {
    let now = Instant::now();
    let mut bmc = transient_bmc(100, 0, 0x02);
    let mut net = Net::new(43, 0.0);
    let mut s = session(config("secretpw", offer(None, false).unwrap()), 44, now);
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    let err = failure(&events).unwrap();
    assert!(err.to_string().contains("0x02"), "{err}");
    // The first login and three fresh ones.
    assert_eq!(bmc.sessions_opened(), 4);
    assert_eq!(net.sent_by_client, 8);
}

#[test]
fn permanent_rakp_statuses_fail_at_once_without_a_fresh_login() {
    let now = Instant::now();
    for (rakp2, rakp4, status) in [(1, 0, 0x0d), (1, 0, 0x09), (0, 1, 0x0f), (1, 0, 0x01)] {
        let mut bmc = transient_bmc(rakp2, rakp4, status);
        let mut s = session(config("secretpw", offer(None, false).unwrap()), 45, now);
        let events = Net::new(46, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
        assert!(failure(&events).is_some(), "{status:#04x}: {events:?}");
        assert_eq!(bmc.sessions_opened(), 1, "{status:#04x}");
    }
}
