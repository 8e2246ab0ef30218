//! fencekit ends what a site's program leaves behind, and nothing else: a `.so`
//! plugin that runs a helper program in a process group of its own, and waits for
//! it on its own thread, keeps that helper while a script device's programs start
//! and end beside it in the same run. (When fencekit ended every child of its own
//! that was neither a running program nor in its own group, the helper was killed
//! whenever a script's program ended, and the node could never be fenced.) The
//! oracle is the toy devices' own files.

use std::time::Duration;

use fencekit_tests::bridge;
use fencekit_tests::matrix::Record;
use fencekit_tests::toy::{self, ToyDevice};

#[test]
fn a_plugins_own_helper_lives_through_the_end_of_a_script_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let library = bridge::workspace_library("fencekit-test-plugin-faulty").unwrap();
    std::fs::copy(&library, plugins.join("libfencekit_test_plugin_faulty.so")).unwrap();
    let scripted = ToyDevice::create(&dir.path().join("scripted"), &["node1"], &[true], "obey");
    let script = toy::write_script(scripted.dir());
    let shared = ToyDevice::create(&dir.path().join("shared"), &["node1"], &[true], "obey");
    let config = dir.path().join("fencekit.toml");
    std::fs::write(
        &config,
        format!(
            "[fence]\ntimeout = 20\npower_timeout = 8\n\n\
             [devices.scripted]\nplugin = \"script\"\nscript = \"{}\"\n\n\
             [devices.shared]\nplugin = \"test-faulty\"\nfault = \"helper\"\nstate_dir = \"{}\"\n\n\
             [nodes.node1]\nplugs = [{{ device = \"scripted\", plug = \"1\" }}, \
             {{ device = \"shared\", plug = \"1\" }}]\n",
            script.display(),
            shared.dir().display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(bridge::binary().unwrap())
        .args(["fence", "-c"])
        .arg(&config)
        .args(["-n", "node1", "-a", "off", "--plugin-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20), "{text}");
    assert!(!text.contains("helper ended badly"), "{text}");
    assert_eq!(scripted.states(), vec![(1, false)], "{text}");
    assert_eq!(shared.states(), vec![(1, false)], "{text}");
}
