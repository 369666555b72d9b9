/*
 * test_tls_files.c - the TLS certificate directory (appliance/tls_files.c): the first
 * start makes a self-signed certificate and key (0600, in a 0700 directory) that load and
 * match, for the host name, localhost, 127.0.0.1 and the names asked for; a later start
 * keeps them, unless toegw made them and they do not name a new address it serves (made
 * again then; a certificate toegw did not make never is); a missing, malformed or foreign
 * file is refused naming the file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/tls_files.h"

static char dir[64];
static char err[512];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/toegw-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    rmdir(dir); /* app_tls_files_ensure makes it */
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tls_files, .init = setup, .fini = teardown);

static mode_t mode_of(const char *path)
{
    struct stat st;

    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_mode & 07777;
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(tls_files, first_start_makes_a_matching_pair)
{
    const char *names[] = { "192.0.2.7", "0.0.0.0", "gw.example.org", NULL };
    struct app_tls_files t;
    char path[256];

    cr_assert_eq(app_tls_files_ensure(dir, names, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(mode_of(dir), 0700);
    snprintf(path, sizeof(path), "%s/%s", dir, APP_TLS_CERT_FILE);
    cr_assert_eq(mode_of(path), 0600);
    snprintf(path, sizeof(path), "%s/%s", dir, APP_TLS_KEY_FILE);
    cr_assert_eq(mode_of(path), 0600);

    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(strlen(t.fingerprint), 95, "%s", t.fingerprint);
    cr_assert_eq(t.fingerprint[2], ':');
    cr_assert(!t.key_open_to_others);
    cr_assert_gt(t.not_after, time(NULL) + 9L * 365 * 86400);

    /* the certificate is for what it should be, and is no CA */
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = { (unsigned char *)t.cert_pem, (unsigned)t.cert_len };
    unsigned ca = 1;
    cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
    cr_assert_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    cr_assert(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    cr_assert(gnutls_x509_crt_check_hostname(crt, "localhost"));
    cr_assert(gnutls_x509_crt_check_hostname(crt, "192.0.2.7"));
    cr_assert(gnutls_x509_crt_check_hostname(crt, "gw.example.org"));
    cr_assert(!gnutls_x509_crt_check_hostname(crt, "198.51.100.1"));
    cr_assert(!gnutls_x509_crt_check_hostname(crt, "0.0.0.0"));
    cr_assert_eq(gnutls_x509_crt_get_basic_constraints(crt, NULL, &ca, NULL), 0);
    cr_assert_eq(ca, 0);
    gnutls_x509_crt_deinit(crt);
    app_tls_files_clear(&t);
}

Test(tls_files, later_starts_keep_the_pair)
{
    struct app_tls_files a, b;

    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(app_tls_files_load(dir, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(app_tls_files_load(dir, &b, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.fingerprint, b.fingerprint);
    app_tls_files_clear(&a);
    app_tls_files_clear(&b);
}

/* The SHA-256 fingerprint of what the directory holds now. */
static void fingerprint_now(char *out, size_t outlen)
{
    struct app_tls_files t;

    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), 0, "%s", err);
    snprintf(out, outlen, "%s", t.fingerprint);
    app_tls_files_clear(&t);
}

Test(tls_files, a_new_address_has_the_certificate_made_again)
{
    const char *first[] = { "127.0.0.1", NULL };
    const char *moved[] = { "192.0.2.10", "gw.example.org", NULL };
    const char *any[] = { "0.0.0.0", "", NULL };
    char a[APP_TLS_FPR_LEN], b[APP_TLS_FPR_LEN], c[APP_TLS_FPR_LEN];

    cr_assert_eq(app_tls_files_ensure(dir, first, err, sizeof(err)), 1, "%s", err);
    fingerprint_now(a, sizeof(a));
    /* names it already has, or none to check: kept */
    cr_assert_eq(app_tls_files_ensure(dir, any, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 0, "%s", err);
    /* the API moved to an address the certificate does not name: made again for it */
    cr_assert_eq(app_tls_files_ensure(dir, moved, err, sizeof(err)), 2, "%s", err);
    fingerprint_now(b, sizeof(b));
    cr_assert_str_neq(a, b);

    struct app_tls_files t;
    gnutls_x509_crt_t crt;
    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), 0, "%s", err);
    gnutls_datum_t d = { (unsigned char *)t.cert_pem, (unsigned)t.cert_len };
    cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
    cr_assert_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    cr_assert(gnutls_x509_crt_check_hostname(crt, "192.0.2.10"));
    cr_assert(gnutls_x509_crt_check_hostname(crt, "gw.example.org"));
    cr_assert(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    gnutls_x509_crt_deinit(crt);
    app_tls_files_clear(&t);
    cr_assert_eq(mode_of(dir), 0700);

    /* and then kept */
    cr_assert_eq(app_tls_files_ensure(dir, moved, err, sizeof(err)), 0, "%s", err);
    fingerprint_now(c, sizeof(c));
    cr_assert_str_eq(b, c);
}

Test(tls_files, a_certificate_toegw_did_not_make_is_never_replaced)
{
    const char *names[] = { "198.51.100.7", NULL };
    char a[APP_TLS_FPR_LEN], b[APP_TLS_FPR_LEN], cmd[512];

    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
             "-subj /O=toegw/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/%s' -out '%s/%s' 2>/dev/null", dir, APP_TLS_KEY_FILE, dir,
             APP_TLS_CERT_FILE);
    if (system(cmd) != 0)
        cr_skip_test("openssl cannot make a certificate here");
    fingerprint_now(a, sizeof(a));
    /* self-signed with O=toegw, but not valid for what toegw makes: the operator's */
    cr_assert_geq(app_tls_files_ensure(dir, names, err, sizeof(err)), 0, "%s", err);
    fingerprint_now(b, sizeof(b));
    cr_assert_str_eq(a, b, "the operator's certificate was replaced");
}

Test(tls_files, half_a_pair_is_refused)
{
    char path[256];

    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 1, "%s", err);
    snprintf(path, sizeof(path), "%s/%s", dir, APP_TLS_KEY_FILE);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), -EEXIST);
    cr_assert_not_null(strstr(err, "no " APP_TLS_KEY_FILE), "%s", err);
}

Test(tls_files, missing_files_are_named)
{
    struct app_tls_files t;

    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), -ENOENT);
    cr_assert_not_null(strstr(err, APP_TLS_CERT_FILE), "%s", err);
}

Test(tls_files, malformed_certificate_is_named)
{
    struct app_tls_files t;

    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 1, "%s", err);
    write_file(APP_TLS_CERT_FILE, "-----BEGIN CERTIFICATE-----\nnot base64\n"
                                  "-----END CERTIFICATE-----\n");
    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, APP_TLS_CERT_FILE), "%s", err);
    cr_assert_not_null(strstr(err, "not a PEM x.509 certificate"), "%s", err);
}

Test(tls_files, malformed_key_is_named)
{
    struct app_tls_files t;

    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 1, "%s", err);
    write_file(APP_TLS_KEY_FILE, "garbage\n");
    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, APP_TLS_KEY_FILE), "%s", err);
}

Test(tls_files, a_foreign_key_is_refused)
{
    char other[80], cmd[512];
    struct app_tls_files t;

    cr_assert_eq(app_tls_files_ensure(dir, NULL, err, sizeof(err)), 1, "%s", err);
    snprintf(other, sizeof(other), "%s.other", dir);
    cr_assert_eq(app_tls_files_ensure(other, NULL, err, sizeof(err)), 1, "%s", err);
    snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/%s' && rm -rf '%s'", other, APP_TLS_KEY_FILE,
             dir, APP_TLS_KEY_FILE, other);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(app_tls_files_load(dir, &t, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "is not the key of the certificate"), "%s", err);
}
