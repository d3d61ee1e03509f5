/* libseccomp: syscall names and numbers, for checking sandbox policies (Debian: libseccomp-dev). */
#include <seccomp.h>
