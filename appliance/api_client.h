/*
 * api_client.h - a client of a running appliance's REST API, for the commands that read
 * it (toegw netstat): one GET over plain HTTP, or over HTTPS with the server's certificate
 * checked against a CA file and the address asked for.
 */
#ifndef TOEGW_APPLIANCE_API_CLIENT_H
#define TOEGW_APPLIANCE_API_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct app_api_client {
    /* "host[:port]" (port 8080 by default), "unix:/path", or either of those after
       "http://"; "https://host[:port]" speaks TLS */
    const char *api;
    /* HTTPS: the PEM certificates to trust (the appliance's own self-signed certificate,
       or the CA that signed it) */
    const char *cacert;
};

/* Whether c->api names an HTTPS address. */
bool app_api_is_https(const char *api);

/*
 * GET path with the bearer token. Returns the body (NUL-terminated, de-chunked; caller
 * frees) with the HTTP status in *status, or NULL with a one-line reason in err (never
 * the token).
 */
char *app_api_get(const struct app_api_client *c, const char *path, const char *token,
                  int *status, char *err, size_t errlen);

#endif
