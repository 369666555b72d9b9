/*
 * test_api_history.c - the traffic history of GET /api/v1/history (api/history.c,
 * api/h_history.c): rates from counters, the ring's bounds, ?since, slots of sessions and
 * volumes; and the dashboard's files and routes (api/web.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/history_int.h"

static struct api_config cfg;

static struct api_history *fresh(void)
{
    struct api_history *h = api_history_new(&cfg);

    cr_assert_not_null(h);
    return h;
}

static const uint64_t zero[2] = { 0, 0 };

static json_t *series(json_t *o, const char *list, const char *id)
{
    json_t *a = json_object_get(o, list), *v;
    size_t i;

    json_array_foreach(a, i, v)
        if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
            return v;
    return NULL;
}

static json_int_t at(json_t *arr, size_t i)
{
    cr_assert(json_is_integer(json_array_get(arr, i)), "element %zu is not an integer", i);
    return json_integer_value(json_array_get(arr, i));
}

Test(history, stacks_rates_per_second)
{
    struct api_history *h = fresh();
    uint64_t in[2] = { 1000, 5000 }, out[2] = { 10, 20 };
    json_t *o;

    api_history_put(h, 1000, 1000, zero, zero, NULL, 0, NULL, 0);
    api_history_put(h, 3000, 2000, in, out, NULL, 0, NULL, 0);   /* over two seconds */
    o = api_history_json(h, 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "first")), 1);
    cr_assert_eq(json_integer_value(json_object_get(o, "last")), 2);
    cr_assert_eq(json_integer_value(json_object_get(o, "capacity")), API_HIST_LEN);
    cr_assert_eq(at(json_object_get(o, "t"), 1), 3000);
    json_t *host = json_object_get(json_object_get(o, "stacks"), "host");
    json_t *toe = json_object_get(json_object_get(o, "stacks"), "toe");
    cr_assert_eq(at(json_object_get(host, "bytes_in"), 1), 500);
    cr_assert_eq(at(json_object_get(toe, "bytes_in"), 1), 2500);
    cr_assert_eq(at(json_object_get(toe, "bytes_out"), 1), 10);
    json_decref(o);
    api_history_free(h);
}

Test(history, since_gives_only_newer_samples)
{
    struct api_history *h = fresh();
    json_t *o;

    for (int i = 0; i < 5; i++)
        api_history_put(h, 1000 * i, 1000, zero, zero, NULL, 0, NULL, 0);
    o = api_history_json(h, 3);
    cr_assert_eq(json_integer_value(json_object_get(o, "first")), 4);
    cr_assert_eq(json_array_size(json_object_get(o, "t")), 2);
    json_decref(o);
    o = api_history_json(h, 5);   /* nothing new */
    cr_assert_eq(json_array_size(json_object_get(o, "t")), 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "first")), 6);
    json_decref(o);
    o = api_history_json(h, 99);  /* not a sample of this ring: all of it */
    cr_assert_eq(json_array_size(json_object_get(o, "t")), 5);
    json_decref(o);
    api_history_free(h);
}

Test(history, ring_keeps_the_last_ten_minutes)
{
    struct api_history *h = fresh();
    json_t *o;

    for (int i = 0; i < API_HIST_LEN + 50; i++)
        api_history_put(h, 1000 * i, 1000, zero, zero, NULL, 0, NULL, 0);
    o = api_history_json(h, 0);
    cr_assert_eq(json_array_size(json_object_get(o, "t")), API_HIST_LEN);
    cr_assert_eq(json_integer_value(json_object_get(o, "first")), 51);
    cr_assert_eq(at(json_object_get(o, "t"), 0), 50 * 1000);
    cr_assert_eq(at(json_object_get(o, "t"), API_HIST_LEN - 1), (API_HIST_LEN + 49) * 1000);
    json_decref(o);
    api_history_free(h);
}

static void session(struct sto_session_view *s, const char *id, uint64_t cmds, uint64_t lat_n,
                    uint64_t lat_ns, uint64_t rb, enum stk_stack st)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->target, sizeof(s->target), "iqn.2024-01.org.example:t");
    s->state = "logged_in";
    s->connected = true;
    s->stack = st;
    s->counters.cmds = cmds;
    s->counters.read_bytes = rb;
    s->counters.latency.count = lat_n;
    s->counters.latency.sum_ns = lat_ns;
}

Test(history, sessions_latency_and_stack)
{
    struct api_history *h = fresh();
    struct sto_session_view s;
    json_t *o, *x;

    session(&s, "s-1", 10, 10, 10 * 1000000, 4096, STK_STACK_TOE);
    api_history_put(h, 0, 1000, zero, zero, &s, 1, NULL, 0);
    session(&s, "s-1", 110, 110, 10 * 1000000 + 100 * 250000, 4096 + 8192, STK_STACK_TOE);
    api_history_put(h, 1000, 1000, zero, zero, &s, 1, NULL, 0);
    session(&s, "s-1", 110, 110, 10 * 1000000 + 100 * 250000, 4096 + 8192, STK_STACK_HOST);
    api_history_put(h, 2000, 1000, zero, zero, &s, 1, NULL, 0);
    o = api_history_json(h, 0);
    x = series(o, "sessions", "s-1");
    cr_assert_not_null(x);
    cr_assert(json_is_null(json_array_get(json_object_get(x, "latency_us"), 0)));
    cr_assert_eq(at(json_object_get(x, "latency_us"), 1), 250);   /* 100 commands of 250 µs */
    cr_assert(json_is_null(json_array_get(json_object_get(x, "latency_us"), 2))); /* none */
    cr_assert_eq(at(json_object_get(x, "commands"), 1), 100);
    cr_assert_eq(at(json_object_get(x, "read_bytes"), 1), 8192);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(x, "stack"), 1)), "toe");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(x, "stack"), 2)), "host");
    cr_assert(json_is_true(json_object_get(x, "present")));
    json_decref(o);
    api_history_free(h);
}

Test(history, volumes_and_bounded_slots)
{
    struct api_history *h = fresh();
    struct sto_volume_view *v = calloc(API_HIST_SLOTS + 3, sizeof(*v));
    json_t *o, *x;

    cr_assert_not_null(v);
    for (int i = 0; i < API_HIST_SLOTS + 3; i++)
        snprintf(v[i].id, sizeof(v[i].id), "v-%d", i);
    api_history_put(h, 0, 1000, zero, zero, NULL, 0, v, API_HIST_SLOTS + 3);
    v[0].reads = 7;
    v[0].read_bytes = 7 * 4096;
    api_history_put(h, 1000, 1000, zero, zero, NULL, 0, v, API_HIST_SLOTS + 3);
    o = api_history_json(h, 0);
    cr_assert_eq(json_array_size(json_object_get(o, "volumes")), API_HIST_SLOTS);
    cr_assert_eq(json_integer_value(json_object_get(o, "dropped")), 2 * 3);
    x = series(o, "volumes", "v-0");
    cr_assert_eq(at(json_object_get(x, "reads"), 1), 7);
    cr_assert_eq(at(json_object_get(x, "read_bytes"), 1), 7 * 4096);
    json_decref(o);

    /* gone for a whole ring: the slot is free again, and the volume is no longer listed */
    for (int i = 0; i < API_HIST_LEN + 1; i++)
        api_history_put(h, 2000 + 1000 * i, 1000, zero, zero, NULL, 0, v + 1, 1);
    o = api_history_json(h, 0);
    cr_assert_null(series(o, "volumes", "v-0"));
    cr_assert_not_null(series(o, "volumes", "v-1"));
    json_decref(o);
    free(v);
    api_history_free(h);
}

/* A counter that went back (a new connection, a restarted count) is no negative rate. */
Test(history, counters_going_back_count_nothing)
{
    struct api_history *h = fresh();
    struct sto_volume_view v;
    json_t *o;

    memset(&v, 0, sizeof(v));
    snprintf(v.id, sizeof(v.id), "v-a");
    v.read_bytes = 1000;
    api_history_put(h, 0, 1000, zero, zero, NULL, 0, &v, 1);
    v.read_bytes = 10;
    api_history_put(h, 1000, 1000, zero, zero, NULL, 0, &v, 1);
    o = api_history_json(h, 0);
    cr_assert_eq(at(json_object_get(series(o, "volumes", "v-a"), "read_bytes"), 1), 0);
    json_decref(o);
    api_history_free(h);
}

Test(history, sampler_starts_and_stops)
{
    struct api_history *h = api_history_start(&cfg);

    cr_assert_not_null(h);
    api_history_stop(h);
}

/* ---------------------------------------------------------------- the page's files */

Test(web, routes_and_files)
{
    struct api_route r;
    const char *ctype, *p;
    size_t len;

    cr_assert_eq(api_route_match("/app.js", &r), 0);
    cr_assert_eq(r.id, API_R_ASSET);
    cr_assert_not(r.auth);
    cr_assert_eq(api_route_match("/app.css", &r), 0);
    cr_assert_eq(api_route_match("/app.map", &r), -ENOENT);
    cr_assert_eq(api_route_match("/api/v1/history", &r), 0);
    cr_assert_eq(r.id, API_R_HISTORY);
    cr_assert(r.auth);
    p = api_web_asset("/app.js", &len, &ctype);
    cr_assert(p && len > 1000 && strstr(ctype, "javascript"));
    cr_assert(strstr(p, "/api/v1/history"));
    p = api_web_asset("/app.css", &len, &ctype);
    cr_assert(p && len > 100 && strstr(ctype, "text/css"));
    p = api_web_page(&len);
    cr_assert(strstr(p, "src=\"/app.js\"") && strstr(p, "href=\"/app.css\""));
    cr_assert_null(api_web_asset("/index.html", &len, &ctype));
}
