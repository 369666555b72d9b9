/*
 * h_volumes.c - /api/v1/volumes: the LUNs of the sessions as volumes, who may use them
 * over NBD (PATCH /api/v1/volumes/{id}), and their data (GET and PUT
 * /api/v1/volumes/{id}/data, at most API_DATA_MAX bytes a request).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

void api_h_volumes_list(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = x->cfg;
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_volume_view *vols = NULL;
    size_t n = 0;
    json_t *arr;
    int ret;

    if (!m)
        return;
    if ((ret = sto_pool_list_volumes(m, &vols, &n)) < 0) {
        api_resp_err(r, 503, "cannot list volumes: %s", strerror(-ret));
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_json_volume(&vols[i], cfg->nbd_host,
                                                       cfg->nbd_port, cfg->nbd_tls)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(vols);
    api_resp_json(r, 200, api_query_filter(arr, c->route->query));
}

/* Look the volume up: false (with the answer in r) when it does not exist. */
static bool get_volume(struct sto_pool *m, const char *id, struct sto_volume_view *v,
                       struct api_resp *r)
{
    int ret = sto_pool_get_volume(m, id, v);

    if (ret == -ENOENT) {
        api_resp_err(r, 404, "no volume \"%s\"", id);
        return false;
    }
    if (ret < 0) {
        api_resp_err(r, ret == -ETIMEDOUT || ret == -EAGAIN ? 503 : 500,
                     "cannot read volume \"%s\": %s", id, strerror(-ret));
        return false;
    }
    return true;
}

void api_h_volume_get(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_volume_view v;

    if (!m || !get_volume(m, c->route->arg, &v, r))
        return;
    api_resp_json(r, 200, api_json_volume(&v, x->cfg->nbd_host, x->cfg->nbd_port,
                                          x->cfg->nbd_tls));
}

void api_h_volume_patch(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct sto_access_patch p;
    struct sto_volume_view v;
    struct sto_result res;
    struct api_err e;
    int ret;

    if (!m)
        return;
    if (api_parse_volume_patch(c->body, c->body_len, &p, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    memset(&res, 0, sizeof(res));
    ret = sto_pool_volume_set_access(m, c->route->arg, &p, &res);
    if (ret == -ENOENT) {
        api_resp_err(r, 404, "no volume \"%s\"", c->route->arg);
        return;
    }
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    if (!get_volume(m, c->route->arg, &v, r))
        return;
    api_resp_json(r, 200, api_json_volume(&v, x->cfg->nbd_host, x->cfg->nbd_port,
                                          x->cfg->nbd_tls));
}

/* Alignment, size and range checks of a data request; false with the answer in r. */
static bool check_range(const struct sto_volume_view *v, uint64_t off, uint64_t len,
                        struct api_resp *r)
{
    uint32_t bs = v->block_size;

    if (bs == 0) {
        api_resp_err(r, 503, "volume \"%s\" has no block size yet", v->id);
        return false;
    }
    if (len > API_DATA_MAX) {
        api_resp_err(r, 422, "length must be at most %d bytes a request", API_DATA_MAX);
        return false;
    }
    if (off % bs || len % bs) {
        api_resp_err(r, 422,
                     "offset and length must be multiples of the block size (%u bytes)", bs);
        return false;
    }
    if (off > v->size_bytes || len > v->size_bytes - off) {
        snprintf(r->content_range, sizeof(r->content_range), "bytes */%llu",
                 (unsigned long long)v->size_bytes);
        api_resp_err(r, 416, "range %llu+%llu is past the end of volume \"%s\" (%llu bytes)",
                     (unsigned long long)off, (unsigned long long)len, v->id,
                     (unsigned long long)v->size_bytes);
        return false;
    }
    return true;
}

/* The query and the volume of a data request; NULL manager with the answer in r. */
static struct sto_pool *data_begin(const struct api_ctx *x, const struct api_call *c,
                                  bool reading, struct api_data_query *q,
                                  struct sto_volume_view *v, struct api_resp *r)
{
    struct sto_pool *m = api_need_pool(x, r);
    struct api_err e;

    if (!m)
        return NULL;
    if (api_parse_data_query(c->route->query, reading, q, &e) < 0) {
        api_resp_problem(r, &e);
        return NULL;
    }
    if (!get_volume(m, c->route->arg, v, r))
        return NULL;
    return m;
}

void api_h_volume_read(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct api_data_query q;
    struct sto_volume_view v;
    struct sto_result res;
    struct api_err e;
    struct sto_pool *m;
    uint64_t len;
    void *buf;
    int ret;

    if (!(m = data_begin(x, c, true, &q, &v, r)))
        return;
    if (q.have_length)
        len = q.length;
    else if (q.offset <= v.size_bytes)
        len = v.size_bytes - q.offset < API_DATA_MAX ? v.size_bytes - q.offset : API_DATA_MAX;
    else
        len = 0;
    if (!check_range(&v, q.offset, len, r))
        return;
    buf = malloc(len ? len : 1);
    if (!buf) {
        api_resp_oom(r);
        return;
    }
    memset(&res, 0, sizeof(res));
    if (len) {
        ret = sto_pool_volume_read(m, v.id, q.offset, (uint32_t)len, buf, &res);
        if (ret < 0) {
            free(buf);
            api_err_from_sto(&e, ret, &res);
            api_resp_problem(r, &e);
            return;
        }
    }
    r->status = 200;
    r->ctype = "application/octet-stream";
    r->body = buf;
    r->len = len;
}

void api_h_volume_write(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    struct api_data_query q;
    struct sto_volume_view v;
    struct sto_result res;
    struct api_err e;
    struct sto_pool *m;
    int ret;

    if (!(m = data_begin(x, c, false, &q, &v, r)))
        return;
    if (c->body_len == 0) {
        api_resp_err(r, 422, "the body is empty: nothing to write");
        return;
    }
    if (v.access.read_only) {
        api_resp_err(r, 409, "volume \"%s\" is read-only (PATCH it with "
                     "{\"read_only\": false} first)", v.id);
        return;
    }
    if (!check_range(&v, q.offset, c->body_len, r))
        return;
    memset(&res, 0, sizeof(res));
    ret = sto_pool_volume_write(m, v.id, q.offset, (uint32_t)c->body_len, c->body, &res);
    if (ret < 0) {
        api_err_from_sto(&e, ret, &res);
        api_resp_problem(r, &e);
        return;
    }
    api_resp_empty(r, 204);
}
