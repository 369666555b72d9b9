/*
 * cmd_discover.c - `toegw discover PORTAL`: a SendTargets discovery session, its targets and
 * their portals as text or JSON.
 */
#include "appliance/cli_int.h"

#include <stdio.h>

int app_cmd_discover(int argc, char **argv)
{
    struct app_cli_opts o;
    struct app_cli_session cs;
    struct isc_target_list *l = NULL;
    const char *portal;
    int ret;

    ret = app_cli_parse_opts(argc, argv, "toegw discover PORTAL [options]",
                             APP_CLI_COMMON | APP_CLI_JSON, &o, &portal);
    if (ret)
        return ret;
    ret = app_cli_session_open(&o, portal, true, false, &cs);
    if (ret)
        return ret;
    ret = sto_sync_send_targets(cs.loop, cs.s, &l);
    if (ret < 0) {
        app_errorf("sendtargets discovery at %s failed: %s", cs.url.portal,
                   isc_session_error(cs.s));
        app_cli_session_close(&cs);
        return APP_EXIT_FAILED;
    }
    if (o.json) {
        printf("{\"targets\":[");
        for (size_t i = 0; i < l->n; i++) {
            printf("%s{\"iqn\":", i ? "," : "");
            app_cli_json_str(stdout, l->v[i].name);
            printf(",\"portals\":[");
            for (size_t j = 0; j < l->v[i].nportals; j++) {
                printf("%s", j ? "," : "");
                app_cli_json_str(stdout, l->v[i].portals[j]);
            }
            printf("]}");
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < l->n; i++) {
            printf("%s", l->v[i].name);
            for (size_t j = 0; j < l->v[i].nportals; j++)
                printf(" %s", l->v[i].portals[j]);
            printf("\n");
        }
    }
    isc_target_list_free(l);
    app_cli_session_close(&cs);
    return fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_FAILED;
}
