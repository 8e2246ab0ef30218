//! fencekit inside a real distributed cluster: three Pacemaker nodes on this machine
//! (corosync + pacemakerd in namespaces, see `fencekit_tests::cluster`), fenced with
//! `stonith:fence_fencekit_ipmi` through one `ipmi_sim` BMC per node, running a group
//! with `ocf:heartbeat:Filesystem` on a disk every node sees.
//!
//! Judged from outside the cluster: the BMC hooks' power log (a node is off when its
//! init was killed) and an oracle that samples every mount namespace's mount table
//! (the shared filesystem must never be mounted in two at once).
//!
//! One lab boot serves the scenarios, as steps of one test: the node lost is fenced
//! and the group moves; with every node back, a partition of one node against two
//! fences exactly the minority; with every node back again, a node whose BMC lies
//! is lost, and its group must stay where it is, blocked, while fencing fails.

use std::time::{Duration, Instant, SystemTime};

use fencekit_tests::bridge::Installed;
use fencekit_tests::cluster::{unix_ms, Lab, LabOptions, FS_ID, PEERS, SERVICE_ADDR};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;

/// From a link cut to the node fenced and the group started elsewhere: ~9 s measured
/// with fence_ipmilan; the bound is for a loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(90);
/// A node powered on again rejoins within seconds.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(90);
/// Two failed fencing attempts against a lying BMC (`power_timeout` 10 s each).
const FAILED_FENCING_TIMEOUT: Duration = Duration::from_secs(120);

fn lab_peers_present() -> bool {
    peers::require_all(PEERS).is_some() && peers::require_root("the cluster lab")
}

/// The node whose mount namespace holds the shared filesystem, per the oracle.
fn group_node(lab: &Lab) -> Result<String, String> {
    match lab.mounts().current.as_slice() {
        [one] if lab.node_names().contains(one) => Ok(one.clone()),
        other => Err(format!("the shared filesystem is mounted in {other:?}")),
    }
}

/// Cable in, powered on, rejoined: the lab has every node online again.
fn bring_back(lab: &mut Lab, node: &str, witness: &str) {
    lab.restore_link(node).unwrap();
    lab.power_on(node).unwrap();
    let all = lab.node_names();
    lab.wait_until("every node is online again", REJOIN_TIMEOUT, || {
        let online = lab.online_seen_by(witness)?;
        if online == all {
            Ok(())
        } else {
            Err(format!("online: {online:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn seconds_since(start: SystemTime, at_ms: u128) -> f64 {
    (at_ms.saturating_sub(unix_ms(start))) as f64 / 1000.0
}

#[test]
fn a_lost_node_is_fenced_through_fencekit_before_its_group_moves_a_partition_fences_only_the_minority_and_a_lying_bmc_blocks_the_group(
) {
    if !lab_peers_present() {
        return;
    }
    let test_started = Instant::now();
    let installed = Installed::new().unwrap();
    // Pacemaker looks for fence agents only in /usr/sbin; every node shares this
    // machine's file system.
    let agent = SystemLink::fence_agent(&installed, "ipmi").unwrap();
    let mut lab = Lab::start(LabOptions {
        nodes: 3,
        fence_agent: agent.path().to_path_buf(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "lab formed and configured in {:.1} s",
        test_started.elapsed().as_secs_f64()
    );

    // Scenario 1: the node running the group loses its link.
    let victim = group_node(&lab).unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    let cut_at = SystemTime::now();
    lab.cut_link(&victim).unwrap();
    let fenced = lab
        .wait_until(&format!("{victim} is fenced"), FAILOVER_TIMEOUT, || {
            lab.power_events()
                .into_iter()
                .find(|e| e.node == victim && e.what == "off" && e.at_ms >= unix_ms(cut_at))
                .ok_or_else(|| "no power off in the hook log yet".to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let new_home = lab
        .wait_until(
            "the group runs on another node",
            FAILOVER_TIMEOUT,
            || match group_node(&lab) {
                Ok(node) if node != victim => Ok(node),
                Ok(node) => Err(format!("still on {node}")),
                Err(e) => Err(e),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    lab.wait_until(
        "the service address moves with the group",
        FAILOVER_TIMEOUT,
        || match lab.service_address_holders() {
            Ok(holders) if holders == [new_home.clone()] => Ok(()),
            Ok(holders) => Err(format!("{SERVICE_ADDR} is on {holders:?}")),
            Err(e) => Err(e.to_string()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let record = lab.mounts();
    let (up_at, _) = record
        .changes
        .iter()
        .find(|(_, holders)| holders.contains(&new_home))
        .cloned()
        .expect("the oracle saw the new mount");
    assert!(!lab.is_powered(&victim), "{victim} is still powered");
    assert!(
        unix_ms(up_at) >= fenced.at_ms,
        "the group started on {new_home} before {victim} was off"
    );
    let history = lab.fence_history(&new_home, &victim).unwrap();
    assert!(
        history.contains(&format!("off of {victim} successful")),
        "fence history of {victim}: {history}"
    );
    assert_eq!(
        record.max_at_once, 1,
        "the shared filesystem was mounted twice at once: {:?}",
        record.changes
    );
    println!(
        "node lost: {victim} fenced {:.2} s after its link was cut, {FS_ID} up on {new_home} after {:.2} s; max simultaneous mounts {} ({} samples, longest gap {} ms)",
        seconds_since(cut_at, fenced.at_ms),
        seconds_since(cut_at, unix_ms(up_at)),
        record.max_at_once,
        record.samples,
        record.longest_gap.as_millis()
    );

    let all = lab.node_names();
    bring_back(&mut lab, &victim, &new_home);

    // Scenario 4: a partition of one node against two, the group on the majority's
    // side: exactly the minority node is fenced (the majority has quorum, the
    // minority freezes), and the group stays where it runs.
    let home = group_node(&lab).unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    let minority = all.iter().find(|n| **n != home).unwrap().clone();
    let cut_at = SystemTime::now();
    lab.cut_link(&minority).unwrap();
    let fenced = lab
        .wait_until(&format!("{minority} is fenced"), FAILOVER_TIMEOUT, || {
            lab.power_events()
                .into_iter()
                .find(|e| e.node == minority && e.what == "off" && e.at_ms >= unix_ms(cut_at))
                .ok_or_else(|| "no power off in the hook log yet".to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    lab.wait_until(
        &format!("{home} sees {minority} fenced"),
        FAILOVER_TIMEOUT,
        || {
            let history = lab
                .fence_history(&home, &minority)
                .map_err(|e| e.to_string())?;
            if history.contains(&format!("off of {minority} successful")) {
                Ok(())
            } else {
                Err(history)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let since_cut: Vec<_> = lab
        .power_events()
        .into_iter()
        .filter(|e| e.at_ms >= unix_ms(cut_at))
        .collect();
    assert!(
        since_cut.len() == 1 && since_cut[0].node == minority,
        "not exactly the minority was fenced: {since_cut:?}\n{}",
        lab.diagnostics()
    );
    let record = lab.mounts();
    assert!(
        record
            .changes
            .iter()
            .filter(|(at, _)| *at >= cut_at)
            .all(|(_, holders)| holders.as_slice() == std::slice::from_ref(&home))
            && record.current.as_slice() == std::slice::from_ref(&home),
        "the group left {home}: {:?}",
        record.changes
    );
    assert_eq!(record.max_at_once, 1, "{:?}", record.changes);
    println!(
        "partition 1 vs 2: only {minority} fenced, {:.2} s after the cut; the group stayed on {home}",
        seconds_since(cut_at, fenced.at_ms)
    );
    bring_back(&mut lab, &minority, &home);

    // Scenario 2: the node running the group is lost and its BMC lies: it accepts
    // off and keeps the node running. Fencing must fail, and the group must not
    // start anywhere else.
    let liar = group_node(&lab).unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    let witness = all.iter().find(|n| **n != liar).unwrap().clone();
    lab.make_bmc_lie(&liar).unwrap();
    let successes_before = lab
        .fence_history(&witness, &liar)
        .unwrap()
        .matches(&format!("of {liar} successful"))
        .count();
    let cut_at = SystemTime::now();
    lab.cut_link(&liar).unwrap();
    let history = lab
        .wait_until(
            &format!("fencing {liar} fails twice"),
            FAILED_FENCING_TIMEOUT,
            || {
                let lies = lab
                    .power_events()
                    .into_iter()
                    .filter(|e| e.node == liar && e.what == "lied-off")
                    .count();
                let history = lab
                    .fence_history(&witness, &liar)
                    .map_err(|e| e.to_string())?;
                if lies >= 2 && history.contains(&format!("of {liar} failed")) {
                    Ok(history)
                } else {
                    Err(format!("{lies} lied-off event(s); history: {history}"))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        lab.is_powered(&liar),
        "{liar} was powered off by a lying BMC"
    );
    assert!(
        !lab.power_events()
            .iter()
            .any(|e| e.node == liar && e.what == "off" && e.at_ms >= unix_ms(cut_at)),
        "the hook log shows {liar} off"
    );
    let successes = |text: &str| text.matches(&format!("of {liar} successful")).count();
    assert_eq!(
        successes(&history),
        successes_before,
        "a fencing of {liar} is recorded as successful: {history}"
    );
    let record = lab.mounts();
    let since_cut: Vec<_> = record
        .changes
        .iter()
        .filter(|(at, _)| *at >= cut_at)
        .collect();
    assert!(
        record.current == vec![liar.clone()]
            && since_cut
                .iter()
                .all(|(_, holders)| holders.as_slice() == [liar.clone()]),
        "the group moved off {liar} although it was never fenced: {since_cut:?}\n{}",
        lab.diagnostics()
    );
    assert_eq!(record.max_at_once, 1, "{:?}", record.changes);
    assert_eq!(
        lab.service_address_holders().unwrap(),
        std::slice::from_ref(&liar),
        "{SERVICE_ADDR} is held elsewhere"
    );
    let status = lab.crm_mon(&witness).unwrap();
    println!(
        "lying BMC: fencing {liar} failed, group stays blocked on it {:.1} s after the cut; max simultaneous mounts {} over the whole test ({} samples, longest gap {} ms)\n{history}\n{status}",
        SystemTime::now()
            .duration_since(cut_at)
            .unwrap_or_default()
            .as_secs_f64(),
        record.max_at_once,
        record.samples,
        record.longest_gap.as_millis()
    );

    // The machine as it was found.
    let left = lab.stop();
    assert!(left.is_empty(), "the lab left behind: {left:?}");
    drop(agent);
    println!(
        "cluster test took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
}
