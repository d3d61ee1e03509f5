/* SQLite, the embedded default state store (Debian: libsqlite3-dev). */
#include <sqlite3.h>
