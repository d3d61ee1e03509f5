/*
 * dispersed — spreads sessions over agents: the same selector as concentrated
 * with the order reversed (the agent with the most free capacity, read in
 * resource-priority order, wins). One source keeps the two in step; see
 * ../Concentrated/concentrated.c.
 */
#define HANGAR_SELECTOR_DISPERSED 1
#include "../Concentrated/concentrated.c"
