/*
 * nbd_tls.h - one TLS session of the NBD server over a non-blocking socket (GnuTLS), for
 * the storage loop: every call returns at once, -EAGAIN when the socket has to become
 * readable or writable first (nbds_tls_wants_write says which). Used by the NBD server's
 * sources only.
 *
 * Reading: records GnuTLS has already taken off the socket are read before the socket
 * is waited for (nbds_tls_pending). Writing: what nbds_tls_writev accepted is GnuTLS's
 * (copied); while nbds_tls_send_pending, part of it still waits for the socket.
 */
#ifndef TOEGW_STORAGE_NBD_TLS_H
#define TOEGW_STORAGE_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "storage/tls_creds.h"

struct nbds_tls;

/* A server session on fd (borrowed: the caller closes it). NULL with err. */
struct nbds_tls *nbds_tls_new(const struct tls_creds *cr, int fd, char *err, size_t errlen);
/* Sends nothing: a hung-up or refused peer gets no close_notify. NULL is fine. */
void nbds_tls_free(struct nbds_tls *t);

/*
 * Go on with the handshake: 0 once it is done, -EAGAIN (wait for the socket: readable or,
 * when nbds_tls_wants_write, writable), or -EPROTO / -EACCES (refused credentials) with the
 * reason in err.
 */
int nbds_tls_handshake(struct nbds_tls *t, char *err, size_t errlen);
bool nbds_tls_wants_write(const struct nbds_tls *t);

/* Decrypted bytes into buf: > 0, 0 at the peer's close, -EAGAIN, or -EPROTO/-EIO. */
ssize_t nbds_tls_read(struct nbds_tls *t, void *buf, size_t len);
/* Bytes GnuTLS holds already decrypted, readable without waiting for the socket. */
size_t nbds_tls_pending(struct nbds_tls *t);
/*
 * Encrypt iov (a bounded batch of it) and send what the socket takes: the bytes accepted
 * (> 0), -EAGAIN when nothing could be accepted (records of an earlier call still wait for
 * the socket), or -EIO.
 */
ssize_t nbds_tls_writev(struct nbds_tls *t, const struct iovec *iov, int iovcnt);
/*
 * Send what nbds_tls_writev accepted and the socket did not take yet, as far as the socket
 * takes it now: 0, or -EIO.
 */
int nbds_tls_flush(struct nbds_tls *t);
/* Records accepted but not yet on the socket (the socket must be watched for writing). */
bool nbds_tls_send_pending(const struct nbds_tls *t);
/* A close_notify, if the socket takes it now (never waits). */
void nbds_tls_bye(struct nbds_tls *t);

/* After the handshake: who the client is (PSK identity or certificate CN; "" if none). */
const char *nbds_tls_identity(const struct nbds_tls *t);
/* The PSK identity the client offered, also when the handshake failed ("" if none). */
const char *nbds_tls_tried(const struct nbds_tls *t);
/* "psk" or "x509". */
const char *nbds_tls_auth(const struct nbds_tls *t);
/* "kernel tls (send+receive)", "kernel tls (send)", ... or "userspace" (GnuTLS itself). */
const char *nbds_tls_path(const struct nbds_tls *t);
/* "TLS1.3 AES-256-GCM" */
void nbds_tls_describe(const struct nbds_tls *t, char *out, size_t outlen);

#endif
