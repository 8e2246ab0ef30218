//! cluster-glue's own `stonith` command drives `external/fencekit-ipmi` against a
//! real OpenIPMI `ipmi_sim`, with the parameters in the environment as `stonith -E`
//! passes them: status, host list, off (confirmed: the simulator's power program
//! shows it), reset, metadata; and a BMC that accepts off and stays on fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fencekit_tests::bridge::Installed;
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions, PowerProgram};
use fencekit_tests::peers;
use fencekit_tests::system::SystemLink;
use fencekit_tests::tool::{self, ToolOutput};

const PLUGIN: &str = "external/fencekit-ipmi";
const STONITH_TIMEOUT: Duration = Duration::from_secs(90);

struct Glue {
    stonith: PathBuf,
    _link: SystemLink,
    _installed: Installed,
}

impl Glue {
    fn new() -> Option<Glue> {
        let stonith = peers::require("stonith", "cluster-glue")?;
        peers::require("ipmi_sim", "openipmi")?;
        if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
            return None;
        }
        let installed = Installed::new().unwrap();
        let link = SystemLink::external_plugin(&installed, "ipmi").unwrap();
        Some(Glue {
            stonith,
            _link: link,
            _installed: installed,
        })
    }

    /// `stonith -t external/fencekit-ipmi` with `words` and `args` on its command
    /// line and nothing in the environment but a path and a locale.
    fn words(&self, words: &[String], args: &[&str]) -> ToolOutput {
        let mut command = Command::new(&self.stonith);
        command
            .args(["-t", PLUGIN])
            .args(words)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        tool::run(command, None, STONITH_TIMEOUT).unwrap()
    }

    /// `stonith ARGS` with the BMC's parameters as the only environment.
    fn stonith(&self, args: &[&str], bmc: &IpmiSim, password: &str) -> ToolOutput {
        let mut command = Command::new(&self.stonith);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("hostname", "node1")
            .env("ip", "127.0.0.1")
            .env("ipport", bmc.port().to_string())
            .env("username", bmc.user())
            .env("password", password)
            .env("power_timeout", "3");
        tool::run(command, None, STONITH_TIMEOUT).unwrap()
    }
}

#[test]
fn stonith_fences_resets_and_describes_an_ipmi_sim_bmc() {
    let Some(glue) = Glue::new() else { return };
    let options = IpmiSimOptions::default();
    let password = options.password.clone();
    let bmc = IpmiSim::start(options).unwrap();

    let out = glue.stonith(&["-t", PLUGIN, "-E", "-S"], &bmc, &password);
    assert!(out.status.success(), "status: {}", out.text());

    let out = glue.stonith(&["-t", PLUGIN, "-E", "-l"], &bmc, &password);
    assert!(out.status.success(), "list: {}", out.text());
    assert_eq!(out.stdout.trim(), "node1");

    let out = glue.stonith(&["-t", PLUGIN, "-E", "-T", "off", "node1"], &bmc, &password);
    assert!(out.status.success(), "off: {}", out.text());
    assert!(
        !bmc.power_state().unwrap(),
        "the BMC's machine should be off"
    );

    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "reset", "node1"],
        &bmc,
        &password,
    );
    assert!(out.status.success(), "reset: {}", out.text());
    assert!(
        bmc.power_state().unwrap(),
        "the BMC's machine should be on again"
    );
    // From on as well: off read back, then on.
    let out = glue.stonith(
        &["-t", PLUGIN, "-E", "-T", "reset", "node1"],
        &bmc,
        &password,
    );
    assert!(out.status.success(), "reset from on: {}", out.text());
    assert!(
        bmc.power_state().unwrap(),
        "the BMC's machine should be on after a reset from on"
    );

    let out = glue.stonith(&["-t", PLUGIN, "-m"], &bmc, &password);
    assert!(out.status.success(), "metadata: {}", out.text());
    assert!(out.stdout.contains("name=\"ip\""), "{}", out.stdout);
    assert!(out.stdout.contains("name=\"privlvl\""), "{}", out.stdout);

    // A host the device does not fence is refused, and nothing is switched.
    let out = glue.stonith(&["-t", PLUGIN, "-E", "-T", "off", "node9"], &bmc, &password);
    assert!(!out.status.success(), "off node9: {}", out.text());
    assert!(bmc.power_state().unwrap());
    assert!(!out.text().contains(&password), "{}", out.text());
}

#[test]
fn stonith_off_fails_against_a_bmc_that_stays_on() {
    let Some(glue) = Glue::new() else { return };
    let options = IpmiSimOptions {
        power: PowerProgram::Lie,
        ..IpmiSimOptions::default()
    };
    let password = options.password.clone();
    let bmc = IpmiSim::start(options).unwrap();
    let out = glue.stonith(&["-t", PLUGIN, "-E", "-T", "off", "node1"], &bmc, &password);
    assert!(
        !out.status.success(),
        "off against a lying BMC: {}",
        out.text()
    );
    assert!(bmc.power_state().unwrap());
}

/// An `ipmi_sim` BMC, its password, and `external/ipmi`'s words that reach it:
/// `port=`, `userid=`, `passwd=`.
fn bmc_and_its_words() -> (IpmiSim, String, [String; 3]) {
    let options = IpmiSimOptions::default();
    let password = options.password.clone();
    let bmc = IpmiSim::start(options).unwrap();
    let words = [
        format!("port={}", bmc.port()),
        format!("userid={}", bmc.user()),
        format!("passwd={password}"),
    ];
    (bmc, password, words)
}

/// `external/ipmi`'s own names, as a site switching `-t external/ipmi` to
/// `-t external/fencekit-ipmi` has them, on `stonith`'s command line (it passes a
/// plugin only the names its `getconfignames` lists): `port` is the BMC's UDP port,
/// `interface=lanplus`; status, host list and a confirmed off (the simulator's power
/// program reads off). `passwd_method=file` takes `passwd` as a file; `interface=lan`
/// switches over IPMI 1.5 (MD5), as external/ipmi's `ipmitool -I lan` does.
#[test]
fn external_ipmis_own_parameter_names_work_unchanged() {
    let Some(glue) = Glue::new() else { return };
    let (bmc, password, [port, userid, passwd]) = bmc_and_its_words();
    let words = [
        "hostname=node1".to_string(),
        "ipaddr=127.0.0.1".into(),
        port,
        userid,
    ];
    let run = |args: &[&str]| glue.words(&words, args);
    // `-n` lists external/ipmi's own names, in its order, and those only (its
    // positional configurations map word for word: see below).
    let names = |plugin: &str| {
        let mut command = Command::new(&glue.stonith);
        command.args(["-t", plugin, "-n"]);
        let out = tool::run(command, None, STONITH_TIMEOUT).unwrap().stdout;
        out.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(PLUGIN), names("external/ipmi"));

    let out = run(&[passwd.as_str(), "interface=lanplus", "-S"]);
    assert!(out.status.success(), "status: {}", out.text());
    let out = run(&[passwd.as_str(), "interface=lanplus", "-l"]);
    assert!(out.status.success(), "list: {}", out.text());
    assert_eq!(out.stdout.trim(), "node1");

    // IPMI 1.5, as external/ipmi's interface=lan: a confirmed off, read from the
    // simulator's side; then the machine is powered on again by hand.
    let out = run(&[passwd.as_str(), "interface=lan", "-T", "off", "node1"]);
    assert!(out.status.success(), "interface=lan: {}", out.text());
    assert!(
        !bmc.power_state().unwrap(),
        "interface=lan: the BMC's machine should be off"
    );
    bmc.set_power(true).unwrap();

    // The password from a file, as passwd_method=file reads it; `ipmitool` (the
    // program external/ipmi runs) is taken and has nothing to change.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bmc.pass");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let from_file = format!("passwd={}", file.display());
    let out = run(&[
        from_file.as_str(),
        "passwd_method=file",
        "ipmitool=/usr/bin/ipmitool",
        "interface=lanplus",
        "-T",
        "off",
        "node1",
    ]);
    assert!(out.status.success(), "off: {}", out.text());
    assert!(
        !bmc.power_state().unwrap(),
        "the BMC's machine should be off"
    );
    assert!(!out.text().contains(&password), "{}", out.text());
}

/// `hostname` as `external/ipmi` has it: split at blanks only (cluster-glue splits
/// what its `gethosts` prints so), so that `node1,node2` (or `;`), one word there
/// that Pacemaker would split into two hosts of one BMC, is refused by the
/// monitor, the host list and a fence, as are two hosts (`node1 node2`: the one
/// machine would be powered off for either); a host asked for by its full name when
/// `hostname` holds the short one (or the reverse) is fenced, as `external/ipmi`
/// fences whatever host it is asked for; another host is refused. Judged by the
/// simulator's power state.
#[test]
fn hostname_is_read_as_external_ipmi_reads_it() {
    let Some(glue) = Glue::new() else { return };
    let (bmc, _, [port, userid, passwd]) = bmc_and_its_words();
    let run = |hostname: &str, args: &[&str]| {
        let words = [
            "ipaddr=127.0.0.1".to_string(),
            "interface=lanplus".into(),
            format!("hostname={hostname}"),
            port.clone(),
            userid.clone(),
            passwd.clone(),
        ];
        glue.words(&words, args)
    };
    // A comma or semicolon, and two hosts of one BMC (external/ipmi lists both and
    // powers its one machine off for either): refused by every operation, nothing
    // switched.
    for (hostname, why) in [
        ("node1,node2", "comma or semicolon"),
        ("node1;node2", "comma or semicolon"),
        ("node1 node2", "powers one machine"),
    ] {
        for args in [
            &["-S"][..],
            &["-l"],
            &["-T", "off", "node1"],
            &["-T", "off", "node2"],
        ] {
            let out = run(hostname, args);
            assert!(!out.status.success(), "{hostname} {args:?}: {}", out.text());
            assert!(
                out.text().contains(why),
                "{hostname} {args:?}: {}",
                out.text()
            );
        }
        assert!(
            bmc.power_state().unwrap(),
            "{hostname}: a refused configuration switched the BMC"
        );
    }
    // Two names of one host are one host.
    let out = run("node1 node1.example.com", &["-l"]);
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["node1", "node1.example.com"]
    );

    let out = run("node1", &["-T", "off", "node3.example.com"]);
    assert!(!out.status.success(), "{}", out.text());
    assert!(
        bmc.power_state().unwrap(),
        "another host's fence switched this BMC"
    );
    for (hostname, host) in [
        ("node1", "node1.example.com"),
        ("node1.example.com", "NODE1"),
    ] {
        let out = run(hostname, &["-T", "off", host]);
        assert!(out.status.success(), "{hostname} / {host}: {}", out.text());
        assert!(
            !bmc.power_state().unwrap(),
            "{hostname} / {host}: the BMC's machine should be off"
        );
        bmc.set_power(true).unwrap();
    }
}

/// One parameter under two of its names with different values (`ipaddr` and `ip`,
/// `port` and `ipport`, `passwd` and `password`) is refused naming both, and nothing
/// is switched: cluster-glue's environment has no order that would say which one
/// is meant, and either could be another machine's BMC. The same value under both
/// names is taken.
#[test]
fn a_parameter_under_two_names_with_different_values_is_refused() {
    let Some(glue) = Glue::new() else { return };
    let options = IpmiSimOptions::default();
    let password = options.password.clone();
    let bmc = IpmiSim::start(options).unwrap();
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let elsewhere = nobody.local_addr().unwrap().port().to_string();
    let run = |pairs: &[(&str, &str)], args: &[&str]| {
        let words: Vec<String> = ["hostname=node1", "interface=lanplus"]
            .into_iter()
            .map(String::from)
            .chain(pairs.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        glue.words(&words, args)
    };
    let port = bmc.port().to_string();
    let base = [
        ("ipaddr", "127.0.0.1"),
        ("port", port.as_str()),
        ("userid", bmc.user()),
        ("passwd", password.as_str()),
    ];
    let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        let mut pairs = base.to_vec();
        pairs.push((name, value));
        pairs
    };
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let conflicts: [(Pairs, &str, &str); 3] = [
        (with("ip", "127.0.0.2"), "`ipaddr`", "`ip`"),
        (
            {
                let mut pairs = base.to_vec();
                pairs.push(("ipport", elsewhere.as_str()));
                pairs
            },
            "`port`",
            "`ipport`",
        ),
        (
            with("password", "fk-another-Secret-1"),
            "`passwd`",
            "`password`",
        ),
    ];
    for (pairs, a, b) in &conflicts {
        let out = run(pairs, &["-T", "off", "node1"]);
        assert!(!out.status.success(), "{a} and {b}: {}", out.text());
        assert!(
            out.text().contains(a) && out.text().contains(b),
            "{a} and {b}: {}",
            out.text()
        );
        assert!(!out.text().contains(&password), "{}", out.text());
        assert!(
            !out.text().contains("fk-another-Secret-1"),
            "{}",
            out.text()
        );
        assert!(bmc.power_state().unwrap(), "nothing switched ({a}, {b})");
    }

    // The same value under both names, and a choice in another case, are taken.
    let mut pairs = with("ip", "127.0.0.1");
    pairs.push(("priv", "OPERATOR"));
    pairs.push(("privlvl", "operator"));
    let out = run(&pairs, &["-T", "off", "node1"]);
    assert!(out.status.success(), "off: {}", out.text());
    assert!(
        !bmc.power_state().unwrap(),
        "the BMC's machine should be off"
    );
    drop(nobody);
}

/// external/ipmi's positional configurations, as `stonith -p`, `stonith -F` and
/// Heartbeat's `stonith_host` lines give them: one word for each of its
/// `getconfignames` (`hostname ipaddr userid passwd interface`), in that order, with
/// nothing but `-t` changed. `port` (the BMC's UDP port, which external/ipmi never
/// lists) comes from the environment, as it would reach external/ipmi. A confirmed
/// off through each, read from the simulator's side.
#[test]
fn external_ipmis_positional_configuration_works_unchanged() {
    let Some(glue) = Glue::new() else { return };
    let options = IpmiSimOptions::default();
    let password = options.password.clone();
    let bmc = IpmiSim::start(options).unwrap();
    let words = format!("node1 127.0.0.1 {} {password} lanplus", bmc.user());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipmi.cfg");
    std::fs::write(&file, format!("# node1's BMC\n{words}\n")).unwrap();
    let file = file.display().to_string();
    let run = |args: &[&str]| {
        let mut command = Command::new(&glue.stonith);
        command
            .args(["-t", PLUGIN])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("port", bmc.port().to_string());
        tool::run(command, None, STONITH_TIMEOUT).unwrap()
    };
    for config in [["-p", words.as_str()], ["-F", file.as_str()]] {
        let out = run(&[config[0], config[1], "-S"]);
        assert!(out.status.success(), "{} status: {}", config[0], out.text());
        let out = run(&[config[0], config[1], "-l"]);
        assert_eq!(out.stdout.trim(), "node1", "{}: {}", config[0], out.text());
        let out = run(&[config[0], config[1], "-T", "off", "node1"]);
        assert!(out.status.success(), "{} off: {}", config[0], out.text());
        assert!(
            !bmc.power_state().unwrap(),
            "{}: the BMC's machine should be off",
            config[0]
        );
        bmc.set_power(true).unwrap();
        assert!(!out.text().contains(&password), "{}", out.text());
    }
    // A word short is cluster-glue's own refusal, before the plugin runs.
    let out = run(&["-p", "node1 127.0.0.1", "-S"]);
    assert!(!out.status.success(), "{}", out.text());
    assert!(bmc.power_state().unwrap());
}
