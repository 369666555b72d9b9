/*
 * net_notoe.c - the TOE's side of appliance/net.h and appliance/toe_admin.h in a toegw
 * built without the TOE (`make TOE_MK=`; the Makefile picks this file instead of
 * appliance/net_toe.c and appliance/toe_admin.c): there is no device to bring up, the
 * broker runs on the host stack alone and the API has no TOE operations.
 */
#include "appliance/net.h"
#include "appliance/toe_admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NOT_BUILT "this toegw is built without the toe (make TOE_MK=)"

bool app_net_toe_built(void)
{
    return false;
}

const char *app_net_toe_stack(void)
{
    return NULL;
}

const char *app_net_pcap_version(void)
{
    return NULL;
}

void app_net_toe_defaults(struct toe_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int app_net_toe_up(const struct app_net_opts *o, struct app_net *net, char *why,
                   size_t whylen)
{
    (void)o;
    (void)net;
    snprintf(why, whylen, "%s", NOT_BUILT);
    return -ENODEV;
}

int app_net_toe_capture(struct app_net *net, const char *path, char *err, size_t errlen)
{
    (void)net;
    snprintf(err, errlen, "cannot capture to \"%s\": %s", path, NOT_BUILT);
    return -ENODEV;
}

void app_net_toe_down(struct app_net *net)
{
    (void)net;
}

void app_net_toe_offload(struct toe_dev *toe, struct stk_offload_ops *out)
{
    (void)toe;
    memset(out, 0, sizeof(*out));
}

void app_toe_admin_fill(struct api_config *cfg)
{
    (void)cfg;
}
