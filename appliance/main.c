/*
 * main.c - the toegw binary: dispatches to the appliance (`serve`) and the client
 * commands of README.md.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "appliance/cli.h"
#include "appliance/net.h"
#include "appliance/serve.h"
#include "appliance/version.h"

static int cmd_version(int argc, char **argv)
{
    struct api_info info = { 0 };

    (void)argc;
    (void)argv;
    app_version_info(&info);
    printf("toegw %s\n", info.version);
    for (size_t i = 0; i < API_INFO_LIBS && info.libraries[i].name; i++)
        if (strcmp(info.libraries[i].name, "toe"))
            printf("  %-13s %s\n", info.libraries[i].name, info.libraries[i].version);
    /* tests/integration/lib/harness.sh (h_need_toe) reads this line */
    printf("  toe           %s\n", app_net_toe_stack() ? app_net_toe_stack()
                                                       : "not built in (make TOE_MK=)");
    return APP_EXIT_OK;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    { "serve", app_cmd_serve, "run the appliance (TOE, broker, initiator, NBD, REST API)" },
    { "discover", app_cmd_discover, "PORTAL: iSCSI SendTargets discovery" },
    { "luns", app_cmd_luns, "URL: log in and list the target's LUNs" },
    { "read", app_cmd_read, "URL: read a LUN range to stdout" },
    { "write", app_cmd_write, "URL: write stdin to the LUN" },
    { "perf", app_cmd_perf, "URL: load generator (iscsi-perf options)" },
    { "netstat", app_cmd_netstat, "the unified connection table of a running appliance" },
    { "version", cmd_version, "versions of toegw and its libraries" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: toegw COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nURL: iscsi://[user[%%secret]@]host[:port]/IQN/LUN"
               "[?header_digest=crc32c&data_digest=crc32c&target_user=U&target_password=P]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return APP_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return APP_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(argc - 1, argv + 1);
    /* a closed pipe is an error return from write(2), not a silent death */
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    app_errorf("unknown command \"%.32s\" (try toegw --help)", argv[1]);
    return APP_EXIT_USAGE;
}
