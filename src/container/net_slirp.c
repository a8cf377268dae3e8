/* slirp mode: a tap inside the container's namespace, served by libslirp in the calling (monitor) process.
 *
 * The tap is opened from the container's namespace (the calling thread enters it, opens /dev/net/tun and a
 * netlink socket there, and comes back), so the device lives in the container while its fd is ours. The
 * libslirp side is src/net/slirp.c, the VMM's `--net user` backend, unchanged: frames from the tap go to its
 * send(), frames it delivers are written to the tap. One reader thread moves tap -> slirp; libslirp's own
 * thread moves slirp -> tap. The reader ends at cnet_detach, or by itself when the tap fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"
#include "net/backend.h"

#define TAP_NAME "tap0"
#define FRAME_MAX 65536

struct cnet_slirp {
	int tap;
	int stop_fd;
	struct net_backend *be;
	pthread_t reader;
	bool reader_started;
};

/* Called by libslirp's thread: a frame for the container. A full tap queue drops it, like a wire. */
static void deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct cnet_slirp *s = opaque;
	if (write(s->tap, frame, len) < 0) {
		/* EAGAIN or the namespace is gone: the frame is lost */
	}
}

static void *reader(void *arg)
{
	struct cnet_slirp *s = arg;
	cleanup_free uint8_t *buf = malloc(FRAME_MAX);
	struct pollfd pfd[2] = { { .fd = s->tap, .events = POLLIN }, { .fd = s->stop_fd, .events = POLLIN } };
	while (buf) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents || (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		ssize_t n = read(s->tap, buf, FRAME_MAX);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		s->be->send(s->be, buf, (size_t)n);
	}
	return NULL;
}

/* Inside the namespace of pid: the tap and a netlink socket there. */
static int open_tap_in(pid_t pid, int *tap, int *nl, vt_err *err)
{
	int home;
	if (netns_enter_pid(pid, &home, err) < 0)
		return -1;
	int rc = 0;
	*tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP_NAME);
	if (*tap < 0)
		rc = vt_fail_errno(err, errno, "opening /dev/net/tun");
	else if (ioctl(*tap, TUNSETIFF, &ifr) < 0)
		rc = vt_fail_errno(err, errno, "creating %s in the container", TAP_NAME);
	else if ((*nl = nl_open(err)) < 0)
		rc = -1;
	netns_return(home);
	return rc;
}

static int configure_tap(int nl, vt_err *err)
{
	struct in_addr addr, gw;
	inet_pton(AF_INET, CNET_SLIRP_ADDR, &addr);
	inet_pton(AF_INET, CNET_SLIRP_GW, &gw);
	int index = nl_link_index(nl, TAP_NAME, err);
	if (index <= 0)
		return index < 0 ? -1 : vt_fail(err, "%s vanished", TAP_NAME);
	if (nl_addr_add(nl, index, addr, 24, err) < 0 || nl_link_up(nl, TAP_NAME, err) < 0 ||
	    nl_route_default(nl, gw, err) < 0)
		return -1;
	return 0;
}

static void slirp_opts(const struct cnet_config *c, struct net_opts *o)
{
	*o = (struct net_opts){ .kind = NET_USER, .host_loopback = c->host_loopback };
	for (size_t i = 0; i < c->n_ports && i < NET_MAX_HOSTFWD; i++) {
		const struct cnet_port *p = &c->ports[i];
		struct net_hostfwd *f = &o->fwd[o->nfwd++];
		f->udp = p->udp;
		f->host_addr.s_addr = htonl(INADDR_ANY); /* like podman: all addresses unless one is given */
		if (p->host_addr[0])
			inet_pton(AF_INET, p->host_addr, &f->host_addr);
		f->host_port = p->host_port;
		inet_pton(AF_INET, CNET_SLIRP_ADDR, &f->guest_addr);
		f->guest_port = p->ctr_port;
	}
}

int cnet_slirp_start(pid_t pid, const struct cnet_config *c, struct cnet_slirp **out, vt_err *err)
{
	*out = NULL;
	if (c->n_ports > NET_MAX_HOSTFWD)
		return vt_fail(err, "slirp publishes at most %d ports", NET_MAX_HOSTFWD);
	struct cnet_slirp *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail(err, "out of memory");
	s->tap = s->stop_fd = -1;
	cleanup_close int nl = -1;
	struct net_opts o;
	slirp_opts(c, &o);
	if (open_tap_in(pid, &s->tap, &nl, err) < 0 || configure_tap(nl, err) < 0)
		goto fail;
	if ((s->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		vt_fail_errno(err, errno, "eventfd");
		goto fail;
	}
	if (net_slirp_create(&o, (struct net_sink){ .deliver = deliver, .opaque = s }, &s->be, err) < 0)
		goto fail;
	int rc = pthread_create(&s->reader, NULL, reader, s);
	if (rc) {
		vt_fail_errno(err, rc, "starting the slirp reader thread");
		goto fail;
	}
	s->reader_started = true;
	*out = s;
	return 0;
fail:
	vt_err_prefix(err, "slirp");
	cnet_slirp_stop(s);
	return -1;
}

void cnet_slirp_stop(struct cnet_slirp *s)
{
	if (!s)
		return;
	if (s->reader_started) {
		uint64_t one = 1;
		if (write(s->stop_fd, &one, sizeof(one)) < 0) {
			/* cannot happen with an eventfd below its maximum */
		}
		pthread_join(s->reader, NULL);
	}
	if (s->be)
		s->be->destroy(s->be); /* no deliver() after this: the tap can go */
	if (s->tap >= 0)
		close(s->tap);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s);
}
