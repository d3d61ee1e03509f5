/* libnuma: NUMA topology of the node (Debian: libnuma-dev). */
#include <numa.h>
