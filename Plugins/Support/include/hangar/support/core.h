/*
 * Hangar plugin support — the plumbing every plugin kind repeats.
 *
 * Header-only and optional: a plugin that includes it still exports nothing
 * but its entry symbol (every function here is `static inline`), links
 * nothing new, and builds with a plain C11 compiler and the PluginAPI
 * headers. A plugin that does not want it can ignore it; the ABI is the
 * PluginAPI headers alone.
 *
 * What it gives (prefix hs_):
 *   - last_error: hs_fail() records a message for the calling thread and
 *     returns the status; hs_last_error is a ready last_error() for any
 *     kind's function table (plugin.h: the host reads the message on the
 *     failing thread right after the call, so one buffer per thread is
 *     exactly enough, for thread-safe plugins too).
 *   - create(): hs_create_begin() checks the arguments and the host table;
 *     hs_cfg_* read config keys through the host's accessors and turn a
 *     failure into create()'s `err` message, naming the key.
 *   - struct_size checks: HS_HAS_FIELD / HS_FIELD_OR.
 *   - descriptor and entry: HS_DESCRIPTOR_ABI() and HS_PLUGIN_ENTRY().
 *   - text: hs_strbuf (bounded appends), hs_format_amount (fixed point).
 *   - files: hs_read_text / hs_read_i64 for sysfs-like trees.
 *
 * Define _GNU_SOURCE before the first include (support/vendor.h uses pipe2 and
 * other GNU/Linux calls; the rest needs POSIX.1-2008).
 */
#ifndef HANGAR_SUPPORT_CORE_H
#define HANGAR_SUPPORT_CORE_H

#include <hangar/hangar.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GNUC__) || defined(__clang__)
/** printf-style format checking for a support or plugin function. */
#define HS_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define HS_PRINTF(fmt_index, first_arg)
#endif

/** Longest last_error message kept; longer ones are truncated. */
#define HS_ERROR_MAX 1024

/* ------------------------------------------------------------------------ */
/* struct_size                                                               */
/* ------------------------------------------------------------------------ */

/** True if `field` of `type` lies entirely within the first `size` bytes: the struct_size rule of plugin.h. */
#define HS_HAS_FIELD(type, field, size) (offsetof(type, field) + sizeof(((type *)0)->field) <= (size_t)(size))

/** `ptr->field` if the filler's struct_size covers it, else `fallback` (fields beyond struct_size read as zero). */
#define HS_FIELD_OR(ptr, type, field, fallback) (HS_HAS_FIELD(type, field, (ptr)->struct_size) ? (ptr)->field : (fallback))

/* ------------------------------------------------------------------------ */
/* last_error                                                                */
/* ------------------------------------------------------------------------ */

/** The calling thread's last failure message: one per thread in each translation unit that
 *  includes this header, so write a plugin as one .c file (its private headers may declare
 *  types, but every hs_fail must be in the file that serves last_error). */
static _Thread_local char hs_thread_error[HS_ERROR_MAX];

/**
 * Records a message for last_error() on the calling thread and returns
 * `status`, so call sites read `return hs_fail(HANGAR_E_NOT_FOUND, "...")`.
 */
static inline HS_PRINTF(2, 3) hangar_status hs_fail(hangar_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs_thread_error, sizeof hs_thread_error, fmt, ap);
    va_end(ap);
    return status;
}

/** Like hs_fail, appending ": <strerror(err)>". */
static inline HS_PRINTF(3, 4) hangar_status hs_fail_errno(hangar_status status, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs_thread_error, sizeof hs_thread_error, fmt, ap);
    va_end(ap);
    size_t n = strlen(hs_thread_error);
    if (n < sizeof hs_thread_error - 1)
        snprintf(hs_thread_error + n, sizeof hs_thread_error - n, ": %s", strerror(err));
    return status;
}

/** A ready last_error() (plugin.h): snprintf semantics, the full length returned, `buf` may be NULL when `buf_len` is 0. */
static inline size_t hs_last_error(void *instance, char *buf, size_t buf_len)
{
    (void)instance;
    size_t n = strlen(hs_thread_error);
    if (buf != NULL && buf_len > 0) {
        size_t c = n < buf_len - 1 ? n : buf_len - 1;
        memcpy(buf, hs_thread_error, c);
        buf[c] = '\0';
    }
    return n;
}

/**
 * Calls a host sink and turns a refusal into a failure, so a listing stops
 * as plugin.h requires: `HS_SINK(sink(ctx, &item), "list_devices")` returns
 * from the enclosing function with the sink's status.
 */
#define HS_SINK(call, what)                                                                                      \
    do {                                                                                                         \
        hangar_status hs_sink_status_ = (call);                                                                  \
        if (hs_sink_status_ != HANGAR_OK)                                                                        \
            return hs_fail(hs_sink_status_, "%s: stopped by the host (status %d)", (what), (int)hs_sink_status_); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* create()                                                                  */
/* ------------------------------------------------------------------------ */

/** What create() works with while it reads its config: the host, the error buffer and the plugin's name for messages. */
typedef struct hs_create {
    const hangar_host_services *host;
    char *err;
    size_t err_len;
    const char *plugin;
} hs_create;

/** Writes create()'s error message ("<plugin>: ...") and returns `status`. */
static inline HS_PRINTF(3, 4) hangar_status hs_create_fail(const hs_create *c, hangar_status status, const char *fmt, ...)
{
    if (c->err == NULL || c->err_len == 0)
        return status;
    int n = snprintf(c->err, c->err_len, "%s: ", c->plugin);
    if (n < 0 || (size_t)n >= c->err_len)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

/**
 * The checks every create() starts with: non-NULL arguments, *out_instance
 * cleared, a host of this ABI major whose services table has the config
 * accessors, and (for plugins that rely on host-applied schema defaults)
 * a host minor of at least `min_host_minor`. Fills *c for the hs_cfg_* calls.
 */
static inline hangar_status hs_create_begin(hs_create *c, const char *plugin, const hangar_host_services *host,
                                            const char *config_json, void **out_instance, char *err, size_t err_len,
                                            uint32_t min_host_minor)
{
    c->host = host;
    c->err = err;
    c->err_len = err_len;
    c->plugin = plugin;
    if (err != NULL && err_len > 0)
        err[0] = '\0';
    if (out_instance != NULL)
        *out_instance = NULL;
    if (host == NULL || config_json == NULL || out_instance == NULL)
        return hs_create_fail(c, HANGAR_E_INVALID_ARGUMENT, "create() got a NULL %s",
                              host == NULL ? "host" : config_json == NULL ? "config_json" : "out_instance");
    if (HANGAR_ABI_VERSION_MAJOR(host->abi_version) != HANGAR_ABI_MAJOR ||
        HANGAR_ABI_VERSION_MINOR(host->abi_version) < min_host_minor ||
        !HS_HAS_FIELD(hangar_host_services, config_count, host->struct_size) || host->config_string == NULL ||
        host->config_int == NULL || host->config_double == NULL || host->config_bool == NULL || host->config_count == NULL)
        return hs_create_fail(c, HANGAR_E_INCOMPATIBLE,
                              "the host (ABI %" PRIu32 ".%" PRIu32 ", services struct_size %" PRIu32
                              ") is too old: this plugin needs ABI %u.%" PRIu32 " or newer with config accessors",
                              HANGAR_ABI_VERSION_MAJOR(host->abi_version), HANGAR_ABI_VERSION_MINOR(host->abi_version),
                              host->struct_size, (unsigned)HANGAR_ABI_MAJOR, min_host_minor);
    return HANGAR_OK;
}

/** Names what went wrong reading `key`: absent (no schema default) or another type. */
static inline hangar_status hs_cfg_problem(const hs_create *c, const char *key, hangar_status st, const char *expected)
{
    if (st == HANGAR_E_NOT_FOUND)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\" is missing; set it (%s)", key, expected);
    return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\": expected %s", key, expected);
}

/** True if `key` is present in the config (after the host applied the schema's defaults). */
static inline bool hs_cfg_has(const hs_create *c, const char *key)
{
    size_t len = 0;
    hangar_status st = c->host->config_string(c->host->host_context, key, NULL, 0, &len);
    return st != HANGAR_E_NOT_FOUND || c->host->config_count(c->host->host_context, key) >= 0;
}

/** Reads an integer key (a schema default makes it always present). */
static inline hangar_status hs_cfg_int(const hs_create *c, const char *key, int64_t *out)
{
    hangar_status st = c->host->config_int(c->host->host_context, key, out);
    return st == HANGAR_OK ? HANGAR_OK : hs_cfg_problem(c, key, st, "an integer");
}

/** Reads a number key. */
static inline hangar_status hs_cfg_double(const hs_create *c, const char *key, double *out)
{
    hangar_status st = c->host->config_double(c->host->host_context, key, out);
    return st == HANGAR_OK ? HANGAR_OK : hs_cfg_problem(c, key, st, "a number");
}

/** Reads a boolean key into a C bool. */
static inline hangar_status hs_cfg_bool(const hs_create *c, const char *key, bool *out)
{
    int32_t v = 0;
    hangar_status st = c->host->config_bool(c->host->host_context, key, &v);
    if (st != HANGAR_OK)
        return hs_cfg_problem(c, key, st, "true or false");
    *out = v != 0;
    return HANGAR_OK;
}

/** Reads a string key into `buf` (NUL-terminated); a value longer than buf_len - 1 is refused, not truncated. */
static inline hangar_status hs_cfg_string(const hs_create *c, const char *key, char *buf, size_t buf_len)
{
    size_t len = 0;
    hangar_status st = c->host->config_string(c->host->host_context, key, buf, buf_len, &len);
    if (st == HANGAR_E_BUFFER_TOO_SMALL)
        return hs_create_fail(c, HANGAR_E_INVALID_CONFIG, "config key \"%s\": at most %zu characters, got %zu", key,
                              buf_len - 1, len);
    return st == HANGAR_OK ? HANGAR_OK : hs_cfg_problem(c, key, st, "a string");
}

/**
 * Reads a string key into a malloc'd copy (*out, freed by the caller).
 * HANGAR_E_NOT_FOUND is returned quietly when the key is absent, for keys
 * without a default.
 */
static inline hangar_status hs_cfg_strdup(const hs_create *c, const char *key, char **out)
{
    *out = NULL;
    size_t len = 0;
    char probe[1];
    hangar_status st = c->host->config_string(c->host->host_context, key, probe, sizeof probe, &len);
    if (st == HANGAR_E_NOT_FOUND)
        return st;
    if (st != HANGAR_OK && st != HANGAR_E_BUFFER_TOO_SMALL)
        return hs_cfg_problem(c, key, st, "a string");
    char *s = malloc(len + 1);
    if (s == NULL)
        return hs_create_fail(c, HANGAR_E_INSUFFICIENT, "out of memory reading config key \"%s\"", key);
    st = c->host->config_string(c->host->host_context, key, s, len + 1, &len);
    if (st != HANGAR_OK) {
        free(s);
        return hs_cfg_problem(c, key, st, "a string");
    }
    *out = s;
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry symbol                                               */
/* ------------------------------------------------------------------------ */

/** The version fields every descriptor starts with, for a designated initializer: `{ HS_DESCRIPTOR_ABI(HANGAR_KIND_ACCELERATOR), .name = ... }`. */
#define HS_DESCRIPTOR_ABI(plugin_kind) \
    .struct_size = sizeof(hangar_plugin_descriptor), .abi_major = HANGAR_ABI_MAJOR, .abi_minor = HANGAR_ABI_MINOR, .kind = (plugin_kind)

/**
 * Defines the one exported symbol: returns &descriptor to hosts of this ABI
 * major whose minor is at least `min_host_minor` (2 for a plugin that relies
 * on host-applied schema defaults), NULL to any other, without side effects.
 */
#define HS_PLUGIN_ENTRY(descriptor, min_host_minor)                                                           \
    HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version);         \
    HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version)          \
    {                                                                                                         \
        if (HANGAR_ABI_VERSION_MAJOR(host_abi_version) != HANGAR_ABI_MAJOR ||                                 \
            HANGAR_ABI_VERSION_MINOR(host_abi_version) < (uint32_t)(min_host_minor))                          \
            return NULL;                                                                                      \
        return &(descriptor);                                                                                 \
    }

/* ------------------------------------------------------------------------ */
/* Text                                                                      */
/* ------------------------------------------------------------------------ */

/** A bounded text buffer; appends past the end set `overflow` instead of writing. */
typedef struct hs_strbuf {
    char text[4096];
    size_t len;
    bool overflow;
} hs_strbuf;

/** Appends formatted text; returns false (and sets overflow) when it does not fit. */
static inline HS_PRINTF(2, 3) bool hs_strbuf_addf(hs_strbuf *b, const char *fmt, ...)
{
    if (b->overflow)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->text - b->len) {
        b->text[b->len] = '\0';
        b->overflow = true;
        return false;
    }
    b->len += (size_t)n;
    return true;
}

/** Appends `item`, preceded by `separator` unless the buffer is empty. */
static inline bool hs_strbuf_add_item(hs_strbuf *b, const char *separator, const char *item)
{
    return hs_strbuf_addf(b, "%s%s", b->len > 0 ? separator : "", item);
}

/** Appends `text` as a JSON string literal (quotes and escapes added) for hand-built JSON such
 *  as extra_info_json; control characters become \u00XX. False on overflow. */
static inline bool hs_strbuf_add_json_string(hs_strbuf *b, const char *text)
{
    if (!hs_strbuf_addf(b, "\""))
        return false;
    for (const unsigned char *p = (const unsigned char *)(text != NULL ? text : ""); *p != '\0'; p++) {
        bool ok = *p == '"' || *p == '\\' ? hs_strbuf_addf(b, "\\%c", *p)
                  : *p < 0x20           ? hs_strbuf_addf(b, "\\u%04x", *p)
                                        : hs_strbuf_addf(b, "%c", *p);
        if (!ok)
            return false;
    }
    return hs_strbuf_addf(b, "\"");
}

/** Writes a fixed-point amount as text: count/unique slots in units with trimmed decimals ("0.25"), bytes slots as "N bytes". */
static inline void hs_format_amount(char *buf, size_t len, int64_t amount, uint32_t slot_type)
{
    if (slot_type == HANGAR_SLOT_BYTES) {
        snprintf(buf, len, "%" PRId64 " bytes", amount);
        return;
    }
    uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t whole = mag / (uint64_t)HANGAR_AMOUNT_SCALE, frac = mag % (uint64_t)HANGAR_AMOUNT_SCALE;
    if (frac == 0) {
        snprintf(buf, len, "%s%" PRIu64, amount < 0 ? "-" : "", whole);
        return;
    }
    char digits[8];
    snprintf(digits, sizeof digits, "%06" PRIu64, frac);
    for (size_t i = strlen(digits); i > 0 && digits[i - 1] == '0'; i--)
        digits[i - 1] = '\0';
    snprintf(buf, len, "%s%" PRIu64 ".%s", amount < 0 ? "-" : "", whole, digits);
}

/* ------------------------------------------------------------------------ */
/* Files (sysfs, procfs, fake trees in tests)                                */
/* ------------------------------------------------------------------------ */

/**
 * Reads a small text file into `buf` with trailing white space removed.
 * Returns 0, or an errno value (ENAMETOOLONG for a path over PATH limits,
 * EFBIG when the content does not fit).
 */
static inline int hs_read_text(const char *path, char *buf, size_t len)
{
    if (len == 0)
        return EINVAL;
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == len - 1) {
            char extra;
            if (read(fd, &extra, 1) > 0) {
                close(fd);
                buf[0] = '\0'; /* never hand on a cut-off value */
                return EFBIG;
            }
            break;
        }
    }
    close(fd);
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' ' || buf[got - 1] == '\t' || buf[got - 1] == '\r'))
        got--;
    buf[got] = '\0';
    return 0;
}

/** Reads a file holding one integer (decimal, or hex with 0x). Returns 0, an errno value, or EINVAL for other text. */
static inline int hs_read_i64(const char *path, int64_t *out)
{
    char text[64];
    int e = hs_read_text(path, text, sizeof text);
    if (e != 0)
        return e;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 0);
    if (end == text || *end != '\0' || errno != 0)
        return EINVAL;
    *out = (int64_t)v;
    return 0;
}

/** Reads the small text file at a formatted path into `buf` (trailing white space removed); "" when it cannot be read. */
static inline HS_PRINTF(3, 4) void hs_read_textf(char *buf, size_t len, const char *fmt, ...)
{
    char path[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof path || hs_read_text(path, buf, len) != 0)
        buf[0] = '\0';
}

/** Reads the integer in the file at a formatted path, or returns `fallback` when it is absent or not one integer. */
static inline HS_PRINTF(2, 3) int64_t hs_read_i64f(int64_t fallback, const char *fmt, ...)
{
    char path[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    int64_t v = fallback;
    return n >= 0 && (size_t)n < sizeof path && hs_read_i64(path, &v) == 0 ? v : fallback;
}

/** snprintf into a path buffer; false when the path was truncated. */
static inline HS_PRINTF(3, 4) bool hs_pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

#endif /* HANGAR_SUPPORT_CORE_H */
