# toe.mk - the emulated TOE (toe_emu/), included by the top Makefile.
#
# Adds the TOE's sources to LIB_SRCS, builds lwIP 2.1.3 (Debian's source package, fetched
# into build/ by scripts/fetch-lwip, never committed) into a static library with our own
# toe_emu/lwipopts.h, and builds the TOE's test and benchmark driver ($(BUILD)/toe-tool).
# Only toe_emu/ sees lwIP's headers; no other module needs them.

# The first rule here keeps `all` the default goal of the top Makefile. `unit` (and so
# `make test` and `make asan`) also builds the driver the TOE's integration tests run.
all: $(BUILD)/toe-tool
unit: $(BUILD)/toe-tool

LWIP_SRC   ?= build/lwip-src
LWIP_STAMP := $(LWIP_SRC)/.fetched
LWIP_LIB   := $(BUILD)/lwip/liblwip-toe.a
LWIP_FILES := core/def.c core/inet_chksum.c core/init.c core/ip.c core/mem.c core/memp.c \
              core/netif.c core/pbuf.c core/stats.c core/tcp.c core/tcp_in.c core/tcp_out.c \
              core/timeouts.c core/ipv4/etharp.c core/ipv4/icmp.c core/ipv4/ip4.c \
              core/ipv4/ip4_addr.c netif/ethernet.c
LWIP_CSRCS := $(addprefix $(LWIP_SRC)/src/,$(LWIP_FILES))
LWIP_OBJS  := $(patsubst %.c,$(BUILD)/lwip/obj/%.o,$(LWIP_FILES))
# lwIP is third-party code: its own warning level, our optimisation and sanitizer flags.
LWIP_CFLAGS := $(OPT) -g -std=gnu11 -D_GNU_SOURCE -I$(LWIP_SRC)/src/include -Itoe_emu
LWIP_HDRS  := toe_emu/lwipopts.h toe_emu/arch/cc.h

TOE_SRCS := $(wildcard toe_emu/*.c)
TOE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TOE_SRCS))
TOE_TOOL_SRCS := $(wildcard toe_emu/tools/*.c)
TOE_TOOL_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TOE_TOOL_SRCS))

LIB_SRCS += $(TOE_SRCS)
TOE_LIBS := $(LWIP_LIB)
LDLIBS   += -lpcap

$(BUILD)/toe_emu/%.o: CFLAGS += -I$(LWIP_SRC)/src/include -Itoe_emu
$(TOE_OBJS) $(TOE_TOOL_OBJS): | $(LWIP_STAMP)
# The unit tests that build lwIP's or the firmware's own structures themselves.
TOE_UNIT_INT := $(BUILD)/tests/test_toe_hooks $(BUILD)/tests/test_toe_rxq $(BUILD)/tests/test_toe_sig
$(TOE_UNIT_INT): CFLAGS += -I$(LWIP_SRC)/src/include -Itoe_emu
$(TOE_UNIT_INT): | $(LWIP_STAMP)

$(LWIP_STAMP):
	@scripts/fetch-lwip $(LWIP_SRC)

$(LWIP_CSRCS): | $(LWIP_STAMP)
	@test -f $@ || { echo "toe.mk: $@ is missing from the lwIP tree" >&2; exit 1; }

$(BUILD)/lwip/obj/%.o: $(LWIP_SRC)/src/%.c $(LWIP_HDRS) | $(LWIP_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(LWIP_CFLAGS) -c -o $@ $<

$(LWIP_LIB): $(LWIP_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The driver for tests/integration/test_toe_*.sh and bench/toe-bulk (not part of toegw);
# common/transport.o: `flood` runs its consumer over the host stack too, for comparison.
$(BUILD)/toe-tool: $(TOE_TOOL_OBJS) $(TOE_OBJS) $(BUILD)/common/log.o $(BUILD)/common/transport.o \
                   $(BUILD)/common/spin.o \
                   $(BUILD)/common/sockspec.o $(LWIP_LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: toe-tool lwip
toe-tool: $(BUILD)/toe-tool
lwip: $(LWIP_LIB)

-include $(TOE_TOOL_OBJS:.o=.d)
