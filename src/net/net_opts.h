/* --net option syntax: `user[,hostfwd=tcp|udp:[HOSTADDR:]HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=XX:..:XX]
 * [,host-loopback=on|off]`
 * or `tap=NAME[,mac=XX:..:XX]`. Parsed once in the CLI (so a typo fails before anything is built) and again when the device is made. */
#ifndef VIRTUS_NET_OPTS_H
#define VIRTUS_NET_OPTS_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

#define NET_MAX_HOSTFWD 16
#define NET_GUEST_ADDR_DEFAULT "10.0.2.15"   /* slirp's first DHCP lease */

struct net_hostfwd {
	bool udp;
	struct in_addr host_addr;    /* default 127.0.0.1: forwards are for this host, not its network */
	uint16_t host_port;
	struct in_addr guest_addr;   /* default NET_GUEST_ADDR_DEFAULT */
	uint16_t guest_port;
};

enum net_kind { NET_USER = 1, NET_TAP };

struct net_opts {
	enum net_kind kind;
	char ifname[IFNAMSIZ];       /* NET_TAP: the tap device's name */
	bool mac_set;
	uint8_t mac[6];
	unsigned nfwd;
	struct net_hostfwd fwd[NET_MAX_HOSTFWD];
	bool host_loopback;          /* NET_USER: 10.0.2.2 reaches the host's loopback (off: services bound
				      * only to 127.0.0.1 stay out of the guest's reach, as with rootless podman) */
};

int net_opts_parse(const char *spec, struct net_opts *o, vt_err *err);
/* One hostfwd value ("tcp:8080-:80"), exposed for tests. */
int net_hostfwd_parse(const char *s, struct net_hostfwd *f, vt_err *err);
int net_mac_parse(const char *s, uint8_t mac[6], vt_err *err);
/* Unless a mac= was given: the default MAC of the index-th --net device, stable across runs and different
 * per device: for a tap, derived from its name; for user networking, 52:54:00:12:34:56 + index (slirp's
 * network is private to the VM, so only the VM's own devices must differ). */
void net_opts_default_mac(struct net_opts *o, unsigned index);
/* A locally administered unicast MAC derived from a name (the tap's): 52:54:00 and three bytes of its hash,
 * the same on every run, different for different names. */
void net_mac_from_name(const char *name, uint8_t mac[6]);

#endif
