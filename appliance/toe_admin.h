/*
 * toe_admin.h - the emulated TOE's administrative operations for the REST API.
 */
#ifndef TOEGW_APPLIANCE_TOE_ADMIN_H
#define TOEGW_APPLIANCE_TOE_ADMIN_H

struct api_config;

/*
 * Give the API the TOE's operations when cfg->toe (a struct toe_dev *, borrowed) is set;
 * leave cfg->toe_ops NULL otherwise, so the TOE's endpoints answer as with --no-toe.
 */
void app_toe_admin_fill(struct api_config *cfg);

#endif
