/*
 * netstat.c - `toegw netstat`: the unified connection table of a running appliance, read
 * from its REST API (GET /api/v1/connections), printed like `ss -tn` with an
 * offload-state column.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/cli.h"
#include "appliance/state.h"
#include "common/sockspec.h"
#include "common/transport.h"

#define RESPONSE_MAX (16u * 1024 * 1024)

/* The appliance's API at addr (host[:port], port 8080 by default, or unix:/path). */
static int connect_api(const char *addr, char *err, size_t errlen)
{
    return sockspec_connect(addr, 8080, "appliance's api", 10, err, errlen);
}

/* GET path; returns the body (caller frees) and the status, or NULL with err. */
static char *http_get(const char *addr, const char *path, const char *token, int *status,
                      char *err, size_t errlen)
{
    char req[1024];
    size_t cap = 65536, len = 0;
    char *buf, *body;
    int fd = connect_api(addr, err, errlen);

    if (fd < 0)
        return NULL;
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: toegw\r\nAuthorization: Bearer %s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n", path, token);
    if (write(fd, req, (size_t)n) != n) {
        snprintf(err, errlen, "sending the request failed: %s", strerror(errno));
        explicit_bzero(req, sizeof(req));
        close(fd);
        return NULL;
    }
    explicit_bzero(req, sizeof(req));
    buf = malloc(cap + 1);
    while (buf) {
        if (len == cap) {
            char *nb = cap < RESPONSE_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "the api's answer is too large");
        return NULL;
    }
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || !(body = strstr(buf, "\r\n\r\n"))) {
        snprintf(err, errlen, "the api sent no http response");
        free(buf);
        return NULL;
    }
    body += 4;
    /* de-chunk a chunked body in place */
    if (strcasestr(buf, "\r\nTransfer-Encoding: chunked")) {
        char *in = body, *out = body;
        for (;;) {
            char *end;
            unsigned long sz = strtoul(in, &end, 16);
            char *data = strstr(end, "\r\n");
            if (!data || sz == 0)
                break;
            data += 2;
            if ((size_t)(data - buf) + sz > len)
                break;
            memmove(out, data, sz);
            out += sz;
            in = data + sz + 2;
        }
        *out = '\0';
    }
    memmove(buf, body, strlen(body) + 1);
    return buf;
}

int app_cmd_netstat(int argc, char **argv)
{
    static const struct option opts[] = {
        { "api", required_argument, NULL, 'a' },
        { "api-token-file", required_argument, NULL, 'k' },
        { "state-dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *api = getenv("TOEGW_API") ? getenv("TOEGW_API") : "127.0.0.1:8080";
    const char *token_file = getenv("TOEGW_API_TOKEN_FILE");
    const char *state_dir = getenv("TOEGW_STATE_DIR") ? getenv("TOEGW_STATE_DIR")
                                                      : "/var/lib/toegw";
    char path[4200], token[128], err[400];
    bool json = false;
    int c, status = 0;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 'k': token_file = optarg; break;
        case 'd': state_dir = optarg; break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: toegw netstat [--api ADDR] [--api-token-file PATH] [--json]\n");
            return APP_EXIT_OK;
        default:
            app_errorf("usage: toegw netstat [--api ADDR] [--api-token-file PATH] [--json]");
            return APP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        app_errorf("usage: toegw netstat [--api ADDR] [--api-token-file PATH] [--json]");
        return APP_EXIT_USAGE;
    }
    if (!token_file) {
        snprintf(path, sizeof(path), "%s/api-token", state_dir);
        token_file = path;
    }
    if (access(token_file, R_OK) < 0) {
        app_errorf("cannot read the api token \"%s\": %s", token_file, strerror(errno));
        return APP_EXIT_FAILED;
    }
    if (app_token_load(token_file, token, sizeof(token), err, sizeof(err)) < 0) {
        app_errorf("%s", err);
        return APP_EXIT_FAILED;
    }
    char *body = http_get(api, "/api/v1/connections", token, &status, err, sizeof(err));
    explicit_bzero(token, sizeof(token));
    if (!body) {
        app_errorf("%s", err);
        return APP_EXIT_FAILED;
    }
    if (status != 200) {
        json_t *p = json_loads(body, 0, NULL);
        const char *detail = p ? json_string_value(json_object_get(p, "detail")) : NULL;
        app_errorf("the api answered %d: %s", status, detail ? detail : "no detail");
        json_decref(p);
        free(body);
        return APP_EXIT_FAILED;
    }
    if (json) {
        printf("%s\n", body);
        free(body);
        return APP_EXIT_OK;
    }
    json_error_t je;
    json_t *root = json_loads(body, 0, &je), *rows, *row;
    free(body);
    rows = json_is_array(root) ? root : json_object_get(root, "connections");
    if (!json_is_array(rows)) {
        app_errorf("the api's connection table is not a json array");
        json_decref(root);
        return APP_EXIT_FAILED;
    }
    printf("%-12s %-5s %-10s %-22s %-22s %12s %12s %s\n", "State", "Stack", "Offload",
           "Local Address:Port", "Peer Address:Port", "Bytes-In", "Bytes-Out", "Owner");
    size_t i;
    json_array_foreach(rows, i, row) {
        const char *st = json_string_value(json_object_get(row, "state"));
        const char *stack = json_string_value(json_object_get(row, "stack"));
        const char *off = json_string_value(json_object_get(row, "offload_state"));
        const char *local = json_string_value(json_object_get(row, "local"));
        const char *remote = json_string_value(json_object_get(row, "remote"));
        const char *owner = json_string_value(json_object_get(row, "owner"));
        printf("%-12s %-5s %-10s %-22s %-22s %12lld %12lld %s\n", st ? st : "?",
               stack ? stack : "?", off ? off : "?", local ? local : "?",
               remote ? remote : "?",
               (long long)json_integer_value(json_object_get(row, "bytes_in")),
               (long long)json_integer_value(json_object_get(row, "bytes_out")),
               owner ? owner : "");
    }
    json_decref(root);
    return fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
}
