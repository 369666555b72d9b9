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

#include "appliance/state.h"
#include "common/log.h"
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
    OPT_STACK = 256, OPT_JSON, OPT_OFFSET, OPT_LENGTH, OPT_TOE, OPT_INITIATOR,
    OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_TIMEOUT,
};

static const struct option long_opts[] = {
    { "stack", required_argument, NULL, OPT_STACK },
    { "json", no_argument, NULL, OPT_JSON },
    { "pcap", required_argument, NULL, OPT_TOE },
    { "offset", required_argument, NULL, OPT_OFFSET },
    { "length", required_argument, NULL, OPT_LENGTH },
    { "toe-ifname", required_argument, NULL, OPT_TOE },
    { "toe-addr", required_argument, NULL, OPT_TOE },
    { "toe-host-addr", required_argument, NULL, OPT_TOE },
    { "toe-mtu", required_argument, NULL, OPT_TOE },
    { "toe-max-conns", required_argument, NULL, OPT_TOE },
    { "toe-connect-timeout", required_argument, NULL, OPT_TOE },
    { "no-toe", no_argument, NULL, OPT_TOE },
    { "port-range", required_argument, NULL, OPT_TOE },
    { "initiator-name", required_argument, NULL, OPT_INITIATOR },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
    /* timeouts (appliance/timeouts.h) */
    { "login-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "logout-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "nop-interval", required_argument, NULL, OPT_TIMEOUT },
    { "nop-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "command-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "abort-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "lun-reset-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "replacement-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "write", no_argument, NULL, 'w' },
    { "random", no_argument, NULL, 'r' },
    { "blocks", required_argument, NULL, 'b' },
    { "max-requests", required_argument, NULL, 'm' },
    { "timeout", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

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

/*
 * Apply one option getopt_long returned (c, and idx into long_opts for the long ones).
 * 0, or APP_EXIT_USAGE after printing why; --help prints the usage and exits.
 */
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

static int parse_one(struct app_cli_opts *o, int c, int idx, const char *usage, char **argv)
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
        if (app_net_opt(&o->net, long_opts[idx].name, optarg, err, sizeof(err)) < 0) {
            app_errorf("%s", err);
            return APP_EXIT_USAGE;
        }
        break;
    case OPT_TIMEOUT: {
        char source[64];
        snprintf(source, sizeof(source), "--%s", long_opts[idx].name);
        if (app_timeout_opt(&o->tmo, long_opts[idx].name, optarg, source, err,
                            sizeof(err)) < 0) {
            app_errorf("%s", err);
            return APP_EXIT_USAGE;
        }
        break;
    }
    case OPT_OFFSET:
        if (parse_u64("--offset", optarg, UINT64_MAX / 2, &o->offset) < 0)
            return APP_EXIT_USAGE;
        break;
    case OPT_LENGTH:
        if (parse_u64("--length", optarg, UINT64_MAX / 2, &o->length) < 0)
            return APP_EXIT_USAGE;
        o->have_length = true;
        break;
    case OPT_INITIATOR:
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
        if (parse_u64("-b", optarg, 65535, &v) < 0 || v == 0)
            return APP_EXIT_USAGE;
        o->blocks = (uint32_t)v;
        break;
    case 'm':
        if (parse_u64("-m", optarg, 1000, &v) < 0 || v == 0)
            return APP_EXIT_USAGE;
        o->inflight = (uint32_t)v;
        break;
    case 't':
        if (parse_u64("-t", optarg, 86400, &v) < 0 || v == 0)
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
        fprintf(stdout, "usage: %s\n"
                "timeouts (seconds): [--login-timeout S] [--logout-timeout S] "
                "[--nop-interval S] [--nop-timeout S]\n"
                "    [--command-timeout S] [--abort-timeout S] [--lun-reset-timeout S] "
                "[--replacement-timeout S]\n", usage);
        exit(APP_EXIT_OK);
    default:
        app_errorf("unknown or incomplete option \"%s\"; usage: %s", argv[optind - 1],
                   usage);
        return APP_EXIT_USAGE;
    }
    return 0;
}

/*
 * Parse argv; `positional` receives the one operand. Returns 0, or APP_EXIT_USAGE after
 * printing why.
 */
int app_cli_parse_opts(int argc, char **argv, const char *usage, bool perf,
                       struct app_cli_opts *o, const char **positional)
{
    int c, idx, ret;

    memset(o, 0, sizeof(*o));
    app_net_opts_defaults(&o->net);
    /* a client command speaks through its output and exit status; log only trouble */
    log_set_level(LOG_LVL_WARN);
    o->stack = STK_POLICY_AUTO;
    o->blocks = 0;
    o->inflight = 32;
    o->seconds = 10;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, perf ? "b:m:t:wrhi:" : "h", long_opts, &idx)) !=
           -1) {
        ret = parse_one(o, c, idx, usage, argv);
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
