/*
 * test_timeout_flags.c - the timeout flags of serve and the client commands
 * (appliance/timeouts.c): seconds with up to 3 decimals to milliseconds, 0 only where it
 * means something, every bad value refused with a message naming the flag.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "appliance/timeouts.h"

static int opt(struct app_timeouts *t, const char *name, const char *value, char *err)
{
    return app_timeout_opt(t, name, value, "--x", err, 200);
}

Test(timeout_flags, seconds_to_ms)
{
    struct app_timeouts t = { 0 };
    char err[200];

    cr_assert_eq(opt(&t, "command-timeout", "30", err), 1);
    cr_assert_eq(t.s.command_ms, 30000);
    cr_assert_eq(opt(&t, "nop-timeout", "1.5", err), 1);
    cr_assert_eq(t.s.nop_timeout_ms, 1500);
    cr_assert_eq(opt(&t, "abort-timeout", "0.25", err), 1);
    cr_assert_eq(t.s.abort_ms, 250);
    cr_assert_eq(opt(&t, "lun-reset-timeout", "86400", err), 1);
    cr_assert_eq(t.s.lun_reset_ms, 86400000);
    cr_assert_eq(opt(&t, "login-timeout", "2", err), 1);
    cr_assert_eq(t.s.login_ms, 2000);
    cr_assert_eq(opt(&t, "logout-timeout", "0.001", err), 1);
    cr_assert_eq(t.s.logout_ms, 1);
    cr_assert_eq(opt(&t, "replacement-timeout", "120", err), 1);
    cr_assert_eq(t.replacement_ms, 120000);
}

Test(timeout_flags, zero_only_where_it_means_something)
{
    struct app_timeouts t = { 0 };
    char err[200];

    cr_assert_eq(opt(&t, "nop-interval", "0", err), 1);
    cr_assert_eq(t.s.nop_interval_ms, ISC_TIMEOUT_ZERO, "0: no pings (not the default)");
    cr_assert_eq(opt(&t, "replacement-timeout", "0", err), 1);
    cr_assert_eq(t.replacement_ms, ISC_TIMEOUT_ZERO);
    cr_assert_eq(opt(&t, "command-timeout", "0", err), -EINVAL);
    cr_assert(strstr(err, "--x") && strstr(err, "\"0\""), "%s", err);
    cr_assert_eq(opt(&t, "login-timeout", "0.000", err), -EINVAL);
    cr_assert_eq(t.s.command_ms, 0, "a refused value changes nothing");
}

Test(timeout_flags, bad_values_are_named)
{
    static const char *const bad[] = {
        "", "-1", "+1", "1e3", "abc", "1.", ".5", "1.2345", "86400.001", "86401",
        "99999999999999999999", " 1", "1 ", "0x10", "1,5",
    };
    struct app_timeouts t = { 0 };
    char err[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(opt(&t, "abort-timeout", bad[i], err), -EINVAL, "\"%s\" accepted", bad[i]);
        cr_assert(strstr(err, "seconds"), "\"%s\": %s", bad[i], err);
    }
    cr_assert_eq(opt(&t, "abort-timeout", NULL, err), -EINVAL);
}

Test(timeout_flags, other_names_are_not_ours)
{
    struct app_timeouts t = { 0 };
    char err[200];

    cr_assert_eq(opt(&t, "toe-mtu", "9000", err), 0);
    cr_assert_eq(opt(&t, "timeout", "5", err), 0);
}
