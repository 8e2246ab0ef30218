//! A test-only external plugin, written with the helper crate, that misbehaves as its
//! `fault` parameter says: `panic` panics in every device call, `hang` sleeps far past
//! any deadline in every device call, `none` behaves (one plug, always on). It shows
//! that a panic is caught at the boundary and that a hung call is abandoned.

use std::time::{Duration, Instant};

use fencekit_plugin_api::{
    export_plugin, Declaration, Device, ErrorKind, Outlet, ParamDecl, ParamKind, Params,
    PluginError, PowerState, SwitchTo,
};

const PARAMS: &[ParamDecl] = &[ParamDecl::new("fault", "how to misbehave")
    .kind(ParamKind::Select(&["none", "panic", "hang"]))
    .default("none")];

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
}

impl Faulty {
    fn misbehave(&self) {
        match self.fault.as_str() {
            "panic" => panic!("the faulty test plugin panics on purpose"),
            // Far past any test's deadline, yet it ends: the abandoned thread finishes.
            "hang" => std::thread::sleep(Duration::from_secs(600)),
            _ => {}
        }
    }
}

impl Device for Faulty {
    fn declaration() -> &'static Declaration {
        &DECLARATION
    }

    fn open(params: &Params) -> Result<Self, PluginError> {
        let fault = params.text("fault").unwrap_or("none").to_string();
        if !matches!(fault.as_str(), "none" | "panic" | "hang") {
            return Err(PluginError::new(ErrorKind::BadParams, "unknown fault"));
        }
        Ok(Faulty { fault })
    }

    fn status(&self, _plug: &str, _deadline: Instant) -> Result<PowerState, PluginError> {
        self.misbehave();
        Ok(PowerState::On)
    }

    fn set(&self, _plug: &str, _to: SwitchTo, _deadline: Instant) -> Result<(), PluginError> {
        self.misbehave();
        Ok(())
    }

    fn list(&self, _deadline: Instant) -> Result<Vec<Outlet>, PluginError> {
        self.misbehave();
        Ok(vec![Outlet {
            plug: "1".into(),
            name: String::new(),
            state: PowerState::On,
        }])
    }

    fn check(&self, _deadline: Instant) -> Result<(), PluginError> {
        self.misbehave();
        Ok(())
    }
}

export_plugin!(Faulty);
