//! `IfMibSwitch` against net-snmp's `snmpd` with the IF-MIB emulator behind it
//! (pass_persist, snmpd's own interface modules left out), for what real interfaces
//! never do on cue: an interface renumbered between reading the table and reading a
//! port back. Judged by the emulator's state file.

use std::path::Path;
use std::time::Duration;

use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{Instant, Plug, PowerSwitch, SwitchTo};
use fencekit_ifmib::sim::{DeviceState, SimSwitch};
use fencekit_ifmib::{IfMibSwitch, SCHEMA};
use fencekit_tests::peers;
use fencekit_tests::snmpd::{Snmpd, SnmpdOptions};

fn start(dir: &Path, switch: &SimSwitch) -> Snmpd {
    let state = dir.join("switch.state");
    switch.save(&state).unwrap();
    let emulator = Path::new(env!("CARGO_BIN_EXE_fencekit-ifmib-snmp-sim"));
    let program = fencekit_tests::snmpd::emulator_program(dir, emulator, &state).unwrap();
    Snmpd::start(SnmpdOptions::if_mib_emulator(&program, true)).unwrap()
}

fn switch_for(port: u16) -> IfMibSwitch {
    switch_for_version(port, "2c")
}

fn switch_for_version(port: u16, version: &str) -> IfMibSwitch {
    let raw: Vec<RawParam> = [
        ("ip", "127.0.0.1".to_string()),
        ("ipport", port.to_string()),
        ("community", "private".to_string()),
        ("snmp_version", version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| RawParam::text(k, v, Origin::new("test")))
    .collect();
    let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    IfMibSwitch::from_params(&params).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// The plug's interface moves to another ifIndex after the table was read, and a
/// new interface takes its old one: switching and reading back by the old index
/// would cut the newcomer and read it down as the plug. The read-back names the
/// interface in the same request, finds the name changed, and fails; the plug's own
/// port is still up, and nothing claims otherwise. A plug given as the ifIndex is
/// held to the names that index showed when the table was read.
#[tokio::test]
async fn an_interface_renumbered_after_the_table_was_read_is_never_read_back_as_the_plug() {
    if peers::require("snmpd", "snmpd").is_none() {
        return;
    }
    // By name, and by the ifIndex the table showed for it.
    for plug in [Plug::Name("eth1".into()), Plug::Number(5)] {
        let dir = tempfile::tempdir().unwrap();
        let mut sim = SimSwitch::new(6);
        sim.interfaces[4].descr = "eth1".into(); // ifIndex 5
        sim.interfaces[4].name = "eth1".into();
        let snmpd = start(dir.path(), &sim);
        let state = dir.path().join("switch.state");
        let switch = switch_for(snmpd.port());
        // The table is read (and kept for the operation) with eth1 at index 5.
        assert_eq!(
            switch.status(&plug, soon()).await.unwrap(),
            fencekit_core::PowerState::On
        );
        // eth1 moves to index 7; index 5 is now eth9.
        let mut moved = SimSwitch::load(&state).unwrap();
        let mut eth1 = moved.interfaces[4].clone();
        eth1.index = 7;
        moved.interfaces[4].descr = "eth9".into();
        moved.interfaces[4].name = "eth9".into();
        moved.interfaces.push(eth1);
        moved.save(&state).unwrap();

        let _ = switch.switch(&plug, SwitchTo::Off, soon()).await;
        let read = switch.status(&plug, soon()).await;
        let truth = SimSwitch::load(&state).unwrap();
        assert!(
            truth.interface(7).unwrap().up,
            "{plug}: eth1 truly still up"
        );
        assert!(
            read.as_ref()
                .is_err_and(|e| e.to_string().contains("no longer the one")),
            "{plug}: {read:?}"
        );
    }
}

/// Two ports carry the plug's name, and the second's ifDescr row is gone (listed in
/// ifXTable only), or its rows are gone altogether (the walk ends before it): the
/// plug is refused, never resolved to the one port left in view; nothing switched.
#[tokio::test]
async fn a_port_hidden_from_a_walk_never_leaves_its_twin_looking_unique() {
    if peers::require("snmpd", "snmpd").is_none() {
        return;
    }
    for hide in ["descr", "name", "rows"] {
        let dir = tempfile::tempdir().unwrap();
        let mut sim = SimSwitch::new(6);
        for n in [2, 5] {
            sim.interfaces[n].descr = "db1".into();
            sim.interfaces[n].name = "db1".into();
        }
        match hide {
            "descr" => sim.interfaces[5].descr = String::new(),
            // Its ifName row alone left out: the other twin looked unique by name.
            "name" => sim.interfaces[5].name = String::new(),
            _ => sim.interfaces[5].fault = fencekit_snmp::pass_persist::Fault::Error,
        }
        let snmpd = start(dir.path(), &sim);
        let switch = switch_for(snmpd.port());
        let err = switch
            .switch(&Plug::Name("db1".into()), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        let expected = match hide {
            "name" => "not under ifName",
            _ => "ifDescr",
        };
        assert!(err.to_string().contains(expected), "{hide}: {err}");
        let truth = SimSwitch::load(&dir.path().join("switch.state")).unwrap();
        assert!(
            truth.interfaces.iter().all(|i| i.up),
            "{hide}: nothing switched"
        );
    }
}

/// The whole ifName column lost from walks while each ifName still answers a Get:
/// the walk finds no names, as from an agent without ifXTable, and the twin that
/// shares the plug's name would look absent. Each interface's ifName is asked for,
/// the hidden one answers, and nothing is switched. An agent that truly has no
/// ifXTable (no ifName at all) is switched by ifDescr.
#[tokio::test]
async fn a_name_column_hidden_from_walks_is_found_by_asking_each_interface() {
    if peers::require("snmpd", "snmpd").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimSwitch::new(12);
    sim.interfaces[0].descr = "X".into();
    sim.interfaces[0].name = "X".into();
    sim.interfaces[10].name = "X".into();
    sim.names_unwalked = true;
    let snmpd = start(dir.path(), &sim);
    for version in ["1", "2c"] {
        let switch = switch_for_version(snmpd.port(), version);
        let err = switch
            .switch(&Plug::Name("X".into()), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("listed no ifName when walked"),
            "v{version}: {err}"
        );
        let truth = SimSwitch::load(&dir.path().join("switch.state")).unwrap();
        assert!(
            truth.interfaces.iter().all(|i| i.up),
            "v{version}: nothing switched"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimSwitch::new(3);
    for i in &mut sim.interfaces {
        i.name = String::new();
    }
    let snmpd = start(dir.path(), &sim);
    for version in ["1", "2c"] {
        let switch = switch_for_version(snmpd.port(), version);
        switch
            .switch(&Plug::Name("port2".into()), SwitchTo::Off, soon())
            .await
            .unwrap();
        let truth = SimSwitch::load(&dir.path().join("switch.state")).unwrap();
        assert!(!truth.interfaces[1].up, "v{version}: port2 down");
        switch
            .switch(&Plug::Name("port2".into()), SwitchTo::On, soon())
            .await
            .unwrap();
    }
}

/// A port set down that still reports ifOperStatus up is still passing traffic (or
/// on its way down): never read off, so a fence through it is not confirmed; once
/// it reports down, it reads off. Judged by the emulator's own state.
#[tokio::test]
async fn a_port_set_down_that_still_reports_up_is_not_read_off() {
    if peers::require("snmpd", "snmpd").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimSwitch::new(4);
    sim.oper_stuck_up = vec![3];
    let snmpd = start(dir.path(), &sim);
    let state = dir.path().join("switch.state");
    let switch = switch_for(snmpd.port());
    let plug = Plug::Number(3);
    switch.switch(&plug, SwitchTo::Off, soon()).await.unwrap();
    assert!(!SimSwitch::load(&state).unwrap().interface(3).unwrap().up);
    assert_eq!(
        switch.status(&plug, soon()).await.unwrap(),
        fencekit_core::PowerState::Unknown
    );
    let mut settled = SimSwitch::load(&state).unwrap();
    settled.oper_stuck_up.clear();
    settled.save(&state).unwrap();
    assert_eq!(
        switch.status(&plug, soon()).await.unwrap(),
        fencekit_core::PowerState::Off
    );
}
