/*
 * h_connections.c - /api/v1/connections: the broker's table of every TCP connection on
 * both stacks, cached and paced (the state lives in the server's struct api_shared).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"

/*
 * The table's rendered body, reused for CONN_CACHE_MS: a dashboard or a monitoring loop may
 * ask many times a second, and the I/O path wants that CPU (the rows come from a snapshot
 * of the same age anyway: stacks/table.c).
 */
#define CONN_CACHE_MS 50

static bool cache_answer(struct api_shared *sh, struct api_resp *r)
{
    struct timespec now;
    bool hit = false;

    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&sh->conn_lock);
    long ms = (now.tv_sec - sh->conn_at.tv_sec) * 1000 +
              (now.tv_nsec - sh->conn_at.tv_nsec) / 1000000;
    if (sh->conn_body && ms >= 0 && ms < CONN_CACHE_MS) {
        char *copy = malloc(sh->conn_len + 1);
        if (copy) {
            memcpy(copy, sh->conn_body, sh->conn_len + 1);
            r->status = 200;
            r->ctype = "application/json";
            r->body = copy;
            r->len = sh->conn_len;
            hit = true;
        }
    }
    pthread_mutex_unlock(&sh->conn_lock);
    return hit;
}

static void cache_store(struct api_shared *sh, const struct api_resp *r)
{
    char *copy;

    if (r->status != 200 || !r->body)
        return;
    copy = malloc(r->len + 1);
    if (!copy)
        return;
    memcpy(copy, r->body, r->len);
    copy[r->len] = '\0';
    pthread_mutex_lock(&sh->conn_lock);
    free(sh->conn_body);
    sh->conn_body = copy;
    sh->conn_len = r->len;
    clock_gettime(CLOCK_MONOTONIC, &sh->conn_at);
    pthread_mutex_unlock(&sh->conn_lock);
}

/*
 * Answers to GET /connections are paced to CONN_PACE_PER_S a second over all clients: a
 * polling loop has nothing to gain from more (the table refreshes every CONN_CACHE_MS), and
 * a client that asks faster waits here instead of spending, in its own process, the CPU the
 * data path needs.
 */
#define CONN_PACE_PER_S 100

static void pace(struct api_shared *sh)
{
    struct timespec now, at;

    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&sh->conn_lock);
    if (sh->conn_pace_next.tv_sec < now.tv_sec ||
        (sh->conn_pace_next.tv_sec == now.tv_sec && sh->conn_pace_next.tv_nsec < now.tv_nsec))
        sh->conn_pace_next = now;
    at = sh->conn_pace_next;
    sh->conn_pace_next.tv_nsec += 1000000000L / CONN_PACE_PER_S;
    if (sh->conn_pace_next.tv_nsec >= 1000000000L) {
        sh->conn_pace_next.tv_sec++;
        sh->conn_pace_next.tv_nsec -= 1000000000L;
    }
    pthread_mutex_unlock(&sh->conn_lock);
    /* a wait longer than a second means a crowd: answer now rather than pile up */
    if (at.tv_sec - now.tv_sec < 1)
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
}

void api_h_connections(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct stk_broker *b = api_need_broker(x, r);
    struct stk_conn_row *rows = NULL;
    size_t n = 0;
    json_t *arr;
    int ret;

    const char *query = c->route->query;
    bool filtered = query && *query;   /* a filtered answer is neither cached nor reused */

    if (!b)
        return;
    pace(x->sh);
    if (!filtered && cache_answer(x->sh, r))
        return;
    if ((ret = stk_list_connections(b, &rows, &n)) < 0) {
        api_resp_err(r, 500, "cannot list connections: %s", strerror(-ret));
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_json_conn_row(&rows[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(rows);
    api_resp_json(r, 200, api_query_filter(arr, query));
    if (!filtered)
        cache_store(x->sh, r);
}
