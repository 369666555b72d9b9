/*
 * cli_opts.c - the client commands' command line: the options they share, their parsing,
 * and the one-line error and JSON string output every command uses.
 */
#include "appliance/cli_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/optab.h"
#include "appliance/state.h"
#include "common/log.h"
#include "common/spin.h"
#include "storage/iname.h"

void app_errorf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "toegw: %s\n", buf);
}

void app_cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

enum {
    OPT_STACK = 256, OPT_JSON, OPT_OFFSET, OPT_LENGTH, OPT_TOE,
    OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_TIMEOUT, OPT_BUSY_POLL,
};

/*
 * Every client option: its getopt value, the commands that take it (groups), and what
 * --help says of it (optab.h: the parser and --help both read this table).
 */
#define ALL APP_CLI_COMMON
static const struct app_opt cli_opts[] = {
    { "stack", 1, OPT_STACK, ALL, "auto|toe|host", "auto",
      "the stack the connection goes on (auto: the TOE, the host stack if it cannot)" },
    { "json", 0, OPT_JSON, APP_CLI_JSON, NULL, NULL, "print JSON instead of text" },
    { "offset", 1, OPT_OFFSET, APP_CLI_OFFSET, "BYTES", "0", "where on the LUN to start" },
    { "length", 1, OPT_LENGTH, APP_CLI_LENGTH, "BYTES", "to the end of the LUN",
      "how many bytes to read" },
    { "blocks", 1, 'b', APP_CLI_PERF, "N", "128 KiB per request", "blocks per request" },
    { "max-requests", 1, 'm', APP_CLI_PERF, "N", "32", "requests in flight" },
    { "timeout", 1, 't', APP_CLI_PERF, "SECONDS", "10", "how long to run" },
    { "write", 0, 'w', APP_CLI_PERF, NULL, NULL, "write instead of read" },
    { "random", 0, 'r', APP_CLI_PERF, NULL, NULL, "random offsets, not sequential" },
    { "initiator-name", 1, 'i', ALL, "IQN",
      "TOEGW_INITIATOR_NAME, else the appliance's (TOEGW_STATE_DIR/initiator-name)",
      "the iSCSI name to log in as" },
    { "pcap", 1, OPT_TOE, ALL, "FILE", NULL, "capture the TOE's wire into FILE (pcap)" },
    { "no-toe", 0, OPT_TOE, ALL, NULL, NULL, "do not bring the TOE up: the host stack only" },
    { "toe-ifname", 1, OPT_TOE, ALL, "NAME", "toe0", "the TOE's TAP interface" },
    { "toe-addr", 1, OPT_TOE, ALL, "CIDR", "192.0.2.2/24", "the TOE's own address" },
    { "toe-host-addr", 1, OPT_TOE, ALL, "CIDR", "192.0.2.1/24",
      "the host's address on the TAP" },
    { "toe-mtu", 1, OPT_TOE, ALL, "N", "9000", "the TAP's MTU" },
    { "toe-max-conns", 1, OPT_TOE, ALL, "N", "1024", "connections the TOE can hold" },
    { "toe-connect-timeout", 1, OPT_TOE, ALL, "MS", "3000",
      "a TOE connect unanswered this long: the host stack (auto) or an error (toe)" },
    { "toe-busy-poll", 1, OPT_TOE, ALL, "US", "200",
      "microseconds the TOE's firmware polls before it sleeps (0: never)" },
    { "port-range", 1, OPT_TOE, ALL, "LO-HI", "20000-20999", "local ports of the broker" },
    { "busy-poll", 1, OPT_BUSY_POLL, ALL, "US", "0",
      "microseconds the storage loop polls before it sleeps (latency for CPU)" },
    { "login-timeout", 1, OPT_TIMEOUT, ALL, "S", "15", "seconds a login may take" },
    { "logout-timeout", 1, OPT_TIMEOUT, ALL, "S", "15", "seconds a logout may take" },
    { "nop-interval", 1, OPT_TIMEOUT, ALL, "S", "5", "seconds between NOP-Out pings (0: none)" },
    { "nop-timeout", 1, OPT_TIMEOUT, ALL, "S", "5", "seconds a ping may go unanswered" },
    { "command-timeout", 1, OPT_TIMEOUT, ALL, "S", "30", "seconds a SCSI command may take" },
    { "abort-timeout", 1, OPT_TIMEOUT, ALL, "S", "15", "seconds an ABORT TASK may take" },
    { "lun-reset-timeout", 1, OPT_TIMEOUT, ALL, "S", "30", "seconds a LUN RESET may take" },
    { "replacement-timeout", 1, OPT_TIMEOUT, ALL, "S", "120",
      "seconds I/O is held while the session recovers (0: fails at once)" },
    { "log-level", 1, OPT_LOG_LEVEL, ALL, "error|warn|info|debug", "warn", "what to log" },
    { "log-format", 1, OPT_LOG_FORMAT, ALL, "text|json", "text", "how to log (on stderr)" },
    { "help", 0, 'h', ALL, NULL, NULL, "this help" },
};
#undef ALL
#define NOPTS (sizeof(cli_opts) / sizeof(cli_opts[0]))

static int parse_u64(const char *name, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (!*s || *s == '-')
        goto bad;
    v = strtoull(s, &end, 0);
    if (errno || *end || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    app_errorf("%s must be a number from 0 to %" PRIu64 ", not \"%.32s\"", name, max, s);
    return -EINVAL;
}

/* A count from 1 to max. 0, or -EINVAL after printing why. */
static int parse_count(const char *name, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = (*s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (!v || errno || *end || v > max) {
        app_errorf("%s must be a number from 1 to %" PRIu64 ", not \"%.32s\"", name, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* Take `name` as the initiator name. 0, or -EINVAL after printing why (source: its origin). */
static int initiator_set(struct app_cli_opts *o, const char *source, const char *name)
{
    if (!isc_name_valid(name) || strlen(name) >= sizeof(o->initiator)) {
        app_errorf("%s must be an iscsi name (iqn., eui. or naa., letters, digits and .:-_), "
                   "not \"%.64s\"", source, name);
        return -EINVAL;
    }
    snprintf(o->initiator, sizeof(o->initiator), "%s", name);
    return 0;
}

/*
 * Without --initiator-name: TOEGW_INITIATOR_NAME, else the name of the appliance whose
 * state dir is TOEGW_STATE_DIR (/var/lib/toegw), if it has one, so that a client command
 * on an appliance's host logs in as that appliance. Nothing is created here. 0, or -EINVAL
 * after printing why.
 */
static int initiator_default(struct app_cli_opts *o)
{
    const char *env = getenv("TOEGW_INITIATOR_NAME");
    const char *dir = getenv("TOEGW_STATE_DIR");
    char err[512];
    int ret;

    if (o->initiator[0])
        return 0;
    if (env && *env)
        return initiator_set(o, "TOEGW_INITIATOR_NAME", env);
    ret = app_initiator_name_load(dir && *dir ? dir : "/var/lib/toegw", false, o->initiator,
                                  sizeof(o->initiator), err, sizeof(err));
    if (ret == -EINVAL) {
        app_errorf("%s", err);
        return ret;
    }
    if (ret < 0)
        o->initiator[0] = '\0'; /* no appliance here: the built-in name */
    return 0;
}

/*
 * Apply one option getopt_long returned: c, and d, its entry in cli_opts (NULL for an
 * unknown one). 0, or APP_EXIT_USAGE after printing why; --help prints it and exits.
 */
static int parse_one(struct app_cli_opts *o, int c, const struct app_opt *d,
                     const char *usage, unsigned groups, char **argv)
{
    char err[200];
    uint64_t v;

    switch (c) {
    case OPT_STACK:
        if (stk_parse_policy(optarg, &o->stack) < 0) {
            app_errorf("--stack must be auto, toe or host, not \"%.32s\"", optarg);
            return APP_EXIT_USAGE;
        }
        break;
    case OPT_JSON:
        o->json = true;
        break;
    case OPT_TOE:
        if (app_net_opt(&o->net, d->name, optarg, err, sizeof(err)) < 0) {
            app_errorf("%s", err);
            return APP_EXIT_USAGE;
        }
        break;
    case OPT_TIMEOUT: {
        char source[64];
        snprintf(source, sizeof(source), "--%s", d->name);
        if (app_timeout_opt(&o->tmo, d->name, optarg, source, err,
                            sizeof(err)) < 0) {
            app_errorf("%s", err);
            return APP_EXIT_USAGE;
        }
        break;
    }
    case OPT_BUSY_POLL:
        if (parse_u64("--busy-poll", optarg, SPIN_MAX_US, &v) < 0)
            return APP_EXIT_USAGE;
        o->busy_poll_us = (unsigned)v;
        break;
    case OPT_OFFSET:
        if (parse_u64("--offset", optarg, UINT64_MAX / 2, &o->offset) < 0)
            return APP_EXIT_USAGE;
        break;
    case OPT_LENGTH:
        if (parse_u64("--length", optarg, UINT64_MAX / 2, &o->length) < 0)
            return APP_EXIT_USAGE;
        o->have_length = true;
        break;
    case 'i':
        if (initiator_set(o, "--initiator-name", optarg) < 0)
            return APP_EXIT_USAGE;
        break;
    case OPT_LOG_LEVEL: {
        enum log_level l;
        if (log_parse_level(optarg, &l) < 0) {
            app_errorf("--log-level must be error, warn, info or debug");
            return APP_EXIT_USAGE;
        }
        log_set_level(l);
        break;
    }
    case OPT_LOG_FORMAT: {
        enum log_format f;
        if (log_parse_format(optarg, &f) < 0) {
            app_errorf("--log-format must be text or json");
            return APP_EXIT_USAGE;
        }
        log_set_format(f);
        break;
    }
    case 'b':
        if (parse_count("-b/--blocks", optarg, 65535, &v) < 0)
            return APP_EXIT_USAGE;
        o->blocks = (uint32_t)v;
        break;
    case 'm':
        if (parse_count("-m/--max-requests", optarg, 1000, &v) < 0)
            return APP_EXIT_USAGE;
        o->inflight = (uint32_t)v;
        break;
    case 't':
        if (parse_count("-t/--timeout", optarg, 86400, &v) < 0)
            return APP_EXIT_USAGE;
        o->seconds = (uint32_t)v;
        break;
    case 'w':
        o->write = true;
        break;
    case 'r':
        o->random = true;
        break;
    case 'h':
        app_opt_help(usage, cli_opts, NOPTS, groups);
        exit(APP_EXIT_OK);
    default:
        app_errorf("unknown or incomplete option \"%s\" (the options of this command: "
                   "--help); usage: %s", argv[optind - 1], usage);
        return APP_EXIT_USAGE;
    }
    return 0;
}

/*
 * Parse argv; `positional` receives the one operand. Returns 0, or APP_EXIT_USAGE after
 * printing why.
 */
int app_cli_parse_opts(int argc, char **argv, const char *usage, unsigned groups,
                       struct app_cli_opts *o, const char **positional)
{
    struct app_optset set;
    int c, ret;

    memset(o, 0, sizeof(*o));
    app_net_opts_defaults(&o->net);
    /* a client command speaks through its output and exit status; log only trouble */
    log_set_level(LOG_LVL_WARN);
    o->stack = STK_POLICY_AUTO;
    o->blocks = 0;
    o->inflight = 32;
    o->seconds = 10;
    /* the command's options only: any other is unknown to it */
    app_optset_build(&set, cli_opts, NOPTS, groups);
    optind = 1;
    opterr = 0;
    for (;;) {
        const struct app_opt *d = app_optset_next(&set, argc, argv, &c);
        if (c == -1)
            break;
        ret = parse_one(o, c, d, usage, groups, argv);
        if (ret)
            return ret;
    }
    if (optind != argc - 1) {
        app_errorf("usage: %s", usage);
        return APP_EXIT_USAGE;
    }
    if (o->net.no_toe && o->stack == STK_POLICY_TOE) {
        app_errorf("--stack toe and --no-toe contradict each other");
        return APP_EXIT_USAGE;
    }
    if (o->stack == STK_POLICY_HOST)
        o->net.no_toe = true; /* no adapter to bring up */
    if (initiator_default(o) < 0)
        return APP_EXIT_USAGE;
    *positional = argv[optind];
    return 0;
}
