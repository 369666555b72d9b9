/*
 * test_api_validate.c - strict checks of request bodies and query strings: what is
 * accepted, what is 400 (not JSON) or 422 (wrong fields, types, ranges), and that no error
 * message ever quotes a secret.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

#define SECRET "Zq8-very-secret-value"

static struct api_err e;

static void setup(void)
{
    memset(&e, 0, sizeof(e));
}

TestSuite(validate, .init = setup);

/* ---------------------------------------------------------------- numbers and queries */

Test(validate, u64)
{
    uint64_t v = 7;

    cr_assert_eq(api_parse_u64("0", 1, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(api_parse_u64("18446744073709551615", 20, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(api_parse_u64("00000000000000000001", 20, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(api_parse_u64("18446744073709551616", 20, &v), -EINVAL, "overflow");
    cr_assert_eq(api_parse_u64("99999999999999999999", 20, &v), -EINVAL, "overflow");
    cr_assert_eq(api_parse_u64("000000000000000000001", 21, &v), -EINVAL, "too long");
    cr_assert_eq(api_parse_u64("", 0, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("-1", 2, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("+1", 2, &v), -EINVAL);
    cr_assert_eq(api_parse_u64(" 1", 2, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("1 ", 2, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("0x10", 4, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("1e3", 3, &v), -EINVAL);
    cr_assert_eq(api_parse_u64("12", 1, &v), 0, "only n bytes are read");
    cr_assert_eq(v, 1);
}

Test(validate, data_query_accepted)
{
    struct api_data_query q;

    cr_assert_eq(api_parse_data_query("offset=512&length=4096", true, &q, &e), 0);
    cr_assert(q.have_offset && q.have_length);
    cr_assert_eq(q.offset, 512);
    cr_assert_eq(q.length, 4096);
    cr_assert_eq(api_parse_data_query("length=1&offset=0", true, &q, &e), 0);
    cr_assert_eq(q.offset, 0);
    cr_assert_eq(q.length, 1);
    cr_assert_eq(api_parse_data_query(NULL, true, &q, &e), 0);
    cr_assert_not(q.have_offset || q.have_length);
    cr_assert_eq(api_parse_data_query("", false, &q, &e), 0);
    cr_assert_eq(api_parse_data_query("offset=18446744073709551615", false, &q, &e), 0);
    cr_assert_eq(q.offset, UINT64_MAX);
}

static void expect_bad_query(const char *q, bool allow_length)
{
    struct api_data_query out;

    memset(&e, 0, sizeof(e));
    cr_assert_eq(api_parse_data_query(q, allow_length, &out, &e), -EINVAL, "\"%s\" passed", q);
    cr_assert_eq(e.status, 422, "\"%s\": status %d", q, e.status);
    cr_assert_neq(e.detail[0], '\0');
}

Test(validate, data_query_refused)
{
    expect_bad_query("offset=-1", true);
    expect_bad_query("offset=1.5", true);
    expect_bad_query("offset=0x200", true);
    expect_bad_query("offset=%35%31%32", true);
    expect_bad_query("offset=+512", true);
    expect_bad_query("offset=512%20", true);
    expect_bad_query("offset=", true);
    expect_bad_query("offset", true);
    expect_bad_query("offset=99999999999999999999", true);
    expect_bad_query("offset=1&offset=2", true);
    expect_bad_query("length=1&length=1", true);
    expect_bad_query("length=512", false);
    expect_bad_query("foo=1", true);
    expect_bad_query("Offset=1", true);
    expect_bad_query("offset=1&", true);
    expect_bad_query("&offset=1", true);
    expect_bad_query("offset=1;length=2", true);
}

/* ---------------------------------------------------------------- JSON basics */

Test(validate, not_json_is_400)
{
    json_t *j = NULL;

    cr_assert_eq(api_parse_object("", 0, &j, &e), -EINVAL);
    cr_assert_eq(e.status, 400);
    cr_assert_eq(api_parse_object("{", 1, &j, &e), -EINVAL);
    cr_assert_eq(e.status, 400);
    cr_assert_eq(api_parse_object("[1]", 3, &j, &e), -EINVAL);
    cr_assert_eq(e.status, 400);
    cr_assert_eq(api_parse_object("\"x\"", 3, &j, &e), -EINVAL);
    cr_assert_eq(api_parse_object("{} x", 4, &j, &e), -EINVAL, "trailing garbage");
    cr_assert_eq(api_parse_object("{\"a\":1,\"a\":2}", 13, &j, &e), -EINVAL, "duplicates");
    cr_assert_null(j);
    cr_assert_eq(api_parse_object("{}", 2, &j, &e), 0);
    cr_assert(json_is_object(j));
    json_decref(j);
}

Test(validate, parse_error_does_not_quote_the_body)
{
    const char *body = "{\"chap\":{\"user\":\"u\",\"secret\":\"" SECRET "\" oops}}";
    json_t *j = NULL;

    cr_assert_eq(api_parse_object(body, strlen(body), &j, &e), -EINVAL);
    cr_assert_null(strstr(e.detail, SECRET), "leaks: %s", e.detail);
    cr_assert_null(strstr(e.detail, "oops"), "quotes the body: %s", e.detail);
}

Test(validate, deep_nesting_is_refused_not_crashing)
{
    static char body[200001];

    memset(body, '[', 100000);
    memset(body + 100000, ']', 100000);
    cr_assert_eq(api_parse_object(body, 200000, &(json_t *){ NULL }, &e), -EINVAL);
    cr_assert_eq(e.status, 400);
}

/* ---------------------------------------------------------------- sessions */

static struct sto_session_req sreq;

static int session(const char *body)
{
    memset(&e, 0, sizeof(e));
    return api_parse_session_req(body, strlen(body), &sreq, &e);
}

static void expect_session_422(const char *body)
{
    cr_assert_eq(session(body), -EINVAL, "accepted: %s", body);
    cr_assert_eq(e.status, 422, "status %d for %s (%s)", e.status, body, e.detail);
    cr_assert_null(strstr(e.detail, SECRET), "leaks: %s", e.detail);
    cr_assert_eq(sreq.chap.secret[0], '\0', "secret left behind after a failure");
}

Test(validate, session_minimal)
{
    cr_assert_eq(session("{\"portal\":\"192.0.2.1\",\"target\":\"iqn.2026-11.io.toegw:d1\"}"),
                 0, "%s", e.detail);
    cr_assert_str_eq(sreq.portal, "192.0.2.1");
    cr_assert_str_eq(sreq.target, "iqn.2026-11.io.toegw:d1");
    cr_assert_eq(sreq.stack, STK_POLICY_AUTO);
    cr_assert_eq(sreq.reservation, 0);
    cr_assert_not(sreq.header_digest);
    cr_assert_not(sreq.data_digest);
    cr_assert_str_eq(sreq.chap.user, "");
    cr_assert_str_eq(sreq.id, "");
}

Test(validate, session_full)
{
    cr_assert_eq(session("{\"portal\":\"san.example:3261\",\"target\":\"iqn.2026-11.x:y\","
                         "\"stack\":\"toe\",\"reservation\":\"17\",\"header_digest\":\"crc32c\","
                         "\"data_digest\":true,\"chap\":{\"user\":\"alice\",\"secret\":\""
                         SECRET "\",\"target_user\":\"tgt\",\"target_secret\":\"t-secret\"}}"),
                 0, "%s", e.detail);
    cr_assert_str_eq(sreq.portal, "san.example:3261");
    cr_assert_eq(sreq.stack, STK_POLICY_TOE);
    cr_assert_eq(sreq.reservation, 17);
    cr_assert(sreq.header_digest);
    cr_assert(sreq.data_digest);
    cr_assert_str_eq(sreq.chap.user, "alice");
    cr_assert_str_eq(sreq.chap.secret, SECRET);
    cr_assert_str_eq(sreq.chap.target_user, "tgt");
    cr_assert_str_eq(sreq.chap.target_secret, "t-secret");
}

Test(validate, session_digest_forms)
{
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"iqn.x\",\"header_digest\":\"None\","
                         "\"data_digest\":\"CRC32C\"}"), 0, "%s", e.detail);
    cr_assert_not(sreq.header_digest);
    cr_assert(sreq.data_digest);
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"iqn.x\",\"header_digest\":false,"
                         "\"data_digest\":null}"), 0, "%s", e.detail);
    cr_assert_not(sreq.header_digest);
    cr_assert_not(sreq.data_digest);
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"header_digest\":\"md5\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"header_digest\":1}");
}

Test(validate, session_reservation_forms)
{
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":3}"), 0);
    cr_assert_eq(sreq.reservation, 3);
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":null}"), 0);
    cr_assert_eq(sreq.reservation, 0);
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":0}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":-3}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":1.5}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":\"x1\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"reservation\":\"\"}");
}

Test(validate, session_required_and_unknown)
{
    expect_session_422("{}");
    expect_session_422("{\"portal\":\"h\"}");
    expect_session_422("{\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"lun\":1}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"Portal\":\"h\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"" SECRET "\",\"password\":\"p\"}}");
}

Test(validate, session_types)
{
    expect_session_422("{\"portal\":1,\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":[\"iqn.x\"]}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"stack\":\"lwip\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"stack\":1}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":\"u:p\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":12345}}");
    expect_session_422("{\"portal\":\"\",\"target\":\"iqn.x\"}");
}

Test(validate, session_portals)
{
    cr_assert_eq(session("{\"portal\":\"198.51.100.1:65535\",\"target\":\"iqn.x\"}"), 0);
    cr_assert_eq(session("{\"portal\":\"tgt-1.san.example\",\"target\":\"iqn.x\"}"), 0);
    expect_session_422("{\"portal\":\"198.51.100.1:0\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"198.51.100.1:65536\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"198.51.100.1:-1\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"198.51.100.1:\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\":3260\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"[::1]:3260\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"a b\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"h/../x\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"iscsi://h\",\"target\":\"iqn.x\"}");
    expect_session_422("{\"portal\":\"-h\",\"target\":\"iqn.x\"}");
}

Test(validate, session_target_names)
{
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"eui.02004567A425678D\"}"), 0);
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"naa.52004567BA64678D\"}"), 0);
    expect_session_422("{\"portal\":\"h\",\"target\":\"disk1\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x y\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x/../y\"}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\\ny\"}");
}

/* A JSON body with a string of n copies of c in place of %s. */
static char *body_with(const char *fmt, size_t n, char c)
{
    static char s[2048];
    static char big[1024];

    memset(big, c, n);
    big[n] = '\0';
    snprintf(s, sizeof(s), fmt, big);
    return s;
}

Test(validate, session_lengths)
{
    /* names: at most 223 bytes */
    cr_assert_eq(session(body_with("{\"portal\":\"h\",\"target\":\"iqn.%s\"}", 219, 'a')), 0,
                 "%s", e.detail);
    cr_assert_eq(strlen(sreq.target), 223);
    expect_session_422(body_with("{\"portal\":\"h\",\"target\":\"iqn.%s\"}", 220, 'a'));
    cr_assert_eq(session(body_with("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":"
                                   "{\"user\":\"%s\",\"secret\":\"s\"}}", 223, 'u')), 0);
    expect_session_422(body_with("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":"
                                 "{\"user\":\"%s\",\"secret\":\"s\"}}", 224, 'u'));
    /* secrets: at most 255 bytes */
    cr_assert_eq(session(body_with("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":"
                                   "{\"user\":\"u\",\"secret\":\"%s\"}}", 255, 'Z')), 0);
    cr_assert_eq(strlen(sreq.chap.secret), 255);
    expect_session_422(body_with("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":"
                                 "{\"user\":\"u\",\"secret\":\"%s\"}}", 256, 'Z'));
    cr_assert_null(strstr(e.detail, "ZZZZ"), "quotes the secret: %s", e.detail);
    expect_session_422(body_with("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":"
                                 "{\"user\":\"u\",\"secret\":\"s\",\"target_user\":\"t\","
                                 "\"target_secret\":\"%s\"}}", 256, 'Z'));
    /* a portal name is at most 223 bytes too */
    expect_session_422(body_with("{\"portal\":\"%s\",\"target\":\"iqn.x\"}", 224, 'p'));
}

Test(validate, session_chap_rules)
{
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"secret\":\"" SECRET
                       "\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"" SECRET "\",\"target_user\":\"t\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"" SECRET "\",\"target_secret\":\"t\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"a\\u0001b\"}}");
    expect_session_422("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":{\"user\":\"u\","
                       "\"secret\":\"" SECRET "\",\"extra\":\"" SECRET "\"}}");
    cr_assert_eq(session("{\"portal\":\"h\",\"target\":\"iqn.x\",\"chap\":null}"), 0);
    cr_assert_str_eq(sreq.chap.user, "");
}

Test(validate, session_not_json)
{
    cr_assert_eq(session("portal=h&target=iqn.x"), -EINVAL);
    cr_assert_eq(e.status, 400);
    cr_assert_eq(session("[]"), -EINVAL);
    cr_assert_eq(e.status, 400);
}

/* ---------------------------------------------------------------- reservations */

static struct api_reserve_req rreq;

static int reserve(const char *body)
{
    memset(&e, 0, sizeof(e));
    return api_parse_reserve_req(body, strlen(body), &rreq, &e);
}

static void expect_reserve_422(const char *body)
{
    cr_assert_eq(reserve(body), -EINVAL, "accepted: %s", body);
    cr_assert_eq(e.status, 422, "status %d for %s", e.status, body);
}

Test(validate, reserve_accepted)
{
    cr_assert_eq(reserve("{\"holder\":\"app\"}"), 0);
    cr_assert_str_eq(rreq.holder, "app");
    cr_assert_eq(rreq.port, 0);
    cr_assert_eq(rreq.stack, STK_POLICY_AUTO);
    cr_assert_eq(reserve("{\"holder\":\"app 2\",\"port\":20010,\"stack\":\"host\"}"), 0);
    cr_assert_eq(rreq.port, 20010);
    cr_assert_eq(rreq.stack, STK_POLICY_HOST);
    cr_assert_eq(reserve("{\"holder\":\"a\",\"port\":65535,\"stack\":\"toe\"}"), 0);
    cr_assert_eq(rreq.port, 65535);
    cr_assert_eq(reserve("{\"holder\":\"a\",\"port\":null}"), 0);
    cr_assert_eq(rreq.port, 0);
    cr_assert_eq(reserve(body_with("{\"holder\":\"%s\"}", 63, 'h')), 0);
}

Test(validate, reserve_refused)
{
    expect_reserve_422("{}");
    expect_reserve_422("{\"holder\":\"\"}");
    expect_reserve_422("{\"holder\":7}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":0}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":65536}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":-1}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":\"20010\"}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":20010.5}");
    expect_reserve_422("{\"holder\":\"a\",\"port\":true}");
    expect_reserve_422("{\"holder\":\"a\",\"stack\":\"any\"}");
    expect_reserve_422("{\"holder\":\"a\",\"id\":\"1\"}");
    expect_reserve_422("{\"holder\":\"a\\nb\"}");
    expect_reserve_422(body_with("{\"holder\":\"%s\"}", 64, 'h'));
    cr_assert_eq(reserve("{\"holder\":\"a\",\"port\":99999999999999999999999}"), -EINVAL);
    cr_assert(e.status == 400 || e.status == 422);
}

/* ---------------------------------------------------------------- discovery */

Test(validate, discovery)
{
    struct api_discovery_req d;
    const char *ok = "{\"portal\":\"192.0.2.1:3260\",\"stack\":\"host\",\"chap\":{\"user\":\"u\","
                     "\"secret\":\"" SECRET "\"}}";
    const char *bad[] = {
        "{}",
        "{\"portal\":\"h\",\"target\":\"iqn.x\"}",
        "{\"portal\":\"h\",\"chap\":{\"user\":\"u\"}}",
        "{\"portal\":\"h:99999\"}",
        "{\"portal\":\"h\",\"chap\":{\"user\":\"u\",\"secret\":\"" SECRET "\",\"x\":1}}",
    };

    cr_assert_eq(api_parse_discovery_req(ok, strlen(ok), &d, &e), 0, "%s", e.detail);
    cr_assert_str_eq(d.portal, "192.0.2.1:3260");
    cr_assert_eq(d.stack, STK_POLICY_HOST);
    cr_assert_str_eq(d.chap.user, "u");
    cr_assert_str_eq(d.chap.secret, SECRET);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&e, 0, sizeof(e));
        cr_assert_eq(api_parse_discovery_req(bad[i], strlen(bad[i]), &d, &e), -EINVAL,
                     "accepted %s", bad[i]);
        cr_assert_eq(e.status, 422, "%s: %d", bad[i], e.status);
        cr_assert_null(strstr(e.detail, SECRET));
        cr_assert_eq(d.chap.secret[0], '\0');
    }
}

/* ---------------------------------------------------------------- PATCH /stacks/toe */

static struct api_toe_patch tp;

static int patch(const char *body)
{
    memset(&e, 0, sizeof(e));
    return api_parse_toe_patch(body, strlen(body), &tp, &e);
}

Test(validate, toe_link)
{
    cr_assert_eq(patch("{\"link\":\"down\"}"), 0);
    cr_assert(tp.set_link);
    cr_assert_not(tp.link_up);
    cr_assert_not(tp.set_faults);
    cr_assert_eq(patch("{\"link\":\"up\"}"), 0);
    cr_assert(tp.set_link && tp.link_up);
    cr_assert_eq(patch("{\"link\":\"sideways\"}"), -EINVAL);
    cr_assert_eq(e.status, 422);
    cr_assert_eq(patch("{\"link\":true}"), -EINVAL);
    cr_assert_eq(patch("{\"link\":\"UP\"}"), -EINVAL);
    cr_assert_eq(patch("{\"link\":null}"), -EINVAL);
}

Test(validate, toe_faults)
{
    struct api_toe_faults cur = { .drop = 0.5, .dup = 0.25, .reorder = 0.125, .corrupt = 0.0625,
                              .seed = 9 };

    cr_assert_eq(patch("{\"faults\":{\"drop\":0.01,\"seed\":42}}"), 0, "%s", e.detail);
    cr_assert(tp.set_faults);
    cr_assert_not(tp.set_link);
    cr_assert_eq(tp.fault_mask, API_FAULT_DROP | API_FAULT_SEED);
    api_toe_patch_merge(&tp, &cur);
    cr_assert_float_eq(cur.drop, 0.01, 1e-12);
    cr_assert_float_eq(cur.dup, 0.25, 1e-12, "absent keys stay as they are");
    cr_assert_float_eq(cur.reorder, 0.125, 1e-12);
    cr_assert_float_eq(cur.corrupt, 0.0625, 1e-12);
    cr_assert_eq(cur.seed, 42);

    cr_assert_eq(patch("{\"link\":\"up\",\"faults\":{\"drop\":0,\"dup\":1,\"reorder\":1.0,"
                       "\"corrupt\":0.5}}"), 0, "%s", e.detail);
    cr_assert(tp.set_link && tp.set_faults);
    cr_assert_eq(tp.fault_mask,
                 API_FAULT_DROP | API_FAULT_DUP | API_FAULT_REORDER | API_FAULT_CORRUPT);

    cr_assert_eq(patch("{\"faults\":null}"), 0, "null clears every fault");
    api_toe_patch_merge(&tp, &cur);
    cr_assert_float_eq(cur.drop, 0.0, 0.0);
    cr_assert_float_eq(cur.dup, 0.0, 0.0);
    cr_assert_float_eq(cur.reorder, 0.0, 0.0);
    cr_assert_float_eq(cur.corrupt, 0.0, 0.0);
    cr_assert_eq(cur.seed, 0);

    cr_assert_eq(patch("{\"faults\":{}}"), 0);
    cr_assert_eq(tp.fault_mask, 0);
}

Test(validate, toe_faults_refused)
{
    const char *bad[] = {
        "{}",
        "{\"mtu\":1500}",
        "{\"faults\":{\"drop\":1.01}}",
        "{\"faults\":{\"drop\":-0.1}}",
        "{\"faults\":{\"drop\":\"0.5\"}}",
        "{\"faults\":{\"dup\":true}}",
        "{\"faults\":{\"loss\":0.1}}",
        "{\"faults\":{\"seed\":-1}}",
        "{\"faults\":{\"seed\":1.5}}",
        "{\"faults\":[0.1]}",
        "{\"faults\":0.1}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(patch(bad[i]), -EINVAL, "accepted %s", bad[i]);
        cr_assert_eq(e.status, 422, "%s: %d", bad[i], e.status);
    }
    cr_assert_eq(patch("{\"faults\":{\"drop\":1e999}}"), -EINVAL);
}

/* ---------------------------------------------------------------- capture */

Test(validate, capture)
{
    struct api_capture_req c;
    char body[64];

    cr_assert_eq(api_parse_capture_req(NULL, 0, &c, &e), 0);
    cr_assert_eq(c.ring_bytes, 0);
    cr_assert_eq(api_parse_capture_req("{}", 2, &c, &e), 0);
    snprintf(body, sizeof(body), "{\"ring_bytes\":%d}", 1 << 20);
    cr_assert_eq(api_parse_capture_req(body, strlen(body), &c, &e), 0);
    cr_assert_eq(c.ring_bytes, 1u << 20);
    cr_assert_eq(api_parse_capture_req("{\"ring_bytes\":1}", 16, &c, &e), -EINVAL);
    cr_assert_eq(e.status, 422);
    snprintf(body, sizeof(body), "{\"ring_bytes\":%llu}", API_CAPTURE_RING_MAX + 1);
    cr_assert_eq(api_parse_capture_req(body, strlen(body), &c, &e), -EINVAL);
    cr_assert_eq(api_parse_capture_req("{\"path\":\"/etc/x\"}", 17, &c, &e), -EINVAL);
    cr_assert_eq(e.status, 422);
}

/* ---------------------------------------------------------------- PATCH /volumes/{id} */

static struct sto_access_patch vp;

static int vpatch(const char *body)
{
    struct api_err e;
    int ret = api_parse_volume_patch(body, strlen(body), &vp, &e);

    if (ret == 0)
        return 0;
    return e.status;
}

Test(validate, volume_patch_accepted)
{
    cr_assert_eq(vpatch("{\"read_only\":true}"), 0);
    cr_assert(vp.set_read_only && vp.read_only && !vp.set_allow);
    cr_assert_eq(vpatch("{\"allow\":[]}"), 0);
    cr_assert(vp.set_allow && vp.nallow == 0 && !vp.set_read_only);
    cr_assert_eq(vpatch("{\"allow\":[\"alice\",\"backup host\"],\"read_only\":false}"), 0);
    cr_assert(vp.set_allow && vp.nallow == 2 && vp.set_read_only && !vp.read_only);
    cr_assert_str_eq(vp.allow[1], "backup host");
}

Test(validate, volume_patch_refused)
{
    char big[600], many[1200];
    size_t n;

    cr_assert_eq(vpatch("{}"), 422, "nothing to change");
    cr_assert_eq(vpatch("{\"readonly\":true}"), 422, "unknown field");
    cr_assert_eq(vpatch("{\"read_only\":1}"), 422);
    cr_assert_eq(vpatch("{\"read_only\":\"yes\"}"), 422);
    cr_assert_eq(vpatch("{\"allow\":\"alice\"}"), 422);
    cr_assert_eq(vpatch("{\"allow\":[\"\"]}"), 422);
    cr_assert_eq(vpatch("{\"allow\":[1]}"), 422);
    cr_assert_eq(vpatch("{\"allow\":[\"a\\nb\"]}"), 422);
    cr_assert_eq(vpatch("{\"allow\":[\"a:b\"]}"), 422);
    cr_assert_eq(vpatch("{\"allow\":[\"alice\",\"alice\"]}"), 422);
    cr_assert_eq(vpatch("[true]"), 400);
    cr_assert_eq(vpatch("{\"read_only\":true"), 400);
    snprintf(big, sizeof(big), "{\"allow\":[\"%0200d\"]}", 0);
    cr_assert_eq(vpatch(big), 422, "identity too long");
    n = (size_t)snprintf(many, sizeof(many), "{\"allow\":[");
    for (int i = 0; i <= STO_ALLOW_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"id%d\"", i ? "," : "", i);
    snprintf(many + n, sizeof(many) - n, "]}");
    cr_assert_eq(vpatch(many), 422, "too many identities");
}
