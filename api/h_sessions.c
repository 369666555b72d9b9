/*
 * h_sessions.c - /api/v1/discovery and /api/v1/sessions: SendTargets discovery, and iSCSI
 * sessions logged in, listed and logged out through the storage manager.
 *
 * Secrets from a request are copied into stack structures that are wiped before the
 * handler returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

void api_h_discovery(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct isc_target_list *list = NULL;
    struct api_discovery_req q;
    struct sto_result res;
    struct api_err e;
    int ret;

    if (!m)
        return;
    if (api_parse_discovery_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    memset(&res, 0, sizeof(res));
    ret = sto_pool_discover(m, q.portal, q.stack, &q.chap, &list, &res);
    explicit_bzero(&q, sizeof(q));
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    api_resp_json(r, 200, api_json_targets(list));
    if (list)
        isc_target_list_free(list);
}

/* Why the broker put the session's connection on its stack ("offloaded", "toe_unreachable"). */
static void add_placement(const struct api_ctx *x, const struct sto_session_view *v, json_t *j)
{
    struct stk_conn_row row = { .stack = v->stack, .local = v->local, .remote = v->remote };
    json_t *conn = j ? json_object_get(j, "connection") : NULL;

    if (!conn || !json_is_object(conn) || !x->cfg->broker)
        return;
    stk_broker_annotate(x->cfg->broker, &row, 1);
    json_object_set_new(conn, "placement_reason",
                        row.placement[0] ? json_string(row.placement) : json_null());
}

static json_t *session_with_luns(const struct api_ctx *x, struct sto_pool *m,
                                 const struct sto_session_view *v)
{
    struct sto_volume_view *vols = NULL;
    size_t nv = 0;
    json_t *j;

    if (sto_pool_list_volumes(m, &vols, &nv) < 0) {
        vols = NULL;
        nv = 0;
    }
    j = api_json_session(v, vols, nv);
    free(vols);
    add_placement(x, v, j);
    return j;
}

void api_h_sessions_list(const struct api_ctx *x, const struct api_call *c,
                         struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_session_view *list = NULL;
    struct sto_volume_view *vols = NULL;
    struct api_err e;
    size_t n = 0, nv = 0;
    json_t *arr;
    int ret;

    if (!m)
        return;
    if ((ret = sto_pool_list_sessions(m, &list, &n)) < 0) {
        api_err_from_sto(&e, ret, NULL);
        api_resp_problem(r, &e);
        return;
    }
    if (sto_pool_list_volumes(m, &vols, &nv) < 0) {
        vols = NULL;
        nv = 0;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *one = api_json_session(&list[i], vols, nv);
        add_placement(x, &list[i], one);   /* as GET /api/v1/sessions/{id} has it */
        if (json_array_append_new(arr, one) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(list);
    free(vols);
    api_resp_json(r, 200, api_query_filter(arr, c->route->query));
}

void api_h_session_create(const struct api_ctx *x, const struct api_call *c,
                          struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_session_view *one;
    struct sto_session_req req;
    struct sto_result res;
    char id[STO_ID_MAX];
    struct api_err e;
    int ret;

    if (!m)
        return;
    if (api_parse_session_req(c->body, c->body_len, &req, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    memset(&res, 0, sizeof(res));
    memset(id, 0, sizeof(id));
    ret = sto_pool_session_create(m, &req, id, &res);
    explicit_bzero(&req, sizeof(req));
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    id[sizeof(id) - 1] = '\0';
    api_resp_location(r, "sessions", id);
    one = calloc(1, sizeof(*one));
    if (one && sto_pool_get_session(m, id, one) == 0) {
        api_resp_json(r, 201, session_with_luns(x, m, one));
    } else {
        /* logged in, then gone already (logged out by another request): say so briefly */
        api_resp_json(r, 201, json_pack("{s:s, s:s}", "id", id, "state", "logged_out"));
    }
    free(one);
}

void api_h_session_get(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    const char *id = c->route->arg;
    struct sto_session_view *one;
    int ret;

    if (!m)
        return;
    one = calloc(1, sizeof(*one));
    if (!one) {
        api_resp_oom(r);
        return;
    }
    ret = sto_pool_get_session(m, id, one);
    if (ret == -ENOENT)
        api_resp_err(r, 404, "no session \"%s\"", id);
    else if (ret < 0)
        api_resp_err(r, ret == -ETIMEDOUT || ret == -EAGAIN ? 503 : 500,
                     "cannot read session \"%s\": %s", id, strerror(-ret));
    else
        api_resp_json(r, 200, session_with_luns(x, m, one));
    free(one);
}

void api_h_session_delete(const struct api_ctx *x, const struct api_call *c,
                          struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_result res;
    struct api_err e;
    int ret;

    if (!m)
        return;
    memset(&res, 0, sizeof(res));
    ret = sto_pool_session_delete(m, c->route->arg, &res);
    if (ret < 0) {
        if (ret == -ENOENT && res.cls == STO_ERR_NONE)
            res.cls = STO_ERR_NOT_FOUND;
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    api_resp_empty(r, 204);
}
