/*
 * timeouts.h - the timeout flags shared by `toegw serve` and the client commands, in
 * seconds (open-iscsi's names and defaults): --login-timeout, --logout-timeout,
 * --nop-interval, --nop-timeout, --command-timeout, --abort-timeout, --lun-reset-timeout
 * and --replacement-timeout.
 */
#ifndef TOEGW_APPLIANCE_TIMEOUTS_H
#define TOEGW_APPLIANCE_TIMEOUTS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/iscsi.h"

#define APP_TIMEOUT_MAX_S 86400

struct app_timeouts {
    struct isc_timeouts s;      /* the sessions' (0: default) */
    uint32_t replacement_ms;    /* 0: default; ISC_TIMEOUT_ZERO: held I/O fails at once */
};

/*
 * Apply one flag given by its long name without dashes. Returns 1 when the name is a
 * timeout flag and the value is good, 0 when the name is not one, -EINVAL (a message that
 * names `source`, e.g. "--nop-timeout" or "TOEGW_NOP_TIMEOUT", in err) when the value is
 * bad. Values: seconds with up to 3 decimals, at most APP_TIMEOUT_MAX_S; 0 only where it
 * means something (no NOP-Out pings; no holding I/O while recovering).
 */
int app_timeout_opt(struct app_timeouts *t, const char *name, const char *value,
                    const char *source, char *err, size_t errlen);

#endif
