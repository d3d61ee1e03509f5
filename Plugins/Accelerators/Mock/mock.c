/*
 * Hangar mock accelerator plugin.
 *
 * A configuration-driven accelerator with no hardware behind it, for
 * development, CI and every test that needs accelerators. It is Hangar's
 * counterpart of Backend.AI's mock accelerator: it can pose under any device
 * key (e.g. "cuda"), offers either one discrete slot ("<key>.device") or one
 * fractional slot ("<key>.shares"), reports made-up but deterministic
 * utilisation, and gives containers only environment variables and
 * resource-file lines (a mock has no device nodes).
 *
 * Configuration (kConfigSchema below is the authoritative list; from ABI 1.2
 * the host fills in its defaults and checks types, ranges and enums before
 * create(), so this file checks only what a schema cannot say):
 *   device_key             string  "mock"        slot prefix and device key
 *   allocation_mode        string  "discrete"    or "fractional"
 *   quantum                decimal "0.01"        fractional step, 0 < q <= 1
 *   unit_memory            bytes   "2G"          memory per whole share
 *   unit_processing_units  integer 8             processing units per whole share
 *   model                  string  "Mock Accelerator"
 *   devices                array of tables (default: two devices)
 *     id, model, memory ("16G"), processing_units (64), numa_node (0),
 *     uuid, health ("healthy" | "degraded" | "unhealthy"), health_reason,
 *     and the ABI 1.2 facts firmware_version, board_id, link_speed,
 *     cpu_affinity (a cpulist such as "0-15,32-47") and parent (the id of
 *     the device this one is a partition of; a whole, visible device)
 *   device_mask            array of device ids to hide (unknown ids are logged)
 *   allowed_syscalls       array of syscall names a container with one of these
 *                          devices may call beyond the sandbox policy (as a driver
 *                          needing e.g. perf_event_open would ask)
 *
 * Slots: "<key>.device" (discrete, one unit per device) or "<key>.shares"
 * (fractional; a device gives min(memory / unit_memory, processing_units /
 * unit_processing_units) shares, rounded down to the quantum). Masked devices
 * are invisible; unhealthy ones are listed but provide no capacity, and an
 * allocation on one fails with HANGAR_E_DEVICE_LOST.
 *
 * Container edits for an allocation (KEY = device key upper-cased, '-' -> '_';
 * devices in configuration order whatever the entry order):
 *   env HANGAR_MOCK_<KEY>_DEVICES=<id>,<id>
 *   env HANGAR_MOCK_<KEY>_DEVICE_COUNT=<n>
 *   env HANGAR_MOCK_<KEY>_SHARES=<id>:0.5,<id>:1.25      (fractional only)
 *   env TF_MIN_GPU_MULTIPROCESSOR_COUNT=4                (device key "cuda" only)
 *   resource data <KEY>_GLOBAL_DEVICE_IDS=0:<id>,1:<id>
 *   resource data MOCK_PREPARED=1                        (only when the container is prepared)
 * An allocation with no entries gets no edits. There are no device nodes.
 *
 * prepare() checks an allocation as container_edits does and remembers its
 * container id as prepared; release() forgets it. Both are idempotent, and
 * the only trace of being prepared is the MOCK_PREPARED=1 line, so tests can
 * see that the agent called prepare() before container_edits().
 *
 * Amounts are fixed point (HANGAR_AMOUNT_SCALE); this file never uses binary
 * floating point for amounts, only for the measure values the ABI types as
 * double.
 *
 * Threading: thread_safety is 0, so the host serialises calls on one
 * instance. Instances share nothing: there is no mutable global state.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup, readdir, and the support header's open/read/pipe2 */
#endif

#include <hangar/support.h>

/*
 * The descriptor name. A process may hold one plugin per name, so to pose as two
 * vendors at once (say "cuda" and "rocm" in one agent) build a second copy with
 * -DHANGAR_MOCK_NAME='"mock-rocm"' -o libhangar-accel-mock-rocm.so and configure
 * each under its own [plugins.config.<name>].
 */
#ifndef HANGAR_MOCK_NAME
#define HANGAR_MOCK_NAME "mock"
#endif

static const int64_t kMaxUnitMemory = 1LL << 60; /* keeps the share division overflow-free */

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct mock_instance {
    const hangar_host_services *host;
    char key[64];
    char slot_name[80];
    char display_name[80];
    char env_devices[96];
    char env_device_count[96];
    char env_shares[96];
    char res_global_ids[96];
    char measure_util[72];
    char measure_mem[72];
    char extra_info[96];
    const char *no_device_reason;
    bool fractional;
    /** allowed_syscalls, handed to every container that got one of our devices. */
    char allowed_syscalls[8][64];
    size_t allowed_syscall_count;
    int64_t quantum; /* fixed point; used in fractional mode */
    int64_t unit_memory;
    int64_t unit_processing_units;
    /** The instance's one slot; its per-device capacity is read from `capacity`. */
    hs_slot_spec slot;
    /** The visible (unmasked) devices in config order, as list_devices reports them. */
    hs_device_table devices;
    /**
     * The same devices with memory_bytes holding each one's capacity of the
     * slot, for the listings and hs_select: an hs_slot_spec states a
     * per-device capacity only as a constant or as the device's memory
     * (HS_PER_DEVICE_MEMORY), and a fractional device's shares are neither.
     */
    hs_device_table capacity;
    /** Container ids prepare() has seen and release() has not. */
    char **prepared;
    size_t prepared_count;
    size_t prepared_cap;
    uint64_t rng;
} mock_instance;

static void mock_destroy(void *instance)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return;
    for (size_t i = 0; i < inst->prepared_count; i++)
        free(inst->prepared[i]);
    free(inst->prepared);
    free(inst);
}

static void mock_log(const hangar_host_services *host, int32_t level, const char *message)
{
    if (HS_HAS_FIELD(hangar_host_services, log, host->struct_size) && host->log != NULL)
        host->log(host->host_context, level, message);
}

/* ------------------------------------------------------------------------ */
/* Fixed-point helpers (no floating point for amounts)                       */
/* ------------------------------------------------------------------------ */

/**
 * Parses a non-negative decimal ("0.01", "1", "0.250") into fixed point.
 * Returns 0 on success, -1 if the text is not such a decimal, -2 if it is
 * too large or has non-zero digits beyond the sixth decimal place.
 */
static int mock_parse_fixed(const char *s, int64_t *out)
{
    const int64_t whole_max = INT64_MAX / HANGAR_AMOUNT_SCALE - 1;
    int64_t whole = 0, frac = 0;
    int digits = 0, places = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (whole > whole_max)
            return -2;
        whole = whole * 10 + (*p - '0');
        digits++;
        p++;
    }
    if (digits == 0)
        return -1;
    if (*p == '.') {
        p++;
        int fdigits = 0;
        while (*p >= '0' && *p <= '9') {
            if (places < 6) {
                frac = frac * 10 + (*p - '0');
                places++;
            } else if (*p != '0') {
                return -2;
            }
            fdigits++;
            p++;
        }
        if (fdigits == 0)
            return -1;
    }
    if (*p != '\0')
        return -1;
    while (places < 6) {
        frac *= 10;
        places++;
    }
    *out = whole * HANGAR_AMOUNT_SCALE + frac;
    return 0;
}

/** floor(a * SCALE / b) for a >= 0, 0 < b <= 2^60, saturating at `cap`. */
static int64_t mock_ratio_fixed(int64_t a, int64_t b, int64_t cap)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    uint64_t q = ua / ub, r = ua % ub;
    if (q >= (uint64_t)cap / (uint64_t)HANGAR_AMOUNT_SCALE + 1)
        return cap;
    uint64_t result = q;
    /* Long division, one decimal digit at a time: r < b <= 2^60, so r * 10 fits. */
    for (int i = 0; i < 6; i++) {
        r *= 10;
        result = result * 10 + r / ub;
        r %= ub;
    }
    return result > (uint64_t)cap ? cap : (int64_t)result;
}

/** floor(value * permille / 1000) without overflow, for value >= 0 and 0 <= permille <= 1000. */
static int64_t mock_scale_permille(int64_t value, int64_t permille)
{
    return (value / 1000) * permille + (value % 1000) * permille / 1000;
}

/* ------------------------------------------------------------------------ */
/* Configuration: what the schema cannot check                               */
/* ------------------------------------------------------------------------ */

static const char *check_device_key(const char *s)
{
    if (!(s[0] >= 'a' && s[0] <= 'z'))
        return "must start with a lowercase letter, then lowercase letters, digits and '-' (e.g. \"cuda\", \"rebellions-atom\")";
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return "use lowercase letters, digits and '-' (e.g. \"cuda\", \"rebellions-atom\")";
    if (strcmp(s, "cpu") == 0 || strcmp(s, "mem") == 0)
        return "\"cpu\" and \"mem\" are the agent's intrinsic slot keys";
    return NULL;
}

static const char *check_device_id(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
              *p == '/'))
            return "use letters, digits, '-', '_', '.' or '/' (ids appear in comma- and colon-separated lists)";
    return NULL;
}

/** A Linux cpulist as sysfs local_cpulist writes it ("0-15,32-47"): the host refuses a device whose cpu_affinity is not one. */
/** Reads a string key; refuses control characters and, for a non-empty value, what `check` refuses. */
static hangar_status mock_cfg_text(const hs_create *c, const char *key, char *buf, size_t len, const char *(*check)(const char *))
{
    hangar_status st = hs_cfg_string(c, key, buf, len);
    if (st != HANGAR_OK)
        return st;
    const char *problem = NULL;
    for (const unsigned char *p = (const unsigned char *)buf; *p != '\0' && problem == NULL; p++)
        if (*p < 0x20 || *p == 0x7f)
            problem = "control characters are not allowed";
    if (problem == NULL && buf[0] != '\0' && check != NULL)
        problem = check(buf);
    if (problem != NULL)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\": \"%.80s\" is not valid: %s", key, buf, problem);
    return HANGAR_OK;
}

/** Reads a byte amount (an integer, or text such as "16G") within [min, max]: the schema types it, but cannot range-check the text form. */
static hangar_status mock_cfg_bytes(const hs_create *c, const char *key, int64_t min, int64_t max, int64_t *out)
{
    if (c->host->config_int(c->host->host_context, key, out) != HANGAR_OK)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\": expected bytes, an integer or text such as \"16G\" (K, M, G, T suffixes)",
                              key);
    if (*out < min || *out > max)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\": must be between %" PRId64 " and %" PRId64 " bytes, got %" PRId64, key,
                              min, max, *out);
    return HANGAR_OK;
}

/** quantum: a decimal string or a number, greater than 0 and at most 1, in whole millionths. */
static hangar_status mock_read_quantum(const hs_create *c, int64_t *out)
{
    char text[64];
    hangar_status st = hs_cfg_string(c, "quantum", text, sizeof text);
    if (st != HANGAR_OK)
        return st;
    int64_t q = -1;
    double d = 0;
    /* A number may be rendered as "1e-05": take it if it is a whole number of millionths. */
    if (mock_parse_fixed(text, &q) != 0 && c->host->config_double(c->host->host_context, "quantum", &d) == HANGAR_OK && d > 0 && d <= 1) {
        double scaled = d * (double)HANGAR_AMOUNT_SCALE;
        int64_t rounded = (int64_t)(scaled + 0.5);
        if (scaled - (double)rounded < 1e-3 && scaled - (double)rounded > -1e-3)
            q = rounded;
    }
    if (q <= 0 || q > HANGAR_AMOUNT_SCALE)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                              "config key \"quantum\": expected a decimal greater than 0 and at most 1 with at most 6 decimal places, "
                              "such as \"0.01\"; got %s",
                              text);
    *out = q;
    return HANGAR_OK;
}

/** "devices.<i>.<name>" in a 64-byte buffer. */
static const char *mock_key(char buf[static 64], size_t i, const char *name)
{
    snprintf(buf, 64, "devices.%zu.%s", i, name);
    return buf;
}

/** Reads devices.<i> (every key is present: the schema gives each a default). */
static hangar_status mock_read_device(const hs_create *c, const char *default_model, size_t i, hs_device *d)
{
    char key[64], health[16];
    int64_t memory = 0, units = 0, numa = 0;
    hangar_status st;
    if ((st = mock_cfg_text(c, mock_key(key, i, "id"), d->id, sizeof d->id, check_device_id)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "model"), d->model, sizeof d->model, NULL)) != HANGAR_OK ||
        (st = mock_cfg_bytes(c, mock_key(key, i, "memory"), 0, INT64_MAX, &memory)) != HANGAR_OK ||
        (st = hs_cfg_int(c, mock_key(key, i, "processing_units"), &units)) != HANGAR_OK ||
        (st = hs_cfg_int(c, mock_key(key, i, "numa_node"), &numa)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "uuid"), d->uuid, sizeof d->uuid, NULL)) != HANGAR_OK ||
        (st = hs_cfg_string(c, mock_key(key, i, "health"), health, sizeof health)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "health_reason"), d->health_reason, sizeof d->health_reason, NULL)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "firmware_version"), d->firmware_version, sizeof d->firmware_version, NULL)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "board_id"), d->board_id, sizeof d->board_id, NULL)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "link_speed"), d->link_speed, sizeof d->link_speed, NULL)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "cpu_affinity"), d->cpu_affinity, sizeof d->cpu_affinity, hs_cpulist_problem)) != HANGAR_OK ||
        (st = mock_cfg_text(c, mock_key(key, i, "parent"), d->parent_id, sizeof d->parent_id, check_device_id)) != HANGAR_OK)
        return st;
    if (d->id[0] == '\0')
        snprintf(d->id, sizeof d->id, "%zu", i);
    if (d->model[0] == '\0')
        snprintf(d->model, sizeof d->model, "%s", default_model);
    snprintf(d->hw_location, sizeof d->hw_location, "0001:%02zx:00.0", i);
    d->index = (int64_t)i;
    d->memory_bytes = (uint64_t)memory;
    d->processing_units = (uint32_t)units;
    d->numa_node = (int32_t)numa;
    d->health = strcmp(health, "unhealthy") == 0  ? HANGAR_HEALTH_UNHEALTHY
                : strcmp(health, "degraded") == 0 ? HANGAR_HEALTH_DEGRADED
                                                  : HANGAR_HEALTH_HEALTHY;
    return HANGAR_OK;
}

/** device_mask: marks the configured devices it names; unknown ids are logged and ignored. */
static hangar_status mock_read_mask(const hs_create *c, const hs_device_table *t, bool *hidden)
{
    int64_t count = c->host->config_count(c->host->host_context, "device_mask");
    for (int64_t m = 0; m < count; m++) {
        char key[48], id[64], line[200];
        snprintf(key, sizeof key, "device_mask.%" PRId64, m);
        hangar_status st = hs_cfg_string(c, key, id, sizeof id);
        if (st != HANGAR_OK)
            return st;
        ptrdiff_t found = hs_devices_find(t, id);
        if (found >= 0) {
            hidden[found] = true;
        } else {
            snprintf(line, sizeof line, "mock: %s: no device has id \"%.64s\"; ignoring it", key, id);
            mock_log(c->host, HANGAR_LOG_WARNING, line);
        }
    }
    return HANGAR_OK;
}

/** A partition's parent must be another configured device that is whole and, while the partition is visible, not masked. */
static hangar_status mock_check_parents(const hs_create *c, const hs_device_table *t, const bool *hidden)
{
    for (size_t i = 0; i < t->count; i++) {
        const char *parent = t->items[i].parent_id;
        ptrdiff_t p = hs_devices_find(t, parent);
        const char *problem = parent[0] == '\0'                    ? NULL
                              : p < 0                              ? "no device has this id"
                              : (size_t)p == i                     ? "a device cannot be a partition of itself"
                              : t->items[p].parent_id[0] != '\0'   ? "that device is itself a partition; name the whole device"
                              : hidden[p] && !hidden[i]            ? "that device is hidden by device_mask; hide its partitions too"
                                                                   : NULL;
        if (problem != NULL)
            return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"devices.%zu.parent\": \"%s\": %s", i, parent, problem);
    }
    return HANGAR_OK;
}

/** This device's capacity of the instance's slot, while healthy (fixed point). */
static int64_t mock_device_capacity(const mock_instance *inst, const hs_device *d)
{
    if (!inst->fractional)
        return HANGAR_AMOUNT_SCALE;
    /* Backend.AI's mock: min(mem / unit_mem, pu / unit_pu), rounded down to the quantum. */
    int64_t by_pu = mock_ratio_fixed((int64_t)d->processing_units, inst->unit_processing_units, INT64_MAX / 2);
    int64_t by_mem = mock_ratio_fixed((int64_t)d->memory_bytes, inst->unit_memory, by_pu);
    int64_t shares = by_mem < by_pu ? by_mem : by_pu;
    return shares - shares % inst->quantum;
}

/** Names derived from the device key: slot, display name, env and resource keys, measure keys. */
static void mock_derive_names(mock_instance *inst)
{
    char upper[64], display_key[64];
    size_t k = 0;
    for (; inst->key[k]; k++) {
        char ch = inst->key[k] >= 'a' && inst->key[k] <= 'z' ? (char)(inst->key[k] - 'a' + 'A') : inst->key[k];
        display_key[k] = ch;
        upper[k] = ch == '-' ? '_' : ch;
    }
    upper[k] = display_key[k] = '\0';
    const char *unit = inst->fractional ? "shares" : "device";
    snprintf(inst->slot_name, sizeof inst->slot_name, "%s.%s", inst->key, unit);
    snprintf(inst->display_name, sizeof inst->display_name, "%s %s", display_key, unit);
    snprintf(inst->env_devices, sizeof inst->env_devices, "HANGAR_MOCK_%s_DEVICES", upper);
    snprintf(inst->env_device_count, sizeof inst->env_device_count, "HANGAR_MOCK_%s_DEVICE_COUNT", upper);
    snprintf(inst->env_shares, sizeof inst->env_shares, "HANGAR_MOCK_%s_SHARES", upper);
    snprintf(inst->res_global_ids, sizeof inst->res_global_ids, "%s_GLOBAL_DEVICE_IDS", upper);
    snprintf(inst->measure_util, sizeof inst->measure_util, "%s_util", inst->key);
    snprintf(inst->measure_mem, sizeof inst->measure_mem, "%s_mem", inst->key);
    snprintf(inst->extra_info, sizeof inst->extra_info, "{\"mock\":true,\"allocation_mode\":\"%s\"}", inst->fractional ? "fractional" : "discrete");
    inst->slot = (hs_slot_spec){.name = inst->slot_name,
                                .type = HANGAR_SLOT_COUNT,
                                .mode = inst->fractional ? HANGAR_ALLOC_FRACTIONAL : HANGAR_ALLOC_DISCRETE,
                                .quantum = inst->fractional ? inst->quantum : 0,
                                .per_device = HS_PER_DEVICE_MEMORY,
                                .exclusive = 1,
                                .display_name = inst->display_name,
                                .display_unit = inst->fractional ? "share" : "device"};
}

static hangar_status mock_configure(const hs_create *c, mock_instance *inst)
{
    char mode[16], model[128];
    hangar_status st;
    if ((st = mock_cfg_text(c, "device_key", inst->key, sizeof inst->key, check_device_key)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "allocation_mode", mode, sizeof mode)) != HANGAR_OK || (st = mock_read_quantum(c, &inst->quantum)) != HANGAR_OK ||
        (st = mock_cfg_bytes(c, "unit_memory", 1, kMaxUnitMemory, &inst->unit_memory)) != HANGAR_OK ||
        (st = hs_cfg_int(c, "unit_processing_units", &inst->unit_processing_units)) != HANGAR_OK ||
        (st = mock_cfg_text(c, "model", model, sizeof model, NULL)) != HANGAR_OK)
        return st;
    inst->fractional = strcmp(mode, "fractional") == 0;
    int64_t syscalls = c->host->config_count(c->host->host_context, "allowed_syscalls");
    if (syscalls > 8)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"allowed_syscalls\": at most 8 names are supported");
    for (int64_t k = 0; k < syscalls; k++) {
        char key[48];
        snprintf(key, sizeof key, "allowed_syscalls.%" PRId64, k);
        if ((st = hs_cfg_string(c, key, inst->allowed_syscalls[k], sizeof inst->allowed_syscalls[k])) != HANGAR_OK)
            return st;
        inst->allowed_syscall_count++;
    }

    hs_device_table *t = &inst->devices;
    int64_t configured = c->host->config_count(c->host->host_context, "devices");
    if (configured < 0)
        return hs_cfg_problem(c, "devices", HANGAR_E_INVALID_ARGUMENT, "an array of tables");
    for (size_t i = 0; i < (size_t)configured; i++) {
        hs_device *d = hs_devices_add(t);
        if (d == NULL)
            return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"devices\": at most %d devices are supported", HS_MAX_DEVICES);
        if ((st = mock_read_device(c, model, i, d)) != HANGAR_OK)
            return st;
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->items[j].id, d->id) == 0)
                return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                                      "config key \"devices.%zu.id\": \"%s\" is already used by devices.%zu; device ids must be unique", i, d->id, j);
    }
    bool hidden[HS_MAX_DEVICES] = {false};
    if ((st = mock_read_mask(c, t, hidden)) != HANGAR_OK || (st = mock_check_parents(c, t, hidden)) != HANGAR_OK)
        return st;

    /* Keep only the visible devices, in config order, and note each one's capacity. */
    size_t visible = 0;
    for (size_t i = 0; i < t->count; i++)
        if (!hidden[i])
            t->items[visible++] = t->items[i];
    t->count = visible;
    if (visible == 0)
        inst->no_device_reason = configured == 0 ? "no devices configured" : "all devices masked";
    mock_derive_names(inst);
    inst->capacity = *t;
    for (size_t i = 0; i < visible; i++) {
        int64_t capacity = mock_device_capacity(inst, &t->items[i]);
        inst->capacity.items[i].memory_bytes = (uint64_t)capacity;
        if (capacity == 0 && t->items[i].health != HANGAR_HEALTH_UNHEALTHY) {
            char line[256];
            snprintf(line, sizeof line, "mock: device \"%.64s\" provides no %s (memory or processing units below one unit)", t->items[i].id,
                     inst->slot_name);
            mock_log(c->host, HANGAR_LOG_WARNING, line);
        }
    }

    /* Per-instance PRNG seed: FNV-1a of the device key, so runs are reproducible. */
    inst->rng = 1469598103934665603ull;
    for (size_t k = 0; inst->key[k]; k++)
        inst->rng = (inst->rng ^ (unsigned char)inst->key[k]) * 1099511628211ull;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Function table                                                            */
/* ------------------------------------------------------------------------ */

static hangar_status mock_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, HANGAR_MOCK_NAME, host, config_json, out_instance, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    mock_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    inst->host = host;
    if ((st = mock_configure(&c, inst)) != HANGAR_OK) {
        mock_destroy(inst);
        return st;
    }
    *out_instance = inst;
    return HANGAR_OK;
}

static hangar_status mock_get_info(void *instance, hangar_accel_info *info)
{
    const mock_instance *inst = instance;
    return hs_fill_info(info, inst->key, "mock-1.0", NULL, inst->extra_info, inst->no_device_reason);
}

static hangar_status mock_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    return hs_list_devices(&((const mock_instance *)instance)->devices, sink, sink_context);
}

static hangar_status mock_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    const mock_instance *inst = instance;
    return hs_list_slots(&inst->slot, 1, &inst->capacity, sink, sink_context);
}

static hangar_status mock_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    const mock_instance *inst = instance;
    return hs_list_device_slots(&inst->slot, 1, &inst->capacity, sink, sink_context);
}

/** Index of `container_id` among the prepared containers, or -1. */
static ptrdiff_t mock_prepared_find(const mock_instance *inst, const char *container_id)
{
    for (size_t i = 0; container_id != NULL && i < inst->prepared_count; i++)
        if (strcmp(inst->prepared[i], container_id) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static hangar_status mock_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    const mock_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(allocation, edits);
    if (st != HANGAR_OK || (st = hs_select(allocation, &inst->capacity, &inst->slot, 1, &sel, "container_edits")) != HANGAR_OK)
        return st;
    if (sel.count == 0)
        return HANGAR_OK; /* nothing of this plugin is allocated: nothing to add */

    /* Devices in config order (hs_select sorts the picks), independent of entry order. */
    hs_strbuf ids, shares = {.len = 0}, global = {.len = 0};
    hs_selection_list(&sel, &inst->devices, HS_LIST_IDS, &ids);
    for (size_t k = 0; k < sel.count; k++) {
        const char *id = inst->devices.items[sel.picks[k].device].id;
        char amount[32];
        hs_format_amount(amount, sizeof amount, sel.picks[k].amount, HANGAR_SLOT_COUNT);
        hs_strbuf_addf(&shares, "%s%s:%s", k > 0 ? "," : "", id, amount);
        hs_strbuf_addf(&global, "%s%zu:%s", k > 0 ? "," : "", k, id);
    }
    if (ids.overflow || shares.overflow || global.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the lists of %zu devices do not fit in %zu characters", sel.count,
                       sizeof ids.text - 1);
    char count[24];
    snprintf(count, sizeof count, "%zu", sel.count);

    HS_EDIT(edits, add_env, inst->env_devices, ids.text);
    HS_EDIT(edits, add_env, inst->env_device_count, count);
    if (inst->fractional)
        HS_EDIT(edits, add_env, inst->env_shares, shares.text);
    if (strcmp(inst->key, "cuda") == 0)
        HS_EDIT(edits, add_env, "TF_MIN_GPU_MULTIPROCESSOR_COUNT", "4");
    HS_EDIT(edits, add_resource_data, inst->res_global_ids, global.text);
    if (mock_prepared_find(inst, allocation->container_id) >= 0)
        HS_EDIT(edits, add_resource_data, "MOCK_PREPARED", "1");
    for (size_t k = 0; k < inst->allowed_syscall_count; k++)
        HS_EDIT(edits, add_allowed_syscall, inst->allowed_syscalls[k]);
    return HANGAR_OK;
}

/* Checks like container_edits, then remembers the container; preparing it again changes nothing. */
static hangar_status mock_prepare(void *instance, const hangar_accel_allocation *allocation)
{
    mock_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_select(allocation, &inst->capacity, &inst->slot, 1, &sel, "prepare");
    if (st != HANGAR_OK)
        return st;
    if (allocation->container_id == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "prepare: the allocation has no container_id");
    if (sel.count == 0 || mock_prepared_find(inst, allocation->container_id) >= 0)
        return HANGAR_OK;
    if (inst->prepared_count == inst->prepared_cap) {
        size_t cap = inst->prepared_cap > 0 ? inst->prepared_cap * 2 : 8;
        char **grown = realloc(inst->prepared, cap * sizeof *grown);
        if (grown == NULL)
            return hs_fail(HANGAR_E_INSUFFICIENT, "prepare: out of memory");
        inst->prepared = grown;
        inst->prepared_cap = cap;
    }
    char *id = strdup(allocation->container_id);
    if (id == NULL)
        return hs_fail(HANGAR_E_INSUFFICIENT, "prepare: out of memory");
    inst->prepared[inst->prepared_count++] = id;
    return HANGAR_OK;
}

/* Forgets the container; releasing one that was never prepared, or twice, is fine. */
static hangar_status mock_release(void *instance, const hangar_accel_allocation *allocation)
{
    mock_instance *inst = instance;
    if (allocation == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "release: allocation is NULL");
    ptrdiff_t i = mock_prepared_find(inst, allocation->container_id);
    if (i >= 0) {
        free(inst->prepared[i]);
        inst->prepared[i] = inst->prepared[--inst->prepared_count];
    }
    return HANGAR_OK;
}

/** Next value of the instance's 64-bit LCG (Knuth's MMIX constants), upper bits. */
static uint32_t mock_next_random(mock_instance *inst)
{
    inst->rng = inst->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(inst->rng >> 33);
}

/* Made-up utilisation (a gauge in percent) and memory used (a gauge in bytes, out of memory_limit). */
static hangar_status mock_measure_device(mock_instance *inst, const hs_device *d, const char *container_id, int64_t memory_limit,
                                         hangar_accel_measure_sink sink, void *sink_context)
{
    hangar_status st = hs_measure(sink, sink_context, inst->measure_util, HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, d->id, container_id,
                                  (double)(mock_next_random(inst) % 101u), 100.0);
    if (st != HANGAR_OK)
        return st;
    int64_t used = mock_scale_permille(memory_limit, (int64_t)(mock_next_random(inst) % 1001u));
    return hs_measure(sink, sink_context, inst->measure_mem, HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, d->id, container_id, (double)used,
                      (double)memory_limit);
}

static hangar_status mock_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context)
{
    mock_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    for (size_t i = 0; i < inst->devices.count; i++) {
        const hs_device *d = &inst->devices.items[i];
        hangar_status st = mock_measure_device(inst, d, NULL, (int64_t)d->memory_bytes, sink, sink_context);
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

static hangar_status mock_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                    hangar_accel_measure_sink sink, void *sink_context)
{
    static const char call[] = "gather_container_measures";
    mock_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: sink is NULL", call);
    if (count > 0 && (allocations == NULL || stride < offsetof(hangar_accel_allocation, entry_stride) + sizeof(size_t)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: %zu allocations with base %p and stride %zu", call, count, (const void *)allocations, stride);
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        hangar_status st = hs_check_allocation_shape(alloc, call);
        if (st != HANGAR_OK)
            return st;
        if (alloc->container_id == NULL)
            return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s: allocation %zu has no container_id", call, a);
    }
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        for (size_t i = 0; i < alloc->entry_count; i++) {
            const hangar_accel_alloc_entry *e = hs_entry(alloc, i);
            ptrdiff_t found = e->slot_name != NULL && strcmp(e->slot_name, inst->slot_name) == 0 ? hs_devices_find(&inst->devices, e->device_id) : -1;
            if (found < 0 || e->amount <= 0)
                continue; /* measuring is best effort: skip entries that no longer match the configuration */
            const hs_device *d = &inst->devices.items[found];
            int64_t limit = (int64_t)d->memory_bytes;
            if (inst->fractional) {
                int64_t capacity = hs_slot_capacity(&inst->slot, &inst->capacity.items[found]);
                int64_t amount = e->amount < capacity ? e->amount : capacity;
                int64_t permille = capacity > 0 ? mock_ratio_fixed(amount, capacity, HANGAR_AMOUNT_SCALE) / 1000 : 0;
                limit = mock_scale_permille(limit, permille);
            }
            hangar_status st = mock_measure_device(inst, d, alloc->container_id, limit, sink, sink_context);
            if (st != HANGAR_OK)
                return st;
        }
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry symbol                                               */
/* ------------------------------------------------------------------------ */

static const char kConfigSchema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"properties\":{"
    "\"device_key\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":63,\"default\":\"mock\","
    "\"description\":\"Device key and slot-name prefix to pose as: 1-63 lowercase letters, digits and '-', starting with a letter, e.g. \\\"cuda\\\". "
    "Not \\\"cpu\\\" or \\\"mem\\\".\"},"
    "\"allocation_mode\":{\"type\":\"string\",\"enum\":[\"discrete\",\"fractional\"],\"default\":\"discrete\","
    "\"description\":\"discrete: slot <key>.device, whole devices. fractional: slot <key>.shares in multiples of quantum.\"},"
    "\"quantum\":{\"type\":[\"string\",\"number\"],\"default\":\"0.01\","
    "\"description\":\"Fractional mode: smallest share step, a decimal string or number, greater than 0 and at most 1, "
    "at most 6 decimal places.\"},"
    "\"unit_memory\":{\"type\":[\"integer\",\"string\"],\"default\":\"2G\","
    "\"description\":\"Fractional mode: device memory per whole share, in bytes or with a K/M/G/T binary suffix.\"},"
    "\"unit_processing_units\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4294967295,\"default\":8,"
    "\"description\":\"Fractional mode: processing units per whole share. A device gives "
    "min(memory/unit_memory, processing_units/unit_processing_units) shares, rounded down to the quantum.\"},"
    "\"model\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":127,\"default\":\"Mock Accelerator\","
    "\"description\":\"Model name of devices that set none.\"},"
    "\"devices\":{\"type\":\"array\",\"maxItems\":256,\"default\":[{},{}],"
    "\"description\":\"The fake devices (at most 256). Absent: two default devices with ids \\\"0\\\" and \\\"1\\\". "
    "An empty array means no devices.\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\",\"maxLength\":63,\"default\":\"\","
    "\"description\":\"Unique device id (letters, digits, '-', '_', '.', '/'); empty means the array index.\"},"
    "\"model\":{\"type\":\"string\",\"maxLength\":127,\"default\":\"\","
    "\"description\":\"Model name; empty means the top-level model.\"},"
    "\"memory\":{\"type\":[\"integer\",\"string\"],\"default\":\"16G\","
    "\"description\":\"Device memory in bytes or with a K/M/G/T binary suffix, e.g. \\\"40G\\\".\"},"
    "\"processing_units\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4294967295,\"default\":64,"
    "\"description\":\"Processing units (SMs, compute units).\"},"
    "\"numa_node\":{\"type\":\"integer\",\"minimum\":-1,\"maximum\":2147483647,\"default\":0,"
    "\"description\":\"NUMA node of the device; -1 if unknown.\"},"
    "\"uuid\":{\"type\":\"string\",\"maxLength\":95,\"default\":\"\","
    "\"description\":\"Vendor UUID or serial to report; empty means none.\"},"
    "\"health\":{\"type\":\"string\",\"enum\":[\"healthy\",\"degraded\",\"unhealthy\"],\"default\":\"healthy\","
    "\"description\":\"Reported health. Unhealthy devices are listed but provide no capacity.\"},"
    "\"health_reason\":{\"type\":\"string\",\"maxLength\":159,\"default\":\"\","
    "\"description\":\"Why the device is not healthy; empty means none.\"},"
    "\"firmware_version\":{\"type\":\"string\",\"maxLength\":63,\"default\":\"\","
    "\"description\":\"Firmware version to report; empty means none.\"},"
    "\"board_id\":{\"type\":\"string\",\"maxLength\":63,\"default\":\"\","
    "\"description\":\"Board id or serial to report; empty means none.\"},"
    "\"link_speed\":{\"type\":\"string\",\"maxLength\":47,\"default\":\"\","
    "\"description\":\"Host link to report, e.g. \\\"PCIe 5.0 x16\\\"; empty means none.\"},"
    "\"cpu_affinity\":{\"type\":\"string\",\"maxLength\":255,\"default\":\"\","
    "\"description\":\"Nearest host CPUs as a Linux cpulist, e.g. \\\"0-15,32-47\\\"; empty means none (numa_node alone).\"},"
    "\"parent\":{\"type\":\"string\",\"maxLength\":63,\"default\":\"\","
    "\"description\":\"Id of the whole device this one is a partition of (both are listed); empty for a whole device.\"}"
    "}}},"
    "\"device_mask\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":63,\"description\":\"A device id.\"},\"default\":[],"
    "\"description\":\"Ids of configured devices to hide from the agent. Unknown ids are logged and ignored.\"},"
    "\"allowed_syscalls\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":63,\"description\":\"A syscall name.\"},\"maxItems\":8,"
    "\"default\":[],\"description\":\"Syscalls a container given one of these devices may call beyond the sandbox policy.\"}"
    "}"
    "}";

static const hangar_accelerator_functions kFunctions = {
    .struct_size = (uint32_t)sizeof(hangar_accelerator_functions),
    .create = mock_create,
    .destroy = mock_destroy,
    .last_error = hs_last_error,
    .get_info = mock_get_info,
    .list_devices = mock_list_devices,
    .list_slots = mock_list_slots,
    .list_device_slots = mock_list_device_slots,
    .container_edits = mock_container_edits,
    .release = mock_release,
    .gather_node_measures = mock_gather_node_measures,
    .gather_container_measures = mock_gather_container_measures,
    .prepare = mock_prepare,
};

static const hangar_plugin_descriptor kDescriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_FRACTIONAL | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS |
                    HANGAR_ACCEL_CAP_NEEDS_RELEASE | HANGAR_ACCEL_CAP_NEEDS_PREPARE,
    .name = HANGAR_MOCK_NAME,
    .vendor = "Hangar",
    .version = "1.1.0",
    .description = "Config-driven mock accelerator for development and tests: fake devices under any device key, discrete or fractional, "
                   "no device nodes",
    .license = "Apache-2.0",
    .config_schema = kConfigSchema,
    .static_slot_names = NULL,
    .functions = &kFunctions,
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(kDescriptor, 2)
