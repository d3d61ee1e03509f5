/*
 * fairshare — Slurm-style multifactor priority with a hierarchical fair share.
 *
 * Each pending session gets a score, the weighted sum of four factors in
 * [0, 1] (Slurm's priority/multifactor):
 *   age        waited / max_age_seconds, capped at 1 (needs now_us, ABI 1.3)
 *   fairshare  the factor the host computed for the session's association
 *              (user in project in domain): 2^(-effective usage / normalised
 *              shares), Slurm's classic formula; 1 from a host before 1.3
 *   priority   the session's priority / 100, capped to [0, 1]
 *   size       the session's share of the group's total capacity (its
 *              dominant slot), or 1 minus it when small sessions are favoured
 * pick_next returns the highest score; with strict_priority (the default) the
 * session priority first splits the queue into tiers, as every bundled
 * scheduler orders by priority first, and the score orders each tier. Equal
 * scores go to the older session, then the lower index. explain reports the
 * factors and the score for any pending session (the manager's sprio).
 *
 * The instance is its configuration (weights), read once: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

typedef struct fs_config {
    double weight_age;
    double weight_fairshare;
    double weight_priority;
    double weight_size;
    double max_age_seconds;
    bool favor_small;
    bool strict_priority;
} fs_config;

static double clamp01(double v)
{
    return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
}

/* The factors of one session; `input` and `entry` already checked. */
static hangar_sched_factors session_factors(const fs_config *cfg, const hangar_sched_input *input,
                                            const hangar_sched_session *entry, size_t slots)
{
    hangar_sched_factors f = {.struct_size = sizeof f};
    int64_t now = HS_FIELD_OR(input, hangar_sched_input, now_us, 0);
    int64_t created = HS_FIELD_OR(entry, hangar_sched_session, created_at_us, 0);
    f.age = now > created ? clamp01((double)(now - created) / 1e6 / cfg->max_age_seconds) : 0.0;
    f.fairshare = clamp01(HS_FIELD_OR(entry, hangar_sched_session, fairshare, 1.0));
    f.priority = clamp01((double)HS_FIELD_OR(entry, hangar_sched_session, priority, 0) / 100.0);
    double dominant = 0.0;
    const int64_t *requested = HS_FIELD_OR(entry, hangar_sched_session, requested, NULL);
    for (size_t k = 0; requested != NULL && input->total_capacity != NULL && k < slots; k++) {
        if (input->total_capacity[k] <= 0)
            continue;
        double share = (double)requested[k] / (double)input->total_capacity[k];
        if (share > dominant)
            dominant = share;
    }
    f.size = cfg->favor_small ? 1.0 - clamp01(dominant) : clamp01(dominant);
    f.total = cfg->weight_age * f.age + cfg->weight_fairshare * f.fairshare + cfg->weight_priority * f.priority +
              cfg->weight_size * f.size;
    return f;
}

/* Slot count of a checked input (0 when it carries no slots table). */
static hangar_status slot_count(const hangar_sched_input *input, size_t *out)
{
    hangar_status st = hs_check_slots("pick_next", input->slots, HS_FIELD_END(hangar_sched_slots, slot_count));
    if (st != HANGAR_OK)
        return st;
    *out = input->slots->slot_count;
    return HANGAR_OK;
}

static hangar_status fs_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    if (!instance)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "pick_next: instance is NULL");
    const fs_config *cfg = instance;
    hs_session_list sessions;
    hangar_status st = hs_sched_sessions(input, out_index, true, &sessions);
    if (st != HANGAR_OK)
        return st;
    size_t slots;
    if ((st = slot_count(input, &slots)) != HANGAR_OK)
        return st;
    size_t best = SIZE_MAX;
    int32_t best_prio = 0;
    double best_score = 0.0;
    int64_t best_time = 0;
    for (size_t i = 0; i < sessions.count; i++) {
        const hangar_sched_session *entry;
        if ((st = hs_session_at(&sessions, i, &entry)) != HANGAR_OK)
            return st;
        int32_t prio = cfg->strict_priority ? HS_FIELD_OR(entry, hangar_sched_session, priority, 0) : 0;
        double score = session_factors(cfg, input, entry, slots).total;
        int64_t time = HS_FIELD_OR(entry, hangar_sched_session, created_at_us, 0);
        /* Strict comparisons keep the lowest index among equals. */
        if (best == SIZE_MAX || prio > best_prio ||
            (prio == best_prio && (score > best_score || (score == best_score && time < best_time)))) {
            best = i;
            best_prio = prio;
            best_score = score;
            best_time = time;
        }
    }
    *out_index = best;
    return HANGAR_OK;
}

static hangar_status fs_explain(void *instance, const hangar_sched_input *input, size_t index,
                                hangar_sched_factors *out)
{
    if (!instance)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "explain: instance is NULL");
    if (!out || out->struct_size < HS_FIELD_END(hangar_sched_factors, total))
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "explain: out is NULL or its struct_size is too small");
    size_t unused = 0;
    hs_session_list sessions;
    hangar_status st = hs_sched_sessions(input, &unused, true, &sessions);
    if (st != HANGAR_OK)
        return st;
    if (index >= sessions.count)
        return HS_FAILED(HANGAR_E_INVALID_ARGUMENT, "explain: index %zu is out of range for %zu sessions", index,
                         sessions.count);
    size_t slots;
    if ((st = slot_count(input, &slots)) != HANGAR_OK)
        return st;
    const hangar_sched_session *entry;
    if ((st = hs_session_at(&sessions, index, &entry)) != HANGAR_OK)
        return st;
    *out = session_factors(instance, input, entry, slots);
    return HANGAR_OK;
}

static hangar_status fs_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                               char *err, size_t err_len)
{
    hs_create c;
    fs_config cfg = {0};
    hangar_status st = hs_create_begin(&c, "fairshare", host, config_json, out_instance, err, err_len, 2);
    if (st == HANGAR_OK)
        st = hs_cfg_double(&c, "weight_age", &cfg.weight_age);
    if (st == HANGAR_OK)
        st = hs_cfg_double(&c, "weight_fairshare", &cfg.weight_fairshare);
    if (st == HANGAR_OK)
        st = hs_cfg_double(&c, "weight_priority", &cfg.weight_priority);
    if (st == HANGAR_OK)
        st = hs_cfg_double(&c, "weight_size", &cfg.weight_size);
    if (st == HANGAR_OK)
        st = hs_cfg_double(&c, "max_age_seconds", &cfg.max_age_seconds);
    if (st == HANGAR_OK)
        st = hs_cfg_bool(&c, "favor_small", &cfg.favor_small);
    if (st == HANGAR_OK)
        st = hs_cfg_bool(&c, "strict_priority", &cfg.strict_priority);
    if (st == HANGAR_OK)
        st = hs_create_instance(&c, &cfg, sizeof cfg, out_instance);
    return st;
}

static const hangar_scheduler_functions fs_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = fs_create,
    .destroy = free,
    .last_error = hs_last_error,
    .pick_next = fs_pick_next,
    .explain = fs_explain,
};

#define FS_WEIGHT(name, value, what)                                                                             \
    "\"" name "\":{\"type\":\"number\",\"minimum\":0,\"default\":" value ",\"description\":\"Weight of the " what \
    " factor (each factor is 0-1).\"}"

static const hangar_plugin_descriptor fs_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_SCHEDULER),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "fairshare",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Multifactor priority (age, hierarchical fair share, priority, size) as Slurm's "
                   "priority/multifactor; priorities first unless strict_priority is false.",
    .license = "Apache-2.0",
    .config_schema = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{" FS_WEIGHT(
        "weight_age", "1000", "age") "," FS_WEIGHT("weight_fairshare", "10000", "fair-share") "," FS_WEIGHT(
        "weight_priority", "1000", "priority") "," FS_WEIGHT("weight_size", "0", "size") ","
        "\"max_age_seconds\":{\"type\":\"number\",\"minimum\":1,\"default\":604800,\"description\":\"Waiting this long "
        "gives the full age factor.\"},"
        "\"favor_small\":{\"type\":\"boolean\",\"default\":true,\"description\":\"The size factor favours small "
        "sessions (true) or large ones (false).\"},"
        "\"strict_priority\":{\"type\":\"boolean\",\"default\":true,\"description\":\"Order by session priority "
        "first and by the score within a priority; false makes priority one weighted factor.\"}"
        "}}",
    .functions = &fs_functions,
};

HS_PLUGIN_ENTRY(fs_descriptor, 2)
