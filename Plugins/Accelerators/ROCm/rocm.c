/*
 * Hangar accelerator plugin for AMD GPUs under ROCm ("rocm").
 *
 * Discovers GPUs once, at create(), from the amdgpu driver's KFD topology in
 * sysfs: every <sysfs_root>/class/kfd/kfd/topology/nodes/<N>/ with a non-zero
 * simd_count is one GPU agent (CPU nodes have simd_count 0), in node order,
 * which is the order ROCr and HIP number GPUs. Its properties give the render
 * minor, PCI location (domain, location_id), unique_id and compute units; its
 * mem_banks/<i>/properties the VRAM (size_in_bytes). The PCI function's sysfs
 * (<sysfs_root>/bus/pci/devices/<addr>/) gives the NUMA node, local_cpulist,
 * the board serial_number and product_name (FRU), vbios_version and link.
 *
 * Multi-die parts are one device, as in Backend.AI: the two GCDs of an
 * MI250X (two KFD nodes, two PCI functions, distinct unique_ids, one board
 * serial) or the partitions of an MI300X (KFD nodes sharing a unique_id) are
 * grouped by board serial_number, or by unique_id where the board has no
 * serial. A device's memory and compute units are the sums over its XCDs
 * (its KFD nodes); its id is the ROCr/HIP index of its first XCD.
 *
 * librocm_smi64 (config rocm_smi_library, dlopen'ed, optional) adds the
 * measures rocm_mem (bytes of VRAM used, capacity the total), rocm_util
 * (busy percent, averaged over XCDs), rocm_temp (Celsius: edge, else
 * junction; the hottest XCD) and rocm_power (watts summed over XCDs; capacity
 * the power cap), for the node and for each container's devices. Without the
 * library the devices are still found; they just have no measures.
 *
 * Health (documented signals, re-checked by list_devices):
 *   unhealthy  a KFD node with no render minor (or gpu_id 0), a render node
 *              missing from <dev_root>/dri, or, with rocm_smi loaded, an XCD
 *              rocm_smi does not list or whose busy-percent/VRAM queries fail
 *              (a hung GPU makes amdgpu's sysfs reads fail: rocm_smi answers
 *              RSMI_STATUS_UNEXPECTED_SIZE or another error)
 *   degraded   amdgpu RAS counts uncorrectable memory errors (ras/umc_err_count)
 *
 * Slot: rocm.device (whole devices, exclusive). A container gets /dev/kfd and
 * the render node of every XCD of its devices, under the same paths: ROCr
 * finds GPUs through the (un-namespaced) KFD topology and opens
 * /dev/dri/renderD<drm_render_minor>, skipping nodes it cannot open, so a
 * render node must keep its minor (Backend.AI does not renumber them either).
 * Inside, the runtime sees only its XCDs, numbered from 0 in KFD order, so
 * ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES list 0..n-1 (one per XCD).
 * Plus groups video and render, security opt seccomp=unconfined (what
 * Backend.AI sets; the agent may refuse it by policy) and the resource line
 * ROCm_GLOBAL_DEVICE_IDS=<local>:<device id>,...
 *
 * Config: sysfs_root ("/sys"), dev_root ("/dev"), rocm_smi_library
 * ("librocm_smi64.so.1").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup, readdir, and the support header's open/read/pipe2 */
#endif

#include <hangar/support.h>

#include <dirent.h>
#include <limits.h>

#include "rocm_smi_abi.h"

#define ROCM_KEY "rocm"
#define ROCM_SLOT "rocm.device"
/** XCDs (KFD nodes) one device may have: 2 on MI250X, up to 8 partitions on MI300X. */
#define ROCM_MAX_XCDS 16
/** KFD nodes read at most (CPUs and GPUs). */
#define ROCM_MAX_NODES 1024
/** The first DRM render minor (/dev/dri/renderD128). */
#define ROCM_RENDER_MINOR_BASE 128

/* ------------------------------------------------------------------------ */
/* Instance state                                                            */
/* ------------------------------------------------------------------------ */

/** One KFD GPU node (an XCD, GCD or partition). */
typedef struct rocm_xcd {
    uint32_t node;         /* KFD sysfs node number */
    uint32_t rocr_index;   /* rank among GPU nodes: the host's ROCr/HIP index */
    uint32_t render_minor; /* 0 when KFD names none */
    uint64_t unique_id;
    uint64_t bdf;          /* rocm_smi's BDFID form: domain << 32 | location_id (partition, bus, dev, fn) */
    char pci[16];          /* "0000:29:00.0" */
    int32_t smi;           /* rocm_smi device index, -1 when rocm_smi does not list it */
} rocm_xcd;

/** What the plugin keeps of a device beyond its hs_device (same position in the table). */
typedef struct rocm_gpu {
    size_t xcd_count;
    rocm_xcd xcds[ROCM_MAX_XCDS];
    /** Health from sysfs alone (fixed at create()); rocm_smi can only make it worse. */
    uint32_t sysfs_health;
    char sysfs_reason[160];
    char group_key[96];
    char gfx[16];        /* "gfx90a" */
    bool model_from_kfd; /* no FRU product_name: the model is a placeholder rocm_smi may name better */
} rocm_gpu;

typedef struct rocm_smi {
    rsmi_init_fn init;
    rsmi_shut_down_fn shut_down;
    rsmi_num_monitor_devices_fn num_devices;
    rsmi_dev_pci_id_get_fn pci_id;
    rsmi_dev_memory_total_get_fn memory_total;
    rsmi_dev_memory_usage_get_fn memory_usage;
    rsmi_dev_busy_percent_get_fn busy_percent;
    rsmi_dev_temp_metric_get_fn temp_metric;
    /* Optional: NULL when the library lacks them. */
    rsmi_status_string_fn status_string;
    rsmi_version_get_fn version;
    rsmi_dev_drm_render_minor_get_fn render_minor;
    rsmi_dev_name_get_fn name;
    rsmi_dev_serial_number_get_fn serial;
    rsmi_dev_power_ave_get_fn power_ave;
    rsmi_dev_current_socket_power_get_fn socket_power;
    rsmi_dev_power_cap_get_fn power_cap;
} rocm_smi;

typedef struct rocm_instance {
    const hangar_host_services *host;
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    rocm_smi smi;
    bool smi_ready;        /* loaded and rsmi_init succeeded */
    char smi_version[32];  /* "" if unknown */
    char smi_problem[400]; /* why rocm_smi is not used; "" when it is */
    hs_device_table devices;
    rocm_gpu gpus[HS_MAX_DEVICES];
    char driver_version[64];
    hs_strbuf extra_info;
    char no_device_reason[640];
} rocm_instance;

static const hs_slot_spec rocm_slots[] = {
    {.name = ROCM_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "ROCm GPU", .display_unit = "GPU"},
};
#define ROCM_SLOT_COUNT (sizeof rocm_slots / sizeof rocm_slots[0])

static HS_PRINTF(3, 4) void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...)
{
    if (!HS_HAS_FIELD(hangar_host_services, log, host->struct_size) || host->log == NULL)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

/* ------------------------------------------------------------------------ */
/* sysfs                                                                     */
/* ------------------------------------------------------------------------ */

/* KFD "properties" files are "<name> <value>" lines; values are unsigned and may use all 64 bits (unique_id, hive_id). */
static bool kfd_prop(const char *text, const char *name, uint64_t *out)
{
    size_t n = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(line + n + 1, &end, 10);
            if (end == line + n + 1 || errno != 0 || (*end != '\n' && *end != '\0'))
                return false;
            *out = (uint64_t)v;
            return true;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return false;
}

static int node_order(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sum of size_in_bytes over <node>/mem_banks/<i>/properties (a dGPU's banks are its VRAM). */
static uint64_t node_memory(const char *node_dir)
{
    char path[PATH_MAX + 32];
    if (!hs_pathf(path, sizeof path, "%s/mem_banks", node_dir))
        return 0;
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    uint64_t total = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char text[1024];
        uint64_t size = 0;
        hs_read_textf(text, sizeof text, "%s/%s/properties", path, entry->d_name);
        if (kfd_prop(text, "size_in_bytes", &size))
            total += size;
    }
    closedir(dir);
    return total;
}

/* A board serial worth grouping by: present, not a placeholder of zeros or "N/A". */
static bool usable_serial(const char *s)
{
    if (s[0] == '\0' || strcmp(s, "N/A") == 0)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (*p != '0' && *p != ' ')
            return true;
    return false;
}

/* "16.0 GT/s PCIe" and "16" from the PCI function's current_link_speed/width, as "16.0 GT/s PCIe x16". */
static void read_link(const char *sysfs_root, const char *pci, char *out, size_t len)
{
    char speed[48], width[16];
    hs_read_textf(speed, sizeof speed, "%s/bus/pci/devices/%s/current_link_speed", sysfs_root, pci);
    hs_read_textf(width, sizeof width, "%s/bus/pci/devices/%s/current_link_width", sysfs_root, pci);
    out[0] = '\0';
    if (speed[0] != '\0' && strncmp(speed, "Unknown", 7) != 0)
        snprintf(out, len, width[0] != '\0' ? "%s x%s" : "%s", speed, width);
}

/* amdgpu RAS: "ue: <n>\nce: <n>" in ras/umc_err_count; the uncorrectable count, or 0 when absent. */
static uint64_t ras_uncorrectable(const char *sysfs_root, const char *pci)
{
    char text[128];
    hs_read_textf(text, sizeof text, "%s/bus/pci/devices/%s/ras/umc_err_count", sysfs_root, pci);
    const char *ue = strstr(text, "ue:");
    return ue != NULL ? strtoull(ue + 3, NULL, 10) : 0;
}

/* gfx_target_version 90010 -> "gfx90a" (major, minor, stepping in hex), as ROCm names targets. */
static void gfx_name(uint64_t target, char *out, size_t len)
{
    if (target == 0)
        out[0] = '\0';
    else
        snprintf(out, len, "gfx%u%u%x", (unsigned)(target / 10000), (unsigned)(target / 100 % 100), (unsigned)(target % 100));
}

/* Appends `s` as a JSON string. */
static void json_string(hs_strbuf *b, const char *s)
{
    hs_strbuf_addf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        hs_strbuf_addf(b, *p == '"' || *p == '\\' ? "\\%c" : *p < 0x20 ? "\\u%04x" : "%c", *p);
    hs_strbuf_addf(b, "\"");
}

/* ------------------------------------------------------------------------ */
/* rocm_smi                                                                  */
/* ------------------------------------------------------------------------ */

static const char *smi_error(const rocm_instance *inst, rsmi_status_t r, char *buf, size_t len)
{
    const char *text = NULL;
    if (inst->smi.status_string == NULL || inst->smi.status_string(r, &text) != RSMI_STATUS_SUCCESS || text == NULL)
        text = "rocm_smi error";
    snprintf(buf, len, "%.150s (status %u)", text, r);
    return buf;
}

#define SMI_LOAD(inst, lib, field, sym, required)                                \
    do {                                                                         \
        void (*p_)(void) = hs_library_symbol((lib), #sym);                      \
        memcpy(&(inst)->smi.field, &p_, sizeof p_);                             \
        if (p_ == NULL && (required) && missing == NULL)                        \
            missing = #sym;                                                      \
    } while (0)

/* Loads and initialises rocm_smi; on failure says why in smi_problem (the devices stay, without measures). */
static void smi_open(rocm_instance *inst, const char *library)
{
    void *lib = hs_library_open(library);
    if (lib == NULL) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        snprintf(inst->smi_problem, sizeof inst->smi_problem, "%.300s", why);
        return;
    }
    /* The library stays mapped for the life of the process: it keeps threads and singletons. */
    const char *missing = NULL;
    SMI_LOAD(inst, lib, init, rsmi_init, true);
    SMI_LOAD(inst, lib, shut_down, rsmi_shut_down, true);
    SMI_LOAD(inst, lib, num_devices, rsmi_num_monitor_devices, true);
    SMI_LOAD(inst, lib, pci_id, rsmi_dev_pci_id_get, true);
    SMI_LOAD(inst, lib, memory_total, rsmi_dev_memory_total_get, true);
    SMI_LOAD(inst, lib, memory_usage, rsmi_dev_memory_usage_get, true);
    SMI_LOAD(inst, lib, busy_percent, rsmi_dev_busy_percent_get, true);
    SMI_LOAD(inst, lib, temp_metric, rsmi_dev_temp_metric_get, true);
    SMI_LOAD(inst, lib, status_string, rsmi_status_string, false);
    SMI_LOAD(inst, lib, version, rsmi_version_get, false);
    SMI_LOAD(inst, lib, render_minor, rsmi_dev_drm_render_minor_get, false);
    SMI_LOAD(inst, lib, name, rsmi_dev_name_get, false);
    SMI_LOAD(inst, lib, serial, rsmi_dev_serial_number_get, false);
    SMI_LOAD(inst, lib, power_ave, rsmi_dev_power_ave_get, false);
    SMI_LOAD(inst, lib, socket_power, rsmi_dev_current_socket_power_get, false);
    SMI_LOAD(inst, lib, power_cap, rsmi_dev_power_cap_get, false);
    if (missing != NULL) {
        snprintf(inst->smi_problem, sizeof inst->smi_problem, "%.200s lacks %s; it is not rocm_smi or is too old", library, missing);
        memset(&inst->smi, 0, sizeof inst->smi);
        return;
    }
    rsmi_status_t r = inst->smi.init(0);
    if (r != RSMI_STATUS_SUCCESS) {
        char e[200];
        snprintf(inst->smi_problem, sizeof inst->smi_problem, "rsmi_init failed: %s", smi_error(inst, r, e, sizeof e));
        return;
    }
    inst->smi_ready = true;
    rsmi_version_t v;
    memset(&v, 0, sizeof v);
    if (inst->smi.version != NULL && inst->smi.version(&v) == RSMI_STATUS_SUCCESS)
        snprintf(inst->smi_version, sizeof inst->smi_version, "%u.%u.%u", v.major, v.minor, v.patch);
}

/*
 * Gives each XCD its rocm_smi index: by render minor where the library can say
 * it (exact, also for partitions of one PCI function), else by BDFID, whose
 * partition bits KFD's location_id carries too.
 */
static void smi_match(rocm_instance *inst)
{
    uint32_t count = 0;
    rsmi_status_t r = inst->smi.num_devices(&count);
    if (r != RSMI_STATUS_SUCCESS) {
        char e[200];
        snprintf(inst->smi_problem, sizeof inst->smi_problem, "rsmi_num_monitor_devices failed: %s", smi_error(inst, r, e, sizeof e));
        inst->smi_ready = false;
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t minor = 0;
        uint64_t bdf = 0;
        bool by_minor = inst->smi.render_minor != NULL && inst->smi.render_minor(i, &minor) == RSMI_STATUS_SUCCESS && minor != 0;
        bool by_bdf = !by_minor && inst->smi.pci_id(i, &bdf) == RSMI_STATUS_SUCCESS;
        for (size_t k = 0; k < inst->devices.count; k++) {
            rocm_gpu *g = &inst->gpus[k];
            for (size_t x = 0; x < g->xcd_count; x++) {
                rocm_xcd *xcd = &g->xcds[x];
                if (xcd->smi < 0 && ((by_minor && xcd->render_minor == minor) ||
                                     (by_bdf && (xcd->bdf & 0xFFFFFFFFF000FFFFull) == (bdf & 0xFFFFFFFFF000FFFFull)))) {
                    xcd->smi = (int32_t)i;
                    goto next;
                }
            }
        }
    next:;
    }
}

/* Re-derives each device's health: its sysfs health, worsened by rocm_smi failing to reach one of its XCDs. */
static void refresh_health(rocm_instance *inst)
{
    for (size_t k = 0; k < inst->devices.count; k++) {
        hs_device *d = &inst->devices.items[k];
        const rocm_gpu *g = &inst->gpus[k];
        uint32_t was = d->health;
        d->health = g->sysfs_health;
        snprintf(d->health_reason, sizeof d->health_reason, "%s", g->sysfs_reason);
        if (!inst->smi_ready || d->health == HANGAR_HEALTH_UNHEALTHY)
            continue;
        for (size_t x = 0; x < g->xcd_count; x++) {
            const rocm_xcd *xcd = &g->xcds[x];
            char e[200];
            uint32_t busy = 0;
            uint64_t total = 0;
            rsmi_status_t r = RSMI_STATUS_SUCCESS;
            const char *what = NULL;
            if (xcd->smi < 0) {
                d->health = HANGAR_HEALTH_UNHEALTHY;
                snprintf(d->health_reason, sizeof d->health_reason, "rocm_smi does not list the GPU at %s (KFD node %u)", xcd->pci, xcd->node);
                break;
            }
            if ((r = inst->smi.busy_percent((uint32_t)xcd->smi, &busy)) != RSMI_STATUS_SUCCESS && r != RSMI_STATUS_NOT_SUPPORTED)
                what = "rsmi_dev_busy_percent_get";
            else if ((r = inst->smi.memory_total((uint32_t)xcd->smi, RSMI_MEM_TYPE_VRAM, &total)) != RSMI_STATUS_SUCCESS &&
                     r != RSMI_STATUS_NOT_SUPPORTED)
                what = "rsmi_dev_memory_total_get";
            if (what != NULL) {
                d->health = HANGAR_HEALTH_UNHEALTHY;
                snprintf(d->health_reason, sizeof d->health_reason, "%s for %s failed: %.100s", what, xcd->pci, smi_error(inst, r, e, sizeof e));
                break;
            }
        }
        if (d->health != was && was != 0)
            host_log(inst->host, d->health == HANGAR_HEALTH_HEALTHY ? HANGAR_LOG_NOTICE : HANGAR_LOG_WARNING, "GPU %s (%s) is now %s%s%s", d->id,
                     d->hw_location, d->health == HANGAR_HEALTH_HEALTHY ? "healthy" : d->health == HANGAR_HEALTH_DEGRADED ? "degraded" : "unhealthy",
                     d->health_reason[0] != '\0' ? ": " : "", d->health_reason);
    }
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

/* Reads one KFD GPU node into `xcd`; its sysfs problems (if any) into `problem`. False for a CPU node. */
static bool read_node(rocm_instance *inst, const char *nodes_dir, uint32_t node, rocm_xcd *xcd, uint64_t *memory, uint32_t *cus,
                      char *gfx, size_t gfx_len, char *asic, size_t asic_len, char *problem, size_t problem_len)
{
    char dir[PATH_MAX + 32], props[8192];
    if (!hs_pathf(dir, sizeof dir, "%s/%u", nodes_dir, node))
        return false;
    hs_read_textf(props, sizeof props, "%s/properties", dir);
    uint64_t simd = 0, minor = 0, location = 0, domain = 0, unique = 0, simd_per_cu = 0, target = 0;
    if (!kfd_prop(props, "simd_count", &simd) || simd == 0)
        return false; /* a CPU node (or one whose properties the device cgroup hides) */
    kfd_prop(props, "drm_render_minor", &minor);
    kfd_prop(props, "location_id", &location);
    kfd_prop(props, "domain", &domain);
    kfd_prop(props, "unique_id", &unique);
    kfd_prop(props, "gfx_target_version", &target);
    if (!kfd_prop(props, "simd_per_cu", &simd_per_cu) || simd_per_cu == 0)
        simd_per_cu = 4; /* every GCN/CDNA/RDNA CU has 4 SIMDs (RDNA reports 2 per CU, and says so) */
    memset(xcd, 0, sizeof *xcd);
    xcd->node = node;
    xcd->render_minor = minor >= ROCM_RENDER_MINOR_BASE && minor < 1u << 20 ? (uint32_t)minor : 0;
    xcd->unique_id = unique;
    xcd->bdf = (domain & 0xFFFFFFFFull) << 32 | (location & 0xF000FFFFull);
    xcd->smi = -1;
    snprintf(xcd->pci, sizeof xcd->pci, "%04x:%02x:%02x.%x", (unsigned)(domain & 0xFFFF), (unsigned)((location >> 8) & 0xFF),
             (unsigned)((location >> 3) & 0x1F), (unsigned)(location & 0x7));
    *memory = node_memory(dir);
    *cus = (uint32_t)(simd / simd_per_cu);
    gfx_name(target, gfx, gfx_len);
    hs_read_textf(asic, asic_len, "%s/name", dir);

    problem[0] = '\0';
    int64_t gpu_id = hs_read_i64f(0, "%s/gpu_id", dir);
    char render[PATH_MAX + 48];
    if (gpu_id <= 0)
        snprintf(problem, problem_len, "KFD node %u reports no gpu_id: the GPU is not usable by ROCm", node);
    else if (xcd->render_minor == 0)
        snprintf(problem, problem_len, "KFD node %u names no DRM render node (drm_render_minor %llu)", node, (unsigned long long)minor);
    else if (hs_pathf(render, sizeof render, "%s/dri/renderD%u", inst->dev_root, xcd->render_minor) && !hs_path_exists(render))
        snprintf(problem, problem_len, "render node %.100s of KFD node %u is missing", render, node);
    return true;
}

/* The device whose group key is `key`, or a new one; SIZE_MAX when the table is full. */
static size_t device_for_key(rocm_instance *inst, const char *key, bool *is_new)
{
    for (size_t k = 0; k < inst->devices.count; k++)
        if (strcmp(inst->gpus[k].group_key, key) == 0 && inst->gpus[k].xcd_count < ROCM_MAX_XCDS) {
            *is_new = false;
            return k;
        }
    *is_new = true;
    return hs_devices_add(&inst->devices) != NULL ? inst->devices.count - 1 : SIZE_MAX;
}

/* Fills a new device's facts from its first XCD. */
static void describe_device(rocm_instance *inst, size_t k, const char *serial, const char *gfx, const char *asic)
{
    hs_device *d = &inst->devices.items[k];
    const rocm_xcd *x0 = &inst->gpus[k].xcds[0];
    const char *root = inst->sysfs_root;
    d->index = x0->rocr_index;
    snprintf(d->id, sizeof d->id, "%u", x0->rocr_index);
    memcpy(d->hw_location, x0->pci, sizeof x0->pci); /* NUL-terminated within its 16 bytes; memcpy as gcc -O2 -Wrestrict cannot tell d from x0 */
    hs_read_pci_locality(root, x0->pci, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    hs_read_textf(d->model, sizeof d->model, "%s/bus/pci/devices/%s/product_name", root, x0->pci);
    inst->gpus[k].model_from_kfd = d->model[0] == '\0';
    snprintf(inst->gpus[k].gfx, sizeof inst->gpus[k].gfx, "%s", gfx);
    if (d->model[0] == '\0')
        snprintf(d->model, sizeof d->model, "AMD GPU%s%.40s%s%.16s%s", asic[0] || gfx[0] ? " (" : "", asic, asic[0] && gfx[0] ? ", " : "", gfx,
                 asic[0] || gfx[0] ? ")" : "");
    if (x0->unique_id != 0)
        snprintf(d->uuid, sizeof d->uuid, "GPU-%016llx", (unsigned long long)x0->unique_id); /* ROCr's UUID form */
    snprintf(d->board_id, sizeof d->board_id, "%s", serial);
    hs_read_textf(d->firmware_version, sizeof d->firmware_version, "%s/bus/pci/devices/%s/vbios_version", root, x0->pci);
    read_link(root, x0->pci, d->link_speed, sizeof d->link_speed);
}

/* After all XCDs are in: sysfs health and the extra facts of device k. */
static void finish_device(rocm_instance *inst, size_t k)
{
    hs_device *d = &inst->devices.items[k];
    rocm_gpu *g = &inst->gpus[k];
    hs_strbuf extra = {.len = 0};
    hs_strbuf_addf(&extra, "{\"gfx_target\":");
    json_string(&extra, g->gfx);
    hs_strbuf_addf(&extra, ",\"xcds\":%zu,\"kfd_nodes\":[", g->xcd_count);
    for (size_t x = 0; x < g->xcd_count; x++)
        hs_strbuf_addf(&extra, "%s%u", x ? "," : "", g->xcds[x].node);
    hs_strbuf_addf(&extra, "],\"render_minors\":[");
    for (size_t x = 0; x < g->xcd_count; x++)
        hs_strbuf_addf(&extra, "%s%u", x ? "," : "", g->xcds[x].render_minor);
    hs_strbuf_addf(&extra, "]}");
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);
    if (g->sysfs_health == HANGAR_HEALTH_HEALTHY) {
        for (size_t x = 0; x < g->xcd_count; x++) {
            char pci[sizeof g->xcds[x].pci]; /* a copy: gcc cannot tell the fields of *g apart under -Wrestrict */
            memcpy(pci, g->xcds[x].pci, sizeof pci);
            uint64_t ue = ras_uncorrectable(inst->sysfs_root, pci);
            if (ue > 0) {
                g->sysfs_health = HANGAR_HEALTH_DEGRADED;
                snprintf(g->sysfs_reason, sizeof g->sysfs_reason, "amdgpu RAS counts %llu uncorrectable memory error(s) on %s",
                         (unsigned long long)ue, pci);
                break;
            }
        }
    }
    d->health = 0; /* refresh_health sets it without logging a change */
}

static void discover(rocm_instance *inst)
{
    char nodes_dir[PATH_MAX + 64];
    char *reason = inst->no_device_reason;
    size_t reason_len = sizeof inst->no_device_reason;
    if (!hs_pathf(nodes_dir, sizeof nodes_dir, "%s/class/kfd/kfd/topology/nodes", inst->sysfs_root)) {
        snprintf(reason, reason_len, "sysfs_root is too long");
        return;
    }
    DIR *dir = opendir(nodes_dir);
    if (dir == NULL) {
        snprintf(reason, reason_len,
                 "no KFD topology at %.300s (%s): the amdgpu driver is not loaded, or the kernel was built without KFD (HSA_AMD)", nodes_dir,
                 strerror(errno));
        return;
    }
    uint32_t *nodes = malloc(ROCM_MAX_NODES * sizeof *nodes);
    size_t node_count = 0;
    if (nodes == NULL) {
        closedir(dir);
        snprintf(reason, reason_len, "out of memory reading the KFD topology");
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && node_count < ROCM_MAX_NODES) {
        char *end = NULL;
        unsigned long n = strtoul(entry->d_name, &end, 10);
        if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9' && *end == '\0' && n < UINT32_MAX)
            nodes[node_count++] = (uint32_t)n;
    }
    closedir(dir);
    qsort(nodes, node_count, sizeof nodes[0], node_order);

    uint32_t gpu_nodes = 0;
    for (size_t i = 0; i < node_count; i++) {
        rocm_xcd xcd;
        uint64_t memory = 0;
        uint32_t cus = 0;
        char gfx[16], asic[64], problem[160], serial[64], key[96];
        if (!read_node(inst, nodes_dir, nodes[i], &xcd, &memory, &cus, gfx, sizeof gfx, asic, sizeof asic, problem, sizeof problem))
            continue;
        xcd.rocr_index = gpu_nodes++;
        /* One board, one device: the FRU serial is shared by an MI250X's two GCDs; an MI300X's partitions share the unique_id too. */
        hs_read_textf(serial, sizeof serial, "%s/bus/pci/devices/%s/serial_number", inst->sysfs_root, xcd.pci);
        if (usable_serial(serial))
            snprintf(key, sizeof key, "serial:%s", serial);
        else if (xcd.unique_id != 0)
            snprintf(key, sizeof key, "uid:%016llx", (unsigned long long)xcd.unique_id);
        else
            snprintf(key, sizeof key, "node:%u", xcd.node);
        if (!usable_serial(serial))
            serial[0] = '\0';
        bool is_new = false;
        size_t k = device_for_key(inst, key, &is_new);
        if (k == SIZE_MAX) {
            host_log(inst->host, HANGAR_LOG_WARNING, "ignoring KFD node %u and later ones: this plugin handles at most %d devices", xcd.node,
                     HS_MAX_DEVICES);
            break;
        }
        rocm_gpu *g = &inst->gpus[k];
        hs_device *d = &inst->devices.items[k];
        if (is_new) {
            memset(g, 0, sizeof *g);
            g->sysfs_health = HANGAR_HEALTH_HEALTHY;
            snprintf(g->group_key, sizeof g->group_key, "%s", key);
        }
        g->xcds[g->xcd_count++] = xcd;
        d->memory_bytes += memory;
        d->processing_units += cus;
        if (problem[0] != '\0' && g->sysfs_health != HANGAR_HEALTH_UNHEALTHY) {
            g->sysfs_health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(g->sysfs_reason, sizeof g->sysfs_reason, "%s", problem);
        }
        if (is_new)
            describe_device(inst, k, serial, gfx, asic);
    }
    free(nodes);
    for (size_t k = 0; k < inst->devices.count; k++)
        finish_device(inst, k);
    if (inst->devices.count == 0)
        snprintf(reason, reason_len,
                 "the KFD topology in %.300s lists %zu node(s) and no GPU among them: amdgpu has initialised no GPU for ROCm (see dmesg)",
                 nodes_dir, node_count);
}

/* ------------------------------------------------------------------------ */
/* Instance lifecycle                                                        */
/* ------------------------------------------------------------------------ */

static void rocm_destroy(void *instance)
{
    rocm_instance *inst = instance;
    if (inst == NULL)
        return;
    if (inst->smi_ready)
        inst->smi.shut_down();
    free(inst);
}

static hangar_status rocm_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    rocm_instance *inst = NULL;
    char library[PATH_MAX];
    hangar_status st = hs_create_begin(&c, ROCM_KEY, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    /* The schema gives every key a default: no fallbacks here. */
    if (st == HANGAR_OK && ((st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
                            (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
                            (st = hs_cfg_string(&c, "rocm_smi_library", library, sizeof library)) != HANGAR_OK)) {
        rocm_destroy(inst);
        return st;
    }
    if (st != HANGAR_OK)
        return st;
    inst->host = host;
    discover(inst);
    if (inst->devices.count > 0) {
        /* rocm_smi only when there is something to measure: it is slow to start and sysfs already said there are no GPUs. */
        smi_open(inst, library);
        if (inst->smi_ready)
            smi_match(inst);
        if (!inst->smi_ready)
            host_log(host, HANGAR_LOG_NOTICE, "no ROCm measures: %s", inst->smi_problem);
        for (size_t k = 0; k < inst->devices.count; k++) {
            /* Facts only rocm_smi knows (model and serial without FRU data in sysfs) now that XCDs are matched. */
            hs_device *d = &inst->devices.items[k];
            const rocm_xcd *x0 = &inst->gpus[k].xcds[0];
            char model[128];
            if (inst->smi_ready && inst->smi.name != NULL && x0->smi >= 0 && inst->gpus[k].model_from_kfd &&
                inst->smi.name((uint32_t)x0->smi, model, sizeof model) == RSMI_STATUS_SUCCESS) {
                model[sizeof model - 1] = '\0';
                if (model[0] != '\0')
                    snprintf(d->model, sizeof d->model, "%s", model);
            }
            if (d->board_id[0] == '\0' && inst->smi_ready && inst->smi.serial != NULL && x0->smi >= 0 &&
                inst->smi.serial((uint32_t)x0->smi, d->board_id, sizeof d->board_id) != RSMI_STATUS_SUCCESS)
                d->board_id[0] = '\0';
            d->board_id[sizeof d->board_id - 1] = '\0';
        }
    } else {
        host_log(host, HANGAR_LOG_INFO, "no GPUs: %s", inst->no_device_reason);
    }
    refresh_health(inst);
    hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/module/amdgpu/version", inst->sysfs_root);
    hs_strbuf_addf(&inst->extra_info, "{\"rocm_support\":%s,\"driver_version\":", inst->devices.count > 0 ? "true" : "false");
    if (inst->driver_version[0] != '\0')
        json_string(&inst->extra_info, inst->driver_version);
    else
        hs_strbuf_addf(&inst->extra_info, "null");
    hs_strbuf_addf(&inst->extra_info, ",\"rocm_smi_version\":");
    if (inst->smi_version[0] != '\0')
        json_string(&inst->extra_info, inst->smi_version);
    else
        hs_strbuf_addf(&inst->extra_info, "null");
    hs_strbuf_addf(&inst->extra_info, "}");
    host_log(host, HANGAR_LOG_INFO, "%zu GPU(s), amdgpu %s, rocm_smi %s", inst->devices.count,
             inst->driver_version[0] ? inst->driver_version : "(in-tree)", inst->smi_ready ? "loaded" : "not used");
    *out_instance = inst;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

static hangar_status rocm_get_info(void *instance, hangar_accel_info *info)
{
    const rocm_instance *inst = instance;
    return hs_fill_info(info, ROCM_KEY, inst->driver_version, NULL, inst->extra_info.text, inst->no_device_reason);
}

static hangar_status rocm_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    rocm_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    refresh_health(inst); /* HANGAR_ACCEL_CAP_HEALTH_WATCH: rocm_smi may have lost or regained a GPU */
    return hs_list_devices(&inst->devices, sink, sink_context);
}

static hangar_status rocm_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    return hs_list_slots(rocm_slots, ROCM_SLOT_COUNT, &((const rocm_instance *)instance)->devices, sink, sink_context);
}

static hangar_status rocm_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    return hs_list_device_slots(rocm_slots, ROCM_SLOT_COUNT, &((const rocm_instance *)instance)->devices, sink, sink_context);
}

static hangar_status rocm_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    const rocm_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(allocation, edits);
    if (st != HANGAR_OK || (st = hs_select(allocation, &inst->devices, rocm_slots, ROCM_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK)
        return st;
    if (sel.count == 0)
        return HANGAR_OK;

    /* The runtime in the container numbers the XCDs it can open from 0, in KFD order (= list order). */
    hs_strbuf visible = {.len = 0}, global_ids;
    size_t local = 0;
    for (size_t k = 0; k < sel.count; k++)
        for (size_t x = 0; x < inst->gpus[sel.picks[k].device].xcd_count; x++) {
            char n[24];
            snprintf(n, sizeof n, "%zu", local++);
            hs_strbuf_add_item(&visible, ",", n);
        }
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &global_ids) || visible.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the device lists of %zu GPUs do not fit", sel.count);

    char host_path[PATH_MAX + 48], container_path[48];
    if (!hs_pathf(host_path, sizeof host_path, "%s/kfd", inst->dev_root))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "container_edits: dev_root is too long");
    HS_EDIT(edits, add_device_node, host_path, "/dev/kfd", "rwm");
    for (size_t k = 0; k < sel.count; k++) {
        const rocm_gpu *g = &inst->gpus[sel.picks[k].device];
        for (size_t x = 0; x < g->xcd_count; x++) {
            /* Same minor inside: ROCr maps KFD nodes to /dev/dri/renderD<drm_render_minor>. */
            hs_pathf(host_path, sizeof host_path, "%s/dri/renderD%u", inst->dev_root, g->xcds[x].render_minor);
            snprintf(container_path, sizeof container_path, "/dev/dri/renderD%u", g->xcds[x].render_minor);
            HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        }
    }
    HS_EDIT(edits, add_group, "video");
    HS_EDIT(edits, add_group, "render");
    HS_EDIT(edits, add_security_opt, "seccomp=unconfined");
    HS_EDIT(edits, add_env, "ROCR_VISIBLE_DEVICES", visible.text);
    HS_EDIT(edits, add_env, "HIP_VISIBLE_DEVICES", visible.text);
    HS_EDIT(edits, add_resource_data, "ROCm_GLOBAL_DEVICE_IDS", global_ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

/* Emits what rocm_smi can say of device k; a measure that fails on any of its XCDs is left out rather than half-summed. */
static hangar_status measure_device(const rocm_instance *inst, size_t k, const char *container_id, hangar_accel_measure_sink sink, void *ctx)
{
    const rocm_smi *s = &inst->smi;
    const rocm_gpu *g = &inst->gpus[k];
    const char *id = inst->devices.items[k].id;
    uint64_t used = 0, total = 0, power = 0, cap = 0;
    double busy = 0, temp = -1;
    bool mem_ok = true, util_ok = true, temp_ok = true, power_ok = true, any_power = false;
    for (size_t x = 0; x < g->xcd_count; x++) {
        if (g->xcds[x].smi < 0)
            return HANGAR_OK;
        uint32_t i = (uint32_t)g->xcds[x].smi, b = 0;
        uint64_t u = 0, t = 0, p = 0, c = 0;
        int64_t milli = 0;
        mem_ok = mem_ok && s->memory_usage(i, RSMI_MEM_TYPE_VRAM, &u) == RSMI_STATUS_SUCCESS &&
                 s->memory_total(i, RSMI_MEM_TYPE_VRAM, &t) == RSMI_STATUS_SUCCESS;
        used += u;
        total += t;
        util_ok = util_ok && s->busy_percent(i, &b) == RSMI_STATUS_SUCCESS && b <= 100;
        busy += b;
        if (temp_ok) {
            temp_ok = s->temp_metric(i, RSMI_TEMP_TYPE_EDGE, RSMI_TEMP_CURRENT, &milli) == RSMI_STATUS_SUCCESS ||
                      s->temp_metric(i, RSMI_TEMP_TYPE_JUNCTION, RSMI_TEMP_CURRENT, &milli) == RSMI_STATUS_SUCCESS;
            if (temp_ok && milli / 1000.0 > temp)
                temp = milli / 1000.0;
        }
        /* Power is per package: an MI250X reports it on one GCD and answers NOT_SUPPORTED on the other. */
        rsmi_status_t r = s->power_ave != NULL ? s->power_ave(i, 0, &p) : RSMI_STATUS_NOT_SUPPORTED;
        if (r == RSMI_STATUS_NOT_SUPPORTED && s->socket_power != NULL)
            r = s->socket_power(i, &p);
        if (r == RSMI_STATUS_SUCCESS) {
            any_power = true;
            power += p;
            if (s->power_cap != NULL && s->power_cap(i, 0, &c) == RSMI_STATUS_SUCCESS)
                cap += c;
        } else if (r != RSMI_STATUS_NOT_SUPPORTED) {
            power_ok = false;
        }
    }
    hangar_status st = HANGAR_OK;
    if (mem_ok)
        st = hs_measure(sink, ctx, "rocm_mem", HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, (double)used, (double)total);
    if (st == HANGAR_OK && util_ok)
        st = hs_measure(sink, ctx, "rocm_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, id, container_id, busy / (double)g->xcd_count, 100.0);
    if (st == HANGAR_OK && temp_ok)
        st = hs_measure(sink, ctx, "rocm_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temp, 0);
    if (st == HANGAR_OK && power_ok && any_power)
        st = hs_measure(sink, ctx, "rocm_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power / 1e6, cap / 1e6);
    return st;
}

static hangar_status rocm_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context)
{
    const rocm_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    hangar_status st = HANGAR_OK;
    for (size_t k = 0; inst->smi_ready && st == HANGAR_OK && k < inst->devices.count; k++)
        st = measure_device(inst, k, NULL, sink, sink_context);
    return st;
}

static hangar_status rocm_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                    hangar_accel_measure_sink sink, void *sink_context)
{
    const rocm_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    for (size_t a = 0; a < count && inst->smi_ready; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        hangar_status st = hs_check_allocation_shape(alloc, "gather_container_measures");
        for (size_t i = 0; st == HANGAR_OK && i < alloc->entry_count; i++) {
            const hangar_accel_alloc_entry *e = hs_entry(alloc, i);
            ptrdiff_t k = e->slot_name != NULL && strcmp(e->slot_name, ROCM_SLOT) == 0 ? hs_devices_find(&inst->devices, e->device_id) : -1;
            if (k >= 0) /* best effort: entries naming no device of ours are skipped */
                st = measure_device(inst, (size_t)k, alloc->container_id, sink, sink_context);
        }
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry point                                                */
/* ------------------------------------------------------------------------ */

static const char rocm_config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted: GPUs come from <sysfs_root>/class/kfd/kfd/topology/nodes, their NUMA node, "
    "nearest CPUs, serial and firmware from <sysfs_root>/bus/pci/devices/<address>.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes kfd and dri/renderD<minor> are on the host.\"},"
    "\"rocm_smi_library\":{\"type\":\"string\",\"minLength\":1,\"default\":\"librocm_smi64.so.1\","
    "\"description\":\"Name or path of the ROCm SMI library to dlopen for memory, utilisation, temperature and power "
    "measures (e.g. /opt/rocm/lib/librocm_smi64.so.1). Without it GPUs are still found, without measures.\"}"
    "}}";

static const char *const rocm_slot_names[] = {ROCM_SLOT, NULL};

static const hangar_accelerator_functions rocm_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = rocm_create,
    .destroy = rocm_destroy,
    .last_error = hs_last_error,
    .get_info = rocm_get_info,
    .list_devices = rocm_list_devices,
    .list_slots = rocm_list_slots,
    .list_device_slots = rocm_list_device_slots,
    .container_edits = rocm_container_edits,
    .gather_node_measures = rocm_gather_node_measures,
    .gather_container_measures = rocm_gather_container_measures,
};

static const hangar_plugin_descriptor rocm_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0, /* the host serialises calls; list_devices refreshes health in place */
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS | HANGAR_ACCEL_CAP_HEALTH_WATCH,
    .name = ROCM_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "AMD GPUs under ROCm: KFD topology discovery (multi-XCD parts as one device), whole-GPU rocm.device slots, "
                   "/dev/kfd and render nodes for containers, rocm_smi memory, utilisation, temperature and power metrics",
    .license = "Apache-2.0",
    .config_schema = rocm_config_schema,
    .static_slot_names = rocm_slot_names,
    .functions = &rocm_functions,
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(rocm_descriptor, 2)
