/*
 * test_api_door_sniff.c - what the API's front door makes of a connection's first bytes
 * (api/door_sniff.c): a whole HTTP header on a plain port; on an HTTPS port a whole first
 * TLS record, plain HTTP (answered with a plain 400) and junk (closed).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "api/api_int.h"

static enum api_sniff sniff(const char *s, size_t n, bool tls)
{
    return api_door_sniff((const unsigned char *)s, n, tls, false);
}

Test(door_sniff, plain_http_header)
{
    const char *h = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

    cr_assert_eq(sniff(h, strlen(h), false), API_SNIFF_READY);
    cr_assert_eq(sniff(h, strlen(h) - 2, false), API_SNIFF_WAIT);
    cr_assert_eq(sniff("GET / HTTP/1.0\n\n", 16, false), API_SNIFF_READY);
    cr_assert_eq(sniff("", 0, false), API_SNIFF_WAIT);
    cr_assert_eq(api_door_sniff((const unsigned char *)"GET /", 5, false, true),
                 API_SNIFF_READY, "a full peek goes to the server, which answers 431");
}

Test(door_sniff, tls_record)
{
    /* a handshake record of 8 bytes: 16 03 01 00 08 + 8 bytes */
    const char rec[] = "\x16\x03\x01\x00\x08" "abcdefgh";

    cr_assert_eq(sniff(rec, 13, true), API_SNIFF_READY);
    cr_assert_eq(sniff(rec, 12, true), API_SNIFF_WAIT);
    cr_assert_eq(sniff(rec, 3, true), API_SNIFF_WAIT);
    cr_assert_eq(sniff(rec, 1, true), API_SNIFF_WAIT);
    cr_assert_eq(api_door_sniff((const unsigned char *)rec, 12, true, true), API_SNIFF_READY);
}

Test(door_sniff, plain_http_on_the_https_port)
{
    cr_assert_eq(sniff("GET / HTTP/1.1\r\n", 16, true), API_SNIFF_PLAIN);
    cr_assert_eq(sniff("POST", 4, true), API_SNIFF_PLAIN, "a method still arriving");
    cr_assert_eq(sniff("G", 1, true), API_SNIFF_PLAIN);
}

Test(door_sniff, junk_on_the_https_port)
{
    cr_assert_eq(sniff("\x00\x01\x02", 3, true), API_SNIFF_JUNK);
    cr_assert_eq(sniff("get / HTTP/1.1", 14, true), API_SNIFF_JUNK);
    cr_assert_eq(sniff("\x16\x07\x01", 3, true), API_SNIFF_JUNK, "not TLS version 3.x");
    cr_assert_eq(sniff("SSH-2.0-x", 9, true), API_SNIFF_JUNK);
}
