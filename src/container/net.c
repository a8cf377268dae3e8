/* Container networking: the life of a container's network (see net.h), dispatched by mode. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

int cnet_sysctl_write(const char *path, const char *value, vt_err *err)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "opening %s", path);
	if (write_all(fd, value, strlen(value)) < 0)
		return vt_fail_errno(err, errno, "writing %s", path);
	return 0;
}

void cnet_veth_name(const char *id, char out[16])
{
	/* A hash of the whole id: ids that share a prefix still get different names. */
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	snprintf(out, 16, "vt%012llx", (unsigned long long)(h & 0xffffffffffffULL));
}

static void lease_init(struct cnet_lease *out)
{
	*out = (struct cnet_lease){ .n_port_fds = 0 };
	for (size_t i = 0; i < CNET_MAX_PORTS; i++)
		out->port_fds[i] = -1;
}

void cnet_release_ports(struct cnet_lease *lease)
{
	for (size_t i = 0; i < lease->n_port_fds; i++) {
		if (lease->port_fds[i] >= 0)
			close(lease->port_fds[i]);
		lease->port_fds[i] = -1;
	}
	lease->n_port_fds = 0;
}

static int check_config(const struct cnet_config *c, vt_err *err)
{
	if (c->n_ports > CNET_MAX_PORTS)
		return vt_fail(err, "too many published ports (at most %d)", CNET_MAX_PORTS);
	if (c->n_ports && (c->mode == CNET_NONE || c->mode == CNET_HOST))
		return vt_fail(err, "-p needs --network bridge or slirp (with '%s' there is nothing to publish)",
			       c->mode == CNET_NONE ? "none" : "host");
	for (size_t i = 0; i < c->n_ports; i++) {
		if (strchr(c->ports[i].host_addr, ':'))
			return vt_fail(err, "port %u: IPv6 host addresses (%s) are not supported yet",
				       c->ports[i].host_port, c->ports[i].host_addr);
	}
	return 0;
}

int cnet_prepare(const char *store_root, const char *id, const struct cnet_config *c, struct cnet_lease *out,
		 vt_err *err)
{
	lease_init(out);
	if (check_config(c, err) < 0 || cnet_ports_reserve(c, out, err) < 0)
		return -1;
	int rc = 0;
	out->exact = true;
	switch (c->mode) {
	case CNET_BRIDGE:
		out->bridged = true;
		rc = cnet_bridge_prepare(store_root, id, out, err);
		break;
	case CNET_SLIRP:
		/* Checked, not held: libslirp listens on the ports itself at attach, and copies of a held socket
		 * would live on in the container's init until it execs. */
		cnet_release_ports(out);
		snprintf(out->addr, sizeof(out->addr), "%s", CNET_SLIRP_ADDR);
		snprintf(out->gateway, sizeof(out->gateway), "%s", CNET_SLIRP_GW);
		break;
	case CNET_NONE:
	case CNET_HOST:
		break;
	}
	if (rc < 0)
		cnet_release_ports(out);
	return rc;
}

/* none: the namespace has only lo, which starts down. */
static int loopback_up(pid_t pid, vt_err *err)
{
	cleanup_close int nl = nl_open_in_pid_netns(pid, err);
	if (nl < 0 || nl_link_up(nl, "lo", err) < 0)
		return vt_err_prefix(err, "container network");
	return 0;
}

int cnet_attach(const char *store_root, const char *id, const struct cnet_config *c, pid_t pid,
		struct cnet_lease *lease, vt_err *err)
{
	switch (c->mode) {
	case CNET_HOST:
		return 0;
	case CNET_NONE:
		return loopback_up(pid, err);
	case CNET_BRIDGE:
		if (loopback_up(pid, err) < 0 || cnet_bridge_attach(store_root, id, c, pid, lease, err) < 0) {
			vt_err ignored;
			cnet_bridge_detach(id, &ignored);
			return -1;
		}
		return 0;
	case CNET_SLIRP:
		cnet_release_ports(lease); /* (none are held: see prepare) */
		if (loopback_up(pid, err) < 0)
			return -1;
		return cnet_slirp_start(pid, c, &lease->slirp, err);
	}
	return vt_fail(err, "unknown network mode %d", (int)c->mode);
}

static int detach(const char *id, struct cnet_lease *lease, bool exited, vt_err *err)
{
	cnet_release_ports(lease);
	if (lease->slirp) {
		cnet_slirp_stop(lease->slirp);
		lease->slirp = NULL;
	}
	if (!lease->exact)
		return cnet_bridge_detach(id, err);
	if (!lease->bridged)
		return 0;
	return cnet_bridge_detach_known(id, lease->rules, !exited || lease->tap, err);
}

int cnet_detach(const char *store_root, const char *id, struct cnet_lease *lease, vt_err *err)
{
	(void)store_root;
	return detach(id, lease, false, err);
}

int cnet_detach_exited(const char *store_root, const char *id, struct cnet_lease *lease, vt_err *err)
{
	(void)store_root;
	return detach(id, lease, true, err);
}

int cnet_gc(const char *store_root, vt_err *err)
{
	return cnet_lease_gc(store_root, cnet_bridge_detach, err);
}
