/*
 * fuzz_url.c - the iscsi:// URL parser (storage/url.c).
 *
 * Input: the URL text (up to its first NUL). Properties: an accepted URL has a host, a LUN
 * of -1..16383, a secret with every CHAP user and both halves of mutual CHAP; a refused
 * one leaves nothing owned and says why in one printable line; and that line never depends
 * on a secret: the same URL with each secret's bytes replaced by 'Q's (but for the bytes
 * the parser splits at) must fail with the very same message (the secret cannot be in
 * it, not even partly).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "storage/url.h"
#include "tests/fuzz/fuzz.h"

/* Overwrite n bytes of a secret with 'Q', keeping the bytes the parser splits at. */
static void mask(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("/?&=@%:", s[i]))
            s[i] = 'Q';
}

/*
 * Mask the CHAP secret and every target_password value of u in place. Where the user info
 * ends follows storage/url.c: the first '@' with no '/' before it, unless a '?' before it
 * has no '%' or ':' (or only "host:port") in front of it. The structure of the URL stays
 * as it was, so the parse must come out the same but for the secrets' bytes.
 */
static void mask_secrets(char *u)
{
    char *p = u + 8, *slash = strchr(p, '/'), *at, *q;
    size_t span = slash ? (size_t)(slash - p) : strlen(p);

    at = memchr(p, '@', span);
    if (at && (q = memchr(p, '?', (size_t)(at - p))) && !memchr(p, '%', (size_t)(q - p))) {
        char *colon = memchr(p, ':', (size_t)(q - p));
        bool port = colon && colon + 1 < q;
        for (char *d = colon ? colon + 1 : q; port && d < q; d++)
            port = *d >= '0' && *d <= '9';
        if (!colon || port)
            at = NULL;
    }
    if (at) {
        char *sep = memchr(p, '%', (size_t)(at - p));
        if (!sep)
            sep = memchr(p, ':', (size_t)(at - p));
        if (sep)
            mask(sep + 1, (size_t)(at - sep - 1));
        p = at + 1;
    }
    q = strchr(p, '?');
    while (q) {
        char *item = q + 1, *amp = strchr(item, '&');
        size_t n = amp ? (size_t)(amp - item) : strlen(item);
        if (n > 16 && !strncmp(item, "target_password=", 16))
            mask(item + 16, n - 16);
        q = amp;
    }
}

int fuzz_url(const uint8_t *data, size_t size)
{
    struct isc_url u;
    char err[256], err2[256];
    char *s = fuzz_strndup(data, size);
    int ret;

    err[0] = '\0';
    ret = isc_url_parse(s, &u, err, sizeof(err));
    if (ret == 0) {
        FUZZ_CHECK(u.portal && u.portal[0], "accepted without a host");
        FUZZ_CHECK(u.lun >= -1 && u.lun <= 16383, "lun %d", u.lun);
        FUZZ_CHECK(!u.user || (u.secret && u.secret[0]), "chap user without a secret");
        FUZZ_CHECK(!u.target || u.target[0], "empty target name");
        FUZZ_CHECK(!u.target_user == !u.target_secret, "half of mutual chap");
        FUZZ_CHECK(!u.target_user || u.secret, "mutual chap without one-way chap");
        isc_url_clear(&u);
        FUZZ_CHECK(!u.user && !u.secret && !u.portal && u.lun == -1, "clear left fields");
        free(s);
        return 0;
    }
    FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM, "parse returned %d", ret);
    FUZZ_CHECK(!u.user && !u.secret && !u.portal && !u.target && !u.target_user &&
                   !u.target_secret,
               "a refused url left fields owned");
    FUZZ_CHECK(err[0] && fuzz_printable_line(err, strlen(err)),
               "refused without a one-line printable message");
    if (strncmp(s, "iscsi://", 8) == 0) {
        mask_secrets(s);
        err2[0] = '\0';
        FUZZ_CHECK(isc_url_parse(s, &u, err2, sizeof(err2)) == ret,
                   "the result depends on the secret's bytes");
        FUZZ_CHECK(strcmp(err, err2) == 0, "the error message depends on a secret");
    }
    free(s);
    return 0;
}
