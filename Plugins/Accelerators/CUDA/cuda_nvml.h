/*
 * The small subset of the NVIDIA Management Library (NVML) ABI that the
 * Hangar CUDA accelerator plugin uses, declared here so that the plugin
 * builds without NVIDIA's nvml.h. Every type and signature below follows the
 * published NVML API reference; the library itself (libnvidia-ml.so.1, part
 * of the NVIDIA driver) is loaded at run time with dlopen, never linked.
 *
 * Only append to this file, and check any new struct against the NVML
 * reference (docs.nvidia.com/deploy/nvml-api): the layouts must match the
 * real library byte for byte.
 */
#ifndef HANGAR_CUDA_NVML_H
#define HANGAR_CUDA_NVML_H

#include <assert.h>
#include <stddef.h>

/* nvmlReturn_t is a C enum in nvml.h; it has the size and ABI of int. */
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

/* Buffer sizes recommended by nvml.h (the _V2 sizes are the current ones). */
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16

/* Opaque device handle. */
typedef struct nvmlDevice_st *nvmlDevice_t;

/* Memory of a device in bytes (nvmlDeviceGetMemoryInfo, version 1). */
typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

/* Utilisation over the last sample period, in percent. */
typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

/* PCI information of a device, as filled by nvmlDeviceGetPciInfo_v3. */
typedef struct nvmlPciInfo_st {
    /* Legacy "domain:bus:device.function" with a 4-digit domain. */
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    /* (device id << 16) | vendor id. */
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    /* "domain:bus:device.function" with an 8-digit domain, e.g. "00000000:3B:00.0". */
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} nvmlPciInfo_t;

static_assert(sizeof(nvmlReturn_t) == 4, "nvmlReturn_t must be 32-bit");
static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");
static_assert(sizeof(nvmlUtilization_t) == 8, "nvmlUtilization_t layout");
static_assert(offsetof(nvmlPciInfo_t, domain) == 16, "nvmlPciInfo_t layout");
static_assert(offsetof(nvmlPciInfo_t, busId) == 36, "nvmlPciInfo_t layout");
static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");

/* Function types, named after the NVML symbols they are looked up by. */
typedef nvmlReturn_t (*nvmlInit_v2_fn)(void);
typedef nvmlReturn_t (*nvmlShutdown_fn)(void);
typedef const char *(*nvmlErrorString_fn)(nvmlReturn_t result);
typedef nvmlReturn_t (*nvmlDeviceGetCount_v2_fn)(unsigned int *deviceCount);
typedef nvmlReturn_t (*nvmlDeviceGetHandleByIndex_v2_fn)(unsigned int index, nvmlDevice_t *device);
typedef nvmlReturn_t (*nvmlDeviceGetName_fn)(nvmlDevice_t device, char *name, unsigned int length);
typedef nvmlReturn_t (*nvmlDeviceGetUUID_fn)(nvmlDevice_t device, char *uuid, unsigned int length);
typedef nvmlReturn_t (*nvmlDeviceGetMemoryInfo_fn)(nvmlDevice_t device, nvmlMemory_t *memory);
typedef nvmlReturn_t (*nvmlDeviceGetPciInfo_v3_fn)(nvmlDevice_t device, nvmlPciInfo_t *pci);
typedef nvmlReturn_t (*nvmlDeviceGetMinorNumber_fn)(nvmlDevice_t device, unsigned int *minorNumber);
typedef nvmlReturn_t (*nvmlDeviceGetUtilizationRates_fn)(nvmlDevice_t device, nvmlUtilization_t *utilization);
typedef nvmlReturn_t (*nvmlSystemGetDriverVersion_fn)(char *version, unsigned int length);
typedef nvmlReturn_t (*nvmlSystemGetCudaDriverVersion_fn)(int *cudaDriverVersion);
typedef nvmlReturn_t (*nvmlDeviceGetNumGpuCores_fn)(nvmlDevice_t device, unsigned int *numCores);

/* Appended for the ABI 1.2 device facts and measures; the plugin looks every one of these up optionally. */

/* Buffer size guaranteed to be large enough for nvmlDeviceGetVbiosVersion. */
#define NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE 32
/* nvmlTemperatureSensors_t (a C enum in nvml.h): the GPU die, the one sensor nvml.h names. */
#define NVML_TEMPERATURE_GPU 0

typedef nvmlReturn_t (*nvmlDeviceGetVbiosVersion_fn)(nvmlDevice_t device, char *version, unsigned int length);
/* Largest PCIe link generation and width the device and the system together allow (not the current, power-saved link). */
typedef nvmlReturn_t (*nvmlDeviceGetMaxPcieLinkGeneration_fn)(nvmlDevice_t device, unsigned int *maxLinkGen);
typedef nvmlReturn_t (*nvmlDeviceGetMaxPcieLinkWidth_fn)(nvmlDevice_t device, unsigned int *maxLinkWidth);
/* Degrees Celsius; sensorType is an nvmlTemperatureSensors_t, passed as int. */
typedef nvmlReturn_t (*nvmlDeviceGetTemperature_fn)(nvmlDevice_t device, int sensorType, unsigned int *temp);
/* Milliwatts drawn (by the whole board on Ampere and newer). */
typedef nvmlReturn_t (*nvmlDeviceGetPowerUsage_fn)(nvmlDevice_t device, unsigned int *power);
/* Milliwatts: the power limit the driver enforces. */
typedef nvmlReturn_t (*nvmlDeviceGetEnforcedPowerLimit_fn)(nvmlDevice_t device, unsigned int *limit);
/* Millijoules consumed since the driver was last reloaded. */
typedef nvmlReturn_t (*nvmlDeviceGetTotalEnergyConsumption_fn)(nvmlDevice_t device, unsigned long long *energy);

/*
 * Appended for Multi-Instance GPU (MIG, Ampere and newer, driver R450 and
 * newer): the plugin looks every one of these up optionally and treats GPUs
 * as whole when they are missing. Layouts from nvml.h's "Multi Instance GPU
 * Management" group.
 */

/* nvmlDeviceGetMigMode's currentMode and pendingMode values. */
#define NVML_DEVICE_MIG_DISABLE 0x0
#define NVML_DEVICE_MIG_ENABLE 0x1

/* Opaque GPU instance handle (a GPU instance holds one or more compute instances; a MIG device is one compute instance). */
typedef struct nvmlGpuInstance_st *nvmlGpuInstance_t;

/* Where a GPU instance sits among the GPU's memory slices. */
typedef struct nvmlGpuInstancePlacement_st {
    unsigned int start;
    unsigned int size;
} nvmlGpuInstancePlacement_t;

/* nvmlGpuInstanceGetInfo: the parent device, the instance id and the id (not the index) of its profile. */
typedef struct nvmlGpuInstanceInfo_st {
    nvmlDevice_t device;
    unsigned int id;
    unsigned int profileId;
    nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;

/*
 * GPU instance profile information, version 2 (nvmlDeviceGetGpuInstanceProfileInfoV):
 * version 1's fields with a leading version word and a trailing name such as "MIG 3g.20gb".
 */
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

/* nvml.h's NVML_STRUCT_VERSION(GpuInstanceProfileInfo, 2): the struct size with the version in the top byte. */
#define nvmlGpuInstanceProfileInfo_v2 ((unsigned int)(sizeof(nvmlGpuInstanceProfileInfo_v2_t) | (2u << 24)))

static_assert(offsetof(nvmlGpuInstanceInfo_t, id) == sizeof(void *), "nvmlGpuInstanceInfo_t layout");
static_assert(offsetof(nvmlGpuInstanceInfo_t, placement) == sizeof(void *) + 8, "nvmlGpuInstanceInfo_t layout");
static_assert(offsetof(nvmlGpuInstanceProfileInfo_v2_t, memorySizeMB) == 48, "nvmlGpuInstanceProfileInfo_v2_t layout");
static_assert(offsetof(nvmlGpuInstanceProfileInfo_v2_t, name) == 56, "nvmlGpuInstanceProfileInfo_v2_t layout");
static_assert(sizeof(nvmlGpuInstanceProfileInfo_v2_t) == 152, "nvmlGpuInstanceProfileInfo_v2_t layout");

typedef nvmlReturn_t (*nvmlDeviceGetMigMode_fn)(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode);
/* Most MIG devices the GPU can hold (7 on A100/H100); 0 when MIG is off or unsupported. */
typedef nvmlReturn_t (*nvmlDeviceGetMaxMigDeviceCount_fn)(nvmlDevice_t device, unsigned int *count);
/* NVML_ERROR_NOT_FOUND when no MIG device exists at `index` (indices below the maximum may be empty). */
typedef nvmlReturn_t (*nvmlDeviceGetMigDeviceHandleByIndex_fn)(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice);
/* On a MIG device handle: the ids of its GPU instance and compute instance, valid until they are destroyed. */
typedef nvmlReturn_t (*nvmlDeviceGetGpuInstanceId_fn)(nvmlDevice_t device, unsigned int *id);
typedef nvmlReturn_t (*nvmlDeviceGetComputeInstanceId_fn)(nvmlDevice_t device, unsigned int *id);
/* On the parent GPU's handle; needs a privileged user. */
typedef nvmlReturn_t (*nvmlDeviceGetGpuInstanceById_fn)(nvmlDevice_t device, unsigned int id, nvmlGpuInstance_t *gpuInstance);
typedef nvmlReturn_t (*nvmlGpuInstanceGetInfo_fn)(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info);
/* `profile` is an NVML_GPU_INSTANCE_PROFILE_* index (0, 1, ... until NVML_ERROR_INVALID_ARGUMENT); info->version must be set. */
typedef nvmlReturn_t (*nvmlDeviceGetGpuInstanceProfileInfoV_fn)(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_v2_t *info);

#endif /* HANGAR_CUDA_NVML_H */
