/*
 * The bundled fifo scheduler (-DFX_SCHEDULER) or concentrated selector (-DFX_SELECTOR) with
 * one defect, chosen by one -DBREAK_<NAME> switch, for the conformance suite's broken-fixture
 * table of the scheduler and selector checks. The plugin's source is included as it is; this
 * file wraps its function table and descriptor.
 */
#define hangar_plugin_entry_v1 wrapped_entry_v1
#if defined(FX_FAIRSHARE)
#include "../../../Plugins/Schedulers/FairShare/fairshare.c"
#define FX_WRAPPED_DESCRIPTOR fs_descriptor
#elif defined(FX_SCHEDULER)
#include "../../../Plugins/Schedulers/FIFO/fifo.c"
#define FX_WRAPPED_DESCRIPTOR fifo_descriptor
#else
#include "../../../Plugins/AgentSelectors/Concentrated/concentrated.c"
#define FX_WRAPPED_DESCRIPTOR concentrated_descriptor
#endif
#undef hangar_plugin_entry_v1

static hangar_plugin_descriptor fx_descriptor;

#if defined(FX_FAIRSHARE)
static hangar_scheduler_functions fx_functions;

/* BREAK_EXPLAIN: reports a total that disagrees with pick_next's order. */
static hangar_status fx_explain(void *instance, const hangar_sched_input *input, size_t index, hangar_sched_factors *out)
{
    hangar_status st = fs_explain(instance, input, index, out);
#ifdef BREAK_EXPLAIN
    if (st == HANGAR_OK)
        out->total = -out->total;
#endif
    return st;
}
#elif defined(FX_SCHEDULER)
static hangar_scheduler_functions fx_functions;

static hangar_status fx_pick_next(void *instance, const hangar_sched_input *input, size_t *out)
{
#ifdef BREAK_NULL_INPUT
    if (input == NULL || out == NULL)
        return HANGAR_OK;
#endif
#ifdef BREAK_EMPTY_QUEUE
    if (input != NULL && input->session_count == 0 && out != NULL) {
        *out = 0;
        return HANGAR_OK;
    }
#endif
#ifdef BREAK_PICK_RANGE
    if (input != NULL && out != NULL && input->session_count > 0) {
        *out = input->session_count; /* one past the end */
        return HANGAR_OK;
    }
#endif
#ifdef BREAK_NONDETERMINISTIC
    static size_t calls;
    if (input != NULL && out != NULL && input->session_count > 1) {
        *out = calls++ % input->session_count;
        return HANGAR_OK;
    }
#endif
#ifdef BREAK_PRIORITY
    /* Serves arrival order alone: the same queue with every priority cleared. */
    if (input != NULL && out != NULL && input->session_count > 0) {
        unsigned char *copy = malloc(input->session_count * input->session_stride);
        if (copy == NULL)
            return hs_fail(HANGAR_E_INSUFFICIENT, "pick_next: out of memory");
        memcpy(copy, input->sessions, input->session_count * input->session_stride);
        for (size_t i = 0; i < input->session_count; i++)
            ((hangar_sched_session *)(copy + i * input->session_stride))->priority = 0;
        hangar_sched_input flat = *input;
        flat.sessions = (const hangar_sched_session *)copy;
        hangar_status st = fifo_pick_next(instance, &flat, out);
        free(copy);
        return st;
    }
#endif
    return fifo_pick_next(instance, input, out);
}
#else
static hangar_agent_selector_functions fx_functions;

static hangar_status fx_select_agents(void *instance, const hangar_select_input *input, size_t *out)
{
#ifdef BREAK_SELECT_NULL
    if (input == NULL || input->kernel_count == 0)
        return HANGAR_OK;
#endif
#ifdef BREAK_PLACE_FIRST
    if (input != NULL && out != NULL && input->agent_count > 0) {
        for (size_t k = 0; k < input->kernel_count; k++)
            out[k] = 0; /* the first candidate, fit or not */
        return HANGAR_OK;
    }
#endif
#ifdef BREAK_OVERCOMMITTED
    /* Takes an agent that is already over its capacity. */
    for (size_t a = 0; input != NULL && out != NULL && a < input->agent_count; a++) {
        const hangar_select_agent *agent = HANGAR_ARRAY_AT(hangar_select_agent, input->agents, input->agent_stride, a);
        for (size_t s = 0; s < input->slots->slot_count; s++) {
            if (agent->occupied[s] > agent->capacity[s]) {
                for (size_t k = 0; k < input->kernel_count; k++)
                    out[k] = a;
                return HANGAR_OK;
            }
        }
    }
#endif
#if defined(BREAK_ARCH) || defined(BREAK_MULTI_OVERCOMMIT)
    if (input != NULL && out != NULL) {
        hangar_select_input loose = *input;
#ifdef BREAK_ARCH
        loose.architecture = NULL; /* any architecture will do */
        return concentrated_select_agents(instance, &loose, out);
#else
        /* Places the first kernel and puts every other one beside it, without counting. */
        loose.kernel_count = 1;
        hangar_status st = concentrated_select_agents(instance, &loose, out);
        for (size_t k = 1; st == HANGAR_OK && k < input->kernel_count; k++)
            out[k] = out[0];
        return st;
#endif
    }
#endif
    hangar_status st = concentrated_select_agents(instance, input, out);
#ifdef BREAK_TOO_BIG_SILENT
    if (st == HANGAR_E_NO_AGENT)
        hs_thread_error[0] = '\0';
#endif
#ifdef BREAK_SPREAD
    /* Moves the second kernel of a single-node session to another agent that fits it alone. */
    if (st == HANGAR_OK && input->kernel_count >= 2 && input->agent_count >= 2)
        out[1] = out[0] == 0 ? 1 : 0;
#endif
    return st;
}
#endif

HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)
{
    if (wrapped_entry_v1(host_abi_version) == NULL)
        return NULL;
    if (fx_descriptor.struct_size == 0) {
        fx_descriptor = FX_WRAPPED_DESCRIPTOR;
#if defined(FX_FAIRSHARE)
        fx_functions = fs_functions;
        fx_functions.explain = fx_explain;
        fx_descriptor.name = "fairshare-broken";
#elif defined(FX_SCHEDULER)
        fx_functions = fifo_functions;
        fx_functions.pick_next = fx_pick_next;
        fx_descriptor.name = "fifo-broken";
#else
        fx_functions = concentrated_functions;
        fx_functions.select_agents = fx_select_agents;
        fx_descriptor.name = "concentrated-broken";
#endif
        fx_descriptor.functions = &fx_functions;
    }
    return &fx_descriptor;
}
