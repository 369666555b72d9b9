/*
 * net_toe.c - the emulated TOE (toe_emu/) in the appliance: its bring-up and capture, and
 * the table of its functions through which the broker uses it as its offload engine.
 *
 * Linked only when toegw is built with the TOE (the Makefile picks this file or
 * appliance/net_notoe.c); it is the one place where the broker meets the TOE, so that
 * neither stacks/ nor toe_emu/ knows the other.
 */
#include "appliance/net.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toe_emu/toe.h"

bool app_net_toe_built(void)
{
    return true;
}

const char *app_net_toe_stack(void)
{
    return toe_stack_version();
}

/* "libpcap version 1.10.3 (with TPACKET_V3)" -> "1.10.3" */
const char *app_net_pcap_version(void)
{
    static char v[32];
    const char *s = pcap_lib_version();
    const char *p = strstr(s, "version ");

    p = p ? p + 8 : s;
    snprintf(v, sizeof(v), "%.*s", (int)strcspn(p, " "), p);
    return v;
}

void app_net_toe_defaults(struct toe_config *cfg)
{
    toe_config_defaults(cfg);
}

/* The TOE's last failure if it gave one, else the errno's text. */
static const char *toe_why(int err)
{
    return toe_strerror()[0] ? toe_strerror() : strerror(-err);
}

int app_net_toe_up(const struct app_net_opts *o, struct app_net *net, char *why,
                   size_t whylen)
{
    struct toe_config cfg = o->toe;
    int ret;

    if (cfg.uplink[0]) {
        if (o->toe_nat) {
            snprintf(why, whylen, "--toe-nat is for the private TAP, not --toe-uplink");
            return -EINVAL;
        }
        cfg.host_addr.s_addr = 0; /* a station on the uplink's segment: no host side */
    }
    net->toe = toe_dev_new(&cfg);
    if (!net->toe) {
        ret = -errno;
        snprintf(why, whylen, "cannot bring up the toe on %s: %s", o->toe.ifname,
                 toe_why(ret));
        return ret;
    }
    app_net_toe_offload(net->toe, &net->offload);
    return 0;
}

int app_net_toe_capture(struct app_net *net, const char *path, char *err, size_t errlen)
{
    int ret = toe_capture_start(net->toe, path, 0);

    if (ret < 0)
        snprintf(err, errlen, "cannot capture to \"%s\": %s", path, toe_why(ret));
    return ret;
}

void app_net_toe_down(struct app_net *net)
{
    if (!net->toe)
        return;
    toe_capture_stop(net->toe);
    toe_dev_free(net->toe);
    net->toe = NULL;
    memset(&net->offload, 0, sizeof(net->offload));
}

/* ---------------------------------------------------------------- the broker's table */

static bool off_link_up(void *ctx)
{
    return toe_link_up(ctx);
}

static int off_connect(void *ctx, const struct sockaddr_in *dst, uint16_t local_port,
                       struct stk_conn **out)
{
    return toe_connect(ctx, dst, local_port, out);
}

static const char *off_last_error(void *ctx)
{
    (void)ctx;
    return toe_strerror();
}

static int off_list_conns(void *ctx, struct stk_conn_row **out, size_t *n)
{
    struct toe_conn_info *ci;
    struct stk_conn_row *rows;
    size_t count;
    int ret = toe_list_conns(ctx, &ci, &count);

    if (ret < 0)
        return ret;
    rows = calloc(count ? count : 1, sizeof(*rows));
    if (!rows) {
        free(ci);
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        rows[i].local = ci[i].local;
        rows[i].remote = ci[i].remote;
        snprintf(rows[i].state, sizeof(rows[i].state), "%s", ci[i].state);
        rows[i].bytes_in = ci[i].bytes_in;
        rows[i].bytes_out = ci[i].bytes_out;
    }
    free(ci);
    *out = rows;
    *n = count;
    return 0;
}

static int off_tcp_counters(void *ctx, struct stk_tcp_counters *out)
{
    struct toe_counters tc;
    int ret = toe_get_counters(ctx, &tc);

    if (ret < 0)
        return ret;
    out->active_opens = tc.tcp_active_opens;
    out->attempt_fails = tc.tcp_attempt_fails;
    out->estab_resets = tc.tcp_estab_resets;
    out->curr_estab = tc.conns_current;
    out->in_segs = tc.tcp_in_segs;
    out->out_segs = tc.tcp_out_segs;
    out->retrans_segs = tc.tcp_retrans_segs;
    out->in_errs = tc.tcp_in_errs;
    out->out_rsts = tc.tcp_out_rsts;
    return 0;
}

static int off_conn_error(void *ctx, const struct stk_conn *c)
{
    (void)ctx;
    return toe_conn_error(c);
}

void app_net_toe_offload(struct toe_dev *toe, struct stk_offload_ops *out)
{
    *out = (struct stk_offload_ops){
        .ctx = toe,
        .link_up = off_link_up,
        .connect = off_connect,
        .last_error = off_last_error,
        .list_conns = off_list_conns,
        .tcp_counters = off_tcp_counters,
        .conn_error = off_conn_error,
    };
}
