/*
 * h_stacks.c - /api/v1/stacks: both TCP stacks' state and counters, and the TOE's link
 * and wire faults (PATCH /api/v1/stacks/toe).
 */
#include <string.h>

#include "api/api_int.h"
#include "common/log.h"

/* The TOE's entry, with the broker's view of its TCP counters when there is one. */
static json_t *toe_view_full(const struct api_ctx *x)
{
    const struct api_config *cfg = x->cfg;
    const struct api_toe_ops *toe = api_toe(x);
    struct stk_tcp_counters tcp;
    struct api_toe_counters tc;
    struct api_toe_faults f;
    struct api_toe_info info;
    bool have_tcp, have_tc, have_f;

    if (!toe || toe->get_info(cfg->toe, &info) < 0)
        return api_json_toe_stack(NULL, NULL, NULL, NULL);
    have_tcp = cfg->broker && stk_tcp_counters(cfg->broker, STK_STACK_TOE, &tcp) == 0;
    have_tc = toe->get_counters(cfg->toe, &tc) == 0;
    have_f = toe->get_faults(cfg->toe, &f) == 0;
    return api_json_toe_stack(&info, have_tcp ? &tcp : NULL, have_tc ? &tc : NULL,
                              have_f ? &f : NULL);
}

static json_t *host_view(const struct api_config *cfg)
{
    struct stk_tcp_counters tcp;

    if (cfg->broker && stk_tcp_counters(cfg->broker, STK_STACK_HOST, &tcp) == 0)
        return api_json_host_stack(&tcp);
    return api_json_host_stack(NULL);
}

void api_h_stacks_list(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    json_t *arr = json_array();

    (void)c;
    if (arr && (json_array_append_new(arr, host_view(x->cfg)) < 0 ||
                json_array_append_new(arr, toe_view_full(x)) < 0)) {
        json_decref(arr);
        arr = NULL;
    }
    api_resp_json(r, 200, arr);
}

void api_h_stack_get(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    if (strcmp(c->route->arg, "toe") == 0)
        api_resp_json(r, 200, toe_view_full(x));
    else
        api_resp_json(r, 200, host_view(x->cfg));
}

static int patch_link(const struct api_ctx *x, const struct api_toe_ops *toe, bool up,
                      struct api_resp *r)
{
    int ret = toe->set_link(x->cfg->toe, up);

    if (ret < 0)
        api_resp_err(r, api_toe_status(ret), "cannot set the toe's link %s: %s",
                     up ? "up" : "down", api_toe_why(toe));
    return ret;
}

static int patch_faults(const struct api_ctx *x, const struct api_toe_ops *toe,
                        const struct api_toe_patch *p, struct api_toe_faults *f,
                        struct api_resp *r)
{
    int ret;

    memset(f, 0, sizeof(*f));
    if ((ret = toe->get_faults(x->cfg->toe, f)) < 0) {
        api_resp_err(r, api_toe_status(ret), "cannot read the toe's wire faults: %s",
                     api_toe_why(toe));
        return ret;
    }
    api_toe_patch_merge(p, f);
    if ((ret = toe->set_faults(x->cfg->toe, f)) < 0) {
        api_resp_err(r, api_toe_status(ret), "cannot set the toe's wire faults: %s",
                     api_toe_why(toe));
        return ret;
    }
    return 0;
}

void api_h_toe_patch(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_toe_ops *toe;
    struct api_toe_patch p;
    struct api_toe_faults f;
    struct api_err e;

    if (api_parse_toe_patch(c->body, c->body_len, &p, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!(toe = api_need_toe(x, r)))
        return;
    /* link up before new faults, link down after them: a downed wire may refuse faults */
    if (p.set_link && p.link_up && patch_link(x, toe, true, r) < 0)
        return;
    if (p.set_faults && patch_faults(x, toe, &p, &f, r) < 0)
        return;
    if (p.set_link && !p.link_up && patch_link(x, toe, false, r) < 0)
        return;
    if (p.set_link)
        log_info("api", "toe link set %s", p.link_up ? "up" : "down");
    if (p.set_faults)
        log_info("api", "toe wire faults set: drop %g dup %g reorder %g corrupt %g seed %llu",
                 f.drop, f.dup, f.reorder, f.corrupt, (unsigned long long)f.seed);
    api_resp_json(r, 200, toe_view_full(x));
}
