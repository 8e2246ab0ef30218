//! The notification hook: a site's command run after each fence with the outcome in
//! environment variables (the seed's `PVFS2-notify` idea: page someone, write an
//! audit record). It runs after the outcome is settled and cannot change it: its exit
//! status is logged and ignored, and it is killed (its whole process group) at its
//! own timeout or at the operation's deadline, whichever comes first. It is started
//! as every child of core is ([`crate::child`]): its environment holds the outcome
//! and none of the registered secrets ([`crate::secret::hide_env_var`]).

use crate::fence::Outcome;
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
    let mut child = crate::child::shell(command);
    child.envs(environment(outcome));
    let started = Instant::now();
    let limits = crate::child::Limits {
        stdout: 0,
        stderr: 0,
    };
    match crate::child::run(child, None, by, limits).await {
        Ok(done) if done.status.success() => "notify command done".into(),
        Ok(done) => format!("notify command failed ({}); ignored", done.status),
        Err(crate::child::ChildError::TimedOut(_)) => format!(
            "notify command killed after {:.1} s, at its deadline",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => format!("notify command: {e}"),
    }
}
