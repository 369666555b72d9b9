/*
 * match.c - TOEGW_OFFLOAD: which connect() destinations the preload shim asks the broker for.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/preload_int.h"

/* One entry into *r. 0 or -EINVAL. */
static int parse_entry(const char *e, struct pl_rule *r)
{
    char addr[64];
    const char *colon = strrchr(e, ':');
    size_t alen = colon ? (size_t)(colon - e) : strlen(e);
    unsigned long v;
    char *end;

    memset(r, 0, sizeof(*r));
    if (colon) {
        errno = 0;
        v = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || errno || v == 0 || v > 65535)
            return -EINVAL;
        r->port = (uint16_t)v;
    }
    if (alen >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, e, alen);
    addr[alen] = '\0';
    if (alen == 0 || !strcmp(addr, "*"))
        return colon ? 0 : -EINVAL; /* any address needs a port: "*" alone is too broad */
    char *slash = strchr(addr, '/');
    unsigned long len = 32;
    if (slash) {
        *slash = '\0';
        errno = 0;
        len = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || errno || len > 32)
            return -EINVAL;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, addr, &a) != 1)
        return -EINVAL;
    r->mask = len ? ~0u << (32 - len) : 0;
    r->net = ntohl(a.s_addr) & r->mask;
    return 0;
}

int pl_rules_parse(const char *spec, struct pl_rules *out, char *bad, size_t badlen)
{
    char buf[1024], *save = NULL;
    int ret = 0;

    memset(out, 0, sizeof(*out));
    if (!spec || !*spec)
        spec = ":3260";
    if (!strcmp(spec, "off") || !strcmp(spec, "none"))
        return 0;
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *e = strtok_r(buf, ", \t\n", &save); e; e = strtok_r(NULL, ", \t\n", &save)) {
        if (out->n < PL_MAX_RULES && parse_entry(e, &out->r[out->n]) == 0) {
            out->n++;
            continue;
        }
        if (ret == 0 && bad)
            snprintf(bad, badlen, "%s", e);
        ret = -EINVAL;
    }
    return ret;
}

bool pl_rules_match(const struct pl_rules *rules, const struct sockaddr_in *dst)
{
    uint32_t a = ntohl(dst->sin_addr.s_addr);
    uint16_t p = ntohs(dst->sin_port);

    for (size_t i = 0; i < rules->n; i++) {
        const struct pl_rule *r = &rules->r[i];
        if ((a & r->mask) == r->net && (!r->port || r->port == p))
            return true;
    }
    return false;
}
