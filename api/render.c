/*
 * render.c - JSON views of the appliance's objects (the shapes of docs/api.md, plus documented
 * extensions). Views are built from snapshots; none of them has a field for a secret.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/sockspec.h"

const char *api_rfc3339(time_t t, char *buf, size_t len)
{
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "1970-01-01T00:00:00Z");
    return buf;
}

json_t *api_json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

char *api_json_dump(const json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    size_t n;
    char *out;

    if (!s)
        return NULL;
    n = strlen(s);
    out = realloc(s, n + 2);
    if (!out) {
        free(s);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return out;
}

/* Build-up helpers: a failed allocation anywhere makes the whole view NULL. */
static bool set_new(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

static bool set_u64(json_t *o, const char *k, uint64_t v)
{
    return set_new(o, k, api_json_u64(v));
}

static bool set_str(json_t *o, const char *k, const char *v)
{
    return set_new(o, k, v ? json_string(v) : json_null());
}

static bool set_addr(json_t *o, const char *k, const struct sockaddr_in *a)
{
    char ip[INET_ADDRSTRLEN], buf[32];

    if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)))
        snprintf(ip, sizeof(ip), "0.0.0.0");
    snprintf(buf, sizeof(buf), "%s:%u", ip, ntohs(a->sin_port));
    return set_str(o, k, buf);
}

static bool set_ip(json_t *o, const char *k, struct in_addr a)
{
    char ip[INET_ADDRSTRLEN];

    if (!inet_ntop(AF_INET, &a, ip, sizeof(ip)))
        snprintf(ip, sizeof(ip), "0.0.0.0");
    return set_str(o, k, ip);
}

/* A string without its trailing blanks (INQUIRY pads vendor and product). */
static bool set_trimmed(json_t *o, const char *k, const char *v, size_t max)
{
    char buf[128];
    size_t n = strnlen(v, max < sizeof(buf) ? max : sizeof(buf) - 1);

    memcpy(buf, v, n);
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return set_str(o, k, buf);
}

static json_t *finish(json_t *o, bool ok)
{
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/*
 * The rows of a counter table in group (NULL: those outside any sub-object) as members of
 * o, from the structure at base.
 */
static bool set_counters(json_t *o, const struct api_counter_table *t, const void *base,
                         const char *group)
{
    bool ok = true;

    for (size_t i = 0; ok && i < t->n; i++) {
        const struct api_counter *c = &t->rows[i];
        uint64_t v;

        if (!c->json || (group ? !c->group || strcmp(c->group, group) : c->group != NULL))
            continue;
        v = api_counter_get(c, base);
        ok = c->ns ? set_new(o, c->json, json_real((double)v / 1e9)) : set_u64(o, c->json, v);
    }
    return ok;
}

static json_t *counters_object(const struct api_counter_table *t, const void *base,
                               const char *group)
{
    json_t *o = json_object();

    return finish(o, o && set_counters(o, t, base, group));
}

json_t *api_json_tcp_counters(const struct stk_tcp_counters *c)
{
    return counters_object(&api_tcp_table, c, NULL);
}

json_t *api_json_host_stack(const struct stk_tcp_counters *c)
{
    json_t *o = json_object();
    bool ok = o != NULL;

    ok = ok && set_str(o, "name", "host");
    ok = ok && set_str(o, "state", "up");
    if (c)
        ok = ok && set_new(o, "counters", api_json_tcp_counters(c));
    else
        ok = ok && set_new(o, "counters", json_object());
    return finish(o, ok);
}

json_t *api_json_toe_stack(const struct api_toe_info *info, const struct stk_tcp_counters *c,
                           const struct api_toe_counters *tc, const struct api_toe_faults *f)
{
    json_t *o = json_object(), *w, *fo;
    bool ok = o != NULL;
    char mac[18];

    ok = ok && set_str(o, "name", "toe");
    if (!info) {
        ok = ok && set_str(o, "state", "absent");
        return finish(o, ok);
    }
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", info->mac[0], info->mac[1],
             info->mac[2], info->mac[3], info->mac[4], info->mac[5]);
    ok = ok && set_str(o, "state", info->link_up ? "up" : "down");
    ok = ok && set_ip(o, "addr", info->addr);
    ok = ok && set_u64(o, "prefix", info->prefix);
    ok = ok && set_str(o, "mac", mac);
    ok = ok && set_u64(o, "mtu", info->mtu);
    ok = ok && set_u64(o, "max_conns", info->max_conns);
    ok = ok && set_u64(o, "conns", info->conns);
    ok = ok && set_str(o, "ifname", info->ifname);
    ok = ok && set_ip(o, "host_addr", info->host_addr);
    ok = ok && set_u64(o, "host_prefix", info->host_prefix);
    ok = ok && set_new(o, "offload", json_boolean(info->offload));
    if (c) {
        ok = ok && set_new(o, "counters", api_json_tcp_counters(c));
    } else if (tc) {
        struct stk_tcp_counters t = {
            .active_opens = tc->tcp_active_opens,
            .attempt_fails = tc->tcp_attempt_fails,
            .estab_resets = tc->tcp_estab_resets,
            .curr_estab = tc->conns_current,
            .in_segs = tc->tcp_in_segs,
            .out_segs = tc->tcp_out_segs,
            .retrans_segs = tc->tcp_retrans_segs,
            .in_errs = tc->tcp_in_errs,
            .out_rsts = tc->tcp_out_rsts,
        };

        ok = ok && set_new(o, "counters", api_json_tcp_counters(&t));
    } else {
        ok = ok && set_new(o, "counters", json_object());
    }
    if (ok && tc) {
        w = json_object();
        ok = set_new(o, "wire", w);
        ok = ok && set_new(w, "tx", counters_object(&api_toe_wire_table, &tc->tx, NULL));
        ok = ok && set_new(w, "rx", counters_object(&api_toe_wire_table, &tc->rx, NULL));
        ok = ok && set_counters(w, &api_toe_table, tc, "wire");
        ok = ok && set_new(o, "conn_stats", counters_object(&api_toe_table, tc, "conn_stats"));
    }
    if (ok && f) {
        fo = json_object();
        ok = set_new(o, "faults", fo);
        ok = ok && set_new(fo, "drop", json_real(f->drop));
        ok = ok && set_new(fo, "dup", json_real(f->dup));
        ok = ok && set_new(fo, "reorder", json_real(f->reorder));
        ok = ok && set_new(fo, "corrupt", json_real(f->corrupt));
        ok = ok && set_u64(fo, "seed", f->seed);
    }
    return finish(o, ok);
}

json_t *api_json_reservation(const struct stk_reservation *r)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    char id[24], ts[32];

    snprintf(id, sizeof(id), "%llu", (unsigned long long)r->id);
    ok = ok && set_str(o, "id", id);
    ok = ok && set_u64(o, "port", r->port);
    ok = ok && set_str(o, "stack", stk_policy_name(r->stack));
    ok = ok && set_new(o, "holder", json_stringn(r->holder, strnlen(r->holder,
                                                                    sizeof(r->holder))));
    ok = ok && set_str(o, "created", api_rfc3339(r->created, ts, sizeof(ts)));
    ok = ok && set_new(o, "in_use", json_boolean(r->in_use));
    if (r->has_uid)
        ok = ok && set_u64(o, "uid", r->uid);
    return finish(o, ok);
}

json_t *api_json_conn_row(const struct stk_conn_row *r)
{
    json_t *o = json_object();
    bool ok = o != NULL;

    ok = ok && set_new(o, "id", json_stringn(r->id, strnlen(r->id, sizeof(r->id))));
    ok = ok && set_str(o, "stack", stk_stack_name(r->stack));
    ok = ok && set_str(o, "offload_state", r->stack == STK_STACK_TOE ? "offloaded" : "host");
    ok = ok && set_addr(o, "local", &r->local);
    ok = ok && set_addr(o, "remote", &r->remote);
    ok = ok && set_new(o, "state", json_stringn(r->state, strnlen(r->state,
                                                                 sizeof(r->state))));
    ok = ok && set_new(o, "owner", json_stringn(r->owner, strnlen(r->owner,
                                                                 sizeof(r->owner))));
    ok = ok && set_u64(o, "bytes_in", r->bytes_in);
    ok = ok && set_u64(o, "bytes_out", r->bytes_out);
    /* "placement" and "placement_reason": the same, under both names */
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "placement_reason" : "placement";
        if (r->placement[0])
            ok = ok && set_new(o, key, json_stringn(r->placement,
                                                    strnlen(r->placement,
                                                            sizeof(r->placement))));
        else
            ok = ok && set_new(o, key, json_null());
    }
    return finish(o, ok);
}

json_t *api_json_targets(const struct isc_target_list *l)
{
    json_t *o = json_object(), *arr = json_array();
    bool ok = o && arr && json_object_set(o, "targets", arr) == 0;

    for (size_t i = 0; ok && l && i < l->n; i++) {
        json_t *t = json_object(), *ps = json_array();

        ok = t && ps && json_array_append_new(arr, t) == 0;
        if (!ok) {
            json_decref(ps);
            break;
        }
        ok = set_str(t, "iqn", l->v[i].name ? l->v[i].name : "");
        ok = ok && set_new(t, "portals", ps);
        for (size_t k = 0; ok && k < l->v[i].nportals; k++)
            ok = json_array_append_new(ps, json_string(l->v[i].portals[k]
                                                       ? l->v[i].portals[k] : "")) == 0;
    }
    json_decref(arr);
    return finish(o, ok);
}

static json_t *negotiated(const struct sto_session_view *s)
{
    const struct isc_params *p = &s->params;
    json_t *o = json_object();
    bool ok = o != NULL;

    ok = ok && set_str(o, "header_digest", p->header_digest ? "crc32c" : "none");
    ok = ok && set_str(o, "data_digest", p->data_digest ? "crc32c" : "none");
    ok = ok && set_u64(o, "max_recv_data_segment_length", p->max_recv_dsl);
    ok = ok && set_u64(o, "max_send_data_segment_length", p->max_send_dsl);
    ok = ok && set_u64(o, "max_burst_length", p->max_burst);
    ok = ok && set_u64(o, "first_burst_length", p->first_burst);
    ok = ok && set_new(o, "initial_r2t", json_boolean(p->initial_r2t));
    ok = ok && set_new(o, "immediate_data", json_boolean(p->immediate_data));
    ok = ok && set_u64(o, "max_outstanding_r2t", p->max_outstanding_r2t);
    ok = ok && set_new(o, "data_pdu_in_order", json_boolean(p->data_pdu_in_order));
    ok = ok && set_new(o, "data_sequence_in_order", json_boolean(p->data_seq_in_order));
    ok = ok && set_u64(o, "default_time2wait", p->default_time2wait);
    ok = ok && set_u64(o, "default_time2retain", p->default_time2retain);
    ok = ok && set_u64(o, "error_recovery_level", p->error_recovery_level);
    ok = ok && set_u64(o, "max_connections", p->max_connections);
    ok = ok && set_u64(o, "tsih", s->tsih);
    return finish(o, ok);
}

static json_t *session_luns(const struct sto_session_view *s, const struct sto_volume_view *vols,
                            size_t nvols)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;

    if (vols) {
        for (size_t i = 0; ok && i < nvols; i++) {
            const struct sto_volume_view *v = &vols[i];
            json_t *o;

            if (strncmp(v->session, s->id, sizeof(v->session)) != 0)
                continue;
            o = json_object();
            ok = o && json_array_append_new(arr, o) == 0;
            ok = ok && set_u64(o, "lun", v->lun);
            ok = ok && set_str(o, "volume", v->id);
            ok = ok && set_u64(o, "size_bytes", v->size_bytes);
            ok = ok && set_u64(o, "block_size", v->block_size);
        }
        return finish(arr, ok);
    }
    for (uint32_t i = 0; ok && i < s->nvolumes && i < 64; i++) {
        json_t *o = json_object();

        ok = o && json_array_append_new(arr, o) == 0;
        ok = ok && set_new(o, "volume", json_stringn(s->volumes[i],
                                                     strnlen(s->volumes[i], STO_ID_MAX)));
    }
    return finish(arr, ok);
}

json_t *api_json_session(const struct sto_session_view *s, const struct sto_volume_view *vols,
                         size_t nvols)
{
    json_t *o = json_object(), *c;
    bool ok = o != NULL;
    char rid[24];

    ok = ok && set_str(o, "id", s->id);
    ok = ok && set_str(o, "portal", s->portal);
    ok = ok && set_str(o, "target", s->target);
    ok = ok && set_str(o, "initiator_name", s->initiator[0] ? s->initiator : NULL);
    ok = ok && set_str(o, "state", s->state ? s->state : "failed");
    ok = ok && set_str(o, "stack", s->connected ? stk_stack_name(s->stack) : NULL);
    ok = ok && set_str(o, "policy", stk_policy_name(s->policy));
    snprintf(rid, sizeof(rid), "%llu", (unsigned long long)s->reservation);
    ok = ok && set_str(o, "reservation", s->reservation ? rid : NULL);
    ok = ok && set_str(o, "error", s->error[0] ? s->error : NULL);
    if (ok && s->connected) {
        c = json_object();
        ok = set_new(o, "connection", c);
        ok = ok && set_str(c, "stack", stk_stack_name(s->stack));
        ok = ok && set_str(c, "offload_state",
                           s->stack == STK_STACK_TOE ? "offloaded" : "host");
        ok = ok && set_addr(c, "local", &s->local);
        ok = ok && set_addr(c, "remote", &s->remote);
        ok = ok && set_u64(c, "bytes_in", s->conn_bytes_in);
        ok = ok && set_u64(c, "bytes_out", s->conn_bytes_out);
    } else {
        ok = ok && set_new(o, "connection", json_null());
    }
    ok = ok && set_new(o, "negotiated", negotiated(s));
    ok = ok && set_new(o, "luns", session_luns(s, vols, nvols));
    ok = ok && set_new(o, "counters", counters_object(&api_session_table, s, NULL));
    return finish(o, ok);
}

/* Who may use the volume over NBD: [] is everyone. */
static json_t *allow_array(const struct sto_vol_access *a)
{
    json_t *arr = json_array();

    for (uint32_t i = 0; arr && i < a->nallow && i < STO_ALLOW_MAX; i++)
        if (json_array_append_new(arr, json_string(a->allow[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

json_t *api_json_volume(const struct sto_volume_view *v, const char *nbd_host,
                        uint16_t nbd_port, bool tls)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    char uri[256];

    /* libnbd's URI forms: nbds (TLS) or nbd, +unix for a Unix socket */
    if (nbd_host && sockspec_is_unix(nbd_host))
        snprintf(uri, sizeof(uri), "%s+unix:///%s?socket=%s", tls ? "nbds" : "nbd", v->id,
                 nbd_host + 5);
    else
        snprintf(uri, sizeof(uri), "%s://%s:%u/%s", tls ? "nbds" : "nbd",
                 nbd_host && nbd_host[0] ? nbd_host : "127.0.0.1", nbd_port ? nbd_port : 10809,
                 v->id);
    ok = ok && set_str(o, "id", v->id);
    ok = ok && set_str(o, "session", v->session[0] ? v->session : NULL);
    ok = ok && set_u64(o, "lun", v->lun);
    ok = ok && set_u64(o, "size_bytes", v->size_bytes);
    ok = ok && set_u64(o, "block_size", v->block_size);
    ok = ok && set_trimmed(o, "vendor", v->vendor, sizeof(v->vendor));
    ok = ok && set_trimmed(o, "product", v->product, sizeof(v->product));
    ok = ok && set_str(o, "wwn", v->wwn[0] ? v->wwn : NULL);
    ok = ok && set_str(o, "export", uri);
    ok = ok && set_str(o, "target", v->target);
    ok = ok && set_new(o, "thin", json_boolean(v->thin));
    ok = ok && set_u64(o, "max_transfer_bytes", v->max_transfer_bytes);
    ok = ok && set_new(o, "read_only", json_boolean(v->access.read_only));
    ok = ok && set_new(o, "allow", allow_array(&v->access));
    ok = ok && set_new(o, "counters", counters_object(&api_volume_table, v, NULL));
    return finish(o, ok);
}
