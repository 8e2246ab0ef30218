//! The generated manual pages render without a warning, the fence agent prints its
//! page for `-o manpage`, and the shell completions load in their shells.

use std::path::Path;
use std::process::Command;

use fencekit_tests::peers;

const BIN: &str = env!("CARGO_BIN_EXE_stonith-bridge");

fn man_warnings(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .expect("run man");
    assert!(out.status.success(), "man -l {}: {:?}", page.display(), out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_generated_page_renders_without_a_warning() {
    if peers::require("man", "man-db").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let written: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        written.iter().any(|p| p.ends_with("/stonith-bridge.8")),
        "{written:?}"
    );
    assert!(
        written
            .iter()
            .any(|p| p.ends_with("/fence_fencekit_ipmi.8")),
        "{written:?}"
    );
    for page in &written {
        let warnings = man_warnings(Path::new(page));
        assert!(warnings.trim().is_empty(), "{page}:\n{warnings}");
    }
}

#[test]
fn the_fence_agent_prints_its_page_for_action_manpage_on_the_command_line_and_on_stdin() {
    if peers::require("man", "man-db").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let by_args = Command::new(BIN)
        .args(["fence-agent", "ipmi", "-o", "manpage"])
        .output()
        .unwrap();
    assert_eq!(by_args.status.code(), Some(0), "{by_args:?}");
    let page = String::from_utf8_lossy(&by_args.stdout).into_owned();
    assert!(page.contains("\n.TH FENCE_FENCEKIT_IPMI 8 "), "{page}");
    let path = dir.path().join("fence_fencekit_ipmi.8");
    std::fs::write(&path, &page).unwrap();
    assert!(man_warnings(&path).trim().is_empty());
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANWIDTH", "200")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rendered.stdout);
    for expected in ["--ip=", "--password-file", "EXIT STATUS", "Default: 623"] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }

    let mut by_stdin = Command::new(BIN)
        .args(["fence-agent", "ipmi"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    by_stdin
        .stdin
        .take()
        .unwrap()
        .write_all(b"action=manpage\n")
        .unwrap();
    let by_stdin = by_stdin.wait_with_output().unwrap();
    assert_eq!(by_stdin.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&by_stdin.stdout), page);
}

#[test]
fn bash_and_zsh_completions_are_generated_and_bash_loads_them() {
    for shell in ["bash", "zsh"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("stonith-bridge") && text.contains("fence"),
            "{shell}:\n{text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stonith-bridge.bash");
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    std::fs::write(&script, &out.stdout).unwrap();
    // Loaded into bash, the completion function offers the commands.
    let probe = format!(
        "source {}; COMP_WORDS=(stonith-bridge fe); COMP_CWORD=1; COMP_LINE='stonith-bridge fe'; COMP_POINT=${{#COMP_LINE}}; _stonith__bridge stonith-bridge fe stonith-bridge; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(offered.lines().any(|l| l == "fence"), "{out:?}");
    assert!(offered.lines().any(|l| l == "fence-agent"), "{out:?}");
}
