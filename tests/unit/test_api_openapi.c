/*
 * test_api_openapi.c - the OpenAPI document compiled into the binary (api/openapi.json)
 * against the route table, both ways: every (path, method) of api_table is an operation of
 * the document and every operation of the document is a row of api_table; and for each of
 * them, the same public or bearer security, the same query parameters and the same kind of
 * request body.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

static const struct {
    enum api_method m;
    const char *name; /* the document's key */
} methods[] = {
    { API_M_GET, "get" },     { API_M_HEAD, "head" },   { API_M_POST, "post" },
    { API_M_PUT, "put" },     { API_M_PATCH, "patch" }, { API_M_DELETE, "delete" },
};

static json_t *load_doc(void)
{
    json_error_t err;
    size_t len;
    const char *s = api_openapi_doc(&len);
    json_t *doc = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);

    cr_assert_not_null(doc, "api/openapi.json does not parse: line %d: %s", err.line,
                       err.text);
    return doc;
}

/* A path with every "{name}" as "{}": the route table and the document name them apart. */
static void normalize(const char *path, char *out, size_t len)
{
    size_t j = 0;

    for (const char *p = path; *p && j + 3 < len; p++) {
        out[j++] = *p;
        if (*p == '{') {
            const char *end = strchr(p, '}');

            cr_assert_not_null(end, "unclosed placeholder in \"%s\"", path);
            out[j++] = '}';
            p = end;
        }
    }
    out[j] = '\0';
}

/* Whether a route placeholder ("{id}", "{num}") stands for any id, not for literals. */
static bool is_id(const char *open)
{
    return !strncmp(open, "{id}", 4) || !strncmp(open, "{num}", 5);
}

/*
 * The concrete paths of a route pattern (normalized): "{a|b}" and "{a}" are a segment of
 * each literal (routes.c's placeholder_ok), "{id}" and "{num}" stay placeholders. *n counts
 * them.
 */
static void expand(const char *pat, char out[][128], size_t *n)
{
    const char *open = strchr(pat, '{'), *close, *alt;
    char buf[128];

    if (!open || !(close = strchr(open, '}')) || is_id(open)) {
        normalize(pat, out[(*n)++], 128);
        return;
    }
    alt = open + 1;
    while (alt < close) {
        size_t k = strcspn(alt, "|}");

        snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int)(open - pat), pat, (int)k, alt,
                 close + 1);
        normalize(buf, out[(*n)++], 128);
        alt += k + 1;
    }
}

/* The set of "METHOD /path" keys of the route table, each with its row. */
static json_t *table_ops(void)
{
    json_t *set = json_object();
    size_t n;
    const struct api_endpoint *t = api_route_table(&n);

    for (size_t i = 0; i < n; i++) {
        char paths[8][128];
        size_t np = 0;

        expand(t[i].pattern, paths, &np);
        for (size_t p = 0; p < np; p++)
            for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
                char key[160];

                if (!(t[i].methods & methods[m].m))
                    continue;
                snprintf(key, sizeof(key), "%s %s", methods[m].name, paths[p]);
                cr_assert_null(json_object_get(set, key), "route table: %s twice", key);
                json_object_set_new(set, key, json_integer((json_int_t)i));
            }
    }
    return set;
}

/* The set of "METHOD /path" keys of the document, each with its operation. */
static json_t *doc_ops(json_t *doc)
{
    json_t *set = json_object(), *paths = json_object_get(doc, "paths"), *item;
    const char *path;

    cr_assert(json_is_object(paths), "the document has no paths");
    json_object_foreach(paths, path, item) {
        const char *k;
        json_t *op;
        char norm[128];

        normalize(path, norm, sizeof(norm));
        json_object_foreach(item, k, op) {
            char key[160];

            if (!strcmp(k, "parameters") || !strcmp(k, "summary") || !strcmp(k, "description"))
                continue;
            snprintf(key, sizeof(key), "%s %s", k, norm);
            json_object_set(set, key, op);
        }
    }
    return set;
}

Test(openapi, covers_the_route_table_both_ways)
{
    json_t *doc = load_doc(), *table = table_ops(), *ops = doc_ops(doc), *v;
    const char *key;
    int missing = 0, extra = 0;

    json_object_foreach(table, key, v)
        if (!json_object_get(ops, key)) {
            cr_log_error("in the route table, not in api/openapi.json: %s", key);
            missing++;
        }
    json_object_foreach(ops, key, v)
        if (!json_object_get(table, key)) {
            cr_log_error("in api/openapi.json, not in the route table: %s", key);
            extra++;
        }
    cr_expect_eq(missing, 0, "%d operations of the route table are not documented", missing);
    cr_expect_eq(extra, 0, "%d documented operations are not in the route table", extra);
    cr_expect_gt(json_object_size(table), 40, "the route table looks truncated");
    json_decref(table);
    json_decref(ops);
    json_decref(doc);
}

/* "#/components/parameters/X" and the like, in the document; v itself when no $ref. */
static json_t *deref(json_t *doc, json_t *v)
{
    const char *ref = json_string_value(json_object_get(v, "$ref"));
    char buf[256], *save = NULL;

    if (!ref)
        return v;
    cr_assert(!strncmp(ref, "#/", 2), "a $ref outside the document: %s", ref);
    snprintf(buf, sizeof(buf), "%s", ref + 2);
    for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        doc = json_object_get(doc, tok);
        cr_assert_not_null(doc, "$ref %s points nowhere", ref);
    }
    return doc;
}

/* Whether an operation's parameters (list, $refs resolved) hold a query parameter name. */
static bool has_query_param(json_t *doc, json_t *list, const char *name)
{
    size_t i;
    json_t *p;

    json_array_foreach(list, i, p) {
        json_t *r = deref(doc, p);

        if (!strcmp(json_string_value(json_object_get(r, "in")) ?: "", "query") &&
            !strcmp(json_string_value(json_object_get(r, "name")) ?: "", name))
            return true;
    }
    return false;
}

static size_t count_query_params(json_t *doc, json_t *list)
{
    size_t i, n = 0;
    json_t *p;

    json_array_foreach(list, i, p)
        n += !strcmp(json_string_value(json_object_get(deref(doc, p), "in")) ?: "", "query");
    return n;
}

static void check_query(json_t *doc, const char *key, json_t *op, const struct api_endpoint *ep)
{
    json_t *list = json_object_get(op, "parameters");
    char want[128];
    size_t nwant = 0;

    if (ep->params && !strcmp(ep->params, API_QUERY_OWN))
        snprintf(want, sizeof(want), "%s", !strncmp(key, "put ", 4) ? "offset" : "offset,length");
    else
        snprintf(want, sizeof(want), "%s", ep->params ? ep->params : "");
    for (char *save = NULL, *tok = strtok_r(want, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        cr_expect(has_query_param(doc, list, tok), "%s: query parameter \"%s\" not documented",
                  key, tok);
        nwant++;
    }
    cr_expect_eq(count_query_params(doc, list), nwant,
                 "%s: documents %zu query parameters, the route table has %zu", key,
                 count_query_params(doc, list), nwant);
}

static void check_security(json_t *doc, const char *key, json_t *op, const struct api_endpoint *ep)
{
    json_t *sec = json_object_get(op, "security"), *req;
    bool anonymous = false, bearer = false;
    size_t i;

    if (!sec)
        sec = json_object_get(doc, "security");
    json_array_foreach(sec, i, req) {
        anonymous |= json_object_size(req) == 0;
        bearer |= json_object_get(req, "bearerAuth") != NULL;
    }
    if (ep->auth) {
        cr_expect(bearer && !anonymous, "%s needs the token, the document says otherwise", key);
        cr_expect_not_null(json_object_get(json_object_get(op, "responses"), "401"),
                           "%s needs the token but has no 401", key);
    } else {
        cr_expect(anonymous, "%s is public, the document asks for a token", key);
    }
}

static void check_body(json_t *doc, const char *key, json_t *op, const struct api_endpoint *ep)
{
    json_t *rb = json_object_get(op, "requestBody"), *content;
    bool required;

    if (ep->body == API_BODY_NONE) {
        cr_expect_null(rb, "%s takes no body, the document has one", key);
        return;
    }
    cr_assert_not_null(rb, "%s takes a body, the document has none", key);
    rb = deref(doc, rb);
    content = json_object_get(rb, "content");
    required = json_is_true(json_object_get(rb, "required"));
    switch (ep->body) {
    case API_BODY_JSON:
    case API_BODY_JSON_OPT:
        cr_expect_eq(required, ep->body == API_BODY_JSON, "%s: body required is %d", key,
                     required);
        cr_expect_not_null(json_object_get(content, "application/json"),
                           "%s: a JSON body, documented without application/json", key);
        cr_expect_not_null(json_object_get(json_object_get(op, "responses"), "415"),
                           "%s: a JSON body without a 415", key);
        break;
    default:
        cr_expect(required, "%s: a raw body, documented as optional", key);
        break;
    }
    cr_expect_not_null(json_object_get(json_object_get(op, "responses"), "413"),
                       "%s: a body without a 413", key);
}

Test(openapi, operations_match_their_rows)
{
    json_t *doc = load_doc(), *table = table_ops(), *ops = doc_ops(doc), *v;
    size_t n;
    const struct api_endpoint *t = api_route_table(&n);
    const char *key;

    json_object_foreach(table, key, v) {
        json_t *op = json_object_get(ops, key);
        const struct api_endpoint *ep = &t[json_integer_value(v)];

        if (!op)
            continue; /* reported by covers_the_route_table_both_ways */
        check_security(doc, key, op, ep);
        check_query(doc, key, op, ep);
        check_body(doc, key, op, ep);
        cr_expect_not_null(json_object_get(json_object_get(op, "responses"), "400"),
                           "%s: no 400 (a malformed path or query)", key);
    }
    json_decref(table);
    json_decref(ops);
    json_decref(doc);
}

Test(openapi, served_as_compiled)
{
    struct api_route r;
    const struct api_endpoint *ep;

    cr_assert_eq(api_route_match("/api/v1/openapi.json", &r), 0);
    cr_expect_eq(r.id, API_R_OPENAPI);
    cr_expect(r.auth, "the document is served behind the token");
    ep = api_route_endpoint(&r, API_M_GET);
    cr_assert_not_null(ep);
    cr_expect_eq(ep->handler, api_h_openapi);
}
