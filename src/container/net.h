/* Container networking: each container has its own network namespace, plumbed from the host side.
 *
 *   bridge  the virtus0 bridge, a veth pair per container, an address from a private subnet (10.88.0.0/16 by
 *           default), outbound NAT and -p publishing in the kernel with nftables (table "inet virtus", through
 *           libnftables); containers of one host reach each other by address.
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
 * State (leases, which rules belong to which container) lives under <store root>/net/. Nothing prints. */
#ifndef VIRTUS_CONTAINER_NET_H
#define VIRTUS_CONTAINER_NET_H

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

/* What cnet_prepare reserved and cnet_attach set up; saved by the caller in the container record as JSON. */
struct cnet_lease {
	char addr[46];    /* the container's address ("" for none/host) */
	char gateway[46];
	struct cnet_slirp *slirp; /* slirp only: the running forwarder, owned by the monitor process */
};

int cnet_parse_mode(const char *s, enum cnet_mode *out, vt_err *err);
/* "[ADDR:]HOSTPORT:CTRPORT[/tcp|/udp]" */
int cnet_parse_port(const char *spec, struct cnet_port *out, vt_err *err);

int cnet_prepare(const char *store_root, const char *id, const struct cnet_config *c, struct cnet_lease *out,
		 vt_err *err);
int cnet_attach(const char *store_root, const char *id, const struct cnet_config *c, pid_t pid,
		struct cnet_lease *lease, vt_err *err);
int cnet_detach(const char *store_root, const char *id, struct cnet_lease *lease, vt_err *err);
int cnet_gc(const char *store_root, vt_err *err);

#endif
