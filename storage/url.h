/*
 * url.h - libiscsi's URL form: iscsi://[user[%secret]@]host[:port][/IQN[/LUN]][?k=v&...]
 * with query keys header_digest, data_digest (none|crc32c), target_user, target_password.
 */
#ifndef TOEGW_STORAGE_URL_H
#define TOEGW_STORAGE_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct isc_url {
    char *user;             /* owned; NULL when absent */
    char *secret;           /* owned; wiped by isc_url_clear */
    char *portal;           /* owned: "host[:port]" */
    char *target;           /* owned; NULL when the URL names only a portal */
    int32_t lun;            /* -1 when absent */
    bool header_digest;     /* header_digest=crc32c */
    bool data_digest;       /* data_digest=crc32c */
    bool no_header_digest;  /* header_digest=none (absent: neither flag) */
    bool no_data_digest;    /* data_digest=none */
    char *target_user;      /* owned; mutual CHAP */
    char *target_secret;    /* owned; wiped by isc_url_clear */
};

/*
 * Parse `s` into *out (zeroed first). On error returns -EINVAL and writes a message into
 * err that never includes a secret.
 */
int isc_url_parse(const char *s, struct isc_url *out, char *err, size_t errlen);
void isc_url_clear(struct isc_url *u);

#endif
