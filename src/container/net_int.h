/* Internals of container networking shared by the net_*.c files (not a contract: only net.h is). */
#ifndef VIRTUS_CONTAINER_NET_INT_H
#define VIRTUS_CONTAINER_NET_INT_H

#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "container/net.h"
#include "lib/err.h"

#define CNET_BRIDGE_NAME "virtus0"

/* ---- rtnetlink (net_nl.c): one NETLINK_ROUTE socket, bound to the network namespace it was made in. ---- */
int nl_open(vt_err *err);
/* Send one request on a netlink socket of any family and read the answer: each message to on_msg, until the
 * dump's end or the ack. 0, or -errno (the kernel's). */
int nl_exchange(int nl, const struct nlmsghdr *msg, void (*on_msg)(struct nlmsghdr *, void *), void *opaque);
/* A NETLINK_ROUTE socket inside the network namespace of pid (the calling thread enters it and comes back). */
/* Move the calling thread into pid's network namespace; *home is the way back, for netns_return (which
 * aborts if it cannot return: the thread must never go on in the wrong namespace). */
int netns_enter_pid(pid_t pid, int *home, vt_err *err);
void netns_return(int home);
int nl_open_in_pid_netns(pid_t pid, vt_err *err);
/* The index of a link by name, 0 when there is none, -1 on error. */
int nl_link_index(int nl, const char *name, vt_err *err);
int nl_link_up(int nl, const char *name, vt_err *err);
/* Wait until the kernel has made the link operational (its carrier is on and its queue attached): packets
 * sent before are dropped, so the container's first connection would wait for a retransmission. */
int nl_link_wait_running(int nl, const char *name, unsigned timeout_ms, vt_err *err);
int nl_bridge_create(int nl, const char *name, vt_err *err);
int nl_link_set_master(int nl, const char *name, int master_index, vt_err *err);
/* A veth pair: host_name in this namespace under master_index, peer_name in the namespace of netns_fd. */
int nl_veth_create(int nl, const char *host_name, int master_index, const char *peer_name, int netns_fd,
		   vt_err *err);
/* Delete a link by name; a missing link is not an error. */
int nl_link_del(int nl, const char *name, vt_err *err);
int nl_addr_add(int nl, int ifindex, struct in_addr addr, unsigned prefix, vt_err *err);
/* The first IPv4 address of a link (and its prefix length); 0 when found, 1 when it has none. */
int nl_addr_get(int nl, int ifindex, struct in_addr *addr, unsigned *prefix, vt_err *err);
int nl_route_default(int nl, struct in_addr gw, vt_err *err);
/* A link of a network namespace, as nl_link_find_ipv4 finds it. */
struct nl_link_info {
	int index;
	char name[16];
	uint8_t mac[6];
};
/* The first Ethernet link (not loopback) with an IPv4 address, and that address: 0 found, 1 none. */
int nl_link_find_ipv4(int nl, struct nl_link_info *out, struct in_addr *addr, unsigned *prefix, vt_err *err);
/* The gateway of the main table's IPv4 default route out of ifindex: 0 found, 1 none (*gw is 0.0.0.0). */
int nl_route_default_get(int nl, int ifindex, struct in_addr *gw, vt_err *err);
/* Add (or delete, where a missing one is no error) the ingress qdisc of a link. */
int nl_tc_ingress(int nl, int ifindex, bool add, vt_err *err);
/* Every frame that arrives on from_index goes out of to_index instead (tc u32 match-all, mirred egress
 * redirect, stolen): the link's ingress qdisc must exist. */
int nl_tc_redirect(int nl, int from_index, int to_index, vt_err *err);
/* A persistent tap (IFF_VNET_HDR, as the VMM opens it) in the calling thread's network namespace. */
int cnet_make_tap(const char *name, vt_err *err);

#define CNET_RUN_DIR "/run/virtus-net"   /* leases, their lock, the table's mark (tmpfs: gone at boot) */

/* ---- helpers (net.c) ---- */
int cnet_sysctl_write(const char *path, const char *value, vt_err *err);

/* ---- nftables (net_nft.c): table ip virtus ---- */
int cnet_nft_ensure_table(struct in_addr subnet, unsigned prefix, vt_err *err);
/* *added: rules were added (-p ports, host_loopback); none is no nftables call at all. */
int cnet_nft_add_container(const char *id, struct in_addr addr, struct in_addr gw, const struct cnet_config *c,
			   bool *added, vt_err *err);
int cnet_nft_del_container(const char *id, vt_err *err);

/* ---- leases (net_lease.c) ---- */
int cnet_lease_take(const char *store_root, const char *id, struct in_addr subnet, unsigned prefix,
		    struct in_addr gw, struct in_addr *out, vt_err *err);
/* Record the calling process as the lease's holder (the monitor, after attach). */
int cnet_lease_set_holder(const char *id, vt_err *err);
int cnet_lease_drop(const char *id, vt_err *err);
/* Calls reclaim(store_root, id) for every lease whose container record is gone and holder dead, then
 * drops it. */
int cnet_lease_gc(const char *store_root, int (*reclaim)(const char *id, vt_err *err), vt_err *err);

/* ---- bridge (net_bridge.c) ---- */
int cnet_bridge_prepare(const char *store_root, const char *id, struct cnet_lease *out, vt_err *err);
int cnet_bridge_attach(const char *store_root, const char *id, const struct cnet_config *c, pid_t pid,
		       struct cnet_lease *lease, vt_err *err);
/* Everything of one container: its rules, its veth, its lease. Idempotent. */
int cnet_bridge_detach(const char *id, vt_err *err);
/* The same with what is known: rules (false: none to look for), veth (false: the kernel removes it with the
 * container's namespace). */
int cnet_bridge_detach_known(const char *id, bool rules, bool veth, vt_err *err);

/* ---- slirp (net_slirp.c) ---- */
int cnet_slirp_start(pid_t pid, const struct cnet_config *c, struct cnet_slirp **out, vt_err *err);
void cnet_slirp_stop(struct cnet_slirp *s);

/* ---- host ports (net_ports.c) ---- */
int cnet_ports_reserve(const struct cnet_config *c, struct cnet_lease *out, vt_err *err);

#endif
