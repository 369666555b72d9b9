/*
 * serve.h - `toegw serve`, the appliance (contract §2).
 */
#ifndef TOEGW_APPLIANCE_SERVE_H
#define TOEGW_APPLIANCE_SERVE_H

int app_cmd_serve(int argc, char **argv);

#endif
