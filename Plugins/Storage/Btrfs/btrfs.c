/*
 * btrfs — Hangar storage plugin serving virtual folders as btrfs subvolumes.
 *
 * One instance serves one volume root, a directory on a btrfs filesystem.
 * Each folder is a subvolume at <root>/<id[0:2]>/<id[2:4]>/<id> (the vfs
 * layout, so the two plugins agree on paths; the shard directories are plain
 * directories). A subvolume rather than a directory because btrfs attaches
 * two things to subvolumes that a directory cannot have:
 *
 *   - a level-0 qgroup (0/<subvolume id>), which the kernel keeps accounting
 *     for and whose "referenced" limit it enforces on every write (EDQUOT).
 *     Quota is that limit, usage is that counter: no tree walk, and the
 *     descriptor claims HANGAR_STORAGE_CAP_QUOTA and _FAST_USAGE honestly.
 *   - snapshots: clone_folder is BTRFS_IOC_SNAP_CREATE_V2, an instant,
 *     writable, copy-on-write copy, whatever the folder's size.
 *
 * Everything goes through the btrfs ioctls of <linux/btrfs.h>; no external
 * tool is run. Usage and limits are read with BTRFS_IOC_TREE_SEARCH straight
 * from the quota tree, which the kernel updates at each transaction commit;
 * get_usage therefore runs syncfs() first (config "sync_usage", default on)
 * so that data just written is counted. That costs as much as `sync` on the
 * whole filesystem; a busy volume may turn it off and accept numbers up to one
 * commit interval (30 s by default) old. While the kernel rescans (it does
 * after quotas are enabled, by this plugin's "enable_quota" or by hand) the
 * counters are incomplete, and get_usage answers HANGAR_E_BUSY rather than a
 * wrong number; quotas disabled behind the plugin's back make the quota and
 * usage calls fail with HANGAR_E_INCOMPATIBLE and a message saying so.
 *
 * Quota semantics are btrfs's, not vfs's: "referenced" counts every extent
 * the subvolume can reach, including its metadata (an empty folder already
 * uses 16 KiB) and extents shared with other subvolumes. A clone therefore
 * starts out using as much as its source and inherits its source's limit, and
 * rewriting part of a file can raise usage, since btrfs keeps counting an old
 * extent whole while any part of it is still in use. A limit below current
 * usage is accepted: writes then fail until enough is deleted. quota_bytes UINT64_MAX is the kernel's own
 * "no limit" value, so it reads back as 0.
 *
 * Deleting: the kernel refuses to delete a subvolume that contains other
 * subvolumes, and any user who can write into a folder can create one there
 * (BTRFS_IOC_SUBVOL_CREATE needs no privilege). delete_folder finds those
 * through the ROOT_REF items of the root tree and deletes them deepest first,
 * by id (BTRFS_IOC_SNAP_DESTROY_V2, Linux 5.7+). Space comes back
 * asynchronously, when the kernel's cleaner has dropped the subvolume.
 * The folder's qgroup is removed with it so accounting does not pile up.
 * Newer kernels refuse that (EBUSY) until the cleaner has dropped the
 * subvolume and then remove the qgroup themselves; a refused id is still
 * remembered and retried on later calls, for kernels that do not.
 * Snapshots are not recursive: a subvolume nested in a cloned folder shows up
 * in the clone as an empty directory.
 *
 * Limitations: a nested subvolume has a qgroup of its own and escapes the
 * folder's limit, and get_usage does not count it. file_count is always -1:
 * btrfs keeps no per-subvolume inode count, and counting would mean the tree
 * walk this plugin exists to avoid. Setting limits, reading the quota tree and
 * deleting subvolumes need CAP_SYS_ADMIN, so the storage proxy runs as root.
 * With simple quotas (mkfs/quota enable --simple, Linux 6.7+) an extent is
 * charged to the subvolume that wrote it, so a fresh clone uses almost nothing.
 *
 * Thread safety: the instance is immutable after create() except for the
 * metric counters (C11 atomics), the last-error buffer and the list of
 * qgroups awaiting removal (a mutex each). Each call works on its own
 * descriptors; the kernel serialises the subvolume and qgroup operations.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <hangar/storage.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>

#define BT_ID_MAX 64
/* "ab/cd/" + id + NUL */
#define BT_REL_MAX (6 + BT_ID_MAX + 1)
#define BT_ERR_MAX 1536
/* Deleted folders whose qgroup the kernel would not remove yet; beyond this the oldest are forgotten. */
#define BT_PENDING_MAX 256
/* The kernel's value meaning "remove this limit" in BTRFS_IOC_QGROUP_LIMIT. */
#define BT_NO_LIMIT UINT64_MAX

#ifndef BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE
#define BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE (1ULL << 3)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BT_PRINTF(f, a)
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

/* ------------------------------------------------------------------------ */
/* Instance and error plumbing                                               */
/* ------------------------------------------------------------------------ */

typedef struct bt {
    const hangar_host_services *host;
    char *root;                 /* absolute, no trailing '/', except "/" itself */
    bool sync_usage;            /* syncfs before reading qgroup counters */
    atomic_uint_least64_t operations;
    atomic_uint_least64_t failed_operations;
    atomic_uint_least64_t subvolumes_created;
    atomic_uint_least64_t subvolumes_deleted;
    atomic_uint_least64_t snapshots;
    atomic_uint_least64_t nested_deleted;
    pthread_mutex_t err_lock;   /* guards err and err_len */
    size_t err_len;
    char err[BT_ERR_MAX];
    pthread_mutex_t pending_lock; /* guards pending and pending_len */
    size_t pending_len;
    uint64_t pending[BT_PENDING_MAX];
} bt;

/* A per-call message buffer; copied into the instance only if the call fails. */
typedef struct bt_msg {
    char text[BT_ERR_MAX];
} bt_msg;

static hangar_status errno_status(int e)
{
    switch (e) {
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
    case ENOTTY:   /* not btrfs, or a kernel without this ioctl */
    case ENOTCONN: /* qgroup call while quotas are disabled */
        return HANGAR_E_INCOMPATIBLE;
    default:
        return HANGAR_E_IO;
    }
}

/* Thread-safe strerror: glibc's GNU strerror_r returns the text, the XSI one (musl) fills buf. */
static const char *errtext(int e, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, len);
#else
    if (strerror_r(e, buf, len) != 0)
        snprintf(buf, len, "error %d", e);
    return buf;
#endif
}

static BT_PRINTF(3, 4) hangar_status say(bt_msg *m, hangar_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->text, sizeof m->text, fmt, ap);
    va_end(ap);
    return st;
}

/* Like say(), appending ": <strerror(e)>". st == HANGAR_OK picks a status from e. */
static BT_PRINTF(4, 5) hangar_status say_errno(bt_msg *m, int e, hangar_status st, const char *fmt, ...)
{
    char why[256];
    const char *s = errtext(e, why, sizeof why);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->text, sizeof m->text, fmt, ap);
    va_end(ap);
    size_t n = strlen(m->text);
    if (n < sizeof m->text - 1)
        snprintf(m->text + n, sizeof m->text - n, ": %s", s);
    return st != HANGAR_OK ? st : errno_status(e);
}

static void record_error(bt *v, const char *text)
{
    size_t n = strlen(text);
    if (n >= sizeof v->err)
        n = sizeof v->err - 1;
    pthread_mutex_lock(&v->err_lock);
    memcpy(v->err, text, n);
    v->err[n] = '\0';
    v->err_len = n;
    pthread_mutex_unlock(&v->err_lock);
}

/* Every instance call except last_error/get_performance ends here. */
static hangar_status finish(bt *v, hangar_status st, const bt_msg *m)
{
    atomic_fetch_add_explicit(&v->operations, 1, memory_order_relaxed);
    if (st != HANGAR_OK) {
        atomic_fetch_add_explicit(&v->failed_operations, 1, memory_order_relaxed);
        record_error(v, m->text);
    }
    return st;
}

static BT_PRINTF(3, 4) void bt_log(const bt *v, int32_t level, const char *fmt, ...)
{
    if (!v->host->log)
        return;
    char line[BT_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    v->host->log(v->host->host_context, level, line);
}

static size_t bt_last_error(void *instance, char *buf, size_t buf_len)
{
    bt *v = instance;
    if (!v) {
        if (buf && buf_len)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&v->err_lock);
    size_t n = v->err_len;
    if (buf && buf_len) {
        size_t c = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, v->err, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&v->err_lock);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Ids and paths                                                             */
/* ------------------------------------------------------------------------ */

/* Length of a valid folder id (1–64 of [0-9a-z_-]), or 0. */
static size_t id_length(const char *id)
{
    if (!id)
        return 0;
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (n == BT_ID_MAX)
            return 0;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-'))
            return 0;
    }
    return n;
}

static hangar_status check_id(bt_msg *m, const char *what, const char *id)
{
    if (!id)
        return say(m, HANGAR_E_INVALID_ARGUMENT, "%s is NULL", what);
    if (!id_length(id))
        return say(m, HANGAR_E_INVALID_ARGUMENT,
                   "%s \"%.80s\" is not a valid folder id: use 1-64 characters of [0-9a-z_-]", what, id);
    return HANGAR_OK;
}

/* "ab/cd/<id>" for a valid id, relative to the root; shards padded with '_' (as vfs does). */
static void folder_rel(const char *id, char rel[BT_REL_MAX])
{
    size_t n = strlen(id);
    snprintf(rel, BT_REL_MAX, "%c%c/%c%c/%s", id[0], n > 1 ? id[1] : '_', n > 2 ? id[2] : '_',
             n > 3 ? id[3] : '_', id);
}

/* Absolute form of a root-relative path, for messages and folder_path. */
static void full_path(const bt *v, const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", strcmp(v->root, "/") == 0 ? "" : v->root, rel);
}

static hangar_status open_root(const bt *v, bt_msg *m, int *out)
{
    int fd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return say_errno(m, errno, HANGAR_OK, "cannot open volume root %s", v->root);
    *out = fd;
    return HANGAR_OK;
}

/*
 * Opens the shard directory "ab/cd" of rel one component at a time, each with
 * O_NOFOLLOW, so a symlink planted as a shard cannot redirect subvolume
 * operations outside the volume. With `create`, missing shards are made.
 * A missing shard without `create` means the folder does not exist.
 */
static hangar_status open_shard(const bt *v, bt_msg *m, int rootfd, const char *id, const char *rel, bool create,
                                int *out)
{
    char part[3] = {0};
    int dir = rootfd;
    for (int i = 0; i < 2; i++) {
        memcpy(part, rel + 3 * i, 2);
        if (create && mkdirat(dir, part, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            if (dir != rootfd)
                close(dir);
            char shard[6], path[PATH_MAX];
            memcpy(shard, rel, i == 0 ? 2 : 5); /* "ab" or "ab/cd" */
            shard[i == 0 ? 2 : 5] = '\0';
            full_path(v, shard, path, sizeof path);
            return say_errno(m, e, HANGAR_OK, "cannot create shard directory %s", path);
        }
        int fd = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (dir != rootfd)
            close(dir);
        if (fd < 0) {
            char path[PATH_MAX];
            full_path(v, rel, path, sizeof path);
            if (!create && (e == ENOENT || e == ENOTDIR))
                return say(m, HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", id, path);
            if (e == ELOOP || e == ENOTDIR)
                return say(m, HANGAR_E_IO, "a shard directory above %s is a symlink or a file; remove it", path);
            return say_errno(m, e, HANGAR_OK, "cannot open the shard directories above %s", path);
        }
        dir = fd;
    }
    *out = dir;
    return HANGAR_OK;
}

/* Subvolume id of the subvolume fd lives in (INO_LOOKUP of the subvolume's own root inode). */
static int subvol_id_of(int fd, uint64_t *out)
{
    struct btrfs_ioctl_ino_lookup_args a;
    memset(&a, 0, sizeof a);
    a.treeid = 0;
    a.objectid = BTRFS_FIRST_FREE_OBJECTID;
    if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &a) != 0)
        return errno;
    *out = a.treeid;
    return 0;
}

/*
 * Opens the folder's subvolume (under its already opened shard) and returns
 * its subvolume id. A folder must be the root of a subvolume: a plain
 * directory in its place (a vfs folder, or one made by hand) is reported,
 * never treated as one.
 */
static hangar_status open_subvol(const bt *v, bt_msg *m, int shardfd, const char *id, int *out, uint64_t *subvol)
{
    char rel[BT_REL_MAX], path[PATH_MAX];
    folder_rel(id, rel);
    full_path(v, rel, path, sizeof path);
    int fd = openat(shardfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return say(m, HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", id, path);
        if (e == ELOOP || e == ENOTDIR)
            return say(m, HANGAR_E_IO, "folder %s: %s is not a directory (a symlink or a file is in its place)",
                       id, path);
        return say_errno(m, e, HANGAR_OK, "cannot open folder %s at %s", id, path);
    }
    struct stat st;
    struct statfs sfs;
    hangar_status rc = HANGAR_OK;
    if (fstat(fd, &st) != 0 || fstatfs(fd, &sfs) != 0)
        rc = say_errno(m, errno, HANGAR_OK, "cannot stat folder %s at %s", id, path);
    else if ((unsigned long)sfs.f_type != (unsigned long)BTRFS_SUPER_MAGIC)
        rc = say(m, HANGAR_E_IO, "folder %s: %s is not on btrfs (another filesystem is mounted there?)", id, path);
    else if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID)
        rc = say(m, HANGAR_E_IO,
                 "folder %s: %s is a plain directory, not a btrfs subvolume (made by hand or by another storage "
                 "plugin?); move it away or convert it",
                 id, path);
    else {
        int e = subvol_id_of(fd, subvol);
        if (e)
            rc = say_errno(m, e, HANGAR_OK, "cannot look up the subvolume id of folder %s at %s", id, path);
    }
    if (rc != HANGAR_OK) {
        close(fd);
        return rc;
    }
    *out = fd;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* The quota tree and qgroups                                                */
/* ------------------------------------------------------------------------ */

/*
 * Reads the item with exactly this key from a tree (BTRFS_IOC_TREE_SEARCH
 * with a one-key range). Items are little-endian on disk; callers convert.
 * A tree that does not exist (the quota tree while quotas are off) is ENOENT.
 */
static int search_item(int fd, uint64_t tree, uint64_t objectid, uint32_t type, uint64_t offset, void *item,
                       size_t item_len, bool *found)
{
    struct btrfs_ioctl_search_args a;
    memset(&a, 0, sizeof a);
    a.key.tree_id = tree;
    a.key.min_objectid = a.key.max_objectid = objectid;
    a.key.min_type = a.key.max_type = type;
    a.key.min_offset = a.key.max_offset = offset;
    a.key.max_transid = UINT64_MAX;
    a.key.nr_items = 1;
    *found = false;
    memset(item, 0, item_len);
    if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &a) != 0)
        return errno;
    if (a.key.nr_items == 0)
        return 0;
    struct btrfs_ioctl_search_header h;
    memcpy(&h, a.buf, sizeof h);
    if (h.objectid != objectid || h.type != type || h.offset != offset)
        return 0;
    if (h.len > sizeof a.buf - sizeof h)
        return EIO;
    memcpy(item, a.buf + sizeof h, h.len < item_len ? h.len : item_len);
    *found = true;
    return 0;
}

static hangar_status quota_off(const bt *v, bt_msg *m)
{
    return say(m, HANGAR_E_INCOMPATIBLE,
               "btrfs quotas are disabled on the filesystem of %s (someone ran `btrfs quota disable`?); "
               "enable them again with `btrfs quota enable %s`",
               v->root, v->root);
}

/* Status flags of the quota tree; *enabled false when there is no quota tree. */
static int quota_status(int fd, bool *enabled, uint64_t *flags)
{
    struct btrfs_qgroup_status_item s;
    bool found;
    int e = search_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_STATUS_KEY, 0, &s, sizeof s, &found);
    *enabled = false;
    *flags = 0;
    if (e == ENOENT)
        return 0;
    if (e)
        return e;
    *enabled = found;
    *flags = found ? le64toh(s.flags) : 0;
    return 0;
}

/*
 * Whether a qgroup rescan is running. The status item is rewritten only at
 * commit, so its RESCAN and INCONSISTENT bits can lag behind the kernel; only
 * when they hint at a rescan is the kernel asked directly.
 */
static bool rescan_running(int fd, uint64_t flags)
{
    if (!(flags & (BTRFS_QGROUP_STATUS_FLAG_RESCAN | BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT)))
        return false;
    struct btrfs_ioctl_quota_rescan_args r;
    memset(&r, 0, sizeof r);
    if (ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_STATUS, &r) != 0)
        return (flags & BTRFS_QGROUP_STATUS_FLAG_RESCAN) != 0;
    return r.flags != 0;
}

/* The referenced limit of qgroup 0/<subvol> (0 = none). */
static hangar_status read_limit(const bt *v, bt_msg *m, int fd, const char *id, uint64_t subvol, uint64_t *out)
{
    struct btrfs_qgroup_limit_item l;
    bool found;
    int e = search_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_LIMIT_KEY, subvol, &l, sizeof l, &found);
    if (e == ENOENT)
        return quota_off(v, m);
    if (e)
        return say_errno(m, e, HANGAR_OK, "cannot read the qgroup limit of folder %s (qgroup 0/%" PRIu64 ")", id,
                         subvol);
    *out = found && (le64toh(l.flags) & BTRFS_QGROUP_LIMIT_MAX_RFER) ? le64toh(l.max_rfer) : 0;
    return HANGAR_OK;
}

/*
 * Sets (bytes > 0) or removes (0) the referenced limit of qgroup 0/<subvol>.
 * `rootfd` must lie outside the folder's subvolume: the ioctl reserves
 * metadata in the subvolume of the descriptor it is called on, and in a
 * folder that is over its limit that reservation fails with EDQUOT, which
 * would make a full folder's quota impossible to raise.
 */
static hangar_status write_limit(const bt *v, bt_msg *m, int rootfd, const char *id, uint64_t subvol,
                                 uint64_t bytes)
{
    struct btrfs_ioctl_qgroup_limit_args a;
    memset(&a, 0, sizeof a);
    a.qgroupid = subvol;
    /* Only the referenced limit is touched; a max_excl an operator set by hand stays. */
    a.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
    a.lim.max_rfer = bytes ? bytes : BT_NO_LIMIT;
    if (ioctl(rootfd, BTRFS_IOC_QGROUP_LIMIT, &a) == 0)
        return HANGAR_OK;
    int e = errno;
    if (e == ENOTCONN)
        return quota_off(v, m);
    if (e == ENOENT)
        return say(m, HANGAR_E_IO,
                   "folder %s has no qgroup 0/%" PRIu64 " (removed by hand?); recreate it with "
                   "`btrfs qgroup create 0/%" PRIu64 " %s` and `btrfs quota rescan %s`",
                   id, subvol, subvol, v->root, v->root);
    return say_errno(m, e, HANGAR_OK, "cannot set the qgroup limit of folder %s (qgroup 0/%" PRIu64 ") to %" PRIu64
                     " bytes", id, subvol, bytes);
}

/* 0 when the qgroup is gone (removed now or already), else errno (EBUSY: the kernel still needs it). */
static int qgroup_remove(int fd, uint64_t subvol)
{
    struct btrfs_ioctl_qgroup_create_args a = {.create = 0, .qgroupid = subvol};
    if (ioctl(fd, BTRFS_IOC_QGROUP_CREATE, &a) == 0 || errno == ENOENT || errno == ENOTCONN)
        return 0;
    return errno;
}

/*
 * Removes the qgroup of a subvolume just deleted. Kernels that refuse while
 * the cleaner has not dropped the subvolume yet (EBUSY) remove it themselves
 * afterwards; the id is kept and retried anyway for kernels that do not.
 */
static void forget_qgroup(bt *v, int fd, uint64_t subvol)
{
    int e = qgroup_remove(fd, subvol);
    if (!e)
        return;
    if (e != EBUSY) {
        char why[256];
        bt_log(v, HANGAR_LOG_WARNING, "cannot remove qgroup 0/%" PRIu64 " of a deleted folder: %s", subvol,
               errtext(e, why, sizeof why));
        return;
    }
    pthread_mutex_lock(&v->pending_lock);
    if (v->pending_len == BT_PENDING_MAX) {
        bt_log(v, HANGAR_LOG_WARNING,
               "too many qgroups awaiting removal; forgetting 0/%" PRIu64 " (`btrfs qgroup clear-stale %s` "
               "removes it)",
               v->pending[0], v->root);
        memmove(v->pending, v->pending + 1, (BT_PENDING_MAX - 1) * sizeof v->pending[0]);
        v->pending_len--;
    }
    v->pending[v->pending_len++] = subvol;
    pthread_mutex_unlock(&v->pending_lock);
}

/* One removal attempt for each remembered qgroup; cheap (an ioctl each), run by create and delete. */
static void retry_pending(bt *v, int fd)
{
    pthread_mutex_lock(&v->pending_lock);
    size_t keep = 0;
    for (size_t i = 0; i < v->pending_len; i++) {
        int e = qgroup_remove(fd, v->pending[i]);
        if (e == EBUSY)
            v->pending[keep++] = v->pending[i];
        else if (e) {
            char why[256];
            bt_log(v, HANGAR_LOG_WARNING, "cannot remove qgroup 0/%" PRIu64 " of a deleted folder: %s",
                   v->pending[i], errtext(e, why, sizeof why));
        }
    }
    v->pending_len = keep;
    pthread_mutex_unlock(&v->pending_lock);
}

/* ------------------------------------------------------------------------ */
/* Subvolume deletion                                                        */
/* ------------------------------------------------------------------------ */

/* Appends the ids of the subvolumes linked directly inside subvolume `parent` (its ROOT_REF items). */
static int list_children(int fd, uint64_t parent, uint64_t **ids, size_t *len, size_t *cap)
{
    struct btrfs_ioctl_search_args a;
    uint64_t next = 0;
    for (;;) {
        memset(&a, 0, sizeof a);
        a.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
        a.key.min_objectid = a.key.max_objectid = parent;
        a.key.min_type = a.key.max_type = BTRFS_ROOT_REF_KEY;
        a.key.min_offset = next;
        a.key.max_offset = UINT64_MAX;
        a.key.max_transid = UINT64_MAX;
        a.key.nr_items = 4096;
        if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &a) != 0)
            return errno;
        if (a.key.nr_items == 0)
            return 0;
        size_t off = 0;
        uint64_t last = next;
        for (uint32_t i = 0; i < a.key.nr_items; i++) {
            struct btrfs_ioctl_search_header h;
            if (off + sizeof h > sizeof a.buf)
                return EIO;
            memcpy(&h, a.buf + off, sizeof h);
            off += sizeof h + h.len;
            if (off > sizeof a.buf)
                return EIO;
            last = h.offset;
            if (h.objectid != parent || h.type != BTRFS_ROOT_REF_KEY)
                continue;
            if (*len == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                uint64_t *n = realloc(*ids, nc * sizeof *n);
                if (!n)
                    return ENOMEM;
                *ids = n;
                *cap = nc;
            }
            (*ids)[(*len)++] = h.offset;
        }
        if (last == UINT64_MAX)
            return 0;
        next = last + 1;
    }
}

/*
 * Deletes every subvolume nested (at any depth) inside subvolume `top`,
 * deepest first, since the kernel refuses to delete a subvolume that still
 * contains one. Found breadth-first, so the reverse of the list puts every
 * subvolume before its parent. `fd` is the folder, `rootfd` the volume root.
 */
static hangar_status delete_nested(bt *v, bt_msg *m, int rootfd, int fd, const char *id, uint64_t top)
{
    uint64_t *ids = malloc(16 * sizeof *ids);
    size_t len = 0, cap = 16;
    if (!ids)
        return say(m, HANGAR_E_INSUFFICIENT, "out of memory while deleting folder %s", id);
    ids[len++] = top;
    hangar_status rc = HANGAR_OK;
    for (size_t i = 0; i < len; i++) {
        int e = list_children(fd, ids[i], &ids, &len, &cap);
        if (e) {
            rc = say_errno(m, e, HANGAR_OK, "cannot list the subvolumes nested in folder %s", id);
            goto out;
        }
    }
    if (len == 1)
        goto out;
    /*
     * Unlinking a nested subvolume reserves metadata in the folder's own
     * qgroup, which fails with EDQUOT once the folder is over its limit. The
     * folder is being deleted, so its limit goes first; it is put back if
     * the deletion stops half-way.
     */
    uint64_t limit = 0;
    if ((rc = read_limit(v, m, rootfd, id, top, &limit)) != HANGAR_OK ||
        (limit && (rc = write_limit(v, m, rootfd, id, top, 0)) != HANGAR_OK))
        goto out;
    for (size_t i = len; i-- > 1;) {
        struct btrfs_ioctl_vol_args_v2 a;
        memset(&a, 0, sizeof a);
        a.flags = BTRFS_SUBVOL_SPEC_BY_ID;
        a.subvolid = ids[i];
        if (ioctl(fd, BTRFS_IOC_SNAP_DESTROY_V2, &a) != 0 && errno != ENOENT) {
            int e = errno;
            if (e == ENOTTY || e == EOPNOTSUPP)
                rc = say(m, HANGAR_E_INCOMPATIBLE,
                         "folder %s contains nested subvolumes, and this kernel cannot delete subvolumes by id "
                         "(Linux 5.7+ can); delete them with `btrfs subvolume delete` first",
                         id);
            else if (e == ENOTEMPTY)
                rc = say(m, HANGAR_E_FOLDER_BUSY,
                         "a subvolume was created inside folder %s while it was being deleted; retry", id);
            else
                rc = say_errno(m, e, HANGAR_OK, "cannot delete subvolume %" PRIu64 " nested in folder %s", ids[i],
                               id);
            bt_msg lm;
            if (limit && write_limit(v, &lm, rootfd, id, top, limit) != HANGAR_OK) {
                size_t n = strlen(m->text);
                snprintf(m->text + n, sizeof m->text - n, " (and its quota could not be restored: %.512s)", lm.text);
            }
            goto out;
        }
        atomic_fetch_add_explicit(&v->nested_deleted, 1, memory_order_relaxed);
        forget_qgroup(v, rootfd, ids[i]);
    }
    bt_log(v, HANGAR_LOG_INFO, "deleted %zu subvolume(s) nested in folder %s", len - 1, id);
out:
    free(ids);
    return rc;
}

/* Deletes the subvolume `name` directly under dirfd (by name: works on every kernel with btrfs). */
static int destroy_by_name(int dirfd, const char *name)
{
    struct btrfs_ioctl_vol_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", name);
    return ioctl(dirfd, BTRFS_IOC_SNAP_DESTROY, &a) == 0 ? 0 : errno;
}

/*
 * Undoes a subvolume this call created (create_folder or clone_folder that
 * failed half-way), appending to m's message if even that fails.
 */
static void roll_back(bt *v, bt_msg *m, int rootfd, int shardfd, const char *id, uint64_t subvol)
{
    int e = destroy_by_name(shardfd, id);
    if (e) {
        char why[256], rel[BT_REL_MAX], path[PATH_MAX];
        folder_rel(id, rel);
        full_path(v, rel, path, sizeof path);
        size_t n = strlen(m->text);
        snprintf(m->text + n, sizeof m->text - n,
                 " (and the half-made subvolume %.256s could not be deleted: %s; delete it with "
                 "`btrfs subvolume delete`)",
                 path, errtext(e, why, sizeof why));
        return;
    }
    if (subvol)
        forget_qgroup(v, rootfd, subvol);
}

/* ------------------------------------------------------------------------ */
/* Storage functions                                                         */
/* ------------------------------------------------------------------------ */

static hangar_status bt_create_folder(void *instance, const char *folder_id, uint64_t quota_bytes)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    char rel[BT_REL_MAX], path[PATH_MAX];
    folder_rel(folder_id, rel);
    full_path(v, rel, path, sizeof path);
    int rootfd = -1, shardfd = -1, fd = -1;
    if ((rc = open_root(v, &m, &rootfd)) != HANGAR_OK)
        return finish(v, rc, &m);
    retry_pending(v, rootfd);
    if ((rc = open_shard(v, &m, rootfd, folder_id, rel, true, &shardfd)) != HANGAR_OK)
        goto out;

    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", folder_id);
    if (ioctl(shardfd, BTRFS_IOC_SUBVOL_CREATE_V2, &a) != 0) {
        if (errno == EEXIST)
            rc = say(&m, HANGAR_E_EXISTS, "folder %s already exists at %s", folder_id, path);
        else
            rc = say_errno(&m, errno, HANGAR_OK, "cannot create subvolume %s for folder %s", path, folder_id);
        goto out;
    }
    /* From here on a failure deletes the subvolume again. */
    uint64_t subvol = 0;
    if ((rc = open_subvol(v, &m, shardfd, folder_id, &fd, &subvol)) != HANGAR_OK)
        goto undo;
    /* Exactly 0755 whatever the process umask or kernel version made it. */
    if (fchmod(fd, 0755) != 0) {
        rc = say_errno(&m, errno, HANGAR_OK, "cannot set the mode of folder %s at %s", folder_id, path);
        goto undo;
    }
    /*
     * Also with quota 0: subvolume ids can be reused after a remount, and a
     * leftover qgroup of the same id would hand its old limit to this folder.
     */
    if ((rc = write_limit(v, &m, rootfd, folder_id, subvol, quota_bytes)) != HANGAR_OK)
        goto undo;
    atomic_fetch_add_explicit(&v->subvolumes_created, 1, memory_order_relaxed);
    goto out;
undo:
    if (fd >= 0) {
        close(fd);
        fd = -1;
    }
    roll_back(v, &m, rootfd, shardfd, folder_id, subvol);
out:
    if (fd >= 0)
        close(fd);
    if (shardfd >= 0)
        close(shardfd);
    close(rootfd);
    return finish(v, rc, &m);
}

static hangar_status bt_delete_folder(void *instance, const char *folder_id)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    char rel[BT_REL_MAX], path[PATH_MAX];
    folder_rel(folder_id, rel);
    full_path(v, rel, path, sizeof path);
    int rootfd = -1, shardfd = -1, fd = -1;
    if ((rc = open_root(v, &m, &rootfd)) != HANGAR_OK)
        return finish(v, rc, &m);
    retry_pending(v, rootfd);
    uint64_t subvol = 0;
    if ((rc = open_shard(v, &m, rootfd, folder_id, rel, false, &shardfd)) != HANGAR_OK ||
        (rc = open_subvol(v, &m, shardfd, folder_id, &fd, &subvol)) != HANGAR_OK)
        goto out;
    if ((rc = delete_nested(v, &m, rootfd, fd, folder_id, subvol)) != HANGAR_OK)
        goto out;
    close(fd);
    fd = -1;
    int e = destroy_by_name(shardfd, folder_id);
    if (e == ENOENT)
        rc = say(&m, HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", folder_id, path);
    else if (e == ENOTEMPTY)
        rc = say(&m, HANGAR_E_FOLDER_BUSY, "a subvolume was created inside folder %s while it was being deleted; retry",
                 folder_id);
    else if (e == EBUSY)
        rc = say(&m, HANGAR_E_FOLDER_BUSY, "folder %s at %s is mounted somewhere or in use; unmount it first",
                 folder_id, path);
    else if (e)
        rc = say_errno(&m, e, HANGAR_OK, "cannot delete subvolume %s of folder %s", path, folder_id);
    if (rc != HANGAR_OK)
        goto out;
    /* Shard directories are kept so that a concurrent create_folder in the same shard never loses its parent. */
    atomic_fetch_add_explicit(&v->subvolumes_deleted, 1, memory_order_relaxed);
    forget_qgroup(v, rootfd, subvol);
out:
    if (fd >= 0)
        close(fd);
    if (shardfd >= 0)
        close(shardfd);
    close(rootfd);
    return finish(v, rc, &m);
}

static hangar_status bt_folder_path(void *instance, const char *folder_id, char *buf, size_t buf_len,
                                    size_t *out_len)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc == HANGAR_OK && !out_len)
        rc = say(&m, HANGAR_E_INVALID_ARGUMENT, "out_len is NULL");
    if (rc == HANGAR_OK && !buf && buf_len)
        rc = say(&m, HANGAR_E_INVALID_ARGUMENT, "buf is NULL but buf_len is %zu", buf_len);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    char rel[BT_REL_MAX], path[PATH_MAX];
    folder_rel(folder_id, rel);
    full_path(v, rel, path, sizeof path);
    size_t len = strlen(path);
    *out_len = len;
    if (buf_len < len + 1) {
        if (buf && buf_len)
            buf[0] = '\0';
        rc = say(&m, HANGAR_E_BUFFER_TOO_SMALL, "folder path needs %zu bytes, buffer has %zu", len + 1, buf_len);
        return finish(v, rc, &m);
    }
    memcpy(buf, path, len + 1);
    return finish(v, HANGAR_OK, &m);
}

/* Fills the fields of a host-sized usage struct that fit in its struct_size. */
static void fill_usage(hangar_storage_usage *u, int64_t files, uint64_t used, uint64_t capacity)
{
    size_t size = u->struct_size;
#define BT_FITS(f) (size >= offsetof(hangar_storage_usage, f) + sizeof u->f)
    if (BT_FITS(file_count))
        u->file_count = files;
    if (BT_FITS(used_bytes))
        u->used_bytes = used;
    if (BT_FITS(capacity_bytes))
        u->capacity_bytes = capacity;
#undef BT_FITS
}

static hangar_status check_usage_arg(bt_msg *m, const hangar_storage_usage *usage)
{
    if (!usage)
        return say(m, HANGAR_E_INVALID_ARGUMENT, "usage is NULL");
    if (usage->struct_size < sizeof(uint32_t))
        return say(m, HANGAR_E_INVALID_ARGUMENT,
                   "usage->struct_size is %" PRIu32 "; set it to sizeof(hangar_storage_usage)", usage->struct_size);
    return HANGAR_OK;
}

/* Opens root, shard and subvolume of an existing folder; on success the caller closes *rootfd and *fd. */
static hangar_status open_existing(const bt *v, bt_msg *m, const char *id, int *rootfd, int *fd, uint64_t *subvol)
{
    char rel[BT_REL_MAX];
    folder_rel(id, rel);
    int shardfd = -1;
    hangar_status rc = open_root(v, m, rootfd);
    if (rc != HANGAR_OK)
        return rc;
    if ((rc = open_shard(v, m, *rootfd, id, rel, false, &shardfd)) == HANGAR_OK) {
        rc = open_subvol(v, m, shardfd, id, fd, subvol);
        close(shardfd);
    }
    if (rc != HANGAR_OK) {
        close(*rootfd);
        *rootfd = -1;
    }
    return rc;
}

/*
 * used_bytes is the qgroup's "referenced" counter: every byte of data and
 * metadata the subvolume reaches, shared or not (what its limit applies to).
 * file_count is -1: btrfs keeps no inode count per subvolume.
 */
static hangar_status bt_get_usage(void *instance, const char *folder_id, hangar_storage_usage *usage)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc == HANGAR_OK)
        rc = check_usage_arg(&m, usage);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0;
    if ((rc = open_existing(v, &m, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return finish(v, rc, &m);
    /* The kernel folds new extents into the qgroup counters at transaction commit; syncfs commits. */
    if (v->sync_usage && syncfs(fd) != 0) {
        rc = say_errno(&m, errno, HANGAR_OK, "syncfs on the volume %s failed", v->root);
        goto out;
    }
    bool enabled;
    uint64_t flags;
    int e = quota_status(fd, &enabled, &flags);
    if (e) {
        rc = say_errno(&m, e, HANGAR_OK, "cannot read the btrfs quota status of %s", v->root);
        goto out;
    }
    if (!enabled) {
        rc = quota_off(v, &m);
        goto out;
    }
    bool rescanning = rescan_running(fd, flags);
    if (rescanning) {
        rc = say(&m, HANGAR_E_BUSY,
                 "a btrfs quota rescan is running on %s, so usage numbers are incomplete; retry when it is done "
                 "(`btrfs quota rescan -s %s`)",
                 v->root, v->root);
        goto out;
    }
    struct btrfs_qgroup_info_item info;
    bool found;
    e = search_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY, subvol, &info, sizeof info, &found);
    if (e == ENOENT) {
        rc = quota_off(v, &m);
        goto out;
    }
    if (e) {
        rc = say_errno(&m, e, HANGAR_OK, "cannot read qgroup 0/%" PRIu64 " of folder %s", subvol, folder_id);
        goto out;
    }
    if (!found) {
        rc = say(&m, HANGAR_E_IO,
                 "folder %s has no qgroup 0/%" PRIu64 " (removed by hand?); recreate it with "
                 "`btrfs qgroup create 0/%" PRIu64 " %s` and `btrfs quota rescan %s`",
                 folder_id, subvol, subvol, v->root, v->root);
        goto out;
    }
    uint64_t limit = 0;
    if ((rc = read_limit(v, &m, fd, folder_id, subvol, &limit)) != HANGAR_OK)
        goto out;
    if ((flags & BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT) && !rescanning)
        bt_log(v, HANGAR_LOG_WARNING,
               "btrfs qgroup numbers of %s are marked inconsistent; usage may be wrong until "
               "`btrfs quota rescan %s` has run",
               v->root, v->root);
    fill_usage(usage, -1, le64toh(info.rfer), limit);
out:
    close(fd);
    close(rootfd);
    return finish(v, rc, &m);
}

static hangar_status bt_volume_usage(void *instance, hangar_storage_usage *usage)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_usage_arg(&m, usage);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    struct statvfs s;
    if (statvfs(v->root, &s) != 0) {
        rc = say_errno(&m, errno, HANGAR_OK, "statvfs(%s) failed", v->root);
        return finish(v, rc, &m);
    }
    uint64_t capacity = (uint64_t)s.f_blocks * (uint64_t)s.f_frsize;
    uint64_t avail = (uint64_t)s.f_bavail * (uint64_t)s.f_frsize;
    /* Space btrfs cannot hand out (metadata reserve, RAID overhead) counts as used. */
    fill_usage(usage, -1, avail < capacity ? capacity - avail : 0, capacity);
    return finish(v, HANGAR_OK, &m);
}

static hangar_status bt_get_quota(void *instance, const char *folder_id, uint64_t *quota_bytes)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc == HANGAR_OK && !quota_bytes)
        rc = say(&m, HANGAR_E_INVALID_ARGUMENT, "quota_bytes is NULL");
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0, q = 0;
    if ((rc = open_existing(v, &m, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return finish(v, rc, &m);
    rc = read_limit(v, &m, fd, folder_id, subvol, &q);
    if (rc == HANGAR_OK)
        *quota_bytes = q;
    close(fd);
    close(rootfd);
    return finish(v, rc, &m);
}

/* btrfs takes a limit below current usage (writes then fail), so this never answers QUOTA_EXCEEDED. */
static hangar_status bt_set_quota(void *instance, const char *folder_id, uint64_t quota_bytes)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0;
    if ((rc = open_existing(v, &m, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return finish(v, rc, &m);
    rc = write_limit(v, &m, rootfd, folder_id, subvol, quota_bytes);
    close(fd);
    close(rootfd);
    return finish(v, rc, &m);
}

/*
 * A writable snapshot of the source: instant, copy-on-write, and carrying the
 * source's referenced limit. Subvolumes nested in the source appear in the
 * clone as empty directories (snapshots do not recurse).
 */
static hangar_status bt_clone_folder(void *instance, const char *source_id, const char *target_id)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    bt_msg m;
    hangar_status rc = check_id(&m, "source_id", source_id);
    if (rc == HANGAR_OK)
        rc = check_id(&m, "target_id", target_id);
    if (rc != HANGAR_OK)
        return finish(v, rc, &m);
    char trel[BT_REL_MAX], tpath[PATH_MAX];
    folder_rel(target_id, trel);
    full_path(v, trel, tpath, sizeof tpath);
    int rootfd = -1, sfd = -1, tshard = -1, tfd = -1;
    uint64_t ssub = 0, tsub = 0, limit = 0;
    if ((rc = open_existing(v, &m, source_id, &rootfd, &sfd, &ssub)) != HANGAR_OK)
        return finish(v, rc, &m);
    if ((rc = read_limit(v, &m, sfd, source_id, ssub, &limit)) != HANGAR_OK)
        goto out;
    if ((rc = open_shard(v, &m, rootfd, target_id, trel, true, &tshard)) != HANGAR_OK)
        goto out;
    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    a.fd = sfd;
    snprintf(a.name, sizeof a.name, "%s", target_id);
    if (ioctl(tshard, BTRFS_IOC_SNAP_CREATE_V2, &a) != 0) {
        if (errno == EEXIST)
            rc = say(&m, HANGAR_E_EXISTS, "target folder %s already exists at %s", target_id, tpath);
        else
            rc = say_errno(&m, errno, HANGAR_OK, "cannot snapshot folder %s as %s", source_id, tpath);
        goto out;
    }
    /* From here on a failure deletes the snapshot again. */
    if ((rc = open_subvol(v, &m, tshard, target_id, &tfd, &tsub)) != HANGAR_OK)
        goto undo;
    /* Set explicitly rather than trusting qgroup inheritance, which differs between kernels. */
    if ((rc = write_limit(v, &m, rootfd, target_id, tsub, limit)) != HANGAR_OK)
        goto undo;
    atomic_fetch_add_explicit(&v->snapshots, 1, memory_order_relaxed);
    goto out;
undo:
    if (tfd >= 0) {
        close(tfd);
        tfd = -1;
    }
    roll_back(v, &m, rootfd, tshard, target_id, tsub);
out:
    if (tfd >= 0)
        close(tfd);
    if (tshard >= 0)
        close(tshard);
    close(sfd);
    close(rootfd);
    return finish(v, rc, &m);
}

static hangar_status bt_get_performance(void *instance, hangar_storage_metric_sink sink, void *sink_context)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    if (!sink) {
        record_error(v, "sink is NULL");
        return HANGAR_E_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&v->pending_lock);
    size_t pending = v->pending_len;
    pthread_mutex_unlock(&v->pending_lock);
    const struct {
        const char *key, *unit;
        uint_least64_t value;
    } metrics[] = {
        {"operations", "ops", atomic_load_explicit(&v->operations, memory_order_relaxed)},
        {"failed_operations", "ops", atomic_load_explicit(&v->failed_operations, memory_order_relaxed)},
        {"subvolumes_created", "subvolumes", atomic_load_explicit(&v->subvolumes_created, memory_order_relaxed)},
        {"subvolumes_deleted", "subvolumes", atomic_load_explicit(&v->subvolumes_deleted, memory_order_relaxed)},
        {"snapshots", "subvolumes", atomic_load_explicit(&v->snapshots, memory_order_relaxed)},
        {"nested_subvolumes_deleted", "subvolumes", atomic_load_explicit(&v->nested_deleted, memory_order_relaxed)},
        {"qgroups_pending_removal", "qgroups", (uint_least64_t)pending},
    };
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        hangar_storage_metric metric = {sizeof metric, metrics[i].key, metrics[i].unit, (double)metrics[i].value};
        hangar_status rc = sink(sink_context, &metric);
        if (rc != HANGAR_OK) {
            char text[96];
            snprintf(text, sizeof text, "the metric sink stopped get_performance with status %" PRId32, rc);
            record_error(v, text);
            return rc;
        }
    }
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

static BT_PRINTF(4, 5) hangar_status create_fail(char *err, size_t err_len, hangar_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* An optional boolean key: *out keeps its default when the key is absent. */
static hangar_status config_flag(const hangar_host_services *host, const char *key, bool *out, bool *present,
                                 char *err, size_t err_len)
{
    int32_t flag = 0;
    hangar_status rc = host->config_bool(host->host_context, key, &flag);
    *present = rc == HANGAR_OK;
    if (rc == HANGAR_E_NOT_FOUND)
        return HANGAR_OK;
    if (rc != HANGAR_OK)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG, "btrfs: \"%s\" must be a boolean (true or false)",
                           key);
    *out = flag != 0;
    return HANGAR_OK;
}

/*
 * Makes sure qgroups are on (turning them on if allowed). This is also the
 * privilege probe: reading the quota tree needs CAP_SYS_ADMIN, like every
 * qgroup and deletion call after it, so a missing privilege is reported here
 * rather than at the first create_folder.
 */
static hangar_status ensure_quota(const char *root, bool enable, char *err, size_t err_len, bool *enabled_now,
                                  uint64_t *flags)
{
    char why[256];
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG, "btrfs: cannot open \"root\" %.512s: %s", root,
                           errtext(e, why, sizeof why));
    }
    bool on;
    int e = quota_status(fd, &on, flags);
    *enabled_now = false;
    hangar_status rc = HANGAR_OK;
    if (e == EPERM || e == EACCES)
        rc = create_fail(err, err_len, HANGAR_E_PERMISSION,
                         "btrfs: reading the quota tree of %.512s was refused (%s); the btrfs plugin needs "
                         "CAP_SYS_ADMIN (run the storage proxy as root) to manage subvolumes and qgroups",
                         root, errtext(e, why, sizeof why));
    else if (e)
        rc = create_fail(err, err_len, errno_status(e), "btrfs: cannot read the quota status of %.512s: %s", root,
                         errtext(e, why, sizeof why));
    else if (!on && !enable)
        rc = create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                         "btrfs: quotas are not enabled on the filesystem of %.512s and \"enable_quota\" is false; "
                         "run `btrfs quota enable %.512s` or set \"enable_quota\" to true",
                         root, root);
    else if (!on) {
        struct btrfs_ioctl_quota_ctl_args q = {.cmd = BTRFS_QUOTA_CTL_ENABLE, .status = 0};
        if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &q) != 0) {
            e = errno;
            rc = create_fail(err, err_len, errno_status(e), "btrfs: cannot enable quotas on the filesystem of %.512s: %s",
                             root, errtext(e, why, sizeof why));
        } else {
            *enabled_now = true;
            if ((e = quota_status(fd, &on, flags)) != 0 || !on)
                *flags = 0;
        }
    }
    if (rc == HANGAR_OK) {
        if (rescan_running(fd, *flags))
            *flags |= BTRFS_QGROUP_STATUS_FLAG_RESCAN;
        else
            *flags &= ~(uint64_t)BTRFS_QGROUP_STATUS_FLAG_RESCAN;
    }
    close(fd);
    return rc;
}

static hangar_status bt_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                               char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out_instance)
        *out_instance = NULL;
    if (!host || !config_json || !out_instance)
        return create_fail(err, err_len, HANGAR_E_INVALID_ARGUMENT, "btrfs: create() got a NULL %s",
                           !host ? "host" : !config_json ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        host->struct_size < offsetof(hangar_host_services, config_count) + sizeof host->config_count ||
        !host->config_string || !host->config_bool || !host->config_count)
        return create_fail(err, err_len, HANGAR_E_INCOMPATIBLE,
                           "btrfs: the host services table is incompatible (ABI %" PRIu32 ".%" PRIu32
                           ", struct_size %" PRIu32 "); this plugin needs ABI 1.x config accessors",
                           HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                           host->struct_size);
    void *hc = host->host_context;

    /* root: required absolute path of an existing, writable directory on btrfs. */
    char root[PATH_MAX];
    size_t root_len = 0;
    hangar_status rc = host->config_string(hc, "root", root, sizeof root, &root_len);
    if (rc == HANGAR_E_NOT_FOUND)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" is required: set it to the absolute path of a directory on a btrfs "
                           "filesystem, e.g. {\"root\": \"/vfroot/btrfs\"}");
    if (rc == HANGAR_E_BUFFER_TOO_SMALL)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" is %zu bytes long; it must be shorter than %d", root_len, PATH_MAX - 128);
    if (rc != HANGAR_OK)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" must be a string holding an absolute path (status %" PRId32 ")", rc);
    if (root_len != strlen(root))
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG, "btrfs: \"root\" contains a NUL character");
    if (root_len == 0)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" is empty; set it to the absolute path of a directory on btrfs");
    if (root[0] != '/')
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" must be an absolute path starting with '/', got \"%.200s\"", root);
    if (root_len >= PATH_MAX - 128)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" is %zu bytes long; it must be shorter than %d", root_len, PATH_MAX - 128);
    while (root_len > 1 && root[root_len - 1] == '/')
        root[--root_len] = '\0';
    struct stat st;
    char why[256];
    if (stat(root, &st) != 0) {
        int e = errno;
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG, "btrfs: \"root\" %.512s cannot be used: %s%s", root,
                           errtext(e, why, sizeof why),
                           e == ENOENT ? "; create the directory on a btrfs filesystem or fix the path" : "");
    }
    if (!S_ISDIR(st.st_mode))
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" %.512s is not a directory; point it at a directory on a btrfs filesystem",
                           root);
    struct statfs sfs;
    if (statfs(root, &sfs) != 0) {
        int e = errno;
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG, "btrfs: cannot statfs \"root\" %.512s: %s", root,
                           errtext(e, why, sizeof why));
    }
    if ((unsigned long)sfs.f_type != (unsigned long)BTRFS_SUPER_MAGIC)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" %.512s is not on a btrfs filesystem (filesystem magic 0x%lx, btrfs is "
                           "0x%lx); mount a btrfs filesystem there or use the vfs plugin for this volume",
                           root, (unsigned long)sfs.f_type, (unsigned long)BTRFS_SUPER_MAGIC);
    if (faccessat(AT_FDCWD, root, R_OK | W_OK | X_OK, AT_EACCESS) != 0) {
        int e = errno;
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: \"root\" %.512s is not readable and writable by this process (uid %ld): %s; "
                           "fix its ownership or mode, or mount it read-write",
                           root, (long)geteuid(), errtext(e, why, sizeof why));
    }

    bool enable_quota = true, sync_usage = true, has_enable, has_sync;
    if ((rc = config_flag(host, "enable_quota", &enable_quota, &has_enable, err, err_len)) != HANGAR_OK ||
        (rc = config_flag(host, "sync_usage", &sync_usage, &has_sync, err, err_len)) != HANGAR_OK)
        return rc;

    /* Unknown keys: the host validates against the schema, this is a second line of defence. */
    int64_t keys = host->config_count(hc, "");
    if (keys > 1 + (int64_t)has_enable + (int64_t)has_sync)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "btrfs: unknown configuration key; the only keys are \"root\", \"enable_quota\" and "
                           "\"sync_usage\"");

    bool enabled_now = false;
    uint64_t qflags = 0;
    if ((rc = ensure_quota(root, enable_quota, err, err_len, &enabled_now, &qflags)) != HANGAR_OK)
        return rc;

    bt *v = calloc(1, sizeof *v);
    char *root_copy = strdup(root);
    if (!v || !root_copy) {
        free(v);
        free(root_copy);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "btrfs: out of memory");
    }
    if (pthread_mutex_init(&v->err_lock, NULL) != 0) {
        free(v);
        free(root_copy);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "btrfs: cannot initialise a mutex");
    }
    if (pthread_mutex_init(&v->pending_lock, NULL) != 0) {
        pthread_mutex_destroy(&v->err_lock);
        free(v);
        free(root_copy);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "btrfs: cannot initialise a mutex");
    }
    v->host = host;
    v->root = root_copy;
    v->sync_usage = sync_usage;
    atomic_init(&v->operations, 0);
    atomic_init(&v->failed_operations, 0);
    atomic_init(&v->subvolumes_created, 0);
    atomic_init(&v->subvolumes_deleted, 0);
    atomic_init(&v->snapshots, 0);
    atomic_init(&v->nested_deleted, 0);
    *out_instance = v;
    /* Enabling marks the numbers inconsistent until the kernel's first rescan is through: expected, no warning. */
    if (enabled_now)
        bt_log(v, HANGAR_LOG_NOTICE,
               "enabled btrfs quotas on the filesystem of %s; the kernel rescans existing data in the background, "
               "and get_usage answers HANGAR_E_BUSY until it is done",
               v->root);
    else if (qflags & BTRFS_QGROUP_STATUS_FLAG_RESCAN)
        bt_log(v, HANGAR_LOG_NOTICE,
               "a btrfs quota rescan is running on %s; get_usage answers HANGAR_E_BUSY until it is done", v->root);
    else if (qflags & BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT)
        bt_log(v, HANGAR_LOG_WARNING,
               "btrfs qgroup numbers of %s are marked inconsistent; run `btrfs quota rescan %s`", v->root, v->root);
    bt_log(v, HANGAR_LOG_INFO, "btrfs volume at %s (%s quotas, sync before usage %s)", v->root,
           (qflags & BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE) ? "simple" : "full", v->sync_usage ? "on" : "off");
    return HANGAR_OK;
}

static void bt_destroy(void *instance)
{
    bt *v = instance;
    if (!v)
        return;
    int fd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        retry_pending(v, fd);
        close(fd);
    }
    if (v->pending_len)
        bt_log(v, HANGAR_LOG_INFO,
               "%zu qgroup(s) of deleted folders still await removal; newer kernels drop them once the subvolumes "
               "are cleaned, otherwise `btrfs qgroup clear-stale %s` removes them",
               v->pending_len, v->root);
    pthread_mutex_destroy(&v->pending_lock);
    pthread_mutex_destroy(&v->err_lock);
    free(v->root);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char bt_schema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"required\":[\"root\"],"
    "\"properties\":{"
    "\"root\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Absolute path of the volume root, a directory on a btrfs filesystem (checked at start). "
    "Each folder is a subvolume at <root>/<id[0:2]>/<id[2:4]>/<id>. The storage proxy needs CAP_SYS_ADMIN "
    "(root) for qgroup and subvolume-deletion ioctls. Required, so it has no default.\"},"
    "\"enable_quota\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"Turn btrfs quotas (qgroups) on for the whole filesystem at start if they are off, like "
    "`btrfs quota enable`. If false and quotas are off, the plugin refuses to start, since quotas and usage "
    "depend on them.\"},"
    "\"sync_usage\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"syncfs the filesystem before reading a folder's usage, so data just written is counted. "
    "Turn off on busy volumes to avoid the flush; usage may then lag by one commit interval (30 s by default).\"}"
    "}"
    "}";

static const hangar_storage_functions bt_functions = {
    .struct_size = sizeof(hangar_storage_functions),
    .create = bt_create,
    .destroy = bt_destroy,
    .last_error = bt_last_error,
    .create_folder = bt_create_folder,
    .delete_folder = bt_delete_folder,
    .folder_path = bt_folder_path,
    .get_usage = bt_get_usage,
    .volume_usage = bt_volume_usage,
    .get_quota = bt_get_quota,
    .set_quota = bt_set_quota,
    .clone_folder = bt_clone_folder,
    .get_performance = bt_get_performance,
};

static const hangar_plugin_descriptor bt_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_STORAGE,
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = HANGAR_STORAGE_CAP_QUOTA | HANGAR_STORAGE_CAP_FAST_CLONE | HANGAR_STORAGE_CAP_FAST_USAGE |
                    HANGAR_STORAGE_CAP_METRICS,
    .name = "btrfs",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Virtual folders as btrfs subvolumes: qgroup-enforced quotas, usage from qgroup accounting, "
                   "instant snapshot clones.",
    .license = "Apache-2.0",
    .config_schema = bt_schema,
    .static_slot_names = NULL,
    .functions = &bt_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &bt_descriptor;
}
