/*
 * stacks_int.h - what the files of stacks/ share among themselves.
 */
#ifndef TOEGW_STACKS_INT_H
#define TOEGW_STACKS_INT_H

#include "stacks/stacks.h"
#include "toe_emu/toe.h"

/* Fill owner and placement of the rows that are broker connections. */
void stk_broker_annotate(struct stk_broker *b, struct stk_conn_row *rows, size_t n);
/* The TOE the broker places on (NULL when none). Borrowed. */
struct toe_dev *stk_broker_toe(struct stk_broker *b);

#endif
