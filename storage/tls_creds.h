/*
 * tls_creds.h - the TLS credentials of the NBD server (docs/security.md): pre-shared keys
 * from a psktool file and an X.509 certificate and key (with an optional CA to verify
 * clients against) from a directory, loaded once at start and read-only afterwards.
 *
 * PSK file: one `identity:hexkey` a line (what psktool writes, as nbdkit and qemu read
 * it); blank lines and lines starting with '#' are skipped. The identity is 1 to
 * TLS_IDENTITY_MAX - 1 bytes without ':' or control characters, the key an even number of
 * hex digits (at least 16 bytes). Certificate directory: server-cert.pem and
 * server-key.pem, and ca-cert.pem when clients are to present certificates (the names
 * qemu and nbdkit use).
 */
#ifndef TOEGW_STORAGE_TLS_CREDS_H
#define TOEGW_STORAGE_TLS_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_IDENTITY_MAX 128     /* identities (PSK user names, certificate CNs) + NUL */

struct tls_creds;

struct tls_creds_config {
    const char *psk_file;        /* NULL or "": no PSK */
    const char *cert_dir;        /* NULL or "": no certificate */
    bool verify_peer;            /* clients must present a certificate signed by ca-cert.pem */
};

/*
 * Load the credentials. 0 with *out (free with tls_creds_free), or -errno with err naming
 * the file (and line) and what is wrong with it. Never puts a key into err.
 */
int tls_creds_load(const struct tls_creds_config *cfg, struct tls_creds **out, char *err,
                   size_t errlen);
/* Wipes the keys and frees. NULL is fine. */
void tls_creds_free(struct tls_creds *cr);

/* What was loaded, for the start-up log line: PSK identities and whether a certificate. */
size_t tls_creds_psk_count(const struct tls_creds *cr);
bool tls_creds_have_cert(const struct tls_creds *cr);
bool tls_creds_verify_peer(const struct tls_creds *cr);

#endif
