/*
 * dispersed — spreads sessions over agents.
 *
 * Backend.AI's dispersed selector: among the candidates that fit, the agent
 * whose free amounts, read in resource-priority order (default cuda, rocm,
 * tpu, cpu, mem; a group sums every slot named "<group>" or "<group>.*";
 * other slots come last), are lexicographically largest. Ties go to the
 * lower index. The priority is configurable (resource_priority). Fit and
 * multi-node placement are as in concentrated.
 *
 * concentrated is the same order reversed: both are HS_PRIORITY_SELECTOR
 * (support/scheduling.h), each with its own direction. Instances only hold
 * their configuration: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

/* Defines dispersed_create, dispersed_select_agents and dispersed_functions: most free first. */
HS_PRIORITY_SELECTOR(dispersed, HS_MOST_FREE_FIRST)

static const hangar_plugin_descriptor dispersed_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_AGENT_SELECTOR),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "dispersed",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Spreads kernels onto the agents with the most free capacity (Backend.AI's dispersed order).",
    .license = "Apache-2.0",
    .config_schema = HS_PRIORITY_SCHEMA,
    .functions = &dispersed_functions,
};

HS_PLUGIN_ENTRY(dispersed_descriptor, 2)
