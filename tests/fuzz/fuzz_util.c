/*
 * fuzz_util.c - helpers shared by the fuzz harnesses (see fuzz.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/fuzz/fuzz.h"

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("fuzz property: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

int fuzz_open_checks(void)
{
    static int on = -1;

    if (on < 0) {
        const char *env = getenv("TOEGW_FUZZ_OPEN");
        on = env && !strcmp(env, "1");
    }
    return on;
}

void fuzz_quiet_logs(void)
{
    static int done;
    enum log_level lvl = LOG_LVL_ERROR;
    const char *env = getenv("TOEGW_FUZZ_LOG");

    if (done)
        return;
    done = 1;
    if (env && log_parse_level(env, &lvl) < 0)
        lvl = LOG_LVL_ERROR;
    log_set_level(lvl);
}

int fuzz_printable_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
