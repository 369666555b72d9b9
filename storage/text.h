/*
 * text.h - iSCSI text keys (RFC 7143 §6): key=value lists and the negotiation rules of
 * the operational keys (§13) with their ranges and result functions.
 */
#ifndef TOEGW_STORAGE_TEXT_H
#define TOEGW_STORAGE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISC_KEY_MAX 63       /* RFC 7143 §6.1: key names are at most 63 bytes */
#define ISC_VALUE_MAX 8192   /* the longest value we accept (CHAP binary values) */
#define ISC_TEXT_MAX 65536   /* cap on one text/login data segment */

struct isc_kv {
    char *key;     /* owned */
    char *value;   /* owned */
    uint8_t state; /* enum isc_neg_state in a negotiation record, else 0 */
};

/* An ordered key=value list. Zero-initialise; free with isc_kv_clear. */
struct isc_kvlist {
    struct isc_kv *v;
    size_t n, cap;
};

/*
 * Parse a text data segment ("k=v\0k=v\0") and append to `out`. Strict: every pair has a
 * non-empty key of at most ISC_KEY_MAX bytes and a '='; values at most ISC_VALUE_MAX; the
 * segment ends with NUL (a trailing partial pair is -EPROTO). 0, -EPROTO or -ENOMEM.
 */
int isc_kv_parse(const uint8_t *buf, size_t len, struct isc_kvlist *out);
int isc_kv_add(struct isc_kvlist *l, const char *key, const char *value);
int isc_kv_addf(struct isc_kvlist *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The value of the first `key`, or NULL (borrowed from the list). */
const char *isc_kv_get(const struct isc_kvlist *l, const char *key);
/* Serialised size in bytes. */
size_t isc_kv_size(const struct isc_kvlist *l);
/* Serialise into buf (at least isc_kv_size bytes). Returns bytes written. */
size_t isc_kv_serialize(const struct isc_kvlist *l, uint8_t *buf);
void isc_kv_clear(struct isc_kvlist *l);

/* The operational parameters of a session/connection after negotiation. */
struct isc_params {
    bool header_digest;           /* CRC32C on headers */
    bool data_digest;             /* CRC32C on data segments */
    uint32_t max_recv_dsl;        /* what we declared: the most the target may send us */
    uint32_t max_send_dsl;        /* what the target declared: the most we may send */
    uint32_t max_burst;
    uint32_t first_burst;
    bool initial_r2t;
    bool immediate_data;
    uint32_t max_outstanding_r2t;
    bool data_pdu_in_order;
    bool data_seq_in_order;
    uint32_t default_time2wait;
    uint32_t default_time2retain;
    uint32_t error_recovery_level;
    uint32_t max_connections;
};

/* RFC 7143 defaults (what applies to keys never negotiated). */
void isc_params_defaults(struct isc_params *p);

enum isc_key_kind {
    ISC_KEY_DIGEST,     /* list of None, CRC32C */
    ISC_KEY_NUM_MIN,    /* numerical, result = minimum */
    ISC_KEY_NUM_MAX,    /* numerical, result = maximum */
    ISC_KEY_BOOL_AND,   /* result = AND */
    ISC_KEY_BOOL_OR,    /* result = OR */
    ISC_KEY_DECLARATIVE /* numerical, each side states its own */
};

struct isc_key_def {
    const char *name;
    enum isc_key_kind kind;
    uint32_t min, max;
    bool discovery;     /* also negotiated in discovery sessions */
};

/* The definition of an operational key, or NULL when it is not one. */
const struct isc_key_def *isc_key_find(const char *name);

/*
 * Digest values a side accepts, as a mask: our preference for a digest key wherever a
 * function takes `ours`.
 */
#define ISC_DIGEST_NONE 0x1u
#define ISC_DIGEST_CRC32C 0x2u
#define ISC_DIGEST_ANY (ISC_DIGEST_NONE | ISC_DIGEST_CRC32C)

/*
 * The list we offer for a digest key: "None", "CRC32C" or, when both are accepted,
 * "None,CRC32C" (None first, as libiscsi: the target chooses, and one that insists on
 * digests can have them). NULL for an empty mask.
 */
const char *isc_digest_offer(uint32_t accepted);
/* What a side accepts when it requires digests, refuses them, or neither (both). */
uint32_t isc_digest_accepted(bool require, bool refuse);

/*
 * Check the target's `answer` to the value we `offered` for key `k` and compute the
 * result into *result (booleans and digests as 0/1). A violation of the RFC's rules
 * (out of range, above a minimum we offered, a list item we never offered, "Reject" or
 * "NotUnderstood") is -EPROTO with a message in err. "Irrelevant" leaves the key's RFC
 * default, for a digest only when the offer holds None (the default).
 */
int isc_negotiate_answer(const struct isc_key_def *k, const char *offered, const char *answer,
                         uint32_t *result, char *err, size_t errlen);

/*
 * The target proposed `theirs` for `k` without us offering it: compute the value to
 * answer from our preference `ours` (same encoding as above; for a digest key the
 * ISC_DIGEST_* mask we accept, and the answer is the first value of the target's list
 * in it, RFC 7143 §6.2). -EPROTO if invalid or, for a digest, nothing acceptable.
 */
int isc_negotiate_reply(const struct isc_key_def *k, uint32_t ours, const char *theirs,
                        uint32_t *result, char *err, size_t errlen);

/*
 * One login's negotiation record (RFC 7143 §6.2): an isc_kvlist whose entries carry a
 * state. Every operational key is negotiated once per login; the record says which keys
 * we offered and still wait for, and which are settled and how.
 */
enum isc_neg_state {
    ISC_NEG_OFFERED = 1, /* value: what we offered, not answered yet */
    ISC_NEG_SETTLED,     /* value: what the target sent for it (its answer, offer or
                            declaration) */
};

/* Record our offer `value` of key `k` (not for declarative keys). 0 or -ENOMEM. */
int isc_neg_offer(struct isc_kvlist *neg, const struct isc_key_def *k, const char *value);

/*
 * Apply one key=value the target sent in the operational stage and settle the key:
 *  - the answer to our outstanding offer is checked against it (isc_negotiate_answer);
 *  - a declaration (MaxRecvDataSegmentLength) is checked against the key's range;
 *  - a key the target offers first gets our answer from `ours` (isc_negotiate_reply),
 *    written into `reply` (at least 16 bytes);
 *  - a key settled before (a repeat in a later round) is a renegotiation, which RFC 7143
 *    §6.2 forbids: -EPROTO unless it repeats exactly what the target sent the first time
 *    (an echo changes nothing; a different value would have the two sides disagree).
 * Returns ISC_NEG_APPLY (*result is the key's value for isc_params_set), ISC_NEG_REPLY
 * (the same, and send `reply`), ISC_NEG_ECHO (nothing changes), -EPROTO (message in err)
 * or -ENOMEM.
 */
enum { ISC_NEG_APPLY = 0, ISC_NEG_REPLY = 1, ISC_NEG_ECHO = 2 };
int isc_neg_receive(struct isc_kvlist *neg, const struct isc_key_def *k, uint32_t ours,
                    const char *value, uint32_t *result, char *reply, size_t replylen,
                    char *err, size_t errlen);

/*
 * The target ended the login: a digest offer it never answered leaves the default None,
 * which is a failure unless None was offered. Unanswered numeric and boolean offers keep
 * their RFC defaults. 0 or -EPROTO (message in err).
 */
int isc_neg_finish(const struct isc_kvlist *neg, char *err, size_t errlen);

/* Store a negotiated value into the params field for `k`. */
void isc_params_set(struct isc_params *p, const struct isc_key_def *k, uint32_t v);
/* The params field for `k`, in the same encoding. */
uint32_t isc_params_get(const struct isc_params *p, const struct isc_key_def *k);
/* Format our offer of key `k` from preference v into buf. */
void isc_key_format(const struct isc_key_def *k, uint32_t v, char *buf, size_t len);

#endif
