/*
 * net.c - TOE and broker bring-up from command-line flags.
 */
#include "appliance/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void app_net_opts_defaults(struct app_net_opts *o)
{
    memset(o, 0, sizeof(*o));
    toe_config_defaults(&o->toe);
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

    if (!strcmp(name, "no-toe")) {
        o->no_toe = true;
        return 1;
    }
    if (!strcmp(name, "pcap")) {
        o->pcap = value;
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
        if (toe_parse_cidr(value, host ? &o->toe.host_addr : &o->toe.addr,
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

int app_net_start(const struct app_net_opts *o, bool toe_required, struct app_net *net,
                  char *err, size_t errlen)
{
    struct stk_broker_config bc = { .port_lo = o->port_lo, .port_hi = o->port_hi };
    int ret;

    memset(net, 0, sizeof(*net));
    if (o->no_toe) {
        snprintf(net->toe_error, sizeof(net->toe_error), "disabled with --no-toe");
    } else {
        net->toe = toe_dev_new(&o->toe);
        if (!net->toe) {
            ret = -errno;
            snprintf(net->toe_error, sizeof(net->toe_error), "cannot bring up the toe on %s: %s",
                     o->toe.ifname, toe_strerror()[0] ? toe_strerror() : strerror(-ret));
            if (toe_required) {
                snprintf(err, errlen, "%s", net->toe_error);
                return ret;
            }
            log_info("net", "%s; using the host stack only", net->toe_error);
        }
    }
    if (net->toe && o->pcap) {
        ret = toe_capture_start(net->toe, o->pcap, 0);
        if (ret < 0) {
            snprintf(err, errlen, "cannot capture to \"%s\": %s", o->pcap,
                     toe_strerror()[0] ? toe_strerror() : strerror(-ret));
            app_net_stop(net);
            return ret;
        }
    }
    bc.toe = net->toe;
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
    if (net->toe) {
        toe_capture_stop(net->toe);
        toe_dev_free(net->toe);
        net->toe = NULL;
    }
}
