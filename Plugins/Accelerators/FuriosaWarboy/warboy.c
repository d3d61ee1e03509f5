/*
 * Hangar accelerator plugin for FuriosaAI Warboy NPUs ("warboy").
 *
 * Discovers, once at create(): every device node <dev_root>/npu<N> (no
 * suffix) whose management folder <sysfs_root>/class/npu_mgmt/npu<N>_mgmt/
 * has a platform_type of "FuriosaAI" (or "VITIS", Furiosa's FPGA platform, as
 * Furiosa's own device library accepts); any other /dev/npu<N> belongs to
 * another vendor's driver and is skipped. From that folder: device_type (the
 * model, "Warboy"), device_uuid, device_sn (board serial), busname (the PCI
 * function, whose numa_node and local_cpulist give the locality), soc_rev,
 * fw_version (firmware), version (driver) and alive. The device's core nodes
 * npu<N>pe<k> give its processing elements.
 *
 * Health: alive "1" (or "true") is healthy, "0" is unhealthy (the driver lost
 * the NPU's firmware); a device whose alive file cannot be read is degraded.
 *
 * Offers: "warboy.device", whole devices, exclusive.
 *
 * Containers get: every host node of the device, /dev/npu<N> and its
 * siblings npu<N>pe0, npu<N>pe1, npu<N>pe0-1, npu<N>_mgmt, npu<N>ch0.. (any
 * name npu<N> followed by a non-digit), renamed npu<i>... with i the device's
 * position in the allocation (device-list order), as Backend.AI does; the
 * IPC_LOCK capability, the host IPC namespace and an unlimited memlock ulimit
 * (the Furiosa runtime pins DMA buffers and shares them between processes);
 * and the resource line WARBOY_GLOBAL_DEVICE_IDS=<local>:<N>,...
 *
 * Measures: none (the Warboy driver exposes no utilisation or memory use in
 * sysfs).
 *
 * Config keys: sysfs_root (default "/sys"), dev_root (default "/dev").
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-warboy.so warboy.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readdir */
#endif
#include <hangar/support/vendor.h>

#include <limits.h>

#define WARBOY_KEY "warboy"
#define WARBOY_SLOT "warboy.device"
/* Most nodes one device has (npu<N>, pe0, pe1, pe0-1, _mgmt, ch0..ch3 on a Warboy). */
#define WARBOY_MAX_NODES 32

typedef struct warboy_npu {
    size_t node_count;
    /* What follows "npu<N>" in each node name ("", "pe0", "_mgmt", ...), sorted. */
    char suffix[WARBOY_MAX_NODES][24];
} warboy_npu;

typedef struct warboy_instance {
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    hs_device_table devices;
    warboy_npu npus[HS_MAX_DEVICES];
    char driver_version[64];
    char no_device_reason[640];
} warboy_instance;

static const hs_slot_spec warboy_slots[] = {
    {.name = WARBOY_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE,
     .exclusive = 1, .display_name = "Warboy", .display_unit = "NPU"},
};
#define WARBOY_SLOT_COUNT (sizeof warboy_slots / sizeof warboy_slots[0])

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

/* If `name` is "npu<digits><rest>" with <rest> empty or starting with a non-digit, its number; else -1. */
static int64_t npu_number(const char *name, const char **rest)
{
    if (strncmp(name, "npu", 3) != 0 || name[3] < '0' || name[3] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(name + 3, &end, 10);
    if (errno != 0 || n > INT32_MAX)
        return -1;
    *rest = end;
    return n;
}

static int suffix_order(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* The nodes of NPU `n` among the entries of `dir` (a fresh listing of dev_root), the bare npu<n> among them. */
static void collect_nodes(DIR *dir, int64_t n, warboy_npu *npu)
{
    npu->node_count = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && npu->node_count < WARBOY_MAX_NODES;) {
        const char *rest = NULL;
        if (npu_number(e->d_name, &rest) != n || strlen(rest) >= sizeof npu->suffix[0])
            continue;
        snprintf(npu->suffix[npu->node_count++], sizeof npu->suffix[0], "%s", rest);
    }
    qsort(npu->suffix, npu->node_count, sizeof npu->suffix[0], suffix_order);
}

static bool is_furiosa_platform(const char *platform) { return strcmp(platform, "FuriosaAI") == 0 || strcmp(platform, "VITIS") == 0; }

/* Fills device `d` from npu<n>_mgmt; false when npu<n> is not a Furiosa device. */
static bool warboy_describe(warboy_instance *inst, int64_t n, hs_device *d, const warboy_npu *npu)
{
    char mgmt[PATH_MAX], platform[64], alive[16], soc_rev[16], dev[32], type[64];
    if (!hs_pathf(mgmt, sizeof mgmt, "%s/class/npu_mgmt/npu%" PRId64 "_mgmt", inst->sysfs_root, n))
        return false;
    hs_read_textf(platform, sizeof platform, "%s/platform_type", mgmt);
    if (!is_furiosa_platform(platform))
        return false;
    d->index = n;
    snprintf(d->id, sizeof d->id, "%" PRId64, n);
    hs_read_textf(type, sizeof type, "%s/device_type", mgmt);
    snprintf(d->model, sizeof d->model, "FuriosaAI %s", type[0] != '\0' ? type : "NPU");
    hs_read_textf(d->uuid, sizeof d->uuid, "%s/device_uuid", mgmt);
    hs_read_textf(d->board_id, sizeof d->board_id, "%s/device_sn", mgmt);
    hs_read_textf(d->hw_location, sizeof d->hw_location, "%s/busname", mgmt);
    hs_read_textf(d->firmware_version, sizeof d->firmware_version, "%s/fw_version", mgmt);
    if (d->hw_location[0] != '\0')
        hs_read_pci_locality(inst->sysfs_root, d->hw_location, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    /* A Warboy carries 16 GiB of LPDDR4X; the driver does not say so itself. */
    if (strcmp(type, "Warboy") == 0)
        d->memory_bytes = (uint64_t)16 << 30;
    for (size_t i = 0; i < npu->node_count; i++) {
        const char *s = npu->suffix[i];
        if (strncmp(s, "pe", 2) == 0 && s[2] >= '0' && s[2] <= '9' && strchr(s, '-') == NULL)
            d->processing_units++; /* one node per single processing element */
    }
    hs_read_textf(soc_rev, sizeof soc_rev, "%s/soc_rev", mgmt);
    hs_read_textf(dev, sizeof dev, "%s/dev", mgmt);
    /* sysfs text goes into JSON escaped: a stray quote must not cost the device its facts. */
    hs_strbuf extra = {.len = 0};
    bool fits = hs_strbuf_addf(&extra, "{\"device_type\":") && hs_strbuf_add_json_string(&extra, type) &&
                hs_strbuf_addf(&extra, ",\"soc_rev\":") && hs_strbuf_add_json_string(&extra, soc_rev) &&
                hs_strbuf_addf(&extra, ",\"mgmt_dev\":") && hs_strbuf_add_json_string(&extra, dev) && hs_strbuf_addf(&extra, "}");
    if (fits && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);
    if (inst->driver_version[0] == '\0')
        hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/version", mgmt);

    hs_read_textf(alive, sizeof alive, "%s/alive", mgmt);
    if (strcmp(alive, "0") == 0 || strcmp(alive, "false") == 0) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "the driver reports npu%" PRId64 " is not alive (npu%" PRId64 "_mgmt/alive is %s)",
                 n, n, alive);
    } else if (strcmp(alive, "1") != 0 && strcmp(alive, "true") != 0) {
        d->health = HANGAR_HEALTH_DEGRADED;
        snprintf(d->health_reason, sizeof d->health_reason, "cannot tell whether npu%" PRId64 " is alive: npu%" PRId64 "_mgmt/alive is %s",
                 n, n, alive[0] != '\0' ? "unreadable or unexpected" : "missing");
    }
    return true;
}

static void warboy_discover(warboy_instance *inst)
{
    DIR *dir = opendir(inst->dev_root);
    if (dir == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "cannot list %.500s: %s", inst->dev_root, strerror(errno));
        return;
    }
    size_t nodes = 0, foreign = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        const char *rest = NULL;
        int64_t n = npu_number(e->d_name, &rest);
        if (n < 0 || rest[0] != '\0')
            continue; /* only the bare npu<N> names a device; its siblings are collected with it */
        nodes++;
        hs_device *d = hs_devices_add(&inst->devices);
        if (d == NULL)
            break;
        /* A second listing finds the device's sibling nodes without moving this one. */
        DIR *again = opendir(inst->dev_root);
        warboy_npu npu = {.node_count = 0};
        if (again != NULL) {
            collect_nodes(again, n, &npu);
            closedir(again);
        }
        if (!warboy_describe(inst, n, d, &npu)) {
            inst->devices.count--;
            foreign++;
            continue;
        }
        inst->npus[inst->devices.count - 1] = npu;
    }
    closedir(dir);
    /* Keep npus[] in step with the table while sorting it by N. */
    for (size_t i = 1; i < inst->devices.count; i++)
        for (size_t j = i; j > 0 && inst->devices.items[j - 1].index > inst->devices.items[j].index; j--) {
            hs_device t = inst->devices.items[j];
            inst->devices.items[j] = inst->devices.items[j - 1];
            inst->devices.items[j - 1] = t;
            warboy_npu u = inst->npus[j];
            inst->npus[j] = inst->npus[j - 1];
            inst->npus[j - 1] = u;
        }
    if (inst->devices.count > 0)
        return;
    if (nodes == 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "no npu<N> device nodes in %.400s: the FuriosaAI Warboy driver is not loaded", inst->dev_root);
    else
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "none of the %zu npu<N> nodes in %.240s is a FuriosaAI device (no platform_type FuriosaAI in %.240s/class/npu_mgmt)",
                 foreign, inst->dev_root, inst->sysfs_root);
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

static hangar_status warboy_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, WARBOY_KEY, host, config_json, out, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    warboy_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if ((st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK) {
        free(inst);
        return st;
    }
    warboy_discover(inst);
    *out = inst;
    return HANGAR_OK;
}

static void warboy_destroy(void *instance) { free(instance); }

static hangar_status warboy_get_info(void *instance, hangar_accel_info *info)
{
    const warboy_instance *inst = instance;
    return hs_fill_info(info, WARBOY_KEY, inst->driver_version, NULL,
                        inst->devices.count > 0 ? "{\"warboy_support\":true}" : "{\"warboy_support\":false}", inst->no_device_reason);
}

static hangar_status warboy_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const warboy_instance *)instance)->devices, sink, ctx);
}

static hangar_status warboy_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(warboy_slots, WARBOY_SLOT_COUNT, &((const warboy_instance *)instance)->devices, sink, ctx);
}

static hangar_status warboy_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(warboy_slots, WARBOY_SLOT_COUNT, &((const warboy_instance *)instance)->devices, sink, ctx);
}

static hangar_status warboy_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const warboy_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, warboy_slots, WARBOY_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    hs_strbuf pairs;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &pairs))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu devices is too long", sel.count);
    for (size_t k = 0; k < sel.count; k++) {
        const hs_device *d = &inst->devices.items[sel.picks[k].device];
        const warboy_npu *npu = &inst->npus[sel.picks[k].device];
        for (size_t i = 0; i < npu->node_count; i++) {
            char host_path[PATH_MAX], container_path[64];
            if (!hs_pathf(host_path, sizeof host_path, "%s/npu%" PRId64 "%s", inst->dev_root, d->index, npu->suffix[i]))
                return hs_fail(HANGAR_E_INVALID_CONFIG, "container_edits: dev_root %s is too long", inst->dev_root);
            snprintf(container_path, sizeof container_path, "/dev/npu%zu%s", k, npu->suffix[i]);
            HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        }
    }
    HS_EDIT(edits, add_capability, "IPC_LOCK");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_resource_data, "WARBOY_GLOBAL_DEVICE_IDS", pairs.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char warboy_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted; each NPU is described in <sysfs_root>/class/npu_mgmt/npu<N>_mgmt and its PCI "
    "function in <sysfs_root>/bus/pci/devices.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes npu<N>, npu<N>pe<k>, npu<N>_mgmt ... are (an absolute path); containers see them "
    "renumbered under /dev.\"}}}";

static const hangar_accelerator_functions warboy_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = warboy_create,
    .destroy = warboy_destroy,
    .last_error = hs_last_error,
    .get_info = warboy_get_info,
    .list_devices = warboy_list_devices,
    .list_slots = warboy_list_slots,
    .list_device_slots = warboy_list_device_slots,
    .container_edits = warboy_container_edits,
};

static const char *const warboy_slot_names[] = {WARBOY_SLOT, NULL};

static const hangar_plugin_descriptor warboy_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = 0,
    .name = WARBOY_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "FuriosaAI Warboy NPUs from /dev/npu<N> and the npu_mgmt sysfs class: whole-device warboy.device slots, "
                   "renumbered device nodes, IPC_LOCK, host IPC and memlock for the Furiosa runtime",
    .license = "Apache-2.0",
    .config_schema = warboy_schema,
    .static_slot_names = warboy_slot_names,
    .functions = &warboy_functions,
    .homepage = "https://furiosa-ai.github.io/docs/",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(warboy_descriptor, 2)
