//! Property tests of every parser in core that reads outside text: plug text,
//! outlet resolution, TOML configurations and parameter values. Whatever the input
//! (random, deeply nested, 1 MiB), they never panic, and their errors are bounded
//! and say where.

use std::time::Duration;

use proptest::prelude::*;

use crate::config::{self, Catalog};
use crate::power::{resolve_outlet, Plug, MAX_PLUG_TEXT};
use crate::schema::{
    validate, Origin, ParamSpec, ParamType, PluginKind, RawParam, RawValue, Schema, Unknown,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("wait", "seconds").ty(ParamType::Seconds),
    ParamSpec::new("flag", "boolean").ty(ParamType::Boolean),
    ParamSpec::new("method", "select").ty(ParamType::Select(&["onoff", "cycle"])),
    ParamSpec::new("count", "integer").ty(ParamType::Integer),
    ParamSpec::new("password", "secret").secret(),
];

const SCHEMA: Schema = Schema {
    plugin: "props",
    kind: PluginKind::Power,
    summary: "property tests",
    description: "property tests",
    url: "",
    multi_plug: true,
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: false,
};

struct OnlyProps;

impl Catalog for OnlyProps {
    fn schema(&self, plugin: &str) -> Option<&'static Schema> {
        (plugin == "props").then_some(&SCHEMA)
    }
    fn plugins(&self) -> Vec<&'static str> {
        vec!["props"]
    }
}

/// Text that looks like plug text: digits, colons, letters, blanks, controls.
fn plug_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9:a-z \\-_]{0,40}",
        "\\PC{0,300}",
        ".{0,300}",
        (1usize..5000).prop_map(|n| "1:".repeat(n)),
    ]
}

fn config_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("[devices.d]\n".to_string()),
        Just("plugin = \"props\"\n".to_string()),
        Just("[nodes.n]\n".to_string()),
        Just("plugs = [{ device = \"d\", plug = ".to_string()),
        Just("[fence]\n".to_string()),
        Just("timeout = ".to_string()),
        Just("[".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just(", ".to_string()),
        Just("\n".to_string()),
        "-?[0-9]{1,25}",
        "[a-z_]{1,12} = ",
        ".{0,20}",
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

fn check_config_error(text: &str) {
    if let Err(e) = config::parse(text, "fencekit.toml", None, &OnlyProps) {
        let shown = e.to_string();
        assert!(shown.starts_with("fencekit.toml"), "{shown:.200}");
        assert!(shown.len() < 600, "unbounded error: {shown:.200}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn plug_text_never_panics_and_accepted_text_is_bounded_and_reparses_the_same(text in plug_text()) {
        let _ = Plug::parse(&text);
        match Plug::try_parse(&text) {
            Ok(plug) => {
                prop_assert!(text.len() <= MAX_PLUG_TEXT);
                prop_assert!(!text.chars().any(char::is_control));
                let again = Plug::try_parse(&plug.to_string());
                prop_assert_eq!(again, Ok(plug));
            }
            Err(e) => prop_assert!(e.to_string().len() < 600),
        }
    }

    #[test]
    fn resolve_outlet_finds_exactly_one_outlet_or_says_why(
        text in "[0-9a-c]{0,3}",
        // A device numbers its outlets once each.
        outlets in prop::collection::btree_map(0u32..12, "[0-9a-cA-C ]{0,2}", 0..8),
    ) {
        let plug = Plug::parse(&text);
        let list: Vec<(u32, &str)> = outlets.iter().map(|(n, s)| (*n, s.as_str())).collect();
        // The documented rule, written out plainly: a number names the outlet with
        // that number, and any other outlet named that number, blanks aside, too
        // (ambiguous); a
        // name names the outlets called so and, when it is all digits, the outlet
        // with that number; one match or an error.
        let number_exists = matches!(&plug, Plug::Number(m) if list.iter().any(|(n, _)| n == m));
        let mut expected: Vec<u32> = list
            .iter()
            .filter(|(n, name)| match &plug {
                Plug::Number(m) => number_exists && (n == m || name.trim() == m.to_string()),
                Plug::Name(t) => {
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                    *name == t.as_str()
                        || (digits(t) && t.parse::<u32>().ok() == Some(*n))
                        // Digits name an outlet named them in another padding.
                        || (digits(t)
                            && digits(name.trim())
                            && name.trim().trim_start_matches('0') == t.trim_start_matches('0'))
                }
                _ => false,
            })
            .map(|(n, _)| *n)
            .collect();
        // A name that found an outlet also finds those named so but for case and
        // surrounding blanks.
        if let (Plug::Name(t), false) = (&plug, expected.is_empty()) {
            expected.extend(
                list.iter()
                    .filter(|(_, name)| name.trim().eq_ignore_ascii_case(t.trim()))
                    .map(|(n, _)| *n),
            );
        }
        expected.sort_unstable();
        expected.dedup();
        match resolve_outlet(&plug, list.iter().copied()) {
            Ok(n) => prop_assert_eq!(expected, vec![n]),
            Err(e) => {
                prop_assert!(expected.len() != 1, "{:?} refused: {}", plug, e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_configuration_of_any_text_is_a_config_or_a_bounded_error_with_its_place(text in config_text()) {
        check_config_error(&text);
    }

    #[test]
    fn parameter_values_of_any_text_never_panic_and_seconds_stay_in_range(
        key in prop::sample::select(vec!["wait", "flag", "method", "count", "password", "wait_x"]),
        text in ".{0,60}",
        number in any::<i64>(),
        float in any::<f64>(),
    ) {
        for value in [
            RawValue::Text(text.clone()),
            RawValue::Integer(number),
            RawValue::Float(float),
            RawValue::Boolean(number % 2 == 0),
        ] {
            let raw = vec![RawParam { key: key.to_string(), value, origin: Origin::new("t") }];
            match validate(&[&SCHEMA], &raw, Unknown::Reject, None) {
                Ok(v) => {
                    if let Some(d) = v.params.seconds("wait") {
                        prop_assert!(d < Duration::from_secs(1_000_000_000));
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn deep_and_huge_plug_text_is_refused_without_recursion() {
    for text in [
        "1:".repeat(1 << 19),
        "9".repeat(1 << 20),
        format!("1:{}", "x".repeat(1 << 20)),
    ] {
        let _ = Plug::parse(&text);
        let err = Plug::try_parse(&text).unwrap_err().to_string();
        assert!(err.contains("too long"), "{err:.200}");
        let list = [(1, text.as_str()), (2, "db")];
        assert!(resolve_outlet(&Plug::Name(text.clone()), list).is_ok());
    }
}

#[test]
fn deep_and_huge_configurations_are_errors_with_their_place() {
    let n = 100_000;
    for text in [
        "[".repeat(n),
        format!("a = {}", "[".repeat(n)),
        format!("a = {}{}", "[".repeat(n), "]".repeat(n)),
        format!("a = {}", "{ b = ".repeat(n)),
        format!("[{}]", "a.".repeat(n)),
        "x".repeat(1 << 20),
        format!("[fence]\ntimeout = \"{}\"", "1".repeat(1 << 20)),
        format!(
            "[devices.d]\nplugin = \"props\"\nmethod = \"{}\"",
            "c".repeat(1 << 20)
        ),
    ] {
        check_config_error(&text);
    }
}
