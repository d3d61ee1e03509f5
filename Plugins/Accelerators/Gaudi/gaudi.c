/*
 * Hangar accelerator plugin for Intel Gaudi (Habana Labs) accelerators ("gaudi").
 *
 * Discovers the cards once, at create(), from the habanalabs driver's sysfs:
 * <sysfs_root>/class/accel/accel<N>/device/ on kernels with the accel
 * subsystem (6.2+), where the driver's attributes live on the PCI function,
 * else <sysfs_root>/class/habanalabs/hl<N>/ (older drivers). Only PCI vendor
 * 0x1da3 counts (the accel class also holds other vendors' NPUs). Per card:
 * device_type (GAUDI, GAUDI2, GAUDI2B, ...), status, pci_addr, module_id
 * (the OAM slot on an HLS board), cpucp_ver (firmware), and from the PCI
 * function its NUMA node, local_cpulist and link. Device ids are the
 * driver's index N, in index order.
 *
 * libhlml (config hlml_library, dlopen'ed, optional; devices matched by PCI
 * address) adds the board name (HL-225, ...), memory, UUID and serial, and
 * the measures gaudi_mem (bytes used of the total), gaudi_util (AIP percent),
 * gaudi_temp (Celsius, on the AIP), gaudi_power (watts; capacity the default
 * power limit) and gaudi_energy (joules since the driver loaded, a counter),
 * for the node and for each container's cards. Without it the cards are
 * still found, without memory or measures.
 *
 * Health (re-read by list_devices): the driver's status must be
 * "Operational"; anything else ("Needs reset", "Disabled", "In reset",
 * "In device creation", ...) makes the card unhealthy with that status as
 * the reason, as does a missing device node or hlml answering
 * HLML_ERROR_AIP_IS_LOST.
 *
 * Slot: gaudi.device (whole cards, exclusive). A container gets each card's
 * /dev/accel/accel<N> and /dev/accel/accel_controlD<N> (/dev/hl<N> and
 * /dev/hl_controlD<N> on old drivers), HABANA_VISIBLE_DEVICES (the card
 * indices the container's nodes carry), HABANA_VISIBLE_MODULES (their module
 * ids, when the driver gives them), CAP_SYS_NICE and the host IPC namespace
 * (Habana's `docker run` instructions; Backend.AI sets host IPC too), and the
 * resource lines GAUDI_GLOBAL_DEVICE_IDS and HABANA_GLOBAL_DEVICE_IDS (the
 * key Backend.AI's Habana plugin writes), both "<local>:<N>".
 *
 * Device node names (config device_names): "host" (the default) keeps N
 * inside the container, as Habana's container runtime and device plugin and
 * Backend.AI do: libhlthunk maps a PCI address to N through the (not
 * namespaced) sysfs class and then opens /dev/accel/accel<N>, and a habana
 * runtime hook reads HABANA_VISIBLE_DEVICES as host indices, so renumbered
 * nodes would be opened under the wrong index. "renumbered" gives the
 * container accel0, accel1, ... in list order and local indices in
 * HABANA_VISIBLE_DEVICES, for images that only enumerate /dev/accel.
 *
 * Config: sysfs_root ("/sys"), dev_root ("/dev"), hlml_library ("libhlml.so"),
 * device_names ("host").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* realpath, readdir; the support header's pipe2 */
#endif

#include <hangar/support.h>

#include <dirent.h>
#include <limits.h>
#include <strings.h>

#include "gaudi_hlml.h"

#define GAUDI_KEY "gaudi"
#define GAUDI_SLOT "gaudi.device"
#define GAUDI_PCI_VENDOR 0x1da3

/* ------------------------------------------------------------------------ */
/* Instance state                                                            */
/* ------------------------------------------------------------------------ */

/** What the plugin keeps of a card beyond its hs_device (same position in the table). */
typedef struct gaudi_card {
    /** Where the driver's attributes are: .../class/accel/accel<N>/device or .../class/habanalabs/hl<N>. */
    char attr_dir[PATH_MAX];
    /** Device node names under dev_root: "accel/accel" + "accel/accel_controlD", or "hl" + "hl_controlD". */
    const char *node_prefix;
    const char *control_prefix;
    int64_t module_id; /* -1 when unknown */
    bool node_missing;
    char node_problem[160];
    hlml_device_t handle;
    bool has_handle;
    bool lost; /* hlml's last answer was HLML_ERROR_AIP_IS_LOST (as during a reset): unhealthy until a query succeeds again */
    char lost_reason[160];
} gaudi_card;

typedef struct gaudi_hlml {
    hlml_init_fn init;
    hlml_shutdown_fn shutdown;
    hlml_device_get_count_fn get_count;
    hlml_device_get_handle_by_pci_bus_id_fn by_pci;
    hlml_device_get_memory_info_fn memory;
    hlml_device_get_utilization_rates_fn utilization;
    /* Optional: NULL when the library lacks them. */
    hlml_device_get_name_fn name;
    hlml_device_get_uuid_fn uuid;
    hlml_device_get_serial_fn serial;
    hlml_device_get_module_id_fn module_id;
    hlml_device_get_temperature_fn temperature;
    hlml_device_get_power_usage_fn power;
    hlml_device_get_power_management_default_limit_fn power_limit;
    hlml_device_get_total_energy_consumption_fn energy;
    hlml_get_driver_version_fn driver_version;
} gaudi_hlml;

typedef struct gaudi_instance {
    const hangar_host_services *host;
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    bool renumber; /* device_names = "renumbered" */
    gaudi_hlml hlml;
    bool hlml_ready;
    char hlml_problem[400];
    hs_device_table devices;
    gaudi_card cards[HS_MAX_DEVICES];
    char driver_version[64];
    hs_strbuf extra_info;
    char no_device_reason[640];
} gaudi_instance;

static const hs_slot_spec gaudi_slots[] = {
    {.name = GAUDI_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "Gaudi", .display_unit = "HPU"},
};
#define GAUDI_SLOT_COUNT (sizeof gaudi_slots / sizeof gaudi_slots[0])

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

/* Appends `s` as a JSON string. */
static void json_string(hs_strbuf *b, const char *s)
{
    hs_strbuf_addf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        hs_strbuf_addf(b, *p == '"' || *p == '\\' ? "\\%c" : *p < 0x20 ? "\\u%04x" : "%c", *p);
    hs_strbuf_addf(b, "\"");
}

/* ------------------------------------------------------------------------ */
/* sysfs                                                                     */
/* ------------------------------------------------------------------------ */

/* "0000:33:00.0": the form pci_addr prints and bus/pci/devices uses. */
static bool looks_like_pci_address(const char *s)
{
    unsigned domain, bus, dev, fn;
    char tail;
    return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &domain, &bus, &dev, &fn, &tail) == 4;
}

/* The card's PCI address: the driver's pci_addr, else the name of the PCI function its attribute folder resolves to. */
static void card_pci_address(const char *attr_dir, char *out, size_t len)
{
    hs_read_textf(out, len, "%s/pci_addr", attr_dir);
    if (looks_like_pci_address(out))
        return;
    char resolved[PATH_MAX], *base;
    out[0] = '\0';
    if (realpath(attr_dir, resolved) != NULL && (base = strrchr(resolved, '/')) != NULL && looks_like_pci_address(base + 1))
        snprintf(out, len, "%s", base + 1);
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

/* A model name from device_type, for when hlml cannot name the board; and the ASIC's TPC count (its compute engines). */
static void asic_facts(const char *type, char *model, size_t len, uint32_t *tpcs)
{
    if (strncmp(type, "GAUDI3", 6) == 0) {
        snprintf(model, len, "Intel Gaudi 3");
        *tpcs = 64;
    } else if (strncmp(type, "GAUDI2", 6) == 0) {
        snprintf(model, len, "Intel Gaudi 2");
        *tpcs = 24;
    } else if (strncmp(type, "GAUDI", 5) == 0) {
        snprintf(model, len, "Habana Gaudi");
        *tpcs = 8;
    } else if (strcmp(type, "GOYA") == 0) {
        snprintf(model, len, "Habana Goya");
        *tpcs = 8;
    } else {
        snprintf(model, len, "Habana accelerator%s%.40s%s", type[0] ? " (" : "", type, type[0] ? ")" : "");
        *tpcs = 0;
    }
}

/* The driver index N of "<prefix><N>", or -1 for any other name (accel_controlD<N> included). */
static long long entry_index(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = NULL;
    if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9')
        return -1;
    long long v = strtoll(name + n, &end, 10);
    return *end == '\0' && v >= 0 && v < 1 << 20 ? v : -1;
}

static int index_order(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/*
 * Adds every habanalabs card of one class folder, in index order. `accel`
 * selects the layout: class/accel/accel<N>/device/ (attributes on the PCI
 * function; other vendors' NPUs share the class, so the PCI vendor decides)
 * or class/habanalabs/hl<N>/ (the driver's own class). Returns the number of
 * entries of the class seen, -1 when the class folder is absent.
 */
static long scan_class(gaudi_instance *inst, bool accel)
{
    char class_dir[PATH_MAX + 32];
    if (!hs_pathf(class_dir, sizeof class_dir, "%s/class/%s", inst->sysfs_root, accel ? "accel" : "habanalabs"))
        return -1;
    DIR *dir = opendir(class_dir);
    if (dir == NULL)
        return -1;
    long long found[HS_MAX_DEVICES];
    size_t count = 0;
    long seen = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        long long n = entry_index(entry->d_name, accel ? "accel" : "hl");
        if (n < 0)
            continue; /* ".", "..", accel_controlD<N> (the driver registers its control nodes in the accel class too) */
        seen++;
        if (accel && hs_read_i64f(-1, "%s/%s/device/vendor", class_dir, entry->d_name) != GAUDI_PCI_VENDOR)
            continue; /* another vendor's accel device (Intel NPU, AMD XDNA, Qualcomm AIC, ...) */
        if (count < HS_MAX_DEVICES)
            found[count++] = n;
        else
            host_log(inst->host, HANGAR_LOG_WARNING, "ignoring %s: this plugin handles at most %d cards", entry->d_name, HS_MAX_DEVICES);
    }
    closedir(dir);
    qsort(found, count, sizeof found[0], index_order); /* readdir order is arbitrary; list order must be stable */
    for (size_t i = 0; i < count; i++) {
        hs_device *d = hs_devices_add(&inst->devices);
        gaudi_card *c = &inst->cards[inst->devices.count - 1];
        memset(c, 0, sizeof *c);
        d->index = found[i];
        hs_pathf(c->attr_dir, sizeof c->attr_dir, accel ? "%s/accel%lld/device" : "%s/hl%lld", class_dir, found[i]);
        c->node_prefix = accel ? "accel/accel" : "hl";
        c->control_prefix = accel ? "accel/accel_controlD" : "hl_controlD";
    }
    return seen;
}

/* Static facts of card k from sysfs (before hlml). */
static void describe_card(gaudi_instance *inst, size_t k)
{
    hs_device *d = &inst->devices.items[k];
    gaudi_card *c = &inst->cards[k];
    char type[32];
    snprintf(d->id, sizeof d->id, "%" PRId64, d->index);
    card_pci_address(c->attr_dir, d->hw_location, sizeof d->hw_location);
    if (d->hw_location[0] != '\0') {
        hs_read_pci_locality(inst->sysfs_root, d->hw_location, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
        read_link(inst->sysfs_root, d->hw_location, d->link_speed, sizeof d->link_speed);
    }
    hs_read_textf(type, sizeof type, "%s/device_type", c->attr_dir);
    asic_facts(type, d->model, sizeof d->model, &d->processing_units);
    hs_read_textf(d->firmware_version, sizeof d->firmware_version, "%s/cpucp_ver", c->attr_dir);
    if (d->firmware_version[0] == '\0')
        hs_read_textf(d->firmware_version, sizeof d->firmware_version, "%s/armcp_ver", c->attr_dir);
    c->module_id = hs_read_i64f(-1, "%s/module_id", c->attr_dir);
    d->health = 0; /* refresh_health sets it without logging a change */
    for (int i = 0; i < 2 && !c->node_missing; i++) {
        char path[PATH_MAX + 48];
        hs_pathf(path, sizeof path, "%s/%s%" PRId64, inst->dev_root, i == 0 ? c->node_prefix : c->control_prefix, d->index);
        if (!hs_path_exists(path)) {
            c->node_missing = true;
            snprintf(c->node_problem, sizeof c->node_problem, "device node %.120s is missing", path);
        }
    }
    hs_strbuf extra = {.len = 0};
    hs_strbuf_addf(&extra, "{\"device_type\":");
    json_string(&extra, type);
    if (c->module_id >= 0)
        hs_strbuf_addf(&extra, ",\"module_id\":%" PRId64, c->module_id);
    hs_strbuf_addf(&extra, "}");
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);
}

/*
 * Notes what an hlml query of card k answered: HLML_ERROR_AIP_IS_LOST makes
 * it unhealthy, a later success healthy again (a reset also loses the AIP for
 * a while). True on success.
 */
static bool note_result(gaudi_instance *inst, size_t k, const char *what, hlml_return_t r)
{
    gaudi_card *c = &inst->cards[k];
    if (r == HLML_ERROR_AIP_IS_LOST && !c->lost) {
        c->lost = true;
        snprintf(c->lost_reason, sizeof c->lost_reason, "%s: the AIP is lost (HLML_ERROR_AIP_IS_LOST)", what);
    } else if (r == HLML_SUCCESS) {
        c->lost = false;
    }
    return r == HLML_SUCCESS;
}

/* Health from the driver's status (re-read each time), a missing node, or a lost AIP. */
static void refresh_health(gaudi_instance *inst)
{
    for (size_t k = 0; k < inst->devices.count; k++) {
        hs_device *d = &inst->devices.items[k];
        const gaudi_card *c = &inst->cards[k];
        char status[64];
        uint32_t was = d->health;
        hs_read_textf(status, sizeof status, "%s/status", c->attr_dir);
        d->health = HANGAR_HEALTH_UNHEALTHY;
        if (status[0] == '\0')
            snprintf(d->health_reason, sizeof d->health_reason, "the habanalabs driver reports no status for the card");
        else if (strcasecmp(status, "Operational") != 0)
            snprintf(d->health_reason, sizeof d->health_reason, "habanalabs status: %s", status);
        else if (c->node_missing)
            snprintf(d->health_reason, sizeof d->health_reason, "%s", c->node_problem);
        else if (c->lost)
            snprintf(d->health_reason, sizeof d->health_reason, "%s", c->lost_reason);
        else {
            d->health = HANGAR_HEALTH_HEALTHY;
            d->health_reason[0] = '\0';
        }
        if (was != 0 && was != d->health)
            host_log(inst->host, d->health == HANGAR_HEALTH_HEALTHY ? HANGAR_LOG_NOTICE : HANGAR_LOG_WARNING, "Gaudi %s (%s) is now %s%s%s",
                     d->id, d->hw_location, d->health == HANGAR_HEALTH_HEALTHY ? "healthy" : "unhealthy", d->health_reason[0] ? ": " : "",
                     d->health_reason);
    }
}

/* ------------------------------------------------------------------------ */
/* hlml                                                                      */
/* ------------------------------------------------------------------------ */

#define HLML_LOAD(inst, lib, field, sym, required)                               \
    do {                                                                         \
        void (*p_)(void) = hs_library_symbol((lib), #sym);                      \
        memcpy(&(inst)->hlml.field, &p_, sizeof p_);                            \
        if (p_ == NULL && (required) && missing == NULL)                        \
            missing = #sym;                                                      \
    } while (0)

/* Loads and initialises hlml; on failure says why in hlml_problem (the cards stay, without memory or measures). */
static void hlml_open(gaudi_instance *inst, const char *library)
{
    void *lib = hs_library_open(library);
    if (lib == NULL) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        snprintf(inst->hlml_problem, sizeof inst->hlml_problem, "%.300s", why);
        return;
    }
    /* The library stays mapped for the life of the process: it is not safe to dlclose. */
    const char *missing = NULL;
    HLML_LOAD(inst, lib, init, hlml_init, true);
    HLML_LOAD(inst, lib, shutdown, hlml_shutdown, true);
    HLML_LOAD(inst, lib, get_count, hlml_device_get_count, true);
    HLML_LOAD(inst, lib, by_pci, hlml_device_get_handle_by_pci_bus_id, true);
    HLML_LOAD(inst, lib, memory, hlml_device_get_memory_info, true);
    HLML_LOAD(inst, lib, utilization, hlml_device_get_utilization_rates, true);
    HLML_LOAD(inst, lib, name, hlml_device_get_name, false);
    HLML_LOAD(inst, lib, uuid, hlml_device_get_uuid, false);
    HLML_LOAD(inst, lib, serial, hlml_device_get_serial, false);
    HLML_LOAD(inst, lib, module_id, hlml_device_get_module_id, false);
    HLML_LOAD(inst, lib, temperature, hlml_device_get_temperature, false);
    HLML_LOAD(inst, lib, power, hlml_device_get_power_usage, false);
    HLML_LOAD(inst, lib, power_limit, hlml_device_get_power_management_default_limit, false);
    HLML_LOAD(inst, lib, energy, hlml_device_get_total_energy_consumption, false);
    HLML_LOAD(inst, lib, driver_version, hlml_get_driver_version, false);
    if (missing != NULL) {
        snprintf(inst->hlml_problem, sizeof inst->hlml_problem, "%.200s lacks %s; it is not hlml or is too old", library, missing);
        memset(&inst->hlml, 0, sizeof inst->hlml);
        return;
    }
    hlml_return_t r = inst->hlml.init();
    if (r != HLML_SUCCESS) {
        snprintf(inst->hlml_problem, sizeof inst->hlml_problem, "hlml_init failed with hlml error %u%s", r,
                 r == HLML_ERROR_DRIVER_NOT_LOADED ? " (the habanalabs driver is not loaded)" : "");
        return;
    }
    inst->hlml_ready = true;
}

/* One of hlml's string queries (name, UUID, serial) into `out`; false when absent, failing or empty. */
static bool hlml_text(hlml_device_get_name_fn fn, hlml_device_t handle, char *out, size_t len)
{
    char text[128];
    if (fn == NULL || fn(handle, text, sizeof text) != HLML_SUCCESS)
        return false;
    text[sizeof text - 1] = '\0';
    if (text[0] == '\0' || strlen(text) >= len)
        return false;
    memcpy(out, text, strlen(text) + 1);
    return true;
}

/* hlml's facts of each card it knows by PCI address. */
static void hlml_describe(gaudi_instance *inst)
{
    for (size_t k = 0; k < inst->devices.count; k++) {
        hs_device *d = &inst->devices.items[k];
        gaudi_card *c = &inst->cards[k];
        const gaudi_hlml *h = &inst->hlml;
        if (d->hw_location[0] == '\0' || h->by_pci(d->hw_location, &c->handle) != HLML_SUCCESS) {
            host_log(inst->host, HANGAR_LOG_WARNING, "hlml does not know Gaudi %s (%s): no memory or measures for it", d->id, d->hw_location);
            continue;
        }
        c->has_handle = true;
        hlml_memory_t mem;
        memset(&mem, 0, sizeof mem);
        if (note_result(inst, k, "hlml_device_get_memory_info", h->memory(c->handle, &mem)))
            d->memory_bytes = mem.total;
        hlml_text(h->name, c->handle, d->model, sizeof d->model); /* the board, e.g. "HL-225"; else the ASIC name from sysfs stays */
        hlml_text(h->uuid, c->handle, d->uuid, sizeof d->uuid);
        hlml_text(h->serial, c->handle, d->board_id, sizeof d->board_id);
        unsigned int module = 0;
        if (c->module_id < 0 && h->module_id != NULL && h->module_id(c->handle, &module) == HLML_SUCCESS)
            c->module_id = module;
    }
}

/* ------------------------------------------------------------------------ */
/* Discovery and lifecycle                                                   */
/* ------------------------------------------------------------------------ */

/* How many PCI functions of vendor 0x1da3 the bus has (cards present without the driver). */
static long habana_functions_on_bus(const char *sysfs_root)
{
    hs_pci_device found[64];
    ptrdiff_t n = hs_pci_scan(sysfs_root, GAUDI_PCI_VENDOR, 0, found, sizeof found / sizeof found[0]);
    return n > 0 ? (long)n : 0;
}

static void discover(gaudi_instance *inst)
{
    long accel_seen = scan_class(inst, true);
    long hl_seen = inst->devices.count == 0 ? scan_class(inst, false) : 0;
    if (inst->devices.count == 0) {
        if (accel_seen > 0)
            snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                     "none of the %ld device(s) in %.300s/class/accel is a habanalabs card (PCI vendor 0x%04x): is the habanalabs driver loaded?",
                     accel_seen, inst->sysfs_root, GAUDI_PCI_VENDOR);
        else if (hl_seen > 0)
            snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "the habanalabs class in %.300s lists no usable card", inst->sysfs_root);
        else {
            /* Cards on the bus without the driver are worth naming: the fix is loading habanalabs, not buying hardware. */
            char bus_note[96] = "";
            long on_bus = habana_functions_on_bus(inst->sysfs_root);
            if (on_bus > 0)
                snprintf(bus_note, sizeof bus_note, " (%ld Habana Labs PCI function(s) are on the bus)", on_bus);
            snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                     "no habanalabs card in %.300s (neither class/accel/accel<N> of PCI vendor 0x%04x nor class/habanalabs/hl<N>): the "
                     "habanalabs driver is not loaded%s",
                     inst->sysfs_root, GAUDI_PCI_VENDOR, bus_note);
        }
    }
}

static void gaudi_destroy(void *instance)
{
    gaudi_instance *inst = instance;
    if (inst == NULL)
        return;
    if (inst->hlml_ready)
        inst->hlml.shutdown();
    free(inst);
}

static hangar_status gaudi_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    gaudi_instance *inst = NULL;
    char library[PATH_MAX], names[16];
    hangar_status st = hs_create_begin(&c, GAUDI_KEY, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    /* The schema gives every key a default and limits device_names to its enum: no fallbacks here. */
    if (st == HANGAR_OK && ((st = hs_cfg_string(&c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
                            (st = hs_cfg_string(&c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
                            (st = hs_cfg_string(&c, "hlml_library", library, sizeof library)) != HANGAR_OK ||
                            (st = hs_cfg_string(&c, "device_names", names, sizeof names)) != HANGAR_OK)) {
        gaudi_destroy(inst);
        return st;
    }
    if (st != HANGAR_OK)
        return st;
    inst->host = host;
    inst->renumber = strcmp(names, "renumbered") == 0;
    discover(inst);
    for (size_t k = 0; k < inst->devices.count; k++)
        describe_card(inst, k);
    if (inst->devices.count > 0) {
        hlml_open(inst, library);
        if (inst->hlml_ready)
            hlml_describe(inst);
        else
            host_log(host, HANGAR_LOG_NOTICE, "no Gaudi memory sizes or measures: %s", inst->hlml_problem);
    } else {
        host_log(host, HANGAR_LOG_INFO, "no Gaudi cards: %s", inst->no_device_reason);
    }
    refresh_health(inst);
    hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/module/habanalabs/version", inst->sysfs_root);
    if (inst->driver_version[0] == '\0' && inst->hlml_ready && inst->hlml.driver_version != NULL &&
        inst->hlml.driver_version(inst->driver_version, sizeof inst->driver_version) != HLML_SUCCESS)
        inst->driver_version[0] = '\0';
    inst->driver_version[sizeof inst->driver_version - 1] = '\0';
    hs_strbuf_addf(&inst->extra_info, "{\"gaudi_support\":%s,\"driver_version\":", inst->devices.count > 0 ? "true" : "false");
    if (inst->driver_version[0] != '\0')
        json_string(&inst->extra_info, inst->driver_version);
    else
        hs_strbuf_addf(&inst->extra_info, "null");
    hs_strbuf_addf(&inst->extra_info, ",\"hlml\":%s}", inst->hlml_ready ? "true" : "false");
    host_log(host, HANGAR_LOG_INFO, "%zu Gaudi card(s), habanalabs %s, hlml %s", inst->devices.count,
             inst->driver_version[0] ? inst->driver_version : "(unknown version)", inst->hlml_ready ? "loaded" : "not used");
    *out_instance = inst;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

static hangar_status gaudi_get_info(void *instance, hangar_accel_info *info)
{
    const gaudi_instance *inst = instance;
    return hs_fill_info(info, GAUDI_KEY, inst->driver_version, NULL, inst->extra_info.text, inst->no_device_reason);
}

static hangar_status gaudi_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    gaudi_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    refresh_health(inst); /* HANGAR_ACCEL_CAP_HEALTH_WATCH: the driver's status changes through resets */
    return hs_list_devices(&inst->devices, sink, sink_context);
}

static hangar_status gaudi_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    return hs_list_slots(gaudi_slots, GAUDI_SLOT_COUNT, &((const gaudi_instance *)instance)->devices, sink, sink_context);
}

static hangar_status gaudi_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    return hs_list_device_slots(gaudi_slots, GAUDI_SLOT_COUNT, &((const gaudi_instance *)instance)->devices, sink, sink_context);
}

static hangar_status gaudi_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    const gaudi_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(allocation, edits);
    if (st != HANGAR_OK || (st = hs_select(allocation, &inst->devices, gaudi_slots, GAUDI_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK)
        return st;
    if (sel.count == 0)
        return HANGAR_OK;

    hs_strbuf visible, modules = {.len = 0}, global_ids;
    bool all_modules = true;
    for (size_t k = 0; k < sel.count; k++) {
        int64_t m = inst->cards[sel.picks[k].device].module_id;
        all_modules = all_modules && m >= 0;
        hs_strbuf_addf(&modules, "%s%" PRId64, k ? "," : "", m);
    }
    if (!hs_selection_list(&sel, &inst->devices, inst->renumber ? HS_LIST_LOCAL : HS_LIST_INDEX, &visible) ||
        !hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &global_ids) || modules.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the device lists of %zu cards do not fit", sel.count);

    for (size_t k = 0; k < sel.count; k++) {
        const gaudi_card *c = &inst->cards[sel.picks[k].device];
        int64_t host_n = inst->devices.items[sel.picks[k].device].index, inside = inst->renumber ? (int64_t)k : host_n;
        for (int i = 0; i < 2; i++) {
            const char *prefix = i == 0 ? c->node_prefix : c->control_prefix;
            char host_path[PATH_MAX + 48], container_path[64];
            if (!hs_pathf(host_path, sizeof host_path, "%s/%s%" PRId64, inst->dev_root, prefix, host_n))
                return hs_fail(HANGAR_E_INVALID_ARGUMENT, "container_edits: dev_root is too long");
            snprintf(container_path, sizeof container_path, "/dev/%s%" PRId64, prefix, inside);
            HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        }
    }
    HS_EDIT(edits, add_env, "HABANA_VISIBLE_DEVICES", visible.text);
    if (all_modules)
        HS_EDIT(edits, add_env, "HABANA_VISIBLE_MODULES", modules.text);
    HS_EDIT(edits, add_capability, "SYS_NICE");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_resource_data, "GAUDI_GLOBAL_DEVICE_IDS", global_ids.text);
    HS_EDIT(edits, add_resource_data, "HABANA_GLOBAL_DEVICE_IDS", global_ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

/* Emits what hlml can say of card k; a query that fails skips its measure. */
static hangar_status measure_card(gaudi_instance *inst, size_t k, const char *container_id, hangar_accel_measure_sink sink, void *ctx)
{
    const gaudi_hlml *h = &inst->hlml;
    const gaudi_card *c = &inst->cards[k];
    const char *id = inst->devices.items[k].id;
    if (!c->has_handle)
        return HANGAR_OK;
    hangar_status st = HANGAR_OK;
    hlml_utilization_t util;
    hlml_memory_t mem;
    unsigned int temp = 0, power = 0, limit = 0;
    unsigned long long energy = 0;
    if (note_result(inst, k, "hlml_device_get_utilization_rates", h->utilization(c->handle, &util)) && util.aip <= 100)
        st = hs_measure(sink, ctx, "gaudi_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, id, container_id, util.aip, 100.0);
    if (st == HANGAR_OK && note_result(inst, k, "hlml_device_get_memory_info", h->memory(c->handle, &mem)))
        st = hs_measure(sink, ctx, "gaudi_mem", HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, (double)mem.used, (double)mem.total);
    if (st == HANGAR_OK && h->temperature != NULL &&
        note_result(inst, k, "hlml_device_get_temperature", h->temperature(c->handle, HLML_TEMPERATURE_ON_AIP, &temp)))
        st = hs_measure(sink, ctx, "gaudi_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temp, 0);
    if (st == HANGAR_OK && h->power != NULL && note_result(inst, k, "hlml_device_get_power_usage", h->power(c->handle, &power))) {
        if (h->power_limit == NULL || h->power_limit(c->handle, &limit) != HLML_SUCCESS)
            limit = 0;
        st = hs_measure(sink, ctx, "gaudi_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power / 1000.0, limit / 1000.0);
    }
    if (st == HANGAR_OK && h->energy != NULL &&
        note_result(inst, k, "hlml_device_get_total_energy_consumption", h->energy(c->handle, &energy)))
        st = hs_measure(sink, ctx, "gaudi_energy", HANGAR_UNIT_JOULES, HANGAR_MEASURE_COUNTER, id, container_id, (double)energy / 1000.0, 0);
    return st;
}

static hangar_status gaudi_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context)
{
    gaudi_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    hangar_status st = HANGAR_OK;
    for (size_t k = 0; inst->hlml_ready && st == HANGAR_OK && k < inst->devices.count; k++)
        st = measure_card(inst, k, NULL, sink, sink_context);
    return st;
}

static hangar_status gaudi_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                     hangar_accel_measure_sink sink, void *sink_context)
{
    gaudi_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    for (size_t a = 0; a < count && inst->hlml_ready; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        hangar_status st = hs_check_allocation_shape(alloc, "gather_container_measures");
        for (size_t i = 0; st == HANGAR_OK && i < alloc->entry_count; i++) {
            const hangar_accel_alloc_entry *e = hs_entry(alloc, i);
            ptrdiff_t k = e->slot_name != NULL && strcmp(e->slot_name, GAUDI_SLOT) == 0 ? hs_devices_find(&inst->devices, e->device_id) : -1;
            if (k >= 0) /* best effort: entries naming no card of ours are skipped */
                st = measure_card(inst, (size_t)k, alloc->container_id, sink, sink_context);
        }
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry point                                                */
/* ------------------------------------------------------------------------ */

static const char gaudi_config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted: cards come from <sysfs_root>/class/accel/accel<N>/device (or, with older "
    "drivers, class/habanalabs/hl<N>), their NUMA node and nearest CPUs from <sysfs_root>/bus/pci/devices/<address>.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the device nodes accel/accel<N> and accel/accel_controlD<N> (hl<N>, hl_controlD<N>) are on the host.\"},"
    "\"hlml_library\":{\"type\":\"string\",\"minLength\":1,\"default\":\"libhlml.so\","
    "\"description\":\"Name or path of Habana's management library to dlopen for board names, memory, UUIDs and the "
    "utilisation, memory, temperature, power and energy measures. Without it cards are still found.\"},"
    "\"device_names\":{\"type\":\"string\",\"enum\":[\"host\",\"renumbered\"],\"default\":\"host\","
    "\"description\":\"How a container's device nodes are named: \\\"host\\\" keeps the host index N (what Habana's runtime "
    "and libhlthunk expect: they map PCI addresses to N through sysfs), \\\"renumbered\\\" gives accel0, accel1, ... in "
    "list order.\"}"
    "}}";

static const char *const gaudi_slot_names[] = {GAUDI_SLOT, NULL};

static const hangar_accelerator_functions gaudi_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = gaudi_create,
    .destroy = gaudi_destroy,
    .last_error = hs_last_error,
    .get_info = gaudi_get_info,
    .list_devices = gaudi_list_devices,
    .list_slots = gaudi_list_slots,
    .list_device_slots = gaudi_list_device_slots,
    .container_edits = gaudi_container_edits,
    .gather_node_measures = gaudi_gather_node_measures,
    .gather_container_measures = gaudi_gather_container_measures,
};

static const hangar_plugin_descriptor gaudi_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0, /* the host serialises calls; list_devices refreshes health in place */
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS | HANGAR_ACCEL_CAP_HEALTH_WATCH,
    .name = GAUDI_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Intel Gaudi accelerators through the habanalabs driver's sysfs: whole-card gaudi.device slots, /dev/accel "
                   "nodes for containers, hlml memory, utilisation, temperature, power and energy metrics",
    .license = "Apache-2.0",
    .config_schema = gaudi_config_schema,
    .static_slot_names = gaudi_slot_names,
    .functions = &gaudi_functions,
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(gaudi_descriptor, 2)
