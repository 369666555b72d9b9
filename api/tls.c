/*
 * tls.c - HTTPS for the REST API: libmicrohttpd's GnuTLS support with the appliance's
 * certificate and key, TLS 1.2 and 1.3 only.
 *
 * The front door (door.c) still accepts every connection; on an HTTPS port it hands a
 * connection over once its first TLS record (the ClientHello) is in, and the header
 * deadline then covers the handshake as well as the request header. Plain HTTP sent to
 * an HTTPS port gets a plain 400 that says so.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>

#include "api/api_int.h"

int api_tls_options(const struct api_config *cfg, unsigned *flags,
                    struct MHD_OptionItem *items, char *err, size_t errlen)
{
    size_t n = 0;

    if (cfg->tls_cert_pem && cfg->tls_key_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "https is not available: libmicrohttpd %s was built "
                     "without tls (gnutls)", MHD_get_version());
            return -ENOTSUP;
        }
        *flags |= MHD_USE_TLS;
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
                                              (void *)cfg->tls_cert_pem };
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
                                              (void *)cfg->tls_key_pem };
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
                                              (void *)API_TLS_PRIORITIES };
    }
    items[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    return 0;
}
