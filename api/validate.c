/*
 * validate.c - request bodies and query strings, checked strictly before anything runs.
 *
 * A body that is not JSON (or not an object) is 400; a JSON object with unknown fields,
 * wrong types or values out of range is 422. Messages name the field and the rule, never
 * the value: some fields are secrets, and the others need not be echoed either.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "storage/iname.h"

int api_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || n == 0 || n > 20)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- query strings */

int api_parse_data_query(const char *query, bool allow_length, struct api_data_query *out,
                         struct api_err *e)
{
    const char *p = query;

    memset(out, 0, sizeof(*out));
    if (!p || !*p)
        return 0;
    for (;;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        const char *v = eq ? eq + 1 : NULL;
        size_t vn = eq ? n - kn - 1 : 0;
        uint64_t *dst;
        bool *have;

        if (kn == 6 && memcmp(p, "offset", 6) == 0) {
            dst = &out->offset;
            have = &out->have_offset;
        } else if (allow_length && kn == 6 && memcmp(p, "length", 6) == 0) {
            dst = &out->length;
            have = &out->have_length;
        } else {
            api_err_set(e, 422, "unknown query parameter (allowed: offset%s)",
                        allow_length ? ", length" : "");
            return -EINVAL;
        }
        if (*have) {
            api_err_set(e, 422, "query parameter \"%.*s\" given twice", (int)kn, p);
            return -EINVAL;
        }
        if (!v || api_parse_u64(v, vn, dst) < 0) {
            api_err_set(e, 422, "query parameter \"%.*s\" must be a decimal byte count "
                        "(0..18446744073709551615)", (int)kn, p);
            return -EINVAL;
        }
        *have = true;
        if (!amp)
            break;
        p = amp + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- JSON helpers */

int api_parse_object(const char *body, size_t len, json_t **out, struct api_err *e)
{
    json_error_t jerr;
    json_t *j;

    *out = NULL;
    if (!body || len == 0) {
        api_err_set(e, 400, "a json object body is required");
        return -EINVAL;
    }
    /* jansson's message may quote the text near the error: report the position only */
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        api_err_set(e, 400, "body is not valid json (line %d, column %d)", jerr.line,
                    jerr.column);
        return -EINVAL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_err_set(e, 400, "body must be a json object");
        return -EINVAL;
    }
    *out = j;
    return 0;
}

/* A key of the client's, safe to quote in a message: printable, at most 48 bytes. */
static void key_quote(const char *key, char *buf, size_t len)
{
    size_t j = 0;

    for (size_t i = 0; key[i] && j + 4 < len && i < 48; i++) {
        unsigned char c = (unsigned char)key[i];

        buf[j++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (strlen(key) > 48 && j + 4 < len) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
}

/* Refuse any key of obj that is not in allowed (NULL-terminated). */
static int check_keys(json_t *obj, const char *where, const char *const *allowed,
                      struct api_err *e)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v) {
        bool ok = false;
        char q[64];

        (void)v;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            key_quote(key, q, sizeof(q));
            api_err_set(e, 422, "unknown field \"%s%s%s\"", where, where[0] ? "." : "", q);
            return -EINVAL;
        }
    }
    return 0;
}

/* Field's value, NULL when absent or JSON null. */
static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

static bool text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/*
 * A string field into out (size outsz, at most maxlen bytes). Absent: -ENOENT without
 * touching e unless required.
 */
static int get_str(json_t *obj, const char *where, const char *key, bool required,
                   size_t maxlen, char *out, size_t outsz, struct api_err *e)
{
    const char *dot = where[0] ? "." : "";
    json_t *v = field(obj, key);
    const char *s;
    size_t n;

    if (!v) {
        if (required) {
            api_err_set(e, 422, "field \"%s%s%s\" is required", where, dot, key);
            return -EINVAL;
        }
        return -ENOENT;
    }
    if (!json_is_string(v)) {
        api_err_set(e, 422, "field \"%s%s%s\" must be a string", where, dot, key);
        return -EINVAL;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0) {
        api_err_set(e, 422, "field \"%s%s%s\" must not be empty", where, dot, key);
        return -EINVAL;
    }
    if (n > maxlen || n >= outsz) {
        api_err_set(e, 422, "field \"%s%s%s\" is too long (%zu bytes, at most %zu)", where,
                    dot, key, n, maxlen < outsz - 1 ? maxlen : outsz - 1);
        return -EINVAL;
    }
    if (memchr(s, '\0', n) || !text_ok(s, n)) {
        api_err_set(e, 422, "field \"%s%s%s\" must not contain control characters", where,
                    dot, key);
        return -EINVAL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* "host[:port]": an IPv4 address or a DNS name, port 1..65535. */
static bool portal_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    size_t hn = colon ? (size_t)(colon - s) : strlen(s);
    uint64_t port;

    if (hn == 0 || hn > 253 || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < hn; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    if (!colon)
        return true;
    if (api_parse_u64(colon + 1, strlen(colon + 1), &port) < 0 || port == 0 || port > 65535)
        return false;
    return true;
}

static int get_portal(json_t *obj, char *out, size_t outsz, struct api_err *e)
{
    int ret = get_str(obj, "", "portal", true, API_NAME_MAX, out, outsz, e);

    if (ret < 0)
        return ret;
    if (!portal_ok(out)) {
        api_err_set(e, 422, "field \"portal\" must be host[:port] (an IPv4 address or a "
                    "name, port 1..65535)");
        return -EINVAL;
    }
    return 0;
}

static int get_policy(json_t *obj, enum stk_policy *out, struct api_err *e)
{
    char buf[16];
    int ret = get_str(obj, "", "stack", false, sizeof(buf) - 1, buf, sizeof(buf), e);

    *out = STK_POLICY_AUTO;
    if (ret == -ENOENT)
        return 0;
    if (ret == 0 && stk_parse_policy(buf, out) == 0)
        return 0;
    api_err_set(e, 422, "field \"stack\" must be \"auto\", \"toe\" or \"host\"");
    return -EINVAL;
}

/* "chap": {"user","secret","target_user"?,"target_secret"?}; absent or null: no CHAP. */
static int get_chap(json_t *obj, struct sto_chap *out, struct api_err *e)
{
    static const char *const keys[] = { "user", "secret", "target_user", "target_secret",
                                        NULL };
    json_t *c = field(obj, "chap");
    int ret, tu, ts;

    memset(out, 0, sizeof(*out));
    if (!c)
        return 0;
    if (!json_is_object(c)) {
        api_err_set(e, 422, "field \"chap\" must be an object");
        return -EINVAL;
    }
    if ((ret = check_keys(c, "chap", keys, e)) < 0)
        return ret;
    if ((ret = get_str(c, "chap", "user", true, API_NAME_MAX, out->user, sizeof(out->user),
                       e)) < 0)
        return ret;
    if ((ret = get_str(c, "chap", "secret", true, API_SECRET_MAX, out->secret,
                       sizeof(out->secret), e)) < 0)
        return ret;
    tu = get_str(c, "chap", "target_user", false, API_NAME_MAX, out->target_user,
                 sizeof(out->target_user), e);
    if (tu < 0 && tu != -ENOENT)
        return tu;
    ts = get_str(c, "chap", "target_secret", false, API_SECRET_MAX, out->target_secret,
                 sizeof(out->target_secret), e);
    if (ts < 0 && ts != -ENOENT)
        return ts;
    if ((tu == 0) != (ts == 0)) {
        api_err_set(e, 422, "mutual chap needs both \"chap.target_user\" and "
                    "\"chap.target_secret\"");
        return -EINVAL;
    }
    return 0;
}

/* true/false or "none"/"crc32c". */
static int get_digest(json_t *obj, const char *key, bool *out, struct api_err *e)
{
    json_t *v = field(obj, key);

    *out = false;
    if (!v)
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);

        if (strcasecmp(s, "none") == 0)
            return 0;
        if (strcasecmp(s, "crc32c") == 0) {
            *out = true;
            return 0;
        }
    }
    api_err_set(e, 422, "field \"%s\" must be true, false, \"none\" or \"crc32c\"", key);
    return -EINVAL;
}

/* A reservation id: a positive integer, or the decimal string the API renders. */
static int get_reservation_id(json_t *obj, uint64_t *out, struct api_err *e)
{
    json_t *v = field(obj, "reservation");

    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && api_parse_u64(json_string_value(v), json_string_length(v),
                                           out) == 0 && *out > 0)
        return 0;
    *out = 0;
    api_err_set(e, 422, "field \"reservation\" must be a reservation id (a positive "
                "integer or its decimal string)");
    return -EINVAL;
}

/* ---------------------------------------------------------------- bodies */

int api_parse_session_req(const char *body, size_t len, struct sto_session_req *out,
                          struct api_err *e)
{
    static const char *const keys[] = { "portal", "target", "stack", "reservation",
                                        "header_digest", "data_digest", "chap",
                                        "initiator_name", NULL };
    json_t *j = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto out_fail;
    if ((ret = get_portal(j, out->portal, sizeof(out->portal), e)) < 0)
        goto out_fail;
    if ((ret = get_str(j, "", "target", true, API_NAME_MAX, out->target,
                       sizeof(out->target), e)) < 0)
        goto out_fail;
    if (!isc_name_valid(out->target)) {
        api_err_set(e, 422, "field \"target\" must be an iscsi name (iqn., eui. or naa., "
                    "letters, digits and .:-_)");
        ret = -EINVAL;
        goto out_fail;
    }
    ret = get_str(j, "", "initiator_name", false, API_NAME_MAX, out->initiator,
                  sizeof(out->initiator), e);
    if (ret < 0 && ret != -ENOENT)
        goto out_fail;
    if (out->initiator[0] && !isc_name_valid(out->initiator)) {
        api_err_set(e, 422, "field \"initiator_name\" must be an iscsi name (iqn., eui. or "
                    "naa., letters, digits and .:-_)");
        ret = -EINVAL;
        goto out_fail;
    }
    if ((ret = get_policy(j, &out->stack, e)) < 0)
        goto out_fail;
    if ((ret = get_reservation_id(j, &out->reservation, e)) < 0)
        goto out_fail;
    if ((ret = get_digest(j, "header_digest", &out->header_digest, e)) < 0)
        goto out_fail;
    if ((ret = get_digest(j, "data_digest", &out->data_digest, e)) < 0)
        goto out_fail;
    if ((ret = get_chap(j, &out->chap, e)) < 0)
        goto out_fail;
    json_decref(j);
    return 0;

out_fail:
    json_decref(j);
    explicit_bzero(out, sizeof(*out));
    return ret;
}

int api_parse_reserve_req(const char *body, size_t len, struct api_reserve_req *out,
                          struct api_err *e)
{
    static const char *const keys[] = { "holder", "port", "stack", "uid", NULL };
    json_t *j = NULL, *v;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto out_fail;
    if ((ret = get_str(j, "", "holder", true, API_HOLDER_MAX, out->holder,
                       sizeof(out->holder), e)) < 0)
        goto out_fail;
    v = field(j, "port");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 65535) {
            api_err_set(e, 422, "field \"port\" must be an integer 1..65535");
            ret = -EINVAL;
            goto out_fail;
        }
        out->port = (uint16_t)json_integer_value(v);
    }
    if ((ret = get_policy(j, &out->stack, e)) < 0)
        goto out_fail;
    v = field(j, "uid");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 4294967294LL) {
            api_err_set(e, 422, "field \"uid\" must be a user id (an integer 0..4294967294)");
            ret = -EINVAL;
            goto out_fail;
        }
        out->has_uid = true;
        out->uid = (uid_t)json_integer_value(v);
    }
    json_decref(j);
    return 0;

out_fail:
    json_decref(j);
    return ret;
}

int api_parse_discovery_req(const char *body, size_t len, struct api_discovery_req *out,
                            struct api_err *e)
{
    static const char *const keys[] = { "portal", "stack", "chap", NULL };
    json_t *j = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto out_fail;
    if ((ret = get_portal(j, out->portal, sizeof(out->portal), e)) < 0)
        goto out_fail;
    if ((ret = get_policy(j, &out->stack, e)) < 0)
        goto out_fail;
    if ((ret = get_chap(j, &out->chap, e)) < 0)
        goto out_fail;
    json_decref(j);
    return 0;

out_fail:
    json_decref(j);
    explicit_bzero(out, sizeof(*out));
    return ret;
}

static int get_prob(json_t *f, const char *key, double *out, struct api_err *e)
{
    json_t *v = json_object_get(f, key);
    double d;

    if (!v)
        return -ENOENT;
    if (!json_is_number(v)) {
        api_err_set(e, 422, "field \"faults.%s\" must be a number 0..1", key);
        return -EINVAL;
    }
    d = json_number_value(v);
    if (!isfinite(d) || d < 0.0 || d > 1.0) {
        api_err_set(e, 422, "field \"faults.%s\" must be a probability 0..1", key);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int api_parse_toe_patch(const char *body, size_t len, struct api_toe_patch *out,
                        struct api_err *e)
{
    static const char *const keys[] = { "link", "faults", NULL };
    static const char *const fkeys[] = { "drop", "dup", "reorder", "corrupt", "seed", NULL };
    static const struct {
        const char *key;
        unsigned bit;
        size_t off;
    } probs[] = {
        { "drop", API_FAULT_DROP, offsetof(struct api_toe_faults, drop) },
        { "dup", API_FAULT_DUP, offsetof(struct api_toe_faults, dup) },
        { "reorder", API_FAULT_REORDER, offsetof(struct api_toe_faults, reorder) },
        { "corrupt", API_FAULT_CORRUPT, offsetof(struct api_toe_faults, corrupt) },
    };
    json_t *j = NULL, *v;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto out_fail;
    v = json_object_get(j, "link");
    if (v) {
        const char *s = json_string_value(v);

        if (s && strcmp(s, "up") == 0) {
            out->link_up = true;
        } else if (!s || strcmp(s, "down") != 0) {
            api_err_set(e, 422, "field \"link\" must be \"up\" or \"down\"");
            ret = -EINVAL;
            goto out_fail;
        }
        out->set_link = true;
    }
    v = json_object_get(j, "faults");
    if (json_is_null(v)) {
        /* "faults": null clears every fault: a perfect wire */
        out->set_faults = true;
        out->fault_mask = API_FAULT_DROP | API_FAULT_DUP | API_FAULT_REORDER |
                          API_FAULT_CORRUPT | API_FAULT_SEED;
    } else if (v) {
        if (!json_is_object(v)) {
            api_err_set(e, 422, "field \"faults\" must be an object or null");
            ret = -EINVAL;
            goto out_fail;
        }
        if ((ret = check_keys(v, "faults", fkeys, e)) < 0)
            goto out_fail;
        for (size_t i = 0; i < sizeof(probs) / sizeof(probs[0]); i++) {
            double *dst = (double *)((char *)&out->faults + probs[i].off);

            ret = get_prob(v, probs[i].key, dst, e);
            if (ret == 0)
                out->fault_mask |= probs[i].bit;
            else if (ret != -ENOENT)
                goto out_fail;
        }
        ret = 0;
        if (json_object_get(v, "seed")) {
            json_t *s = json_object_get(v, "seed");

            if (!json_is_integer(s) || json_integer_value(s) < 0) {
                api_err_set(e, 422, "field \"faults.seed\" must be a non-negative integer");
                ret = -EINVAL;
                goto out_fail;
            }
            out->faults.seed = (uint64_t)json_integer_value(s);
            out->fault_mask |= API_FAULT_SEED;
        }
        out->set_faults = true;
    }
    if (!out->set_link && !out->set_faults) {
        api_err_set(e, 422, "nothing to change: give \"link\" and/or \"faults\"");
        ret = -EINVAL;
        goto out_fail;
    }
    json_decref(j);
    return 0;

out_fail:
    json_decref(j);
    return ret;
}

void api_toe_patch_merge(const struct api_toe_patch *p, struct api_toe_faults *cur)
{
    if (p->fault_mask & API_FAULT_DROP)
        cur->drop = p->faults.drop;
    if (p->fault_mask & API_FAULT_DUP)
        cur->dup = p->faults.dup;
    if (p->fault_mask & API_FAULT_REORDER)
        cur->reorder = p->faults.reorder;
    if (p->fault_mask & API_FAULT_CORRUPT)
        cur->corrupt = p->faults.corrupt;
    if (p->fault_mask & API_FAULT_SEED)
        cur->seed = p->faults.seed;
}

int api_parse_capture_req(const char *body, size_t len, struct api_capture_req *out,
                          struct api_err *e)
{
    static const char *const keys[] = { "ring_bytes", NULL };
    json_t *j = NULL, *v;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!body || len == 0)
        return 0;
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto out_fail;
    v = field(j, "ring_bytes");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < API_CAPTURE_RING_MIN ||
            (uint64_t)json_integer_value(v) > API_CAPTURE_RING_MAX) {
            api_err_set(e, 422, "field \"ring_bytes\" must be an integer %d..%llu",
                        API_CAPTURE_RING_MIN, (unsigned long long)API_CAPTURE_RING_MAX);
            ret = -EINVAL;
            goto out_fail;
        }
        out->ring_bytes = (size_t)json_integer_value(v);
    }
    json_decref(j);
    return 0;

out_fail:
    json_decref(j);
    return ret;
}

/* "allow": an array of at most STO_ALLOW_MAX distinct identities (strings). */
static int get_allow(json_t *v, struct sto_access_patch *out, struct api_err *e)
{
    json_t *it;
    size_t i;

    if (!json_is_array(v)) {
        api_err_set(e, 422, "field \"allow\" must be an array of client identities");
        return -EINVAL;
    }
    if (json_array_size(v) > STO_ALLOW_MAX) {
        api_err_set(e, 422, "field \"allow\" has %zu identities, at most %d",
                    json_array_size(v), STO_ALLOW_MAX);
        return -EINVAL;
    }
    json_array_foreach(v, i, it) {
        const char *s = json_string_value(it);
        size_t n = json_string_length(it);

        if (!json_is_string(it) || n == 0) {
            api_err_set(e, 422, "field \"allow[%zu]\" must be a non-empty string", i);
            return -EINVAL;
        }
        if (n >= STO_IDENTITY_MAX || memchr(s, '\0', n) || !text_ok(s, n) ||
            strchr(s, ':')) {
            api_err_set(e, 422, "field \"allow[%zu]\" must be an identity of 1 to %d bytes "
                        "without control characters or ':'", i, STO_IDENTITY_MAX - 1);
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(out->allow[k], s)) {
                api_err_set(e, 422, "field \"allow\" names \"%s\" twice",
                            n <= 64 ? s : "an identity");
                return -EINVAL;
            }
        memcpy(out->allow[i], s, n + 1);
    }
    out->nallow = (uint32_t)json_array_size(v);
    out->set_allow = true;
    return 0;
}

int api_parse_volume_patch(const char *body, size_t len, struct sto_access_patch *out,
                           struct api_err *e)
{
    static const char *const keys[] = { "allow", "read_only", NULL };
    json_t *j = NULL, *v;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = api_parse_object(body, len, &j, e)) < 0)
        return ret;
    if ((ret = check_keys(j, "", keys, e)) < 0)
        goto done;
    ret = -EINVAL;
    v = json_object_get(j, "read_only");
    if (v) {
        if (!json_is_boolean(v)) {
            api_err_set(e, 422, "field \"read_only\" must be true or false");
            goto done;
        }
        out->set_read_only = true;
        out->read_only = json_is_true(v);
    }
    v = json_object_get(j, "allow");
    if (v && get_allow(v, out, e) < 0)
        goto done;
    if (!out->set_read_only && !out->set_allow) {
        api_err_set(e, 422, "nothing to change: give \"allow\" (a list of client identities, "
                    "[] for every client) or \"read_only\" (true or false)");
        goto done;
    }
    ret = 0;
done:
    json_decref(j);
    return ret;
}
