/*
 * tap.c - the adapter's wire: a TAP device, created or attached by name, with the host end
 * configured (MTU, address, up) through the classic interface ioctls.
 *
 * With offloads the TAP carries a virtio-net header per frame and the kernel may hand us
 * TCP super-frames (TSO) with partial checksums; we may hand it the same. That is how the
 * adapter avoids per-frame costs on a link that exists only in memory (docs/toe.md).
 */
#include "toe_emu/toe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TUNSETCARRIER
#define TUNSETCARRIER _IOW('T', 226, int)
#endif

static int if_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *what,
                    const char *ifname)
{
    if (ioctl(sock, req, ifr) < 0) {
        int e = errno;

        toe_err_set("toe: cannot set %s of '%s': %s", what, ifname, strerror(e));
        return -e;
    }
    return 0;
}

static int set_inet(int sock, unsigned long req, const char *ifname, struct in_addr a,
                    const char *what)
{
    struct ifreq ifr;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    return if_ioctl(sock, req, &ifr, what, ifname);
}

/* Best effort: keep the kernel's IPv6 chatter (router solicitations) off the wire. */
static void disable_ipv6(const char *ifname)
{
    char path[96];
    int fd;

    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, "1", 1) < 0) {
        /* not fatal: the adapter drops IPv6 frames anyway */
    }
    close(fd);
}

static int config_host_side(const struct toe_config *cfg)
{
    struct ifreq ifr;
    int sock, rc;

    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        rc = -errno;
        toe_err_set("toe: cannot open a control socket: %s", strerror(-rc));
        return rc;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->ifname);
    ifr.ifr_mtu = (int)cfg->mtu;
    rc = if_ioctl(sock, SIOCSIFMTU, &ifr, "the mtu", cfg->ifname);
    if (rc < 0)
        goto out;
    disable_ipv6(cfg->ifname);
    if (cfg->host_addr.s_addr != 0) {
        struct in_addr mask = {
            .s_addr = htonl(cfg->host_prefix ? ~0u << (32 - cfg->host_prefix) : 0)
        };

        rc = set_inet(sock, SIOCSIFADDR, cfg->ifname, cfg->host_addr, "the host address");
        if (rc < 0)
            goto out;
        rc = set_inet(sock, SIOCSIFNETMASK, cfg->ifname, mask, "the host netmask");
        if (rc < 0)
            goto out;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->ifname);
    rc = if_ioctl(sock, SIOCGIFFLAGS, &ifr, "(reading) the flags", cfg->ifname);
    if (rc < 0)
        goto out;
    ifr.ifr_flags |= IFF_UP;
    rc = if_ioctl(sock, SIOCSIFFLAGS, &ifr, "the up flag", cfg->ifname);
out:
    close(sock);
    return rc;
}

/* The macvtap on the uplink (macvtap.c), opened with the same flags as a TAP. */
static int open_macvtap(struct toe_dev *dev, struct ifreq *ifr)
{
    int fd, rc = toe_macvtap_create(&dev->cfg);

    if (rc < 0)
        return rc;
    fd = toe_macvtap_open(dev->cfg.ifname);
    if (fd >= 0 && ioctl(fd, TUNSETIFF, ifr) < 0) {
        rc = -errno;
        toe_err_set("toe: cannot set up macvtap '%s': %s", dev->cfg.ifname, strerror(-rc));
        close(fd);
        fd = rc;
    }
    if (fd < 0)
        toe_macvtap_delete(dev->cfg.ifname);
    return fd;
}

int toe_tap_open(struct toe_dev *dev)
{
    const struct toe_config *cfg = &dev->cfg;
    struct ifreq ifr;
    int fd, rc;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->ifname);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (cfg->no_offload ? 0 : IFF_VNET_HDR);
    if (cfg->uplink[0]) {
        fd = open_macvtap(dev, &ifr);
        if (fd < 0)
            return fd;
        goto opened;
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        toe_err_set("toe: cannot open /dev/net/tun: %s", strerror(-rc));
        return rc;
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        rc = -errno;
        if (rc == -EINVAL)
            toe_err_set("toe: cannot attach '%s': it exists and is not a TAP device",
                        cfg->ifname);
        else
            toe_err_set("toe: cannot create or attach TAP '%s': %s", cfg->ifname,
                        strerror(-rc));
        goto fail;
    }
opened:
    dev->offload = false;
    dev->vnet = !cfg->no_offload;
    if (dev->vnet) {
        int hdrsz = TOE_VNET_HLEN;

        if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
            rc = -errno;
            toe_err_set("toe: cannot set the vnet header size of '%s': %s", cfg->ifname,
                        strerror(-rc));
            goto fail;
        }
        /* We take partial checksums and TCPv4 super-frames from the kernel. */
        if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4)) == 0)
            dev->offload = true;
    }
    dev->tap_fd = fd;
    rc = config_host_side(cfg);
    if (rc < 0)
        goto fail;
    toe_tap_set_carrier(dev, true);
    return 0;

fail:
    close(fd);
    dev->tap_fd = -1;
    if (cfg->uplink[0])
        toe_macvtap_delete(cfg->ifname);
    return rc;
}

int toe_tap_set_carrier(struct toe_dev *dev, bool up)
{
    int on = up;

    /* Kernels before 5.0 lack it; the adapter still drops frames while down. */
    return ioctl(dev->tap_fd, TUNSETCARRIER, &on) < 0 ? -errno : 0;
}

void toe_tap_close(struct toe_dev *dev)
{
    if (dev->tap_fd >= 0)
        close(dev->tap_fd);
    dev->tap_fd = -1;
    if (dev->cfg.uplink[0])
        toe_macvtap_delete(dev->cfg.ifname); /* unlike a TAP, it outlives its fd */
}
