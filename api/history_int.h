/*
 * history_int.h - the last ten minutes of the appliance's traffic, kept by the API.
 *
 * A thread of the API server samples, once a second, the counters the API already shows:
 * the bytes of both stacks' TCP connections (the unified table), every volume's reads and
 * writes, every session's commands, bytes, mean command latency and stack. Each sample is
 * a rate over the second before it; a ring keeps the last API_HIST_LEN of them, so a page
 * that reloads finds its charts again (GET /api/v1/history, history.c and h_history.c).
 *
 * Bounded: the ring is one allocation made at the start, with room for API_HIST_SLOTS
 * sessions and as many volumes; a session or volume gone for a whole ring gives its slot
 * back, and one that finds no free slot is not kept (the answer's "dropped" counts them).
 */
#ifndef TOEGW_API_HISTORY_INT_H
#define TOEGW_API_HISTORY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api_int.h"

#define API_HIST_LEN 600        /* samples kept: ten minutes of one a second */
#define API_HIST_PERIOD_MS 1000
#define API_HIST_SLOTS 32       /* sessions kept, and volumes kept */
#define API_HIST_NO_LAT UINT32_MAX

enum api_hist_stack { API_HIST_NONE = 0, API_HIST_HOST, API_HIST_TOE };

struct api_hist_vol {
    bool used, present;          /* a slot in use; seen in the last sample */
    char id[STO_ID_MAX];
    char session[STO_ID_MAX];
    uint64_t last_seq;           /* the last sample it was seen in */
    bool have_prev;
    uint64_t prev[4];            /* read_bytes, write_bytes, reads, writes */
    uint64_t read_bytes[API_HIST_LEN], write_bytes[API_HIST_LEN]; /* per second */
    uint32_t reads[API_HIST_LEN], writes[API_HIST_LEN];
};

struct api_hist_sess {
    bool used, present;
    char id[STO_ID_MAX];
    char target[STO_NAME_MAX];
    uint64_t last_seq;
    bool have_prev;
    uint64_t prev[4];            /* read_bytes, write_bytes, commands, latency count */
    uint64_t prev_lat_ns;        /* the latency histogram's sum */
    uint64_t read_bytes[API_HIST_LEN], write_bytes[API_HIST_LEN];
    uint32_t commands[API_HIST_LEN];
    uint32_t latency_us[API_HIST_LEN]; /* mean of the second's commands; API_HIST_NO_LAT */
    uint8_t stack[API_HIST_LEN];       /* enum api_hist_stack */
};

/* One connection's byte counts at the previous sample (sorted by id). */
struct api_hist_conn {
    char id[32];
    uint64_t in, out;
};

struct api_history {
    const struct api_config *cfg;    /* borrowed (the server's) */
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;            /* guards everything below */
    pthread_cond_t wake;             /* CLOCK_MONOTONIC */
    bool stop;
    uint64_t seq;                    /* samples taken; sample k is at k % API_HIST_LEN */
    int64_t t_ms[API_HIST_LEN];      /* its wall-clock time (Unix ms) */
    uint64_t stack_in[2][API_HIST_LEN], stack_out[2][API_HIST_LEN]; /* by enum stk_stack */
    uint64_t dropped;                /* sessions and volumes that found no free slot */
    struct timespec last_mono;       /* when the last sample was taken */
    struct api_hist_conn *conns;     /* the previous sample's connections */
    size_t nconns;
    bool have_conns;
    struct api_hist_vol vols[API_HIST_SLOTS];
    struct api_hist_sess sess[API_HIST_SLOTS];
};

/* Start sampling (NULL with errno when it cannot); stop and free. */
struct api_history *api_history_start(const struct api_config *cfg);
void api_history_stop(struct api_history *h);
/*
 * Take one sample now, dt_ms after the last (the thread does this every second; tests
 * take theirs on a history that was never started: api_history_new).
 */
struct api_history *api_history_new(const struct api_config *cfg);
void api_history_free(struct api_history *h);
void api_history_sample(struct api_history *h, int64_t now_ms, uint64_t dt_ms);
/*
 * What a sample writes, from what it read: in/out the stacks' bytes since the last sample
 * (by enum stk_stack), the sessions and volumes now (NULL: not known this time).
 */
void api_history_put(struct api_history *h, int64_t now_ms, uint64_t dt_ms,
                     const uint64_t in[2], const uint64_t out[2],
                     const struct sto_session_view *sv, size_t nsv,
                     const struct sto_volume_view *vv, size_t nvv);

/* The samples after seq `since` (0: all kept) as the answer of GET /api/v1/history. */
json_t *api_history_json(struct api_history *h, uint64_t since);

#endif
