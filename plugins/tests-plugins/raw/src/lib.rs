//! A test-only external plugin written against the bare C ABI (no helper crate), to
//! return what a careless C plugin might: with `fault=bad_state`, `status` reports
//! power state code 77; with `fault=bad_utf8`, errors and plug names that are not
//! UTF-8; with `fault=bad_len`, an error length larger than the buffer; with
//! `fault=bad_status`, status code 1234. Built with feature `wrong-abi-version` it
//! claims ABI version 999; with `missing-status-symbol` it lacks
//! `fencekit_plugin_status`; with `hang-in-info` its `info` call never returns; with
//! `hang-in-constructor` loading it never ends (a library initialiser that sleeps).
//! With `fault=deep_plug`, `list` reports a plug `1:1:...:1` of 40 001 bytes (below the ABI's bound on strings, above any plug). A
//! real plugin should use `fencekit-plugin-api`.
//!
//! Nothing here panics, so no `catch_unwind` is needed at this boundary.

#![allow(clippy::missing_safety_doc)]

use std::ffi::c_void;

use fencekit_plugin_api::abi::{self, Buf, Param, PluginInfo, Str};

struct Table(PluginInfo);
// SAFETY: the table is immutable and points only to 'static data.
unsafe impl Sync for Table {}

struct Specs([abi::ParamSpec; 1]);
// SAFETY: as for Table.
unsafe impl Sync for Specs {}

static PARAMS: Specs = Specs([abi::ParamSpec {
    name: Str {
        ptr: b"fault".as_ptr(),
        len: 5,
    },
    aliases: Str {
        ptr: std::ptr::null(),
        len: 0,
    },
    ty: abi::PARAM_STRING,
    options: Str {
        ptr: std::ptr::null(),
        len: 0,
    },
    has_default: 1,
    default_value: Str {
        ptr: b"none".as_ptr(),
        len: 4,
    },
    required: 0,
    secret: 0,
    description: Str {
        ptr: b"what to return".as_ptr(),
        len: 14,
    },
}]);

static INFO: Table = Table(PluginInfo {
    abi_version: if cfg!(feature = "wrong-abi-version") {
        999
    } else {
        abi::ABI_VERSION
    },
    name: Str {
        ptr: b"test-raw".as_ptr(),
        len: 8,
    },
    summary: Str {
        ptr: b"returns garbage (tests only)".as_ptr(),
        len: 28,
    },
    description: Str {
        ptr: b"Returns garbage on purpose.".as_ptr(),
        len: 27,
    },
    url: Str {
        ptr: std::ptr::null(),
        len: 0,
    },
    multi_plug: 1,
    supports_cycle: 0,
    params: PARAMS.0.as_ptr(),
    param_count: 1,
});

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    BadState,
    BadUtf8,
    BadLen,
    BadStatus,
    DeepPlug,
}

/// The plug `fault=deep_plug` lists.
static DEEP_PLUG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

#[no_mangle]
pub extern "C" fn fencekit_plugin_abi_version() -> u32 {
    INFO.0.abi_version
}

#[no_mangle]
pub extern "C" fn fencekit_plugin_info() -> *const PluginInfo {
    if cfg!(feature = "hang-in-info") {
        hang();
    }
    &INFO.0
}

/// Never returns.
#[allow(dead_code)]
fn hang() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Runs when the library is loaded, before `dlopen` returns.
#[cfg(feature = "hang-in-constructor")]
#[used]
#[link_section = ".init_array"]
static HANG_ON_LOAD: extern "C" fn() = {
    extern "C" fn hang_on_load() {
        hang()
    }
    hang_on_load
};

#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_open(
    params: *const Param,
    count: usize,
    device: *mut *mut c_void,
    _error: *mut Buf,
) -> i32 {
    let mut fault = Fault::None;
    if !params.is_null() {
        // SAFETY: fencekit passes `count` parameters valid for the call.
        for p in unsafe { std::slice::from_raw_parts(params, count) } {
            // SAFETY: as above, each string is valid for the call.
            let value = unsafe { std::slice::from_raw_parts(p.value.ptr, p.value.len) };
            fault = match value {
                b"bad_state" => Fault::BadState,
                b"bad_utf8" => Fault::BadUtf8,
                b"bad_len" => Fault::BadLen,
                b"bad_status" => Fault::BadStatus,
                b"deep_plug" => Fault::DeepPlug,
                _ => fault,
            };
        }
    }
    // SAFETY: fencekit passes a pointer valid for a write.
    unsafe { *device = Box::into_raw(Box::new(fault)).cast() };
    abi::STATUS_OK
}

#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_close(device: *mut c_void) {
    // SAFETY: `device` is the box `open` made, closed once.
    drop(unsafe { Box::from_raw(device.cast::<Fault>()) });
}

unsafe fn fault(device: *mut c_void) -> Fault {
    // SAFETY: `device` is the box `open` made and is still open.
    unsafe { *device.cast::<Fault>() }
}

unsafe fn fail(error: *mut Buf, fault: Fault) -> i32 {
    // SAFETY: fencekit passes a valid buffer.
    let buf = unsafe { &mut *error };
    match fault {
        Fault::BadUtf8 => {
            let bytes = [0xff, 0xfe, b'x'];
            // SAFETY: the buffer holds at least `cap` bytes, more than 3.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.ptr, 3) };
            buf.len = 3;
            abi::STATUS_FAILED
        }
        Fault::BadLen => {
            buf.len = buf.cap + 100;
            abi::STATUS_FAILED
        }
        _ => 1234,
    }
}

#[cfg(not(feature = "missing-status-symbol"))]
#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_status(
    device: *mut c_void,
    _plug: Str,
    _deadline_ms: u64,
    state: *mut u32,
    error: *mut Buf,
) -> i32 {
    // SAFETY: per the ABI, as in every function here.
    unsafe {
        match fault(device) {
            Fault::None | Fault::DeepPlug => {
                *state = abi::POWER_ON;
                abi::STATUS_OK
            }
            Fault::BadState => {
                *state = 77;
                abi::STATUS_OK
            }
            other => fail(error, other),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_set(
    device: *mut c_void,
    _plug: Str,
    _to: u32,
    _deadline_ms: u64,
    error: *mut Buf,
) -> i32 {
    // SAFETY: per the ABI.
    unsafe {
        match fault(device) {
            Fault::None | Fault::BadState | Fault::DeepPlug => abi::STATUS_OK,
            other => fail(error, other),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_list(
    device: *mut c_void,
    _deadline_ms: u64,
    ctx: *mut c_void,
    emit: abi::EmitPlugFn,
    _error: *mut Buf,
) -> i32 {
    // SAFETY: per the ABI: `emit` accepts `ctx` during this call.
    unsafe {
        let fault = fault(device);
        let name: &[u8] = if fault == Fault::BadUtf8 {
            &[0xc3, 0x28]
        } else {
            b"one"
        };
        let state = if fault == Fault::BadState {
            77
        } else {
            abi::POWER_ON
        };
        let plug: &[u8] = if fault == Fault::DeepPlug {
            DEEP_PLUG.get_or_init(|| {
                let mut text = b"1:".repeat(20_000);
                text.push(b'1');
                text
            })
        } else {
            b"1"
        };
        emit(
            ctx,
            Str {
                ptr: plug.as_ptr(),
                len: plug.len(),
            },
            Str {
                ptr: name.as_ptr(),
                len: name.len(),
            },
            state,
        );
    }
    abi::STATUS_OK
}

#[no_mangle]
pub unsafe extern "C" fn fencekit_plugin_check(
    device: *mut c_void,
    _deadline_ms: u64,
    error: *mut Buf,
) -> i32 {
    // SAFETY: per the ABI.
    unsafe {
        match fault(device) {
            Fault::None | Fault::BadState | Fault::DeepPlug => abi::STATUS_OK,
            other => fail(error, other),
        }
    }
}
