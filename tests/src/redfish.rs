//! Redfish services on loopback over HTTPS: DMTF's `sushy-emulator` (PyPI
//! `sushy-tools`, in a virtual environment of its own) with its fake system driver
//! and htpasswd authentication, and [`Responder`], a small service of ours that
//! switches at once or misbehaves on purpose. Both serve a certificate from a CA the
//! harness makes per service ([`Tls`]), so a test can verify it, or not trust it.
//!
//! The oracle reads each service's own truth: sushy's systems through its REST API
//! with `curl` (an independent client), the responder's state file and request log.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{daemon_dir, Daemon};
use crate::{peers, ports, pyenv, tool, HarnessError};

/// The sushy-tools release the tests were written against.
pub const SUSHY_TOOLS: &str = "sushy-tools==2.2.0";
/// The account both services accept.
pub const USER: &str = "fencekit";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// A CA and a server certificate it signed for 127.0.0.1 and `localhost`, or a
/// self-signed server certificate, in `dir`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA's certificate (PEM): what a client trusts with `ssl_ca_file`.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// Makes the certificates with `openssl`. `self_signed`: the server certificate
    /// signs itself, and `ca` is that certificate.
    pub fn make(dir: &Path, self_signed: bool) -> Result<Tls, HarnessError> {
        let openssl = peers::find("openssl").ok_or_else(|| HarnessError::PeerMissing {
            program: "openssl".into(),
            package: "openssl".into(),
        })?;
        let san = "subjectAltName=IP:127.0.0.1,DNS:localhost";
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        let run = |args: &[&str]| {
            let mut command = Command::new(&openssl);
            command.args(args);
            tool::run_ok(command, None, TOOL_TIMEOUT).map(|_| ())
        };
        let path = |p: &Path| p.display().to_string();
        if self_signed {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=localhost",
                "-addext",
                san,
                "-keyout",
                &path(&key),
                "-out",
                &path(&cert),
            ])?;
            return Ok(Tls {
                ca: cert.clone(),
                cert,
                key,
            });
        }
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        let csr = dir.join("server.csr");
        let ext = dir.join("server.ext");
        std::fs::write(&ext, format!("{san}\n"))
            .map_err(|e| HarnessError::io(format!("write {}", ext.display()), e))?;
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=fencekit test CA",
            "-keyout",
            &path(&ca_key),
            "-out",
            &path(&ca),
        ])?;
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path(&key),
            "-out",
            &path(&csr),
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &path(&csr),
            "-CA",
            &path(&ca),
            "-CAkey",
            &path(&ca_key),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            &path(&ext),
            "-out",
            &path(&cert),
        ])?;
        Ok(Tls { ca, cert, key })
    }
}

impl Tls {
    /// One CA-signed set for every responder, kept in the cargo target directory
    /// (key generation is the slowest part of starting one) and made once.
    pub fn shared() -> Result<Tls, HarnessError> {
        static SHARED: std::sync::OnceLock<Result<Tls, String>> = std::sync::OnceLock::new();
        let made = SHARED.get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // TARGET/PROFILE/deps/TEST: keep the certificates in TARGET.
            let target = exe.ancestors().nth(3).ok_or("no target directory")?;
            let dir = target.join("fencekit-redfish-tls");
            let tls = |dir: &Path| Tls {
                ca: dir.join("ca.pem"),
                cert: dir.join("server.pem"),
                key: dir.join("server.key"),
            };
            if dir.join("server.pem").is_file() {
                return Ok(tls(&dir));
            }
            // Made aside and renamed into place: another test binary may race.
            let aside = target.join(format!("fencekit-redfish-tls.{}", std::process::id()));
            std::fs::create_dir_all(&aside).map_err(|e| e.to_string())?;
            Tls::make(&aside, false).map_err(|e| e.to_string())?;
            if std::fs::rename(&aside, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&aside);
            }
            Ok(tls(&dir))
        });
        made.clone().map_err(|why| HarnessError::BadConfigValue {
            what: "certificates".into(),
            peer: "redfish".into(),
            why,
        })
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> Result<(), String> {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// One system of sushy's fake driver.
#[derive(Debug, Clone)]
pub struct FakeSystem {
    pub uuid: String,
    pub name: String,
    pub on: bool,
}

/// How to set up sushy-emulator.
#[derive(Debug, Clone)]
pub struct SushyOptions {
    pub systems: Vec<FakeSystem>,
    pub password: String,
    pub self_signed: bool,
}

impl Default for SushyOptions {
    fn default() -> Self {
        SushyOptions {
            systems: vec![FakeSystem {
                uuid: "7a4a8a3c-0e4f-4d0a-9d4e-5f5d0a6c1e01".into(),
                name: "node1".into(),
                on: true,
            }],
            password: "redfish-pw-7Qx".into(),
            self_signed: false,
        }
    }
}

/// A running sushy-emulator (fake driver) on 127.0.0.1 over HTTPS.
#[derive(Debug)]
pub struct Sushy {
    daemon: Daemon,
    port: u16,
    tls: Tls,
    password: String,
}

impl Sushy {
    /// The Python of the sushy-tools environment, or `None` after a loud skip.
    pub fn require() -> Option<PathBuf> {
        pyenv::require("sushy", SUSHY_TOOLS, "sushy_tools.emulator.main, bcrypt")
    }

    /// Starts sushy-emulator with `python` (from [`Sushy::require`]).
    pub fn start(python: &Path, options: &SushyOptions) -> Result<Sushy, HarnessError> {
        ports::retry_on_address_in_use(|| Sushy::start_once(python, options))
    }

    fn start_once(python: &Path, options: &SushyOptions) -> Result<Sushy, HarnessError> {
        let dir = daemon_dir("sushy")?;
        let path = dir.path().to_path_buf();
        let tls = Tls::make(&path, options.self_signed)?;
        // sushy reads bcrypt entries only; the password goes to the hash on stdin.
        let mut hash = Command::new(python);
        hash.args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(4)).decode())",
        ]);
        let hashed = tool::run_ok(hash, Some(options.password.as_bytes()), TOOL_TIMEOUT)?;
        write(
            &path.join("htpasswd"),
            &format!("{USER}:{}\n", hashed.stdout.trim()),
        )?;
        let systems: Vec<String> = options
            .systems
            .iter()
            .map(|s| {
                format!(
                    "{{'uuid': {:?}, 'name': {:?}, 'power_state': {:?}, \
                     'external_notifier': False, 'nics': []}}",
                    s.uuid,
                    s.name,
                    if s.on { "On" } else { "Off" }
                )
            })
            .collect();
        write(
            &path.join("sushy.conf"),
            &format!(
                "SUSHY_EMULATOR_AUTH_FILE = {:?}\nSUSHY_EMULATOR_STATE_DIR = {:?}\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
                path.join("htpasswd").display().to_string(),
                path.join("state").display().to_string(),
                systems.join(", ")
            ),
        )?;
        let port = ports::free_tcp_port()?;
        let program = python.with_file_name("sushy-emulator");
        let mut command = Command::new(program);
        command
            .arg("--config")
            .arg(path.join("sushy.conf"))
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .arg("--ssl-certificate")
            .arg(&tls.cert)
            .arg("--ssl-key")
            .arg(&tls.key);
        let mut daemon = Daemon::spawn("sushy", dir, command)?;
        daemon.wait_ready(Instant::now() + READY_TIMEOUT, |_| accepts(port))?;
        Ok(Sushy {
            daemon,
            port,
            tls,
            password: options.password.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// `PowerState` of system `uuid` as sushy reports it, read with curl (the
    /// password on curl's stdin, never its argv). Reading also lets sushy apply a
    /// pending change that is due, as any client's read does.
    pub fn power_state(&self, uuid: &str) -> Result<String, HarnessError> {
        let body = curl_get(
            self.port,
            &self.tls.ca,
            &self.password,
            &format!("/redfish/v1/Systems/{uuid}"),
        )?;
        Ok(power_state_of(&body))
    }

    /// Polls [`Sushy::power_state`] until it is `want` or `within` passes; the last
    /// state read.
    pub fn wait_power(
        &self,
        uuid: &str,
        want: &str,
        within: Duration,
    ) -> Result<String, HarnessError> {
        let until = Instant::now() + within;
        loop {
            let state = self.power_state(uuid)?;
            if state == want || Instant::now() >= until {
                return Ok(state);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The resets sushy was asked for, from its request log
    /// (`POST /redfish/v1/Systems/ID/Actions/ComputerSystem.Reset`), one per line.
    pub fn resets(&self) -> Vec<String> {
        self.daemon
            .log()
            .lines()
            // werkzeug colours the request line: match its words, not its quotes.
            .filter(|l| l.contains("POST /") && l.contains("ComputerSystem.Reset"))
            .map(str::to_owned)
            .collect()
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

/// GETs `path` with curl: the credentials and the CA on its stdin (`-K -`).
fn curl_get(port: u16, ca: &Path, password: &str, path: &str) -> Result<String, HarnessError> {
    curl(port, ca, password, path, None)
}

/// Runs curl against 127.0.0.1:`port`: GET `path`, or POST `body` to it; the
/// credentials and the CA on its stdin (`-K -`), never its argv.
fn curl(
    port: u16,
    ca: &Path,
    password: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, HarnessError> {
    let curl = peers::find("curl").ok_or_else(|| HarnessError::PeerMissing {
        program: "curl".into(),
        package: "curl".into(),
    })?;
    let mut config = format!(
        "user = \"{USER}:{password}\"\ncacert = \"{}\"\nurl = \"https://127.0.0.1:{port}{path}\"\n",
        ca.display()
    );
    if let Some(body) = body {
        config.push_str(&format!(
            "header = \"Content-Type: application/json\"\ndata = \"{}\"\n",
            body.replace('"', "\\\"")
        ));
    }
    let mut command = Command::new(curl);
    command.args(["-sS", "--fail", "--max-time", "10", "-K", "-"]);
    Ok(tool::run_ok(command, Some(config.as_bytes()), TOOL_TIMEOUT)?.stdout)
}

/// The `PowerState` string of a system resource's JSON, or `?` when absent.
fn power_state_of(body: &str) -> String {
    string_field(body, "PowerState").unwrap_or_else(|| "?".into())
}

/// The string value of the first `"key": "value"` in a JSON text, whatever the
/// spacing (sushy and Python's json module put a space after the colon, serde none).
fn string_field(body: &str, key: &str) -> Option<String> {
    let marker = format!("\"{key}\"");
    let at = body.find(&marker)?;
    let rest = body[at + marker.len()..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// How the responder behaves (see `redfish_responder.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Obey,
    /// Accepts ForceOff and stays On.
    Liar,
    /// Accepts every reset and never changes.
    Stuck,
    /// Every request answered with this HTTP status.
    Status(u16),
    /// Only the reset answered with this status.
    PostStatus(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Reads requests, never answers.
    Hang,
    NoPowerState,
    /// ForceOff leaves the system `PoweringOff` for good.
    PoweringOff,
    /// Every change reads `PoweringOff`/`PoweringOn` this many milliseconds first.
    Pending(u64),
    /// A reset takes effect and is never answered, nor is anything after it.
    Drop,
    /// The Systems collection lists one member per page (`Members@odata.nextLink`).
    Paged,
    /// The Systems collection declares every member but lists only the first.
    ShortList,
}

impl Mode {
    fn arg(&self) -> String {
        match self {
            Mode::Obey => "obey".into(),
            Mode::Liar => "liar".into(),
            Mode::Stuck => "stuck".into(),
            Mode::Status(code) => format!("status:{code}"),
            Mode::PostStatus(code) => format!("post-status:{code}"),
            Mode::Garbage => "garbage".into(),
            Mode::Hang => "hang".into(),
            Mode::NoPowerState => "no-power-state".into(),
            Mode::PoweringOff => "powering-off".into(),
            Mode::Pending(ms) => format!("pending:{ms}"),
            Mode::Drop => "drop".into(),
            Mode::Paged => "paged".into(),
            Mode::ShortList => "short-list".into(),
        }
    }
}

/// How to set up the responder.
#[derive(Debug, Clone)]
pub struct ResponderOptions {
    pub mode: Mode,
    /// System Ids, each starting On.
    pub systems: Vec<String>,
    pub password: String,
    /// How long a power change takes.
    pub delay: Duration,
    pub initially_on: bool,
}

impl Default for ResponderOptions {
    fn default() -> Self {
        ResponderOptions {
            mode: Mode::Obey,
            systems: vec!["System.Embedded.1".into()],
            password: "responder-pw-4Kd".into(),
            delay: Duration::ZERO,
            initially_on: true,
        }
    }
}

/// Our Redfish service (`redfish_responder.py`, run by Debian's python3).
#[derive(Debug)]
pub struct Responder {
    daemon: Daemon,
    port: u16,
    tls: Tls,
    password: String,
}

const RESPONDER: &str = include_str!("redfish_responder.py");
const EVENTS_FILE: &str = "events.log";

impl Responder {
    pub fn start(options: &ResponderOptions) -> Result<Responder, HarnessError> {
        ports::retry_on_address_in_use(|| Responder::start_once(options))
    }

    fn start_once(options: &ResponderOptions) -> Result<Responder, HarnessError> {
        let python = peers::find("python3").ok_or_else(|| HarnessError::PeerMissing {
            program: "python3".into(),
            package: "python3".into(),
        })?;
        let dir = daemon_dir("redfish")?;
        let path = dir.path().to_path_buf();
        let tls = Tls::shared()?;
        write(&path.join("responder.py"), RESPONDER)?;
        write(&path.join("password"), &options.password)?;
        let port = ports::free_tcp_port()?;
        let mut command = Command::new(python);
        command
            .arg(path.join("responder.py"))
            .args([
                "--port",
                &port.to_string(),
                "--user",
                USER,
                "--mode",
                &options.mode.arg(),
            ])
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key)
            .arg("--password-file")
            .arg(path.join("password"))
            .arg("--state")
            .arg(path.join("state.json"))
            .arg("--requests")
            .arg(path.join("requests.log"))
            .arg("--events")
            .arg(path.join(EVENTS_FILE))
            .args(["--initial", if options.initially_on { "On" } else { "Off" }])
            .args(["--systems", &options.systems.join(",")])
            .args(["--delay-ms", &options.delay.as_millis().to_string()]);
        let mut daemon = Daemon::spawn("redfish", dir, command)?;
        daemon.wait_ready(Instant::now() + READY_TIMEOUT, |d| {
            if d.log().contains("ready") {
                accepts(port)
            } else {
                Err("not ready yet".into())
            }
        })?;
        Ok(Responder {
            daemon,
            port,
            tls,
            password: options.password.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The true `PowerState` of system `id`, from the responder's state file.
    pub fn power_state(&self, id: &str) -> Result<String, HarnessError> {
        let path = self.daemon.dir().join("state.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        string_field(&text, id).ok_or(HarnessError::BadState {
            path,
            content: text.clone(),
        })
    }

    /// Switches system `id` on through the service's own API (curl, not fencekit),
    /// and waits until it reads on.
    pub fn switch_on(&self, id: &str) -> Result<(), HarnessError> {
        curl(
            self.port,
            &self.tls.ca,
            &self.password,
            &format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"),
            Some(r#"{"ResetType": "On"}"#),
        )?;
        let until = Instant::now() + Duration::from_secs(10);
        while self.power_state(id)? != "On" && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The responder's record of every reset that changes power, one line each:
    /// `ACCEPTED_MS SYSTEM_NUMBER on|off EFFECTIVE_MS|-` (`-`: never, a lie).
    pub fn events_file(&self) -> PathBuf {
        self.daemon.dir().join(EVENTS_FILE)
    }

    /// Every request so far: `METHOD PATH conn=CLIENT_PORT BODY`, one per line.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.daemon.dir().join("requests.log"))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// How many TCP connections the requests from the `from`-th on came on (their
    /// client ports).
    pub fn connections(&self, from: usize) -> usize {
        let ports: std::collections::BTreeSet<String> = self
            .requests()
            .iter()
            .skip(from)
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("conn="))
                    .map(str::to_owned)
            })
            .collect();
        ports.len()
    }

    /// The resets asked for: the `ResetType` of every reset POST, in order.
    pub fn resets(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|l| l.starts_with("POST ") && l.contains("ComputerSystem.Reset"))
            .map(|l| string_field(l, "ResetType").unwrap_or_else(|| l.clone()))
            .collect()
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_state_is_read_from_a_system_resource() {
        assert_eq!(power_state_of(r#"{"Id": "1", "PowerState": "Off"}"#), "Off");
        assert_eq!(
            power_state_of(r#"{"PowerState" :  "PoweringOn" }"#),
            "PoweringOn"
        );
        assert_eq!(power_state_of("{}"), "?");
        assert_eq!(
            string_field(r#"POST /x {"ResetType":"ForceOff"}"#, "ResetType").as_deref(),
            Some("ForceOff")
        );
    }
}
