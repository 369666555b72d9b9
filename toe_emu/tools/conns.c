/*
 * conns.c - toe-tool conns: the adapter at its connection limit. It opens --max
 * connections to a kernel echo server on the TAP's host side, checks that one more is
 * refused with -EMFILE, echoes a message on each, closes them all and checks that the slots
 * come back (a new connection succeeds).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "toe_emu/tools/tool.h"

struct echo_server {
    int lfd;
    unsigned n;
    pthread_t th;
    unsigned served;
};

/* Accept n conns, then echo one 16-byte message on each, then close them all. */
static void *echo_main(void *arg)
{
    struct echo_server *s = arg;
    int *fds = calloc(s->n, sizeof(int));

    for (unsigned i = 0; i < s->n; i++)
        fds[i] = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    for (unsigned i = 0; i < s->n; i++) {
        char buf[16];
        size_t got = 0;

        while (got < sizeof(buf)) {
            ssize_t n = recv(fds[i], buf + got, sizeof(buf) - got, 0);

            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got == sizeof(buf) && send(fds[i], buf, sizeof(buf), MSG_NOSIGNAL) == 16)
            s->served++;
    }
    for (unsigned i = 0; i < s->n; i++)
        close(fds[i]);
    free(fds);
    return NULL;
}

int cmd_conns(const struct opts *o)
{
    unsigned max = o->max;
    struct toe_dev *dev = dev_up(o->mtu, max, o->no_offload);
    struct stk_conn **c = calloc(max, sizeof(*c));
    struct echo_server es = { .n = max };
    struct sockaddr_in dst = host_addr(SRV_PORT);
    struct stk_conn *extra = NULL;
    struct toe_counters k;
    unsigned echoed = 0;
    bool ok = true;

    es.lfd = listen_on("192.0.2.1", SRV_PORT);
    pthread_create(&es.th, NULL, echo_main, &es);
    for (unsigned i = 0; i < max; i++) {
        int rc = toe_connect(dev, &dst, (uint16_t)(TOE_PORT0 + i), &c[i]);

        if (rc < 0)
            die("connection %u of %u: %s", i + 1, max, toe_strerror());
    }
    int rc = toe_connect(dev, &dst, (uint16_t)(TOE_PORT0 + max), &extra);
    printf("past_limit_rc=%d past_limit_error=\"%s\"\n", rc, rc < 0 ? toe_strerror() : "");
    if (rc != -EMFILE) {
        ok = false;
        if (rc == 0)
            stk_conn_close(extra, true);
    }
    unsigned established = 0;
    for (unsigned i = 0; i < max; i++) {
        double end = now_s() + 10;

        while ((rc = c[i]->ops->connect_result(c[i])) == -EINPROGRESS && now_s() < end)
            wait_fd(c[i]->fd, 100);
        if (rc == 0)
            established++;
    }
    printf("established=%u of %u\n", established, max);
    for (unsigned i = 0; i < max; i++) {
        char msg[16];
        struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };

        snprintf(msg, sizeof(msg), "conn %010u", i);
        if (stk_conn_writev(c[i], &iov, 1) != (ssize_t)sizeof(msg))
            ok = false;
    }
    for (unsigned i = 0; i < max; i++) {
        char want[16], got[16];
        size_t have = 0;
        double end = now_s() + 10;

        snprintf(want, sizeof(want), "conn %010u", i);
        while (have < sizeof(got) && now_s() < end) {
            ssize_t n = stk_conn_read(c[i], got + have, sizeof(got) - have);

            if (n == -EAGAIN) {
                wait_fd(c[i]->fd, 100);
                continue;
            }
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        if (have == sizeof(got) && memcmp(want, got, sizeof(got)) == 0)
            echoed++;
    }
    printf("echoed=%u of %u\n", echoed, max);
    pthread_join(es.th, NULL);
    for (unsigned i = 0; i < max; i++)
        stk_conn_close(c[i], false);
    /* Slots come back once the closes completed. */
    double end = now_s() + 5;
    do {
        toe_get_counters(dev, &k);
        if (k.conns_current == 0)
            break;
        usleep(20000);
    } while (now_s() < end);
    printf("conns_after_close=%" PRIu64 "\n", k.conns_current);
    rc = toe_connect(dev, &dst, (uint16_t)(TOE_PORT0 + max + 1), &extra);
    printf("reconnect_rc=%d\n", rc);
    if (rc == 0)
        stk_conn_close(extra, true);
    ok &= established == max && echoed == max && k.conns_current == 0 && rc == 0;
    print_counters(dev);
    close(es.lfd);
    free(c);
    toe_dev_free(dev);
    printf("result=%s\n", ok ? "ok" : "fail");
    return ok ? 0 : 1;
}
