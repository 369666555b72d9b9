/*
 * tls_int.h - what the TLS credentials (tls_creds.c) give the NBD server's TLS sessions
 * (nbd_tls.c). Private to storage/.
 */
#ifndef TOEGW_STORAGE_TLS_INT_H
#define TOEGW_STORAGE_TLS_INT_H

#include <gnutls/gnutls.h>

#include "storage/tls_creds.h"

/* What the credentials' callbacks know of one session (its user pointer). */
struct tls_peer {
    const struct tls_creds *cr;
    char tried[TLS_IDENTITY_MAX];  /* the PSK identity the client offered, printable */
};

/*
 * Give a new server session the credentials, the priorities and, with a CA, the request
 * for a client certificate (required with verify_peer). The session's user pointer
 * (gnutls_session_set_ptr) is set to peer (peer->cr = cr), which must outlive the session:
 * the PSK lookup and the certificate check find the credentials there. 0, or a GnuTLS
 * error code.
 */
int tls_creds_session_setup(const struct tls_creds *cr, gnutls_session_t s,
                            struct tls_peer *peer);

#endif
