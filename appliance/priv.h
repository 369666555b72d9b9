/*
 * priv.h - least privilege for `toegw serve`: once the TOE's TAP or macvtap is set up, the
 * process runs as an unprivileged user holding CAP_NET_ADMIN alone (link up and down, the
 * NAT rule's removal at exit), with PR_SET_NO_NEW_PRIVS.
 */
#ifndef TOEGW_APPLIANCE_PRIV_H
#define TOEGW_APPLIANCE_PRIV_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Drop privileges. user: the account to run as (--user), or "" to keep the current uid.
 * As root with a user: the state dir (and what is in it, and the token file when it lies
 * elsewhere) is handed to that user, then uid, gid and groups become the user's. In every
 * case the capabilities shrink to CAP_NET_ADMIN (permitted, effective, inheritable and
 * ambient, so that nft run at exit still may remove the NAT rule; the bounding set too
 * when the process may change it) and no exec can gain privileges again. need_net_admin:
 * the TOE runs; without it a process lacking CAP_NET_ADMIN is refused with a hint.
 * Root without a user stays root (a warning says how to drop).
 * Must run on the main thread before any thread that should share the result is started:
 * threads started earlier keep no capabilities at all. *dropped tells whether the uid
 * changed. 0, or -errno with err saying what failed.
 */
int app_priv_drop(const char *user, const char *state_dir, const char *token_file,
                  bool need_net_admin, bool *dropped, char *err, size_t errlen);

#endif
