/*
 * sockspec.h - the address specs the appliance listens on and connects to: "host:port" (IPv4,
 * a dotted quad or a name; "*" for every local address) or "unix:/path" (a Unix stream
 * socket). One parser, one listener and one client connect, so that `serve --api/--nbd`,
 * the REST API, the NBD export and `toegw netstat` agree on what an address means.
 */
#ifndef TOEGW_COMMON_SOCKSPEC_H
#define TOEGW_COMMON_SOCKSPEC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SOCKSPEC_PATH_MAX 108       /* sizeof(sockaddr_un.sun_path) */

struct sockspec {
    bool is_unix;
    uint16_t port;                  /* TCP: 1..65535 */
    char host[256];                 /* TCP: a dotted quad, a name, or "*" (every address) */
    char path[SOCKSPEC_PATH_MAX];   /* unix: the socket's path, not empty, NUL-terminated */
};

/*
 * Parse spec into *out without resolving anything (so a usage check never waits on DNS).
 * def_port is the port when spec names none; 0 makes the port required. 0, -EINVAL when
 * spec is malformed (empty host, bad port, empty or too long path), -EAFNOSUPPORT for an
 * IPv6 literal (both stacks are IPv4 only).
 */
int sockspec_parse(const char *spec, uint16_t def_port, struct sockspec *out);

/* True when spec names a Unix socket ("unix:..."); no other check. */
bool sockspec_is_unix(const char *spec);

/* The IPv4 address of a TCP spec ("*" is INADDR_ANY). 0 or -EHOSTUNREACH (gai_err, if not
 * NULL, gets getaddrinfo's code, 0 when the name was not looked up). */
int sockspec_resolve(const struct sockspec *sp, struct sockaddr_in *out, int *gai_err);

struct sockspec_listen_opts {
    const char *what;               /* names the address in messages: "api" gives "api address" */
    uint16_t def_port;              /* 0: the spec must name its port */
    int backlog;
    mode_t unix_mode;               /* a Unix socket is chmod'ed to this; 0 leaves the umask's */
};

/*
 * Listen on spec: a non-blocking, close-on-exec stream socket. A TCP listener sets
 * SO_REUSEADDR. A Unix socket left at the path by an earlier run is replaced; any other
 * file there is not ours to remove, and is refused (-EEXIST). Returns the descriptor (the
 * caller owns it) or -errno with a one-line reason in err. bound (may be NULL) gets where
 * it listens: "ip:port" as bound (the real port) or "unix:/path".
 */
int sockspec_listen(const char *spec, const struct sockspec_listen_opts *o, char *bound,
                    size_t boundlen, char *err, size_t errlen);

/*
 * Connect to spec (def_port as for sockspec_parse): a blocking, close-on-exec stream
 * socket whose sends and receives time out after timeout_s seconds (0: never). what names
 * the peer in messages ("appliance's api": "cannot reach the appliance's api at ...").
 * Returns the descriptor (the caller owns it) or -errno with a one-line reason in err.
 */
int sockspec_connect(const char *spec, uint16_t def_port, const char *what, unsigned timeout_s,
                     char *err, size_t errlen);

#endif
