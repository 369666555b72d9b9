/*
 * session.c - one iSCSI session over one TCP connection (RFC 7143, error recovery level
 * 0): its lifecycle (create, free, state), failure, NOP-Out pings and logout. The stages
 * live beside it: pdu_io.c (transmit queue, receive framing), login.c (the login state
 * machine), ffp.c (the full feature phase) and discovery.c (SendTargets); their shared
 * internals are in session_int.h.
 */
#include "storage/session_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

const char *isc_state_name(enum isc_session_state st)
{
    static const char *const names[] = {
        [ISC_STATE_CONNECTING] = "connecting", [ISC_STATE_LOGGING_IN] = "logging_in",
        [ISC_STATE_LOGGED_IN] = "logged_in",   [ISC_STATE_LOGGING_OUT] = "logging_out",
        [ISC_STATE_LOGGED_OUT] = "logged_out", [ISC_STATE_FAILED] = "failed",
    };
    return st <= ISC_STATE_FAILED ? names[st] : "unknown";
}

/* ---------------------------------------------------------------- lifecycle */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_secret(const char *s)
{
    if (s) {
        explicit_bzero((char *)s, strlen(s));
        free((char *)s);
    }
}

static void default_ms(uint32_t *v, uint32_t def)
{
    if (!*v)
        *v = def;
}

/* Copy cfg's strings and fill in the defaults (0 means the default). */
static void config_take(struct isc_session *s, const struct isc_session_config *cfg)
{
    s->cfg = *cfg;
    s->cfg.initiator_name = strdup(cfg->initiator_name ? cfg->initiator_name
                                                       : ISC_DEFAULT_INITIATOR);
    s->cfg.target_name = dup_or_null(cfg->target_name);
    s->cfg.chap_user = dup_or_null(cfg->chap_user);
    s->cfg.chap_secret = dup_or_null(cfg->chap_secret);
    s->cfg.target_user = dup_or_null(cfg->target_user);
    s->cfg.target_secret = dup_or_null(cfg->target_secret);
    if (!s->cfg.max_recv_dsl)
        s->cfg.max_recv_dsl = DEF_MAX_RECV_DSL;
    if (!s->cfg.max_burst)
        s->cfg.max_burst = DEF_MAX_BURST;
    if (!s->cfg.first_burst)
        s->cfg.first_burst = DEF_FIRST_BURST;
    default_ms(&s->cfg.login_timeout_ms, ISC_DEF_LOGIN_TIMEOUT_MS);
    default_ms(&s->cfg.nop_interval_ms, ISC_DEF_NOP_INTERVAL_MS);
    default_ms(&s->cfg.nop_timeout_ms, ISC_DEF_NOP_TIMEOUT_MS);
    default_ms(&s->cfg.command_timeout_ms, ISC_DEF_COMMAND_TIMEOUT_MS);
    default_ms(&s->cfg.abort_timeout_ms, ISC_DEF_ABORT_TIMEOUT_MS);
    default_ms(&s->cfg.lun_reset_timeout_ms, ISC_DEF_LUN_RESET_TIMEOUT_MS);
    default_ms(&s->cfg.logout_timeout_ms, ISC_DEF_LOGOUT_TIMEOUT_MS);
}

struct isc_session *isc_session_new(struct sto_loop *loop, const struct isc_session_config *cfg)
{
    struct isc_session *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->loop = loop;
    config_take(s, cfg);
    s->tasks = calloc(TASKS_MAX, sizeof(*s->tasks));
    s->free_idx = calloc(TASKS_MAX, sizeof(*s->free_idx));
    s->rbuf = malloc(RBUF_SIZE);
    s->ra_size = RBUF_SIZE;
    if (!s->cfg.initiator_name || !s->tasks || !s->free_idx || !s->rbuf ||
        (cfg->target_name && !s->cfg.target_name)) {
        isc_session_free(s);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; i < TASKS_MAX; i++)
        s->free_idx[i] = (uint16_t)(TASKS_MAX - 1 - i);
    s->nfree = TASKS_MAX;
    s->target_addr = cfg->portal;
    s->login_timer.cb = isc_login_timeout_cb;
    s->logout_timer.cb = isc_logout_timeout_cb;
    s->nop_timer.cb = isc_nop_timer_cb;
    s->cmd_timer.cb = isc_cmd_timer_cb;
    isc_tmf_reset(&s->tmf);
    s->watch.fd = -1;
    s->watch.cb = isc_conn_cb;
    s->tx_defer.cb = isc_tx_deferred;
    s->state = ISC_STATE_LOGGED_OUT;
    return s;
}

void isc_session_free(struct isc_session *s)
{
    if (!s)
        return;
    sto_timer_disarm(s->loop, &s->login_timer);
    sto_timer_disarm(s->loop, &s->logout_timer);
    sto_timer_disarm(s->loop, &s->nop_timer);
    sto_timer_disarm(s->loop, &s->cmd_timer);
    sto_defer_cancel(&s->tx_defer);
    isc_conn_close(s, true);
    isc_tx_free_all(s);
    isc_kv_clear(&s->offered);
    isc_kv_clear(&s->replies);
    free(s->login_text);
    free(s->text_buf);
    free(s->scratch);
    free(s->rbuf);
    free(s->tasks);
    free(s->free_idx);
    free((char *)s->cfg.initiator_name);
    free((char *)s->cfg.target_name);
    free((char *)s->cfg.chap_user);
    free_secret(s->cfg.chap_secret);
    free((char *)s->cfg.target_user);
    free_secret(s->cfg.target_secret);
    free(s);
}

void isc_session_set_failure_cb(struct isc_session *s, isc_event_cb cb, void *arg)
{
    s->failure_cb = cb;
    s->failure_arg = arg;
}

const char *isc_session_error(const struct isc_session *s) { return s->err; }
enum isc_session_state isc_session_state(const struct isc_session *s) { return s->state; }
const struct isc_params *isc_session_params(const struct isc_session *s) { return &s->params; }
struct stk_conn *isc_session_conn(const struct isc_session *s) { return s->conn; }
uint16_t isc_session_tsih(const struct isc_session *s) { return s->tsih; }
unsigned isc_session_inflight(const struct isc_session *s) { return s->inflight; }

uint32_t isc_session_reconnect_delay_ms(const struct isc_session *s)
{
    return s->reconnect_delay_ms;
}

const struct isc_session_counters *isc_session_counters(const struct isc_session *s)
{
    return &s->counters;
}

void isc_session_error_set(struct isc_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- failure */

void isc_finish_login(struct isc_session *s, int err)
{
    isc_done_cb cb = s->login_cb;

    sto_timer_disarm(s->loop, &s->login_timer);
    s->login_cb = NULL;
    if (cb)
        cb(s, err, s->login_arg);
}

/*
 * Keep the message of a new failure in s->err; false when the session has failed or ended
 * already, or a failure of this receive pass is recorded (the first one stands).
 */
static bool fail_record(struct isc_session *s, int err, const char *fmt, va_list ap)
{
    if (s->state == ISC_STATE_FAILED || s->state == ISC_STATE_LOGGED_OUT ||
        isc_fail_pending(s))
        return false;
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    if (s->in_rx)
        s->rx_pending = (struct isc_rx_action){ .verdict = ISC_RX_FAIL, .err = err };
    return true;
}

void isc_session_fail(struct isc_session *s, int err, const char *fmt, ...)
{
    va_list ap;
    bool fresh;

    va_start(ap, fmt);
    fresh = fail_record(s, err, fmt, ap);
    va_end(ap);
    if (fresh && !s->in_rx)
        isc_session_down(s, err);
}

struct isc_rx_action isc_rx_fail(struct isc_session *s, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fail_record(s, err, fmt, ap);
    va_end(ap);
    if (isc_fail_pending(s))
        return s->rx_pending;
    return (struct isc_rx_action){ .verdict = ISC_RX_FAIL, .err = err };
}

void isc_session_down(struct isc_session *s, int err)
{
    isc_done_cb lcb = s->logout_cb;
    isc_discovery_cb dcb = s->disc_cb;

    s->rx_pending = ISC_RX_GO;
    if (s->state == ISC_STATE_FAILED || s->state == ISC_STATE_LOGGED_OUT)
        return;
    log_info("iscsi", "session to %s: %s", isc_target_label(s), s->err);
    bool was_up = in_ffp(s);
    s->state = ISC_STATE_FAILED;
    sto_timer_disarm(s->loop, &s->nop_timer);
    sto_timer_disarm(s->loop, &s->cmd_timer);
    sto_timer_disarm(s->loop, &s->logout_timer);
    isc_tmf_reset(&s->tmf);
    s->text_sent_ms = 0;
    s->window_closed_ms = 0;
    isc_conn_close(s, true);
    isc_tx_free_all(s);
    s->rx = RX_HDR;
    s->rgot = 0;
    s->rstart = s->rend = 0;
    s->logout_wanted = false;
    s->target_logout = false;
    if (was_up && s->failure_cb && !s->owner_told) {
        s->owner_told = true;
        s->failure_cb(s, s->failure_arg);
    }
    isc_fail_all_tasks(s, err);
    s->logout_cb = NULL;
    s->disc_cb = NULL;
    isc_finish_login(s, err);
    if (dcb)
        dcb(s, err, NULL, s->disc_arg);
    if (lcb)
        lcb(s, err, s->logout_arg);
}

void isc_session_drop(struct isc_session *s, int err, const char *why)
{
    /* the owner's drop is immediate: a failure the receive pass recorded comes first */
    if (isc_fail_pending(s))
        isc_session_down(s, s->rx_pending.err);
    s->owner_told = true; /* the owner asked for it: no failure callback */
    if (s->state == ISC_STATE_FAILED || s->state == ISC_STATE_LOGGED_OUT)
        return;
    snprintf(s->err, sizeof(s->err), "%s", why);
    isc_session_down(s, err);
}

/* ---------------------------------------------------------------- NOP */

void isc_send_nop_out(struct isc_session *s, uint32_t itt, uint32_t ttt, uint64_t lun)
{
    struct tx_pdu *p = isc_tx_new(s);

    if (!p)
        return;
    isc_put_common(s, p->hdr, ISC_OP_IMMEDIATE | ISC_OP_NOP_OUT, ISC_FLAG_FINAL, itt);
    isc_put64(p->hdr, ISC_OFF_LUN, lun);
    isc_put32(p->hdr, ISC_OFF_TTT, ttt);
    isc_put32(p->hdr, ISC_OFF_CMDSN, s->cmdsn);
    p->nop_reply = ttt != ISC_RSVD_TAG;
    isc_tx_queue(s, p, NULL, 0);
    s->counters.nops_out++;
    isc_tx_kick(s);
}

void isc_nop_in(struct isc_session *s, const uint8_t *h)
{
    uint32_t itt = isc_get32(h, ISC_OFF_ITT), ttt = isc_get32(h, ISC_OFF_TTT);

    s->counters.nops_in++;
    if (itt != ISC_RSVD_TAG) {
        if (itt == (((uint32_t)s->nop_gen << 16) | ITT_NOP))
            s->nop_sent_ms = 0; /* our ping came back */
        return;
    }
    if (ttt != ISC_RSVD_TAG) /* the target pings us: answer with its tag */
        isc_send_nop_out(s, ISC_RSVD_TAG, ttt, isc_get64(h, ISC_OFF_LUN));
}

/*
 * NOP-Out ping after nop_interval without anything received; the connection is dropped
 * when nothing at all arrives for nop_timeout after it (the answer may queue behind data,
 * so any PDU counts, as in Linux's iSCSI initiator).
 */
void isc_nop_timer_cb(struct sto_timer *t)
{
    struct isc_session *s = ISC_SESSION_OF(t, nop_timer);
    uint64_t now = sto_now_ms(), due;

    if (s->state != ISC_STATE_LOGGED_IN || s->cfg.nop_interval_ms == ISC_TIMEOUT_ZERO)
        return;
    if (s->nop_sent_ms) {
        uint64_t since = s->last_rx_ms > s->nop_sent_ms ? s->last_rx_ms : s->nop_sent_ms;
        if (now - since >= s->cfg.nop_timeout_ms) {
            s->counters.nop_timeouts++;
            isc_session_fail(s, -ETIMEDOUT, "target stopped answering: nop-out timed out "
                             "after %u ms (nothing received for %llu ms)",
                             s->cfg.nop_timeout_ms, (unsigned long long)(now - s->last_rx_ms));
            return;
        }
        due = since + s->cfg.nop_timeout_ms;
    } else if (now - s->last_rx_ms >= s->cfg.nop_interval_ms) {
        s->nop_gen++;
        s->nop_sent_ms = now;
        isc_send_nop_out(s, ((uint32_t)s->nop_gen << 16) | ITT_NOP, ISC_RSVD_TAG, 0);
        due = now + s->cfg.nop_timeout_ms;
    } else {
        due = s->last_rx_ms + s->cfg.nop_interval_ms;
    }
    sto_timer_arm(s->loop, &s->nop_timer, due > now ? due - now : 0);
}

/* ---------------------------------------------------------------- logout */

void isc_start_logout(struct isc_session *s)
{
    struct tx_pdu *p;

    if (s->state != ISC_STATE_LOGGED_IN || s->inflight)
        return; /* sent when the last command completes (bounded by the logout timer) */
    p = isc_tx_new(s);
    if (!p) {
        isc_session_fail(s, -ENOMEM, "out of memory");
        return;
    }
    s->state = ISC_STATE_LOGGING_OUT;
    isc_put_common(s, p->hdr, ISC_OP_IMMEDIATE | ISC_OP_LOGOUT_REQ, ISC_FLAG_FINAL | 0,
                   ITT_LOGOUT);
    isc_put16(p->hdr, ISC_OFF_CID, 0);
    isc_put32(p->hdr, ISC_OFF_CMDSN, s->cmdsn);
    isc_tx_queue(s, p, NULL, 0);
    isc_tx_kick(s);
}

int isc_session_logout(struct isc_session *s, isc_done_cb cb, void *arg)
{
    if (s->state != ISC_STATE_LOGGED_IN)
        return -ENOTCONN;
    if (s->logout_cb)
        return -EALREADY;
    s->logout_cb = cb;
    s->logout_arg = arg;
    s->owner_told = true; /* the owner asked: how it ends goes to cb, not failure_cb */
    if (!s->logout_wanted) { /* a logout the target asked for keeps its deadline */
        s->logout_limit_ms = s->cfg.logout_timeout_ms;
        sto_timer_arm(s->loop, &s->logout_timer, s->logout_limit_ms);
    }
    s->logout_wanted = true;
    isc_start_logout(s);
    return 0;
}

/*
 * The commands in flight did not finish, or the target did not answer the logout, in
 * time: drop the connection; the commands fail, the logout's callback gets -ETIMEDOUT.
 */
void isc_logout_timeout_cb(struct sto_timer *t)
{
    struct isc_session *s = ISC_SESSION_OF(t, logout_timer);
    char addr[32];

    if (s->state == ISC_STATE_LOGGING_OUT)
        isc_session_fail(s, -ETIMEDOUT, "logout from %s timed out after %u ms (no logout "
                         "response); connection dropped",
                         stk_addr_str(&s->target_addr, addr, sizeof(addr)), s->logout_limit_ms);
    else
        isc_session_fail(s, -ETIMEDOUT, "logout from %s timed out after %u ms (%u commands "
                         "still in flight); connection dropped",
                         stk_addr_str(&s->target_addr, addr, sizeof(addr)), s->logout_limit_ms,
                         s->inflight);
}

struct isc_rx_action isc_logout_rsp(struct isc_session *s, const uint8_t *h)
{
    if (s->state != ISC_STATE_LOGGING_OUT || isc_get32(h, ISC_OFF_ITT) != ITT_LOGOUT)
        return isc_rx_fail(s, -EPROTO, "unexpected logout response");
    return (struct isc_rx_action){ .verdict = ISC_RX_LOGGED_OUT,
                                   .response = h[ISC_OFF_RSP_RESPONSE] };
}

void isc_logged_out(struct isc_session *s, uint8_t response)
{
    isc_done_cb cb = s->logout_cb;
    bool by_target = s->target_logout;

    sto_timer_disarm(s->loop, &s->logout_timer);
    sto_timer_disarm(s->loop, &s->nop_timer);
    sto_timer_disarm(s->loop, &s->cmd_timer);
    isc_conn_close(s, false);
    isc_tx_free_all(s);
    s->state = ISC_STATE_LOGGED_OUT;
    s->logout_cb = NULL;
    s->logout_wanted = false;
    s->target_logout = false;
    if (response != 0)
        isc_session_error_set(s, "logout answered with response %u", response);
    else if (!cb)
        isc_session_error_set(s, "%s", by_target ? "logged out at the target's request "
                                                   "(async event 1)" : "logged out");
    log_info("iscsi", "logged out of %s%s", isc_target_label(s),
             by_target ? " at the target's request" : "");
    if (s->inflight)
        isc_fail_all_tasks(s, -ENOTCONN);
    if (cb) {
        cb(s, response ? -EIO : 0, s->logout_arg);
    } else if (s->failure_cb && !s->owner_told) {
        /* nobody here asked for this logout: the owner must learn the session is gone */
        s->owner_told = true;
        s->failure_cb(s, s->failure_arg);
    }
}
