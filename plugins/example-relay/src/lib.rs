//! An example fencekit external plugin: a relay board whose relays' states live in a
//! text file (`state_file`, one `N on|off` line per relay), so that it can be driven
//! and inspected without hardware. `relays` says how many relays the board has; the
//! relays listed in `lie` accept every command and never change (a broken board, for
//! testing that fencekit confirms power off by reading it back).
//!
//! It is written against `fencekit-plugin-api` only, as a third-party plugin would be;
//! built as a `cdylib` it is `libfencekit_example_relay.so`, which fencekit loads from
//! its plugin directory.

use std::collections::BTreeMap;
use std::io::ErrorKind as IoErrorKind;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use fencekit_plugin_api::{
    export_plugin, Declaration, Device, ErrorKind, Outlet, ParamDecl, ParamKind, Params,
    PluginError, PowerState, SwitchTo,
};

const PARAMS: &[ParamDecl] = &[
    ParamDecl::new(
        "state_file",
        "the file holding the relays' states (created with every relay on)",
    )
    .required(),
    ParamDecl::new("relays", "how many relays the board has")
        .kind(ParamKind::Integer)
        .default("8"),
    ParamDecl::new(
        "lie",
        "comma-separated relays that accept every command and never switch (for tests)",
    ),
];

static DECLARATION: Declaration = Declaration {
    name: "example-relay",
    summary: "relay board kept in a state file (example external plugin)",
    description: "A relay board whose relays' states live in a text file. It drives no \
                  hardware: it shows how to write a fencekit external plugin.",
    url: "",
    multi_plug: true,
    supports_cycle: true,
    params: PARAMS,
};

/// The relay board.
#[derive(Debug)]
pub struct RelayBoard {
    state_file: PathBuf,
    relays: u32,
    lying: Vec<u32>,
    // Calls may come from several threads; each read-modify-write of the file holds it.
    file: Mutex<()>,
}

impl RelayBoard {
    fn relay(&self, plug: &str) -> Result<u32, PluginError> {
        let number = plug
            .trim()
            .trim_start_matches("relay-")
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=self.relays).contains(n));
        number.ok_or_else(|| {
            PluginError::new(
                ErrorKind::UnknownPlug,
                format!("no relay {plug}; the board has relays 1 to {}", self.relays),
            )
        })
    }

    fn load(&self) -> Result<BTreeMap<u32, PowerState>, PluginError> {
        let mut states: BTreeMap<u32, PowerState> =
            (1..=self.relays).map(|n| (n, PowerState::On)).collect();
        let text = match std::fs::read_to_string(&self.state_file) {
            Ok(text) => text,
            Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(states),
            Err(e) => {
                return Err(PluginError::failed(format!(
                    "cannot read {}: {e}",
                    self.state_file.display()
                )))
            }
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some(n), Some(state)) = (words.next(), words.next()) {
                if let Some(slot) = n.parse().ok().and_then(|n: u32| states.get_mut(&n)) {
                    *slot = match state {
                        "on" => PowerState::On,
                        "off" => PowerState::Off,
                        _ => PowerState::Unknown,
                    };
                }
            }
        }
        Ok(states)
    }

    fn save(&self, states: &BTreeMap<u32, PowerState>) -> Result<(), PluginError> {
        let text: String = states
            .iter()
            .map(|(n, s)| {
                let word = match s {
                    PowerState::On => "on",
                    PowerState::Off => "off",
                    PowerState::Unknown => "unknown",
                };
                format!("{n} {word}\n")
            })
            .collect();
        // Write then rename, so that another process never reads half a file.
        let tmp = self.state_file.with_extension("new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.state_file))
            .map_err(|e| {
                PluginError::failed(format!("cannot write {}: {e}", self.state_file.display()))
            })
    }

    fn switch(&self, relay: u32, to: PowerState) -> Result<(), PluginError> {
        if self.lying.contains(&relay) {
            return Ok(());
        }
        let _held = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut states = self.load()?;
        states.insert(relay, to);
        self.save(&states)
    }
}

impl Device for RelayBoard {
    fn declaration() -> &'static Declaration {
        &DECLARATION
    }

    fn open(params: &Params) -> Result<Self, PluginError> {
        let state_file = params
            .text("state_file")
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| PluginError::new(ErrorKind::BadParams, "`state_file` is required"))?;
        let relays = params.integer("relays")?.unwrap_or(8);
        let relays = u32::try_from(relays)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                PluginError::new(
                    ErrorKind::BadParams,
                    format!("`relays` must be 1 to 64, not {relays}"),
                )
            })?;
        let lying = params
            .text("lie")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u32>().map_err(|_| {
                    PluginError::new(ErrorKind::BadParams, format!("`lie`: not a relay: {s}"))
                })
            })
            .collect::<Result<Vec<u32>, PluginError>>()?;
        Ok(RelayBoard {
            state_file: PathBuf::from(state_file),
            relays,
            lying,
            file: Mutex::new(()),
        })
    }

    fn status(&self, plug: &str, _deadline: Instant) -> Result<PowerState, PluginError> {
        let relay = self.relay(plug)?;
        let _held = self.file.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self
            .load()?
            .get(&relay)
            .copied()
            .unwrap_or(PowerState::Unknown))
    }

    fn set(&self, plug: &str, to: SwitchTo, _deadline: Instant) -> Result<(), PluginError> {
        let relay = self.relay(plug)?;
        self.switch(
            relay,
            match to {
                SwitchTo::On => PowerState::On,
                SwitchTo::Off => PowerState::Off,
            },
        )
    }

    fn cycle(&self, plug: &str, _deadline: Instant) -> Result<(), PluginError> {
        // A relay board's cycle is off and straight back on; what fencekit can
        // confirm of it is only that the relay is on again.
        let relay = self.relay(plug)?;
        self.switch(relay, PowerState::Off)?;
        self.switch(relay, PowerState::On)
    }

    fn list(&self, _deadline: Instant) -> Result<Vec<Outlet>, PluginError> {
        let _held = self.file.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self
            .load()?
            .into_iter()
            .map(|(n, state)| Outlet {
                plug: n.to_string(),
                name: format!("relay-{n}"),
                state,
            })
            .collect())
    }

    fn check(&self, _deadline: Instant) -> Result<(), PluginError> {
        let _held = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let states = self.load()?;
        // Creates the file on first contact, as a board answers its first login.
        if !self.state_file.exists() {
            self.save(&states)?;
        }
        Ok(())
    }
}

export_plugin!(RelayBoard);

#[cfg(test)]
mod tests {
    use super::*;

    fn board(dir: &std::path::Path, lie: &str) -> RelayBoard {
        let mut params = Params::default();
        params.insert("state_file", dir.join("relays").display().to_string());
        params.insert("relays", "4");
        params.insert("lie", lie);
        RelayBoard::open(&params).unwrap()
    }

    #[test]
    fn a_relay_switched_off_reads_off_and_the_file_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let board = board(dir.path(), "");
        let now = Instant::now();
        assert_eq!(board.status("2", now).unwrap(), PowerState::On);
        board.set("2", SwitchTo::Off, now).unwrap();
        assert_eq!(board.status("relay-2", now).unwrap(), PowerState::Off);
        let text = std::fs::read_to_string(dir.path().join("relays")).unwrap();
        assert!(text.contains("2 off"), "{text}");
    }

    #[test]
    fn a_lying_relay_accepts_off_and_stays_on() {
        let dir = tempfile::tempdir().unwrap();
        let board = board(dir.path(), "3");
        let now = Instant::now();
        board.set("3", SwitchTo::Off, now).unwrap();
        assert_eq!(board.status("3", now).unwrap(), PowerState::On);
    }

    #[test]
    fn a_relay_the_board_lacks_is_an_unknown_plug() {
        let dir = tempfile::tempdir().unwrap();
        let err = board(dir.path(), "")
            .status("9", Instant::now())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownPlug);
    }
}
