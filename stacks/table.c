/*
 * table.c - one connection table and one set of TCP counters for both stacks.
 *
 * The host's side comes from the kernel: every IPv4 TCP socket of the machine through
 * netlink sock_diag (with tcp_info for byte counts), the owning process from /proc, and
 * the TCP MIB from /proc/net/snmp. The TOE's side comes from the offload engine's own table
 * and MIB counters (its stk_offload_ops). Host tools cannot see the TOE's connections; this
 * table can.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "stacks/stacks_int.h"

static const char *const tcp_states[] = {
    "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
    "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
};

struct row_vec {
    struct stk_conn_row *v;
    size_t n, cap;
};

static struct stk_conn_row *row_add(struct row_vec *rv)
{
    if (rv->n == rv->cap) {
        size_t cap = rv->cap ? rv->cap * 2 : 64;
        struct stk_conn_row *v = realloc(rv->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        rv->v = v;
        rv->cap = cap;
    }
    memset(&rv->v[rv->n], 0, sizeof(rv->v[0]));
    return &rv->v[rv->n++];
}

/* inode → "pid/comm" for the sockets of every process we can see. */
struct owner_map {
    unsigned long *inode;
    char (*name)[STK_NAME_MAX];
    size_t n, cap;
};

static void owner_map_build(struct owner_map *m)
{
    DIR *proc = opendir("/proc");
    struct dirent *de;

    if (!proc)
        return;
    while ((de = readdir(proc))) {
        char path[300], comm[32] = "?";
        DIR *fds;
        struct dirent *fe;
        FILE *f;
        char *end;
        long pid = strtol(de->d_name, &end, 10);

        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
        f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof(comm), f))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
        fds = opendir(path);
        if (!fds)
            continue;
        while ((fe = readdir(fds))) {
            char link[64], fdpath[600];
            ssize_t l;
            unsigned long ino;
            snprintf(fdpath, sizeof(fdpath), "%s/%s", path, fe->d_name);
            l = readlink(fdpath, link, sizeof(link) - 1);
            if (l <= 0)
                continue;
            link[l] = '\0';
            if (sscanf(link, "socket:[%lu]", &ino) != 1)
                continue;
            if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 256;
                unsigned long *iv = realloc(m->inode, cap * sizeof(*iv));
                if (!iv)
                    break;
                m->inode = iv;
                char (*nv)[STK_NAME_MAX] = realloc(m->name, cap * sizeof(*nv));
                if (!nv)
                    break;
                m->name = nv;
                m->cap = cap;
            }
            m->inode[m->n] = ino;
            snprintf(m->name[m->n], STK_NAME_MAX, "%ld/%s", pid, comm);
            m->n++;
        }
        closedir(fds);
    }
    closedir(proc);
}

static void owner_map_clear(struct owner_map *m)
{
    free(m->inode);
    free(m->name);
    memset(m, 0, sizeof(*m));
}

/* Sort by inode (insertion sort over an index is enough for a few thousand sockets). */
static void owner_map_sort(struct owner_map *m)
{
    for (size_t i = 1; i < m->n; i++) {
        unsigned long ino = m->inode[i];
        char name[STK_NAME_MAX];
        size_t j = i;
        memcpy(name, m->name[i], sizeof(name));
        while (j > 0 && m->inode[j - 1] > ino) {
            m->inode[j] = m->inode[j - 1];
            memcpy(m->name[j], m->name[j - 1], sizeof(name));
            j--;
        }
        m->inode[j] = ino;
        memcpy(m->name[j], name, sizeof(name));
    }
}

static const char *owner_lookup(const struct owner_map *m, unsigned long ino)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->inode[mid] < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->inode[lo] == ino ? m->name[lo] : NULL;
}

/*
 * Walking every /proc/PID/fd costs milliseconds: the map is rebuilt at most once a second
 * and shared by all callers (API threads list connections concurrently).
 */
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct owner_map owners_cache;
static uint64_t owners_built_ms;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Rebuild the map when it is max_age_ms old or older; owners_lock held. */
static void owners_refresh(uint64_t max_age_ms)
{
    uint64_t now = mono_ms();

    if (!owners_built_ms || now - owners_built_ms >= max_age_ms) {
        owner_map_clear(&owners_cache);
        owner_map_build(&owners_cache);
        owner_map_sort(&owners_cache);
        owners_built_ms = now;
    }
}

/* Returns with owners_lock held; the caller unlocks after its lookups. */
static const struct owner_map *owners_get(void)
{
    pthread_mutex_lock(&owners_lock);
    owners_refresh(1000);
    return &owners_cache;
}

/*
 * Sockets the map does not know are newer than it (a listing every second, as the API's
 * history takes, keeps the map warm but up to a second old): rebuild it once, if it is at
 * least OWNERS_MISS_MS old, and look those rows up again. owners_lock held.
 */
#define OWNERS_MISS_MS 100
static void owners_fill_missing(struct stk_conn_row *rows, size_t n)
{
    bool missing = false;
    unsigned ino;

    for (size_t i = 0; i < n && !missing; i++)
        missing = !rows[i].owner[0] && sscanf(rows[i].id, "host-%u", &ino) == 1 && ino;
    if (!missing || mono_ms() - owners_built_ms < OWNERS_MISS_MS)
        return;
    owners_refresh(0);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].owner[0] || sscanf(rows[i].id, "host-%u", &ino) != 1 || !ino)
            continue;
        const char *own = owner_lookup(&owners_cache, ino);
        snprintf(rows[i].owner, sizeof(rows[i].owner), "%s", own ? own : "");
    }
}

/* Dump the kernel's IPv4 TCP sockets through sock_diag; with_owners: name each one's process. */
static int host_rows(struct row_vec *rv, bool with_owners)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nlh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
        .req = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP,
                 .idiag_states = ~0u, .idiag_ext = 1 << (INET_DIAG_INFO - 1) },
    };
    const struct owner_map *owners = NULL;
    char *buf;
    const size_t buflen = 65536;
    int fd, ret = 0;
    bool done = false;

    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* never hang an api thread */
    buf = malloc(buflen);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    if (send(fd, &msg, sizeof(msg), 0) < 0) {
        ret = -errno;
        free(buf);
        close(fd);
        return ret;
    }
    if (with_owners)
        owners = owners_get();
    while (!done) {
        ssize_t len = recv(fd, buf, buflen, 0);
        if (len < 0) {
            ret = -errno;
            break;
        }
        if (len == 0)
            break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                done = true;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(h);
                ret = e->error ? e->error : -EIO;
                done = true;
                break;
            }
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            struct inet_diag_msg *d = NLMSG_DATA(h);
            struct stk_conn_row *r = row_add(rv);
            if (!r) {
                ret = -ENOMEM;
                done = true;
                break;
            }
            r->stack = STK_STACK_HOST;
            snprintf(r->id, sizeof(r->id), "host-%u", d->idiag_inode);
            r->local.sin_family = r->remote.sin_family = AF_INET;
            memcpy(&r->local.sin_addr, d->id.idiag_src, 4);
            memcpy(&r->remote.sin_addr, d->id.idiag_dst, 4);
            r->local.sin_port = d->id.idiag_sport;
            r->remote.sin_port = d->id.idiag_dport;
            snprintf(r->state, sizeof(r->state), "%s",
                     d->idiag_state < sizeof(tcp_states) / sizeof(tcp_states[0])
                         ? tcp_states[d->idiag_state] : "UNKNOWN");
            const char *own = owners && d->idiag_inode ? owner_lookup(owners, d->idiag_inode)
                                                       : NULL;
            snprintf(r->owner, sizeof(r->owner), "%s", own ? own : "");
            /* attributes: tcp_info carries the byte counters */
            int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*d)));
            for (struct rtattr *a = (struct rtattr *)(d + 1); RTA_OK(a, alen);
                 a = RTA_NEXT(a, alen)) {
                if (a->rta_type != INET_DIAG_INFO)
                    continue;
                struct tcp_info ti;
                size_t tl = RTA_PAYLOAD(a) < sizeof(ti) ? RTA_PAYLOAD(a) : sizeof(ti);
                memset(&ti, 0, sizeof(ti));
                memcpy(&ti, RTA_DATA(a), tl);
                /*
                 * tcpi_bytes_acked counts our SYN, and our FIN once it is acked: the
                 * table shows data bytes only, as the TOE's rows do.
                 */
                uint64_t acked = ti.tcpi_bytes_acked;
                int ctl = acked > 0;
                if (d->idiag_state == 5 /* FIN_WAIT2 */ || d->idiag_state == 6 /* TIME_WAIT */)
                    ctl++;
                r->bytes_in = ti.tcpi_bytes_received;
                r->bytes_out = acked > (uint64_t)ctl ? acked - (uint64_t)ctl : 0;
            }
        }
    }
    if (owners) {
        if (ret >= 0)
            owners_fill_missing(rv->v, rv->n);
        pthread_mutex_unlock(&owners_lock);
    }
    free(buf);
    close(fd);
    return ret;
}

/* The offload engine's connections, appended as rows of the TOE. */
static int offload_rows(const struct stk_offload_ops *ops, struct row_vec *rv)
{
    struct stk_conn_row *got;
    size_t n;
    int ret = ops->list_conns(ops->ctx, &got, &n);

    if (ret < 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        struct stk_conn_row *r = row_add(rv);
        if (!r) {
            free(got);
            return -ENOMEM;
        }
        r->stack = STK_STACK_TOE;
        snprintf(r->id, sizeof(r->id), "toe-%zu-%u", i, ntohs(got[i].local.sin_port));
        r->local = got[i].local;
        r->remote = got[i].remote;
        snprintf(r->state, sizeof(r->state), "%s", got[i].state);
        r->bytes_in = got[i].bytes_in;
        r->bytes_out = got[i].bytes_out;
    }
    free(got);
    return 0;
}

/*
 * A table asked for many times a second (a dashboard, a monitoring loop) is served from a
 * snapshot at most TABLE_CACHE_MS old: each listing walks the kernel's sockets, and that CPU
 * is better spent on I/O. A snapshot taken without the host sockets' processes
 * (stk_list_connection_counters) serves only callers that do not need them.
 */
#define TABLE_CACHE_MS 50

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stk_conn_row *table_cache;
static size_t table_cache_n;
static uint64_t table_cache_ms;
static const struct stk_broker *table_cache_owner;
static bool table_cache_has_owners;

static int list_connections_now(struct stk_broker *b, bool with_owners,
                                struct stk_conn_row **out, size_t *n);

static int list_connections(struct stk_broker *b, bool with_owners, struct stk_conn_row **out,
                            size_t *n)
{
    uint64_t now = mono_ms();
    int ret = 0;

    pthread_mutex_lock(&table_lock);
    if (!table_cache || table_cache_owner != b || now - table_cache_ms >= TABLE_CACHE_MS ||
        (with_owners && !table_cache_has_owners)) {
        struct stk_conn_row *rows;
        size_t nrows;
        ret = list_connections_now(b, with_owners, &rows, &nrows);
        if (ret == 0) {
            free(table_cache);
            table_cache = rows;
            table_cache_n = nrows;
            table_cache_ms = now;
            table_cache_owner = b;
            table_cache_has_owners = with_owners;
        }
    }
    if (ret == 0) {
        *out = malloc((table_cache_n ? table_cache_n : 1) * sizeof(**out));
        if (*out) {
            memcpy(*out, table_cache, table_cache_n * sizeof(**out));
            *n = table_cache_n;
        } else {
            ret = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return ret;
}

int stk_list_connections(struct stk_broker *b, struct stk_conn_row **out, size_t *n)
{
    return list_connections(b, true, out, n);
}

int stk_list_connection_counters(struct stk_broker *b, struct stk_conn_row **out, size_t *n)
{
    return list_connections(b, false, out, n);
}

static int list_connections_now(struct stk_broker *b, bool with_owners,
                                struct stk_conn_row **out, size_t *n)
{
    struct row_vec rv = { 0 };
    struct stk_offload_ops off;
    bool has_off = b && stk_broker_offload(b, &off);
    int ret;

    ret = host_rows(&rv, with_owners);
    if (ret == 0 && has_off)
        ret = offload_rows(&off, &rv);
    if (ret < 0) {
        free(rv.v);
        return ret;
    }
    if (b)
        stk_broker_annotate(b, rv.v, rv.n);
    *out = rv.v;
    *n = rv.n;
    return 0;
}

/* Parse the "Tcp:" lines of /proc/net/snmp (a header line, then a value line). */
static int host_mib(struct stk_tcp_counters *out)
{
    char hdr[1024], val[1024];
    FILE *f = fopen("/proc/net/snmp", "r");
    bool found = false;

    if (!f)
        return -errno;
    while (fgets(hdr, sizeof(hdr), f)) {
        if (strncmp(hdr, "Tcp:", 4) != 0 || !fgets(val, sizeof(val), f))
            continue;
        char *hs, *vs, *h = strtok_r(hdr + 4, " \n", &hs), *v = strtok_r(val + 4, " \n", &vs);
        for (; h && v; h = strtok_r(NULL, " \n", &hs), v = strtok_r(NULL, " \n", &vs)) {
            uint64_t x = strtoull(v, NULL, 10);
            if (!strcmp(h, "ActiveOpens")) out->active_opens = x;
            else if (!strcmp(h, "PassiveOpens")) out->passive_opens = x;
            else if (!strcmp(h, "AttemptFails")) out->attempt_fails = x;
            else if (!strcmp(h, "EstabResets")) out->estab_resets = x;
            else if (!strcmp(h, "CurrEstab")) out->curr_estab = x;
            else if (!strcmp(h, "InSegs")) out->in_segs = x;
            else if (!strcmp(h, "OutSegs")) out->out_segs = x;
            else if (!strcmp(h, "RetransSegs")) out->retrans_segs = x;
            else if (!strcmp(h, "InErrs")) out->in_errs = x;
            else if (!strcmp(h, "OutRsts")) out->out_rsts = x;
        }
        found = true;
        break;
    }
    fclose(f);
    return found ? 0 : -ENOENT;
}

int stk_tcp_counters(struct stk_broker *b, enum stk_stack stack, struct stk_tcp_counters *out)
{
    struct stk_offload_ops off;

    memset(out, 0, sizeof(*out));
    if (stack == STK_STACK_HOST)
        return host_mib(out);
    if (!b || !stk_broker_offload(b, &off))
        return -ENODEV;
    return off.tcp_counters(off.ctx, out);
}
