/*
 * cmd_remote.c - the commands that drive a running appliance through its REST API, in
 * iscsiadm's vocabulary: `toegw sessions`, `login PORTAL TARGET`, `logout ID|TARGET`,
 * `volumes`, `reservations`. Tables for people, --json for programs (the API's own JSON).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/cli.h"
#include "appliance/remote.h"

/* A member as text ("-" when absent or null). */
static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : "-";
}

/* Print the answer as the API gave it (--json). */
static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s)
        printf("%s\n", s);
    free(s);
    return s && fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
}

/* GET a list; the rows of it (the list itself, or its member `key`). */
static json_t *get_list(struct app_remote *r, const char *path, const char *key)
{
    json_t *j = app_remote_call(r, "GET", path, NULL);
    if (j && !json_is_array(j) && !json_is_array(json_object_get(j, key))) {
        app_errorf("the api's answer to GET %s is not a list", path);
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *rows_of(json_t *j, const char *key)
{
    return json_is_array(j) ? j : json_object_get(j, key);
}

static void session_header(void)
{
    printf("%-16s %-10s %-5s %-16s %-22s %-4s %s\n", "ID", "STATE", "STACK", "PLACEMENT",
           "PORTAL", "LUNS", "TARGET");
}

static void session_row(const json_t *s)
{
    const json_t *conn = json_object_get(s, "connection");
    printf("%-16s %-10s %-5s %-16s %-22s %-4zu %s\n", str(s, "id"), str(s, "state"),
           str(s, "stack"), str(conn, "placement_reason"), str(s, "portal"),
           json_array_size(json_object_get(s, "luns")), str(s, "target"));
}

static void volume_header(void)
{
    printf("%-20s %-16s %-4s %10s %s\n", "ID", "SESSION", "LUN", "SIZE", "EXPORT");
}

static void volume_row(const json_t *v)
{
    char size[32];

    app_remote_size((unsigned long long)json_integer_value(json_object_get(v, "size_bytes")),
                    size, sizeof(size));
    printf("%-20s %-16s %-4lld %10s %s\n", str(v, "id"), str(v, "session"),
           (long long)json_integer_value(json_object_get(v, "lun")), size, str(v, "export"));
}

static void reservation_header(void)
{
    printf("%-6s %-6s %-5s %-6s %s\n", "ID", "PORT", "STACK", "IN-USE", "HOLDER");
}

static void reservation_row(const json_t *v)
{
    printf("%-6s %-6lld %-5s %-6s %s\n", str(v, "id"),
           (long long)json_integer_value(json_object_get(v, "port")), str(v, "stack"),
           json_is_true(json_object_get(v, "in_use")) ? "yes" : "no", str(v, "holder"));
}

/* A listing command: GET path, then the API's JSON (--json) or a header and a row each. */
static int list_command(int argc, char **argv, const char *usage, const char *path,
                        const char *key, void (*header)(void), void (*row)(const json_t *))
{
    struct app_remote r;
    char **args;
    int ret = app_remote_open(&r, argc, argv, usage, 0, 0, &args);
    if (ret)
        return ret;
    json_t *j = get_list(&r, path, key), *one;
    app_remote_close(&r);
    if (!j)
        return APP_EXIT_FAILED;
    if (r.json) {
        ret = print_json(j);
    } else {
        size_t i;
        header();
        json_array_foreach(rows_of(j, key), i, one)
            row(one);
        ret = fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
    }
    json_decref(j);
    return ret;
}

int app_cmd_sessions(int argc, char **argv)
{
    return list_command(argc, argv, "toegw sessions [options]", "/api/v1/sessions",
                        "sessions", session_header, session_row);
}

int app_cmd_volumes(int argc, char **argv)
{
    return list_command(argc, argv, "toegw volumes [options]", "/api/v1/volumes", "volumes",
                        volume_header, volume_row);
}

int app_cmd_reservations(int argc, char **argv)
{
    return list_command(argc, argv, "toegw reservations [options]", "/api/v1/reservations",
                        "reservations", reservation_header, reservation_row);
}

/* The first line of the CHAP secret file into secret. 0, or -1 after printing why. */
static int read_secret(const char *path, char *secret, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        app_errorf("cannot read the chap secret file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    bool ok = fgets(secret, (int)len, f) != NULL;
    fclose(f);
    secret[ok ? strcspn(secret, "\r\n") : 0] = '\0';
    if (!secret[0]) {
        app_errorf("the chap secret file \"%s\" is empty", path);
        return -1;
    }
    return 0;
}

/* The request body of `toegw login`, or NULL after printing why. */
static json_t *login_body(const struct app_remote *r, const char *portal, const char *target)
{
    json_t *b = json_pack("{s:s, s:s}", "portal", portal, "target", target);
    if (b && r->stack)
        json_object_set_new(b, "stack", json_string(r->stack));
    if (b && r->initiator)
        json_object_set_new(b, "initiator_name", json_string(r->initiator));
    if (b && (r->chap_user || r->chap_secret_file)) {
        char secret[512];
        if (!r->chap_user || !r->chap_secret_file) {
            app_errorf("--chap-user and --chap-secret-file go together");
            json_decref(b);
            return NULL;
        }
        if (read_secret(r->chap_secret_file, secret, sizeof(secret)) < 0) {
            json_decref(b);
            return NULL;
        }
        json_object_set_new(b, "chap", json_pack("{s:s, s:s}", "user", r->chap_user,
                                                 "secret", secret));
        explicit_bzero(secret, sizeof(secret));
    }
    if (!b)
        app_errorf("out of memory");
    return b;
}

int app_cmd_login(int argc, char **argv)
{
    struct app_remote r;
    char **args;
    int ret = app_remote_open(&r, argc, argv, "toegw login PORTAL TARGET [options]",
                              APP_REMOTE_LOGIN, 2, &args);
    if (ret)
        return ret;
    json_t *body = login_body(&r, args[0], args[1]);
    json_t *s = body ? app_remote_call(&r, "POST", "/api/v1/sessions", body) : NULL;
    app_remote_close(&r);
    const char *secret = json_string_value(json_object_get(json_object_get(body, "chap"),
                                                           "secret"));
    if (secret)
        explicit_bzero((char *)secret, strlen(secret));
    json_decref(body);
    if (!s)
        return APP_EXIT_FAILED;
    if (r.json) {
        ret = print_json(s);
    } else {
        const json_t *conn = json_object_get(s, "connection"), *lun;
        size_t i;
        printf("logged in: session %s to %s at %s, on the %s stack (%s)\n", str(s, "id"),
               str(s, "target"), str(s, "portal"), str(s, "stack"),
               str(conn, "placement_reason"));
        json_array_foreach(json_object_get(s, "luns"), i, lun) {
            char size[32];
            app_remote_size((unsigned long long)json_integer_value(
                                json_object_get(lun, "size_bytes")), size, sizeof(size));
            printf("  lun %lld: volume %s, %s\n",
                   (long long)json_integer_value(json_object_get(lun, "lun")),
                   str(lun, "volume"), size);
        }
        ret = fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
    }
    json_decref(s);
    return ret;
}

/* The session named by id or by target name: its id into out. 0, or -1 after printing why. */
static int find_session(struct app_remote *r, const char *what, char *out, size_t outlen)
{
    json_t *j = get_list(r, "/api/v1/sessions", "sessions"), *s;
    size_t i, hits = 0;

    if (!j)
        return -1;
    json_array_foreach(rows_of(j, "sessions"), i, s) {
        if (!strcmp(str(s, "id"), what) || !strcmp(str(s, "target"), what)) {
            snprintf(out, outlen, "%s", str(s, "id"));
            hits++;
        }
    }
    json_decref(j);
    if (hits == 1)
        return 0;
    if (hits)
        app_errorf("%s names %zu sessions: give the session id (toegw sessions)", what, hits);
    else
        app_errorf("no session is %s (toegw sessions lists them)", what);
    return -1;
}

int app_cmd_logout(int argc, char **argv)
{
    struct app_remote r;
    char **args, id[128], path[200];
    int ret = app_remote_open(&r, argc, argv, "toegw logout SESSION-ID|TARGET [options]", 0, 1,
                              &args);
    if (ret)
        return ret;
    if (find_session(&r, args[0], id, sizeof(id)) < 0) {
        app_remote_close(&r);
        return APP_EXIT_FAILED;
    }
    snprintf(path, sizeof(path), "/api/v1/sessions/%s", id);
    json_t *j = app_remote_call(&r, "DELETE", path, NULL);
    app_remote_close(&r);
    if (!j)
        return APP_EXIT_FAILED;
    if (r.json)
        ret = print_json(j);
    else
        printf("logged out: session %s\n", id);
    json_decref(j);
    return ret ? ret : fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
}
