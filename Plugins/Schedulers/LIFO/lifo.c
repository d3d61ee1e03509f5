/*
 * lifo — last in, first out within priority.
 *
 * pick_next returns, among the pending sessions of the highest priority, the
 * one enqueued last (largest created_at_us); equal times go to the higher
 * index, the later one. num_retries_to_skip works as in fifo: a newest
 * session that has failed to fit more than that many times stops blocking
 * the older ones (0 = never).
 *
 * fifo is the same queue served from the other end: both are
 * HS_QUEUE_SCHEDULER (support/scheduling.h), each with its own direction.
 * Instances keep only their configuration and no state between calls:
 * thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

/* Defines lifo_create, lifo_pick_next and lifo_functions: the queue served newest first. */
HS_QUEUE_SCHEDULER(lifo, HS_NEWEST_FIRST)

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
