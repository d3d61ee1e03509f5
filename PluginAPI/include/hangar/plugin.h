/*
 * Hangar plugin ABI, version 1 — the part every plugin kind shares.
 *
 * A Hangar plugin is a shared library that exports exactly one symbol,
 * HANGAR_PLUGIN_ENTRY_SYMBOL. The host calls it, gets a pointer to a static
 * descriptor, checks the ABI version, and from then on talks to the plugin
 * only through the function table the descriptor points to. The plugin talks
 * back only through the hangar_host_services table it is handed at create().
 * Plugins never link against the host.
 *
 * Compatibility rules (read these before changing anything in this folder):
 *   - Every struct that crosses the boundary starts with `uint32_t
 *     struct_size`, set by whoever fills the struct to sizeof() of the
 *     version it was compiled against. A reader never touches a field that
 *     lies beyond struct_size; a field beyond it reads as zero / NULL.
 *   - Structs and function tables only grow at the end. Nothing is ever
 *     removed, reordered or retyped within one ABI major.
 *   - Arrays of boundary structs are passed with an explicit stride (the
 *     element size the filler used); index them with HANGAR_ARRAY_AT.
 *   - A new minor version only appends. The host loads plugins built for an
 *     older minor of its major; it refuses any other major.
 *
 * History: 1.0 first release; 1.1 appended hangar_plugin_descriptor.homepage,
 * hangar_host_services.config_key and hangar_sched_session.attempts; 1.2
 * made the host apply schema defaults before create() (see config_schema),
 * added the measurement units HANGAR_UNIT_CELSIUS..HANGAR_UNIT_HERTZ and
 * appended hangar_accel_measure.measure_kind, the device facts
 * hangar_accel_device.firmware_version..parent_device_id and
 * hangar_accelerator_functions.prepare (accelerator.h); 1.3 appended
 * hangar_sched_session.fairshare, hangar_sched_input.now_us and the optional
 * hangar_scheduler_functions.explain with hangar_sched_factors (scheduler.h).
 *
 * Out of memory inside a plugin is reported as HANGAR_E_INSUFFICIENT.
 *
 * Memory: whoever allocates frees. Strings and arrays that the host passes in
 * are valid only for the duration of the call. Strings and structs that a
 * plugin hands to a host sink callback are valid only during that callback;
 * the host copies what it keeps. Static descriptor data lives as long as the
 * library, which the host never unloads.
 *
 * Threads: the entry symbol and the descriptor may be read from any thread at
 * any time. Instance functions follow the descriptor's thread_safety field.
 * Sink callbacks run synchronously on the calling thread, before the plugin
 * function returns; a plugin must not keep a sink pointer after returning.
 */
#ifndef HANGAR_PLUGIN_H
#define HANGAR_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Major version of this ABI. A change here means existing plugins must be rebuilt. */
#define HANGAR_ABI_MAJOR 1u
/** Minor version of this ABI. Bumped when fields or functions are appended. */
#define HANGAR_ABI_MINOR 3u
/** Major and minor packed as (major << 16) | minor, as passed to the entry symbol. */
#define HANGAR_ABI_VERSION ((HANGAR_ABI_MAJOR << 16) | HANGAR_ABI_MINOR)
/** Extracts the major version from a packed version. */
#define HANGAR_ABI_VERSION_MAJOR(v) (((uint32_t)(v)) >> 16)
/** Extracts the minor version from a packed version. */
#define HANGAR_ABI_VERSION_MINOR(v) (((uint32_t)(v)) & 0xffffu)

/**
 * Name of the one symbol every plugin library exports. The major version is
 * part of the name so that a future v2 host can tell v1 libraries apart
 * before calling anything.
 */
#define HANGAR_PLUGIN_ENTRY_SYMBOL "hangar_plugin_entry_v1"

/** Marks a symbol as exported from a plugin library built with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define HANGAR_EXPORT __attribute__((visibility("default")))
#else
#define HANGAR_EXPORT
#endif

/** Address of element `i` of a boundary array whose elements are `stride` bytes apart. */
#define HANGAR_ARRAY_AT(type, base, stride, i) \
    ((const type *)((const unsigned char *)(base) + (size_t)(stride) * (size_t)(i)))

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Every plugin function that can fail returns a hangar_status.
 * Ranges: 0 success; 1–99 common codes defined here; 100–199 accelerator,
 * 200–299 storage, 300–399 scheduler and agent selector codes (defined in
 * the kind headers); 400–999 reserved for future Hangar use; 1000 and above
 * belong to the plugin (the host reports them as "plugin-specific" together
 * with the instance's last error message). Negative values are invalid and
 * are reported by the host as a contract violation.
 */
typedef int32_t hangar_status;

/** The call succeeded. */
#define HANGAR_OK 0
/** An argument was NULL, out of range or malformed; nothing was changed. */
#define HANGAR_E_INVALID_ARGUMENT 1
/** The named object (device, folder, config key, ...) does not exist. */
#define HANGAR_E_NOT_FOUND 2
/** The plugin does not implement this operation or option. */
#define HANGAR_E_UNSUPPORTED 3
/** A caller buffer was too small; the required size was written to the size out-parameter. */
#define HANGAR_E_BUFFER_TOO_SMALL 4
/** The plugin's configuration is invalid; last_error says which key and why. */
#define HANGAR_E_INVALID_CONFIG 5
/** The host or the environment is incompatible (ABI, driver version, kernel). */
#define HANGAR_E_INCOMPATIBLE 6
/** Temporarily unavailable; the same call may succeed if retried later. */
#define HANGAR_E_BUSY 7
/** Not enough of a resource (capacity, memory, quota) to do what was asked. */
#define HANGAR_E_INSUFFICIENT 8
/** An operating-system or I/O call failed; last_error carries errno text. */
#define HANGAR_E_IO 9
/** The process is not allowed to do this (permissions, capabilities). */
#define HANGAR_E_PERMISSION 10
/** The object to be created already exists. */
#define HANGAR_E_EXISTS 11
/** The plugin hit a bug or an unexpected state; last_error says what. */
#define HANGAR_E_INTERNAL 12
/** The plugin's underlying driver or library is missing or failed to load. */
#define HANGAR_E_DRIVER_UNAVAILABLE 13
/** First code a plugin may define for itself. */
#define HANGAR_E_PLUGIN_BASE 1000

/* ------------------------------------------------------------------------ */
/* Plugin kinds, capability and thread-safety flags                          */
/* ------------------------------------------------------------------------ */

/** Kinds of plugin, as the descriptor's `kind` field (fixed-width, never a C enum). */
#define HANGAR_KIND_ACCELERATOR 1u
/** A storage backend serving virtual folders on one volume. */
#define HANGAR_KIND_STORAGE 2u
/** A scheduler choosing the next pending session of a resource group. */
#define HANGAR_KIND_SCHEDULER 3u
/** An agent selector placing a session's kernels on agents. */
#define HANGAR_KIND_AGENT_SELECTOR 4u

/**
 * Instances of this plugin may be called concurrently from several threads,
 * and several instances may exist at once. Without this flag the host
 * serialises every call on one instance (calls on different instances may
 * still run in parallel unless HANGAR_THREAD_SINGLE_INSTANCE is also set).
 */
#define HANGAR_THREAD_SAFE 1u
/** At most one instance of this plugin may exist in a process (e.g. a driver that keeps global state). */
#define HANGAR_THREAD_SINGLE_INSTANCE 2u

/* ------------------------------------------------------------------------ */
/* Host services                                                             */
/* ------------------------------------------------------------------------ */

/** Log levels for hangar_host_services.log. */
#define HANGAR_LOG_TRACE 0
#define HANGAR_LOG_DEBUG 1
#define HANGAR_LOG_INFO 2
#define HANGAR_LOG_NOTICE 3
#define HANGAR_LOG_WARNING 4
#define HANGAR_LOG_ERROR 5
#define HANGAR_LOG_CRITICAL 6

/**
 * What the host offers a plugin instance. Passed to create(); the pointer and
 * everything it points to stay valid until destroy() of that instance
 * returns. All functions may be called from any thread, including threads the
 * plugin starts itself, and never call back into the plugin.
 *
 * Config accessors read the instance's configuration (the same document as
 * the config_json given to create()) so that C plugins need no JSON parser.
 * A path names a value with dots and array indices: "devices.0.memory"; the
 * empty path "" names the whole config table. They return HANGAR_OK,
 * HANGAR_E_NOT_FOUND when the path does not exist, or
 * HANGAR_E_INVALID_ARGUMENT when the value has another type (an array or table
 * asked for as a scalar, a string that is not a number, ...). The host has
 * already checked the config against the descriptor's config_schema and
 * filled in its defaults (see hangar_plugin_descriptor.config_schema), so a
 * plugin that declares a schema sees only keys, types and ranges the schema
 * allows, and every key with a `default` is present.
 */
typedef struct hangar_host_services {
    /** sizeof(hangar_host_services) as the host compiled it. Check it before using a field added after 1.0. */
    uint32_t struct_size;
    /** The host's packed ABI version (HANGAR_ABI_VERSION of the host). */
    uint32_t abi_version;
    /** Opaque host data; pass it back as the first argument of every function below. */
    void *host_context;

    /** Writes one log line under the plugin's name. `message` is UTF-8, copied before return. */
    void (*log)(void *host_context, int32_t level, const char *message);
    /** Monotonic clock in nanoseconds, for measuring intervals. */
    int64_t (*monotonic_ns)(void *host_context);

    /**
     * Copies the string at `path` into `buf` (NUL-terminated) and stores its length
     * without the NUL in `*out_len`. Numbers and booleans are rendered as text.
     * Returns HANGAR_E_BUFFER_TOO_SMALL (with `*out_len` set) if `buf_len` is not enough.
     */
    hangar_status (*config_string)(void *host_context, const char *path, char *buf, size_t buf_len, size_t *out_len);
    /** Reads an integer (or a string holding one, with an optional K/M/G/T binary suffix) at `path`. */
    hangar_status (*config_int)(void *host_context, const char *path, int64_t *out);
    /** Reads a number at `path`. */
    hangar_status (*config_double)(void *host_context, const char *path, double *out);
    /** Reads a boolean at `path`. */
    hangar_status (*config_bool)(void *host_context, const char *path, int32_t *out);
    /** Number of elements of the array (or keys of the table) at `path`; -1 if the path does not exist or names a scalar. */
    int64_t (*config_count)(void *host_context, const char *path);

    /* ---- added in ABI 1.1 ---- */

    /**
     * Copies the name of the `index`-th key of the table at `path` into `buf`
     * (NUL-terminated) and its length into `*out_len`, so a plugin can name
     * keys it does not know. HANGAR_E_NOT_FOUND past the last key or when
     * `path` is not a table; HANGAR_E_BUFFER_TOO_SMALL as for config_string.
     */
    hangar_status (*config_key)(void *host_context, const char *path, int64_t index, char *buf, size_t buf_len, size_t *out_len);
} hangar_host_services;

/* ------------------------------------------------------------------------ */
/* The descriptor and the entry symbol                                       */
/* ------------------------------------------------------------------------ */

/**
 * Everything the host needs to know about a plugin without creating it.
 * Returned by the entry symbol; must point to static, read-only storage that
 * lives as long as the library.
 */
typedef struct hangar_plugin_descriptor {
    /** sizeof(hangar_plugin_descriptor) as the plugin compiled it. */
    uint32_t struct_size;
    /** HANGAR_ABI_MAJOR the plugin was built against. The host refuses any other value. */
    uint16_t abi_major;
    /** HANGAR_ABI_MINOR the plugin was built against. */
    uint16_t abi_minor;
    /** One of HANGAR_KIND_*. */
    uint32_t kind;
    /** HANGAR_THREAD_* flags. */
    uint32_t thread_safety;
    /** Kind-specific capability bits (HANGAR_ACCEL_CAP_*, HANGAR_STORAGE_CAP_*, ...). */
    uint64_t capabilities;
    /**
     * The plugin key, unique per process: 1-63 lowercase letters, digits and
     * '-', starting with a letter (e.g. "cuda", "rebellions-atom", "vfs").
     * For accelerators every static slot name must start with "<name>.", and
     * every slot an instance reports must start with its device key (see
     * hangar_accel_info.device_key; usually the same as the name).
     */
    const char *name;
    /** Who ships the plugin, e.g. "NVIDIA", "Hangar". */
    const char *vendor;
    /** The plugin's own version (semver recommended), independent of the ABI version. */
    const char *version;
    /** One line saying what the plugin does. */
    const char *description;
    /** SPDX license identifier, e.g. "Apache-2.0". */
    const char *license;
    /**
     * JSON Schema (a draft 2020-12 subset) of the plugin's configuration
     * object, or NULL: any config object is accepted and passed unchanged.
     *
     * The host enforces exactly these keywords and refuses to load a plugin
     * whose schema uses any other assertion keyword (so no rule is silently
     * unchecked): type ("object", "array", "string", "integer", "number",
     * "boolean", or an array of them), properties, required,
     * additionalProperties (a boolean only), items (one schema), enum,
     * minimum, maximum, minLength, maxLength, minItems, maxItems. It ignores
     * the annotations description, default, title, examples, format,
     * deprecated, $schema, $id and $comment, except that:
     *
     * Guarantee (ABI 1.2): before create() the host fills in `default`
     * values — of every property missing from an object that is present (the
     * root object is always present), recursively, and of the items of
     * arrays — and then checks the result against the schema. A config that
     * violates it never reaches create(): the operator is told which key is
     * wrong and why. A plugin therefore reads keys with defaults without a
     * fallback of its own, and needs no type or range checks of its own for
     * what the schema says (checks across keys remain the plugin's job).
     * Hosts before 1.2 validated but did not fill defaults: a plugin that
     * relies on them returns NULL from its entry symbol for a host minor < 2.
     */
    const char *config_schema;
    /**
     * For accelerators: the slot names the plugin can provide, NULL-terminated,
     * or NULL if they depend on configuration (they are then checked at create()).
     * Ignored for other kinds.
     */
    const char *const *static_slot_names;
    /**
     * The kind's function table: a const hangar_accelerator_functions*,
     * hangar_storage_functions*, hangar_scheduler_functions* or
     * hangar_agent_selector_functions*. Its first field is its own size.
     */
    const void *functions;

    /* ---- added in ABI 1.1 (absent when struct_size ends before it) ---- */

    /** Where to read about the plugin and report problems (URL), or NULL. */
    const char *homepage;
} hangar_plugin_descriptor;

/**
 * Signature of HANGAR_PLUGIN_ENTRY_SYMBOL.
 *
 * `host_abi_version` is the host's packed HANGAR_ABI_VERSION. The function
 * must return the address of a static descriptor (or NULL if it cannot serve
 * any compatible version), must not allocate, start threads, open devices or
 * otherwise have side effects, and may be called any number of times from
 * any thread.
 *
 * The host refuses a descriptor whose abi_major differs from its own. It
 * accepts any abi_minor of its major: for an older minor it treats fields
 * past struct_size as absent; for a newer one it ignores the fields it does
 * not know, so a plugin that needs something newer than the host's minor
 * must return NULL here when host_abi_version is too old.
 */
typedef const hangar_plugin_descriptor *(*hangar_plugin_entry_fn)(uint32_t host_abi_version);

/**
 * Fields every kind's function table starts with, in this order, right after
 * struct_size. Spelled out in each table (not nested) so that tables stay
 * flat and append-only.
 *
 * create(host, config_json, out_instance, err, err_len):
 *   Makes one instance from a JSON object config (never NULL; "{}" when the
 *   operator gave none). On success stores an opaque non-NULL pointer in
 *   *out_instance and returns HANGAR_OK. On failure returns a status, writes
 *   a NUL-terminated message saying what was wrong and how to fix it into
 *   `err` (truncated to err_len; `err` is never NULL and err_len at least
 *   256), and leaves nothing allocated. `host` stays valid until destroy()
 *   returns. May block (driver init).
 * destroy(instance):
 *   Releases everything the instance holds. Called exactly once per
 *   successful create(), after every other call on it has returned.
 * last_error(instance, buf, buf_len):
 *   Copies the message of the most recent failed call on this instance
 *   into buf (NUL-terminated, truncated to buf_len; buf may be NULL when
 *   buf_len is 0) and returns its full length without the NUL,
 *   snprintf-style; 0 if there is none. A later successful call may leave
 *   the message in place. The host reads it on the thread that made the
 *   failing call, right after that call returns and before any other call on
 *   that thread, so a HANGAR_THREAD_SAFE plugin should keep the message per
 *   thread (thread-local storage) or under its own lock.
 */

#ifdef __cplusplus
}
#endif

#endif /* HANGAR_PLUGIN_H */
