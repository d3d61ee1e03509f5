/*
 * The part of FuriosaAI's libfuriosa_smi C API that the rngd plugin uses, declared here so the
 * plugin builds without Furiosa's SDK and loads the library with dlopen. Types, sizes and
 * return codes follow furiosa_smi.h as published with furiosa-smi (and vendored by
 * furiosa-ai/furiosa-smi-go); the layouts must match it byte for byte.
 */
#ifndef HANGAR_RNGD_SMI_H
#define HANGAR_RNGD_SMI_H

#include <stdbool.h>
#include <stdint.h>

#define RNGD_SMI_MAX_DEVICE_HANDLE_SIZE 64
#define RNGD_SMI_MAX_PE_SIZE 64
#define RNGD_SMI_MAX_CSTR_SIZE 96

/* FuriosaSmiReturnCode (an enum, so an int on every ABI Linux uses). */
typedef int rngd_smi_return;
#define RNGD_SMI_OK 0
#define RNGD_SMI_INVALID_ARGUMENT_ERROR 1
#define RNGD_SMI_NULL_POINTER_ERROR 2
#define RNGD_SMI_MAX_BUFFER_SIZE_EXCEED_ERROR 3
#define RNGD_SMI_DEVICE_NOT_FOUND_ERROR 4
#define RNGD_SMI_DEVICE_LOST_ERROR 5
#define RNGD_SMI_DEVICE_BUSY_ERROR 6
#define RNGD_SMI_IO_ERROR 7
#define RNGD_SMI_PERMISSION_DENIED_ERROR 8
#define RNGD_SMI_UNKNOWN_ARCH_ERROR 9
#define RNGD_SMI_INCOMPATIBLE_DRIVER_ERROR 10
#define RNGD_SMI_UNEXPECTED_VALUE_ERROR 11
#define RNGD_SMI_PARSE_ERROR 12
#define RNGD_SMI_UNKNOWN_ERROR 13
#define RNGD_SMI_INTERNAL_ERROR 14
#define RNGD_SMI_UNINITIALIZED_ERROR 15
#define RNGD_SMI_CONTEXT_ERROR 16
#define RNGD_SMI_NOT_SUPPORTED_ERROR 17

/* FuriosaSmiArch. */
#define RNGD_SMI_ARCH_WARBOY 0
#define RNGD_SMI_ARCH_RNGD 1
#define RNGD_SMI_ARCH_RNGD_MAX 2
#define RNGD_SMI_ARCH_RNGD_S 3

typedef uint32_t rngd_smi_handle;

typedef struct rngd_smi_handles {
    uint32_t count;
    rngd_smi_handle handles[RNGD_SMI_MAX_DEVICE_HANDLE_SIZE];
} rngd_smi_handles;

typedef struct rngd_smi_version {
    uint32_t major, minor, patch;
    char metadata[RNGD_SMI_MAX_CSTR_SIZE];
    char prerelease[RNGD_SMI_MAX_CSTR_SIZE];
} rngd_smi_version;

typedef struct rngd_smi_device_info {
    uint32_t index;
    int arch; /* FuriosaSmiArch */
    uint32_t core_num;
    int32_t numa_node; /* -1 when unknown */
    char name[RNGD_SMI_MAX_CSTR_SIZE];   /* "npu0" */
    char serial[RNGD_SMI_MAX_CSTR_SIZE];
    char uuid[RNGD_SMI_MAX_CSTR_SIZE];
    char bdf[RNGD_SMI_MAX_CSTR_SIZE];    /* "0000:27:00.0" */
    uint16_t major, minor;
    rngd_smi_version firmware_version;
} rngd_smi_device_info;

typedef struct rngd_smi_pe_counter {
    long timestamp;
    uint32_t core;
    uint64_t cycle_count;
    uint64_t task_execution_cycle;
} rngd_smi_pe_counter;

typedef struct rngd_smi_performance_counter {
    uint32_t pe_count;
    rngd_smi_pe_counter pe[RNGD_SMI_MAX_PE_SIZE];
} rngd_smi_performance_counter;

typedef struct rngd_smi_power {
    double rms_total; /* watts */
} rngd_smi_power;

typedef struct rngd_smi_temperature {
    double soc_peak; /* degrees Celsius, hottest SoC sensor */
    double ambient;  /* degrees Celsius, board sensor */
} rngd_smi_temperature;

typedef struct rngd_smi_pcie_link {
    uint8_t pcie_gen_status;
    uint32_t link_width_status;
    double link_speed_status; /* GT/s */
    uint32_t max_link_width_capability;
    double max_link_speed_capability;
} rngd_smi_pcie_link;

typedef struct rngd_smi_memory_block {
    uint32_t count;
    uint32_t core[RNGD_SMI_MAX_PE_SIZE];
    uint64_t total_bytes;
    uint64_t in_use_bytes;
} rngd_smi_memory_block;

typedef struct rngd_smi_memory {
    uint32_t count;
    rngd_smi_memory_block memory[RNGD_SMI_MAX_PE_SIZE];
} rngd_smi_memory;

typedef struct rngd_smi_memory_utilization {
    rngd_smi_memory dram;
    rngd_smi_memory dram_shared;
    rngd_smi_memory sram;
    rngd_smi_memory instruction;
} rngd_smi_memory_utilization;

typedef rngd_smi_return (*rngd_smi_init_fn)(void);
typedef rngd_smi_return (*rngd_smi_get_device_handles_fn)(rngd_smi_handles *out);
typedef rngd_smi_return (*rngd_smi_get_device_info_fn)(rngd_smi_handle handle, rngd_smi_device_info *out);
typedef rngd_smi_return (*rngd_smi_get_device_liveness_fn)(rngd_smi_handle handle, bool *out);
typedef rngd_smi_return (*rngd_smi_get_driver_info_fn)(rngd_smi_version *out);
typedef rngd_smi_return (*rngd_smi_get_performance_counter_fn)(rngd_smi_handle handle, rngd_smi_performance_counter *out);
typedef rngd_smi_return (*rngd_smi_get_power_fn)(rngd_smi_handle handle, rngd_smi_power *out);
typedef rngd_smi_return (*rngd_smi_get_temperature_fn)(rngd_smi_handle handle, rngd_smi_temperature *out);
typedef rngd_smi_return (*rngd_smi_get_pcie_link_fn)(rngd_smi_handle handle, rngd_smi_pcie_link *out);
typedef rngd_smi_return (*rngd_smi_get_memory_utilization_fn)(rngd_smi_handle handle, rngd_smi_memory_utilization *out);

#endif /* HANGAR_RNGD_SMI_H */
