//! fencekit's side of the external plugin C ABI, and the only `unsafe` code of the
//! registry: opening a shared object, resolving its symbols, reading what it declares
//! and calling it. Everything leaves this module as owned, checked Rust values.
//!
//! What is defended against: a wrong ABI version, a missing symbol, strings that are
//! not UTF-8, lengths larger than their buffers or than any sane declaration, null
//! pointers, unknown status and power-state codes. What cannot be defended against
//! from inside one process: a plugin that writes through wild pointers, aborts, or
//! calls back after returning. Such a plugin is broken beyond any ABI's reach; the
//! helper crate (`fencekit-plugin-api`) keeps Rust plugins from the usual causes.

use std::ffi::c_void;
use std::path::Path;
use std::ptr::NonNull;

use fencekit_plugin_api::abi::{self, Buf, Param, Str};
use zeroize::Zeroizing;

use super::LoadProblem;

/// The most a plugin may declare: beyond these, the declaration is garbage.
const MAX_STRING: usize = 64 * 1024;
const MAX_PARAMS: usize = 256;
/// The most plugs a `list` may report.
const MAX_PLUGS: usize = 65_536;
/// The most bytes of plug text and names a `list` may report in all: a bound on the
/// memory a plugin can make fencekit spend, far above any real device's list.
const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;
/// Room for a plugin's error message.
const ERROR_CAPACITY: usize = 2048;

/// The plugin's entry points, resolved once. The library they live in is never
/// unloaded (see [`open_library`]), so the function pointers stay valid.
#[derive(Debug)]
pub(crate) struct Entry {
    open: abi::OpenFn,
    close: abi::CloseFn,
    status: abi::StatusFn,
    set: abi::SetFn,
    list: abi::ListFn,
    check: abi::CheckFn,
    cycle: Option<abi::CycleFn>,
}

/// A plugin's declaration, copied out of the library and checked for UTF-8.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub abi_version: u32,
    pub name: String,
    pub summary: String,
    pub description: String,
    pub url: String,
    pub multi_plug: bool,
    pub supports_cycle: bool,
    pub params: Vec<DeclaredParam>,
}

#[derive(Debug, Clone)]
pub(crate) struct DeclaredParam {
    pub name: String,
    pub aliases: String,
    pub ty: u32,
    pub options: String,
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub description: String,
}

/// Opens `path`, checks its ABI version and reads its declaration.
///
/// The library is leaked on purpose, also when it is refused: a plugin's code may
/// still run on a thread fencekit abandoned at a deadline, and unloading code that a
/// thread is running is undefined behaviour. A process loads each file once.
pub(crate) fn open_library(path: &Path) -> Result<(&'static Entry, Declared), LoadProblem> {
    // SAFETY: loading a shared object runs its initialisers; that is what loading a
    // plugin means, and the operator chose the file by putting it in the plugin
    // directory or naming it. libloading gives the library its own namespace
    // (RTLD_LOCAL), so its symbols do not replace fencekit's.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| LoadProblem::Open(e.to_string()))?;
    let library: &'static libloading::Library = Box::leak(Box::new(library));

    let version: abi::AbiVersionFn = symbol(library, abi::SYMBOL_ABI_VERSION)?;
    let found = version();
    if found != abi::ABI_VERSION {
        return Err(LoadProblem::AbiVersion {
            found,
            expected: abi::ABI_VERSION,
        });
    }
    let info: abi::InfoFn = symbol(library, abi::SYMBOL_INFO)?;
    let mut entry = Entry {
        open: symbol(library, abi::SYMBOL_OPEN)?,
        close: symbol(library, abi::SYMBOL_CLOSE)?,
        status: symbol(library, abi::SYMBOL_STATUS)?,
        set: symbol(library, abi::SYMBOL_SET)?,
        list: symbol(library, abi::SYMBOL_LIST)?,
        check: symbol(library, abi::SYMBOL_CHECK)?,
        cycle: None,
    };
    let declared = read_info(info())?;
    if declared.supports_cycle {
        entry.cycle = Some(symbol(library, abi::SYMBOL_CYCLE)?);
    }
    Ok((Box::leak(Box::new(entry)), declared))
}

/// Resolves one function symbol of type `T` (one of the `abi::*Fn` pointer types).
fn symbol<T: Copy>(
    library: &'static libloading::Library,
    name: &'static str,
) -> Result<T, LoadProblem> {
    // SAFETY: `T` is the function pointer type the ABI gives this symbol; a library
    // that exports the name with another signature breaks the ABI it claims by its
    // version, which is checked first. The pointer stays valid: the library is
    // never unloaded.
    let found = unsafe { library.get::<T>(name.as_bytes()) };
    match found {
        Ok(symbol) => Ok(*symbol),
        Err(e) => Err(LoadProblem::MissingSymbol {
            symbol: name,
            cause: e.to_string(),
        }),
    }
}

fn read_info(info: *const abi::PluginInfo) -> Result<Declared, LoadProblem> {
    // SAFETY: `fencekit_plugin_info` returns null or a pointer to an info structure
    // that stays valid while the library is loaded (ABI contract).
    let Some(info) = (unsafe { info.as_ref() }) else {
        return Err(LoadProblem::Declaration(
            "fencekit_plugin_info returned nothing (did building the declaration fail?)".into(),
        ));
    };
    if info.abi_version != abi::ABI_VERSION {
        return Err(LoadProblem::AbiVersion {
            found: info.abi_version,
            expected: abi::ABI_VERSION,
        });
    }
    if info.param_count > MAX_PARAMS {
        return Err(LoadProblem::Declaration(format!(
            "declares {} parameters; more than {MAX_PARAMS} is not a real declaration",
            info.param_count
        )));
    }
    let specs: &[abi::ParamSpec] = if info.param_count == 0 {
        &[]
    } else if info.params.is_null() {
        return Err(LoadProblem::Declaration(
            "declares parameters but gives no table of them".into(),
        ));
    } else {
        // SAFETY: the info structure promises `param_count` entries at `params`,
        // valid while the library is loaded.
        unsafe { std::slice::from_raw_parts(info.params, info.param_count) }
    };
    let text = |s: Str, what: &str| declared_str(s, what).map_err(LoadProblem::Declaration);
    let mut params = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let name = text(spec.name, &format!("parameter {}'s name", i + 1))?;
        let what = |field: &str| format!("parameter `{name}`'s {field}");
        params.push(DeclaredParam {
            aliases: text(spec.aliases, &what("aliases"))?,
            ty: spec.ty,
            options: text(spec.options, &what("options"))?,
            default: match spec.has_default {
                0 => None,
                _ => Some(text(spec.default_value, &what("default"))?),
            },
            required: spec.required != 0,
            secret: spec.secret != 0,
            description: text(spec.description, &what("description"))?,
            name,
        });
    }
    Ok(Declared {
        abi_version: info.abi_version,
        name: text(info.name, "name")?,
        summary: text(info.summary, "summary")?,
        description: text(info.description, "description")?,
        url: text(info.url, "url")?,
        multi_plug: info.multi_plug != 0,
        supports_cycle: info.supports_cycle != 0,
        params,
    })
}

/// Copies a string the plugin declared, checking length, null and UTF-8.
fn declared_str(s: Str, what: &str) -> Result<String, String> {
    if s.len > MAX_STRING {
        return Err(format!("its {what} claims {} bytes", s.len));
    }
    // SAFETY: a string in the declaration is valid while the library is loaded (ABI
    // contract); its length was bounded above.
    let bytes =
        unsafe { plugin_bytes(s) }.ok_or_else(|| format!("its {what} is a null pointer"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
}

/// The bytes of a [`Str`] a plugin gave; `None` for a null pointer with a length.
///
/// # Safety
/// `s.ptr` is null or valid for reads of `s.len` bytes for the returned lifetime.
unsafe fn plugin_bytes<'a>(s: Str) -> Option<&'a [u8]> {
    if s.len == 0 {
        return Some(&[]);
    }
    if s.ptr.is_null() {
        return None;
    }
    // SAFETY: by this function's contract.
    Some(unsafe { std::slice::from_raw_parts(s.ptr, s.len) })
}

/// A failed call: the plugin's status code and its message (or what was wrong with
/// the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub status: i32,
    pub message: String,
}

/// A plug as `list` reported it, before the caller checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedPlug {
    pub plug: Result<String, String>,
    pub name: Result<String, String>,
    pub state: u32,
}

/// One device the plugin opened. Closed when dropped, which happens only after every
/// call on it has returned: each call holds the handle (through an `Arc`).
#[derive(Debug)]
pub(crate) struct DeviceHandle {
    entry: &'static Entry,
    device: NonNull<c_void>,
}

// SAFETY: the ABI requires a device to accept calls from any thread, several at once
// (documented in fencekit_plugin.h and enforced by the helper crate's `Send + Sync`
// bound), and `close` only after all calls returned, which `Drop` guarantees.
unsafe impl Send for DeviceHandle {}
// SAFETY: as above.
unsafe impl Sync for DeviceHandle {}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // SAFETY: `device` came from this entry's `open`, and this is the one close:
        // the handle is dropped once, after every borrow (every call) ended.
        unsafe { (self.entry.close)(self.device.as_ptr()) }
    }
}

/// Builds a device from parameters (names and values; secret values included, held
/// zeroized by the caller).
pub(crate) fn open_device(
    entry: &'static Entry,
    params: &[(String, Zeroizing<String>)],
) -> Result<DeviceHandle, CallError> {
    let raw: Vec<Param> = params
        .iter()
        .map(|(key, value)| Param {
            key: Str::of(key),
            value: Str::of(value),
        })
        .collect();
    let mut device: *mut c_void = std::ptr::null_mut();
    let mut error = ErrorBuf::new();
    // SAFETY: `raw` holds `raw.len()` parameters whose strings (borrowed from
    // `params`) outlive the call; `device` and the error buffer are valid for writes.
    let status = unsafe { (entry.open)(raw.as_ptr(), raw.len(), &mut device, error.buf()) };
    if status != abi::STATUS_OK {
        return Err(error.into_error(status));
    }
    match NonNull::new(device) {
        Some(device) => Ok(DeviceHandle { entry, device }),
        None => Err(CallError {
            status: abi::STATUS_FAILED,
            message: "open returned success but no device".into(),
        }),
    }
}

impl DeviceHandle {
    /// Reads a plug's power state code (checked by the caller).
    pub(crate) fn status(&self, plug: &str, deadline_ms: u64) -> Result<u32, CallError> {
        // Anything the plugin leaves here is not a state it reported.
        let mut state: u32 = u32::MAX;
        let mut error = ErrorBuf::new();
        // SAFETY: the device is open; `plug` outlives the call; `state` and the error
        // buffer are valid for writes.
        let status = unsafe {
            (self.entry.status)(
                self.device.as_ptr(),
                Str::of(plug),
                deadline_ms,
                &mut state,
                error.buf(),
            )
        };
        match status {
            abi::STATUS_OK => Ok(state),
            _ => Err(error.into_error(status)),
        }
    }

    pub(crate) fn set(&self, plug: &str, to: u32, deadline_ms: u64) -> Result<(), CallError> {
        let mut error = ErrorBuf::new();
        // SAFETY: the device is open; `plug` outlives the call; the error buffer is
        // valid for writes.
        let status = unsafe {
            (self.entry.set)(
                self.device.as_ptr(),
                Str::of(plug),
                to,
                deadline_ms,
                error.buf(),
            )
        };
        error.result(status)
    }

    pub(crate) fn supports_cycle(&self) -> bool {
        self.entry.cycle.is_some()
    }

    pub(crate) fn cycle(&self, plug: &str, deadline_ms: u64) -> Result<(), CallError> {
        let Some(cycle) = self.entry.cycle else {
            return Err(CallError {
                status: abi::STATUS_UNSUPPORTED,
                message: "the plugin has no cycle command".into(),
            });
        };
        let mut error = ErrorBuf::new();
        // SAFETY: the device is open; `plug` outlives the call; the error buffer is
        // valid for writes; `cycle` was resolved because the plugin declared it.
        let status = unsafe {
            cycle(
                self.device.as_ptr(),
                Str::of(plug),
                deadline_ms,
                error.buf(),
            )
        };
        error.result(status)
    }

    pub(crate) fn check(&self, deadline_ms: u64) -> Result<(), CallError> {
        let mut error = ErrorBuf::new();
        // SAFETY: the device is open; the error buffer is valid for writes.
        let status = unsafe { (self.entry.check)(self.device.as_ptr(), deadline_ms, error.buf()) };
        error.result(status)
    }

    pub(crate) fn list(&self, deadline_ms: u64) -> Result<(Vec<ListedPlug>, bool), CallError> {
        let mut collected = Collected::default();
        let mut error = ErrorBuf::new();
        // SAFETY: the device is open; `collected` outlives the call and is reached
        // only through `ctx` by `collect_plug` during it; the error buffer is valid.
        let status = unsafe {
            (self.entry.list)(
                self.device.as_ptr(),
                deadline_ms,
                (&mut collected as *mut Collected).cast::<c_void>(),
                collect_plug,
                error.buf(),
            )
        };
        error.result(status)?;
        Ok((collected.plugs, collected.overflow))
    }
}

#[derive(Default)]
struct Collected {
    plugs: Vec<ListedPlug>,
    bytes: usize,
    overflow: bool,
}

/// The `emit` callback `list` calls per plug. It must not unwind into the plugin, so
/// it only copies bytes (allocation failure aborts, as everywhere in Rust).
unsafe extern "C" fn collect_plug(ctx: *mut c_void, plug: Str, name: Str, state: u32) {
    // SAFETY: `ctx` is the `Collected` that `DeviceHandle::list` passed to this very
    // call of the plugin's `list`, and nothing else touches it during the call.
    let Some(collected) = (unsafe { ctx.cast::<Collected>().as_mut() }) else {
        return;
    };
    if collected.plugs.len() >= MAX_PLUGS || collected.overflow {
        collected.overflow = true;
        return;
    }
    collected.bytes = collected
        .bytes
        .saturating_add(plug.len.min(MAX_STRING))
        .saturating_add(name.len.min(MAX_STRING));
    if collected.bytes > MAX_LIST_BYTES {
        collected.overflow = true;
        return;
    }
    let text = |s: Str, what: &str, most: usize| -> Result<String, String> {
        if s.len > most {
            return Err(format!("a {what} of {} bytes (at most {most})", s.len));
        }
        // SAFETY: the strings `emit` receives are valid for the callback (ABI
        // contract); the length was bounded above.
        match unsafe { plugin_bytes(s) } {
            None => Err(format!("a null {what}")),
            Some(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| format!("a {what} that is not UTF-8"))
            }
        }
    };
    collected.plugs.push(ListedPlug {
        plug: text(plug, "plug", fencekit_core::power::MAX_PLUG_TEXT),
        name: text(name, "plug name", MAX_STRING),
        state,
    });
}

/// The error buffer a call may fill.
struct ErrorBuf {
    storage: Vec<u8>,
    buf: Buf,
}

impl ErrorBuf {
    fn new() -> ErrorBuf {
        let mut storage = vec![0u8; ERROR_CAPACITY];
        let buf = Buf {
            ptr: storage.as_mut_ptr(),
            cap: storage.len(),
            len: 0,
        };
        ErrorBuf { storage, buf }
    }

    /// The buffer to hand to the plugin; its `ptr` points into `storage`, which is
    /// not touched until the call returned.
    fn buf(&mut self) -> *mut Buf {
        &mut self.buf
    }

    fn result(self, status: i32) -> Result<(), CallError> {
        match status {
            abi::STATUS_OK => Ok(()),
            _ => Err(self.into_error(status)),
        }
    }

    fn into_error(self, status: i32) -> CallError {
        let message = if self.buf.len > self.storage.len() {
            format!(
                "(the plugin claimed a {}-byte error message in a {}-byte buffer)",
                self.buf.len,
                self.storage.len()
            )
        } else {
            match std::str::from_utf8(&self.storage[..self.buf.len]) {
                Ok("") => "(the plugin gave no message)".to_string(),
                Ok(text) => text.trim().to_string(),
                Err(_) => "(the plugin's error message is not UTF-8)".to_string(),
            }
        };
        CallError { status, message }
    }
}

/// Ends the process now with `code`, without running exit handlers or the dynamic
/// loader's finalisers. A plugin whose initialiser never returned still holds the
/// loader's lock on its abandoned thread, and the finalisers `exit` runs take that
/// lock: the process would never end. The caller flushes its output first.
pub(crate) fn exit_now(code: u8) -> ! {
    // SAFETY: `_exit` is async-signal-safe and takes no lock; it ends the process
    // without touching any Rust state, so nothing can observe a broken invariant.
    unsafe { nix::libc::_exit(i32::from(code)) }
}
