/*
 * hangar-hook.so: makes a kernel's processor-count queries report the CPUs it was allocated.
 *
 * Preloaded into every process of a sandboxed kernel through /etc/ld.so.preload (which survives
 * scrubbed environments, su and sudo). Without it sysconf(_SC_NPROCESSORS_ONLN) counts the
 * host's CPUs, and NumPy/OpenBLAS, PyTorch, the JVM and `make -j` size their pools to the host
 * and oversubscribe the allocation.
 *
 * Built with the system C compiler against glibc only (no Swift runtime, no libdl: the real
 * sysconf is glibc's exported __sysconf), so it loads in any glibc image; musl and static
 * programs ignore /etc/ld.so.preload and run without it. Only the overridden functions are
 * exported.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

extern long __sysconf(int name);

/* Counts a cpuset list such as "0-3,8,10-11"; -1 if it is not one. */
static int count_list(const char *text)
{
    int count = 0;
    const char *p = text;
    while (*p && *p != '\n') {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0)
            return -1;
        p = end;
        b = a;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a)
                return -1;
            p = end;
        }
        count += (int)(b - a + 1);
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            return -1;
    }
    return count > 0 ? count : -1;
}

static int count_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return count_list(buf);
}

/* The container's cpuset (cgroup v2, then v1), else the affinity mask. */
static int allocated_cpus(void)
{
    int n = count_file("/sys/fs/cgroup/cpuset.cpus.effective");
    if (n < 0)
        n = count_file("/sys/fs/cgroup/cpuset/cpuset.effective_cpus");
    if (n < 0)
        n = count_file("/sys/fs/cgroup/cpuset/cpuset.cpus");
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int affine = CPU_COUNT(&set);
        /* A process that narrowed its own affinity (taskset) sees that instead. */
        if (affine > 0 && (n < 0 || affine < n))
            n = affine;
    }
    return n;
}

EXPORT long sysconf(int name)
{
    if (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF) {
        int n = allocated_cpus();
        if (n > 0)
            return n;
    }
    return __sysconf(name);
}

EXPORT int get_nprocs(void)
{
    int n = allocated_cpus();
    return n > 0 ? n : (int)__sysconf(_SC_NPROCESSORS_ONLN);
}

EXPORT int get_nprocs_conf(void)
{
    int n = allocated_cpus();
    return n > 0 ? n : (int)__sysconf(_SC_NPROCESSORS_CONF);
}
