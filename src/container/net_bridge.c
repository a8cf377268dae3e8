/* The bridge mode: virtus0, a veth pair per container, a leased address, nftables rules. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

/* Not podman's 10.88.0.0/16: both tools live on one host (and the benchmarks run them side by side). */
#define SUBNET_DEFAULT "10.99.0.0/16"
#define LINK_WAIT_MS 3000

static int parse_cidr(const char *s, struct in_addr *net, unsigned *prefix, vt_err *err)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", s);
	char *slash = strchr(buf, '/');
	uint64_t p;
	if (!slash || (*slash = '\0', inet_pton(AF_INET, buf, net) != 1) || parse_uint(slash + 1, 8, 30, &p) < 0)
		return vt_fail(err, "VIRTUS_SUBNET '%s' is not an IPv4 subnet like 10.88.0.0/16 (prefix 8 to 30)", s);
	*prefix = (unsigned)p;
	uint32_t mask = 0xffffffffu << (32 - p);
	net->s_addr = htonl(ntohl(net->s_addr) & mask);
	return 0;
}

/* The bridge, made when missing; its address names the subnet and gateway. */
static int ensure_bridge(int nl, struct in_addr *subnet, unsigned *prefix, struct in_addr *gw, vt_err *err)
{
	int index = nl_link_index(nl, CNET_BRIDGE_NAME, err);
	if (index < 0)
		return -1;
	if (index == 0) {
		if (nl_bridge_create(nl, CNET_BRIDGE_NAME, err) < 0)
			return -1;
		if ((index = nl_link_index(nl, CNET_BRIDGE_NAME, err)) <= 0)
			return index < 0 ? -1 : vt_fail(err, "bridge %s vanished", CNET_BRIDGE_NAME);
	}
	int rc = nl_addr_get(nl, index, gw, prefix, err);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		const char *s = getenv("VIRTUS_SUBNET");
		if (parse_cidr(s && *s ? s : SUBNET_DEFAULT, subnet, prefix, err) < 0)
			return -1;
		gw->s_addr = htonl(ntohl(subnet->s_addr) + 1);
		if (nl_addr_add(nl, index, *gw, *prefix, err) < 0)
			return -1;
	}
	subnet->s_addr = htonl(ntohl(gw->s_addr) & (0xffffffffu << (32 - *prefix)));
	if (nl_link_up(nl, CNET_BRIDGE_NAME, err) < 0)
		return -1;
	return 0;
}

static int host_settings(vt_err *err)
{
	if (cnet_sysctl_write("/proc/sys/net/ipv4/ip_forward", "1", err) < 0 ||
	    cnet_sysctl_write("/proc/sys/net/ipv4/conf/" CNET_BRIDGE_NAME "/route_localnet", "1", err) < 0)
		return -1;
	return 0;
}

/* The bridge, host settings and table: what every bridged container needs. */
static int bridge_setup(struct in_addr *subnet, unsigned *prefix, struct in_addr *gw, vt_err *err)
{
	cleanup_close int nl = nl_open(err);
	if (nl < 0 || ensure_bridge(nl, subnet, prefix, gw, err) < 0 || host_settings(err) < 0 ||
	    cnet_nft_ensure_table(*subnet, *prefix, err) < 0)
		return vt_err_prefix(err, "bridge %s", CNET_BRIDGE_NAME);
	return 0;
}

/* 1 and the bridge's subnet and gateway when it exists with its address, 0 when not. */
static int bridge_address(int nl, struct in_addr *subnet, unsigned *prefix, struct in_addr *gw, vt_err *err)
{
	int index = nl_link_index(nl, CNET_BRIDGE_NAME, err);
	if (index <= 0)
		return index;
	int rc = nl_addr_get(nl, index, gw, prefix, err);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	subnet->s_addr = htonl(ntohl(gw->s_addr) & (0xffffffffu << (32 - *prefix)));
	return 1;
}

/* At attach, moments after prepare set everything up: only a bridge deleted meanwhile is set up again (the
 * table and the host settings go with a full setup; a run pays for one). */
static int bridge_again(struct in_addr *subnet, unsigned *prefix, struct in_addr *gw, vt_err *err)
{
	cleanup_close int nl = nl_open(err);
	if (nl < 0)
		return vt_err_prefix(err, "bridge %s", CNET_BRIDGE_NAME);
	int found = bridge_address(nl, subnet, prefix, gw, err);
	if (found < 0)
		return vt_err_prefix(err, "bridge %s", CNET_BRIDGE_NAME);
	return found ? 0 : bridge_setup(subnet, prefix, gw, err);
}

int cnet_bridge_prepare(const char *store_root, const char *id, struct cnet_lease *out, vt_err *err)
{
	struct in_addr subnet, gw, addr;
	unsigned prefix;
	if (bridge_setup(&subnet, &prefix, &gw, err) < 0 ||
	    cnet_lease_take(store_root, id, subnet, prefix, gw, &addr, err) < 0)
		return -1;
	inet_ntop(AF_INET, &addr, out->addr, sizeof(out->addr));
	inet_ntop(AF_INET, &gw, out->gateway, sizeof(out->gateway));
	return 0;
}

/* eth0 inside the container: address, up, default route. */
static int configure_inside(pid_t pid, struct in_addr addr, unsigned prefix, struct in_addr gw, vt_err *err)
{
	cleanup_close int nl = nl_open_in_pid_netns(pid, err);
	if (nl < 0)
		return -1;
	int index = nl_link_index(nl, "eth0", err);
	if (index <= 0)
		return index < 0 ? -1 : vt_fail(err, "eth0 is missing in the container");
	if (nl_addr_add(nl, index, addr, prefix, err) < 0 || nl_link_up(nl, "eth0", err) < 0 ||
	    nl_route_default(nl, gw, err) < 0 || nl_link_wait_running(nl, "eth0", LINK_WAIT_MS, err) < 0)
		return -1;
	return 0;
}

static int make_veth(int nl, const char *id, pid_t pid, vt_err *err)
{
	char host_end[16], path[64];
	cnet_veth_name(id, host_end);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	cleanup_close int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return vt_fail_errno(err, errno, "opening %s", path);
	int master = nl_link_index(nl, CNET_BRIDGE_NAME, err);
	if (master <= 0)
		return master < 0 ? -1 : vt_fail(err, "bridge %s is missing", CNET_BRIDGE_NAME);
	/* A veth of the same name is a leftover of an earlier life of this container. */
	if (nl_link_del(nl, host_end, err) < 0 || nl_veth_create(nl, host_end, master, "eth0", ns, err) < 0 ||
	    nl_link_up(nl, host_end, err) < 0)
		return -1;
	return 0;
}

static int wait_host_side(int nl, const char *id, vt_err *err)
{
	char host_end[16];
	cnet_veth_name(id, host_end);
	if (nl_link_wait_running(nl, host_end, LINK_WAIT_MS, err) < 0 ||
	    nl_link_wait_running(nl, CNET_BRIDGE_NAME, LINK_WAIT_MS, err) < 0)
		return -1;
	return 0;
}

int cnet_bridge_attach(const char *store_root, const char *id, const struct cnet_config *c, pid_t pid,
		       struct cnet_lease *lease, vt_err *err)
{
	(void)store_root;
	struct in_addr subnet, gw, addr;
	unsigned prefix;
	if (inet_pton(AF_INET, lease->addr, &addr) != 1)
		return vt_fail(err, "container network: lease address '%s' is not an address", lease->addr);
	if (bridge_again(&subnet, &prefix, &gw, err) < 0)
		return -1;
	cleanup_close int nl = nl_open(err);
	if (nl < 0 || make_veth(nl, id, pid, err) < 0 || configure_inside(pid, addr, prefix, gw, err) < 0 ||
	    wait_host_side(nl, id, err) < 0 || cnet_nft_add_container(id, addr, gw, c, &lease->rules, err) < 0 ||
	    cnet_lease_set_holder(id, err) < 0)
		return vt_err_prefix(err, "container network");
	return 0;
}

int cnet_bridge_detach_known(const char *id, bool rules, bool veth, vt_err *err)
{
	char host_end[16];
	cnet_veth_name(id, host_end);
	cleanup_close int nl = veth ? nl_open(err) : -1;
	if ((veth && nl < 0) || (rules && cnet_nft_del_container(id, err) < 0) ||
	    (veth && nl_link_del(nl, host_end, err) < 0) || cnet_lease_drop(id, err) < 0)
		return vt_err_prefix(err, "removing the network of container %s", id);
	return 0;
}

int cnet_bridge_detach(const char *id, vt_err *err) { return cnet_bridge_detach_known(id, true, true, err); }

/* A persistent tap of that name, owned by nobody until the VMM opens it (TUNSETIFF on an existing device). */
int cnet_make_tap(const char *name, vt_err *err)
{
	cleanup_close int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "/dev/net/tun");
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) || ioctl(fd, TUNSETPERSIST, 1))
		return vt_fail_errno(err, errno, "creating tap %s", name);
	return 0;
}

int cnet_attach_tap(const char *store_root, const char *id, const struct cnet_config *c, struct cnet_lease *lease,
		    char tap[16], unsigned *prefix, vt_err *err)
{
	(void)store_root;
	struct in_addr subnet, gw, addr;
	if (inet_pton(AF_INET, lease->addr, &addr) != 1)
		return vt_fail(err, "container network: lease address '%s' is not an address", lease->addr);
	if (bridge_setup(&subnet, prefix, &gw, err) < 0)
		return -1;
	cnet_veth_name(id, tap);
	lease->tap = true;
	cleanup_close int nl = nl_open(err);
	int master = nl < 0 ? -1 : nl_link_index(nl, CNET_BRIDGE_NAME, err);
	if (master <= 0)
		return master < 0 ? -1 : vt_fail(err, "bridge %s is missing", CNET_BRIDGE_NAME);
	if (nl_link_del(nl, tap, err) < 0 || cnet_make_tap(tap, err) < 0 || nl_link_set_master(nl, tap, master, err) < 0 ||
	    nl_link_up(nl, tap, err) < 0 || cnet_nft_add_container(id, addr, gw, c, &lease->rules, err) < 0 ||
	    cnet_lease_set_holder(id, err) < 0) {
		vt_err ignored;
		cnet_bridge_detach(id, &ignored);
		return vt_err_prefix(err, "container network");
	}
	return 0;
}
