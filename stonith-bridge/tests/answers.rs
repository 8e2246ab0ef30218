//! What a caller parses on standard output (a host list, a plug list, a status) is
//! never changed by the secret screen, even when a host's name holds the password
//! (`db-admin01` on a BMC whose password is `admin`): the screen is for logs.

use std::process::Command;
use std::time::Duration;

use fencekit_tests::tool::{self, ToolOutput};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn run(mut command: Command, stdin: Option<&str>) -> ToolOutput {
    command.env_remove("RUST_LOG");
    tool::run(command, stdin.map(str::as_bytes), Duration::from_secs(30)).unwrap()
}

#[test]
fn host_and_plug_lists_and_statuses_are_printed_whatever_the_password() {
    let mut command = Command::new(BIN);
    command
        .args(["external", "sim", "gethosts"])
        .env("plugs", "3")
        .env("hostlist", "db-admin01 web01")
        .env("hostmap", "db-admin01:1;web01:2")
        .env("password", "admin");
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["db-admin01", "web01"]
    );

    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]);
    let out = run(
        command,
        Some("action=list\nplugs=3\nnames=db-admin01,web01,x\npassword=admin\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.stdout.contains("1,db-admin01"), "{}", out.text());

    let mut command = Command::new(BIN);
    command.args(["fence-agent", "sim"]);
    let out = run(command, Some("action=status\nplug=1\npassword=Status\n"));
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.stdout.contains("Status: ON"), "{}", out.text());
}
