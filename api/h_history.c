/*
 * h_history.c - GET /api/v1/history[?since=SEQ]: the sampler's ring (history.c) as JSON,
 * one array per series, all aligned with "t" (docs/api.md, "History").
 *
 * A client that polls passes the "last" of its previous answer as since and gets only the
 * samples taken after it; without since (or with one the ring has forgotten) it gets all
 * the ring holds, at most ten minutes.
 */
#include <errno.h>
#include <string.h>

#include "api/history_int.h"

/* The ring positions of samples first..last. */
#define EACH(i, first, last) for (uint64_t i = (first); i <= (last); i++)
#define AT(i) ((size_t)((i) % API_HIST_LEN))

static const char *const stack_names[] = { NULL, "host", "toe" };

static json_t *u64s(const uint64_t *v, uint64_t first, uint64_t last)
{
    json_t *a = json_array();

    EACH(i, first, last)
        if (a && json_array_append_new(a, api_json_u64(v[AT(i)])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *u32s(const uint32_t *v, uint64_t first, uint64_t last, bool nulls)
{
    json_t *a = json_array();

    EACH(i, first, last) {
        uint32_t x = v[AT(i)];

        if (a && json_array_append_new(a, nulls && x == API_HIST_NO_LAT ? json_null()
                                                                        : json_integer(x)) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *stacks_of(const uint8_t *v, uint64_t first, uint64_t last)
{
    json_t *a = json_array();

    EACH(i, first, last) {
        uint8_t x = v[AT(i)];
        const char *n = x < 3 ? stack_names[x] : NULL;

        if (a && json_array_append_new(a, n ? json_string(n) : json_null()) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *stack_series(const struct api_history *h, int st, uint64_t first, uint64_t last)
{
    return json_pack("{s:o?,s:o?}", "bytes_in", u64s(h->stack_in[st], first, last),
                     "bytes_out", u64s(h->stack_out[st], first, last));
}

static json_t *volume_series(const struct api_hist_vol *v, uint64_t first, uint64_t last)
{
    return json_pack("{s:s,s:s?,s:b,s:o?,s:o?,s:o?,s:o?}", "id", v->id, "session",
                     v->session[0] ? v->session : NULL, "present", v->present, "read_bytes",
                     u64s(v->read_bytes, first, last), "write_bytes",
                     u64s(v->write_bytes, first, last), "reads", u32s(v->reads, first, last, false),
                     "writes", u32s(v->writes, first, last, false));
}

static json_t *session_series(const struct api_hist_sess *s, uint64_t first, uint64_t last)
{
    return json_pack("{s:s,s:s,s:b,s:o?,s:o?,s:o?,s:o?,s:o?}", "id", s->id, "target",
                     s->target, "present", s->present, "stack", stacks_of(s->stack, first, last),
                     "read_bytes", u64s(s->read_bytes, first, last), "write_bytes",
                     u64s(s->write_bytes, first, last), "commands",
                     u32s(s->commands, first, last, false), "latency_us",
                     u32s(s->latency_us, first, last, true));
}

static json_t *times(const struct api_history *h, uint64_t first, uint64_t last)
{
    json_t *a = json_array();

    EACH(i, first, last)
        if (a && json_array_append_new(a, json_integer(h->t_ms[AT(i)])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Whether any sample from first on is this slot's (it was seen since). */
#define SEEN_SINCE(s, first) ((s).used && (s).last_seq >= (first))

json_t *api_history_json(struct api_history *h, uint64_t since)
{
    json_t *o, *vols, *sess;
    uint64_t first, last;

    pthread_mutex_lock(&h->lock);
    last = h->seq;
    first = last >= API_HIST_LEN ? last - API_HIST_LEN + 1 : 1;
    if (since >= first && since <= last)
        first = since + 1;
    vols = json_array();
    sess = json_array();
    /* first > last: nothing new; the arrays come out empty */
    for (size_t i = 0; vols && sess && i < API_HIST_SLOTS; i++) {
        if (SEEN_SINCE(h->vols[i], first) &&
            json_array_append_new(vols, volume_series(&h->vols[i], first, last)) < 0)
            break;
        if (SEEN_SINCE(h->sess[i], first) &&
            json_array_append_new(sess, session_series(&h->sess[i], first, last)) < 0)
            break;
    }
    o = json_pack("{s:i,s:i,s:I,s:I,s:I,s:o?,s:{s:o?,s:o?},s:o?,s:o?}", "interval_ms",
                  API_HIST_PERIOD_MS, "capacity", API_HIST_LEN, "first", (json_int_t)first,
                  "last", (json_int_t)last, "dropped", (json_int_t)h->dropped, "t",
                  times(h, first, last), "stacks", "host",
                  stack_series(h, STK_STACK_HOST, first, last), "toe",
                  stack_series(h, STK_STACK_TOE, first, last), "sessions", sess, "volumes", vols);
    pthread_mutex_unlock(&h->lock);
    return o;
}

/* ?since=SEQ, nothing else. */
static int parse_since(const char *q, uint64_t *since, struct api_err *e)
{
    *since = 0;
    if (!q || !*q)
        return 0;
    if (strncmp(q, "since=", 6) != 0) {
        api_err_set(e, 400, "unknown query parameter (this endpoint takes: since)");
        return -EINVAL;
    }
    if (api_parse_u64(q + 6, strlen(q + 6), since) < 0) {
        api_err_set(e, 400, "query parameter \"since\" must be a sample number (decimal)");
        return -EINVAL;
    }
    return 0;
}

void api_h_history(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct api_err e;
    uint64_t since;

    if (parse_since(c->route->query, &since, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!x->sh->history) {
        api_resp_err(r, 503, "the history is not being kept (its sampler did not start)");
        return;
    }
    api_resp_json(r, 200, api_history_json(x->sh->history, since));
}
