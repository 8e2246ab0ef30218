//! The notification hook: a site's command run after each fence with the outcome in
//! environment variables (the seed's `PVFS2-notify` idea: page someone, write an
//! audit record). It runs after the outcome is settled and cannot change it: its exit
//! status is logged and ignored, and it is killed (its whole process group) at its
//! own timeout or at the operation's deadline, whichever comes first.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fence::Outcome;
use crate::secret::kill_group;
use crate::Instant;

/// The environment the hook sees. No secret is ever part of an outcome.
pub fn environment(outcome: &Outcome) -> Vec<(&'static str, String)> {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    vec![
        ("FENCEKIT_NODE", outcome.node.clone()),
        ("FENCEKIT_ACTION", outcome.action.as_str().to_string()),
        ("FENCEKIT_SUCCESS", flag(outcome.success)),
        ("FENCEKIT_FENCED", flag(outcome.fenced)),
        (
            "FENCEKIT_STATE",
            outcome.aggregate_state().as_str().to_string(),
        ),
        (
            "FENCEKIT_ELAPSED_MS",
            outcome.elapsed.as_millis().to_string(),
        ),
        (
            "FENCEKIT_PLUGS",
            outcome
                .plugs
                .iter()
                .map(|p| format!("{}:{}={}", p.target.device, p.target.plug, p.state))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "FENCEKIT_ERROR",
            outcome
                .errors
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        ("FENCEKIT_SUMMARY", outcome.summary()),
    ]
}

/// Runs `command` through `/bin/sh -c` with the outcome in its environment, and
/// waits for it until `by`. Returns what happened, for the log.
pub async fn run(command: &str, outcome: &Outcome, by: Instant) -> String {
    let mut child = match Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .envs(environment(outcome))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return format!("notify command could not start: {e}"),
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return "notify command done".into(),
            Ok(Some(status)) => return format!("notify command failed ({status}); ignored"),
            Ok(None) if Instant::now() >= by => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return format!(
                    "notify command killed after {:.1} s, at its deadline",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return format!("notify command: {e}"),
        }
    }
}
