//! The `PowerSwitch` trait: what a power device plugin must do, and nothing more.
//!
//! A plugin does device I/O only. It never decides whether a node is fenced; that is
//! [`crate::fence`]'s job, which reads every plug back after switching it.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::DeviceError;
use crate::power::{Plug, PlugInfo, PowerState};
use crate::Instant;

/// How long a reboot keeps a power strip's outlets off at the least
/// ([`PowerSwitch::least_off`]): far beyond the tens of milliseconds a server's
/// power supplies hold up, short beside the seconds a fence takes. `reboot_wait`
/// lengthens it.
pub const OUTLET_LEAST_OFF: Duration = Duration::from_secs(1);

/// The least time an IPMI reboot keeps a machine off: fence_ipmilan's default
/// `power_wait` after its off command.
pub const BMC_LEAST_OFF: Duration = Duration::from_secs(2);

/// The two states a plug can be told to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchTo {
    On,
    Off,
}

impl SwitchTo {
    pub fn state(self) -> PowerState {
        match self {
            SwitchTo::On => PowerState::On,
            SwitchTo::Off => PowerState::Off,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SwitchTo::On => "on",
            SwitchTo::Off => "off",
        }
    }
}

/// Commands a device may offer beyond on and off. None of them can be confirmed by
/// reading the state once, so the fence algorithm uses them only where the user asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceCommand {
    /// The device's own off-then-on (IPMI power cycle, an APC outlet's reboot).
    Cycle,
    /// Hard reset without a power change (IPMI).
    Reset,
    /// Pulse a diagnostic interrupt (NMI), for a crash dump.
    Diag,
    /// Ask the operating system to shut down (ACPI); never used for fencing.
    SoftOff,
}

impl DeviceCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceCommand::Cycle => "cycle",
            DeviceCommand::Reset => "reset",
            DeviceCommand::Diag => "diag",
            DeviceCommand::SoftOff => "soft-off",
        }
    }
}

/// A power device: a BMC, a PDU, a relay board.
///
/// Every call takes a deadline and must return by it; the fence algorithm also
/// enforces the deadline from outside, so a call that overstays is abandoned and
/// reported as a timeout.
#[async_trait]
pub trait PowerSwitch: Send + Sync {
    /// Reads a plug's power state.
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError>;

    /// Tells a plug to switch. Success means the device accepted the command, not
    /// that the plug changed: the caller confirms with [`PowerSwitch::status`].
    async fn switch(&self, plug: &Plug, to: SwitchTo, deadline: Instant)
        -> Result<(), DeviceError>;

    /// Sends one of the device's own commands. Devices without it say so.
    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let _ = (plug, deadline);
        Err(DeviceError::Unsupported(format!(
            "this device has no {} command",
            command.as_str()
        )))
    }

    /// Which of [`DeviceCommand`] this device offers.
    fn supports(&self, command: DeviceCommand) -> bool {
        let _ = command;
        false
    }

    /// Whether the plugs are a node's links to a fabric (its ports on a network or
    /// storage switch) rather than its power. Cutting a link does not reset the node:
    /// a reboot through such a device would let a node that may still run back onto
    /// the fabric at once, so [`crate::fence`] refuses it (fence-agents' agents for
    /// fabric fencing offer no reboot either). Off fences; on lets the node back.
    fn fabric(&self) -> bool {
        false
    }

    /// The least time a reboot keeps this device's plugs off before it switches them
    /// on again. An outlet's relay reads off the moment it opens, while the machine
    /// it feeds rides through a short gap on its power supplies' capacitors: an
    /// outlet switched back on milliseconds later may never have stopped the node.
    /// Power strips answer [`OUTLET_LEAST_OFF`]. A BMC reads the machine's own power
    /// state; IPMI BMCs still keep [`BMC_LEAST_OFF`], the pause fence_ipmilan makes
    /// after its off (`power_wait`, 2 s by default), since some report off as they
    /// begin a power-down; Redfish services keep none, as fence_redfish keeps none.
    fn least_off(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether every plug carrying a name shows in the last [`PowerSwitch::list`]:
    /// false for a device that could not tell whether its listing left rows out (an
    /// APC unit that does not answer its outlet count). Callers that look names up
    /// in a list themselves (cluster-glue's outlets named after a host) refuse then.
    fn names_complete(&self) -> bool {
        true
    }

    /// The plug that names, on this device, exactly the plug it listed as `listed`,
    /// whatever the plugs are named: what a caller chose from the list is handed
    /// back in this form, so that an outlet's number another outlet is also named
    /// after is not read again as ambiguous, nor as a number on another strip or
    /// unit. The listed plug itself by default.
    fn address(&self, listed: &Plug) -> Plug {
        listed.clone()
    }

    /// Lists the device's plugs with their names and states.
    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError>;

    /// Checks that the device answers with the configured credentials (and, where the
    /// protocol allows, that they may switch plugs).
    async fn check(&self, deadline: Instant) -> Result<(), DeviceError>;

    /// Ends, by `deadline`, what the device kept open for the later calls of one
    /// operation (an IPMI session kept from a command for the status reads that
    /// confirm it). The fence algorithm calls it once, at the end of every
    /// operation; a device that keeps nothing open does nothing.
    async fn close(&self, deadline: Instant) {
        let _ = deadline;
    }
}
