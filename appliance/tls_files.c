/*
 * tls_files.c - the TLS certificate directory (tls_files.h) on GnuTLS: the self-signed
 * certificate made at the first start, and the checks of what a directory holds.
 */
#include "appliance/tls_files.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/state.h"

#define TLS_FILE_MAX (1024 * 1024)            /* a certificate chain or a key, as PEM */
#define TLS_VALID_DAYS 3650
#define TLS_CN_MAX 64                         /* X.520 upper bound of a common name */
#define TLS_SAN_MAX 16

/* ---------------------------------------------------------------- reading */

/* The whole file, NUL-terminated (caller frees). 0 or -errno (-EFBIG past TLS_FILE_MAX). */
static int read_small(const char *path, char **out, size_t *len)
{
    struct stat st;
    char *buf;
    size_t off = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
        int ret = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EISDIR : -EFBIG;
        close(fd);
        return ret;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    buf[off] = '\0';
    *out = buf;
    *len = off;
    return 0;
}

static void fingerprint_hex(const unsigned char *d, size_t n, char *out, size_t outlen)
{
    size_t j = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && j + 3 < outlen; i++)
        j += (size_t)snprintf(out + j, outlen - j, "%s%02X", i ? ":" : "", d[i]);
}

/* The certificate: parses, its fingerprint and expiry into t. 0 or -EINVAL with err. */
static int check_cert(struct app_tls_files *t, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    gnutls_datum_t d = { (unsigned char *)t->cert_pem, (unsigned)t->cert_len };
    unsigned char fpr[32];
    size_t fsz = sizeof(fpr);
    int ret = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);

    if (ret < 0) {
        snprintf(err, errlen, "tls certificate \"%s\" is not a PEM x.509 certificate: %s",
                 t->cert_path, gnutls_strerror(ret));
        return -EINVAL;
    }
    ret = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fpr, &fsz);
    if (ret < 0) {
        snprintf(err, errlen, "tls certificate \"%s\": cannot take its fingerprint: %s",
                 t->cert_path, gnutls_strerror(ret));
        return -EINVAL;
    }
    fingerprint_hex(fpr, fsz, t->fingerprint, sizeof(t->fingerprint));
    t->not_after = gnutls_x509_crt_get_expiration_time(crt);
    return 0;
}

/* The key: parses unencrypted, and is the certificate's. 0 or -EINVAL with err. */
static int check_key(struct app_tls_files *t, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    gnutls_datum_t d = { (unsigned char *)t->key_pem, (unsigned)t->key_len };
    gnutls_x509_privkey_t key;
    unsigned char kid[64], cid[64];
    size_t ksz = sizeof(kid), csz = sizeof(cid);
    int ret;

    if (gnutls_x509_privkey_init(&key) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ret = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL,
                                      GNUTLS_PKCS_PLAIN);
    if (ret < 0) {
        snprintf(err, errlen, "tls key \"%s\" is not an unencrypted PEM private key: %s",
                 t->key_path, gnutls_strerror(ret));
        gnutls_x509_privkey_deinit(key);
        return -EINVAL;
    }
    if (gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &ksz) < 0 ||
        gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, cid, &csz) < 0 ||
        ksz != csz || memcmp(kid, cid, ksz) != 0) {
        snprintf(err, errlen, "tls key \"%s\" is not the key of the certificate \"%s\"",
                 t->key_path, t->cert_path);
        gnutls_x509_privkey_deinit(key);
        return -EINVAL;
    }
    gnutls_x509_privkey_deinit(key);
    return 0;
}

int app_tls_files_load(const char *dir, struct app_tls_files *out, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt;
    struct stat st;
    int ret;

    memset(out, 0, sizeof(*out));
    snprintf(out->cert_path, sizeof(out->cert_path), "%s/%s", dir, APP_TLS_CERT_FILE);
    snprintf(out->key_path, sizeof(out->key_path), "%s/%s", dir, APP_TLS_KEY_FILE);
    ret = read_small(out->cert_path, &out->cert_pem, &out->cert_len);
    if (ret < 0) {
        snprintf(err, errlen, "cannot read the tls certificate \"%s\": %s", out->cert_path,
                 strerror(-ret));
        return ret;
    }
    ret = read_small(out->key_path, &out->key_pem, &out->key_len);
    if (ret < 0) {
        snprintf(err, errlen, "cannot read the tls key \"%s\": %s", out->key_path,
                 strerror(-ret));
        app_tls_files_clear(out);
        return ret;
    }
    if (stat(out->key_path, &st) == 0)
        out->key_open_to_others = (st.st_mode & 077) != 0;
    if (gnutls_x509_crt_init(&crt) < 0) {
        snprintf(err, errlen, "out of memory");
        app_tls_files_clear(out);
        return -ENOMEM;
    }
    ret = check_cert(out, crt, err, errlen);
    if (ret == 0)
        ret = check_key(out, crt, err, errlen);
    gnutls_x509_crt_deinit(crt);
    if (ret < 0)
        app_tls_files_clear(out);
    return ret;
}

void app_tls_files_clear(struct app_tls_files *t)
{
    if (t->key_pem) {
        explicit_bzero(t->key_pem, t->key_len);
        free(t->key_pem);
    }
    free(t->cert_pem);
    memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------- the self-signed one */

/*
 * What a name is: an IP address (its length, 4 or 16, with its bytes in ip), a host name
 * (0), or an unspecified address such as 0.0.0.0, which names no host (-1).
 */
static int name_ip(const char *name, unsigned char ip[16])
{
    static const unsigned char any[16];
    int len = inet_pton(AF_INET, name, ip) == 1 ? 4 : inet_pton(AF_INET6, name, ip) == 1 ? 16
                                                                                      : 0;

    return len && !memcmp(ip, any, (size_t)len) ? -1 : len;
}

/* One subject alternative name: an IP address, else a DNS name. */
static int add_san(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char ip[16];
    int len = name_ip(name, ip);

    if (len < 0)
        return 0;
    if (len)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip,
                                                    (unsigned)len, GNUTLS_FSAN_APPEND);
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
}

/* The names the certificate is for: the host name first, each once. */
static size_t san_list(const char *host, const char *const *names, const char **out)
{
    const char *fixed[] = { host, "localhost", "127.0.0.1", "::1" };
    size_t n = 0;

    for (size_t i = 0; i < 4 + TLS_SAN_MAX && n < TLS_SAN_MAX; i++) {
        const char *s = i < 4 ? fixed[i] : names ? names[i - 4] : NULL;
        bool dup = false;

        if (i >= 4 && !s)
            break;
        if (!s || !*s)
            continue;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcasecmp(out[j], s) == 0;
        if (!dup)
            out[n++] = s;
    }
    return n;
}

/* Fill a new certificate for key: subject, validity, extensions, self-signed. */
static int make_cert(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                     const char *const *names)
{
    char host[TLS_CN_MAX + 1] = "";
    const char *sans[TLS_SAN_MAX];
    unsigned char serial[16], kid[64];
    size_t ksz = sizeof(kid), nsans;
    time_t now = time(NULL);
    int ret;

    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "toegw");
    host[TLS_CN_MAX] = '\0';
    ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    /* (self_made recognises these validity times) */
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
    if (ret >= 0)
        ret = gnutls_x509_crt_set_version(crt, 3);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (ret >= 0)
        ret = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)TLS_VALID_DAYS * 86400);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                            "toegw", 5);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, host,
                                            (unsigned)strlen(host));
    nsans = san_list(host, names, sans);
    for (size_t i = 0; i < nsans && ret >= 0; i++)
        ret = add_san(crt, sans[i]);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_key(crt, key);
    if (ret >= 0)
        ret = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, kid, &ksz);
    if (ret >= 0)
        ret = gnutls_x509_crt_set_subject_key_id(crt, kid, ksz);
    if (ret >= 0)
        ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    return ret;
}

/* A new key and certificate as PEM (caller frees both with gnutls_free). */
static int generate(const char *const *names, gnutls_datum_t *cert, gnutls_datum_t *keyd,
                    char *err, size_t errlen)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    const char *what = "generate a key";
    int ret = gnutls_x509_privkey_init(&key);

    if (ret >= 0)
        ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    if (ret >= 0) {
        what = "make a certificate";
        ret = gnutls_x509_crt_init(&crt);
    }
    if (ret >= 0)
        ret = make_cert(crt, key, names);
    if (ret >= 0)
        ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, cert);
    if (ret >= 0) {
        ret = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                                GNUTLS_PKCS_PLAIN, keyd);
        if (ret < 0)
            gnutls_free(cert->data);
    }
    if (ret < 0)
        snprintf(err, errlen, "cannot %s for tls: %s", what, gnutls_strerror(ret));
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ret < 0 ? -EIO : 0;
}

/* ---------------------------------------------------------------- one made for other names */

/* Whether crt names `name` (an IP address, else a host name); unspecified addresses pass. */
static bool names_host(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char ip[16];
    int len = name_ip(name, ip);

    if (len < 0)
        return true;
    if (len)
        return gnutls_x509_crt_check_ip(crt, ip, (unsigned)len, 0);
    return gnutls_x509_crt_check_hostname2(crt, name, 0);
}

/*
 * Whether crt is one make_cert made: self-signed, organization "toegw", valid for exactly
 * the hour before it was made and TLS_VALID_DAYS after.
 */
static bool self_made(gnutls_x509_crt_t crt)
{
    time_t from = gnutls_x509_crt_get_activation_time(crt);
    time_t until = gnutls_x509_crt_get_expiration_time(crt);
    char org[16];
    size_t osz = sizeof(org);

    return from != (time_t)-1 && until != (time_t)-1 &&
           until - from == (time_t)TLS_VALID_DAYS * 86400 + 3600 &&
           gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, 0, org,
                                         &osz) >= 0 &&
           strcmp(org, "toegw") == 0 && gnutls_x509_crt_check_issuer(crt, crt) == 1;
}

/*
 * Whether the certificate at cert_path is one this file made that does not name each of
 * `names`: the addresses it serves have changed since, and it is made again. A certificate
 * the operator put there is never replaced.
 */
static bool self_made_for_other_names(const char *cert_path, const char *const *names)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d;
    char *pem;
    size_t len;
    bool other = false;

    if (!names || !names[0] || read_small(cert_path, &pem, &len) < 0)
        return false;
    d = (gnutls_datum_t){ (unsigned char *)pem, (unsigned)len };
    if (gnutls_x509_crt_init(&crt) >= 0) {
        if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0 && self_made(crt))
            for (size_t i = 0; names[i] && !other; i++)
                other = names[i][0] && !names_host(crt, names[i]);
        gnutls_x509_crt_deinit(crt);
    }
    free(pem);
    return other;
}

int app_tls_files_ensure(const char *dir, const char *const *names, char *err,
                         size_t errlen)
{
    char cert_path[APP_TLS_PATH_MAX], key_path[APP_TLS_PATH_MAX];
    gnutls_datum_t cert, key;
    bool have_cert, have_key, again = false;
    int ret;

    snprintf(cert_path, sizeof(cert_path), "%s/%s", dir, APP_TLS_CERT_FILE);
    snprintf(key_path, sizeof(key_path), "%s/%s", dir, APP_TLS_KEY_FILE);
    have_cert = access(cert_path, F_OK) == 0;
    have_key = access(key_path, F_OK) == 0;
    if (have_cert && have_key) {
        if (!self_made_for_other_names(cert_path, names))
            return 0;
        again = true;
    } else if (have_cert || have_key) {
        snprintf(err, errlen, "tls directory \"%s\" has %s but no %s: restore it, or remove "
                 "%s to have a new certificate made", dir, have_cert ? APP_TLS_CERT_FILE
                 : APP_TLS_KEY_FILE, have_cert ? APP_TLS_KEY_FILE : APP_TLS_CERT_FILE,
                 have_cert ? APP_TLS_CERT_FILE : APP_TLS_KEY_FILE);
        return -EEXIST;
    }
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chmod(dir, 0700) < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot create the tls directory \"%s\": %s", dir,
                 strerror(-ret));
        return ret;
    }
    ret = generate(names, &cert, &key, err, errlen);
    if (ret < 0)
        return ret;
    /* the key first: a certificate is never there without its key */
    ret = app_file_write_atomic(key_path, (const char *)key.data, key.size, err, errlen);
    if (ret == 0)
        ret = app_file_write_atomic(cert_path, (const char *)cert.data, cert.size, err,
                                    errlen);
    explicit_bzero(key.data, key.size);
    gnutls_free(key.data);
    gnutls_free(cert.data);
    return ret < 0 ? ret : again ? 2 : 1;
}
