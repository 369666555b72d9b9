/*
 * toe_admin.c - the emulated TOE's administrative operations (state, counters, wire
 * faults, link, capture) as the REST API's struct api_toe_ops.
 *
 * The API keeps its own copies of the TOE's view structures so that it does not depend
 * on toe_emu/; these adapters copy field by field between the two.
 */
#include "appliance/toe_admin.h"

#include <string.h>

#include "api/api.h"
#include "toe_emu/toe.h"

_Static_assert(API_TOE_IFNAME_MAX == TOE_IFNAME_MAX, "the api's ifname fits the toe's");

static int get_info(void *dev, struct api_toe_info *out)
{
    struct toe_info in;
    int ret = toe_get_info(dev, &in);

    if (ret < 0)
        return ret;
    memset(out, 0, sizeof(*out));
    out->link_up = in.link_up;
    memcpy(out->ifname, in.ifname, sizeof(out->ifname));
    out->ifname[sizeof(out->ifname) - 1] = '\0';
    memcpy(out->mac, in.mac, sizeof(out->mac));
    out->addr = in.addr;
    out->host_addr = in.host_addr;
    out->prefix = in.prefix;
    out->host_prefix = in.host_prefix;
    out->mtu = in.mtu;
    out->max_conns = in.max_conns;
    out->conns = in.conns;
    out->offload = in.offload;
    return 0;
}

static void copy_dir(struct api_toe_dir_counters *out, const struct toe_dir_counters *in)
{
    out->frames = in->frames;
    out->bytes = in->bytes;
    out->drop_link_down = in->drop_link_down;
    out->drop_bad = in->drop_bad;
    out->fault_drop = in->fault_drop;
    out->fault_dup = in->fault_dup;
    out->fault_reorder = in->fault_reorder;
    out->fault_corrupt = in->fault_corrupt;
}

static int get_counters(void *dev, struct api_toe_counters *out)
{
    struct toe_counters in;
    int ret = toe_get_counters(dev, &in);

    if (ret < 0)
        return ret;
    memset(out, 0, sizeof(*out));
    copy_dir(&out->tx, &in.tx);
    copy_dir(&out->rx, &in.rx);
    out->tap_errors = in.tap_errors;
    out->conns_opened = in.conns_opened;
    out->conns_established = in.conns_established;
    out->conns_failed = in.conns_failed;
    out->conns_reset = in.conns_reset;
    out->conns_refused_full = in.conns_refused_full;
    out->conns_current = in.conns_current;
    out->tcp_active_opens = in.tcp_active_opens;
    out->tcp_attempt_fails = in.tcp_attempt_fails;
    out->tcp_estab_resets = in.tcp_estab_resets;
    out->tcp_in_segs = in.tcp_in_segs;
    out->tcp_out_segs = in.tcp_out_segs;
    out->tcp_retrans_segs = in.tcp_retrans_segs;
    out->tcp_in_errs = in.tcp_in_errs;
    out->tcp_out_rsts = in.tcp_out_rsts;
    out->tcp_drop = in.tcp_drop;
    out->capture_frames = in.capture_frames;
    return 0;
}

static int get_faults(void *dev, struct api_toe_faults *out)
{
    struct toe_faults in;
    int ret = toe_get_faults(dev, &in);

    if (ret < 0)
        return ret;
    out->drop = in.drop;
    out->dup = in.dup;
    out->reorder = in.reorder;
    out->corrupt = in.corrupt;
    out->seed = in.seed;
    return 0;
}

static int set_faults(void *dev, const struct api_toe_faults *f)
{
    struct toe_faults out = {
        .drop = f->drop, .dup = f->dup, .reorder = f->reorder, .corrupt = f->corrupt,
        .seed = f->seed,
    };

    return toe_set_faults(dev, &out);
}

static int set_link(void *dev, bool up)
{
    return toe_set_link(dev, up);
}

/* The API keeps captures in memory (NULL path) and saves them on download. */
static int capture_start(void *dev, size_t ring_bytes)
{
    return toe_capture_start(dev, NULL, ring_bytes);
}

static int capture_save(void *dev, const char *path)
{
    return toe_capture_save(dev, path);
}

static int capture_stop(void *dev)
{
    return toe_capture_stop(dev);
}

static const struct api_toe_ops toe_admin_ops = {
    .get_info = get_info,
    .get_counters = get_counters,
    .get_faults = get_faults,
    .set_faults = set_faults,
    .set_link = set_link,
    .capture_start = capture_start,
    .capture_save = capture_save,
    .capture_stop = capture_stop,
    .strerror = toe_strerror,
};

void app_toe_admin_fill(struct api_config *cfg)
{
    cfg->toe_ops = cfg->toe ? &toe_admin_ops : NULL;
}
