/*
 * A stand-in for librocm_smi64.so.1 (ROCm SMI, ROCm/rocm_smi_lib) used by the
 * `rocm` vendor fixture. It implements, with rocm_smi.h's real signatures and
 * status codes, the functions the Hangar ROCm plugin looks up:
 *
 *   rsmi_init rsmi_shut_down rsmi_num_monitor_devices rsmi_status_string
 *   rsmi_version_get rsmi_dev_pci_id_get rsmi_dev_drm_render_minor_get
 *   rsmi_dev_name_get rsmi_dev_serial_number_get rsmi_dev_unique_id_get
 *   rsmi_dev_memory_total_get rsmi_dev_memory_usage_get
 *   rsmi_dev_busy_percent_get rsmi_dev_temp_metric_get
 *   rsmi_dev_power_ave_get rsmi_dev_current_socket_power_get
 *   rsmi_dev_power_cap_get
 *
 * Build: cc -shared -fPIC -o librocm_smi64.so.1 fake_rocm_smi.c
 *
 * The machine matches tree/ of this case: one MI250X (two GCDs, render
 * minors 128 and 129, one board serial) and two MI210 cards (130, 131). The
 * second MI210 has hung: amdgpu's sysfs reads fail with EIO, which rocm_smi
 * turns into RSMI_STATUS_UNEXPECTED_SIZE for every live query (its identity
 * -- PCI id, render minor, name -- was read at rsmi_init and still answers).
 * Like the real library, power is per package on an MI250X: the second GCD
 * answers RSMI_STATUS_NOT_SUPPORTED.
 *
 * As in rocm_smi, rsmi_init/rsmi_shut_down are reference counted; before
 * rsmi_init the library lists no devices and every device query returns
 * RSMI_STATUS_INVALID_ARGS (the index is out of range), and a NULL output
 * pointer gives RSMI_STATUS_INVALID_ARGS.
 * FAKE_RSMI_INIT_FAIL=1 in the environment makes rsmi_init fail with
 * RSMI_STATUS_INIT_ERROR, as it does when /sys/class/kfd is unreadable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    RSMI_STATUS_SUCCESS = 0x0,
    RSMI_STATUS_INVALID_ARGS,
    RSMI_STATUS_NOT_SUPPORTED,
    RSMI_STATUS_FILE_ERROR,
    RSMI_STATUS_PERMISSION,
    RSMI_STATUS_OUT_OF_RESOURCES,
    RSMI_STATUS_INTERNAL_EXCEPTION,
    RSMI_STATUS_INPUT_OUT_OF_BOUNDS,
    RSMI_STATUS_INIT_ERROR,
    RSMI_INITIALIZATION_ERROR = RSMI_STATUS_INIT_ERROR,
    RSMI_STATUS_NOT_YET_IMPLEMENTED,
    RSMI_STATUS_NOT_FOUND,
    RSMI_STATUS_INSUFFICIENT_SIZE,
    RSMI_STATUS_INTERRUPT,
    RSMI_STATUS_UNEXPECTED_SIZE,
    RSMI_STATUS_NO_DATA,
    RSMI_STATUS_UNEXPECTED_DATA,
    RSMI_STATUS_BUSY,
    RSMI_STATUS_REFCOUNT_OVERFLOW,
    RSMI_STATUS_SETTING_UNAVAILABLE,
    RSMI_STATUS_AMDGPU_RESTART_ERR,
    RSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF,
} rsmi_status_t;

typedef enum {
    RSMI_MEM_TYPE_FIRST = 0,
    RSMI_MEM_TYPE_VRAM = RSMI_MEM_TYPE_FIRST,
    RSMI_MEM_TYPE_VIS_VRAM,
    RSMI_MEM_TYPE_GTT,
    RSMI_MEM_TYPE_LAST = RSMI_MEM_TYPE_GTT
} rsmi_memory_type_t;

typedef enum {
    RSMI_TEMP_TYPE_FIRST = 0,
    RSMI_TEMP_TYPE_EDGE = RSMI_TEMP_TYPE_FIRST,
    RSMI_TEMP_TYPE_JUNCTION,
    RSMI_TEMP_TYPE_MEMORY,
    RSMI_TEMP_TYPE_HBM_0,
    RSMI_TEMP_TYPE_HBM_1,
    RSMI_TEMP_TYPE_HBM_2,
    RSMI_TEMP_TYPE_HBM_3,
    RSMI_TEMP_TYPE_LAST = RSMI_TEMP_TYPE_HBM_3,
    RSMI_TEMP_TYPE_INVALID = 0xFFFFFFFF
} rsmi_temperature_type_t;

typedef enum {
    RSMI_TEMP_CURRENT = 0x0,
    RSMI_TEMP_FIRST = RSMI_TEMP_CURRENT,
    RSMI_TEMP_MAX,
    RSMI_TEMP_MIN,
} rsmi_temperature_metric_t;

typedef struct {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
    const char *build;
} rsmi_version_t;

typedef struct fake_gpu {
    uint64_t bdfid; /* (domain << 32) | (partition << 28) | (bus << 8) | (device << 3) | function */
    uint32_t render_minor;
    uint64_t unique_id;
    const char *name;
    const char *serial;
    uint64_t vram_total, vram_used;
    uint32_t busy;
    int64_t edge_mc, junction_mc;  /* millidegrees Celsius */
    uint64_t power_uw, cap_uw;     /* 0: not supported on this device */
    rsmi_status_t live_status;     /* what live queries answer when not SUCCESS (a hung GPU) */
} fake_gpu;

static const fake_gpu fake_gpus[] = {
    {0x2900, 128, 0x3a1f6c2d8e4b7001ull, "AMD Instinct MI250X", "692236000217", 68702699520ull, 24830279680ull, 87, 41000, 52000,
     312000000, 560000000, RSMI_STATUS_SUCCESS},
    {0x2c00, 129, 0x3a1f6c2d8e4b7d02ull, "AMD Instinct MI250X", "692236000217", 68702699520ull, 20401094656ull, 79, 39000, 50000, 0, 0,
     RSMI_STATUS_SUCCESS},
    {0xa100, 130, 0x51c8a0e7d3920f11ull, "AMD Instinct MI210", "692231000088", 68702699520ull, 3221225472ull, 12, 33000, 36000, 95000000,
     300000000, RSMI_STATUS_SUCCESS},
    {0xe100, 131, 0x51c8a0e7d392a3c4ull, "AMD Instinct MI210", "692231000154", 68702699520ull, 0, 0, 0, 0, 0, 300000000,
     RSMI_STATUS_UNEXPECTED_SIZE},
};
#define FAKE_GPU_COUNT (sizeof fake_gpus / sizeof fake_gpus[0])

static int refcount;

/* Like rocm_smi's GET_DEV_FROM_INDX: an index past the devices listed (none before rsmi_init) is an invalid argument. */
static const fake_gpu *gpu(uint32_t dv_ind)
{
    return refcount > 0 && dv_ind < FAKE_GPU_COUNT ? &fake_gpus[dv_ind] : NULL;
}

static rsmi_status_t copy_string(const char *s, char *out, size_t len)
{
    if (len == 0)
        return RSMI_STATUS_INVALID_ARGS;
    size_t n = strlen(s);
    memcpy(out, s, n < len ? n + 1 : len - 1);
    out[len - 1] = '\0';
    return n < len ? RSMI_STATUS_SUCCESS : RSMI_STATUS_INSUFFICIENT_SIZE;
}

rsmi_status_t rsmi_init(uint64_t init_flags)
{
    (void)init_flags;
    const char *fail = getenv("FAKE_RSMI_INIT_FAIL");
    if (fail != NULL && strcmp(fail, "1") == 0)
        return RSMI_STATUS_INIT_ERROR;
    refcount++;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_shut_down(void)
{
    if (refcount == 0)
        return RSMI_STATUS_INIT_ERROR;
    refcount--;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_num_monitor_devices(uint32_t *num_devices)
{
    if (num_devices == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    *num_devices = refcount > 0 ? (uint32_t)FAKE_GPU_COUNT : 0;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_status_string(rsmi_status_t status, const char **status_string)
{
    if (status_string == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    switch (status) {
    case RSMI_STATUS_SUCCESS: *status_string = "RSMI_STATUS_SUCCESS: The function has been executed successfully."; break;
    case RSMI_STATUS_INVALID_ARGS: *status_string = "RSMI_STATUS_INVALID_ARGS: The provided arguments are not valid."; break;
    case RSMI_STATUS_NOT_SUPPORTED: *status_string = "RSMI_STATUS_NOT_SUPPORTED: The requested information or action is not available"; break;
    case RSMI_STATUS_FILE_ERROR: *status_string = "RSMI_STATUS_FILE_ERROR: Problem accessing a file."; break;
    case RSMI_STATUS_PERMISSION: *status_string = "RSMI_STATUS_PERMISSION: Permission denied/EACCESS file error."; break;
    case RSMI_STATUS_INIT_ERROR: *status_string = "RSMI_STATUS_INIT_ERROR: An error occurred during initialization"; break;
    case RSMI_STATUS_INSUFFICIENT_SIZE: *status_string = "RSMI_STATUS_INSUFFICIENT_SIZE: Not enough resources were available"; break;
    case RSMI_STATUS_UNEXPECTED_SIZE: *status_string = "RSMI_STATUS_UNEXPECTED_SIZE: An unexpected amount of data was read"; break;
    case RSMI_STATUS_UNEXPECTED_DATA: *status_string = "RSMI_STATUS_UNEXPECTED_DATA: The data read or provided was not as expected"; break;
    case RSMI_STATUS_BUSY: *status_string = "RSMI_STATUS_BUSY: A resource or mutex could not be acquired"; break;
    default: *status_string = "An unknown error occurred"; return RSMI_STATUS_INVALID_ARGS;
    }
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_version_get(rsmi_version_t *version)
{
    if (version == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    version->major = 7;
    version->minor = 3;
    version->patch = 0;
    version->build = "7.3.0";
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_pci_id_get(uint32_t dv_ind, uint64_t *bdfid)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || bdfid == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    *bdfid = g->bdfid;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_drm_render_minor_get(uint32_t dv_ind, uint32_t *minor)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || minor == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    *minor = g->render_minor;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_unique_id_get(uint32_t dv_ind, uint64_t *id)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || id == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    *id = g->unique_id;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_name_get(uint32_t dv_ind, char *name, size_t len)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || name == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    return copy_string(g->name, name, len);
}

rsmi_status_t rsmi_dev_serial_number_get(uint32_t dv_ind, char *serial_num, uint32_t len)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || serial_num == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    return copy_string(g->serial, serial_num, len);
}

rsmi_status_t rsmi_dev_memory_total_get(uint32_t dv_ind, rsmi_memory_type_t mem_type, uint64_t *total)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || total == NULL || mem_type > RSMI_MEM_TYPE_LAST)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    if (mem_type != RSMI_MEM_TYPE_VRAM)
        return RSMI_STATUS_NOT_SUPPORTED;
    *total = g->vram_total;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_memory_usage_get(uint32_t dv_ind, rsmi_memory_type_t mem_type, uint64_t *used)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || used == NULL || mem_type > RSMI_MEM_TYPE_LAST)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    if (mem_type != RSMI_MEM_TYPE_VRAM)
        return RSMI_STATUS_NOT_SUPPORTED;
    *used = g->vram_used;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_busy_percent_get(uint32_t dv_ind, uint32_t *busy_percent)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || busy_percent == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    *busy_percent = g->busy;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_temp_metric_get(uint32_t dv_ind, uint32_t sensor_type, rsmi_temperature_metric_t metric, int64_t *temperature)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || temperature == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    if (metric != RSMI_TEMP_CURRENT || (sensor_type != RSMI_TEMP_TYPE_EDGE && sensor_type != RSMI_TEMP_TYPE_JUNCTION))
        return RSMI_STATUS_NOT_SUPPORTED;
    *temperature = sensor_type == RSMI_TEMP_TYPE_EDGE ? g->edge_mc : g->junction_mc;
    return RSMI_STATUS_SUCCESS;
}

rsmi_status_t rsmi_dev_power_ave_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *power)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || power == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    if (sensor_ind != 0 || g->power_uw == 0)
        return RSMI_STATUS_NOT_SUPPORTED;
    *power = g->power_uw;
    return RSMI_STATUS_SUCCESS;
}

/* MI200 parts report average power only; current socket power is an MI300 feature. */
rsmi_status_t rsmi_dev_current_socket_power_get(uint32_t dv_ind, uint64_t *socket_power)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || socket_power == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    return RSMI_STATUS_NOT_SUPPORTED;
}

rsmi_status_t rsmi_dev_power_cap_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *cap)
{
    const fake_gpu *g = gpu(dv_ind);
    if (g == NULL || cap == NULL)
        return RSMI_STATUS_INVALID_ARGS;
    if (g->live_status != RSMI_STATUS_SUCCESS)
        return g->live_status;
    if (sensor_ind != 0 || g->cap_uw == 0)
        return RSMI_STATUS_NOT_SUPPORTED;
    *cap = g->cap_uw;
    return RSMI_STATUS_SUCCESS;
}
