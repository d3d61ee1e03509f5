/*
 * Hangar plugin support — storage plumbing: folder ids and the sharded
 * layout under a volume root, errno -> hangar_status, usage structs, the
 * "root" config key, and an instance base (hs_volume: root, host, call
 * counters) with ready folder_path, volume_usage and get_performance parts.
 *
 * Layout shared by every storage plugin that keeps folders as directories
 * (vfs, btrfs): folder <id> lives at <root>/<id[0:2]>/<id[2:4]>/<id>, shard
 * names padded with '_' for ids shorter than four characters (id "ab" lives
 * at <root>/ab/__/ab). Plugins that agree on it agree on paths, so a volume
 * can be read by either.
 *
 * Messages go to the calling thread's last_error (core.h); every function
 * that fails has set one. Also here, though not storage-specific, because
 * core.h has no equivalent yet: hs_fail_append, hs_saved_error and
 * hs_storage_log.
 */
#ifndef HANGAR_SUPPORT_STORAGE_H
#define HANGAR_SUPPORT_STORAGE_H

#include <hangar/support/core.h>

#include <limits.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/** Longest folder id (storage.h: 1–64 characters of [0-9a-z_-]). */
#define HS_FOLDER_ID_MAX 64
/** Size of a folder's root-relative path: "ab/cd/" + id + NUL. */
#define HS_FOLDER_REL_MAX (6 + HS_FOLDER_ID_MAX + 1)
/** Longest accepted volume root, leaving PATH_MAX room for the folder path and names below it. */
#define HS_ROOT_MAX (PATH_MAX - 128)

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/** Appends formatted text to the calling thread's message (truncated at HS_ERROR_MAX) and returns `status`. */
static inline HS_PRINTF(2, 3) hangar_status hs_fail_append(hangar_status status, const char *fmt, ...)
{
    size_t n = strlen(hs_thread_error);
    if (n < sizeof hs_thread_error - 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(hs_thread_error + n, sizeof hs_thread_error - n, fmt, ap);
        va_end(ap);
    }
    return status;
}

/** The calling thread's message, kept while a clean-up step that records messages of its own runs. */
typedef struct hs_saved_error {
    char text[HS_ERROR_MAX];
} hs_saved_error;

static inline void hs_save_error(hs_saved_error *s)
{
    hs_last_error(NULL, s->text, sizeof s->text);
}

/**
 * Puts a saved message back once its clean-up step has run, and returns
 * `status`. `cleanup` is the step's status: if it failed, its message is
 * appended as " (and <what>: <message>)", so the caller learns both what
 * went wrong and what was left behind.
 */
static inline HS_PRINTF(4, 5) hangar_status hs_restore_error(const hs_saved_error *s, hangar_status status,
                                                             hangar_status cleanup, const char *what_fmt, ...)
{
    if (cleanup == HANGAR_OK)
        return hs_fail(status, "%s", s->text);
    char why[HS_ERROR_MAX], what[512];
    hs_last_error(NULL, why, sizeof why);
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    return hs_fail(status, "%s (and %s: %.512s)", s->text, what, why);
}

/** Writes one log line through the host, if it offers logging (host may be NULL). */
static inline HS_PRINTF(3, 4) void hs_storage_log(const hangar_host_services *host, int32_t level, const char *fmt, ...)
{
    if (host == NULL || host->log == NULL)
        return;
    char line[HS_ERROR_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host->host_context, level, line);
}

/* ------------------------------------------------------------------------ */
/* errno                                                                     */
/* ------------------------------------------------------------------------ */

/** The status a failed filesystem call means to the host; anything not listed is HANGAR_E_IO. */
static inline hangar_status hs_fs_status(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
        return HANGAR_E_PERMISSION;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
        return HANGAR_E_INSUFFICIENT;
    case EBUSY:
    case ETXTBSY:
        return HANGAR_E_FOLDER_BUSY;
    case EAGAIN:
    case EINTR:
        return HANGAR_E_BUSY;
    case ENOTTY: /* an ioctl this filesystem or kernel does not have */
        return HANGAR_E_INCOMPATIBLE;
    default:
        return HANGAR_E_IO;
    }
}

/** hs_fail_errno with the status hs_fs_status picks for `err`: `return hs_fail_fs(errno, "cannot open %s", path)`. */
static inline HS_PRINTF(2, 3) hangar_status hs_fail_fs(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs_thread_error, sizeof hs_thread_error, fmt, ap);
    va_end(ap);
    return hs_fail_append(hs_fs_status(err), ": %s", strerror(err));
}

/* ------------------------------------------------------------------------ */
/* Folder ids and paths                                                      */
/* ------------------------------------------------------------------------ */

/** Length of a valid folder id (1–64 of [0-9a-z_-]), or 0. */
static inline size_t hs_folder_id_length(const char *id)
{
    if (id == NULL)
        return 0;
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (n == HS_FOLDER_ID_MAX)
            return 0;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-'))
            return 0;
    }
    return n;
}

/** Refuses an id storage.h does not allow (it could escape the volume), naming the argument `what`. */
static inline hangar_status hs_check_folder_id(const char *what, const char *id)
{
    if (id == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s is NULL", what);
    if (hs_folder_id_length(id) == 0)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT,
                       "%s \"%.80s\" is not a valid folder id: use 1-64 characters of [0-9a-z_-]", what, id);
    return HANGAR_OK;
}

/** "ab/cd/<id>" for a valid id, relative to the volume root; shards padded with '_'. */
static inline void hs_folder_rel(const char *id, char rel[HS_FOLDER_REL_MAX])
{
    size_t n = strlen(id);
    snprintf(rel, HS_FOLDER_REL_MAX, "%c%c/%c%c/%s", id[0], n > 1 ? id[1] : '_', n > 2 ? id[2] : '_',
             n > 3 ? id[3] : '_', id);
}

/** Absolute form of a root-relative path (root "/" gives "/rel", not "//rel"). */
static inline void hs_root_path(const char *root, const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", strcmp(root, "/") == 0 ? "" : root, rel);
}

/** Opens the volume root directory. */
static inline hangar_status hs_open_volume_root(const char *root, int *out)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hs_fail_fs(errno, "cannot open volume root %s", root);
    *out = fd;
    return HANGAR_OK;
}

/**
 * Opens an existing folder, `name` under `dirfd`, without following a
 * symlink in its place. `id` and its absolute `path` are for messages.
 */
static inline hangar_status hs_open_folder_at(int dirfd, const char *name, const char *id, const char *path, int *out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        *out = fd;
        return HANGAR_OK;
    }
    int e = errno;
    if (e == ENOENT)
        return hs_fail(HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", id, path);
    if (e == ELOOP || e == ENOTDIR)
        return hs_fail(HANGAR_E_IO, "folder %s: %s is not a directory (a symlink or a file is in its place)", id,
                       path);
    return hs_fail_fs(e, "cannot open folder %s at %s", id, path);
}

/* ------------------------------------------------------------------------ */
/* Usage                                                                     */
/* ------------------------------------------------------------------------ */

/** Refuses a usage struct the plugin could not fill (the host sets struct_size; storage.h). */
static inline hangar_status hs_check_usage(const hangar_storage_usage *usage)
{
    if (usage == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "usage is NULL");
    if (usage->struct_size < sizeof(uint32_t))
        return hs_fail(HANGAR_E_INVALID_ARGUMENT,
                       "usage->struct_size is %" PRIu32 "; set it to sizeof(hangar_storage_usage)", usage->struct_size);
    return HANGAR_OK;
}

/** Fills the fields of a host-sized usage struct that fit in its struct_size (file_count -1: not counted). */
static inline void hs_fill_usage(hangar_storage_usage *u, int64_t file_count, uint64_t used, uint64_t capacity)
{
    if (HS_HAS_FIELD(hangar_storage_usage, file_count, u->struct_size))
        u->file_count = file_count;
    if (HS_HAS_FIELD(hangar_storage_usage, used_bytes, u->struct_size))
        u->used_bytes = used;
    if (HS_HAS_FIELD(hangar_storage_usage, capacity_bytes, u->struct_size))
        u->capacity_bytes = capacity;
}

/* ------------------------------------------------------------------------ */
/* The "root" config key                                                     */
/* ------------------------------------------------------------------------ */

/**
 * Reads the volume root from the config key "root" (the schema makes it a
 * required non-empty string) and checks what a schema cannot say: an
 * absolute path, short enough for the folder paths below it, of an existing
 * directory. Trailing '/' are dropped ("/" stays). `hint_missing` and
 * `hint_not_dir` finish the messages for a missing path and a non-directory.
 * *out is a malloc'd copy for the caller to free.
 */
static inline hangar_status hs_storage_root(const hs_create *c, const char *hint_missing, const char *hint_not_dir,
                                            char **out)
{
    *out = NULL;
    char root[PATH_MAX];
    size_t len = 0;
    hangar_status st = c->host->config_string(c->host->host_context, "root", root, sizeof root, &len);
    if (st == HANGAR_E_BUFFER_TOO_SMALL)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "\"root\" is %zu bytes long; it must be shorter than %d", len,
                              HS_ROOT_MAX);
    if (st != HANGAR_OK)
        return hs_cfg_problem(c, "root", st, "the absolute path of the volume directory");
    if (len != strlen(root))
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "\"root\" contains a NUL character");
    if (root[0] != '/')
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                              "\"root\" must be an absolute path starting with '/', got \"%.200s\"", root);
    if (len >= HS_ROOT_MAX)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "\"root\" is %zu bytes long; it must be shorter than %d", len,
                              HS_ROOT_MAX);
    while (len > 1 && root[len - 1] == '/')
        root[--len] = '\0';
    struct stat st_root;
    if (stat(root, &st_root) != 0) {
        int e = errno;
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "\"root\" %.512s cannot be used: %s%s%s", root, strerror(e),
                              e == ENOENT ? "; " : "", e == ENOENT ? hint_missing : "");
    }
    if (!S_ISDIR(st_root.st_mode))
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "\"root\" %.512s is not a directory; %s", root, hint_not_dir);
    if ((*out = strdup(root)) == NULL)
        return hs_create_fail(c, HANGAR_E_INSUFFICIENT, "out of memory");
    return HANGAR_OK;
}

/** Checks that this process may read, write and search the root (so folders can be made in it). */
static inline hangar_status hs_storage_root_writable(const hs_create *c, const char *root)
{
    if (faccessat(AT_FDCWD, root, R_OK | W_OK | X_OK, AT_EACCESS) == 0)
        return HANGAR_OK;
    int e = errno;
    return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                          "\"root\" %.512s is not readable and writable by this process (uid %ld): %s; "
                          "fix its ownership or mode, or mount it read-write",
                          root, (long)geteuid(), strerror(e));
}

/* ------------------------------------------------------------------------ */
/* The instance: hs_volume                                                   */
/* ------------------------------------------------------------------------ */

/**
 * What a volume plugin's instance holds as its first member, so that the
 * functions below take the instance pointer as the function table passes it
 * (`typedef struct vfs { hs_volume vol; ... } vfs;`).
 */
typedef struct hs_volume {
    const hangar_host_services *host;
    /** Absolute, no trailing '/' (except "/" itself); from hs_storage_root, freed with the instance. */
    char *root;
    /** Finished and failed instance calls (all but last_error and get_performance), for get_performance. */
    atomic_uint_least64_t calls;
    atomic_uint_least64_t failed_calls;
} hs_volume;

/** Fills the base of a freshly allocated instance; `root` passes to it. */
static inline void hs_volume_init(hs_volume *vol, const hangar_host_services *host, char *root)
{
    vol->host = host;
    vol->root = root;
    atomic_init(&vol->calls, 0);
    atomic_init(&vol->failed_calls, 0);
}

/** The check every folder call starts with: an instance, and a valid folder id (`what` names the argument). */
static inline hangar_status hs_volume_check(const void *instance, const char *what, const char *id)
{
    if (instance == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "instance is NULL");
    return hs_check_folder_id(what, id);
}

/** clone_folder's check: an instance, and valid source and target ids. */
static inline hangar_status hs_volume_check_clone(const void *instance, const char *source_id, const char *target_id)
{
    hangar_status st = hs_volume_check(instance, "source_id", source_id);
    return st != HANGAR_OK ? st : hs_check_folder_id("target_id", target_id);
}

/** Counts a finished call and returns its status: instance functions end with `return hs_volume_done(v, rc)`. */
static inline hangar_status hs_volume_done(void *instance, hangar_status status)
{
    hs_volume *vol = instance;
    if (vol == NULL)
        return status;
    atomic_fetch_add_explicit(&vol->calls, 1, memory_order_relaxed);
    if (status != HANGAR_OK)
        atomic_fetch_add_explicit(&vol->failed_calls, 1, memory_order_relaxed);
    return status;
}

/** folder_path() for the shared layout, ready for the function table; the folder need not exist. */
static inline hangar_status hs_volume_folder_path(void *instance, const char *folder_id, char *buf, size_t buf_len,
                                                  size_t *out_len)
{
    hangar_status st = hs_volume_check(instance, "folder_id", folder_id);
    if (st != HANGAR_OK)
        return hs_volume_done(instance, st);
    if (out_len == NULL)
        return hs_volume_done(instance, hs_fail(HANGAR_E_INVALID_ARGUMENT, "out_len is NULL"));
    if (buf == NULL && buf_len > 0)
        return hs_volume_done(instance, hs_fail(HANGAR_E_INVALID_ARGUMENT, "buf is NULL but buf_len is %zu", buf_len));
    char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
    hs_folder_rel(folder_id, rel);
    hs_root_path(((hs_volume *)instance)->root, rel, path, sizeof path);
    size_t len = strlen(path);
    *out_len = len;
    if (buf_len < len + 1) {
        if (buf != NULL && buf_len > 0)
            buf[0] = '\0';
        st = hs_fail(HANGAR_E_BUFFER_TOO_SMALL, "folder path needs %zu bytes, buffer has %zu", len + 1, buf_len);
        return hs_volume_done(instance, st);
    }
    memcpy(buf, path, len + 1);
    return hs_volume_done(instance, HANGAR_OK);
}

/**
 * volume_usage() from statvfs of the root, ready for the function table:
 * the filesystem's size, and as used whatever folders cannot get (blocks
 * reserved for root, btrfs's metadata reserve and RAID overhead).
 */
static inline hangar_status hs_volume_usage(void *instance, hangar_storage_usage *usage)
{
    if (instance == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "instance is NULL");
    const char *root = ((hs_volume *)instance)->root;
    hangar_status st = hs_check_usage(usage);
    struct statvfs s;
    if (st == HANGAR_OK && statvfs(root, &s) != 0)
        st = hs_fail_fs(errno, "statvfs(%s) failed", root);
    if (st == HANGAR_OK) {
        uint64_t capacity = (uint64_t)s.f_blocks * (uint64_t)s.f_frsize;
        uint64_t avail = (uint64_t)s.f_bavail * (uint64_t)s.f_frsize;
        hs_fill_usage(usage, -1, avail < capacity ? capacity - avail : 0, capacity);
    }
    return hs_volume_done(instance, st);
}

/** A counter's value as a metric value. */
static inline double hs_counter(atomic_uint_least64_t *counter)
{
    return (double)atomic_load_explicit(counter, memory_order_relaxed);
}

/** One metric of get_performance besides the call counts. */
typedef struct hs_metric_row {
    const char *key;
    const char *unit;
    double value;
} hs_metric_row;

/** get_performance(): "operations" and "failed_operations" of the volume, then `rows`; stops when the sink refuses. */
static inline hangar_status hs_volume_metrics(void *instance, hangar_storage_metric_sink sink, void *sink_context,
                                              const hs_metric_row *rows, size_t row_count)
{
    hs_volume *vol = instance;
    if (vol == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "instance is NULL");
    if (sink == NULL)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "sink is NULL");
    hangar_storage_metric m = {sizeof m, "operations", "ops", hs_counter(&vol->calls)};
    HS_SINK(sink(sink_context, &m), "get_performance");
    m.key = "failed_operations";
    m.value = hs_counter(&vol->failed_calls);
    HS_SINK(sink(sink_context, &m), "get_performance");
    for (size_t i = 0; rows != NULL && i < row_count; i++) {
        m.key = rows[i].key;
        m.unit = rows[i].unit;
        m.value = rows[i].value;
        HS_SINK(sink(sink_context, &m), "get_performance");
    }
    return HANGAR_OK;
}

#endif /* HANGAR_SUPPORT_STORAGE_H */
