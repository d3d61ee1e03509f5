/*
 * vfs — Hangar's reference storage plugin for a plain POSIX directory tree.
 *
 * One instance serves one volume root. Folders live at
 * <root>/<id[0:2]>/<id[2:4]>/<id> (Backend.AI's vfs layout); ids shorter than
 * four characters have their shard names padded with '_' (id "ab" lives at
 * <root>/ab/__/ab). Quotas are only recorded here, in the sidecar file
 * <root>/.hangar-quota/<id> (a name no folder id can take, since ids have no
 * '.'); the storage proxy enforces them. Hence the descriptor does not claim
 * HANGAR_STORAGE_CAP_QUOTA.
 *
 * Tree walks (usage, delete, clone) never follow symbolic links and never
 * cross into another filesystem: every directory is opened relative to its
 * parent with O_NOFOLLOW and checked against the lstat() it was listed with,
 * so swapping a directory for a symlink mid-walk makes the walk fail instead
 * of escaping the folder. At most VFS_OPEN_LEVELS directories are held open
 * per walk; deeper levels are closed and reopened through ".." (with an
 * identity check), so a maliciously deep tree cannot exhaust descriptors.
 *
 * Thread safety: the instance is immutable after create() except for the
 * metric counters (C11 atomics). Each call works on its own descriptors and
 * buffers; last_error is kept per thread (support/core.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <hangar/support/storage.h>

#include <dirent.h>
#include <sys/types.h>

/* Directories a single walk keeps open at once (deeper ones are re-opened via ".."). */
#define VFS_OPEN_LEVELS 32
#define VFS_QUOTA_DIR ".hangar-quota"
#define VFS_COPY_BUF (64u * 1024u)

/* Access and modification times of a struct stat (Darwin names them differently). */
#if defined(__APPLE__)
#define VFS_ATIME(st) ((st)->st_atimespec)
#define VFS_MTIME(st) ((st)->st_mtimespec)
#else
#define VFS_ATIME(st) ((st)->st_atim)
#define VFS_MTIME(st) ((st)->st_mtim)
#endif

/* ------------------------------------------------------------------------ */
/* Instance, folders and shards                                              */
/* ------------------------------------------------------------------------ */

typedef struct vfs {
    hs_volume vol;              /* first: root, host and call counters (support/storage.h) */
    bool fsync;                 /* fsync sidecars, created folders and cloned data */
    bool preserve_owner;        /* running as root: clone keeps uid/gid */
    atomic_uint_least64_t cloned_bytes;
    atomic_uint_least64_t cloned_entries;
    atomic_uint_least64_t tmp_seq;
} vfs;

/* Opens an existing folder without following a symlink at its own name. */
static hangar_status open_folder(const vfs *v, int rootfd, const char *id, const char *rel, int *out)
{
    char path[PATH_MAX];
    hs_root_path(v->vol.root, rel, path, sizeof path);
    return hs_open_folder_at(rootfd, rel, id, path, out);
}

/* Checks that the folder exists as a real directory. */
static hangar_status folder_exists(const vfs *v, int rootfd, const char *id, const char *rel)
{
    struct stat st;
    char path[PATH_MAX];
    if (fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        int e = errno;
        hs_root_path(v->vol.root, rel, path, sizeof path);
        if (e == ENOENT || e == ENOTDIR)
            return hs_fail(HANGAR_E_NOT_FOUND, "folder %s does not exist (looked for %s)", id, path);
        return hs_fail_fs(e, "cannot stat folder %s at %s", id, path);
    }
    if (!S_ISDIR(st.st_mode)) {
        hs_root_path(v->vol.root, rel, path, sizeof path);
        return hs_fail(HANGAR_E_IO, "folder %s: %s is not a directory", id, path);
    }
    return HANGAR_OK;
}

/* mkdir -p of the two shard directories above a folder. */
static hangar_status make_shards(const vfs *v, int rootfd, const char *rel)
{
    char shard[6];
    for (size_t len = 2; len <= 5; len += 3) {
        memcpy(shard, rel, len);
        shard[len] = '\0';
        if (mkdirat(rootfd, shard, 0755) != 0 && errno != EEXIST) {
            char path[PATH_MAX];
            int e = errno;
            hs_root_path(v->vol.root, shard, path, sizeof path);
            return hs_fail_fs(e, "cannot create shard directory %s", path);
        }
    }
    return HANGAR_OK;
}

/* fsync of the shard directory holding a folder (after creating or removing it). */
static void sync_shard(const vfs *v, int rootfd, const char *rel)
{
    if (!v->fsync)
        return;
    char shard[6];
    memcpy(shard, rel, 5);
    shard[5] = '\0';
    int fd = openat(rootfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* ------------------------------------------------------------------------ */
/* Quota sidecar: <root>/.hangar-quota/<id> holding the byte count in decimal */
/* ------------------------------------------------------------------------ */

static hangar_status read_quota(const vfs *v, int rootfd, const char *id, uint64_t *out)
{
    char rel[sizeof VFS_QUOTA_DIR + HS_FOLDER_ID_MAX + 1];
    snprintf(rel, sizeof rel, "%s/%s", VFS_QUOTA_DIR, id);
    *out = 0;
    int fd = openat(rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return HANGAR_OK; /* no sidecar: no quota */
        return hs_fail_fs(errno, "cannot open quota file %s/%s", v->vol.root, rel);
    }
    char buf[32];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return hs_fail_fs(e, "cannot read quota file %s/%s", v->vol.root, rel);
        }
        if (n == 0 || (len += (size_t)n) == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    uint64_t q = 0;
    size_t i = 0;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (q > (UINT64_MAX - d) / 10)
            break;
        q = q * 10 + d;
    }
    if (i == 0 || !(i == len || (buf[i] == '\n' && i + 1 == len)))
        return hs_fail(HANGAR_E_IO, "quota file %s/%s is corrupt; set the folder's quota again to rewrite it",
                       v->vol.root, rel);
    *out = q;
    return HANGAR_OK;
}

/* Replaces the sidecar atomically (temp file + rename); quota 0 removes it. */
static hangar_status write_quota(vfs *v, int rootfd, const char *id, uint64_t quota)
{
    if (quota == 0) {
        char rel[sizeof VFS_QUOTA_DIR + HS_FOLDER_ID_MAX + 1];
        snprintf(rel, sizeof rel, "%s/%s", VFS_QUOTA_DIR, id);
        if (unlinkat(rootfd, rel, 0) != 0 && errno != ENOENT && errno != ENOTDIR)
            return hs_fail_fs(errno, "cannot remove quota file %s/%s", v->vol.root, rel);
        return HANGAR_OK;
    }
    if (mkdirat(rootfd, VFS_QUOTA_DIR, 0755) != 0 && errno != EEXIST)
        return hs_fail_fs(errno, "cannot create quota directory %s/%s", v->vol.root, VFS_QUOTA_DIR);
    int qfd = openat(rootfd, VFS_QUOTA_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (qfd < 0)
        return hs_fail_fs(errno, "cannot open quota directory %s/%s", v->vol.root, VFS_QUOTA_DIR);

    /* Temp names contain '.', which no folder id can, so they never clash with a sidecar. */
    char tmp[HS_FOLDER_ID_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%" PRIuLEAST64, id, (long)getpid(),
             (uint_least64_t)atomic_fetch_add_explicit(&v->tmp_seq, 1, memory_order_relaxed));
    char text[32];
    int tlen = snprintf(text, sizeof text, "%" PRIu64 "\n", quota);
    hangar_status st = HANGAR_OK;
    int fd = openat(qfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = hs_fail_fs(errno, "cannot create %s/%s/%s", v->vol.root, VFS_QUOTA_DIR, tmp);
        goto out;
    }
    ssize_t w;
    do {
        w = write(fd, text, (size_t)tlen);
    } while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : (w != tlen ? EIO : 0);
    if (!e && v->fsync && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && renameat(qfd, tmp, qfd, id) != 0)
        e = errno;
    if (e) {
        (void)unlinkat(qfd, tmp, 0);
        st = hs_fail_fs(e, "cannot write quota file %s/%s/%s", v->vol.root, VFS_QUOTA_DIR, id);
        goto out;
    }
    if (v->fsync)
        (void)fsync(qfd);
out:
    close(qfd);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Symlink-safe tree walker                                                  */
/* ------------------------------------------------------------------------ */

typedef struct walk_level {
    int fd;                 /* the directory; -1 while parked */
    int aux;                /* visitor's companion directory (clone target); -1 if none or parked */
    bool has_aux;
    dev_t dev, aux_dev;     /* identities, checked when a parked level is reopened */
    ino_t ino, aux_ino;
    struct stat st;         /* lstat of the directory as it was listed */
    char *names;            /* the listing, read up front: NUL-terminated names back to back */
    size_t names_len, pos;
    char name[NAME_MAX + 1]; /* name in the parent; "" for the top */
} walk_level;

typedef struct walker walker;

typedef struct walk_ops {
    /* A non-directory entry of `dir`. */
    hangar_status (*entry)(walker *w, walk_level *dir, const char *name, const struct stat *st);
    /* A subdirectory, already opened as child_fd. Sets *descend; may set *child_aux (ownership passes). */
    hangar_status (*enter)(walker *w, walk_level *dir, const char *name, const struct stat *st, int child_fd,
                           bool *descend, int *child_aux);
    /* After every entry of `child` was visited; parent->fd (and aux) are open. */
    hangar_status (*leave)(walker *w, walk_level *parent, walk_level *child);
    /* Skip subdirectories that cannot be opened for lack of permission instead of failing. */
    bool skip_unreadable;
} walk_ops;

struct walker {
    vfs *v;
    const walk_ops *ops;
    void *ctx;
    const char *folder_id;
    walk_level *lv;
    size_t depth, cap;
    dev_t top_dev;
    char path[PATH_MAX];
};

/* "<folder>/a/b/name" for messages (name may be NULL: the current directory). */
static const char *walk_path(walker *w, const char *name)
{
    size_t len = (size_t)snprintf(w->path, sizeof w->path, "%s", w->folder_id);
    size_t levels = w->lv ? w->depth : 0;
    for (size_t i = 1; i <= levels + 1 && len < sizeof w->path; i++) {
        const char *part = i <= levels ? w->lv[i].name : name;
        if (!part)
            break;
        len += (size_t)snprintf(w->path + len, sizeof w->path - len, "/%s", part);
    }
    return w->path;
}

static int slurp_dir(int fd, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return e;
    }
    rewinddir(d);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int e = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            e = errno;
            break;
        }
        const char *n = de->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
            continue;
        size_t k = strlen(n) + 1;
        if (len + k > cap) {
            size_t nc = cap ? cap * 2 : 4096;
            while (nc < len + k)
                nc *= 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                e = ENOMEM;
                break;
            }
            buf = nb;
            cap = nc;
        }
        memcpy(buf + len, n, k);
        len += k;
    }
    closedir(d);
    if (e) {
        free(buf);
        return e;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static void level_close(walk_level *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->aux >= 0)
        close(l->aux);
    free(l->names);
    l->fd = l->aux = -1;
    l->names = NULL;
}

/* Pushes a directory (takes ownership of fd and aux, closing them on failure). */
static hangar_status walk_push(walker *w, int fd, int aux, const struct stat *st, const char *name)
{
    size_t idx = w->lv ? w->depth + 1 : 0;
    hangar_status rc = HANGAR_OK;
    if (strlen(name) > NAME_MAX) {
        rc = hs_fail(HANGAR_E_IO, "name too long under %s", walk_path(w, NULL));
        goto fail;
    }
    if (idx >= w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        walk_level *nl = realloc(w->lv, nc * sizeof *nl);
        if (!nl) {
            rc = hs_fail(HANGAR_E_INSUFFICIENT, "out of memory while walking %s", walk_path(w, NULL));
            goto fail;
        }
        w->lv = nl;
        w->cap = nc;
    }
    walk_level *l = &w->lv[idx];
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->aux = aux;
    l->has_aux = aux >= 0;
    l->dev = st->st_dev;
    l->ino = st->st_ino;
    l->st = *st;
    strcpy(l->name, name);
    if (aux >= 0) {
        struct stat ast;
        if (fstat(aux, &ast) != 0) {
            l->fd = l->aux = -1;
            rc = hs_fail_fs(errno, "cannot stat a directory being created");
            goto fail;
        }
        l->aux_dev = ast.st_dev;
        l->aux_ino = ast.st_ino;
    }
    int e = slurp_dir(fd, &l->names, &l->names_len);
    if (e) {
        l->fd = l->aux = -1;
        w->depth = idx; /* so the message names this directory */
        rc = hs_fail_fs(e, "cannot list %s", walk_path(w, NULL));
        w->depth = idx ? idx - 1 : 0;
        goto fail;
    }
    w->depth = idx;
    /* Park the parent once too many levels are open. */
    if (idx >= VFS_OPEN_LEVELS) {
        walk_level *p = &w->lv[idx - 1];
        close(p->fd);
        p->fd = -1;
        if (p->aux >= 0) {
            close(p->aux);
            p->aux = -1;
        }
    }
    return HANGAR_OK;
fail:
    close(fd);
    if (aux >= 0)
        close(aux);
    return rc;
}

/* Reopens a parked parent through ".." of its child, checking it is the same directory. */
static int reopen_dotdot(int child, dev_t dev, ino_t ino)
{
    int fd = openat(child, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != dev || st.st_ino != ino) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

static hangar_status walk_unpark(walker *w, walk_level *p, walk_level *c)
{
    p->fd = reopen_dotdot(c->fd, p->dev, p->ino);
    if (p->fd < 0)
        goto moved;
    if (p->has_aux) {
        p->aux = c->aux >= 0 ? reopen_dotdot(c->aux, p->aux_dev, p->aux_ino) : -1;
        if (p->aux < 0)
            goto moved;
    }
    return HANGAR_OK;
moved:
    return hs_fail(HANGAR_E_FOLDER_BUSY, "directory %s was moved while it was being walked; retry",
                   walk_path(w, NULL));
}

/* Walks the tree under top_fd (and its companion top_aux, or -1); takes ownership of both. */
static hangar_status walk(walker *w, int top_fd, int top_aux)
{
    w->lv = NULL;
    w->cap = 0;
    w->depth = 0;
    struct stat st;
    if (fstat(top_fd, &st) != 0) {
        hangar_status rc = hs_fail_fs(errno, "cannot stat folder %s", w->folder_id);
        close(top_fd);
        if (top_aux >= 0)
            close(top_aux);
        return rc;
    }
    w->top_dev = st.st_dev;
    hangar_status rc = walk_push(w, top_fd, top_aux, &st, "");
    if (rc != HANGAR_OK) {
        free(w->lv);
        w->lv = NULL;
        return rc;
    }
    for (;;) {
        walk_level *l = &w->lv[w->depth];
        if (l->pos < l->names_len) {
            const char *name = l->names + l->pos;
            l->pos += strlen(name) + 1;
            if (fstatat(l->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT)
                    continue; /* removed since it was listed */
                rc = hs_fail_fs(errno, "cannot stat %s", walk_path(w, name));
                break;
            }
            if (!S_ISDIR(st.st_mode)) {
                rc = w->ops->entry(w, l, name, &st);
                if (rc != HANGAR_OK)
                    break;
                continue;
            }
            int cfd = openat(l->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                int e = errno;
                if (e == ENOENT)
                    continue;
                if (e == EACCES && w->ops->skip_unreadable) {
                    /* Visited as a plain entry: counted, not descended into. */
                    if ((rc = w->ops->entry(w, l, name, &st)) != HANGAR_OK)
                        break;
                    continue;
                }
                if (e == ELOOP || e == ENOTDIR)
                    rc = hs_fail(HANGAR_E_FOLDER_BUSY, "%s changed from a directory while being walked; retry",
                                 walk_path(w, name));
                else
                    rc = hs_fail_fs(e, "cannot open %s", walk_path(w, name));
                break;
            }
            struct stat cst;
            if (fstat(cfd, &cst) != 0 || cst.st_dev != st.st_dev || cst.st_ino != st.st_ino) {
                close(cfd);
                rc = hs_fail(HANGAR_E_FOLDER_BUSY, "%s was replaced while being walked; retry",
                             walk_path(w, name));
                break;
            }
            bool descend = false;
            int caux = -1;
            rc = w->ops->enter(w, l, name, &st, cfd, &descend, &caux);
            if (rc != HANGAR_OK || !descend) {
                close(cfd);
                if (caux >= 0)
                    close(caux);
                if (rc != HANGAR_OK)
                    break;
                continue;
            }
            rc = walk_push(w, cfd, caux, &st, name);
            if (rc != HANGAR_OK)
                break;
            continue;
        }
        /* Level finished. */
        if (w->depth == 0)
            break;
        walk_level *c = l, *p = &w->lv[w->depth - 1];
        if (p->fd < 0 && (rc = walk_unpark(w, p, c)) != HANGAR_OK)
            break;
        rc = w->ops->leave(w, p, c);
        level_close(c);
        w->depth--;
        if (rc != HANGAR_OK)
            break;
    }
    for (size_t i = 0; i <= w->depth; i++)
        level_close(&w->lv[i]);
    free(w->lv);
    w->lv = NULL;
    return rc;
}

/* --- delete ------------------------------------------------------------- */

/* Lets the owner remove entries of a directory it made read-only (e.g. a Go module cache). */
static void make_owner_writable(int fd, const struct stat *st)
{
    const mode_t need = S_IWUSR | S_IXUSR | S_IRUSR;
    if (st->st_uid == geteuid() && (st->st_mode & need) != need)
        (void)fchmod(fd, (st->st_mode & 07777) | need);
}

static hangar_status del_entry(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    (void)st;
    if (unlinkat(dir->fd, name, 0) == 0 || errno == ENOENT)
        return HANGAR_OK;
    if (errno == EISDIR)
        return hs_fail(HANGAR_E_FOLDER_BUSY, "%s became a directory while being deleted; retry",
                       walk_path(w, name));
    return hs_fail_fs(errno, "cannot remove %s", walk_path(w, name));
}

static hangar_status del_enter(walker *w, walk_level *dir, const char *name, const struct stat *st, int child_fd,
                               bool *descend, int *child_aux)
{
    (void)dir;
    (void)child_aux;
    if (st->st_dev != w->top_dev)
        return hs_fail(HANGAR_E_FOLDER_BUSY,
                       "%s is the mount point of another filesystem; unmount it before deleting the folder",
                       walk_path(w, name));
    make_owner_writable(child_fd, st);
    *descend = true;
    return HANGAR_OK;
}

static hangar_status del_leave(walker *w, walk_level *parent, walk_level *child)
{
    if (unlinkat(parent->fd, child->name, AT_REMOVEDIR) == 0 || errno == ENOENT)
        return HANGAR_OK;
    if (errno == ENOTEMPTY || errno == EEXIST)
        return hs_fail(HANGAR_E_FOLDER_BUSY, "entries were created in %s while it was being deleted; retry",
                       walk_path(w, NULL));
    return hs_fail_fs(errno, "cannot remove directory %s", walk_path(w, NULL));
}

static const walk_ops delete_ops = {del_entry, del_enter, del_leave, false};

/* Removes <root>/<rel> and everything below it, never following symlinks. */
static hangar_status remove_tree(vfs *v, int rootfd, const char *id, const char *rel)
{
    int fd = -1;
    hangar_status rc = open_folder(v, rootfd, id, rel, &fd);
    if (rc != HANGAR_OK)
        return rc;
    struct stat st;
    if (fstat(fd, &st) == 0)
        make_owner_writable(fd, &st);
    walker w = {.v = v, .ops = &delete_ops, .folder_id = id};
    rc = walk(&w, fd, -1);
    if (rc != HANGAR_OK)
        return rc;
    if (unlinkat(rootfd, rel, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return hs_fail(HANGAR_E_FOLDER_BUSY, "entries were created in folder %s while it was being deleted; retry",
                           id);
        return hs_fail_fs(errno, "cannot remove folder %s", id);
    }
    return HANGAR_OK;
}

/* --- usage -------------------------------------------------------------- */

typedef struct usage_ctx {
    int64_t entries;
    uint64_t bytes;
} usage_ctx;

/*
 * used_bytes is the sum of st_size of regular files (the apparent size, what
 * a quota on content means to users), not st_blocks: sparse files count at
 * their full length, directories and symlinks count 0, and a file with
 * several hard links inside the folder counts once per link.
 */
static hangar_status usage_entry(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    (void)dir;
    (void)name;
    usage_ctx *u = w->ctx;
    u->entries++;
    if (S_ISREG(st->st_mode) && st->st_size > 0) {
        uint64_t add = (uint64_t)st->st_size;
        u->bytes = u->bytes > UINT64_MAX - add ? UINT64_MAX : u->bytes + add;
    }
    return HANGAR_OK;
}

static hangar_status usage_enter(walker *w, walk_level *dir, const char *name, const struct stat *st, int child_fd,
                                 bool *descend, int *child_aux)
{
    (void)dir;
    (void)name;
    (void)child_fd;
    (void)child_aux;
    usage_ctx *u = w->ctx;
    u->entries++;
    *descend = st->st_dev == w->top_dev; /* a foreign mount is counted as one entry, not walked */
    return HANGAR_OK;
}

static hangar_status usage_leave(walker *w, walk_level *parent, walk_level *child)
{
    (void)w;
    (void)parent;
    (void)child;
    return HANGAR_OK;
}

static const walk_ops usage_ops = {usage_entry, usage_enter, usage_leave, true};

/* --- clone -------------------------------------------------------------- */

typedef struct clone_ctx {
    char *buf; /* read/write fallback buffer, allocated on first use */
    uint64_t skipped;
} clone_ctx;

static hangar_status copy_meta_fd(walker *w, int fd, const struct stat *st, const char *what)
{
    vfs *v = w->v;
    if (v->preserve_owner && fchown(fd, st->st_uid, st->st_gid) != 0)
        return hs_fail_fs(errno, "cannot set the owner of the copy of %s", what);
    if (fchmod(fd, st->st_mode & 07777) != 0)
        return hs_fail_fs(errno, "cannot set the mode of the copy of %s", what);
    struct timespec ts[2] = {VFS_ATIME(st), VFS_MTIME(st)};
    if (futimens(fd, ts) != 0)
        return hs_fail_fs(errno, "cannot set the times of the copy of %s", what);
    if (v->fsync && fsync(fd) != 0)
        return hs_fail_fs(errno, "cannot fsync the copy of %s", what);
    return HANGAR_OK;
}

static hangar_status write_all(walker *w, int fd, const char *buf, size_t len, const char *name)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail_fs(errno, "cannot write the copy of %s", walk_path(w, name));
        buf += n;
        len -= (size_t)n;
    }
    return HANGAR_OK;
}

static hangar_status clone_file(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    clone_ctx *c = w->ctx;
    /* O_NONBLOCK: if the entry was swapped for a FIFO, opening must not hang. */
    int in = openat(dir->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT)
            return HANGAR_OK;
        return hs_fail_fs(errno, "cannot open %s", walk_path(w, name));
    }
    struct stat ist;
    if (fstat(in, &ist) != 0 || !S_ISREG(ist.st_mode) || ist.st_ino != st->st_ino || ist.st_dev != st->st_dev) {
        close(in);
        return hs_fail(HANGAR_E_FOLDER_BUSY, "%s was replaced while being cloned; retry", walk_path(w, name));
    }
    int out = openat(dir->aux, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        hangar_status rc = hs_fail_fs(errno, "cannot create the copy of %s", walk_path(w, name));
        close(in);
        return rc;
    }
    hangar_status rc = HANGAR_OK;
#if defined(__linux__)
    bool use_cfr = true; /* in-kernel copy (reflinks on filesystems that support them) */
#else
    bool use_cfr = false;
#endif
    uint64_t total = 0;
    for (;;) {
        ssize_t n = 0;
        if (use_cfr) {
#if defined(__linux__)
            n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
#endif
            if ((n < 0 && total == 0 &&
                 (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) ||
                (n == 0 && total == 0 && ist.st_size > 0)) {
                /* Not supported here (or reports nothing for a non-empty file): copy by hand. */
                use_cfr = false;
                if (lseek(in, 0, SEEK_SET) < 0 || lseek(out, 0, SEEK_SET) < 0) {
                    rc = hs_fail_fs(errno, "cannot copy %s", walk_path(w, name));
                    break;
                }
                continue;
            }
        } else {
            if (!c->buf && !(c->buf = malloc(VFS_COPY_BUF))) {
                rc = hs_fail(HANGAR_E_INSUFFICIENT, "out of memory while copying %s", walk_path(w, name));
                break;
            }
            n = read(in, c->buf, VFS_COPY_BUF);
            if (n > 0 && (rc = write_all(w, out, c->buf, (size_t)n, name)) != HANGAR_OK)
                break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = hs_fail_fs(errno, "cannot copy %s", walk_path(w, name));
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        atomic_fetch_add_explicit(&w->v->cloned_bytes, (uint_least64_t)n, memory_order_relaxed);
    }
    if (rc == HANGAR_OK)
        rc = copy_meta_fd(w, out, st, walk_path(w, name));
    if (close(out) != 0 && rc == HANGAR_OK)
        rc = hs_fail_fs(errno, "cannot write the copy of %s", walk_path(w, name));
    close(in);
    return rc;
}

static hangar_status clone_symlink(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(dir->fd, name, target, sizeof target);
    if (n < 0) {
        if (errno == ENOENT)
            return HANGAR_OK;
        return hs_fail_fs(errno, "cannot read symlink %s", walk_path(w, name));
    }
    if ((size_t)n >= sizeof target)
        return hs_fail(HANGAR_E_IO, "symlink %s has a target longer than %d bytes", walk_path(w, name),
                       PATH_MAX - 1);
    target[n] = '\0';
    if (symlinkat(target, dir->aux, name) != 0)
        return hs_fail_fs(errno, "cannot create the copy of symlink %s", walk_path(w, name));
    if (w->v->preserve_owner && fchownat(dir->aux, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) != 0)
        return hs_fail_fs(errno, "cannot set the owner of the copy of %s", walk_path(w, name));
    struct timespec ts[2] = {VFS_ATIME(st), VFS_MTIME(st)};
    if (utimensat(dir->aux, name, ts, AT_SYMLINK_NOFOLLOW) != 0 && errno != EOPNOTSUPP)
        return hs_fail_fs(errno, "cannot set the times of the copy of %s", walk_path(w, name));
    return HANGAR_OK;
}

static hangar_status clone_fifo(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    /* The target tree is brand new and private to this call, so names under dir->aux are ours. */
    if (mkfifoat(dir->aux, name, 0600) != 0)
        return hs_fail_fs(errno, "cannot create the copy of FIFO %s", walk_path(w, name));
    if (w->v->preserve_owner && fchownat(dir->aux, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) != 0)
        return hs_fail_fs(errno, "cannot set the owner of the copy of %s", walk_path(w, name));
    if (fchmodat(dir->aux, name, st->st_mode & 07777, 0) != 0)
        return hs_fail_fs(errno, "cannot set the mode of the copy of %s", walk_path(w, name));
    struct timespec ts[2] = {VFS_ATIME(st), VFS_MTIME(st)};
    if (utimensat(dir->aux, name, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return hs_fail_fs(errno, "cannot set the times of the copy of %s", walk_path(w, name));
    return HANGAR_OK;
}

static hangar_status clone_entry(walker *w, walk_level *dir, const char *name, const struct stat *st)
{
    hangar_status rc;
    if (S_ISREG(st->st_mode))
        rc = clone_file(w, dir, name, st);
    else if (S_ISLNK(st->st_mode))
        rc = clone_symlink(w, dir, name, st);
    else if (S_ISFIFO(st->st_mode))
        rc = clone_fifo(w, dir, name, st);
    else {
        /* Sockets and device nodes have no meaningful copy; they are skipped and logged. */
        ((clone_ctx *)w->ctx)->skipped++;
        return HANGAR_OK;
    }
    if (rc == HANGAR_OK)
        atomic_fetch_add_explicit(&w->v->cloned_entries, 1, memory_order_relaxed);
    return rc;
}

static hangar_status clone_enter(walker *w, walk_level *dir, const char *name, const struct stat *st, int child_fd,
                                 bool *descend, int *child_aux)
{
    (void)child_fd;
    if (st->st_dev != w->top_dev)
        return hs_fail(HANGAR_E_FOLDER_BUSY,
                       "%s is the mount point of another filesystem; unmount it before cloning the folder",
                       walk_path(w, name));
    /* Created owner-only; the source mode is applied in clone_leave, once its entries exist. */
    if (mkdirat(dir->aux, name, 0700) != 0)
        return hs_fail_fs(errno, "cannot create the copy of %s", walk_path(w, name));
    int fd = openat(dir->aux, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hs_fail_fs(errno, "cannot open the copy of %s", walk_path(w, name));
    *child_aux = fd;
    *descend = true;
    return HANGAR_OK;
}

static hangar_status clone_leave(walker *w, walk_level *parent, walk_level *child)
{
    (void)parent;
    hangar_status rc = copy_meta_fd(w, child->aux, &child->st, walk_path(w, NULL));
    if (rc == HANGAR_OK)
        atomic_fetch_add_explicit(&w->v->cloned_entries, 1, memory_order_relaxed);
    return rc;
}

static const walk_ops clone_ops = {clone_entry, clone_enter, clone_leave, false};

/* ------------------------------------------------------------------------ */
/* Storage functions                                                         */
/* ------------------------------------------------------------------------ */

static hangar_status vfs_create_folder(void *instance, const char *folder_id, uint64_t quota_bytes)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX], path[PATH_MAX];
    hs_folder_rel(folder_id, rel);
    hs_root_path(v->vol.root, rel, path, sizeof path);
    int rootfd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    if ((rc = make_shards(v, rootfd, rel)) != HANGAR_OK)
        goto out;
    if (mkdirat(rootfd, rel, 0755) != 0) {
        if (errno == EEXIST)
            rc = hs_fail(HANGAR_E_EXISTS, "folder %s already exists at %s", folder_id, path);
        else
            rc = hs_fail_fs(errno, "cannot create folder %s at %s", folder_id, path);
        goto out;
    }
    /* Exactly 0755 whatever the process umask is. */
    int fd = openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0755) != 0)
        rc = hs_fail_fs(errno, "cannot set the mode of folder %s at %s", folder_id, path);
    if (fd >= 0)
        close(fd);
    /* Also clears a sidecar left behind by an earlier folder of the same id. */
    if (rc == HANGAR_OK)
        rc = write_quota(v, rootfd, folder_id, quota_bytes);
    if (rc != HANGAR_OK) {
        (void)unlinkat(rootfd, rel, AT_REMOVEDIR); /* leave nothing behind */
        goto out;
    }
    sync_shard(v, rootfd, rel);
out:
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status vfs_delete_folder(void *instance, const char *folder_id)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX];
    hs_folder_rel(folder_id, rel);
    int rootfd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    rc = remove_tree(v, rootfd, folder_id, rel);
    if (rc == HANGAR_OK) {
        sync_shard(v, rootfd, rel);
        /*
         * The folder is gone; a sidecar that cannot be removed is only logged:
         * it is ignored while the folder is absent and reset by create_folder.
         * Shard directories are kept (at most one per id prefix) so that a
         * concurrent create_folder in the same shard never loses its parent.
         */
        if (write_quota(v, rootfd, folder_id, 0) != HANGAR_OK) {
            char why[HS_ERROR_MAX];
            hs_last_error(v, why, sizeof why);
            hs_storage_log(v->vol.host, HANGAR_LOG_WARNING, "folder %s deleted, but %s", folder_id, why);
        }
    }
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status vfs_get_usage(void *instance, const char *folder_id, hangar_storage_usage *usage)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc == HANGAR_OK)
        rc = hs_check_usage(usage);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX];
    hs_folder_rel(folder_id, rel);
    int rootfd = -1, fd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    if ((rc = open_folder(v, rootfd, folder_id, rel, &fd)) != HANGAR_OK)
        goto out;
    usage_ctx u = {0, 0};
    walker w = {.v = v, .ops = &usage_ops, .ctx = &u, .folder_id = folder_id};
    if ((rc = walk(&w, fd, -1)) != HANGAR_OK)
        goto out;
    uint64_t quota;
    if ((rc = read_quota(v, rootfd, folder_id, &quota)) != HANGAR_OK)
        goto out;
    hs_fill_usage(usage, u.entries, u.bytes, quota);
out:
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status vfs_get_quota(void *instance, const char *folder_id, uint64_t *quota_bytes)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc == HANGAR_OK && !quota_bytes)
        rc = hs_fail(HANGAR_E_INVALID_ARGUMENT, "quota_bytes is NULL");
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX];
    hs_folder_rel(folder_id, rel);
    int rootfd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    uint64_t q = 0;
    rc = folder_exists(v, rootfd, folder_id, rel);
    if (rc == HANGAR_OK)
        rc = read_quota(v, rootfd, folder_id, &q);
    if (rc == HANGAR_OK)
        *quota_bytes = q;
    close(rootfd);
    return hs_volume_done(v, rc);
}

/* Records the quota; it is not enforced here, so shrinking below usage is allowed. */
static hangar_status vfs_set_quota(void *instance, const char *folder_id, uint64_t quota_bytes)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check(v, "folder_id", folder_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char rel[HS_FOLDER_REL_MAX];
    hs_folder_rel(folder_id, rel);
    int rootfd = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    rc = folder_exists(v, rootfd, folder_id, rel);
    if (rc == HANGAR_OK)
        rc = write_quota(v, rootfd, folder_id, quota_bytes);
    close(rootfd);
    return hs_volume_done(v, rc);
}

/*
 * Copies the source tree into a new target folder: regular files (data,
 * mode, times; owner too when running as root), directories, symlinks as
 * symlinks, FIFOs. Sockets and device nodes are skipped (and logged); hard
 * links become separate files. The target starts without a quota (the host
 * sets one with set_quota). On failure the partial target is removed.
 */
static hangar_status vfs_clone_folder(void *instance, const char *source_id, const char *target_id)
{
    vfs *v = instance;
    hangar_status rc = hs_volume_check_clone(v, source_id, target_id);
    if (rc != HANGAR_OK)
        return hs_volume_done(v, rc);
    char srel[HS_FOLDER_REL_MAX], trel[HS_FOLDER_REL_MAX], tpath[PATH_MAX];
    hs_folder_rel(source_id, srel);
    hs_folder_rel(target_id, trel);
    hs_root_path(v->vol.root, trel, tpath, sizeof tpath);
    int rootfd = -1, sfd = -1, tfd = -1, tfd2 = -1;
    if ((rc = hs_open_volume_root(v->vol.root, &rootfd)) != HANGAR_OK)
        return hs_volume_done(v, rc);
    if ((rc = open_folder(v, rootfd, source_id, srel, &sfd)) != HANGAR_OK)
        goto out;
    struct stat sst;
    if (fstat(sfd, &sst) != 0) {
        rc = hs_fail_fs(errno, "cannot stat folder %s", source_id);
        goto out;
    }
    if ((rc = make_shards(v, rootfd, trel)) != HANGAR_OK)
        goto out;
    if (mkdirat(rootfd, trel, 0700) != 0) {
        if (errno == EEXIST)
            rc = hs_fail(HANGAR_E_EXISTS, "target folder %s already exists at %s", target_id, tpath);
        else
            rc = hs_fail_fs(errno, "cannot create target folder %s at %s", target_id, tpath);
        goto out;
    }
    /* From here on, a failure must remove the target. */
    tfd = openat(rootfd, trel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0 || (tfd2 = fcntl(tfd, F_DUPFD_CLOEXEC, 0)) < 0) {
        rc = hs_fail_fs(errno, "cannot open target folder %s at %s", target_id, tpath);
        if (tfd >= 0)
            close(tfd);
    } else {
        clone_ctx c = {NULL, 0};
        walker w = {.v = v, .ops = &clone_ops, .ctx = &c, .folder_id = source_id};
        rc = walk(&w, sfd, tfd); /* takes both descriptors */
        sfd = -1;
        free(c.buf);
        if (rc == HANGAR_OK)
            rc = copy_meta_fd(&w, tfd2, &sst, source_id);
        if (rc == HANGAR_OK)
            rc = write_quota(v, rootfd, target_id, 0); /* drop a stale sidecar */
        if (rc == HANGAR_OK && c.skipped)
            hs_storage_log(v->vol.host, HANGAR_LOG_WARNING,
                           "clone %s -> %s skipped %" PRIu64 " socket(s) or device node(s)", source_id, target_id,
                           c.skipped);
    }
    if (tfd2 >= 0)
        close(tfd2);
    if (rc != HANGAR_OK) {
        hs_saved_error first;
        hs_save_error(&first);
        rc = hs_restore_error(&first, rc, remove_tree(v, rootfd, target_id, trel),
                              "the partial copy at %.256s could not be removed", tpath);
        goto out;
    }
    sync_shard(v, rootfd, trel);
out:
    if (sfd >= 0)
        close(sfd);
    close(rootfd);
    return hs_volume_done(v, rc);
}

static hangar_status vfs_get_performance(void *instance, hangar_storage_metric_sink sink, void *sink_context)
{
    vfs *v = instance;
    if (!v)
        return HANGAR_E_INVALID_ARGUMENT;
    const hs_metric_row rows[] = {
        {"cloned_bytes", "bytes", hs_counter(&v->cloned_bytes)},
        {"cloned_entries", "entries", hs_counter(&v->cloned_entries)},
    };
    return hs_volume_metrics(v, sink, sink_context, rows, sizeof rows / sizeof rows[0]);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

static hangar_status vfs_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                char *err, size_t err_len)
{
    hs_create c;
    hangar_status rc = hs_create_begin(&c, "vfs", host, config_json, out_instance, err, err_len, 2);
    if (rc != HANGAR_OK)
        return rc;
    /* The host has checked the config against vfs_schema and filled in "fsync"; the rest a schema cannot say. */
    char *root = NULL;
    bool fsync_flag = false;
    rc = hs_storage_root(&c, "create the directory or fix the path", "point it at the volume's directory", &root);
    if (rc == HANGAR_OK)
        rc = hs_storage_root_writable(&c, root);
    if (rc == HANGAR_OK)
        rc = hs_cfg_bool(&c, "fsync", &fsync_flag);
    vfs *v = rc == HANGAR_OK ? calloc(1, sizeof *v) : NULL;
    if (rc == HANGAR_OK && !v)
        rc = hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (rc != HANGAR_OK) {
        free(root);
        return rc;
    }
    hs_volume_init(&v->vol, host, root);
    v->fsync = fsync_flag;
    v->preserve_owner = geteuid() == 0;
    atomic_init(&v->cloned_bytes, 0);
    atomic_init(&v->cloned_entries, 0);
    atomic_init(&v->tmp_seq, 0);
    *out_instance = v;
    hs_storage_log(host, HANGAR_LOG_INFO, "vfs volume at %s (fsync %s)", v->vol.root, v->fsync ? "on" : "off");
    return HANGAR_OK;
}

static void vfs_destroy(void *instance)
{
    vfs *v = instance;
    if (!v)
        return;
    free(v->vol.root);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char vfs_schema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"required\":[\"root\"],"
    "\"properties\":{"
    "\"root\":{\"type\":\"string\",\"minLength\":1,"
    "\"description\":\"Absolute path of the volume root directory (must exist and be writable by the storage proxy). "
    "Folders live at <root>/<id[0:2]>/<id[2:4]>/<id>; quotas are recorded under <root>/.hangar-quota. "
    "Required, so it has no default.\"},"
    "\"fsync\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"fsync quota records, created folders and cloned data before reporting success, "
    "so they survive a host crash (the default); false trades that for speed on scratch volumes.\"}"
    "}"
    "}";

static const hangar_storage_functions vfs_functions = {
    .struct_size = sizeof(hangar_storage_functions),
    .create = vfs_create,
    .destroy = vfs_destroy,
    .last_error = hs_last_error,
    .create_folder = vfs_create_folder,
    .delete_folder = vfs_delete_folder,
    .folder_path = hs_volume_folder_path,
    .get_usage = vfs_get_usage,
    .volume_usage = hs_volume_usage,
    .get_quota = vfs_get_quota,
    .set_quota = vfs_set_quota,
    .clone_folder = vfs_clone_folder,
    .get_performance = vfs_get_performance,
};

static const hangar_plugin_descriptor vfs_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_STORAGE),
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = HANGAR_STORAGE_CAP_METRICS,
    .name = "vfs",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Virtual folders as plain directories on a local or network POSIX filesystem (quota recorded, not enforced).",
    .license = "Apache-2.0",
    .config_schema = vfs_schema,
    .static_slot_names = NULL,
    .functions = &vfs_functions,
};

/* From ABI 1.2 on the host fills in the schema's defaults ("fsync"), which create() relies on. */
HS_PLUGIN_ENTRY(vfs_descriptor, 2)
