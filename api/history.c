/*
 * history.c - the sampler of GET /api/v1/history (history_int.h): once a second it reads
 * the unified connection table, the sessions and the volumes (the same calls the other
 * endpoints make), turns the counters' growth into rates and writes them into the ring.
 *
 * The stacks' bytes are those of their TCP connections, each connection's growth since the
 * previous sample (a new one counts from zero, one that went away stops counting), loopback
 * connections left out: on the host stack they are the appliance talking to itself or a
 * browser on the machine reading this API, not traffic to the SAN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/history_int.h"
#include "common/log.h"

/* ---------------------------------------------------------------- the stacks */

static int conn_cmp(const void *a, const void *b)
{
    return strcmp(((const struct api_hist_conn *)a)->id, ((const struct api_hist_conn *)b)->id);
}

static bool loopback(const struct sockaddr_in *a)
{
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

static uint64_t grown(uint64_t now, uint64_t before)
{
    return now > before ? now - before : 0;
}

/* Each stack's bytes since the previous sample into in/out; the rows become the new prev. */
static void sample_conns(struct api_history *h, uint64_t in[2], uint64_t out[2])
{
    struct stk_conn_row *rows = NULL;
    struct api_hist_conn *cur;
    size_t n = 0, k = 0;

    if (!h->cfg->broker || stk_list_connection_counters(h->cfg->broker, &rows, &n) < 0)
        return;
    cur = calloc(n ? n : 1, sizeof(*cur));
    if (!cur) {
        free(rows);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct stk_conn_row *r = &rows[i];

        if (loopback(&r->local) || loopback(&r->remote) || (unsigned)r->stack > 1)
            continue;
        /* the stack's index (0 host, 1 toe) prefixes the id: one sort key for both */
        snprintf(cur[k].id, sizeof(cur[k].id), "%d%.30s", (int)r->stack, r->id);
        cur[k].in = r->bytes_in;
        cur[k].out = r->bytes_out;
        k++;
    }
    free(rows);
    qsort(cur, k, sizeof(*cur), conn_cmp);
    for (size_t i = 0; h->have_conns && i < k; i++) {
        const struct api_hist_conn *p = h->nconns ? bsearch(&cur[i], h->conns, h->nconns,
                                                            sizeof(*cur), conn_cmp) : NULL;
        int st = cur[i].id[0] - '0';

        in[st] += grown(cur[i].in, p ? p->in : 0);
        out[st] += grown(cur[i].out, p ? p->out : 0);
    }
    free(h->conns);
    h->conns = cur;
    h->nconns = k;
    h->have_conns = true;
}

/* ---------------------------------------------------------------- slots */

/* The slot of id among n (used or free); a new one is cleared. NULL: none left. */
static void *slot_of(void *base, size_t size, size_t idoff, const char *id, bool *fresh)
{
    char *free_slot = NULL;

    *fresh = false;
    for (size_t i = 0; i < API_HIST_SLOTS; i++) {
        char *s = (char *)base + i * size;
        bool used = *(bool *)s;

        if (used && strncmp(s + idoff, id, STO_ID_MAX) == 0)
            return s;
        if (!used && !free_slot)
            free_slot = s;
    }
    if (!free_slot)
        return NULL;
    memset(free_slot, 0, size);
    *(bool *)free_slot = true;
    snprintf(free_slot + idoff, STO_ID_MAX, "%s", id);
    *fresh = true;
    return free_slot;
}

/* A rate per second of a growth over dt_ms. */
static uint64_t rate(uint64_t now, uint64_t before, uint64_t dt_ms)
{
    return grown(now, before) * 1000 / (dt_ms ? dt_ms : 1);
}

static uint32_t rate32(uint64_t now, uint64_t before, uint64_t dt_ms)
{
    uint64_t r = rate(now, before, dt_ms);

    return r > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)r;
}

static void put_volume(struct api_history *h, const struct sto_volume_view *v, size_t at,
                       uint64_t dt_ms)
{
    uint64_t cur[4] = { v->read_bytes, v->write_bytes, v->reads, v->writes };
    bool fresh;
    struct api_hist_vol *s = slot_of(h->vols, sizeof(*s), offsetof(struct api_hist_vol, id),
                                     v->id, &fresh);

    if (!s) {
        h->dropped++;
        return;
    }
    snprintf(s->session, sizeof(s->session), "%s", v->session);
    if (s->have_prev) {
        s->read_bytes[at] = rate(cur[0], s->prev[0], dt_ms);
        s->write_bytes[at] = rate(cur[1], s->prev[1], dt_ms);
        s->reads[at] = rate32(cur[2], s->prev[2], dt_ms);
        s->writes[at] = rate32(cur[3], s->prev[3], dt_ms);
    }
    memcpy(s->prev, cur, sizeof(cur));
    s->have_prev = true;
    s->present = true;
    s->last_seq = h->seq;
}

static void put_session(struct api_history *h, const struct sto_session_view *v, size_t at,
                        uint64_t dt_ms)
{
    const struct hist *lat = &v->counters.latency;
    uint64_t cur[4] = { v->counters.read_bytes, v->counters.write_bytes, v->counters.cmds,
                        lat->count };
    bool fresh;
    struct api_hist_sess *s = slot_of(h->sess, sizeof(*s), offsetof(struct api_hist_sess, id),
                                      v->id, &fresh);

    if (!s) {
        h->dropped++;
        return;
    }
    if (fresh)
        for (size_t i = 0; i < API_HIST_LEN; i++)
            s->latency_us[i] = API_HIST_NO_LAT;
    snprintf(s->target, sizeof(s->target), "%s", v->target);
    s->stack[at] = !v->connected ? API_HIST_NONE
                   : v->stack == STK_STACK_TOE ? API_HIST_TOE : API_HIST_HOST;
    if (s->have_prev) {
        s->read_bytes[at] = rate(cur[0], s->prev[0], dt_ms);
        s->write_bytes[at] = rate(cur[1], s->prev[1], dt_ms);
        s->commands[at] = rate32(cur[2], s->prev[2], dt_ms);
        if (cur[3] > s->prev[3]) {
            uint64_t us = grown(lat->sum_ns, s->prev_lat_ns) / (cur[3] - s->prev[3]) / 1000;

            s->latency_us[at] = us >= API_HIST_NO_LAT ? API_HIST_NO_LAT - 1 : (uint32_t)us;
        }
    }
    memcpy(s->prev, cur, sizeof(cur));
    s->prev_lat_ns = lat->sum_ns;
    s->have_prev = true;
    s->present = true;
    s->last_seq = h->seq;
}

/* Slots not seen for a whole ring are given back; the others' sample `at` starts empty. */
static void age_slots(struct api_history *h, size_t at)
{
    for (size_t i = 0; i < API_HIST_SLOTS; i++) {
        struct api_hist_vol *v = &h->vols[i];
        struct api_hist_sess *s = &h->sess[i];

        if (v->used && h->seq - v->last_seq >= API_HIST_LEN)
            v->used = false;
        if (s->used && h->seq - s->last_seq >= API_HIST_LEN)
            s->used = false;
        v->present = s->present = false;
        v->read_bytes[at] = v->write_bytes[at] = v->reads[at] = v->writes[at] = 0;
        s->read_bytes[at] = s->write_bytes[at] = s->commands[at] = 0;
        s->latency_us[at] = API_HIST_NO_LAT;
        s->stack[at] = API_HIST_NONE;
    }
}

/* A session or volume that is gone loses its previous counts (a new one counts afresh). */
static void forget_absent(struct api_history *h)
{
    for (size_t i = 0; i < API_HIST_SLOTS; i++) {
        if (!h->vols[i].present)
            h->vols[i].have_prev = false;
        if (!h->sess[i].present)
            h->sess[i].have_prev = false;
    }
}

void api_history_sample(struct api_history *h, int64_t now_ms, uint64_t dt_ms)
{
    struct sto_session_view *sv = NULL;
    struct sto_volume_view *vv = NULL;
    size_t nsv = 0, nvv = 0;
    uint64_t in[2] = { 0, 0 }, out[2] = { 0, 0 };
    bool have_sv, have_vv;

    /* the slow parts (the loop's and the broker's answers) outside the lock; the previous
       connections are the sampler's alone */
    sample_conns(h, in, out);
    have_sv = h->cfg->pool && sto_pool_list_sessions(h->cfg->pool, &sv, &nsv) == 0;
    have_vv = h->cfg->pool && sto_pool_list_volumes(h->cfg->pool, &vv, &nvv) == 0;
    api_history_put(h, now_ms, dt_ms, in, out, have_sv ? sv : NULL, nsv, have_vv ? vv : NULL,
                    nvv);
    free(sv);
    free(vv);
}

void api_history_put(struct api_history *h, int64_t now_ms, uint64_t dt_ms,
                     const uint64_t in[2], const uint64_t out[2],
                     const struct sto_session_view *sv, size_t nsv,
                     const struct sto_volume_view *vv, size_t nvv)
{
    size_t at;

    pthread_mutex_lock(&h->lock);
    h->seq++;
    at = h->seq % API_HIST_LEN;
    h->t_ms[at] = now_ms;
    for (int st = 0; st < 2; st++) {
        h->stack_in[st][at] = in[st] * 1000 / (dt_ms ? dt_ms : 1);
        h->stack_out[st][at] = out[st] * 1000 / (dt_ms ? dt_ms : 1);
    }
    age_slots(h, at);
    for (size_t i = 0; sv && i < nsv; i++)
        put_session(h, &sv[i], at, dt_ms);
    for (size_t i = 0; vv && i < nvv; i++)
        put_volume(h, &vv[i], at, dt_ms);
    forget_absent(h);
    pthread_mutex_unlock(&h->lock);
}

/* ---------------------------------------------------------------- the thread */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000 + (uint64_t)ts->tv_nsec / 1000000;
}

static void *sampler(void *arg)
{
    struct api_history *h = arg;
    struct timespec next, now;

    clock_gettime(CLOCK_MONOTONIC, &next);
    h->last_mono = next;
    /* the first sample only sets the counts the next ones grow from */
    api_history_sample(h, wall_ms(), API_HIST_PERIOD_MS);
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        next.tv_sec += API_HIST_PERIOD_MS / 1000;
        if (pthread_cond_timedwait(&h->wake, &h->lock, &next) != ETIMEDOUT || h->stop)
            continue;
        pthread_mutex_unlock(&h->lock);
        clock_gettime(CLOCK_MONOTONIC, &now);
        api_history_sample(h, wall_ms(), mono_ms(&now) - mono_ms(&h->last_mono));
        h->last_mono = now;
        /* far behind (a stopped process): start the beat again from now */
        if (now.tv_sec - next.tv_sec > 2)
            next = now;
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

struct api_history *api_history_new(const struct api_config *cfg)
{
    struct api_history *h = calloc(1, sizeof(*h));
    pthread_condattr_t ca;

    if (!h)
        return NULL;
    h->cfg = cfg;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    return h;
}

void api_history_free(struct api_history *h)
{
    if (!h)
        return;
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h->conns);
    free(h);
}

struct api_history *api_history_start(const struct api_config *cfg)
{
    struct api_history *h = api_history_new(cfg);
    int ret;

    if (!h)
        return NULL;
    if ((ret = pthread_create(&h->thread, NULL, sampler, h)) != 0) {
        api_history_free(h);
        errno = ret;
        return NULL;
    }
    h->running = true;
    return h;
}

void api_history_stop(struct api_history *h)
{
    if (!h)
        return;
    if (h->running) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    api_history_free(h);
}
