/*
 * Hangar accelerator plugin for Tenstorrent cards driven by tt-kmd ("tenstorrent").
 *
 * Discovers, once at create(): the PCI functions of vendor 0x1e52 in
 * <sysfs_root>/bus/pci/devices (device 0xfaca Grayskull, 0x401e Wormhole,
 * 0xb140 Blackhole) that tt-kmd has bound, i.e. that have a class device
 * tenstorrent/tenstorrent!<N> (node /dev/tenstorrent/<N>; device id "<N>").
 * tt-kmd's telemetry attributes there give the board type (tt_card_type:
 * "n150", "n300", "p150a" ..., the model "Tenstorrent n300"), the board serial
 * (tt_serial), the ASIC id (tt_asic_id, reported as the UUID), the firmware
 * bundle version (tt_fw_bundle_ver) and the heartbeat; the PCI function gives
 * the NUMA node, nearest CPUs and link, and <sysfs_root>/module/tenstorrent/
 * version the driver version. Memory and Tensix core counts come from the
 * board type (the driver does not report them). One n300 card is one device:
 * its second chip sits behind the first and has no PCI function of its own.
 *
 * Health: unhealthy when /dev/tenstorrent/<N> is missing under dev_root, or
 * when a Wormhole or Blackhole has no readable tt_heartbeat (tt-kmd publishes
 * telemetry only once the chip's firmware answers); degraded when a Blackhole
 * counts thermal trips since power-on (tt_therm_trip_count).
 *
 * Offers: "tenstorrent.device", whole cards, exclusive.
 *
 * Containers get: /dev/tenstorrent/<N> renumbered /dev/tenstorrent/<i> (i =
 * the card's position in the allocation, device-list order); the 1 GiB
 * hugepages mount tt-metal maps its host buffers from (hugepages_path, bind
 * mounted read-write at the same path, when it exists on the host: a path
 * under /dev is looked up under dev_root); an unlimited memlock ulimit (the
 * driver pins host memory for the card's DMA); and the resource line
 * TENSTORRENT_GLOBAL_DEVICE_IDS=<local>:<N>,...
 *
 * Measures, per card, for the node and for the container holding it, from
 * the hwmon device tt-kmd registers on the PCI function (hwmon/hwmon*):
 * tenstorrent_temp (temp1_input, ASIC temperature in Celsius; capacity the
 * throttle limit temp1_max), tenstorrent_power (power1_input in watts;
 * capacity the TDP limit power1_max), and tenstorrent_aiclk (tt_aiclk, the AI
 * clock in hertz).
 *
 * Config keys: sysfs_root (default "/sys"), dev_root (default "/dev"),
 * hugepages_path (default "/dev/hugepages-1G").
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-tenstorrent.so tenstorrent.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* readdir */
#endif
#include <hangar/support/vendor.h>

#include <limits.h>

#define TT_KEY "tenstorrent"
#define TT_SLOT "tenstorrent.device"
#define TT_PCI_VENDOR 0x1e52u
#define TT_MAX_FUNCTIONS 64

/* What a board type is, from Tenstorrent's product specifications (the driver does not say). */
typedef struct tt_board {
    const char *card_type;
    uint64_t memory_gib;
    uint32_t tensix_cores;
} tt_board;

static const tt_board tt_boards[] = {
    {"n150", 12, 72},
    {"n300", 24, 128},
    {"p100a", 28, 120},
    {"p150a", 32, 140},
    {"p150b", 32, 140},
    {"p150c", 32, 140},
};

typedef struct tt_card {
    /* The PCI function (pairs the card with its device after sorting). */
    char address[32];
    /* "hwmon<M>" under the PCI function, "" when tt-kmd registered none. */
    char hwmon[32];
} tt_card;

typedef struct tt_instance {
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    char hugepages_path[PATH_MAX];      /* the path containers see */
    char hugepages_host_path[PATH_MAX]; /* where it is on this host; "" when it does not exist */
    hs_device_table devices;
    tt_card cards[HS_MAX_DEVICES];
    char driver_version[64];
    char no_device_reason[640];
} tt_instance;

static const hs_slot_spec tt_slots[] = {
    {.name = TT_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "Tenstorrent", .display_unit = "Card"},
};
#define TT_SLOT_COUNT (sizeof tt_slots / sizeof tt_slots[0])

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

static const char *tt_arch(uint32_t device_id)
{
    switch (device_id) {
    case 0xfaca: return "Grayskull";
    case 0x401e: return "Wormhole";
    case 0xb140: return "Blackhole";
    default: return NULL;
    }
}

/* The first entry of the folder `dir_path` whose name starts with `prefix`, into out; false when there is none. */
static bool find_entry(const char *dir_path, const char *prefix, char *out, size_t len)
{
    DIR *dir = opendir(dir_path);
    bool found = false;
    for (struct dirent *e; dir != NULL && !found && (e = readdir(dir)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strlen(e->d_name) < len) {
            snprintf(out, len, "%s", e->d_name);
            found = true;
        }
    if (dir != NULL)
        closedir(dir);
    return found;
}

/* "16.0 GT/s x16" from the PCI function's current link, "" when sysfs does not say. */
static void pci_link(const char *sysfs_root, const char *address, char *out, size_t len)
{
    char speed[64], width[16];
    hs_read_textf(speed, sizeof speed, "%s/bus/pci/devices/%s/current_link_speed", sysfs_root, address);
    hs_read_textf(width, sizeof width, "%s/bus/pci/devices/%s/current_link_width", sysfs_root, address);
    char *gts = strstr(speed, "GT/s");
    out[0] = '\0';
    if (gts == NULL || width[0] < '1' || width[0] > '9')
        return;
    gts[4] = '\0'; /* drop the " PCIe" newer kernels append */
    snprintf(out, len, "%.20s x%.4s", speed, width);
}

/* Reads an attribute of card `k`'s tt-kmd class device tenstorrent!<N> (also /sys/class/tenstorrent/tenstorrent!<N>). */
static void card_attr(const tt_instance *inst, size_t k, const char *name, char *out, size_t len)
{
    const hs_device *d = &inst->devices.items[k];
    hs_read_textf(out, len, "%s/bus/pci/devices/%s/tenstorrent/tenstorrent!%s/%s", inst->sysfs_root, d->hw_location, d->id, name);
}

static bool tt_add_card(tt_instance *inst, const hs_pci_device *pci)
{
    char dir_path[PATH_MAX], class_dir[96];
    if (!hs_pathf(dir_path, sizeof dir_path, "%s/bus/pci/devices/%s/tenstorrent", inst->sysfs_root, pci->address) ||
        !find_entry(dir_path, "tenstorrent!", class_dir, sizeof class_dir))
        return false; /* not bound to tt-kmd */
    char *end = NULL;
    long long n = strtoll(class_dir + strlen("tenstorrent!"), &end, 10);
    if (end == class_dir + strlen("tenstorrent!") || *end != '\0' || n < 0 || n > INT32_MAX)
        return false;
    hs_device *d = hs_devices_add(&inst->devices);
    if (d == NULL)
        return false;
    size_t k = inst->devices.count - 1;
    tt_card *c = &inst->cards[k];
    memset(c, 0, sizeof *c);
    snprintf(c->address, sizeof c->address, "%s", pci->address);
    const char *arch = tt_arch(pci->device);
    d->index = n;
    snprintf(d->id, sizeof d->id, "%lld", n);
    snprintf(d->hw_location, sizeof d->hw_location, "%s", pci->address);
    d->numa_node = pci->numa_node;
    snprintf(d->cpu_affinity, sizeof d->cpu_affinity, "%s", pci->cpu_affinity);
    pci_link(inst->sysfs_root, pci->address, d->link_speed, sizeof d->link_speed);

    char card_type[32], heartbeat[32], trips[32];
    card_attr(inst, k, "tt_card_type", card_type, sizeof card_type);
    card_attr(inst, k, "tt_serial", d->board_id, sizeof d->board_id);
    card_attr(inst, k, "tt_asic_id", d->uuid, sizeof d->uuid);
    card_attr(inst, k, "tt_fw_bundle_ver", d->firmware_version, sizeof d->firmware_version);
    card_attr(inst, k, "tt_heartbeat", heartbeat, sizeof heartbeat);
    card_attr(inst, k, "tt_therm_trip_count", trips, sizeof trips);
    bool known_type = card_type[0] != '\0' && strcmp(card_type, "unknown") != 0;
    if (known_type)
        snprintf(d->model, sizeof d->model, "Tenstorrent %s", card_type);
    else
        snprintf(d->model, sizeof d->model, "Tenstorrent %s", arch);
    for (size_t b = 0; known_type && b < sizeof tt_boards / sizeof tt_boards[0]; b++)
        if (strcmp(tt_boards[b].card_type, card_type) == 0) {
            d->memory_bytes = tt_boards[b].memory_gib << 30;
            d->processing_units = tt_boards[b].tensix_cores;
        }
    snprintf(d->extra_info_json, sizeof d->extra_info_json, "{\"arch\":\"%s\",\"board_type\":%s%s%s,\"pci_device_id\":\"0x%04x\"}", arch,
             known_type ? "\"" : "", known_type ? card_type : "null", known_type ? "\"" : "", pci->device);

    char node[PATH_MAX];
    if (hs_pathf(dir_path, sizeof dir_path, "%s/bus/pci/devices/%s/hwmon", inst->sysfs_root, pci->address))
        find_entry(dir_path, "hwmon", c->hwmon, sizeof c->hwmon);
    if (!hs_pathf(node, sizeof node, "%s/tenstorrent/%lld", inst->dev_root, n) || !hs_path_exists(node)) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "/dev/tenstorrent/%lld is missing although tt-kmd bound %s", n, pci->address);
    } else if (pci->device != 0xfaca && heartbeat[0] == '\0') {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason,
                 "tt-kmd has no firmware telemetry (tt_heartbeat) for %s: the chip's firmware is not running; reset the card (tt-smi -r)",
                 pci->address);
    } else if (trips[0] != '\0' && strcmp(trips, "0") != 0) {
        d->health = HANGAR_HEALTH_DEGRADED;
        snprintf(d->health_reason, sizeof d->health_reason, "the ASIC shut down %s time(s) on critical temperature since power-on", trips);
    }
    return true;
}

static void tt_discover(tt_instance *inst)
{
    hs_pci_device *pci = calloc(TT_MAX_FUNCTIONS, sizeof *pci);
    if (pci == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "out of memory listing PCI devices");
        return;
    }
    ptrdiff_t found = hs_pci_scan(inst->sysfs_root, TT_PCI_VENDOR, 0, pci, TT_MAX_FUNCTIONS);
    if (found < 0) {
        hs_last_error(NULL, inst->no_device_reason, sizeof inst->no_device_reason);
        free(pci);
        return;
    }
    size_t unbound = 0;
    for (ptrdiff_t i = 0; i < found; i++)
        if (tt_arch(pci[i].device) != NULL && !tt_add_card(inst, &pci[i]))
            unbound++;
    free(pci);
    hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/module/tenstorrent/version", inst->sysfs_root);
    hs_devices_sort_by_index(&inst->devices);
    /* The table is in /dev/tenstorrent/<N> order now; cards[] follows it (PCI addresses are unique). */
    tt_card sorted[HS_MAX_DEVICES]; /* 16 KiB */
    size_t count = inst->devices.count;
    for (size_t k = 0; k < count; k++)
        for (size_t j = 0; j < count; j++)
            if (strcmp(inst->cards[j].address, inst->devices.items[k].hw_location) == 0)
                sorted[k] = inst->cards[j];
    memcpy(inst->cards, sorted, count * sizeof sorted[0]);
    if (count > 0)
        return;
    if (unbound > 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "%zu Tenstorrent PCI function(s) but none bound to tt-kmd (no tenstorrent/tenstorrent!<N> in sysfs): load the tenstorrent "
                 "module", unbound);
    else
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "no Tenstorrent card: no PCI function of vendor 0x1e52 in %.400s/bus/pci/devices", inst->sysfs_root);
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

static hangar_status tt_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, TT_KEY, host, config_json, out, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    tt_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if ((st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
        (st = hs_cfg_string(&c, "hugepages_path", inst->hugepages_path, sizeof inst->hugepages_path)) != HANGAR_OK) {
        free(inst);
        return st;
    }
    if (inst->hugepages_path[0] != '/') {
        st = hs_create_fail(&c, HANGAR_E_INVALID_CONFIG, "config key \"hugepages_path\": expected an absolute path, got \"%.200s\"",
                            inst->hugepages_path);
        free(inst);
        return st;
    }
    /* A path under /dev lives under dev_root on this host (a fake tree in tests); others are taken as they are. */
    bool under_dev = strncmp(inst->hugepages_path, "/dev/", 5) == 0;
    if (!hs_pathf(inst->hugepages_host_path, sizeof inst->hugepages_host_path, "%s%s", under_dev ? inst->dev_root : "",
                  under_dev ? inst->hugepages_path + 4 : inst->hugepages_path) ||
        !hs_path_exists(inst->hugepages_host_path))
        inst->hugepages_host_path[0] = '\0';
    tt_discover(inst);
    if (inst->devices.count > 0 && inst->hugepages_host_path[0] == '\0' && HS_HAS_FIELD(hangar_host_services, log, host->struct_size) &&
        host->log != NULL)
        host->log(host->host_context, HANGAR_LOG_WARNING,
                  "no 1 GiB hugepages mount at hugepages_path: containers get none, and tt-metal needs one on Wormhole cards");
    *out = inst;
    return HANGAR_OK;
}

static void tt_destroy(void *instance) { free(instance); }

static hangar_status tt_get_info(void *instance, hangar_accel_info *info)
{
    const tt_instance *inst = instance;
    return hs_fill_info(info, TT_KEY, inst->driver_version, NULL,
                        inst->devices.count == 0         ? "{\"tenstorrent_support\":false}"
                        : inst->hugepages_host_path[0] ? "{\"tenstorrent_support\":true,\"hugepages_1g\":true}"
                                                       : "{\"tenstorrent_support\":true,\"hugepages_1g\":false}",
                        inst->no_device_reason);
}

static hangar_status tt_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const tt_instance *)instance)->devices, sink, ctx);
}

static hangar_status tt_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(tt_slots, TT_SLOT_COUNT, &((const tt_instance *)instance)->devices, sink, ctx);
}

static hangar_status tt_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(tt_slots, TT_SLOT_COUNT, &((const tt_instance *)instance)->devices, sink, ctx);
}

static hangar_status tt_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const tt_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, tt_slots, TT_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    hs_strbuf pairs;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &pairs))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu cards is too long", sel.count);
    for (size_t k = 0; k < sel.count; k++) {
        char host_path[PATH_MAX], container_path[48];
        if (!hs_pathf(host_path, sizeof host_path, "%s/tenstorrent/%" PRId64, inst->dev_root, inst->devices.items[sel.picks[k].device].index))
            return hs_fail(HANGAR_E_INVALID_CONFIG, "container_edits: dev_root %s is too long", inst->dev_root);
        snprintf(container_path, sizeof container_path, "/dev/tenstorrent/%zu", k);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    }
    if (inst->hugepages_host_path[0] != '\0')
        HS_EDIT(edits, add_mount, inst->hugepages_host_path, inst->hugepages_path, 0);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_resource_data, "TENSTORRENT_GLOBAL_DEVICE_IDS", pairs.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measures                                                                  */
/* ------------------------------------------------------------------------ */

/* A value of card `k`'s hwmon device, or -1 when absent. */
static int64_t hwmon_value(const tt_instance *inst, size_t k, const char *name)
{
    if (inst->cards[k].hwmon[0] == '\0')
        return -1;
    return hs_read_i64f(-1, "%s/bus/pci/devices/%s/hwmon/%s/%s", inst->sysfs_root, inst->devices.items[k].hw_location,
                        inst->cards[k].hwmon, name);
}

static hangar_status tt_measure_card(const tt_instance *inst, size_t k, const char *container_id, hangar_accel_measure_sink sink, void *ctx)
{
    const char *id = inst->devices.items[k].id;
    hangar_status st = HANGAR_OK;
    int64_t temp = hwmon_value(inst, k, "temp1_input"), temp_max = hwmon_value(inst, k, "temp1_max");
    int64_t power = hwmon_value(inst, k, "power1_input"), power_max = hwmon_value(inst, k, "power1_max");
    char aiclk[32];
    card_attr(inst, k, "tt_aiclk", aiclk, sizeof aiclk);
    char *end = NULL;
    long long mhz = aiclk[0] != '\0' ? strtoll(aiclk, &end, 10) : -1;
    if (temp >= 0) /* millidegrees Celsius */
        st = hs_measure(sink, ctx, "tenstorrent_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temp / 1000.0,
                        temp_max > 0 ? temp_max / 1000.0 : 0);
    if (st == HANGAR_OK && power >= 0) /* microwatts */
        st = hs_measure(sink, ctx, "tenstorrent_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power / 1e6,
                        power_max > 0 ? power_max / 1e6 : 0);
    if (st == HANGAR_OK && mhz >= 0 && end != NULL && *end == '\0')
        st = hs_measure(sink, ctx, "tenstorrent_aiclk", HANGAR_UNIT_HERTZ, HANGAR_MEASURE_GAUGE, id, container_id, (double)mhz * 1e6, 0);
    return st;
}

static hangar_status tt_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    const tt_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    hangar_status st = HANGAR_OK;
    for (size_t k = 0; st == HANGAR_OK && k < inst->devices.count; k++)
        st = tt_measure_card(inst, k, NULL, sink, ctx);
    return st;
}

static hangar_status tt_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                  hangar_accel_measure_sink sink, void *ctx)
{
    const tt_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    for (size_t i = 0; i < count; i++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, i);
        hangar_status st = hs_check_allocation_shape(alloc, "gather_container_measures");
        for (size_t e = 0; st == HANGAR_OK && e < alloc->entry_count; e++) {
            const hangar_accel_alloc_entry *entry = hs_entry(alloc, e);
            ptrdiff_t k = entry->slot_name != NULL && strcmp(entry->slot_name, TT_SLOT) == 0 ? hs_devices_find(&inst->devices, entry->device_id) : -1;
            if (k >= 0) /* entries naming no card of this plugin are skipped */
                st = tt_measure_card(inst, (size_t)k, alloc->container_id, sink, ctx);
        }
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char tt_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted; cards are found in <sysfs_root>/bus/pci/devices (vendor 0x1e52) with tt-kmd's "
    "tenstorrent/tenstorrent!<N> telemetry and hwmon sensors.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes tenstorrent/<N> are (an absolute path); containers see them renumbered under "
    "/dev/tenstorrent.\"},"
    "\"hugepages_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev/hugepages-1G\","
    "\"description\":\"The 1 GiB hugetlbfs mount tt-metal uses, bind-mounted into containers at the same path when it exists; a "
    "path under /dev is looked up under dev_root on the host.\"}}}";

static const hangar_accelerator_functions tt_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = tt_create,
    .destroy = tt_destroy,
    .last_error = hs_last_error,
    .get_info = tt_get_info,
    .list_devices = tt_list_devices,
    .list_slots = tt_list_slots,
    .list_device_slots = tt_list_device_slots,
    .container_edits = tt_container_edits,
    .gather_node_measures = tt_gather_node_measures,
    .gather_container_measures = tt_gather_container_measures,
};

static const char *const tt_slot_names[] = {TT_SLOT, NULL};

static const hangar_plugin_descriptor tt_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS,
    .name = TT_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Tenstorrent Grayskull, Wormhole and Blackhole cards through tt-kmd's sysfs: whole-card tenstorrent.device slots, "
                   "renumbered /dev/tenstorrent nodes, the 1 GiB hugepages mount, temperature, power and clock metrics",
    .license = "Apache-2.0",
    .config_schema = tt_schema,
    .static_slot_names = tt_slot_names,
    .functions = &tt_functions,
    .homepage = "https://github.com/tenstorrent/tt-kmd",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(tt_descriptor, 2)
