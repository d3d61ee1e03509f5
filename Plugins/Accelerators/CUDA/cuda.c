/*
 * Hangar accelerator plugin for NVIDIA GPUs ("cuda").
 *
 * Discovers GPUs once, at create(), through NVML (libnvidia-ml.so.1, loaded
 * with dlopen so that the plugin loads on nodes without the NVIDIA driver),
 * offers one slot "cuda.device" (whole GPUs), and tells the agent how to give
 * a container its GPUs: either as device nodes (/dev/nvidia<minor> plus the
 * control nodes) or as CDI devices nvidia.com/gpu=<uuid>, always together
 * with NVIDIA_VISIBLE_DEVICES and CUDA_GLOBAL_DEVICE_IDS.
 *
 * Without NVML, or when NVML fails to initialise, create() still succeeds:
 * the instance has no devices and get_info says why.
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden \
 *           -I PluginAPI/include -o libhangar-accel-cuda.so cuda.c -ldl
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hangar/accelerator.h>

#include "cuda_nvml.h"

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

#define CUDA_KEY "cuda"
#define CUDA_SLOT "cuda.device"
#define CUDA_DEFAULT_NVML "libnvidia-ml.so.1"
#define CUDA_DEFAULT_SYSFS "/sys"
#define CUDA_CDI_KIND "nvidia.com/gpu"
#define CUDA_LAST_ERROR_SIZE 1024

enum cuda_injection {
    CUDA_INJECT_AUTO = 0,
    CUDA_INJECT_DEVICE_NODES = 1,
    CUDA_INJECT_CDI = 2,
};

/* True if a host-filled struct at `p` (with a leading struct_size) covers `field`. */
#define HAS_FIELD(p, type, field) \
    ((p)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ------------------------------------------------------------------------ */
/* Instance state                                                            */
/* ------------------------------------------------------------------------ */

typedef struct cuda_nvml {
    nvmlInit_v2_fn init;
    nvmlShutdown_fn shutdown;
    nvmlErrorString_fn error_string;
    nvmlDeviceGetCount_v2_fn get_count;
    nvmlDeviceGetHandleByIndex_v2_fn get_handle;
    nvmlDeviceGetName_fn get_name;
    nvmlDeviceGetUUID_fn get_uuid;
    nvmlDeviceGetMemoryInfo_fn get_memory;
    nvmlDeviceGetPciInfo_v3_fn get_pci;
    nvmlDeviceGetMinorNumber_fn get_minor;
    nvmlDeviceGetUtilizationRates_fn get_utilization;
    nvmlSystemGetDriverVersion_fn get_driver_version;
    nvmlSystemGetCudaDriverVersion_fn get_cuda_version; /* optional */
    nvmlDeviceGetNumGpuCores_fn get_cores;              /* optional */
} cuda_nvml;

typedef struct cuda_device {
    unsigned int index;                       /* NVML index */
    char id[16];                              /* index as decimal: the device id */
    nvmlDevice_t handle;
    char model[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE]; /* "" if unknown */
    char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* normalised, "" if unknown */
    uint64_t memory_total;
    uint32_t cores;
    int32_t numa_node;
    unsigned int minor;
    int has_minor;
    int lost;                                 /* NVML said GPU_IS_LOST */
    char health_reason[192];                  /* "" when healthy */
} cuda_device;

typedef struct cuda_instance {
    const hangar_host_services *host;
    cuda_nvml nvml;
    int nvml_initialised;
    int injection; /* resolved: CUDA_INJECT_DEVICE_NODES or CUDA_INJECT_CDI */
    cuda_device *devices;
    size_t device_count;
    char *driver_version;   /* NULL if unknown */
    char *runtime_version;  /* NULL if unknown */
    char *extra_info_json;
    char *no_device_reason; /* NULL when there are devices */
    char last_error[CUDA_LAST_ERROR_SIZE];
} cuda_instance;

/* Configuration as read at create(); freed before create() returns. */
typedef struct cuda_config {
    char *nvml_library;
    char *sysfs_root;
    char **device_mask;
    size_t device_mask_count;
    int injection;
    char **cdi_spec_dirs;
    size_t cdi_spec_dir_count;
} cuda_config;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static char *cuda_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

static void free_string_list(char **list, size_t count) {
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free(list[i]);
    }
    free(list);
}

#if defined(__GNUC__) || defined(__clang__)
#define CUDA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CUDA_PRINTF(f, a)
#endif

static void write_err(char *err, size_t err_len, const char *fmt, ...) CUDA_PRINTF(3, 4);
static void write_err(char *err, size_t err_len, const char *fmt, ...) {
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Records the message of a failed call and returns `status`. */
static hangar_status fail(cuda_instance *inst, hangar_status status, const char *fmt, ...) CUDA_PRINTF(3, 4);
static hangar_status fail(cuda_instance *inst, hangar_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inst->last_error, sizeof inst->last_error, fmt, ap);
    va_end(ap);
    return status;
}

static void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...) CUDA_PRINTF(3, 4);
static void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...) {
    if (host == NULL || !HAS_FIELD(host, hangar_host_services, log) || host->log == NULL) {
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

/* A growable NUL-terminated string; `failed` is set on allocation failure. */
typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} strbuf;

static void sb_append(strbuf *sb, const char *s, size_t n) {
    if (sb->failed) {
        return;
    }
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap != 0 ? sb->cap : 64;
        while (sb->len + n + 1 > cap) {
            cap *= 2;
        }
        char *p = realloc(sb->data, cap);
        if (p == NULL) {
            sb->failed = 1;
            return;
        }
        sb->data = p;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s) {
    sb_append(sb, s, strlen(s));
}

static void sb_printf(strbuf *sb, const char *fmt, ...) CUDA_PRINTF(2, 3);
static void sb_printf(strbuf *sb, const char *fmt, ...) {
    char tmp[256];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->failed = 1;
    } else if ((size_t)n < sizeof tmp) {
        sb_append(sb, tmp, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big == NULL) {
            sb->failed = 1;
        } else {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            sb_append(sb, big, (size_t)n);
            free(big);
        }
    }
    va_end(ap2);
}

/* Appends `s` as a JSON string literal. */
static void sb_json_string(strbuf *sb, const char *s) {
    sb_puts(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_append(sb, esc, 2);
        } else if (*p < 0x20) {
            sb_printf(sb, "\\u%04x", *p);
        } else {
            sb_append(sb, (const char *)p, 1);
        }
    }
    sb_puts(sb, "\"");
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Reads the string at `path` into a new allocation. Returns HANGAR_OK (with
 * *out set), HANGAR_E_NOT_FOUND (key absent, *out NULL), or
 * HANGAR_E_INVALID_ARGUMENT (not a scalar), HANGAR_E_INSUFFICIENT (no memory)
 * or another host status.
 */
static hangar_status config_read_string(const hangar_host_services *host, const char *path, char **out) {
    *out = NULL;
    char small[256];
    size_t len = 0;
    hangar_status st = host->config_string(host->host_context, path, small, sizeof small, &len);
    if (st == HANGAR_OK) {
        small[sizeof small - 1] = '\0';
        *out = cuda_strdup(small);
        return *out != NULL ? HANGAR_OK : HANGAR_E_INSUFFICIENT;
    }
    if (st != HANGAR_E_BUFFER_TOO_SMALL) {
        return st;
    }
    if (len >= SIZE_MAX - 1) {
        return HANGAR_E_INSUFFICIENT;
    }
    char *big = malloc(len + 1);
    if (big == NULL) {
        return HANGAR_E_INSUFFICIENT;
    }
    size_t len2 = 0;
    st = host->config_string(host->host_context, path, big, len + 1, &len2);
    if (st != HANGAR_OK) {
        free(big);
        return st == HANGAR_E_BUFFER_TOO_SMALL ? HANGAR_E_INTERNAL : st;
    }
    big[len] = '\0';
    *out = big;
    return HANGAR_OK;
}

/* Reads an optional non-empty string key; *out gets a copy of `def` if absent. */
static hangar_status config_string_key(const hangar_host_services *host, const char *key, const char *def,
                                       char **out, char *err, size_t err_len) {
    hangar_status st = config_read_string(host, key, out);
    if (st == HANGAR_E_NOT_FOUND) {
        *out = cuda_strdup(def);
        if (*out == NULL) {
            write_err(err, err_len, "out of memory reading config key \"%s\"", key);
            return HANGAR_E_INSUFFICIENT;
        }
        return HANGAR_OK;
    }
    if (st == HANGAR_E_INVALID_ARGUMENT) {
        write_err(err, err_len, "config key \"%s\" must be a string (default \"%s\")", key, def);
        return HANGAR_E_INVALID_CONFIG;
    }
    if (st != HANGAR_OK) {
        write_err(err, err_len, "cannot read config key \"%s\" (host status %d)", key, (int)st);
        return st == HANGAR_E_INSUFFICIENT ? st : HANGAR_E_INVALID_CONFIG;
    }
    if ((*out)[0] == '\0') {
        free(*out);
        *out = NULL;
        write_err(err, err_len, "config key \"%s\" must not be empty (default \"%s\"); remove it to use the default", key, def);
        return HANGAR_E_INVALID_CONFIG;
    }
    return HANGAR_OK;
}

/*
 * Reads an optional array of non-empty strings. *present is 0 if the key is
 * absent (the caller applies its default).
 */
static hangar_status config_string_array(const hangar_host_services *host, const char *key, char ***out,
                                         size_t *out_count, int *present, char *err, size_t err_len) {
    *out = NULL;
    *out_count = 0;
    *present = 0;

    /* A scalar reads as a string; an array or table does not. */
    char probe[8];
    size_t probe_len = 0;
    hangar_status st = host->config_string(host->host_context, key, probe, sizeof probe, &probe_len);
    if (st == HANGAR_E_NOT_FOUND) {
        return HANGAR_OK;
    }
    if (st == HANGAR_OK || st == HANGAR_E_BUFFER_TOO_SMALL) {
        write_err(err, err_len, "config key \"%s\" must be an array of strings, not a single value", key);
        return HANGAR_E_INVALID_CONFIG;
    }
    if (st != HANGAR_E_INVALID_ARGUMENT) {
        write_err(err, err_len, "cannot read config key \"%s\" (host status %d)", key, (int)st);
        return HANGAR_E_INVALID_CONFIG;
    }
    int64_t n = host->config_count(host->host_context, key);
    if (n < 0) {
        write_err(err, err_len, "config key \"%s\" must be an array of strings", key);
        return HANGAR_E_INVALID_CONFIG;
    }
    *present = 1;
    if (n == 0) {
        return HANGAR_OK;
    }
    if ((uint64_t)n > 4096) {
        write_err(err, err_len, "config key \"%s\" has %lld elements; at most 4096 are allowed", key, (long long)n);
        return HANGAR_E_INVALID_CONFIG;
    }
    char **list = calloc((size_t)n, sizeof *list);
    if (list == NULL) {
        write_err(err, err_len, "out of memory reading config key \"%s\"", key);
        return HANGAR_E_INSUFFICIENT;
    }
    for (int64_t i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s.%lld", key, (long long)i);
        st = config_read_string(host, path, &list[i]);
        if (st == HANGAR_OK && list[i][0] != '\0') {
            continue;
        }
        if (st == HANGAR_OK) {
            write_err(err, err_len, "config key \"%s\": element %lld is an empty string", key, (long long)i);
        } else if (st == HANGAR_E_NOT_FOUND) {
            write_err(err, err_len, "config key \"%s\" must be an array of strings, not an object", key);
        } else if (st == HANGAR_E_INSUFFICIENT) {
            write_err(err, err_len, "out of memory reading config key \"%s\"", key);
        } else {
            write_err(err, err_len, "config key \"%s\": element %lld must be a string", key, (long long)i);
        }
        free_string_list(list, (size_t)n);
        return st == HANGAR_E_INSUFFICIENT ? st : HANGAR_E_INVALID_CONFIG;
    }
    *out = list;
    *out_count = (size_t)n;
    return HANGAR_OK;
}

static void config_free(cuda_config *cfg) {
    free(cfg->nvml_library);
    free(cfg->sysfs_root);
    free_string_list(cfg->device_mask, cfg->device_mask_count);
    free_string_list(cfg->cdi_spec_dirs, cfg->cdi_spec_dir_count);
    memset(cfg, 0, sizeof *cfg);
}

static hangar_status config_load(const hangar_host_services *host, cuda_config *cfg, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    hangar_status st;
    int present = 0;

    st = config_string_key(host, "nvml_library", CUDA_DEFAULT_NVML, &cfg->nvml_library, err, err_len);
    if (st != HANGAR_OK) {
        goto fail;
    }
    st = config_string_key(host, "sysfs_root", CUDA_DEFAULT_SYSFS, &cfg->sysfs_root, err, err_len);
    if (st != HANGAR_OK) {
        goto fail;
    }

    char *injection = NULL;
    st = config_string_key(host, "injection", "auto", &injection, err, err_len);
    if (st != HANGAR_OK) {
        goto fail;
    }
    if (strcmp(injection, "auto") == 0) {
        cfg->injection = CUDA_INJECT_AUTO;
    } else if (strcmp(injection, "device-nodes") == 0) {
        cfg->injection = CUDA_INJECT_DEVICE_NODES;
    } else if (strcmp(injection, "cdi") == 0) {
        cfg->injection = CUDA_INJECT_CDI;
    } else {
        write_err(err, err_len,
                  "config key \"injection\" is \"%.200s\"; use \"auto\" (CDI if a spec for %s exists, else device nodes), "
                  "\"device-nodes\" or \"cdi\"",
                  injection, CUDA_CDI_KIND);
        free(injection);
        st = HANGAR_E_INVALID_CONFIG;
        goto fail;
    }
    free(injection);

    st = config_string_array(host, "device_mask", &cfg->device_mask, &cfg->device_mask_count, &present, err, err_len);
    if (st != HANGAR_OK) {
        goto fail;
    }

    st = config_string_array(host, "cdi_spec_dirs", &cfg->cdi_spec_dirs, &cfg->cdi_spec_dir_count, &present, err,
                             err_len);
    if (st != HANGAR_OK) {
        goto fail;
    }
    if (!present) {
        static const char *const defaults[] = {"/etc/cdi", "/var/run/cdi"};
        size_t n = sizeof defaults / sizeof defaults[0];
        cfg->cdi_spec_dirs = calloc(n, sizeof *cfg->cdi_spec_dirs);
        if (cfg->cdi_spec_dirs == NULL) {
            st = HANGAR_E_INSUFFICIENT;
            write_err(err, err_len, "out of memory");
            goto fail;
        }
        cfg->cdi_spec_dir_count = n;
        for (size_t i = 0; i < n; i++) {
            cfg->cdi_spec_dirs[i] = cuda_strdup(defaults[i]);
            if (cfg->cdi_spec_dirs[i] == NULL) {
                st = HANGAR_E_INSUFFICIENT;
                write_err(err, err_len, "out of memory");
                goto fail;
            }
        }
    }
    return HANGAR_OK;

fail:
    config_free(cfg);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Files: NUMA node and CDI specs                                            */
/* ------------------------------------------------------------------------ */

/* Opens a regular file for reading without blocking on FIFOs; -1 otherwise. */
static int open_regular(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* <sysfs_root>/bus/pci/devices/<bus_id>/numa_node, or -1. */
static int32_t read_numa_node(const char *sysfs_root, const char *bus_id) {
    if (bus_id[0] == '\0') {
        return -1;
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/bus/pci/devices/%s/numa_node", sysfs_root, bus_id);
    if (n < 0 || (size_t)n >= sizeof path) {
        return -1;
    }
    int fd = open_regular(path);
    if (fd < 0) {
        return -1;
    }
    char buf[32];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) {
        return -1;
    }
    buf[got] = '\0';
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || v < -1 || v > INT32_MAX) {
        return -1;
    }
    while (*end == '\n' || *end == ' ' || *end == '\t' || *end == '\r') {
        end++;
    }
    return *end == '\0' ? (int32_t)v : -1;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* True if the regular file at `path` contains `needle` (streamed, any size). */
static int file_contains(const char *path, const char *needle) {
    int fd = open_regular(path);
    if (fd < 0) {
        return 0;
    }
    size_t m = strlen(needle);
    char buf[65536 + 64];
    size_t keep = 0; /* bytes carried over from the previous chunk */
    int found = 0;
    for (;;) {
        ssize_t got = read(fd, buf + keep, sizeof buf - 1 - keep);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        size_t len = keep + (size_t)got;
        for (size_t i = 0; i + m <= len; i++) {
            if (buf[i] == needle[0] && memcmp(buf + i, needle, m) == 0) {
                found = 1;
                break;
            }
        }
        if (found) {
            break;
        }
        keep = len < m - 1 ? len : m - 1;
        memmove(buf, buf + len - keep, keep);
    }
    close(fd);
    return found;
}

/* First *.json or *.yaml file in `dirs` that mentions the CDI kind; 1 if found (path in out). */
static int find_cdi_spec(char *const *dirs, size_t ndirs, char *out, size_t out_len) {
    for (size_t d = 0; d < ndirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (dir == NULL) {
            continue;
        }
        struct dirent *e;
        int found = 0;
        while ((e = readdir(dir)) != NULL) {
            if (!has_suffix(e->d_name, ".json") && !has_suffix(e->d_name, ".yaml")) {
                continue;
            }
            char path[PATH_MAX];
            int n = snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            if (n < 0 || (size_t)n >= sizeof path) {
                continue;
            }
            if (file_contains(path, CUDA_CDI_KIND)) {
                snprintf(out, out_len, "%s", path);
                found = 1;
                break;
            }
        }
        closedir(dir);
        if (found) {
            return 1;
        }
    }
    return 0;
}

/*
 * NVML's "00000000:3B:00.0" -> sysfs's "0000:3b:00.0". Falls back to the
 * numeric fields when the string does not parse.
 */
static void normalise_bus_id(const nvmlPciInfo_t *pci, char *out, size_t out_len) {
    char bus_id[sizeof pci->busId + 1];
    memcpy(bus_id, pci->busId, sizeof pci->busId);
    bus_id[sizeof pci->busId] = '\0';
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    char tail = 0;
    if (sscanf(bus_id, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) == 4) {
        snprintf(out, out_len, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
    } else {
        snprintf(out, out_len, "%04x:%02x:%02x.0", pci->domain, pci->bus, pci->device);
    }
}

/* ------------------------------------------------------------------------ */
/* NVML                                                                      */
/* ------------------------------------------------------------------------ */

static const char *nvml_error(const cuda_instance *inst, nvmlReturn_t r) {
    if (inst->nvml.error_string != NULL) {
        const char *s = inst->nvml.error_string(r);
        if (s != NULL) {
            return s;
        }
    }
    return "unknown NVML error";
}

/* Looks up `name`; NULL if missing. NVML_LOAD stores it with memcpy (no void* to function pointer cast). */
static void *nvml_sym(void *lib, const char *name) {
    (void)dlerror();
    return dlsym(lib, name);
}

#define NVML_LOAD(inst, lib, field, sym, required)                                         \
    do {                                                                                   \
        void *p_ = nvml_sym((lib), #sym);                                                  \
        static_assert(sizeof p_ == sizeof (inst)->nvml.field, "function pointer size");    \
        memcpy(&(inst)->nvml.field, &p_, sizeof p_);                                       \
        if (p_ == NULL && (required) && missing == NULL) {                                 \
            missing = #sym;                                                                \
        }                                                                                  \
    } while (0)

/*
 * Loads and initialises NVML. Returns NULL on success, or a newly allocated
 * no-device reason (or NULL with *oom set when out of memory).
 */
static char *nvml_open(cuda_instance *inst, const char *library, int *oom) {
    strbuf reason = {0};
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *e = dlerror();
        sb_printf(&reason, "%.200s not found: ", library);
        sb_puts(&reason, e != NULL ? e : "dlopen failed");
        sb_puts(&reason, "; install the NVIDIA driver (or set nvml_library to the path of libnvidia-ml.so.1)");
        *oom = reason.failed;
        return reason.failed ? (free(reason.data), NULL) : reason.data;
    }
    /* The library stays mapped for the life of the process: NVML is not safe to dlclose. */
    const char *missing = NULL;
    NVML_LOAD(inst, lib, init, nvmlInit_v2, 1);
    NVML_LOAD(inst, lib, shutdown, nvmlShutdown, 1);
    NVML_LOAD(inst, lib, error_string, nvmlErrorString, 1);
    NVML_LOAD(inst, lib, get_count, nvmlDeviceGetCount_v2, 1);
    NVML_LOAD(inst, lib, get_handle, nvmlDeviceGetHandleByIndex_v2, 1);
    NVML_LOAD(inst, lib, get_name, nvmlDeviceGetName, 1);
    NVML_LOAD(inst, lib, get_uuid, nvmlDeviceGetUUID, 1);
    NVML_LOAD(inst, lib, get_memory, nvmlDeviceGetMemoryInfo, 1);
    NVML_LOAD(inst, lib, get_pci, nvmlDeviceGetPciInfo_v3, 1);
    NVML_LOAD(inst, lib, get_minor, nvmlDeviceGetMinorNumber, 1);
    NVML_LOAD(inst, lib, get_utilization, nvmlDeviceGetUtilizationRates, 1);
    NVML_LOAD(inst, lib, get_driver_version, nvmlSystemGetDriverVersion, 1);
    NVML_LOAD(inst, lib, get_cuda_version, nvmlSystemGetCudaDriverVersion, 0);
    NVML_LOAD(inst, lib, get_cores, nvmlDeviceGetNumGpuCores, 0);
    if (missing != NULL) {
        sb_printf(&reason, "%.200s lacks %s; the NVIDIA driver is too old or the library is not NVML", library, missing);
        memset(&inst->nvml, 0, sizeof inst->nvml);
        *oom = reason.failed;
        return reason.failed ? (free(reason.data), NULL) : reason.data;
    }
    nvmlReturn_t r = inst->nvml.init();
    if (r != NVML_SUCCESS) {
        sb_printf(&reason, "nvmlInit_v2 failed: %.200s (NVML error %d); check that the NVIDIA kernel driver is loaded",
                  nvml_error(inst, r), r);
        *oom = reason.failed;
        return reason.failed ? (free(reason.data), NULL) : reason.data;
    }
    inst->nvml_initialised = 1;
    return NULL;
}

/* True if `dev` is named by the device mask (by index or UUID); marks the entries that name it. */
static int masked(const cuda_config *cfg, const cuda_device *dev, unsigned char *matched) {
    int hit = 0;
    for (size_t i = 0; i < cfg->device_mask_count; i++) {
        const char *m = cfg->device_mask[i];
        if (strcmp(m, dev->id) == 0 || (dev->uuid[0] != '\0' && strcasecmp(m, dev->uuid) == 0)) {
            matched[i] = 1;
            hit = 1;
        }
    }
    return hit;
}

/* Fills `dev` for NVML index `index`; 0 if the device cannot be used at all. */
static int discover_device(cuda_instance *inst, const cuda_config *cfg, unsigned int index, cuda_device *dev) {
    memset(dev, 0, sizeof *dev);
    dev->index = index;
    dev->numa_node = -1;
    snprintf(dev->id, sizeof dev->id, "%u", index);

    nvmlReturn_t r = inst->nvml.get_handle(index, &dev->handle);
    if (r != NVML_SUCCESS) {
        host_log(inst->host, HANGAR_LOG_WARNING, "skipping GPU %u: nvmlDeviceGetHandleByIndex_v2 failed: %s", index,
                 nvml_error(inst, r));
        return 0;
    }
    r = inst->nvml.get_name(dev->handle, dev->model, sizeof dev->model);
    dev->model[sizeof dev->model - 1] = '\0';
    if (r != NVML_SUCCESS || dev->model[0] == '\0') {
        snprintf(dev->model, sizeof dev->model, "NVIDIA GPU");
    }
    r = inst->nvml.get_uuid(dev->handle, dev->uuid, sizeof dev->uuid);
    dev->uuid[sizeof dev->uuid - 1] = '\0';
    if (r != NVML_SUCCESS) {
        dev->uuid[0] = '\0';
        host_log(inst->host, HANGAR_LOG_WARNING, "GPU %u: nvmlDeviceGetUUID failed: %s", index, nvml_error(inst, r));
    }
    nvmlMemory_t mem;
    memset(&mem, 0, sizeof mem);
    if (inst->nvml.get_memory(dev->handle, &mem) == NVML_SUCCESS) {
        dev->memory_total = mem.total;
    }
    nvmlPciInfo_t pci;
    memset(&pci, 0, sizeof pci);
    r = inst->nvml.get_pci(dev->handle, &pci);
    if (r == NVML_SUCCESS) {
        normalise_bus_id(&pci, dev->bus_id, sizeof dev->bus_id);
        dev->numa_node = read_numa_node(cfg->sysfs_root, dev->bus_id);
    }
    unsigned int minor = 0;
    r = inst->nvml.get_minor(dev->handle, &minor);
    if (r == NVML_SUCCESS) {
        dev->minor = minor;
        dev->has_minor = 1;
    } else {
        snprintf(dev->health_reason, sizeof dev->health_reason, "nvmlDeviceGetMinorNumber failed: %.150s",
                 nvml_error(inst, r));
    }
    if (inst->nvml.get_cores != NULL) {
        unsigned int cores = 0;
        if (inst->nvml.get_cores(dev->handle, &cores) == NVML_SUCCESS) {
            dev->cores = cores;
        }
    }
    return 1;
}

static hangar_status discover(cuda_instance *inst, const cuda_config *cfg, char *err, size_t err_len) {
    unsigned int count = 0;
    nvmlReturn_t r = inst->nvml.get_count(&count);
    strbuf reason = {0};
    if (r != NVML_SUCCESS) {
        sb_printf(&reason, "nvmlDeviceGetCount_v2 failed: %.200s", nvml_error(inst, r));
    } else if (count == 0) {
        sb_puts(&reason, "NVML reports no GPUs on this node");
    } else {
        inst->devices = calloc(count, sizeof *inst->devices);
        if (inst->devices == NULL) {
            write_err(err, err_len, "out of memory allocating %u devices", count);
            return HANGAR_E_INSUFFICIENT;
        }
        unsigned char *matched = calloc(cfg->device_mask_count + 1, 1);
        if (matched == NULL) {
            write_err(err, err_len, "out of memory");
            return HANGAR_E_INSUFFICIENT;
        }
        size_t hidden = 0;
        for (unsigned int i = 0; i < count; i++) {
            cuda_device *dev = &inst->devices[inst->device_count];
            if (!discover_device(inst, cfg, i, dev)) {
                continue;
            }
            if (masked(cfg, dev, matched)) {
                host_log(inst->host, HANGAR_LOG_INFO, "GPU %s (%s) is hidden by device_mask", dev->id, dev->uuid);
                hidden++;
                continue;
            }
            inst->device_count++;
        }
        for (size_t m = 0; m < cfg->device_mask_count; m++) {
            if (!matched[m]) {
                host_log(inst->host, HANGAR_LOG_NOTICE, "device_mask entry \"%s\" matches no GPU on this node",
                         cfg->device_mask[m]);
            }
        }
        free(matched);
        if (inst->device_count == 0) {
            if (hidden > 0 && hidden == count) {
                sb_printf(&reason, "all %u GPUs are hidden by device_mask", count);
            } else if (hidden > 0) {
                sb_printf(&reason, "%zu of %u GPUs are hidden by device_mask and the rest could not be queried", hidden,
                          count);
            } else {
                sb_printf(&reason, "none of the %u GPUs NVML reports could be queried (see the log)", count);
            }
        }
    }
    if (reason.failed) {
        free(reason.data);
        write_err(err, err_len, "out of memory");
        return HANGAR_E_INSUFFICIENT;
    }
    inst->no_device_reason = reason.data;
    return HANGAR_OK;
}

/* Versions and the extra-info JSON; never fails except for memory. */
static hangar_status collect_info(cuda_instance *inst) {
    if (inst->nvml_initialised) {
        char version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
        memset(version, 0, sizeof version);
        if (inst->nvml.get_driver_version(version, sizeof version) == NVML_SUCCESS) {
            version[sizeof version - 1] = '\0';
            inst->driver_version = cuda_strdup(version);
            if (inst->driver_version == NULL) {
                return HANGAR_E_INSUFFICIENT;
            }
        }
        int cuda = 0;
        if (inst->nvml.get_cuda_version != NULL && inst->nvml.get_cuda_version(&cuda) == NVML_SUCCESS && cuda > 0) {
            char buf[32];
            snprintf(buf, sizeof buf, "%d.%d", cuda / 1000, (cuda % 1000) / 10);
            inst->runtime_version = cuda_strdup(buf);
            if (inst->runtime_version == NULL) {
                return HANGAR_E_INSUFFICIENT;
            }
        }
    }
    strbuf json = {0};
    sb_puts(&json, inst->nvml_initialised ? "{\"cuda_support\":true" : "{\"cuda_support\":false");
    sb_puts(&json, ",\"nvidia_version\":");
    if (inst->driver_version != NULL) {
        sb_json_string(&json, inst->driver_version);
    } else {
        sb_puts(&json, "null");
    }
    sb_puts(&json, ",\"cuda_version\":");
    if (inst->runtime_version != NULL) {
        sb_json_string(&json, inst->runtime_version);
    } else {
        sb_puts(&json, "null");
    }
    sb_puts(&json, "}");
    if (json.failed) {
        free(json.data);
        return HANGAR_E_INSUFFICIENT;
    }
    inst->extra_info_json = json.data;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Instance lifecycle                                                        */
/* ------------------------------------------------------------------------ */

static void cuda_destroy(void *instance) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return;
    }
    if (inst->nvml_initialised && inst->nvml.shutdown != NULL) {
        inst->nvml.shutdown();
    }
    free(inst->devices);
    free(inst->driver_version);
    free(inst->runtime_version);
    free(inst->extra_info_json);
    free(inst->no_device_reason);
    free(inst);
}

static hangar_status cuda_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                 char *err, size_t err_len) {
    (void)config_json; /* read through the host's config accessors instead */
    if (out_instance == NULL || host == NULL) {
        write_err(err, err_len, "create: host and out_instance must not be NULL");
        return HANGAR_E_INVALID_ARGUMENT;
    }
    *out_instance = NULL;
    if (host->struct_size < sizeof(uint32_t) || !HAS_FIELD(host, hangar_host_services, config_count) ||
        host->config_string == NULL || host->config_count == NULL) {
        write_err(err, err_len, "the host's services lack the config accessors this plugin needs (ABI 1.0)");
        return HANGAR_E_INCOMPATIBLE;
    }
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR) {
        write_err(err, err_len, "host ABI major %u is not %u", HANGAR_ABI_VERSION_MAJOR(host->abi_version),
                  HANGAR_ABI_MAJOR);
        return HANGAR_E_INCOMPATIBLE;
    }

    cuda_config cfg;
    hangar_status st = config_load(host, &cfg, err, err_len);
    if (st != HANGAR_OK) {
        return st;
    }

    cuda_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL) {
        config_free(&cfg);
        write_err(err, err_len, "out of memory");
        return HANGAR_E_INSUFFICIENT;
    }
    inst->host = host;

    /* Injection mode. */
    char spec[PATH_MAX];
    spec[0] = '\0';
    int have_spec = cfg.injection != CUDA_INJECT_DEVICE_NODES &&
                    find_cdi_spec(cfg.cdi_spec_dirs, cfg.cdi_spec_dir_count, spec, sizeof spec);
    if (cfg.injection == CUDA_INJECT_AUTO) {
        inst->injection = have_spec ? CUDA_INJECT_CDI : CUDA_INJECT_DEVICE_NODES;
        if (have_spec) {
            host_log(host, HANGAR_LOG_INFO, "injecting GPUs as CDI devices (%s found in %s)", CUDA_CDI_KIND, spec);
        } else {
            host_log(host, HANGAR_LOG_INFO, "injecting GPUs as device nodes (no CDI spec for %s)", CUDA_CDI_KIND);
        }
    } else {
        inst->injection = cfg.injection;
        if (cfg.injection == CUDA_INJECT_CDI && !have_spec) {
            host_log(host, HANGAR_LOG_WARNING,
                     "injection is \"cdi\" but no CDI spec for %s was found in cdi_spec_dirs; "
                     "generate one with `nvidia-ctk cdi generate`",
                     CUDA_CDI_KIND);
        }
    }

    int oom = 0;
    inst->no_device_reason = nvml_open(inst, cfg.nvml_library, &oom);
    if (oom) {
        config_free(&cfg);
        cuda_destroy(inst);
        write_err(err, err_len, "out of memory");
        return HANGAR_E_INSUFFICIENT;
    }
    if (inst->nvml_initialised) {
        st = discover(inst, &cfg, err, err_len);
        if (st != HANGAR_OK) {
            config_free(&cfg);
            cuda_destroy(inst);
            return st;
        }
    } else {
        host_log(host, HANGAR_LOG_INFO, "no GPUs: %s", inst->no_device_reason);
    }
    config_free(&cfg);

    if (collect_info(inst) != HANGAR_OK) {
        cuda_destroy(inst);
        write_err(err, err_len, "out of memory");
        return HANGAR_E_INSUFFICIENT;
    }
    host_log(host, HANGAR_LOG_INFO, "%zu GPU(s), driver %s, CUDA %s", inst->device_count,
             inst->driver_version != NULL ? inst->driver_version : "unknown",
             inst->runtime_version != NULL ? inst->runtime_version : "unknown");
    *out_instance = inst;
    return HANGAR_OK;
}

static size_t cuda_last_error(void *instance, char *buf, size_t buf_len) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        if (buf != NULL && buf_len > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    size_t len = strlen(inst->last_error);
    if (buf != NULL && buf_len > 0) {
        size_t n = len < buf_len - 1 ? len : buf_len - 1;
        memcpy(buf, inst->last_error, n);
        buf[n] = '\0';
    }
    return len;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

static hangar_status cuda_get_info(void *instance, hangar_accel_info *info) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (info == NULL || info->struct_size < sizeof(uint32_t)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "get_info: info is NULL or its struct_size is too small");
    }
    hangar_accel_info out;
    memset(&out, 0, sizeof out);
    out.struct_size = info->struct_size;
    out.device_key = CUDA_KEY;
    out.driver_version = inst->driver_version;
    out.runtime_version = inst->runtime_version;
    out.extra_info_json = inst->extra_info_json;
    out.no_device_reason = inst->no_device_reason;
    size_t n = info->struct_size < sizeof out ? info->struct_size : sizeof out;
    memcpy(info, &out, n);
    return HANGAR_OK;
}

/* Re-checks whether NVML still reaches the device (for HANGAR_ACCEL_CAP_HEALTH_WATCH). */
static void note_result(cuda_instance *inst, cuda_device *dev, const char *what, nvmlReturn_t r) {
    if (r == NVML_ERROR_GPU_IS_LOST && !dev->lost) {
        dev->lost = 1;
        snprintf(dev->health_reason, sizeof dev->health_reason, "%s: %.150s", what, nvml_error(inst, r));
        host_log(inst->host, HANGAR_LOG_ERROR, "GPU %s (%s) is lost: %s", dev->id, dev->uuid, dev->health_reason);
    }
}

static uint32_t device_health(const cuda_device *dev) {
    return (dev->lost || !dev->has_minor) ? HANGAR_HEALTH_UNHEALTHY : HANGAR_HEALTH_HEALTHY;
}

static hangar_status cuda_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (sink == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_devices: sink is NULL");
    }
    for (size_t i = 0; i < inst->device_count; i++) {
        cuda_device *dev = &inst->devices[i];
        if (!dev->lost) {
            nvmlMemory_t mem;
            note_result(inst, dev, "nvmlDeviceGetMemoryInfo", inst->nvml.get_memory(dev->handle, &mem));
        }
        hangar_accel_device d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.device_id = dev->id;
        d.model = dev->model;
        d.uuid = dev->uuid[0] != '\0' ? dev->uuid : NULL;
        d.hw_location = dev->bus_id[0] != '\0' ? dev->bus_id : NULL;
        d.memory_bytes = dev->memory_total;
        d.processing_units = dev->cores;
        d.numa_node = dev->numa_node;
        d.health = device_health(dev);
        d.health_reason = d.health != HANGAR_HEALTH_HEALTHY ? dev->health_reason : NULL;
        hangar_status st = sink(sink_context, &d);
        if (st != HANGAR_OK) {
            return fail(inst, st, "list_devices: the host's sink returned %d", (int)st);
        }
    }
    return HANGAR_OK;
}

static hangar_status cuda_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (sink == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_slots: sink is NULL");
    }
    hangar_accel_slot s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.name = CUDA_SLOT;
    s.type = HANGAR_SLOT_COUNT;
    s.allocation_mode = HANGAR_ALLOC_DISCRETE;
    s.quantum = 0;
    s.capacity = (int64_t)inst->device_count * HANGAR_AMOUNT_SCALE;
    s.exclusive = 1;
    s.display_name = "GPU";
    s.display_unit = "GPU";
    hangar_status st = sink(sink_context, &s);
    if (st != HANGAR_OK) {
        return fail(inst, st, "list_slots: the host's sink returned %d", (int)st);
    }
    return HANGAR_OK;
}

static hangar_status cuda_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (sink == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "list_device_slots: sink is NULL");
    }
    for (size_t i = 0; i < inst->device_count; i++) {
        hangar_accel_device_slot e;
        memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        e.slot_name = CUDA_SLOT;
        e.device_id = inst->devices[i].id;
        e.capacity = HANGAR_AMOUNT_SCALE;
        hangar_status st = sink(sink_context, &e);
        if (st != HANGAR_OK) {
            return fail(inst, st, "list_device_slots: the host's sink returned %d", (int)st);
        }
    }
    return HANGAR_OK;
}

static cuda_device *find_device(cuda_instance *inst, const char *id) {
    for (size_t i = 0; i < inst->device_count; i++) {
        if (strcmp(inst->devices[i].id, id) == 0) {
            return &inst->devices[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Allocations                                                               */
/* ------------------------------------------------------------------------ */

/* Checks the allocation header; the entries are then safe to index. */
static hangar_status check_allocation(cuda_instance *inst, const hangar_accel_allocation *a, const char *fn) {
    if (a == NULL || a->struct_size < sizeof(uint32_t)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation is NULL or its struct_size is too small", fn);
    }
    if (!HAS_FIELD(a, hangar_accel_allocation, entry_stride)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation struct_size %u is smaller than ABI 1.0's %zu", fn,
                    a->struct_size, sizeof(hangar_accel_allocation));
    }
    if (a->entry_count > 0 && a->entries == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation has %zu entries but entries is NULL", fn,
                    a->entry_count);
    }
    if (a->entry_count > 0 && a->entry_stride < sizeof(uint32_t)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "%s: allocation entry_stride %zu is too small", fn,
                    a->entry_stride);
    }
    return HANGAR_OK;
}

/* Reads one entry's fields, honouring its struct_size and the stride. */
static void read_entry(const hangar_accel_allocation *a, size_t i, const char **slot, const char **device,
                       int64_t *amount, int *ok) {
    const hangar_accel_alloc_entry *e = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, a->entries, a->entry_stride, i);
    uint32_t size = e->struct_size;
    *ok = size <= a->entry_stride;
    *slot = (*ok && HAS_FIELD(e, hangar_accel_alloc_entry, slot_name)) ? e->slot_name : NULL;
    *device = (*ok && HAS_FIELD(e, hangar_accel_alloc_entry, device_id)) ? e->device_id : NULL;
    *amount = (*ok && HAS_FIELD(e, hangar_accel_alloc_entry, amount)) ? e->amount : 0;
}

/* True if the host's edits builder has `field` (within its struct_size) and it is set. */
#define EDIT_PRESENT(e, field) \
    ((e)->struct_size >= offsetof(hangar_container_edits, field) + sizeof((e)->field) && (e)->field != NULL)

static int cmp_device_ptr(const void *a, const void *b) {
    const cuda_device *x = *(const cuda_device *const *)a;
    const cuda_device *y = *(const cuda_device *const *)b;
    return (x->index > y->index) - (x->index < y->index);
}

static hangar_status emit(cuda_instance *inst, hangar_status st, const char *what, const char *arg) {
    if (st != HANGAR_OK) {
        return fail(inst, st, "container_edits: the host refused %s \"%s\" (status %d)", what, arg, (int)st);
    }
    return HANGAR_OK;
}

static hangar_status cuda_container_edits(void *instance, const hangar_accel_allocation *allocation,
                                          const hangar_container_edits *edits) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    hangar_status st = check_allocation(inst, allocation, "container_edits");
    if (st != HANGAR_OK) {
        return st;
    }
    if (edits == NULL || edits->struct_size < sizeof(uint32_t)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: edits is NULL or its struct_size is too small");
    }
    if (!EDIT_PRESENT(edits, add_env) || !EDIT_PRESENT(edits, add_device_node) ||
        !EDIT_PRESENT(edits, add_cdi_device) || !EDIT_PRESENT(edits, add_resource_data)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT,
                    "container_edits: the edits builder lacks add_env, add_device_node, add_cdi_device or "
                    "add_resource_data");
    }

    size_t n = allocation->entry_count;
    if (n == 0) {
        return HANGAR_OK;
    }
    strbuf visible = {0}, global_ids = {0};
    cuda_device **chosen = calloc(n, sizeof *chosen);
    if (chosen == NULL) {
        return fail(inst, HANGAR_E_INSUFFICIENT, "container_edits: out of memory");
    }

    /* Validate every entry before emitting anything. */
    for (size_t i = 0; i < n; i++) {
        const char *slot, *device;
        int64_t amount;
        int ok;
        read_entry(allocation, i, &slot, &device, &amount, &ok);
        if (!ok) {
            st = fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: entry %zu has struct_size larger than entry_stride %zu",
                      i, allocation->entry_stride);
            goto out;
        }
        if (slot == NULL || strcmp(slot, CUDA_SLOT) != 0) {
            st = fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: entry %zu names slot \"%.200s\"; this plugin only provides \"%s\"",
                      i, slot != NULL ? slot : "(null)", CUDA_SLOT);
            goto out;
        }
        if (device == NULL) {
            st = fail(inst, HANGAR_E_INVALID_ARGUMENT, "container_edits: entry %zu has no device_id", i);
            goto out;
        }
        cuda_device *dev = find_device(inst, device);
        if (dev == NULL) {
            st = fail(inst, HANGAR_E_NOT_FOUND,
                      "container_edits: entry %zu names unknown device \"%.200s\" (this node has %zu visible GPU(s))", i,
                      device, inst->device_count);
            goto out;
        }
        if (amount != HANGAR_AMOUNT_SCALE) {
            st = fail(inst, HANGAR_E_BAD_ALLOCATION,
                      "container_edits: entry %zu asks for %lld of %s on device \"%s\"; only whole GPUs (amount %lld) can be "
                      "allocated",
                      i, (long long)amount, CUDA_SLOT, dev->id, (long long)HANGAR_AMOUNT_SCALE);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (chosen[j] == dev) {
                st = fail(inst, HANGAR_E_BAD_ALLOCATION, "container_edits: device \"%s\" appears in entries %zu and %zu",
                          dev->id, j, i);
                goto out;
            }
        }
        if (dev->lost || (!dev->has_minor && inst->injection == CUDA_INJECT_DEVICE_NODES)) {
            st = fail(inst, HANGAR_E_DEVICE_LOST, "container_edits: device \"%s\" is unhealthy: %s", dev->id,
                      dev->health_reason);
            goto out;
        }
        chosen[i] = dev;
    }

    /* Container-local GPU order is host order (as the driver enumerates them in the container). */
    qsort(chosen, n, sizeof *chosen, cmp_device_ptr);

    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            sb_puts(&visible, ",");
            sb_puts(&global_ids, ",");
        }
        sb_puts(&visible, chosen[i]->uuid[0] != '\0' ? chosen[i]->uuid : chosen[i]->id);
        sb_printf(&global_ids, "%zu:%u", i, chosen[i]->index);
    }
    if (visible.failed || global_ids.failed) {
        st = fail(inst, HANGAR_E_INSUFFICIENT, "container_edits: out of memory");
        goto out;
    }

    void *ctx = edits->context;
    if (inst->injection == CUDA_INJECT_CDI) {
        for (size_t i = 0; i < n; i++) {
            char name[160];
            snprintf(name, sizeof name, "%s=%s", CUDA_CDI_KIND, chosen[i]->uuid[0] != '\0' ? chosen[i]->uuid : chosen[i]->id);
            st = emit(inst, edits->add_cdi_device(ctx, name), "CDI device", name);
            if (st != HANGAR_OK) {
                goto out;
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            char path[64];
            snprintf(path, sizeof path, "/dev/nvidia%u", chosen[i]->minor);
            st = emit(inst, edits->add_device_node(ctx, path, NULL, "rwm"), "device node", path);
            if (st != HANGAR_OK) {
                goto out;
            }
        }
        static const char *const control[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"};
        for (size_t i = 0; i < sizeof control / sizeof control[0]; i++) {
            st = emit(inst, edits->add_device_node(ctx, control[i], NULL, "rwm"), "device node", control[i]);
            if (st != HANGAR_OK) {
                goto out;
            }
        }
    }
    st = emit(inst, edits->add_env(ctx, "NVIDIA_VISIBLE_DEVICES", visible.data), "NVIDIA_VISIBLE_DEVICES", visible.data);
    if (st != HANGAR_OK) {
        goto out;
    }
    st = emit(inst, edits->add_env(ctx, "NVIDIA_DRIVER_CAPABILITIES", "compute,utility"), "NVIDIA_DRIVER_CAPABILITIES",
              "compute,utility");
    if (st != HANGAR_OK) {
        goto out;
    }
    st = emit(inst, edits->add_resource_data(ctx, "CUDA_GLOBAL_DEVICE_IDS", global_ids.data), "CUDA_GLOBAL_DEVICE_IDS",
              global_ids.data);

out:
    free(visible.data);
    free(global_ids.data);
    free(chosen);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

/* Emits cuda_util and cuda_mem of one device; skips values NVML cannot give. */
static hangar_status measure_device(cuda_instance *inst, cuda_device *dev, const char *container_id,
                                    hangar_accel_measure_sink sink, void *sink_context) {
    if (dev->lost) {
        return HANGAR_OK;
    }
    hangar_accel_measure m;
    nvmlUtilization_t util;
    memset(&util, 0, sizeof util);
    nvmlReturn_t r = inst->nvml.get_utilization(dev->handle, &util);
    note_result(inst, dev, "nvmlDeviceGetUtilizationRates", r);
    if (r == NVML_SUCCESS) {
        memset(&m, 0, sizeof m);
        m.struct_size = sizeof m;
        m.key = "cuda_util";
        m.unit = HANGAR_UNIT_PERCENT;
        m.device_id = dev->id;
        m.container_id = container_id;
        m.current = (double)util.gpu;
        m.capacity = 100.0;
        hangar_status st = sink(sink_context, &m);
        if (st != HANGAR_OK) {
            return fail(inst, st, "measures: the host's sink returned %d", (int)st);
        }
    }
    if (dev->lost) {
        return HANGAR_OK;
    }
    nvmlMemory_t mem;
    memset(&mem, 0, sizeof mem);
    r = inst->nvml.get_memory(dev->handle, &mem);
    note_result(inst, dev, "nvmlDeviceGetMemoryInfo", r);
    if (r == NVML_SUCCESS) {
        memset(&m, 0, sizeof m);
        m.struct_size = sizeof m;
        m.key = "cuda_mem";
        m.unit = HANGAR_UNIT_BYTES;
        m.device_id = dev->id;
        m.container_id = container_id;
        m.current = (double)mem.used;
        m.capacity = (double)mem.total;
        hangar_status st = sink(sink_context, &m);
        if (st != HANGAR_OK) {
            return fail(inst, st, "measures: the host's sink returned %d", (int)st);
        }
    }
    return HANGAR_OK;
}

static hangar_status cuda_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (sink == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    }
    for (size_t i = 0; i < inst->device_count; i++) {
        hangar_status st = measure_device(inst, &inst->devices[i], NULL, sink, sink_context);
        if (st != HANGAR_OK) {
            return st;
        }
    }
    return HANGAR_OK;
}

static hangar_status cuda_gather_container_measures(void *instance, const hangar_accel_allocation *allocations,
                                                    size_t count, size_t stride, hangar_accel_measure_sink sink,
                                                    void *sink_context) {
    cuda_instance *inst = instance;
    if (inst == NULL) {
        return HANGAR_E_INVALID_ARGUMENT;
    }
    if (sink == NULL) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    }
    if (count == 0) {
        return HANGAR_OK;
    }
    if (allocations == NULL || stride < sizeof(uint32_t)) {
        return fail(inst, HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small",
                    stride);
    }
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = HANGAR_ARRAY_AT(hangar_accel_allocation, allocations, stride, a);
        if (alloc->struct_size > stride) {
            return fail(inst, HANGAR_E_INVALID_ARGUMENT,
                        "gather_container_measures: allocation %zu has struct_size %u larger than stride %zu", a,
                        alloc->struct_size, stride);
        }
        hangar_status st = check_allocation(inst, alloc, "gather_container_measures");
        if (st != HANGAR_OK) {
            return st;
        }
        const char *container_id =
            HAS_FIELD(alloc, hangar_accel_allocation, container_id) ? alloc->container_id : NULL;
        for (size_t i = 0; i < alloc->entry_count; i++) {
            const char *slot, *device;
            int64_t amount;
            int ok;
            read_entry(alloc, i, &slot, &device, &amount, &ok);
            if (!ok || slot == NULL || device == NULL || strcmp(slot, CUDA_SLOT) != 0) {
                continue;
            }
            cuda_device *dev = find_device(inst, device);
            if (dev == NULL) {
                continue;
            }
            st = measure_device(inst, dev, container_id, sink, sink_context);
            if (st != HANGAR_OK) {
                return st;
            }
        }
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry point                                                */
/* ------------------------------------------------------------------------ */

static const char cuda_config_schema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"properties\":{"
    "\"nvml_library\":{\"type\":\"string\","
    "\"description\":\"Name or path of the NVML library to dlopen.\","
    "\"default\":\"libnvidia-ml.so.1\"},"
    "\"sysfs_root\":{\"type\":\"string\","
    "\"description\":\"Where sysfs is mounted; a GPU's NUMA node is read from "
    "<sysfs_root>/bus/pci/devices/<pci bus id>/numa_node.\","
    "\"default\":\"/sys\"},"
    "\"device_mask\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"description\":\"GPUs to hide from Hangar, each named by NVML index (\\\"0\\\") or UUID (\\\"GPU-...\\\").\","
    "\"default\":[]},"
    "\"injection\":{\"type\":\"string\",\"enum\":[\"auto\",\"device-nodes\",\"cdi\"],"
    "\"description\":\"How containers get their GPUs: \\\"device-nodes\\\" (/dev/nvidia*), \\\"cdi\\\" "
    "(nvidia.com/gpu=<uuid>; needs a CDI-capable engine and a spec from nvidia-ctk cdi generate), or \\\"auto\\\" "
    "(cdi if a spec for nvidia.com/gpu exists in cdi_spec_dirs, else device-nodes).\","
    "\"default\":\"auto\"},"
    "\"cdi_spec_dirs\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"description\":\"Directories searched for CDI spec files (*.json, *.yaml) when injection is auto.\","
    "\"default\":[\"/etc/cdi\",\"/var/run/cdi\"]}"
    "}"
    "}";

static const char *const cuda_slot_names[] = {CUDA_SLOT, NULL};

static const hangar_accelerator_functions cuda_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = cuda_create,
    .destroy = cuda_destroy,
    .last_error = cuda_last_error,
    .get_info = cuda_get_info,
    .list_devices = cuda_list_devices,
    .list_slots = cuda_list_slots,
    .list_device_slots = cuda_list_device_slots,
    .container_edits = cuda_container_edits,
    .release = NULL,
    .gather_node_measures = cuda_gather_node_measures,
    .gather_container_measures = cuda_gather_container_measures,
};

static const hangar_plugin_descriptor cuda_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_ACCELERATOR,
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_CDI | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS |
                    HANGAR_ACCEL_CAP_HEALTH_WATCH,
    .name = CUDA_KEY,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "NVIDIA GPUs through NVML: whole-GPU cuda.device slots, device-node or CDI injection, utilisation and memory metrics",
    .license = "Apache-2.0",
    .config_schema = cuda_config_schema,
    .static_slot_names = cuda_slot_names,
    .functions = &cuda_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version) {
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR) {
        return NULL;
    }
    return &cuda_descriptor;
}
