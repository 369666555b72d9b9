/*
 * fuzz_bproto.c - the broker socket's wire format (common/bproto.c), as the broker reads a
 * client's datagram.
 *
 * Input: one datagram. Properties: decode never reads past the input (ASan); a refusal says
 * why in one printable line; an accepted message's strings are printable and NUL-ended
 * within their buffers, and re-encoding it gives a message that decodes to the same
 * fields (a round trip); a checked request is one the broker can act on (a port, a stack
 * 0..2, a holder only with a reservation, a connection id for release). The same bytes as
 * a TOE descriptor's name (after the abstract address's NUL): parsing never reads past
 * them, and a name it accepts is one the broker could have written (written again from
 * what was read, it reads back the same).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/bproto.h"
#include "tests/fuzz/fuzz.h"

static void check_str(const char *s, const char *name)
{
    size_t n = strnlen(s, BP_STR_MAX + 1);

    FUZZ_CHECK(n <= BP_STR_MAX, "%s not NUL-ended within its buffer", name);
    FUZZ_CHECK(n == 0 || fuzz_printable_line(s, n), "%s not printable", name);
}

static void conn_name(const uint8_t *data, size_t size)
{
    const size_t off = offsetof(struct sockaddr_un, sun_path);
    struct sockaddr_un *sa, again = { .sun_family = AF_UNIX };
    struct sockaddr_in l, r, l2, r2;
    uint64_t id, id2;
    int n;

    if (size >= sizeof(sa->sun_path))
        return;
    sa = malloc(off + 1 + size); /* exactly the name's bytes: ASan sees any overrun */
    if (!sa)
        abort();
    sa->sun_family = AF_UNIX;
    sa->sun_path[0] = '\0';
    memcpy(sa->sun_path + 1, data, size);
    if (bp_conn_name_parse(sa, off + 1 + size, &id, &l, &r) == 0) {
        n = bp_conn_name(again.sun_path, sizeof(again.sun_path), 1, id, &l, &r);
        FUZZ_CHECK(n > 0, "an accepted name cannot be written again");
        FUZZ_CHECK(bp_conn_name_parse(&again, off + (size_t)n, &id2, &l2, &r2) == 0 &&
                       id2 == id && l2.sin_addr.s_addr == l.sin_addr.s_addr &&
                       l2.sin_port == l.sin_port && r2.sin_addr.s_addr == r.sin_addr.s_addr &&
                       r2.sin_port == r.sin_port,
                   "a name written again reads back otherwise");
    }
    free(sa);
}

int fuzz_bproto(const uint8_t *data, size_t size)
{
    struct bp_msg m, again;
    uint8_t *copy = malloc(size ? size : 1), buf[BP_MSG_MAX];
    const char *why = "";
    int ret, n;

    if (!copy)
        abort();
    conn_name(data, size);
    memcpy(copy, data, size);
    ret = bp_decode(copy, size, &m, &why);
    free(copy);
    if (ret < 0) {
        FUZZ_CHECK(ret == -EPROTO || ret == -EPROTONOSUPPORT, "decode returned %d", ret);
        FUZZ_CHECK(why && fuzz_printable_line(why, strlen(why)), "refusal without a reason");
        return 0;
    }
    check_str(m.holder, "holder");
    check_str(m.placement, "placement");
    check_str(m.message, "message");
    n = bp_encode(&m, buf, sizeof(buf));
    FUZZ_CHECK(n > 0 && (size_t)n <= size, "re-encoding failed (%d) or grew", n);
    FUZZ_CHECK(bp_decode(buf, (size_t)n, &again, &why) == 0, "re-encoded: %s", why);
    FUZZ_CHECK(again.has == m.has && again.type == m.type && again.seq == m.seq &&
               again.port == m.port && again.reservation == m.reservation &&
               again.conn_id == m.conn_id && again.code == m.code &&
               !strcmp(again.holder, m.holder) && !strcmp(again.message, m.message),
               "the round trip changed the message");
    if (bp_check_request(&m, &why) == 0) {
        FUZZ_CHECK(m.type == BP_CONNECT || m.type == BP_RELEASE, "type %u accepted", m.type);
        if (m.type == BP_CONNECT) {
            FUZZ_CHECK(m.port != 0 && m.stack <= 2, "connect without a port or bad stack");
            FUZZ_CHECK(!BP_HAS(&m, BP_T_HOLDER) || m.reservation != 0, "holder alone");
            FUZZ_CHECK(strlen(m.holder) <= BP_HOLDER_MAX, "holder too long");
        } else {
            FUZZ_CHECK(BP_HAS(&m, BP_T_CONN_ID) && m.abort <= 1, "release without an id");
        }
    } else {
        FUZZ_CHECK(fuzz_printable_line(why, strlen(why)), "check refusal without a reason");
    }
    return 0;
}
