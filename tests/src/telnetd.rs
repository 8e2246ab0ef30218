//! A real telnet server for console tests: GNU inetutils `telnetd`, behind a small
//! accept loop of ours doing what inetd does (each connection's socket becomes
//! telnetd's standard input, output and error), running a console simulator as its
//! login program (`telnetd -E`). telnetd does the telnet protocol and the PTY; the
//! simulator asks for the login itself (`--login USER:FILE`).
//!
//! Dropping it stops the loop and kills every telnetd it started (by PID), with the
//! simulators under them.
//!
//! [`NetnsTelnetd`] is a telnet server on the standard port 23, in a network
//! namespace of the test's own: BusyBox `telnetd`, because a client that speaks no
//! telnet at all (cluster-glue's `baytech` plugin opens a plain TCP connection and
//! waits for the device's banner, as a real Baytech strip sends it at once) never
//! gets a byte from GNU telnetd, which waits for the answers to its option
//! negotiation before it starts the login program.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::daemon::{daemon_dir, Daemon};
use crate::fabric::Netns;
use crate::HarnessError;

/// The telnet port cluster-glue's `baytech` reaches (its `TELNET_PORT`, fixed).
pub const TELNET_PORT: u16 = 23;
const NETNS_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How often the accept loop looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A telnetd per connection on a loopback port.
pub struct Telnetd {
    port: u16,
    stop: Arc<AtomicBool>,
    loop_thread: Option<JoinHandle<()>>,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Telnetd {
    /// Listens on 127.0.0.1 (a free port) and serves each connection with
    /// `telnetd -h -E LOGIN`, `LOGIN` being the program and its arguments as one
    /// line (telnetd splits it).
    pub fn start(telnetd: &Path, login: &str) -> Result<Telnetd, HarnessError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| HarnessError::Io { what, source }
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding the telnet port"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("setting the telnet port non-blocking"))?;
        let port = listener
            .local_addr()
            .map_err(io("reading the telnet port"))?
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let children: Arc<Mutex<Vec<Child>>> = Arc::default();
        let (telnetd, login) = (telnetd.to_path_buf(), login.to_string());
        let (stop_flag, started) = (Arc::clone(&stop), Arc::clone(&children));
        let loop_thread = std::thread::Builder::new()
            .name("telnetd-accept".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::SeqCst) {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(POLL);
                            continue;
                        }
                        Err(_) => {
                            std::thread::sleep(POLL);
                            continue;
                        }
                    };
                    let _ = stream.set_nonblocking(false);
                    let socket = OwnedFd::from(stream);
                    let (Ok(out), Ok(err)) = (socket.try_clone(), socket.try_clone()) else {
                        continue;
                    };
                    let child = Command::new(&telnetd)
                        .args(["-h", "-E", &login])
                        .stdin(Stdio::from(socket))
                        .stdout(Stdio::from(out))
                        .stderr(Stdio::from(err))
                        .spawn();
                    if let Ok(child) = child {
                        started
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(child);
                    }
                }
            })
            .map_err(io("starting the telnet accept loop"))?;
        Ok(Telnetd {
            port,
            stop,
            loop_thread: Some(loop_thread),
            children,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Telnetd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.loop_thread.take() {
            let _ = thread.join();
        }
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut() {
            // telnetd's session (the simulator on its PTY) goes with it: the PTY's
            // master closes, and the simulator reads its end.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// BusyBox `telnetd` on 127.0.0.1:23 inside a namespace of its own, running a
/// console simulator as its login program. Dropping it kills telnetd (by PID; the
/// sessions end as their PTYs close) and then deletes the namespace.
pub struct NetnsTelnetd {
    daemon: Option<Daemon>,
    netns: Netns,
}

impl NetnsTelnetd {
    /// Makes the namespace and starts `busybox telnetd` in it, each connection
    /// served by `login` (program and arguments; BusyBox execs a path only, so a
    /// two-line script in the daemon's directory carries the arguments).
    pub fn start(busybox: &Path, login: &[&str]) -> Result<NetnsTelnetd, HarnessError> {
        let netns = Netns::create("fktn")?;
        let dir = daemon_dir("busybox-telnetd")?;
        let script = dir.path().join("login.sh");
        let quoted: Vec<String> = login
            .iter()
            .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
            .collect();
        std::fs::write(&script, format!("#!/bin/sh\nexec {}\n", quoted.join(" ")))
            .map_err(|e| HarnessError::io(format!("write {}", script.display()), e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| HarnessError::io(format!("chmod {}", script.display()), e))?;
        }
        let mut command = netns.command(busybox);
        command
            .arg("telnetd")
            // Foreground; close the connection when the simulator ends; no
            // /etc/issue (a strip greets with its own banner).
            .args(["-F", "-K", "-f", "/dev/null", "-b", "127.0.0.1", "-p"])
            .arg(TELNET_PORT.to_string())
            .arg("-l")
            .arg(&script);
        let mut daemon = Daemon::spawn("busybox-telnetd", dir, command)?;
        daemon.wait_ready(std::time::Instant::now() + NETNS_READY_TIMEOUT, |_| {
            netns.connect_loopback(TELNET_PORT).map(drop)
        })?;
        Ok(NetnsTelnetd {
            daemon: Some(daemon),
            netns,
        })
    }

    /// The namespace: run clients in it with [`Netns::command`].
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

impl Drop for NetnsTelnetd {
    fn drop(&mut self) {
        // telnetd before its namespace.
        self.daemon = None;
    }
}
