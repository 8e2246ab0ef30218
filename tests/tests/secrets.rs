//! Secrets kept where they belong, proven against real peers: every plugin fences
//! its real peer (ipmi_sim, snmpd with the APC emulator over SNMPv3 authPriv and
//! v2c, the APC and Baytech consoles behind sshd, the script plugin, `sim`, the
//! example relay `.so`) through every front end that applies (the fence agent with
//! options on stdin, with `password_file` and `password_script`; the cluster-glue
//! plugin with parameters in its environment, also under cluster-glue's own
//! `stonith`; `stonith-bridge fence` with a TOML file, inline, `_file` and `_env`), at
//! the most verbose level each front end has, with secrets made for the run; and
//! with wrong secrets, a device that prints the password, a failing
//! `password_script`.
//!
//! A secret must appear in none of: stdout, stderr, the debug file, the command
//! line of any process of the run, the environment of the bridge (unless the
//! caller put it there, as cluster-glue and `_env` do) and of every process below
//! it (read from `/proc` while they run: the hook, `password_script` and the script
//! plugin linger so they are seen), the environment the notify hook dumps (which
//! also holds no parameter variable: only FENCEKIT_* outcome variables), and what
//! the script plugin's script records of its environment and argv. A stdin line
//! without `=` is not echoed. While the bridge runs, its core file size limit is 0
//! (soft and hard), although it was started with core dumps allowed. Failures name
//! the channel and print `<secret>` in place of a secret.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fencekit_console::sim::OutletFile;
use fencekit_core::PowerState;
use fencekit_tests::bridge::{self, sim_states, write_sim_states, Installed};
use fencekit_tests::consoles::{self, ConsoleRig};
use fencekit_tests::ipmi_sim::{IpmiSim, IpmiSimOptions};
use fencekit_tests::leaks::{run_watched, short_secret, unique_secret, Secrets, Watch, Watched};
use fencekit_tests::peers;
use fencekit_tests::redfish::{Responder, ResponderOptions};
use fencekit_tests::snmpd::{
    AuthProtocol, Community, PassPersist, PrivProtocol, SnmpUser, Snmpd, SnmpdOptions,
};
use fencekit_tests::system::SystemLink;

/// Each run ends well before this (a fence takes seconds against these peers).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The most verbose fence-agent options: fence-agents' `-vvv` as stdin lines.
const VERBOSE_LINES: &str = "verbose=1\nverbose=1\nverbose=1\nverbose_level=3\n";
/// How long a hook lingers after it wrote its environment, so that `/proc` sees it.
const LINGER: &str = "0.5";

// ---- what a run is judged by -------------------------------------------------------

/// Problems found in one run, reported together (all channels at once, so a
/// failure shows every leak, not the first).
struct Findings {
    what: String,
    secrets: Secrets,
    problems: Vec<String>,
}

impl Findings {
    fn new(what: impl Into<String>, secrets: &Secrets) -> Findings {
        Findings {
            what: what.into(),
            secrets: secrets.clone(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, problem: String) {
        self.problems.push(format!("{}: {problem}", self.what));
    }

    fn text(&mut self, channel: &str, text: &str) {
        for label in self.secrets.found_in(text.as_bytes()) {
            self.problem(format!("the {label} leaked to {channel}"));
        }
    }

    /// stdout, stderr, the processes' command lines and environments, core dumps.
    fn watched(&mut self, watched: &Watched) {
        self.text("stdout", &watched.stdout);
        self.text("stderr", &watched.stderr);
        for leak in &watched.proc_leaks {
            self.problem(format!("leaked to the {leak}"));
        }
        match &watched.bridge_core_limit {
            Some((soft, hard)) if soft == "0" && hard == "0" => {}
            Some((soft, hard)) => self.problem(format!(
                "the bridge could dump core while it held the secret: /proc/PID/limits \
                 showed Max core file size {soft} {hard}, not 0 0"
            )),
            None => self.problem("the bridge process was never seen running".into()),
        }
    }

    /// The run logged at debug level or finer in `log` (else finding no secret
    /// there proves little), and a child of the bridge (the hook, a script) was
    /// seen running (else finding none in children's environments proves nothing).
    fn was_verbose_and_watched(&mut self, log: &str, channel: &str, watched: &Watched) {
        if !(log.contains("DEBUG") || log.contains("TRACE")) {
            self.problem(format!("nothing at debug level or finer in {channel}"));
        }
        if !watched.seen.iter().any(|p| p.below_bridge) {
            self.problem("no child of the bridge was seen while it ran".into());
        }
    }

    /// A file the run or one of its children wrote (absent: nothing to leak).
    fn file(&mut self, channel: &str, path: &Path) {
        if let Ok(bytes) = std::fs::read(path) {
            for label in self.secrets.found_in(&bytes) {
                self.problem(format!("the {label} leaked to {channel}"));
            }
        }
    }

    /// The notify hook ran, saw the outcome, and no parameter.
    fn notify_env(&mut self, path: &Path, params: &[String]) {
        self.hook_env(path, params, true);
    }

    /// Like [`Findings::notify_env`]; `must_have_run` false for a failed run, whose
    /// hook may be cut short at the operation's deadline (or not run at all).
    fn hook_env(&mut self, path: &Path, params: &[String], must_have_run: bool) {
        self.file("the notify hook's environment", path);
        let Ok(env) = std::fs::read_to_string(path) else {
            if must_have_run {
                self.problem("the notify hook never ran (no environment dump)".into());
            }
            return;
        };
        if must_have_run && !env.lines().any(|l| l == "FENCEKIT_NODE=node1") {
            self.problem("the notify hook did not see FENCEKIT_NODE=node1".into());
        }
        let names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        for name in names {
            let is_param = params.iter().any(|p| {
                p.eq_ignore_ascii_case(name)
                    || name.eq_ignore_ascii_case(&format!("{p}_file"))
                    || name.eq_ignore_ascii_case(&format!("{p}_script"))
            }) || name.starts_with("FENCEKIT_PARAM_");
            if is_param {
                self.problem(format!(
                    "the notify hook's environment holds the parameter variable {name} \
                     (it should see only FENCEKIT_* outcome variables)"
                ));
            }
        }
    }

    /// A fact about the outcome; `detail` is redacted before it is printed.
    fn expect(&mut self, ok: bool, claim: &str, detail: &str) {
        if !ok {
            let detail = self.secrets.redact(detail);
            self.problem(format!("{claim}; the run said:\n{detail}"));
        }
    }

    fn exit(&mut self, watched: &Watched, code: i32) {
        let said = format!("{}{}", watched.stdout, watched.stderr);
        self.expect(
            watched.status.code() == Some(code),
            &format!("exit {:?}, expected {code}", watched.status.code()),
            &said,
        );
    }

    fn failed(&mut self, watched: &Watched) {
        let said = format!("{}{}", watched.stdout, watched.stderr);
        self.expect(
            watched.status.code().is_some_and(|c| c != 0),
            &format!("exit {:?}, expected a failure", watched.status.code()),
            &said,
        );
    }
}

/// Every run's findings in one test; the test fails once, listing all of them.
#[derive(Default)]
struct Verdict {
    problems: Vec<String>,
}

impl Verdict {
    fn add(&mut self, findings: Findings) {
        self.problems.extend(findings.problems);
    }

    fn assert_clean(self) {
        assert!(
            self.problems.is_empty(),
            "{} problem(s):\n- {}",
            self.problems.len(),
            self.problems.join("\n- ")
        );
    }
}

// ---- the installed binary and the ways to run it ------------------------------------

/// The installed binary, a private directory for files of the runs, and a counter
/// that names each run's files.
struct Bench {
    installed: Installed,
    dir: tempfile::TempDir,
    runs: AtomicU32,
    /// Stands in for `/dev/log`: what the runs send to syslog.
    syslog: std::os::unix::net::UnixDatagram,
}

/// Files one run's children write.
struct RunFiles {
    notify_env: PathBuf,
    debug_file: PathBuf,
}

impl RunFiles {
    /// `env` into a file, then stay a moment so that `/proc` sees the hook.
    fn notify_command(&self) -> String {
        format!("env > '{}'; sleep {LINGER}", self.notify_env.display())
    }
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        // Console simulators and scripts may run as other users.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let syslog = std::os::unix::net::UnixDatagram::bind(dir.path().join("syslog")).unwrap();
        syslog.set_nonblocking(true).unwrap();
        Bench {
            installed: Installed::new().unwrap(),
            dir,
            runs: AtomicU32::new(0),
            syslog,
        }
    }

    /// What the runs so far sent to syslog; panics naming the secret if one is there.
    fn check_syslog(&self, secrets: &Secrets) {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.syslog.recv(&mut buf) {
            let found = secrets.found_in(&buf[..n]);
            assert!(
                found.is_empty(),
                "{found:?} sent to syslog: {}",
                secrets.redact(&String::from_utf8_lossy(&buf[..n]))
            );
        }
    }

    fn files(&self) -> RunFiles {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        RunFiles {
            notify_env: self.dir.path().join(format!("notify-env-{n}")),
            debug_file: self.dir.path().join(format!("debug-{n}.log")),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn watch(&self, secrets_in_callers_environment: bool) -> Watch {
        Watch {
            bridge: self.installed.binary(),
            secrets_in_callers_environment,
            timeout: RUN_TIMEOUT,
        }
    }

    /// A file holding `secret` (mode 0600), for `*_file`.
    fn secret_file(&self, secret: &str) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("secret-{n}"));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// An executable that prints `secret` (read from a file: never in its own text
    /// or argv) and lingers, for `*_script`.
    fn secret_script(&self, secret: &str) -> PathBuf {
        let file = self.secret_file(secret);
        self.script(&format!("#!/bin/sh\ncat '{}'\nsleep 0.3\n", file.display()))
    }

    fn script(&self, text: &str) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("script-{n}"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `program` started with core dumps allowed (soft limit raised to the hard
    /// one, as many a distribution's init does): a core limit of 0 seen later is
    /// the bridge's own doing, not this test's inheritance. `exec` keeps the PID.
    fn command(program: &Path) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("ulimit -S -c \"$(ulimit -H -c)\" 2>/dev/null; exec \"$@\"")
            .arg("sh")
            .arg(program);
        command
    }

    fn base_env(command: &mut Command) {
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("RUST_LOG", "trace");
    }

    /// The fence agent with `lines` on stdin.
    fn agent(&self, plugin: &str, lines: &str, secrets: &Secrets) -> Watched {
        let mut command = Bench::command(&self.installed.agent(plugin));
        Bench::base_env(&mut command);
        command.env("FENCEKIT_SYSLOG_SOCKET", self.path("syslog"));
        let watched =
            run_watched(command, Some(lines.as_bytes()), &self.watch(false), secrets).unwrap();
        self.check_syslog(secrets);
        watched
    }

    /// The cluster-glue plugin `op [host]`, parameters in its environment.
    fn external(
        &self,
        plugin: &str,
        op: &str,
        env: &[(String, String)],
        secrets: &Secrets,
    ) -> Watched {
        let mut command = Bench::command(&self.installed.external(plugin));
        Bench::base_env(&mut command);
        command
            .arg(op)
            .arg("node1")
            .envs(env.iter().cloned())
            .env("FENCEKIT_SYSLOG_SOCKET", self.path("syslog"));
        let watched = run_watched(command, None, &self.watch(true), secrets).unwrap();
        self.check_syslog(secrets);
        watched
    }

    /// `stonith-bridge -vvv fence -c FILE -n node1 -a ACTION`, with `env` added.
    fn fence(
        &self,
        config: &str,
        action: &str,
        env: &[(String, String)],
        secrets: &Secrets,
    ) -> Watched {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("fencekit-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        // Private, as a configuration holding a password must be.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut command = Bench::command(&self.installed.binary());
        Bench::base_env(&mut command);
        command
            .args(["-vvv", "fence", "-n", "node1", "-a", action, "-c"])
            .arg(&path)
            .envs(env.iter().cloned());
        run_watched(command, None, &self.watch(!env.is_empty()), secrets).unwrap()
    }
}

// ---- devices -----------------------------------------------------------------------

/// Parameters or environment variables, in order.
type Pairs = Vec<(String, String)>;

/// One device as every front end describes it.
struct Device {
    plugin: &'static str,
    /// Parameters that are not secret.
    params: Vec<(String, String)>,
    /// Secret parameters (name, value).
    secret_params: Vec<(String, String)>,
    /// The fence algorithm's parameters (the `[fence]` table of a TOML file).
    fence_params: Vec<(String, String)>,
    /// The node's plug; `None`: the whole machine (a BMC).
    plug: Option<String>,
    secrets: Secrets,
}

/// How a front end is given the secret parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    Inline,
    File,
    Script,
    /// The first secret from a `_script`, the others inline: the script runs while
    /// the others are at hand (in cluster-glue's environment, say).
    FirstScript,
    Env,
}

impl Device {
    fn new(plugin: &'static str, plug: Option<&str>) -> Device {
        Device {
            plugin,
            params: Vec::new(),
            secret_params: Vec::new(),
            fence_params: Vec::new(),
            plug: plug.map(str::to_owned),
            secrets: Secrets::new(),
        }
    }

    fn param(mut self, key: &str, value: impl ToString) -> Device {
        self.params.push((key.to_owned(), value.to_string()));
        self
    }

    fn fence_param(mut self, key: &str, value: impl ToString) -> Device {
        self.fence_params.push((key.to_owned(), value.to_string()));
        self
    }

    fn secret(mut self, key: &str, label: &str, value: &str) -> Device {
        self.secret_params.push((key.to_owned(), value.to_owned()));
        self.secrets = self.secrets.with(label, value);
        self
    }

    /// Every parameter name a front end passes (for the notify hook's check).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .params
            .iter()
            .chain(&self.secret_params)
            .chain(&self.fence_params)
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(["hostname", "hostmap", "notify_command"].map(String::from));
        names
    }

    /// (key, value) pairs with the secrets given as `given`; the second list is
    /// what goes into the environment for `Env`.
    fn pairs(&self, bench: &Bench, given: Given) -> (Pairs, Pairs) {
        let (mut pairs, env) = self.device_pairs(bench, given);
        pairs.extend(self.fence_params.iter().cloned());
        (pairs, env)
    }

    /// Like [`Device::pairs`], without the fence algorithm's parameters.
    fn device_pairs(&self, bench: &Bench, given: Given) -> (Pairs, Pairs) {
        let mut pairs = self.params.clone();
        let mut env = Vec::new();
        for (i, (key, value)) in self.secret_params.iter().enumerate() {
            match given {
                Given::Inline => pairs.push((key.clone(), value.clone())),
                Given::File => pairs.push((
                    format!("{key}_file"),
                    bench.secret_file(value).display().to_string(),
                )),
                Given::FirstScript if i > 0 => pairs.push((key.clone(), value.clone())),
                Given::Script | Given::FirstScript => pairs.push((
                    format!("{key}_script"),
                    bench.secret_script(value).display().to_string(),
                )),
                Given::Env => {
                    let var = format!("FK_TEST_SECRET_{i}");
                    pairs.push((format!("{key}_env"), var.clone()));
                    env.push((var, value.clone()));
                }
            }
        }
        (pairs, env)
    }

    /// Options on stdin, most verbose; logs go to the debug file, except with the
    /// secrets inline, where they go to stderr (both channels are searched).
    fn stdin(&self, bench: &Bench, given: Given, action: &str, files: &RunFiles) -> String {
        let (pairs, _) = self.pairs(bench, given);
        let mut lines = format!("action={action}\nnodename=node1\n");
        if let Some(plug) = &self.plug {
            lines.push_str(&format!("plug={plug}\n"));
        }
        for (k, v) in pairs {
            lines.push_str(&format!("{k}={v}\n"));
        }
        lines.push_str(VERBOSE_LINES);
        if given != Given::Inline {
            lines.push_str(&format!("debug_file={}\n", files.debug_file.display()));
        }
        lines.push_str(&format!("notify_command={}\n", files.notify_command()));
        lines
    }

    /// The environment cluster-glue gives the plugin.
    fn glue_env(&self, bench: &Bench, given: Given, files: &RunFiles) -> Vec<(String, String)> {
        let (mut env, _) = self.pairs(bench, given);
        match &self.plug {
            Some(plug) => env.push(("hostmap".into(), format!("node1:{plug}"))),
            None => env.push(("hostname".into(), "node1".into())),
        }
        env.push(("notify_command".into(), files.notify_command()));
        env
    }

    fn toml(
        &self,
        bench: &Bench,
        given: Given,
        files: &RunFiles,
    ) -> (String, Vec<(String, String)>) {
        let (pairs, env) = self.device_pairs(bench, given);
        let quote = |v: &str| {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                v.to_owned()
            } else {
                format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
            }
        };
        let mut text = format!(
            "[fence]\nnotify_command = {}\n",
            quote(&files.notify_command())
        );
        for (k, v) in &self.fence_params {
            text.push_str(&format!("{k} = {}\n", quote(v)));
        }
        text.push_str(&format!("\n[devices.dev]\nplugin = \"{}\"\n", self.plugin));
        for (k, v) in pairs {
            text.push_str(&format!("{k} = {}\n", quote(&v)));
        }
        text.push_str("\n[nodes.node1]\n");
        match &self.plug {
            Some(plug) => text.push_str(&format!(
                "plugs = [{{ device = \"dev\", plug = \"{plug}\" }}]\n"
            )),
            None => text.push_str("plugs = [{ device = \"dev\" }]\n"),
        }
        (text, env)
    }
}

/// The device's true state, read from the peer's side.
trait Oracle {
    /// Powers the node's plug on behind fencekit's back.
    fn reset(&self);
    /// Whether the node's plug is truly off.
    fn is_off(&self) -> bool;
}

/// Fences `device` off through every front end (`given` ways for the agent and the
/// TOML file), checks the oracle and every channel.
fn fence_through_every_front_end(
    bench: &Bench,
    device: &Device,
    oracle: &dyn Oracle,
    agent_givens: &[Given],
    toml_givens: &[Given],
    verdict: &mut Verdict,
) {
    let names = device.names();
    for &given in agent_givens {
        oracle.reset();
        let files = bench.files();
        let watched = bench.agent(
            device.plugin,
            &device.stdin(bench, given, "off", &files),
            &device.secrets,
        );
        let mut f = Findings::new(
            format!("{} fence agent, stdin, secrets {given:?}", device.plugin),
            &device.secrets,
        );
        f.exit(&watched, 0);
        f.expect(oracle.is_off(), "the device is not off", &watched.stderr);
        f.watched(&watched);
        f.file("the debug file", &files.debug_file);
        let log = if given == Given::Inline {
            watched.stderr.clone()
        } else {
            std::fs::read_to_string(&files.debug_file).unwrap_or_default()
        };
        f.was_verbose_and_watched(&log, "the log", &watched);
        f.notify_env(&files.notify_env, &names);
        verdict.add(f);
    }

    // With several secrets, also one from a script while the others are in the
    // environment: the script must not see them.
    let glue_givens: &[Given] = if device.secret_params.len() > 1 {
        &[Given::Inline, Given::FirstScript]
    } else {
        &[Given::Inline]
    };
    for &given in glue_givens {
        oracle.reset();
        let files = bench.files();
        let watched = bench.external(
            device.plugin,
            "off",
            &device.glue_env(bench, given, &files),
            &device.secrets,
        );
        let mut f = Findings::new(
            format!(
                "{} cluster-glue plugin, parameters in the environment, secrets {given:?}",
                device.plugin
            ),
            &device.secrets,
        );
        f.exit(&watched, 0);
        f.expect(oracle.is_off(), "the device is not off", &watched.stderr);
        f.watched(&watched);
        f.was_verbose_and_watched(&watched.stderr, "stderr", &watched);
        f.notify_env(&files.notify_env, &names);
        verdict.add(f);
    }

    for &given in toml_givens {
        oracle.reset();
        let files = bench.files();
        let (config, env) = device.toml(bench, given, &files);
        let watched = bench.fence(&config, "off", &env, &device.secrets);
        let mut f = Findings::new(
            format!("{} `fence -c` TOML, secrets {given:?}", device.plugin),
            &device.secrets,
        );
        f.exit(&watched, 0);
        f.expect(oracle.is_off(), "the device is not off", &watched.stderr);
        f.watched(&watched);
        f.was_verbose_and_watched(&watched.stderr, "stderr", &watched);
        f.notify_env(&files.notify_env, &names);
        verdict.add(f);
    }
}

/// A wrong secret: the fence agent (stdin, full verbosity) and the cluster-glue
/// plugin fail, say nothing of the secret, and the device stays on.
fn wrong_secret_through_agent_and_glue(
    bench: &Bench,
    device: &Device,
    oracle: &dyn Oracle,
    verdict: &mut Verdict,
) {
    let names = device.names();
    oracle.reset();
    let files = bench.files();
    let watched = bench.agent(
        device.plugin,
        &device.stdin(bench, Given::Inline, "off", &files),
        &device.secrets,
    );
    let mut f = Findings::new(
        format!("{} fence agent, wrong secret", device.plugin),
        &device.secrets,
    );
    f.failed(&watched);
    f.expect(
        !oracle.is_off(),
        "the device went off with a wrong secret",
        &watched.stderr,
    );
    f.watched(&watched);
    f.file("the debug file", &files.debug_file);
    f.hook_env(&files.notify_env, &names, false);
    verdict.add(f);

    let files = bench.files();
    let watched = bench.external(
        device.plugin,
        "off",
        &device.glue_env(bench, Given::Inline, &files),
        &device.secrets,
    );
    let mut f = Findings::new(
        format!("{} cluster-glue plugin, wrong secret", device.plugin),
        &device.secrets,
    );
    f.failed(&watched);
    f.watched(&watched);
    f.hook_env(&files.notify_env, &names, false);
    verdict.add(f);
}

// ---- IPMI: ipmi_sim ------------------------------------------------------------------

struct Bmc(IpmiSim);

impl Oracle for Bmc {
    fn reset(&self) {
        self.0.set_power(true).unwrap();
    }
    fn is_off(&self) -> bool {
        !self.0.power_state().unwrap()
    }
}

/// IPMI 2.0 allows 20-byte passwords, but ipmi_sim matches only the first 16.
fn ipmi_secret() -> String {
    unique_secret(16)
}

fn bmc_device(bmc: &IpmiSim, password: &str) -> Device {
    Device::new("ipmi", None)
        .param("ip", "127.0.0.1")
        .param("ipport", bmc.port())
        .param("username", bmc.user())
        .fence_param("power_timeout", 5)
        .secret("password", "password", password)
}

fn start_bmc(password: &str) -> Option<Bmc> {
    peers::require("ipmi_sim", "openipmi")?;
    Some(Bmc(IpmiSim::start(IpmiSimOptions {
        password: password.to_owned(),
        ..IpmiSimOptions::default()
    })
    .unwrap()))
}

#[test]
fn an_ipmi_password_reaches_no_output_environment_argv_or_hook_through_any_front_end() {
    let password = ipmi_secret();
    let Some(bmc) = start_bmc(&password) else {
        return;
    };
    let bench = Bench::new();
    let device = bmc_device(&bmc.0, &password);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &bmc,
        &[Given::Inline, Given::File, Given::Script],
        &[Given::Inline, Given::File, Given::Env],
        &mut verdict,
    );
    verdict.assert_clean();
}

#[test]
fn an_ipmi_password_reaches_no_hook_under_cluster_glues_own_stonith() {
    let Some(stonith) = peers::require("stonith", "cluster-glue") else {
        return;
    };
    if !peers::require_root("linking a plugin into cluster-glue's plugin directory") {
        return;
    }
    let password = ipmi_secret();
    let Some(bmc) = start_bmc(&password) else {
        return;
    };
    let bench = Bench::new();
    let _link = SystemLink::external_plugin(&bench.installed, "ipmi").unwrap();
    let device = bmc_device(&bmc.0, &password);
    let files = bench.files();
    let mut command = Bench::command(&stonith);
    Bench::base_env(&mut command);
    command
        .args(["-t", "external/fencekit-ipmi", "-E", "-T", "off", "node1"])
        .envs(device.glue_env(&bench, Given::Inline, &files));
    let watched = run_watched(command, None, &bench.watch(true), &device.secrets).unwrap();
    let mut f = Findings::new("ipmi under cluster-glue's stonith", &device.secrets);
    f.exit(&watched, 0);
    f.expect(bmc.is_off(), "the BMC is not off", &watched.stderr);
    f.watched(&watched);
    f.notify_env(&files.notify_env, &device.names());
    let mut verdict = Verdict::default();
    verdict.add(f);
    verdict.assert_clean();
}

#[test]
fn a_wrong_ipmi_password_is_refused_without_being_repeated_anywhere() {
    let Some(bmc) = start_bmc(&ipmi_secret()) else {
        return;
    };
    let bench = Bench::new();
    let wrong = bmc_device(&bmc.0, &ipmi_secret());
    let mut verdict = Verdict::default();
    wrong_secret_through_agent_and_glue(&bench, &wrong, &bmc, &mut verdict);
    verdict.assert_clean();
}

// ---- Redfish: our responder over verified HTTPS ------------------------------------------

struct Service(Responder);

impl Oracle for Service {
    fn reset(&self) {
        self.0.switch_on(SYSTEM).unwrap();
    }
    fn is_off(&self) -> bool {
        self.0.power_state(SYSTEM).unwrap() == "Off"
    }
}

const SYSTEM: &str = "System.Embedded.1";

fn start_service(password: &str) -> Option<Service> {
    peers::require_all(&[
        ("python3", "python3"),
        ("openssl", "openssl"),
        ("curl", "curl"),
    ])?;
    Some(Service(
        Responder::start(&ResponderOptions {
            password: password.to_owned(),
            ..ResponderOptions::default()
        })
        .unwrap(),
    ))
}

fn service_device(service: &Responder, password: &str) -> Device {
    let mut device = Device::new("redfish", None)
        .param("ip", "127.0.0.1")
        .param("ipport", service.port())
        .param("username", fencekit_tests::redfish::USER)
        .param("ssl_ca_file", service.tls().ca.display())
        .fence_param("power_timeout", 5)
        .secret("password", "password", password);
    // The password also travels base64-encoded in the Authorization header: that
    // form must not show either.
    let mut encode = Command::new("base64");
    encode.arg("-w0");
    let basic = fencekit_tests::tool::run_ok(
        encode,
        Some(format!("{}:{password}", fencekit_tests::redfish::USER).as_bytes()),
        Duration::from_secs(10),
    )
    .unwrap()
    .stdout;
    device.secrets = device.secrets.with("the Basic credential", basic.trim());
    device
}

#[test]
fn a_redfish_password_reaches_no_output_environment_argv_or_hook_through_any_front_end() {
    let password = unique_secret(20);
    let Some(service) = start_service(&password) else {
        return;
    };
    let bench = Bench::new();
    let device = service_device(&service.0, &password);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &service,
        &[Given::Inline, Given::File, Given::Script],
        &[Given::Inline, Given::File, Given::Env],
        &mut verdict,
    );
    verdict.assert_clean();
}

#[test]
fn a_wrong_redfish_password_is_refused_without_being_repeated_anywhere() {
    let Some(service) = start_service(&unique_secret(20)) else {
        return;
    };
    let bench = Bench::new();
    let wrong = service_device(&service.0, &unique_secret(20));
    let mut verdict = Verdict::default();
    wrong_secret_through_agent_and_glue(&bench, &wrong, &service, &mut verdict);
    verdict.assert_clean();
}

// ---- APC over SNMP: snmpd with the emulated PDU ---------------------------------------

/// sysObjectID of an rPDU (AP78xx/79xx), PowerNet-MIB.
const RPDU: &str = ".1.3.6.1.4.1.318.1.3.4.5";
const V3_USER: &str = "fencesecret";

/// snmpd with fencekit's APC emulator behind it; outlets in a state file.
struct Pdu {
    snmpd: Snmpd,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pdu {
    fn start(community: &str, auth: &str, privacy: &str) -> Option<Pdu> {
        peers::require("snmpd", "snmpd")?;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pdu.state");
        let emulator = bridge::workspace_binary("fencekit-apc", "fencekit-apc-snmp-sim").unwrap();
        let wrapper =
            fencekit_tests::snmpd::emulator_program(dir.path(), &emulator, &state).unwrap();
        let pdu = Pdu {
            snmpd: Snmpd::start(SnmpdOptions {
                communities: vec![Community {
                    name: community.into(),
                    write: true,
                }],
                users: vec![SnmpUser {
                    name: V3_USER.into(),
                    auth: AuthProtocol::Sha,
                    auth_pass: auth.into(),
                    privacy: Some((PrivProtocol::Aes, privacy.into())),
                    write: true,
                }],
                pass_persist: vec![PassPersist {
                    oid: ".1.3.6.1.4.1.318".into(),
                    program: wrapper,
                }],
                sys_object_id: Some(RPDU.into()),
                ..SnmpdOptions::default()
            })
            .unwrap(),
            state,
            _dir: dir,
        };
        pdu.reset();
        Some(pdu)
    }

    fn v3(&self, auth: &str, privacy: &str) -> Device {
        Device::new("apc", Some("2"))
            .param("ip", "127.0.0.1")
            .param("ipport", self.snmpd.port())
            .param("snmp_version", "3")
            .param("username", V3_USER)
            .param("snmp_auth_prot", "SHA")
            .param("snmp_sec_level", "authPriv")
            .param("snmp_priv_prot", "AES")
            .fence_param("power_timeout", 5)
            .secret("password", "authentication pass phrase", auth)
            .secret("snmp_priv_passwd", "privacy pass phrase", privacy)
    }

    fn v2c(&self, community: &str) -> Device {
        Device::new("apc", Some("2"))
            .param("ip", "127.0.0.1")
            .param("ipport", self.snmpd.port())
            .param("snmp_version", "2c")
            .fence_param("power_timeout", 5)
            // A wrong community is never answered: the run lasts its whole timeout.
            .fence_param("timeout", 15)
            .secret("community", "community", community)
    }
}

impl Oracle for Pdu {
    /// Every outlet on, obeying.
    fn reset(&self) {
        let mut text = String::from("family rpdu\nreboot_ms 1000\n");
        for n in 1..=4 {
            text.push_str(&format!("outlet 1 {n} on obey - outlet-{n}\n"));
        }
        std::fs::write(&self.state, text).unwrap();
    }

    fn is_off(&self) -> bool {
        let text = std::fs::read_to_string(&self.state).unwrap();
        text.lines()
            .filter(|l| l.starts_with("outlet 1 2 "))
            .any(|l| l.split_whitespace().nth(3) == Some("off"))
    }
}

/// Community and both pass phrases of one PDU, each unique.
fn pdu_secrets() -> (String, String, String) {
    (unique_secret(28), unique_secret(28), unique_secret(28))
}

#[test]
fn snmpv3_pass_phrases_reach_no_output_environment_argv_or_hook_through_any_front_end() {
    let (community, auth, privacy) = pdu_secrets();
    let Some(pdu) = Pdu::start(&community, &auth, &privacy) else {
        return;
    };
    let bench = Bench::new();
    let device = pdu.v3(&auth, &privacy);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &pdu,
        &[Given::Inline, Given::File, Given::Script],
        &[Given::Inline, Given::Env],
        &mut verdict,
    );
    verdict.assert_clean();
}

#[test]
fn an_snmp_community_reaches_no_output_environment_argv_or_hook_through_any_front_end() {
    let (community, auth, privacy) = pdu_secrets();
    let Some(pdu) = Pdu::start(&community, &auth, &privacy) else {
        return;
    };
    let bench = Bench::new();
    let device = pdu.v2c(&community);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &pdu,
        &[Given::Inline, Given::File],
        &[Given::Inline, Given::File],
        &mut verdict,
    );
    verdict.assert_clean();
}

#[test]
fn wrong_snmp_pass_phrases_and_communities_are_refused_without_being_repeated() {
    let (community, auth, privacy) = pdu_secrets();
    let Some(pdu) = Pdu::start(&community, &auth, &privacy) else {
        return;
    };
    let bench = Bench::new();
    let mut verdict = Verdict::default();
    // A wrong authentication pass phrase, then a right one with a wrong privacy one,
    // then a wrong community.
    let (_, wrong_auth, wrong_priv) = pdu_secrets();
    for device in [
        pdu.v3(&wrong_auth, &privacy),
        pdu.v3(&auth, &wrong_priv),
        pdu.v2c(&unique_secret(28)),
    ] {
        wrong_secret_through_agent_and_glue(&bench, &device, &pdu, &mut verdict);
    }
    verdict.assert_clean();
}

// ---- consoles: the APC and Baytech simulators behind sshd -----------------------------

/// One console of a rig, outlet 3 of strip 1.
struct Outlet<'a>(&'a OutletFile);

impl Oracle for Outlet<'_> {
    fn reset(&self) {
        self.0.set(1, 3, true, None).unwrap();
    }
    fn is_off(&self) -> bool {
        self.0.state(1, 3).unwrap() == Some(PowerState::Off)
    }
}

/// A rig whose login password is a secret of this run:
/// `fk-SECRET-<hex>-0-pw`.
fn console_rig(simulator: &str, units: u32, mode: &str) -> Option<ConsoleRig> {
    if !consoles::peers_present() {
        return None;
    }
    let simulator = bridge::workspace_binary(
        if simulator == "apc" {
            "fencekit-apc"
        } else {
            "fencekit-baytech"
        },
        if simulator == "apc" {
            "fencekit-apc-console-sim"
        } else {
            "fencekit-baytech-sim"
        },
    )
    .unwrap();
    let name = &unique_secret(24)["fk-".len()..];
    Some(ConsoleRig::start(
        &simulator.display().to_string(),
        name,
        units,
        &[(mode, &[])],
    ))
}

fn console_device(rig: &ConsoleRig, plugin: &'static str, password: &str) -> Device {
    let mut device = Device::new(plugin, Some("3"));
    for (k, v) in rig.params(0, &[]) {
        if k == "password" {
            device = device.secret("password", "password", password);
        } else {
            device = device.param(&k, v);
        }
    }
    if plugin == "apc" {
        device = device.param("transport", "ssh");
    }
    device.fence_param("power_timeout", 8)
}

#[test]
fn an_apc_console_password_reaches_no_output_environment_argv_or_hook() {
    let Some(rig) = console_rig("apc", 1, "menu") else {
        return;
    };
    let bench = Bench::new();
    let password = rig.consoles[0].password.clone();
    let device = console_device(&rig, "apc", &password);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &Outlet(&rig.consoles[0].state),
        &[Given::Inline, Given::Script],
        &[Given::File],
        &mut verdict,
    );
    let wrong = console_device(&rig, "apc", &unique_secret(24));
    wrong_secret_through_agent_and_glue(
        &bench,
        &wrong,
        &Outlet(&rig.consoles[0].state),
        &mut verdict,
    );
    verdict.assert_clean();
}

#[test]
fn a_baytech_password_reaches_no_output_environment_argv_or_hook() {
    let Some(rig) = console_rig("baytech", 1, "direct") else {
        return;
    };
    let bench = Bench::new();
    let password = rig.consoles[0].password.clone();
    let device = console_device(&rig, "baytech", &password);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &Outlet(&rig.consoles[0].state),
        &[Given::Inline, Given::File],
        &[Given::Env],
        &mut verdict,
    );
    let wrong = console_device(&rig, "baytech", &unique_secret(24));
    wrong_secret_through_agent_and_glue(
        &bench,
        &wrong,
        &Outlet(&rig.consoles[0].state),
        &mut verdict,
    );
    verdict.assert_clean();
}

/// A rig whose APC console prints the login password in its banner (a careless
/// device, or one that echoes what it was sent), then plays `faults`.
fn echoing_apc_console(bench: &Bench, faults: &[&str]) -> Option<ConsoleRig> {
    if !consoles::peers_present() {
        return None;
    }
    let simulator = bridge::workspace_binary("fencekit-apc", "fencekit-apc-console-sim").unwrap();
    let name = &unique_secret(24)["fk-".len()..];
    // The rig's first console logs in with this password.
    let password = format!("fk-{name}-0-pw");
    let wrapper = bench.script(&format!(
        "#!/bin/sh\nprintf 'Last login with password {password} accepted\\r\\n'\nexec '{}' \"$@\"\n",
        simulator.display()
    ));
    let rig = ConsoleRig::start(&wrapper.display().to_string(), name, 1, &[("menu", faults)]);
    assert!(
        rig.consoles[0].password == password,
        "the rig's password is not the one its banner prints"
    );
    Some(rig)
}

#[test]
fn a_console_that_prints_the_password_does_not_get_it_into_a_log_or_an_error() {
    let bench = Bench::new();
    let mut verdict = Verdict::default();
    // Obeying after the banner: the transcript at trace level must mask it.
    let Some(rig) = echoing_apc_console(&bench, &[]) else {
        return;
    };
    let password = rig.consoles[0].password.clone();
    let device = console_device(&rig, "apc", &password);
    let oracle = Outlet(&rig.consoles[0].state);
    oracle.reset();
    let files = bench.files();
    let watched = bench.agent(
        "apc",
        &device.stdin(&bench, Given::Inline, "off", &files),
        &device.secrets,
    );
    let mut f = Findings::new(
        "apc console printing the password, obeying",
        &device.secrets,
    );
    f.exit(&watched, 0);
    f.expect(oracle.is_off(), "the outlet is not off", &watched.stderr);
    f.watched(&watched);
    f.expect(
        // The banner line that echoes the password is logged withheld, whole.
        watched.stderr.contains(fencekit_console::WITHHELD),
        "the banner is not in the trace log, so the check proves nothing",
        &watched.stderr,
    );
    verdict.add(f);
    drop(rig);

    // Never a prompt after the banner: the error quotes what the device said.
    let Some(rig) = echoing_apc_console(&bench, &["silent"]) else {
        return;
    };
    let password = rig.consoles[0].password.clone();
    let device = console_device(&rig, "apc", &password).fence_param("timeout", 10);
    let files = bench.files();
    let watched = bench.agent(
        "apc",
        &device.stdin(&bench, Given::File, "off", &files),
        &device.secrets,
    );
    let mut f = Findings::new("apc console printing the password, silent", &device.secrets);
    f.failed(&watched);
    f.watched(&watched);
    f.file("the debug file", &files.debug_file);
    verdict.add(f);
    verdict.assert_clean();
}

// ---- the script plugin ---------------------------------------------------------------

/// A device driven by a script that keeps plug 1's state in a file and dumps its
/// argv and environment into another on every call, lingering so `/proc` sees it.
struct ScriptDevice {
    script: PathBuf,
    state: PathBuf,
    dump: PathBuf,
}

impl ScriptDevice {
    fn new(bench: &Bench, off_says: Option<&str>) -> ScriptDevice {
        let state = bench.path("script-device.state");
        let dump = bench.path("script-device.seen");
        // A device that answers off with text of its own (which may hold a secret).
        let off = match off_says {
            Some(text) => format!("echo '{text}' >&2; echo '{text}'; exit 1"),
            None => format!("echo off > '{}'", state.display()),
        };
        let script = bench.script(&format!(
            "#!/bin/sh\n\
             {{ echo \"argv: $0 $*\"; env; }} >> '{dump}'\n\
             sleep 0.1\n\
             case \"$1\" in\n\
             status) cat '{state}' ;;\n\
             on) echo on > '{state}' ;;\n\
             off) {off} ;;\n\
             list) echo '1 node1' ;;\n\
             esac\n",
            dump = dump.display(),
            state = state.display(),
        ));
        let device = ScriptDevice {
            script,
            state,
            dump,
        };
        device.reset();
        device
    }

    fn device(&self, password: &str, token: &str) -> Device {
        Device::new("script", Some("1"))
            .param("script", self.script.display())
            .param("ip", "127.0.0.1")
            .param("username", "admin")
            .fence_param("power_timeout", 3)
            .secret("password", "password", password)
            .secret(
                "secret_params",
                "secret parameter",
                &format!("api_token={token}"),
            )
    }
}

impl Oracle for ScriptDevice {
    fn reset(&self) {
        std::fs::write(&self.state, "on\n").unwrap();
    }
    fn is_off(&self) -> bool {
        std::fs::read_to_string(&self.state).unwrap().trim() == "off"
    }
}

#[test]
fn a_script_plugin_gets_no_secret_in_its_environment_or_argv() {
    let bench = Bench::new();
    let script = ScriptDevice::new(&bench, None);
    let (password, token) = (unique_secret(28), unique_secret(28));
    let device = script.device(&password, &token);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &script,
        &[Given::Inline, Given::File],
        &[Given::Inline],
        &mut verdict,
    );
    // What the script saw of the secrets in its argv and environment, over all runs.
    // The script must still receive them, by a channel other users cannot read (its
    // standard input, say): once that channel is settled, this test should also
    // assert the script received exactly `password` and `api_token` there.
    let mut f = Findings::new("script plugin's own argv and environment", &device.secrets);
    f.file("the script's argv and environment", &script.dump);
    let seen = std::fs::read_to_string(&script.dump).unwrap_or_default();
    f.expect(seen.contains("argv: "), "the script never ran", "");
    for name in ["FENCEKIT_PARAM_PASSWORD", "FENCEKIT_PARAM_API_TOKEN"] {
        f.expect(
            !seen.lines().any(|l| l.starts_with(&format!("{name}="))),
            &format!("the script's environment holds {name}"),
            "",
        );
    }
    verdict.add(f);
    verdict.assert_clean();
}

#[test]
fn a_script_device_that_echoes_the_password_does_not_get_it_into_an_error() {
    let bench = Bench::new();
    let password = unique_secret(28);
    // The script's own text holds the password (a device that repeats what it was
    // told); neither its argv nor its environment does.
    let script = ScriptDevice::new(
        &bench,
        Some(&format!("login refused for password {password}")),
    );
    let device = script.device(&password, &unique_secret(28));
    let mut verdict = Verdict::default();
    let files = bench.files();
    let watched = bench.agent(
        "script",
        &device.stdin(&bench, Given::Inline, "off", &files),
        &device.secrets,
    );
    let mut f = Findings::new("script fence agent, echoing device", &device.secrets);
    f.failed(&watched);
    f.expect(!script.is_off(), "the device went off", "");
    f.watched(&watched);
    f.file("the debug file", &files.debug_file);
    f.file("the notify hook's environment", &files.notify_env);
    verdict.add(f);
    let (config, env) = device.toml(&bench, Given::Inline, &bench.files());
    let watched = bench.fence(&config, "off", &env, &device.secrets);
    let mut f = Findings::new("script `fence -c`, echoing device", &device.secrets);
    f.failed(&watched);
    f.watched(&watched);
    verdict.add(f);
    verdict.assert_clean();
}

#[test]
fn a_script_tracing_itself_does_not_get_a_quoted_password_into_an_error() {
    let bench = Bench::new();
    // A quote inside: bash's trace (`set -x`) prints the value quoted,
    // `'fk-…'\''…'`, which is not the password byte for byte.
    let password = format!("{}'{}", unique_secret(22), &unique_secret(22)[10..]);
    let state = bench.path("traced.state");
    std::fs::write(&state, "on\n").unwrap();
    let script = bench.script(&format!(
        "#!/bin/bash\n\
         set -x\n\
         pw=$(sed -n 's/^password=//p')\n\
         case \"$1\" in\n\
         status) cat '{state}' ;;\n\
         off) false \"$pw\" ;;\n\
         esac\n",
        state = state.display(),
    ));
    let device = Device::new("script", Some("1"))
        .param("script", script.display())
        .fence_param("power_timeout", 3)
        .secret("password", "password", &password);
    let files = bench.files();
    let watched = bench.agent(
        "script",
        &device.stdin(&bench, Given::Inline, "off", &files),
        &device.secrets,
    );
    let mut verdict = Verdict::default();
    let mut f = Findings::new("script fence agent, tracing itself", &device.secrets);
    f.failed(&watched);
    f.expect(
        watched.stderr.contains("withheld"),
        "the script's trace line is not in the error, so the check proves nothing",
        &watched.stderr,
    );
    f.watched(&watched);
    f.file("the debug file", &files.debug_file);
    verdict.add(f);
    verdict.assert_clean();
}

// ---- sim: the password checked by the device -----------------------------------------

struct Sim {
    state: PathBuf,
}

impl Oracle for Sim {
    fn reset(&self) {
        write_sim_states(&self.state, &[true; 2]).unwrap();
    }
    fn is_off(&self) -> bool {
        sim_states(&self.state).unwrap().get(&1) == Some(&false)
    }
}

fn sim_device(sim: &Sim, password: &str, expected: &str) -> Device {
    let mut device = Device::new("sim", Some("1"))
        .param("plugs", 2)
        .param("state_file", sim.state.display())
        .secret("password", "password", password);
    if expected != password {
        device = device.secret("expect_password", "expected password", expected);
    } else {
        // The same secret under a second parameter: one label is enough.
        device
            .secret_params
            .push(("expect_password".into(), expected.to_owned()));
    }
    device
}

#[test]
fn a_sim_password_reaches_no_output_environment_argv_or_hook_through_any_front_end() {
    let bench = Bench::new();
    let sim = Sim {
        state: bench.path("sim.state"),
    };
    let password = unique_secret(32);
    let device = sim_device(&sim, &password, &password);
    let mut verdict = Verdict::default();
    fence_through_every_front_end(
        &bench,
        &device,
        &sim,
        &[Given::Inline, Given::File, Given::Script],
        &[Given::Inline, Given::File, Given::Env],
        &mut verdict,
    );
    let wrong = sim_device(&sim, &unique_secret(32), &unique_secret(32));
    wrong_secret_through_agent_and_glue(&bench, &wrong, &sim, &mut verdict);
    verdict.assert_clean();
}

#[test]
fn a_stdin_line_without_an_equals_sign_is_not_echoed() {
    let bench = Bench::new();
    let sim = Sim {
        state: bench.path("sim.state"),
    };
    sim.reset();
    let mut verdict = Verdict::default();
    // A password pasted with a blank or a colon instead of `=`, and one pasted
    // alone; short ones as people's are (a warning that quotes 20 characters
    // quotes all of them), and a long one.
    let (short, long) = (short_secret(), unique_secret(32));
    for (password, line) in [
        (&short, format!("password {short}")),
        (&short, format!("passwd: {short}")),
        (&long, long.clone()),
    ] {
        let device = sim_device(&sim, password, password);
        let files = bench.files();
        let lines = format!(
            "{}{line}\n",
            device.stdin(&bench, Given::Inline, "status", &files)
        );
        let watched = bench.agent("sim", &lines, &device.secrets);
        let mut f = Findings::new("sim fence agent, stdin line without '='", &device.secrets);
        f.exit(&watched, 0);
        f.watched(&watched);
        f.file("the debug file", &files.debug_file);
        verdict.add(f);
    }
    verdict.assert_clean();
}

#[test]
fn a_failing_password_script_does_not_get_what_it_printed_into_an_error() {
    let bench = Bench::new();
    let sim = Sim {
        state: bench.path("sim.state"),
    };
    sim.reset();
    let password = unique_secret(32);
    let file = bench.secret_file(&password);
    // It prints the password on both outputs, then fails.
    let script = bench.script(&format!(
        "#!/bin/sh\ncat '{f}'\ncat '{f}' >&2\nsleep 0.3\nexit 3\n",
        f = file.display()
    ));
    let secrets = Secrets::new().with("password", &password);
    let mut verdict = Verdict::default();
    let files = bench.files();
    let lines = format!(
        "action=off\nplug=1\nplugs=2\nstate_file={}\npassword_script={}\nexpect_password_file={}\n{VERBOSE_LINES}debug_file={}\n",
        sim.state.display(),
        script.display(),
        file.display(),
        files.debug_file.display()
    );
    let watched = bench.agent("sim", &lines, &secrets);
    let mut f = Findings::new("sim fence agent, failing password_script", &secrets);
    f.failed(&watched);
    f.expect(!sim.is_off(), "the device went off", "");
    f.watched(&watched);
    f.file("the debug file", &files.debug_file);
    verdict.add(f);
    let env = vec![
        ("hostmap".to_string(), "node1:1".to_string()),
        ("plugs".into(), "2".into()),
        ("state_file".into(), sim.state.display().to_string()),
        ("password_script".into(), script.display().to_string()),
    ];
    let watched = bench.external("sim", "off", &env, &secrets);
    let mut f = Findings::new("sim cluster-glue plugin, failing password_script", &secrets);
    f.failed(&watched);
    f.watched(&watched);
    verdict.add(f);
    verdict.assert_clean();
}

// ---- an external plugin (`.so`) ------------------------------------------------------

/// The example relay board, an external plugin: it takes no secret of its own, so
/// what is checked is a password given to it anyway (Pacemaker passes a device's
/// whole configuration) and the parameters cluster-glue puts in the environment.
#[test]
fn an_external_plugin_run_keeps_a_stray_password_and_its_parameters_from_hooks_and_logs() {
    let bench = Bench::new();
    let plugins = bench.path("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let library = bridge::workspace_library("fencekit-example-relay").unwrap();
    std::fs::copy(&library, plugins.join("libfencekit_example_relay.so")).unwrap();
    let state = bench.path("relays");
    let relay_1_off = || {
        std::fs::read_to_string(&state)
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "off"])
    };
    let password = unique_secret(32);
    let secrets = Secrets::new().with("password", &password);
    let names: Vec<String> = [
        "state_file",
        "relays",
        "password",
        "hostmap",
        "notify_command",
    ]
    .map(String::from)
    .to_vec();
    let mut verdict = Verdict::default();

    let files = bench.files();
    let mut command = Bench::command(&bench.installed.binary());
    Bench::base_env(&mut command);
    command
        .args(["fence-agent", "example-relay"])
        .env("FENCEKIT_PLUGIN_DIR", &plugins);
    let lines = format!(
        "action=off\nnodename=node1\nplug=1\nrelays=4\nstate_file={}\npassword={password}\n{VERBOSE_LINES}notify_command={}\n",
        state.display(),
        files.notify_command()
    );
    let watched = run_watched(
        command,
        Some(lines.as_bytes()),
        &bench.watch(false),
        &secrets,
    )
    .unwrap();
    let mut f = Findings::new("example-relay fence agent, stray password", &secrets);
    f.exit(&watched, 0);
    f.expect(relay_1_off(), "relay 1 is not off", &watched.stderr);
    f.watched(&watched);
    f.was_verbose_and_watched(&watched.stderr, "stderr", &watched);
    f.notify_env(&files.notify_env, &names);
    verdict.add(f);

    std::fs::remove_file(&state).unwrap();
    let files = bench.files();
    let mut command = Bench::command(&bench.installed.binary());
    Bench::base_env(&mut command);
    command
        .args(["external", "example-relay", "off", "node1"])
        .env("FENCEKIT_PLUGIN_DIR", &plugins)
        .env("hostmap", "node1:1")
        .env("relays", "4")
        .env("state_file", &state)
        .env("password", &password)
        .env("notify_command", files.notify_command());
    let watched = run_watched(command, None, &bench.watch(true), &secrets).unwrap();
    let mut f = Findings::new(
        "example-relay cluster-glue plugin, stray password",
        &secrets,
    );
    f.exit(&watched, 0);
    f.expect(relay_1_off(), "relay 1 is not off", &watched.stderr);
    f.watched(&watched);
    f.was_verbose_and_watched(&watched.stderr, "stderr", &watched);
    f.notify_env(&files.notify_env, &names);
    verdict.add(f);
    verdict.assert_clean();
}
