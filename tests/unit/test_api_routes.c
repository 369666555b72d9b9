/*
 * test_api_routes.c - routing of raw request targets: every endpoint of docs/api.md, the
 * methods each allows, and the path tricks that must never reach a handler.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "api/api_int.h"

static struct api_route r;

static void expect_route(const char *raw, enum api_route_id id, const char *arg, bool auth)
{
    int ret = api_route_match(raw, &r);

    cr_assert_eq(ret, 0, "\"%s\" gave %d", raw, ret);
    cr_assert_eq(r.id, id, "\"%s\" routed to %d, not %d", raw, r.id, id);
    cr_assert_str_eq(r.arg, arg, "\"%s\": arg \"%s\"", raw, r.arg);
    cr_assert_eq(r.auth, auth, "\"%s\": auth %d", raw, r.auth);
}

static void expect_fail(const char *raw, int err)
{
    int ret = api_route_match(raw, &r);

    cr_assert_eq(ret, err, "\"%s\" gave %d, not %d", raw, ret, err);
}

/* ---------------------------------------------------------------- endpoints */

Test(routes, public_endpoints)
{
    expect_route("/", API_R_PAGE, "", false);
    expect_route("/livez", API_R_LIVEZ, "", false);
    expect_route("/readyz", API_R_READYZ, "", false);
    expect_route("/metrics", API_R_METRICS, "", false);
    expect_route("/metrics?name[]=x", API_R_METRICS, "", false);
}

Test(routes, api_endpoints)
{
    expect_route("/api/v1/stacks", API_R_STACKS, "", true);
    expect_route("/api/v1/stacks/toe", API_R_STACK, "toe", true);
    expect_route("/api/v1/stacks/host", API_R_STACK, "host", true);
    expect_route("/api/v1/reservations", API_R_RESERVATIONS, "", true);
    expect_route("/api/v1/reservations/42", API_R_RESERVATION, "42", true);
    expect_route("/api/v1/connections", API_R_CONNECTIONS, "", true);
    expect_route("/api/v1/discovery", API_R_DISCOVERY, "", true);
    expect_route("/api/v1/sessions", API_R_SESSIONS, "", true);
    expect_route("/api/v1/sessions/s-0123456789ab", API_R_SESSION, "s-0123456789ab", true);
    expect_route("/api/v1/volumes", API_R_VOLUMES, "", true);
    expect_route("/api/v1/volumes/v-0123456789abcdef", API_R_VOLUME, "v-0123456789abcdef",
                 true);
    expect_route("/api/v1/volumes/v-0123456789abcdef/data", API_R_VOLUME_DATA,
                 "v-0123456789abcdef", true);
    expect_route("/api/v1/capture", API_R_CAPTURE, "", true);
    expect_route("/api/v1/capture.pcap", API_R_CAPTURE_PCAP, "", true);
    expect_route("/api/v1/info", API_R_INFO, "", true);
    expect_route("/api/v1/token", API_R_TOKEN, "", true);
}

Test(routes, methods)
{
    cr_assert_eq(api_route_match("/api/v1/stacks", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD);
    cr_assert_eq(api_route_match("/api/v1/stacks/toe", &r), 0);
    cr_assert(r.methods & API_M_PATCH);
    cr_assert_eq(api_route_match("/api/v1/stacks/host", &r), 0);
    cr_assert_not(r.methods & API_M_PATCH, "the host stack cannot be patched");
    cr_assert_eq(api_route_match("/api/v1/reservations", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD | API_M_POST);
    cr_assert_eq(api_route_match("/api/v1/reservations/7", &r), 0);
    cr_assert(r.methods & API_M_DELETE);
    cr_assert_not(r.methods & API_M_POST);
    cr_assert_eq(api_route_match("/api/v1/discovery", &r), 0);
    cr_assert_eq(r.methods, API_M_POST);
    cr_assert_eq(api_route_match("/api/v1/sessions/s-1", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD | API_M_DELETE);
    cr_assert_eq(api_route_match("/api/v1/volumes/v-1", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD | API_M_PATCH,
                 "a volume is read, and its access patched");
    cr_assert_eq(api_route_match("/api/v1/volumes/v-1/data", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD | API_M_PUT);
    cr_assert_eq(api_route_match("/api/v1/capture", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD | API_M_POST | API_M_DELETE);
    cr_assert_eq(api_route_match("/livez", &r), 0);
    cr_assert_eq(r.methods, API_M_GET | API_M_HEAD);
    cr_assert_eq(api_route_match("/api/v1/token", &r), 0);
    cr_assert_eq(r.methods, API_M_POST, "a token is only ever rotated, never read");
}

Test(routes, query_is_split_off)
{
    expect_route("/api/v1/volumes/v-1/data?offset=512&length=4096", API_R_VOLUME_DATA, "v-1",
                 true);
    cr_assert_str_eq(r.query, "offset=512&length=4096");
    expect_route("/api/v1/volumes/v-1/data", API_R_VOLUME_DATA, "v-1", true);
    cr_assert_null(r.query);
    expect_route("/api/v1/volumes/v-1/data?", API_R_VOLUME_DATA, "v-1", true);
    cr_assert_str_eq(r.query, "");
}

Test(routes, absolute_form)
{
    expect_route("http://127.0.0.1:8080/api/v1/stacks", API_R_STACKS, "", true);
    expect_route("HTTP://x/livez?y=1", API_R_LIVEZ, "", false);
    cr_assert_str_eq(r.query, "y=1");
    expect_fail("http://host", -EINVAL);
    expect_fail("http://host?x", -EINVAL);
}

/* ---------------------------------------------------------------- not found */

Test(routes, unknown_resources)
{
    expect_fail("/api/v1", -ENOENT);
    expect_fail("/api/v1/nope", -ENOENT);
    expect_fail("/api/v2/stacks", -ENOENT);
    expect_fail("/api/v1/stacks/lwip", -ENOENT);
    expect_fail("/api/v1/stacks/toe/x", -ENOENT);
    expect_fail("/api/v1/volumes/v-1/other", -ENOENT);
    expect_fail("/api/v1/volumes/v-1/data/x", -ENOENT);
    expect_fail("/api/v1/sessions/s-1/x", -ENOENT);
    expect_fail("/favicon.ico", -ENOENT);
    expect_fail("/livez/x", -ENOENT);
    expect_fail("/index.html", -ENOENT);
}

Test(routes, empty_segments_are_not_found)
{
    expect_fail("//api/v1/stacks", -ENOENT);
    expect_fail("/api//v1/stacks", -ENOENT);
    expect_fail("/api/v1/stacks/", -ENOENT);
    expect_fail("/livez/", -ENOENT);
}

Test(routes, ids_that_cannot_exist)
{
    expect_fail("/api/v1/reservations/0", -ENOENT);
    expect_fail("/api/v1/reservations/abc", -ENOENT);
    expect_fail("/api/v1/reservations/-1", -ENOENT);
    expect_fail("/api/v1/reservations/+1", -ENOENT);
    expect_fail("/api/v1/reservations/18446744073709551616", -ENOENT);
    expect_route("/api/v1/reservations/18446744073709551615", API_R_RESERVATION,
                 "18446744073709551615", true);
    expect_fail("/api/v1/sessions/bad*id", -ENOENT);
    expect_fail("/api/v1/sessions/a:b", -ENOENT);
    expect_fail("/api/v1/volumes/v-1;x", -ENOENT);
    expect_fail("/api/v1/volumes/v-1'", -ENOENT);
    /* 33 characters: longer than any id */
    expect_fail("/api/v1/volumes/v-0123456789abcdef0123456789abcdef0", -ENOENT);
    expect_route("/api/v1/volumes/v-0123456789abcdef0123456789abcd", API_R_VOLUME,
                 "v-0123456789abcdef0123456789abcd", true);
}

Test(routes, deep_paths)
{
    expect_fail("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", -ENOENT);
    expect_fail("/api/v1/volumes/v-1/data/a/b/c/d/e/f/g", -ENOENT);
}

/* ---------------------------------------------------------------- malformed */

Test(routes, dot_segments)
{
    expect_fail("/api/v1/volumes/../x", -EINVAL);
    expect_fail("/api/v1/volumes/..", -EINVAL);
    expect_fail("/api/v1/./stacks", -EINVAL);
    expect_fail("/..", -EINVAL);
    expect_fail("/./livez", -EINVAL);
    /* a dot inside a segment is just a character */
    expect_fail("/api/v1/volumes/...", -ENOENT);
}

Test(routes, percent_encoding_is_refused)
{
    expect_fail("/api/v1/volumes/a%2Fb", -EINVAL);
    expect_fail("/api/v1/volumes/a%2fb/data", -EINVAL);
    expect_fail("/api/v1/volumes/%2e%2e/x", -EINVAL);
    expect_fail("/api/v1/%73tacks", -EINVAL);
    expect_fail("/api%2Fv1/stacks", -EINVAL);
    expect_fail("/api/v1/volumes/v-1%00", -EINVAL);
}

Test(routes, bad_bytes)
{
    expect_fail("", -EINVAL);
    expect_fail(NULL, -EINVAL);
    expect_fail("*", -EINVAL);
    expect_fail("api/v1/stacks", -EINVAL);
    expect_fail("/api/v1\\stacks", -EINVAL);
    expect_fail("/api/v1/stacks\x01", -EINVAL);
    expect_fail("/api/v1/st acks", -EINVAL);
    expect_fail("/api/v1/stacks\t", -EINVAL);
    expect_fail("/api/v1/volumes/\xc3\xa9", -EINVAL);
    expect_fail("/api/v1/stacks#frag", -EINVAL);
    expect_fail("/api/v1/stacks?x#frag", -EINVAL);
    expect_fail("/api/v1/<script>", -EINVAL);
    expect_fail("/api/v1/\"x\"", -EINVAL);
}

/* ---------------------------------------------------------------- helpers */

Test(routes, method_names)
{
    cr_assert_eq(api_method_parse("GET"), API_M_GET);
    cr_assert_eq(api_method_parse("HEAD"), API_M_HEAD);
    cr_assert_eq(api_method_parse("POST"), API_M_POST);
    cr_assert_eq(api_method_parse("PUT"), API_M_PUT);
    cr_assert_eq(api_method_parse("PATCH"), API_M_PATCH);
    cr_assert_eq(api_method_parse("DELETE"), API_M_DELETE);
    cr_assert_eq(api_method_parse("get"), API_M_OTHER, "methods are case-sensitive");
    cr_assert_eq(api_method_parse("OPTIONS"), API_M_OTHER);
    cr_assert_eq(api_method_parse(NULL), API_M_OTHER);
    cr_assert_str_eq(api_method_name(API_M_PATCH), "PATCH");
}

Test(routes, allow_header)
{
    char buf[64];

    api_allow_str(API_M_GET | API_M_HEAD | API_M_POST, buf, sizeof(buf));
    cr_assert_str_eq(buf, "GET, HEAD, POST");
    api_allow_str(API_M_DELETE | API_M_GET, buf, sizeof(buf));
    cr_assert_str_eq(buf, "GET, DELETE");
    api_allow_str(API_M_POST, buf, sizeof(buf));
    cr_assert_str_eq(buf, "POST");
    api_allow_str(0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "");
    api_allow_str(API_M_GET | API_M_HEAD | API_M_POST, buf, 8);
    cr_assert_lt(strlen(buf), 8u, "truncated, never overflowing");
}

Test(routes, body_kinds)
{
    cr_assert_eq(api_route_match("/api/v1/sessions", &r), 0);
    cr_assert_eq(api_route_body(&r, API_M_POST), API_BODY_JSON);
    cr_assert_eq(api_route_body(&r, API_M_GET), API_BODY_NONE);
    cr_assert_eq(api_route_match("/api/v1/stacks/toe", &r), 0);
    cr_assert_eq(api_route_body(&r, API_M_PATCH), API_BODY_JSON);
    cr_assert_eq(api_route_match("/api/v1/volumes/v-1/data", &r), 0);
    cr_assert_eq(api_route_body(&r, API_M_PUT), API_BODY_RAW);
    cr_assert_eq(api_route_match("/api/v1/capture", &r), 0);
    cr_assert_eq(api_route_body(&r, API_M_POST), API_BODY_JSON_OPT);
    cr_assert_eq(api_route_body(&r, API_M_DELETE), API_BODY_NONE);
}

Test(routes, content_types)
{
    cr_assert(api_content_type_ok(API_BODY_JSON, NULL));
    cr_assert(api_content_type_ok(API_BODY_JSON, ""));
    cr_assert(api_content_type_ok(API_BODY_JSON, "application/json"));
    cr_assert(api_content_type_ok(API_BODY_JSON, "Application/JSON; charset=utf-8"));
    cr_assert(api_content_type_ok(API_BODY_JSON, "application/merge-patch+json"));
    cr_assert(api_content_type_ok(API_BODY_JSON, "application/x-www-form-urlencoded"),
              "what curl -d sends");
    cr_assert(api_content_type_ok(API_BODY_JSON, "text/plain;charset=UTF-8"));
    cr_assert_not(api_content_type_ok(API_BODY_JSON, "application/xml"));
    cr_assert_not(api_content_type_ok(API_BODY_JSON, "multipart/form-data; boundary=x"));
    cr_assert_not(api_content_type_ok(API_BODY_JSON, "application/jsonx"));
    cr_assert_not(api_content_type_ok(API_BODY_JSON, "+json"));
    cr_assert_not(api_content_type_ok(API_BODY_JSON_OPT, "text/html"));
    cr_assert(api_content_type_ok(API_BODY_RAW, "application/octet-stream"));
    cr_assert(api_content_type_ok(API_BODY_RAW, "application/xml"), "raw data takes any");
}

Test(routes, id_charset)
{
    cr_assert(api_id_valid("s-0123456789ab", 14));
    cr_assert(api_id_valid("A_z-9", 5));
    cr_assert_not(api_id_valid("", 0));
    cr_assert_not(api_id_valid("a.b", 3));
    cr_assert_not(api_id_valid("a/b", 3));
    cr_assert_not(api_id_valid("a%2f", 4));
    cr_assert_not(api_id_valid("0123456789abcdef0123456789abcdef0", 33));
}
