//! What every front end shares: the parameters a front end collected, validated
//! against the plugin's schema, the fence algorithm's schema and the front end's own;
//! the device built from them; and the plugs a node name maps to.

use std::future::Future;
use std::sync::Arc;

use fencekit_core::fence::{self, Devices};
use fencekit_core::schema::{self, Params, RawParam, Schema, Unknown, Validated};
use fencekit_core::{
    DeviceCommand, DeviceError, FenceOptions, FenceTarget, Instant, Plug, PlugInfo, PowerSwitch,
    TargetPlug,
};
use fencekit_plugins::{PowerPlugin, Registry};

/// A front end's validated request for one plugin's device.
pub struct Request {
    pub plugin: &'static PowerPlugin,
    pub params: Params,
    pub warnings: Vec<String>,
}

impl Request {
    /// Validates `raw` against the plugin, the fence algorithm and `frontend`.
    pub fn validate(
        plugin: &'static PowerPlugin,
        frontend: &'static Schema,
        raw: &[RawParam],
    ) -> Result<Request, String> {
        let Validated { params, warnings } = schema::validate(
            &[plugin.schema, &fence::SCHEMA, frontend],
            raw,
            Unknown::Warn,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(Request {
            plugin,
            params,
            warnings,
        })
    }

    pub fn options(&self) -> FenceOptions {
        FenceOptions::from_params(&self.params)
    }

    pub fn device(&self) -> Result<Arc<dyn PowerSwitch>, String> {
        self.plugin.build(&self.params).map_err(|e| e.to_string())
    }

    /// The device's name in messages: its address, or the plugin's name.
    pub fn device_name(&self) -> String {
        self.params
            .text("ip")
            .map(str::to_string)
            .unwrap_or_else(|| self.plugin.schema.plugin.to_string())
    }

    /// Lists the device's plugs, by the operation's deadline.
    pub async fn list(&self) -> Result<Vec<PlugInfo>, String> {
        self.bounded("list", |device, deadline| async move {
            device.list(deadline).await
        })
        .await
    }

    /// Checks the device answers, by the operation's deadline.
    pub async fn check(&self) -> Result<(), String> {
        self.bounded("device check", |device, deadline| async move {
            device.check(deadline).await
        })
        .await
    }

    /// Sends one of the device's own commands to `plug`, by the operation's deadline.
    pub async fn command(&self, plug: &Plug, command: DeviceCommand) -> Result<(), String> {
        let plug = plug.clone();
        self.bounded(command.as_str(), |device, deadline| async move {
            device.command(&plug, command, deadline).await
        })
        .await
    }

    /// Builds the device and runs one call on it, abandoned at the operation's
    /// deadline; errors say what failed (and "timed out" when time ran out, the word
    /// Pacemaker looks for).
    async fn bounded<T, F, Fut>(&self, what: &str, call: F) -> Result<T, String>
    where
        F: FnOnce(Arc<dyn PowerSwitch>, Instant) -> Fut,
        Fut: Future<Output = Result<T, DeviceError>>,
    {
        let timeout = self.options().timeout;
        let deadline = Instant::now() + timeout;
        let device = self.device()?;
        match tokio::time::timeout_at(deadline, call(device, deadline)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!(
                "{what} timed out after {:.1} s",
                timeout.as_secs_f64()
            )),
        }
    }

    pub fn devices(&self) -> Result<Devices, String> {
        let mut devices = Devices::new();
        devices.insert(self.device_name(), self.device()?);
        Ok(devices)
    }

    /// A fence target of `plugs` on the one device; a single-plug device (a BMC)
    /// is always its chassis.
    pub fn target(&self, node: &str, plugs: &[Plug]) -> FenceTarget {
        let device = self.device_name();
        let plugs = if self.plugin.schema.multi_plug {
            plugs
                .iter()
                .map(|plug| TargetPlug {
                    device: device.clone(),
                    plug: plug.clone(),
                })
                .collect()
        } else {
            vec![TargetPlug {
                device: device.clone(),
                plug: Plug::Chassis,
            }]
        };
        FenceTarget {
            node: node.to_string(),
            plugs,
        }
    }
}

/// Finds a plugin by name, or says which exist.
pub fn plugin(registry: &Registry, name: &str) -> Result<&'static PowerPlugin, String> {
    // `fence_fencekit_example_relay` names the plugin `example-relay`: command names
    // cannot hold a `-` comfortably, plugin names do.
    let dashed = name.replace('_', "-");
    registry
        .power(name)
        .or_else(|| registry.power(&dashed))
        .ok_or_else(|| {
            format!(
                "unknown plugin `{name}`; plugins: {}",
                registry.names().join(", ")
            )
        })
}

/// Splits a plug list (`1,2` or `1 2`) into plugs.
pub fn split_plugs(text: &str, separator: &str) -> Vec<Plug> {
    let separator = if separator.is_empty() { "," } else { separator };
    text.split(separator)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Plug::parse)
        .collect()
}

/// Parses Pacemaker's `pcmk_host_map` syntax, `node1:1;node2:2,3`, and gives the
/// plugs of `host` (compared without regard to case).
pub fn host_map_plugs(map: &str, host: &str) -> Option<Vec<Plug>> {
    map.split([';', ' ', '\n'])
        .filter_map(|entry| entry.split_once([':', '=']))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(host.trim()))
        .map(|(_, plugs)| split_plugs(plugs, ","))
}

/// The hosts named in a `pcmk_host_map`-style map.
pub fn host_map_hosts(map: &str) -> Vec<String> {
    map.split([';', ' ', '\n'])
        .filter_map(|entry| entry.split_once([':', '=']))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_maps_are_read_as_pacemaker_writes_them() {
        let map = "node1:1;node2:2,3";
        assert_eq!(
            host_map_plugs(map, "NODE2"),
            Some(vec![Plug::Number(2), Plug::Number(3)])
        );
        assert_eq!(host_map_plugs(map, "node3"), None);
        assert_eq!(host_map_hosts(map), vec!["node1", "node2"]);
    }

    #[test]
    fn plug_lists_split_on_the_separator() {
        assert_eq!(
            split_plugs("1, 2,,db", ","),
            vec![Plug::Number(1), Plug::Number(2), Plug::Name("db".into())]
        );
        assert_eq!(
            split_plugs("1+2", "+"),
            vec![Plug::Number(1), Plug::Number(2)]
        );
    }
}
