/*
 * nbd_tls.c - a GnuTLS server session over the client's non-blocking socket (nbd_tls.h).
 *
 * GnuTLS reads and writes the descriptor itself (gnutls_transport_set_int), so that it can
 * hand the keys to the kernel (kTLS) when the system allows it; GNUTLS_E_AGAIN becomes
 * -EAGAIN and the storage loop waits for the socket. Writes are corked: one batch of
 * replies (up to TLS_WRITE_BATCH bytes) is encrypted into full records and leaves in as few
 * socket writes as GnuTLS can manage; a batch the socket did not take in full stays
 * GnuTLS's and goes on with the next call.
 */
#include "storage/nbd_tls.h"

#include <errno.h>
#include <gnutls/socket.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/tls_int.h"

#define TLS_WRITE_BATCH (256u * 1024)

struct nbds_tls {
    gnutls_session_t s;
    struct tls_peer peer;          /* what the credentials' callbacks saw */
    bool handshaken;
    bool corked;                   /* a batch accepted earlier still waits for the socket */
    char identity[TLS_IDENTITY_MAX];
};

struct nbds_tls *nbds_tls_new(const struct tls_creds *cr, int fd, char *err, size_t errlen)
{
    struct nbds_tls *t = calloc(1, sizeof(*t));
    int ret;

    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ret = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (ret < 0) {
        snprintf(err, errlen, "cannot start a tls session: %s", gnutls_strerror(ret));
        free(t);
        return NULL;
    }
    ret = tls_creds_session_setup(cr, t->s, &t->peer);
    if (ret < 0) {
        snprintf(err, errlen, "cannot set up the tls session: %s", gnutls_strerror(ret));
        nbds_tls_free(t);
        return NULL;
    }
    gnutls_transport_set_int(t->s, fd);
    gnutls_handshake_set_timeout(t->s, 0); /* the NBD handshake deadline covers it */
    return t;
}

void nbds_tls_free(struct nbds_tls *t)
{
    if (!t)
        return;
    gnutls_deinit(t->s);
    free(t);
}

static bool again(int ret)
{
    return ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED;
}

/* The CN of the client's certificate (verified during the handshake), printable. */
static void peer_cn(struct nbds_tls *t)
{
    unsigned int n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
    gnutls_x509_crt_t crt;
    size_t len = sizeof(t->identity);

    if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, t->identity,
                                      &len) < 0)
        t->identity[0] = '\0';
    gnutls_x509_crt_deinit(crt);
    for (char *p = t->identity; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int nbds_tls_handshake(struct nbds_tls *t, char *err, size_t errlen)
{
    int ret = gnutls_handshake(t->s);

    if (again(ret))
        return -EAGAIN;
    if (ret < 0) {
        snprintf(err, errlen, "tls handshake failed: %s", gnutls_strerror(ret));
        return ret == GNUTLS_E_CERTIFICATE_ERROR || ret == GNUTLS_E_NO_CERTIFICATE_FOUND ||
               ret == GNUTLS_E_DECRYPTION_FAILED || ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
               ? -EACCES : -EPROTO;
    }
    t->handshaken = true;
    if (gnutls_auth_get_type(t->s) == GNUTLS_CRD_PSK) {
        const char *u = gnutls_psk_server_get_username(t->s);
        snprintf(t->identity, sizeof(t->identity), "%s", u ? u : "");
    } else {
        peer_cn(t);
    }
    return 0;
}

bool nbds_tls_wants_write(const struct nbds_tls *t)
{
    return gnutls_record_get_direction(t->s) == 1;
}

ssize_t nbds_tls_read(struct nbds_tls *t, void *buf, size_t len)
{
    for (int tries = 0; tries < 8; tries++) {
        ssize_t r = gnutls_record_recv(t->s, buf, len);
        if (r >= 0)
            return r;
        if (again((int)r))
            return -EAGAIN;
        if (r == GNUTLS_E_PREMATURE_TERMINATION)
            return 0; /* the peer hung up without a close_notify: a hang-up all the same */
        if (gnutls_error_is_fatal((int)r) || r == GNUTLS_E_REHANDSHAKE)
            return -EPROTO;
        /* a warning alert: read on */
    }
    return -EAGAIN;
}

size_t nbds_tls_pending(struct nbds_tls *t)
{
    return gnutls_record_check_pending(t->s);
}

ssize_t nbds_tls_writev(struct nbds_tls *t, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    ssize_t ret;

    if (t->corked) {
        ret = gnutls_record_uncork(t->s, 0);
        if (again((int)ret))
            return -EAGAIN;
        if (ret < 0)
            return -EIO;
        t->corked = false;
    }
    gnutls_record_cork(t->s);
    t->corked = true;
    for (int i = 0; i < iovcnt && total < TLS_WRITE_BATCH; i++) {
        size_t n = iov[i].iov_len;
        if (n > TLS_WRITE_BATCH - total)
            n = TLS_WRITE_BATCH - total;
        if (!n)
            continue;
        ret = gnutls_record_send(t->s, iov[i].iov_base, n); /* corked: copied, not sent */
        if (ret < 0)
            return -EIO;
        total += (size_t)ret;
    }
    ret = gnutls_record_uncork(t->s, 0);
    if (ret >= 0)
        t->corked = false;
    else if (!again((int)ret))
        return -EIO;
    return (ssize_t)total;
}

bool nbds_tls_send_pending(const struct nbds_tls *t)
{
    return t->corked;
}

void nbds_tls_bye(struct nbds_tls *t)
{
    if (t->handshaken && !t->corked)
        gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

const char *nbds_tls_identity(const struct nbds_tls *t)
{
    return t->identity;
}

const char *nbds_tls_tried(const struct nbds_tls *t)
{
    return t->peer.tried;
}

const char *nbds_tls_auth(const struct nbds_tls *t)
{
    return gnutls_auth_get_type(t->s) == GNUTLS_CRD_PSK ? "psk" : "x509";
}

const char *nbds_tls_path(const struct nbds_tls *t)
{
    switch (gnutls_transport_is_ktls_enabled(t->s)) {
    case GNUTLS_KTLS_DUPLEX:
        return "kernel tls (send and receive)";
    case GNUTLS_KTLS_SEND:
        return "kernel tls (send), userspace receive";
    case GNUTLS_KTLS_RECV:
        return "kernel tls (receive), userspace send";
    default:
        return "userspace (gnutls)";
    }
}

void nbds_tls_describe(const struct nbds_tls *t, char *out, size_t outlen)
{
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
    const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));

    snprintf(out, outlen, "%s %s", v ? v : "?", c ? c : "?");
}
