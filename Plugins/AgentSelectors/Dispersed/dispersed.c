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
 * concentrated is the same order reversed; both are hs_priority_place
 * (support/scheduling.h) with their own direction. Instances only hold their
 * configuration: thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* core.h uses POSIX open/read; the package defines this, a standalone cc may not */
#endif

#include <hangar/support/scheduling.h>

static hangar_status dispersed_create(const hangar_host_services *host, const char *config_json, void **out_instance,
                                      char *err, size_t err_len)
{
    return hs_priority_create("dispersed", host, config_json, out_instance, err, err_len);
}

static hangar_status dispersed_select_agents(void *instance, const hangar_select_input *input, size_t *out_agent_indices)
{
    return hs_priority_place(instance, HS_MOST_FREE_FIRST, input, out_agent_indices);
}

static const hangar_agent_selector_functions dispersed_functions = {
    .struct_size = sizeof(hangar_agent_selector_functions),
    .create = dispersed_create,
    .destroy = free, /* the instance is one malloc'd hs_priority_groups */
    .last_error = hs_last_error,
    .select_agents = dispersed_select_agents,
};

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
