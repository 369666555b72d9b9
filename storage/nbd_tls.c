/*
 * nbd_tls.c - a GnuTLS server session over the client's non-blocking socket (nbd_tls.h).
 *
 * The handshake runs on the descriptor itself (gnutls_transport_set_int), so that GnuTLS
 * can hand the keys to the kernel (kTLS) when the system allows it. Then:
 *   - kTLS: GnuTLS (the kernel) goes on with the descriptor; writes are corked, one batch of
 *     replies (up to TLS_WRITE_BATCH bytes) at a time.
 *   - userspace: the session's records go through buffers of our own (a 256 KiB read-ahead
 *     and a queue of encrypted records): one read and one write a batch instead of one or
 *     two per 16 KiB record. Bytes in the read-ahead count as pending (nbds_tls_pending):
 *     the socket will not say they are there.
 * GNUTLS_E_AGAIN becomes -EAGAIN and the storage loop waits for the socket.
 */
#include "storage/nbd_tls.h"

#include <errno.h>
#include <gnutls/socket.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/tls_int.h"

#define TLS_WRITE_BATCH (256u * 1024)
#define TLS_IN_BUF (256u * 1024)
#define TLS_OUT_BUF (TLS_WRITE_BATCH + 64u * 1024) /* a batch and its records' overhead */
#define TLS_RECORD_ROOM (16384u + 512)            /* one record, encrypted, at most */

struct nbds_tls {
    gnutls_session_t s;
    int fd;
    struct tls_peer peer;          /* what the credentials' callbacks saw */
    bool handshaken;
    bool corked;                   /* kTLS: a batch accepted earlier still waits */
    bool own_io;                   /* userspace: records go through in/out below */
    int io_err;                    /* the socket's last hard error (errno) */
    uint8_t *in, *out;
    size_t in_off, in_len, out_off, out_len, out_cap;
    char identity[TLS_IDENTITY_MAX];
};

static bool again(int ret)
{
    return ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED;
}

/* ---------------------------------------------------------------- our own transport */

/* GnuTLS reads: from the read-ahead, refilled by one read of up to TLS_IN_BUF. */
static ssize_t own_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct nbds_tls *t = p;
    size_t n;

    if (t->in_off == t->in_len) {
        ssize_t r = read(t->fd, t->in, TLS_IN_BUF);
        if (r < 0) {
            gnutls_transport_set_errno(t->s, errno == EINTR ? EAGAIN : errno);
            return -1;
        }
        if (r == 0)
            return 0;
        t->in_off = 0;
        t->in_len = (size_t)r;
    }
    n = t->in_len - t->in_off < len ? t->in_len - t->in_off : len;
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    return (ssize_t)n;
}

static int own_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    struct nbds_tls *t = p;
    struct pollfd pfd = { .fd = t->fd, .events = POLLIN };

    if (t->in_off < t->in_len)
        return 1;
    return poll(&pfd, 1, (int)ms);
}

/* Write what is queued until the socket takes no more. 0, or -errno (not -EAGAIN). */
static int own_flush(struct nbds_tls *t)
{
    while (t->out_off < t->out_len) {
        ssize_t w = send(t->fd, t->out + t->out_off, t->out_len - t->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            t->io_err = errno;
            return -errno;
        }
        t->out_off += (size_t)w;
    }
    t->out_off = t->out_len = 0;
    return 0;
}

/*
 * GnuTLS writes records: queued, sent in batches by own_flush. Never "again": GnuTLS would
 * then want the same record sent again; own_writev stops encrypting while the queue is full,
 * so the queue grows past TLS_OUT_BUF only for the odd alert or ticket.
 */
static ssize_t own_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    struct nbds_tls *t = p;
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (t->out_off && t->out_len + total > t->out_cap) {
        memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
        t->out_len -= t->out_off;
        t->out_off = 0;
    }
    if (t->out_len + total > t->out_cap) {
        uint8_t *n = realloc(t->out, t->out_len + total);
        if (!n) {
            gnutls_transport_set_errno(t->s, ENOMEM);
            return -1;
        }
        t->out = n;
        t->out_cap = t->out_len + total;
    }
    for (int i = 0; i < iovcnt; i++) {
        memcpy(t->out + t->out_len, iov[i].iov_base, iov[i].iov_len);
        t->out_len += iov[i].iov_len;
    }
    return (ssize_t)total;
}

/* After the handshake, without kTLS: switch the session to the buffers above. */
static void own_io_start(struct nbds_tls *t)
{
    t->in = malloc(TLS_IN_BUF);
    t->out = malloc(TLS_OUT_BUF);
    if (!t->in || !t->out) { /* stay on the descriptor: slower, but it works */
        free(t->in);
        free(t->out);
        t->in = t->out = NULL;
        return;
    }
    t->out_cap = TLS_OUT_BUF;
    gnutls_transport_set_ptr(t->s, t);
    gnutls_transport_set_pull_function(t->s, own_pull);
    gnutls_transport_set_pull_timeout_function(t->s, own_pull_timeout);
    gnutls_transport_set_vec_push_function(t->s, own_push);
    t->own_io = true;
}

/* Userspace writes: encrypt up to a batch of iov into the queue, then send it. */
static ssize_t own_writev(struct nbds_tls *t, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    if (own_flush(t) < 0)
        return -EIO;
    for (int i = 0; i < iovcnt && total < TLS_WRITE_BATCH; i++) {
        size_t done = 0;
        while (done < iov[i].iov_len && total < TLS_WRITE_BATCH) {
            size_t n = iov[i].iov_len - done;
            ssize_t r;
            if (t->out_len - t->out_off + TLS_RECORD_ROOM > TLS_OUT_BUF)
                goto sent; /* the queue is full: the socket must take some first */
            if (n > TLS_WRITE_BATCH - total)
                n = TLS_WRITE_BATCH - total;
            r = gnutls_record_send(t->s, (const uint8_t *)iov[i].iov_base + done, n);
            if (r < 0)
                return -EIO; /* own_push never asks to try again */
            done += (size_t)r;
            total += (size_t)r;
        }
    }
sent:
    if (own_flush(t) < 0)
        return -EIO;
    return total ? (ssize_t)total : -EAGAIN;
}

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
    t->fd = fd;
    gnutls_handshake_set_timeout(t->s, 0); /* the NBD handshake deadline covers it */
    return t;
}

void nbds_tls_free(struct nbds_tls *t)
{
    if (!t)
        return;
    gnutls_deinit(t->s);
    free(t->in);
    free(t->out);
    free(t);
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
    if (gnutls_transport_is_ktls_enabled(t->s) == 0)
        own_io_start(t);
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
    return gnutls_record_check_pending(t->s) + (t->in_len - t->in_off);
}

ssize_t nbds_tls_writev(struct nbds_tls *t, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    ssize_t ret;

    if (t->own_io)
        return own_writev(t, iov, iovcnt);
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

int nbds_tls_flush(struct nbds_tls *t)
{
    int ret;

    if (t->own_io)
        return own_flush(t) < 0 ? -EIO : 0;
    if (!t->corked)
        return 0;
    ret = gnutls_record_uncork(t->s, 0);
    if (ret >= 0)
        t->corked = false;
    else if (!again(ret))
        return -EIO;
    return 0;
}

bool nbds_tls_send_pending(const struct nbds_tls *t)
{
    return t->corked || t->out_off < t->out_len;
}

void nbds_tls_bye(struct nbds_tls *t)
{
    if (!t->handshaken || t->corked)
        return;
    if (gnutls_bye(t->s, GNUTLS_SHUT_WR) == 0 && t->own_io)
        own_flush(t);
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
