/*
 * test_api_render.c - the JSON views of docs/api.md: field names and types, ids as
 * strings, RFC 3339 times, offload state, export URIs, and the --no-toe entry.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    cr_assert(json_is_string(v), "\"%s\" is not a string", k);
    return json_string_value(v);
}

static long long num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    cr_assert(json_is_integer(v), "\"%s\" is not an integer", k);
    return json_integer_value(v);
}

static struct sockaddr_in addr(const char *ip, uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

Test(render, rfc3339)
{
    char buf[32];

    cr_assert_str_eq(api_rfc3339(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
    cr_assert_str_eq(api_rfc3339(1795547237, buf, sizeof(buf)), "2026-11-24T19:07:17Z");
}

Test(render, u64_clamps)
{
    json_t *j = api_json_u64(UINT64_MAX);

    cr_assert_eq(json_integer_value(j), INT64_MAX);
    json_decref(j);
}

Test(render, reservation)
{
    struct stk_reservation r = { .id = 12345678901234ull, .port = 20010,
                                 .stack = STK_POLICY_TOE, .created = 0 };
    json_t *j;

    snprintf(r.holder, sizeof(r.holder), "app");
    j = api_json_reservation(&r);
    cr_assert_str_eq(str(j, "id"), "12345678901234", "ids are strings");
    cr_assert_eq(num(j, "port"), 20010);
    cr_assert_str_eq(str(j, "stack"), "toe");
    cr_assert_str_eq(str(j, "holder"), "app");
    cr_assert_str_eq(str(j, "created"), "1970-01-01T00:00:00Z");
    json_decref(j);
}

Test(render, connection_rows)
{
    struct stk_conn_row r;
    json_t *j;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "toe-3");
    r.stack = STK_STACK_TOE;
    r.local = addr("192.0.2.2", 20001);
    r.remote = addr("192.0.2.1", 3260);
    snprintf(r.state, sizeof(r.state), "ESTABLISHED");
    snprintf(r.owner, sizeof(r.owner), "s-000000000001");
    snprintf(r.placement, sizeof(r.placement), "toe");
    r.bytes_in = 5;
    r.bytes_out = 6;
    j = api_json_conn_row(&r);
    cr_assert_str_eq(str(j, "id"), "toe-3");
    cr_assert_str_eq(str(j, "stack"), "toe");
    cr_assert_str_eq(str(j, "offload_state"), "offloaded");
    cr_assert_str_eq(str(j, "local"), "192.0.2.2:20001");
    cr_assert_str_eq(str(j, "remote"), "192.0.2.1:3260");
    cr_assert_str_eq(str(j, "state"), "ESTABLISHED");
    cr_assert_str_eq(str(j, "owner"), "s-000000000001");
    cr_assert_eq(num(j, "bytes_in"), 5);
    cr_assert_eq(num(j, "bytes_out"), 6);
    cr_assert_str_eq(str(j, "placement"), "toe");
    json_decref(j);

    r.stack = STK_STACK_HOST;
    r.placement[0] = '\0';
    j = api_json_conn_row(&r);
    cr_assert_str_eq(str(j, "offload_state"), "host");
    cr_assert(json_is_null(json_object_get(j, "placement")));
    json_decref(j);
}

Test(render, stacks)
{
    struct stk_tcp_counters c = { .active_opens = 3, .out_rsts = 4 };
    struct api_toe_info info;
    struct api_toe_faults f = { .drop = 0.25, .seed = 7 };
    json_t *j, *cj;

    j = api_json_host_stack(&c);
    cr_assert_str_eq(str(j, "name"), "host");
    cj = json_object_get(j, "counters");
    cr_assert_eq(num(cj, "active_opens"), 3);
    cr_assert_eq(num(cj, "out_rsts"), 4);
    json_decref(j);

    j = api_json_toe_stack(NULL, NULL, NULL, NULL);
    cr_assert_str_eq(str(j, "name"), "toe");
    cr_assert_str_eq(str(j, "state"), "absent");
    json_decref(j);

    memset(&info, 0, sizeof(info));
    info.link_up = false;
    info.mac[0] = 0x02;
    info.mac[5] = 0xab;
    inet_pton(AF_INET, "192.0.2.2", &info.addr);
    info.prefix = 24;
    info.mtu = 9000;
    info.max_conns = 1024;
    info.conns = 2;
    j = api_json_toe_stack(&info, &c, NULL, &f);
    cr_assert_str_eq(str(j, "state"), "down");
    cr_assert_str_eq(str(j, "addr"), "192.0.2.2");
    cr_assert_str_eq(str(j, "mac"), "02:00:00:00:00:ab");
    cr_assert_eq(num(j, "mtu"), 9000);
    cr_assert_eq(num(j, "max_conns"), 1024);
    cr_assert_eq(num(j, "conns"), 2);
    cr_assert(json_is_object(json_object_get(j, "counters")));
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(j, "faults"), "drop")),
                       0.25, 1e-12);
    json_decref(j);
}

Test(render, targets)
{
    char *portals[] = { "192.0.2.1:3260,1", "198.51.100.1:3260,2" };
    struct isc_target_info t = { .name = "iqn.2026-11.x:a", .portals = portals,
                                 .nportals = 2 };
    struct isc_target_list l = { .v = &t, .n = 1 };
    json_t *j = api_json_targets(&l), *arr, *t0;

    arr = json_object_get(j, "targets");
    cr_assert_eq(json_array_size(arr), 1);
    t0 = json_array_get(arr, 0);
    cr_assert_str_eq(str(t0, "iqn"), "iqn.2026-11.x:a");
    cr_assert_eq(json_array_size(json_object_get(t0, "portals")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(t0, "portals"), 1)),
                     "198.51.100.1:3260,2");
    json_decref(j);

    j = api_json_targets(NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "targets")), 0);
    json_decref(j);
}

Test(render, session)
{
    struct sto_session_view *s = calloc(1, sizeof(*s));
    struct sto_volume_view v[2];
    json_t *j, *c, *luns;
    char *dump;

    memset(v, 0, sizeof(v));
    snprintf(s->id, STO_ID_MAX, "s-000000000001");
    snprintf(s->portal, STO_NAME_MAX, "192.0.2.1:3260");
    snprintf(s->target, STO_NAME_MAX, "iqn.2026-11.x:a");
    s->state = "logged_in";
    s->policy = STK_POLICY_AUTO;
    s->connected = true;
    s->stack = STK_STACK_TOE;
    s->local = addr("192.0.2.2", 20001);
    s->remote = addr("192.0.2.1", 3260);
    s->params.header_digest = true;
    s->params.max_burst = 262144;
    s->counters.cmds = 9;
    snprintf(v[0].id, STO_ID_MAX, "v-1");
    snprintf(v[0].session, STO_ID_MAX, "s-000000000001");
    v[0].lun = 1;
    snprintf(v[1].id, STO_ID_MAX, "v-2");
    snprintf(v[1].session, STO_ID_MAX, "s-000000000002");

    j = api_json_session(s, v, 2);
    cr_assert_str_eq(str(j, "id"), "s-000000000001");
    cr_assert_str_eq(str(j, "portal"), "192.0.2.1:3260");
    cr_assert_str_eq(str(j, "target"), "iqn.2026-11.x:a");
    cr_assert_str_eq(str(j, "state"), "logged_in");
    cr_assert_str_eq(str(j, "stack"), "toe");
    c = json_object_get(j, "connection");
    cr_assert_str_eq(str(c, "local"), "192.0.2.2:20001");
    cr_assert_str_eq(str(c, "offload_state"), "offloaded");
    cr_assert_str_eq(str(json_object_get(j, "negotiated"), "header_digest"), "crc32c");
    cr_assert_eq(num(json_object_get(j, "negotiated"), "max_burst_length"), 262144);
    luns = json_object_get(j, "luns");
    cr_assert_eq(json_array_size(luns), 1, "only this session's volumes");
    cr_assert_str_eq(str(json_array_get(luns, 0), "volume"), "v-1");
    cr_assert_eq(num(json_object_get(j, "counters"), "commands"), 9);
    dump = json_dumps(j, 0);
    cr_assert_null(strstr(dump, "secret"), "a session view has no secret field");
    free(dump);
    json_decref(j);

    s->connected = false;
    s->state = "recovering";
    snprintf(s->error, sizeof(s->error), "connection reset");
    j = api_json_session(s, NULL, 0);
    cr_assert(json_is_null(json_object_get(j, "stack")));
    cr_assert(json_is_null(json_object_get(j, "connection")));
    cr_assert_str_eq(str(j, "error"), "connection reset");
    json_decref(j);
    free(s);
}

Test(render, volume)
{
    struct sto_volume_view v;
    json_t *j;

    memset(&v, 0, sizeof(v));
    snprintf(v.id, STO_ID_MAX, "v-0123456789abcdef");
    snprintf(v.session, STO_ID_MAX, "s-000000000001");
    v.lun = 3;
    v.size_bytes = 1ull << 40;
    v.block_size = 4096;
    memcpy(v.vendor, "IET     ", 8);
    memcpy(v.product, "VIRTUAL-DISK    ", 16);
    v.read_ns = 2500000000ull;
    j = api_json_volume(&v, "192.0.2.1", 10809, false);
    cr_assert_str_eq(str(j, "id"), "v-0123456789abcdef");
    cr_assert_str_eq(str(j, "session"), "s-000000000001");
    cr_assert_eq(num(j, "lun"), 3);
    cr_assert_eq(num(j, "size_bytes"), 1ll << 40);
    cr_assert_eq(num(j, "block_size"), 4096);
    cr_assert_str_eq(str(j, "vendor"), "IET");
    cr_assert_str_eq(str(j, "product"), "VIRTUAL-DISK");
    cr_assert(json_is_null(json_object_get(j, "wwn")));
    cr_assert_str_eq(str(j, "export"), "nbd://192.0.2.1:10809/v-0123456789abcdef");
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(j, "counters"),
                                                       "read_seconds")), 2.5, 1e-9);
    json_decref(j);

    j = api_json_volume(&v, NULL, 0, false);
    cr_assert_str_eq(str(j, "export"), "nbd://127.0.0.1:10809/v-0123456789abcdef");
    json_decref(j);

    j = api_json_volume(&v, "unix:/run/toegw/nbd.sock", 10809, false);
    cr_assert_str_eq(str(j, "export"), "nbd+unix:///v-0123456789abcdef?socket=/run/toegw/nbd.sock");
    json_decref(j);
}

Test(render, volume_tls_and_access)
{
    struct sto_volume_view v;
    json_t *j, *allow;

    memset(&v, 0, sizeof(v));
    snprintf(v.id, STO_ID_MAX, "v-0123456789abcdef");
    j = api_json_volume(&v, "192.0.2.1", 10809, true);
    cr_assert_str_eq(str(j, "export"), "nbds://192.0.2.1:10809/v-0123456789abcdef");
    cr_assert(json_is_false(json_object_get(j, "read_only")));
    allow = json_object_get(j, "allow");
    cr_assert(json_is_array(allow) && json_array_size(allow) == 0);
    json_decref(j);

    v.access.read_only = true;
    v.access.nallow = 2;
    snprintf(v.access.allow[0], STO_IDENTITY_MAX, "alice");
    snprintf(v.access.allow[1], STO_IDENTITY_MAX, "backup host");
    j = api_json_volume(&v, "unix:/run/toegw/nbd.sock", 10809, true);
    cr_assert_str_eq(str(j, "export"), "nbds+unix:///v-0123456789abcdef?socket=/run/toegw/nbd.sock");
    cr_assert(json_is_true(json_object_get(j, "read_only")));
    allow = json_object_get(j, "allow");
    cr_assert_eq(json_array_size(allow), 2);
    cr_assert_str_eq(json_string_value(json_array_get(allow, 1)), "backup host");
    json_decref(j);
}

Test(render, dump_adds_newline)
{
    json_t *j = json_pack("{s:f}", "x", 0.05);
    size_t len;
    char *s = api_json_dump(j, &len);

    cr_assert_str_eq(s, "{\"x\":0.05}\n");
    cr_assert_eq(len, strlen(s));
    free(s);
    json_decref(j);
}
