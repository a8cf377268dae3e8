/* Container networking: each container has its own network namespace, plumbed from the host side.
 *
 *   bridge  the virtus0 bridge, a veth pair per container (host end "vt" + 12 hex digits of a hash of the
 *           id: cnet_veth_name; container end eth0), an address from a private subnet, outbound NAT and -p
 *           publishing in the kernel with nftables (table "ip virtus", through libnftables, one batch per
 *           change; each container's rules carry the comment "virtus:<id>");
 *           containers of one host reach each other by address. The subnet is the bridge's own address: when
 *           virtus0 is missing it is made with $VIRTUS_SUBNET (default 10.99.0.0/16, not podman's 10.88.0.0/16
 *           which its cni-podman0/podman0 bridge takes on the same host; the bridge takes the first address,
 *           10.99.0.1), and an existing bridge's address is always used as it is.
 *           -p also answers connections the host makes to 127.0.0.1 (an output-hook DNAT, route_localnet=1 on
 *           virtus0 and masquerade of 127/8 leaving virtus0: kept in the kernel, no proxy process, for
 *           speed); packets from the bridge to 127/8 are dropped, so route_localnet opens nothing to the
 *           containers. A container reaches the host at the gateway address (services bound to it or to all
 *           addresses); host_loopback also forwards the gateway address to the host's 127.0.0.1.
 *   slirp   libslirp in the container's monitor process, a tap inside the container's namespace; needs no
 *           host changes; -p forwards like `virtus vm run --net user,hostfwd=`.
 *   none    a namespace with only lo.      host  the host's namespace (no namespace of its own).
 *
 * Life of a container's network (called by container/, in this order):
 *   cnet_prepare  before the container exists: checks the host ports are free, reserves an address.
 *                 Fails with a message naming a taken port.
 *   cnet_attach   after the runtime created the container (its init pid exists, stopped before exec):
 *                 plumbs /proc/<pid>/ns/net. slirp starts its thread in the calling process (the monitor).
 *   cnet_detach   when the container stops or is removed: rules, links, address and slirp go. Idempotent.
 *   cnet_gc       at start of every run: removes what a crashed container left (rules/leases whose container
 *                 record is gone).
 * State: the bridge is host-wide, so address leases are too: /run/virtus-net/leases/<addr> (a tmpfs: a reboot
 * ends every lease with its container), each naming the store root, the container id and the holder process
 * (the CLI after prepare, the monitor after attach), under the lock /run/virtus-net/lock. A lease whose
 * container record (<store root>/containers/<id>) is gone and whose holder is dead is reclaimed by cnet_gc,
 * which also deletes that container's rules and veth. Nothing prints.
 *
 * Host ports: cnet_prepare binds every -p port (the check that it is free, with a message naming it) and
 * keeps the bound sockets in lease->port_fds as a reservation for the container's life (a DNAT'd port never
 * reaches them). They are close-on-exec: a monitor that is fork()ed from the CLI inherits them, and the CLI
 * then calls cnet_release_ports() on its own copy; a monitor that exec()s must clear FD_CLOEXEC and get the
 * numbers. cnet_detach closes them. For slirp the ports are only checked in cnet_prepare (bound and closed):
 * libslirp's own listeners take them at cnet_attach. */
#ifndef VIRTUS_CONTAINER_NET_H
#define VIRTUS_CONTAINER_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"

enum cnet_mode { CNET_BRIDGE, CNET_SLIRP, CNET_NONE, CNET_HOST };

struct cnet_port {
	char host_addr[46]; /* "" = all addresses */
	uint16_t host_port, ctr_port;
	bool udp;
};

struct cnet_config {
	enum cnet_mode mode;
	const struct cnet_port *ports;
	size_t n_ports;
	bool host_loopback; /* let the container reach services bound only to the host's loopback */
};

#define CNET_MAX_PORTS 32
#define CNET_SLIRP_ADDR "10.0.2.100"
#define CNET_SLIRP_GW "10.0.2.2"
#define CNET_SLIRP_DNS "10.0.2.3"

/* What cnet_prepare reserved and cnet_attach set up; saved by the caller in the container record as JSON. */
struct cnet_lease {
	char addr[46];    /* the container's address ("" for none/host) */
	char gateway[46];
	struct cnet_slirp *slirp; /* slirp only: the running forwarder, owned by the monitor process */
	int port_fds[CNET_MAX_PORTS]; /* the host ports' reservation sockets (see above) */
	size_t n_port_fds;
	/* What cnet_detach has to undo. A lease cnet_prepare made is exact: bridged says whether the container
	 * is on the bridge, rules whether nftables rules carry its comment. A lease made up afterwards (a dead
	 * monitor's leftovers) is not, and then everything that could exist for the container is looked for.
	 * tap: the bridge port is a VM's tap (in the host's namespace), not a veth whose other end is in the
	 * container's namespace. */
	bool exact, bridged, rules, tap;
};

int cnet_parse_mode(const char *s, enum cnet_mode *out, vt_err *err);
/* "[ADDR:]HOSTPORT:CTRPORT[/tcp|/udp]" */
int cnet_parse_port(const char *spec, struct cnet_port *out, vt_err *err);

int cnet_prepare(const char *store_root, const char *id, const struct cnet_config *c, struct cnet_lease *out,
		 vt_err *err);
int cnet_attach(const char *store_root, const char *id, const struct cnet_config *c, pid_t pid,
		struct cnet_lease *lease, vt_err *err);
/* cnet_detach when every process of the container is gone (the runtime deleted it): a veth is left to the
 * kernel, which destroys the pair with the container's network namespace (deleting it here costs ~17 ms of
 * RCU grace periods in the caller). */
int cnet_detach_exited(const char *store_root, const char *id, struct cnet_lease *lease, vt_err *err);
int cnet_detach(const char *store_root, const char *id, struct cnet_lease *lease, vt_err *err);
int cnet_gc(const char *store_root, vt_err *err);
/* VM isolation, bridge mode: instead of a veth, a persistent tap named as the veth's host end, on the bridge,
 * with the container's rules; the VMM opens it by name and the guest's agent sets lease->addr/prefix and the
 * route via lease->gateway on eth0. cnet_detach removes it like a veth. */
int cnet_attach_tap(const char *store_root, const char *id, const struct cnet_config *c, struct cnet_lease *lease,
		    char tap[16], unsigned *prefix, vt_err *err);
/* VM isolation through the OCI runtime: the network namespace a caller prepared (podman's, a veth with the
 * container's address in it) carried into the VM, as Kata's "tcfilter" model does. The calling process
 * enters the namespace at path for good (the VMM it starts next opens the tap there); the namespace's first
 * Ethernet link with an IPv4 address gets a tap beside it, with tc redirects both ways, so the guest's NIC
 * (given the link's MAC) takes the link's place on the wire, with its address, prefix and default gateway.
 * A namespace with no such link leaves *l empty (tap[0] == 0): the VM has its loopback only. */
struct cnet_vm_link {
	char ifname[16];          /* the link the guest stands in for ("eth0") */
	int ifindex;
	uint8_t mac[6];
	struct in_addr addr, gateway;   /* gateway 0.0.0.0: no default route */
	unsigned prefix;
	char tap[16];
};
#define CNET_VM_TAP "virtus-vm0"
/* record (NULL: none), for an owner that may be killed before it detaches (the runtime's shim): what detach
 * needs (the namespace's path and identity, the link, the tap) is written to that file before the tap is made,
 * so that another process (the runtime's delete) can undo it with cnet_vm_netns_release, from any namespace.
 * A failed attach leaves neither the set-up nor the record. */
int cnet_vm_netns_attach(const char *path, const char *record, struct cnet_vm_link *l, vt_err *err);
/* Undo it (from the same namespace): the tap and the link's ingress qdisc go. Idempotent. */
void cnet_vm_netns_detach(struct cnet_vm_link *l);
/* release removes the record's file; no file, nothing to do. */
void cnet_vm_netns_release(const char *file);

/* The host end of a container's veth (bridge mode). */
void cnet_veth_name(const char *id, char out[16]);
/* Close the port reservation sockets held in this process (the CLI, after the monitor took its copies). */
void cnet_release_ports(struct cnet_lease *lease);

#endif
