//! An external plugin (`libfencekit_example_relay.so`, built from the workspace and
//! loaded through the versioned C ABI) fences a node end to end through every front
//! end: the fence-agent API, the cluster-glue external API, the standalone command,
//! and `stonith-bridge plugins`; its schema shows in the generated metadata.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use fencekit_tests::bridge;
use fencekit_tests::peers;

struct Board {
    dir: tempfile::TempDir,
    plugins: PathBuf,
    state: PathBuf,
}

impl Board {
    fn new() -> Board {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let library = bridge::workspace_library("fencekit-example-relay").unwrap();
        std::fs::copy(&library, plugins.join("libfencekit_example_relay.so")).unwrap();
        let state = dir.path().join("relays");
        Board {
            dir,
            plugins,
            state,
        }
    }

    fn run(&self, args: &[&str], stdin: &str, env: &[(&str, String)]) -> Output {
        let mut child = Command::new(bridge::binary().unwrap())
            .args(args)
            .env("FENCEKIT_PLUGIN_DIR", &self.plugins)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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
        child.wait_with_output().unwrap()
    }

    /// Relay states, `true` for on, in relay order.
    fn states(&self) -> Vec<bool> {
        std::fs::read_to_string(&self.state)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().nth(1) == Some("on"))
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_fence_agent_api_fences_through_the_external_plugin_and_shows_its_schema() {
    let board = Board::new();
    let input = format!(
        "action=off\nplug=2,3\nstate_file={}\nrelays=4\n",
        board.state.display()
    );
    let out = board.run(&["fence-agent", "example-relay"], &input, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Success: Powered OFF"),
        "{}",
        text(&out)
    );
    assert_eq!(board.states(), vec![true, false, false, true]);

    let out = board.run(&["fence-agent", "example-relay", "-o", "metadata"], "", &[]);
    let xml = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(xml.contains("<parameter name=\"state_file\""), "{xml}");
    assert!(xml.contains("<parameter name=\"relays\""), "{xml}");
    if let Some(rng) =
        peers::require_file("/usr/share/cluster/relaxng/metadata.rng", "fence-agents")
    {
        let Some(xmllint) = peers::require("xmllint", "libxml2-utils") else {
            return;
        };
        let file = board.dir.path().join("metadata.xml");
        std::fs::write(&file, &xml).unwrap();
        let check = Command::new(xmllint)
            .arg("--noout")
            .arg("--relaxng")
            .arg(rng)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn a_lying_relay_of_the_external_plugin_is_not_reported_fenced() {
    let board = Board::new();
    let input = format!(
        "action=off\nplug=1\nstate_file={}\nrelays=4\nlie=1\npower_timeout=1\n",
        board.state.display()
    );
    let out = board.run(&["fence-agent", "example-relay"], &input, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("still on"), "{}", text(&out));
}

#[test]
fn the_cluster_glue_api_fences_through_the_external_plugin() {
    let board = Board::new();
    let env = [
        ("state_file", board.state.display().to_string()),
        ("relays", "4".to_string()),
        ("hostmap", "node1:1;node2:2,4".to_string()),
    ];
    let out = board.run(&["external", "example-relay", "getinfo-xml"], "", &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("name=\"state_file\""));
    let out = board.run(&["external", "example-relay", "gethosts"], "", &env);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "node1\nnode2\n");
    let out = board.run(&["external", "example-relay", "off", "node2"], "", &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(board.states(), vec![true, false, true, false]);
    let out = board.run(&["external", "example-relay", "reset", "node2"], "", &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(board.states(), vec![true, true, true, true]);
}

#[test]
fn the_standalone_command_and_the_plugin_list_know_the_external_plugin() {
    let board = Board::new();
    let config = board.dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        format!(
            "[devices.relays]\nplugin = \"example-relay\"\nstate_file = \"{}\"\nrelays = 4\n\n\
             [nodes.node1]\nplugs = [{{ device = \"relays\", plug = \"3\" }}]\n",
            board.state.display()
        ),
    )
    .unwrap();
    let plugin_dir = board.plugins.display().to_string();
    let config = config.display().to_string();
    let out = board.run(
        &[
            "fence",
            "-c",
            &config,
            "-n",
            "node1",
            "-a",
            "off",
            "--plugin-dir",
            &plugin_dir,
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(board.states(), vec![true, true, false, true]);

    let out = board.run(&["plugins", "--plugin-dir", &plugin_dir], "", &[]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listing
        .lines()
        .find(|l| l.starts_with("example-relay"))
        .unwrap_or_else(|| panic!("no example-relay in:\n{listing}"));
    assert!(line.contains("libfencekit_example_relay.so"), "{line}");
    assert!(listing.lines().any(|l| l.starts_with("ipmi")), "{listing}");
}
