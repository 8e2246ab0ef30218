//! External plugins end to end: the example relay plugin built as a shared object,
//! loaded through the C ABI, fencing a node with core's fence algorithm; and plugins
//! that are broken in each way the ABI guards against, each refused or failed with an
//! error naming the file, without harm to this process and without a node reported
//! fenced.

mod support;

use std::path::Path;
use std::time::Duration;

use fencekit_core::schema::ParamType;
use fencekit_core::{
    fence, DeviceCommand, DeviceError, FenceAction, Outcome, Plug, PowerState, SwitchTo,
};
use fencekit_plugins::{LoadProblem, PowerPlugin, Registry, Source, ABI_VERSION};
use support::{build_plugin, deadline, device, install, one_device, options, params};

fn relay() -> &'static PowerPlugin {
    let path = build_plugin("fencekit-example-relay", "");
    Registry::builtin().load_file(&path).unwrap()
}

fn relay_state(state_file: &Path) -> String {
    std::fs::read_to_string(state_file).unwrap_or_default()
}

fn assert_not_fenced(outcome: &Outcome) {
    assert!(!outcome.success, "{outcome:?}");
    assert!(!outcome.fenced, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_relay_fences_a_node_off_confirmed_then_reboots_it() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("relays");
    let path = state_file.to_str().unwrap();
    let relay = relay();
    let (devices, target) = one_device(
        device(relay, &[("state_file", path), ("relays", "4")]),
        &[1, 3],
    );

    let off = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert!(off.success && off.fenced, "{off:?}");
    let text = relay_state(&state_file);
    assert!(
        text.contains("1 off") && text.contains("3 off") && text.contains("2 on"),
        "{text}"
    );

    let reboot = fence(&devices, &target, FenceAction::Reboot, &options()).await;
    assert!(reboot.success && reboot.fenced, "{reboot:?}");
    let text = relay_state(&state_file);
    assert!(text.contains("1 on") && text.contains("3 on"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_off_and_stays_on_is_not_reported_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relays");
    let relay = relay();
    let switch = device(
        relay,
        &[("state_file", path.to_str().unwrap()), ("lie", "2")],
    );
    let (devices, target) = one_device(switch, &[1, 2]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert_not_fenced(&outcome);
    assert!(outcome.summary().contains('2'), "{}", outcome.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_relay_lists_checks_and_cycles_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relays");
    let relay = relay();
    let switch = device(
        relay,
        &[("state_file", path.to_str().unwrap()), ("relays", "3")],
    );
    let soon = || deadline(Duration::from_secs(5));
    switch.check(soon()).await.unwrap();
    switch
        .switch(&Plug::Number(2), SwitchTo::Off, soon())
        .await
        .unwrap();
    let plugs = switch.list(soon()).await.unwrap();
    assert_eq!(plugs.len(), 3);
    assert_eq!(plugs[1].plug, Plug::Number(2));
    assert_eq!(plugs[1].name.as_deref(), Some("relay-2"));
    assert_eq!(plugs[1].state, PowerState::Off);
    assert!(switch.supports(DeviceCommand::Cycle));
    switch
        .command(&Plug::Number(2), DeviceCommand::Cycle, soon())
        .await
        .unwrap();
    assert_eq!(
        switch.status(&Plug::Number(2), soon()).await.unwrap(),
        PowerState::On
    );
    let err = switch.status(&Plug::Number(9), soon()).await.unwrap_err();
    assert!(matches!(err, DeviceError::UnknownPlug { .. }), "{err}");
    assert!(
        err.to_string().contains("libfencekit_example_relay.so"),
        "{err}"
    );
}

#[test]
fn the_example_relays_declaration_converts_to_a_core_schema() {
    let relay = relay();
    let schema = relay.schema;
    assert_eq!(schema.plugin, "example-relay");
    assert!(schema.multi_plug);
    let state_file = schema.find("state_file").unwrap();
    assert!(state_file.required);
    assert!(!state_file.secret);
    let relays = schema.find("relays").unwrap();
    assert_eq!(relays.ty, ParamType::Integer);
    assert_eq!(relays.default, Some("8"));
    let Source::External(plugin) = relay.source() else {
        panic!("the relay plugin is not external");
    };
    assert_eq!(plugin.abi_version(), ABI_VERSION);
    assert!(plugin.path().ends_with("libfencekit_example_relay.so"));
    // Validation is core's, from the converted schema.
    let err = params(relay, &[("relays", "4")]).unwrap_err();
    assert!(err.contains("state_file"), "{err}");
    let err = params(relay, &[("state_file", "x"), ("relays", "many")]).unwrap_err();
    assert!(err.contains("relays"), "{err}");
}

#[test]
fn a_plugin_directory_is_searched_and_a_second_plugin_of_one_name_is_refused() {
    let relay = build_plugin("fencekit-example-relay", "");
    let dir = tempfile::tempdir().unwrap();
    install(&relay, dir.path(), "a-relay.so");
    install(&relay, dir.path(), "b-relay.so");
    std::fs::write(dir.path().join("notes.txt"), "not a plugin").unwrap();
    let registry = Registry::discover(Some(dir.path()));
    let found = registry.power("example-relay").unwrap();
    let Source::External(plugin) = found.source() else {
        panic!("not external");
    };
    assert!(plugin.path().ends_with("a-relay.so"));
    assert_eq!(registry.problems().len(), 1, "{:?}", registry.problems());
    let problem = &registry.problems()[0];
    assert!(
        matches!(problem.problem, LoadProblem::NameTaken { .. }),
        "{problem}"
    );
    assert!(problem.to_string().contains("b-relay.so"), "{problem}");
    // Built-in plugins are still there, and the catalog sees the external one.
    assert!(registry.power("sim").is_some());
    assert!(registry.names().contains(&"example-relay"));
}

#[test]
fn a_plugin_of_another_abi_version_is_refused_naming_the_file() {
    let path = build_plugin("fencekit-test-plugin-raw", "wrong-abi-version");
    let err = Registry::builtin().load_file(&path).unwrap_err();
    assert_eq!(
        err.problem,
        LoadProblem::AbiVersion {
            found: 999,
            expected: ABI_VERSION
        }
    );
    assert!(
        err.to_string().contains("libfencekit_test_plugin_raw.so"),
        "{err}"
    );
}

#[test]
fn a_plugin_missing_a_symbol_is_refused_naming_the_file_and_symbol() {
    let path = build_plugin("fencekit-test-plugin-raw", "missing-status-symbol");
    let err = Registry::builtin().load_file(&path).unwrap_err();
    assert!(
        matches!(
            err.problem,
            LoadProblem::MissingSymbol {
                symbol: "fencekit_plugin_status",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("libfencekit_test_plugin_raw.so"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_panics_fails_the_fence_naming_the_file_and_this_process_goes_on() {
    let path = build_plugin("fencekit-test-plugin-faulty", "");
    let faulty = Registry::builtin().load_file(&path).unwrap();
    let switch = device(faulty, &[("fault", "panic")]);
    let err = switch
        .status(&Plug::Number(1), deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert!(
        err.to_string()
            .contains("libfencekit_test_plugin_faulty.so"),
        "{err}"
    );
    let (devices, target) = one_device(switch, &[1]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert_not_fenced(&outcome);
    assert!(
        outcome.summary().contains("panicked"),
        "{}",
        outcome.summary()
    );
    // The same plugin, well-behaved, still works in this process.
    let fine = device(faulty, &[("fault", "none")]);
    assert_eq!(
        fine.status(&Plug::Number(1), deadline(Duration::from_secs(5)))
            .await
            .unwrap(),
        PowerState::On
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_call_that_hangs_is_abandoned_at_its_deadline() {
    let path = build_plugin("fencekit-test-plugin-faulty", "");
    let faulty = Registry::builtin().load_file(&path).unwrap();
    let switch = device(faulty, &[("fault", "hang")]);
    let err = switch
        .status(&Plug::Number(1), deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string()
            .contains("libfencekit_test_plugin_faulty.so"),
        "{err}"
    );
    let mut options = options();
    options.timeout = Duration::from_secs(1);
    let (devices, target) = one_device(switch, &[1]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options).await;
    assert_not_fenced(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reporting_an_unknown_power_state_code_is_an_error_not_a_state() {
    let path = build_plugin("fencekit-test-plugin-raw", "");
    let raw = Registry::builtin().load_file(&path).unwrap();
    let switch = device(raw, &[("fault", "bad_state")]);
    let soon = || deadline(Duration::from_secs(5));
    let err = switch.status(&Plug::Number(1), soon()).await.unwrap_err();
    assert!(matches!(err, DeviceError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("77"), "{err}");
    assert!(
        err.to_string().contains("libfencekit_test_plugin_raw.so"),
        "{err}"
    );
    let err = switch.list(soon()).await.unwrap_err();
    assert!(err.to_string().contains("77"), "{err}");
    let (devices, target) = one_device(switch, &[1]);
    let outcome = fence(&devices, &target, FenceAction::Off, &options()).await;
    assert_not_fenced(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_messages_and_status_codes_are_errors_naming_the_file() {
    let path = build_plugin("fencekit-test-plugin-raw", "");
    let raw = Registry::builtin().load_file(&path).unwrap();
    let soon = || deadline(Duration::from_secs(5));
    let file = "libfencekit_test_plugin_raw.so";

    let bad_utf8 = device(raw, &[("fault", "bad_utf8")]);
    let err = bad_utf8.check(soon()).await.unwrap_err();
    assert!(
        err.to_string().contains("not UTF-8") && err.to_string().contains(file),
        "{err}"
    );
    let err = bad_utf8.list(soon()).await.unwrap_err();
    assert!(
        err.to_string().contains("not UTF-8") && err.to_string().contains(file),
        "{err}"
    );

    let bad_len = device(raw, &[("fault", "bad_len")]);
    let err = bad_len.check(soon()).await.unwrap_err();
    assert!(
        err.to_string().contains("claimed") && err.to_string().contains(file),
        "{err}"
    );

    let bad_status = device(raw, &[("fault", "bad_status")]);
    let err = bad_status
        .switch(&Plug::Number(1), SwitchTo::Off, soon())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1234") && err.to_string().contains(file),
        "{err}"
    );
}

/// Runs `look` on a thread and gives its result and how long it took, or fails the
/// test when it takes longer than `limit` (a hung lookup must not hang the test).
fn within<T: Send + 'static>(
    limit: Duration,
    look: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let started = std::time::Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(look());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => (value, started.elapsed()),
        Err(_) => panic!("the lookup did not return within {limit:?}"),
    }
}

#[test]
fn a_plugin_whose_loading_hangs_does_not_delay_a_built_in_or_another_named_plugin() {
    let hanging = build_plugin("fencekit-test-plugin-raw", "hang-in-info");
    let relay = build_plugin("fencekit-example-relay", "");
    let dir = tempfile::tempdir().unwrap();
    // Sorted before the relay: a registry that loads every file meets it first.
    install(&hanging, dir.path(), "aaa-test-raw.so");
    install(&relay, dir.path(), "libfencekit_example_relay.so");
    let path = dir.path().to_path_buf();
    let (found, took) = within(Duration::from_secs(5), move || {
        let registry = Registry::discover(Some(&path));
        let sim = registry.power("sim").map(|p| p.schema.plugin);
        let relay = registry.power("example-relay").map(|p| p.schema.plugin);
        (sim, relay)
    });
    assert_eq!(found, (Some("sim"), Some("example-relay")));
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn a_plugin_whose_loading_hangs_is_abandoned_at_the_deadline_with_a_clear_error() {
    let hanging = build_plugin("fencekit-test-plugin-raw", "hang-in-info");
    let dir = tempfile::tempdir().unwrap();
    install(&hanging, dir.path(), "test-raw.so");
    let path = dir.path().to_path_buf();
    let ((found, problems), took) = within(Duration::from_secs(10), move || {
        let registry = Registry::discover(Some(&path))
            .with_deadline(fencekit_core::Instant::now() + Duration::from_secs(1));
        let found = registry.power("test-raw").is_some();
        (found, registry.problems())
    });
    assert!(!found);
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(took < Duration::from_millis(1900), "took {took:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(
        text.contains("test-raw.so") && text.contains("did not finish within"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_listing_a_plug_too_long_to_be_one_is_an_error() {
    let path = build_plugin("fencekit-test-plugin-raw", "");
    let raw = Registry::builtin().load_file(&path).unwrap();
    let switch = device(raw, &[("fault", "deep_plug")]);
    let err = switch
        .list(deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("40001 bytes")
            && err.to_string().contains("libfencekit_test_plugin_raw.so"),
        "{err}"
    );
}
