/*
 * sockspec.c - parsing "host:port" / "unix:/path" address specs, listening on them and
 * connecting to them (common/sockspec.h).
 */
#include "common/sockspec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == SOCKSPEC_PATH_MAX,
               "SOCKSPEC_PATH_MAX is sun_path's size");

bool sockspec_is_unix(const char *spec)
{
    return spec && strncmp(spec, "unix:", 5) == 0;
}

/* Digits only (no sign, no space), 1..65535. */
static int parse_port(const char *s, uint16_t *out)
{
    unsigned long v = 0;

    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    if (v == 0)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

int sockspec_parse(const char *spec, uint16_t def_port, struct sockspec *out)
{
    const char *colon;
    size_t hlen;

    memset(out, 0, sizeof(*out));
    if (!spec || !*spec)
        return -EINVAL;
    if (sockspec_is_unix(spec)) {
        size_t plen = strlen(spec + 5);
        if (plen == 0 || plen >= sizeof(out->path))
            return -EINVAL;
        out->is_unix = true;
        memcpy(out->path, spec + 5, plen + 1);
        return 0;
    }
    if (spec[0] == '[')
        return -EAFNOSUPPORT;
    colon = strrchr(spec, ':');
    hlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (hlen == 0 || hlen >= sizeof(out->host))
        return -EINVAL;
    if (colon) {
        if (parse_port(colon + 1, &out->port) < 0)
            return -EINVAL;
    } else if (def_port) {
        out->port = def_port;
    } else {
        return -EINVAL;
    }
    memcpy(out->host, spec, hlen);
    out->host[hlen] = '\0';
    return 0;
}

int sockspec_resolve(const struct sockspec *sp, struct sockaddr_in *out, int *gai_err)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int gai;

    if (gai_err)
        *gai_err = 0;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(sp->port);
    if (strcmp(sp->host, "*") == 0) {
        out->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (inet_pton(AF_INET, sp->host, &out->sin_addr) == 1)
        return 0;
    gai = getaddrinfo(sp->host, NULL, &hints, &res);
    if (gai != 0 || !res) {
        if (gai_err)
            *gai_err = gai ? gai : EAI_NONAME;
        return -EHOSTUNREACH;
    }
    out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

/*
 * Parse and resolve spec, or write why not to err ("<what> address "spec": ..."). On success
 * *sp is the parsed spec and, for TCP, *sa its address.
 */
static int spec_prepare(const char *spec, uint16_t def_port, const char *what,
                        struct sockspec *sp, struct sockaddr_in *sa, char *err, size_t errlen)
{
    const char *sep = what && *what ? " " : "";
    int ret, gai;

    if (!what)
        what = "";
    ret = sockspec_parse(spec, def_port, sp);
    if (ret == -EAFNOSUPPORT) {
        snprintf(err, errlen, "%s%saddress \"%s\": IPv6 is not supported", what, sep, spec);
        return ret;
    }
    if (ret < 0 && sockspec_is_unix(spec)) {
        snprintf(err, errlen, "%s%saddress \"%s\": path empty or too long", what, sep, spec);
        return ret;
    }
    if (ret < 0) {
        snprintf(err, errlen, "%s%saddress \"%s\": expected host:port or unix:/path", what,
                 sep, spec ? spec : "");
        return ret;
    }
    if (sp->is_unix)
        return 0;
    ret = sockspec_resolve(sp, sa, &gai);
    if (ret < 0)
        snprintf(err, errlen, "%s%saddress \"%s\": cannot resolve \"%s\": %s", what, sep,
                 spec, sp->host, gai_strerror(gai));
    return ret;
}

static void unix_addr(const struct sockspec *sp, struct sockaddr_un *un)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, sp->path, strlen(sp->path) + 1);
}

/* A socket left at the path by an earlier run is replaced; any other file is not ours. */
static int unix_path_clear(const char *spec, const struct sockspec *sp, const char *what,
                           char *err, size_t errlen)
{
    struct stat st;

    if (lstat(sp->path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s%saddress \"%s\": exists and is not a socket", what,
                 *what ? " " : "", spec);
        return -EEXIST;
    }
    unlink(sp->path);
    return 0;
}

static void bound_str(int fd, const char *spec, const struct sockspec *sp, char *bound,
                      size_t boundlen)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    char ip[INET_ADDRSTRLEN];

    if (!bound || !boundlen)
        return;
    if (sp->is_unix)
        snprintf(bound, boundlen, "unix:%s", sp->path);
    else if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
             inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)))
        snprintf(bound, boundlen, "%s:%u", ip, ntohs(sa.sin_port));
    else
        snprintf(bound, boundlen, "%s", spec);
}

/*
 * One listener for every server (the API, the NBD export): the same spec means the same
 * socket, and a stale Unix socket is handled the same way everywhere.
 */
int sockspec_listen(const char *spec, const struct sockspec_listen_opts *o, char *bound,
                    size_t boundlen, char *err, size_t errlen)
{
    const char *what = o->what ? o->what : "";
    struct sockspec sp;
    struct sockaddr_in sa;
    struct sockaddr_un un;
    int fd, ret, one = 1;

    ret = spec_prepare(spec, o->def_port, what, &sp, &sa, err, errlen);
    if (ret < 0)
        return ret;
    if (sp.is_unix) {
        ret = unix_path_clear(spec, &sp, what, err, errlen);
        if (ret < 0)
            return ret;
        unix_addr(&sp, &un);
    }
    fd = socket(sp.is_unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "%s%ssocket: %s", what, *what ? " " : "", strerror(-ret));
        return ret;
    }
    if (!sp.is_unix)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((sp.is_unix ? bind(fd, (struct sockaddr *)&un, sizeof(un))
                    : bind(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 ||
        (sp.is_unix && o->unix_mode && chmod(sp.path, o->unix_mode) < 0) ||
        listen(fd, o->backlog > 0 ? o->backlog : 128) < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot listen on \"%s\": %s", spec, strerror(-ret));
        close(fd);
        /* a half-made socket file is ours; one another process bound meanwhile is not */
        if (sp.is_unix && ret != -EADDRINUSE)
            unlink(sp.path);
        return ret;
    }
    bound_str(fd, spec, &sp, bound, boundlen);
    return fd;
}

int sockspec_connect(const char *spec, uint16_t def_port, const char *what, unsigned timeout_s,
                     char *err, size_t errlen)
{
    struct timeval tv = { .tv_sec = timeout_s };
    struct sockspec sp;
    struct sockaddr_in sa;
    struct sockaddr_un un;
    int fd, ret;

    if (!what)
        what = "";
    ret = spec_prepare(spec, def_port, what, &sp, &sa, err, errlen);
    if (ret < 0)
        return ret;
    if (sp.is_unix)
        unix_addr(&sp, &un);
    fd = socket(sp.is_unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        (sp.is_unix ? connect(fd, (struct sockaddr *)&un, sizeof(un))
                    : connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0) {
        ret = -errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot reach the %s at %s: %s", *what ? what : "peer", spec,
                 strerror(-ret));
        return ret;
    }
    if (timeout_s) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}
