/*
 * manager.c - sessions and volumes of the appliance, on the storage loop.
 *
 * Three parts:
 *  - calls: other threads run a struct mgr_call on the loop with sto_loop_call and wait for
 *    it with a timeout. A caller that gave up hands the call over to the loop, which frees
 *    it once it ends, so the loop never writes into freed memory and the caller never reads
 *    a call it let go of.
 *  - sessions: login through the connector (the broker), then an asynchronous LUN probe
 *    (REPORT LUNS; per LUN TEST UNIT READY, INQUIRY, READ CAPACITY, VPD pages), then
 *    volumes. A logged-in session that fails (or that the target asks to log out) goes to
 *    "recovering": it logs in again every DefaultTime2Wait seconds for as long as it
 *    exists, holding volume I/O meanwhile up to the replacement timeout (then that I/O
 *    fails with EIO, and new I/O fails at once until the session is back).
 *  - volume I/O: byte ranges split into SCSI commands within the LUN's limits, run in
 *    parallel, re-queued (not failed) when the session drops and recovers.
 */
#include "storage/manager.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "storage/chap.h"
#include "storage/scsi.h"

#define DEF_CALL_TIMEOUT_MS 30000
#define DEF_REPLACEMENT_TIMEOUT_MS 120000
#define RETRY_SOON_MS 200          /* first login after a drop; polling a session leaving */
/*
 * A command aborted after the command timeout (or ended by a LUN reset) is issued this many
 * times more before its request fails: a target that stalled for a moment is not an error
 * (the Linux SCSI disk driver retries too), one that keeps stalling is.
 */
#define CHUNK_TIMEOUT_RETRIES 1
#define DEF_MAX_OUTSTANDING 128
#define DEF_MAX_OUTSTANDING_WRITES 32
#define IO_CHUNK_MAX (4u * 1024 * 1024)
#define VOLUMES_MAX 256

enum ms_state {
    MS_LOGGING_IN,
    MS_PROBING,
    MS_LOGGED_IN,
    MS_RECOVERING,
    MS_LOGGING_OUT,
    MS_FAILED,
    MS_LOGGED_OUT,
};

static const char *ms_state_name(enum ms_state st)
{
    switch (st) {
    case MS_LOGGING_IN:
    case MS_PROBING:
        return "logging_in";
    case MS_LOGGED_IN:
        return "logged_in";
    case MS_RECOVERING:
        return "recovering";
    case MS_LOGGING_OUT:
        return "logged_in";
    case MS_FAILED:
        return "failed";
    case MS_LOGGED_OUT:
        return "logged_out";
    }
    return "failed";
}

struct mgr_call;
struct mgr_session;
struct vchunk;

struct sto_volume {
    int refs;
    struct sto_mgr *m;
    struct mgr_session *ses;       /* NULL once the session is gone */
    char id[STO_ID_MAX];
    struct sto_lun_info li;
    uint32_t chunk;                /* bytes per SCSI command */
    bool no_write_same;            /* the LUN refused WRITE SAME: zero with plain writes */
    struct sto_volume_view stats;  /* counters part only */
    struct sto_volume *next;
};

/* A session's probe of its LUNs (probe.c does each step). */
struct probe {
    struct sto_probe *op;          /* the REPORT LUNS or LUN probe under way, or NULL */
    uint32_t *luns;
    size_t nluns, idx;
    int skipped_err;
    char skipped[STO_ERR_MAX];     /* why the last unusable LUN was left out */
};

struct mgr_session {
    struct sto_mgr *m;
    struct sto_session_req req;    /* holds secrets: wiped on free */
    char id[STO_ID_MAX];
    enum ms_state state;
    char error[STO_ERR_MAX];
    struct isc_session *s;
    struct stk_conn *conn;         /* the broker's descriptor conn while connected */
    struct probe *probe;
    struct sto_volume *vols[VOLUMES_MAX];
    size_t nvols;
    struct mgr_call *create_call;  /* completes when login + probe finish */
    struct mgr_call *delete_call;
    struct sto_timer retry_timer;  /* the next login while recovering */
    struct sto_timer repl_timer;   /* the replacement timeout while recovering */
    bool io_failfast;              /* past it: I/O fails at once until the session is back */
    uint32_t recoveries;
    struct vchunk *held_head, *held_tail;
    /* chunks waiting for a free command slot of the session (-EBUSY), in arrival order */
    struct vchunk *busy_head, *busy_tail;
    struct mgr_session *next;
};

struct sto_mgr {
    struct sto_loop *loop;
    struct sto_mgr_config cfg;
    char initiator[STO_NAME_MAX];
    struct mgr_session *sessions;
    struct sto_volume *volumes;    /* every live volume, also those held by refs */
    bool shutting_down;
    struct mgr_call *shutdown_call; /* ends when the logouts of the shutdown have */
    atomic_int shutdown_pending;   /* those logouts (read by the waiting thread) */
};

/* ---------------------------------------------------------------- calls */

/*
 * A call of another thread into the manager (sto_loop_call): the caller's arguments in, the
 * loop's results out. Until the loop ends it (call_finish) the loop may write into it; what
 * becomes of it after is sto_loop_call's answer (storage/loop.h).
 */
struct mgr_call {
    struct sto_call call;          /* first: the loop's handle on it */
    struct sto_mgr *m;
    void (*run)(struct sto_mgr *m, struct mgr_call *c);
    struct sto_result res;
    /* arguments and results */
    struct sto_session_req sreq;
    char id[STO_ID_MAX];
    uint64_t offset;
    uint32_t len;
    uint8_t *data;                 /* owned by the call */
    void *out;                     /* owned by the call until taken */
    void (*out_free)(void *out);   /* how `out` is freed (NULL: free) */
    size_t nout;
    struct sto_chap chap;
    enum stk_policy policy;
};

static void call_free(struct mgr_call *c)
{
    explicit_bzero(&c->sreq.chap, sizeof(c->sreq.chap));
    explicit_bzero(&c->chap, sizeof(c->chap));
    free(c->data);
    if (c->out)
        (c->out_free ? c->out_free : free)(c->out);
    free(c);
}

static void call_free_cb(struct sto_call *call)
{
    call_free((struct mgr_call *)call);
}

/* Loop thread: the call's result is known. The loop never touches c afterwards. */
static void call_finish(struct mgr_call *c, int err, enum sto_err_class cls, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void call_finish(struct mgr_call *c, int err, enum sto_err_class cls, const char *fmt,
                        ...)
{
    va_list ap;

    c->res.err = err;
    c->res.cls = err ? cls : STO_ERR_NONE;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(c->res.msg, sizeof(c->res.msg), fmt, ap);
        va_end(ap);
    }
    sto_call_done(&c->call);
}

static void run_shutdown_all(struct sto_mgr *m, struct mgr_call *c);

static void call_dispatch(struct sto_call *call)
{
    struct mgr_call *c = (struct mgr_call *)call;

    if (c->m->shutting_down && c->run != run_shutdown_all) {
        call_finish(c, -ESHUTDOWN, STO_ERR_UNAVAILABLE, "the appliance is shutting down");
        return;
    }
    c->run(c->m, c);
}

static struct mgr_call *call_new(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *))
{
    struct mgr_call *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->call.run = call_dispatch;
    c->call.free = call_free_cb;
    c->m = m;
    c->run = run;
    return c;
}

/*
 * Run c on the loop and wait up to ms. True when it ended: c is the caller's again (results
 * in c->res, also copied to *res; *err is c->res.err), to read and then call_free. False
 * when it did not: c is no longer the caller's (never touch it again), *err and *res say why.
 */
static bool call_through(struct sto_mgr *m, struct mgr_call *c, uint32_t ms,
                         struct sto_result *res, int *err)
{
    struct sto_result r = { 0 };

    switch (sto_loop_call(m->loop, &c->call, ms)) {
    case STO_CALL_DONE:
        *err = c->res.err;
        if (res)
            *res = c->res;
        return true;
    case STO_CALL_TIMED_OUT:
        r.err = -ETIMEDOUT;
        r.cls = STO_ERR_UNAVAILABLE;
        snprintf(r.msg, sizeof(r.msg), "the storage loop did not answer within %u ms", ms);
        break;
    case STO_CALL_NOT_POSTED:
        r.err = -ESHUTDOWN;
        r.cls = STO_ERR_INTERNAL;
        snprintf(r.msg, sizeof(r.msg), "cannot reach the storage loop");
        break;
    }
    *err = r.err;
    if (res)
        *res = r;
    return false;
}

/*
 * Run `run` (with `id` as its argument, when given) and take over what it left in c->out:
 * *out (caller frees) and, when n is given, the count in c->nout.
 */
static int call_take(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                     const char *id, void **out, size_t *n)
{
    struct mgr_call *c = call_new(m, run);
    int ret;

    if (!c)
        return -ENOMEM;
    if (id)
        snprintf(c->id, sizeof(c->id), "%s", id);
    if (!call_through(m, c, m->cfg.call_timeout_ms, NULL, &ret))
        return ret;
    if (ret == 0) {
        *out = c->out;
        if (n)
            *n = c->nout;
        c->out = NULL;
    }
    call_free(c);
    return ret;
}

/* call_take for one view copied into *out. */
static int call_take_one(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                         const char *id, void *out, size_t size)
{
    void *v = NULL;
    int ret = call_take(m, run, id, &v, NULL);

    if (ret == 0) {
        memcpy(out, v, size);
        free(v);
    }
    return ret;
}

/* ---------------------------------------------------------------- lifecycle */

struct sto_mgr *sto_mgr_new(struct sto_loop *loop, const struct sto_mgr_config *cfg)
{
    struct sto_mgr *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->loop = loop;
    m->cfg = *cfg;
    if (!m->cfg.call_timeout_ms)
        m->cfg.call_timeout_ms = DEF_CALL_TIMEOUT_MS;
    if (!m->cfg.replacement_timeout_ms)
        m->cfg.replacement_timeout_ms = DEF_REPLACEMENT_TIMEOUT_MS;
    if (!m->cfg.timeouts.logout_ms)
        m->cfg.timeouts.logout_ms = ISC_DEF_LOGOUT_TIMEOUT_MS;
    if (!m->cfg.max_outstanding)
        m->cfg.max_outstanding = DEF_MAX_OUTSTANDING;
    if (!m->cfg.max_outstanding_writes)
        m->cfg.max_outstanding_writes = DEF_MAX_OUTSTANDING_WRITES;
    snprintf(m->initiator, sizeof(m->initiator), "%s",
             cfg->initiator_name ? cfg->initiator_name : ISC_DEFAULT_INITIATOR);
    m->cfg.initiator_name = m->initiator;
    return m;
}

void sto_volume_id(const char *target, uint32_t lun, char out[STO_ID_MAX])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char in[STO_NAME_MAX + 16];
    int n = snprintf(in, sizeof(in), "%s/%u", target, lun);

    EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    snprintf(out, STO_ID_MAX, "v-%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
             md[3], md[4], md[5], md[6], md[7]);
}

static void new_session_id(char out[STO_ID_MAX])
{
    uint8_t r[6];

    isc_chap_random(r, sizeof(r));
    snprintf(out, STO_ID_MAX, "s-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
             r[5]);
}

static struct mgr_session *ses_find(struct sto_mgr *m, const char *id)
{
    for (struct mgr_session *ms = m->sessions; ms; ms = ms->next)
        if (!strcmp(ms->id, id))
            return ms;
    return NULL;
}

struct sto_volume *sto_volume_find(struct sto_mgr *m, const char *id)
{
    for (struct sto_volume *v = m->volumes; v; v = v->next)
        if (v->ses && !strcmp(v->id, id))
            return v;
    return NULL;
}

size_t sto_mgr_volume_ids(struct sto_mgr *m, char (*ids)[STO_ID_MAX], size_t max)
{
    size_t n = 0;

    for (struct sto_volume *v = m->volumes; v; v = v->next) {
        if (!v->ses)
            continue;
        if (n < max)
            snprintf(ids[n], STO_ID_MAX, "%s", v->id);
        n++;
    }
    return n;
}

const struct sto_lun_info *sto_volume_info(const struct sto_volume *v) { return &v->li; }
void sto_volume_ref(struct sto_volume *v) { v->refs++; }
bool sto_volume_alive(const struct sto_volume *v) { return v->ses != NULL; }

void sto_volume_unref(struct sto_volume *v)
{
    if (--v->refs > 0)
        return;
    struct sto_volume **pp = &v->m->volumes;
    while (*pp && *pp != v)
        pp = &(*pp)->next;
    if (*pp)
        *pp = v->next;
    free(v);
}

/* ---------------------------------------------------------------- connector glue */

static int ses_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                       char *err, size_t errlen)
{
    struct mgr_session *ms = arg;
    struct sto_mgr *m = ms->m;
    int ret;

    if (m->cfg.net.connect)
        ret = m->cfg.net.connect(m->cfg.net.arg, ms->id, ms->req.stack, ms->req.reservation,
                                 dst, out, err, errlen);
    else
        ret = stk_host_connect(dst, 0, out);
    if (ret == 0)
        ms->conn = *out;
    return ret;
}

static void ses_release(void *arg, struct stk_conn *c, bool abort)
{
    struct mgr_session *ms = arg;
    struct sto_mgr *m = ms->m;

    ms->conn = NULL;
    if (m->cfg.net.release)
        m->cfg.net.release(m->cfg.net.arg, ms->id, c, abort);
    else
        stk_conn_close(c, abort);
}

/* Map a login/connect failure to an error class. */
static enum sto_err_class login_class(int err)
{
    switch (err) {
    case -ECONNREFUSED:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENETDOWN:
        return STO_ERR_UNREACHABLE;
    case -ENODEV:
    case -EMFILE:
        return STO_ERR_UNAVAILABLE;
    case -ENOENT:
    case -EPERM:
    case -EBUSY:
    case -EADDRINUSE:
        return STO_ERR_CONFLICT;
    default:
        return STO_ERR_LOGIN;
    }
}

/* ---------------------------------------------------------------- discovery */

/*
 * One discovery: its own session, owned by "discovery" in the broker. The context lives
 * until the session is freed; the call is finished (and forgotten) as soon as the answer
 * is known.
 */
struct disc {
    struct sto_mgr *m;
    enum stk_policy policy;
    struct isc_session *s;
    struct mgr_call *c;
};

static int disc_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                        char *err, size_t errlen)
{
    struct disc *d = arg;
    struct sto_mgr *m = d->m;

    if (m->cfg.net.connect)
        return m->cfg.net.connect(m->cfg.net.arg, "discovery", d->policy, 0, dst, out, err,
                                  errlen);
    return stk_host_connect(dst, 0, out);
}

static void disc_release(void *arg, struct stk_conn *conn, bool abort)
{
    struct disc *d = arg;
    struct sto_mgr *m = d->m;

    if (m->cfg.net.release)
        m->cfg.net.release(m->cfg.net.arg, "discovery", conn, abort);
    else
        stk_conn_close(conn, abort);
}

static void disc_free_later(void *arg)
{
    struct disc *d = arg;

    isc_session_free(d->s);
    free(d);
}

static void disc_logout_cb(struct isc_session *s, int err, void *arg)
{
    struct disc *d = arg;

    (void)s;
    (void)err;
    sto_loop_post(d->m->loop, disc_free_later, d);
}

static void disc_targets_cb(struct isc_session *s, int err, struct isc_target_list *l,
                            void *arg)
{
    struct disc *d = arg;
    struct mgr_call *c = d->c;

    d->c = NULL;
    if (err) {
        call_finish(c, err, STO_ERR_IO, "sendtargets failed: %s", isc_session_error(s));
    } else {
        c->out = l;
        call_finish(c, 0, STO_ERR_NONE, NULL);
    }
    if (isc_session_logout(s, disc_logout_cb, d) < 0)
        sto_loop_post(d->m->loop, disc_free_later, d);
}

static void disc_login_cb(struct isc_session *s, int err, void *arg)
{
    struct disc *d = arg;
    int ret = err;

    if (!err)
        ret = isc_session_send_targets(s, disc_targets_cb, d);
    if (ret < 0) {
        call_finish(d->c, ret, err ? login_class(err) : STO_ERR_IO, "%s",
                    isc_session_error(s)[0] ? isc_session_error(s) : strerror(-ret));
        d->c = NULL;
        sto_loop_post(d->m->loop, disc_free_later, d);
    }
}

static void run_discover(struct sto_mgr *m, struct mgr_call *c)
{
    struct isc_session_config cfg = { 0 };
    struct disc *d;
    int ret;

    ret = stk_parse_hostport(c->sreq.portal, ISC_DEFAULT_PORT, &cfg.portal);
    if (ret < 0) {
        call_finish(c, ret, ret == -EHOSTUNREACH ? STO_ERR_UNREACHABLE : STO_ERR_INVALID,
                    "bad portal \"%.200s\"", c->sreq.portal);
        return;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    d->m = m;
    d->policy = c->policy;
    d->c = c;
    cfg.initiator_name = m->initiator;
    cfg.discovery = true;
    if (c->chap.user[0]) {
        cfg.chap_user = c->chap.user;
        cfg.chap_secret = c->chap.secret;
    }
    cfg.connector = (struct isc_connector){ disc_connect, disc_release, d };
    isc_config_timeouts(&cfg, &m->cfg.timeouts);
    d->s = isc_session_new(m->loop, &cfg);
    if (!d->s) {
        free(d);
        call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    ret = isc_session_login(d->s, disc_login_cb, d);
    if (ret < 0) {
        call_finish(c, ret, login_class(ret), "%s", isc_session_error(d->s)[0]
                                                        ? isc_session_error(d->s)
                                                        : strerror(-ret));
        isc_session_free(d->s);
        free(d);
    }
}

static void target_list_free(void *l)
{
    isc_target_list_free(l);
}

int sto_mgr_discover(struct sto_mgr *m, const char *portal, enum stk_policy stack,
                     const struct sto_chap *chap, struct isc_target_list **out,
                     struct sto_result *res)
{
    struct mgr_call *c = call_new(m, run_discover);
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->sreq.portal, sizeof(c->sreq.portal), "%s", portal);
    c->policy = stack;
    if (chap)
        c->chap = *chap;
    c->out_free = target_list_free;
    if (!call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0) {
        *out = c->out;
        c->out = NULL;
    }
    call_free(c);
    return ret;
}

/* ---------------------------------------------------------------- probe */

static void ses_login_done(struct mgr_session *ms, int err, const char *msg);
static void probe_next(struct mgr_session *ms);

static void add_volume(struct mgr_session *ms, const struct sto_lun_info *li)
{
    struct sto_volume *v;
    char id[STO_ID_MAX];

    if (ms->nvols >= VOLUMES_MAX)
        return;
    sto_volume_id(ms->req.target, li->lun, id);
    v = calloc(1, sizeof(*v));
    if (!v)
        return;
    v->refs = 1;
    v->m = ms->m;
    v->ses = ms;
    snprintf(v->id, sizeof(v->id), "%s", id);
    v->li = *li;
    v->li.size_bytes = li->cap.blocks * li->cap.block_size;
    uint64_t chunk = IO_CHUNK_MAX;
    if (li->limits.max_transfer_blocks &&
        (uint64_t)li->limits.max_transfer_blocks * li->cap.block_size < chunk)
        chunk = (uint64_t)li->limits.max_transfer_blocks * li->cap.block_size;
    chunk -= chunk % li->cap.block_size;
    v->chunk = chunk ? (uint32_t)chunk : li->cap.block_size;
    v->next = ms->m->volumes;
    ms->m->volumes = v;
    ms->vols[ms->nvols++] = v;
}

/*
 * One LUN probed: a disk becomes a volume; a unit that is not connected (-ENODEV) or not a
 * disk is no volume; any other failure leaves the LUN out, said where the operator looks,
 * unless the session itself is gone.
 */
static void probe_lun_cb(void *arg, int err, const char *msg, const struct sto_lun_info *li)
{
    struct mgr_session *ms = arg;
    struct probe *p = ms->probe;

    p->op = NULL;
    p->idx++;
    if (!err && li->inq.peripheral_type == SCSI_TYPE_DISK) {
        add_volume(ms, li);
    } else if (err && err != -ENODEV) {
        if (isc_session_state(ms->s) != ISC_STATE_LOGGED_IN) {
            ses_login_done(ms, err, msg);
            return;
        }
        snprintf(p->skipped, sizeof(p->skipped), "lun %u is not exported: %s", li->lun, msg);
        p->skipped_err = err;
        log_warn("storage", "session %s: %s", ms->id, p->skipped);
    }
    probe_next(ms);
}

static void probe_luns_cb(void *arg, int err, const char *msg, uint32_t *luns, size_t n)
{
    struct mgr_session *ms = arg;
    struct probe *p = ms->probe;

    p->op = NULL;
    if (err) {
        ses_login_done(ms, err, msg);
        return;
    }
    p->luns = luns;
    p->nluns = n;
    probe_next(ms);
}

/* Probe the next LUN, or finish: disk LUNs, none usable, fail the session with the reason. */
static void probe_next(struct mgr_session *ms)
{
    struct probe *p = ms->probe;
    int ret;

    if (p->idx >= p->nluns) {
        if (!ms->nvols && p->skipped[0]) {
            char why[STO_ERR_MAX];
            snprintf(why, sizeof(why), "%s", p->skipped);
            ses_login_done(ms, p->skipped_err, why);
        } else {
            ses_login_done(ms, 0, NULL);
        }
        return;
    }
    ret = sto_probe_lun(ms->s, p->luns[p->idx], probe_lun_cb, ms, &p->op);
    if (ret < 0)
        ses_login_done(ms, ret, "cannot queue a probe command");
}

/* The session's LUNs: REPORT LUNS, then each LUN in turn. */
static void probe_start(struct mgr_session *ms)
{
    int ret = sto_probe_report_luns(ms->s, probe_luns_cb, ms, &ms->probe->op);

    if (ret < 0)
        ses_login_done(ms, ret, "cannot queue a probe command");
}

static void probe_free(struct mgr_session *ms)
{
    if (!ms->probe)
        return;
    sto_probe_abandon(ms->probe->op); /* only from ses_free: its session goes next */
    free(ms->probe->luns);
    free(ms->probe);
    ms->probe = NULL;
}

/* ---------------------------------------------------------------- sessions */

static void held_resubmit(struct mgr_session *ms);
static void held_fail(struct mgr_session *ms, int err, const char *why);

static void ses_free(struct mgr_session *ms)
{
    struct sto_mgr *m = ms->m;
    struct mgr_session **pp = &m->sessions;

    while (*pp && *pp != ms)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ms->next;
    sto_timer_disarm(m->loop, &ms->retry_timer);
    sto_timer_disarm(m->loop, &ms->repl_timer);
    probe_free(ms);
    /* calls still waiting on the session (the manager is being freed) end now */
    if (ms->create_call)
        call_finish(ms->create_call, -ESHUTDOWN, STO_ERR_UNAVAILABLE,
                    "the appliance is shutting down");
    if (ms->delete_call)
        call_finish(ms->delete_call, -ESHUTDOWN, STO_ERR_UNAVAILABLE,
                    "the appliance is shutting down");
    ms->create_call = ms->delete_call = NULL;
    held_fail(ms, -ENOTCONN, "the volume's session went away");
    for (size_t i = 0; i < ms->nvols; i++) {
        ms->vols[i]->ses = NULL;
        sto_volume_unref(ms->vols[i]);
    }
    isc_session_free(ms->s);
    explicit_bzero(&ms->req.chap, sizeof(ms->req.chap));
    free(ms);
}

static void free_session_later(void *arg)
{
    ses_free(arg);
}

/* Login (and probe) finished, first time or after recovery. */
static void ses_login_done(struct mgr_session *ms, int err, const char *msg)
{
    struct sto_mgr *m = ms->m;
    struct mgr_call *c = ms->create_call;

    probe_free(ms);
    if (ms->state == MS_LOGGED_OUT || ms->state == MS_LOGGING_OUT)
        return; /* deleted meanwhile (run_session_delete): it is being freed */
    if (err) {
        snprintf(ms->error, sizeof(ms->error), "%s", msg && *msg ? msg : strerror(-err));
        if (ms->state == MS_RECOVERING) {
            /* the retry timer tries again; a probe that failed leaves the login behind */
            if (isc_session_state(ms->s) == ISC_STATE_LOGGED_IN)
                isc_session_drop(ms->s, err, ms->error);
            return;
        }
        ms->state = MS_FAILED;
        log_warn("storage", "session %s to %s at %s failed: %s", ms->id, ms->req.target,
                 ms->req.portal, ms->error);
        if (c)
            call_finish(c, err, login_class(err), "%s", ms->error);
        if (ms->delete_call) /* deleted while logging in: done now */
            call_finish(ms->delete_call, 0, STO_ERR_NONE, NULL);
        if (c || ms->delete_call) {
            ms->create_call = ms->delete_call = NULL;
            /* a session that never came up is not kept */
            sto_loop_post(m->loop, free_session_later, ms);
        }
        return;
    }
    ms->error[0] = '\0';
    if (ms->state == MS_RECOVERING)
        log_info("storage", "session %s recovered (attempt %u)", ms->id, ms->recoveries);
    else
        log_info("storage", "session %s to %s is up with %zu volume(s)", ms->id,
                 ms->req.target, ms->nvols);
    ms->state = MS_LOGGED_IN;
    ms->io_failfast = false;
    sto_timer_disarm(m->loop, &ms->repl_timer);
    held_resubmit(ms);
    if (c) {
        ms->create_call = NULL;
        snprintf(c->id, sizeof(c->id), "%s", ms->id);
        call_finish(c, 0, STO_ERR_NONE, NULL);
    }
}

static void ses_login_cb(struct isc_session *s, int err, void *arg)
{
    struct mgr_session *ms = arg;

    if (ms->state == MS_LOGGED_OUT || ms->state == MS_LOGGING_OUT)
        return; /* deleted meanwhile: it is being freed */
    if (err) {
        ses_login_done(ms, err, isc_session_error(s));
        return;
    }
    if (ms->nvols) {
        ses_login_done(ms, 0, NULL); /* recovered: the LUNs are known */
        return;
    }
    ms->probe = calloc(1, sizeof(*ms->probe));
    if (!ms->probe) {
        ses_login_done(ms, -ENOMEM, "out of memory");
        return;
    }
    ms->state = ms->state == MS_RECOVERING ? MS_RECOVERING : MS_PROBING;
    probe_start(ms);
}

/*
 * Recovering: log in again once the session has let go of its connection (a logout the
 * target asked for finishes first), every DefaultTime2Wait after a failed attempt, for as
 * long as the session exists (open-iscsi's behaviour; the replacement timeout bounds the
 * I/O, not the recovery).
 */
static void retry_cb(struct sto_timer *t)
{
    struct mgr_session *ms = (struct mgr_session *)((char *)t -
                                                    offsetof(struct mgr_session, retry_timer));
    struct sto_mgr *m = ms->m;
    enum isc_session_state st = isc_session_state(ms->s);
    int ret;

    if (ms->state != MS_RECOVERING || m->shutting_down)
        return;
    if (st != ISC_STATE_LOGGED_OUT && st != ISC_STATE_FAILED) {
        /* logging out (the target asked), logging in, or probing: look again soon */
        sto_timer_arm(m->loop, &ms->retry_timer, RETRY_SOON_MS);
        return;
    }
    ms->recoveries++;
    ret = isc_session_login(ms->s, ses_login_cb, ms);
    if (ret < 0)
        snprintf(ms->error, sizeof(ms->error), "%s", isc_session_error(ms->s));
    uint32_t wait = isc_session_params(ms->s)->default_time2wait;
    sto_timer_arm(m->loop, &ms->retry_timer, (wait ? wait : 2) * 1000ull);
}

/* The replacement timeout passed while recovering: held I/O fails, new I/O fails fast. */
static void repl_fire(struct mgr_session *ms)
{
    ms->io_failfast = true;
    log_warn("storage", "session %s: not back within the replacement timeout (%u ms): its "
             "held i/o fails with eio until it is; logging in goes on", ms->id,
             ms->m->cfg.replacement_timeout_ms == ISC_TIMEOUT_ZERO
                 ? 0 : ms->m->cfg.replacement_timeout_ms);
    held_fail(ms, -EIO, "the volume's session is recovering and its replacement timeout "
              "passed");
}

static void repl_cb(struct sto_timer *t)
{
    struct mgr_session *ms = (struct mgr_session *)((char *)t -
                                                    offsetof(struct mgr_session, repl_timer));

    if (ms->state == MS_RECOVERING)
        repl_fire(ms);
}

/*
 * The session stopped taking commands: its connection failed, or the target asked for a
 * logout. Hold I/O, log in again after what the target asked for (Time2Wait of an async
 * message) or soon, and start the replacement timeout.
 */
static void ses_failure_cb(struct isc_session *s, void *arg)
{
    struct mgr_session *ms = arg;
    struct sto_mgr *m = ms->m;
    uint32_t delay = isc_session_reconnect_delay_ms(s);

    if (ms->state != MS_LOGGED_IN || m->shutting_down)
        return;
    snprintf(ms->error, sizeof(ms->error), "%s", isc_session_error(s));
    log_warn("storage", "session %s lost its connection (%s); recovering", ms->id, ms->error);
    ms->state = MS_RECOVERING;
    /* the first retry comes soon: a dropped TCP connection is often back at once */
    sto_timer_arm(m->loop, &ms->retry_timer, delay ? delay : RETRY_SOON_MS);
    if (m->cfg.replacement_timeout_ms == ISC_TIMEOUT_ZERO)
        repl_fire(ms); /* the commands failing next are not held either */
    else
        sto_timer_arm(m->loop, &ms->repl_timer, m->cfg.replacement_timeout_ms);
}

static bool req_valid(const struct sto_session_req *r, char *err, size_t errlen)
{
    if (!r->portal[0] || !r->target[0]) {
        snprintf(err, errlen, "a session needs a portal and a target");
        return false;
    }
    if (!!r->chap.user[0] != !!r->chap.secret[0]) {
        snprintf(err, errlen, "chap needs both a user and a secret");
        return false;
    }
    if (!!r->chap.target_user[0] != !!r->chap.target_secret[0] ||
        (r->chap.target_user[0] && !r->chap.user[0])) {
        snprintf(err, errlen, "mutual chap needs target_user, target_secret and one-way chap");
        return false;
    }
    return true;
}

static void run_session_create(struct sto_mgr *m, struct mgr_call *c)
{
    struct sto_session_req *r = &c->sreq;
    struct isc_session_config cfg = { 0 };
    struct mgr_session *ms;
    char err[STO_ERR_MAX];
    int ret;

    if (!req_valid(r, err, sizeof(err))) {
        call_finish(c, -EINVAL, STO_ERR_INVALID, "%s", err);
        return;
    }
    ret = stk_parse_hostport(r->portal, ISC_DEFAULT_PORT, &cfg.portal);
    if (ret < 0) {
        call_finish(c, ret, ret == -EHOSTUNREACH ? STO_ERR_UNREACHABLE : STO_ERR_INVALID,
                    "bad portal \"%.200s\": expected host[:port]", r->portal);
        return;
    }
    for (ms = m->sessions; ms; ms = ms->next) {
        if (!strcmp(ms->req.target, r->target) && ms->state != MS_FAILED) {
            call_finish(c, -EEXIST, STO_ERR_CONFLICT, "session %s already serves %s", ms->id,
                        r->target);
            return;
        }
        if (r->id[0] && !strcmp(ms->id, r->id)) {
            call_finish(c, -EEXIST, STO_ERR_CONFLICT, "session id %s exists", r->id);
            return;
        }
    }
    ms = calloc(1, sizeof(*ms));
    if (!ms) {
        call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    ms->m = m;
    ms->req = *r;
    if (r->id[0])
        snprintf(ms->id, sizeof(ms->id), "%s", r->id);
    else
        new_session_id(ms->id);
    snprintf(ms->req.id, sizeof(ms->req.id), "%s", ms->id);
    ms->retry_timer.cb = retry_cb;
    ms->repl_timer.cb = repl_cb;
    cfg.initiator_name = m->initiator;
    cfg.target_name = r->target;
    cfg.header_digest = r->header_digest;
    cfg.data_digest = r->data_digest;
    if (r->chap.user[0]) {
        cfg.chap_user = r->chap.user;
        cfg.chap_secret = r->chap.secret;
    }
    if (r->chap.target_user[0]) {
        cfg.target_user = r->chap.target_user;
        cfg.target_secret = r->chap.target_secret;
    }
    cfg.connector = (struct isc_connector){ ses_connect, ses_release, ms };
    isc_config_timeouts(&cfg, &m->cfg.timeouts);
    cfg.max_outstanding = m->cfg.max_outstanding;
    cfg.max_outstanding_writes = m->cfg.max_outstanding_writes;
    ms->s = isc_session_new(m->loop, &cfg);
    if (!ms->s) {
        free(ms);
        call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    isc_session_set_failure_cb(ms->s, ses_failure_cb, ms);
    ms->state = MS_LOGGING_IN;
    ms->create_call = c;
    ms->next = m->sessions;
    m->sessions = ms;
    ret = isc_session_login(ms->s, ses_login_cb, ms);
    if (ret < 0) {
        ms->create_call = NULL;
        call_finish(c, ret, login_class(ret), "%s", isc_session_error(ms->s)[0]
                                                        ? isc_session_error(ms->s)
                                                        : strerror(-ret));
        ses_free(ms);
    }
}

int sto_mgr_session_create(struct sto_mgr *m, const struct sto_session_req *req,
                           char id_out[STO_ID_MAX], struct sto_result *res)
{
    struct mgr_call *c = call_new(m, run_session_create);
    int ret;

    if (!c)
        return -ENOMEM;
    c->sreq = *req;
    if (!call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0)
        snprintf(id_out, STO_ID_MAX, "%s", c->id);
    call_free(c);
    return ret;
}

static void ses_logout_cb(struct isc_session *s, int err, void *arg)
{
    struct mgr_session *ms = arg;
    struct mgr_call *c = ms->delete_call;

    (void)s;
    ms->delete_call = NULL;
    ms->state = MS_LOGGED_OUT;
    log_info("storage", "session %s logged out%s", ms->id, err ? " (with an error)" : "");
    if (c)
        call_finish(c, 0, STO_ERR_NONE, NULL);
    sto_loop_post(ms->m->loop, free_session_later, ms);
}

/*
 * Every state ends in bounded time: a logged-in session logs out (the logout timeout
 * bounds in-flight commands and the answer); one still logging in, recovering or failed
 * is dropped at once, its commands failing (never held) and its callbacks run; a second
 * DELETE while the logout waits drops it too.
 */
static void run_session_delete(struct sto_mgr *m, struct mgr_call *c)
{
    struct mgr_session *ms = ses_find(m, c->id);
    int ret;

    if (!ms || ms->state == MS_LOGGED_OUT) {
        call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no session %s", c->id);
        return;
    }
    if (ms->delete_call || ms->state == MS_LOGGING_OUT) {
        if (!ms->delete_call) {
            call_finish(c, -EALREADY, STO_ERR_CONFLICT, "session %s is logging out", c->id);
            return;
        }
        log_warn("storage", "session %s deleted again while logging out: dropping it", ms->id);
        isc_session_drop(ms->s, -ECANCELED, "deleted while logging out: connection dropped");
        if (ms->state == MS_LOGGED_OUT) /* the first DELETE finished just now */
            call_finish(c, 0, STO_ERR_NONE, NULL);
        else
            call_finish(c, -EALREADY, STO_ERR_CONFLICT, "session %s is logging out", c->id);
        return;
    }
    if (ms->state == MS_LOGGING_IN || ms->state == MS_PROBING) {
        /* the login (or probe) fails at once; ses_login_done finishes both calls */
        ms->delete_call = c;
        isc_session_drop(ms->s, -ECANCELED, "the session was deleted while logging in");
        if (ms->delete_call == c) {
            ms->delete_call = NULL;
            call_finish(c, -EBUSY, STO_ERR_CONFLICT, "session %s is still logging in", c->id);
        }
        return;
    }
    ms->delete_call = c;
    sto_timer_disarm(m->loop, &ms->retry_timer);
    sto_timer_disarm(m->loop, &ms->repl_timer);
    if (ms->state == MS_LOGGED_IN) {
        ms->state = MS_LOGGING_OUT;
        ret = isc_session_logout(ms->s, ses_logout_cb, ms);
        if (ret == 0)
            return;
    }
    /*
     * Recovering or failed: drop what is left (a login under way, the commands of a logout
     * the target asked for); with the state logging_out their chunks fail, never wait.
     */
    ms->state = MS_LOGGING_OUT;
    isc_session_drop(ms->s, -ENOTCONN, "the session was deleted");
    ses_logout_cb(ms->s, 0, ms);
}

int sto_mgr_session_delete(struct sto_mgr *m, const char *id, struct sto_result *res)
{
    struct mgr_call *c = call_new(m, run_session_delete);
    /* the logout is bounded by its own timeout: wait for it, whatever that is */
    uint32_t ms = m->cfg.timeouts.logout_ms + 5000;
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if (!call_through(m, c, ms > m->cfg.call_timeout_ms ? ms : m->cfg.call_timeout_ms, res,
                      &ret))
        return ret;
    call_free(c);
    return ret;
}

/* ---------------------------------------------------------------- views */

static void volume_view(const struct sto_volume *v, struct sto_volume_view *out)
{
    *out = v->stats;
    snprintf(out->id, sizeof(out->id), "%s", v->id);
    if (v->ses) {
        snprintf(out->session, sizeof(out->session), "%s", v->ses->id);
        snprintf(out->target, sizeof(out->target), "%s", v->ses->req.target);
    }
    out->lun = v->li.lun;
    out->size_bytes = v->li.size_bytes;
    out->block_size = v->li.cap.block_size;
    snprintf(out->vendor, sizeof(out->vendor), "%s", v->li.inq.vendor);
    snprintf(out->product, sizeof(out->product), "%s", v->li.inq.product);
    snprintf(out->wwn, sizeof(out->wwn), "%s", v->li.wwn);
    out->thin = v->li.cap.thin;
    out->max_transfer_bytes = v->chunk;
}

static void session_view(const struct mgr_session *ms, struct sto_session_view *out)
{
    struct stk_conn *conn = isc_session_conn(ms->s);

    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", ms->id);
    snprintf(out->portal, sizeof(out->portal), "%s", ms->req.portal);
    snprintf(out->target, sizeof(out->target), "%s", ms->req.target);
    out->state = ms_state_name(ms->state);
    out->policy = ms->req.stack;
    out->reservation = ms->req.reservation;
    snprintf(out->error, sizeof(out->error), "%s", ms->error);
    if (conn) {
        out->connected = true;
        out->stack = conn->stack;
        out->local = conn->local;
        out->remote = conn->remote;
        out->conn_bytes_in = conn->bytes_in;
        out->conn_bytes_out = conn->bytes_out;
    }
    out->params = *isc_session_params(ms->s);
    out->tsih = isc_session_tsih(ms->s);
    out->counters = *isc_session_counters(ms->s);
    out->nvolumes = (uint32_t)ms->nvols;
    for (size_t i = 0; i < ms->nvols && i < 64; i++)
        snprintf(out->volumes[i], STO_ID_MAX, "%s", ms->vols[i]->id);
    out->recoveries = ms->recoveries;
}

/* Hand a snapshot the loop built over to the waiting caller (NULL: it could not be built). */
static void call_hand_over(struct mgr_call *c, void *v, size_t n)
{
    if (!v) {
        call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    c->out = v;
    c->nout = n;
    call_finish(c, 0, STO_ERR_NONE, NULL);
}

static void run_list_sessions(struct sto_mgr *m, struct mgr_call *c)
{
    size_t n = 0, i = 0;
    struct sto_session_view *v;

    for (struct mgr_session *ms = m->sessions; ms; ms = ms->next)
        n++;
    v = calloc(n ? n : 1, sizeof(*v));
    for (struct mgr_session *ms = m->sessions; v && ms; ms = ms->next)
        session_view(ms, &v[n - 1 - i++]); /* oldest first */
    call_hand_over(c, v, n);
}

int sto_mgr_list_sessions(struct sto_mgr *m, struct sto_session_view **out, size_t *n)
{
    return call_take(m, run_list_sessions, NULL, (void **)out, n);
}

static void run_get_session(struct sto_mgr *m, struct mgr_call *c)
{
    struct mgr_session *ms = ses_find(m, c->id);
    struct sto_session_view *v;

    if (!ms) {
        call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no session %s", c->id);
        return;
    }
    v = malloc(sizeof(*v));
    if (v)
        session_view(ms, v);
    call_hand_over(c, v, 1);
}

int sto_mgr_get_session(struct sto_mgr *m, const char *id, struct sto_session_view *out)
{
    return call_take_one(m, run_get_session, id, out, sizeof(*out));
}

static void run_list_volumes(struct sto_mgr *m, struct mgr_call *c)
{
    size_t n = 0, i = 0;
    struct sto_volume_view *v;

    for (struct sto_volume *vol = m->volumes; vol; vol = vol->next)
        n += vol->ses != NULL;
    v = calloc(n ? n : 1, sizeof(*v));
    for (struct sto_volume *vol = m->volumes; v && vol; vol = vol->next)
        if (vol->ses)
            volume_view(vol, &v[n - 1 - i++]);
    call_hand_over(c, v, n);
}

int sto_mgr_list_volumes(struct sto_mgr *m, struct sto_volume_view **out, size_t *n)
{
    return call_take(m, run_list_volumes, NULL, (void **)out, n);
}

static void run_get_volume(struct sto_mgr *m, struct mgr_call *c)
{
    struct sto_volume *vol = sto_volume_find(m, c->id);
    struct sto_volume_view *v;

    if (!vol) {
        call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no volume %s", c->id);
        return;
    }
    v = malloc(sizeof(*v));
    if (v)
        volume_view(vol, v);
    call_hand_over(c, v, 1);
}

int sto_mgr_get_volume(struct sto_mgr *m, const char *id, struct sto_volume_view *out)
{
    return call_take_one(m, run_get_volume, id, out, sizeof(*out));
}

static void run_export(struct sto_mgr *m, struct mgr_call *c)
{
    size_t n = 0, i = 0;
    struct sto_session_req *v;

    for (struct mgr_session *ms = m->sessions; ms; ms = ms->next)
        n += ms->state != MS_LOGGED_OUT && ms->state != MS_LOGGING_OUT;
    v = calloc(n ? n : 1, sizeof(*v));
    for (struct mgr_session *ms = m->sessions; v && ms; ms = ms->next)
        if (ms->state != MS_LOGGED_OUT && ms->state != MS_LOGGING_OUT)
            v[n - 1 - i++] = ms->req;
    call_hand_over(c, v, n);
}

int sto_mgr_export_sessions(struct sto_mgr *m, struct sto_session_req **out, size_t *n)
{
    return call_take(m, run_export, NULL, (void **)out, n);
}

/* ---------------------------------------------------------------- volume I/O */

struct vio {
    struct sto_volume *v;
    enum sto_io_op op;
    uint8_t *buf;
    bool fua;
    sto_io_cb cb;
    void *arg;
    uint32_t outstanding;
    int err;
    char msg[STO_ERR_MAX];
    uint64_t t0;
    uint64_t offset;
    uint32_t len;
    bool flush_after;              /* FUA on a command without a FUA bit: sync the cache */
    uint8_t unmap_param[SCSI_UNMAP_PARAM_LEN];
};

struct vchunk {
    struct vio *io;
    uint64_t off;                  /* byte offset on the LUN */
    uint32_t len;
    enum sto_io_op op;
    bool same;                     /* sent as WRITE SAME */
    uint8_t retries;               /* unit attentions absorbed so far */
    uint8_t timeouts;              /* command timeouts absorbed so far */
    struct vchunk *next;
};

static uint8_t zero_block[64 * 1024];

static void chunk_start(struct vchunk *ch);

static void vio_complete(struct vio *io)
{
    struct sto_volume *v = io->v;
    uint64_t ns = sto_now_ns() - io->t0;

    if (io->op == STO_IO_READ) {
        v->stats.reads++;
        v->stats.read_bytes += io->err ? 0 : io->len;
        v->stats.read_ns += ns;
    } else if (io->op == STO_IO_WRITE) {
        v->stats.writes++;
        v->stats.write_bytes += io->err ? 0 : io->len;
        v->stats.write_ns += ns;
    }
    if (io->err)
        v->stats.errors++;
    io->cb(io->arg, io->err, io->err ? io->msg : NULL);
    sto_volume_unref(v);
    free(io);
}

static void chunk_done(struct vchunk *ch, int err, const char *msg)
{
    struct vio *io = ch->io;

    free(ch);
    if (err && !io->err) {
        io->err = err;
        snprintf(io->msg, sizeof(io->msg), "%s", msg ? msg : strerror(-err));
    }
    if (--io->outstanding)
        return;
    if (!io->err && io->flush_after) {
        /* WRITE SAME and UNMAP have no FUA bit: durable means a SYNCHRONIZE CACHE */
        struct vchunk *f = calloc(1, sizeof(*f));
        io->flush_after = false;
        if (f) {
            f->io = io;
            f->op = STO_IO_FLUSH;
            io->outstanding = 1;
            chunk_start(f);
            return;
        }
        io->err = -ENOMEM;
        snprintf(io->msg, sizeof(io->msg), "out of memory");
    }
    vio_complete(io);
}

/*
 * The session has no free command slot: the chunk waits its turn (a slot frees with every
 * completion, busy_drain), never fails. Legal load - many clients, large requests cut into
 * many commands by a small Block Limits transfer length - exceeds the slots easily.
 */
static void busy_chunk(struct mgr_session *ms, struct vchunk *ch)
{
    ch->next = NULL;
    if (ms->busy_tail)
        ms->busy_tail->next = ch;
    else
        ms->busy_head = ch;
    ms->busy_tail = ch;
}

static int chunk_try(struct vchunk *ch);

/* Slots came free: submit waiting chunks in order until the session is full again. */
static void busy_drain(struct mgr_session *ms)
{
    struct vchunk *ch;

    while ((ch = ms->busy_head)) {
        ms->busy_head = ch->next;
        if (!ms->busy_head)
            ms->busy_tail = NULL;
        if (chunk_try(ch) == -EBUSY) {
            ch->next = ms->busy_head; /* still full: back at the front, in order */
            ms->busy_head = ch;
            if (!ms->busy_tail)
                ms->busy_tail = ch;
            return;
        }
    }
}

static void hold_chunk(struct mgr_session *ms, struct vchunk *ch)
{
    if (ms->io_failfast) { /* recovering past the replacement timeout: no holding */
        chunk_done(ch, -EIO, "the volume's session is recovering and its replacement "
                   "timeout passed");
        return;
    }
    ch->next = NULL;
    if (ms->held_tail)
        ms->held_tail->next = ch;
    else
        ms->held_head = ch;
    ms->held_tail = ch;
}

static void chunk_result(struct isc_session *s, const struct isc_scsi_result *r,
                         struct vchunk *ch);

/* A command finished, so its slot is free: after its result, let a waiting chunk have it. */
static void chunk_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct vchunk *ch = arg;
    struct mgr_session *ms = ch->io->v->ses;

    chunk_result(s, r, ch);
    if (ms)
        busy_drain(ms);
}

static void chunk_result(struct isc_session *s, const struct isc_scsi_result *r,
                         struct vchunk *ch)
{
    struct sto_volume *v = ch->io->v;
    char what[96], err[STO_ERR_MAX];
    int ret;

    if (r->err && v->ses && v->ses->state == MS_RECOVERING) {
        hold_chunk(v->ses, ch); /* the session comes back: run it again then */
        return;
    }
    if (r->err == -ETIMEDOUT && v->ses && v->ses->state == MS_LOGGED_IN &&
        ch->timeouts < CHUNK_TIMEOUT_RETRIES) {
        /* aborted (or ended by a lun reset) after the command timeout: once more */
        ch->timeouts++;
        log_warn("storage", "volume %s: %s; issuing it again", v->id,
                 r->why[0] ? r->why : "command timed out");
        chunk_start(ch);
        return;
    }
    if (r->err) {
        chunk_done(ch, r->err, r->why[0] ? r->why : isc_session_error(s));
        return;
    }
    snprintf(what, sizeof(what), "%s of %u bytes at %llu",
             ch->op == STO_IO_READ ? "read" : ch->op == STO_IO_WRITE ? "write"
             : ch->op == STO_IO_FLUSH ? "synchronize cache" : ch->op == STO_IO_TRIM ? "unmap"
             : "write same", ch->len, (unsigned long long)ch->off);
    ret = sto_scsi_check(r, what, err, sizeof(err));
    if (r->status == SCSI_STATUS_CHECK_CONDITION && ch->retries < 5) {
        struct scsi_sense sense;
        scsi_sense_decode(r->sense, r->sense_len, &sense);
        if (sense.key == SCSI_SENSE_UNIT_ATTENTION) {
            /* a past event (a new I_T nexus after recovery, a reset): run it again */
            ch->retries++;
            chunk_start(ch);
            return;
        }
    }
    if ((ret == -EOPNOTSUPP || ret == -EINVAL) && ch->same) {
        /* the LUN has no WRITE SAME (or not for this length): zero it by writing */
        v->no_write_same = true;
        struct vio *io = ch->io;
        uint64_t end = ch->off + ch->len;
        uint32_t step = (uint32_t)sizeof(zero_block) - sizeof(zero_block) % v->li.cap.block_size;
        io->outstanding--;
        for (uint64_t off = ch->off; off < end; off += step) {
            struct vchunk *z = calloc(1, sizeof(*z));
            if (!z) {
                io->err = -ENOMEM;
                break;
            }
            z->io = io;
            z->op = STO_IO_ZERO;
            z->off = off;
            z->len = (uint32_t)(end - off < step ? end - off : step);
            io->outstanding++;
            chunk_start(z);
        }
        free(ch);
        if (io->outstanding == 0)
            vio_complete(io);
        return;
    }
    if (ret == -EOPNOTSUPP && ch->op == STO_IO_FLUSH)
        ret = 0; /* no cache to flush: the data is already durable */
    if (ret == 0 && ch->op == STO_IO_READ && r->data_in_len < ch->len) {
        snprintf(err, sizeof(err), "%s returned only %u bytes", what, r->data_in_len);
        ret = -EIO;
    }
    chunk_done(ch, ret, err);
}

/* Issue a chunk, hold it while its session recovers, or fail it; never loses it. */
static void chunk_start(struct vchunk *ch)
{
    struct mgr_session *ms = ch->io->v->ses;

    /* chunks already waiting for a slot go first */
    if ((ms && ms->busy_head) || chunk_try(ch) == -EBUSY)
        busy_chunk(ms, ch);
}

/* chunk_start's work: -EBUSY (no free slot; ch is still the caller's), else 0. */
static int chunk_try(struct vchunk *ch)
{
    struct vio *io = ch->io;
    struct sto_volume *v = io->v;
    struct mgr_session *ms = v->ses;
    uint32_t bs = v->li.cap.block_size;
    struct isc_scsi_req req = { .lun = v->li.lun, .cb = chunk_cb, .arg = ch };
    uint64_t lba = ch->off / bs;
    uint32_t blocks = ch->len / bs;
    int ret;

    if (!ms || ms->state == MS_FAILED || ms->state == MS_LOGGED_OUT ||
        ms->state == MS_LOGGING_OUT) {
        chunk_done(ch, -ENOTCONN, "the volume's session is not logged in");
        return 0;
    }
    if (ms->state == MS_RECOVERING) {
        hold_chunk(ms, ch);
        return 0;
    }
    switch (ch->op) {
    case STO_IO_READ:
        req.dir = ISC_DIR_READ;
        req.buf = io->buf + (ch->off - io->offset);
        req.len = ch->len;
        req.cdb_len = (uint8_t)scsi_cdb_read(req.cdb, lba, blocks, false);
        break;
    case STO_IO_WRITE:
        req.dir = ISC_DIR_WRITE;
        req.buf = io->buf + (ch->off - io->offset);
        req.len = ch->len;
        req.cdb_len = (uint8_t)scsi_cdb_write(req.cdb, lba, blocks, io->fua);
        break;
    case STO_IO_FLUSH:
        req.cdb_len = (uint8_t)scsi_cdb_sync_cache(req.cdb, 0, 0);
        break;
    case STO_IO_TRIM:
        req.dir = ISC_DIR_WRITE;
        req.buf = io->unmap_param;
        req.len = SCSI_UNMAP_PARAM_LEN;
        req.cdb_len = (uint8_t)scsi_cdb_unmap(req.cdb, io->unmap_param, lba, blocks);
        break;
    case STO_IO_ZERO:
        req.dir = ISC_DIR_WRITE;
        req.buf = zero_block;
        if (!v->no_write_same && ch->len > sizeof(zero_block) / 2) {
            /* one block of zeroes, repeated by the target over the whole range */
            req.len = bs;
            req.cdb_len = (uint8_t)scsi_cdb_write_same16(req.cdb, lba, blocks, false);
            ch->same = true;
        } else {
            /* zeroes written from a shared zero buffer: works on every target */
            req.len = ch->len;
            req.cdb_len = (uint8_t)scsi_cdb_write(req.cdb, lba, blocks, io->fua);
        }
        break;
    }
    ret = isc_session_submit(ms->s, &req);
    if (ret == -EBUSY)
        return -EBUSY;
    if (ret < 0)
        chunk_done(ch, ret, "cannot queue the command");
    return 0;
}

static void held_resubmit(struct mgr_session *ms)
{
    struct vchunk *ch = ms->held_head;

    ms->held_head = ms->held_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_start(ch);
        ch = next;
    }
}

static void held_fail(struct mgr_session *ms, int err, const char *why)
{
    struct vchunk *ch = ms->held_head;

    ms->held_head = ms->held_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_done(ch, err, why);
        ch = next;
    }
    ch = ms->busy_head;
    ms->busy_head = ms->busy_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_done(ch, err, why);
        ch = next;
    }
}

int sto_volume_submit(struct sto_volume *v, enum sto_io_op op, uint64_t offset, uint32_t len,
                      void *buf, bool fua, sto_io_cb cb, void *arg)
{
    uint32_t bs = v->li.cap.block_size;
    uint32_t step;
    struct vio *io;

    if (!v->ses)
        return -ENOTCONN;
    if (op != STO_IO_FLUSH) {
        if (offset % bs || len % bs || len == 0)
            return -EINVAL;
        if (offset > v->li.size_bytes || len > v->li.size_bytes - offset)
            return -ERANGE;
    }
    io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->v = v;
    io->op = op;
    io->buf = buf;
    io->fua = fua;
    io->cb = cb;
    io->arg = arg;
    io->t0 = sto_now_ns();
    io->offset = offset;
    io->len = len;
    io->flush_after = fua && (op == STO_IO_ZERO || op == STO_IO_TRIM);
    sto_volume_ref(v);
    /* UNMAP uses the request's one parameter list: a single command */
    step = op == STO_IO_ZERO ? (v->no_write_same ? (uint32_t)sizeof(zero_block) -
                                                       sizeof(zero_block) % bs
                                                 : 0xffff * bs)
           : op == STO_IO_TRIM ? len : v->chunk;
    if (op == STO_IO_ZERO && !v->no_write_same && v->li.limits.max_write_same_blocks &&
        v->li.limits.max_write_same_blocks * bs < step)
        step = (uint32_t)(v->li.limits.max_write_same_blocks * bs);
    io->outstanding = 1; /* guard while issuing */
    if (op == STO_IO_FLUSH) {
        struct vchunk *ch = calloc(1, sizeof(*ch));
        if (!ch) {
            io->outstanding = 0;
            sto_volume_unref(v);
            free(io);
            return -ENOMEM;
        }
        ch->io = io;
        ch->op = op;
        chunk_start(ch);
        return 0;
    }
    for (uint64_t off = offset; off < offset + len; off += step) {
        struct vchunk *ch = calloc(1, sizeof(*ch));
        if (!ch) {
            if (!io->err) {
                io->err = -ENOMEM;
                snprintf(io->msg, sizeof(io->msg), "out of memory");
            }
            break;
        }
        ch->io = io;
        ch->op = op;
        ch->off = off;
        ch->len = (uint32_t)(offset + len - off < step ? offset + len - off : step);
        io->outstanding++;
        chunk_start(ch);
    }
    /* drop the issuing guard (this may complete the whole request) */
    if (--io->outstanding == 0)
        vio_complete(io);
    return 0;
}

/* Blocking volume data calls for the REST API. */
static void vio_call_cb(void *arg, int err, const char *msg)
{
    struct mgr_call *c = arg;

    call_finish(c, err, err == -ERANGE ? STO_ERR_RANGE : err == -EINVAL ? STO_ERR_INVALID
                        : err == -ENOTCONN ? STO_ERR_UNAVAILABLE : STO_ERR_IO,
                "%s", err ? msg : "");
}

static void run_volume_io(struct sto_mgr *m, struct mgr_call *c, enum sto_io_op op)
{
    struct sto_volume *v = sto_volume_find(m, c->id);
    int ret;

    if (!v) {
        call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no volume %s", c->id);
        return;
    }
    uint32_t bs = v->li.cap.block_size;
    if (c->offset % bs || c->len % bs) {
        call_finish(c, -EINVAL, STO_ERR_INVALID, "offset %llu and length %u must be multiples "
                    "of the volume's %u-byte blocks", (unsigned long long)c->offset, c->len, bs);
        return;
    }
    if (c->offset > v->li.size_bytes || c->len > v->li.size_bytes - c->offset) {
        call_finish(c, -ERANGE, STO_ERR_RANGE, "range %llu+%u is past the end of volume %s "
                    "(%llu bytes)", (unsigned long long)c->offset, c->len, c->id,
                    (unsigned long long)v->li.size_bytes);
        return;
    }
    if (c->len == 0) {
        call_finish(c, 0, STO_ERR_NONE, NULL);
        return;
    }
    ret = sto_volume_submit(v, op, c->offset, c->len, c->data, false, vio_call_cb, c);
    if (ret < 0) {
        call_finish(c, ret, STO_ERR_IO, "cannot start the i/o: %s", strerror(-ret));
        return;
    }
}

static void run_volume_read(struct sto_mgr *m, struct mgr_call *c)
{
    run_volume_io(m, c, STO_IO_READ);
}

static void run_volume_write(struct sto_mgr *m, struct mgr_call *c)
{
    /* FUA makes every command durable on its own: a 204 then means durable */
    struct sto_volume *v = sto_volume_find(m, c->id);
    int ret;

    if (!v || c->offset % v->li.cap.block_size || c->len % v->li.cap.block_size ||
        c->offset > v->li.size_bytes || c->len > v->li.size_bytes - c->offset || !c->len) {
        run_volume_io(m, c, STO_IO_WRITE); /* reports the error, or completes a no-op */
        return;
    }
    ret = sto_volume_submit(v, STO_IO_WRITE, c->offset, c->len, c->data, true, vio_call_cb, c);
    if (ret < 0)
        call_finish(c, ret, STO_ERR_IO, "cannot start the write: %s", strerror(-ret));
}

int sto_mgr_volume_read(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                        void *buf, struct sto_result *res)
{
    struct mgr_call *c = call_new(m, run_volume_read);
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->offset = offset;
    c->len = len;
    c->data = malloc(len ? len : 1);
    if (!c->data) {
        call_free(c);
        return -ENOMEM;
    }
    if (!call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0)
        memcpy(buf, c->data, len);
    call_free(c);
    return ret;
}

int sto_mgr_volume_write(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                         const void *buf, struct sto_result *res)
{
    struct mgr_call *c = call_new(m, run_volume_write);
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->offset = offset;
    c->len = len;
    c->data = malloc(len ? len : 1);
    if (!c->data) {
        call_free(c);
        return -ENOMEM;
    }
    memcpy(c->data, buf, len);
    if (!call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    call_free(c);
    return ret;
}

/* ---------------------------------------------------------------- shutdown */

/* A session's logout at shutdown ended: the shutdown call ends with the last of them. */
static void shut_logout_cb(struct isc_session *s, int err, void *arg)
{
    struct sto_mgr *m = arg;
    struct mgr_call *c = m->shutdown_call;

    (void)s;
    (void)err;
    atomic_fetch_sub(&m->shutdown_pending, 1);
    if (c && --c->nout == 0) {
        m->shutdown_call = NULL;
        call_finish(c, 0, STO_ERR_NONE, NULL);
    }
}

/* Stop taking work, log every logged-in session out; ends when the last logout has. */
static void run_shutdown_all(struct sto_mgr *m, struct mgr_call *c)
{
    m->shutting_down = true;
    for (struct mgr_session *ms = m->sessions; ms; ms = ms->next) {
        sto_timer_disarm(m->loop, &ms->retry_timer);
        sto_timer_disarm(m->loop, &ms->repl_timer);
        if (ms->state == MS_LOGGED_IN &&
            isc_session_logout(ms->s, shut_logout_cb, m) == 0) {
            ms->state = MS_LOGGING_OUT;
            atomic_fetch_add(&m->shutdown_pending, 1);
            c->nout++;
        }
    }
    if (c->nout)
        m->shutdown_call = c;
    else
        call_finish(c, 0, STO_ERR_NONE, NULL);
}

void sto_mgr_shutdown(struct sto_mgr *m, uint32_t timeout_ms)
{
    struct mgr_call *c = call_new(m, run_shutdown_all);
    int ret;

    if (!c)
        return;
    if (call_through(m, c, timeout_ms, NULL, &ret)) {
        call_free(c);
        return;
    }
    if (ret == -ETIMEDOUT)
        log_warn("storage", "%d session(s) did not log out within %u ms",
                 atomic_load(&m->shutdown_pending), timeout_ms);
}

/* Free everything. The loop must no longer run. */
void sto_mgr_free(struct sto_mgr *m)
{
    if (!m)
        return;
    m->shutting_down = true;
    if (m->shutdown_call) { /* logouts that never ended: the sessions go now */
        struct mgr_call *c = m->shutdown_call;
        m->shutdown_call = NULL;
        call_finish(c, -ETIMEDOUT, STO_ERR_UNAVAILABLE, "sessions did not log out");
    }
    while (m->sessions)
        ses_free(m->sessions);
    while (m->volumes) {
        struct sto_volume *v = m->volumes;
        m->volumes = v->next;
        free(v);
    }
    free(m);
}
