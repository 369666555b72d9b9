/*
 * fault.h - the emulated wire's fault model: drop, duplicate, reorder, corrupt.
 *
 * Each direction of the wire has its own generator seeded from (seed, direction), so the
 * decisions for one direction do not depend on how frames of the other interleave: the same
 * seed and the same frame sequence give the same faults (a run can be replayed). Every frame
 * consumes the same number of draws whatever is decided, for the same reason.
 *
 * No lwIP here: unit tests link this alone.
 */
#ifndef TOEGW_TOE_FAULT_H
#define TOEGW_TOE_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toe_emu/toe.h"

enum toe_fault_action {
    TOE_FAULT_DROP = 1u << 0,      /* the frame never arrives (nothing else applies) */
    TOE_FAULT_DUP = 1u << 1,       /* it arrives twice */
    TOE_FAULT_REORDER = 1u << 2,   /* it arrives after the next frame */
    TOE_FAULT_CORRUPT = 1u << 3,   /* one byte past the Ethernet header is changed */
};

struct toe_fault_model {
    struct toe_faults cfg;
    uint64_t thr[4];               /* drop, dup, reorder, corrupt: P scaled to 2^64 */
    uint64_t s[4];                 /* xoshiro256** state */
    bool active;                   /* any probability > 0 */
};

/* Check probabilities (each 0..1, finite). 0 or -EINVAL. */
int toe_fault_validate(const struct toe_faults *f);
/* Start the model for one direction (`stream` 0 = TOE to host, 1 = host to TOE). */
void toe_fault_init(struct toe_fault_model *m, const struct toe_faults *f, unsigned stream);
/*
 * Decide the fate of one frame of `len` bytes. Returns a mask of toe_fault_action; with
 * TOE_FAULT_CORRUPT, *off (>= 14, < len) and *xor (non-zero) say which byte changes how.
 */
unsigned toe_fault_decide(struct toe_fault_model *m, size_t len, size_t *off, uint8_t *xor);

#endif
