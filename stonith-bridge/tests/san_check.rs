//! `stonith-bridge san-check` against SAN fixtures: one line per device with the
//! verdict, the lost paths with their reasons, Nagios exit codes (0/1/2/3), JSON
//! output, and UNKNOWN (not CRITICAL) for hung tools and bad command lines.

mod san_fixture;

use std::time::Duration;

use san_fixture::*;

const LIMIT: Duration = Duration::from_secs(60);

fn multipath(flags: [char; 4]) -> (San, Vec<String>) {
    let san = San::new();
    san.four_path_map();
    san.mount("/srv/pvfs", "253:3", "/dev/mapper/mpatha", "ext4");
    san.label("pvfs1", "dm-3");
    let dmsetup = san.dmsetup_paths(flags);
    let args = vec![
        "san-check".to_string(),
        "--sysfs-root".to_string(),
        san.root().display().to_string(),
        "--dmsetup".to_string(),
        dmsetup.display().to_string(),
        "--multipathd".to_string(),
        san.scratch().join("no-multipathd").display().to_string(),
        "--run-dir".to_string(),
        san.run_dir().display().to_string(),
    ];
    (san, args)
}

fn check(args: &[String], extra: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    run_bin(&all, &[], LIMIT)
}

#[test]
fn a_healthy_map_exits_ok_with_one_line() {
    let (_san, args) = multipath(['A'; 4]);
    let out = check(&args, &["--device", "/srv/pvfs"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("OK /srv/pvfs (dm-3): all 4 paths to mpatha usable\n"),
        "{stdout}"
    );
}

#[test]
fn one_lost_path_is_degraded_exit_1_and_names_the_path_and_why() {
    let (san, args) = multipath(['A', 'A', 'F', 'A']);
    san.set_disk_state("sdk", "transport-offline");
    let out = check(&args, &["--device", "-L pvfs1"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("DEGRADED -L pvfs1 (dm-3): 3 of 4 paths to mpatha left: sdk transport-offline")
    );
    let path_line = lines.next().unwrap();
    assert!(
        path_line.starts_with("  mpatha path sdk lost: sdk transport-offline"),
        "{stdout}"
    );
}

#[test]
fn no_usable_path_is_failed_exit_2_and_min_paths_can_make_degraded_failed() {
    let (san, args) = multipath(['F'; 4]);
    let out = check(&args, &["--device", "/dev/mapper/mpatha"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("FAILED /dev/mapper/mpatha (dm-3): 0 of 4 paths to mpatha left"),
        "{}",
        text(&out)
    );
    drop(san);

    let (_san, args) = multipath(['A', 'F', 'F', 'F']);
    assert_eq!(code(&check(&args, &["--device", "/srv/pvfs"])), 1);
    assert_eq!(
        code(&check(
            &args,
            &["--device", "/srv/pvfs", "--min-paths", "2"]
        )),
        2
    );
}

#[test]
fn backend_fc_reads_sysfs_only_and_expected_paths_counts_what_is_missing() {
    let san = San::new();
    san.four_path_map();
    let root = san.root().display().to_string();
    let base = [
        "san-check",
        "--root",
        &root,
        "--backend",
        "fc",
        "--device",
        "/dev/dm-3",
    ];
    let out = run_bin(&base, &[], LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    san.lose_all_paths();
    let out = run_bin(&base, &[], LIMIT);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("HBA host3 Linkdown"), "{}", text(&out));
}

#[test]
fn a_hanging_tool_is_unknown_exit_3_by_the_deadline() {
    let (san, args) = multipath(['A'; 4]);
    let hung = san.script("dmsetup-hung", "sleep 60");
    let mut args = args;
    let at = args.iter().position(|a| a == "--dmsetup").unwrap();
    args[at + 1] = hung.display().to_string();
    let out = check(&args, &["--device", "/srv/pvfs", "--timeout", "1"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("UNKNOWN /srv/pvfs"), "{stdout}");
    assert!(stdout.contains("dmsetup did not answer within"), "{stdout}");
}

#[test]
fn a_missing_powermt_is_unknown_not_failed() {
    let san = San::new();
    let root = san.root().display().to_string();
    let missing = san.scratch().join("nowhere/powermt");
    let out = run_bin(
        &[
            "san-check",
            "--root",
            &root,
            "--backend",
            "powerpath",
            "--powermt",
            missing.to_str().unwrap(),
            "--device",
            "/dev/emcpowera",
        ],
        &[],
        LIMIT,
    );
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("powermt not found at"),
        "{}",
        text(&out)
    );
}

#[test]
fn several_devices_exit_with_the_worst_verdict() {
    let (_san, args) = multipath(['A'; 4]);
    let out = check(&args, &["--device", "/srv/pvfs", "--device", "/dev/sdz"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("OK /srv/pvfs")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("UNKNOWN /dev/sdz")),
        "{stdout}"
    );
}

#[test]
fn json_output_has_the_status_code_and_every_path() {
    let (_san, args) = multipath(['A', 'A', 'F', 'A']);
    let out = check(&args, &["--device", "/srv/pvfs", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["code"], 1);
    assert_eq!(v["devices"][0]["resolved"], "dm-3");
    assert_eq!(
        v["devices"][0]["units"][0]["paths"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(v["devices"][0]["units"][0]["paths"][2]["usable"], false);
}

#[test]
fn the_read_probe_runs_the_given_dd_on_the_device() {
    let (san, args) = multipath(['A'; 4]);
    let dd = san.script("dd", "echo \"$@\" > \"$(dirname \"$0\")/dd.args\"; exit 0");
    let out = check(
        &args,
        &[
            "--device",
            "/srv/pvfs",
            "--probe",
            "--dd",
            dd.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("read probe of /dev/dm-3 ok"),
        "{}",
        text(&out)
    );
    let dd_args = std::fs::read_to_string(san.root().join("bin/dd.args")).unwrap();
    assert!(dd_args.contains("iflag=direct"), "{dd_args}");

    let failing = san.script(
        "dd-eio",
        "echo 'dd: error reading: Input/output error' >&2; exit 1",
    );
    let out = check(
        &args,
        &[
            "--device",
            "/srv/pvfs",
            "--probe",
            "--dd",
            failing.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("Input/output error"), "{}", text(&out));
}

#[test]
fn a_command_line_it_cannot_act_on_is_unknown_not_critical() {
    for bad in [
        vec!["san-check"],
        vec!["san-check", "--device", "/dev/sdc", "--backend", "scsi"],
        vec!["san-check", "--device", "/dev/sdc", "--min-paths", "0"],
        vec!["san-check", "--device", "/dev/sdc", "--timeout", "never"],
        vec![
            "san-check",
            "--device",
            "/dev/sdc",
            "--root",
            "/nonexistent/root",
        ],
    ] {
        let out = run_bin(&bad, &[], LIMIT);
        assert_eq!(code(&out), 3, "{bad:?}: {}", text(&out));
    }
    let help = run_bin(&["san-check", "--help"], &[], LIMIT);
    assert_eq!(code(&help), 0);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--sysfs-root") && help.contains("Nagios"),
        "{help}"
    );
}
