//! FreeIPMI's `-W` workarounds (ipmipower), each against a responder with the
//! quirk FreeIPMI documents for the BMCs it names: needed (the session fails
//! without it), sufficient (it succeeds with it), and never a way around the
//! BMC's proof (an impostor, or a wrong K_g, is still caught with it on).

use super::*;
use crate::responder::Quirks;

/// A session of `workarounds` (comma-separated) as `user`/`password`, on `suites`.
fn quirk_session(
    workarounds: &str,
    password: &str,
    kg: Option<&[u8]>,
    suites: Vec<CipherSuite>,
    seed: u64,
    now: Instant,
) -> Session {
    let mut c = SessionConfig::new(
        "bmc1:623",
        "admin",
        &Secret::new(password),
        kg,
        Privilege::Operator,
        suites,
    )
    .unwrap();
    c.workarounds = Workarounds::parse(workarounds).unwrap();
    session(c, seed, now)
}

fn quirky_bmc(password: &str, quirks: Quirks) -> BmcConfig {
    let mut cfg = BmcConfig::new(password);
    cfg.quirks = quirks;
    cfg
}

/// Status read, then power down and status, in one session: the outcome.
fn fence(bmc: &mut Bmc, s: &mut Session, seed: u64, now: Instant) -> Vec<Event> {
    Net::new(seed, 0.0).run(
        s,
        bmc,
        &[
            Command::GetChassisStatus,
            Command::ChassisControl(ChassisControl::PowerDown),
            Command::GetChassisStatus,
        ],
        now,
    )
}

fn fenced(events: &[Event]) -> bool {
    replies(events)
        == vec![
            Ok(Reply::Power(PowerState::On)),
            Ok(Reply::Accepted),
            Ok(Reply::Power(PowerState::Off)),
        ]
}

/// An impostor (proving another key in RAKP 2) with the quirk is refused with
/// the workaround on, before RAKP 3 is sent (Open Session and RAKP 1 only).
fn impostor_is_refused(workarounds: &str, quirks: Quirks, suite: u8) {
    let now = Instant::now();
    let mut cfg = quirky_bmc("secretpw", quirks);
    cfg.suites = vec![suite];
    cfg.faults.wrong_key = true;
    let mut bmc = Bmc::new(cfg);
    let mut net = Net::new(31, 0.0);
    let mut s = quirk_session(
        workarounds,
        "secretpw",
        None,
        offer(Some(suite), false).unwrap(),
        32,
        now,
    );
    let events = net.run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(
        matches!(failure(&events), Some(IpmiError::PasswordInvalid { .. })),
        "{workarounds}: {events:?}"
    );
    assert_eq!(
        net.sent_by_client, 2,
        "{workarounds}: no RAKP 3 to an impostor"
    );
    assert_eq!(bmc.power(), PowerState::On);
}

/// A BMC with the quirk and K_g `bmckey` is refused at RAKP 4 with the
/// workaround on when the console's K_g differs: the ICV is still checked.
fn wrong_kg_is_refused(workarounds: &str, quirks: Quirks, suite: u8) {
    let now = Instant::now();
    let mut cfg = quirky_bmc("secretpw", quirks);
    cfg.suites = vec![suite];
    cfg.kg = Some(zeroize::Zeroizing::new(b"bmckey".to_vec()));
    let mut bmc = Bmc::new(cfg);
    let mut s = quirk_session(
        workarounds,
        "secretpw",
        Some(b"other"),
        offer(Some(suite), false).unwrap(),
        33,
        now,
    );
    let events = Net::new(34, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert!(
        matches!(failure(&events), Some(IpmiError::KgInvalid { .. })),
        "{workarounds}: {events:?}"
    );
    let mut s = quirk_session(
        workarounds,
        "secretpw",
        Some(b"bmckey"),
        offer(Some(suite), false).unwrap(),
        35,
        now,
    );
    let events = Net::new(36, 0.0).run(&mut s, &mut bmc, &[Command::GetChassisStatus], now);
    assert_eq!(
        replies(&events),
        vec![Ok(Reply::Power(PowerState::On))],
        "{workarounds}: {events:?}"
    );
}

#[test]
fn opensesspriv_sends_the_level_in_open_session_even_with_privzero_for_a_bmc_hashing_with_it() {
    let now = Instant::now();
    let quirks = Quirks {
        open_session_privilege: true,
        ..Quirks::default()
    };
    // Privilege 0 in Open Session, as FreeIPMI sends by default: the BMC hashes
    // with 0, our proof check fails ("password invalid", as ipmipower reports
    // against ipmi_sim without -W opensesspriv).
    let mut bmc = Bmc::new(quirky_bmc("secretpw", quirks));
    let mut s = quirk_session(
        "privzero",
        "secretpw",
        None,
        offer(None, false).unwrap(),
        1,
        now,
    );
    let events = fence(&mut bmc, &mut s, 2, now);
    assert!(
        matches!(failure(&events), Some(IpmiError::PasswordInvalid { .. })),
        "{events:?}"
    );
    assert_eq!(bmc.power(), PowerState::On);
    // opensesspriv wins over privzero: the level goes in Open Session.
    let mut s = quirk_session(
        "privzero,opensesspriv",
        "secretpw",
        None,
        offer(None, false).unwrap(),
        3,
        now,
    );
    let events = fence(&mut bmc, &mut s, 4, now);
    assert!(fenced(&events), "{events:?}");
    assert_eq!(bmc.power(), PowerState::Off);
    impostor_is_refused("opensesspriv", quirks, 17);
    wrong_kg_is_refused("opensesspriv", quirks, 3);
}

#[test]
fn intel20_pads_the_name_for_an_intel_bmc_and_still_checks_its_proofs() {
    let now = Instant::now();
    let quirks = Quirks {
        intel20: true,
        ..Quirks::default()
    };
    for suite in [3, 17] {
        // Unpadded, the name is unknown to it.
        let mut cfg = quirky_bmc("secretpw", quirks);
        cfg.suites = vec![suite];
        let mut bmc = Bmc::new(cfg);
        let mut s = quirk_session(
            "",
            "secretpw",
            None,
            offer(Some(suite), false).unwrap(),
            5,
            now,
        );
        let events = fence(&mut bmc, &mut s, 6, now);
        assert!(
            matches!(failure(&events), Some(IpmiError::UsernameInvalid { .. })),
            "suite {suite}: {events:?}"
        );
        let mut s = quirk_session(
            "intel20",
            "secretpw",
            None,
            offer(Some(suite), false).unwrap(),
            7,
            now,
        );
        let events = fence(&mut bmc, &mut s, 8, now);
        assert!(fenced(&events), "suite {suite}: {events:?}");
        assert_eq!(bmc.power(), PowerState::Off);
        impostor_is_refused("intel20", quirks, suite);
        wrong_kg_is_refused("intel20", quirks, suite);
    }
}

#[test]
fn intel20_cuts_a_long_password_to_16_bytes_under_hmac_md5_as_the_intel_bmc_does() {
    let now = Instant::now();
    let quirks = Quirks {
        intel20: true,
        ..Quirks::default()
    };
    let password = "a-password-of-20-ch";
    let mut cfg = quirky_bmc(password, quirks);
    cfg.suites = vec![8];
    let mut bmc = Bmc::new(cfg);
    let mut s = quirk_session(
        "intel20",
        password,
        None,
        offer(Some(8), false).unwrap(),
        9,
        now,
    );
    let events = fence(&mut bmc, &mut s, 10, now);
    assert!(fenced(&events), "{events:?}");
    // Only the first 16 bytes count for it, and for us: a password differing
    // from the 17th byte on is taken (the BMC's doing, not a check skipped),
    // one differing before is not.
    bmc.set_power(PowerState::On);
    let mut s = quirk_session(
        "intel20",
        "a-password-of-20-XX",
        None,
        offer(Some(8), false).unwrap(),
        11,
        now,
    );
    assert!(fenced(&fence(&mut bmc, &mut s, 12, now)));
    bmc.set_power(PowerState::On);
    let mut s = quirk_session(
        "intel20",
        "X-password-of-20-ch",
        None,
        offer(Some(8), false).unwrap(),
        13,
        now,
    );
    let events = fence(&mut bmc, &mut s, 14, now);
    assert!(
        matches!(failure(&events), Some(IpmiError::PasswordInvalid { .. })),
        "{events:?}"
    );
    assert_eq!(bmc.power(), PowerState::On);
}

#[test]
fn supermicro20_takes_an_rakp_2_auth_code_one_byte_too_long_and_still_checks_it() {
    let now = Instant::now();
    let quirks = Quirks {
        supermicro20: true,
        ..Quirks::default()
    };
    for suite in [3, 17] {
        let mut cfg = quirky_bmc("secretpw", quirks);
        cfg.suites = vec![suite];
        let mut bmc = Bmc::new(cfg);
        let mut s = quirk_session(
            "",
            "secretpw",
            None,
            offer(Some(suite), false).unwrap(),
            15,
            now,
        );
        let events = fence(&mut bmc, &mut s, 16, now);
        assert!(
            matches!(failure(&events), Some(IpmiError::PasswordInvalid { .. })),
            "suite {suite}: {events:?}"
        );
        let mut s = quirk_session(
            "supermicro20",
            "secretpw",
            None,
            offer(Some(suite), false).unwrap(),
            17,
            now,
        );
        let events = fence(&mut bmc, &mut s, 18, now);
        assert!(fenced(&events), "suite {suite}: {events:?}");
        impostor_is_refused("supermicro20", quirks, suite);
        wrong_kg_is_refused("supermicro20", quirks, suite);
    }
    // A well-formed BMC still works with the workaround on.
    let mut bmc = Bmc::new(BmcConfig::new("secretpw"));
    let mut s = quirk_session(
        "supermicro20",
        "secretpw",
        None,
        offer(None, false).unwrap(),
        19,
        now,
    );
    assert!(fenced(&fence(&mut bmc, &mut s, 20, now)));
}

#[test]
fn sun20_takes_the_long_sha1_auth_code_and_hashes_with_the_open_session_level() {
    let now = Instant::now();
    let quirks = Quirks {
        sun20: true,
        ..Quirks::default()
    };
    let mut cfg = quirky_bmc("secretpw", quirks);
    cfg.suites = vec![3];
    let mut bmc = Bmc::new(cfg);
    let mut s = quirk_session("", "secretpw", None, offer(None, false).unwrap(), 21, now);
    let events = fence(&mut bmc, &mut s, 22, now);
    assert!(
        matches!(failure(&events), Some(IpmiError::PasswordInvalid { .. })),
        "{events:?}"
    );
    // sun20 implies opensesspriv, as in FreeIPMI: privzero gives way to it.
    let mut s = quirk_session(
        "sun20,privzero",
        "secretpw",
        None,
        offer(None, false).unwrap(),
        23,
        now,
    );
    let events = fence(&mut bmc, &mut s, 24, now);
    assert!(fenced(&events), "{events:?}");
    impostor_is_refused("sun20", quirks, 3);
    wrong_kg_is_refused("sun20", quirks, 3);
}

#[test]
fn integritycheckvalue_ignores_an_icv_under_suite_0_only_where_nothing_could_be_checked() {
    let now = Instant::now();
    let quirks = Quirks {
        suite0_icv: true,
        ..Quirks::default()
    };
    let mut cfg = quirky_bmc("secretpw", quirks);
    cfg.suites = vec![0];
    let mut bmc = Bmc::new(cfg);
    let mut s = quirk_session("", "secretpw", None, offer(Some(0), true).unwrap(), 25, now);
    let events = fence(&mut bmc, &mut s, 26, now);
    assert!(failure(&events).is_some(), "{events:?}");
    assert_eq!(bmc.power(), PowerState::On);
    let mut s = quirk_session(
        "integritycheckvalue",
        "secretpw",
        None,
        offer(Some(0), true).unwrap(),
        27,
        now,
    );
    let events = fence(&mut bmc, &mut s, 28, now);
    assert!(fenced(&events), "{events:?}");
    // Under a suite with authentication the ICV is checked as ever.
    impostor_is_refused("integritycheckvalue", quirks, 3);
    wrong_kg_is_refused("integritycheckvalue", quirks, 3);
    wrong_kg_is_refused("integritycheckvalue", quirks, 17);
}

#[test]
fn every_freeipmi_outofband_2_0_workaround_name_parses() {
    for name in [
        "intel20",
        "supermicro20",
        "sun20",
        "opensesspriv",
        "integritycheckvalue",
        "nochecksumcheck",
    ] {
        assert!(Workarounds::parse(name).is_ok(), "{name}");
    }
}
