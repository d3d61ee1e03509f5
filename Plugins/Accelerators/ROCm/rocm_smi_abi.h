/*
 * The subset of the ROCm SMI library ABI (librocm_smi64.so.1, rocm_smi.h of
 * ROCm/rocm_smi_lib) that the Hangar ROCm plugin uses, declared here so the
 * plugin builds without ROCm installed. The library is loaded with dlopen at
 * run time, never linked.
 *
 * rsmi_status_t and the other enums of rocm_smi.h are C enums: rsmi_status_t
 * holds 0xFFFFFFFF (RSMI_STATUS_UNKNOWN_ERROR), so its type is unsigned int,
 * and the small enums passed as arguments (memory type, temperature metric)
 * are passed like unsigned int as well. Only append, and check every new
 * value against rocm_smi.h.
 */
#ifndef HANGAR_ROCM_SMI_ABI_H
#define HANGAR_ROCM_SMI_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned int rsmi_status_t;

#define RSMI_STATUS_SUCCESS 0x0u
#define RSMI_STATUS_INVALID_ARGS 0x1u
#define RSMI_STATUS_NOT_SUPPORTED 0x2u
#define RSMI_STATUS_FILE_ERROR 0x3u
#define RSMI_STATUS_PERMISSION 0x4u
#define RSMI_STATUS_OUT_OF_RESOURCES 0x5u
#define RSMI_STATUS_INTERNAL_EXCEPTION 0x6u
#define RSMI_STATUS_INPUT_OUT_OF_BOUNDS 0x7u
#define RSMI_STATUS_INIT_ERROR 0x8u
#define RSMI_STATUS_NOT_YET_IMPLEMENTED 0x9u
#define RSMI_STATUS_NOT_FOUND 0xAu
#define RSMI_STATUS_INSUFFICIENT_SIZE 0xBu
#define RSMI_STATUS_INTERRUPT 0xCu
#define RSMI_STATUS_UNEXPECTED_SIZE 0xDu
#define RSMI_STATUS_NO_DATA 0xEu
#define RSMI_STATUS_UNEXPECTED_DATA 0xFu
#define RSMI_STATUS_BUSY 0x10u
#define RSMI_STATUS_REFCOUNT_OVERFLOW 0x11u
#define RSMI_STATUS_SETTING_UNAVAILABLE 0x12u
#define RSMI_STATUS_AMDGPU_RESTART_ERR 0x13u
#define RSMI_STATUS_UNKNOWN_ERROR 0xFFFFFFFFu

/* rsmi_memory_type_t */
#define RSMI_MEM_TYPE_VRAM 0u
/* rsmi_temperature_type_t (the sensor_type argument) */
#define RSMI_TEMP_TYPE_EDGE 0u
#define RSMI_TEMP_TYPE_JUNCTION 1u
/* rsmi_temperature_metric_t */
#define RSMI_TEMP_CURRENT 0u

/* rsmi_version_t */
typedef struct rsmi_version_t {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
    const char *build;
} rsmi_version_t;

typedef rsmi_status_t (*rsmi_init_fn)(uint64_t init_flags);
typedef rsmi_status_t (*rsmi_shut_down_fn)(void);
typedef rsmi_status_t (*rsmi_num_monitor_devices_fn)(uint32_t *num_devices);
typedef rsmi_status_t (*rsmi_status_string_fn)(rsmi_status_t status, const char **status_string);
typedef rsmi_status_t (*rsmi_version_get_fn)(rsmi_version_t *version);
/* BDFID = (domain << 32) | (partition << 28) | (bus << 8) | (device << 3) | function */
typedef rsmi_status_t (*rsmi_dev_pci_id_get_fn)(uint32_t dv_ind, uint64_t *bdfid);
typedef rsmi_status_t (*rsmi_dev_drm_render_minor_get_fn)(uint32_t dv_ind, uint32_t *minor);
typedef rsmi_status_t (*rsmi_dev_name_get_fn)(uint32_t dv_ind, char *name, size_t len);
typedef rsmi_status_t (*rsmi_dev_serial_number_get_fn)(uint32_t dv_ind, char *serial_num, uint32_t len);
typedef rsmi_status_t (*rsmi_dev_memory_total_get_fn)(uint32_t dv_ind, unsigned int mem_type, uint64_t *total);
typedef rsmi_status_t (*rsmi_dev_memory_usage_get_fn)(uint32_t dv_ind, unsigned int mem_type, uint64_t *used);
typedef rsmi_status_t (*rsmi_dev_busy_percent_get_fn)(uint32_t dv_ind, uint32_t *busy_percent);
/* Millidegrees Celsius. */
typedef rsmi_status_t (*rsmi_dev_temp_metric_get_fn)(uint32_t dv_ind, uint32_t sensor_type, unsigned int metric, int64_t *temperature);
/* Microwatts. */
typedef rsmi_status_t (*rsmi_dev_power_ave_get_fn)(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *power);
typedef rsmi_status_t (*rsmi_dev_current_socket_power_get_fn)(uint32_t dv_ind, uint64_t *socket_power);
typedef rsmi_status_t (*rsmi_dev_power_cap_get_fn)(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *cap);

#endif /* HANGAR_ROCM_SMI_ABI_H */
