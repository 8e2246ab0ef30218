//! The `script` plugin end to end, with shell scripts written by each test: fencing
//! succeeds only when the script's `status` confirms off; a script past its deadline
//! is killed with its children; garbage from `status` is an error; secrets reach the
//! script on its stdin only, never in its environment or argv.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fencekit_core::{fence, DeviceError, FenceAction, Plug, PowerState, PowerSwitch, SwitchTo};
use fencekit_plugins::{PowerPlugin, Registry};
use support::{deadline, one_device, options, params};

fn script_plugin() -> &'static PowerPlugin {
    Registry::builtin().power("script").unwrap()
}

fn write_script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("device.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A device whose plugs' states live in `$FENCEKIT_PARAM_STATE_DIR/<plug>`.
const OBEDIENT: &str = r#"
state="$FENCEKIT_PARAM_STATE_DIR/$FENCEKIT_PLUG"
case "$1" in
  status) if [ -f "$state" ]; then cat "$state"; else echo on; fi ;;
  on|off) echo "$1" > "$state" ;;
  list) echo "1 web"; echo "2 db" ;;
  check) exit 0 ;;
  *) exit 2 ;;
esac
"#;

fn switch(script: &Path, extra: &[(&str, &str)]) -> std::sync::Arc<dyn PowerSwitch> {
    let mut pairs = vec![("script", script.to_str().unwrap())];
    pairs.extend_from_slice(extra);
    let plugin = script_plugin();
    plugin.build(&params(plugin, &pairs).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_fences_a_node_when_its_status_confirms_off() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), OBEDIENT);
    let state_dir = format!("STATE_DIR={}", dir.path().display());
    let device = switch(&script, &[("params", &state_dir)]);
    let soon = || deadline(Duration::from_secs(5));
    device.check(soon()).await.unwrap();
    let plugs = device.list(soon()).await.unwrap();
    assert_eq!(plugs[1].plug, Plug::Number(2));
    assert_eq!(plugs[1].name.as_deref(), Some("db"));
    let (devices, target) = one_device(device, &[1, 2]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert!(outcome.success && outcome.fenced, "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("2"))
            .unwrap()
            .trim(),
        "off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_whose_off_exits_0_but_leaves_power_on_cannot_make_a_fence_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "case \"$1\" in status) echo on ;; *) exit 0 ;; esac\n",
    );
    let (devices, target) = one_device(switch(&script, &[]), &[1]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert!(!outcome.success && !outcome.fenced, "{outcome:?}");
    assert_eq!(outcome.aggregate_state(), PowerState::On);
}

fn process_is_gone(pid: &str) -> bool {
    // Gone, or a zombie waiting for a parent (init in a container may be slow to reap).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_script_is_killed_with_its_children_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    // A sleep length no other process runs marks the child in the machine's /proc
    // (the pid the script reads may be one of a namespace of its own).
    let mark = format!("300.{}", std::process::id());
    let script = write_script(
        dir.path(),
        &format!(
            "sleep {mark} &\necho $! > \"$FENCEKIT_PARAM_PID_FILE.tmp\"\nmv \"$FENCEKIT_PARAM_PID_FILE.tmp\" \"$FENCEKIT_PARAM_PID_FILE\"\nwait\n"
        ),
    );
    let pid_param = format!("pid_file={}", pid_file.display());
    let device = switch(&script, &[("params", &pid_param)]);
    let err = device
        .switch(
            &Plug::Number(1),
            SwitchTo::Off,
            deadline(Duration::from_secs(3)),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("killed"), "{err}");
    assert!(pid_file.exists(), "the script never started its child");
    // SIGKILL has been sent; the kernel needs a moment to finish it.
    let mut gone = false;
    for _ in 0..100 {
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
            .filter(|pid| !process_is_gone(pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|w| w == mark.as_bytes()))
            })
            .collect();
        if running.is_empty() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "the script's child outlived the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_printing_garbage_for_status_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "echo 'power: probably'\n");
    let device = switch(&script, &[]);
    let err = device
        .status(&Plug::Number(1), deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("probably"), "{err}");
    let (devices, target) = one_device(device, &[1]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert!(!outcome.fenced, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_script_on_stdin_and_never_in_its_environment_or_argv() {
    // A variable that holds a secret of the front end's (cluster-glue passes a
    // device's password in the environment): registered, so no child inherits it.
    std::env::set_var("FENCEKIT_TEST_SCRIPT_GLUE_PASSWD", "glue-pw-41b7");
    fencekit_core::secret::hide_env_var("FENCEKIT_TEST_SCRIPT_GLUE_PASSWD");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let script = write_script(
        out,
        &format!(
            "tr '\\0' '\\n' < /proc/$$/cmdline > '{o}/argv'\n\
             tr '\\0' '\\n' < /proc/$$/environ > '{o}/environ'\n\
             cat > '{o}/stdin'\n\
             printf '%s\\n' \"$FENCEKIT_PARAM_USERNAME\" \"$FENCEKIT_PLUG\" > '{o}/env'\n\
             pw=$(sed -n 's/^password=//p' '{o}/stdin')\n\
             echo \"denied for $pw\" >&2\nexit 3\n",
            o = out.display()
        ),
    );
    let device = switch(
        &script,
        &[
            ("passwd", "s3cret-pw"),
            ("login", "admin"),
            ("secret_params", "token=t0ken-value"),
        ],
    );
    let err = device
        .switch(
            &Plug::Number(4),
            SwitchTo::Off,
            deadline(Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    // The script's complaint holds the secret: withheld whole.
    assert!(err.to_string().contains("exited with status 3"), "{err}");
    assert!(err.to_string().contains("withheld"), "{err}");
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    let stdin = std::fs::read_to_string(out.join("stdin")).unwrap();
    let lines: Vec<&str> = stdin.lines().collect();
    assert_eq!(&lines[..2], &["action=off", "plug=4"], "{stdin}");
    for wanted in ["password=s3cret-pw", "token=t0ken-value", "username=admin"] {
        assert!(
            lines.contains(&wanted),
            "{wanted} missing from stdin: {stdin}"
        );
    }
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    assert_eq!(env, "admin\n4\n");
    let environ = std::fs::read_to_string(out.join("environ")).unwrap();
    assert!(
        environ.contains("FENCEKIT_PARAM_USERNAME=admin"),
        "{environ}"
    );
    for secret in ["s3cret", "t0ken", "glue-pw-41b7", "FENCEKIT_PARAM_PASSWORD"] {
        assert!(
            !environ.contains(secret),
            "{secret} in the script's environment"
        );
    }
    let argv = std::fs::read_to_string(out.join("argv")).unwrap();
    assert!(argv.contains("off"), "{argv}");
    assert!(
        !argv.contains("s3cret") && !argv.contains("t0ken"),
        "{argv}"
    );
    let plugin = script_plugin();
    let built = fencekit_plugins::script::ScriptSwitch::from_params(
        &params(plugin, &[("script", "x"), ("password", "s3cret-pw")]).unwrap(),
    )
    .unwrap();
    assert!(!format!("{built:?}").contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_leaves_a_child_holding_its_output_is_done_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "echo off\nsleep 25 &\nexit 0\n");
    let device = switch(&script, &[]);
    let started = std::time::Instant::now();
    let state = device
        .status(&Plug::Number(1), deadline(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(state, PowerState::Off);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_listing_deep_plug_text_gives_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "echo '1 web'\nhead -c 200000 /dev/zero | tr '\\0' ':' | sed 's/^/1/'\necho\n",
    );
    let device = switch(&script, &[]);
    let err = device
        .list(deadline(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Protocol(_)), "{err}");
    assert!(err.to_string().len() < 500, "{err:.300}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_cannot_run_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-script");
    let device = switch(&missing, &[]);
    let err = device
        .check(deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-script"), "{err}");
}

/// A script whose list echoes the password it was given: the list is refused, and
/// neither the list nor the error shows the password.
#[tokio::test]
async fn a_list_holding_the_password_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "pw=$(sed -n 's/^password=//p')\necho \"1 $pw\"\necho \"2 web\"\n",
    );
    let device = switch(&script, &[("passwd", "l1st-s3cret")]);
    let err = device
        .list(deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("printed a secret"), "{err}");
    assert!(!err.to_string().contains("l1st-s3cret"), "{err}");
}
