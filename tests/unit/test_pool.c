/*
 * test_pool.c - the storage pool (storage/pool.h) without a target: its threads and their
 * names, calls that find nothing on any loop, a failed login on the loop a target is placed
 * on (which leaves no placement behind), access changes for unknown volumes, the NBD export of several loops answering a
 * listing, and a pool freed with an NBD client still in its handshake.
 * (Sessions and volumes spread over loops, with real targets: test_storage_threads.sh.)
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/be.h"
#include "common/log.h"
#include "storage/pool.h"

static char sock_path[108];

static struct sto_pool *pool_new(unsigned threads)
{
    struct sto_pool_config cfg = { .threads = threads };
    char addr[128], err[256];
    struct sto_pool *p;

    log_set_level(LOG_LVL_ERROR);
    snprintf(sock_path, sizeof(sock_path), "/tmp/toegw-test-pool-%d.sock", (int)getpid());
    unlink(sock_path);
    snprintf(addr, sizeof(addr), "unix:%s", sock_path);
    cfg.nbd_addr = addr;
    p = sto_pool_new(&cfg, err, sizeof(err));
    cr_assert(p != NULL, "sto_pool_new: %s", err);
    return p;
}

static void pool_free(struct sto_pool *p)
{
    sto_pool_free(p);
    unlink(sock_path);
}

/* Threads of this process named toegw-sto*. */
static int storage_threads_named(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    cr_assert(d != NULL);
    while ((e = readdir(d))) {
        char path[300], comm[32] = "";
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "toegw-sto", 9))
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

Test(pool, threads_are_made_named_and_joined)
{
    struct sto_pool *p = pool_new(3);

    cr_expect_eq(sto_pool_threads(p), 3);
    cr_expect_eq(storage_threads_named(), 3);
    pool_free(p);
    cr_expect_eq(storage_threads_named(), 0);
}

Test(pool, default_is_one_per_cpu_it_may_run_on)
{
    cpu_set_t set;
    long cpus;
    struct sto_pool *p;

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cpus = CPU_COUNT(&set);
    p = pool_new(0);
    cr_expect_eq((long)sto_pool_threads(p), cpus > 64 ? 64 : cpus);
    pool_free(p);
}

/* Restricted to one CPU (taskset, a cpuset), the default is one loop, however many cores
 * the machine has. Each test runs in a process of its own, so the mask dies with it. */
Test(pool, default_follows_a_narrowed_affinity)
{
    cpu_set_t one;
    struct sto_pool *p;
    int cpu = sched_getcpu(); /* always one this process may run on */

    cr_assert_geq(cpu, 0);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    p = pool_new(0);
    cr_expect_eq(sto_pool_threads(p), 1);
    pool_free(p);
}

Test(pool, nothing_is_found_on_any_loop)
{
    struct sto_pool *p = pool_new(3);
    struct sto_session_view *sv = NULL, one;
    struct sto_volume_view *vv = NULL, vone;
    struct sto_vol_access *acc = NULL;
    struct sto_result res;
    struct nbds_stats st;
    uint8_t buf[512];
    size_t n = 99;

    cr_expect_eq(sto_pool_list_sessions(p, &sv, &n), 0);
    cr_expect_eq(n, 0);
    free(sv);
    cr_expect_eq(sto_pool_list_volumes(p, &vv, &n), 0);
    cr_expect_eq(n, 0);
    free(vv);
    cr_expect_eq(sto_pool_get_session(p, "s-000000000000", &one), -ENOENT);
    cr_expect_eq(sto_pool_session_delete(p, "s-000000000000", &res), -ENOENT);
    cr_expect_eq(res.cls, STO_ERR_NOT_FOUND);
    cr_expect_eq(sto_pool_get_volume(p, "v-0000000000000000", &vone), -ENOENT);
    cr_expect(sto_pool_volume_read(p, "v-0000000000000000", 0, 512, buf, &res) < 0);
    cr_expect_eq(res.cls, STO_ERR_NOT_FOUND);
    struct sto_access_patch patch = { .set_read_only = true, .read_only = true };
    cr_expect_eq(sto_pool_volume_set_access(p, "v-0000000000000000", &patch, &res), -ENOENT);
    cr_expect_eq(sto_pool_export_access(p, &acc, &n), 0);
    cr_expect_eq(n, 0);
    free(acc);
    sto_pool_nbd_stats(p, &st);
    cr_expect_eq(st.clients_now, 0);
    cr_expect(strncmp(sto_pool_initiator(p), "iqn.", 4) == 0);
    pool_free(p);
}

/* A login that fails leaves no session, and the same target may be tried again. */
Test(pool, failed_login_leaves_nothing_behind)
{
    struct sto_pool *p = pool_new(2);
    struct sto_session_req req = { .stack = STK_POLICY_HOST };
    struct sto_session_view *sv = NULL;
    struct sto_result res;
    char id[STO_ID_MAX];
    size_t n = 99;

    snprintf(req.portal, sizeof(req.portal), "127.0.0.1:1");
    snprintf(req.target, sizeof(req.target), "iqn.2024-01.org.example:nobody");
    for (int i = 0; i < 2; i++) {
        cr_expect(sto_pool_session_create(p, &req, id, &res) < 0);
        cr_expect_eq(res.cls, STO_ERR_UNREACHABLE, "try %d: class %d (%s)", i, res.cls,
                     res.msg);
    }
    cr_expect_eq(sto_pool_list_sessions(p, &sv, &n), 0);
    cr_expect_eq(n, 0);
    free(sv);
    cr_expect_eq(sto_pool_targets_placed(p), 0, "a failed login left its target placed");
    pool_free(p);
}

/* Logins to 200 targets that all fail leave no placement behind (it would grow forever). */
Test(pool, failed_logins_leave_no_placement)
{
    struct sto_pool *p = pool_new(2);
    struct sto_session_req req = { .stack = STK_POLICY_HOST };
    struct sto_result res;
    char id[STO_ID_MAX];

    snprintf(req.portal, sizeof(req.portal), "127.0.0.1:1");
    for (int i = 0; i < 200; i++) {
        snprintf(req.target, sizeof(req.target), "iqn.2024-01.org.example:nobody.%d", i);
        cr_expect(sto_pool_session_create(p, &req, id, &res) < 0);
    }
    cr_expect_eq(sto_pool_targets_placed(p), 0, "%zu targets still placed",
                 sto_pool_targets_placed(p));
    /* and deleting what is not there says so */
    cr_expect_eq(sto_pool_session_delete(p, "s-nothing", &res), -ENOENT);
    cr_expect_eq(res.cls, STO_ERR_NOT_FOUND);
    cr_expect(strstr(res.msg, "no session") != NULL, "%s", res.msg);
    pool_free(p);
}

static int nbd_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

static void read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, (uint8_t *)buf + got, len - got);
        cr_assert(r > 0, "the server closed the connection");
        got += (size_t)r;
    }
}

/* The listening loop answers NBD_OPT_LIST (nothing) and an unknown export's NBD_OPT_GO. */
Test(pool, nbd_answers_on_the_first_loop)
{
    struct sto_pool *p = pool_new(3);
    int fd = nbd_connect();
    uint8_t hello[18], flags[4] = { 0, 0, 0, 3 }, opt[16 + 64], rep[20];
    const char *name = "v-0000000000000000";
    uint32_t nl = (uint32_t)strlen(name);

    read_full(fd, hello, sizeof(hello));
    cr_expect_eq(be_get64(hello), 0x4e42444d41474943ull);
    cr_assert(write(fd, flags, 4) == 4);
    be_put64(opt, 0x49484156454f5054ull);
    be_put32(opt + 8, 3);                          /* NBD_OPT_LIST */
    be_put32(opt + 12, 0);
    cr_assert(write(fd, opt, 16) == 16);
    read_full(fd, rep, 20);
    cr_expect_eq(be_get32(rep + 12), 1, "LIST with no volume: ACK");
    be_put32(opt + 8, 7);                          /* NBD_OPT_GO */
    be_put32(opt + 12, 4 + nl + 2);
    be_put32(opt + 16, nl);
    memcpy(opt + 20, name, nl);
    be_put16(opt + 20 + nl, 0);
    cr_assert(write(fd, opt, 16 + 4 + nl + 2) == (ssize_t)(16 + 4 + nl + 2));
    read_full(fd, rep, 20);
    cr_expect_eq(be_get32(rep + 12), 0x80000006u, "GO of an unknown export: ERR_UNKNOWN");
    close(fd);
    pool_free(p);
}

/* Freed with a client mid-handshake: it is closed, nothing leaks or hangs. */
Test(pool, freed_with_a_client_in_its_handshake)
{
    struct sto_pool *p = pool_new(2);
    int fd = nbd_connect();
    uint8_t hello[18], b;

    read_full(fd, hello, sizeof(hello));
    pool_free(p);
    cr_expect(read(fd, &b, 1) <= 0, "the connection is closed once the pool is gone");
    close(fd);
}
