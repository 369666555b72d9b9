/*
 * version.h - toegw's version and the versions of the libraries it is built with, for
 * `toegw version` and GET /api/v1/info.
 */
#ifndef TOEGW_APPLIANCE_VERSION_H
#define TOEGW_APPLIANCE_VERSION_H

#include "api/api.h"

const char *app_version(void);
/*
 * Fill info's version and libraries (the ones appliance/ links: OpenSSL's libcrypto, ISA-L,
 * and the TOE's TCP/IP stack when built in). The strings are static.
 */
void app_version_info(struct api_info *info);

#endif
