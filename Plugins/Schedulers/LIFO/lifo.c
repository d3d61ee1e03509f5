/*
 * lifo — last in, first out within priority.
 *
 * pick_next returns, among the pending sessions of the highest priority, the
 * one enqueued last (largest created_at_us); equal times go to the higher
 * index, the one the host listed later. It keeps no state between calls, so
 * instances are thread-safe; the only mutable instance data is the last-error
 * buffer, guarded by a mutex.
 *
 * Takes no configuration.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <hangar/scheduler.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIFO_ERR_MAX 512

#if defined(__GNUC__) || defined(__clang__)
#define LIFO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LIFO_PRINTF(f, a)
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

/* True if the struct's filler compiled a version that has `field` (fields beyond struct_size read as zero). */
#define LIFO_HAS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))

typedef struct lifo {
    const hangar_host_services *host;
    pthread_mutex_t err_lock; /* guards err and err_len */
    size_t err_len;
    char err[LIFO_ERR_MAX];
} lifo;

static LIFO_PRINTF(3, 4) hangar_status fail(lifo *l, hangar_status st, const char *fmt, ...)
{
    char text[LIFO_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t n = strlen(text);
    pthread_mutex_lock(&l->err_lock);
    memcpy(l->err, text, n + 1);
    l->err_len = n;
    pthread_mutex_unlock(&l->err_lock);
    return st;
}

static size_t lifo_last_error(void *instance, char *buf, size_t buf_len)
{
    lifo *l = instance;
    if (!l) {
        if (buf && buf_len)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&l->err_lock);
    size_t n = l->err_len;
    if (buf && buf_len) {
        size_t c = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, l->err, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&l->err_lock);
    return n;
}

static hangar_status lifo_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    lifo *l = instance;
    if (!l)
        return HANGAR_E_INVALID_ARGUMENT;
    if (!input)
        return fail(l, HANGAR_E_INVALID_ARGUMENT, "pick_next: input is NULL");
    if (!out_index)
        return fail(l, HANGAR_E_INVALID_ARGUMENT, "pick_next: out_index is NULL");

    size_t count = LIFO_HAS(input, hangar_sched_input, session_count) ? input->session_count : 0;
    if (count == 0)
        return fail(l, HANGAR_E_NOTHING_TO_SCHEDULE, "pick_next: no pending sessions");
    const hangar_sched_session *sessions = LIFO_HAS(input, hangar_sched_input, sessions) ? input->sessions : NULL;
    size_t stride = LIFO_HAS(input, hangar_sched_input, session_stride) ? input->session_stride : 0;
    if (!sessions)
        return fail(l, HANGAR_E_INVALID_ARGUMENT, "pick_next: sessions is NULL but session_count is %zu", count);
    if (stride < sizeof(uint32_t) || stride % _Alignof(hangar_sched_session) != 0)
        return fail(l, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: session_stride %zu is not a valid element size (at least 4, a multiple of %zu)",
                    stride, (size_t)_Alignof(hangar_sched_session));

    size_t best = 0;
    int32_t best_prio = 0;
    int64_t best_time = 0;
    for (size_t i = 0; i < count; i++) {
        const hangar_sched_session *s = HANGAR_ARRAY_AT(hangar_sched_session, sessions, stride, i);
        if (s->struct_size > stride)
            return fail(l, HANGAR_E_INVALID_ARGUMENT,
                        "pick_next: session %zu has struct_size %" PRIu32 ", larger than session_stride %zu", i,
                        s->struct_size, stride);
        int32_t prio = LIFO_HAS(s, hangar_sched_session, priority) ? s->priority : 0;
        int64_t time = LIFO_HAS(s, hangar_sched_session, created_at_us) ? s->created_at_us : 0;
        /* ">=" on the time lets a later index win among equals. */
        if (i == 0 || prio > best_prio || (prio == best_prio && time >= best_time)) {
            best = i;
            best_prio = prio;
            best_time = time;
        }
    }
    *out_index = best;
    return HANGAR_OK;
}

static LIFO_PRINTF(4, 5) hangar_status create_fail(char *err, size_t err_len, hangar_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

static hangar_status lifo_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                 char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out_instance)
        *out_instance = NULL;
    if (!host || !config_json || !out_instance)
        return create_fail(err, err_len, HANGAR_E_INVALID_ARGUMENT, "lifo: create() got a NULL %s",
                           !host ? "host" : !config_json ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        host->struct_size < offsetof(hangar_host_services, config_count) + sizeof host->config_count ||
        !host->config_count)
        return create_fail(err, err_len, HANGAR_E_INCOMPATIBLE,
                           "lifo: the host services table is incompatible (ABI %" PRIu32 ".%" PRIu32
                           ", struct_size %" PRIu32 "); this plugin needs ABI 1.x",
                           HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                           host->struct_size);
    int64_t keys = host->config_count(host->host_context, "");
    if (keys > 0)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "lifo: takes no configuration; remove the %" PRId64 " key(s) from its config", keys);

    lifo *l = calloc(1, sizeof *l);
    if (!l)
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "lifo: out of memory");
    if (pthread_mutex_init(&l->err_lock, NULL) != 0) {
        free(l);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "lifo: cannot initialise a mutex");
    }
    l->host = host;
    *out_instance = l;
    return HANGAR_OK;
}

static void lifo_destroy(void *instance)
{
    lifo *l = instance;
    if (!l)
        return;
    pthread_mutex_destroy(&l->err_lock);
    free(l);
}

static const char lifo_schema[] = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}";

static const hangar_scheduler_functions lifo_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = lifo_create,
    .destroy = lifo_destroy,
    .last_error = lifo_last_error,
    .pick_next = lifo_pick_next,
};

static const hangar_plugin_descriptor lifo_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_SCHEDULER,
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = 0,
    .name = "lifo",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Last in, first out: the newest pending session of the highest priority runs next.",
    .license = "Apache-2.0",
    .config_schema = lifo_schema,
    .static_slot_names = NULL,
    .functions = &lifo_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &lifo_descriptor;
}
