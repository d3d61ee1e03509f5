/*
 * A stand-in for libnvidia-ml.so.1 used by Hangar's tests of the CUDA
 * accelerator plugin. It implements, with NVML's real signatures, return
 * codes and struct layouts, only the functions that plugin looks up:
 *
 *   nvmlInit_v2 nvmlShutdown nvmlErrorString nvmlDeviceGetCount_v2
 *   nvmlDeviceGetHandleByIndex_v2 nvmlDeviceGetName nvmlDeviceGetUUID
 *   nvmlDeviceGetMemoryInfo nvmlDeviceGetPciInfo_v3 nvmlDeviceGetMinorNumber
 *   nvmlDeviceGetUtilizationRates nvmlSystemGetDriverVersion
 * and the ones it looks up optionally (a driver may lack them):
 *   nvmlSystemGetCudaDriverVersion nvmlDeviceGetNumGpuCores
 *   nvmlDeviceGetVbiosVersion nvmlDeviceGetMaxPcieLinkGeneration
 *   nvmlDeviceGetMaxPcieLinkWidth nvmlDeviceGetTemperature
 *   nvmlDeviceGetPowerUsage nvmlDeviceGetEnforcedPowerLimit
 *   nvmlDeviceGetTotalEnergyConsumption
 * and, for Multi-Instance GPU, also optional:
 *   nvmlDeviceGetMigMode nvmlDeviceGetMaxMigDeviceCount
 *   nvmlDeviceGetMigDeviceHandleByIndex nvmlDeviceIsMigDeviceHandle
 *   nvmlDeviceGetGpuInstanceId nvmlDeviceGetComputeInstanceId
 *   nvmlDeviceGetDeviceHandleFromMigDeviceHandle nvmlDeviceGetGpuInstanceById
 *   nvmlGpuInstanceGetInfo nvmlDeviceGetGpuInstanceProfileInfoV
 *
 * Build: cc -shared -fPIC -o <dir>/libnvidia-ml.so.1 fake_nvml.c
 * Add -DFAKE_NVML_WITHOUT_OPTIONAL to leave out the optional functions, as
 * an older driver's library does (the plugin must then still work).
 *
 * It reports two NVIDIA H200 GPUs (see fake_gpus below: VBIOS 96.00.A5.00.01,
 * PCIe 5.0 x16, 34 and 36 C, 118 and 95 W of a 700 W limit), MIG mode
 * disabled on both, driver 550.54.15, CUDA driver version 12040.
 *
 * Built with -DFAKE_NVML_MIG=1 (Tests/Fixtures/Vendors/cuda-mig/fake_nvml_mig.c
 * does that, as the vendor fixtures can pass no environment) it is instead a
 * machine with three NVIDIA A100-SXM4-40GB GPUs (see the FAKE_NVML_MIG table):
 *   GPU 0  MIG mode enabled, with two MIG devices of profile 3g.20gb (MIG
 *          device index 0: GPU instance 1, compute instance 0; index 1: GPU
 *          instance 2, compute instance 0; 20096 MiB each)
 *   GPU 1  MIG mode disabled, a whole GPU
 *   GPU 2  fallen off the bus: every query but nvmlDeviceGetHandleByIndex_v2
 *          fails with NVML_ERROR_GPU_IS_LOST
 *
 * MIG device handles come from nvmlDeviceGetMigDeviceHandleByIndex and answer
 * nvmlDeviceGetName ("NVIDIA A100-SXM4-40GB MIG 3g.20gb"), nvmlDeviceGetUUID
 * ("MIG-..."), nvmlDeviceGetMemoryInfo (the instance's memory) and the MIG
 * queries; every other query returns NVML_ERROR_NOT_SUPPORTED on them, as
 * NVML does for device-wide ones. On a GPU in MIG mode, as NVML documents,
 * nvmlDeviceGetUtilizationRates and nvmlDeviceGetNumGpuCores return
 * NVML_ERROR_NOT_SUPPORTED.
 *
 * Environment variables, read by nvmlInit_v2 when it initialises the library
 * (reference count 0 -> 1):
 *   FAKE_NVML_DEVICE_COUNT=N  report N GPUs (0 up to all of them; larger
 *                             values mean all)
 *   FAKE_NVML_INIT_FAIL=1     nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 * and read by every per-device query except nvmlDeviceGetHandleByIndex_v2:
 *   FAKE_NVML_LOST_DEVICES=0,1  queries of these GPU indices (and of their MIG
 *                               devices) fail with NVML_ERROR_GPU_IS_LOST
 *
 * Like NVML, nvmlInit_v2/nvmlShutdown are reference counted, and every other
 * function except nvmlErrorString returns NVML_ERROR_UNINITIALIZED when the
 * library is not initialised.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_ALREADY_INITIALIZED 5
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_INSUFFICIENT_POWER 8
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_IRQ_ISSUE 11
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_CORRUPTED_INFOROM 14
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_UNKNOWN 999

typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct nvmlPciInfo_st {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_MIG_DISABLE 0x0
#define NVML_DEVICE_MIG_ENABLE 0x1
/* nvmlDeviceGetGpuInstanceProfileInfoV's profile indices run below this (NVML_GPU_INSTANCE_PROFILE_COUNT). */
#define NVML_GPU_INSTANCE_PROFILE_COUNT 0x12

typedef struct nvmlGpuInstancePlacement_st {
    unsigned int start;
    unsigned int size;
} nvmlGpuInstancePlacement_t;

typedef struct nvmlGpuInstanceProfileInfo_v2_st {
    unsigned int version;
    unsigned int id;
    unsigned int isP2pSupported;
    unsigned int sliceCount;
    unsigned int instanceCount;
    unsigned int multiprocessorCount;
    unsigned int copyEngineCount;
    unsigned int decoderCount;
    unsigned int encoderCount;
    unsigned int jpegCount;
    unsigned int ofaCount;
    unsigned long long memorySizeMB;
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
} nvmlGpuInstanceProfileInfo_v2_t;

/* NVML_STRUCT_VERSION(GpuInstanceProfileInfo, 2). */
#define nvmlGpuInstanceProfileInfo_v2 ((unsigned int)(sizeof(nvmlGpuInstanceProfileInfo_v2_t) | (2u << 24)))

/* The opaque handle type of NVML; here each handle points at one fake GPU or MIG device. */
struct nvmlDevice_st {
    unsigned int index;
    const char *name;
    const char *uuid;
    const char *bus_id;
    const char *bus_id_legacy;
    unsigned int domain, bus, device;
    unsigned int pci_device_id, pci_subsystem_id;
    unsigned long long memory_total, memory_used;
    unsigned int minor;
    unsigned int cores;
    unsigned int util_gpu, util_memory;
    const char *vbios;
    unsigned int pcie_gen, pcie_width;
    unsigned int temperature;             /* degrees C */
    unsigned int power_usage, power_limit; /* milliwatts */
    unsigned long long energy;            /* millijoules since the driver loaded */
    int lost;                             /* fallen off the bus: every query fails with NVML_ERROR_GPU_IS_LOST */
    unsigned int mig_mode;                /* NVML_DEVICE_MIG_*, current and pending alike */
    unsigned int max_mig_devices;         /* MIG devices the GPU can hold when MIG mode is enabled */
    /* MIG devices only: */
    struct nvmlDevice_st *parent;         /* the GPU it is carved from (NULL for a GPU) */
    unsigned int mig_index;               /* index under the parent */
    unsigned int gpu_instance_id, compute_instance_id;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

/* The opaque GPU instance handle of NVML; here each points at one fake GPU instance. */
struct nvmlGpuInstance_st {
    struct nvmlDevice_st *device;
    unsigned int id;
    unsigned int profile_id;
    nvmlGpuInstancePlacement_t placement;
};
typedef struct nvmlGpuInstance_st *nvmlGpuInstance_t;

typedef struct nvmlGpuInstanceInfo_st {
    nvmlDevice_t device;
    unsigned int id;
    unsigned int profileId;
    nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;

#define FAKE_DRIVER_VERSION "550.54.15"
#define FAKE_CUDA_DRIVER_VERSION 12040
/* The MIG tables are used only by the optional functions, which -DFAKE_NVML_WITHOUT_OPTIONAL leaves out. */
#define FAKE_MAYBE_UNUSED __attribute__((unused))

#ifndef FAKE_NVML_MIG

#define FAKE_MAX_DEVICES 2u

static struct nvmlDevice_st fake_gpus[FAKE_MAX_DEVICES] = {
    {
        .index = 0,
        .name = "NVIDIA H200",
        .uuid = "GPU-11111111-2222-3333-4444-555555555555",
        .bus_id = "00000000:3B:00.0",
        .bus_id_legacy = "0000:3B:00.0",
        .domain = 0x0,
        .bus = 0x3b,
        .device = 0x0,
        .pci_device_id = 0x233510de,
        .pci_subsystem_id = 0x18bf10de,
        .memory_total = 151397597184ull, /* 141 GiB */
        .memory_used = 4294967296ull,    /* 4 GiB */
        .minor = 0,
        .cores = 132,
        .util_gpu = 37,
        .util_memory = 12,
        .vbios = "96.00.A5.00.01",
        .pcie_gen = 5,
        .pcie_width = 16,
        .temperature = 34,
        .power_usage = 118000,
        .power_limit = 700000,
        .energy = 123456789ull,
        .mig_mode = NVML_DEVICE_MIG_DISABLE,
        .max_mig_devices = 7,
    },
    {
        .index = 1,
        .name = "NVIDIA H200",
        .uuid = "GPU-66666666-7777-8888-9999-000000000000",
        .bus_id = "00000000:AF:00.0",
        .bus_id_legacy = "0000:AF:00.0",
        .domain = 0x0,
        .bus = 0xaf,
        .device = 0x0,
        .pci_device_id = 0x233510de,
        .pci_subsystem_id = 0x18bf10de,
        .memory_total = 151397597184ull, /* 141 GiB */
        .memory_used = 1073741824ull,    /* 1 GiB */
        .minor = 1,
        .cores = 132,
        .util_gpu = 37,
        .util_memory = 12,
        .vbios = "96.00.A5.00.01",
        .pcie_gen = 5,
        .pcie_width = 16,
        .temperature = 36,
        .power_usage = 95000,
        .power_limit = 700000,
        .energy = 98765432ull,
        .mig_mode = NVML_DEVICE_MIG_DISABLE,
        .max_mig_devices = 7,
    },
};

/* No MIG devices: one zeroed element each (no parent, no device) that no handle can match. */
static struct nvmlDevice_st fake_migs[1];
static struct nvmlGpuInstance_st fake_gpu_instances[1] FAKE_MAYBE_UNUSED;

#else /* FAKE_NVML_MIG */

#define FAKE_MAX_DEVICES 3u

/* An A100 40GB is 40960 MiB; its 3g.20gb GPU instance has 20096 MiB, as nvidia-smi prints them. */
#define FAKE_A100_MEMORY 42949672960ull
#define FAKE_A100_3G_MEMORY 21072183296ull

static struct nvmlDevice_st fake_gpus[FAKE_MAX_DEVICES] = {
    {
        .index = 0,
        .name = "NVIDIA A100-SXM4-40GB",
        .uuid = "GPU-3f1c6e0a-8b2d-4c57-9e14-7a5b2d9c0e81",
        .bus_id = "00000000:07:00.0",
        .bus_id_legacy = "0000:07:00.0",
        .domain = 0x0,
        .bus = 0x07,
        .device = 0x0,
        .pci_device_id = 0x20b010de,
        .pci_subsystem_id = 0x134f10de,
        .memory_total = FAKE_A100_MEMORY,
        .memory_used = 2174746624ull, /* what its two MIG devices use, 13 + 2061 MiB */
        .minor = 0,
        .cores = 6912,
        .vbios = "92.00.45.00.03",
        .pcie_gen = 4,
        .pcie_width = 16,
        .temperature = 31,
        .power_usage = 61000,
        .power_limit = 400000,
        .energy = 2834567123ull,
        .mig_mode = NVML_DEVICE_MIG_ENABLE,
        .max_mig_devices = 7,
    },
    {
        .index = 1,
        .name = "NVIDIA A100-SXM4-40GB",
        .uuid = "GPU-9d2e47b1-05c3-4f68-8a9e-1c7b3e5d2f60",
        .bus_id = "00000000:87:00.0",
        .bus_id_legacy = "0000:87:00.0",
        .domain = 0x0,
        .bus = 0x87,
        .device = 0x0,
        .pci_device_id = 0x20b010de,
        .pci_subsystem_id = 0x134f10de,
        .memory_total = FAKE_A100_MEMORY,
        .memory_used = 1073741824ull,
        .minor = 1,
        .cores = 6912,
        .util_gpu = 12,
        .util_memory = 3,
        .vbios = "92.00.45.00.03",
        .pcie_gen = 4,
        .pcie_width = 16,
        .temperature = 29,
        .power_usage = 57000,
        .power_limit = 400000,
        .energy = 2712345678ull,
        .mig_mode = NVML_DEVICE_MIG_DISABLE,
        .max_mig_devices = 7,
    },
    {
        .index = 2,
        .name = "NVIDIA A100-SXM4-40GB",
        .uuid = "GPU-c4a81f3d-6e29-4b70-b5d2-8f0e3a6c1d94",
        .bus_id = "00000000:B7:00.0",
        .bus_id_legacy = "0000:B7:00.0",
        .domain = 0x0,
        .bus = 0xb7,
        .device = 0x0,
        .pci_device_id = 0x20b010de,
        .pci_subsystem_id = 0x134f10de,
        .memory_total = FAKE_A100_MEMORY,
        .minor = 2,
        .cores = 6912,
        .vbios = "92.00.45.00.03",
        .pcie_gen = 4,
        .pcie_width = 16,
        .power_limit = 400000,
        .lost = 1,
        .mig_mode = NVML_DEVICE_MIG_DISABLE,
        .max_mig_devices = 7,
    },
};

/* GPU 0's MIG devices, in MIG device index order. */
static struct nvmlDevice_st fake_migs[] = {
    {
        .index = 0,
        .name = "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
        .uuid = "MIG-1f3c2a9e-5b7d-5e21-8c4f-0a6b9d2e7c31",
        .memory_total = FAKE_A100_3G_MEMORY,
        .memory_used = 13631488ull, /* 13 MiB: an idle instance */
        .parent = &fake_gpus[0],
        .mig_index = 0,
        .gpu_instance_id = 1,
        .compute_instance_id = 0,
    },
    {
        .index = 0,
        .name = "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
        .uuid = "MIG-7e2d9b14-3a6c-5f08-9d1e-4b8a2c6f0d57",
        .memory_total = FAKE_A100_3G_MEMORY,
        .memory_used = 2161115136ull, /* 2061 MiB */
        .parent = &fake_gpus[0],
        .mig_index = 1,
        .gpu_instance_id = 2,
        .compute_instance_id = 0,
    },
};

/* GPU 0's GPU instances: two of profile id 9 (3g.20gb), in the two placements an A100 allows for it. */
static struct nvmlGpuInstance_st fake_gpu_instances[] FAKE_MAYBE_UNUSED = {
    {.device = &fake_gpus[0], .id = 1, .profile_id = 9, .placement = {.start = 4, .size = 4}},
    {.device = &fake_gpus[0], .id = 2, .profile_id = 9, .placement = {.start = 0, .size = 4}},
};

#endif /* FAKE_NVML_MIG */

#define FAKE_MIG_DEVICES (sizeof fake_migs / sizeof fake_migs[0])
#define FAKE_GPU_INSTANCES (sizeof fake_gpu_instances / sizeof fake_gpu_instances[0])

/*
 * The GPU instance profiles of an A100-SXM4-40GB by NVML_GPU_INSTANCE_PROFILE_*
 * index, as `nvidia-smi mig -lgip` lists them (an index without an entry is a
 * profile this GPU does not support).
 */
static const nvmlGpuInstanceProfileInfo_v2_t fake_a100_profiles[NVML_GPU_INSTANCE_PROFILE_COUNT] FAKE_MAYBE_UNUSED = {
    [0x0] = {.id = 19, .sliceCount = 1, .instanceCount = 7, .multiprocessorCount = 14, .copyEngineCount = 1, .memorySizeMB = 4864, .name = "MIG 1g.5gb"},
    [0x1] = {.id = 14, .sliceCount = 2, .instanceCount = 3, .multiprocessorCount = 28, .copyEngineCount = 2, .decoderCount = 1, .memorySizeMB = 9984, .name = "MIG 2g.10gb"},
    [0x2] = {.id = 9, .sliceCount = 3, .instanceCount = 2, .multiprocessorCount = 42, .copyEngineCount = 3, .decoderCount = 2, .memorySizeMB = 20096, .name = "MIG 3g.20gb"},
    [0x3] = {.id = 5, .sliceCount = 4, .instanceCount = 1, .multiprocessorCount = 56, .copyEngineCount = 4, .decoderCount = 2, .memorySizeMB = 20096, .name = "MIG 4g.20gb"},
    [0x4] = {.id = 0, .sliceCount = 7, .instanceCount = 1, .multiprocessorCount = 98, .copyEngineCount = 7, .decoderCount = 5, .jpegCount = 1, .ofaCount = 1, .memorySizeMB = 40448, .name = "MIG 7g.40gb"},
    [0x7] = {.id = 20, .sliceCount = 1, .instanceCount = 1, .multiprocessorCount = 14, .copyEngineCount = 1, .decoderCount = 1, .jpegCount = 1, .ofaCount = 1, .memorySizeMB = 4864, .name = "MIG 1g.5gb+me"},
};

static atomic_int init_count;   /* nvmlInit_v2 reference count */
static atomic_uint device_count; /* fixed when the reference count goes 0 -> 1 */

static int initialised(void) {
    return atomic_load(&init_count) > 0;
}

static unsigned int count_from_env(void) {
    const char *s = getenv("FAKE_NVML_DEVICE_COUNT");
    if (s == NULL || *s == '\0') {
        return FAKE_MAX_DEVICES;
    }
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0) {
        return FAKE_MAX_DEVICES;
    }
    return v > (long)FAKE_MAX_DEVICES ? FAKE_MAX_DEVICES : (unsigned int)v;
}

/* True for a handle of a reported GPU (one of the first device_count). */
static int known_gpu(nvmlDevice_t device) {
    for (unsigned int i = 0; i < atomic_load(&device_count); i++) {
        if (device == &fake_gpus[i]) {
            return 1;
        }
    }
    return 0;
}

/* True for a handle of a MIG device of a reported GPU. */
static int known_mig(nvmlDevice_t device) {
    for (size_t i = 0; i < FAKE_MIG_DEVICES; i++) {
        if (device == &fake_migs[i]) {
            return known_gpu(device->parent);
        }
    }
    return 0;
}

/*
 * Checks init and the handle (a GPU's or a MIG device's); also applies lost
 * GPUs (GPU 2 of the MIG build, FAKE_NVML_LOST_DEVICES), whose MIG devices
 * are lost with them.
 */
static nvmlReturn_t check_device(nvmlDevice_t device) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    if (!known_gpu(device) && !known_mig(device)) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    nvmlDevice_t gpu = device->parent != NULL ? device->parent : device;
    if (gpu->lost) {
        return NVML_ERROR_GPU_IS_LOST;
    }
    const char *lost = getenv("FAKE_NVML_LOST_DEVICES");
    if (lost != NULL) {
        for (const char *p = lost; *p != '\0';) {
            char *end = NULL;
            long v = strtol(p, &end, 10);
            if (end == p) {
                p++;
                continue;
            }
            if (v == (long)gpu->index) {
                return NVML_ERROR_GPU_IS_LOST;
            }
            p = end;
        }
    }
    return NVML_SUCCESS;
}

/* check_device for queries of a whole GPU: a MIG device handle gets NVML_ERROR_NOT_SUPPORTED. */
static nvmlReturn_t check_gpu(nvmlDevice_t device) {
    nvmlReturn_t r = check_device(device);
    return r == NVML_SUCCESS && device->parent != NULL ? NVML_ERROR_NOT_SUPPORTED : r;
}

/* Copies `s` into an NVML output buffer of `length` bytes. */
static nvmlReturn_t copy_out(char *buf, unsigned int length, const char *s) {
    if (buf == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    size_t n = strlen(s);
    if (length < n + 1) {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    memcpy(buf, s, n + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    const char *fail = getenv("FAKE_NVML_INIT_FAIL");
    if (fail != NULL && strcmp(fail, "1") == 0) {
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    if (atomic_fetch_add(&init_count, 1) == 0) {
        atomic_store(&device_count, count_from_env());
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    int n = atomic_load(&init_count);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&init_count, &n, n - 1)) {
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_UNINITIALIZED;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt request issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    if (deviceCount == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *deviceCount = atomic_load(&device_count);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    if (device == NULL || index >= atomic_load(&device_count)) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *device = &fake_gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    nvmlReturn_t r = check_device(device);
    return r != NVML_SUCCESS ? r : copy_out(name, length, device->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    nvmlReturn_t r = check_device(device);
    return r != NVML_SUCCESS ? r : copy_out(uuid, length, device->uuid);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    nvmlReturn_t r = check_device(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (memory == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    memory->total = device->memory_total;
    memory->used = device->memory_used;
    memory->free = device->memory_total - device->memory_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (pci == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    memset(pci, 0, sizeof *pci);
    strncpy(pci->busIdLegacy, device->bus_id_legacy, sizeof pci->busIdLegacy - 1);
    strncpy(pci->busId, device->bus_id, sizeof pci->busId - 1);
    pci->domain = device->domain;
    pci->bus = device->bus;
    pci->device = device->device;
    pci->pciDeviceId = device->pci_device_id;
    pci->pciSubSystemId = device->pci_subsystem_id;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (minorNumber == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *minorNumber = device->minor;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (device->mig_mode == NVML_DEVICE_MIG_ENABLE) {
        return NVML_ERROR_NOT_SUPPORTED; /* "On MIG-enabled GPUs, querying device utilization rates is not currently supported." */
    }
    if (utilization == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    utilization->gpu = device->util_gpu;
    utilization->memory = device->util_memory;
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_WITHOUT_OPTIONAL
nvmlReturn_t nvmlDeviceGetNumGpuCores(nvmlDevice_t device, unsigned int *numCores) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (device->mig_mode == NVML_DEVICE_MIG_ENABLE) {
        return NVML_ERROR_NOT_SUPPORTED; /* nvml.h: not supported on MIG-enabled GPUs */
    }
    if (numCores == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *numCores = device->cores;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    return copy_out(version, length, FAKE_DRIVER_VERSION);
}

#ifndef FAKE_NVML_WITHOUT_OPTIONAL
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    if (cudaDriverVersion == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *cudaDriverVersion = FAKE_CUDA_DRIVER_VERSION;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_WITHOUT_OPTIONAL

nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length) {
    nvmlReturn_t r = check_gpu(device);
    return r != NVML_SUCCESS ? r : copy_out(version, length, device->vbios);
}

/* Copies the `size`-byte field at `offset` of the fake GPU to `out` once the handle is checked. */
static nvmlReturn_t device_field(nvmlDevice_t device, void *out, size_t offset, size_t size) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (out == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    memcpy(out, (const char *)device + offset, size);
    return NVML_SUCCESS;
}

#define DEVICE_FIELD(device, out, field) \
    device_field((device), (out), offsetof(struct nvmlDevice_st, field), sizeof ((struct nvmlDevice_st *)0)->field)

nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *maxLinkGen) {
    return DEVICE_FIELD(device, maxLinkGen, pcie_gen);
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *maxLinkWidth) {
    return DEVICE_FIELD(device, maxLinkWidth, pcie_width);
}

/* sensorType is an nvmlTemperatureSensors_t: NVML_TEMPERATURE_GPU (0) is the only sensor. */
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType, unsigned int *temp) {
    if (sensorType != 0 && check_gpu(device) == NVML_SUCCESS) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    return DEVICE_FIELD(device, temp, temperature);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    return DEVICE_FIELD(device, power, power_usage);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    return DEVICE_FIELD(device, limit, power_limit);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    return DEVICE_FIELD(device, energy, energy);
}

/* ---- Multi-Instance GPU ---- */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (currentMode == NULL || pendingMode == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *currentMode = device->mig_mode;
    *pendingMode = device->mig_mode;
    return NVML_SUCCESS;
}

/* Zero when MIG mode is disabled, as nvml.h says. */
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (count == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *count = device->mig_mode == NVML_DEVICE_MIG_ENABLE ? device->max_mig_devices : 0;
    return NVML_SUCCESS;
}

/* NVML_ERROR_NOT_FOUND for an index below the maximum that holds no MIG device. */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (migDevice == NULL || device->mig_mode != NVML_DEVICE_MIG_ENABLE || index >= device->max_mig_devices) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < FAKE_MIG_DEVICES; i++) {
        if (fake_migs[i].parent == device && fake_migs[i].mig_index == index) {
            *migDevice = &fake_migs[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice) {
    nvmlReturn_t r = check_device(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (isMigDevice == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *isMigDevice = device->parent != NULL;
    return NVML_SUCCESS;
}

/* The MIG device queries below take MIG device handles only. */
static nvmlReturn_t check_mig(nvmlDevice_t device, const void *out) {
    nvmlReturn_t r = check_device(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    return out == NULL || device->parent == NULL ? NVML_ERROR_INVALID_ARGUMENT : NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
    nvmlReturn_t r = check_mig(device, id);
    if (r == NVML_SUCCESS) {
        *id = device->gpu_instance_id;
    }
    return r;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) {
    nvmlReturn_t r = check_mig(device, id);
    if (r == NVML_SUCCESS) {
        *id = device->compute_instance_id;
    }
    return r;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device) {
    nvmlReturn_t r = check_mig(migDevice, device);
    if (r == NVML_SUCCESS) {
        *device = migDevice->parent;
    }
    return r;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned int id, nvmlGpuInstance_t *gpuInstance) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (gpuInstance == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if (device->mig_mode != NVML_DEVICE_MIG_ENABLE) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    for (size_t i = 0; i < FAKE_GPU_INSTANCES; i++) {
        if (fake_gpu_instances[i].device == device && fake_gpu_instances[i].id == id) {
            *gpuInstance = &fake_gpu_instances[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    int known = 0;
    for (size_t i = 0; i < FAKE_GPU_INSTANCES; i++) {
        known |= gpuInstance == &fake_gpu_instances[i] && known_gpu(gpuInstance->device);
    }
    if (!known || info == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t r = check_gpu(gpuInstance->device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    info->device = gpuInstance->device;
    info->id = gpuInstance->id;
    info->profileId = gpuInstance->profile_id;
    info->placement = gpuInstance->placement;
    return NVML_SUCCESS;
}

/* `profile` is an NVML_GPU_INSTANCE_PROFILE_* index; info->version must be nvmlGpuInstanceProfileInfo_v2. */
nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_v2_t *info) {
    nvmlReturn_t r = check_gpu(device);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (info == NULL || info->version != nvmlGpuInstanceProfileInfo_v2 || profile >= NVML_GPU_INSTANCE_PROFILE_COUNT) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    /* Only A100s are ever in MIG mode here (the H200s of the default build never are). */
    if (device->mig_mode != NVML_DEVICE_MIG_ENABLE || fake_a100_profiles[profile].name[0] == '\0') {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *info = fake_a100_profiles[profile];
    info->version = nvmlGpuInstanceProfileInfo_v2;
    return NVML_SUCCESS;
}

#endif /* FAKE_NVML_WITHOUT_OPTIONAL */
