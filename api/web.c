/*
 * web.c - the dashboard, compiled into the binary: the page (web/index.html), its style
 * (web/app.css, GET /app.css) and its script (web/app.js, GET /app.js).
 *
 * The files are pulled in by the assembler's .incbin at build time (paths are relative to
 * the top of the tree, where make runs the compiler), so the dashboard is edited as plain
 * HTML, CSS and JavaScript and the binary needs no files at run time. The Makefile must
 * list the files as prerequisites of this object: the compiler's -MMD does not see .incbin.
 * The page loads nothing else, from nowhere else (its Content-Security-Policy: server.c).
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

/* name_start .. name_end: the file's bytes, a NUL after them; name_size: their count */
#define WEB_FILE(name, file)                                                              \
    ".balign 16\n"                                                                        \
    ".globl " name "_start\n"                                                             \
    ".hidden " name "_start\n" name "_start:\n"                                           \
    ".incbin \"" file "\"\n"                                                              \
    ".globl " name "_end\n"                                                               \
    ".hidden " name "_end\n" name "_end:\n"                                               \
    ".byte 0\n"                                                                           \
    ".balign 8\n"                                                                         \
    ".globl " name "_size\n"                                                              \
    ".hidden " name "_size\n" name "_size:\n"                                             \
    ".quad " name "_end - " name "_start\n"

__asm__(".pushsection .rodata.api_web,\"a\",@progbits\n"
        WEB_FILE("api_web_index", "web/index.html")
        WEB_FILE("api_web_css", "web/app.css")
        WEB_FILE("api_web_js", "web/app.js")
        ".popsection\n");

extern const char api_web_index_start[], api_web_css_start[], api_web_js_start[];
extern const uint64_t api_web_index_size, api_web_css_size, api_web_js_size;

const char *api_web_page(size_t *len)
{
    *len = (size_t)api_web_index_size;
    return api_web_index_start;
}

const char *api_web_asset(const char *path, size_t *len, const char **ctype)
{
    if (strcmp(path, "/app.css") == 0) {
        *len = (size_t)api_web_css_size;
        *ctype = "text/css; charset=utf-8";
        return api_web_css_start;
    }
    if (strcmp(path, "/app.js") == 0) {
        *len = (size_t)api_web_js_size;
        *ctype = "text/javascript; charset=utf-8";
        return api_web_js_start;
    }
    return NULL;
}

/* GET /app.css, /app.js (the route's arg is the file's name). */
void api_h_asset(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    char path[API_ID_MAX + 2];
    const char *body;

    (void)x;
    snprintf(path, sizeof(path), "/%s", c->route->arg);
    body = api_web_asset(path, &r->len, &r->ctype);
    if (!body) {
        api_resp_err(r, 404, "no such resource");
        return;
    }
    r->status = 200;
    r->body = (char *)body;
    r->body_static = true;
}
