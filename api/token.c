/*
 * token.c - the API's bearer token: checked on every authenticated request, rotated by
 * POST /api/v1/token.
 *
 * A rotation makes the new token and keeps it (the appliance's token_renew writes the
 * token file) while holding the token for writing: a request checked after the answer
 * went out can only match the new token, and the file and the API never disagree. The old
 * token stops working at once, on every connection, kept-alive ones included. The token
 * is never logged; the answer carries it once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "common/log.h"

void api_token_init(struct api_token *t)
{
    memset(t, 0, sizeof(*t));
    pthread_rwlock_init(&t->lock, NULL);
}

int api_token_set(struct api_token *t, const char *tok)
{
    size_t n = tok ? strlen(tok) : 0;

    if (n == 0 || n > API_TOKEN_MAX)
        return -EINVAL;
    pthread_rwlock_wrlock(&t->lock);
    explicit_bzero(t->tok, sizeof(t->tok));
    memcpy(t->tok, tok, n);
    t->len = n;
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

bool api_token_ok(struct api_token *t, const char *header)
{
    bool ok;

    pthread_rwlock_rdlock(&t->lock);
    ok = t->len > 0 && api_auth_ok(header, t->tok, t->len);
    pthread_rwlock_unlock(&t->lock);
    return ok;
}

void api_token_fini(struct api_token *t)
{
    explicit_bzero(t->tok, sizeof(t->tok));
    t->len = 0;
    pthread_rwlock_destroy(&t->lock);
}

/* POST /api/v1/token: a new token, kept in the token file; the old one is void. */
void api_h_token_rotate(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = x->cfg;
    struct api_token *t = &x->sh->token;
    char tok[API_TOKEN_MAX + 1], err[API_DETAIL_MAX - 64];
    int ret;

    (void)c;
    if (!cfg->token_renew) {
        api_resp_err(r, 501, "this appliance does not rotate its api token");
        return;
    }
    pthread_rwlock_wrlock(&t->lock);
    ret = cfg->token_renew(cfg->token_renew_arg, tok, sizeof(tok), err, sizeof(err));
    if (ret == 0 && (strlen(tok) == 0 || strlen(tok) > API_TOKEN_MAX)) {
        snprintf(err, sizeof(err), "the new token has no usable length");
        ret = -EINVAL;
    }
    if (ret == 0) {
        explicit_bzero(t->tok, sizeof(t->tok));
        t->len = strlen(tok);
        memcpy(t->tok, tok, t->len + 1);
    }
    pthread_rwlock_unlock(&t->lock);
    if (ret < 0) {
        log_error("api", "the api token was not rotated, the previous one still works: %s",
                  err);
        api_resp_err(r, 500, "the api token was not rotated (the previous one still "
                     "works): %s", err);
        explicit_bzero(tok, sizeof(tok));
        return;
    }
    log_info("api", "api token rotated: the previous token no longer works");
    api_resp_json(r, 200, json_pack("{s:s}", "token", tok));
    explicit_bzero(tok, sizeof(tok));
}
