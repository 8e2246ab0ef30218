//! A real hung read (root, cgroup v1 blkio): a loop device whose reads are throttled
//! to 1 byte and 1 I/O per second for one blkio cgroup. `san-check --probe` runs in
//! that cgroup (the whole check process is placed there before it starts, so its
//! probe child, `dd iflag=direct`, inherits it; no code of the check knows about
//! cgroups). The probe must fail by its deadline, the check must return on its own,
//! and a second check must answer "probe stuck since T" without starting another read.
//!
//! The fixture sysfs root maps the loop device in: `ROOT/dev/dm-3` (the fixture's
//! healthy four-path map) is a link to the real `/dev/loopN`, so the probe reads the
//! real device while the paths come from the fixture.
//!
//! Teardown, always (guards, also on panic): the throttle is set back to 0, the
//! stuck reader (ours) is killed by PID, the cgroup removed, the loop device detached.

mod san_fixture;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use san_fixture::*;

const BLKIO: &str = "/sys/fs/cgroup/blkio";

/// A child blkio cgroup throttling reads of one device.
struct Throttle {
    dir: PathBuf,
    devt: String,
}

impl Throttle {
    fn new(devt: &str) -> Throttle {
        let name = format!(
            "fencekit-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let dir = Path::new(BLKIO).join(name);
        fs::create_dir(&dir).unwrap();
        let t = Throttle {
            dir,
            devt: devt.to_string(),
        };
        t.set(1);
        t
    }

    fn set(&self, limit: u64) {
        for file in [
            "blkio.throttle.read_bps_device",
            "blkio.throttle.read_iops_device",
        ] {
            let _ = fs::write(self.dir.join(file), format!("{} {limit}\n", self.devt));
        }
    }

    fn procs(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        // Release the read first: a reader in D state cannot die before its I/O ends.
        self.set(0);
        // Only processes this test placed here (the checks and their dd) are in it.
        for pid in self.procs() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        wait_until(Duration::from_secs(10), || self.procs().is_empty());
        for _ in 0..50 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not remove cgroup {}", self.dir.display());
    }
}

/// `/proc/PID/stat` state letter and wchan.
fn proc_state(pid: u32) -> Option<(char, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].trim().chars().next()?;
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    Some((state, wchan))
}

fn state_file_pid(file: &Path) -> Option<u32> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
}

#[test]
fn a_read_hung_by_a_blkio_throttle_fails_the_probe_by_its_deadline_and_is_not_repeated() {
    let _lock = system_lock();
    if !fencekit_tests::peers::require_root("a blkio-throttled loop device") {
        return;
    }
    if fencekit_tests::peers::require_all(&[("losetup", "util-linux"), ("dd", "coreutils")])
        .is_none()
    {
        return;
    }
    if !Path::new(BLKIO)
        .join("blkio.throttle.read_bps_device")
        .exists()
    {
        assert!(
            !fencekit_tests::peers::peers_required(),
            "cgroup v1 blkio throttling is required but {BLKIO} has none"
        );
        eprintln!("\n*** SKIPPED: no cgroup v1 blkio throttling at {BLKIO} ***\n");
        return;
    }
    let dd = fencekit_tests::peers::find("dd").unwrap();

    // Declared first: dropped last (after the throttle is lifted and the cgroup gone).
    let dev = LoopDevice::attach();
    let san = San::new();
    san.four_path_map();
    san.dev_link("dm-3", &dev.dev);
    let throttle = Throttle::new(&dev.devt());

    let root = san.root().display().to_string();
    let run_dir = san.run_dir().display().to_string();
    let args = [
        "san-check",
        "--root",
        root.as_str(),
        "--backend",
        "fc",
        "--device",
        "/dev/dm-3",
        "--probe",
        "--dd",
        dd.to_str().unwrap(),
        "--run-dir",
        run_dir.as_str(),
        "--timeout",
        "3",
        "--json",
    ];
    let procs = throttle.dir.join("cgroup.procs");
    // The check joins the cgroup before it runs: `sh` writes its own pid, then
    // becomes the check.
    let in_cgroup = |args: &[&str]| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(&procs)
            .arg(BIN)
            .args(args);
        run_command(&mut cmd, &[], Duration::from_secs(60))
    };

    let first = in_cgroup(&args);
    assert_eq!(code(&first), 2, "{}", text(&first));
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let problem = v["devices"][0]["problems"][0].as_str().unwrap_or_default();
    assert!(
        problem.starts_with("read probe of /dev/dm-3 did not complete within"),
        "{}",
        text(&first)
    );

    // The reader the check abandoned, as the state file names it.
    let state = san.run_dir().join("probe-dm-3.state");
    let pid =
        state_file_pid(&state).unwrap_or_else(|| panic!("no probe record in {}", state.display()));
    match proc_state(pid) {
        Some((state, wchan)) => eprintln!(
            "abandoned probe pid {pid}: state {state}, wchan {wchan} (D: uninterruptible, survives SIGKILL)"
        ),
        None => eprintln!("abandoned probe pid {pid} already gone"),
    }
    assert!(
        throttle.procs().contains(&pid),
        "the probe child ran inside the throttled cgroup"
    );

    let second = in_cgroup(&args);
    assert_eq!(code(&second), 2, "{}", text(&second));
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let problem = v["devices"][0]["problems"][0].as_str().unwrap_or_default();
    assert!(
        problem.starts_with("read probe of /dev/dm-3 stuck since ")
            && problem.ends_with(&format!("(pid {pid}); no new probe started")),
        "{}",
        text(&second)
    );
    assert_eq!(throttle.procs(), vec![pid], "no second reader was started");

    // Lifting the throttle lets the reader finish (it was SIGKILLed at the deadline,
    // so it dies as soon as its read returns) and the next check probes again.
    throttle.set(0);
    assert!(
        wait_until(Duration::from_secs(20), || !matches!(
            proc_state(pid),
            Some((s, _)) if s != 'Z'
        )),
        "the reader ended once the throttle was lifted"
    );
    let third = in_cgroup(&args);
    assert_eq!(code(&third), 0, "{}", text(&third));
    assert!(
        text(&third).contains("read probe of /dev/dm-3 ok"),
        "{}",
        text(&third)
    );
    drop(throttle);
    drop(dev);
}
