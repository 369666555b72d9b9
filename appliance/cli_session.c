/*
 * cli_session.c - a client command's session: the stacks, a storage loop, the login through
 * the offload broker, the logout; and, for the block commands, the probe of the URL's LUN
 * and the i/o buffers sized to what it accepts per command.
 */
#include "appliance/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/transport.h"

#define CLI_OWNER "toegw-cli"

/* The initiator asks the broker for its connection (claims 1 and 4). */
static int cli_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                       char *err, size_t errlen)
{
    struct app_cli_session *cs = arg;
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
    struct app_cli_session *cs = arg;

    (void)c;
    if (cs->desc)
        stk_release(cs->net.broker, cs->desc, CLI_OWNER, abort);
    cs->desc = NULL;
}

void app_cli_session_close(struct app_cli_session *cs)
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
 * Parse the URL (or a bare portal for discovery), log in. Returns 0 or prints the error
 * and returns APP_EXIT_FAILED / APP_EXIT_USAGE.
 */
int app_cli_session_open(struct app_cli_opts *o, const char *where, bool discovery,
                         bool need_lun, struct app_cli_session *cs)
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
    cfg.initiator_name = o->initiator[0] ? o->initiator : NULL;
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
    sto_loop_set_busy_poll(cs->loop, o->busy_poll_us);
    cs->s = isc_session_new(cs->loop, &cfg);
    if (!cs->s) {
        app_errorf("cannot create the session: %s", strerror(errno));
        app_cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    ret = sto_sync_login(cs->loop, cs->s);
    if (ret < 0) {
        app_errorf("%s", isc_session_error(cs->s)[0] ? isc_session_error(cs->s)
                                                     : strerror(-ret));
        app_cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    return 0;
}

/* Open the session and probe the URL's LUN; sets up the job. */
int app_io_open(struct app_cli_opts *o, const char *url, struct app_cli_session *cs,
                struct app_io_job *j)
{
    char err[320] = "";
    int ret;

    memset(j, 0, sizeof(*j));
    ret = app_cli_session_open(o, url, false, true, cs);
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
        app_cli_session_close(cs);
        return APP_EXIT_FAILED;
    }
    uint32_t bs = j->li.cap.block_size;
    uint64_t chunk = APP_IO_CHUNK_MAX;
    if (j->li.limits.max_transfer_blocks &&
        (uint64_t)j->li.limits.max_transfer_blocks * bs < chunk)
        chunk = (uint64_t)j->li.limits.max_transfer_blocks * bs;
    chunk -= chunk % bs;
    if (chunk == 0)
        chunk = bs;
    j->chunk = (uint32_t)chunk;
    for (int i = 0; i < APP_IO_SLOTS; i++) {
        j->slots[i].buf = malloc(j->chunk);
        if (!j->slots[i].buf) {
            app_errorf("out of memory for i/o buffers");
            return APP_EXIT_FAILED;
        }
    }
    return 0;
}

void app_io_close(struct app_io_job *j)
{
    for (int i = 0; i < APP_IO_SLOTS; i++)
        free(j->slots[i].buf);
    app_cli_session_close(j->cs);
}
