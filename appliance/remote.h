/*
 * remote.h - what the commands that drive a running appliance through its REST API share
 * (toegw sessions, login, logout, volumes, reservations, netstat): their options (where the
 * API is, its token, its certificate, --json), and one call that answers JSON or says why
 * not on stderr.
 */
#ifndef TOEGW_APPLIANCE_REMOTE_H
#define TOEGW_APPLIANCE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>

#include "appliance/api_client.h"

/* Option groups of the remote commands. */
#define APP_REMOTE_COMMON 1u  /* --api, --api-token-file, --cacert, --state-dir, --json */
#define APP_REMOTE_LOGIN 2u   /* --stack, --chap-user, --chap-secret-file, --initiator-name */

struct app_remote {
    struct app_api_client cl;
    char token[128];
    bool json;
    /* login */
    const char *stack;             /* NULL: the appliance's default */
    const char *chap_user;
    const char *chap_secret_file;
    const char *initiator;
    char capath[4200];
    char token_path[4200];
};

/*
 * Parse argv for a remote command (usage: its usage line; groups: APP_REMOTE_*; nargs: the
 * operands it takes, exactly) and load the API token. *args points at the operands.
 * 0, or APP_EXIT_USAGE / APP_EXIT_FAILED after printing why; --help prints every option with
 * its default and exits 0.
 */
int app_remote_open(struct app_remote *r, int argc, char **argv, const char *usage,
                    unsigned groups, int nargs, char ***args);

/*
 * METHOD path with an optional JSON body (not consumed). Returns the answer (a JSON value,
 * json_null() for an empty one; caller decrefs) when its status is 2xx; otherwise NULL
 * after printing the API's problem (status, title, detail) on stderr.
 */
json_t *app_remote_call(struct app_remote *r, const char *method, const char *path,
                        const json_t *body);

/* Wipe the token. */
void app_remote_close(struct app_remote *r);

/* "16 MiB", "1.5 GiB": a size in binary units. */
void app_remote_size(unsigned long long bytes, char *out, size_t outlen);

#endif
