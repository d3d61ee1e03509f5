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
 * Configuration (read through the host services' config accessors; every key
 * is optional; see kConfigSchema below for the authoritative list):
 *   device_key             string  "mock"        slot prefix and device key
 *   allocation_mode        string  "discrete"    or "fractional"
 *   quantum                decimal "0.01"        fractional step, 0 < q <= 1
 *   unit_memory            bytes   "2G"          memory per whole share
 *   unit_processing_units  integer 8             processing units per whole share
 *   model                  string  "Mock Accelerator"
 *   devices                array of tables (default: two devices)
 *     id, model, memory ("16G"), processing_units (64), numa_node (0),
 *     uuid, health ("healthy" | "degraded" | "unhealthy"), health_reason
 *   device_mask            array of device ids to hide (unknown ids are logged)
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
 * An allocation with no entries gets no edits. There are no device nodes.
 *
 * Amounts are fixed point (HANGAR_AMOUNT_SCALE); this file never uses binary
 * floating point for amounts, only for the measure values the ABI types as
 * double.
 *
 * Threading: thread_safety is 0, so the host serialises calls on one
 * instance. Instances share nothing: there is no mutable global state.
 */
#include <hangar/accelerator.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MOCK_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define MOCK_PRINTF(fmt_index, first_arg)
#endif

/*
 * The descriptor name. A process may hold one plugin per name, so to pose as two
 * vendors at once (say "cuda" and "rocm" in one agent) build a second copy with
 * -DHANGAR_MOCK_NAME='"mock-rocm"' -o libhangar-accel-mock-rocm.so and configure
 * each under its own [plugins.config.<name>].
 */
#ifndef HANGAR_MOCK_NAME
#define HANGAR_MOCK_NAME "mock"
#endif

/** True if `field` of `type` lies entirely within the first `size` bytes. */
#define MOCK_HAS_FIELD(type, field, size) (offsetof(type, field) + sizeof(((type *)0)->field) <= (size_t)(size))

enum {
    MOCK_MAX_DEVICES = 256,
    MOCK_KEY_MAX = 63,
    MOCK_ID_MAX = 127,
    MOCK_TEXT_MAX = 255,
    MOCK_ERROR_MAX = 512,
};

static const int64_t kDefaultUnitMemory = 2LL << 30;         /* 2 GiB */
static const int64_t kDefaultDeviceMemory = 16LL << 30;      /* 16 GiB */
static const int64_t kMaxUnitMemory = 1LL << 60;             /* keeps the share division overflow-free */
static const int64_t kDefaultQuantum = HANGAR_AMOUNT_SCALE / 100; /* 0.01 */
static const size_t kDefaultDeviceCount = 2;

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct mock_device {
    char *id;
    char *model;
    char *uuid;          /* NULL if not configured */
    char *health_reason; /* NULL if not configured */
    char hw_location[24];
    int64_t memory;
    uint32_t processing_units;
    int32_t numa_node;
    uint32_t health;
    /** This device's capacity of the instance's slot (fixed point); 0 when unhealthy. */
    int64_t capacity;
} mock_device;

typedef struct mock_instance {
    const hangar_host_services *host;
    char key[MOCK_KEY_MAX + 1];
    char slot_name[MOCK_KEY_MAX + 16];
    char display_name[MOCK_KEY_MAX + 16];
    char env_devices[MOCK_KEY_MAX + 32];
    char env_device_count[MOCK_KEY_MAX + 32];
    char env_shares[MOCK_KEY_MAX + 32];
    char res_global_ids[MOCK_KEY_MAX + 32];
    char measure_util[MOCK_KEY_MAX + 8];
    char measure_mem[MOCK_KEY_MAX + 8];
    char extra_info[96];
    const char *no_device_reason;
    int fractional;
    int64_t quantum; /* fixed point; used in fractional mode */
    int64_t unit_memory;
    int64_t unit_processing_units;
    mock_device *devices; /* the visible (unmasked) devices, in config order */
    size_t device_count;
    int64_t total_capacity;
    uint64_t rng;
    char last_error[MOCK_ERROR_MAX];
} mock_instance;

static void mock_free_devices(mock_device *devices, size_t count)
{
    if (devices == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(devices[i].id);
        free(devices[i].model);
        free(devices[i].uuid);
        free(devices[i].health_reason);
    }
    free(devices);
}

MOCK_PRINTF(3, 4)
static hangar_status mock_fail(mock_instance *inst, hangar_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inst->last_error, sizeof inst->last_error, fmt, ap);
    va_end(ap);
    return status;
}

static void mock_log(const hangar_host_services *host, int32_t level, const char *message)
{
    if (host != NULL && MOCK_HAS_FIELD(hangar_host_services, log, host->struct_size) && host->log != NULL)
        host->log(host->host_context, level, message);
}

/* ------------------------------------------------------------------------ */
/* Small string and number helpers (no POSIX, no floating point)              */
/* ------------------------------------------------------------------------ */

static char *mock_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/** Writes a fixed-point amount as a decimal with trailing zeros trimmed: 500000 -> "0.5", 2000000 -> "2". */
static void mock_format_fixed(int64_t amount, char *out, size_t out_len)
{
    uint64_t magnitude = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = magnitude / (uint64_t)HANGAR_AMOUNT_SCALE;
    uint64_t frac = magnitude % (uint64_t)HANGAR_AMOUNT_SCALE;
    const char *sign = amount < 0 ? "-" : "";
    if (frac == 0) {
        snprintf(out, out_len, "%s%" PRIu64, sign, whole);
        return;
    }
    char digits[8];
    snprintf(digits, sizeof digits, "%06" PRIu64, frac);
    size_t n = strlen(digits);
    while (n > 0 && digits[n - 1] == '0')
        digits[--n] = '\0';
    snprintf(out, out_len, "%s%" PRIu64 ".%s", sign, whole, digits);
}

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

typedef struct mock_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} mock_buf;

static void mock_buf_add(mock_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}

/* ------------------------------------------------------------------------ */
/* Configuration reading                                                     */
/* ------------------------------------------------------------------------ */

typedef struct mock_cfg {
    const hangar_host_services *host;
    char msg[MOCK_ERROR_MAX];
} mock_cfg;

MOCK_PRINTF(3, 4)
static hangar_status cfg_fail(mock_cfg *c, hangar_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return status;
}

/**
 * Reads the string at `path` into a new allocation. Returns HANGAR_OK,
 * HANGAR_E_NOT_FOUND, HANGAR_E_INVALID_ARGUMENT (another type), or
 * HANGAR_E_INTERNAL / another host status with c->msg set.
 */
static hangar_status cfg_read_text(mock_cfg *c, const char *path, char **out)
{
    char small[256];
    size_t len = 0;
    *out = NULL;
    hangar_status st = c->host->config_string(c->host->host_context, path, small, sizeof small, &len);
    if (st == HANGAR_OK) {
        small[sizeof small - 1] = '\0';
        *out = mock_strdup(small);
        return *out != NULL ? HANGAR_OK : cfg_fail(c, HANGAR_E_INTERNAL, "%s: out of memory", path);
    }
    if (st != HANGAR_E_BUFFER_TOO_SMALL)
        return st;
    if (len > (1u << 20))
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: value is %zu bytes long; the limit is 1 MiB", path, len);
    char *big = malloc(len + 1);
    if (big == NULL)
        return cfg_fail(c, HANGAR_E_INTERNAL, "%s: out of memory", path);
    size_t len2 = 0;
    st = c->host->config_string(c->host->host_context, path, big, len + 1, &len2);
    if (st != HANGAR_OK) {
        free(big);
        return cfg_fail(c, HANGAR_E_INTERNAL, "%s: the host could not read the value (status %d)", path, (int)st);
    }
    big[len] = '\0';
    *out = big;
    return HANGAR_OK;
}

/** True if anything (of any type) exists at `path`. */
static int cfg_exists(mock_cfg *c, const char *path)
{
    char tiny[2];
    size_t len = 0;
    hangar_status st = c->host->config_string(c->host->host_context, path, tiny, sizeof tiny, &len);
    if (st != HANGAR_E_NOT_FOUND)
        return 1;
    return c->host->config_count(c->host->host_context, path) >= 0;
}

/** Describes the value at `path` for an error message: a quoted string, or "an array or table". */
static void cfg_describe(mock_cfg *c, const char *path, char *out, size_t out_len)
{
    char *text = NULL;
    hangar_status st = cfg_read_text(c, path, &text);
    if (st == HANGAR_OK) {
        if (strlen(text) > 60)
            snprintf(out, out_len, "\"%.57s...\"", text);
        else
            snprintf(out, out_len, "\"%s\"", text);
        free(text);
    } else if (c->host->config_count(c->host->host_context, path) >= 0) {
        snprintf(out, out_len, "an array or table");
    } else {
        snprintf(out, out_len, "a value of another type");
    }
}

/**
 * Reads an optional string. Missing or empty leaves *out NULL. `check` (may
 * be NULL) validates the characters; it returns NULL if fine or a phrase
 * explaining what is allowed.
 */
static hangar_status cfg_string(mock_cfg *c, const char *path, size_t max_len, const char *(*check)(const char *), char **out)
{
    char *text = NULL;
    hangar_status st = cfg_read_text(c, path, &text);
    *out = NULL;
    if (st == HANGAR_E_NOT_FOUND)
        return HANGAR_OK;
    if (st == HANGAR_E_INVALID_ARGUMENT) {
        char got[80];
        cfg_describe(c, path, got, sizeof got);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: expected a string, got %s", path, got);
    }
    if (st == HANGAR_E_INTERNAL || st == HANGAR_E_INVALID_CONFIG)
        return st; /* c->msg is set */
    if (st != HANGAR_OK)
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: the host could not read the value (status %d)", path, (int)st);
    if (text[0] == '\0') {
        free(text);
        return HANGAR_OK;
    }
    size_t len = strlen(text);
    if (len > max_len) {
        hangar_status r = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: at most %zu characters allowed, got %zu (\"%.40s...\")", path, max_len,
                                   len, text);
        free(text);
        return r;
    }
    const char *problem = check != NULL ? check(text) : NULL;
    if (problem == NULL) {
        for (const unsigned char *p = (const unsigned char *)text; *p; p++)
            if (*p < 0x20 || *p == 0x7f) {
                problem = "control characters are not allowed";
                break;
            }
    }
    if (problem != NULL) {
        hangar_status r = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: \"%.80s\" is not valid: %s", path, text, problem);
        free(text);
        return r;
    }
    *out = text;
    return HANGAR_OK;
}

/** Reads an optional integer (the host accepts "16G"-style strings too) within [min, max]. */
static hangar_status cfg_int(mock_cfg *c, const char *path, int64_t def, int64_t min, int64_t max, const char *expected, int64_t *out)
{
    int64_t v = 0;
    hangar_status st = c->host->config_int(c->host->host_context, path, &v);
    if (st == HANGAR_E_NOT_FOUND) {
        *out = def;
        return HANGAR_OK;
    }
    if (st != HANGAR_OK) {
        char got[80];
        cfg_describe(c, path, got, sizeof got);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: expected %s, got %s", path, expected, got);
    }
    if (v < min || v > max)
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: must be between %" PRId64 " and %" PRId64 ", got %" PRId64, path, min, max, v);
    *out = v;
    return HANGAR_OK;
}

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

static hangar_status cfg_read_quantum(mock_cfg *c, int64_t *out)
{
    char *text = NULL;
    hangar_status st = cfg_read_text(c, "quantum", &text);
    if (st == HANGAR_E_NOT_FOUND) {
        *out = kDefaultQuantum;
        return HANGAR_OK;
    }
    if (st == HANGAR_E_INTERNAL)
        return st;
    int64_t q = 0;
    int parsed = st == HANGAR_OK ? mock_parse_fixed(text, &q) : -1;
    if (parsed != 0) {
        /* A number may be rendered as "1e-05" or "-0.5": read it as a double and accept it if it is
         * a whole multiple of 1e-6 (the range is checked below). */
        double d = 0;
        if (c->host->config_double(c->host->host_context, "quantum", &d) == HANGAR_OK) {
            if (!(d > 0 && d <= 1)) {
                free(text);
                return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "quantum: must be greater than 0 and at most 1, got %g", d);
            }
            double scaled = d * (double)HANGAR_AMOUNT_SCALE;
            int64_t rounded = (int64_t)(scaled + 0.5);
            double diff = scaled - (double)rounded;
            if (diff < 1e-3 && diff > -1e-3) {
                q = rounded;
                parsed = 0;
            }
        }
    }
    if (parsed != 0) {
        char got[80];
        cfg_describe(c, "quantum", got, sizeof got);
        free(text);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "quantum: expected a decimal with at most 6 decimal places such as \"0.01\", got %s", got);
    }
    free(text);
    if (q <= 0 || q > HANGAR_AMOUNT_SCALE) {
        char shown[32];
        mock_format_fixed(q, shown, sizeof shown);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "quantum: must be greater than 0 and at most 1, got %s", shown);
    }
    *out = q;
    return HANGAR_OK;
}

static const char *const kDeviceKeys[] = {"id", "model", "memory", "processing_units", "numa_node", "uuid", "health", "health_reason"};

static hangar_status cfg_read_device(mock_cfg *c, mock_instance *inst, const char *default_model, int configured, size_t index, mock_device *d)
{
    char path[64], got[80];
    hangar_status st;
    int64_t v;

    snprintf(d->hw_location, sizeof d->hw_location, "0001:%02zx:00.0", index);
    d->health = HANGAR_HEALTH_HEALTHY;

    if (configured) {
        snprintf(path, sizeof path, "devices.%zu", index);
        char *scalar = NULL;
        st = cfg_read_text(c, path, &scalar);
        free(scalar);
        if (st == HANGAR_OK || st == HANGAR_E_BUFFER_TOO_SMALL) {
            cfg_describe(c, path, got, sizeof got);
            return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: expected a table like {id = \"0\", memory = \"16G\"}, got %s", path, got);
        }
        if (st == HANGAR_E_INTERNAL)
            return st;
        int64_t keys = c->host->config_count(c->host->host_context, path);
        if (keys < 0)
            return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "devices: expected an array of tables, but %s does not exist", path);
        int64_t known = 0;
        for (size_t k = 0; k < sizeof kDeviceKeys / sizeof kDeviceKeys[0]; k++) {
            snprintf(path, sizeof path, "devices.%zu.%s", index, kDeviceKeys[k]);
            known += cfg_exists(c, path);
        }
        if (keys > known)
            return cfg_fail(c, HANGAR_E_INVALID_CONFIG,
                            "devices.%zu: unknown key; allowed keys are id, model, memory, processing_units, numa_node, uuid, health, "
                            "health_reason",
                            index);
    }

    snprintf(path, sizeof path, "devices.%zu.id", index);
    if (configured && (st = cfg_string(c, path, MOCK_ID_MAX, check_device_id, &d->id)) != HANGAR_OK)
        return st;
    if (d->id == NULL) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", index);
        if ((d->id = mock_strdup(idx)) == NULL)
            return cfg_fail(c, HANGAR_E_INTERNAL, "out of memory");
    }

    snprintf(path, sizeof path, "devices.%zu.model", index);
    if (configured && (st = cfg_string(c, path, MOCK_TEXT_MAX, NULL, &d->model)) != HANGAR_OK)
        return st;
    if (d->model == NULL && (d->model = mock_strdup(default_model)) == NULL)
        return cfg_fail(c, HANGAR_E_INTERNAL, "out of memory");

    snprintf(path, sizeof path, "devices.%zu.memory", index);
    d->memory = kDefaultDeviceMemory;
    if (configured && (st = cfg_int(c, path, kDefaultDeviceMemory, 0, INT64_MAX, "bytes like 16G", &d->memory)) != HANGAR_OK)
        return st;

    snprintf(path, sizeof path, "devices.%zu.processing_units", index);
    v = 64;
    if (configured && (st = cfg_int(c, path, 64, 1, UINT32_MAX, "an integer such as 64", &v)) != HANGAR_OK)
        return st;
    d->processing_units = (uint32_t)v;

    snprintf(path, sizeof path, "devices.%zu.numa_node", index);
    v = 0;
    if (configured && (st = cfg_int(c, path, 0, -1, INT32_MAX, "an integer (-1 for unknown)", &v)) != HANGAR_OK)
        return st;
    d->numa_node = (int32_t)v;

    snprintf(path, sizeof path, "devices.%zu.uuid", index);
    if (configured && (st = cfg_string(c, path, MOCK_ID_MAX, NULL, &d->uuid)) != HANGAR_OK)
        return st;

    snprintf(path, sizeof path, "devices.%zu.health", index);
    char *health = NULL;
    if (configured && (st = cfg_string(c, path, MOCK_TEXT_MAX, NULL, &health)) != HANGAR_OK)
        return st;
    if (health != NULL) {
        if (strcmp(health, "healthy") == 0)
            d->health = HANGAR_HEALTH_HEALTHY;
        else if (strcmp(health, "degraded") == 0)
            d->health = HANGAR_HEALTH_DEGRADED;
        else if (strcmp(health, "unhealthy") == 0)
            d->health = HANGAR_HEALTH_UNHEALTHY;
        else {
            st = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: expected \"healthy\", \"degraded\" or \"unhealthy\", got \"%.60s\"", path, health);
            free(health);
            return st;
        }
        free(health);
    }

    snprintf(path, sizeof path, "devices.%zu.health_reason", index);
    if (configured && (st = cfg_string(c, path, MOCK_TEXT_MAX, NULL, &d->health_reason)) != HANGAR_OK)
        return st;

    /* Capacity of this device in the instance's slot. */
    if (d->health == HANGAR_HEALTH_UNHEALTHY) {
        d->capacity = 0;
    } else if (!inst->fractional) {
        d->capacity = HANGAR_AMOUNT_SCALE;
    } else {
        /* Backend.AI's mock: min(mem / unit_mem, pu / unit_pu), rounded down to the quantum. */
        int64_t by_pu = mock_ratio_fixed((int64_t)d->processing_units, inst->unit_processing_units, INT64_MAX / 2);
        int64_t by_mem = mock_ratio_fixed(d->memory, inst->unit_memory, by_pu);
        int64_t shares = by_mem < by_pu ? by_mem : by_pu;
        d->capacity = shares - shares % inst->quantum;
    }
    return HANGAR_OK;
}

static hangar_status cfg_read_all(mock_cfg *c, mock_instance *inst, size_t *configured_count)
{
    hangar_status st;
    char *text = NULL;
    char got[80];

    /* device_key */
    if ((st = cfg_string(c, "device_key", MOCK_KEY_MAX, check_device_key, &text)) != HANGAR_OK)
        return st;
    snprintf(inst->key, sizeof inst->key, "%s", text != NULL ? text : "mock");
    free(text);
    text = NULL;

    /* allocation_mode */
    if ((st = cfg_string(c, "allocation_mode", MOCK_TEXT_MAX, NULL, &text)) != HANGAR_OK)
        return st;
    if (text == NULL || strcmp(text, "discrete") == 0) {
        inst->fractional = 0;
    } else if (strcmp(text, "fractional") == 0) {
        inst->fractional = 1;
    } else {
        st = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "allocation_mode: expected \"discrete\" or \"fractional\", got \"%.60s\"", text);
        free(text);
        return st;
    }
    free(text);
    text = NULL;

    if ((st = cfg_read_quantum(c, &inst->quantum)) != HANGAR_OK)
        return st;
    if ((st = cfg_int(c, "unit_memory", kDefaultUnitMemory, 1, kMaxUnitMemory, "bytes like 2G", &inst->unit_memory)) != HANGAR_OK)
        return st;
    if ((st = cfg_int(c, "unit_processing_units", 8, 1, UINT32_MAX, "an integer such as 8", &inst->unit_processing_units)) != HANGAR_OK)
        return st;

    char *default_model = NULL;
    if ((st = cfg_string(c, "model", MOCK_TEXT_MAX, NULL, &default_model)) != HANGAR_OK)
        return st;
    const char *model = default_model != NULL ? default_model : "Mock Accelerator";

    /* devices */
    int configured = 1;
    size_t count = 0;
    int64_t n = c->host->config_count(c->host->host_context, "devices");
    st = cfg_read_text(c, "devices", &text);
    free(text);
    text = NULL;
    if (st == HANGAR_OK || (n < 0 && st != HANGAR_E_NOT_FOUND)) {
        /* A scalar (config_count's answer for scalars is not specified, so ask config_string too). */
        cfg_describe(c, "devices", got, sizeof got);
        free(default_model);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "devices: expected an array of tables like [{id = \"0\"}], got %s", got);
    }
    if (n < 0) {
        configured = 0;
        count = kDefaultDeviceCount;
    } else if (n > MOCK_MAX_DEVICES) {
        free(default_model);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "devices: at most %d devices are supported, got %" PRId64, MOCK_MAX_DEVICES, n);
    } else {
        count = (size_t)n;
    }
    *configured_count = count;

    mock_device *devices = count > 0 ? calloc(count, sizeof *devices) : NULL;
    if (count > 0 && devices == NULL) {
        free(default_model);
        return cfg_fail(c, HANGAR_E_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        if ((st = cfg_read_device(c, inst, model, configured, i, &devices[i])) != HANGAR_OK) {
            free(default_model);
            mock_free_devices(devices, count);
            return st;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(devices[j].id, devices[i].id) == 0) {
                st = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "devices.%zu.id: \"%s\" is already used by devices.%zu; device ids must be unique", i,
                              devices[i].id, j);
                free(default_model);
                mock_free_devices(devices, count);
                return st;
            }
    }
    free(default_model);

    /* device_mask: hide the listed ids. */
    int64_t masks = c->host->config_count(c->host->host_context, "device_mask");
    st = cfg_read_text(c, "device_mask", &text);
    free(text);
    text = NULL;
    if (st == HANGAR_OK || (masks < 0 && st != HANGAR_E_NOT_FOUND)) {
        cfg_describe(c, "device_mask", got, sizeof got);
        mock_free_devices(devices, count);
        return cfg_fail(c, HANGAR_E_INVALID_CONFIG, "device_mask: expected an array of device ids like [\"1\"], got %s", got);
    }
    unsigned char hidden[MOCK_MAX_DEVICES] = {0};
    for (int64_t m = 0; m < masks; m++) {
        char path[48];
        snprintf(path, sizeof path, "device_mask.%" PRId64, m);
        char *id = NULL;
        st = cfg_read_text(c, path, &id);
        if (st != HANGAR_OK) {
            if (st == HANGAR_E_NOT_FOUND)
                st = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "device_mask: expected an array of device ids like [\"1\"], got a table");
            else if (st == HANGAR_E_INVALID_ARGUMENT)
                st = cfg_fail(c, HANGAR_E_INVALID_CONFIG, "%s: expected a device id string, got an array or table", path);
            else if (st != HANGAR_E_INTERNAL)
                st = HANGAR_E_INVALID_CONFIG;
            mock_free_devices(devices, count);
            return st;
        }
        int found = 0;
        for (size_t i = 0; i < count; i++)
            if (strcmp(devices[i].id, id) == 0) {
                hidden[i] = 1;
                found = 1;
            }
        if (!found) {
            char line[200];
            snprintf(line, sizeof line, "mock: %s: no device has id \"%.64s\"; ignoring it", path, id);
            mock_log(c->host, HANGAR_LOG_WARNING, line);
        }
        free(id);
    }

    /* Keep only the visible devices, in config order. */
    size_t visible = 0;
    for (size_t i = 0; i < count; i++) {
        if (hidden[i]) {
            free(devices[i].id);
            free(devices[i].model);
            free(devices[i].uuid);
            free(devices[i].health_reason);
            continue;
        }
        devices[visible++] = devices[i];
    }
    if (visible == 0) {
        free(devices);
        devices = NULL;
    }
    inst->devices = devices;
    inst->device_count = visible;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Function table                                                            */
/* ------------------------------------------------------------------------ */

static hangar_status mock_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    if (err != NULL && err_len > 0)
        err[0] = '\0';
    if (out_instance != NULL)
        *out_instance = NULL;
    if (host == NULL || config_json == NULL || out_instance == NULL) {
        if (err != NULL)
            snprintf(err, err_len, "mock: create() needs non-NULL host, config_json and out_instance");
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (!MOCK_HAS_FIELD(hangar_host_services, config_count, host->struct_size) || host->config_string == NULL || host->config_int == NULL ||
        host->config_double == NULL || host->config_count == NULL) {
        if (err != NULL)
            snprintf(err, err_len, "mock: the host services table lacks the config accessors (struct_size %u)", (unsigned)host->struct_size);
        return HANGAR_E_INCOMPATIBLE;
    }
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR) {
        if (err != NULL)
            snprintf(err, err_len, "mock: host ABI major %u is not supported (built for %u)", (unsigned)HANGAR_ABI_VERSION_MAJOR(host->abi_version),
                     (unsigned)HANGAR_ABI_MAJOR);
        return HANGAR_E_INCOMPATIBLE;
    }

    mock_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL) {
        if (err != NULL)
            snprintf(err, err_len, "mock: out of memory");
        return HANGAR_E_INTERNAL;
    }
    inst->host = host;

    mock_cfg cfg;
    cfg.host = host;
    cfg.msg[0] = '\0';
    size_t configured = 0;
    hangar_status st = cfg_read_all(&cfg, inst, &configured);
    if (st != HANGAR_OK) {
        if (err != NULL)
            snprintf(err, err_len, "%s", cfg.msg[0] ? cfg.msg : "mock: invalid configuration");
        free(inst);
        return st;
    }

    /* Derived names. */
    char upper[MOCK_KEY_MAX + 1];
    size_t k = 0;
    for (; inst->key[k]; k++)
        upper[k] = inst->key[k] == '-' ? '_' : (char)(inst->key[k] >= 'a' && inst->key[k] <= 'z' ? inst->key[k] - 'a' + 'A' : inst->key[k]);
    upper[k] = '\0';
    char display_key[MOCK_KEY_MAX + 1];
    for (k = 0; inst->key[k]; k++)
        display_key[k] = (char)(inst->key[k] >= 'a' && inst->key[k] <= 'z' ? inst->key[k] - 'a' + 'A' : inst->key[k]);
    display_key[k] = '\0';

    snprintf(inst->slot_name, sizeof inst->slot_name, "%s.%s", inst->key, inst->fractional ? "shares" : "device");
    snprintf(inst->display_name, sizeof inst->display_name, "%s %s", display_key, inst->fractional ? "shares" : "device");
    snprintf(inst->env_devices, sizeof inst->env_devices, "HANGAR_MOCK_%s_DEVICES", upper);
    snprintf(inst->env_device_count, sizeof inst->env_device_count, "HANGAR_MOCK_%s_DEVICE_COUNT", upper);
    snprintf(inst->env_shares, sizeof inst->env_shares, "HANGAR_MOCK_%s_SHARES", upper);
    snprintf(inst->res_global_ids, sizeof inst->res_global_ids, "%s_GLOBAL_DEVICE_IDS", upper);
    snprintf(inst->measure_util, sizeof inst->measure_util, "%s_util", inst->key);
    snprintf(inst->measure_mem, sizeof inst->measure_mem, "%s_mem", inst->key);
    snprintf(inst->extra_info, sizeof inst->extra_info, "{\"mock\":true,\"allocation_mode\":\"%s\"}", inst->fractional ? "fractional" : "discrete");
    if (inst->device_count == 0)
        inst->no_device_reason = configured == 0 ? "no devices configured" : "all devices masked";

    for (size_t i = 0; i < inst->device_count; i++) {
        inst->total_capacity += inst->devices[i].capacity;
        if (inst->fractional && inst->devices[i].capacity == 0 && inst->devices[i].health != HANGAR_HEALTH_UNHEALTHY) {
            char line[256];
            snprintf(line, sizeof line, "mock: device \"%.64s\" provides no %s (memory or processing units below one unit)", inst->devices[i].id,
                     inst->slot_name);
            mock_log(host, HANGAR_LOG_WARNING, line);
        }
    }

    /* Per-instance PRNG seed: FNV-1a of the device key, so runs are reproducible. */
    uint64_t seed = 1469598103934665603ull;
    for (k = 0; inst->key[k]; k++)
        seed = (seed ^ (unsigned char)inst->key[k]) * 1099511628211ull;
    inst->rng = seed;

    *out_instance = inst;
    return HANGAR_OK;
}

static void mock_destroy(void *instance)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return;
    mock_free_devices(inst->devices, inst->device_count);
    free(inst);
}

static size_t mock_last_error(void *instance, char *buf, size_t buf_len)
{
    const mock_instance *inst = instance;
    const char *msg = inst != NULL ? inst->last_error : "";
    int n = snprintf(buf_len > 0 ? buf : NULL, buf_len, "%s", msg);
    return n < 0 ? 0 : (size_t)n;
}

static hangar_status mock_get_info(void *instance, hangar_accel_info *info)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (info == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "get_info: info is NULL");
    uint32_t size = info->struct_size;
    if (MOCK_HAS_FIELD(hangar_accel_info, device_key, size))
        info->device_key = inst->key;
    if (MOCK_HAS_FIELD(hangar_accel_info, driver_version, size))
        info->driver_version = "mock-1.0";
    if (MOCK_HAS_FIELD(hangar_accel_info, runtime_version, size))
        info->runtime_version = NULL;
    if (MOCK_HAS_FIELD(hangar_accel_info, extra_info_json, size))
        info->extra_info_json = inst->extra_info;
    if (MOCK_HAS_FIELD(hangar_accel_info, no_device_reason, size))
        info->no_device_reason = inst->no_device_reason;
    return HANGAR_OK;
}

static hangar_status mock_sink_stopped(mock_instance *inst, const char *call, hangar_status st)
{
    return mock_fail(inst, st, "%s: the host's sink stopped the listing with status %d", call, (int)st);
}

static hangar_status mock_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (sink == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    for (size_t i = 0; i < inst->device_count; i++) {
        const mock_device *d = &inst->devices[i];
        hangar_accel_device dev;
        memset(&dev, 0, sizeof dev);
        dev.struct_size = (uint32_t)sizeof dev;
        dev.device_id = d->id;
        dev.model = d->model;
        dev.uuid = d->uuid;
        dev.hw_location = d->hw_location;
        dev.memory_bytes = (uint64_t)d->memory;
        dev.processing_units = d->processing_units;
        dev.numa_node = d->numa_node;
        dev.health = d->health;
        dev.health_reason = d->health_reason;
        hangar_status st = sink(sink_context, &dev);
        if (st != HANGAR_OK)
            return mock_sink_stopped(inst, "list_devices", st);
    }
    return HANGAR_OK;
}

static hangar_status mock_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (sink == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_slots: sink is NULL");
    hangar_accel_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.struct_size = (uint32_t)sizeof slot;
    slot.name = inst->slot_name;
    slot.type = HANGAR_SLOT_COUNT;
    slot.allocation_mode = inst->fractional ? HANGAR_ALLOC_FRACTIONAL : HANGAR_ALLOC_DISCRETE;
    slot.quantum = inst->fractional ? inst->quantum : 0;
    slot.capacity = inst->total_capacity;
    slot.exclusive = 1;
    slot.display_name = inst->display_name;
    slot.display_unit = inst->fractional ? "share" : "device";
    hangar_status st = sink(sink_context, &slot);
    return st == HANGAR_OK ? HANGAR_OK : mock_sink_stopped(inst, "list_slots", st);
}

static hangar_status mock_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (sink == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_device_slots: sink is NULL");
    for (size_t i = 0; i < inst->device_count; i++) {
        hangar_accel_device_slot row;
        memset(&row, 0, sizeof row);
        row.struct_size = (uint32_t)sizeof row;
        row.slot_name = inst->slot_name;
        row.device_id = inst->devices[i].id;
        row.capacity = inst->devices[i].capacity;
        hangar_status st = sink(sink_context, &row);
        if (st != HANGAR_OK)
            return mock_sink_stopped(inst, "list_device_slots", st);
    }
    return HANGAR_OK;
}

static const mock_device *mock_find_device(const mock_instance *inst, const char *id, size_t *index)
{
    for (size_t i = 0; i < inst->device_count; i++)
        if (strcmp(inst->devices[i].id, id) == 0) {
            if (index != NULL)
                *index = i;
            return &inst->devices[i];
        }
    return NULL;
}

/** Checks the allocation header; entries are checked by the callers. */
static hangar_status mock_check_allocation(mock_instance *inst, const char *call, const hangar_accel_allocation *a)
{
    if (!MOCK_HAS_FIELD(hangar_accel_allocation, entry_stride, a->struct_size))
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation struct_size %u is too small", call, (unsigned)a->struct_size);
    if (a->entry_count > 0 && a->entries == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation has %zu entries but entries is NULL", call, a->entry_count);
    if (a->entry_count > 0 && a->entry_stride < offsetof(hangar_accel_alloc_entry, amount) + sizeof(int64_t))
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation entry_stride %zu is too small", call, a->entry_stride);
    for (size_t i = 0; i < a->entry_count; i++) {
        const hangar_accel_alloc_entry *e = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, a->entries, a->entry_stride, i);
        if (!MOCK_HAS_FIELD(hangar_accel_alloc_entry, amount, e->struct_size) || e->struct_size > a->entry_stride)
            return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: entry %zu has struct_size %u (stride %zu)", call, i, (unsigned)e->struct_size,
                             a->entry_stride);
        if (e->slot_name == NULL || e->device_id == NULL)
            return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: entry %zu has a NULL slot_name or device_id", call, i);
    }
    return HANGAR_OK;
}

static hangar_status mock_emit(mock_instance *inst, hangar_status st, const char *what, const char *name)
{
    if (st == HANGAR_OK)
        return HANGAR_OK;
    return mock_fail(inst, st, "container_edits: %s(%s) was refused by the host with status %d", what, name, (int)st);
}

static hangar_status mock_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (allocation == NULL || edits == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: allocation and edits must not be NULL");
    if (!MOCK_HAS_FIELD(hangar_container_edits, add_resource_data, edits->struct_size) || edits->add_env == NULL ||
        edits->add_resource_data == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: the edits table (struct_size %u) lacks add_env or add_resource_data",
                         (unsigned)edits->struct_size);
    hangar_status st = mock_check_allocation(inst, "container_edits", allocation);
    if (st != HANGAR_OK)
        return st;

    /* Validate every entry before emitting anything. */
    int64_t amounts[MOCK_MAX_DEVICES];
    unsigned char used[MOCK_MAX_DEVICES];
    memset(used, 0, sizeof used);
    for (size_t i = 0; i < allocation->entry_count; i++) {
        const hangar_accel_alloc_entry *e = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, allocation->entries, allocation->entry_stride, i);
        char shown[32];
        mock_format_fixed(e->amount, shown, sizeof shown);
        if (strcmp(e->slot_name, inst->slot_name) != 0)
            return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: entry %zu names slot \"%.80s\", but this instance provides only \"%s\"",
                             i, e->slot_name, inst->slot_name);
        size_t d_index = 0;
        const mock_device *d = mock_find_device(inst, e->device_id, &d_index);
        if (d == NULL)
            return mock_fail(inst, HANGAR_E_NOT_FOUND, "container_edits: entry %zu names unknown device \"%.80s\" (not configured or masked)", i,
                             e->device_id);
        if (used[d_index])
            return mock_fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: entry %zu names device \"%s\" a second time", i, d->id);
        if (d->health == HANGAR_HEALTH_UNHEALTHY)
            return mock_fail(inst, HANGAR_E_DEVICE_LOST, "container_edits: device \"%s\" is unhealthy%s%s", d->id, d->health_reason ? ": " : "",
                             d->health_reason ? d->health_reason : "");
        if (e->amount <= 0)
            return mock_fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: entry %zu asks for %s (%" PRId64 ") of %s on device \"%s\"; the amount must be positive",
                             i, shown, e->amount, inst->slot_name, d->id);
        if (!inst->fractional && e->amount % HANGAR_AMOUNT_SCALE != 0)
            return mock_fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: entry %zu asks for %s (%" PRId64 ") of %s on device \"%s\"; discrete amounts must be whole devices",
                             i, shown, e->amount, inst->slot_name, d->id);
        if (inst->fractional && e->amount % inst->quantum != 0) {
            char q[32];
            mock_format_fixed(inst->quantum, q, sizeof q);
            return mock_fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: entry %zu asks for %s (%" PRId64 ") of %s on device \"%s\"; the amount must be a multiple of the quantum %s",
                             i, shown, e->amount, inst->slot_name, d->id, q);
        }
        if (e->amount > d->capacity) {
            char cap[32];
            mock_format_fixed(d->capacity, cap, sizeof cap);
            return mock_fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: entry %zu asks for %s (%" PRId64 ") of %s on device \"%s\", which has only %s",
                             i, shown, e->amount, inst->slot_name, d->id, cap);
        }
        used[d_index] = 1;
        amounts[d_index] = e->amount;
    }
    if (allocation->entry_count == 0)
        return HANGAR_OK; /* nothing of this plugin is allocated: nothing to add */

    /* Build the values, devices in config order (independent of entry order). */
    mock_buf ids = {0}, shares = {0}, global = {0};
    size_t n = 0;
    for (size_t i = 0; i < inst->device_count; i++) {
        if (!used[i])
            continue;
        char num[32], amount[32];
        const char *id = inst->devices[i].id;
        if (n > 0) {
            mock_buf_add(&ids, ",");
            mock_buf_add(&shares, ",");
            mock_buf_add(&global, ",");
        }
        mock_buf_add(&ids, id);
        mock_format_fixed(amounts[i], amount, sizeof amount);
        mock_buf_add(&shares, id);
        mock_buf_add(&shares, ":");
        mock_buf_add(&shares, amount);
        snprintf(num, sizeof num, "%zu:", n);
        mock_buf_add(&global, num);
        mock_buf_add(&global, id);
        n++;
    }
    char count_text[24];
    snprintf(count_text, sizeof count_text, "%zu", n);

    if (ids.failed || shares.failed || global.failed) {
        st = mock_fail(inst, HANGAR_E_INTERNAL, "container_edits: out of memory");
    } else {
        st = mock_emit(inst, edits->add_env(edits->context, inst->env_devices, ids.data), "add_env", inst->env_devices);
        if (st == HANGAR_OK)
            st = mock_emit(inst, edits->add_env(edits->context, inst->env_device_count, count_text), "add_env", inst->env_device_count);
        if (st == HANGAR_OK && inst->fractional)
            st = mock_emit(inst, edits->add_env(edits->context, inst->env_shares, shares.data), "add_env", inst->env_shares);
        if (st == HANGAR_OK && strcmp(inst->key, "cuda") == 0)
            st = mock_emit(inst, edits->add_env(edits->context, "TF_MIN_GPU_MULTIPROCESSOR_COUNT", "4"), "add_env",
                           "TF_MIN_GPU_MULTIPROCESSOR_COUNT");
        if (st == HANGAR_OK)
            st = mock_emit(inst, edits->add_resource_data(edits->context, inst->res_global_ids, global.data), "add_resource_data",
                           inst->res_global_ids);
    }
    free(ids.data);
    free(shares.data);
    free(global.data);
    return st;
}

static hangar_status mock_release(void *instance, const hangar_accel_allocation *allocation)
{
    (void)instance;
    (void)allocation;
    return HANGAR_OK; /* the mock keeps no per-allocation state */
}

/** Next value of the instance's 64-bit LCG (Knuth's MMIX constants), upper bits. */
static uint32_t mock_next_random(mock_instance *inst)
{
    inst->rng = inst->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(inst->rng >> 33);
}

static hangar_status mock_measure_device(mock_instance *inst, const mock_device *d, const char *container_id, int64_t memory_limit,
                                         hangar_accel_measure_sink sink, void *sink_context, const char *call)
{
    hangar_accel_measure m;
    memset(&m, 0, sizeof m);
    m.struct_size = (uint32_t)sizeof m;
    m.device_id = d->id;
    m.container_id = container_id;

    m.key = inst->measure_util;
    m.unit = HANGAR_UNIT_PERCENT;
    m.current = (double)(mock_next_random(inst) % 101u);
    m.capacity = 100.0;
    hangar_status st = sink(sink_context, &m);
    if (st != HANGAR_OK)
        return mock_sink_stopped(inst, call, st);

    m.key = inst->measure_mem;
    m.unit = HANGAR_UNIT_BYTES;
    m.current = (double)mock_scale_permille(memory_limit, (int64_t)(mock_next_random(inst) % 1001u));
    m.capacity = (double)memory_limit;
    st = sink(sink_context, &m);
    return st == HANGAR_OK ? HANGAR_OK : mock_sink_stopped(inst, call, st);
}

static hangar_status mock_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context)
{
    mock_instance *inst = instance;
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (sink == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    for (size_t i = 0; i < inst->device_count; i++) {
        hangar_status st = mock_measure_device(inst, &inst->devices[i], NULL, inst->devices[i].memory, sink, sink_context, "gather_node_measures");
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
    if (inst == NULL)
        return HANGAR_E_INVALID_ARGUMENT;
    if (sink == NULL)
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: sink is NULL", call);
    if (count > 0 && (allocations == NULL || stride < offsetof(hangar_accel_allocation, entry_stride) + sizeof(size_t)))
        return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: %zu allocations with base %p and stride %zu", call, count, (const void *)allocations,
                         stride);
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = HANGAR_ARRAY_AT(hangar_accel_allocation, allocations, stride, a);
        hangar_status st = mock_check_allocation(inst, call, alloc);
        if (st != HANGAR_OK)
            return st;
        if (alloc->container_id == NULL)
            return mock_fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation %zu has no container_id", call, a);
    }
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = HANGAR_ARRAY_AT(hangar_accel_allocation, allocations, stride, a);
        for (size_t i = 0; i < alloc->entry_count; i++) {
            const hangar_accel_alloc_entry *e = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, alloc->entries, alloc->entry_stride, i);
            const mock_device *d = strcmp(e->slot_name, inst->slot_name) == 0 ? mock_find_device(inst, e->device_id, NULL) : NULL;
            if (d == NULL || e->amount <= 0)
                continue; /* measuring is best effort: skip entries that no longer match the configuration */
            int64_t limit = d->memory;
            if (inst->fractional) {
                int64_t amount = e->amount < d->capacity ? e->amount : d->capacity;
                int64_t permille = d->capacity > 0 ? mock_ratio_fixed(amount, d->capacity, HANGAR_AMOUNT_SCALE) / 1000 : 0;
                limit = mock_scale_permille(d->memory, permille);
            }
            hangar_status st = mock_measure_device(inst, d, alloc->container_id, limit, sink, sink_context, call);
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
    "\"model\":{\"type\":\"string\",\"maxLength\":255,\"default\":\"Mock Accelerator\","
    "\"description\":\"Model name of devices that set none.\"},"
    "\"devices\":{\"type\":\"array\",\"maxItems\":256,\"default\":[{},{}],"
    "\"description\":\"The fake devices (at most 256). Absent: two default devices with ids \\\"0\\\" and \\\"1\\\". "
    "An empty array means no devices.\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\",\"maxLength\":127,\"default\":\"\","
    "\"description\":\"Unique device id (letters, digits, '-', '_', '.', '/'); empty means the array index.\"},"
    "\"model\":{\"type\":\"string\",\"maxLength\":255,\"default\":\"\","
    "\"description\":\"Model name; empty means the top-level model.\"},"
    "\"memory\":{\"type\":[\"integer\",\"string\"],\"default\":\"16G\","
    "\"description\":\"Device memory in bytes or with a K/M/G/T binary suffix, e.g. \\\"40G\\\".\"},"
    "\"processing_units\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4294967295,\"default\":64,"
    "\"description\":\"Processing units (SMs, compute units).\"},"
    "\"numa_node\":{\"type\":\"integer\",\"minimum\":-1,\"maximum\":2147483647,\"default\":0,"
    "\"description\":\"NUMA node of the device; -1 if unknown.\"},"
    "\"uuid\":{\"type\":\"string\",\"maxLength\":127,\"default\":\"\","
    "\"description\":\"Vendor UUID or serial to report; empty means none.\"},"
    "\"health\":{\"type\":\"string\",\"enum\":[\"healthy\",\"degraded\",\"unhealthy\"],\"default\":\"healthy\","
    "\"description\":\"Reported health. Unhealthy devices are listed but provide no capacity.\"},"
    "\"health_reason\":{\"type\":\"string\",\"maxLength\":255,\"default\":\"\","
    "\"description\":\"Why the device is not healthy; empty means none.\"}"
    "}}},"
    "\"device_mask\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"description\":\"A device id.\",\"default\":\"\"},\"default\":[],"
    "\"description\":\"Ids of configured devices to hide from the agent. Unknown ids are logged and ignored.\"}"
    "}"
    "}";

static const hangar_accelerator_functions kFunctions = {
    .struct_size = (uint32_t)sizeof(hangar_accelerator_functions),
    .create = mock_create,
    .destroy = mock_destroy,
    .last_error = mock_last_error,
    .get_info = mock_get_info,
    .list_devices = mock_list_devices,
    .list_slots = mock_list_slots,
    .list_device_slots = mock_list_device_slots,
    .container_edits = mock_container_edits,
    .release = mock_release,
    .gather_node_measures = mock_gather_node_measures,
    .gather_container_measures = mock_gather_container_measures,
};

static const hangar_plugin_descriptor kDescriptor = {
    .struct_size = (uint32_t)sizeof(hangar_plugin_descriptor),
    .abi_major = (uint16_t)HANGAR_ABI_MAJOR,
    .abi_minor = (uint16_t)HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_ACCELERATOR,
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_FRACTIONAL | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS,
    .name = HANGAR_MOCK_NAME,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Config-driven mock accelerator for development and tests: fake devices under any device key, discrete or fractional, "
                   "no device nodes",
    .license = "Apache-2.0",
    .config_schema = kConfigSchema,
    .static_slot_names = NULL,
    .functions = &kFunctions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &kDescriptor;
}
