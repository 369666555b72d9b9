# fuzz.mk - the libFuzzer harnesses of tests/fuzz/, included by the top Makefile.
#
#   make fuzz [FUZZ_SECONDS=N] [FUZZERS="url text"]
#
# builds every fuzzer with clang, libFuzzer, ASan and UBSan into build-fuzz/ (its own
# build directory: the whole tree is compiled again there with those flags) and runs each
# for FUZZ_SECONDS seconds (default 10), two at a time, with tests/fuzz/run. Crashes land
# in build-fuzz/artifacts/<name>/; a crash that is fixed keeps its input in
# tests/fuzz/regress/<name>/, which the unit test test_fuzz_regress replays in the
# normal build (the harnesses are linked into it; only the fuzz build has
# LLVMFuzzerTestOneInput, in tests/fuzz/fuzz_main.c). See docs/fuzzing.md.

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 10
FUZZ_JOBS    ?= 2
FUZZ_ALL     := pdu session text chap scsi url nbd api bproto $(if $(TOE_SRCS),frame)
FUZZERS      ?= $(FUZZ_ALL)
# Every UBSan check aborts, but those tests/fuzz/ubsan-open.supp suppresses for known open
# findings (a suppression needs a recoverable check; tests/fuzz/run sets halt_on_error=1).
FUZZ_UBSAN_OPEN := pointer-overflow,nonnull-attribute
FUZZ_OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                $(if $(FUZZ_UBSAN_OPEN),-fsanitize-recover=$(FUZZ_UBSAN_OPEN))

# The harnesses (fuzz_<name>.c and what they share), without the libFuzzer entry point.
FUZZ_LIB_SRCS := $(filter-out tests/fuzz/fuzz_main.c $(if $(TOE_SRCS),,tests/fuzz/fuzz_frame.c), \
                   $(wildcard tests/fuzz/*.c))
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(FUZZ_LIB_SRCS))
FUZZ_BINS     := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZERS))

# The replay test calls the harnesses' entry points directly.
$(BUILD)/tests/test_fuzz_regress: $(FUZZ_LIB_OBJS)

$(BUILD)/fuzz/main_%.o: tests/fuzz/fuzz_main.c tests/fuzz/fuzz.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -DFUZZ_TARGET=fuzz_$* -c -o $@ $<

$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/main_%.o $(FUZZ_LIB_OBJS) $(LIB_OBJS) $(TOE_LIBS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# The seed recorder (tests/fuzz/record-seeds): the session harness's client steps against
# a real target, built in the normal build directory.
$(BUILD)/fuzz/record_session: tests/fuzz/tools/record_session.c $(FUZZ_LIB_OBJS) \
                              $(LIB_OBJS) $(TOE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: fuzz fuzz-build fuzz-bins fuzz-clean fuzz-tools
fuzz-bins: $(FUZZ_BINS)
fuzz-tools: $(BUILD)/fuzz/record_session

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT="$(FUZZ_OPT)" FUZZERS="$(FUZZERS)" fuzz-bins

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run $(FUZZ_SECONDS) $(FUZZERS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

# dependency files are made by the compiler, never by a rule
$(BUILD)/fuzz/main_%.d: ;
-include $(wildcard $(FUZZ_LIB_OBJS:.o=.d) $(BUILD)/fuzz/main_*.d)
