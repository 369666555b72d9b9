# toegw - one binary. `make` builds ./toegw; `make test` runs every test; `make asan`
# builds and runs the tests under AddressSanitizer + UBSan.

CC      ?= gcc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -pthread
LDLIBS  += -lcrypto -lgnutls -lisal -ljansson -lmicrohttpd -pthread
BUILD   ?= build
BIN     ?= toegw

# Module sources (main.c is the only file not linked into the unit tests).
LIB_SRCS := $(wildcard common/*.c) $(wildcard stacks/*.c) $(wildcard storage/*.c) \
            $(wildcard api/*.c) \
            $(filter-out appliance/main.c,$(wildcard appliance/*.c))
MAIN_SRC := appliance/main.c

# The emulated TOE (toe_emu/) adds its sources and libraries here when present
# (TOE_MK= builds without it).
# Build without it in a build directory of its own (its objects differ), e.g.
#   make BUILD=build-notoe BIN=build-notoe/toegw TOE_MK= build-notoe/toegw unit
TOE_MK ?= toe_emu/toe.mk
-include $(TOE_MK)

# appliance/net_toe.c wires the TOE to the broker and appliance/toe_admin.c to the API when
# toe.mk added the TOE (TOE_SRCS); appliance/net_notoe.c stands in for both in a build without.
LIB_SRCS := $(filter-out appliance/net_$(if $(TOE_SRCS),no)toe.c \
                         $(if $(TOE_SRCS),,appliance/toe_admin.c),$(LIB_SRCS))

LIB_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
MAIN_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(MAIN_SRC))
# The unit tests that use the TOE (they include toe_emu/'s or lwIP's headers) are built only
# with it; without, `make unit` lists them in $(BUILD)/tests/not-built and scripts/run-tests
# reports each one as skipped.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TOE  := $(shell grep -lE '#include "(toe_emu|lwip)/' $(UNIT_SRCS))
UNIT_SKIP := $(if $(TOE_SRCS),,$(UNIT_TOE))
UNIT_SRCS := $(filter-out $(UNIT_SKIP),$(UNIT_SRCS))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

.PHONY: all test test-image unit integration asan demo bench clean distclean fuzz client install
all: $(BIN) client

# libtoegw (client/toegw.h: connections from the broker socket, as descriptors) as a static
# and a shared library, and toegw-preload.so (the LD_PRELOAD shim, libtoegw linked in).
# Position-independent, only the API exported; docs/broker.md.
CLIENT_CFLAGS := $(CFLAGS) -fPIC -fvisibility=hidden
LIBTOEGW_OBJS := $(BUILD)/client/libtoegw.pic.o $(BUILD)/client/bproto.pic.o
PRELOAD_OBJS  := $(BUILD)/client/preload.pic.o $(BUILD)/client/match.pic.o \
                 $(BUILD)/client/fdtab.pic.o $(LIBTOEGW_OBJS)
CLIENT_LIBS   := $(BUILD)/libtoegw.a $(BUILD)/libtoegw.so $(BUILD)/toegw-preload.so
client: $(CLIENT_LIBS)

$(BUILD)/client/%.pic.o: client/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/client/bproto.pic.o: common/bproto.c
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/libtoegw.a: $(LIBTOEGW_OBJS)
	$(AR) rcs $@ $^
$(BUILD)/libtoegw.so: $(LIBTOEGW_OBJS)
	$(CC) $(CLIENT_CFLAGS) -shared -Wl,-soname,libtoegw.so -o $@ $^
$(BUILD)/toegw-preload.so: $(PRELOAD_OBJS)
	$(CC) $(CLIENT_CFLAGS) -shared -Wl,-soname,toegw-preload.so -o $@ $^ -ldl

# the unit test of the wire format also checks the shim's TOEGW_OFFLOAD parser
$(BUILD)/tests/test_bproto: $(BUILD)/client/match.pic.o

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary, the client libraries, the header.
PREFIX ?= /usr/local
install: $(BIN) client
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/toegw
	install -D -m 0644 $(BUILD)/libtoegw.a $(DESTDIR)$(PREFIX)/lib/libtoegw.a
	install -D -m 0755 $(BUILD)/libtoegw.so $(DESTDIR)$(PREFIX)/lib/libtoegw.so
	install -D -m 0755 $(BUILD)/toegw-preload.so $(DESTDIR)$(PREFIX)/lib/toegw-preload.so
	install -D -m 0644 client/toegw.h $(DESTDIR)$(PREFIX)/include/toegw.h
	install -D -m 0644 docs/toegw.8 $(DESTDIR)$(PREFIX)/share/man/man8/toegw.8
	install -D -m 0644 scripts/toegw-completion.bash \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/toegw

$(BIN): $(MAIN_OBJ) $(LIB_OBJS) $(TOE_LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(TOE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# the dashboard page is assembled into web.o (.incbin), which -MMD does not see
$(BUILD)/api/web.o: web/index.html web/app.css web/app.js
# and the OpenAPI document into h_openapi.o
$(BUILD)/api/h_openapi.o: api/openapi.json

unit: $(UNIT_BINS)
	@mkdir -p $(BUILD)/tests
	@for t in $(patsubst tests/unit/%.c,%,$(UNIT_SKIP)); do \
	    echo "$$t: needs the TOE, and this build leaves it out (TOE_MK=)"; \
	done >$(BUILD)/tests/not-built

test: $(BIN) unit
	@scripts/run-tests $(BUILD)

# The appliance image built from the Dockerfile with podman and run against a target on a
# second namespace (tests/image/test_image.sh: slow, it builds the image).
test-image:
	@bash tests/image/test_image.sh

asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/toegw \
	    OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	    -fno-sanitize-recover=undefined" build-asan/toegw unit
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    TOEGW_BIN=$(CURDIR)/build-asan/toegw scripts/run-tests build-asan

# ThreadSanitizer: toegw, the unit tests and the TOE's driver built with -fsanitize=thread in
# build-tsan/, then the unit tests and the integration tests that run toegw's threads
# (TSAN_TESTS: serve, the API and its history sampler, NBD and its TLS, the storage threads,
# the TOE and its zero-copy calls, the broker and its socket, the soak). Reports go to files under
# build-tsan/tsan-reports/ and any report fails the run (scripts/run-tests checks).
TSAN_TESTS ?= serve api nbd_data nbd_faults nbd_export toe_iscsi toe_conns toe_wire broker \
    recovery soak nbd_tls api_tls preload dashboard storage_threads
.PHONY: tsan tsan-clean
clean: tsan-clean
tsan-clean:
	rm -rf build-tsan
tsan:
	$(MAKE) BUILD=build-tsan BIN=build-tsan/toegw \
	    OPT="-O1 -fno-omit-frame-pointer -fsanitize=thread" build-tsan/toegw unit
	rm -rf build-tsan/tsan-reports
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	    SAN_REPORT_DIR=$(CURDIR)/build-tsan/tsan-reports \
	    TOEGW_BIN=$(CURDIR)/build-tsan/toegw TOE_TOOL=$(CURDIR)/build-tsan/toe-tool \
	    scripts/run-tests build-tsan $(TSAN_TESTS)

demo: $(BIN)
	@scripts/demo

clean:
	rm -rf build build-asan toegw

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(PRELOAD_OBJS:.o=.d)

# Benchmark helpers (bench/): built on demand (make bench-tools), never part of toegw.
-include bench/bench.mk

# Fuzzers (tests/fuzz/): make fuzz [FUZZ_SECONDS=N]; docs/fuzzing.md.
-include tests/fuzz/fuzz.mk
