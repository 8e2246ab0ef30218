//! The script plugin's contract for parameters it does not declare: each reaches
//! the script under its own name, as `FENCEKIT_PARAM_<NAME>` and as a stdin line,
//! from a fence agent's stdin and from a configuration file alike; one whose name
//! reads like a secret only on stdin. The script here keeps its outlet in a file
//! under the `state_dir` it is given, so a fence that works proves the parameter
//! arrived with its meaning.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fencekit_tests::tool::{self, ToolOutput};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

/// A one-outlet device whose state is `$FENCEKIT_PARAM_STATE_DIR/outlet`; each run
/// saves its environment and stdin beside it.
fn write_script(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("relay");
    std::fs::write(
        &script,
        r#"#!/bin/sh
set -eu
dir=${FENCEKIT_PARAM_STATE_DIR:?no state_dir}
env > "$dir/env.$1"
cat > "$dir/stdin.$1"
case "$1" in
    status) cat "$dir/outlet" ;;
    on) echo on > "$dir/outlet" ;;
    off) echo off > "$dir/outlet" ;;
    list) echo "1 outlet" ;;
    check) : ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("outlet"), "on\n").unwrap();
    script
}

/// Runs `command` with `stdin`, killed (by its PID) past a minute.
fn run(mut command: Command, stdin: &str) -> ToolOutput {
    command.env_remove("RUST_LOG");
    tool::run(command, Some(stdin.as_bytes()), Duration::from_secs(60)).unwrap()
}

/// Writes `text` as `dir/fencekit.toml` with `mode` and runs `fence` on node1.
fn fence_off_with(dir: &Path, text: &str, mode: u32) -> ToolOutput {
    let config = dir.join("fencekit.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["fence", "--config"])
        .arg(&config)
        .args(["--node", "node1", "--action", "off"]);
    run(command, "")
}

#[test]
fn a_parameter_the_schema_does_not_name_reaches_the_script_from_a_fence_agents_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path());
    let stdin = format!(
        "action=off\nscript={}\nplug=1\nstate_dir={}\napi_token=tok-5e1d\nretries=3\n",
        script.display(),
        dir.path().display()
    );
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "script"]);
    let out = run(command, &stdin);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(!out.text().contains("unknown parameter"), "{}", out.text());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outlet")).unwrap(),
        "off\n"
    );
    let env = std::fs::read_to_string(dir.path().join("env.off")).unwrap();
    assert!(
        env.contains(&format!(
            "FENCEKIT_PARAM_STATE_DIR={}",
            dir.path().display()
        )),
        "{env}"
    );
    assert!(env.contains("FENCEKIT_PARAM_RETRIES=3"), "{env}");
    // Named like a secret: on stdin only, never in the environment or the output.
    assert!(!env.contains("tok-5e1d"), "{env}");
    assert!(!out.text().contains("tok-5e1d"), "{}", out.text());
    let input = std::fs::read_to_string(dir.path().join("stdin.off")).unwrap();
    assert!(input.contains("api_token=tok-5e1d\n"), "{input}");
    assert!(
        input.contains(&format!("state_dir={}\n", dir.path().display())),
        "{input}"
    );
}

#[test]
fn a_parameter_the_schema_does_not_name_reaches_the_script_from_a_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path());
    let out = fence_off_with(
        dir.path(),
        &format!(
            "[devices.relay]\nplugin = \"script\"\nscript = \"{}\"\nstate_dir = \"{}\"\n\n\
             [nodes.node1]\nplugs = [{{ device = \"relay\", plug = \"1\" }}]\n",
            script.display(),
            dir.path().display()
        ),
        0o600,
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outlet")).unwrap(),
        "off\n"
    );
    // A name given twice in a file is an error, as for every other parameter.
    let out = fence_off_with(
        dir.path(),
        &format!(
            "[devices.relay]\nplugin = \"script\"\nscript = \"{}\"\nstate_dir = \"{}\"\n\
             state-dir = \"/elsewhere\"\n\n[nodes.node1]\nplugs = [{{ device = \"relay\", plug = \"1\" }}]\n",
            script.display(),
            dir.path().display()
        ),
        0o600,
    );
    assert_ne!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.text().contains("given twice"), "{}", out.text());
}

/// A key named like a secret inside `params=` is kept as secret as the same name on
/// its own line: on the script's stdin, never in its environment.
#[test]
fn a_secret_named_key_inside_params_reaches_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path());
    let stdin = format!(
        "action=off\nscript={}\nplug=1\nstate_dir={}\nparams=password=pw-77c1,mode=fast\n",
        script.display(),
        dir.path().display()
    );
    let mut command = Command::new(BIN);
    command.args(["fence-agent", "script"]);
    let out = run(command, &stdin);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    let env = std::fs::read_to_string(dir.path().join("env.off")).unwrap();
    assert!(!env.contains("pw-77c1"), "{env}");
    assert!(env.contains("FENCEKIT_PARAM_MODE=fast"), "{env}");
    let input = std::fs::read_to_string(dir.path().join("stdin.off")).unwrap();
    assert!(input.contains("password=pw-77c1\n"), "{input}");
}

/// An answer longer than the plugin reads is not read from its start: a `status`
/// that prints `off`, then more than the limit, then `on`, is no status at all, and
/// an off confirmed by it would be a false "fenced".
#[test]
fn a_status_longer_than_the_plugin_reads_is_an_error_not_its_first_word() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("relay");
    let state = dir.path().join("state");
    std::fs::write(&state, "on\n").unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             status) printf off; head -c 300000 /dev/zero | tr '\\0' ' '; cat '{}' ;;\n\
             off) : ;;\n\
             esac\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for action in ["off", "status"] {
        let mut command = Command::new(BIN);
        command.args(["fence-agent", "script"]);
        let out = run(
            command,
            &format!(
                "action={action}\nscript={}\nplug=1\ntimeout=5\npower_timeout=2\n",
                script.display()
            ),
        );
        assert_eq!(out.status.code(), Some(1), "{action}: {}", out.text());
        assert!(out.text().contains("more than"), "{action}: {}", out.text());
    }
}

/// cluster-glue exports every parameter of the resource into the plugin's
/// environment. One the script plugin does not declare whose name reads like a
/// secret is handled as on a fence agent's stdin: taken out of the environment, so
/// neither the script nor the notify command inherits it, given to the script on
/// stdin only, and withheld from what the script prints.
#[test]
fn a_secret_named_parameter_in_cluster_glues_environment_reaches_the_script_on_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("relay");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -eu\ndir='{dir}'\nenv > \"$dir/env.$1\"\ncat > \"$dir/stdin.$1\"\n\
             [ ! -e \"$dir/fail\" ] || {{ echo \"cannot log in with $(cat \"$dir/stdin.$1\")\" >&2; exit 1; }}\n\
             case \"$1\" in\n\
             status) cat \"$dir/outlet\" ;;\n\
             on) echo on > \"$dir/outlet\" ;;\n\
             off) echo off > \"$dir/outlet\" ;;\n\
             esac\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("outlet"), "on\n").unwrap();
    let hook = dir.path().join("hook");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nenv > '{}/env.notify'\n", dir.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let off = || {
        let mut command = Command::new(BIN);
        command
            .args(["external", "script", "off", "node1"])
            .env("script", &script)
            .env("hostmap", "node1:1")
            .env("timeout", "10")
            .env("notify_command", &hook)
            .env("my_token", "tok-91c3e7")
            .env("mode", "fast");
        run(command, "")
    };
    let out = off();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outlet")).unwrap(),
        "off\n"
    );
    for seen in ["env.off", "env.status", "env.notify"] {
        let env = std::fs::read_to_string(dir.path().join(seen)).unwrap();
        assert!(!env.contains("tok-91c3e7"), "{seen}: {env}");
        // A parameter not named like a secret stays where cluster-glue put it.
        assert!(env.contains("mode=fast"), "{seen}: {env}");
    }
    let input = std::fs::read_to_string(dir.path().join("stdin.off")).unwrap();
    assert!(input.contains("my_token=tok-91c3e7\n"), "{input}");
    // A script that prints its stdin in an error: the token is withheld.
    std::fs::write(dir.path().join("fail"), "").unwrap();
    std::fs::write(dir.path().join("outlet"), "on\n").unwrap();
    let out = off();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(!out.text().contains("tok-91c3e7"), "{}", out.text());
}

/// A configuration file every user may read is refused when it holds the value of
/// a script parameter named like a secret, as for a declared password.
#[test]
fn a_world_readable_configuration_holding_a_secret_named_script_parameter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path());
    for (line, named) in [
        ("api_token = \"tok-3b8a20\"", "api_token"),
        ("bmc_pwd = \"tok-3b8a20\"", "bmc_pwd"),
        ("params = \"mode=fast,api_token=tok-3b8a20\"", "params"),
    ] {
        let out = fence_off_with(
            dir.path(),
            &format!(
                "[devices.relay]\nplugin = \"script\"\nscript = \"{}\"\nstate_dir = \"{}\"\n\
                 {line}\n\n[nodes.node1]\nplugs = [{{ device = \"relay\", plug = \"1\" }}]\n",
                script.display(),
                dir.path().display()
            ),
            0o644,
        );
        assert_eq!(out.status.code(), Some(2), "{line}: {}", out.text());
        assert!(out.text().contains(named), "{line}: {}", out.text());
        assert!(out.text().contains("every user may read"), "{}", out.text());
        assert!(!out.text().contains("tok-3b8a20"), "{}", out.text());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("outlet")).unwrap(),
            "on\n"
        );
    }
}
