//! Files a configuration names are read only if they are regular files, and up to
//! a size: a FIFO (whose open or read blocks until someone writes) or a device
//! (`/dev/zero`, endless) in place of a password file, a debug log, the sim's
//! state or the configuration itself ends the run at once with an error naming
//! it, never a hang past the deadline or memory without end. And `stonith-bridge
//! fence` keeps to its `[fence]` timeout from the start of the run, the
//! configuration's `password_script` included.

use std::process::Command;
use std::time::{Duration, Instant};

use fencekit_tests::tool::{self, ToolOutput};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn run(args: &[&str], stdin: Option<&str>) -> (ToolOutput, Duration) {
    let started = Instant::now();
    let mut command = Command::new(BIN);
    command.args(args).env_remove("RUST_LOG");
    let out = tool::run(command, stdin.map(str::as_bytes), Duration::from_secs(30)).unwrap();
    (out, started.elapsed())
}

fn fifo(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    path
}

#[test]
fn a_fifo_or_a_device_named_as_a_file_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let fifo = fifo.display();
    let state = dir.path().join("state");
    let state = state.display();
    for (what, stdin) in [
        (
            "password_file FIFO",
            format!("action=off\nplug=1\ntimeout=5\nstate_file={state}\npassword_file={fifo}\n"),
        ),
        (
            "password_file /dev/zero",
            format!("action=off\nplug=1\ntimeout=5\nstate_file={state}\npassword_file=/dev/zero\n"),
        ),
        (
            "state_file FIFO",
            format!("action=off\nplug=1\ntimeout=5\nstate_file={fifo}\n"),
        ),
        (
            "debug_file FIFO",
            format!("action=off\nplug=1\ntimeout=5\nstate_file={state}\ndebug_file={fifo}\n"),
        ),
    ] {
        let (out, took) = run(&["fence-agent", "sim"], Some(&stdin));
        assert_ne!(out.status.code(), Some(0), "{what}: {}", out.text());
        assert!(
            took < Duration::from_secs(3),
            "{what}: {took:?}: {}",
            out.text()
        );
        assert!(
            out.text().contains("regular file"),
            "{what}: the error does not say why: {}",
            out.text()
        );
    }
    // The configuration itself.
    let (out, took) = run(
        &[
            "fence",
            "--config",
            &fifo.to_string(),
            "--node",
            "n1",
            "--action",
            "off",
        ],
        None,
    );
    assert_ne!(out.status.code(), Some(0), "{}", out.text());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(out.text().contains("regular file"), "{}", out.text());
}

#[test]
fn fence_with_a_configuration_keeps_to_its_timeout_from_the_start_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        format!(
            "[fence]\ntimeout = 2\n\n[devices.pdu]\nplugin = \"sim\"\nplugs = 1\n\
             state_file = \"{}\"\npassword_script = \"sleep 9; echo pw\"\n\n\
             [nodes.n1]\nplugs = [{{ device = \"pdu\", plug = \"1\" }}]\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = config.display().to_string();
    for args in [
        vec![
            "fence", "--config", &config, "--node", "n1", "--action", "off",
        ],
        vec!["list", "--config", &config],
        vec!["check", "--config", &config],
    ] {
        let (out, took) = run(&args, None);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", out.text());
        assert!(
            took < Duration::from_secs(3),
            "{args:?}: {took:?}: {}",
            out.text()
        );
    }
    // Nothing was switched: the device was never built.
    assert!(!std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("off"));
}

#[test]
fn a_password_on_a_standard_input_that_never_sends_a_line_ends_by_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        "[fence]\ntimeout = 2\n\n[devices.pdu]\nplugin = \"sim\"\nplugs = 1\n\
         password_file = \"/dev/stdin\"\n\n\
         [nodes.n1]\nplugs = [{ device = \"pdu\", plug = \"1\" }]\n",
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["fence", "--config"])
        .arg(&config)
        .args(["--node", "n1", "--action", "status"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Half a line, and the pipe held open.
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"no-line-end").unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("still running 20 s later");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let took = started.elapsed();
    assert_ne!(status.code(), Some(0));
    assert!(took < Duration::from_secs(3), "{took:?}");
}
