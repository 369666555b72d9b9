/*
 * h_health.c - the dashboard page, the probes (/livez, /readyz) and /metrics: the
 * endpoints that answer without the token.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

void api_h_page(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    (void)x;
    (void)c;
    r->status = 200;
    r->ctype = "text/html; charset=utf-8";
    r->body = (char *)api_web_page(&r->len);
    r->body_static = true;
}

void api_h_livez(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    (void)x;
    (void)c;
    api_resp_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_h_readyz(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    (void)c;
    if (atomic_load(&x->sh->ready))
        api_resp_json(r, 200, json_pack("{s:s}", "status", "ready"));
    else
        api_resp_err(r, 503, "not ready: starting up or shutting down");
}

/* The broker's and the TOE's part of the snapshot; *res: the reservations (caller frees). */
static void metrics_stacks(const struct api_ctx *x, struct api_metrics_in *in,
                           struct stk_reservation **res)
{
    const struct api_config *cfg = x->cfg;
    const struct api_toe_ops *toe = api_toe(x);

    if (cfg->broker) {
        in->have_tcp[STK_STACK_HOST] =
            stk_tcp_counters(cfg->broker, STK_STACK_HOST, &in->tcp[STK_STACK_HOST]) == 0;
        if (toe)
            in->have_tcp[STK_STACK_TOE] =
                stk_tcp_counters(cfg->broker, STK_STACK_TOE, &in->tcp[STK_STACK_TOE]) == 0;
        stk_broker_stats(cfg->broker, &in->broker);
        in->have_broker = true;
        if (stk_list_reservations(cfg->broker, res, &in->nreservations) < 0)
            in->nreservations = 0;
    }
    if (toe && toe->get_info(cfg->toe, &in->toe_info) == 0 &&
        toe->get_counters(cfg->toe, &in->toe) == 0)
        in->have_toe = true;
}

void api_h_metrics(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = x->cfg;
    struct sto_session_view *sess = NULL;
    struct sto_volume_view *vols = NULL;
    struct stk_reservation *res = NULL;
    struct api_metrics_in in;
    struct api_buf b;

    (void)c;
    memset(&in, 0, sizeof(in));
    in.ready = atomic_load(&x->sh->ready) != 0;
    in.names = cfg->metrics_auth; /* a public /metrics names nothing but ids */
    in.info = cfg->info;
    metrics_stacks(x, &in, &res);
    if (cfg->pool) {
        if (sto_pool_list_sessions(cfg->pool, &sess, &in.nsessions) < 0) {
            sess = NULL;
            in.nsessions = 0;
        }
        if (sto_pool_list_volumes(cfg->pool, &vols, &in.nvolumes) < 0) {
            vols = NULL;
            in.nvolumes = 0;
        }
    }
    in.sessions = sess;
    in.volumes = vols;
    if (cfg->pool) {
        sto_pool_nbd_stats(cfg->pool, &in.nbd);
        in.have_nbd = true;
    }
    for (int i = 0; i < 6; i++)
        in.api_requests[i] = atomic_load(&x->sh->counts[i]);

    api_buf_init(&b);
    api_metrics_render(&in, &b);
    r->body = api_buf_steal(&b, &r->len);
    if (!r->body) {
        api_resp_oom(r);
    } else {
        r->status = 200;
        r->ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    free(res);
    free(sess);
    free(vols);
}
