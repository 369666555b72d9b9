/*
 * state.c - state file and API token, written atomically.
 */
#include "appliance/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/chap.h"
#include "storage/iname.h"

#define STATE_FILE "state.json"
#define STATE_VERSION 1

static const char *policy_str(enum stk_policy p) { return stk_policy_name(p); }

int app_file_write_atomic(const char *path, const char *data, size_t len, char *err,
                          size_t errlen)
{
    char tmp[4200], dir[4096];
    int fd, dfd, ret = 0;
    size_t off = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot create \"%s\": %s", tmp, strerror(-ret));
        return ret;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (!ret && fsync(fd) < 0)
        ret = -errno;
    if (close(fd) < 0 && !ret)
        ret = -errno;
    if (!ret && rename(tmp, path) < 0)
        ret = -errno;
    if (ret) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(-ret));
        unlink(tmp);
        return ret;
    }
    /* the rename is durable only once the directory is */
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int app_state_write(const char *dir, const char *text, char *err, size_t errlen)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
    return app_file_write_atomic(path, text, strlen(text), err, errlen);
}

/* [{"id": ..., "read_only": ..., "allow": [...]}, ...] */
static json_t *access_json(const struct app_state *st)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < st->naccess; i++) {
        const struct sto_vol_access *a = &st->access[i];
        json_t *allow = json_array();
        for (uint32_t k = 0; allow && k < a->nallow && k < STO_ALLOW_MAX; k++)
            json_array_append_new(allow, json_string(a->allow[k]));
        json_array_append_new(arr, json_pack("{s:s,s:b,s:o*}", "id", a->id, "read_only",
                                             a->read_only, "allow", allow));
    }
    return arr;
}

/* One entry of "volume_access" into a. 0, or -EINVAL when it is malformed. */
static int access_parse(json_t *o, struct sto_vol_access *a)
{
    json_t *allow = json_object_get(o, "allow"), *it;
    json_t *ro = json_object_get(o, "read_only");
    json_t *id = json_object_get(o, "id");
    size_t i;

    memset(a, 0, sizeof(*a));
    if (!json_is_object(o) || !json_is_string(id) || json_string_length(id) == 0 ||
        json_string_length(id) >= sizeof(a->id) || (ro && !json_is_boolean(ro)) ||
        (allow && (!json_is_array(allow) || json_array_size(allow) > STO_ALLOW_MAX)))
        return -EINVAL;
    memcpy(a->id, json_string_value(id), json_string_length(id) + 1);
    a->read_only = json_is_true(ro);
    json_array_foreach(allow, i, it) {
        if (!json_is_string(it) || json_string_length(it) == 0 ||
            json_string_length(it) >= STO_IDENTITY_MAX)
            return -EINVAL;
        memcpy(a->allow[i], json_string_value(it), json_string_length(it) + 1);
        a->nallow++;
    }
    return 0;
}

char *app_state_text(const struct app_state *st)
{
    json_t *root = json_object(), *ss = json_array(), *rs = json_array();
    char *text;

    json_object_set_new(root, "version", json_integer(STATE_VERSION));
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct sto_session_req *r = &st->sessions[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b,s:b}", "id", r->id, "portal",
                              r->portal, "target", r->target, "stack", policy_str(r->stack),
                              "reservation", (json_int_t)r->reservation, "header_digest",
                              r->header_digest, "data_digest", r->data_digest);
        if (r->chap.user[0]) {
            json_t *c = json_pack("{s:s,s:s}", "user", r->chap.user, "secret",
                                  r->chap.secret);
            if (r->chap.target_user[0]) {
                json_object_set_new(c, "target_user", json_string(r->chap.target_user));
                json_object_set_new(c, "target_secret", json_string(r->chap.target_secret));
            }
            json_object_set_new(o, "chap", c);
        }
        if (r->initiator[0])
            json_object_set_new(o, "initiator_name", json_string(r->initiator));
        json_array_append_new(ss, o);
    }
    for (size_t i = 0; i < st->nreservations; i++) {
        const struct stk_reservation *r = &st->reservations[i];
        json_t *ro = json_pack("{s:I,s:s,s:i,s:s,s:I}", "id", (json_int_t)r->id, "holder",
                               r->holder, "port", r->port, "stack", policy_str(r->stack),
                               "created", (json_int_t)r->created);
        if (ro && r->has_uid)
            json_object_set_new(ro, "uid", json_integer((json_int_t)r->uid));
        json_array_append_new(rs, ro);
    }
    json_object_set_new(root, "sessions", ss);
    json_object_set_new(root, "reservations", rs);
    json_object_set_new(root, "volume_access", access_json(st));
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    return text;
}

void app_state_text_free(char *text)
{
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
}

void app_state_clear(struct app_state *st)
{
    if (st->sessions)
        explicit_bzero(st->sessions, st->nsessions * sizeof(*st->sessions));
    free(st->sessions);
    free(st->reservations);
    free(st->access);
    memset(st, 0, sizeof(*st));
}

static int copy_str(char *dst, size_t cap, json_t *o, const char *key, bool required)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return required ? -EINVAL : 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -EINVAL;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int app_state_load(const char *dir, struct app_state *st, char *err, size_t errlen)
{
    char path[4096];
    json_error_t je;
    json_t *root, *ss, *rs, *as, *o;
    size_t i;

    memset(st, 0, sizeof(*st));
    snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
    if (access(path, F_OK) < 0)
        return errno == ENOENT ? 0 : -errno;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "state file \"%s\" is not valid json (line %d: %s)", path,
                 je.line, je.text);
        return -EINVAL;
    }
    ss = json_object_get(root, "sessions");
    rs = json_object_get(root, "reservations");
    as = json_object_get(root, "volume_access");
    if ((ss && !json_is_array(ss)) || (rs && !json_is_array(rs)) || (as && !json_is_array(as))) {
        snprintf(err, errlen, "state file \"%s\": sessions, reservations and volume_access "
                 "must be arrays", path);
        goto bad;
    }
    st->sessions = calloc(json_array_size(ss) + 1, sizeof(*st->sessions));
    st->reservations = calloc(json_array_size(rs) + 1, sizeof(*st->reservations));
    st->access = calloc(json_array_size(as) + 1, sizeof(*st->access));
    if (!st->sessions || !st->reservations || !st->access) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    json_array_foreach(ss, i, o) {
        struct sto_session_req *r = &st->sessions[st->nsessions];
        json_t *c = json_object_get(o, "chap");
        const char *stack = json_string_value(json_object_get(o, "stack"));
        if (!json_is_object(o) || copy_str(r->id, sizeof(r->id), o, "id", true) ||
            copy_str(r->portal, sizeof(r->portal), o, "portal", true) ||
            copy_str(r->target, sizeof(r->target), o, "target", true) ||
            copy_str(r->initiator, sizeof(r->initiator), o, "initiator_name", false) ||
            (r->initiator[0] && !isc_name_valid(r->initiator)) ||
            (stack && stk_parse_policy(stack, &r->stack) < 0) ||
            (c && (!json_is_object(c) ||
                   copy_str(r->chap.user, sizeof(r->chap.user), c, "user", true) ||
                   copy_str(r->chap.secret, sizeof(r->chap.secret), c, "secret", true) ||
                   copy_str(r->chap.target_user, sizeof(r->chap.target_user), c,
                            "target_user", false) ||
                   copy_str(r->chap.target_secret, sizeof(r->chap.target_secret), c,
                            "target_secret", false)))) {
            snprintf(err, errlen, "state file \"%s\": session %zu is malformed", path, i);
            goto bad;
        }
        r->reservation = (uint64_t)json_integer_value(json_object_get(o, "reservation"));
        r->header_digest = json_is_true(json_object_get(o, "header_digest"));
        r->data_digest = json_is_true(json_object_get(o, "data_digest"));
        st->nsessions++;
    }
    json_array_foreach(rs, i, o) {
        struct stk_reservation *r = &st->reservations[st->nreservations];
        const char *stack = json_string_value(json_object_get(o, "stack"));
        json_int_t port = json_integer_value(json_object_get(o, "port"));
        json_int_t id = json_integer_value(json_object_get(o, "id"));
        if (!json_is_object(o) || copy_str(r->holder, sizeof(r->holder), o, "holder", true) ||
            port <= 0 || port > 65535 || id <= 0 ||
            (stack && stk_parse_policy(stack, &r->stack) < 0)) {
            snprintf(err, errlen, "state file \"%s\": reservation %zu is malformed", path, i);
            goto bad;
        }
        r->id = (uint64_t)id;
        r->port = (uint16_t)port;
        r->created = (time_t)json_integer_value(json_object_get(o, "created"));
        r->has_uid = json_is_integer(json_object_get(o, "uid"));
        r->uid = (uid_t)json_integer_value(json_object_get(o, "uid"));
        st->nreservations++;
    }
    json_array_foreach(as, i, o) {
        if (access_parse(o, &st->access[st->naccess]) < 0) {
            snprintf(err, errlen, "state file \"%s\": volume_access %zu is malformed", path, i);
            goto bad;
        }
        st->naccess++;
    }
    json_decref(root);
    return 0;
bad:
    json_decref(root);
    app_state_clear(st);
    return -EINVAL;
}

int app_token_renew(const char *path, char *tok, size_t toklen, char *err, size_t errlen)
{
    uint8_t raw[32];
    char hex[2 * sizeof(raw) + 4], next[2 * sizeof(raw) + 1];

    if (toklen < sizeof(next)) {
        snprintf(err, errlen, "no room for an api token");
        return -EINVAL;
    }
    if (isc_chap_random(raw, sizeof(raw)) < 0) {
        snprintf(err, errlen, "cannot generate an api token: no randomness");
        return -EIO;
    }
    isc_chap_encode_hex(raw, sizeof(raw), hex, sizeof(hex));
    explicit_bzero(raw, sizeof(raw));
    /* drop the "0x" prefix: a plain hex token */
    memcpy(next, hex + 2, sizeof(next) - 1);
    next[sizeof(next) - 1] = '\0';
    snprintf(hex, sizeof(hex), "%s\n", next);
    int ret = app_file_write_atomic(path, hex, strlen(hex), err, errlen);
    explicit_bzero(hex, sizeof(hex));
    if (ret == 0)
        snprintf(tok, toklen, "%s", next);
    explicit_bzero(next, sizeof(next));
    return ret;
}

int app_token_load(const char *path, char *tok, size_t toklen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (f) {
        char buf[256] = "";
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (strlen(buf) < 16 || strlen(buf) >= toklen) {
            snprintf(err, errlen, "api token file \"%s\" holds no usable token (16 to %zu "
                                  "characters on the first line)", path, toklen - 1);
            explicit_bzero(buf, sizeof(buf));
            return -EINVAL;
        }
        snprintf(tok, toklen, "%s", buf);
        explicit_bzero(buf, sizeof(buf));
        return 0;
    }
    if (errno != ENOENT) {
        int ret = -errno;
        snprintf(err, errlen, "cannot read api token file \"%s\": %s", path, strerror(-ret));
        return ret;
    }
    return app_token_renew(path, tok, toklen, err, errlen);
}

/* The pid recorded in the lock file `fd`, or 0 when it holds none. */
static long lock_owner(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

int app_state_lock(const char *dir, char *err, size_t errlen)
{
    char path[4200], pid[32];
    int fd, ret, len;

    snprintf(path, sizeof(path), "%s/lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(-ret));
        return ret;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (ret == -EBUSY) {
            long owner = lock_owner(fd);
            if (owner)
                snprintf(err, errlen, "state dir \"%s\" is in use by another toegw serve "
                         "(pid %ld); stop it first, or give this one its own --state-dir",
                         dir, owner);
            else
                snprintf(err, errlen, "state dir \"%s\" is in use by another toegw serve; "
                         "stop it first, or give this one its own --state-dir", dir);
        } else {
            snprintf(err, errlen, "cannot lock \"%s\": %s", path, strerror(-ret));
        }
        close(fd);
        return ret;
    }
    len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        ret = -errno;
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(-ret));
        close(fd);
        return ret;
    }
    return fd;
}

/*
 * The name in an initiator-name file: the first line, "IQN" or open-iscsi's
 * "InitiatorName=IQN" (so that an operator may copy /etc/iscsi/initiatorname.iscsi), with
 * blanks around it dropped. 0, or -EINVAL when it is no iSCSI name.
 */
static int parse_iname(char *text, char *out, size_t outlen)
{
    char *p = text, *end;

    if (!strncmp(p, "InitiatorName=", 14))
        p += 14;
    end = p + strcspn(p, "\r\n");
    *end = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (!isc_name_valid(p) || strlen(p) >= outlen)
        return -EINVAL;
    snprintf(out, outlen, "%s", p);
    return 0;
}

int app_initiator_name_load(const char *dir, bool create, char *out, size_t outlen,
                            char *err, size_t errlen)
{
    char path[4200], text[512], line[300];
    ssize_t n;
    int fd, ret;

    snprintf(path, sizeof(path), "%s/initiator-name", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        n = read(fd, text, sizeof(text) - 1);
        ret = n < 0 ? -errno : 0;
        close(fd);
        if (ret < 0) {
            snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-ret));
            return ret;
        }
        text[n] = '\0';
        if (parse_iname(text, out, outlen) < 0) {
            snprintf(err, errlen, "\"%s\" holds no iscsi name (one line: iqn., eui. or "
                     "naa., letters, digits and .:-_, at most %d bytes)", path, ISC_NAME_MAX);
            return -EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT || !create) {
        ret = -errno;
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-ret));
        return ret;
    }
    ret = isc_name_generate(out, outlen);
    if (ret < 0) {
        snprintf(err, errlen, "cannot make an initiator name: %s", strerror(-ret));
        return ret;
    }
    n = snprintf(line, sizeof(line), "%s\n", out);
    ret = app_file_write_atomic(path, line, (size_t)n, err, errlen);
    if (ret == 0)
        chmod(path, 0644); /* a name, not a secret */
    return ret;
}
