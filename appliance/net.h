/*
 * net.h - the network side shared by `serve` and the client commands: the --toe-*,
 * --port-range, --no-toe and --pcap flags, and bringing up the TOE device and the broker.
 */
#ifndef TOEGW_APPLIANCE_NET_H
#define TOEGW_APPLIANCE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stacks/stacks.h"
#include "toe_emu/toe.h"

struct app_net_opts {
    struct toe_config toe;
    bool no_toe;
    uint16_t port_lo, port_hi;
    const char *pcap;       /* capture the TOE's wire into this file */
};

struct app_net {
    struct toe_dev *toe;        /* NULL: host stack only */
    struct stk_broker *broker;
    char toe_error[256];        /* why the TOE is absent, when it is */
};

void app_net_opts_defaults(struct app_net_opts *o);
/*
 * Apply one flag given by its long name without dashes ("toe-mtu", "port-range", ...).
 * Returns 1 when the name is one of ours and the value is good, 0 when the name is not
 * ours, -EINVAL (message in err) when the value is bad.
 */
int app_net_opt(struct app_net_opts *o, const char *name, const char *value, char *err,
                size_t errlen);

/*
 * Bring up the TOE (unless no_toe) and the broker. When `toe_required`, a TOE that cannot
 * be created is an error; otherwise the broker runs on the host stack alone and the
 * reason is kept in net->toe_error. 0 or -errno with err.
 */
int app_net_start(const struct app_net_opts *o, bool toe_required, struct app_net *net,
                  char *err, size_t errlen);
void app_net_stop(struct app_net *net);

#endif
