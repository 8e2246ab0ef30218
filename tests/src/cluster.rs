//! A Pacemaker cluster of several nodes on one machine, fenced through real BMCs: the
//! lab that shows fencekit doing the job it exists for.
//!
//! Each node is a network namespace (its NIC and cable, kept for the lab's life) and,
//! while it is powered, a PID + mount + UTS + IPC namespace whose init runs corosync
//! and pacemakerd with per-node state bind-mounted over the system paths. Killing that
//! init is a real power cut: every daemon of the node dies and its mounts vanish. A
//! bridge in its own namespace is the switch; cutting a node's link is setting its
//! veth down there. One `ipmi_sim` per node, in a BMC namespace, has a
//! `chassis_control` program that cuts and boots the node and logs every power event
//! with a timestamp (the hook log); it can be told to lie (accept off, keep the node
//! on). Optionally the last node is fed by two power supplies, each the chassis of a
//! BMC of its own, which cut the node only when both are off (and either can lie).
//! Addresses are from 198.51.100.0/24 and live only in the lab's namespaces.
//!
//! The cluster fences with `stonith:fence_fencekit_ipmi` (the freshly built agent,
//! linked where Pacemaker looks by the test; `fence_ipmilan` to compare), the node
//! with two supplies through one fencing level holding both, and runs a group with
//! `ocf:fencekit:SANFilesystem` on an ext4 loop device every node sees. Each node
//! has a fixture SAN tree that describes four FC paths to that loop device; a test
//! can cut a node's paths. An oracle outside the cluster samples the mount table of
//! every mount namespace of the machine and records which nodes had the device
//! mounted at once, and how far apart its samples were (a double mount shorter than
//! the longest gap could pass unseen; one sample is a walk of /proc, not an atomic
//! snapshot, and a mount namespace with no process in it is not seen).
//!
//! Everything the lab makes is undone when it is stopped or dropped (also while a
//! failing test unwinds): nodes powered off by their recorded init PID, BMCs ended
//! by PID, the loop device detached, the namespaces deleted, `/run/netns` removed if
//! the lab created it. [`Lab::stop`] then reports what is still there: a process
//! the lab started, a cluster daemon, a namespace, the loop device, a mount,
//! `/run/netns` if it was the lab's. Needs root; holds the same lock as the single-node Pacemaker
//! launcher, so the two never run at once.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::pacemaker::running_cluster_daemons;
use crate::san::San;
use crate::system::PathLock;
use crate::tool::{self, ToolOutput};
use crate::{peers, random_hex, HarnessError};

/// The IPMI user of every lab BMC.
pub const BMC_USER: &str = "admin";
/// The lab's network; nothing else is ever addressed.
const NET: &str = "198.51.100";
/// The BMCs are `.101`..., the nodes `.1`...
const BMC_HOST_BASE: u8 = 100;
/// The service address of the resource group (`IPaddr2`).
pub const SERVICE_ADDR: &str = "198.51.100.50";
/// Where the shared filesystem is mounted inside a node (a directory of the lab).
const MOUNT_DIR: &str = "shared";
/// Inside every node, a link to that node's fixture SAN tree (its `sysfs_root`): the
/// path is the same on every node, the tree behind it is the node's own, because
/// each node's `/run` is a tmpfs of its own.
const SAN_ROOT: &str = "/run/fencekit-san";
/// The paths the fixture gives the shared disk, and the fewest a node may run on.
const SAN_PATHS: &str = "4";
const SAN_MIN_PATHS: &str = "2";
/// How many power supplies feed the node that has two.
const SUPPLIES: usize = 2;

/// Deadline of each command run inside a node (crm_mon, cibadmin, ...).
const NODE_TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of each `ip`, `losetup`, `mkfs` call.
const HOST_TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Cold start to every node online with an elected controller: ~25 s measured here
/// (`dc-deadtime` is still the default 20 s before the CIB is written).
const FORM_TIMEOUT: Duration = Duration::from_secs(150);
/// The stonith devices and the group start within seconds of the CIB update.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a node's processes may take to die after its init was killed.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(20);
/// The BMCs answer within a second of their start.
const BMC_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);
/// The oracle's sampling period: a scan of every process takes ~15 ms here, and a
/// double mount must not slip between two samples (at most `ORACLE_MAX_GAP` apart).
const ORACLE_PERIOD: Duration = Duration::from_millis(10);
/// The longest time allowed between two of the oracle's samples: a double mount
/// shorter than this could pass unseen, so a run whose sampler stalled longer
/// proves nothing.
pub const ORACLE_MAX_GAP: Duration = Duration::from_millis(50);
/// Every fencing device's `power_timeout` (s): a failed attempt ends by it.
pub const DEVICE_POWER_TIMEOUT_S: u64 = 10;

/// One node of the lab.
#[derive(Debug)]
struct Node {
    name: String,
    netns: String,
    /// The bridge-side end of the node's cable.
    port: String,
    dir: PathBuf,
}

impl Node {
    fn addr(&self, index: usize) -> String {
        format!("{NET}.{}", index + 1)
    }

    /// The host PID of the node's init, if the node is powered.
    fn init_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("init.pid")).ok()?;
        let mut words = text.split_whitespace();
        let pid: u32 = words.next()?.parse().ok()?;
        let start: u64 = words.next()?.parse().ok()?;
        (process_start(pid)? == start).then_some(pid)
    }

    /// The host PID of the `unshare` that started the node's init, while it lives
    /// (it ends once the init it waits for is gone).
    fn unshare_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("init.pid")).ok()?;
        let mut words = text.split_whitespace().skip(2);
        let pid: u32 = words.next()?.parse().ok()?;
        let start: u64 = words.next()?.parse().ok()?;
        (process_start(pid)? == start).then_some(pid)
    }
}

/// A power event from the BMC hook's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    /// Unix time in milliseconds.
    pub at_ms: u128,
    pub node: String,
    /// `off` (init killed and gone), `off-failed` (init killed but still alive after
    /// 10 s: the node is NOT off), `on` (booted), `lied-off` (accepted, node kept
    /// on), `already-off`, `already-on`.
    pub what: String,
}

/// How to build the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub nodes: usize,
    /// The fence agent of every device (`fence_fencekit_ipmi`, or `fence_ipmilan` to
    /// compare), where Pacemaker looks: its file name is the device type. Checked to
    /// exist; the lab does not link it itself.
    pub fence_agent: PathBuf,
    /// The `fencekit` OCF provider directory the test has linked where Pacemaker
    /// looks (`ocf:fencekit:SANFilesystem` runs the group's filesystem).
    pub ocf_provider: PathBuf,
    /// The last node is fed by two power supplies, each switched by a BMC of its
    /// own; the node is fenced by one fencing level holding both devices, and its
    /// power is cut only when both supplies are off.
    pub two_supplies: bool,
}

/// One power supply of the node that has two: its BMC's chassis is the supply.
#[derive(Debug)]
struct Supply {
    /// `psu1`, `psu2`.
    name: String,
    /// The node it feeds.
    node: usize,
    dir: PathBuf,
}

/// The running lab; torn down when dropped.
pub struct Lab {
    dir: TempDir,
    tag: String,
    nodes: Vec<Node>,
    bmc_netns: String,
    bridge_netns: String,
    bmcs: Vec<Child>,
    netns_made: Vec<String>,
    /// `/run/netns` did not exist before the lab: it removes it (`made_run_netns`
    /// until done) and checks it is gone (`created_run_netns`, kept).
    made_run_netns: bool,
    created_run_netns: bool,
    /// Every process the lab started (BMCs, every process of a node), recorded
    /// before teardown by PID and start time, to check none of them survived it.
    started: Vec<(u32, u64, String)>,
    loop_device: Option<String>,
    image: PathBuf,
    password: String,
    oracle: Option<Oracle>,
    cut: HashSet<usize>,
    options: LabOptions,
    supplies: Vec<Supply>,
    /// One fixture SAN tree per node (`SAN_ROOT` inside the node).
    sans: Vec<San>,
    // Released last: another cluster may start only after this one is gone.
    _lock: PathLock,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("dir", &self.dir.path())
            .field("tag", &self.tag)
            .field("nodes", &self.nodes)
            .field("loop_device", &self.loop_device)
            .finish()
    }
}

/// The programs the lab runs; `peers::require_all` takes this list.
pub const PEERS: &[(&str, &str)] = &[
    ("corosync", "corosync"),
    ("corosync-cfgtool", "corosync"),
    ("pacemakerd", "pacemaker"),
    ("crm_mon", "pacemaker-cli-utils"),
    ("cibadmin", "pacemaker-cli-utils"),
    ("crm_attribute", "pacemaker-cli-utils"),
    ("stonith_admin", "pacemaker-cli-utils"),
    ("ipmi_sim", "openipmi"),
    ("ipmitool", "ipmitool"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("flock", "util-linux"),
    ("losetup", "mount"),
    ("mkfs.ext4", "e2fsprogs"),
    ("perl", "perl-base"),
    ("pgrep", "procps"),
    // The oracle's sampler runs SCHED_RR: without it the nodes' corosync (SCHED_RR)
    // can hold it off for longer than the 50 ms between samples.
    ("chrt", "util-linux"),
];

impl Lab {
    /// Builds the network, the BMCs and the shared disk, powers every node on, waits
    /// until all are online with a controller, then writes the CIB (properties, one
    /// fencing device per node, the group) and waits until all of it is started.
    pub fn start(options: LabOptions) -> Result<Lab, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HarnessError::NotRoot {
                what: "the cluster lab".into(),
            });
        }
        for (program, package) in PEERS {
            find(program, package)?;
        }
        if options.nodes == 0 {
            return Err(HarnessError::Refused {
                what: "start the cluster lab".into(),
                why: "a cluster needs at least one node".into(),
            });
        }
        for needed in [&options.fence_agent, &options.ocf_provider] {
            if !needed.exists() {
                return Err(HarnessError::Refused {
                    what: "start the cluster lab".into(),
                    why: format!("{} is not there", needed.display()),
                });
            }
        }
        let lock = PathLock::acquire(Path::new("/var/lib/pacemaker"))?;
        let running = running_cluster_daemons();
        if !running.is_empty() {
            return Err(HarnessError::Refused {
                what: "start the cluster lab".into(),
                why: format!("cluster daemons are running: {}", running.join(", ")),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("fencekit-lab-")
            .tempdir()
            .map_err(|e| HarnessError::io("create the lab directory", e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("open the lab directory", e))?;
        let tag = format!("fkl{}", random_hex(2));
        let nodes = (0..options.nodes)
            .map(|i| Node {
                name: format!("node{}", i + 1),
                netns: format!("{tag}-node{}", i + 1),
                port: format!("{tag}-p{}", i + 1),
                dir: dir.path().join(format!("node{}", i + 1)),
            })
            .collect::<Vec<Node>>();
        let supplies = if options.two_supplies {
            let last = nodes.len() - 1;
            (1..=SUPPLIES)
                .map(|k| Supply {
                    name: format!("psu{k}"),
                    node: last,
                    dir: nodes[last].dir.join(format!("psu{k}")),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut lab = Lab {
            image: dir.path().join("shared.img"),
            dir,
            bmc_netns: format!("{tag}-bmc"),
            bridge_netns: format!("{tag}-switch"),
            tag,
            nodes,
            bmcs: Vec::new(),
            netns_made: Vec::new(),
            made_run_netns: !Path::new("/run/netns").exists(),
            created_run_netns: !Path::new("/run/netns").exists(),
            started: Vec::new(),
            loop_device: None,
            password: random_hex(8),
            oracle: None,
            cut: HashSet::new(),
            options,
            supplies,
            sans: Vec::new(),
            _lock: lock,
        };
        lab.build_network()?;
        lab.build_disk()?;
        lab.write_node_files()?;
        lab.build_sans()?;
        lab.start_bmcs()?;
        lab.oracle = Some(Oracle::start(lab.device_number()?, &lab.nodes));
        for i in 0..lab.nodes.len() {
            lab.power_program(i, "1")?;
        }
        lab.wait_formed()?;
        lab.configure()?;
        Ok(lab)
    }

    /// The lab's directory (configuration, logs, hook log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node names, `node1`...
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn index(&self, node: &str) -> Result<usize, HarnessError> {
        self.nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| HarnessError::Refused {
                what: format!("use node {node}"),
                why: "the lab has no such node".into(),
            })
    }

    fn ip(&self, args: &[&str]) -> Result<ToolOutput, HarnessError> {
        let mut command = Command::new("ip");
        command.args(args);
        tool::run_ok(command, None, HOST_TOOL_TIMEOUT)
    }

    fn add_netns(&mut self, name: &str) -> Result<(), HarnessError> {
        self.ip(&["netns", "add", name])?;
        self.netns_made.push(name.to_owned());
        self.ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn build_network(&mut self) -> Result<(), HarnessError> {
        let bridge = self.bridge_netns.clone();
        let bmc = self.bmc_netns.clone();
        self.add_netns(&bridge)?;
        self.ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        self.ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        // The veth pairs are created directly in their namespaces: nothing of the lab
        // ever appears in the root namespace.
        let mut cables: Vec<(String, String, Vec<String>)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            cables.push((
                node.netns.clone(),
                node.port.clone(),
                vec![format!("{}/24", node.addr(i))],
            ));
        }
        cables.push((
            bmc.clone(),
            format!("{}-pb", self.tag),
            (0..self.bmc_count())
                .map(|i| format!("{NET}.{}/24", bmc_host(i)))
                .collect(),
        ));
        for (netns, port, addrs) in cables {
            self.add_netns(&netns)?;
            self.ip(&[
                "link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", &port,
                "netns", &bridge,
            ])?;
            for addr in &addrs {
                self.ip(&["-n", &netns, "addr", "add", addr, "dev", "eth0"])?;
            }
            self.ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            self.ip(&["-n", &bridge, "link", "set", &port, "master", "br0", "up"])?;
        }
        Ok(())
    }

    fn build_disk(&mut self) -> Result<(), HarnessError> {
        let file = std::fs::File::create(&self.image)
            .map_err(|e| HarnessError::io("create the shared disk image", e))?;
        file.set_len(64 << 20)
            .map_err(|e| HarnessError::io("size the shared disk image", e))?;
        drop(file);
        let mut command = Command::new("mkfs.ext4");
        command.args(["-q", "-F"]).arg(&self.image);
        tool::run_ok(command, None, HOST_TOOL_TIMEOUT)?;
        let mut command = Command::new("losetup");
        command.args(["--find", "--show"]).arg(&self.image);
        let out = tool::run_ok(command, None, HOST_TOOL_TIMEOUT)?;
        let device = out.stdout.trim().to_owned();
        if !device.starts_with("/dev/loop") {
            return Err(HarnessError::Refused {
                what: "use the loop device".into(),
                why: format!("losetup answered {device:?}"),
            });
        }
        self.loop_device = Some(device);
        let mount = self.dir.path().join(MOUNT_DIR);
        std::fs::create_dir(&mount).map_err(|e| HarnessError::io("create the mount point", e))?;
        Ok(())
    }

    /// The shared device's `major:minor`, as mountinfo names it.
    fn device_number(&self) -> Result<String, HarnessError> {
        use std::os::unix::fs::MetadataExt;
        let device = self.loop_device.as_deref().unwrap_or_default();
        let meta =
            std::fs::metadata(device).map_err(|e| HarnessError::io(format!("stat {device}"), e))?;
        let rdev = meta.rdev();
        Ok(format!(
            "{}:{}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        ))
    }

    /// The shared block device (`/dev/loopN`).
    pub fn device(&self) -> &str {
        self.loop_device.as_deref().unwrap_or_default()
    }

    fn write_node_files(&self) -> Result<(), HarnessError> {
        let init = self.dir.path().join("node-init");
        write(&init, NODE_INIT, 0o755)?;
        let mut key = vec![0u8; 128];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .map_err(|e| HarnessError::io("read a corosync key", e))?;
        }
        let conf = corosync_conf(
            &self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.as_str(), n.addr(i)))
                .collect::<Vec<_>>(),
        );
        for (i, node) in self.nodes.iter().enumerate() {
            for sub in [
                "corosync-etc",
                "corosync-state",
                "corosync-log",
                "pacemaker-state",
                "pacemaker-log",
            ] {
                std::fs::create_dir_all(node.dir.join(sub))
                    .map_err(|e| HarnessError::io(format!("create {sub}"), e))?;
            }
            write(&node.dir.join("corosync-etc/corosync.conf"), &conf, 0o644)?;
            let key_path = node.dir.join("corosync-etc/authkey");
            std::fs::write(&key_path, &key)
                .and_then(|()| {
                    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400))
                })
                .map_err(|e| HarnessError::io("write the corosync key", e))?;
            let program = power_program(
                &node.name,
                &node.dir,
                Path::new(&format!("/run/netns/{}", node.netns)),
                &format!("{}/24", node.addr(i)),
                &init,
                &self.hook_log_path(),
            );
            write(&node.dir.join("power"), &program, 0o755)?;
        }
        for (k, supply) in self.supplies.iter().enumerate() {
            std::fs::create_dir_all(&supply.dir)
                .map_err(|e| HarnessError::io("create a power supply directory", e))?;
            write(&supply.dir.join("state"), "on\n", 0o644)?;
            let other = &self.supplies[(k + 1) % self.supplies.len()];
            let node = &self.nodes[supply.node];
            let program = supply_program(
                &node.name,
                &supply.name,
                &supply.dir,
                &other.dir,
                &node.dir.join("power"),
                &self.hook_log_path(),
            );
            write(&supply.dir.join("power"), &program, 0o755)?;
        }
        Ok(())
    }

    /// One fixture SAN tree per node: the shared disk's `major:minor` is a
    /// dm-multipath map over four FC paths (two HBAs, two target ports each), and the
    /// tree's mountinfo is the reader's own, so the agent finds the device really
    /// mounted on its directory and judges that device's paths. The node reaches its
    /// tree at `SAN_ROOT`.
    fn build_sans(&mut self) -> Result<(), HarnessError> {
        let devt = self.device_number()?;
        for node in &self.nodes {
            let san = San::new();
            san.four_path_map_numbered(&devt);
            san.real_mountinfo();
            std::os::unix::fs::symlink(san.root(), node.dir.join("san"))
                .map_err(|e| HarnessError::io("link a node's SAN tree", e))?;
            self.sans.push(san);
        }
        Ok(())
    }

    /// Every path of `node`'s SAN goes: both HBAs lose their link, every target port
    /// is blocked (as the kernel reports a cut fabric). The other nodes' paths stay.
    pub fn lose_san_paths(&self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        self.sans[i].lose_all_paths();
        Ok(())
    }

    /// `node`'s SAN paths come back.
    pub fn restore_san_paths(&self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        self.sans[i].restore_all_paths();
        Ok(())
    }

    /// How many BMCs the lab runs: one per node, one per power supply.
    fn bmc_count(&self) -> usize {
        self.nodes.len() + self.supplies.len()
    }

    /// BMC `b`'s label, chassis program and directory.
    fn bmc(&self, b: usize) -> (String, PathBuf, PathBuf) {
        match b.checked_sub(self.nodes.len()) {
            None => {
                let node = &self.nodes[b];
                (
                    node.name.clone(),
                    node.dir.join("power"),
                    node.dir.join("bmc"),
                )
            }
            Some(k) => {
                let supply = &self.supplies[k];
                (
                    format!("{} of {}", supply.name, self.nodes[supply.node].name),
                    supply.dir.join("power"),
                    supply.dir.join("bmc"),
                )
            }
        }
    }

    fn start_bmcs(&mut self) -> Result<(), HarnessError> {
        let ipmi_sim = find("ipmi_sim", "openipmi")?;
        for i in 0..self.bmc_count() {
            let (_, program, bmc_dir) = self.bmc(i);
            std::fs::create_dir_all(bmc_dir.join("state"))
                .map_err(|e| HarnessError::io("create a BMC directory", e))?;
            write(
                &bmc_dir.join("lan.conf"),
                &lan_conf(&format!("{NET}.{}", bmc_host(i)), &self.password, &program),
                0o600,
            )?;
            write(&bmc_dir.join("cmds.emu"), crate::ipmi_sim::CMDS_EMU, 0o644)?;
            let out = std::fs::File::create(bmc_dir.join("ipmi_sim.out"))
                .map_err(|e| HarnessError::io("create the BMC log", e))?;
            let err = out
                .try_clone()
                .map_err(|e| HarnessError::io("duplicate the BMC log", e))?;
            let mut command = Command::new("nsenter");
            // `nsenter --net` alone (not `ip netns exec`, which would also give it a
            // mount namespace of its own) execs ipmi_sim: the child's PID is its PID.
            command
                .arg(format!("--net=/run/netns/{}", self.bmc_netns))
                .arg("--")
                .arg(&ipmi_sim)
                .arg("-c")
                .arg(bmc_dir.join("lan.conf"))
                .arg("-f")
                .arg(bmc_dir.join("cmds.emu"))
                .arg("-s")
                .arg(bmc_dir.join("state"))
                .arg("-n")
                .current_dir(&bmc_dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let child = command
                .spawn()
                .map_err(|e| HarnessError::io("start ipmi_sim", e))?;
            self.bmcs.push(child);
        }
        for i in 0..self.bmc_count() {
            self.wait_until(
                &format!("the BMC of {} answers", self.bmc(i).0),
                BMC_READY_TIMEOUT,
                || {
                    let out = self.ipmitool(i, &["chassis", "power", "status"])?;
                    // Nodes start off; supplies start on.
                    let expected = if i < self.nodes.len() {
                        "Chassis Power is off"
                    } else {
                        "Chassis Power is on"
                    };
                    if out.status.success() && out.stdout.contains(expected) {
                        Ok(())
                    } else {
                        Err(out.text())
                    }
                },
            )?;
        }
        Ok(())
    }

    /// `ipmitool` against BMC `i` (node `i`'s, then the supplies') from the BMC namespace (lanplus, suite 3;
    /// the password in the environment, never in argv).
    pub fn ipmitool(&self, i: usize, words: &[&str]) -> Result<ToolOutput, String> {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.bmc_netns))
            .args(["--", "ipmitool", "-I", "lanplus", "-C", "3", "-H"])
            .arg(format!("{NET}.{}", bmc_host(i)))
            .args(["-U", BMC_USER, "-E", "-N", "1", "-R", "2"])
            .args(words)
            .env("IPMI_PASSWORD", &self.password);
        tool::run(command, None, HOST_TOOL_TIMEOUT).map_err(|e| e.to_string())
    }

    /// Runs node `i`'s chassis program as its BMC would (`set power 0|1`).
    fn power_program(&self, i: usize, value: &str) -> Result<ToolOutput, HarnessError> {
        let mut command = Command::new(self.nodes[i].dir.join("power"));
        command.args(["set", "power", value]);
        tool::run_ok(command, None, HOST_TOOL_TIMEOUT)
    }

    /// Powers `node` on again, as `ipmitool chassis power on` would; a node with two
    /// supplies gets both switched on first.
    pub fn power_on(&self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        for supply in self.supplies.iter().filter(|s| s.node == i) {
            let mut command = Command::new(supply.dir.join("power"));
            command.args(["set", "power", "1"]);
            tool::run_ok(command, None, HOST_TOOL_TIMEOUT)?;
        }
        self.power_program(i, "1").map(drop)
    }

    /// The node fed by two supplies, if the lab has one.
    pub fn two_supply_node(&self) -> Option<String> {
        self.supplies
            .first()
            .map(|s| self.nodes[s.node].name.clone())
    }

    /// The fencing devices of the supplies, in the order of their fencing level.
    pub fn supply_devices(&self) -> Vec<String> {
        self.supplies
            .iter()
            .map(|s| supply_device_id(&self.nodes[s.node].name, &s.name))
            .collect()
    }

    /// Whether each supply is on, from the supplies' own state (the device side).
    pub fn supply_states(&self) -> Vec<bool> {
        self.supplies
            .iter()
            .map(|s| std::fs::read_to_string(s.dir.join("state")).is_ok_and(|t| t.trim() == "on"))
            .collect()
    }

    /// Supply `k` (0-based) accepts off and stays on (`true`), or obeys again.
    pub fn make_supply_lie(&self, k: usize, lie: bool) -> Result<(), HarnessError> {
        let supply = self.supplies.get(k).ok_or_else(|| HarnessError::Refused {
            what: format!("make supply {k} lie"),
            why: "the lab has no such supply".into(),
        })?;
        let path = supply.dir.join("lie");
        if lie {
            write(&path, "", 0o644)
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(HarnessError::io("make a supply obey", e))
                }
                _ => Ok(()),
            }
        }
    }

    /// `node`'s Pacemaker log (the detail log, with milliseconds).
    pub fn pacemaker_log(&self, node: &str) -> Result<String, HarnessError> {
        let i = self.index(node)?;
        let path = self.nodes[i].dir.join("pacemaker-log/pacemaker.log");
        std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))
    }

    /// Whether `node`'s init (its PID namespace) is alive.
    pub fn is_powered(&self, node: &str) -> bool {
        self.index(node)
            .ok()
            .and_then(|i| self.nodes[i].init_pid())
            .is_some()
    }

    /// From now on `node`'s BMC accepts power off and keeps the node running.
    pub fn make_bmc_lie(&self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        write(&self.nodes[i].dir.join("lie"), "", 0o644)
    }

    /// Cuts `node`'s cable: its port on the switch goes down.
    pub fn cut_link(&mut self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        let port = self.nodes[i].port.clone();
        self.ip(&["-n", &self.bridge_netns, "link", "set", &port, "down"])?;
        self.cut.insert(i);
        Ok(())
    }

    /// Plugs `node`'s cable back in.
    pub fn restore_link(&mut self, node: &str) -> Result<(), HarnessError> {
        let i = self.index(node)?;
        let port = self.nodes[i].port.clone();
        self.ip(&["-n", &self.bridge_netns, "link", "set", &port, "up"])?;
        self.cut.remove(&i);
        Ok(())
    }

    /// Runs `args` inside `node` (its network, mount, UTS and PID namespaces; `-p` so
    /// that the command dies with the node), killed after a deadline.
    pub fn run_in(&self, node: &str, args: &[&str]) -> Result<ToolOutput, HarnessError> {
        let i = self.index(node)?;
        let pid = self.nodes[i]
            .init_pid()
            .ok_or_else(|| HarnessError::Refused {
                what: format!("run {} in {node}", args.join(" ")),
                why: "the node is powered off".into(),
            })?;
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(pid.to_string())
            .args(["-n", "-m", "-u", "-p", "--", "timeout", "-s", "KILL"])
            .arg(NODE_TOOL_TIMEOUT.as_secs().to_string())
            .args(args);
        tool::run(command, None, NODE_TOOL_TIMEOUT + Duration::from_secs(5))
    }

    /// The nodes whose NIC holds the service address now.
    pub fn service_address_holders(&self) -> Result<Vec<String>, HarnessError> {
        let mut holders = Vec::new();
        for node in &self.nodes {
            let out = self.ip(&["-n", &node.netns, "-o", "-4", "addr", "show", "dev", "eth0"])?;
            if out.stdout.contains(&format!(" {SERVICE_ADDR}/")) {
                holders.push(node.name.clone());
            }
        }
        Ok(holders)
    }

    /// `crm_mon -1` from `node`.
    pub fn crm_mon(&self, node: &str) -> Result<String, HarnessError> {
        Ok(self.run_in(node, &["crm_mon", "-1"])?.text())
    }

    /// The nodes `node` sees online.
    pub fn online_seen_by(&self, node: &str) -> Result<Vec<String>, String> {
        let status = self.crm_mon(node).map_err(|e| e.to_string())?;
        online_nodes(&status).ok_or(status)
    }

    /// `stonith_admin --history NODE --verbose`, asked on `from`.
    pub fn fence_history(&self, from: &str, node: &str) -> Result<String, HarnessError> {
        Ok(self
            .run_in(from, &["stonith_admin", "--history", node, "--verbose"])?
            .text())
    }

    fn hook_log_path(&self) -> PathBuf {
        self.dir.path().join("power.log")
    }

    /// The BMC hooks' log: every power event of every node, in order.
    pub fn power_events(&self) -> Vec<PowerEvent> {
        let text = std::fs::read_to_string(self.hook_log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some(PowerEvent {
                    at_ms: words.next()?.parse().ok()?,
                    node: words.next()?.to_owned(),
                    what: words.next()?.to_owned(),
                })
            })
            .collect()
    }

    /// The oracle's record so far.
    pub fn mounts(&self) -> MountRecord {
        self.oracle
            .as_ref()
            .map(|o| o.record.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// A node that is powered and whose cable is in, to ask about the cluster.
    fn witness(&self) -> Option<&str> {
        let on = |i: &usize| self.nodes[*i].init_pid().is_some();
        (0..self.nodes.len())
            .filter(on)
            .find(|i| !self.cut.contains(i))
            .or_else(|| (0..self.nodes.len()).find(on))
            .map(|i| self.nodes[i].name.as_str())
    }

    /// What a failure message needs: crm_mon from a live node, the hook log, the
    /// oracle's record.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        match self.witness() {
            Some(node) => {
                let status = self
                    .crm_mon(node)
                    .unwrap_or_else(|e| format!("crm_mon failed: {e}"));
                let _ = writeln!(out, "--- crm_mon -1 on {node}:\n{}", status.trim_end());
            }
            None => out.push_str("--- no node is powered\n"),
        }
        let hook = std::fs::read_to_string(self.hook_log_path()).unwrap_or_default();
        let _ = writeln!(out, "--- BMC hook log:\n{}", hook.trim_end());
        let record = self.mounts();
        let _ = writeln!(
            out,
            "--- mounts of {}: max {} at once, now {:?}",
            self.device(),
            record.max_at_once,
            record.current
        );
        out
    }

    /// Polls `probe` until it gives a value or `timeout` passes; the error carries
    /// the last probe's answer and [`Lab::diagnostics`].
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<T, String>,
    ) -> Result<T, HarnessError> {
        let started = Instant::now();
        loop {
            let last_probe = match probe() {
                Ok(value) => return Ok(value),
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                return Err(HarnessError::NotReady {
                    name: format!("cluster lab ({what})"),
                    waited: started.elapsed(),
                    last_probe,
                    log_tail: self.diagnostics(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_formed(&self) -> Result<(), HarnessError> {
        let all = self.node_names();
        let first = all[0].clone();
        self.wait_until("every node online with a controller", FORM_TIMEOUT, || {
            if let Some(down) = self.nodes.iter().find(|n| n.init_pid().is_none()) {
                return Err(format!(
                    "{} died; console:\n{}",
                    down.name,
                    std::fs::read_to_string(down.dir.join("console.log")).unwrap_or_default()
                ));
            }
            let status = self.crm_mon(&first).map_err(|e| e.to_string())?;
            match online_nodes(&status) {
                Some(online) if online == all && status.contains("Current DC: node") => Ok(()),
                _ => Err(status),
            }
        })
    }

    fn configure(&self) -> Result<(), HarnessError> {
        let first = self.nodes[0].name.clone();
        for (section, name, value) in SETTINGS {
            let out = self.run_in(
                &first,
                &["crm_attribute", "-t", section, "-n", name, "-v", value],
            )?;
            check(&out, "crm_attribute")?;
        }
        // A node fed by two supplies is fenced by them alone: its own BMC is no
        // device of the cluster (only the lab boots the node through it).
        let supplied: HashSet<usize> = self.supplies.iter().map(|s| s.node).collect();
        let mut devices: Vec<(String, String, String)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !supplied.contains(i))
            .map(|(i, n)| {
                (
                    format!("fence-{}", n.name),
                    n.name.clone(),
                    format!("{NET}.{}", bmc_host(i)),
                )
            })
            .collect();
        for (k, supply) in self.supplies.iter().enumerate() {
            let node = &self.nodes[supply.node].name;
            devices.push((
                supply_device_id(node, &supply.name),
                node.clone(),
                format!("{NET}.{}", bmc_host(self.nodes.len() + k)),
            ));
        }
        let agent_type = self
            .options
            .fence_agent
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let resources = resources_xml(
            &agent_type,
            &devices,
            &self.password,
            self.device(),
            &self.dir.path().join(MOUNT_DIR),
            Some(SAN_ROOT),
        );
        let constraints = constraints_xml(&devices);
        let levels: Vec<(String, Vec<String>)> = self
            .two_supply_node()
            .map(|node| vec![(node, self.supply_devices())])
            .unwrap_or_default();
        let mut sections = vec![
            ("resources", "--replace", "resources", resources),
            ("constraints", "--replace", "constraints", constraints),
        ];
        // A new CIB has no fencing-topology section to replace: it is created
        // under the configuration.
        if !levels.is_empty() {
            sections.push((
                "fencing-topology",
                "--create",
                "configuration",
                topology_xml(&levels),
            ));
        }
        for (name, how, section, xml) in sections {
            let path = self.dir.path().join(format!("{name}.xml"));
            write(&path, &xml, 0o600)?;
            let path_text = path.to_string_lossy().into_owned();
            let out = self.run_in(
                &first,
                &["cibadmin", how, "-o", section, "--xml-file", &path_text],
            )?;
            check(&out, "cibadmin")?;
        }
        let mut ids: Vec<String> = devices.iter().map(|d| d.0.clone()).collect();
        ids.push(FS_ID.to_owned());
        ids.push(IP_ID.to_owned());
        self.wait_until(
            "the fencing devices and the group are started",
            START_TIMEOUT,
            || {
                let status = self.crm_mon(&first).map_err(|e| e.to_string())?;
                let started = ids.iter().all(|id| {
                    status
                        .lines()
                        .any(|line| line.contains(&format!("{id}\t")) && line.contains("Started"))
                        || status.lines().any(|line| {
                            line.contains(&format!(" {id} ")) && line.contains("Started")
                        })
                });
                let mounted = self.mounts().current.len() == 1;
                if started && mounted {
                    Ok(())
                } else {
                    Err(status)
                }
            },
        )
    }

    /// Tears the lab down and reports what of it is still on the machine (empty: it
    /// left the machine as it found it).
    pub fn stop(mut self) -> Vec<String> {
        self.teardown();
        self.leftovers()
    }

    fn teardown(&mut self) {
        let started = self.lab_processes();
        self.started.extend(started);
        // Power every node off by its recorded init: the kernel ends the namespace.
        for node in &self.nodes {
            if let Some(pid) = node.init_pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let deadline = Instant::now() + POWER_OFF_TIMEOUT;
        while Instant::now() < deadline
            && self
                .nodes
                .iter()
                .any(|n| n.init_pid().is_some() || n.unshare_pid().is_some())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for mut bmc in self.bmcs.drain(..) {
            let _ = bmc.kill();
            let _ = bmc.wait();
        }
        // The mounts vanish with the last process of each node's mount namespace.
        let deadline = Instant::now() + POWER_OFF_TIMEOUT;
        while Instant::now() < deadline && !self.mounts().current.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(oracle) = self.oracle.take() {
            oracle.stop();
        }
        if let Some(device) = self.loop_device.take() {
            let mut command = Command::new("losetup");
            command.args(["-n", "-O", "BACK-FILE", &device]);
            let ours = tool::run(command, None, HOST_TOOL_TIMEOUT)
                .is_ok_and(|out| out.stdout.trim() == self.image.to_string_lossy());
            if ours {
                let mut command = Command::new("losetup");
                command.args(["-d", &device]);
                if let Err(e) = tool::run_ok(command, None, HOST_TOOL_TIMEOUT) {
                    eprintln!("fencekit-tests: cannot detach {device}: {e}");
                }
            }
        }
        for netns in std::mem::take(&mut self.netns_made).iter().rev() {
            if let Err(e) = self.ip(&["netns", "delete", netns]) {
                eprintln!("fencekit-tests: cannot delete netns {netns}: {e}");
            }
        }
        if self.made_run_netns {
            self.made_run_netns = false;
            let empty = std::fs::read_dir("/run/netns").is_ok_and(|mut d| d.next().is_none());
            if empty {
                let mut command = Command::new("umount");
                command.arg("/run/netns");
                let _ = tool::run(command, None, HOST_TOOL_TIMEOUT);
                let _ = std::fs::remove_dir("/run/netns");
            }
        }
    }

    /// The processes of the lab now: the BMCs and every process in a node's PID
    /// namespace, by PID, start time and name.
    fn lab_processes(&self) -> Vec<(u32, u64, String)> {
        let node_pid_ns: HashSet<PathBuf> = self
            .nodes
            .iter()
            .filter_map(|n| std::fs::read_link(format!("/proc/{}/ns/pid", n.init_pid()?)).ok())
            .collect();
        let bmcs: HashSet<u32> = self.bmcs.iter().map(Child::id).collect();
        let mut found = Vec::new();
        for pid in all_pids() {
            let in_node = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|ns| node_pid_ns.contains(&ns));
            if !in_node && !bmcs.contains(&pid) {
                continue;
            }
            if let Some(start) = process_start(pid) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                found.push((pid, start, comm));
            }
        }
        found
    }

    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for (pid, start, comm) in &self.started {
            if process_start(*pid) == Some(*start) {
                left.push(format!("process {pid} ({comm}) the lab started"));
            }
        }
        // The lab holds the cluster lock and refused to start beside running
        // cluster daemons: any running now are its own.
        for daemon in running_cluster_daemons() {
            left.push(format!("cluster daemon {daemon}"));
        }
        if self.created_run_netns && Path::new("/run/netns").exists() {
            let empty = std::fs::read_dir("/run/netns").is_ok_and(|mut d| d.next().is_none());
            // Another process's namespace there keeps it, rightly.
            if empty {
                left.push("/run/netns, which the lab created".into());
            }
        }
        for node in &self.nodes {
            if let Some(pid) = node.init_pid() {
                left.push(format!("{} is still powered (init PID {pid})", node.name));
            }
            if let Some(pid) = node.unshare_pid() {
                left.push(format!("the unshare of {} (PID {pid})", node.name));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&self.tag) {
                    left.push(format!("netns {name}"));
                }
            }
        }
        let mut command = Command::new("losetup");
        command.arg("-j").arg(&self.image);
        if let Ok(out) = tool::run(command, None, HOST_TOOL_TIMEOUT) {
            if !out.stdout.trim().is_empty() {
                left.push(format!("loop device {}", out.stdout.trim()));
            }
        }
        let record = self.mounts();
        if !record.current.is_empty() {
            left.push(format!("mounts of the shared disk in {:?}", record.current));
        }
        let lab_dir = self.dir.path().to_string_lossy().into_owned();
        for pid in all_pids() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&lab_dir) || cmdline.contains(&self.tag) {
                left.push(format!("process {pid}: {cmdline}"));
            }
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The ids of the Filesystem and IPaddr2 primitives and of their group.
pub const FS_ID: &str = "shared-fs";
pub const IP_ID: &str = "shared-ip";
pub const GROUP_ID: &str = "shared-storage";

/// The cluster properties and resource defaults of the lab, as (CIB section, name,
/// value): `freeze` keeps an isolated node from stopping its resources by itself,
/// which would hide the case that matters; `off` leaves a fenced node off, so the
/// test powers it on again; `dc-deadtime` shortens the cold start; the stickiness
/// keeps the group where it runs when a fenced node comes back.
const SETTINGS: &[(&str, &str, &str)] = &[
    ("crm_config", "stonith-enabled", "true"),
    ("crm_config", "stonith-action", "off"),
    ("crm_config", "no-quorum-policy", "freeze"),
    ("crm_config", "dc-deadtime", "5s"),
    ("rsc_defaults", "resource-stickiness", "100"),
];

/// The commands that set [`SETTINGS`], one a line, as the README shows them.
#[cfg(test)]
fn settings_commands() -> String {
    SETTINGS
        .iter()
        .map(|(section, name, value)| format!("crm_attribute -t {section} -n {name} -v {value}\n"))
        .collect()
}

/// The mount-namespace oracle's findings.
#[derive(Debug, Clone, Default)]
pub struct MountRecord {
    /// Where the device is mounted now: node names, or a namespace the lab does not
    /// know (`mnt:[...] (PID n)`).
    pub current: Vec<String>,
    /// The most namespaces that had it mounted in one sample.
    pub max_at_once: usize,
    /// Every change of `current`, with when it was seen.
    pub changes: Vec<(SystemTime, Vec<String>)>,
    pub samples: u64,
    /// The longest time between two samples.
    pub longest_gap: Duration,
    /// The longest single scan of every mount namespace.
    pub longest_scan: Duration,
    /// Why the sampler could not run SCHED_RR, if it could not.
    pub scheduling_error: Option<String>,
}

struct Oracle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    record: Arc<Mutex<MountRecord>>,
}

impl Oracle {
    fn start(device: String, nodes: &[Node]) -> Oracle {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(MountRecord::default()));
        let pid_files: Vec<(String, PathBuf)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.dir.join("init.pid")))
            .collect();
        let thread = {
            let stop = Arc::clone(&stop);
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                if let Err(e) = raise_to_round_robin() {
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .scheduling_error = Some(e);
                }
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let holders = mount_holders(&device, &pid_files);
                    let now = Instant::now();
                    let mut r = record.lock().unwrap_or_else(|e| e.into_inner());
                    if r.samples > 0 {
                        r.longest_gap = r.longest_gap.max(now - last);
                    }
                    r.longest_scan = r.longest_scan.max(now - began);
                    last = now;
                    r.samples += 1;
                    r.max_at_once = r.max_at_once.max(holders.len());
                    if holders != r.current || r.samples == 1 {
                        r.changes.push((SystemTime::now(), holders.clone()));
                        r.current = holders;
                    }
                    drop(r);
                    std::thread::sleep(ORACLE_PERIOD.saturating_sub(began.elapsed()));
                }
            })
        };
        Oracle {
            stop,
            thread: Some(thread),
            record,
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Puts the calling thread in SCHED_RR at the lowest real-time priority: the nodes'
/// corosync run SCHED_RR and the machine is small, and a sampler that waits behind
/// them could miss a short double mount. A failure is recorded, and the tests
/// refuse a record taken without it.
fn raise_to_round_robin() -> Result<(), String> {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse::<u32>().ok())
        .ok_or("no /proc/thread-self")?;
    let mut command = Command::new("chrt");
    command.args(["-r", "-p", "1"]).arg(tid.to_string());
    let out = tool::run(command, None, HOST_TOOL_TIMEOUT).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("chrt -r -p 1 {tid}: {}", out.text()))
    }
}

/// Every mount namespace of the machine in which `device` (`major:minor`) is
/// mounted, named after the lab node it belongs to when it is one.
fn mount_holders(device: &str, nodes: &[(String, PathBuf)]) -> Vec<String> {
    let mut node_of: HashMap<PathBuf, String> = HashMap::new();
    for (name, pid_file) in nodes {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok());
        if let Some(ns) = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok()) {
            node_of.insert(ns, name.clone());
        }
    }
    let needle = format!(" {device} ");
    let mut seen = HashSet::new();
    let mut holders = Vec::new();
    for pid in all_pids() {
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if seen.contains(&ns) {
            continue;
        }
        // A process that exits meanwhile has no mount table: try the next of its
        // namespace.
        let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        seen.insert(ns.clone());
        // mountinfo(5): the third field is the filesystem's major:minor. The
        // whole-table search first keeps a sample cheap (most tables do not hold the
        // device); the fields then make sure.
        if table.contains(&needle)
            && table
                .lines()
                .any(|line| line.split(' ').nth(2) == Some(device))
        {
            holders.push(
                node_of
                    .get(&ns)
                    .cloned()
                    .unwrap_or_else(|| format!("{} (PID {pid})", ns.display())),
            );
        }
    }
    holders.sort();
    holders
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A living (not zombie) process's start time, which tells it from a later process
/// that reuses its PID.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Unix milliseconds of `time`.
pub fn unix_ms(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// The names in crm_mon's `Online: [ ... ]` line, sorted.
fn online_nodes(status: &str) -> Option<Vec<String>> {
    let line = status.lines().find(|l| l.contains("Online: ["))?;
    let inside = line.split_once('[')?.1.split_once(']')?.0;
    let mut names: Vec<String> = inside.split_whitespace().map(str::to_owned).collect();
    names.sort();
    Some(names)
}

fn bmc_host(i: usize) -> u8 {
    BMC_HOST_BASE + 1 + u8::try_from(i).unwrap_or(0)
}

fn find(program: &str, package: &str) -> Result<PathBuf, HarnessError> {
    peers::find(program).ok_or_else(|| HarnessError::PeerMissing {
        program: program.into(),
        package: package.into(),
    })
}

fn check(out: &ToolOutput, program: &str) -> Result<(), HarnessError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Tool {
            program: program.into(),
            status: out.status.to_string(),
            output: out.text(),
        })
    }
}

fn write(path: &Path, content: &str, mode: u32) -> Result<(), HarnessError> {
    std::fs::write(path, content)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

fn corosync_conf(nodes: &[(&str, String)]) -> String {
    let mut list = String::new();
    for (i, (name, addr)) in nodes.iter().enumerate() {
        let _ = write!(
            list,
            "    node {{\n        ring0_addr: {addr}\n        name: {name}\n        nodeid: {}\n    }}\n",
            i + 1
        );
    }
    format!(
        "totem {{
    version: 2
    cluster_name: fencekit-lab
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
    token: 1000
}}
nodelist {{
{list}}}
quorum {{
    provider: corosync_votequorum
}}
logging {{
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
}}
"
    )
}

/// The fencing device of a node's power supply.
fn supply_device_id(node: &str, supply: &str) -> String {
    format!("fence-{node}-{supply}")
}

/// The CIB resources of the lab: one device of type `agent` per BMC (its address,
/// `pcmk_host_list` naming the node it powers) and the group with the shared
/// filesystem, checked for SAN paths (`sysfs_root`: the lab's fixture trees; a real
/// cluster leaves it out).
fn resources_xml(
    agent: &str,
    devices: &[(String, String, String)],
    password: &str,
    device: &str,
    directory: &Path,
    sysfs_root: Option<&str>,
) -> String {
    let mut xml = String::from("<resources>\n");
    xml.push_str(&devices_xml(agent, devices, password));
    xml.push_str(&group_xml(device, directory, sysfs_root));
    xml.push_str("</resources>\n");
    xml
}

/// The fencing devices' primitives, of type `agent`, one per (id, node, BMC).
fn devices_xml(agent: &str, devices: &[(String, String, String)], password: &str) -> String {
    let mut xml = String::new();
    let power_timeout = DEVICE_POWER_TIMEOUT_S.to_string();
    for (id, node, bmc) in devices {
        let params = [
            ("ip", bmc.as_str()),
            ("username", BMC_USER),
            ("password", password),
            ("lanplus", "1"),
            ("cipher", "3"),
            ("pcmk_host_list", node.as_str()),
            ("power_timeout", power_timeout.as_str()),
        ];
        let _ = writeln!(
            xml,
            "  <primitive id=\"{id}\" class=\"stonith\" type=\"{agent}\">\n    <instance_attributes id=\"{id}-params\">"
        );
        for (name, value) in params {
            let _ = writeln!(
                xml,
                "      <nvpair id=\"{id}-{name}\" name=\"{name}\" value=\"{value}\"/>"
            );
        }
        let _ = writeln!(
            xml,
            "    </instance_attributes>\n    <operations>\n      <op id=\"{id}-monitor\" name=\"monitor\" interval=\"60s\"/>\n    </operations>\n  </primitive>"
        );
    }
    xml
}

/// The group: the shared filesystem (SAN-checked) and the service address.
fn group_xml(device: &str, directory: &Path, sysfs_root: Option<&str>) -> String {
    let mut xml = String::new();
    let mut fs_params = vec![
        ("device", device.to_owned()),
        ("directory", directory.display().to_string()),
        ("fstype", "ext4".to_owned()),
        ("san_backend", "fc".to_owned()),
        ("expected_paths", SAN_PATHS.to_owned()),
        ("min_paths", SAN_MIN_PATHS.to_owned()),
    ];
    if let Some(root) = sysfs_root {
        fs_params.push(("sysfs_root", root.to_owned()));
    }
    let _ = write!(
        xml,
        "  <group id=\"{GROUP_ID}\">
    <primitive id=\"{FS_ID}\" class=\"ocf\" provider=\"fencekit\" type=\"SANFilesystem\">
      <instance_attributes id=\"{FS_ID}-params\">
"
    );
    for (name, value) in fs_params {
        let _ = writeln!(
            xml,
            "        <nvpair id=\"{FS_ID}-{name}\" name=\"{name}\" value=\"{value}\"/>"
        );
    }
    // One failed monitor moves the group (migration-threshold 1): restarting it in
    // place would mount again over paths that are gone.
    let _ = write!(
        xml,
        "      </instance_attributes>
      <meta_attributes id=\"{FS_ID}-meta\">
        <nvpair id=\"{FS_ID}-migration-threshold\" name=\"migration-threshold\" value=\"1\"/>
      </meta_attributes>
      <operations>
        <op id=\"{FS_ID}-monitor\" name=\"monitor\" interval=\"5s\" timeout=\"40s\"/>
      </operations>
    </primitive>
    <primitive id=\"{IP_ID}\" class=\"ocf\" provider=\"heartbeat\" type=\"IPaddr2\">
      <instance_attributes id=\"{IP_ID}-params\">
        <nvpair id=\"{IP_ID}-ip\" name=\"ip\" value=\"{SERVICE_ADDR}\"/>
        <nvpair id=\"{IP_ID}-cidr_netmask\" name=\"cidr_netmask\" value=\"24\"/>
        <nvpair id=\"{IP_ID}-nic\" name=\"nic\" value=\"eth0\"/>
      </instance_attributes>
      <operations>
        <op id=\"{IP_ID}-monitor\" name=\"monitor\" interval=\"10s\" timeout=\"20s\"/>
      </operations>
    </primitive>
  </group>
"
    );
    xml
}

/// The fencing topology: for each (node, devices), one level that needs every
/// device to succeed (two supplies: the node is off only when both are).
fn topology_xml(levels: &[(String, Vec<String>)]) -> String {
    let mut xml = String::from("<fencing-topology>\n");
    for (node, devices) in levels {
        let _ = writeln!(
            xml,
            "  <fencing-level id=\"{node}-level-1\" target=\"{node}\" index=\"1\" devices=\"{}\"/>",
            devices.join(",")
        );
    }
    xml.push_str("</fencing-topology>\n");
    xml
}

/// A device never runs on the node it fences.
fn constraints_xml(devices: &[(String, String, String)]) -> String {
    let mut xml = String::from("<constraints>\n");
    for (id, node, _) in devices {
        let _ = writeln!(
            xml,
            "  <rsc_location id=\"{id}-avoids-{node}\" rsc=\"{id}\" node=\"{node}\" score=\"-INFINITY\"/>"
        );
    }
    xml.push_str("</constraints>\n");
    xml
}

fn lan_conf(addr: &str, password: &str, program: &Path) -> String {
    let auths = "none md2 md5 straight";
    format!(
        "name \"fencekit-lab\"\n\
set_working_mc 0x20\n\
  startlan 1\n\
    addr {addr} 623\n\
    priv_limit admin\n\
    allowed_auths_callback {auths}\n\
    allowed_auths_user {auths}\n\
    allowed_auths_operator {auths}\n\
    allowed_auths_admin {auths}\n\
    guid {guid}\n\
  endlan\n\
  chassis_control \"{program}\"\n\
user 2 true \"{BMC_USER}\" \"{password}\" admin 10 {auths}\n",
        guid = random_hex(16),
        program = program.display(),
    )
}

/// PID 1 of a powered node: private /proc, /run, /dev/shm, per-node corosync and
/// Pacemaker state over the system paths, the node's hostname; then corosync, and
/// pacemakerd once corosync answers; then it reaps orphans for ever.
const NODE_INIT: &str = r#"#!/bin/sh
# PID 1 of a cluster lab node: NODE-INIT NAME DIR
set -e
name=$1
dir=$2
mount -t proc proc /proc
mount -t sysfs sysfs /sys 2>/dev/null || true
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# The node's own SAN tree, at the same path on every node.
[ ! -e "$dir/san" ] || ln -s "$dir/san" /run/fencekit-san
chown -R hacluster:haclient "$dir/pacemaker-state" "$dir/pacemaker-log"
chmod 0750 "$dir/pacemaker-state"
chmod 0770 "$dir/pacemaker-log"
for sub in cib pengine blackbox cores; do
    mkdir -p "$dir/pacemaker-state/$sub"
    chown hacluster:haclient "$dir/pacemaker-state/$sub"
    chmod 0750 "$dir/pacemaker-state/$sub"
done
mount --bind "$dir/corosync-etc" /etc/corosync
mount --bind "$dir/corosync-state" /var/lib/corosync
mount --bind "$dir/corosync-log" /var/log/corosync
mount --bind "$dir/pacemaker-state" /var/lib/pacemaker
mount --bind "$dir/pacemaker-log" /var/log/pacemaker
hostname "$name"
# Log times in UTC whatever this machine's zone: the tests compare them with the
# hook log's Unix times.
export TZ=UTC0
mkdir -p /run/crm /run/resource-agents /run/fence-agents
chown hacluster:haclient /run/crm
corosync -f >"$dir/corosync.out" 2>&1 &
tries=0
until corosync-cfgtool -s >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "corosync did not answer" >&2; exit 1; fi
    sleep 0.2
done
PCMK_logfile=/var/log/pacemaker/pacemaker.log pacemakerd -f >"$dir/pacemakerd.out" 2>&1 &
exec perl -e 'while (1) { sleep 1 if wait() == -1 }'
"#;

/// The BMC's chassis program for one node (`[ARGS...] get power`, `set power 0|1`):
/// power state = whether the node's recorded init is alive; off kills it (unless
/// the BMC lies), on boots a new one. Every event goes to the lab's hook log.
fn power_program(
    name: &str,
    dir: &Path,
    netns: &Path,
    addr: &str,
    init: &Path,
    log: &Path,
) -> String {
    format!(
        r#"#!/bin/sh
# Chassis control program of the lab BMC of {name}.
name='{name}'
dir='{dir}'
netns='{netns}'
addr='{addr}'
init='{init}'
log='{log}'
while [ $# -gt 0 ] && [ "$1" != get ] && [ "$1" != set ]; do shift; done
event() {{ echo "$(date +%s%3N) $name $*" >> "$log"; }}
start_of() {{
    [ -r "/proc/$1/stat" ] || return 1
    stat=$(sed 's/.*) //' "/proc/$1/stat") || return 1
    set -- $stat
    [ "$1" != Z ] || return 1
    eval "echo \${{20}}"
}}
is_on() {{
    [ -s "$dir/init.pid" ] || return 1
    read -r pid start _ < "$dir/init.pid" || return 1
    [ "$(start_of "$pid")" = "$start" ]
}}
case "$1 $2" in
"get power")
    if is_on; then echo power:1; else echo power:0; fi
    ;;
"set power")
    case "$3" in
    0)
        if [ -e "$dir/lie" ]; then event lied-off; exit 0; fi
        if is_on; then
            kill -KILL "$pid"
            # Off means off: wait until the namespace's init is gone.
            i=0
            while is_on && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
            # A node that outlives its kill (a process stuck in the kernel) is not
            # off: say so, and fail the command, so that the BMC reports an error.
            if is_on; then event off-failed "init=$pid"; exit 1; fi
            # What the running node configured on its NIC (a service address) is
            # lost with its power: the NIC comes back with its own address only.
            nsenter --net="$netns" -- ip addr flush dev eth0
            nsenter --net="$netns" -- ip addr add "$addr" dev eth0
            event off "init=$pid"
        else
            event already-off
        fi
        ;;
    1)
        if is_on; then event already-on; exit 0; fi
        # A new session, ipmi_sim's descriptors closed: the node must not hold the
        # BMC's socket.
        perl -e 'use POSIX (); POSIX::setsid(); POSIX::close($_) for 3 .. 1023; exec @ARGV or die "exec: $!"' -- \
            nsenter --net="$netns" -- unshare --mount --uts --ipc --pid --fork --kill-child -- \
            /bin/sh "$init" "$name" "$dir" </dev/null >>"$dir/console.log" 2>&1 &
        outer=$!
        i=0
        pid=
        while [ -z "$pid" ] && [ $i -lt 200 ]; do
            pid=$(pgrep -P "$outer" | head -n 1)
            [ -n "$pid" ] || sleep 0.05
            i=$((i + 1))
        done
        if [ -z "$pid" ]; then event boot-failed; exit 1; fi
        echo "$pid $(start_of "$pid") $outer $(start_of "$outer")" > "$dir/init.pid.new"
        mv "$dir/init.pid.new" "$dir/init.pid"
        event on "init=$pid"
        ;;
    esac
    ;;
esac
exit 0
"#,
        dir = dir.display(),
        netns = netns.display(),
        init = init.display(),
        log = log.display(),
    )
}

/// The chassis program of one power supply of a node fed by two: its chassis power
/// is the supply's state (`STATE`, on or off). Off switches the supply off (unless
/// it lies: it accepts and stays on), and cuts the node (its own power program)
/// only when the other supply is off as well; the two supplies take a lock, so
/// that two offs at once still see each other. Events go to the hook log as
/// `NODE SUPPLY-off`, `SUPPLY-on`, `SUPPLY-lied-off`; the node's cut is the node
/// program's `off`.
fn supply_program(
    node: &str,
    supply: &str,
    dir: &Path,
    other: &Path,
    node_power: &Path,
    log: &Path,
) -> String {
    format!(
        r#"#!/bin/sh
# Chassis control program of power supply {supply} of {node}.
dir='{dir}'
other='{other}'
node_power='{node_power}'
log='{log}'
while [ $# -gt 0 ] && [ "$1" != get ] && [ "$1" != set ]; do shift; done
event() {{ echo "$(date +%s%3N) {node} {supply}-$1" >> "$log"; }}
state() {{ cat "$1/state" 2>/dev/null || echo on; }}
case "$1 $2" in
"get power")
    if [ "$(state "$dir")" = on ]; then echo power:1; else echo power:0; fi
    ;;
"set power")
    exec 9>"$dir/../supplies.lock"
    flock 9
    case "$3" in
    0)
        if [ -e "$dir/lie" ]; then event lied-off; exit 0; fi
        echo off > "$dir/state.new" && mv "$dir/state.new" "$dir/state"
        event off
        # The node's own program says whether the node really went off; its
        # failure is this supply's failure.
        if [ "$(state "$other")" = off ]; then "$node_power" set power 0 || exit 1; fi
        ;;
    1)
        echo on > "$dir/state.new" && mv "$dir/state.new" "$dir/state"
        event on
        ;;
    esac
    ;;
esac
exit 0
"#,
        dir = dir.display(),
        other = other.display(),
        node_power = node_power.display(),
        log = log.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_nodes_are_read_from_crm_mon() {
        let status = "Node List:\n  * Online: [ node3 node1 node2 ]\n  * OFFLINE: [ node4 ]\n";
        assert_eq!(
            online_nodes(status),
            Some(vec!["node1".into(), "node2".into(), "node3".into()])
        );
        assert_eq!(online_nodes("no list"), None);
    }

    #[test]
    fn every_fencing_device_names_its_node_and_avoids_it() {
        let devices = vec![(
            "fence-node2".to_owned(),
            "node2".to_owned(),
            "198.51.100.102".to_owned(),
        )];
        let xml = resources_xml(
            "fence_fencekit_ipmi",
            &devices,
            "pw",
            "/dev/loop9",
            Path::new("/mnt/x"),
            Some(SAN_ROOT),
        );
        assert!(xml.contains("type=\"fence_fencekit_ipmi\""));
        assert!(xml.contains("provider=\"fencekit\" type=\"SANFilesystem\""));
        assert!(xml.contains("name=\"sysfs_root\" value=\"/run/fencekit-san\""));
        assert!(xml.contains("name=\"pcmk_host_list\" value=\"node2\""));
        assert!(xml.contains("name=\"cipher\" value=\"3\""));
        assert!(xml.contains("value=\"/dev/loop9\""));
        assert!(constraints_xml(&devices).contains("node=\"node2\" score=\"-INFINITY\""));
    }

    #[test]
    fn a_node_with_two_supplies_has_one_level_needing_both() {
        let xml = topology_xml(&[(
            "node3".to_owned(),
            vec![
                supply_device_id("node3", "psu1"),
                supply_device_id("node3", "psu2"),
            ],
        )]);
        assert!(xml.contains(
            "target=\"node3\" index=\"1\" devices=\"fence-node3-psu1,fence-node3-psu2\""
        ));
        assert_eq!(xml.matches("<fencing-level ").count(), 1);
    }

    #[test]
    fn every_node_reaches_its_own_san_tree_where_the_cib_says() {
        assert!(NODE_INIT.contains("ln -s \"$dir/san\" /run/fencekit-san"));
        assert_eq!(SAN_ROOT, "/run/fencekit-san");
    }

    /// The CIB the README shows is the one the lab runs, generated by the same code:
    /// the resources (one BMC device shown, no fixture `sysfs_root`), the
    /// constraints, and the two supplies of node3 with their fencing level.
    fn readme_example() -> Vec<String> {
        let device = |i: usize| {
            (
                format!("fence-node{}", i + 1),
                format!("node{}", i + 1),
                format!("{NET}.{}", bmc_host(i)),
            )
        };
        let devices = vec![device(0)];
        let supplies: Vec<(String, String, String)> = (1..=SUPPLIES)
            .map(|k| {
                (
                    supply_device_id("node3", &format!("psu{k}")),
                    "node3".to_owned(),
                    format!("{NET}.{}", bmc_host(2 + k)),
                )
            })
            .collect();
        let level = vec![(
            "node3".to_owned(),
            supplies.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        )];
        vec![
            resources_xml(
                "fence_fencekit_ipmi",
                &devices,
                "secret",
                "/dev/sdb",
                Path::new("/srv/shared"),
                None,
            ),
            constraints_xml(&devices),
            devices_xml("fence_fencekit_ipmi", &supplies, "secret"),
            constraints_xml(&supplies),
            topology_xml(&level),
        ]
    }

    #[test]
    fn the_readme_shows_the_cib_the_lab_runs() {
        let readme = include_str!("../../README.md");
        let parts = readme_example();
        if std::env::var_os("FENCEKIT_PRINT_README_CIB").is_some() {
            for part in &parts {
                println!("----\n{part}");
            }
        }
        for part in parts {
            assert!(readme.contains(&part), "{part}");
        }
        let settings = settings_commands();
        assert!(
            readme.contains(&format!("```sh\n{settings}```\n")),
            "the README does not show the lab's settings:\n{settings}"
        );
        assert!(settings.contains("-t rsc_defaults -n resource-stickiness -v 100\n"));
    }

    #[test]
    fn the_lab_addresses_only_its_documentation_network() {
        let conf = corosync_conf(&[("node1", "198.51.100.1".into())]);
        assert!(conf.contains("ring0_addr: 198.51.100.1\n"));
        assert_eq!(bmc_host(0), 101);
    }
}
