/* virtio-net's data path over hand-built chains (tx header stripping, rx header building, short and
 * oversized buffers), and the libslirp backend for real: ARP answered by the virtual host, a host
 * connection to a forwarded port reaching the guest side, a forward on a busy port refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/net.h"
#include "net/backend.h"

/* A chain whose readable segments have the given lengths, cut from `mem`. */
static void make_chain(struct virtq_chain *c, uint8_t *mem, const size_t *rlen, unsigned nr, const size_t *wlen,
		       unsigned nw)
{
	memset(c, 0, sizeof(*c));
	size_t off = 0;
	for (unsigned i = 0; i < nr + nw; i++) {
		size_t n = i < nr ? rlen[i] : wlen[i - nr];
		c->iov[i] = (struct iovec){ .iov_base = mem + off, .iov_len = n };
		off += n;
		if (i < nr)
			c->read_len += n;
		else
			c->write_len += n;
	}
	c->nread = nr, c->nwrite = nw;
}

static void tx_strips_header_split_across_segments(void **state)
{
	(void)state;
	static uint8_t mem[4096];
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)i;
	struct virtq_chain *c = malloc(sizeof(*c));
	const size_t r[] = { 5, 10, 100 };  /* header = 5 + first 7 of the second segment */
	make_chain(c, mem, r, 3, NULL, 0);
	uint8_t out[200];
	assert_int_equal(virtio_net_tx_frame(c, out, sizeof(out)), 103);
	assert_memory_equal(out, mem + 12, 103);
	free(c);
}

static void tx_rejects_short_and_oversized(void **state)
{
	(void)state;
	static uint8_t mem[4096];
	struct virtq_chain *c = malloc(sizeof(*c));
	uint8_t out[64];
	const size_t shortr[] = { 11 };
	make_chain(c, mem, shortr, 1, NULL, 0);
	assert_int_equal(virtio_net_tx_frame(c, out, sizeof(out)), -1);
	const size_t header_only[] = { 12 };
	make_chain(c, mem, header_only, 1, NULL, 0);
	assert_int_equal(virtio_net_tx_frame(c, out, sizeof(out)), 0);
	const size_t big[] = { 12, 65 };
	make_chain(c, mem, big, 2, NULL, 0);
	assert_int_equal(virtio_net_tx_frame(c, out, sizeof(out)), -1);
	free(c);
}

static void rx_builds_header_and_frame(void **state)
{
	(void)state;
	static uint8_t mem[4096];
	memset(mem, 0xee, sizeof(mem));
	struct virtq_chain *c = malloc(sizeof(*c));
	const size_t r[] = { 16 };          /* a readable segment the device must not touch */
	const size_t w[] = { 4, 1000 };
	make_chain(c, mem, r, 1, w, 2);
	uint8_t frame[60];
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(0x80 + i);
	assert_int_equal(virtio_net_rx_fill(c, frame, sizeof(frame)), 12 + 60);
	static const uint8_t hdr[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	uint8_t got[72];
	memcpy(got, mem + 16, 4);
	memcpy(got + 4, mem + 20, 68);
	assert_memory_equal(got, hdr, 12);
	assert_memory_equal(got + 12, frame, 60);
	assert_int_equal(mem[15], 0xee);
	assert_int_equal(mem[16 + 72], 0xee);
	free(c);
}

static void rx_refuses_small_buffers(void **state)
{
	(void)state;
	static uint8_t mem[4096];
	memset(mem, 0xee, sizeof(mem));
	struct virtq_chain *c = malloc(sizeof(*c));
	const size_t w[] = { 40 };
	make_chain(c, mem, NULL, 0, w, 1);
	uint8_t frame[60] = { 0 };
	assert_int_equal(virtio_net_rx_fill(c, frame, sizeof(frame)), 0);
	assert_int_equal(mem[0], 0xee);
	free(c);
}

/* ---- The slirp backend ---------------------------------------------------------------------------- */

struct capture {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned n;
	uint8_t frame[8][1600];
	size_t len[8];
};

static void capture_deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct capture *cap = opaque;
	pthread_mutex_lock(&cap->lock);
	if (cap->n < 8 && len <= sizeof(cap->frame[0])) {
		memcpy(cap->frame[cap->n], frame, len);
		cap->len[cap->n++] = len;
		pthread_cond_broadcast(&cap->cond);
	}
	pthread_mutex_unlock(&cap->lock);
}

/* Wait up to 5 s for at least `want` frames. */
static unsigned wait_frames(struct capture *cap, unsigned want)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&cap->lock);
	while (cap->n < want && pthread_cond_timedwait(&cap->cond, &cap->lock, &until) == 0)
		;
	unsigned n = cap->n;
	pthread_mutex_unlock(&cap->lock);
	return n;
}

static struct capture *capture_new(void)
{
	struct capture *cap = calloc(1, sizeof(*cap));
	pthread_mutex_init(&cap->lock, NULL);
	pthread_cond_init(&cap->cond, NULL);
	return cap;
}

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* Who has 10.0.2.2? Tell 10.0.2.15. */
static size_t arp_request(uint8_t *f)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x06;                   /* ARP */
	f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0; /* Ethernet, IPv4 */
	f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;    /* request */
	memcpy(f + 22, guest_mac, 6);
	static const uint8_t spa[4] = { 10, 0, 2, 15 }, tpa[4] = { 10, 0, 2, 2 };
	memcpy(f + 28, spa, 4);
	memcpy(f + 38, tpa, 4);
	return 60;
}

static void slirp_answers_arp_for_the_host(void **state)
{
	(void)state;
	struct capture *cap = capture_new();
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user", &o, &err), 0);
	struct net_backend *be;
	assert_int_equal(net_slirp_create(&o, (struct net_sink){ capture_deliver, cap }, &be, &err), 0);
	uint8_t f[60];
	be->send(be, f, arp_request(f));
	assert_true(wait_frames(cap, 1) >= 1);
	const uint8_t *r = cap->frame[0];
	assert_memory_equal(r, guest_mac, 6);          /* to us */
	assert_int_equal(r[12], 0x08);
	assert_int_equal(r[13], 0x06);
	assert_int_equal(r[21], 2);                    /* ARP reply */
	static const uint8_t host_ip[4] = { 10, 0, 2, 2 };
	assert_memory_equal(r + 28, host_ip, 4);       /* sender: the virtual host */
	be->destroy(be);
	free(cap);
}

static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

/* A host connection to the forwarded port makes slirp reach for 10.0.2.15 (an ARP request or a SYN). */
static void hostfwd_connection_reaches_guest_side(void **state)
{
	(void)state;
	struct capture *cap = capture_new();
	uint16_t port = free_port();
	char spec[64];
	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:%u-:80", port);
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse(spec, &o, &err), 0);
	struct net_backend *be;
	assert_int_equal(net_slirp_create(&o, (struct net_sink){ capture_deliver, cap }, &be, &err), 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	connect(c, (struct sockaddr *)&a, sizeof(a)); /* EINPROGRESS: slirp accepts, then talks to the guest */
	assert_true(wait_frames(cap, 1) >= 1);
	const uint8_t *f = cap->frame[0];
	static const uint8_t guest_ip[4] = { 10, 0, 2, 15 };
	bool arp = f[12] == 0x08 && f[13] == 0x06 && !memcmp(f + 38, guest_ip, 4);
	bool syn = f[12] == 0x08 && f[13] == 0x00 && !memcmp(f + 30, guest_ip, 4);
	assert_true(arp || syn);
	close(c);
	be->destroy(be);
	free(cap);
}

static void hostfwd_on_a_busy_port_fails(void **state)
{
	(void)state;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 1), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	char spec[64];
	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:%u-:80", ntohs(a.sin_port));
	struct net_opts o;
	vt_err err = { 0 };
	assert_int_equal(net_opts_parse(spec, &o, &err), 0);
	struct virtio_device *d;
	assert_int_equal(virtio_net_create(&o, &d, &err), -1);
	assert_non_null(strstr(err.msg, "already in use"));
	close(s);
}

static void device_offers_mac_and_status(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user,mac=52:54:00:ab:cd:ef", &o, &err), 0);
	struct virtio_device *d;
	assert_int_equal(virtio_net_create(&o, &d, &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_NET);
	assert_int_equal(d->nqueues, 2);
	assert_true(d->features & (1ULL << VIRTIO_NET_F_MAC));
	assert_true(d->features & (1ULL << VIRTIO_NET_F_STATUS));
	/* slirp takes and gives bare frames: no offloads, no merged buffers. */
	assert_false(d->features & ((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
				    (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
				    (1ULL << VIRTIO_NET_F_MRG_RXBUF)));
	uint8_t cfg[8];
	d->ops->config_read(d, 0, cfg, 8);
	static const uint8_t want[8] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, VIRTIO_NET_S_LINK_UP, 0 };
	assert_memory_equal(cfg, want, 8);
	assert_true(virtio_net_rx_fd(d) >= 0);
	virtio_net_destroy(d);
}

#define T(f) cmocka_unit_test(f)
int main(void)
{
	const struct CMUnitTest tests[] = {
		T(tx_strips_header_split_across_segments), T(tx_rejects_short_and_oversized),
		T(rx_builds_header_and_frame), T(rx_refuses_small_buffers), T(slirp_answers_arp_for_the_host),
		T(hostfwd_connection_reaches_guest_side), T(hostfwd_on_a_busy_port_fails),
		T(device_offers_mac_and_status),
	};
	return cmocka_run_group_tests_name("virtio_net", tests, NULL, NULL);
}
