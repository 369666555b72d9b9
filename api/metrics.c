/*
 * metrics.c - the Prometheus exposition (text format 0.0.4) of one snapshot.
 *
 * One family at a time: "# HELP", "# TYPE", then every sample of it, so each family is
 * contiguous as the format requires. Counters end in _total; latencies are counters of
 * seconds (rate(x_seconds_total) / rate(x_total) is the mean latency). Both stacks' TCP
 * counters are the same families told apart by a stack="host"|"toe" label: one MIB for
 * the single-stack view (claim 8).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

void api_metrics_label(struct api_buf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            api_buf_puts(out, "\\\\");
        else if (*p == '"')
            api_buf_puts(out, "\\\"");
        else if (*p == '\n')
            api_buf_puts(out, "\\n");
        else
            api_buf_put(out, p, 1);
    }
}

static void family(struct api_buf *b, const char *name, const char *type, const char *help)
{
    api_buf_printf(b, "# HELP toegw_%s %s\n# TYPE toegw_%s %s\n", name, help, name, type);
}

/* A sample with up to two labels (NULL key: none). */
static void sample2(struct api_buf *b, const char *name, const char *k1, const char *v1,
                    const char *k2, const char *v2)
{
    api_buf_printf(b, "toegw_%s", name);
    if (k1) {
        api_buf_printf(b, "{%s=\"", k1);
        api_metrics_label(b, v1);
        if (k2) {
            api_buf_printf(b, "\",%s=\"", k2);
            api_metrics_label(b, v2);
        }
        api_buf_puts(b, "\"}");
    }
}

static void val_u64(struct api_buf *b, uint64_t v)
{
    api_buf_printf(b, " %" PRIu64 "\n", v);
}

static void val_seconds(struct api_buf *b, uint64_t ns)
{
    api_buf_printf(b, " %" PRIu64 ".%09" PRIu64 "\n", ns / 1000000000u, ns % 1000000000u);
}

static void u64_sample(struct api_buf *b, const char *name, const char *k1, const char *v1,
                       uint64_t v)
{
    sample2(b, name, k1, v1, NULL, NULL);
    val_u64(b, v);
}

/* ---------------------------------------------------------------- counter tables */

/* The i-th object a table is rendered for, and its label value; NULL: skip it. */
typedef const void *obj_at_fn(const void *arg, size_t i, const char **label);

/*
 * Every family of a counter table (counters.c): for each object, a sample of each row of
 * the family, labelled okey="the object's label" (when okey) and with the row's label.
 */
static void render_table(struct api_buf *b, const struct api_counter_table *t, const char *okey,
                         size_t nobj, obj_at_fn *at, const void *arg)
{
    size_t i = 0;

    while (i < t->n) {
        const struct api_counter *f = &t->rows[i];
        size_t j = i + 1;

        if (!f->metric) {
            i++;
            continue;
        }
        while (j < t->n && t->rows[j].metric && strcmp(t->rows[j].metric, f->metric) == 0)
            j++;
        family(b, f->metric, f->type, f->help);
        for (size_t o = 0; o < nobj; o++) {
            const char *lv = NULL;
            const void *base = at(arg, o, &lv);

            for (size_t k = i; base && k < j; k++) {
                const struct api_counter *r = &t->rows[k];
                uint64_t v = api_counter_get(r, base);

                if (okey)
                    sample2(b, f->metric, okey, lv, r->lkey, r->lval);
                else
                    sample2(b, f->metric, r->lkey, r->lval, NULL, NULL);
                if (r->ns)
                    val_seconds(b, v);
                else
                    val_u64(b, v);
            }
        }
        i = j;
    }
}

/* ---------------------------------------------------------------- TCP, both stacks */

static const void *tcp_at(const void *arg, size_t i, const char **label)
{
    const struct api_metrics_in *in = arg;

    *label = stk_stack_name((enum stk_stack)i);
    return in->have_tcp[i] ? &in->tcp[i] : NULL;
}

static void render_tcp(const struct api_metrics_in *in, struct api_buf *b)
{
    render_table(b, &api_tcp_table, "stack", 2, tcp_at, in);
}

/* ---------------------------------------------------------------- the TOE */

static const void *wire_at(const void *arg, size_t i, const char **label)
{
    const struct api_toe_counters *c = arg;

    *label = i == 0 ? "tx" : "rx";
    return i == 0 ? &c->tx : &c->rx;
}

static const void *one_at(const void *arg, size_t i, const char **label)
{
    (void)i;
    *label = NULL;
    return arg;
}

static void render_toe(const struct api_metrics_in *in, struct api_buf *b)
{
    const struct api_toe_counters *c = &in->toe;
    char mac[18], addr[16];

    family(b, "toe_present", "gauge", "1 when the appliance runs with the emulated TOE.");
    u64_sample(b, "toe_present", NULL, NULL, in->have_toe);
    if (!in->have_toe)
        return;

    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", in->toe_info.mac[0],
             in->toe_info.mac[1], in->toe_info.mac[2], in->toe_info.mac[3],
             in->toe_info.mac[4], in->toe_info.mac[5]);
    inet_ntop(AF_INET, &in->toe_info.addr, addr, sizeof(addr));
    family(b, "toe_info", "gauge", "The TOE's interface, and with --metrics-auth its address "
           "and MAC (always 1).");
    api_buf_puts(b, "toegw_toe_info{ifname=\"");
    api_metrics_label(b, in->toe_info.ifname);
    if (in->names)
        api_buf_printf(b, "\",addr=\"%s\",mac=\"%s", addr, mac);
    api_buf_puts(b, "\"} 1\n");
    family(b, "toe_link_up", "gauge", "1 when the TOE's link is up.");
    u64_sample(b, "toe_link_up", NULL, NULL, in->toe_info.link_up);
    family(b, "toe_mtu_bytes", "gauge", "MTU of the TOE's wire.");
    u64_sample(b, "toe_mtu_bytes", NULL, NULL, in->toe_info.mtu);
    family(b, "toe_max_conns", "gauge", "Offload capacity (--toe-max-conns).");
    u64_sample(b, "toe_max_conns", NULL, NULL, in->toe_info.max_conns);
    family(b, "toe_conns", "gauge", "Driver-interface connections open on the TOE now.");
    u64_sample(b, "toe_conns", NULL, NULL, in->toe_info.conns);

    render_table(b, &api_toe_wire_table, "dir", 2, wire_at, c);
    render_table(b, &api_toe_table, NULL, 1, one_at, c);
}

/* ---------------------------------------------------------------- the broker */

static void render_broker(const struct api_metrics_in *in, struct api_buf *b)
{
    const struct stk_broker_stats *s = &in->broker;

    if (!in->have_broker)
        return;
    family(b, "broker_requests_total", "counter", "Connection requests to the broker.");
    u64_sample(b, "broker_requests_total", NULL, NULL, s->requests);
    family(b, "broker_granted_total", "counter", "Connections the broker granted, by stack.");
    u64_sample(b, "broker_granted_total", "stack", "host", s->granted_host);
    u64_sample(b, "broker_granted_total", "stack", "toe", s->granted_toe);
    family(b, "broker_refused_total", "counter", "Connection requests the broker refused.");
    u64_sample(b, "broker_refused_total", NULL, NULL, s->refused);
    family(b, "broker_released_total", "counter", "Connections returned to the broker.");
    u64_sample(b, "broker_released_total", NULL, NULL, s->released);
    family(b, "broker_ports_held", "gauge", "Ports of the range the broker holds now.");
    u64_sample(b, "broker_ports_held", NULL, NULL, s->ports_held);
    family(b, "broker_reservations", "gauge", "Port reservations now.");
    u64_sample(b, "broker_reservations", NULL, NULL, in->nreservations);
    family(b, "broker_connect_seconds_total", "counter",
           "Summed time from request to descriptor, by stack.");
    for (int st = 0; st < 2; st++) {
        sample2(b, "broker_connect_seconds_total", "stack",
                stk_stack_name((enum stk_stack)st), NULL, NULL);
        val_seconds(b, s->latency_ns[st]);
    }
    family(b, "broker_connects_total", "counter",
           "Requests counted in broker_connect_seconds_total, by stack.");
    for (int st = 0; st < 2; st++)
        u64_sample(b, "broker_connects_total", "stack", stk_stack_name((enum stk_stack)st),
                   s->latency_count[st]);
}

/* ---------------------------------------------------------------- sessions */

static const void *session_at(const void *arg, size_t i, const char **label)
{
    const struct api_metrics_in *in = arg;

    *label = in->sessions[i].id;
    return &in->sessions[i];
}

/* A Prometheus histogram sample set of one labelled object: cumulative buckets, sum, count. */
static void render_hist(struct api_buf *b, const char *family, const char *key, const char *id,
                        const struct hist *h)
{
    char name[96];
    uint64_t cum = 0;

    snprintf(name, sizeof(name), "%s_bucket", family);

    for (int i = 0; i < HIST_BUCKETS; i++) {
        char le[24];
        cum += h->bucket[i];
        snprintf(le, sizeof(le), "%g", hist_bounds_us[i] / 1e6);
        sample2(b, name, key, id, "le", le);
        val_u64(b, cum);
    }
    sample2(b, name, key, id, "le", "+Inf");
    val_u64(b, h->count);
    api_buf_printf(b, "toegw_%s_sum{%s=\"", family, key);
    api_metrics_label(b, id);
    api_buf_puts(b, "\"}");
    val_seconds(b, h->sum_ns);
    api_buf_printf(b, "toegw_%s_count{%s=\"", family, key);
    api_metrics_label(b, id);
    api_buf_puts(b, "\"}");
    val_u64(b, h->count);
}

/* The state and the stack of each session as state sets: 1 for the current value. */
static void render_session_states(const struct api_metrics_in *in, struct api_buf *b)
{
    static const char *const states[] = { "logging_in", "logged_in", "recovering", "failed",
                                          "logged_out" };
    static const char *const stacks[] = { "toe", "host", "none" };

    family(b, "session_state", "gauge", "The session's state: 1 for the one it is in.");
    for (size_t i = 0; i < in->nsessions; i++)
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
            const char *st = in->sessions[i].state ? in->sessions[i].state : "failed";
            sample2(b, "session_state", "session", in->sessions[i].id, "state", states[k]);
            val_u64(b, strcmp(st, states[k]) == 0);
        }
    family(b, "session_stack", "gauge", "The stack of the session's connection: 1 for the one "
           "it is on (none: not connected).");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct sto_session_view *s = &in->sessions[i];
        const char *on = s->connected ? stk_stack_name(s->stack) : "none";
        for (size_t k = 0; k < sizeof(stacks) / sizeof(stacks[0]); k++) {
            sample2(b, "session_stack", "session", s->id, "stack", stacks[k]);
            val_u64(b, strcmp(on, stacks[k]) == 0);
        }
    }
    family(b, "session_command_duration_seconds", "histogram",
           "SCSI commands of the session, from submission to status.");
    for (size_t i = 0; i < in->nsessions; i++)
        render_hist(b, "session_command_duration_seconds", "session",
                    in->sessions[i].id, &in->sessions[i].counters.latency);
}

static void render_sessions(const struct api_metrics_in *in, struct api_buf *b)
{
    family(b, "sessions", "gauge", "iSCSI sessions of the appliance.");
    u64_sample(b, "sessions", NULL, NULL, in->nsessions);

    family(b, "session_info", "gauge", "One per session, with --metrics-auth its target and "
           "portal (always 1).");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct sto_session_view *s = &in->sessions[i];

        api_buf_puts(b, "toegw_session_info{session=\"");
        api_metrics_label(b, s->id);
        if (in->names) {
            api_buf_puts(b, "\",target=\"");
            api_metrics_label(b, s->target);
            api_buf_puts(b, "\",portal=\"");
            api_metrics_label(b, s->portal);
        }
        api_buf_puts(b, "\"} 1\n");
    }
    render_session_states(in, b);
    family(b, "session_up", "gauge", "1 when the session is logged in.");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct sto_session_view *s = &in->sessions[i];

        u64_sample(b, "session_up", "session", s->id,
                   s->state && strcmp(s->state, "logged_in") == 0);
    }
    render_table(b, &api_session_table, "session", in->nsessions, session_at, in);
    family(b, "session_conn_bytes_total", "counter",
           "Bytes on the session's TCP connection, by direction.");
    for (size_t i = 0; i < in->nsessions; i++) {
        if (!in->sessions[i].connected)
            continue;
        sample2(b, "session_conn_bytes_total", "session", in->sessions[i].id, "dir", "in");
        val_u64(b, in->sessions[i].conn_bytes_in);
        sample2(b, "session_conn_bytes_total", "session", in->sessions[i].id, "dir", "out");
        val_u64(b, in->sessions[i].conn_bytes_out);
    }
}

/* ---------------------------------------------------------------- volumes */

static const void *volume_at(const void *arg, size_t i, const char **label)
{
    const struct api_metrics_in *in = arg;

    *label = in->volumes[i].id;
    return &in->volumes[i];
}

static void render_volumes(const struct api_metrics_in *in, struct api_buf *b)
{
    family(b, "volumes", "gauge", "Volumes (LUNs) the appliance exports.");
    u64_sample(b, "volumes", NULL, NULL, in->nvolumes);
    family(b, "volume_info", "gauge", "One per volume, with its session and LUN, and with "
           "--metrics-auth its target.");
    for (size_t i = 0; i < in->nvolumes; i++) {
        const struct sto_volume_view *v = &in->volumes[i];

        api_buf_puts(b, "toegw_volume_info{volume=\"");
        api_metrics_label(b, v->id);
        api_buf_puts(b, "\",session=\"");
        api_metrics_label(b, v->session);
        if (in->names) {
            api_buf_puts(b, "\",target=\"");
            api_metrics_label(b, v->target);
        }
        api_buf_printf(b, "\",lun=\"%" PRIu32 "\"} 1\n", v->lun);
    }
    family(b, "volume_size_bytes", "gauge", "Size of the volume.");
    for (size_t i = 0; i < in->nvolumes; i++)
        u64_sample(b, "volume_size_bytes", "volume", in->volumes[i].id,
                   in->volumes[i].size_bytes);
    render_table(b, &api_volume_table, "volume", in->nvolumes, volume_at, in);
    family(b, "volume_request_duration_seconds", "histogram",
           "Requests on the volume (NBD, REST data), from their start to their answer.");
    for (size_t i = 0; i < in->nvolumes; i++)
        render_hist(b, "volume_request_duration_seconds", "volume", in->volumes[i].id,
                    &in->volumes[i].latency);
}

static void render_nbd(const struct api_metrics_in *in, struct api_buf *b)
{
    if (!in->have_nbd)
        return;
    family(b, "nbd_clients_total", "counter", "NBD clients that connected.");
    u64_sample(b, "nbd_clients_total", NULL, NULL, in->nbd.clients_total);
    family(b, "nbd_clients", "gauge", "NBD clients connected now.");
    u64_sample(b, "nbd_clients", NULL, NULL, in->nbd.clients_now);
    family(b, "nbd_requests_total", "counter", "NBD requests run on a volume.");
    u64_sample(b, "nbd_requests_total", NULL, NULL, in->nbd.requests);
    family(b, "nbd_errors_total", "counter", "NBD requests that failed.");
    u64_sample(b, "nbd_errors_total", NULL, NULL, in->nbd.errors);
    family(b, "nbd_disconnects_mid_request_total", "counter",
           "Requests whose client had gone when they completed.");
    u64_sample(b, "nbd_disconnects_mid_request_total", NULL, NULL,
               in->nbd.disconnects_mid_request);
}

void api_metrics_render(const struct api_metrics_in *in, struct api_buf *out)
{
    static const char *const classes[6] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };

    api_metrics_build_info(out, in->info);
    api_metrics_process(out);
    family(out, "ready", "gauge", "1 when the appliance is ready (/readyz answers 200).");
    u64_sample(out, "ready", NULL, NULL, in->ready);
    render_tcp(in, out);
    render_toe(in, out);
    render_broker(in, out);
    render_sessions(in, out);
    render_volumes(in, out);
    render_nbd(in, out);
    family(out, "api_requests_total", "counter",
           "REST API requests answered, by status class.");
    for (int c = 1; c <= 5; c++)
        u64_sample(out, "api_requests_total", "code", classes[c], in->api_requests[c]);
}
