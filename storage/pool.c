/*
 * pool.c - the storage pool (pool.h): N storage loops with a manager and an NBD server
 * each, the placement of targets, the directory of live volumes, and the calls of other
 * threads routed to the loop that holds what they name.
 *
 * Ownership: the pool owns the loops, their threads, managers and servers. Its two maps
 * (targets -> loop, live volumes -> loop) are guarded by `lock`; the managers tell it of
 * their volumes from their loops (volume_event), the NBD servers and the API threads read
 * it. Lock order: nothing is called with `lock` held.
 */
#include "storage/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct pool_shard {
    struct sto_pool *pool;
    unsigned idx;
    struct sto_loop *loop;
    struct sto_mgr *m;
    struct nbds_server *nbd;
    pthread_t thread;
    bool running;
    unsigned ntargets;           /* targets placed here (under the pool's lock) */
};

/* One entry of a map: a target IQN or a volume id, and its loop. */
struct pool_entry {
    char key[STO_NAME_MAX];
    unsigned shard;
    unsigned creating;           /* targets: session creates under way */
    uint64_t gen;                /* targets: creates begun, ever */
};

struct pool_map {
    struct pool_entry *e;
    size_t n, cap;
};

struct sto_pool {
    unsigned n;
    struct pool_shard *shards;
    pthread_mutex_t lock;        /* targets, volumes, shards[].ntargets */
    struct pool_map targets;     /* targets with a session or a create under way */
    struct pool_map volumes;     /* live volumes */
    pthread_mutex_t access_lock; /* one access change at a time: every loop's table agrees */
    atomic_uint next_discover;   /* discoveries take turns over the loops */
};

/* ---------------------------------------------------------------- the maps (locked) */

static struct pool_entry *map_find(struct pool_map *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].key, key))
            return &m->e[i];
    return NULL;
}

static int map_put(struct pool_map *m, const char *key, unsigned shard)
{
    struct pool_entry *e = map_find(m, key);

    if (!e) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            struct pool_entry *ne = realloc(m->e, cap * sizeof(*ne));
            if (!ne)
                return -ENOMEM;
            m->e = ne;
            m->cap = cap;
        }
        e = &m->e[m->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s", key);
    }
    e->shard = shard;
    return 0;
}

static void map_drop(struct pool_map *m, const char *key, unsigned shard)
{
    struct pool_entry *e = map_find(m, key);

    if (e && e->shard == shard)
        *e = m->e[--m->n];
}

/* The loop of a live volume; -1 when none has it. */
static int volume_shard(struct sto_pool *p, const char *id)
{
    int s = -1;

    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = map_find(&p->volumes, id);
    if (e)
        s = (int)e->shard;
    pthread_mutex_unlock(&p->lock);
    return s;
}

/*
 * The loop of a target a session create begins for: where it is placed, or else the loop
 * with the fewest targets, where it stays while it has a session. -ENOMEM when it cannot be
 * recorded. target_release follows.
 */
static int target_shard(struct sto_pool *p, const char *target)
{
    int s;

    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = map_find(&p->targets, target);
    if (!e) {
        unsigned best = 0;
        for (unsigned i = 1; i < p->n; i++)
            if (p->shards[i].ntargets < p->shards[best].ntargets)
                best = i;
        if (map_put(&p->targets, target, best) == 0) {
            p->shards[best].ntargets++;
            e = map_find(&p->targets, target);
        }
    }
    s = e ? (int)e->shard : -ENOMEM;
    if (e) {
        e->creating++;
        e->gen++;
    }
    pthread_mutex_unlock(&p->lock);
    return s;
}

/* Whether loop s's manager has a session to target (in any state; when unsure, yes). */
static bool shard_has_target(struct sto_pool *p, unsigned s, const char *target)
{
    struct sto_session_view *v = NULL;
    size_t n = 0;
    bool has = false;

    if (sto_mgr_list_sessions(p->shards[s].m, &v, &n) < 0)
        return true;
    for (size_t i = 0; i < n && !has; i++)
        has = strcmp(v[i].target, target) == 0;
    free(v);
    return has;
}

/* A session create for target on loop s ended (whatever came of it). */
static void target_create_ended(struct sto_pool *p, const char *target, unsigned s)
{
    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = map_find(&p->targets, target);
    if (e && e->shard == s && e->creating)
        e->creating--;
    pthread_mutex_unlock(&p->lock);
}

/*
 * After a failed create or a session delete: a target with no session and no create under
 * way gives its place up, so that logins that fail (an unknown target, a typo) leave
 * nothing behind. The manager is asked without the lock; a create that began meanwhile
 * (gen moved) keeps the place.
 */
static void target_release(struct sto_pool *p, const char *target, unsigned s)
{
    struct pool_entry *e;
    uint64_t gen = 0;
    bool idle = false;

    pthread_mutex_lock(&p->lock);
    e = map_find(&p->targets, target);
    if (e && e->shard == s) {
        idle = e->creating == 0;
        gen = e->gen;
    }
    pthread_mutex_unlock(&p->lock);
    if (!idle || shard_has_target(p, s, target))
        return;
    pthread_mutex_lock(&p->lock);
    e = map_find(&p->targets, target);
    if (e && e->shard == s && e->creating == 0 && e->gen == gen) {
        map_drop(&p->targets, target, s);
        p->shards[s].ntargets--;
    }
    pthread_mutex_unlock(&p->lock);
}

/* A manager's volume came to life or left it (on that manager's loop). */
static void on_volume(void *arg, const char *id, bool live)
{
    struct pool_shard *sh = arg;
    struct sto_pool *p = sh->pool;

    pthread_mutex_lock(&p->lock);
    if (!live)
        map_drop(&p->volumes, id, sh->idx);
    else if (map_put(&p->volumes, id, sh->idx) < 0)
        log_error("storage", "volume %s cannot be exported over nbd: out of memory", id);
    pthread_mutex_unlock(&p->lock);
}

/* ---------------------------------------------------------------- the NBD servers' peers */

static struct nbds_server *peer_server_of(void *arg, const char *id)
{
    struct sto_pool *p = arg;
    int s = volume_shard(p, id);

    return s < 0 ? NULL : p->shards[s].nbd;
}

static size_t peer_volume_ids(void *arg, char (*ids)[STO_ID_MAX], size_t max)
{
    struct sto_pool *p = arg;
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->volumes.n;
    for (size_t i = 0; i < n && i < max; i++)
        snprintf(ids[i], STO_ID_MAX, "%.*s", STO_ID_MAX - 1, p->volumes.e[i].key);
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* ---------------------------------------------------------------- lifecycle */

static void *shard_main(void *arg)
{
    struct pool_shard *sh = arg;

    sto_loop_run(sh->loop);
    return NULL;
}

/* One loop per CPU this process may run on: its affinity mask, which taskset, cgroup
 * cpusets and `docker run --cpuset-cpus` narrow, not every online core. Two loops sharing
 * one CPU only take turns on it and switch between them for every batch of events. */
static unsigned default_threads(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    else
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > STO_POOL_THREADS_MAX ? STO_POOL_THREADS_MAX : (unsigned)n;
}

/* Loop, manager and NBD server of shard i (the first listens). 0 or -1 with err. */
static int shard_make(struct sto_pool *p, unsigned i, const struct sto_pool_config *cfg,
                      char *err, size_t errlen)
{
    struct pool_shard *sh = &p->shards[i];
    struct sto_mgr_config mc = cfg->mgr;
    static const struct nbds_peers none;
    struct nbds_peers peers = { peer_server_of, peer_volume_ids, p };

    sh->pool = p;
    sh->idx = i;
    sh->loop = sto_loop_new();
    if (!sh->loop) {
        snprintf(err, errlen, "cannot create storage loop %u: %s", i, strerror(errno));
        return -1;
    }
    sto_loop_set_busy_poll(sh->loop, cfg->busy_poll_us);
    mc.volume_event = on_volume;
    mc.volume_event_arg = sh;
    sh->m = sto_mgr_new(sh->loop, &mc);
    if (!sh->m || sto_mgr_restore_access(sh->m, cfg->access, cfg->naccess) < 0) {
        snprintf(err, errlen, "cannot create storage loop %u's manager: out of memory", i);
        return -1;
    }
    if (!cfg->nbd_addr)
        return 0;
    sh->nbd = nbds_server_new(sh->loop, sh->m, i == 0 ? cfg->nbd_addr : NULL, cfg->nbd_lim,
                              err, errlen);
    if (!sh->nbd)
        return -1;
    nbds_server_set_tls(sh->nbd, cfg->nbd_tls, cfg->nbd_creds);
    nbds_server_set_peers(sh->nbd, p->n > 1 ? &peers : &none);
    return 0;
}

struct sto_pool *sto_pool_new(const struct sto_pool_config *cfg, char *err, size_t errlen)
{
    struct sto_pool *p = calloc(1, sizeof(*p));

    if (!p) {
        snprintf(err, errlen, "cannot create the storage pool: out of memory");
        return NULL;
    }
    p->n = cfg->threads ? cfg->threads : default_threads();
    if (p->n > STO_POOL_THREADS_MAX)
        p->n = STO_POOL_THREADS_MAX;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->access_lock, NULL);
    p->shards = calloc(p->n, sizeof(*p->shards));
    if (!p->shards) {
        snprintf(err, errlen, "cannot create the storage pool: out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < p->n; i++)
        if (shard_make(p, i, cfg, err, errlen) < 0)
            goto fail;
    for (unsigned i = 0; i < p->n; i++) {
        struct pool_shard *sh = &p->shards[i];
        char name[32];
        if (pthread_create(&sh->thread, NULL, shard_main, sh) != 0) {
            snprintf(err, errlen, "cannot start storage thread %u", i);
            goto fail;
        }
        sh->running = true;
        snprintf(name, sizeof(name), "toegw-sto%u", i);
        pthread_setname_np(sh->thread, name);
    }
    return p;
fail:
    sto_pool_free(p);
    return NULL;
}

struct shutdown_arg {
    struct sto_mgr *m;
    uint32_t timeout_ms;
};

static void *shutdown_one(void *arg)
{
    struct shutdown_arg *a = arg;

    sto_mgr_shutdown(a->m, a->timeout_ms);
    return NULL;
}

void sto_pool_shutdown(struct sto_pool *p, uint32_t timeout_ms)
{
    struct shutdown_arg args[STO_POOL_THREADS_MAX];
    pthread_t th[STO_POOL_THREADS_MAX];
    bool started[STO_POOL_THREADS_MAX];

    for (unsigned i = 0; i < p->n; i++) {
        args[i] = (struct shutdown_arg){ p->shards[i].m, timeout_ms };
        started[i] = pthread_create(&th[i], NULL, shutdown_one, &args[i]) == 0;
    }
    for (unsigned i = 0; i < p->n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            shutdown_one(&args[i]); /* no thread: this loop's logouts after the others' */
    }
}

void sto_pool_free(struct sto_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; p->shards && i < p->n; i++)
        if (p->shards[i].running)
            sto_loop_stop(p->shards[i].loop);
    for (unsigned i = 0; p->shards && i < p->n; i++)
        if (p->shards[i].running)
            pthread_join(p->shards[i].thread, NULL);
    /* clients on their way between loops arrive before the servers go (nbd_move.c) */
    for (bool again = true; again && p->shards;) {
        again = false;
        for (unsigned i = 0; i < p->n; i++)
            if (p->shards[i].loop && sto_loop_drain(p->shards[i].loop))
                again = true;
    }
    for (unsigned i = 0; p->shards && i < p->n; i++) {
        nbds_server_free(p->shards[i].nbd);
        sto_mgr_free(p->shards[i].m);
        sto_loop_free(p->shards[i].loop);
    }
    free(p->shards);
    free(p->targets.e);
    free(p->volumes.e);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->access_lock);
    free(p);
}

unsigned sto_pool_threads(const struct sto_pool *p)
{
    return p->n;
}

void sto_pool_nbd_stats(const struct sto_pool *p, struct nbds_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < p->n; i++) {
        struct nbds_stats s;
        if (!p->shards[i].nbd)
            continue;
        nbds_server_stats(p->shards[i].nbd, &s);
        out->clients_total += s.clients_total;
        out->clients_now += s.clients_now;
        out->requests += s.requests;
        out->errors += s.errors;
        out->disconnects_mid_request += s.disconnects_mid_request;
    }
}

const char *sto_pool_initiator(const struct sto_pool *p)
{
    return sto_mgr_initiator(p->shards[0].m);
}

/* ---------------------------------------------------------------- calls */

int sto_pool_discover(struct sto_pool *p, const char *portal, enum stk_policy stack,
                      const struct sto_chap *chap, struct isc_target_list **out,
                      struct sto_result *res)
{
    unsigned i = atomic_fetch_add(&p->next_discover, 1) % p->n;

    return sto_mgr_discover(p->shards[i].m, portal, stack, chap, out, res);
}

int sto_pool_session_create(struct sto_pool *p, const struct sto_session_req *req,
                            char id_out[STO_ID_MAX], struct sto_result *res)
{
    int s = target_shard(p, req->target), ret;

    if (s < 0) {
        *res = (struct sto_result){ .err = s, .cls = STO_ERR_INTERNAL };
        snprintf(res->msg, sizeof(res->msg), "out of memory");
        return s;
    }
    ret = sto_mgr_session_create(p->shards[s].m, req, id_out, res);
    target_create_ended(p, req->target, (unsigned)s);
    if (ret < 0) /* a session made holds the place: nothing to ask */
        target_release(p, req->target, (unsigned)s);
    return ret;
}

/*
 * Sessions are found by asking each loop in turn (ids are random; a loop answers "no
 * session" at once). The first answer other than -ENOENT stands. The session's target may
 * give its place up afterwards (target_release).
 */
int sto_pool_session_delete(struct sto_pool *p, const char *id, struct sto_result *res)
{
    struct sto_session_view v;
    int ret = -ENOENT;

    for (unsigned i = 0; i < p->n && ret == -ENOENT; i++) {
        int got = sto_mgr_get_session(p->shards[i].m, id, &v);
        if (got == -ENOENT)
            continue;
        ret = sto_mgr_session_delete(p->shards[i].m, id, res); /* its error if got failed */
        if (ret == 0 && got == 0)
            target_release(p, v.target, i);
    }
    if (ret == -ENOENT) {
        *res = (struct sto_result){ .err = -ENOENT, .cls = STO_ERR_NOT_FOUND };
        snprintf(res->msg, sizeof(res->msg), "no session %s", id);
    }
    return ret;
}

size_t sto_pool_targets_placed(struct sto_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->targets.n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int sto_pool_get_session(struct sto_pool *p, const char *id, struct sto_session_view *out)
{
    int ret = -ENOENT;

    for (unsigned i = 0; i < p->n && ret == -ENOENT; i++)
        ret = sto_mgr_get_session(p->shards[i].m, id, out);
    return ret;
}

/* The loop to ask about volume id: its own, or the first (which answers "no volume"). */
static struct sto_mgr *volume_mgr(struct sto_pool *p, const char *id)
{
    int s = volume_shard(p, id);

    return p->shards[s < 0 ? 0 : s].m;
}

int sto_pool_get_volume(struct sto_pool *p, const char *id, struct sto_volume_view *out)
{
    return sto_mgr_get_volume(volume_mgr(p, id), id, out);
}

int sto_pool_volume_read(struct sto_pool *p, const char *id, uint64_t offset, uint32_t len,
                         void *buf, struct sto_result *res)
{
    return sto_mgr_volume_read(volume_mgr(p, id), id, offset, len, buf, res);
}

int sto_pool_volume_write(struct sto_pool *p, const char *id, uint64_t offset, uint32_t len,
                          const void *buf, struct sto_result *res)
{
    return sto_mgr_volume_write(volume_mgr(p, id), id, offset, len, buf, res);
}

int sto_pool_volume_set_access(struct sto_pool *p, const char *id,
                               const struct sto_access_patch *patch, struct sto_result *res)
{
    struct sto_mgr *owner;
    struct sto_volume_view *v = malloc(sizeof(*v));
    int ret;

    if (!v)
        return -ENOMEM;
    pthread_mutex_lock(&p->access_lock);
    owner = volume_mgr(p, id);
    ret = sto_mgr_volume_set_access(owner, id, patch, res);
    if (ret == 0 && p->n > 1 && (ret = sto_mgr_get_volume(owner, id, v)) == 0) {
        for (unsigned i = 0; i < p->n && ret == 0; i++)
            if (p->shards[i].m != owner)
                ret = sto_mgr_store_access(p->shards[i].m, &v->access, res);
    }
    pthread_mutex_unlock(&p->access_lock);
    free(v);
    return ret;
}

/* Every loop's table is the same (sto_pool_volume_set_access): the first loop's is it. */
int sto_pool_export_access(struct sto_pool *p, struct sto_vol_access **out, size_t *n)
{
    return sto_mgr_export_access(p->shards[0].m, out, n);
}

/*
 * Concatenate the loops' snapshots of `size`-byte items: take(m, &part, &count) per loop.
 * `secret`: the parts are wiped before they are freed.
 */
static int concat(struct sto_pool *p, size_t size, bool secret,
                  int (*take)(struct sto_mgr *m, void *part, size_t *count), void **out,
                  size_t *n)
{
    char *all = NULL;
    size_t total = 0;

    for (unsigned i = 0; i < p->n; i++) {
        char *part = NULL;
        size_t cnt = 0;
        int ret = take(p->shards[i].m, &part, &cnt);
        char *grown = ret < 0 ? NULL : realloc(all, (total + cnt + 1) * size);
        if (grown) {
            all = grown;
            if (cnt)
                memcpy(all + total * size, part, cnt * size);
            total += cnt;
        }
        if (part && secret)
            explicit_bzero(part, cnt * size);
        free(part);
        if (!grown) {
            if (all && secret)
                explicit_bzero(all, total * size);
            free(all);
            return ret < 0 ? ret : -ENOMEM;
        }
    }
    *out = all;
    *n = total;
    return 0;
}

static int take_sessions(struct sto_mgr *m, void *part, size_t *n)
{
    return sto_mgr_list_sessions(m, part, n);
}

static int take_volumes(struct sto_mgr *m, void *part, size_t *n)
{
    return sto_mgr_list_volumes(m, part, n);
}

static int take_requests(struct sto_mgr *m, void *part, size_t *n)
{
    return sto_mgr_export_sessions(m, part, n);
}

int sto_pool_list_sessions(struct sto_pool *p, struct sto_session_view **out, size_t *n)
{
    return concat(p, sizeof(**out), false, take_sessions, (void **)out, n);
}

int sto_pool_list_volumes(struct sto_pool *p, struct sto_volume_view **out, size_t *n)
{
    return concat(p, sizeof(**out), false, take_volumes, (void **)out, n);
}

int sto_pool_export_sessions(struct sto_pool *p, struct sto_session_req **out, size_t *n)
{
    return concat(p, sizeof(**out), true, take_requests, (void **)out, n);
}
