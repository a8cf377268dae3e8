/* The TAP backend: frames with their virtio-net header go straight to and from /dev/net/tun.
 *
 * The tap fd is non-blocking and read and written by the device thread itself (the event loop watches it):
 * a write to a tap never blocks (the kernel queues or drops, like a NIC), and a read happens only when the
 * fd is readable, so a thread of its own would add a hand-off and a copy without removing any wait. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "lib/util.h"
#include "net/backend.h"

struct tap_backend {
	struct net_backend be;
	int fd;
	char name[IFNAMSIZ];
};

#define to_tap(b) ((struct tap_backend *)(b))

static ssize_t tap_sendv(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
	ssize_t r;
	do
		r = writev(to_tap(be)->fd, iov, iovcnt);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t tap_recv(struct net_backend *be, uint8_t *buf, size_t cap)
{
	ssize_t r;
	do
		r = read(to_tap(be)->fd, buf, cap);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The TUN_F_* flags for the GUEST_* features; segmentation only together with checksum offload (the spec
 * makes the GUEST_TSO features depend on GUEST_CSUM, and the kernel refuses TSO without CSUM). */
static unsigned tun_offload_flags(uint64_t f)
{
	if (!(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	unsigned t = TUN_F_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		t |= TUN_F_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		t |= TUN_F_TSO6;
	if ((t & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & (1ULL << VIRTIO_NET_F_GUEST_ECN)))
		t |= TUN_F_TSO_ECN;
	return t;
}

static int tap_set_offload(struct net_backend *be, uint64_t guest_features, vt_err *err)
{
	struct tap_backend *t = to_tap(be);
	if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)tun_offload_flags(guest_features)) < 0)
		return vt_fail_errno(err, errno, "tap %s: TUNSETOFFLOAD", t->name);
	return 0;
}

static void tap_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	/* Unused: the device always writes with a header through sendv. */
	(void)be, (void)frame, (void)len;
}

static void tap_destroy(struct net_backend *be)
{
	struct tap_backend *t = to_tap(be);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

static int attach(struct tap_backend *t, vt_err *err)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	/* No IFF_ONE_QUEUE (obsolete, ignored by the kernel) and no IFF_NAPI (a kernel test aid that feeds the
	 * frames we write through NAPI; nothing in it for a VMM). */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	strcpy(ifr.ifr_name, t->name);
	bool existed = if_nametoindex(t->name) != 0;
	if (ioctl(t->fd, TUNSETIFF, &ifr) == 0)
		return 0;
	int e = errno;
	if (e == EBUSY)
		return vt_fail(err, "tap %s is busy (another process has it open)", t->name);
	if (e == EPERM)
		return vt_fail(err, "tap %s: not permitted (needs CAP_NET_ADMIN, or a persistent tap owned by this "
			       "user)", t->name);
	if (e == EINVAL && existed)
		return vt_fail(err, "%s exists and is not a single-queue tap device", t->name);
	return vt_fail_errno(err, e, "tap %s: TUNSETIFF", t->name);
}

static int configure(struct tap_backend *t, vt_err *err)
{
	unsigned features = 0;
	if (ioctl(t->fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR))
		return vt_fail(err, "/dev/net/tun does not support IFF_VNET_HDR");
	if (attach(t, err) < 0)
		return -1;
	int hdr = VIRTIO_NET_HDR_LEN;
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return vt_fail_errno(err, errno, "tap %s: TUNSETVNETHDRSZ", t->name);
	/* Nothing offloaded until the driver says what it accepts (virtio_net activate). */
	if (ioctl(t->fd, TUNSETOFFLOAD, 0UL) < 0)
		return vt_fail_errno(err, errno, "tap %s: TUNSETOFFLOAD", t->name);
	int fl = fcntl(t->fd, F_GETFL);
	if (fl < 0 || fcntl(t->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return vt_fail_errno(err, errno, "tap %s: O_NONBLOCK", t->name);
	return 0;
}

int net_tap_create(const struct net_opts *o, struct net_backend **out, vt_err *err)
{
	struct tap_backend *t = calloc(1, sizeof(*t));
	if (!t)
		return vt_fail_errno(err, ENOMEM, "tap");
	snprintf(t->name, sizeof(t->name), "%s", o->ifname);
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (t->fd < 0) {
		vt_fail_errno(err, errno, "tap %s: open /dev/net/tun", t->name);
		tap_destroy(&t->be);
		return -1;
	}
	if (configure(t, err) < 0) {
		tap_destroy(&t->be);
		return -1;
	}
	t->be = (struct net_backend){
		.send = tap_send, .destroy = tap_destroy, .vnet_hdr = true, .rx_fd = t->fd,
		.sendv = tap_sendv, .recv = tap_recv, .set_offload = tap_set_offload,
	};
	*out = &t->be;
	return 0;
}
