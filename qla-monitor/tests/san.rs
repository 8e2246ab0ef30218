//! End-to-end checks against SAN fixtures: each state of `storage.md` §1–§3 gives
//! the right verdict and reason, tools that hang or are missing give "unknown" by the
//! deadline, and the read probe never starts twice on a stuck device.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fencekit_core::storage::{StorageHealth, Verdict};
use fencekit_qla_monitor::{Backend, DeviceReport, SanCheck, SanConfig, Status};

fn check(config: SanConfig, devices: &[&str]) -> Vec<DeviceReport> {
    let devices: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    SanCheck::new(config).run_blocking(&devices, Instant::now() + Duration::from_secs(10))
}

fn one(config: SanConfig, device: &str) -> DeviceReport {
    check(config, &[device]).remove(0)
}

fn multipath_san(flags: [char; 4], table: &str) -> (San, SanConfig) {
    let san = San::new();
    san.four_path_map();
    san.partition_mounted("/srv/pvfs", "pvfs1", "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    let mut config = san.config();
    config.dmsetup = san.dmsetup(&dm_status(flags), table);
    (san, config)
}

#[test]
fn healthy_map_under_a_mount_point_is_healthy() {
    let (_san, config) = multipath_san(['A'; 4], TABLE_FAILING);
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Healthy, "{}", r.summary());
    assert_eq!(r.resolved.as_deref(), Some("dm-4"));
    assert_eq!(r.summary(), "all 4 paths to mpatha usable");
    assert_eq!(r.units[0].wwid.as_deref(), Some(WWID));
    let scsi = r.units[0].paths[2].scsi.as_ref().unwrap();
    assert_eq!(scsi.host.as_deref(), Some("host4"));
    assert_eq!(scsi.rport.as_deref(), Some("rport-4:0-2"));
    assert_eq!(scsi.hctl.unwrap().to_string(), "4:0:0:1");
}

#[test]
fn every_way_of_naming_the_device_reaches_the_same_map() {
    let (_san, config) = multipath_san(['A'; 4], TABLE_FAILING);
    for named in [
        "/srv/pvfs/",
        "-L pvfs1",
        "-Lpvfs1",
        "LABEL=pvfs1",
        "UUID=1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "-U 1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "/dev/mapper/mpatha",
        "/dev/mapper/mpatha1",
        "/dev/dm-3",
        "mpatha",
    ] {
        let r = one(config.clone(), named);
        assert_eq!(r.status, Status::Healthy, "{named}: {}", r.summary());
        assert_eq!(r.units.len(), 1, "{named}");
        assert_eq!(r.units[0].name, "mpatha", "{named}");
    }
}

#[test]
fn one_failed_path_is_degraded_with_the_disk_state_as_reason() {
    let (san, config) = multipath_san(['A', 'A', 'F', 'A'], TABLE_FAILING);
    san.set_disk_state("sdk", "transport-offline");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "3 of 4 paths to mpatha left: sdk transport-offline"
    );
    assert_eq!(r.status.nagios_code(), 1);
}

#[test]
fn a_path_failed_only_in_the_kernel_names_dm_multipath() {
    let (_san, config) = multipath_san(['A', 'F', 'A', 'A'], TABLE_FAILING);
    let r = one(config, "/dev/mapper/mpatha");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "3 of 4 paths to mpatha left: sdd failed in dm-multipath (fail count 1)"
    );
}

#[test]
fn all_paths_down_is_failed_and_says_io_will_queue() {
    let (san, config) = multipath_san(['F'; 4], TABLE_QUEUEING);
    san.set_hba_state(3, "Linkdown", "Link Down");
    san.set_disk_state("sdc", "blocked");
    san.set_disk_state("sdd", "blocked");
    san.set_rport_state(4, 2, "Blocked");
    san.set_rport_state(4, 3, "Blocked");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        r.summary(),
        "0 of 4 paths to mpatha left: HBA host3 Linkdown; host4 rport-4:0-2 Blocked; \
         host4 rport-4:0-3 Blocked; I/O to mpatha queues (queue_if_no_path): umount will hang"
    );
    assert_eq!(r.units[0].queue_if_no_path, Some(true));
    assert_eq!(r.status.nagios_code(), 2);
    let health = r.to_health().unwrap();
    assert!(matches!(health.verdict, Verdict::Failed { .. }));
    assert_eq!(health.usable_paths(), 0);
}

#[test]
fn an_hba_in_linkdown_makes_its_paths_unusable_before_the_kernel_fails_them() {
    let (san, config) = multipath_san(['A'; 4], TABLE_FAILING);
    san.set_hba_state(3, "Linkdown", "Link Down");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "2 of 4 paths to mpatha left: HBA host3 Linkdown"
    );
    let reasons = &r.units[0].paths[0].reasons;
    assert_eq!(
        reasons,
        &vec![
            "HBA host3 Linkdown".to_string(),
            "HBA host3 link Link Down".to_string()
        ]
    );
}

#[test]
fn a_not_present_rport_whose_disk_vanished_is_a_lost_path() {
    let (san, config) = multipath_san(['A', 'A', 'F', 'A'], TABLE_FAILING);
    san.set_rport_state(4, 2, "Not Present");
    san.remove_disk("sdk", "8:160");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "3 of 4 paths to mpatha left: path 8:160 gone from sysfs"
    );
}

#[test]
fn a_marginal_rport_degrades_without_losing_the_path() {
    let (san, config) = multipath_san(['A'; 4], TABLE_FAILING);
    san.set_rport_state(3, 1, "Marginal");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(r.units[0].usable, 4);
    assert_eq!(
        r.summary(),
        "4 of 4 paths to mpatha left: host3 rport-3:0-1 Marginal"
    );
}

#[test]
fn an_offline_lone_disk_is_failed() {
    let san = San::new();
    san.four_path_map();
    san.set_disk_state("sdc", "offline");
    let mut config = san.config();
    config.backend = Backend::Fc;
    let r = one(config.clone(), "/dev/sdc");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.summary(), "0 of 1 paths to sdc left: sdc offline");
    let ok = one(config, "/dev/sdd");
    assert_eq!(ok.status, Status::Healthy);
}

#[test]
fn an_lpfc_link_still_in_discovery_is_not_a_usable_path() {
    let san = San::new();
    san.hba(5, "Online", "lpfc", "Link Up - Discovery\n    Fabric");
    san.rport(5, 0, "Online");
    san.disk("sdq", "65:0", 5, 0, 0, "running");
    let r = one(san.config(), "/dev/sdq");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        r.summary(),
        "0 of 1 paths to sdq left: HBA host5 link Link Up - Discovery"
    );
    san.set_hba_state(5, "Online", "Link Up - Ready\n    Fabric");
    assert_eq!(one(san.config(), "/dev/sdq").status, Status::Healthy);
}

#[test]
fn backend_fc_reads_the_map_from_sysfs_and_needs_the_expected_count() {
    let san = San::new();
    san.four_path_map();
    san.remove_disk("sdk", "8:160");
    let mut config = san.config();
    config.backend = Backend::Fc;
    // Without an expected count the vanished path is invisible.
    assert_eq!(
        one(config.clone(), "/dev/mapper/mpatha").status,
        Status::Healthy
    );
    config.expected_paths = Some(4);
    let r = one(config, "/dev/mapper/mpatha");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "3 of 4 paths to mpatha left: 1 expected path not seen"
    );
}

#[test]
fn min_paths_two_fails_a_map_with_one_path_left() {
    let (_san, mut config) = multipath_san(['A', 'F', 'F', 'F'], TABLE_FAILING);
    config.min_paths = 2;
    assert_eq!(one(config, "/srv/pvfs").status, Status::Failed);
}

#[test]
fn multipathd_checker_states_are_used_when_it_answers() {
    let (san, mut config) = multipath_san(['A'; 4], TABLE_FAILING);
    config.multipathd = san.tool(
        "multipathd",
        &[("show", &fixture("multipathd-paths-one-faulty.txt"), 0)],
    );
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "3 of 4 paths to mpatha left: sdd checker faulty"
    );
}

#[test]
fn a_hanging_multipathd_costs_its_checker_states_not_the_verdict() {
    let (san, mut config) = multipath_san(['A', 'A', 'A', 'F'], TABLE_FAILING);
    config.multipathd = san.hanging_tool("multipathd");
    let begun = Instant::now();
    let r = SanCheck::new(config).run_blocking(
        &["/srv/pvfs".to_string()],
        Instant::now() + Duration::from_millis(600),
    );
    assert!(begun.elapsed() < Duration::from_secs(20));
    let r = &r[0];
    assert_eq!(r.status, Status::Degraded, "{}", r.summary());
    assert!(
        r.units[0]
            .notes
            .iter()
            .any(|n| n.starts_with("multipathd did not answer within")),
        "{:?}",
        r.units[0].notes
    );
}

#[test]
fn a_hanging_dmsetup_is_unknown_by_the_deadline() {
    let (san, mut config) = multipath_san(['A'; 4], TABLE_FAILING);
    config.dmsetup = san.hanging_tool("dmsetup");
    let begun = Instant::now();
    let r = SanCheck::new(config).run_blocking(
        &["/srv/pvfs".to_string()],
        Instant::now() + Duration::from_millis(300),
    );
    assert!(begun.elapsed() < Duration::from_secs(20));
    assert_eq!(r[0].status, Status::Unknown);
    assert!(
        r[0].summary()
            .starts_with("mpatha: dmsetup did not answer within"),
        "{}",
        r[0].summary()
    );
    // The sysfs view is still listed, for the log.
    assert_eq!(r[0].units[0].paths.len(), 4);
}

#[test]
fn garbage_from_dmsetup_is_unknown_not_healthy() {
    let san = San::new();
    san.four_path_map();
    let mut config = san.config();
    config.dmsetup = san.dmsetup("0 41943040 multipath 2 0 0 0 1 1 A 0 4 0 8:32 A\n", "");
    let r = one(config, "/dev/mapper/mpatha");
    assert_eq!(r.status, Status::Unknown);
    assert!(
        r.summary().contains("cannot read dmsetup status of mpatha"),
        "{}",
        r.summary()
    );
}

#[test]
fn a_missing_dmsetup_is_a_configuration_error() {
    let san = San::new();
    san.four_path_map();
    let r = one(san.config(), "/dev/mapper/mpatha");
    assert_eq!(r.status, Status::Unknown);
    assert!(
        r.summary().contains("dmsetup not found at"),
        "{}",
        r.summary()
    );
}

fn powerpath(output: &str, code: i32) -> (San, SanConfig) {
    let san = San::new();
    let mut config = san.config();
    config.powermt = san.tool("powermt", &[("display", output, code)]);
    (san, config)
}

#[test]
fn powerpath_with_one_dead_path_is_degraded() {
    let (_san, config) = powerpath(&fixture("powermt-symmetrix-one-dead.txt"), 0);
    let r = one(config, "/dev/emcpowerc1");
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(
        r.summary(),
        "1 of 2 paths to emcpowerc left: sdk (HBA 4, FA 10cA) dead"
    );
}

#[test]
fn powerpath_pseudo_device_dead_is_failed() {
    let (_san, config) = powerpath(&fixture("powermt-symmetrix-dead.txt"), 0);
    let r = one(config, "/dev/emcpowerc");
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.summary().starts_with(
            "0 of 2 paths to emcpowerc left: emcpowerc state=dead; sdc (HBA 3, FA 7cA) dead"
        ),
        "{}",
        r.summary()
    );
}

#[test]
fn powerpath_standby_paths_are_healthy_and_counted_apart() {
    let (_san, config) = powerpath(&fixture("powermt-clariion-standby.txt"), 0);
    let r = one(config, "emcpowerd");
    assert_eq!(r.status, Status::Healthy);
    assert_eq!(r.summary(), "all 2 paths to emcpowerd usable (1 standby)");
}

#[test]
fn powerpath_rows_are_joined_with_the_fc_view_when_sysfs_has_the_disk() {
    let (san, config) = powerpath(&fixture("powermt-symmetrix-one-dead.txt"), 0);
    san.hba(3, "Online", "qla2xxx", "Link Up - F_Port");
    san.hba(4, "Linkdown", "qla2xxx", "Link Down");
    san.rport(3, 0, "Online");
    san.rport(4, 2, "Blocked");
    san.disk("sdc", "8:32", 3, 0, 0, "running");
    san.disk("sdk", "8:160", 4, 2, 0, "blocked");
    let r = one(config, "/dev/emcpowerc");
    assert_eq!(
        r.summary(),
        "1 of 2 paths to emcpowerc left: HBA host4 Linkdown"
    );
}

#[test]
fn a_device_powermt_does_not_know_is_unknown() {
    let (_san, config) = powerpath(&fixture("powermt-bad-dev.txt"), 1);
    let r = one(config, "/dev/emcpowerz");
    assert_eq!(r.status, Status::Unknown);
    assert_eq!(
        r.summary(),
        "emcpowerz: powermt does not show emcpowerz: Bad dev value emcpowerz, or not under Powerpath control."
    );
}

#[test]
fn garbage_from_powermt_is_unknown() {
    let junk: String = (0..2000u32)
        .map(|i| char::from(b' ' + (i * 37 % 90) as u8))
        .collect();
    let (_san, config) = powerpath(&junk, 0);
    assert_eq!(one(config, "/dev/emcpowerc").status, Status::Unknown);
}

#[test]
fn a_missing_powermt_is_unknown_with_its_path() {
    let san = San::new();
    let r = one(san.config(), "/dev/emcpowera1");
    assert_eq!(r.status, Status::Unknown);
    assert!(
        r.summary().starts_with("emcpowera: powermt not found at "),
        "{}",
        r.summary()
    );
    assert_eq!(r.status.nagios_code(), 3);
}

#[test]
fn a_hanging_powermt_is_unknown_by_the_deadline_and_other_devices_still_answer() {
    let (san, mut config) = multipath_san(['A'; 4], TABLE_FAILING);
    config.powermt = san.hanging_tool("powermt");
    let begun = Instant::now();
    let reports = SanCheck::new(config).run_blocking(
        &["/dev/emcpowera".to_string(), "/srv/pvfs".to_string()],
        Instant::now() + Duration::from_millis(300),
    );
    assert!(begun.elapsed() < Duration::from_secs(20));
    assert_eq!(reports[0].status, Status::Unknown);
    assert!(
        reports[0]
            .summary()
            .starts_with("emcpowera: powermt did not answer within 0."),
        "{}",
        reports[0].summary()
    );
    assert_eq!(reports[1].status, Status::Healthy);
    assert_eq!(fencekit_qla_monitor::overall(&reports), Status::Unknown);
}

#[test]
fn names_that_lead_nowhere_are_unknown_with_the_reason() {
    let (_san, config) = multipath_san(['A'; 4], TABLE_FAILING);
    let reports = check(
        config,
        &[
            "/srv/not-mounted",
            "-L nolabel",
            "/dev/sdzz",
            "",
            "../../etc/passwd",
            "/dev/../../x",
        ],
    );
    assert_eq!(
        reports[0].summary(),
        "/srv/not-mounted: no filesystem is mounted there (per /proc/self/mountinfo)"
    );
    assert_eq!(
        reports[1].summary(),
        "-L nolabel: no label link /dev/disk/by-label/nolabel"
    );
    assert_eq!(reports[2].summary(), "/dev/sdzz: no such block device");
    assert!(reports.iter().all(|r| r.status == Status::Unknown));
}

#[test]
fn a_network_filesystem_is_not_a_san_device() {
    let san = San::new();
    san.mount("/mnt/nfs", "0:52", "server:/export", "nfs4");
    let r = one(san.config(), "/mnt/nfs");
    assert_eq!(r.status, Status::Unknown);
    assert!(
        r.summary().contains("not a block device (nfs4)"),
        "{}",
        r.summary()
    );
}

#[tokio::test]
async fn storage_health_gives_core_verdicts_with_unknown_for_a_hung_tool() {
    let (san, config) = multipath_san(['A', 'A', 'F', 'A'], TABLE_FAILING);
    san.set_disk_state("sdk", "offline");
    let check = SanCheck::new(config.clone());
    let deadline = fencekit_core::Instant::now() + Duration::from_secs(10);
    let health = check
        .check(&["/srv/pvfs".to_string()], deadline)
        .await
        .unwrap();
    assert_eq!(health[0].device, "/srv/pvfs");
    assert_eq!(health[0].usable_paths(), 3);
    assert_eq!(
        health[0].verdict,
        Verdict::Degraded {
            reasons: vec!["3 of 4 paths to mpatha left: sdk offline".to_string()]
        }
    );
    let sdk = health[0].paths.iter().find(|p| p.path == "sdk").unwrap();
    assert_eq!(sdk.reason.as_deref(), Some("sdk offline"));

    let mut hung = config;
    hung.powermt = san.hanging_tool("powermt");
    let health = SanCheck::new(hung)
        .check(
            &["/dev/emcpowera".to_string()],
            fencekit_core::Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap();
    let Verdict::Unknown { reasons } = &health[0].verdict else {
        panic!(
            "a hung powermt must give unknown, not {:?}",
            health[0].verdict
        );
    };
    assert!(reasons[0].contains("powermt did not answer"), "{reasons:?}");
}

#[test]
fn reports_serialise_for_json_output() {
    let (_san, config) = multipath_san(['A', 'A', 'F', 'A'], TABLE_FAILING);
    let r = one(config, "/srv/pvfs");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["units"][0]["layer"], "multipath");
    assert_eq!(json["units"][0]["paths"][2]["usable"], false);
}

// ---- read probe ----

fn probing(dd_body: &str) -> (San, SanConfig) {
    let (san, mut config) = multipath_san(['A'; 4], TABLE_FAILING);
    config.probe = true;
    config.dd = san.script("dd", dd_body);
    (san, config)
}

#[test]
fn a_probe_that_reads_keeps_the_device_healthy() {
    let (san, config) = probing("echo \"$@\" > \"$(dirname \"$0\")/dd.args\"; exit 0");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Healthy, "{}", r.summary());
    assert!(
        r.notes.iter().any(|n| n == "read probe of /dev/dm-4 ok"),
        "{:?}",
        r.notes
    );
    let args = std::fs::read_to_string(san.root().join("bin/dd.args")).unwrap();
    assert!(
        args.contains("iflag=direct") && args.contains("count=1") && args.contains("/dev/dm-4")
    );
}

#[test]
fn a_probe_that_fails_fails_the_device() {
    let (_san, config) = probing("echo 'dd: error reading: Input/output error' >&2; exit 1");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        r.summary(),
        "all 4 paths to mpatha usable | read probe of /dev/dm-4 failed: dd: error reading: Input/output error"
    );
}

#[test]
fn a_probe_past_its_deadline_fails_and_the_check_returns() {
    let (_san, config) = probing("sleep 30");
    let begun = Instant::now();
    let r = SanCheck::new(config).run_blocking(
        &["/srv/pvfs".to_string()],
        Instant::now() + Duration::from_millis(400),
    );
    assert!(begun.elapsed() < Duration::from_secs(20));
    assert_eq!(r[0].status, Status::Failed);
    assert!(
        r[0].problems[0].starts_with("read probe of /dev/dm-4 did not complete within"),
        "{:?}",
        r[0].problems
    );
}

#[test]
fn no_probe_starts_on_a_device_whose_earlier_probe_is_still_stuck() {
    let (san, config) = probing("touch \"$(dirname \"$0\")/dd.ran\"; exit 0");
    // A probe left by an earlier process, still alive (a sleep stands in for a
    // reader in D state).
    let stuck = KillOnDrop(
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap(),
    );
    let check = SanCheck::new(config.clone());
    fencekit_qla_monitor::ProbeRegistry::new(config.run_dir.clone()).record_foreign_probe(
        "dm-4",
        stuck.0.id(),
        Duration::from_secs(120),
    );
    let r = check.run_blocking(
        &["/srv/pvfs".to_string()],
        Instant::now() + Duration::from_secs(10),
    );
    assert_eq!(r[0].status, Status::Failed);
    assert!(
        r[0].problems[0].starts_with("read probe of /dev/dm-4 stuck since ")
            && r[0].problems[0].ends_with(&format!("(pid {}); no new probe started", stuck.0.id())),
        "{:?}",
        r[0].problems
    );
    assert!(!san.root().join("bin/dd.ran").exists());

    // Once that process is gone, the record is dropped and probing resumes.
    drop(stuck);
    let r = check.run_blocking(
        &["/srv/pvfs".to_string()],
        Instant::now() + Duration::from_secs(10),
    );
    assert_eq!(r[0].status, Status::Healthy, "{:?}", r[0].problems);
    assert!(san.root().join("bin/dd.ran").exists());
    assert!(!config.run_dir.unwrap().join("probe-dm-4.state").exists());
}

#[test]
fn no_probe_is_started_on_a_device_with_no_usable_path() {
    let (san, mut config) = multipath_san(['F'; 4], TABLE_QUEUEING);
    config.probe = true;
    config.dd = san.script("dd", "touch \"$(dirname \"$0\")/dd.ran\"; exit 0");
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Failed);
    assert!(!san.root().join("bin/dd.ran").exists());
}

#[test]
fn a_missing_dd_makes_the_probe_unknown_not_failed() {
    let (_san, mut config) = multipath_san(['A'; 4], TABLE_FAILING);
    config.probe = true;
    let r = one(config, "/srv/pvfs");
    assert_eq!(r.status, Status::Unknown);
    assert!(
        r.problems[0].contains("dd not found at"),
        "{:?}",
        r.problems
    );
}
