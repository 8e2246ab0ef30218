//! Launcher for OpenIPMI's `ipmi_sim` as a loopback BMC: writes its LAN configuration
//! (one LAN channel on 127.0.0.1, one admin user), its emulator command file and a
//! power program (a small shell script that keeps the chassis power state in a file
//! and logs every call), starts it and waits until it answers an IPMI request.
//!
//! The power program is what makes Chassis Control work: without a `chassis_control`
//! line ipmi_sim refuses power commands yet reports power *off*, so a BMC set up wrong
//! would look fenced. ipmi_sim runs `PROGRAM get power` (expects `power:0|1`) and
//! `PROGRAM set power 0|1` / `set reset 1`; it runs every retransmitted request again,
//! which [`IpmiSim::calls`] lets a test see.

use std::fmt;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{daemon_dir, Daemon};
use crate::{peers, ports, random_hex, HarnessError};

/// How long ipmi_sim may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// One readiness probe's wait for a reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// What the simulated chassis does when told to change power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerProgram {
    /// Switches as told.
    Obey,
    /// Accepts power off and stays on (a BMC that lies); power on works.
    Lie,
    /// Accepts every `set power`, off and on, and never changes.
    Stuck,
    /// Sleeps this many seconds before each `set power`, then switches as told.
    Slow { seconds: u32 },
    /// Answers `set power` at once; the chassis reaches the state this many
    /// milliseconds later (a slow power supply).
    Delayed { ms: u64 },
    /// Like `Delayed`, and `get power` fails meanwhile: the BMC cannot tell.
    Pending { ms: u64 },
    /// Every call of the program fails: the BMC refuses.
    Error,
    /// Every call of the program sleeps far past any deadline: the BMC never answers.
    Hang,
    /// `set power` switches as told, then the program sleeps far past any deadline:
    /// the command took effect and the answer was lost. `get power` hangs too.
    Drop,
}

/// How to set up one simulated BMC.
#[derive(Clone)]
pub struct IpmiSimOptions {
    /// IPMI user name (user 2, admin privilege); at most 16 bytes.
    pub user: String,
    /// Its password; at most 20 bytes. Written only into the LAN configuration file
    /// in the simulator's private temporary directory.
    pub password: String,
    pub power: PowerProgram,
    pub initially_on: bool,
}

impl Default for IpmiSimOptions {
    fn default() -> Self {
        IpmiSimOptions {
            user: "admin".into(),
            password: "fencekit-test-pw".into(),
            power: PowerProgram::Obey,
            initially_on: true,
        }
    }
}

impl fmt::Debug for IpmiSimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmiSimOptions")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("power", &self.power)
            .field("initially_on", &self.initially_on)
            .finish()
    }
}

/// A running ipmi_sim on 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct IpmiSim {
    daemon: Daemon,
    port: u16,
    user: String,
}

const STATE_FILE: &str = "power.state";
const CALLS_FILE: &str = "power.calls";
const PROGRAM_FILE: &str = "power-program";
const EVENTS_FILE: &str = "power.events";

impl IpmiSim {
    /// Starts ipmi_sim on a free UDP port of 127.0.0.1 and waits until it answers
    /// Get Channel Authentication Capabilities.
    pub fn start(options: IpmiSimOptions) -> Result<IpmiSim, HarnessError> {
        let program = peers::find("ipmi_sim").ok_or_else(|| HarnessError::PeerMissing {
            program: "ipmi_sim".into(),
            package: "openipmi".into(),
        })?;
        check_value("user", &options.user, 16)?;
        check_value("password", &options.password, 20)?;
        ports::retry_on_address_in_use(|| start_once(&program, &options))
    }

    /// The UDP port ipmi_sim serves RMCP/RMCP+ on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1 and [`IpmiSim::port`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The configured IPMI user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The chassis power state the power program keeps (true: on).
    pub fn power_state(&self) -> Result<bool, HarnessError> {
        let path = self.daemon.dir().join(STATE_FILE);
        let content = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        match content.trim() {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(HarnessError::BadState { path, content }),
        }
    }

    /// Sets the chassis power state behind ipmi_sim's back (a node powered by hand).
    pub fn set_power(&self, on: bool) -> Result<(), HarnessError> {
        write_state(self.daemon.dir(), on, "power.state.harness")
    }

    /// The power program's record of every `set power` it took, one line each:
    /// `ACCEPTED_MS 1 on|off EFFECTIVE_MS|-` (Unix milliseconds; `-`: never, a
    /// lying BMC), which a test reads to know what the chassis truly did and when.
    pub fn events_file(&self) -> PathBuf {
        self.daemon.dir().join(EVENTS_FILE)
    }

    /// How many times ipmi_sim ran `set power` (any value): proves whether a command
    /// was retransmitted and executed twice.
    pub fn calls(&self) -> Result<usize, HarnessError> {
        Ok(self
            .call_log()?
            .iter()
            .filter(|line| line.contains("set power"))
            .count())
    }

    /// Every call of the power program so far, as its arguments joined by spaces
    /// (`get power`, `set power 0`, `set reset 1`, ...).
    pub fn call_log(&self) -> Result<Vec<String>, HarnessError> {
        let path = self.daemon.dir().join(CALLS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(HarnessError::io(format!("read {}", path.display()), e)),
        }
    }

    /// An `ipmitool` command against this BMC (lanplus, cipher suite 3, this user),
    /// with `-E`: the caller sets `IPMI_PASSWORD` in its environment, so the password
    /// is never in argv. Append the ipmitool command words.
    pub fn ipmitool(&self, ipmitool: &Path, password: &str) -> Command {
        let mut command = Command::new(ipmitool);
        command
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", &self.user, "-E", "-N", "1", "-R", "3"])
            .env("IPMI_PASSWORD", password);
        command
    }

    /// The guard of the ipmi_sim process (PID, directory, log).
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }
}

fn start_once(program: &Path, options: &IpmiSimOptions) -> Result<IpmiSim, HarnessError> {
    let dir = daemon_dir("ipmi_sim")?;
    let port = ports::free_udp_port()?;
    let path = dir.path().to_path_buf();
    let power_program = write_power_program(&path, options.power)?;
    write_state(&path, options.initially_on, "power.state.new")?;
    write_file(
        &path.join("lan.conf"),
        &lan_conf(port, options, &power_program),
    )?;
    write_file(&path.join("cmds.emu"), CMDS_EMU)?;
    let state_dir = path.join("state");
    std::fs::create_dir(&state_dir)
        .map_err(|e| HarnessError::io(format!("create {}", state_dir.display()), e))?;

    let mut command = Command::new(program);
    command
        .arg("-c")
        .arg(path.join("lan.conf"))
        .arg("-f")
        .arg(path.join("cmds.emu"))
        .arg("-s")
        .arg(&state_dir)
        // No console on stdin.
        .arg("-n");
    let mut daemon = Daemon::spawn("ipmi_sim", dir, command)?;
    daemon.wait_ready(Instant::now() + READY_TIMEOUT, |_| {
        get_channel_auth_caps(port)
    })?;
    Ok(IpmiSim {
        daemon,
        port,
        user: options.user.clone(),
    })
}

/// The emulator commands: one BMC at IPMB address 0x20 (values as in OpenIPMI's own
/// examples: device id 0, IPMI 2.0 device with SDRs kept in the state directory).
pub(crate) const CMDS_EMU: &str = "mc_setbmc 0x20\n\
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
mc_enable 0x20\n";

fn lan_conf(port: u16, options: &IpmiSimOptions, power_program: &Path) -> String {
    let auths = "none md2 md5 straight";
    format!(
        "# ipmi_sim LAN configuration written by fencekit-tests (see ipmi_lan(5)).\n\
name \"fencekit\"\n\
set_working_mc 0x20\n\
  startlan 1\n\
    addr 127.0.0.1 {port}\n\
    priv_limit admin\n\
    allowed_auths_callback {auths}\n\
    allowed_auths_user {auths}\n\
    allowed_auths_operator {auths}\n\
    allowed_auths_admin {auths}\n\
    guid {guid}\n\
  endlan\n\
  # Not in ipmi_lan(5): without it Chassis Control answers 0xCC and status says off.\n\
  chassis_control \"{program}\"\n\
user 2 true \"{user}\" \"{password}\" admin 10 {auths}\n",
        guid = random_hex(16),
        program = power_program.display(),
        user = options.user,
        password = options.password,
    )
}

fn write_power_program(dir: &Path, power: PowerProgram) -> Result<PathBuf, HarnessError> {
    let dir_text = dir.to_string_lossy();
    if dir_text.contains(['\'', '"', '\n']) {
        return Err(HarnessError::BadConfigValue {
            peer: "ipmi_sim".into(),
            what: "the temporary directory".into(),
            why: "it contains a quote or newline".into(),
        });
    }
    let (mode, delay, after_ms) = match power {
        PowerProgram::Obey => ("obey", 0, 0),
        PowerProgram::Lie => ("lie", 0, 0),
        PowerProgram::Stuck => ("stuck", 0, 0),
        PowerProgram::Slow { seconds } => ("slow", seconds, 0),
        PowerProgram::Delayed { ms } => ("delayed", 0, ms),
        PowerProgram::Pending { ms } => ("pending", 0, ms),
        PowerProgram::Error => ("error", 0, 0),
        PowerProgram::Hang => ("hang", 0, 0),
        PowerProgram::Drop => ("drop", 0, 0),
    };
    let after_secs = format!("{}.{:03}", after_ms / 1000, after_ms % 1000);
    let script = format!(
        r#"#!/bin/sh
# Power program for ipmi_sim's chassis_control line, written by fencekit-tests.
# Called as `PROGRAM [MC] get power` (answers power:0|1) and
# `PROGRAM [MC] set power|reset|shutdown VALUE`; keeps the state in a file.
dir='{dir_text}'
mode='{mode}'
delay={delay}
echo "$*" >> "$dir/{CALLS_FILE}"
case "$mode" in
hang) exec sleep 600 ;;
error) echo "power program: refused" >&2; exit 1 ;;
esac
while [ $# -gt 0 ] && [ "$1" != get ] && [ "$1" != set ]; do shift; done
set_state() {{
    echo "$1" > "$dir/{STATE_FILE}.new.$$" && mv "$dir/{STATE_FILE}.new.$$" "$dir/{STATE_FILE}"
}}
case "$1 $2" in
"get power")
    case "$mode" in
    pending) echo "power program: state unknown" >&2; exit 1 ;;
    drop) exec sleep 600 ;;
    esac
    echo "power:$(cat "$dir/{STATE_FILE}")"
    ;;
"set power")
    if [ "$delay" -gt 0 ]; then sleep "$delay"; fi
    now=$(date +%s%3N)
    case "$3" in 0) to=off ;; *) to=on ;; esac
    case "$3" in
    0|1)
        case "$mode" in
        stuck) echo "$now 1 $to -" >> "$dir/{EVENTS_FILE}" ;;
        lie)
            # A lying BMC accepts off and stays on.
            if [ "$3" = 1 ]; then set_state 1; echo "$now 1 $to $now" >> "$dir/{EVENTS_FILE}"
            else echo "$now 1 $to -" >> "$dir/{EVENTS_FILE}"; fi
            ;;
        delayed|pending)
            echo "$now 1 $to $((now + {after_ms}))" >> "$dir/{EVENTS_FILE}"
            ( sleep {after_secs}; set_state "$3" ) </dev/null >/dev/null 2>&1 &
            ;;
        *)
            set_state "$3"
            echo "$now 1 $to $now" >> "$dir/{EVENTS_FILE}"
            ;;
        esac
        ;;
    esac
    if [ "$mode" = drop ]; then exec sleep 600; fi
    ;;
esac
exit 0
"#
    );
    let path = dir.join(PROGRAM_FILE);
    write_file(&path, &script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| HarnessError::io(format!("make {} executable", path.display()), e))?;
    Ok(path)
}

/// Replaces the state file atomically (write, then rename), so the power program
/// never reads a half-written state.
fn write_state(dir: &Path, on: bool, scratch: &str) -> Result<(), HarnessError> {
    let scratch = dir.join(scratch);
    write_file(&scratch, if on { "1\n" } else { "0\n" })?;
    let target = dir.join(STATE_FILE);
    std::fs::rename(&scratch, &target)
        .map_err(|e| HarnessError::io(format!("replace {}", target.display()), e))
}

fn write_file(path: &Path, content: &str) -> Result<(), HarnessError> {
    std::fs::write(path, content)
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// A user name or password must fit IPMI's field and ipmi_sim's quoted config token.
fn check_value(what: &str, value: &str, max: usize) -> Result<(), HarnessError> {
    let why = if value.is_empty() || value.len() > max {
        format!("must be 1 to {max} bytes")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        "must be printable ASCII without quotes, backslashes or spaces".to_owned()
    } else {
        return Ok(());
    };
    Err(HarnessError::BadConfigValue {
        peer: "ipmi_sim".into(),
        what: what.into(),
        why,
    })
}

/// The readiness probe: one pre-session Get Channel Authentication Capabilities
/// (IPMI v2.0 §22.13) in an IPMI 1.5 session-less wrapper (§13.6), answered with
/// completion code 0 only once the BMC's MC is enabled.
fn get_channel_auth_caps(port: u16) -> Result<(), String> {
    let request = get_channel_auth_caps_request();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    socket
        .connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| format!("set timeout: {e}"))?;
    socket.send(&request).map_err(|e| format!("send: {e}"))?;
    let mut reply = [0u8; 128];
    let len = socket
        .recv(&mut reply)
        .map_err(|e| format!("no reply: {e}"))?;
    check_auth_caps_reply(&reply[..len])
}

fn get_channel_auth_caps_request() -> Vec<u8> {
    // rsAddr BMC, netFn App (0x06) << 2, then rqAddr, rqSeq/LUN, command 0x38, data:
    // channel 0x0E (this one) with bit 7 asking for IPMI v2.0 data, privilege admin.
    let header = [0x20u8, 0x18];
    let body = [0x81u8, 0x00, 0x38, 0x8e, 0x04];
    let mut message = Vec::new();
    message.extend_from_slice(&header);
    message.push(checksum(&header));
    message.extend_from_slice(&body);
    message.push(checksum(&body));
    let mut packet = vec![
        0x06, 0x00, 0xff, 0x07, // RMCP v1.0, no ACK, class IPMI
        0x00, // auth type none
        0x00, 0x00, 0x00, 0x00, // session sequence
        0x00, 0x00, 0x00, 0x00, // session ID
    ];
    packet.push(message.len() as u8);
    packet.extend_from_slice(&message);
    packet
}

fn check_auth_caps_reply(reply: &[u8]) -> Result<(), String> {
    // 4 RMCP + 10 session header bytes, then rqAddr, netFn, chk, rsAddr, seq, cmd, cc.
    match reply {
        [0x06, _, _, 0x07, rest @ ..] if rest.len() >= 17 && rest[15] == 0x38 => match rest[16] {
            0x00 => Ok(()),
            cc => Err(format!("completion code {cc:#04x}")),
        },
        _ => Err(format!("unexpected reply {reply:02x?}")),
    }
}

/// The IPMB two's-complement checksum (IPMI v2.0 §13.8).
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_request_is_the_datagram_ipmitool_would_send() {
        assert_eq!(
            get_channel_auth_caps_request(),
            [
                0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x20, 0x18, 0xc8, 0x81,
                0x00, 0x38, 0x8e, 0x04, 0xb5
            ]
        );
    }

    #[test]
    fn a_reply_with_completion_code_zero_means_ready() {
        // Captured from ipmi_sim 2.0.33.
        let reply = [
            0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x81, 0x1c, 0x63, 0x20,
            0x00, 0x38, 0x00, 0x01, 0x97, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0x09,
        ];
        assert_eq!(check_auth_caps_reply(&reply), Ok(()));
        let mut refused = reply;
        refused[20] = 0xc1;
        assert!(check_auth_caps_reply(&refused).is_err());
        assert!(check_auth_caps_reply(&reply[..10]).is_err());
    }

    #[test]
    fn user_names_and_passwords_that_would_break_the_config_are_refused() {
        assert!(check_value("user", "admin", 16).is_ok());
        assert!(check_value("user", "", 16).is_err());
        assert!(check_value("user", "a\"b", 16).is_err());
        assert!(check_value("password", "two words", 20).is_err());
        assert!(check_value("password", &"x".repeat(21), 20).is_err());
    }

    #[test]
    fn options_debug_hides_the_password() {
        let options = IpmiSimOptions {
            password: "hunter2-secret".into(),
            ..IpmiSimOptions::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
