/*
 * serve_int.h - what the files of `toegw serve` share (appliance/serve.c, serve_opts.c):
 * its options, parsed from the flags and the TOEGW_* variables. Private to appliance/.
 */
#ifndef TOEGW_APPLIANCE_SERVE_INT_H
#define TOEGW_APPLIANCE_SERVE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "appliance/net.h"
#include "appliance/timeouts.h"
#include "common/log.h"
#include "storage/nbd.h"
#include "storage/pool.h"

struct serve_opts {
    char api[300];
    char token_file[4200];
    char nbd[300];
    char state_dir[4096];
    char initiator[256];              /* --initiator-name; "": STATE_DIR/initiator-name */
    char user[64];                    /* --user: run as this account once the TOE is up */
    char broker[108];                 /* --broker: the broker socket; "": STATE_DIR/broker.sock,
                                         "off": none */
    struct app_net_opts net;
    unsigned storage_threads;         /* --storage-threads (0: one per usable CPU) */
    unsigned busy_poll_us;            /* --busy-poll (0: never) */
    uint32_t max_outstanding;
    uint32_t max_outstanding_writes;
    struct nbds_limits nbd_lim;       /* zero members: the defaults */
    struct api_limits api_lim;
    struct app_timeouts tmo;
    enum log_level level;
    enum log_format format;
    bool api_tls;                     /* --api-tls on: the API speaks HTTPS */
    char tls_certificates[4096];      /* --tls-certificates; "": STATE_DIR/tls, made when
                                         missing */
    bool metrics_auth;                /* --metrics-auth: /metrics needs the token */
    /* NBD over TLS (docs/security.md); its certificate is tls_certificates' too */
    enum nbds_tls_mode nbd_tls;       /* --nbd-tls off|on|require */
    char tls_psk[4096];               /* --tls-psk FILE ("": none) */
    bool tls_verify_peer;             /* --tls-verify-peer */
    /* protected mode: --api-tls / --nbd-tls given (a flag or a variable), not defaulted */
    bool api_tls_set, nbd_tls_set;
};
/*
 * Fill *o from the TOEGW_* variables, then the flags (a flag overrides its variable).
 * 0, or APP_EXIT_USAGE after printing one line that names the culprit; --help prints the
 * usage and exits 0.
 */
int app_serve_parse(int argc, char **argv, struct serve_opts *o);

/*
 * Protected mode: an --api or --nbd that listens beyond loopback without TLS is refused
 * unless --api-tls off / --nbd-tls off said so. 0, or APP_EXIT_USAGE after one line that says
 * why and how to override.
 */
int app_serve_protected(const struct serve_opts *o);
/* At every start: a warning for each listener that serves in clear beyond loopback. */
void app_serve_warn_exposure(const struct serve_opts *o);

#endif
