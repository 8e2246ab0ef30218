//! A switch for fabric-fencing tests made of real Linux interfaces: a network
//! namespace of the test's own holding veth pairs, and net-snmp's `snmpd` running in
//! it, serving its own IF-MIB (ifTable, ifXTable) of those interfaces on the
//! namespace's 127.0.0.1:161, so that a SET of ifAdminStatus really takes a link down.
//! No emulator: the port is the kernel's. The truth about a port is read with
//! `ip -n NS link show` ([`Fabric::is_up`]), never through SNMP.
//!
//! Dropping the guard undoes everything, also while a failing test unwinds: snmpd is
//! killed by PID (its own process group), the namespace deleted (the veths go with
//! it), and `/run/netns` unmounted and removed when this process's fabrics made
//! it and the last of them leaves it empty. Nothing is ever configured in the root namespace. Needs root.
//!
//! [`Netns`] is that namespace alone, for tests that need a device on its standard
//! port (a telnet console on 23, which cluster-glue's `baytech` cannot be told to
//! leave) without touching the machine's own.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::daemon::{daemon_dir, Daemon};
use crate::snmpd::{discovery_probe_on, snmpd_conf, SnmpdOptions};
use crate::system::PathLock;
use crate::tool::{self, ToolOutput};
use crate::{peers, random_hex, HarnessError};

/// Where snmpd listens inside the namespace: the standard port, so that a default
/// `ipport` reaches it.
pub const PORT: u16 = 161;

const RUN_NETNS: &str = "/run/netns";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to set up one switch.
#[derive(Debug, Clone)]
pub struct FabricOptions {
    /// veth pairs made in the namespace, (name, peer's name), all set up. Each name
    /// becomes an interface of snmpd's IF-MIB, ifDescr and ifName alike.
    pub pairs: Vec<(String, String)>,
    /// Communities and SNMPv3 users (accepted from 127.0.0.1, as the namespace's
    /// clients are); `pass_persist` must be empty where there are veth pairs (the
    /// IF-MIB is snmpd's own); without pairs the namespace is an agent on port 161
    /// for whatever `pass_persist` serves.
    pub snmpd: SnmpdOptions,
}

/// A running switch; torn down when dropped.
pub struct Fabric {
    snmpd: Option<Daemon>,
    // Dropped after snmpd (see `Drop`): it must not outlive the interfaces it serves.
    netns: Netns,
}

/// A network namespace of the test's own, its loopback up; deleted when dropped
/// (every interface in it goes with it), also while a failing test unwinds. Programs
/// run in it by [`Netns::command`]; nothing is configured in the root namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// The fabrics of this process alive now, and whether `/run/netns` was made by one
/// of them (then the last one removes it, once no namespace is left in it).
/// Tests run in parallel threads: the guard that made the directory is not always
/// the last to go.
struct RunNetnsUsers {
    live: usize,
    made: bool,
}

static RUN_NETNS_USERS: Mutex<RunNetnsUsers> = Mutex::new(RunNetnsUsers {
    live: 0,
    made: false,
});

fn run_netns_users() -> MutexGuard<'static, RunNetnsUsers> {
    RUN_NETNS_USERS.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("netns", &self.netns.name)
            .field("snmpd", &self.snmpd)
            .finish()
    }
}

impl Fabric {
    /// Makes the namespace and its veth pairs, starts snmpd in it and waits until it
    /// answers.
    pub fn start(options: FabricOptions) -> Result<Fabric, HarnessError> {
        let snmpd = peers::find("snmpd").ok_or_else(|| HarnessError::PeerMissing {
            program: "snmpd".into(),
            package: "snmpd".into(),
        })?;
        if !options.snmpd.pass_persist.is_empty() && !options.pairs.is_empty() {
            return Err(HarnessError::BadConfigValue {
                peer: "snmpd".into(),
                what: "pass_persist".into(),
                why: "a fabric with interfaces serves snmpd's own IF-MIB only".into(),
            });
        }
        let config = snmpd_conf(&options.snmpd)?;
        // From here on the guard owns the namespace: a failure below drops it.
        let mut fabric = Fabric {
            netns: Netns::create("fkif")?,
            snmpd: None,
        };
        for (name, peer) in &options.pairs {
            fabric.ip_in(&[
                "link", "add", "name", name, "type", "veth", "peer", "name", peer,
            ])?;
            fabric.ip_in(&["link", "set", name, "up"])?;
            fabric.ip_in(&["link", "set", peer, "up"])?;
        }
        fabric.snmpd = Some(fabric.start_snmpd(&snmpd, &config)?);
        Ok(fabric)
    }

    fn start_snmpd(&self, program: &Path, config: &str) -> Result<Daemon, HarnessError> {
        let dir = daemon_dir("snmpd-fabric")?;
        let path = dir.path().to_path_buf();
        let conf = path.join("snmpd.conf");
        std::fs::write(&conf, config)
            .map_err(|e| HarnessError::io(format!("write {}", conf.display()), e))?;
        let mibs = path.join("mibs");
        std::fs::create_dir(&mibs)
            .map_err(|e| HarnessError::io(format!("create {}", mibs.display()), e))?;
        // `nsenter --net` execs snmpd in the namespace (no mount namespace, unlike
        // `ip netns exec`): the child's PID is snmpd's, and the guard kills it by it.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program)
            // Foreground, log to stdout, no system configuration files, only ours.
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(path.join("snmpd.pid"))
            .arg(format!("udp:127.0.0.1:{PORT}"))
            // Nothing of the test's environment: the agent needs only where to keep
            // its persistent files, and no MIB files.
            .env_clear()
            .env("SNMP_PERSISTENT_DIR", path.join("persist"))
            .env("MIBDIRS", &mibs)
            .env("MIBS", "");
        let mut daemon = Daemon::spawn("snmpd", dir, command)?;
        let netns = self.netns_path();
        daemon.wait_ready(Instant::now() + READY_TIMEOUT, |_| {
            let socket = udp_socket_in(&netns)?;
            discovery_probe_on(&socket, PORT)
        })?;
        Ok(daemon)
    }

    /// The namespace's name (`ip netns` list).
    pub fn netns(&self) -> &str {
        self.netns.name()
    }

    /// `/run/netns/NAME`, what `nsenter --net=` and `setns` take.
    pub fn netns_path(&self) -> PathBuf {
        self.netns.path()
    }

    /// snmpd's guard (PID, directory, log).
    pub fn snmpd(&self) -> Option<&Daemon> {
        self.snmpd.as_ref()
    }

    /// A command running `program` inside the namespace (`nsenter --net`), so that
    /// 127.0.0.1:161 is this switch's snmpd.
    pub fn command(&self, program: &Path) -> Command {
        self.netns.command(program)
    }

    /// The oracle: whether interface `dev` is administratively up, from the kernel
    /// (`ip -o link show`: the UP flag), never from SNMP.
    pub fn is_up(&self, dev: &str) -> Result<bool, HarnessError> {
        let out = self.ip_in(&["-o", "link", "show", "dev", dev])?;
        let flags = out
            .stdout
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(flags, _)| flags.to_owned())
            .ok_or_else(|| HarnessError::Refused {
                what: format!("read the flags of {dev}"),
                why: format!("`ip -o link show` printed {:?}", out.stdout),
            })?;
        Ok(flags.split(',').any(|flag| flag == "UP"))
    }

    /// Sets interface `dev` up or down from the kernel's side (to reset a test's
    /// starting state; never the thing under test).
    pub fn set_up(&self, dev: &str, up: bool) -> Result<(), HarnessError> {
        self.ip_in(&["link", "set", "dev", dev, if up { "up" } else { "down" }])
            .map(|_| ())
    }

    /// The ifIndex of interface `dev` (the kernel's, which net-snmp serves as is).
    pub fn if_index(&self, dev: &str) -> Result<u32, HarnessError> {
        let out = self.ip_in(&["-o", "link", "show", "dev", dev])?;
        out.stdout
            .split_once(':')
            .and_then(|(index, _)| index.trim().parse().ok())
            .ok_or_else(|| HarnessError::Refused {
                what: format!("read the ifIndex of {dev}"),
                why: format!("`ip -o link show` printed {:?}", out.stdout),
            })
    }

    fn ip_in(&self, args: &[&str]) -> Result<ToolOutput, HarnessError> {
        self.netns.ip(args)
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // snmpd first: it must not outlive the interfaces it serves.
        self.snmpd = None;
    }
}

impl Netns {
    /// Makes namespace `PREFIX-<random>` and sets its loopback up.
    pub fn create(prefix: &str) -> Result<Netns, HarnessError> {
        let name = format!("{prefix}-{}", random_hex(4));
        {
            let _lock = PathLock::acquire(Path::new(RUN_NETNS))?;
            let mut users = run_netns_users();
            // Also while other namespaces of this process live: another process
            // may have removed the directory meanwhile, and then this one makes it.
            if !Path::new(RUN_NETNS).exists() {
                users.made = true;
            }
            ip(&["netns", "add", &name])?;
            users.live += 1;
        }
        // From here on the guard owns the namespace: a failure below drops it.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name (`ip netns` list).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, what `nsenter --net=` and `setns` take.
    pub fn path(&self) -> PathBuf {
        Path::new(RUN_NETNS).join(&self.name)
    }

    /// A command running `program` inside the namespace (`nsenter --net`: unlike
    /// `ip netns exec`, no mount namespace, and the child's PID is the program's).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        command
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<ToolOutput, HarnessError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A TCP connection to `127.0.0.1:port` inside the namespace, made by a thread
    /// of our own that enters it (this thread never leaves the root namespace).
    pub fn connect_loopback(&self, port: u16) -> Result<std::net::TcpStream, String> {
        let netns = self.path();
        std::thread::spawn(move || {
            enter(&netns)?;
            std::net::TcpStream::connect_timeout(
                &(Ipv4Addr::LOCALHOST, port).into(),
                Duration::from_millis(300),
            )
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))
        })
        .join()
        .map_err(|_| "the thread entering the namespace panicked".to_string())?
    }

    fn teardown(&mut self) {
        // Deleted even when the lock cannot be had: a namespace must not outlive
        // its test.
        let lock = PathLock::acquire(Path::new(RUN_NETNS));
        let _ = ip(&["netns", "del", &self.name]);
        let mut users = run_netns_users();
        users.live = users.live.saturating_sub(1);
        if users.live == 0 && users.made && lock.is_ok() {
            users.made = false;
            let empty = std::fs::read_dir(RUN_NETNS).is_ok_and(|mut d| d.next().is_none());
            if empty {
                let mut command = Command::new("umount");
                command.arg(RUN_NETNS);
                let _ = tool::run(command, None, IP_TIMEOUT);
                let _ = std::fs::remove_dir(RUN_NETNS);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ip(args: &[&str]) -> Result<ToolOutput, HarnessError> {
    let mut command = Command::new("ip");
    command.args(args);
    tool::run_ok(command, None, IP_TIMEOUT)
}

/// A UDP socket bound to 127.0.0.1 inside the namespace at `netns`: a thread of
/// our own enters it, binds, and ends; the socket stays in the namespace it was made
/// in, and this thread never leaves the root namespace.
fn udp_socket_in(netns: &Path) -> Result<UdpSocket, String> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        enter(&netns)?;
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))
    })
    .join()
    .map_err(|_| "the thread entering the namespace panicked".to_string())?
}

/// Moves the calling thread into the namespace at `netns` (for a thread of our own
/// that ends after making its socket).
fn enter(netns: &Path) -> Result<(), String> {
    let file = std::fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("enter {}: {e}", netns.display()))
}
