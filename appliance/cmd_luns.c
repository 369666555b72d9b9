/*
 * cmd_luns.c - `toegw luns URL`: REPORT LUNS, then each LUN probed (INQUIRY, capacity, VPD)
 * and printed as text or JSON; the URL's LUN alone when it names one.
 */
#include "appliance/cli_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int app_cmd_luns(int argc, char **argv)
{
    struct app_cli_opts o;
    struct app_cli_session cs;
    const char *url;
    uint32_t *luns = NULL;
    size_t n = 0;
    char err[320] = "";
    int ret, status = APP_EXIT_OK;

    ret = app_cli_parse_opts(argc, argv, "toegw luns URL [options]",
                             APP_CLI_COMMON | APP_CLI_JSON,
                             &o, &url);
    if (ret)
        return ret;
    ret = app_cli_session_open(&o, url, false, false, &cs);
    if (ret)
        return ret;
    ret = sto_sync_report_luns(cs.loop, cs.s, &luns, &n, err, sizeof(err));
    if (ret < 0) {
        app_errorf("%s", err);
        app_cli_session_close(&cs);
        return APP_EXIT_FAILED;
    }
    if (o.json)
        printf("{\"target\":\"%s\",\"luns\":[", cs.url.target);
    for (size_t i = 0; i < n; i++) {
        struct sto_lun_info li;
        if (cs.url.lun >= 0 && luns[i] != (uint32_t)cs.url.lun)
            continue;
        ret = sto_sync_probe_lun(cs.loop, cs.s, luns[i], &li, err, sizeof(err));
        if (ret < 0) {
            app_errorf("lun %u: %s", luns[i], err);
            status = APP_EXIT_FAILED;
            if (isc_session_state(cs.s) != ISC_STATE_LOGGED_IN)
                break;
            continue;
        }
        if (li.inq.peripheral_type != SCSI_TYPE_DISK) {
            if (o.json)
                printf("%s{\"lun\":%u,\"type\":%u,\"type_name\":\"%s\"}", i ? "," : "",
                       li.lun, li.inq.peripheral_type, scsi_type_name(li.inq.peripheral_type));
            else
                printf("lun %-3u %s (%s %s)\n", li.lun, scsi_type_name(li.inq.peripheral_type),
                       li.inq.vendor, li.inq.product);
            continue;
        }
        if (o.json) {
            printf("%s{\"lun\":%u,\"size_bytes\":%" PRIu64 ",\"block_size\":%u,"
                   "\"blocks\":%" PRIu64 ",\"type\":%u,\"vendor\":",
                   i ? "," : "", li.lun, li.size_bytes, li.cap.block_size, li.cap.blocks,
                   li.inq.peripheral_type);
            app_cli_json_str(stdout, li.inq.vendor);
            printf(",\"product\":");
            app_cli_json_str(stdout, li.inq.product);
            printf(",\"revision\":");
            app_cli_json_str(stdout, li.inq.revision);
            printf(",\"serial\":");
            app_cli_json_str(stdout, li.serial);
            printf(",\"wwn\":");
            app_cli_json_str(stdout, li.wwn);
            printf(",\"thin\":%s}", li.cap.thin ? "true" : "false");
        } else {
            printf("lun %-3u %14" PRIu64 " bytes  %5u-byte blocks  %s %s%s%s\n", li.lun,
                   li.size_bytes, li.cap.block_size, li.inq.vendor, li.inq.product,
                   li.wwn[0] ? "  " : "", li.wwn);
        }
    }
    if (o.json)
        printf("]}\n");
    free(luns);
    app_cli_session_close(&cs);
    if (fflush(stdout) != 0)
        return APP_EXIT_FAILED;
    return status;
}
