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

/* ---------------------------------------------------------------- TCP, both stacks */

struct tcp_field {
    const char *name;
    const char *type;
    const char *help;
    size_t off;
};

#define TCPF(n, m, t, h) { n, t, h, offsetof(struct stk_tcp_counters, m) }

static const struct tcp_field tcp_fields[] = {
    TCPF("tcp_active_opens_total", active_opens, "counter",
         "TCP connections this stack opened actively (SYN sent)."),
    TCPF("tcp_passive_opens_total", passive_opens, "counter",
         "TCP connections this stack accepted."),
    TCPF("tcp_attempt_fails_total", attempt_fails, "counter",
         "TCP connection attempts that failed."),
    TCPF("tcp_estab_resets_total", estab_resets, "counter",
         "Established TCP connections that were reset."),
    TCPF("tcp_curr_estab", curr_estab, "gauge",
         "TCP connections currently established or closing."),
    TCPF("tcp_in_segs_total", in_segs, "counter", "TCP segments received."),
    TCPF("tcp_out_segs_total", out_segs, "counter", "TCP segments sent."),
    TCPF("tcp_retrans_segs_total", retrans_segs, "counter", "TCP segments retransmitted."),
    TCPF("tcp_in_errs_total", in_errs, "counter", "TCP segments received in error."),
    TCPF("tcp_out_rsts_total", out_rsts, "counter", "TCP resets sent."),
};

static void render_tcp(const struct api_metrics_in *in, struct api_buf *b)
{
    for (size_t i = 0; i < sizeof(tcp_fields) / sizeof(tcp_fields[0]); i++) {
        const struct tcp_field *f = &tcp_fields[i];

        family(b, f->name, f->type, f->help);
        for (int s = STK_STACK_HOST; s <= STK_STACK_TOE; s++) {
            uint64_t v;

            if (!in->have_tcp[s])
                continue;
            memcpy(&v, (const char *)&in->tcp[s] + f->off, sizeof(v));
            u64_sample(b, f->name, "stack", stk_stack_name((enum stk_stack)s), v);
        }
    }
}

/* ---------------------------------------------------------------- the TOE */

static void render_toe(const struct api_metrics_in *in, struct api_buf *b)
{
    const struct api_toe_counters *c = &in->toe;
    const struct api_toe_dir_counters *dirs[2] = { &c->tx, &c->rx };
    static const char *const dir_names[2] = { "tx", "rx" };
    char mac[18], addr[16];

    family(b, "toe_present", "gauge", "1 when the appliance runs with the emulated TOE.");
    u64_sample(b, "toe_present", NULL, NULL, in->have_toe);
    if (!in->have_toe)
        return;

    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", in->toe_info.mac[0],
             in->toe_info.mac[1], in->toe_info.mac[2], in->toe_info.mac[3],
             in->toe_info.mac[4], in->toe_info.mac[5]);
    inet_ntop(AF_INET, &in->toe_info.addr, addr, sizeof(addr));
    family(b, "toe_info", "gauge", "The TOE's interface, address and MAC (always 1).");
    api_buf_puts(b, "toegw_toe_info{ifname=\"");
    api_metrics_label(b, in->toe_info.ifname);
    api_buf_printf(b, "\",addr=\"%s\",mac=\"%s\"} 1\n", addr, mac);
    family(b, "toe_link_up", "gauge", "1 when the TOE's link is up.");
    u64_sample(b, "toe_link_up", NULL, NULL, in->toe_info.link_up);
    family(b, "toe_mtu_bytes", "gauge", "MTU of the TOE's wire.");
    u64_sample(b, "toe_mtu_bytes", NULL, NULL, in->toe_info.mtu);
    family(b, "toe_max_conns", "gauge", "Offload capacity (--toe-max-conns).");
    u64_sample(b, "toe_max_conns", NULL, NULL, in->toe_info.max_conns);
    family(b, "toe_conns", "gauge", "Driver-interface connections open on the TOE now.");
    u64_sample(b, "toe_conns", NULL, NULL, in->toe_info.conns);

    family(b, "toe_wire_frames_total", "counter",
           "Frames that crossed the TOE's wire (tx: adapter to host, rx: host to adapter).");
    for (int d = 0; d < 2; d++)
        u64_sample(b, "toe_wire_frames_total", "dir", dir_names[d], dirs[d]->frames);
    family(b, "toe_wire_bytes_total", "counter",
           "Bytes of the frames that crossed the TOE's wire, Ethernet headers included.");
    for (int d = 0; d < 2; d++)
        u64_sample(b, "toe_wire_bytes_total", "dir", dir_names[d], dirs[d]->bytes);
    family(b, "toe_wire_dropped_total", "counter",
           "Frames the TOE's wire dropped, by reason (link_down, bad).");
    for (int d = 0; d < 2; d++) {
        sample2(b, "toe_wire_dropped_total", "dir", dir_names[d], "reason", "link_down");
        val_u64(b, dirs[d]->drop_link_down);
        sample2(b, "toe_wire_dropped_total", "dir", dir_names[d], "reason", "bad");
        val_u64(b, dirs[d]->drop_bad);
    }
    family(b, "toe_wire_faults_total", "counter",
           "Faults injected on the TOE's wire, by kind (drop, dup, reorder, corrupt).");
    for (int d = 0; d < 2; d++) {
        static const char *const kinds[4] = { "drop", "dup", "reorder", "corrupt" };
        const uint64_t vals[4] = { dirs[d]->fault_drop, dirs[d]->fault_dup,
                                   dirs[d]->fault_reorder, dirs[d]->fault_corrupt };

        for (int k = 0; k < 4; k++) {
            sample2(b, "toe_wire_faults_total", "dir", dir_names[d], "fault", kinds[k]);
            val_u64(b, vals[k]);
        }
    }

    static const struct {
        const char *name;
        const char *help;
        size_t off;
    } simple[] = {
        { "toe_tap_errors_total", "TAP reads and writes that failed.",
          offsetof(struct api_toe_counters, tap_errors) },
        { "toe_conns_opened_total", "Connections the TOE started (toe_connect).",
          offsetof(struct api_toe_counters, conns_opened) },
        { "toe_conns_established_total", "TOE connections that were established.",
          offsetof(struct api_toe_counters, conns_established) },
        { "toe_conns_failed_total", "TOE connections that never got established.",
          offsetof(struct api_toe_counters, conns_failed) },
        { "toe_conns_reset_total", "Established TOE connections that were reset or aborted.",
          offsetof(struct api_toe_counters, conns_reset) },
        { "toe_conns_refused_full_total", "Connections refused at --toe-max-conns.",
          offsetof(struct api_toe_counters, conns_refused_full) },
        { "toe_tcp_dropped_segments_total", "TCP segments the TOE's stack dropped.",
          offsetof(struct api_toe_counters, tcp_drop) },
        { "toe_capture_frames_total", "Frames written to the current capture.",
          offsetof(struct api_toe_counters, capture_frames) },
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        uint64_t v;

        memcpy(&v, (const char *)c + simple[i].off, sizeof(v));
        family(b, simple[i].name, "counter", simple[i].help);
        u64_sample(b, simple[i].name, NULL, NULL, v);
    }
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

struct sess_field {
    const char *name;
    const char *help;
    size_t off;
};

#define SESSF(n, m, h) { n, h, offsetof(struct isc_session_counters, m) }

static const struct sess_field sess_fields[] = {
    SESSF("session_commands_total", cmds, "SCSI commands the session ran."),
    SESSF("session_read_bytes_total", read_bytes, "Bytes read through the session."),
    SESSF("session_write_bytes_total", write_bytes, "Bytes written through the session."),
    SESSF("session_errors_total", errors, "SCSI commands that failed."),
    SESSF("session_r2ts_total", r2ts, "R2T PDUs received."),
    SESSF("session_async_events_total", async_events, "Asynchronous messages received."),
    SESSF("session_rejects_total", rejects, "Reject PDUs received."),
    SESSF("session_command_timeouts_total", cmd_timeouts,
          "SCSI commands that timed out (--command-timeout)."),
    SESSF("session_aborts_total", aborts, "ABORT TASK requests sent for timed-out commands."),
    SESSF("session_lun_resets_total", lun_resets,
          "LOGICAL UNIT RESET requests sent after an abort failed."),
    SESSF("session_nop_timeouts_total", nop_timeouts,
          "Connections dropped because a NOP-Out ping went unanswered."),
};

static void render_sessions(const struct api_metrics_in *in, struct api_buf *b)
{
    family(b, "sessions", "gauge", "iSCSI sessions of the appliance.");
    u64_sample(b, "sessions", NULL, NULL, in->nsessions);

    family(b, "session_info", "gauge",
           "One per session, with its target, portal, state and stack (always 1).");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct sto_session_view *s = &in->sessions[i];

        api_buf_puts(b, "toegw_session_info{session=\"");
        api_metrics_label(b, s->id);
        api_buf_puts(b, "\",target=\"");
        api_metrics_label(b, s->target);
        api_buf_puts(b, "\",portal=\"");
        api_metrics_label(b, s->portal);
        api_buf_puts(b, "\",state=\"");
        api_metrics_label(b, s->state ? s->state : "failed");
        api_buf_printf(b, "\",stack=\"%s\"} 1\n",
                       s->connected ? stk_stack_name(s->stack) : "none");
    }
    family(b, "session_up", "gauge", "1 when the session is logged in.");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct sto_session_view *s = &in->sessions[i];

        u64_sample(b, "session_up", "session", s->id,
                   s->state && strcmp(s->state, "logged_in") == 0);
    }
    for (size_t f = 0; f < sizeof(sess_fields) / sizeof(sess_fields[0]); f++) {
        family(b, sess_fields[f].name, "counter", sess_fields[f].help);
        for (size_t i = 0; i < in->nsessions; i++) {
            uint64_t v;

            memcpy(&v, (const char *)&in->sessions[i].counters + sess_fields[f].off,
                   sizeof(v));
            u64_sample(b, sess_fields[f].name, "session", in->sessions[i].id, v);
        }
    }
    family(b, "session_pdus_total", "counter", "iSCSI PDUs, by direction (in, out).");
    for (size_t i = 0; i < in->nsessions; i++) {
        sample2(b, "session_pdus_total", "session", in->sessions[i].id, "dir", "in");
        val_u64(b, in->sessions[i].counters.pdus_in);
        sample2(b, "session_pdus_total", "session", in->sessions[i].id, "dir", "out");
        val_u64(b, in->sessions[i].counters.pdus_out);
    }
    family(b, "session_nops_total", "counter", "NOP-In/NOP-Out PDUs, by direction.");
    for (size_t i = 0; i < in->nsessions; i++) {
        sample2(b, "session_nops_total", "session", in->sessions[i].id, "dir", "in");
        val_u64(b, in->sessions[i].counters.nops_in);
        sample2(b, "session_nops_total", "session", in->sessions[i].id, "dir", "out");
        val_u64(b, in->sessions[i].counters.nops_out);
    }
    family(b, "session_data_out_bytes_total", "counter",
           "Write data sent, by kind (immediate, unsolicited, solicited).");
    for (size_t i = 0; i < in->nsessions; i++) {
        const struct isc_session_counters *c = &in->sessions[i].counters;

        sample2(b, "session_data_out_bytes_total", "session", in->sessions[i].id, "kind",
                "immediate");
        val_u64(b, c->immediate_bytes);
        sample2(b, "session_data_out_bytes_total", "session", in->sessions[i].id, "kind",
                "unsolicited");
        val_u64(b, c->unsolicited_bytes);
        sample2(b, "session_data_out_bytes_total", "session", in->sessions[i].id, "kind",
                "solicited");
        val_u64(b, c->solicited_bytes);
    }
    family(b, "session_recoveries_total", "counter", "Times the session was re-established.");
    for (size_t i = 0; i < in->nsessions; i++)
        u64_sample(b, "session_recoveries_total", "session", in->sessions[i].id,
                   in->sessions[i].recoveries);
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

static void render_volumes(const struct api_metrics_in *in, struct api_buf *b)
{
    static const struct {
        const char *name;
        const char *help;
        size_t off;
    } fields[] = {
        { "volume_reads_total", "Read requests on the volume.",
          offsetof(struct sto_volume_view, reads) },
        { "volume_writes_total", "Write requests on the volume.",
          offsetof(struct sto_volume_view, writes) },
        { "volume_read_bytes_total", "Bytes read from the volume.",
          offsetof(struct sto_volume_view, read_bytes) },
        { "volume_write_bytes_total", "Bytes written to the volume.",
          offsetof(struct sto_volume_view, write_bytes) },
        { "volume_errors_total", "Failed requests on the volume.",
          offsetof(struct sto_volume_view, errors) },
    };

    family(b, "volumes", "gauge", "Volumes (LUNs) the appliance exports.");
    u64_sample(b, "volumes", NULL, NULL, in->nvolumes);
    family(b, "volume_info", "gauge", "One per volume, with its session, target and LUN.");
    for (size_t i = 0; i < in->nvolumes; i++) {
        const struct sto_volume_view *v = &in->volumes[i];

        api_buf_puts(b, "toegw_volume_info{volume=\"");
        api_metrics_label(b, v->id);
        api_buf_puts(b, "\",session=\"");
        api_metrics_label(b, v->session);
        api_buf_puts(b, "\",target=\"");
        api_metrics_label(b, v->target);
        api_buf_printf(b, "\",lun=\"%" PRIu32 "\"} 1\n", v->lun);
    }
    family(b, "volume_size_bytes", "gauge", "Size of the volume.");
    for (size_t i = 0; i < in->nvolumes; i++)
        u64_sample(b, "volume_size_bytes", "volume", in->volumes[i].id,
                   in->volumes[i].size_bytes);
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        family(b, fields[f].name, "counter", fields[f].help);
        for (size_t i = 0; i < in->nvolumes; i++) {
            uint64_t v;

            memcpy(&v, (const char *)&in->volumes[i] + fields[f].off, sizeof(v));
            u64_sample(b, fields[f].name, "volume", in->volumes[i].id, v);
        }
    }
    family(b, "volume_read_seconds_total", "counter", "Summed latency of the volume's reads.");
    for (size_t i = 0; i < in->nvolumes; i++) {
        sample2(b, "volume_read_seconds_total", "volume", in->volumes[i].id, NULL, NULL);
        val_seconds(b, in->volumes[i].read_ns);
    }
    family(b, "volume_write_seconds_total", "counter",
           "Summed latency of the volume's writes (until durable).");
    for (size_t i = 0; i < in->nvolumes; i++) {
        sample2(b, "volume_write_seconds_total", "volume", in->volumes[i].id, NULL, NULL);
        val_seconds(b, in->volumes[i].write_ns);
    }
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
