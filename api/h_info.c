/*
 * h_info.c - GET /api/v1/info: who this appliance is (the initiator name targets see, its
 * version and libraries, how long it has run, how its TOE reaches the SAN).
 */
#include <microhttpd.h>
#include <time.h>

#include "api/api_int.h"

/* toegw's libraries, as the appliance names them. */
static json_t *libraries(const struct api_info *info)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    for (size_t i = 0; info && i < API_INFO_LIBS && info->libraries[i].name; i++)
        json_object_set_new(o, info->libraries[i].name,
                            json_string(info->libraries[i].version));
    return o;
}

void api_h_info(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = x->cfg;
    const struct api_info *info = cfg->info;
    struct timespec now;
    const char *iname = cfg->pool ? sto_pool_initiator(cfg->pool) : NULL;
    json_t *toe, *tls;

    (void)c;
    clock_gettime(CLOCK_MONOTONIC, &now);
    toe = json_pack("{s:s,s:s?,s:b}", "mode",
                    info && info->toe_mode ? info->toe_mode
                                           : (api_toe(x) ? "tap" : "none"),
                    "uplink", info ? info->toe_uplink : NULL, "nat", info && info->toe_nat);
    tls = json_pack("{s:b,s:s?}", "api", cfg->tls_cert_pem != NULL, "fingerprint_sha256",
                    cfg->tls_cert_pem && info ? info->tls_fingerprint : NULL);
    api_resp_json(r, 200, json_pack("{s:s?,s:s?,s:o?,s:I,s:i,s:o?,s:o?}", "initiator_name",
                                    iname, "version", info ? info->version : NULL,
                                    "libraries", libraries(info), "uptime_s",
                                    (json_int_t)(now.tv_sec - x->sh->started.tv_sec),
                                    "storage_threads",
                                    cfg->pool ? (int)sto_pool_threads(cfg->pool) : 0,
                                    "toe", toe, "tls", tls));
}
