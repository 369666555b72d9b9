/*
 * netstat.c - `toegw netstat`: the unified connection table of a running appliance, read
 * from its REST API (GET /api/v1/connections), printed like `ss -tn` with an
 * offload-state column. An https:// API address is checked against --cacert (by default the
 * appliance's own certificate, STATE_DIR/tls/server-cert.pem).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/api_client.h"
#include "appliance/cli.h"
#include "appliance/state.h"
#include "appliance/tls_files.h"

#define NETSTAT_USAGE "usage: toegw netstat [--api [https://]ADDR] [--cacert FILE] " \
                      "[--api-token-file PATH] [--json]"

int app_cmd_netstat(int argc, char **argv)
{
    static const struct option opts[] = {
        { "api", required_argument, NULL, 'a' },
        { "api-token-file", required_argument, NULL, 'k' },
        { "cacert", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *api = getenv("TOEGW_API") ? getenv("TOEGW_API") : "127.0.0.1:8080";
    const char *token_file = getenv("TOEGW_API_TOKEN_FILE");
    const char *state_dir = getenv("TOEGW_STATE_DIR") ? getenv("TOEGW_STATE_DIR")
                                                      : "/var/lib/toegw";
    const char *cacert = getenv("TOEGW_CACERT");
    char path[4200], capath[4200], token[128], err[4600];
    bool json = false;
    int c, status = 0;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 'k': token_file = optarg; break;
        case 'c': cacert = optarg; break;
        case 'd': state_dir = optarg; break;
        case 'j': json = true; break;
        case 'h':
            printf("%s\n", NETSTAT_USAGE);
            return APP_EXIT_OK;
        default:
            app_errorf("%s", NETSTAT_USAGE);
            return APP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        app_errorf("%s", NETSTAT_USAGE);
        return APP_EXIT_USAGE;
    }
    if (cacert && !app_api_is_https(api)) {
        app_errorf("--cacert needs an https api address (--api https://HOST:PORT)");
        return APP_EXIT_USAGE;
    }
    if (!cacert) {
        snprintf(capath, sizeof(capath), "%s/%s/%s", state_dir, APP_TLS_DIR,
                 APP_TLS_CERT_FILE);
        cacert = capath;
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
    struct app_api_client cl = { .api = api, .cacert = cacert };
    char *body = app_api_get(&cl, "/api/v1/connections", token, &status, err, sizeof(err));
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
