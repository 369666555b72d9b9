/*
 * cmd_io.c - `toegw read` and `toegw write`: a byte range of a LUN to stdout, or stdin to a
 * LUN, as pipelined SCSI commands (APP_IO_SLOTS in flight), whole blocks on the wire.
 */
#include "appliance/cli_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void io_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct app_io_slot *slot = arg;

    (void)s;
    slot->res = *r;
    slot->done = true;
}

static int io_submit(struct app_io_job *j, struct app_io_slot *slot, bool write)
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
static int io_check(struct app_io_job *j, struct app_io_slot *slot, bool write)
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
    struct app_cli_opts o;
    struct app_cli_session cs;
    struct app_io_job j;
    const char *url;
    uint64_t start, end, next, emit;
    unsigned head = 0, tail = 0;
    int ret, status = APP_EXIT_OK;

    ret = app_cli_parse_opts(argc, argv, "toegw read URL [options]",
                             APP_CLI_COMMON | APP_CLI_OFFSET | APP_CLI_LENGTH, &o, &url);
    if (ret)
        return ret;
    ret = app_io_open(&o, url, &cs, &j);
    if (ret)
        return ret;
    if (!o.have_length)
        o.length = o.offset <= j.li.size_bytes ? j.li.size_bytes - o.offset : 0;
    if (o.offset > j.li.size_bytes || o.length > j.li.size_bytes - o.offset) {
        app_errorf("read of %" PRIu64 " bytes at offset %" PRIu64 " is past the end of "
                   "lun %u (%" PRIu64 " bytes)", o.length, o.offset, j.li.lun, j.li.size_bytes);
        app_io_close(&j);
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
        while (j.busy < APP_IO_SLOTS && next < end && status == APP_EXIT_OK) {
            struct app_io_slot *slot = &j.slots[head % APP_IO_SLOTS];
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
        struct app_io_slot *slot = &j.slots[tail % APP_IO_SLOTS];
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
    app_io_close(&j);
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

static int sync_cache(struct app_io_job *j)
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
    struct app_cli_opts o;
    struct app_cli_session cs;
    struct app_io_job j;
    const char *url;
    struct stat st;
    uint64_t off;
    bool eof = false;
    int ret, status = APP_EXIT_OK;

    ret = app_cli_parse_opts(argc, argv, "toegw write URL [options] <DATA",
                             APP_CLI_COMMON | APP_CLI_OFFSET, &o, &url);
    if (ret)
        return ret;
    ret = app_io_open(&o, url, &cs, &j);
    if (ret)
        return ret;
    uint32_t bs = j.li.cap.block_size;
    if (o.offset % bs) {
        app_errorf("offset %" PRIu64 " is not a multiple of the %u-byte block size of lun %u",
                   o.offset, bs, j.li.lun);
        app_io_close(&j);
        return APP_EXIT_FAILED;
    }
    if (o.offset >= j.li.size_bytes) {
        app_errorf("offset %" PRIu64 " is past the end of lun %u (%" PRIu64 " bytes)",
                   o.offset, j.li.lun, j.li.size_bytes);
        app_io_close(&j);
        return APP_EXIT_FAILED;
    }
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > j.li.size_bytes - o.offset) {
        app_errorf("write of %" PRIu64 " bytes at offset %" PRIu64 " is past the end of "
                   "lun %u (%" PRIu64 " bytes)", (uint64_t)st.st_size, o.offset, j.li.lun,
                   j.li.size_bytes);
        app_io_close(&j);
        return APP_EXIT_FAILED;
    }
    off = o.offset;
    while ((!eof && status == APP_EXIT_OK) || j.busy) {
        struct app_io_slot *slot = NULL;
        for (int i = 0; i < APP_IO_SLOTS; i++) {
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
    app_io_close(&j);
    return status;
}
