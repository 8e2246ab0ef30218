//! The glue [`crate::export_plugin!`] expands to: each C entry point checks its
//! arguments, turns them into Rust values, calls the [`Device`] method inside
//! `catch_unwind` (a panic unwinding out of an `extern "C"` function aborts the whole
//! process, fencekit included) and turns the result back into a status code and an
//! error message. Not an API of its own; hidden from the docs.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::abi::{self, Buf, Param, PluginInfo, Str};
use crate::{Declaration, Device, ErrorKind, ParamKind, Params, PluginError, PowerState, SwitchTo};

/// The plugin's [`PluginInfo`] and the storage its pointers point into.
pub struct InfoTable {
    info: PluginInfo,
    // Only kept alive: `info` and `_specs` point into these strings' heap buffers,
    // which do not move when the vector does.
    _strings: Vec<String>,
    _specs: Vec<abi::ParamSpec>,
}

// SAFETY: an InfoTable is never changed after it is built, and its raw pointers point
// only into its own heap data (or into 'static declaration strings), so sharing it
// between threads and moving it is as safe as sharing the strings themselves.
unsafe impl Sync for InfoTable {}
// SAFETY: as above: the pointers do not depend on the thread that built the table.
unsafe impl Send for InfoTable {}

impl InfoTable {
    fn build(decl: &'static Declaration) -> InfoTable {
        let mut strings = Vec::new();
        let mut keep = |text: String| {
            let s = Str::of(&text);
            strings.push(text);
            s
        };
        let specs: Vec<abi::ParamSpec> = decl
            .params
            .iter()
            .map(|p| {
                let (ty, options) = match p.kind {
                    ParamKind::String => (abi::PARAM_STRING, Str::EMPTY),
                    ParamKind::Integer => (abi::PARAM_INTEGER, Str::EMPTY),
                    ParamKind::Boolean => (abi::PARAM_BOOLEAN, Str::EMPTY),
                    ParamKind::Seconds => (abi::PARAM_SECONDS, Str::EMPTY),
                    ParamKind::Select(options) => (abi::PARAM_SELECT, keep(options.join(","))),
                };
                abi::ParamSpec {
                    name: Str::of(p.name),
                    aliases: keep(p.aliases.join(",")),
                    ty,
                    options,
                    has_default: u8::from(p.default.is_some()),
                    default_value: p.default.map_or(Str::EMPTY, Str::of),
                    required: u8::from(p.required),
                    secret: u8::from(p.secret),
                    description: Str::of(p.description),
                }
            })
            .collect();
        let info = PluginInfo {
            abi_version: abi::ABI_VERSION,
            name: Str::of(decl.name),
            summary: Str::of(decl.summary),
            description: Str::of(decl.description),
            url: Str::of(decl.url),
            multi_plug: u8::from(decl.multi_plug),
            supports_cycle: u8::from(decl.supports_cycle),
            params: specs.as_ptr(),
            param_count: specs.len(),
        };
        InfoTable {
            info,
            _strings: strings,
            _specs: specs,
        }
    }
}

/// `fencekit_plugin_info`: built once; null if building it panicked.
pub fn info<T: Device>(cell: &'static OnceLock<Option<InfoTable>>) -> *const PluginInfo {
    let table = cell.get_or_init(|| catch_unwind(|| InfoTable::build(T::declaration())).ok());
    match table {
        Some(table) => &table.info,
        None => std::ptr::null(),
    }
}

/// `fencekit_plugin_open`.
///
/// # Safety
/// `params` points to `count` valid [`Param`]s (or is null with `count` 0), each
/// [`Str`] valid for the call; `device` is valid for a write; `error` is null or a
/// valid [`Buf`].
pub unsafe fn open<T: Device>(
    params: *const Param,
    count: usize,
    device: *mut *mut c_void,
    error: *mut Buf,
) -> i32 {
    let body = || {
        if device.is_null() {
            return Err(PluginError::failed(
                "open was given no place for the device",
            ));
        }
        let raw: &[Param] = if count == 0 {
            &[]
        } else if params.is_null() {
            return Err(PluginError::failed("open was given no parameters"));
        } else {
            // SAFETY: the caller gives `count` valid parameters at `params`.
            unsafe { std::slice::from_raw_parts(params, count) }
        };
        let mut values = Params::default();
        for param in raw {
            // SAFETY: each Str is valid for the call, by the caller's contract.
            let key = unsafe { str_arg(param.key, "a parameter name") }?;
            // SAFETY: as above.
            let value = unsafe { str_arg(param.value, "a parameter value") }?;
            values.insert(key, value);
        }
        let opened = Box::into_raw(Box::new(T::open(&values)?)).cast::<c_void>();
        // SAFETY: `device` is valid for a write (checked non-null above).
        unsafe { *device = opened };
        Ok(())
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "open", body) }
}

/// `fencekit_plugin_close`.
///
/// # Safety
/// `device` came from [`open`] for the same `T` and no call on it is running or will
/// be made.
pub unsafe fn close<T: Device>(device: *mut c_void) {
    if device.is_null() {
        return;
    }
    // SAFETY: by the contract, `device` is the Box<T> `open` leaked, closed only once.
    let boxed = unsafe { Box::from_raw(device.cast::<T>()) };
    // A panicking Drop must not unwind into fencekit either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// `fencekit_plugin_status`.
///
/// # Safety
/// `device` came from [`open`] and is not closed; `plug` is valid for the call;
/// `state` is valid for a write; `error` is null or a valid [`Buf`].
pub unsafe fn status<T: Device>(
    device: *mut c_void,
    plug: Str,
    deadline_ms: u64,
    state: *mut u32,
    error: *mut Buf,
) -> i32 {
    let body = || {
        // SAFETY: `device` is live and `plug` valid, by this function's contract.
        let (device, plug) = unsafe { device_and_plug::<T>(device, plug) }?;
        if state.is_null() {
            return Err(PluginError::failed(
                "status was given no place for the state",
            ));
        }
        let code = match device.status(plug, deadline(deadline_ms))? {
            PowerState::On => abi::POWER_ON,
            PowerState::Off => abi::POWER_OFF,
            PowerState::Unknown => abi::POWER_UNKNOWN,
        };
        // SAFETY: `state` is valid for a write (checked non-null above).
        unsafe { *state = code };
        Ok(())
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "status", body) }
}

/// `fencekit_plugin_set`.
///
/// # Safety
/// As [`status`], without `state`.
pub unsafe fn set<T: Device>(
    device: *mut c_void,
    plug: Str,
    to: u32,
    deadline_ms: u64,
    error: *mut Buf,
) -> i32 {
    let body = || {
        // SAFETY: `device` is live and `plug` valid, by this function's contract.
        let (device, plug) = unsafe { device_and_plug::<T>(device, plug) }?;
        let to = match to {
            abi::SWITCH_ON => SwitchTo::On,
            abi::SWITCH_OFF => SwitchTo::Off,
            other => {
                return Err(PluginError::failed(format!(
                    "set was asked for unknown state code {other}"
                )))
            }
        };
        device.set(plug, to, deadline(deadline_ms))
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "set", body) }
}

/// `fencekit_plugin_cycle`.
///
/// # Safety
/// As [`set`].
pub unsafe fn cycle<T: Device>(
    device: *mut c_void,
    plug: Str,
    deadline_ms: u64,
    error: *mut Buf,
) -> i32 {
    let body = || {
        // SAFETY: `device` is live and `plug` valid, by this function's contract.
        let (device, plug) = unsafe { device_and_plug::<T>(device, plug) }?;
        device.cycle(plug, deadline(deadline_ms))
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "cycle", body) }
}

/// `fencekit_plugin_list`.
///
/// # Safety
/// As [`check`]; `emit` is a valid function that accepts `ctx`.
pub unsafe fn list<T: Device>(
    device: *mut c_void,
    deadline_ms: u64,
    ctx: *mut c_void,
    emit: abi::EmitPlugFn,
    error: *mut Buf,
) -> i32 {
    let body = || {
        // SAFETY: `device` is live, by this function's contract.
        let device = unsafe { device_arg::<T>(device) }?;
        for outlet in device.list(deadline(deadline_ms))? {
            let state = match outlet.state {
                PowerState::On => abi::POWER_ON,
                PowerState::Off => abi::POWER_OFF,
                PowerState::Unknown => abi::POWER_UNKNOWN,
            };
            // SAFETY: `emit` and `ctx` come from fencekit for this call; the
            // strings live until the callback returns.
            unsafe { emit(ctx, Str::of(&outlet.plug), Str::of(&outlet.name), state) };
        }
        Ok(())
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "list", body) }
}

/// `fencekit_plugin_check`.
///
/// # Safety
/// `device` came from [`open`] and is not closed; `error` is null or a valid [`Buf`].
pub unsafe fn check<T: Device>(device: *mut c_void, deadline_ms: u64, error: *mut Buf) -> i32 {
    let body = || {
        // SAFETY: `device` is live, by this function's contract.
        let device = unsafe { device_arg::<T>(device) }?;
        device.check(deadline(deadline_ms))
    };
    // SAFETY: `error` is null or a valid Buf, by this function's contract.
    unsafe { guarded(error, "check", body) }
}

/// The device and the plug of a call.
///
/// # Safety
/// As [`device_arg`] and [`str_arg`].
unsafe fn device_and_plug<'a, T: Device>(
    device: *mut c_void,
    plug: Str,
) -> Result<(&'a T, &'a str), PluginError> {
    // SAFETY: by this function's contract.
    let device = unsafe { device_arg::<T>(device) }?;
    // SAFETY: by this function's contract.
    let plug = unsafe { str_arg(plug, "the plug") }?;
    Ok((device, plug))
}

/// Runs `body`, catching a panic, and reports the result as a status code.
///
/// # Safety
/// `error` is null or a valid [`Buf`].
unsafe fn guarded(
    error: *mut Buf,
    operation: &str,
    body: impl FnOnce() -> Result<(), PluginError>,
) -> i32 {
    let (status, message) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return abi::STATUS_OK,
        Ok(Err(e)) => (e.kind.status(), e.message),
        Err(payload) => (
            abi::STATUS_PANIC,
            format!("panicked in {operation}: {}", panic_text(payload.as_ref())),
        ),
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { write_error(error, &message) };
    status
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}

/// Copies as much of `message` as fits, cut at a character boundary.
///
/// # Safety
/// `error` is null or a valid [`Buf`] whose `ptr` is valid for `cap` bytes.
unsafe fn write_error(error: *mut Buf, message: &str) {
    // SAFETY: by the contract, a non-null `error` is a valid Buf.
    let Some(buf) = (unsafe { error.as_mut() }) else {
        return;
    };
    if buf.ptr.is_null() {
        buf.len = 0;
        return;
    }
    let mut len = message.len().min(buf.cap);
    while !message.is_char_boundary(len) {
        len -= 1;
    }
    // SAFETY: `buf.ptr` is valid for `cap` bytes and `len <= cap`; the message is ours,
    // so the two regions cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), buf.ptr, len) };
    buf.len = len;
}

/// # Safety
/// `s` is valid for the call (`len` bytes at `ptr`).
unsafe fn str_arg<'a>(s: Str, what: &str) -> Result<&'a str, PluginError> {
    if s.len == 0 {
        return Ok("");
    }
    if s.ptr.is_null() {
        return Err(PluginError::failed(format!("{what} was a null pointer")));
    }
    // SAFETY: by the contract, `len` bytes at `ptr` are readable for the call.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes)
        .map_err(|_| PluginError::new(ErrorKind::BadParams, format!("{what} is not UTF-8")))
}

/// # Safety
/// `device` is null or came from [`open`] for `T` and is not closed.
unsafe fn device_arg<'a, T: Device>(device: *mut c_void) -> Result<&'a T, PluginError> {
    // SAFETY: by the contract, a non-null `device` is a live Box<T> from `open`.
    unsafe { device.cast::<T>().as_ref() }
        .ok_or_else(|| PluginError::failed("called without a device"))
}

fn deadline(ms: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_millis(ms))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}
