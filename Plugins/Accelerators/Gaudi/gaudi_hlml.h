/*
 * The subset of Habana Labs' management library ABI (libhlml.so, hlml.h of
 * the Gaudi software stack) that the Hangar Gaudi plugin uses, declared here
 * so the plugin builds without the Habana SDK. The library is loaded with
 * dlopen at run time, never linked.
 *
 * hlml_return_t and the other hlml.h enums are C enums with small
 * non-negative values: int-sized, passed like unsigned int. hlml_device_t is
 * an opaque pointer. Only append, and check every new value against hlml.h.
 */
#ifndef HANGAR_GAUDI_HLML_H
#define HANGAR_GAUDI_HLML_H

typedef unsigned int hlml_return_t;

#define HLML_SUCCESS 0u
#define HLML_ERROR_UNINITIALIZED 1u
#define HLML_ERROR_INVALID_ARGUMENT 2u
#define HLML_ERROR_NOT_SUPPORTED 3u
#define HLML_ERROR_ALREADY_INITIALIZED 5u
#define HLML_ERROR_NOT_FOUND 6u
#define HLML_ERROR_INSUFFICIENT_SIZE 7u
#define HLML_ERROR_DRIVER_NOT_LOADED 9u
#define HLML_ERROR_TIMEOUT 10u
#define HLML_ERROR_AIP_IS_LOST 15u
#define HLML_ERROR_MEMORY 20u
#define HLML_ERROR_NO_DATA 21u
#define HLML_ERROR_UNKNOWN 49u

/* hlml_temperature_sensors_t */
#define HLML_TEMPERATURE_ON_AIP 0u

typedef void *hlml_device_t;

typedef struct hlml_utilization {
    unsigned int aip;
} hlml_utilization_t;

typedef struct hlml_memory {
    unsigned long long free;
    unsigned long long total; /* bytes */
    unsigned long long used;
} hlml_memory_t;

typedef hlml_return_t (*hlml_init_fn)(void);
typedef hlml_return_t (*hlml_shutdown_fn)(void);
typedef hlml_return_t (*hlml_device_get_count_fn)(unsigned int *device_count);
/* pci_addr "0000:33:00.0", as the driver's pci_addr attribute prints it. */
typedef hlml_return_t (*hlml_device_get_handle_by_pci_bus_id_fn)(const char *pci_addr, hlml_device_t *device);
typedef hlml_return_t (*hlml_device_get_name_fn)(hlml_device_t device, char *name, unsigned int length);
typedef hlml_return_t (*hlml_device_get_uuid_fn)(hlml_device_t device, char *uuid, unsigned int length);
typedef hlml_return_t (*hlml_device_get_serial_fn)(hlml_device_t device, char *serial, unsigned int length);
typedef hlml_return_t (*hlml_device_get_module_id_fn)(hlml_device_t device, unsigned int *module_id);
typedef hlml_return_t (*hlml_device_get_utilization_rates_fn)(hlml_device_t device, hlml_utilization_t *utilization);
typedef hlml_return_t (*hlml_device_get_memory_info_fn)(hlml_device_t device, hlml_memory_t *memory);
/* Degrees Celsius. */
typedef hlml_return_t (*hlml_device_get_temperature_fn)(hlml_device_t device, unsigned int sensor_type, unsigned int *temp);
/* Milliwatts. */
typedef hlml_return_t (*hlml_device_get_power_usage_fn)(hlml_device_t device, unsigned int *power);
typedef hlml_return_t (*hlml_device_get_power_management_default_limit_fn)(hlml_device_t device, unsigned int *default_limit);
/* Millijoules since the driver loaded. */
typedef hlml_return_t (*hlml_device_get_total_energy_consumption_fn)(hlml_device_t device, unsigned long long *energy);
typedef hlml_return_t (*hlml_get_driver_version_fn)(char *driver_version, unsigned int length);

#endif /* HANGAR_GAUDI_HLML_H */
