/*
 * A stand-in for FuriosaAI's libfuriosa_smi.so used by Hangar's tests of the rngd accelerator
 * plugin (Tests/Fixtures/Vendors/rngd). It implements, with the signatures, struct layouts and
 * FuriosaSmiReturnCode values of furiosa_smi.h (furiosa-smi 2025.x, as vendored by
 * furiosa-ai/furiosa-smi-go), the calls the plugin makes:
 *
 *   furiosa_smi_init furiosa_smi_get_device_handles furiosa_smi_get_device_info
 *   furiosa_smi_get_device_liveness furiosa_smi_get_driver_info furiosa_smi_get_device_files
 *   furiosa_smi_get_device_performance_counter furiosa_smi_get_device_power_consumption
 *   furiosa_smi_get_device_temperature furiosa_smi_get_pcie_link_info
 *   furiosa_smi_get_memory_utilization
 *
 * The machine: three RNGD cards (8 PEs, 48 GiB of DRAM each) on a two-socket server, npu0 at
 * 0000:27:00.0 on NUMA node 0 and npu1, npu2 at 0000:9e:00.0 and 0000:a4:00.0 on node 1; driver
 * 2025.3.0. npu2 has stopped answering: its liveness is false and its telemetry calls fail with
 * FURIOSA_SMI_RETURN_CODE_DEVICE_LOST_ERROR. The PE cycle counters advance by one million
 * cycles per query, npu0's PEs busy 37.5% of them and npu1's 62.5%.
 *
 * Like the real library, every call but furiosa_smi_init fails with
 * FURIOSA_SMI_RETURN_CODE_UNINITIALIZED_ERROR before furiosa_smi_init succeeded, a NULL output
 * pointer gives FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR and an unknown handle
 * FURIOSA_SMI_RETURN_CODE_DEVICE_NOT_FOUND_ERROR. Built with -DFAKE_FURIOSA_SMI_INIT_FAILS
 * (fake_furiosa_smi_initfail.c), furiosa_smi_init fails with
 * FURIOSA_SMI_RETURN_CODE_INCOMPATIBLE_DRIVER_ERROR, as it does when the kernel driver is
 * missing or does not match the library.
 *
 * Build: cc -shared -fPIC -o libfuriosa_smi.so fake_furiosa_smi.c
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define FURIOSA_SMI_MAX_PATH_SIZE 256
#define FURIOSA_SMI_MAX_PE_SIZE 64
#define FURIOSA_SMI_MAX_DEVICE_HANDLE_SIZE 64
#define FURIOSA_SMI_MAX_CSTR_SIZE 96

typedef enum {
    FURIOSA_SMI_ARCH_WARBOY = 0,
    FURIOSA_SMI_ARCH_RNGD,
    FURIOSA_SMI_ARCH_RNGD_MAX,
    FURIOSA_SMI_ARCH_RNGD_S,
} FuriosaSmiArch;

typedef enum {
    FURIOSA_SMI_RETURN_CODE_OK = 0,
    FURIOSA_SMI_RETURN_CODE_INVALID_ARGUMENT_ERROR,
    FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR,
    FURIOSA_SMI_RETURN_CODE_MAX_BUFFER_SIZE_EXCEED_ERROR,
    FURIOSA_SMI_RETURN_CODE_DEVICE_NOT_FOUND_ERROR,
    FURIOSA_SMI_RETURN_CODE_DEVICE_LOST_ERROR,
    FURIOSA_SMI_RETURN_CODE_DEVICE_BUSY_ERROR,
    FURIOSA_SMI_RETURN_CODE_IO_ERROR,
    FURIOSA_SMI_RETURN_CODE_PERMISSION_DENIED_ERROR,
    FURIOSA_SMI_RETURN_CODE_UNKNOWN_ARCH_ERROR,
    FURIOSA_SMI_RETURN_CODE_INCOMPATIBLE_DRIVER_ERROR,
    FURIOSA_SMI_RETURN_CODE_UNEXPECTED_VALUE_ERROR,
    FURIOSA_SMI_RETURN_CODE_PARSE_ERROR,
    FURIOSA_SMI_RETURN_CODE_UNKNOWN_ERROR,
    FURIOSA_SMI_RETURN_CODE_INTERNAL_ERROR,
    FURIOSA_SMI_RETURN_CODE_UNINITIALIZED_ERROR,
    FURIOSA_SMI_RETURN_CODE_CONTEXT_ERROR,
    FURIOSA_SMI_RETURN_CODE_NOT_SUPPORTED_ERROR,
} FuriosaSmiReturnCode;

typedef uint32_t FuriosaSmiDeviceHandle;

typedef struct {
    uint32_t count;
    FuriosaSmiDeviceHandle device_handles[FURIOSA_SMI_MAX_DEVICE_HANDLE_SIZE];
} FuriosaSmiDeviceHandles;

typedef struct {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
    char metadata[FURIOSA_SMI_MAX_CSTR_SIZE];
    char prerelease[FURIOSA_SMI_MAX_CSTR_SIZE];
} FuriosaSmiVersion;

typedef struct {
    uint32_t index;
    FuriosaSmiArch arch;
    uint32_t core_num;
    int32_t numa_node;
    char name[FURIOSA_SMI_MAX_CSTR_SIZE];
    char serial[FURIOSA_SMI_MAX_CSTR_SIZE];
    char uuid[FURIOSA_SMI_MAX_CSTR_SIZE];
    char bdf[FURIOSA_SMI_MAX_CSTR_SIZE];
    uint16_t major;
    uint16_t minor;
    FuriosaSmiVersion firmware_version;
} FuriosaSmiDeviceInfo;

typedef struct {
    uint32_t core_start;
    uint32_t core_end;
    char path[FURIOSA_SMI_MAX_PATH_SIZE];
} FuriosaSmiDeviceFile;

typedef struct {
    uint32_t count;
    FuriosaSmiDeviceFile device_files[FURIOSA_SMI_MAX_DEVICE_HANDLE_SIZE];
} FuriosaSmiDeviceFiles;

typedef struct {
    long timestamp;
    uint32_t core;
    uint64_t cycle_count;
    uint64_t task_execution_cycle;
} FuriosaSmiPePerformanceCounter;

typedef struct {
    uint32_t pe_count;
    FuriosaSmiPePerformanceCounter pe_performance_counters[FURIOSA_SMI_MAX_PE_SIZE];
} FuriosaSmiDevicePerformanceCounter;

typedef struct {
    double rms_total;
} FuriosaSmiDevicePowerConsumption;

typedef struct {
    double soc_peak;
    double ambient;
} FuriosaSmiDeviceTemperature;

typedef struct {
    uint8_t pcie_gen_status;
    uint32_t link_width_status;
    double link_speed_status;
    uint32_t max_link_width_capability;
    double max_link_speed_capability;
} FuriosaSmiPcieLinkInfo;

typedef struct {
    uint32_t count;
    uint32_t core[FURIOSA_SMI_MAX_PE_SIZE];
    uint64_t total_bytes;
    uint64_t in_use_bytes;
} FuriosaSmiMemoryBlock;

typedef struct {
    uint32_t count;
    FuriosaSmiMemoryBlock memory[FURIOSA_SMI_MAX_PE_SIZE];
} FuriosaSmiMemory;

typedef struct {
    FuriosaSmiMemory dram;
    FuriosaSmiMemory dram_shared;
    FuriosaSmiMemory sram;
    FuriosaSmiMemory instruction;
} FuriosaSmiMemoryUtilization;

/* ------------------------------------------------------------------------ */
/* The fake machine                                                          */
/* ------------------------------------------------------------------------ */

#define GIB (1024ull * 1024ull * 1024ull)
#define MIB (1024ull * 1024ull)
#define PES 8

static const struct fake_npu {
    const char *serial, *uuid, *bdf;
    int32_t numa_node;
    uint16_t major;
    bool alive;
    /* Parts per 1000 of PE cycles spent on tasks. */
    uint64_t busy_permille;
    uint64_t dram_in_use, sram_in_use;
    double soc_peak, ambient, watts;
} fake_npus[] = {
    {"RNGD0A25C0012", "1B8F7D20-5A3E-4C61-9D2B-7E0F4A6C1D80", "0000:27:00.0", 0, 508, true, 375, 12 * GIB, 96 * MIB, 47.5, 31.0, 63.2},
    {"RNGD0A25C0013", "1B8F7D20-5A3E-4C61-9D2B-7E0F4A6C1D81", "0000:9e:00.0", 1, 509, true, 625, 30 * GIB, 160 * MIB, 55.25, 32.5, 88.9},
    {"RNGD0A25C0014", "1B8F7D20-5A3E-4C61-9D2B-7E0F4A6C1D82", "0000:a4:00.0", 1, 510, false, 0, 0, 0, 0, 0, 0},
};
#define FAKE_NPU_COUNT (sizeof fake_npus / sizeof fake_npus[0])

static atomic_int initialised;
static _Atomic uint64_t counter_queries[FAKE_NPU_COUNT];

#define CHECK_INIT()                                        \
    do {                                                    \
        if (!atomic_load(&initialised))                     \
            return FURIOSA_SMI_RETURN_CODE_UNINITIALIZED_ERROR; \
    } while (0)

/* Handles are the device indices, as the library hands them out. */
#define CHECK_HANDLE(handle)                                   \
    do {                                                       \
        if ((handle) >= FAKE_NPU_COUNT)                        \
            return FURIOSA_SMI_RETURN_CODE_DEVICE_NOT_FOUND_ERROR; \
    } while (0)

/* Telemetry of a device that stopped answering. */
#define CHECK_ALIVE(handle)                                 \
    do {                                                    \
        if (!fake_npus[handle].alive)                       \
            return FURIOSA_SMI_RETURN_CODE_DEVICE_LOST_ERROR; \
    } while (0)

static void set_cstr(char *dst, const char *src) { snprintf(dst, FURIOSA_SMI_MAX_CSTR_SIZE, "%s", src); }

FuriosaSmiReturnCode furiosa_smi_init(void)
{
#ifdef FAKE_FURIOSA_SMI_INIT_FAILS
    return FURIOSA_SMI_RETURN_CODE_INCOMPATIBLE_DRIVER_ERROR;
#else
    atomic_store(&initialised, 1); /* initialising again is harmless */
    return FURIOSA_SMI_RETURN_CODE_OK;
#endif
}

FuriosaSmiReturnCode furiosa_smi_get_device_handles(FuriosaSmiDeviceHandles *out_handles)
{
    CHECK_INIT();
    if (out_handles == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    memset(out_handles, 0, sizeof *out_handles);
    out_handles->count = FAKE_NPU_COUNT;
    for (uint32_t i = 0; i < FAKE_NPU_COUNT; i++)
        out_handles->device_handles[i] = i;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_info(FuriosaSmiDeviceHandle handle, FuriosaSmiDeviceInfo *out_device_info)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_device_info == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    const struct fake_npu *n = &fake_npus[handle];
    FuriosaSmiDeviceInfo *i = out_device_info;
    memset(i, 0, sizeof *i);
    i->index = handle;
    i->arch = FURIOSA_SMI_ARCH_RNGD;
    i->core_num = PES;
    i->numa_node = n->numa_node;
    snprintf(i->name, sizeof i->name, "npu%u", handle);
    set_cstr(i->serial, n->serial);
    set_cstr(i->uuid, n->uuid);
    set_cstr(i->bdf, n->bdf);
    i->major = n->major;
    i->minor = 0;
    i->firmware_version.major = 2025;
    i->firmware_version.minor = 3;
    i->firmware_version.patch = 0;
    set_cstr(i->firmware_version.metadata, "6b2a1d4");
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_files(FuriosaSmiDeviceHandle handle, FuriosaSmiDeviceFiles *out_device_files)
{
    static const struct { uint32_t start, end; } groups[] = {
        {0, 0}, {1, 1}, {0, 1}, {2, 2}, {3, 3}, {2, 3}, {0, 3}, {4, 4}, {5, 5}, {4, 5}, {6, 6}, {7, 7}, {6, 7}, {4, 7},
    };
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_device_files == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    memset(out_device_files, 0, sizeof *out_device_files);
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        FuriosaSmiDeviceFile *f = &out_device_files->device_files[out_device_files->count++];
        f->core_start = groups[g].start;
        f->core_end = groups[g].end;
        if (groups[g].start == groups[g].end)
            snprintf(f->path, sizeof f->path, "/dev/rngd/npu%upe%u", handle, groups[g].start);
        else
            snprintf(f->path, sizeof f->path, "/dev/rngd/npu%upe%u-%u", handle, groups[g].start, groups[g].end);
    }
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_liveness(FuriosaSmiDeviceHandle handle, bool *out_liveness)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_liveness == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    *out_liveness = fake_npus[handle].alive;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_driver_info(FuriosaSmiVersion *out_driver_info)
{
    CHECK_INIT();
    if (out_driver_info == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    memset(out_driver_info, 0, sizeof *out_driver_info);
    out_driver_info->major = 2025;
    out_driver_info->minor = 3;
    out_driver_info->patch = 0;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_performance_counter(FuriosaSmiDeviceHandle handle,
                                                                FuriosaSmiDevicePerformanceCounter *out_performance_counter_info)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_performance_counter_info == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    CHECK_ALIVE(handle);
    uint64_t q = atomic_fetch_add(&counter_queries[handle], 1) + 1;
    FuriosaSmiDevicePerformanceCounter *c = out_performance_counter_info;
    memset(c, 0, sizeof *c);
    c->pe_count = PES;
    for (uint32_t pe = 0; pe < PES; pe++) {
        FuriosaSmiPePerformanceCounter *p = &c->pe_performance_counters[pe];
        p->timestamp = (long)time(NULL);
        p->core = pe;
        p->cycle_count = q * 1000000ull;
        p->task_execution_cycle = q * 1000ull * fake_npus[handle].busy_permille;
    }
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_power_consumption(FuriosaSmiDeviceHandle handle,
                                                              FuriosaSmiDevicePowerConsumption *out_power_consumption)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_power_consumption == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    CHECK_ALIVE(handle);
    out_power_consumption->rms_total = fake_npus[handle].watts;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_device_temperature(FuriosaSmiDeviceHandle handle, FuriosaSmiDeviceTemperature *out_temperature)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_temperature == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    CHECK_ALIVE(handle);
    out_temperature->soc_peak = fake_npus[handle].soc_peak;
    out_temperature->ambient = fake_npus[handle].ambient;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

FuriosaSmiReturnCode furiosa_smi_get_pcie_link_info(FuriosaSmiDeviceHandle handle, FuriosaSmiPcieLinkInfo *out_pcie_link_info)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_pcie_link_info == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    CHECK_ALIVE(handle);
    out_pcie_link_info->pcie_gen_status = 5;
    out_pcie_link_info->link_width_status = 16;
    out_pcie_link_info->link_speed_status = 32.0;
    out_pcie_link_info->max_link_width_capability = 16;
    out_pcie_link_info->max_link_speed_capability = 32.0;
    return FURIOSA_SMI_RETURN_CODE_OK;
}

/* One block covering all PEs, as a device without PE fusion reports it. */
static void one_block(FuriosaSmiMemory *m, uint64_t total, uint64_t in_use)
{
    m->count = 1;
    m->memory[0].count = PES;
    for (uint32_t pe = 0; pe < PES; pe++)
        m->memory[0].core[pe] = pe;
    m->memory[0].total_bytes = total;
    m->memory[0].in_use_bytes = in_use;
}

FuriosaSmiReturnCode furiosa_smi_get_memory_utilization(FuriosaSmiDeviceHandle handle, FuriosaSmiMemoryUtilization *out_memory_utilization)
{
    CHECK_INIT();
    CHECK_HANDLE(handle);
    if (out_memory_utilization == NULL)
        return FURIOSA_SMI_RETURN_CODE_NULL_POINTER_ERROR;
    CHECK_ALIVE(handle);
    FuriosaSmiMemoryUtilization *m = out_memory_utilization;
    memset(m, 0, sizeof *m);
    one_block(&m->dram, 48 * GIB, fake_npus[handle].dram_in_use);
    one_block(&m->sram, 256 * MIB, fake_npus[handle].sram_in_use);
    one_block(&m->instruction, 64 * MIB, 8 * MIB);
    return FURIOSA_SMI_RETURN_CODE_OK;
}
