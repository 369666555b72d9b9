/*
 * handlers.c - the endpoints of contract §3, run on libmicrohttpd's connection threads.
 *
 * Each handler validates first (validate.c), then calls the manager (blocking, bounded by
 * its call timeout), the broker or the TOE (thread-safe, quick), and answers with a view
 * (render.c) or a problem (problem.c). Secrets from a request are copied into stack
 * structures that are wiped before the handler returns.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_int.h"
#include "common/log.h"

/*
 * The TOE's functions are referenced weakly: a build without the emulated TOE (TOE_MK=)
 * links no toe_emu/ objects, and then cfg->toe is always NULL and none of these is called.
 */
#pragma weak toe_get_info
#pragma weak toe_get_counters
#pragma weak toe_get_faults
#pragma weak toe_set_faults
#pragma weak toe_set_link
#pragma weak toe_capture_start
#pragma weak toe_capture_save
#pragma weak toe_capture_stop
#pragma weak toe_strerror

#define TOE_DEFAULT_RING (64u * 1024 * 1024)

static const char problem_oom[] =
    "{\"type\":\"urn:toegw:problem:internal-error\",\"title\":\"internal error\","
    "\"status\":500,\"detail\":\"out of memory\"}\n";

void api_resp_init(struct api_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

static void resp_oom(struct api_resp *r)
{
    free(r->body);
    r->status = 500;
    r->ctype = "application/problem+json";
    r->body = (char *)problem_oom;
    r->len = sizeof(problem_oom) - 1;
    r->body_static = true;
}

void api_resp_problem(struct api_resp *r, const struct api_err *e)
{
    r->status = e->status;
    r->ctype = "application/problem+json";
    r->body = api_problem_render(e, &r->len);
    if (!r->body)
        resp_oom(r);
}

void api_resp_json(struct api_resp *r, int status, json_t *j)
{
    if (!j) {
        resp_oom(r);
        return;
    }
    r->status = status;
    r->ctype = "application/json";
    r->body = api_json_dump(j, &r->len);
    json_decref(j);
    if (!r->body)
        resp_oom(r);
}

static void resp_err(struct api_resp *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void resp_err(struct api_resp *r, int status, const char *fmt, ...)
{
    struct api_err e;
    va_list ap;

    va_start(ap, fmt);
    api_err_vset(&e, status, fmt, ap);
    va_end(ap);
    api_resp_problem(r, &e);
}

static void resp_empty(struct api_resp *r, int status)
{
    r->status = status;
    r->body = NULL;
    r->len = 0;
}

static bool is_get(enum api_method m)
{
    return m == API_M_GET || m == API_M_HEAD;
}

/* The services a handler needs; 503 when the appliance runs without them. */
static struct sto_mgr *need_mgr(struct api_server *s, struct api_resp *r)
{
    struct sto_mgr *m = api_server_cfg(s)->mgr;

    if (!m)
        resp_err(r, 503, "the storage manager is not running");
    return m;
}

static struct stk_broker *need_broker(struct api_server *s, struct api_resp *r)
{
    struct stk_broker *b = api_server_cfg(s)->broker;

    if (!b)
        resp_err(r, 503, "the offload broker is not running");
    return b;
}

static struct toe_dev *need_toe(struct api_server *s, struct api_resp *r)
{
    struct toe_dev *t = api_server_cfg(s)->toe;

    if (!t)
        resp_err(r, 409, "the appliance runs without a toe (--no-toe)");
    return t;
}

static const char *toe_why(void)
{
    const char *m = toe_strerror ? toe_strerror() : NULL;

    return m && m[0] ? m : "the toe refused it";
}

/* ---------------------------------------------------------------- health, page, metrics */

static void h_page(struct api_resp *r)
{
    r->status = 200;
    r->ctype = "text/html; charset=utf-8";
    r->body = (char *)api_web_page(&r->len);
    r->body_static = true;
}

static void h_livez(struct api_resp *r)
{
    api_resp_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(struct api_server *s, struct api_resp *r)
{
    if (api_server_ready(s))
        api_resp_json(r, 200, json_pack("{s:s}", "status", "ready"));
    else
        resp_err(r, 503, "not ready: starting up or shutting down");
}

static void h_metrics(struct api_server *s, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    struct sto_session_view *sess = NULL;
    struct sto_volume_view *vols = NULL;
    struct stk_reservation *res = NULL;
    struct api_metrics_in in;
    struct api_buf b;

    memset(&in, 0, sizeof(in));
    in.ready = api_server_ready(s);
    if (cfg->broker) {
        in.have_tcp[STK_STACK_HOST] =
            stk_tcp_counters(cfg->broker, STK_STACK_HOST, &in.tcp[STK_STACK_HOST]) == 0;
        if (cfg->toe)
            in.have_tcp[STK_STACK_TOE] =
                stk_tcp_counters(cfg->broker, STK_STACK_TOE, &in.tcp[STK_STACK_TOE]) == 0;
        stk_broker_stats(cfg->broker, &in.broker);
        in.have_broker = true;
        if (stk_list_reservations(cfg->broker, &res, &in.nreservations) < 0)
            in.nreservations = 0;
    }
    if (cfg->toe && toe_get_info(cfg->toe, &in.toe_info) == 0 &&
        toe_get_counters(cfg->toe, &in.toe) == 0)
        in.have_toe = true;
    if (cfg->mgr) {
        if (sto_mgr_list_sessions(cfg->mgr, &sess, &in.nsessions) < 0) {
            sess = NULL;
            in.nsessions = 0;
        }
        if (sto_mgr_list_volumes(cfg->mgr, &vols, &in.nvolumes) < 0) {
            vols = NULL;
            in.nvolumes = 0;
        }
    }
    in.sessions = sess;
    in.volumes = vols;
    if (cfg->nbd) {
        nbds_server_stats(cfg->nbd, &in.nbd);
        in.have_nbd = true;
    }
    api_server_counts(s, in.api_requests);

    api_buf_init(&b);
    api_metrics_render(&in, &b);
    r->body = api_buf_steal(&b, &r->len);
    if (!r->body) {
        resp_oom(r);
    } else {
        r->status = 200;
        r->ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    free(res);
    free(sess);
    free(vols);
}

/* ---------------------------------------------------------------- stacks */

/* The TOE's entry, with the broker's view of its TCP counters when there is one. */
static json_t *toe_view_full(const struct api_config *cfg)
{
    struct stk_tcp_counters tcp;
    struct toe_counters tc;
    struct toe_faults f;
    struct toe_info info;
    bool have_tcp, have_tc, have_f;

    if (!cfg->toe || toe_get_info(cfg->toe, &info) < 0)
        return api_json_toe_stack(NULL, NULL, NULL, NULL);
    have_tcp = cfg->broker && stk_tcp_counters(cfg->broker, STK_STACK_TOE, &tcp) == 0;
    have_tc = toe_get_counters(cfg->toe, &tc) == 0;
    have_f = toe_get_faults(cfg->toe, &f) == 0;
    return api_json_toe_stack(&info, have_tcp ? &tcp : NULL, have_tc ? &tc : NULL,
                              have_f ? &f : NULL);
}

static json_t *host_view(const struct api_config *cfg)
{
    struct stk_tcp_counters tcp;

    if (cfg->broker && stk_tcp_counters(cfg->broker, STK_STACK_HOST, &tcp) == 0)
        return api_json_host_stack(&tcp);
    return api_json_host_stack(NULL);
}

static void h_stacks(struct api_server *s, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    json_t *arr = json_array();

    if (arr && (json_array_append_new(arr, host_view(cfg)) < 0 ||
                json_array_append_new(arr, toe_view_full(cfg)) < 0)) {
        json_decref(arr);
        arr = NULL;
    }
    api_resp_json(r, 200, arr);
}

static int toe_status(int err)
{
    switch (-err) {
    case EINVAL:
        return 422;
    case ENETDOWN:
    case EAGAIN:
        return 503;
    default:
        return 500;
    }
}

static int patch_link(struct toe_dev *toe, bool up, struct api_resp *r)
{
    int ret = toe_set_link(toe, up);

    if (ret < 0)
        resp_err(r, toe_status(ret), "cannot set the toe's link %s: %s", up ? "up" : "down",
                 toe_why());
    return ret;
}

static void h_stack_patch(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    struct api_toe_patch p;
    struct toe_faults f;
    struct toe_dev *toe;
    struct api_err e;
    int ret;

    if (api_parse_toe_patch(c->body, c->body_len, &p, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!(toe = need_toe(s, r)))
        return;
    /* link up before new faults, link down after them: a downed wire may refuse faults */
    if (p.set_link && p.link_up && patch_link(toe, true, r) < 0)
        return;
    if (p.set_faults) {
        memset(&f, 0, sizeof(f));
        if ((ret = toe_get_faults(toe, &f)) < 0) {
            resp_err(r, toe_status(ret), "cannot read the toe's wire faults: %s", toe_why());
            return;
        }
        api_toe_patch_merge(&p, &f);
        if ((ret = toe_set_faults(toe, &f)) < 0) {
            resp_err(r, toe_status(ret), "cannot set the toe's wire faults: %s", toe_why());
            return;
        }
    }
    if (p.set_link && !p.link_up && patch_link(toe, false, r) < 0)
        return;
    if (p.set_link)
        log_info("api", "toe link set %s", p.link_up ? "up" : "down");
    if (p.set_faults)
        log_info("api", "toe wire faults set: drop %g dup %g reorder %g corrupt %g seed %llu",
                 f.drop, f.dup, f.reorder, f.corrupt, (unsigned long long)f.seed);
    api_resp_json(r, 200, toe_view_full(cfg));
}

static void h_stack(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);

    if (c->method == API_M_PATCH) {
        h_stack_patch(s, c, r);
        return;
    }
    if (strcmp(c->route->arg, "toe") == 0)
        api_resp_json(r, 200, toe_view_full(cfg));
    else
        api_resp_json(r, 200, host_view(cfg));
}

/* ---------------------------------------------------------------- reservations */

static void set_location(struct api_resp *r, const char *coll, const char *id)
{
    snprintf(r->location, sizeof(r->location), "/api/v1/%s/%s", coll, id);
}

static void h_reservations(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct stk_broker *b = need_broker(s, r);
    struct stk_reservation *list = NULL, one;
    struct api_reserve_req q;
    struct api_err e;
    size_t n = 0;
    char id[24];
    json_t *arr;
    int ret;

    if (!b)
        return;
    if (is_get(c->method)) {
        if ((ret = stk_list_reservations(b, &list, &n)) < 0) {
            resp_err(r, 500, "cannot list reservations: %s", strerror(-ret));
            return;
        }
        arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            if (json_array_append_new(arr, api_json_reservation(&list[i])) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        free(list);
        api_resp_json(r, 200, arr);
        return;
    }
    if (api_parse_reserve_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    ret = stk_reserve(b, q.holder, q.port, q.stack, &one);
    switch (-ret) {
    case 0:
        break;
    case EADDRINUSE:
        resp_err(r, 409, "port %u is taken on the host or the toe stack", q.port);
        return;
    case ERANGE:
        resp_err(r, 422, "port %u is outside the broker's port range", q.port);
        return;
    case ENOSPC:
        resp_err(r, 409, "no free port is left in the broker's port range");
        return;
    case EINVAL:
        resp_err(r, 422, "the broker refused the reservation as invalid");
        return;
    default:
        resp_err(r, 500, "cannot reserve a port: %s", strerror(-ret));
        return;
    }
    snprintf(id, sizeof(id), "%llu", (unsigned long long)one.id);
    set_location(r, "reservations", id);
    api_resp_json(r, 201, api_json_reservation(&one));
}

static void h_reservation(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct stk_broker *b = need_broker(s, r);
    struct stk_reservation one;
    uint64_t id;
    int ret;

    if (!b)
        return;
    if (api_parse_u64(c->route->arg, strlen(c->route->arg), &id) < 0) {
        resp_err(r, 404, "no reservation \"%s\"", c->route->arg);
        return;
    }
    ret = is_get(c->method) ? stk_get_reservation(b, id, &one) : stk_unreserve(b, id);
    switch (-ret) {
    case 0:
        break;
    case ENOENT:
        resp_err(r, 404, "no reservation \"%s\"", c->route->arg);
        return;
    case EBUSY:
        resp_err(r, 409, "reservation \"%s\" is in use by a connection", c->route->arg);
        return;
    default:
        resp_err(r, 500, "reservation \"%s\": %s", c->route->arg, strerror(-ret));
        return;
    }
    if (is_get(c->method))
        api_resp_json(r, 200, api_json_reservation(&one));
    else
        resp_empty(r, 204);
}

/* ---------------------------------------------------------------- connections, discovery */

/*
 * The table's rendered body, reused for CONN_CACHE_MS: a dashboard or a monitoring loop may
 * ask many times a second, and the I/O path wants that CPU (the rows come from a snapshot
 * of the same age anyway: stacks/table.c).
 */
#define CONN_CACHE_MS 50
static pthread_mutex_t conn_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char *conn_cache_body;
static size_t conn_cache_len;
static struct timespec conn_cache_at;
static const struct api_server *conn_cache_srv;

static bool conn_cache_answer(const struct api_server *s, struct api_resp *r)
{
    struct timespec now;
    bool hit = false;

    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&conn_cache_lock);
    long ms = (now.tv_sec - conn_cache_at.tv_sec) * 1000 +
              (now.tv_nsec - conn_cache_at.tv_nsec) / 1000000;
    if (conn_cache_body && conn_cache_srv == s && ms >= 0 && ms < CONN_CACHE_MS) {
        char *copy = malloc(conn_cache_len + 1);
        if (copy) {
            memcpy(copy, conn_cache_body, conn_cache_len + 1);
            r->status = 200;
            r->ctype = "application/json";
            r->body = copy;
            r->len = conn_cache_len;
            hit = true;
        }
    }
    pthread_mutex_unlock(&conn_cache_lock);
    return hit;
}

static void conn_cache_store(const struct api_server *s, const struct api_resp *r)
{
    char *copy;

    if (r->status != 200 || !r->body)
        return;
    copy = malloc(r->len + 1);
    if (!copy)
        return;
    memcpy(copy, r->body, r->len);
    copy[r->len] = '\0';
    pthread_mutex_lock(&conn_cache_lock);
    free(conn_cache_body);
    conn_cache_body = copy;
    conn_cache_len = r->len;
    conn_cache_srv = s;
    clock_gettime(CLOCK_MONOTONIC, &conn_cache_at);
    pthread_mutex_unlock(&conn_cache_lock);
}

/*
 * Answers to GET /connections are paced to CONN_PACE_PER_S a second over all clients: a
 * polling loop has nothing to gain from more (the table refreshes every CONN_CACHE_MS), and
 * a client that asks faster waits here instead of spending, in its own process, the CPU the
 * data path needs.
 */
#define CONN_PACE_PER_S 100
static pthread_mutex_t conn_pace_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec conn_pace_next;

static void conn_pace(void)
{
    struct timespec now, at;

    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&conn_pace_lock);
    if (conn_pace_next.tv_sec < now.tv_sec ||
        (conn_pace_next.tv_sec == now.tv_sec && conn_pace_next.tv_nsec < now.tv_nsec))
        conn_pace_next = now;
    at = conn_pace_next;
    conn_pace_next.tv_nsec += 1000000000L / CONN_PACE_PER_S;
    if (conn_pace_next.tv_nsec >= 1000000000L) {
        conn_pace_next.tv_sec++;
        conn_pace_next.tv_nsec -= 1000000000L;
    }
    pthread_mutex_unlock(&conn_pace_lock);
    /* a wait longer than a second means a crowd: answer now rather than pile up */
    if (at.tv_sec - now.tv_sec < 1)
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
}

static void h_connections(struct api_server *s, struct api_resp *r)
{
    struct stk_broker *b = need_broker(s, r);
    struct stk_conn_row *rows = NULL;
    size_t n = 0;
    json_t *arr;
    int ret;

    if (!b)
        return;
    conn_pace();
    if (conn_cache_answer(s, r))
        return;
    if ((ret = stk_list_connections(b, &rows, &n)) < 0) {
        resp_err(r, 500, "cannot list connections: %s", strerror(-ret));
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_json_conn_row(&rows[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(rows);
    api_resp_json(r, 200, arr);
    conn_cache_store(s, r);
}

static void h_discovery(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct sto_mgr *m = need_mgr(s, r);
    struct isc_target_list *list = NULL;
    struct api_discovery_req q;
    struct sto_result res;
    struct api_err e;
    int ret;

    if (!m)
        return;
    if (api_parse_discovery_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    memset(&res, 0, sizeof(res));
    ret = sto_mgr_discover(m, q.portal, q.stack, &q.chap, &list, &res);
    explicit_bzero(&q, sizeof(q));
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    api_resp_json(r, 200, api_json_targets(list));
    if (list)
        isc_target_list_free(list);
}

/* ---------------------------------------------------------------- sessions */

static json_t *session_with_luns(struct sto_mgr *m, const struct sto_session_view *v)
{
    struct sto_volume_view *vols = NULL;
    size_t nv = 0;
    json_t *j;

    if (sto_mgr_list_volumes(m, &vols, &nv) < 0) {
        vols = NULL;
        nv = 0;
    }
    j = api_json_session(v, vols, nv);
    free(vols);
    return j;
}

static void h_sessions(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct sto_mgr *m = need_mgr(s, r);
    struct sto_session_view *list = NULL, *one;
    struct sto_volume_view *vols = NULL;
    struct sto_session_req req;
    struct sto_result res;
    char id[STO_ID_MAX];
    struct api_err e;
    size_t n = 0, nv = 0;
    json_t *arr;
    int ret;

    if (!m)
        return;
    if (is_get(c->method)) {
        if ((ret = sto_mgr_list_sessions(m, &list, &n)) < 0) {
            api_err_from_sto(&e, ret, NULL);
            api_resp_problem(r, &e);
            return;
        }
        if (sto_mgr_list_volumes(m, &vols, &nv) < 0) {
            vols = NULL;
            nv = 0;
        }
        arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            if (json_array_append_new(arr, api_json_session(&list[i], vols, nv)) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        free(list);
        free(vols);
        api_resp_json(r, 200, arr);
        return;
    }

    if (api_parse_session_req(c->body, c->body_len, &req, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    memset(&res, 0, sizeof(res));
    memset(id, 0, sizeof(id));
    ret = sto_mgr_session_create(m, &req, id, &res);
    explicit_bzero(&req, sizeof(req));
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    id[sizeof(id) - 1] = '\0';
    set_location(r, "sessions", id);
    one = calloc(1, sizeof(*one));
    if (one && sto_mgr_get_session(m, id, one) == 0) {
        api_resp_json(r, 201, session_with_luns(m, one));
    } else {
        /* logged in, then gone already (logged out by another request): say so briefly */
        api_resp_json(r, 201, json_pack("{s:s, s:s}", "id", id, "state", "logged_out"));
    }
    free(one);
}

static void h_session(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct sto_mgr *m = need_mgr(s, r);
    struct sto_session_view *one;
    struct sto_result res;
    struct api_err e;
    int ret;

    if (!m)
        return;
    if (c->method == API_M_DELETE) {
        memset(&res, 0, sizeof(res));
        ret = sto_mgr_session_delete(m, c->route->arg, &res);
        if (ret < 0) {
            if (ret == -ENOENT && res.cls == STO_ERR_NONE)
                res.cls = STO_ERR_NOT_FOUND;
            api_err_from_sto(&e, ret, &res);
            api_resp_problem(r, &e);
            return;
        }
        resp_empty(r, 204);
        return;
    }
    one = calloc(1, sizeof(*one));
    if (!one) {
        resp_oom(r);
        return;
    }
    ret = sto_mgr_get_session(m, c->route->arg, one);
    if (ret == -ENOENT)
        resp_err(r, 404, "no session \"%s\"", c->route->arg);
    else if (ret < 0)
        resp_err(r, ret == -ETIMEDOUT || ret == -EAGAIN ? 503 : 500,
                 "cannot read session \"%s\": %s", c->route->arg, strerror(-ret));
    else
        api_resp_json(r, 200, session_with_luns(m, one));
    free(one);
}

/* ---------------------------------------------------------------- volumes */

static void h_volumes(struct api_server *s, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    struct sto_mgr *m = need_mgr(s, r);
    struct sto_volume_view *vols = NULL;
    size_t n = 0;
    json_t *arr;
    int ret;

    if (!m)
        return;
    if ((ret = sto_mgr_list_volumes(m, &vols, &n)) < 0) {
        resp_err(r, 503, "cannot list volumes: %s", strerror(-ret));
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_json_volume(&vols[i], cfg->nbd_host,
                                                       cfg->nbd_port)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(vols);
    api_resp_json(r, 200, arr);
}

/* Look the volume up: false (with the answer in r) when it does not exist. */
static bool get_volume(struct sto_mgr *m, const char *id, struct sto_volume_view *v,
                       struct api_resp *r)
{
    int ret = sto_mgr_get_volume(m, id, v);

    if (ret == -ENOENT) {
        resp_err(r, 404, "no volume \"%s\"", id);
        return false;
    }
    if (ret < 0) {
        resp_err(r, ret == -ETIMEDOUT || ret == -EAGAIN ? 503 : 500,
                 "cannot read volume \"%s\": %s", id, strerror(-ret));
        return false;
    }
    return true;
}

static void h_volume(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    struct sto_mgr *m = need_mgr(s, r);
    struct sto_volume_view v;

    if (!m || !get_volume(m, c->route->arg, &v, r))
        return;
    api_resp_json(r, 200, api_json_volume(&v, cfg->nbd_host, cfg->nbd_port));
}

/* Alignment, size and range checks of a data request; false with the answer in r. */
static bool check_range(const struct sto_volume_view *v, uint64_t off, uint64_t len,
                        struct api_resp *r)
{
    uint32_t bs = v->block_size;

    if (bs == 0) {
        resp_err(r, 503, "volume \"%s\" has no block size yet", v->id);
        return false;
    }
    if (len > API_DATA_MAX) {
        resp_err(r, 422, "length must be at most %d bytes a request", API_DATA_MAX);
        return false;
    }
    if (off % bs || len % bs) {
        resp_err(r, 422, "offset and length must be multiples of the block size (%u bytes)",
                 bs);
        return false;
    }
    if (off > v->size_bytes || len > v->size_bytes - off) {
        snprintf(r->content_range, sizeof(r->content_range), "bytes */%llu",
                 (unsigned long long)v->size_bytes);
        resp_err(r, 416, "range %llu+%llu is past the end of volume \"%s\" (%llu bytes)",
                 (unsigned long long)off, (unsigned long long)len, v->id,
                 (unsigned long long)v->size_bytes);
        return false;
    }
    return true;
}

static void h_volume_data(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct sto_mgr *m = need_mgr(s, r);
    bool reading = is_get(c->method);
    struct api_data_query q;
    struct sto_volume_view v;
    struct sto_result res;
    struct api_err e;
    uint64_t len;
    void *buf;
    int ret;

    if (!m)
        return;
    if (api_parse_data_query(c->route->query, reading, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!get_volume(m, c->route->arg, &v, r))
        return;
    if (reading) {
        if (q.have_length)
            len = q.length;
        else if (q.offset <= v.size_bytes)
            len = v.size_bytes - q.offset < API_DATA_MAX ? v.size_bytes - q.offset
                                                         : API_DATA_MAX;
        else
            len = 0;
    } else {
        len = c->body_len;
        if (len == 0) {
            resp_err(r, 422, "the body is empty: nothing to write");
            return;
        }
    }
    if (!check_range(&v, q.offset, len, r))
        return;
    memset(&res, 0, sizeof(res));
    if (!reading) {
        ret = sto_mgr_volume_write(m, v.id, q.offset, (uint32_t)len, c->body, &res);
        if (ret < 0) {
            api_err_from_sto(&e, ret, &res);
            api_resp_problem(r, &e);
            return;
        }
        resp_empty(r, 204);
        return;
    }
    buf = malloc(len ? len : 1);
    if (!buf) {
        resp_oom(r);
        return;
    }
    if (len) {
        ret = sto_mgr_volume_read(m, v.id, q.offset, (uint32_t)len, buf, &res);
        if (ret < 0) {
            free(buf);
            api_err_from_sto(&e, ret, &res);
            api_resp_problem(r, &e);
            return;
        }
    }
    r->status = 200;
    r->ctype = "application/octet-stream";
    r->body = buf;
    r->len = len;
}

/* ---------------------------------------------------------------- capture */

static json_t *capture_view(struct api_server *s)
{
    struct api_capture_state st;
    struct toe_counters tc;
    char ts[32];
    struct toe_dev *toe = api_server_cfg(s)->toe;
    uint64_t frames = 0;

    api_capture_lock(s);
    api_capture_get(s, &st);
    api_capture_unlock(s);
    if (st.running && toe && toe_get_counters(toe, &tc) == 0)
        frames = tc.capture_frames;
    if (!st.running)
        return json_pack("{s:b}", "running", 0);
    return json_pack("{s:b, s:I, s:s, s:I, s:s}", "running", 1, "ring_bytes",
                     (json_int_t)st.ring_bytes, "started",
                     api_rfc3339(st.started, ts, sizeof(ts)), "frames",
                     (json_int_t)(frames > INT64_MAX ? INT64_MAX : frames), "download",
                     "/api/v1/capture.pcap");
}

static void h_capture_start(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    struct api_capture_state st;
    struct api_capture_req q;
    struct toe_dev *toe;
    struct api_err e;
    int ret;

    if (api_parse_capture_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!(toe = need_toe(s, r)))
        return;
    api_capture_lock(s);
    ret = toe_capture_start(toe, NULL, q.ring_bytes);
    if (ret == 0) {
        st.running = true;
        st.ring_bytes = q.ring_bytes ? q.ring_bytes : TOE_DEFAULT_RING;
        st.started = time(NULL);
        api_capture_set(s, &st);
    }
    api_capture_unlock(s);
    if (ret < 0) {
        resp_err(r, toe_status(ret), "cannot start a capture: %s", toe_why());
        return;
    }
    snprintf(r->location, sizeof(r->location), "/api/v1/capture.pcap");
    api_resp_json(r, 201, capture_view(s));
}

static void h_capture_stop(struct api_server *s, struct api_resp *r)
{
    struct api_capture_state st;
    struct toe_dev *toe;
    int ret;

    if (!(toe = need_toe(s, r)))
        return;
    api_capture_lock(s);
    api_capture_get(s, &st);
    if (!st.running) {
        api_capture_unlock(s);
        resp_err(r, 404, "no capture is running");
        return;
    }
    ret = toe_capture_stop(toe);
    memset(&st, 0, sizeof(st));
    api_capture_set(s, &st);
    api_capture_unlock(s);
    if (ret < 0)
        resp_err(r, toe_status(ret), "cannot stop the capture: %s", toe_why());
    else
        resp_empty(r, 204);
}

/*
 * Save the in-memory capture to a private file under the state directory, open it and
 * unlink it at once: the response streams from the open descriptor, and nothing is left
 * behind if the client goes away.
 */
static void h_capture_pcap(struct api_server *s, struct api_resp *r)
{
    const struct api_config *cfg = api_server_cfg(s);
    const char *dir = cfg->state_dir && cfg->state_dir[0] ? cfg->state_dir : "/tmp";
    struct api_capture_state st;
    struct toe_dev *toe;
    char path[4096];
    struct stat sb;
    int fd, ret;

    if (!(toe = need_toe(s, r)))
        return;
    if (snprintf(path, sizeof(path), "%s/.capture-XXXXXX.pcap", dir) >= (int)sizeof(path)) {
        resp_err(r, 500, "the state directory's path is too long");
        return;
    }
    api_capture_lock(s);
    api_capture_get(s, &st);
    if (!st.running) {
        api_capture_unlock(s);
        resp_err(r, 404, "no capture is running: start one with POST /api/v1/capture");
        return;
    }
    fd = mkstemps(path, 5);
    if (fd < 0) {
        ret = -errno;
        api_capture_unlock(s);
        resp_err(r, 500, "cannot create a capture file in the state directory: %s",
                 strerror(-ret));
        return;
    }
    close(fd);
    ret = toe_capture_save(toe, path);
    fd = ret == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (ret == 0 && fd < 0)
        ret = -errno;
    unlink(path);
    api_capture_unlock(s);
    if (ret < 0) {
        resp_err(r, toe_status(ret), "cannot save the capture: %s",
                 fd < 0 && ret != -EINVAL ? strerror(-ret) : toe_why());
        return;
    }
    if (fstat(fd, &sb) < 0) {
        close(fd);
        resp_err(r, 500, "cannot size the capture file: %s", strerror(errno));
        return;
    }
    r->status = 200;
    r->ctype = "application/vnd.tcpdump.pcap";
    r->disposition = "attachment; filename=\"toe.pcap\"";
    r->fd = fd;
    r->len = (size_t)sb.st_size;
}

static void h_capture(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    if (c->method == API_M_POST)
        h_capture_start(s, c, r);
    else if (c->method == API_M_DELETE)
        h_capture_stop(s, r);
    else
        api_resp_json(r, 200, capture_view(s));
}

/* ---------------------------------------------------------------- dispatch */

void api_handle(struct api_server *s, const struct api_call *c, struct api_resp *r)
{
    api_resp_init(r);
    switch (c->route->id) {
    case API_R_PAGE:
        h_page(r);
        break;
    case API_R_LIVEZ:
        h_livez(r);
        break;
    case API_R_READYZ:
        h_readyz(s, r);
        break;
    case API_R_METRICS:
        h_metrics(s, r);
        break;
    case API_R_STACKS:
        h_stacks(s, r);
        break;
    case API_R_STACK:
        h_stack(s, c, r);
        break;
    case API_R_RESERVATIONS:
        h_reservations(s, c, r);
        break;
    case API_R_RESERVATION:
        h_reservation(s, c, r);
        break;
    case API_R_CONNECTIONS:
        h_connections(s, r);
        break;
    case API_R_DISCOVERY:
        h_discovery(s, c, r);
        break;
    case API_R_SESSIONS:
        h_sessions(s, c, r);
        break;
    case API_R_SESSION:
        h_session(s, c, r);
        break;
    case API_R_VOLUMES:
        h_volumes(s, r);
        break;
    case API_R_VOLUME:
        h_volume(s, c, r);
        break;
    case API_R_VOLUME_DATA:
        h_volume_data(s, c, r);
        break;
    case API_R_CAPTURE:
        h_capture(s, c, r);
        break;
    case API_R_CAPTURE_PCAP:
        h_capture_pcap(s, r);
        break;
    default:
        resp_err(r, 404, "no such resource");
        break;
    }
}
