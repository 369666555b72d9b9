/*
 * version.c - toegw's version and its libraries' (version.h).
 */
#include "appliance/version.h"

#include <isa-l.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>

#include "appliance/net.h"

#ifndef TOEGW_VERSION
#define TOEGW_VERSION "0.1.0"
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

const char *app_version(void)
{
    return TOEGW_VERSION;
}

void app_version_info(struct api_info *info)
{
    size_t n = 0;

    info->version = TOEGW_VERSION;
    info->libraries[n].name = "openssl";
    info->libraries[n++].version = OpenSSL_version(OPENSSL_VERSION_STRING);
    info->libraries[n].name = "isa-l";
    info->libraries[n++].version = STR(ISAL_MAJOR_VERSION) "." STR(ISAL_MINOR_VERSION) "."
                                   STR(ISAL_PATCH_VERSION);
    info->libraries[n].name = "jansson";
    info->libraries[n++].version = jansson_version_str();
    info->libraries[n].name = "libmicrohttpd";
    info->libraries[n++].version = MHD_get_version();
    if (app_net_pcap_version()) {
        info->libraries[n].name = "libpcap";
        info->libraries[n++].version = app_net_pcap_version();
    }
    if (app_net_toe_stack()) {
        info->libraries[n].name = "toe";
        info->libraries[n++].version = app_net_toe_stack();
    }
    info->libraries[n].name = NULL;
}
