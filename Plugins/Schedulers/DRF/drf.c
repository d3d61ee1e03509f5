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
 * It keeps no state at all (every instance is one static token), so it is
 * thread-safe. Takes no configuration: the schema allows no keys.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

/* Owner shares kept on the stack; more owners fall back to malloc. */
#define DRF_STACK_OWNERS 256

/* create() must hand out a non-NULL pointer; with no state, every instance is this one. */
static char drf_token;

/*
 * Fills shares[0..owners->count) with each owner's dominant share, checking
 * the owner entries on the way. Returns HANGAR_OK or a failure already recorded.
 */
static hangar_status owner_shares(const hs_owner_list *owners, const hangar_sched_slots *sl, const int64_t *total,
                                  size_t slots, double *shares)
{
    for (size_t o = 0; o < owners->count; o++) {
        const hangar_sched_owner *entry;
        hangar_status st = hs_owner_at(owners, o, &entry);
        if (st != HANGAR_OK)
            return st;
        hs_owner_view ow = hs_view_owner(entry);
        if (slots && !ow.occupied)
            return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: owner %zu (%s) has a NULL occupied vector", o,
                             hs_or_unknown(ow.access_key));
        double share = 0.0;
        for (size_t k = 0; k < slots; k++) {
            if (ow.occupied[k] < 0)
                return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                                 "pick_next: owner %zu (%s) has a negative occupied amount of %s", o,
                                 hs_or_unknown(ow.access_key), hs_slot_name(sl, k));
            if (total[k] <= 0)
                continue;
            double s = (double)ow.occupied[k] / (double)total[k];
            if (s > share)
                share = s;
        }
        shares[o] = share;
    }
    return HANGAR_OK;
}

/* The session to run: highest priority, then lowest owner share, then oldest, then lowest index. */
static hangar_status pick_fairest(const hs_session_list *sessions, size_t owners, const double *shares,
                                  size_t *out_index)
{
    size_t best = SIZE_MAX;
    int32_t best_prio = 0;
    double best_share = 0.0;
    int64_t best_time = 0;
    for (size_t i = 0; i < sessions->count; i++) {
        const hangar_sched_session *entry;
        hangar_status st = hs_session_at(sessions, i, &entry);
        if (st != HANGAR_OK)
            return st;
        uint32_t owner = HS_FIELD_OR(entry, hangar_sched_session, owner_index, 0);
        if ((size_t)owner >= owners)
            return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                             "pick_next: session %zu (%s) has owner_index %" PRIu32 ", out of range for %zu owners", i,
                             hs_or_unknown(HS_FIELD_OR(entry, hangar_sched_session, session_id, NULL)), owner, owners);
        int32_t prio = HS_FIELD_OR(entry, hangar_sched_session, priority, 0);
        int64_t time = HS_FIELD_OR(entry, hangar_sched_session, created_at_us, 0);
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
    *out_index = best;
    return HANGAR_OK;
}

static hangar_status drf_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    if (!instance)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: instance is NULL");
    hs_session_list sessions;
    hangar_status st = hs_sched_sessions(input, out_index, true, &sessions);
    if (st != HANGAR_OK)
        return st;

    const hangar_sched_slots *sl = input->slots;
    if ((st = hs_check_slots("pick_next", sl, HS_FIELD_END(hangar_sched_slots, slot_count))) != HANGAR_OK)
        return st;
    size_t slots = sl->slot_count;
    const int64_t *total = input->total_capacity;
    if (slots && !total)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: total_capacity is NULL but slot_count is %zu", slots);
    for (size_t k = 0; k < slots; k++)
        if (total[k] < 0)
            return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: total_capacity of %s is negative",
                             hs_slot_name(sl, k));

    hs_owner_list owners;
    if ((st = hs_sched_owners(input, &owners)) != HANGAR_OK)
        return st;
    if (owners.count > SIZE_MAX / sizeof(double))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: owner_count %zu is too large", owners.count);
    double stack_shares[DRF_STACK_OWNERS];
    double *shares = owners.count <= DRF_STACK_OWNERS ? stack_shares : malloc(owners.count * sizeof *shares);
    if (!shares)
        return HS_FAILED(HANGAR_E_INSUFFICIENT, "pick_next: out of memory");
    st = owner_shares(&owners, sl, total, slots, shares);
    if (st == HANGAR_OK)
        st = pick_fairest(&sessions, owners.count, shares, out_index);
    if (shares != stack_shares)
        free(shares);
    return st;
}

static hangar_status drf_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, "drf", host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK)
        *out_instance = &drf_token;
    return st;
}

static void drf_destroy(void *instance)
{
    (void)instance; /* the static token */
}

static const hangar_scheduler_functions drf_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = drf_create,
    .destroy = drf_destroy,
    .last_error = hs_last_error,
    .pick_next = drf_pick_next,
};

static const hangar_plugin_descriptor drf_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_SCHEDULER),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "drf",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Dominant resource fairness: the highest-priority session of the owner with the smallest "
                   "dominant share runs next.",
    .license = "Apache-2.0",
    .config_schema = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    .functions = &drf_functions,
};

HS_PLUGIN_ENTRY(drf_descriptor, 2)
