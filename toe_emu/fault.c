/*
 * fault.c - deterministic wire fault decisions (see fault.h).
 */
#include "toe_emu/fault.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next(struct toe_fault_model *m)
{
    uint64_t *s = m->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* P in [0,1] to a threshold: draw < thr happens with probability P (P=1 always). */
static uint64_t threshold(double p)
{
    if (p <= 0.0)
        return 0;
    if (p >= 1.0)
        return UINT64_MAX;
    double v = p * 18446744073709551616.0; /* 2^64 */

    return v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
}

static bool valid_p(double p)
{
    return isfinite(p) && p >= 0.0 && p <= 1.0;
}

int toe_fault_validate(const struct toe_faults *f)
{
    if (!valid_p(f->drop) || !valid_p(f->dup) || !valid_p(f->reorder) || !valid_p(f->corrupt))
        return -EINVAL;
    return 0;
}

void toe_fault_init(struct toe_fault_model *m, const struct toe_faults *f, unsigned stream)
{
    uint64_t x = f->seed ^ (0xa0761d6478bd642fULL * (stream + 1));

    memset(m, 0, sizeof(*m));
    m->cfg = *f;
    m->thr[0] = threshold(f->drop);
    m->thr[1] = threshold(f->dup);
    m->thr[2] = threshold(f->reorder);
    m->thr[3] = threshold(f->corrupt);
    for (int i = 0; i < 4; i++)
        m->s[i] = splitmix64(&x);
    m->active = m->thr[0] || m->thr[1] || m->thr[2] || m->thr[3];
}

static bool hit(uint64_t draw, uint64_t thr)
{
    return thr == UINT64_MAX || draw < thr;
}

unsigned toe_fault_decide(struct toe_fault_model *m, size_t len, size_t *off, uint8_t *xor)
{
    uint64_t d[6];
    unsigned act = 0;

    if (!m->active)
        return 0;
    for (int i = 0; i < 6; i++)
        d[i] = next(m);
    if (hit(d[0], m->thr[0]))
        return TOE_FAULT_DROP;
    if (hit(d[1], m->thr[1]))
        act |= TOE_FAULT_DUP;
    if (hit(d[2], m->thr[2]))
        act |= TOE_FAULT_REORDER;
    if (len > 14 && hit(d[3], m->thr[3])) {
        act |= TOE_FAULT_CORRUPT;
        *off = 14 + (size_t)(d[4] % (len - 14));
        *xor = (uint8_t)(1 + d[5] % 255);
    }
    return act;
}
