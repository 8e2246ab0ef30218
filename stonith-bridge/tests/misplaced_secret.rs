//! A password typed into the wrong parameter is never echoed in that parameter's
//! error, also where the error quotes the value lower-cased, and also for the
//! cluster-glue names checked before the parameters are validated.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn agent(stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["fence-agent", "ipmi"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn glue(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["external", "ipmi", "status"])
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_password_given_as_a_workaround_is_not_echoed_even_lower_cased() {
    let pw = "Zq8AgentPw";
    let (code, said) = agent(&format!(
        "action=status\nip=127.0.0.1\nusername=a\npassword={pw}\nworkarounds={pw}\n"
    ));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        !said.to_ascii_lowercase().contains(&pw.to_ascii_lowercase()),
        "{said}"
    );
}

/// `verbose` with a value that is no boolean is taken as verbose and the run goes
/// on, as fence-agents ignore it (it switches nothing); the warning never shows a
/// password typed there.
#[test]
fn verbose_with_another_value_goes_on_and_never_echoes_a_password_there() {
    let pw = "Zq8VerbosePw";
    let (code, said) = agent(&format!(
        "action=validate-all\nip=127.0.0.1\nusername=a\npassword={pw}\nverbose={pw}\n"
    ));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("`verbose` has a value that is no boolean"),
        "{said}"
    );
    assert!(!said.contains(pw), "{said}");
    // Nor one a password_script gives, read only after the warning.
    let (code, said) = agent(&format!(
        "action=validate-all\nip=127.0.0.1\nusername=a\npassword_script=echo {pw}\nverbose={pw}\n"
    ));
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains(pw), "{said}");
    let (code, said) =
        agent("action=validate-all\nip=127.0.0.1\nusername=a\npassword=x1\nverbose=2\n");
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("`verbose` has a value that is no boolean"),
        "{said}"
    );
}

#[test]
fn a_password_given_for_cluster_glues_priv_or_passwd_method_is_not_echoed() {
    let pw = "Zq8GlueA";
    for name in ["priv", "passwd_method"] {
        let (code, said) = glue(&[
            ("hostname", "n1"),
            ("ipaddr", "127.0.0.1"),
            ("userid", "a"),
            ("passwd", pw),
            (name, pw),
        ]);
        assert_ne!(code, Some(0), "{name}: {said}");
        assert!(
            !said.to_ascii_lowercase().contains(&pw.to_ascii_lowercase()),
            "{name}: {said}"
        );
    }
}

/// `stonith -p`/`-F` give external/ipmi's names one word each, the last
/// (`interface`) the rest of the line: a word too many (two host names) moves the
/// password into `interface`, whose error would quote it. Refused, not shown.
#[test]
fn a_configuration_in_words_with_a_word_too_many_never_shows_the_password() {
    let pw = "Zq8ShiftedPw";
    let (code, said) = glue(&[
        ("hostname", "node1"),
        ("ipaddr", "node2"),
        ("userid", "127.0.0.1"),
        ("passwd", "admin"),
        ("interface", &format!("{pw} lanplus")),
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("holds several words"), "{said}");
    assert!(!said.contains(pw), "{said}");
}

/// With `passwd_method=file`, `passwd` is the file's path, not the password: an
/// error about the file names it, rather than being withheld whole.
#[test]
fn passwd_method_file_that_cannot_be_read_says_which_file_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("bmc.pass");
    let missing = missing.to_str().unwrap();
    let (code, said) = glue(&[
        ("hostname", "n1"),
        ("ipaddr", "127.0.0.1"),
        ("userid", "a"),
        ("passwd_method", "file"),
        ("passwd", missing),
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(missing) && !said.contains("withheld"),
        "{said}"
    );
}

/// A password given on the command line (`--password SECRET`, `--password=SECRET`) is
/// blanked in the agent's own argument block once it is read: the agent's
/// /proc/PID/cmdline is read while its device script waits.
#[test]
fn a_password_on_the_command_line_leaves_the_agents_cmdline_once_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let go = dir.path().join("go");
    let script = dir.path().join("device");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\n\
             i=0; while [ ! -e '{}' ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n\
             case \"$1\" in status) echo on ;; esac\n",
            ready.display(),
            go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pw = "Zq8ArgvPw-5c1";
    let mut cmdlines = String::new();
    for form in [
        vec!["--password", pw],
        vec![&format!("--password={pw}")[..]],
    ] {
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(&go);
        let mut args = vec![
            "fence-agent".to_string(),
            "script".into(),
            "-o".into(),
            "status".into(),
            "--script".into(),
            script.display().to_string(),
            "-n".into(),
            "1".into(),
        ];
        args.extend(form.iter().map(|s| s.to_string()));
        let agent = Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready.exists() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent.id())).unwrap_or_default();
        cmdlines.push_str(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
        cmdlines.push('\n');
        std::fs::write(&go, "").unwrap();
        let out = agent.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{said}");
    }
    assert!(cmdlines.contains("fence-agent script"), "{cmdlines}");
    assert!(!cmdlines.contains("Zq8ArgvPw"), "{cmdlines}");
    assert!(cmdlines.contains("--password="), "{cmdlines}");
}
