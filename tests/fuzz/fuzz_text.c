/*
 * fuzz_text.c - login and text keys (storage/text.c): the key=value parser and the
 * negotiation rules, with a login data segment as the input.
 *
 * Every pair the parser accepts goes through the negotiation functions the way the login
 * does: as the target's answer to what the initiator offers (its defaults), as the
 * target's own offer, and as an answer to an offer taken from the input itself (a value of
 * the same key earlier in the segment). Properties: a parsed list serialises to a segment
 * that parses back to the same list; every accepted result is inside the key's range and
 * obeys its result function (minimum, maximum, AND, OR, a digest that was offered); every
 * refusal comes with a one-line printable message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/text.h"
#include "tests/fuzz/fuzz.h"

static void check_err(int ret, const char *err, const char *what)
{
    if (ret == 0)
        return;
    FUZZ_CHECK(ret == -EPROTO, "%s returned %d", what, ret);
    FUZZ_CHECK(err[0] && fuzz_printable_line(err, strlen(err)),
               "%s refused without a one-line printable message", what);
}

static bool listed(const char *list, const char *item)
{
    size_t n = strlen(item);

    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, item, n) && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* The result `r` of negotiating k with our value `ours` (numeric encoding) is legal. */
static void check_result(const struct isc_key_def *k, uint32_t ours, uint32_t r, bool answer)
{
    switch (k->kind) {
    case ISC_KEY_DIGEST:
    case ISC_KEY_BOOL_AND:
    case ISC_KEY_BOOL_OR:
        FUZZ_CHECK(r <= 1, "%s negotiated to %u", k->name, r);
        if (k->kind == ISC_KEY_BOOL_AND && !ours)
            FUZZ_CHECK(!r, "%s=No AND anything gave Yes", k->name);
        if (k->kind == ISC_KEY_BOOL_OR && ours)
            FUZZ_CHECK(r, "%s=Yes OR anything gave No", k->name);
        return;
    case ISC_KEY_NUM_MIN:
        FUZZ_CHECK(r <= ours, "%s: result %u above our %u (minimum)", k->name, r, ours);
        break;
    case ISC_KEY_NUM_MAX:
        FUZZ_CHECK(r >= ours, "%s: result %u below our %u (maximum)", k->name, r, ours);
        break;
    case ISC_KEY_DECLARATIVE:
        break;
    }
    (void)answer;
    FUZZ_CHECK(r >= k->min && r <= k->max, "%s: result %u outside %u..%u", k->name, r,
               k->min, k->max);
}

static void negotiate(const struct isc_key_def *k, const char *value, const char *prev)
{
    struct isc_params want, got;
    char offered[64], err[200];
    uint32_t ours, r = 0;
    int ret;

    isc_params_defaults(&want);
    want.header_digest = true; /* offer CRC32C: the interesting case for digests */
    ours = isc_params_get(&want, k);
    isc_key_format(k, ours, offered, sizeof(offered));

    err[0] = '\0';
    ret = isc_negotiate_answer(k, offered, value, &r, err, sizeof(err));
    check_err(ret, err, "negotiate_answer");
    if (ret == 0) {
        if (k->kind == ISC_KEY_DIGEST)
            FUZZ_CHECK(r == ours || strcmp(value, offered) == 0 || !strcmp(value, "None"),
                       "%s=%s accepted as %u to an offer of %s", k->name, value, r, offered);
        else if (strcmp(value, "Irrelevant") != 0)
            check_result(k, ours, r, true);
        got = want;
        isc_params_set(&got, k, r);
        if (k->kind != ISC_KEY_DECLARATIVE)
            FUZZ_CHECK(isc_params_get(&got, k) == r, "%s does not store %u", k->name, r);
    }

    err[0] = '\0';
    ret = isc_negotiate_reply(k, ours, value, &r, err, sizeof(err));
    check_err(ret, err, "negotiate_reply");
    if (ret == 0) {
        if (k->kind == ISC_KEY_DIGEST)
            FUZZ_CHECK(listed(value, r ? "CRC32C" : "None"), "%s: chose %u, not in \"%s\"",
                       k->name, r, value);
        else
            check_result(k, ours, r, false);
    }

    /* an offer from the input itself (a digest list, a number) answered by this value */
    if (prev) {
        err[0] = '\0';
        ret = isc_negotiate_answer(k, prev, value, &r, err, sizeof(err));
        check_err(ret, err, "negotiate_answer(input offer)");
        if (ret == 0 && k->kind == ISC_KEY_DIGEST && strcmp(value, "Reject") &&
            strcmp(value, "NotUnderstood") && strcmp(value, "Irrelevant"))
            FUZZ_CHECK(listed(prev, value), "%s=%s accepted, not offered in \"%s\"", k->name,
                       value, prev);
    }
}

int fuzz_text(const uint8_t *data, size_t size)
{
    struct isc_kvlist kv = { 0 }, again = { 0 };
    uint8_t *seg;
    size_t n;
    int ret;

    if (size > ISC_TEXT_MAX)
        return 0;
    ret = isc_kv_parse(data, size, &kv);
    FUZZ_CHECK(ret == 0 || ret == -EPROTO, "kv_parse returned %d", ret);
    if (ret < 0) {
        isc_kv_clear(&kv);
        return 0;
    }

    /* serialise and parse back */
    n = isc_kv_size(&kv);
    seg = malloc(n ? n : 1);
    if (!seg)
        abort();
    FUZZ_CHECK(isc_kv_serialize(&kv, seg) == n, "serialised size differs from kv_size");
    FUZZ_CHECK(isc_kv_parse(seg, n, &again) == 0, "a serialised list does not parse");
    FUZZ_CHECK(again.n == kv.n, "round trip: %zu pairs became %zu", kv.n, again.n);
    for (size_t i = 0; i < kv.n; i++)
        FUZZ_CHECK(!strcmp(kv.v[i].key, again.v[i].key) &&
                       !strcmp(kv.v[i].value, again.v[i].value),
                   "round trip changed pair %zu", i);
    free(seg);
    isc_kv_clear(&again);

    for (size_t i = 0; i < kv.n; i++) {
        const struct isc_key_def *k = isc_key_find(kv.v[i].key);
        const char *prev = NULL;

        FUZZ_CHECK(isc_kv_get(&kv, kv.v[i].key) != NULL, "kv_get misses a parsed key");
        if (!k)
            continue;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(kv.v[j].key, kv.v[i].key))
                prev = kv.v[j].value;
        negotiate(k, kv.v[i].value, prev);
    }
    isc_kv_clear(&kv);
    return 0;
}
