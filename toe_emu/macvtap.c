/*
 * macvtap.c - the adapter's wire as a station on a real Ethernet segment (--toe-uplink):
 * a macvtap device on the uplink interface, in bridge mode, carrying the adapter's own
 * MAC, so that frames from lwIP go straight onto that segment and the peers there see the
 * adapter's MAC and IPv4 address, as they would an iSCSI HBA's.
 *
 * The device is made and removed with two rtnetlink requests (RTM_NEWLINK / RTM_DELLINK,
 * the kernel's own interface; nothing here needs a library) and read and written through
 * its character device /dev/tapN (N: its ifindex), made with mknod when no udev made it
 * (in a container). Unlike a TAP it outlives its file descriptor: toe_macvtap_delete
 * removes it at close, and a start removes one a crashed toegw left under the same name.
 */
#include "toe_emu/toe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"

struct nlreq {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[512];
};

static struct rtattr *nl_put(struct nlreq *r, unsigned short type, const void *data,
                             size_t len)
{
    struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void nl_end(struct nlreq *r, struct rtattr *nest)
{
    nest->rta_len = (unsigned short)((char *)r + r->nh.nlmsg_len - (char *)nest);
}

/* Send one request and read its acknowledgment. 0 or the kernel's -errno. */
static int nl_talk(struct nlreq *r)
{
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    char buf[1024];
    ssize_t n;
    int fd, rc;

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->nh.nlmsg_seq = 1;
    if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    n = recv(fd, buf, sizeof(buf), 0);
    rc = n < 0 ? -errno : -EIO;
    if (n >= (ssize_t)(NLMSG_HDRLEN + sizeof(struct nlmsgerr))) {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (h->nlmsg_type == NLMSG_ERROR)
            rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
    close(fd);
    return rc;
}

int toe_macvtap_delete(const char *ifname)
{
    struct nlreq r = { .nh = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
                               .nlmsg_type = RTM_DELLINK } };

    r.ifi.ifi_family = AF_UNSPEC;
    nl_put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
    return nl_talk(&r);
}

/* The MTU of interface `ifname`, or -errno. */
static int if_mtu(const char *ifname)
{
    struct ifreq ifr;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

    if (sock < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    rc = ioctl(sock, SIOCGIFMTU, &ifr) < 0 ? -errno : ifr.ifr_mtu;
    close(sock);
    return rc;
}

int toe_macvtap_create(struct toe_config *cfg)
{
    struct nlreq r = { .nh = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
                               .nlmsg_type = RTM_NEWLINK,
                               .nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL } };
    unsigned lower = if_nametoindex(cfg->uplink), mode = MACVLAN_MODE_BRIDGE, mtu;
    int lower_mtu, rc;
    struct rtattr *info, *data;

    if (!lower) {
        toe_err_set("toe: no uplink interface '%s'", cfg->uplink);
        return -ENODEV;
    }
    lower_mtu = if_mtu(cfg->uplink);
    if (lower_mtu > 0 && cfg->mtu > (unsigned)lower_mtu) {
        log_info("toe", "mtu %u is more than uplink '%s' carries: using its %d", cfg->mtu,
                 cfg->uplink, lower_mtu);
        cfg->mtu = (unsigned)lower_mtu;
    }
    if (toe_macvtap_delete(cfg->ifname) == 0)
        log_warn("toe", "removed the macvtap '%s' a previous toegw left behind", cfg->ifname);
    mtu = cfg->mtu;
    r.ifi.ifi_family = AF_UNSPEC;
    nl_put(&r, IFLA_IFNAME, cfg->ifname, strlen(cfg->ifname) + 1);
    nl_put(&r, IFLA_LINK, &lower, sizeof(lower));
    nl_put(&r, IFLA_ADDRESS, cfg->mac, 6);
    nl_put(&r, IFLA_MTU, &mtu, sizeof(mtu));
    info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
    nl_put(&r, IFLA_INFO_KIND, "macvtap", sizeof("macvtap"));
    data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
    nl_put(&r, IFLA_MACVLAN_MODE, &mode, sizeof(mode));
    nl_end(&r, data);
    nl_end(&r, info);
    rc = nl_talk(&r);
    if (rc < 0)
        toe_err_set("toe: cannot create macvtap '%s' on uplink '%s': %s", cfg->ifname,
                    cfg->uplink, strerror(-rc));
    return rc;
}

int toe_macvtap_open(const char *ifname)
{
    unsigned idx = if_nametoindex(ifname), maj, min;
    char path[64], sys[128], dev[32] = "";
    int fd, rc;

    snprintf(path, sizeof(path), "/dev/tap%u", idx);
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* no udev here (a container): make the node from what sysfs says */
        snprintf(sys, sizeof(sys), "/sys/class/net/%s/macvtap/tap%u/dev", ifname, idx);
        int sfd = open(sys, O_RDONLY | O_CLOEXEC);
        if (sfd >= 0) {
            ssize_t n = read(sfd, dev, sizeof(dev) - 1);
            dev[n > 0 ? n : 0] = '\0';
            close(sfd);
        }
        if (sscanf(dev, "%u:%u", &maj, &min) == 2 &&
            mknod(path, S_IFCHR | 0600, makedev(maj, min)) == 0)
            fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = -errno;
        toe_err_set("toe: cannot open %s (macvtap '%s'): %s", path, ifname, strerror(-rc));
        return rc;
    }
    return fd;
}
