/*
 * h_openapi.c - GET /api/v1/openapi.json: the OpenAPI 3.1 document of this API.
 *
 * api/openapi.json is written by hand and pulled in by the assembler's .incbin at build
 * time, like the dashboard page (web.c); the Makefile lists it as a prerequisite of this
 * object. tests/unit/test_api_openapi.c holds it against the route table, and the API's
 * integration tests validate the answers they get against its schemas.
 */
#include "api/api_int.h"

__asm__(".pushsection .rodata.api_openapi,\"a\",@progbits\n"
        ".balign 16\n"
        ".globl api_openapi_start\n"
        ".hidden api_openapi_start\n"
        "api_openapi_start:\n"
        ".incbin \"api/openapi.json\"\n"
        ".globl api_openapi_end\n"
        ".hidden api_openapi_end\n"
        "api_openapi_end:\n"
        ".byte 0\n"
        ".balign 8\n"
        ".globl api_openapi_size\n"
        ".hidden api_openapi_size\n"
        "api_openapi_size:\n"
        ".quad api_openapi_end - api_openapi_start\n"
        ".popsection\n");

extern const char api_openapi_start[];
extern const uint64_t api_openapi_size;

const char *api_openapi_doc(size_t *len)
{
    *len = (size_t)api_openapi_size;
    return api_openapi_start;
}

void api_h_openapi(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    (void)x;
    (void)c;
    r->status = 200;
    r->ctype = "application/json";
    r->body = (char *)api_openapi_doc(&r->len);
    r->body_static = true;
}
