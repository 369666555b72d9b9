/*
 * url.c - iscsi:// URL parsing.
 */
#include "storage/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void isc_url_clear(struct isc_url *u)
{
    free(u->user);
    wipe_free(u->secret);
    free(u->portal);
    free(u->target);
    free(u->target_user);
    wipe_free(u->target_secret);
    memset(u, 0, sizeof(*u));
    u->lun = -1;
}

/*
 * Part of the URL fit to quote in a message: at most `max` bytes, anything but printable
 * ASCII shown as '?' (the message is one line). Never called on a secret.
 */
static const char *quote(const char *s, size_t max, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] && i < max && i + 1 < len; i++)
        buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/*
 * Where the user info ends: at the first '@' with no '/' before it. It is taken off before
 * the query is looked for, so a secret may hold '?' or '&'. But a '?' before that '@' with
 * no '%' or ':' in front of it, or after a port ("host:3260?"), starts the query: the '@'
 * is then inside a query value (a target_password), which must never become a user name
 * that an error message would quote. NULL when there is no user info.
 */
static const char *userinfo_end(const char *p)
{
    const char *slash = strchr(p, '/');
    const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    const char *qm, *colon;

    if (!at || !(qm = memchr(p, '?', (size_t)(at - p))) || memchr(p, '%', (size_t)(qm - p)))
        return at;
    colon = memchr(p, ':', (size_t)(qm - p));
    if (!colon || colon + 1 == qm)
        return colon ? at : NULL;
    for (const char *d = colon + 1; d < qm; d++)
        if (*d < '0' || *d > '9')
            return at;
    return NULL;
}

/* "crc32c" sets *on, "none" sets *off; the last of repeated keys wins. */
static int parse_digest(const char *v, bool *on, bool *off)
{
    if (strcmp(v, "none") != 0 && strcmp(v, "crc32c") != 0)
        return -EINVAL;
    *on = !strcmp(v, "crc32c");
    *off = !*on;
    return 0;
}

static int parse_query(char *q, struct isc_url *u, char *err, size_t errlen)
{
    char *save = NULL, qbuf[33];

    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        const char *val;
        if (!eq) {
            snprintf(err, errlen, "url query item \"%s\" has no value",
                     quote(kv, 32, qbuf, sizeof(qbuf)));
            return -EINVAL;
        }
        *eq = '\0';
        val = eq + 1;
        if (!strcmp(kv, "header_digest")) {
            if (parse_digest(val, &u->header_digest, &u->no_header_digest) < 0)
                goto bad_digest;
        } else if (!strcmp(kv, "data_digest")) {
            if (parse_digest(val, &u->data_digest, &u->no_data_digest) < 0)
                goto bad_digest;
        } else if (!strcmp(kv, "target_user")) {
            free(u->target_user);
            if (!(u->target_user = strdup(val)))
                return -ENOMEM;
        } else if (!strcmp(kv, "target_password")) {
            wipe_free(u->target_secret);
            if (!(u->target_secret = strdup(val)))
                return -ENOMEM;
        } else {
            snprintf(err, errlen, "unknown url query key \"%s\"",
                     quote(kv, 32, qbuf, sizeof(qbuf)));
            return -EINVAL;
        }
        continue;
bad_digest:
        snprintf(err, errlen, "url %s must be none or crc32c", kv);
        return -EINVAL;
    }
    return 0;
}

int isc_url_parse(const char *s, struct isc_url *out, char *err, size_t errlen)
{
    const char *p, *at, *slash, *q, *end;
    char *query = NULL, qbuf[65];
    int ret = -EINVAL;

    memset(out, 0, sizeof(*out));
    out->lun = -1;
    if (strncmp(s, "iscsi://", 8) != 0) {
        snprintf(err, errlen, "url must start with iscsi://");
        return -EINVAL;
    }
    p = s + 8;
    at = userinfo_end(p);
    if (at) {
        /* libiscsi's separator is '%'; without one, "user:secret" is accepted too */
        const char *pct = memchr(p, '%', (size_t)(at - p));
        if (!pct)
            pct = memchr(p, ':', (size_t)(at - p));
        if (pct) {
            out->user = dupn(p, (size_t)(pct - p));
            out->secret = dupn(pct + 1, (size_t)(at - pct - 1));
            if (!out->secret || !*out->secret) {
                snprintf(err, errlen, "url has an empty chap secret");
                goto fail;
            }
        } else {
            out->user = dupn(p, (size_t)(at - p));
        }
        if (!out->user || !*out->user) {
            snprintf(err, errlen, "url has an empty chap user");
            goto fail;
        }
        p = at + 1;
    }
    end = p + strlen(p);
    q = strchr(p, '?');
    if (q)
        end = q;
    slash = memchr(p, '/', (size_t)(end - p));
    out->portal = dupn(p, (size_t)((slash ? slash : end) - p));
    if (!out->portal || !*out->portal) {
        snprintf(err, errlen, "url has no host");
        goto fail;
    }
    if (slash && slash + 1 < end) {
        const char *t = slash + 1;
        const char *lslash = memchr(t, '/', (size_t)(end - t));
        out->target = dupn(t, (size_t)((lslash ? lslash : end) - t));
        if (!out->target || !*out->target) {
            snprintf(err, errlen, "url has an empty target name");
            goto fail;
        }
        if (lslash && lslash + 1 < end) {
            char *e;
            char lunbuf[16];
            size_t n = (size_t)(end - lslash - 1);
            if (n >= sizeof(lunbuf))
                goto bad_lun;
            memcpy(lunbuf, lslash + 1, n);
            lunbuf[n] = '\0';
            errno = 0;
            long v = strtol(lunbuf, &e, 10);
            if (errno || *e || v < 0 || v > 16383)
                goto bad_lun;
            out->lun = (int32_t)v;
        }
    }
    if (q) {
        query = strdup(q + 1);
        if (!query) {
            ret = -ENOMEM;
            goto fail;
        }
        ret = parse_query(query, out, err, errlen);
        wipe_free(query);
        if (ret < 0)
            goto fail;
    }
    if ((out->target_user != NULL) != (out->target_secret != NULL)) {
        snprintf(err, errlen, "mutual chap needs both target_user and target_password");
        goto fail_inval;
    }
    if (out->target_user && !out->secret) {
        snprintf(err, errlen, "mutual chap needs a one-way chap user%%secret too");
        goto fail_inval;
    }
    if (out->user && !out->secret) {
        snprintf(err, errlen, "url names chap user \"%s\" without a secret",
                 quote(out->user, 64, qbuf, sizeof(qbuf)));
        goto fail_inval;
    }
    return 0;
bad_lun:
    snprintf(err, errlen, "url lun must be a number from 0 to 16383");
fail_inval:
    ret = -EINVAL;
fail:
    isc_url_clear(out);
    return ret;
}
