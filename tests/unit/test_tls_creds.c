/*
 * test_tls_creds.c - loading the NBD server's TLS credentials (storage/tls_creds.c): the
 * PSK file's lines, the errors that name file and line without quoting a key, and the
 * certificate directory's required files.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/tls_creds.h"

#define KEY_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY_B "fedcba9876543210fedcba9876543210"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/toegw-tls-creds.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Write text to DIR/name; the path into path. */
static void put(const char *name, const char *text, char *path, size_t len)
{
    FILE *f;

    snprintf(path, len, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Load a PSK file of this text: the return value, the error in err. */
static int load_psk(const char *text, char *err, size_t errlen, struct tls_creds **out)
{
    char path[128];
    struct tls_creds_config cfg = { 0 };

    put("keys.psk", text, path, sizeof(path));
    cfg.psk_file = path;
    *out = NULL;
    return tls_creds_load(&cfg, out, err, errlen);
}

TestSuite(tls_creds, .init = setup, .fini = teardown);

Test(tls_creds, psk_file_loads)
{
    struct tls_creds *cr;
    char err[600];

    cr_assert_eq(load_psk("# keys\n\nalice:" KEY_A "\r\nbob:" KEY_B "\n", err, sizeof(err),
                          &cr), 0, "%s", err);
    cr_assert_eq(tls_creds_psk_count(cr), 2);
    cr_assert_not(tls_creds_have_cert(cr));
    tls_creds_free(cr);
    cr_assert_eq(load_psk("carol:" KEY_A, err, sizeof(err), &cr), 0, "no final newline: %s",
                 err);
    tls_creds_free(cr);
}

Test(tls_creds, psk_file_errors_name_the_line_and_never_the_key)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "alice:" KEY_A "\nbob " KEY_B "\n", "line 2: expected identity:hexkey" },
        { ":" KEY_A "\n", "line 1: the identity must be" },
        { "alice:" KEY_A "\nalice:" KEY_B "\n", "line 2: identity \"alice\" is there already" },
        { "alice:" KEY_B "zz\n", "line 1: the key of identity \"alice\" is not hex" },
        { "alice:" KEY_B "0\n", "an even number of hex digits" },
        { "alice:0123\n", "an even number of hex digits" },
        { "# only a comment\n\n", "holds no identity:hexkey line" },
    };
    struct tls_creds *cr;
    char err[600];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_lt(load_psk(cases[i].text, err, sizeof(err), &cr), 0, "%s", cases[i].text);
        cr_assert_null(cr);
        cr_assert_not_null(strstr(err, cases[i].want), "case %zu: %s", i, err);
        cr_assert_not_null(strstr(err, "keys.psk"), "names the file: %s", err);
        cr_assert_null(strstr(err, KEY_A), "a key in: %s", err);
        cr_assert_null(strstr(err, KEY_B), "a key in: %s", err);
    }
}

Test(tls_creds, missing_and_contradicting)
{
    struct tls_creds_config cfg = { 0 };
    struct tls_creds *cr = NULL;
    char err[600], path[128], other[128];

    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "--tls-psk FILE or --tls-certificates DIR"), "%s", err);
    cfg.psk_file = "/nonexistent/keys.psk";
    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "cannot read psk file \"/nonexistent/keys.psk\""), "%s", err);
    put("keys.psk", "alice:" KEY_A "\n", path, sizeof(path));
    cfg.psk_file = path;
    cfg.verify_peer = true;
    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "--tls-verify-peer needs --tls-certificates"), "%s", err);
    cfg.verify_peer = false;
    cfg.cert_dir = dir;
    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "server-cert.pem"), "%s", err);
    cfg.cert_dir = path; /* a file */
    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "is not a directory"), "%s", err);
    put("server-cert.pem", "not a certificate\n", other, sizeof(other));
    put("server-key.pem", "not a key\n", other, sizeof(other));
    cfg.cert_dir = dir;
    cr_assert_lt(tls_creds_load(&cfg, &cr, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "cannot load"), "%s", err);
    cr_assert_null(cr);
}
