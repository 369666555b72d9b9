/*
 * netstat.c - `toegw netstat`: the unified connection table of a running appliance, read
 * from its REST API (GET /api/v1/connections), printed like `ss -tn` with an
 * offload-state column. Its options are those of every remote command (remote.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "appliance/cli.h"
#include "appliance/remote.h"

int app_cmd_netstat(int argc, char **argv)
{
    struct app_remote r;
    char **args;
    int ret = app_remote_open(&r, argc, argv, "toegw netstat [options]", 0, 0, &args);
    if (ret)
        return ret;
    json_t *root = app_remote_call(&r, "GET", "/api/v1/connections", NULL), *rows, *row;
    app_remote_close(&r);
    if (!root)
        return APP_EXIT_FAILED;
    if (r.json) {
        char *s = json_dumps(root, JSON_COMPACT);
        printf("%s\n", s ? s : "null");
        free(s);
        json_decref(root);
        return fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
    }
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
