//! The plugin registry: every plugin fencekit knows, by name, with its parameter
//! schema and a constructor. Front ends and configuration validation ask the
//! registry, never a plugin crate directly.

use std::sync::Arc;

use fencekit_core::config::Catalog;
use fencekit_core::schema::{Params, Schema};
use fencekit_core::{sim, DeviceError, PowerSwitch};

/// A built-in power plugin: its schema and how to build a device from parameters.
pub struct PowerPlugin {
    pub schema: &'static Schema,
    pub build: fn(&Params) -> Result<Arc<dyn PowerSwitch>, DeviceError>,
}

fn build_sim(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(sim::SimSwitch::from_params(params)?))
}

fn build_apc(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_apc::ApcSnmpSwitch::from_params(params)?))
}

fn build_ipmi(params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
    Ok(Arc::new(fencekit_ipmi::IpmiSwitch::from_params(params)?))
}

/// The built-in power plugins.
pub const POWER: &[PowerPlugin] = &[
    PowerPlugin {
        schema: &fencekit_apc::SCHEMA,
        build: build_apc,
    },
    PowerPlugin {
        schema: &fencekit_ipmi::SCHEMA,
        build: build_ipmi,
    },
    PowerPlugin {
        schema: &sim::SCHEMA,
        build: build_sim,
    },
];

/// The registry of plugins.
#[derive(Debug, Default, Clone, Copy)]
pub struct Registry;

impl Registry {
    pub fn builtin() -> Registry {
        Registry
    }

    pub fn power(&self, name: &str) -> Option<&'static PowerPlugin> {
        POWER.iter().find(|p| p.schema.plugin == name)
    }

    /// Builds a device of plugin `name` from validated parameters.
    pub fn build(&self, name: &str, params: &Params) -> Result<Arc<dyn PowerSwitch>, DeviceError> {
        let plugin = self
            .power(name)
            .ok_or_else(|| DeviceError::Failed(format!("unknown plugin {name}")))?;
        (plugin.build)(params)
    }
}

impl Catalog for Registry {
    fn schema(&self, plugin: &str) -> Option<&'static Schema> {
        self.power(plugin).map(|p| p.schema)
    }

    fn plugins(&self) -> Vec<&'static str> {
        POWER.iter().map(|p| p.schema.plugin).collect()
    }
}
