/*
 * cmd_perf.c - `toegw perf URL`: a fixed number of SCSI reads or writes kept in flight for a
 * number of seconds, sequential or random, with per-second and summary figures (iops, MB/s,
 * CPU) in the form iscsi-perf prints, or as JSON.
 */
#include "appliance/cli_int.h"
#include "appliance/perf_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

struct perf_job {
    struct app_io_job io;
    struct app_cli_opts *o;
    struct app_io_slot *slots;
    uint64_t next_lba;
    uint64_t max_lba;
    uint64_t ios, bytes, errors;
    uint64_t seed;
    uint64_t *t_submit;   /* per slot: when its request was submitted (ns) */
    struct app_lat lat;
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

static int perf_issue(struct perf_job *p, struct app_io_slot *slot)
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
    p->t_submit[slot - p->slots] = sto_now_ns();
    return isc_session_submit(p->io.cs->s, &req);
}

static struct perf_job *perf_current; /* the one job of this process */

static void perf_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct perf_job *p = perf_current;
    struct app_io_slot *slot = arg;

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
    app_lat_add(&p->lat, sto_now_ns() - p->t_submit[slot - p->slots]);
    if (!p->stopping && perf_issue(p, slot) < 0)
        p->stopping = true;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* CPU of the run, split by role (seconds): see perf_report. */
struct perf_cpu {
    struct rusage ru;
    double driver, adapter;
};

static void perf_cpu_sample(struct perf_cpu *c)
{
    getrusage(RUSAGE_SELF, &c->ru);
    c->driver = app_cpu_this_thread();
    c->adapter = app_cpu_threads_named("toe-fw");
}

/*
 * The summary. CPU by role: the storage loop runs on this thread (cpu_driver_s: the host CPU
 * the initiator costs), the TOE's firmware thread is the adapter's processor (cpu_adapter_s,
 * 0 on the host stack), cpu_other_s is the rest of the process (broker, logging).
 */
static void perf_report(struct perf_job *p, struct app_cli_session *cs, double elapsed,
                        const struct perf_cpu *c0, const struct perf_cpu *c1)
{
    struct app_cli_opts *o = p->o;
    double cpu_user = tv_s(c1->ru.ru_utime) - tv_s(c0->ru.ru_utime);
    double cpu_sys = tv_s(c1->ru.ru_stime) - tv_s(c0->ru.ru_stime);
    double drv = c1->driver - c0->driver, ad = c1->adapter - c0->adapter;
    double other = cpu_user + cpu_sys - drv - ad;
    double iops = (double)p->ios / elapsed, mbs = (double)p->bytes / elapsed / 1e6;
    const struct stk_conn *conn = isc_session_conn(cs->s);

    app_lat_finish(&p->lat);
    if (other < 0)
        other = 0; /* rusage and the per-thread clocks tick differently */
    if (o->json) {
        printf("{\"iops\":%.0f,\"mb_per_s\":%.2f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
               "\"cpu_driver_s\":%.3f,\"cpu_adapter_s\":%.3f,\"cpu_other_s\":%.3f,"
               "\"driver_us_per_io\":%.2f,\"adapter_us_per_io\":%.2f,"
               "\"lat_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
               "\"p999\":%.1f,\"max\":%.1f,\"samples\":%zu},"
               "\"seconds\":%.3f,\"ios\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"block_size\":%u,"
               "\"blocks\":%u,\"inflight\":%u,\"write\":%s,\"random\":%s,\"stack\":\"%s\","
               "\"errors\":%" PRIu64 "}\n",
               iops, mbs, cpu_user, cpu_sys, drv, ad, other,
               p->ios ? drv * 1e6 / (double)p->ios : 0, p->ios ? ad * 1e6 / (double)p->ios : 0,
               app_lat_mean_us(&p->lat), app_lat_pct(&p->lat, 0.5), app_lat_pct(&p->lat, 0.9),
               app_lat_pct(&p->lat, 0.99), app_lat_pct(&p->lat, 0.999),
               app_lat_pct(&p->lat, 1.0), p->lat.n, elapsed, p->ios, p->bytes,
               p->io.li.cap.block_size, o->blocks, o->inflight, o->write ? "true" : "false",
               o->random ? "true" : "false", conn ? stk_stack_name(conn->stack) : "none",
               p->errors);
    } else {
        printf("[SUMMARY] %.1f s, iops %.0f, %.2f MB/s, cpu %.2f s user + %.2f s sys\n",
               elapsed, iops, mbs, cpu_user, cpu_sys);
        printf("[CPU] driver thread %.2f s (%.2f us/io), adapter firmware %.2f s, other %.2f s\n",
               drv, p->ios ? drv * 1e6 / (double)p->ios : 0, ad, other);
        printf("[LATENCY] us: mean %.1f p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
               app_lat_mean_us(&p->lat), app_lat_pct(&p->lat, 0.5), app_lat_pct(&p->lat, 0.9),
               app_lat_pct(&p->lat, 0.99), app_lat_pct(&p->lat, 0.999),
               app_lat_pct(&p->lat, 1.0));
    }
}

int app_cmd_perf(int argc, char **argv)
{
    struct app_cli_opts o;
    struct app_cli_session cs;
    struct perf_job p = { 0 };
    const char *url;
    struct perf_cpu c0, c1;
    int ret;

    ret = app_cli_parse_opts(argc, argv, "toegw perf URL [options]",
                             APP_CLI_COMMON | APP_CLI_PERF | APP_CLI_JSON, &o, &url);
    if (ret)
        return ret;
    ret = app_io_open(&o, url, &cs, &p.io);
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
        app_io_close(&p.io);
        return APP_EXIT_USAGE;
    }
    p.max_lba = p.io.li.cap.blocks - o.blocks;
    p.seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    p.slots = calloc(o.inflight, sizeof(*p.slots));
    p.t_submit = calloc(o.inflight, sizeof(*p.t_submit));
    if (!p.slots || !p.t_submit || app_lat_init(&p.lat, 4u << 20) < 0) {
        app_errorf("out of memory");
        app_io_close(&p.io);
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

    perf_cpu_sample(&c0);
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
    perf_cpu_sample(&c1);

    ret = APP_EXIT_OK;
    if (isc_session_state(cs.s) != ISC_STATE_LOGGED_IN) {
        app_errorf("perf stopped: %s", isc_session_error(cs.s));
        ret = APP_EXIT_FAILED;
    } else if (p.errors) {
        app_errorf("perf stopped after an error: %s", p.err);
        ret = APP_EXIT_FAILED;
    }
    perf_report(&p, &cs, elapsed, &c0, &c1);
    for (uint32_t i = 0; i < o.inflight; i++)
        free(p.slots[i].buf);
    free(p.slots);
    free(p.t_submit);
    app_lat_free(&p.lat);
    app_io_close(&p.io);
    return ret;
}
