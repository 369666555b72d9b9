/*
 * test_bproto.c - the broker socket's wire format (common/bproto.c): every field survives
 * encode and decode; each kind of malformed message is refused with its reason, never
 * read past its end; requests are checked for what their type needs. The name a TOE
 * descriptor carries, both ways. And TOEGW_OFFLOAD, the preload shim's destination list
 * (client/match.c).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "client/preload_int.h"
#include "common/bproto.h"

static int encode_connect(uint8_t *buf, size_t cap)
{
    struct bp_msg m = { .type = BP_CONNECT, .seq = 77, .port = 3260, .stack = 1,
                        .reservation = 5 };

    inet_pton(AF_INET, "192.0.2.1", &m.addr);
    bp_set(&m, BP_T_ADDR);
    bp_set(&m, BP_T_PORT);
    bp_set(&m, BP_T_STACK);
    bp_set(&m, BP_T_RESERVATION);
    bp_set_str(&m, BP_T_HOLDER, "perfjob");
    return bp_encode(&m, buf, cap);
}

Test(bproto, connect_round_trip)
{
    uint8_t buf[BP_MSG_MAX];
    struct bp_msg m;
    const char *why = "";
    int n = encode_connect(buf, sizeof(buf));

    cr_assert_gt(n, BP_HDR_LEN);
    cr_assert_eq(bp_decode(buf, (size_t)n, &m, &why), 0, "%s", why);
    cr_assert_eq(m.type, BP_CONNECT);
    cr_assert_eq(m.seq, 77);
    cr_assert_eq(m.port, 3260);
    cr_assert_eq(m.stack, 1);
    cr_assert_eq(m.reservation, 5);
    cr_assert_str_eq(m.holder, "perfjob");
    cr_assert_eq(ntohl(m.addr.s_addr), 0xc0000201u);
    cr_assert_eq(bp_check_request(&m, &why), 0, "%s", why);
}

Test(bproto, reply_round_trip)
{
    struct bp_msg m = { .type = BP_CONNECTED, .seq = 1, .conn_id = 1ull << 40,
                        .local_port = 20001, .on_stack = 1, .code = 0 }, r;
    uint8_t buf[BP_MSG_MAX];
    const char *why;
    int n;

    bp_set(&m, BP_T_CONN_ID);
    bp_set(&m, BP_T_LOCAL_PORT);
    bp_set(&m, BP_T_ON_STACK);
    bp_set_str(&m, BP_T_PLACEMENT, "offloaded");
    n = bp_encode(&m, buf, sizeof(buf));
    cr_assert_eq(bp_decode(buf, (size_t)n, &r, &why), 0);
    cr_assert_eq(r.conn_id, 1ull << 40);
    cr_assert_eq(r.local_port, 20001);
    cr_assert_str_eq(r.placement, "offloaded");
    cr_assert(BP_HAS(&r, BP_T_ON_STACK) && !BP_HAS(&r, BP_T_CODE));
}

Test(bproto, encode_refuses_a_small_buffer)
{
    uint8_t buf[16];

    cr_assert_eq(encode_connect(buf, sizeof(buf)), -EMSGSIZE);
}

/* Decode a copy of buf[0..len) in a buffer of exactly that size (ASan sees any overread). */
static int decode_exact(const uint8_t *buf, size_t len, struct bp_msg *m, const char **why)
{
    uint8_t *copy = malloc(len ? len : 1);
    int ret;

    memcpy(copy, buf, len);
    ret = bp_decode(copy, len, m, why);
    free(copy);
    return ret;
}

Test(bproto, every_truncation_is_refused)
{
    uint8_t buf[BP_MSG_MAX];
    struct bp_msg m;
    const char *why;
    int n = encode_connect(buf, sizeof(buf));

    for (int len = 0; len < n; len++)
        cr_assert_eq(decode_exact(buf, (size_t)len, &m, &why), -EPROTO, "length %d", len);
}

Test(bproto, malformed_messages_say_why)
{
    uint8_t good[BP_MSG_MAX], buf[BP_MSG_MAX];
    struct bp_msg m;
    const char *why;
    int n = encode_connect(good, sizeof(good));
    static const struct {
        size_t off;
        uint8_t val;
        int ret;
        const char *why;
    } cases[] = {
        { 0, 0x00, -EPROTO, "magic" },
        { 2, 2, -EPROTONOSUPPORT, "version" },
        { 7, 0xff, -EPROTO, "body length" },
        { 8, 0x40, -EPROTO, "unknown field" },   /* the first field's tag */
        { 9, 3, -EPROTO, "wrong length" },       /* the address is 4 bytes */
        { 8, 0, -EPROTO, "unknown field" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(buf, good, (size_t)n);
        buf[cases[i].off] = cases[i].val;
        why = "";
        cr_assert_eq(decode_exact(buf, (size_t)n, &m, &why), cases[i].ret, "case %zu", i);
        cr_assert(strstr(why, cases[i].why), "case %zu: \"%s\"", i, why);
    }
    /* a field twice */
    memcpy(buf, good, (size_t)n);
    memcpy(buf + n, good + 8, 6);
    buf[7] = (uint8_t)(n - 8 + 6);
    cr_assert_eq(decode_exact(buf, (size_t)n + 6, &m, &why), -EPROTO);
    cr_assert(strstr(why, "twice"), "%s", why);
    /* too long for a message */
    cr_assert_eq(bp_decode(buf, BP_MSG_MAX + 1, &m, &why), -EPROTO);
}

Test(bproto, strings_must_be_printable)
{
    uint8_t buf[BP_MSG_MAX];
    struct bp_msg m;
    const char *why;
    int n = encode_connect(buf, sizeof(buf));
    uint8_t *h = memmem(buf, (size_t)n, "perfjob", 7);

    cr_assert_not_null(h);
    h[3] = '\n';
    cr_assert_eq(decode_exact(buf, (size_t)n, &m, &why), -EPROTO);
    cr_assert(strstr(why, "printable"), "%s", why);
}

Test(bproto, optional_tags_are_skipped)
{
    uint8_t buf[BP_MSG_MAX];
    struct bp_msg m;
    const char *why;
    int n = encode_connect(buf, sizeof(buf));

    memcpy(buf + n, "\x90\x03xyz", 5);
    buf[7] = (uint8_t)(n - 8 + 5);
    cr_assert_eq(decode_exact(buf, (size_t)n + 5, &m, &why), 0, "%s", why);
    cr_assert_eq(m.port, 3260);
}

Test(bproto, requests_need_their_fields)
{
    struct bp_msg m = { .type = BP_CONNECT };
    const char *why;

    cr_assert_eq(bp_check_request(&m, &why), -EINVAL);
    bp_set(&m, BP_T_ADDR);
    bp_set(&m, BP_T_PORT);
    cr_assert_eq(bp_check_request(&m, &why), -EINVAL, "port 0");
    m.port = 3260;
    cr_assert_eq(bp_check_request(&m, &why), 0);
    m.stack = 3;
    bp_set(&m, BP_T_STACK);
    cr_assert_eq(bp_check_request(&m, &why), -EINVAL);
    m.stack = 2;
    bp_set_str(&m, BP_T_HOLDER, "x");
    cr_assert_eq(bp_check_request(&m, &why), -EINVAL, "holder without reservation");
    bp_set(&m, BP_T_RESERVATION);
    cr_assert_eq(bp_check_request(&m, &why), -EINVAL, "reservation 0");
    m.reservation = 1;
    cr_assert_eq(bp_check_request(&m, &why), 0);
    memset(m.holder, 'h', 100);
    m.holder[100] = '\0';
    cr_assert_eq(bp_check_request(&m, &why), -EINVAL, "holder too long");

    struct bp_msg r = { .type = BP_RELEASE };
    cr_assert_eq(bp_check_request(&r, &why), -EINVAL);
    bp_set(&r, BP_T_CONN_ID);
    cr_assert_eq(bp_check_request(&r, &why), 0);
    r.abort = 2;
    bp_set(&r, BP_T_ABORT);
    cr_assert_eq(bp_check_request(&r, &why), -EINVAL);
    r.type = BP_CONNECTED;
    cr_assert_eq(bp_check_request(&r, &why), -EINVAL, "a reply is no request");
}

static struct sockaddr_in dst(const char *ip, uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* A name as getsockname gives it: sockaddr_un with `text` after the leading NUL. */
static socklen_t abstract(struct sockaddr_un *sa, const char *text)
{
    size_t n = strlen(text);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path + 1, text, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

Test(conn_name, round_trip_at_the_widest)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct sockaddr_in l = dst("255.255.255.255", 65535), r = dst("192.0.2.1", 3260), gl, gr;
    uint64_t id = 0;
    int n = bp_conn_name(sa.sun_path, sizeof(sa.sun_path), 2147483647L, UINT64_MAX, &l, &r);

    cr_assert_gt(n, 1);
    cr_assert_leq(n, BP_CONN_NAME_MAX);
    cr_assert_eq(sa.sun_path[0], '\0');
    cr_assert_str_eq(sa.sun_path + 1, "toegw-conn/2147483647/18446744073709551615/"
                                      "255.255.255.255:65535/192.0.2.1:3260");
    cr_assert_eq(bp_conn_name_parse(&sa, offsetof(struct sockaddr_un, sun_path) + (size_t)n,
                                    &id, &gl, &gr), 0);
    cr_assert_eq(id, UINT64_MAX);
    cr_assert_eq(gl.sin_family, AF_INET);
    cr_assert_eq(gl.sin_addr.s_addr, l.sin_addr.s_addr);
    cr_assert_eq(gl.sin_port, l.sin_port);
    cr_assert_eq(gr.sin_addr.s_addr, r.sin_addr.s_addr);
    cr_assert_eq(gr.sin_port, r.sin_port);
    cr_assert_eq(bp_conn_name(sa.sun_path, (size_t)n, 2147483647L, UINT64_MAX, &l, &r),
                 -EMSGSIZE,
                 "a buffer too short is refused, not overrun");
}

Test(conn_name, anything_else_is_not_one)
{
    static const char *const bad[] = {
        "toegw-conn/12/7/192.0.2.2:20000/192.0.2.1:3260x",   /* trailing byte */
        "toegw-conn/12/7/192.0.2.2:20000/192.0.2.1:65536",   /* port */
        "toegw-conn/12/18446744073709551616/192.0.2.2:1/192.0.2.1:3260", /* id */
        "toegw-conn/2147483648/7/192.0.2.2:1/192.0.2.1:3260", /* pid */
        "toegw-conn/12//192.0.2.2:20000/192.0.2.1:3260",     /* empty id */
        "toegw-conn/12/7/192.0.2:20000/192.0.2.1:3260",      /* three parts */
        "toegw-conn/12/7/192.0.2.2.5:1/192.0.2.1:3260",      /* too long */
        "toegw-conn/12/7/192.0.2.2/192.0.2.1:3260",          /* no port */
        "toegw-conn/12/7/192.0.2.2:/192.0.2.1:3260",         /* empty port */
        "toegw-conn/12/-7/192.0.2.2:1/192.0.2.1:3260",       /* a sign */
        "toegw-conn/12/7/192.0.2.2:20000",                   /* one address */
        "toegw-conn/12/7/[2001:db8::1]:1/192.0.2.1:3260",    /* not IPv4 */
        "toegw-conn/",
        "toegw-con/12/7/192.0.2.2:20000/192.0.2.1:3260",     /* prefix */
    };
    const char good[] = "toegw-conn/12/7/192.0.2.2:20000/192.0.2.1:3260";
    struct sockaddr_un sa;
    struct sockaddr_in l, r;
    uint64_t id;
    socklen_t n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = abstract(&sa, bad[i]);
        cr_assert_eq(bp_conn_name_parse(&sa, n, &id, &l, &r), -ENOENT, "%s", bad[i]);
    }
    n = abstract(&sa, good);
    cr_assert_eq(bp_conn_name_parse(&sa, n, &id, &l, &r), 0);
    cr_assert_eq(id, 7);
    for (socklen_t cut = 0; cut < n - 4; cut++) /* up to the last port's ":" */
        cr_assert_eq(bp_conn_name_parse(&sa, cut, &id, &l, &r), -ENOENT, "cut at %u", cut);
    sa.sun_path[0] = 'x';
    cr_assert_eq(bp_conn_name_parse(&sa, n, &id, &l, &r), -ENOENT, "a path name");
    sa.sun_path[0] = '\0';
    sa.sun_family = AF_INET;
    cr_assert_eq(bp_conn_name_parse(&sa, n, &id, &l, &r), -ENOENT, "another family");
    cr_assert_eq(bp_conn_name_parse(NULL, n, &id, &l, &r), -ENOENT);
}

Test(offload_match, default_is_port_3260_anywhere)
{
    struct pl_rules r;
    struct sockaddr_in a = dst("203.0.113.9", 3260), b = dst("203.0.113.9", 80);

    cr_assert_eq(pl_rules_parse(NULL, &r, NULL, 0), 0);
    cr_assert(pl_rules_match(&r, &a));
    cr_assert_not(pl_rules_match(&r, &b));
    cr_assert_eq(pl_rules_parse("", &r, NULL, 0), 0);
    cr_assert(pl_rules_match(&r, &a));
}

Test(offload_match, cidrs_and_ports)
{
    struct pl_rules r;
    char bad[64] = "";
    struct sockaddr_in in24 = dst("192.0.2.77", 3260), out24 = dst("192.0.3.1", 3260);
    struct sockaddr_in host = dst("198.51.100.7", 860), other = dst("198.51.100.8", 860);
    struct sockaddr_in any = dst("203.0.113.1", 3261);

    cr_assert_eq(pl_rules_parse("192.0.2.0/24:3260, 198.51.100.7 *:3261", &r, bad,
                                sizeof(bad)), 0, "%s", bad);
    cr_assert_eq(r.n, 3);
    cr_assert(pl_rules_match(&r, &in24));
    cr_assert_not(pl_rules_match(&r, &out24));
    cr_assert(pl_rules_match(&r, &host), "a bare address: any port");
    cr_assert_not(pl_rules_match(&r, &other));
    cr_assert(pl_rules_match(&r, &any));
    cr_assert_eq(pl_rules_parse("0.0.0.0/0", &r, NULL, 0), 0);
    cr_assert(pl_rules_match(&r, &other));
}

Test(offload_match, off_and_bad_entries)
{
    struct pl_rules r;
    char bad[64] = "";
    struct sockaddr_in a = dst("192.0.2.1", 3260);

    cr_assert_eq(pl_rules_parse("off", &r, NULL, 0), 0);
    cr_assert_not(pl_rules_match(&r, &a));
    cr_assert_eq(pl_rules_parse("none", &r, NULL, 0), 0);
    cr_assert_eq(r.n, 0);
    static const char *const bads[] = { "*", "192.0.2.1:0", "192.0.2.1:70000", "192.0.2/33",
                                        "192.0.2.1/", "host.example:3260", "1.2.3.4:x" };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        cr_assert_eq(pl_rules_parse(bads[i], &r, bad, sizeof(bad)), -EINVAL, "%s", bads[i]);
        cr_assert_str_eq(bad, bads[i]);
    }
    cr_assert_eq(pl_rules_parse("bogus, 192.0.2.0/24:3260", &r, bad, sizeof(bad)), -EINVAL);
    cr_assert_eq(r.n, 1, "the good entries are kept");
    cr_assert(pl_rules_match(&r, &a));
}
