//! fencekit's vocabulary and its one fence algorithm.
//!
//! `core` says what a plug, a power state and a fence target are; what a power
//! device must be able to do ([`PowerSwitch`]: read a plug, switch it, list plugs,
//! check the device answers, each by a deadline) and what a storage check answers
//! ([`StorageHealth`]); how every plugin declares its parameters once ([`schema`]);
//! how secrets are held ([`Secret`]); how sites describe devices and nodes in TOML
//! ([`config`]). Above all it holds [`fence`], the only place that decides what
//! "fenced" means: every plug switched off and *confirmed* off by reading it back
//! before the deadline, and no plug switched back on before all are confirmed off.
//! Plugins do device I/O only. [`sim`] is an in-memory device for tests and the demo.

pub mod child;
pub mod config;
pub mod device_params;
pub mod environ;
pub mod error;
pub mod fence;
pub mod files;
mod join;
pub mod lookup;
pub mod names;
pub mod notify;
#[cfg(test)]
mod parser_props;
pub mod power;
pub mod schema;
pub mod screen;
pub mod secret;
pub mod sim;
pub mod storage;
pub mod switch;

pub use error::{DeviceError, FenceError};
pub use fence::{fence, FenceAction, FenceOptions, Method, Outcome};
pub use power::{
    resolve_addressed, resolve_outlet, FenceTarget, Plug, PlugError, PlugInfo, PowerState,
    TargetPlug,
};
pub use schema::{ParamSpec, ParamType, Params, Schema};
pub use secret::Secret;
pub use storage::{PathReport, StorageHealth, Verdict};
pub use switch::{DeviceCommand, PowerSwitch, SwitchTo};

/// The clock every deadline is measured on: tokio's, so that tests can pause it.
pub type Instant = tokio::time::Instant;
