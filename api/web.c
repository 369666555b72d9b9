/*
 * web.c - the dashboard page, compiled into the binary.
 *
 * web/index.html is pulled in by the assembler's .incbin at build time (paths are relative
 * to the top of the tree, where make runs the compiler), so the page is edited as plain
 * HTML and the binary needs no files at run time. The Makefile must list web/index.html
 * as a prerequisite of this object: the compiler's -MMD does not see .incbin.
 */
#include "api/api_int.h"

__asm__(".pushsection .rodata.api_web,\"a\",@progbits\n"
        ".balign 16\n"
        ".globl api_web_index_start\n"
        ".hidden api_web_index_start\n"
        "api_web_index_start:\n"
        ".incbin \"web/index.html\"\n"
        ".globl api_web_index_end\n"
        ".hidden api_web_index_end\n"
        "api_web_index_end:\n"
        ".byte 0\n"
        ".balign 8\n"
        ".globl api_web_index_size\n"
        ".hidden api_web_index_size\n"
        "api_web_index_size:\n"
        ".quad api_web_index_end - api_web_index_start\n"
        ".popsection\n");

extern const char api_web_index_start[];
extern const uint64_t api_web_index_size;

const char *api_web_page(size_t *len)
{
    *len = (size_t)api_web_index_size;
    return api_web_index_start;
}
