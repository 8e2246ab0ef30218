/*
 * fencekit external power plugin ABI, version 1.
 *
 * A plugin is a shared object that fencekit loads from its plugin directory
 * (default /usr/lib/fencekit/plugins, or --plugin-dir / $FENCEKIT_PLUGIN_DIR).
 * It exports the functions below with C linkage. fencekit loads each file once
 * per process and never unloads it.
 *
 * Rules both sides keep:
 *
 *  - Strings are never NUL-terminated: every string is a fencekit_str, a pointer
 *    and a length in bytes, and must be UTF-8. A null pointer is allowed only
 *    with length 0.
 *  - Every call that can fail returns a FENCEKIT_STATUS_* code and may write a
 *    message into the caller's fencekit_buf: at most `cap` bytes at `ptr`,
 *    setting `len` to the number written. Messages are for operators: never put
 *    a password or key in one.
 *  - Device calls carry `deadline_ms`, the milliseconds left until the call's
 *    deadline. A call should return by then; fencekit stops waiting at the
 *    deadline, reports a timeout, and leaves the call's thread to finish (it
 *    cannot be killed), so a call that overstays still runs to its end.
 *  - One device may be called from several threads at once: make it thread safe.
 *    fencekit calls fencekit_plugin_close once, after every other call on that
 *    device has returned (including abandoned ones).
 *  - `set` returning FENCEKIT_STATUS_OK means the device accepted the command,
 *    not that the plug changed: fencekit confirms with `status` until the plug
 *    reads the requested state, and only then reports a node fenced.
 *  - Nothing may unwind or longjmp out of these functions. (Rust plugins: use the
 *    fencekit-plugin-api crate; its export_plugin! macro catches panics and
 *    returns FENCEKIT_STATUS_PANIC. Build with panic=unwind.)
 *  - Secret parameters are passed as plain values in fencekit_plugin_open: the
 *    plugin has to send them to the device. Do not log them.
 *
 * fencekit refuses a plugin whose fencekit_plugin_abi_version() differs from
 * FENCEKIT_PLUGIN_ABI_VERSION, that lacks a required symbol, or whose
 * declaration is not valid (bad UTF-8, bad names, unknown types), naming the file.
 * A status, power-state or type code not listed here is an error, never a state.
 */

#ifndef FENCEKIT_PLUGIN_H
#define FENCEKIT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FENCEKIT_PLUGIN_ABI_VERSION 1u

/* Status codes. */
#define FENCEKIT_STATUS_OK           0
#define FENCEKIT_STATUS_FAILED       1  /* any other failure */
#define FENCEKIT_STATUS_TIMED_OUT    2  /* the deadline passed */
#define FENCEKIT_STATUS_AUTH         3  /* credentials refused */
#define FENCEKIT_STATUS_REFUSED      4  /* credentials may not do this */
#define FENCEKIT_STATUS_UNKNOWN_PLUG 5  /* no such plug on the device */
#define FENCEKIT_STATUS_UNSUPPORTED  6  /* the device has no such operation */
#define FENCEKIT_STATUS_BUSY         7  /* the device is busy */
#define FENCEKIT_STATUS_PROTOCOL     8  /* the device answered nonsense */
#define FENCEKIT_STATUS_BAD_PARAMS   9  /* open: unusable parameters */
#define FENCEKIT_STATUS_PANIC       10  /* the plugin caught its own crash */

/* Power states (status, list). */
#define FENCEKIT_POWER_ON      1u
#define FENCEKIT_POWER_OFF     2u
#define FENCEKIT_POWER_UNKNOWN 3u  /* the device answered: neither on nor off */

/* What set switches to. */
#define FENCEKIT_SWITCH_ON  1u
#define FENCEKIT_SWITCH_OFF 2u

/* Parameter types. Values reach open as text: integers in decimal, booleans as
 * "true" or "false", seconds as a decimal number ("1.5"), selects as the option. */
#define FENCEKIT_PARAM_STRING  0u
#define FENCEKIT_PARAM_INTEGER 1u
#define FENCEKIT_PARAM_BOOLEAN 2u
#define FENCEKIT_PARAM_SECONDS 3u
#define FENCEKIT_PARAM_SELECT  4u

/* `len` bytes of UTF-8 at `ptr`, no terminator. */
struct fencekit_str {
    const uint8_t *ptr;
    size_t len;
};

/* A buffer the caller owns: write at most `cap` bytes at `ptr`, set `len`. */
struct fencekit_buf {
    uint8_t *ptr;
    size_t cap;
    size_t len;
};

/* One parameter of the plugin's schema. fencekit validates users' values against
 * it (from configuration files, stdin, the environment), accepts a secret also as
 * NAME_file, NAME_script and NAME_env, and generates metadata and help from it. */
struct fencekit_param_spec {
    struct fencekit_str name;          /* lower case, digits, '_' */
    struct fencekit_str aliases;       /* other names, comma-separated; may be empty */
    uint32_t type;                     /* FENCEKIT_PARAM_* */
    struct fencekit_str options;       /* FENCEKIT_PARAM_SELECT: comma-separated */
    uint8_t has_default;
    struct fencekit_str default_value;
    uint8_t required;
    uint8_t secret;                    /* password or key: never printed */
    struct fencekit_str description;
};

/* What the plugin declares. Valid and unchanged while the library is loaded. */
struct fencekit_plugin_info {
    uint32_t abi_version;              /* FENCEKIT_PLUGIN_ABI_VERSION */
    struct fencekit_str name;          /* plugin = "NAME": lower case, digits, '-', '_' */
    struct fencekit_str summary;       /* one line */
    struct fencekit_str description;   /* a paragraph */
    struct fencekit_str url;           /* may be empty */
    uint8_t multi_plug;                /* several plugs: a plug must be named */
    uint8_t supports_cycle;            /* fencekit_plugin_cycle works */
    const struct fencekit_param_spec *params;
    size_t param_count;
};

/* One validated parameter given to open: canonical name, value as text.
 * Only the plugin's own parameters are passed; defaults are filled in. */
struct fencekit_param {
    struct fencekit_str key;
    struct fencekit_str value;
};

/* Called by list once per plug; the strings need only live for the call. */
typedef void (*fencekit_emit_plug)(void *ctx, struct fencekit_str plug,
                                   struct fencekit_str name, uint32_t state);

/* Returns FENCEKIT_PLUGIN_ABI_VERSION. Called first, before anything else. */
uint32_t fencekit_plugin_abi_version(void);

/* Returns the plugin's declaration, or NULL if it cannot be built. */
const struct fencekit_plugin_info *fencekit_plugin_info(void);

/* Builds a device from parameters and stores it in *device. Should do no I/O:
 * fencekit gives it 10 seconds. */
int32_t fencekit_plugin_open(const struct fencekit_param *params, size_t count,
                             void **device, struct fencekit_buf *error);

/* Frees a device. */
void fencekit_plugin_close(void *device);

/* Reads a plug's power state into *state (FENCEKIT_POWER_*). A plug is what the
 * user wrote: "3", "2:5" (unit:outlet), a name, or "chassis" for a BMC. */
int32_t fencekit_plugin_status(void *device, struct fencekit_str plug,
                               uint64_t deadline_ms, uint32_t *state,
                               struct fencekit_buf *error);

/* Tells a plug to switch to `to` (FENCEKIT_SWITCH_*). */
int32_t fencekit_plugin_set(void *device, struct fencekit_str plug, uint32_t to,
                            uint64_t deadline_ms, struct fencekit_buf *error);

/* Lists the device's plugs: emit(ctx, plug, name, state) for each, during the
 * call only. */
int32_t fencekit_plugin_list(void *device, uint64_t deadline_ms, void *ctx,
                             fencekit_emit_plug emit, struct fencekit_buf *error);

/* Checks that the device answers with the configured credentials. */
int32_t fencekit_plugin_check(void *device, uint64_t deadline_ms,
                              struct fencekit_buf *error);

/* Optional (required only when supports_cycle is set): the device's own
 * off-then-on. Used only when the user asks for method=cycle. */
int32_t fencekit_plugin_cycle(void *device, struct fencekit_str plug,
                              uint64_t deadline_ms, struct fencekit_buf *error);

#ifdef __cplusplus
}
#endif

#endif /* FENCEKIT_PLUGIN_H */
