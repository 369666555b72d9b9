/*
 * cli_int.h - what the client commands' files share (appliance/cli_opts.c, cli_session.c,
 * cmd_*.c): the parsed options, the session a command runs on, the i/o job of the block
 * commands. Private to appliance/.
 */
#ifndef TOEGW_APPLIANCE_CLI_INT_H
#define TOEGW_APPLIANCE_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "appliance/cli.h"
#include "appliance/net.h"
#include "appliance/timeouts.h"
#include "stacks/stacks.h"
#include "storage/iscsi.h"
#include "storage/lun.h"
#include "storage/url.h"

#define APP_IO_CHUNK_MAX (1024 * 1024) /* bytes per SCSI command for read/write */
#define APP_IO_SLOTS 8                 /* commands in flight for read/write */

/* Options shared by the client commands. */
struct app_cli_opts {
    enum stk_policy stack;
    bool json;
    struct app_net_opts net;
    struct app_timeouts tmo;    /* the session's; no recovery here: a timeout ends it */
    /* --initiator-name, TOEGW_INITIATOR_NAME, or the one in the appliance's state dir
       (TOEGW_STATE_DIR, /var/lib/toegw) when it has one; "": the built-in name */
    char initiator[256];
    uint64_t offset;
    uint64_t length;
    bool have_length;
    unsigned busy_poll_us;      /* --busy-poll: the storage loop's (0: never) */
    /* perf */
    uint32_t blocks;
    uint32_t inflight;
    uint32_t seconds;
    bool write;
    bool random;
};

/* The groups of options a client command takes (app_cli_parse_opts). */
#define APP_CLI_COMMON 1u   /* the stack, the TOE, the initiator name, timeouts, logs */
#define APP_CLI_JSON 2u     /* --json */
#define APP_CLI_OFFSET 4u   /* --offset */
#define APP_CLI_LENGTH 8u   /* --length */
#define APP_CLI_PERF 16u    /* -b -m -t -w -r */

/*
 * Parse argv for a command (usage: its one-line usage; groups: APP_CLI_* it takes, any
 * other option is refused); positional receives the one operand (points into argv).
 * Returns 0, or APP_EXIT_USAGE after printing why. --help prints the usage and every
 * option the command takes, with its default, and exits 0.
 */
int app_cli_parse_opts(int argc, char **argv, const char *usage, unsigned groups,
                       struct app_cli_opts *o, const char **positional);

/* Write s to f as a JSON string (quoted, escaped). */
void app_cli_json_str(FILE *f, const char *s);

/* A command's logged-in session; app_cli_session_open fills it, _close frees all of it. */
struct app_cli_session {
    struct sto_loop *loop;
    struct isc_session *s;
    struct isc_url url;
    struct app_cli_opts *o;     /* the command's options (not owned) */
    struct app_net net;
    struct stk_desc *desc;      /* the broker's descriptor of the session's connection */
};

/*
 * Parse where (a URL; a bare PORTAL too when discovery), start the stacks and a storage loop,
 * log in (a discovery session when discovery; need_lun: the URL must name a LUN). 0, or
 * APP_EXIT_USAGE / APP_EXIT_FAILED after printing why (then cs holds nothing). cs keeps
 * a pointer to o.
 */
int app_cli_session_open(struct app_cli_opts *o, const char *where, bool discovery,
                         bool need_lun, struct app_cli_session *cs);

/* Log out if logged in and free everything cs holds (cs is zeroed). */
void app_cli_session_close(struct app_cli_session *cs);

/* One SCSI command's buffer and state (read/write ring, perf's in-flight set). */
struct app_io_slot {
    uint8_t *buf;      /* owned by the job: app_io_close frees (perf frees its own) */
    uint64_t off;      /* byte offset on the LUN */
    uint32_t len;      /* bytes of the command */
    bool busy, done;
    struct isc_scsi_result res;
};

struct app_io_job {
    struct app_cli_session *cs;
    struct sto_lun_info li;
    uint32_t chunk;
    struct app_io_slot slots[APP_IO_SLOTS];
    unsigned busy;
    bool any_done;
    bool reported;      /* the first failure was printed: one line, not one per slot */
};

/*
 * Open a session for url, probe its LUN (it must be a block device) and allocate the job's
 * buffers (the chunk: what one command may carry). 0, or APP_EXIT_* after printing why.
 */
int app_io_open(struct app_cli_opts *o, const char *url, struct app_cli_session *cs,
                struct app_io_job *j);

/* Free the job's buffers and close its session. */
void app_io_close(struct app_io_job *j);

#endif
