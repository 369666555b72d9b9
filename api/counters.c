/*
 * counters.c - the one list of every counter structure the API shows: each field's JSON
 * key, its Prometheus family, label, help text and type. render.c builds the JSON views
 * and metrics.c the exposition from these tables, so a counter is named in one place.
 *
 * A table's order is the exposition's order; the rows of one family (told apart by their
 * label) follow each other. The JSON views list the keys in the same order.
 */
#include <stddef.h>
#include <string.h>

#include "api/api_int.h"

/* A field of struct T: its offset and width (only 4- and 8-byte unsigned fields). */
#define AT(T, m)                                                                          \
    .off = offsetof(T, m),                                                                \
    .size = sizeof(((T *)0)->m) +                                                         \
            0 * sizeof(char[sizeof(((T *)0)->m) == 4 || sizeof(((T *)0)->m) == 8 ? 1 : -1])

#define TABLE(name, rows) const struct api_counter_table name = { rows, sizeof(rows) /       \
                                                                   sizeof((rows)[0]) }

/* ---------------------------------------------------------------- TCP, both stacks */

#define TCP(m, suffix, t, h)                                                              \
    { .json = #m, .metric = "tcp_" #m suffix, .type = t, .help = h,                       \
      AT(struct stk_tcp_counters, m) }

static const struct api_counter tcp_rows[] = {
    TCP(active_opens, "_total", "counter",
        "TCP connections this stack opened actively (SYN sent)."),
    TCP(passive_opens, "_total", "counter", "TCP connections this stack accepted."),
    TCP(attempt_fails, "_total", "counter", "TCP connection attempts that failed."),
    TCP(estab_resets, "_total", "counter", "Established TCP connections that were reset."),
    TCP(curr_estab, "", "gauge", "TCP connections currently established or closing."),
    TCP(in_segs, "_total", "counter", "TCP segments received."),
    TCP(out_segs, "_total", "counter", "TCP segments sent."),
    TCP(retrans_segs, "_total", "counter", "TCP segments retransmitted."),
    TCP(in_errs, "_total", "counter", "TCP segments received in error."),
    TCP(out_rsts, "_total", "counter", "TCP resets sent."),
};
TABLE(api_tcp_table, tcp_rows);

/* ---------------------------------------------------------------- the TOE's wire, by direction */

#define WIRE(m, fam, lk, lv, h)                                                           \
    { .json = #m, .metric = "toe_wire_" fam, .lkey = lk, .lval = lv, .type = "counter",  \
      .help = h, AT(struct api_toe_dir_counters, m) }

static const struct api_counter wire_rows[] = {
    WIRE(frames, "frames_total", NULL, NULL,
         "Frames that crossed the TOE's wire (tx: adapter to host, rx: host to adapter)."),
    WIRE(bytes, "bytes_total", NULL, NULL,
         "Bytes of the frames that crossed the TOE's wire, Ethernet headers included."),
    WIRE(drop_link_down, "dropped_total", "reason", "link_down",
         "Frames the TOE's wire dropped, by reason (link_down, bad)."),
    WIRE(drop_bad, "dropped_total", "reason", "bad", NULL),
    WIRE(fault_drop, "faults_total", "fault", "drop",
         "Faults injected on the TOE's wire, by kind (drop, dup, reorder, corrupt)."),
    WIRE(fault_dup, "faults_total", "fault", "dup", NULL),
    WIRE(fault_reorder, "faults_total", "fault", "reorder", NULL),
    WIRE(fault_corrupt, "faults_total", "fault", "corrupt", NULL),
};
TABLE(api_toe_wire_table, wire_rows);

/* ---------------------------------------------------------------- the TOE */

#define TOE(m, grp, j, fam, h)                                                            \
    { .json = j, .group = grp, .metric = fam, .type = "counter", .help = h,               \
      AT(struct api_toe_counters, m) }

static const struct api_counter toe_rows[] = {
    TOE(tap_errors, "wire", "tap_errors", "toe_tap_errors_total",
        "TAP reads and writes that failed."),
    TOE(conns_opened, "conn_stats", "opened", "toe_conns_opened_total",
        "Connections the TOE started (toe_connect)."),
    TOE(conns_established, "conn_stats", "established", "toe_conns_established_total",
        "TOE connections that were established."),
    TOE(conns_failed, "conn_stats", "failed", "toe_conns_failed_total",
        "TOE connections that never got established."),
    TOE(conns_reset, "conn_stats", "reset", "toe_conns_reset_total",
        "Established TOE connections that were reset or aborted."),
    TOE(conns_refused_full, "conn_stats", "refused_full", "toe_conns_refused_full_total",
        "Connections refused at --toe-max-conns."),
    TOE(conns_current, "conn_stats", "current", NULL, NULL),
    TOE(tcp_drop, "wire", "tcp_drop", "toe_tcp_dropped_segments_total",
        "TCP segments the TOE's stack dropped."),
    TOE(capture_frames, "wire", "capture_frames", "toe_capture_frames_total",
        "Frames written to the current capture."),
};
TABLE(api_toe_table, toe_rows);

/* ---------------------------------------------------------------- sessions */

#define SESS(m, j, fam, lk, lv, h)                                                        \
    { .json = j, .metric = "session_" fam, .lkey = lk, .lval = lv, .type = "counter",    \
      .help = h, AT(struct sto_session_view, m) }

static const struct api_counter session_rows[] = {
    SESS(counters.cmds, "commands", "commands_total", NULL, NULL,
         "SCSI commands the session ran."),
    SESS(counters.read_bytes, "read_bytes", "read_bytes_total", NULL, NULL,
         "Bytes read through the session."),
    SESS(counters.write_bytes, "write_bytes", "write_bytes_total", NULL, NULL,
         "Bytes written through the session."),
    SESS(counters.errors, "errors", "errors_total", NULL, NULL, "SCSI commands that failed."),
    SESS(counters.r2ts, "r2ts", "r2ts_total", NULL, NULL, "R2T PDUs received."),
    SESS(counters.async_events, "async_events", "async_events_total", NULL, NULL,
         "Asynchronous messages received."),
    SESS(counters.rejects, "rejects", "rejects_total", NULL, NULL, "Reject PDUs received."),
    SESS(counters.cmd_timeouts, "command_timeouts", "command_timeouts_total", NULL, NULL,
         "SCSI commands that timed out (--command-timeout)."),
    SESS(counters.aborts, "aborts", "aborts_total", NULL, NULL,
         "ABORT TASK requests sent for timed-out commands."),
    SESS(counters.lun_resets, "lun_resets", "lun_resets_total", NULL, NULL,
         "LOGICAL UNIT RESET requests sent after an abort failed."),
    SESS(counters.nop_timeouts, "nop_timeouts", "nop_timeouts_total", NULL, NULL,
         "Connections dropped because a NOP-Out ping went unanswered."),
    SESS(counters.pdus_in, "pdus_in", "pdus_total", "dir", "in",
         "iSCSI PDUs, by direction (in, out)."),
    SESS(counters.pdus_out, "pdus_out", "pdus_total", "dir", "out", NULL),
    SESS(counters.nops_in, "nops_in", "nops_total", "dir", "in",
         "NOP-In/NOP-Out PDUs, by direction."),
    SESS(counters.nops_out, "nops_out", "nops_total", "dir", "out", NULL),
    SESS(counters.immediate_bytes, "immediate_bytes", "data_out_bytes_total", "kind",
         "immediate", "Write data sent, by kind (immediate, unsolicited, solicited)."),
    SESS(counters.unsolicited_bytes, "unsolicited_bytes", "data_out_bytes_total", "kind",
         "unsolicited", NULL),
    SESS(counters.solicited_bytes, "solicited_bytes", "data_out_bytes_total", "kind",
         "solicited", NULL),
    SESS(recoveries, "recoveries", "recoveries_total", NULL, NULL,
         "Times the session was re-established."),
};
TABLE(api_session_table, session_rows);

/* ---------------------------------------------------------------- volumes */

#define VOL(m, j, fam, nsec, h)                                                           \
    { .json = j, .metric = "volume_" fam, .type = "counter", .help = h, .ns = nsec,       \
      AT(struct sto_volume_view, m) }

static const struct api_counter volume_rows[] = {
    VOL(reads, "reads", "reads_total", false, "Read requests on the volume."),
    VOL(writes, "writes", "writes_total", false, "Write requests on the volume."),
    VOL(read_bytes, "read_bytes", "read_bytes_total", false, "Bytes read from the volume."),
    VOL(write_bytes, "write_bytes", "write_bytes_total", false,
        "Bytes written to the volume."),
    VOL(errors, "errors", "errors_total", false, "Failed requests on the volume."),
    VOL(read_ns, "read_seconds", "read_seconds_total", true,
        "Summed latency of the volume's reads."),
    VOL(write_ns, "write_seconds", "write_seconds_total", true,
        "Summed latency of the volume's writes (until durable)."),
};
TABLE(api_volume_table, volume_rows);

uint64_t api_counter_get(const struct api_counter *c, const void *base)
{
    const char *p = (const char *)base + c->off;

    if (c->size == 4) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return v;
    }
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}
