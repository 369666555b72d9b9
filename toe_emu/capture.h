/*
 * capture.h - pcap capture of the emulated wire (libpcap, Ethernet link type), either
 * streamed to a file or kept in a bounded in-memory ring of the newest frames.
 *
 * The firmware thread adds frames; any thread may save or close. A mutex guards the state
 * (only taken while a capture exists, so an idle wire pays nothing). No lwIP here.
 */
#ifndef TOEGW_TOE_CAPTURE_H
#define TOEGW_TOE_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

struct toe_capture;

/* Stream to `path` (truncated). NULL and errno; `err` gets the message. */
struct toe_capture *toe_cap_open_file(const char *path, char *err, size_t errlen);
/* Keep at most `max_bytes` of frame data in memory, dropping the oldest frames. */
struct toe_capture *toe_cap_open_ring(size_t max_bytes);
/* Record one frame (copied). */
void toe_cap_frame(struct toe_capture *c, const struct timeval *ts, const uint8_t *frame,
                   size_t len);
/* Write what the capture holds as a pcap file (a file capture is flushed and copied). */
int toe_cap_save(struct toe_capture *c, const char *path, char *err, size_t errlen);
uint64_t toe_cap_frames(struct toe_capture *c);
/* Flush and close; frees `c`. */
void toe_cap_close(struct toe_capture *c);

#endif
