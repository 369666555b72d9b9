/*
 * serve_int.h - what `toegw serve`'s files share (serve.c: start, run, stop; serve_opts.c:
 * its flags and TOEGW_* variables). Private to appliance/.
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

struct serve_opts {
    char api[300];
    char token_file[4200];
    char nbd[300];
    char state_dir[4096];
    char initiator[256];              /* --initiator-name; "": STATE_DIR/initiator-name */
    struct app_net_opts net;
    uint32_t max_outstanding;
    uint32_t max_outstanding_writes;
    struct nbds_limits nbd_lim;       /* zero members: the defaults */
    struct api_limits api_lim;
    struct app_timeouts tmo;
    enum log_level level;
    enum log_format format;
    /* TLS (docs/security.md) */
    enum nbds_tls_mode nbd_tls;       /* --nbd-tls off|on|require */
    char tls_psk[4096];               /* --tls-psk FILE ("": none) */
    char tls_certificates[4096];      /* --tls-certificates DIR ("": none) */
    bool tls_verify_peer;             /* --tls-verify-peer */
};

/*
 * Parse the environment (TOEGW_<NAME>) and then argv into *o. 0, or APP_EXIT_USAGE after
 * printing why; --help prints the usage and exits.
 */
int app_serve_parse(int argc, char **argv, struct serve_opts *o);

struct tls_creds;
/*
 * The NBD server's TLS credentials when --nbd-tls is on or require (*out NULL when off).
 * 0, or APP_EXIT_USAGE after printing which file (and line) is wrong and why.
 */
int app_serve_tls_load(const struct serve_opts *o, struct tls_creds **out);

#endif
