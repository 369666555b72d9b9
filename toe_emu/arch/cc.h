/*
 * arch/cc.h - lwIP's compiler and platform hooks for the TOE firmware (Linux, GCC/Clang).
 *
 * Assertions and diagnostics go to our own functions (toe_emu/fw.c) so that an lwIP
 * invariant failing says so on stderr in our format before the process aborts.
 */
#ifndef TOEGW_TOE_ARCH_CC_H
#define TOEGW_TOE_ARCH_CC_H

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>

#define PACK_STRUCT_STRUCT __attribute__((packed))

/* Byte swaps as compiler builtins rather than lwIP's out-of-line helpers. */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define lwip_htons(x) ((uint16_t)__builtin_bswap16((uint16_t)(x)))
#define lwip_htonl(x) ((uint32_t)__builtin_bswap32((uint32_t)(x)))
#else
#define lwip_htons(x) ((uint16_t)(x))
#define lwip_htonl(x) ((uint32_t)(x))
#endif

void toe_lwip_assert(const char *msg, const char *file, int line) __attribute__((noreturn));
void toe_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint32_t toe_lwip_rand(void);

#define LWIP_PLATFORM_ASSERT(x) toe_lwip_assert((x), __FILE__, __LINE__)
#define LWIP_PLATFORM_DIAG(x) do { toe_lwip_diag x; } while (0)
#define LWIP_RAND() toe_lwip_rand()

#endif
