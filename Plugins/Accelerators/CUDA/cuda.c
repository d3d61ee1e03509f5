/*
 * Hangar accelerator plugin for NVIDIA GPUs ("cuda").
 *
 * Discovers GPUs once, at create(), through NVML (libnvidia-ml.so.1, loaded
 * with dlopen so that the plugin loads on nodes without the NVIDIA driver),
 * offers the slot "cuda.device" (whole GPUs) and one slot per MIG profile in
 * use (below), and tells the agent how to give a container its GPUs: either as
 * device nodes (/dev/nvidia<minor> plus the control nodes) or as CDI devices
 * nvidia.com/gpu=<uuid>, always together with NVIDIA_VISIBLE_DEVICES and
 * CUDA_GLOBAL_DEVICE_IDS ("<container index>:<device id>" pairs).
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
 * Multi-Instance GPU: a GPU whose current MIG mode is enabled
 * (nvmlDeviceGetMigMode) is listed, healthy, but offers nothing itself; each
 * of its MIG devices (compute instances, nvmlDeviceGetMigDeviceHandleByIndex)
 * is listed after it as a device of its own:
 *   device_id         "<gpu id>/gi<GPU instance id>/ci<compute instance id>",
 *                     e.g. "0/gi1/ci0": the ids NVML and nvidia-smi use, valid
 *                     until the instance is destroyed, so stable across agent
 *                     restarts (MIG device indices are not: they are only the
 *                     enumeration order); "<gpu id>/mig<index>" if NVML cannot
 *                     say the instance ids
 *   parent_device_id  the GPU's id; numa_node, cpu_affinity and hw_location
 *                     are the GPU's
 *   uuid, model       the MIG device's ("MIG-...", "NVIDIA A100-SXM4-40GB MIG
 *                     3g.20gb"); memory_bytes the instance's memory
 *   slot              one unit of the unique, exclusive slot
 *                     "cuda.mig-<profile>", e.g. cuda.mig-3g.20gb, the profile
 *                     taken from the MIG device name (the text after " MIG "),
 *                     else from its GPU instance's profile
 *                     (nvmlDeviceGetGpuInstanceProfileInfoV, privileged)
 * Profiles depend on the hardware, so the descriptor declares no static slot
 * names. A container gets either cuda.device or the instances of one MIG
 * slot, never a mix (Backend.AI's exclusive_slot_types). MIG instances are
 * made by the operator (nvidia-smi mig, mig-parted) before the agent starts;
 * the plugin does not create or destroy them.
 *
 * What a container gets for MIG devices: NVIDIA_VISIBLE_DEVICES=MIG-<uuid>
 * and, as device nodes, the parent GPU's /dev/nvidia<minor> and the two
 * capability nodes of the instance, /dev/nvidia-caps/nvidia-cap<N> for N the
 * DeviceFileMinor in <proc_root>/driver/nvidia/capabilities/gpu<minor>/mig/
 * gi<G>/access and .../gi<G>/ci<C>/access (NVIDIA's MIG user guide, "Device
 * Nodes and Capabilities"); under CDI nvidia.com/gpu=MIG-<uuid>.
 *
 * Health: a GPU that NVML reports lost (at create() or in any later query) is
 * unhealthy, and so are its MIG devices; one without a minor number is
 * unhealthy when GPUs are given as device nodes (there is no node to give) and
 * degraded under CDI, and so is a MIG device whose capability minors cannot
 * be read. A MIG device whose profile cannot be named is degraded and offered
 * in no slot.
 *
 * Measures of each GPU, for the node and for the container holding it:
 * cuda_util (percent), cuda_mem (bytes used of the total), and where NVML has
 * them cuda_temp (Celsius), cuda_power (watts; capacity the enforced power
 * limit) and cuda_energy (joules since the driver loaded, a counter). NVML
 * has no utilisation for GPUs in MIG mode; of a MIG device only cuda_mem (its
 * own memory) is measured (temperature and power belong to the whole GPU).
 *
 * Config keys (defaults in the schema): nvml_library, sysfs_root, dev_root
 * (host side of the device nodes), proc_root (MIG capability files),
 * device_mask (GPU or MIG device ids or UUIDs to hide; hiding a GPU hides its
 * MIG devices), injection (auto, device-nodes, cdi), cdi_spec_dirs.
 *
 * Build: cc -std=c11 -fPIC -shared -fvisibility=hidden -I PluginAPI/include \
 *           -I Plugins/Support/include -o libhangar-accel-cuda.so cuda.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup, readdir, and the support header's open/read/pipe2 */
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
/* MIG slots are CUDA_MIG_SLOT_PREFIX + the profile name, e.g. "cuda.mig-3g.20gb". */
#define CUDA_MIG_SLOT_PREFIX "cuda.mig-"
#define CUDA_CDI_KIND "nvidia.com/gpu"
/* cuda.device plus at most this many MIG profiles (a GPU model has about a dozen). */
#define CUDA_MAX_SLOTS 32
/* Where the driver lists GPU capabilities (MIG access files) under proc_root. */
#define CUDA_CAPS_PROC "driver/nvidia/capabilities"

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
    /* MIG (optional): without the first five every GPU is treated as whole. */
    nvmlDeviceGetMigMode_fn get_mig_mode;
    nvmlDeviceGetMaxMigDeviceCount_fn get_max_mig_count;
    nvmlDeviceGetMigDeviceHandleByIndex_fn get_mig_handle;
    nvmlDeviceGetGpuInstanceId_fn get_gi_id;
    nvmlDeviceGetComputeInstanceId_fn get_ci_id;
    /* Only to name a profile when the MIG device's name does not. */
    nvmlDeviceGetGpuInstanceById_fn get_gi_by_id;
    nvmlGpuInstanceGetInfo_fn get_gi_info;
    nvmlDeviceGetGpuInstanceProfileInfoV_fn get_gi_profile_v;
} cuda_nvml;

/** What the plugin keeps of a GPU or MIG device beyond its hs_device (same position as in the device table). */
typedef struct cuda_gpu {
    /** The GPU's handle, or the MIG device's. */
    nvmlDevice_t handle;
    /** The GPU's minor number (a MIG device's is its GPU's). */
    unsigned int minor;
    bool has_minor;
    /** NVML said NVML_ERROR_GPU_IS_LOST. */
    bool lost;
    /** A GPU whose current MIG mode is enabled: listed, offered only through its MIG devices. */
    bool mig_enabled;
    /** A MIG device; the fields below describe it. */
    bool is_mig;
    /** Table position of the parent GPU. */
    size_t parent;
    /** Index under the parent (nvmlDeviceGetMigDeviceHandleByIndex). */
    unsigned int mig_index;
    /** GPU instance and compute instance ids, when NVML gave them. */
    bool has_instance_ids;
    unsigned int gi, ci;
    /** Minors of /dev/nvidia-caps/nvidia-cap<N> for the GPU instance and compute instance. */
    bool has_caps;
    unsigned int gi_cap, ci_cap;
    /** Its MIG profile ("3g.20gb"), "" when NVML does not name it. */
    char profile[48];
    /** Position of its slot in the instance's slot specs, or -1 when it is offered in none. */
    int slot;
} cuda_gpu;

typedef struct cuda_instance {
    const hangar_host_services *host;
    cuda_nvml nvml;
    bool nvml_initialised;
    int injection; /* resolved: CUDA_INJECT_DEVICE_NODES or CUDA_INJECT_CDI */
    /** Host side of device nodes and of the driver's /proc files, without a trailing slash. */
    char dev_root[PATH_MAX];
    char proc_root[PATH_MAX];
    /**
     * The visible GPUs in NVML index order (id the index as decimal, index the NVML index),
     * each GPU in MIG mode followed by its MIG devices (index the parent's NVML index).
     */
    hs_device_table devices;
    cuda_gpu gpus[HS_MAX_DEVICES];
    /** cuda.device, then one unique slot per MIG profile in the order the profiles were found. */
    hs_slot_spec slots[CUDA_MAX_SLOTS];
    size_t slot_count;
    char slot_names[CUDA_MAX_SLOTS][80];
    char slot_display_names[CUDA_MAX_SLOTS][80];
    char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE]; /* "" if unknown */
    char runtime_version[32];                                    /* "" if unknown */
    hs_strbuf extra_info; /* a JSON object */
    char no_device_reason[640]; /* "" when there are devices */
} cuda_instance;

static const hs_slot_spec cuda_device_slot = {
    .name = CUDA_SLOT, .type = HANGAR_SLOT_COUNT, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE, .exclusive = 1,
    .display_name = "GPU", .display_unit = "GPU",
};

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
    NVML_LOAD(inst, lib, get_mig_mode, nvmlDeviceGetMigMode, false);
    NVML_LOAD(inst, lib, get_max_mig_count, nvmlDeviceGetMaxMigDeviceCount, false);
    NVML_LOAD(inst, lib, get_mig_handle, nvmlDeviceGetMigDeviceHandleByIndex, false);
    NVML_LOAD(inst, lib, get_gi_id, nvmlDeviceGetGpuInstanceId, false);
    NVML_LOAD(inst, lib, get_ci_id, nvmlDeviceGetComputeInstanceId, false);
    NVML_LOAD(inst, lib, get_gi_by_id, nvmlDeviceGetGpuInstanceById, false);
    NVML_LOAD(inst, lib, get_gi_info, nvmlGpuInstanceGetInfo, false);
    NVML_LOAD(inst, lib, get_gi_profile_v, nvmlDeviceGetGpuInstanceProfileInfoV, false);
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

/* Marks device `k` lost for good (a no-op when it already is). */
static void mark_lost(cuda_instance *inst, size_t k, const char *reason)
{
    hs_device *d = &inst->devices.items[k];
    if (inst->gpus[k].lost)
        return;
    inst->gpus[k].lost = true;
    d->health = HANGAR_HEALTH_UNHEALTHY;
    snprintf(d->health_reason, sizeof d->health_reason, "%s", reason);
    host_log(inst->host, HANGAR_LOG_ERROR, "%s %s%s%s%s is lost: %s", inst->gpus[k].is_mig ? "MIG device" : "GPU", d->id,
             d->uuid[0] != '\0' ? " (" : "", d->uuid, d->uuid[0] != '\0' ? ")" : "", d->health_reason);
}

/*
 * Notes what a query of device `k` answered: NVML_ERROR_GPU_IS_LOST makes it
 * unhealthy for good (for HANGAR_ACCEL_CAP_HEALTH_WATCH), and with it the
 * whole physical GPU: the parent of a MIG device and every MIG device of a
 * GPU. True on success.
 */
static bool note_result(cuda_instance *inst, size_t k, const char *what, nvmlReturn_t r)
{
    if (r != NVML_ERROR_GPU_IS_LOST || inst->gpus[k].lost)
        return r == NVML_SUCCESS;
    char reason[sizeof inst->devices.items[0].health_reason];
    snprintf(reason, sizeof reason, "%s: %.100s", what, nvml_error(inst, r));
    mark_lost(inst, k, reason);
    size_t gpu = inst->gpus[k].is_mig ? inst->gpus[k].parent : k;
    (void)hs_pathf(reason, sizeof reason, "its GPU %s is lost (%s: %s)", inst->devices.items[gpu].id, what, nvml_error(inst, r));
    if (gpu != k) {
        char own[sizeof reason];
        (void)hs_pathf(own, sizeof own, "%s reported by its MIG device %s: %s", what, inst->devices.items[k].id, nvml_error(inst, r));
        mark_lost(inst, gpu, own);
    }
    for (size_t m = 0; m < inst->devices.count; m++)
        if (inst->gpus[m].is_mig && inst->gpus[m].parent == gpu)
            mark_lost(inst, m, reason);
    return false;
}

/* True if the driver's NVML can enumerate MIG devices (R450 and newer). */
static bool mig_supported(const cuda_nvml *n)
{
    return n->get_mig_mode != NULL && n->get_max_mig_count != NULL && n->get_mig_handle != NULL && n->get_gi_id != NULL &&
           n->get_ci_id != NULL;
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
    unsigned int current = NVML_DEVICE_MIG_DISABLE, pending = NVML_DEVICE_MIG_DISABLE;
    if (mig_supported(n) && note_result(inst, k, "nvmlDeviceGetMigMode", n->get_mig_mode(h, &current, &pending))) {
        /* The current mode is what the GPU is now; a pending change needs a GPU reset first. */
        g->mig_enabled = current == NVML_DEVICE_MIG_ENABLE;
        if (pending != current)
            host_log(inst->host, HANGAR_LOG_NOTICE, "GPU %s: MIG mode %s now, %s after the next GPU reset; offering it as it is now",
                     d->id, current == NVML_DEVICE_MIG_ENABLE ? "enabled" : "disabled", pending == NVML_DEVICE_MIG_ENABLE ? "enabled" : "disabled");
    }
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

/* ------------------------------------------------------------------------ */
/* MIG devices                                                               */
/* ------------------------------------------------------------------------ */

/* A MIG profile as nvidia-smi prints it ("3g.20gb", "1g.10gb+me", "1c.3g.20gb"): a digit, then lowercase letters, digits, '.', '+', '-'. */
static bool valid_profile(const char *p)
{
    size_t n = 0;
    if (p[0] < '0' || p[0] > '9')
        return false;
    for (; p[n] != '\0'; n++)
        if (!((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') || p[n] == '.' || p[n] == '+' || p[n] == '-'))
            return false;
    return n <= 40;
}

/* The profile in a MIG device or profile name: "NVIDIA A100-SXM4-40GB MIG 3g.20gb" or "MIG 3g.20gb" -> "3g.20gb". */
static bool profile_from_name(const char *name, char *out, size_t len)
{
    const char *profile = NULL;
    for (const char *q = name; (q = strstr(q, "MIG ")) != NULL; q++)
        if (q == name || q[-1] == ' ')
            profile = q + 4;
    return profile != NULL && valid_profile(profile) && hs_pathf(out, len, "%s", profile);
}

/*
 * The profile of GPU instance `gi` of `gpu` from NVML's profile table: the
 * instance's profile id (nvmlGpuInstanceGetInfo) matched against the profiles
 * NVML lists by index until it answers NVML_ERROR_INVALID_ARGUMENT. Needs a
 * privileged user, and names the GPU instance, which is the MIG device's
 * profile when its compute instance spans the whole GPU instance (the usual
 * setup); the device name, tried first, also covers smaller compute instances.
 */
static bool profile_from_gpu_instance(const cuda_instance *inst, nvmlDevice_t gpu, unsigned int gi, char *out, size_t len)
{
    const cuda_nvml *n = &inst->nvml;
    nvmlGpuInstance_t handle = NULL;
    nvmlGpuInstanceInfo_t info;
    memset(&info, 0, sizeof info);
    if (n->get_gi_by_id == NULL || n->get_gi_info == NULL || n->get_gi_profile_v == NULL || n->get_gi_by_id(gpu, gi, &handle) != NVML_SUCCESS ||
        n->get_gi_info(handle, &info) != NVML_SUCCESS)
        return false;
    for (unsigned int index = 0; index < 64; index++) {
        nvmlGpuInstanceProfileInfo_v2_t profile;
        memset(&profile, 0, sizeof profile);
        profile.version = nvmlGpuInstanceProfileInfo_v2;
        nvmlReturn_t r = n->get_gi_profile_v(gpu, index, &profile);
        if (r == NVML_ERROR_INVALID_ARGUMENT)
            break;
        if (r != NVML_SUCCESS || profile.id != info.profileId)
            continue;
        profile.name[sizeof profile.name - 1] = '\0';
        return profile_from_name(profile.name, out, len);
    }
    return false;
}

/*
 * The DeviceFileMinor of a capability's access file, e.g.
 * <proc_root>/driver/nvidia/capabilities/gpu0/mig/gi1/access:
 *   DeviceFileMinor: 12
 *   DeviceFileMode: 292
 *   DeviceFileModify: 1
 * names /dev/nvidia-caps/nvidia-cap12.
 */
static bool read_cap_minor(const char *path, unsigned int *minor)
{
    char text[512];
    int fd = open_regular(path);
    if (fd < 0)
        return false;
    ssize_t got;
    do
        got = read(fd, text, sizeof text - 1);
    while (got < 0 && errno == EINTR);
    close(fd);
    if (got <= 0)
        return false;
    text[got] = '\0';
    const char *p = strstr(text, "DeviceFileMinor:");
    if (p == NULL)
        return false;
    p += strlen("DeviceFileMinor:");
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(p, &end, 10);
    if (*p < '0' || *p > '9' || errno != 0 || v > 1048575 || (*end != '\n' && *end != '\0' && *end != ' '))
        return false;
    *minor = (unsigned int)v;
    return true;
}

/* The slot of a MIG profile (added when new); -1 when no more slots fit. */
static int profile_slot(cuda_instance *inst, const char *profile)
{
    char name[sizeof inst->slot_names[0]];
    if (!hs_pathf(name, sizeof name, "%s%s", CUDA_MIG_SLOT_PREFIX, profile))
        return -1;
    for (size_t s = 1; s < inst->slot_count; s++)
        if (strcmp(inst->slot_names[s], name) == 0)
            return (int)s;
    if (inst->slot_count >= CUDA_MAX_SLOTS)
        return -1;
    size_t s = inst->slot_count++;
    memcpy(inst->slot_names[s], name, sizeof name);
    (void)hs_pathf(inst->slot_display_names[s], sizeof inst->slot_display_names[s], "MIG %s", profile); /* fits: name did */
    inst->slots[s] = (hs_slot_spec){
        .name = inst->slot_names[s], .type = HANGAR_SLOT_UNIQUE, .mode = HANGAR_ALLOC_DISCRETE, .per_device = HANGAR_AMOUNT_SCALE,
        .exclusive = 1, .display_name = inst->slot_display_names[s], .display_unit = "MIG",
    };
    return (int)s;
}

/* Makes `d` less healthy (never more) and says why, unless it already has a worse or equal state with a reason. */
static HS_PRINTF(3, 4) void worsen(hs_device *d, uint32_t health, const char *fmt, ...)
{
    if (d->health != HANGAR_HEALTH_HEALTHY && d->health >= health)
        return;
    d->health = health;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->health_reason, sizeof d->health_reason, fmt, ap);
    va_end(ap);
}

/* Fills MIG device `k` of the table: index `m` under the GPU at table position `parent`, NVML handle `h`. */
static void discover_mig_device(cuda_instance *inst, size_t parent, unsigned int m, nvmlDevice_t h, size_t k)
{
    const cuda_nvml *n = &inst->nvml;
    const hs_device *p = &inst->devices.items[parent];
    const cuda_gpu *pg = &inst->gpus[parent];
    hs_device *d = &inst->devices.items[k];
    cuda_gpu *g = &inst->gpus[k];
    memset(g, 0, sizeof *g);
    g->handle = h;
    g->is_mig = true;
    g->parent = parent;
    g->mig_index = m;
    g->slot = -1;
    g->minor = pg->minor;
    g->has_minor = pg->has_minor;
    d->index = p->index;
    memcpy(d->parent_id, p->id, sizeof d->parent_id);
    memcpy(d->hw_location, p->hw_location, sizeof d->hw_location);
    memcpy(d->cpu_affinity, p->cpu_affinity, sizeof d->cpu_affinity);
    d->numa_node = p->numa_node;

    g->has_instance_ids = note_result(inst, k, "nvmlDeviceGetGpuInstanceId", n->get_gi_id(h, &g->gi)) &&
                          note_result(inst, k, "nvmlDeviceGetComputeInstanceId", n->get_ci_id(h, &g->ci));
    /* hs_pathf: GPU ids are NVML indices, far shorter than the buffer. */
    if (g->has_instance_ids)
        (void)hs_pathf(d->id, sizeof d->id, "%s/gi%u/ci%u", p->id, g->gi, g->ci);
    else
        (void)hs_pathf(d->id, sizeof d->id, "%s/mig%u", p->id, m);
    if (n->get_uuid(h, d->uuid, sizeof d->uuid) != NVML_SUCCESS)
        d->uuid[0] = '\0';
    d->uuid[sizeof d->uuid - 1] = '\0';
    if (n->get_name(h, d->model, sizeof d->model) != NVML_SUCCESS)
        d->model[0] = '\0';
    d->model[sizeof d->model - 1] = '\0';
    nvmlMemory_t mem;
    memset(&mem, 0, sizeof mem);
    if (note_result(inst, k, "nvmlDeviceGetMemoryInfo", n->get_memory(h, &mem)))
        d->memory_bytes = mem.total;

    char *profile = g->profile;
    if (!profile_from_name(d->model, profile, sizeof g->profile) &&
        !(g->has_instance_ids && profile_from_gpu_instance(inst, pg->handle, g->gi, profile, sizeof g->profile)))
        profile[0] = '\0';
    if (d->model[0] == '\0')
        (void)hs_pathf(d->model, sizeof d->model, "%.80s MIG %s", p->model, profile[0] != '\0' ? profile : "device");
    char gi_path[PATH_MAX] = "", ci_path[PATH_MAX] = "";
    bool gi_cap = false;
    if (g->has_instance_ids && g->has_minor) {
        gi_cap = hs_pathf(gi_path, sizeof gi_path, "%s/" CUDA_CAPS_PROC "/gpu%u/mig/gi%u/access", inst->proc_root, g->minor, g->gi) &&
                 read_cap_minor(gi_path, &g->gi_cap);
        g->has_caps = gi_cap &&
                      hs_pathf(ci_path, sizeof ci_path, "%s/" CUDA_CAPS_PROC "/gpu%u/mig/gi%u/ci%u/access", inst->proc_root, g->minor, g->gi, g->ci) &&
                      read_cap_minor(ci_path, &g->ci_cap);
    }
    hs_strbuf extra = {.len = 0};
    hs_strbuf_addf(&extra, "{\"mig_index\":%u", m);
    if (g->has_instance_ids)
        hs_strbuf_addf(&extra, ",\"gpu_instance_id\":%u,\"compute_instance_id\":%u", g->gi, g->ci);
    if (profile[0] != '\0')
        hs_strbuf_addf(&extra, ",\"mig_profile\":\"%s\"", profile); /* valid_profile: nothing to escape */
    hs_strbuf_addf(&extra, "}");
    if (!extra.overflow && extra.len < sizeof d->extra_info_json)
        memcpy(d->extra_info_json, extra.text, extra.len + 1);

    /* Health, worst first: the GPU's own state, then what device nodes need, then the slot. */
    if (pg->lost)
        mark_lost(inst, k, "its GPU is lost");
    else if (p->health == HANGAR_HEALTH_UNHEALTHY || p->health == HANGAR_HEALTH_DEGRADED)
        worsen(d, p->health, "its GPU %s: %.120s", p->id, p->health_reason);
    if (inst->injection == CUDA_INJECT_DEVICE_NODES && g->has_minor && !g->has_caps) {
        /* The tail of the path says which capability; the head is proc_root. */
        const char *path = gi_cap ? ci_path : gi_path;
        size_t n = strlen(path);
        if (!g->has_instance_ids)
            worsen(d, HANGAR_HEALTH_UNHEALTHY, "NVML gives no GPU and compute instance ids, so its MIG capability device nodes are unknown");
        else
            worsen(d, HANGAR_HEALTH_UNHEALTHY, "no DeviceFileMinor for its MIG capability device node in %s%s", n > 100 ? "..." : "",
                   path + (n > 100 ? n - 100 : 0));
    }
}

/* Gives a listed MIG device the slot of its profile (made when it is the first of its profile). */
static void offer_mig_device(cuda_instance *inst, size_t k)
{
    hs_device *d = &inst->devices.items[k];
    cuda_gpu *g = &inst->gpus[k];
    if (g->profile[0] == '\0') {
        worsen(d, HANGAR_HEALTH_DEGRADED, "NVML names no MIG profile for it, so no slot offers it");
        return;
    }
    if ((g->slot = profile_slot(inst, g->profile)) < 0) {
        host_log(inst->host, HANGAR_LOG_WARNING, "MIG device %s: more than %d MIG profiles on this node; not offering profile %s", d->id,
                 CUDA_MAX_SLOTS - 1, g->profile);
        worsen(d, HANGAR_HEALTH_DEGRADED, "more than %d MIG profiles on this node; no slot offers %s", CUDA_MAX_SLOTS - 1, g->profile);
    }
}

/* Lists the MIG devices of the GPU at table position `parent` right after it; masked ones are left out. */
static void discover_migs(cuda_instance *inst, size_t parent, cuda_mask *mask)
{
    const cuda_nvml *n = &inst->nvml;
    nvmlDevice_t gpu = inst->gpus[parent].handle;
    unsigned int max = 0;
    nvmlReturn_t r = n->get_max_mig_count(gpu, &max);
    if (!note_result(inst, parent, "nvmlDeviceGetMaxMigDeviceCount", r)) {
        host_log(inst->host, HANGAR_LOG_WARNING, "GPU %s is in MIG mode, but nvmlDeviceGetMaxMigDeviceCount failed: %s; offering none of it",
                 inst->devices.items[parent].id, nvml_error(inst, r));
        return;
    }
    unsigned int found = 0;
    for (unsigned int m = 0; m < max && m < 64 && !inst->gpus[parent].lost; m++) {
        nvmlDevice_t h = NULL;
        r = n->get_mig_handle(gpu, m, &h);
        if (r == NVML_ERROR_NOT_FOUND) /* no MIG device at this index */
            continue;
        if (!note_result(inst, parent, "nvmlDeviceGetMigDeviceHandleByIndex", r)) {
            host_log(inst->host, HANGAR_LOG_WARNING, "GPU %s: skipping MIG device %u: nvmlDeviceGetMigDeviceHandleByIndex failed: %s",
                     inst->devices.items[parent].id, m, nvml_error(inst, r));
            continue;
        }
        hs_device *d = hs_devices_add(&inst->devices);
        if (d == NULL) {
            host_log(inst->host, HANGAR_LOG_WARNING, "ignoring MIG devices of GPU %s from index %u: this plugin handles at most %d devices",
                     inst->devices.items[parent].id, m, HS_MAX_DEVICES);
            break;
        }
        discover_mig_device(inst, parent, m, h, inst->devices.count - 1);
        if (masked(mask, d)) {
            host_log(inst->host, HANGAR_LOG_INFO, "MIG device %s (%s) is hidden by device_mask", d->id, d->uuid);
            inst->devices.count--;
            continue;
        }
        offer_mig_device(inst, inst->devices.count - 1);
        found++;
    }
    hs_device *p = &inst->devices.items[parent];
    snprintf(p->extra_info_json, sizeof p->extra_info_json, "{\"mig_mode\":\"enabled\",\"mig_devices\":%u}", found);
    if (found == 0)
        host_log(inst->host, HANGAR_LOG_NOTICE, "GPU %s is in MIG mode but has no MIG devices to offer; create them (nvidia-smi mig -cgi <profiles> -C)", p->id);
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
        size_t k = inst->devices.count - 1;
        bool keep = discover_device(inst, sysfs_root, i, k);
        if (keep && masked(&mask, d)) {
            host_log(inst->host, HANGAR_LOG_INFO, "GPU %s (%s) is hidden by device_mask", d->id, d->uuid);
            hidden++;
            keep = false;
        }
        if (!keep)
            inst->devices.count--; /* the next GPU takes its place */
        else if (inst->gpus[k].mig_enabled)
            discover_migs(inst, k, &mask);
    }
    for (size_t m = 0; st == HANGAR_OK && m < mask.count; m++)
        if (!mask.entries[m].matched)
            host_log(inst->host, HANGAR_LOG_NOTICE, "device_mask entry \"%s\" matches no GPU or MIG device on this node", mask.entries[m].name);
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

/* "/dev/" -> "/dev", so that host and container paths of device nodes compare equal by default ("/" stays "/"). */
static void trim_slashes(char *path)
{
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
}

/* Injection mode, NVML and discovery (config keys all present: the schema gives each a default). */
static hangar_status cuda_configure(const hs_create *c, cuda_instance *inst)
{
    char library[PATH_MAX], sysfs_root[PATH_MAX], injection[16], spec[PATH_MAX] = "";
    hangar_status st;
    if ((st = hs_cfg_string(c, "nvml_library", library, sizeof library)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "sysfs_root", sysfs_root, sizeof sysfs_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "dev_root", inst->dev_root, sizeof inst->dev_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "proc_root", inst->proc_root, sizeof inst->proc_root)) != HANGAR_OK ||
        (st = hs_cfg_string(c, "injection", injection, sizeof injection)) != HANGAR_OK)
        return st;
    trim_slashes(inst->dev_root);
    trim_slashes(inst->proc_root);
    inst->slots[0] = cuda_device_slot;
    inst->slot_count = 1;
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

/*
 * What device `k` gives of slot `s`: a whole GPU one cuda.device unless it is
 * in MIG mode, a MIG device one unit of its profile's slot, an unhealthy
 * device nothing (it stays listed, so the operator sees why).
 */
static int64_t cuda_capacity(const cuda_instance *inst, size_t s, size_t k)
{
    const cuda_gpu *g = &inst->gpus[k];
    if (inst->devices.items[k].health == HANGAR_HEALTH_UNHEALTHY)
        return 0;
    if (g->is_mig)
        return g->slot == (int)s ? HANGAR_AMOUNT_SCALE : 0;
    return s == 0 && !g->mig_enabled ? HANGAR_AMOUNT_SCALE : 0;
}

static hangar_status cuda_list_slots(void *instance, hangar_accel_slot_sink sink, void *sink_context)
{
    const cuda_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_slots: sink is NULL");
    for (size_t s = 0; s < inst->slot_count; s++) {
        const hs_slot_spec *spec = &inst->slots[s];
        hangar_accel_slot out;
        memset(&out, 0, sizeof out);
        out.struct_size = sizeof out;
        out.name = spec->name;
        out.type = spec->type;
        out.allocation_mode = spec->mode;
        out.quantum = spec->quantum;
        for (size_t k = 0; k < inst->devices.count; k++)
            out.capacity += cuda_capacity(inst, s, k);
        out.exclusive = spec->exclusive;
        out.display_name = spec->display_name;
        out.display_unit = spec->display_unit;
        HS_SINK(sink(sink_context, &out), "list_slots");
    }
    return HANGAR_OK;
}

static hangar_status cuda_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *sink_context)
{
    const cuda_instance *inst = instance;
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "list_device_slots: sink is NULL");
    for (size_t s = 0; s < inst->slot_count; s++) {
        for (size_t k = 0; k < inst->devices.count; k++) {
            int64_t capacity = cuda_capacity(inst, s, k);
            if (capacity <= 0)
                continue;
            hangar_accel_device_slot out;
            memset(&out, 0, sizeof out);
            out.struct_size = sizeof out;
            out.slot_name = inst->slots[s].name;
            out.device_id = inst->devices.items[k].id;
            out.capacity = capacity;
            HS_SINK(sink(sink_context, &out), "list_device_slots");
        }
    }
    return HANGAR_OK;
}

/* Position of a slot name among the instance's slots, or -1. */
static ptrdiff_t slot_index(const cuda_instance *inst, const char *name)
{
    for (size_t s = 0; name != NULL && s < inst->slot_count; s++)
        if (strcmp(inst->slots[s].name, name) == 0)
            return (ptrdiff_t)s;
    return -1;
}

/*
 * hs_select (every refusal accelerator.h names, in its order, against one
 * unit per device and slot), then what each device really offers: a GPU in
 * MIG mode offers nothing itself, a MIG device only its profile's slot. Last,
 * the slots are exclusive: whole GPUs or MIG devices of one profile.
 */
static hangar_status cuda_select(const cuda_instance *inst, const hangar_accel_allocation *a, hs_selection *sel, const char *call)
{
    hangar_status st = hs_select(a, &inst->devices, inst->slots, inst->slot_count, sel, call);
    if (st != HANGAR_OK)
        return st;
    for (size_t i = 0; i < a->entry_count; i++) {
        const hangar_accel_alloc_entry *e = hs_entry(a, i);
        size_t k = (size_t)hs_devices_find(&inst->devices, e->device_id), s = (size_t)slot_index(inst, e->slot_name);
        const cuda_gpu *g = &inst->gpus[k];
        if (cuda_capacity(inst, s, k) > 0)
            continue;
        if (g->is_mig)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s on MIG device \"%s\", which is offered %s%s", call, i, e->slot_name,
                           e->device_id, g->slot >= 0 ? "only as " : "in no slot (its MIG profile is unknown)",
                           g->slot >= 0 ? inst->slot_names[g->slot] : "");
        if (g->mig_enabled)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s on GPU \"%s\", which is in MIG mode; allocate its MIG devices (the %s<profile> slots) instead",
                           call, i, e->slot_name, e->device_id, CUDA_MIG_SLOT_PREFIX);
        return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: entry %zu asks for %s on GPU \"%s\", which is offered only as %s", call, i, e->slot_name,
                       e->device_id, CUDA_SLOT);
    }
    for (size_t k = 1; k < sel->count; k++)
        if (sel->picks[k].spec != sel->picks[0].spec)
            return hs_fail(HANGAR_E_BAD_ALLOCATION, "%s: the allocation mixes %s and %s; a container gets whole GPUs or MIG devices of one profile, not both",
                           call, inst->slots[sel->picks[0].spec].name, inst->slots[sel->picks[k].spec].name);
    return HANGAR_OK;
}

/* How the NVIDIA runtime and CDI name device `k`: its UUID, else the index form ("1", or "<gpu>:<mig index>" for a MIG device). */
static void runtime_name(const cuda_instance *inst, size_t k, char *out, size_t len)
{
    const hs_device *d = &inst->devices.items[k];
    const cuda_gpu *g = &inst->gpus[k];
    if (d->uuid[0] != '\0')
        snprintf(out, len, "%s", d->uuid);
    else if (g->is_mig)
        snprintf(out, len, "%s:%u", inst->devices.items[g->parent].id, g->mig_index);
    else
        snprintf(out, len, "%s", d->id);
}

/* A device node: <dev_root>/<name> on the host, /dev/<name> in the container. */
static hangar_status add_node(const cuda_instance *inst, const hangar_container_edits *edits, const char *name)
{
    char host_path[PATH_MAX + 64], container_path[96];
    if (!hs_pathf(host_path, sizeof host_path, "%s/%s", inst->dev_root, name) ||
        !hs_pathf(container_path, sizeof container_path, "/dev/%s", name))
        return hs_fail(HANGAR_E_INTERNAL, "container_edits: the path of device node %s is too long", name);
    HS_EDIT(edits, add_device_node, host_path, container_path, "rwm");
    return HANGAR_OK;
}

/*
 * Container-local order is list order (NVML order, each GPU's MIG devices
 * after it, as the driver enumerates them in the container): hs_select sorts
 * by it. Device nodes are given once each even when two MIG devices share a
 * GPU or a GPU instance.
 */
static hangar_status cuda_container_edits(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits)
{
    const cuda_instance *inst = instance;
    hs_selection sel;
    hangar_status st = hs_check_edits_args(allocation, edits);
    if (st != HANGAR_OK || (st = cuda_select(inst, allocation, &sel, "container_edits")) != HANGAR_OK)
        return st;
    if (sel.count == 0)
        return HANGAR_OK;

    hs_strbuf visible = {.len = 0}, global_ids = {.len = 0};
    for (size_t k = 0; k < sel.count; k++) {
        char name[128];
        runtime_name(inst, sel.picks[k].device, name, sizeof name);
        hs_strbuf_add_item(&visible, ",", name);
        hs_strbuf_addf(&global_ids, "%s%zu:%s", k > 0 ? "," : "", k, inst->devices.items[sel.picks[k].device].id);
    }
    if (visible.overflow || global_ids.overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "container_edits: the lists of %zu devices do not fit in %zu characters", sel.count, sizeof visible.text - 1);

    if (inst->injection == CUDA_INJECT_CDI) {
        for (size_t k = 0; k < sel.count; k++) {
            char device[128], name[160];
            runtime_name(inst, sel.picks[k].device, device, sizeof device);
            snprintf(name, sizeof name, "%s=%s", CUDA_CDI_KIND, device);
            HS_EDIT(edits, add_cdi_device, name);
        }
    } else {
        bool gpu_given[HS_MAX_DEVICES] = {false};
        unsigned int caps_given[2 * HS_MAX_DEVICES];
        size_t caps = 0;
        for (size_t k = 0; k < sel.count; k++) {
            const cuda_gpu *g = &inst->gpus[sel.picks[k].device];
            size_t gpu = g->is_mig ? g->parent : sel.picks[k].device;
            char name[64];
            if (!gpu_given[gpu]) {
                gpu_given[gpu] = true;
                snprintf(name, sizeof name, "nvidia%u", inst->gpus[gpu].minor);
                if ((st = add_node(inst, edits, name)) != HANGAR_OK)
                    return st;
            }
            if (!g->is_mig)
                continue;
            /* Two compute instances of one GPU instance share its access capability. */
            const unsigned int wanted[2] = {g->gi_cap, g->ci_cap};
            for (size_t w = 0; w < 2; w++) {
                bool given = false;
                for (size_t c = 0; c < caps && !given; c++)
                    given = caps_given[c] == wanted[w];
                if (given)
                    continue;
                caps_given[caps++] = wanted[w];
                snprintf(name, sizeof name, "nvidia-caps/nvidia-cap%u", wanted[w]);
                if ((st = add_node(inst, edits, name)) != HANGAR_OK)
                    return st;
            }
        }
        static const char *const control[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"};
        for (size_t i = 0; i < sizeof control / sizeof control[0]; i++)
            if ((st = add_node(inst, edits, control[i])) != HANGAR_OK)
                return st;
    }
    HS_EDIT(edits, add_env, "NVIDIA_VISIBLE_DEVICES", visible.text);
    HS_EDIT(edits, add_env, "NVIDIA_DRIVER_CAPABILITIES", "compute,utility");
    HS_EDIT(edits, add_resource_data, "CUDA_GLOBAL_DEVICE_IDS", global_ids.text);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Emits the measures of device `k` that NVML can give; a query that fails
 * skips its measure. A MIG device has only its own memory: utilisation is not
 * available in MIG mode, and temperature and power are the whole GPU's.
 */
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
    if (inst->gpus[k].is_mig) {
        if (note_result(inst, k, "nvmlDeviceGetMemoryInfo", n->get_memory(h, &mem)))
            st = hs_measure(sink, sink_context, "cuda_mem", HANGAR_UNIT_BYTES, HANGAR_MEASURE_GAUGE, id, container_id, (double)mem.used,
                            (double)mem.total);
        return st;
    }
    if (!inst->gpus[k].mig_enabled && note_result(inst, k, "nvmlDeviceGetUtilizationRates", n->get_utilization(h, &util)))
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
            ptrdiff_t k = slot_index(inst, e->slot_name) >= 0 ? hs_devices_find(&inst->devices, e->device_id) : -1;
            if (k >= 0) /* best effort: entries that match no device are skipped */
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
    "\"dev_root\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Where the NVIDIA device nodes are on the host (nvidia<minor>, nvidiactl, nvidia-uvm, nvidia-caps/nvidia-cap<N>); "
    "containers get them under /dev.\","
    "\"default\":\"/dev\"},"
    "\"proc_root\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Where procfs is mounted; the capability device minors a MIG device needs are read from "
    "<proc_root>/driver/nvidia/capabilities/gpu<minor>/mig/gi<id>/access and .../gi<id>/ci<id>/access.\","
    "\"default\":\"/proc\"},"
    "\"device_mask\":{\"type\":\"array\",\"maxItems\":4096,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":127},"
    "\"description\":\"GPUs and MIG devices to hide from Hangar, each named by device id (\\\"0\\\", \\\"0/gi1/ci0\\\") or UUID "
    "(\\\"GPU-...\\\", \\\"MIG-...\\\"); hiding a GPU hides its MIG devices.\","
    "\"default\":[]},"
    "\"injection\":{\"type\":\"string\",\"enum\":[\"auto\",\"device-nodes\",\"cdi\"],"
    "\"description\":\"How containers get their GPUs: \\\"device-nodes\\\" (/dev/nvidia*), \\\"cdi\\\" "
    "(nvidia.com/gpu=<uuid>, GPU-... or MIG-...; needs a CDI-capable engine and a spec from nvidia-ctk cdi generate), or \\\"auto\\\" "
    "(cdi if a spec for nvidia.com/gpu exists in cdi_spec_dirs, else device-nodes).\","
    "\"default\":\"auto\"},"
    "\"cdi_spec_dirs\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1},"
    "\"description\":\"Directories searched for CDI spec files (*.json, *.yaml) when injection is auto.\","
    "\"default\":[\"/etc/cdi\",\"/var/run/cdi\"]}"
    "}"
    "}";

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
    .version = "1.2.0",
    .description = "NVIDIA GPUs through NVML: whole-GPU cuda.device slots and a cuda.mig-<profile> slot per MIG profile, device-node "
                   "or CDI injection, utilisation, memory, temperature, power and energy metrics",
    .license = "Apache-2.0",
    .config_schema = cuda_config_schema,
    /* NULL: MIG slot names depend on the GPUs' profiles (cuda.device is always listed; every name starts with "cuda."). */
    .static_slot_names = NULL,
    .functions = &cuda_functions,
};

/* The only exported symbol; 2 = relies on host-applied schema defaults (ABI 1.2). */
HS_PLUGIN_ENTRY(cuda_descriptor, 2)
