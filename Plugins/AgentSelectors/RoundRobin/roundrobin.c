/*
 * roundrobin — take the candidates in turn.
 *
 * Each instance keeps a cursor, an index into the candidate list. A kernel
 * (or, for a single-node or one-kernel session, all its kernels together)
 * goes to the first candidate at or after the cursor, wrapping around, that
 * fits it; the cursor then moves just past that agent, so the next kernel or
 * session starts its search at the following candidate. The cursor is taken
 * modulo the number of candidates of each call, and it only moves when a
 * whole session is placed: a failed call leaves it where it was.
 *
 * Fit and multi-node placement are support/scheduling.h's (hs_fits,
 * hs_place_kernels): occupied + request <= capacity on every slot, counting
 * what earlier kernels of the same session took on each agent.
 *
 * The cursor is guarded by a mutex held for the whole placement, so that
 * concurrent calls take turns; last_error is per thread: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

#include <pthread.h>

typedef struct rr {
    pthread_mutex_t cursor_lock; /* guards cursor */
    size_t cursor;               /* where the next search starts, modulo the candidate count */
} rr;

/*
 * An hs_agent_chooser (ctx: the cursor of this placement): the first agent at
 * or after the cursor (wrapping) with the architecture that fits `req`; the
 * cursor then moves just past it.
 */
static size_t rr_choose(void *ctx, const hs_place_input *in, const hs_taken *taken, const int64_t *req, hs_miss *miss)
{
    size_t *cursor = ctx, start = *cursor;
    /* Inputs in locals and the miss in a local stored only on failure: stores through `miss`
     * could alias `in`, and would make the loop reload it for every agent. */
    const hangar_select_agent *agents = in->agents;
    size_t count = in->agent_count, stride = in->agent_stride, slots = in->slots;
    const char *arch = in->architecture;
    hs_miss m;
    hs_miss_begin(&m);
    for (size_t n = 0; n < count; n++) {
        size_t i = (start + n) % count;
        hs_agent_view a = hs_view_agent(HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, i));
        if (!hs_agent_matches(&a, arch))
            continue;
        m.none_match = false;
        hs_shortage sh;
        if (hs_fits(&a, hs_taken_on(taken, i, slots), req, slots, &sh)) {
            *cursor = (i + 1) % count;
            return i;
        }
        hs_miss_note(&m, i, &sh);
    }
    *miss = m;
    return SIZE_MAX;
}

static hangar_status rr_select_agents(void *instance, const hangar_select_input *input, size_t *out_agent_indices)
{
    rr *r = instance;
    if (!r)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "select_agents: instance is NULL");
    hs_place_input in;
    hangar_status st = hs_place_check(input, out_agent_indices, &in);
    if (st != HANGAR_OK)
        return st;
    pthread_mutex_lock(&r->cursor_lock);
    size_t cursor = in.agent_count ? r->cursor % in.agent_count : 0;
    st = hs_place_kernels(&in, rr_choose, &cursor, out_agent_indices);
    if (st == HANGAR_OK)
        r->cursor = cursor;
    pthread_mutex_unlock(&r->cursor_lock);
    return st;
}

static hangar_status rr_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                               char *err, size_t err_len)
{
    hs_create c;
    hangar_status st = hs_create_begin(&c, "roundrobin", host, config_json, out_instance, err, err_len, 2);
    if (st != HANGAR_OK)
        return st;
    rr *r = calloc(1, sizeof *r);
    if (!r)
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "out of memory");
    if (pthread_mutex_init(&r->cursor_lock, NULL) != 0) {
        free(r);
        return hs_create_fail(&c, HANGAR_E_INSUFFICIENT, "cannot initialise a mutex");
    }
    *out_instance = r;
    return HANGAR_OK;
}

static void rr_destroy(void *instance)
{
    rr *r = instance;
    if (!r)
        return;
    pthread_mutex_destroy(&r->cursor_lock);
    free(r);
}

static const hangar_agent_selector_functions rr_functions = {
    .struct_size = sizeof(hangar_agent_selector_functions),
    .create = rr_create,
    .destroy = rr_destroy,
    .last_error = hs_last_error,
    .select_agents = rr_select_agents,
};

static const hangar_plugin_descriptor rr_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_AGENT_SELECTOR),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "roundrobin",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Takes the agents in turn: each kernel goes to the next agent after the last one used that fits it.",
    .license = "Apache-2.0",
    .config_schema = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    .functions = &rr_functions,
};

HS_PLUGIN_ENTRY(rr_descriptor, 2)
