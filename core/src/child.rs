//! The one way core starts a program of the site's (the notify hook,
//! `password_script`, the script plugin): in a process group of its own, with an
//! environment scrubbed of secrets, fed its input, read without ever blocking past
//! a deadline, and killed, with every process of its group, at that deadline.
//!
//! * **Environment.** Every variable registered with [`crate::secret::hide_env_var`]
//!   (and every variable a `*_env` secret was read from) is removed
//!   ([`crate::secret::scrub_env`]). Secrets a child needs go on its standard input.
//! * **Deadline.** Output is read on threads that hand it over as it comes; the
//!   caller waits on those hand-overs with a timeout, never on a thread that may not
//!   end (a grandchild can hold a pipe open long after the program exited).
//! * **Stragglers.** When the program exits, what it left behind (`sleep 25 &`)
//!   is ended with it (see **Strays**).
//! * **Our own end.** Every running child's group is registered; [`kill_all`]
//!   kills them, for a front end stopped by a signal (SIGTERM, an admin's ^C), so
//!   that a script's late `on` cannot land after the run ended. A fencekit killed
//!   outright (SIGKILL: Pacemaker's timeout kills the agent's process group, which
//!   our children left) cannot kill anything itself; so every program runs under a
//!   small supervisor, a `/bin/sh` that leads a group of its own, is sent SIGTERM
//!   by the kernel when the thread that started it (and so fencekit) dies, and
//!   then kills the program's group: the program and whatever it started (a
//!   helper of a script that would switch an outlet on late), and each process it
//!   adopted (below) with that process's own group.
//! * **Strays.** A process that leaves the group (`setsid`, or a script's own
//!   job control, `set -m`) escapes the group's kill. Where the system gives
//!   one, every program runs in a cgroup of its own (see `Cgroup`), which
//!   every process it starts is in, whatever its group or session, and which is
//!   killed as a whole when the program exits, by fencekit, or by the
//!   supervisor when fencekit died; the hunt below follows as a second line,
//!   and is the only one without a cgroup. The supervisor is the reaper of its
//!   program's orphans (a child subreaper, prctl(2)): whatever the program
//!   started stays below the supervisor, in whatever group or session, once its
//!   own parent is gone. When the program exits, the supervisor says so and
//!   waits; fencekit stops every process below it, then kills them all (read
//!   from `/proc`, each pinned and signalled through a pidfd, see
//!   [`end_below`]), and only then lets it exit; a program whose leftovers
//!   cannot all be ended by its deadline fails. Only the descendants of the
//!   program's own supervisor are touched: never a process another thread or a
//!   plugin library started, nor one of another program's.
//! * **Its own group.** The program runs in a session and group of its own, led
//!   by a shell between it and the supervisor (made with `setsid(1)`), so that
//!   a program that kills its own group (`kill -KILL 0`) or its parent cannot
//!   kill the supervisor and leave its helpers to init. What escapes: what a
//!   root program does to the cgroups themselves (a process it moves out of its
//!   cgroup; the supervisor moved into a cgroup it freezes, then fencekit killed
//!   outright), what a program asks another daemon to start; and where no cgroup
//!   could be made: a process the program started
//!   below a stray that the supervisor did not adopt yet when fencekit was
//!   killed outright (the supervisor's last act reaches only the processes it
//!   adopted), a helper that hops from pid to pid faster than `/proc` is read
//!   while something makes the supervisor reap its zombies (signals it traps,
//!   under dash; any `/bin/sh` that reaps on SIGCHLD, as bash does), and what a
//!   program starts in another session before it finds and kills the supervisor
//!   itself; README names them.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use thiserror::Error;
use zeroize::Zeroizing;

/// How much of each output is kept; the rest is read and dropped, so that a chatty
/// program never blocks on a full pipe.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub stdout: usize,
    pub stderr: usize,
}

/// A program that exited by its deadline.
pub struct Finished {
    pub status: ExitStatus,
    /// Zeroed when dropped: it may be a password.
    pub stdout: Zeroizing<Vec<u8>>,
    pub stderr: Vec<u8>,
    /// The program printed more than [`Limits::stdout`]: `stdout` is only its
    /// start, which must not be read as if it were all (an `off` followed by
    /// megabytes and an `on`).
    pub stdout_cut: bool,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished")
            .field("status", &self.status)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .field("stdout_cut", &self.stdout_cut)
            .finish()
    }
}

/// Why a program did not finish. Never holds what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChildError {
    #[error("cannot start it: {0}")]
    Spawn(String),
    #[error(
        "still running at its deadline, after {:.1} s; killed it and its process group",
        .0.as_secs_f64()
    )]
    TimedOut(Duration),
    #[error("abandoned by its caller; killed it and its process group")]
    Cancelled,
    #[error(
        "exited, but the processes it left could not all be ended by its deadline \
         ({:.1} s after it started); killed those found",
        .0.as_secs_f64()
    )]
    LeftRunning(Duration),
    #[error("{0}")]
    Io(String),
}

/// The supervisor `/bin/sh` runs: it starts the program in the background (its
/// standard input handed over explicitly, as a background command would otherwise
/// read `/dev/null`) and waits for it (again when a signal it traps cut the wait
/// short while the program runs); then it closes descriptor 5 (fencekit's sign that the
/// program ended), reads descriptor 4 until fencekit closes the other end (the
/// processes below it are ended by then; neither a signal it traps nor anything
/// written into the pipe ends that wait: a program may open it through
/// `/proc/PID/fd/4`) and exits with the program's status. The program gets
/// neither descriptor. Before it exits, a program's cgroup that is still there
/// (fencekit removes it once it is empty) is killed and removed as below, unless
/// the supervisor cannot leave it; without a cgroup, its children are killed as
/// below (by then only zombies, unless fencekit is gone). For the other end of
/// descriptor 4 closes when the last thread of fencekit exits, which may be
/// before the parent-death signal comes (it comes when the thread that started
/// the supervisor ends, while others may live on, and is ignored then): this
/// close can be fencekit's death between the program's exit and the end of what
/// it left.
///
/// Its first argument is the path of `setsid(1)` (empty when there is none): the
/// program then runs under a shell of its own that `setsid` made the leader of a
/// new session and process group, so that a program that kills its own group
/// (`kill -KILL 0`, `kill -9 $PPID`) cannot kill the supervisor, which adopts
/// whatever the program started; and the program itself leads no group, so that
/// it may still call `setsid()` (or run `setsid` without a fork) as it could
/// under a fence agent. That shell catches the signals a program's cleanup sends
/// its own group (`kill 0`), so that it outlives the program and passes its
/// status on; signals it catches are at their defaults again in the program.
///
/// Its second and third arguments are the program's cgroup (see [`Cgroup`]), into
/// which fencekit placed the supervisor before it started (if it exists), and
/// fencekit's own (both empty without one); its fourth is fencekit's pid: a
/// supervisor whose parent is another once its trap is set (fencekit died while
/// it was starting) ends at once as below, before the program starts.
///
/// SIGTERM or SIGHUP while fencekit lives (its parent unchanged) is ignored
/// (judged with `case`, and no `return` in the trap: under a storm of SIGTERM,
/// dash ran the trap nested in itself and an `if` after the inner one's
/// `return` went the wrong way, taking fencekit for dead). Once fencekit is gone
/// (the parent-death signal, SIGTERM; or SIGHUP to the group orphaned) it
/// ignores both signals, moves itself back to fencekit's cgroup, kills the
/// program's (every process in it at once, a fork under way included; itself
/// too if it could not leave), waits until it is empty (at most 20000 reads of
/// its `cgroup.events`) and removes it and the cgroups below it, two deep; then
/// (for a program without a cgroup, or what left it) it kills each of its
/// children with that child's group (the program's shell leads the program's),
/// again whenever the list of its children changes (a child killed hands it its
/// own children: it adopts them), until the list stays the same for a while
/// (about 2000 reads of it, some milliseconds) or it has read it 40000 times;
/// then the cgroup again (removed now if an adopted process held it), and its
/// own group, itself included.
const SUPERVISOR: &str = "g=$1; d=$2; h=$3; P=$4; shift 4; \
     z() { if [ -n \"$d\" ] && [ -d \"$d\" ]; then echo $$ > \"$h/cgroup.procs\"; r=; \
     if [ \"$1\" != q ]; then while read -r l; do case $l in 0::*/\"${d##*/}\"|0::*/\"${d##*/}\"/*) r=1;; esac; \
     done < /proc/$$/cgroup; fi; \
     if [ -z \"$r\" ] && echo 1 > \"$d/cgroup.kill\"; then j=0; \
     while [ $j -lt 20000 ]; do j=$((j+1)); read -r _ u < \"$d/cgroup.events\"; [ \"$u\" = 0 ] && break; done; \
     for y in \"$d\"/*/*/ \"$d\"/*/ \"$d\"; do rmdir \"$y\"; done; fi; fi 2>/dev/null; }; \
     w() { o=; n=0; i=0; while [ $n -lt 2000 ] && [ $i -lt 40000 ]; do \
     read -r k < /proc/$$/task/$$/children; i=$((i+1)); \
     if [ \"$k\" = \"$o\" ]; then n=$((n+1)); else n=0; o=$k; \
     for p in $k; do kill -KILL -$p $p; done 2>/dev/null; fi; done; }; \
     q() { trap '' TERM HUP; z q; w; z q; kill -KILL 0; }; m=; [ -n \"$d\" ] && [ -d \"$d\" ] && m=1; \
     t() { read -r a < /proc/$$/stat; set -- $a; case $4 in \"$P\") x=1;; *) q;; esac; }; trap t TERM HUP; \
     case $PPID in \"$P\") ;; *) q;; esac; \
     exec 3<&0; if [ -n \"$g\" ]; then \
     $g /bin/sh -c 'trap : TERM HUP USR1 USR2 ALRM; \"$@\"; exit $?' fencekit-program \"$@\" <&3 3<&- 4<&- 5>&- & \
     else \"$@\" <&3 3<&- 4<&- 5>&- & fi; c=$!; exec 3<&-; \
     while :; do x=; wait $c; s=$?; case $x in '') break;; esac; done; \
     exec 5>&-; while :; do x=; read _ <&4 && continue; case $x in '') break;; esac; done; z; [ -n \"$m\" ] || w; exit $s";

/// The supervisor's descriptors: fencekit closes its end of [`GO_FD`] to let it
/// exit; it closes [`ENDED_FD`] when the program has exited.
const GO_FD: i32 = 4;
const ENDED_FD: i32 = 5;

/// The name the supervisor runs under (its `$0`; what `ps` shows).
const SUPERVISOR_NAME: &str = "fencekit-child";

/// A program to run with [`run_by`] or [`run`]: made only by [`program`] or
/// [`shell`], so that every program fencekit starts has a process group of its
/// own, an environment without the registered secrets, a cgroup of its own where
/// the system gives one, and a supervisor that kills all of it when fencekit dies.
/// Arguments, environment and directory are set on it as on a [`Command`].
#[derive(Debug)]
pub struct Program {
    command: Command,
    /// Named with the program, made just before it starts.
    cgroup: Option<Cgroup>,
}

impl std::ops::Deref for Program {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.command
    }
}

impl std::ops::DerefMut for Program {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.command
    }
}

/// `PATH` as a [`Program`]; add its arguments with `.arg`.
pub fn program(path: impl AsRef<OsStr>) -> Program {
    program_under(path, container())
}

/// [`program`] under `container` (see [`container`]), in a cgroup of its own
/// where one can be made.
fn program_under(path: impl AsRef<OsStr>, container: &OsStr) -> Program {
    program_in(path, container, Cgroup::plan())
}

/// [`program`] under `container`, in `cgroup`.
fn program_in(path: impl AsRef<OsStr>, container: &OsStr, cgroup: Option<Cgroup>) -> Program {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(SUPERVISOR)
        .arg(SUPERVISOR_NAME)
        .arg(container);
    match &cgroup {
        Some(cgroup) => command.arg(&cgroup.dir).arg(&cgroup.home),
        None => command.arg("").arg(""),
    };
    command.arg(std::process::id().to_string()).arg(path);
    prepare(&mut command);
    Program { command, cgroup }
}

/// A cgroup (v2) of one program's own, made below fencekit's own cgroup: the
/// supervisor is placed in it between fork and exec (see [`run_blocking`]), so that
/// every process the program starts is in it, whatever its parent, group or
/// session, and however fast it forks. When the program has exited, fencekit
/// moves the supervisor back out and kills the cgroup (`cgroup.kill`: the kernel
/// kills every process in it, and any fork under way, at once), waits until it
/// is empty and removes it; the [`end_below`] hunt follows, as it does where no
/// cgroup could be made (cgroup v1 only, a kernel before 5.14, not root, a
/// read-only cgroup tree): then it is the only line. A program sees nothing of
/// this but its `/proc/self/cgroup`.
///
/// Under systemd, fencekit's own cgroup is its unit's (Pacemaker's, say): the
/// programs' cgroups are leaves below it, without controllers of their own, so
/// the unit's limits and accounting hold for them as before.
#[derive(Debug)]
struct Cgroup {
    dir: std::path::PathBuf,
    /// fencekit's own cgroup, where the supervisor goes back to.
    home: std::path::PathBuf,
    /// Its directory's inode once made (just before the program starts): every
    /// write that kills goes to that directory only, never to one mounted over
    /// its path since.
    made: std::sync::OnceLock<u64>,
}

impl Cgroup {
    /// A cgroup to make below fencekit's own (`fencekit-PID-START-N-NANOS`,
    /// START fencekit's start time), named now, made by [`Cgroup::make`] just
    /// before the program starts; none where the system has no cgroup v2 for
    /// fencekit. The first also sweeps what a fencekit that is gone left
    /// ([`Cgroup::sweep`]).
    fn plan() -> Option<Cgroup> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static SWEPT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        let home = own_cgroup()?;
        SWEPT.get_or_init(|| Cgroup::sweep(&home));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let pid = std::process::id();
        let dir = home.join(format!(
            "fencekit-{pid}-{}-{}-{nanos}",
            started_at(pid).unwrap_or(0),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Some(Cgroup {
            dir,
            home,
            made: std::sync::OnceLock::new(),
        })
    }

    /// Makes it, empty: whether it can hold the program (never a directory
    /// that was there before; `cgroup.kill` came with Linux 5.14, and without
    /// it the hunt is the only line).
    fn make(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        if std::fs::create_dir(&self.dir).is_err() {
            return false;
        }
        match std::fs::metadata(&self.dir) {
            Ok(meta) if self.dir.join("cgroup.kill").is_file() => {
                let _ = self.made.set(meta.ino());
                true
            }
            _ => {
                let _ = std::fs::remove_dir(&self.dir);
                false
            }
        }
    }

    /// Whether its directory is still the one made (not another mounted over
    /// its path).
    fn unchanged(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.made
            .get()
            .is_some_and(|ino| std::fs::metadata(&self.dir).is_ok_and(|meta| meta.ino() == *ino))
    }

    /// Removes the empty cgroups (with those below them) that a fencekit whose
    /// pid is gone left in `home` (killed while a program's cgroup was being
    /// made, or before its supervisor could remove it). Never one of a live
    /// process's, nor one a process lives in.
    fn sweep(home: &std::path::Path) {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(home) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(parts) = name.to_str().and_then(|n| n.strip_prefix("fencekit-")) else {
                continue;
            };
            let numbers: Vec<u64> = parts.split('-').map_while(|n| n.parse().ok()).collect();
            let Some(pid) = numbers.first().and_then(|p| u32::try_from(*p).ok()) else {
                continue;
            };
            // `fencekit-PID-START-N-NANOS`: its maker lives if a process has that
            // pid and started then (a pid is given again, a start time is not).
            let alive = match numbers[..] {
                [_, start, _, _] => started_at(pid) == Some(start),
                _ => std::path::Path::new(&format!("/proc/{pid}")).exists(),
            };
            if pid == std::process::id() || alive {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let left = Cgroup {
                dir: entry.path(),
                home: home.to_path_buf(),
                made: std::sync::OnceLock::from(meta.ino()),
            };
            match left.populated() {
                Some(false) => {
                    tracing::info!(cgroup = %left.dir.display(), "removing a cgroup a fencekit that is gone left");
                    left.remove();
                }
                _ => tracing::warn!(
                    cgroup = %left.dir.display(),
                    "a fencekit that is gone left processes in this cgroup"
                ),
            }
            // Dropped: a second removal, which fails harmlessly.
        }
    }

    /// Whether the system gives programs cgroups of their own here.
    #[cfg(test)]
    fn available() -> bool {
        Cgroup::plan().is_some_and(|cgroup| cgroup.make())
    }

    /// `cgroup.procs`, open to write, for the supervisor to place itself in it
    /// between fork and exec.
    fn procs(&self) -> Option<std::fs::File> {
        if !self.unchanged() {
            return None;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
            .ok()
    }

    /// Whether process `pid` may be in it now: alive, and its own
    /// `/proc/PID/cgroup` names it, or cannot be read. (Never read from the
    /// cgroup's `cgroup.procs`: read in pieces while processes come and go, a
    /// list that long can skip a pid.)
    fn holds(&self, pid: i32) -> bool {
        if !matches!(parent_of(pid), Ok(Some(p)) if !p.zombie) {
            // Gone, or dead: in no cgroup's list.
            return false;
        }
        std::fs::metadata(format!("/proc/{pid}/cgroup")).is_err() || self.named_by(pid)
    }

    /// Whether process `pid`'s own `/proc/PID/cgroup` names this cgroup (or one
    /// below it: the name is unique).
    fn named_by(&self, pid: i32) -> bool {
        let Some(name) = self.dir.file_name() else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|groups| {
            groups
                .lines()
                .filter_map(|l| l.strip_prefix("0::"))
                .any(|own| {
                    std::path::Path::new(own)
                        .components()
                        .any(|c| c.as_os_str() == name)
                })
        })
    }

    /// Ends every process in it but `supervisor`, which is moved back to
    /// fencekit's cgroup first, by `by`, and removes it: whether it is empty
    /// then (none when it could not be killed: the hunt is the only line).
    ///
    /// `cgroup.kill` misses a process whose main thread ended while another
    /// thread lives on (it signals the dead thread alone, which wakes none of
    /// the others): so every process still listed in it a moment later is
    /// killed as a whole too, through a pidfd, if it is still in it then.
    fn end(&self, supervisor: i32, by: StdInstant) -> Option<bool> {
        let write = |file: &std::path::Path, what: &str| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .and_then(|mut f| f.write_all(what.as_bytes()))
                .is_ok()
        };
        // (A supervisor that is dead already cannot be moved, and is in no
        // cgroup's list.)
        let _ = write(&self.home.join("cgroup.procs"), &supervisor.to_string());
        if self.holds(supervisor) {
            // Still in it (the move failed): killing the cgroup would kill the
            // supervisor, and with it the program's status.
            return None;
        }
        if !self.unchanged() || !write(&self.dir.join("cgroup.kill"), "1") {
            return None;
        }
        let killed = StdInstant::now();
        let mut rounds = 0u32;
        let emptied = loop {
            match self.populated() {
                Some(false) => break true,
                _ if StdInstant::now() >= by => break false,
                _ => {}
            }
            if killed.elapsed() >= Duration::from_millis(2) && rounds % 16 == 0 {
                // Again: a process forked since (below a thread that outlived
                // its main one) is in it too.
                if self.unchanged() {
                    let _ = write(&self.dir.join("cgroup.kill"), "1");
                }
                for dir in self.tree() {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        if pid != supervisor {
                            signal_pinned(pid, || self.named_by(pid), Signal::SIGKILL);
                        }
                    }
                }
            }
            rounds = rounds.wrapping_add(1);
            std::thread::sleep(Duration::from_micros(250));
        };
        if emptied {
            // Removed at once: a front end ending fencekit by a signal exits
            // without dropping it.
            self.remove();
        }
        Some(emptied)
    }

    /// Whether a live process is in it (none when that cannot be read; a
    /// zombie is no live process). Gone counts as empty: only an empty cgroup
    /// can be removed.
    fn populated(&self) -> Option<bool> {
        match std::fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(events) => events
                .lines()
                .find_map(|l| l.strip_prefix("populated "))
                .map(|n| n.trim() != "0"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }

    /// Removes it, and the cgroups the program made below it (a program may make
    /// them and move into them: the kill reached them all the same), deepest
    /// first, at most 10000 of them. Fails, harmlessly, while a process lives in
    /// one of them (a run that could not end it failed).
    fn remove(&self) {
        if !self.unchanged() {
            return;
        }
        // A cgroup just removed stays online a moment (the kernel offlines it
        // on a work queue): its parent's removal fails meanwhile, so a pass
        // that left it is tried again while it is empty, for a moment.
        let by = StdInstant::now() + Duration::from_millis(200);
        loop {
            // Each directory after its parent: children first.
            for dir in self.tree().iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            if !self.dir.exists() || self.populated() != Some(false) || StdInstant::now() >= by {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// It and the cgroups below it (at most 10000), each after its parent.
    fn tree(&self) -> Vec<std::path::PathBuf> {
        let mut found = vec![self.dir.clone()];
        let mut next = 0;
        while next < found.len() && found.len() < 10_000 {
            if let Ok(entries) = std::fs::read_dir(&found[next]) {
                found.extend(
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            next += 1;
        }
        found
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Fails, harmlessly, while a process lives in it (one that could not be
        // ended: the run failed) or when the supervisor removed it.
        self.remove();
    }
}

/// When process `pid` started (clock ticks after boot, `/proc/PID/stat` field
/// 22); none when it is gone.
fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// fencekit's own cgroup v2 directory, below which each program it starts gets
/// one of its own (`fencekit-PID-…`, see [`Cgroup`]); none where it cannot be
/// found.
pub fn cgroup_home() -> Option<std::path::PathBuf> {
    own_cgroup()
}

/// fencekit's own cgroup v2 directory: the `0::` line of `/proc/self/cgroup`
/// below the mount point of a `cgroup2` file system in `/proc/self/mountinfo`
/// whose root holds it (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid system) that holds a `cgroup.procs`. (Not checked by finding fencekit's
/// pid in it: a long list read in pieces while processes come and go can skip
/// one.)
fn own_cgroup() -> Option<std::path::PathBuf> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let found = cgroup_dirs(&groups, &mounts).find(|dir| dir.join("cgroup.procs").is_file());
    found
}

/// Where the cgroup (v2) that `groups` (a `/proc/PID/cgroup`) names may be, one
/// per `cgroup2` mount in `mounts` (a `/proc/PID/mountinfo`) whose root holds it.
fn cgroup_dirs<'a>(
    groups: &'a str,
    mounts: &'a str,
) -> impl Iterator<Item = std::path::PathBuf> + 'a {
    let own = groups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|own| own.starts_with('/') && !own.ends_with(" (deleted)"));
    mounts.lines().filter_map(move |line| {
        let own = own?;
        let (fields, fs) = line.split_once(" - ")?;
        if fs.split(' ').next() != Some("cgroup2") {
            return None;
        }
        let mut fields = fields.split(' ').skip(3);
        let (root, point) = (unescape(fields.next()?), unescape(fields.next()?));
        let below = if root == "/" {
            own
        } else {
            own.strip_prefix(root.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))?
        };
        Some(std::path::Path::new(&point).join(below.trim_start_matches('/')))
    })
}

/// A `/proc/self/mountinfo` field with its octal escapes (`\040` for a blank)
/// undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The command the program's shell runs under, looked for once, in the system's
/// own directories only (never through a `PATH` the site set): `setsid`
/// (util-linux, or BusyBox's), which gives it a session and group of its own; or
/// nothing. (A system path: no blank in it, for the supervisor's `$g`.)
///
/// (A PID namespace of its own, which the kernel empties when its first process
/// exits, was tried and withdrawn: every script saw itself as pid 2, so that
/// `/tmp/x.$$` files of two runs at once collided and a stuck outlet read "off";
/// host pids in pid files and `kill -0` checks vanished; and its private mount
/// namespace kept a filesystem the host had unmounted alive, with its superblock,
/// until the script ended.)
fn container() -> &'static OsStr {
    static FOUND: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        [
            "/usr/bin/setsid",
            "/bin/setsid",
            "/usr/sbin/setsid",
            "/sbin/setsid",
        ]
        .into_iter()
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(Into::into)
        .unwrap_or_default()
    })
}

/// `/bin/sh -c SCRIPT` as a [`Program`].
pub fn shell(script: &str) -> Program {
    let mut command = program("/bin/sh");
    command.arg("-c").arg(script);
    command
}

/// A process group of its own (led by the supervisor), an environment without the
/// registered secrets, the supervisor the reaper of its program's orphans, and
/// SIGTERM to the supervisor when the thread that started it dies.
fn prepare(command: &mut Command) {
    command.process_group(0);
    crate::secret::scrub_env(command);
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed; it makes seven system calls,
    // sigaction(2) twice, sigprocmask(2), prctl(2) twice and getppid(2), and
    // allocates nothing on success.
    unsafe {
        command.pre_exec(move || {
            use nix::sys::signal::{sigaction, sigprocmask, SaFlags, SigAction, SigHandler};
            use nix::sys::signal::{SigSet, SigmaskHow};
            // Until exec the child has fencekit's handlers: the parent-death
            // signal (fencekit killed while this child is being set up, its
            // placement in a cgroup taking milliseconds) would be taken by
            // fencekit's SIGTERM handler and lost, and the supervisor would
            // start orphaned, never to know. At its default it ends the child
            // before anything runs.
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for signal in [Signal::SIGTERM, Signal::SIGHUP] {
                sigaction(signal, &default).map_err(std::io::Error::from)?;
            }
            let mut deadly = SigSet::empty();
            deadly.add(Signal::SIGTERM);
            deadly.add(Signal::SIGHUP);
            sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&deadly), None)
                .map_err(std::io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            // Kept across exec: the supervisor shell adopts its program's orphans.
            nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
            // fencekit died before the signal was armed: nothing would deliver it.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The children fencekit started and has not reaped yet.
struct Registry {
    /// The process groups of the programs running now (each led by its
    /// supervisor), with their cgroups: taken out just before the supervisor is
    /// reaped.
    groups: Vec<(i32, Option<Arc<Cgroup>>)>,
    /// The supervisors not reaped yet: taken out just after they are reaped, so
    /// that [`wind_up`] can give abandoned programs a moment to be reaped.
    unreaped: Vec<i32>,
}

static LIVE: Mutex<Registry> = Mutex::new(Registry {
    groups: Vec::new(),
    unreaped: Vec::new(),
});

fn live() -> std::sync::MutexGuard<'static, Registry> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every child running now, what it started (see [`end_below`]) and its
/// process group; how many children. For a front end that is being stopped:
/// called from a thread or task, never from a signal handler.
pub fn kill_all() -> usize {
    // The registry stays locked throughout: a supervisor is taken out of it
    // before it is reaped, so none of these can be reaped (and its pid given to
    // another process) while it is being ended.
    let registry = live();
    for (group, cgroup) in &registry.groups {
        end_program(Pid::from_raw(*group), cgroup.as_deref());
    }
    registry.groups.len()
}

/// Ends a running program led by supervisor `group`: its cgroup killed; then (the
/// second line, for what moved out of the cgroup, or the only one without) its
/// group stopped (nothing in it forks meanwhile) and every process below the
/// supervisor killed; then the group.
fn end_program(group: Pid, cgroup: Option<&Cgroup>) {
    if let Some(cgroup) = cgroup {
        cgroup.end(group.as_raw(), StdInstant::now() + HUNT);
    }
    let _ = killpg(group, Signal::SIGSTOP);
    // A child of the supervisor that leads a group of its own (a helper that
    // left with `setsid`, adopted): its group stopped too. (A group id is a live
    // leader's pid, or one the kernel keeps from reuse while the group lives:
    // this reaches no one else.)
    let children =
        std::fs::read_to_string(format!("/proc/{group}/task/{group}/children")).unwrap_or_default();
    let leaders: Vec<Pid> = children
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect();
    for leader in &leaders {
        let _ = killpg(*leader, Signal::SIGSTOP);
    }
    end_below(group.as_raw(), StdInstant::now() + HUNT);
    for leader in &leaders {
        let _ = killpg(*leader, Signal::SIGKILL);
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// How long [`end_program`]'s hunt may take: the program is past its deadline or
/// abandoned by then.
const HUNT: Duration = Duration::from_millis(500);

/// What [`end_below`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hunt {
    /// Processes killed.
    pub killed: usize,
    /// Whether every process below the supervisor was ended by the time given
    /// (when not, what was found was killed all the same, but more may live).
    pub complete: bool,
}

/// Ends every process below `supervisor` (its children, theirs, and so on, whatever
/// their group or session) by `by`, in two phases of rounds, each round a fresh
/// read of `/proc`:
///
/// 1. every process found is stopped (SIGSTOP), again whenever it is seen running
///    (another may have sent it SIGCONT), until a round finds no process it had
///    not seen, no new zombie, and every one stopped: nothing below forks any more;
/// 2. every one is killed (SIGKILL), and so is any process found after, until a
///    round finds nothing alive below and no new zombie. (A kill can wake others:
///    a process group orphaned by it while it holds stopped members is sent
///    SIGHUP and SIGCONT by the kernel; a process that hops from pid to pid, each
///    copy forking and exiting, leaves zombies below the supervisor, which does
///    not reap them while it waits.)
///
/// A round that could not read all of `/proc` (out of descriptors, say) counts as
/// finding something new. A process killed hands its children to the supervisor,
/// the reaper of its program's orphans, so nothing leaves the tree while it is
/// read. Each signal goes through a pidfd opened for it and closed after (one
/// descriptor at a time, however many processes), after the process's parent was
/// read again: a pid that ended and was given to another process is never
/// signalled. A zombie is killed once, when found: its main thread ended, but
/// other threads of it may live on (a helper that called pthread_exit), and
/// SIGKILL to its pid ends them all; only the supervisor can reap it.
pub fn end_below(supervisor: i32, by: StdInstant) -> Hunt {
    use std::collections::HashSet;
    let mut seen: HashSet<i32> = HashSet::new();
    let mut zombies: HashSet<i32> = HashSet::new();
    let mut killed: HashSet<i32> = HashSet::new();
    let mut killing = false;
    let complete = loop {
        let (table, whole) = processes();
        let below = descendants(&table, supervisor);
        let set: HashSet<i32> = below.iter().map(|p| p.pid).collect();
        let mut settled = whole;
        for p in &below {
            if p.zombie {
                if zombies.insert(p.pid) {
                    settled = false;
                    if signal_below(p.pid, supervisor, &set, Signal::SIGKILL) {
                        killed.insert(p.pid);
                    }
                }
                continue;
            }
            if seen.insert(p.pid) {
                settled = false;
            }
            if killing {
                // Alive: killed now, or dying from an earlier kill.
                settled = false;
                if signal_below(p.pid, supervisor, &set, Signal::SIGKILL) {
                    killed.insert(p.pid);
                }
            } else if !p.stopped {
                settled = false;
                signal_below(p.pid, supervisor, &set, Signal::SIGSTOP);
            }
        }
        if settled {
            if killing {
                break true;
            }
            killing = true;
            for p in &below {
                if signal_below(p.pid, supervisor, &set, Signal::SIGKILL) {
                    killed.insert(p.pid);
                }
            }
            continue;
        }
        if StdInstant::now() >= by {
            break false;
        }
        std::thread::yield_now();
    };
    if !complete {
        // Out of time: whatever is below now is killed all the same.
        let (table, _) = processes();
        let below = descendants(&table, supervisor);
        let set: HashSet<i32> = below.iter().map(|p| p.pid).collect();
        for p in below.iter().filter(|p| !p.zombie) {
            if signal_below(p.pid, supervisor, &set, Signal::SIGKILL) {
                killed.insert(p.pid);
            }
        }
    }
    Hunt {
        killed: killed.len(),
        complete,
    }
}

/// Sends `signal` to `pid` if it is (still) below `supervisor`, `below` being
/// what was read below it: the process is pinned with a pidfd first and its
/// parent read after, so that a pid that ended and was given to another process
/// meanwhile is never signalled. Whether it was sent.
fn signal_below(
    pid: i32,
    supervisor: i32,
    below: &std::collections::HashSet<i32>,
    signal: Signal,
) -> bool {
    let is_below =
        || matches!(parent_of(pid), Ok(Some(p)) if p.ppid == supervisor || below.contains(&p.ppid));
    signal_pinned(pid, is_below, signal)
}

/// Sends `signal` to process `pid` (all its threads) if `ours` holds once the
/// process is pinned with a pidfd (a pid that ended and was given to another
/// process meanwhile is never signalled). Whether it was sent.
fn signal_pinned(pid: i32, ours: impl Fn() -> bool, signal: Signal) -> bool {
    use nix::libc;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(fd) = i32::try_from(fd) else {
        return false;
    };
    if fd < 0 {
        // A kernel before 5.3 has no pidfds: the parent is read just before the
        // signal instead, which leaves a window of microseconds.
        return nix::errno::Errno::last() == nix::errno::Errno::ENOSYS
            && ours()
            && nix::sys::signal::kill(Pid::from_raw(pid), signal).is_ok();
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !ours() {
        return false;
    }
    // SAFETY: pidfd_send_signal(2) with a pidfd, a signal number and no siginfo;
    // it touches no memory of ours.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0
}

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
    ppid: i32,
    /// Dead, not reaped (Z, X).
    zombie: bool,
    /// Stopped (T, t).
    stopped: bool,
}

/// Every process, from `/proc`, and whether all of it could be read (a process
/// that ended while it was read counts as read).
fn processes() -> (Vec<Proc>, bool) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (Vec::new(), false);
    };
    let mut whole = true;
    let mut table = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else {
            whole = false;
            continue;
        };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        match parent_of(pid) {
            Ok(Some(p)) => table.push(p),
            Ok(None) => {}
            Err(()) => whole = false,
        }
    }
    (table, whole)
}

/// Process `pid` as `/proc/PID/stat` shows it (fields 3 and 4, state and parent,
/// after the command name in parentheses, which may itself hold blanks and
/// parentheses): none when it is gone, an error when it could not be read.
fn parent_of(pid: i32) -> Result<Option<Proc>, ()> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(nix::libc::ESRCH) =>
        {
            return Ok(None)
        }
        Err(_) => return Err(()),
    };
    let parsed = (|| {
        let (_, after_name) = stat.rsplit_once(')')?;
        let mut fields = after_name.split_ascii_whitespace();
        let state = fields.next()?;
        let ppid: i32 = fields.next()?.parse().ok()?;
        Some(Proc {
            pid,
            ppid,
            zombie: state == "Z" || state == "X",
            stopped: state == "T" || state == "t",
        })
    })();
    parsed.map(Some).ok_or(())
}

/// The processes below `root` in `table`.
fn descendants(table: &[Proc], root: i32) -> Vec<Proc> {
    let mut children: std::collections::HashMap<i32, Vec<&Proc>> = std::collections::HashMap::new();
    for p in table.iter().filter(|p| p.pid != root) {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut seen = std::collections::HashSet::from([root]);
    let mut parents = vec![root];
    let mut below = Vec::new();
    while let Some(parent) = parents.pop() {
        for p in children.get(&parent).into_iter().flatten() {
            if seen.insert(p.pid) {
                parents.push(p.pid);
                below.push(**p);
            }
        }
    }
    below
}

/// Kills every program still running and what it started, for a front end about
/// to exit, and gives the programs a deadline abandoned a moment to be reaped by
/// their own threads.
pub fn wind_up() {
    if kill_all() > 0 {
        let by = StdInstant::now() + Duration::from_millis(200);
        while !live().unreaped.is_empty() && StdInstant::now() < by {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Runs `command` (prepared, see [`prepare`]) with `input` on its standard input,
/// and waits for it until `deadline`, blocking the calling thread.
pub fn run_by(
    command: Program,
    input: Option<&[u8]>,
    deadline: StdInstant,
    limits: Limits,
) -> Result<Finished, ChildError> {
    run_blocking(command, input, deadline, limits, None)
}

/// [`run_by`] for async code: the waiting happens on a thread of its own, and if
/// the caller stops waiting (its own deadline dropped this future) the program and
/// its group are killed within moments.
pub async fn run(
    command: Program,
    input: Option<Zeroizing<Vec<u8>>>,
    deadline: crate::Instant,
    limits: Limits,
) -> Result<Finished, ChildError> {
    // The async deadline on the real clock the thread measures.
    let remaining = deadline.saturating_duration_since(crate::Instant::now());
    let real_deadline = StdInstant::now() + remaining;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(Arc::clone(&cancel));
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fencekit-child".into())
        .spawn(move || {
            let result = run_blocking(
                command,
                input.as_deref().map(Vec::as_slice),
                real_deadline,
                limits,
                Some(&cancel),
            );
            let _ = tx.send(result);
        })
        .map_err(|e| ChildError::Spawn(format!("no thread to wait for it: {e}")))?;
    rx.await
        .unwrap_or_else(|_| Err(ChildError::Io("lost track of it".into())))
}

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The pause before starting a program again that is "text file busy" (being
/// written, or a descriptor of the writer not yet closed in a forked process).
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// The longest wait on output between two looks at the program and the clock.
const TICK: Duration = Duration::from_millis(10);
/// After the program exited and its group was killed: how long to collect what is
/// still in the pipes.
const DRAIN: Duration = Duration::from_millis(200);

enum Chunk {
    Out(Zeroizing<Vec<u8>>),
    Err(Vec<u8>),
    /// Standard output went past its limit; the rest was dropped.
    OutCut,
    OutClosed,
    ErrClosed,
}

fn run_blocking(
    mut command: Program,
    input: Option<&[u8]>,
    deadline: StdInstant,
    limits: Limits,
    cancel: Option<&AtomicBool>,
) -> Result<Finished, ChildError> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (go, ended) = supervisor_pipes(&mut command)
        .map_err(|e| ChildError::Spawn(format!("no pipes for its supervisor: {e}")))?;
    let mut cgroup = command.cgroup.take().filter(Cgroup::make).map(Arc::new);
    let procs = cgroup.as_deref().and_then(Cgroup::procs);
    if procs.is_none() {
        cgroup = None;
    }
    let place = Arc::new(AtomicBool::new(procs.is_some()));
    if let Some(procs) = &procs {
        let (fd, place) = (procs.as_raw_fd(), Arc::clone(&place));
        // SAFETY: the closure runs in the child between fork and exec; it reads
        // an atomic and makes one write(2), async-signal-safe, and allocates
        // nothing on success. `procs` is open (close-on-exec) until the spawn
        // returned.
        unsafe {
            command.pre_exec(move || {
                if place.load(Ordering::SeqCst)
                    && nix::libc::write(fd, b"0".as_ptr().cast(), 1) != 1
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let started = StdInstant::now();
    let mut child = loop {
        // Spawned and registered under one lock: [`kill_all`] on another thread
        // never misses this supervisor.
        let mut registry = live();
        match command.spawn() {
            Err(e)
                if e.raw_os_error() == Some(nix::libc::ETXTBSY)
                    && StdInstant::now() + RETRY_PAUSE < deadline =>
            {
                drop(registry);
                std::thread::sleep(RETRY_PAUSE);
            }
            Err(_) if place.swap(false, Ordering::SeqCst) => {
                // Perhaps it could not be placed in its cgroup (nothing ran):
                // again without one, the hunt the only line.
                cgroup = None;
            }
            Err(e) => return Err(ChildError::Spawn(e.to_string())),
            Ok(child) => {
                // The group is registered until just before the child is reaped:
                // unreaped, the child holds its group id, so a kill through the
                // registry can never reach another's group.
                let id = i32::try_from(child.id()).unwrap_or(i32::MAX);
                registry.groups.push((id, cgroup.clone()));
                registry.unreaped.push(id);
                break child;
            }
        }
    };
    // The supervisor's ends are its own now: only its closing them counts.
    drop(command);
    drop(procs);
    let Pipe { ours: go, theirs } = go;
    drop(theirs);
    let mut go = Some(go);
    let Pipe {
        ours: ended,
        theirs,
    } = ended;
    drop(theirs);
    let (tx, rx) = mpsc::channel();
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = Zeroizing::new(input.to_vec());
        // A program that never reads its input must not hold us: the writer is a
        // thread of its own, ended by a broken pipe when the group is killed.
        let _ = std::thread::Builder::new()
            .name("fencekit-child-in".into())
            .spawn(move || {
                let _ = stdin.write_all(&input);
            });
    }
    spawn_reader(
        child.stdout.take(),
        limits.stdout,
        tx.clone(),
        |b| Chunk::Out(Zeroizing::new(b)),
        Some(Chunk::OutCut),
        Chunk::OutClosed,
    );
    spawn_reader(
        child.stderr.take(),
        limits.stderr,
        tx,
        Chunk::Err,
        None,
        Chunk::ErrClosed,
    );

    let mut out = Output::default();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let mut hunted = None;
    loop {
        if go.is_some() && closed(&ended) && abandoned_at_its_end() {
            // (A test's stand-in for fencekit dying here: let go, nothing ended.)
            go = None;
        }
        if go.is_some() && closed(&ended) {
            // The program exited and the supervisor waits: what the program
            // started is below it, whatever group or session it went to. Ended
            // now, by the program's deadline, then the supervisor may go.
            let emptied = cgroup
                .as_deref()
                .and_then(|c| c.end(pid.as_raw(), deadline));
            // The hunt after the cgroup's kill: the only line without one, the
            // second with it (for a process that moved itself out of it).
            let hunt = end_below(pid.as_raw(), deadline);
            hunted = Some(hunt.complete && emptied != Some(false));
            go = None;
        }
        let looked = waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        if !matches!(looked, Ok(WaitStatus::StillAlive)) {
            if looked.is_ok() {
                if go.is_some() {
                    // Gone before it was let go (killed): what it started is
                    // ended with its cgroup, if it has one.
                    if let Some(cgroup) = &cgroup {
                        cgroup.end(pid.as_raw(), StdInstant::now() + HUNT);
                    }
                }
                // Unreaped, the program still holds its group id: the kill reaches
                // only what it left behind.
                let _ = killpg(pid, Signal::SIGKILL);
            }
            // Otherwise it cannot be waited for at all (a process that ignores
            // SIGCHLD has its children reaped by the kernel): its group id may be
            // another's by now, so nothing is killed, and `wait` below says why.
            let drain_by = StdInstant::now() + DRAIN;
            while !out.closed() {
                let now = StdInstant::now();
                if now >= drain_by {
                    break;
                }
                match rx.recv_timeout(drain_by - now) {
                    Ok(chunk) => out.take(chunk, limits),
                    Err(_) => break,
                }
            }
            unregister(pid);
            let status = child.wait();
            reaped(pid);
            let status = status.map_err(|e| ChildError::Io(format!("cannot wait for it: {e}")))?;
            if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                // The supervisor exits with the program's status, never by a
                // signal: it was killed, and what it had adopted went to init.
                return Err(ChildError::Io(format!(
                    "its supervisor was killed (signal {signal}) before it was done: what \
                     it started may live on"
                )));
            }
            if hunted == Some(false) {
                // What it left may still run (and fork): never a success.
                return Err(ChildError::LeftRunning(started.elapsed()));
            }
            return Ok(Finished {
                status,
                stdout: out.stdout,
                stderr: out.stderr,
                stdout_cut: out.stdout_cut,
            });
        }
        let now = StdInstant::now();
        if now >= deadline {
            kill(&mut child, pid, cgroup.as_deref());
            return Err(ChildError::TimedOut(started.elapsed()));
        }
        if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            kill(&mut child, pid, cgroup.as_deref());
            return Err(ChildError::Cancelled);
        }
        if go.is_none() {
            // Released: the supervisor exits at once.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        match rx.recv_timeout(TICK.min(deadline - now)) {
            Ok(chunk) => out.take(chunk, limits),
            // Both readers done, or nothing yet: look at the program again.
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(TICK.min(deadline - now))
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Set by a test: [`run_blocking`] lets the supervisor go as soon as the
    /// program exits, ending nothing, as a fencekit killed at that moment would.
    static ABANDON_AT_ITS_END: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a test asked [`run_blocking`] to let the supervisor go at the
/// program's end without ending anything (never, outside tests).
fn abandoned_at_its_end() -> bool {
    #[cfg(test)]
    return ABANDON_AT_ITS_END.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
}

/// Both ends of one pipe between fencekit and a supervisor.
struct Pipe {
    ours: OwnedFd,
    theirs: OwnedFd,
}

/// The pipes of the supervisor's descriptors [`GO_FD`] (it reads) and
/// [`ENDED_FD`] (it closes), set up on `command`'s side at exec. Every end is
/// close-on-exec and numbered 10 or more here, so that placing them at 4 and 5
/// in the child overwrites none of them.
fn supervisor_pipes(command: &mut Program) -> nix::Result<(Pipe, Pipe)> {
    fn high(fd: OwnedFd) -> nix::Result<OwnedFd> {
        let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10))?;
        // SAFETY: `raw` was just returned by fcntl(2) and is owned by nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }
    let (go_theirs, go_ours) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (ended_ours, ended_theirs) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let go = Pipe {
        ours: high(go_ours)?,
        theirs: high(go_theirs)?,
    };
    let ended = Pipe {
        ours: high(ended_ours)?,
        theirs: high(ended_theirs)?,
    };
    let (go_fd, ended_fd) = (go.theirs.as_raw_fd(), ended.theirs.as_raw_fd());
    // SAFETY: the closure runs in the child between fork and exec; it makes two
    // dup2(2) calls, async-signal-safe, and allocates nothing. dup2 clears
    // close-on-exec on the copies, and only on them.
    unsafe {
        command.pre_exec(move || {
            use nix::libc::dup2;
            if dup2(go_fd, GO_FD) < 0 || dup2(ended_fd, ENDED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((go, ended))
}

/// Whether the supervisor closed its end of `ended` (or is gone).
fn closed(ended: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    matches!(nix::unistd::read(ended, &mut byte), Ok(0))
}

/// Takes a child's group out of [`LIVE`]; called just before the child is reaped.
fn unregister(pid: Pid) {
    live().groups.retain(|(g, _)| *g != pid.as_raw());
}

/// Takes a child out of [`LIVE`] for good; called just after it was reaped.
fn reaped(pid: Pid) {
    live().unreaped.retain(|g| *g != pid.as_raw());
}

fn kill(child: &mut Child, pid: Pid, cgroup: Option<&Cgroup>) {
    end_program(pid, cgroup);
    let _ = child.kill();
    unregister(pid);
    let _ = child.wait();
    reaped(pid);
}

#[derive(Default)]
struct Output {
    stdout: Zeroizing<Vec<u8>>,
    stderr: Vec<u8>,
    stdout_cut: bool,
    out_closed: bool,
    err_closed: bool,
}

impl Output {
    fn take(&mut self, chunk: Chunk, limits: Limits) {
        match chunk {
            Chunk::Out(bytes) => {
                let room = limits.stdout.saturating_sub(self.stdout.len());
                self.stdout
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Chunk::Err(bytes) => {
                let room = limits.stderr.saturating_sub(self.stderr.len());
                self.stderr
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Chunk::OutCut => self.stdout_cut = true,
            Chunk::OutClosed => self.out_closed = true,
            Chunk::ErrClosed => self.err_closed = true,
        }
    }

    fn closed(&self) -> bool {
        self.out_closed && self.err_closed
    }
}

/// Reads a pipe to its end on a thread, handing each piece over as it comes (up to
/// `limit` in all; the rest is read and dropped).
fn spawn_reader(
    pipe: Option<impl Read + Send + 'static>,
    limit: usize,
    tx: mpsc::Sender<Chunk>,
    wrap: impl Fn(Vec<u8>) -> Chunk + Send + 'static,
    mut cut: Option<Chunk>,
    closed: Chunk,
) {
    let Some(mut pipe) = pipe else {
        let _ = tx.send(closed);
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("fencekit-child-out".into())
        .spawn(move || {
            let mut sent = 0;
            let mut buf = Zeroizing::new(vec![0u8; 8192]);
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let keep = n.min(limit - sent);
                        if keep > 0 {
                            sent += keep;
                            if tx.send(wrap(buf[..keep].to_vec())).is_err() {
                                break;
                            }
                        }
                        if keep < n {
                            if let Some(cut) = cut.take() {
                                let _ = tx.send(cut);
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(closed);
        });
    // Without a reader thread the pipe is dropped: the program sees a closed pipe,
    // and we see no output, never a hang.
    let _ = spawned;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        stdout: 4096,
        stderr: 4096,
    };

    fn soon(secs: u64) -> StdInstant {
        StdInstant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn a_program_that_leaves_a_child_holding_its_output_returns_when_it_exits() {
        let started = StdInstant::now();
        let done = run_by(shell("echo pw; sleep 25 &"), None, soon(10), LIMITS).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(&done.stdout[..], b"pw\n");
        assert!(done.status.success());
    }

    #[test]
    fn the_children_a_program_left_behind_are_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        for container in containers() {
            let mark = marked_sleep();
            let script = format!(
                "sleep {mark} & echo $! > {}",
                dir.path().join("pid").display()
            );
            run_by(shell_in(&script, &container), None, soon(10), LIMITS).unwrap();
            // Killed; reaped soon after, so wait a little for it to vanish or be
            // a zombie.
            assert!(
                ends_soon(&mark),
                "{container:?}: the background sleep outlived its group"
            );
        }
    }

    /// One way a program may be contained.
    #[derive(Debug)]
    struct Containment {
        /// `setsid`'s path, or empty.
        setsid: std::ffi::OsString,
        /// In a cgroup of its own.
        cgroup: bool,
    }

    /// Every way a program may be contained here: a session of its own
    /// (`setsid`, where there is one), or not; a cgroup of its own (where the
    /// system gives one), or not.
    fn containers() -> Vec<Containment> {
        let mut setsids = vec![container().to_os_string()];
        if !container().is_empty() {
            setsids.push(std::ffi::OsString::new());
        }
        let cgroups: &[bool] = if Cgroup::available() {
            &[true, false]
        } else {
            &[false]
        };
        setsids
            .iter()
            .flat_map(|setsid| {
                cgroups.iter().map(|&cgroup| Containment {
                    setsid: setsid.clone(),
                    cgroup,
                })
            })
            .collect()
    }

    fn shell_in(script: &str, containment: &Containment) -> Program {
        let cgroup = if containment.cgroup {
            Some(Cgroup::plan().expect("a cgroup"))
        } else {
            None
        };
        let mut command = program_in("/bin/sh", &containment.setsid, cgroup);
        command.arg("-c").arg(script);
        command
    }

    /// A `sleep` length no other process on the machine runs: it marks a
    /// program's helper in `/proc` wherever it went (a pid the helper reads for
    /// itself would be one of a namespace of its own, were it in one).
    pub(crate) fn marked_sleep() -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        format!(
            "25.{}{:03}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Whether every process running `sleep MARK` is gone (or dead) within two
    /// seconds.
    pub(crate) fn ends_soon(mark: &str) -> bool {
        let alive = || {
            processes().0.iter().filter(|p| !p.zombie).any(|p| {
                std::fs::read(format!("/proc/{}/cmdline", p.pid))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|w| w == mark.as_bytes()))
            })
        };
        (0..100).any(|_| {
            let alive = alive();
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        })
    }

    #[test]
    fn what_left_the_group_ends_with_the_program_and_nothing_else_does() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        // A process of this test's own, in a group of its own, as a library
        // would start one: never fencekit's to end.
        let mut neighbour = Command::new("sleep")
            .arg("20")
            .process_group(0)
            .spawn()
            .unwrap();
        for container in containers() {
            for how in ["setsid", "set -m;"] {
                let pid_file = dir.path().join("pid");
                let mark = marked_sleep();
                // A chain: the stray's own child does the sleeping.
                let script = format!(
                    "{how} sh -c 'sleep {mark} & echo $! > {0}; wait' & \
                     while [ ! -s {0} ]; do sleep 0.01; done",
                    pid_file.display()
                );
                run_by(shell_in(&script, &container), None, soon(10), LIMITS).unwrap();
                assert!(
                    ends_soon(&mark),
                    "{container:?}, {how}: the stray outlived its program"
                );
                std::fs::remove_file(&pid_file).unwrap();
            }
        }
        // Past the deadline too.
        let mark = marked_sleep();
        let script = format!("setsid sleep {mark} & sleep 25");
        let err = run_by(
            shell(&script),
            None,
            StdInstant::now() + Duration::from_millis(500),
            LIMITS,
        )
        .unwrap_err();
        assert!(matches!(err, ChildError::TimedOut(_)), "{err}");
        assert!(ends_soon(&mark), "the stray outlived its killed program");
        assert!(
            neighbour.try_wait().unwrap().is_none(),
            "a process the program did not start was ended"
        );
        let _ = neighbour.kill();
        let _ = neighbour.wait();
    }

    #[test]
    fn a_program_that_kills_its_own_group_leaves_no_helper_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A helper in a session of its own (the script's parent shell gone with
        // the group kill, it is adopted), then SIGKILL to the script's own group:
        // before, the supervisor was in that group, died with it, and the helper
        // went to init.
        // Without setsid the supervisor shares the group: a known limit.
        for container in containers().iter().filter(|c| !c.setsid.is_empty()) {
            let mark = marked_sleep();
            let script = format!(
                "setsid sh -c 'sleep {mark} & echo $! > {0}; wait' & \
                 while [ ! -s {0} ]; do sleep 0.01; done; kill -KILL 0",
                pid_file.display()
            );
            let started = StdInstant::now();
            let done = run_by(shell_in(&script, container), None, soon(10), LIMITS).unwrap();
            assert!(!done.status.success(), "{container:?}: {:?}", done.status);
            assert!(started.elapsed() < Duration::from_secs(3));
            assert!(
                ends_soon(&mark),
                "{container:?}: the helper outlived the run"
            );
            std::fs::remove_file(&pid_file).unwrap();
        }
    }

    #[test]
    fn a_hunt_past_its_time_says_it_may_have_left_some_and_kills_what_it_found() {
        let tree = || {
            Command::new("sh")
                .args(["-c", "sleep 30 & sleep 30 & wait"])
                .spawn()
                .unwrap()
        };
        let below = |root: i32| {
            // The two sleeps (after the shell forked them).
            let by = StdInstant::now() + Duration::from_secs(5);
            loop {
                let n = descendants(&processes().0, root)
                    .iter()
                    .filter(|p| !p.zombie)
                    .count();
                if n == 2 || StdInstant::now() > by {
                    return n;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        for (by, complete) in [(Duration::ZERO, false), (Duration::from_secs(5), true)] {
            let mut root = tree();
            let pid = i32::try_from(root.id()).unwrap();
            assert_eq!(below(pid), 2);
            let hunt = end_below(pid, StdInstant::now() + by);
            assert_eq!(
                hunt,
                Hunt {
                    killed: 2,
                    complete
                },
                "{by:?}"
            );
            // Both sleeps killed: the shell's wait returns.
            let status = root.wait().unwrap();
            assert!(status.success(), "{status:?}");
        }
    }

    /// Whether the system gives programs cgroups of their own; where the test
    /// command requires every peer (`FENCEKIT_REQUIRE_PEERS=1`, as root with
    /// cgroup v2), that it does.
    fn cgroups_here() -> bool {
        let here = Cgroup::available();
        if !here {
            assert!(
                std::env::var("FENCEKIT_REQUIRE_PEERS").as_deref() != Ok("1"),
                "no cgroup v2 with cgroup.kill below this process's own, and \
                 FENCEKIT_REQUIRE_PEERS=1"
            );
            eprintln!("\n*** SKIPPED: no cgroup v2 with cgroup.kill here ***\n");
        }
        here
    }

    #[test]
    fn a_program_runs_in_a_cgroup_of_its_own_removed_when_it_ends() {
        if !cgroups_here() {
            return;
        }
        let ends = [
            ("exits", "sleep 25 & cat /proc/self/cgroup", soon(10)),
            (
                "is killed at its deadline",
                "cat /proc/self/cgroup; sleep 25 & exec sleep 26",
                StdInstant::now() + Duration::from_millis(800),
            ),
        ];
        for (how, script, by) in ends {
            let command = shell(script);
            let cgroup = command.cgroup.as_ref().map(|c| c.dir.clone());
            let cgroup = cgroup.expect("a cgroup for the program");
            // Made only when it starts (a fencekit killed before leaves none).
            assert!(!cgroup.exists(), "{how}: made before the program starts");
            match run_by(command, None, by, LIMITS) {
                Ok(done) => {
                    assert!(done.status.success(), "{how}: {:?}", done.status);
                    let lines = String::from_utf8(done.stdout.to_vec()).unwrap();
                    let own = lines.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
                    assert!(
                        cgroup.ends_with(own.trim_start_matches('/')),
                        "{how}: ran in {own}, not {}",
                        cgroup.display()
                    );
                }
                Err(e) => assert!(matches!(e, ChildError::TimedOut(_)), "{how}: {e}"),
            }
            assert!(!cgroup.exists(), "{how}: {} left", cgroup.display());
        }
    }

    #[test]
    fn what_a_program_left_is_ended_by_its_supervisor_when_fencekit_dies_as_it_exits() {
        // fencekit's last thread closes the supervisor's pipe before the kernel
        // sends the parent-death signal of the thread that started it (ignored
        // while other threads live): the supervisor is let go with nothing
        // ended. It kills the program's cgroup itself before it exits.
        // Without a cgroup, it kills its children with their groups.
        for containment in containers() {
            let mark = marked_sleep();
            let command = shell_in(&format!("setsid sleep {mark} & exit 0"), &containment);
            let dir = command.cgroup.as_ref().map(|c| c.dir.clone());
            ABANDON_AT_ITS_END.with(|a| a.set(true));
            let done = run_by(command, None, soon(10), LIMITS);
            ABANDON_AT_ITS_END.with(|a| a.set(false));
            assert!(done.unwrap().status.success(), "{containment:?}");
            assert!(
                ends_soon(&mark),
                "{containment:?}: the helper outlived its program and fencekit"
            );
            if let Some(dir) = dir {
                assert!(!dir.exists(), "{} left", dir.display());
            }
        }
    }

    #[test]
    fn cgroups_a_program_makes_below_its_own_are_ended_and_removed_with_it() {
        if !cgroups_here() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        // A helper whose main thread ends while another lives on, to write a
        // file two seconds later (the kind `cgroup.kill` alone misses).
        let helper = tmp.path().join("helper.py");
        std::fs::write(
            &helper,
            "import ctypes, sys, threading, time\n\
             def late():\n    time.sleep(2)\n    open(sys.argv[1], 'w').write('late')\n\
             threading.Thread(target=late).start()\n\
             ctypes.CDLL(None).pthread_exit(None)\n",
        )
        .unwrap();
        let ends = [
            ("exits", "exit 0", soon(10)),
            (
                "is killed at its deadline",
                "exec sleep 25",
                StdInstant::now() + Duration::from_secs(1),
            ),
        ];
        for (how, tail, deadline) in ends {
            let mark = marked_sleep();
            let late = tmp.path().join(format!("late-{mark}"));
            // Both in a cgroup two below the program's own.
            let mut command = shell(&format!(
                "mkdir -p \"$D/a/b\" && setsid sh -c 'echo $$ > \"$1/a/b/cgroup.procs\"; \
                 sleep {mark} & exec python3 \"$2\" \"$3\"' helper \"$D\" {} {} & \
                 sleep 0.3; {tail}",
                helper.display(),
                late.display()
            ));
            let dir = command.cgroup.as_ref().unwrap().dir.clone();
            command.env("D", &dir);
            match run_by(command, None, deadline, LIMITS) {
                Ok(done) => assert!(done.status.success(), "{how}: {:?}", done.status),
                Err(e) => assert!(matches!(e, ChildError::TimedOut(_)), "{how}: {e}"),
            }
            assert!(ends_soon(&mark), "{how}: the helper below outlived the run");
            assert!(!dir.exists(), "{how}: {} left", dir.display());
            std::thread::sleep(Duration::from_millis(2500));
            assert!(
                !late.exists(),
                "{how}: the helper's other thread outlived the run"
            );
        }
    }

    #[test]
    fn the_own_cgroup_is_found_below_the_cgroup2_mount_that_holds_it() {
        let dirs = |groups: &str, mounts: &str| -> Vec<String> {
            cgroup_dirs(groups, mounts)
                .map(|d| d.display().to_string())
                .collect()
        };
        // Hybrid: v1 hierarchies beside a cgroup2 at .../unified.
        let hybrid = "36 25 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      37 25 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            dirs("4:memory:/x\n0::/\n", hybrid),
            ["/sys/fs/cgroup/unified/"]
        );
        // A systemd unit, on a cgroup2-only system.
        let unified = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            dirs("0::/system.slice/pacemaker.service\n", unified),
            ["/sys/fs/cgroup/system.slice/pacemaker.service"]
        );
        // A subtree bound into a container: its root is stripped; one that does
        // not hold the cgroup is no candidate.
        let bound = "40 30 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(dirs("0::/docker/abc/app\n", bound), ["/sys/fs/cgroup/app"]);
        assert!(dirs("0::/docker/abcdef\n", bound).is_empty());
        // No cgroup2 line, none mounted, or a cgroup removed under us: none.
        assert!(dirs("1:name=systemd:/\n", unified).is_empty());
        assert!(dirs("0::/\n", "36 25 0:31 / /x rw - cgroup cgroup rw\n").is_empty());
        assert!(dirs("0::/gone (deleted)\n", unified).is_empty());
        // A mount point with a blank in it.
        let blank = "30 24 0:26 / /mnt/c\\040g rw - cgroup2 cgroup2 rw\n";
        assert_eq!(dirs("0::/a\n", blank), ["/mnt/c g/a"]);
    }

    #[test]
    fn cgroups_a_fencekit_that_is_gone_left_are_swept_and_no_others() {
        if !cgroups_here() {
            return;
        }
        let home = own_cgroup().unwrap();
        // A pid that is gone: a child of this test's, reaped.
        let mut gone = Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        let left = home.join(format!("fencekit-{pid}-7-1"));
        std::fs::create_dir_all(left.join("a/b")).unwrap();
        // One of this process's own (a program of another test's, say).
        let own = home.join(format!("fencekit-{}-999999-1", std::process::id()));
        std::fs::create_dir(&own).unwrap();
        // A live process's, and one whose pid a later process was given.
        let mut live = Command::new("sleep").arg("20").spawn().unwrap();
        let start = started_at(live.id()).unwrap();
        let kept = home.join(format!("fencekit-{}-{start}-0-1", live.id()));
        let reused = home.join(format!("fencekit-{}-{}-0-1", live.id(), start + 1));
        std::fs::create_dir(&kept).unwrap();
        std::fs::create_dir(&reused).unwrap();
        Cgroup::sweep(&home);
        let (own_kept, live_kept) = (own.exists(), kept.exists());
        let _ = std::fs::remove_dir(&own);
        let _ = std::fs::remove_dir(&kept);
        let _ = live.kill();
        let _ = live.wait();
        assert!(!left.exists(), "{} left", left.display());
        assert!(!reused.exists(), "{} left", reused.display());
        assert!(own_kept, "a live fencekit's cgroup was swept");
        assert!(live_kept, "a live process's cgroup was swept");
    }

    #[test]
    fn a_mountinfo_field_is_read_with_its_escapes_undone() {
        assert_eq!(unescape("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
        // Not an escape: kept as written, never a panic.
        for odd in ["\\", "\\04", "\\777", "\\9ab", "é\\040"] {
            let _ = unescape(odd);
        }
        assert_eq!(unescape("\\04"), "\\04");
    }

    #[test]
    fn a_program_may_call_setsid_itself() {
        // Not a group leader: setsid() works (util-linux `setsid` forks only for
        // a leader, which would look like an exit 0 here).
        let done = run_by(
            shell("exec setsid sh -c 'echo $$ $(cut -d\" \" -f6 /proc/$$/stat)'"),
            None,
            soon(10),
            LIMITS,
        )
        .unwrap();
        assert!(done.status.success(), "{:?}", done.status);
        let out = String::from_utf8(done.stdout.to_vec()).unwrap();
        let mut fields = out.split_whitespace();
        assert_eq!(fields.next(), fields.next(), "not its own session: {out}");
    }

    #[test]
    fn a_helper_that_forks_without_end_is_ended_with_its_program() {
        // A helper in a session of its own that started a thousand processes and
        // forks on: every one found is stopped before any is killed, so none
        // escapes while the tree is read.
        for container in containers() {
            let marker = marked_sleep();
            let script = format!(
                "setsid sh -c 'i=0; while [ $i -lt 1000 ]; do sleep {marker} & i=$((i+1)); done; \
                 while :; do sleep {marker} & done' & sleep 1"
            );
            let done = run_by(shell_in(&script, &container), None, soon(20), LIMITS).unwrap();
            assert!(done.status.success(), "{container:?}: {:?}", done.status);
            assert!(
                ends_soon(&marker),
                "{container:?}: processes outlived the run"
            );
        }
    }

    #[test]
    fn a_program_that_signals_its_own_process_group_is_not_taken_for_fencekits_death() {
        // A script's cleanup idiom: at exit, SIGTERM to its whole group (its
        // background jobs, and the supervisor, which leads the group).
        let script = "trap 'trap \"\" TERM; kill 0' EXIT; sleep 5 & echo done";
        let done = run_by(shell(script), None, soon(10), LIMITS).unwrap();
        assert!(done.status.success(), "{:?}", done.status);
        assert_eq!(&done.stdout[..], b"done\n");
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_at_it() {
        let started = StdInstant::now();
        let err = run_by(
            shell("sleep 25"),
            None,
            StdInstant::now() + Duration::from_millis(300),
            LIMITS,
        )
        .unwrap_err();
        assert!(matches!(err, ChildError::TimedOut(_)), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn input_reaches_the_program_and_output_is_bounded() {
        let done = run_by(
            shell("read line; echo \"got $line\"; head -c 100000 /dev/zero"),
            Some(b"hello\n"),
            soon(10),
            Limits {
                stdout: 10,
                stderr: 0,
            },
        )
        .unwrap();
        assert_eq!(&done.stdout[..], b"got hello\n");
    }

    #[test]
    fn a_program_that_never_reads_its_large_input_does_not_hang_us() {
        let input = vec![b'x'; 1 << 20];
        let started = StdInstant::now();
        let done = run_by(shell("exit 0"), Some(&input), soon(10), LIMITS).unwrap();
        assert!(done.status.success());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_abandoned_async_run_kills_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mark = marked_sleep();
        let script = format!("echo $$ > {}; exec sleep {mark}", pid_file.display());
        let far = crate::Instant::now() + Duration::from_secs(30);
        let abandoned = tokio::time::timeout(
            Duration::from_millis(300),
            run(shell(&script), None, far, LIMITS),
        )
        .await;
        assert!(abandoned.is_err());
        assert!(pid_file.exists(), "the program never ran");
        assert!(ends_soon(&mark), "the program outlived the abandoned run");
    }
}
