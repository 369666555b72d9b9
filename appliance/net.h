/*
 * net.h - the network side shared by `serve` and the client commands: the --toe-*,
 * --port-range, --no-toe and --pcap flags, and bringing up the TOE device and the broker.
 *
 * The TOE is optional at build time: appliance/net_toe.c wires the emulated TOE (toe_emu/)
 * to the broker as its offload engine; in a build without it (`make TOE_MK=`)
 * appliance/net_notoe.c stands in, and the broker runs on the host stack alone.
 */
#ifndef TOEGW_APPLIANCE_NET_H
#define TOEGW_APPLIANCE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "appliance/nat.h"
#include "stacks/stacks.h"
#include "toe_emu/toe.h"

struct app_net_opts {
    struct toe_config toe;
    bool no_toe;
    bool toe_asked;         /* a --toe-* flag or --pcap was given */
    uint16_t port_lo, port_hi;
    const char *pcap;       /* capture the TOE's wire into this file */
    bool toe_nat;           /* masquerade the TAP's subnet behind the host (nat.h) */
};

struct app_net {
    struct toe_dev *toe;        /* NULL: host stack only */
    struct stk_offload_ops offload; /* the broker's table over `toe` (when there is one) */
    struct stk_broker *broker;
    char toe_error[256];        /* why the TOE is absent, when it is */
    struct app_nat nat;         /* --toe-nat, when set up */
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
 * Bring up the TOE (unless no_toe) and the broker, the TOE as the broker's offload engine.
 * When `toe_required`, a TOE that cannot be created is an error; otherwise the broker runs
 * on the host stack alone and the reason is kept in net->toe_error. A toegw built without
 * the TOE always runs on the host stack alone (and says so). 0 or -errno with err.
 */
int app_net_start(const struct app_net_opts *o, bool toe_required, struct app_net *net,
                  char *err, size_t errlen);
void app_net_stop(struct app_net *net);

/* ------------------------------------------------ the TOE's side (net_toe.c / net_notoe.c) */

/* True when this toegw is built with the emulated TOE (toe_emu/). */
bool app_net_toe_built(void);
/* The TOE's TCP/IP stack and its version ("lwIP 2.1.3"), or NULL without the TOE. */
const char *app_net_toe_stack(void);
/* The version of libpcap, which the TOE's capture writes with ("1.10.3"), or NULL without
 * the TOE. */
const char *app_net_pcap_version(void);
/* The TOE's default settings (toe0, 192.0.2.2/24, ...). */
void app_net_toe_defaults(struct toe_config *cfg);
/*
 * Create the TOE device of o->toe into net->toe and fill net->offload over it. 0, or -errno
 * with the reason in why (-ENODEV: built without the TOE).
 */
int app_net_toe_up(const struct app_net_opts *o, struct app_net *net, char *why,
                   size_t whylen);
/* Capture the TOE's wire into the file `path`. 0 or -errno with err. */
int app_net_toe_capture(struct app_net *net, const char *path, char *err, size_t errlen);
/* Stop the capture and free the TOE device, if any (net->toe is NULL afterwards). */
void app_net_toe_down(struct app_net *net);
/*
 * The broker's offload-engine table over `toe` (borrowed: it must outlive every broker
 * given the table). Only in a toegw built with the TOE (app_net_toe_built).
 */
void app_net_toe_offload(struct toe_dev *toe, struct stk_offload_ops *out);

#endif
