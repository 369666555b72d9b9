/*
 * nat.c - the TOE's subnet masqueraded behind the host (nat.h).
 */
#include "appliance/nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

/*
 * Run `nft -f -` with `script` on its stdin (no shell); its stderr, if any, into err.
 * 0, or -EIO (nft failed: err says why) / -errno.
 */
static int nft_run(const char *script, char *err, size_t errlen)
{
    int in[2], out[2], status;
    pid_t pid;
    ssize_t n;
    size_t got = 0;

    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -errno;
    }
    pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execlp("nft", "nft", "-f", "-", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return -errno;
    }
    if (write(in[1], script, strlen(script)) < 0)
        log_debug("nat", "cannot write to nft: %s", strerror(errno));
    close(in[1]);
    while (got + 1 < errlen && (n = read(out[0], err + got, errlen - 1 - got)) > 0)
        got += (size_t)n;
    if (errlen)
        err[got] = '\0';
    close(out[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(err, errlen, "nft not found (Debian package nftables)");
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = *(p + 1) ? ' ' : '\0';
    return -EIO;
}

static int forward_get(void)
{
    char c = '0';
    int fd = open(IP_FORWARD, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (read(fd, &c, 1) != 1)
        c = '0';
    close(fd);
    return c == '1';
}

static int forward_set(bool on)
{
    int fd = open(IP_FORWARD, O_WRONLY | O_CLOEXEC), ret = 0;

    if (fd < 0)
        return -errno;
    if (write(fd, on ? "1\n" : "0\n", 2) != 2)
        ret = -errno;
    close(fd);
    return ret;
}

/*
 * Remove a table a crashed toegw left for this TAP. Its "forward" chain says that toegw had
 * turned forwarding on: it goes back off.
 */
static void remove_stale(const char *table)
{
    char script[128], err[256];

    snprintf(script, sizeof(script), "list chain ip %s forward\n", table);
    bool had_forward = nft_run(script, err, sizeof(err)) == 0;
    snprintf(script, sizeof(script), "delete table ip %s\n", table);
    if (nft_run(script, err, sizeof(err)) == 0) {
        log_warn("nat", "removed the nft table \"%s\" a previous toegw left behind", table);
        if (had_forward)
            forward_set(false);
    }
}

int app_nat_start(struct app_nat *nat, const char *ifname, struct in_addr addr,
                  uint8_t prefix, char *err, size_t errlen)
{
    char script[1024], net[INET_ADDRSTRLEN], nfterr[512];
    struct in_addr subnet = { .s_addr = addr.s_addr & htonl(prefix ? ~0u << (32 - prefix) : 0) };
    int fwd, ret, n;

    memset(nat, 0, sizeof(*nat));
    n = snprintf(nat->table, sizeof(nat->table), "toegw_");
    for (const char *p = ifname; *p && (size_t)n + 1 < sizeof(nat->table); p++)
        nat->table[n++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                 (*p >= '0' && *p <= '9') ? *p : '_');
    nat->table[n] = '\0';
    inet_ntop(AF_INET, &subnet, net, sizeof(net));
    remove_stale(nat->table);

    fwd = forward_get();
    if (fwd < 0) {
        snprintf(err, errlen, "--toe-nat: cannot read %s: %s", IP_FORWARD, strerror(-fwd));
        nat->table[0] = '\0';
        return fwd;
    }
    n = snprintf(script, sizeof(script),
                 "table ip %s {\n"
                 "  chain postrouting {\n"
                 "    type nat hook postrouting priority srcnat; policy accept;\n"
                 "    ip saddr %s/%u oifname != \"%s\" masquerade\n"
                 "  }\n",
                 nat->table, net, prefix, ifname);
    if (!fwd)
        /* forwarding was off: only the TAP's traffic may use it now */
        n += snprintf(script + n, sizeof(script) - (size_t)n,
                      "  chain forward {\n"
                      "    type filter hook forward priority filter; policy drop;\n"
                      "    iifname \"%s\" accept\n"
                      "    oifname \"%s\" ct state established,related accept\n"
                      "  }\n",
                      ifname, ifname);
    snprintf(script + n, sizeof(script) - (size_t)n, "}\n");
    ret = nft_run(script, nfterr, sizeof(nfterr));
    if (ret < 0) {
        snprintf(err, errlen, "--toe-nat: cannot add the nft table \"%s\": %s", nat->table,
                 nfterr[0] ? nfterr : strerror(-ret));
        nat->table[0] = '\0';
        return ret;
    }
    if (!fwd) {
        ret = forward_set(true);
        if (ret < 0) {
            snprintf(err, errlen, "--toe-nat: cannot turn on IPv4 forwarding: %s",
                     strerror(-ret));
            app_nat_stop(nat);
            return ret;
        }
        nat->forward_enabled = true;
    }
    log_info("nat", "the toe's subnet %s/%u is masqueraded behind the host (nft table \"%s\"%s)",
             net, prefix, nat->table, fwd ? "" : ", ipv4 forwarding on for it alone");
    return 0;
}

void app_nat_stop(struct app_nat *nat)
{
    char script[128], err[256];

    if (!nat->table[0])
        return;
    snprintf(script, sizeof(script), "delete table ip %s\n", nat->table);
    if (nft_run(script, err, sizeof(err)) < 0)
        log_warn("nat", "cannot remove the nft table \"%s\": %s", nat->table, err);
    if (nat->forward_enabled)
        forward_set(false);
    nat->table[0] = '\0';
    nat->forward_enabled = false;
}
