/*
 * lifo — last in, first out within priority.
 *
 * pick_next returns, among the pending sessions of the highest priority, the
 * one enqueued last (largest created_at_us); equal times go to the higher
 * index, the later one. num_retries_to_skip works as in fifo: a newest
 * session that has failed to fit more than that many times stops blocking
 * the older ones (0 = never).
 *
 * fifo is the same queue served from the other end; both are
 * hs_queue_pick (support/scheduling.h) with their own direction. Instances
 * keep only their configuration and no state between calls: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

static hangar_status lifo_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                 char *err, size_t err_len)
{
    return hs_queue_create("lifo", host, config_json, out_instance, err, err_len);
}

static hangar_status lifo_pick_next(void *instance, const hangar_sched_input *input, size_t *out_index)
{
    return hs_queue_pick(instance, input, HS_NEWEST_FIRST, out_index);
}

static const hangar_scheduler_functions lifo_functions = {
    .struct_size = sizeof(hangar_scheduler_functions),
    .create = lifo_create,
    .destroy = free, /* the instance is one malloc'd hs_queue */
    .last_error = hs_last_error,
    .pick_next = lifo_pick_next,
};

static const hangar_plugin_descriptor lifo_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_SCHEDULER),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "lifo",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Last in, first out: the newest pending session of the highest priority runs next.",
    .license = "Apache-2.0",
    .config_schema = HS_QUEUE_SCHEMA,
    .functions = &lifo_functions,
};

HS_PLUGIN_ENTRY(lifo_descriptor, 2)
