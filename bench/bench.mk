# bench.mk - the compiled helpers of bench/ (bench/perf-toe runs them), included by the top
# Makefile after LIB_OBJS and TOE_LIBS are defined (at its end):
#
#   -include bench/bench.mk
#
# `make bench-tools` builds them; without the include line:
#   make -f Makefile -f bench/bench.mk bench-tools
# They link the project's objects the way the unit tests do; none is part of toegw.

BENCH_TOOLS := $(BUILD)/bench/broker-latency

.PHONY: bench-tools
bench-tools: $(BENCH_TOOLS)

# request→descriptor latency of the offload broker per stack (needs the TOE: toe_emu/).
$(BUILD)/bench/broker-latency: bench/broker-latency.c $(LIB_OBJS) $(TOE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB_OBJS) $(TOE_LIBS) $(LDLIBS)

-include $(BENCH_TOOLS:=.d)
