/*
 * tls_creds.c - loading the NBD server's TLS credentials (tls_creds.h) and handing them to
 * each new GnuTLS session (tls_int.h). Errors name the file, the line and what is wrong;
 * they never quote a key.
 */
#include "storage/tls_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PSK_KEY_MIN 16           /* bytes: psktool makes 32 */
#define PSK_KEY_MAX 512
#define PSK_LINE_MAX 4096

/*
 * TLS 1.2 and 1.3, AEAD ciphers only, in the server's order: AES-GCM first (the CPU's AES
 * instructions make it several times faster than ChaCha20-Poly1305, which clients such as
 * libnbd may prefer). AES-128-GCM leads: a TLS 1.3 external PSK is bound to SHA-256, which
 * rules out AES-256-GCM-SHA384, and GnuTLS's NORMAL order would then pick ChaCha20.
 */
#define TLS_PRIORITIES "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
                       "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
                       "+AES-128-CCM:+AES-256-CCM"

struct psk_entry {
    char identity[TLS_IDENTITY_MAX];
    uint8_t key[PSK_KEY_MAX];
    size_t keylen;
    unsigned line;
};

struct tls_creds {
    struct psk_entry *psk;
    size_t npsk;
    gnutls_psk_server_credentials_t psk_cred;
    gnutls_certificate_credentials_t cert_cred;
    bool have_ca, verify_peer;
    gnutls_priority_t prio;
};

/* ---------------------------------------------------------------- PSK file */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The identity part of a line: 1.. bytes, no control characters. */
static bool identity_ok(const char *s, size_t n)
{
    if (n == 0 || n >= TLS_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* One `identity:hexkey` line (no newline) into e. 0, or -EINVAL with the reason in err. */
static int psk_parse_line(const char *path, unsigned lineno, const char *line,
                          struct psk_entry *e, char *err, size_t errlen)
{
    const char *colon = strchr(line, ':');
    const char *hex;
    size_t idlen, hexlen;

    if (!colon) {
        snprintf(err, errlen, "psk file \"%s\" line %u: expected identity:hexkey (as psktool "
                 "writes it)", path, lineno);
        return -EINVAL;
    }
    idlen = (size_t)(colon - line);
    if (!identity_ok(line, idlen)) {
        snprintf(err, errlen, "psk file \"%s\" line %u: the identity must be 1 to %d bytes "
                 "without control characters", path, lineno, TLS_IDENTITY_MAX - 1);
        return -EINVAL;
    }
    memcpy(e->identity, line, idlen);
    e->identity[idlen] = '\0';
    hex = colon + 1;
    hexlen = strlen(hex);
    if (hexlen % 2 || hexlen / 2 < PSK_KEY_MIN || hexlen / 2 > PSK_KEY_MAX) {
        snprintf(err, errlen, "psk file \"%s\" line %u: the key of identity \"%s\" must be "
                 "an even number of hex digits, %d to %d bytes", path, lineno, e->identity,
                 PSK_KEY_MIN, PSK_KEY_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < hexlen; i += 2) {
        int hi = hexval((unsigned char)hex[i]), lo = hexval((unsigned char)hex[i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errlen, "psk file \"%s\" line %u: the key of identity \"%s\" is "
                     "not hex", path, lineno, e->identity);
            return -EINVAL;
        }
        e->key[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    e->keylen = hexlen / 2;
    e->line = lineno;
    return 0;
}

static int psk_add(struct tls_creds *cr, const struct psk_entry *e, const char *path,
                   char *err, size_t errlen)
{
    struct psk_entry *n;

    for (size_t i = 0; i < cr->npsk; i++)
        if (!strcmp(cr->psk[i].identity, e->identity)) {
            snprintf(err, errlen, "psk file \"%s\" line %u: identity \"%s\" is there already "
                     "(line %u)", path, e->line, e->identity, cr->psk[i].line);
            return -EINVAL;
        }
    n = realloc(cr->psk, (cr->npsk + 1) * sizeof(*n));
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cr->psk = n;
    cr->psk[cr->npsk++] = *e;
    return 0;
}

static int psk_load(struct tls_creds *cr, const char *path, char *err, size_t errlen)
{
    char line[PSK_LINE_MAX + 2];
    struct psk_entry e;
    unsigned lineno = 0;
    int ret = 0;
    FILE *f = fopen(path, "re");

    if (!f) {
        ret = -errno;
        snprintf(err, errlen, "cannot read psk file \"%s\": %s", path, strerror(-ret));
        return ret;
    }
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        lineno++;
        if (n && line[n - 1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "psk file \"%s\" line %u: longer than %d bytes", path,
                     lineno, PSK_LINE_MAX);
            ret = -EINVAL;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        ret = psk_parse_line(path, lineno, line, &e, err, errlen);
        if (ret == 0)
            ret = psk_add(cr, &e, path, err, errlen);
        if (ret < 0)
            break;
    }
    if (!ret && ferror(f)) {
        ret = -EIO;
        snprintf(err, errlen, "cannot read psk file \"%s\": %s", path, strerror(EIO));
    }
    fclose(f);
    explicit_bzero(line, sizeof(line));
    explicit_bzero(&e, sizeof(e));
    if (!ret && cr->npsk == 0) {
        snprintf(err, errlen, "psk file \"%s\" holds no identity:hexkey line", path);
        ret = -EINVAL;
    }
    return ret;
}

/* GnuTLS asks for the key of `username`: copy it out, or refuse an unknown identity. */
static int psk_lookup(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
    struct tls_peer *peer = gnutls_session_get_ptr(s);
    const struct tls_creds *cr = peer ? peer->cr : NULL;

    if (peer) {
        snprintf(peer->tried, sizeof(peer->tried), "%s", username);
        for (char *p = peer->tried; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }

    for (size_t i = 0; cr && i < cr->npsk; i++) {
        if (strcmp(cr->psk[i].identity, username))
            continue;
        key->data = gnutls_malloc(cr->psk[i].keylen);
        if (!key->data)
            return -1;
        memcpy(key->data, cr->psk[i].key, cr->psk[i].keylen);
        key->size = (unsigned)cr->psk[i].keylen;
        return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------- certificates */

/* DIR/name is a readable file: 0, or -errno with err. */
static int file_readable(const char *dir, const char *name, char *path, size_t pathlen,
                         char *err, size_t errlen)
{
    int fd, ret;

    snprintf(path, pathlen, "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-ret));
        return ret;
    }
    close(fd);
    return 0;
}

/* During the handshake: a client certificate, when one came, must verify against the CA. */
static int cert_verify(gnutls_session_t s)
{
    const struct tls_peer *peer = gnutls_session_get_ptr(s);
    const struct tls_creds *cr = peer ? peer->cr : NULL;
    unsigned int status = 0, n = 0;

    if (!gnutls_certificate_get_peers(s, &n) || n == 0)
        return cr && cr->verify_peer ? GNUTLS_E_CERTIFICATE_ERROR : 0;
    if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
        return GNUTLS_E_CERTIFICATE_ERROR;
    return 0;
}

static int cert_load(struct tls_creds *cr, const char *dir, bool verify, char *err,
                     size_t errlen)
{
    char certp[4200], keyp[4200], cap[4200];
    struct stat st;
    int ret;

    if (stat(dir, &st) < 0) {
        ret = -errno;
        snprintf(err, errlen, "certificate directory \"%s\": %s", dir, strerror(-ret));
        return ret;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "certificate directory \"%s\" is not a directory", dir);
        return -ENOTDIR;
    }
    if ((ret = file_readable(dir, "server-cert.pem", certp, sizeof(certp), err, errlen)) < 0 ||
        (ret = file_readable(dir, "server-key.pem", keyp, sizeof(keyp), err, errlen)) < 0)
        return ret;
    if (gnutls_certificate_allocate_credentials(&cr->cert_cred) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ret = gnutls_certificate_set_x509_key_file(cr->cert_cred, certp, keyp,
                                               GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        snprintf(err, errlen, "cannot load \"%s\" with \"%s\": %s", certp, keyp,
                 gnutls_strerror(ret));
        return -EINVAL;
    }
    snprintf(cap, sizeof(cap), "%s/ca-cert.pem", dir);
    if (access(cap, F_OK) == 0) {
        if ((ret = file_readable(dir, "ca-cert.pem", cap, sizeof(cap), err, errlen)) < 0)
            return ret;
        ret = gnutls_certificate_set_x509_trust_file(cr->cert_cred, cap, GNUTLS_X509_FMT_PEM);
        if (ret <= 0) {
            snprintf(err, errlen, "\"%s\" holds no usable CA certificate%s%s", cap,
                     ret < 0 ? ": " : "", ret < 0 ? gnutls_strerror(ret) : "");
            return -EINVAL;
        }
        cr->have_ca = true;
    } else if (verify) {
        snprintf(err, errlen, "--tls-verify-peer needs the CA that signs the client "
                 "certificates in \"%s\"", cap);
        return -ENOENT;
    }
    gnutls_certificate_set_verify_function(cr->cert_cred, cert_verify);
    return 0;
}

/* ---------------------------------------------------------------- the credentials */

int tls_creds_load(const struct tls_creds_config *cfg, struct tls_creds **out, char *err,
                   size_t errlen)
{
    bool psk = cfg->psk_file && *cfg->psk_file, cert = cfg->cert_dir && *cfg->cert_dir;
    struct tls_creds *cr;
    int ret;

    err[0] = '\0';
    if (!psk && !cert) {
        snprintf(err, errlen, "tls needs --tls-psk FILE or --tls-certificates DIR");
        return -EINVAL;
    }
    if (cfg->verify_peer && !cert) {
        snprintf(err, errlen, "--tls-verify-peer needs --tls-certificates DIR (with "
                 "ca-cert.pem)");
        return -EINVAL;
    }
    cr = calloc(1, sizeof(*cr));
    if (!cr) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cr->verify_peer = cfg->verify_peer;
    if (psk) {
        ret = psk_load(cr, cfg->psk_file, err, errlen);
        if (ret < 0)
            goto fail;
        ret = -ENOMEM;
        if (gnutls_psk_allocate_server_credentials(&cr->psk_cred) < 0)
            goto fail;
        gnutls_psk_set_server_credentials_function(cr->psk_cred, psk_lookup);
        gnutls_psk_set_server_known_dh_params(cr->psk_cred, GNUTLS_SEC_PARAM_MEDIUM);
    }
    if (cert && (ret = cert_load(cr, cfg->cert_dir, cfg->verify_peer, err, errlen)) < 0)
        goto fail;
    ret = gnutls_priority_init2(&cr->prio, psk ? TLS_PRIORITIES ":+ECDHE-PSK:+DHE-PSK:+PSK"
                                               : TLS_PRIORITIES,
                                NULL, 0);
    if (ret < 0) {
        snprintf(err, errlen, "tls priorities: %s", gnutls_strerror(ret));
        ret = -EINVAL;
        goto fail;
    }
    *out = cr;
    return 0;
fail:
    if (ret == -ENOMEM && !*err)
        snprintf(err, errlen, "out of memory");
    tls_creds_free(cr);
    return ret;
}

void tls_creds_free(struct tls_creds *cr)
{
    if (!cr)
        return;
    if (cr->psk) {
        explicit_bzero(cr->psk, cr->npsk * sizeof(*cr->psk));
        free(cr->psk);
    }
    if (cr->psk_cred)
        gnutls_psk_free_server_credentials(cr->psk_cred);
    if (cr->cert_cred)
        gnutls_certificate_free_credentials(cr->cert_cred);
    if (cr->prio)
        gnutls_priority_deinit(cr->prio);
    free(cr);
}

size_t tls_creds_psk_count(const struct tls_creds *cr) { return cr->npsk; }
bool tls_creds_have_cert(const struct tls_creds *cr) { return cr->cert_cred != NULL; }
bool tls_creds_verify_peer(const struct tls_creds *cr) { return cr->verify_peer; }

int tls_creds_session_setup(const struct tls_creds *cr, gnutls_session_t s,
                            struct tls_peer *peer)
{
    int ret;

    peer->cr = cr;
    gnutls_session_set_ptr(s, peer);
    if ((ret = gnutls_priority_set(s, cr->prio)) < 0)
        return ret;
    if (cr->psk_cred && (ret = gnutls_credentials_set(s, GNUTLS_CRD_PSK, cr->psk_cred)) < 0)
        return ret;
    if (cr->cert_cred) {
        ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cr->cert_cred);
        if (ret < 0)
            return ret;
        if (cr->have_ca)
            gnutls_certificate_server_set_request(s, cr->verify_peer ? GNUTLS_CERT_REQUIRE
                                                                     : GNUTLS_CERT_REQUEST);
    }
    return 0;
}
