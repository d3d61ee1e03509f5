/*
 * Hangar accelerator plugin for Graphcore IPUs ("ipu").
 *
 * Discovers, once at create(), the IPUs that `gc-monitor -j` lists: its JSON has a "cards"
 * array, each card (an IPU-Machine, or a PCIe board) with "IPU-M" (the IPU-Machine's address;
 * absent or empty for PCIe cards), "Type" (M2000, C600, ...), "ICU FW" and an "ipus" array whose
 * entries carry "ID" (the id every Graphcore tool addresses the IPU by), "PCIe ID" (the IPU's
 * index on its IPU-M, or the PCI address of a PCIe IPU), "Serial" (the board serial) and status
 * and sensor fields ("IPU error state", "IPU temp", "IPU power", "IPU utilisation", "IPU
 * clock"). Keys are matched without regard to case. `gc-inventory -2` (optional) adds the
 * device attributes Graphcore documents ("numa node", "pci id", "firmware version", "link
 * speed", "link width", "ipu error state", "driver version"). A device id is the gc-monitor ID.
 *
 * Locality: the PCI function's numa_node and local_cpulist when the IPU (PCIe ID, or
 * gc-inventory's "pci id") is a PCI device in sysfs, else gc-inventory's "numa node" with that
 * node's cpulist; -1 when neither says.
 *
 * Health: unhealthy when the IPU error state is anything but "no errors"; for an IPU on an
 * IPU-Machine (over fabric) when the host has no RDMA devices (<dev_root>/infiniband) or its
 * ipuof.conf is missing, malformed or has no entry for it (a container could not reach it); for
 * a PCIe IPU when its device node is missing.
 *
 * Slot: "ipu.device", whole IPUs, exclusive (as Backend.AI's ipu plugin).
 *
 * Containers: IPUs over fabric get what Backend.AI's plugin gives: an ipuof.conf holding only
 * their entries (prepare() writes it to <state_dir>/<container id>/ipuof.conf, release()
 * removes it; container_edits only names it, so it changes nothing), mounted read-only at
 * /etc/ipuof.conf.d/ipuof.conf with IPUOF_CONFIG_PATH pointing there, the sysctl
 * net.ipv6.conf.all.disable_ipv6=0, the RDMA device directory <dev_root>/infiniband and the
 * configured engine networks. PCIe IPUs get their nodes <dev_root>/ipu<ID> as /dev/ipu0.. in
 * list order. Both get CAP_IPC_LOCK, the host IPC namespace, an unlimited memlock ulimit and
 * the resource line IPU_GLOBAL_DEVICE_IDS=<local>:<ID>,...
 *
 * Measures (node, and per container for its IPUs), where gc-monitor reports them: ipu_temp
 * (Celsius), ipu_power (watts), ipu_util (percent), ipu_clock (hertz); gc-monitor is run for
 * each gather with the same deadline.
 *
 * Config keys: gc_monitor_path, gc_inventory_path, tool_timeout_ms, ipuof_config_path,
 * docker_networks ("name" attaches the network to every container with fabric IPUs,
 * "name=10.1.5.0/24" only when one of its IPU-Machines is in that IPv4 subnet, as Backend.AI
 * picks the network by subnet), state_dir, sysfs_root, dev_root.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -fvisibility=hidden -shared -fPIC -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-ipu.so ipu.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasecmp, mkdir, fork/exec in the support header */
#endif
#include <hangar/support.h>

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <strings.h>
#include <sys/stat.h>

#define IPU_KEY "ipu"
#define IPU_SLOT "ipu.device"
/** Where the container finds its ipuof.conf (Backend.AI's path). */
#define IPU_CONTAINER_CONF "/etc/ipuof.conf.d/ipuof.conf"
/** Most output read from a vendor tool or file. */
#define IPU_TEXT_MAX (1u << 20)
#define IPU_MAX_NETWORKS 32

/** What the plugin keeps of an IPU beyond its hs_device (same position in the table). */
typedef struct ipu_info {
    /** On an IPU-Machine (reached over RDMA); otherwise a PCIe IPU with a device node. */
    bool fabric;
    char ipum[64];
    char pcie_id[48];
    /** Index of its entry in ipuof.conf's "devices" array, or -1. */
    int32_t ipuof_entry;
    /** IPv4 address of the IPU-Machine in network byte order, 0 when not an IPv4 address. */
    uint32_t ipum_addr;
} ipu_info;

typedef struct ipu_network {
    char name[128];
    bool has_subnet;
    uint32_t net, mask; /* host byte order */
} ipu_network;

typedef struct ipu_instance {
    const hangar_host_services *host;
    char gc_monitor[PATH_MAX];
    char gc_inventory[PATH_MAX];
    char ipuof_path[PATH_MAX];
    char state_dir[PATH_MAX];
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    int timeout_ms;
    ipu_network networks[IPU_MAX_NETWORKS];
    size_t network_count;
    /** The host's ipuof.conf, parsed (strings point into ipuof_text); NULL when absent or malformed. */
    char *ipuof_text;
    hs_json *ipuof;
    char ipuof_problem[400];
    hs_device_table devices;
    ipu_info ipus[HS_MAX_DEVICES];
    char driver_version[64];
    char extra_info[160];
    char no_device_reason[640];
} ipu_instance;

static const hs_slot_spec ipu_slots[] = {
    {.name = IPU_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "IPU", .display_unit = "IPU"},
};
#define IPU_SLOT_COUNT (sizeof ipu_slots / sizeof ipu_slots[0])

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
/* Text and JSON helpers                                                     */
/* ------------------------------------------------------------------------ */

/** An object's member by key, ignoring case (gc-monitor and gc-inventory spell keys differently). */
static const hs_json_value *json_get_ci(const hs_json *j, const hs_json_value *object, const char *key)
{
    if (object == NULL || object->type != HS_JSON_OBJECT)
        return NULL;
    for (int32_t i = object->first; i >= 0; i = j->values[i].next)
        if (strcasecmp(j->values[i].key, key) == 0)
            return &j->values[i];
    return NULL;
}

/** A scalar as text (strings as they are, integral numbers without a fraction); "" for anything else. */
static void json_scalar_text(const hs_json_value *v, char *buf, size_t len)
{
    buf[0] = '\0';
    if (v == NULL)
        return;
    if (v->type == HS_JSON_STRING)
        snprintf(buf, len, "%s", v->string);
    else if (v->type == HS_JSON_NUMBER && v->number > -1e15 && v->number < 1e15 && v->number == (double)(long long)v->number)
        snprintf(buf, len, "%lld", (long long)v->number);
    else if (v->type == HS_JSON_NUMBER)
        snprintf(buf, len, "%.17g", v->number);
}

/** The member `key` (any case) of `object` as text. */
static void member_text(const hs_json *j, const hs_json_value *object, const char *key, char *buf, size_t len)
{
    json_scalar_text(json_get_ci(j, object, key), buf, len);
}

/** The number a sensor field starts with ("34.5 C", "95.2 W", "41.3%", "1850MHz"); false for "N/A" and the like. */
static bool leading_number(const char *text, double *out, const char **unit)
{
    char *end = NULL;
    if (text == NULL)
        return false;
    while (*text == ' ')
        text++;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v))
        return false;
    while (*end == ' ')
        end++;
    *out = v;
    if (unit != NULL)
        *unit = end;
    return true;
}

/** True for a decimal number of at most 9 digits (an IPU id). */
static bool small_decimal(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9 || strspn(s, "0123456789") != n)
        return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

/** True for text shaped like a PCI address ("0000:1b:00.0"), so it can name a sysfs folder. */
static bool looks_like_pci_address(const char *s)
{
    unsigned domain, bus, dev, fn;
    char tail;
    return strlen(s) < 32 && strspn(s, "0123456789abcdefABCDEF:.") == strlen(s) &&
           sscanf(s, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) == 4;
}

/** Appends `s` as a JSON string. */
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

/** A growable byte buffer for the ipuof.conf written per container. */
typedef struct dynbuf {
    char *data;
    size_t len, cap;
    bool failed;
} dynbuf;

static void dyn_add(dynbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void dyn_str(dynbuf *b, const char *s) { dyn_add(b, s, strlen(s)); }

static void dyn_json_string(dynbuf *b, const char *s)
{
    dyn_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            snprintf(esc, sizeof esc, "\\%c", *p);
            dyn_str(b, esc);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            dyn_str(b, esc);
        } else {
            dyn_add(b, (const char *)p, 1);
        }
    }
    dyn_str(b, "\"");
}

/** Writes a parsed value back out as JSON (compact; numbers as the parser read them). */
static void dyn_json_value(dynbuf *b, const hs_json *j, const hs_json_value *v)
{
    char num[40];
    switch (v->type) {
    case HS_JSON_NULL: dyn_str(b, "null"); break;
    case HS_JSON_TRUE: dyn_str(b, "true"); break;
    case HS_JSON_FALSE: dyn_str(b, "false"); break;
    case HS_JSON_NUMBER:
        json_scalar_text(v, num, sizeof num);
        dyn_str(b, num);
        break;
    case HS_JSON_STRING: dyn_json_string(b, v->string); break;
    case HS_JSON_ARRAY:
    case HS_JSON_OBJECT:
        dyn_str(b, v->type == HS_JSON_ARRAY ? "[" : "{");
        for (int32_t i = v->first; i >= 0; i = j->values[i].next) {
            if (i != v->first)
                dyn_str(b, ",");
            if (v->type == HS_JSON_OBJECT) {
                dyn_json_string(b, j->values[i].key);
                dyn_str(b, ":");
            }
            dyn_json_value(b, j, &j->values[i]);
        }
        dyn_str(b, v->type == HS_JSON_ARRAY ? "]" : "}");
        break;
    }
}

/** Reads a whole regular file of at most `max` bytes; NULL with errno set otherwise. */
static char *read_whole_file(const char *path, size_t max, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        int e = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        errno = e;
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (text == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    text[got] = '\0';
    if (out_len != NULL)
        *out_len = got;
    return text;
}

/** Runs a tool and parses its stdout as JSON into a new document (*out_json, *out_text freed by the caller). */
static hangar_status run_json_tool(const ipu_instance *inst, const char *path, const char *arg, const char *what, hs_json **out_json,
                                   char **out_text)
{
    *out_json = NULL;
    *out_text = NULL;
    char *text = malloc(IPU_TEXT_MAX);
    hs_json *json = malloc(sizeof *json);
    char err[512];
    if (text == NULL || json == NULL) {
        free(text);
        free(json);
        return hs_fail(HANGAR_E_INSUFFICIENT, "out of memory running %s", path);
    }
    char *argv[] = {(char *)path, (char *)arg, NULL};
    hangar_status st = hs_run_tool(argv, inst->timeout_ms, text, IPU_TEXT_MAX, err, sizeof err);
    if (st == HANGAR_OK)
        st = hs_json_parse(json, text, what);
    if (st != HANGAR_OK) {
        free(text);
        free(json);
        return st;
    }
    *out_json = json;
    *out_text = text;
    return HANGAR_OK;
}

/** The host CPUs of NUMA node `node` from sysfs, for a device whose node is known but not its PCI function. */
static void node_cpulist(const char *sysfs_root, int32_t node, char *buf, size_t len)
{
    hs_read_textf(buf, len, "%s/devices/system/node/node%d/cpulist", sysfs_root, (int)node);
    if (buf[0] != '\0' && hs_cpulist_problem(buf) != NULL)
        buf[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

/** Parses "name" or "name=a.b.c.d/len" (a Docker network name: letters, digits, '_', '.', '-'). */
static bool parse_network(const char *text, ipu_network *out)
{
    memset(out, 0, sizeof *out);
    const char *eq = strchr(text, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - text) : strlen(text);
    if (name_len == 0 || name_len >= sizeof out->name ||
        strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") < name_len || text[0] == '.' ||
        text[0] == '-' || text[0] == '_')
        return false;
    memcpy(out->name, text, name_len);
    if (eq == NULL)
        return true;
    char addr[32];
    const char *slash = strchr(eq + 1, '/');
    if (slash == NULL || (size_t)(slash - eq - 1) >= sizeof addr)
        return false;
    memcpy(addr, eq + 1, (size_t)(slash - eq - 1));
    addr[slash - eq - 1] = '\0';
    struct in_addr in;
    char *end = NULL;
    long bits = strtol(slash + 1, &end, 10);
    if (inet_pton(AF_INET, addr, &in) != 1 || end == slash + 1 || *end != '\0' || bits < 0 || bits > 32)
        return false;
    out->has_subnet = true;
    out->mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    out->net = ntohl(in.s_addr) & out->mask;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                 */
/* ------------------------------------------------------------------------ */

/** Reads and parses the host's ipuof.conf; a problem is kept in ipuof_problem (fabric IPUs then get no capacity). */
static void load_ipuof(ipu_instance *inst)
{
    size_t len = 0;
    char *text = read_whole_file(inst->ipuof_path, IPU_TEXT_MAX, &len);
    if (text == NULL) {
        snprintf(inst->ipuof_problem, sizeof inst->ipuof_problem, "%.200s cannot be read (%.60s); IPUs on an IPU-Machine need the IPUoF "
                 "configuration V-IPU writes for the partition", inst->ipuof_path, strerror(errno));
        return;
    }
    hs_json *json = malloc(sizeof *json);
    if (json == NULL) {
        free(text);
        snprintf(inst->ipuof_problem, sizeof inst->ipuof_problem, "out of memory reading %.200s", inst->ipuof_path);
        return;
    }
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "%s", inst->ipuof_path);
    if (hs_json_parse(json, text, what) != HANGAR_OK) {
        hs_last_error(NULL, inst->ipuof_problem, sizeof inst->ipuof_problem);
        free(json);
        free(text);
        return;
    }
    const hs_json_value *devices = hs_json_get(json, hs_json_root(json), "devices");
    if (devices == NULL || devices->type != HS_JSON_ARRAY) {
        snprintf(inst->ipuof_problem, sizeof inst->ipuof_problem, "%.200s has no \"devices\" array", inst->ipuof_path);
        free(json);
        free(text);
        return;
    }
    inst->ipuof = json;
    inst->ipuof_text = text;
}

/** Index of the ipuof.conf entry for IPU-M `ip`, IPU `device_id` (Backend.AI matches "<ip>:<device_id>"), or -1. */
static int32_t find_ipuof_entry(const ipu_instance *inst, const char *ip, const char *device_id)
{
    if (inst->ipuof == NULL)
        return -1;
    const hs_json *j = inst->ipuof;
    const hs_json_value *devices = hs_json_get(j, hs_json_root(j), "devices");
    int32_t k = 0;
    for (int32_t i = devices->first; i >= 0; i = j->values[i].next, k++) {
        char entry_ip[64], entry_id[48];
        member_text(j, &j->values[i], "ip", entry_ip, sizeof entry_ip);
        member_text(j, &j->values[i], "device_id", entry_id, sizeof entry_id);
        if (strcmp(entry_ip, ip) == 0 && strcmp(entry_id, device_id) == 0)
            return k;
    }
    return -1;
}

/** A status field that says the IPU is fine ("no errors"), or absent / not reported. */
static bool error_state_ok(const char *state)
{
    return state[0] == '\0' || strcasecmp(state, "no errors") == 0 || strcasecmp(state, "N/A") == 0;
}

/** Adds one IPU of a gc-monitor card; false only when the table is full. */
static bool add_ipu(ipu_instance *inst, const hs_json *j, const hs_json_value *card, const hs_json_value *ipu)
{
    char id_text[32], ipum[64], type[64], state[160];
    int64_t id = 0;
    member_text(j, ipu, "ID", id_text, sizeof id_text);
    if (!small_decimal(id_text, &id)) {
        host_log(inst->host, HANGAR_LOG_WARNING, "skipping an IPU whose gc-monitor ID is \"%.20s\", not a number", id_text);
        return true;
    }
    if (hs_devices_find(&inst->devices, id_text) >= 0) {
        host_log(inst->host, HANGAR_LOG_WARNING, "gc-monitor lists IPU %s twice; keeping the first", id_text);
        return true;
    }
    size_t k = inst->devices.count;
    hs_device *d = hs_devices_add(&inst->devices);
    if (d == NULL)
        return false;
    ipu_info *info = &inst->ipus[k];
    memset(info, 0, sizeof *info);
    info->ipuof_entry = -1;
    d->index = id;
    snprintf(d->id, sizeof d->id, "%s", id_text);
    member_text(j, card, "IPU-M", ipum, sizeof ipum);
    member_text(j, card, "Type", type, sizeof type);
    member_text(j, ipu, "PCIe ID", info->pcie_id, sizeof info->pcie_id);
    member_text(j, ipu, "Serial", d->board_id, sizeof d->board_id);
    if (d->board_id[0] == '\0')
        member_text(j, card, "Serial", d->board_id, sizeof d->board_id);
    member_text(j, card, "ICU FW", d->firmware_version, sizeof d->firmware_version);
    snprintf(d->model, sizeof d->model, "Graphcore %s", type[0] != '\0' ? type : "IPU");
    info->fabric = ipum[0] != '\0' && strcasecmp(ipum, "N/A") != 0 && strcmp(ipum, "-") != 0;
    snprintf(info->ipum, sizeof info->ipum, "%s", ipum);

    hs_strbuf extra = {.len = 0};
    if (info->fabric) {
        struct in_addr in;
        if (inet_pton(AF_INET, ipum, &in) == 1)
            info->ipum_addr = in.s_addr;
        snprintf(d->hw_location, sizeof d->hw_location, "%.40s:%.20s", ipum, info->pcie_id);
        hs_strbuf_addf(&extra, "{\"target\":\"fabric\",\"ipu_m\":");
        strbuf_json_string(&extra, ipum);
        hs_strbuf_addf(&extra, ",\"ipu_index\":");
        strbuf_json_string(&extra, info->pcie_id);
        hs_strbuf_addf(&extra, "}");
    } else {
        snprintf(d->hw_location, sizeof d->hw_location, "%s", info->pcie_id);
        hs_strbuf_addf(&extra, "{\"target\":\"pcie\"}");
    }
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        snprintf(d->extra_info_json, sizeof d->extra_info_json, "%.255s", extra.text);

    /* Locality: a PCIe IPU is a PCI function in sysfs. */
    if (looks_like_pci_address(info->pcie_id))
        hs_read_pci_locality(inst->sysfs_root, info->pcie_id, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);

    member_text(j, ipu, "IPU error state", state, sizeof state);
    if (!error_state_ok(state)) {
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "gc-monitor reports IPU error state \"%.100s\"", state);
    } else if (info->fabric) {
        char rdma[PATH_MAX + 16];
        info->ipuof_entry = find_ipuof_entry(inst, ipum, info->pcie_id);
        if (!hs_pathf(rdma, sizeof rdma, "%s/infiniband", inst->dev_root) || !hs_path_exists(rdma)) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "%.80s is missing: IPUs over fabric need the host's RDMA devices", rdma);
        } else if (inst->ipuof == NULL) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "%.150s", inst->ipuof_problem);
        } else if (info->ipuof_entry < 0) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "IPU %.8s of IPU-M %.40s is not in %.50s; a container could not reach it",
                     info->pcie_id, ipum, inst->ipuof_path);
        }
    } else {
        char node[PATH_MAX + 32];
        if (!hs_pathf(node, sizeof node, "%s/ipu%" PRId64, inst->dev_root, id) || !hs_path_exists(node)) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "device node %.80s is missing; is the Graphcore IPU driver loaded?", node);
        }
    }
    return true;
}

/** Facts from `gc-inventory -2` ({"devices":[{"id":"0", "<attribute>":"<value>", ...}]}); optional. */
static void apply_inventory(ipu_instance *inst)
{
    if (access(inst->gc_inventory, X_OK) != 0) {
        host_log(inst->host, HANGAR_LOG_DEBUG, "%s is not installed; IPU facts come from gc-monitor alone", inst->gc_inventory);
        return;
    }
    hs_json *j = NULL;
    char *text = NULL;
    if (run_json_tool(inst, inst->gc_inventory, "-2", "gc-inventory -2 output", &j, &text) != HANGAR_OK) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        host_log(inst->host, HANGAR_LOG_WARNING, "ignoring gc-inventory: %s", why);
        return;
    }
    const hs_json_value *list = hs_json_get(j, hs_json_root(j), "devices");
    for (int32_t i = list != NULL && list->type == HS_JSON_ARRAY ? list->first : -1; i >= 0; i = j->values[i].next) {
        const hs_json_value *entry = &j->values[i];
        char id[32], value[160], width[32];
        member_text(j, entry, "id", id, sizeof id);
        ptrdiff_t k = hs_devices_find(&inst->devices, id);
        if (k < 0)
            continue; /* multi-IPU logical devices and IPUs gc-monitor did not list */
        hs_device *d = &inst->devices.items[k];
        member_text(j, entry, "pci id", value, sizeof value);
        if (d->numa_node < 0 && looks_like_pci_address(value))
            hs_read_pci_locality(inst->sysfs_root, value, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
        member_text(j, entry, "numa node", value, sizeof value);
        int64_t numa = -1;
        if (d->numa_node < 0 && small_decimal(value, &numa) && numa < 65536)
            d->numa_node = (int32_t)numa;
        member_text(j, entry, "firmware version", value, sizeof value);
        if (value[0] != '\0')
            snprintf(d->firmware_version, sizeof d->firmware_version, "%.63s", value);
        member_text(j, entry, "link speed", value, sizeof value);
        member_text(j, entry, "link width", width, sizeof width);
        if (value[0] != '\0' && strcasecmp(value, "N/A") != 0)
            snprintf(d->link_speed, sizeof d->link_speed, "%.24s%s%.8s", value, width[0] != '\0' ? " x" : "", width);
        member_text(j, entry, "ipu error state", value, sizeof value);
        if (!error_state_ok(value) && d->health != HANGAR_HEALTH_UNHEALTHY) {
            d->health = HANGAR_HEALTH_UNHEALTHY;
            snprintf(d->health_reason, sizeof d->health_reason, "gc-inventory reports IPU error state \"%.100s\"", value);
        }
        member_text(j, entry, "driver version", value, sizeof value);
        if (inst->driver_version[0] == '\0' && value[0] != '\0')
            snprintf(inst->driver_version, sizeof inst->driver_version, "%.63s", value);
    }
    free(j);
    free(text);
}

static void discover(ipu_instance *inst)
{
    load_ipuof(inst);
    hs_json *j = NULL;
    char *text = NULL;
    hangar_status st = run_json_tool(inst, inst->gc_monitor, "-j", "gc-monitor -j output", &j, &text);
    if (st != HANGAR_OK) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason, "%.500s%s", why,
                 st == HANGAR_E_DRIVER_UNAVAILABLE ? "; install the Graphcore tools (or set gc_monitor_path)"
                 : st == HANGAR_E_BUSY            ? "; is the V-IPU server or an IPU-Machine unreachable?"
                                                  : "");
        return;
    }
    const hs_json_value *cards = hs_json_get(j, hs_json_root(j), "cards");
    if (cards == NULL || cards->type != HS_JSON_ARRAY) {
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "gc-monitor -j output is not the JSON expected (no \"cards\" array)");
        free(j);
        free(text);
        return;
    }
    bool room = true;
    for (int32_t c = cards->first; c >= 0 && room; c = j->values[c].next) {
        const hs_json_value *card = &j->values[c];
        const hs_json_value *ipus = json_get_ci(j, card, "ipus");
        for (int32_t i = ipus != NULL && ipus->type == HS_JSON_ARRAY ? ipus->first : -1; i >= 0 && room; i = j->values[i].next)
            room = add_ipu(inst, j, card, &j->values[i]);
    }
    free(j);
    free(text);
    if (!room)
        host_log(inst->host, HANGAR_LOG_WARNING, "more than %d IPUs; the rest are ignored", HS_MAX_DEVICES);
    /* Keep ipus[] parallel to the table while sorting by ID. */
    for (size_t a = 1; a < inst->devices.count; a++)
        for (size_t b = a; b > 0 && inst->devices.items[b - 1].index > inst->devices.items[b].index; b--) {
            hs_device td = inst->devices.items[b];
            inst->devices.items[b] = inst->devices.items[b - 1];
            inst->devices.items[b - 1] = td;
            ipu_info ti = inst->ipus[b];
            inst->ipus[b] = inst->ipus[b - 1];
            inst->ipus[b - 1] = ti;
        }
    apply_inventory(inst);
    for (size_t k = 0; k < inst->devices.count; k++) {
        hs_device *d = &inst->devices.items[k];
        if (d->numa_node >= 0 && d->cpu_affinity[0] == '\0')
            node_cpulist(inst->sysfs_root, d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    }
    if (inst->devices.count == 0)
        snprintf(inst->no_device_reason, sizeof inst->no_device_reason,
                 "gc-monitor -j lists no IPUs (no partition is active here, or the IPU-Machines are unreachable)");
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

static void ipu_destroy(void *instance)
{
    ipu_instance *inst = instance;
    if (inst == NULL)
        return;
    free(inst->ipuof);
    free(inst->ipuof_text);
    free(inst);
}

static hangar_status ipu_configure(const hs_create *c, ipu_instance *inst)
{
    int64_t timeout = 0;
    hangar_status st;
    if ((st = hs_cfg_string(c, "gc_monitor_path", inst->gc_monitor, sizeof inst->gc_monitor)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "gc_inventory_path", inst->gc_inventory, sizeof inst->gc_inventory)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "ipuof_config_path", inst->ipuof_path, sizeof inst->ipuof_path)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "state_dir", inst->state_dir, sizeof inst->state_dir)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "sysfs_root", inst->sysfs_root, sizeof inst->sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
        (st = hs_cfg_int(c, "tool_timeout_ms", &timeout)) != HANGAR_OK)
        return st;
    inst->timeout_ms = (int)timeout;
    if (inst->state_dir[0] != '/')
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"state_dir\" must be an absolute path, got \"%.200s\"",
                              inst->state_dir);
    int64_t n = c->host->config_count(c->host->host_context, "docker_networks");
    for (int64_t i = 0; i < n; i++) {
        char key[48], text[256];
        snprintf(key, sizeof key, "docker_networks.%" PRId64, i);
        if ((st = hs_cfg_string(c, key, text, sizeof text)) != HANGAR_OK)
            return st;
        if (inst->network_count == IPU_MAX_NETWORKS)
            return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"docker_networks\": at most %d networks", IPU_MAX_NETWORKS);
        if (!parse_network(text, &inst->networks[inst->network_count++]))
            return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                                  "config key \"%s\": \"%.200s\" is neither a network name nor \"name=a.b.c.d/len\"", key, text);
    }
    discover(inst);
    snprintf(inst->extra_info, sizeof inst->extra_info, "{\"ipu_support\":%s,\"ipuof_config\":%s}",
             inst->devices.count > 0 ? "true" : "false", inst->ipuof != NULL ? "true" : "false");
    if (inst->devices.count == 0)
        host_log(c->host, HANGAR_LOG_INFO, "no IPUs: %s", inst->no_device_reason);
    else
        host_log(c->host, HANGAR_LOG_INFO, "%zu IPU(s)%s", inst->devices.count, inst->ipuof != NULL ? ", ipuof.conf loaded" : "");
    return HANGAR_OK;
}

static hangar_status ipu_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    ipu_instance *inst = NULL;
    hangar_status st = hs_create_begin(&c, IPU_KEY, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (st == HANGAR_OK) {
        inst->host = host;
        st = ipu_configure(&c, inst);
    }
    if (st == HANGAR_OK)
        *out_instance = inst;
    else
        ipu_destroy(inst);
    return st;
}

static hangar_status ipu_get_info(void *instance, hangar_accel_info *info)
{
    const ipu_instance *inst = instance;
    return hs_fill_info(info, IPU_KEY, inst->driver_version, NULL, inst->extra_info, inst->no_device_reason);
}

static hangar_status ipu_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx)
{
    return hs_list_devices(&((const ipu_instance *)instance)->devices, sink, ctx);
}

static hangar_status ipu_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx)
{
    return hs_list_slots(ipu_slots, IPU_SLOT_COUNT, &((const ipu_instance *)instance)->devices, sink, ctx);
}

static hangar_status ipu_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx)
{
    return hs_list_device_slots(ipu_slots, IPU_SLOT_COUNT, &((const ipu_instance *)instance)->devices, sink, ctx);
}

/* ------------------------------------------------------------------------ */
/* Allocations: the per-container ipuof.conf                                 */
/* ------------------------------------------------------------------------ */

/** A container id usable as one folder name: letters, digits, '_', '-', '.', not starting with '.'. */
static bool container_folder_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    return n > 0 && n <= 128 && id[0] != '.' &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static bool selection_has_fabric(const ipu_instance *inst, const hs_selection *sel)
{
    for (size_t k = 0; k < sel->count; k++)
        if (inst->ipus[sel->picks[k].device].fabric)
            return true;
    return false;
}

/** <state_dir>/<container id>[/ipuof.conf] into `buf`. */
static hangar_status conf_path(const ipu_instance *inst, const char *container_id, bool file, char *buf, size_t len, const char *call)
{
    if (!container_folder_ok(container_id))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: container id \"%.80s\" cannot name a folder under %s", call,
                       container_id != NULL ? container_id : "(null)", inst->state_dir);
    if (!hs_pathf(buf, len, "%s/%s%s", inst->state_dir, container_id, file ? "/ipuof.conf" : ""))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: the path under %s is too long", call, inst->state_dir);
    return HANGAR_OK;
}

/** The host's ipuof.conf with "devices" cut down to the picked IPUs (in list order); every other member as it was. */
static void filtered_ipuof(const ipu_instance *inst, const hs_selection *sel, dynbuf *out)
{
    const hs_json *j = inst->ipuof;
    const hs_json_value *root = hs_json_root(j);
    dyn_str(out, "{");
    for (int32_t i = root->first; i >= 0; i = j->values[i].next) {
        if (i != root->first)
            dyn_str(out, ",");
        dyn_json_string(out, j->values[i].key);
        dyn_str(out, ":");
        if (strcmp(j->values[i].key, "devices") != 0) {
            dyn_json_value(out, j, &j->values[i]);
            continue;
        }
        dyn_str(out, "[");
        bool first = true;
        for (size_t k = 0; k < sel->count; k++) {
            int32_t want = inst->ipus[sel->picks[k].device].ipuof_entry;
            const hs_json_value *entry = want >= 0 ? hs_json_at(j, &j->values[i], want) : NULL;
            if (entry == NULL)
                continue;
            if (!first)
                dyn_str(out, ",");
            first = false;
            dyn_json_value(out, j, entry);
        }
        dyn_str(out, "]");
    }
    dyn_str(out, "}\n");
}

/** mkdir -p with `mode` for each missing component. */
static int make_dirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (!hs_pathf(tmp, sizeof tmp, "%s", path))
        return ENAMETOOLONG;
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return errno;
        *p = saved;
        if (saved == '\0')
            return 0;
    }
}

/* Writes the container's ipuof.conf; an identical file already there is left alone (prepare is idempotent). */
static hangar_status ipu_prepare(void *instance, const hangar_accel_allocation *allocation)
{
    const ipu_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_select(allocation, &inst->devices, ipu_slots, IPU_SLOT_COUNT, &sel, "prepare");
    if (st != HANGAR_OK || sel.count == 0 || !selection_has_fabric(inst, &sel))
        return st; /* PCIe IPUs need nothing prepared */
    char dir[PATH_MAX], file[PATH_MAX], tmp[PATH_MAX + 8];
    if ((st = conf_path(inst, allocation->container_id, false, dir, sizeof dir, "prepare")) != HANGAR_OK ||
        (st = conf_path(inst, allocation->container_id, true, file, sizeof file, "prepare")) != HANGAR_OK)
        return st;
    dynbuf text = {0};
    filtered_ipuof(inst, &sel, &text);
    if (text.failed) {
        free(text.data);
        return hs_fail(HANGAR_E_INSUFFICIENT, "prepare: out of memory writing the ipuof.conf of container %s", allocation->container_id);
    }
    size_t old_len = 0;
    char *old = read_whole_file(file, IPU_TEXT_MAX, &old_len);
    bool same = old != NULL && old_len == text.len && memcmp(old, text.data, text.len) == 0;
    free(old);
    if (same) {
        free(text.data);
        return HANGAR_OK;
    }
    int e = make_dirs(dir, 0755);
    if (e != 0) {
        free(text.data);
        return hs_fail_errno(HANGAR_E_IO, e, "prepare: cannot create %s", dir);
    }
    /* Written beside and renamed over, so a container never mounts half a file. */
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t done = 0;
    while (fd >= 0 && done < text.len) {
        ssize_t n = write(fd, text.data + done, text.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    e = fd < 0 ? errno : done < text.len ? (errno != 0 ? errno : EIO) : 0;
    if (fd >= 0 && close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0 && rename(tmp, file) != 0)
        e = errno;
    free(text.data);
    if (e != 0) {
        unlink(tmp);
        rmdir(dir); /* leaves nothing behind when it was empty before */
        return hs_fail_errno(HANGAR_E_IO, e, "prepare: cannot write %s", file);
    }
    return HANGAR_OK;
}

/* Removes the container's ipuof.conf and its folder; what is already gone is fine. */
static hangar_status ipu_release(void *instance, const hangar_accel_allocation *allocation)
{
    const ipu_instance *inst = instance;
    if (allocation == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "release: allocation is NULL");
    char dir[PATH_MAX], file[PATH_MAX], tmp[PATH_MAX + 8];
    if (conf_path(inst, allocation->container_id, false, dir, sizeof dir, "release") != HANGAR_OK ||
        conf_path(inst, allocation->container_id, true, file, sizeof file, "release") != HANGAR_OK)
        return HANGAR_OK; /* such a container was never prepared */
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    unlink(tmp);
    if (unlink(file) != 0 && errno != ENOENT)
        return hs_fail_errno(HANGAR_E_IO, errno, "release: cannot remove %s", file);
    if (rmdir(dir) != 0 && errno != ENOENT)
        host_log(inst->host, HANGAR_LOG_WARNING, "release: %s is not empty; left in place", dir);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Container edits                                                           */
/* ------------------------------------------------------------------------ */

static bool network_wanted(const ipu_instance *inst, const hs_selection *sel, const ipu_network *net)
{
    if (!net->has_subnet)
        return true;
    for (size_t k = 0; k < sel->count; k++) {
        const ipu_info *info = &inst->ipus[sel->picks[k].device];
        if (info->fabric && info->ipum_addr != 0 && (ntohl(info->ipum_addr) & net->mask) == net->net)
            return true;
    }
    return false;
}

static hangar_status ipu_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *edits)
{
    const ipu_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(a, edits);
    if (st != HANGAR_OK || (st = hs_select(a, &inst->devices, ipu_slots, IPU_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK ||
        sel.count == 0)
        return st;
    bool fabric = selection_has_fabric(inst, &sel);
    char conf[PATH_MAX];
    if (fabric && (st = conf_path(inst, a->container_id, true, conf, sizeof conf, "container_edits")) != HANGAR_OK)
        return st;
    hs_strbuf ids;
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &ids))
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the list of %zu IPUs does not fit", sel.count);

    /* PCIe IPUs: their nodes, renumbered in list order. */
    size_t local = 0;
    for (size_t k = 0; k < sel.count; k++) {
        const hs_device *d = &inst->devices.items[sel.picks[k].device];
        if (inst->ipus[sel.picks[k].device].fabric)
            continue;
        char host_path[PATH_MAX + 32], container_path[48];
        hs_pathf(host_path, sizeof host_path, "%s/ipu%" PRId64, inst->dev_root, d->index);
        snprintf(container_path, sizeof container_path, "/dev/ipu%zu", local++);
        HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    }
    if (fabric) {
        char rdma[PATH_MAX + 16];
        hs_pathf(rdma, sizeof rdma, "%s/infiniband", inst->dev_root);
        HS_EDIT(edits, add_device_node, rdma, "/dev/infiniband", "rwm");
        HS_EDIT(edits, add_mount, conf, IPU_CONTAINER_CONF, 1);
        HS_EDIT(edits, add_env, "IPUOF_CONFIG_PATH", IPU_CONTAINER_CONF);
        /* As Backend.AI's plugin sets it for IPU-over-fabric containers (Docker disables IPv6 in containers by default). */
        HS_EDIT(edits, add_sysctl, "net.ipv6.conf.all.disable_ipv6", "0");
        for (size_t n = 0; n < inst->network_count; n++)
            if (network_wanted(inst, &sel, &inst->networks[n]))
                HS_EDIT(edits, add_network, inst->networks[n].name);
    }
    /* The IPU runtime pins host buffers and shares them between processes. */
    HS_EDIT(edits, add_capability, "IPC_LOCK");
    HS_EDIT_HOST_IPC(edits);
    HS_EDIT(edits, add_ulimit, "memlock", -1, -1);
    HS_EDIT(edits, add_resource_data, "IPU_GLOBAL_DEVICE_IDS", ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measures                                                                  */
/* ------------------------------------------------------------------------ */

/** The first of `keys` that the IPU entry has, as a number with its unit text; false when none is a number. */
static bool sensor(const hs_json *j, const hs_json_value *ipu, const char *const *keys, double *value, char *unit, size_t unit_len)
{
    for (; *keys != NULL; keys++) {
        char text[64];
        const char *u = NULL;
        member_text(j, ipu, *keys, text, sizeof text);
        if (leading_number(text, value, &u)) {
            snprintf(unit, unit_len, "%s", u);
            return true;
        }
    }
    return false;
}

/** Emits the measures gc-monitor has for IPU entry `ipu` (device `d`). */
static hangar_status measure_ipu(const hs_json *j, const hs_json_value *ipu, const hs_device *d, const char *container_id,
                                 hangar_accel_measure_sink sink, void *ctx)
{
    static const char *const temp_keys[] = {"IPU temp", "IPU temperature", NULL};
    static const char *const power_keys[] = {"IPU power", NULL};
    static const char *const util_keys[] = {"IPU utilisation", "IPU utilization", NULL};
    static const char *const clock_keys[] = {"IPU clock", "Clock", NULL};
    double v = 0;
    char unit[32];
    hangar_status st = HANGAR_OK;
    if (sensor(j, ipu, temp_keys, &v, unit, sizeof unit))
        st = hs_measure(sink, ctx, "ipu_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, d->id, container_id, v, 0);
    if (st == HANGAR_OK && sensor(j, ipu, power_keys, &v, unit, sizeof unit))
        st = hs_measure(sink, ctx, "ipu_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, d->id, container_id, v, 0);
    if (st == HANGAR_OK && sensor(j, ipu, util_keys, &v, unit, sizeof unit))
        st = hs_measure(sink, ctx, "ipu_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, d->id, container_id,
                        v < 0 ? 0 : v > 100 ? 100 : v, 100);
    if (st == HANGAR_OK && sensor(j, ipu, clock_keys, &v, unit, sizeof unit)) {
        double scale = strncasecmp(unit, "GHz", 3) == 0 ? 1e9 : strncasecmp(unit, "kHz", 3) == 0 ? 1e3 : strncasecmp(unit, "Hz", 2) == 0 ? 1 : 1e6;
        st = hs_measure(sink, ctx, "ipu_clock", HANGAR_UNIT_HERTZ, HANGAR_MEASURE_GAUGE, d->id, container_id, v * scale, 0);
    }
    return st;
}

/**
 * Runs gc-monitor once and measures every listed IPU (allocations NULL) or the IPUs of each
 * allocation for its container. A failing tool gives no measures, not an error: the agent keeps
 * polling and the log says why.
 */
static hangar_status gather(ipu_instance *inst, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                            hangar_accel_measure_sink sink, void *ctx)
{
    if (inst->devices.count == 0)
        return HANGAR_OK;
    hs_json *j = NULL;
    char *text = NULL;
    if (run_json_tool(inst, inst->gc_monitor, "-j", "gc-monitor -j output", &j, &text) != HANGAR_OK) {
        char why[HS_ERROR_MAX];
        hs_last_error(NULL, why, sizeof why);
        host_log(inst->host, HANGAR_LOG_WARNING, "no IPU measures: %s", why);
        return HANGAR_OK;
    }
    hangar_status st = HANGAR_OK;
    const hs_json_value *cards = hs_json_get(j, hs_json_root(j), "cards");
    for (int32_t c = cards != NULL && cards->type == HS_JSON_ARRAY ? cards->first : -1; c >= 0 && st == HANGAR_OK; c = j->values[c].next) {
        const hs_json_value *ipus = json_get_ci(j, &j->values[c], "ipus");
        for (int32_t i = ipus != NULL && ipus->type == HS_JSON_ARRAY ? ipus->first : -1; i >= 0 && st == HANGAR_OK; i = j->values[i].next) {
            char id[32];
            member_text(j, &j->values[i], "ID", id, sizeof id);
            ptrdiff_t k = hs_devices_find(&inst->devices, id);
            if (k < 0)
                continue;
            const hs_device *d = &inst->devices.items[k];
            if (allocations == NULL) {
                st = measure_ipu(j, &j->values[i], d, NULL, sink, ctx);
                continue;
            }
            for (size_t a = 0; a < count && st == HANGAR_OK; a++) {
                const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
                if (hs_check_allocation_shape(alloc, "gather_container_measures") != HANGAR_OK)
                    continue;
                for (size_t e = 0; e < alloc->entry_count && st == HANGAR_OK; e++) {
                    const hangar_accel_alloc_entry *entry = hs_entry(alloc, e);
                    if (entry->slot_name != NULL && strcmp(entry->slot_name, IPU_SLOT) == 0 && entry->device_id != NULL &&
                        strcmp(entry->device_id, d->id) == 0)
                        st = measure_ipu(j, &j->values[i], d, alloc->container_id, sink, ctx);
                }
            }
        }
    }
    free(j);
    free(text);
    return st;
}

static hangar_status ipu_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *ctx)
{
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    return gather(instance, NULL, 0, 0, sink, ctx);
}

static hangar_status ipu_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
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

static const char ipu_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"gc_monitor_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/usr/bin/gc-monitor\","
    "\"description\":\"Path of Graphcore's gc-monitor; the plugin runs `gc-monitor -j` to list the IPUs and read their sensors.\"},"
    "\"gc_inventory_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/usr/bin/gc-inventory\","
    "\"description\":\"Path of Graphcore's gc-inventory, run as `gc-inventory -2` for NUMA node, firmware, link and driver facts; "
    "skipped when it is not installed.\"},"
    "\"tool_timeout_ms\":{\"type\":\"integer\",\"minimum\":100,\"maximum\":600000,\"default\":5000,"
    "\"description\":\"Deadline for each run of gc-monitor or gc-inventory; a tool still running is killed and reported.\"},"
    "\"ipuof_config_path\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/etc/ipuof.conf.d/ipuof.conf\","
    "\"description\":\"The host's IPU-over-fabric configuration (JSON with a devices array of {ip, device_id, ...}); each container "
    "gets a copy holding only its IPUs.\"},"
    "\"docker_networks\":{\"type\":\"array\",\"maxItems\":32,\"default\":[],"
    "\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
    "\"description\":\"Engine networks (RDMA) for containers with IPUs over fabric: \\\"name\\\" attaches always, "
    "\\\"name=10.1.5.0/24\\\" only when one of the container's IPU-Machines is in that IPv4 subnet.\"},"
    "\"state_dir\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/var/lib/hangar/ipu\","
    "\"description\":\"Absolute folder where prepare() writes <container id>/ipuof.conf for each container; release() removes it.\"},"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/sys\","
    "\"description\":\"Where sysfs is mounted (PCI locality of PCIe IPUs, NUMA node CPU lists); a fake tree in tests.\"},"
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,\"default\":\"/dev\","
    "\"description\":\"Where the host's device nodes are (ipu<N>, infiniband/).\"}}}";

static const hangar_accelerator_functions ipu_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = ipu_create,
    .destroy = ipu_destroy,
    .last_error = hs_last_error,
    .get_info = ipu_get_info,
    .list_devices = ipu_list_devices,
    .list_slots = ipu_list_slots,
    .list_device_slots = ipu_list_device_slots,
    .container_edits = ipu_container_edits,
    .release = ipu_release,
    .gather_node_measures = ipu_gather_node_measures,
    .gather_container_measures = ipu_gather_container_measures,
    .prepare = ipu_prepare,
};

static const char *const ipu_slot_names[] = {IPU_SLOT, NULL};

static const hangar_plugin_descriptor ipu_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS | HANGAR_ACCEL_CAP_NEEDS_RELEASE |
                    HANGAR_ACCEL_CAP_NEEDS_PREPARE,
    .name = IPU_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Graphcore IPUs through gc-monitor: whole-IPU ipu.device slots, a per-container ipuof.conf for IPUs over fabric "
                   "or device nodes for PCIe IPUs, temperature, power, utilisation and clock",
    .license = "Apache-2.0",
    .config_schema = ipu_schema,
    .static_slot_names = ipu_slot_names,
    .functions = &ipu_functions,
    .homepage = "https://docs.graphcore.ai/projects/command-line-tools/",
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(ipu_descriptor, 2)
