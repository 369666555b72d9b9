/*
 * state.h - the appliance's persistent state: sessions to restore (with their secrets)
 * and reservations, one JSON file in --state-dir, mode 0600, written atomically (temp
 * file, fsync, rename, fsync of the directory).
 */
#ifndef TOEGW_APPLIANCE_STATE_H
#define TOEGW_APPLIANCE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "stacks/stacks.h"
#include "storage/manager.h"

struct app_state {
    struct sto_session_req *sessions;  /* owned; wiped on free */
    size_t nsessions;
    struct stk_reservation *reservations;
    size_t nreservations;
    struct sto_vol_access *access;     /* volumes' NBD access (not the default ones) */
    size_t naccess;
};

/*
 * Load DIR/state.json into *st. A missing file is an empty state (0). A malformed one is
 * -EINVAL with the reason in err (the file is left alone for an operator to inspect).
 */
int app_state_load(const char *dir, struct app_state *st, char *err, size_t errlen);
/*
 * Serialise into a malloc'd string (caller frees with app_state_text_free, which wipes it:
 * it holds secrets).
 */
char *app_state_text(const struct app_state *st);
void app_state_text_free(char *text);
/* Write text to DIR/state.json atomically, mode 0600. 0 or -errno. */
int app_state_write(const char *dir, const char *text, char *err, size_t errlen);
void app_state_clear(struct app_state *st);

/*
 * Read or create the API token at `path` (0600, 32 random bytes as hex). The token is
 * written into tok (at least 65 bytes). 0 or -errno with err.
 */
int app_token_load(const char *path, char *tok, size_t toklen, char *err, size_t errlen);

/*
 * Make a new API token (32 random bytes as hex), keep it at `path` (written atomically,
 * mode 0600) and put it into tok (at least 65 bytes). 0 or -errno with err; on failure
 * the file still holds the previous token.
 */
int app_token_renew(const char *path, char *tok, size_t toklen, char *err, size_t errlen);

/*
 * Write a file atomically: a temporary file (mode 0600) in the same directory, fsync,
 * rename over `path`, fsync of the directory. 0 or -errno with err naming the file.
 */
int app_file_write_atomic(const char *path, const char *data, size_t len, char *err,
                          size_t errlen);

/*
 * Make this process the one appliance of state directory DIR: an exclusive flock(2) on
 * DIR/lock, which holds the owner's pid. The lock lives as long as the returned descriptor
 * (the caller keeps it open for its whole life; the kernel drops the lock when the process
 * ends, however it ends). Returns the descriptor, or -EBUSY when another process holds the
 * lock (err names its pid), or -errno; err says why.
 */
int app_state_lock(const char *dir, char *err, size_t errlen);

/*
 * The initiator name of state directory DIR, from DIR/initiator-name (one line: the IQN, or
 * open-iscsi's "InitiatorName=IQN"). When the file is missing and `create` is set, a new
 * name is made (iname.h) and kept there, so it stays the same across restarts and differs
 * between appliances. 0 with the name in out; -ENOENT (missing, !create), -EINVAL (not an
 * iSCSI name) or -errno, with err.
 */
int app_initiator_name_load(const char *dir, bool create, char *out, size_t outlen,
                            char *err, size_t errlen);

#endif
