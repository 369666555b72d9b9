/*
 * test_toe_fault.c - the wire fault model: a seed replays the same faults, each rate is what
 * was asked, and the settings are checked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "toe_emu/fault.h"

#define FRAMES 200000

struct trace {
    unsigned act[FRAMES];
    size_t off[FRAMES];
    uint8_t xor[FRAMES];
};

static struct trace t1, t2;

static void run(struct trace *t, const struct toe_faults *f, unsigned stream)
{
    struct toe_fault_model m;

    memset(t, 0, sizeof(*t));
    toe_fault_init(&m, f, stream);
    for (int i = 0; i < FRAMES; i++)
        t->act[i] = toe_fault_decide(&m, 60 + (size_t)(i % 9000), &t->off[i], &t->xor[i]);
}

static const struct toe_faults spec = {
    .drop = 0.01, .dup = 0.01, .reorder = 0.01, .corrupt = 0.001, .seed = 42,
};

Test(toe_fault, same_seed_same_faults)
{
    run(&t1, &spec, 0);
    run(&t2, &spec, 0);
    cr_assert_eq(memcmp(t1.act, t2.act, sizeof(t1.act)), 0);
    cr_assert_eq(memcmp(t1.off, t2.off, sizeof(t1.off)), 0);
    cr_assert_eq(memcmp(t1.xor, t2.xor, sizeof(t1.xor)), 0);
}

Test(toe_fault, other_seed_or_direction_other_faults)
{
    struct toe_faults other = spec;

    other.seed = 43;
    run(&t1, &spec, 0);
    run(&t2, &other, 0);
    cr_assert_neq(memcmp(t1.act, t2.act, sizeof(t1.act)), 0);
    run(&t2, &spec, 1);
    cr_assert_neq(memcmp(t1.act, t2.act, sizeof(t1.act)), 0, "directions are independent");
}

Test(toe_fault, rates_match_the_probabilities)
{
    unsigned n[4] = { 0 };

    run(&t1, &spec, 0);
    for (int i = 0; i < FRAMES; i++)
        for (int k = 0; k < 4; k++)
            n[k] += (t1.act[i] >> k) & 1;
    /* drop excludes the rest, so those see (1 - drop) of the frames */
    cr_assert(fabs(n[0] / (double)FRAMES - 0.01) < 0.002, "drop %u", n[0]);
    cr_assert(fabs(n[1] / (double)FRAMES - 0.0099) < 0.002, "dup %u", n[1]);
    cr_assert(fabs(n[2] / (double)FRAMES - 0.0099) < 0.002, "reorder %u", n[2]);
    cr_assert(fabs(n[3] / (double)FRAMES - 0.00099) < 0.0005, "corrupt %u", n[3]);
}

Test(toe_fault, corruption_changes_one_byte_past_the_ethernet_header)
{
    struct toe_faults f = { .corrupt = 1.0, .seed = 1 };

    run(&t1, &f, 0);
    for (int i = 0; i < FRAMES; i++) {
        size_t len = 60 + (size_t)(i % 9000);

        cr_assert_eq(t1.act[i], TOE_FAULT_CORRUPT);
        cr_assert(t1.off[i] >= 14 && t1.off[i] < len, "offset %zu of %zu", t1.off[i], len);
        cr_assert_neq(t1.xor[i], 0);
    }
}

Test(toe_fault, zero_never_one_always)
{
    struct toe_faults none = { .seed = 9 }, all = { .drop = 1.0 };
    struct toe_fault_model m;
    size_t off;
    uint8_t x;

    toe_fault_init(&m, &none, 0);
    cr_assert_not(m.active);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(toe_fault_decide(&m, 100, &off, &x), 0);
    toe_fault_init(&m, &all, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(toe_fault_decide(&m, 100, &off, &x), TOE_FAULT_DROP);
}

Test(toe_fault, validation)
{
    struct toe_faults f = spec;

    cr_assert_eq(toe_fault_validate(&f), 0);
    f.drop = -0.1;
    cr_assert_eq(toe_fault_validate(&f), -EINVAL);
    f.drop = 1.5;
    cr_assert_eq(toe_fault_validate(&f), -EINVAL);
    f.drop = NAN;
    cr_assert_eq(toe_fault_validate(&f), -EINVAL);
    f.drop = 0;
    f.corrupt = INFINITY;
    cr_assert_eq(toe_fault_validate(&f), -EINVAL);
}
