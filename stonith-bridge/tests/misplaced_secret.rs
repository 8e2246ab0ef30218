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
