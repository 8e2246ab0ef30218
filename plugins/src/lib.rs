//! The plugin registry: every plugin fencekit knows, by name, with its parameter
//! schema and a constructor. Front ends and configuration validation ask the
//! registry, never a plugin crate directly.
//!
//! Built-in plugins ([`POWER`]: `apc`, `baytech`, `ipmi`, `script`, `sim`) are compiled in.
//! External plugins are shared objects loaded through a versioned C ABI
//! ([`external`]), named by path ([`Registry::load_file`]) or found in a plugin
//! directory ([`Registry::discover`], default [`DEFAULT_PLUGIN_DIR`]). Either kind
//! is a [`PowerPlugin`] with a `'static` schema, so a front end treats them alike.

pub mod external;
pub mod script;

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            Constructor::External(plugin) => Ok(Arc::new(plugin.open(params)?)),
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

fn build_ipmi(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_ipmi::IpmiSwitch::from_params(params)?))
}

fn build_script(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(script::ScriptSwitch::from_params(params)?))
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
        schema: &fencekit_ipmi::SCHEMA,
        constructor: Constructor::BuiltIn(build_ipmi),
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

/// The plugins one run of fencekit knows: the built-in ones and the external ones it
/// loaded, with the files it could not load (for `stonith-bridge plugins`).
#[derive(Debug, Default, Clone)]
pub struct Registry {
    external: Vec<&'static PowerPlugin>,
    problems: Vec<LoadError>,
}

impl Registry {
    /// The built-in plugins only.
    pub fn builtin() -> Registry {
        Registry::default()
    }

    /// The built-in plugins and those in `plugin_dir`, else in the directory
    /// `$FENCEKIT_PLUGIN_DIR` names, else in [`DEFAULT_PLUGIN_DIR`]. A directory that
    /// does not exist is a problem only when it was named (argument or environment).
    pub fn discover(plugin_dir: Option<&Path>) -> Registry {
        let mut registry = Registry::builtin();
        let from_env = std::env::var_os(PLUGIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (dir, named) = match (plugin_dir, from_env) {
            (Some(dir), _) => (dir.to_path_buf(), true),
            (None, Some(dir)) => (dir, true),
            (None, None) => (PathBuf::from(DEFAULT_PLUGIN_DIR), false),
        };
        if named || dir.exists() {
            registry.load_dir(&dir);
        }
        registry
    }

    /// Loads every `*.so` in `dir`, in name order. A file that cannot be loaded is
    /// recorded in [`Registry::problems`] and skipped; the others still load.
    pub fn load_dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problems.push(LoadError {
                    path: dir.to_path_buf(),
                    problem: LoadProblem::Directory(e.to_string()),
                });
                return;
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
        for file in files {
            if let Err(e) = self.load_file(&file) {
                tracing::warn!(error = %e, "external plugin not loaded");
                self.problems.push(e);
            }
        }
    }

    /// Loads the external plugin in `path` and adds it. Its name must not be taken
    /// by a built-in plugin or one loaded before.
    pub fn load_file(&mut self, path: &Path) -> Result<&'static PowerPlugin, LoadError> {
        let plugin = external::load(path)?;
        let name = plugin.schema().plugin;
        if let Some(taken) = self.power(name) {
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
        self.external.push(entry);
        Ok(entry)
    }

    /// A power plugin by name.
    pub fn power(&self, name: &str) -> Option<&'static PowerPlugin> {
        self.power_plugins().find(|p| p.schema.plugin == name)
    }

    /// Every power plugin: the built-in ones, then the external ones in load order.
    pub fn power_plugins(&self) -> impl Iterator<Item = &'static PowerPlugin> + '_ {
        POWER.iter().chain(self.external.iter().copied())
    }

    /// Every plugin name, for messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.power_plugins().map(|p| p.schema.plugin).collect()
    }

    /// Files in the plugin directory that could not be loaded.
    pub fn problems(&self) -> &[LoadError] {
        &self.problems
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
        for name in ["apc", "ipmi", "script", "sim"] {
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
