/*
 * login.c - the session's login (RFC 7143 §6), an explicit state machine
 * (enum isc_login_state): the security stage (AuthMethod=None, or CHAP: method, algorithm,
 * response, and the target's answer to our challenge for mutual CHAP), the operational
 * stage (every key offered in one request, the target's answers checked and its offers
 * answered), then the full feature phase. Redirects and a retry offering MD5 alone are
 * actions for the I/O layer: a login response never replaces the connection itself.
 */
#include "storage/session_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "storage/chap.h"

#define REDIRECTS_MAX 5
#define LOGIN_ROUNDS_MAX 16
#define CHAP_CHALLENGE_MIN 16 /* bytes of a target's CHAP_C we accept */

/* The login stage (CSG) of a login state. */
static int login_csg(const struct isc_session *s)
{
    return s->login >= ISC_LS_OPERATIONAL ? ISC_STAGE_OPERATIONAL : ISC_STAGE_SECURITY;
}

void isc_login_timeout_cb(struct sto_timer *t)
{
    struct isc_session *s = ISC_SESSION_OF(t, login_timer);
    char addr[32];

    isc_session_fail(s, -ETIMEDOUT, "login to %s timed out after %u ms",
                     stk_addr_str(&s->target_addr, addr, sizeof(addr)), s->cfg.login_timeout_ms);
}

int isc_session_login(struct isc_session *s, isc_done_cb cb, void *arg)
{
    int ret;

    if (s->state != ISC_STATE_LOGGED_OUT && s->state != ISC_STATE_FAILED)
        return -EALREADY;
    if (!s->cfg.discovery && !s->cfg.target_name) {
        isc_session_error_set(s, "no target name for a normal session");
        return -EINVAL;
    }
    if ((s->cfg.chap_user != NULL) != (s->cfg.chap_secret != NULL) ||
        (s->cfg.target_user != NULL) != (s->cfg.target_secret != NULL) ||
        (s->cfg.target_user && !s->cfg.chap_user)) {
        isc_session_error_set(s, "chap needs both a user and a secret (mutual chap needs "
                              "one-way too)");
        return -EINVAL;
    }
    if (!s->isid[0]) {
        /* once per session: a login after a failure reinstates it (RFC 7143 §6.3.5) */
        ret = isc_chap_random(s->isid + 1, 3);
        if (ret < 0)
            return ret;
        s->isid[0] = 0x80; /* type 10b: random qualifier */
        s->isid[4] = 0;
        s->isid[5] = 1;
    }
    s->err[0] = '\0';
    s->login_cb = cb;
    s->login_arg = arg;
    s->redirects = 0;
    s->reconnect_delay_ms = 0;
    s->target_addr = s->cfg.portal;
    s->state = ISC_STATE_CONNECTING;
    ret = isc_conn_open(s);
    if (ret < 0) {
        s->state = ISC_STATE_FAILED;
        s->login_cb = NULL;
        return ret;
    }
    sto_timer_arm(s->loop, &s->login_timer, s->cfg.login_timeout_ms);
    return 0;
}

/* ---------------------------------------------------------------- requests */

/* Send one Login Request carrying `kv`, transiting to `nsg` when transit is set. */
static int login_send(struct isc_session *s, const struct isc_kvlist *kv, bool transit, int nsg)
{
    struct tx_pdu *p = isc_tx_new(s);
    size_t len = isc_kv_size(kv);
    uint8_t *h;

    if (!p)
        return -ENOMEM;
    if (len) {
        p->own = malloc(len);
        if (!p->own) {
            isc_tx_unused(s, p);
            return -ENOMEM;
        }
        isc_kv_serialize(kv, p->own);
    }
    h = p->hdr;
    isc_put_common(s, h, ISC_OP_IMMEDIATE | ISC_OP_LOGIN_REQ,
                   (uint8_t)((transit ? ISC_LOGIN_TRANSIT : 0) | (login_csg(s) << 2) |
                             (transit ? nsg : 0)),
                   ITT_LOGIN);
    memcpy(h + ISC_OFF_ISID, s->isid, 6);
    isc_put16(h, ISC_OFF_TSIH, s->tsih);
    isc_put16(h, ISC_OFF_CID, 0);
    isc_put32(h, ISC_OFF_CMDSN, s->cmdsn);
    isc_tx_queue(s, p, p->own, (uint32_t)len);
    s->login_rounds++;
    return 0;
}

/* A Login Request with no keys (a continuation, or another round with nothing to say). */
static int login_send_empty(struct isc_session *s, bool transit, int nsg)
{
    struct isc_kvlist empty = { 0 };

    return login_send(s, &empty, transit, nsg);
}

/* The operational keys we offer, all in one request (RFC 7143 §13). */
static int offer_operational(struct isc_session *s, struct isc_kvlist *kv)
{
    static const char *const keys[] = {
        "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "DefaultTime2Wait",
        "DefaultTime2Retain", "InitialR2T", "ImmediateData", "MaxBurstLength",
        "FirstBurstLength", "MaxOutstandingR2T", "DataPDUInOrder", "DataSequenceInOrder",
        "ErrorRecoveryLevel", "MaxConnections",
    };
    char val[32];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct isc_key_def *k = isc_key_find(keys[i]);
        const char *offer = val;
        if (s->cfg.discovery && !k->discovery)
            continue;
        if (k->kind == ISC_KEY_DIGEST) {
            /* neither required nor refused: None,CRC32C, so a target may insist on them */
            bool hd = !strcmp(k->name, "HeaderDigest");
            offer = isc_digest_offer(
                isc_digest_accepted(hd ? s->cfg.header_digest : s->cfg.data_digest,
                                    hd ? s->cfg.no_header_digest : s->cfg.no_data_digest));
        } else {
            isc_key_format(k, isc_params_get(&s->want, k), val, sizeof(val));
        }
        if (isc_kv_add(kv, k->name, offer) < 0)
            return -ENOMEM;
        if (k->kind != ISC_KEY_DECLARATIVE && isc_neg_offer(&s->offered, k, offer) < 0)
            return -ENOMEM;
    }
    /* our declaration holds whatever the target says */
    s->params.max_recv_dsl = s->want.max_recv_dsl;
    return 0;
}

/* The keys of the first request: who we are, what we want, how we authenticate. */
static int offer_first(struct isc_session *s, struct isc_kvlist *kv)
{
    int ret = isc_kv_add(kv, "InitiatorName", s->cfg.initiator_name);

    if (!ret)
        ret = isc_kv_add(kv, "SessionType", s->cfg.discovery ? "Discovery" : "Normal");
    if (!ret && !s->cfg.discovery)
        ret = isc_kv_add(kv, "TargetName", s->cfg.target_name);
    if (!ret)
        ret = isc_kv_add(kv, "AuthMethod", s->cfg.chap_user ? "CHAP" : "None");
    return ret;
}

/* Decide and send the next Login Request for the current state. */
static int login_send_next(struct isc_session *s)
{
    struct isc_kvlist kv = { 0 };
    int ret = 0;
    bool transit = true;
    int nsg = ISC_STAGE_OPERATIONAL;

    if (login_csg(s) == ISC_STAGE_SECURITY) {
        if (s->login_rounds == 0) {
            ret = offer_first(s, &kv);
            transit = !s->cfg.chap_user;
        } else if (s->login == ISC_LS_CHAP_METHOD) {
            ret = isc_kv_add(&kv, "CHAP_A", s->chap_md5_only ? isc_chap_offer_md5
                                                             : isc_chap_offer);
            s->login = ISC_LS_CHAP_ALG;
            transit = false;
        }
        /* ISC_LS_CHAP_ALG → the response is built in login_chap_challenge */
    } else {
        if (s->offered.n == 0 && s->replies.n == 0 && s->login_rounds < LOGIN_ROUNDS_MAX)
            ret = offer_operational(s, &kv);
        for (size_t i = 0; !ret && i < s->replies.n; i++)
            ret = isc_kv_add(&kv, s->replies.v[i].key, s->replies.v[i].value);
        isc_kv_clear(&s->replies);
        nsg = ISC_STAGE_FFP;
    }
    if (!ret)
        ret = login_send(s, &kv, transit, nsg);
    isc_kv_clear(&kv);
    return ret;
}

void isc_login_start(struct isc_session *s)
{
    s->state = ISC_STATE_LOGGING_IN;
    isc_params_defaults(&s->params);
    s->want = s->params;
    s->want.header_digest = s->cfg.header_digest;
    s->want.data_digest = s->cfg.data_digest;
    s->want.max_recv_dsl = s->cfg.max_recv_dsl;
    s->want.max_burst = s->cfg.max_burst;
    s->want.first_burst = s->cfg.first_burst < s->cfg.max_burst ? s->cfg.first_burst
                                                                : s->cfg.max_burst;
    s->want.initial_r2t = false;
    s->want.immediate_data = true;
    s->want.max_outstanding_r2t = 1;
    s->want.default_time2wait = 2;
    s->want.default_time2retain = 0; /* ERL 0: no connection reinstatement state to keep */
    s->tsih = 0;
    s->cmdsn = s->exp_cmdsn = s->max_cmdsn = 1;
    s->exp_statsn = 0;
    s->login = s->cfg.chap_user ? ISC_LS_CHAP_METHOD : ISC_LS_SECURITY;
    s->login_rounds = 0;
    free(s->login_text);
    s->login_text = NULL;
    s->login_text_len = 0;
    isc_kv_clear(&s->offered);
    isc_kv_clear(&s->replies);
    if (login_send_next(s) < 0)
        isc_session_fail(s, -ENOMEM, "out of memory building a login request");
}

/* ---------------------------------------------------------------- security stage */

static const char *login_status_text(uint8_t cls, uint8_t detail)
{
    if (cls == 2) {
        switch (detail) {
        case 0x00: return "initiator error";
        case 0x01: return "authentication failed";
        case 0x02: return "authorization failure (initiator not allowed)";
        case 0x03: return "target not found";
        case 0x04: return "target removed";
        case 0x05: return "unsupported iSCSI version";
        case 0x06: return "too many connections";
        case 0x07: return "missing login parameter";
        case 0x08: return "cannot include the connection in the session";
        case 0x09: return "session type not supported";
        case 0x0a: return "session does not exist";
        case 0x0b: return "invalid request during login";
        default: return "initiator error (unknown detail)";
        }
    }
    if (cls == 3) {
        switch (detail) {
        case 0x00: return "target error";
        case 0x01: return "service unavailable";
        case 0x02: return "out of resources";
        default: return "target error (unknown detail)";
        }
    }
    return "unknown login status";
}

/* Our CHAP_N and CHAP_R (hex: the response) and, mutual, our CHAP_I and CHAP_C. */
static int chap_answer(struct isc_session *s, const char *response, const uint8_t *challenge,
                       size_t clen, struct isc_kvlist *out)
{
    char hex[2 * ISC_CHAP_MAX_CHALLENGE + 3];
    int ret = isc_kv_add(out, "CHAP_N", s->cfg.chap_user);

    if (!ret)
        ret = isc_kv_add(out, "CHAP_R", response);
    if (!ret && s->cfg.target_user) {
        ret = isc_chap_random(&s->chap_id, 1);
        if (!ret)
            ret = isc_chap_random(s->chap_challenge, sizeof(s->chap_challenge));
        /* reflection: never accept the target's own challenge back as ours */
        if (!ret && clen == sizeof(s->chap_challenge) &&
            memcmp(challenge, s->chap_challenge, clen) == 0)
            ret = -EPROTO;
        if (!ret)
            ret = isc_kv_addf(out, "CHAP_I", "%u", s->chap_id);
        isc_chap_encode_hex(s->chap_challenge, sizeof(s->chap_challenge), hex, sizeof(hex));
        if (!ret)
            ret = isc_kv_add(out, "CHAP_C", hex);
    }
    return ret;
}

/* CHAP step: the target sent CHAP_A/CHAP_I/CHAP_C; answer it (and challenge it back). */
static struct isc_rx_action login_chap_challenge(struct isc_session *s,
                                                 const struct isc_kvlist *kv)
{
    const char *a = isc_kv_get(kv, "CHAP_A"), *id = isc_kv_get(kv, "CHAP_I");
    const char *c = isc_kv_get(kv, "CHAP_C");
    uint8_t challenge[ISC_CHAP_MAX_CHALLENGE], digest[ISC_CHAP_MAX_DIGEST];
    char hex[2 * ISC_CHAP_MAX_CHALLENGE + 3];
    struct isc_kvlist out = { 0 };
    unsigned long idv;
    char *end;
    int clen, dlen, ret;

    if (!a || !id || !c)
        return isc_rx_fail(s, -EPROTO, "target's chap challenge lacks CHAP_A, CHAP_I or "
                           "CHAP_C");
    s->chap_alg = atoi(a);
    if (!isc_chap_digest_len(s->chap_alg) || a[1] ||
        !strchr(s->chap_md5_only ? isc_chap_offer_md5 : isc_chap_offer, a[0]))
        return isc_rx_fail(s, -EPROTO, "target chose chap algorithm %.16s, which was not "
                           "offered", a);
    errno = 0;
    idv = strtoul(id, &end, 0);
    if (errno || *end || idv > 255)
        return isc_rx_fail(s, -EPROTO, "target sent an invalid CHAP_I");
    clen = isc_chap_decode(c, challenge, sizeof(challenge));
    if (clen <= 0)
        return isc_rx_fail(s, -EPROTO, "target sent an invalid CHAP_C");
    /*
     * A short challenge lets whoever sees the answer replay or brute-force the secret:
     * targets send at least 16 bytes (Linux's target 16, tgtd 16-31), so fewer is refused.
     */
    if (clen < CHAP_CHALLENGE_MIN)
        return isc_rx_fail(s, -EPROTO, "target's chap challenge CHAP_C is %d bytes, fewer "
                           "than the %d required", clen, CHAP_CHALLENGE_MIN);
    dlen = isc_chap_response(s->chap_alg, (uint8_t)idv, s->cfg.chap_secret,
                             strlen(s->cfg.chap_secret), challenge, (size_t)clen, digest);
    if (dlen < 0)
        return isc_rx_fail(s, dlen, "computing the chap response failed");
    isc_chap_encode_hex(digest, (size_t)dlen, hex, sizeof(hex));
    explicit_bzero(digest, sizeof(digest));
    ret = chap_answer(s, hex, challenge, (size_t)clen, &out);
    if (!ret) {
        s->login = ISC_LS_CHAP_RESPONSE;
        ret = login_send(s, &out, true, ISC_STAGE_OPERATIONAL);
    }
    isc_kv_clear(&out);
    if (ret < 0)
        return isc_rx_fail(s, ret, "building the chap response failed");
    return ISC_RX_GO;
}

/* Mutual CHAP: check the target's CHAP_N/CHAP_R against what we expect. */
static struct isc_rx_action login_chap_verify(struct isc_session *s,
                                              const struct isc_kvlist *kv)
{
    const char *n = isc_kv_get(kv, "CHAP_N"), *r = isc_kv_get(kv, "CHAP_R");
    uint8_t want[ISC_CHAP_MAX_DIGEST], got[ISC_CHAP_MAX_DIGEST];
    int wlen, glen;

    if (!s->cfg.target_user) {
        s->login = ISC_LS_CHAP_DONE;
        return ISC_RX_GO;
    }
    if (!n || !r)
        return isc_rx_fail(s, -EACCES, "mutual chap failed: the target did not authenticate "
                           "itself");
    if (strcmp(n, s->cfg.target_user) != 0)
        return isc_rx_fail(s, -EACCES, "mutual chap failed: target answered as \"%.64s\"", n);
    wlen = isc_chap_response(s->chap_alg, s->chap_id, s->cfg.target_secret,
                             strlen(s->cfg.target_secret), s->chap_challenge,
                             sizeof(s->chap_challenge), want);
    glen = isc_chap_decode(r, got, sizeof(got));
    if (wlen < 0 || glen != wlen || CRYPTO_memcmp(want, got, (size_t)wlen) != 0)
        return isc_rx_fail(s, -EACCES, "mutual chap failed: the target's response is wrong "
                           "(check the target secret)");
    s->login = ISC_LS_CHAP_DONE;
    return ISC_RX_GO;
}

/* ---------------------------------------------------------------- operational stage */

/*
 * Apply the target's operational answers and offers (s->offered is the login's negotiation
 * record); `last`: this response ends the login, so every offer must have an outcome.
 */
static struct isc_rx_action login_negotiate(struct isc_session *s,
                                            const struct isc_kvlist *kv, bool last)
{
    char err[200], val[32];

    for (size_t i = 0; i < kv->n; i++) {
        const char *key = kv->v[i].key, *value = kv->v[i].value;
        const struct isc_key_def *k = isc_key_find(key);
        uint32_t ours, result;
        int ret;

        if (!k) {
            /* informational keys from the target need no answer */
            if (!strcmp(key, "TargetAlias") || !strcmp(key, "TargetPortalGroupTag") ||
                !strcmp(key, "TargetAddress") || !strcmp(key, "TargetName"))
                continue;
            if (isc_kv_add(&s->replies, key, "NotUnderstood") < 0)
                goto nomem;
            continue;
        }
        ours = isc_params_get(&s->want, k);
        if (k->kind == ISC_KEY_DIGEST) {
            bool hd = !strcmp(k->name, "HeaderDigest");
            ours = isc_digest_accepted(hd ? s->cfg.header_digest : s->cfg.data_digest,
                                       hd ? s->cfg.no_header_digest : s->cfg.no_data_digest);
        }
        ret = isc_neg_receive(&s->offered, k, ours, value, &result, val, sizeof(val), err,
                              sizeof(err));
        if (ret == -ENOMEM)
            goto nomem;
        if (ret < 0)
            return isc_rx_fail(s, -EPROTO, "login negotiation failed: %s", err);
        if (ret == ISC_NEG_ECHO)
            continue;
        if (ret == ISC_NEG_REPLY && isc_kv_add(&s->replies, key, val) < 0)
            goto nomem;
        isc_params_set(&s->params, k, result);
    }
    if (last && isc_neg_finish(&s->offered, err, sizeof(err)) < 0)
        return isc_rx_fail(s, -EPROTO, "login negotiation failed: %s", err);
    return ISC_RX_GO;
nomem:
    return isc_rx_fail(s, -ENOMEM, "out of memory in the login negotiation");
}

static void login_done(struct isc_session *s)
{
    char addr[32];

    if (s->params.first_burst > s->params.max_burst)
        s->params.first_burst = s->params.max_burst;
    s->login = ISC_LS_FULL;
    s->state = ISC_STATE_LOGGED_IN;
    s->last_rx_ms = sto_now_ms();
    s->nop_sent_ms = 0;
    s->owner_told = false;
    s->window_closed_ms = 0;
    isc_tmf_reset(&s->tmf);
    if (s->cfg.nop_interval_ms != ISC_TIMEOUT_ZERO)
        sto_timer_arm(s->loop, &s->nop_timer, s->cfg.nop_interval_ms);
    log_info("iscsi", "logged in to %s at %s (tsih %u, %s stack, digests %s/%s, "
             "burst %u/%u, r2t %s, immediate %s)", isc_target_label(s),
             stk_addr_str(&s->target_addr, addr, sizeof(addr)), s->tsih,
             stk_stack_name(s->conn->stack), s->params.header_digest ? "crc32c" : "none",
             s->params.data_digest ? "crc32c" : "none", s->params.first_burst,
             s->params.max_burst, s->params.initial_r2t ? "yes" : "no",
             s->params.immediate_data ? "yes" : "no");
    isc_finish_login(s, 0);
    isc_send_waiting(s);
}

/* The target ends the login (transit to the full feature phase). */
static struct isc_rx_action login_complete(struct isc_session *s, const uint8_t *h)
{
    s->tsih = isc_get16(h, ISC_OFF_TSIH);
    if (!s->cfg.discovery && s->tsih == 0)
        return isc_rx_fail(s, -EPROTO, "target completed the login without a session "
                           "handle");
    login_done(s);
    return ISC_RX_GO;
}

/* Next request, or the failure saying it could not be built. */
static struct isc_rx_action login_next(struct isc_session *s)
{
    if (login_send_next(s) < 0)
        return isc_rx_fail(s, -ENOMEM, "out of memory");
    return ISC_RX_GO;
}

/* ---------------------------------------------------------------- login responses */

/* Login redirect: log in again at the TargetAddress the target named. */
static struct isc_rx_action login_redirect(struct isc_session *s, const struct isc_kvlist *kv)
{
    const char *ta = isc_kv_get(kv, "TargetAddress");
    struct isc_rx_action act = { .verdict = ISC_RX_RECONNECT };
    char host[300];

    if (!ta || ++s->redirects > REDIRECTS_MAX)
        return isc_rx_fail(s, -EPROTO, ta ? "too many login redirects"
                                          : "target redirected the login without a "
                                            "TargetAddress");
    snprintf(host, sizeof(host), "%s", ta);
    char *comma = strchr(host, ',');
    if (comma)
        *comma = '\0';
    if (stk_parse_hostport(host, ISC_DEFAULT_PORT, &act.dst) < 0)
        return isc_rx_fail(s, -EPROTO, "target redirected to an unusable address \"%.64s\"",
                           ta);
    log_info("iscsi", "login redirected to %s", host);
    return act;
}

/* A login response with a status class other than success: redirect, retry or refusal. */
static struct isc_rx_action login_status(struct isc_session *s, uint8_t cls, uint8_t detail,
                                         const uint8_t *data, uint32_t len)
{
    struct isc_kvlist kv = { 0 };
    struct isc_rx_action act;
    char addr[32];

    if (cls == 1) {
        if (isc_kv_parse(data, len, &kv) == 0)
            act = login_redirect(s, &kv);
        else
            act = isc_rx_fail(s, -EPROTO, "target sent a malformed redirect");
        isc_kv_clear(&kv);
        return act;
    }
    if (cls == 2 && detail == 0 && !s->chap_md5_only &&
        (s->login == ISC_LS_CHAP_ALG || (s->login == ISC_LS_CHAP_RESPONSE &&
                                         s->chap_alg != ISC_CHAP_MD5))) {
        /*
         * Some targets refuse an algorithm list outright; tgt 1.0.85 picks SHA-256 and then
         * fails every SHA-256 response with 0x0200. Either way: retry offering MD5 alone.
         */
        log_debug("iscsi", "target refused CHAP_A=%s; retrying with MD5 only", isc_chap_offer);
        s->chap_md5_only = true;
        return (struct isc_rx_action){ .verdict = ISC_RX_RECONNECT, .dst = s->target_addr };
    }
    /* targets check their ACL by initiator name, and some (tgtd) answer "not found" */
    bool acl = cls == 2 && (detail == 2 || detail == 3) && !s->cfg.discovery;
    return isc_rx_fail(s, detail == 1 && cls == 2 ? -EACCES : cls == 2 && detail == 3 ? -ENXIO
                                                                                   : -EPROTO,
                       "login to %s at %s refused: %s (status 0x%02x%02x)%s%s%s",
                       isc_target_label(s), stk_addr_str(&s->target_addr, addr, sizeof(addr)),
                       login_status_text(cls, detail), cls, detail,
                       acl ? "; initiator name " : "", acl ? s->cfg.initiator_name : "",
                       acl ? ": is it in the target's access list?" : "");
}

/* Keep the text of a response; continued (C bit) responses are reassembled. */
static struct isc_rx_action login_text_add(struct isc_session *s, const uint8_t *data,
                                           uint32_t len)
{
    uint8_t *t;

    if (s->login_text_len + len > ISC_TEXT_MAX)
        return isc_rx_fail(s, -EPROTO, "login text from the target exceeds %u bytes",
                           ISC_TEXT_MAX);
    t = realloc(s->login_text, s->login_text_len + len + 1);
    if (!t)
        return isc_rx_fail(s, -ENOMEM, "out of memory");
    s->login_text = t;
    memcpy(t + s->login_text_len, data, len);
    s->login_text_len += len;
    return ISC_RX_GO;
}

/* A complete security stage response, in any of the security states. */
static struct isc_rx_action login_security(struct isc_session *s, const uint8_t *h,
                                           const struct isc_kvlist *kv, bool transit, int nsg)
{
    const char *am = isc_kv_get(kv, "AuthMethod");
    struct isc_rx_action act;

    if (am && s->login == ISC_LS_CHAP_METHOD && strcmp(am, "CHAP") != 0)
        return isc_rx_fail(s, -EACCES, "target refused chap authentication "
                           "(AuthMethod=%.16s)", am);
    if (s->login == ISC_LS_CHAP_ALG)
        return login_chap_challenge(s, kv);
    if (s->login == ISC_LS_CHAP_RESPONSE && !isc_rx_go(act = login_chap_verify(s, kv)))
        return act;
    if (!transit) {
        if (s->login == ISC_LS_CHAP_METHOD)
            return login_next(s);
        /* the target wants another round with nothing to say: keep transiting */
        if (login_send_empty(s, true, ISC_STAGE_OPERATIONAL) < 0)
            return isc_rx_fail(s, -ENOMEM, "out of memory");
        return ISC_RX_GO;
    }
    if (s->cfg.target_user && s->login != ISC_LS_CHAP_DONE)
        return isc_rx_fail(s, -EACCES, "mutual chap failed: the target skipped "
                           "authentication");
    if (nsg == ISC_STAGE_FFP) /* the target skipped the operational stage: defaults apply */
        return login_complete(s, h);
    s->login = ISC_LS_OPERATIONAL;
    return login_next(s);
}

/* A complete operational stage response. */
static struct isc_rx_action login_operational(struct isc_session *s, const uint8_t *h,
                                              const struct isc_kvlist *kv, bool transit,
                                              int nsg)
{
    bool last = transit && nsg == ISC_STAGE_FFP;
    struct isc_rx_action act = login_negotiate(s, kv, last);

    if (!isc_rx_go(act))
        return act;
    if (!last)
        return login_next(s);
    if (s->replies.n)
        return isc_rx_fail(s, -EPROTO, "target ended the login with keys still unanswered");
    return login_complete(s, h);
}

/* The header of a login response, before its status: is it one we are waiting for? */
static struct isc_rx_action login_rsp_check(struct isc_session *s, const uint8_t *h)
{
    if (s->state != ISC_STATE_LOGGING_IN)
        return isc_rx_fail(s, -EPROTO, "unexpected login response outside login");
    if (isc_get32(h, ISC_OFF_ITT) != ITT_LOGIN)
        return isc_rx_fail(s, -EPROTO, "login response with a foreign task tag");
    if (h[ISC_OFF_VMIN] != 0)
        return isc_rx_fail(s, -EPROTO, "target speaks iSCSI version %u only",
                           h[ISC_OFF_VMIN]);
    return ISC_RX_GO;
}

struct isc_rx_action isc_login_rsp(struct isc_session *s, const uint8_t *h,
                                   const uint8_t *data, uint32_t len)
{
    uint8_t flags = h[ISC_OFF_FLAGS];
    uint8_t cls = h[ISC_OFF_STATUS_CLASS], detail = h[ISC_OFF_STATUS_DETAIL];
    bool transit = flags & ISC_LOGIN_TRANSIT;
    int csg = (flags >> 2) & 3, nsg = flags & 3;
    struct isc_kvlist kv = { 0 };
    struct isc_rx_action act = login_rsp_check(s, h);

    if (!isc_rx_go(act))
        return act;
    s->exp_statsn = isc_get32(h, ISC_OFF_STATSN) + 1;
    if (cls != 0)
        return login_status(s, cls, detail, data, len);
    if (csg != login_csg(s))
        return isc_rx_fail(s, -EPROTO, "target answered login stage %d to stage %d", csg,
                           login_csg(s));
    if (!isc_rx_go(act = login_text_add(s, data, len)))
        return act;
    if (flags & ISC_LOGIN_CONTINUE) {
        if (login_send_empty(s, false, 0) < 0)
            return isc_rx_fail(s, -ENOMEM, "out of memory");
        return ISC_RX_GO;
    }
    if (s->login_rounds > LOGIN_ROUNDS_MAX)
        return isc_rx_fail(s, -EPROTO, "login did not converge in %d rounds",
                           LOGIN_ROUNDS_MAX);
    if (isc_kv_parse(s->login_text, s->login_text_len, &kv) < 0) {
        isc_kv_clear(&kv);
        return isc_rx_fail(s, -EPROTO, "target sent malformed login text");
    }
    free(s->login_text);
    s->login_text = NULL;
    s->login_text_len = 0;
    if (login_csg(s) == ISC_STAGE_SECURITY)
        act = login_security(s, h, &kv, transit, nsg);
    else
        act = login_operational(s, h, &kv, transit, nsg);
    isc_kv_clear(&kv);
    return act;
}
