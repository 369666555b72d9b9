/*
 * fuzz_nbd.h - the volume the NBD fuzzer exports (tests/fuzz/fuzz_nbd.c). Its export name
 * is sto_volume_id(FUZZ_NBD_TARGET, FUZZ_NBD_LUN); tests/fuzz/record-seeds captures NBD
 * clients against a tgtd LUN of the same target name, LUN and size, so their bytes name it.
 */
#ifndef TOEGW_TESTS_FUZZ_NBD_H
#define TOEGW_TESTS_FUZZ_NBD_H

#define FUZZ_NBD_TARGET "iqn.2026-11.io.toegw.fuzz:disk"
#define FUZZ_NBD_LUN 1
#define FUZZ_NBD_BLOCK 512
#define FUZZ_NBD_BLOCKS 2048      /* 1 MiB */

#endif
