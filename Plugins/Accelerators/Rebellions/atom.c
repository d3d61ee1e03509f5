/*
 * Hangar accelerator plugin for Rebellions NPUs: ATOM, ATOM+ and ATOM Max ("atom").
 *
 * Discovers, once at create(), the NPUs `rbln-stat -j` lists. Its JSON (as rbln-stat of RBLN
 * driver 1.x-3.x prints it) is {"KMD_version": "...", "devices": [{"npu", "name" (the card,
 * e.g. "RBLN-CA22"), "sid" (board serial), "uuid", "device" (the node name, "rbln3"), "status"
 * ("normal" when usable), "fw_ver", "pstate" (P12: system abort, hung), "pci": {"dev", "bus_id", "numa_node", "link_speed",
 * "link_width"}, "temperature" ("29C"), "card_power" ("18109794uW"), "memory": {"used", "total"}
 * (bytes), "util" (percent), "board_info", ...}], "contexts": [...]}; numbers may come as strings.
 * When rbln-stat is not installed, the PCI functions of vendor 0x1eff in sysfs are used instead
 * (a physical function that has SR-IOV virtual functions enabled is skipped, as Rebellions' own
 * feature discovery does), each with its node from <pci>/rebellions/rbln<N>; that view has no
 * firmware, serial, memory or sensors.
 *
 * Device key and slot by card family: "atom" (ATOM, RBLN-CA02) -> atom.device, "atom-plus"
 * (RBLN-CA12, RBLN-CA22; PCI 0x1120/0x1220 and their VFs) -> atom-plus.device, "atom-max"
 * (RBLN-CA25; PCI 0x1250) -> atom-max.device. Config device_key "auto" serves the family of most
 * cards found; cards of another family are listed unhealthy with a reason naming device_key.
 * A device is one card: for atom and atom-plus one NPU, its id the node name ("rbln3", as
 * Backend.AI: test cards may all report the same zero UUID); for atom-max the NPUs rbln-stat lists
 * with one "sid" (the chips of one board), its id that sid, as Backend.AI's atom_max plugin.
 *
 * Locality: numa_node and local_cpulist of the card's PCI function in sysfs (rbln-stat's
 * pci.numa_node when sysfs lacks it, with that node's cpulist). Health: unhealthy when rbln-stat
 * reports a status other than "normal" or performance state P12, when a device node is missing,
 * or for another family.
 *
 * Containers (cards in list order): each host node <dev_root>/rbln<N> as /dev/rbln0, /dev/rbln1..;
 * <dev_root>/rsd0 as /dev/rsd0 when the host has it (the default RSD group, as Backend.AI passes
 * it when it makes no group); CAP_IPC_LOCK, the host IPC namespace, an unlimited memlock ulimit,
 * the sysctl net.ipv6.conf.all.disable_ipv6=0 (as Backend.AI), the CDI device
 * rebellions.ai/npu=runtime only with config cdi=true (the descriptor declares
 * HANGAR_ACCEL_CAP_CDI because the capability bits are static), and the resource line
 * <KEY>_GLOBAL_DEVICE_IDS=<local>:<device id>,... (KEY: the device key upper-cased, '-' -> '_').
 * RSD grouping (Backend.AI's enable_rsd, `rbln-stat group -c/-d`) is not implemented: it changes
 * driver state and would belong in prepare()/release(); containers use the default group.
 *
 * Measures (node, and per container for its cards), from rbln-stat run for each gather:
 * <k>_mem (bytes used of total), <k>_util (percent, mean over the card's NPUs), <k>_temp
 * (Celsius, hottest NPU), <k>_power (watts, the card's power once per card); <k> is the device
 * key with '-' -> '_'.
 *
 * Config keys: rbln_stat_path, tool_timeout_ms, device_key, cdi, sysfs_root, dev_root.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -fvisibility=hidden -shared -fPIC -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-atom.so atom.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasecmp, readdir, fork/exec in the support header */
#endif
#include <hangar/support.h>

#include <dirent.h>
#include <limits.h>
#include <strings.h>

#define ATOM_PLUGIN "atom"
#define ATOM_TEXT_MAX (1u << 20)
/** Most NPUs one card (one sid) has; ATOM Max boards carry four. */
#define ATOM_DIES_PER_CARD 16
#define ATOM_CDI_RUNTIME "rebellions.ai/npu=runtime"

enum { FAMILY_UNKNOWN = -1, FAMILY_ATOM = 0, FAMILY_PLUS = 1, FAMILY_MAX = 2, FAMILY_COUNT = 3 };

static const char *const family_key[FAMILY_COUNT] = {"atom", "atom-plus", "atom-max"};
static const char *const family_name[FAMILY_COUNT] = {"ATOM", "ATOM+", "ATOM Max"};

/** Card names as rbln-stat prints them, and the PCI device ids of their physical and virtual functions. */
static const struct {
    const char *name;
    int family;
    uint32_t pci_pf, pci_vf;
} atom_models[] = {
    {"ATOM", FAMILY_ATOM, 0, 0},
    {"RBLN-CA02", FAMILY_ATOM, 0, 0},
    {"RBLN-CA12", FAMILY_PLUS, 0x1120, 0x1121},
    {"RBLN-CA22", FAMILY_PLUS, 0x1220, 0x1221},
    {"RBLN-CA25", FAMILY_MAX, 0x1250, 0x1251},
};
#define ATOM_MODEL_COUNT (sizeof atom_models / sizeof atom_models[0])

/** One NPU (one /dev/rbln<N>) as rbln-stat or sysfs shows it. */
typedef struct atom_die {
    char node[32]; /* "rbln3"; the PCI address when sysfs shows no node */
    int64_t index; /* N of rbln<N>; large for a die without a node */
    bool has_node;
    char name[48];
    int family;
    char sid[48], uuid[96], fw[64], status[64], pstate[16], bus_id[32], link[48], board_info[32];
    int32_t numa; /* rbln-stat's, -1 when unknown */
    uint64_t mem_total;
} atom_die;

/** The NPUs of one listed device (same position as in the device table). */
typedef struct atom_card {
    size_t die_count;
    size_t dies[ATOM_DIES_PER_CARD]; /* indices into atom_instance.dies */
    /** Of the family this instance serves (measured); false for cards listed only to say why they are not offered. */
    bool served;
} atom_card;

typedef struct atom_instance {
    const hangar_host_services *host;
    char rbln_stat[PATH_MAX];
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    int timeout_ms;
    bool cdi;
    bool from_tool; /* discovered through rbln-stat (so it can be measured) */
    bool has_rsd0;
    int family; /* the family served */
    char key_config[16];
    char slot_name[32], res_key[48], m_mem[24], m_util[24], m_temp[24], m_power[24];
    hs_slot_spec slot;
    atom_die dies[HS_MAX_DEVICES];
    size_t die_count;
    hs_device_table devices;
    atom_card cards[HS_MAX_DEVICES];
    char driver_version[64];
    char extra_info[96];
    char no_device_reason[640];
} atom_instance;

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
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/** A scalar member as text (rbln-stat prints most numbers as strings, some versions as numbers). */
static void member_text(const hs_json *j, const hs_json_value *object, const char *key, char *buf, size_t len)
{
    const hs_json_value *v = hs_json_get(j, object, key);
    buf[0] = '\0';
    if (v != NULL && v->type == HS_JSON_STRING)
        snprintf(buf, len, "%s", v->string);
    else if (v != NULL && v->type == HS_JSON_NUMBER && v->number > -1e15 && v->number < 1e15 && v->number == (double)(long long)v->number)
        snprintf(buf, len, "%lld", (long long)v->number);
    else if (v != NULL && v->type == HS_JSON_NUMBER)
        snprintf(buf, len, "%.17g", v->number);
}

/** The number a reading starts with ("29C", "18109794uW", "4.4"), and the unit text after it. */
static bool leading_number(const char *text, double *out, const char **unit)
{
    char *end = NULL;
    while (*text == ' ')
        text++;
    double v = strtod(text, &end);
    if (end == text || v != v || v > 1e300 || v < -1e300)
        return false;
    while (*end == ' ')
        end++;
    *out = v;
    if (unit != NULL)
        *unit = end;
    return true;
}

/** N of "rbln<N>", or -1. */
static int64_t rbln_index(const char *node)
{
    size_t n = strlen(node);
    if (n < 5 || n > 12 || strncmp(node, "rbln", 4) != 0 || strspn(node + 4, "0123456789") != n - 4)
        return -1;
    return strtoll(node + 4, NULL, 10);
}

static bool looks_like_pci_address(const char *s)
{
    unsigned domain, bus, dev, fn;
    char tail;
    return strlen(s) < 32 && strspn(s, "0123456789abcdefABCDEF:.") == strlen(s) &&
           sscanf(s, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) == 4;
}

static int family_of_name(const char *name)
{
    for (size_t i = 0; i < ATOM_MODEL_COUNT; i++)
        if (strcasecmp(atom_models[i].name, name) == 0)
            return atom_models[i].family;
    return FAMILY_UNKNOWN;
}

static void strbuf_json_string(hs_strbuf *b, const char *s)
{
    hs_strbuf_addf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            hs_strbuf_addf(b, "\\%c", *p);
        else if (*p < 0x20)
            hs_strbuf_addf(b, "\\u%04x", *p);
        else
            hs_strbuf_addf(b, "%c", *p);
    }
    hs_strbuf_addf(b, "\"");
}

/** Runs `rbln-stat -j` and parses its output into a new document (*out_json and *out_text freed by the caller). */
static hangar_status run_rbln_stat(const atom_instance *inst, hs_json **out_json, char **out_text)
{
    *out_json = NULL;
    *out_text = NULL;
    char *text = malloc(ATOM_TEXT_MAX);
    hs_json *json = malloc(sizeof *json);
    char err[512];
    if (text == NULL || json == NULL) {
        free(text);
        free(json);
        return hs_fail(HANGAR_E_INSUFFICIENT, "out of memory running %s", inst->rbln_stat);
    }
    char *argv[] = {(char *)inst->rbln_stat, "-j", NULL};
    hangar_status st = hs_run_tool(argv, inst->timeout_ms, text, ATOM_TEXT_MAX, err, sizeof err);
    if (st == HANGAR_OK)
        st = hs_json_parse(json, text, "rbln-stat -j output");
    if (st == HANGAR_OK) {
        const hs_json_value *devices = hs_json_get(json, hs_json_root(json), "devices");
        if (devices == NULL || devices->type != HS_JSON_ARRAY)
            st = hs_fail(HANGAR_E_INVALID_ARGUMENT, "rbln-stat -j output is not the JSON expected (no \"devices\" array)");
    }
    if (st != HANGAR_OK) {
        free(text);
        free(json);
        return st;
    }
    *out_json = json;
    *out_text = text;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

static atom_die *new_die(atom_instance *inst)
{
    if (inst->die_count == HS_MAX_DEVICES) {
        host_log(inst->host, HANGAR_LOG_WARNING, "more than %d NPUs; the rest are ignored", HS_MAX_DEVICES);
        return NULL;
    }
    atom_die *d = &inst->dies[inst->die_count++];
    memset(d, 0, sizeof *d);
    d->numa = -1;
    d->family = FAMILY_UNKNOWN;
    return d;
}

/** The NPUs rbln-stat lists; false (no_device_reason set) when the tool fails. */
static bool dies_from_tool(atom_instance *inst)
{
    hs_json *j = NULL;
    char *text = NULL;
    hangar_status st = run_rbln_stat(inst, &j, &text);
    if (st != HANGAR_OK) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "%.600s", why);
        return false;
    }
    member_text(j, hs_json_root(j), "KMD_version", inst->driver_version, sizeof inst->driver_version);
    const hs_json_value *list = hs_json_get(j, hs_json_root(j), "devices");
    for (int32_t i = list->first; i >= 0; i = j->values[i].next) {
        const hs_json_value *e = &j->values[i];
        char node[32], text_value[64];
        member_text(j, e, "device", node, sizeof node);
        int64_t index = rbln_index(node);
        if (index < 0) {
            host_log(inst->host, HANGAR_LOG_WARNING, "skipping an rbln-stat entry whose device is \"%.20s\", not rbln<N>", node);
            continue;
        }
        bool twice = false;
        for (size_t k = 0; k < inst->die_count; k++)
            twice = twice || inst->dies[k].index == index;
        atom_die *d = twice ? NULL : new_die(inst);
        if (d == NULL)
            continue;
        snprintf(d->node, sizeof d->node, "%s", node);
        d->index = index;
        d->has_node = true;
        member_text(j, e, "name", d->name, sizeof d->name);
        d->family = family_of_name(d->name);
        member_text(j, e, "sid", d->sid, sizeof d->sid);
        member_text(j, e, "uuid", d->uuid, sizeof d->uuid);
        member_text(j, e, "fw_ver", d->fw, sizeof d->fw);
        member_text(j, e, "status", d->status, sizeof d->status);
        member_text(j, e, "pstate", d->pstate, sizeof d->pstate);
        member_text(j, e, "board_info", d->board_info, sizeof d->board_info);
        const hs_json_value *pci = hs_json_get(j, e, "pci");
        member_text(j, pci, "bus_id", d->bus_id, sizeof d->bus_id);
        char speed[24], width[16];
        member_text(j, pci, "link_speed", speed, sizeof speed);
        member_text(j, pci, "link_width", width, sizeof width);
        if (speed[0] != '\0')
            snprintf(d->link, sizeof d->link, "%s%s%s", speed, width[0] != '\0' && width[0] != 'x' ? " x" : width[0] ? " " : "", width);
        member_text(j, pci, "numa_node", text_value, sizeof text_value);
        char *end = NULL;
        long numa = strtol(text_value, &end, 10);
        if (end != text_value && *end == '\0' && numa >= 0 && numa < 65536)
            d->numa = (int32_t)numa;
        member_text(j, hs_json_get(j, e, "memory"), "total", text_value, sizeof text_value);
        unsigned long long total = strtoull(text_value, &end, 10);
        if (end != text_value && *end == '\0')
            d->mem_total = total;
    }
    free(j);
    free(text);
    inst->from_tool = true;
    return true;
}

/** The rbln<N> node the driver made for PCI function `address` (<pci>/rebellions/rbln<N>), or -1. */
static int64_t node_of_pci(const atom_instance *inst, const char *address)
{
    char path[PATH_MAX];
    if (!hs_pathf(path, sizeof path, "%s/bus/pci/devices/%s/rebellions", inst->sysfs_root, address))
        return -1;
    DIR *dir = opendir(path);
    int64_t found = -1;
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
        int64_t n = rbln_index(e->d_name);
        if (n >= 0 && (found < 0 || n < found))
            found = n;
    }
    if (dir != NULL)
        closedir(dir);
    return found;
}

/** Without rbln-stat: the Rebellions PCI functions in sysfs; false (no_device_reason set) when there are none. */
static bool dies_from_sysfs(atom_instance *inst, const char *tool_problem)
{
    hs_pci_device *pci = calloc(HS_MAX_DEVICES, sizeof *pci);
    if (pci == NULL) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "out of memory scanning PCI devices");
        return false;
    }
    ptrdiff_t n = hs_pci_scan(inst->sysfs_root, 0x1eff, 0, pci, HS_MAX_DEVICES);
    if (n <= 0) {
        char why[HS_ERROR_MAX] = "";
        if (n < 0)
            hs_last_error(NULL, why, sizeof why);
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "%.300s, and %.250s", tool_problem,
                 n < 0 ? why : "sysfs shows no Rebellions PCI device (vendor 0x1eff): no ATOM card, or its driver is not loaded");
        free(pci);
        return false;
    }
    int64_t unnamed = 1000000; /* dies without a node sort after every rbln<N> */
    for (ptrdiff_t i = 0; i < n; i++) {
        if (hs_read_i64f(0, "%s/bus/pci/devices/%s/sriov_numvfs", inst->sysfs_root, pci[i].address) > 0)
            continue; /* its virtual functions carry the NPU */
        atom_die *d = new_die(inst);
        if (d == NULL)
            break;
        snprintf(d->bus_id, sizeof d->bus_id, "%s", pci[i].address);
        d->numa = pci[i].numa_node;
        for (size_t m = 0; m < ATOM_MODEL_COUNT; m++)
            if (pci[i].device != 0 && (atom_models[m].pci_pf == pci[i].device || atom_models[m].pci_vf == pci[i].device)) {
                snprintf(d->name, sizeof d->name, "%s", atom_models[m].name);
                d->family = atom_models[m].family;
            }
        if (d->name[0] == '\0')
            snprintf(d->name, sizeof d->name, "PCI device 0x%04x", (unsigned)pci[i].device);
        int64_t node = node_of_pci(inst, pci[i].address);
        d->has_node = node >= 0;
        d->index = node >= 0 ? node : unnamed++;
        if (node >= 0)
            snprintf(d->node, sizeof d->node, "rbln%" PRId64, node);
        else
            snprintf(d->node, sizeof d->node, "%s", pci[i].address);
    }
    free(pci);
    if (inst->die_count > 0 && inst->dies[0].has_node)
        hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/class/rebellions/%s/kernel_version", inst->sysfs_root,
                      inst->dies[0].node);
    if (inst->driver_version[0] == '\0')
        hs_read_textf(inst->driver_version, sizeof inst->driver_version, "%s/module/rebellions/version", inst->sysfs_root);
    host_log(inst->host, HANGAR_LOG_INFO, "%s; found %zu NPU(s) in sysfs instead (no firmware, serial or sensor facts)", tool_problem,
             inst->die_count);
    return true;
}

static int die_order(const void *a, const void *b)
{
    int64_t x = ((const atom_die *)a)->index, y = ((const atom_die *)b)->index;
    return (x > y) - (x < y);
}

/** The family of most NPUs (ties: the family of the lowest-numbered one); atom when none is known. */
static int majority_family(const atom_instance *inst)
{
    size_t count[FAMILY_COUNT] = {0};
    for (size_t i = 0; i < inst->die_count; i++)
        if (inst->dies[i].family >= 0)
            count[inst->dies[i].family]++;
    int best = FAMILY_UNKNOWN;
    for (size_t i = 0; i < inst->die_count; i++) {
        int f = inst->dies[i].family; /* dies are sorted: the first of a tied family wins */
        if (f >= 0 && (best < 0 || count[f] > count[best]))
            best = f;
    }
    return best >= 0 ? best : FAMILY_ATOM;
}

/** Fills device `d` from its card's NPUs: facts from the first, health from all. */
static void describe_card(atom_instance *inst, hs_device *d, const atom_card *card)
{
    const atom_die *first = &inst->dies[card->dies[0]];
    snprintf(d->model, sizeof d->model, "Rebellions %s", first->name);
    snprintf(d->uuid, sizeof d->uuid, "%s", first->uuid);
    snprintf(d->board_id, sizeof d->board_id, "%s", first->sid);
    snprintf(d->firmware_version, sizeof d->firmware_version, "%s", first->fw);
    snprintf(d->hw_location, sizeof d->hw_location, "%s", first->bus_id);
    snprintf(d->link_speed, sizeof d->link_speed, "%s", first->link);
    if (looks_like_pci_address(first->bus_id))
        hs_read_pci_locality(inst->sysfs_root, first->bus_id, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    if (d->numa_node < 0)
        d->numa_node = first->numa;
    if (d->numa_node >= 0 && d->cpu_affinity[0] == '\0') {
        hs_read_textf(d->cpu_affinity, sizeof d->cpu_affinity, "%s/devices/system/node/node%d/cpulist", inst->sysfs_root, (int)d->numa_node);
        if (d->cpu_affinity[0] != '\0' && hs_cpulist_problem(d->cpu_affinity) != NULL)
            d->cpu_affinity[0] = '\0';
    }
    hs_strbuf nodes = {.len = 0}, extra = {.len = 0};
    for (size_t k = 0; k < card->die_count; k++) {
        const atom_die *die = &inst->dies[card->dies[k]];
        d->memory_bytes += die->mem_total;
        hs_strbuf_add_item(&nodes, ",", die->node);
        char node_path[PATH_MAX + 32];
        if (d->health == HANGAR_HEALTH_UNHEALTHY)
            continue;
        if (!die->has_node) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "PCI function %.32s has no rbln device node: the rebellions driver "
                     "is not bound to it", die->bus_id);
        } else if ((die->status[0] != '\0' && strcasecmp(die->status, "normal") != 0) || strcasecmp(die->pstate, "P12") == 0) {
            /* Rebellions documents performance state P12 as "system abort (hang)". */
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "rbln-stat reports %s status \"%.40s\"%s", die->node,
                     die->status[0] != '\0' ? die->status : "?", strcasecmp(die->pstate, "P12") == 0 ? " in P12 (system abort: hung)" : "");
        } else if (!hs_pathf(node_path, sizeof node_path, "%s/%s", inst->dev_root, die->node) || !hs_path_exists(node_path)) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "device node %.100s is missing", node_path);
        }
    }
    int f = first->family;
    if (d->health != HANGAR_HEALTH_UNHEALTHY && f != inst->family) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        if (f < 0)
            snprintf(d->health_reason, sizeof d->health_reason, "%.48s is not a card this plugin knows (ATOM, ATOM+ or ATOM Max)",
                     first->name);
        else
            snprintf(d->health_reason, sizeof d->health_reason, "an %s card, and this instance serves %s (device_key \"%s\"%s)",
                     family_name[f], family_key[inst->family], inst->key_config,
                     strcmp(inst->key_config, "auto") == 0 ? ": the family of most cards" : "");
    }
    hs_strbuf_addf(&extra, "{\"family\":");
    strbuf_json_string(&extra, f >= 0 ? family_key[f] : "unknown");
    hs_strbuf_addf(&extra, ",\"device_nodes\":");
    strbuf_json_string(&extra, nodes.text);
    if (first->board_info[0] != '\0') {
        hs_strbuf_addf(&extra, ",\"board_info\":");
        strbuf_json_string(&extra, first->board_info);
    }
    hs_strbuf_addf(&extra, "}");
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);
}

/** Groups the NPUs into listed devices: one per NPU, except ATOM Max NPUs of one sid when atom-max is served. */
static void build_devices(atom_instance *inst)
{
    qsort(inst->dies, inst->die_count, sizeof inst->dies[0], die_order);
    for (size_t i = 0; i < inst->die_count; i++) {
        const atom_die *die = &inst->dies[i];
        bool grouped = inst->family == FAMILY_MAX && die->family == FAMILY_MAX && die->sid[0] != '\0';
        ptrdiff_t at = grouped ? hs_devices_find(&inst->devices, die->sid) : -1;
        if (at >= 0 && inst->cards[at].die_count < ATOM_DIES_PER_CARD) {
            inst->cards[at].dies[inst->cards[at].die_count++] = i;
            continue;
        }
        size_t k = inst->devices.count;
        hs_device *d = hs_devices_add(&inst->devices);
        if (d == NULL)
            break;
        snprintf(d->id, sizeof d->id, "%s", grouped ? die->sid : die->node);
        d->index = die->index;
        inst->cards[k].die_count = 1;
        inst->cards[k].dies[0] = i;
        inst->cards[k].served = die->family == inst->family;
    }
    for (size_t k = 0; k < inst->devices.count; k++)
        describe_card(inst, &inst->devices.items[k], &inst->cards[k]);
}

static void discover(atom_instance *inst)
{
    bool found;
    if (access(inst->rbln_stat, X_OK) == 0) {
        found = dies_from_tool(inst);
    } else {
        char problem[PATH_MAX + 64];
        snprintf(problem, sizeof problem, "%.200s cannot be run (%s)", inst->rbln_stat, strerror(errno));
        found = dies_from_sysfs(inst, problem);
    }
    if (!found)
        return;
    if (strcmp(inst->key_config, "auto") == 0) {
        inst->family = majority_family(inst);
    } else {
        inst->family = FAMILY_ATOM;
        for (int f = 0; f < FAMILY_COUNT; f++)
            if (strcmp(inst->key_config, family_key[f]) == 0)
                inst->family = f;
    }
    build_devices(inst);
    if (inst->devices.count == 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "rbln-stat lists no NPUs");
    char rsd[PATH_MAX + 8];
    inst->has_rsd0 = hs_pathf(rsd, sizeof rsd, "%s/rsd0", inst->dev_root) && hs_path_exists(rsd);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle and listings                                                    */
/* ------------------------------------------------------------------------ */

static void atom_destroy(void *instance) { free(instance); }

static hangar_status atom_configure(const hs_create *c, atom_instance *inst)
{
    int64_t timeout = 0;
    hangar_status st;
    if ((st = hs_cfg_string(c, "rbln_stat_path", inst->rbln_stat, sizeof inst->rbln_stat)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "device_key", inst->key_config, sizeof inst->key_config)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
        (st = hs_cfg_bool(c, "cdi", &inst->cdi)) != HANGAR_OK || (st = hs_cfg_int(c, "tool_timeout_ms", &timeout)) != HANGAR_OK)
        return st;
    inst->timeout_ms = (int)timeout;
    inst->family = FAMILY_ATOM;
    for (int f = 0; f < FAMILY_COUNT; f++)
        if (strcmp(inst->key_config, family_key[f]) == 0)
            inst->family = f;
    discover(inst);

    const char *key = family_key[inst->family];
    snprintf(inst->slot_name, sizeof inst->slot_name, "%s.device", key);
    /* "atom-plus" -> resource key ATOM_PLUS_GLOBAL_DEVICE_IDS, measure keys atom_plus_* (keys are free of dots and dashes). */
    char upper[16], lower[16];
    size_t n = 0;
    for (; key[n] != '\0' && n < sizeof upper - 1; n++) {
        lower[n] = key[n] == '-' ? '_' : key[n];
        upper[n] = key[n] == '-' ? '_' : (char)(key[n] - 'a' + 'A');
    }
    upper[n] = lower[n] = '\0';
    snprintf(inst->res_key, sizeof inst->res_key, "%s_GLOBAL_DEVICE_IDS", upper);
    snprintf(inst->m_mem, sizeof inst->m_mem, "%s_mem", lower);
    snprintf(inst->m_util, sizeof inst->m_util, "%s_util", lower);
    snprintf(inst->m_temp, sizeof inst->m_temp, "%s_temp", lower);
    snprintf(inst->m_power, sizeof inst->m_power, "%s_power", lower);
    inst->slot = (hs_slot_spec){.name = inst->slot_name, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE,
                                .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1, .display_name = family_name[inst->family],
                                .display_unit = family_name[inst->family]};
    snprintf(inst->extra_info, sizeof inst->extra_info, "{\"atom_support\":%s,\"source\":\"%s\"}",
             inst->devices.count > 0 ? "true" : "false", inst->from_tool ? "rbln-stat" : "sysfs");
    if (inst->devices.count == 0)
        host_log(c->host, HANGAR_LOG_INFO, "no NPUs: %s", inst->no_device_reason);
    else
        host_log(c->host, HANGAR_LOG_INFO, "%zu %s device(s) listed, serving %s", inst->devices.count, inst->from_tool ? "rbln-stat" : "sysfs", key);
    return HANGAR_OK;
}

static hangar_status atom_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    atom_instance *inst = NULL;
    hangar_status st = hs_create_begin(&c, ATOM_PLUGIN, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (st == HANGAR_OK) {
        inst->host = host;
        st = atom_configure(&c, inst);
    }
    if (st == HANGAR_OK)
        *out_instance = inst;
    else
        atom_destroy(inst);
    return st;
}

static hangar_status atom_get_info(void *instance, hangar_accel_info *info)
{
    const atom_instance *inst = instance;
    return hs_fill_info(info, family_key[inst->family], inst->driver_version, NULL, inst->extra_info, inst->no_device_reason);
}

static hangar_status atom_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const atom_instance *)instance)->devices, sink, ctx);
}

static hangar_status atom_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    const atom_instance *inst = instance;
    return hs_list_slots(&inst->slot, 1, &inst->devices, sink, ctx);
}

static hangar_status atom_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    const atom_instance *inst = instance;
    return hs_list_device_slots(&inst->slot, 1, &inst->devices, sink, ctx);
}

/* ------------------------------------------------------------------------ */
/* Container edits                                                           */
/* ------------------------------------------------------------------------ */

static hangar_status atom_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const atom_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, &inst->slot, 1, &sel, "container_edits")) != HANGAR_OK || sel.count == 0)
        return st;
    hs_strbuf ids = {.len = 0};
    for (size_t k = 0; k < sel.count; k++)
        hs_strbuf_addf(&ids, "%s%zu:%s", k > 0 ? "," : "", k, inst->devices.items[sel.picks[k].device].id);
    if (ids.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu devices does not fit", sel.count);
    /* Every NPU of every card, renumbered from rbln0 in list order (the runtime opens /dev/rbln<i>). */
    size_t local = 0;
    for (size_t k = 0; k < sel.count; k++) {
        const atom_card *card = &inst->cards[sel.picks[k].device];
        for (size_t n = 0; n < card->die_count; n++) {
            char host_path[PATH_MAX + 32], container_path[32];
            hs_pathf(host_path, sizeof host_path, "%s/%s", inst->dev_root, inst->dies[card->dies[n]].node);
            snprintf(container_path, sizeof container_path, "/dev/rbln%zu", local++);
            HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
        }
    }
    if (inst->has_rsd0) {
        char rsd[PATH_MAX + 8];
        hs_pathf(rsd, sizeof rsd, "%s/rsd0", inst->dev_root);
        HS_EDIT(edits, add_device_node, rsd, "/dev/rsd0", "rwm");
    }
    /* The RBLN runtime pins host memory and shares it between processes, as Backend.AI's plugin allows. */
    HS_EDIT(edits, add_capability, "IPC_LOCK");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_sysctl, "net.ipv6.conf.all.disable_ipv6", "0");
    if (inst->cdi)
        HS_EDIT(edits, add_cdi_device, ATOM_CDI_RUNTIME);
    HS_EDIT(edits, add_resource_data, inst->res_key, ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measures                                                                  */
/* ------------------------------------------------------------------------ */

/** rbln-stat's entry for node `node`, or NULL. */
static const hs_json_value *stat_entry(const hs_json *j, const char *node)
{
    const hs_json_value *list = hs_json_get(j, hs_json_root(j), "devices");
    for (int32_t i = list->first; i >= 0; i = j->values[i].next) {
        char name[32];
        member_text(j, &j->values[i], "device", name, sizeof name);
        if (strcmp(name, node) == 0)
            return &j->values[i];
    }
    return NULL;
}

/** Emits the measures of card `k` (device `d`) from one rbln-stat run. */
static hangar_status measure_card(const atom_instance *inst, const hs_json *j, size_t k, const char *container_id,
                                  hangar_accel_measure_sink sink, void *ctx)
{
    const atom_card *card = &inst->cards[k];
    const char *id = inst->devices.items[k].id;
    double used = 0, total = 0, util = 0, temp = 0, power = 0, v = 0;
    size_t seen = 0, util_n = 0, temp_n = 0, mem_n = 0;
    bool has_power = false;
    for (size_t n = 0; n < card->die_count; n++) {
        const hs_json_value *e = stat_entry(j, inst->dies[card->dies[n]].node);
        if (e == NULL)
            continue;
        seen++;
        char text[64];
        const char *unit = NULL;
        const hs_json_value *memory = hs_json_get(j, e, "memory");
        member_text(j, memory, "used", text, sizeof text);
        double u = 0, t = 0;
        char total_text[64];
        member_text(j, memory, "total", total_text, sizeof total_text);
        if (leading_number(text, &u, NULL) && leading_number(total_text, &t, NULL)) {
            used += u;
            total += t;
            mem_n++;
        }
        member_text(j, e, "util", text, sizeof text);
        if (leading_number(text, &v, NULL)) {
            util += v;
            util_n++;
        }
        member_text(j, e, "temperature", text, sizeof text);
        if (leading_number(text, &v, NULL) && (temp_n++ == 0 || v > temp))
            temp = v;
        /* Every NPU of a multi-NPU board repeats the board's power: count it once. */
        member_text(j, e, "card_power", text, sizeof text);
        if (!has_power && leading_number(text, &v, &unit)) {
            power = strncmp(unit, "uW", 2) == 0 ? v / 1e6 : strncmp(unit, "mW", 2) == 0 ? v / 1e3 : v;
            has_power = true;
        }
    }
    hangar_status st = HANGAR_OK;
    if (seen == 0)
        return st;
    if (mem_n > 0)
        st = hs_measure(sink, ctx, inst->m_mem, HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, used, total);
    if (st == HANGAR_OK && util_n > 0) {
        double mean = util / (double)util_n;
        st = hs_measure(sink, ctx, inst->m_util, HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, id, container_id,
                        mean < 0 ? 0 : mean > 100 ? 100 : mean, 100);
    }
    if (st == HANGAR_OK && temp_n > 0)
        st = hs_measure(sink, ctx, inst->m_temp, HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temp, 0);
    if (st == HANGAR_OK && has_power)
        st = hs_measure(sink, ctx, inst->m_power, HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power, 0);
    return st;
}

/** One rbln-stat run, then every served card (allocations NULL) or each allocation's cards for its container. */
static hangar_status gather(const atom_instance *inst, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                            hangar_accel_measure_sink sink, void *ctx)
{
    if (!inst->from_tool || inst->devices.count == 0)
        return HANGAR_OK; /* the sysfs view has no sensors */
    hs_json *j = NULL;
    char *text = NULL;
    if (run_rbln_stat(inst, &j, &text) != HANGAR_OK) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        host_log(inst->host, HANGAR_LOG_WARNING, "no NPU measures: %s", why);
        return HANGAR_OK; /* the agent polls again; the log says why */
    }
    hangar_status st = HANGAR_OK;
    if (allocations == NULL) {
        for (size_t k = 0; k < inst->devices.count && st == HANGAR_OK; k++)
            if (inst->cards[k].served)
                st = measure_card(inst, j, k, NULL, sink, ctx);
    }
    for (size_t a = 0; allocations != NULL && a < count && st == HANGAR_OK; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        if (hs_check_allocation_shape(alloc, "gather_container_measures") != HANGAR_OK)
            continue;
        for (size_t e = 0; e < alloc->entry_count && st == HANGAR_OK; e++) {
            const hangar_accel_alloc_entry *entry = hs_entry(alloc, e);
            ptrdiff_t k = entry->slot_name != NULL && strcmp(entry->slot_name, inst->slot_name) == 0
                              ? hs_devices_find(&inst->devices, entry->device_id)
                              : -1;
            if (k >= 0 && inst->cards[k].served)
                st = measure_card(inst, j, (size_t)k, alloc->container_id, sink, ctx);
        }
    }
    free(j);
    free(text);
    return st;
}

static hangar_status atom_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    return gather(instance, NULL, 0, 0, sink, ctx);
}

static hangar_status atom_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                    hangar_accel_measure_sink sink, void *ctx)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    if (count == 0)
        return HANGAR_OK;
    return gather(instance, allocations, count, stride, sink, ctx);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char atom_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"rbln_stat_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/usr/local/bin/rbln-stat\","
    "\"description\":\"Path of Rebellions' rbln-stat; `rbln-stat -j` lists the NPUs and their sensors. When it is not installed the "
    "plugin lists the Rebellions PCI devices in sysfs instead (no sensors).\"},"
    "\"tool_timeout_ms\":{\"type\":\"integer\",\"minimum\":100,\"maximum\":600000,\"default\":5000,"
    "\"description\":\"Deadline for each run of rbln-stat; a tool still running is killed and reported.\"},"
    "\"device_key\":{\"type\":\"string\",\"enum\":[\"auto\",\"atom\",\"atom-plus\",\"atom-max\"],\"default\":\"auto\","
    "\"description\":\"The card family this instance serves, which names its device key and slot (<key>.device): \\\"auto\\\" takes "
    "the family of most cards found; cards of other families are listed as unhealthy.\"},"
    "\"cdi\":{\"type\":\"boolean\",\"default\":false,"
    "\"description\":\"Also request the CDI device rebellions.ai/npu=runtime (needs a CDI-capable engine and a spec from "
    "`rbln-ctk cdi generate`).\"},"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted (PCI locality, and the device list without rbln-stat); a fake tree in tests.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the host's device nodes rbln<N> and rsd0 are.\"}}}";

static const hangar_accelerator_functions atom_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = atom_create,
    .destroy = atom_destroy,
    .last_error = hs_last_error,
    .get_info = atom_get_info,
    .list_devices = atom_list_devices,
    .list_slots = atom_list_slots,
    .list_device_slots = atom_list_device_slots,
    .container_edits = atom_container_edits,
    .gather_node_measures = atom_gather_node_measures,
    .gather_container_measures = atom_gather_container_measures,
};

static const hangar_plugin_descriptor atom_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    /* CDI: the edits name rebellions.ai/npu=runtime only when config cdi is true. */
    .capabilities = HANGAR_ACCEL_CAP_CDI | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS,
    .name = ATOM_PLUGIN,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Rebellions ATOM, ATOM+ and ATOM Max NPUs through rbln-stat (or sysfs): whole-card <family>.device slots, "
                   "renumbered /dev/rbln nodes, memory, utilisation, temperature and power",
    .license = "Apache-2.0",
    .config_schema = atom_schema,
    .static_slot_names = NULL, /* atom.device, atom-plus.device or atom-max.device, by the cards found */
    .functions = &atom_functions,
    .homepage = "https://docs.rbln.ai/",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(atom_descriptor, 2)
