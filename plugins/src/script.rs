//! The `script` plugin: a power device driven by an executable the user gives, for
//! hardware no plugin knows. fencekit runs it as `SCRIPT ACTION`, ACTION one of
//! `status`, `on`, `off`, `list`, `check`, with the plug in `FENCEKIT_PLUG` and every
//! parameter in `FENCEKIT_PARAM_<NAME>` (secrets too: never in argv, where any user
//! can read them with `ps`). Exit 0 is success; `status` prints `on` or `off`; `list`
//! prints one `PLUG NAME` line per plug. Extra parameters the script needs go in
//! `params` (`key=value,key=value`) or, when secret, `secret_params`; each becomes
//! `FENCEKIT_PARAM_<KEY>`.
//!
//! Each run has the call's deadline. The script starts in a process group of its own,
//! and past the deadline the whole group is killed (SIGKILL), so the children it
//! started end with it. (A child that leaves the group with `setsid` escapes this.)
//!
//! As with every plugin, success of `off` only means the script took the command:
//! fencekit confirms with `status`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use async_trait::async_trait;
use fencekit_core::schema::{ParamSpec, Params, PluginKind, Schema, Value};
use fencekit_core::{DeviceError, Instant, Plug, PlugInfo, PowerState, PowerSwitch, SwitchTo};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use zeroize::Zeroizing;

/// Most of a script's stdout that is read; the rest is drained and dropped.
const STDOUT_LIMIT: u64 = 256 * 1024;
/// Most of its stderr kept for error messages.
const STDERR_LIMIT: u64 = 16 * 1024;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "script",
        "The executable to run as `SCRIPT ACTION` (status, on, off, list, check); the plug is in FENCEKIT_PLUG, parameters in FENCEKIT_PARAM_<NAME>",
    )
    .required(),
    ParamSpec::new("ip", "Device address, passed as FENCEKIT_PARAM_IP").aliases(&["ipaddr"]),
    ParamSpec::new("username", "Login name, passed as FENCEKIT_PARAM_USERNAME")
        .aliases(&["login", "userid", "user"]),
    ParamSpec::new("password", "Password, passed as FENCEKIT_PARAM_PASSWORD (never in argv)")
        .aliases(&["passwd"])
        .secret(),
    ParamSpec::new(
        "params",
        "Further parameters for the script as key=value,key=value; each is passed as FENCEKIT_PARAM_<KEY>",
    ),
    ParamSpec::new(
        "secret_params",
        "Further secret parameters as key=value,key=value, passed like `params` and never printed",
    )
    .secret(),
];

/// The `script` plugin's schema.
pub const SCHEMA: Schema = Schema {
    plugin: "script",
    kind: PluginKind::Power,
    summary: "power device driven by a script of your own",
    description: "Runs a user-given executable as `SCRIPT ACTION` for each operation: status \
                  (prints on or off), on, off, list (prints `PLUG NAME` lines), check. The plug \
                  is in FENCEKIT_PLUG and each parameter in FENCEKIT_PARAM_<NAME>. Exit status 0 \
                  is success. fencekit confirms every off by running status.",
    url: "",
    multi_plug: true,
    commands: &[],
    params: PARAMS,
};

/// A device driven by a script.
pub struct ScriptSwitch {
    script: PathBuf,
    env: Vec<(String, Zeroizing<String>)>,
    /// Secret values, to blank out of anything the script prints that reaches an error.
    secrets: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for ScriptSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptSwitch")
            .field("script", &self.script)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ScriptSwitch {
    /// Builds the `script` plugin's device from validated parameters.
    pub fn from_params(params: &Params) -> Result<ScriptSwitch, DeviceError> {
        let script = params
            .text("script")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| DeviceError::Failed("script: `script` names no executable".into()))?;
        let mut switch = ScriptSwitch {
            script: PathBuf::from(script),
            env: Vec::new(),
            secrets: Vec::new(),
        };
        for (name, value) in params.iter() {
            if !PARAMS.iter().any(|p| p.name == name) || matches!(name, "params" | "secret_params")
            {
                continue;
            }
            let text = match value {
                Value::Text(t) => t.clone(),
                Value::Integer(n) => n.to_string(),
                Value::Boolean(b) => b.to_string(),
                Value::Seconds(d) => d.as_secs_f64().to_string(),
                Value::Secret(s) => {
                    switch.secrets.push(Zeroizing::new(s.expose().to_string()));
                    s.expose().to_string()
                }
            };
            switch.add(name, text)?;
        }
        if let Some(extra) = params.text("params") {
            for (key, value) in key_values(extra, "params")? {
                switch.add(&key, value)?;
            }
        }
        if let Some(extra) = params.secret("secret_params") {
            for (key, value) in key_values(extra.expose(), "secret_params")? {
                switch.secrets.push(Zeroizing::new(value.clone()));
                switch.add(&key, value)?;
            }
        }
        Ok(switch)
    }

    fn add(&mut self, key: &str, value: String) -> Result<(), DeviceError> {
        let var = format!("FENCEKIT_PARAM_{}", key.to_ascii_uppercase());
        if self.env.iter().any(|(k, _)| *k == var) {
            return Err(DeviceError::Failed(format!(
                "script: parameter `{key}` is given twice (in `params` and elsewhere)"
            )));
        }
        self.env.push((var, Zeroizing::new(value)));
        Ok(())
    }

    /// Blanks secret values out of text the script printed.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// Runs `SCRIPT ACTION` by `deadline`; gives its stdout on exit status 0.
    async fn run(
        &self,
        action: &'static str,
        plug: Option<&Plug>,
        deadline: Instant,
    ) -> Result<String, DeviceError> {
        let script = self.script.display();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DeviceError::TimedOut(format!(
                "script {script} {action}: no time left before the deadline"
            )));
        }
        let mut command = Command::new(&self.script);
        command
            .arg(action)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that the deadline can end its children too.
            .process_group(0)
            .env("FENCEKIT_ACTION", action);
        if let Some(plug) = plug {
            command.env("FENCEKIT_PLUG", plug.to_string());
        }
        for (key, value) in &self.env {
            command.env(key, value.as_str());
        }
        let mut child = spawn(&mut command, deadline).await.map_err(|e| {
            DeviceError::Failed(format!("script {script} {action}: cannot run it: {e}"))
        })?;
        let group = ProcessGroup {
            pgid: child.id(),
            armed: true,
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Waiting for a child blocks: a thread of its own, off the async runtime.
        let spawned = std::thread::Builder::new()
            .name("fencekit-script".into())
            .spawn(move || {
                let err_reader = std::thread::spawn(move || read_limited(stderr, STDERR_LIMIT));
                let out = read_limited(stdout, STDOUT_LIMIT);
                let err = err_reader.join().unwrap_or_default();
                let status = child.wait();
                let _ = tx.send((status, out, err));
            });
        if let Err(e) = spawned {
            // `group` is dropped armed: the script is killed.
            return Err(DeviceError::Failed(format!(
                "script {script} {action}: cannot start a thread to wait for it: {e}"
            )));
        }
        let waited = tokio::time::timeout_at(deadline, rx).await;
        let (status, out, err) = match waited {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                return Err(DeviceError::Failed(format!(
                    "script {script} {action}: lost track of it"
                )))
            }
            Err(_) => {
                drop(group);
                tracing::warn!(script = %script, action, "script killed at its deadline");
                return Err(DeviceError::TimedOut(format!(
                    "script {script} {action}: still running at the deadline ({} ms); killed it and its process group",
                    remaining.as_millis()
                )));
            }
        };
        group.disarm();
        let status = status.map_err(|e| {
            DeviceError::Failed(format!("script {script} {action}: cannot wait for it: {e}"))
        })?;
        if !status.success() {
            return Err(DeviceError::Failed(format!(
                "script {script} {action}: {}{}",
                describe(status),
                last_line(&self.redact(&String::from_utf8_lossy(&err)))
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            )));
        }
        String::from_utf8(out).map_err(|_| {
            DeviceError::Protocol(format!(
                "script {script} {action}: printed text that is not UTF-8"
            ))
        })
    }
}

/// Kills a script's whole process group when dropped armed: at the deadline, and when
/// the caller stops waiting (the fence algorithm's own deadline drops the future).
struct ProcessGroup {
    pgid: u32,
    armed: bool,
}

impl ProcessGroup {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(pgid) = i32::try_from(self.pgid) {
            // The group exists until its last member is gone, and the leader is not
            // reaped before the waiting thread has seen it exit, so this cannot hit
            // another program's group.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Starts the script. "Text file busy" means a program is still writing it (or, in a
/// threaded process, a fork has not yet closed its copy of the writer's descriptor);
/// it passes within moments, so it is retried while time remains.
async fn spawn(command: &mut Command, deadline: Instant) -> std::io::Result<std::process::Child> {
    loop {
        match command.spawn() {
            Err(e)
                if e.raw_os_error() == Some(nix::libc::ETXTBSY)
                    && Instant::now() + RETRY_PAUSE < deadline =>
            {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            result => return result,
        }
    }
}

/// The pause before starting a busy script again.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

fn read_limited(pipe: Option<impl Read>, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = (&mut pipe).take(limit).read_to_end(&mut buf);
        // Keep draining, so that a chatty script does not block on a full pipe.
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
    }
    buf
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "failed".into(),
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

/// Splits `key=value,key=value`; keys are letters, digits and `_`.
fn key_values(text: &str, param: &str) -> Result<Vec<(String, String)>, DeviceError> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                DeviceError::Failed(format!(
                    "script: `{param}`: an item has no `=` (expected key=value,key=value)"
                ))
            })?;
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(DeviceError::Failed(format!(
                    "script: `{param}`: key {key:?} is not letters, digits and `_`"
                )));
            }
            Ok((key.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Reads what `status` printed: `on` or `off`, nothing else.
fn parse_status(text: &str) -> Option<PowerState> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" => Some(PowerState::On),
        "off" => Some(PowerState::Off),
        _ => None,
    }
}

/// Reads what `list` printed: `PLUG NAME` lines (the name may hold spaces or be
/// absent).
fn parse_list(text: &str) -> Vec<PlugInfo> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (plug, name) = line
                .split_once(char::is_whitespace)
                .map_or((line, ""), |(p, n)| (p, n.trim()));
            PlugInfo {
                plug: Plug::parse(plug),
                name: (!name.is_empty()).then(|| name.to_string()),
                state: PowerState::Unknown,
            }
        })
        .collect()
}

#[async_trait]
impl PowerSwitch for ScriptSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let out = self.run("status", Some(plug), deadline).await?;
        parse_status(&out).ok_or_else(|| {
            let shown: String = self.redact(out.trim()).chars().take(80).collect();
            DeviceError::Protocol(format!(
                "script {} status printed {shown:?}; expected `on` or `off`",
                self.script.display()
            ))
        })
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let action = match to {
            SwitchTo::On => "on",
            SwitchTo::Off => "off",
        };
        self.run(action, Some(plug), deadline).await.map(drop)
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        Ok(parse_list(&self.run("list", None, deadline).await?))
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        self.run("check", None, deadline).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_output_is_on_or_off_and_nothing_else() {
        assert_eq!(parse_status("on\n"), Some(PowerState::On));
        assert_eq!(parse_status(" OFF "), Some(PowerState::Off));
        assert_eq!(parse_status("maybe"), None);
        assert_eq!(parse_status("on\noff"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn list_lines_are_plug_and_name() {
        let plugs = parse_list("1 web server\n2\n\n db:3  db \n");
        assert_eq!(plugs.len(), 3);
        assert_eq!(plugs[0].plug, Plug::Number(1));
        assert_eq!(plugs[0].name.as_deref(), Some("web server"));
        assert_eq!(plugs[1].name, None);
        assert_eq!(plugs[2].plug, Plug::Name("db:3".into()));
    }

    #[test]
    fn free_form_params_are_key_value_pairs_with_plain_keys() {
        assert_eq!(
            key_values("a=1, b_2 = x=y ,", "params").unwrap(),
            vec![("a".into(), "1".into()), ("b_2".into(), "x=y".into())]
        );
        assert!(key_values("novalue", "params").is_err());
        assert!(key_values("bad-key=1", "params").is_err());
    }
}
