/*
 * door_sniff.c - what the first bytes of an API connection are (door.c peeks at them
 * before handing the connection to libmicrohttpd): a whole HTTP request header, or on an
 * HTTPS port a whole first TLS record, and what is neither.
 */
#include "api/api_int.h"

#define TLS_HANDSHAKE 0x16     /* the content type of a TLS record that opens a handshake */
#define TLS_RECORD_HEAD 5      /* type, version (2), length (2) */

static bool header_complete(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (b[i] != '\n')
            continue;
        if (b[i + 1] == '\n' || (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n'))
            return true;
    }
    return false;
}

/* A request line begins with a method: upper-case letters (RFC 9110 tokens in practice). */
static bool looks_like_http(const unsigned char *b, size_t n)
{
    size_t i = 0;

    while (i < n && i < 16 && b[i] >= 'A' && b[i] <= 'Z')
        i++;
    return i > 0 && (i == n || b[i] == ' ');
}

enum api_sniff api_door_sniff(const unsigned char *b, size_t n, bool tls, bool full)
{
    if (n == 0)
        return API_SNIFF_WAIT;
    if (!tls)
        return header_complete(b, n) || full ? API_SNIFF_READY : API_SNIFF_WAIT;
    if (b[0] != TLS_HANDSHAKE)
        return looks_like_http(b, n) ? API_SNIFF_PLAIN : API_SNIFF_JUNK;
    if (n >= 2 && b[1] != 0x03)
        return API_SNIFF_JUNK; /* TLS records carry version 3.x */
    if (n < TLS_RECORD_HEAD)
        return full ? API_SNIFF_READY : API_SNIFF_WAIT;
    size_t rec = ((size_t)b[3] << 8 | b[4]) + TLS_RECORD_HEAD;
    return n >= rec || full ? API_SNIFF_READY : API_SNIFF_WAIT;
}
