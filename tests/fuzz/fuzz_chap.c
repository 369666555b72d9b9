/*
 * fuzz_chap.c - CHAP (storage/chap.c): the binary value decoder the target's CHAP_C and
 * CHAP_R go through, the hex encoder, and the response digests.
 *
 * Input: byte 0 picks the algorithm (CHAP_A as the target might choose it), byte 1 the
 * CHAP_I, byte 2 the output capacity; the rest is "<CHAP_C value>\0<secret>". The decoder
 * writes into a heap buffer of exactly that capacity, so any write past it is caught.
 * Properties: a decode never reports more bytes than fit; hex-encoding decoded bytes and
 * decoding again gives the same bytes; a response has the algorithm's digest length, and
 * the same inputs give the same response.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/chap.h"
#include "tests/fuzz/fuzz.h"

static const int algs[] = { ISC_CHAP_MD5, ISC_CHAP_SHA1, ISC_CHAP_SHA256, ISC_CHAP_SHA3_256,
                            0, 4, 9, 255 };

int fuzz_chap(const uint8_t *data, size_t size)
{
    static const size_t caps[] = { 0, 1, 2, 15, 16, 64, 255, ISC_CHAP_MAX_CHALLENGE };
    uint8_t *out, *again, d1[ISC_CHAP_MAX_DIGEST], d2[ISC_CHAP_MAX_DIGEST];
    char *text, *hex;
    const char *secret;
    size_t cap, hexcap;
    int alg, n, m, r1, r2;

    if (size < 3)
        return 0;
    alg = algs[data[0] % (sizeof(algs) / sizeof(algs[0]))];
    cap = caps[data[2] % (sizeof(caps) / sizeof(caps[0]))];
    text = fuzz_strndup(data + 3, size - 3);
    secret = text + strlen(text) < text + (size - 3) ? text + strlen(text) + 1 : "";

    out = malloc(cap ? cap : 1);
    if (!out)
        abort();
    n = isc_chap_decode(text, out, cap);
    FUZZ_CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= cap),
               "decode of a %zu-char value into %zu bytes returned %d", strlen(text), cap, n);
    if (n > 0) {
        hexcap = 2 * (size_t)n + 3;
        hex = malloc(hexcap);
        again = malloc((size_t)n);
        if (!hex || !again)
            abort();
        isc_chap_encode_hex(out, (size_t)n, hex, hexcap);
        FUZZ_CHECK(strlen(hex) == 2 * (size_t)n + 2, "hex of %d bytes is %zu chars", n,
                   strlen(hex));
        m = isc_chap_decode(hex, again, (size_t)n);
        FUZZ_CHECK(m == n && !memcmp(out, again, (size_t)n),
                   "hex round trip of %d bytes gave %d", n, m);
        free(hex);
        free(again);
    }

    r1 = isc_chap_response(alg, data[1], secret, strlen(secret), out, n > 0 ? (size_t)n : 0,
                           d1);
    if (isc_chap_digest_len(alg) == 0) {
        FUZZ_CHECK(r1 == -EINVAL, "unsupported algorithm %d gave %d", alg, r1);
    } else {
        FUZZ_CHECK(r1 > 0 && (size_t)r1 == isc_chap_digest_len(alg) &&
                       r1 <= ISC_CHAP_MAX_DIGEST,
                   "algorithm %d: response of %d bytes", alg, r1);
        r2 = isc_chap_response(alg, data[1], secret, strlen(secret), out,
                               n > 0 ? (size_t)n : 0, d2);
        FUZZ_CHECK(r2 == r1 && !memcmp(d1, d2, (size_t)r1), "response is not deterministic");
    }
    explicit_bzero(d1, sizeof(d1));
    free(out);
    free(text);
    return 0;
}
