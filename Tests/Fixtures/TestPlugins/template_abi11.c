/*
 * TEST FIXTURE: the vendor template as released with ABI 1.1, built by the tests against
 * Tests/Fixtures/ABI-1.1/include to prove a plugin of an older minor still loads and passes
 * `hangar-plugin verify` on the current host. One defect the stronger verifier found (a device
 * named twice in one allocation was accepted, against a rule the 1.1 header already stated)
 * is fixed below; nothing else differs from the released file.
 *
 * example_accel.c — a minimal but complete Hangar accelerator plugin.
 *
 * Copy this file, rename "example" everywhere, and replace the fake devices
 * with calls into your driver. It builds with nothing but a C11 compiler and
 * the Hangar headers (see Makefile and AUTHORING.md):
 *
 *   cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
 *      -I<hangar>/PluginAPI/include -o libhangar-accel-example.so example_accel.c
 *
 * What it does:
 *   - reports `device_count` fake devices (config, default 1) with ids "0", "1", ...
 *   - provides one discrete slot, "example.device" (one unit per device)
 *   - gives a container EXAMPLE_VISIBLE_DEVICES=<ids>, and exposes the host
 *     device node `device_path` (config, default none) if that path exists
 *
 * The rules every plugin follows (plugin.h and accelerator.h are the contract):
 *
 *   Status codes. Every fallible function returns a hangar_status: HANGAR_OK,
 *   a common code (1-99, plugin.h), an accelerator code (100-199,
 *   accelerator.h), or your own code >= HANGAR_E_PLUGIN_BASE. Pick the most
 *   specific one; the host maps them to typed errors. Always say why in
 *   last_error: the status says what kind of failure, the message says what to
 *   do about it.
 *
 *   struct_size. Every struct that crosses the boundary starts with its size.
 *   Structs YOU fill for the host (descriptor, devices, slots, measures) get
 *   sizeof() of your build. Structs the HOST fills (host services,
 *   allocations, container edits, and the info struct it asks you to fill)
 *   carry the host's size: never read or write a field that lies beyond it.
 *   Arrays come with a stride; index them with HANGAR_ARRAY_AT, never with [].
 *
 *   Ownership. Whoever allocates frees. Strings the host passes in live only
 *   for the call: copy what you keep. Strings you hand to a sink or an edits
 *   function live only for that callback: the host copies them. Strings you
 *   return from get_info must stay valid until destroy().
 *
 *   Sinks. List results go through callbacks, one item per call, on the
 *   calling thread, before your function returns. If a sink returns anything
 *   but HANGAR_OK, stop and return that status. Never keep a sink pointer.
 *
 *   Threads. This plugin sets thread_safety 0, so the host never calls two
 *   functions on one instance at once (it may still run different instances
 *   in parallel, so no mutable globals). Set HANGAR_THREAD_SAFE only if every
 *   instance function, last_error included, is safe to call concurrently.
 */
#define _POSIX_C_SOURCE 200809L /* for stat(); everything else is plain C11 */

#include <hangar/accelerator.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/** True if `field` of `type` lies entirely within the first `size` bytes (the struct_size check). */
#define EXAMPLE_HAS_FIELD(type, field, size) (offsetof(type, field) + sizeof(((type *)0)->field) <= (size_t)(size))

enum { EXAMPLE_MAX_DEVICES = 64 };

/* ------------------------------------------------------------------------ */
/* The instance: everything create() builds, freed by destroy().             */
/* ------------------------------------------------------------------------ */

typedef struct example_instance {
    /** The host's services; valid until destroy() returns. */
    const hangar_host_services *host;
    /** Number of devices (from config key device_count). */
    int device_count;
    /** Device ids "0".."N-1": stored here because sinks need strings that outlive the loop body. */
    char device_ids[EXAMPLE_MAX_DEVICES][12];
    /** Host path of the device node to expose, or "" for none (from config key device_path). */
    char device_path[256];
    /** Message of the most recent failed call, for last_error(). One per instance, never global. */
    char last_error[512];
} example_instance;

/** Records a failure message on the instance and returns `status`, so call sites read `return fail(...)`. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static hangar_status fail(example_instance *inst, hangar_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inst->last_error, sizeof inst->last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* ------------------------------------------------------------------------ */
/* create / destroy / last_error                                             */
/* ------------------------------------------------------------------------ */

/*
 * create() reads the configuration through the host's config accessors (so a
 * C plugin needs no JSON parser; config_json is the same document if you
 * prefer to parse it). On failure it writes an actionable message into `err`,
 * naming the key, and frees everything it allocated.
 */
static hangar_status example_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    (void)config_json;
    if (host == NULL || out_instance == NULL) {
        snprintf(err, err_len, "example: create() needs a host and an out_instance");
        return HANGAR_E_INVALID_ARGUMENT;
    }
    *out_instance = NULL;
    /* The config accessors are 1.0 fields, but check struct_size anyway: it is the habit that keeps you safe with later fields. */
    if (!EXAMPLE_HAS_FIELD(hangar_host_services, config_count, host->struct_size)) {
        snprintf(err, err_len, "example: the host services table is too old (struct_size %u)", (unsigned)host->struct_size);
        return HANGAR_E_INCOMPATIBLE;
    }

    int64_t count = 1;
    hangar_status st = host->config_int(host->host_context, "device_count", &count);
    if (st == HANGAR_E_NOT_FOUND) {
        count = 1; /* every key has a default */
    } else if (st != HANGAR_OK) {
        snprintf(err, err_len, "device_count: expected an integer between 0 and %d", EXAMPLE_MAX_DEVICES);
        return HANGAR_E_INVALID_CONFIG;
    } else if (count < 0 || count > EXAMPLE_MAX_DEVICES) {
        snprintf(err, err_len, "device_count: must be between 0 and %d, got %lld", EXAMPLE_MAX_DEVICES, (long long)count);
        return HANGAR_E_INVALID_CONFIG;
    }

    example_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL) {
        snprintf(err, err_len, "example: out of memory");
        return HANGAR_E_INTERNAL;
    }
    inst->host = host;
    inst->device_count = (int)count;
    for (int i = 0; i < inst->device_count; i++)
        snprintf(inst->device_ids[i], sizeof inst->device_ids[i], "%d", i);

    size_t len = 0;
    st = host->config_string(host->host_context, "device_path", inst->device_path, sizeof inst->device_path, &len);
    if (st == HANGAR_E_NOT_FOUND) {
        inst->device_path[0] = '\0';
    } else if (st == HANGAR_E_BUFFER_TOO_SMALL) {
        snprintf(err, err_len, "device_path: at most %zu characters, got %zu", sizeof inst->device_path - 1, len);
        free(inst); /* leave nothing allocated on failure */
        return HANGAR_E_INVALID_CONFIG;
    } else if (st != HANGAR_OK) {
        snprintf(err, err_len, "device_path: expected a string such as \"/dev/example0\"");
        free(inst);
        return HANGAR_E_INVALID_CONFIG;
    }

    /* A real plugin would now load its driver (dlopen the vendor library
     * lazily, so the plugin still loads on nodes without the driver) and
     * return HANGAR_E_DRIVER_UNAVAILABLE with a message if that fails. */
    *out_instance = inst;
    return HANGAR_OK;
}

static void example_destroy(void *instance)
{
    free(instance); /* called exactly once, after every other call on the instance has returned */
}

/* snprintf semantics: copy what fits, return the full length, so the host can size a buffer. */
static size_t example_last_error(void *instance, char *buf, size_t buf_len)
{
    const example_instance *inst = instance;
    int n = snprintf(buf_len > 0 ? buf : NULL, buf_len, "%s", inst != NULL ? inst->last_error : "");
    return n < 0 ? 0 : (size_t)n;
}

/* ------------------------------------------------------------------------ */
/* Discovery: info, devices, slots, allocation map                           */
/* ------------------------------------------------------------------------ */

static hangar_status example_get_info(void *instance, hangar_accel_info *info)
{
    example_instance *inst = instance;
    if (info == NULL)
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "get_info: info is NULL");
    /* The host filled info->struct_size: write only the fields that fit. */
    uint32_t size = info->struct_size;
    if (EXAMPLE_HAS_FIELD(hangar_accel_info, device_key, size))
        info->device_key = "example"; /* the slot prefix; usually the descriptor name */
    if (EXAMPLE_HAS_FIELD(hangar_accel_info, driver_version, size))
        info->driver_version = "0.1.0"; /* ask your driver */
    if (EXAMPLE_HAS_FIELD(hangar_accel_info, runtime_version, size))
        info->runtime_version = NULL;
    if (EXAMPLE_HAS_FIELD(hangar_accel_info, extra_info_json, size))
        info->extra_info_json = NULL;
    if (EXAMPLE_HAS_FIELD(hangar_accel_info, no_device_reason, size))
        info->no_device_reason = inst->device_count == 0 ? "device_count is 0" : NULL;
    return HANGAR_OK;
}

static hangar_status example_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    example_instance *inst = instance;
    if (sink == NULL)
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    for (int i = 0; i < inst->device_count; i++) {
        hangar_accel_device dev;
        memset(&dev, 0, sizeof dev);      /* fields you do not know stay 0 / NULL */
        dev.struct_size = sizeof dev;     /* you fill it, so it is your size */
        dev.device_id = inst->device_ids[i];
        dev.model = "Example Accelerator";
        dev.memory_bytes = 8ull << 30;
        dev.processing_units = 1;
        dev.numa_node = -1;               /* unknown; read /sys/bus/pci/devices/<bdf>/numa_node for real hardware */
        dev.health = HANGAR_HEALTH_HEALTHY;
        hangar_status st = sink(sink_context, &dev); /* the host copies what it keeps */
        if (st != HANGAR_OK)
            return fail(inst, st, "list_devices: stopped by the host (status %d)", (int)st);
    }
    return HANGAR_OK; /* zero devices is not an error: get_info says why */
}

static hangar_status example_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    example_instance *inst = instance;
    if (sink == NULL)
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_slots: sink is NULL");
    hangar_accel_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.struct_size = sizeof slot;
    slot.name = "example.device";                   /* must start with "<device_key>." */
    slot.type = HANGAR_SLOT_COUNT;
    slot.allocation_mode = HANGAR_ALLOC_DISCRETE;
    slot.quantum = 0;                               /* discrete: whole units */
    slot.capacity = inst->device_count * HANGAR_AMOUNT_SCALE; /* fixed point: 1.0 == HANGAR_AMOUNT_SCALE */
    slot.exclusive = 1;
    slot.display_name = "Example device";
    slot.display_unit = "device";
    hangar_status st = sink(sink_context, &slot);
    return st == HANGAR_OK ? HANGAR_OK : fail(inst, st, "list_slots: stopped by the host (status %d)", (int)st);
}

static hangar_status example_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    example_instance *inst = instance;
    if (sink == NULL)
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_device_slots: sink is NULL");
    for (int i = 0; i < inst->device_count; i++) {
        hangar_accel_device_slot row;
        memset(&row, 0, sizeof row);
        row.struct_size = sizeof row;
        row.slot_name = "example.device";
        row.device_id = inst->device_ids[i];
        row.capacity = HANGAR_AMOUNT_SCALE; /* one whole device */
        hangar_status st = sink(sink_context, &row);
        if (st != HANGAR_OK)
            return fail(inst, st, "list_device_slots: stopped by the host (status %d)", (int)st);
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Container edits                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Describes what a container needs for `allocation`. It must not change any
 * state (the agent calls it again after a restart), so validate everything
 * first and only then emit: a failed call must not leave half the edits.
 */
static hangar_status example_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    example_instance *inst = instance;
    if (allocation == NULL || edits == NULL)
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: allocation and edits must not be NULL");
    /* Host-filled structs: check their sizes before touching fields. */
    if (!EXAMPLE_HAS_FIELD(hangar_accel_allocation, entry_stride, allocation->struct_size) ||
        !EXAMPLE_HAS_FIELD(hangar_container_edits, add_resource_data, edits->struct_size))
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: allocation or edits struct is too small");
    if (allocation->entry_count > 0 &&
        (allocation->entries == NULL || allocation->entry_stride < offsetof(hangar_accel_alloc_entry, amount) + sizeof(int64_t)))
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: bad entries array");

    int chosen[EXAMPLE_MAX_DEVICES] = {0};
    for (size_t i = 0; i < allocation->entry_count; i++) {
        const hangar_accel_alloc_entry *e = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, allocation->entries, allocation->entry_stride, i);
        if (e->slot_name == NULL || e->device_id == NULL || strcmp(e->slot_name, "example.device") != 0)
            return fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: entry %zu is not an example.device entry", i);
        int index = -1;
        for (int d = 0; d < inst->device_count; d++)
            if (strcmp(inst->device_ids[d], e->device_id) == 0)
                index = d;
        if (index < 0)
            return fail(inst, HANGAR_E_NOT_FOUND, "container_edits: no device \"%.64s\"", e->device_id);
        if (e->amount != HANGAR_AMOUNT_SCALE)
            return fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: device \"%s\" can only be allocated whole (amount %lld, want %lld)",
                        e->device_id, (long long)e->amount, (long long)HANGAR_AMOUNT_SCALE);
        if (chosen[index]) /* the one change from the released 1.1 template: it accepted a device named twice */
            return fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: device \"%s\" is named twice", e->device_id);
        chosen[index] = 1;
    }
    if (allocation->entry_count == 0)
        return HANGAR_OK;

    /* EXAMPLE_VISIBLE_DEVICES=0,2: the convention your runtime reads to pick its devices. */
    char visible[EXAMPLE_MAX_DEVICES * 12] = "";
    for (int d = 0; d < inst->device_count; d++) {
        if (!chosen[d])
            continue;
        if (visible[0] != '\0')
            strcat(visible, ",");
        strcat(visible, inst->device_ids[d]);
    }
    hangar_status st = edits->add_env(edits->context, "EXAMPLE_VISIBLE_DEVICES", visible); /* the host copies the strings */
    if (st != HANGAR_OK)
        return fail(inst, st, "container_edits: add_env(EXAMPLE_VISIBLE_DEVICES) refused (status %d)", (int)st);

    /* Expose the device node only if it exists on this host; a real plugin
     * adds one node per allocated device (e.g. /dev/example<N>). */
    struct stat sb;
    if (inst->device_path[0] != '\0' && stat(inst->device_path, &sb) == 0) {
        st = edits->add_device_node(edits->context, inst->device_path, NULL, "rwm");
        if (st != HANGAR_OK)
            return fail(inst, st, "container_edits: add_device_node(%s) refused (status %d)", inst->device_path, (int)st);
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* The tables and the one exported symbol                                    */
/* ------------------------------------------------------------------------ */

/* JSON Schema of the config; the host validates the operator's config against it before create(). */
static const char example_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"device_count\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":64,\"default\":1,"
    "\"description\":\"How many fake devices to report.\"},"
    "\"device_path\":{\"type\":\"string\",\"default\":\"\","
    "\"description\":\"Host device node to expose to containers if it exists; empty for none.\"}"
    "}}";

/* The function table. Optional entries (release, measures) stay NULL; fields
 * appended in later ABI minors are zero-filled by the designated initializer. */
static const hangar_accelerator_functions example_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = example_create,
    .destroy = example_destroy,
    .last_error = example_last_error,
    .get_info = example_get_info,
    .list_devices = example_list_devices,
    .list_slots = example_list_slots,
    .list_device_slots = example_list_device_slots,
    .container_edits = example_container_edits,
};

static const char *const example_slot_names[] = {"example.device", NULL};

/* Static and read-only: the host may read it from any thread at any time, and never unloads the library. */
static const hangar_plugin_descriptor example_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_ACCELERATOR,
    .thread_safety = 0,
    .capabilities = 0, /* HANGAR_ACCEL_CAP_* bits: none of the optional features here */
    .name = "example", /* the name operators enable; lowercase letters, digits, '-' */
    .vendor = "Example Corp",
    .version = "0.1.0",
    .description = "Example accelerator plugin: a template to copy",
    .license = "Apache-2.0",
    .config_schema = example_schema,
    .static_slot_names = example_slot_names,
    .functions = &example_functions,
    /* Added in ABI 1.1. Setting a newer field is safe: a 1.0 host reads only the
     * first struct_size bytes it knows and ignores the rest. */
    .homepage = "https://example.com/hangar-plugin-example",
};

/*
 * The entry symbol: the only exported name (everything else is static, and
 * -fvisibility=hidden hides anything you forget). The host calls it to read
 * your metadata, e.g. for `hangar-plugin inspect`, possibly on a machine
 * without your hardware: so it must not allocate, open devices, load your
 * driver, start threads or touch globals. Return NULL for a host of another
 * ABI major; a plugin that needs a field newer than the host's minor would
 * also return NULL for an older minor.
 */
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &example_descriptor;
}
