/*
 * h_capture.c - /api/v1/capture and /api/v1/capture.pcap: a capture of the TOE's wire kept
 * in memory, started, read as pcap and stopped through the API (one at a time).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_int.h"

static json_t *capture_view(const struct api_ctx *x)
{
    const struct api_toe_ops *toe = api_toe(x);
    struct api_capture_state st;
    struct api_toe_counters tc;
    uint64_t frames = 0;
    char ts[32];

    pthread_mutex_lock(&x->sh->capture_lock);
    st = x->sh->capture;
    pthread_mutex_unlock(&x->sh->capture_lock);
    if (st.running && toe && toe->get_counters(x->cfg->toe, &tc) == 0)
        frames = tc.capture_frames;
    if (!st.running)
        return json_pack("{s:b}", "running", 0);
    return json_pack("{s:b, s:I, s:s, s:I, s:s}", "running", 1, "ring_bytes",
                     (json_int_t)st.ring_bytes, "started",
                     api_rfc3339(st.started, ts, sizeof(ts)), "frames",
                     (json_int_t)(frames > INT64_MAX ? INT64_MAX : frames), "download",
                     "/api/v1/capture.pcap");
}

void api_h_capture_get(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    (void)c;
    api_resp_json(r, 200, capture_view(x));
}

void api_h_capture_start(const struct api_ctx *x, const struct api_call *c,
                         struct api_resp *r)
{
    const struct api_toe_ops *toe;
    struct api_capture_req q;
    struct api_err e;
    int ret;

    if (api_parse_capture_req(c->body, c->body_len, &q, &e) < 0) {
        api_resp_problem(r, &e);
        return;
    }
    if (!(toe = api_need_toe(x, r)))
        return;
    pthread_mutex_lock(&x->sh->capture_lock);
    ret = toe->capture_start(x->cfg->toe, q.ring_bytes);
    if (ret == 0) {
        x->sh->capture.running = true;
        x->sh->capture.ring_bytes = q.ring_bytes ? q.ring_bytes : API_TOE_DEFAULT_RING;
        x->sh->capture.started = time(NULL);
    }
    pthread_mutex_unlock(&x->sh->capture_lock);
    if (ret < 0) {
        api_resp_err(r, api_toe_status(ret), "cannot start a capture: %s", api_toe_why(toe));
        return;
    }
    snprintf(r->location, sizeof(r->location), "/api/v1/capture.pcap");
    api_resp_json(r, 201, capture_view(x));
}

void api_h_capture_stop(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_toe_ops *toe;
    int ret;

    (void)c;
    if (!(toe = api_need_toe(x, r)))
        return;
    pthread_mutex_lock(&x->sh->capture_lock);
    if (!x->sh->capture.running) {
        pthread_mutex_unlock(&x->sh->capture_lock);
        api_resp_err(r, 404, "no capture is running");
        return;
    }
    ret = toe->capture_stop(x->cfg->toe);
    memset(&x->sh->capture, 0, sizeof(x->sh->capture));
    pthread_mutex_unlock(&x->sh->capture_lock);
    if (ret < 0)
        api_resp_err(r, api_toe_status(ret), "cannot stop the capture: %s", api_toe_why(toe));
    else
        api_resp_empty(r, 204);
}

/*
 * Save the running capture into the file at path (made private by mkstemps) and open it
 * (-errno with the answer in r). Called with capture_lock held.
 */
static int capture_save_open(const struct api_ctx *x, const struct api_toe_ops *toe,
                             char *path, struct api_resp *r)
{
    int fd, ret;

    if (!x->sh->capture.running) {
        api_resp_err(r, 404, "no capture is running: start one with POST /api/v1/capture");
        return -ENOENT;
    }
    fd = mkstemps(path, 5);
    if (fd < 0) {
        ret = -errno;
        api_resp_err(r, 500, "cannot create a capture file in the state directory: %s",
                     strerror(-ret));
        return ret;
    }
    close(fd);
    ret = toe->capture_save(x->cfg->toe, path);
    fd = ret == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (ret == 0 && fd < 0)
        ret = -errno;
    unlink(path);
    if (ret < 0) {
        api_resp_err(r, api_toe_status(ret), "cannot save the capture: %s",
                     fd < 0 && ret != -EINVAL ? strerror(-ret) : api_toe_why(toe));
        return ret;
    }
    return fd;
}

/*
 * Save the in-memory capture to a private file under the state directory, open it and
 * unlink it at once: the response streams from the open descriptor, and nothing is left
 * behind if the client goes away.
 */
void api_h_capture_pcap(const struct api_ctx *x, const struct api_call *c, struct api_resp *r)
{
    const struct api_config *cfg = x->cfg;
    const char *dir = cfg->state_dir && cfg->state_dir[0] ? cfg->state_dir : "/tmp";
    const struct api_toe_ops *toe;
    char path[4096];
    struct stat sb;
    int fd;

    (void)c;
    if (!(toe = api_need_toe(x, r)))
        return;
    if (snprintf(path, sizeof(path), "%s/.capture-XXXXXX.pcap", dir) >= (int)sizeof(path)) {
        api_resp_err(r, 500, "the state directory's path is too long");
        return;
    }
    pthread_mutex_lock(&x->sh->capture_lock);
    fd = capture_save_open(x, toe, path, r);
    pthread_mutex_unlock(&x->sh->capture_lock);
    if (fd < 0)
        return;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        api_resp_err(r, 500, "cannot size the capture file: %s", strerror(errno));
        return;
    }
    r->status = 200;
    r->ctype = "application/vnd.tcpdump.pcap";
    r->disposition = "attachment; filename=\"toe.pcap\"";
    r->fd = fd;
    r->len = (size_t)sb.st_size;
}

void api_capture_shutdown(const struct api_ctx *x)
{
    const struct api_toe_ops *toe = api_toe(x);

    pthread_mutex_lock(&x->sh->capture_lock);
    if (x->sh->capture.running && toe)
        toe->capture_stop(x->cfg->toe);
    x->sh->capture.running = false;
    pthread_mutex_unlock(&x->sh->capture_lock);
}
