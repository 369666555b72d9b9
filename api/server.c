/*
 * server.c - the REST API's HTTP server on libmicrohttpd.
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): handlers block in the
 * manager's calls (a login may take seconds), and a thread pool would let a few slow
 * logins stall every other request, /livez included. The connection limit bounds threads.
 * MHD does not listen: the front door (door.c) accepts, holds a connection without a
 * thread until its request header is complete, and enforces the per-client limit and the
 * header deadline.
 *
 * A request goes through: the URI log callback (keeps the target exactly as sent, before
 * percent-decoding, and allocates the request's state), a first call of the access
 * handler (route, auth, method, media type, declared length: refused here, before any
 * body is read), body chunks (kept up to the route's limit; past it the rest is discarded
 * and the answer is 413), and a last call that runs the endpoint. The completion callback
 * logs one line per request (method, path without query, status, duration: never a body;
 * reads at debug, changes at info, server errors at warn)
 * and wipes the body, which may hold CHAP secrets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "api/history_int.h"
#include "common/log.h"
#include "common/sockspec.h"

#define API_CONN_TIMEOUT_S 60       /* MHD's own idle limit (the door's deadline is shorter) */
#define API_DISCARD_MAX (64u << 20) /* past this much unwanted body, drop the connection */

struct api_server {
    struct api_config cfg;          /* its strings point to the copies below */
    char *listen;
    char *nbd_host;
    char *tls_cert;                 /* PEM copies that MHD uses for its whole life */
    char *tls_key;                  /* wiped at the end */
    char *state_dir;
    struct MHD_Daemon *mhd;
    struct api_door *door;          /* accepts on listen_fd; freed after mhd stops */
    int listen_fd;                  /* ours */
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char addr[160];                 /* where we listen, for logs and tests */
    atomic_bool quiesced;
    struct log_rate log_mhd;        /* the http server's own messages (on_mhd_log) */
    struct api_shared sh;           /* what the endpoints share (readiness, counts, ...) */
    struct api_ctx ctx;             /* what handlers run with: &cfg and &sh */
};

struct api_req {
    char *raw;                      /* request target as sent (owned) */
    struct timespec t0;
    bool started;
    enum api_method method;
    char method_name[16];
    int route_rc;
    struct api_route route;
    enum api_body_kind body_kind;
    size_t body_max;
    char *body;                     /* owned; wiped before free */
    size_t body_len, body_cap;
    bool too_big;
    uint64_t discarded;
    int status;
};

/* ---------------------------------------------------------------- accessors */

void api_server_set_ready(struct api_server *s, int ready)
{
    if (s)
        atomic_store(&s->sh.ready, ready ? 1 : 0);
}

const char *api_server_address(const struct api_server *s)
{
    return s ? s->addr : "";
}

void api_shared_init(struct api_shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    clock_gettime(CLOCK_MONOTONIC, &sh->started);
    api_token_init(&sh->token);
    pthread_mutex_init(&sh->capture_lock, NULL);
    pthread_mutex_init(&sh->conn_lock, NULL);
}

void api_shared_fini(struct api_shared *sh)
{
    free(sh->conn_body);
    sh->conn_body = NULL;
    pthread_mutex_destroy(&sh->conn_lock);
    pthread_mutex_destroy(&sh->capture_lock);
    api_token_fini(&sh->token);
}

/* ---------------------------------------------------------------- secrets in jansson */

/*
 * jansson holds request bodies' strings (CHAP secrets) in its own allocations: free them
 * wiped. Set once for the process; compatible with anything jansson allocated before.
 */
static void *json_alloc(size_t n)
{
    return malloc(n);
}

static void json_wipe_free(void *p)
{
    if (p) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

/* ---------------------------------------------------------------- responses */

static void req_free(struct api_req *rq)
{
    if (!rq)
        return;
    if (rq->body) {
        explicit_bzero(rq->body, rq->body_cap);
        free(rq->body);
    }
    free(rq->raw);
    free(rq);
}

static enum MHD_Result queue(struct api_server *s, struct MHD_Connection *conn,
                             struct api_req *rq, struct api_resp *rp)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (rp->fd >= 0) {
        resp = MHD_create_response_from_fd64(rp->len, rp->fd);
        if (!resp)
            close(rp->fd);
    } else if (rp->body_static || !rp->body) {
        resp = MHD_create_response_from_buffer(rp->body ? rp->len : 0, rp->body,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(rp->body);
    }
    rp->body = NULL;
    rp->fd = -1;
    if (!resp)
        return MHD_NO;

    if (rp->ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rp->ctype);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rq && rq->route_rc == 0 && rq->route.id == API_R_PAGE) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; "
                                "style-src 'self'; connect-src 'self'; "
                                "base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    } else {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (rp->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rp->location);
    if (rp->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rp->allow);
    if (rp->content_range[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, rp->content_range);
    if (rp->disposition)
        MHD_add_response_header(resp, "Content-Disposition", rp->disposition);
    if (rp->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"toegw\"");

    ret = MHD_queue_response(conn, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        if (rq)
            rq->status = rp->status;
        if (rp->status >= 100 && rp->status < 600)
            atomic_fetch_add(&s->sh.counts[rp->status / 100], 1);
    }
    return ret;
}

static enum MHD_Result queue_err(struct api_server *s, struct MHD_Connection *conn,
                                 struct api_req *rq, const struct api_err *e)
{
    struct api_resp rp;

    api_resp_init(&rp);
    api_resp_problem(&rp, e);
    return queue(s, conn, rq, &rp);
}

static enum MHD_Result fail(struct api_server *s, struct MHD_Connection *conn,
                            struct api_req *rq, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result fail(struct api_server *s, struct MHD_Connection *conn,
                            struct api_req *rq, int status, const char *fmt, ...)
{
    struct api_err e;
    va_list ap;

    va_start(ap, fmt);
    api_err_vset(&e, status, fmt, ap);
    va_end(ap);
    return queue_err(s, conn, rq, &e);
}

/* ---------------------------------------------------------------- request flow */

static enum MHD_Result run(struct api_server *s, struct MHD_Connection *conn,
                           struct api_req *rq)
{
    struct api_call call = {
        .method = rq->method,
        .route = &rq->route,
        .body = rq->body,
        .body_len = rq->body_len,
    };
    struct api_resp rp;
    enum MHD_Result ret;

    api_handle(&s->ctx, &call, &rp);
    ret = queue(s, conn, rq, &rp);
    if (rq->body)
        explicit_bzero(rq->body, rq->body_cap);
    return ret;
}

/* The first call: everything that can be refused before reading a body is refused here. */
static enum MHD_Result begin(struct api_server *s, struct MHD_Connection *conn,
                             struct api_req *rq, const char *method)
{
    const char *auth, *ctype, *clen;
    struct api_err e;
    uint64_t declared;
    char allow[64];

    rq->method = api_method_parse(method);
    for (size_t i = 0; method && method[i] && i + 1 < sizeof(rq->method_name); i++) {
        unsigned char ch = (unsigned char)method[i];

        rq->method_name[i] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    rq->route_rc = api_route_match(rq->raw, &rq->route);

    if ((rq->route_rc == 0 && (rq->route.auth || (rq->route.id == API_R_METRICS &&
                                                  s->cfg.metrics_auth))) ||
        (rq->route_rc != 0 && strncmp(rq->raw, "/api/", 5) == 0)) {
        auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_AUTHORIZATION);
        if (!api_token_ok(&s->sh.token, auth))
            return fail(s, conn, rq, 401, auth ? "the bearer token is not valid"
                        : "an \"Authorization: Bearer TOKEN\" header is required");
    }
    if (rq->route_rc == -EINVAL)
        return fail(s, conn, rq, 400, "malformed request path");
    if (rq->route_rc < 0)
        return fail(s, conn, rq, 404, "no such resource");
    if (!(rq->route.methods & rq->method)) {
        struct api_resp rp;

        api_allow_str(rq->route.methods, allow, sizeof(allow));
        api_err_set(&e, 405, "method %s is not allowed here (allowed: %s)",
                    rq->method_name, allow);
        api_resp_init(&rp);
        api_resp_problem(&rp, &e);
        snprintf(rp.allow, sizeof(rp.allow), "%s", allow);
        return queue(s, conn, rq, &rp);
    }

    rq->body_kind = api_route_body(&rq->route, rq->method);
    if (rq->body_kind == API_BODY_NONE) {
        /* run on the next call, once MHD has the whole request: keeps the connection alive */
        rq->body_max = 0;
        return MHD_YES;
    }

    ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!api_content_type_ok(rq->body_kind, ctype))
        return fail(s, conn, rq, 415, "the body must be application/json");
    rq->body_max = rq->body_kind == API_BODY_RAW ? API_DATA_MAX : API_JSON_BODY_MAX;
    clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen && api_parse_u64(clen, strlen(clen), &declared) == 0) {
        if (declared > rq->body_max)
            return fail(s, conn, rq, 413, "the body is too large (at most %zu bytes)",
                        rq->body_max);
        if (declared > 0) {
            rq->body = malloc(declared + 1);
            if (!rq->body)
                return fail(s, conn, rq, 500, "out of memory");
            rq->body_cap = declared + 1;
        }
    }
    return MHD_YES;
}

static enum MHD_Result absorb(struct api_req *rq, const char *data, size_t n)
{
    if (rq->too_big) {
        rq->discarded += n;
        return rq->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (n > rq->body_max - rq->body_len) {
        /* keep reading (to answer 413) but not keeping */
        rq->too_big = true;
        rq->discarded = rq->body_len + n;
        if (rq->body)
            explicit_bzero(rq->body, rq->body_cap);
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        return MHD_YES;
    }
    if (rq->body_len + n + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 4096;
        char *p;

        while (cap < rq->body_len + n + 1)
            cap *= 2;
        if (cap > rq->body_max + 1)
            cap = rq->body_max + 1;
        /* grow by hand so that the old copy can be wiped */
        p = malloc(cap);
        if (!p)
            return MHD_NO;
        if (rq->body) {
            memcpy(p, rq->body, rq->body_len);
            explicit_bzero(rq->body, rq->body_cap);
            free(rq->body);
        }
        rq->body = p;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    rq->body[rq->body_len] = '\0';
    return MHD_YES;
}

#define API_THREAD_NICE 19
#define API_URI_MAX 8192
#define API_HEADERS_MAX 100
#define API_HEADER_BYTES_MAX 16384
/* room for what the limits above refuse, so that the refusal is ours */
#define API_CONN_MEMORY (256 * 1024)

struct header_tally {
    unsigned count;
    size_t bytes;
};

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct header_tally *ht = cls;

    (void)kind;
    ht->count++;
    ht->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api_server *s = cls;
    struct api_req *rq = *con_cls;
    enum MHD_Result ret;

    (void)url;
    (void)version;
    if (!rq) {
        /* the URI log callback could not allocate: answer without state */
        return fail(s, conn, NULL, 500, "out of memory");
    }
    if (!rq->started) {
        rq->started = true;
        api_door_request_begins(s->door, conn);
        /*
         * libmicrohttpd's own limits answer in HTML: its memory pool is sized so that long
         * paths and header floods reach this point, where they get a problem+json.
         */
        if (strlen(rq->raw) > API_URI_MAX)
            return fail(s, conn, rq, 414, "the request target is longer than %d bytes",
                        API_URI_MAX);
        struct header_tally ht = { 0 };
        MHD_get_connection_values(conn, MHD_HEADER_KIND, tally_header, &ht);
        if (ht.count > API_HEADERS_MAX || ht.bytes > API_HEADER_BYTES_MAX)
            return fail(s, conn, rq, 431, "request headers too large (at most %d headers "
                        "and %d bytes)", API_HEADERS_MAX, API_HEADER_BYTES_MAX);
        return begin(s, conn, rq, method);
    }
    if (*upload_data_size) {
        if (rq->body_kind == API_BODY_NONE) {
            /* a body nobody asked for (GET with a body): read and drop it */
            rq->discarded += *upload_data_size;
            *upload_data_size = 0;
            return rq->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        ret = absorb(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ret;
    }
    if (rq->status)
        return MHD_YES; /* answered already */
    if (rq->too_big)
        return fail(s, conn, rq, 413, "the body is too large (at most %zu bytes)",
                    rq->body_max);
    return run(s, conn, rq);
}

/*
 * API work yields to I/O: each connection thread (libmicrohttpd makes one per connection)
 * lowers its own scheduling priority once, so the storage loop and the TOE's firmware keep
 * the CPU when the API is hammered.
 */
static void api_thread_yield_to_io(void)
{
    static __thread bool niced;

    if (!niced) {
        niced = true;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), API_THREAD_NICE) < 0)
            log_debug("api", "cannot lower the api thread's priority: %s", strerror(errno));
    }
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct api_req *rq = calloc(1, sizeof(*rq));

    api_thread_yield_to_io();
    (void)cls;
    (void)conn;
    if (!rq)
        return NULL;
    rq->raw = strdup(uri ? uri : "");
    if (!rq->raw) {
        free(rq);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    return rq;
}

/* The path for the log: no query (it is not needed, and keeps the line short). */
static void log_path(const char *raw, char *buf, size_t len)
{
    size_t j = 0;

    for (size_t i = 0; raw[i] && raw[i] != '?' && j + 1 < len && i < 200; i++) {
        unsigned char c = (unsigned char)raw[i];

        buf[j++] = c > 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[j] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api_req *rq = *con_cls;
    struct timespec t1;
    char path[224];
    double ms;

    api_door_request_ends(((struct api_server *)cls)->door, conn);
    if (!rq)
        return;
    *con_cls = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - rq->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - rq->t0.tv_nsec) / 1e6;
    log_path(rq->raw, path, sizeof(path));
    if (rq->status == 0) {
        log_info("api", "%s %s aborted (%s) %.1fms", rq->method_name[0] ? rq->method_name
                 : "-", path, toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                 : "connection closed", ms);
    } else if (rq->status >= 500) {
        log_warn("api", "%s %s %d %.1fms", rq->method_name, path, rq->status, ms);
    } else if (strcmp(rq->method_name, "GET") && strcmp(rq->method_name, "HEAD")) {
        /* what changed the appliance, and who was refused: the operator's audit trail */
        log_info("api", "%s %s %d %.1fms", rq->method_name, path, rq->status, ms);
    } else {
        /* reads (a dashboard polls every second): only when asked for */
        log_debug("api", "%s %s %d %.1fms", rq->method_name, path, rq->status, ms);
    }
    req_free(rq);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct api_server *s = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        api_door_conn_started(s->door, conn, socket_context);
    else
        api_door_conn_closed(s->door, socket_context);
}

/*
 * libmicrohttpd's own messages: most are about one connection (a TLS handshake that failed,
 * a request it could not parse), so a peer sets their rate; one goes out per LOG_RATE_MS.
 */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct api_server *s = cls;
    uint64_t left_out;
    char buf[512];
    size_t n;

    if (!log_rate_due(&s->log_mhd, &left_out))
        return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (left_out)
        log_warn("api", "http: %s (and %llu more http server messages since the last such "
                 "line)", buf, (unsigned long long)left_out);
    else
        log_warn("api", "http: %s", buf);
}

/* ---------------------------------------------------------------- listening */

static const struct sockspec_listen_opts api_listen_opts = {
    .what = "api", .backlog = 128, .unix_mode = 0660,
};

/* Listens on `spec` ("host:port" or "unix:/path"); a Unix path is kept to unlink at the end. */
static int listen_on(struct api_server *s, const char *spec, char *err, size_t errlen)
{
    int fd = sockspec_listen(spec, &api_listen_opts, s->addr, sizeof(s->addr), err, errlen);

    if (fd < 0)
        return fd;
    if (sockspec_is_unix(spec))
        snprintf(s->unix_path, sizeof(s->unix_path), "%s", spec + 5);
    s->listen_fd = fd;
    return 0;
}

/* ---------------------------------------------------------------- start, stop */

static char *dup_opt(const char *s, bool *ok)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static void server_free(struct api_server *s)
{
    api_door_free(s->door);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->unix_path[0])
        unlink(s->unix_path);
    if (s->tls_key) {
        explicit_bzero(s->tls_key, strlen(s->tls_key));
        free(s->tls_key);
    }
    free(s->tls_cert);
    free(s->listen);
    free(s->nbd_host);
    free(s->state_dir);
    api_history_stop(s->sh.history); /* no request runs any more */
    api_shared_fini(&s->sh);
    free(s);
}

struct api_server *api_server_start(const struct api_config *cfg, char *err, size_t errlen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    struct MHD_OptionItem tls_opts[API_TLS_OPTIONS + 1];
    struct api_server *s;
    bool ok = true;
    int ret;

    if (!cfg || !cfg->listen || !cfg->listen[0]) {
        snprintf(err, errlen, "no api listen address");
        errno = EINVAL;
        return NULL;
    }
    if (!cfg->token || !cfg->token[0]) {
        snprintf(err, errlen, "no api token: refusing to serve the api without one");
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    s->listen_fd = -1;
    api_shared_init(&s->sh);
    s->cfg = *cfg;
    s->ctx.cfg = &s->cfg;
    s->ctx.sh = &s->sh;
    s->listen = dup_opt(cfg->listen, &ok);
    s->nbd_host = dup_opt(cfg->nbd_host, &ok);
    s->state_dir = dup_opt(cfg->state_dir, &ok);
    s->tls_cert = dup_opt(cfg->tls_cert_pem, &ok);
    s->tls_key = dup_opt(cfg->tls_key_pem, &ok);
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        ret = -ENOMEM;
        goto out_free;
    }
    if (api_token_set(&s->sh.token, cfg->token) < 0) {
        snprintf(err, errlen, "the api token is longer than %d characters", API_TOKEN_MAX);
        ret = -EINVAL;
        goto out_free;
    }
    s->cfg.listen = s->listen;
    s->cfg.token = NULL; /* only the token's copy (token.c), compared in api_token_ok */
    s->cfg.nbd_host = s->nbd_host;
    s->cfg.state_dir = s->state_dir;
    s->cfg.tls_cert_pem = s->tls_cert;
    s->cfg.tls_key_pem = s->tls_key;
    ret = api_tls_options(&s->cfg, &flags, tls_opts, err, errlen);
    if (ret < 0)
        goto out_free;

    json_set_alloc_funcs(json_alloc, json_wipe_free);

    ret = listen_on(s, cfg->listen, err, errlen);
    if (ret < 0)
        goto out_free;

    api_limits_fill(&s->cfg.limits, &cfg->limits);
    /* before the first request can ask for it */
    s->sh.history = api_history_start(&s->cfg);
    if (!s->sh.history)
        log_warn("api", "no traffic history: cannot start its sampler: %s", strerror(errno));
    s->door = api_door_new(&s->cfg.limits, s->listen_fd, s->tls_cert != NULL);
    if (!s->door) {
        ret = -errno;
        snprintf(err, errlen, "cannot set up the api's listener: %s", strerror(-ret));
        goto out_free;
    }
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_CONNECTION_LIMIT,
                              api_door_mhd_limit(&s->cfg.limits),
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_CONN_MEMORY,
                              MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "cannot start the http server on \"%s\"", cfg->listen);
        ret = -EIO;
        goto out_free;
    }
    ret = api_door_start(s->door, s->mhd);
    if (ret < 0) {
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
        snprintf(err, errlen, "cannot start the api's listener thread: %s", strerror(-ret));
        goto out_free;
    }
    log_info("api", "listening on %s (%s)", s->addr, s->tls_cert ? "https" : "http");
    return s;

out_free:
    server_free(s);
    errno = -ret;
    return NULL;
}

/* The door stops accepting (and drops connections that have not sent a request yet). */
void api_server_quiesce(struct api_server *s)
{
    if (!s || !s->mhd || atomic_exchange(&s->quiesced, true))
        return;
    atomic_store(&s->sh.ready, 0);
    api_door_stop(s->door);
}

void api_server_stop(struct api_server *s)
{
    if (!s)
        return;
    atomic_store(&s->sh.ready, 0);
    if (s->mhd) {
        api_server_quiesce(s);
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
    }
    api_capture_shutdown(&s->ctx);
    server_free(s);
}
