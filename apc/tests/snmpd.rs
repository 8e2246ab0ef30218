//! End-to-end: `ApcSnmpSwitch` against the real net-snmp `snmpd` on 127.0.0.1, with
//! the `fencekit-apc-snmp-sim` emulator behind it as a pass_persist program. Every
//! snmpd is started with its own configuration in a temporary directory and killed
//! by PID when its guard drops (also when a test panics).

use std::path::PathBuf;
use std::time::Duration;

use fencekit_apc::ber::dotted;
use fencekit_apc::profile::Family;
use fencekit_apc::sim::{DeviceState, Fault, SimPdu};
use fencekit_apc::{ApcSnmpSwitch, SCHEMA};
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{DeviceCommand, DeviceError, Instant, Plug, PowerState, PowerSwitch, SwitchTo};
use fencekit_tests::peers;
use fencekit_tests::snmpd::{
    AuthProtocol, Community, PassPersist, PrivProtocol, SnmpUser, SnmpdOptions,
};

const RW: &str = "private-rw";
const RO: &str = "public-ro";

/// The peer-missing rule: fail under FENCEKIT_REQUIRE_PEERS=1, else skip loudly.
fn peer() -> Option<PathBuf> {
    peers::require("snmpd", "snmpd")
}

fn user(name: &str, auth: AuthProtocol, pass: &str, write: bool) -> SnmpUser {
    SnmpUser {
        name: name.into(),
        auth,
        auth_pass: pass.into(),
        privacy: None,
        write,
    }
}

/// A running snmpd (the harness's launcher) with an emulated PDU behind it.
struct Snmpd {
    snmpd: fencekit_tests::snmpd::Snmpd,
    dir: tempfile::TempDir,
    port: u16,
}

impl Snmpd {
    async fn start(pdu: &SimPdu) -> Snmpd {
        Snmpd::start_claiming(pdu, &dotted(&pdu.family.sys_object_id())).await
    }

    /// Starts snmpd answering `sys_object_id` for sysObjectID.0.
    async fn start_claiming(pdu: &SimPdu, sys_object_id: &str) -> Snmpd {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pdu.state");
        pdu.save(&state).unwrap();
        let program = fencekit_tests::snmpd::emulator_program(
            dir.path(),
            std::path::Path::new(env!("CARGO_BIN_EXE_fencekit-apc-snmp-sim")),
            &state,
        )
        .unwrap();
        let mut privuser = user("privuser", AuthProtocol::Sha, "priv-auth-phrase", true);
        privuser.privacy = Some((PrivProtocol::Aes, "priv-priv-phrase".into()));
        let snmpd = fencekit_tests::snmpd::Snmpd::start(SnmpdOptions {
            communities: vec![
                Community {
                    name: RW.into(),
                    write: true,
                },
                Community {
                    name: RO.into(),
                    write: false,
                },
            ],
            users: vec![
                user("md5user", AuthProtocol::Md5, "md5-pass-phrase", true),
                user("shauser", AuthProtocol::Sha, "sha-pass-phrase", true),
                privuser,
                user(
                    "sha256user",
                    AuthProtocol::Sha256,
                    "sha256-pass-phrase",
                    true,
                ),
                user("rouser", AuthProtocol::Sha, "ro-pass-phrase", false),
            ],
            pass_persist: vec![PassPersist {
                oid: ".1.3.6.1.4.1.318".into(),
                program,
            }],
            sys_object_id: Some(sys_object_id.into()),
            ..SnmpdOptions::default()
        })
        .unwrap();
        let port = snmpd.port();
        let snmpd = Snmpd { snmpd, dir, port };
        snmpd.wait_ready(pdu.family).await;
        snmpd
    }

    /// Ready when the emulator behind it answers a read through the write community
    /// (our client sends again every second until the deadline).
    async fn wait_ready(&self, family: Family) {
        let switch = self.switch(&[
            ("community", RW),
            ("snmp_version", "2c"),
            ("profile", family.name()),
        ]);
        if let Err(e) = switch.list(Instant::now() + Duration::from_secs(15)).await {
            panic!("snmpd did not come up: {e}\n{}", self.log());
        }
    }

    fn log(&self) -> String {
        self.snmpd.daemon().log()
    }

    fn state(&self) -> SimPdu {
        SimPdu::load(&self.dir.path().join("pdu.state")).unwrap()
    }

    fn set_state(&self, pdu: &SimPdu) {
        pdu.save(&self.dir.path().join("pdu.state")).unwrap();
    }

    fn switch(&self, extra: &[(&str, &str)]) -> ApcSnmpSwitch {
        switch_for(self.port, extra)
    }
}

fn switch_for(port: u16, extra: &[(&str, &str)]) -> ApcSnmpSwitch {
    let port = port.to_string();
    let mut raw = vec![
        RawParam::text("ip", "127.0.0.1", Origin::new("test")),
        RawParam::text("ipport", port, Origin::new("test")),
    ];
    raw.extend(
        extra
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test"))),
    );
    let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    ApcSnmpSwitch::from_params(&params).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn named_pdu(family: Family) -> SimPdu {
    let mut pdu = SimPdu::new(family, 4);
    for (o, name) in pdu
        .outlets
        .iter_mut()
        .zip(["db-1", "web 2", "db-10", "spare"])
    {
        o.name = name.to_string();
    }
    pdu.outlets[3].on = false;
    pdu
}

/// The error of switching the outlet named `name` off, which must fail.
async fn refused_off(switch: &ApcSnmpSwitch, name: &str) -> DeviceError {
    switch
        .switch(&Plug::Name(name.into()), SwitchTo::Off, soon())
        .await
        .unwrap_err()
}

/// status, off, status, on, list: the whole round against one PDU.
async fn round_trip(snmpd: &Snmpd, switch: &ApcSnmpSwitch, plug: Plug, unit: u32, number: u32) {
    assert_eq!(switch.status(&plug, soon()).await.unwrap(), PowerState::On);
    switch.switch(&plug, SwitchTo::Off, soon()).await.unwrap();
    assert!(
        !snmpd.state().outlet(unit, number).unwrap().on,
        "the emulated outlet is off"
    );
    assert_eq!(switch.status(&plug, soon()).await.unwrap(), PowerState::Off);
    switch.switch(&plug, SwitchTo::On, soon()).await.unwrap();
    assert_eq!(switch.status(&plug, soon()).await.unwrap(), PowerState::On);
    let list = switch.list(soon()).await.unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    let state_of = |name: &str| {
        list.iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.state)
    };
    assert_eq!(state_of("web 2"), Some(PowerState::On), "{list:?}");
    assert_eq!(state_of("spare"), Some(PowerState::Off), "{list:?}");
    switch.check(soon()).await.unwrap();
}

#[tokio::test]
async fn v1_switches_an_rpdu_outlet_by_number_and_reads_it_back() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[("community", RW)]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn v2c_switches_an_rpdu2_outlet_by_exact_name() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu2)).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    // "db-1" must not match "db-10".
    round_trip(&snmpd, &switch, Plug::Name("db-1".into()), 1, 1).await;
}

#[tokio::test]
async fn v2c_switches_a_masterswitch_outlet() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::MasterSwitch)).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn v2c_switches_an_outlet_on_the_second_masterswitch_plus_unit() {
    if peer().is_none() {
        return;
    }
    let mut pdu = named_pdu(Family::MasterSwitchPlus);
    pdu.outlets[0].unit = 2; // db-1 is outlet 2:1
    let snmpd = Snmpd::start(&pdu).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    round_trip(&snmpd, &switch, Plug::parse("2:1"), 2, 1).await;
    // A bare name is looked for on every unit of the chain.
    assert_eq!(
        switch
            .status(&Plug::Name("db-1".into()), soon())
            .await
            .unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn v3_auth_no_priv_with_md5_switches_and_reads_back() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "md5user"),
        ("password", "md5-pass-phrase"),
        ("snmp_auth_prot", "MD5"),
        ("snmp_sec_level", "authNoPriv"),
    ]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn v3_auth_no_priv_with_sha_switches_and_reads_back() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "shauser"),
        ("password", "sha-pass-phrase"),
        ("snmp_auth_prot", "SHA"),
    ]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn v3_auth_no_priv_with_sha256_switches_and_reads_back() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "sha256user"),
        ("password", "sha256-pass-phrase"),
        ("snmp_auth_prot", "SHA256"),
    ]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn v3_auth_priv_with_sha_and_aes_switches_and_reads_back() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "privuser"),
        ("password", "priv-auth-phrase"),
        ("snmp_auth_prot", "SHA"),
        ("snmp_priv_prot", "AES"),
        ("snmp_priv_passwd", "priv-priv-phrase"),
    ]);
    round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
}

#[tokio::test]
async fn a_wrong_community_gets_no_answer_and_the_error_says_to_check_it() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[("community", "wrong-community"), ("snmp_version", "2c")]);
    let err = switch
        .status(
            &Plug::Number(1),
            Instant::now() + Duration::from_millis(2500),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::NoAnswer { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("no SNMP answer from 127.0.0.1:{}", snmpd.port)),
        "{text}"
    );
    assert!(text.contains("community"), "{text}");
    assert!(
        !text.contains("wrong-community"),
        "the community leaked: {text}"
    );
}

#[tokio::test]
async fn a_read_only_community_is_refused_writes_in_v1_and_v2c() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    for version in ["1", "2c"] {
        let switch = snmpd.switch(&[("community", RO), ("snmp_version", version)]);
        assert_eq!(
            switch.status(&Plug::Number(1), soon()).await.unwrap(),
            PowerState::On
        );
        let err = switch
            .switch(&Plug::Number(1), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::Refused(_)), "v{version}: {err}");
        assert!(err.to_string().contains("read-only"), "v{version}: {err}");
        // A monitor reads only (it runs every few seconds; a write would log a
        // configuration change on the card each time): read-only credentials pass it,
        // and show at the first switch, as above.
        switch.check(soon()).await.unwrap();
    }
    assert!(snmpd.state().outlet(1, 1).unwrap().on);
}

/// `switch` is fence_apc's (the console's): fence_apc_snmp has none, ignores a
/// `switch=2` and switches unit 1. Over SNMP anything but 1 is refused before a
/// device is built (the unit goes in the plug, `2:1`); `switch=1` is unit 1.
#[tokio::test]
async fn switch_other_than_1_is_refused_over_snmp_and_nothing_is_switched() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let raw: Vec<RawParam> = [
        ("ip", "127.0.0.1"),
        ("ipport", &snmpd.port.to_string()),
        ("community", RW),
        ("switch", "2"),
    ]
    .iter()
    .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
    .collect();
    let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    let err = ApcSnmpSwitch::from_params(&params).unwrap_err();
    assert!(err.to_string().contains("plug=2:OUTLET"), "{err}");
    assert!(snmpd.state().outlet(1, 1).unwrap().on);
    let only = snmpd.switch(&[("community", RW), ("switch", "1")]);
    only.switch(&Plug::Number(1), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert!(!snmpd.state().outlet(1, 1).unwrap().on);
}

#[tokio::test]
async fn a_read_only_v3_user_is_refused_writes() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "rouser"),
        ("password", "ro-pass-phrase"),
        ("snmp_auth_prot", "SHA"),
    ]);
    assert_eq!(
        switch.status(&Plug::Number(1), soon()).await.unwrap(),
        PowerState::On
    );
    let err = switch
        .switch(&Plug::Number(1), SwitchTo::Off, soon())
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Refused(_)), "{err}");
    assert!(err.to_string().contains("rouser"), "{err}");
}

#[tokio::test]
async fn an_unknown_v3_user_and_a_wrong_pass_phrase_are_told_apart() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let stranger = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "nobody"),
        ("password", "whatever-phrase"),
    ]);
    let err = stranger.status(&Plug::Number(1), soon()).await.unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err}");
    assert!(err.to_string().contains("nobody"), "{err}");
    assert!(
        err.to_string().contains("usmStatsUnknownUserNames"),
        "{err}"
    );

    let wrong = snmpd.switch(&[
        ("snmp_version", "3"),
        ("username", "shauser"),
        ("password", "not-the-pass-phrase"),
        ("snmp_auth_prot", "SHA"),
    ]);
    let err = wrong.status(&Plug::Number(1), soon()).await.unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err}");
    assert!(err.to_string().contains("usmStatsWrongDigests"), "{err}");
    assert!(!err.to_string().contains("not-the-pass-phrase"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_no_snmp_answer_by_the_deadline() {
    let port = fencekit_tests::ports::free_udp_port().unwrap();
    let switch = switch_for(port, &[("community", RW)]);
    let err = switch
        .status(
            &Plug::Number(1),
            Instant::now() + Duration::from_millis(1500),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("no SNMP answer from 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("nothing is listening"), "{text}");
}

#[tokio::test]
async fn an_unknown_outlet_error_lists_the_outlets_the_pdu_has() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    for plug in [Plug::Number(9), Plug::Name("db".into())] {
        let err = switch
            .switch(&plug, SwitchTo::Off, soon())
            .await
            .unwrap_err();
        let DeviceError::UnknownPlug { known, .. } = &err else {
            panic!("{plug}: {err}")
        };
        assert!(
            known.contains("1 (db-1)") && known.contains("2 (web 2)"),
            "{err}"
        );
    }
    assert!(snmpd.state().outlets.iter().take(3).all(|o| o.on));
}

/// Two outlets of the plug's name (a node's two supplies) are an error, never the
/// first of them; also when one is padded with a NUL (a C string copied whole),
/// which net-snmp's tools never show: taken for another name, the second supply
/// stayed on while the first was reported fenced.
#[tokio::test]
async fn an_ambiguous_outlet_name_is_an_error_not_a_guess() {
    if peer().is_none() {
        return;
    }
    for (family, twin) in [(Family::Rpdu, "db-1"), (Family::Rpdu2, "db-1\0")] {
        let mut pdu = named_pdu(family);
        pdu.outlets[2].name = twin.into();
        let snmpd = Snmpd::start(&pdu).await;
        let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
        let err = refused_off(&switch, "db-1").await;
        assert!(err.to_string().contains("ambiguous"), "{twin:?}: {err}");
        assert!(snmpd.state().outlets.iter().take(3).all(|o| o.on));
        let listed = switch.list(soon()).await.unwrap();
        assert!(
            listed
                .iter()
                .all(|p| !p.name.as_deref().unwrap_or("").contains('\0')),
            "{listed:?}"
        );
    }
}

#[tokio::test]
async fn a_lying_outlet_still_reads_on_after_off_was_accepted() {
    if peer().is_none() {
        return;
    }
    let mut pdu = named_pdu(Family::Rpdu);
    pdu.outlets[0].fault = Fault::Lie;
    let snmpd = Snmpd::start(&pdu).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    switch
        .switch(&Plug::Number(1), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert_eq!(
        switch.status(&Plug::Number(1), soon()).await.unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn a_pending_command_reads_unknown_until_it_takes_effect() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu2)).await;
    let mut pdu = snmpd.state();
    pdu.outlets[0].fault = Fault::Pending(60_000);
    snmpd.set_state(&pdu);
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    switch
        .switch(&Plug::Number(1), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert_eq!(
        switch.status(&Plug::Number(1), soon()).await.unwrap(),
        PowerState::Unknown
    );
    // Let the pending change take effect now.
    let mut pdu = snmpd.state();
    pdu.outlets[0].pending = Some((false, 0));
    snmpd.set_state(&pdu);
    assert_eq!(
        switch.status(&Plug::Number(1), soon()).await.unwrap(),
        PowerState::Off
    );
}

#[tokio::test]
async fn a_slow_pdu_answers_within_a_generous_deadline_and_times_out_within_a_short_one() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let mut pdu = snmpd.state();
    pdu.outlets[0].fault = Fault::Slow(1500);
    snmpd.set_state(&pdu);
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    let err = switch
        .status(
            &Plug::Number(1),
            Instant::now() + Duration::from_millis(800),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // snmpd is still busy with the slow answers; a long deadline outlasts them.
    assert_eq!(
        switch
            .status(&Plug::Number(1), Instant::now() + Duration::from_secs(30))
            .await
            .unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn cycle_reboots_the_outlet_through_the_pdu() {
    if peer().is_none() {
        return;
    }
    let mut pdu = named_pdu(Family::MasterSwitchPlus);
    pdu.reboot_ms = 60_000;
    let snmpd = Snmpd::start(&pdu).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    // Not offered to the fence algorithm: the outlet reads "command pending", never
    // off, while the PDU reboots it, so fences drive it off, read it off, and on.
    assert!(!switch.supports(DeviceCommand::Cycle));
    switch
        .command(&Plug::Number(2), DeviceCommand::Cycle, soon())
        .await
        .unwrap();
    let outlet = snmpd.state().outlet(1, 2).unwrap().clone();
    assert!(
        !outlet.on && outlet.pending.map(|(on, _)| on) == Some(true),
        "{outlet:?}"
    );
    assert!(switch
        .command(&Plug::Number(2), DeviceCommand::Diag, soon())
        .await
        .is_err());
}

/// An unknown sysObjectID falls back to the MasterSwitch outlet table, as
/// fence_apc_snmp does: a unit that has it is switched and read back through it.
#[tokio::test]
async fn an_unknown_sys_object_id_falls_back_to_the_masterswitch_table() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start_claiming(
        &named_pdu(Family::MasterSwitch),
        ".1.3.6.1.4.1.318.1.3.2.12",
    )
    .await;
    let auto = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    assert_eq!(
        auto.status(&Plug::Number(2), soon()).await.unwrap(),
        PowerState::On
    );
    auto.switch(&Plug::Number(2), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert!(!snmpd.state().outlet(1, 2).unwrap().on);
    assert_eq!(
        auto.status(&Plug::Number(2), soon()).await.unwrap(),
        PowerState::Off
    );
}

/// A unit without the fallback table fails naming the sysObjectID and the way out,
/// and switches nothing; a forced profile works.
#[tokio::test]
async fn an_unknown_sys_object_id_is_named_and_a_forced_profile_works() {
    if peer().is_none() {
        return;
    }
    // The emulator serves rPDU tables, but snmpd claims to be another APC product.
    let snmpd = Snmpd::start_claiming(&named_pdu(Family::Rpdu), ".1.3.6.1.4.1.318.1.3.2.12").await;
    let auto = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    let err = auto
        .status(&Plug::Number(1), soon())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(".1.3.6.1.4.1.318.1.3.2.12") && err.contains("profile="),
        "{err}"
    );
    let forced = snmpd.switch(&[
        ("community", RW),
        ("snmp_version", "2c"),
        ("profile", "rpdu"),
    ]);
    assert_eq!(
        forced.status(&Plug::Number(1), soon()).await.unwrap(),
        PowerState::On
    );
}

/// Every profile through every security mode: status, off, on, list and check
/// (`round_trip`), then a reboot through core's fence algorithm (off confirmed, then
/// on confirmed), against one snmpd per profile.
#[tokio::test]
async fn every_profile_works_with_v1_v2c_and_each_v3_security_level() {
    if peer().is_none() {
        return;
    }
    let modes: [(&str, &[(&str, &str)]); 5] = [
        ("v1", &[("community", RW)]),
        ("v2c", &[("community", RW), ("snmp_version", "2c")]),
        (
            "v3 authNoPriv MD5",
            &[
                ("snmp_version", "3"),
                ("username", "md5user"),
                ("password", "md5-pass-phrase"),
                ("snmp_auth_prot", "MD5"),
                ("snmp_sec_level", "authNoPriv"),
            ],
        ),
        (
            "v3 authNoPriv SHA",
            &[
                ("snmp_version", "3"),
                ("username", "shauser"),
                ("password", "sha-pass-phrase"),
                ("snmp_auth_prot", "SHA"),
                ("snmp_sec_level", "authNoPriv"),
            ],
        ),
        (
            "v3 authPriv SHA+AES",
            &[
                ("snmp_version", "3"),
                ("username", "privuser"),
                ("password", "priv-auth-phrase"),
                ("snmp_auth_prot", "SHA"),
                ("snmp_priv_prot", "AES"),
                ("snmp_priv_passwd", "priv-priv-phrase"),
                ("snmp_sec_level", "authPriv"),
            ],
        ),
    ];
    for family in [
        Family::Rpdu,
        Family::Rpdu2,
        Family::MasterSwitch,
        Family::MasterSwitchPlus,
    ] {
        let snmpd = Snmpd::start(&named_pdu(family)).await;
        for (mode, params) in modes {
            let switch = snmpd.switch(params);
            round_trip(&snmpd, &switch, Plug::Number(1), 1, 1).await;
            let mut devices = fencekit_core::fence::Devices::new();
            devices.insert(
                "pdu".into(),
                std::sync::Arc::new(switch) as std::sync::Arc<dyn PowerSwitch>,
            );
            let target = fencekit_core::FenceTarget {
                node: "node1".into(),
                plugs: vec![fencekit_core::TargetPlug {
                    device: "pdu".into(),
                    plug: Plug::Number(2),
                }],
            };
            let outcome = fencekit_core::fence(
                &devices,
                &target,
                fencekit_core::FenceAction::Reboot,
                &fencekit_core::FenceOptions {
                    timeout: Duration::from_secs(20),
                    power_timeout: Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .await;
            assert!(
                outcome.success && outcome.fenced,
                "{}, {mode}: {}",
                family.name(),
                outcome.summary()
            );
            assert!(snmpd.state().outlet(1, 2).unwrap().on);
        }
    }
}

#[tokio::test]
async fn a_bare_name_is_looked_for_on_every_unit_and_unit_name_on_its_unit() {
    if peer().is_none() {
        return;
    }
    let mut pdu = named_pdu(Family::MasterSwitchPlus);
    pdu.outlets[0].unit = 2; // db-1 is outlet 2:1
    pdu.outlets[2].name = "db-1".into(); // and 1:3 is named db-1 too
    let snmpd = Snmpd::start(&pdu).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    // A bare name is looked for on every unit, as fence_apc_snmp does: two
    // outlets carry it (two power supplies, likely), so it is ambiguous, and
    // nothing is switched; 2:db-1 is the one of unit 2.
    let err = refused_off(&switch, "db-1").await;
    assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
    assert!(err.to_string().contains("1:3, 2:1"), "{err}");
    assert!(snmpd.state().outlet(1, 3).unwrap().on);
    assert!(snmpd.state().outlet(2, 1).unwrap().on);
    switch
        .switch(&Plug::parse("2:db-1"), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert!(!snmpd.state().outlet(2, 1).unwrap().on);

    // Two outlets of unit 1 named alike: an error naming both, neither switched.
    let mut pdu = named_pdu(Family::MasterSwitchPlus);
    pdu.outlets[1].name = "db-1".into();
    let snmpd = Snmpd::start(&pdu).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    let err = switch
        .switch(&Plug::parse("1:db-1"), SwitchTo::Off, soon())
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
    assert!(err.to_string().contains("1:1, 1:2"), "{err}");
    assert!(snmpd.state().outlets.iter().all(|o| o.on || o.number == 4));
}

#[tokio::test]
async fn a_plug_written_with_a_leading_zero_names_that_outlet() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    switch
        .switch(&Plug::parse("02"), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert!(!snmpd.state().outlet(1, 2).unwrap().on);
    assert!(snmpd.state().outlet(1, 1).unwrap().on);
}

#[tokio::test]
async fn method_cycle_drives_an_apc_outlet_off_reads_it_off_and_switches_it_on() {
    if peer().is_none() {
        return;
    }
    // The PDU's own reboot reads "command pending" (never off) while it runs, so a
    // fence could not see it off: core is not offered it and reboots off, on.
    let snmpd = Snmpd::start(&named_pdu(Family::Rpdu)).await;
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    let mut devices = fencekit_core::fence::Devices::new();
    devices.insert(
        "pdu".into(),
        std::sync::Arc::new(switch) as std::sync::Arc<dyn PowerSwitch>,
    );
    let target = fencekit_core::FenceTarget {
        node: "node1".into(),
        plugs: vec![fencekit_core::TargetPlug {
            device: "pdu".into(),
            plug: Plug::Number(2),
        }],
    };
    let outcome = fencekit_core::fence(
        &devices,
        &target,
        fencekit_core::FenceAction::Reboot,
        &fencekit_core::FenceOptions {
            timeout: Duration::from_secs(20),
            power_timeout: Duration::from_secs(5),
            method: fencekit_core::Method::Cycle,
            ..Default::default()
        },
    )
    .await;
    assert!(outcome.success && outcome.fenced, "{}", outcome.summary());
    assert!(outcome.plugs[0].off_confirmed.is_some(), "{outcome:?}");
    let outlet = snmpd.state().outlet(1, 2).unwrap().clone();
    assert!(outlet.on && outlet.pending.is_none(), "{outlet:?}");
}

#[tokio::test]
async fn a_table_missing_its_last_rows_is_refused_by_the_units_outlet_count() {
    if peer().is_none() {
        return;
    }
    // Two supplies on outlets named db-1: the second's row is the last one and its
    // objects are gone (`error`), so the walk ends before it. The unit's own count
    // says one more: no outlet is switched, neither by name nor by number.
    for family in [Family::Rpdu, Family::Rpdu2, Family::MasterSwitch] {
        let mut pdu = named_pdu(family);
        pdu.outlets[3].name = "db-1".into();
        pdu.outlets[3].on = true;
        pdu.outlets[3].fault = Fault::Error;
        let snmpd = Snmpd::start(&named_pdu(family)).await;
        snmpd.set_state(&pdu);
        for version in ["1", "2c"] {
            let switch = snmpd.switch(&[("community", RW), ("snmp_version", version)]);
            for plug in [Plug::Name("db-1".into()), Plug::Number(1)] {
                let err = switch
                    .switch(&plug, SwitchTo::Off, soon())
                    .await
                    .unwrap_err();
                assert!(
                    err.to_string().contains("lists 3 outlets")
                        && err.to_string().contains("says 4"),
                    "{family:?} v{version} {plug}: {err}"
                );
            }
            assert!(
                snmpd.state().outlets.iter().all(|o| o.on),
                "{family:?} v{version}: nothing switched"
            );
            let err = switch.list(soon()).await.unwrap_err();
            assert!(err.to_string().contains("says 4"), "{err}");
        }
    }

    // A unit that does not answer the count (firmware without the object) is
    // listed, and its outlets are switched by number; a name is refused, since a
    // row the table leaves out could carry it too, and the list says it is not
    // complete for names (cluster-glue's lookup of a host's outlets refuses then).
    let mut pdu = named_pdu(Family::Rpdu);
    pdu.counts = false;
    let snmpd = Snmpd::start(&pdu).await;
    for version in ["1", "2c"] {
        let switch = snmpd.switch(&[("community", RW), ("snmp_version", version)]);
        assert!(switch.names_complete());
        assert_eq!(switch.list(soon()).await.unwrap().len(), 4, "v{version}");
        assert!(!switch.names_complete(), "v{version}");
        let switch = snmpd.switch(&[("community", RW), ("snmp_version", version)]);
        let err = switch
            .switch(&Plug::Name("db-1".into()), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("does not say how many outlets"),
            "v{version}: {err}"
        );
        assert!(snmpd.state().outlets[0].on, "v{version}: nothing switched");
        switch
            .switch(&Plug::Number(1), SwitchTo::Off, soon())
            .await
            .unwrap();
        assert!(!snmpd.state().outlets[0].on, "v{version}: outlet 1 off");
        snmpd.set_state(&pdu);
    }
}

/// A MasterSwitch Plus chain of two units of four outlets, `node1` on 1:4 and 2:4
/// (a machine with two supplies on two units).
fn chain_of_two() -> SimPdu {
    let mut pdu = SimPdu::new(Family::MasterSwitchPlus, 8);
    for o in &mut pdu.outlets {
        if o.number > 4 {
            o.unit = 2;
            o.number -= 4;
        }
    }
    pdu.outlet_mut(1, 4).unwrap().name = "node1".into();
    pdu.outlet_mut(2, 4).unwrap().name = "node1".into();
    pdu
}

#[tokio::test]
async fn a_chain_missing_a_units_last_or_first_row_is_refused_by_that_units_outlet_count() {
    if peer().is_none() {
        return;
    }
    let snmpd = Snmpd::start(&chain_of_two()).await;
    // Unit 1's last row (one of node1's supplies) gone, then unit 2's first: the
    // numbering of what is left has no gap, the unit's own count tells.
    for (unit, number) in [(1, 4), (2, 1)] {
        let mut pdu = chain_of_two();
        pdu.outlet_mut(2, 1).unwrap().name = if unit == 2 { "node1" } else { "spare" }.into();
        pdu.outlet_mut(unit, number).unwrap().fault = Fault::Error;
        snmpd.set_state(&pdu);
        for version in ["1", "2c"] {
            let switch = snmpd.switch(&[("community", RW), ("snmp_version", version)]);
            let err = switch
                .switch(&Plug::Name("node1".into()), SwitchTo::Off, soon())
                .await
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("lists 3 outlets on unit {unit}"))
                    && err
                        .to_string()
                        .contains("sPDUMasterStatusMSPOutletCount says 4"),
                "{unit}:{number} v{version}: {err}"
            );
            assert!(
                snmpd.state().outlets.iter().all(|o| o.on),
                "nothing switched"
            );
        }
    }
    // Whole, the name is on two units: ambiguous, and so is a name that differs from
    // the other supply's only in case.
    let mut pdu = chain_of_two();
    pdu.outlet_mut(2, 4).unwrap().name = "NODE1 ".into();
    snmpd.set_state(&pdu);
    let switch = snmpd.switch(&[("community", RW), ("snmp_version", "2c")]);
    let err = switch
        .switch(&Plug::Name("node1".into()), SwitchTo::Off, soon())
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
    assert!(err.to_string().contains("1:4, 2:4"), "{err}");
    assert!(
        snmpd.state().outlets.iter().all(|o| o.on),
        "nothing switched"
    );
    switch
        .switch(&Plug::parse("2:4"), SwitchTo::Off, soon())
        .await
        .unwrap();
    assert!(!snmpd.state().outlet(2, 4).unwrap().on);
}
