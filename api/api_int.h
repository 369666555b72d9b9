/*
 * api_int.h - the REST API's internals, shared by the api/ sources and the unit tests.
 *
 * The pure parts live apart from the HTTP plumbing so they can be tested without a
 * daemon: the route table and routing of raw request paths (routes.c), request bodies
 * and query strings (validate.c), problem+json and status mapping (problem.c), the counter
 * tables (counters.c), JSON views of the appliance's objects (render.c) and the Prometheus
 * exposition (metrics.c). server.c binds them to libmicrohttpd; the h_*.c files run the
 * endpoints against the manager, the broker and the TOE (through struct api_toe_ops), with
 * a struct api_ctx from the server and the answer helpers of resp.c.
 */
#ifndef TOEGW_API_API_INT_H
#define TOEGW_API_API_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/api.h"
#include "stacks/stacks.h"
#include "storage/pool.h"

#define API_JSON_BODY_MAX (64 * 1024)     /* JSON request bodies */
#define API_DATA_MAX (1024 * 1024)        /* volume data per request, either way */
#define API_NAME_MAX 223                  /* portals, IQNs, CHAP user names */
#define API_SECRET_MAX 255                /* CHAP secrets */
#define API_HOLDER_MAX (STK_NAME_MAX - 1) /* reservation holders */
#define API_ID_MAX 32                     /* longest id accepted in a path */
#define API_DETAIL_MAX 512
#define API_CAPTURE_RING_MIN (64 * 1024)
#define API_CAPTURE_RING_MAX (1024ull * 1024 * 1024)

/* ---------------------------------------------------------------- growable buffer */

/* A byte buffer that grows; after an allocation failure `oom` is set and writes stop. */
struct api_buf {
    char *data;    /* NUL-terminated while not oom; caller frees with api_buf_free */
    size_t len;
    size_t cap;
    bool oom;
};

void api_buf_init(struct api_buf *b);
void api_buf_free(struct api_buf *b);
void api_buf_put(struct api_buf *b, const void *p, size_t n);
void api_buf_puts(struct api_buf *b, const char *s);
void api_buf_printf(struct api_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the contents over (caller frees with free()); the buffer is empty afterwards. */
char *api_buf_steal(struct api_buf *b, size_t *len);

/* ---------------------------------------------------------------- errors (problem.c) */

/*
 * An error on its way to the client as RFC 9457 problem+json. `title` and `type` are
 * static strings chosen by status (or by the error class); `detail` is one lowercase line
 * that says what failed and why, and never quotes a secret or the request body.
 */
struct api_err {
    int status;
    const char *title;
    const char *type;
    char detail[API_DETAIL_MAX];
};

/* Set status, its default title and type, and the detail. */
void api_err_set(struct api_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_err_vset(struct api_err *e, int status, const char *fmt, va_list ap);
/* Like api_err_set, with an explicit title and type slug (a static string). */
void api_err_set_kind(struct api_err *e, int status, const char *title, const char *slug,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The manager's error class as HTTP status (INVALID 422, LOGIN 502, RANGE 416, ...). */
int api_status_of_class(enum sto_err_class cls);
/* A failed sto_pool_* call: ret (-errno) and its result into e. */
void api_err_from_sto(struct api_err *e, int ret, const struct sto_result *res);
/* The default title of a status ("not found"). */
const char *api_status_title(int status);
/* Render e as problem+json. Caller frees with free(); NULL when out of memory. */
char *api_problem_render(const struct api_err *e, size_t *len);

/* Constant-time check of `Authorization` header value against the token. */
bool api_auth_ok(const char *header, const char *token, size_t token_len);

/* ---------------------------------------------------------------- routing (routes.c) */

enum api_method {
    API_M_OTHER = 0,
    API_M_GET = 1u << 0,
    API_M_HEAD = 1u << 1,
    API_M_POST = 1u << 2,
    API_M_PUT = 1u << 3,
    API_M_PATCH = 1u << 4,
    API_M_DELETE = 1u << 5,
};

enum api_route_id {
    API_R_NONE = 0,
    API_R_PAGE,            /* GET / */
    API_R_LIVEZ,
    API_R_READYZ,
    API_R_METRICS,
    API_R_STACKS,          /* /api/v1/stacks */
    API_R_STACK,           /* /api/v1/stacks/{host|toe} */
    API_R_RESERVATIONS,
    API_R_RESERVATION,     /* /api/v1/reservations/{id} */
    API_R_CONNECTIONS,
    API_R_DISCOVERY,
    API_R_SESSIONS,
    API_R_SESSION,         /* /api/v1/sessions/{id} */
    API_R_VOLUMES,
    API_R_VOLUME,          /* /api/v1/volumes/{id} */
    API_R_VOLUME_DATA,     /* /api/v1/volumes/{id}/data */
    API_R_CAPTURE,         /* /api/v1/capture */
    API_R_CAPTURE_PCAP,    /* /api/v1/capture.pcap */
    API_R_INFO,            /* /api/v1/info */
    API_R_TOKEN,           /* /api/v1/token */
    API_R_OPENAPI,         /* /api/v1/openapi.json */
    API_R_ASSET,           /* /app.css, /app.js: the dashboard's style and script */
    API_R_HISTORY,         /* /api/v1/history */
};

/* What the body of a request to a route must be. */
enum api_body_kind {
    API_BODY_NONE = 0,     /* ignored (GET, DELETE) */
    API_BODY_JSON,         /* a JSON object, at most API_JSON_BODY_MAX */
    API_BODY_JSON_OPT,     /* a JSON object or nothing */
    API_BODY_RAW,          /* raw bytes, at most API_DATA_MAX */
};

struct api_ctx;
struct api_call;
struct api_history;
struct api_resp;
typedef void api_handler_fn(const struct api_ctx *x, const struct api_call *c,
                            struct api_resp *r);

/*
 * One row of the route table (routes.c): a path pattern, the methods this row serves, and
 * what they need. A pattern's segments are literals or placeholders: {id} (a session or
 * volume id), {num} (a decimal reservation id, not 0) or {a|b} (one of these words); the
 * placeholder's segment is the route's arg. Several rows may share a path (one per
 * handler); the path's allowed methods are the union of theirs.
 */
struct api_endpoint {
    enum api_route_id id;
    const char *pattern;        /* "/api/v1/sessions/{id}" */
    unsigned methods;           /* enum api_method bits */
    bool auth;                  /* needs the bearer token */
    enum api_body_kind body;    /* what the request carries */
    api_handler_fn *handler;
    const char *params;         /* the query parameters it takes, comma-separated; NULL: none;
                                   API_QUERY_OWN: the handler checks its own (422s) */
};

#define API_ROUTE_EPS 4         /* rows that may share one path */

struct api_route {
    enum api_route_id id;
    char arg[API_ID_MAX + 1];   /* the placeholder's segment of the path; "" when none */
    unsigned methods;           /* allowed enum api_method bits */
    bool auth;                  /* needs the bearer token */
    const char *query;          /* the raw query string after '?' (borrowed), or NULL */
    const struct api_endpoint *eps[API_ROUTE_EPS]; /* the rows of the path (static) */
    size_t neps;
};

/*
 * Match a raw request target (as the client sent it, before percent-decoding) to a route.
 * 0 with *out filled; -EINVAL for a malformed path (400: percent-encoding, dot segments,
 * backslashes, control bytes, not origin-form); -ENOENT for no such resource (404,
 * including ids that cannot exist). `out->query` points into `raw`.
 */
int api_route_match(const char *raw, struct api_route *out);
enum api_method api_method_parse(const char *m);
const char *api_method_name(enum api_method m);
/* "GET, HEAD, POST" for an Allow header. */
void api_allow_str(unsigned methods, char *buf, size_t len);
/* What a request with method m to route r carries as body (NONE for a method not allowed). */
enum api_body_kind api_route_body(const struct api_route *r, enum api_method m);
/* The row of route r that serves method m, or NULL. */
const struct api_endpoint *api_route_endpoint(const struct api_route *r, enum api_method m);
/* Every row of the route table (static), *n of them. */
const struct api_endpoint *api_route_table(size_t *n);
/* Whether a Content-Type fits a body kind (NULL or "" always fits). */
bool api_content_type_ok(enum api_body_kind kind, const char *ctype);

/* Session ids "s-" + hex, volume ids "v-" + hex, reservation ids decimal. */
bool api_id_valid(const char *s, size_t n);

/* ---------------------------------------------------------------- inputs (validate.c) */

/* Parse decimal digits only (no sign, space or prefix) without overflow. 0 or -EINVAL. */
int api_parse_u64(const char *s, size_t n, uint64_t *out);

struct api_data_query {
    bool have_offset, have_length;
    uint64_t offset, length;
};
/*
 * The query of /volumes/{id}/data: offset (GET and PUT) and length (GET only). Rejects
 * unknown or repeated keys, percent-encoding, empty and non-decimal values (422 in e).
 */
int api_parse_data_query(const char *query, bool allow_length, struct api_data_query *out,
                         struct api_err *e);

/* Parse a body into a JSON object: 400 when it is not JSON or not an object. */
int api_parse_object(const char *body, size_t len, json_t **out, struct api_err *e);

/* POST /sessions. Secrets land in out->chap: wipe it (explicit_bzero) when done. */
int api_parse_session_req(const char *body, size_t len, struct sto_session_req *out,
                          struct api_err *e);

struct api_reserve_req {
    char holder[STK_NAME_MAX];
    uint16_t port;               /* 0: any free port of the range */
    enum stk_policy stack;
    bool has_uid;                /* "uid": only a broker socket client of that uid */
    uid_t uid;
};
int api_parse_reserve_req(const char *body, size_t len, struct api_reserve_req *out,
                          struct api_err *e);

struct api_discovery_req {
    char portal[STO_NAME_MAX];
    enum stk_policy stack;
    struct sto_chap chap;        /* wipe when done */
};
int api_parse_discovery_req(const char *body, size_t len, struct api_discovery_req *out,
                            struct api_err *e);

/* PATCH /stacks/toe: which parts were given, and their values. */
enum {
    API_FAULT_DROP = 1u << 0,
    API_FAULT_DUP = 1u << 1,
    API_FAULT_REORDER = 1u << 2,
    API_FAULT_CORRUPT = 1u << 3,
    API_FAULT_SEED = 1u << 4,
};
struct api_toe_patch {
    bool set_link;
    bool link_up;
    unsigned fault_mask;         /* API_FAULT_* given in "faults" (0: no "faults") */
    bool set_faults;
    struct api_toe_faults faults; /* values of the given keys */
};
int api_parse_toe_patch(const char *body, size_t len, struct api_toe_patch *out,
                        struct api_err *e);
/* Merge the given fault keys into cur (PATCH semantics: absent keys stay as they are). */
void api_toe_patch_merge(const struct api_toe_patch *p, struct api_toe_faults *cur);

struct api_capture_req {
    size_t ring_bytes;           /* 0: the TOE's default (64 MiB) */
};
/*
 * PATCH /volumes/{id}: {"allow": [IDENTITY...]} and/or {"read_only": BOOL}; identities are
 * 1..127 bytes, no control characters or ':', distinct, at most STO_ALLOW_MAX.
 */
int api_parse_volume_patch(const char *body, size_t len, struct sto_access_patch *out,
                           struct api_err *e);

/* POST /capture: an empty body or {"ring_bytes":N}. */
int api_parse_capture_req(const char *body, size_t len, struct api_capture_req *out,
                          struct api_err *e);

/* ---------------------------------------------------------------- counters (counters.c) */

/*
 * One field of a counter structure as both views show it. The rows of one Prometheus
 * family follow each other in a table; the first row's help is the family's.
 */
struct api_counter {
    const char *json;            /* key in the JSON view; NULL: not shown there */
    const char *group;           /* the JSON sub-object the key is in; NULL: the view's own */
    const char *metric;          /* family without "toegw_"; NULL: not exported */
    const char *lkey, *lval;     /* the label telling the family's rows apart, or NULL */
    const char *type;            /* "counter" or "gauge" */
    const char *help;
    size_t off;                  /* of the field in its structure */
    unsigned char size;          /* 4 or 8: an unsigned field of that many bytes */
    bool ns;                     /* nanoseconds, shown as seconds */
};

struct api_counter_table {
    const struct api_counter *rows;  /* static */
    size_t n;
};

extern const struct api_counter_table api_tcp_table;      /* struct stk_tcp_counters */
extern const struct api_counter_table api_toe_wire_table; /* struct api_toe_dir_counters */
extern const struct api_counter_table api_toe_table;      /* struct api_toe_counters */
extern const struct api_counter_table api_session_table;  /* struct sto_session_view */
extern const struct api_counter_table api_volume_table;   /* struct sto_volume_view */

/* The value of row c in the structure at base. */
uint64_t api_counter_get(const struct api_counter *c, const void *base);

/* ---------------------------------------------------------------- JSON views (render.c) */

/* RFC 3339 UTC ("2026-11-24T19:27:17Z") into buf (at least 32 bytes). */
const char *api_rfc3339(time_t t, char *buf, size_t len);
/* An unsigned counter as a JSON integer (clamped to INT64_MAX). New reference. */
json_t *api_json_u64(uint64_t v);

/* Each returns a new reference (NULL when out of memory). None contains a secret. */
json_t *api_json_tcp_counters(const struct stk_tcp_counters *c);
json_t *api_json_host_stack(const struct stk_tcp_counters *c);
/* The TOE's entry; info NULL: {"name":"toe","state":"absent"} (--no-toe). */
json_t *api_json_toe_stack(const struct api_toe_info *info, const struct stk_tcp_counters *c,
                           const struct api_toe_counters *tc, const struct api_toe_faults *f);
json_t *api_json_reservation(const struct stk_reservation *r);
json_t *api_json_conn_row(const struct stk_conn_row *r);
json_t *api_json_targets(const struct isc_target_list *l);
/* `vols` (may be NULL): volumes of every session; those of s are listed under "luns". */
json_t *api_json_session(const struct sto_session_view *s, const struct sto_volume_view *vols,
                         size_t nvols);
/* Its "export" is an nbds:// URI when tls (the NBD server offers or requires TLS). */
json_t *api_json_volume(const struct sto_volume_view *v, const char *nbd_host,
                        uint16_t nbd_port, bool tls);
/* Dump a JSON value compactly with a trailing newline. Caller frees with free(). */
char *api_json_dump(const json_t *j, size_t *len);

/* ---------------------------------------------------------------- metrics (metrics.c) */

struct api_metrics_in {
    bool ready;
    bool have_tcp[2];                 /* indexed by enum stk_stack */
    struct stk_tcp_counters tcp[2];
    bool have_toe;
    struct api_toe_info toe_info;
    struct api_toe_counters toe;
    bool have_broker;
    struct stk_broker_stats broker;
    size_t nreservations;
    const struct sto_session_view *sessions;
    size_t nsessions;
    const struct sto_volume_view *volumes;
    size_t nvolumes;
    uint64_t api_requests[6];         /* answered requests by status class: [1..5]xx */
    bool have_nbd;
    struct nbds_stats nbd;
    bool names;                       /* label with targets, portals and addresses too (only
                                         when /metrics needs the token); else ids only */
    const struct api_info *info;      /* toegw_build_info; NULL: none */
};

/* Prometheus text exposition format 0.0.4, every family with # HELP and # TYPE. */
void api_metrics_render(const struct api_metrics_in *in, struct api_buf *out);
/* process_* (metrics_process.c): CPU, memory, descriptors, start time, from /proc/self. */
void api_metrics_process(struct api_buf *out);
/* toegw_build_info{version, and each library's} 1. */
void api_metrics_build_info(struct api_buf *out, const struct api_info *info);
/* Escape a label value (\\, \", \n) into out. */
void api_metrics_label(struct api_buf *out, const char *v);

/* ---------------------------------------------------------------- the page (web.c) */

/* The dashboard page, compiled into the binary. Borrowed, static. */
const char *api_web_page(size_t *len);
/* The page's files by path ("/app.js"): their bytes and media type; NULL when unknown. */
const char *api_web_asset(const char *path, size_t *len, const char **ctype);

/* ---------------------------------------------------------------- front door (door.c) */

/*
 * The thread that accepts API connections and hands each to libmicrohttpd once its
 * request header is complete, within the limits of struct api_limits. The hooks below are
 * called from MHD's callbacks; the door outlives the MHD daemon (free it after
 * MHD_stop_daemon).
 */
struct api_door;
struct MHD_Daemon;
struct MHD_Connection;

/* Defaults for the zero members of in (NULL: all defaults). */
void api_limits_fill(struct api_limits *out, const struct api_limits *in);
/* The connection limit to give MHD: a little above max_conns (see door.c). */
unsigned api_door_mhd_limit(const struct api_limits *lim);
/*
 * Watches lfd (borrowed, listening) once started; `tls`: the port speaks HTTPS only. NULL
 * with errno on failure.
 */
struct api_door *api_door_new(const struct api_limits *lim, int lfd, bool tls);
int api_door_start(struct api_door *d, struct MHD_Daemon *mhd);
/* Stop accepting and close the connections not handed over yet. */
void api_door_stop(struct api_door *d);
void api_door_free(struct api_door *d);
/* MHD_OPTION_NOTIFY_CONNECTION */
void api_door_conn_started(struct api_door *d, struct MHD_Connection *conn,
                           void **socket_context);
void api_door_conn_closed(struct api_door *d, void **socket_context);
/* A request's header is complete / its answer has been sent (the deadline runs again). */
void api_door_request_begins(struct api_door *d, struct MHD_Connection *conn);
void api_door_request_ends(struct api_door *d, struct MHD_Connection *conn);

/* What the first bytes of a connection say (door_sniff.c). */
enum api_sniff {
    API_SNIFF_WAIT,        /* not enough yet */
    API_SNIFF_READY,       /* a whole request header (HTTP), or a whole first TLS record */
    API_SNIFF_PLAIN,       /* plain HTTP on a port that speaks HTTPS only */
    API_SNIFF_JUNK,        /* neither HTTP nor TLS on an HTTPS port */
};
/* `tls`: the port speaks HTTPS only; `full`: b holds all the door peeks at once. */
enum api_sniff api_door_sniff(const unsigned char *b, size_t n, bool tls, bool full);

/* ---------------------------------------------------------------- HTTPS (tls.c) */

/* TLS 1.2 and 1.3 only, GnuTLS's normal ciphers otherwise. */
#define API_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define API_TLS_OPTIONS 3  /* MHD options api_tls_options adds at most */
struct MHD_OptionItem;
/*
 * The daemon flags and options of cfg's HTTPS (none for plain HTTP): *flags gets
 * MHD_USE_TLS, items the certificate, the key and the priorities, then MHD_OPTION_END
 * (items has room for API_TLS_OPTIONS + 1). 0, or -ENOTSUP with err when this
 * libmicrohttpd was built without TLS. The PEM strings must outlive the daemon.
 */
int api_tls_options(const struct api_config *cfg, unsigned *flags,
                    struct MHD_OptionItem *items, char *err, size_t errlen);

/* ---------------------------------------------------------------- the token (token.c) */

/* The bearer token every authenticated request must carry; rotated by POST /api/v1/token. */
struct api_token {
    pthread_rwlock_t lock;
    char tok[API_TOKEN_MAX + 1];       /* wiped when replaced and at the end */
    size_t len;
};

void api_token_init(struct api_token *t);
/* Set the first token: 0, or -EINVAL when it is empty or longer than API_TOKEN_MAX. */
int api_token_set(struct api_token *t, const char *tok);
/* Whether an Authorization header carries the token now (constant time). */
bool api_token_ok(struct api_token *t, const char *header);
void api_token_fini(struct api_token *t);

/* ---------------------------------------------------------------- endpoints (h_*.c) */

/* What a handler answers; server.c turns it into an HTTP response. */
struct api_resp {
    int status;
    const char *ctype;           /* static */
    char *body;                  /* malloc'd, handed over to the server; may be NULL */
    size_t len;
    bool body_static;            /* body is static (the page): do not free */
    int fd;                      /* >= 0: send this file (handed over), len bytes */
    char location[128];          /* Location header ("" none) */
    char allow[64];              /* Allow header ("" none) */
    char content_range[64];      /* Content-Range header ("" none) */
    const char *disposition;     /* Content-Disposition (static, or NULL) */
};

/* The TOE capture the API started (one at a time). */
struct api_capture_state {
    bool running;
    size_t ring_bytes;
    time_t started;
};

/*
 * What the endpoints share between requests, one per server (server.c owns it; set up with
 * api_shared_init, torn down with api_shared_fini once no request runs).
 */
struct api_shared {
    atomic_int ready;                    /* /readyz answers 200 */
    atomic_uint_least64_t counts[6];     /* answered requests by status class [1..5]xx */
    pthread_mutex_t capture_lock;        /* guards capture and the TOE's capture calls */
    struct api_capture_state capture;
    pthread_mutex_t conn_lock;           /* guards the conn_ members */
    char *conn_body;                     /* the cached /connections answer (owned) */
    size_t conn_len;
    struct timespec conn_at;             /* when conn_body was rendered (monotonic) */
    struct timespec conn_pace_next;      /* when the next /connections answer may go */
    struct timespec started;             /* when the server started (monotonic) */
    struct api_token token;              /* the bearer token */
    struct api_history *history;         /* the last ten minutes (history_int.h), or NULL */
};

void api_shared_init(struct api_shared *sh);
void api_shared_fini(struct api_shared *sh);

/* What a handler runs with: the server's configuration and shared state (both borrowed). */
struct api_ctx {
    const struct api_config *cfg;
    struct api_shared *sh;
};

struct api_call {
    enum api_method method;
    const struct api_route *route;
    const char *body;            /* the request body (borrowed) */
    size_t body_len;
};

/*
 * Query strings (query.c). api_query_check: every parameter of query is one of params
 * (comma-separated), given once, with a plain value (stack: toe or host); 0, or -EINVAL
 * with a 400 in e. api_query_filter: the objects of arr whose string members equal every
 * parameter's value (case-insensitive), parsed once; takes arr and returns the filtered
 * list (arr itself without a query; NULL when out of memory).
 */
#define API_QUERY_OWN "*"
int api_query_check(const char *params, const char *query, struct api_err *e);
json_t *api_query_filter(json_t *arr, const char *query);

/* Run the endpoint of c's route and method; 404/405 problems when there is none. */
void api_handle(const struct api_ctx *x, const struct api_call *c, struct api_resp *r);

/* Answers (resp.c). */
void api_resp_init(struct api_resp *r);
/* Answer with the error as problem+json. */
void api_resp_problem(struct api_resp *r, const struct api_err *e);
/* Answer with JSON (takes the reference of j; NULL answers 500 out of memory). */
void api_resp_json(struct api_resp *r, int status, json_t *j);
/* Answer with a problem of this status and detail. */
void api_resp_err(struct api_resp *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_resp_oom(struct api_resp *r);
void api_resp_empty(struct api_resp *r, int status);
/* Location: /api/v1/COLL/ID */
void api_resp_location(struct api_resp *r, const char *coll, const char *id);
/* The services a handler needs; NULL with the answer in r when the appliance runs without. */
struct sto_pool *api_need_pool(const struct api_ctx *x, struct api_resp *r);
struct stk_broker *api_need_broker(const struct api_ctx *x, struct api_resp *r);
/* The TOE's ops when the appliance has a TOE, else NULL (no answer made). */
const struct api_toe_ops *api_toe(const struct api_ctx *x);
const struct api_toe_ops *api_need_toe(const struct api_ctx *x, struct api_resp *r);
/* The HTTP status of a TOE op's failure, and its message. */
int api_toe_status(int err);
const char *api_toe_why(const struct api_toe_ops *ops);
bool api_is_get(enum api_method m);

/* h_health.c */
api_handler_fn api_h_page, api_h_livez, api_h_readyz, api_h_metrics, api_h_info;
/* h_stacks.c */
api_handler_fn api_h_stacks_list, api_h_stack_get, api_h_toe_patch;
/* h_reservations.c */
api_handler_fn api_h_reservations_list, api_h_reservation_create, api_h_reservation_get,
    api_h_reservation_delete;
/* h_connections.c */
api_handler_fn api_h_connections;
/* h_sessions.c */
api_handler_fn api_h_discovery, api_h_sessions_list, api_h_session_create,
    api_h_session_get, api_h_session_delete;
/* h_volumes.c */
api_handler_fn api_h_volumes_list, api_h_volume_get, api_h_volume_patch, api_h_volume_read,
    api_h_volume_write;
/* token.c */
api_handler_fn api_h_token_rotate;
/* web.c */
api_handler_fn api_h_asset;
/* h_history.c */
api_handler_fn api_h_history;
/* h_capture.c */
api_handler_fn api_h_capture_get, api_h_capture_start, api_h_capture_stop,
    api_h_capture_pcap;
/* h_openapi.c */
api_handler_fn api_h_openapi;
/* The OpenAPI document of this API (api/openapi.json), compiled in. Borrowed, static. */
const char *api_openapi_doc(size_t *len);
/* Stop a capture the API started (the server stops): no request runs any more. */
void api_capture_shutdown(const struct api_ctx *x);

#endif
