/*
 * The vendor template (Tools/PluginTemplate/example_accel.c) with one defect, chosen by one
 * -DBREAK_<NAME> switch, for the conformance suite's broken-fixture table: each defect breaks
 * exactly the rule one check enforces, and the test asserts that check fails and names it.
 *
 * The template is included as it is; this file only wraps its descriptor, function table and
 * sinks. Without a BREAK_ switch it is the template itself; with -DFX_WITH_PREPARE it also has
 * a correct prepare/release pair and container measures (the base for the BREAK_PREPARE_*,
 * BREAK_RELEASE_* and BREAK_CONTAINER_* defects).
 */
#define hangar_plugin_entry_v1 template_entry_v1
#include "../../../Tools/PluginTemplate/example_accel.c"
#undef hangar_plugin_entry_v1

#if defined(BREAK_PREPARE_NOT_IDEMPOTENT) || defined(BREAK_PREPARE_ACCEPTS_UNKNOWN) || defined(BREAK_RELEASE_UNKNOWN) || \
    defined(BREAK_CONTAINER_MEASURE_ID)
#define FX_WITH_PREPARE 1
#endif

static hangar_plugin_descriptor fx_descriptor;
static hangar_plugin_descriptor fx_other_descriptor;
static hangar_accelerator_functions fx_functions;

/* ---- sinks that tamper with what the template reports ---- */

typedef struct fx_sink {
    void *ctx;
    hangar_accel_device_sink device;
    hangar_accel_slot_sink slot;
    hangar_accel_device_slot_sink row;
    hangar_accel_measure_sink measure;
    int count;
} fx_sink;

static hangar_status fx_device_sink(void *c, const hangar_accel_device *in)
{
    fx_sink *s = c;
    hangar_accel_device d = *in;
    s->count++;
#ifdef BREAK_DUPLICATE_ID
    if (s->count == 3)
        d.device_id = "1";
#endif
#ifdef BREAK_NO_MODEL
    d.model = NULL;
#endif
#ifdef BREAK_NUMA
    d.numa_node = -2;
#endif
#ifdef BREAK_HEALTH
    d.health = 7;
#endif
#ifdef BREAK_CPU_AFFINITY
    d.cpu_affinity = "0-";
#endif
#ifdef BREAK_EXTRA_INFO
    d.extra_info_json = "[1]";
#endif
#ifdef BREAK_PARENT
    d.parent_device_id = "nope";
#endif
#ifdef BREAK_DEVICE_STRUCT_SIZE
    d.struct_size = 8; /* e.g. sizeof a pointer instead of the struct */
#endif
    return s->device(s->ctx, &d);
}

static hangar_status fx_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
#ifdef BREAK_LIST_DEVICES
    (void)instance; (void)sink; (void)ctx;
    return hs_fail(HANGAR_E_IO, "list_devices: cannot read the driver's device table");
#else
    fx_sink s = {.ctx = ctx, .device = sink};
    return example_list_devices(instance, sink ? fx_device_sink : NULL, &s);
#endif
}

static hangar_status fx_slot_sink(void *c, const hangar_accel_slot *in)
{
    fx_sink *s = c;
    hangar_accel_slot slot = *in;
#ifdef BREAK_SLOT_TYPE
    slot.type = 9;
#endif
#ifdef BREAK_FRACTIONAL_QUANTUM
    slot.allocation_mode = HANGAR_ALLOC_FRACTIONAL;
    slot.quantum = 0;
#endif
#ifdef BREAK_CAPACITY_SUM
    slot.capacity += 1;
#endif
    hangar_status st = s->slot(s->ctx, &slot);
#if defined(BREAK_SLOT_PREFIX) || defined(BREAK_SLOT_TWICE) || defined(BREAK_UNDECLARED_SLOT)
    if (st == HANGAR_OK) {
#if defined(BREAK_SLOT_PREFIX)
        slot.name = "zzz.device";
        slot.capacity = 0;
#elif defined(BREAK_UNDECLARED_SLOT)
        slot.name = "example.extra";
        slot.capacity = 0;
#endif
        st = s->slot(s->ctx, &slot);
    }
#endif
    return st;
}

static hangar_status fx_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    fx_sink s = {.ctx = ctx, .slot = sink};
    return example_list_slots(instance, sink ? fx_slot_sink : NULL, &s);
}

static hangar_status fx_row_sink(void *c, const hangar_accel_device_slot *in)
{
    fx_sink *s = c;
    hangar_status st = s->row(s->ctx, in);
#ifdef BREAK_SINK_STOP
    (void)st;
    return HANGAR_OK; /* swallows the host's refusal: the listing goes on */
#else
    return st;
#endif
}

static hangar_status fx_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    fx_sink s = {.ctx = ctx, .row = sink};
    hangar_status st = example_list_device_slots(instance, sink ? fx_row_sink : NULL, &s);
#ifdef BREAK_ROW_UNKNOWN
    if (st == HANGAR_OK) {
        hangar_accel_device_slot row = {.struct_size = sizeof row, .slot_name = "example.device", .device_id = "nope", .capacity = 0};
        st = sink(ctx, &row);
    }
#endif
    return st;
}

/* ---- info ---- */

static hangar_status fx_get_info(void *instance, hangar_accel_info *info)
{
    hangar_status st = example_get_info(instance, info);
#ifdef BREAK_DEVICE_KEY_NULL
    info->device_key = NULL;
#endif
#ifdef BREAK_DEVICE_KEY
    info->device_key = "other";
#endif
#ifdef BREAK_NO_DEVICE_REASON
    info->no_device_reason = NULL;
#endif
    return st;
}

/* ---- container edits ---- */

/* The allocation with entries that `keep` accepts, copied into `entries`. */
static hangar_accel_allocation fx_filter(const hangar_accel_allocation *a, hangar_accel_alloc_entry *entries,
                                         int (*keep)(const example *, const hangar_accel_alloc_entry *, const hangar_accel_alloc_entry *, size_t),
                                         const example *ex)
{
    hangar_accel_allocation out = *a;
    size_t n = 0;
    for (size_t i = 0; i < a->entry_count && n < HS_MAX_DEVICES; i++) {
        const hangar_accel_alloc_entry *e = hs_entry(a, i);
        if (keep(ex, e, entries, n))
            entries[n++] = *e;
    }
    out.entries = entries;
    out.entry_count = n;
    out.entry_stride = sizeof entries[0];
    return out;
}

static int fx_keep_positive(const example *ex, const hangar_accel_alloc_entry *e, const hangar_accel_alloc_entry *kept, size_t n)
{
    (void)ex; (void)kept; (void)n;
    return e->amount > 0;
}

static int fx_keep_first_of_device(const example *ex, const hangar_accel_alloc_entry *e, const hangar_accel_alloc_entry *kept, size_t n)
{
    (void)ex;
    for (size_t i = 0; i < n; i++)
        if (strcmp(kept[i].device_id, e->device_id) == 0)
            return 0;
    return 1;
}

static int fx_keep_healthy(const example *ex, const hangar_accel_alloc_entry *e, const hangar_accel_alloc_entry *kept, size_t n)
{
    (void)kept; (void)n;
    ptrdiff_t d = hs_devices_find(&ex->devices, e->device_id);
    return d < 0 || ex->devices.items[d].health != HANGAR_HEALTH_UNHEALTHY;
}

static hangar_status fx_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    example *ex = instance;
    hangar_accel_alloc_entry kept[HS_MAX_DEVICES];
    (void)ex; (void)kept;
#ifdef BREAK_NULL_ARGS
    if (a == NULL || edits == NULL)
        return HANGAR_OK;
#endif
#ifdef BREAK_EDITS_FAIL
    (void)a; (void)edits;
    return hs_fail(HANGAR_E_INTERNAL, "container_edits: the driver refused every allocation");
#endif
#ifdef BREAK_NOT_REPEATABLE
    static int calls;
    char counter[16];
    snprintf(counter, sizeof counter, "%d", ++calls);
    if (a != NULL && a->entry_count > 0)
        HS_EDIT(edits, add_env, "EXAMPLE_CALL", counter);
#endif
#ifdef BREAK_EMPTY_EMITS
    if (a != NULL && a->entry_count == 0)
        HS_EDIT(edits, add_env, "EXAMPLE_VISIBLE_DEVICES", "");
#endif
#ifdef BREAK_PARTIAL_EDITS
    if (a != NULL && edits != NULL)
        HS_EDIT(edits, add_env, "EXAMPLE_STARTED", "1"); /* emitted before the entries are checked */
#endif
#if defined(BREAK_UNKNOWN_SLOT_STATUS) || defined(BREAK_UNKNOWN_DEVICE_STATUS)
    for (size_t i = 0; a != NULL && i < a->entry_count; i++) {
        const hangar_accel_alloc_entry *e = hs_entry(a, i);
#ifdef BREAK_UNKNOWN_SLOT_STATUS
        if (strcmp(e->slot_name, "example.device") != 0)
            return hs_fail(HANGAR_E_NOT_FOUND, "container_edits: no slot %s", e->slot_name);
#else
        if (hs_devices_find(&ex->devices, e->device_id) < 0)
            return hs_fail(HANGAR_E_INVALID_ARGUMENT, "container_edits: no device %s", e->device_id);
#endif
    }
#endif
#if defined(BREAK_ZERO_AMOUNT) || defined(BREAK_DUPLICATE_DEVICE) || defined(BREAK_UNHEALTHY)
    if (a != NULL && edits != NULL) {
#if defined(BREAK_ZERO_AMOUNT)
        hangar_accel_allocation f = fx_filter(a, kept, fx_keep_positive, ex);
#elif defined(BREAK_DUPLICATE_DEVICE)
        hangar_accel_allocation f = fx_filter(a, kept, fx_keep_first_of_device, ex);
#else
        hangar_accel_allocation f = fx_filter(a, kept, fx_keep_healthy, ex);
#endif
        return example_container_edits(instance, &f, edits);
    }
#endif
#if defined(BREAK_PARTIAL_AMOUNT) || defined(BREAK_OVER_CAPACITY)
    if (a != NULL && edits != NULL) {
        hangar_accel_allocation f = *a;
        for (size_t i = 0; i < a->entry_count && i < HS_MAX_DEVICES; i++) {
            kept[i] = *hs_entry(a, i);
#ifdef BREAK_PARTIAL_AMOUNT
            if (kept[i].amount > 0 && kept[i].amount < HANGAR_AMOUNT_SCALE)
                kept[i].amount = HANGAR_AMOUNT_SCALE; /* rounds half a device up */
#else
            if (kept[i].amount > HANGAR_AMOUNT_SCALE)
                kept[i].amount = HANGAR_AMOUNT_SCALE; /* quietly gives less than asked */
#endif
        }
        f.entries = kept;
        f.entry_stride = sizeof kept[0];
        return example_container_edits(instance, &f, edits);
    }
#endif
#ifdef BREAK_ORDER
    /* Numbers device nodes in entry order instead of list order. */
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &ex->devices, example_slots, EXAMPLE_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK)
        return st;
    for (size_t i = 0; i < a->entry_count; i++) {
        char host_path[600], container_path[64];
        ptrdiff_t d = hs_devices_find(&ex->devices, hs_entry(a, i)->device_id);
        hs_pathf(host_path, sizeof host_path, "%s/example%" PRId64, ex->dev_root, ex->devices.items[d].index);
        snprintf(container_path, sizeof container_path, "/dev/example%zu", i);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    }
    return HANGAR_OK;
#endif
    hangar_status result = example_container_edits(instance, a, edits);
#ifdef BREAK_SILENT_REFUSAL
    if (result != HANGAR_OK)
        hs_thread_error[0] = '\0';
#endif
    return result;
}

/* ---- prepare, release, container measures (FX_WITH_PREPARE) ---- */

#ifdef FX_WITH_PREPARE
/* Container ids prepared so far (a real plugin would keep driver handles). */
static char fx_prepared[8][64];

static int fx_prepared_index(const char *id)
{
    for (int i = 0; i < 8; i++)
        if (id != NULL && strcmp(fx_prepared[i], id) == 0)
            return i;
    return -1;
}

static hangar_status fx_prepare(void *instance, const hangar_accel_allocation *a)
{
    example *ex = instance;
    hs_selection sel;
#ifndef BREAK_PREPARE_ACCEPTS_UNKNOWN
    hangar_status st = hs_select(a, &ex->devices, example_slots, EXAMPLE_SLOT_COUNT, &sel, "prepare");
    if (st != HANGAR_OK)
        return st;
#else
    (void)ex; (void)sel;
    if (a == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "prepare: allocation is NULL");
#endif
    if (fx_prepared_index(a->container_id) >= 0) {
#ifdef BREAK_PREPARE_NOT_IDEMPOTENT
        return hs_fail(HANGAR_E_EXISTS, "prepare: %s is already prepared", a->container_id);
#else
        return HANGAR_OK;
#endif
    }
    int free_slot = fx_prepared_index("");
    if (free_slot < 0)
        return hs_fail(HANGAR_E_INSUFFICIENT, "prepare: no room for another partition");
    snprintf(fx_prepared[free_slot], sizeof fx_prepared[free_slot], "%s", a->container_id);
    return HANGAR_OK;
}

static hangar_status fx_release(void *instance, const hangar_accel_allocation *a)
{
    (void)instance;
    if (a == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "release: allocation is NULL");
    int i = fx_prepared_index(a->container_id);
#ifdef BREAK_RELEASE_UNKNOWN
    if (i < 0)
        return hs_fail(HANGAR_E_NOT_FOUND, "release: %s was never prepared", a->container_id);
#endif
    if (i >= 0)
        fx_prepared[i][0] = '\0';
    return HANGAR_OK;
}

static hangar_status fx_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                           hangar_accel_measure_sink sink, void *ctx)
{
    (void)instance;
    for (size_t i = 0; i < count; i++) {
        const hangar_accel_allocation *a = hs_allocation_at(allocations, stride, i);
#ifdef BREAK_CONTAINER_MEASURE_ID
        const char *container = NULL;
#else
        const char *container = a->container_id;
#endif
        hangar_status st = hs_measure(sink, ctx, "example_busy", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, NULL, container, 5, 100);
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}
#endif

/* ---- measures ---- */

static hangar_status fx_measure_sink(void *c, const hangar_accel_measure *in)
{
    fx_sink *s = c;
    hangar_accel_measure m = *in;
#ifdef BREAK_MEASURE_UNIT
    m.unit = 42;
#endif
#ifdef BREAK_MEASURE_DEVICE
    m.device_id = "nope";
#endif
#ifdef BREAK_COUNTER_DECREASES
    static double drift;
    if (m.measure_kind == HANGAR_MEASURE_COUNTER)
        m.current -= (drift += 1);
#endif
    hangar_status st = s->measure(s->ctx, &m);
#ifdef BREAK_MEASURE_TWICE
    if (st == HANGAR_OK)
        st = s->measure(s->ctx, &m);
#endif
    return st;
}

static hangar_status fx_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    fx_sink s = {.ctx = ctx, .measure = sink};
    hangar_status st = example_node_measures(instance, sink ? fx_measure_sink : NULL, &s);
#ifdef BREAK_PERCENT
    if (st == HANGAR_OK)
        st = hs_measure(sink, ctx, "example_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, NULL, NULL, 150, 100);
#endif
    return st;
}

/* ---- lifecycle ---- */

static int fx_live, fx_created;

static hangar_status fx_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
#ifdef BREAK_CREATE
    (void)host; (void)config_json; (void)out; (void)err; (void)err_len;
    return HANGAR_E_DRIVER_UNAVAILABLE; /* and no message */
#endif
#ifdef BREAK_TWO_INSTANCES
    if (fx_live > 0) {
        snprintf(err, err_len, "example: the driver allows one open handle");
        return HANGAR_E_BUSY;
    }
#endif
#ifdef BREAK_RECREATE
    if (fx_created >= 2) {
        snprintf(err, err_len, "example: the driver was not closed properly");
        return HANGAR_E_BUSY;
    }
#endif
    hangar_status st = example_create(host, config_json, out, err, err_len);
    if (st == HANGAR_OK) {
        fx_live++;
        fx_created++;
    }
    return st;
}

static void fx_destroy(void *instance)
{
    fx_live--;
    example_destroy(instance);
}

static size_t fx_last_error(void *instance, char *buf, size_t len)
{
#ifdef BREAK_LAST_ERROR
    size_t full = hs_last_error(instance, buf, len);
    return buf != NULL && len > 0 && full >= len ? len - 1 : full; /* returns what it copied, not the full length */
#else
    return hs_last_error(instance, buf, len);
#endif
}

/* ---- the descriptor ---- */

static const char *const fx_bad_slot_names[] = {"other.device", NULL};

static void fx_setup(void)
{
    fx_functions = example_functions;
    fx_functions.create = fx_create;
    fx_functions.destroy = fx_destroy;
    fx_functions.last_error = fx_last_error;
    fx_functions.get_info = fx_get_info;
    fx_functions.list_devices = fx_list_devices;
    fx_functions.list_slots = fx_list_slots;
    fx_functions.list_device_slots = fx_list_device_slots;
    fx_functions.container_edits = fx_container_edits;
    fx_functions.gather_node_measures = fx_node_measures;
    fx_descriptor = example_descriptor;
    fx_descriptor.functions = &fx_functions;
#ifdef FX_WITH_PREPARE
    fx_functions.prepare = fx_prepare;
    fx_functions.release = fx_release;
    fx_functions.gather_container_measures = fx_container_measures;
    fx_descriptor.capabilities |= HANGAR_ACCEL_CAP_NEEDS_PREPARE | HANGAR_ACCEL_CAP_NEEDS_RELEASE | HANGAR_ACCEL_CAP_CONTAINER_METRICS;
#endif
#ifdef BREAK_MISSING_FUNCTION
    fx_functions.list_devices = NULL;
#endif
#ifdef BREAK_CAPABILITIES
    fx_descriptor.capabilities |= HANGAR_ACCEL_CAP_CONTAINER_METRICS; /* without gather_container_measures */
#endif
#ifdef BREAK_ABI_MAJOR
    fx_descriptor.abi_major = 2;
#endif
#ifdef BREAK_DESCRIPTOR_SIZE
    fx_descriptor.struct_size = 16;
#endif
#ifdef BREAK_KIND
    fx_descriptor.kind = 9;
#endif
#ifdef BREAK_NAME
    fx_descriptor.name = "Example_NPU";
#endif
#ifdef BREAK_METADATA
    fx_descriptor.license = "";
#endif
#ifdef BREAK_THREAD_FLAGS
    fx_descriptor.thread_safety = 0x80;
#endif
#ifdef BREAK_SCHEMA
    fx_descriptor.config_schema = "{\"type\":\"object\",\"properties\":{\"sysfs_root\":{\"type\":\"string\",\"pattern\":\"^/\"}}}";
#endif
#ifdef BREAK_STATIC_SLOT
    fx_descriptor.static_slot_names = fx_bad_slot_names;
#else
    (void)fx_bad_slot_names;
#endif
    fx_other_descriptor = fx_descriptor;
}

#ifndef BREAK_NO_ENTRY
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (template_entry_v1(host_abi_version) == NULL)
        return NULL;
    if (fx_descriptor.struct_size == 0)
        fx_setup();
#ifdef BREAK_NULL_DESCRIPTOR
    return NULL;
#endif
#ifdef BREAK_ENTRY_NOT_IDEMPOTENT
    static int flip;
    return (flip ^= 1) ? &fx_descriptor : &fx_other_descriptor;
#endif
    return &fx_descriptor;
}
#endif
