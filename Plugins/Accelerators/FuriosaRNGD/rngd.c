/*
 * Hangar accelerator plugin for FuriosaAI RNGD NPUs ("rngd").
 *
 * Discovers, once at create(), through FuriosaAI's libfuriosa_smi (opened with
 * dlopen from the config key furiosa_smi_library, never linked, so the plugin
 * loads on nodes without it): furiosa_smi_init, furiosa_smi_get_device_handles
 * and, per device, furiosa_smi_get_device_info (arch, cores, NUMA node, name
 * "npu<N>", serial, UUID, PCI address, firmware version) and
 * furiosa_smi_get_device_liveness. Where the library has them it also reads the
 * driver version, the PCIe link, and the DRAM size (furiosa_smi_get_memory_
 * utilization). RNGD, RNGD-Max and RNGD-S devices are kept; Warboy devices the
 * library also reports belong to the warboy plugin. The NUMA node and nearest
 * CPUs come from the PCI function in sysfs (the library's numa_node when sysfs
 * does not know). The device's nodes are the entries of <dev_root>/rngd/ named
 * npu<N> followed by a non-digit: npu<N>mgmt, npu<N>pe0.., npu<N>pe0-1..,
 * npu<N>ch0.., npu<N>ch0r.., npu<N>dmar, npu<N>bar0/2/4.
 *
 * Health: a device the library says is not alive (liveness false, or
 * FURIOSA_SMI_RETURN_CODE_DEVICE_LOST_ERROR from any query, re-checked each
 * time the devices are listed) is unhealthy; so is one without device nodes.
 *
 * Offers: "rngd.device", whole devices, exclusive.
 *
 * Containers get: every node /dev/rngd/npu<N>* renamed /dev/rngd/npu<i>* (i =
 * the device's position in the allocation, device-list order), as Backend.AI
 * does; the IPC_LOCK capability, the host IPC namespace and an unlimited
 * memlock ulimit (the Furiosa runtime pins and shares DMA buffers); and the
 * resource line RNGD_GLOBAL_DEVICE_IDS=<local>:<index>,...
 *
 * Measures, per device, for the node and for the container holding it (each
 * where the library has the call): rngd_mem (bytes of DRAM in use of the
 * total), rngd_util (percent of PE cycles spent executing tasks since the
 * previous sample, from furiosa_smi_get_device_performance_counter),
 * rngd_temp (Celsius, hottest SoC sensor) and rngd_power (watts, RMS).
 *
 * Failures: a missing library, a library without the required functions, a
 * failing furiosa_smi_init or device listing leave the instance with no
 * devices and get_info's no_device_reason saying which. The library stays
 * loaded for the life of the process, as vendor management libraries expect.
 *
 * Config keys: furiosa_smi_library (default "libfuriosa_smi.so"), sysfs_root
 * (default "/sys"), dev_root (default "/dev").
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-rngd.so rngd.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readdir, clock_gettime */
#endif
#include <hangar/support/vendor.h>

#include <limits.h>

#include "rngd_smi.h"

#define RNGD_KEY "rngd"
#define RNGD_SLOT "rngd.device"
/* Most nodes one device has (mgmt, 8 PEs and 6 fused groups, 8+8 channels, dmar, 3 BARs = 35 on an RNGD). */
#define RNGD_MAX_NODES 64
/* Utilisation is recomputed at most this often, so node and container measures of one round agree. */
#define RNGD_UTIL_INTERVAL_NS 1000000000LL

typedef struct rngd_lib {
    rngd_smi_init_fn init;
    rngd_smi_get_device_handles_fn get_handles;
    rngd_smi_get_device_info_fn get_info;
    rngd_smi_get_device_liveness_fn get_liveness;
    /* Optional: NULL when the library predates them. */
    rngd_smi_get_driver_info_fn get_driver;
    rngd_smi_get_performance_counter_fn get_counters;
    rngd_smi_get_power_fn get_power;
    rngd_smi_get_temperature_fn get_temperature;
    rngd_smi_get_pcie_link_fn get_link;
    rngd_smi_get_memory_utilization_fn get_memory;
} rngd_lib;

typedef struct rngd_npu {
    rngd_smi_handle handle;
    /* N of /dev/rngd/npu<N>. */
    int64_t node;
    /* The library said the device is not alive or lost: no more queries. */
    bool lost;
    size_t node_count;
    char suffix[RNGD_MAX_NODES][16];
    /* The last performance-counter sample and the utilisation it gave. */
    bool have_sample, have_util;
    int64_t sample_ns;
    uint64_t cycles, busy;
    double util;
} rngd_npu;

typedef struct rngd_instance {
    const hangar_host_services *host;
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    rngd_lib lib;
    hs_device_table devices;
    rngd_npu npus[HS_MAX_DEVICES];
    char driver_version[64];
    char no_device_reason[640];
    /* Set once discovery is over: a device lost after that is news worth an error in the log. */
    bool discovered;
    rngd_smi_memory_utilization memory; /* about 70 KiB: a scratch buffer, not on the stack */
} rngd_instance;

static const hs_slot_spec rngd_slots[] = {
    {.name = RNGD_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "RNGD", .display_unit = "NPU"},
};
#define RNGD_SLOT_COUNT (sizeof rngd_slots / sizeof rngd_slots[0])

static HS_PRINTF(3, 4) void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...)
{
    if (host == NULL || !HS_HAS_FIELD(hangar_host_services, log, host->struct_size) || host->log == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

static int64_t rngd_now_ns(const rngd_instance *inst)
{
    if (HS_HAS_FIELD(hangar_host_services, monotonic_ns, inst->host->struct_size) && inst->host->monotonic_ns != NULL)
        return inst->host->monotonic_ns(inst->host->host_context);
    return hs_now_ms() * 1000000;
}

/* FuriosaSmiReturnCode as its name (the library has no error-string call). */
static const char *rngd_error(rngd_smi_return r)
{
    static const char *const names[] = {
        "OK", "INVALID_ARGUMENT_ERROR", "NULL_POINTER_ERROR", "MAX_BUFFER_SIZE_EXCEED_ERROR", "DEVICE_NOT_FOUND_ERROR",
        "DEVICE_LOST_ERROR", "DEVICE_BUSY_ERROR", "IO_ERROR", "PERMISSION_DENIED_ERROR", "UNKNOWN_ARCH_ERROR",
        "INCOMPATIBLE_DRIVER_ERROR", "UNEXPECTED_VALUE_ERROR", "PARSE_ERROR", "UNKNOWN_ERROR", "INTERNAL_ERROR",
        "UNINITIALIZED_ERROR", "CONTEXT_ERROR", "NOT_SUPPORTED_ERROR",
    };
    return r >= 0 && (size_t)r < sizeof names / sizeof names[0] ? names[r] : "unknown return code";
}

static void version_text(const rngd_smi_version *v, char *out, size_t len)
{
    char pre[RNGD_SMI_MAX_CSTR_SIZE + 1], meta[RNGD_SMI_MAX_CSTR_SIZE + 1];
    snprintf(pre, sizeof pre, "%.*s", RNGD_SMI_MAX_CSTR_SIZE, v->prerelease);
    snprintf(meta, sizeof meta, "%.*s", RNGD_SMI_MAX_CSTR_SIZE, v->metadata);
    int n = snprintf(out, len, "%u.%u.%u%s%.40s%s%.40s", v->major, v->minor, v->patch, pre[0] ? "-" : "", pre, meta[0] ? "+" : "", meta);
    if (n < 0 || (size_t)n >= len)
        out[len - 1] = '\0'; /* a long prerelease tag is cut, the version numbers never are */
}

/* Marks device `k` unhealthy for good (the library lost it). */
static HS_PRINTF(3, 4) void rngd_lose(rngd_instance *inst, size_t k, const char *fmt, ...)
{
    hs_device *d = &inst->devices.items[k];
    if (inst->npus[k].lost)
        return;
    inst->npus[k].lost = true;
    d->health = HANGAR_HEALTH_UNHEALTHY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->health_reason, sizeof d->health_reason, fmt, ap);
    va_end(ap);
    host_log(inst->host, inst->discovered ? HANGAR_LOG_ERROR : HANGAR_LOG_WARNING, "RNGD %s (%s) is unhealthy: %s", d->id, d->hw_location,
             d->health_reason);
}

/* True on success; DEVICE_LOST makes the device unhealthy. */
static bool rngd_ok(rngd_instance *inst, size_t k, const char *call, rngd_smi_return r)
{
    if (r == RNGD_SMI_DEVICE_LOST_ERROR)
        rngd_lose(inst, k, "%s: %s", call, rngd_error(r));
    return r == RNGD_SMI_OK;
}

/* Liveness now; marks the device unhealthy when it is not alive. */
static void rngd_check_liveness(rngd_instance *inst, size_t k)
{
    bool alive = false;
    rngd_smi_return r = inst->lib.get_liveness(inst->npus[k].handle, &alive);
    if (rngd_ok(inst, k, "furiosa_smi_get_device_liveness", r) && !alive)
        rngd_lose(inst, k, "furiosa_smi_get_device_liveness reports the NPU is not alive");
}

/* ------------------------------------------------------------------------ */
/* Utilisation                                                               */
/* ------------------------------------------------------------------------ */

/* Takes a counter sample of device `k`: total and task-executing cycles over its PEs. */
static bool rngd_sample(rngd_instance *inst, size_t k, uint64_t *cycles, uint64_t *busy)
{
    rngd_smi_performance_counter pc;
    memset(&pc, 0, sizeof pc);
    if (inst->lib.get_counters == NULL ||
        !rngd_ok(inst, k, "furiosa_smi_get_device_performance_counter", inst->lib.get_counters(inst->npus[k].handle, &pc)))
        return false;
    *cycles = *busy = 0;
    for (uint32_t i = 0; i < pc.pe_count && i < RNGD_SMI_MAX_PE_SIZE; i++) {
        *cycles += pc.pe[i].cycle_count;
        *busy += pc.pe[i].task_execution_cycle;
    }
    return true;
}

/* Percent of PE cycles spent on tasks since the previous sample (recomputed at most once a second). */
static bool rngd_utilisation(rngd_instance *inst, size_t k, double *out)
{
    rngd_npu *n = &inst->npus[k];
    int64_t now = rngd_now_ns(inst);
    if (!n->have_util || now - n->sample_ns >= RNGD_UTIL_INTERVAL_NS) {
        uint64_t cycles = 0, busy = 0;
        if (!rngd_sample(inst, k, &cycles, &busy))
            return false;
        if (n->have_sample && cycles > n->cycles && busy >= n->busy)
            n->util = 100.0 * (double)(busy - n->busy) / (double)(cycles - n->cycles);
        else /* no earlier sample, or the counters were reset: the ratio since they started */
            n->util = cycles > 0 ? 100.0 * (double)busy / (double)cycles : 0.0;
        n->util = n->util < 0 ? 0 : n->util > 100 ? 100 : n->util;
        n->have_sample = n->have_util = true;
        n->cycles = cycles;
        n->busy = busy;
        n->sample_ns = now;
    }
    *out = n->util;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

/* Bytes of DRAM (private and shared) of device `k` and how many are in use; false when unknown. */
static bool rngd_memory(rngd_instance *inst, size_t k, uint64_t *total, uint64_t *used)
{
    rngd_smi_memory_utilization *m = &inst->memory;
    memset(m, 0, sizeof *m);
    if (inst->lib.get_memory == NULL || !rngd_ok(inst, k, "furiosa_smi_get_memory_utilization", inst->lib.get_memory(inst->npus[k].handle, m)))
        return false;
    *total = *used = 0;
    const rngd_smi_memory *kinds[] = {&m->dram, &m->dram_shared};
    for (size_t i = 0; i < 2; i++)
        for (uint32_t b = 0; b < kinds[i]->count && b < RNGD_SMI_MAX_PE_SIZE; b++) {
            *total += kinds[i]->memory[b].total_bytes;
            *used += kinds[i]->memory[b].in_use_bytes;
        }
    return *total > 0;
}

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

/* The nodes <dev_root>/rngd/npu<N>* of device `k`, sorted by name. */
static void rngd_collect_nodes(rngd_instance *inst, size_t k)
{
    rngd_npu *n = &inst->npus[k];
    char dir_path[PATH_MAX];
    n->node_count = 0;
    DIR *dir = hs_pathf(dir_path, sizeof dir_path, "%s/rngd", inst->dev_root) ? opendir(dir_path) : NULL;
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL && n->node_count < RNGD_MAX_NODES;) {
        const char *rest = NULL;
        if (npu_number(e->d_name, &rest) == n->node && strlen(rest) < sizeof n->suffix[0])
            snprintf(n->suffix[n->node_count++], sizeof n->suffix[0], "%s", rest);
    }
    if (dir != NULL)
        closedir(dir);
    qsort(n->suffix, n->node_count, sizeof n->suffix[0], suffix_order);
}

static const char *rngd_model(int arch)
{
    switch (arch) {
    case RNGD_SMI_ARCH_RNGD: return "FuriosaAI RNGD";
    case RNGD_SMI_ARCH_RNGD_MAX: return "FuriosaAI RNGD-Max";
    case RNGD_SMI_ARCH_RNGD_S: return "FuriosaAI RNGD-S";
    default: return NULL;
    }
}

/* Adds the device behind `handle`; false when it is skipped (a Warboy, or info cannot be read). */
static bool rngd_add_device(rngd_instance *inst, rngd_smi_handle handle, size_t *warboys)
{
    rngd_smi_device_info info;
    memset(&info, 0, sizeof info);
    rngd_smi_return r = inst->lib.get_info(handle, &info);
    if (r != RNGD_SMI_OK) {
        host_log(inst->host, HANGAR_LOG_WARNING, "skipping NPU handle %u: furiosa_smi_get_device_info failed: %s", handle, rngd_error(r));
        return false;
    }
    const char *model = rngd_model(info.arch);
    if (model == NULL) {
        if (info.arch == RNGD_SMI_ARCH_WARBOY)
            (*warboys)++; /* the warboy plugin lists it */
        else
            host_log(inst->host, HANGAR_LOG_WARNING, "skipping NPU %u: unknown architecture %d", info.index, info.arch);
        return false;
    }
    hs_device *d = hs_devices_add(&inst->devices);
    if (d == NULL)
        return false;
    size_t k = inst->devices.count - 1;
    rngd_npu *n = &inst->npus[k];
    memset(n, 0, sizeof *n);
    n->handle = handle;
    info.name[sizeof info.name - 1] = info.serial[sizeof info.serial - 1] = info.uuid[sizeof info.uuid - 1] = info.bdf[sizeof info.bdf - 1] = '\0';
    const char *rest = NULL;
    n->node = npu_number(info.name, &rest);
    if (n->node < 0 || rest[0] != '\0')
        n->node = info.index;
    d->index = info.index;
    snprintf(d->id, sizeof d->id, "%u", info.index);
    snprintf(d->model, sizeof d->model, "%s", model);
    snprintf(d->uuid, sizeof d->uuid, "%s", info.uuid);
    snprintf(d->board_id, sizeof d->board_id, "%.63s", info.serial);
    snprintf(d->hw_location, sizeof d->hw_location, "%.63s", info.bdf);
    d->processing_units = info.core_num;
    version_text(&info.firmware_version, d->firmware_version, sizeof d->firmware_version);
    if (d->hw_location[0] != '\0')
        hs_read_pci_locality(inst->sysfs_root, d->hw_location, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    if (d->numa_node < 0 && info.numa_node >= 0)
        d->numa_node = info.numa_node;
    snprintf(d->extra_info_json, sizeof d->extra_info_json, "{\"arch\":\"%s\",\"name\":\"npu%" PRId64 "\",\"dev\":\"%u:%u\"}",
             model + strlen("FuriosaAI "), n->node, info.major, info.minor);
    rngd_check_liveness(inst, k);
    rngd_smi_pcie_link link;
    memset(&link, 0, sizeof link);
    if (!n->lost && inst->lib.get_link != NULL && inst->lib.get_link(handle, &link) == RNGD_SMI_OK && link.pcie_gen_status > 0 &&
        link.link_width_status > 0)
        snprintf(d->link_speed, sizeof d->link_speed, "PCIe %u.0 x%u", link.pcie_gen_status, link.link_width_status);
    uint64_t total = 0, used = 0;
    if (!n->lost && rngd_memory(inst, k, &total, &used))
        d->memory_bytes = total;
    rngd_collect_nodes(inst, k);
    if (d->health != HANGAR_HEALTH_UNHEALTHY && n->node_count == 0) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "no device nodes /dev/rngd/npu%" PRId64 "* in %.100s", n->node, inst->dev_root);
    }
    if (!n->lost) { /* the baseline the first utilisation is measured against */
        n->have_sample = rngd_sample(inst, k, &n->cycles, &n->busy);
        n->sample_ns = rngd_now_ns(inst);
    }
    return true;
}

/* Looks up `sym` into `field` (memcpy: no cast between object and function pointers); notes the first missing required one. */
#define RNGD_LOAD(field, sym, required)                                        \
    do {                                                                       \
        void (*fn_)(void) = hs_library_symbol(handle, #sym);                   \
        _Static_assert(sizeof fn_ == sizeof lib->field, "function pointer size"); \
        memcpy(&lib->field, &fn_, sizeof fn_);                                 \
        if (fn_ == NULL && (required) && missing == NULL)                      \
            missing = #sym;                                                    \
    } while (0)

static void rngd_discover(rngd_instance *inst, const char *library)
{
    char *reason = inst->no_device_reason;
    size_t len = sizeof inst->no_device_reason;
    void *handle = hs_library_open(library);
    if (handle == NULL) {
        char why[400];
        hs_last_error(NULL, why, sizeof why);
        snprintf(reason, len, "%s; install FuriosaAI's furiosa-smi library or set furiosa_smi_library to its path", why);
        return;
    }
    rngd_lib *lib = &inst->lib;
    const char *missing = NULL;
    RNGD_LOAD(init, furiosa_smi_init, true);
    RNGD_LOAD(get_handles, furiosa_smi_get_device_handles, true);
    RNGD_LOAD(get_info, furiosa_smi_get_device_info, true);
    RNGD_LOAD(get_liveness, furiosa_smi_get_device_liveness, true);
    RNGD_LOAD(get_driver, furiosa_smi_get_driver_info, false);
    RNGD_LOAD(get_counters, furiosa_smi_get_device_performance_counter, false);
    RNGD_LOAD(get_power, furiosa_smi_get_device_power_consumption, false);
    RNGD_LOAD(get_temperature, furiosa_smi_get_device_temperature, false);
    RNGD_LOAD(get_link, furiosa_smi_get_pcie_link_info, false);
    RNGD_LOAD(get_memory, furiosa_smi_get_memory_utilization, false);
    if (missing != NULL) {
        snprintf(reason, len, "%.300s lacks %s: it is not FuriosaAI's libfuriosa_smi, or too old", library, missing);
        memset(lib, 0, sizeof *lib);
        return;
    }
    rngd_smi_return r = lib->init();
    if (r != RNGD_SMI_OK) {
        snprintf(reason, len, "furiosa_smi_init failed: %s (%d); check that the FuriosaAI RNGD driver is loaded and matches the library",
                 rngd_error(r), r);
        return;
    }
    rngd_smi_version driver;
    memset(&driver, 0, sizeof driver);
    if (lib->get_driver != NULL && lib->get_driver(&driver) == RNGD_SMI_OK)
        version_text(&driver, inst->driver_version, sizeof inst->driver_version);
    rngd_smi_handles handles;
    memset(&handles, 0, sizeof handles);
    if ((r = lib->get_handles(&handles)) != RNGD_SMI_OK) {
        snprintf(reason, len, "furiosa_smi_get_device_handles failed: %s (%d)", rngd_error(r), r);
        return;
    }
    size_t warboys = 0;
    for (uint32_t i = 0; i < handles.count && i < RNGD_SMI_MAX_DEVICE_HANDLE_SIZE; i++)
        rngd_add_device(inst, handles.handles[i], &warboys);
    if (inst->devices.count > 0)
        return;
    if (handles.count == 0)
        snprintf(reason, len, "libfuriosa_smi reports no FuriosaAI NPUs on this node");
    else if (warboys > 0)
        snprintf(reason, len, "libfuriosa_smi reports only Warboy NPUs (%zu); the warboy plugin serves them", warboys);
    else
        snprintf(reason, len, "none of the %u NPUs libfuriosa_smi reports could be queried (see the log)", handles.count);
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

static hangar_status rngd_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, RNGD_KEY, host, config_json, out, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    rngd_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    inst->host = host;
    char library[PATH_MAX];
    if ((st = hs_cfg_string(&c, "furiosa_smi_library", library, sizeof library)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK) {
        free(inst);
        return st;
    }
    rngd_discover(inst, library);
    inst->discovered = true;
    if (inst->devices.count == 0)
        host_log(host, HANGAR_LOG_INFO, "no RNGD devices: %s", inst->no_device_reason);
    *out = inst;
    return HANGAR_OK;
}

static void rngd_destroy(void *instance) { free(instance); }

static hangar_status rngd_get_info(void *instance, hangar_accel_info *info)
{
    const rngd_instance *inst = instance;
    return hs_fill_info(info, RNGD_KEY, inst->driver_version, NULL,
                        inst->devices.count > 0 ? "{\"rngd_support\":true}" : "{\"rngd_support\":false}", inst->no_device_reason);
}

static hangar_status rngd_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    rngd_instance *inst = instance;
    /* HANGAR_ACCEL_CAP_HEALTH_WATCH: a device that stopped being alive is reported unhealthy. */
    for (size_t k = 0; k < inst->devices.count; k++)
        if (!inst->npus[k].lost)
            rngd_check_liveness(inst, k);
    return hs_list_devices(&inst->devices, sink, ctx);
}

static hangar_status rngd_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(rngd_slots, RNGD_SLOT_COUNT, &((const rngd_instance *)instance)->devices, sink, ctx);
}

static hangar_status rngd_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(rngd_slots, RNGD_SLOT_COUNT, &((const rngd_instance *)instance)->devices, sink, ctx);
}

static hangar_status rngd_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const rngd_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, rngd_slots, RNGD_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    hs_strbuf pairs;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &pairs))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu devices is too long", sel.count);
    for (size_t k = 0; k < sel.count; k++) {
        const rngd_npu *n = &inst->npus[sel.picks[k].device];
        for (size_t i = 0; i < n->node_count; i++) {
            char host_path[PATH_MAX], container_path[64];
            if (!hs_pathf(host_path, sizeof host_path, "%s/rngd/npu%" PRId64 "%s", inst->dev_root, n->node, n->suffix[i]))
                return hs_fail(HANGAR_E_INVALID_CONFIG, "container_edits: dev_root %s is too long", inst->dev_root);
            snprintf(container_path, sizeof container_path, "/dev/rngd/npu%zu%s", k, n->suffix[i]);
            HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        }
    }
    HS_EDIT(edits, add_capability, "IPC_LOCK");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_resource_data, "RNGD_GLOBAL_DEVICE_IDS", pairs.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measures                                                                  */
/* ------------------------------------------------------------------------ */

/* The measures of device `k` the library can give; a query that fails skips its measure. */
static hangar_status rngd_measure_device(rngd_instance *inst, size_t k, const char *container_id, hangar_accel_measure_sink sink, void *ctx)
{
    const char *id = inst->devices.items[k].id;
    rngd_smi_handle h = inst->npus[k].handle;
    hangar_status st = HANGAR_OK;
    uint64_t total = 0, used = 0;
    double util = 0;
    if (!inst->npus[k].lost && rngd_memory(inst, k, &total, &used))
        st = hs_measure(sink, ctx, "rngd_mem", HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, (double)used, (double)total);
    if (st == HANGAR_OK && !inst->npus[k].lost && rngd_utilisation(inst, k, &util))
        st = hs_measure(sink, ctx, "rngd_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, id, container_id, util, 100.0);
    rngd_smi_temperature temperature;
    if (st == HANGAR_OK && !inst->npus[k].lost && inst->lib.get_temperature != NULL &&
        rngd_ok(inst, k, "furiosa_smi_get_device_temperature", inst->lib.get_temperature(h, &temperature)))
        st = hs_measure(sink, ctx, "rngd_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temperature.soc_peak, 0);
    rngd_smi_power power;
    if (st == HANGAR_OK && !inst->npus[k].lost && inst->lib.get_power != NULL &&
        rngd_ok(inst, k, "furiosa_smi_get_device_power_consumption", inst->lib.get_power(h, &power)))
        st = hs_measure(sink, ctx, "rngd_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power.rms_total, 0);
    return st;
}

static hangar_status rngd_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    rngd_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    hangar_status st = HANGAR_OK;
    for (size_t k = 0; st == HANGAR_OK && k < inst->devices.count; k++)
        st = rngd_measure_device(inst, k, NULL, sink, ctx);
    return st;
}

static hangar_status rngd_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                    hangar_accel_measure_sink sink, void *ctx)
{
    rngd_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    for (size_t i = 0; i < count; i++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, i);
        hangar_status st = hs_check_allocation_shape(alloc, "gather_container_measures");
        for (size_t e = 0; st == HANGAR_OK && e < alloc->entry_count; e++) {
            const hangar_accel_alloc_entry *entry = hs_entry(alloc, e);
            ptrdiff_t k = entry->slot_name != NULL && strcmp(entry->slot_name, RNGD_SLOT) == 0 ? hs_devices_find(&inst->devices, entry->device_id) : -1;
            if (k >= 0) /* entries naming no device of this plugin are skipped */
                st = rngd_measure_device(inst, (size_t)k, alloc->container_id, sink, ctx);
        }
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char rngd_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"furiosa_smi_library\":{\"type\":\"string\",\"minLength\":1,\"default\":\"libfuriosa_smi.so\","
    "\"description\":\"Name or path of FuriosaAI's libfuriosa_smi to dlopen (from the furiosa-smi package).\"},"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted; a device's NUMA node and nearest CPUs are read from "
    "<sysfs_root>/bus/pci/devices/<bdf>/numa_node and local_cpulist.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes are: <dev_root>/rngd/npu<N>* (an absolute path); containers see them renumbered "
    "under /dev/rngd.\"}}}";

static const hangar_accelerator_functions rngd_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = rngd_create,
    .destroy = rngd_destroy,
    .last_error = hs_last_error,
    .get_info = rngd_get_info,
    .list_devices = rngd_list_devices,
    .list_slots = rngd_list_slots,
    .list_device_slots = rngd_list_device_slots,
    .container_edits = rngd_container_edits,
    .gather_node_measures = rngd_gather_node_measures,
    .gather_container_measures = rngd_gather_container_measures,
};

static const char *const rngd_slot_names[] = {RNGD_SLOT, NULL};

static const hangar_plugin_descriptor rngd_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS | HANGAR_ACCEL_CAP_HEALTH_WATCH,
    .name = RNGD_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "FuriosaAI RNGD NPUs through libfuriosa_smi: whole-device rngd.device slots, renumbered /dev/rngd nodes, memory, "
                   "utilisation, temperature and power metrics",
    .license = "Apache-2.0",
    .config_schema = rngd_schema,
    .static_slot_names = rngd_slot_names,
    .functions = &rngd_functions,
    .homepage = "https://developer.furiosa.ai/",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(rngd_descriptor, 2)
