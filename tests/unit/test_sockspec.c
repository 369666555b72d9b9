/*
 * test_sockspec.c - the "host:port" / "unix:/path" address specs: what parses, what does not,
 * and the listener's handling of a path that is taken (a stale socket is replaced, any other
 * file is refused and left alone), then a connect to what it listens on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sockspec.h"

static struct sockspec sp;
static char err[256], bound[160], dir[64];

static void setup(void)
{
    memset(err, 0, sizeof(err));
    memset(bound, 0, sizeof(bound));
    snprintf(dir, sizeof(dir), "/tmp/toegw-sockspec.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(sockspec, .init = setup, .fini = teardown);

static void expect_bad(const char *s, uint16_t def_port, int want)
{
    int ret = sockspec_parse(s, def_port, &sp);

    cr_assert_eq(ret, want, "\"%s\" gave %d, not %d", s ? s : "(null)", ret, want);
}

/* ---------------------------------------------------------------- parsing */

Test(sockspec, tcp_forms)
{
    cr_assert_eq(sockspec_parse("127.0.0.1:8080", 0, &sp), 0);
    cr_assert(!sp.is_unix);
    cr_assert_str_eq(sp.host, "127.0.0.1");
    cr_assert_eq(sp.port, 8080);
    cr_assert_eq(sockspec_parse("localhost:65535", 0, &sp), 0);
    cr_assert_str_eq(sp.host, "localhost");
    cr_assert_eq(sp.port, 65535);
    cr_assert_eq(sockspec_parse("*:10809", 0, &sp), 0);
    cr_assert_str_eq(sp.host, "*");
    /* the default port, when the caller has one */
    cr_assert_eq(sockspec_parse("192.0.2.1", 10809, &sp), 0);
    cr_assert_eq(sp.port, 10809);
}

Test(sockspec, unix_forms)
{
    char longest[5 + SOCKSPEC_PATH_MAX];

    cr_assert_eq(sockspec_parse("unix:/run/toegw/api.sock", 0, &sp), 0);
    cr_assert(sp.is_unix);
    cr_assert_str_eq(sp.path, "/run/toegw/api.sock");
    cr_assert(sockspec_is_unix("unix:x"));
    cr_assert(!sockspec_is_unix("unixy:1"));
    cr_assert(!sockspec_is_unix(NULL));
    memcpy(longest, "unix:", 5);
    memset(longest + 5, 'a', SOCKSPEC_PATH_MAX - 1);
    longest[5 + SOCKSPEC_PATH_MAX - 1] = '\0';
    cr_assert_eq(sockspec_parse(longest, 0, &sp), 0, "a path of sun_path's size - 1 fits");
}

Test(sockspec, rejected)
{
    char toolong[5 + SOCKSPEC_PATH_MAX + 1];

    expect_bad(NULL, 0, -EINVAL);
    expect_bad("", 0, -EINVAL);
    expect_bad("nonsense", 0, -EINVAL);            /* no port, none by default */
    expect_bad(":8080", 0, -EINVAL);               /* no host */
    expect_bad("127.0.0.1:", 0, -EINVAL);
    expect_bad("127.0.0.1:0", 0, -EINVAL);
    expect_bad("127.0.0.1:65536", 0, -EINVAL);
    expect_bad("127.0.0.1:99999", 10809, -EINVAL);
    expect_bad("127.0.0.1:+80", 0, -EINVAL);
    expect_bad("127.0.0.1: 80", 0, -EINVAL);
    expect_bad("127.0.0.1:80x", 0, -EINVAL);
    expect_bad("[::1]:80", 0, -EAFNOSUPPORT);
    expect_bad("unix:", 0, -EINVAL);
    memcpy(toolong, "unix:", 5);
    memset(toolong + 5, 'a', SOCKSPEC_PATH_MAX);
    toolong[sizeof(toolong) - 1] = '\0';
    expect_bad(toolong, 0, -EINVAL);
}

Test(sockspec, resolve)
{
    struct sockaddr_in sa;

    cr_assert_eq(sockspec_parse("127.0.0.1:3260", 0, &sp), 0);
    cr_assert_eq(sockspec_resolve(&sp, &sa, NULL), 0);
    cr_assert_eq(sa.sin_family, AF_INET);
    cr_assert_eq(ntohs(sa.sin_port), 3260);
    cr_assert_eq(ntohl(sa.sin_addr.s_addr), 0x7f000001u);
    cr_assert_eq(sockspec_parse("*:1", 0, &sp), 0);
    cr_assert_eq(sockspec_resolve(&sp, &sa, NULL), 0);
    cr_assert_eq(sa.sin_addr.s_addr, htonl(INADDR_ANY));
}

/* ---------------------------------------------------------------- listening, connecting */

static const struct sockspec_listen_opts opts = {
    .what = "test", .backlog = 8, .unix_mode = 0660,
};

Test(sockspec, listen_tcp_reports_the_real_port)
{
    int fd = sockspec_listen("127.0.0.1:65535", &opts, bound, sizeof(bound), err,
                             sizeof(err));

    if (fd == -EADDRINUSE)
        cr_skip_test("port 65535 is taken here");
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert_str_eq(bound, "127.0.0.1:65535");
    int c = sockspec_connect(bound, 0, "listener", 5, err, sizeof(err));
    cr_assert_geq(c, 0, "%s", err);
    close(c);
    close(fd);
}

Test(sockspec, listen_unix_replaces_a_stale_socket)
{
    char spec[128];
    struct stat st;
    int fd, fd2, c;

    snprintf(spec, sizeof(spec), "unix:%s/s", dir);
    fd = sockspec_listen(spec, &opts, bound, sizeof(bound), err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert_str_eq(bound, spec);
    cr_assert_eq(stat(spec + 5, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660);
    close(fd);                                       /* the file stays: a stale socket */
    fd2 = sockspec_listen(spec, &opts, NULL, 0, err, sizeof(err));
    cr_assert_geq(fd2, 0, "a stale socket is replaced: %s", err);
    c = sockspec_connect(spec, 0, "listener", 5, err, sizeof(err));
    cr_assert_geq(c, 0, "%s", err);
    close(c);
    close(fd2);
}

Test(sockspec, listen_unix_refuses_another_file)
{
    char spec[128];
    struct stat st;
    FILE *f;

    snprintf(spec, sizeof(spec), "unix:%s/data", dir);
    f = fopen(spec + 5, "w");
    cr_assert_not_null(f);
    fputs("keep me\n", f);
    fclose(f);
    cr_assert_eq(sockspec_listen(spec, &opts, NULL, 0, err, sizeof(err)), -EEXIST);
    cr_assert_not_null(strstr(err, "exists and is not a socket"), "%s", err);
    cr_assert_not_null(strstr(err, "test address"), "%s", err);
    cr_assert_eq(stat(spec + 5, &st), 0, "the file is left alone");
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_size, 8);
}

Test(sockspec, listen_messages)
{
    cr_assert_eq(sockspec_listen("nonsense", &opts, NULL, 0, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "test address \"nonsense\": expected host:port or unix:/path");
    cr_assert_eq(sockspec_listen("unix:", &opts, NULL, 0, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "test address \"unix:\": path empty or too long");
    cr_assert_eq(sockspec_listen("198.51.100.1:1", &opts, NULL, 0, err, sizeof(err)),
                 -EADDRNOTAVAIL, "%s", err);
    cr_assert_not_null(strstr(err, "cannot listen on \"198.51.100.1:1\""), "%s", err);
}

Test(sockspec, connect_failure_names_the_peer)
{
    char spec[128];

    snprintf(spec, sizeof(spec), "unix:%s/nobody", dir);
    cr_assert_eq(sockspec_connect(spec, 0, "appliance's api", 1, err, sizeof(err)), -ENOENT);
    cr_assert_not_null(strstr(err, "cannot reach the appliance's api at "), "%s", err);
    cr_assert_eq(sockspec_connect("x:y", 8080, "api", 1, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "api address \"x:y\": expected host:port or unix:/path");
}
