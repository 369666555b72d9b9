/*
 * test_chap.c - CHAP responses against independently computed digests, and the RFC 7143
 * binary value encodings ("0x" hex, "0b" base64).
 *
 * Expected digests were computed with Python's hashlib, e.g.
 *   hashlib.md5(b'\x01' + b'secret123456' + bytes(range(16))).hexdigest()
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/chap.h"

static const uint8_t challenge16[16] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

/* "0x" + lowercase hex of a digest, for readable comparisons. */
static void hex(const uint8_t *in, size_t len, char *out)
{
    isc_chap_encode_hex(in, len, out, 2 * len + 3);
}

/* ---------------------------------------------------------------- responses */

Test(chap, md5_known_answer)
{
    uint8_t out[ISC_CHAP_MAX_DIGEST];
    char s[2 * ISC_CHAP_MAX_DIGEST + 3];
    int n = isc_chap_response(ISC_CHAP_MD5, 1, "secret123456", 12, challenge16, 16, out);

    cr_assert_eq(n, 16);
    hex(out, 16, s);
    cr_assert_str_eq(s, "0xf2f17d483c1fcd4646f3c472cdf69b37");
}

Test(chap, sha256_known_answer)
{
    uint8_t out[ISC_CHAP_MAX_DIGEST];
    char s[2 * ISC_CHAP_MAX_DIGEST + 3];
    int n = isc_chap_response(ISC_CHAP_SHA256, 1, "secret123456", 12, challenge16, 16, out);

    cr_assert_eq(n, 32);
    hex(out, 32, s);
    cr_assert_str_eq(s, "0x08f26cbe0a2d539e1c53721e4e9920b156ceaa315af24679b2886483d277f40b");
}

Test(chap, sha1_and_sha3_known_answers)
{
    static const uint8_t ch[4] = { 0xde, 0xad, 0xbe, 0xef };
    uint8_t out[ISC_CHAP_MAX_DIGEST];
    char s[2 * ISC_CHAP_MAX_DIGEST + 3];
    int n;

    n = isc_chap_response(ISC_CHAP_SHA1, 7, "abc", 3, ch, sizeof(ch), out);
    cr_assert_eq(n, 20);
    hex(out, 20, s);
    cr_assert_str_eq(s, "0x485b5694a711a5451832afad910165ba59927285");
    n = isc_chap_response(ISC_CHAP_SHA3_256, 7, "abc", 3, ch, sizeof(ch), out);
    cr_assert_eq(n, 32);
    hex(out, 32, s);
    cr_assert_str_eq(s, "0x0b645230666bd663c4e22f21c90bc784e07aa0de8e44333e47d4db169025f749");
}

Test(chap, response_depends_on_id_secret_and_challenge)
{
    uint8_t a[ISC_CHAP_MAX_DIGEST], b[ISC_CHAP_MAX_DIGEST];
    uint8_t ch[16];

    memcpy(ch, challenge16, sizeof(ch));
    isc_chap_response(ISC_CHAP_MD5, 1, "secret123456", 12, ch, 16, a);
    isc_chap_response(ISC_CHAP_MD5, 2, "secret123456", 12, ch, 16, b);
    cr_assert_arr_neq(a, b, 16, "the id is hashed");
    isc_chap_response(ISC_CHAP_MD5, 1, "secret123457", 12, ch, 16, b);
    cr_assert_arr_neq(a, b, 16, "the secret is hashed");
    ch[15] ^= 1;
    isc_chap_response(ISC_CHAP_MD5, 1, "secret123456", 12, ch, 16, b);
    cr_assert_arr_neq(a, b, 16, "the challenge is hashed");
}

Test(chap, unsupported_algorithm)
{
    uint8_t out[ISC_CHAP_MAX_DIGEST];

    cr_assert_eq(isc_chap_response(0, 1, "s", 1, challenge16, 16, out), -EINVAL);
    cr_assert_eq(isc_chap_response(4, 1, "s", 1, challenge16, 16, out), -EINVAL);
    cr_assert_eq(isc_chap_response(9, 1, "s", 1, challenge16, 16, out), -EINVAL);
    cr_assert_eq(isc_chap_response(-1, 1, "s", 1, challenge16, 16, out), -EINVAL);
}

Test(chap, digest_lengths)
{
    cr_assert_eq(isc_chap_digest_len(ISC_CHAP_MD5), 16);
    cr_assert_eq(isc_chap_digest_len(ISC_CHAP_SHA1), 20);
    cr_assert_eq(isc_chap_digest_len(ISC_CHAP_SHA256), 32);
    cr_assert_eq(isc_chap_digest_len(ISC_CHAP_SHA3_256), 32);
    cr_assert_eq(isc_chap_digest_len(0), 0);
    cr_assert_eq(isc_chap_digest_len(42), 0);
}

Test(chap, offers)
{
    cr_assert_str_eq(isc_chap_offer, "7,5");
    cr_assert_str_eq(isc_chap_offer_md5, "5");
}

/* ---------------------------------------------------------------- decode: hex */

Test(chap_decode, hex_lower_and_upper)
{
    static const uint8_t want[4] = { 0xde, 0xad, 0xbe, 0xef };
    uint8_t out[8];

    cr_assert_eq(isc_chap_decode("0xdeadbeef", out, sizeof(out)), 4);
    cr_assert_arr_eq(out, want, 4);
    memset(out, 0, sizeof(out));
    cr_assert_eq(isc_chap_decode("0XDEADBEEF", out, sizeof(out)), 4);
    cr_assert_arr_eq(out, want, 4);
    memset(out, 0, sizeof(out));
    cr_assert_eq(isc_chap_decode("0xDeAdBeEf", out, sizeof(out)), 4);
    cr_assert_arr_eq(out, want, 4);
}

Test(chap_decode, hex_odd_length_has_implied_leading_zero)
{
    static const uint8_t want[2] = { 0x0a, 0xbc };
    uint8_t out[4];

    cr_assert_eq(isc_chap_decode("0xabc", out, sizeof(out)), 2);
    cr_assert_arr_eq(out, want, 2);
    cr_assert_eq(isc_chap_decode("0x7", out, sizeof(out)), 1);
    cr_assert_eq(out[0], 0x07);
}

Test(chap_decode, hex_invalid_digit)
{
    uint8_t out[8];

    cr_assert_eq(isc_chap_decode("0xdeadbeeg", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("0xg", out, sizeof(out)), -EINVAL, "odd first digit");
    cr_assert_eq(isc_chap_decode("0x12 4", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("0x-1", out, sizeof(out)), -EINVAL);
}

Test(chap_decode, hex_empty)
{
    uint8_t out[8];

    cr_assert_eq(isc_chap_decode("0x", out, sizeof(out)), -EINVAL);
}

Test(chap_decode, hex_capacity)
{
    uint8_t out[8];

    memset(out, 0x55, sizeof(out));
    cr_assert_eq(isc_chap_decode("0x01020304", out, 4), 4, "exactly fits");
    cr_assert_eq(isc_chap_decode("0x0102030405", out, 4), -EINVAL, "one byte over");
    cr_assert_eq(out[4], 0x55, "decode wrote beyond cap");
    cr_assert_eq(isc_chap_decode("0x102030405", out, 4), -EINVAL, "odd, one byte over");
    cr_assert_eq(out[4], 0x55, "decode wrote beyond cap");
    cr_assert_eq(isc_chap_decode("0x1", out, 0), -EINVAL);
}

/* ---------------------------------------------------------------- decode: base64 */

Test(chap_decode, base64)
{
    uint8_t out[32];

    cr_assert_eq(isc_chap_decode("0bAAECAwQFBgcICQoLDA0ODw==", out, sizeof(out)), 16);
    cr_assert_arr_eq(out, challenge16, 16);
    cr_assert_eq(isc_chap_decode("0bAQIDBA==", out, sizeof(out)), 4);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(out[3], 4);
    cr_assert_eq(isc_chap_decode("0BAQI=", out, sizeof(out)), 2);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(out[1], 2);
    cr_assert_eq(isc_chap_decode("0bAQID", out, sizeof(out)), 3, "no padding");
}

Test(chap_decode, base64_invalid)
{
    uint8_t out[32];

    cr_assert_eq(isc_chap_decode("0b", out, sizeof(out)), -EINVAL, "empty");
    cr_assert_eq(isc_chap_decode("0bAQI", out, sizeof(out)), -EINVAL, "not a multiple of 4");
    cr_assert_eq(isc_chap_decode("0bA*I=", out, sizeof(out)), -EINVAL, "bad character");
}

Test(chap_decode, base64_capacity)
{
    uint8_t out[8];

    memset(out, 0x55, sizeof(out));
    cr_assert_eq(isc_chap_decode("0bAQIDBA==", out, 4), 4, "exactly fits");
    cr_assert_eq(isc_chap_decode("0bAQIDBAU=", out, 4), -EINVAL, "5 bytes into 4");
    cr_assert_eq(out[4], 0x55, "decode wrote beyond cap");
}

Test(chap_decode, bad_prefix)
{
    uint8_t out[8];

    cr_assert_eq(isc_chap_decode("deadbeef", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("0ydeadbeef", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("1xdead", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("", out, sizeof(out)), -EINVAL);
    cr_assert_eq(isc_chap_decode("0", out, sizeof(out)), -EINVAL);
}

/* ---------------------------------------------------------------- encode */

Test(chap_encode, hex_round_trip)
{
    uint8_t in[64], back[64];
    char s[2 * sizeof(in) + 3];

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    isc_chap_encode_hex(in, sizeof(in), s, sizeof(s));
    cr_assert_eq(strlen(s), 2 * sizeof(in) + 2);
    cr_assert_eq(strncmp(s, "0x", 2), 0);
    cr_assert_eq(isc_chap_decode(s, back, sizeof(back)), (int)sizeof(in));
    cr_assert_arr_eq(back, in, sizeof(in));
}

Test(chap_encode, hex_exact_text)
{
    static const uint8_t in[3] = { 0x00, 0xab, 0xff };
    char s[16];

    isc_chap_encode_hex(in, sizeof(in), s, sizeof(s));
    cr_assert_str_eq(s, "0x00abff");
}

Test(chap_encode, hex_truncates_within_cap)
{
    static const uint8_t in[4] = { 0x11, 0x22, 0x33, 0x44 };
    char s[16];

    memset(s, 'Z', sizeof(s));
    isc_chap_encode_hex(in, sizeof(in), s, 7);
    cr_assert_eq(strlen(s), 6, "got \"%s\"", s);
    cr_assert_str_eq(s, "0x1122");
    cr_assert_eq(s[7], 'Z', "encode wrote beyond cap");
}

Test(chap, random_fills)
{
    uint8_t a[32] = { 0 }, b[32] = { 0 };

    cr_assert_eq(isc_chap_random(a, sizeof(a)), 0);
    cr_assert_eq(isc_chap_random(b, sizeof(b)), 0);
    cr_assert_arr_neq(a, b, sizeof(a), "two random challenges are equal");
}
