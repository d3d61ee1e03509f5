/* libltdl (GNU libtool's portable dlopen) for the plugin host. libltdl ships no .pc file. */
#include <ltdl.h>
