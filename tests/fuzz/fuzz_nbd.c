/*
 * fuzz_nbd.c - the NBD server (storage/nbd.c): handshake, option haggling and the
 * transmission phase's request parser, driven over a real socket.
 *
 * A real nbds_server listens on a unix socket on the storage loop, exporting the volume of
 * a real manager session (storage/manager.c) logged in to an in-memory target
 * (memtarget.c: one 1 MiB LUN of 512-byte blocks). Each input is what one NBD client
 * sends after the server's greeting: its flags, options (EXPORT_NAME, GO, INFO, LIST,
 * STRUCTURED_REPLY, ABORT, anything else) and requests (READ, WRITE with its payload,
 * FLUSH, TRIM, WRITE_ZEROES, CACHE, DISC, anything else). The harness connects, writes the
 * input while reading whatever the server answers, half-closes, and runs the loop until the
 * server has closed the connection and the volume's I/O has settled.
 *
 * Properties: the server greets with NBDMAGIC/IHAVEOPT, it always ends the connection
 * (within 5 s of the input's end: never a hang), and no input breaks the volume under it:
 * the iSCSI session stays logged in on its one connection, and the initiator never sends
 * the target anything the protocol forbids (memtarget checks every PDU).
 * The export name of the volume is sto_volume_id(FUZZ_NBD_TARGET, FUZZ_NBD_LUN).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "storage/manager.h"
#include "storage/nbd.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_nbd.h"
#include "tests/fuzz/memtarget.h"

#define NBD_DEADLINE_MS 5000
#define SETTLE_ROUNDS 4

struct nbd_env {
    struct sto_loop *loop;
    struct memtgt *tgt;
    struct sto_mgr *mgr;
    struct nbds_server *srv;
    char dir[64];
    char path[96];
    atomic_bool created;
    int create_ret;
    struct sto_result res;
};

static struct nbd_env *env;

static void env_cleanup(void)
{
    if (env && env->path[0]) {
        unlink(env->path);
        rmdir(env->dir);
    }
}

static void *create_session(void *arg)
{
    struct nbd_env *e = arg;
    struct sto_session_req req = { .stack = STK_POLICY_HOST };
    char id[STO_ID_MAX];

    snprintf(req.portal, sizeof(req.portal), "198.51.100.1:3260");
    snprintf(req.target, sizeof(req.target), "%s", FUZZ_NBD_TARGET);
    e->create_ret = sto_mgr_session_create(e->mgr, &req, id, &e->res);
    atomic_store(&e->created, true);
    return NULL;
}

/* Once per process: loop, target, manager with its session and volume, NBD server. */
static struct nbd_env *env_get(void)
{
    struct sto_mgr_config cfg = { 0 };
    char err[256];
    pthread_t th;

    if (env)
        return env;
    fuzz_quiet_logs();
    env = calloc(1, sizeof(*env));
    if (!env || !(env->loop = sto_loop_new()) ||
        !(env->tgt = memtgt_new(FUZZ_NBD_LUN, FUZZ_NBD_BLOCK, FUZZ_NBD_BLOCKS)))
        abort();
    cfg.net = (struct sto_mgr_net){ memtgt_connect, memtgt_release, env->tgt };
    env->mgr = sto_mgr_new(env->loop, &cfg);
    if (!env->mgr)
        abort();
    /* the manager's calls wait for the loop: run it here while a thread makes the call */
    if (pthread_create(&th, NULL, create_session, env) != 0)
        abort();
    while (!atomic_load(&env->created))
        sto_loop_run_once(env->loop, 10);
    pthread_join(th, NULL);
    FUZZ_CHECK(env->create_ret == 0, "nbd fuzzer: no volume: %s", env->res.msg);

    snprintf(env->dir, sizeof(env->dir), "/tmp/toegw-fuzz-nbd.XXXXXX");
    if (!mkdtemp(env->dir))
        abort();
    snprintf(env->path, sizeof(env->path), "%s/sock", env->dir);
    atexit(env_cleanup);
    char addr[sizeof(env->path) + 8];
    snprintf(addr, sizeof(addr), "unix:%s", env->path);
    env->srv = nbds_server_new(env->loop, env->mgr, addr, NULL, err, sizeof(err));
    FUZZ_CHECK(env->srv != NULL, "nbd fuzzer: no server: %s", err);
    return env;
}

int fuzz_nbd(const uint8_t *data, size_t size)
{
    struct nbd_env *e = env_get();
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    uint8_t rb[65536], greeting[18];
    size_t sent = 0, got = 0;
    bool wr_closed = false, closed = false;
    uint64_t deadline = 0, pdus;
    struct nbds_stats st;
    int fd, idle;

    memtgt_clear(e->tgt);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    if (strlen(e->path) >= sizeof(un.sun_path))
        abort();
    memcpy(un.sun_path, e->path, strlen(e->path) + 1);
    FUZZ_CHECK(connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0,
               "nbd fuzzer: cannot connect: %s", strerror(errno));
    while (!closed) {
        bool progress = false;
        ssize_t n;

        sto_loop_run_once(e->loop, 0);
        if (sent < size && !wr_closed) {
            n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += (size_t)n;
                progress = true;
            } else if (n < 0 && errno != EAGAIN) {
                wr_closed = true; /* the server hung up: what is left is never read */
            }
        } else if (!wr_closed) {
            shutdown(fd, SHUT_WR);
            wr_closed = true;
        }
        if (wr_closed && !deadline)
            deadline = sto_now_ms() + NBD_DEADLINE_MS;
        n = recv(fd, rb, sizeof(rb), MSG_DONTWAIT);
        if (n > 0) {
            if (got < sizeof(greeting))
                memcpy(greeting + got, rb,
                       (size_t)n < sizeof(greeting) - got ? (size_t)n : sizeof(greeting) - got);
            got += (size_t)n;
            progress = true;
        } else if (n == 0 || errno != EAGAIN) {
            closed = true;
        }
        if (deadline && sto_now_ms() > deadline)
            fuzz_fail("nbd: the server neither finished nor closed within %d ms of the "
                      "client's end (%zu of %zu bytes taken)", NBD_DEADLINE_MS, sent, size);
        if (!progress && !closed)
            sto_loop_run_once(e->loop, 1);
    }
    close(fd);
    FUZZ_CHECK(got >= sizeof(greeting), "nbd: the server closed after %zu bytes of greeting",
               got);
    FUZZ_CHECK(!memcmp(greeting, "NBDMAGICIHAVEOPT", 16), "nbd: not a newstyle greeting");

    /* the client is gone: let its requests finish and the server forget it */
    deadline = sto_now_ms() + NBD_DEADLINE_MS;
    for (idle = 0; idle < SETTLE_ROUNDS;) {
        pdus = memtgt_pdus(e->tgt);
        sto_loop_run_once(e->loop, 0);
        nbds_server_stats(e->srv, &st);
        idle = st.clients_now == 0 && memtgt_idle(e->tgt) && memtgt_pdus(e->tgt) == pdus
                   ? idle + 1 : 0;
        if (sto_now_ms() > deadline)
            fuzz_fail("nbd: the volume's i/o did not settle within %d ms", NBD_DEADLINE_MS);
    }
    FUZZ_CHECK(memtgt_logged_in(e->tgt) && memtgt_connections(e->tgt) == 1,
               "nbd: the volume's iscsi session dropped (%u connections)",
               memtgt_connections(e->tgt));
    return 0;
}
