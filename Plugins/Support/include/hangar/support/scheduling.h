/*
 * Hangar plugin support — scheduler and agent-selector plumbing (scheduler.h).
 *
 * What it gives:
 *   - checked views of the snapshot: hs_sched_sessions / hs_session_at and
 *     hs_sched_owners / hs_owner_at / hs_view_owner for schedulers,
 *     hs_place_check / hs_view_agent for selectors. They check the stride
 *     and struct_size rules of plugin.h; fields beyond a struct's
 *     struct_size read as zero (HS_FIELD_OR, core.h).
 *   - the fit arithmetic every selector needs: hs_fits (occupied + request
 *     <= capacity on every slot, counting the session's earlier kernels),
 *     hs_miss (the agent closest to fitting, for the reason message) and
 *     hs_place_kernels, which places a session kernel by kernel (or all
 *     kernels on one agent) around a plugin's own choice of agent.
 *   - the two orderings that come in pairs of plugins, parameterised by
 *     direction: a queue by enqueue time within priority (hs_queue_*: fifo,
 *     lifo) and agents by free capacity read in resource-priority order
 *     (hs_priority_*: concentrated, dispersed), each with its config schema
 *     and create(), and a macro that defines a plugin's function table from
 *     them (HS_QUEUE_SCHEDULER, HS_PRIORITY_SELECTOR).
 *
 * pick_next runs over ~10,000 sessions and select_agents over ~1,000 agents
 * per decision, so everything is static inline (the direction, a constant at
 * each call site, folds into the loops) and nothing allocates, except the
 * heap fallbacks for inputs larger than the stack scratch (more than 64 slots,
 * or a multi-node session needing more than 512 scratch words).
 *
 * Failures are recorded with hs_fail (core.h), prefixed with the ABI call
 * ("pick_next: ...", "select_agents: ..."); the host shows a selector's
 * HANGAR_E_NO_AGENT message to operators as the reason a session waits.
 */
#ifndef HANGAR_SUPPORT_SCHEDULING_H
#define HANGAR_SUPPORT_SCHEDULING_H

#include <hangar/support/core.h>

/* ------------------------------------------------------------------------ */
/* Common                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * hs_fail with the status visible to the compiler. hs_fail is variadic, so
 * it is not inlined and a caller cannot see what it returns; the checks
 * below are inlined into hot loops followed by `if (st != HANGAR_OK) return
 * st;`, and with a constant status that folds into a plain return instead
 * of keeping the loop's state alive across the failure path.
 */
#define HS_FAILED(status, ...) (hs_fail((status), __VA_ARGS__), (hangar_status)(status))

/**
 * Inlined even at -O0 (debug builds of the plugins): for the per-session
 * accessor, which would otherwise cost a call per element there, and for a
 * loop body shared by two directions, so that each caller gets its own copy
 * with the direction folded in.
 */
#if defined(__GNUC__) || defined(__clang__)
#define HS_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define HS_ALWAYS_INLINE inline
#endif

/** `s`, or "?" where a message would print a NULL string. */
static inline const char *hs_or_unknown(const char *s)
{
    return s != NULL ? s : "?";
}

/** Name of slot `k` for a message; "?" when the host gave no name. */
static inline const char *hs_slot_name(const hangar_sched_slots *slots, size_t k)
{
    return slots->names != NULL && slots->names[k] != NULL ? slots->names[k] : "?";
}

/** Adds b to a, saturating at INT64_MAX (both non-negative, as the input checks guarantee). */
static inline int64_t hs_add_sat(int64_t a, int64_t b)
{
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

/**
 * The last step of a create() whose instance is its configuration: hands
 * out a malloc'd copy of `config` (`size` bytes) in *out_instance.
 */
static inline hangar_status hs_create_instance(const hs_create *c, const void *config, size_t size, void **out_instance)
{
    void *copy = malloc(size);
    if (copy == NULL)
        return hs_create_fail(c, HANGAR_E_INSUFFICIENT, "out of memory");
    memcpy(copy, config, size);
    *out_instance = copy;
    return HANGAR_OK;
}

/** Bytes of `type` up to the end of `field`: the struct_size a reader of that field needs. */
#define HS_FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/**
 * Checks an input's slots table: present, and its struct_size covering
 * `need` bytes (HS_FIELD_END of the last field the caller reads).
 */
static inline hangar_status hs_check_slots(const char *call, const hangar_sched_slots *slots, size_t need)
{
    if (slots == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "%s: input->slots is NULL", call);
    if (slots->struct_size < need)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                         "%s: slots->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_sched_slots", call,
                         slots->struct_size);
    return HANGAR_OK;
}

/**
 * Checks the stride of a boundary array. Every element starts with its
 * uint32_t struct_size and keeps the element's alignment; that each element
 * fits its stride is checked per element (hs_element_too_large).
 */
static inline hangar_status hs_check_stride(const char *call, const char *field, size_t stride, size_t align)
{
    if (stride < sizeof(uint32_t) || stride % align != 0)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                         "%s: %s %zu is not a valid element size (at least 4, a multiple of %zu)", call, field, stride,
                         align);
    return HANGAR_OK;
}

/**
 * Fails for element `i` of a `what` array ("session", "owner", "agent")
 * whose struct_size runs into the next element. Callers compare struct_size
 * with the stride themselves, so the loops make no call per element.
 */
static inline hangar_status hs_element_too_large(const char *call, const char *what, uint32_t struct_size,
                                                 size_t stride, size_t i)
{
    return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "%s: %s %zu has struct_size %" PRIu32 ", larger than %s_stride %zu",
                     call, what, i, struct_size, what, stride);
}

/* ------------------------------------------------------------------------ */
/* Scheduler input                                                           */
/* ------------------------------------------------------------------------ */

/** The pending sessions of a hangar_sched_input, checked by hs_sched_sessions. */
typedef struct hs_session_list {
    const hangar_sched_session *items;
    size_t count;
    size_t stride;
} hs_session_list;

/**
 * The checks every pick_next starts with: non-NULL arguments, a non-empty
 * queue (HANGAR_E_NOTHING_TO_SCHEDULE otherwise), a sessions array and a
 * valid stride. A scheduler that reads past session_stride (slots, owners)
 * passes `whole_input`: an input that ends before owner_stride is then
 * refused instead of reading those fields as zero.
 */
static inline hangar_status hs_sched_sessions(const hangar_sched_input *input, const size_t *out_index,
                                              bool whole_input, hs_session_list *list)
{
    if (input == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: input is NULL");
    if (out_index == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: out_index is NULL");
    list->count = HS_FIELD_OR(input, hangar_sched_input, session_count, 0);
    if (list->count == 0)
        return HS_FAILED(HANGAR_E_NOTHING_TO_SCHEDULE, "pick_next: no pending sessions");
    if (whole_input && !HS_HAS_FIELD(hangar_sched_input, owner_stride, input->struct_size))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                         "pick_next: input->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_sched_input",
                         input->struct_size);
    list->items = HS_FIELD_OR(input, hangar_sched_input, sessions, NULL);
    list->stride = HS_FIELD_OR(input, hangar_sched_input, session_stride, 0);
    if (list->items == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: sessions is NULL but session_count is %zu",
                         list->count);
    return hs_check_stride("pick_next", "session_stride", list->stride, _Alignof(hangar_sched_session));
}

/** Session `i` of a checked list, refused when its struct_size exceeds the stride. */
static HS_ALWAYS_INLINE hangar_status hs_session_at(const hs_session_list *list, size_t i,
                                                    const hangar_sched_session **out)
{
    const hangar_sched_session *s = HANGAR_ARRAY_AT(hangar_sched_session, list->items, list->stride, i);
    *out = s;
    if (s->struct_size > list->stride)
        return hs_element_too_large("pick_next", "session", s->struct_size, list->stride, i);
    return HANGAR_OK;
}

/** The owners of a hangar_sched_input, checked by hs_sched_owners. */
typedef struct hs_owner_list {
    const hangar_sched_owner *items;
    size_t count;
    size_t stride;
} hs_owner_list;

/** Checks the owners array of an input that hs_sched_sessions accepted with `whole_input`. */
static inline hangar_status hs_sched_owners(const hangar_sched_input *input, hs_owner_list *list)
{
    list->items = input->owners;
    list->count = input->owner_count;
    list->stride = input->owner_stride;
    if (list->count == 0)
        return HANGAR_OK;
    if (list->items == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: owners is NULL but owner_count is %zu", list->count);
    return hs_check_stride("pick_next", "owner_stride", list->stride, _Alignof(hangar_sched_owner));
}

/** Owner `i` of a checked list, refused when its struct_size exceeds the stride. */
static inline hangar_status hs_owner_at(const hs_owner_list *list, size_t i, const hangar_sched_owner **out)
{
    const hangar_sched_owner *o = HANGAR_ARRAY_AT(hangar_sched_owner, list->items, list->stride, i);
    *out = o;
    if (o->struct_size > list->stride)
        return hs_element_too_large("pick_next", "owner", o->struct_size, list->stride, i);
    return HANGAR_OK;
}

/** An owner with the fields beyond its struct_size read as zero. */
typedef struct hs_owner_view {
    const char *access_key;
    const int64_t *occupied;
} hs_owner_view;

static inline hs_owner_view hs_view_owner(const hangar_sched_owner *o)
{
    hs_owner_view v;
    v.access_key = HS_FIELD_OR(o, hangar_sched_owner, access_key, NULL);
    v.occupied = HS_FIELD_OR(o, hangar_sched_owner, occupied, NULL);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Queue schedulers: enqueue order within priority (fifo, lifo)              */
/* ------------------------------------------------------------------------ */

/** Which end of the queue runs first. */
typedef enum hs_queue_order {
    /** Smallest created_at_us first; equal times go to the lower index. */
    HS_OLDEST_FIRST,
    /** Largest created_at_us first; equal times go to the higher index (the later one). */
    HS_NEWEST_FIRST,
} hs_queue_order;

/** A queue scheduler instance: its configuration. */
typedef struct hs_queue {
    /** Failed attempts after which a head stops blocking the sessions behind it; 0 = strict head-of-line. */
    int64_t num_retries_to_skip;
} hs_queue;

/** The config schema of a queue scheduler; hs_queue_create reads what it declares. */
#define HS_QUEUE_SCHEMA                                                                                          \
    "{"                                                                                                          \
    "\"type\":\"object\","                                                                                       \
    "\"additionalProperties\":false,"                                                                            \
    "\"properties\":{"                                                                                           \
    "\"num_retries_to_skip\":{\"type\":\"integer\",\"minimum\":0,\"default\":0,"                                 \
    "\"description\":\"How many failed placement attempts a session at the head of the queue gets before the "   \
    "scheduler may try the ones behind it; 0 = strict head-of-line. When every pending session has failed more " \
    "often than that, the head runs anyway.\"}"                                                                  \
    "}"                                                                                                          \
    "}"

/**
 * create() of a queue scheduler. The schema's default, minimum and
 * additionalProperties (applied and checked by a 1.2 host) leave nothing to
 * check but the read itself.
 */
static inline hangar_status hs_queue_create(const char *plugin, const hangar_host_services *host,
                                            const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    hs_queue q;
    hangar_status st = hs_create_begin(&c, plugin, host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK && (st = hs_cfg_int(&c, "num_retries_to_skip", &q.num_retries_to_skip)) == HANGAR_OK)
        st = hs_create_instance(&c, &q, sizeof q, out_instance);
    return st;
}

/**
 * pick_next of a queue scheduler: among the sessions of the highest
 * priority, the first in `order`. Keeps no state, so it is thread-safe.
 */
static inline hangar_status hs_queue_pick(const hs_queue *q, const hangar_sched_input *input, hs_queue_order order,
                                          size_t *out_index)
{
    if (q == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: instance is NULL");
    hs_session_list list;
    hangar_status st = hs_sched_sessions(input, out_index, false, &list);
    if (st != HANGAR_OK)
        return st;

    /* Two candidates in one pass: the head of the queue, and the head among the sessions
     * that have not yet failed more than num_retries_to_skip times. With a limit, a head
     * that keeps failing to fit stops blocking the sessions behind it; if every session is
     * over the limit, the plain head runs so nothing starves. */
    int64_t skip = q->num_retries_to_skip;
    /* Whether a later session goes before the current best of its priority: strictly older
     * for oldest-first (ties keep the lower index), as new or newer for newest-first (ties
     * go to the later index). */
    bool newest = order == HS_NEWEST_FIRST;
    size_t best = 0, eligible = SIZE_MAX;
    int32_t best_prio = 0, eligible_prio = 0;
    int64_t best_time = 0, eligible_time = 0;
    for (size_t i = 0; i < list.count; i++) {
        const hangar_sched_session *s;
        if ((st = hs_session_at(&list, i, &s)) != HANGAR_OK)
            return st;
        int32_t prio = HS_FIELD_OR(s, hangar_sched_session, priority, 0);
        int64_t time = HS_FIELD_OR(s, hangar_sched_session, created_at_us, 0);
        uint32_t attempts = HS_FIELD_OR(s, hangar_sched_session, attempts, 0);
        if (i == 0 || prio > best_prio || (prio == best_prio && (newest ? time >= best_time : time < best_time))) {
            best = i;
            best_prio = prio;
            best_time = time;
        }
        if (skip > 0 && (int64_t)attempts <= skip &&
            (eligible == SIZE_MAX || prio > eligible_prio ||
             (prio == eligible_prio && (newest ? time >= eligible_time : time < eligible_time)))) {
            eligible = i;
            eligible_prio = prio;
            eligible_time = time;
        }
    }
    *out_index = eligible != SIZE_MAX ? eligible : best;
    return HANGAR_OK;
}

/**
 * Defines the function table `<prefix>_functions` (with `<prefix>_create`
 * and `<prefix>_pick_next`) of the queue scheduler named #prefix that
 * serves the queue in `order`. Its config schema is HS_QUEUE_SCHEMA; the
 * instance is one malloc'd hs_queue, so destroy is free().
 */
#define HS_QUEUE_SCHEDULER(prefix, order)                                                                       \
    static hangar_status prefix##_create(const hangar_host_services *host, const char *config_json,            \
                                         void **out_instance, char *err, size_t err_len)                       \
    {                                                                                                          \
        return hs_queue_create(#prefix, host, config_json, out_instance, err, err_len);                         \
    }                                                                                                          \
    static hangar_status prefix##_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index) \
    {                                                                                                          \
        return hs_queue_pick(instance, input, (order), out_index);                                             \
    }                                                                                                          \
    static const hangar_scheduler_functions prefix##_functions = {                                             \
        .struct_size = sizeof(hangar_scheduler_functions),                                                     \
        .create = prefix##_create,                                                                             \
        .destroy = free,                                                                                       \
        .last_error = hs_last_error,                                                                           \
        .pick_next = prefix##_pick_next,                                                                       \
    };

/* ------------------------------------------------------------------------ */
/* Selector input                                                            */
/* ------------------------------------------------------------------------ */

/** A candidate agent with the fields beyond its struct_size read as zero. */
typedef struct hs_agent_view {
    const char *id;
    const char *arch;
    const int64_t *capacity;
    const int64_t *occupied;
    uint32_t kernels;
} hs_agent_view;

static inline hs_agent_view hs_view_agent(const hangar_select_agent *a)
{
    hs_agent_view v;
    v.id = HS_FIELD_OR(a, hangar_select_agent, agent_id, NULL);
    v.arch = HS_FIELD_OR(a, hangar_select_agent, architecture, NULL);
    v.capacity = HS_FIELD_OR(a, hangar_select_agent, capacity, NULL);
    v.occupied = HS_FIELD_OR(a, hangar_select_agent, occupied, NULL);
    v.kernels = HS_FIELD_OR(a, hangar_select_agent, kernel_count, 0);
    return v;
}

/** True if the agent can run `arch` (NULL: the session takes any architecture). */
static inline bool hs_agent_matches(const hs_agent_view *a, const char *arch)
{
    return arch == NULL || (a->arch != NULL && strcmp(a->arch, arch) == 0);
}

/** A select_agents input after hs_place_check: every array checked, every amount non-negative. */
typedef struct hs_place_input {
    const hangar_sched_slots *slot_info;
    size_t slots;
    size_t kernels;
    /** kernels rows of `slots` amounts; may be NULL when slots is 0. */
    const int64_t *requests;
    const hangar_select_agent *agents;
    size_t agent_count;
    size_t agent_stride;
    const char *session_id;
    /** NULL: any architecture. */
    const char *architecture;
    bool single_node;
} hs_place_input;

/** Agent `i` of a checked input. */
static inline hs_agent_view hs_place_agent(const hs_place_input *in, size_t i)
{
    return hs_view_agent(HANGAR_ARRAY_AT(hangar_select_agent, in->agents, in->agent_stride, i));
}

/**
 * The checks every select_agents starts with, in the order scheduler.h
 * lists its rules: non-NULL arguments, an ABI 1.0 input and slots table,
 * kernel requests that are present and non-negative, and candidates whose
 * stride, struct_size and vectors are sound (capacity and occupied
 * non-negative, so the fit arithmetic cannot overflow). Fills *in.
 */
static inline hangar_status hs_place_check(const hangar_select_input *input, const size_t *out_agent_indices,
                                           hs_place_input *in)
{
    if (input == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: input is NULL");
    if (out_agent_indices == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: out_agent_indices is NULL");
    if (!HS_HAS_FIELD(hangar_select_input, agent_stride, input->struct_size))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT,
                         "select_agents: input->struct_size %" PRIu32
                         " is too small for an ABI 1.0 hangar_select_input",
                         input->struct_size);

    const hangar_sched_slots *sl = input->slots;
    hangar_status st = hs_check_slots("select_agents", sl, HS_FIELD_END(hangar_sched_slots, types));
    if (st != HANGAR_OK)
        return st;
    size_t slots = sl->slot_count;
    if (slots && (sl->names == NULL || sl->types == NULL))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: slots->%s is NULL but slot_count is %zu",
                         sl->names == NULL ? "names" : "types", slots);
    size_t kernels = input->kernel_count;
    if (kernels == 0)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count is 0");
    if (slots && kernels > SIZE_MAX / slots / sizeof(int64_t))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count %zu is too large", kernels);
    const int64_t *reqs = input->kernel_requests;
    if (slots && reqs == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_requests is NULL");
    for (size_t i = 0; i < kernels * slots; i++)
        if (reqs[i] < 0)
            return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel %zu requests a negative amount of %s",
                             i / slots, hs_slot_name(sl, i % slots));

    size_t count = input->agent_count, stride = input->agent_stride;
    const hangar_select_agent *agents = input->agents;
    if (count && agents == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: agents is NULL but agent_count is %zu", count);
    if (count &&
        (st = hs_check_stride("select_agents", "agent_stride", stride, _Alignof(hangar_select_agent))) != HANGAR_OK)
        return st;
    for (size_t i = 0; i < count; i++) {
        const hangar_select_agent *ap = HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, i);
        if (ap->struct_size > stride)
            return hs_element_too_large("select_agents", "agent", ap->struct_size, stride, i);
        hs_agent_view a = hs_view_agent(ap);
        if (slots && (a.capacity == NULL || a.occupied == NULL))
            return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: agent %zu (%s) has a NULL %s vector", i,
                             hs_or_unknown(a.id), a.capacity == NULL ? "capacity" : "occupied");
        for (size_t k = 0; k < slots; k++)
            if (a.capacity[k] < 0 || a.occupied[k] < 0)
                return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: agent %zu (%s) has a negative %s of %s", i,
                                 hs_or_unknown(a.id), a.capacity[k] < 0 ? "capacity" : "occupied amount",
                                 hs_slot_name(sl, k));
    }

    in->slot_info = sl;
    in->slots = slots;
    in->kernels = kernels;
    in->requests = reqs;
    in->agents = agents;
    in->agent_count = count;
    in->agent_stride = stride;
    in->session_id = input->session_id;
    in->architecture = input->architecture;
    in->single_node = input->single_node != 0;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Fit                                                                       */
/* ------------------------------------------------------------------------ */

/** What this session's earlier kernels took on each agent they went to (multi-node placement). */
typedef struct hs_taken {
    /** Distinct agents so far. */
    size_t used;
    /** [used] agent indices. */
    size_t *agent_of;
    /** [used][slots] amounts taken on them. */
    int64_t *amounts;
} hs_taken;

/** The amounts this session already took on `agent`, or NULL (none, or no `taken` at all). */
static inline int64_t *hs_taken_on(const hs_taken *taken, size_t agent, size_t slots)
{
    if (taken == NULL)
        return NULL;
    for (size_t u = 0; u < taken->used; u++)
        if (taken->agent_of[u] == agent)
            return taken->amounts + u * slots;
    return NULL;
}

/** Occupied amount of slot `k`, raised by `extra` (the session's earlier kernels there, or NULL), saturating. */
static inline int64_t hs_occupied(const hs_agent_view *a, const int64_t *extra, size_t k)
{
    return extra != NULL ? hs_add_sat(a->occupied[k], extra[k]) : a->occupied[k];
}

/** How far an agent is from fitting a request, to name the closest one in the reason. */
typedef struct hs_shortage {
    /** Number of slots that are short. */
    size_t slots_short;
    /** Sum over the short slots of the missing fraction of the request (1 for a slot requested as 0). */
    double missing;
    /** First short slot. */
    size_t first;
} hs_shortage;

/**
 * True if `req` fits an agent whose occupancy is raised by `extra`: for
 * every slot, occupied + request <= capacity, so a slot the agent has no
 * capacity for can only be requested as 0, and an agent already over its
 * capacity takes nothing. False with *sh saying what is short.
 */
static inline bool hs_fits(const hs_agent_view *a, const int64_t *extra, const int64_t *req, size_t slots,
                           hs_shortage *sh)
{
    sh->slots_short = 0;
    sh->missing = 0.0;
    sh->first = 0;
    for (size_t k = 0; k < slots; k++) {
        /* capacity, occupied and req are non-negative (hs_place_check), so this cannot overflow. */
        int64_t room = a->capacity[k] - hs_occupied(a, extra, k);
        if (req[k] > room) {
            if (sh->slots_short++ == 0)
                sh->first = k;
            sh->missing += req[k] > 0 ? (double)(req[k] - (room > 0 ? room : 0)) / (double)req[k] : 1.0;
        }
    }
    return sh->slots_short == 0;
}

/** Why a choice found no agent, for the reason message (hs_miss_begin, then hs_miss_note per matching agent). */
typedef struct hs_miss {
    /** No candidate has the session's architecture. */
    bool none_match;
    /** The matching agent closest to fitting; SIZE_MAX while there is none. */
    size_t closest;
    /** Its shortage; closest_by.first is the slot the message names. */
    hs_shortage closest_by;
} hs_miss;

static inline void hs_miss_begin(hs_miss *m)
{
    m->none_match = true;
    m->closest = SIZE_MAX;
    m->closest_by.slots_short = 0;
    m->closest_by.missing = 0.0;
    m->closest_by.first = 0;
}

/**
 * Notes that matching agent `i` does not fit by `sh`: the closest is the one
 * with the fewest short slots, then the smallest missing fraction, then the
 * lowest index (compared explicitly, as a scan may start mid-list).
 */
static inline void hs_miss_note(hs_miss *m, size_t i, const hs_shortage *sh)
{
    const hs_shortage *c = &m->closest_by;
    if (m->closest == SIZE_MAX || sh->slots_short < c->slots_short ||
        (sh->slots_short == c->slots_short &&
         (sh->missing < c->missing || (sh->missing == c->missing && i < m->closest)))) {
        m->closest = i;
        m->closest_by = *sh;
    }
}

/**
 * Records the HANGAR_E_NO_AGENT reason for request `req` (`what`: "its
 * kernel", "kernel 1 of 4", ...): no candidates, none with the architecture,
 * or the closest agent and by how much it is short on its first short slot.
 */
static inline hangar_status hs_no_agent(const hs_place_input *in, const hs_taken *taken, const int64_t *req,
                                        const char *what, const hs_miss *miss)
{
    const char *sid = hs_or_unknown(in->session_id);
    if (in->agent_count == 0)
        return HS_FAILED(HANGAR_E_NO_AGENT, "session %s: there are no candidate agents", sid);
    if (miss->none_match)
        return HS_FAILED(HANGAR_E_NO_AGENT, "session %s: none of the %zu candidate agents has architecture %s", sid,
                         in->agent_count, hs_or_unknown(in->architecture));
    size_t slot = miss->closest_by.first;
    hs_agent_view a = hs_place_agent(in, miss->closest);
    int64_t occ = hs_occupied(&a, hs_taken_on(taken, miss->closest, in->slots), slot);
    int64_t free_amount = a.capacity[slot] - occ;
    uint32_t type = in->slot_info->types[slot];
    const char *name = hs_slot_name(in->slot_info, slot);
    char need[48], have[48], by[48];
    hs_format_amount(need, sizeof need, req[slot], type);
    hs_format_amount(have, sizeof have, free_amount > 0 ? free_amount : 0, type);
    if (req[slot] == 0) {
        hs_format_amount(by, sizeof by, occ - a.capacity[slot], type);
        return HS_FAILED(HANGAR_E_NO_AGENT,
                         "session %s: no agent fits %s; the closest, %s, is already over its %s capacity by %s", sid,
                         what, hs_or_unknown(a.id), name, by);
    }
    hs_format_amount(by, sizeof by, req[slot] - (free_amount > 0 ? free_amount : 0), type);
    return HS_FAILED(HANGAR_E_NO_AGENT,
                     "session %s: no agent fits %s; the closest, %s, is short of %s by %s (needs %s, has %s free)", sid,
                     what, hs_or_unknown(a.id), name, by, need, have);
}

/* ------------------------------------------------------------------------ */
/* Placement                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * A selector's choice of agent for one request `req` (in->slots amounts):
 * returns the agent index, or SIZE_MAX after filling *miss (hs_miss_begin /
 * hs_miss_note; *miss is read only after SIZE_MAX). `taken` is NULL when all kernels go to one agent; otherwise
 * raise each agent's occupancy by hs_taken_on(taken, i, in->slots).
 */
typedef size_t (*hs_agent_chooser)(void *ctx, const hs_place_input *in, const hs_taken *taken, const int64_t *req,
                                   hs_miss *miss);

/** int64 scratch words hs_place_kernels keeps on the stack; more fall back to malloc. */
#define HS_PLACE_STACK_WORDS 512
/** Slots whose summed request hs_place_kernels keeps on the stack; more fall back to malloc. */
#define HS_PLACE_STACK_SLOTS 64

/**
 * Places the session of a checked input with `choose`. A single-node or
 * one-kernel session places its summed request on one agent. A multi-node
 * session is placed kernel by kernel, counting what earlier kernels took on
 * each agent, so several kernels may share an agent but never overfill it.
 * Writes out_agent_indices only on success; on failure records the reason
 * for the request that found no agent.
 */
static inline hangar_status hs_place_kernels(const hs_place_input *in, hs_agent_chooser choose, void *ctx,
                                             size_t *out_agent_indices)
{
    size_t slots = in->slots, kernels = in->kernels;
    const int64_t *reqs = in->requests;
    hs_miss miss;

    if (in->single_node || kernels == 1) {
        int64_t stack_sum[HS_PLACE_STACK_SLOTS] = {0};
        const int64_t *sum = reqs;
        int64_t *heap = NULL;
        if (kernels > 1) {
            int64_t *acc = slots <= HS_PLACE_STACK_SLOTS ? stack_sum : (heap = malloc(slots * sizeof *heap));
            if (acc == NULL)
                return HS_FAILED(HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
            for (size_t k = 0; k < slots; k++) {
                int64_t t = 0;
                for (size_t j = 0; j < kernels; j++)
                    t = hs_add_sat(t, reqs[j * slots + k]);
                acc[k] = t;
            }
            sum = acc;
        }
        size_t best = choose(ctx, in, NULL, sum, &miss);
        hangar_status rc = HANGAR_OK;
        if (best == SIZE_MAX) {
            char what[64];
            if (kernels > 1)
                snprintf(what, sizeof what, "its %zu kernels together", kernels);
            else
                snprintf(what, sizeof what, "its kernel");
            rc = hs_no_agent(in, NULL, sum, what, &miss);
        } else {
            for (size_t j = 0; j < kernels; j++)
                out_agent_indices[j] = best;
        }
        free(heap);
        return rc;
    }

    if (kernels > SIZE_MAX / sizeof(int64_t) / (slots + 2))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count %zu is too large", kernels);
    size_t words = kernels * (slots + 2);
    int64_t stack_words[HS_PLACE_STACK_WORDS];
    int64_t *scratch = words <= HS_PLACE_STACK_WORDS ? stack_words : malloc(words * sizeof *scratch);
    if (scratch == NULL)
        return HS_FAILED(HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
    _Static_assert(sizeof(size_t) <= sizeof(int64_t), "size_t must fit in an int64 scratch word");
    /* Layout: agent_of[kernels], amounts[kernels][slots], assign[kernels]. */
    hs_taken taken = {0, (size_t *)(void *)scratch, scratch + kernels};
    size_t *assign = (size_t *)(void *)(scratch + kernels + kernels * slots);
    hangar_status rc = HANGAR_OK;
    for (size_t j = 0; j < kernels; j++) {
        const int64_t *req = slots ? reqs + j * slots : reqs; /* reqs may be NULL when there are no slots */
        size_t best = choose(ctx, in, &taken, req, &miss);
        if (best == SIZE_MAX) {
            char what[64];
            snprintf(what, sizeof what, "kernel %zu of %zu", j, kernels);
            rc = hs_no_agent(in, &taken, req, what, &miss);
            break;
        }
        int64_t *t = hs_taken_on(&taken, best, slots);
        if (t == NULL) {
            taken.agent_of[taken.used] = best;
            t = taken.amounts + taken.used * slots;
            memset(t, 0, slots * sizeof *t);
            taken.used++;
        }
        for (size_t k = 0; k < slots; k++)
            t[k] = hs_add_sat(t[k], req[k]);
        assign[j] = best;
    }
    if (rc == HANGAR_OK)
        memcpy(out_agent_indices, assign, kernels * sizeof *assign);
    if (scratch != stack_words)
        free(scratch);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Priority selectors: free capacity in resource-priority order              */
/* (concentrated, dispersed)                                                 */
/* ------------------------------------------------------------------------ */

/** Most resource-priority groups (the schema's maxItems). */
#define HS_MAX_PRIORITY_GROUPS 16
/** Size of a group name buffer: names are at most HS_PRIORITY_GROUP_NAME - 1 characters. */
#define HS_PRIORITY_GROUP_NAME 32

/** Which agent wins among those that fit, comparing free amounts group by group. */
typedef enum hs_agent_order {
    /** The least free capacity: pack sessions tightly. */
    HS_LEAST_FREE_FIRST,
    /** The most free capacity: spread sessions out. */
    HS_MOST_FREE_FIRST,
} hs_agent_order;

/** A priority selector instance: its resource-priority groups, most significant first. */
typedef struct hs_priority_groups {
    size_t count;
    char name[HS_MAX_PRIORITY_GROUPS][HS_PRIORITY_GROUP_NAME];
} hs_priority_groups;

/** The config schema of a priority selector; the default is Backend.AI's resource priority. */
#define HS_PRIORITY_SCHEMA                                                                                       \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"                                       \
    "\"resource_priority\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":16,"                  \
    "\"default\":[\"cuda\",\"rocm\",\"tpu\",\"cpu\",\"mem\"],"                                                   \
    "\"description\":\"Slot groups compared in order (a group covers <group> and <group>.*); slots in no group " \
    "come last.\"}}}"

/**
 * create() of a priority selector: reads resource_priority. The host has
 * applied its default and checked type and maxItems; what the schema cannot
 * say is checked here: a group name has no dots (a group matches "<group>"
 * and "<group>.*"), is not empty, and fits HS_PRIORITY_GROUP_NAME.
 */
static inline hangar_status hs_priority_create(const char *plugin, const hangar_host_services *host,
                                               const char *config_json, void **out_instance, char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, plugin, host, config_json, out_instance, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    int64_t listed = host->config_count(host->host_context, "resource_priority");
    /* Only a host that broke its schema guarantee gets here; the bound keeps it from overrunning the table. */
    if (listed < 0 || listed > HS_MAX_PRIORITY_GROUPS)
        return hs_cfg_problem(&c, "resource_priority", HANGAR_E_INVALID_ARGUMENT, "an array of at most 16 slot groups");
    hs_priority_groups g;
    for (g.count = 0; g.count < (size_t)listed; g.count++) {
        char path[48], *name = g.name[g.count];
        size_t len = 0;
        snprintf(path, sizeof path, "resource_priority.%zu", g.count);
        st = host->config_string(host->host_context, path, name, HS_PRIORITY_GROUP_NAME, &len);
        if (st != HANGAR_OK || len == 0 || strchr(name, '.') != NULL)
            return hs_create_fail(&c, HANGAR_E_INVALID_CONFIG,
                                  "%s must be a slot group name such as \"cuda\" or \"cpu\" "
                                  "(no dots, under %d characters)",
                                  path, HS_PRIORITY_GROUP_NAME);
    }
    return hs_create_instance(&c, &g, sizeof g, out_instance);
}

/** Index of the group slot `name` belongs to ("<group>" or "<group>.*"); g->count for a slot in no group. */
static inline size_t hs_slot_group(const hs_priority_groups *g, const char *name)
{
    if (name == NULL)
        return g->count;
    for (size_t i = 0; i < g->count; i++) {
        size_t n = strlen(g->name[i]);
        if (strncmp(name, g->name[i], n) == 0 && (name[n] == '\0' || name[n] == '.'))
            return i;
    }
    return g->count;
}

/** What the priority choosers work with: the groups and each slot's group. */
typedef struct hs_priority_ctx {
    const hs_priority_groups *groups;
    const size_t *group_of;
} hs_priority_ctx;

/**
 * The ordering key of an agent: its free amount per group, after `extra`
 * (the session's earlier kernels there); the last entry sums the slots in
 * no group.
 */
static inline void hs_priority_key(const hs_agent_view *a, const int64_t *extra, const size_t *group_of, size_t slots,
                                   size_t groups, int64_t *key)
{
    memset(key, 0, (groups + 1) * sizeof *key);
    for (size_t k = 0; k < slots; k++) {
        int64_t room = a->capacity[k] - hs_occupied(a, extra, k);
        key[group_of[k]] = hs_add_sat(key[group_of[k]], room > 0 ? room : 0);
    }
}

/** True if key `a` orders strictly before key `b` (n entries) in `order`: ties keep the earlier candidate. */
static inline bool hs_priority_before(hs_agent_order order, const int64_t *a, const int64_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return order == HS_MOST_FREE_FIRST ? a[i] > b[i] : a[i] < b[i];
    return false;
}

/**
 * Among the agents with the architecture that fit, the first by free
 * capacity in resource-priority order (Backend.AI's concentrated and
 * dispersed selectors); ties go to the lower index. Called through
 * hs_priority_choose_least / _most, so `order` is a constant in the loop.
 */
static HS_ALWAYS_INLINE size_t hs_priority_choose(const hs_priority_ctx *p, hs_agent_order order,
                                                  const hs_place_input *in, const hs_taken *taken, const int64_t *req,
                                                  hs_miss *miss)
{
    /* Inputs in locals and the miss in a local stored only on failure: stores through `miss`
     * could alias `in` and `p`, and would make the loop reload them for every agent. */
    const hangar_select_agent *agents = in->agents;
    size_t count = in->agent_count, stride = in->agent_stride, slots = in->slots, groups = p->groups->count;
    const char *arch = in->architecture;
    const size_t *group_of = p->group_of;
    size_t best = SIZE_MAX, n = groups + 1;
    int64_t best_key[HS_MAX_PRIORITY_GROUPS + 1], key[HS_MAX_PRIORITY_GROUPS + 1];
    hs_miss m;
    hs_miss_begin(&m);
    for (size_t i = 0; i < count; i++) {
        hs_agent_view a = hs_view_agent(HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, i));
        if (!hs_agent_matches(&a, arch))
            continue;
        m.none_match = false;
        hs_shortage sh;
        const int64_t *extra = hs_taken_on(taken, i, slots);
        if (!hs_fits(&a, extra, req, slots, &sh)) {
            hs_miss_note(&m, i, &sh);
            continue;
        }
        hs_priority_key(&a, extra, group_of, slots, groups, key);
        if (best == SIZE_MAX || hs_priority_before(order, key, best_key, n)) {
            best = i;
            memcpy(best_key, key, n * sizeof *key);
        }
    }
    if (best == SIZE_MAX)
        *miss = m;
    return best;
}

/** An hs_agent_chooser (ctx: hs_priority_ctx) packing: the least free capacity first. */
static inline size_t hs_priority_choose_least(void *ctx, const hs_place_input *in, const hs_taken *taken,
                                              const int64_t *req, hs_miss *miss)
{
    return hs_priority_choose(ctx, HS_LEAST_FREE_FIRST, in, taken, req, miss);
}

/** An hs_agent_chooser (ctx: hs_priority_ctx) spreading: the most free capacity first. */
static inline size_t hs_priority_choose_most(void *ctx, const hs_place_input *in, const hs_taken *taken,
                                             const int64_t *req, hs_miss *miss)
{
    return hs_priority_choose(ctx, HS_MOST_FREE_FIRST, in, taken, req, miss);
}

/** select_agents of a priority selector: checks the input, groups the slots and places the kernels. Thread-safe. */
static HS_ALWAYS_INLINE hangar_status hs_priority_place(const hs_priority_groups *g, hs_agent_order order,
                                                        const hangar_select_input *input, size_t *out_agent_indices)
{
    if (g == NULL)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: instance is NULL");
    hs_place_input in;
    hangar_status st = hs_place_check(input, out_agent_indices, &in);
    if (st != HANGAR_OK)
        return st;
    size_t stack_groups[HS_PLACE_STACK_SLOTS];
    size_t *group_of = in.slots <= HS_PLACE_STACK_SLOTS ? stack_groups : malloc(in.slots * sizeof *group_of);
    if (group_of == NULL)
        return HS_FAILED(HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
    for (size_t k = 0; k < in.slots; k++)
        group_of[k] = hs_slot_group(g, in.slot_info->names[k]);
    hs_priority_ctx ctx = {g, group_of};
    st = hs_place_kernels(&in, order == HS_MOST_FREE_FIRST ? hs_priority_choose_most : hs_priority_choose_least, &ctx,
                          out_agent_indices);
    if (group_of != stack_groups)
        free(group_of);
    return st;
}

/**
 * Defines the function table `<prefix>_functions` (with `<prefix>_create`
 * and `<prefix>_select_agents`) of the priority selector named #prefix that
 * prefers agents in `order`. Its config schema is HS_PRIORITY_SCHEMA; the
 * instance is one malloc'd hs_priority_groups, so destroy is free().
 */
#define HS_PRIORITY_SELECTOR(prefix, order)                                                                     \
    static hangar_status prefix##_create(const hangar_host_services *host, const char *config_json,            \
                                         void **out_instance, char *err, size_t err_len)                       \
    {                                                                                                          \
        return hs_priority_create(#prefix, host, config_json, out_instance, err, err_len);                      \
    }                                                                                                          \
    static hangar_status prefix##_select_agents(void *instance, const hangar_select_input *input,             \
                                                size_t *out_agent_indices)                                     \
    {                                                                                                          \
        return hs_priority_place(instance, (order), input, out_agent_indices);                                 \
    }                                                                                                          \
    static const hangar_agent_selector_functions prefix##_functions = {                                        \
        .struct_size = sizeof(hangar_agent_selector_functions),                                                \
        .create = prefix##_create,                                                                             \
        .destroy = free,                                                                                       \
        .last_error = hs_last_error,                                                                           \
        .select_agents = prefix##_select_agents,                                                               \
    };

#endif /* HANGAR_SUPPORT_SCHEDULING_H */
