/*
 * tls_files.h - a TLS certificate directory of the appliance: server-cert.pem and
 * server-key.pem (PEM), checked when loaded, or made self-signed at the first start.
 *
 * The servers that speak TLS (the REST API, the NBD export) share one directory: by
 * default STATE_DIR/tls/, made by the first start that needs it and reused afterwards;
 * --tls-certificates DIR names one the operator provides (never written to).
 */
#ifndef TOEGW_APPLIANCE_TLS_FILES_H
#define TOEGW_APPLIANCE_TLS_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define APP_TLS_CERT_FILE "server-cert.pem"
#define APP_TLS_KEY_FILE "server-key.pem"
#define APP_TLS_DIR "tls"                 /* the default directory, under the state dir */
#define APP_TLS_FPR_LEN 96                /* "AB:CD:...": 32 bytes as hex pairs, and NUL */
#define APP_TLS_PATH_MAX 4200

struct app_tls_files {
    char cert_path[APP_TLS_PATH_MAX];
    char key_path[APP_TLS_PATH_MAX];
    char *cert_pem;                       /* owned, NUL-terminated (the chain as read) */
    size_t cert_len;
    char *key_pem;                        /* owned, NUL-terminated; wiped when cleared */
    size_t key_len;
    char fingerprint[APP_TLS_FPR_LEN];    /* SHA-256 of the (first) certificate's DER */
    time_t not_after;                     /* when the certificate expires */
    bool key_open_to_others;              /* the key file is readable by group or others */
};

/*
 * Make `dir` a certificate directory when it holds neither file: the directory (mode 0700)
 * with a new key (ECDSA P-256) and a self-signed certificate for it, valid 10 years, not a
 * CA, for TLS servers: subject CN = this host's name; subject alternative names: the host
 * name, localhost, 127.0.0.1, ::1 and each of `names` (host names or IP addresses,
 * NULL-terminated; NULL, empty and unspecified addresses are skipped). Both files are
 * written atomically with mode 0600 (the key first). When both are there and the
 * certificate is one this made (self-signed, O=toegw) that does not name each of `names`
 * (the addresses served have changed since), it makes them again. A certificate anyone else
 * made is left as it is. Returns 1 when it made them, 2 when it made them again, 0 when
 * both were there to keep, or -errno with the reason in err (-EEXIST: one file is there
 * without the other).
 */
int app_tls_files_ensure(const char *dir, const char *const *names, char *err,
                         size_t errlen);

/*
 * Read and check the certificate and key of `dir`: each readable, the certificate a PEM
 * X.509 certificate (a chain may follow it), the key an unencrypted PEM private key of
 * that certificate. 0 with *out filled (free with app_tls_files_clear), or -errno
 * (-EINVAL: malformed or not matching) with the reason in err, naming the file.
 */
int app_tls_files_load(const char *dir, struct app_tls_files *out, char *err, size_t errlen);

/* Free what app_tls_files_load filled (the key wiped); *t is then empty. */
void app_tls_files_clear(struct app_tls_files *t);

#endif
