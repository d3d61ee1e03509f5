/*
 * concentrated — Hangar's reference agent selector: pack sessions tightly.
 *
 * The choice follows Backend.AI's agent selectors so that both platforms make
 * the same decisions on the same cluster: among the candidates that fit, the
 * agent whose free amounts, read in resource-priority order (default cuda,
 * rocm, tpu, cpu, mem; a group sums every slot named "<group>" or
 * "<group>.*"; other slots come last), are lexicographically smallest. Ties
 * go to the lower index, the candidate order. The priority is configurable
 * (resource_priority).
 *
 * Fit: for every slot, occupied + request <= capacity. A slot an agent has no
 * capacity for can only be requested as 0, and an agent already over its
 * capacity on some slot takes nothing. Multi-node sessions are placed kernel
 * by kernel, counting what earlier kernels of the same session took on each
 * agent, so several kernels may share an agent but never overfill it.
 *
 * dispersed is the same order reversed: both are HS_PRIORITY_SELECTOR
 * (support/scheduling.h), each with its own direction. Instances only hold
 * their configuration: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

/* Defines concentrated_create, concentrated_select_agents and concentrated_functions: least free first. */
HS_PRIORITY_SELECTOR(concentrated, HS_LEAST_FREE_FIRST)

static const hangar_plugin_descriptor concentrated_descriptor = {
    HS_DESCRIPTOR_ABI(HANGAR_KIND_AGENT_SELECTOR),
    .thread_safety = HANGAR_THREAD_SAFE,
    .name = "concentrated",
    .vendor = "Hangar",
    .version = "1.0.0",
    .description = "Packs kernels onto the agent that fits them most tightly (Backend.AI's concentrated order).",
    .license = "Apache-2.0",
    .config_schema = HS_PRIORITY_SCHEMA,
    .functions = &concentrated_functions,
};

HS_PLUGIN_ENTRY(concentrated_descriptor, 2)
