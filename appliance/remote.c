/*
 * remote.c - the options and the API call of the commands that drive a running appliance
 * (remote.h).
 */
#include "appliance/remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/cli.h"
#include "appliance/optab.h"
#include "appliance/state.h"
#include "appliance/tls_files.h"

enum { R_API = 256, R_TOKEN, R_CACERT, R_STATE, R_JSON, R_STACK, R_CHAP_USER, R_CHAP_FILE,
       R_INITIATOR };

#define C APP_REMOTE_COMMON
#define L APP_REMOTE_LOGIN
static const struct app_opt remote_opts[] = {
    { "api", 1, R_API, C, "[https://]ADDR", "TOEGW_API, else 127.0.0.1:8080",
      "the appliance's REST API (host:port or unix:/path; https:// for TLS)" },
    { "api-token-file", 1, R_TOKEN, C, "PATH", "TOEGW_API_TOKEN_FILE, else STATE_DIR/api-token",
      "the API's bearer token" },
    { "cacert", 1, R_CACERT, C, "FILE", "STATE_DIR/tls/server-cert.pem",
      "the certificate (or its CA) an https API must present" },
    { "state-dir", 1, R_STATE, C, "DIR", "TOEGW_STATE_DIR, else /var/lib/toegw",
      "the appliance's state directory (its token and certificate)" },
    { "json", 0, R_JSON, C, NULL, NULL, "print the API's JSON instead of a table" },
    { "stack", 1, R_STACK, L, "auto|toe|host", "the appliance's (auto)",
      "the stack the session goes on" },
    { "chap-user", 1, R_CHAP_USER, L, "NAME", NULL, "log in with CHAP as NAME" },
    { "chap-secret-file", 1, R_CHAP_FILE, L, "FILE", NULL,
      "the CHAP secret: the first line of FILE (never on the command line)" },
    { "initiator-name", 1, R_INITIATOR, L, "IQN", "the appliance's",
      "the iSCSI name this session logs in as" },
    { "help", 0, 'h', C, NULL, NULL, "this help" },
};
#undef C
#undef L
#define NOPTS (sizeof(remote_opts) / sizeof(remote_opts[0]))

static int load_token(struct app_remote *r, const char *token_file, const char *state_dir)
{
    char err[4600];

    if (!token_file) {
        snprintf(r->token_path, sizeof(r->token_path), "%s/api-token", state_dir);
        token_file = r->token_path;
    }
    if (access(token_file, R_OK) < 0) {
        app_errorf("cannot read the api token \"%s\": %s (--api-token-file, or run as the "
                   "appliance's user)", token_file, strerror(errno));
        return APP_EXIT_FAILED;
    }
    if (app_token_load(token_file, r->token, sizeof(r->token), err, sizeof(err)) < 0) {
        app_errorf("%s", err);
        return APP_EXIT_FAILED;
    }
    return 0;
}

int app_remote_open(struct app_remote *r, int argc, char **argv, const char *usage,
                    unsigned groups, int nargs, char ***args)
{
    const char *state_dir = getenv("TOEGW_STATE_DIR");
    const char *token_file = getenv("TOEGW_API_TOKEN_FILE");
    const char *cacert = getenv("TOEGW_CACERT");
    struct app_optset set;
    int c;

    memset(r, 0, sizeof(*r));
    r->cl.api = getenv("TOEGW_API") && *getenv("TOEGW_API") ? getenv("TOEGW_API")
                                                              : "127.0.0.1:8080";
    app_optset_build(&set, remote_opts, NOPTS, groups | APP_REMOTE_COMMON);
    optind = 1;
    opterr = 0;
    for (;;) {
        app_optset_next(&set, argc, argv, &c);
        if (c == -1)
            break;
        switch (c) {
        case R_API: r->cl.api = optarg; break;
        case R_TOKEN: token_file = optarg; break;
        case R_CACERT: cacert = optarg; break;
        case R_STATE: state_dir = optarg; break;
        case R_JSON: r->json = true; break;
        case R_STACK: r->stack = optarg; break;
        case R_CHAP_USER: r->chap_user = optarg; break;
        case R_CHAP_FILE: r->chap_secret_file = optarg; break;
        case R_INITIATOR: r->initiator = optarg; break;
        case 'h':
            app_opt_help(usage, remote_opts, NOPTS, groups | APP_REMOTE_COMMON);
            exit(APP_EXIT_OK);
        default:
            app_errorf("unknown or incomplete option \"%s\" (the options of this command: "
                       "--help); usage: %s", argv[optind - 1], usage);
            return APP_EXIT_USAGE;
        }
    }
    if (argc - optind != nargs) {
        app_errorf("usage: %s", usage);
        return APP_EXIT_USAGE;
    }
    *args = argv + optind;
    if (!state_dir || !*state_dir)
        state_dir = "/var/lib/toegw";
    if (cacert && !app_api_is_https(r->cl.api)) {
        app_errorf("--cacert needs an https api address (--api https://HOST:PORT)");
        return APP_EXIT_USAGE;
    }
    if (!cacert) {
        snprintf(r->capath, sizeof(r->capath), "%s/%s/%s", state_dir, APP_TLS_DIR,
                 APP_TLS_CERT_FILE);
        cacert = r->capath;
    }
    r->cl.cacert = cacert;
    return load_token(r, token_file, state_dir);
}

json_t *app_remote_call(struct app_remote *r, const char *method, const char *path,
                        const json_t *body)
{
    char err[4600], *text = NULL, *answer;
    int status = 0;

    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        app_errorf("out of memory");
        return NULL;
    }
    answer = app_api_request(&r->cl, method, path, r->token, text, &status, err, sizeof(err));
    if (text) {
        explicit_bzero(text, strlen(text));   /* it may carry a CHAP secret */
        free(text);
    }
    if (!answer) {
        app_errorf("%s", err);
        return NULL;
    }
    json_t *j = *answer ? json_loads(answer, 0, NULL) : json_null();
    free(answer);
    if (status >= 200 && status < 300) {
        if (!j)
            app_errorf("the api answered %d with something that is not json", status);
        return j;
    }
    const char *title = json_string_value(json_object_get(j, "title"));
    const char *detail = json_string_value(json_object_get(j, "detail"));
    app_errorf("the api answered %d%s%s%s%s", status, title ? " " : "", title ? title : "",
               detail ? ": " : "", detail ? detail : "");
    json_decref(j);
    return NULL;
}

void app_remote_close(struct app_remote *r)
{
    explicit_bzero(r->token, sizeof(r->token));
}

void app_remote_size(unsigned long long bytes, char *out, size_t outlen)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)bytes;
    size_t u = 0;

    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v == (double)(unsigned long long)v)
        snprintf(out, outlen, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}
