//! External plugins: power plugins in shared objects that fencekit loads at run time
//! through a small versioned C ABI (`include/fencekit_plugin.h`; Rust authors use the
//! `fencekit-plugin-api` crate).
//!
//! A file is loaded once per process: its declaration becomes a core [`Schema`] with
//! leaked `'static` data, so that it is used exactly like a built-in plugin's. A
//! device call runs on a thread of its own, off the async runtime, and is abandoned
//! at its deadline: fencekit stops waiting and reports a timeout, while the thread is
//! left to finish (a thread cannot be killed safely; the library is never unloaded,
//! so its code stays valid for that thread). Every error names the file.

mod abi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use fencekit_core::schema::{ParamSpec, ParamType, Params, PluginKind, Schema, Value};
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, Plug, PlugInfo, PowerState, PowerSwitch, SwitchTo,
};
use fencekit_plugin_api::abi as c;
use thiserror::Error;
use zeroize::Zeroizing;

pub use fencekit_plugin_api::abi::ABI_VERSION;

/// How long `open` may take: it builds a device from parameters and should do no I/O.
/// An operation's deadline, when sooner, bounds it instead.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long loading a file may take when the caller gives no deadline.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once a plugin's code was abandoned at a deadline: its thread may still run,
/// and may hold locks of the C library or the dynamic loader.
static ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn abandon() {
    ABANDONED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether plugin code was abandoned at a deadline in this process.
pub fn abandoned() -> bool {
    ABANDONED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Ends the process with `code`. When plugin code was abandoned ([`abandoned`]),
/// without exit handlers or the dynamic loader's finalisers, which would wait for
/// a lock an abandoned initialiser may hold forever; the caller flushes its output
/// first. Otherwise an ordinary exit.
pub fn exit(code: u8) -> ! {
    if abandoned() {
        abi::exit_now(code)
    }
    std::process::exit(i32::from(code))
}

/// Why a shared object was not accepted as a plugin.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LoadProblem {
    #[error("cannot load it: {0}")]
    Open(String),
    #[error("it speaks plugin ABI version {found}; this fencekit speaks version {expected} (rebuild the plugin against fencekit-plugin-api / fencekit_plugin.h version {expected})")]
    AbiVersion { found: u32, expected: u32 },
    #[error("it lacks the symbol {symbol} ({cause}); is it a fencekit plugin?")]
    MissingSymbol { symbol: &'static str, cause: String },
    #[error("its declaration is unusable: {0}")]
    Declaration(String),
    #[error("it is writable by any user; fencekit loads no code others can change")]
    WorldWritable,
    #[error("it is not a regular file (a FIFO, a device or a directory); it is not opened")]
    NotAFile,
    #[error("its name `{name}` is already taken by {by}")]
    NameTaken { name: String, by: String },
    #[error("cannot read the plugin directory: {0}")]
    Directory(String),
    #[error("loading it (its initialisers and its version and info calls) did not finish within {seconds:.1} s; fencekit stopped waiting and will not load it again in this run")]
    TimedOut { seconds: f64 },
}

/// A shared object that could not be used as a plugin, naming the file.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("external plugin {}: {problem}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub problem: LoadProblem,
}

/// A loaded external plugin: where it came from, its ABI version and its schema.
#[derive(Debug)]
pub struct ExternalPlugin {
    path: PathBuf,
    abi_version: u32,
    schema: &'static Schema,
    entry: &'static abi::Entry,
}

impl ExternalPlugin {
    /// The file it was loaded from (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// Opens a device from parameters validated against [`ExternalPlugin::schema`]
    /// (a union with other schemas is fine: only this plugin's parameters are passed).
    pub fn open(&'static self, params: &Params) -> Result<ExternalSwitch, DeviceError> {
        self.open_by(params, Instant::now() + OPEN_TIMEOUT)
    }

    /// As [`ExternalPlugin::open`], abandoned at `deadline` (or after
    /// [`OPEN_TIMEOUT`], whichever comes first).
    pub fn open_by(
        &'static self,
        params: &Params,
        deadline: Instant,
    ) -> Result<ExternalSwitch, DeviceError> {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .min(OPEN_TIMEOUT);
        let mut given: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (name, value) in params.iter() {
            if !self.schema.params.iter().any(|p| p.name == name) {
                continue;
            }
            let text = match value {
                Value::Text(text) => text.clone(),
                Value::Integer(n) => n.to_string(),
                Value::Boolean(b) => b.to_string(),
                Value::Seconds(d) => d.as_secs_f64().to_string(),
                // Secrets go to the plugin as values: it has to send them to the
                // device. They are held zeroized and never logged.
                Value::Secret(secret) => secret.expose().to_string(),
            };
            given.push((name.to_string(), Zeroizing::new(text)));
        }
        let entry = self.entry;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("fencekit-plugin-open".into())
            .spawn(move || {
                // If nobody waits any more, the device is dropped here, and closed.
                let _ = tx.send(abi::open_device(entry, &given));
            })
            .map_err(|e| self.failed("open", format!("cannot start a thread: {e}")))?;
        let handle = match rx.recv_timeout(bound) {
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => return Err(self.error("open", None, e)),
            Err(_) => {
                return Err(DeviceError::TimedOut(format!(
                "external plugin {}: open did not return within {:.1} s (the call was abandoned)",
                self.path.display(),
                bound.as_secs_f64()
            )))
            }
        };
        tracing::debug!(plugin = self.schema.plugin, path = %self.path.display(), "opened external plugin device");
        Ok(ExternalSwitch {
            plugin: self,
            handle: Arc::new(handle),
        })
    }

    fn failed(&self, operation: &str, message: String) -> DeviceError {
        DeviceError::Failed(format!(
            "external plugin {}: {operation}: {message}",
            self.path.display()
        ))
    }

    fn protocol(&self, operation: &str, message: String) -> DeviceError {
        DeviceError::Protocol(format!(
            "external plugin {}: {operation}: {message}",
            self.path.display()
        ))
    }

    /// A failed call as core's error, keeping the kind the plugin reported.
    fn error(&self, operation: &str, plug: Option<&Plug>, e: abi::CallError) -> DeviceError {
        let file = self.path.display();
        let text = format!("external plugin {file}: {operation}: {}", e.message);
        match e.status {
            c::STATUS_FAILED => DeviceError::Failed(text),
            c::STATUS_TIMED_OUT => DeviceError::TimedOut(text),
            c::STATUS_AUTH => DeviceError::Auth(text),
            c::STATUS_REFUSED => DeviceError::Refused(text),
            c::STATUS_UNKNOWN_PLUG => DeviceError::UnknownPlug {
                plug: plug.map_or_else(String::new, ToString::to_string),
                known: text,
            },
            c::STATUS_UNSUPPORTED => DeviceError::Unsupported(text),
            c::STATUS_BUSY => DeviceError::Busy(text),
            c::STATUS_PROTOCOL => DeviceError::Protocol(text),
            c::STATUS_BAD_PARAMS => DeviceError::Failed(format!(
                "external plugin {file}: {operation}: bad parameters: {}",
                e.message
            )),
            c::STATUS_PANIC => {
                DeviceError::Failed(format!("external plugin {file}: the plugin {}", e.message))
            }
            other => self.protocol(
                operation,
                format!(
                    "returned unknown status code {other} (message: {})",
                    e.message
                ),
            ),
        }
    }

    fn power_state(&self, operation: &str, code: u32) -> Result<PowerState, DeviceError> {
        match code {
            c::POWER_ON => Ok(PowerState::On),
            c::POWER_OFF => Ok(PowerState::Off),
            c::POWER_UNKNOWN => Ok(PowerState::Unknown),
            other => Err(self.protocol(
                operation,
                format!("returned unknown power state code {other} (the ABI has 1 on, 2 off, 3 unknown)"),
            )),
        }
    }
}

/// Loads the plugin in `path`, once per process: a second load of the same file
/// gives the same plugin. Bounded by [`LOAD_TIMEOUT`]; see [`load_by`].
pub fn load(path: &Path) -> Result<&'static ExternalPlugin, LoadError> {
    load_by(path, Instant::now() + LOAD_TIMEOUT)
}

/// Loads the plugin in `path` by `deadline`. Loading runs the library's
/// initialisers and its `version` and `info` calls, which are the plugin's code:
/// they run on a thread of their own, abandoned at the deadline (the file is then
/// refused, and not tried again by this process, since its thread may still run).
pub fn load_by(path: &Path, deadline: Instant) -> Result<&'static ExternalPlugin, LoadError> {
    let error = |problem| LoadError {
        path: path.to_path_buf(),
        problem,
    };
    let canonical = path
        .canonicalize()
        .map_err(|e| error(LoadProblem::Open(e.to_string())))?;
    type Loaded = BTreeMap<PathBuf, Result<&'static ExternalPlugin, LoadProblem>>;
    static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    let known = |canonical: &Path| {
        loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(canonical)
            .cloned()
    };
    let error = |problem| LoadError {
        path: canonical.clone(),
        problem,
    };
    // Only a plugin, or a file that hung: a file refused for a reason that can be
    // fixed (permissions) is tried again.
    match known(&canonical) {
        Some(Ok(plugin)) => return Ok(plugin),
        Some(Err(problem)) => return Err(error(problem)),
        None => {}
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(&canonical).map_err(|e| error(LoadProblem::Open(e.to_string())))?;
        // A FIFO or a device named *.so would block the loader's open forever.
        if !meta.is_file() {
            return Err(error(LoadProblem::NotAFile));
        }
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(error(LoadProblem::WorldWritable));
        }
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(error(LoadProblem::TimedOut { seconds: 0.0 }));
    }
    // The answer is handed over through a mutex and a condition variable, not a
    // channel: waiting on a channel sets up thread-local state whose destructor
    // registration takes the dynamic loader's lock, which a library initialiser
    // that never returns holds forever on the loading thread.
    type Answer = Result<(&'static abi::Entry, u32, &'static Schema), LoadProblem>;
    let slot: Arc<(Mutex<Option<Answer>>, std::sync::Condvar)> = Arc::default();
    let file = canonical.clone();
    let answer = Arc::clone(&slot);
    let loader = std::thread::Builder::new()
        .name("fencekit-plugin-load".into())
        .spawn(move || {
            let result = abi::open_library(&file).and_then(|(entry, declared)| {
                let schema = schema_of(&declared).map_err(LoadProblem::Declaration)?;
                Ok((entry, declared.abi_version, schema))
            });
            let (lock, ready) = &*answer;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            ready.notify_all();
        })
        .map_err(|e| error(LoadProblem::Open(format!("cannot start a thread: {e}"))))?;
    let answered = {
        let (lock, ready) = &*slot;
        let mut answer = lock.lock().unwrap_or_else(|e| e.into_inner());
        while answer.is_none() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            answer = ready
                .wait_timeout(answer, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        answer.take()
    };
    let (entry, abi_version, schema) = match answered {
        Some(result) => {
            // The thread has given its last word: wait for it to be gone, so that a
            // caller that was single-threaded before is so after.
            let _ = loader.join();
            result.map_err(error)?
        }
        None => {
            abandon();
            let problem = LoadProblem::TimedOut {
                seconds: remaining.as_secs_f64(),
            };
            // No log line here: logging may set up thread-local state, and so wait
            // for the loader's lock the abandoned initialiser may hold. The problem
            // is returned, and reported by the caller.
            loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(canonical.clone(), Err(problem.clone()));
            return Err(error(problem));
        }
    };
    let mut loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
    // Another caller may have loaded the same file meanwhile: one plugin per file.
    if let Some(Ok(plugin)) = loaded.get(&canonical) {
        return Ok(plugin);
    }
    let plugin: &'static ExternalPlugin = Box::leak(Box::new(ExternalPlugin {
        path: canonical.clone(),
        abi_version,
        schema,
        entry,
    }));
    tracing::info!(plugin = schema.plugin, path = %canonical.display(), abi = plugin.abi_version, "loaded external plugin");
    loaded.insert(canonical, Ok(plugin));
    Ok(plugin)
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn leak_list(text: &str) -> &'static [&'static str] {
    let items: Vec<&'static str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| leak(s.to_string()))
        .collect();
    Box::leak(items.into_boxed_slice())
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Turns a declaration into a core schema, with `'static` data leaked once per file.
fn schema_of(declared: &abi::Declared) -> Result<&'static Schema, String> {
    let name = &declared.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "plugin name {name:?} is not lower-case letters, digits, `-` and `_`"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut specs = Vec::with_capacity(declared.params.len());
    for p in &declared.params {
        let aliases = leak_list(&p.aliases);
        for n in std::iter::once(p.name.as_str()).chain(aliases.iter().copied()) {
            if !is_param_name(n) {
                return Err(format!(
                    "parameter name {n:?} is not lower-case letters, digits and `_`"
                ));
            }
            if seen.contains(&n) {
                return Err(format!("parameter name `{n}` is declared twice"));
            }
            seen.push(n);
        }
        let ty = match p.ty {
            c::PARAM_STRING => ParamType::String,
            c::PARAM_INTEGER => ParamType::Integer,
            c::PARAM_BOOLEAN => ParamType::Boolean,
            c::PARAM_SECONDS => ParamType::Seconds,
            c::PARAM_SELECT => {
                let options = leak_list(&p.options);
                if options.is_empty() {
                    return Err(format!(
                        "parameter `{}` is a select with no options",
                        p.name
                    ));
                }
                ParamType::Select(options)
            }
            other => {
                return Err(format!(
                    "parameter `{}` has unknown type code {other}",
                    p.name
                ))
            }
        };
        specs.push(ParamSpec {
            name: leak(p.name.clone()),
            aliases,
            short: None,
            ty,
            default: p.default.clone().map(leak),
            required: p.required,
            secret: p.secret,
            description: leak(p.description.clone()),
        });
    }
    let schema = Schema {
        plugin: leak(declared.name.clone()),
        kind: PluginKind::Power,
        summary: leak(declared.summary.clone()),
        description: leak(declared.description.clone()),
        url: leak(declared.url.clone()),
        multi_plug: declared.multi_plug,
        plug_optional: false,
        commands: if declared.supports_cycle {
            &[fencekit_core::DeviceCommand::Cycle]
        } else {
            &[]
        },
        params: Box::leak(specs.into_boxed_slice()),
        open: false,
    };
    Ok(Box::leak(Box::new(schema)))
}

/// A device of an external plugin.
#[derive(Debug)]
pub struct ExternalSwitch {
    plugin: &'static ExternalPlugin,
    handle: Arc<abi::DeviceHandle>,
}

impl ExternalSwitch {
    /// Runs one plugin call on a thread of its own and waits for it until `deadline`.
    /// Past the deadline the call is abandoned: its thread is left to finish and its
    /// result is dropped (the device stays open until then).
    async fn call<T, F>(
        &self,
        operation: &'static str,
        deadline: Instant,
        call: F,
    ) -> Result<T, DeviceError>
    where
        T: Send + 'static,
        F: FnOnce(&abi::DeviceHandle, u64) -> T + Send + 'static,
    {
        let file = self.plugin.path.display();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DeviceError::TimedOut(format!(
                "external plugin {file}: {operation}: no time left before the deadline"
            )));
        }
        let deadline_ms = u64::try_from(remaining.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let handle = Arc::clone(&self.handle);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread, not the runtime's blocking pool: the runtime waits for its
        // blocking tasks when it shuts down, and a hung plugin must not keep
        // stonith-bridge from exiting.
        std::thread::Builder::new()
            .name(format!("fencekit-plugin-{operation}"))
            .spawn(move || {
                let _ = tx.send(call(&handle, deadline_ms));
            })
            .map_err(|e| {
                self.plugin
                    .failed(operation, format!("cannot start a thread: {e}"))
            })?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(self.plugin.failed(
                operation,
                "the call's thread ended without an answer".into(),
            )),
            Err(_) => {
                abandon();
                tracing::warn!(plugin = self.plugin.schema.plugin, path = %file, operation, "external plugin call abandoned at its deadline");
                Err(DeviceError::TimedOut(format!(
                    "external plugin {file}: {operation} did not return within {deadline_ms} ms; fencekit stopped waiting (the call's thread is left to finish)"
                )))
            }
        }
    }
}

#[async_trait]
impl PowerSwitch for ExternalSwitch {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        let text = plug.to_string();
        let code = self
            .call("status", deadline, move |h, ms| h.status(&text, ms))
            .await?
            .map_err(|e| self.plugin.error("status", Some(plug), e))?;
        self.plugin.power_state("status", code)
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let text = plug.to_string();
        let code = match to {
            SwitchTo::On => c::SWITCH_ON,
            SwitchTo::Off => c::SWITCH_OFF,
        };
        let operation = match to {
            SwitchTo::On => "on",
            SwitchTo::Off => "off",
        };
        self.call(operation, deadline, move |h, ms| h.set(&text, code, ms))
            .await?
            .map_err(|e| self.plugin.error(operation, Some(plug), e))
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        if !self.supports(command) {
            return Err(DeviceError::Unsupported(format!(
                "external plugin {}: no {} command",
                self.plugin.path.display(),
                command.as_str()
            )));
        }
        let text = plug.to_string();
        self.call("cycle", deadline, move |h, ms| h.cycle(&text, ms))
            .await?
            .map_err(|e| self.plugin.error("cycle", Some(plug), e))
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        command == DeviceCommand::Cycle && self.handle.supports_cycle()
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        let (listed, overflow) = self
            .call("list", deadline, |h, ms| h.list(ms))
            .await?
            .map_err(|e| self.plugin.error("list", None, e))?;
        if overflow {
            return Err(self.plugin.protocol(
                "list",
                "reported more plugs, or more plug text, than any device has".into(),
            ));
        }
        listed
            .into_iter()
            .map(|p| {
                let plug = p
                    .plug
                    .map_err(|m| self.plugin.protocol("list", format!("returned {m}")))?;
                let name = p
                    .name
                    .map_err(|m| self.plugin.protocol("list", format!("returned {m}")))?;
                let plug = Plug::try_parse(&plug)
                    .map_err(|e| self.plugin.protocol("list", format!("returned {e}")))?;
                Ok(PlugInfo {
                    plug,
                    name: (!name.is_empty()).then_some(name),
                    alias: None,
                    state: self.plugin.power_state("list", p.state)?,
                })
            })
            .collect()
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        self.call("check", deadline, |h, ms| h.check(ms))
            .await?
            .map_err(|e| self.plugin.error("check", None, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(params: Vec<abi::DeclaredParam>) -> abi::Declared {
        abi::Declared {
            abi_version: ABI_VERSION,
            name: "relay".into(),
            summary: "s".into(),
            description: "d".into(),
            url: String::new(),
            multi_plug: true,
            supports_cycle: false,
            params,
        }
    }

    fn param(name: &str, ty: u32) -> abi::DeclaredParam {
        abi::DeclaredParam {
            name: name.into(),
            aliases: String::new(),
            ty,
            options: String::new(),
            default: None,
            required: false,
            secret: false,
            description: "x".into(),
        }
    }

    #[test]
    fn a_declaration_becomes_a_core_schema_with_aliases_types_and_secrets() {
        let mut password = param("password", c::PARAM_STRING);
        password.aliases = "passwd, pw".into();
        password.secret = true;
        let mut mode = param("mode", c::PARAM_SELECT);
        mode.options = "fast,slow".into();
        mode.default = Some("fast".into());
        let schema = schema_of(&declared(vec![
            password,
            mode,
            param("count", c::PARAM_INTEGER),
        ]))
        .unwrap();
        assert_eq!(schema.plugin, "relay");
        let pw = schema.find("PW").unwrap();
        assert_eq!(pw.name, "password");
        assert!(pw.secret);
        assert_eq!(
            schema.find("mode").unwrap().ty,
            ParamType::Select(&["fast", "slow"])
        );
        assert_eq!(schema.find("mode").unwrap().default, Some("fast"));
        assert_eq!(schema.find("count").unwrap().ty, ParamType::Integer);
    }

    #[test]
    fn a_declaration_with_bad_names_or_types_is_refused() {
        assert!(schema_of(&declared(vec![param("Bad Name", c::PARAM_STRING)])).is_err());
        assert!(schema_of(&declared(vec![param("x", 99)])).is_err());
        assert!(schema_of(&declared(vec![
            param("x", c::PARAM_STRING),
            param("x", c::PARAM_STRING)
        ]))
        .is_err());
        let mut d = declared(vec![]);
        d.name = "no spaces".into();
        assert!(schema_of(&d).is_err());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/libnothing.so"),
            "{err}"
        );
    }
}
