/*
 * concentrated — Hangar's reference agent selector: pack sessions tightly
 * (and, built with -DHANGAR_SELECTOR_DISPERSED, "dispersed": spread them).
 *
 * The choice follows Backend.AI's agent selectors so that both platforms make
 * the same decisions on the same cluster: among the candidates that fit, the
 * agent whose free amounts, read in resource-priority order (default cuda,
 * rocm, tpu, cpu, mem; a group sums every slot named "<group>" or
 * "<group>.*"; other slots come last), are lexicographically smallest
 * (concentrated) or largest (dispersed). Ties go to the lower index, the
 * candidate order. The priority is configurable (resource_priority).
 *
 * Fit: for every slot, occupied + request <= capacity. A slot an agent has no
 * capacity for can only be requested as 0, and an agent already over its
 * capacity on some slot takes nothing. Multi-node sessions are placed kernel
 * by kernel, counting what earlier kernels of the same session took on each
 * agent, so several kernels may share an agent but never overfill it.
 *
 * Instances only hold their configuration and the last-error buffer
 * (mutex-guarded): thread-safe.
 */
#ifdef HANGAR_SELECTOR_DISPERSED
#define SELECTOR_NAME "dispersed"
#define SELECTOR_DESCRIPTION "Spreads kernels onto the agents with the most free capacity (Backend.AI's dispersed order)."
#define SELECTOR_PREFERS_LARGER 1
#else
#define SELECTOR_NAME "concentrated"
#define SELECTOR_DESCRIPTION "Packs kernels onto the agent that fits them most tightly (Backend.AI's concentrated order)."
#define SELECTOR_PREFERS_LARGER 0
#endif

/* Resource-priority groups: at most this many, each name at most this long. */
#define CONC_MAX_GROUPS 16
#define CONC_GROUP_NAME 32

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

#define CONC_ERR_MAX 768
/* int64 scratch words kept on the stack; larger requests fall back to malloc. */
#define CONC_STACK_WORDS 512

#if defined(__GNUC__) || defined(__clang__)
#define CONC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CONC_PRINTF(f, a)
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);

/* True if the struct's filler compiled a version that has `field` (fields beyond struct_size read as zero). */
#define CONC_HAS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))
#define CONC_FIELD(ptr, type, field) (CONC_HAS(ptr, type, field) ? (ptr)->field : 0)

typedef struct conc {
    const hangar_host_services *host;
    size_t groups;                                  /* resource-priority groups */
    char group[CONC_MAX_GROUPS][CONC_GROUP_NAME];
    pthread_mutex_t err_lock; /* guards err and err_len */
    size_t err_len;
    char err[CONC_ERR_MAX];
} conc;

static CONC_PRINTF(3, 4) hangar_status fail(conc *c, hangar_status st, const char *fmt, ...)
{
    char text[CONC_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t n = strlen(text);
    pthread_mutex_lock(&c->err_lock);
    memcpy(c->err, text, n + 1);
    c->err_len = n;
    pthread_mutex_unlock(&c->err_lock);
    return st;
}

static size_t conc_last_error(void *instance, char *buf, size_t buf_len)
{
    conc *c = instance;
    if (!c) {
        if (buf && buf_len)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock(&c->err_lock);
    size_t n = c->err_len;
    if (buf && buf_len) {
        size_t k = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, c->err, k);
        buf[k] = '\0';
    }
    pthread_mutex_unlock(&c->err_lock);
    return n;
}

/* An agent entry with the fields that lie beyond its struct_size read as zero. */
typedef struct agent_view {
    const char *id;
    const char *arch;
    const int64_t *capacity;
    const int64_t *occupied;
    uint32_t kernels;
} agent_view;

static agent_view view_agent(const hangar_select_agent *a)
{
    agent_view v;
    v.id = CONC_FIELD(a, hangar_select_agent, agent_id);
    v.arch = CONC_FIELD(a, hangar_select_agent, architecture);
    v.capacity = CONC_FIELD(a, hangar_select_agent, capacity);
    v.occupied = CONC_FIELD(a, hangar_select_agent, occupied);
    v.kernels = CONC_FIELD(a, hangar_select_agent, kernel_count);
    return v;
}

/* Writes an amount as text: count/unique slots in units (decimals trimmed), bytes slots in bytes. */
static void format_amount(char *buf, size_t len, int64_t amount, uint32_t type)
{
    if (type == HANGAR_SLOT_BYTES) {
        snprintf(buf, len, "%" PRId64 " bytes", amount);
        return;
    }
    if (type != HANGAR_SLOT_COUNT && type != HANGAR_SLOT_UNIQUE) {
        snprintf(buf, len, "%" PRId64, amount);
        return;
    }
    uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = mag / (uint64_t)HANGAR_AMOUNT_SCALE, frac = mag % (uint64_t)HANGAR_AMOUNT_SCALE;
    if (frac == 0) {
        snprintf(buf, len, "%s%" PRIu64, amount < 0 ? "-" : "", whole);
        return;
    }
    char digits[8];
    snprintf(digits, sizeof digits, "%06" PRIu64, frac);
    for (size_t i = strlen(digits); i > 0 && digits[i - 1] == '0'; i--)
        digits[i - 1] = '\0';
    snprintf(buf, len, "%s%" PRIu64 ".%s", amount < 0 ? "-" : "", whole, digits);
}

/* How far an agent is from fitting a request, to name the closest one in an error. */
typedef struct shortage {
    size_t slots_short;  /* number of slots that are short */
    double missing;      /* sum over short slots of the missing fraction of the request */
    size_t first;        /* first short slot */
} shortage;

/*
 * Checks whether `req` fits on an agent whose occupancy is raised by `extra`
 * (this session's earlier kernels there, or NULL). Returns true with the
 * best-fit score, or false with what is short.
 */
static bool fits(const agent_view *a, const int64_t *extra, const int64_t *req, size_t slots, double *score,
                 shortage *sh)
{
    double s = 0.0;
    sh->slots_short = 0;
    sh->missing = 0.0;
    sh->first = 0;
    for (size_t k = 0; k < slots; k++) {
        int64_t cap = a->capacity[k];
        int64_t occ = a->occupied[k];
        if (extra)
            occ = extra[k] > INT64_MAX - occ ? INT64_MAX : occ + extra[k];
        /* cap, occ and req are non-negative (checked by the caller), so cap - occ cannot overflow. */
        int64_t room = cap - occ;
        if (req[k] > room) {
            if (sh->slots_short++ == 0)
                sh->first = k;
            sh->missing += req[k] > 0 ? (double)(req[k] - (room > 0 ? room : 0)) / (double)req[k] : 1.0;
        } else if (cap > 0) {
            s += (double)(room - req[k]) / (double)cap;
        }
    }
    *score = s;
    return sh->slots_short == 0;
}

/* Adds b to a, saturating at INT64_MAX (all values are non-negative). */
static int64_t add_sat(int64_t a, int64_t b)
{
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

typedef struct placement {
    size_t used;          /* distinct agents this session has kernels on so far */
    size_t *agent_of;     /* [used] agent indices */
    int64_t *taken;       /* [used][slots] amounts this session took on them */
} placement;

static int64_t *taken_on(const placement *p, size_t agent, size_t slots)
{
    for (size_t u = 0; u < p->used; u++)
        if (p->agent_of[u] == agent)
            return p->taken + u * slots;
    return NULL;
}

/*
 * Picks the best agent for `req`. Returns the agent index, or SIZE_MAX with
 * *none_match set when no agent has the architecture. On failure `closest`
 * is the matching agent with the fewest short slots (then the smallest
 * missing fraction, then the lowest index) and `closest_slot` its first
 * short slot, for the error message.
 */
/* Index of the resource-priority group a slot belongs to; `groups` for "other". */
static size_t group_of_slot(const conc *c, const char *name)
{
    if (!name)
        return c->groups;
    for (size_t g = 0; g < c->groups; g++) {
        size_t n = strlen(c->group[g]);
        if (strncmp(name, c->group[g], n) == 0 && (name[n] == '\0' || name[n] == '.'))
            return g;
    }
    return c->groups;
}

/* Free amount per group (after this session's earlier kernels), the ordering key. */
static void group_key(const agent_view *a, const int64_t *extra, const size_t *group_of, size_t slots, size_t groups,
                      int64_t *key)
{
    memset(key, 0, (groups + 1) * sizeof *key);
    for (size_t k = 0; k < slots; k++) {
        int64_t occ = a->occupied[k];
        if (extra)
            occ = extra[k] > INT64_MAX - occ ? INT64_MAX : occ + extra[k];
        int64_t room = a->capacity[k] - occ;
        key[group_of[k]] = add_sat(key[group_of[k]], room > 0 ? room : 0);
    }
}

/* True if key a orders strictly before key b for this selector. */
static bool better(const int64_t *a, const int64_t *b, size_t n)
{
    for (size_t g = 0; g < n; g++) {
        if (a[g] != b[g])
            return SELECTOR_PREFERS_LARGER ? a[g] > b[g] : a[g] < b[g];
    }
    return false;
}

/*
 * Picks the best agent for `req`. Returns the agent index, or SIZE_MAX with
 * *none_match set when no agent has the architecture. On failure `closest`
 * is the matching agent with the fewest short slots (then the smallest
 * missing fraction, then the lowest index) and `closest_slot` its first
 * short slot, for the error message.
 */
static size_t choose(const conc *c, const size_t *group_of, const hangar_select_agent *agents, size_t stride, size_t count,
                     const char *arch, const placement *p, const int64_t *req, size_t slots, bool *none_match,
                     size_t *closest, size_t *closest_slot)
{
    size_t best = SIZE_MAX, near = SIZE_MAX;
    shortage near_sh = {0, 0.0, 0};
    int64_t best_key[CONC_MAX_GROUPS + 1], key[CONC_MAX_GROUPS + 1];
    size_t n = c->groups + 1;
    *none_match = true;
    for (size_t i = 0; i < count; i++) {
        agent_view a = view_agent(HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, i));
        if (arch && (!a.arch || strcmp(a.arch, arch) != 0))
            continue;
        *none_match = false;
        double unused;
        shortage sh;
        const int64_t *extra = p ? taken_on(p, i, slots) : NULL;
        if (!fits(&a, extra, req, slots, &unused, &sh)) {
            if (near == SIZE_MAX || sh.slots_short < near_sh.slots_short ||
                (sh.slots_short == near_sh.slots_short && sh.missing < near_sh.missing)) {
                near = i;
                near_sh = sh;
            }
            continue;
        }
        group_key(&a, extra, group_of, slots, c->groups, key);
        if (best == SIZE_MAX || better(key, best_key, n)) {
            best = i;
            memcpy(best_key, key, n * sizeof *key);
        }
    }
    *closest = near;
    *closest_slot = near_sh.first;
    return best;
}

static hangar_status no_agent(conc *c, const hangar_select_input *in, const hangar_select_agent *agents,
                              size_t stride, const placement *p, const int64_t *req, const char *what,
                              bool none_match, size_t closest, size_t slot)
{
    const char *sid = CONC_FIELD(in, hangar_select_input, session_id);
    const char *arch = CONC_FIELD(in, hangar_select_input, architecture);
    size_t count = in->agent_count;
    if (count == 0)
        return fail(c, HANGAR_E_NO_AGENT, "session %s: there are no candidate agents", sid ? sid : "?");
    if (none_match)
        return fail(c, HANGAR_E_NO_AGENT, "session %s: none of the %zu candidate agents has architecture %s",
                    sid ? sid : "?", count, arch ? arch : "?");
    const hangar_sched_slots *sl = in->slots;
    agent_view a = view_agent(HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, closest));
    const int64_t *extra = p ? taken_on(p, closest, sl->slot_count) : NULL;
    int64_t occ = a.occupied[slot];
    if (extra)
        occ = add_sat(occ, extra[slot]);
    int64_t free_amount = a.capacity[slot] - occ;
    uint32_t type = sl->types[slot];
    const char *name = sl->names[slot] ? sl->names[slot] : "?";
    char need[48], have[48], by[48];
    format_amount(need, sizeof need, req[slot], type);
    format_amount(have, sizeof have, free_amount > 0 ? free_amount : 0, type);
    if (req[slot] == 0) {
        format_amount(by, sizeof by, occ - a.capacity[slot], type);
        return fail(c, HANGAR_E_NO_AGENT,
                    "session %s: no agent fits %s; the closest, %s, is already over its %s capacity by %s",
                    sid ? sid : "?", what, a.id ? a.id : "?", name, by);
    }
    format_amount(by, sizeof by, req[slot] - (free_amount > 0 ? free_amount : 0), type);
    return fail(c, HANGAR_E_NO_AGENT,
                "session %s: no agent fits %s; the closest, %s, is short of %s by %s (needs %s, has %s free)",
                sid ? sid : "?", what, a.id ? a.id : "?", name, by, need, have);
}

static hangar_status select_with_groups(conc *c, const hangar_select_input *input, const hangar_select_agent *agents,
                                        size_t stride, size_t count, const int64_t *reqs, size_t slots, size_t kernels,
                                        const char *arch, const size_t *group_of, size_t *out_agent_indices);

static hangar_status conc_select_agents(void *instance, const hangar_select_input *input, size_t *out_agent_indices)
{
    conc *c = instance;
    if (!c)
        return HANGAR_E_INVALID_ARGUMENT;
    if (!input)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: input is NULL");
    if (!out_agent_indices)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: out_agent_indices is NULL");
    if (!CONC_HAS(input, hangar_select_input, agent_stride))
        return fail(c, HANGAR_E_INVALID_ARGUMENT,
                    "select_agents: input->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_select_input",
                    input->struct_size);

    const hangar_sched_slots *sl = input->slots;
    if (!sl)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: input->slots is NULL");
    if (!CONC_HAS(sl, hangar_sched_slots, types))
        return fail(c, HANGAR_E_INVALID_ARGUMENT,
                    "select_agents: slots->struct_size %" PRIu32 " is too small for an ABI 1.0 hangar_sched_slots",
                    sl->struct_size);
    size_t slots = sl->slot_count;
    if (slots && (!sl->names || !sl->types))
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: slots->%s is NULL but slot_count is %zu",
                    !sl->names ? "names" : "types", slots);
    size_t kernels = input->kernel_count;
    if (kernels == 0)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count is 0");
    if (slots && kernels > SIZE_MAX / slots / sizeof(int64_t))
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count %zu is too large", kernels);
    const int64_t *reqs = input->kernel_requests;
    if (slots && !reqs)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_requests is NULL");
    for (size_t i = 0; i < kernels * slots; i++)
        if (reqs[i] < 0)
            return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel %zu requests a negative amount of %s",
                        i / slots, sl->names[i % slots] ? sl->names[i % slots] : "?");

    size_t count = input->agent_count, stride = input->agent_stride;
    const hangar_select_agent *agents = input->agents;
    if (count && !agents)
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: agents is NULL but agent_count is %zu", count);
    if (count && (stride < sizeof(uint32_t) || stride % _Alignof(hangar_select_agent) != 0))
        return fail(c, HANGAR_E_INVALID_ARGUMENT,
                    "select_agents: agent_stride %zu is not a valid element size (at least 4, a multiple of %zu)",
                    stride, (size_t)_Alignof(hangar_select_agent));
    for (size_t i = 0; i < count; i++) {
        const hangar_select_agent *ap = HANGAR_ARRAY_AT(hangar_select_agent, agents, stride, i);
        if (ap->struct_size > stride)
            return fail(c, HANGAR_E_INVALID_ARGUMENT,
                        "select_agents: agent %zu has struct_size %" PRIu32 ", larger than agent_stride %zu", i,
                        ap->struct_size, stride);
        agent_view a = view_agent(ap);
        if (slots && (!a.capacity || !a.occupied))
            return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: agent %zu (%s) has a NULL %s vector", i,
                        a.id ? a.id : "?", !a.capacity ? "capacity" : "occupied");
        for (size_t k = 0; k < slots; k++)
            if (a.capacity[k] < 0 || a.occupied[k] < 0)
                return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: agent %zu (%s) has a negative %s of %s", i,
                            a.id ? a.id : "?", a.capacity[k] < 0 ? "capacity" : "occupied amount",
                            sl->names[k] ? sl->names[k] : "?");
    }

    const char *arch = input->architecture;
    size_t stack_groups[64];
    size_t *group_of = slots <= 64 ? stack_groups : malloc(slots * sizeof *group_of);
    if (!group_of)
        return fail(c, HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
    for (size_t k = 0; k < slots; k++)
        group_of[k] = group_of_slot(c, sl->names[k]);
    hangar_status result = select_with_groups(c, input, agents, stride, count, reqs, slots, kernels, arch, group_of,
                                              out_agent_indices);
    if (group_of != stack_groups)
        free(group_of);
    return result;
}

/* The placement proper, once inputs are validated and slots grouped. */
static hangar_status select_with_groups(conc *c, const hangar_select_input *input, const hangar_select_agent *agents,
                                        size_t stride, size_t count, const int64_t *reqs, size_t slots, size_t kernels,
                                        const char *arch, const size_t *group_of, size_t *out_agent_indices)
{
    bool none_match;
    size_t closest, closest_slot;

    if (input->single_node || kernels == 1) {
        /* Every kernel on one agent: place the summed request. */
        int64_t stack_sum[64] = {0};
        const int64_t *sum = reqs;
        int64_t *heap = NULL;
        if (kernels > 1) {
            int64_t *acc = slots <= 64 ? stack_sum : (heap = malloc(slots * sizeof *heap));
            if (!acc)
                return fail(c, HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
            for (size_t k = 0; k < slots; k++) {
                int64_t t = 0;
                for (size_t j = 0; j < kernels; j++)
                    t = add_sat(t, reqs[j * slots + k]);
                acc[k] = t;
            }
            sum = acc;
        }
        size_t best = choose(c, group_of, agents, stride, count, arch, NULL, sum, slots, &none_match, &closest,
                             &closest_slot);
        hangar_status rc = HANGAR_OK;
        if (best == SIZE_MAX) {
            char what[64];
            if (kernels > 1)
                snprintf(what, sizeof what, "its %zu kernels together", kernels);
            else
                snprintf(what, sizeof what, "its kernel");
            rc = no_agent(c, input, agents, stride, NULL, sum, what, none_match || count == 0, closest, closest_slot);
        } else {
            for (size_t j = 0; j < kernels; j++)
                out_agent_indices[j] = best;
        }
        free(heap);
        return rc;
    }

    /* Multi-node: kernel by kernel, tracking what this session took on each agent. */
    if (kernels > SIZE_MAX / sizeof(int64_t) / (slots + 2))
        return fail(c, HANGAR_E_INVALID_ARGUMENT, "select_agents: kernel_count %zu is too large", kernels);
    size_t words = kernels * (slots + 2);
    int64_t stack_words[CONC_STACK_WORDS];
    int64_t *scratch = words <= CONC_STACK_WORDS ? stack_words : malloc(words * sizeof *scratch);
    if (!scratch)
        return fail(c, HANGAR_E_INSUFFICIENT, "select_agents: out of memory");
    _Static_assert(sizeof(size_t) <= sizeof(int64_t), "size_t must fit in an int64 scratch word");
    placement p = {0, (size_t *)(void *)scratch, scratch + kernels};
    size_t *assign = (size_t *)(void *)(scratch + kernels + kernels * slots);
    hangar_status rc = HANGAR_OK;
    for (size_t j = 0; j < kernels; j++) {
        const int64_t *req = slots ? reqs + j * slots : reqs; /* reqs may be NULL when there are no slots */
        size_t best = choose(c, group_of, agents, stride, count, arch, &p, req, slots, &none_match, &closest,
                             &closest_slot);
        if (best == SIZE_MAX) {
            char what[64];
            snprintf(what, sizeof what, "kernel %zu of %zu", j, kernels);
            rc = no_agent(c, input, agents, stride, &p, req, what, none_match || count == 0, closest, closest_slot);
            break;
        }
        int64_t *t = taken_on(&p, best, slots);
        if (!t) {
            p.agent_of[p.used] = best;
            t = p.taken + p.used * slots;
            memset(t, 0, slots * sizeof *t);
            p.used++;
        }
        for (size_t k = 0; k < slots; k++)
            t[k] = add_sat(t[k], req[k]);
        assign[j] = best;
    }
    if (rc == HANGAR_OK)
        memcpy(out_agent_indices, assign, kernels * sizeof *assign);
    if (scratch != stack_words)
        free(scratch);
    return rc;
}

static CONC_PRINTF(4, 5) hangar_status create_fail(char *err, size_t err_len, hangar_status st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

static hangar_status conc_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                 char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out_instance)
        *out_instance = NULL;
    if (!host || !config_json || !out_instance)
        return create_fail(err, err_len, HANGAR_E_INVALID_ARGUMENT, SELECTOR_NAME ": create() got a NULL %s",
                           !host ? "host" : !config_json ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        host->struct_size < offsetof(hangar_host_services, config_count) + sizeof host->config_count ||
        !host->config_count || !host->config_string)
        return create_fail(err, err_len, HANGAR_E_INCOMPATIBLE,
                           SELECTOR_NAME ": the host services table is incompatible (ABI %" PRIu32 ".%" PRIu32
                           ", struct_size %" PRIu32 "); this plugin needs ABI 1.x",
                           HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                           host->struct_size);
    static const char *const default_priority[] = {"cuda", "rocm", "tpu", "cpu", "mem"};
    char names[CONC_MAX_GROUPS][CONC_GROUP_NAME];
    size_t groups = 0;
    int64_t keys = host->config_count(host->host_context, "");
    int64_t listed = host->config_count(host->host_context, "resource_priority");
    if (keys > (listed >= 0 ? 1 : 0))
        return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                           SELECTOR_NAME ": the only configuration key is \"resource_priority\" (an array of slot groups)");
    if (listed < 0) {
        for (; groups < sizeof default_priority / sizeof *default_priority; groups++)
            snprintf(names[groups], CONC_GROUP_NAME, "%s", default_priority[groups]);
    } else {
        if (listed > CONC_MAX_GROUPS)
            return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                               SELECTOR_NAME ": resource_priority lists %" PRId64 " groups; at most %d are allowed", listed,
                               CONC_MAX_GROUPS);
        for (; groups < (size_t)listed; groups++) {
            char path[48];
            size_t len = 0;
            snprintf(path, sizeof path, "resource_priority.%zu", groups);
            hangar_status st = host->config_string(host->host_context, path, names[groups], CONC_GROUP_NAME, &len);
            if (st != HANGAR_OK || len == 0 || strchr(names[groups], '.'))
                return create_fail(err, err_len, HANGAR_E_INVALID_CONFIG,
                                   SELECTOR_NAME ": %s must be a slot group name such as \"cuda\" or \"cpu\" (no dots, under %d characters)",
                                   path, CONC_GROUP_NAME);
        }
    }

    conc *c = calloc(1, sizeof *c);
    if (!c)
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, SELECTOR_NAME ": out of memory");
    if (pthread_mutex_init(&c->err_lock, NULL) != 0) {
        free(c);
        return create_fail(err, err_len, HANGAR_E_INSUFFICIENT, SELECTOR_NAME ": cannot initialise a mutex");
    }
    c->groups = groups;
    memcpy(c->group, names, sizeof names);
    c->host = host;
    *out_instance = c;
    return HANGAR_OK;
}

static void conc_destroy(void *instance)
{
    conc *c = instance;
    if (!c)
        return;
    pthread_mutex_destroy(&c->err_lock);
    free(c);
}

static const char conc_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"resource_priority\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":16,"
    "\"default\":[\"cuda\",\"rocm\",\"tpu\",\"cpu\",\"mem\"],"
    "\"description\":\"Slot groups compared in order (a group covers <group> and <group>.*); slots in no group come last.\"}}}";

static const hangar_agent_selector_functions conc_functions = {
    .struct_size = sizeof(hangar_agent_selector_functions),
    .create = conc_create,
    .destroy = conc_destroy,
    .last_error = conc_last_error,
    .select_agents = conc_select_agents,
};

static const hangar_plugin_descriptor conc_descriptor = {
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_major = HANGAR_ABI_MAJOR,
    .abi_minor = HANGAR_ABI_MINOR,
    .kind = HANGAR_KIND_AGENT_SELECTOR,
    .thread_safety = HANGAR_THREAD_SAFE,
    .capabilities = 0,
    .name = SELECTOR_NAME,
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = SELECTOR_DESCRIPTION,
    .license = "Apache-2.0",
    .config_schema = conc_schema,
    .static_slot_names = NULL,
    .functions = &conc_functions,
};

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR)
        return NULL;
    return &conc_descriptor;
}
