/*
 * bproto.h - the broker socket's wire format (docs/broker.md, "The broker socket").
 *
 * Shared by the broker's side (stacks/bsock*.c) and its clients (client/: libtoegw and the
 * preload shim), so the format exists once. A message is one SOCK_SEQPACKET datagram on a
 * Unix socket, at most BP_MSG_MAX bytes:
 *
 *   offset 0  u16 magic 0x5447 ("TG")
 *          2  u8  version (BP_VERSION)
 *          3  u8  type (enum bp_type)
 *          4  u16 seq: the request's number, echoed by its reply
 *          6  u16 body length (the datagram's length - 8)
 *          8  body: fields, each u8 tag, u8 length, then that many value bytes
 *
 * Everything is big-endian. A field appears at most once; a known tag has its exact length
 * (strings: 1..BP_STR_MAX bytes, printable ASCII, no NUL); an unknown tag below 0x80 is an
 * error, one from 0x80 up is skipped (room for optional fields in later versions). A
 * CONNECTED reply carries the connection's descriptor as SCM_RIGHTS.
 */
#ifndef TOEGW_COMMON_BPROTO_H
#define TOEGW_COMMON_BPROTO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BP_MAGIC 0x5447u
#define BP_VERSION 1
#define BP_HDR_LEN 8
#define BP_MSG_MAX 1024
#define BP_STR_MAX 200            /* a string field's longest value */
#define BP_HOLDER_MAX 63          /* a holder name (the broker's STK_NAME_MAX - 1) */

enum bp_type {
    BP_CONNECT = 1,               /* request: a connection (fields: ADDR, PORT; STACK,
                                     RESERVATION, HOLDER optional) */
    BP_RELEASE = 2,               /* request: give a connection back (CONN_ID; ABORT) */
    BP_CONNECTED = 0x81,          /* reply to CONNECT: CONN_ID, LOCAL_*, ADDR, PORT, ON_STACK,
                                     PLACEMENT, RESERVATION; the descriptor as SCM_RIGHTS */
    BP_RELEASED = 0x82,           /* reply to RELEASE: CONN_ID */
    BP_ERROR = 0xff,              /* reply to anything: CODE, MESSAGE */
};

enum bp_tag {
    BP_T_ADDR = 1,                /* 4: the remote IPv4 address */
    BP_T_PORT = 2,                /* 2: the remote port */
    BP_T_STACK = 3,               /* 1: policy 0 auto, 1 toe, 2 host */
    BP_T_RESERVATION = 4,         /* 8: a reservation id */
    BP_T_HOLDER = 5,              /* str: the reservation's holder the client speaks for */
    BP_T_CONN_ID = 6,             /* 8: the broker's connection id */
    BP_T_LOCAL_ADDR = 7,          /* 4 */
    BP_T_LOCAL_PORT = 8,          /* 2: the local port reserved for the connection */
    BP_T_ON_STACK = 9,            /* 1: 0 host, 1 toe */
    BP_T_PLACEMENT = 10,          /* str: why on that stack ("offloaded", "toe full", ...) */
    BP_T_CODE = 11,               /* 4: a positive errno value (Linux numbering) */
    BP_T_MESSAGE = 12,            /* str: one line saying what failed and why */
    BP_T_ABORT = 13,              /* 1: 1 = reset instead of an orderly close */
    BP_T_MAX_KNOWN = 13,
};

struct bp_msg {
    uint8_t type;                 /* enum bp_type */
    uint16_t seq;
    uint32_t has;                 /* bit (1u << tag) per field present */
    struct in_addr addr, local_addr;
    uint16_t port, local_port;
    uint8_t stack, on_stack, abort;
    uint64_t reservation, conn_id;
    uint32_t code;
    char holder[BP_STR_MAX + 1];
    char placement[BP_STR_MAX + 1];
    char message[BP_STR_MAX + 1];
};

#define BP_HAS(m, tag) (((m)->has >> (tag)) & 1u)

/*
 * Encode m (the fields whose bits are set in m->has; strings are cut at BP_STR_MAX) into
 * buf. Returns the length, or -EMSGSIZE when cap is too small.
 */
int bp_encode(const struct bp_msg *m, uint8_t *buf, size_t cap);
/*
 * Decode one datagram. 0; -EPROTO (malformed: `why` says where), -EPROTONOSUPPORT (another
 * version: m->type and m->seq are filled all the same, so the reply can name them).
 */
int bp_decode(const uint8_t *buf, size_t len, struct bp_msg *m, const char **why);
/*
 * A decoded request has what its type needs: CONNECT an address and a port (not 0), a
 * stack 0..2, a holder only with a reservation; RELEASE a connection id, abort 0/1.
 * 0 or -EINVAL with `why`.
 */
int bp_check_request(const struct bp_msg *m, const char **why);

/* Set a field's bit; for strings, copy (cut at BP_STR_MAX). */
void bp_set_str(struct bp_msg *m, enum bp_tag tag, const char *s);
static inline void bp_set(struct bp_msg *m, enum bp_tag tag)
{
    m->has |= 1u << tag;
}

/*
 * A TOE connection's descriptor names itself. The broker binds the program's end of the
 * connection's socketpair to an abstract Unix address (sun_path[0] == 0) that says which
 * connection it is:
 *
 *   "\0toegw-conn/PID/ID/LOCAL_ADDR:LOCAL_PORT/REMOTE_ADDR:REMOTE_PORT"
 *
 * (PID: the broker's process, so two toegw in one network namespace never collide; ID: its
 * connection id.) getsockname() on the descriptor returns it in any process that holds it:
 * one that inherited it across exec or received it over SCM_RIGHTS, where the preload
 * shim's table of its own connections is not. `ss -x` shows it as "@toegw-conn/...".
 */
#define BP_CONN_NAME_PREFIX "toegw-conn/"
#define BP_CONN_NAME_MAX 100      /* a buffer this long always holds one (sun_path: 108) */

/* Write the name (its leading NUL included) into out. Its length, or -EMSGSIZE. */
int bp_conn_name(char *out, size_t cap, long pid, uint64_t id, const struct sockaddr_in *local,
                 const struct sockaddr_in *remote);
/*
 * Read a name back from what getsockname gave (addr, addrlen). 0, or -ENOENT when it is
 * not a connection's name: not an abstract Unix address, another prefix, or anything out
 * of form (a number out of range, an address that is not dotted IPv4, trailing bytes).
 */
int bp_conn_name_parse(const void *addr, size_t addrlen, uint64_t *id,
                       struct sockaddr_in *local, struct sockaddr_in *remote);

#endif
