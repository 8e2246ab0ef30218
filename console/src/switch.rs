//! [`ConsoleSwitch`]: a device driven over a console (an APC PDU's menus or command
//! line, a Baytech strip) as a [`PowerSwitch`]. What a console prints may echo what
//! was typed at it, a password included, and errors quote what it printed: every
//! error of every operation leaves through [`ConsoleTarget::redact_error`], here,
//! once for all console devices.

use std::time::Duration;

use async_trait::async_trait;
use fencekit_core::{
    DeviceCommand, DeviceError, Instant, Params, Plug, PlugInfo, PowerState, PowerSwitch, SwitchTo,
};

use crate::target::ConsoleTarget;

/// A console device's operations, as its dialogue runs them. Their errors may carry
/// the device's text unmasked: they reach callers only through [`ConsoleSwitch`].
#[async_trait]
pub trait ConsoleDevice: Send + Sync {
    /// Builds the device from its plugin's validated parameters.
    fn from_params(params: &Params) -> Result<Self, DeviceError>
    where
        Self: Sized;

    /// The console the device is reached over, with the secrets typed at it.
    fn target(&self) -> &ConsoleTarget;

    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError>;

    async fn switch(&self, plug: &Plug, to: SwitchTo, deadline: Instant)
        -> Result<(), DeviceError>;

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError>;

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError>;

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError>;

    /// As [`PowerSwitch::names_complete`].
    fn names_complete(&self) -> bool {
        true
    }

    /// As [`PowerSwitch::address`].
    fn address(&self, listed: &Plug) -> Plug {
        listed.clone()
    }
}

/// A console device as a [`PowerSwitch`], its errors masked by its target.
#[derive(Debug, Clone)]
pub struct ConsoleSwitch<D>(D);

impl<D: ConsoleDevice> ConsoleSwitch<D> {
    pub fn new(device: D) -> ConsoleSwitch<D> {
        ConsoleSwitch(device)
    }

    pub fn from_params(params: &Params) -> Result<ConsoleSwitch<D>, DeviceError> {
        D::from_params(params).map(ConsoleSwitch)
    }

    pub fn device(&self) -> &D {
        &self.0
    }

    fn guard<T>(&self, result: Result<T, DeviceError>) -> Result<T, DeviceError> {
        result.map_err(|e| self.0.target().redact_error(e))
    }
}

#[async_trait]
impl<D: ConsoleDevice> PowerSwitch for ConsoleSwitch<D> {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        self.guard(self.0.status(plug, deadline).await)
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.guard(self.0.switch(plug, to, deadline).await)
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.guard(self.0.command(plug, command, deadline).await)
    }

    /// None: an outlet's own reboot on a console (APC's Immediate Reboot, a Baytech
    /// strip's `Reboot`) is over before a status read could show the outlet off, so
    /// a fence through it could not be confirmed; a fence drives the outlet off,
    /// reads it off, and switches it on.
    fn supports(&self, _command: DeviceCommand) -> bool {
        false
    }

    fn least_off(&self) -> Duration {
        fencekit_core::switch::OUTLET_LEAST_OFF
    }

    fn names_complete(&self) -> bool {
        self.0.names_complete()
    }

    fn address(&self, listed: &Plug) -> Plug {
        self.0.address(listed)
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        self.guard(self.0.list(deadline).await)
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        self.guard(self.0.check(deadline).await)
    }
}
