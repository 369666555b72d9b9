/*
 * routes.c - which endpoint a raw request target names, and what it accepts.
 *
 * Routing works on the target exactly as the client sent it (libmicrohttpd's URI log
 * callback hands it over before any percent-decoding), so "%2F" can never turn into a
 * path separator and "%2e%2e" never into a dot segment: no resource of this API needs
 * percent-encoding in its path, so any '%' there is refused outright.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"

enum api_method api_method_parse(const char *m)
{
    static const struct {
        const char *name;
        enum api_method m;
    } methods[] = {
        { "GET", API_M_GET },   { "HEAD", API_M_HEAD },     { "POST", API_M_POST },
        { "PUT", API_M_PUT },   { "PATCH", API_M_PATCH },   { "DELETE", API_M_DELETE },
    };

    if (!m)
        return API_M_OTHER;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].m;
    return API_M_OTHER;
}

const char *api_method_name(enum api_method m)
{
    switch (m) {
    case API_M_GET:
        return "GET";
    case API_M_HEAD:
        return "HEAD";
    case API_M_POST:
        return "POST";
    case API_M_PUT:
        return "PUT";
    case API_M_PATCH:
        return "PATCH";
    case API_M_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

void api_allow_str(unsigned methods, char *buf, size_t len)
{
    static const enum api_method order[] = {
        API_M_GET, API_M_HEAD, API_M_POST, API_M_PUT, API_M_PATCH, API_M_DELETE,
    };
    size_t pos = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int n;

        if (!(methods & order[i]))
            continue;
        n = snprintf(buf + pos, len - pos, "%s%s", pos ? ", " : "", api_method_name(order[i]));
        if (n < 0 || (size_t)n >= len - pos)
            return;
        pos += (size_t)n;
    }
}

/* Ids are short runs of [A-Za-z0-9_-]; anything else cannot name a resource. */
bool api_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > API_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Reservation ids are decimal (1..UINT64_MAX). */
static bool decimal_id(const char *s, size_t n)
{
    uint64_t v;

    return api_parse_u64(s, n, &v) == 0 && v != 0;
}

/* Bytes that may appear in a path we serve: RFC 3986 pchar less '%', plus '/'. */
static bool path_byte_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return strchr("-._~!$&'()*+,;=:@/", c) != NULL && c != '\0';
}

#define SEG_MAX 8

struct seg {
    const char *p;
    size_t n;
};

static bool seg_is(const struct seg *s, const char *lit)
{
    return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

static void set_route(struct api_route *out, enum api_route_id id, unsigned methods, bool auth)
{
    out->id = id;
    out->methods = methods;
    out->auth = auth;
}

static void set_arg(struct api_route *out, const struct seg *s)
{
    memcpy(out->arg, s->p, s->n);
    out->arg[s->n] = '\0';
}

/* Match the segments after /api/v1. */
static int match_v1(const struct seg *sg, size_t ns, struct api_route *out)
{
    const unsigned get = API_M_GET | API_M_HEAD;

    if (ns == 1 && seg_is(&sg[0], "stacks")) {
        set_route(out, API_R_STACKS, get, true);
    } else if (ns == 2 && seg_is(&sg[0], "stacks")) {
        if (seg_is(&sg[1], "toe"))
            set_route(out, API_R_STACK, get | API_M_PATCH, true);
        else if (seg_is(&sg[1], "host"))
            set_route(out, API_R_STACK, get, true);
        else
            return -ENOENT;
        set_arg(out, &sg[1]);
    } else if (ns == 1 && seg_is(&sg[0], "reservations")) {
        set_route(out, API_R_RESERVATIONS, get | API_M_POST, true);
    } else if (ns == 2 && seg_is(&sg[0], "reservations")) {
        if (!decimal_id(sg[1].p, sg[1].n))
            return -ENOENT;
        set_route(out, API_R_RESERVATION, get | API_M_DELETE, true);
        set_arg(out, &sg[1]);
    } else if (ns == 1 && seg_is(&sg[0], "connections")) {
        set_route(out, API_R_CONNECTIONS, get, true);
    } else if (ns == 1 && seg_is(&sg[0], "discovery")) {
        set_route(out, API_R_DISCOVERY, API_M_POST, true);
    } else if (ns == 1 && seg_is(&sg[0], "sessions")) {
        set_route(out, API_R_SESSIONS, get | API_M_POST, true);
    } else if (ns == 2 && seg_is(&sg[0], "sessions")) {
        if (!api_id_valid(sg[1].p, sg[1].n))
            return -ENOENT;
        set_route(out, API_R_SESSION, get | API_M_DELETE, true);
        set_arg(out, &sg[1]);
    } else if (ns == 1 && seg_is(&sg[0], "volumes")) {
        set_route(out, API_R_VOLUMES, get, true);
    } else if ((ns == 2 || ns == 3) && seg_is(&sg[0], "volumes")) {
        if (!api_id_valid(sg[1].p, sg[1].n))
            return -ENOENT;
        if (ns == 2)
            set_route(out, API_R_VOLUME, get, true);
        else if (seg_is(&sg[2], "data"))
            set_route(out, API_R_VOLUME_DATA, get | API_M_PUT, true);
        else
            return -ENOENT;
        set_arg(out, &sg[1]);
    } else if (ns == 1 && seg_is(&sg[0], "capture")) {
        set_route(out, API_R_CAPTURE, get | API_M_POST | API_M_DELETE, true);
    } else if (ns == 1 && seg_is(&sg[0], "capture.pcap")) {
        set_route(out, API_R_CAPTURE_PCAP, get, true);
    } else {
        return -ENOENT;
    }
    return 0;
}

int api_route_match(const char *raw, struct api_route *out)
{
    const unsigned get = API_M_GET | API_M_HEAD;
    struct seg sg[SEG_MAX];
    size_t ns = 0, plen;
    const char *q, *p;

    memset(out, 0, sizeof(*out));
    if (!raw)
        return -EINVAL;
    /* absolute-form (RFC 9112 §3.2.2): route on its path; the authority is not ours */
    if (strncasecmp(raw, "http://", 7) == 0 || strncasecmp(raw, "https://", 8) == 0) {
        raw = strstr(raw, "://") + 3;
        raw += strcspn(raw, "/?#");
        if (raw[0] != '/')
            return -EINVAL;
    }
    if (raw[0] != '/')
        return -EINVAL;
    q = strchr(raw, '?');
    plen = q ? (size_t)(q - raw) : strlen(raw);
    out->query = q ? q + 1 : NULL;
    for (size_t i = 0; i < plen; i++)
        if (!path_byte_ok((unsigned char)raw[i]))
            return -EINVAL;
    if (q && strchr(q, '#'))
        return -EINVAL;

    if (plen == 1) {
        set_route(out, API_R_PAGE, get, false);
        return 0;
    }
    /* split into segments; "." and ".." are refused, empty ones (//, trailing /) 404 */
    p = raw + 1;
    while (p <= raw + plen) {
        const char *end = memchr(p, '/', (size_t)(raw + plen - p));
        size_t n = end ? (size_t)(end - p) : (size_t)(raw + plen - p);

        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        if (n == 0 || ns == SEG_MAX)
            return -ENOENT;
        sg[ns].p = p;
        sg[ns].n = n;
        ns++;
        if (!end)
            break;
        p = end + 1;
    }

    if (ns == 1 && seg_is(&sg[0], "livez"))
        set_route(out, API_R_LIVEZ, get, false);
    else if (ns == 1 && seg_is(&sg[0], "readyz"))
        set_route(out, API_R_READYZ, get, false);
    else if (ns == 1 && seg_is(&sg[0], "metrics"))
        set_route(out, API_R_METRICS, get, false);
    else if (ns >= 3 && seg_is(&sg[0], "api") && seg_is(&sg[1], "v1"))
        return match_v1(sg + 2, ns - 2, out);
    else
        return -ENOENT;
    return 0;
}

enum api_body_kind api_route_body(const struct api_route *r, enum api_method m)
{
    switch (m) {
    case API_M_POST:
        if (r->id == API_R_CAPTURE)
            return API_BODY_JSON_OPT;
        return API_BODY_JSON;
    case API_M_PATCH:
        return API_BODY_JSON;
    case API_M_PUT:
        return API_BODY_RAW;
    default:
        return API_BODY_NONE;
    }
}

/*
 * JSON bodies may come without a type, as application/json or any +json type, and as
 * application/x-www-form-urlencoded or text/plain, which is what `curl -d` and a browser's
 * simple request send; clearly other formats (multipart, XML, ...) are refused with 415.
 * Raw data takes any type.
 */
bool api_content_type_ok(enum api_body_kind kind, const char *ctype)
{
    static const char *const json_ok[] = {
        "application/json", "application/x-www-form-urlencoded", "text/plain",
    };
    const char *semi;
    size_t n;

    if (kind != API_BODY_JSON && kind != API_BODY_JSON_OPT)
        return true;
    if (!ctype)
        return true;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    if (!*ctype)
        return true;
    semi = strchr(ctype, ';');
    n = semi ? (size_t)(semi - ctype) : strlen(ctype);
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(json_ok) / sizeof(json_ok[0]); i++)
        if (n == strlen(json_ok[i]) && strncasecmp(ctype, json_ok[i], n) == 0)
            return true;
    /* application/problem+json, application/merge-patch+json, ... */
    if (n > 5 && strncasecmp(ctype + n - 5, "+json", 5) == 0 && memchr(ctype, '/', n))
        return true;
    return false;
}
