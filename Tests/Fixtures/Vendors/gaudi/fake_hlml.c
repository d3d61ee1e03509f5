/*
 * A stand-in for libhlml.so (Habana Labs management library, hlml.h of the
 * Gaudi software stack) used by the `gaudi` vendor fixture. It implements,
 * with hlml.h's real signatures, struct layouts and return codes:
 *
 *   hlml_init hlml_init_with_flags hlml_shutdown hlml_device_get_count
 *   hlml_device_get_handle_by_index hlml_device_get_handle_by_pci_bus_id
 *   hlml_device_get_name hlml_device_get_uuid hlml_device_get_serial
 *   hlml_device_get_module_id hlml_device_get_minor_number
 *   hlml_device_get_pci_info hlml_device_get_utilization_rates
 *   hlml_device_get_memory_info hlml_device_get_temperature
 *   hlml_device_get_power_usage hlml_device_get_power_management_default_limit
 *   hlml_device_get_total_energy_consumption hlml_get_driver_version
 *   hlml_get_hlml_version
 *
 * Build: cc -shared -fPIC -o libhlml.so fake_hlml.c
 *
 * The machine matches tree/ of this case: three Gaudi2 HL-225 OAMs of an
 * HLS-Gaudi2 board (module ids 2, 6 and 7), 96 GiB HBM2E each, on PCI buses
 * 0x33, 0x9a and 0xb3. The third one needs a reset (its driver status says
 * "Needs reset"): its identity still answers, every live query returns
 * HLML_ERROR_AIP_IS_LOST, as hlml does for an AIP the driver cannot reach.
 *
 * Like hlml, every call but hlml_init/hlml_init_with_flags returns
 * HLML_ERROR_UNINITIALIZED before hlml_init, and a NULL output pointer gives
 * HLML_ERROR_INVALID_ARGUMENT. FAKE_HLML_INIT_FAIL=1 in the environment makes
 * hlml_init fail with HLML_ERROR_DRIVER_NOT_LOADED.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCI_DOMAIN_LEN 5
#define PCI_ADDR_LEN ((PCI_DOMAIN_LEN) + 10)
#define PCI_LINK_INFO_LEN 10

typedef enum hlml_return {
    HLML_SUCCESS = 0,
    HLML_ERROR_UNINITIALIZED = 1,
    HLML_ERROR_INVALID_ARGUMENT = 2,
    HLML_ERROR_NOT_SUPPORTED = 3,
    HLML_ERROR_ALREADY_INITIALIZED = 5,
    HLML_ERROR_NOT_FOUND = 6,
    HLML_ERROR_INSUFFICIENT_SIZE = 7,
    HLML_ERROR_DRIVER_NOT_LOADED = 9,
    HLML_ERROR_TIMEOUT = 10,
    HLML_ERROR_AIP_IS_LOST = 15,
    HLML_ERROR_MEMORY = 20,
    HLML_ERROR_NO_DATA = 21,
    HLML_ERROR_UNKNOWN = 49,
} hlml_return_t;

typedef struct hlml_pci_cap {
    char link_speed[PCI_LINK_INFO_LEN];
    char link_width[PCI_LINK_INFO_LEN];
} hlml_pci_cap_t;

typedef struct hlml_pci_info {
    unsigned int bus;
    char bus_id[PCI_ADDR_LEN];
    unsigned int device;
    unsigned int domain;
    unsigned int pci_device_id;
    hlml_pci_cap_t caps;
} hlml_pci_info_t;

typedef struct hlml_utilization {
    unsigned int aip;
} hlml_utilization_t;

typedef struct hlml_memory {
    unsigned long long free;
    unsigned long long total;
    unsigned long long used;
} hlml_memory_t;

typedef enum hlml_temperature_sensors {
    HLML_TEMPERATURE_ON_AIP = 0,
    HLML_TEMPERATURE_ON_BOARD = 1,
    HLML_TEMPERATURE_OTHER = 2,
} hlml_temperature_sensors_t;

typedef void *hlml_device_t;

typedef struct fake_card {
    const char *bus_id; /* as the driver's pci_addr prints it */
    unsigned int bus;
    unsigned int minor; /* the accel<N> index */
    unsigned int module_id;
    const char *uuid;
    const char *serial;
    unsigned long long mem_used;
    unsigned int aip_util, temp_aip, temp_board, power_mw;
    unsigned long long energy_mj;
    bool lost;
} fake_card;

#define HL225_MEMORY 103079215104ull /* 96 GiB HBM2E, 98304 MiB in hl-smi */
#define HL225_POWER_LIMIT_MW 600000u

static const fake_card fake_cards[] = {
    {"0000:33:00.0", 0x33, 0, 2, "01P4-HL2080A0-15-TNF0J3-05-07-04", "AN44006512", 37580963840ull, 64, 38, 33, 412000, 9512344000ull, false},
    {"0000:9a:00.0", 0x9a, 1, 6, "01P4-HL2080A0-15-TNF0K9-11-07-04", "AN44006587", 805306368ull, 0, 31, 29, 98000, 2210781000ull, false},
    {"0000:b3:00.0", 0xb3, 2, 7, "01P4-HL2080A0-15-TNF0M1-02-07-04", "AN44006634", 0, 0, 0, 0, 0, 0, true},
};
#define FAKE_CARD_COUNT (sizeof fake_cards / sizeof fake_cards[0])

static bool initialised;

static const fake_card *card(hlml_device_t device)
{
    const fake_card *c = device;
    return c >= fake_cards && c < fake_cards + FAKE_CARD_COUNT ? c : NULL;
}

static hlml_return_t copy_string(const char *s, char *out, unsigned int length)
{
    size_t n = strlen(s);
    if (out == NULL)
        return HLML_ERROR_INVALID_ARGUMENT;
    if (n >= length)
        return HLML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, n + 1);
    return HLML_SUCCESS;
}

/* The checks every device query starts with; live queries of a lost AIP fail. */
#define CHECK_DEVICE(device, out, live)                       \
    const fake_card *c = card(device);                        \
    if (!initialised)                                         \
        return HLML_ERROR_UNINITIALIZED;                      \
    if (c == NULL || (out) == NULL)                           \
        return HLML_ERROR_INVALID_ARGUMENT;                   \
    if ((live) && c->lost)                                    \
        return HLML_ERROR_AIP_IS_LOST

hlml_return_t hlml_init(void)
{
    const char *fail = getenv("FAKE_HLML_INIT_FAIL");
    if (fail != NULL && strcmp(fail, "1") == 0)
        return HLML_ERROR_DRIVER_NOT_LOADED;
    initialised = true;
    return HLML_SUCCESS;
}

hlml_return_t hlml_init_with_flags(unsigned int flags)
{
    (void)flags;
    return hlml_init();
}

hlml_return_t hlml_shutdown(void)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    initialised = false;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_count(unsigned int *device_count)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    if (device_count == NULL)
        return HLML_ERROR_INVALID_ARGUMENT;
    *device_count = (unsigned int)FAKE_CARD_COUNT;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_handle_by_index(unsigned int index, hlml_device_t *device)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= FAKE_CARD_COUNT)
        return HLML_ERROR_INVALID_ARGUMENT;
    *device = (hlml_device_t)&fake_cards[index];
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_handle_by_pci_bus_id(const char *pci_addr, hlml_device_t *device)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    if (pci_addr == NULL || device == NULL)
        return HLML_ERROR_INVALID_ARGUMENT;
    for (size_t i = 0; i < FAKE_CARD_COUNT; i++) {
        /* hlml accepts the address with or without the "0000:" domain */
        const char *full = fake_cards[i].bus_id;
        if (strcasecmp(pci_addr, full) == 0 || strcasecmp(pci_addr, full + PCI_DOMAIN_LEN) == 0) {
            *device = (hlml_device_t)&fake_cards[i];
            return HLML_SUCCESS;
        }
    }
    return HLML_ERROR_NOT_FOUND;
}

hlml_return_t hlml_device_get_name(hlml_device_t device, char *name, unsigned int length)
{
    CHECK_DEVICE(device, name, false);
    return copy_string("HL-225", name, length);
}

hlml_return_t hlml_device_get_uuid(hlml_device_t device, char *uuid, unsigned int length)
{
    CHECK_DEVICE(device, uuid, false);
    return copy_string(c->uuid, uuid, length);
}

hlml_return_t hlml_device_get_serial(hlml_device_t device, char *serial, unsigned int length)
{
    CHECK_DEVICE(device, serial, false);
    return copy_string(c->serial, serial, length);
}

hlml_return_t hlml_device_get_module_id(hlml_device_t device, unsigned int *module_id)
{
    CHECK_DEVICE(device, module_id, false);
    *module_id = c->module_id;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_minor_number(hlml_device_t device, unsigned int *minor_number)
{
    CHECK_DEVICE(device, minor_number, false);
    *minor_number = c->minor;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_pci_info(hlml_device_t device, hlml_pci_info_t *pci)
{
    CHECK_DEVICE(device, pci, false);
    memset(pci, 0, sizeof *pci);
    pci->bus = c->bus;
    snprintf(pci->bus_id, sizeof pci->bus_id, "%s", c->bus_id);
    pci->device = 0;
    pci->domain = 0;
    pci->pci_device_id = 0x1020u << 16 | 0x1da3u; /* Gaudi2, Habana Labs */
    snprintf(pci->caps.link_speed, sizeof pci->caps.link_speed, "16.0 GT/s");
    snprintf(pci->caps.link_width, sizeof pci->caps.link_width, "x16");
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_utilization_rates(hlml_device_t device, hlml_utilization_t *utilization)
{
    CHECK_DEVICE(device, utilization, true);
    utilization->aip = c->aip_util;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_memory_info(hlml_device_t device, hlml_memory_t *memory)
{
    CHECK_DEVICE(device, memory, true);
    memory->total = HL225_MEMORY;
    memory->used = c->mem_used;
    memory->free = HL225_MEMORY - c->mem_used;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_temperature(hlml_device_t device, hlml_temperature_sensors_t sensor_type, unsigned int *temp)
{
    CHECK_DEVICE(device, temp, true);
    if (sensor_type == HLML_TEMPERATURE_ON_AIP)
        *temp = c->temp_aip;
    else if (sensor_type == HLML_TEMPERATURE_ON_BOARD)
        *temp = c->temp_board;
    else
        return HLML_ERROR_NOT_SUPPORTED;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_power_usage(hlml_device_t device, unsigned int *power)
{
    CHECK_DEVICE(device, power, true);
    *power = c->power_mw;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_power_management_default_limit(hlml_device_t device, unsigned int *default_limit)
{
    CHECK_DEVICE(device, default_limit, true);
    *default_limit = HL225_POWER_LIMIT_MW;
    return HLML_SUCCESS;
}

hlml_return_t hlml_device_get_total_energy_consumption(hlml_device_t device, unsigned long long *energy)
{
    CHECK_DEVICE(device, energy, true);
    *energy = c->energy_mj;
    return HLML_SUCCESS;
}

hlml_return_t hlml_get_driver_version(char *driver_version, unsigned int length)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    return copy_string("1.17.0-495a4a8", driver_version, length);
}

hlml_return_t hlml_get_hlml_version(char *version, unsigned int length)
{
    if (!initialised)
        return HLML_ERROR_UNINITIALIZED;
    return copy_string("1.17.0", version, length);
}
