//! Console simulators behind a real OpenSSH `sshd`: each test user's `ForceCommand`
//! is one simulator (the APC console, the Baytech strip), with its outlets in a state
//! file the test reads. The users and sshd go when the rig drops (sshd first, so that
//! the users have no sessions left when they are deleted). Needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fencekit_console::sim::OutletFile;
use fencekit_core::fence::Devices;
use fencekit_core::schema::{validate, Origin, Params, RawParam, Schema, Unknown};
use fencekit_core::{
    fence, FenceAction, FenceOptions, FenceTarget, Instant, Plug, PowerSwitch, TargetPlug,
};

use crate::accounts::TestUser;
use crate::peers;
use crate::sshd::{ForcedCommand, Sshd, SshdOptions};

/// One simulated console: a login and what its ForceCommand plays.
pub struct Console {
    pub user: TestUser,
    pub password: String,
    pub state: OutletFile,
    pub session_lock: PathBuf,
}

/// An sshd on loopback whose test users each run one console simulator.
pub struct ConsoleRig {
    sshd: Option<Sshd>,
    pub consoles: Vec<Console>,
    dir: tempfile::TempDir,
}

impl Drop for ConsoleRig {
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

/// sshd and root (for the test users), by the peer-missing rule.
pub fn peers_present() -> bool {
    peers::require("sshd", "openssh-server").is_some() && peers::require_root("sshd")
}

impl ConsoleRig {
    /// One console per entry: (mode, faults), each run as
    /// `SIMULATOR --mode MODE --state FILE --lock FILE [--fault F]...` with `units`
    /// units of 8 outlets in its state file.
    pub fn start(simulator: &str, name: &str, units: u32, specs: &[(&str, &[&str])]) -> ConsoleRig {
        let dir = tempfile::tempdir().unwrap();
        // The simulators run as the test users and keep state here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut consoles = Vec::new();
        let mut users = Vec::new();
        for (i, (mode, faults)) in specs.iter().enumerate() {
            let password = format!("fk-{name}-{i}-pw");
            let user = TestUser::create(&password).unwrap();
            let state_path = dir.path().join(format!("state-{i}"));
            let state = OutletFile::create(&state_path, units, 8).unwrap();
            std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let session_lock = dir.path().join(format!("session-{i}.lock"));
            let mut command = format!(
                "{simulator} --mode {mode} --state {} --lock {}",
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
        ConsoleRig {
            sshd: Some(sshd),
            consoles,
            dir,
        }
    }

    /// The rig's temporary directory (state files, known_hosts, locks).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("sshd runs until the rig drops")
    }

    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        let key = self.sshd().host_key().unwrap();
        let mut words = key.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            self.sshd().port(),
            words.next().unwrap(),
            words.next().unwrap()
        );
        // Written whole under another name, then renamed: cells running at once
        // ask for it again while an agent reads it, and must never see it empty.
        let tmp = self.dir.path().join(format!(
            "known_hosts.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, line).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    pub fn fingerprint(&self) -> String {
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

    pub fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    pub fn params(&self, i: usize, extra: &[(&str, &str)]) -> Vec<(String, String)> {
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
}

/// `pairs` validated against `schema`, as a plugin's constructor takes them.
pub fn validated(schema: &Schema, pairs: &[(String, String)]) -> Params {
    let raw: Vec<RawParam> = pairs
        .iter()
        .map(|(k, v)| RawParam::text(k.as_str(), v.as_str(), Origin::new("test")))
        .collect();
    validate(&[schema], &raw, Unknown::Reject, None)
        .unwrap()
        .params
}

pub fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

pub fn options(timeout: u64) -> FenceOptions {
    FenceOptions {
        timeout: Duration::from_secs(timeout),
        power_timeout: Duration::from_secs(timeout.min(10)),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Fences `plugs` of one console device through core's algorithm.
pub async fn fence_outlets(
    switch: impl PowerSwitch + 'static,
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
