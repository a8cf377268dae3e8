/* virtio-net on a header-carrying backend, driven as a driver would (vdev_harness.h) over a fake backend:
 * a SOCK_SEQPACKET socket pair stands in for the tap fd (one message = one frame with its header). Checks
 * the feature offer, header pass-through both ways, TUNSETOFFLOAD's input following negotiation, merged rx
 * buffers across chains, big-packet mode, and malformed headers dropped and counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/net.h"
#include "net/backend.h"
#include "vdev_harness.h"

#define F(bit) (1u << (bit))
#define ALL_OFFLOADS                                                                                       \
	(F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |                 \
	 F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) | F(VIRTIO_NET_F_HOST_TSO4) |              \
	 F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_HOST_ECN))

struct fake_backend {
	struct net_backend be;
	int fd, peer;                 /* device side, test side */
	int offload_calls;
	uint64_t offload;             /* last set_offload argument */
};

static ssize_t fake_sendv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	return sendmsg(((struct fake_backend *)be)->fd, &m, MSG_DONTWAIT);
}

static ssize_t fake_recv(struct net_backend *be, uint8_t *buf, size_t cap)
{
	return recv(((struct fake_backend *)be)->fd, buf, cap, MSG_DONTWAIT);
}

static int fake_set_offload(struct net_backend *be, uint64_t f, vt_err *err)
{
	(void)err;
	struct fake_backend *fb = (struct fake_backend *)be;
	fb->offload_calls++;
	fb->offload = f;
	return 0;
}

static void fake_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	(void)be, (void)frame, (void)len;
	fail_msg("send() used on a header-carrying backend");
}

static void fake_destroy(struct net_backend *be)
{
	struct fake_backend *fb = (struct fake_backend *)be;
	close(fb->fd);
	close(fb->peer);
	free(fb);
}

struct rig {
	struct harness h;
	struct fake_backend *fb;
};

static void rig_up(struct rig *r, uint32_t features)
{
	struct fake_backend *fb = calloc(1, sizeof(*fb));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	fb->fd = sv[0], fb->peer = sv[1];
	fb->be = (struct net_backend){ .send = fake_send, .destroy = fake_destroy, .vnet_hdr = true,
				       .rx_fd = sv[0], .sendv = fake_sendv, .recv = fake_recv,
				       .set_offload = fake_set_offload };
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user,mac=52:54:00:00:00:01", &o, &err), 0);
	struct virtio_device *d;
	assert_int_equal(virtio_net_create_on(&o, &fb->be, &d, &err), 0);
	h_init(&r->h);
	h_plug(&r->h, d);
	r->fb = fb;
	h_driver_ok(&r->h, features);
}

static void rig_down(struct rig *r)
{
	h_fini(&r->h, virtio_net_destroy);
}

/* A chain of descriptors on queue q (lens[i] bytes at gpa[i]), the first nr readable. No kick. */
static void post_chain(struct harness *h, unsigned q, const uint64_t *gpa, const uint32_t *len, unsigned n,
		       unsigned nr)
{
	uint16_t first = h->next_desc[q] % H_QSIZE;
	for (unsigned i = 0; i < n; i++) {
		uint16_t desc = h->next_desc[q]++ % H_QSIZE;
		uint16_t flags = (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) | (i >= nr ? VIRTQ_DESC_F_WRITE : 0);
		uint16_t next = (uint16_t)((desc + 1) % H_QSIZE);
		uint8_t *d = h->ram + H_RING(q) + 16u * desc;
		memcpy(d, &gpa[i], 8);
		memcpy(d + 8, &len[i], 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	uint16_t *avail = (uint16_t *)(void *)(h->ram + H_RING(q) + 0x1000);
	avail[2 + h->avail_idx[q] % H_QSIZE] = first;
	avail[1] = ++h->avail_idx[q];
}

static struct virtio_net_hdr tso4_hdr(size_t frame_len)
{
	(void)frame_len;
	return (struct virtio_net_hdr){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
					.hdr_len = 66, .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

/* Transmit header + frame in a chain of two readable descriptors (the header split 5 / 7 + frame). */
static void guest_tx(struct rig *r, const struct virtio_net_hdr *hdr, const uint8_t *frame, size_t len)
{
	uint8_t *buf = r->h.ram + H_BUF;
	memcpy(buf, hdr, sizeof(*hdr));
	memcpy(buf + sizeof(*hdr), frame, len);
	const uint64_t gpa[] = { H_BUF, H_BUF + 5 };
	const uint32_t lens[] = { 5, (uint32_t)(sizeof(*hdr) + len - 5) };
	post_chain(&r->h, VIRTIO_NET_TXQ, gpa, lens, 2, 2);
	h_kick(&r->h, VIRTIO_NET_TXQ);
}

/* What the backend side got, or -1 if nothing. */
static ssize_t peer_read(struct rig *r, uint8_t *buf, size_t cap)
{
	return recv(r->fb->peer, buf, cap, MSG_DONTWAIT);
}

static void peer_write(struct rig *r, const struct virtio_net_hdr *hdr, const uint8_t *frame, size_t len)
{
	struct iovec iov[2] = { { (void *)hdr, sizeof(*hdr) }, { (void *)frame, len } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	assert_int_equal(sendmsg(r->fb->peer, &m, 0), (ssize_t)(sizeof(*hdr) + len));
}

static uint64_t stat_of(struct rig *r, const char *key)
{
	char buf[512] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	virtio_net_print_stats(r->h.dev, f);
	fclose(f);
	/* "... 3 malformed ..." : the number before the key */
	char *k = strstr(buf, key);
	assert_non_null(k);
	while (k > buf && k[-1] == ' ')
		k--;
	while (k > buf && k[-1] >= '0' && k[-1] <= '9')
		k--;
	return strtoull(k, NULL, 10);
}

static void offers_offloads_and_mrg_rxbuf(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_MAC));
	uint64_t f = r.h.dev->features;
	assert_int_equal(f & (ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF)), ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF));
	/* UFO is not offered: modern kernels dropped it. */
	assert_false(f & ((1ULL << 10) | (1ULL << 14)));
	rig_down(&r);
}

static void offload_follows_negotiation(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	assert_true(r.fb->offload_calls >= 1);
	assert_int_equal(r.fb->offload & ALL_OFFLOADS, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	h_bar_write(&r.h, VPCI_STATUS, 1, 0); /* reset: nothing offloaded until the next negotiation */
	assert_int_equal(r.fb->offload, 0);
	rig_down(&r);
}

static void tx_passes_header_through(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS);
	static uint8_t frame[3000], got[4000];
	fill_pattern(frame, sizeof(frame), 1);
	struct virtio_net_hdr hdr = tso4_hdr(sizeof(frame));
	guest_tx(&r, &hdr, frame, sizeof(frame));
	assert_int_equal(peer_read(&r, got, sizeof(got)), 12 + 3000);
	assert_memory_equal(got, &hdr, 10); /* num_buffers is not the driver's to set on tx */
	assert_memory_equal(got + 12, frame, sizeof(frame));
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_TXQ), 1);
	assert_int_equal(stat_of(&r, "malformed"), 0);
	rig_down(&r);
}

static void tx_drops_malformed_headers(void **state)
{
	(void)state;
	static const struct { const char *why; struct virtio_net_hdr h; } bad[] = {
		{ "gso without HOST_TSO6", { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV6, .gso_size = 1440,
					      .hdr_len = 74, .csum_start = 54, .csum_offset = 16 } },
		{ "udp gso", { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_UDP, .gso_size = 1440, .csum_start = 34, .csum_offset = 6 } },
		{ "ecn without HOST_ECN", { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
					    .gso_size = 1448, .hdr_len = 66, .csum_start = 34, .csum_offset = 16 } },
		{ "csum past the frame", { .flags = 1, .csum_start = 190, .csum_offset = 9 } },
		{ "csum offset huge", { .flags = 1, .csum_start = 34, .csum_offset = 0xffff } },
		{ "gso size 0", { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .hdr_len = 66, .csum_start = 34, .csum_offset = 16 } },
		{ "hdr_len past the frame", { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448,
					       .hdr_len = 201, .csum_start = 34, .csum_offset = 16 } },
		{ "unknown flag", { .flags = 0x80 } },
		{ "data_valid from the guest", { .flags = VIRTIO_NET_HDR_F_DATA_VALID } },
	};
	struct rig r;
	rig_up(&r, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4));
	uint8_t frame[200] = { 0 }, got[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		guest_tx(&r, &bad[i].h, frame, sizeof(frame));
		if (peer_read(&r, got, sizeof(got)) >= 0)
			fail_msg("%s: the frame went out", bad[i].why);
	}
	/* A header-less chain too. */
	const uint64_t gpa[] = { H_BUF };
	const uint32_t len[] = { 11 };
	post_chain(&r.h, VIRTIO_NET_TXQ, gpa, len, 1, 1);
	h_kick(&r.h, VIRTIO_NET_TXQ);
	size_t nbad = sizeof(bad) / sizeof(bad[0]) + 1;
	assert_int_equal(stat_of(&r, "malformed"), nbad);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_TXQ), nbad); /* every chain returned */
	assert_false(h_needs_reset(&r.h));
	/* The device still works. */
	struct virtio_net_hdr ok = tso4_hdr(sizeof(frame));
	guest_tx(&r, &ok, frame, sizeof(frame));
	assert_int_equal(peer_read(&r, got, sizeof(got)), 12 + 200);
	rig_down(&r);
}

/* Post n rx buffers of len bytes each at H_BUF + i * 0x10000 and kick. */
static void post_rx(struct rig *r, unsigned first, unsigned n, uint32_t len)
{
	for (unsigned i = first; i < first + n; i++) {
		const uint64_t gpa[] = { H_BUF + (uint64_t)i * 0x10000 };
		post_chain(&r->h, VIRTIO_NET_RXQ, gpa, &len, 1, 0);
	}
	h_kick(&r->h, VIRTIO_NET_RXQ);
}

static uint16_t rx_num_buffers(struct rig *r, unsigned buf)
{
	struct virtio_net_hdr h;
	memcpy(&h, r->h.ram + H_BUF + (uint64_t)buf * 0x10000, sizeof(h));
	return h.num_buffers;
}

static void mrg_rxbuf_spreads_a_frame_over_chains(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF));
	post_rx(&r, 0, 4, 1500);
	static uint8_t frame[4000];
	fill_pattern(frame, sizeof(frame), 3);
	struct virtio_net_hdr hdr = tso4_hdr(sizeof(frame));
	peer_write(&r, &hdr, frame, sizeof(frame));
	virtio_net_rx_ready(r.h.dev);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 3);
	assert_int_equal(h_used_len(&r.h, VIRTIO_NET_RXQ, 0), 1500);
	assert_int_equal(h_used_len(&r.h, VIRTIO_NET_RXQ, 1), 1500);
	assert_int_equal(h_used_len(&r.h, VIRTIO_NET_RXQ, 2), 12 + 4000 - 3000);
	assert_int_equal(rx_num_buffers(&r, 0), 3);
	uint8_t *b0 = r.h.ram + H_BUF;
	assert_memory_equal(b0, &hdr, 10);            /* the tap's header, as it was */
	assert_memory_equal(b0 + 12, frame, 1488);
	assert_memory_equal(b0 + 0x10000, frame + 1488, 1500);
	assert_memory_equal(b0 + 0x20000, frame + 2988, 1012);
	rig_down(&r);
}

static void mrg_rxbuf_waits_for_enough_buffers(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF));
	post_rx(&r, 0, 2, 1500);
	static uint8_t frame[4000];
	fill_pattern(frame, sizeof(frame), 5);
	struct virtio_net_hdr hdr = { 0 };
	peer_write(&r, &hdr, frame, sizeof(frame));
	peer_write(&r, &hdr, frame, 100);
	virtio_net_rx_ready(r.h.dev);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 0); /* nothing half-published */
	post_rx(&r, 2, 2, 1500);                                 /* the kick delivers */
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 4);
	assert_int_equal(rx_num_buffers(&r, 0), 3);
	assert_memory_equal(r.h.ram + H_BUF + 0x20000, frame + 2988, 1012);
	assert_int_equal(rx_num_buffers(&r, 3), 1);             /* the second frame in the fourth */
	assert_memory_equal(r.h.ram + H_BUF + 0x30000 + 12, frame, 100);
	assert_int_equal(stat_of(&r, "dropped"), 0);
	rig_down(&r);
}

static void big_packets_without_mrg_rxbuf(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS);
	/* Linux's "big packets" chain: a header buffer, then page-sized pieces. */
	uint64_t gpa[H_QSIZE];
	uint32_t len[H_QSIZE];
	gpa[0] = H_BUF, len[0] = 12;
	for (unsigned i = 1; i < H_QSIZE; i++)
		gpa[i] = H_BUF + 0x1000 * i, len[i] = 0x1000;
	post_chain(&r.h, VIRTIO_NET_RXQ, gpa, len, H_QSIZE, 0);
	h_kick(&r.h, VIRTIO_NET_RXQ);
	static uint8_t frame[60000];
	fill_pattern(frame, sizeof(frame), 9);
	struct virtio_net_hdr hdr = tso4_hdr(sizeof(frame));
	peer_write(&r, &hdr, frame, sizeof(frame));
	virtio_net_rx_ready(r.h.dev);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 1);
	assert_int_equal(h_used_len(&r.h, VIRTIO_NET_RXQ, 0), 12 + 60000);
	assert_int_equal(rx_num_buffers(&r, 0), 1);
	assert_int_equal(r.h.ram[H_BUF + 1], VIRTIO_NET_HDR_GSO_TCPV4);
	for (unsigned i = 1; i < 15; i++)
		assert_memory_equal(r.h.ram + H_BUF + 0x1000 * i, frame + 0x1000 * (i - 1), 0x1000);
	rig_down(&r);
}

static void rx_drops_what_the_driver_did_not_ask_for(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, 0); /* no offloads at all */
	post_rx(&r, 0, 1, 1600);
	uint8_t frame[1000];
	fill_pattern(frame, sizeof(frame), 11);
	struct virtio_net_hdr gso = tso4_hdr(sizeof(frame)), csum = { .flags = 1, .csum_start = 34, .csum_offset = 16 };
	peer_write(&r, &gso, frame, sizeof(frame));
	peer_write(&r, &csum, frame, sizeof(frame));
	static uint8_t big[3000];
	struct virtio_net_hdr none = { 0 };
	peer_write(&r, &none, big, sizeof(big)); /* does not fit the one 1600-byte chain */
	peer_write(&r, &none, frame, sizeof(frame));
	virtio_net_rx_ready(r.h.dev);
	assert_int_equal(stat_of(&r, "dropped"), 3);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 1); /* the plain frame got the buffer */
	assert_int_equal(h_used_len(&r.h, VIRTIO_NET_RXQ, 0), 12 + 1000);
	assert_memory_equal(r.h.ram + H_BUF + 12, frame, sizeof(frame));
	assert_false(h_needs_reset(&r.h));
	rig_down(&r);
}

static void rx_before_driver_ok_is_discarded(void **state)
{
	(void)state;
	struct fake_backend *fb = calloc(1, sizeof(*fb));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	fb->fd = sv[0], fb->peer = sv[1];
	fb->be = (struct net_backend){ .send = fake_send, .destroy = fake_destroy, .vnet_hdr = true, .rx_fd = sv[0],
				       .sendv = fake_sendv, .recv = fake_recv, .set_offload = fake_set_offload };
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user", &o, &err), 0);
	struct virtio_device *d;
	assert_int_equal(virtio_net_create_on(&o, &fb->be, &d, &err), 0);
	struct harness h;
	h_init(&h);
	h_plug(&h, d);
	uint8_t frame[64] = { 0 };
	struct virtio_net_hdr none = { 0 };
	struct iovec iov[2] = { { &none, sizeof(none) }, { frame, sizeof(frame) } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	assert_true(sendmsg(sv[1], &m, 0) > 0);
	virtio_net_rx_ready(d);
	uint8_t tmp[128];
	assert_int_equal(recv(sv[0], tmp, sizeof(tmp), MSG_DONTWAIT), -1); /* read and dropped */
	char out[512] = { 0 };
	FILE *f = fmemopen(out, sizeof(out), "w");
	virtio_net_print_stats(d, f);
	fclose(f);
	assert_non_null(strstr(out, "0 dropped, 1 before the driver was ready"));
	h_fini(&h, virtio_net_destroy);
}

static void a_vanished_backend_does_not_hang_rx(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, ALL_OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF));
	post_rx(&r, 0, 2, 1500);
	close(r.fb->peer); /* recv now returns 0 for ever */
	r.fb->peer = -1;
	virtio_net_rx_ready(r.h.dev);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_RXQ), 0);
	rig_down(&r);
}

static void header_rules(void **state)
{
	(void)state;
	uint64_t all = ALL_OFFLOADS;
	struct virtio_net_hdr h = tso4_hdr(1000);
	assert_true(virtio_net_hdr_valid(&h, 1000, all, true));
	assert_true(virtio_net_hdr_valid(&h, 1000, all, false));
	assert_false(virtio_net_hdr_valid(&h, 1000, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4), true));
	assert_false(virtio_net_hdr_valid(&h, 1000, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), false));
	assert_false(virtio_net_hdr_valid(&h, 49, all, true));  /* csum field past the end */
	assert_true(virtio_net_hdr_valid(&h, 66, all, true));   /* hdr_len == frame: fine */
	struct virtio_net_hdr dv = { .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	assert_true(virtio_net_hdr_valid(&dv, 60, 0, false));
	assert_false(virtio_net_hdr_valid(&dv, 60, all, true));
	struct virtio_net_hdr ecn_alone = { .gso_type = VIRTIO_NET_HDR_GSO_ECN };
	assert_false(virtio_net_hdr_valid(&ecn_alone, 60, all, true));
	struct virtio_net_hdr zero = { 0 };
	assert_true(virtio_net_hdr_valid(&zero, 0, 0, true));
}

/* The driver's used_event for queue q (the last field of its avail ring). */
static void set_used_event(struct rig *r, unsigned q, uint16_t v)
{
	memcpy(r->h.ram + H_RING(q) + 0x1000 + 4 + 2 * H_QSIZE, &v, 2);
}

/* Past the tx interrupt's longest wait, then the loop's wake-up for the device's fd. */
static void after_the_tx_timer(struct rig *r)
{
	usleep(2000);
	virtio_net_rx_ready(r->h.dev);
}

/* With event idx, a tx completion is published at once but its interrupt waits for the driver's next kick
 * or the timer, and goes out only if used_event still asks for it then. */
static void tx_interrupt_waits_and_is_skipped_when_not_needed(void **state)
{
	(void)state;
	struct rig r;
	rig_up(&r, F(VIRTIO_F_EVENT_IDX));
	uint8_t frame[60], got[256];
	fill_pattern(frame, sizeof(frame), 3);
	struct virtio_net_hdr plain = { 0 };
	const uint64_t *irqs = &r.h.t->q[VIRTIO_NET_TXQ].interrupts, base = *irqs;

	guest_tx(&r, &plain, frame, sizeof(frame));
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_TXQ), 1);
	assert_int_equal(*irqs, base);          /* not yet */
	after_the_tx_timer(&r);
	assert_int_equal(*irqs, base + 1);      /* the timer sent it */

	set_used_event(&r, VIRTIO_NET_TXQ, 1);         /* interrupt me once entry 1 is used */
	guest_tx(&r, &plain, frame, sizeof(frame));
	assert_int_equal(*irqs, base + 1);
	set_used_event(&r, VIRTIO_NET_TXQ, 2);         /* the driver reaped entry 1 itself */
	guest_tx(&r, &plain, frame, sizeof(frame));   /* its kick: the waiting interrupt is not needed */
	assert_int_equal(*irqs, base + 1);
	assert_int_equal(stat_of(&r, "of them not needed"), 1);
	after_the_tx_timer(&r);                        /* entry 2 is past used_event 2: this one is */
	assert_int_equal(*irqs, base + 2);
	after_the_tx_timer(&r);                        /* nothing waits: nothing more */
	assert_int_equal(*irqs, base + 2);

	for (int i = 0; i < 3; i++)
		assert_int_equal(peer_read(&r, got, sizeof(got)), (ssize_t)(sizeof(plain) + sizeof(frame)));
	assert_int_equal(stat_of(&r, "times,"), 3);   /* "deferred 3 times" */

	/* A driver that queued many frames and waits for their completions (used_event ahead, as Linux sets
	 * it when its queue fills): a pass of half the ring (8 of this ring's 16) interrupts without the timer. */
	set_used_event(&r, VIRTIO_NET_TXQ, 5);
	for (unsigned i = 0; i < H_QSIZE / 2; i++) {
		const uint64_t gpa[] = { H_BUF, H_BUF + 5 };
		const uint32_t lens[] = { 5, (uint32_t)(sizeof(plain) + sizeof(frame) - 5) };
		post_chain(&r.h, VIRTIO_NET_TXQ, gpa, lens, 2, 2);
	}
	h_kick(&r.h, VIRTIO_NET_TXQ);
	assert_int_equal(h_used_idx(&r.h, VIRTIO_NET_TXQ), 3 + H_QSIZE / 2);
	assert_int_equal(*irqs, base + 3);
	rig_down(&r);
}

#define T(f) cmocka_unit_test(f)
int main(void)
{
	const struct CMUnitTest tests[] = {
		T(offers_offloads_and_mrg_rxbuf), T(offload_follows_negotiation), T(tx_passes_header_through),
		T(tx_drops_malformed_headers), T(mrg_rxbuf_spreads_a_frame_over_chains),
		T(mrg_rxbuf_waits_for_enough_buffers), T(big_packets_without_mrg_rxbuf),
		T(rx_drops_what_the_driver_did_not_ask_for), T(rx_before_driver_ok_is_discarded), T(a_vanished_backend_does_not_hang_rx),
		T(header_rules), T(tx_interrupt_waits_and_is_skipped_when_not_needed),
	};
	return cmocka_run_group_tests_name("virtio_net_offload", tests, NULL, NULL);
}
