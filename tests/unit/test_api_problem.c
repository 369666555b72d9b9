/*
 * test_api_problem.c - RFC 9457 problem details, the mapping of the manager's error classes
 * to statuses (docs/api.md), bearer-token checks and the renderers' buffer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

static json_t *parse(const char *s)
{
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);

    cr_assert_not_null(j, "not json (%s): %s", jerr.text, s);
    return j;
}

/* ---------------------------------------------------------------- rendering */

Test(problem, shape)
{
    struct api_err e;
    json_t *j;
    size_t len = 0;
    char *s;

    api_err_set(&e, 404, "no volume \"%s\"", "v-1");
    s = api_problem_render(&e, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, strlen(s));
    cr_assert_eq(s[len - 1], '\n');
    j = parse(s);
    cr_assert_eq(json_object_size(j), 4, "exactly type, title, status, detail");
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "urn:toegw:problem:not-found");
    cr_assert_str_eq(json_string_value(json_object_get(j, "title")), "not found");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 404);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), "no volume \"v-1\"");
    json_decref(j);
    free(s);
}

Test(problem, escapes_the_detail)
{
    struct api_err e;
    json_t *j;
    char *s;

    api_err_set(&e, 422, "field \"a\\b\" has\na newline and \x01 a control byte");
    s = api_problem_render(&e, NULL);
    cr_assert_null(strchr(s, '\x01'));
    j = parse(s);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), e.detail);
    json_decref(j);
    free(s);
}

Test(problem, long_detail_is_truncated)
{
    char big[2000];
    struct api_err e;
    char *s;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    api_err_set(&e, 500, "%s", big);
    cr_assert_eq(strlen(e.detail), API_DETAIL_MAX - 1);
    s = api_problem_render(&e, NULL);
    json_decref(parse(s));
    free(s);
}

Test(problem, default_titles)
{
    static const int statuses[] = { 400, 401, 404, 405, 409, 413, 415, 416, 422, 500, 502,
                                    503, 504 };
    struct api_err e;

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        api_err_set(&e, statuses[i], "x");
        cr_assert_eq(e.status, statuses[i]);
        cr_assert_not_null(e.title);
        cr_assert_not_null(e.type);
        cr_assert_neq(e.title[0], '\0');
    }
    api_err_set(&e, 401, "x");
    cr_assert_str_eq(e.title, "unauthorized");
    api_err_set(&e, 413, "x");
    cr_assert_str_eq(e.title, "content too large");
    api_err_set(&e, 504, "x");
    cr_assert_str_eq(e.title, "portal unreachable");
    api_err_set(&e, 418, "x");
    cr_assert_str_eq(e.title, "error", "an unlisted status still renders");
}

/* ---------------------------------------------------------------- the manager's classes */

Test(problem, class_statuses)
{
    cr_assert_eq(api_status_of_class(STO_ERR_INVALID), 422);
    cr_assert_eq(api_status_of_class(STO_ERR_NOT_FOUND), 404);
    cr_assert_eq(api_status_of_class(STO_ERR_CONFLICT), 409);
    cr_assert_eq(api_status_of_class(STO_ERR_LOGIN), 502);
    cr_assert_eq(api_status_of_class(STO_ERR_UNREACHABLE), 504);
    cr_assert_eq(api_status_of_class(STO_ERR_IO), 502);
    cr_assert_eq(api_status_of_class(STO_ERR_RANGE), 416);
    cr_assert_eq(api_status_of_class(STO_ERR_UNAVAILABLE), 503);
    cr_assert_eq(api_status_of_class(STO_ERR_INTERNAL), 500);
}

static void from(int ret, enum sto_err_class cls, const char *msg, struct api_err *e)
{
    struct sto_result res = { .err = ret, .cls = cls };

    snprintf(res.msg, sizeof(res.msg), "%s", msg);
    api_err_from_sto(e, ret, &res);
}

Test(problem, login_failed)
{
    struct api_err e;
    json_t *j;
    char *s;

    from(-EACCES, STO_ERR_LOGIN, "target \"iqn.x\" refused the login: authentication failure",
         &e);
    cr_assert_eq(e.status, 502);
    cr_assert_str_eq(e.title, "login failed");
    s = api_problem_render(&e, NULL);
    j = parse(s);
    cr_assert_str_eq(json_string_value(json_object_get(j, "title")), "login failed");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 502);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "target \"iqn.x\" refused the login: authentication failure");
    json_decref(j);
    free(s);
}

Test(problem, other_classes)
{
    struct api_err e;

    from(-ETIMEDOUT, STO_ERR_UNREACHABLE, "portal \"198.51.100.1:3260\" did not answer", &e);
    cr_assert_eq(e.status, 504);
    from(-EIO, STO_ERR_IO, "read failed: medium error", &e);
    cr_assert_eq(e.status, 502);
    cr_assert_str_neq(e.title, "login failed");
    from(-ERANGE, STO_ERR_RANGE, "past the end", &e);
    cr_assert_eq(e.status, 416);
    from(-ESHUTDOWN, STO_ERR_UNAVAILABLE, "shutting down", &e);
    cr_assert_eq(e.status, 503);
    from(-EEXIST, STO_ERR_CONFLICT, "already logged in to \"iqn.x\"", &e);
    cr_assert_eq(e.status, 409);
    cr_assert_str_eq(e.detail, "already logged in to \"iqn.x\"");
}

Test(problem, classless_errors_use_errno)
{
    struct api_err e;

    from(-ENOENT, STO_ERR_NONE, "", &e);
    cr_assert_eq(e.status, 404);
    cr_assert_neq(e.detail[0], '\0', "falls back to strerror");
    from(-ETIMEDOUT, STO_ERR_NONE, "", &e);
    cr_assert_eq(e.status, 504);
    from(-EINVAL, STO_ERR_NONE, "", &e);
    cr_assert_eq(e.status, 422);
    from(-ENOMEM, STO_ERR_NONE, "", &e);
    cr_assert_eq(e.status, 500);
    api_err_from_sto(&e, -EBUSY, NULL);
    cr_assert_eq(e.status, 409);
}

/* ---------------------------------------------------------------- bearer tokens */

Test(problem, auth)
{
    const char *tok = "s3cr3t-token";
    size_t n = strlen(tok);

    cr_assert(api_auth_ok("Bearer s3cr3t-token", tok, n));
    cr_assert(api_auth_ok("bearer s3cr3t-token", tok, n), "the scheme is case-insensitive");
    cr_assert(api_auth_ok("BEARER   s3cr3t-token  ", tok, n));
    cr_assert(api_auth_ok("Bearer\ts3cr3t-token", tok, n));
    cr_assert_not(api_auth_ok("Bearer s3cr3t-tokeN", tok, n), "the token is case-sensitive");
    cr_assert_not(api_auth_ok("Bearer s3cr3t-toke", tok, n));
    cr_assert_not(api_auth_ok("Bearer s3cr3t-token2", tok, n));
    cr_assert_not(api_auth_ok("Bearer ", tok, n));
    cr_assert_not(api_auth_ok("Bearer", tok, n));
    cr_assert_not(api_auth_ok("Bearers3cr3t-token", tok, n));
    cr_assert_not(api_auth_ok("Basic czNjcjN0LXRva2Vu", tok, n));
    cr_assert_not(api_auth_ok("s3cr3t-token", tok, n));
    cr_assert_not(api_auth_ok("", tok, n));
    cr_assert_not(api_auth_ok(NULL, tok, n));
    cr_assert_not(api_auth_ok("Bearer ", "", 0), "no token configured: nothing passes");
    cr_assert_not(api_auth_ok("Bearer s3cr3t-token s3cr3t-token", tok, n));
}

/* ---------------------------------------------------------------- api_buf */

Test(problem, buf)
{
    struct api_buf b;
    char *s;
    size_t len;

    api_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        api_buf_printf(&b, "%d,", i);
    api_buf_puts(&b, "end");
    api_buf_put(&b, "\0x", 2);
    cr_assert_not(b.oom);
    cr_assert_eq(strncmp(b.data, "0,1,2,", 6), 0);
    s = api_buf_steal(&b, &len);
    cr_assert_not_null(s);
    cr_assert_eq(memcmp(s + len - 5, "end\0x", 5), 0);
    cr_assert_null(b.data);
    free(s);

    api_buf_init(&b);
    s = api_buf_steal(&b, &len);
    cr_assert_not_null(s, "an empty buffer steals as \"\"");
    cr_assert_eq(len, 0);
    cr_assert_str_eq(s, "");
    free(s);
}

Test(problem, buf_long_printf)
{
    struct api_buf b;
    char big[5000];

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    api_buf_init(&b);
    api_buf_printf(&b, "<%s>", big);
    cr_assert_eq(b.len, sizeof(big) + 1);
    cr_assert_eq(b.data[0], '<');
    cr_assert_eq(b.data[b.len - 1], '>');
    cr_assert_eq(b.data[b.len], '\0');
    api_buf_free(&b);
}
