/*
 * preload_int.h - what the preload shim's files share (client/preload.c, client/match.c,
 * client/fdtab.c). Nothing here is exported from toegw-preload.so.
 */
#ifndef TOEGW_CLIENT_PRELOAD_INT_H
#define TOEGW_CLIENT_PRELOAD_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- TOEGW_OFFLOAD (match.c) */

#define PL_MAX_RULES 32

/* One entry of TOEGW_OFFLOAD: destinations in net/prefix, to `port` (0: any port). */
struct pl_rule {
    uint32_t net, mask;        /* host byte order */
    uint16_t port;
};

struct pl_rules {
    struct pl_rule r[PL_MAX_RULES];
    size_t n;
};

/*
 * Parse TOEGW_OFFLOAD: entries separated by commas or blanks, each "ADDR[/LEN][:PORT]",
 * "*[:PORT]" or ":PORT" (any address); "off" or "none" alone: nothing is offloaded.
 * NULL or empty: the default, port 3260 on any address. 0, or -EINVAL with the first bad
 * entry in `bad` (the good entries are kept).
 */
int pl_rules_parse(const char *spec, struct pl_rules *out, char *bad, size_t badlen);
bool pl_rules_match(const struct pl_rules *rules, const struct sockaddr_in *dst);

/* ---------------------------------------------------------------- offloaded sockets (fdtab.c) */

#define PL_MAX_OPTS 16

/*
 * A TOE connection's descriptor (an AF_UNIX socket) as the program sees it: the TCP
 * addresses, and the TCP-level options it set. Keyed by the socket's inode, so every dup
 * of it answers (and a recycled fd number never does).
 */
struct pl_sock {
    dev_t dev;
    ino_t ino;
    int refs;                  /* fds of this process known to refer to it */
    uint64_t id;               /* the broker's connection id */
    struct sockaddr_in local, remote;
    struct {
        int level, name, value;
    } opts[PL_MAX_OPTS];
    int nopts;
};

/* Add the socket behind fd. 0 or -errno. */
int pl_tab_add(int fd, const struct pl_sock *s);
/* A copy of the entry of fd's socket; false when fd is not an offloaded socket. */
bool pl_tab_get(int fd, struct pl_sock *out);
/* Another fd now refers to fd's socket (dup), or one fewer does (close). */
void pl_tab_ref(int fd, int delta);
/* Remember / look up an int option of fd's socket. false when fd is not in the table. */
bool pl_tab_set_opt(int fd, int level, int name, int value);
bool pl_tab_get_opt(int fd, int level, int name, int *value);
/* True when the table is empty (the fast path of every interposed call). */
bool pl_tab_empty(void);

#endif
