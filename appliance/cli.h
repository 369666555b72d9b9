/*
 * cli.h - the client commands (discover, luns, read, write, perf, netstat), each running
 * in-process (the initiator on its own storage loop), and the error line they all print.
 */
#ifndef TOEGW_APPLIANCE_CLI_H
#define TOEGW_APPLIANCE_CLI_H

/* Exit statuses of every command. */
#define APP_EXIT_OK 0
#define APP_EXIT_FAILED 1
#define APP_EXIT_USAGE 2

int app_cmd_discover(int argc, char **argv);
int app_cmd_luns(int argc, char **argv);
int app_cmd_read(int argc, char **argv);
int app_cmd_write(int argc, char **argv);
int app_cmd_perf(int argc, char **argv);
int app_cmd_netstat(int argc, char **argv);
/* a running appliance, through its REST API (cmd_remote.c) */
int app_cmd_sessions(int argc, char **argv);
int app_cmd_login(int argc, char **argv);
int app_cmd_logout(int argc, char **argv);
int app_cmd_volumes(int argc, char **argv);
int app_cmd_reservations(int argc, char **argv);

/* Print "toegw: <msg>" on stderr, one line. */
void app_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
