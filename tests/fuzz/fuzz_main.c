/*
 * fuzz_main.c - libFuzzer's entry point around one harness. Built once per fuzzer with
 * -DFUZZ_TARGET=fuzz_<name> (tests/fuzz/fuzz.mk); never part of the normal build, where
 * tests/unit/test_fuzz_regress.c calls the harnesses itself.
 */
#include <stddef.h>
#include <stdint.h>

#include "tests/fuzz/fuzz.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=fuzz_<name>"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FUZZ_TARGET(data, size);
}
