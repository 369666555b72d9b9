/*
 * volume.c - the manager's volumes: one per usable disk LUN of a session, reference
 * counted so that I/O in flight outlives a logout; byte ranges split into SCSI commands
 * within the LUN's limits and run in parallel; chunks held while the session recovers (up
 * to the replacement timeout) and resubmitted when it is back, or queued in order while the
 * session has no free command slot; the REST API's blocking reads and writes.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/manager_int.h"
#include "storage/scsi.h"

/*
 * A command aborted after the command timeout (or ended by a LUN reset) is issued this many
 * times more before its request fails: a target that stalled for a moment is not an error
 * (the Linux SCSI disk driver retries too), one that keeps stalling is.
 */
#define CHUNK_TIMEOUT_RETRIES 1
#define IO_CHUNK_MAX (4u * 1024 * 1024)

/* ---------------------------------------------------------------- volumes */

void sto_volume_id(const char *target, uint32_t lun, char out[STO_ID_MAX])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char in[STO_NAME_MAX + 16];
    int n = snprintf(in, sizeof(in), "%s/%u", target, lun);

    EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    snprintf(out, STO_ID_MAX, "v-%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
             md[3], md[4], md[5], md[6], md[7]);
}

struct sto_volume *sto_volume_find(struct sto_mgr *m, const char *id)
{
    for (struct sto_volume *v = m->volumes; v; v = v->next)
        if (v->ses && !strcmp(v->id, id))
            return v;
    return NULL;
}

size_t sto_mgr_volume_ids(struct sto_mgr *m, char (*ids)[STO_ID_MAX], size_t max)
{
    size_t n = 0;

    for (struct sto_volume *v = m->volumes; v; v = v->next) {
        if (!v->ses)
            continue;
        if (n < max)
            snprintf(ids[n], STO_ID_MAX, "%s", v->id);
        n++;
    }
    return n;
}

const struct sto_lun_info *sto_volume_info(const struct sto_volume *v) { return &v->li; }
void sto_volume_ref(struct sto_volume *v) { v->refs++; }
bool sto_volume_alive(const struct sto_volume *v) { return v->ses != NULL; }

void sto_volume_unref(struct sto_volume *v)
{
    if (--v->refs > 0)
        return;
    struct sto_volume **pp = &v->m->volumes;
    while (*pp && *pp != v)
        pp = &(*pp)->next;
    if (*pp)
        *pp = v->next;
    free(v);
}

void sto_vol_add(struct mgr_session *ms, const struct sto_lun_info *li)
{
    struct sto_volume *v;
    char id[STO_ID_MAX];

    if (ms->nvols >= VOLUMES_MAX)
        return;
    sto_volume_id(ms->req.target, li->lun, id);
    v = calloc(1, sizeof(*v));
    if (!v)
        return;
    v->refs = 1;
    v->m = ms->m;
    v->ses = ms;
    snprintf(v->id, sizeof(v->id), "%s", id);
    v->li = *li;
    v->li.size_bytes = li->cap.blocks * li->cap.block_size;
    uint64_t chunk = IO_CHUNK_MAX;
    if (li->limits.max_transfer_blocks &&
        (uint64_t)li->limits.max_transfer_blocks * li->cap.block_size < chunk)
        chunk = (uint64_t)li->limits.max_transfer_blocks * li->cap.block_size;
    chunk -= chunk % li->cap.block_size;
    v->chunk = chunk ? (uint32_t)chunk : li->cap.block_size;
    v->next = ms->m->volumes;
    ms->m->volumes = v;
    ms->vols[ms->nvols++] = v;
    if (ms->m->cfg.volume_event)
        ms->m->cfg.volume_event(ms->m->cfg.volume_event_arg, v->id, true);
}

/* ---------------------------------------------------------------- volume I/O */

struct vio {
    struct sto_volume *v;
    enum sto_io_op op;
    uint8_t *buf;
    bool fua;
    sto_io_cb cb;
    void *arg;
    uint32_t outstanding;
    int err;
    char msg[STO_ERR_MAX];
    uint64_t t0;
    uint64_t offset;
    uint32_t len;
    bool flush_after;              /* FUA on a command without a FUA bit: sync the cache */
    uint8_t unmap_param[SCSI_UNMAP_PARAM_LEN];
};

struct vchunk {
    struct vio *io;
    uint64_t off;                  /* byte offset on the LUN */
    uint32_t len;
    enum sto_io_op op;
    bool same;                     /* sent as WRITE SAME */
    uint8_t retries;               /* unit attentions absorbed so far */
    uint8_t timeouts;              /* command timeouts absorbed so far */
    struct vchunk *next;
};

static uint8_t zero_block[64 * 1024];

static void chunk_start(struct vchunk *ch);

static void vio_complete(struct vio *io)
{
    struct sto_volume *v = io->v;
    uint64_t ns = sto_now_ns() - io->t0;

    if (io->op == STO_IO_READ) {
        v->stats.reads++;
        v->stats.read_bytes += io->err ? 0 : io->len;
        v->stats.read_ns += ns;
    } else if (io->op == STO_IO_WRITE) {
        v->stats.writes++;
        v->stats.write_bytes += io->err ? 0 : io->len;
        v->stats.write_ns += ns;
    }
    hist_add(&v->stats.latency, ns);
    if (io->err)
        v->stats.errors++;
    io->cb(io->arg, io->err, io->err ? io->msg : NULL);
    sto_volume_unref(v);
    free(io);
}

static void chunk_done(struct vchunk *ch, int err, const char *msg)
{
    struct vio *io = ch->io;

    free(ch);
    if (err && !io->err) {
        io->err = err;
        snprintf(io->msg, sizeof(io->msg), "%s", msg ? msg : strerror(-err));
    }
    if (--io->outstanding)
        return;
    if (!io->err && io->flush_after) {
        /* WRITE SAME and UNMAP have no FUA bit: durable means a SYNCHRONIZE CACHE */
        struct vchunk *f = calloc(1, sizeof(*f));
        io->flush_after = false;
        if (f) {
            f->io = io;
            f->op = STO_IO_FLUSH;
            io->outstanding = 1;
            chunk_start(f);
            return;
        }
        io->err = -ENOMEM;
        snprintf(io->msg, sizeof(io->msg), "out of memory");
    }
    vio_complete(io);
}

/*
 * The session has no free command slot: the chunk waits its turn (a slot frees with every
 * completion, busy_drain), never fails. Legal load - many clients, large requests cut into
 * many commands by a small Block Limits transfer length - exceeds the slots easily.
 */
static void busy_chunk(struct mgr_session *ms, struct vchunk *ch)
{
    ch->next = NULL;
    if (ms->busy_tail)
        ms->busy_tail->next = ch;
    else
        ms->busy_head = ch;
    ms->busy_tail = ch;
}

static int chunk_try(struct vchunk *ch);

/* Slots came free: submit waiting chunks in order until the session is full again. */
static void busy_drain(struct mgr_session *ms)
{
    struct vchunk *ch;

    while ((ch = ms->busy_head)) {
        ms->busy_head = ch->next;
        if (!ms->busy_head)
            ms->busy_tail = NULL;
        if (chunk_try(ch) == -EBUSY) {
            ch->next = ms->busy_head; /* still full: back at the front, in order */
            ms->busy_head = ch;
            if (!ms->busy_tail)
                ms->busy_tail = ch;
            return;
        }
    }
}

static void hold_chunk(struct mgr_session *ms, struct vchunk *ch)
{
    if (ms->io_failfast) { /* recovering past the replacement timeout: no holding */
        chunk_done(ch, -EIO, "the volume's session is recovering and its replacement "
                   "timeout passed");
        return;
    }
    ch->next = NULL;
    if (ms->held_tail)
        ms->held_tail->next = ch;
    else
        ms->held_head = ch;
    ms->held_tail = ch;
}

static void chunk_result(struct isc_session *s, const struct isc_scsi_result *r,
                         struct vchunk *ch);

/* A command finished, so its slot is free: after its result, let a waiting chunk have it. */
static void chunk_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct vchunk *ch = arg;
    struct mgr_session *ms = ch->io->v->ses;

    chunk_result(s, r, ch);
    if (ms)
        busy_drain(ms);
}

/* "read of 4096 bytes at 8192": what a chunk did, for its error message. */
static void chunk_what(const struct vchunk *ch, char *buf, size_t len)
{
    snprintf(buf, len, "%s of %u bytes at %llu",
             ch->op == STO_IO_READ ? "read" : ch->op == STO_IO_WRITE ? "write"
             : ch->op == STO_IO_FLUSH ? "synchronize cache" : ch->op == STO_IO_TRIM ? "unmap"
             : "write same", ch->len, (unsigned long long)ch->off);
}

static bool short_read(const struct vchunk *ch, const struct isc_scsi_result *r)
{
    return ch->op == STO_IO_READ && r->data_in_len < ch->len;
}

static void chunk_result(struct isc_session *s, const struct isc_scsi_result *r,
                         struct vchunk *ch)
{
    struct sto_volume *v = ch->io->v;
    char what[96], err[STO_ERR_MAX];
    int ret;

    if (r->err && v->ses && v->ses->state == MS_RECOVERING) {
        hold_chunk(v->ses, ch); /* the session comes back: run it again then */
        return;
    }
    if (r->err == -ETIMEDOUT && v->ses && v->ses->state == MS_LOGGED_IN &&
        ch->timeouts < CHUNK_TIMEOUT_RETRIES) {
        /* aborted (or ended by a lun reset) after the command timeout: once more */
        ch->timeouts++;
        log_warn_f("storage", LOG_FIELDS({ "volume", v->id }, { "session", v->ses->id },
                                          { "err", r->why[0] ? r->why : "command timed out" }),
                   "a volume's command timed out; issuing it again");
        chunk_start(ch);
        return;
    }
    if (r->err) {
        chunk_done(ch, r->err, r->why[0] ? r->why : isc_session_error(s));
        return;
    }
    if (r->status == SCSI_STATUS_GOOD && !short_read(ch, r)) {
        chunk_done(ch, 0, NULL); /* the common case: nothing to describe */
        return;
    }
    chunk_what(ch, what, sizeof(what));
    ret = sto_scsi_check(r, what, err, sizeof(err));
    if (r->status == SCSI_STATUS_CHECK_CONDITION && ch->retries < 5) {
        struct scsi_sense sense;
        scsi_sense_decode(r->sense, r->sense_len, &sense);
        if (sense.key == SCSI_SENSE_UNIT_ATTENTION) {
            /* a past event (a new I_T nexus after recovery, a reset): run it again */
            ch->retries++;
            chunk_start(ch);
            return;
        }
    }
    if ((ret == -EOPNOTSUPP || ret == -EINVAL) && ch->same) {
        /* the LUN has no WRITE SAME (or not for this length): zero it by writing */
        v->no_write_same = true;
        struct vio *io = ch->io;
        uint64_t end = ch->off + ch->len;
        uint32_t step = (uint32_t)sizeof(zero_block) - sizeof(zero_block) % v->li.cap.block_size;
        io->outstanding--;
        for (uint64_t off = ch->off; off < end; off += step) {
            struct vchunk *z = calloc(1, sizeof(*z));
            if (!z) {
                io->err = -ENOMEM;
                break;
            }
            z->io = io;
            z->op = STO_IO_ZERO;
            z->off = off;
            z->len = (uint32_t)(end - off < step ? end - off : step);
            io->outstanding++;
            chunk_start(z);
        }
        free(ch);
        if (io->outstanding == 0)
            vio_complete(io);
        return;
    }
    if (ret == -EOPNOTSUPP && ch->op == STO_IO_FLUSH)
        ret = 0; /* no cache to flush: the data is already durable */
    if (ret == 0 && short_read(ch, r)) {
        snprintf(err, sizeof(err), "%s returned only %u bytes", what, r->data_in_len);
        ret = -EIO;
    }
    chunk_done(ch, ret, err);
}

/* Issue a chunk, hold it while its session recovers, or fail it; never loses it. */
static void chunk_start(struct vchunk *ch)
{
    struct mgr_session *ms = ch->io->v->ses;

    /* chunks already waiting for a slot go first */
    if ((ms && ms->busy_head) || chunk_try(ch) == -EBUSY)
        busy_chunk(ms, ch);
}

/* chunk_start's work: -EBUSY (no free slot; ch is still the caller's), else 0. */
static int chunk_try(struct vchunk *ch)
{
    struct vio *io = ch->io;
    struct sto_volume *v = io->v;
    struct mgr_session *ms = v->ses;
    uint32_t bs = v->li.cap.block_size;
    struct isc_scsi_req req = { .lun = v->li.lun, .cb = chunk_cb, .arg = ch };
    uint64_t lba = ch->off / bs;
    uint32_t blocks = ch->len / bs;
    int ret;

    if (!ms || ms->state == MS_FAILED || ms->state == MS_LOGGED_OUT ||
        ms->state == MS_LOGGING_OUT) {
        chunk_done(ch, -ENOTCONN, "the volume's session is not logged in");
        return 0;
    }
    if (ms->state == MS_RECOVERING) {
        hold_chunk(ms, ch);
        return 0;
    }
    switch (ch->op) {
    case STO_IO_READ:
        req.dir = ISC_DIR_READ;
        req.buf = io->buf + (ch->off - io->offset);
        req.len = ch->len;
        req.cdb_len = (uint8_t)scsi_cdb_read(req.cdb, lba, blocks, false);
        break;
    case STO_IO_WRITE:
        req.dir = ISC_DIR_WRITE;
        req.buf = io->buf + (ch->off - io->offset);
        req.len = ch->len;
        req.cdb_len = (uint8_t)scsi_cdb_write(req.cdb, lba, blocks, io->fua);
        break;
    case STO_IO_FLUSH:
        req.cdb_len = (uint8_t)scsi_cdb_sync_cache(req.cdb, 0, 0);
        break;
    case STO_IO_TRIM:
        req.dir = ISC_DIR_WRITE;
        req.buf = io->unmap_param;
        req.len = SCSI_UNMAP_PARAM_LEN;
        req.cdb_len = (uint8_t)scsi_cdb_unmap(req.cdb, io->unmap_param, lba, blocks);
        break;
    case STO_IO_ZERO:
        req.dir = ISC_DIR_WRITE;
        req.buf = zero_block;
        if (!v->no_write_same && ch->len > sizeof(zero_block) / 2) {
            /* one block of zeroes, repeated by the target over the whole range */
            req.len = bs;
            req.cdb_len = (uint8_t)scsi_cdb_write_same16(req.cdb, lba, blocks, false);
            ch->same = true;
        } else {
            /* zeroes written from a shared zero buffer: works on every target */
            req.len = ch->len;
            req.cdb_len = (uint8_t)scsi_cdb_write(req.cdb, lba, blocks, io->fua);
        }
        break;
    }
    ret = isc_session_submit(ms->s, &req);
    if (ret == -EBUSY)
        return -EBUSY;
    if (ret < 0)
        chunk_done(ch, ret, "cannot queue the command");
    return 0;
}

void sto_vol_held_resubmit(struct mgr_session *ms)
{
    struct vchunk *ch = ms->held_head;

    ms->held_head = ms->held_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_start(ch);
        ch = next;
    }
}

void sto_vol_held_fail(struct mgr_session *ms, int err, const char *why)
{
    struct vchunk *ch = ms->held_head;

    ms->held_head = ms->held_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_done(ch, err, why);
        ch = next;
    }
    ch = ms->busy_head;
    ms->busy_head = ms->busy_tail = NULL;
    while (ch) {
        struct vchunk *next = ch->next;
        chunk_done(ch, err, why);
        ch = next;
    }
}

int sto_volume_submit(struct sto_volume *v, enum sto_io_op op, uint64_t offset, uint32_t len,
                      void *buf, bool fua, sto_io_cb cb, void *arg)
{
    uint32_t bs = v->li.cap.block_size;
    uint32_t step;
    struct vio *io;

    if (!v->ses)
        return -ENOTCONN;
    if (op != STO_IO_FLUSH) {
        if (offset % bs || len % bs || len == 0)
            return -EINVAL;
        if (offset > v->li.size_bytes || len > v->li.size_bytes - offset)
            return -ERANGE;
    }
    io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->v = v;
    io->op = op;
    io->buf = buf;
    io->fua = fua;
    io->cb = cb;
    io->arg = arg;
    io->t0 = sto_now_ns();
    io->offset = offset;
    io->len = len;
    io->flush_after = fua && (op == STO_IO_ZERO || op == STO_IO_TRIM);
    sto_volume_ref(v);
    /* UNMAP uses the request's one parameter list: a single command */
    step = op == STO_IO_ZERO ? (v->no_write_same ? (uint32_t)sizeof(zero_block) -
                                                       sizeof(zero_block) % bs
                                                 : 0xffff * bs)
           : op == STO_IO_TRIM ? len : v->chunk;
    if (op == STO_IO_ZERO && !v->no_write_same && v->li.limits.max_write_same_blocks &&
        v->li.limits.max_write_same_blocks * bs < step)
        step = (uint32_t)(v->li.limits.max_write_same_blocks * bs);
    io->outstanding = 1; /* guard while issuing */
    if (op == STO_IO_FLUSH) {
        struct vchunk *ch = calloc(1, sizeof(*ch));
        if (!ch) {
            io->outstanding = 0;
            sto_volume_unref(v);
            free(io);
            return -ENOMEM;
        }
        ch->io = io;
        ch->op = op;
        chunk_start(ch);
        return 0;
    }
    for (uint64_t off = offset; off < offset + len; off += step) {
        struct vchunk *ch = calloc(1, sizeof(*ch));
        if (!ch) {
            if (!io->err) {
                io->err = -ENOMEM;
                snprintf(io->msg, sizeof(io->msg), "out of memory");
            }
            break;
        }
        ch->io = io;
        ch->op = op;
        ch->off = off;
        ch->len = (uint32_t)(offset + len - off < step ? offset + len - off : step);
        io->outstanding++;
        chunk_start(ch);
    }
    /* drop the issuing guard (this may complete the whole request) */
    if (--io->outstanding == 0)
        vio_complete(io);
    return 0;
}

/* Blocking volume data calls for the REST API. */
static void vio_call_cb(void *arg, int err, const char *msg)
{
    struct mgr_call *c = arg;

    sto_mgr_call_finish(c, err, err == -ERANGE ? STO_ERR_RANGE : err == -EINVAL ? STO_ERR_INVALID
                                : err == -ENOTCONN ? STO_ERR_UNAVAILABLE : STO_ERR_IO,
                        "%s", err ? msg : "");
}

static void run_volume_io(struct sto_mgr *m, struct mgr_call *c, enum sto_io_op op)
{
    struct sto_volume *v = sto_volume_find(m, c->id);
    int ret;

    if (!v) {
        sto_mgr_call_finish(c, -ENOENT, STO_ERR_NOT_FOUND, "no volume %s", c->id);
        return;
    }
    uint32_t bs = v->li.cap.block_size;
    if (c->offset % bs || c->len % bs) {
        sto_mgr_call_finish(c, -EINVAL, STO_ERR_INVALID, "offset %llu and length %u must be "
                            "multiples of the volume's %u-byte blocks",
                            (unsigned long long)c->offset, c->len, bs);
        return;
    }
    if (c->offset > v->li.size_bytes || c->len > v->li.size_bytes - c->offset) {
        sto_mgr_call_finish(c, -ERANGE, STO_ERR_RANGE, "range %llu+%u is past the end of volume %s "
                            "(%llu bytes)", (unsigned long long)c->offset, c->len, c->id,
                            (unsigned long long)v->li.size_bytes);
        return;
    }
    if (c->len == 0) {
        sto_mgr_call_finish(c, 0, STO_ERR_NONE, NULL);
        return;
    }
    ret = sto_volume_submit(v, op, c->offset, c->len, c->data, false, vio_call_cb, c);
    if (ret < 0) {
        sto_mgr_call_finish(c, ret, STO_ERR_IO, "cannot start the i/o: %s", strerror(-ret));
        return;
    }
}

static void run_volume_read(struct sto_mgr *m, struct mgr_call *c)
{
    run_volume_io(m, c, STO_IO_READ);
}

static void run_volume_write(struct sto_mgr *m, struct mgr_call *c)
{
    /* FUA makes every command durable on its own: a 204 then means durable */
    struct sto_volume *v = sto_volume_find(m, c->id);
    int ret;

    if (!v || c->offset % v->li.cap.block_size || c->len % v->li.cap.block_size ||
        c->offset > v->li.size_bytes || c->len > v->li.size_bytes - c->offset || !c->len) {
        run_volume_io(m, c, STO_IO_WRITE); /* reports the error, or completes a no-op */
        return;
    }
    ret = sto_volume_submit(v, STO_IO_WRITE, c->offset, c->len, c->data, true, vio_call_cb, c);
    if (ret < 0)
        sto_mgr_call_finish(c, ret, STO_ERR_IO, "cannot start the write: %s", strerror(-ret));
}

/*
 * A read or write of the REST API on the storage loop, through a copy of the data the call
 * owns (after a timeout the loop may still be using it; the caller's buffer may be gone).
 */
static int volume_call(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                       bool write, void *rbuf, const void *wbuf, struct sto_result *res)
{
    struct mgr_call *c = sto_mgr_call_new(m, write ? run_volume_write : run_volume_read);
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->offset = offset;
    c->len = len;
    c->data = malloc(len ? len : 1);
    if (!c->data) {
        sto_mgr_call_free(c);
        return -ENOMEM;
    }
    if (write && len)
        memcpy(c->data, wbuf, len);
    if (!sto_mgr_call_through(m, c, m->cfg.call_timeout_ms, res, &ret))
        return ret;
    if (ret == 0 && !write && len)
        memcpy(rbuf, c->data, len);
    sto_mgr_call_free(c);
    return ret;
}

int sto_mgr_volume_read(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                        void *buf, struct sto_result *res)
{
    return volume_call(m, id, offset, len, false, buf, NULL, res);
}

int sto_mgr_volume_write(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                         const void *buf, struct sto_result *res)
{
    return volume_call(m, id, offset, len, true, NULL, buf, res);
}
