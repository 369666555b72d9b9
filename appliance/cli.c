/*
 * cli.c - client commands: discover, luns, read, write, perf.
 *
 * Each command builds a storage loop, logs in through the chosen stack, runs its work as
 * pipelined SCSI commands and logs out. Errors are one line on stderr that say what failed
 * and why; secrets from the URL are never printed.
 */
#include "appliance/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/net.h"
#include "appliance/timeouts.h"
#include "common/log.h"
#include "stacks/stacks.h"
#include "common/transport.h"
#include "storage/iscsi.h"
#include "storage/lun.h"
#include "storage/url.h"

#define IO_CHUNK_MAX (1024 * 1024) /* bytes per SCSI command for read/write */
#define IO_SLOTS 8                 /* commands in flight for read/write */

void app_errorf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "toegw: %s\n", buf);
}

/* Options shared by the client commands. */
struct cli_opts {
    enum stk_policy stack;
    bool json;
    struct app_net_opts net;
    struct app_timeouts tmo;    /* the session's; no recovery here: a timeout ends it */
    const char *initiator;
    uint64_t offset;
    uint64_t length;
    bool have_length;
    /* perf */
    uint32_t blocks;
    uint32_t inflight;
    uint32_t seconds;
    bool write;
    bool random;
};

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
 * Parse argv; `positional` receives the one operand. Returns 0, or APP_EXIT_USAGE after
 * printing why.
 */
static int parse_opts(int argc, char **argv, const char *usage, bool perf,
                      struct cli_opts *o, const char **positional)
{
    char err[200];
    uint64_t v;
    int c, idx;

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
            o->initiator = optarg;
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
    *positional = argv[optind];
    return 0;
}

/* ---------------------------------------------------------------- sessions */

struct cli_session {
    struct sto_loop *loop;
    struct isc_session *s;
    struct isc_url url;
    struct cli_opts *o;
    struct app_net net;
    struct stk_desc *desc;      /* the broker's descriptor of the session's connection */
};

#define CLI_OWNER "toegw-cli"

/* The initiator asks the broker for its connection (claims 1 and 4). */
static int cli_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                       char *err, size_t errlen)
{
    struct cli_session *cs = arg;
    struct stk_request req = { .owner = CLI_OWNER, .dst = *dst, .policy = cs->o->stack };
    int ret;

    ret = stk_request(cs->net.broker, &req, &cs->desc, err, errlen);
    if (ret < 0)
        return ret;
    log_debug("cli", "connection placed on the %s stack (%s), local port %u",
              stk_stack_name(cs->desc->stack), stk_placement_name(cs->desc->placement),
              cs->desc->port);
    *out = stk_desc_conn(cs->desc, CLI_OWNER);
    return 0;
}

/* ... and gives it back when done (claim 3). */
static void cli_release(void *arg, struct stk_conn *c, bool abort)
{
    struct cli_session *cs = arg;

    (void)c;
    if (cs->desc)
        stk_release(cs->net.broker, cs->desc, CLI_OWNER, abort);
    cs->desc = NULL;
}

static void cli_session_close(struct cli_session *cs)
{
    if (cs->s && isc_session_state(cs->s) == ISC_STATE_LOGGED_IN)
        sto_sync_logout(cs->loop, cs->s);
    isc_session_free(cs->s);
    sto_loop_free(cs->loop);
    app_net_stop(&cs->net);
    isc_url_clear(&cs->url);
    memset(cs, 0, sizeof(*cs));
}

/*
 * Parse the URL (or a bare portal when `portal_only`), log in. Returns 0 or prints the
 * error and returns APP_EXIT_FAILED / APP_EXIT_USAGE.
 */
static int cli_session_open(struct cli_opts *o, const char *where, bool discovery,
                            bool need_lun, struct cli_session *cs)
{
    struct isc_session_config cfg = { 0 };
    char err[256];
    char url[1100];
    int ret;

    memset(cs, 0, sizeof(*cs));
    if (discovery && strncmp(where, "iscsi://", 8) != 0) {
        snprintf(url, sizeof(url), "iscsi://%s", where); /* a PORTAL: host[:port] */
        where = url;
    }
    if (isc_url_parse(where, &cs->url, err, sizeof(err)) < 0) {
        app_errorf("bad url: %s", err);
        return APP_EXIT_USAGE;
    }
    if (!discovery && !cs->url.target) {
        app_errorf("bad url: it names no target (iscsi://host[:port]/IQN/LUN)");
        isc_url_clear(&cs->url);
        return APP_EXIT_USAGE;
    }
    if (need_lun && cs->url.lun < 0) {
        app_errorf("bad url: it names no lun (iscsi://host[:port]/IQN/LUN)");
        isc_url_clear(&cs->url);
        return APP_EXIT_USAGE;
    }
    ret = stk_parse_hostport(cs->url.portal, ISC_DEFAULT_PORT, &cfg.portal);
    if (ret < 0) {
        app_errorf("bad portal \"%.200s\": %s", cs->url.portal,
                   ret == -EHOSTUNREACH ? "cannot resolve the host" : "expected host[:port]");
        isc_url_clear(&cs->url);
        return ret == -EHOSTUNREACH ? APP_EXIT_FAILED : APP_EXIT_USAGE;
    }
    cfg.initiator_name = o->initiator;
    cfg.discovery = discovery;
    cfg.target_name = discovery ? NULL : cs->url.target;
    cfg.header_digest = cs->url.header_digest;
    cfg.data_digest = cs->url.data_digest;
    cfg.no_header_digest = cs->url.no_header_digest;
    cfg.no_data_digest = cs->url.no_data_digest;
    cfg.chap_user = cs->url.user;
    cfg.chap_secret = cs->url.secret;
    cfg.target_user = cs->url.target_user;
    cfg.target_secret = cs->url.target_secret;
    cfg.connector = (struct isc_connector){ cli_connect, cli_release, cs };
    /* every wait on the target is bounded; --replacement-timeout has no use here */
    isc_config_timeouts(&cfg, &o->tmo.s);
    cs->o = o;
    {
        char err[300];
        ret = app_net_start(&o->net, o->stack == STK_POLICY_TOE, &cs->net, err, sizeof(err));
        if (ret < 0) {
            app_errorf("%s", err);
            isc_url_clear(&cs->url);
            return APP_EXIT_FAILED;
        }
    }
    cs->loop = sto_loop_new();
    if (!cs->loop) {
        app_errorf("cannot create the storage loop: %s", strerror(errno));
        isc_url_clear(&cs->url);
        return APP_EXIT_FAILED;
    }
    cs->s = isc_session_new(cs->loop, &cfg);
    if (!cs->s) {
        app_errorf("cannot create the session: %s", strerror(errno));
        cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    ret = sto_sync_login(cs->loop, cs->s);
    if (ret < 0) {
        app_errorf("%s", isc_session_error(cs->s)[0] ? isc_session_error(cs->s)
                                                     : strerror(-ret));
        cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    return 0;
}

/* ---------------------------------------------------------------- discover */

static void json_str(FILE *f, const char *s)
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

int app_cmd_discover(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_session cs;
    struct isc_target_list *l = NULL;
    const char *portal;
    int ret;

    ret = parse_opts(argc, argv, "toegw discover PORTAL [--stack auto|toe|host] [--json]",
                     false, &o, &portal);
    if (ret)
        return ret;
    ret = cli_session_open(&o, portal, true, false, &cs);
    if (ret)
        return ret;
    ret = sto_sync_send_targets(cs.loop, cs.s, &l);
    if (ret < 0) {
        app_errorf("sendtargets discovery at %s failed: %s", cs.url.portal,
                   isc_session_error(cs.s));
        cli_session_close(&cs);
        return APP_EXIT_FAILED;
    }
    if (o.json) {
        printf("{\"targets\":[");
        for (size_t i = 0; i < l->n; i++) {
            printf("%s{\"iqn\":", i ? "," : "");
            json_str(stdout, l->v[i].name);
            printf(",\"portals\":[");
            for (size_t j = 0; j < l->v[i].nportals; j++) {
                printf("%s", j ? "," : "");
                json_str(stdout, l->v[i].portals[j]);
            }
            printf("]}");
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < l->n; i++) {
            printf("%s", l->v[i].name);
            for (size_t j = 0; j < l->v[i].nportals; j++)
                printf(" %s", l->v[i].portals[j]);
            printf("\n");
        }
    }
    isc_target_list_free(l);
    cli_session_close(&cs);
    return fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
}

/* ---------------------------------------------------------------- luns */

int app_cmd_luns(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_session cs;
    const char *url;
    uint32_t *luns = NULL;
    size_t n = 0;
    char err[320] = "";
    int ret, status = APP_EXIT_OK;

    ret = parse_opts(argc, argv, "toegw luns URL [--stack auto|toe|host] [--json]", false,
                     &o, &url);
    if (ret)
        return ret;
    ret = cli_session_open(&o, url, false, false, &cs);
    if (ret)
        return ret;
    ret = sto_sync_report_luns(cs.loop, cs.s, &luns, &n, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        cli_session_close(&cs);
        return APP_EXIT_FAILED;
    }
    if (o.json)
        printf("{\"target\":\"%s\",\"luns\":[", cs.url.target);
    for (size_t i = 0; i < n; i++) {
        struct sto_lun_info li;
        if (cs.url.lun >= 0 && luns[i] != (uint32_t)cs.url.lun)
            continue;
        ret = sto_sync_probe_lun(cs.loop, cs.s, luns[i], &li, err, sizeof(err));
        if (ret < 0) {
            app_errorf("lun %u: %s", luns[i], err);
            status = APP_EXIT_FAILED;
            if (isc_session_state(cs.s) != ISC_STATE_LOGGED_IN)
                break;
            continue;
        }
        if (li.inq.peripheral_type != SCSI_TYPE_DISK) {
            if (o.json)
                printf("%s{\"lun\":%u,\"type\":%u,\"type_name\":\"%s\"}", i ? "," : "",
                       li.lun, li.inq.peripheral_type, scsi_type_name(li.inq.peripheral_type));
            else
                printf("lun %-3u %s (%s %s)\n", li.lun, scsi_type_name(li.inq.peripheral_type),
                       li.inq.vendor, li.inq.product);
            continue;
        }
        if (o.json) {
            printf("%s{\"lun\":%u,\"size_bytes\":%" PRIu64 ",\"block_size\":%u,"
                   "\"blocks\":%" PRIu64 ",\"type\":%u,\"vendor\":",
                   i ? "," : "", li.lun, li.size_bytes, li.cap.block_size, li.cap.blocks,
                   li.inq.peripheral_type);
            json_str(stdout, li.inq.vendor);
            printf(",\"product\":");
            json_str(stdout, li.inq.product);
            printf(",\"revision\":");
            json_str(stdout, li.inq.revision);
            printf(",\"serial\":");
            json_str(stdout, li.serial);
            printf(",\"wwn\":");
            json_str(stdout, li.wwn);
            printf(",\"thin\":%s}", li.cap.thin ? "true" : "false");
        } else {
            printf("lun %-3u %14" PRIu64 " bytes  %5u-byte blocks  %s %s%s%s\n", li.lun,
                   li.size_bytes, li.cap.block_size, li.inq.vendor, li.inq.product,
                   li.wwn[0] ? "  " : "", li.wwn);
        }
    }
    if (o.json)
        printf("]}\n");
    free(luns);
    cli_session_close(&cs);
    if (fflush(stdout) != 0)
        return APP_EXIT_FAILED;
    return status;
}

/* ---------------------------------------------------------------- read / write */

struct io_slot {
    uint8_t *buf;
    uint64_t off;      /* byte offset on the LUN */
    uint32_t len;      /* bytes of the command */
    bool busy, done;
    struct isc_scsi_result res;
};

struct io_job {
    struct cli_session *cs;
    struct sto_lun_info li;
    uint32_t chunk;
    struct io_slot slots[IO_SLOTS];
    unsigned busy;
    bool any_done;
    bool reported;      /* the first failure was printed: one line, not one per slot */
};

static void io_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct io_slot *slot = arg;

    (void)s;
    slot->res = *r;
    slot->done = true;
}

static int io_submit(struct io_job *j, struct io_slot *slot, bool write)
{
    struct isc_scsi_req req = {
        .lun = j->li.lun, .dir = write ? ISC_DIR_WRITE : ISC_DIR_READ,
        .buf = slot->buf, .len = slot->len, .cb = io_cb, .arg = slot,
    };
    uint64_t lba = slot->off / j->li.cap.block_size;
    uint32_t blocks = slot->len / j->li.cap.block_size;

    req.cdb_len = (uint8_t)(write ? scsi_cdb_write(req.cdb, lba, blocks, false)
                                  : scsi_cdb_read(req.cdb, lba, blocks, false));
    slot->busy = true;
    slot->done = false;
    j->busy++;
    int ret = isc_session_submit(j->cs->s, &req);
    if (ret < 0) { /* no callback will come: the slot is free again */
        slot->busy = false;
        j->busy--;
    }
    return ret;
}

/*
 * Check a finished slot: 0, or APP_EXIT_FAILED. The first failure of the job is printed;
 * the commands in flight beside it usually fail for the same reason and stay quiet.
 */
static int io_check(struct io_job *j, struct io_slot *slot, bool write)
{
    char what[96], err[320];

    slot->busy = false;
    j->busy--;
    snprintf(what, sizeof(what), "%s of %u bytes at offset %" PRIu64, write ? "write" : "read",
             slot->len, slot->off);
    if (slot->res.err && !slot->res.why[0] && isc_session_error(j->cs->s)[0])
        snprintf(err, sizeof(err), "%s failed: %s", what, isc_session_error(j->cs->s));
    else if (sto_scsi_check(&slot->res, what, err, sizeof(err)) == 0 &&
             !write && slot->res.data_in_len < slot->len)
        snprintf(err, sizeof(err), "%s returned only %u bytes", what, slot->res.data_in_len);
    else if (!slot->res.err && slot->res.status == 0)
        return 0;
    if (!j->reported)
        app_errorf("%s", err);
    j->reported = true;
    return APP_EXIT_FAILED;
}

/* Open the session and probe the URL's LUN; sets up the job. */
static int io_open(struct cli_opts *o, const char *url, struct cli_session *cs,
                   struct io_job *j)
{
    char err[320] = "";
    int ret;

    memset(j, 0, sizeof(*j));
    ret = cli_session_open(o, url, false, true, cs);
    if (ret)
        return ret;
    j->cs = cs;
    ret = sto_sync_probe_lun(cs->loop, cs->s, (uint32_t)cs->url.lun, &j->li, err, sizeof(err));
    if (ret == 0 && j->li.inq.peripheral_type != SCSI_TYPE_DISK) {
        snprintf(err, sizeof(err), "it is a %s, not a block device",
                 scsi_type_name(j->li.inq.peripheral_type));
        ret = -ENOTBLK;
    }
    if (ret < 0) {
        app_errorf("lun %d of %s: %s", cs->url.lun, cs->url.target, err);
        cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    uint32_t bs = j->li.cap.block_size;
    uint64_t chunk = IO_CHUNK_MAX;
    if (j->li.limits.max_transfer_blocks &&
        (uint64_t)j->li.limits.max_transfer_blocks * bs < chunk)
        chunk = (uint64_t)j->li.limits.max_transfer_blocks * bs;
    chunk -= chunk % bs;
    if (chunk == 0)
        chunk = bs;
    j->chunk = (uint32_t)chunk;
    for (int i = 0; i < IO_SLOTS; i++) {
        j->slots[i].buf = malloc(j->chunk);
        if (!j->slots[i].buf) {
            app_errorf("out of memory for i/o buffers");
            return APP_EXIT_FAILED;
        }
    }
    return 0;
}

static void io_close(struct io_job *j)
{
    for (int i = 0; i < IO_SLOTS; i++)
        free(j->slots[i].buf);
    cli_session_close(j->cs);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int app_cmd_read(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_session cs;
    struct io_job j;
    const char *url;
    uint64_t start, end, next, emit;
    unsigned head = 0, tail = 0;
    int ret, status = APP_EXIT_OK;

    ret = parse_opts(argc, argv, "toegw read URL [--offset BYTES] [--length BYTES] "
                     "[--stack auto|toe|host]", false, &o, &url);
    if (ret)
        return ret;
    ret = io_open(&o, url, &cs, &j);
    if (ret)
        return ret;
    if (!o.have_length)
        o.length = o.offset <= j.li.size_bytes ? j.li.size_bytes - o.offset : 0;
    if (o.offset > j.li.size_bytes || o.length > j.li.size_bytes - o.offset) {
        app_errorf("read of %" PRIu64 " bytes at offset %" PRIu64 " is past the end of "
                   "lun %u (%" PRIu64 " bytes)", o.length, o.offset, j.li.lun, j.li.size_bytes);
        io_close(&j);
        return APP_EXIT_FAILED;
    }
    /* the device reads whole blocks: widen to block bounds, emit only what was asked */
    uint32_t bs = j.li.cap.block_size;
    start = o.offset - o.offset % bs;
    end = o.offset + o.length;
    if (end % bs)
        end += bs - end % bs;
    next = start;
    emit = o.offset;
    /* slots form a ring: [tail, head) are in flight in LBA order */
    while (emit < o.offset + o.length || j.busy) {
        while (j.busy < IO_SLOTS && next < end && status == APP_EXIT_OK) {
            struct io_slot *slot = &j.slots[head % IO_SLOTS];
            slot->off = next;
            slot->len = (uint32_t)(end - next < j.chunk ? end - next : j.chunk);
            next += slot->len;
            head++;
            if (io_submit(&j, slot, false) < 0) {
                if (!j.reported)
                    app_errorf("cannot queue a read: %s", isc_session_error(cs.s));
                j.reported = true;
                status = APP_EXIT_FAILED;
            }
        }
        struct io_slot *slot = &j.slots[tail % IO_SLOTS];
        if (!slot->busy)
            break;
        sto_loop_run_until(cs.loop, &slot->done);
        tail++;
        if (io_check(&j, slot, false)) {
            status = APP_EXIT_FAILED;
            continue;
        }
        if (status != APP_EXIT_OK)
            continue;
        uint64_t from = emit > slot->off ? emit - slot->off : 0;
        uint64_t to = slot->len;
        if (slot->off + to > o.offset + o.length)
            to = o.offset + o.length - slot->off;
        ret = write_all(STDOUT_FILENO, slot->buf + from, (size_t)(to - from));
        if (ret < 0) {
            app_errorf("writing to stdout failed: %s", strerror(-ret));
            status = APP_EXIT_FAILED;
        }
        emit = slot->off + to;
    }
    io_close(&j);
    return status;
}

/* Read up to n bytes from stdin, looping over short reads. Returns bytes or -errno. */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int sync_cache(struct io_job *j)
{
    struct isc_scsi_req req = { .lun = j->li.lun };
    struct isc_scsi_result res;
    char err[320] = "";

    req.cdb_len = (uint8_t)scsi_cdb_sync_cache(req.cdb, 0, 0);
    if (sto_sync_scsi(j->cs->loop, j->cs->s, &req, &res) < 0 ||
        sto_scsi_check(&res, "synchronize cache", err, sizeof(err)) < 0) {
        if (res.err == 0 && res.status == SCSI_STATUS_CHECK_CONDITION) {
            struct scsi_sense sn;
            scsi_sense_decode(res.sense, res.sense_len, &sn);
            if (sn.key == SCSI_SENSE_ILLEGAL_REQUEST && sn.asc == 0x20)
                return 0; /* no cache to flush: writes are already durable */
        }
        app_errorf("%s", res.err && !res.why[0] ? isc_session_error(j->cs->s) : err);
        return APP_EXIT_FAILED;
    }
    return 0;
}

int app_cmd_write(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_session cs;
    struct io_job j;
    const char *url;
    struct stat st;
    uint64_t off;
    bool eof = false;
    int ret, status = APP_EXIT_OK;

    ret = parse_opts(argc, argv, "toegw write URL [--offset BYTES] [--stack auto|toe|host]",
                     false, &o, &url);
    if (ret)
        return ret;
    ret = io_open(&o, url, &cs, &j);
    if (ret)
        return ret;
    uint32_t bs = j.li.cap.block_size;
    if (o.offset % bs) {
        app_errorf("offset %" PRIu64 " is not a multiple of the %u-byte block size of lun %u",
                   o.offset, bs, j.li.lun);
        io_close(&j);
        return APP_EXIT_FAILED;
    }
    if (o.offset >= j.li.size_bytes) {
        app_errorf("offset %" PRIu64 " is past the end of lun %u (%" PRIu64 " bytes)",
                   o.offset, j.li.lun, j.li.size_bytes);
        io_close(&j);
        return APP_EXIT_FAILED;
    }
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > j.li.size_bytes - o.offset) {
        app_errorf("write of %" PRIu64 " bytes at offset %" PRIu64 " is past the end of "
                   "lun %u (%" PRIu64 " bytes)", (uint64_t)st.st_size, o.offset, j.li.lun,
                   j.li.size_bytes);
        io_close(&j);
        return APP_EXIT_FAILED;
    }
    off = o.offset;
    while ((!eof && status == APP_EXIT_OK) || j.busy) {
        struct io_slot *slot = NULL;
        for (int i = 0; i < IO_SLOTS; i++) {
            if (j.slots[i].busy && j.slots[i].done) {
                if (io_check(&j, &j.slots[i], true))
                    status = APP_EXIT_FAILED;
            }
            if (!j.slots[i].busy && !slot)
                slot = &j.slots[i];
        }
        if (slot && !eof && status == APP_EXIT_OK) {
            ssize_t n = read_full(STDIN_FILENO, slot->buf, j.chunk);
            if (n < 0) {
                app_errorf("reading stdin failed: %s", strerror((int)-n));
                status = APP_EXIT_FAILED;
                continue;
            }
            if ((size_t)n < j.chunk)
                eof = true;
            if (n == 0)
                continue;
            if (off + (uint64_t)n > j.li.size_bytes) {
                app_errorf("input runs past the end of lun %u (%" PRIu64 " bytes) at offset "
                           "%" PRIu64 "; nothing past it was written", j.li.lun,
                           j.li.size_bytes, off);
                status = APP_EXIT_FAILED;
                continue;
            }
            if (n % bs) {
                /* a partial last block: keep the rest of the block's current content */
                uint32_t whole = (uint32_t)n - (uint32_t)n % bs;
                uint8_t *blk = malloc(bs);
                struct isc_scsi_req req = { .lun = j.li.lun, .dir = ISC_DIR_READ,
                                            .buf = blk, .len = bs };
                struct isc_scsi_result res;
                char err[320];
                req.cdb_len = (uint8_t)scsi_cdb_read(req.cdb, (off + whole) / bs, 1, false);
                if (!blk || sto_sync_scsi(cs.loop, cs.s, &req, &res) < 0 ||
                    sto_scsi_check(&res, "read of the last partial block", err,
                                   sizeof(err)) < 0) {
                    app_errorf("%s", blk ? err : "out of memory");
                    free(blk);
                    status = APP_EXIT_FAILED;
                    continue;
                }
                memcpy(slot->buf + n, blk + n % bs, bs - (size_t)n % bs);
                free(blk);
                n = whole + bs;
            }
            slot->off = off;
            slot->len = (uint32_t)n;
            off += (uint64_t)n;
            if (io_submit(&j, slot, true) < 0) {
                if (!j.reported)
                    app_errorf("cannot queue a write: %s", isc_session_error(cs.s));
                j.reported = true;
                slot->busy = false;
                j.busy--;
                status = APP_EXIT_FAILED;
            }
            continue;
        }
        if (j.busy)
            sto_loop_run_once(cs.loop, -1);
    }
    if (status == APP_EXIT_OK)
        status = sync_cache(&j);
    io_close(&j);
    return status;
}

/* ---------------------------------------------------------------- perf */

struct perf_job {
    struct io_job io;
    struct cli_opts *o;
    struct io_slot *slots;
    uint64_t next_lba;
    uint64_t max_lba;
    uint64_t ios, bytes, errors;
    uint64_t seed;
    bool stopping;
    char err[320];
};

static uint64_t perf_rand(struct perf_job *p)
{
    /* xorshift64*: cheap and good enough to spread LBAs */
    p->seed ^= p->seed >> 12;
    p->seed ^= p->seed << 25;
    p->seed ^= p->seed >> 27;
    return p->seed * 2685821657736338717ull;
}

static void perf_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg);

static int perf_issue(struct perf_job *p, struct io_slot *slot)
{
    uint32_t blocks = p->o->blocks;
    struct isc_scsi_req req = {
        .lun = p->io.li.lun, .dir = p->o->write ? ISC_DIR_WRITE : ISC_DIR_READ,
        .buf = slot->buf, .len = slot->len, .cb = perf_cb, .arg = slot,
    };
    uint64_t lba;

    if (p->o->random) {
        lba = perf_rand(p) % (p->max_lba + 1);
    } else {
        lba = p->next_lba;
        p->next_lba += blocks;
        if (p->next_lba > p->max_lba)
            p->next_lba = 0;
    }
    req.cdb_len = (uint8_t)(p->o->write ? scsi_cdb_write(req.cdb, lba, blocks, false)
                                        : scsi_cdb_read(req.cdb, lba, blocks, false));
    slot->busy = true;
    return isc_session_submit(p->io.cs->s, &req);
}

static struct perf_job *perf_current; /* the one job of this process */

static void perf_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct perf_job *p = perf_current;
    struct io_slot *slot = arg;

    (void)s;
    slot->busy = false;
    if (r->err || r->status) {
        if (!p->errors++)
            sto_scsi_check(r, "perf i/o", p->err, sizeof(p->err));
        p->stopping = true;
        return;
    }
    p->ios++;
    p->bytes += slot->len;
    if (!p->stopping && perf_issue(p, slot) < 0)
        p->stopping = true;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int app_cmd_perf(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_session cs;
    struct perf_job p = { 0 };
    const char *url;
    struct rusage ru0, ru1;
    int ret;

    ret = parse_opts(argc, argv, "toegw perf URL [-b BLOCKS] [-m INFLIGHT] [-t SECONDS] "
                     "[--write] [--random] [--stack auto|toe|host] [--json]", true, &o, &url);
    if (ret)
        return ret;
    ret = io_open(&o, url, &cs, &p.io);
    if (ret)
        return ret;
    p.o = &o;
    if (!o.blocks)
        o.blocks = 256 * 512 / p.io.li.cap.block_size ? 256 * 512 / p.io.li.cap.block_size
                                                      : 1;
    uint64_t len = (uint64_t)o.blocks * p.io.li.cap.block_size;
    if (len > 16u * 1024 * 1024 || o.blocks > p.io.li.cap.blocks) {
        app_errorf("-b %u blocks of %u bytes is larger than %s", o.blocks,
                   p.io.li.cap.block_size, o.blocks > p.io.li.cap.blocks ? "the lun"
                                                                         : "one command allows");
        io_close(&p.io);
        return APP_EXIT_USAGE;
    }
    p.max_lba = p.io.li.cap.blocks - o.blocks;
    p.seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    p.slots = calloc(o.inflight, sizeof(*p.slots));
    if (!p.slots) {
        app_errorf("out of memory");
        io_close(&p.io);
        return APP_EXIT_FAILED;
    }
    for (uint32_t i = 0; i < o.inflight; i++) {
        p.slots[i].len = (uint32_t)len;
        p.slots[i].buf = malloc(len);
        if (!p.slots[i].buf) {
            app_errorf("out of memory");
            return APP_EXIT_FAILED;
        }
        memset(p.slots[i].buf, 0xa5, len);
    }
    perf_current = &p;
    if (!o.json)
        printf("toegw perf: %s %s, %u blocks of %u bytes per request, %u in flight, "
               "%u s, %s stack\n", o.random ? "random" : "sequential",
               o.write ? "write" : "read", o.blocks, p.io.li.cap.block_size, o.inflight,
               o.seconds, stk_stack_name(isc_session_conn(cs.s)->stack));
    fflush(stdout);

    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = sto_now_ns();
    uint64_t deadline = t0 + (uint64_t)o.seconds * 1000000000ull;
    uint64_t next_report = t0 + 1000000000ull, last_ios = 0, last_bytes = 0;
    for (uint32_t i = 0; i < o.inflight && !p.stopping; i++)
        if (perf_issue(&p, &p.slots[i]) < 0)
            p.stopping = true;
    while (!p.stopping || isc_session_inflight(cs.s)) {
        sto_loop_run_once(cs.loop, 100);
        uint64_t now = sto_now_ns();
        if (now >= deadline)
            p.stopping = true;
        if (isc_session_state(cs.s) != ISC_STATE_LOGGED_IN)
            break;
        if (!o.json && now >= next_report && !p.stopping) {
            printf("[%3u s] iops %8" PRIu64 "  %9.2f MB/s\n",
                   (unsigned)((now - t0) / 1000000000ull), p.ios - last_ios,
                   (double)(p.bytes - last_bytes) / 1e6);
            fflush(stdout);
            last_ios = p.ios;
            last_bytes = p.bytes;
            next_report += 1000000000ull;
        }
    }
    double elapsed = (double)(sto_now_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    double cpu_sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    double iops = (double)p.ios / elapsed, mbs = (double)p.bytes / elapsed / 1e6;

    ret = APP_EXIT_OK;
    if (isc_session_state(cs.s) != ISC_STATE_LOGGED_IN) {
        app_errorf("perf stopped: %s", isc_session_error(cs.s));
        ret = APP_EXIT_FAILED;
    } else if (p.errors) {
        app_errorf("perf stopped after an error: %s", p.err);
        ret = APP_EXIT_FAILED;
    }
    if (o.json)
        printf("{\"iops\":%.0f,\"mb_per_s\":%.2f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
               "\"seconds\":%.3f,\"ios\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"block_size\":%u,"
               "\"blocks\":%u,\"inflight\":%u,\"write\":%s,\"random\":%s,\"stack\":\"%s\","
               "\"errors\":%" PRIu64 "}\n",
               iops, mbs, cpu_user, cpu_sys, elapsed, p.ios, p.bytes, p.io.li.cap.block_size,
               o.blocks, o.inflight, o.write ? "true" : "false", o.random ? "true" : "false",
               isc_session_conn(cs.s) ? stk_stack_name(isc_session_conn(cs.s)->stack)
                                      : "none", p.errors);
    else
        printf("[SUMMARY] %.1f s, iops %.0f, %.2f MB/s, cpu %.2f s user + %.2f s sys\n",
               elapsed, iops, mbs, cpu_user, cpu_sys);
    for (uint32_t i = 0; i < o.inflight; i++)
        free(p.slots[i].buf);
    free(p.slots);
    io_close(&p.io);
    return ret;
}
