/* zlib, for gzip-compressing the web UI's files (Debian: zlib1g-dev). */
#include <zlib.h>
