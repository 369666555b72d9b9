/*
 * test_login_digest.c - digest negotiation of the login, end to end: the initiator logs in
 * over the host stack to a kernel TCP listener on 127.0.0.1 (port 0) whose thread answers
 * each login request with scripted text keys, and the test checks what the initiator offered
 * and how the session came out.
 *
 * The scripts play what real targets were seen to do: istgt on a LU with "UseDigest Header
 * Data" answers a lone HeaderDigest=None with Reject and then runs digests anyway (so
 * HeaderDigest=None,CRC32C must be offered, and Reject never read as None), and a target
 * that agrees to CRC32C and says None in a later round must not get a session without
 * digests. istgt itself is exercised by tests/integration/test_istgt.sh.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/iscsi.h"
#include "storage/loop.h"
#include "storage/pdu.h"
#include "storage/text.h"

#define PEER_WAIT_MS 8000
#define OUT_MAX 8192

/* The bytes sent after login request number `step` (its text keys in `req`); length. */
typedef size_t (*script_fn)(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                            uint8_t *out);

struct peer {
    int lfd;
    struct sockaddr_in addr;
    script_fn script;
    int steps;
    pthread_t thread;
    /* results, read after the join */
    int requests;
    char offered_hd[64];         /* HeaderDigest / DataDigest of the operational offer */
    char offered_dd[64];
    char problem[128];
};

/* ---------------------------------------------------------------- the listener */

static int read_full(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
    size_t put = 0;

    while (put < len) {
        ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

/* One login request (no digests during login): its BHS and its text keys. */
static int read_request(int fd, uint8_t *bhs, struct isc_kvlist *kv)
{
    static uint8_t data[ISC_TEXT_MAX + 4];
    uint32_t dsl;

    if (read_full(fd, bhs, ISC_BHS_LEN) < 0)
        return -1;
    dsl = isc_bhs_dsl(bhs) + isc_bhs_ahs_len(bhs);
    if (dsl > ISC_TEXT_MAX || read_full(fd, data, dsl + isc_pad4(dsl)) < 0)
        return -1;
    return isc_kv_parse(data, isc_bhs_dsl(bhs), kv);
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
    struct timeval tv = { .tv_sec = PEER_WAIT_MS / 1000 };
    uint8_t req[ISC_BHS_LEN], out[OUT_MAX], sink[4096];
    int fd;

    if (poll(&pfd, 1, PEER_WAIT_MS) != 1 || (fd = accept(p->lfd, NULL, NULL)) < 0) {
        snprintf(p->problem, sizeof(p->problem), "the initiator never connected");
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int step = 0; step < p->steps; step++) {
        struct isc_kvlist kv = { 0 };
        const char *hd, *dd;
        size_t n;

        if (read_request(fd, req, &kv) < 0) {
            snprintf(p->problem, sizeof(p->problem), "no login request %d", step);
            isc_kv_clear(&kv);
            break;
        }
        p->requests++;
        hd = isc_kv_get(&kv, "HeaderDigest");
        dd = isc_kv_get(&kv, "DataDigest");
        if (hd && !p->offered_hd[0])
            snprintf(p->offered_hd, sizeof(p->offered_hd), "%s", hd);
        if (dd && !p->offered_dd[0])
            snprintf(p->offered_dd, sizeof(p->offered_dd), "%s", dd);
        n = p->script(step, req, &kv, out);
        isc_kv_clear(&kv);
        if (n && write_full(fd, out, n) < 0)
            break;
    }
    /* end of script: FIN, then wait for the initiator to hang up */
    shutdown(fd, SHUT_WR);
    while (recv(fd, sink, sizeof(sink), 0) > 0)
        ;
    close(fd);
    return NULL;
}

static void peer_start(struct peer *p, script_fn script, int steps)
{
    socklen_t alen = sizeof(p->addr);

    memset(p, 0, sizeof(*p));
    p->script = script;
    p->steps = steps;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(p->lfd, 0, "socket: %s", strerror(errno));
    p->addr.sin_family = AF_INET;
    p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(p->lfd, (struct sockaddr *)&p->addr, sizeof(p->addr)), 0,
                 "bind 127.0.0.1:0: %s", strerror(errno));
    cr_assert_eq(listen(p->lfd, 1), 0);
    cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&p->addr, &alen), 0);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* ---------------------------------------------------------------- the initiator */

struct outcome {
    bool done;
    int calls;
    int err;
    enum isc_session_state state;
    bool header_digest, data_digest;
    char msg[400];
};

static void login_cb(struct isc_session *s, int err, void *arg)
{
    struct outcome *o = arg;

    (void)s;
    o->calls++;
    o->err = err;
    o->done = true;
}

/*
 * Log in with digests as `hd` / `dd` say (1 required, -1 refused, 0 neither) to a peer
 * running `script`; everything is released before returning, *o and *p tell what happened.
 */
static void run_login(struct peer *p, script_fn script, int steps, int hd, int dd,
                      struct outcome *o)
{
    struct isc_session_config cfg = {
        .target_name = "iqn.2026-11.io.toegw:test",
        .login_timeout_ms = 5000,
        .header_digest = hd > 0,
        .no_header_digest = hd < 0,
        .data_digest = dd > 0,
        .no_data_digest = dd < 0,
    };
    struct sto_loop *loop;
    struct isc_session *s;
    int ret;

    peer_start(p, script, steps);
    cfg.portal = p->addr;
    loop = sto_loop_new();
    cr_assert_not_null(loop);
    s = isc_session_new(loop, &cfg);
    cr_assert_not_null(s);
    memset(o, 0, sizeof(*o));
    ret = isc_session_login(s, login_cb, o);
    cr_assert_eq(ret, 0, "isc_session_login: %d (%s)", ret, isc_session_error(s));
    sto_loop_run_until(loop, &o->done);
    o->state = isc_session_state(s);
    o->header_digest = isc_session_params(s)->header_digest;
    o->data_digest = isc_session_params(s)->data_digest;
    snprintf(o->msg, sizeof(o->msg), "%s", isc_session_error(s));
    isc_session_free(s);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    sto_loop_free(loop);
    cr_assert_eq(o->calls, 1, "login callback ran %d times", o->calls);
}

static void expect_failure(const struct outcome *o, const char *want_text)
{
    cr_assert_eq(o->state, ISC_STATE_FAILED, "state %s, error \"%s\"", isc_state_name(o->state),
                 o->msg);
    cr_assert_eq(o->err, -EPROTO, "err %d: \"%s\"", o->err, o->msg);
    cr_assert_not_null(strstr(o->msg, want_text), "error \"%s\" lacks \"%s\"", o->msg,
                       want_text);
}

static void expect_logged_in(const struct outcome *o, bool hd, bool dd)
{
    cr_assert_eq(o->err, 0, "login failed: %s", o->msg);
    cr_assert_eq(o->state, ISC_STATE_LOGGED_IN);
    cr_assert_eq(o->header_digest, hd, "header digests %s", o->header_digest ? "on" : "off");
    cr_assert_eq(o->data_digest, dd, "data digests %s", o->data_digest ? "on" : "off");
}

/* ---------------------------------------------------------------- scripts */

#define SEC_TO_OP (ISC_LOGIN_TRANSIT | (ISC_STAGE_SECURITY << 2) | ISC_STAGE_OPERATIONAL)
#define OP_TO_FFP (ISC_LOGIN_TRANSIT | (ISC_STAGE_OPERATIONAL << 2) | ISC_STAGE_FFP)
#define OP_STAY (ISC_STAGE_OPERATIONAL << 2)

/* A Login Response to `req` with `flags` and text `kv` (NUL-separated, `len` bytes). */
static size_t login_rsp(uint8_t *out, const uint8_t *req, uint8_t flags, const char *kv,
                        size_t len)
{
    memset(out, 0, ISC_BHS_LEN);
    out[ISC_OFF_OPCODE] = ISC_OP_LOGIN_RSP;
    out[ISC_OFF_FLAGS] = flags;
    memcpy(out + ISC_OFF_ISID, req + ISC_OFF_ISID, 6);
    memcpy(out + ISC_OFF_ITT, req + ISC_OFF_ITT, 4);
    isc_put16(out, ISC_OFF_TSIH, (flags & 3) == ISC_STAGE_FFP ? 0x77 : 0);
    isc_put32(out, ISC_OFF_STATSN, 1);
    isc_put32(out, ISC_OFF_EXPCMDSN, isc_get32(req, ISC_OFF_CMDSN));
    isc_put32(out, ISC_OFF_MAXCMDSN, isc_get32(req, ISC_OFF_CMDSN));
    isc_put24(out, ISC_OFF_DSL, (uint32_t)len);
    memcpy(out + ISC_BHS_LEN, kv, len);
    memset(out + ISC_BHS_LEN + len, 0, isc_pad4((uint32_t)len));
    return ISC_BHS_LEN + len + isc_pad4((uint32_t)len);
}

#define RSP(out, req, flags, lit) login_rsp((out), (req), (flags), (lit), sizeof(lit))

static const char sec_none[] = "AuthMethod=None";

/* Whether the comma-separated `list` names `v`. */
static bool listed(const char *list, const char *v)
{
    size_t n = strlen(v);

    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

/*
 * istgt 0.4 on a LU with "UseDigest Header Data": CRC32C when the offer lists it, Reject
 * otherwise (and it would then run digests anyway).
 */
static size_t istgt_insists(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                            uint8_t *out)
{
    char text[256];
    int n;

    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    n = snprintf(text, sizeof(text), "HeaderDigest=%s", listed(isc_kv_get(req, "HeaderDigest"),
                 "CRC32C") ? "CRC32C" : "Reject");
    n += 1 + snprintf(text + n + 1, sizeof(text) - (size_t)n - 1, "DataDigest=%s",
                      listed(isc_kv_get(req, "DataDigest"), "CRC32C") ? "CRC32C" : "Reject");
    n += 1 + snprintf(text + n + 1, sizeof(text) - (size_t)n - 1,
                      "MaxRecvDataSegmentLength=262144");
    return login_rsp(out, bhs, OP_TO_FFP, text, (size_t)n + 1);
}

/* A target that leaves digests to the initiator: the first value of our list. */
static size_t first_of_ours(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                            uint8_t *out)
{
    char text[256];
    const char *hd = isc_kv_get(req, "HeaderDigest"), *dd = isc_kv_get(req, "DataDigest");
    int n;

    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    n = snprintf(text, sizeof(text), "HeaderDigest=%.*s", (int)strcspn(hd ? hd : "", ","),
                 hd ? hd : "");
    n += 1 + snprintf(text + n + 1, sizeof(text) - (size_t)n - 1, "DataDigest=%.*s",
                      (int)strcspn(dd ? dd : "", ","), dd ? dd : "");
    return login_rsp(out, bhs, OP_TO_FFP, text, (size_t)n + 1);
}

/*
 * Agrees to CRC32C and keeps the login in the operational stage, says None in the next
 * round, then ends the login (the initiator used to answer None and run without digests).
 */
static size_t downgrade_later(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                              uint8_t *out)
{
    static const char agree[] = "HeaderDigest=CRC32C\0DataDigest=None";
    static const char later[] = "HeaderDigest=None";

    (void)req;
    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    if (step == 1)
        return RSP(out, bhs, OP_STAY, agree);
    if (step == 2)
        return RSP(out, bhs, OP_STAY, later);
    return login_rsp(out, bhs, OP_TO_FFP, "", 0);
}

/* The same, repeating exactly what it agreed to: harmless. */
static size_t echo_later(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                         uint8_t *out)
{
    static const char agree[] = "HeaderDigest=CRC32C\0DataDigest=None";
    static const char later[] = "HeaderDigest=CRC32C";

    (void)req;
    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    if (step == 1)
        return RSP(out, bhs, OP_STAY, agree);
    return RSP(out, bhs, OP_TO_FFP, later);
}

/* Ends the login without answering HeaderDigest at all. */
static size_t never_answers_header(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                                   uint8_t *out)
{
    static const char op[] = "DataDigest=None";

    (void)req;
    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    return RSP(out, bhs, OP_TO_FFP, op);
}

/* Answers both digests with Irrelevant. */
static size_t irrelevant(int step, const uint8_t *bhs, const struct isc_kvlist *req,
                         uint8_t *out)
{
    static const char op[] = "HeaderDigest=Irrelevant\0DataDigest=Irrelevant";

    (void)req;
    if (step == 0)
        return RSP(out, bhs, SEC_TO_OP, sec_none);
    return RSP(out, bhs, OP_TO_FFP, op);
}

/* ---------------------------------------------------------------- cases */

static void quiet(void)
{
    log_set_level(LOG_LVL_ERROR);
}

TestSuite(login_digest, .init = quiet);

/* A LU that insists on digests, no digest flags in the URL: digests on, as the LU runs. */
Test(login_digest, insisting_target_gets_its_digests, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, istgt_insists, 2, 0, 0, &o);
    cr_assert_str_eq(p.offered_hd, "None,CRC32C", "peer: %s", p.problem);
    cr_assert_str_eq(p.offered_dd, "None,CRC32C");
    expect_logged_in(&o, true, true);
}

/* The same offer to a target that lets the initiator choose: None, as before. */
Test(login_digest, choosing_target_gives_none, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, first_of_ours, 2, 0, 0, &o);
    expect_logged_in(&o, false, false);
}

Test(login_digest, required_offers_crc32c_only, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, first_of_ours, 2, 1, 1, &o);
    cr_assert_str_eq(p.offered_hd, "CRC32C", "peer: %s", p.problem);
    cr_assert_str_eq(p.offered_dd, "CRC32C");
    expect_logged_in(&o, true, true);
}

/* header_digest=none against the insisting LU: Reject is a login failure, never None. */
Test(login_digest, refused_offers_none_only_and_reject_fails, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, istgt_insists, 2, -1, -1, &o);
    cr_assert_str_eq(p.offered_hd, "None", "peer: %s", p.problem);
    cr_assert_str_eq(p.offered_dd, "None");
    expect_failure(&o, "HeaderDigest=Reject");
}

Test(login_digest, header_required_data_open, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, istgt_insists, 2, 1, 0, &o);
    cr_assert_str_eq(p.offered_hd, "CRC32C", "peer: %s", p.problem);
    cr_assert_str_eq(p.offered_dd, "None,CRC32C");
    expect_logged_in(&o, true, true);
}

/* Digest downgrade: CRC32C agreed, None in a later round: the login fails. */
Test(login_digest, downgrade_in_a_later_round_fails, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, downgrade_later, 4, 1, 0, &o);
    cr_assert_geq(p.requests, 3, "peer: %s", p.problem);
    expect_failure(&o, "HeaderDigest again");
}

Test(login_digest, exact_echo_in_a_later_round_is_harmless, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, echo_later, 3, 1, 0, &o);
    expect_logged_in(&o, true, false);
}

/* CRC32C required, the target ends the login without answering: not a session without. */
Test(login_digest, unanswered_required_digest_fails, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, never_answers_header, 2, 1, 0, &o);
    expect_failure(&o, "without answering HeaderDigest=CRC32C");
}

Test(login_digest, unanswered_default_offer_stays_none, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, never_answers_header, 2, 0, 0, &o);
    expect_logged_in(&o, false, false);
}

Test(login_digest, irrelevant_is_none_only_when_offered, .timeout = 10)
{
    struct peer p;
    struct outcome o;

    run_login(&p, irrelevant, 2, 0, 0, &o);
    expect_logged_in(&o, false, false);
    run_login(&p, irrelevant, 2, 1, 0, &o);
    expect_failure(&o, "HeaderDigest=Irrelevant");
}
