/*
 * problem.c - RFC 9457 problem details, the status of each error, bearer-token checks and
 * the growable buffer the renderers write into.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

/* ---------------------------------------------------------------- api_buf */

void api_buf_init(struct api_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void api_buf_free(struct api_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static bool buf_reserve(struct api_buf *b, size_t extra)
{
    size_t want, cap;
    char *p;

    if (b->oom)
        return false;
    if (extra > SIZE_MAX / 2 - b->len)
        goto oom;
    want = b->len + extra + 1;
    if (want <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        goto oom;
    b->data = p;
    b->cap = cap;
    return true;
oom:
    b->oom = true;
    return false;
}

void api_buf_put(struct api_buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void api_buf_puts(struct api_buf *b, const char *s)
{
    api_buf_put(b, s, strlen(s));
}

void api_buf_printf(struct api_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!buf_reserve(b, 64))
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!buf_reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

char *api_buf_steal(struct api_buf *b, size_t *len)
{
    char *p;

    if (b->oom) {
        api_buf_free(b);
        return NULL;
    }
    if (!b->data) {
        if (!buf_reserve(b, 0))
            return NULL;
        b->data[0] = '\0';
    }
    p = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof(*b));
    return p;
}

/* ---------------------------------------------------------------- statuses */

struct status_info {
    int status;
    const char *title;
    const char *slug;
};

/* Titles are short lowercase phrases, like the project's log messages. */
static const struct status_info statuses[] = {
    { 400, "bad request", "bad-request" },
    { 401, "unauthorized", "unauthorized" },
    { 403, "forbidden", "forbidden" },
    { 404, "not found", "not-found" },
    { 405, "method not allowed", "method-not-allowed" },
    { 409, "conflict", "conflict" },
    { 411, "length required", "length-required" },
    { 413, "content too large", "content-too-large" },
    { 415, "unsupported media type", "unsupported-media-type" },
    { 416, "range not satisfiable", "range-not-satisfiable" },
    { 422, "invalid request", "invalid-request" },
    { 500, "internal error", "internal-error" },
    { 501, "not implemented", "not-implemented" },
    { 502, "bad gateway", "bad-gateway" },
    { 503, "service unavailable", "unavailable" },
    { 504, "portal unreachable", "portal-unreachable" },
};

static const struct status_info *status_find(int status)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (statuses[i].status == status)
            return &statuses[i];
    return NULL;
}

const char *api_status_title(int status)
{
    const struct status_info *si = status_find(status);

    return si ? si->title : (status >= 500 ? "internal error" : "error");
}

void api_err_vset(struct api_err *e, int status, const char *fmt, va_list ap)
{
    const struct status_info *si = status_find(status);

    e->status = status;
    e->title = si ? si->title : api_status_title(status);
    e->type = si ? si->slug : "error";
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
}

void api_err_set(struct api_err *e, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_err_vset(e, status, fmt, ap);
    va_end(ap);
}

void api_err_set_kind(struct api_err *e, int status, const char *title, const char *slug,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_err_vset(e, status, fmt, ap);
    va_end(ap);
    e->title = title;
    e->type = slug;
}

int api_status_of_class(enum sto_err_class cls)
{
    switch (cls) {
    case STO_ERR_INVALID:
        return 422;
    case STO_ERR_NOT_FOUND:
        return 404;
    case STO_ERR_CONFLICT:
        return 409;
    case STO_ERR_LOGIN:
        return 502;
    case STO_ERR_UNREACHABLE:
        return 504;
    case STO_ERR_IO:
        return 502;
    case STO_ERR_RANGE:
        return 416;
    case STO_ERR_UNAVAILABLE:
        return 503;
    case STO_ERR_NONE:
    case STO_ERR_INTERNAL:
    default:
        return 500;
    }
}

/* A call that failed without a class: guess the class from its errno. */
static enum sto_err_class class_of_errno(int err)
{
    switch (-err) {
    case EINVAL:
        return STO_ERR_INVALID;
    case ENOENT:
        return STO_ERR_NOT_FOUND;
    case EEXIST:
    case EBUSY:
    case EADDRINUSE:
        return STO_ERR_CONFLICT;
    case EACCES:
    case EPERM:
        return STO_ERR_LOGIN;
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ECONNREFUSED:
        return STO_ERR_UNREACHABLE;
    case EIO:
        return STO_ERR_IO;
    case ERANGE:
        return STO_ERR_RANGE;
    case EAGAIN:
    case ESHUTDOWN:
    case ENOTCONN:
        return STO_ERR_UNAVAILABLE;
    default:
        return STO_ERR_INTERNAL;
    }
}

void api_err_from_sto(struct api_err *e, int ret, const struct sto_result *res)
{
    enum sto_err_class cls = res ? res->cls : STO_ERR_NONE;
    const char *msg = res && res->msg[0] ? res->msg : NULL;
    char fallback[128];
    int status;

    if (cls == STO_ERR_NONE)
        cls = class_of_errno(ret ? ret : (res ? res->err : -EIO));
    if (!msg) {
        snprintf(fallback, sizeof(fallback), "%s",
                 strerror(ret < 0 ? -ret : (res && res->err < 0 ? -res->err : EIO)));
        msg = fallback;
    }
    status = api_status_of_class(cls);
    switch (cls) {
    case STO_ERR_LOGIN:
        api_err_set_kind(e, status, "login failed", "login-failed", "%s", msg);
        break;
    case STO_ERR_IO:
        api_err_set_kind(e, status, "i/o error", "io-error", "%s", msg);
        break;
    default:
        api_err_set(e, status, "%s", msg);
        break;
    }
}

char *api_problem_render(const struct api_err *e, size_t *len)
{
    json_t *j;
    char *out;

    j = json_pack("{s:s+, s:s, s:i, s:s}", "type", "urn:toegw:problem:", e->type ? e->type
                  : "error", "title", e->title ? e->title : api_status_title(e->status),
                  "status", e->status, "detail", e->detail);
    if (!j)
        return NULL;
    out = api_json_dump(j, len);
    json_decref(j);
    return out;
}

/*
 * Compare the Authorization header to "Bearer TOKEN" without leaking where they differ:
 * the loop runs over the whole token whatever the input (only the token's length, which
 * is not secret in practice, shapes the timing). The scheme is case-insensitive
 * (RFC 9110 §11.1).
 */
bool api_auth_ok(const char *header, const char *token, size_t token_len)
{
    volatile unsigned char diff = 0;
    size_t glen;

    if (!header || !token || token_len == 0)
        return false;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return false;
    header += 7;
    while (*header == ' ' || *header == '\t')
        header++;
    glen = strlen(header);
    while (glen > 0 && (header[glen - 1] == ' ' || header[glen - 1] == '\t'))
        glen--;
    diff |= (unsigned char)(glen != token_len);
    for (size_t i = 0; i < token_len; i++) {
        unsigned char g = i < glen ? (unsigned char)header[i] : 0;

        diff |= g ^ (unsigned char)token[i];
    }
    return diff == 0;
}
