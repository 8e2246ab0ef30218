//! The C ABI between fencekit and an external plugin, version [`ABI_VERSION`]: the
//! `#[repr(C)]` types, the numeric codes and the symbol names. `include/fencekit_plugin.h`
//! declares the same things for C; the two must change together, and any change that
//! an existing plugin would misread bumps [`ABI_VERSION`].
//!
//! Every string crosses the boundary as pointer and length ([`Str`]), never as a
//! NUL-terminated C string, so a missing terminator cannot make either side read past
//! the end, and every buffer one side fills for the other ([`Buf`]) carries its capacity.

use std::ffi::c_void;

/// The ABI this crate speaks. fencekit refuses a plugin whose
/// `fencekit_plugin_abi_version()` returns anything else.
pub const ABI_VERSION: u32 = 1;

/// The symbols a plugin exports. All are required except [`SYMBOL_CYCLE`], which is
/// needed only when [`PluginInfo::supports_cycle`] is set.
pub const SYMBOL_ABI_VERSION: &str = "fencekit_plugin_abi_version";
pub const SYMBOL_INFO: &str = "fencekit_plugin_info";
pub const SYMBOL_OPEN: &str = "fencekit_plugin_open";
pub const SYMBOL_CLOSE: &str = "fencekit_plugin_close";
pub const SYMBOL_STATUS: &str = "fencekit_plugin_status";
pub const SYMBOL_SET: &str = "fencekit_plugin_set";
pub const SYMBOL_LIST: &str = "fencekit_plugin_list";
pub const SYMBOL_CHECK: &str = "fencekit_plugin_check";
pub const SYMBOL_CYCLE: &str = "fencekit_plugin_cycle";

/// Status codes every call returns.
pub const STATUS_OK: i32 = 0;
/// Any other failure the device reported.
pub const STATUS_FAILED: i32 = 1;
/// The deadline passed before the device answered.
pub const STATUS_TIMED_OUT: i32 = 2;
/// The device refused the credentials.
pub const STATUS_AUTH: i32 = 3;
/// The credentials work but may not do this.
pub const STATUS_REFUSED: i32 = 4;
/// The plug does not exist on the device.
pub const STATUS_UNKNOWN_PLUG: i32 = 5;
/// The device does not offer this operation.
pub const STATUS_UNSUPPORTED: i32 = 6;
/// The device is busy.
pub const STATUS_BUSY: i32 = 7;
/// The device answered something the plugin cannot use.
pub const STATUS_PROTOCOL: i32 = 8;
/// `open` was given parameters it cannot use.
pub const STATUS_BAD_PARAMS: i32 = 9;
/// The plugin panicked; the helper crate caught it at the boundary.
pub const STATUS_PANIC: i32 = 10;

/// Power states `status` and `list` report.
pub const POWER_ON: u32 = 1;
pub const POWER_OFF: u32 = 2;
/// The device answered but the state is neither on nor off.
pub const POWER_UNKNOWN: u32 = 3;

/// What `set` switches a plug to.
pub const SWITCH_ON: u32 = 1;
pub const SWITCH_OFF: u32 = 2;

/// Parameter types, as fencekit's schema has them.
pub const PARAM_STRING: u32 = 0;
pub const PARAM_INTEGER: u32 = 1;
/// Passed to the plugin as `true` or `false`.
pub const PARAM_BOOLEAN: u32 = 2;
/// Seconds, fractions allowed; passed as a decimal number (`1.5`).
pub const PARAM_SECONDS: u32 = 3;
/// One of [`ParamSpec::options`]; passed as the option's text.
pub const PARAM_SELECT: u32 = 4;

/// A string: `len` bytes of UTF-8 at `ptr`, no terminator. `ptr` may be null only
/// when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub const EMPTY: Str = Str {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// A view of `text`; valid as long as `text` is.
    pub fn of(text: &str) -> Str {
        Str {
            ptr: text.as_ptr(),
            len: text.len(),
        }
    }
}

/// A buffer the caller owns and the callee fills: `cap` bytes at `ptr`; the callee
/// writes at most `cap` bytes and sets `len` to the number written.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    pub ptr: *mut u8,
    pub cap: usize,
    pub len: usize,
}

/// One parameter of the plugin's schema.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Lower case, digits and `_`.
    pub name: Str,
    /// Other names users type for it, separated by commas (`ipaddr,ip`).
    pub aliases: Str,
    /// One of the `PARAM_*` codes.
    pub ty: u32,
    /// For [`PARAM_SELECT`]: the options, separated by commas.
    pub options: Str,
    /// Whether [`ParamSpec::default_value`] holds a default.
    pub has_default: u8,
    pub default_value: Str,
    pub required: u8,
    /// A password or key: fencekit reads it from files, commands or the environment,
    /// passes it to the plugin as a value, and never logs or prints it.
    pub secret: u8,
    pub description: Str,
}

/// What a plugin says about itself. It must stay valid and unchanged for as long as
/// the library is loaded (fencekit never unloads a plugin).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginInfo {
    /// [`ABI_VERSION`] again, so that an info structure of another layout is caught.
    pub abi_version: u32,
    /// The plugin's name: lower case, digits, `-` and `_`; a configuration's
    /// `plugin = "NAME"`.
    pub name: Str,
    /// One line: what the plugin drives.
    pub summary: Str,
    /// A paragraph for metadata and `--help`.
    pub description: Str,
    /// Where to read about the device.
    pub url: Str,
    /// Whether the device has several plugs (so a plug must be named to fence).
    pub multi_plug: u8,
    /// Whether `fencekit_plugin_cycle` works.
    pub supports_cycle: u8,
    pub params: *const ParamSpec,
    pub param_count: usize,
}

/// One validated parameter given to `open`: canonical name and value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub key: Str,
    pub value: Str,
}

/// `uint32_t fencekit_plugin_abi_version(void)`.
pub type AbiVersionFn = extern "C" fn() -> u32;
/// `const struct fencekit_plugin_info *fencekit_plugin_info(void)`; null on failure.
pub type InfoFn = extern "C" fn() -> *const PluginInfo;
/// `int32_t fencekit_plugin_open(params, count, *device, error)`.
pub type OpenFn = unsafe extern "C" fn(*const Param, usize, *mut *mut c_void, *mut Buf) -> i32;
/// `void fencekit_plugin_close(device)`: called once, after every other call on the
/// device has returned.
pub type CloseFn = unsafe extern "C" fn(*mut c_void);
/// `int32_t fencekit_plugin_status(device, plug, deadline_ms, *state, error)`.
pub type StatusFn = unsafe extern "C" fn(*mut c_void, Str, u64, *mut u32, *mut Buf) -> i32;
/// `int32_t fencekit_plugin_set(device, plug, to, deadline_ms, error)`.
pub type SetFn = unsafe extern "C" fn(*mut c_void, Str, u32, u64, *mut Buf) -> i32;
/// `int32_t fencekit_plugin_cycle(device, plug, deadline_ms, error)`.
pub type CycleFn = unsafe extern "C" fn(*mut c_void, Str, u64, *mut Buf) -> i32;
/// Called by `list` once per plug: `(ctx, plug, name, state)`. The strings need only
/// live for the call.
pub type EmitPlugFn = unsafe extern "C" fn(*mut c_void, Str, Str, u32);
/// `int32_t fencekit_plugin_list(device, deadline_ms, ctx, emit, error)`.
pub type ListFn = unsafe extern "C" fn(*mut c_void, u64, *mut c_void, EmitPlugFn, *mut Buf) -> i32;
/// `int32_t fencekit_plugin_check(device, deadline_ms, error)`.
pub type CheckFn = unsafe extern "C" fn(*mut c_void, u64, *mut Buf) -> i32;

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The sizes and offsets a C compiler gives the structures of
    /// `include/fencekit_plugin.h` on a 64-bit target: the two must not drift apart.
    #[test]
    fn the_structures_have_the_layout_of_the_c_header() {
        assert_eq!(size_of::<Str>(), 16);
        assert_eq!(size_of::<Buf>(), 24);
        assert_eq!(size_of::<Param>(), 32);
        assert_eq!(size_of::<ParamSpec>(), 104);
        assert_eq!(offset_of!(ParamSpec, description), 88);
        assert_eq!(size_of::<PluginInfo>(), 96);
        assert_eq!(offset_of!(PluginInfo, params), 80);
    }
}
