//! Power states, plugs and fence targets: the nouns every plugin and front end shares.

use std::fmt;

/// What a plug's power reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    On,
    Off,
    /// The device answered but the state is neither on nor off (pending, delayed,
    /// an outlet being rebooted, a value the plugin does not know).
    Unknown,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One switchable power feed of a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plug {
    /// The whole machine behind a BMC: there is nothing to choose.
    Chassis,
    /// An outlet by number (APC, Baytech), 1-based as the devices count.
    Number(u32),
    /// An outlet by the name the device gives it; matched exactly, never as a
    /// substring.
    Name(String),
    /// An outlet on one unit of a daisy chain (MasterSwitch Plus, Baytech strips
    /// behind a management module): `unit:outlet`.
    OnUnit { unit: u32, outlet: Box<Plug> },
}

impl Plug {
    /// Parses what a user writes for a plug: empty or `chassis` for a BMC, a number,
    /// `unit:outlet`, or a name.
    pub fn parse(text: &str) -> Plug {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("chassis") {
            return Plug::Chassis;
        }
        if let Ok(n) = text.parse::<u32>() {
            return Plug::Number(n);
        }
        if let Some((unit, outlet)) = text.split_once(':') {
            if let Ok(unit) = unit.trim().parse::<u32>() {
                if !outlet.trim().is_empty() {
                    return Plug::OnUnit {
                        unit,
                        outlet: Box::new(Plug::parse(outlet)),
                    };
                }
            }
        }
        Plug::Name(text.to_string())
    }
}

impl fmt::Display for Plug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plug::Chassis => f.write_str("chassis"),
            Plug::Number(n) => write!(f, "{n}"),
            Plug::Name(name) => f.write_str(name),
            Plug::OnUnit { unit, outlet } => write!(f, "{unit}:{outlet}"),
        }
    }
}

/// A plug as a device lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlugInfo {
    pub plug: Plug,
    /// The device's own name for the plug, when it has one.
    pub name: Option<String>,
    pub state: PowerState,
}

/// One plug of a fence target, on a named device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetPlug {
    /// The device's name in the configuration (`pdu-a`, `bmc1`).
    pub device: String,
    pub plug: Plug,
}

impl fmt::Display for TargetPlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plug {
            Plug::Chassis => write!(f, "{}", self.device),
            _ => write!(f, "plug {} on {}", self.plug, self.device),
        }
    }
}

/// A node to fence: every plug that feeds it, on one or more devices (dual power
/// supplies on two PDUs are two plugs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceTarget {
    pub node: String,
    pub plugs: Vec<TargetPlug>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugs_parse_as_users_write_them() {
        assert_eq!(Plug::parse(""), Plug::Chassis);
        assert_eq!(Plug::parse("Chassis"), Plug::Chassis);
        assert_eq!(Plug::parse(" 3 "), Plug::Number(3));
        assert_eq!(
            Plug::parse("2:5"),
            Plug::OnUnit {
                unit: 2,
                outlet: Box::new(Plug::Number(5))
            }
        );
        assert_eq!(Plug::parse("db-1"), Plug::Name("db-1".into()));
        assert_eq!(Plug::parse("x:5"), Plug::Name("x:5".into()));
        assert_eq!(Plug::parse("2:5").to_string(), "2:5");
    }
}
