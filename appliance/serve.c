/*
 * serve.c - `toegw serve`: the appliance in one process.
 *
 * Threads: the main thread (signals, state saving), the storage threads (--storage-threads
 * loops: sessions, volumes, NBD; storage/pool.h), the TOE's firmware thread,
 * libmicrohttpd's threads (REST API), and a restore thread that logs saved sessions in
 * again at start (and retries those whose target is not back yet). Start: flags and
 * TOEGW_* variables, state dir, API token, TOE + broker, the storage pool, API, restore.
 * SIGTERM/SIGINT: not ready, save state, log every session out, stop the API, exit 0 —
 * within 10 s. The storage threads reach the broker (serve_connect) at once: its calls
 * take its lock.
 */
#include "appliance/serve.h"
#include "appliance/serve_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "appliance/cli.h"
#include "appliance/heap.h"
#include "appliance/net.h"
#include "appliance/priv.h"
#include "appliance/serve_int.h"
#include "appliance/state.h"
#include "appliance/tls_files.h"
#include "appliance/toe_admin.h"
#include "appliance/version.h"
#include "common/log.h"
#include "common/sockspec.h"
#include "stacks/bsock.h"
#include "storage/pool.h"
#include "storage/tls_creds.h"

#define SHUTDOWN_LOGOUT_MS 6000
#define RESTORE_RETRY_S 10

/* How far the start got; serve_stop undoes exactly that much. */
enum serve_stage {
    SERVE_NOTHING = 0,
    SERVE_NET,                   /* the TOE and the broker */
    SERVE_STORAGE,               /* + the storage pool: its loops, managers, NBD, threads */
    SERVE_API,                   /* + the API and the restore thread: fully started */
};

struct serve {
    struct serve_opts o;
    enum serve_stage stage;      /* main thread only */
    struct app_net net;
    struct sto_pool *pool;
    struct tls_creds *nbd_creds; /* the NBD server's TLS credentials (NULL: --nbd-tls off) */
    struct api_server *api;
    char token[128];
    int lock_fd;                 /* the state dir's lock, held for the process's life */
    struct api_info info;        /* GET /api/v1/info */
    struct app_tls_files tls;    /* the API's certificate and key with --api-tls on */
    int fail_status;             /* the exit status of a failed start (0: APP_EXIT_FAILED) */
    /* sessions from the state file not logged in yet (guarded by lock) */
    pthread_mutex_t lock;
    struct sto_session_req *pending;
    size_t npending;
    _Atomic bool stopping;       /* main thread sets, restore thread reads */
    pthread_t restore_thread;
    bool restore_running;
    char *last_state;            /* what was last written, to write only on change */
    char last_save_err[300];     /* the last failure to save, logged once until it changes */
    uint64_t state_writes;       /* how often the state changed: sessions, reservations */
    struct app_heap_idle heap;   /* main thread only */
    struct stk_bsock *bsock;     /* the broker socket (--broker), or NULL */
};


/* ---------------------------------------------------------------- broker glue */

static int serve_connect(void *arg, const char *owner, enum stk_policy policy,
                         uint64_t reservation, const struct sockaddr_in *dst,
                         struct stk_conn **out, char *err, size_t errlen)
{
    struct serve *sv = arg;
    /* sessions are created over the authenticated API: any reservation may be named */
    struct stk_request req = { .owner = owner, .dst = *dst, .policy = policy,
                               .reservation = reservation, .any_holder = true };
    struct stk_desc *d;
    int ret = stk_request(sv->net.broker, &req, &d, err, errlen);

    if (ret == 0)
        *out = stk_desc_conn(d, owner);
    return ret;
}

static void serve_release(void *arg, const char *owner, struct stk_conn *c, bool abort)
{
    struct serve *sv = arg;

    if (stk_release_conn(sv->net.broker, c, owner, abort) < 0)
        stk_conn_close(c, abort); /* not the broker's: close it all the same */
}

/* ---------------------------------------------------------------- state */

/* Current state: the manager's sessions, those not restored yet, the reservations. */
static char *state_snapshot(struct serve *sv)
{
    struct app_state st = { 0 };
    struct sto_session_req *live = NULL;
    size_t nlive = 0;
    char *text = NULL;

    if (sto_pool_export_sessions(sv->pool, &live, &nlive) < 0)
        return NULL;
    pthread_mutex_lock(&sv->lock);
    st.sessions = calloc(nlive + sv->npending + 1, sizeof(*st.sessions));
    if (st.sessions) {
        if (nlive)
            memcpy(st.sessions, live, nlive * sizeof(*live));
        if (sv->npending)
            memcpy(st.sessions + nlive, sv->pending, sv->npending * sizeof(*live));
        st.nsessions = nlive + sv->npending;
    }
    pthread_mutex_unlock(&sv->lock);
    explicit_bzero(live, nlive * sizeof(*live));
    free(live);
    if (st.sessions && stk_list_reservations(sv->net.broker, &st.reservations,
                                             &st.nreservations) == 0 &&
        sto_pool_export_access(sv->pool, &st.access, &st.naccess) == 0)
        text = app_state_text(&st);
    app_state_clear(&st);
    return text;
}

static void state_save(struct serve *sv)
{
    char err[300];
    char *text = state_snapshot(sv);

    if (!text)
        return;
    if (sv->last_state && !strcmp(text, sv->last_state)) {
        app_state_text_free(text);
        return;
    }
    if (app_state_write(sv->o.state_dir, text, err, sizeof(err)) < 0) {
        /* retried every 0.5 s: say it once, and again only when the reason changes */
        if (strcmp(err, sv->last_save_err)) {
            log_error("state", "%s (retrying)", err);
            snprintf(sv->last_save_err, sizeof(sv->last_save_err), "%s", err);
        }
        app_state_text_free(text);
        return;
    }
    if (sv->last_save_err[0]) {
        log_info("state", "state saved again");
        sv->last_save_err[0] = '\0';
    }
    app_state_text_free(sv->last_state);
    sv->last_state = text;
    sv->state_writes++;
}

/* Activity for the idle heap trim: NBD traffic and clients, changes of the state. */
static uint64_t serve_activity(struct serve *sv)
{
    struct nbds_stats ns = { 0 };

    if (sv->pool)
        sto_pool_nbd_stats(sv->pool, &ns);
    return ns.requests + ns.clients_total + sv->state_writes;
}

/* Log the saved sessions in again; retry those that fail until shutdown. */
static void *restore_main(void *arg)
{
    struct serve *sv = arg;

    for (int pass = 0; !sv->stopping; pass++) {
        pthread_mutex_lock(&sv->lock);
        size_t n = sv->npending;
        pthread_mutex_unlock(&sv->lock);
        for (size_t i = 0; i < n && !sv->stopping;) {
            struct sto_session_req req;
            struct sto_result res;
            char id[STO_ID_MAX];
            pthread_mutex_lock(&sv->lock);
            req = sv->pending[i];
            pthread_mutex_unlock(&sv->lock);
            int ret = sto_pool_session_create(sv->pool, &req, id, &res);
            if (ret == 0 || res.cls == STO_ERR_CONFLICT || res.cls == STO_ERR_INVALID) {
                if (ret == 0)
                    log_info("state", "restored session %s to %s", req.id, req.target);
                else
                    log_warn("state", "dropping saved session %s: %s", req.id, res.msg);
                pthread_mutex_lock(&sv->lock);
                explicit_bzero(&sv->pending[i], sizeof(sv->pending[i]));
                memmove(&sv->pending[i], &sv->pending[i + 1],
                        (sv->npending - i - 1) * sizeof(sv->pending[0]));
                sv->npending--;
                pthread_mutex_unlock(&sv->lock);
                n--;
            } else {
                if (pass == 0)
                    log_warn("state", "cannot restore session %s to %s yet (%s); retrying",
                             req.id, req.target, res.msg);
                i++;
            }
            explicit_bzero(&req, sizeof(req));
        }
        if (pass == 0 && sv->api)
            api_server_set_ready(sv->api, 1);
        if (!n)
            break;
        /* 1, 2, 4, 8, then every RESTORE_RETRY_S seconds: a target (or a port still in
         * TIME_WAIT from the previous run) is often back within a moment */
        int wait_s = pass < 4 ? 1 << pass : RESTORE_RETRY_S;
        for (int s = 0; s < wait_s * 10 && !sv->stopping; s++)
            usleep(100000);
    }
    return NULL;
}

/* ---------------------------------------------------------------- main */

static int mkdir_p(const char *dir)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/*
 * Start, step 1 (nothing started yet): the log settings, the signal mask every thread
 * inherits (only the main thread takes the signals), the state dir, the API token and the
 * saved state (into *st). 0, or -1 after printing why.
 */
static int serve_setup(struct serve *sv, struct app_state *st, sigset_t *sigs)
{
    char err[400];
    int ret;

    log_set_level(sv->o.level);
    log_set_format(sv->o.format);
    app_serve_warn_exposure(&sv->o);

    /* every thread inherits this mask: only the main thread takes the signals */
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);

    ret = mkdir_p(sv->o.state_dir);
    if (ret < 0) {
        app_errorf("cannot create state dir \"%s\": %s", sv->o.state_dir, strerror(-ret));
        return -1;
    }
    /* the state (token, keys, CHAP secrets) is the appliance's alone */
    struct stat sd;
    if (stat(sv->o.state_dir, &sd) == 0 && (sd.st_mode & 077)) {
        if (chmod(sv->o.state_dir, 0700) < 0) {
            app_errorf("state dir \"%s\" is open to other users (mode %03o) and cannot be "
                       "closed: %s", sv->o.state_dir, (unsigned)(sd.st_mode & 0777),
                       strerror(errno));
            return -1;
        }
        log_info("serve", "state dir %s: mode %03o made 0700", sv->o.state_dir,
                 (unsigned)(sd.st_mode & 0777));
    }
    sv->lock_fd = app_state_lock(sv->o.state_dir, err, sizeof(err));
    if (sv->lock_fd < 0) {
        app_errorf("%s", err);
        return -1;
    }
    if (!sv->o.initiator[0] &&
        app_initiator_name_load(sv->o.state_dir, true, sv->o.initiator,
                                sizeof(sv->o.initiator), err, sizeof(err)) < 0) {
        app_errorf("%s", err);
        return -1;
    }
    ret = app_token_load(sv->o.token_file, sv->token, sizeof(sv->token), err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        return -1;
    }
    ret = app_state_load(sv->o.state_dir, st, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        return -1;
    }
    return 0;
}

/* The broker socket (--broker; STATE_DIR/broker.sock by default). 0, or -1 after saying why. */
static int serve_start_bsock(struct serve *sv)
{
    struct stk_bsock_config bc = { .path = sv->o.broker, .mode = 0660,
                                   .broker = sv->net.broker };
    char path[4200], err[400];

    if (!strcmp(sv->o.broker, "off"))
        return 0;
    if (!sv->o.broker[0]) {
        snprintf(path, sizeof(path), "%s/broker.sock", sv->o.state_dir);
        bc.path = path;
    }
    sv->bsock = stk_bsock_start(&bc, err, sizeof(err));
    if (!sv->bsock) {
        app_errorf("%s (--broker PATH names another place, --broker off runs without it)",
                   err);
        return -1;
    }
    return 0;
}

/*
 * The certificate directory of the servers that speak TLS: --tls-certificates DIR, or
 * STATE_DIR/tls/, made self-signed at the first start (for the API's and the NBD export's
 * addresses too). 0, or -errno with err.
 */
static int serve_tls_dir(struct serve *sv, char *dir, size_t dirlen, char *err, size_t errlen)
{
    struct sockspec api, nbd;
    const char *names[3] = { NULL, NULL, NULL };
    int ret, n = 0;

    if (sv->o.tls_certificates[0]) {
        snprintf(dir, dirlen, "%s", sv->o.tls_certificates);
        return 0;
    }
    snprintf(dir, dirlen, "%s/%s", sv->o.state_dir, APP_TLS_DIR);
    if (sockspec_parse(sv->o.api, 8080, &api) == 0 && !api.is_unix)
        names[n++] = api.host; /* the certificate is also for the API's address */
    if (sv->o.nbd_tls != NBDS_TLS_OFF && sockspec_parse(sv->o.nbd, 10809, &nbd) == 0 &&
        !nbd.is_unix)
        names[n++] = nbd.host; /* and the NBD export's */
    ret = app_tls_files_ensure(dir, names, err, errlen);
    if (ret == 1)
        log_info("serve", "made a self-signed tls certificate in %s", dir);
    else if (ret == 2)
        log_warn("serve", "made the self-signed tls certificate in %s again, for %s%s%s: the "
                 "one there did not name them all; clients that trusted the old certificate "
                 "must trust the new one", dir, names[0], n > 1 ? " and " : "",
                 n > 1 ? names[1] : "");
    return ret < 0 ? ret : 0;
}

/*
 * Start, step 1b: with --api-tls on, the API's certificate and key (serve_tls_dir). A
 * missing, unreadable or malformed file exits 2. 0, or -1 after printing why.
 */
static int serve_setup_tls(struct serve *sv)
{
    char dir[sizeof(sv->o.state_dir) + 8], err[APP_TLS_PATH_MAX + 200];
    int ret;

    if (!sv->o.api_tls)
        return 0;
    ret = serve_tls_dir(sv, dir, sizeof(dir), err, sizeof(err));
    if (ret >= 0)
        ret = app_tls_files_load(dir, &sv->tls, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        sv->fail_status = APP_EXIT_USAGE;
        return -1;
    }
    if (sv->tls.key_open_to_others)
        log_warn("serve", "the tls key %s can be read by other users (chmod 600 it)",
                 sv->tls.key_path);
    if (sv->tls.not_after < time(NULL))
        log_warn("serve", "the tls certificate %s has expired", sv->tls.cert_path);
    log_info("serve", "api tls certificate %s, sha-256 fingerprint %s", sv->tls.cert_path,
             sv->tls.fingerprint);
    return 0;
}

/*
 * Start, step 1c: with --nbd-tls on or require, the NBD server's credentials: --tls-psk's
 * keys, and the certificate of serve_tls_dir (with its ca-cert.pem, if any, for client
 * certificates). A missing, unreadable or malformed file exits 2 (the file and line named,
 * never a key). 0, or -1 after printing why.
 */
static int serve_setup_nbd_tls(struct serve *sv)
{
    char dir[sizeof(sv->o.state_dir) + 8], err[APP_TLS_PATH_MAX + 400];
    struct tls_creds_config cfg = {
        .psk_file = sv->o.tls_psk, .cert_dir = dir, .verify_peer = sv->o.tls_verify_peer,
    };
    int ret;

    if (sv->o.nbd_tls == NBDS_TLS_OFF)
        return 0;
    if (sv->o.tls_psk[0]) {
        /* a bad key file stops the start before a certificate is made for nothing */
        struct tls_creds_config psk = { .psk_file = sv->o.tls_psk };
        ret = tls_creds_load(&psk, &sv->nbd_creds, err, sizeof(err));
        tls_creds_free(sv->nbd_creds);
        sv->nbd_creds = NULL;
    } else {
        ret = 0;
    }
    if (ret >= 0)
        ret = serve_tls_dir(sv, dir, sizeof(dir), err, sizeof(err));
    if (ret >= 0)
        ret = tls_creds_load(&cfg, &sv->nbd_creds, err, sizeof(err));
    if (ret < 0) {
        app_errorf("--nbd-tls %s: %s", sv->o.nbd_tls == NBDS_TLS_ON ? "on" : "require", err);
        sv->fail_status = APP_EXIT_USAGE;
        return -1;
    }
    log_info("serve", "nbd tls %s: certificate in %s, %zu psk identities%s",
             sv->o.nbd_tls == NBDS_TLS_REQUIRE ? "required" : "offered", dir,
             tls_creds_psk_count(sv->nbd_creds),
             tls_creds_verify_peer(sv->nbd_creds) ? ", client certificates required" : "");
    return 0;
}

/* POST /api/v1/token: a new token in the token file (the API keeps it in memory). */
static int serve_token_renew(void *arg, char *tok, size_t toklen, char *err, size_t errlen)
{
    struct serve *sv = arg;

    return app_token_renew(sv->o.token_file, tok, toklen, err, errlen);
}

/*
 * Start, step 2: the TOE and the broker, with the saved port reservations; the saved
 * sessions move from *st to sv->pending for the restore thread. 0, or -1 after printing why.
 */
static int serve_start_net(struct serve *sv, struct app_state *st)
{
    char err[400];
    int ret;

    ret = app_net_start(&sv->o.net, !sv->o.net.no_toe, &sv->net, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s (the toe needs CAP_NET_ADMIN and /dev/net/tun; --no-toe runs on "
                   "the host stack only)", err);
        return -1;
    }
    sv->stage = SERVE_NET;
    for (size_t i = 0; i < st->nreservations; i++) {
        ret = stk_restore_reservation(sv->net.broker, &st->reservations[i]);
        if (ret < 0)
            log_warn("state", "cannot restore reservation %llu of \"%s\" (port %u): %s",
                     (unsigned long long)st->reservations[i].id, st->reservations[i].holder,
                     st->reservations[i].port, strerror(-ret));
    }
    sv->pending = st->sessions;
    sv->npending = st->nsessions;
    st->sessions = NULL;
    st->nsessions = 0;
    /* the TAP or macvtap is up: from here on an unprivileged user with CAP_NET_ADMIN */
    bool dropped;
    ret = app_priv_drop(sv->o.user, sv->o.state_dir, sv->o.token_file, sv->net.toe != NULL,
                        &dropped, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        return -1;
    }
    if (dropped)
        log_info("serve", "now running as user %s", sv->o.user);
    return serve_start_bsock(sv);
}

/*
 * Start, step 3: the storage pool (its loops and threads, a session manager and an NBD
 * server on each; only the first listens). 0, or -1 after printing why.
 */
static int serve_start_storage(struct serve *sv, const struct app_state *st)
{
    char err[400];
    struct sto_pool_config pc = {
        .threads = sv->o.storage_threads,
        .busy_poll_us = sv->o.busy_poll_us,
        .mgr = {
            .net = { serve_connect, serve_release, sv },
            .max_outstanding = sv->o.max_outstanding,
            .max_outstanding_writes = sv->o.max_outstanding_writes,
            .timeouts = sv->o.tmo.s,
            .replacement_timeout_ms = sv->o.tmo.replacement_ms,
            .initiator_name = sv->o.initiator,
        },
        .nbd_addr = sv->o.nbd, .nbd_lim = &sv->o.nbd_lim,
        .nbd_tls = sv->o.nbd_tls, .nbd_creds = sv->nbd_creds,
        .access = st->access, .naccess = st->naccess,
    };

    sv->pool = sto_pool_new(&pc, err, sizeof(err));
    if (!sv->pool) {
        app_errorf("%s", err);
        return -1;
    }
    sv->stage = SERVE_STORAGE;
    return 0;
}

/*
 * Start, step 4: the REST API (its volumes' nbd:// URIs name the NBD export's address),
 * then the restore thread, which sets the API ready once the saved sessions are back.
 * 0, or -1 after printing why.
 */
static int serve_start_api(struct serve *sv)
{
    struct sockspec nbd_spec;
    char err[400];

    /* serve_opt checked the spec: a TCP one has a host and a port */
    sockspec_parse(sv->o.nbd, 10809, &nbd_spec);
    const char *nbd_host = nbd_spec.is_unix ? sv->o.nbd : nbd_spec.host;
    uint16_t nbd_port = nbd_spec.is_unix ? 10809 : nbd_spec.port;
    struct api_config ac = {
        .listen = sv->o.api, .token = sv->token, .pool = sv->pool, .broker = sv->net.broker,
        .toe = sv->net.toe, .nbd_host = nbd_host, .nbd_port = nbd_port,
        .nbd_tls = sv->o.nbd_tls != NBDS_TLS_OFF,
        .state_dir = sv->o.state_dir,
        .limits = sv->o.api_lim, .info = &sv->info,
        .tls_cert_pem = sv->tls.cert_pem, .tls_key_pem = sv->tls.key_pem,
        .metrics_auth = sv->o.metrics_auth, .token_renew = serve_token_renew,
        .token_renew_arg = sv,
    };
    app_version_info(&sv->info);
    sv->info.toe_mode = !sv->net.toe ? "none" : sv->o.net.toe.uplink[0] ? "macvtap" : "tap";
    sv->info.toe_uplink = sv->net.toe && sv->o.net.toe.uplink[0] ? sv->o.net.toe.uplink : NULL;
    sv->info.toe_nat = sv->net.nat.table[0] != '\0';
    sv->info.tls_api = sv->tls.cert_pem != NULL;
    sv->info.tls_fingerprint = sv->tls.cert_pem ? sv->tls.fingerprint : NULL;
    app_toe_admin_fill(&ac);
    sv->api = api_server_start(&ac, err, sizeof(err));
    if (!sv->api) {
        app_errorf("cannot start the api on %s: %s", sv->o.api, err);
        return -1;
    }
    sv->stage = SERVE_API;
    log_info("serve", "toegw serving: api %s, nbd %s, state %s, toe %s, initiator %s",
             sv->o.api, sv->o.nbd, sv->o.state_dir, sv->net.toe ? sv->o.net.toe.ifname : "off",
             sv->o.initiator);
    if (pthread_create(&sv->restore_thread, NULL, restore_main, sv) == 0)
        sv->restore_running = true;
    else
        api_server_set_ready(sv->api, 1);
    return 0;
}

/* Start: each step in turn; the first to fail stops the start (serve_stop undoes the rest). */
static int serve_start(struct serve *sv, struct app_state *st, sigset_t *sigs)
{
    if (serve_setup(sv, st, sigs) < 0 || serve_setup_tls(sv) < 0 ||
        serve_setup_nbd_tls(sv) < 0 || serve_start_net(sv, st) < 0 ||
        serve_start_storage(sv, st) < 0 || serve_start_api(sv) < 0)
        return -1;
    return 0;
}

/* Run until SIGTERM or SIGINT. */
static void serve_run(struct serve *sv, const sigset_t *sigs)
{
    /* main thread: signals, the state file whenever something changed, the idle heap trim */
    app_heap_idle_init(&sv->heap, app_heap_now_ms());
    for (;;) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 500000000L };
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("serve", "%s: shutting down", sig == SIGTERM ? "sigterm" : "sigint");
            break;
        }
        state_save(sv);
        app_heap_idle_tick(&sv->heap, serve_activity(sv));
    }
}

/*
 * Stop: undo exactly what the start steps did (sv->stage), in reverse. From a full start:
 * not ready, the restore thread joined, the state saved, no new requests, every session
 * logged out, the API stopped, then the storage pool (loops, exports, managers) and the
 * stacks.
 */
static void serve_stop(struct serve *sv)
{
    switch (sv->stage) {
    case SERVE_API:
        api_server_set_ready(sv->api, 0);
        sv->stopping = true;
        if (sv->restore_running)
            pthread_join(sv->restore_thread, NULL);
        state_save(sv); /* the sessions as they are: restored at the next start */
        api_server_quiesce(sv->api); /* no new requests; handlers in flight finish */
        sto_pool_shutdown(sv->pool, SHUTDOWN_LOGOUT_MS);
        api_server_stop(sv->api);
        /* fall through */
    case SERVE_STORAGE:
        sto_pool_free(sv->pool);
        sv->pool = NULL;
        /* fall through */
    case SERVE_NET:
        stk_bsock_stop(sv->bsock);
        sv->bsock = NULL;
        app_net_stop(&sv->net);
        /* fall through */
    case SERVE_NOTHING:
        break;
    }
    sv->stage = SERVE_NOTHING;
}

/* Options, start, run, stop; then what the start loaded is wiped and freed. */
int app_cmd_serve(int argc, char **argv)
{
    struct serve *sv = calloc(1, sizeof(*sv));
    struct app_state st = { 0 };
    sigset_t sigs;
    int ret, status = APP_EXIT_FAILED;

    if (!sv)
        return APP_EXIT_FAILED;
    ret = app_serve_parse(argc, argv, &sv->o);
    if (!ret)
        ret = app_serve_protected(&sv->o);
    if (ret) {
        free(sv);
        return ret;
    }
    pthread_mutex_init(&sv->lock, NULL);
    sv->lock_fd = -1;

    if (serve_start(sv, &st, &sigs) == 0) {
        serve_run(sv, &sigs);
        status = APP_EXIT_OK;
    } else if (sv->fail_status) {
        status = sv->fail_status;
    }
    serve_stop(sv);

    app_state_clear(&st);
    if (sv->pending)
        explicit_bzero(sv->pending, sv->npending * sizeof(*sv->pending));
    free(sv->pending);
    app_state_text_free(sv->last_state);
    tls_creds_free(sv->nbd_creds);
    explicit_bzero(sv->token, sizeof(sv->token));
    app_tls_files_clear(&sv->tls);
    pthread_mutex_destroy(&sv->lock);
    if (sv->lock_fd >= 0)
        close(sv->lock_fd); /* the state dir is free for the next appliance */
    free(sv);
    if (status == APP_EXIT_OK)
        log_info("serve", "stopped");
    return status;
}
