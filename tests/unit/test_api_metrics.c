/*
 * test_api_metrics.c - the Prometheus exposition: valid text format 0.0.4 (every family
 * announced once with # HELP and # TYPE, contiguous, counters named _total, labels
 * escaped), and the figures docs/api.md lists: both stacks' TCP counters by stack
 * label, the TOE's wire, the broker, sessions and volumes with latencies in seconds.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

static struct api_metrics_in in;
static struct sto_session_view sess[2];
static struct sto_volume_view vols[2];

static void setup(void)
{
    memset(&in, 0, sizeof(in));
    memset(sess, 0, sizeof(sess));
    memset(vols, 0, sizeof(vols));
    in.ready = true;
    in.have_tcp[STK_STACK_HOST] = in.have_tcp[STK_STACK_TOE] = true;
    in.tcp[STK_STACK_HOST].active_opens = 70;
    in.tcp[STK_STACK_TOE].active_opens = 7;
    in.tcp[STK_STACK_TOE].retrans_segs = 3;
    in.tcp[STK_STACK_TOE].curr_estab = 2;
    in.have_toe = true;
    in.toe_info.link_up = true;
    snprintf(in.toe_info.ifname, sizeof(in.toe_info.ifname), "toe0");
    in.toe_info.mtu = 9000;
    in.toe_info.max_conns = 1024;
    in.toe_info.conns = 2;
    in.toe.tx.frames = 11;
    in.toe.rx.frames = 12;
    in.toe.rx.fault_drop = 5;
    in.toe.conns_refused_full = 1;
    in.have_broker = true;
    in.broker.requests = 4;
    in.broker.granted_toe = 3;
    in.broker.granted_host = 1;
    in.broker.latency_ns[STK_STACK_TOE] = 1500000000ull;
    in.broker.latency_count[STK_STACK_TOE] = 3;
    in.nreservations = 2;
    snprintf(sess[0].id, STO_ID_MAX, "s-000000000001");
    snprintf(sess[0].target, STO_NAME_MAX, "iqn.2026-11.x:\"quoted\"\\back\nline");
    snprintf(sess[0].portal, STO_NAME_MAX, "192.0.2.1:3260");
    sess[0].state = "logged_in";
    sess[0].connected = true;
    sess[0].stack = STK_STACK_TOE;
    sess[0].counters.cmds = 100;
    sess[0].counters.pdus_in = 201;
    sess[0].counters.pdus_out = 202;
    snprintf(sess[1].id, STO_ID_MAX, "s-000000000002");
    snprintf(sess[1].target, STO_NAME_MAX, "iqn.2026-11.x:b");
    sess[1].state = "recovering";
    in.sessions = sess;
    in.nsessions = 2;
    snprintf(vols[0].id, STO_ID_MAX, "v-0000000000000001");
    snprintf(vols[0].session, STO_ID_MAX, "s-000000000001");
    snprintf(vols[0].target, STO_NAME_MAX, "iqn.2026-11.x:a");
    vols[0].size_bytes = 1 << 30;
    vols[0].reads = 10;
    vols[0].read_ns = 1234567890123ull;
    vols[0].write_ns = 5;
    snprintf(vols[1].id, STO_ID_MAX, "v-0000000000000002");
    in.volumes = vols;
    in.nvolumes = 2;
    in.api_requests[2] = 9;
    in.api_requests[4] = 1;
    inet_pton(AF_INET, "192.0.2.2", &in.toe_info.addr);
    in.toe_info.mac[0] = 0x02;
    in.names = true;
}

TestSuite(metrics, .init = setup);

static char *render(void)
{
    struct api_buf b;
    char *s;

    api_buf_init(&b);
    api_metrics_render(&in, &b);
    s = api_buf_steal(&b, NULL);
    cr_assert_not_null(s);
    return s;
}

/* A label value: "..." with \\, \" and \n escapes only. Returns past the closing quote. */
static const char *skip_label_value(const char *p, int lineno)
{
    cr_assert_eq(*p, '"', "line %d: label value not quoted", lineno);
    for (p++; *p != '"'; p++) {
        cr_assert_neq(*p, '\0', "line %d: unterminated label value", lineno);
        cr_assert_neq(*p, '\n', "line %d: raw newline in a label", lineno);
        if (*p == '\\') {
            p++;
            cr_assert(*p == '\\' || *p == '"' || *p == 'n', "line %d: bad escape", lineno);
        }
    }
    return p + 1;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Check the whole exposition against the text format; returns the number of samples. */
static int check_format(char *text)
{
    char families[512][96];
    size_t nfam = 0;
    char cur[96] = "", help_for[96] = "", cur_type[16] = "";
    int lineno = 0, samples = 0;
    char *save = NULL;

    cr_assert_eq(text[strlen(text) - 1], '\n', "ends with a newline");
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[96];

            cr_assert_eq(sscanf(line + 7, "%95s", name), 1);
            cr_assert_eq(strncmp(name, "toegw_", 6), 0, "line %d: prefix", lineno);
            for (size_t i = 0; i < nfam; i++)
                cr_assert_str_neq(families[i], name, "family %s announced twice", name);
            cr_assert_lt(nfam, 512u);
            snprintf(families[nfam++], sizeof(families[0]), "%s", name);
            cr_assert_gt(strlen(line + 7), strlen(name) + 1, "line %d: empty help", lineno);
            snprintf(help_for, sizeof(help_for), "%s", name);
            cur[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], type[16];

            cr_assert_eq(sscanf(line + 7, "%95s %15s", name, type), 2);
            cr_assert_str_eq(name, help_for, "line %d: TYPE without its HELP", lineno);
            cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
                      "line %d: type %s", lineno, type);
            if (strcmp(type, "counter") == 0)
                cr_assert(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0,
                          "counter %s does not end in _total", name);
            snprintf(cur, sizeof(cur), "%s", name);
            snprintf(cur_type, sizeof(cur_type), "%s", type);
            continue;
        }
        cr_assert_neq(line[0], '#', "line %d: unknown comment", lineno);
        /* a sample of the current family */
        const char *p = line;
        size_t n = 0;
        char *end;

        while (name_char(p[n]))
            n++;
        cr_assert_neq(cur[0], '\0', "line %d: sample before its TYPE", lineno);
        cr_assert(n == strlen(cur) && strncmp(p, cur, n) == 0,
                  "line %d: sample \"%.*s\" outside its family %s", lineno, (int)n, p, cur);
        p += n;
        if (*p == '{') {
            p++;
            for (;;) {
                size_t k = 0;

                while (name_char(p[k]))
                    k++;
                cr_assert_gt(k, 0u, "line %d: empty label name", lineno);
                cr_assert_eq(p[k], '=', "line %d: label without =", lineno);
                p = skip_label_value(p + k + 1, lineno);
                if (*p == ',') {
                    p++;
                    continue;
                }
                cr_assert_eq(*p, '}', "line %d: labels not closed", lineno);
                p++;
                break;
            }
        }
        cr_assert_eq(*p, ' ', "line %d: no space before the value", lineno);
        strtod(p + 1, &end);
        cr_assert(end != p + 1 && *end == '\0', "line %d: bad value \"%s\"", lineno, p + 1);
        samples++;
    }
    return samples;
}

static void expect_line(const char *text, const char *line)
{
    char want[512];

    snprintf(want, sizeof(want), "\n%s\n", line);
    cr_assert_not_null(strstr(text, want), "missing line: %s", line);
}

Test(metrics, valid_text_format)
{
    char *s = render();
    int n = check_format(s);

    cr_assert_gt(n, 50);
    free(s);
}

Test(metrics, both_stacks_by_label)
{
    char *s = render();

    expect_line(s, "toegw_tcp_active_opens_total{stack=\"host\"} 70");
    expect_line(s, "toegw_tcp_active_opens_total{stack=\"toe\"} 7");
    expect_line(s, "toegw_tcp_retrans_segs_total{stack=\"toe\"} 3");
    expect_line(s, "toegw_tcp_curr_estab{stack=\"toe\"} 2");
    expect_line(s, "# TYPE toegw_tcp_curr_estab gauge");
    free(s);
}

Test(metrics, toe_and_broker)
{
    char *s = render();

    expect_line(s, "toegw_toe_present 1");
    expect_line(s, "toegw_toe_link_up 1");
    expect_line(s, "toegw_toe_wire_frames_total{dir=\"tx\"} 11");
    expect_line(s, "toegw_toe_wire_frames_total{dir=\"rx\"} 12");
    expect_line(s, "toegw_toe_wire_faults_total{dir=\"rx\",fault=\"drop\"} 5");
    expect_line(s, "toegw_toe_conns_refused_full_total 1");
    expect_line(s, "toegw_toe_max_conns 1024");
    expect_line(s, "toegw_broker_requests_total 4");
    expect_line(s, "toegw_broker_granted_total{stack=\"toe\"} 3");
    expect_line(s, "toegw_broker_granted_total{stack=\"host\"} 1");
    expect_line(s, "toegw_broker_connect_seconds_total{stack=\"toe\"} 1.500000000");
    expect_line(s, "toegw_broker_connects_total{stack=\"toe\"} 3");
    expect_line(s, "toegw_broker_reservations 2");
    free(s);
}

Test(metrics, sessions_and_volumes)
{
    char *s = render();

    expect_line(s, "toegw_sessions 2");
    expect_line(s, "toegw_session_up{session=\"s-000000000001\"} 1");
    expect_line(s, "toegw_session_up{session=\"s-000000000002\"} 0");
    expect_line(s, "toegw_session_commands_total{session=\"s-000000000001\"} 100");
    expect_line(s, "toegw_session_pdus_total{session=\"s-000000000001\",dir=\"out\"} 202");
    expect_line(s, "toegw_volumes 2");
    expect_line(s, "toegw_volume_reads_total{volume=\"v-0000000000000001\"} 10");
    expect_line(s, "toegw_volume_read_seconds_total{volume=\"v-0000000000000001\"} "
                   "1234.567890123");
    expect_line(s, "toegw_volume_write_seconds_total{volume=\"v-0000000000000001\"} "
                   "0.000000005");
    expect_line(s, "toegw_volume_size_bytes{volume=\"v-0000000000000001\"} 1073741824");
    expect_line(s, "toegw_api_requests_total{code=\"2xx\"} 9");
    expect_line(s, "toegw_ready 1");
    free(s);
}

Test(metrics, labels_are_escaped)
{
    char *s = render();

    cr_assert_not_null(strstr(s, "target=\"iqn.2026-11.x:\\\"quoted\\\"\\\\back\\nline\""),
                       "%s", s);
    free(s);
}

/* A public /metrics (no --metrics-auth): ids only, no target, portal, address or MAC. */
Test(metrics, public_labels_are_ids_only)
{
    char *s;

    in.names = false;
    s = render();
    cr_assert_null(strstr(s, "target="), "%s", s);
    cr_assert_null(strstr(s, "portal="), "%s", s);
    cr_assert_null(strstr(s, "addr="), "%s", s);
    cr_assert_null(strstr(s, "mac="), "%s", s);
    cr_assert_null(strstr(s, "iqn."), "%s", s);
    cr_assert_null(strstr(s, "192.0.2."), "%s", s);
    expect_line(s, "toegw_session_info{session=\"s-000000000001\",state=\"logged_in\","
                   "stack=\"toe\"} 1");
    expect_line(s, "toegw_volume_info{volume=\"v-0000000000000001\","
                   "session=\"s-000000000001\",lun=\"0\"} 1");
    expect_line(s, "toegw_toe_info{ifname=\"toe0\"} 1");
    check_format(s);
    free(s);
}

Test(metrics, named_labels_with_auth)
{
    char *s = render();

    expect_line(s, "toegw_toe_info{ifname=\"toe0\",addr=\"192.0.2.2\","
                   "mac=\"02:00:00:00:00:00\"} 1");
    cr_assert_not_null(strstr(s, "portal=\"192.0.2.1:3260\""), "%s", s);
    free(s);
}

Test(metrics, without_toe_or_anything)
{
    char *s;

    memset(&in, 0, sizeof(in));
    in.have_tcp[STK_STACK_HOST] = true;
    s = render();
    expect_line(s, "toegw_toe_present 0");
    expect_line(s, "toegw_ready 0");
    expect_line(s, "toegw_sessions 0");
    cr_assert_null(strstr(s, "stack=\"toe\""));
    cr_assert_null(strstr(s, "toegw_toe_wire"));
    check_format(s);
    free(s);
}

Test(metrics, label_escaping_helper)
{
    struct api_buf b;

    api_buf_init(&b);
    api_metrics_label(&b, "a\"b\\c\nd");
    cr_assert_str_eq(b.data, "a\\\"b\\\\c\\nd");
    api_buf_free(&b);
}
