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
 *
 * Build: cc -shared -fPIC -o <dir>/libnvidia-ml.so.1 fake_nvml.c
 * Add -DFAKE_NVML_WITHOUT_OPTIONAL to leave out the optional functions, as
 * an older driver's library does (the plugin must then still work).
 *
 * It reports two NVIDIA H200 GPUs (see fake_gpus below: VBIOS 96.00.A5.00.01,
 * PCIe 5.0 x16, 34 and 36 C, 118 and 95 W of a 700 W limit), driver 550.54.15,
 * CUDA driver version 12040. Environment variables, read by nvmlInit_v2
 * when it initialises the library (reference count 0 -> 1):
 *   FAKE_NVML_DEVICE_COUNT=N  report N GPUs (0, 1 or 2; larger values mean 2)
 *   FAKE_NVML_INIT_FAIL=1     nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 * and read by every per-device query except nvmlDeviceGetHandleByIndex_v2:
 *   FAKE_NVML_LOST_DEVICES=0,1  queries of these GPU indices fail with
 *                               NVML_ERROR_GPU_IS_LOST
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

/* The opaque handle type of NVML; here each handle points at one fake GPU. */
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
};
typedef struct nvmlDevice_st *nvmlDevice_t;

#define FAKE_MAX_DEVICES 2u
#define FAKE_DRIVER_VERSION "550.54.15"
#define FAKE_CUDA_DRIVER_VERSION 12040

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
    },
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

/* Checks init and the handle; also applies FAKE_NVML_LOST_DEVICES. */
static nvmlReturn_t check_device(nvmlDevice_t device) {
    if (!initialised()) {
        return NVML_ERROR_UNINITIALIZED;
    }
    int known = 0;
    for (unsigned int i = 0; i < atomic_load(&device_count); i++) {
        known |= device == &fake_gpus[i];
    }
    if (!known) {
        return NVML_ERROR_INVALID_ARGUMENT;
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
            if (v == (long)device->index) {
                return NVML_ERROR_GPU_IS_LOST;
            }
            p = end;
        }
    }
    return NVML_SUCCESS;
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
    nvmlReturn_t r = check_device(device);
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
    nvmlReturn_t r = check_device(device);
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
    nvmlReturn_t r = check_device(device);
    if (r != NVML_SUCCESS) {
        return r;
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
    nvmlReturn_t r = check_device(device);
    if (r != NVML_SUCCESS) {
        return r;
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
    nvmlReturn_t r = check_device(device);
    return r != NVML_SUCCESS ? r : copy_out(version, length, device->vbios);
}

/* Copies the `size`-byte field at `offset` of the fake GPU to `out` once the handle is checked. */
static nvmlReturn_t device_field(nvmlDevice_t device, void *out, size_t offset, size_t size) {
    nvmlReturn_t r = check_device(device);
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
    if (sensorType != 0 && check_device(device) == NVML_SUCCESS) {
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

#endif /* FAKE_NVML_WITHOUT_OPTIONAL */
