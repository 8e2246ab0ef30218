//! The `script` plugin: a power device driven by an executable the user gives, for
//! hardware no plugin knows. fencekit runs it as `SCRIPT ACTION`, ACTION one of
//! `status`, `on`, `off`, `list`, `check`, with the plug in `FENCEKIT_PLUG` and every
//! parameter that is not secret in `FENCEKIT_PARAM_<NAME>`. Every parameter, secrets
//! included, is also written to its standard input as `name=value` lines (as
//! fence-agents read theirs), after `action=` and `plug=`: secrets go there *only*,
//! never in its environment (which outlives a read of it in `/proc/PID/environ` and
//! is inherited by everything the script starts) nor in argv (which any user can
//! read with `ps`). Exit 0 is success; `status` prints `on` or `off`; `list` prints
//! one `PLUG NAME` line per plug. Any other parameter the script needs is given
//! under its own name (`state_dir=/var/lib/relay` reaches the script as
//! `FENCEKIT_PARAM_STATE_DIR` and as a stdin line; one whose name reads like a
//! secret — containing pass, secret, token, key, community, credential or auth —
//! only on stdin), or in `params` (`key=value,key=value`) or, when secret,
//! `secret_params`. A name given twice is an error.
//!
//! Each run has the call's deadline and is started as every child of core is
//! ([`fencekit_core::child`]): in a process group of its own, with the registered
//! secrets removed from its environment; past the deadline, or once the script has
//! exited, the whole group is killed (SIGKILL), so the children it started end with
//! it. (A child that leaves the group with `setsid` is ended too: the script's
//! supervisor adopts it once its parent is gone, and everything below the
//! supervisor is killed when the script ends: [`fencekit_core::child::end_below`].)
//!
//! As with every plugin, success of `off` only means the script took the command:
//! fencekit confirms with `status`.

use std::path::PathBuf;
use std::process::ExitStatus;

use async_trait::async_trait;
use fencekit_core::child::{self, ChildError, Limits};
use fencekit_core::schema::{ParamSpec, Params, PluginKind, Schema, Value};
use fencekit_core::{DeviceError, Instant, Plug, PlugInfo, PowerState, PowerSwitch, SwitchTo};
use zeroize::Zeroizing;

/// Most of a script's stdout that is read; the rest is drained and dropped.
const STDOUT_LIMIT: usize = 256 * 1024;
/// Most of its stderr kept for error messages.
const STDERR_LIMIT: usize = 16 * 1024;
/// Most plugs a `list` may print: far more than any PDU has.
const LIST_LIMIT: usize = 4096;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "script",
        "The executable to run as `SCRIPT ACTION` (status, on, off, list, check); the plug is in FENCEKIT_PLUG, parameters in FENCEKIT_PARAM_<NAME> (secrets only on stdin)",
    )
    .required(),
    ParamSpec::new("ip", "Device address, passed as FENCEKIT_PARAM_IP").aliases(&["ipaddr"]),
    ParamSpec::new("username", "Login name, passed as FENCEKIT_PARAM_USERNAME")
        .aliases(&["login", "userid", "user"]),
    ParamSpec::new(
        "password",
        "Password, written to the script's stdin as `password=VALUE` (never in its environment or argv)",
    )
        .aliases(&["passwd"])
        .secret(),
    ParamSpec::new(
        "params",
        "Further parameters for the script as key=value,key=value; each is passed as FENCEKIT_PARAM_<KEY> (any parameter not declared here is passed under its own name too)",
    ),
    ParamSpec::new(
        "secret_params",
        "Further secret parameters as key=value,key=value, written to the script's stdin as `key=value` lines only, never printed",
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
                  is in FENCEKIT_PLUG and each parameter that is not secret in \
                  FENCEKIT_PARAM_<NAME>. Every parameter, secrets included, is written to its \
                  stdin as name=value lines (after action= and plug=); secrets only there. Exit \
                  status 0 is success. fencekit confirms every off by running status.",
    url: "",
    multi_plug: true,
    plug_optional: false,
    commands: &[],
    params: PARAMS,
    open: true,
};

/// A device driven by a script.
pub struct ScriptSwitch {
    script: PathBuf,
    /// Parameters that are not secret, as `FENCEKIT_PARAM_<NAME>` variables.
    env: Vec<(String, String)>,
    /// Every parameter as `(name, value)`, for the script's stdin.
    input: Vec<(String, Zeroizing<String>)>,
    /// Secret values, to blank out of anything the script prints that reaches an error.
    secrets: Vec<Zeroizing<String>>,
    /// The names in `input`, lower case, to refuse one given twice.
    names: std::collections::HashSet<String>,
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
            input: Vec::new(),
            secrets: Vec::new(),
            names: std::collections::HashSet::new(),
        };
        for (name, value) in params.iter() {
            if !PARAMS.iter().any(|p| p.name == name) || matches!(name, "params" | "secret_params")
            {
                continue;
            }
            let (text, secret) = match value {
                Value::Text(t) => (Zeroizing::new(t.clone()), false),
                Value::Integer(n) => (Zeroizing::new(n.to_string()), false),
                Value::Boolean(b) => (Zeroizing::new(b.to_string()), false),
                Value::Seconds(d) => (Zeroizing::new(d.as_secs_f64().to_string()), false),
                Value::Secret(s) => (Zeroizing::new(s.expose().to_string()), true),
            };
            switch.add(name, text, secret)?;
        }
        // Every parameter the schema does not name (`state_dir=` on a fence agent's
        // stdin): the script's own, passed as given.
        for (name, value) in params.extra() {
            let text = Zeroizing::new(value.expose().to_string());
            switch.add(name, text, fencekit_core::schema::named_like_secret(name))?;
        }
        if let Some(extra) = params.text("params") {
            // A key named like a secret goes to stdin only, wherever it was given.
            for (key, value) in key_values(extra, "params")? {
                let secret = fencekit_core::schema::named_like_secret(&key);
                switch.add(&key, value, secret)?;
            }
        }
        if let Some(extra) = params.secret("secret_params") {
            for (key, value) in key_values(extra.expose(), "secret_params")? {
                switch.add(&key, value, true)?;
            }
        }
        Ok(switch)
    }

    fn add(
        &mut self,
        key: &str,
        value: Zeroizing<String>,
        secret: bool,
    ) -> Result<(), DeviceError> {
        let name = key.to_ascii_lowercase();
        if matches!(name.as_str(), "action" | "plug") || !self.names.insert(name.clone()) {
            return Err(DeviceError::Failed(format!(
                "script: parameter `{key}` is given twice (in `params` and elsewhere), \
                 or is `action` or `plug`"
            )));
        }
        // One line per parameter on stdin: a line break would forge another.
        if value.contains(['\n', '\r', '\0']) {
            return Err(DeviceError::Failed(format!(
                "script: parameter `{key}` holds a line break or NUL"
            )));
        }
        if secret {
            fencekit_core::screen::watch(&fencekit_core::Secret::new(value.as_str()));
            self.secrets.push(value.clone());
        } else {
            self.env.push((
                format!("FENCEKIT_PARAM_{}", key.to_ascii_uppercase()),
                value.to_string(),
            ));
        }
        self.input.push((name, value));
        Ok(())
    }

    /// What the script reads on stdin: `action=`, `plug=`, then every parameter.
    fn stdin(&self, action: &str, plug: Option<&Plug>) -> Zeroizing<Vec<u8>> {
        let mut text = Zeroizing::new(format!("action={action}\n"));
        if let Some(plug) = plug {
            text.push_str(&format!("plug={plug}\n"));
        }
        for (name, value) in &self.input {
            text.push_str(name);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        Zeroizing::new(text.as_bytes().to_vec())
    }

    /// Text the script printed, withheld whole if it holds a secret value: masked
    /// in place, a secret would show where it stood (and so, in guessable text,
    /// what it is).
    fn redact(&self, text: &str) -> String {
        if fencekit_core::screen::shows_any_piece(text, self.secrets.iter().map(|s| s.as_str())) {
            "[withheld: the script's text holds a secret]".to_string()
        } else {
            text.to_string()
        }
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
        let mut command = child::program(&self.script);
        command.arg(action).env("FENCEKIT_ACTION", action);
        if let Some(plug) = plug {
            command.env("FENCEKIT_PLUG", plug.to_string());
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let limits = Limits {
            stdout: STDOUT_LIMIT,
            stderr: STDERR_LIMIT,
        };
        let input = Some(self.stdin(action, plug));
        let done = match child::run(command, input, deadline, limits).await {
            Ok(done) => done,
            Err(ChildError::TimedOut(_)) => {
                tracing::warn!(script = %script, action, "script killed at its deadline");
                return Err(DeviceError::TimedOut(format!(
                    "script {script} {action}: still running at the deadline ({} ms); killed it and its process group",
                    remaining.as_millis()
                )));
            }
            Err(ChildError::Spawn(e)) => {
                return Err(DeviceError::Failed(format!(
                    "script {script} {action}: cannot run it: {e}"
                )))
            }
            Err(e) => {
                return Err(DeviceError::Failed(format!(
                    "script {script} {action}: {e}"
                )))
            }
        };
        if done.stdout_cut {
            return Err(DeviceError::Protocol(format!(
                "script {script} {action}: printed more than {STDOUT_LIMIT} bytes; its \
                 answer is not read from a part of it"
            )));
        }
        let (status, out, err) = (done.status, done.stdout, done.stderr);
        if !status.success() {
            return Err(DeviceError::Failed(format!(
                "script {script} {action}: {}{}",
                describe(status),
                last_line(&self.redact(&String::from_utf8_lossy(&err)))
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            )));
        }
        String::from_utf8(out.to_vec()).map_err(|_| {
            DeviceError::Protocol(format!(
                "script {script} {action}: printed text that is not UTF-8"
            ))
        })
    }
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
fn key_values(text: &str, param: &str) -> Result<Vec<(String, Zeroizing<String>)>, DeviceError> {
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
            Ok((key.to_string(), Zeroizing::new(value.trim().to_string())))
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
/// absent). A plug or name that no device could have (too long, control
/// characters), or more than [`LIST_LIMIT`] lines, is an error naming the line, not
/// echoing it.
fn parse_list(text: &str) -> Result<Vec<PlugInfo>, String> {
    let mut plugs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if plugs.len() == LIST_LIMIT {
            return Err(format!("more than {LIST_LIMIT} plugs"));
        }
        let (plug, name) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(p, n)| (p, n.trim()));
        let bad = |e: fencekit_core::PlugError| format!("line {}: {e}", index + 1);
        let plug = Plug::try_parse(plug).map_err(bad)?;
        // A name is held to the same bounds as plug text: it is matched against one.
        Plug::try_parse(name).map_err(bad)?;
        plugs.push(PlugInfo {
            plug,
            name: (!name.is_empty()).then(|| name.to_string()),
            alias: None,
            state: PowerState::Unknown,
        });
    }
    Ok(plugs)
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
        let output = self.run("list", None, deadline).await?;
        // A list is printed for people and Pacemaker: a line holding a secret (a
        // script that echoes its password) is not one of them.
        if self.redact(&output) != output {
            return Err(DeviceError::Protocol(format!(
                "script {} list printed a secret it was given; the list is not shown",
                self.script.display()
            )));
        }
        parse_list(&output).map_err(|e| {
            DeviceError::Protocol(format!(
                "script {} list printed an unusable plug list: {e}",
                self.script.display()
            ))
        })
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
        let plugs = parse_list("1 web server\n2\n\n db:3  db \n").unwrap();
        assert_eq!(plugs.len(), 3);
        assert_eq!(plugs[0].plug, Plug::Number(1));
        assert_eq!(plugs[0].name.as_deref(), Some("web server"));
        assert_eq!(plugs[1].name, None);
        assert_eq!(plugs[2].plug, Plug::Name("db:3".into()));
    }

    #[test]
    fn a_list_of_deep_huge_or_endless_text_is_an_error_not_a_crash() {
        let deep = "1:".repeat(500_000);
        let err = parse_list(&format!("1 a\n{deep} b\n")).unwrap_err();
        assert!(err.starts_with("line 2: plug text of"), "{err:.200}");
        let long_name = format!("1 {}", "n".repeat(1 << 20));
        assert!(parse_list(&long_name).is_err());
        let endless = "1 a\n".repeat(LIST_LIMIT + 1);
        assert!(parse_list(&endless).unwrap_err().contains("more than"));
        assert!(parse_list("1 a\u{1b}[2J").is_err());
    }

    #[test]
    fn free_form_params_are_key_value_pairs_with_plain_keys() {
        assert_eq!(
            key_values("a=1, b_2 = x=y ,", "params").unwrap(),
            vec![
                ("a".into(), Zeroizing::new("1".into())),
                ("b_2".into(), Zeroizing::new("x=y".into()))
            ]
        );
        assert!(key_values("novalue", "params").is_err());
        assert!(key_values("bad-key=1", "params").is_err());
    }
}
