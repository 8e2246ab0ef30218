//! Launcher for a single-node Pacemaker cluster without systemd, the real consumer of
//! fence agents: corosync (knet on 127.0.0.1, no crypto, votequorum) and `pacemakerd`
//! in the foreground, each with its configuration and log in a temporary directory.
//! [`Cluster::start`] waits until corosync is quorate and the controller is elected
//! (about 22 s: Pacemaker's `dc-deadtime`), then tests add `stonith:` resources and
//! drive the fencer with `stonith_admin`.
//!
//! A cluster is machine-wide state (corosync's and Pacemaker's sockets, the CIB in
//! `/var/lib/pacemaker/cib`), so the launcher refuses to start when a corosync or
//! Pacemaker it did not start is running, or a CIB is left over; and the guard's drop
//! stops pacemakerd, then corosync, by PID (SIGTERM, a bounded wait, SIGKILL only for
//! processes it started), then removes the cluster's state files. Needs root.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::system::PathLock;
use crate::tool::{self, ToolOutput};
use crate::{peers, HarnessError};

/// The name the cluster's only node has (corosync's `nodelist`).
pub const NODE: &str = "node1";

/// corosync is quorate about a second after it starts.
const QUORUM_TIMEOUT: Duration = Duration::from_secs(30);
/// The controller is elected after `dc-deadtime` (20 s) plus start-up.
const DC_TIMEOUT: Duration = Duration::from_secs(90);
/// A new resource starts within a few seconds (one monitor of the device).
const RESOURCE_TIMEOUT: Duration = Duration::from_secs(60);
/// pacemakerd stops its children one after another; corosync leaves at once.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of each cluster command-line tool (cibadmin, crm_mon, ...).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

/// Pacemaker's state directories whose contents a test cluster leaves behind.
const CIB_DIR: &str = "/var/lib/pacemaker/cib";
const PENGINE_DIR: &str = "/var/lib/pacemaker/pengine";
const COROSYNC_DIR: &str = "/var/lib/corosync";

/// A running single-node cluster; stopped, and its state removed, when dropped.
pub struct Cluster {
    dir: TempDir,
    corosync: Option<Child>,
    pacemakerd: Option<Child>,
    // Released last: another cluster may start only after this one is gone.
    _lock: PathLock,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field("corosync", &self.corosync.as_ref().map(Child::id))
            .field("pacemakerd", &self.pacemakerd.as_ref().map(Child::id))
            .finish()
    }
}

impl Cluster {
    /// Starts corosync and pacemakerd and waits until node1 is the elected DC.
    pub fn start() -> Result<Cluster, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HarnessError::NotRoot {
                what: "a Pacemaker cluster".into(),
            });
        }
        let corosync = find("corosync", "corosync")?;
        let pacemakerd = find("pacemakerd", "pacemaker")?;
        let lock = PathLock::acquire(Path::new("/var/lib/pacemaker"))?;
        refuse_if_a_cluster_is_there()?;

        let dir = tempfile::Builder::new()
            .prefix("fencekit-pacemaker-")
            .tempdir()
            .map_err(|e| HarnessError::io("create a temporary directory for the cluster", e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("open the cluster directory to hacluster", e))?;
        let conf = dir.path().join("corosync.conf");
        std::fs::write(&conf, corosync_conf(&dir.path().join("corosync.log")))
            .map_err(|e| HarnessError::io(format!("write {}", conf.display()), e))?;

        let mut cluster = Cluster {
            dir,
            corosync: None,
            pacemakerd: None,
            _lock: lock,
        };
        let mut command = Command::new(&corosync);
        command.arg("-f").arg("-c").arg(&conf);
        cluster.corosync = Some(cluster.spawn("corosync", command)?);
        cluster.wait_quorate()?;

        let mut command = Command::new(&pacemakerd);
        command
            .arg("-f")
            .env("PCMK_logfile", cluster.pacemaker_log_path());
        cluster.pacemakerd = Some(cluster.spawn("pacemakerd", command)?);
        cluster.wait_for_dc()?;
        Ok(cluster)
    }

    /// The temporary directory holding the configuration and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn pacemaker_log_path(&self) -> PathBuf {
        self.dir.path().join("pacemaker.log")
    }

    /// The last `lines` lines of Pacemaker's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.pacemaker_log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `crm_mon -1`: the cluster's status once.
    pub fn crm_mon(&self) -> Result<String, HarnessError> {
        let mut command = Command::new(find("crm_mon", "pacemaker-cli-utils")?);
        command.arg("-1");
        Ok(tool::run(command, None, TOOL_TIMEOUT)?.text())
    }

    /// `stonith_admin ARGS`, ended after `timeout`; the exit status is not judged.
    pub fn stonith_admin(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ToolOutput, HarnessError> {
        let mut command = Command::new(find("stonith_admin", "pacemaker-cli-utils")?);
        command.args(args);
        tool::run(command, None, timeout)
    }

    /// Adds a `stonith:AGENT` resource with these instance attributes, turns
    /// `stonith-enabled` on and waits until the resource is Started.
    pub fn add_stonith(
        &self,
        id: &str,
        agent: &str,
        params: &[(&str, &str)],
    ) -> Result<(), HarnessError> {
        let xml_path = self.dir.path().join(format!("{}.xml", xml_id(id)));
        std::fs::write(&xml_path, stonith_primitive(id, agent, params))
            .map_err(|e| HarnessError::io(format!("write {}", xml_path.display()), e))?;
        let mut command = Command::new(find("cibadmin", "pacemaker-cli-utils")?);
        command
            .args(["--create", "-o", "resources", "--xml-file"])
            .arg(&xml_path);
        tool::run_ok(command, None, TOOL_TIMEOUT)?;
        let mut command = Command::new(find("crm_attribute", "pacemaker-cli-utils")?);
        command.args(["-t", "crm_config", "-n", "stonith-enabled", "-v", "true"]);
        tool::run_ok(command, None, TOOL_TIMEOUT)?;
        self.wait_until("the resource is started", RESOURCE_TIMEOUT, || {
            let status = self.crm_mon().map_err(|e| e.to_string())?;
            let started = status
                .lines()
                .any(|line| line.contains(id) && line.contains("Started"));
            if started {
                Ok(())
            } else {
                Err(format!("crm_mon -1 says:\n{status}"))
            }
        })
    }

    fn spawn(&self, name: &str, mut command: Command) -> Result<Child, HarnessError> {
        let out_path = self.dir.path().join(format!("{name}.out"));
        let out = std::fs::File::create(&out_path)
            .map_err(|e| HarnessError::io(format!("create {}", out_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io(format!("duplicate the output file of {name}"), e))?;
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group, so that a test's Ctrl-C at the terminal reaches it only
            // through the guard, and its children are easy to tell apart.
            .process_group(0);
        command
            .spawn()
            .map_err(|e| HarnessError::io(format!("start {name}"), e))
    }

    fn wait_quorate(&self) -> Result<(), HarnessError> {
        let quorumtool = find("corosync-quorumtool", "corosync")?;
        self.wait_until("corosync is quorate", QUORUM_TIMEOUT, || {
            let mut command = Command::new(&quorumtool);
            command.arg("-s");
            let out = tool::run(command, None, TOOL_TIMEOUT).map_err(|e| e.to_string())?;
            let quorate = out.stdout.lines().any(|line| {
                line.split_once(':')
                    .is_some_and(|(k, v)| k.trim() == "Quorate" && v.trim() == "Yes")
            });
            if quorate {
                Ok(())
            } else {
                Err(format!(
                    "corosync-quorumtool -s says: {}",
                    out.text().trim()
                ))
            }
        })
    }

    fn wait_for_dc(&self) -> Result<(), HarnessError> {
        let expected = format!("Current DC: {NODE}");
        self.wait_until("the controller is elected", DC_TIMEOUT, || {
            let status = self.crm_mon().map_err(|e| e.to_string())?;
            if status.contains(&expected) {
                Ok(())
            } else {
                Err(format!("crm_mon -1 says:\n{}", status.trim()))
            }
        })
    }

    /// Polls `probe` until it succeeds, a daemon of ours exits, or `timeout` passes.
    fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            for (name, child) in [
                ("corosync", &self.corosync),
                ("pacemakerd", &self.pacemakerd),
            ] {
                if let Some(status) = child.as_ref().and_then(|c| exit_status(c.id())) {
                    return Err(HarnessError::Exited {
                        name: name.into(),
                        status,
                        log_tail: self.logs_tail(),
                    });
                }
            }
            let last_probe = match probe() {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                return Err(HarnessError::NotReady {
                    name: format!("cluster ({what})"),
                    waited: started.elapsed(),
                    last_probe,
                    log_tail: self.logs_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn logs_tail(&self) -> String {
        let mut out = String::new();
        for name in [
            "corosync.out",
            "corosync.log",
            "pacemakerd.out",
            "pacemaker.log",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let _ = writeln!(out, "--- {name}");
            for line in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// Stops `child` (SIGTERM), waits for it and the processes it started, then
    /// SIGKILLs whichever of those linger, and reaps it.
    fn stop(name: &str, child: &mut Child) {
        let pid = child.id();
        // Collected before the signal: once the parent is gone its children are
        // reparented, and only this list still says they were ours.
        let mut ours = descendants(pid);
        if exit_status(pid).is_none() {
            let _ = kill(as_pid(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            // Children started during shutdown (an agent run) count too.
            for process in descendants(pid) {
                if !ours.contains(&process) {
                    ours.push(process);
                }
            }
            ours.retain(ProcessId::is_alive);
            if exit_status(pid).is_some() && ours.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "fencekit-tests: {name} (PID {pid}) did not stop within {STOP_TIMEOUT:?}; killing it and {} process(es) it started",
                    ours.len()
                );
                for process in &ours {
                    process.kill();
                }
                let _ = kill(as_pid(pid), Signal::SIGKILL);
                break;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Pacemaker first: its daemons need corosync to leave cleanly.
        if let Some(mut child) = self.pacemakerd.take() {
            Cluster::stop("pacemakerd", &mut child);
        }
        if let Some(mut child) = self.corosync.take() {
            Cluster::stop("corosync", &mut child);
        }
        for dir in [CIB_DIR, PENGINE_DIR] {
            remove_entries(Path::new(dir), |_| true);
        }
        remove_entries(Path::new(COROSYNC_DIR), |name| name.starts_with("ringid_"));
    }
}

fn find(program: &str, package: &str) -> Result<PathBuf, HarnessError> {
    peers::find(program).ok_or_else(|| HarnessError::PeerMissing {
        program: program.into(),
        package: package.into(),
    })
}

/// The corosync.conf of a one-node cluster on loopback.
fn corosync_conf(log: &Path) -> String {
    format!(
        "totem {{
    version: 2
    cluster_name: fencekit-test
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}}
nodelist {{
    node {{
        ring0_addr: 127.0.0.1
        name: {NODE}
        nodeid: 1
    }}
}}
quorum {{
    provider: corosync_votequorum
}}
logging {{
    to_logfile: yes
    logfile: {}
    to_stderr: no
    to_syslog: no
}}
",
        log.display()
    )
}

/// A `<primitive class="stonith">` with its instance attributes and a monitor.
fn stonith_primitive(id: &str, agent: &str, params: &[(&str, &str)]) -> String {
    let rid = xml_id(id);
    let mut xml = format!(
        "<primitive id=\"{}\" class=\"stonith\" type=\"{}\">\n  <instance_attributes id=\"{rid}-instance_attributes\">\n",
        escape(id),
        escape(agent)
    );
    for (name, value) in params {
        let _ = writeln!(
            xml,
            "    <nvpair id=\"{rid}-instance_attributes-{}\" name=\"{}\" value=\"{}\"/>",
            xml_id(name),
            escape(name),
            escape(value)
        );
    }
    let _ = write!(
        xml,
        "  </instance_attributes>\n  <operations>\n    <op id=\"{rid}-monitor-interval-60s\" name=\"monitor\" interval=\"60s\"/>\n  </operations>\n</primitive>\n"
    );
    xml
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

/// A string usable as an XML ID: letters, digits, `-`, `_`, `.`; a letter first.
fn xml_id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id
    } else {
        format!("x{id}")
    }
}

/// Refuses when another cluster runs, or one left its CIB behind: neither is ours
/// to stop or delete.
fn refuse_if_a_cluster_is_there() -> Result<(), HarnessError> {
    let running = running_cluster_daemons();
    if !running.is_empty() {
        return Err(HarnessError::Refused {
            what: "start a test cluster".into(),
            why: format!(
                "a cluster is already running on this machine: {}; stop it first",
                running.join(", ")
            ),
        });
    }
    let leftovers: Vec<String> = std::fs::read_dir(CIB_DIR)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !leftovers.is_empty() {
        return Err(HarnessError::Refused {
            what: "start a test cluster".into(),
            why: format!(
                "{CIB_DIR} holds the CIB of another cluster ({}); remove it if that cluster is gone",
                leftovers.join(", ")
            ),
        });
    }
    Ok(())
}

/// The daemons of a cluster stack, by process name (Pacemaker 2.x, corosync 3).
pub const CLUSTER_DAEMONS: &[&str] = &[
    "corosync",
    "pacemakerd",
    "pacemaker-based",
    "pacemaker-fenced",
    "pacemaker-execd",
    "pacemaker-attrd",
    "pacemaker-schedulerd",
    "pacemaker-controld",
    "pacemaker-remoted",
];

/// Cluster daemons running on this machine now, as `NAME (PID N)`, whoever started
/// them.
pub fn running_cluster_daemons() -> Vec<String> {
    processes()
        .into_iter()
        // comm is cut at 15 bytes: "pacemaker-sched" stands for pacemaker-schedulerd.
        .filter(|p| {
            CLUSTER_DAEMONS
                .iter()
                .any(|d| d.get(..15).unwrap_or(d) == p.comm)
        })
        .map(|p| format!("{} (PID {})", p.comm, p.id.pid))
        .collect()
}

fn remove_entries(dir: &Path, wanted: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if !wanted(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let result = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = result {
            eprintln!("fencekit-tests: cannot remove {}: {e}", path.display());
        }
    }
}

/// How `pid`, a child of this process, ended, if it has; `None` while it runs. The
/// child is left a zombie (WNOWAIT), so its PID cannot be reused before the guard
/// reaps it.
fn exit_status(pid: u32) -> Option<String> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(as_pid(pid)), flags) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status {code}")),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(format!("killed by {signal}")),
        Ok(other) => Some(format!("{other:?}")),
        Err(e) => Some(format!("not waitable: {e}")),
    }
}

fn as_pid(pid: u32) -> Pid {
    // A PID always fits in pid_t; one that did not would make kill a no-op (ESRCH).
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// A process, told apart from a later one that reuses its PID by its start time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessId {
    pid: u32,
    start_time: u64,
}

impl ProcessId {
    fn is_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|p| p.id == *self && !p.zombie)
    }

    fn kill(&self) {
        if self.is_alive() {
            let _ = kill(as_pid(self.pid), Signal::SIGKILL);
        }
    }
}

#[derive(Debug)]
struct Process {
    id: ProcessId,
    comm: String,
    ppid: u32,
    zombie: bool,
}

fn read_stat(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Process {
        id: ProcessId {
            pid,
            // Field 22 of proc(5), the 20th after the comm.
            start_time: fields.get(19)?.parse().ok()?,
        },
        comm,
        ppid: fields.get(1)?.parse().ok()?,
        zombie: fields.first() == Some(&"Z"),
    })
}

/// Every living process.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .filter(|p| !p.zombie)
        .collect()
}

/// The living processes `pid` started, and theirs, and so on.
fn descendants(pid: u32) -> Vec<ProcessId> {
    let all = processes();
    let mut found: Vec<ProcessId> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !found.contains(&p.id) {
                found.push(p.id.clone());
                parents.push(p.id.pid);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stonith_primitives_escape_what_they_carry() {
        let xml = stonith_primitive(
            "st-sim",
            "fence_fencekit_sim",
            &[("pcmk_host_map", "node2:1,2;node3:3"), ("names", "a\"<&>")],
        );
        assert!(
            xml.contains("<primitive id=\"st-sim\" class=\"stonith\" type=\"fence_fencekit_sim\">")
        );
        assert!(xml.contains(
            "<nvpair id=\"st-sim-instance_attributes-pcmk_host_map\" name=\"pcmk_host_map\" value=\"node2:1,2;node3:3\"/>"
        ));
        assert!(xml.contains("value=\"a&quot;&lt;&amp;&gt;\""));
    }

    #[test]
    fn xml_ids_start_with_a_letter_and_hold_no_odd_characters() {
        assert_eq!(xml_id("st sim/1"), "st-sim-1");
        assert_eq!(xml_id("1st"), "x1st");
    }

    #[test]
    fn this_process_reads_as_alive_with_its_parent() {
        let me = read_stat(std::process::id()).unwrap();
        assert!(me.id.is_alive());
        assert!(!me.zombie);
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
    }

    #[test]
    fn a_spawned_child_is_a_descendant() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|p| p.pid == child.id()), "{found:?}");
    }
}
