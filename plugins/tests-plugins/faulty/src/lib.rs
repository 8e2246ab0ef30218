//! A test-only external plugin, written with the helper crate, that misbehaves as its
//! `fault` parameter says: `panic` panics in every device call, `hang` sleeps far past
//! any deadline in every device call, `helper` runs a helper program in a process
//! group of its own and waits for it in every device call (as a library that talks
//! to its device through a program does), `none` behaves (one plug, always on). It
//! shows that a panic is caught at the boundary, that a hung call is abandoned, and
//! that fencekit leaves a plugin's own children alone.
//!
//! With `state_dir`, it plays the fencekit-tests toy device kept in that directory
//! instead (`plugs`, `fault`, `log`: see the `toy` module of fencekit-tests): plugs
//! that obey, lie, are slow, stay pending, refuse, hang or drop the connection, whose
//! true state and command log a test reads from the files.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fencekit_plugin_api::{
    export_plugin, Declaration, Device, ErrorKind, Outlet, ParamDecl, ParamKind, Params,
    PluginError, PowerState, SwitchTo,
};

const PARAMS: &[ParamDecl] = &[
    ParamDecl::new("fault", "how to misbehave")
        .kind(ParamKind::Select(&["none", "panic", "hang", "helper"]))
        .default("none"),
    ParamDecl::new(
        "state_dir",
        "a toy device's directory (plugs, fault, log) to play instead",
    ),
];

static DECLARATION: Declaration = Declaration {
    name: "test-faulty",
    summary: "a plugin that panics or hangs (tests only)",
    description: "Misbehaves on purpose.",
    url: "",
    multi_plug: true,
    supports_cycle: false,
    params: PARAMS,
};

pub struct Faulty {
    fault: String,
    toy: Option<Toy>,
}

impl Faulty {
    fn misbehave(&self) -> Result<(), PluginError> {
        match self.fault.as_str() {
            "panic" => panic!("the faulty test plugin panics on purpose"),
            // Far past any test's deadline, yet it ends: the abandoned thread finishes.
            "hang" => std::thread::sleep(Duration::from_secs(600)),
            "helper" => {
                use std::os::unix::process::CommandExt;
                let status = std::process::Command::new("sleep")
                    .arg("0.3")
                    .process_group(0)
                    .status()
                    .map_err(|e| failed(ErrorKind::Failed, &format!("helper: {e}")))?;
                if !status.success() {
                    return Err(failed(
                        ErrorKind::Failed,
                        &format!("the plugin's helper ended badly: {status}"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One plug line of the toy device: `N STATE PENDING NAME`.
struct ToyPlug {
    number: String,
    on: bool,
    pending: Option<(bool, u64)>,
    name: String,
}

/// The toy device in a directory.
struct Toy {
    dir: PathBuf,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn failed(kind: ErrorKind, message: &str) -> PluginError {
    PluginError::new(kind, message)
}

fn dropped() -> PluginError {
    failed(ErrorKind::Protocol, "connection reset by peer")
}

impl Toy {
    fn fault(&self) -> String {
        std::fs::read_to_string(self.dir.join("fault"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The plugs, pending changes whose time came applied; the file is rewritten
    /// so that the test sees the same.
    fn load(&self) -> Result<Vec<ToyPlug>, PluginError> {
        let text = std::fs::read_to_string(self.dir.join("plugs"))
            .map_err(|e| failed(ErrorKind::Failed, &format!("cannot read the device: {e}")))?;
        let now = unix_ms();
        let mut plugs = Vec::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 3 {
                continue;
            }
            let mut plug = ToyPlug {
                number: words[0].to_string(),
                on: words[1] == "on",
                pending: words[2]
                    .split_once('@')
                    .and_then(|(s, at)| Some((s == "on", at.parse().ok()?))),
                name: words[3..].join(" "),
            };
            if let Some((on, at)) = plug.pending {
                if now >= at {
                    plug.on = on;
                    plug.pending = None;
                }
            }
            plugs.push(plug);
        }
        Ok(plugs)
    }

    fn save(&self, plugs: &[ToyPlug]) -> Result<(), PluginError> {
        let text: String = plugs
            .iter()
            .map(|p| {
                let pending = p.pending.map_or("-".to_string(), |(on, at)| {
                    format!("{}@{at}", if on { "on" } else { "off" })
                });
                format!(
                    "{} {} {pending} {}\n",
                    p.number,
                    if p.on { "on" } else { "off" },
                    p.name
                )
            })
            .collect();
        let tmp = self.dir.join(format!("plugs.{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("plugs")))
            .map_err(|e| failed(ErrorKind::Failed, &format!("cannot write the device: {e}")))
    }

    /// What every call meets first: a refusing or hanging device.
    fn answer(&self, deadline: Instant) -> Result<String, PluginError> {
        let fault = self.fault();
        match fault.as_str() {
            "hang" => {
                // Never answers: sleeps past the deadline, then still gives nothing.
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                std::thread::sleep(Duration::from_secs(600));
                Err(failed(ErrorKind::TimedOut, "no answer"))
            }
            "error" => Err(failed(ErrorKind::Refused, "device refused: error 42")),
            _ => Ok(fault),
        }
    }

    /// The first plug whose number or name matches, as a simple device does.
    fn find(plugs: &[ToyPlug], plug: &str) -> Result<usize, PluginError> {
        plugs
            .iter()
            .position(|p| p.number == plug || p.name == plug)
            .ok_or_else(|| failed(ErrorKind::UnknownPlug, "no such outlet"))
    }

    fn status(&self, plug: &str, deadline: Instant) -> Result<PowerState, PluginError> {
        let fault = self.answer(deadline)?;
        let plugs = self.load()?;
        let i = Self::find(&plugs, plug)?;
        self.save(&plugs)?;
        match fault.as_str() {
            f if f.starts_with("pending") => Ok(PowerState::Unknown),
            "drop" => Err(dropped()),
            _ => Ok(if plugs[i].on {
                PowerState::On
            } else {
                PowerState::Off
            }),
        }
    }

    fn set(&self, plug: &str, to: SwitchTo, deadline: Instant) -> Result<(), PluginError> {
        let fault = self.answer(deadline)?;
        let mut plugs = self.load()?;
        let i = Self::find(&plugs, plug)?;
        let on = matches!(to, SwitchTo::On);
        let now = unix_ms();
        let delay = fault
            .split_once(':')
            .and_then(|(_, ms)| ms.parse::<u64>().ok());
        let effective = match fault.as_str() {
            "obey" | "drop" => Some(now),
            "lie" => None,
            _ => delay.map(|ms| now + ms),
        };
        match (fault.as_str(), delay) {
            ("obey" | "drop", _) => {
                plugs[i].on = on;
                plugs[i].pending = None;
            }
            (_, Some(ms)) => plugs[i].pending = Some((on, now + ms)),
            _ => {}
        }
        let line = format!(
            "{now} {} {} {}\n",
            plugs[i].number,
            if on { "on" } else { "off" },
            effective.map_or("-".to_string(), |ms| ms.to_string())
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .map_err(|e| failed(ErrorKind::Failed, &format!("cannot log: {e}")))?;
        self.save(&plugs)?;
        if fault == "drop" {
            return Err(dropped());
        }
        Ok(())
    }

    fn list(&self, deadline: Instant) -> Result<Vec<Outlet>, PluginError> {
        self.answer(deadline)?;
        Ok(self
            .load()?
            .into_iter()
            .map(|p| Outlet {
                plug: p.number,
                name: p.name,
                state: PowerState::Unknown,
            })
            .collect())
    }

    fn check(&self, deadline: Instant) -> Result<(), PluginError> {
        if self.answer(deadline)? == "drop" {
            return Err(dropped());
        }
        Ok(())
    }
}

impl Device for Faulty {
    fn declaration() -> &'static Declaration {
        &DECLARATION
    }

    fn open(params: &Params) -> Result<Self, PluginError> {
        let fault = params.text("fault").unwrap_or("none").to_string();
        if !matches!(fault.as_str(), "none" | "panic" | "hang" | "helper") {
            return Err(PluginError::new(ErrorKind::BadParams, "unknown fault"));
        }
        let toy = params.text("state_dir").map(|dir| Toy {
            dir: PathBuf::from(dir),
        });
        Ok(Faulty { fault, toy })
    }

    fn status(&self, plug: &str, deadline: Instant) -> Result<PowerState, PluginError> {
        self.misbehave()?;
        match &self.toy {
            Some(toy) => toy.status(plug, deadline),
            None => Ok(PowerState::On),
        }
    }

    fn set(&self, plug: &str, to: SwitchTo, deadline: Instant) -> Result<(), PluginError> {
        self.misbehave()?;
        match &self.toy {
            Some(toy) => toy.set(plug, to, deadline),
            None => Ok(()),
        }
    }

    fn list(&self, deadline: Instant) -> Result<Vec<Outlet>, PluginError> {
        self.misbehave()?;
        match &self.toy {
            Some(toy) => toy.list(deadline),
            None => Ok(vec![Outlet {
                plug: "1".into(),
                name: String::new(),
                state: PowerState::On,
            }]),
        }
    }

    fn check(&self, deadline: Instant) -> Result<(), PluginError> {
        self.misbehave()?;
        match &self.toy {
            Some(toy) => toy.check(deadline),
            None => Ok(()),
        }
    }
}

export_plugin!(Faulty);
