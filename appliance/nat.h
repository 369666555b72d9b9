/*
 * nat.h - --toe-nat: the TOE's private TAP subnet reaches whatever the host can route to,
 * masqueraded behind the host's own address.
 *
 * One nftables table per TAP, "ip toegw_<ifname>", holding the one masquerade rule (and,
 * when toegw had to turn IPv4 forwarding on, a forward chain that lets only the TAP's
 * traffic through, so that the host forwards nothing else than before). It is removed at
 * exit; after a crash it is removed, and forwarding put back, by the next start on that
 * TAP. The rules go through the nft(8) tool (Debian's nftables package).
 */
#ifndef TOEGW_APPLIANCE_NAT_H
#define TOEGW_APPLIANCE_NAT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app_nat {
    char table[40];           /* "toegw_toe0"; "" when not set up */
    bool forward_enabled;     /* net.ipv4.ip_forward was 0 and is 1 because of us */
};

/*
 * Set up NAT for the TAP `ifname` whose subnet is addr/prefix (removing what a crashed
 * toegw left for the same TAP first). 0, or -errno with err.
 */
int app_nat_start(struct app_nat *nat, const char *ifname, struct in_addr addr,
                  uint8_t prefix, char *err, size_t errlen);
/* Remove it: the table, and forwarding back off when we turned it on. */
void app_nat_stop(struct app_nat *nat);

#endif
