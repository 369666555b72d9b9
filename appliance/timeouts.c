/*
 * timeouts.c - parsing of the timeout flags (appliance/timeouts.h).
 */
#include "appliance/timeouts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct tflag {
    const char *name;
    size_t off;            /* of the uint32_t in struct app_timeouts */
    const char *zero;      /* what 0 means, NULL: 0 is refused */
};

#define TS(m) offsetof(struct app_timeouts, s.m)

static const struct tflag tflags[] = {
    { "login-timeout", TS(login_ms), NULL },
    { "logout-timeout", TS(logout_ms), NULL },
    { "nop-interval", TS(nop_interval_ms), "no nop-out pings" },
    { "nop-timeout", TS(nop_timeout_ms), NULL },
    { "command-timeout", TS(command_ms), NULL },
    { "abort-timeout", TS(abort_ms), NULL },
    { "lun-reset-timeout", TS(lun_reset_ms), NULL },
    { "replacement-timeout", offsetof(struct app_timeouts, replacement_ms),
      "held i/o fails at once" },
};

/* "30", "1.5", "0.25": milliseconds, or -EINVAL. */
static int parse_seconds(const char *s, uint64_t *ms)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > APP_TIMEOUT_MAX_S)
            return -EINVAL;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, fdigits++) {
            if (fdigits == 3)
                return -EINVAL;
            frac = frac * 10 + (uint64_t)(*p - '0');
        }
        if (!fdigits)
            return -EINVAL;
        for (int i = fdigits; i < 3; i++)
            frac *= 10;
    }
    if (*p || !digits)
        return -EINVAL;
    *ms = whole * 1000 + frac;
    return *ms > APP_TIMEOUT_MAX_S * 1000ull ? -EINVAL : 0;
}

int app_timeout_opt(struct app_timeouts *t, const char *name, const char *value,
                    const char *source, char *err, size_t errlen)
{
    uint64_t ms;

    for (size_t i = 0; i < sizeof(tflags) / sizeof(tflags[0]); i++) {
        const struct tflag *f = &tflags[i];
        uint32_t *slot;

        if (strcmp(name, f->name) != 0)
            continue;
        if (!value || parse_seconds(value, &ms) < 0 || (ms == 0 && !f->zero)) {
            if (f->zero)
                snprintf(err, errlen, "%s must be seconds from 0 to %u, up to 3 decimals "
                         "(0: %s), not \"%.32s\"", source, APP_TIMEOUT_MAX_S, f->zero,
                         value ? value : "");
            else
                snprintf(err, errlen, "%s must be seconds from 0.001 to %u, up to 3 "
                         "decimals, not \"%.32s\"", source, APP_TIMEOUT_MAX_S,
                         value ? value : "");
            return -EINVAL;
        }
        slot = (uint32_t *)((char *)t + f->off);
        *slot = ms ? (uint32_t)ms : ISC_TIMEOUT_ZERO;
        return 1;
    }
    return 0;
}
