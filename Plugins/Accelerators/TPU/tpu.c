/*
 * Hangar accelerator plugin for Google Cloud TPU chips on a TPU VM ("tpu").
 *
 * Discovers: the chips attached to this VM, once at create(), from PCI sysfs
 * (<sysfs_root>/bus/pci/devices/<address>/, vendor 0x1ae0). The PCI device id
 * names the generation (0x0027 v2/v3 told apart by subsystem_device 0x004e/
 * 0x004f, 0x005e v4, 0x0062 v5p, 0x0063 v5e, 0x006f v6e, 0x0076 TPU7x), as
 * Google's tpu-info and JAX read it. No gcloud call and no metadata server:
 * everything comes from the kernel. Each chip's device node is
 *   v2, v3, v4      /dev/accel<N>, N from the function's accel/accel<N> class
 *                   device (Google's gasket-based driver; its `status` file
 *                   says ALIVE while the chip works)
 *   v5e and newer   /dev/vfio/<G>, G the IOMMU group the function's
 *                   iommu_group link names (the chip is bound to vfio-pci and
 *                   libtpu drives it from user space), plus /dev/vfio/vfio
 * Chips are numbered 0.. in PCI address order (device id = that number, which
 * is the chip index TPU_VISIBLE_CHIPS takes and, on TPU VMs, also N or G).
 *
 * Health: a chip is unhealthy when its node cannot be found or is missing
 * under dev_root, when it is bound to a driver other than vfio-pci (VFIO
 * generations), when the gasket driver reports a status other than ALIVE, or
 * when PCIe AER has counted fatal errors on it.
 *
 * Offers: "tpu.device", whole chips, exclusive. Model "TPU v5e" etc., memory
 * the chip's HBM, processing units its TensorCores. get_info's extra_info
 * says the generation, chips on this host, the single-host accelerator type
 * ("v5litepod-4") and the host's chip topology ("2x2").
 *
 * Containers get: the chips' nodes under their own names (libtpu finds chips
 * by node, so /dev/vfio/2 stays /dev/vfio/2) and /dev/vfio/vfio for VFIO
 * chips; TPU_VISIBLE_CHIPS (and the older name TPU_VISIBLE_DEVICES) with the
 * chip numbers; TPU_CHIPS_PER_PROCESS_BOUNDS for one process owning all its
 * chips (1 chip "1,1,1", 2 "1,2,1", 4 "2,2,1", 8 "2,4,1"; libtpu addresses
 * only such rectangles, so ask for those counts) and TPU_PROCESS_BOUNDS
 * "1,1,1"; an unlimited memlock ulimit (libtpu pins host buffers for DMA);
 * and the resource line TPU_GLOBAL_DEVICE_IDS=<local>:<chip>,...
 *
 * Measures: none. TPU utilisation and HBM use come only from the libtpu
 * runtime inside the workload (its metrics port), not from the kernel.
 *
 * Config keys: sysfs_root (default "/sys"), dev_root (default "/dev").
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-tpu.so tpu.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readlink, readdir */
#endif
#include <hangar/support/vendor.h>

#include <limits.h>

#define TPU_KEY "tpu"
#define TPU_SLOT "tpu.device"
#define TPU_PCI_VENDOR 0x1ae0u
#define TPU_MAX_CHIPS 64

/* What a generation is, as public sources describe it. */
typedef struct tpu_generation {
    uint32_t device_id;
    uint32_t subsystem_device; /* 0: any */
    const char *name;          /* "v5e" */
    const char *model;         /* "TPU v5e" */
    /* Cloud accelerator-type prefix for a single host ("v5litepod-4"), NULL when unsure. */
    const char *type_prefix;
    /* True when the accelerator type counts TensorCores (v2..v5p), false when it counts chips. */
    bool type_counts_cores;
    uint32_t tensorcores;
    uint64_t hbm_gib;
    /* v5e and newer: bound to vfio-pci, node /dev/vfio/<iommu group>. */
    bool vfio;
    /* Chips of a host lie in a plane (v5e, v6e: "2x2") rather than a cube slice (v4, v5p: "2x2x1"). */
    bool planar;
} tpu_generation;

static const tpu_generation tpu_generations[] = {
    {0x0027, 0x004e, "v2", "TPU v2", "v2", true, 2, 16, false, false},
    {0x0027, 0x004f, "v3", "TPU v3", "v3", true, 2, 32, false, false},
    {0x005e, 0, "v4", "TPU v4", "v4", true, 2, 32, false, false},
    {0x0062, 0, "v5p", "TPU v5p", "v5p", true, 2, 95, true, false},
    {0x0063, 0, "v5e", "TPU v5e", "v5litepod", false, 1, 16, true, true},
    {0x006f, 0, "v6e", "TPU v6e", "v6e", false, 1, 32, true, true},
    {0x0076, 0, "7x", "TPU7x", NULL, false, 2, 192, true, false},
};
#define TPU_GENERATION_COUNT (sizeof tpu_generations / sizeof tpu_generations[0])

/* What the plugin keeps of a chip beyond its hs_device (same position as in the table). */
typedef struct tpu_chip {
    const tpu_generation *gen;
    /* accel minor N or IOMMU group G; -1 when unknown. */
    int64_t node_number;
    /* "/dev/accel2" or "/dev/vfio/2" (the name inside the container too), "" when unknown. */
    char node[32];
} tpu_chip;

typedef struct tpu_instance {
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    hs_device_table devices;
    tpu_chip chips[HS_MAX_DEVICES];
    bool any_vfio;
    char driver_version[64];
    hs_strbuf extra_info;
    char no_device_reason[640];
} tpu_instance;

static const hs_slot_spec tpu_slots[] = {
    {.name = TPU_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "TPU", .display_unit = "TPU"},
};
#define TPU_SLOT_COUNT (sizeof tpu_slots / sizeof tpu_slots[0])

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

static const tpu_generation *tpu_generation_of(uint32_t device_id, int64_t subsystem_device)
{
    for (size_t i = 0; i < TPU_GENERATION_COUNT; i++) {
        const tpu_generation *g = &tpu_generations[i];
        if (g->device_id == device_id && (g->subsystem_device == 0 || (int64_t)g->subsystem_device == subsystem_device))
            return g;
    }
    return NULL;
}

/* The last component of the symlink at `path` ("vfio-pci", "3"), "" when it is not a readable link. */
static void link_basename(const char *path, char *out, size_t len)
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *slash = strrchr(target, '/');
    const char *base = slash != NULL ? slash + 1 : target;
    if (strlen(base) < len)
        memcpy(out, base, strlen(base) + 1); /* a name that does not fit is no name (left empty) */
}

/* Parses a non-negative decimal that is the whole string; -1 otherwise. */
static int64_t whole_number(const char *s)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' && errno == 0 && v >= 0 && v <= INT32_MAX ? (int64_t)v : -1;
}

/* N of the single accel<N> class device under the PCI function, -1 when there is none (no driver bound). */
static int64_t accel_minor(const char *sysfs_root, const char *address)
{
    char path[PATH_MAX];
    if (!hs_pathf(path, sizeof path, "%s/bus/pci/devices/%s/accel", sysfs_root, address))
        return -1;
    DIR *dir = opendir(path);
    int64_t found = -1;
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;)
        if (strncmp(e->d_name, "accel", 5) == 0 && whole_number(e->d_name + 5) >= 0)
            found = whole_number(e->d_name + 5);
    if (dir != NULL)
        closedir(dir);
    return found;
}

/* TOTAL_ERR_FATAL of the function's aer_dev_fatal (lines "<NAME> <count>"), 0 when AER is not reported. */
static int64_t aer_fatal_count(const char *sysfs_root, const char *address)
{
    char text[2048];
    hs_read_textf(text, sizeof text, "%s/bus/pci/devices/%s/aer_dev_fatal", sysfs_root, address);
    const char *p = strstr(text, "TOTAL_ERR_FATAL");
    return p != NULL ? strtoll(p + strlen("TOTAL_ERR_FATAL"), NULL, 10) : 0;
}

static HS_PRINTF(2, 3) void unhealthy(hs_device *d, const char *fmt, ...)
{
    if (d->health == HANGAR_HEALTH_UNHEALTHY)
        return; /* the first reason found stays */
    d->health = HANGAR_HEALTH_UNHEALTHY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->health_reason, sizeof d->health_reason, fmt, ap);
    va_end(ap);
}

/* Finds the chip's device node and judges its health. */
static void tpu_find_node(tpu_instance *inst, size_t k, const hs_pci_device *pci)
{
    hs_device *d = &inst->devices.items[k];
    tpu_chip *c = &inst->chips[k];
    const char *root = inst->sysfs_root;
    char path[PATH_MAX], host_node[PATH_MAX];
    c->node_number = -1;
    if (c->gen->vfio) {
        char group[32], driver[64];
        if (hs_pathf(path, sizeof path, "%s/bus/pci/devices/%s/iommu_group", root, pci->address))
            link_basename(path, group, sizeof group);
        else
            group[0] = '\0';
        c->node_number = whole_number(group);
        if (hs_pathf(path, sizeof path, "%s/bus/pci/devices/%s/driver", root, pci->address))
            link_basename(path, driver, sizeof driver);
        else
            driver[0] = '\0';
        if (c->node_number < 0) {
            unhealthy(d, "PCI function %s has no IOMMU group, so it has no /dev/vfio node (is the IOMMU enabled?)", pci->address);
            return;
        }
        snprintf(c->node, sizeof c->node, "/dev/vfio/%" PRId64, c->node_number);
        if (driver[0] != '\0' && strcmp(driver, "vfio-pci") != 0)
            unhealthy(d, "PCI function %s is bound to %s, not vfio-pci, so libtpu cannot open it", pci->address, driver);
        if (!hs_pathf(host_node, sizeof host_node, "%s/vfio/%" PRId64, inst->dev_root, c->node_number) || !hs_path_exists(host_node))
            unhealthy(d, "%s is missing: %s", c->node,
                      driver[0] != '\0' ? "the VFIO group is not set up" : "the chip is not bound to vfio-pci");
        return;
    }
    c->node_number = accel_minor(root, pci->address);
    if (c->node_number < 0) {
        unhealthy(d, "PCI function %s has no accel device: the TPU driver is not bound to it", pci->address);
        return;
    }
    snprintf(c->node, sizeof c->node, "/dev/accel%" PRId64, c->node_number);
    if (!hs_pathf(host_node, sizeof host_node, "%s/accel%" PRId64, inst->dev_root, c->node_number) || !hs_path_exists(host_node))
        unhealthy(d, "%s is missing although PCI function %s has accel%" PRId64, c->node, pci->address, c->node_number);
    char status[64];
    hs_read_textf(status, sizeof status, "%s/bus/pci/devices/%s/accel/accel%" PRId64 "/status", root, pci->address, c->node_number);
    if (status[0] != '\0' && strcmp(status, "ALIVE") != 0)
        unhealthy(d, "the TPU driver reports chip status %s", status);
    if (inst->driver_version[0] == '\0')
        hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/bus/pci/devices/%s/accel/accel%" PRId64 "/driver_version",
                      root, pci->address, c->node_number);
}

/* The chips of one host as a rectangle of the generation's mesh ("2x2", "2x2x1"), NULL when unusual. */
static const char *host_topology(const tpu_generation *g, size_t chips)
{
    switch (chips) {
    case 1: return g->planar ? "1x1" : "1x1x1";
    case 2: return g->planar ? "1x2" : "1x2x1";
    case 4: return g->planar ? "2x2" : "2x2x1";
    case 8: return g->planar ? "2x4" : "2x4x1";
    default: return NULL;
    }
}

static void tpu_collect_info(tpu_instance *inst)
{
    hs_strbuf *j = &inst->extra_info;
    if (inst->devices.count == 0) {
        hs_strbuf_addf(j, "{\"tpu_support\":false}");
        return;
    }
    const tpu_generation *g = inst->chips[0].gen;
    size_t n = inst->devices.count;
    hs_strbuf_addf(j, "{\"tpu_support\":true,\"tpu_generation\":\"%s\",\"chips_per_host\":%zu", g->name, n);
    if (g->type_prefix != NULL)
        hs_strbuf_addf(j, ",\"accelerator_type\":\"%s-%zu\"", g->type_prefix, g->type_counts_cores ? n * g->tensorcores : n);
    const char *topology = host_topology(g, n);
    if (topology != NULL)
        hs_strbuf_addf(j, ",\"host_topology\":\"%s\"", topology);
    hs_strbuf_addf(j, ",\"device_nodes\":\"%s\"}", g->vfio ? "vfio" : "accel");
}

static void tpu_discover(tpu_instance *inst)
{
    hs_pci_device *pci = calloc(TPU_MAX_CHIPS, sizeof *pci);
    if (pci == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "out of memory listing PCI devices");
        return;
    }
    ptrdiff_t found = hs_pci_scan(inst->sysfs_root, TPU_PCI_VENDOR, 0, pci, TPU_MAX_CHIPS);
    if (found < 0) {
        hs_last_error(NULL, inst->no_device_reason, sizeof inst->no_device_reason);
        free(pci);
        return;
    }
    size_t others = 0;
    for (ptrdiff_t i = 0; i < found; i++) {
        int64_t subsystem = hs_read_i64f(-1, "%s/bus/pci/devices/%s/subsystem_device", inst->sysfs_root, pci[i].address);
        const tpu_generation *gen = tpu_generation_of(pci[i].device, subsystem);
        if (gen == NULL) {
            others++; /* another Google PCI function (gVNIC, NVMe): not a TPU chip */
            continue;
        }
        hs_device *d = hs_devices_add(&inst->devices);
        if (d == NULL)
            break;
        size_t k = inst->devices.count - 1;
        tpu_chip *c = &inst->chips[k];
        memset(c, 0, sizeof *c);
        c->gen = gen;
        d->index = (int64_t)k;
        snprintf(d->id, sizeof d->id, "%zu", k);
        snprintf(d->model, sizeof d->model, "%s", gen->model);
        snprintf(d->hw_location, sizeof d->hw_location, "%s", pci[i].address);
        d->memory_bytes = gen->hbm_gib << 30;
        d->processing_units = gen->tensorcores;
        d->numa_node = pci[i].numa_node;
        snprintf(d->cpu_affinity, sizeof d->cpu_affinity, "%s", pci[i].cpu_affinity);
        inst->any_vfio |= gen->vfio;
        tpu_find_node(inst, k, &pci[i]);
        int64_t fatal = aer_fatal_count(inst->sysfs_root, pci[i].address);
        if (fatal > 0)
            unhealthy(d, "PCIe AER counted %" PRId64 " fatal errors on %s", fatal, pci[i].address);
        hs_strbuf x = {.len = 0};
        hs_strbuf_addf(&x, "{\"generation\":\"%s\",\"chip\":%zu,\"pci_device_id\":\"0x%04x\"", gen->name, k, pci[i].device);
        if (c->node[0] != '\0')
            hs_strbuf_addf(&x, ",\"device_node\":\"%s\",\"%s\":%" PRId64, c->node, gen->vfio ? "iommu_group" : "accel_minor", c->node_number);
        hs_strbuf_addf(&x, "}");
        if (!x.overflow && x.len < sizeof d->extra_info_json)
            memcpy(d->extra_info_json, x.text, x.len + 1);
    }
    free(pci);
    if (inst->any_vfio) {
        /* Every VFIO chip needs the VFIO container node as well. */
        char vfio[PATH_MAX];
        bool present = hs_pathf(vfio, sizeof vfio, "%s/vfio/vfio", inst->dev_root) && hs_path_exists(vfio);
        for (size_t k = 0; !present && k < inst->devices.count; k++)
            if (inst->chips[k].gen->vfio)
                unhealthy(&inst->devices.items[k], "the VFIO container node /dev/vfio/vfio is missing (load the vfio-pci module)");
    }
    if (inst->devices.count == 0 && others > 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "no TPU chips: the %zu Google PCI functions in %.400s/bus/pci/devices are not TPUs (unknown device ids)", others,
                 inst->sysfs_root);
    else if (inst->devices.count == 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "no TPU chips: no PCI function of vendor 0x1ae0 in %.400s/bus/pci/devices (not a TPU VM)", inst->sysfs_root);
    tpu_collect_info(inst);
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

static hangar_status tpu_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, TPU_KEY, host, config_json, out, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    tpu_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if ((st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK) {
        free(inst);
        return st;
    }
    tpu_discover(inst);
    *out = inst;
    return HANGAR_OK;
}

static void tpu_destroy(void *instance) { free(instance); }

static hangar_status tpu_get_info(void *instance, hangar_accel_info *info)
{
    const tpu_instance *inst = instance;
    return hs_fill_info(info, TPU_KEY, inst->driver_version, NULL, inst->extra_info.text, inst->no_device_reason);
}

static hangar_status tpu_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const tpu_instance *)instance)->devices, sink, ctx);
}

static hangar_status tpu_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(tpu_slots, TPU_SLOT_COUNT, &((const tpu_instance *)instance)->devices, sink, ctx);
}

static hangar_status tpu_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(tpu_slots, TPU_SLOT_COUNT, &((const tpu_instance *)instance)->devices, sink, ctx);
}

/*
 * TPU_CHIPS_PER_PROCESS_BOUNDS for one process that owns `n` chips: the rectangles JAX's and Ray's
 * documentation use for 1, 2, 4 and 8 chips of a host. Other counts have no rectangle on a TPU
 * host; they get a 1 x n line, which libtpu refuses at start-up with its own message (the
 * allocation itself is valid, so container_edits must not refuse it).
 */
static void chips_per_process_bounds(size_t n, char *out, size_t len)
{
    switch (n) {
    case 1: snprintf(out, len, "1,1,1"); break;
    case 2: snprintf(out, len, "1,2,1"); break;
    case 4: snprintf(out, len, "2,2,1"); break;
    case 8: snprintf(out, len, "2,4,1"); break;
    default: snprintf(out, len, "1,%zu,1", n); break;
    }
}

static hangar_status tpu_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const tpu_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, tpu_slots, TPU_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    char bounds[32];
    chips_per_process_bounds(sel.count, bounds, sizeof bounds);
    hs_strbuf chips, pairs;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_INDEX, &chips) || !hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &pairs))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu chips is too long", sel.count);
    bool vfio = false;
    for (size_t k = 0; k < sel.count; k++) {
        const tpu_chip *c = &inst->chips[sel.picks[k].device];
        char host_node[PATH_MAX];
        /* A healthy chip always has a node (hs_select refused unhealthy ones). */
        if (!hs_pathf(host_node, sizeof host_node, "%s%s", inst->dev_root, c->node + strlen("/dev")))
            return hs_fail(HANGAR_E_INVALID_CONFIG, "container_edits: dev_root %s is too long", inst->dev_root);
        HS_EDIT(edits, add_device_node, host_node, c->node, "rwm");
        vfio |= c->gen->vfio;
    }
    if (vfio) {
        char host_vfio[PATH_MAX];
        hs_pathf(host_vfio, sizeof host_vfio, "%s/vfio/vfio", inst->dev_root);
        HS_EDIT(edits, add_device_node, host_vfio, "/dev/vfio/vfio", "rwm");
    }
    /* The chips keep their host numbers: libtpu matches TPU_VISIBLE_CHIPS against the nodes it finds. */
    HS_EDIT(edits, add_env, "TPU_VISIBLE_CHIPS", chips.text);
    HS_EDIT(edits, add_env, "TPU_VISIBLE_DEVICES", chips.text); /* the name older libtpu releases read */
    HS_EDIT(edits, add_env, "TPU_CHIPS_PER_PROCESS_BOUNDS", bounds);
    HS_EDIT(edits, add_env, "TPU_PROCESS_BOUNDS", "1,1,1");
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_resource_data, "TPU_GLOBAL_DEVICE_IDS", pairs.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char tpu_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted; TPU chips are found in <sysfs_root>/bus/pci/devices (vendor 0x1ae0), with their NUMA "
    "node, nearest CPUs, IOMMU group or accel device.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes are: accel<N> (TPU v2-v4) and vfio/<group>, vfio/vfio (TPU v5e and newer). An "
    "absolute path; containers see the nodes under /dev.\"}}}";

static const hangar_accelerator_functions tpu_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = tpu_create,
    .destroy = tpu_destroy,
    .last_error = hs_last_error,
    .get_info = tpu_get_info,
    .list_devices = tpu_list_devices,
    .list_slots = tpu_list_slots,
    .list_device_slots = tpu_list_device_slots,
    .container_edits = tpu_container_edits,
};

static const char *const tpu_slot_names[] = {TPU_SLOT, NULL};

static const hangar_plugin_descriptor tpu_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = 0,
    .name = TPU_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Google Cloud TPU chips of a TPU VM from PCI sysfs: whole-chip tpu.device slots, /dev/accel or /dev/vfio nodes, "
                   "libtpu's chip and bounds variables",
    .license = "Apache-2.0",
    .config_schema = tpu_schema,
    .static_slot_names = tpu_slot_names,
    .functions = &tpu_functions,
    .homepage = "https://cloud.google.com/tpu/docs/system-architecture-tpu-vm",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(tpu_descriptor, 2)
