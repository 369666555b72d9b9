/*
 * fuzz.h - the entry points of the fuzz harnesses (tests/fuzz/fuzz_<name>.c).
 *
 * Each harness is one function `int fuzz_<name>(const uint8_t *data, size_t size)` that
 * feeds one input to the parser it covers and checks the properties that must hold for any
 * input; it returns 0 and never keeps state that changes how the next input behaves. The
 * fuzz build (tests/fuzz/fuzz.mk) wraps one of them in LLVMFuzzerTestOneInput; the unit
 * test tests/unit/test_fuzz_regress.c calls them directly to replay the kept inputs in the
 * normal build. A violated property is a crash: fuzz_fail() prints it and aborts.
 */
#ifndef TOEGW_TESTS_FUZZ_H
#define TOEGW_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_pdu(const uint8_t *data, size_t size);     /* storage/pdu.[ch]: BHS codec, CRC32C */
int fuzz_session(const uint8_t *data, size_t size); /* storage/session.c: target bytes */
int fuzz_text(const uint8_t *data, size_t size);    /* storage/text.c: keys, negotiation */
int fuzz_chap(const uint8_t *data, size_t size);    /* storage/chap.c */
int fuzz_scsi(const uint8_t *data, size_t size);    /* storage/scsi.c: response decoders */
int fuzz_url(const uint8_t *data, size_t size);     /* storage/url.c */
int fuzz_nbd(const uint8_t *data, size_t size);     /* storage/nbd.c: client bytes */
int fuzz_api(const uint8_t *data, size_t size);     /* api/routes.c, api/validate.c */
int fuzz_frame(const uint8_t *data, size_t size);   /* toe_emu/frame.c */
int fuzz_bproto(const uint8_t *data, size_t size);  /* common/bproto.c: broker socket */

/* A property does not hold: print "fuzz property: ..." to stderr and abort(). */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FUZZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) \
            fuzz_fail(__VA_ARGS__); \
    } while (0)

/*
 * The same for a property whose code is owned elsewhere and known to fail (the bugs listed
 * under tests/fuzz/regress/<name>/open/): checked only when TOEGW_FUZZ_OPEN=1, so that a
 * known failure does not stop the fuzzer from finding others; otherwise ignored.
 */
int fuzz_open_checks(void);
#define FUZZ_OPEN_CHECK(cond, ...) \
    do { \
        if (!(cond) && fuzz_open_checks()) \
            fuzz_fail(__VA_ARGS__); \
    } while (0)

/* Logging at error level only, once (TOEGW_FUZZ_LOG=debug|info shows more). */
void fuzz_quiet_logs(void);

/* True when s[0..n) is one line of printable ASCII (what an error message must be). */
int fuzz_printable_line(const char *s, size_t n);

/* A NUL-terminated copy of data (caller frees); abort() when out of memory. */
char *fuzz_strndup(const uint8_t *data, size_t size);

#endif
