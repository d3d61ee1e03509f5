/*
 * example_accel.c — a complete Hangar accelerator plugin for a device-node NPU: copy it, rename
 * "example", and replace discovery with your driver's view. Build (Makefile, AUTHORING.md):
 *   cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden \
 *      -I<hangar>/PluginAPI/include -I<hangar>/Plugins/Support/include -o libhangar-accel-example.so example_accel.c
 *
 * Devices are /dev/example<N>, described in <sysfs_root>/example<N>/ by model, memory_bytes,
 * cores, numa_node, local_cpulist, uuid, pci_address, firmware_version and health ("ok" or why
 * not), and measured by temp (millidegrees C), power_uw and energy_uj. A container gets its
 * devices as /dev/example0.. in list order, EXAMPLE_VISIBLE_DEVICES=0,1,.. and the resource
 * line EXAMPLE_GLOBAL_DEVICE_IDS=<local>:<N>,.. The support header does the plumbing; plugin.h
 * and accelerator.h are the contract.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readdir, open */
#endif
#include <hangar/support.h>
#include <dirent.h>

typedef struct example {
    char sysfs_root[512];
    char dev_root[512];
    char no_device_reason[640];
    char driver_version[64];
    hs_device_table devices; /* filled once by create(): container_edits must not change state */
} example;

/* One slot: whole devices. Add fractional or memory slots as more rows. */
static const hs_slot_spec example_slots[] = {
    {.name = "example.device", .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE,
     .exclusive = 1, .display_name = "Example NPU", .display_unit = "NPU"},
};
#define EXAMPLE_SLOT_COUNT (sizeof example_slots / sizeof example_slots[0])

/* Discovery: every example<N> directory, sorted by N. */
static void example_discover(example *ex)
{
    DIR *dir = opendir(ex->sysfs_root);
    struct dirent *entry;
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        char *end = NULL, health[160];
        long long n = strncmp(entry->d_name, "example", 7) == 0 ? strtoll(entry->d_name + 7, &end, 10) : -1;
        hs_device *d = n >= 0 && end != NULL && *end == '\0' && end != entry->d_name + 7 ? hs_devices_add(&ex->devices) : NULL;
        if (d == NULL)
            continue;
        const char *root = ex->sysfs_root;
        d->index = n;
        snprintf(d->id, sizeof d->id, "%lld", n);
        hs_read_textf(d->model, sizeof d->model, "%s/example%lld/model", root, n);
        if (d->model[0] == '\0')
            snprintf(d->model, sizeof d->model, "Example NPU");
        hs_read_textf(d->uuid, sizeof d->uuid, "%s/example%lld/uuid", root, n);
        hs_read_textf(d->hw_location, sizeof d->hw_location, "%s/example%lld/pci_address", root, n);
        hs_read_textf(d->firmware_version, sizeof d->firmware_version, "%s/example%lld/firmware_version", root, n);
        hs_read_textf(d->cpu_affinity, sizeof d->cpu_affinity, "%s/example%lld/local_cpulist", root, n);
        if (d->cpu_affinity[0] != '\0' && hs_cpulist_problem(d->cpu_affinity) != NULL)
            d->cpu_affinity[0] = '\0'; /* a malformed list is no hint (the host would drop it) */
        d->memory_bytes = (uint64_t)hs_read_i64f(0, "%s/example%lld/memory_bytes", root, n);
        d->processing_units = (uint32_t)hs_read_i64f(1, "%s/example%lld/cores", root, n);
        int64_t numa = hs_read_i64f(-1, "%s/example%lld/numa_node", root, n);
        d->numa_node = numa >= 0 && numa < 4096 ? (int32_t)numa : -1; /* sysfs says -1 when unknown */
        hs_read_textf(health, sizeof health, "%s/example%lld/health", root, n);
        if (health[0] != '\0' && strcmp(health, "ok") != 0) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "%s", health);
        }
    }
    if (dir != NULL)
        closedir(dir);
    hs_devices_sort_by_index(&ex->devices);
    if (ex->devices.count == 0)
        snprintf(ex->no_device_reason, sizeof ex->no_device_reason, "no example<N> entries in %s", ex->sysfs_root);
}

static hangar_status example_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, "example", host, config_json, out, err, err_len, 2);
    example *ex = st == HANGAR_OK ? calloc(1, sizeof *ex) : NULL;
    if (st != HANGAR_OK)
        return st;
    if (ex == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    /* The host applied the schema's defaults and checked types: no fallbacks here. */
    if ((st = hs_cfg_string(&c, "sysfs_root", ex->sysfs_root, sizeof ex->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "dev_root", ex->dev_root, sizeof ex->dev_root)) != HANGAR_OK) {
        free(ex);
        return st;
    }
    hs_read_textf(ex->driver_version, sizeof ex->driver_version, "%s/driver_version", ex->sysfs_root);
    example_discover(ex);
    *out = ex;
    return HANGAR_OK;
}

static void example_destroy(void *instance) { free(instance); }

static hangar_status example_get_info(void *instance, hangar_accel_info *info)
{
    return hs_fill_info(info, "example", ((example *)instance)->driver_version, NULL, NULL, ((example *)instance)->no_device_reason);
}

static hangar_status example_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((example *)instance)->devices, sink, ctx);
}

static hangar_status example_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(example_slots, EXAMPLE_SLOT_COUNT, &((example *)instance)->devices, sink, ctx);
}

static hangar_status example_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(example_slots, EXAMPLE_SLOT_COUNT, &((example *)instance)->devices, sink, ctx);
}

/* Checks everything first (hs_select), then emits: a refused call leaves no half edits. */
static hangar_status example_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    example *ex = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &ex->devices, example_slots, EXAMPLE_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0) /* nothing to emit for an empty allocation */
        return st;
    for (size_t k = 0; k < sel.count; k++) {
        char host_path[600], container_path[64];
        hs_pathf(host_path, sizeof host_path, "%s/example%" PRId64, ex->dev_root, ex->devices.items[sel.picks[k].device].index);
        snprintf(container_path, sizeof container_path, "/dev/example%zu", k);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    }
    hs_strbuf list;
    hs_selection_list(&sel, &ex->devices, HS_LIST_LOCAL, &list);
    HS_EDIT(edits, add_env, "EXAMPLE_VISIBLE_DEVICES", list.text);
    hs_selection_list(&sel, &ex->devices, HS_LIST_PAIRS, &list);
    HS_EDIT(edits, add_resource_data, "EXAMPLE_GLOBAL_DEVICE_IDS", list.text);
    return HANGAR_OK;
}

/* Temperature and power are gauges, energy a counter (ABI 1.2 units); a missing file skips that measure. */
static hangar_status example_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    example *ex = instance;
    hangar_status st = HANGAR_OK;
    for (size_t i = 0; i < ex->devices.count && st == HANGAR_OK; i++) {
        const hs_device *d = &ex->devices.items[i];
        int64_t temp = hs_read_i64f(-1, "%s/example%" PRId64 "/temp", ex->sysfs_root, d->index);
        int64_t power = hs_read_i64f(-1, "%s/example%" PRId64 "/power_uw", ex->sysfs_root, d->index);
        int64_t energy = hs_read_i64f(-1, "%s/example%" PRId64 "/energy_uj", ex->sysfs_root, d->index);
        if (temp >= 0)
            st = hs_measure(sink, ctx, "example_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, d->id, NULL, temp / 1000.0, 0);
        if (st == HANGAR_OK && power >= 0)
            st = hs_measure(sink, ctx, "example_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, d->id, NULL, power / 1e6, 0);
        if (st == HANGAR_OK && energy >= 0)
            st = hs_measure(sink, ctx, "example_energy", HANGAR_UNIT_JOULES, HANGAR_MEASURE_COUNTER, d->id, NULL, energy / 1e6, 0);
    }
    return st;
}

static const char example_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys/class/example\","
    "\"description\":\"Where the driver describes devices (example<N>/ folders); a fake tree in tests.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\",\"description\":\"Where the device nodes example<N> are.\"}}}";

static const hangar_accelerator_functions example_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = example_create,
    .destroy = example_destroy,
    .last_error = hs_last_error,
    .get_info = example_get_info,
    .list_devices = example_list_devices,
    .list_slots = example_list_slots,
    .list_device_slots = example_list_device_slots,
    .container_edits = example_container_edits,
    .gather_node_measures = example_node_measures,
};

static const char *const example_slot_names[] = {"example.device", NULL};

static const hangar_plugin_descriptor example_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0, /* the host serialises calls on an instance */
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS,
    .name = "example",
    .vendor = "Example Corp",
    .version = "0.2.0",
    .description = "Example NPU plugin: device nodes described in sysfs; a template to copy",
    .license = "Apache-2.0",
    .config_schema = example_schema,
    .static_slot_names = example_slot_names,
    .functions = &example_functions,
    .homepage = "https://example.com/hangar-plugin-example",
};

/* The only exported symbol; 2 = needs a host that applies schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(example_descriptor, 2)
