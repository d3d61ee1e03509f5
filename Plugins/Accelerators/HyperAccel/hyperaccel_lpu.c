/*
 * Hangar accelerator plugin for HyperAccel LPUs ("hyperaccel-lpu").
 *
 * An LPU is an FPGA card run by Xilinx's XRT drivers: its management function (PCI function .0)
 * is bound to xclmgmt, its user function (.1) to xocl, which makes a DRM render node for it.
 * Discovers, once at create(), every PCI function bound to xclmgmt
 * (<sysfs_root>/bus/pci/drivers/xclmgmt/<dddd:bb:ss.f> links, sorted by address), as Backend.AI's
 * lpu plugin does, and takes for each card:
 *   - its user function dddd:bb:ss.1 (the sibling of the management function) and the render
 *     node renderD<N> in that function's drm/ folder;
 *   - its debug node xfpga/xvc_pri.m<inst>.0, <inst> being XRT's instance number of the
 *     management function, (domain << 16) | (bus << 8) | devfn; for the usual layout (domain 0,
 *     the card's functions at slot 0) it is what Backend.AI computes, int(bus + slot, 16).
 * Device ids are the cards' positions in that order ("0", "1", ...), as Backend.AI numbers them;
 * NUMA node and nearest CPUs come from the management function's sysfs entry. Every card is taken
 * for an LPU (XRT says nothing about the bitstream loaded). There is no vendor tool or library,
 * so no metrics: the plugin has no measure functions.
 *
 * Health: a card whose user function, render node, or device nodes (<dev_root>/dri/renderD<N>,
 * <dev_root>/xfpga/xvc_pri.m<inst>.0) are missing is listed unhealthy with the reason.
 *
 * Slot: "hyperaccel-lpu.device", whole cards, exclusive.
 *
 * Containers get the cards' nodes at their own paths (/dev/xfpga/xvc_pri.m<inst>.0 and
 * /dev/dri/renderD<N>, from <dev_root> on the host), the HyperDex SDK folder (sdk_path) mounted
 * read-only at the same path when the host has it, CAP_IPC_LOCK, the host IPC namespace, an
 * unlimited memlock ulimit, the sysctl net.ipv6.conf.all.disable_ipv6=0, and the resource line
 * LPU_GLOBAL_DEVICE_IDS=<local>:<id>,... (Backend.AI's names for both).
 *
 * Config keys: sdk_path, sysfs_root, dev_root.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -fvisibility=hidden -shared -fPIC -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-hyperaccel-lpu.so hyperaccel_lpu.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readdir, stat */
#endif
#include <hangar/support.h>

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#define LPU_KEY "hyperaccel-lpu"
#define LPU_SLOT "hyperaccel-lpu.device"

/** What the plugin keeps of a card beyond its hs_device (same position in the table). */
typedef struct lpu_card {
    char mgmt[32];   /* management function, dddd:bb:ss.f */
    char render[32]; /* "renderD128", "" when not found */
    char xvc[48];    /* "xvc_pri.m15104.0" */
} lpu_card;

typedef struct lpu_instance {
    const hangar_host_services *host;
    char sdk_path[PATH_MAX];
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    bool sdk_present;
    hs_device_table devices;
    lpu_card cards[HS_MAX_DEVICES];
    char extra_info[64];
    char no_device_reason[640];
} lpu_instance;

static const hs_slot_spec lpu_slots[] = {
    {.name = LPU_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "HyperAccel LPU", .display_unit = "LPU"},
};
#define LPU_SLOT_COUNT (sizeof lpu_slots / sizeof lpu_slots[0])

static HS_PRINTF(3, 4) void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...)
{
    if (host == NULL || !HS_HAS_FIELD(hangar_host_services, log, host->struct_size) || host->log == NULL)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct pci_address {
    unsigned domain, bus, slot, func;
} pci_address;

/** Parses "dddd:bb:ss.f" exactly (the names the driver's folder links to). */
static bool parse_pci_address(const char *s, pci_address *a)
{
    char tail;
    return strlen(s) == 12 && strspn(s, "0123456789abcdefABCDEF:.") == 12 &&
           sscanf(s, "%4x:%2x:%2x.%1x%c", &a->domain, &a->bus, &a->slot, &a->func, &tail) == 4 && a->slot < 32 && a->func < 8;
}

static int address_order(const void *x, const void *y) { return strcmp((const char *)x, (const char *)y); }

/** The one renderD<N> in <function>/drm/; "" when there is none. */
static void find_render_node(const char *function_dir, char *out, size_t len)
{
    char path[PATH_MAX];
    out[0] = '\0';
    if (!hs_pathf(path, sizeof path, "%s/drm", function_dir))
        return;
    DIR *dir = opendir(path);
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 7 && n < len && strncmp(e->d_name, "renderD", 7) == 0 && strspn(e->d_name + 7, "0123456789") == n - 7 &&
            (out[0] == '\0' || strcmp(e->d_name, out) < 0))
            memcpy(out, e->d_name, n + 1);
    }
    if (dir != NULL)
        closedir(dir);
}

static void json_escape_into(hs_strbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            hs_strbuf_addf(b, "\\%c", *p);
        else if (*p >= 0x20)
            hs_strbuf_addf(b, "%c", *p);
    }
}

/** Fills card `k` from its management function `mgmt` (the driver folder's link `driver_dir`/`mgmt`). */
static void describe_card(lpu_instance *inst, const char *driver_dir, const char *mgmt, size_t k)
{
    hs_device *d = &inst->devices.items[k];
    lpu_card *card = &inst->cards[k];
    pci_address a;
    parse_pci_address(mgmt, &a);
    snprintf(d->id, sizeof d->id, "%zu", k);
    d->index = (int64_t)k;
    snprintf(d->model, sizeof d->model, "HyperAccel LPU");
    snprintf(card->mgmt, sizeof card->mgmt, "%s", mgmt);
    char user[32];
    snprintf(user, sizeof user, "%04x:%02x:%02x.1", a.domain, a.bus, a.slot);
    snprintf(d->hw_location, sizeof d->hw_location, "%s", user);
    unsigned inst_no = (a.domain << 16) | (a.bus << 8) | (a.slot << 3) | a.func;
    snprintf(card->xvc, sizeof card->xvc, "xvc_pri.m%u.0", inst_no);
    hs_read_pci_locality(inst->sysfs_root, mgmt, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);

    /* The user function is the management function's sibling: resolve the driver's link, then "..". */
    char user_dir[PATH_MAX], node[PATH_MAX + 48];
    bool has_user = hs_pathf(user_dir, sizeof user_dir, "%s/%s/../%s", driver_dir, mgmt, user) && hs_path_exists(user_dir);
    if (has_user)
        find_render_node(user_dir, card->render, sizeof card->render);
    if (!has_user) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "user function %s is missing: the card's shell is not loaded or the PCI "
                 "function was removed", user);
    } else if (card->render[0] == '\0') {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "user function %s has no DRM render node: the xocl driver is not bound to it",
                 user);
    } else if (!hs_pathf(node, sizeof node, "%s/dri/%s", inst->dev_root, card->render) || !hs_path_exists(node) ||
               !hs_pathf(node, sizeof node, "%s/xfpga/%s", inst->dev_root, card->xvc) || !hs_path_exists(node)) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "device node %.100s is missing", node);
    }
    hs_strbuf extra = {.len = 0};
    hs_strbuf_addf(&extra, "{\"mgmt_function\":\"");
    json_escape_into(&extra, mgmt);
    hs_strbuf_addf(&extra, "\",\"xvc_pri\":\"");
    json_escape_into(&extra, card->xvc);
    if (card->render[0] != '\0') {
        hs_strbuf_addf(&extra, "\",\"render_node\":\"");
        json_escape_into(&extra, card->render);
    }
    int64_t pci_device = hs_read_i64f(-1, "%s/bus/pci/devices/%s/device", inst->sysfs_root, mgmt);
    if (pci_device >= 0 && pci_device <= 0xffff)
        hs_strbuf_addf(&extra, "\",\"pci_device\":\"0x%04x", (unsigned)pci_device);
    hs_strbuf_addf(&extra, "\"}");
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);
}

static void discover(lpu_instance *inst)
{
    char driver_dir[PATH_MAX];
    if (!hs_pathf(driver_dir, sizeof driver_dir, "%s/bus/pci/drivers/xclmgmt", inst->sysfs_root)) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "sysfs_root is too long");
        return;
    }
    DIR *dir = opendir(driver_dir);
    if (dir == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "%.300s cannot be read (%s): the Xilinx management driver xclmgmt (XRT) is not loaded", driver_dir, strerror(errno));
        return;
    }
    char(*names)[16] = calloc(HS_MAX_DEVICES, sizeof *names);
    size_t count = 0;
    for (struct dirent *e; names != NULL && (e = readdir(dir)) != NULL;) {
        pci_address a;
        if (parse_pci_address(e->d_name, &a) && count < HS_MAX_DEVICES)
            memcpy(names[count++], e->d_name, 13);
    }
    closedir(dir);
    if (names == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "out of memory listing %.300s", driver_dir);
        return;
    }
    qsort(names, count, sizeof *names, address_order);
    for (size_t i = 0; i < count && hs_devices_add(&inst->devices) != NULL; i++)
        describe_card(inst, driver_dir, names[i], i);
    free(names);
    if (inst->devices.count == 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "no PCI function is bound to xclmgmt (%.300s): no HyperAccel LPU card", driver_dir);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle and listings                                                    */
/* ------------------------------------------------------------------------ */

static void lpu_destroy(void *instance) { free(instance); }

static hangar_status lpu_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    lpu_instance *inst = NULL;
    hangar_status st = hs_create_begin(&c, LPU_KEY, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (st == HANGAR_OK)
        st = hs_cfg_string(&c, "sdk_path", inst->sdk_path, sizeof inst->sdk_path);
    if (st == HANGAR_OK)
        st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root);
    if (st == HANGAR_OK)
        st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root);
    if (st == HANGAR_OK && inst->sdk_path[0] != '/')
        st = hs_create_fail(&c, HANGAR_E_INVALID_CONFIG, "config key \"sdk_path\" must be an absolute path, got \"%.200s\"", inst->sdk_path);
    if (st != HANGAR_OK) {
        lpu_destroy(inst);
        return st;
    }
    inst->host = host;
    struct stat sb;
    inst->sdk_present = stat(inst->sdk_path, &sb) == 0 && S_ISDIR(sb.st_mode);
    discover(inst);
    snprintf(inst->extra_info, sizeof inst->extra_info, "{\"lpu_support\":%s,\"sdk\":%s}", inst->devices.count > 0 ? "true" : "false",
             inst->sdk_present ? "true" : "false");
    if (inst->devices.count == 0)
        host_log(host, HANGAR_LOG_INFO, "no LPUs: %s", inst->no_device_reason);
    else
        host_log(host, HANGAR_LOG_INFO, "%zu LPU card(s); SDK %s %s", inst->devices.count, inst->sdk_path,
                 inst->sdk_present ? "found" : "not found: containers get no SDK mount");
    *out_instance = inst;
    return HANGAR_OK;
}

static hangar_status lpu_get_info(void *instance, hangar_accel_info *info)
{
    const lpu_instance *inst = instance;
    return hs_fill_info(info, LPU_KEY, NULL, NULL, inst->extra_info, inst->no_device_reason);
}

static hangar_status lpu_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const lpu_instance *)instance)->devices, sink, ctx);
}

static hangar_status lpu_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(lpu_slots, LPU_SLOT_COUNT, &((const lpu_instance *)instance)->devices, sink, ctx);
}

static hangar_status lpu_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(lpu_slots, LPU_SLOT_COUNT, &((const lpu_instance *)instance)->devices, sink, ctx);
}

/* Nodes keep their host paths, as Backend.AI's plugin passes them: XRT derives both names from the card's PCI address. */
static hangar_status lpu_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const lpu_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, lpu_slots, LPU_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    hs_strbuf ids;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &ids))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu cards does not fit", sel.count);
    for (size_t k = 0; k < sel.count; k++) {
        const lpu_card *card = &inst->cards[sel.picks[k].device];
        char host_path[PATH_MAX + 48], container_path[80];
        hs_pathf(host_path, sizeof host_path, "%s/xfpga/%s", inst->dev_root, card->xvc);
        snprintf(container_path, sizeof container_path, "/dev/xfpga/%s", card->xvc);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        hs_pathf(host_path, sizeof host_path, "%s/dri/%s", inst->dev_root, card->render);
        snprintf(container_path, sizeof container_path, "/dev/dri/%s", card->render);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    }
    if (inst->sdk_present)
        HS_EDIT(edits, add_mount, inst->sdk_path, inst->sdk_path, 1);
    /* The runtime pins host buffers for DMA and shares them between processes, as Backend.AI's plugin allows. */
    HS_EDIT(edits, add_capability, "IPC_LOCK");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_sysctl, "net.ipv6.conf.all.disable_ipv6", "0");
    HS_EDIT(edits, add_resource_data, "LPU_GLOBAL_DEVICE_IDS", ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char lpu_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sdk_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/opt/hyperdex\","
    "\"description\":\"Absolute path of the HyperDex SDK on the host; mounted read-only at the same path in containers with LPUs "
    "when it exists.\"},"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted (bus/pci/drivers/xclmgmt lists the cards); a fake tree in tests.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the host's device nodes are (dri/renderD<N>, xfpga/xvc_pri.m<inst>.0).\"}}}";

static const hangar_accelerator_functions lpu_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = lpu_create,
    .destroy = lpu_destroy,
    .last_error = hs_last_error,
    .get_info = lpu_get_info,
    .list_devices = lpu_list_devices,
    .list_slots = lpu_list_slots,
    .list_device_slots = lpu_list_device_slots,
    .container_edits = lpu_container_edits,
    /* No measures: neither XRT's sysfs nor a HyperAccel tool reports LPU utilisation or memory. */
};

static const char *const lpu_slot_names[] = {LPU_SLOT, NULL};

static const hangar_plugin_descriptor lpu_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = 0,
    .name = LPU_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "HyperAccel LPUs on Xilinx FPGA cards (XRT xclmgmt/xocl): whole-card hyperaccel-lpu.device slots, render and "
                   "xvc_pri nodes, the HyperDex SDK mount; no metrics",
    .license = "Apache-2.0",
    .config_schema = lpu_schema,
    .static_slot_names = lpu_slot_names,
    .functions = &lpu_functions,
    .homepage = "https://hyperaccel.ai/",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(lpu_descriptor, 2)
