/*
 * Hangar plugin support — accelerator plumbing: a device table, the listing
 * functions over it, allocation checking in the order accelerator.h states,
 * and container edits that fail with a message.
 *
 * The vendor's own logic stays in the plugin: discovering devices into an
 * hs_device_table, naming its slots in hs_slot_spec rows, and choosing the
 * edits for an hs_selection. Everything here follows accelerator.h to the
 * letter, so a plugin built on it passes `hangar-plugin verify` for these
 * parts.
 */
#ifndef HANGAR_SUPPORT_ACCELERATOR_H
#define HANGAR_SUPPORT_ACCELERATOR_H

#include <hangar/support/core.h>

/** Most devices one instance keeps in its table. */
#define HS_MAX_DEVICES 256

/** One device as the plugin discovered it. Empty strings are reported as NULL. */
typedef struct hs_device {
    char id[64];
    char model[128];
    char uuid[96];
    char hw_location[64];
    uint64_t memory_bytes;
    uint32_t processing_units;
    /** -1 when unknown (hs_devices_add sets it). */
    int32_t numa_node;
    /** HANGAR_HEALTH_* (hs_devices_add sets HEALTHY). */
    uint32_t health;
    char health_reason[160];
    char firmware_version[64];
    char board_id[64];
    char link_speed[48];
    /** Linux cpulist of the nearest CPUs ("0-15"), as sysfs local_cpulist says. */
    char cpu_affinity[256];
    /** device_id of the physical device a partition is carved from. */
    char parent_id[64];
    /** Further facts as one JSON object ("{\"board\":\"x\"}"), reported as extra_info_json. */
    char extra_info_json[256];
    /** The vendor's own number for the device (minor number, driver index); not reported. */
    int64_t index;
    /** The plugin's own: e.g. the index of this device in a side array of driver handles, which
     *  stays with the device when the table is sorted. Not reported. */
    size_t user;
} hs_device;

/** The devices of one instance, in the order list_devices reports them (the order container-local indices follow). */
typedef struct hs_device_table {
    size_t count;
    hs_device items[HS_MAX_DEVICES];
} hs_device_table;

/** Appends a zeroed device (numa_node -1, healthy); NULL when the table is full. */
static inline hs_device *hs_devices_add(hs_device_table *t)
{
    if (t->count >= HS_MAX_DEVICES)
        return NULL;
    hs_device *d = &t->items[t->count++];
    memset(d, 0, sizeof *d);
    d->numa_node = -1;
    d->health = HANGAR_HEALTH_HEALTHY;
    return d;
}

/** Index of the device with this id, or -1. */
static inline ptrdiff_t hs_devices_find(const hs_device_table *t, const char *id)
{
    for (size_t i = 0; id != NULL && i < t->count; i++)
        if (strcmp(t->items[i].id, id) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static inline int hs_device_index_order(const void *a, const void *b)
{
    int64_t x = ((const hs_device *)a)->index, y = ((const hs_device *)b)->index;
    return (x > y) - (x < y);
}

/** Sorts the table by hs_device.index (discovery order from readdir is arbitrary; list order must be stable). */
static inline void hs_devices_sort_by_index(hs_device_table *t)
{
    qsort(t->items, t->count, sizeof t->items[0], hs_device_index_order);
}

/**
 * Checks a Linux cpulist ("0-15,32-47") as the host parses cpu_affinity: NULL when valid,
 * else what is wrong. The host refuses a whole listing with a malformed one, so check a
 * value read from sysfs or config before reporting it.
 */
static inline const char *hs_cpulist_problem(const char *s)
{
    static const char shape[] = "expected a cpulist such as \"0-15,32-47\": CPU ids and low-high ranges separated by commas";
    for (const char *p = s;;) {
        char *end = NULL;
        if (*p < '0' || *p > '9')
            return shape;
        unsigned long low = strtoul(p, &end, 10), high = low;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9')
                return shape;
            high = strtoul(end + 1, &end, 10);
        }
        if (high < low || high - low >= 65536 || high > 1048575)
            return "each range must run from low to high, span fewer than 65536 CPUs and stay below CPU 1048576";
        if (*end == '\0')
            return NULL;
        if (*end != ',')
            return shape;
        p = end + 1;
    }
}

/** The text, or NULL for an empty string (the ABI's "absent"). */
static inline const char *hs_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/** list_devices over a table: every device, healthy or not, with every 1.2 fact it has. */
static inline hangar_status hs_list_devices(const hs_device_table *t, hangar_accel_device_sink sink, void *sink_context)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    for (size_t i = 0; i < t->count; i++) {
        const hs_device *d = &t->items[i];
        hangar_accel_device out;
        memset(&out, 0, sizeof out);
        out.struct_size = sizeof out;
        out.device_id = d->id;
        out.model = d->model;
        out.uuid = hs_or_null(d->uuid);
        out.hw_location = hs_or_null(d->hw_location);
        out.memory_bytes = d->memory_bytes;
        out.processing_units = d->processing_units;
        out.numa_node = d->numa_node;
        out.health = d->health;
        out.health_reason = hs_or_null(d->health_reason);
        out.firmware_version = hs_or_null(d->firmware_version);
        out.board_id = hs_or_null(d->board_id);
        out.link_speed = hs_or_null(d->link_speed);
        out.cpu_affinity = hs_or_null(d->cpu_affinity);
        out.parent_device_id = hs_or_null(d->parent_id);
        out.extra_info_json = hs_or_null(d->extra_info_json);
        HS_SINK(sink(sink_context, &out), "list_devices");
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Slots                                                                     */
/* ------------------------------------------------------------------------ */

/** Per-device capacity that stands for "the device's memory_bytes" (bytes slots of memory-sliced devices). */
#define HS_PER_DEVICE_MEMORY INT64_MIN

/** One slot the plugin offers, with what each device contributes. */
typedef struct hs_slot_spec {
    /** "<device_key>.<subtype>". */
    const char *name;
    /** HANGAR_SLOT_*. */
    uint32_t type;
    /** HANGAR_ALLOC_*. */
    uint32_t mode;
    /** Smallest amount per device for fractional slots (fixed point); 0 for discrete ones. */
    int64_t quantum;
    /** What one device contributes (fixed point, or bytes), or HS_PER_DEVICE_MEMORY. */
    int64_t per_device;
    int32_t exclusive;
    const char *display_name;
    const char *display_unit;
} hs_slot_spec;

/** What `d` contributes to `spec`: nothing while it is unhealthy (it stays listed, so the operator sees why). */
static inline int64_t hs_slot_capacity(const hs_slot_spec *spec, const hs_device *d)
{
    if (d->health == HANGAR_HEALTH_UNHEALTHY)
        return 0;
    return spec->per_device == HS_PER_DEVICE_MEMORY ? (int64_t)d->memory_bytes : spec->per_device;
}

/** list_slots: each spec with the sum over the table's devices as its capacity. */
static inline hangar_status hs_list_slots(const hs_slot_spec *specs, size_t spec_count, const hs_device_table *t,
                                          hangar_accel_slot_sink sink, void *sink_context)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_slots: sink is NULL");
    for (size_t s = 0; s < spec_count; s++) {
        hangar_accel_slot out;
        memset(&out, 0, sizeof out);
        out.struct_size = sizeof out;
        out.name = specs[s].name;
        out.type = specs[s].type;
        out.allocation_mode = specs[s].mode;
        out.quantum = specs[s].quantum;
        for (size_t i = 0; i < t->count; i++)
            out.capacity += hs_slot_capacity(&specs[s], &t->items[i]);
        out.exclusive = specs[s].exclusive;
        out.display_name = specs[s].display_name;
        out.display_unit = specs[s].display_unit;
        HS_SINK(sink(sink_context, &out), "list_slots");
    }
    return HANGAR_OK;
}

/** list_device_slots: one row per (spec, device) with a positive capacity. */
static inline hangar_status hs_list_device_slots(const hs_slot_spec *specs, size_t spec_count, const hs_device_table *t,
                                                 hangar_accel_device_slot_sink sink, void *sink_context)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_device_slots: sink is NULL");
    for (size_t s = 0; s < spec_count; s++) {
        for (size_t i = 0; i < t->count; i++) {
            int64_t capacity = hs_slot_capacity(&specs[s], &t->items[i]);
            if (capacity <= 0)
                continue;
            hangar_accel_device_slot out;
            memset(&out, 0, sizeof out);
            out.struct_size = sizeof out;
            out.slot_name = specs[s].name;
            out.device_id = t->items[i].id;
            out.capacity = capacity;
            HS_SINK(sink(sink_context, &out), "list_device_slots");
        }
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Allocations                                                               */
/* ------------------------------------------------------------------------ */

/** Entry `i` of an allocation, through its stride. */
static inline const hangar_accel_alloc_entry *hs_entry(const hangar_accel_allocation *a, size_t i)
{
    return HANGAR_ARRAY_AT(hangar_accel_alloc_entry, a->entries, a->entry_stride, i);
}

/** Allocation `i` of an array passed with a stride (gather_container_measures). */
static inline const hangar_accel_allocation *hs_allocation_at(const hangar_accel_allocation *allocations, size_t stride, size_t i)
{
    return HANGAR_ARRAY_AT(hangar_accel_allocation, allocations, stride, i);
}

/** Checks the shape of a host-filled allocation (sizes, stride) before its entries are read. */
static inline hangar_status hs_check_allocation_shape(const hangar_accel_allocation *a, const char *call)
{
    if (a == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: allocation is NULL", call);
    if (!HS_HAS_FIELD(hangar_accel_allocation, entry_stride, a->struct_size))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: allocation struct_size %" PRIu32 " is too small", call, a->struct_size);
    if (a->entry_count > 0 &&
        (a->entries == NULL || a->entry_stride < offsetof(hangar_accel_alloc_entry, amount) + sizeof(int64_t)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: the entries array is NULL or its stride %zu is too small", call,
                       a->entry_stride);
    return HANGAR_OK;
}

/** One device of a checked allocation. */
typedef struct hs_pick {
    /** Index in the device table. */
    size_t device;
    /** Index in the slot specs. */
    size_t spec;
    int64_t amount;
} hs_pick;

/** A checked allocation: at most one pick per device, sorted by device table order. */
typedef struct hs_selection {
    size_t count;
    hs_pick picks[HS_MAX_DEVICES];
} hs_selection;

/**
 * Checks every entry of `a` against the table and the slot specs, in the
 * order accelerator.h names the refusals, and fills `sel` sorted by device
 * order (so container-local indices follow list_devices whatever the entry
 * order). Emits nothing; on failure last_error says which entry and why.
 *   INVALID_ARGUMENT  NULL or malformed allocation, a slot not in `specs`
 *   NOT_FOUND         a device not in the table
 *   BAD_ALLOCATION    a device in two entries
 *   DEVICE_LOST       a device whose health is HANGAR_HEALTH_UNHEALTHY
 *   BAD_ALLOCATION    an amount <= 0, not whole (discrete) or not a
 *                     multiple of the quantum (fractional), or over the
 *                     device's capacity
 */
static inline hangar_status hs_select(const hangar_accel_allocation *a, const hs_device_table *t, const hs_slot_spec *specs,
                                      size_t spec_count, hs_selection *sel, const char *call)
{
    sel->count = 0;
    hangar_status st = hs_check_allocation_shape(a, call);
    if (st != HANGAR_OK)
        return st;
    for (size_t i = 0; i < a->entry_count; i++) {
        const hangar_accel_alloc_entry *e = hs_entry(a, i);
        if (e->slot_name == NULL || e->device_id == NULL)
            return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: entry %zu has a NULL slot name or device id", call, i);
        size_t spec = spec_count;
        for (size_t s = 0; s < spec_count; s++)
            if (strcmp(specs[s].name, e->slot_name) == 0)
                spec = s;
        if (spec == spec_count)
            return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: entry %zu names slot \"%.80s\", which is not one of this plugin's", call,
                           i, e->slot_name);
        ptrdiff_t found = hs_devices_find(t, e->device_id);
        if (found < 0)
            return hs_fail(HANGAR_E_NOT_FOUND, "%s: entry %zu names device \"%.80s\", which this plugin does not have", call, i,
                           e->device_id);
        size_t dev = (size_t)found;
        for (size_t k = 0; k < sel->count; k++)
            if (sel->picks[k].device == dev)
                return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: device \"%s\" is named in two entries; give each device once", call,
                               e->device_id);
        if (t->items[dev].health == HANGAR_HEALTH_UNHEALTHY)
            return hs_fail(HANGAR_E_DEVICE_LOST, "%s: device \"%s\" is unhealthy (%s)", call, e->device_id,
                           t->items[dev].health_reason[0] ? t->items[dev].health_reason : "no reason given");
        const hs_slot_spec *s = &specs[spec];
        int64_t capacity = hs_slot_capacity(s, &t->items[dev]);
        int64_t unit = s->mode == HANGAR_ALLOC_FRACTIONAL && s->quantum > 0 ? s->quantum
                       : s->type == HANGAR_SLOT_BYTES                       ? 1
                                                                            : HANGAR_AMOUNT_SCALE;
        char amount[48], cap[48], step[48];
        hs_format_amount(amount, sizeof amount, e->amount, s->type);
        hs_format_amount(cap, sizeof cap, capacity, s->type);
        hs_format_amount(step, sizeof step, unit, s->type);
        if (e->amount <= 0)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s of %s on device \"%s\"; amounts must be positive",
                           call, i, amount, s->name, e->device_id);
        if (e->amount % unit != 0)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s of %s on device \"%s\"; it must be a multiple of %s",
                           call, i, amount, s->name, e->device_id, step);
        if (e->amount > capacity)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s of %s on device \"%s\", which has %s", call, i,
                           amount, s->name, e->device_id, cap);
        /* Insert sorted by device order. */
        size_t at = sel->count;
        while (at > 0 && sel->picks[at - 1].device > dev) {
            sel->picks[at] = sel->picks[at - 1];
            at--;
        }
        sel->picks[at] = (hs_pick){.device = dev, .spec = spec, .amount = e->amount};
        sel->count++;
    }
    return HANGAR_OK;
}

/** How hs_selection_list writes each picked device. */
typedef enum hs_list_form {
    /** Container-local indices "0,1,2" (the order of list_devices). */
    HS_LIST_LOCAL,
    /** Device ids "2,5". */
    HS_LIST_IDS,
    /** The vendor's index numbers "2,5" (hs_device.index). */
    HS_LIST_INDEX,
    /** "<local>:<index>" pairs "0:2,1:5" (Backend.AI's *_GLOBAL_DEVICE_IDS). */
    HS_LIST_PAIRS,
    /** UUIDs. */
    HS_LIST_UUIDS,
} hs_list_form;

/** Writes the picked devices as a comma-separated list into `out`; false on overflow. */
static inline bool hs_selection_list(const hs_selection *sel, const hs_device_table *t, hs_list_form form, hs_strbuf *out)
{
    out->len = 0;
    out->overflow = false;
    out->text[0] = '\0';
    for (size_t k = 0; k < sel->count; k++) {
        const hs_device *d = &t->items[sel->picks[k].device];
        const char *sep = k > 0 ? "," : "";
        switch (form) {
        case HS_LIST_LOCAL: hs_strbuf_addf(out, "%s%zu", sep, k); break;
        case HS_LIST_IDS: hs_strbuf_addf(out, "%s%s", sep, d->id); break;
        case HS_LIST_INDEX: hs_strbuf_addf(out, "%s%" PRId64, sep, d->index); break;
        case HS_LIST_PAIRS: hs_strbuf_addf(out, "%s%zu:%" PRId64, sep, k, d->index); break;
        case HS_LIST_UUIDS: hs_strbuf_addf(out, "%s%s", sep, d->uuid); break;
        }
    }
    return !out->overflow;
}

/* ------------------------------------------------------------------------ */
/* Container edits                                                           */
/* ------------------------------------------------------------------------ */

/** Checks that the host's edits builder has every function up to `field` (a 1.0 builder has all of 1.0). */
#define HS_EDITS_HAVE(edits, field) ((edits) != NULL && HS_HAS_FIELD(hangar_container_edits, field, (edits)->struct_size) && (edits)->field != NULL)

/**
 * Calls one edits function and returns from the enclosing function with a
 * message if the builder lacks it or refuses: HS_EDIT(edits, add_env, "X", "1").
 */
#define HS_EDIT(edits, fn, ...)                                                                                     \
    do {                                                                                                            \
        if (!HS_EDITS_HAVE(edits, fn))                                                                              \
            return hs_fail(HANGAR_E_INCOMPATIBLE, "container_edits: the host's edits builder has no " #fn);        \
        hangar_status hs_edit_status_ = (edits)->fn((edits)->context, __VA_ARGS__);                                \
        if (hs_edit_status_ != HANGAR_OK)                                                                           \
            return hs_fail(hs_edit_status_, "container_edits: " #fn " was refused (status %d)", (int)hs_edit_status_); \
    } while (0)

/** HS_EDIT for use_host_ipc, which takes no argument. */
#define HS_EDIT_HOST_IPC(edits)                                                                                     \
    do {                                                                                                            \
        if (!HS_EDITS_HAVE(edits, use_host_ipc))                                                                    \
            return hs_fail(HANGAR_E_INCOMPATIBLE, "container_edits: the host's edits builder has no use_host_ipc"); \
        hangar_status hs_edit_status_ = (edits)->use_host_ipc((edits)->context);                                   \
        if (hs_edit_status_ != HANGAR_OK)                                                                           \
            return hs_fail(hs_edit_status_, "container_edits: use_host_ipc was refused (status %d)", (int)hs_edit_status_); \
    } while (0)

/** The argument checks container_edits starts with: a well-formed allocation and an edits builder. */
static inline hangar_status hs_check_edits_args(const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    if (a == NULL || edits == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "container_edits: allocation and edits must not be NULL");
    return hs_check_allocation_shape(a, "container_edits");
}

/* ------------------------------------------------------------------------ */
/* Info and measures                                                         */
/* ------------------------------------------------------------------------ */

/** get_info: writes the fields the host's struct_size has room for. */
static inline hangar_status hs_fill_info(hangar_accel_info *info, const char *device_key, const char *driver_version,
                                         const char *runtime_version, const char *extra_info_json, const char *no_device_reason)
{
    if (info == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "get_info: info is NULL");
    uint32_t size = info->struct_size;
    if (HS_HAS_FIELD(hangar_accel_info, device_key, size))
        info->device_key = device_key;
    if (HS_HAS_FIELD(hangar_accel_info, driver_version, size))
        info->driver_version = hs_or_null(driver_version);
    if (HS_HAS_FIELD(hangar_accel_info, runtime_version, size))
        info->runtime_version = hs_or_null(runtime_version);
    if (HS_HAS_FIELD(hangar_accel_info, extra_info_json, size))
        info->extra_info_json = hs_or_null(extra_info_json);
    if (HS_HAS_FIELD(hangar_accel_info, no_device_reason, size))
        info->no_device_reason = hs_or_null(no_device_reason);
    return HANGAR_OK;
}

/** Sends one measure (keys free of dots; a counter never decreases). */
static inline hangar_status hs_measure(hangar_accel_measure_sink sink, void *sink_context, const char *key, uint32_t unit,
                                       uint32_t measure_kind, const char *device_id, const char *container_id, double current,
                                       double capacity)
{
    hangar_accel_measure m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.key = key;
    m.unit = unit;
    m.measure_kind = measure_kind;
    m.device_id = device_id;
    m.container_id = container_id;
    m.current = current;
    m.capacity = capacity;
    HS_SINK(sink(sink_context, &m), "measures");
    return HANGAR_OK;
}

#endif /* HANGAR_SUPPORT_ACCELERATOR_H */
