//! fence-agents log to syslog as well as stderr, so a fence run by hand leaves its
//! trace in the journal. fencekit's fence agent and cluster-glue plugin send their
//! report lines and each fence's outcome to syslog (facility daemon, named after the
//! agent); never a secret. The logger's socket is a test's own here
//! (`FENCEKIT_SYSLOG_SOCKET`; `/dev/log` otherwise).

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use fencekit_tests::tool;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");
const SECRET: &str = "syslog-secret-8c41";

/// Every datagram the run sent to a socket of ours.
fn logged(mut command: Command, stdin: &str) -> (Option<i32>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    command
        .env("FENCEKIT_SYSLOG_SOCKET", &path)
        .env_remove("RUST_LOG");
    let status = tool::run(command, Some(stdin.as_bytes()), Duration::from_secs(60))
        .unwrap()
        .status;
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = socket.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    (status.code(), lines)
}

fn agent() -> Command {
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]);
    command
}

#[test]
fn a_fence_agents_failure_and_success_reach_syslog_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = |plug: &str| {
        format!(
            "action=off\nplugs=2\nplug={plug}\nlying_plugs=2\nstate_file={}\npassword={SECRET}\n\
             expect_password={SECRET}\npower_timeout=1\ntimeout=5\n",
            state.display()
        )
    };
    let (code, lines) = logged(agent(), &input("2"));
    assert_eq!(code, Some(1));
    // <27>: facility daemon (3), severity err (3).
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<27>fence_fencekit_sim[") && l.contains("Failed")),
        "{lines:?}"
    );
    let (code, lines) = logged(agent(), &input("1"));
    assert_eq!(code, Some(0));
    // <30>: daemon, info.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<30>fence_fencekit_sim[") && l.contains("Success: Powered OFF")),
        "{lines:?}"
    );
    let (_, wrong) = logged(
        agent(),
        &input("1").replace(&format!("password={SECRET}"), "password=wrong-pw-77"),
    );
    assert!(!wrong.is_empty());
    for line in lines.iter().chain(&wrong) {
        assert!(
            !line.contains(SECRET) && !line.contains("wrong-pw-77"),
            "{line}"
        );
    }
}

#[test]
fn a_cluster_glue_plugins_fence_reaches_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut command = Command::new(BIN);
    command
        .args(["external", "sim", "off", "node1"])
        .env("hostmap", "node1:1")
        .env("plugs", "2")
        .env("state_file", &state);
    let (code, lines) = logged(command, "");
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<30>external/fencekit-sim[") && l.contains("node1")),
        "{lines:?}"
    );
}
