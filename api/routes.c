/*
 * routes.c - which endpoint a raw request target names, and what it accepts.
 *
 * Routing works on the target exactly as the client sent it (libmicrohttpd's URI log
 * callback hands it over before any percent-decoding), so "%2F" can never turn into a
 * path separator and "%2e%2e" never into a dot segment: no resource of this API needs
 * percent-encoding in its path, so any '%' there is refused outright.
 *
 * The route table below is the one place that says which paths exist, which methods each
 * takes, whether it needs the token, what body it carries and which handler runs it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"

enum api_method api_method_parse(const char *m)
{
    static const struct {
        const char *name;
        enum api_method m;
    } methods[] = {
        { "GET", API_M_GET },   { "HEAD", API_M_HEAD },     { "POST", API_M_POST },
        { "PUT", API_M_PUT },   { "PATCH", API_M_PATCH },   { "DELETE", API_M_DELETE },
    };

    if (!m)
        return API_M_OTHER;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].m;
    return API_M_OTHER;
}

const char *api_method_name(enum api_method m)
{
    switch (m) {
    case API_M_GET:
        return "GET";
    case API_M_HEAD:
        return "HEAD";
    case API_M_POST:
        return "POST";
    case API_M_PUT:
        return "PUT";
    case API_M_PATCH:
        return "PATCH";
    case API_M_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

void api_allow_str(unsigned methods, char *buf, size_t len)
{
    static const enum api_method order[] = {
        API_M_GET, API_M_HEAD, API_M_POST, API_M_PUT, API_M_PATCH, API_M_DELETE,
    };
    size_t pos = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int n;

        if (!(methods & order[i]))
            continue;
        n = snprintf(buf + pos, len - pos, "%s%s", pos ? ", " : "", api_method_name(order[i]));
        if (n < 0 || (size_t)n >= len - pos)
            return;
        pos += (size_t)n;
    }
}

/* Ids are short runs of [A-Za-z0-9_-]; anything else cannot name a resource. */
bool api_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > API_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Reservation ids are decimal (1..UINT64_MAX). */
static bool decimal_id(const char *s, size_t n)
{
    uint64_t v;

    return api_parse_u64(s, n, &v) == 0 && v != 0;
}

/* Bytes that may appear in a path we serve: RFC 3986 pchar less '%', plus '/'. */
static bool path_byte_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return strchr("-._~!$&'()*+,;=:@/", c) != NULL && c != '\0';
}

/* ---------------------------------------------------------------- the route table */

#define GET (API_M_GET | API_M_HEAD)

/*
 * Every endpoint of the API. The pages and probes need no token; everything under /api/
 * does (server.c asks for it there even on paths that match no row, so that an
 * unauthenticated client cannot tell which resources exist).
 */
static const struct api_endpoint api_table[] = {
    { API_R_PAGE, "/", GET, false, API_BODY_NONE, api_h_page, NULL },
    { API_R_LIVEZ, "/livez", GET, false, API_BODY_NONE, api_h_livez, NULL },
    { API_R_READYZ, "/readyz", GET, false, API_BODY_NONE, api_h_readyz, NULL },
    { API_R_METRICS, "/metrics", GET, false, API_BODY_NONE, api_h_metrics, NULL },
    { API_R_ASSET, "/{app.css|app.js}", GET, false, API_BODY_NONE, api_h_asset, NULL },
    { API_R_INFO, "/api/v1/info", GET, true, API_BODY_NONE, api_h_info, NULL },
    { API_R_TOKEN, "/api/v1/token", API_M_POST, true, API_BODY_NONE, api_h_token_rotate,
      NULL },
    { API_R_STACKS, "/api/v1/stacks", GET, true, API_BODY_NONE, api_h_stacks_list, NULL },
    { API_R_STACK, "/api/v1/stacks/{host|toe}", GET, true, API_BODY_NONE, api_h_stack_get,
      NULL },
    { API_R_STACK, "/api/v1/stacks/{toe}", API_M_PATCH, true, API_BODY_JSON,
      api_h_toe_patch, NULL },
    { API_R_RESERVATIONS, "/api/v1/reservations", GET, true, API_BODY_NONE,
      api_h_reservations_list, "stack,holder" },
    { API_R_RESERVATIONS, "/api/v1/reservations", API_M_POST, true, API_BODY_JSON,
      api_h_reservation_create, NULL },
    { API_R_RESERVATION, "/api/v1/reservations/{num}", GET, true, API_BODY_NONE,
      api_h_reservation_get, NULL },
    { API_R_RESERVATION, "/api/v1/reservations/{num}", API_M_DELETE, true, API_BODY_NONE,
      api_h_reservation_delete, NULL },
    { API_R_CONNECTIONS, "/api/v1/connections", GET, true, API_BODY_NONE,
      api_h_connections, "stack,state,owner,offload_state" },
    { API_R_DISCOVERY, "/api/v1/discovery", API_M_POST, true, API_BODY_JSON,
      api_h_discovery, NULL },
    { API_R_SESSIONS, "/api/v1/sessions", GET, true, API_BODY_NONE, api_h_sessions_list,
      "stack,state,target,portal" },
    { API_R_SESSIONS, "/api/v1/sessions", API_M_POST, true, API_BODY_JSON,
      api_h_session_create, NULL },
    { API_R_SESSION, "/api/v1/sessions/{id}", GET, true, API_BODY_NONE, api_h_session_get,
      NULL },
    { API_R_SESSION, "/api/v1/sessions/{id}", API_M_DELETE, true, API_BODY_NONE,
      api_h_session_delete, NULL },
    { API_R_VOLUMES, "/api/v1/volumes", GET, true, API_BODY_NONE, api_h_volumes_list,
      "session,target" },
    { API_R_VOLUME, "/api/v1/volumes/{id}", GET, true, API_BODY_NONE, api_h_volume_get,
      NULL },
    { API_R_VOLUME, "/api/v1/volumes/{id}", API_M_PATCH, true, API_BODY_JSON,
      api_h_volume_patch, NULL },
    { API_R_VOLUME_DATA, "/api/v1/volumes/{id}/data", GET, true, API_BODY_NONE,
      api_h_volume_read, API_QUERY_OWN },
    { API_R_VOLUME_DATA, "/api/v1/volumes/{id}/data", API_M_PUT, true, API_BODY_RAW,
      api_h_volume_write, API_QUERY_OWN },
    { API_R_CAPTURE, "/api/v1/capture", GET, true, API_BODY_NONE, api_h_capture_get, NULL },
    { API_R_CAPTURE, "/api/v1/capture", API_M_POST, true, API_BODY_JSON_OPT,
      api_h_capture_start, NULL },
    { API_R_CAPTURE, "/api/v1/capture", API_M_DELETE, true, API_BODY_NONE,
      api_h_capture_stop, NULL },
    { API_R_CAPTURE_PCAP, "/api/v1/capture.pcap", GET, true, API_BODY_NONE,
      api_h_capture_pcap, NULL },
    { API_R_OPENAPI, "/api/v1/openapi.json", GET, true, API_BODY_NONE, api_h_openapi,
      NULL },
    { API_R_HISTORY, "/api/v1/history", GET, true, API_BODY_NONE, api_h_history, "since" },
};

const struct api_endpoint *api_route_table(size_t *n)
{
    *n = sizeof(api_table) / sizeof(api_table[0]);
    return api_table;
}

/* ---------------------------------------------------------------- matching */

#define SEG_MAX 8

struct seg {
    const char *p;
    size_t n;
};

/* One placeholder ({id}, {num}, {a|b}: its inside is `in`, n bytes) against a segment. */
static bool placeholder_ok(const char *in, size_t n, const struct seg *s)
{
    if (s->n > API_ID_MAX)
        return false;
    if (n == 2 && memcmp(in, "id", 2) == 0)
        return api_id_valid(s->p, s->n);
    if (n == 3 && memcmp(in, "num", 3) == 0)
        return decimal_id(s->p, s->n);
    for (;;) {
        const char *bar = memchr(in, '|', n);
        size_t k = bar ? (size_t)(bar - in) : n;

        if (k == s->n && memcmp(in, s->p, k) == 0)
            return true;
        if (!bar)
            return false;
        n -= k + 1;
        in = bar + 1;
    }
}

/* Whether the path's segments match a row's pattern; *arg: the placeholder's segment. */
static bool pattern_match(const char *pat, const struct seg *sg, size_t ns,
                          const struct seg **arg)
{
    size_t i = 0;

    *arg = NULL;
    pat++; /* the leading '/' */
    while (*pat) {
        const char *end = strchr(pat, '/');
        size_t n = end ? (size_t)(end - pat) : strlen(pat);

        if (i == ns)
            return false;
        if (n >= 2 && pat[0] == '{' && pat[n - 1] == '}') {
            if (!placeholder_ok(pat + 1, n - 2, &sg[i]))
                return false;
            *arg = &sg[i];
        } else if (n != sg[i].n || memcmp(pat, sg[i].p, n) != 0) {
            return false;
        }
        i++;
        pat += n + (end ? 1 : 0);
    }
    return i == ns;
}

/* Split the path into segments; "." and ".." are refused, empty ones (//, trailing /) 404. */
static int split(const char *raw, size_t plen, struct seg *sg, size_t *ns)
{
    const char *p = raw + 1;

    *ns = 0;
    if (plen == 1)
        return 0;
    while (p <= raw + plen) {
        const char *end = memchr(p, '/', (size_t)(raw + plen - p));
        size_t n = end ? (size_t)(end - p) : (size_t)(raw + plen - p);

        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        if (n == 0 || *ns == SEG_MAX)
            return -ENOENT;
        sg[*ns].p = p;
        sg[*ns].n = n;
        (*ns)++;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Collect the rows of the path into out (id, auth and arg from the first). */
static int match_table(const struct seg *sg, size_t ns, struct api_route *out)
{
    for (size_t i = 0; i < sizeof(api_table) / sizeof(api_table[0]); i++) {
        const struct api_endpoint *ep = &api_table[i];
        const struct seg *arg;

        if (!pattern_match(ep->pattern, sg, ns, &arg) || out->neps == API_ROUTE_EPS)
            continue;
        if (out->neps == 0) {
            out->id = ep->id;
            out->auth = ep->auth;
        }
        if (arg && !out->arg[0]) {
            memcpy(out->arg, arg->p, arg->n);
            out->arg[arg->n] = '\0';
        }
        out->methods |= ep->methods;
        out->eps[out->neps++] = ep;
    }
    return out->neps ? 0 : -ENOENT;
}

int api_route_match(const char *raw, struct api_route *out)
{
    struct seg sg[SEG_MAX];
    size_t ns = 0, plen;
    const char *q;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!raw)
        return -EINVAL;
    /* absolute-form (RFC 9112 §3.2.2): route on its path; the authority is not ours */
    if (strncasecmp(raw, "http://", 7) == 0 || strncasecmp(raw, "https://", 8) == 0) {
        raw = strstr(raw, "://") + 3;
        raw += strcspn(raw, "/?#");
        if (raw[0] != '/')
            return -EINVAL;
    }
    if (raw[0] != '/')
        return -EINVAL;
    q = strchr(raw, '?');
    plen = q ? (size_t)(q - raw) : strlen(raw);
    out->query = q ? q + 1 : NULL;
    for (size_t i = 0; i < plen; i++)
        if (!path_byte_ok((unsigned char)raw[i]))
            return -EINVAL;
    if (q && strchr(q, '#'))
        return -EINVAL;
    if ((ret = split(raw, plen, sg, &ns)) < 0)
        return ret;
    return match_table(sg, ns, out);
}

const struct api_endpoint *api_route_endpoint(const struct api_route *r, enum api_method m)
{
    for (size_t i = 0; i < r->neps; i++)
        if (r->eps[i]->methods & m)
            return r->eps[i];
    return NULL;
}

enum api_body_kind api_route_body(const struct api_route *r, enum api_method m)
{
    const struct api_endpoint *ep = api_route_endpoint(r, m);

    return ep ? ep->body : API_BODY_NONE;
}

void api_handle(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_endpoint *ep = api_route_endpoint(c->route, c->method);

    struct api_err e;

    api_resp_init(r);
    if (!ep) {
        api_resp_err(r, 404, "no such resource");
        return;
    }
    if (api_query_check(ep->params, c->route->query, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    ep->handler(x, c, r);
}

/*
 * JSON bodies may come without a type, as application/json or any +json type, and as
 * application/x-www-form-urlencoded or text/plain, which is what `curl -d` and a browser's
 * simple request send; clearly other formats (multipart, XML, ...) are refused with 415.
 * Raw data takes any type.
 */
bool api_content_type_ok(enum api_body_kind kind, const char *ctype)
{
    static const char *const json_ok[] = {
        "application/json", "application/x-www-form-urlencoded", "text/plain",
    };
    const char *semi;
    size_t n;

    if (kind != API_BODY_JSON && kind != API_BODY_JSON_OPT)
        return true;
    if (!ctype)
        return true;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    if (!*ctype)
        return true;
    semi = strchr(ctype, ';');
    n = semi ? (size_t)(semi - ctype) : strlen(ctype);
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(json_ok) / sizeof(json_ok[0]); i++)
        if (n == strlen(json_ok[i]) && strncasecmp(ctype, json_ok[i], n) == 0)
            return true;
    /* application/problem+json, application/merge-patch+json, ... */
    if (n > 5 && strncasecmp(ctype + n - 5, "+json", 5) == 0 && memchr(ctype, '/', n))
        return true;
    return false;
}
