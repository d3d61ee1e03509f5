/*
 * Hangar plugin ABI v1 — scheduler and agent-selector plugins.
 *
 * The manager's scheduling loop runs, per resource group: the scheduler picks
 * which pending session to try next; the agent selector picks the agent(s)
 * for its kernels; the manager checks and reserves the slots in one database
 * transaction. Both plugins are pure decisions over a snapshot the host
 * builds: they own no cluster state and must not block.
 *
 * These calls are on the hot path, so inputs are plain C arrays: slot names
 * are interned once per snapshot into indices 0..slot_count-1, and every
 * amount vector is an array of slot_count fixed-point values (count slots in
 * units of HANGAR_AMOUNT_SCALE, bytes slots in bytes — see accelerator.h).
 */
#ifndef HANGAR_SCHEDULER_H
#define HANGAR_SCHEDULER_H

#include "plugin.h"
#include "accelerator.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scheduler / selector status codes (300–399). */
/** No pending session can be picked (the queue is empty or every session is filtered out). */
#define HANGAR_E_NOTHING_TO_SCHEDULE 300
/** No agent (or set of agents) can host the session's kernels now. */
#define HANGAR_E_NO_AGENT 301

/** Slot names and types of one snapshot; amount vectors are indexed by position. */
typedef struct hangar_sched_slots {
    /** sizeof(hangar_sched_slots) as the host compiled it. */
    uint32_t struct_size;
    size_t slot_count;
    /** slot_count names, e.g. "cpu", "mem", "cuda.device". */
    const char *const *names;
    /** slot_count HANGAR_SLOT_* values. */
    const uint32_t *types;
} hangar_sched_slots;

/** A pending session as the scheduler sees it. */
typedef struct hangar_sched_session {
    /** sizeof(hangar_sched_session) as the host compiled it. */
    uint32_t struct_size;
    /** Session id (UUID text). */
    const char *session_id;
    /** Index of the owning access key into hangar_sched_input.owners. */
    uint32_t owner_index;
    /** Higher runs first; sessions of lower priority wait while higher ones are pending. */
    int32_t priority;
    /** Enqueue time, microseconds since the Unix epoch. Ties are broken by position in the array. */
    int64_t created_at_us;
    /** Number of kernels. */
    uint32_t kernel_count;
    /** Total requested amounts of all kernels (slot_count values). */
    const int64_t *requested;

    /* ---- added in ABI 1.1 ---- */

    /** Scheduling passes that picked this session but could not place it (for skip-after-N policies). */
    uint32_t attempts;

    /* ---- added in ABI 1.3 ---- */

    /**
     * Fair-share factor of the session's association (its user within its
     * project within its domain), in [0, 1]: 1 = has used nothing, 0.5 = has
     * used exactly its configured share, toward 0 = far over it. The host
     * computes it from decayed usage and configured shares (Slurm's classic
     * 2^(-effective usage / normalised shares)). Read it with a default of 1
     * (HS_FIELD_OR): a 1.2 host does no accounting.
     */
    double fairshare;
} hangar_sched_session;

/** One access key's current use of the resource group (for fairness policies such as DRF). */
typedef struct hangar_sched_owner {
    /** sizeof(hangar_sched_owner) as the host compiled it. */
    uint32_t struct_size;
    /** The access key. */
    const char *access_key;
    /** Amounts occupied by its running sessions (slot_count values). */
    const int64_t *occupied;
} hangar_sched_owner;

/** Everything a scheduler decides on. */
typedef struct hangar_sched_input {
    /** sizeof(hangar_sched_input) as the host compiled it. */
    uint32_t struct_size;
    /** Slot names and types. */
    const hangar_sched_slots *slots;
    /** Capacity of the resource group (slot_count values). */
    const int64_t *total_capacity;
    /** Free amounts of the resource group (slot_count values). */
    const int64_t *free_capacity;
    /** Pending sessions; index with HANGAR_ARRAY_AT(hangar_sched_session, sessions, session_stride, i). */
    const hangar_sched_session *sessions;
    size_t session_count;
    size_t session_stride;
    /** Access keys referenced by owner_index; HANGAR_ARRAY_AT with owner_stride. */
    const hangar_sched_owner *owners;
    size_t owner_count;
    size_t owner_stride;

    /* ---- added in ABI 1.3 ---- */

    /** The snapshot's time, microseconds since the Unix epoch (for age factors); 0 from a 1.2 host. */
    int64_t now_us;
} hangar_sched_input;

/**
 * The factors behind one pending session's place in a multifactor queue, as
 * `explain` reports them (Slurm's sprio): each factor in [0, 1] and the
 * weighted total the scheduler orders by.
 */
typedef struct hangar_sched_factors {
    /** sizeof(hangar_sched_factors) as the host compiled it; the plugin writes only fields within it. */
    uint32_t struct_size;
    /** How long it has waited, against the scheduler's maximum age. */
    double age;
    /** The session's fair-share factor as the scheduler used it. */
    double fairshare;
    /** The session's priority, 0-100 scaled to [0, 1]. */
    double priority;
    /** Its size factor (small or large sessions favoured, as configured). */
    double size;
    /** The weighted sum the queue is ordered by (within a priority when priorities are strict). */
    double total;
} hangar_sched_factors;

/**
 * The scheduler function table. All functions required.
 */
typedef struct hangar_scheduler_functions {
    /** sizeof(hangar_scheduler_functions) as the plugin compiled it. */
    uint32_t struct_size;

    /** See plugin.h. Config holds the resource group's scheduler options. */
    hangar_status (*create)(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len);
    /** See plugin.h. */
    void (*destroy)(void *instance);
    /** See plugin.h. */
    size_t (*last_error)(void *instance, char *buf, size_t buf_len);

    /**
     * Picks the session to try next: stores its index into input->sessions in
     * *out_index and returns HANGAR_OK, or returns
     * HANGAR_E_NOTHING_TO_SCHEDULE. Must not keep pointers into `input`.
     * NULL arguments give HANGAR_E_INVALID_ARGUMENT. Strides are at least the
     * ABI 1.0 size of the element struct and keep its alignment.
     */
    hangar_status (*pick_next)(void *instance, const hangar_sched_input *input, size_t *out_index);

    /* ---- added in ABI 1.3 ---- */

    /**
     * Optional (NULL, or beyond struct_size, for schedulers without factors):
     * fills *out with the factors behind session `index` of `input`, the same
     * ones pick_next orders by. The host shows them to users and operators.
     * Out-of-range index or NULL arguments give HANGAR_E_INVALID_ARGUMENT.
     */
    hangar_status (*explain)(void *instance, const hangar_sched_input *input, size_t index, hangar_sched_factors *out);
} hangar_scheduler_functions;

/** A candidate agent as the selector sees it. */
typedef struct hangar_select_agent {
    /** sizeof(hangar_select_agent) as the host compiled it. */
    uint32_t struct_size;
    /** Agent id. */
    const char *agent_id;
    /** Machine architecture, e.g. "x86_64", "aarch64". */
    const char *architecture;
    /** Capacity of the agent (slot_count values). */
    const int64_t *capacity;
    /** Amounts already occupied (slot_count values). */
    const int64_t *occupied;
    /** Kernels running on the agent now. */
    uint32_t kernel_count;
} hangar_select_agent;

/** A session to place and the candidates. */
typedef struct hangar_select_input {
    /** sizeof(hangar_select_input) as the host compiled it. */
    uint32_t struct_size;
    /** Slot names and types. */
    const hangar_sched_slots *slots;
    /** Session id. */
    const char *session_id;
    /** Architecture the session's image needs, or NULL for any. */
    const char *architecture;
    /** Kernels to place. */
    size_t kernel_count;
    /** kernel_count rows of slot_count amounts, row-major: kernel k's request starts at kernel_requests + k*slot_count. */
    const int64_t *kernel_requests;
    /** Non-zero if every kernel must go to one agent. */
    int32_t single_node;
    /** Candidates; index with HANGAR_ARRAY_AT(hangar_select_agent, agents, agent_stride, i). */
    const hangar_select_agent *agents;
    size_t agent_count;
    size_t agent_stride;
} hangar_select_input;

/**
 * The agent-selector function table. All functions required.
 */
typedef struct hangar_agent_selector_functions {
    /** sizeof(hangar_agent_selector_functions) as the plugin compiled it. */
    uint32_t struct_size;

    /** See plugin.h. Config holds the resource group's selector options. */
    hangar_status (*create)(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len);
    /** See plugin.h. */
    void (*destroy)(void *instance);
    /** See plugin.h. */
    size_t (*last_error)(void *instance, char *buf, size_t buf_len);

    /**
     * Places each kernel: writes kernel_count agent indices (into
     * input->agents) to out_agent_indices and returns HANGAR_OK, or returns
     * HANGAR_E_NO_AGENT when the kernels do not fit. The placement must fit:
     * for every agent, occupied + the requests placed on it <= capacity, and
     * the architecture must match when one is given. Must not keep pointers
     * into `input`. May keep its own state (a round-robin cursor).
     * kernel_count 0 or NULL arguments give HANGAR_E_INVALID_ARGUMENT; on any
     * failure out_agent_indices is left untouched. An agent whose occupied
     * amounts already exceed its capacity takes nothing.
     */
    hangar_status (*select_agents)(void *instance, const hangar_select_input *input, size_t *out_agent_indices);
} hangar_agent_selector_functions;

#ifdef __cplusplus
}
#endif

#endif /* HANGAR_SCHEDULER_H */
