//! Write a fencekit external power plugin in safe Rust.
//!
//! fencekit loads external plugins from shared objects through a small, versioned C
//! ABI ([`abi`], and `include/fencekit_plugin.h` for C authors). This crate lets a Rust
//! author skip the C: declare the plugin ([`Declaration`], [`ParamDecl`]), implement
//! [`Device`] (open from parameters, read a plug, switch it, list plugs, check the
//! device answers, each by a deadline), and call [`export_plugin!`] once. The macro
//! generates the C symbols; each of them catches a panic before it can cross the
//! `extern "C"` boundary (where it would abort fencekit) and reports it as an error.
//!
//! A plugin does device I/O only. fencekit alone decides whether a node is fenced: it
//! switches a plug off, then reads it back until it reads off, so `set` returning Ok
//! only means the device took the command.
//!
//! ```text
//! use fencekit_plugin_api::{export_plugin, Declaration, Device, ParamDecl, Params, PluginError, PowerState, SwitchTo, Outlet};
//! struct Relay;
//! impl Device for Relay { /* ... */ }
//! export_plugin!(Relay);
//! ```

pub mod abi;
#[doc(hidden)]
pub mod export;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// A parameter's type, as fencekit's schema knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    /// Given to the plugin as `true` or `false`.
    Boolean,
    /// Seconds, fractions allowed.
    Seconds,
    /// One of a fixed set of words.
    Select(&'static [&'static str]),
}

/// One parameter of the plugin. fencekit validates values against it before `open`.
#[derive(Debug, Clone, Copy)]
pub struct ParamDecl {
    /// Lower case, digits and `_`.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: ParamKind,
    pub default: Option<&'static str>,
    pub required: bool,
    /// A password or key: never logged by fencekit; handle it the same way.
    pub secret: bool,
    pub description: &'static str,
}

impl ParamDecl {
    /// An optional string parameter; refine it with the builders below.
    pub const fn new(name: &'static str, description: &'static str) -> ParamDecl {
        ParamDecl {
            name,
            aliases: &[],
            kind: ParamKind::String,
            default: None,
            required: false,
            secret: false,
            description,
        }
    }

    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    pub const fn kind(mut self, kind: ParamKind) -> Self {
        self.kind = kind;
        self
    }

    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// What the plugin says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The name configurations use (`plugin = "relay"`): lower case, digits, `-`, `_`.
    pub name: &'static str,
    /// One line: what the plugin drives.
    pub summary: &'static str,
    /// A paragraph for metadata and `--help`.
    pub description: &'static str,
    /// Where to read about the device.
    pub url: &'static str,
    /// Whether the device has several plugs.
    pub multi_plug: bool,
    /// Whether [`Device::cycle`] works.
    pub supports_cycle: bool,
    pub params: &'static [ParamDecl],
}

/// A plug's power state as the device reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    /// The device answered but the state is neither on nor off.
    Unknown,
}

/// What [`Device::set`] switches a plug to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchTo {
    On,
    Off,
}

/// One plug as [`Device::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    /// How a user names the plug to fence it (`3`, `2:5`, a name).
    pub plug: String,
    /// The device's own name for it; may be empty.
    pub name: String,
    pub state: PowerState,
}

/// The kinds of failure fencekit tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Failed,
    TimedOut,
    Auth,
    Refused,
    UnknownPlug,
    Unsupported,
    Busy,
    Protocol,
    BadParams,
}

impl ErrorKind {
    fn status(self) -> i32 {
        match self {
            ErrorKind::Failed => abi::STATUS_FAILED,
            ErrorKind::TimedOut => abi::STATUS_TIMED_OUT,
            ErrorKind::Auth => abi::STATUS_AUTH,
            ErrorKind::Refused => abi::STATUS_REFUSED,
            ErrorKind::UnknownPlug => abi::STATUS_UNKNOWN_PLUG,
            ErrorKind::Unsupported => abi::STATUS_UNSUPPORTED,
            ErrorKind::Busy => abi::STATUS_BUSY,
            ErrorKind::Protocol => abi::STATUS_PROTOCOL,
            ErrorKind::BadParams => abi::STATUS_BAD_PARAMS,
        }
    }
}

/// A failure with a message for the operator. Never put a secret in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PluginError {
        PluginError {
            kind,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Failed, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

/// The validated parameters fencekit passes to [`Device::open`], by canonical name.
/// Defaults are filled in. `Debug` prints the names only: values may be secrets.
#[derive(Clone, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Params {
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// The value as given, if the parameter was set (or has a default).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, PluginError> {
        self.parse(name, "an integer", |t| t.parse().ok())
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, PluginError> {
        self.parse(name, "true or false", |t| match t {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    pub fn seconds(&self, name: &str) -> Result<Option<Duration>, PluginError> {
        self.parse(name, "a number of seconds", |t| {
            t.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
        })
    }

    fn parse<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, PluginError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(text) => parse(text.trim()).map(Some).ok_or_else(|| {
                PluginError::new(
                    ErrorKind::BadParams,
                    format!("parameter `{name}`: expected {expected}"),
                )
            }),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A power device an external plugin drives.
///
/// fencekit may call one device from several threads at once, and may give up on a
/// call at its deadline while the call is still running (the thread is left to
/// finish), so every method should itself end by `deadline`. `open` should not do
/// device I/O: it builds the device from parameters; `check` is where the device is
/// first reached.
pub trait Device: Send + Sync + Sized + 'static {
    /// The plugin's declaration; the same value on every call.
    fn declaration() -> &'static Declaration;

    /// Builds the device from validated parameters.
    fn open(params: &Params) -> Result<Self, PluginError>;

    /// Reads a plug's power state.
    fn status(&self, plug: &str, deadline: Instant) -> Result<PowerState, PluginError>;

    /// Tells a plug to switch. Ok means the device accepted the command; fencekit
    /// confirms the state with [`Device::status`].
    fn set(&self, plug: &str, to: SwitchTo, deadline: Instant) -> Result<(), PluginError>;

    /// Lists the device's plugs.
    fn list(&self, deadline: Instant) -> Result<Vec<Outlet>, PluginError>;

    /// Checks that the device answers with the configured credentials.
    fn check(&self, deadline: Instant) -> Result<(), PluginError>;

    /// The device's own off-then-on; only called when the declaration's
    /// `supports_cycle` is set.
    fn cycle(&self, plug: &str, deadline: Instant) -> Result<(), PluginError> {
        let _ = (plug, deadline);
        Err(PluginError::new(
            ErrorKind::Unsupported,
            "this device has no cycle command",
        ))
    }
}

/// Generates the C symbols of the ABI for a type implementing [`Device`]. Use it once,
/// in a crate built as `crate-type = ["cdylib"]`, and build it with `panic = "unwind"`
/// (the default): with `panic = "abort"` a panic cannot be caught and ends fencekit.
#[macro_export]
macro_rules! export_plugin {
    ($device:ty) => {
        const _: () = {
            static INFO: ::std::sync::OnceLock<::std::option::Option<$crate::export::InfoTable>> =
                ::std::sync::OnceLock::new();

            #[no_mangle]
            pub extern "C" fn fencekit_plugin_abi_version() -> u32 {
                $crate::abi::ABI_VERSION
            }

            #[no_mangle]
            pub extern "C" fn fencekit_plugin_info() -> *const $crate::abi::PluginInfo {
                $crate::export::info::<$device>(&INFO)
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_open(
                params: *const $crate::abi::Param,
                count: usize,
                device: *mut *mut ::std::ffi::c_void,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::open`).
                unsafe { $crate::export::open::<$device>(params, count, device, error) }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_close(device: *mut ::std::ffi::c_void) {
                // SAFETY: `device` came from `fencekit_plugin_open` and is closed once.
                unsafe { $crate::export::close::<$device>(device) }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_status(
                device: *mut ::std::ffi::c_void,
                plug: $crate::abi::Str,
                deadline_ms: u64,
                state: *mut u32,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::status`).
                unsafe {
                    $crate::export::status::<$device>(device, plug, deadline_ms, state, error)
                }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_set(
                device: *mut ::std::ffi::c_void,
                plug: $crate::abi::Str,
                to: u32,
                deadline_ms: u64,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::set`).
                unsafe { $crate::export::set::<$device>(device, plug, to, deadline_ms, error) }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_cycle(
                device: *mut ::std::ffi::c_void,
                plug: $crate::abi::Str,
                deadline_ms: u64,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::cycle`).
                unsafe { $crate::export::cycle::<$device>(device, plug, deadline_ms, error) }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_list(
                device: *mut ::std::ffi::c_void,
                deadline_ms: u64,
                ctx: *mut ::std::ffi::c_void,
                emit: $crate::abi::EmitPlugFn,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::list`).
                unsafe { $crate::export::list::<$device>(device, deadline_ms, ctx, emit, error) }
            }

            #[no_mangle]
            pub unsafe extern "C" fn fencekit_plugin_check(
                device: *mut ::std::ffi::c_void,
                deadline_ms: u64,
                error: *mut $crate::abi::Buf,
            ) -> i32 {
                // SAFETY: fencekit calls this as the ABI documents (see `export::check`).
                unsafe { $crate::export::check::<$device>(device, deadline_ms, error) }
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_typed_values_and_name_the_bad_one() {
        let mut params = Params::default();
        params.insert("relays", "4");
        params.insert("fast", "true");
        params.insert("wait", "1.5");
        params.insert("bad", "many");
        assert_eq!(params.integer("relays").unwrap(), Some(4));
        assert_eq!(params.boolean("fast").unwrap(), Some(true));
        assert_eq!(
            params.seconds("wait").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(params.integer("absent").unwrap(), None);
        let err = params.integer("bad").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadParams);
        assert!(err.message.contains("`bad`"), "{err}");
    }

    #[test]
    fn params_debug_never_prints_values() {
        let mut params = Params::default();
        params.insert("password", "hunter2");
        assert!(!format!("{params:?}").contains("hunter2"));
    }
}
