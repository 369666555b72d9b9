/*
 * query.c - the query strings of the list endpoints: which parameters an endpoint takes
 * (its row in routes.c names them), their values checked before the handler runs, and the
 * filter they make of a list (?stack=toe keeps the rows whose "stack" is "toe").
 *
 * Values are taken as sent: no percent-decoding (a '%' is refused), as the paths are.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"

#define VALUE_MAX 64

/* Whether the n bytes at key are one of the comma-separated names in params. */
static bool param_known(const char *params, const char *key, size_t n)
{
    for (const char *p = params; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, key, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

static bool value_ok(const char *v, size_t n)
{
    if (n == 0 || n > VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("-_.:/", ch)))
            return false;
    }
    return true;
}

int api_query_check(const char *params, const char *query, struct api_err *e)
{
    const char *p = query;

    if (!p || !*p || (params && !strcmp(params, API_QUERY_OWN)))
        return 0;
    for (;;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        if (!param_known(params, p, kn)) {
            api_err_set(e, 400, "unknown query parameter \"%.*s\" (this endpoint takes: %s)",
                        (int)(kn > 32 ? 32 : kn), p, params && *params ? params : "none");
            return -EINVAL;
        }
        for (const char *q = query; q < p; q += strcspn(q, "&") + 1)
            if (strncmp(q, p, kn) == 0 && (q[kn] == '=' || q[kn] == '&' || !q[kn])) {
                api_err_set(e, 400, "query parameter \"%.*s\" given twice", (int)kn, p);
                return -EINVAL;
            }
        if (!eq || !value_ok(eq + 1, n - kn - 1)) {
            api_err_set(e, 400, "query parameter \"%.*s\" needs a value of up to %d letters, "
                        "digits and -_.:/", (int)kn, p, VALUE_MAX);
            return -EINVAL;
        }
        if (kn == 5 && !memcmp(p, "stack", 5) && !(n - kn - 1 == 3 && !memcmp(eq + 1, "toe", 3))
            && !(n - kn - 1 == 4 && !memcmp(eq + 1, "host", 4))) {
            api_err_set(e, 400, "query parameter \"stack\" must be toe or host");
            return -EINVAL;
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    return 0;
}

#define FILTERS_MAX 8

struct filter {
    char key[VALUE_MAX + 1];
    char value[VALUE_MAX + 1];
};

/* The query's key=value pairs (api_query_check has passed it), parsed once per list. */
static size_t filters_parse(const char *query, struct filter *f)
{
    size_t n = 0;

    for (const char *p = query; *p && n < FILTERS_MAX;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kn = eq ? (size_t)(eq - p) : len;
        snprintf(f[n].key, sizeof(f[n].key), "%.*s", (int)kn, p);
        snprintf(f[n].value, sizeof(f[n].value), "%.*s", eq ? (int)(len - kn - 1) : 0,
                 eq ? eq + 1 : "");
        n++;
        p += len + (p[len] == '&');
    }
    return n;
}

/* Whether element o passes every filter (member == value, case-insensitive). */
static bool passes(const json_t *o, const struct filter *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *have = json_string_value(json_object_get(o, f[i].key));
        if (!have || strcasecmp(have, f[i].value) != 0)
            return false;
    }
    return true;
}

json_t *api_query_filter(json_t *arr, const char *query)
{
    struct filter f[FILTERS_MAX];
    json_t *kept, *o;
    size_t n, i;

    if (!arr || !query || !*query)
        return arr;
    n = filters_parse(query, f);
    kept = json_array();
    json_array_foreach(arr, i, o)
        if (passes(o, f, n) && json_array_append(kept, o) < 0)
            break;
    json_decref(arr);
    return kept;
}
