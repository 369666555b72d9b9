/*
 * api_client.c - one GET to the appliance's REST API (api_client.h): a request with
 * `Connection: close`, the answer read to its end, over a socket or a GnuTLS session.
 */
#include "appliance/api_client.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sockspec.h"

#define RESPONSE_MAX (16u * 1024 * 1024)
#define API_TIMEOUT_S 10
#define API_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* A connection: the socket, and the TLS session on it when the address is https://. */
struct conn {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
};

bool app_api_is_https(const char *api)
{
    return api && strncmp(api, "https://", 8) == 0;
}

/* The address without its scheme and without a trailing '/'. */
static void strip_scheme(const char *api, char *out, size_t outlen)
{
    const char *p = app_api_is_https(api) ? api + 8
                    : strncmp(api, "http://", 7) == 0 ? api + 7 : api;
    size_t n;

    snprintf(out, outlen, "%s", p);
    n = strlen(out);
    if (n > 0 && out[n - 1] == '/')
        out[n - 1] = '\0';
}

static void conn_close(struct conn *c)
{
    if (c->tls) {
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(c->tls);
    }
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    if (c->fd >= 0)
        close(c->fd);
}

/* Why the server's certificate was not accepted, in one line. */
static void verify_why(gnutls_session_t s, const char *cacert, char *err, size_t errlen)
{
    unsigned st = gnutls_session_get_verify_cert_status(s);
    gnutls_datum_t why = { NULL, 0 };

    if (st && gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &why, 0) >= 0) {
        size_t n = strlen((char *)why.data);
        while (n > 0 && (why.data[n - 1] == ' ' || why.data[n - 1] == '\n'))
            why.data[--n] = '\0';
        snprintf(err, errlen, "the api's tls certificate is not trusted (checked against "
                 "%s): %s", cacert, why.data);
    }
    else
        snprintf(err, errlen, "the tls handshake with the api failed");
    gnutls_free(why.data);
}

/* TLS on c->fd: the server's certificate must chain to cacert and name host. */
static int tls_start(struct conn *c, const char *host, const char *cacert, char *err,
                     size_t errlen)
{
    int ret = gnutls_certificate_allocate_credentials(&c->cred);

    if (ret < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ret = gnutls_certificate_set_x509_trust_file(c->cred, cacert, GNUTLS_X509_FMT_PEM);
    if (ret <= 0) {
        snprintf(err, errlen, "cannot read a pem certificate from the ca file \"%s\"%s%s",
                 cacert, ret < 0 ? ": " : "", ret < 0 ? gnutls_strerror(ret) : "");
        return -EINVAL;
    }
    ret = gnutls_init(&c->tls, GNUTLS_CLIENT);
    if (ret >= 0)
        ret = gnutls_priority_set_direct(c->tls, API_TLS_PRIORITIES, NULL);
    if (ret >= 0)
        ret = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (ret < 0) {
        snprintf(err, errlen, "cannot set up tls: %s", gnutls_strerror(ret));
        return -EIO;
    }
    gnutls_session_set_verify_cert(c->tls, host, 0);
    gnutls_transport_set_int(c->tls, c->fd);
    gnutls_handshake_set_timeout(c->tls, API_TIMEOUT_S * 1000);
    do {
        ret = gnutls_handshake(c->tls);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        verify_why(c->tls, cacert, err, errlen);
        return -EPERM;
    }
    if (ret < 0) {
        snprintf(err, errlen, "the tls handshake with the api failed: %s (is it https?)",
                 gnutls_strerror(ret));
        return -EPROTO;
    }
    return 0;
}

static int conn_open(struct conn *c, const struct app_api_client *cl, char *err,
                     size_t errlen)
{
    char addr[512];
    struct sockspec sp;
    bool https = app_api_is_https(cl->api);

    c->fd = -1;
    strip_scheme(cl->api, addr, sizeof(addr));
    if (https && (sockspec_parse(addr, 8080, &sp) < 0 || sp.is_unix)) {
        snprintf(err, errlen, "an https api address is https://host[:port], not \"%.64s\"",
                 cl->api);
        return -EINVAL;
    }
    c->fd = sockspec_connect(addr, 8080, "appliance's api", API_TIMEOUT_S, err, errlen);
    if (c->fd < 0)
        return c->fd;
    return https ? tls_start(c, sp.host, cl->cacert, err, errlen) : 0;
}

static int conn_send(struct conn *c, const char *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = c->tls ? gnutls_record_send(c->tls, buf + off, n - off)
                           : write(c->fd, buf + off, n - off);
        if (w < 0 && (c->tls ? !gnutls_error_is_fatal((int)w) : errno == EINTR))
            continue;
        if (w <= 0)
            return -EIO;
        off += (size_t)w;
    }
    return 0;
}

/* Bytes of the answer; 0 at its end (a TLS peer that closes without close_notify too). */
static ssize_t conn_recv(struct conn *c, char *buf, size_t n)
{
    for (;;) {
        ssize_t r = c->tls ? gnutls_record_recv(c->tls, buf, n) : read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (c->tls && r == GNUTLS_E_PREMATURE_TERMINATION)
            return 0;
        if (c->tls ? !gnutls_error_is_fatal((int)r) : errno == EINTR)
            continue;
        return -1;
    }
}

/* The whole answer (caller frees), or NULL when it is too large or out of memory. */
static char *read_all(struct conn *c, size_t *len)
{
    size_t cap = 65536;
    char *buf = malloc(cap + 1);

    *len = 0;
    while (buf) {
        if (*len == cap) {
            char *nb = cap < RESPONSE_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = conn_recv(c, buf + *len, cap - *len);
        if (r <= 0)
            break;
        *len += (size_t)r;
    }
    if (buf)
        buf[*len] = '\0';
    return buf;
}

/* De-chunk a chunked body in place. */
static void dechunk(char *buf, size_t len, char *body)
{
    char *in = body, *out = body;

    for (;;) {
        char *end;
        unsigned long sz = strtoul(in, &end, 16);
        char *data = strstr(end, "\r\n");
        if (!data || sz == 0)
            break;
        data += 2;
        if ((size_t)(data - buf) + sz > len)
            break;
        memmove(out, data, sz);
        out += sz;
        in = data + sz + 2;
    }
    *out = '\0';
}

char *app_api_get(const struct app_api_client *cl, const char *path, const char *token,
                  int *status, char *err, size_t errlen)
{
    struct conn c = { .fd = -1 };
    char req[1024], *buf, *body;
    size_t len;

    if (conn_open(&c, cl, err, errlen) < 0) {
        conn_close(&c);
        return NULL;
    }
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: toegw\r\nAuthorization: Bearer %s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n", path, token);
    if (n < 0 || (size_t)n >= sizeof(req) || conn_send(&c, req, (size_t)n) < 0) {
        snprintf(err, errlen, "sending the request to the api failed: %s",
                 n < 0 || (size_t)n >= sizeof(req) ? "the request is too long"
                                                   : strerror(errno));
        explicit_bzero(req, sizeof(req));
        conn_close(&c);
        return NULL;
    }
    explicit_bzero(req, sizeof(req));
    buf = read_all(&c, &len);
    conn_close(&c);
    if (!buf) {
        snprintf(err, errlen, "the api's answer is too large");
        return NULL;
    }
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || !(body = strstr(buf, "\r\n\r\n"))) {
        snprintf(err, errlen, "the api sent no http response%s", app_api_is_https(cl->api)
                 ? "" : " (if it speaks https, use --api https://HOST:PORT)");
        free(buf);
        return NULL;
    }
    body += 4;
    if (strcasestr(buf, "\r\nTransfer-Encoding: chunked"))
        dechunk(buf, len, body);
    memmove(buf, body, strlen(body) + 1);
    return buf;
}
