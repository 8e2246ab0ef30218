//! Plug names checked against a device's own list, for devices whose name lookup
//! fencekit cannot see (a script, an external plugin).
//!
//! Built-in plugins find outlets with [`crate::resolve_outlet`], which refuses a name
//! two outlets share. A script or a `.so` plugin is handed the name and looks it up
//! itself: a simple one takes the first match, and with two outlets named `db1` (the
//! two power supplies of one node) it switches one, reads that one back off, and the
//! node is reported fenced while the other supply still feeds it. [`ListedNames`]
//! wraps such a device and, before a named plug is used, reads the device's list:
//! a name that is not there exactly once is refused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::DeviceError;
use crate::power::{named_alike, Plug, PlugInfo, PowerState};
use crate::switch::{DeviceCommand, PowerSwitch, SwitchTo};
use crate::Instant;

/// A device whose plug names are checked against its own `list` before use.
pub struct ListedNames {
    inner: Arc<dyn PowerSwitch>,
    /// Names already found exactly once in this process: a fence polls `status`
    /// many times, and the list is read once per name.
    checked: Mutex<BTreeSet<String>>,
}

impl ListedNames {
    pub fn new(inner: Arc<dyn PowerSwitch>) -> ListedNames {
        ListedNames {
            inner,
            checked: Mutex::new(BTreeSet::new()),
        }
    }

    /// Refuses a named plug the device does not list exactly once, or beside a
    /// plug named alike. Numbers and the chassis name their plug by themselves and
    /// pass unread.
    async fn check_name(&self, plug: &Plug, deadline: Instant) -> Result<(), DeviceError> {
        let named = match plug {
            Plug::Name(_) => true,
            Plug::OnUnit { outlet, .. } => matches!(**outlet, Plug::Name(_)),
            // A number names its plug itself: no list is read for it (a `list`
            // that hangs would spend the fence's time on every numbered plug).
            Plug::Number(_) | Plug::Chassis => false,
        };
        if !named {
            return Ok(());
        }
        let text = plug.to_string();
        if self.lock().contains(&text) {
            return Ok(());
        }
        let listed = match self.inner.list(deadline).await {
            Ok(listed) => listed,
            // A device that cannot list cannot have its names checked; it was asked
            // for names it must know itself.
            Err(DeviceError::Unsupported(_)) => {
                tracing::warn!(
                    plug = %text,
                    "the device cannot list its plugs, so the name is used unchecked"
                );
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        matching(&text, &listed)?;
        self.lock().insert(text);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The one listed plug that `text` names (by its plug text or its name), or why not.
/// Beside a match, a plug named alike (case, blanks, characters a screen does not
/// show, a number's padding) is the node's other supply as likely: ambiguous.
fn matching<'a>(text: &str, listed: &'a [PlugInfo]) -> Result<&'a PlugInfo, DeviceError> {
    let mut found: Vec<&PlugInfo> = Vec::new();
    for info in listed {
        let hit = info.plug.to_string() == text || info.name.as_deref() == Some(text);
        if hit && !found.iter().any(|f| f.plug == info.plug) {
            found.push(info);
        }
    }
    if !found.is_empty() {
        for info in listed {
            let alike = info
                .name
                .as_deref()
                .is_some_and(|name| named_alike(name, text));
            if alike && !found.iter().any(|f| f.plug == info.plug) {
                found.push(info);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(DeviceError::UnknownPlug {
            plug: text.to_string(),
            known: listed
                .iter()
                .map(|info| match &info.name {
                    Some(name) => format!("{} ({name})", info.plug),
                    None => info.plug.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
        many => Err(DeviceError::AmbiguousPlug {
            plug: text.to_string(),
            outlets: many
                .iter()
                .map(|info| info.plug.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[async_trait]
impl PowerSwitch for ListedNames {
    async fn status(&self, plug: &Plug, deadline: Instant) -> Result<PowerState, DeviceError> {
        self.check_name(plug, deadline).await?;
        self.inner.status(plug, deadline).await
    }

    async fn switch(
        &self,
        plug: &Plug,
        to: SwitchTo,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.check_name(plug, deadline).await?;
        self.inner.switch(plug, to, deadline).await
    }

    async fn command(
        &self,
        plug: &Plug,
        command: DeviceCommand,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        self.check_name(plug, deadline).await?;
        self.inner.command(plug, command, deadline).await
    }

    fn supports(&self, command: DeviceCommand) -> bool {
        self.inner.supports(command)
    }

    fn fabric(&self) -> bool {
        self.inner.fabric()
    }

    fn least_off(&self) -> std::time::Duration {
        self.inner.least_off()
    }

    fn names_complete(&self) -> bool {
        self.inner.names_complete()
    }

    fn address(&self, listed: &Plug) -> Plug {
        self.inner.address(listed)
    }

    async fn close(&self, deadline: Instant) {
        self.inner.close(deadline).await
    }

    async fn list(&self, deadline: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
        self.inner.list(deadline).await
    }

    async fn check(&self, deadline: Instant) -> Result<(), DeviceError> {
        self.inner.check(deadline).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A device that takes the first plug with a name, as a simple script does.
    struct FirstMatch {
        listed: Vec<(u32, &'static str)>,
        switched: Mutex<Vec<u32>>,
        lists: AtomicUsize,
        can_list: bool,
    }

    impl FirstMatch {
        fn new(listed: Vec<(u32, &'static str)>) -> FirstMatch {
            FirstMatch {
                listed,
                switched: Mutex::new(Vec::new()),
                lists: AtomicUsize::new(0),
                can_list: true,
            }
        }

        fn find(&self, plug: &Plug) -> Option<u32> {
            let text = plug.to_string();
            self.listed
                .iter()
                .find(|(n, name)| n.to_string() == text || *name == text)
                .map(|(n, _)| *n)
        }
    }

    #[async_trait]
    impl PowerSwitch for FirstMatch {
        async fn status(&self, plug: &Plug, _: Instant) -> Result<PowerState, DeviceError> {
            self.find(plug)
                .map(|_| PowerState::Off)
                .ok_or(DeviceError::UnknownPlug {
                    plug: plug.to_string(),
                    known: String::new(),
                })
        }

        async fn switch(&self, plug: &Plug, _: SwitchTo, _: Instant) -> Result<(), DeviceError> {
            let n = self
                .find(plug)
                .ok_or(DeviceError::Failed("no such plug".into()))?;
            self.switched.lock().unwrap().push(n);
            Ok(())
        }

        async fn list(&self, _: Instant) -> Result<Vec<PlugInfo>, DeviceError> {
            if !self.can_list {
                return Err(DeviceError::Unsupported("no list".into()));
            }
            self.lists.fetch_add(1, Ordering::SeqCst);
            Ok(self
                .listed
                .iter()
                .map(|(n, name)| PlugInfo {
                    plug: Plug::Number(*n),
                    name: Some(name.to_string()),
                    alias: None,
                    state: PowerState::Unknown,
                })
                .collect())
        }

        async fn check(&self, _: Instant) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn a_name_two_plugs_share_is_refused_and_neither_is_switched() {
        let device = Arc::new(FirstMatch::new(vec![(1, "db1"), (2, "web"), (3, "db1")]));
        let checked = ListedNames::new(device.clone());
        let err = checked
            .switch(&Plug::parse("db1"), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
        assert!(err.to_string().contains("1, 3"), "{err}");
        assert!(device.switched.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_name_listed_once_is_used_and_the_list_is_read_once() {
        let device = Arc::new(FirstMatch::new(vec![(1, "db1"), (2, "web")]));
        let checked = ListedNames::new(device.clone());
        let web = Plug::parse("web");
        checked.switch(&web, SwitchTo::Off, soon()).await.unwrap();
        for _ in 0..3 {
            assert_eq!(checked.status(&web, soon()).await.unwrap(), PowerState::Off);
        }
        assert_eq!(*device.switched.lock().unwrap(), vec![2]);
        assert_eq!(device.lists.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_name_the_device_does_not_list_is_unknown_and_a_number_names_its_plug() {
        let device = Arc::new(FirstMatch::new(vec![(1, "db1")]));
        let checked = ListedNames::new(device.clone());
        let err = checked
            .switch(&Plug::parse("db2"), SwitchTo::Off, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, DeviceError::UnknownPlug { .. }), "{err}");
        checked
            .switch(&Plug::parse("1"), SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(*device.switched.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn a_name_beside_one_alike_or_in_another_padding_is_refused() {
        let device = Arc::new(FirstMatch::new(vec![
            (1, "DB1"),
            (2, "db1"),
            (3, "web"),
            (4, "3"),
            (6, "05"),
        ]));
        let checked = ListedNames::new(device.clone());
        for plug in ["db1", "DB1"] {
            let err = checked
                .switch(&Plug::parse(plug), SwitchTo::Off, soon())
                .await
                .unwrap_err();
            assert!(
                matches!(err, DeviceError::AmbiguousPlug { .. }),
                "{plug}: {err}"
            );
        }
        // Padded digits name no plug exactly: refused too.
        for plug in ["03", "003"] {
            assert!(checked
                .switch(&Plug::parse(plug), SwitchTo::Off, soon())
                .await
                .is_err());
        }
        assert!(device.switched.lock().unwrap().is_empty());
        checked
            .switch(&Plug::parse("web"), SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(*device.switched.lock().unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn a_device_that_cannot_list_gets_the_name_unchecked() {
        let mut device = FirstMatch::new(vec![(1, "db1")]);
        device.can_list = false;
        let device = Arc::new(device);
        let checked = ListedNames::new(device.clone());
        checked
            .switch(&Plug::parse("db1"), SwitchTo::Off, soon())
            .await
            .unwrap();
        assert_eq!(*device.switched.lock().unwrap(), vec![1]);
    }
}
