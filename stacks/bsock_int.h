/*
 * bsock_int.h - what the broker socket's files share: bsock.c (the listener, the clients
 * and their requests) and bsock_conn.c (each handed-over connection: connecting, the TOE
 * pump, the host socket watch, release). Everything here runs on the socket's one thread.
 */
#ifndef TOEGW_STACKS_BSOCK_INT_H
#define TOEGW_STACKS_BSOCK_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/bproto.h"
#include "stacks/bsock.h"

/* What an epoll registration points at. */
enum bs_kind { BS_LISTEN, BS_WAKE, BS_TIMER, BS_CLIENT, BS_CONN_NET, BS_CONN_APP };

struct bs_ref {
    enum bs_kind kind;
    void *obj;
};

/* A control connection. */
struct bs_client {
    struct bs_ref ref;
    int fd;
    pid_t pid;
    uid_t uid;
    char owner[STK_NAME_MAX];      /* "pid/comm": the owner of its connections */
    unsigned inflight;             /* its connects not answered yet */
    uint64_t last_ns;              /* its last request (idle timeout) */
    bool dead;                     /* dropped; freed after the current epoll batch */
    struct bs_client *next;
};

/* The state machine of one connection requested over the socket. */
enum bs_conn_state {
    BC_CONNECTING = 0,             /* stk_request granted it; not established yet */
    BC_PUMPING,                    /* TOE: handed over, the pump moves bytes both ways */
    BC_DRAINING,                   /* TOE: the program's end closed; last bytes to the TOE */
    BC_HANDED,                     /* host: the socket is the program's; watched */
    BC_DONE,                       /* released; freed after the current epoll batch */
};

struct bs_buf {
    uint8_t *p;
    size_t off, len;               /* bytes [off, len) wait to be written */
};

struct bs_conn {
    struct bs_ref net_ref;         /* the stk_conn's fd (socket or the TOE's eventfd) */
    struct bs_ref app_ref;         /* TOE: the broker's end of the socketpair */
    enum bs_conn_state state;
    struct stk_desc *d;            /* the broker's descriptor (borrowed until release) */
    struct stk_conn *conn;         /* d's connection while the broker holds it */
    uint64_t id;
    char owner[STK_NAME_MAX];
    uid_t uid;                     /* the requesting client's */
    struct bs_client *client;      /* while connecting: whom to answer (NULL: gone) */
    uint16_t seq;
    uint64_t deadline_ns;          /* connecting / draining */
    int app_fd;                    /* TOE: -1 until handed over */
    struct bs_buf to_net, to_app;
    bool app_eof, app_gone, net_eof, net_shut, app_shut;
    ino_t ino;                     /* host: the socket's inode (its liveness) */
    struct sockaddr_in local, remote;
    struct bs_conn *next;
};

struct stk_bsock {
    struct stk_broker *b;
    char path[108];
    int lfd, wake, timer, ep, diag;
    struct bs_ref lref, wref, tref;
    pthread_t thread;
    bool stop;                     /* set by stk_bsock_stop (under lock) */
    pthread_mutex_t lock;          /* guards stats for readers on other threads */
    struct stk_bsock_stats stats;
    struct bs_client *clients;
    unsigned nclients;
    struct bs_conn *conns;
    uint64_t last_watch_ns;
};

uint64_t bs_now_ns(void);
/* Send one reply (with `fd` as SCM_RIGHTS when >= 0). 0, or -errno: the client is dropped. */
int bs_reply(struct stk_bsock *bs, struct bs_client *cl, struct bp_msg *m, int fd);
/* An ERROR reply: code (positive errno) and the message. */
void bs_reply_error(struct stk_bsock *bs, struct bs_client *cl, uint16_t seq, int code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void bs_count(struct stk_bsock *bs, uint64_t *field, int64_t delta);

/* bsock_conn.c */
/* Track a granted descriptor until it is established and handed over. 0 or -errno. */
int bs_conn_start(struct stk_bsock *bs, struct bs_client *cl, uint16_t seq,
                  struct stk_desc *d);
void bs_conn_event(struct stk_bsock *bs, struct bs_conn *bc, bool app_side, uint32_t ev);
/* Timer: connect deadlines, draining deadlines, the host sockets' watch. */
void bs_conn_tick(struct stk_bsock *bs);
/* Release now the connections whose program has closed its descriptor (before EBUSY). */
void bs_conn_reap(struct stk_bsock *bs);
/*
 * A RELEASE request: 0; -EBUSY (a host socket the program still has open); -ENOENT.
 * `abort` resets a TOE connection instead of closing it in order.
 */
int bs_conn_release_req(struct stk_bsock *bs, uint64_t id, uid_t uid, bool abort);
/* The client went away: its connects in progress lose their answer and are released. */
void bs_conn_forget_client(struct stk_bsock *bs, struct bs_client *cl);
/* Release (abort or not) and mark done. */
void bs_conn_release(struct stk_bsock *bs, struct bs_conn *bc, bool abort, const char *why);
/* Free the connections marked done (after an epoll batch), or all of them (at stop). */
void bs_conn_sweep(struct stk_bsock *bs, bool all);

#endif
