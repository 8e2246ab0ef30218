//! Redfish resources as fencing reads them: the service root's link to its systems,
//! a collection's members, and a `ComputerSystem`'s power state and reset action.
//! Pure functions over parsed JSON; the I/O is in [`crate::http`].

use fencekit_core::PowerState;
use serde_json::Value;

/// What a resource lacked, or held in a shape fencing cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {problem}")]
pub struct ShapeError {
    pub resource: String,
    pub problem: String,
}

fn shape(resource: &str, problem: impl Into<String>) -> ShapeError {
    ShapeError {
        resource: resource.to_string(),
        problem: problem.into(),
    }
}

/// The `@odata.id` of the object under `key` (`"Systems": {"@odata.id": …}`).
fn link<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.get("@odata.id")?.as_str()
}

/// The service root's link to its systems collection (`Systems`).
pub fn systems_collection(root: &Value, resource: &str) -> Result<String, ShapeError> {
    link(root, "Systems")
        .map(str::to_string)
        .ok_or_else(|| shape(resource, "the service root links no Systems collection"))
}

/// The members' resource paths of a collection, in the service's order.
pub fn members(collection: &Value, resource: &str) -> Result<Vec<String>, ShapeError> {
    let list = collection
        .get("Members")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(resource, "the collection has no Members list"))?;
    list.iter()
        .map(|member| {
            member
                .get("@odata.id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| shape(resource, "a member has no @odata.id"))
        })
        .collect()
}

/// The next page of a collection (`Members@odata.nextLink`), if it has one.
pub fn next_page(collection: &Value) -> Option<&str> {
    collection.get("Members@odata.nextLink")?.as_str()
}

/// How many members a collection says it has (`Members@odata.count`), if it says.
pub fn declared_count(collection: &Value) -> Option<u64> {
    collection.get("Members@odata.count")?.as_u64()
}

/// The `ComputerSystem.Reset` reset types fencing uses, in the Redfish schema's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    /// Off at once, without asking the operating system.
    ForceOff,
    On,
    /// On, for services that advertise it instead of `On`.
    ForceOn,
    /// Off then on, by the BMC.
    PowerCycle,
    /// A restart without asking the operating system: on many BMCs a warm reset
    /// that never reads off, so a cycle by it is confirmed only if it does.
    ForceRestart,
    /// A diagnostic interrupt (crash dump).
    Nmi,
    /// Ask the operating system to shut down; never used to fence.
    GracefulShutdown,
}

impl ResetType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::ForceOff => "ForceOff",
            ResetType::On => "On",
            ResetType::ForceOn => "ForceOn",
            ResetType::PowerCycle => "PowerCycle",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::Nmi => "Nmi",
            ResetType::GracefulShutdown => "GracefulShutdown",
        }
    }
}

/// A `ComputerSystem` as read for fencing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// The resource path it was read from.
    pub uri: String,
    pub id: String,
    pub name: Option<String>,
    /// `PowerState` as the service wrote it.
    pub power: Option<String>,
    /// Where to POST `ComputerSystem.Reset`.
    pub reset_target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`, when the service lists them.
    pub allowed: Option<Vec<String>>,
}

impl System {
    /// Reads a `ComputerSystem` resource fetched from `uri`.
    pub fn parse(uri: &str, value: &Value) -> Result<System, ShapeError> {
        if !value.is_object() {
            return Err(shape(uri, "not a JSON object"));
        }
        let id = value
            .get("Id")
            .and_then(Value::as_str)
            .map(str::to_string)
            // The Id is the last segment of the resource's path (Redfish 1.6 §6.1).
            .or_else(|| {
                uri.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .ok_or_else(|| shape(uri, "the system has no Id"))?;
        let reset = value
            .get("Actions")
            .and_then(|a| a.get("#ComputerSystem.Reset"));
        let reset_target = reset
            .and_then(|r| r.get("target"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let allowed = reset
            .and_then(|r| r.get("ResetType@Redfish.AllowableValues"))
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        Ok(System {
            uri: uri.to_string(),
            id,
            name: value
                .get("Name")
                .and_then(Value::as_str)
                .map(str::to_string),
            power: value
                .get("PowerState")
                .and_then(Value::as_str)
                .map(str::to_string),
            reset_target,
            allowed,
        })
    }

    /// The power state fencing reads: only `Off` is off. `PoweringOff` is not off
    /// yet, and `PoweringOn` and `Paused` still run the node.
    pub fn power_state(&self) -> Result<PowerState, ShapeError> {
        match self.power.as_deref().map(str::trim) {
            Some("Off") => Ok(PowerState::Off),
            Some("On") => Ok(PowerState::On),
            Some(_) => Ok(PowerState::Unknown),
            None => Err(shape(&self.uri, "the system reports no PowerState")),
        }
    }

    /// Whether the service takes `reset`: listed, or no list given (the schema's
    /// default then is every type; the POST's answer says the rest).
    pub fn allows(&self, reset: ResetType) -> bool {
        match &self.allowed {
            None => true,
            Some(list) => list.iter().any(|v| v == reset.as_str()),
        }
    }

    /// The first of `choices` the system allows, or why none.
    pub fn choose(&self, choices: &[ResetType]) -> Result<ResetType, ShapeError> {
        choices
            .iter()
            .copied()
            .find(|c| self.allows(*c))
            .ok_or_else(|| {
                shape(
                    &self.uri,
                    format!(
                        "the system offers none of the reset types {} (it offers: {})",
                        choices
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        self.allowed.as_deref().unwrap_or_default().join(", ")
                    ),
                )
            })
    }

    /// Where to POST the reset, or why there is nowhere.
    pub fn reset_target(&self) -> Result<&str, ShapeError> {
        self.reset_target
            .as_deref()
            .ok_or_else(|| shape(&self.uri, "the system has no #ComputerSystem.Reset action"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dell() -> Value {
        json!({
            "@odata.id": "/redfish/v1/Systems/System.Embedded.1",
            "Id": "System.Embedded.1",
            "Name": "System",
            "PowerState": "On",
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues":
                    ["On", "ForceOff", "ForceRestart", "GracefulShutdown", "PushPowerButton", "Nmi", "PowerCycle"]
            }}
        })
    }

    #[test]
    fn only_off_reads_as_off() {
        let mut value = dell();
        for (text, state) in [
            ("On", PowerState::On),
            ("Off", PowerState::Off),
            ("PoweringOff", PowerState::Unknown),
            ("PoweringOn", PowerState::Unknown),
            ("Paused", PowerState::Unknown),
            ("off", PowerState::Unknown),
        ] {
            value["PowerState"] = json!(text);
            let system = System::parse("/s", &value).unwrap();
            assert_eq!(system.power_state().unwrap(), state, "{text}");
        }
        value.as_object_mut().unwrap().remove("PowerState");
        assert!(System::parse("/s", &value).unwrap().power_state().is_err());
        value["PowerState"] = json!(0);
        assert!(System::parse("/s", &value).unwrap().power_state().is_err());
    }

    #[test]
    fn reset_types_are_chosen_among_those_the_system_lists() {
        let mut value = dell();
        let system = System::parse("/s", &value).unwrap();
        assert_eq!(
            system.choose(&[ResetType::PowerCycle, ResetType::ForceRestart]),
            Ok(ResetType::PowerCycle)
        );
        value["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"] =
            json!(["ForceOn", "ForceOff"]);
        let system = System::parse("/s", &value).unwrap();
        assert_eq!(
            system.choose(&[ResetType::On, ResetType::ForceOn]),
            Ok(ResetType::ForceOn)
        );
        let refused = system
            .choose(&[ResetType::PowerCycle, ResetType::ForceRestart])
            .unwrap_err();
        assert!(
            refused.problem.contains("offers: ForceOn, ForceOff"),
            "{refused}"
        );
    }

    #[test]
    fn the_id_comes_from_the_path_when_the_resource_has_none() {
        let system = System::parse("/redfish/v1/Systems/1/", &json!({"PowerState": "On"})).unwrap();
        assert_eq!(system.id, "1");
        assert!(system.reset_target().is_err());
        assert!(System::parse("/s", &json!([1, 2])).is_err());
    }

    #[test]
    fn a_page_says_its_next_page_and_its_count() {
        let page = json!({"Members@odata.count": 2, "Members": [{"@odata.id": "/a"}],
                          "Members@odata.nextLink": "/c?$skip=1"});
        assert_eq!(next_page(&page), Some("/c?$skip=1"));
        assert_eq!(declared_count(&page), Some(2));
        assert_eq!(next_page(&json!({"Members": []})), None);
        assert_eq!(declared_count(&json!({"Members@odata.count": "2"})), None);
    }

    #[test]
    fn links_and_members_are_read_or_refused() {
        let root = json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}});
        assert_eq!(
            systems_collection(&root, "/").unwrap(),
            "/redfish/v1/Systems"
        );
        assert!(systems_collection(&json!({"Systems": "x"}), "/").is_err());
        let collection = json!({"Members": [{"@odata.id": "/a"}, {"@odata.id": "/b"}]});
        assert_eq!(members(&collection, "/c").unwrap(), vec!["/a", "/b"]);
        assert!(members(&json!({"Members": [{"x": 1}]}), "/c").is_err());
        assert!(members(&json!({}), "/c").is_err());
    }
}
