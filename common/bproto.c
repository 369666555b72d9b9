/*
 * bproto.c - encode and decode the broker socket's messages (bproto.h). No allocation; every
 * length is checked before the bytes it covers are read.
 */
#include "common/bproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "common/be.h"

/* The value length of each known tag; 0: a string. */
static const uint8_t tag_len[BP_T_MAX_KNOWN + 1] = {
    [BP_T_ADDR] = 4, [BP_T_PORT] = 2, [BP_T_STACK] = 1, [BP_T_RESERVATION] = 8,
    [BP_T_HOLDER] = 0, [BP_T_CONN_ID] = 8, [BP_T_LOCAL_ADDR] = 4, [BP_T_LOCAL_PORT] = 2,
    [BP_T_ON_STACK] = 1, [BP_T_PLACEMENT] = 0, [BP_T_CODE] = 4, [BP_T_MESSAGE] = 0,
    [BP_T_ABORT] = 1,
};

static char *str_field(struct bp_msg *m, unsigned tag)
{
    return tag == BP_T_HOLDER ? m->holder : tag == BP_T_PLACEMENT ? m->placement : m->message;
}

void bp_set_str(struct bp_msg *m, enum bp_tag tag, const char *s)
{
    char *dst = str_field(m, tag);
    size_t n = strnlen(s, BP_STR_MAX);

    memcpy(dst, s, n);
    dst[n] = '\0';
    bp_set(m, tag);
}

/* Append one field; false when it does not fit. */
static bool put_field(uint8_t *buf, size_t cap, size_t *off, unsigned tag, const void *v,
                      size_t n)
{
    if (*off + 2 + n > cap)
        return false;
    buf[*off] = (uint8_t)tag;
    buf[*off + 1] = (uint8_t)n;
    memcpy(buf + *off + 2, v, n);
    *off += 2 + n;
    return true;
}

int bp_encode(const struct bp_msg *m, uint8_t *buf, size_t cap)
{
    size_t off = BP_HDR_LEN;
    bool ok = cap >= BP_HDR_LEN;

    for (unsigned tag = 1; ok && tag <= BP_T_MAX_KNOWN; tag++) {
        uint8_t v[8];
        const void *p = v;
        size_t n = tag_len[tag];
        if (!BP_HAS(m, tag))
            continue;
        switch (tag) {
        case BP_T_ADDR: memcpy(v, &m->addr.s_addr, 4); break;
        case BP_T_LOCAL_ADDR: memcpy(v, &m->local_addr.s_addr, 4); break;
        case BP_T_PORT: be_put16(v, m->port); break;
        case BP_T_LOCAL_PORT: be_put16(v, m->local_port); break;
        case BP_T_STACK: v[0] = m->stack; break;
        case BP_T_ON_STACK: v[0] = m->on_stack; break;
        case BP_T_ABORT: v[0] = m->abort; break;
        case BP_T_RESERVATION: be_put64(v, m->reservation); break;
        case BP_T_CONN_ID: be_put64(v, m->conn_id); break;
        case BP_T_CODE: be_put32(v, m->code); break;
        default: /* strings */
            p = str_field((struct bp_msg *)m, tag);
            n = strnlen(p, BP_STR_MAX);
            break;
        }
        ok = put_field(buf, cap, &off, tag, p, n);
    }
    if (!ok || off > BP_MSG_MAX)
        return -EMSGSIZE;
    be_put16(buf, BP_MAGIC);
    buf[2] = BP_VERSION;
    buf[3] = m->type;
    be_put16(buf + 4, m->seq);
    be_put16(buf + 6, (uint16_t)(off - BP_HDR_LEN));
    return (int)off;
}

/* One known field's value into m. 0 or -EPROTO with why. */
static int take_field(struct bp_msg *m, unsigned tag, const uint8_t *v, size_t n,
                      const char **why)
{
    if (tag_len[tag] && n != tag_len[tag]) {
        *why = "a field has the wrong length for its tag";
        return -EPROTO;
    }
    switch (tag) {
    case BP_T_ADDR: memcpy(&m->addr.s_addr, v, 4); break;
    case BP_T_LOCAL_ADDR: memcpy(&m->local_addr.s_addr, v, 4); break;
    case BP_T_PORT: m->port = be_get16(v); break;
    case BP_T_LOCAL_PORT: m->local_port = be_get16(v); break;
    case BP_T_STACK: m->stack = v[0]; break;
    case BP_T_ON_STACK: m->on_stack = v[0]; break;
    case BP_T_ABORT: m->abort = v[0]; break;
    case BP_T_RESERVATION: m->reservation = be_get64(v); break;
    case BP_T_CONN_ID: m->conn_id = be_get64(v); break;
    case BP_T_CODE: m->code = be_get32(v); break;
    default: {
        char *dst = str_field(m, tag);
        if (n == 0 || n > BP_STR_MAX) {
            *why = "a text field is empty or longer than 200 bytes";
            return -EPROTO;
        }
        for (size_t i = 0; i < n; i++)
            if (v[i] < 0x20 || v[i] > 0x7e) {
                *why = "a text field holds a byte that is not printable ascii";
                return -EPROTO;
            }
        memcpy(dst, v, n);
        dst[n] = '\0';
        break;
    }
    }
    return 0;
}

int bp_decode(const uint8_t *buf, size_t len, struct bp_msg *m, const char **why)
{
    size_t off = BP_HDR_LEN, body;

    memset(m, 0, sizeof(*m));
    if (len < BP_HDR_LEN || len > BP_MSG_MAX) {
        *why = "a message is 8 to 1024 bytes";
        return -EPROTO;
    }
    if (be_get16(buf) != BP_MAGIC) {
        *why = "bad magic (not a toegw broker message)";
        return -EPROTO;
    }
    m->type = buf[3];
    m->seq = be_get16(buf + 4);
    if (buf[2] != BP_VERSION) {
        *why = "unsupported protocol version (this broker speaks version 1)";
        return -EPROTONOSUPPORT;
    }
    body = be_get16(buf + 6);
    if (body != len - BP_HDR_LEN) {
        *why = "the body length in the header is not the message's";
        return -EPROTO;
    }
    while (off < len) {
        unsigned tag;
        size_t n;
        if (len - off < 2) {
            *why = "a field header is cut off";
            return -EPROTO;
        }
        tag = buf[off];
        n = buf[off + 1];
        off += 2;
        if (n > len - off) {
            *why = "a field runs past the end of the message";
            return -EPROTO;
        }
        if (tag == 0 || (tag > BP_T_MAX_KNOWN && tag < 0x80)) {
            *why = "unknown field tag";
            return -EPROTO;
        }
        if (tag <= BP_T_MAX_KNOWN) {
            if (BP_HAS(m, tag)) {
                *why = "a field appears twice";
                return -EPROTO;
            }
            if (take_field(m, tag, buf + off, n, why) < 0)
                return -EPROTO;
            bp_set(m, tag);
        }
        off += n;
    }
    return 0;
}

int bp_check_request(const struct bp_msg *m, const char **why)
{
    switch (m->type) {
    case BP_CONNECT:
        if (!BP_HAS(m, BP_T_ADDR) || !BP_HAS(m, BP_T_PORT) || m->port == 0) {
            *why = "connect needs the remote address and a port that is not 0";
            return -EINVAL;
        }
        if (BP_HAS(m, BP_T_STACK) && m->stack > 2) {
            *why = "stack must be 0 (auto), 1 (toe) or 2 (host)";
            return -EINVAL;
        }
        if (BP_HAS(m, BP_T_HOLDER) && !BP_HAS(m, BP_T_RESERVATION)) {
            *why = "a holder is named only with the reservation it holds";
            return -EINVAL;
        }
        if (BP_HAS(m, BP_T_HOLDER) && strlen(m->holder) > BP_HOLDER_MAX) {
            *why = "a holder name is at most 63 bytes";
            return -EINVAL;
        }
        if (BP_HAS(m, BP_T_RESERVATION) && m->reservation == 0) {
            *why = "reservation ids start at 1";
            return -EINVAL;
        }
        return 0;
    case BP_RELEASE:
        if (!BP_HAS(m, BP_T_CONN_ID)) {
            *why = "release needs the connection id";
            return -EINVAL;
        }
        if (BP_HAS(m, BP_T_ABORT) && m->abort > 1) {
            *why = "abort must be 0 or 1";
            return -EINVAL;
        }
        return 0;
    default:
        *why = "unknown request type (connect is 1, release is 2)";
        return -EINVAL;
    }
}

/* ---------------------------------------------------------------- a TOE descriptor's name */

int bp_conn_name(char *out, size_t cap, long pid, uint64_t id, const struct sockaddr_in *local,
                 const struct sockaddr_in *remote)
{
    char la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
    int n;

    if (cap < 2 || !inet_ntop(AF_INET, &local->sin_addr, la, sizeof(la)) ||
        !inet_ntop(AF_INET, &remote->sin_addr, ra, sizeof(ra)))
        return -EMSGSIZE;
    n = snprintf(out + 1, cap - 1, BP_CONN_NAME_PREFIX "%ld/%llu/%s:%u/%s:%u", pid,
                 (unsigned long long)id, la, ntohs(local->sin_port), ra,
                 ntohs(remote->sin_port));
    if (n < 0 || (size_t)n >= cap - 1)
        return -EMSGSIZE;
    out[0] = '\0';
    return n + 1;
}

/*
 * A decimal number (digits only, at most max) at *p, followed by the byte `stop` (0: the
 * end, e). Moves *p past both.
 */
static bool take_num(const char **p, const char *e, char stop, uint64_t max, uint64_t *v)
{
    const char *q = *p;
    uint64_t n = 0;

    if (q == e || *q < '0' || *q > '9')
        return false;
    for (; q < e && *q >= '0' && *q <= '9'; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (n > (max - d) / 10)
            return false;
        n = n * 10 + d;
    }
    if (stop ? (q == e || *q++ != stop) : q != e)
        return false;
    *p = q;
    *v = n;
    return true;
}

/* "A.B.C.D:PORT" at *p, followed by `stop` (0: the end). */
static bool take_addr(const char **p, const char *e, char stop, struct sockaddr_in *a)
{
    const char *colon = memchr(*p, ':', (size_t)(e - *p));
    char ip[INET_ADDRSTRLEN];
    uint64_t port;

    if (!colon || colon == *p || (size_t)(colon - *p) >= sizeof(ip))
        return false;
    memcpy(ip, *p, (size_t)(colon - *p));
    ip[colon - *p] = '\0';
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1)
        return false;
    *p = colon + 1;
    if (!take_num(p, e, stop, 65535, &port))
        return false;
    a->sin_port = htons((uint16_t)port);
    return true;
}

int bp_conn_name_parse(const void *addr, size_t addrlen, uint64_t *id,
                       struct sockaddr_in *local, struct sockaddr_in *remote)
{
    const size_t off = offsetof(struct sockaddr_un, sun_path);
    const size_t plen = sizeof(BP_CONN_NAME_PREFIX) - 1;
    const struct sockaddr_un *sa = addr;
    const char *p, *e;
    uint64_t pid;

    if (!sa || addrlen < off + 1 + plen || addrlen > off + BP_CONN_NAME_MAX ||
        addrlen > sizeof(*sa) || sa->sun_family != AF_UNIX || sa->sun_path[0] != '\0' ||
        memcmp(sa->sun_path + 1, BP_CONN_NAME_PREFIX, plen) != 0)
        return -ENOENT;
    p = sa->sun_path + 1 + plen;
    e = sa->sun_path + (addrlen - off);
    if (!take_num(&p, e, '/', INT32_MAX, &pid) || !take_num(&p, e, '/', UINT64_MAX, id) ||
        !take_addr(&p, e, '/', local) || !take_addr(&p, e, 0, remote))
        return -ENOENT;
    return 0;
}
