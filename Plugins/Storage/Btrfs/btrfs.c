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
 * metric counters (C11 atomics) and the list of qgroups awaiting removal (a
 * mutex). Each call works on its own descriptors, last_error is kept per
 * thread (support/core.h), and the kernel serialises the subvolume and
 * qgroup operations.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <hangar/support/storage.h>

#include <endian.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>

/* Deleted folders whose qgroup the kernel would not remove yet; beyond this the oldest are forgotten. */
#define BT_PENDING_MAX 256
/* The kernel's value meaning "remove this limit" in BTRFS_IOC_QGROUP_LIMIT. */
#define BT_NO_LIMIT UINT64_MAX

#ifndef BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE
#define BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE (1ULL << 3)
#endif

/* ------------------------------------------------------------------------ */
/* Instance, shards and subvolumes                                           */
/* ------------------------------------------------------------------------ */

typedef struct bt {
    hs_volume vol;              /* first: root, host and call counters (support/storage.h) */
    bool sync_usage;            /* syncfs before reading qgroup counters */
    atomic_uint_least64_t subvolumes_created;
    atomic_uint_least64_t subvolumes_deleted;
    atomic_uint_least64_t snapshots;
    atomic_uint_least64_t nested_deleted;
    pthread_mutex_t pending_lock; /* guards pending and pending_len */
    size_t pending_len;
    uint64_t pending[BT_PENDING_MAX];
} bt;

/*
 * Opens the shard directory "ab/cd" of rel one component at a time, each with
 * O_NOFOLLOW, so a symlink planted as a shard cannot redirect subvolume
 * operations outside the volume. With `create`, missing shards are made.
 * A missing shard without `create` means the folder does not exist.
 */
static hangar_status open_shard(const bt *v, int rootfd, const char *id, const char *rel, bool create, int *out)
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
            hs_root_path(v->vol.root, shard, path, sizeof path);
            return hs_fail_fs(e, "cannot create shard directory %s", path);
        }
        int fd = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (dir != rootfd)
            close(dir);
        if (fd < 0) {
            char path[PATH_MAX];
            hs_root_path(v->vol.root, rel, path, sizeof path);
            if (!create && (e == ENOENT || e == ENOTDIR))
                return hs_fail(HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", id, path);
            if (e == ELOOP || e == ENOTDIR)
                return hs_fail(HANGAR_E_IO, "a shard directory above %s is a symlink or a file; remove it", path);
            return hs_fail_fs(e, "cannot open the shard directories above %s", path);
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
static hangar_status open_subvol(const bt *v, int shardfd, const char *id, int *out, uint64_t *subvol)
{
    char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
    hs_folder_rel(id, rel);
    hs_root_path(v->vol.root, rel, path, sizeof path);
    int fd = -1;
    hangar_status rc = hs_open_folder_at(shardfd, id, id, path, &fd);
    if (rc != HANGAR_OK)
        return rc;
    struct stat st;
    struct statfs sfs;
    if (fstat(fd, &st) != 0 || fstatfs(fd, &sfs) != 0)
        rc = hs_fail_fs(errno, "cannot stat folder %s at %s", id, path);
    else if ((unsigned long)sfs.f_type != (unsigned long)BTRFS_SUPER_MAGIC)
        rc = hs_fail(HANGAR_E_IO, "folder %s: %s is not on btrfs (another filesystem is mounted there?)", id, path);
    else if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID)
        rc = hs_fail(HANGAR_E_IO,
                     "folder %s: %s is a plain directory, not a btrfs subvolume (made by hand or by another storage "
                     "plugin?); move it away or convert it",
                     id, path);
    else {
        int e = subvol_id_of(fd, subvol);
        if (e)
            rc = hs_fail_fs(e, "cannot look up the subvolume id of folder %s at %s", id, path);
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

static hangar_status quota_off(const bt *v)
{
    return hs_fail(HANGAR_E_INCOMPATIBLE,
                   "btrfs quotas are disabled on the filesystem of %s (someone ran `btrfs quota disable`?); "
                   "enable them again with `btrfs quota enable %s`",
                   v->vol.root, v->vol.root);
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
static hangar_status read_limit(const bt *v, int fd, const char *id, uint64_t subvol, uint64_t *out)
{
    struct btrfs_qgroup_limit_item l;
    bool found;
    int e = search_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_LIMIT_KEY, subvol, &l, sizeof l, &found);
    if (e == ENOENT)
        return quota_off(v);
    if (e)
        return hs_fail_fs(e, "cannot read the qgroup limit of folder %s (qgroup 0/%" PRIu64 ")", id, subvol);
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
static hangar_status write_limit(const bt *v, int rootfd, const char *id, uint64_t subvol, uint64_t bytes)
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
        return quota_off(v);
    if (e == ENOENT)
        return hs_fail(HANGAR_E_IO,
                       "folder %s has no qgroup 0/%" PRIu64 " (removed by hand?); recreate it with "
                       "`btrfs qgroup create 0/%" PRIu64 " %s` and `btrfs quota rescan %s`",
                       id, subvol, subvol, v->vol.root, v->vol.root);
    return hs_fail_fs(e, "cannot set the qgroup limit of folder %s (qgroup 0/%" PRIu64 ") to %" PRIu64
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

static void log_qgroup_left(const bt *v, uint64_t subvol, int err)
{
    hs_storage_log(v->vol.host, HANGAR_LOG_WARNING, "cannot remove qgroup 0/%" PRIu64 " of a deleted folder: %s",
                   subvol, strerror(err));
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
        log_qgroup_left(v, subvol, e);
        return;
    }
    pthread_mutex_lock(&v->pending_lock);
    if (v->pending_len == BT_PENDING_MAX) {
        hs_storage_log(v->vol.host, HANGAR_LOG_WARNING,
                       "too many qgroups awaiting removal; forgetting 0/%" PRIu64 " (`btrfs qgroup clear-stale %s` "
                       "removes it)",
                       v->pending[0], v->vol.root);
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
        else if (e)
            log_qgroup_left(v, v->pending[i], e);
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
static hangar_status delete_nested(bt *v, int rootfd, int fd, const char *id, uint64_t top)
{
    uint64_t *ids = malloc(16 * sizeof *ids);
    size_t len = 0, cap = 16;
    if (!ids)
        return hs_fail(HANGAR_E_INSUFFICIENT, "out of memory while deleting folder %s", id);
    ids[len++] = top;
    hangar_status rc = HANGAR_OK;
    for (size_t i = 0; i < len; i++) {
        int e = list_children(fd, ids[i], &ids, &len, &cap);
        if (e) {
            rc = hs_fail_fs(e, "cannot list the subvolumes nested in folder %s", id);
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
    if ((rc = read_limit(v, rootfd, id, top, &limit)) != HANGAR_OK ||
        (limit && (rc = write_limit(v, rootfd, id, top, 0)) != HANGAR_OK))
        goto out;
    for (size_t i = len; i-- > 1;) {
        struct btrfs_ioctl_vol_args_v2 a;
        memset(&a, 0, sizeof a);
        a.flags = BTRFS_SUBVOL_SPEC_BY_ID;
        a.subvolid = ids[i];
        if (ioctl(fd, BTRFS_IOC_SNAP_DESTROY_V2, &a) != 0 && errno != ENOENT) {
            int e = errno;
            if (e == ENOTTY || e == EOPNOTSUPP)
                rc = hs_fail(HANGAR_E_INCOMPATIBLE,
                             "folder %s contains nested subvolumes, and this kernel cannot delete subvolumes by id "
                             "(Linux 5.7+ can); delete them with `btrfs subvolume delete` first",
                             id);
            else if (e == ENOTEMPTY)
                rc = hs_fail(HANGAR_E_FOLDER_BUSY,
                             "a subvolume was created inside folder %s while it was being deleted; retry", id);
            else
                rc = hs_fail_fs(e, "cannot delete subvolume %" PRIu64 " nested in folder %s", ids[i], id);
            if (limit) {
                hs_saved_error first;
                hs_save_error(&first);
                rc = hs_restore_error(&first, rc, write_limit(v, rootfd, id, top, limit),
                                      "its quota could not be restored");
            }
            goto out;
        }
        atomic_fetch_add_explicit(&v->nested_deleted, 1, memory_order_relaxed);
        forget_qgroup(v, rootfd, ids[i]);
    }
    hs_storage_log(v->vol.host, HANGAR_LOG_INFO, "deleted %zu subvolume(s) nested in folder %s", len - 1, id);
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
 * failed half-way), appending to the call's message if even that fails.
 */
static void roll_back(bt *v, int rootfd, int shardfd, const char *id, uint64_t subvol)
{
    int e = destroy_by_name(shardfd, id);
    if (e) {
        char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
        hs_folder_rel(id, rel);
        hs_root_path(v->vol.root, rel, path, sizeof path);
        (void)hs_fail_append(HANGAR_OK,
                             " (and the half-made subvolume %.256s could not be deleted: %s; delete it with "
                             "`btrfs subvolume delete`)",
                             path, strerror(e));
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
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
    hs_folder_rel(folder_id, rel);
    hs_root_path(v->vol.root, rel, path, sizeof path);
    int rootfd = -1, shardfd = -1, fd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    retry_pending(v, rootfd);
    if ((rc = open_shard(v, rootfd, folder_id, rel, true, &shardfd)) != HANGAR_OK)
        goto out;

    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", folder_id);
    if (ioctl(shardfd, BTRFS_IOC_SUBVOL_CREATE_V2, &a) != 0) {
        if (errno == EEXIST)
            rc = hs_fail(HANGAR_E_EXISTS, "folder %s already exists at %s", folder_id, path);
        else
            rc = hs_fail_fs(errno, "cannot create subvolume %s for folder %s", path, folder_id);
        goto out;
    }
    /* From here on a failure deletes the subvolume again. */
    uint64_t subvol = 0;
    if ((rc = open_subvol(v, shardfd, folder_id, &fd, &subvol)) != HANGAR_OK)
        goto undo;
    /* Exactly 0755 whatever the process umask or kernel version made it. */
    if (fchmod(fd, 0755) != 0) {
        rc = hs_fail_fs(errno, "cannot set the mode of folder %s at %s", folder_id, path);
        goto undo;
    }
    /*
     * Also with quota 0: subvolume ids can be reused after a remount, and a
     * leftover qgroup of the same id would hand its old limit to this folder.
     */
    if ((rc = write_limit(v, rootfd, folder_id, subvol, quota_bytes)) != HANGAR_OK)
        goto undo;
    atomic_fetch_add_explicit(&v->subvolumes_created, 1, memory_order_relaxed);
    goto out;
undo:
    if (fd >= 0) {
        close(fd);
        fd = -1;
    }
    roll_back(v, rootfd, shardfd, folder_id, subvol);
out:
    if (fd >= 0)
        close(fd);
    if (shardfd >= 0)
        close(shardfd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status bt_delete_folder(void *instance, const char *folder_id)
{
    bt *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
    hs_folder_rel(folder_id, rel);
    hs_root_path(v->vol.root, rel, path, sizeof path);
    int rootfd = -1, shardfd = -1, fd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    retry_pending(v, rootfd);
    uint64_t subvol = 0;
    if ((rc = open_shard(v, rootfd, folder_id, rel, false, &shardfd)) != HANGAR_OK ||
        (rc = open_subvol(v, shardfd, folder_id, &fd, &subvol)) != HANGAR_OK)
        goto out;
    if ((rc = delete_nested(v, rootfd, fd, folder_id, subvol)) != HANGAR_OK)
        goto out;
    close(fd);
    fd = -1;
    int e = destroy_by_name(shardfd, folder_id);
    if (e == ENOENT)
        rc = hs_fail(HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", folder_id, path);
    else if (e == ENOTEMPTY)
        rc = hs_fail(HANGAR_E_FOLDER_BUSY, "a subvolume was created inside folder %s while it was being deleted; retry",
                     folder_id);
    else if (e == EBUSY)
        rc = hs_fail(HANGAR_E_FOLDER_BUSY, "folder %s at %s is mounted somewhere or in use; unmount it first",
                     folder_id, path);
    else if (e)
        rc = hs_fail_fs(e, "cannot delete subvolume %s of folder %s", path, folder_id);
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
    return hs_volume_done(v, rc);
}

/* Opens root, shard and subvolume of an existing folder; on success the caller closes *rootfd and *fd. */
static hangar_status open_existing(const bt *v, const char *id, int *rootfd, int *fd, uint64_t *subvol)
{
    char rel[HS_FOLDER_REL_MAX];
    hs_folder_rel(id, rel);
    int shardfd = -1;
    hangar_status rc = hs_open_volume_root(v->vol.root, rootfd);
    if (rc != HANGAR_OK)
        return rc;
    if ((rc = open_shard(v, *rootfd, id, rel, false, &shardfd)) == HANGAR_OK) {
        rc = open_subvol(v, shardfd, id, fd, subvol);
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
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc == HANGAR_OK)
        rc = hs_check_usage(usage);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0;
    if ((rc = open_existing(v, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    /* The kernel folds new extents into the qgroup counters at transaction commit; syncfs commits. */
    if (v->sync_usage && syncfs(fd) != 0) {
        rc = hs_fail_fs(errno, "syncfs on the volume %s failed", v->vol.root);
        goto out;
    }
    bool enabled;
    uint64_t flags;
    int e = quota_status(fd, &enabled, &flags);
    if (e) {
        rc = hs_fail_fs(e, "cannot read the btrfs quota status of %s", v->vol.root);
        goto out;
    }
    if (!enabled) {
        rc = quota_off(v);
        goto out;
    }
    bool rescanning = rescan_running(fd, flags);
    if (rescanning) {
        rc = hs_fail(HANGAR_E_BUSY,
                     "a btrfs quota rescan is running on %s, so usage numbers are incomplete; retry when it is done "
                     "(`btrfs quota rescan -s %s`)",
                     v->vol.root, v->vol.root);
        goto out;
    }
    struct btrfs_qgroup_info_item info;
    bool found;
    e = search_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY, subvol, &info, sizeof info, &found);
    if (e == ENOENT) {
        rc = quota_off(v);
        goto out;
    }
    if (e) {
        rc = hs_fail_fs(e, "cannot read qgroup 0/%" PRIu64 " of folder %s", subvol, folder_id);
        goto out;
    }
    if (!found) {
        rc = hs_fail(HANGAR_E_IO,
                     "folder %s has no qgroup 0/%" PRIu64 " (removed by hand?); recreate it with "
                     "`btrfs qgroup create 0/%" PRIu64 " %s` and `btrfs quota rescan %s`",
                     folder_id, subvol, subvol, v->vol.root, v->vol.root);
        goto out;
    }
    uint64_t limit = 0;
    if ((rc = read_limit(v, fd, folder_id, subvol, &limit)) != HANGAR_OK)
        goto out;
    if ((flags & BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT) && !rescanning)
        hs_storage_log(v->vol.host, HANGAR_LOG_WARNING,
                       "btrfs qgroup numbers of %s are marked inconsistent; usage may be wrong until "
                       "`btrfs quota rescan %s` has run",
                       v->vol.root, v->vol.root);
    hs_fill_usage(usage, -1, le64toh(info.rfer), limit);
out:
    close(fd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status bt_get_quota(void *instance, const char *folder_id, uint64_t *quota_bytes)
{
    bt *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc == HANGAR_OK && !quota_bytes)
        rc = hs_fail(HANGAR_E_INVALID_ARGUMENT, "quota_bytes is NULL");
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0, q = 0;
    if ((rc = open_existing(v, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    rc = read_limit(v, fd, folder_id, subvol, &q);
    if (rc == HANGAR_OK)
        *quota_bytes = q;
    close(fd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

/* btrfs takes a limit below current usage (writes then fail), so this never answers QUOTA_EXCEEDED. */
static hangar_status bt_set_quota(void *instance, const char *folder_id, uint64_t quota_bytes)
{
    bt *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    int rootfd = -1, fd = -1;
    uint64_t subvol = 0;
    if ((rc = open_existing(v, folder_id, &rootfd, &fd, &subvol)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    rc = write_limit(v, rootfd, folder_id, subvol, quota_bytes);
    close(fd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

/*
 * A writable snapshot of the source: instant, copy-on-write, and carrying the
 * source's referenced limit. Subvolumes nested in the source appear in the
 * clone as empty directories (snapshots do not recurse).
 */
static hangar_status bt_clone_folder(void *instance, const char *source_id, const char *target_id)
{
    bt *v = instance;
    hangar_status rc = hs_volume_check_clone(v, source_id, target_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char trel[HS_FOLDER_REL_MAX], tpath[PATH_MAX];
    hs_folder_rel(target_id, trel);
    hs_root_path(v->vol.root, trel, tpath, sizeof tpath);
    int rootfd = -1, sfd = -1, tshard = -1, tfd = -1;
    uint64_t ssub = 0, tsub = 0, limit = 0;
    if ((rc = open_existing(v, source_id, &rootfd, &sfd, &ssub)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    if ((rc = read_limit(v, sfd, source_id, ssub, &limit)) != HANGAR_OK)
        goto out;
    if ((rc = open_shard(v, rootfd, target_id, trel, true, &tshard)) != HANGAR_OK)
        goto out;
    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    a.fd = sfd;
    snprintf(a.name, sizeof a.name, "%s", target_id);
    if (ioctl(tshard, BTRFS_IOC_SNAP_CREATE_V2, &a) != 0) {
        if (errno == EEXIST)
            rc = hs_fail(HANGAR_E_EXISTS, "target folder %s already exists at %s", target_id, tpath);
        else
            rc = hs_fail_fs(errno, "cannot snapshot folder %s as %s", source_id, tpath);
        goto out;
    }
    /* From here on a failure deletes the snapshot again. */
    if ((rc = open_subvol(v, tshard, target_id, &tfd, &tsub)) != HANGAR_OK)
        goto undo;
    /* Set explicitly rather than trusting qgroup inheritance, which differs between kernels. */
    if ((rc = write_limit(v, rootfd, target_id, tsub, limit)) != HANGAR_OK)
        goto undo;
    atomic_fetch_add_explicit(&v->snapshots, 1, memory_order_relaxed);
    goto out;
undo:
    if (tfd >= 0) {
        close(tfd);
        tfd = -1;
    }
    roll_back(v, rootfd, tshard, target_id, tsub);
out:
    if (tfd >= 0)
        close(tfd);
    if (tshard >= 0)
        close(tshard);
    close(sfd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status bt_get_performance(void *instance, hangar_storage_metric_sink sink, void *sink_context)
{
    bt *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    pthread_mutex_lock(&v->pending_lock);
    size_t pending = v->pending_len;
    pthread_mutex_unlock(&v->pending_lock);
    const hs_metric_row rows[] = {
        {"subvolumes_created", "subvolumes", hs_counter(&v->subvolumes_created)},
        {"subvolumes_deleted", "subvolumes", hs_counter(&v->subvolumes_deleted)},
        {"snapshots", "subvolumes", hs_counter(&v->snapshots)},
        {"nested_subvolumes_deleted", "subvolumes", hs_counter(&v->nested_deleted)},
        {"qgroups_pending_removal", "qgroups", (double)pending},
    };
    return hs_volume_metrics(v, sink, sink_context, rows, sizeof rows / sizeof rows[0]);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

/* The volume must be btrfs: subvolumes and qgroups exist nowhere else. */
static hangar_status check_on_btrfs(const hs_create *c, const char *root)
{
    struct statfs sfs;
    if (statfs(root, &sfs) != 0) {
        int e = errno;
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "cannot statfs \"root\" %.512s: %s", root, strerror(e));
    }
    if ((unsigned long)sfs.f_type != (unsigned long)BTRFS_SUPER_MAGIC)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                              "\"root\" %.512s is not on a btrfs filesystem (filesystem magic 0x%lx, btrfs is "
                              "0x%lx); mount a btrfs filesystem there or use the vfs plugin for this volume",
                              root, (unsigned long)sfs.f_type, (unsigned long)BTRFS_SUPER_MAGIC);
    return HANGAR_OK;
}

/*
 * Makes sure qgroups are on (turning them on if allowed). This is also the
 * privilege probe: reading the quota tree needs CAP_SYS_ADMIN, like every
 * qgroup and deletion call after it, so a missing privilege is reported here
 * rather than at the first create_folder.
 */
static hangar_status ensure_quota(const hs_create *c, const char *root, bool enable, bool *enabled_now,
                                  uint64_t *flags)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "cannot open \"root\" %.512s: %s", root, strerror(e));
    }
    bool on;
    int e = quota_status(fd, &on, flags);
    *enabled_now = false;
    hangar_status rc = HANGAR_OK;
    if (e == EPERM || e == EACCES)
        rc = hs_create_fail(c, HANGAR_E_PERMISSION,
                            "reading the quota tree of %.512s was refused (%s); the btrfs plugin needs "
                            "CAP_SYS_ADMIN (run the storage proxy as root) to manage subvolumes and qgroups",
                            root, strerror(e));
    else if (e)
        rc = hs_create_fail(c, hs_fs_status(e), "cannot read the quota status of %.512s: %s", root, strerror(e));
    else if (!on && !enable)
        rc = hs_create_fail(c, HANGAR_E_INVALID_CONFIG,
                            "quotas are not enabled on the filesystem of %.512s and \"enable_quota\" is false; "
                            "run `btrfs quota enable %.512s` or set \"enable_quota\" to true",
                            root, root);
    else if (!on) {
        struct btrfs_ioctl_quota_ctl_args q = {.cmd = BTRFS_QUOTA_CTL_ENABLE, .status = 0};
        if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &q) != 0) {
            e = errno;
            rc = hs_create_fail(c, hs_fs_status(e), "cannot enable quotas on the filesystem of %.512s: %s", root,
                                strerror(e));
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
    hs_create c;
    hangar_status rc = hs_create_begin(&c, "btrfs", host, config_json, out_instance, err, err_len, 2);
    if (rc != HANGAR_OK)
        return rc;
    /* The host has checked the config against bt_schema and filled in its two flags; the rest a schema cannot say. */
    char *root = NULL;
    bool enable_quota = false, sync_usage = false, enabled_now = false;
    uint64_t qflags = 0;
    rc = hs_storage_root(&c, "create the directory on a btrfs filesystem or fix the path",
                         "point it at a directory on a btrfs filesystem", &root);
    if (rc == HANGAR_OK)
        rc = check_on_btrfs(&c, root);
    if (rc == HANGAR_OK)
        rc = hs_storage_root_writable(&c, root);
    if (rc == HANGAR_OK)
        rc = hs_cfg_bool(&c, "enable_quota", &enable_quota);
    if (rc == HANGAR_OK)
        rc = hs_cfg_bool(&c, "sync_usage", &sync_usage);
    if (rc == HANGAR_OK)
        rc = ensure_quota(&c, root, enable_quota, &enabled_now, &qflags);
    bt *v = rc == HANGAR_OK ? calloc(1, sizeof *v) : NULL;
    if (rc == HANGAR_OK && !v)
        rc = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (rc == HANGAR_OK && pthread_mutex_init(&v->pending_lock, NULL) != 0)
        rc = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "cannot initialise a mutex");
    if (rc != HANGAR_OK) {
        free(v);
        free(root);
        return rc;
    }
    hs_volume_init(&v->vol, host, root);
    v->sync_usage = sync_usage;
    atomic_init(&v->subvolumes_created, 0);
    atomic_init(&v->subvolumes_deleted, 0);
    atomic_init(&v->snapshots, 0);
    atomic_init(&v->nested_deleted, 0);
    *out_instance = v;
    /* Enabling marks the numbers inconsistent until the kernel's first rescan is through: expected, no warning. */
    if (enabled_now)
        hs_storage_log(v->vol.host, HANGAR_LOG_NOTICE,
                       "enabled btrfs quotas on the filesystem of %s; the kernel rescans existing data in the "
                       "background, and get_usage answers HANGAR_E_BUSY until it is done",
                       v->vol.root);
    else if (qflags & BTRFS_QGROUP_STATUS_FLAG_RESCAN)
        hs_storage_log(v->vol.host, HANGAR_LOG_NOTICE,
                       "a btrfs quota rescan is running on %s; get_usage answers HANGAR_E_BUSY until it is done",
                       v->vol.root);
    else if (qflags & BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT)
        hs_storage_log(v->vol.host, HANGAR_LOG_WARNING,
                       "btrfs qgroup numbers of %s are marked inconsistent; run `btrfs quota rescan %s`", v->vol.root,
                       v->vol.root);
    hs_storage_log(v->vol.host, HANGAR_LOG_INFO, "btrfs volume at %s (%s quotas, sync before usage %s)", v->vol.root,
                   (qflags & BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE) ? "simple" : "full", v->sync_usage ? "on" : "off");
    return HANGAR_OK;
}

static void bt_destroy(void *instance)
{
    bt *v = instance;
    if (!v)
        return;
    int fd = open(v->vol.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        retry_pending(v, fd);
        close(fd);
    }
    if (v->pending_len)
        hs_storage_log(v->vol.host, HANGAR_LOG_INFO,
                       "%zu qgroup(s) of deleted folders still await removal; newer kernels drop them once the "
                       "subvolumes are cleaned, otherwise `btrfs qgroup clear-stale %s` removes them",
                       v->pending_len, v->vol.root);
    pthread_mutex_destroy(&v->pending_lock);
    free(v->vol.root);
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
    .last_error = hs_last_error,
    .create_folder = bt_create_folder,
    .delete_folder = bt_delete_folder,
    .folder_path = hs_volume_folder_path,
    .get_usage = bt_get_usage,
    .volume_usage = hs_volume_usage,
    .get_quota = bt_get_quota,
    .set_quota = bt_set_quota,
    .clone_folder = bt_clone_folder,
    .get_performance = bt_get_performance,
};

static const hangar_plugin_descriptor bt_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_STORAGE),
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

/* From ABI 1.2 on the host fills in the schema's defaults ("enable_quota", "sync_usage"), which create() relies on. */
HS_PLUGIN_ENTRY(bt_descriptor, 2)
