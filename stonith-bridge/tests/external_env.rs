//! cluster-glue exports every parameter of a stonith resource into the plugin's
//! environment, also those `getconfignames` does not list: a secret given under an
//! alias (`passwd`) or by `password_env` must be read and taken out of the
//! environment like `password`, so that no child (here the notify command) sees it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// Runs `external sim off node1` with `env` added and a notify command that saves
/// its environment and waits; meanwhile the environment `/proc` shows for the
/// plugin itself is read from here (the notify command may run where it cannot
/// see the plugin: a PID namespace of its own). Gives the exit code and what the
/// notify command saw, then the plugin's, each line of it as `plugin: NAME=VALUE`.
fn off_with_env(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let ready = dir.path().join("ready");
    let go = dir.path().join("go");
    let hook = dir.path().join("hook");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nenv > '{seen}'\ntouch '{ready}'\n\
             i=0; while [ ! -e '{go}' ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n",
            seen = seen.display(),
            ready = ready.display(),
            go = go.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut plugin = Command::new(BIN)
        .args(["external", "sim", "off", "node1"])
        .env_remove("RUST_LOG")
        .env("hostmap", "node1:1")
        .env("notify_command", &hook)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() && std::time::Instant::now() < until {
        if plugin.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let environ = std::fs::read(format!("/proc/{}/environ", plugin.id())).unwrap_or_default();
    std::fs::write(&go, "").unwrap();
    let output = plugin.wait_with_output().unwrap();
    let mut seen = std::fs::read_to_string(&seen).unwrap_or_else(|e| {
        panic!(
            "the notify command did not run ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for line in environ.split(|b| *b == 0).filter(|l| !l.is_empty()) {
        seen.push_str(&format!("plugin: {}\n", String::from_utf8_lossy(line)));
    }
    (output.status.code(), seen)
}

#[test]
fn a_password_under_its_alias_is_used_and_hidden_from_children() {
    let secret = "alias-pw-5d0c1e";
    let (code, seen) = off_with_env(&[("passwd", secret), ("expect_password", secret)]);
    assert!(!seen.contains(secret), "the notify command saw it:\n{seen}");
    // The plugin's own /proc/PID/environ was read (root reads a non-dumpable
    // process's), and shows the block it started with, blanked.
    if nix::unistd::geteuid().is_root() {
        assert!(seen.contains("plugin: PATH="), "{seen}");
    }
    assert_eq!(code, Some(0), "the alias was not taken as the password");
}

#[test]
fn a_password_env_variable_is_used_and_hidden_from_children() {
    let secret = "env-pw-93ab40";
    let (code, seen) = off_with_env(&[
        ("password_env", "FENCEKIT_TEST_PW"),
        ("FENCEKIT_TEST_PW", secret),
        ("expect_password", secret),
    ]);
    assert!(!seen.contains(secret), "the notify command saw it:\n{seen}");
    if nix::unistd::geteuid().is_root() {
        assert!(seen.contains("plugin: PATH="), "{seen}");
    }
    assert_eq!(code, Some(0), "password_env was not read");
}

/// A variable named like a secret that the plugin does not declare (a mistyped
/// `ipmi_password`, a copied `api_token`) is taken out of the environment too, so
/// no child inherits it; a lowercase variable a `password_env` names is still the
/// password's source.
#[test]
fn a_secret_named_variable_the_plugin_does_not_take_is_hidden_from_children() {
    let (code, seen) = off_with_env(&[
        ("ipmi_password", "typo-pw-61d0a2"),
        ("api_token", "tok-0c55e1"),
        ("password_env", "bmc_pass"),
        ("bmc_pass", "src-pw-7a1f3c"),
        ("expect_password", "src-pw-7a1f3c"),
    ]);
    for secret in ["typo-pw-61d0a2", "tok-0c55e1", "src-pw-7a1f3c"] {
        assert!(
            !seen.contains(secret),
            "the notify command saw {secret}:\n{seen}"
        );
    }
    assert_eq!(code, Some(0), "password_env naming bmc_pass was not read");
}

/// Names as the site wrote them: a secret-named parameter in capitals or mixed
/// case (`Bmc_Password`, `API_TOKEN`), or longer than a parameter name may be, is
/// taken out of the environment too; the system's own variables
/// (`SSH_AUTH_SOCK`, `PWD`) are left to the children.
#[test]
fn a_secret_named_variable_in_capitals_or_mixed_case_is_hidden_from_children_too() {
    let long = format!("site_{}_password", "x".repeat(70));
    let (code, seen) = off_with_env(&[
        ("Bmc_Password", "mixed-pw-2b7e11"),
        ("API_TOKEN", "upper-tok-8c3d02"),
        (long.as_str(), "long-pw-44e9a0"),
        ("SSH_AUTH_SOCK", "/run/agent.sock"),
    ]);
    for secret in ["mixed-pw-2b7e11", "upper-tok-8c3d02", "long-pw-44e9a0"] {
        assert!(
            !seen.contains(secret),
            "the notify command saw {secret}:\n{seen}"
        );
    }
    assert!(seen.contains("SSH_AUTH_SOCK=/run/agent.sock"), "{seen}");
    assert_eq!(code, Some(0), "{seen}");
}

/// Pacemaker runs cluster-glue plugins through `fence_legacy`, which exports the
/// node to fence as `port` too. For `external/fencekit-ipmi`, whose `port` is the
/// BMC's UDP port (external/ipmi's name), a `port` that is no port number is that
/// node's name and is left out, never an error that stops every fence; a real port
/// number is the UDP port.
#[test]
fn fence_legacys_port_holding_the_node_name_is_not_taken_for_the_udp_port() {
    let run = |port: &str, env: &[(&str, &str)]| {
        Command::new(BIN)
            .args(["external", "ipmi", "gethosts"])
            .env_remove("RUST_LOG")
            .env("hostname", "node2")
            .env("ipaddr", "127.0.0.1")
            .env("userid", "admin")
            .env("passwd", "pw-legacy-1")
            .env("port", port)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let legacy = [("nodename", "node2")];
    let out = run("node2", &legacy);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node2");
    let out = run("623", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Any other `port` that is no port number, beside `nodename` or not, is refused
    // (not shown; a configuration in words a word short puts a secret there), never
    // left out for the default port.
    for (port, env) in [
        ("node2", &[][..]),
        ("0", &[]),
        ("70000", &[]),
        ("Zq8NotAPort", &[]),
        ("0", &legacy),
        ("1623O", &legacy),
        ("node3", &legacy),
        ("node2", &[("nodename", "")]),
    ] {
        let out = run(port, env);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{port} {env:?}: {said}");
        assert!(
            said.contains("no UDP port number"),
            "{port} {env:?}: {said}"
        );
        assert!(!said.contains("Zq8"), "{said}");
    }

    // Under fence_legacy (`nodename` set: Pacemaker 2.1 passes it no plug) a number
    // is the device's own `port` as on every other operation.
    let out = run("623", &[("nodename", "node2")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// apcmastersnmp's `port=161` (the port it always used, and a word every positional
/// configuration has) leaves `ipport` free to say another; a port in `ipaddr` and
/// another in `ipport` are refused, not one of them dropped.
#[test]
fn apcmastersnmps_port_161_leaves_ipport_free_and_two_ports_are_refused() {
    let run = |env: &[(&str, &str)]| {
        Command::new(BIN)
            .args(["external", "apc", "status"])
            .env_remove("RUST_LOG")
            .env("community", "c-two-ports")
            .env("timeout", "2")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[("ipaddr", "127.0.0.1:9"), ("ipport", "10")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("in `ipaddr` and as `ipport`"), "{said}");
    let out = run(&[("ipaddr", "127.0.0.1:9"), ("port", "10")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("in `ipaddr` and as `port`"), "{said}");
    // A number other than 161 in `port` is refused without it (a community that a
    // configuration a word short put there).
    let out = run(&[("ipaddr", "127.0.0.1"), ("port", "4242")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("other than 161") && !said.contains("4242"),
        "{said}"
    );
    // Nothing listens on port 9: refused for no answer, not for its words.
    let out = run(&[("ipaddr", "127.0.0.1"), ("port", "161"), ("ipport", "9")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("127.0.0.1:9"), "{said}");
    assert!(!said.contains("different values"), "{said}");
}

/// A BMC powers one machine: a configuration of `external/fencekit-ipmi` naming
/// two hosts (a host map, a host list, `hostname` with two names) would power off
/// that machine for either and call the other fenced, so every operation refuses
/// it before the BMC is reached (none listens here: a refusal comes at once, a
/// fence would fail only by its timeout). A host map can give its host no outlet.
#[test]
fn a_bmc_configured_for_two_hosts_is_refused_at_every_operation() {
    let run = |op: &[&str], env: &[(&str, &str)]| {
        let started = std::time::Instant::now();
        let out = Command::new(BIN)
            .arg("external")
            .arg("ipmi")
            .args(op)
            .env_remove("RUST_LOG")
            .env("ipaddr", "127.0.0.1")
            .env("port", "9")
            .env("userid", "admin")
            .env("passwd", "pw-two-hosts-1")
            .env("timeout", "20")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    for config in [
        vec![("hostmap", "node1:chassis;node2:chassis")],
        vec![("hostmap", "node1:1;node2:2")],
        vec![("hostname", "node1 node2")],
        vec![("hostlist", "node1 node2")],
        vec![("hostname", "node1"), ("hostlist", "node2")],
        vec![("hostname", "node2"), ("hostmap", "node1:chassis")],
        vec![("hostlist", "node2"), ("hostmap", "node1:chassis")],
        vec![("hostlist", "node1;node2")],
    ] {
        for op in [&["off", "node2"][..], &["gethosts"], &["status"]] {
            let (out, took) = run(op, &config);
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{config:?} {op:?}: {said}");
            assert!(
                said.contains("powers one machine") && took < std::time::Duration::from_secs(10),
                "{config:?} {op:?} after {took:?}: {said}"
            );
            assert!(out.stdout.is_empty(), "{config:?} {op:?}: {out:?}");
        }
    }
    // A host map of one host's outlet: refused too, naming the way to write it.
    let (out, _) = run(&["off", "node1"], &[("hostmap", "node1:3")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("map it to `chassis`"), "{said}");
    // A full name configured says which `node1` it is: another full name with that
    // short name is another host, a bare `node1` beside it notwithstanding.
    for config in [
        vec![("hostname", "node1.a.com node1")],
        vec![("hostname", "node1"), ("hostlist", "node1.a.com")],
    ] {
        let (out, took) = run(&["off", "node1.b.com"], &config);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config:?}: {said}");
        assert!(
            said.contains("is not fenced by this device")
                && took < std::time::Duration::from_secs(10),
            "{config:?} after {took:?}: {said}"
        );
    }
    // Many entries of one host are compared once each (pairs of 20000 names took
    // minutes, past any deadline).
    let many = vec!["node1"; 20_000].join(" ");
    let (out, took) = run(&["gethosts"], &[("hostlist", many.as_str())]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    // Two names of one host are one host.
    let (out, _) = run(&["gethosts"], &[("hostname", "node1 node1.example.com")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (out, _) = run(&["gethosts"], &[("hostmap", "node1:chassis")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node1");
}

/// cluster-glue's power-strip plugins (apcmastersnmp, baytech) take every outlet
/// named after the host, case aside: a machine with two power supplies has two.
/// Both are switched and read back off; `gethosts` names the host once.
#[test]
fn every_outlet_named_after_the_host_is_switched_and_the_host_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.display().to_string();
    let env = [
        ("plugs", "3"),
        ("names", "node5,web01,NODE5"),
        ("state_file", state.as_str()),
    ];
    let out = Command::new(BIN)
        .args(["external", "sim", "off", "node5"])
        .env_remove("RUST_LOG")
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states = std::fs::read_to_string(dir.path().join("state")).unwrap();
    let off: Vec<&str> = states
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("off"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(off, ["1", "3"], "{states}");
    let out = Command::new(BIN)
        .args(["external", "sim", "gethosts"])
        .env_remove("RUST_LOG")
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["node5", "web01"]
    );
}

/// An outlet whose name a reader would take for the host's but that is not it
/// (blanks, another Unicode form, a zero-width mark) beside the host's own outlet:
/// nothing is switched and the error names it; the outlets stay on.
#[test]
fn an_outlet_named_alike_to_the_host_but_not_the_same_stops_the_fence() {
    for other in ["node 5", "n\u{f6}de5", "node5\u{200b}", "\u{ff4e}ode5"] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let state = state.display().to_string();
        let names = format!("node5,web01,{other}");
        let out = Command::new(BIN)
            .args(["external", "sim", "off", "node5"])
            .env_remove("RUST_LOG")
            .env("plugs", "3")
            .env("names", &names)
            .env("state_file", &state)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{other:?}: {said}");
        assert!(said.contains("outlet(s) 3"), "{other:?}: {said}");
        let states = std::fs::read_to_string(&state).unwrap_or_default();
        assert!(
            !states
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some("off")),
            "{other:?}: {states}"
        );
    }
}

/// cluster-glue runs `plugin off HOST` through the shell with the host unquoted:
/// `outlet 4` arrives as `outlet` and `4`. Beside an outlet named `outlet`, taking
/// the first word would switch that one; the run is refused instead, through the
/// plugin's own name (as cluster-glue runs it) and through `stonith-bridge external`.
#[test]
fn a_host_that_arrives_as_several_words_is_refused_never_its_first_word_switched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let link = dir.path().join("fencekit-sim");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    for via_link in [true, false] {
        let mut command = if via_link {
            Command::new(&link)
        } else {
            let mut c = Command::new(BIN);
            c.args(["external", "sim"]);
            c
        };
        let out = command
            .args(["off", "outlet", "4"])
            .env_remove("RUST_LOG")
            .env("plugs", "3")
            .env("names", "outlet,web01,outlet 4")
            .env("state_file", &state)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{via_link}: {said}");
        assert!(
            said.contains("2 words (`outlet` `4`)"),
            "{via_link}: {said}"
        );
        let states = std::fs::read_to_string(&state).unwrap_or_default();
        assert!(
            !states
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some("off")),
            "{via_link}: {states}"
        );
    }
}
