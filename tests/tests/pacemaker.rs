//! A real Pacemaker fences through fencekit: a single-node cluster (corosync +
//! pacemakerd, no systemd) runs `stonith:fence_fencekit_sim` and
//! `stonith:fence_fencekit_ipmi` (against real `ipmi_sim` BMCs) as fencing devices, and
//! `stonith_admin` asks its fencer to fence and reboot nodes mapped to the simulated
//! device's outlets with `pcmk_host_map`. The device's state file, shared with the
//! agent processes the fencer spawns, shows what really happened to each outlet.
//!
//! One cluster start (about 25 s) serves every check, so they are steps of one test.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use fencekit_tests::bridge::{sim_states, Installed};
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::pacemaker::{running_cluster_daemons, Cluster};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;

/// What `stonith_admin` may take: the fencer's own timeout plus start-up slack.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

fn cluster_peers_present() -> bool {
    let present = peers::require_all(&[
        ("corosync", "corosync"),
        ("corosync-quorumtool", "corosync"),
        ("pacemakerd", "pacemaker"),
        ("stonith_admin", "pacemaker-cli-utils"),
        ("cibadmin", "pacemaker-cli-utils"),
        ("crm_mon", "pacemaker-cli-utils"),
        ("crm_attribute", "pacemaker-cli-utils"),
    ])
    .is_some();
    present && peers::require_root("a Pacemaker cluster")
}

#[test]
fn pacemaker_fences_and_reboots_through_fencekit_agents_and_fails_on_a_lying_device() {
    if !cluster_peers_present() {
        return;
    }
    let installed = Installed::new().unwrap();
    let _agent = SystemLink::fence_agent(&installed, "sim").unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(device_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = device_dir.path().join("pdu-state");
    let state_text = state.to_str().unwrap();

    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    cluster
        .add_stonith(
            "fencekit-pdu",
            "fence_fencekit_sim",
            &[
                ("plugs", "4"),
                ("state_file", state_text),
                // node2 has two power supplies; node3's outlet accepts off and stays on.
                ("pcmk_host_map", "node2:1,2;node3:3"),
                ("lying_plugs", "3"),
                ("power_timeout", "3"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}\npacemaker.log:\n{}", cluster.log_tail(40)));

    // Step 1: fence node2: both of its outlets off, nobody else's.
    let fence = cluster
        .stonith_admin(&["--fence", "node2", "--timeout", "60"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        fence.status.success(),
        "stonith_admin --fence node2 failed: {}\npacemaker.log:\n{}",
        fence.text(),
        cluster.log_tail(40)
    );
    let states = sim_states(&state).unwrap();
    assert_eq!(
        states.into_iter().collect::<Vec<_>>(),
        [(1, false), (2, false), (3, true), (4, true)]
    );

    // Step 2: reboot node2: off (already), then both outlets on again.
    let reboot = cluster
        .stonith_admin(&["--reboot", "node2", "--timeout", "60"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        reboot.status.success(),
        "stonith_admin --reboot node2 failed: {}\npacemaker.log:\n{}",
        reboot.text(),
        cluster.log_tail(40)
    );
    let states = sim_states(&state).unwrap();
    assert_eq!(
        states.into_iter().collect::<Vec<_>>(),
        [(1, true), (2, true), (3, true), (4, true)]
    );

    // Step 3: node3's outlet lies: the agent never confirms off, so the fencer must
    // not report node3 fenced.
    let lying = cluster
        .stonith_admin(&["--fence", "node3", "--timeout", "20"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        !lying.status.success(),
        "stonith_admin --fence node3 succeeded against a lying outlet: {}",
        lying.text()
    );
    assert_eq!(sim_states(&state).unwrap().get(&3), Some(&true));

    // Step 4: the fencer's history (without --verbose: successful operations only)
    // has node2 fenced and node3 never; with --verbose, node3's fencing as failed.
    let history = cluster
        .stonith_admin(&["--history", "node2"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        history.stdout.contains("off of node2 successful"),
        "history of node2: {}",
        history.text()
    );
    let history = cluster
        .stonith_admin(&["--history", "node3"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        !history.stdout.contains("successful"),
        "history of node3: {}",
        history.text()
    );
    let history = cluster
        .stonith_admin(&["--history", "node3", "--verbose"], ADMIN_TIMEOUT)
        .unwrap();
    assert!(
        history.stdout.contains("off of node3 failed"),
        "history of node3: {}\nfence node3 said: {}\npacemaker.log:\n{}",
        history.text(),
        lying.text(),
        cluster.log_tail(40)
    );

    // Step 5: fence_fencekit_ipmi against real ipmi_sim BMCs: node4's BMC obeys,
    // node5's accepts off and stays on.
    if peers::require("ipmi_sim", "openipmi").is_some() {
        let _ipmi_agent = SystemLink::fence_agent(&installed, "ipmi").unwrap();
        let options = IpmiSimOptions::default();
        let password = options.password.clone();
        let node4 = IpmiSim::start(options).unwrap();
        let node5 = IpmiSim::start(IpmiSimOptions {
            power: PowerProgram::Lie,
            ..IpmiSimOptions::default()
        })
        .unwrap();
        for (id, node, bmc) in [
            ("fencekit-bmc4", "node4", &node4),
            ("fencekit-bmc5", "node5", &node5),
        ] {
            let port = bmc.port().to_string();
            cluster
                .add_stonith(
                    id,
                    "fence_fencekit_ipmi",
                    &[
                        ("ip", "127.0.0.1"),
                        ("ipport", &port),
                        ("username", bmc.user()),
                        ("password", &password),
                        ("pcmk_host_list", node),
                        ("power_timeout", "3"),
                    ],
                )
                .unwrap_or_else(|e| panic!("{e}\npacemaker.log:\n{}", cluster.log_tail(40)));
        }
        let fence = cluster
            .stonith_admin(&["--fence", "node4", "--timeout", "60"], ADMIN_TIMEOUT)
            .unwrap();
        assert!(
            fence.status.success(),
            "stonith_admin --fence node4 failed: {}\npacemaker.log:\n{}",
            fence.text(),
            cluster.log_tail(40)
        );
        assert!(!node4.power_state().unwrap(), "node4's BMC still reads on");
        let reboot = cluster
            .stonith_admin(&["--reboot", "node4", "--timeout", "60"], ADMIN_TIMEOUT)
            .unwrap();
        assert!(reboot.status.success(), "--reboot node4: {}", reboot.text());
        assert!(
            node4.power_state().unwrap(),
            "node4's BMC did not come back on"
        );
        let lying = cluster
            .stonith_admin(&["--fence", "node5", "--timeout", "20"], ADMIN_TIMEOUT)
            .unwrap();
        assert!(
            !lying.status.success(),
            "stonith_admin --fence node5 succeeded against a lying BMC: {}",
            lying.text()
        );
        assert!(node5.power_state().unwrap());

        // A BMC device with no pcmk_host_list, as many fence_ipmilan devices are
        // configured: Pacemaker reads from the metadata that there is no `list`
        // (as with fence_ipmilan) and checks the node with `status`, so the device
        // is found and fences. (Had it offered `list`, Pacemaker would look for
        // node6 in a list that names only the chassis, and find no device.)
        let node6 = IpmiSim::start(IpmiSimOptions::default()).unwrap();
        let port = node6.port().to_string();
        cluster
            .add_stonith(
                "fencekit-bmc6",
                "fence_fencekit_ipmi",
                &[
                    ("ip", "127.0.0.1"),
                    ("ipport", &port),
                    ("username", node6.user()),
                    ("password", &password),
                    ("power_timeout", "3"),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}\npacemaker.log:\n{}", cluster.log_tail(40)));
        let fence = cluster
            .stonith_admin(&["--fence", "node6", "--timeout", "60"], ADMIN_TIMEOUT)
            .unwrap();
        assert!(
            fence.status.success(),
            "stonith_admin --fence node6 (no pcmk_host_list) failed: {}\npacemaker.log:\n{}",
            fence.text(),
            cluster.log_tail(40)
        );
        assert!(!node6.power_state().unwrap(), "node6's BMC still reads on");
    }

    // Step 6: teardown leaves no daemon and no cluster state behind.
    drop(cluster);
    assert_eq!(running_cluster_daemons(), Vec::<String>::new());
    for dir in ["/var/lib/pacemaker/cib", "/var/lib/pacemaker/pengine"] {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left in {dir}: {left:?}");
    }
    let ring_ids: Vec<_> = std::fs::read_dir("/var/lib/corosync")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ringid_"))
        .collect();
    assert!(ring_ids.is_empty(), "left by corosync: {ring_ids:?}");
}
