/*
 * lifo — the newest pending session of the highest priority runs next: the same
 * scheduler as fifo with the order reversed. One source keeps the two in step;
 * see ../FIFO/fifo.c.
 */
#define HANGAR_SCHEDULER_LIFO 1
#include "../FIFO/fifo.c"
