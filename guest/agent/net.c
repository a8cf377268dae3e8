/* The VM's network, which is the container's: eth0's address and prefix, up, lo up, the default route.
 * Plain ioctls: enough for one IPv4 interface. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "lib/util.h"

static int if_up(int s, const char *name, vt_err *err)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		return vt_fail_errno(err, errno, "%s", name);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		return vt_fail_errno(err, errno, "%s up", name);
	return 0;
}

static void set_sin(struct sockaddr *sa, in_addr_t addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = addr };
	memcpy(sa, &sin, sizeof(sin));
}

int net_loopback_up(vt_err *err)
{
	cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return vt_fail_errno(err, errno, "socket");
	return if_up(s, "lo", err);
}

static int ip_member(json_object *o, const char *key, in_addr_t *out, vt_err *err)
{
	json_object *v;
	struct in_addr a;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
	    inet_pton(AF_INET, json_object_get_string(v), &a) != 1)
		return vt_fail(err, "net: \"%s\" is not an IPv4 address", key);
	*out = a.s_addr;
	return 0;
}

int net_configure(json_object *msg, vt_err *err)
{
	json_object *v;
	in_addr_t addr, gw = 0;
	if (!json_object_object_get_ex(msg, "ifname", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) >= IFNAMSIZ || !json_object_get_string_len(v))
		return vt_fail(err, "net: bad \"ifname\"");
	const char *ifname = json_object_get_string(v);
	if (ip_member(msg, "addr", &addr, err))
		return -1;
	if (!json_object_object_get_ex(msg, "prefix", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) < 0 || json_object_get_int(v) > 32)
		return vt_fail(err, "net: bad \"prefix\"");
	int prefix = json_object_get_int(v);
	if (json_object_object_get_ex(msg, "gateway", NULL) && ip_member(msg, "gateway", &gw, err))
		return -1;
	cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return vt_fail_errno(err, errno, "socket");
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	set_sin(&ifr.ifr_addr, addr);
	if (ioctl(s, SIOCSIFADDR, &ifr))
		return vt_fail_errno(err, errno, "net: address of %s", ifname);
	set_sin(&ifr.ifr_netmask, prefix ? htonl(~0u << (32 - prefix)) : 0);
	if (ioctl(s, SIOCSIFNETMASK, &ifr))
		return vt_fail_errno(err, errno, "net: netmask of %s", ifname);
	if (if_up(s, ifname, err) || if_up(s, "lo", err))
		return -1;
	if (!gw)
		return 0;
	struct rtentry rt = { .rt_flags = RTF_UP | RTF_GATEWAY, .rt_dev = (char *)ifname };
	set_sin(&rt.rt_dst, 0);
	set_sin(&rt.rt_genmask, 0);
	set_sin(&rt.rt_gateway, gw);
	if (ioctl(s, SIOCADDRT, &rt) && errno != EEXIST)
		return vt_fail_errno(err, errno, "net: default route via %s", ifname);
	return 0;
}
