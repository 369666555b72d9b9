/*
 * serve.h - `toegw serve`, the appliance (docs/serve.md).
 */
#ifndef TOEGW_APPLIANCE_SERVE_H
#define TOEGW_APPLIANCE_SERVE_H

int app_cmd_serve(int argc, char **argv);

#endif
