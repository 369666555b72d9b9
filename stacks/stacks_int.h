/*
 * stacks_int.h - what the files of stacks/ share among themselves.
 */
#ifndef TOEGW_STACKS_INT_H
#define TOEGW_STACKS_INT_H

#include "stacks/stacks.h"

/*
 * A copy of the offload engine the broker places on, taken under its lock. False when it
 * has none.
 */
bool stk_broker_offload(struct stk_broker *b, struct stk_offload_ops *out);

#endif
