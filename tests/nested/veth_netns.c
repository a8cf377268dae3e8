/* A test helper for the nested bed, where no iproute2 is at hand: a network namespace prepared as podman
 * prepares one for a container. A veth pair: HOST_IF here with HOST_ADDR/PREFIX, its peer eth0 in the
 * network namespace of PID with CTR_ADDR/PREFIX, up, and a default route via HOST_ADDR (lo up too).
 *   veth_netns PID HOST_IF HOST_ADDR CTR_ADDR PREFIX
 * Exit status 0, or 1 with the reason on stderr. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "container/net_int.h"

static int fail(const vt_err *err)
{
	fprintf(stderr, "veth_netns: %s\n", err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	vt_err err = { 0 };
	struct in_addr host, ctr;
	if (argc != 6 || inet_pton(AF_INET, argv[3], &host) != 1 || inet_pton(AF_INET, argv[4], &ctr) != 1) {
		fprintf(stderr, "usage: veth_netns PID HOST_IF HOST_ADDR CTR_ADDR PREFIX\n");
		return 2;
	}
	pid_t pid = (pid_t)atoi(argv[1]);
	unsigned prefix = (unsigned)atoi(argv[5]);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	int ns = open(path, O_RDONLY | O_CLOEXEC), nl = nl_open(&err);
	if (ns < 0 || nl < 0)
		return ns < 0 ? (perror(path), 1) : fail(&err);
	if (nl_veth_create(nl, argv[2], 0, "eth0", ns, &err) < 0 ||
	    nl_addr_add(nl, nl_link_index(nl, argv[2], &err), host, prefix, &err) < 0 || nl_link_up(nl, argv[2], &err) < 0)
		return fail(&err);
	int in = nl_open_in_pid_netns(pid, &err);
	if (in < 0 || nl_link_up(in, "lo", &err) < 0 || nl_link_up(in, "eth0", &err) < 0 ||
	    nl_addr_add(in, nl_link_index(in, "eth0", &err), ctr, prefix, &err) < 0 || nl_route_default(in, host, &err) < 0)
		return fail(&err);
	return 0;
}
