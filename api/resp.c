/*
 * resp.c - what every endpoint answers with: JSON, problem+json and empty answers, and
 * the checks for the services an endpoint needs (manager, broker, TOE).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

static const char problem_oom[] =
    "{\"type\":\"urn:toegw:problem:internal-error\",\"title\":\"internal error\","
    "\"status\":500,\"detail\":\"out of memory\"}\n";

void api_resp_init(struct api_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* A static answer: an allocation failure must not need another allocation to report. */
void api_resp_oom(struct api_resp *r)
{
    if (!r->body_static)
        free(r->body);
    r->status = 500;
    r->ctype = "application/problem+json";
    r->body = (char *)problem_oom;
    r->len = sizeof(problem_oom) - 1;
    r->body_static = true;
}

void api_resp_problem(struct api_resp *r, const struct api_err *e)
{
    r->status = e->status;
    r->ctype = "application/problem+json";
    r->body = api_problem_render(e, &r->len);
    if (!r->body)
        api_resp_oom(r);
}

void api_resp_json(struct api_resp *r, int status, json_t *j)
{
    if (!j) {
        api_resp_oom(r);
        return;
    }
    r->status = status;
    r->ctype = "application/json";
    r->body = api_json_dump(j, &r->len);
    json_decref(j);
    if (!r->body)
        api_resp_oom(r);
}

void api_resp_err(struct api_resp *r, int status, const char *fmt, ...)
{
    struct api_err e;
    va_list ap;

    va_start(ap, fmt);
    api_err_vset(&e, status, fmt, ap);
    va_end(ap);
    api_resp_problem(r, &e);
}

void api_resp_empty(struct api_resp *r, int status)
{
    r->status = status;
    r->body = NULL;
    r->len = 0;
}

void api_resp_location(struct api_resp *r, const char *coll, const char *id)
{
    snprintf(r->location, sizeof(r->location), "/api/v1/%s/%s", coll, id);
}

bool api_is_get(enum api_method m)
{
    return m == API_M_GET || m == API_M_HEAD;
}

struct sto_pool *api_need_pool(const struct api_ctx *x, struct api_resp *r)
{
    struct sto_pool *m = x->cfg->pool;

    if (!m)
        api_resp_err(r, 503, "the storage pool is not running");
    return m;
}

struct stk_broker *api_need_broker(const struct api_ctx *x, struct api_resp *r)
{
    struct stk_broker *b = x->cfg->broker;

    if (!b)
        api_resp_err(r, 503, "the offload broker is not running");
    return b;
}

const struct api_toe_ops *api_toe(const struct api_ctx *x)
{
    return x->cfg->toe ? x->cfg->toe_ops : NULL;
}

const struct api_toe_ops *api_need_toe(const struct api_ctx *x, struct api_resp *r)
{
    const struct api_toe_ops *ops = api_toe(x);

    if (!ops)
        api_resp_err(r, 409, "the appliance runs without a toe (--no-toe)");
    return ops;
}

const char *api_toe_why(const struct api_toe_ops *ops)
{
    const char *m = ops && ops->strerror ? ops->strerror() : NULL;

    return m && m[0] ? m : "the toe refused it";
}

int api_toe_status(int err)
{
    switch (-err) {
    case EINVAL:
        return 422;
    case ENETDOWN:
    case EAGAIN:
        return 503;
    default:
        return 500;
    }
}
