/*
 * iname.c - iSCSI names of the initiator (iname.h).
 */
#include "storage/iname.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool isc_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n <= 4 || n > ISC_NAME_MAX)
        return false;
    if (strncasecmp(name, "iqn.", 4) != 0 && strncasecmp(name, "eui.", 4) != 0 &&
        strncasecmp(name, "naa.", 4) != 0)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == ':' || c == '_'))
            return false;
    }
    return true;
}

int isc_name_generate(char *out, size_t outlen)
{
    unsigned char r[6];
    int n;

    if (RAND_bytes(r, sizeof(r)) != 1)
        return -EIO;
    n = snprintf(out, outlen, "%s%02x%02x%02x%02x%02x%02x", ISC_NAME_PREFIX, r[0], r[1], r[2],
                 r[3], r[4], r[5]);
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}
