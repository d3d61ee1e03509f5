/*
 * Hangar plugin ABI v1 — storage-backend plugins.
 *
 * One instance serves one volume (a root directory or a filesystem on a
 * storage system) declared in the storage proxy's config. Virtual folders are
 * named by an id the host chooses (a UUID in hex, lowercase, no dashes); the
 * plugin decides where the folder lives under its volume and reports the host
 * path that agents bind-mount. The storage proxy does all file I/O for
 * uploads, downloads and listings itself through that path; the plugin
 * answers what a generic filesystem cannot (quota, usage, fast clone).
 */
#ifndef HANGAR_STORAGE_H
#define HANGAR_STORAGE_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Storage status codes (200–299). */
/** The operation would exceed the folder's quota. */
#define HANGAR_E_QUOTA_EXCEEDED 200
/** The folder is in use (mounted, busy) and cannot be deleted now. */
#define HANGAR_E_FOLDER_BUSY 201

/* Capability bits for hangar_plugin_descriptor.capabilities. */
/** The backend enforces a hard quota itself (set_quota is honoured by the filesystem). */
#define HANGAR_STORAGE_CAP_QUOTA (1ull << 0)
/** clone_folder is an instant copy-on-write snapshot. */
#define HANGAR_STORAGE_CAP_FAST_CLONE (1ull << 1)
/** get_usage is cheap (accounting by the filesystem, not a tree walk). */
#define HANGAR_STORAGE_CAP_FAST_USAGE (1ull << 2)
/** get_performance reports something. */
#define HANGAR_STORAGE_CAP_METRICS (1ull << 3)

/** Usage of a folder or volume. */
typedef struct hangar_storage_usage {
    /** Set by the host; the plugin fills at most that many bytes. */
    uint32_t struct_size;
    /** Number of files and directories, or -1 if the backend cannot count them. */
    int64_t file_count;
    /** Bytes used. */
    uint64_t used_bytes;
    /** Capacity in bytes: the quota for a folder (0 = none), the filesystem size for a volume. */
    uint64_t capacity_bytes;
} hangar_storage_usage;

/** One performance metric (I/O rates, latencies). */
typedef struct hangar_storage_metric {
    /** sizeof(hangar_storage_metric) as the plugin compiled it. */
    uint32_t struct_size;
    /** Metric key without dots: "read_bytes", "write_ops", ... */
    const char *key;
    /** Unit, e.g. "bytes", "ops", "bytes/s". */
    const char *unit;
    double value;
} hangar_storage_metric;

/** Receives metrics from get_performance. */
typedef hangar_status (*hangar_storage_metric_sink)(void *sink_context, const hangar_storage_metric *metric);

/**
 * The storage function table. Required: struct_size, create, destroy,
 * last_error, create_folder, delete_folder, folder_path, get_usage,
 * volume_usage. Optional (may be NULL): get_quota, set_quota, clone_folder,
 * get_performance. Folder ids that are not 1–64 characters of [0-9a-z_-]
 * must be refused with HANGAR_E_INVALID_ARGUMENT.
 */
typedef struct hangar_storage_functions {
    /** sizeof(hangar_storage_functions) as the plugin compiled it. */
    uint32_t struct_size;

    /** See plugin.h. Config names the volume root and backend options. */
    hangar_status (*create)(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len);
    /** See plugin.h. */
    void (*destroy)(void *instance);
    /** See plugin.h. */
    size_t (*last_error)(void *instance, char *buf, size_t buf_len);

    /**
     * Creates an empty folder. quota_bytes 0 means no quota. Returns
     * HANGAR_E_EXISTS if it exists; leaves nothing behind on failure.
     */
    hangar_status (*create_folder)(void *instance, const char *folder_id, uint64_t quota_bytes);
    /** Deletes a folder and everything in it. HANGAR_E_NOT_FOUND if absent. */
    hangar_status (*delete_folder)(void *instance, const char *folder_id);
    /**
     * Writes the folder's absolute host path into buf (NUL-terminated), its
     * length into *out_len; HANGAR_E_BUFFER_TOO_SMALL if buf_len is not enough.
     * Does not check that the folder exists.
     */
    hangar_status (*folder_path)(void *instance, const char *folder_id, char *buf, size_t buf_len, size_t *out_len);
    /** Usage of one folder (the host sets usage->struct_size). */
    hangar_status (*get_usage)(void *instance, const char *folder_id, hangar_storage_usage *usage);
    /** Usage and capacity of the whole volume. */
    hangar_status (*volume_usage)(void *instance, hangar_storage_usage *usage);
    /** Optional. The folder's quota in bytes (0 = none). */
    hangar_status (*get_quota)(void *instance, const char *folder_id, uint64_t *quota_bytes);
    /** Optional. Sets the folder's quota (0 removes it). HANGAR_E_QUOTA_EXCEEDED if already above it and the backend cannot shrink. */
    hangar_status (*set_quota)(void *instance, const char *folder_id, uint64_t quota_bytes);
    /** Optional. Makes `target_id` a copy of `source_id`; HANGAR_E_EXISTS if the target exists. */
    hangar_status (*clone_folder)(void *instance, const char *source_id, const char *target_id);
    /** Optional. Volume performance metrics. */
    hangar_status (*get_performance)(void *instance, hangar_storage_metric_sink sink, void *sink_context);
} hangar_storage_functions;

#ifdef __cplusplus
}
#endif

#endif /* HANGAR_STORAGE_H */
