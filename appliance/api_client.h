/*
 * api_client.h - a client of a running appliance's REST API, for the commands that talk
 * to it (toegw netstat, sessions, login, ...): one request over plain HTTP, or over HTTPS with the server's certificate
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
 * METHOD path with the bearer token and, unless NULL, a JSON body. Returns the answer's
 * body (NUL-terminated, de-chunked; caller frees) with the HTTP status in *status, or NULL
 * with a one-line reason in err (never the token or the body).
 */
char *app_api_request(const struct app_api_client *c, const char *method, const char *path,
                      const char *token, const char *body_json, int *status, char *err,
                      size_t errlen);

#endif
