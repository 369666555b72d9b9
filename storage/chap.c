/*
 * chap.c - CHAP digests via libcrypto's EVP interface and RFC 7143 binary encodings.
 */
#include "storage/chap.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

const char isc_chap_offer[] = "7,5";
const char isc_chap_offer_md5[] = "5";

static const EVP_MD *chap_md(int alg)
{
    switch (alg) {
    case ISC_CHAP_MD5:
        return EVP_md5();
    case ISC_CHAP_SHA1:
        return EVP_sha1();
    case ISC_CHAP_SHA256:
        return EVP_sha256();
    case ISC_CHAP_SHA3_256:
        return EVP_sha3_256();
    default:
        return NULL;
    }
}

size_t isc_chap_digest_len(int alg)
{
    const EVP_MD *md = chap_md(alg);

    return md ? (size_t)EVP_MD_get_size(md) : 0;
}

int isc_chap_response(int alg, uint8_t id, const void *secret, size_t secret_len,
                      const uint8_t *challenge, size_t challenge_len, uint8_t *out)
{
    const EVP_MD *md = chap_md(alg);
    EVP_MD_CTX *ctx;
    unsigned int len = 0;
    int ok;

    if (!md)
        return -EINVAL;
    ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    ok = EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, &id, 1) &&
         EVP_DigestUpdate(ctx, secret, secret_len) &&
         EVP_DigestUpdate(ctx, challenge, challenge_len) && EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    return ok ? (int)len : -EIO;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int isc_chap_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t len;

    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X' && s[1] != 'b' && s[1] != 'B'))
        return -EINVAL;
    len = strlen(s + 2);
    if (len == 0)
        return -EINVAL;
    if (s[1] == 'x' || s[1] == 'X') {
        const char *p = s + 2;
        size_t n = 0;
        /* an odd digit count has an implied leading zero */
        if (len % 2) {
            if (hexval(*p) < 0 || cap < 1)
                return -EINVAL;
            out[n++] = (uint8_t)hexval(*p++);
        }
        for (; *p; p += 2) {
            int hi = hexval(p[0]), lo = hexval(p[1]);
            if (hi < 0 || lo < 0 || n >= cap)
                return -EINVAL;
            out[n++] = (uint8_t)(hi << 4 | lo);
        }
        return (int)n;
    }
    /* base64 */
    if (len % 4 || len / 4 * 3 > cap + 2)
        return -EINVAL;
    uint8_t tmp[ISC_CHAP_MAX_CHALLENGE + 4];
    if (len / 4 * 3 > sizeof(tmp))
        return -EINVAL;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)s + 2, (int)len);
    if (n < 0)
        return -EINVAL;
    if (s[2 + len - 1] == '=')
        n--;
    if (s[2 + len - 2] == '=')
        n--;
    if ((size_t)n > cap)
        return -EINVAL;
    memcpy(out, tmp, (size_t)n);
    return n;
}

void isc_chap_encode_hex(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    size_t pos = 0;

    if (cap < 3)
        return;
    out[pos++] = '0';
    out[pos++] = 'x';
    for (size_t i = 0; i < len && pos + 2 < cap; i++) {
        out[pos++] = digits[in[i] >> 4];
        out[pos++] = digits[in[i] & 15];
    }
    out[pos] = '\0';
}

int isc_chap_random(uint8_t *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -EIO;
}
