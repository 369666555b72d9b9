/*
 * test_api_token.c - the API's bearer token (api/token.c): checked as a bearer header, and
 * rotated by POST /api/v1/token only once the appliance has kept the new one: the old
 * token then fails at once; a failed rotation keeps the old token; no keeper, no rotation.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

#define OLD "0123456789abcdef0123456789abcdef"
#define NEW "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static struct api_shared sh;
static struct api_config cfg;
static struct api_ctx ctx = { &cfg, &sh };
static int renew_calls;

static int renew_ok(void *arg, char *tok, size_t toklen, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    renew_calls++;
    snprintf(tok, toklen, "%s", NEW);
    return 0;
}

static int renew_fails(void *arg, char *tok, size_t toklen, char *err, size_t errlen)
{
    (void)arg;
    (void)tok;
    (void)toklen;
    renew_calls++;
    snprintf(err, errlen, "cannot write \"/nonexistent/api-token\": No such file or directory");
    return -ENOENT;
}

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    api_shared_init(&sh);
    renew_calls = 0;
    cr_assert_eq(api_token_set(&sh.token, OLD), 0);
}

static void teardown(void)
{
    api_shared_fini(&sh);
}

TestSuite(token, .init = setup, .fini = teardown);

static void rotate(struct api_resp *r)
{
    struct api_route route = { .id = API_R_TOKEN };
    struct api_call call = { .method = API_M_POST, .route = &route };

    api_resp_init(r);
    api_h_token_rotate(&ctx, &call, r);
}

Test(token, checked_as_bearer)
{
    cr_assert(api_token_ok(&sh.token, "Bearer " OLD));
    cr_assert(api_token_ok(&sh.token, "bearer " OLD));
    cr_assert_not(api_token_ok(&sh.token, "Bearer " NEW));
    cr_assert_not(api_token_ok(&sh.token, OLD));
    cr_assert_not(api_token_ok(&sh.token, NULL));
    cr_assert_eq(api_token_set(&sh.token, ""), -EINVAL);
}

Test(token, rotation_voids_the_old_token)
{
    struct api_resp r;

    cfg.token_renew = renew_ok;
    rotate(&r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(renew_calls, 1);
    cr_assert_not_null(r.body);
    cr_assert_not_null(strstr(r.body, "\"token\":\"" NEW "\""), "%s", r.body);
    cr_assert_not(api_token_ok(&sh.token, "Bearer " OLD));
    cr_assert(api_token_ok(&sh.token, "Bearer " NEW));
    free(r.body);
}

Test(token, failed_rotation_keeps_the_old_token)
{
    struct api_resp r;

    cfg.token_renew = renew_fails;
    rotate(&r);
    cr_assert_eq(r.status, 500);
    cr_assert_not_null(strstr(r.body, "previous one still works"), "%s", r.body);
    cr_assert(api_token_ok(&sh.token, "Bearer " OLD));
    free(r.body);
}

Test(token, no_keeper_no_rotation)
{
    struct api_resp r;

    rotate(&r);
    cr_assert_eq(r.status, 501);
    cr_assert(api_token_ok(&sh.token, "Bearer " OLD));
    free(r.body);
}
