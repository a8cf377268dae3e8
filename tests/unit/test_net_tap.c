/* The tap backend on this host's real /dev/net/tun (needs CAP_NET_ADMIN; skipped with the reason if absent):
 * a frame the driver transmits comes out of the tap (seen by a packet socket on it), a frame sent into
 * the tap reaches the driver's rx buffer, a busy tap and a non-tap name are refused with clear messages,
 * and the kernel-created tap vanishes when the device is destroyed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/net.h"
#include "net/backend.h"
#include "vdev_harness.h"

#define TEST_ETHERTYPE 0x88b5 /* IEEE local experimental: nothing else on the link uses it */

static void tap_name(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "vt%s%d", tag, (int)getpid() % 100000);
}

static void link_up(const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

static int packet_socket(const char *name)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	assert_true(s >= 0);
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				 .sll_ifindex = (int)if_nametoindex(name) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* A broadcast frame with our ethertype and a 200-byte pattern. */
static void test_frame(uint8_t *f, uint8_t seed)
{
	memset(f, 0xff, 6);
	static const uint8_t src[6] = { 0x52, 0x54, 0x00, 0x99, 0x99, 0x99 };
	memcpy(f + 6, src, 6);
	f[12] = TEST_ETHERTYPE >> 8, f[13] = TEST_ETHERTYPE & 0xff;
	for (int i = 14; i < 214; i++)
		f[i] = (uint8_t)(i + seed);
}

/* The next frame with our ethertype on s within two seconds; its length, or -1. */
static ssize_t wait_test_frame(int s, uint8_t *buf, size_t cap)
{
	for (int tries = 0; tries < 50; tries++) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 2000) <= 0)
			return -1;
		ssize_t r = recv(s, buf, cap, 0);
		if (r >= 14 && buf[12] == (TEST_ETHERTYPE >> 8) && buf[13] == (TEST_ETHERTYPE & 0xff))
			return r;
	}
	return -1;
}

static void frames_cross_the_tap_both_ways(void **state)
{
	(void)state;
	char name[IFNAMSIZ];
	tap_name(name, sizeof(name), "a");
	assert_int_equal(if_nametoindex(name), 0);
	char spec[64];
	snprintf(spec, sizeof(spec), "tap=%s", name);
	struct net_opts o;
	vt_err err = { 0 };
	assert_int_equal(net_opts_parse(spec, &o, &err), 0);
	struct virtio_device *d;
	if (virtio_net_create(&o, &d, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(if_nametoindex(name) != 0); /* the kernel made it */
	struct harness h;
	h_init(&h);
	h_plug(&h, d);
	h_driver_ok(&h, (1u << VIRTIO_NET_F_CSUM) | (1u << VIRTIO_NET_F_GUEST_CSUM) | (1u << VIRTIO_NET_F_MRG_RXBUF));
	link_up(name);
	int ps = packet_socket(name);

	/* guest -> tap */
	uint8_t *buf = h.ram + H_BUF;
	memset(buf, 0, VIRTIO_NET_HDR_LEN);
	test_frame(buf + VIRTIO_NET_HDR_LEN, 1);
	h_post(&h, VIRTIO_NET_TXQ, H_BUF, VIRTIO_NET_HDR_LEN + 214, 0);
	h_kick(&h, VIRTIO_NET_TXQ);
	uint8_t got[2048];
	assert_int_equal(wait_test_frame(ps, got, sizeof(got)), 214);
	assert_memory_equal(got, buf + VIRTIO_NET_HDR_LEN, 214);

	/* tap -> guest */
	for (unsigned i = 0; i < 8; i++)
		h_post(&h, VIRTIO_NET_RXQ, H_BUF + 0x10000 + 0x1000 * i, 2048, VIRTQ_DESC_F_WRITE);
	h_kick(&h, VIRTIO_NET_RXQ);
	uint8_t frame[214];
	test_frame(frame, 2);
	assert_int_equal(send(ps, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
	bool found = false;
	for (int tries = 0; tries < 20 && !found; tries++) {
		struct pollfd p = { .fd = virtio_net_rx_fd(d), .events = POLLIN };
		poll(&p, 1, 100);
		virtio_net_rx_ready(d);
		for (unsigned i = 0; i < h_used_idx(&h, VIRTIO_NET_RXQ) && i < 8; i++) {
			const uint8_t *f = h.ram + H_BUF + 0x10000 + 0x1000 * i + VIRTIO_NET_HDR_LEN;
			if (h_used_len(&h, VIRTIO_NET_RXQ, i) == VIRTIO_NET_HDR_LEN + sizeof(frame) &&
			    !memcmp(f, frame, sizeof(frame)))
				found = true;
		}
	}
	assert_true(found);
	close(ps);

	/* A second user of the same tap is refused. */
	struct net_backend *be;
	assert_int_equal(net_tap_create(&o, &be, &err), -1);
	assert_non_null(strstr(err.msg, "busy"));

	h_fini(&h, virtio_net_destroy);
	assert_int_equal(if_nametoindex(name), 0); /* gone with its fd */
}

static void a_non_tap_name_is_refused(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err = { 0 };
	assert_int_equal(net_opts_parse("tap=lo", &o, &err), 0);
	struct net_backend *be;
	assert_int_equal(net_tap_create(&o, &be, &err), -1);
	assert_non_null(strstr(err.msg, "lo exists and is not"));
}

static void an_existing_persistent_tap_is_attached(void **state)
{
	(void)state;
	char name[IFNAMSIZ];
	tap_name(name, sizeof(name), "p");
	/* Make a persistent tap the way `ip tuntap add` does. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct ifreq ifr = { 0 };
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(fd, TUNSETPERSIST, 1), 0);
	close(fd);
	struct net_opts o;
	vt_err err = { 0 };
	char spec[64];
	snprintf(spec, sizeof(spec), "tap=%s", name);
	assert_int_equal(net_opts_parse(spec, &o, &err), 0);
	struct net_backend *be;
	int rc = net_tap_create(&o, &be, &err);
	if (rc == 0)
		be->destroy(be);
	bool still_there = if_nametoindex(name) != 0;
	/* Clean up before asserting, so a failure leaves nothing behind. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0)
		ioctl(fd, TUNSETPERSIST, 0);
	close(fd);
	if (rc < 0)
		fail_msg("%s", err.msg);
	assert_true(still_there);                  /* persistent: it stays after we let go */
	assert_int_equal(if_nametoindex(name), 0); /* and our cleanup removed it */
}

static const char *why_not_runnable(void)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "/dev/net/tun";
	struct ifreq ifr = { 0 };
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "vtprobe%d", (int)getpid() % 100000);
	int rc = ioctl(fd, TUNSETIFF, &ifr);
	close(fd);
	return rc < 0 ? "CAP_NET_ADMIN (creating a tap failed)" : NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_cross_the_tap_both_ways),
		cmocka_unit_test(a_non_tap_name_is_refused),
		cmocka_unit_test(an_existing_persistent_tap_is_attached),
	};
	const char *why = why_not_runnable();
	if (why) {
		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			printf("ok - %s # skip needs %s\n", tests[i].name, why);
		return 0;
	}
	return cmocka_run_group_tests_name("net_tap", tests, NULL, NULL);
}
