/*
 * serve_opts.c - the options of `toegw serve` (docs/serve.md): the flags, their TOEGW_*
 * variables, their checks and the usage text.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/cli.h"
#include "appliance/optab.h"
#include "appliance/serve_int.h"
#include "common/log.h"
#include "common/spin.h"
#include "common/sockspec.h"
#include "storage/iname.h"

/* Every flag of serve: the parser, the TOEGW_* variables and --help all read this table. */
static const struct app_opt serve_tab[] = {
    { "api", 1, 0, 1, "ADDR", "127.0.0.1:8080", "REST API and dashboard (host:port, unix:/path)" },
    { "api-token-file", 1, 0, 1, "PATH", "STATE_DIR/api-token", "the API's bearer token" },
    { "api-tls", 1, 0, 1, "off|on", "off", "the API over HTTPS (TLS 1.2/1.3)" },
    { "tls-certificates", 1, 0, 1, "DIR", "STATE_DIR/tls, made self-signed",
      "server-cert.pem, server-key.pem (and ca-cert.pem) for the API and NBD" },
    { "metrics-auth", 0, 0, 1, NULL, NULL, "/metrics needs the token (and then names targets)" },
    { "api-max-conns", 1, 0, 1, "N", "128", "API connections at once" },
    { "api-max-conns-per-client", 1, 0, 1, "N", "32", "API connections of one address" },
    { "api-header-timeout", 1, 0, 1, "S", "10", "seconds for a request header to arrive" },
    { "nbd", 1, 0, 1, "ADDR", "127.0.0.1:10809", "NBD export (host:port, unix:/path)" },
    { "nbd-tls", 1, 0, 1, "off|on|require", "off", "TLS on the NBD export (STARTTLS)" },
    { "tls-psk", 1, 0, 1, "FILE", NULL, "NBD TLS pre-shared keys (psktool's identity:hexkey)" },
    { "tls-verify-peer", 0, 0, 1, NULL, NULL, "NBD TLS clients must show a certificate" },
    { "nbd-handshake-timeout", 1, 0, 1, "S", "10", "seconds for an NBD handshake" },
    { "nbd-max-handshakes-per-client", 1, 0, 1, "N", "64",
      "NBD handshakes of one address at once" },
    { "nbd-client-buffer-mib", 1, 0, 1, "N", "64", "MiB one NBD connection may hold" },
    { "state-dir", 1, 0, 1, "DIR", "/var/lib/toegw", "state, token, keys; one appliance each" },
    { "initiator-name", 1, 0, 1, "IQN", "STATE_DIR/initiator-name, made once",
      "the iSCSI name sessions log in with" },
    { "user", 1, 0, 1, "NAME", "stay as started",
      "once the TOE is up, run as NAME with CAP_NET_ADMIN alone" },
    { "broker", 1, 0, 1, "PATH|off", "STATE_DIR/broker.sock",
      "the broker socket: connections for other programs" },
    { "toe-ifname", 1, 0, 1, "NAME", "toe0", "the TOE's TAP (or macvtap) interface" },
    { "toe-addr", 1, 0, 1, "CIDR", "192.0.2.2/24", "the TOE's own address" },
    { "toe-host-addr", 1, 0, 1, "CIDR", "192.0.2.1/24", "the host's side of the TAP" },
    { "toe-mtu", 1, 0, 1, "N", "9000", "the TOE's wire MTU" },
    { "toe-max-conns", 1, 0, 1, "N", "1024", "connections the TOE holds (past it: host)" },
    { "toe-connect-timeout", 1, 0, 1, "MS", "3000",
      "unanswered TOE connects: the host stack (auto) or an error" },
    { "toe-busy-poll", 1, 0, 1, "US", "200",
      "the TOE's firmware polls this long before it sleeps (0: never)" },
    { "port-range", 1, 0, 1, "LO-HI", "20000-20999", "the broker's local ports, both stacks" },
    { "no-toe", 0, 0, 1, NULL, NULL, "the host stack only" },
    { "toe-nat", 0, 0, 1, NULL, NULL, "masquerade the TOE's TAP behind the host" },
    { "toe-uplink", 1, 0, 1, "IFACE", "none: a private TAP",
      "the TOE as a station on IFACE's segment (macvtap)" },
    { "toe-gateway", 1, 0, 1, "ADDR", "the TAP's host side", "the TOE's default route" },
    { "storage-threads", 1, 0, 1, "N", "one per usable CPU",
      "storage loops; sessions spread over them (1-64)" },
    { "busy-poll", 1, 0, 1, "US", "0",
      "storage loops poll this long before they sleep (latency for CPU)" },
    { "max-outstanding", 1, 0, 1, "N", "128", "SCSI commands in flight per session" },
    { "max-outstanding-writes", 1, 0, 1, "N", "32", "of those, writes" },
    { "login-timeout", 1, 0, 1, "S", "15", "seconds a login may take" },
    { "logout-timeout", 1, 0, 1, "S", "15", "seconds a logout may take" },
    { "nop-interval", 1, 0, 1, "S", "5", "seconds between NOP-Out pings (0: none)" },
    { "nop-timeout", 1, 0, 1, "S", "5", "seconds a ping may go unanswered" },
    { "command-timeout", 1, 0, 1, "S", "30", "seconds a SCSI command may take" },
    { "abort-timeout", 1, 0, 1, "S", "15", "seconds an ABORT TASK may take" },
    { "lun-reset-timeout", 1, 0, 1, "S", "30", "seconds a LUN RESET may take" },
    { "replacement-timeout", 1, 0, 1, "S", "120",
      "seconds I/O is held while a session recovers (0: none)" },
    { "log-format", 1, 0, 1, "text|json", "text", "how to log (stderr)" },
    { "log-level", 1, 0, 1, "error|warn|info|debug", "info", "what to log" },
    { "help", 0, 'h', 1, NULL, NULL, "this help" },
};
#define NSERVE (sizeof(serve_tab) / sizeof(serve_tab[0]))

static void serve_usage(void)
{
    app_opt_help("toegw serve [options]\nevery flag is also a variable: TOEGW_ and its name in "
                 "upper case, - as _ (TOEGW_API, TOEGW_NO_TOE=1); flags override them",
                 serve_tab, NSERVE, 1);
}

/*
 * A listen address for --api and --nbd: a sockspec with a port, or a Unix socket by its
 * absolute path (a relative one would depend on the directory serve was started in).
 */
static bool listen_addr_ok(const char *s)
{
    struct sockspec sp;

    if (sockspec_parse(s, 0, &sp) < 0)
        return false;
    return !sp.is_unix || sp.path[0] == '/';
}

/*
 * The numeric flags (docs/serve.md): what API and NBD clients may cost, the storage threads,
 * the commands in flight. 1 when name is one of them (applied), 0 when it is not, -EINVAL
 * after printing why.
 */
static int serve_limit_opt(struct serve_opts *o, const char *name, const char *value,
                           const char *source)
{
    static const struct {
        const char *name;
        unsigned long min, max;
        const char *unit;
    } lims[] = {
        { "api-max-conns", 1, 4096, "" },
        { "api-max-conns-per-client", 1, 4096, "" },
        { "api-header-timeout", 1, 600, " (seconds)" },
        { "nbd-handshake-timeout", 1, 600, " (seconds)" },
        { "nbd-max-handshakes-per-client", 1, 4096, "" },
        { "nbd-client-buffer-mib", 1, 4096, " (MiB)" },
        { "storage-threads", 1, STO_POOL_THREADS_MAX, "" },
        { "max-outstanding", 1, 1024, "" },
        { "max-outstanding-writes", 1, 1024, "" },
        { "busy-poll", 0, SPIN_MAX_US, " (microseconds)" },
    };
    size_t i;
    unsigned long v;
    char *end;

    for (i = 0; i < sizeof(lims) / sizeof(lims[0]) && strcmp(lims[i].name, name); i++)
        ;
    if (i == sizeof(lims) / sizeof(lims[0]))
        return 0;
    errno = 0;
    v = strtoul(value, &end, 10);
    if (!*value || *end || !isdigit((unsigned char)*value) || errno || v < lims[i].min ||
        v > lims[i].max) {
        app_errorf("%s must be a number from %lu to %lu%s", source, lims[i].min,
                   lims[i].max, lims[i].unit);
        return -EINVAL;
    }
    switch (i) {
    case 0: o->api_lim.max_conns = (unsigned)v; break;
    case 1: o->api_lim.max_conns_per_client = (unsigned)v; break;
    case 2: o->api_lim.header_timeout_ms = (unsigned)v * 1000u; break;
    case 3: o->nbd_lim.handshake_timeout_ms = (unsigned)v * 1000u; break;
    case 4: o->nbd_lim.max_handshakes_per_client = (unsigned)v; break;
    case 5: o->nbd_lim.max_buffered_bytes = (uint64_t)v << 20; break;
    case 6: o->storage_threads = (unsigned)v; break;
    case 7: o->max_outstanding = (uint32_t)v; break;
    case 8: o->max_outstanding_writes = (uint32_t)v; break;
    default: o->busy_poll_us = (unsigned)v; break;
    }
    return 1;
}

/* Apply one flag by name. 0, or -EINVAL after printing why (source: "--x" or "TOEGW_X"). */
static int serve_opt(struct serve_opts *o, const char *name, const char *value,
                     const char *source)
{
    char err[256];
    int ret;

    ret = app_net_opt(&o->net, name, value ? value : "", err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s (from %s)", err, source);
        return -EINVAL;
    }
    if (ret > 0)
        return 0;
    ret = serve_limit_opt(o, name, value ? value : "", source);
    if (ret != 0)
        return ret < 0 ? ret : 0;
    ret = app_timeout_opt(&o->tmo, name, value, source, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        return -EINVAL;
    }
    if (ret > 0)
        return 0;
    if (!strcmp(name, "api") || !strcmp(name, "nbd")) {
        if (!listen_addr_ok(value)) {
            app_errorf("%s must be host:port or unix:/path, not \"%.64s\"", source, value);
            return -EINVAL;
        }
        snprintf(name[0] == 'a' ? o->api : o->nbd, sizeof(o->api), "%s", value);
    } else if (!strcmp(name, "api-token-file")) {
        if (!*value || strlen(value) >= sizeof(o->token_file)) {
            app_errorf("%s must be a file path", source);
            return -EINVAL;
        }
        snprintf(o->token_file, sizeof(o->token_file), "%s", value);
    } else if (!strcmp(name, "user")) {
        if (!*value || strlen(value) >= sizeof(o->user) || strchr(value, '/')) {
            app_errorf("%s must be a user name", source);
            return -EINVAL;
        }
        snprintf(o->user, sizeof(o->user), "%s", value);
    } else if (!strcmp(name, "broker")) {
        if (!*value || strlen(value) >= sizeof(o->broker) ||
            (value[0] != '/' && strcmp(value, "off"))) {
            app_errorf("%s must be an absolute path of at most %zu bytes, or off", source,
                       sizeof(o->broker) - 1);
            return -EINVAL;
        }
        snprintf(o->broker, sizeof(o->broker), "%s", value);
    } else if (!strcmp(name, "api-tls")) {
        if (strcmp(value, "on") && strcmp(value, "off")) {
            app_errorf("%s must be on or off, not \"%.64s\"", source, value);
            return -EINVAL;
        }
        o->api_tls = !strcmp(value, "on");
        o->api_tls_set = true;
    } else if (!strcmp(name, "tls-certificates")) {
        if (!*value || strlen(value) >= sizeof(o->tls_certificates) - 64) {
            app_errorf("%s must be a directory path", source);
            return -EINVAL;
        }
        snprintf(o->tls_certificates, sizeof(o->tls_certificates), "%s", value);
    } else if (!strcmp(name, "metrics-auth")) {
        o->metrics_auth = true;
    } else if (!strcmp(name, "nbd-tls")) {
        o->nbd_tls_set = true;
        if (!strcmp(value, "off"))
            o->nbd_tls = NBDS_TLS_OFF;
        else if (!strcmp(value, "on"))
            o->nbd_tls = NBDS_TLS_ON;
        else if (!strcmp(value, "require"))
            o->nbd_tls = NBDS_TLS_REQUIRE;
        else {
            app_errorf("%s must be off, on or require, not \"%.32s\"", source, value);
            return -EINVAL;
        }
    } else if (!strcmp(name, "tls-psk")) {
        if (!*value || strlen(value) >= sizeof(o->tls_psk)) {
            app_errorf("%s must be a file path", source);
            return -EINVAL;
        }
        snprintf(o->tls_psk, sizeof(o->tls_psk), "%s", value);
    } else if (!strcmp(name, "tls-verify-peer")) {
        o->tls_verify_peer = true;
    } else if (!strcmp(name, "state-dir")) {
        if (!*value || strlen(value) >= sizeof(o->state_dir) - 64) {
            app_errorf("%s must be a directory path", source);
            return -EINVAL;
        }
        snprintf(o->state_dir, sizeof(o->state_dir), "%s", value);
    } else if (!strcmp(name, "initiator-name")) {
        if (!isc_name_valid(value) || strlen(value) >= sizeof(o->initiator)) {
            app_errorf("%s must be an iscsi name (iqn., eui. or naa., letters, digits and "
                       ".:-_), not \"%.64s\"", source, value);
            return -EINVAL;
        }
        snprintf(o->initiator, sizeof(o->initiator), "%s", value);
    } else if (!strcmp(name, "log-format")) {
        if (log_parse_format(value, &o->format) < 0) {
            app_errorf("%s must be text or json", source);
            return -EINVAL;
        }
    } else if (!strcmp(name, "log-level")) {
        if (log_parse_level(value, &o->level) < 0) {
            app_errorf("%s must be error, warn, info or debug", source);
            return -EINVAL;
        }
    } else {
        app_errorf("unknown option %s", source);
        return -EINVAL;
    }
    return 0;
}

int app_serve_parse(int argc, char **argv, struct serve_opts *o)
{
    struct app_optset set;
    int c;

    memset(o, 0, sizeof(*o));
    snprintf(o->api, sizeof(o->api), "127.0.0.1:8080");
    snprintf(o->nbd, sizeof(o->nbd), "127.0.0.1:10809");
    snprintf(o->state_dir, sizeof(o->state_dir), "/var/lib/toegw");
    app_net_opts_defaults(&o->net);
    o->level = LOG_LVL_INFO;
    o->format = LOG_FMT_TEXT;

    /* the environment first; flags override it */
    for (const struct app_opt *op = serve_tab; op < serve_tab + NSERVE; op++) {
        char var[64] = "TOEGW_";
        size_t n = strlen(var);
        const char *val;
        if (op->val == 'h')
            continue;
        for (const char *p = op->name; *p && n < sizeof(var) - 1; p++)
            var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        var[n] = '\0';
        val = getenv(var);
        if (!val)
            continue;
        if (!op->has_arg) {
            if (!strcmp(val, "0") || !strcasecmp(val, "false") || !*val)
                continue;
            if (strcmp(val, "1") && strcasecmp(val, "true")) {
                app_errorf("%s must be 1/true or 0/false", var);
                return APP_EXIT_USAGE;
            }
        }
        if (serve_opt(o, op->name, val, var) < 0)
            return APP_EXIT_USAGE;
    }
    app_optset_build(&set, serve_tab, NSERVE, 1);
    optind = 1;
    opterr = 0;
    for (;;) {
        const struct app_opt *d = app_optset_next(&set, argc, argv, &c);
        char source[64];
        if (c == -1)
            break;
        if (c == 'h') {
            serve_usage();
            exit(APP_EXIT_OK);
        }
        if (!d) {
            app_errorf("unknown or incomplete option \"%s\" (see toegw serve --help)",
                       argv[optind - 1]);
            return APP_EXIT_USAGE;
        }
        snprintf(source, sizeof(source), "--%s", d->name);
        if (serve_opt(o, d->name, optarg, source) < 0)
            return APP_EXIT_USAGE;
    }
    if (optind < argc) {
        app_errorf("unexpected argument \"%.64s\" (see toegw serve --help)", argv[optind]);
        return APP_EXIT_USAGE;
    }
    if (!o->token_file[0])
        snprintf(o->token_file, sizeof(o->token_file), "%s/api-token", o->state_dir);
    return 0;
}

/*
 * Whether a listen address is reachable only from this host: a Unix socket, or a host whose
 * every address is a loopback one (127.0.0.0/8, ::1). "*", 0.0.0.0 and :: are every address.
 */
static bool local_only(const char *spec)
{
    struct sockspec sp;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    bool local = true;

    if (sockspec_parse(spec, 0, &sp) < 0)
        return false;
    if (sp.is_unix)
        return true;
    if (!strcmp(sp.host, "*") || getaddrinfo(sp.host, "1", &hints, &res) != 0 || !res)
        return false;
    for (const struct addrinfo *a = res; a && local; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)a->ai_addr;
            local = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a->ai_addr;
            local = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        } else {
            local = false;
        }
    }
    freeaddrinfo(res);
    return local;
}

int app_serve_protected(const struct serve_opts *o)
{
    if (!o->api_tls && !o->api_tls_set && !local_only(o->api)) {
        app_errorf("--api %s listens beyond loopback without TLS: the API token and CHAP "
                   "secrets would cross the network in clear. Give --api-tls on (a "
                   "certificate is made in STATE_DIR/tls/ unless --tls-certificates names "
                   "one), or --api-tls off to serve plain HTTP there anyway", o->api);
        return APP_EXIT_USAGE;
    }
    if (o->nbd_tls == NBDS_TLS_OFF && !o->nbd_tls_set && !local_only(o->nbd)) {
        app_errorf("--nbd %s listens beyond loopback without TLS: anyone who reaches it "
                   "could read and overwrite every volume. Give --nbd-tls require (keys: "
                   "--tls-psk FILE, --tls-certificates DIR, or the certificate made in "
                   "STATE_DIR/tls/), or --nbd-tls off to export in clear there anyway", o->nbd);
        return APP_EXIT_USAGE;
    }
    return 0;
}

void app_serve_warn_exposure(const struct serve_opts *o)
{
    if (!o->api_tls && !local_only(o->api))
        log_warn("serve", "the api on %s speaks plain HTTP beyond loopback (--api-tls off): "
                 "its token crosses the network in clear", o->api);
    if (o->nbd_tls == NBDS_TLS_OFF && !local_only(o->nbd))
        log_warn("serve", "the nbd export on %s is in clear beyond loopback (--nbd-tls off): "
                 "whoever reaches it can read and write every volume", o->nbd);
    else if (o->nbd_tls == NBDS_TLS_ON && !local_only(o->nbd))
        log_warn("serve", "the nbd export on %s still serves clients without TLS (--nbd-tls "
                 "on); --nbd-tls require refuses them", o->nbd);
}
