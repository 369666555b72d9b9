/*
 * priv.c - least privilege for `toegw serve` (priv.h): the switch to an unprivileged user
 * keeping CAP_NET_ADMIN alone. The capability calls are the kernel's own (capget/capset,
 * prctl): two words of bits do not need a library.
 */
#include "appliance/priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

#define KEEP_CAP CAP_NET_ADMIN

/* permitted, effective and inheritable: CAP_NET_ADMIN alone */
static int caps_only_net_admin(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];
    uint32_t bit = 1u << (KEEP_CAP % 32);

    memset(data, 0, sizeof(data));
    data[KEEP_CAP / 32].permitted = bit;
    data[KEEP_CAP / 32].effective = bit;
    data[KEEP_CAP / 32].inheritable = bit;
    return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

/* Whether the calling thread holds CAP_NET_ADMIN in its permitted set. */
static bool has_net_admin(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return data[KEEP_CAP / 32].permitted & (1u << (KEEP_CAP % 32));
}

/* Out of the bounding set goes every capability but CAP_NET_ADMIN (needs CAP_SETPCAP). */
static void bounding_set_shrink(void)
{
    for (int cap = 0; cap < 64; cap++) {
        if (cap == KEEP_CAP)
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
            break;                       /* past the kernel's last capability */
    }
}

/* Hand path to uid:gid: itself and, when it is a directory, its entries (one level down,
 * and one more for STATE_DIR/tls/). */
static int chown_tree(const char *path, uid_t uid, gid_t gid, int depth)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISLNK(st.st_mode))
        return 0;                        /* never follow a link out of the state dir */
    if (lchown(path, uid, gid) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || depth == 0)
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    int ret = 0;
    while (ret == 0 && (e = readdir(d))) {
        char sub[4400];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
            continue;
        ret = chown_tree(sub, uid, gid, depth - 1);
    }
    closedir(d);
    return ret;
}

/* As root: give the state to the user, then become the user, keeping the permitted set. */
static int become(const char *user, const char *state_dir, const char *token_file,
                  char *err, size_t errlen)
{
    struct passwd pw, *p = NULL;
    char buf[4096];
    int ret;

    if (getpwnam_r(user, &pw, buf, sizeof(buf), &p) != 0 || !p) {
        snprintf(err, errlen, "--user %s: no such user (create it, e.g. useradd --system "
                 "--no-create-home %s)", user, user);
        return -ENOENT;
    }
    if (p->pw_uid == 0) {
        snprintf(err, errlen, "--user %s: the account has uid 0; name an unprivileged one",
                 user);
        return -EINVAL;
    }
    ret = chown_tree(state_dir, p->pw_uid, p->pw_gid, 2);
    if (ret == 0 && token_file[0])
        ret = chown_tree(token_file, p->pw_uid, p->pw_gid, 0);
    if (ret < 0) {
        snprintf(err, errlen, "cannot hand the state dir \"%s\" to user %s: %s", state_dir,
                 user, strerror(-ret));
        return ret;
    }
    bounding_set_shrink();
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(1, &p->pw_gid) < 0 ||
        setgid(p->pw_gid) < 0 || setuid(p->pw_uid) < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot switch to user %s (uid %u): %s", user,
                 (unsigned)p->pw_uid, strerror(-ret));
        return ret;
    }
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    return 0;
}

int app_priv_drop(const char *user, const char *state_dir, const char *token_file,
                  bool need_net_admin, bool *dropped, char *err, size_t errlen)
{
    int ret;

    *dropped = false;
    if (user[0] && geteuid() == 0) {
        ret = become(user, state_dir, token_file, err, errlen);
        if (ret < 0)
            return ret;
        *dropped = true;
    } else if (user[0]) {
        struct passwd *p = getpwnam(user);
        if (!p || p->pw_uid != geteuid()) {
            snprintf(err, errlen, "--user %s: toegw runs as uid %u and may not switch users "
                     "(start it as root, or as that user)", user, (unsigned)geteuid());
            return -EPERM;
        }
    } else if (geteuid() == 0) {
        log_info("serve", "running as root: --user NAME runs toegw as that account, with "
                 "CAP_NET_ADMIN alone, once the TOE is set up");
        return 0;
    }
    if (!has_net_admin() && !need_net_admin) {
        /* no TOE: nothing to keep */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return -errno;
        log_info("serve", "running as uid %u without capabilities", (unsigned)geteuid());
        return 0;
    }
    if (!has_net_admin()) {
        snprintf(err, errlen, "toegw runs as uid %u without CAP_NET_ADMIN, which the TOE "
                 "needs for its link (docker/podman run --cap-add NET_ADMIN)",
                 (unsigned)geteuid());
        return -EPERM;
    }
    bounding_set_shrink();               /* a no-op without CAP_SETPCAP */
    ret = caps_only_net_admin();
    if (ret == 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0 &&
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, KEEP_CAP, 0, 0) < 0)
        ret = -errno;
    if (ret == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        ret = -errno;
    if (ret < 0) {
        snprintf(err, errlen, "cannot keep CAP_NET_ADMIN alone: %s", strerror(-ret));
        return ret;
    }
    if (access(state_dir, R_OK | W_OK | X_OK) < 0) {
        ret = -errno;
        snprintf(err, errlen, "uid %u cannot use the state dir \"%s\": %s (a directory above "
                 "it may be closed to that user)", (unsigned)geteuid(), state_dir,
                 strerror(-ret));
        return ret;
    }
    log_info("serve", "running as uid %u with CAP_NET_ADMIN alone", (unsigned)geteuid());
    return 0;
}
