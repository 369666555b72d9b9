/*
 * net.c - TOE and broker bring-up from command-line flags. What touches the TOE itself is
 * in appliance/net_toe.c (or appliance/net_notoe.c in a build without it).
 */
#include "appliance/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void app_net_opts_defaults(struct app_net_opts *o)
{
    memset(o, 0, sizeof(*o));
    app_net_toe_defaults(&o->toe);
    o->port_lo = 20000;
    o->port_hi = 20999;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    if (!*s || *s == '-')
        return -EINVAL;
    *out = strtoul(s, &end, 10);
    return errno || *end || *out > max ? -EINVAL : 0;
}

int app_net_opt(struct app_net_opts *o, const char *name, const char *value, char *err,
                size_t errlen)
{
    unsigned long v;

    if (!strncmp(name, "toe-", 4) || !strcmp(name, "pcap"))
        o->toe_asked = true;
    if (!strcmp(name, "no-toe")) {
        o->no_toe = true;
        return 1;
    }
    if (!strcmp(name, "pcap")) {
        o->pcap = value;
        return 1;
    }
    if (!strcmp(name, "toe-uplink")) {
        if (!*value || strlen(value) >= sizeof(o->toe.uplink) || strchr(value, '/')) {
            snprintf(err, errlen, "--toe-uplink must be an interface name (1 to %zu "
                     "characters without '/')", sizeof(o->toe.uplink) - 1);
            return -EINVAL;
        }
        snprintf(o->toe.uplink, sizeof(o->toe.uplink), "%s", value);
        return 1;
    }
    if (!strcmp(name, "toe-gateway")) {
        if (inet_pton(AF_INET, value, &o->toe.gateway) != 1) {
            snprintf(err, errlen, "--toe-gateway must be an IPv4 address, not \"%.40s\"",
                     value);
            return -EINVAL;
        }
        return 1;
    }
    if (!strcmp(name, "toe-nat")) {
        o->toe_nat = true;
        return 1;
    }
    if (!strcmp(name, "toe-ifname")) {
        if (!*value || strlen(value) >= sizeof(o->toe.ifname) || strchr(value, '/')) {
            snprintf(err, errlen, "--toe-ifname must be 1 to %zu characters without '/'",
                     sizeof(o->toe.ifname) - 1);
            return -EINVAL;
        }
        snprintf(o->toe.ifname, sizeof(o->toe.ifname), "%s", value);
        return 1;
    }
    if (!strcmp(name, "toe-addr") || !strcmp(name, "toe-host-addr")) {
        bool host = name[4] == 'h';
        if (stk_parse_cidr(value, host ? &o->toe.host_addr : &o->toe.addr,
                           host ? &o->toe.host_prefix : &o->toe.prefix) < 0) {
            snprintf(err, errlen, "--%s must be an IPv4 CIDR like 192.0.2.2/24, not \"%.40s\"",
                     name, value);
            return -EINVAL;
        }
        return 1;
    }
    if (!strcmp(name, "toe-mtu")) {
        if (parse_uint(value, 65000, &v) < 0 || v < 576) {
            snprintf(err, errlen, "--toe-mtu must be a number from 576 to 65000");
            return -EINVAL;
        }
        o->toe.mtu = (unsigned)v;
        return 1;
    }
    if (!strcmp(name, "toe-max-conns")) {
        if (parse_uint(value, 1000000, &v) < 0) {
            snprintf(err, errlen, "--toe-max-conns must be a number from 0 to 1000000");
            return -EINVAL;
        }
        o->toe.max_conns = (unsigned)v;
        return 1;
    }
    if (!strcmp(name, "toe-connect-timeout")) {
        if (parse_uint(value, 600000, &v) < 0 || v < 100) {
            snprintf(err, errlen, "--toe-connect-timeout must be a number of milliseconds "
                                  "from 100 to 600000");
            return -EINVAL;
        }
        o->toe.connect_timeout_ms = (unsigned)v;
        return 1;
    }
    if (!strcmp(name, "toe-busy-poll")) {
        if (parse_uint(value, TOE_BUSY_POLL_MAX_US, &v) < 0) {
            snprintf(err, errlen, "--toe-busy-poll must be a number of microseconds from 0 "
                                  "to %u", TOE_BUSY_POLL_MAX_US);
            return -EINVAL;
        }
        o->toe.busy_poll_us = (unsigned)v;
        return 1;
    }
    if (!strcmp(name, "port-range")) {
        if (stk_parse_port_range(value, &o->port_lo, &o->port_hi) < 0) {
            snprintf(err, errlen, "--port-range must be LO-HI with 1 <= LO <= HI <= 65535, "
                                  "not \"%.40s\"", value);
            return -EINVAL;
        }
        return 1;
    }
    return 0;
}

/*
 * A build without the TOE runs on the host stack alone, as --no-toe does, whatever the
 * flags ask: saying so loudly when they asked for the TOE.
 */
static void note_not_built(const struct app_net_opts *o, struct app_net *net)
{
    /* net_notoe.c: fails with the reason, which is all this is for */
    app_net_toe_up(o, net, net->toe_error, sizeof(net->toe_error));
    if (o->toe_asked)
        log_warn("net", "%s: the --toe-* and --pcap flags are ignored, running on the host "
                 "stack alone", net->toe_error);
    else
        log_info("net", "%s; using the host stack only", net->toe_error);
}

int app_net_start(const struct app_net_opts *o, bool toe_required, struct app_net *net,
                  char *err, size_t errlen)
{
    struct stk_broker_config bc = { .port_lo = o->port_lo, .port_hi = o->port_hi };
    int ret;

    memset(net, 0, sizeof(*net));
    if (o->no_toe) {
        snprintf(net->toe_error, sizeof(net->toe_error), "disabled with --no-toe");
    } else if (!app_net_toe_built()) {
        note_not_built(o, net);
    } else {
        ret = app_net_toe_up(o, net, net->toe_error, sizeof(net->toe_error));
        if (ret < 0) {
            if (toe_required) {
                snprintf(err, errlen, "%s", net->toe_error);
                return ret;
            }
            log_info("net", "%s; using the host stack only", net->toe_error);
        }
    }
    if (net->toe && o->toe_nat) {
        ret = app_nat_start(&net->nat, o->toe.ifname, o->toe.addr, o->toe.prefix, err,
                            errlen);
        if (ret < 0) {
            app_net_stop(net);
            return ret;
        }
    }
    if (net->toe && o->pcap) {
        ret = app_net_toe_capture(net, o->pcap, err, errlen);
        if (ret < 0) {
            app_net_stop(net);
            return ret;
        }
    }
    bc.offload = net->toe ? &net->offload : NULL;
    net->broker = stk_broker_new(&bc);
    if (!net->broker) {
        ret = -errno;
        snprintf(err, errlen, "cannot start the offload broker: %s", strerror(-ret));
        app_net_stop(net);
        return ret;
    }
    return 0;
}

void app_net_stop(struct app_net *net)
{
    stk_broker_free(net->broker);
    net->broker = NULL;
    app_nat_stop(&net->nat);
    app_net_toe_down(net);
}
