/*
 * test_url.c - libiscsi's URL form:
 *   iscsi://[user[%secret]@]host[:port][/IQN[/LUN]][?k=v&...]
 * and its errors, whose messages must never carry a secret.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/url.h"

static struct isc_url u;
static char err[256];

static void setup(void)
{
    memset(&u, 0, sizeof(u));
    memset(err, 0, sizeof(err));
}

static void teardown(void)
{
    isc_url_clear(&u);
}

TestSuite(url, .init = setup, .fini = teardown);

/* Parse expecting -EINVAL with a message; `secret` (may be NULL) must not appear in it. */
static void expect_fail(const char *s, const char *secret)
{
    int ret = isc_url_parse(s, &u, err, sizeof(err));

    cr_assert_eq(ret, -EINVAL, "\"%s\" gave %d", s, ret);
    cr_assert_neq(err[0], '\0', "\"%s\" failed without a message", s);
    if (secret)
        cr_assert_null(strstr(err, secret), "error for \"%s\" leaks the secret: \"%s\"", s,
                       err);
    /* a failed parse leaves nothing owned behind */
    cr_assert_null(u.user);
    cr_assert_null(u.secret);
    cr_assert_null(u.portal);
    cr_assert_null(u.target);
    cr_assert_null(u.target_user);
    cr_assert_null(u.target_secret);
    cr_assert_eq(u.lun, -1);
}

static void expect_ok(const char *s)
{
    int ret = isc_url_parse(s, &u, err, sizeof(err));

    cr_assert_eq(ret, 0, "\"%s\" gave %d: %s", s, ret, err);
}

/* ---------------------------------------------------------------- accepted forms */

Test(url, portal_only)
{
    expect_ok("iscsi://198.51.100.1");
    cr_assert_str_eq(u.portal, "198.51.100.1");
    cr_assert_null(u.target);
    cr_assert_eq(u.lun, -1);
    cr_assert_null(u.user);
    cr_assert_null(u.secret);
    cr_assert_not(u.header_digest);
    cr_assert_not(u.data_digest);
}

Test(url, portal_with_trailing_slash)
{
    expect_ok("iscsi://storage.example:3261/");
    cr_assert_str_eq(u.portal, "storage.example:3261");
    cr_assert_null(u.target);
    cr_assert_eq(u.lun, -1);
}

Test(url, full_form)
{
    expect_ok("iscsi://host:3261/iqn.x/3");
    cr_assert_str_eq(u.portal, "host:3261");
    cr_assert_str_eq(u.target, "iqn.x");
    cr_assert_eq(u.lun, 3);
}

Test(url, real_iqn_and_lun_zero)
{
    expect_ok("iscsi://198.51.100.10/iqn.2003-01.org.linux-iscsi.tgt:disk1/0");
    cr_assert_str_eq(u.portal, "198.51.100.10");
    cr_assert_str_eq(u.target, "iqn.2003-01.org.linux-iscsi.tgt:disk1");
    cr_assert_eq(u.lun, 0);
}

Test(url, target_without_lun)
{
    expect_ok("iscsi://host/iqn.x");
    cr_assert_str_eq(u.target, "iqn.x");
    cr_assert_eq(u.lun, -1);
    isc_url_clear(&u);
    expect_ok("iscsi://host/iqn.x/");
    cr_assert_str_eq(u.target, "iqn.x");
    cr_assert_eq(u.lun, -1);
}

Test(url, lun_limits)
{
    expect_ok("iscsi://host/iqn.x/16383");
    cr_assert_eq(u.lun, 16383);
}

Test(url, ipv6_literal_portal)
{
    expect_ok("iscsi://[fe80::1]:3260/iqn.x/1");
    cr_assert_str_eq(u.portal, "[fe80::1]:3260");
    cr_assert_str_eq(u.target, "iqn.x");
    cr_assert_eq(u.lun, 1);
}

Test(url, chap_user_and_secret)
{
    expect_ok("iscsi://alice%s3cr3t@host:3260/iqn.x/2");
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.secret, "s3cr3t");
    cr_assert_str_eq(u.portal, "host:3260");
    cr_assert_str_eq(u.target, "iqn.x");
    cr_assert_eq(u.lun, 2);
}

Test(url, percent_inside_secret)
{
    /* the first '%' separates user from secret; later ones belong to the secret */
    expect_ok("iscsi://bob%pa%ss@host/iqn.x/0");
    cr_assert_str_eq(u.user, "bob");
    cr_assert_str_eq(u.secret, "pa%ss");
    cr_assert_str_eq(u.portal, "host");
}

Test(url, digests)
{
    expect_ok("iscsi://host/iqn.x/1?header_digest=crc32c&data_digest=none");
    cr_assert(u.header_digest);
    cr_assert_not(u.data_digest);
    cr_assert_eq(u.lun, 1, "the query does not bleed into the LUN");
    isc_url_clear(&u);
    expect_ok("iscsi://host/iqn.x/1?data_digest=crc32c");
    cr_assert_not(u.header_digest);
    cr_assert(u.data_digest);
    isc_url_clear(&u);
    expect_ok("iscsi://host?header_digest=none");
    cr_assert_str_eq(u.portal, "host");
    cr_assert_null(u.target);
}

/* Absent, none and crc32c are three answers: the login offers None,CRC32C / None / CRC32C. */
Test(url, digest_none_is_not_absent)
{
    expect_ok("iscsi://host/iqn.x/1");
    cr_assert_not(u.header_digest || u.no_header_digest || u.data_digest || u.no_data_digest);
    isc_url_clear(&u);
    expect_ok("iscsi://host/iqn.x/1?header_digest=none&data_digest=crc32c");
    cr_assert(u.no_header_digest && !u.header_digest);
    cr_assert(u.data_digest && !u.no_data_digest);
    isc_url_clear(&u);
    expect_ok("iscsi://host/iqn.x/1?header_digest=none&header_digest=crc32c");
    cr_assert(u.header_digest && !u.no_header_digest, "the last of repeated keys wins");
}

Test(url, mutual_chap)
{
    expect_ok("iscsi://alice%a-secret@host/iqn.x/0"
              "?target_user=tgt&target_password=t-secret&header_digest=crc32c");
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.secret, "a-secret");
    cr_assert_str_eq(u.target_user, "tgt");
    cr_assert_str_eq(u.target_secret, "t-secret");
    cr_assert(u.header_digest);
    cr_assert_str_eq(u.target, "iqn.x");
}

Test(url, clear_resets)
{
    expect_ok("iscsi://alice%pw@host/iqn.x/4");
    isc_url_clear(&u);
    cr_assert_null(u.user);
    cr_assert_null(u.secret);
    cr_assert_null(u.portal);
    cr_assert_null(u.target);
    cr_assert_eq(u.lun, -1);
    isc_url_clear(&u); /* twice is harmless */
}

/* ---------------------------------------------------------------- errors */

Test(url, no_scheme)
{
    expect_fail("host/iqn.x/1", NULL);
    expect_fail("iscsi:/host/iqn.x/1", NULL);
    expect_fail("nbd://host/iqn.x/1", NULL);
    expect_fail("ISCSI://host/iqn.x/1", NULL);
    expect_fail("", NULL);
}

Test(url, empty_host)
{
    expect_fail("iscsi://", NULL);
    expect_fail("iscsi:///iqn.x/1", NULL);
    expect_fail("iscsi://alice%pw-123@/iqn.x/1", "pw-123");
    expect_fail("iscsi://?header_digest=crc32c", NULL);
}

Test(url, bad_lun)
{
    expect_fail("iscsi://host/iqn.x/x", NULL);
    cr_assert_not_null(strstr(err, "lun"), "message names the lun: \"%s\"", err);
    expect_fail("iscsi://host/iqn.x/16384", NULL);
    expect_fail("iscsi://host/iqn.x/-1", NULL);
    expect_fail("iscsi://host/iqn.x/1x", NULL);
    expect_fail("iscsi://host/iqn.x/99999999999999999999", NULL);
    expect_fail("iscsi://host/iqn.x/1/2", NULL);
}

Test(url, empty_target)
{
    expect_fail("iscsi://host//1", NULL);
}

Test(url, unknown_query_key)
{
    expect_fail("iscsi://host/iqn.x/1?foo=bar", NULL);
    cr_assert_not_null(strstr(err, "foo"), "names the key: \"%s\"", err);
    expect_fail("iscsi://host/iqn.x/1?header_digest", NULL);
}

Test(url, bad_digest_value)
{
    expect_fail("iscsi://host/iqn.x/1?header_digest=md5", NULL);
    expect_fail("iscsi://host/iqn.x/1?data_digest=CRC32C", NULL);
    expect_fail("iscsi://host/iqn.x/1?data_digest=", NULL);
}

Test(url, target_user_without_target_password)
{
    expect_fail("iscsi://alice%a-secret@host/iqn.x/1?target_user=tgt", "a-secret");
    expect_fail("iscsi://alice%a-secret@host/iqn.x/1?target_password=t-secret", "t-secret");
    cr_assert_null(strstr(err, "a-secret"), "leaks: \"%s\"", err);
}

Test(url, mutual_without_one_way)
{
    expect_fail("iscsi://host/iqn.x/1?target_user=tgt&target_password=t-secret", "t-secret");
}

Test(url, user_without_secret)
{
    expect_fail("iscsi://alice@host/iqn.x/1", NULL);
    cr_assert_not_null(strstr(err, "alice"), "names the user: \"%s\"", err);
}

Test(url, empty_user_or_secret)
{
    expect_fail("iscsi://%pw-4567@host/iqn.x/1", "pw-4567");
    expect_fail("iscsi://alice%@host/iqn.x/1", NULL);
    expect_fail("iscsi://@host/iqn.x/1", NULL);
}

Test(url, errors_never_contain_secrets)
{
    static const char *const bad[] = {
        "iscsi://alice%TOPSECRET@host/iqn.x/x",
        "iscsi://alice%TOPSECRET@host/iqn.x/99999",
        "iscsi://alice%TOPSECRET@host/iqn.x/1?nope=1",
        "iscsi://alice%TOPSECRET@host/iqn.x/1?data_digest=sha1",
        "iscsi://alice%TOPSECRET@host/iqn.x/1?target_user=t",
        "iscsi://alice%TOPSECRET@/iqn.x/1",
        "iscsi://alice%a@host/iqn.x/1?target_user=t&target_password=TOPSECRET&bad=1",
        "iscsi://alice%a@host/iqn.x/1?target_password=TOPSECRET&data_digest=x",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        isc_url_clear(&u);
        expect_fail(bad[i], "TOPSECRET");
    }
}

/*
 * BUG (storage/url.c): libiscsi's iscsi_parse_url accepts ':' where there is no '%'
 * ("iscsi://alice:pw@host/..."); this parser does not, so the libiscsi form is refused.
 */
Test(url, colon_separated_password_like_libiscsi)
{
    expect_ok("iscsi://alice:s3cr3t@host/iqn.x/1");
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.secret, "s3cr3t");
}

/*
 * BUG (storage/url.c): for that same form the error is "url names chap user
 * "alice:TOPSECRET" without a secret": the password is echoed into the message, which
 * url.h says never includes a secret. Parsing it (above) or refusing it without quoting
 * the user field both pass this test.
 */
Test(url, colon_separated_password_is_not_echoed)
{
    int ret = isc_url_parse("iscsi://alice:TOPSECRET@host/iqn.x/1", &u, err, sizeof(err));

    if (ret < 0)
        cr_assert_null(strstr(err, "TOPSECRET"), "error leaks the secret: \"%s\"", err);
}

/*
 * BUG (storage/url.c): the query is split at the first '?' before the userinfo is found,
 * so a secret containing '?' spills into the query parser, whose error quotes it
 * ("url query item \"SECRETTAIL@host/iqn.x/1\" has no value").
 */
Test(url, question_mark_in_secret_is_part_of_the_secret)
{
    /* the user info is taken off before the query is looked for */
    expect_ok("iscsi://alice%abc?SECRETTAIL@host/iqn.x/1");
    cr_assert_str_eq(u.secret, "abc?SECRETTAIL");
    cr_assert_str_eq(u.portal, "host");
    cr_assert_eq(u.lun, 1);
}

Test(url, long_input_is_handled)
{
    char s[4200];

    memcpy(s, "iscsi://host/iqn.", 17);
    memset(s + 17, 'a', 4000);
    memcpy(s + 4017, "/1", 3);
    expect_ok(s);
    cr_assert_eq(strlen(u.target), 4004);
    cr_assert_eq(u.lun, 1);
}

Test(url, error_buffer_is_bounded)
{
    char small[12];

    memset(small, 'Z', sizeof(small));
    cr_assert_eq(isc_url_parse("iscsi://host/iqn.x/1?unknownkey=1", &u, small, 8), -EINVAL);
    cr_assert_eq(strlen(small), 7);
    cr_assert_eq(small[8], 'Z');
}
