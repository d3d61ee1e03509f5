/*
 * The bundled vfs storage plugin with one defect, chosen by one -DBREAK_<NAME> switch, for the
 * conformance suite's broken-fixture table of the storage checks (see broken_template.c for
 * the accelerator checks). vfs.c is included as it is; this file wraps its function table and
 * descriptor under the name "vfs-broken".
 */
#define hangar_plugin_entry_v1 vfs_entry_v1
#include "../../../Plugins/Storage/VFS/vfs.c"
#undef hangar_plugin_entry_v1

static hangar_plugin_descriptor fx_descriptor;
static hangar_storage_functions fx_functions;

static hangar_status fx_create(const hangar_host_services *host, const char *config_json, void **out, char *err, size_t err_len)
{
#ifdef BREAK_STORAGE_CREATE
    (void)host; (void)config_json; (void)out;
    snprintf(err, err_len, "vfs-broken: cannot open the volume");
    return HANGAR_E_IO;
#else
    return vfs_create(host, config_json, out, err, err_len);
#endif
}

static hangar_status fx_create_folder(void *instance, const char *id, uint64_t quota)
{
#ifdef BREAK_CREATE_FOLDER
    (void)instance; (void)id; (void)quota;
    return hs_fail(HANGAR_E_IO, "create_folder: the volume is read-only");
#endif
#ifdef BREAK_ACCEPTS_BAD_ID
    if (id != NULL && strpbrk(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != NULL)
        return HANGAR_OK; /* upper case slips through */
#endif
    hangar_status st = vfs_create_folder(instance, id, quota);
#ifdef BREAK_EXISTS_STATUS
    if (st == HANGAR_E_EXISTS)
        return hs_fail(HANGAR_E_IO, "create_folder: mkdir failed");
#endif
    return st;
}

static hangar_status fx_folder_path(void *instance, const char *id, char *buf, size_t len, size_t *out_len)
{
#ifdef BREAK_FOLDER_PATH_RELATIVE
    (void)instance;
    *out_len = (size_t)snprintf(buf, len, "folders/%s", id);
    return HANGAR_OK;
#endif
    hangar_status st = hs_volume_folder_path(instance, id, buf, len, out_len);
#ifdef BREAK_FOLDER_PATH_BUFFER
    if (st == HANGAR_E_BUFFER_TOO_SMALL && buf != NULL && len > 0) {
        buf[0] = '\0';
        *out_len = 0;
        return HANGAR_OK; /* silently truncated */
    }
#endif
    return st;
}

static hangar_status fx_get_usage(void *instance, const char *id, hangar_storage_usage *usage)
{
    hangar_status st = vfs_get_usage(instance, id, usage);
#ifdef BREAK_USAGE_ZERO
    usage->used_bytes = 0;
#endif
    return st;
}

static hangar_status fx_volume_usage(void *instance, hangar_storage_usage *usage)
{
#ifdef BREAK_VOLUME_USAGE
    (void)instance; (void)usage;
    return hs_fail(HANGAR_E_IO, "volume_usage: statvfs failed");
#else
    return hs_volume_usage(instance, usage);
#endif
}

static hangar_status fx_get_quota(void *instance, const char *id, uint64_t *quota)
{
    hangar_status st = vfs_get_quota(instance, id, quota);
#ifdef BREAK_QUOTA
    *quota = 0;
#endif
    return st;
}

static hangar_status fx_clone_folder(void *instance, const char *source, const char *target)
{
#ifdef BREAK_CLONE
    (void)source;
    return vfs_create_folder(instance, target, 0); /* an empty folder, not a copy */
#else
    return vfs_clone_folder(instance, source, target);
#endif
}

typedef struct fx_metric_ctx {
    hangar_storage_metric_sink sink;
    void *ctx;
} fx_metric_ctx;

static hangar_status fx_metric_sink(void *c, const hangar_storage_metric *in)
{
    fx_metric_ctx *m = c;
    hangar_storage_metric metric = *in;
#ifdef BREAK_PERFORMANCE
    metric.key = "io.read_bytes";
#endif
    hangar_status st = m->sink(m->ctx, &metric);
#ifdef BREAK_STORAGE_SINK
    (void)st;
    return HANGAR_OK; /* swallows the host's refusal */
#else
    return st;
#endif
}

static hangar_status fx_get_performance(void *instance, hangar_storage_metric_sink sink, void *ctx)
{
    fx_metric_ctx m = {sink, ctx};
    return vfs_get_performance(instance, sink ? fx_metric_sink : NULL, &m);
}

static hangar_status fx_delete_folder(void *instance, const char *id)
{
    hangar_status st = vfs_delete_folder(instance, id);
#ifdef BREAK_DELETE_MISSING
    if (st == HANGAR_E_NOT_FOUND)
        return HANGAR_OK;
#endif
    return st;
}

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (vfs_entry_v1(host_abi_version) == NULL)
        return NULL;
    if (fx_descriptor.struct_size == 0) {
        fx_functions = vfs_functions;
        fx_functions.create = fx_create;
        fx_functions.create_folder = fx_create_folder;
        fx_functions.delete_folder = fx_delete_folder;
        fx_functions.folder_path = fx_folder_path;
        fx_functions.get_usage = fx_get_usage;
        fx_functions.volume_usage = fx_volume_usage;
        fx_functions.get_quota = fx_get_quota;
        fx_functions.clone_folder = fx_clone_folder;
        fx_functions.get_performance = fx_get_performance;
        fx_descriptor = vfs_descriptor;
        fx_descriptor.name = "vfs-broken";
        fx_descriptor.functions = &fx_functions;
#ifdef BREAK_STORAGE_CAPS
        fx_descriptor.capabilities |= HANGAR_STORAGE_CAP_FAST_CLONE;
        fx_functions.clone_folder = NULL;
#endif
    }
    return &fx_descriptor;
}
