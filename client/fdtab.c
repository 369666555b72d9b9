/*
 * fdtab.c - the preload shim's table of offloaded sockets (preload_int.h): one entry per
 * TOE connection's AF_UNIX socket, found by the inode behind an fd (fstat), so dups answer
 * too and a recycled fd number never does. One mutex; an empty table costs one load.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/preload_int.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pl_sock *tab;
static size_t ntab, cap;
static atomic_size_t count;

bool pl_tab_empty(void)
{
    return atomic_load_explicit(&count, memory_order_relaxed) == 0;
}

static bool fd_key(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

/* Under the lock: the entry of fd's socket, or NULL. */
static struct pl_sock *find(int fd)
{
    dev_t dev;
    ino_t ino;

    if (!ntab || !fd_key(fd, &dev, &ino))
        return NULL;
    for (size_t i = 0; i < ntab; i++)
        if (tab[i].ino == ino && tab[i].dev == dev)
            return &tab[i];
    return NULL;
}

int pl_tab_add(int fd, const struct pl_sock *s)
{
    struct pl_sock e = *s;
    int ret = 0;

    if (!fd_key(fd, &e.dev, &e.ino))
        return -EBADF;
    e.refs = 1;
    pthread_mutex_lock(&lock);
    struct pl_sock *old = find(fd);
    if (old) {
        *old = e; /* an inode seen before belongs to this socket now */
    } else if (ntab == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        struct pl_sock *nt = realloc(tab, ncap * sizeof(*nt));
        if (nt) {
            tab = nt;
            cap = ncap;
        } else {
            ret = -ENOMEM;
        }
    }
    if (!old && ret == 0) {
        tab[ntab++] = e;
        atomic_store(&count, ntab);
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

bool pl_tab_get(int fd, struct pl_sock *out)
{
    struct pl_sock *e;

    if (pl_tab_empty())
        return false;
    pthread_mutex_lock(&lock);
    e = find(fd);
    if (e)
        *out = *e;
    pthread_mutex_unlock(&lock);
    return e != NULL;
}

void pl_tab_ref(int fd, int delta)
{
    struct pl_sock *e;

    if (pl_tab_empty())
        return;
    pthread_mutex_lock(&lock);
    e = find(fd);
    if (e) {
        e->refs += delta;
        if (e->refs <= 0) {
            *e = tab[--ntab];
            atomic_store(&count, ntab);
        }
    }
    pthread_mutex_unlock(&lock);
}

bool pl_tab_set_opt(int fd, int level, int name, int value)
{
    struct pl_sock *e;

    if (pl_tab_empty())
        return false;
    pthread_mutex_lock(&lock);
    e = find(fd);
    if (e) {
        int i;
        for (i = 0; i < e->nopts; i++)
            if (e->opts[i].level == level && e->opts[i].name == name)
                break;
        if (i == e->nopts && i < PL_MAX_OPTS)
            e->nopts++;
        if (i < PL_MAX_OPTS) {
            e->opts[i].level = level;
            e->opts[i].name = name;
            e->opts[i].value = value;
        }
    }
    pthread_mutex_unlock(&lock);
    return e != NULL;
}

bool pl_tab_get_opt(int fd, int level, int name, int *value)
{
    struct pl_sock e;

    if (!pl_tab_get(fd, &e))
        return false;
    *value = 0;
    for (int i = 0; i < e.nopts; i++)
        if (e.opts[i].level == level && e.opts[i].name == name)
            *value = e.opts[i].value;
    return true;
}
