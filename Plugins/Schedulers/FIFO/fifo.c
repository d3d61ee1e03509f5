/*
 * fifo — Hangar's reference scheduler: first in, first out within priority.
 *
 * pick_next returns, among the pending sessions of the highest priority, the
 * one enqueued first (smallest created_at_us); equal times go to the lower
 * index. num_retries_to_skip (0 = strict head-of-line blocking) lets sessions
 * behind a head that has failed to fit more than that many times go first,
 * using the attempts count the snapshot carries from ABI 1.1 on.
 *
 * lifo is the same queue served from the other end: both are
 * HS_QUEUE_SCHEDULER (support/scheduling.h), each with its own direction.
 * Instances keep only their configuration and no state between calls:
 * thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

/* Defines fifo_create, fifo_pick_next and fifo_functions: the queue served oldest first. */
HS_QUEUE_SCHEDULER(fifo, HS_OLDEST_FIRST)

static const hangar_plugin_descriptor fifo_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_SCHEDULER),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "fifo",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "First in, first out: the oldest pending session of the highest priority runs next.",
    .license = "Apache-2.0",
    .config_schema = HS_QUEUE_SCHEMA,
    .functions = &fifo_functions,
};

HS_PLUGIN_ENTRY(fifo_descriptor, 2)
