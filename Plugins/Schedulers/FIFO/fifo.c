/*
 * fifo — Hangar's reference scheduler: first in, first out within priority.
 *
 * pick_next returns, among the pending sessions of the highest priority, the
 * one enqueued first (smallest created_at_us); equal times go to the lower
 * index. It keeps no state between calls, so instances are thread-safe; the
 * only mutable instance data is the last-error buffer, guarded by a mutex.
 *
 * num_retries_to_skip (0 = strict head-of-line blocking) lets sessions behind
 * a head that has failed to fit more than that many times go first, using the
 * attempts count the snapshot carries from ABI 1.1 on.
 *
 * Built with -DHANGAR_SCHEDULER_LIFO this is "lifo": the newest session first
 * (largest created_at_us; equal times go to the higher index, the later one).
 */
#ifdef HANGAR_SCHEDULER_LIFO
#define SCHED_NAME "lifo"
#define SCHED_DESCRIPTION "Last in, first out: the newest pending session of the highest priority runs next."
/* True if `t` (at a later index) should replace the current best time `best`. */
#define SCHED_BEFORE(t, best) ((t) >= (best))
#else
#define SCHED_NAME "fifo"
#define SCHED_DESCRIPTION "First in, first out: the oldest pending session of the highest priority runs next."
#define SCHED_BEFORE(t, best) ((t) < (best))
#endif
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

#define FIFO_ERR_MAX 512

#if defined(__GNUC__) || defined(__clang__)
#define FIFO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FIFO_PRINTF(f, a)
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

/* True if the struct's filler compiled a version that has `field` (fields beyond struct_size read as zero). */
#define FIFO_HAS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))

typedef struct fifo {
    const hangar_host_services *host;
    int64_t num_retries_to_skip; /* 0 = strict head-of-line */
    pthread_mutex_t err_lock;    /* guards err and err_len */
    size_t err_len;
    char err[FIFO_ERR_MAX];
} fifo;

static FIFO_PRINTF(3, 4) hangar_status fail(fifo *f, hangar_status st, const char *fmt, ...)
{
    char text[FIFO_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t n = strlen(text);
    pthread_mutex_lock(&f->err_lock);
    memcpy(f->err, text, n + 1);
    f->err_len = n;
    pthread_mutex_unlock(&f->err_lock);
    return st;
}

static size_t fifo_last_error(void *instance, char *buf, size_t buf_len)
{
    fifo *f = instance;
    if (!f) {
        if (buf && buf_len)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&f->err_lock);
    size_t n = f->err_len;
    if (buf && buf_len) {
        size_t c = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, f->err, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&f->err_lock);
    return n;
}

static hangar_status fifo_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    fifo *f = instance;
    if (!f)
        return HANGAR_E_INVALID_ARGUMENT;
    if (!input)
        return fail(f, HANGAR_E_INVALID_ARGUMENT, "pick_next: input is NULL");
    if (!out_index)
        return fail(f, HANGAR_E_INVALID_ARGUMENT, "pick_next: out_index is NULL");

    size_t count = FIFO_HAS(input, hangar_sched_input, session_count) ? input->session_count : 0;
    if (count == 0)
        return fail(f, HANGAR_E_NOTHING_TO_SCHEDULE, "pick_next: no pending sessions");
    const hangar_sched_session *sessions = FIFO_HAS(input, hangar_sched_input, sessions) ? input->sessions : NULL;
    size_t stride = FIFO_HAS(input, hangar_sched_input, session_stride) ? input->session_stride : 0;
    if (!sessions)
        return fail(f, HANGAR_E_INVALID_ARGUMENT, "pick_next: sessions is NULL but session_count is %zu", count);
    if (stride < sizeof(uint32_t) || stride % _Alignof(hangar_sched_session) != 0)
        return fail(f, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: session_stride %zu is not a valid element size (at least 4, a multiple of %zu)",
                    stride, (size_t)_Alignof(hangar_sched_session));

    /* Two candidates in one pass: the head of the queue, and the head among the sessions
     * that have not yet failed more than num_retries_to_skip times. With a limit, a head
     * that keeps failing to fit stops blocking the sessions behind it; if every session is
     * over the limit, the plain head runs so nothing starves. */
    size_t best = 0, eligible = SIZE_MAX;
    int32_t best_prio = 0, eligible_prio = 0;
    int64_t best_time = 0, eligible_time = 0;
    for (size_t i = 0; i < count; i++) {
        const hangar_sched_session *s = HANGAR_ARRAY_AT(hangar_sched_session, sessions, stride, i);
        if (s->struct_size > stride)
            return fail(f, HANGAR_E_INVALID_ARGUMENT,
                        "pick_next: session %zu has struct_size %" PRIu32 ", larger than session_stride %zu", i,
                        s->struct_size, stride);
        int32_t prio = FIFO_HAS(s, hangar_sched_session, priority) ? s->priority : 0;
        int64_t time = FIFO_HAS(s, hangar_sched_session, created_at_us) ? s->created_at_us : 0;
        uint32_t attempts = FIFO_HAS(s, hangar_sched_session, attempts) ? s->attempts : 0;
        /* Strict comparisons keep the lowest index among equals. */
        if (i == 0 || prio > best_prio || (prio == best_prio && SCHED_BEFORE(time, best_time))) {
            best = i;
            best_prio = prio;
            best_time = time;
        }
        if (f->num_retries_to_skip > 0 && (int64_t)attempts <= f->num_retries_to_skip &&
            (eligible == SIZE_MAX || prio > eligible_prio || (prio == eligible_prio && SCHED_BEFORE(time, eligible_time)))) {
            eligible = i;
            eligible_prio = prio;
            eligible_time = time;
        }
    }
    *out_index = eligible != SIZE_MAX ? eligible : best;
    return HANGAR_OK;
}

static FIFO_PRINTF(4, 5) hangar_status create_fail(char *err, size_t err_len, hangar_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

static hangar_status fifo_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                 char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out_instance)
        *out_instance = NULL;
    if (!host || !config_json || !out_instance)
        return create_fail(err, err_len, HANGAR_E_INVALID_ARGUMENT, SCHED_NAME ": create() got a NULL %s",
                           !host ? "host" : !config_json ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        host->struct_size < offsetof(hangar_host_services, config_count) + sizeof host->config_count ||
        !host->config_int || !host->config_count)
        return create_fail(err, err_len, HANGAR_E_INCOMPATIBLE,
                           SCHED_NAME ": the host services table is incompatible (ABI %" PRIu32 ".%" PRIu32
                           ", struct_size %" PRIu32 "); this plugin needs ABI 1.x config accessors",
                           HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                           host->struct_size);
    void *hc = host->host_context;

    int64_t retries = 0;
    hangar_status rc = host->config_int(hc, "num_retries_to_skip", &retries);
    bool has_retries = rc == HANGAR_OK;
    if (rc != HANGAR_OK && rc != HANGAR_E_NOT_FOUND)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           SCHED_NAME ": \"num_retries_to_skip\" must be a non-negative integer (0 = strict head-of-line)");
    if (retries < 0)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           SCHED_NAME ": \"num_retries_to_skip\" is %" PRId64 "; it must be 0 or more (0 = strict head-of-line)",
                           retries);
    int64_t keys = host->config_count(hc, "");
    if (keys > (int64_t)has_retries)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           SCHED_NAME ": unknown configuration key; the only key is \"num_retries_to_skip\"");

    fifo *f = calloc(1, sizeof *f);
    if (!f)
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, SCHED_NAME ": out of memory");
    if (pthread_mutex_init(&f->err_lock, NULL) != 0) {
        free(f);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, SCHED_NAME ": cannot initialise a mutex");
    }
    f->host = host;
    f->num_retries_to_skip = retries;
    *out_instance = f;
    return HANGAR_OK;
}

static void fifo_destroy(void *instance)
{
    fifo *f = instance;
    if (!f)
        return;
    pthread_mutex_destroy(&f->err_lock);
    free(f);
}

static const char fifo_schema[] =
    "{"
    "\"type\":\"object\","
    "\"additionalProperties\":false,"
    "\"properties\":{"
    "\"num_retries_to_skip\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,"
    "\"description\":\"How many failed placement attempts a session at the head of the queue gets before the "
    "scheduler may try the ones behind it; 0 = strict head-of-line. Accepted but not applied yet: the "
    "scheduler currently always behaves as with 0.\"}"
    "}"
    "}";

static const hangar_scheduler_functions fifo_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = fifo_create,
    .destroy = fifo_destroy,
    .last_error = fifo_last_error,
    .pick_next = fifo_pick_next,
};

static const hangar_plugin_descriptor fifo_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_SCHEDULER,
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = 0,
    .name = SCHED_NAME,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = SCHED_DESCRIPTION,
    .license = "Apache-2.0",
    .config_schema = fifo_schema,
    .static_slot_names = NULL,
    .functions = &fifo_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &fifo_descriptor;
}
