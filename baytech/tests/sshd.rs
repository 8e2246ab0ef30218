//! End-to-end: `BaytechSwitch` through the REAL OpenSSH `sshd` on 127.0.0.1, with
//! `fencekit-baytech-sim` as the `ForceCommand` of throwaway local users (a strip
//! behind a DS/MMP module with two strips of different models, and a strip alone;
//! healthy and faulty). Needs root (sshd, local users); the peer-missing rule
//! applies.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fencekit_baytech::{BaytechSwitch, SCHEMA};
use fencekit_console::sim::OutletFile;
use fencekit_core::fence::Devices;
use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
use fencekit_core::{
    fence, DeviceError, FenceAction, FenceOptions, FenceTarget, Instant, Plug, PowerState,
    PowerSwitch, SwitchTo, TargetPlug,
};
use fencekit_tests::accounts::TestUser;
use fencekit_tests::peers;
use fencekit_tests::sshd::{ForcedCommand, Sshd, SshdOptions};

const SIM: &str = env!("CARGO_BIN_EXE_fencekit-baytech-sim");

/// One simulated console: a login and what its ForceCommand plays.
struct Console {
    user: TestUser,
    password: String,
    state: OutletFile,
    session_lock: PathBuf,
}

struct Rig {
    sshd: Option<Sshd>,
    consoles: Vec<Console>,
    dir: tempfile::TempDir,
}

impl Drop for Rig {
    /// sshd first, then wait (bounded) for the users' sessions to end, so that
    /// the user guards can delete the users.
    fn drop(&mut self) {
        self.sshd.take();
        for c in &self.consoles {
            wait_until_unused(c.user.name());
        }
    }
}

fn uid_of(user: &str) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find(|l| l.split(':').next() == Some(user))
        .and_then(|l| l.split(':').nth(2).map(str::to_string))
}

fn wait_until_unused(user: &str) {
    let Some(uid) = uid_of(user) else { return };
    for _ in 0..100 {
        let busy = std::fs::read_dir("/proc")
            .map(|dir| {
                dir.flatten().any(|e| {
                    std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| {
                        s.lines().any(|l| {
                            l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid)
                        })
                    })
                })
            })
            .unwrap_or(false);
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn peers_present() -> bool {
    peers::require("sshd", "openssh-server").is_some() && peers::require_root("sshd")
}

impl Rig {
    /// One console per entry: (`module`|`direct`, faults).
    fn start(specs: &[(&str, &[&str])]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        // The simulators run as the test users and keep state here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut consoles = Vec::new();
        let mut users = Vec::new();
        for (i, (mode, faults)) in specs.iter().enumerate() {
            let password = format!("fk-bt-{i}-pw");
            let user = TestUser::create(&password).unwrap();
            let state_path = dir.path().join(format!("state-{i}"));
            let state = OutletFile::create(&state_path, 2, 8).unwrap();
            std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let session_lock = dir.path().join(format!("session-{i}.lock"));
            let mut command = format!(
                "{SIM} --mode {mode} --state {} --lock {}",
                state_path.display(),
                session_lock.display()
            );
            for fault in *faults {
                command.push_str(&format!(" --fault {fault}"));
            }
            users.push(ForcedCommand {
                user: user.name().to_owned(),
                command,
            });
            consoles.push(Console {
                user,
                password,
                state,
                session_lock,
            });
        }
        let sshd = Sshd::start(SshdOptions {
            users,
            extra_config: Vec::new(),
        })
        .unwrap();
        Rig {
            sshd: Some(sshd),
            consoles,
            dir,
        }
    }

    fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("sshd runs until the rig drops")
    }

    fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        let key = self.sshd().host_key().unwrap();
        let mut words = key.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            self.sshd().port(),
            words.next().unwrap(),
            words.next().unwrap()
        );
        std::fs::write(&path, line).unwrap();
        path
    }

    fn fingerprint(&self) -> String {
        let path = self.dir.path().join("host.pub");
        std::fs::write(&path, self.sshd().host_key().unwrap()).unwrap();
        let out = Command::new(peers::find("ssh-keygen").unwrap())
            .arg("-lf")
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    fn params(&self, i: usize, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let c = &self.consoles[i];
        let mut p = vec![
            ("ip".to_string(), "127.0.0.1".to_string()),
            ("ipport".into(), self.sshd().port().to_string()),
            ("username".into(), c.user.name().to_string()),
            ("password".into(), c.password.clone()),
            (
                "known_hosts".into(),
                self.known_hosts().display().to_string(),
            ),
            ("lock_dir".into(), self.lock_dir().display().to_string()),
        ];
        for (k, v) in extra {
            p.retain(|(key, _)| key != k);
            p.push((k.to_string(), v.to_string()));
        }
        p
    }

    fn switch(&self, i: usize, extra: &[(&str, &str)]) -> BaytechSwitch {
        switch_from(&self.params(i, extra))
    }
}

fn switch_from(pairs: &[(String, String)]) -> BaytechSwitch {
    let raw: Vec<RawParam> = pairs
        .iter()
        .map(|(k, v)| RawParam::text(k.as_str(), v.as_str(), Origin::new("test")))
        .collect();
    let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params;
    BaytechSwitch::from_params(&params).unwrap()
}

fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

fn options(timeout: u64) -> FenceOptions {
    FenceOptions {
        timeout: Duration::from_secs(timeout),
        power_timeout: Duration::from_secs(timeout.min(10)),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

async fn fence_outlets(
    switch: BaytechSwitch,
    plugs: &[u32],
    action: FenceAction,
    timeout: u64,
) -> fencekit_core::Outcome {
    let mut devices = Devices::new();
    devices.insert("pdu".into(), Arc::new(switch) as Arc<dyn PowerSwitch>);
    let target = FenceTarget {
        node: "node1".into(),
        plugs: plugs
            .iter()
            .map(|n| TargetPlug {
                device: "pdu".into(),
                plug: Plug::Number(*n),
            })
            .collect(),
    };
    fence(&devices, &target, action, &options(timeout)).await
}

async fn status_on_off_list(rig: &Rig, i: usize, strip: u32) {
    let pdu = rig.switch(i, &[("strip", &strip.to_string())]);
    let state = &rig.consoles[i].state;
    state.set(strip, 3, true, Some("db-node3")).unwrap();
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::On
    );
    pdu.switch(&Plug::Name("db-node3".into()), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(strip, 3).unwrap(), Some(PowerState::Off));
    assert_eq!(
        pdu.status(&Plug::Number(3), in_secs(30)).await.unwrap(),
        PowerState::Off
    );
    pdu.switch(&Plug::Number(3), SwitchTo::On, in_secs(30))
        .await
        .unwrap();
    assert_eq!(state.state(strip, 3).unwrap(), Some(PowerState::On));
    let listed = pdu.list(in_secs(30)).await.unwrap();
    assert_eq!(listed.len(), 8);
    assert_eq!(listed[2].name.as_deref(), Some("db-node3"));
    pdu.check(in_secs(30)).await.unwrap();
    let err = pdu
        .status(&Plug::Number(42), in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::UnknownPlug { .. }), "{err}");
}

#[tokio::test]
async fn a_strip_behind_a_management_module_reads_switches_and_lists() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[("module", &[])]);
    status_on_off_list(&rig, 0, 1).await;
    // Strip 2 has another model, so another prompt: learned, not assumed.
    status_on_off_list(&rig, 0, 2).await;
    // unit:outlet names the strip itself.
    let pdu = rig.switch(0, &[]);
    pdu.switch(&Plug::parse("2:6"), SwitchTo::Off, in_secs(30))
        .await
        .unwrap();
    assert_eq!(
        rig.consoles[0].state.state(2, 6).unwrap(),
        Some(PowerState::Off)
    );
    assert_eq!(
        rig.consoles[0].state.state(1, 6).unwrap(),
        Some(PowerState::On)
    );
}

#[tokio::test]
async fn a_strip_without_a_module_reads_switches_and_lists() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[("direct", &[])]);
    status_on_off_list(&rig, 0, 1).await;
}

#[tokio::test]
async fn reboot_through_core_fence_confirms_off_then_on() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[("module", &[]), ("direct", &[])]);
    for i in 0..2 {
        let outcome = fence_outlets(rig.switch(i, &[]), &[5], FenceAction::Reboot, 60).await;
        assert!(outcome.success, "{}", outcome.summary());
        assert!(outcome.plugs[0].off_confirmed.is_some());
        assert!(outcome.plugs[0].on_confirmed.is_some());
        assert_eq!(
            rig.consoles[i].state.state(1, 5).unwrap(),
            Some(PowerState::On)
        );
    }
}

#[tokio::test]
async fn faults_fail_the_fence_with_a_clear_error_and_nothing_fenced() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[
        ("module", &["lie"]),
        ("direct", &["stall"]),
        ("module", &["silent"]),
        ("module", &["drop"]),
    ]);
    // The lie shows as "still on" or, when the polls outlast the fence's
    // deadline, as a timeout of the last read; either way the outlet is on.
    let expected: [&[&str]; 4] = [
        &["still on", "timed out"],
        &["timed out"],
        &["timed out"],
        &["Connection lost"],
    ];
    for (i, words) in expected.iter().enumerate() {
        let outcome = fence_outlets(rig.switch(i, &[]), &[4], FenceAction::Off, 8).await;
        assert!(!outcome.success, "console {i}: {}", outcome.summary());
        assert!(!outcome.fenced, "console {i}: {}", outcome.summary());
        let first = outcome
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            words.iter().any(|w| first.contains(w)),
            "console {i}: {first}"
        );
    }
    assert_eq!(
        rig.consoles[0].state.state(1, 4).unwrap(),
        Some(PowerState::On)
    );
}

#[tokio::test]
async fn wrong_password_wrong_host_key_and_a_busy_unit_are_clear_errors() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[("module", &[])]);
    let err = rig
        .switch(0, &[("password", "not-the-password")])
        .status(&Plug::Number(1), in_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err}");
    let presented = rig.fingerprint();
    let err = rig
        .switch(
            0,
            &[(
                "host_key",
                "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )],
        )
        .status(&Plug::Number(1), in_secs(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&presented), "{err}");
    rig.switch(0, &[("host_key", presented.as_str())])
        .check(in_secs(30))
        .await
        .unwrap();
    let other = fencekit_console::sim::SessionLock::try_take(&rig.consoles[0].session_lock)
        .unwrap()
        .unwrap();
    let err = rig.switch(0, &[]).check(in_secs(30)).await.unwrap_err();
    assert!(matches!(err, DeviceError::Busy(_)), "{err}");
    let outcome = fence_outlets(rig.switch(0, &[]), &[1], FenceAction::Off, 4).await;
    assert!(!outcome.fenced, "{}", outcome.summary());
    drop(other);
}

#[tokio::test]
async fn two_fences_on_one_single_session_unit_are_serialised_beside_a_monitor() {
    if !peers_present() {
        return;
    }
    let rig = Rig::start(&[("direct", &[])]);
    let a = fence_outlets(rig.switch(0, &[]), &[6], FenceAction::Off, 60);
    let b = fence_outlets(rig.switch(0, &[]), &[7], FenceAction::Off, 60);
    let monitor = rig.switch(0, &[]);
    let watch = async {
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(monitor.list(in_secs(20)).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers
    };
    let (a, b, answers) = tokio::join!(a, b, watch);
    assert!(a.success, "{}", a.summary());
    assert!(b.success, "{}", b.summary());
    for answer in answers {
        if let Err(e) = answer {
            assert!(matches!(e, DeviceError::Busy(_)), "{e}");
        }
    }
    assert_eq!(
        rig.consoles[0].state.state(1, 6).unwrap(),
        Some(PowerState::Off)
    );
    assert_eq!(
        rig.consoles[0].state.state(1, 7).unwrap(),
        Some(PowerState::Off)
    );
}
