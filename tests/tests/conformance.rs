//! Drop-in, proven from the anchors' own interfaces. The installed fence_ipmilan,
//! fence_apc_snmp, fence_apc, fence_redfish and fence_ifmib describe themselves
//! (`-o metadata`); for every
//! parameter and short option they list, fencekit's agent must take the same name
//! with the same meaning (its metadata lists it, a boolean is a boolean, the short
//! option is the same parameter's, and `validate-all` accepts it without an "ignoring
//! unknown parameter" warning), or refuse a value that would change what is switched
//! with exit 1 and a message naming the parameter. Nothing is ignored. The table of
//! every row is printed (run with `--nocapture` to see it).
//!
//! Meanings beyond the name are proven where they matter: `port_as_ip` against a real
//! `ipmi_sim` (the plug is the address that is switched), `-S` by a password script,
//! and the refused values by their messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_tests::bridge;
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions};
use fencekit_tests::peers;
use fencekit_tests::tool::{self, ToolOutput};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// One `<parameter>` of a fence agent's metadata.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    deprecated: bool,
    /// The getopt text (`-a, --ip=[ip]`).
    mixed: String,
    ty: String,
    default: Option<String>,
    options: Vec<String>,
    description: String,
}

impl Param {
    fn short(&self) -> Option<char> {
        let rest = self.mixed.strip_prefix('-')?;
        let mut chars = rest.chars();
        let c = chars.next()?;
        (c != '-' && matches!(chars.next(), Some(',') | None)).then_some(c)
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn attr(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(unescape(&line[start..end]))
}

/// The parameters of a fence-agents metadata document (line-oriented, as every
/// agent of fence-agents and fencekit writes it).
fn parse_metadata(xml: &str) -> Vec<Param> {
    let mut params = Vec::new();
    let mut current: Option<Param> = None;
    for line in xml.lines() {
        let line = line.trim();
        if line.starts_with("<parameter ") {
            current = Some(Param {
                name: attr(line, "name").unwrap_or_default(),
                deprecated: attr(line, "deprecated").as_deref() == Some("1"),
                mixed: String::new(),
                ty: String::new(),
                default: None,
                options: Vec::new(),
                description: String::new(),
            });
        } else if let Some(p) = current.as_mut() {
            if line.starts_with("<getopt ") {
                p.mixed = attr(line, "mixed").unwrap_or_default();
            } else if line.starts_with("<content ") {
                p.ty = attr(line, "type").unwrap_or_default();
                p.default = attr(line, "default");
            } else if line.starts_with("<option ") {
                p.options.extend(attr(line, "value"));
            } else if line.starts_with("<shortdesc ") {
                let start = line.find('>').map_or(0, |i| i + 1);
                let end = line.rfind("</shortdesc>").unwrap_or(line.len());
                p.description = unescape(&line[start..end.max(start)]);
            } else if line.starts_with("</parameter>") {
                params.extend(current.take());
            }
        }
    }
    params
}

/// Every `<parameter name="...">` of a metadata document, however its lines are
/// broken (cluster-glue's built-in plugins start the first on the `<parameters>`
/// line).
fn parameter_names(xml: &str) -> Vec<String> {
    xml.split("<parameter name=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| unescape(name)))
        .collect()
}

fn metadata_of(command: Command) -> Vec<Param> {
    let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
    assert!(out.status.success(), "metadata: {}", out.text());
    let params = parse_metadata(&out.stdout);
    assert!(params.len() > 10, "too few parameters read: {params:?}");
    params
}

/// An anchor and fencekit's agent that stands in for it.
struct Anchor {
    program: &'static str,
    plugin: &'static str,
    /// Parameters every run needs to validate (the anchor's own usual minimum, plus
    /// what fencekit asks of a configuration of that kind).
    base: &'static [(&'static str, &'static str)],
    /// Values that would change what is switched and are refused: (name, value, what
    /// the message must say besides the name).
    refused: &'static [(&'static str, &'static str, &'static str)],
    /// Values for parameters whose anchor default is no usable sample.
    samples: &'static [(&'static str, &'static str)],
    /// Short options whose letter the anchor gives another meaning than the same name
    /// in fencekit, with where that is resolved.
    short_exceptions: &'static [(char, &'static str)],
}

const IPMILAN: Anchor = Anchor {
    program: "fence_ipmilan",
    plugin: "ipmi",
    base: &[
        ("ip", "127.0.0.1"),
        ("username", "admin"),
        ("password", "conformance-pw"),
    ],
    refused: &[("target", "0x82", "bridging")],
    samples: &[
        ("auth", "md5"),
        ("cipher", "3"),
        ("hexadecimal_kg", "0102"),
        // lanplus=0 (IPMI 1.5) is proven against ipmi_sim in tests/ipmi_sim.rs; here
        // it would meet hexadecimal_kg, which IPMI 1.5 refuses.
        ("lanplus", "1"),
        ("ipmitool_timeout", "2"),
    ],
    short_exceptions: &[],
};

const APC_SNMP: Anchor = Anchor {
    program: "fence_apc_snmp",
    plugin: "apc",
    base: &[("ip", "127.0.0.1"), ("plug", "1"), ("community", "private")],
    refused: &[],
    samples: &[
        ("snmp_priv_passwd", "conformance-priv"),
        ("snmp_version", "2c"),
    ],
    short_exceptions: &[],
};

const APC: Anchor = Anchor {
    program: "fence_apc",
    plugin: "apc",
    base: &[
        ("ip", "127.0.0.1"),
        ("plug", "1"),
        ("ssh", "1"),
        ("username", "apc"),
        ("password", "conformance-pw"),
        ("insecure_skip_host_key_check", "1"),
    ],
    refused: &[("ssh_options", "-1 -c blowfish", "SSH itself")],
    samples: &[
        ("cmd_prompt", "apc>"),
        ("command_prompt", "apc>"),
        ("ipport", "22"),
        ("ssh_path", "/usr/bin/ssh"),
        ("telnet_path", "/usr/bin/telnet"),
    ],
    // fence_apc's -c is its prompt; fencekit's apc agent also stands in for
    // fence_apc_snmp, whose -c is the community: with -x on the command line -c is the
    // prompt (see stonith-bridge's options tests), so both anchors' lines work.
    short_exceptions: &[('c', "the prompt when -x is on the same command line")],
};

const REDFISH: Anchor = Anchor {
    program: "fence_redfish",
    plugin: "redfish",
    base: &[
        ("ip", "127.0.0.1"),
        ("username", "admin"),
        ("password", "conformance-pw"),
    ],
    refused: &[],
    samples: &[
        ("redfish_uri", "/redfish/v1"),
        ("redfish-uri", "/redfish/v1"),
        ("systems_uri", "/redfish/v1/Systems/1"),
        ("systems-uri", "/redfish/v1/Systems/1"),
        ("gnutlscli_path", "/usr/bin/gnutls-cli"),
    ],
    short_exceptions: &[],
};

const IFMIB: Anchor = Anchor {
    program: "fence_ifmib",
    plugin: "ifmib",
    base: &[("ip", "127.0.0.1"), ("plug", "1"), ("community", "private")],
    refused: &[],
    samples: &[
        ("snmp_priv_passwd", "conformance-priv"),
        ("snmp_version", "2c"),
    ],
    short_exceptions: &[],
};

/// Parameters no `validate-all` run can carry: they end the run early or act on
/// their own (help, version, metadata), or are fencekit's own `action`.
const NOT_RUN: &[&str] = &["action", "help", "version", "debug", "debug_file"];

/// A sample value of `param` for a validating run.
fn sample(anchor: &Anchor, param: &Param) -> String {
    if let Some((_, v)) = anchor.samples.iter().find(|(n, _)| *n == param.name) {
        return v.to_string();
    }
    if let Some((_, v)) = anchor.base.iter().find(|(n, _)| *n == param.name) {
        return v.to_string();
    }
    match param.name.as_str() {
        "ipaddr" => return "127.0.0.1".into(),
        // The same user as the base lines name: two names of one parameter with
        // two values are refused.
        "login" | "username" => {
            return anchor
                .base
                .iter()
                .find(|(n, _)| *n == "username")
                .map_or("admin", |(_, v)| *v)
                .into()
        }
        "passwd" | "password" => return "conformance-pw".into(),
        "passwd_script" | "password_script" | "snmp_priv_passwd_script" => {
            return "echo conformance-pw".into()
        }
        "plug" | "port" => return "1".into(),
        "disable_timeout" => return "true".into(),
        "identity_file" => return "/dev/null".into(),
        _ => {}
    }
    if param.ty == "boolean" {
        return "1".into();
    }
    if let Some(first) = param.options.first() {
        return param
            .default
            .clone()
            .filter(|d| param.options.contains(d))
            .unwrap_or_else(|| first.clone());
    }
    match param.default.as_deref() {
        Some(d) if d != "None" && !d.starts_with('[') => d.to_string(),
        _ => "1".into(),
    }
}

/// SNMPv3's security parameters (refused below version 3, where fence-agents drop
/// them): judged with SNMPv3 and its user.
const SNMPV3_ONLY: &[&str] = &[
    "snmp_sec_level",
    "snmp_auth_prot",
    "snmp_priv_prot",
    "snmp_priv_passwd",
    "snmp_priv_passwd_script",
];

/// The lines `param` takes its meaning with.
fn needs(param: &str) -> Vec<(String, String)> {
    if !SNMPV3_ONLY.contains(&param) {
        return Vec::new();
    }
    [
        ("snmp_version", "3"),
        ("username", "admin"),
        ("password", "conformance-pw"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `stonith-bridge fence-agent PLUGIN` with `lines` on stdin.
fn run_agent(binary: &Path, plugin: &str, lines: &[(String, String)]) -> ToolOutput {
    let mut command = Command::new(binary);
    command.args(["fence-agent", plugin]).env("LC_ALL", "C");
    let mut input = String::from("action=validate-all\n");
    for (k, v) in lines {
        input.push_str(&format!("{k}={v}\n"));
    }
    tool::run(command, Some(input.as_bytes()), RUN_TIMEOUT).unwrap()
}

fn base_lines(anchor: &Anchor) -> Vec<(String, String)> {
    anchor
        .base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The table's verdict for one anchor parameter, or why it fails.
fn judge(
    binary: &Path,
    anchor: &Anchor,
    param: &Param,
    ours: &BTreeMap<String, Param>,
) -> Result<String, String> {
    if let Some((_, value, why)) = anchor.refused.iter().find(|(n, _, _)| *n == param.name) {
        let mut lines = base_lines(anchor);
        lines.push((param.name.clone(), value.to_string()));
        let out = run_agent(binary, anchor.plugin, &lines);
        let text = out.text();
        return if out.status.code() == Some(1) && text.contains(&param.name) && text.contains(why) {
            Ok(format!(
                "refused: {param}={value} exits 1 naming it",
                param = param.name
            ))
        } else {
            Err(format!(
                "{}={value} is not refused with exit 1 naming it: {:?} {text}",
                param.name,
                out.status.code()
            ))
        };
    }
    let Some(mine) = ours.get(&param.name) else {
        return Err("not in fencekit's metadata: it would be ignored as unknown".into());
    };
    if (param.ty == "boolean") != (mine.ty == "boolean") {
        return Err(format!(
            "type differs: {} is {}, fencekit's is {}",
            anchor.program, param.ty, mine.ty
        ));
    }
    if let Some(c) = param.short() {
        let exception = anchor.short_exceptions.iter().find(|(e, _)| *e == c);
        if mine.short() != Some(c) && exception.is_none() {
            return Err(format!(
                "-{c} is {}'s {}, fencekit's {} has {:?}",
                anchor.program, param.name, mine.name, mine.mixed
            ));
        }
    }
    if NOT_RUN.contains(&param.name.as_str()) {
        return Ok("same (front-end option)".into());
    }
    let mut lines = base_lines(anchor);
    lines.extend(needs(&param.name));
    lines.push((param.name.clone(), sample(anchor, param)));
    let out = run_agent(binary, anchor.plugin, &lines);
    let text = out.text();
    if !out.status.success() || text.contains("ignoring unknown parameter") {
        return Err(format!(
            "validate-all with {}={} gives {:?}: {text}",
            param.name,
            sample(anchor, param),
            out.status.code()
        ));
    }
    let exception = param
        .short()
        .and_then(|c| anchor.short_exceptions.iter().find(|(e, _)| *e == c))
        .map(|(c, how)| format!("; -{c}: {how}"))
        .unwrap_or_default();
    if mine.description.contains("not used")
        || mine.description.contains("ccepted for compatibility")
    {
        Ok(format!(
            "same, not applicable (accepted: {}){exception}",
            mine.description
        ))
    } else {
        Ok(format!("same meaning{exception}"))
    }
}

fn conformance(anchor: &Anchor) {
    let Some(program) = peers::require(anchor.program, "fence-agents") else {
        return;
    };
    let binary = bridge::binary().unwrap();
    let mut theirs = Command::new(&program);
    theirs.args(["-o", "metadata"]);
    let theirs = metadata_of(theirs);
    let mut mine = Command::new(&binary);
    mine.args(["fence-agent", anchor.plugin, "-o", "metadata"]);
    let ours: BTreeMap<String, Param> = metadata_of(mine)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();

    let mut failures = Vec::new();
    let mut table = format!(
        "\n{} → fence_fencekit_{} ({} parameters)\n{:<26} {:<6} verdict\n",
        anchor.program,
        anchor.plugin,
        theirs.len(),
        "parameter",
        "short"
    );
    for param in &theirs {
        let short = param.short().map(|c| format!("-{c}")).unwrap_or_default();
        let name = if param.deprecated {
            format!("{} (deprecated)", param.name)
        } else {
            param.name.clone()
        };
        match judge(&binary, anchor, param, &ours) {
            Ok(verdict) => table.push_str(&format!("{name:<26} {short:<6} {verdict}\n")),
            Err(why) => {
                table.push_str(&format!("{name:<26} {short:<6} FAIL: {why}\n"));
                failures.push(format!("{}: {}", param.name, why));
            }
        }
    }
    // Every parameter at once, as a configuration that sets them all.
    let mut all = base_lines(anchor);
    for param in &theirs {
        // Each contradicts another that is set: inet4_only, a plug, ssl_secure.
        let exclusive = matches!(
            param.name.as_str(),
            "inet6_only" | "port_as_ip" | "ssl_insecure"
        );
        if NOT_RUN.contains(&param.name.as_str())
            || exclusive
            || anchor.refused.iter().any(|(n, _, _)| *n == param.name)
            || all.iter().any(|(k, _)| *k == param.name)
        {
            continue;
        }
        all.push((param.name.clone(), sample(anchor, param)));
    }
    // A configuration that sets SNMPv3's security parameters is an SNMPv3 one.
    if all.iter().any(|(k, _)| SNMPV3_ONLY.contains(&k.as_str())) {
        all.retain(|(k, _)| k != "snmp_version");
        all.push(("snmp_version".into(), "3".into()));
    }
    let out = run_agent(&binary, anchor.plugin, &all);
    let text = out.text();
    if !out.status.success() || text.contains("ignoring unknown parameter") {
        failures.push(format!(
            "all parameters at once: {:?} {text}",
            out.status.code()
        ));
    } else {
        table.push_str(&format!(
            "(all {} at once)             validate-all accepts them, no warning\n",
            all.len()
        ));
    }
    print!("{table}");
    assert!(
        failures.is_empty(),
        "{} conformance:\n{}",
        anchor.program,
        failures.join("\n")
    );
}

#[test]
fn every_fence_ipmilan_parameter_is_taken_with_its_meaning_or_refused() {
    conformance(&IPMILAN);
}

#[test]
fn every_fence_apc_snmp_parameter_is_taken_with_its_meaning_or_refused() {
    conformance(&APC_SNMP);
}

#[test]
fn every_fence_ifmib_parameter_is_taken_with_its_meaning_or_refused() {
    conformance(&IFMIB);
}

#[test]
fn every_fence_redfish_parameter_is_taken_with_its_meaning_or_refused() {
    conformance(&REDFISH);
}

#[test]
fn every_fence_apc_parameter_is_taken_with_its_meaning_or_refused() {
    conformance(&APC);
}

/// `port_as_ip`: the plug is the BMC's address. `ip` names an address where nothing
/// answers; the run switches the ipmi_sim the plug names, read from its side.
#[test]
fn port_as_ip_switches_the_bmc_the_plug_names() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let binary = bridge::binary().unwrap();
    let input = format!(
        "action=off\nip=127.0.0.2\nport_as_ip=1\nport=127.0.0.1\nipport={}\nusername={}\n\
         password={}\ncipher=3\ntimeout=20\n",
        sim.port(),
        sim.user(),
        IpmiSimOptions::default().password
    );
    let mut command = Command::new(&binary);
    command.args(["fence-agent", "ipmi"]);
    let out = tool::run(command, Some(input.as_bytes()), RUN_TIMEOUT).unwrap();
    assert!(out.status.success(), "{}", out.text());
    assert!(
        !sim.power_state().unwrap(),
        "the BMC the plug names is still on"
    );
}

/// `port_as_ip=0` beside a plug: fence-agents take the option as given (the plug is the
/// address, whatever the value), so it is refused before anything is sent rather than
/// switching `ip`, which fence_ipmilan would not. The BMC at `ip` stays on.
#[test]
fn port_as_ip_given_false_beside_a_plug_is_refused_not_read_two_ways() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let binary = bridge::binary().unwrap();
    for value in ["0", "no", "false"] {
        let input = format!(
            "action=off\nip=127.0.0.1\nport_as_ip={value}\nport=node1\nipport={}\n\
             username={}\npassword={}\nlanplus=1\ntimeout=20\n",
            sim.port(),
            sim.user(),
            IpmiSimOptions::default().password
        );
        let mut command = Command::new(&binary);
        command.args(["fence-agent", "ipmi"]);
        let out = tool::run(command, Some(input.as_bytes()), RUN_TIMEOUT).unwrap();
        assert_eq!(out.status.code(), Some(1), "{value}: {}", out.text());
        assert!(out.text().contains("port_as_ip"), "{}", out.text());
        assert!(sim.power_state().unwrap(), "{value}: nothing switched");
    }
}

/// `-n` on the command line of a one-machine agent, without `--port-as-ip`: the
/// installed fence_ipmilan refuses the option, and so do we (exit 1), rather than
/// dropping it and switching the BMC at `-a`, which the user may not have meant.
/// The BMC, read from ipmi_sim's side, stays on.
#[test]
fn a_plug_on_the_command_line_of_a_one_machine_agent_is_refused_as_fence_ipmilan_does() {
    if peers::require("ipmi_sim", "openipmi").is_none()
        || peers::require("fence_ipmilan", "fence-agents").is_none()
    {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let binary: PathBuf = bridge::binary().unwrap();
    let script = format!("echo {}", IpmiSimOptions::default().password);
    let args = |command: &mut Command| {
        command.args(["-a", "127.0.0.1", "-u"]);
        command.arg(sim.port().to_string());
        command.args([
            "-l",
            sim.user(),
            "-S",
            &script,
            "-P",
            "-C",
            "3",
            "-n",
            "2",
            "-o",
            "off",
        ]);
    };
    let mut ours = Command::new(&binary);
    ours.args(["fence-agent", "ipmi"]);
    args(&mut ours);
    let ours = tool::run(ours, None, RUN_TIMEOUT).unwrap();
    let mut theirs = Command::new("fence_ipmilan");
    args(&mut theirs);
    let theirs = tool::run(theirs, None, RUN_TIMEOUT).unwrap();
    assert_eq!(theirs.status.code(), Some(1), "{}", theirs.text());
    assert_eq!(ours.status.code(), Some(1), "{}", ours.text());
    assert!(ours.text().contains("-n/--plug"), "{}", ours.text());
    assert!(sim.power_state().unwrap(), "the BMC was switched");
}

/// Pacemaker passes a device's attributes on stdin beside the `action` it asks for,
/// in no fixed order, `option` among them (the action's name before fence-agents
/// 4, which ignore it). A stale `option=off` or `option=reboot` never turns a
/// monitor, a status or an on into a fence, in either order, and alone it is
/// ignored as fence_ipmilan ignores it (the default reboot runs); a parameter
/// given under two of its names with two values (`ip` and `ipaddr`) is refused,
/// nothing sent, and so is a name in another case (`IPPORT`). `udpport`, which no anchor knows, moves nothing to another port.
/// The oracle is ipmi_sim's own record of every `set power` it ran.
#[test]
fn a_stale_option_or_two_names_of_one_parameter_never_switch_a_bmc() {
    if peers::require("ipmi_sim", "openipmi").is_none()
        || peers::require("fence_ipmilan", "fence-agents").is_none()
    {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let binary: PathBuf = bridge::binary().unwrap();
    let common = format!(
        "ip=127.0.0.1\nipport={}\nusername={}\npassword={}\nlanplus=1\ncipher=3\n",
        sim.port(),
        sim.user(),
        IpmiSimOptions::default().password
    );
    let run = |program: &Path, lines: &str| {
        let mut command = Command::new(program);
        if program == binary.as_path() {
            command.args(["fence-agent", "ipmi"]);
        }
        let stdin = format!("{common}{lines}");
        tool::run(command, Some(stdin.as_bytes()), RUN_TIMEOUT).unwrap()
    };
    let fence_ipmilan = PathBuf::from("fence_ipmilan");
    for (lines, code) in [
        ("action=monitor\noption=off\n", 0),
        ("option=off\naction=monitor\n", 0),
        ("action=status\noption=reboot\n", 0),
        ("option=reboot\naction=status\n", 0),
        ("option=off\naction=on\n", 0),
    ] {
        for program in [&binary, &fence_ipmilan] {
            let out = run(program, lines);
            assert_eq!(out.status.code(), Some(code), "{lines}{}", out.text());
            assert!(
                sim.power_state().unwrap(),
                "{lines}: the BMC was switched off"
            );
            let log = sim.call_log().unwrap();
            assert!(
                !log.iter()
                    .any(|l| l.starts_with("set power 0") || l.starts_with("set reset")),
                "{lines}: the BMC was told to switch off: {log:?}\n{}",
                out.text()
            );
        }
    }
    // A port no anchor reads (the BMC at ipport is fenced, as by fence_ipmilan).
    let out = run(&binary, "udpport=9\naction=status\n");
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.text().contains("udpport"), "{}", out.text());
    // Two names of one parameter, two values: refused, in either order.
    for lines in [
        "ipaddr=127.0.0.2\naction=off\n",
        "action=off\nlogin=someone-else\n",
    ] {
        let out = run(&binary, lines);
        assert_eq!(out.status.code(), Some(1), "{lines}{}", out.text());
        assert!(
            out.text().contains("another value"),
            "{lines}{}",
            out.text()
        );
    }
    let reversed = format!(
        "ipaddr=127.0.0.2\n{}action=off\n",
        common.replace("ip=127.0.0.1\n", "")
    );
    let out = tool::run(
        {
            let mut c = Command::new(&binary);
            c.args(["fence-agent", "ipmi"]);
            c
        },
        Some(format!("{reversed}ip=127.0.0.1\n").as_bytes()),
        RUN_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(sim.power_state().unwrap(), "the BMC was switched off");
    let log = sim.call_log().unwrap();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("set power 0") || l.starts_with("set reset")),
        "{log:?}"
    );
    // A known name in another case or with a blank before `=`: fence_ipmilan
    // ignores the line (and would switch the BMC at the other port); refused,
    // naming the name to write, nothing sent.
    for lines in [
        "IPPORT=9\naction=off\n",
        "ipport =9\naction=off\n",
        "Action=status\n",
    ] {
        let out = run(&binary, lines);
        assert_eq!(out.status.code(), Some(1), "{lines}{}", out.text());
        assert!(out.text().contains("write `"), "{lines}{}", out.text());
        assert!(sim.power_state().unwrap(), "{lines}: the BMC was switched");
    }
    let log = sim.call_log().unwrap();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("set power 0") || l.starts_with("set reset")),
        "{log:?}"
    );
    // `option` alone is ignored by both, and the default action runs: a reboot,
    // whose off both send (ipmi_sim's record) and whose on both leave the
    // machine in.
    for program in [&binary, &fence_ipmilan] {
        let before = sim.call_log().unwrap().len();
        let out = run(program, "option=status\n");
        assert_eq!(out.status.code(), Some(0), "{}", out.text());
        let log = sim.call_log().unwrap();
        assert!(
            log[before..]
                .iter()
                .any(|l| l.starts_with("set power 0") || l.starts_with("set reset")),
            "{program:?}: option=status alone did not run the default reboot: {log:?}\n{}",
            out.text()
        );
        assert!(sim.power_state().unwrap(), "{program:?}: left off");
    }
}

/// fence_ipmilan's `-S` (password script) and `-P` (lanplus) on a command line reach
/// a real BMC; `-o status` answers with the state ipmi_sim keeps.
#[test]
fn short_options_of_fence_ipmilan_reach_the_bmc() {
    if peers::require("ipmi_sim", "openipmi").is_none() {
        return;
    }
    let sim = IpmiSim::start(IpmiSimOptions::default()).unwrap();
    let binary: PathBuf = bridge::binary().unwrap();
    let script = format!("echo {}", IpmiSimOptions::default().password);
    let mut command = Command::new(&binary);
    command.args(["fence-agent", "ipmi", "-a", "127.0.0.1", "-u"]);
    command.arg(sim.port().to_string());
    command.args([
        "-l",
        sim.user(),
        "-S",
        &script,
        "-P",
        "-C",
        "3",
        "-o",
        "status",
    ]);
    let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.text().contains("ON"), "{}", out.text());
}

/// A fence_apc `--ssh` configuration names no host key: ssh checks the key against
/// OpenSSH's own files. fencekit does the same (the user's `~/.ssh/known_hosts`): the
/// same stdin fences through the real sshd when the file holds the key, and is
/// refused, naming the file and switching nothing, when it holds another key.
#[test]
fn a_fence_apc_ssh_configuration_checks_the_key_in_the_users_known_hosts() {
    if !fencekit_tests::consoles::peers_present() {
        return;
    }
    let sim = bridge::workspace_binary("fencekit-apc", "fencekit-apc-console-sim").unwrap();
    let rig = fencekit_tests::consoles::ConsoleRig::start(
        &sim.display().to_string(),
        "apcdef",
        1,
        &[("cli", &[])],
    );
    let console = &rig.consoles[0];
    console.state.set(1, 2, true, None).unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let known = home.path().join(".ssh/known_hosts");
    let binary = bridge::binary().unwrap();
    let stdin = format!(
        "action=off\nip=127.0.0.1\nipport={}\nusername={}\npassword={}\nssh=1\nplug=2\n\
         lock_dir={}\ntimeout=30\n",
        rig.sshd().port(),
        console.user.name(),
        console.password,
        rig.lock_dir().display()
    );
    let run = || {
        let mut command = Command::new(&binary);
        command
            .args(["fence-agent", "apc"])
            .env("HOME", home.path())
            .env("LC_ALL", "C");
        tool::run(command, Some(stdin.as_bytes()), RUN_TIMEOUT).unwrap()
    };

    // Another key under the device's name: refused, nothing switched.
    let other = "AAAAC3NzaC1lZDI1NTE5AAAAIGxPxTxVHvLr9FJ7Df7CbsgcnBdpVSxx7D6c1JqR2dWm";
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} ssh-ed25519 {other}\n", rig.sshd().port()),
    )
    .unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("known_hosts"), "{}", out.text());
    assert_eq!(
        console.state.state(1, 2).unwrap(),
        Some(fencekit_core::PowerState::On)
    );

    // The device's own key: fenced, and truly off on the simulator's side.
    std::fs::copy(rig.known_hosts(), &known).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert_eq!(
        console.state.state(1, 2).unwrap(),
        Some(fencekit_core::PowerState::Off)
    );
}

/// `port_as_ip` takes the address from the plug Pacemaker passes to a fence agent.
/// Where no such plug exists (cluster-glue's environment, a configuration file) it
/// cannot mean that, and is refused rather than ignored: `ip` would be switched.
#[test]
fn port_as_ip_outside_the_fence_agent_is_refused_not_ignored() {
    let binary = bridge::binary().unwrap();
    let mut command = Command::new(&binary);
    command
        .args(["external", "ipmi", "status"])
        .env_remove("RUST_LOG")
        .env("hostname", "node1")
        .env("ip", "127.0.0.2")
        .env("username", "admin")
        .env("password", "conformance-pw")
        .env("port_as_ip", "1");
    let out = tool::run(command, None, RUN_TIMEOUT).unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", out.text());
    assert!(out.text().contains("port_as_ip"), "{}", out.text());
}

/// fence_apc without `--ssh` logs in over telnet. fencekit speaks telnet only when
/// asked by name (`telnet=1`: the login crosses the network in clear text), and the
/// same lines must not quietly become SNMP v1 with the factory community (which would
/// ignore the login they name): refused, exit 1, saying what to set
/// (`tests/tests/telnet.rs` fences over telnet with `telnet=1`).
#[test]
fn a_fence_apc_telnet_configuration_is_refused_not_turned_into_snmp() {
    let binary = bridge::binary().unwrap();
    let lines: Vec<(String, String)> = [
        ("ip", "127.0.0.1"),
        ("plug", "1"),
        ("username", "apc"),
        ("password", "conformance-pw"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let out = run_agent(&binary, "apc", &lines);
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("telnet=1"), "{}", out.text());
    assert!(out.text().contains("ssh=1"), "{}", out.text());
    // With ssh=1 the same lines are fence_apc's SSH configuration, taken as such.
    let mut ssh = lines.clone();
    ssh.push(("ssh".into(), "1".into()));
    ssh.push(("insecure_skip_host_key_check".into(), "1".into()));
    let out = run_agent(&binary, "apc", &ssh);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
}

/// cluster-glue `baytech`'s own names (`ipaddr login password`) on `stonith`'s
/// command line reach `external/fencekit-baytech` (over SSH: `ipport` is fencekit's,
/// since cluster-glue's plugin speaks telnet on a fixed port; the host key from the
/// user's known_hosts); a host is the outlet carrying its name, and its off is read
/// from the simulator's own state.
#[test]
fn baytechs_own_parameter_names_work_unchanged_through_stonith() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !fencekit_tests::consoles::peers_present() {
        return;
    }
    let sim = bridge::workspace_binary("fencekit-baytech", "fencekit-baytech-sim").unwrap();
    let rig = fencekit_tests::consoles::ConsoleRig::start(
        &sim.display().to_string(),
        "btglue",
        1,
        &[("direct", &[])],
    );
    let console = &rig.consoles[0];
    console.state.set(1, 3, true, Some("db-node3")).unwrap();
    let installed = bridge::Installed::new().unwrap();
    let _link = fencekit_tests::system::SystemLink::external_plugin(&installed, "baytech").unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::copy(rig.known_hosts(), home.path().join(".ssh/known_hosts")).unwrap();
    let args = [
        "ipaddr=127.0.0.1".to_string(),
        format!("login={}", console.user.name()),
        format!("password={}", console.password),
        format!("ipport={}", rig.sshd().port()),
        format!("lock_dir={}", rig.lock_dir().display()),
    ];
    let run = |more: &[&str]| {
        let mut command = Command::new(&stonith);
        command
            .args(["-t", "external/fencekit-baytech"])
            .args(&args)
            .args(more)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        tool::run(command, None, Duration::from_secs(90)).unwrap()
    };
    let out = run(&["-S"]);
    assert!(out.status.success(), "status: {}", out.text());
    let out = run(&["-T", "off", "db-node3"]);
    assert!(out.status.success(), "off: {}", out.text());
    assert_eq!(
        console.state.state(1, 3).unwrap(),
        Some(fencekit_core::PowerState::Off)
    );
    assert!(!out.text().contains(&console.password), "{}", out.text());

    // baytech's positional configuration (`stonith -F`, `-p`, Heartbeat's
    // `stonith_host`): one word for each of `ipaddr login password`, in that order;
    // the SSH port (not one of baytech's names) from the environment.
    console.state.set(1, 3, true, Some("db-node3")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baytech.cfg");
    std::fs::write(
        &file,
        format!("127.0.0.1 {} {}\n", console.user.name(), console.password),
    )
    .unwrap();
    let mut command = Command::new(&stonith);
    command
        .args(["-t", "external/fencekit-baytech", "-F"])
        .arg(&file)
        .args(["-T", "off", "db-node3"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("ipport", rig.sshd().port().to_string())
        .env("lock_dir", rig.lock_dir());
    let out = tool::run(command, None, Duration::from_secs(90)).unwrap();
    assert!(out.status.success(), "-F off: {}", out.text());
    assert_eq!(
        console.state.state(1, 3).unwrap(),
        Some(fencekit_core::PowerState::Off)
    );
    assert!(!out.text().contains(&console.password), "{}", out.text());
}

/// cluster-glue finds a host's outlets by name on the configured strip (`strip=2`
/// behind a DS/MMP module). When another outlet of that strip is named after the
/// host's outlet number, the outlet goes back to the device as its own address
/// (`2:3`), never as a bare number read again as ambiguous, nor as `1:3`, an outlet
/// of another strip. Judged by the simulator's state of both strips.
#[test]
fn a_hosts_outlet_on_strip_2_whose_number_another_outlet_is_named_after_is_that_outlet() {
    if !fencekit_tests::consoles::peers_present() {
        return;
    }
    let sim = bridge::workspace_binary("fencekit-baytech", "fencekit-baytech-sim").unwrap();
    let rig = fencekit_tests::consoles::ConsoleRig::start(
        &sim.display().to_string(),
        "btstrip",
        2,
        &[("module", &[])],
    );
    let console = &rig.consoles[0];
    console.state.set(1, 3, true, Some("other-node")).unwrap();
    console.state.set(2, 3, true, Some("node7")).unwrap();
    console.state.set(2, 5, true, Some("3")).unwrap();
    let mut command = Command::new(bridge::binary().unwrap());
    command
        .args(["external", "baytech", "off", "node7"])
        .env_remove("RUST_LOG")
        .envs(rig.params(0, &[("strip", "2")]));
    let out = tool::run(command, None, Duration::from_secs(90)).unwrap();
    assert!(out.status.success(), "off: {}", out.text());
    let state = |strip, outlet| console.state.state(strip, outlet).unwrap();
    assert_eq!(
        state(2, 3),
        Some(fencekit_core::PowerState::Off),
        "{}",
        out.text()
    );
    assert_eq!(
        state(1, 3),
        Some(fencekit_core::PowerState::On),
        "{}",
        out.text()
    );
    assert_eq!(
        state(2, 5),
        Some(fencekit_core::PowerState::On),
        "{}",
        out.text()
    );
}

/// Every name cluster-glue's own plugins list (`stonith -t PLUGIN -n`) is listed by
/// the fencekit plugin that stands in for it, so `stonith` passes it on; what each
/// means is proven through `stonith` against the real peers (ipmi_sim, snmpd, sshd)
/// by the tests named in the table.
#[test]
fn every_cluster_glue_plugin_name_is_listed_by_its_fencekit_personality() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    let binary = bridge::binary().unwrap();
    let mut table = String::from("\ncluster-glue plugin → fencekit personality\n");
    let mut failures = Vec::new();
    for (anchor, plugin, proof) in [
        (
            "external/ipmi",
            "ipmi",
            "cluster_glue_ipmi::external_ipmis_own_parameter_names_work_unchanged",
        ),
        (
            "baytech",
            "baytech",
            "conformance::baytechs_own_parameter_names_work_unchanged_through_stonith",
        ),
        (
            "apcmastersnmp",
            "apc",
            "apc_snmp::apcmastersnmps_own_parameter_names_work_unchanged_through_stonith",
        ),
    ] {
        let mut theirs = Command::new(&stonith);
        theirs.args(["-t", anchor, "-n"]);
        let theirs = tool::run(theirs, None, RUN_TIMEOUT).unwrap().stdout;
        let mut ours = Command::new(&binary);
        ours.args(["external", plugin, "getconfignames"]);
        let ours = tool::run(ours, None, RUN_TIMEOUT).unwrap().stdout;
        for name in theirs.split_whitespace() {
            let listed = ours.split_whitespace().any(|n| n == name);
            table.push_str(&format!(
                "{anchor:<14} {name:<13} {}\n",
                if listed {
                    format!("listed by external/fencekit-{plugin}; proven by {proof}")
                } else {
                    "FAIL: not listed, stonith would not pass it".to_string()
                }
            ));
            if !listed {
                failures.push(format!("{anchor} {name}"));
            }
        }
        // The metadata (`stonith -m`, what pcs and crm show and check a
        // configuration against) describes every parameter theirs does.
        let mut theirs = Command::new(&stonith);
        theirs.args(["-t", anchor, "-m"]);
        let theirs = tool::run(theirs, None, RUN_TIMEOUT).unwrap().stdout;
        let mut ours = Command::new(&binary);
        ours.args(["external", plugin, "getinfo-xml"]);
        let ours = tool::run(ours, None, RUN_TIMEOUT).unwrap().stdout;
        let described = parameter_names(&ours);
        let theirs = parameter_names(&theirs);
        assert!(!theirs.is_empty(), "no parameters in {anchor}'s metadata");
        for name in theirs {
            let found = described.contains(&name);
            table.push_str(&format!(
                "{anchor:<14} {name:<13} {}\n",
                if found {
                    format!("in the metadata of external/fencekit-{plugin}")
                } else {
                    "FAIL: in theirs, missing from ours".to_string()
                }
            ));
            if !found {
                failures.push(format!("{anchor} metadata {name}"));
            }
        }
    }
    print!("{table}");
    assert!(failures.is_empty(), "{failures:?}");
}
