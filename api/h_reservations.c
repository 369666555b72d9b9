/*
 * h_reservations.c - /api/v1/reservations: the broker's port reservations (a port held on
 * both stacks for a holder that connects later).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

void api_h_reservations_list(const struct api_ctx *x, const struct api_call *c,
                             struct api_resp *r)
{
    struct stk_broker *b = api_need_broker(x, r);
    struct stk_reservation *list = NULL;
    size_t n = 0;
    json_t *arr;
    int ret;

    if (!b)
        return;
    if ((ret = stk_list_reservations(b, &list, &n)) < 0) {
        api_resp_err(r, 500, "cannot list reservations: %s", strerror(-ret));
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_json_reservation(&list[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(list);
    api_resp_json(r, 200, api_query_filter(arr, c->route->query));
}

void api_h_reservation_create(const struct api_ctx *x, const struct api_call *c,
                              struct api_resp *r)
{
    struct stk_broker *b = api_need_broker(x, r);
    struct stk_reservation one;
    struct api_reserve_req q;
    struct api_err e;
    char id[24];
    int ret;

    if (!b)
        return;
    if (api_parse_reserve_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    ret = stk_reserve_uid(b, q.holder, q.has_uid, q.uid, q.port, q.stack, &one);
    switch (-ret) {
    case 0:
        break;
    case EADDRINUSE:
        api_resp_err(r, 409, "port %u is taken on the host or the toe stack", q.port);
        return;
    case ERANGE:
        api_resp_err(r, 422, "port %u is outside the broker's port range", q.port);
        return;
    case ENOSPC:
        api_resp_err(r, 409, "no free port is left in the broker's port range");
        return;
    case EINVAL:
        api_resp_err(r, 422, "the broker refused the reservation as invalid");
        return;
    default:
        api_resp_err(r, 500, "cannot reserve a port: %s", strerror(-ret));
        return;
    }
    snprintf(id, sizeof(id), "%llu", (unsigned long long)one.id);
    api_resp_location(r, "reservations", id);
    api_resp_json(r, 201, api_json_reservation(&one));
}

/* Read (one != NULL) or release one reservation; false with the answer in r. */
static bool reservation_op(const struct api_ctx *x, const struct api_call *c,
                           struct stk_reservation *one, struct api_resp *r)
{
    struct stk_broker *b = api_need_broker(x, r);
    const char *arg = c->route->arg;
    uint64_t id;
    int ret;

    if (!b)
        return false;
    if (api_parse_u64(arg, strlen(arg), &id) < 0) {
        api_resp_err(r, 404, "no reservation \"%s\"", arg);
        return false;
    }
    ret = one ? stk_get_reservation(b, id, one) : stk_unreserve(b, id);
    switch (-ret) {
    case 0:
        return true;
    case ENOENT:
        api_resp_err(r, 404, "no reservation \"%s\"", arg);
        return false;
    case EBUSY:
        api_resp_err(r, 409, "reservation \"%s\" is in use by a connection", arg);
        return false;
    default:
        api_resp_err(r, 500, "reservation \"%s\": %s", arg, strerror(-ret));
        return false;
    }
}

void api_h_reservation_get(const struct api_ctx *x, const struct api_call *c,
                           struct api_resp *r)
{
    struct stk_reservation one;

    if (reservation_op(x, c, &one, r))
        api_resp_json(r, 200, api_json_reservation(&one));
}

void api_h_reservation_delete(const struct api_ctx *x, const struct api_call *c,
                              struct api_resp *r)
{
    if (reservation_op(x, c, NULL, r))
        api_resp_empty(r, 204);
}
