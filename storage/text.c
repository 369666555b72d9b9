/*
 * text.c - key=value lists and the RFC 7143 negotiation rules.
 */
#include "storage/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int isc_kv_add(struct isc_kvlist *l, const char *key, const char *value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct isc_kv *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].key = strdup(key);
    l->v[l->n].value = strdup(value);
    l->v[l->n].state = 0;
    if (!l->v[l->n].key || !l->v[l->n].value) {
        free(l->v[l->n].key);
        free(l->v[l->n].value);
        return -ENOMEM;
    }
    l->n++;
    return 0;
}

int isc_kv_addf(struct isc_kvlist *l, const char *key, const char *fmt, ...)
{
    char buf[ISC_VALUE_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return isc_kv_add(l, key, buf);
}

int isc_kv_parse(const uint8_t *buf, size_t len, struct isc_kvlist *out)
{
    size_t pos = 0;

    while (pos < len) {
        const char *pair = (const char *)buf + pos;
        const char *nul = memchr(pair, '\0', len - pos);
        const char *eq;
        char key[ISC_KEY_MAX + 1];
        size_t klen;
        int ret;

        if (!nul)
            return -EPROTO;
        if (nul == pair) { /* tolerate padding NULs between pairs */
            pos++;
            continue;
        }
        eq = memchr(pair, '=', (size_t)(nul - pair));
        if (!eq)
            return -EPROTO;
        klen = (size_t)(eq - pair);
        if (klen == 0 || klen > ISC_KEY_MAX || (size_t)(nul - eq - 1) > ISC_VALUE_MAX)
            return -EPROTO;
        memcpy(key, pair, klen);
        key[klen] = '\0';
        ret = isc_kv_add(out, key, eq + 1);
        if (ret < 0)
            return ret;
        pos += (size_t)(nul - pair) + 1;
    }
    return 0;
}

const char *isc_kv_get(const struct isc_kvlist *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0)
            return l->v[i].value;
    return NULL;
}

size_t isc_kv_size(const struct isc_kvlist *l)
{
    size_t n = 0;

    for (size_t i = 0; i < l->n; i++)
        n += strlen(l->v[i].key) + 1 + strlen(l->v[i].value) + 1;
    return n;
}

size_t isc_kv_serialize(const struct isc_kvlist *l, uint8_t *buf)
{
    size_t pos = 0;

    for (size_t i = 0; i < l->n; i++) {
        size_t k = strlen(l->v[i].key), v = strlen(l->v[i].value);
        memcpy(buf + pos, l->v[i].key, k);
        buf[pos + k] = '=';
        memcpy(buf + pos + k + 1, l->v[i].value, v);
        buf[pos + k + 1 + v] = '\0';
        pos += k + v + 2;
    }
    return pos;
}

void isc_kv_clear(struct isc_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        /* values may hold CHAP material: wipe before freeing */
        explicit_bzero(l->v[i].value, strlen(l->v[i].value));
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

void isc_params_defaults(struct isc_params *p)
{
    *p = (struct isc_params){
        .header_digest = false,
        .data_digest = false,
        .max_recv_dsl = 8192,
        .max_send_dsl = 8192,
        .max_burst = 262144,
        .first_burst = 65536,
        .initial_r2t = true,
        .immediate_data = true,
        .max_outstanding_r2t = 1,
        .data_pdu_in_order = true,
        .data_seq_in_order = true,
        .default_time2wait = 2,
        .default_time2retain = 20,
        .error_recovery_level = 0,
        .max_connections = 1,
    };
}

static const struct isc_key_def key_defs[] = {
    { "HeaderDigest", ISC_KEY_DIGEST, 0, 1, true },
    { "DataDigest", ISC_KEY_DIGEST, 0, 1, true },
    { "MaxRecvDataSegmentLength", ISC_KEY_DECLARATIVE, 512, (1u << 24) - 1, true },
    { "MaxBurstLength", ISC_KEY_NUM_MIN, 512, (1u << 24) - 1, false },
    { "FirstBurstLength", ISC_KEY_NUM_MIN, 512, (1u << 24) - 1, false },
    { "InitialR2T", ISC_KEY_BOOL_OR, 0, 1, false },
    { "ImmediateData", ISC_KEY_BOOL_AND, 0, 1, false },
    { "MaxOutstandingR2T", ISC_KEY_NUM_MIN, 1, 65535, false },
    { "DataPDUInOrder", ISC_KEY_BOOL_OR, 0, 1, false },
    { "DataSequenceInOrder", ISC_KEY_BOOL_OR, 0, 1, false },
    { "DefaultTime2Wait", ISC_KEY_NUM_MAX, 0, 3600, true },
    { "DefaultTime2Retain", ISC_KEY_NUM_MIN, 0, 3600, true },
    { "ErrorRecoveryLevel", ISC_KEY_NUM_MIN, 0, 2, false },
    { "MaxConnections", ISC_KEY_NUM_MIN, 1, 65535, false },
};

const struct isc_key_def *isc_key_find(const char *name)
{
    for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++)
        if (strcmp(key_defs[i].name, name) == 0)
            return &key_defs[i];
    return NULL;
}

static uint32_t *param_field(struct isc_params *p, const char *name)
{
    if (!strcmp(name, "MaxRecvDataSegmentLength")) return &p->max_send_dsl;
    if (!strcmp(name, "MaxBurstLength")) return &p->max_burst;
    if (!strcmp(name, "FirstBurstLength")) return &p->first_burst;
    if (!strcmp(name, "MaxOutstandingR2T")) return &p->max_outstanding_r2t;
    if (!strcmp(name, "DefaultTime2Wait")) return &p->default_time2wait;
    if (!strcmp(name, "DefaultTime2Retain")) return &p->default_time2retain;
    if (!strcmp(name, "ErrorRecoveryLevel")) return &p->error_recovery_level;
    if (!strcmp(name, "MaxConnections")) return &p->max_connections;
    return NULL;
}

static bool *param_flag(struct isc_params *p, const char *name)
{
    if (!strcmp(name, "HeaderDigest")) return &p->header_digest;
    if (!strcmp(name, "DataDigest")) return &p->data_digest;
    if (!strcmp(name, "InitialR2T")) return &p->initial_r2t;
    if (!strcmp(name, "ImmediateData")) return &p->immediate_data;
    if (!strcmp(name, "DataPDUInOrder")) return &p->data_pdu_in_order;
    if (!strcmp(name, "DataSequenceInOrder")) return &p->data_seq_in_order;
    return NULL;
}

void isc_params_set(struct isc_params *p, const struct isc_key_def *k, uint32_t v)
{
    uint32_t *f = param_field(p, k->name);
    bool *b = param_flag(p, k->name);

    if (f)
        *f = v;
    else if (b)
        *b = v != 0;
}

uint32_t isc_params_get(const struct isc_params *p, const struct isc_key_def *k)
{
    struct isc_params *mp = (struct isc_params *)p;
    uint32_t *f;
    bool *b;

    /* For the declarative key our own declaration is what we offer. */
    if (!strcmp(k->name, "MaxRecvDataSegmentLength"))
        return p->max_recv_dsl;
    f = param_field(mp, k->name);
    if (f)
        return *f;
    b = param_flag(mp, k->name);
    return b && *b;
}

void isc_key_format(const struct isc_key_def *k, uint32_t v, char *buf, size_t len)
{
    switch (k->kind) {
    case ISC_KEY_DIGEST:
        snprintf(buf, len, "%s", v ? "CRC32C" : "None");
        break;
    case ISC_KEY_BOOL_AND:
    case ISC_KEY_BOOL_OR:
        snprintf(buf, len, "%s", v ? "Yes" : "No");
        break;
    default:
        snprintf(buf, len, "%u", v);
        break;
    }
}

/*
 * A value from the target, fit to quote in a message: at most 32 bytes, anything but
 * printable ASCII shown as '?' (the message is one line in a log and in the API).
 */
static const char *quote(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] && i < 32 && i + 1 < len; i++)
        buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

static int parse_num(const struct isc_key_def *k, const char *s, uint32_t *out, char *err,
                     size_t errlen)
{
    char *end;
    unsigned long long v;

    if (!*s || *s == '-' || *s == '+')
        goto bad;
    errno = 0;
    /* RFC 7143 §6.1: decimal without leading zeroes, or 0x-prefixed hex; never octal */
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        v = strtoull(s + 2, &end, 16);
    else if (s[0] == '0' && s[1])
        goto bad;
    else
        v = strtoull(s, &end, 10);
    if (errno || *end)
        goto bad;
    if (v < k->min || v > k->max) {
        snprintf(err, errlen, "target sent %s=%llu, outside %u..%u", k->name, v, k->min,
                 k->max);
        return -EPROTO;
    }
    *out = (uint32_t)v;
    return 0;
bad:
    snprintf(err, errlen, "target sent %s with a value that is not a number", k->name);
    return -EPROTO;
}

static int parse_bool(const struct isc_key_def *k, const char *s, uint32_t *out, char *err,
                      size_t errlen)
{
    char q[33];

    if (!strcmp(s, "Yes")) {
        *out = 1;
    } else if (!strcmp(s, "No")) {
        *out = 0;
    } else {
        snprintf(err, errlen, "target sent %s=\"%s\", not Yes or No", k->name,
                 quote(s, q, sizeof(q)));
        return -EPROTO;
    }
    return 0;
}

static int parse_digest(const struct isc_key_def *k, const char *s, uint32_t *out, char *err,
                        size_t errlen)
{
    char q[33];

    if (!strcmp(s, "CRC32C")) {
        *out = 1;
    } else if (!strcmp(s, "None")) {
        *out = 0;
    } else {
        snprintf(err, errlen, "target sent %s=\"%s\", not CRC32C or None", k->name,
                 quote(s, q, sizeof(q)));
        return -EPROTO;
    }
    return 0;
}

static int parse_value(const struct isc_key_def *k, const char *s, uint32_t *out, char *err,
                       size_t errlen)
{
    switch (k->kind) {
    case ISC_KEY_DIGEST:
        return parse_digest(k, s, out, err, errlen);
    case ISC_KEY_BOOL_AND:
    case ISC_KEY_BOOL_OR:
        return parse_bool(k, s, out, err, errlen);
    default:
        return parse_num(k, s, out, err, errlen);
    }
}

/* Whether the comma-separated digest list `offered` names `value`. */
static bool list_has(const char *offered, const char *value)
{
    size_t vlen = strlen(value);

    for (const char *p = offered; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

int isc_negotiate_answer(const struct isc_key_def *k, const char *offered, const char *answer,
                         uint32_t *result, char *err, size_t errlen)
{
    uint32_t ours, theirs;
    char qo[33], qa[33];
    int ret;

    if (!strcmp(answer, "Irrelevant")) {
        /* the key does not apply here: its RFC default stands (None for a digest) */
        struct isc_params def;
        if (k->kind == ISC_KEY_DIGEST && !list_has(offered, "None")) {
            snprintf(err, errlen, "target answered %s=Irrelevant to %s: digests were "
                     "required", k->name, quote(offered, qo, sizeof(qo)));
            return -EPROTO;
        }
        isc_params_defaults(&def);
        *result = isc_params_get(&def, k);
        return 0;
    }
    if (!strcmp(answer, "Reject") || !strcmp(answer, "NotUnderstood")) {
        /*
         * Never read as the default: a target that insists on digests rejects None and
         * then sends them anyway, and the first command would die on its framing.
         */
        if (k->kind == ISC_KEY_DIGEST && !strcmp(offered, "None"))
            snprintf(err, errlen, "target answered %s=%s to None, the only value offered "
                     "(it may require CRC32C digests)", k->name, answer);
        else
            snprintf(err, errlen, "target answered %s=%s to %s", k->name, answer,
                     quote(offered, qo, sizeof(qo)));
        return -EPROTO;
    }
    if (k->kind == ISC_KEY_DIGEST) {
        if (!list_has(offered, answer)) {
            snprintf(err, errlen, "target does not support %s=%s (it answered %s)",
                     k->name, quote(offered, qo, sizeof(qo)), quote(answer, qa, sizeof(qa)));
            return -EPROTO;
        }
        return parse_digest(k, answer, result, err, errlen);
    }
    ret = parse_value(k, offered, &ours, err, errlen);
    if (ret == 0)
        ret = parse_value(k, answer, &theirs, err, errlen);
    if (ret < 0)
        return ret;
    switch (k->kind) {
    case ISC_KEY_NUM_MIN:
        if (theirs > ours) {
            snprintf(err, errlen, "target answered %s=%u, above the %u offered", k->name,
                     theirs, ours);
            return -EPROTO;
        }
        *result = theirs;
        return 0;
    case ISC_KEY_NUM_MAX:
        if (theirs < ours) {
            snprintf(err, errlen, "target answered %s=%u, below the %u offered", k->name,
                     theirs, ours);
            return -EPROTO;
        }
        *result = theirs;
        return 0;
    case ISC_KEY_BOOL_AND:
        if (!ours && theirs) {
            snprintf(err, errlen, "target answered %s=Yes to No (result is AND)", k->name);
            return -EPROTO;
        }
        *result = theirs;
        return 0;
    case ISC_KEY_BOOL_OR:
        if (ours && !theirs) {
            snprintf(err, errlen, "target answered %s=No to Yes (result is OR)", k->name);
            return -EPROTO;
        }
        *result = theirs;
        return 0;
    case ISC_KEY_DECLARATIVE:
        *result = theirs;
        return 0;
    default:
        break;
    }
    return -EPROTO;
}

int isc_negotiate_reply(const struct isc_key_def *k, uint32_t ours, const char *theirs,
                        uint32_t *result, char *err, size_t errlen)
{
    uint32_t v;
    char q[33];
    int ret;

    if (k->kind == ISC_KEY_DIGEST) {
        /* the target offers a list: answer its first value that we accept */
        for (const char *p = theirs; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if ((ours & ISC_DIGEST_NONE) && len == 4 && !strncmp(p, "None", 4)) {
                *result = 0;
                return 0;
            }
            if ((ours & ISC_DIGEST_CRC32C) && len == 6 && !strncmp(p, "CRC32C", 6)) {
                *result = 1;
                return 0;
            }
            if (!comma)
                break;
            p = comma + 1;
        }
        snprintf(err, errlen, "target offered %s=%s, none of which we accept (%s)",
                 k->name, quote(theirs, q, sizeof(q)),
                 isc_digest_offer(ours) ? isc_digest_offer(ours) : "none");
        return -EPROTO;
    }
    ret = parse_value(k, theirs, &v, err, errlen);
    if (ret < 0)
        return ret;
    switch (k->kind) {
    case ISC_KEY_NUM_MIN:
        *result = v < ours ? v : ours;
        break;
    case ISC_KEY_NUM_MAX:
        *result = v > ours ? v : ours;
        break;
    case ISC_KEY_BOOL_AND:
        *result = v && ours;
        break;
    case ISC_KEY_BOOL_OR:
        *result = v || ours;
        break;
    default:
        *result = v;
        break;
    }
    return 0;
}

const char *isc_digest_offer(uint32_t accepted)
{
    switch (accepted & ISC_DIGEST_ANY) {
    case ISC_DIGEST_NONE: return "None";
    case ISC_DIGEST_CRC32C: return "CRC32C";
    case ISC_DIGEST_ANY: return "None,CRC32C";
    default: return NULL;
    }
}

uint32_t isc_digest_accepted(bool require, bool refuse)
{
    if (require)
        return ISC_DIGEST_CRC32C;
    return refuse ? ISC_DIGEST_NONE : ISC_DIGEST_ANY;
}

/* ---------------------------------------------------------------- negotiation record */

static struct isc_kv *neg_find(struct isc_kvlist *neg, const char *key)
{
    for (size_t i = 0; i < neg->n; i++)
        if (neg->v[i].state && !strcmp(neg->v[i].key, key))
            return &neg->v[i];
    return NULL;
}

int isc_neg_offer(struct isc_kvlist *neg, const struct isc_key_def *k, const char *value)
{
    int ret = isc_kv_add(neg, k->name, value);

    if (ret == 0)
        neg->v[neg->n - 1].state = ISC_NEG_OFFERED;
    return ret;
}

/* Replace the entry's value with what the target sent and mark the key settled. */
static int neg_settle(struct isc_kv *e, const char *value)
{
    char *v = strdup(value);

    if (!v)
        return -ENOMEM;
    free(e->value);
    e->value = v;
    e->state = ISC_NEG_SETTLED;
    return 0;
}

/* A settled key sent again: only an exact echo of the first value is harmless. */
static int neg_repeat(const struct isc_key_def *k, const struct isc_kv *e, const char *value,
                      uint32_t *result, char *err, size_t errlen)
{
    char scratch[8];
    uint32_t before, now;

    if (strcmp(e->value, value) != 0) {
        /* the same number spelled another way (0x1000, 4096) is still the same value */
        if (k->kind == ISC_KEY_DIGEST ||
            parse_value(k, e->value, &before, scratch, sizeof(scratch)) < 0 ||
            parse_value(k, value, &now, scratch, sizeof(scratch)) < 0 || before != now) {
            snprintf(err, errlen, "target negotiated %s again in a later login round "
                     "(%.32s before, now %.32s)", k->name, e->value, value);
            return -EPROTO;
        }
    }
    *result = 0;
    return ISC_NEG_ECHO;
}

int isc_neg_receive(struct isc_kvlist *neg, const struct isc_key_def *k, uint32_t ours,
                    const char *value, uint32_t *result, char *reply, size_t replylen,
                    char *err, size_t errlen)
{
    struct isc_kv *e = neg_find(neg, k->name);
    int ret;

    if (e && e->state == ISC_NEG_SETTLED)
        return neg_repeat(k, e, value, result, err, errlen);
    if (e) {
        ret = isc_negotiate_answer(k, e->value, value, result, err, errlen);
        if (ret == 0)
            ret = neg_settle(e, value);
        return ret < 0 ? ret : ISC_NEG_APPLY;
    }
    if (k->kind == ISC_KEY_DECLARATIVE) {
        /* the target's own declaration: only its range to check */
        ret = parse_num(k, value, result, err, errlen);
    } else {
        ret = isc_negotiate_reply(k, ours, value, result, err, errlen);
        if (ret == 0)
            isc_key_format(k, *result, reply, replylen);
    }
    if (ret < 0)
        return ret;
    ret = isc_kv_add(neg, k->name, value);
    if (ret < 0)
        return ret;
    neg->v[neg->n - 1].state = ISC_NEG_SETTLED;
    return k->kind == ISC_KEY_DECLARATIVE ? ISC_NEG_APPLY : ISC_NEG_REPLY;
}

int isc_neg_finish(const struct isc_kvlist *neg, char *err, size_t errlen)
{
    for (size_t i = 0; i < neg->n; i++) {
        const struct isc_kv *e = &neg->v[i];
        const struct isc_key_def *k = isc_key_find(e->key);
        if (e->state != ISC_NEG_OFFERED || !k || k->kind != ISC_KEY_DIGEST)
            continue;
        if (!list_has(e->value, "None")) {
            snprintf(err, errlen, "target ended the login without answering %s=%s (the "
                     "default None was not offered)", e->key, e->value);
            return -EPROTO;
        }
    }
    return 0;
}
