//! The `redfish` plugin: a server's BMC (iDRAC, iLO, XCC, OpenBMC) switched over the
//! DMTF Redfish REST API on HTTPS, as fence-agents' `fence_redfish` does, with its
//! parameter names and meanings.
//!
//! [`system`] reads the Redfish resources (pure functions over JSON); [`http`] is the
//! one HTTPS connection (rustls, certificates verified by default, every request
//! bounded by the caller's deadline, every status code checked); [`RedfishSwitch`]
//! is the `PowerSwitch`: off, on and the device's own cycle are `ComputerSystem.Reset`
//! types the system advertises, and status is its `PowerState`, where only `Off`
//! reads as off. Whether a node is fenced is decided by the fence algorithm in core.

pub mod http;
mod schema;
mod switch;
pub mod system;

pub use schema::SCHEMA;
pub use switch::RedfishSwitch;
