/*
 * manager_discovery.c - SendTargets discovery for the manager: its own discovery session, owned by
 * "discovery" in the broker, started from a call and logged out once the answer is known.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/manager_int.h"

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
        sto_mgr_call_finish(c, err, STO_ERR_IO, "sendtargets failed: %s", isc_session_error(s));
    } else {
        c->out = l;
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
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
        sto_mgr_call_finish(d->c, ret, err ? sto_mgr_login_class(err) : STO_ERR_IO, "%s",
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
        sto_mgr_call_finish(c, ret, ret == -EHOSTUNREACH ? STO_ERR_UNREACHABLE : STO_ERR_INVALID,
                            "bad portal \"%.200s\"", c->sreq.portal);
        return;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        sto_mgr_call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
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
        sto_mgr_call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    ret = isc_session_login(d->s, disc_login_cb, d);
    if (ret < 0) {
        sto_mgr_call_finish(c, ret, sto_mgr_login_class(ret), "%s", isc_session_error(d->s)[0]
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
    struct mgr_call *c = sto_mgr_call_new(m, run_discover);
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->sreq.portal, sizeof(c->sreq.portal), "%s", portal);
    c->policy = stack;
    if (chap)
        c->chap = *chap;
    c->out_free = target_list_free;
    if (!sto_mgr_call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0) {
        *out = c->out;
        c->out = NULL;
    }
    sto_mgr_call_free(c);
    return ret;
}
