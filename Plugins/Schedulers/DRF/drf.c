/*
 * drf — dominant resource fairness across access keys.
 *
 * Each owner's dominant share is the largest fraction of the resource group
 * it occupies on any one slot: max over slots with total_capacity > 0 of
 * occupied / total_capacity. pick_next returns, among the pending sessions of
 * the highest priority, one whose owner has the lowest dominant share; equal
 * shares go to the session enqueued first (smallest created_at_us), then to
 * the lower index. Shares are compared as doubles, computed the same way for
 * every owner, so owners with equal occupancy tie exactly.
 *
 * It keeps no state between calls, so instances are thread-safe; the only
 * mutable instance data is the last-error buffer, guarded by a mutex.
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

#define DRF_ERR_MAX 512
/* Owner shares kept on the stack; more owners fall back to malloc. */
#define DRF_STACK_OWNERS 256

#if defined(__GNUC__) || defined(__clang__)
#define DRF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DRF_PRINTF(f, a)
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

/* True if the struct's filler compiled a version that has `field` (fields beyond struct_size read as zero). */
#define DRF_HAS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))
#define DRF_FIELD(ptr, type, field) (DRF_HAS(ptr, type, field) ? (ptr)->field : 0)

typedef struct drf {
    const hangar_host_services *host;
    pthread_mutex_t err_lock; /* guards err and err_len */
    size_t err_len;
    char err[DRF_ERR_MAX];
} drf;

static DRF_PRINTF(3, 4) hangar_status fail(drf *d, hangar_status st, const char *fmt, ...)
{
    char text[DRF_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t n = strlen(text);
    pthread_mutex_lock(&d->err_lock);
    memcpy(d->err, text, n + 1);
    d->err_len = n;
    pthread_mutex_unlock(&d->err_lock);
    return st;
}

static size_t drf_last_error(void *instance, char *buf, size_t buf_len)
{
    drf *d = instance;
    if (!d) {
        if (buf && buf_len)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&d->err_lock);
    size_t n = d->err_len;
    if (buf && buf_len) {
        size_t c = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, d->err, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&d->err_lock);
    return n;
}

static const char *slot_name(const hangar_sched_slots *sl, size_t k)
{
    return sl->names && sl->names[k] ? sl->names[k] : "?";
}

/*
 * Fills shares[0..owner_count) with each owner's dominant share, checking the
 * owner entries on the way. Returns HANGAR_OK or a failure already recorded.
 */
static hangar_status owner_shares(drf *d, const hangar_sched_input *input, const hangar_sched_slots *sl,
                                  const int64_t *total, size_t slots, double *shares)
{
    size_t count = input->owner_count, stride = input->owner_stride;
    for (size_t o = 0; o < count; o++) {
        const hangar_sched_owner *ow = HANGAR_ARRAY_AT(hangar_sched_owner, input->owners, stride, o);
        if (ow->struct_size > stride)
            return fail(d, HANGAR_E_INVALID_ARGUMENT,
                        "pick_next: owner %zu has struct_size %" PRIu32 ", larger than owner_stride %zu", o,
                        ow->struct_size, stride);
        const char *key = DRF_FIELD(ow, hangar_sched_owner, access_key);
        const int64_t *occ = DRF_FIELD(ow, hangar_sched_owner, occupied);
        if (slots && !occ)
            return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: owner %zu (%s) has a NULL occupied vector", o,
                        key ? key : "?");
        double share = 0.0;
        for (size_t k = 0; k < slots; k++) {
            if (occ[k] < 0)
                return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: owner %zu (%s) has a negative occupied amount of %s",
                            o, key ? key : "?", slot_name(sl, k));
            if (total[k] <= 0)
                continue;
            double s = (double)occ[k] / (double)total[k];
            if (s > share)
                share = s;
        }
        shares[o] = share;
    }
    return HANGAR_OK;
}

static hangar_status drf_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    drf *d = instance;
    if (!d)
        return HANGAR_E_INVALID_ARGUMENT;
    if (!input)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: input is NULL");
    if (!out_index)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: out_index is NULL");

    size_t count = DRF_HAS(input, hangar_sched_input, session_count) ? input->session_count : 0;
    if (count == 0)
        return fail(d, HANGAR_E_NOTHING_TO_SCHEDULE, "pick_next: no pending sessions");
    if (!DRF_HAS(input, hangar_sched_input, owner_stride))
        return fail(d, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: input->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_sched_input",
                    input->struct_size);
    const hangar_sched_session *sessions = input->sessions;
    size_t stride = input->session_stride;
    if (!sessions)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: sessions is NULL but session_count is %zu", count);
    if (stride < sizeof(uint32_t) || stride % _Alignof(hangar_sched_session) != 0)
        return fail(d, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: session_stride %zu is not a valid element size (at least 4, a multiple of %zu)",
                    stride, (size_t)_Alignof(hangar_sched_session));

    const hangar_sched_slots *sl = input->slots;
    if (!sl)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: input->slots is NULL");
    if (!DRF_HAS(sl, hangar_sched_slots, slot_count))
        return fail(d, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: slots->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_sched_slots",
                    sl->struct_size);
    size_t slots = sl->slot_count;
    const int64_t *total = input->total_capacity;
    if (slots && !total)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: total_capacity is NULL but slot_count is %zu", slots);
    for (size_t k = 0; k < slots; k++)
        if (total[k] < 0)
            return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: total_capacity of %s is negative", slot_name(sl, k));

    size_t owners = input->owner_count, owner_stride = input->owner_stride;
    if (owners && !input->owners)
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: owners is NULL but owner_count is %zu", owners);
    if (owners && (owner_stride < sizeof(uint32_t) || owner_stride % _Alignof(hangar_sched_owner) != 0))
        return fail(d, HANGAR_E_INVALID_ARGUMENT,
                    "pick_next: owner_stride %zu is not a valid element size (at least 4, a multiple of %zu)",
                    owner_stride, (size_t)_Alignof(hangar_sched_owner));
    if (owners > SIZE_MAX / sizeof(double))
        return fail(d, HANGAR_E_INVALID_ARGUMENT, "pick_next: owner_count %zu is too large", owners);

    double stack_shares[DRF_STACK_OWNERS];
    double *shares = owners <= DRF_STACK_OWNERS ? stack_shares : malloc(owners * sizeof *shares);
    if (!shares)
        return fail(d, HANGAR_E_INSUFFICIENT, "pick_next: out of memory");
    hangar_status rc = owner_shares(d, input, sl, total, slots, shares);

    size_t best = SIZE_MAX;
    int32_t best_prio = 0;
    double best_share = 0.0;
    int64_t best_time = 0;
    for (size_t i = 0; rc == HANGAR_OK && i < count; i++) {
        const hangar_sched_session *s = HANGAR_ARRAY_AT(hangar_sched_session, sessions, stride, i);
        if (s->struct_size > stride) {
            rc = fail(d, HANGAR_E_INVALID_ARGUMENT,
                      "pick_next: session %zu has struct_size %" PRIu32 ", larger than session_stride %zu", i,
                      s->struct_size, stride);
            break;
        }
        uint32_t owner = DRF_FIELD(s, hangar_sched_session, owner_index);
        if ((size_t)owner >= owners) {
            const char *sid = DRF_FIELD(s, hangar_sched_session, session_id);
            rc = fail(d, HANGAR_E_INVALID_ARGUMENT,
                      "pick_next: session %zu (%s) has owner_index %" PRIu32 ", out of range for %zu owners", i,
                      sid ? sid : "?", owner, owners);
            break;
        }
        int32_t prio = DRF_FIELD(s, hangar_sched_session, priority);
        int64_t time = DRF_FIELD(s, hangar_sched_session, created_at_us);
        double share = shares[owner];
        /* Strict comparisons keep the lowest index among equals. */
        if (best == SIZE_MAX || prio > best_prio ||
            (prio == best_prio && (share < best_share || (share == best_share && time < best_time)))) {
            best = i;
            best_prio = prio;
            best_share = share;
            best_time = time;
        }
    }
    if (shares != stack_shares)
        free(shares);
    if (rc == HANGAR_OK)
        *out_index = best;
    return rc;
}

static DRF_PRINTF(4, 5) hangar_status create_fail(char *err, size_t err_len, hangar_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

static hangar_status drf_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out_instance)
        *out_instance = NULL;
    if (!host || !config_json || !out_instance)
        return create_fail(err, err_len, HANGAR_E_INVALID_ARGUMENT, "drf: create() got a NULL %s",
                           !host ? "host" : !config_json ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        host->struct_size < offsetof(hangar_host_services, config_count) + sizeof host->config_count ||
        !host->config_count)
        return create_fail(err, err_len, HANGAR_E_INCOMPATIBLE,
                           "drf: the host services table is incompatible (ABI %" PRIu32 ".%" PRIu32
                           ", struct_size %" PRIu32 "); this plugin needs ABI 1.x",
                           HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                           host->struct_size);
    int64_t keys = host->config_count(host->host_context, "");
    if (keys > 0)
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           "drf: takes no configuration; remove the %" PRId64 " key(s) from its config", keys);

    drf *d = calloc(1, sizeof *d);
    if (!d)
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "drf: out of memory");
    if (pthread_mutex_init(&d->err_lock, NULL) != 0) {
        free(d);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, "drf: cannot initialise a mutex");
    }
    d->host = host;
    *out_instance = d;
    return HANGAR_OK;
}

static void drf_destroy(void *instance)
{
    drf *d = instance;
    if (!d)
        return;
    pthread_mutex_destroy(&d->err_lock);
    free(d);
}

static const char drf_schema[] = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}";

static const hangar_scheduler_functions drf_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = drf_create,
    .destroy = drf_destroy,
    .last_error = drf_last_error,
    .pick_next = drf_pick_next,
};

static const hangar_plugin_descriptor drf_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_SCHEDULER,
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = 0,
    .name = "drf",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Dominant resource fairness: the highest-priority session of the owner with the smallest "
                   "dominant share runs next.",
    .license = "Apache-2.0",
    .config_schema = drf_schema,
    .static_slot_names = NULL,
    .functions = &drf_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &drf_descriptor;
}
