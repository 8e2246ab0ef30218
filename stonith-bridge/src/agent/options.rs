//! The fence-agent option conventions: options on the command line (GNU getopt
//! style, short and long) **or**, when there is no argument at all, `key=value`
//! lines on stdin. Never both, as fence-agents' `fencing.py` does.

use fencekit_core::schema::{normalize, Origin, ParamSpec, ParamType, RawParam, RawValue, Schema};

use crate::request::RawParams;

/// The front end's own options, from fence-agents' common option table.
pub const PARAMS: &[fencekit_core::ParamSpec] = &[
    fencekit_core::ParamSpec::new("action", "Fencing action")
        .short('o')
        .default("reboot"),
    fencekit_core::ParamSpec::new(
        "plug",
        "Physical plug number on device, name, or several separated by plug_separator",
    )
    .aliases(&["port"])
    .short('n'),
    fencekit_core::ParamSpec::new(
        "plug_separator",
        "Separator for plug parameter when specifying more than 1 plug",
    )
    .default(","),
    fencekit_core::ParamSpec::new("separator", "Separator for CSV created by 'list' operation")
        .short('C')
        .default(","),
    fencekit_core::ParamSpec::new("nodename", "The node to fence, as Pacemaker names it"),
    fencekit_core::ParamSpec::new("verbose", "Verbose mode")
        .short('v')
        .ty(ParamType::Boolean),
    fencekit_core::ParamSpec::new("verbose_level", "Level of debugging detail in output")
        .ty(ParamType::Integer),
    fencekit_core::ParamSpec::new("quiet", "Disable logging to stderr")
        .short('q')
        .ty(ParamType::Boolean),
    fencekit_core::ParamSpec::new("debug_file", "Write debug information to given file")
        .aliases(&["debug"])
        .short('D'),
    fencekit_core::ParamSpec::new(
        "disable_timeout",
        "true: no power_timeout of its own, a plug may take until timeout (which still bounds the whole run)",
    ),
    fencekit_core::ParamSpec::new(
        "login_timeout",
        "Accepted for compatibility; fencekit bounds the whole operation with timeout",
    )
    .ty(ParamType::Seconds),
    fencekit_core::ParamSpec::new(
        "shell_timeout",
        "Accepted for compatibility; fencekit bounds the whole operation with timeout",
    )
    .ty(ParamType::Seconds),
    fencekit_core::ParamSpec::new(
        "retry_on",
        "Accepted for compatibility; fencekit polls until power_timeout",
    )
    .ty(ParamType::Integer),
    fencekit_core::ParamSpec::new("version", "Display version information and exit")
        .short('V')
        .ty(ParamType::Boolean),
    fencekit_core::ParamSpec::new("help", "Display help and exit")
        .short('h')
        .ty(ParamType::Boolean),
];

pub const SCHEMA: Schema = Schema {
    plugin: "fence-agent",
    kind: fencekit_core::schema::PluginKind::Power,
    summary: "fence-agent options",
    description: "The options every fence agent takes.",
    url: "",
    multi_plug: false,
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: false,
};

/// The key a stdin line that is not `name=value` is reported under.
pub const NOT_AN_OPTION_LINE: &str = "(a line that is not name=value; not shown)";

/// The long option for a parameter name, as fence-agents spell them.
pub fn long_name(name: &str) -> String {
    name.replace('_', "-")
}

/// Finds a parameter by long option or name across the schemas, with its type.
fn find(schemas: &[&Schema], key: &str) -> Option<ParamType> {
    let key = normalize(key);
    for schema in schemas {
        if let Some(spec) = schema.find(&key) {
            return Some(spec.ty);
        }
    }
    // `password_script` and kin are strings.
    ["_file", "_script", "_env"]
        .iter()
        .filter_map(|suffix| key.strip_suffix(suffix))
        .find_map(|base| {
            schemas
                .iter()
                .find_map(|s| s.find(base))
                .filter(|s| s.secret)
                .map(|_| ParamType::String)
        })
}

/// The option a long option's abbreviation stands for, as getopt (and so
/// fence-agents) takes one: the only option whose name begins with it (`--user` for
/// `--username`). Two or more is refused naming them; none, as unrecognised.
fn complete(schemas: &[&Schema], key: &str, position: usize) -> Result<String, String> {
    if !is_option_name(key) {
        return Err(format!("unrecognized option in argument {position}"));
    }
    let wanted = normalize(key);
    // One choice per parameter (its aliases are the same choice), and one per form
    // of a secret (`password_script` is another option than `password`).
    let mut found: Vec<String> = Vec::new();
    for spec in schemas.iter().flat_map(|s| s.params.iter()) {
        let forms: &[&str] = if spec.secret {
            &["", "_file", "_script", "_env"]
        } else {
            &[""]
        };
        for form in forms {
            let matches = spec
                .names()
                .any(|name| format!("{name}{form}").starts_with(&wanted));
            let choice = format!("{}{form}", spec.name);
            if matches && !found.contains(&choice) {
                found.push(choice);
            }
        }
    }
    match found.as_slice() {
        [choice] => Ok(choice.replace('_', "-")),
        [] => Err(format!("unrecognized option '--{key}'")),
        many => Err(format!(
            "option '--{key}' is ambiguous; possibilities: {}",
            many.iter()
                .map(|c| format!("'--{}'", c.replace('_', "-")))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

/// fence-agents' short options for a secret's `_script` form: (secret, form, option).
pub const SCRIPT_SHORTS: &[(&str, &str, char)] = &[
    ("password", "password_script", 'S'),
    ("snmp_priv_passwd", "snmp_priv_passwd_script", 'R'),
];

/// The short option of `name_script` for the secret `secret`, if fence-agents has one.
pub fn script_short(secret: &str) -> Option<char> {
    SCRIPT_SHORTS
        .iter()
        .find(|(name, _, _)| *name == secret)
        .map(|(_, _, c)| *c)
}

/// The parameter a short option stands for: the first schema that declares it wins
/// (the plugin's own schema comes first, so `-C` is ipmi's `cipher` there and the
/// list `separator` elsewhere); then the `_script` forms of secrets.
fn by_short(schemas: &[&Schema], short: char) -> Option<(&'static str, ParamType)> {
    schemas
        .iter()
        .flat_map(|s| s.params.iter())
        .find(|p| p.short == Some(short))
        .map(|p| (p.name, p.ty))
        .or_else(|| {
            let (secret, form, _) = SCRIPT_SHORTS.iter().find(|(_, _, c)| *c == short)?;
            schemas
                .iter()
                .flat_map(|s| s.params.iter())
                .any(|p| p.secret && p.name == *secret)
                .then_some((*form, ParamType::String))
        })
}

/// Whether `spec`'s short option is its own among `schemas` (an earlier schema may
/// have taken the letter: see [`by_short`]). Help and metadata show it only then.
pub fn owns_short(schemas: &[&Schema], spec: &ParamSpec) -> bool {
    spec.short
        .is_some_and(|c| by_short(schemas, c).is_some_and(|(name, _)| name == spec.name))
}

/// fence_apc's `-c` is its command prompt, fence_apc_snmp's the community: on a
/// command line that also asks for fence_apc's SSH console (`-x`, `--ssh`,
/// `--secure`), `-c` is the prompt, as fence_apc reads it.
fn console_command_line(args: &[String]) -> bool {
    args.iter().any(|a| {
        matches!(a.as_str(), "-x" | "--ssh" | "--secure")
            || a.strip_prefix("--ssh=")
                .or_else(|| a.strip_prefix("--secure="))
                .is_some_and(|v| matches!(v, "1" | "true" | "yes" | "on"))
    })
}

/// Whether `key` looks like an option name (and so may be shown in a message):
/// what is not may be a value typed in the wrong place, a password among them.
pub fn is_option_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A word the user typed as it may be shown in a message: itself when it looks
/// like a name, else a placeholder (it may be a value typed in the wrong place).
pub fn shown_word(word: &str) -> String {
    if is_option_name(word) {
        word.to_string()
    } else {
        "(not shown: not a name)".to_string()
    }
}

/// Parses command-line options into raw parameters. Messages name options, never
/// values: an argument that is not an option is named by its position.
pub fn from_args(schemas: &[&Schema], args: &[String]) -> Result<RawParams, String> {
    let origin = || Origin::new("command line");
    let mut raw = RawParams::default();
    let prompt_for_c =
        console_command_line(args) && schemas.iter().any(|s| s.find("cmd_prompt").is_some());
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            let (key, inline) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (long, None),
            };
            // getopt matches long options exactly: `--PLUG` is no `--plug`.
            if key.bytes().any(|b| b.is_ascii_uppercase()) || key.trim() != key {
                return Err(match is_option_name(key.trim()) {
                    true => format!("unrecognized option '--{}'", key.trim()),
                    false => format!("unrecognized option in argument {i}"),
                });
            }
            let key = match find(schemas, key) {
                Some(_) => key.to_string(),
                None => complete(schemas, key, i)?,
            };
            let key = key.as_str();
            let Some(ty) = find(schemas, key) else {
                return Err(format!("unrecognized option '--{key}'"));
            };
            let value = match (ty, inline) {
                (_, Some(v)) => v,
                (ParamType::Boolean, None) => "1".to_string(),
                (_, None) => {
                    let Some(v) = args.get(i) else {
                        return Err(format!("option '--{key}' requires an argument"));
                    };
                    i += 1;
                    v.clone()
                }
            };
            raw.push(RawParam::text(normalize(key), value, origin()));
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = shorts.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let found = if c == 'c' && prompt_for_c {
                    Some(("cmd_prompt", ParamType::String))
                } else {
                    by_short(schemas, c)
                };
                let Some((name, ty)) = found else {
                    if c.is_ascii_alphanumeric() {
                        return Err(format!("invalid option -- '{c}'"));
                    }
                    return Err(format!("invalid option in argument {i}"));
                };
                if ty == ParamType::Boolean {
                    raw.push(RawParam::text(name, "1", origin()));
                    continue;
                }
                let value: String = if j < chars.len() {
                    let rest = chars[j..].iter().collect();
                    j = chars.len();
                    rest
                } else {
                    let Some(v) = args.get(i) else {
                        return Err(format!("option requires an argument -- '{c}'"));
                    };
                    i += 1;
                    v.clone()
                };
                raw.push(RawParam::text(name, value, origin()));
            }
        } else {
            return Err(format!(
                "unexpected argument {i}: not an option (values follow their option, as `-a ADDRESS`)"
            ));
        }
    }
    Ok(raw)
}

/// Refuses a stdin name that is a parameter's only once its case or the blanks
/// around it are changed (`IPPORT=`, `Port=`, `ipport =`, `action = on`).
/// fence-agents match names exactly and ignore such a line with a warning, running
/// on with the default instead (the BMC at port 623, no plug at all, a `reboot`
/// for `action = on`): what the line meant is plain, and the default may switch
/// another machine, so it is an error naming the line and the name to write.
/// Other unknown names are left to the schema, which warns about them and goes on,
/// as fence-agents do.
pub fn refuse_misspelt(schemas: &[&Schema], raw: &RawParams) -> Result<(), String> {
    for param in raw.iter().filter(|p| p.key != NOT_AN_OPTION_LINE) {
        let meant = normalize(&param.key);
        if meant == param.key {
            continue;
        }
        if find(schemas, &meant).is_some() || meant == "option" {
            return Err(format!(
                "{}: `{}` is not a parameter name: names are lower case, with no blank \
                 before `=` (fence agents ignore this line and use the default); write \
                 `{meant}`",
                param.origin,
                param.key.escape_debug(),
            ));
        }
    }
    Ok(())
}

/// Parses `key=value` lines (each line stripped, blank lines and `#` comments
/// skipped, surrounding double quotes stripped, the last occurrence wins). A line that is not
/// `name=value` is reported (as an unknown parameter) by its line number only:
/// nothing of it is shown, since it may be a password typed as `password hunter2`,
/// and Pacemaker logs what an agent writes to stderr.
pub fn from_stdin(text: &str) -> RawParams {
    let mut raw = RawParams::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = Origin::at("stdin", n + 1, 1);
        match line
            .split_once('=')
            .filter(|(key, _)| is_option_name(key.trim()))
        {
            Some((key, value)) => {
                // As fencing.py takes it: the line is stripped, the value not
                // (`ssl_insecure= 1` is no flag there; see `parse_bool`).
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                raw.push(RawParam {
                    // As written, but for `-` (fence-agents take `ip-port` for
                    // `ip_port`): a name in another case or with a blank before
                    // `=` is no parameter's (see [`refuse_misspelt`]).
                    key: key.replace('-', "_"),
                    value: RawValue::Text(value.to_string()),
                    origin,
                });
            }
            None => raw.push(RawParam {
                // Reported as an unknown parameter (at its line), and ignored.
                key: NOT_AN_OPTION_LINE.to_string(),
                value: RawValue::Text(String::new()),
                origin,
            }),
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(raw: &[RawParam], key: &str) -> Option<String> {
        raw.iter()
            .rev()
            .find(|p| p.key == key)
            .map(|p| match &p.value {
                RawValue::Text(t) => t.clone(),
                other => format!("{other:?}"),
            })
    }

    const PLUGIN_PARAMS: &[fencekit_core::ParamSpec] = &[
        fencekit_core::ParamSpec::new("ip", "address")
            .aliases(&["ipaddr"])
            .short('a'),
        fencekit_core::ParamSpec::new("password", "pw")
            .aliases(&["passwd"])
            .short('p')
            .secret(),
        fencekit_core::ParamSpec::new("lanplus", "rmcp+")
            .short('P')
            .ty(ParamType::Boolean),
    ];
    const PLUGIN: Schema = Schema {
        plugin: "t",
        kind: fencekit_core::schema::PluginKind::Power,
        summary: "",
        description: "",
        url: "",
        multi_plug: true,
        plug_optional: false,
        commands: &[],
        params: PLUGIN_PARAMS,
        open: false,
    };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_and_short_options_parse_as_getopt_does() {
        let raw = from_args(
            &[&PLUGIN, &SCHEMA],
            &args(&[
                "-a",
                "127.0.0.1",
                "--plug=3",
                "-oon",
                "--password-script",
                "echo x",
                "-P",
                "-vv",
            ]),
        )
        .unwrap();
        assert_eq!(value(&raw, "ip").as_deref(), Some("127.0.0.1"));
        assert_eq!(value(&raw, "plug").as_deref(), Some("3"));
        assert_eq!(value(&raw, "action").as_deref(), Some("on"));
        assert_eq!(value(&raw, "password_script").as_deref(), Some("echo x"));
        assert_eq!(value(&raw, "lanplus").as_deref(), Some("1"));
        assert_eq!(raw.iter().filter(|p| p.key == "verbose").count(), 2);
    }

    #[test]
    fn script_forms_have_fence_agents_short_options() {
        const SNMP_PARAMS: &[fencekit_core::ParamSpec] = &[
            fencekit_core::ParamSpec::new("snmp_priv_passwd", "priv")
                .short('P')
                .secret(),
            fencekit_core::ParamSpec::new("community", "community")
                .short('c')
                .secret(),
            fencekit_core::ParamSpec::new("cmd_prompt", "prompt"),
            fencekit_core::ParamSpec::new("secure", "ssh")
                .aliases(&["ssh"])
                .short('x')
                .ty(ParamType::Boolean),
        ];
        const SNMP: Schema = Schema {
            params: SNMP_PARAMS,
            open: false,
            ..PLUGIN
        };
        let raw = from_args(&[&PLUGIN, &SCHEMA], &args(&["-S", "echo pw"])).unwrap();
        assert_eq!(value(&raw, "password_script").as_deref(), Some("echo pw"));
        let raw = from_args(&[&SNMP, &SCHEMA], &args(&["-R", "echo priv"])).unwrap();
        assert_eq!(
            value(&raw, "snmp_priv_passwd_script").as_deref(),
            Some("echo priv")
        );
        // No password in the schema: -S is not an option there.
        assert!(from_args(&[&SNMP, &SCHEMA], &args(&["-S", "x"])).is_err());
        // fence_apc_snmp's -c is the community; with fence_apc's -x it is the prompt.
        let raw = from_args(&[&SNMP, &SCHEMA], &args(&["-c", "private"])).unwrap();
        assert_eq!(value(&raw, "community").as_deref(), Some("private"));
        let raw = from_args(&[&SNMP, &SCHEMA], &args(&["-x", "-c", "apc>"])).unwrap();
        assert_eq!(value(&raw, "cmd_prompt").as_deref(), Some("apc>"));
        assert_eq!(value(&raw, "community"), None);
    }

    #[test]
    fn a_long_option_may_be_abbreviated_as_getopt_takes_it() {
        let raw = from_args(
            &[&PLUGIN, &SCHEMA],
            &args(&[
                "--ipa=bmc1",
                "--act",
                "status",
                "--lan",
                "--password-s",
                "echo pw",
            ]),
        )
        .unwrap();
        assert_eq!(value(&raw, "ip").as_deref(), Some("bmc1"));
        assert_eq!(value(&raw, "lanplus").as_deref(), Some("1"));
        assert_eq!(value(&raw, "action").as_deref(), Some("status"));
        assert_eq!(value(&raw, "password_script").as_deref(), Some("echo pw"));
        // `--pass` begins `--password` and its other forms: ambiguous, all named.
        let err = from_args(&[&PLUGIN, &SCHEMA], &args(&["--pass", "x"])).unwrap_err();
        assert!(
            err.contains("ambiguous") && err.contains("'--password-script'"),
            "{err}"
        );
        // An exact name wins over the longer ones it begins.
        let raw = from_args(&[&PLUGIN, &SCHEMA], &args(&["--password", "pw"])).unwrap();
        assert_eq!(value(&raw, "password").as_deref(), Some("pw"));
    }

    #[test]
    fn unknown_options_and_missing_values_are_errors() {
        assert!(from_args(&[&PLUGIN, &SCHEMA], &args(&["--colour", "x"]))
            .unwrap_err()
            .contains("unrecognized option '--colour'"));
        assert!(from_args(&[&PLUGIN, &SCHEMA], &args(&["-a"]))
            .unwrap_err()
            .contains("requires an argument"));
        assert!(from_args(&[&PLUGIN, &SCHEMA], &args(&["stray"]))
            .unwrap_err()
            .contains("unexpected argument"));
    }

    #[test]
    fn stdin_lines_follow_fence_agents_rules() {
        let raw = from_stdin(
            "# comment\n\n  action=off  \nipaddr=\"127.0.0.1\"\nport=1\nport=2\ngarbage\n\
             login= someone\nip-port=9\n",
        );
        assert_eq!(value(&raw, "action").as_deref(), Some("off"));
        assert_eq!(value(&raw, "ipaddr").as_deref(), Some("127.0.0.1"));
        assert_eq!(value(&raw, "port").as_deref(), Some("2"));
        assert!(raw.iter().any(|p| p.key == NOT_AN_OPTION_LINE));
        // The value as written (fencing.py strips the line, not the value).
        assert_eq!(value(&raw, "login").as_deref(), Some(" someone"));
        assert_eq!(value(&raw, "ip_port").as_deref(), Some("9"));
        assert!(refuse_misspelt(&[&PLUGIN, &SCHEMA], &raw).is_ok());
    }

    #[test]
    fn a_known_name_in_another_case_or_with_a_blank_is_refused_naming_the_right_one() {
        for text in [
            "PASSWORD=x\n",
            "Action=off\n",
            "password =x\n",
            "Password_Script=x\n",
        ] {
            let raw = from_stdin(text);
            let err = refuse_misspelt(&[&PLUGIN, &SCHEMA], &raw).unwrap_err();
            assert!(err.contains("write `"), "{text}: {err}");
            assert!(err.contains("stdin:1"), "{text}: {err}");
        }
        // Unknown names are the schema's to warn about.
        let raw = from_stdin("Colour=x\ncolour =y\n");
        assert!(refuse_misspelt(&[&PLUGIN, &SCHEMA], &raw).is_ok());
    }

    #[test]
    fn a_stdin_line_that_is_not_an_option_is_never_echoed() {
        let raw = from_stdin("action=off\npassword hunter2\nhunter2 x=y\n");
        assert_eq!(
            raw.iter().filter(|p| p.key == NOT_AN_OPTION_LINE).count(),
            2
        );
        let shown: String = raw
            .iter()
            .map(|p| format!("{} {:?} ", p.key, p.origin))
            .collect();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(raw[1].origin.line, Some((2, 1)));
    }

    #[test]
    fn argument_errors_name_options_never_values() {
        for list in [
            &["-a", "host", "hunter2"][..],
            &["--hunter2 x"][..],
            &["-\u{e9}hunter2"][..],
        ] {
            let err = from_args(&[&PLUGIN, &SCHEMA], &args(list)).unwrap_err();
            assert!(!err.contains("hunter2"), "{list:?}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn stdin_parsing_never_panics(text in "(?s).{0,2000}") {
            let _ = from_stdin(&text);
        }

        #[test]
        fn stdin_of_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = from_stdin(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn argument_parsing_never_panics(list in proptest::collection::vec("(?s).{0,40}", 0..8)) {
            let _ = from_args(&[&PLUGIN, &SCHEMA], &list);
        }

        #[test]
        fn option_like_arguments_never_panic(list in proptest::collection::vec("-{0,2}[a-zA-Z=:-]{0,6}", 0..8)) {
            let _ = from_args(&[&PLUGIN, &SCHEMA], &list);
        }
    }

    #[test]
    fn a_mebibyte_of_stdin_or_argument_text_parses_without_panic() {
        let deep = format!("port={}1\n", "1:".repeat(512 * 1024));
        let raw = from_stdin(&deep);
        assert_eq!(value(&raw, "port").map(|v| v.len()), Some(1024 * 1024 + 1));
        let long_line = "x".repeat(1 << 20);
        assert_eq!(from_stdin(&long_line).len(), 1);
        let lines = "a=b\n".repeat(1 << 18);
        assert_eq!(from_stdin(&lines).len(), 1 << 18);
        let raw = from_args(
            &[&PLUGIN, &SCHEMA],
            &args(&["-n", &"1:".repeat(512 * 1024)]),
        )
        .unwrap();
        assert_eq!(raw.len(), 1);
        assert!(from_args(&[&PLUGIN, &SCHEMA], &args(&[&"-".repeat(1 << 20)])).is_err());
    }
}
