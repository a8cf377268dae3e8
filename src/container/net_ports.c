/* Host ports of -p: bound here, in the CLI, so that a taken port fails the run before anything exists, and
 * kept bound as the container's reservation: another program cannot take the port while the
 * container has it, and the kernel's DNAT sends the published traffic past these sockets to the container. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

static int bind_port(const struct cnet_port *p, vt_err *err)
{
	const char *proto = p->udp ? "udp" : "tcp";
	const char *addr = p->host_addr[0] ? p->host_addr : "0.0.0.0";
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->host_port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return vt_fail(err, "port %u/%s: '%s' is not an IPv4 address", p->host_port, proto, addr);
	int fd = socket(AF_INET, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "port %u/%s: socket", p->host_port, proto);
	/* Only a live socket counts as taken, not a connection in TIME_WAIT. */
	int one = 1;
	if (!p->udp)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE)
			return vt_fail(err, "port %u/%s on %s is already in use", p->host_port, proto, addr);
		if (e == EADDRNOTAVAIL)
			return vt_fail(err, "port %u/%s: %s is not an address of this host", p->host_port, proto, addr);
		return vt_fail_errno(err, e, "port %u/%s on %s", p->host_port, proto, addr);
	}
	/* A bound TCP socket only conflicts with another bind when one of them listens (SO_REUSEADDR): listen,
	 * so that the port is really held. Nothing is ever accepted: DNAT takes the traffic before it. */
	if (!p->udp && listen(fd, 1) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE)
			return vt_fail(err, "port %u/%s on %s is already in use", p->host_port, proto, addr);
		return vt_fail_errno(err, e, "port %u/%s on %s", p->host_port, proto, addr);
	}
	return fd;
}

static bool same_port(const struct cnet_port *a, const struct cnet_port *b)
{
	return a->host_port == b->host_port && a->udp == b->udp &&
	       (!a->host_addr[0] || !b->host_addr[0] || strcmp(a->host_addr, b->host_addr) == 0);
}

int cnet_ports_reserve(const struct cnet_config *c, struct cnet_lease *out, vt_err *err)
{
	for (size_t i = 0; i < c->n_ports; i++) {
		for (size_t j = 0; j < i; j++) {
			if (same_port(&c->ports[i], &c->ports[j])) {
				cnet_release_ports(out);
				return vt_fail(err, "port %u/%s is published twice", c->ports[i].host_port,
					       c->ports[i].udp ? "udp" : "tcp");
			}
		}
		int fd = bind_port(&c->ports[i], err);
		if (fd < 0) {
			cnet_release_ports(out);
			return -1;
		}
		out->port_fds[out->n_port_fds++] = fd;
	}
	return 0;
}
