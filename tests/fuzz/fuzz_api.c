/*
 * fuzz_api.c - the REST API's routing and request validation (api/routes.c,
 * api/validate.c), fed the way server.c feeds them.
 *
 * Input: "METHOD TARGET\nCONTENT-TYPE\nAUTHORIZATION\nBODY": the request target exactly as
 * a client sent it, the Content-Type and Authorization header values, and the body. The
 * target is routed; the body goes to the validator of the route and method it reaches
 * (sessions, discovery, reservations, the TOE patch, capture, the data query string).
 * Properties: routing returns 0, -EINVAL or -ENOENT, and a route's id argument is a valid
 * id; every refusal is a problem+json document that parses as JSON with a one-line
 * printable detail of 4xx status; accepted bodies hold values within their limits (strings
 * terminated and non-empty, probabilities 0..1, ports 1..65535); a token check passes only
 * for a header that carries the token.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "tests/fuzz/fuzz.h"

static const char token[] = "t0k3n-0123456789abcdef0123456789abcdef";

/* The next '\n'-terminated field of the input (NUL-terminated in place), or the rest. */
static char *next_line(char **p)
{
    char *s = *p, *nl = strchr(s, '\n');

    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static void check_err(int ret, const struct api_err *e, const char *what)
{
    char *doc;
    size_t len;
    json_t *j;

    FUZZ_CHECK(ret == -EINVAL, "%s returned %d", what, ret);
    FUZZ_CHECK(e->status >= 400 && e->status < 500, "%s refused with status %d", what,
               e->status);
    FUZZ_CHECK(e->detail[0] && fuzz_printable_line(e->detail, strlen(e->detail)),
               "%s: detail is not one printable line", what);
    doc = api_problem_render(e, &len);
    FUZZ_CHECK(doc != NULL, "%s: problem did not render", what);
    j = json_loadb(doc, len, 0, NULL);
    FUZZ_CHECK(json_is_object(j), "%s: problem is not a json object", what);
    json_decref(j);
    free(doc);
}

static void check_name(const char *s, size_t cap, bool required, const char *what)
{
    size_t n = strnlen(s, cap);

    FUZZ_CHECK(n < cap, "%s is not terminated", what);
    FUZZ_CHECK(!required || n > 0, "%s is empty", what);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, "%s holds a control byte",
                   what);
}

static void check_chap(const struct sto_chap *c)
{
    check_name(c->user, sizeof(c->user), false, "chap.user");
    check_name(c->secret, sizeof(c->secret), c->user[0] != '\0', "chap.secret");
    check_name(c->target_user, sizeof(c->target_user), false, "chap.target_user");
    check_name(c->target_secret, sizeof(c->target_secret), c->target_user[0] != '\0',
               "chap.target_secret");
    FUZZ_CHECK(!c->target_user[0] == !c->target_secret[0], "half of mutual chap accepted");
}

static void body(const struct api_route *r, enum api_method m, const char *b, size_t n)
{
    struct api_err e;
    int ret;

    memset(&e, 0, sizeof(e));
    if (r->id == API_R_SESSIONS && m == API_M_POST) {
        struct sto_session_req q;
        ret = api_parse_session_req(b, n, &q, &e);
        if (ret == 0) {
            check_name(q.portal, sizeof(q.portal), true, "portal");
            check_name(q.target, sizeof(q.target), true, "target");
            check_chap(&q.chap);
        }
        explicit_bzero(&q, sizeof(q));
    } else if (r->id == API_R_DISCOVERY && m == API_M_POST) {
        struct api_discovery_req q;
        ret = api_parse_discovery_req(b, n, &q, &e);
        if (ret == 0) {
            check_name(q.portal, sizeof(q.portal), true, "portal");
            check_chap(&q.chap);
        }
        explicit_bzero(&q, sizeof(q));
    } else if (r->id == API_R_RESERVATIONS && m == API_M_POST) {
        struct api_reserve_req q;
        ret = api_parse_reserve_req(b, n, &q, &e);
        if (ret == 0)
            check_name(q.holder, sizeof(q.holder), true, "holder");
    } else if (r->id == API_R_STACK && m == API_M_PATCH) {
        struct api_toe_patch q;
        struct api_toe_faults cur = { 0.5, 0.5, 0.5, 0.5, 7 };
        ret = api_parse_toe_patch(b, n, &q, &e);
        if (ret == 0) {
            FUZZ_CHECK(q.set_link || q.set_faults, "a patch that changes nothing");
            api_toe_patch_merge(&q, &cur);
            FUZZ_CHECK(cur.drop >= 0 && cur.drop <= 1 && cur.dup >= 0 && cur.dup <= 1 &&
                           cur.reorder >= 0 && cur.reorder <= 1 && cur.corrupt >= 0 &&
                           cur.corrupt <= 1,
                       "a fault probability outside 0..1 accepted");
        }
    } else if (r->id == API_R_CAPTURE && m == API_M_POST) {
        struct api_capture_req q;
        ret = api_parse_capture_req(b, n, &q, &e);
        if (ret == 0)
            FUZZ_CHECK(q.ring_bytes == 0 || (q.ring_bytes >= API_CAPTURE_RING_MIN &&
                                             q.ring_bytes <= API_CAPTURE_RING_MAX),
                       "ring of %zu bytes accepted", q.ring_bytes);
    } else if (r->id == API_R_VOLUME_DATA && (m == API_M_GET || m == API_M_PUT)) {
        struct api_data_query q;
        ret = api_parse_data_query(r->query, m == API_M_GET, &q, &e);
        if (ret == 0)
            FUZZ_CHECK(m == API_M_GET || !q.have_length, "length accepted on a put");
    } else {
        json_t *j = NULL;
        if (api_route_body(r, m) != API_BODY_JSON)
            return;
        ret = api_parse_object(b, n, &j, &e);
        if (ret == 0)
            FUZZ_CHECK(json_is_object(j), "parse_object returned a non-object");
        json_decref(j);
    }
    if (ret != 0)
        check_err(ret, &e, "body validation");
}

int fuzz_api(const uint8_t *data, size_t size)
{
    char *in = fuzz_strndup(data, size), *p = in;
    char *line = next_line(&p), *ctype = next_line(&p), *auth = next_line(&p);
    char *target = strchr(line, ' ');
    size_t blen = size - (size_t)(p - in);
    struct api_route r;
    enum api_method m;
    char allow[64];
    int ret;

    if (api_auth_ok(auth, token, sizeof(token) - 1))
        FUZZ_CHECK(strstr(auth, token) != NULL, "a header without the token passed");
    if (!target) {
        free(in);
        return 0;
    }
    *target++ = '\0';
    m = api_method_parse(line);
    FUZZ_CHECK(m == API_M_OTHER || !strcmp(api_method_name(m), line), "method %s", line);
    ret = api_route_match(target, &r);
    FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOENT, "route returned %d", ret);
    if (ret == 0) {
        FUZZ_CHECK(r.id != API_R_NONE && r.methods, "a route without id or methods");
        FUZZ_CHECK(strnlen(r.arg, sizeof(r.arg)) < sizeof(r.arg), "route arg unterminated");
        if (r.id == API_R_ASSET) /* the dashboard's files: one of the names in the pattern */
            FUZZ_CHECK(!strcmp(r.arg, "app.css") || !strcmp(r.arg, "app.js"),
                       "asset route arg \"%s\"", r.arg);
        else if (r.arg[0] && r.id != API_R_STACK && r.id != API_R_RESERVATION)
            FUZZ_CHECK(api_id_valid(r.arg, strlen(r.arg)), "route arg \"%s\" is no id",
                       r.arg);
        FUZZ_CHECK(!r.query || (r.query > target && r.query[-1] == '?' &&
                                r.query <= target + strlen(target)),
                   "query does not point into the target");
        api_allow_str(r.methods, allow, sizeof(allow));
        FUZZ_CHECK(allow[0] && fuzz_printable_line(allow, strlen(allow)), "allow header");
        if (r.methods & m) {
            (void)api_content_type_ok(api_route_body(&r, m), ctype);
            body(&r, m, blen ? p : NULL, blen);
        }
    }
    free(in);
    return 0;
}
