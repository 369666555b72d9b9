/*
 * stacks_int.h - what the files of stacks/ share among themselves.
 */
#ifndef TOEGW_STACKS_INT_H
#define TOEGW_STACKS_INT_H

#include "stacks/stacks.h"

/* Fill owner and placement of the rows that are broker connections. */
void stk_broker_annotate(struct stk_broker *b, struct stk_conn_row *rows, size_t n);
/*
 * A copy of the offload engine the broker places on, taken under its lock. False when it
 * has none.
 */
bool stk_broker_offload(struct stk_broker *b, struct stk_offload_ops *out);

#endif
