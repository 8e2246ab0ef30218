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
