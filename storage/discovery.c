/*
 * discovery.c - SendTargets=All on a discovery session (RFC 7143 §12.3): the Text Request,
 * the answer reassembled across continued Text Responses (bounded), and its parsing into
 * each target and its portals.
 */
#include "storage/session_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int isc_session_send_targets(struct isc_session *s, isc_discovery_cb cb, void *arg)
{
    static const char req[] = "SendTargets=All";
    struct tx_pdu *p;

    if (s->state != ISC_STATE_LOGGED_IN || !s->cfg.discovery)
        return -ENOTCONN;
    if (s->disc_cb)
        return -EBUSY;
    p = isc_tx_new(s);
    if (!p)
        return -ENOMEM;
    s->disc_cb = cb;
    s->disc_arg = arg;
    free(s->text_buf);
    s->text_buf = NULL;
    s->text_len = 0;
    isc_put_common(s, p->hdr, ISC_OP_TEXT_REQ, ISC_FLAG_FINAL, ITT_TEXT);
    isc_put32(p->hdr, ISC_OFF_TTT, ISC_RSVD_TAG);
    isc_put32(p->hdr, ISC_OFF_CMDSN, s->cmdsn++);
    isc_tx_queue(s, p, (const uint8_t *)req, sizeof(req));
    /* the answer is bounded like a command's (isc_cmd_timer_cb) */
    s->text_sent_ms = sto_now_ms();
    isc_cmd_timer_at(s, s->text_sent_ms + s->cfg.command_timeout_ms);
    isc_tx_kick(s);
    return 0;
}

void isc_target_list_free(struct isc_target_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < l->v[i].nportals; j++)
            free(l->v[i].portals[j]);
        free(l->v[i].portals);
        free(l->v[i].name);
    }
    free(l->v);
    free(l);
}

static struct isc_target_list *parse_send_targets(const uint8_t *buf, size_t len)
{
    struct isc_kvlist kv = { 0 };
    struct isc_target_list *l = calloc(1, sizeof(*l));

    if (!l || isc_kv_parse(buf, len, &kv) < 0)
        goto err;
    for (size_t i = 0; i < kv.n; i++) {
        if (!strcmp(kv.v[i].key, "TargetName")) {
            struct isc_target_info *v = realloc(l->v, (l->n + 1) * sizeof(*v));
            if (!v)
                goto err;
            l->v = v;
            memset(&v[l->n], 0, sizeof(v[0]));
            v[l->n].name = strdup(kv.v[i].value);
            if (!v[l->n++].name)
                goto err;
        } else if (!strcmp(kv.v[i].key, "TargetAddress") && l->n) {
            struct isc_target_info *ti = &l->v[l->n - 1];
            char **p = realloc(ti->portals, (ti->nportals + 1) * sizeof(*p));
            if (!p)
                goto err;
            ti->portals = p;
            p[ti->nportals] = strdup(kv.v[i].value);
            if (!p[ti->nportals++])
                goto err;
        }
    }
    isc_kv_clear(&kv);
    return l;
err:
    isc_kv_clear(&kv);
    isc_target_list_free(l);
    return NULL;
}

/* Ask for the rest of a continued answer (the target's TTT names it). */
static struct isc_rx_action text_continue(struct isc_session *s, uint32_t ttt)
{
    struct tx_pdu *p = isc_tx_new(s);

    if (!p)
        return isc_rx_fail(s, -ENOMEM, "out of memory");
    isc_put_common(s, p->hdr, ISC_OP_TEXT_REQ, ISC_FLAG_FINAL, ITT_TEXT);
    isc_put32(p->hdr, ISC_OFF_TTT, ttt);
    isc_put32(p->hdr, ISC_OFF_CMDSN, s->cmdsn++);
    isc_tx_queue(s, p, NULL, 0);
    s->text_sent_ms = sto_now_ms(); /* each continuation gets its own time */
    isc_tx_kick(s);
    return ISC_RX_GO;
}

struct isc_rx_action isc_text_rsp(struct isc_session *s, const uint8_t *h,
                                  const uint8_t *data, uint32_t len)
{
    bool final = h[ISC_OFF_FLAGS] & ISC_FLAG_FINAL;
    isc_discovery_cb cb = s->disc_cb;
    uint8_t *t;

    if (!cb || isc_get32(h, ISC_OFF_ITT) != ITT_TEXT)
        return isc_rx_fail(s, -EPROTO, "unexpected text response");
    if (s->text_len + len > 16 * ISC_TEXT_MAX)
        return isc_rx_fail(s, -EPROTO, "sendtargets answer exceeds %u bytes",
                           16 * ISC_TEXT_MAX);
    t = realloc(s->text_buf, s->text_len + len + 1);
    if (!t)
        return isc_rx_fail(s, -ENOMEM, "out of memory");
    s->text_buf = t;
    memcpy(t + s->text_len, data, len);
    s->text_len += len;
    if (!final)
        return text_continue(s, isc_get32(h, ISC_OFF_TTT));
    s->text_sent_ms = 0;
    struct isc_target_list *l = parse_send_targets(s->text_buf, s->text_len);
    free(s->text_buf);
    s->text_buf = NULL;
    s->text_len = 0;
    if (!l)
        return isc_rx_fail(s, -EPROTO, "target sent a malformed sendtargets answer");
    s->disc_cb = NULL;
    cb(s, 0, l, s->disc_arg);
    return ISC_RX_GO;
}
