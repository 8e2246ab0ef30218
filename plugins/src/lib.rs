//! The plugin registry: every plugin fencekit knows, by name, with its parameter
//! schema and a constructor. Front ends and configuration validation ask the
//! registry, never a plugin crate directly.
//!
//! Built-in plugins ([`POWER`]: `apc`, `baytech`, `ifmib`, `ipmi`, `redfish`, `script`,
//! `sim`) are compiled in.
//! External plugins are shared objects loaded through a versioned C ABI
//! ([`external`]), named by path ([`Registry::load_file`]) or found in a plugin
//! directory ([`Registry::discover`], default [`DEFAULT_PLUGIN_DIR`]) when asked for
//! by name, and only then (see [`Registry`] for the file names tried). Either kind
//! is a [`PowerPlugin`] with a `'static` schema, so a front end treats them alike.

pub mod external;
pub mod script;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fencekit_core::config::Catalog;
use fencekit_core::schema::{Params, Schema};
use fencekit_core::{sim, DeviceError, PowerSwitch};

pub use external::{ExternalPlugin, LoadError, LoadProblem, ABI_VERSION};

/// Where external plugins are looked for when no directory is given.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/fencekit/plugins";

/// The environment variable naming the plugin directory, for front ends that take
/// no options of their own (the fence-agent and cluster-glue APIs).
pub const PLUGIN_DIR_ENV: &str = "FENCEKIT_PLUGIN_DIR";

/// How a plugin builds a device.
#[derive(Debug, Clone, Copy)]
enum Constructor {
    BuiltIn(fn(&Params) -> Result<Arc<dyn PowerSwitch>, DeviceError>),
    External(&'static ExternalPlugin),
}

/// Where a plugin came from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    BuiltIn,
    External(&'static ExternalPlugin),
}

/// A power plugin: its schema and how to build a device from parameters.
#[derive(Debug)]
pub struct PowerPlugin {
    pub schema: &'static Schema,
    constructor: Constructor,
}

impl PowerPlugin {
    /// Builds a device from parameters validated against [`PowerPlugin::schema`].
    pub fn build(&self, params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
        match self.constructor {
            Constructor::BuiltIn(build) => build(params),
            Constructor::External(plugin) => Ok(listed_names(Arc::new(plugin.open(params)?))),
        }
    }

    /// As [`PowerPlugin::build`], by `deadline`: an external plugin's `open` is its
    /// own code and is abandoned at the deadline (built-in plugins do no I/O here).
    pub fn build_by(
        &self,
        params: &Params,
        deadline: fencekit_core::Instant,
    ) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
        match self.constructor {
            Constructor::BuiltIn(build) => build(params),
            Constructor::External(plugin) => {
                Ok(listed_names(Arc::new(plugin.open_by(params, deadline)?)))
            }
        }
    }

    pub fn source(&self) -> Source {
        match self.constructor {
            Constructor::BuiltIn(_) => Source::BuiltIn,
            Constructor::External(plugin) => Source::External(plugin),
        }
    }
}

fn build_sim(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(sim::SimSwitch::from_params(params)?))
}

fn build_apc(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_apc::ApcSwitch::from_params(params)?))
}

fn build_baytech(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_baytech::BaytechSwitch::from_params(
        params,
    )?))
}

fn build_ifmib(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_ifmib::IfMibSwitch::from_params(params)?))
}

fn build_ipmi(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_ipmi::IpmiSwitch::from_params(params)?))
}

fn build_redfish(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_redfish::RedfishSwitch::from_params(
        params,
    )?))
}

fn build_script(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(listed_names(Arc::new(script::ScriptSwitch::from_params(
        params,
    )?)))
}

/// Scripts and external plugins look plug names up themselves, out of our sight: their
/// names are checked against their own list first, so a name two plugs share is
/// refused rather than switched on one of them.
fn listed_names(device: Arc<dyn PowerSwitch>) -> Arc<dyn PowerSwitch> {
    Arc::new(fencekit_core::names::ListedNames::new(device))
}

/// The built-in power plugins.
pub const POWER: &[PowerPlugin] = &[
    PowerPlugin {
        schema: &fencekit_apc::SCHEMA,
        constructor: Constructor::BuiltIn(build_apc),
    },
    PowerPlugin {
        schema: &fencekit_baytech::SCHEMA,
        constructor: Constructor::BuiltIn(build_baytech),
    },
    PowerPlugin {
        schema: &fencekit_ifmib::SCHEMA,
        constructor: Constructor::BuiltIn(build_ifmib),
    },
    PowerPlugin {
        schema: &fencekit_ipmi::SCHEMA,
        constructor: Constructor::BuiltIn(build_ipmi),
    },
    PowerPlugin {
        schema: &fencekit_redfish::SCHEMA,
        constructor: Constructor::BuiltIn(build_redfish),
    },
    PowerPlugin {
        schema: &script::SCHEMA,
        constructor: Constructor::BuiltIn(build_script),
    },
    PowerPlugin {
        schema: &sim::SCHEMA,
        constructor: Constructor::BuiltIn(build_sim),
    },
];

/// The plugins one run of fencekit knows: the built-in ones and the external ones in
/// its plugin directory, with the files it could not load (for `stonith-bridge
/// plugins`).
///
/// External plugins are loaded lazily: a plugin asked for by name is looked for
/// first in the files named after it ([`file_names`]: `NAME.so`, `libNAME.so`,
/// `libfencekit_NAME.so`, ...), and only when none of those provides it in the
/// other files of the directory. A built-in plugin loads no file at all, so a broken
/// or hanging shared object in the directory cannot delay a fence through another
/// plugin. Listing every plugin ([`Registry::power_plugins`], [`Registry::names`],
/// [`Registry::problems`]) loads every file. Each load is bounded by the registry's
/// deadline ([`Registry::with_deadline`]; default [`external::LOAD_TIMEOUT`] from
/// the first load).
#[derive(Debug, Default, Clone)]
pub struct Registry {
    state: Arc<Mutex<State>>,
    deadline: Option<fencekit_core::Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// The plugin directory, and whether it was named (argument or environment).
    dir: Option<(PathBuf, bool)>,
    external: Vec<&'static PowerPlugin>,
    problems: Vec<LoadError>,
    /// Files already tried, loaded or not.
    tried: BTreeSet<PathBuf>,
    /// Every file of the directory was tried.
    scanned: bool,
}

/// The file names in a plugin directory that are tried first for plugin `name`: the
/// name as is and with `_` for `-`, bare, with `lib`, and with `libfencekit_` (how
/// cargo names the library of a crate `fencekit-NAME`).
pub fn file_names(name: &str) -> Vec<String> {
    let mut names = Vec::new();
    for base in [name.to_string(), name.replace('-', "_")] {
        for file in [
            format!("{base}.so"),
            format!("lib{base}.so"),
            format!("libfencekit_{base}.so"),
            format!("fencekit_{base}.so"),
            format!("fencekit-{base}.so"),
        ] {
            if !names.contains(&file) {
                names.push(file);
            }
        }
    }
    names
}

impl Registry {
    /// The built-in plugins only.
    pub fn builtin() -> Registry {
        Registry::default()
    }

    /// The built-in plugins and those in `plugin_dir`, else in the directory
    /// `$FENCEKIT_PLUGIN_DIR` names, else in [`DEFAULT_PLUGIN_DIR`]. A directory that
    /// does not exist is a problem only when it was named (argument or environment).
    /// Nothing is loaded yet: see [`Registry`].
    pub fn discover(plugin_dir: Option<&Path>) -> Registry {
        let registry = Registry::builtin();
        let from_env = std::env::var_os(PLUGIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (dir, named) = match (plugin_dir, from_env) {
            (Some(dir), _) => (dir.to_path_buf(), true),
            (None, Some(dir)) => (dir, true),
            (None, None) => (PathBuf::from(DEFAULT_PLUGIN_DIR), false),
        };
        registry.lock().dir = Some((dir, named));
        registry
    }

    /// Loads from now on bound by `deadline` (each load ends by it; a load that
    /// does not is abandoned and its file refused).
    pub fn with_deadline(mut self, deadline: fencekit_core::Instant) -> Registry {
        self.deadline = Some(deadline);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deadline(&self) -> fencekit_core::Instant {
        self.deadline
            .unwrap_or_else(|| fencekit_core::Instant::now() + external::LOAD_TIMEOUT)
    }

    /// The `*.so` files of the plugin directory, in name order (hidden files are
    /// not plugins). A directory that cannot be read is recorded as a problem when
    /// it was named or exists.
    fn files(&self, state: &mut State) -> Vec<PathBuf> {
        let Some((dir, named)) = state.dir.clone() else {
            return Vec::new();
        };
        if !named && !dir.exists() {
            return Vec::new();
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                if !state.problems.iter().any(|p| p.path == dir) {
                    state.problems.push(LoadError {
                        path: dir.clone(),
                        problem: LoadProblem::Directory(e.to_string()),
                    });
                }
                return Vec::new();
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "so")
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        files
    }

    /// Tries one file of the directory, once.
    fn try_file(&self, state: &mut State, file: &Path) -> Option<&'static PowerPlugin> {
        if !state.tried.insert(file.to_path_buf()) {
            return None;
        }
        match self.add(state, file) {
            Ok(plugin) => Some(plugin),
            Err(e) => {
                // Once plugin code was abandoned, nothing that may wait for the
                // loader's lock (logging sets up thread-local state): the problem
                // is kept and reported by the caller.
                if !external::abandoned() {
                    tracing::warn!(error = %e, "external plugin not loaded");
                }
                state.problems.push(e);
                None
            }
        }
    }

    /// Loads every file of the plugin directory not tried yet.
    fn scan(&self, state: &mut State) {
        if state.scanned {
            return;
        }
        state.scanned = true;
        for file in self.files(state) {
            self.try_file(state, &file);
        }
    }

    /// Loads every `*.so` in `dir`, in name order. A file that cannot be loaded is
    /// recorded in [`Registry::problems`] and skipped; the others still load.
    pub fn load_dir(&mut self, dir: &Path) {
        let mut state = self.lock();
        let previous = state.dir.replace((dir.to_path_buf(), true));
        state.scanned = false;
        self.scan(&mut state);
        state.dir = previous;
    }

    /// Loads the external plugin in `path` and adds it. Its name must not be taken
    /// by a built-in plugin or one loaded before.
    pub fn load_file(&mut self, path: &Path) -> Result<&'static PowerPlugin, LoadError> {
        let mut state = self.lock();
        self.add(&mut state, path)
    }

    fn add(&self, state: &mut State, path: &Path) -> Result<&'static PowerPlugin, LoadError> {
        let plugin = external::load_by(path, self.deadline())?;
        let name = plugin.schema().plugin;
        let taken = POWER
            .iter()
            .chain(state.external.iter().copied())
            .find(|p| p.schema.plugin == name);
        if let Some(taken) = taken {
            if let Source::External(other) = taken.source() {
                if std::ptr::eq(other, plugin) {
                    return Ok(taken);
                }
            }
            return Err(LoadError {
                path: plugin.path().to_path_buf(),
                problem: LoadProblem::NameTaken {
                    name: name.to_string(),
                    by: match taken.source() {
                        Source::BuiltIn => "a built-in plugin".to_string(),
                        Source::External(other) => other.path().display().to_string(),
                    },
                },
            });
        }
        let entry: &'static PowerPlugin = Box::leak(Box::new(PowerPlugin {
            schema: plugin.schema(),
            constructor: Constructor::External(plugin),
        }));
        state.external.push(entry);
        Ok(entry)
    }

    /// A power plugin by name: a built-in one, else one loaded before, else the
    /// first file named after it that provides it, else any other file that does.
    pub fn power(&self, name: &str) -> Option<&'static PowerPlugin> {
        let found = |state: &State| {
            POWER
                .iter()
                .chain(state.external.iter().copied())
                .find(|p| p.schema.plugin == name)
        };
        let mut state = self.lock();
        if let Some(plugin) = found(&state) {
            return Some(plugin);
        }
        // A name is a plugin's name, never a path: `../other/evil` must not load a
        // file from outside the plugin directory.
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            return None;
        }
        if let Some((dir, _)) = state.dir.clone() {
            for file in file_names(name) {
                let path = dir.join(file);
                if path.is_file() {
                    self.try_file(&mut state, &path);
                    if let Some(plugin) = found(&state) {
                        return Some(plugin);
                    }
                }
            }
        }
        self.scan(&mut state);
        found(&state)
    }

    /// Every power plugin: the built-in ones, then the external ones in load order.
    /// Loads every file of the plugin directory.
    pub fn power_plugins(&self) -> impl Iterator<Item = &'static PowerPlugin> + '_ {
        let mut state = self.lock();
        self.scan(&mut state);
        let all: Vec<&'static PowerPlugin> =
            POWER.iter().chain(state.external.iter().copied()).collect();
        all.into_iter()
    }

    /// Every plugin name, for messages. Loads every file of the plugin directory.
    pub fn names(&self) -> Vec<&'static str> {
        self.power_plugins().map(|p| p.schema.plugin).collect()
    }

    /// Files in the plugin directory that could not be loaded. Loads every file of
    /// the plugin directory.
    pub fn problems(&self) -> Vec<LoadError> {
        let mut state = self.lock();
        self.scan(&mut state);
        state.problems.clone()
    }

    /// Builds a device of plugin `name` from validated parameters.
    pub fn build(&self, name: &str, params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
        let plugin = self.power(name).ok_or_else(|| {
            DeviceError::Failed(format!(
                "unknown plugin {name}; plugins: {}",
                self.names().join(", ")
            ))
        })?;
        plugin.build(params)
    }
}

impl Catalog for Registry {
    fn schema(&self, plugin: &str) -> Option<&'static Schema> {
        self.power(plugin).map(|p| p.schema)
    }

    fn plugins(&self) -> Vec<&'static str> {
        self.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_plugins_are_found_by_name_and_unknown_names_are_not() {
        let registry = Registry::builtin();
        for name in ["apc", "ifmib", "ipmi", "script", "sim"] {
            assert_eq!(registry.power(name).map(|p| p.schema.plugin), Some(name));
            assert!(matches!(
                registry.power(name).unwrap().source(),
                Source::BuiltIn
            ));
        }
        assert!(registry.power("nonesuch").is_none());
        let err = registry
            .build("nonesuch", &Params::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("sim"), "{err}");
    }

    #[test]
    fn a_named_plugin_directory_that_is_missing_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let registry = Registry::discover(Some(&missing));
        assert_eq!(registry.problems().len(), 1);
        assert!(registry.problems()[0].to_string().contains("absent"));
        assert_eq!(registry.names().len(), POWER.len());
    }

    /// A plugin name is never a path: `../other/evil` finds nothing, and the file
    /// it points at outside the plugin directory is not even opened.
    #[test]
    fn a_plugin_name_with_a_path_in_it_opens_nothing_outside_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("plugins");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(root.path().join("other")).unwrap();
        std::fs::write(root.path().join("other/evil.so"), b"not a library").unwrap();
        let registry = Registry::discover(Some(&dir));
        for name in ["../other/evil", "/tmp/evil", "a/b", "..", ""] {
            assert!(registry.power(name).is_none(), "{name}");
        }
        assert!(
            registry.problems().is_empty(),
            "a file outside the directory was opened: {:?}",
            registry
                .problems()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_fifo_or_directory_named_so_is_reported_and_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("libfifo.so"))
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::create_dir(dir.path().join("libdir.so")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let registry = Registry::discover(Some(&path));
            let _ = registry.names();
            let _ = tx.send(
                registry
                    .problems()
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            );
        });
        let problems = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the scan blocked on a FIFO");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().all(|p| p.contains("not a regular file")),
            "{problems:?}"
        );
    }

    #[test]
    fn files_that_are_not_plugins_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libjunk.so"), b"not an ELF file").unwrap();
        std::fs::write(dir.path().join("README"), b"ignored").unwrap();
        let registry = Registry::discover(Some(dir.path()));
        assert_eq!(registry.problems().len(), 1, "{:?}", registry.problems());
        assert!(registry.problems()[0].to_string().contains("libjunk.so"));
    }
}
