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
    char *key;   /* owned */
    char *value; /* owned */
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
    ISC_KEY_DIGEST,     /* list: CRC32C,None */
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
 * Check the target's `answer` to the value we `offered` for key `k` and compute the
 * result into *result (booleans and digests as 0/1). A violation of the RFC's rules
 * (out of range, above a minimum we offered, a list item we never offered, "Reject")
 * is -EPROTO with a message in err.
 */
int isc_negotiate_answer(const struct isc_key_def *k, const char *offered, const char *answer,
                         uint32_t *result, char *err, size_t errlen);

/*
 * The target proposed `theirs` for `k` without us offering it: compute the value to
 * answer from our preference `ours` (same encoding as above). -EPROTO if invalid.
 */
int isc_negotiate_reply(const struct isc_key_def *k, uint32_t ours, const char *theirs,
                        uint32_t *result, char *err, size_t errlen);

/* Store a negotiated value into the params field for `k`. */
void isc_params_set(struct isc_params *p, const struct isc_key_def *k, uint32_t v);
/* The params field for `k`, in the same encoding. */
uint32_t isc_params_get(const struct isc_params *p, const struct isc_key_def *k);
/* Format our offer of key `k` from preference v into buf. */
void isc_key_format(const struct isc_key_def *k, uint32_t v, char *buf, size_t len);

#endif
