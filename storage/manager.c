/*
 * manager.c - the appliance's sessions on the storage loop: login through the connector
 * (the broker), then the LUN probe (probe.c) whose disk LUNs become volumes (volume.c).
 * A logged-in session that fails (or that the target asks to log out) goes to
 * "recovering": it logs in again every DefaultTime2Wait seconds for as long as it exists,
 * holding volume I/O meanwhile up to the replacement timeout (then that I/O fails with
 * EIO, and new I/O fails at once until the session is back). Also the views other threads
 * ask for, and the shutdown. Other threads reach all of it through calls
 * (manager_call.c); discovery is in manager_discovery.c.
 */
#include "storage/manager.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/chap.h"
#include "storage/manager_int.h"
#include "storage/scsi.h"

#define DEF_CALL_TIMEOUT_MS 30000
#define DEF_REPLACEMENT_TIMEOUT_MS 120000
#define RETRY_SOON_MS 200          /* first login after a drop; polling a session leaving */
#define DEF_MAX_OUTSTANDING 128
#define DEF_MAX_OUTSTANDING_WRITES 32

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

/* ---------------------------------------------------------------- lifecycle */

const char *sto_mgr_initiator(const struct sto_mgr *m)
{
    return m->initiator;
}

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
enum sto_err_class sto_mgr_login_class(int err)
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

/* ---------------------------------------------------------------- probe */

static void ses_login_done(struct mgr_session *ms, int err, const char *msg);
static void probe_next(struct mgr_session *ms);

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
        sto_vol_add(ms, li);
    } else if (err && err != -ENODEV) {
        if (isc_session_state(ms->s) != ISC_STATE_LOGGED_IN) {
            ses_login_done(ms, err, msg);
            return;
        }
        snprintf(p->skipped, sizeof(p->skipped), "lun %u is not exported: %s", li->lun, msg);
        p->skipped_err = err;
        log_warn_f("storage", SES_FIELDS(ms, msg), "lun %u is not exported", li->lun);
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
    sto_timer_disarm(m->loop, &ms->free_timer);
    probe_free(ms);
    /* calls still waiting on the session (the manager is being freed) end now */
    if (ms->create_call)
        sto_mgr_call_finish(ms->create_call, -ESHUTDOWN, STO_ERR_UNAVAILABLE,
                            "the appliance is shutting down");
    if (ms->delete_call)
        sto_mgr_call_finish(ms->delete_call, -ESHUTDOWN, STO_ERR_UNAVAILABLE,
                            "the appliance is shutting down");
    ms->create_call = ms->delete_call = NULL;
    sto_vol_held_fail(ms, -ENOTCONN, "the volume's session went away");
    for (size_t i = 0; i < ms->nvols; i++) {
        ms->vols[i]->ses = NULL;
        if (m->cfg.volume_event)
            m->cfg.volume_event(m->cfg.volume_event_arg, ms->vols[i]->id, false);
        sto_volume_unref(ms->vols[i]);
    }
    isc_session_free(ms->s);
    explicit_bzero(&ms->req.chap, sizeof(ms->req.chap));
    free(ms);
}

/*
 * A session that is over is freed on the loop's next turn, once the callbacks that ended it
 * have returned. A timer, not a posted function: if the loop stops first, sto_mgr_free
 * frees the session and disarms the timer, and nothing of it is left for the loop's end.
 */
static void free_cb(struct sto_timer *t)
{
    ses_free((struct mgr_session *)((char *)t - offsetof(struct mgr_session, free_timer)));
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
        log_warn_f("storage", SES_FIELDS(ms, ms->error), "session failed");
        if (c)
            sto_mgr_call_finish(c, err, sto_mgr_login_class(err), "%s", ms->error);
        if (ms->delete_call) /* deleted while logging in: done now */
            sto_mgr_call_finish(ms->delete_call, 0, STO_ERR_NONE, NULL);
        if (c || ms->delete_call) {
            ms->create_call = ms->delete_call = NULL;
            /* a session that never came up is not kept */
            sto_timer_arm(m->loop, &ms->free_timer, 0);
        }
        return;
    }
    ms->error[0] = '\0';
    if (ms->state == MS_RECOVERING)
        log_info_f("storage", SES_FIELDS(ms, NULL), "session recovered (attempt %u)",
                   ms->recoveries);
    else
        log_info_f("storage", SES_FIELDS(ms, NULL), "session is up with %zu volume(s)",
                   ms->nvols);
    ms->state = MS_LOGGED_IN;
    ms->io_failfast = false;
    sto_timer_disarm(m->loop, &ms->repl_timer);
    sto_vol_held_resubmit(ms);
    if (c) {
        ms->create_call = NULL;
        snprintf(c->id, sizeof(c->id), "%s", ms->id);
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
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
    log_warn_f("storage", SES_FIELDS(ms, NULL), "session not back within the replacement "
               "timeout (%u ms): its held i/o fails with eio until it is; logging in goes on",
               ms->m->cfg.replacement_timeout_ms == ISC_TIMEOUT_ZERO
                   ? 0 : ms->m->cfg.replacement_timeout_ms);
    sto_vol_held_fail(ms, -EIO, "the volume's session is recovering and its replacement timeout "
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
    log_warn_f("storage", SES_FIELDS(ms, ms->error), "session lost its connection; recovering");
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
        sto_mgr_call_finish(c, -EINVAL, STO_ERR_INVALID, "%s", err);
        return;
    }
    ret = stk_parse_hostport(r->portal, ISC_DEFAULT_PORT, &cfg.portal);
    if (ret < 0) {
        sto_mgr_call_finish(c, ret, ret == -EHOSTUNREACH ? STO_ERR_UNREACHABLE : STO_ERR_INVALID,
                            "bad portal \"%.200s\": expected host[:port]", r->portal);
        return;
    }
    for (ms = m->sessions; ms; ms = ms->next) {
        if (!strcmp(ms->req.target, r->target) && ms->state != MS_FAILED) {
            sto_mgr_call_finish(c, -EEXIST, STO_ERR_CONFLICT, "session %s already serves %s",
                                ms->id, r->target);
            return;
        }
        if (r->id[0] && !strcmp(ms->id, r->id)) {
            sto_mgr_call_finish(c, -EEXIST, STO_ERR_CONFLICT, "session id %s exists", r->id);
            return;
        }
    }
    ms = calloc(1, sizeof(*ms));
    if (!ms) {
        sto_mgr_call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
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
    ms->free_timer.cb = free_cb;
    cfg.initiator_name = ms->req.initiator[0] ? ms->req.initiator : m->initiator;
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
        sto_mgr_call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
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
        sto_mgr_call_finish(c, ret, sto_mgr_login_class(ret), "%s", isc_session_error(ms->s)[0]
                                                                ? isc_session_error(ms->s)
                                                                : strerror(-ret));
        ses_free(ms);
    }
}

int sto_mgr_session_create(struct sto_mgr *m, const struct sto_session_req *req,
                           char id_out[STO_ID_MAX], struct sto_result *res)
{
    struct mgr_call *c = sto_mgr_call_new(m, run_session_create);
    int ret;

    if (!c)
        return -ENOMEM;
    c->sreq = *req;
    if (!sto_mgr_call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0)
        snprintf(id_out, STO_ID_MAX, "%s", c->id);
    sto_mgr_call_free(c);
    return ret;
}

static void ses_logout_cb(struct isc_session *s, int err, void *arg)
{
    struct mgr_session *ms = arg;
    struct mgr_call *c = ms->delete_call;

    (void)s;
    ms->delete_call = NULL;
    ms->state = MS_LOGGED_OUT;
    log_info_f("storage", SES_FIELDS(ms, err ? strerror(-err) : NULL), "session logged out%s",
               err ? " (with an error)" : "");
    if (c)
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
    sto_timer_arm(ms->m->loop, &ms->free_timer, 0);
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
        sto_mgr_call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no session %s", c->id);
        return;
    }
    if (ms->delete_call || ms->state == MS_LOGGING_OUT) {
        if (!ms->delete_call) {
            sto_mgr_call_finish(c, -EALREADY, STO_ERR_CONFLICT, "session %s is logging out", c->id);
            return;
        }
        log_warn("storage", "session %s deleted again while logging out: dropping it", ms->id);
        isc_session_drop(ms->s, -ECANCELED, "deleted while logging out: connection dropped");
        if (ms->state == MS_LOGGED_OUT) /* the first DELETE finished just now */
            sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
        else
            sto_mgr_call_finish(c, -EALREADY, STO_ERR_CONFLICT, "session %s is logging out", c->id);
        return;
    }
    if (ms->state == MS_LOGGING_IN || ms->state == MS_PROBING) {
        /* the login (or probe) fails at once; ses_login_done finishes both calls */
        ms->delete_call = c;
        isc_session_drop(ms->s, -ECANCELED, "the session was deleted while logging in");
        if (ms->delete_call == c) {
            ms->delete_call = NULL;
            sto_mgr_call_finish(c, -EBUSY, STO_ERR_CONFLICT, "session %s is still logging in",
                                c->id);
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
    struct mgr_call *c = sto_mgr_call_new(m, run_session_delete);
    /* the logout is bounded by its own timeout: wait for it, whatever that is */
    uint32_t ms = m->cfg.timeouts.logout_ms + 5000;
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if (!sto_mgr_call_through(m, c, ms > m->cfg.call_timeout_ms ? ms : m->cfg.call_timeout_ms, res,
                              &ret))
        return ret;
    sto_mgr_call_free(c);
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
    sto_vol_access_get(v->m, v->id, &out->access);
}

static void session_view(const struct mgr_session *ms, struct sto_session_view *out)
{
    struct stk_conn *conn = isc_session_conn(ms->s);

    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", ms->id);
    snprintf(out->portal, sizeof(out->portal), "%s", ms->req.portal);
    snprintf(out->target, sizeof(out->target), "%s", ms->req.target);
    snprintf(out->initiator, sizeof(out->initiator), "%s",
             ms->req.initiator[0] ? ms->req.initiator : ms->m->initiator);
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

static void run_list_sessions(struct sto_mgr *m, struct mgr_call *c)
{
    size_t n = 0, i = 0;
    struct sto_session_view *v;

    for (struct mgr_session *ms = m->sessions; ms; ms = ms->next)
        n++;
    v = calloc(n ? n : 1, sizeof(*v));
    for (struct mgr_session *ms = m->sessions; v && ms; ms = ms->next)
        session_view(ms, &v[n - 1 - i++]); /* oldest first */
    sto_mgr_call_hand_over(c, v, n);
}

int sto_mgr_list_sessions(struct sto_mgr *m, struct sto_session_view **out, size_t *n)
{
    return sto_mgr_call_take(m, run_list_sessions, NULL, (void **)out, n);
}

static void run_get_session(struct sto_mgr *m, struct mgr_call *c)
{
    struct mgr_session *ms = ses_find(m, c->id);
    struct sto_session_view *v;

    if (!ms) {
        sto_mgr_call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no session %s", c->id);
        return;
    }
    v = malloc(sizeof(*v));
    if (v)
        session_view(ms, v);
    sto_mgr_call_hand_over(c, v, 1);
}

int sto_mgr_get_session(struct sto_mgr *m, const char *id, struct sto_session_view *out)
{
    return sto_mgr_call_take_one(m, run_get_session, id, out, sizeof(*out));
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
    sto_mgr_call_hand_over(c, v, n);
}

int sto_mgr_list_volumes(struct sto_mgr *m, struct sto_volume_view **out, size_t *n)
{
    return sto_mgr_call_take(m, run_list_volumes, NULL, (void **)out, n);
}

static void run_get_volume(struct sto_mgr *m, struct mgr_call *c)
{
    struct sto_volume *vol = sto_volume_find(m, c->id);
    struct sto_volume_view *v;

    if (!vol) {
        sto_mgr_call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no volume %s", c->id);
        return;
    }
    v = malloc(sizeof(*v));
    if (v)
        volume_view(vol, v);
    sto_mgr_call_hand_over(c, v, 1);
}

int sto_mgr_get_volume(struct sto_mgr *m, const char *id, struct sto_volume_view *out)
{
    return sto_mgr_call_take_one(m, run_get_volume, id, out, sizeof(*out));
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
    sto_mgr_call_hand_over(c, v, n);
}

int sto_mgr_export_sessions(struct sto_mgr *m, struct sto_session_req **out, size_t *n)
{
    return sto_mgr_call_take(m, run_export, NULL, (void **)out, n);
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
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
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
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
}

void sto_mgr_shutdown(struct sto_mgr *m, uint32_t timeout_ms)
{
    struct mgr_call *c = sto_mgr_call_new(m, run_shutdown_all);
    int ret;

    if (!c)
        return;
    c->any_time = true;
    if (sto_mgr_call_through(m, c, timeout_ms, NULL, &ret)) {
        sto_mgr_call_free(c);
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
        sto_mgr_call_finish(c, -ETIMEDOUT, STO_ERR_UNAVAILABLE, "sessions did not log out");
    }
    while (m->sessions)
        ses_free(m->sessions);
    while (m->volumes) {
        struct sto_volume *v = m->volumes;
        m->volumes = v->next;
        free(v);
    }
    sto_vol_access_free(m);
    free(m);
}
