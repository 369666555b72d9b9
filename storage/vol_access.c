/*
 * vol_access.c - the volumes' access settings (manager.h, struct sto_vol_access): a table
 * on the storage loop, by volume id, holding only volumes whose access differs from the
 * default (writable, every client). The API changes it through a manager call, the state
 * file saves and restores it, the NBD server reads it on the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/manager_int.h"

static struct sto_vol_access *access_find(const struct sto_mgr *m, const char *id)
{
    for (size_t i = 0; i < m->naccess; i++)
        if (!strcmp(m->access[i].id, id))
            return &m->access[i];
    return NULL;
}

static bool access_default(const struct sto_vol_access *a)
{
    return !a->read_only && a->nallow == 0;
}

/* Put a into the table (replacing the entry of its id; dropped when default). */
static int access_store(struct sto_mgr *m, const struct sto_vol_access *a)
{
    struct sto_vol_access *e = access_find(m, a->id), *n;

    if (access_default(a)) {
        if (e) {
            *e = m->access[m->naccess - 1];
            m->naccess--;
        }
        return 0;
    }
    if (e) {
        *e = *a;
        return 0;
    }
    n = realloc(m->access, (m->naccess + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    m->access = n;
    m->access[m->naccess++] = *a;
    return 0;
}

void sto_vol_access_get(const struct sto_mgr *m, const char *id, struct sto_vol_access *out)
{
    const struct sto_vol_access *a = access_find(m, id);

    if (a) {
        *out = *a;
        return;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
}

void sto_vol_access_free(struct sto_mgr *m)
{
    free(m->access);
    m->access = NULL;
    m->naccess = 0;
}

const char *sto_volume_name(const struct sto_volume *v)
{
    return v->id;
}

const struct sto_vol_access *sto_volume_access(const struct sto_volume *v)
{
    static const struct sto_vol_access none;
    const struct sto_vol_access *a = access_find(v->m, v->id);

    return a ? a : &none;
}

bool sto_volume_allows(const struct sto_volume *v, const char *identity)
{
    const struct sto_vol_access *a = sto_volume_access(v);

    if (a->nallow == 0)
        return true;
    if (!identity || !*identity)
        return false;
    for (uint32_t i = 0; i < a->nallow; i++)
        if (!strcmp(a->allow[i], identity))
            return true;
    return false;
}

/* ---------------------------------------------------------------- calls */

static void run_set_access(struct sto_mgr *m, struct mgr_call *c)
{
    const struct sto_access_patch *p = (const struct sto_access_patch *)c->data;
    struct sto_vol_access a;
    int ret;

    if (!sto_volume_find(m, c->id)) {
        sto_mgr_call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no volume %s", c->id);
        return;
    }
    sto_vol_access_get(m, c->id, &a);
    if (p->set_read_only)
        a.read_only = p->read_only;
    if (p->set_allow) {
        a.nallow = p->nallow;
        memcpy(a.allow, p->allow, sizeof(a.allow));
    }
    ret = access_store(m, &a);
    sto_mgr_call_finish(c, ret, STO_ERR_INTERNAL, ret ? "out of memory" : NULL);
}

/* Run `run` on the loop with a copy of size bytes of data (and id, when not NULL). */
static int call_with_copy(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                          const char *id, const void *data, size_t size, struct sto_result *res)
{
    struct mgr_call *c = sto_mgr_call_new(m, run);
    int ret;

    if (!c)
        return -ENOMEM;
    c->data = malloc(size);
    if (!c->data) {
        sto_mgr_call_free(c);
        return -ENOMEM;
    }
    memcpy(c->data, data, size);
    if (id)
        snprintf(c->id, sizeof(c->id), "%s", id);
    if (!sto_mgr_call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    sto_mgr_call_free(c);
    return ret;
}

int sto_mgr_volume_set_access(struct sto_mgr *m, const char *id,
                              const struct sto_access_patch *p, struct sto_result *res)
{
    return call_with_copy(m, run_set_access, id, p, sizeof(*p), res);
}

static void run_store_access(struct sto_mgr *m, struct mgr_call *c)
{
    int ret = access_store(m, (const struct sto_vol_access *)c->data);

    sto_mgr_call_finish(c, ret, STO_ERR_INTERNAL, ret ? "out of memory" : NULL);
}

int sto_mgr_store_access(struct sto_mgr *m, const struct sto_vol_access *a,
                         struct sto_result *res)
{
    return call_with_copy(m, run_store_access, NULL, a, sizeof(*a), res);
}

static void run_export_access(struct sto_mgr *m, struct mgr_call *c)
{
    struct sto_vol_access *v = calloc(m->naccess ? m->naccess : 1, sizeof(*v));

    if (v && m->naccess)
        memcpy(v, m->access, m->naccess * sizeof(*v));
    sto_mgr_call_hand_over(c, v, m->naccess);
}

int sto_mgr_export_access(struct sto_mgr *m, struct sto_vol_access **out, size_t *n)
{
    return sto_mgr_call_take(m, run_export_access, NULL, (void **)out, n);
}

int sto_mgr_restore_access(struct sto_mgr *m, const struct sto_vol_access *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = access_store(m, &a[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}
