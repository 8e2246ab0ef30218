//! Suite 17 (HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128) with independent
//! implementations, since no packaged BMC simulator speaks it: ipmitool's and
//! pyghmi's clients against our BMC responder served over UDP on loopback (set up
//! to accept suite 17 only), and our client against pyghmi's own BMC server (which
//! does suite 3). A session only completes when both sides derived the same keys,
//! so every check here is a cross-check of our SHA-256 RAKP, SIK, K1 and K2.
//!
//! pyghmi comes from PyPI into a virtual environment kept under the cargo target
//! directory (created on first use; `python3 -m venv` needs Debian's python3-venv).
//! A missing ipmitool or Python, or a failed install, counts as a missing peer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fencekit_core::{Instant, Params, Plug, PowerState, PowerSwitch, SwitchTo};
use fencekit_ipmi::driver::spawn_bmcs;
use fencekit_ipmi::responder::BmcConfig;
use fencekit_ipmi::IpmiSwitch;
use fencekit_tests::{peers, ports, pyenv, tool};

/// The pyghmi release the tests were written against.
const PYGHMI: &str = "pyghmi==1.6.19";
const PASSWORD: &str = "interop-pw-17";
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// A responder BMC that accepts suite 17 only, on 127.0.0.1.
async fn suite_17_bmc() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<fencekit_ipmi::responder::Bmc>>,
) {
    let mut config = BmcConfig::new(PASSWORD);
    config.suites = vec![17];
    spawn_bmcs(vec![config]).await.unwrap().remove(0)
}

/// Runs a blocking command to its end without stalling the runtime that serves
/// the responder.
async fn run(command: Command, stdin: Option<Vec<u8>>) -> tool::ToolOutput {
    tokio::task::spawn_blocking(move || tool::run(command, stdin.as_deref(), TOOL_TIMEOUT))
        .await
        .unwrap()
        .unwrap()
}

fn ipmitool_17(ipmitool: &Path, addr: SocketAddr, words: &[&str]) -> Command {
    ipmitool_suite(ipmitool, addr, "17", words)
}

fn ipmitool_suite(ipmitool: &Path, addr: SocketAddr, suite: &str, words: &[&str]) -> Command {
    let mut command = Command::new(ipmitool);
    command
        .args(["-I", "lanplus", "-C", suite, "-H", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .args(["-U", "admin", "-E", "-N", "1", "-R", "2"])
        .args(words)
        // -E: the password comes from the environment, never argv.
        .env("IPMI_PASSWORD", PASSWORD);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_with_suite_17_reads_and_switches_our_responder() {
    let Some(ipmitool) = peers::require("ipmitool", "ipmitool") else {
        return;
    };
    let (addr, bmc) = suite_17_bmc().await;
    let out = run(
        ipmitool_17(&ipmitool, addr, &["chassis", "power", "status"]),
        None,
    )
    .await;
    assert!(out.status.success(), "{}", out.text());
    assert!(out.stdout.contains("Chassis Power is on"), "{}", out.text());

    let out = run(
        ipmitool_17(&ipmitool, addr, &["chassis", "power", "off"]),
        None,
    )
    .await;
    assert!(out.status.success(), "{}", out.text());
    assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);

    let out = run(
        ipmitool_17(&ipmitool, addr, &["chassis", "power", "status"]),
        None,
    )
    .await;
    assert!(
        out.stdout.contains("Chassis Power is off"),
        "{}",
        out.text()
    );

    assert_eq!(
        bmc.lock().unwrap().session_count(),
        0,
        "sessions were closed"
    );
    // A wrong password: our responder's RAKP 2 proof does not match for ipmitool.
    let mut wrong = ipmitool_17(&ipmitool, addr, &["chassis", "power", "on"]);
    wrong.env("IPMI_PASSWORD", "not-it");
    let out = run(wrong, None).await;
    assert!(!out.status.success(), "{}", out.text());
    assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
}

/// Suites 7 and 8 (HMAC-MD5 authentication, HMAC-MD5-128 integrity, 8 with AES):
/// ipmitool keys the integrity code with K1, and so do we; our responder accepts
/// ipmitool's session and ipmitool accepts our responder's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_with_suites_7_and_8_agrees_on_the_md5_integrity_key() {
    let Some(ipmitool) = peers::require("ipmitool", "ipmitool") else {
        return;
    };
    let mut config = BmcConfig::new(PASSWORD);
    config.suites = vec![7, 8];
    let (addr, bmc) = spawn_bmcs(vec![config]).await.unwrap().remove(0);
    for suite in ["7", "8"] {
        let command = ipmitool_suite(&ipmitool, addr, suite, &["chassis", "power", "status"]);
        let out = run(command, None).await;
        assert!(out.status.success(), "suite {suite}: {}", out.text());
        assert!(
            out.stdout.contains("Chassis Power is on"),
            "suite {suite}: {}",
            out.text()
        );
    }
    assert_eq!(
        bmc.lock().unwrap().session_count(),
        0,
        "sessions were closed"
    );
}

/// The hex bytes ipmitool `-vvvv` prints on the lines after the first line
/// containing `label`.
fn printed_bytes(text: &str, label: &str) -> Vec<u8> {
    let mut lines = text.lines().skip_while(|l| !l.contains(label));
    lines
        .next()
        .unwrap_or_else(|| panic!("`{label}` not printed"));
    lines
        .take_while(|l| {
            let t = l.trim();
            !t.is_empty()
                && t.split(' ')
                    .all(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .flat_map(|l| {
            l.split_whitespace()
                .map(|w| u8::from_str_radix(w, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_suite_17_keys_equal_the_ones_ipmitool_derives() {
    use fencekit_ipmi::crypto::{derive_k, kuid, AuthAlgorithm, RakpInputs};
    let Some(ipmitool) = peers::require("ipmitool", "ipmitool") else {
        return;
    };
    let (addr, _bmc) = suite_17_bmc().await;
    let mut command = ipmitool_17(&ipmitool, addr, &["chassis", "power", "status"]);
    command.arg("-vvvv");
    let out = run(command, None).await;
    assert!(out.status.success(), "{}", out.text());
    let text = out.text();
    // The RAKP 2 input: SIDm, SIDc, Rm, Rc, GUIDc, role, name length, name.
    let input = printed_bytes(&text, "rakp2 mac input buffer");
    assert!(input.len() >= 58, "{input:02x?}");
    let arr16 = |at: usize| -> [u8; 16] { input[at..at + 16].try_into().unwrap() };
    let name = &input[58..];
    assert_eq!(usize::from(input[57]), name.len());
    let inputs = RakpInputs {
        console_session_id: u32::from_le_bytes(input[0..4].try_into().unwrap()),
        bmc_session_id: u32::from_le_bytes(input[4..8].try_into().unwrap()),
        console_random: arr16(8),
        bmc_random: arr16(24),
        bmc_guid: arr16(40),
        role: input[56],
        username: name,
    };
    let auth = AuthAlgorithm::HmacSha256;
    let key = kuid(PASSWORD.as_bytes()).unwrap();
    assert_eq!(
        *inputs.rakp2_auth_code(auth, &key[..]),
        printed_bytes(&text, "rakp2 mac as computed by the remote console")
    );
    assert_eq!(
        *inputs.rakp3_auth_code(auth, &key[..]),
        printed_bytes(&text, "generated rakp3 mac")
    );
    let sik = inputs.sik(auth, &key[..], None);
    assert_eq!(
        *sik,
        printed_bytes(&text, "Generated session integrity key")
    );
    assert_eq!(
        *derive_k(auth, &sik, 1),
        printed_bytes(&text, "Generated K1")
    );
    assert_eq!(
        *derive_k(auth, &sik, 2),
        printed_bytes(&text, "Generated K2")
    );
}

/// The Python of a virtual environment with pyghmi (see `fencekit_tests::pyenv`).
fn pyghmi_python() -> Option<PathBuf> {
    pyenv::require("pyghmi", PYGHMI, "pyghmi.ipmi.bmc, pyghmi.ipmi.command")
}

/// pyghmi's client: status, off, status; prints one line per result.
const PYGHMI_CLIENT: &str = r#"
import os, sys
from pyghmi.ipmi import command
port = int(sys.argv[1])
c = command.Command(bmc="127.0.0.1", port=port, userid="admin",
                    password=os.environ["BMC_PASSWORD"], keepalive=False)
print("suite-hash", c.ipmi_session.currhashlib.__name__.replace("openssl_", ""))
print("status", c.get_power()["powerstate"])
c.set_power("off", wait=False)
print("after-off", c.get_power()["powerstate"])
c.ipmi_session.logout()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyghmis_client_uses_suite_17_with_our_responder() {
    let Some(python) = pyghmi_python() else {
        return;
    };
    let (addr, bmc) = suite_17_bmc().await;
    let mut command = Command::new(python);
    command
        .args(["-c", PYGHMI_CLIENT])
        .arg(addr.port().to_string())
        .env("BMC_PASSWORD", PASSWORD);
    let out = run(command, None).await;
    assert!(out.status.success(), "{}", out.text());
    // pyghmi tries SHA-256 first; our responder accepts nothing else.
    assert!(out.stdout.contains("suite-hash sha256"), "{}", out.text());
    assert!(out.stdout.contains("status on"), "{}", out.text());
    assert!(out.stdout.contains("after-off off"), "{}", out.text());
    assert_eq!(bmc.lock().unwrap().power(), PowerState::Off);
}

/// pyghmi's BMC server (suite 3) with power kept in memory and mirrored to a file.
const PYGHMI_BMC: &str = r#"
import os, sys
import pyghmi.ipmi.bmc as bmc

class Chassis(bmc.Bmc):
    def __init__(self, state_file, **kwargs):
        super().__init__(**kwargs)
        self.state_file = state_file
        self.set("on")
    def set(self, state):
        self.power = state
        with open(self.state_file + ".new", "w") as f:
            f.write(state + "\n")
        os.replace(self.state_file + ".new", self.state_file)
    def get_power_state(self):
        return self.power
    def power_off(self):
        self.set("off")
    def power_on(self):
        self.set("on")

port, state_file = int(sys.argv[1]), sys.argv[2]
server = Chassis(state_file, authdata={"admin": os.environ["BMC_PASSWORD"]},
                 port=port, address="127.0.0.1")
server.listen()
"#;

fn params(port: u16, cipher: Option<&str>) -> Params {
    use fencekit_core::schema::{validate, Origin, RawParam, Unknown};
    let port = port.to_string();
    let mut pairs = vec![
        ("ip", "127.0.0.1"),
        ("ipport", port.as_str()),
        ("username", "admin"),
        ("password", PASSWORD),
    ];
    if let Some(cipher) = cipher {
        pairs.push(("cipher", cipher));
    }
    let raw: Vec<RawParam> = pairs
        .iter()
        .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
        .collect();
    validate(&[&fencekit_ipmi::SCHEMA], &raw, Unknown::Reject, None)
        .unwrap()
        .params
}

/// Kills the pyghmi BMC by PID when the test ends, also on panic.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_reads_and_switches_pyghmis_bmc_with_suite_3() {
    let Some(python) = pyghmi_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("power");
    let port = ports::free_udp_port().unwrap();
    let _bmc = Child(
        Command::new(python)
            .args(["-c", PYGHMI_BMC])
            .arg(port.to_string())
            .arg(&state)
            .env("BMC_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The server writes its state file once its socket is bound.
    let started = std::time::Instant::now();
    while !state.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pyghmi BMC did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = || std::fs::read_to_string(&state).unwrap().trim().to_string();
    let soon = || Instant::now() + Duration::from_secs(10);
    // pyghmi's server keys sessions by the console's address and port and ignores
    // a new Open Session from a port whose session it closed, so every call gets
    // a fresh switch (a fresh UDP socket). Real BMCs and ipmi_sim need no such care.
    let switch = |cipher: Option<&str>| IpmiSwitch::from_params(&params(port, cipher)).unwrap();
    assert_eq!(
        switch(Some("3"))
            .status(&Plug::Chassis, soon())
            .await
            .unwrap(),
        PowerState::On
    );
    switch(Some("3"))
        .switch(&Plug::Chassis, SwitchTo::Off, soon())
        .await
        .unwrap();
    assert_eq!(read(), "off");
    // The default offer: pyghmi's server answers 17 with suite 3's algorithms;
    // we never take a suite we did not propose, and propose 3 next.
    assert_eq!(
        switch(None).status(&Plug::Chassis, soon()).await.unwrap(),
        PowerState::Off
    );
    switch(None)
        .switch(&Plug::Chassis, SwitchTo::On, soon())
        .await
        .unwrap();
    assert_eq!(read(), "on");
}
