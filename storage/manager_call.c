/*
 * manager_call.c - the manager's calls from other threads: a struct mgr_call runs on the
 * storage loop through sto_loop_call. A caller that gave up hands the call over to the
 * loop, which frees it once it ends, so the loop never writes into freed memory and the
 * caller never reads a call it let go of.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/manager_int.h"

void sto_mgr_call_free(struct mgr_call *c)
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
    sto_mgr_call_free((struct mgr_call *)call);
}

void sto_mgr_call_finish(struct mgr_call *c, int err, enum sto_err_class cls, const char *fmt,
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

static void call_dispatch(struct sto_call *call)
{
    struct mgr_call *c = (struct mgr_call *)call;

    if (c->m->shutting_down && !c->any_time) {
        sto_mgr_call_finish(c, -ESHUTDOWN, STO_ERR_UNAVAILABLE,
                            "the appliance is shutting down");
        return;
    }
    c->run(c->m, c);
}

struct mgr_call *sto_mgr_call_new(struct sto_mgr *m,
                                  void (*run)(struct sto_mgr *, struct mgr_call *))
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

/* The three endings of sto_loop_call as a result: only a call that ended is the caller's. */
bool sto_mgr_call_through(struct sto_mgr *m, struct mgr_call *c, uint32_t ms,
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
int sto_mgr_call_take(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                             const char *id, void **out, size_t *n)
{
    struct mgr_call *c = sto_mgr_call_new(m, run);
    int ret;

    if (!c)
        return -ENOMEM;
    if (id)
        snprintf(c->id, sizeof(c->id), "%s", id);
    if (!sto_mgr_call_through(m, c, m->cfg.call_timeout_ms, NULL, &ret))
        return ret;
    if (ret == 0) {
        *out = c->out;
        if (n)
            *n = c->nout;
        c->out = NULL;
    }
    sto_mgr_call_free(c);
    return ret;
}

/* sto_mgr_call_take for one view copied into *out. */
int sto_mgr_call_take_one(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                                 const char *id, void *out, size_t size)
{
    void *v = NULL;
    int ret = sto_mgr_call_take(m, run, id, &v, NULL);

    if (ret == 0) {
        memcpy(out, v, size);
        free(v);
    }
    return ret;
}

/* Hand a snapshot the loop built over to the waiting caller (NULL: it could not be built). */
void sto_mgr_call_hand_over(struct mgr_call *c, void *v, size_t n)
{
    if (!v) {
        sto_mgr_call_finish(c, -ENOMEM, STO_ERR_INTERNAL, "out of memory");
        return;
    }
    c->out = v;
    c->nout = n;
    sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
}
