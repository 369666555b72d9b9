/*
 * iname.h - iSCSI names of the initiator: checking one, and making a new one.
 *
 * Targets grant LUNs by initiator name (their ACLs), so every appliance needs a name of its
 * own that stays the same across restarts: the appliance keeps one per state directory
 * (appliance/state.c), made here the first time, as open-iscsi's iscsi-iname does.
 */
#ifndef TOEGW_STORAGE_INAME_H
#define TOEGW_STORAGE_INAME_H

#include <stdbool.h>
#include <stddef.h>

#define ISC_NAME_MAX 223               /* RFC 7143 section 4.2.7.1: at most 223 bytes */
#define ISC_NAME_PREFIX "iqn.2026-11.io.toegw:"

/*
 * Whether `name` is an iSCSI name: "iqn.", "eui." or "naa." and something after it, made of
 * letters, digits and . : - _ only, at most ISC_NAME_MAX bytes.
 */
bool isc_name_valid(const char *name);

/*
 * A new initiator name: ISC_NAME_PREFIX and 12 random hex digits (48 bits), e.g.
 * "iqn.2026-11.io.toegw:5f1c0a9e27b3". 0, -ENOSPC when out is too small, or -EIO when
 * the random source fails.
 */
int isc_name_generate(char *out, size_t outlen);

#endif
