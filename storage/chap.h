/*
 * chap.h - CHAP for iSCSI login (RFC 1994, RFC 7143 §12.1.3): responses, challenges and
 * the binary value encodings, with digests from OpenSSL's libcrypto.
 */
#ifndef TOEGW_STORAGE_CHAP_H
#define TOEGW_STORAGE_CHAP_H

#include <stddef.h>
#include <stdint.h>

/* CHAP_A algorithm numbers (IANA PPP authentication algorithms). */
enum isc_chap_alg {
    ISC_CHAP_MD5 = 5,
    ISC_CHAP_SHA1 = 6,
    ISC_CHAP_SHA256 = 7,
    ISC_CHAP_SHA3_256 = 8,
};

#define ISC_CHAP_MAX_DIGEST 64
#define ISC_CHAP_MAX_CHALLENGE 1024

/*
 * Our offer, in preference order, as the CHAP_A value ("7,5": SHA-256, then MD5), and the
 * MD5-only offer for targets that refuse the login when offered a list (tgt does).
 */
extern const char isc_chap_offer[];
extern const char isc_chap_offer_md5[];

/* Digest length of alg, or 0 when unsupported. */
size_t isc_chap_digest_len(int alg);

/*
 * response = H(id || secret || challenge). `out` holds ISC_CHAP_MAX_DIGEST bytes.
 * Returns the digest length, or -EINVAL (unsupported algorithm) / -EIO (libcrypto).
 */
int isc_chap_response(int alg, uint8_t id, const void *secret, size_t secret_len,
                      const uint8_t *challenge, size_t challenge_len, uint8_t *out);

/*
 * Decode an RFC 7143 binary value ("0x" hex or "0b" base64) into out (cap bytes).
 * Returns the byte count or -EINVAL.
 */
int isc_chap_decode(const char *s, uint8_t *out, size_t cap);
/* Encode bytes as "0x..." hex into out (cap >= 2*len+3). */
void isc_chap_encode_hex(const uint8_t *in, size_t len, char *out, size_t cap);
/* Fill buf with len random bytes. 0 or -EIO. */
int isc_chap_random(uint8_t *buf, size_t len);

#endif
