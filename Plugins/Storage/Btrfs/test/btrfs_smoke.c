/*
 * Smoke test of the btrfs storage plugin against a real btrfs filesystem.
 * Not part of the build: it needs root and a scratch btrfs mount, e.g.
 *
 *   truncate -s 1G /tmp/btrfs.img && mkfs.btrfs -q /tmp/btrfs.img
 *   mkdir -p /mnt/hbtrfs && mount -o loop /tmp/btrfs.img /mnt/hbtrfs
 *   cc -std=c11 -Wall -Wextra -D_GNU_SOURCE -I PluginAPI/include \
 *      Plugins/Storage/Btrfs/test/btrfs_smoke.c -o /tmp/btrfs_smoke -ldl
 *   /tmp/btrfs_smoke /path/to/libhangar-storage-btrfs.so /mnt/hbtrfs/vol
 *
 * It plays the host (a minimal hangar_host_services over a fixed config) and
 * checks what the conformance suite cannot: that the kernel really enforces
 * the quota (EDQUOT), that usage comes from qgroup accounting, that a clone is
 * an instant, independent copy-on-write snapshot carrying its source's limit,
 * and that delete_folder copes with subvolumes a user nested in a folder.
 * Prints one PASS/FAIL line per check; exits 1 if any failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <hangar/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>

#define MIB (1024ull * 1024ull)
#define CHUNK (64u * 1024u)

static int failures;

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s  ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok)
        failures++;
}

/* ---- a minimal ABI 1.2 host: the config is root plus the schema's defaults, filled in as the host does ---- */

typedef struct host_ctx {
    const char *root;
    bool enable_quota, sync_usage;
} host_ctx;

static void h_log(void *c, int32_t level, const char *msg)
{
    (void)c;
    fprintf(stderr, "  [plugin log %d] %s\n", level, msg);
}

static int64_t h_now(void *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static hangar_status h_string(void *c, const char *path, char *buf, size_t len, size_t *out)
{
    host_ctx *h = c;
    const char *val;
    if (strcmp(path, "root") == 0)
        val = h->root;
    else if (strcmp(path, "enable_quota") == 0)
        val = h->enable_quota ? "true" : "false";
    else if (strcmp(path, "sync_usage") == 0)
        val = h->sync_usage ? "true" : "false";
    else
        return HANGAR_E_NOT_FOUND;
    *out = strlen(val);
    if (len < *out + 1)
        return HANGAR_E_BUFFER_TOO_SMALL;
    memcpy(buf, val, *out + 1);
    return HANGAR_OK;
}

static hangar_status h_int(void *c, const char *path, int64_t *out)
{
    (void)c;
    (void)path;
    (void)out;
    return HANGAR_E_NOT_FOUND;
}

static hangar_status h_double(void *c, const char *path, double *out)
{
    (void)c;
    (void)path;
    (void)out;
    return HANGAR_E_NOT_FOUND;
}

static hangar_status h_bool(void *c, const char *path, int32_t *out)
{
    host_ctx *h = c;
    if (strcmp(path, "root") == 0)
        return HANGAR_E_INVALID_ARGUMENT;
    if (strcmp(path, "enable_quota") == 0) {
        *out = h->enable_quota;
        return HANGAR_OK;
    }
    if (strcmp(path, "sync_usage") == 0) {
        *out = h->sync_usage;
        return HANGAR_OK;
    }
    return HANGAR_E_NOT_FOUND;
}

static int64_t h_count(void *c, const char *path)
{
    (void)c;
    return path[0] == '\0' ? 3 : -1;
}

static hangar_status h_key(void *c, const char *path, int64_t index, char *buf, size_t len, size_t *out)
{
    (void)c;
    const char *keys[] = {"root", "enable_quota", "sync_usage"};
    if (path[0] != '\0' || index < 0 || index >= 3)
        return HANGAR_E_NOT_FOUND;
    *out = strlen(keys[index]);
    if (len < *out + 1)
        return HANGAR_E_BUFFER_TOO_SMALL;
    memcpy(buf, keys[index], *out + 1);
    return HANGAR_OK;
}

static hangar_host_services make_host(host_ctx *ctx)
{
    hangar_host_services h = {
        .struct_size = sizeof h,
        .abi_version = HANGAR_ABI_VERSION,
        .host_context = ctx,
        .log = h_log,
        .monotonic_ns = h_now,
        .config_string = h_string,
        .config_int = h_int,
        .config_double = h_double,
        .config_bool = h_bool,
        .config_count = h_count,
        .config_key = h_key,
    };
    return h;
}

/* ---- helpers ---- */

static const hangar_storage_functions *fns;
static void *inst;

static const char *last_err(void)
{
    static char buf[2048];
    fns->last_error(inst, buf, sizeof buf);
    return buf;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Deterministic, incompressible-looking content: byte i of the file. */
static void fill(unsigned char *buf, uint64_t off, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed;
        x ^= x >> 29;
        buf[i] = (unsigned char)(x * 0xBF58476D1CE4E5B9ull >> 56);
    }
}

/*
 * Appends `bytes` to `path` in CHUNK pieces and fsyncs. Returns the bytes
 * written and stores the errno that stopped it (0 if none) in *err.
 */
static uint64_t write_file(const char *path, uint64_t bytes, uint32_t seed, int *err)
{
    static unsigned char buf[CHUNK];
    *err = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        *err = errno;
        return 0;
    }
    struct stat st;
    fstat(fd, &st);
    uint64_t done = 0, off = (uint64_t)st.st_size;
    while (done < bytes) {
        size_t n = bytes - done < CHUNK ? (size_t)(bytes - done) : CHUNK;
        fill(buf, off + done, n, seed);
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            break;
        }
        done += (uint64_t)w;
    }
    if (fsync(fd) != 0 && !*err)
        *err = errno;
    if (close(fd) != 0 && !*err)
        *err = errno;
    return done;
}

/* True if the first `len` bytes of path match fill(seed). */
static bool content_is(const char *path, uint64_t len, uint32_t seed)
{
    static unsigned char got[CHUNK], want[CHUNK];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = true;
    for (uint64_t off = 0; off < len && ok;) {
        size_t n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        ssize_t r = pread(fd, got, n, (off_t)off);
        if (r != (ssize_t)n) {
            ok = false;
            break;
        }
        fill(want, off, n, seed);
        ok = memcmp(got, want, n) == 0;
        off += n;
    }
    close(fd);
    return ok;
}

static void folder_path(const char *id, char *buf, size_t len)
{
    size_t out = 0;
    if (fns->folder_path(inst, id, buf, len, &out) != HANGAR_OK)
        snprintf(buf, len, "(folder_path failed: %s)", last_err());
}

static int metric_count;

static hangar_status print_metric(void *c, const hangar_storage_metric *m)
{
    (void)c;
    printf("      metric %s = %.0f %s\n", m->key, m->value, m->unit);
    metric_count++;
    return HANGAR_OK;
}

static bool usage_of(const char *id, hangar_storage_usage *u)
{
    memset(u, 0, sizeof *u);
    u->struct_size = sizeof *u;
    return fns->get_usage(inst, id, u) == HANGAR_OK;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBHANGAR-STORAGE-BTRFS.so VOLUME-ROOT-ON-BTRFS\n", argv[0]);
        return 2;
    }
    const char *lib = argv[1], *root = argv[2];
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    hangar_plugin_entry_fn entry = (hangar_plugin_entry_fn)dlsym(dl, HANGAR_PLUGIN_ENTRY_SYMBOL);
    const hangar_plugin_descriptor *d = entry ? entry(HANGAR_ABI_VERSION) : NULL;
    check(d && d->kind == HANGAR_KIND_STORAGE && strcmp(d->name, "btrfs") == 0, "descriptor: storage plugin \"btrfs\"");
    if (!d)
        return 1;
    uint64_t want_caps = HANGAR_STORAGE_CAP_QUOTA | HANGAR_STORAGE_CAP_FAST_CLONE | HANGAR_STORAGE_CAP_FAST_USAGE;
    check((d->capabilities & want_caps) == want_caps, "capabilities include quota, fast-clone, fast-usage (0x%" PRIx64 ")",
          d->capabilities);
    fns = d->functions;
    char err[1024];

    /* A root that is not on btrfs is refused at create(), naming the path. */
    struct statfs sfs;
    if (statfs("/tmp", &sfs) == 0 && (unsigned long)sfs.f_type != (unsigned long)BTRFS_SUPER_MAGIC) {
        host_ctx bad = {"/tmp", true, true};
        hangar_host_services bh = make_host(&bad);
        void *bi = NULL;
        hangar_status st = fns->create(&bh, "{\"root\":\"/tmp\"}", &bi, err, sizeof err);
        check(st == HANGAR_E_INVALID_CONFIG && strstr(err, "/tmp") && strstr(err, "btrfs"),
              "create() on non-btrfs /tmp refused: %s", err);
        if (st == HANGAR_OK)
            fns->destroy(bi);
    }

    mkdir(root, 0755);
    host_ctx ctx = {root, true, true};
    hangar_host_services host = make_host(&ctx);
    char config[PATH_MAX + 32];
    snprintf(config, sizeof config, "{\"root\":\"%s\"}", root);
    hangar_status st = fns->create(&host, config, &inst, err, sizeof err);
    check(st == HANGAR_OK, "create() on %s%s%s", root, st ? ": " : "", st ? err : "");
    if (st != HANGAR_OK)
        return 1;

    const char *src = "smoke0001", *dst = "smoke0002";
    char spath[PATH_MAX], dpath[PATH_MAX], file[PATH_MAX + 16];
    folder_path(src, spath, sizeof spath);
    folder_path(dst, dpath, sizeof dpath);

    /* ---- quota enforcement ---- */
    st = fns->create_folder(inst, src, 10 * MIB);
    check(st == HANGAR_OK, "create_folder(%s, 10 MiB) at %s%s%s", src, spath, st ? ": " : "", st ? last_err() : "");
    if (st != HANGAR_OK)
        return 1;
    struct stat fst;
    check(stat(spath, &fst) == 0 && fst.st_ino == BTRFS_FIRST_FREE_OBJECTID && (fst.st_mode & 07777) == 0755,
          "folder is a subvolume root (inode 256), mode 0755");
    uint64_t q = 0;
    bool ok = fns->get_quota(inst, src, &q) == HANGAR_OK; /* arguments are evaluated in no fixed order */
    check(ok && q == 10 * MIB, "get_quota = %" PRIu64 " (10 MiB)", q);

    const uint64_t first = 10 * MIB - 256 * 1024;
    int e = 0;
    snprintf(file, sizeof file, "%s/a", spath);
    uint64_t wrote = write_file(file, first, 1, &e);
    check(e == 0 && wrote == first, "wrote 10 MiB - 256 KiB (%" PRIu64 " bytes) into the folder%s%s", wrote,
          e ? ": " : "", e ? strerror(e) : "");

    snprintf(file, sizeof file, "%s/b", spath);
    uint64_t more = write_file(file, 11 * MIB - first, 2, &e);
    check(e == EDQUOT && first + more < 11 * MIB,
          "writing on towards 11 MiB fails with EDQUOT after %" PRIu64 " more bytes (total %.2f MiB): %s", more,
          (double)(first + more) / (double)MIB, e ? strerror(e) : "no error");

    hangar_storage_usage u;
    ok = usage_of(src, &u);
    check(ok && u.used_bytes >= 9 * MIB + MIB / 2 && u.used_bytes <= 10 * MIB + 64 * 1024 && u.capacity_bytes == 10 * MIB &&
              u.file_count == -1,
          "get_usage: used %" PRIu64 " bytes (%.2f MiB), capacity %" PRIu64 ", file_count %" PRId64 "%s%s", u.used_bytes,
          (double)u.used_bytes / (double)MIB, u.capacity_bytes, u.file_count, ok ? "" : ": ", ok ? "" : last_err());
    uint64_t src_used = u.used_bytes;

    /* A limit below current usage is taken; writes then fail until usage drops. */
    ok = fns->set_quota(inst, src, 1 * MIB) == HANGAR_OK;
    snprintf(file, sizeof file, "%s/c", spath);
    more = write_file(file, CHUNK, 4, &e);
    check(ok && e == EDQUOT, "set_quota(1 MiB) below usage accepted; a further write fails: %s",
          e ? strerror(e) : "no error");
    unlink(file);
    st = fns->set_quota(inst, src, 10 * MIB);
    check(st == HANGAR_OK, "set_quota back to 10 MiB on a folder over its limit%s%s", st ? ": " : "",
          st ? last_err() : "");

    hangar_storage_usage vu = {.struct_size = sizeof vu};
    ok = fns->volume_usage(inst, &vu) == HANGAR_OK;
    check(ok && vu.capacity_bytes > 0 && vu.used_bytes >= 10 * MIB && vu.used_bytes <= vu.capacity_bytes,
          "volume_usage: used %.1f MiB of %.1f MiB", (double)vu.used_bytes / (double)MIB,
          (double)vu.capacity_bytes / (double)MIB);

    /* ---- clone: instant, independent, carries the limit ---- */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = fns->clone_folder(inst, src, dst);
    double clone_ms = ms_since(&t0);
    check(st == HANGAR_OK, "clone_folder(%s -> %s)%s%s", src, dst, st ? ": " : "", st ? last_err() : "");
    check(st == HANGAR_OK && clone_ms < 100.0, "clone of a %.1f MiB folder took %.2f ms (< 100 ms)",
          (double)src_used / (double)MIB, clone_ms);
    if (st != HANGAR_OK)
        return 1;
    check(fns->clone_folder(inst, src, dst) == HANGAR_E_EXISTS, "clone onto an existing folder: HANGAR_E_EXISTS");
    check(fns->clone_folder(inst, "nosuchfolder", "smoke0003") == HANGAR_E_NOT_FOUND,
          "clone of a missing folder: HANGAR_E_NOT_FOUND");
    q = 0;
    ok = fns->get_quota(inst, dst, &q) == HANGAR_OK;
    check(ok && q == 10 * MIB, "clone carries the source's limit (%" PRIu64 ")", q);
    snprintf(file, sizeof file, "%s/a", dpath);
    check(content_is(file, first, 1), "clone has the source's data");

    ok = fns->set_quota(inst, dst, 0) == HANGAR_OK && fns->get_quota(inst, dst, &q) == HANGAR_OK;
    check(ok && q == 0, "set_quota(clone, 0) removes the limit (get_quota = %" PRIu64 ")", q);
    /* Overwrite the start of the clone's copy of a, and add 2 MiB (beyond the old 10 MiB limit). */
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    unsigned char block[CHUNK];
    fill(block, 0, sizeof block, 99);
    ok = fd >= 0 && pwrite(fd, block, sizeof block, 0) == (ssize_t)sizeof block && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    snprintf(file, sizeof file, "%s/new", dpath);
    wrote = write_file(file, 2 * MIB, 3, &e);
    check(ok && e == 0 && wrote == 2 * MIB, "modified the clone (overwrote 64 KiB, added 2 MiB past the old limit)");
    snprintf(file, sizeof file, "%s/a", spath);
    bool same = content_is(file, first, 1);
    snprintf(file, sizeof file, "%s/new", spath);
    check(same && access(file, F_OK) != 0, "source unchanged: its data intact, no new file");
    ok = usage_of(src, &u);
    check(ok && u.used_bytes <= src_used + 64 * 1024 && u.capacity_bytes == 10 * MIB,
          "source usage unchanged: %" PRIu64 " bytes (was %" PRIu64 ")", u.used_bytes, src_used);
    ok = usage_of(dst, &u);
    check(ok && u.used_bytes > src_used + 2 * MIB - 64 * 1024 && u.capacity_bytes == 0,
          "clone usage %" PRIu64 " bytes (%.2f MiB), no limit", u.used_bytes, (double)u.used_bytes / (double)MIB);

    /* ---- nested subvolumes, as any user with write access can make, do not block deletion ---- */
    fd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "nested");
    ok = fd >= 0 && ioctl(fd, BTRFS_IOC_SUBVOL_CREATE_V2, &a) == 0;
    if (fd >= 0)
        close(fd);
    snprintf(file, sizeof file, "%s/nested", dpath);
    fd = open(file, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(a.name, sizeof a.name, "deeper");
    ok = ok && fd >= 0 && ioctl(fd, BTRFS_IOC_SUBVOL_CREATE_V2, &a) == 0;
    if (fd >= 0)
        close(fd);
    check(ok, "made subvolumes nested/ and nested/deeper/ inside the clone");
    /* Over its limit, unlinking the nested subvolumes needs the limit lifted first. */
    check(fns->set_quota(inst, dst, 1 * MIB) == HANGAR_OK, "clone's quota set to 1 MiB, below its usage");

    /* ---- metrics and deletion ---- */
    check(fns->get_performance(inst, NULL, NULL) == HANGAR_E_INVALID_ARGUMENT, "get_performance(NULL sink) refused");
    st = fns->delete_folder(inst, dst);
    check(st == HANGAR_OK && access(dpath, F_OK) != 0, "delete_folder(clone over quota, with nested subvolumes)%s%s",
          st ? ": " : "", st ? last_err() : "");
    st = fns->delete_folder(inst, src);
    check(st == HANGAR_OK && access(spath, F_OK) != 0, "delete_folder(source)%s%s", st ? ": " : "",
          st ? last_err() : "");
    check(fns->delete_folder(inst, src) == HANGAR_E_NOT_FOUND, "deleting it again: HANGAR_E_NOT_FOUND");
    ok = usage_of(src, &u);
    check(!ok, "get_usage of a deleted folder fails: %s", last_err());
    check(fns->create_folder(inst, "Bad/Id", 0) == HANGAR_E_INVALID_ARGUMENT, "invalid id refused");

    /* Ids shorter than four characters get '_'-padded shards, as in vfs. */
    char xpath[PATH_MAX];
    folder_path("x", xpath, sizeof xpath);
    size_t xl = strlen(xpath);
    st = fns->create_folder(inst, "x", 0);
    ok = st == HANGAR_OK && fns->get_quota(inst, "x", &q) == HANGAR_OK;
    check(ok && q == 0 && xl > 7 && strcmp(xpath + xl - 7, "x_/__/x") == 0 && access(xpath, F_OK) == 0,
          "short id \"x\" lives at %s, no quota", xpath);
    check(fns->delete_folder(inst, "x") == HANGAR_OK, "short id folder deleted");

    /* A plain directory where a folder should be (a vfs folder, say) is reported, never deleted. */
    char ppath[PATH_MAX];
    folder_path("plaindir", ppath, sizeof ppath);
    for (char *slash = strchr(ppath + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(ppath, 0755); /* the shard directories above it */
        *slash = '/';
    }
    ok = mkdir(ppath, 0755) == 0;
    st = ok ? fns->get_usage(inst, "plaindir", &u) : HANGAR_OK;
    check(ok && st == HANGAR_E_IO && strstr(last_err(), "not a btrfs subvolume"), "plain directory refused: %s",
          last_err());
    st = fns->delete_folder(inst, "plaindir");
    check(st == HANGAR_E_IO && access(ppath, F_OK) == 0, "delete_folder leaves a plain directory alone");
    rmdir(ppath);
    ok = fns->get_performance(inst, print_metric, NULL) == HANGAR_OK;
    check(ok && metric_count > 0, "get_performance reported %d metrics", metric_count);

    fns->destroy(inst);
    printf("%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
