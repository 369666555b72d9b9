/*
 * log.h - one-line-per-event logging to stderr, as text or JSON lines.
 *
 * Shared by every module (it sits below them all). Messages are lowercase, say what
 * failed and why. Never pass a secret to these functions.
 */
#ifndef TOEGW_COMMON_LOG_H
#define TOEGW_COMMON_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN,
    LOG_LVL_INFO,
    LOG_LVL_DEBUG,
};

enum log_format {
    LOG_FMT_TEXT = 0,
    LOG_FMT_JSON,
};

/* Not thread-safe to call concurrently with log_emit; set these once at start-up. */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
enum log_level log_get_level(void);

/* Parse "error|warn|info|debug" / "text|json"; 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
int log_parse_format(const char *s, enum log_format *out);

/* Emit one event from module `mod` (e.g. "iscsi"). Thread-safe: one write(2) per line. */
void log_emit(enum log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vemit(enum log_level level, const char *mod, const char *fmt, va_list ap);

/*
 * Structured fields of an event (session, volume, portal, stack, err, ...): in JSON logs
 * members of their own beside "msg", in text logs " key=value" after the message (quoted
 * when the value holds a space). A NULL or empty value is left out. Build the list with
 * LOG_FIELDS({"session", id}, {"err", why}).
 */
struct log_field {
    const char *key;
    const char *value;
};
#define LOG_FIELDS(...) ((const struct log_field[]){ __VA_ARGS__, { NULL, NULL } })
void log_emit_f(enum log_level level, const char *mod, const struct log_field *fields,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define log_error_f(mod, f, ...) log_emit_f(LOG_LVL_ERROR, mod, f, __VA_ARGS__)
#define log_warn_f(mod, f, ...)  log_emit_f(LOG_LVL_WARN, mod, f, __VA_ARGS__)
#define log_info_f(mod, f, ...)  log_emit_f(LOG_LVL_INFO, mod, f, __VA_ARGS__)

/*
 * A line that peers can make repeat at their own rate (a refused connection, a failed
 * handshake): log_rate_due says whether it goes out now. The first one goes out, later ones
 * within LOG_RATE_MS of it are counted; *left_out is how many were held back since the line
 * last went out, for the line to say so. Thread-safe; zero-initialise.
 */
#define LOG_RATE_MS 1000
struct log_rate {
    _Atomic uint64_t last_ms;
    _Atomic uint64_t left_out;
};
bool log_rate_due(struct log_rate *r, uint64_t *left_out);

#define log_error(mod, ...) log_emit(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_emit(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_emit(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) \
    do { \
        if (log_get_level() >= LOG_LVL_DEBUG) \
            log_emit(LOG_LVL_DEBUG, mod, __VA_ARGS__); \
    } while (0)

#endif
