/*
 * log.c - text or JSON-lines logging on stderr.
 */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LOG_LVL_INFO;
static enum log_format cur_format = LOG_FMT_TEXT;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level) { cur_level = level; }
void log_set_format(enum log_format format) { cur_format = format; }
enum log_level log_get_level(void) { return cur_level; }

int log_parse_level(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -EINVAL;
    return 0;
}

/* Append `s` to buf as the body of a JSON string; returns the new length (truncates). */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

/* The fields: in JSON members of their own, in text " key=value" after the message. */
static size_t put_fields(char *line, size_t n, size_t cap, const struct log_field *f, bool json)
{
    for (; f && f->key && n + 8 < cap; f++) {
        if (!f->value || !*f->value)
            continue;
        if (json) {
            n += (size_t)snprintf(line + n, cap - n, ",\"");
            n = json_escape(line, n, cap, f->key);
            n += (size_t)snprintf(line + n, cap - n, "\":\"");
            n = json_escape(line, n, cap, f->value);
            n += (size_t)snprintf(line + n, cap - n, "\"");
        } else {
            /* a value with a space is quoted, so that key=value pairs still split */
            bool q = strpbrk(f->value, " \t\"") != NULL;
            n += (size_t)snprintf(line + n, cap - n, " %s=%s%s%s", f->key, q ? "\"" : "",
                                  f->value, q ? "\"" : "");
        }
        if (n >= cap)
            n = cap - 1;
    }
    return n;
}

static void vemit(enum log_level level, const char *mod, const struct log_field *fields,
                  const char *fmt, va_list ap)
{
    char msg[1024];
    char line[2300];
    struct timeval tv;
    struct tm tm;
    char ts[40];
    size_t n;
    int saved_errno = errno;

    if (level > cur_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    if (cur_format == LOG_FMT_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"",
                             ts, level_names[level]);
        n = json_escape(line, n, sizeof(line), mod);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"msg\":\"");
        n = json_escape(line, n, sizeof(line), msg);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\"");
        n = put_fields(line, n, sizeof(line) - 3, fields, true);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "}\n");
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %-5s %s: %s", ts, level_names[level],
                             mod, msg);
        if (n < sizeof(line) - 2)
            n = put_fields(line, n, sizeof(line) - 2, fields, false);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\n");
    }
    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
    errno = saved_errno;
}

bool log_rate_due(struct log_rate *r, uint64_t *left_out)
{
    struct timespec ts;
    uint64_t now, last = atomic_load_explicit(&r->last_ms, memory_order_relaxed);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    /* of threads that find it due at once, the one that moves last_ms logs */
    if ((last && now - last < LOG_RATE_MS) ||
        !atomic_compare_exchange_strong(&r->last_ms, &last, now)) {
        atomic_fetch_add(&r->left_out, 1);
        return false;
    }
    *left_out = atomic_exchange(&r->left_out, 0);
    return true;
}

void log_vemit(enum log_level level, const char *mod, const char *fmt, va_list ap)
{
    vemit(level, mod, NULL, fmt, ap);
}

void log_emit(enum log_level level, const char *mod, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vemit(level, mod, NULL, fmt, ap);
    va_end(ap);
}

void log_emit_f(enum log_level level, const char *mod, const struct log_field *fields,
                const char *fmt, ...)
{
    va_list ap;

    if (level > cur_level)
        return;
    va_start(ap, fmt);
    vemit(level, mod, fields, fmt, ap);
    va_end(ap);
}
