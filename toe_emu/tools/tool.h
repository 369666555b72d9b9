/*
 * tool.h - what the files of toe-tool share: the test pattern, the kernel peers' address,
 * the TOE side's helpers and the command-line options (toe_tool.c has main and the rest;
 * flood.c and conns.c a command each).
 */
#ifndef TOEGW_TOE_TOOL_H
#define TOEGW_TOE_TOOL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/transport.h"
#include "toe_emu/toe.h"

#define PAT_LEN     (4u * 1024 * 1024 + 13)   /* odd period: misplaced data shows */
#define CHUNK       (256u * 1024)
#define SRV_PORT    5001
#define TOE_PORT0   20000

struct opts {
    unsigned mtu;
    uint64_t bytes;
    const char *dir;
    struct toe_faults faults;
    unsigned max;
    unsigned conns;
    const char *out;
    bool ring;
    double seconds;
    const char *mtus;
    bool no_offload;
    unsigned rounds;
    const char *stack;             /* flood: "toe", "host" or "both" */
    unsigned pace_ms;              /* flood: the peer sleeps this long after each send */
    unsigned pause_ms;             /* flood: the consumer stops reading this long, once */
    double limit;                  /* flood: seconds each run may take at most */
    const char *tcp_cc;            /* the namespace's TCP congestion control (NULL: the host's) */
    bool in_place;                 /* bulk: receive in place (toe_conn_peek, toe_conn_consume) */
    bool by_ref;                   /* bulk: send by reference (toe_conn_send_ref) */
};

extern bool verify;                /* check received data against the pattern */

double now_s(void);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* The pattern at stream offset `off`; at least CHUNK bytes are readable from there. */
const uint8_t *pat_at(uint64_t off);
struct toe_dev *dev_up(unsigned mtu, unsigned max_conns, bool no_offload);
/* The TAP's host side (192.0.2.1), where the kernel peers listen. */
struct sockaddr_in host_addr(uint16_t port);
int listen_on(const char *ip, uint16_t port);
void wait_fd(int fd, int ms);
/* A TOE connection from `lport` to the host side's `dport`, established (or exit 1). */
struct stk_conn *toe_dial(struct toe_dev *dev, uint16_t dport, uint16_t lport);
void print_counters(struct toe_dev *dev);

int cmd_flood(const struct opts *o);
int cmd_conns(const struct opts *o);

#endif
