/*
 * capture.c - pcap capture of the emulated wire (see capture.h).
 */
#include "toe_emu/capture.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAP_SNAPLEN 262144

struct cap_rec {
    struct cap_rec *next;
    struct timeval ts;
    size_t len;
    uint8_t data[];
};

struct toe_capture {
    pthread_mutex_t lock;
    pcap_t *dead;                  /* owned: the link type and snap length for dumpers */
    pcap_dumper_t *dumper;         /* owned, file mode only */
    char *path;                    /* owned, file mode only */
    struct cap_rec *head, *tail;   /* owned, ring mode: oldest first */
    size_t bytes, max_bytes;
    uint64_t frames;               /* frames recorded since the capture started */
};

static struct toe_capture *cap_new(void)
{
    struct toe_capture *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->dead = pcap_open_dead(DLT_EN10MB, CAP_SNAPLEN);
    if (!c->dead) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

struct toe_capture *toe_cap_open_file(const char *path, char *err, size_t errlen)
{
    struct toe_capture *c = cap_new();

    if (!c) {
        snprintf(err, errlen, "capture: out of memory");
        return NULL;
    }
    c->path = strdup(path);
    if (!c->path)
        goto fail_nomem;
    c->dumper = pcap_dump_open(c->dead, path);
    if (!c->dumper) {
        snprintf(err, errlen, "capture: cannot open '%s': %s", path, pcap_geterr(c->dead));
        errno = EIO;
        goto fail;
    }
    return c;

fail_nomem:
    snprintf(err, errlen, "capture: out of memory");
    errno = ENOMEM;
fail:
    free(c->path);
    pcap_close(c->dead);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

struct toe_capture *toe_cap_open_ring(size_t max_bytes)
{
    struct toe_capture *c = cap_new();

    if (c)
        c->max_bytes = max_bytes ? max_bytes : 64u << 20;
    return c;
}

static void ring_evict(struct toe_capture *c)
{
    while (c->head && c->bytes > c->max_bytes) {
        struct cap_rec *r = c->head;

        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->bytes -= r->len;
        free(r);
    }
}

void toe_cap_frame(struct toe_capture *c, const struct timeval *ts, const uint8_t *frame,
                   size_t len)
{
    if (len > CAP_SNAPLEN)
        len = CAP_SNAPLEN;
    pthread_mutex_lock(&c->lock);
    c->frames++;
    if (c->dumper) {
        struct pcap_pkthdr h = { .ts = *ts, .caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len };

        pcap_dump((u_char *)c->dumper, &h, frame);
    } else {
        struct cap_rec *r = malloc(sizeof(*r) + len);

        if (r) {
            r->next = NULL;
            r->ts = *ts;
            r->len = len;
            memcpy(r->data, frame, len);
            if (c->tail)
                c->tail->next = r;
            else
                c->head = r;
            c->tail = r;
            c->bytes += len;
            ring_evict(c);
        }
    }
    pthread_mutex_unlock(&c->lock);
}

static int copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    ssize_t n;

    if (in < 0)
        return -errno;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = -errno;
        goto close_in;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));

            if (w < 0) {
                rc = -errno;
                goto close_out;
            }
            done += w;
        }
    }
    if (n < 0)
        rc = -errno;
close_out:
    if (close(out) < 0 && rc == 0)
        rc = -errno;
close_in:
    close(in);
    return rc;
}

int toe_cap_save(struct toe_capture *c, const char *path, char *err, size_t errlen)
{
    int rc = 0;

    pthread_mutex_lock(&c->lock);
    if (c->dumper) {
        if (pcap_dump_flush(c->dumper) < 0) {
            snprintf(err, errlen, "capture: cannot flush '%s'", c->path);
            rc = -EIO;
        } else if (strcmp(path, c->path) != 0 && (rc = copy_file(c->path, path)) < 0) {
            snprintf(err, errlen, "capture: cannot copy '%s' to '%s': %s", c->path, path,
                     strerror(-rc));
        }
        goto out;
    }

    pcap_dumper_t *d = pcap_dump_open(c->dead, path);
    if (!d) {
        snprintf(err, errlen, "capture: cannot open '%s': %s", path, pcap_geterr(c->dead));
        rc = -EIO;
        goto out;
    }
    for (struct cap_rec *r = c->head; r; r = r->next) {
        struct pcap_pkthdr h = { .ts = r->ts, .caplen = (bpf_u_int32)r->len,
                                 .len = (bpf_u_int32)r->len };

        pcap_dump((u_char *)d, &h, r->data);
    }
    if (pcap_dump_flush(d) < 0) {
        snprintf(err, errlen, "capture: cannot write '%s'", path);
        rc = -EIO;
    }
    pcap_dump_close(d);
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

uint64_t toe_cap_frames(struct toe_capture *c)
{
    uint64_t n;

    pthread_mutex_lock(&c->lock);
    n = c->frames;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void toe_cap_close(struct toe_capture *c)
{
    if (!c)
        return;
    if (c->dumper)
        pcap_dump_close(c->dumper);
    while (c->head) {
        struct cap_rec *r = c->head;

        c->head = r->next;
        free(r);
    }
    pcap_close(c->dead);
    pthread_mutex_destroy(&c->lock);
    free(c->path);
    free(c);
}
