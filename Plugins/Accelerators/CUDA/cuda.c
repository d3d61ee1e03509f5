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
 * Device facts beyond NVML's basics (ABI 1.2), each absent when its source is:
 *   firmware_version  the VBIOS version (nvmlDeviceGetVbiosVersion)
 *   link_speed        "PCIe <gen>.0 x<width>", the fastest link the GPU and its
 *                     slot allow (nvmlDeviceGetMaxPcieLinkGeneration/Width)
 *   cpu_affinity      <sysfs_root>/bus/pci/devices/<pci bus id>/local_cpulist
 *   numa_node         <sysfs_root>/bus/pci/devices/<pci bus id>/numa_node
 * NVML functions newer than the driver's library are looked up optionally: a
 * missing one leaves its fact or measure out and is never an error.
 *
 * Health: a GPU that NVML reports lost (at create() or in any later query) is
 * unhealthy; one without a minor number is unhealthy when GPUs are given as
 * device nodes (there is no node to give) and degraded under CDI.
 *
 * Measures of each GPU, for the node and for the container holding it:
 * cuda_util (percent), cuda_mem (bytes used of the total), and where NVML has
 * them cuda_temp (Celsius), cuda_power (watts; capacity the enforced power
 * limit) and cuda_energy (joules since the driver loaded, a counter).
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-cuda.so cuda.c -ldl
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <hangar/support.h>

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>

#include "cuda_nvml.h"

#define CUDA_KEY "cuda"
#define CUDA_SLOT "cuda.device"
#define CUDA_CDI_KIND "nvidia.com/gpu"

enum cuda_injection {
    CUDA_INJECT_AUTO = 0,
    CUDA_INJECT_DEVICE_NODES = 1,
    CUDA_INJECT_CDI = 2,
};

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
    /* Optional: NULL when the driver's library lacks them. */
    nvmlSystemGetCudaDriverVersion_fn get_cuda_version;
    nvmlDeviceGetNumGpuCores_fn get_cores;
    nvmlDeviceGetVbiosVersion_fn get_vbios;
    nvmlDeviceGetMaxPcieLinkGeneration_fn get_link_generation;
    nvmlDeviceGetMaxPcieLinkWidth_fn get_link_width;
    nvmlDeviceGetTemperature_fn get_temperature;
    nvmlDeviceGetPowerUsage_fn get_power;
    nvmlDeviceGetEnforcedPowerLimit_fn get_power_limit;
    nvmlDeviceGetTotalEnergyConsumption_fn get_energy;
} cuda_nvml;

/** What the plugin keeps of a GPU beyond its hs_device (same position as in the device table). */
typedef struct cuda_gpu {
    nvmlDevice_t handle;
    unsigned int minor;
    bool has_minor;
    /** NVML said NVML_ERROR_GPU_IS_LOST. */
    bool lost;
} cuda_gpu;

typedef struct cuda_instance {
    const hangar_host_services *host;
    cuda_nvml nvml;
    bool nvml_initialised;
    int injection; /* resolved: CUDA_INJECT_DEVICE_NODES or CUDA_INJECT_CDI */
    /** The visible GPUs in NVML index order: id is the index as decimal, index the NVML index. */
    hs_device_table devices;
    cuda_gpu gpus[HS_MAX_DEVICES];
    char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE]; /* "" if unknown */
    char runtime_version[32];                                    /* "" if unknown */
    hs_strbuf extra_info; /* a JSON object */
    char no_device_reason[640]; /* "" when there are devices */
} cuda_instance;

static const hs_slot_spec cuda_slots[] = {
    {.name = CUDA_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
     .display_name = "GPU", .display_unit = "GPU"},
};
#define CUDA_SLOT_COUNT (sizeof cuda_slots / sizeof cuda_slots[0])

static HS_PRINTF(3, 4) void host_log(const hangar_host_services *host, int32_t level, const char *fmt, ...)
{
    if (!HS_HAS_FIELD(hangar_host_services, log, host->struct_size) || host->log == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

/* ------------------------------------------------------------------------ */
/* Files: CDI specs and sysfs                                                */
/* ------------------------------------------------------------------------ */

/* Opens a regular file for reading without blocking on FIFOs; -1 otherwise. */
static int open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* True if the regular file at `path` contains `needle` (streamed, any size). */
static bool file_contains(const char *path, const char *needle)
{
    int fd = open_regular(path);
    if (fd < 0)
        return false;
    size_t m = strlen(needle);
    char buf[65536 + 64];
    size_t keep = 0; /* bytes carried over from the previous chunk */
    bool found = false;
    for (;;) {
        ssize_t got = read(fd, buf + keep, sizeof buf - 1 - keep);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t len = keep + (size_t)got;
        for (size_t i = 0; i + m <= len && !found; i++)
            found = buf[i] == needle[0] && memcmp(buf + i, needle, m) == 0;
        if (found)
            break;
        keep = len < m - 1 ? len : m - 1;
        memmove(buf, buf + len - keep, keep);
    }
    close(fd);
    return found;
}

/* The first *.json or *.yaml file in cdi_spec_dirs that mentions the CDI kind, into `out` ("" if none). */
static hangar_status find_cdi_spec(const hs_create *c, char *out, size_t out_len)
{
    bool found = false;
    int64_t dirs = c->host->config_count(c->host->host_context, "cdi_spec_dirs");
    for (int64_t d = 0; d < dirs && !found; d++) {
        char key[48], dir_path[PATH_MAX];
        snprintf(key, sizeof key, "cdi_spec_dirs.%" PRId64, d);
        hangar_status st = hs_cfg_string(c, key, dir_path, sizeof dir_path);
        if (st != HANGAR_OK)
            return st;
        DIR *dir = opendir(dir_path);
        for (struct dirent *e; dir != NULL && !found && (e = readdir(dir)) != NULL;)
            found = (has_suffix(e->d_name, ".json") || has_suffix(e->d_name, ".yaml")) &&
                    hs_pathf(out, out_len, "%s/%s", dir_path, e->d_name) && file_contains(out, CUDA_CDI_KIND);
        if (dir != NULL)
            closedir(dir);
    }
    if (!found)
        out[0] = '\0';
    return HANGAR_OK;
}

/* NUMA node and nearest CPUs of the GPU's PCI device (d->hw_location) from sysfs; unknown when absent or malformed. */
static void read_pci_locality(const cuda_instance *inst, const char *sysfs_root, hs_device *d)
{
    int64_t numa = hs_read_i64f(-1, "%s/bus/pci/devices/%s/numa_node", sysfs_root, d->hw_location);
    d->numa_node = numa >= -1 && numa <= INT32_MAX ? (int32_t)numa : -1;
    hs_read_textf(d->cpu_affinity, sizeof d->cpu_affinity, "%s/bus/pci/devices/%s/local_cpulist", sysfs_root, d->hw_location);
    if (d->cpu_affinity[0] != '\0' && hs_cpulist_problem(d->cpu_affinity) != NULL) {
        host_log(inst->host, HANGAR_LOG_WARNING, "GPU %s: ignoring local_cpulist \"%.40s\" of PCI device %s: not a cpulist", d->id,
                 d->cpu_affinity, d->hw_location);
        d->cpu_affinity[0] = '\0';
    }
}

/*
 * NVML's "00000000:3B:00.0" -> sysfs's "0000:3b:00.0". Falls back to the
 * numeric fields when the string does not parse.
 */
static void normalise_bus_id(const nvmlPciInfo_t *pci, char *out, size_t out_len)
{
    char bus_id[sizeof pci->busId + 1];
    memcpy(bus_id, pci->busId, sizeof pci->busId);
    bus_id[sizeof pci->busId] = '\0';
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    char tail = 0;
    if (sscanf(bus_id, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) == 4)
        snprintf(out, out_len, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
    else
        snprintf(out, out_len, "%04x:%02x:%02x.0", pci->domain, pci->bus, pci->device);
}

/* ------------------------------------------------------------------------ */
/* NVML                                                                      */
/* ------------------------------------------------------------------------ */

static const char *nvml_error(const cuda_instance *inst, nvmlReturn_t r)
{
    const char *s = inst->nvml.error_string != NULL ? inst->nvml.error_string(r) : NULL;
    return s != NULL ? s : "unknown NVML error";
}

/* Looks up `sym` into inst->nvml.field (memcpy: no void* to function pointer cast); notes the first missing required one. */
#define NVML_LOAD(inst, lib, field, sym, required)                                      \
    do {                                                                                \
        (void)dlerror();                                                                \
        void *p_ = dlsym((lib), #sym);                                                  \
        static_assert(sizeof p_ == sizeof (inst)->nvml.field, "function pointer size"); \
        memcpy(&(inst)->nvml.field, &p_, sizeof p_);                                    \
        if (p_ == NULL && (required) && missing == NULL)                                \
            missing = #sym;                                                             \
    } while (0)

/* Loads and initialises NVML; on failure says why in inst->no_device_reason. */
static void nvml_open(cuda_instance *inst, const char *library)
{
    char *reason = inst->no_device_reason;
    size_t len = sizeof inst->no_device_reason;
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *e = dlerror();
        snprintf(reason, len, "%.200s not found: %s; install the NVIDIA driver (or set nvml_library to the path of libnvidia-ml.so.1)",
                 library, e != NULL ? e : "dlopen failed");
        return;
    }
    /* The library stays mapped for the life of the process: NVML is not safe to dlclose. */
    const char *missing = NULL;
    NVML_LOAD(inst, lib, init, nvmlInit_v2, true);
    NVML_LOAD(inst, lib, shutdown, nvmlShutdown, true);
    NVML_LOAD(inst, lib, error_string, nvmlErrorString, true);
    NVML_LOAD(inst, lib, get_count, nvmlDeviceGetCount_v2, true);
    NVML_LOAD(inst, lib, get_handle, nvmlDeviceGetHandleByIndex_v2, true);
    NVML_LOAD(inst, lib, get_name, nvmlDeviceGetName, true);
    NVML_LOAD(inst, lib, get_uuid, nvmlDeviceGetUUID, true);
    NVML_LOAD(inst, lib, get_memory, nvmlDeviceGetMemoryInfo, true);
    NVML_LOAD(inst, lib, get_pci, nvmlDeviceGetPciInfo_v3, true);
    NVML_LOAD(inst, lib, get_minor, nvmlDeviceGetMinorNumber, true);
    NVML_LOAD(inst, lib, get_utilization, nvmlDeviceGetUtilizationRates, true);
    NVML_LOAD(inst, lib, get_driver_version, nvmlSystemGetDriverVersion, true);
    NVML_LOAD(inst, lib, get_cuda_version, nvmlSystemGetCudaDriverVersion, false);
    NVML_LOAD(inst, lib, get_cores, nvmlDeviceGetNumGpuCores, false);
    NVML_LOAD(inst, lib, get_vbios, nvmlDeviceGetVbiosVersion, false);
    NVML_LOAD(inst, lib, get_link_generation, nvmlDeviceGetMaxPcieLinkGeneration, false);
    NVML_LOAD(inst, lib, get_link_width, nvmlDeviceGetMaxPcieLinkWidth, false);
    NVML_LOAD(inst, lib, get_temperature, nvmlDeviceGetTemperature, false);
    NVML_LOAD(inst, lib, get_power, nvmlDeviceGetPowerUsage, false);
    NVML_LOAD(inst, lib, get_power_limit, nvmlDeviceGetEnforcedPowerLimit, false);
    NVML_LOAD(inst, lib, get_energy, nvmlDeviceGetTotalEnergyConsumption, false);
    if (missing != NULL) {
        snprintf(reason, len, "%.200s lacks %s; the NVIDIA driver is too old or the library is not NVML", library, missing);
        memset(&inst->nvml, 0, sizeof inst->nvml);
        return;
    }
    nvmlReturn_t r = inst->nvml.init();
    if (r != NVML_SUCCESS) {
        snprintf(reason, len, "nvmlInit_v2 failed: %.200s (NVML error %d); check that the NVIDIA kernel driver is loaded", nvml_error(inst, r), r);
        return;
    }
    inst->nvml_initialised = true;
}

/*
 * Notes what a query of GPU `k` answered: NVML_ERROR_GPU_IS_LOST makes it
 * unhealthy for good (for HANGAR_ACCEL_CAP_HEALTH_WATCH). True on success.
 */
static bool note_result(cuda_instance *inst, size_t k, const char *what, nvmlReturn_t r)
{
    hs_device *d = &inst->devices.items[k];
    if (r == NVML_ERROR_GPU_IS_LOST && !inst->gpus[k].lost) {
        inst->gpus[k].lost = true;
        d->health = HANGAR_HEALTH_UNHEALTHY;
        snprintf(d->health_reason, sizeof d->health_reason, "%s: %.100s", what, nvml_error(inst, r));
        host_log(inst->host, HANGAR_LOG_ERROR, "GPU %s (%s) is lost: %s", d->id, d->uuid, d->health_reason);
    }
    return r == NVML_SUCCESS;
}

/* Fills GPU `k` of the table from NVML index `index`; false if the GPU cannot be used at all. */
static bool discover_device(cuda_instance *inst, const char *sysfs_root, unsigned int index, size_t k)
{
    const cuda_nvml *n = &inst->nvml;
    hs_device *d = &inst->devices.items[k];
    cuda_gpu *g = &inst->gpus[k];
    memset(g, 0, sizeof *g);
    d->index = index;
    snprintf(d->id, sizeof d->id, "%u", index);

    nvmlReturn_t r = n->get_handle(index, &g->handle);
    if (r != NVML_SUCCESS) {
        host_log(inst->host, HANGAR_LOG_WARNING, "skipping GPU %u: nvmlDeviceGetHandleByIndex_v2 failed: %s", index, nvml_error(inst, r));
        return false;
    }
    nvmlDevice_t h = g->handle;
    r = n->get_name(h, d->model, sizeof d->model);
    d->model[sizeof d->model - 1] = '\0';
    if (r != NVML_SUCCESS || d->model[0] == '\0')
        snprintf(d->model, sizeof d->model, "NVIDIA GPU");
    r = n->get_uuid(h, d->uuid, sizeof d->uuid);
    d->uuid[sizeof d->uuid - 1] = '\0';
    if (r != NVML_SUCCESS) {
        d->uuid[0] = '\0';
        host_log(inst->host, HANGAR_LOG_WARNING, "GPU %u: nvmlDeviceGetUUID failed: %s", index, nvml_error(inst, r));
    }
    nvmlMemory_t mem;
    memset(&mem, 0, sizeof mem);
    if (note_result(inst, k, "nvmlDeviceGetMemoryInfo", n->get_memory(h, &mem)))
        d->memory_bytes = mem.total;
    nvmlPciInfo_t pci;
    memset(&pci, 0, sizeof pci);
    if (n->get_pci(h, &pci) == NVML_SUCCESS) {
        normalise_bus_id(&pci, d->hw_location, sizeof d->hw_location);
        read_pci_locality(inst, sysfs_root, d);
    }
    r = n->get_minor(h, &g->minor);
    g->has_minor = note_result(inst, k, "nvmlDeviceGetMinorNumber", r);
    if (!g->has_minor && !g->lost) {
        d->health = inst->injection == CUDA_INJECT_DEVICE_NODES ? HANGAR_HEALTH_UNHEALTHY : HANGAR_HEALTH_DEGRADED;
        snprintf(d->health_reason, sizeof d->health_reason, "nvmlDeviceGetMinorNumber failed: %.120s", nvml_error(inst, r));
    }
    unsigned int cores = 0, generation = 0, width = 0;
    if (n->get_cores != NULL && n->get_cores(h, &cores) == NVML_SUCCESS)
        d->processing_units = cores;
    if (n->get_vbios == NULL || n->get_vbios(h, d->firmware_version, sizeof d->firmware_version) != NVML_SUCCESS)
        d->firmware_version[0] = '\0';
    d->firmware_version[sizeof d->firmware_version - 1] = '\0';
    if (n->get_link_generation != NULL && n->get_link_width != NULL && n->get_link_generation(h, &generation) == NVML_SUCCESS &&
        n->get_link_width(h, &width) == NVML_SUCCESS && generation > 0 && width > 0)
        snprintf(d->link_speed, sizeof d->link_speed, "PCIe %u.0 x%u", generation, width);
    return true;
}

/* device_mask entries (NVML index or UUID), each with whether it named a GPU. */
typedef struct cuda_mask {
    size_t count;
    struct {
        char name[128];
        bool matched;
    } *entries;
} cuda_mask;

static hangar_status read_mask(const hs_create *c, cuda_mask *mask)
{
    int64_t count = c->host->config_count(c->host->host_context, "device_mask");
    mask->count = 0;
    mask->entries = count > 0 ? calloc((size_t)count, sizeof *mask->entries) : NULL;
    if (count > 0 && mask->entries == NULL)
        return hs_create_fail(c, HANGAR_E_INSUFFICIENT, "out of memory reading device_mask");
    for (; (int64_t)mask->count < count; mask->count++) {
        char key[48];
        snprintf(key, sizeof key, "device_mask.%zu", mask->count);
        hangar_status st = hs_cfg_string(c, key, mask->entries[mask->count].name, sizeof mask->entries[mask->count].name);
        if (st != HANGAR_OK)
            return st;
    }
    return HANGAR_OK;
}

/* True if `d` is named by the device mask (by index or UUID); marks the entries that name it. */
static bool masked(cuda_mask *mask, const hs_device *d)
{
    bool hit = false;
    for (size_t i = 0; i < mask->count; i++) {
        const char *m = mask->entries[i].name;
        if (strcmp(m, d->id) == 0 || (d->uuid[0] != '\0' && strcasecmp(m, d->uuid) == 0)) {
            mask->entries[i].matched = true;
            hit = true;
        }
    }
    return hit;
}

static hangar_status discover(const hs_create *c, cuda_instance *inst, const char *sysfs_root)
{
    unsigned int count = 0;
    nvmlReturn_t r = inst->nvml.get_count(&count);
    char *reason = inst->no_device_reason;
    size_t reason_len = sizeof inst->no_device_reason;
    if (r != NVML_SUCCESS) {
        snprintf(reason, reason_len, "nvmlDeviceGetCount_v2 failed: %.200s", nvml_error(inst, r));
        return HANGAR_OK;
    }
    if (count == 0) {
        snprintf(reason, reason_len, "NVML reports no GPUs on this node");
        return HANGAR_OK;
    }
    cuda_mask mask;
    hangar_status st = read_mask(c, &mask);
    size_t hidden = 0;
    for (unsigned int i = 0; st == HANGAR_OK && i < count; i++) {
        hs_device *d = hs_devices_add(&inst->devices);
        if (d == NULL) {
            host_log(inst->host, HANGAR_LOG_WARNING, "ignoring GPUs %u to %u: this plugin handles at most %d", i, count - 1, HS_MAX_DEVICES);
            break;
        }
        bool keep = discover_device(inst, sysfs_root, i, inst->devices.count - 1);
        if (keep && masked(&mask, d)) {
            host_log(inst->host, HANGAR_LOG_INFO, "GPU %s (%s) is hidden by device_mask", d->id, d->uuid);
            hidden++;
            keep = false;
        }
        if (!keep)
            inst->devices.count--; /* the next GPU takes its place */
    }
    for (size_t m = 0; st == HANGAR_OK && m < mask.count; m++)
        if (!mask.entries[m].matched)
            host_log(inst->host, HANGAR_LOG_NOTICE, "device_mask entry \"%s\" matches no GPU on this node", mask.entries[m].name);
    free(mask.entries);
    if (st == HANGAR_OK && inst->devices.count == 0) {
        if (hidden == count)
            snprintf(reason, reason_len, "all %u GPUs are hidden by device_mask", count);
        else if (hidden > 0)
            snprintf(reason, reason_len, "%zu of %u GPUs are hidden by device_mask and the rest could not be queried", hidden, count);
        else
            snprintf(reason, reason_len, "none of the %u GPUs NVML reports could be queried (see the log)", count);
    }
    return st;
}

/* Appends `s` as a JSON string, or null when empty. */
static void json_string_or_null(hs_strbuf *b, const char *s)
{
    if (s[0] == '\0') {
        hs_strbuf_addf(b, "null");
        return;
    }
    hs_strbuf_addf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        hs_strbuf_addf(b, *p == '"' || *p == '\\' ? "\\%c" : *p < 0x20 ? "\\u%04x" : "%c", *p);
    hs_strbuf_addf(b, "\"");
}

/* Driver and CUDA versions and Backend.AI's extra-info JSON. */
static void collect_info(cuda_instance *inst)
{
    if (inst->nvml_initialised) {
        if (inst->nvml.get_driver_version(inst->driver_version, sizeof inst->driver_version) != NVML_SUCCESS)
            inst->driver_version[0] = '\0';
        inst->driver_version[sizeof inst->driver_version - 1] = '\0';
        int cuda = 0;
        if (inst->nvml.get_cuda_version != NULL && inst->nvml.get_cuda_version(&cuda) == NVML_SUCCESS && cuda > 0)
            snprintf(inst->runtime_version, sizeof inst->runtime_version, "%d.%d", cuda / 1000, (cuda % 1000) / 10);
    }
    hs_strbuf *json = &inst->extra_info; /* short: both versions come from buffers of at most 80 bytes */
    hs_strbuf_addf(json, "{\"cuda_support\":%s,\"nvidia_version\":", inst->nvml_initialised ? "true" : "false");
    json_string_or_null(json, inst->driver_version);
    hs_strbuf_addf(json, ",\"cuda_version\":");
    json_string_or_null(json, inst->runtime_version);
    hs_strbuf_addf(json, "}");
}

/* ------------------------------------------------------------------------ */
/* Instance lifecycle                                                        */
/* ------------------------------------------------------------------------ */

static void cuda_destroy(void *instance)
{
    cuda_instance *inst = instance;
    if (inst == NULL)
        return;
    if (inst->nvml_initialised && inst->nvml.shutdown != NULL)
        inst->nvml.shutdown();
    free(inst);
}

/* Injection mode, NVML and discovery (config keys all present: the schema gives each a default). */
static hangar_status cuda_configure(const hs_create *c, cuda_instance *inst)
{
    char library[PATH_MAX], sysfs_root[PATH_MAX], injection[16], spec[PATH_MAX] = "";
    hangar_status st;
    if ((st = hs_cfg_string(c, "nvml_library", library, sizeof library)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "sysfs_root", sysfs_root, sizeof sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "injection", injection, sizeof injection)) != HANGAR_OK)
        return st;
    int wanted = strcmp(injection, "cdi") == 0 ? CUDA_INJECT_CDI : strcmp(injection, "device-nodes") == 0 ? CUDA_INJECT_DEVICE_NODES : CUDA_INJECT_AUTO;
    if (wanted != CUDA_INJECT_DEVICE_NODES && (st = find_cdi_spec(c, spec, sizeof spec)) != HANGAR_OK)
        return st;
    if (wanted == CUDA_INJECT_AUTO) {
        inst->injection = spec[0] != '\0' ? CUDA_INJECT_CDI : CUDA_INJECT_DEVICE_NODES;
        if (spec[0] != '\0')
            host_log(c->host, HANGAR_LOG_INFO, "injecting GPUs as CDI devices (%s found in %s)", CUDA_CDI_KIND, spec);
        else
            host_log(c->host, HANGAR_LOG_INFO, "injecting GPUs as device nodes (no CDI spec for %s)", CUDA_CDI_KIND);
    } else {
        inst->injection = wanted;
        if (wanted == CUDA_INJECT_CDI && spec[0] == '\0')
            host_log(c->host, HANGAR_LOG_WARNING,
                     "injection is \"cdi\" but no CDI spec for %s was found in cdi_spec_dirs; generate one with `nvidia-ctk cdi generate`",
                     CUDA_CDI_KIND);
    }

    nvml_open(inst, library);
    if (inst->nvml_initialised && (st = discover(c, inst, sysfs_root)) != HANGAR_OK)
        return st;
    if (!inst->nvml_initialised)
        host_log(c->host, HANGAR_LOG_INFO, "no GPUs: %s", inst->no_device_reason);
    collect_info(inst);
    host_log(c->host, HANGAR_LOG_INFO, "%zu GPU(s), driver %s, CUDA %s", inst->devices.count,
             inst->driver_version[0] != '\0' ? inst->driver_version : "unknown",
             inst->runtime_version[0] != '\0' ? inst->runtime_version : "unknown");
    return HANGAR_OK;
}

static hangar_status cuda_create(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    cuda_instance *inst = NULL;
    hangar_status st = hs_create_begin(&c, CUDA_KEY, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (inst = calloc(1, sizeof *inst)) == NULL)
        st = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (st == HANGAR_OK) {
        inst->host = host;
        st = cuda_configure(&c, inst);
    }
    if (st == HANGAR_OK)
        *out_instance = inst;
    else
        cuda_destroy(inst);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

static hangar_status cuda_get_info(void *instance, hangar_accel_info *info)
{
    const cuda_instance *inst = instance;
    return hs_fill_info(info, CUDA_KEY, inst->driver_version, inst->runtime_version, inst->extra_info.text, inst->no_device_reason);
}

static hangar_status cuda_list_devices(void *instance, hangar_accel_device_sink sink, void *sink_context)
{
    cuda_instance *inst = instance;
    /* Re-checks that NVML still reaches each GPU (HANGAR_ACCEL_CAP_HEALTH_WATCH). */
    for (size_t k = 0; k < inst->devices.count; k++) {
        nvmlMemory_t mem;
        if (!inst->gpus[k].lost)
            note_result(inst, k, "nvmlDeviceGetMemoryInfo", inst->nvml.get_memory(inst->gpus[k].handle, &mem));
    }
    return hs_list_devices(&inst->devices, sink, sink_context);
}

static hangar_status cuda_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    return hs_list_slots(cuda_slots, CUDA_SLOT_COUNT, &((const cuda_instance *)instance)->devices, sink, sink_context);
}

static hangar_status cuda_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    return hs_list_device_slots(cuda_slots, CUDA_SLOT_COUNT, &((const cuda_instance *)instance)->devices, sink, sink_context);
}

/* Container-local GPU order is NVML order (as the driver enumerates them in the container): hs_select sorts by it. */
static hangar_status cuda_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    const cuda_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(allocation, edits);
    if (st != HANGAR_OK || (st = hs_select(allocation, &inst->devices, cuda_slots, CUDA_SLOT_COUNT, &sel, "container_edits")) != HANGAR_OK)
        return st;
    if (sel.count == 0)
        return HANGAR_OK;

    hs_strbuf visible = {.len = 0}, global_ids;
    for (size_t k = 0; k < sel.count; k++) {
        const hs_device *d = &inst->devices.items[sel.picks[k].device];
        hs_strbuf_add_item(&visible, ",", d->uuid[0] != '\0' ? d->uuid : d->id);
    }
    if (!hs_selection_list(&sel, &inst->devices, HS_LIST_PAIRS, &global_ids) || visible.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the lists of %zu GPUs do not fit in %zu characters", sel.count, sizeof visible.text - 1);

    for (size_t k = 0; k < sel.count; k++) {
        const hs_device *d = &inst->devices.items[sel.picks[k].device];
        char name[160];
        if (inst->injection == CUDA_INJECT_CDI) {
            snprintf(name, sizeof name, "%s=%s", CUDA_CDI_KIND, d->uuid[0] != '\0' ? d->uuid : d->id);
            HS_EDIT(edits, add_cdi_device, name);
        } else {
            snprintf(name, sizeof name, "/dev/nvidia%u", inst->gpus[sel.picks[k].device].minor);
            HS_EDIT(edits, add_device_node, name, NULL, "rwm");
        }
    }
    if (inst->injection != CUDA_INJECT_CDI) {
        static const char *const control[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"};
        for (size_t i = 0; i < sizeof control / sizeof control[0]; i++)
            HS_EDIT(edits, add_device_node, control[i], NULL, "rwm");
    }
    HS_EDIT(edits, add_env, "NVIDIA_VISIBLE_DEVICES", visible.text);
    HS_EDIT(edits, add_env, "NVIDIA_DRIVER_CAPABILITIES", "compute,utility");
    HS_EDIT(edits, add_resource_data, "CUDA_GLOBAL_DEVICE_IDS", global_ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

/* Emits the measures of GPU `k` that NVML can give; a query that fails skips its measure. */
static hangar_status measure_device(cuda_instance *inst, size_t k, const char *container_id, hangar_accel_measure_sink sink, void *sink_context)
{
    const cuda_nvml *n = &inst->nvml;
    nvmlDevice_t h = inst->gpus[k].handle;
    const char *id = inst->devices.items[k].id;
    if (inst->gpus[k].lost)
        return HANGAR_OK;
    hangar_status st = HANGAR_OK;
    nvmlUtilization_t util;
    nvmlMemory_t mem;
    unsigned int temperature = 0, power = 0, limit = 0;
    unsigned long long energy = 0;
    if (note_result(inst, k, "nvmlDeviceGetUtilizationRates", n->get_utilization(h, &util)))
        st = hs_measure(sink, sink_context, "cuda_util", HANGAR_UNIT_PERCENT, HANGAR_MEASURE_GAUGE, id, container_id, util.gpu, 100.0);
    if (st == HANGAR_OK && note_result(inst, k, "nvmlDeviceGetMemoryInfo", n->get_memory(h, &mem)))
        st = hs_measure(sink, sink_context, "cuda_mem", HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, (double)mem.used,
                        (double)mem.total);
    if (st == HANGAR_OK && n->get_temperature != NULL &&
        note_result(inst, k, "nvmlDeviceGetTemperature", n->get_temperature(h, NVML_TEMPERATURE_GPU, &temperature)))
        st = hs_measure(sink, sink_context, "cuda_temp", HANGAR_UNIT_CELSIUS, HANGAR_MEASURE_GAUGE, id, container_id, temperature, 0);
    if (st == HANGAR_OK && n->get_power != NULL && note_result(inst, k, "nvmlDeviceGetPowerUsage", n->get_power(h, &power))) {
        if (n->get_power_limit == NULL || n->get_power_limit(h, &limit) != NVML_SUCCESS)
            limit = 0;
        st = hs_measure(sink, sink_context, "cuda_power", HANGAR_UNIT_WATTS, HANGAR_MEASURE_GAUGE, id, container_id, power / 1000.0, limit / 1000.0);
    }
    if (st == HANGAR_OK && n->get_energy != NULL && note_result(inst, k, "nvmlDeviceGetTotalEnergyConsumption", n->get_energy(h, &energy)))
        st = hs_measure(sink, sink_context, "cuda_energy", HANGAR_UNIT_JOULES, HANGAR_MEASURE_COUNTER, id, container_id, (double)energy / 1000.0, 0);
    return st;
}

static hangar_status cuda_gather_node_measures(void *instance, hangar_accel_measure_sink sink, void *sink_context)
{
    cuda_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_node_measures: sink is NULL");
    hangar_status st = HANGAR_OK;
    for (size_t k = 0; st == HANGAR_OK && k < inst->devices.count; k++)
        st = measure_device(inst, k, NULL, sink, sink_context);
    return st;
}

static hangar_status cuda_gather_container_measures(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                                    hangar_accel_measure_sink sink, void *sink_context)
{
    cuda_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: sink is NULL");
    if (count > 0 && (allocations == NULL || stride < sizeof(hangar_accel_allocation)))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "gather_container_measures: allocations is NULL or stride %zu is too small", stride);
    for (size_t a = 0; a < count; a++) {
        const hangar_accel_allocation *alloc = hs_allocation_at(allocations, stride, a);
        hangar_status st = hs_check_allocation_shape(alloc, "gather_container_measures");
        for (size_t i = 0; st == HANGAR_OK && i < alloc->entry_count; i++) {
            const hangar_accel_alloc_entry *e = hs_entry(alloc, i);
            ptrdiff_t k = e->slot_name != NULL && strcmp(e->slot_name, CUDA_SLOT) == 0 ? hs_devices_find(&inst->devices, e->device_id) : -1;
            if (k >= 0) /* best effort: entries that match no GPU are skipped */
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

static const char cuda_config_schema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"properties\":{"
    "\"nvml_library\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Name or path of the NVML library to dlopen.\","
    "\"default\":\"libnvidia-ml.so.1\"},"
    "\"sysfs_root\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Where sysfs is mounted; a GPU's NUMA node and nearest CPUs are read from "
    "<sysfs_root>/bus/pci/devices/<pci bus id>/numa_node and local_cpulist.\","
    "\"default\":\"/sys\"},"
    "\"device_mask\":{\"type\":\"array\",\"maxItems\":4096,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":127},"
    "\"description\":\"GPUs to hide from Hangar, each named by NVML index (\\\"0\\\") or UUID (\\\"GPU-...\\\").\","
    "\"default\":[]},"
    "\"injection\":{\"type\":\"string\",\"enum\":[\"auto\",\"device-nodes\",\"cdi\"],"
    "\"description\":\"How containers get their GPUs: \\\"device-nodes\\\" (/dev/nvidia*), \\\"cdi\\\" "
    "(nvidia.com/gpu=<uuid>; needs a CDI-capable engine and a spec from nvidia-ctk cdi generate), or \\\"auto\\\" "
    "(cdi if a spec for nvidia.com/gpu exists in cdi_spec_dirs, else device-nodes).\","
    "\"default\":\"auto\"},"
    "\"cdi_spec_dirs\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1},"
    "\"description\":\"Directories searched for CDI spec files (*.json, *.yaml) when injection is auto.\","
    "\"default\":[\"/etc/cdi\",\"/var/run/cdi\"]}"
    "}"
    "}";

static const char *const cuda_slot_names[] = {CUDA_SLOT, NULL};

static const hangar_accelerator_functions cuda_functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = cuda_create,
    .destroy = cuda_destroy,
    .last_error = hs_last_error,
    .get_info = cuda_get_info,
    .list_devices = cuda_list_devices,
    .list_slots = cuda_list_slots,
    .list_device_slots = cuda_list_device_slots,
    .container_edits = cuda_container_edits,
    .gather_node_measures = cuda_gather_node_measures,
    .gather_container_measures = cuda_gather_container_measures,
};

static const hangar_plugin_descriptor cuda_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR),
    .thread_safety = 0,
    .capabilities = HANGAR_ACCEL_CAP_CDI | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS | HANGAR_ACCEL_CAP_HEALTH_WATCH,
    .name = CUDA_KEY,
    .vendor = "Hangar",
    .version = "1.1.0",
    .description = "NVIDIA GPUs through NVML: whole-GPU cuda.device slots, device-node or CDI injection, utilisation, memory, "
                   "temperature, power and energy metrics",
    .license = "Apache-2.0",
    .config_schema = cuda_config_schema,
    .static_slot_names = cuda_slot_names,
    .functions = &cuda_functions,
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(cuda_descriptor, 2)
