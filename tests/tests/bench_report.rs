//! bench/render.py turns one bench run into RESULTS.md and the chart: every number
//! comes from the run, so two runs give documents that differ in numbers only, and
//! every measured row is drawn.

use std::path::{Path, PathBuf};
use std::process::Command;

use fencekit_tests::peers;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// A run directory as bench/report leaves it, with `scale` applied to every time.
fn run(dir: &Path, scale: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let rows = [
        ("ipmi", "fencekit", "off", 11.5),
        ("ipmi", "fence_ipmilan", "off", 2136.8),
        ("ipmi", "ipmitool", "status", 30.9),
        ("ipmi", "fencekit", "status", 8.5),
        ("apc-snmp", "fencekit", "v1 off (confirmed)", 5.3),
        ("apc-snmp", "fence_apc_snmp", "v1 off", 493.7),
    ];
    for script in ["ipmi", "apc-snmp"] {
        let mut tsv = String::new();
        let mut txt = format!("{script} table\n");
        for (s, tool, op, ms) in rows {
            if s == script {
                tsv.push_str(&format!("{tool}\t{op}\t{}\n", ms * scale));
                txt.push_str(&format!("{tool:<16} {op:<20} {:.1}\n", ms * scale));
            }
        }
        std::fs::write(dir.join(format!("{script}.tsv")), tsv).unwrap();
        std::fs::write(dir.join(format!("{script}.txt")), txt).unwrap();
    }
}

fn render(run: &Path, out: &Path) -> (String, String) {
    let md = out.join("RESULTS.md");
    let svg = out.join("chart.svg");
    let status = Command::new("python3")
        .arg(workspace().join("bench/render.py"))
        .args([run, &md, &svg])
        .status()
        .unwrap();
    assert!(status.success());
    (
        std::fs::read_to_string(md).unwrap(),
        std::fs::read_to_string(svg).unwrap(),
    )
}

/// The text with every number replaced by `#`.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn two_runs_give_documents_that_differ_in_numbers_only() {
    if peers::require("python3", "python3").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&a, 1.0);
    run(&b, 1.37);
    let (md_a, svg_a) = render(&a, &a);
    let (md_b, svg_b) = render(&b, &b);
    assert_ne!(md_a, md_b, "the numbers come from the run");
    assert_ne!(svg_a, svg_b, "the bars come from the run");
    assert_eq!(shape(&md_a), shape(&md_b));
    assert_eq!(shape(&svg_a), shape(&svg_b));
    // Every measured row is a bar with its value; the document shows the chart.
    for (tool, ms) in [
        ("fence_ipmilan", "2136.8"),
        ("fence_apc_snmp", "493.7"),
        ("fencekit", "5.3"),
    ] {
        assert!(svg_a.contains(&format!(">{tool}<")), "{tool}");
        assert!(svg_a.contains(&format!(">{ms}<")), "{ms}");
    }
    assert!(md_a.contains("](chart.svg)"), "{md_a}");
    assert!(md_a.contains("fence_ipmilan    off"), "{md_a}");
}
