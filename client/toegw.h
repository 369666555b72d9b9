/*
 * toegw.h - libtoegw: ask a running `toegw serve` for a TCP connection (offloaded to its
 * TOE when it can) and get it as a file descriptor (docs/broker.md, "The broker socket").
 *
 *   struct toegw_conn_req req = { .host = "192.0.2.1", .port = 3260 };
 *   struct toegw_conn_info info;
 *   char err[256];
 *   int fd = toegw_connect(NULL, &req, &info, err, sizeof(err));
 *   if (fd < 0) fprintf(stderr, "%s\n", err);      // fd is -errno
 *   ... read/write/poll/epoll on fd, as on any connected stream socket ...
 *   toegw_release(NULL, fd, info.id, false, NULL, 0);  // or just close(fd)
 *
 * On the host stack the descriptor is the connected kernel TCP socket; on the TOE it is an
 * AF_UNIX stream socket whose other end the broker pumps to the TOE connection (so
 * getsockname says AF_UNIX: info.local and info.remote are the TCP addresses, and
 * toegw_describe gives them back for any such descriptor; the preload shim,
 * toegw-preload.so, answers getsockname and getpeername with them). Closing the
 * descriptor (or the program's death) releases the connection and its port within a
 * second. Thread-safe: every call opens its own control connection.
 */
#ifndef TOEGW_CLIENT_TOEGW_H
#define TOEGW_CLIENT_TOEGW_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOEGW_API __attribute__((visibility("default")))

/* Where the broker listens unless told: $TOEGW_BROKER, else this. */
#define TOEGW_BROKER_DEFAULT "/var/lib/toegw/broker.sock"

struct toegw_conn_req {
    const char *host;          /* an IPv4 address ("192.0.2.1"); or set `dst` instead */
    uint16_t port;
    struct sockaddr_in dst;    /* used when host is NULL */
    const char *stack;         /* "auto" (NULL), "toe" or "host" */
    uint64_t reservation;      /* 0, or a reservation to take the port of ... */
    const char *holder;        /* ... held by this name (made over REST with "holder") */
    int timeout_ms;            /* how long to wait for the answer (0: 15000) */
    bool nonblock;             /* the descriptor comes with O_NONBLOCK */
};

struct toegw_conn_info {
    uint64_t id;               /* the broker's connection id */
    struct sockaddr_in local;  /* the TCP connection's local address and reserved port */
    struct sockaddr_in remote;
    char stack[8];             /* "toe" or "host" */
    char placement[64];        /* why there: "offloaded", "host requested", "toe full", ... */
    uint64_t reservation;      /* the reservation whose port it uses, or 0 */
};

/* The broker socket's path: `path` if given, else $TOEGW_BROKER, else the default. */
TOEGW_API const char *toegw_broker_path(const char *path);

/*
 * Connect through the broker at `path` (NULL: toegw_broker_path(NULL)). Returns the
 * connected descriptor (close-on-exec), or -errno with one line in err: the broker's own
 * code and message when it refused (-EPERM another holder's reservation, -EBUSY in use,
 * -ENETDOWN/-EMFILE/-ENETUNREACH/-ENODEV when "toe" was asked and the TOE cannot take it,
 * -ECONNREFUSED/-ETIMEDOUT/-EHOSTUNREACH from the connect itself), -ENOENT/-ECONNREFUSED
 * when no broker listens, -EACCES when the socket's permissions keep this user out,
 * -ETIMEDOUT when it did not answer in time, -EPROTO on a reply that is not one.
 */
TOEGW_API int toegw_connect(const char *path, const struct toegw_conn_req *req,
                  struct toegw_conn_info *info, char *err, size_t errlen);

/*
 * Give a connection back: closes `fd` (when >= 0), then asks the broker to release
 * connection `id` (a TOE connection that is still open is closed, reset when `abort`).
 * 0 (also when the broker had released it already, on the descriptor's close) or -errno.
 */
TOEGW_API int toegw_release(const char *path, int fd, uint64_t id, bool abort, char *err,
                  size_t errlen);

/*
 * Which connection a descriptor is, wherever it came from: made by toegw_connect in this
 * process, inherited across exec, or received over SCM_RIGHTS. For a TOE connection's
 * descriptor it fills info from the name the broker bound it to (id, local, remote, stack
 * "toe"; placement and reservation are not part of the name: "" and 0). 0; -ENOENT when fd
 * is no TOE connection's descriptor (a host-stack descriptor is the kernel's TCP socket:
 * getsockname and getpeername tell), -EBADF, -ENOTSOCK.
 */
TOEGW_API int toegw_describe(int fd, struct toegw_conn_info *info);

#ifdef __cplusplus
}
#endif

#endif
