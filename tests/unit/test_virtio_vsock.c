/* virtio-vsock over fake guest memory through the real virtio-pci transport, with real Unix sockets in a
 * temporary directory: guest -> host connects (to a listener and to nothing), data both ways under credit,
 * host -> guest CONNECT lines (good, bad, overlong), every malformed header, the connection cap, a guest
 * overrunning its credit, shutdown and RST teardown, and a device reset that leaves no fd behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/vsock.h"
#include "lib/util.h"
#include "vdev_harness.h"

#define GUEST_CID  3
#define TX_GPA     H_BUF                 /* one tx packet at a time */
#define RX_GPA(i)  (H_BUF + 0x20000u + (i) * 0x1000u)
#define RX_LEN     0x1000u
#define TX_BIG_GPA (H_BUF + 0x100000u)  /* room for a 64 KiB + payload */

struct fx {
	struct harness h;
	char dir[64], path[96];
	unsigned rx_posted, rx_seen;
};

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vsock-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	h_init(&f->h);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_vsock_create(GUEST_CID, f->path, &d, &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_VSOCK);
	assert_int_equal(d->nqueues, 3);
	h_plug(&f->h, d);
	h_driver_ok(&f->h, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_fini(&f->h, virtio_vsock_destroy);
	struct stat st;
	assert_int_equal(stat(f->path, &st), -1); /* the listening socket is gone */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- Driver side ---------------------------------------------------------------------------------- */

static void post_rx(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++, f->rx_posted++)
		h_post(&f->h, VSOCK_RXQ, RX_GPA(f->rx_posted % H_QSIZE), RX_LEN, VIRTQ_DESC_F_WRITE);
	h_kick(&f->h, VSOCK_RXQ);
}

static struct vsock_hdr hdr(uint16_t op, uint32_t guest_port, uint32_t host_port)
{
	return (struct vsock_hdr){ .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = guest_port,
				   .dst_port = host_port, .type = VSOCK_TYPE_STREAM, .op = op,
				   .buf_alloc = VSOCK_BUF_ALLOC };
}

/* Transmit a packet whose chain holds chain_len bytes (header + payload). */
static void send_raw(struct fx *f, const struct vsock_hdr *h, const void *payload, uint32_t chain_len)
{
	uint64_t gpa = chain_len > 0x10000 ? TX_BIG_GPA : TX_GPA;
	memcpy(f->h.ram + gpa, h, MIN(chain_len, sizeof(*h)));
	if (payload && chain_len > sizeof(*h))
		memcpy(f->h.ram + gpa + sizeof(*h), payload, chain_len - sizeof(*h));
	h_post(&f->h, VSOCK_TXQ, gpa, chain_len, 0);
	h_kick(&f->h, VSOCK_TXQ);
}

static void send_pkt(struct fx *f, struct vsock_hdr h, const void *payload, uint32_t len)
{
	h.len = len;
	send_raw(f, &h, payload, (uint32_t)sizeof(h) + len);
}

/* The next packet the device put in the rx queue; false if none. */
static bool recv_pkt(struct fx *f, struct vsock_hdr *h, void *payload, size_t cap)
{
	if ((uint16_t)(h_used_idx(&f->h, VSOCK_RXQ) - f->rx_seen) == 0)
		return false;
	uint8_t *used = f->h.ram + H_RING(VSOCK_RXQ) + 0x2000 + 4 + 8 * (f->rx_seen % H_QSIZE);
	uint32_t id, len;
	memcpy(&id, used, 4);
	memcpy(&len, used + 4, 4);
	uint64_t gpa;
	memcpy(&gpa, f->h.ram + H_RING(VSOCK_RXQ) + 16 * id, 8);
	f->rx_seen++;
	assert_true(len >= sizeof(*h));
	memcpy(h, f->h.ram + gpa, sizeof(*h));
	assert_int_equal(len, sizeof(*h) + h->len);
	assert_true(h->len <= cap);
	if (payload)
		memcpy(payload, f->h.ram + gpa + sizeof(*h), h->len);
	assert_int_equal(h->src_cid, VSOCK_HOST_CID);
	assert_int_equal(h->dst_cid, GUEST_CID);
	return true;
}

static void expect_pkt(struct fx *f, uint16_t op, uint32_t guest_port, uint32_t host_port, struct vsock_hdr *out)
{
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, op);
	assert_int_equal(h.dst_port, guest_port);
	assert_int_equal(h.src_port, host_port);
	if (out)
		*out = h;
}

static void expect_nothing(struct fx *f)
{
	struct vsock_hdr h;
	assert_false(recv_pkt(f, &h, NULL, 0));
}

/* Let the device look at its sockets, as the event loop would. */
static void pump(struct fx *f)
{
	struct pollfd p = { .fd = virtio_vsock_fd(f->h.dev), .events = POLLIN };
	for (int i = 0; i < 10 && poll(&p, 1, 20) > 0; i++)
		virtio_vsock_ready(f->h.dev);
}

/* ---- Host side ------------------------------------------------------------------------------------ */

static int host_listen(struct fx *f, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 2048), 0);
	return fd;
}

static int host_connect(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The device closed its end: EOF, or ECONNRESET when it left bytes unread. */
static void expect_closed(int fd)
{
	char b[8];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1);
	ssize_t n = read(fd, b, sizeof(b));
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static ssize_t read_timeout(int fd, void *buf, size_t n)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 1000) <= 0)
		return -2;
	return read(fd, buf, n);
}

/* A guest -> host connection from guest port gp to host port 5000, accepted: returns the host fd. */
static int guest_connects(struct fx *f, int lfd, uint32_t gp)
{
	send_pkt(f, hdr(VSOCK_OP_REQUEST, gp, 5000), NULL, 0);
	int fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	expect_pkt(f, VSOCK_OP_RESPONSE, gp, 5000, NULL);
	return fd;
}

/* ---- Tests ---------------------------------------------------------------------------------------- */

static void config_holds_guest_cid(void **state)
{
	struct fx *f = *state;
	assert_int_equal(h_bar_read(&f->h, VPCI_DEVICE_OFF, 4), GUEST_CID);
	assert_int_equal(h_bar_read(&f->h, VPCI_DEVICE_OFF + 4, 4), 0);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void guest_connect_and_data_both_ways(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	int fd = guest_connects(f, lfd, 40000);
	send_pkt(f, hdr(VSOCK_OP_RW, 40000, 5000), "hello", 5);
	char buf[64];
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(write(fd, "world!", 6), 6);
	pump(f);
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 6);
	assert_memory_equal(buf, "world!", 6);
	assert_int_equal(h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(h.fwd_cnt, 5);
	struct vsock_stats s;
	virtio_vsock_get_stats(f->h.dev, &s);
	assert_int_equal(s.conns_from_guest, 1);
	assert_int_equal(s.bytes_to_host, 5);
	assert_int_equal(s.bytes_to_guest, 6);
	close(fd);
	close(lfd);
}

static void guest_connect_to_nothing_is_reset(void **state)
{
	struct fx *f = *state;
	post_rx(f, 4);
	send_pkt(f, hdr(VSOCK_OP_REQUEST, 40001, 6000), NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 40001, 6000, NULL);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
}

/* The device never sends more than the guest's credit, and resumes on CREDIT_UPDATE. */
static void host_to_guest_respects_credit(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	struct vsock_hdr req = hdr(VSOCK_OP_REQUEST, 40002, 5000);
	req.buf_alloc = 10;
	send_pkt(f, req, NULL, 0);
	int fd = accept(lfd, NULL, NULL);
	expect_pkt(f, VSOCK_OP_RESPONSE, 40002, 5000, NULL);
	assert_int_equal(write(fd, "0123456789abcdefghij", 20), 20);
	pump(f);
	char buf[64];
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.len, 10);
	assert_memory_equal(buf, "0123456789", 10);
	expect_nothing(f);
	struct vsock_hdr up = hdr(VSOCK_OP_CREDIT_UPDATE, 40002, 5000);
	up.buf_alloc = 10, up.fwd_cnt = 4;
	send_pkt(f, up, NULL, 0);
	assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.len, 4);
	assert_memory_equal(buf, "abcd", 4);
	expect_nothing(f);
	/* CREDIT_REQUEST gets a CREDIT_UPDATE */
	struct vsock_hdr creq = hdr(VSOCK_OP_CREDIT_REQUEST, 40002, 5000);
	creq.buf_alloc = 10, creq.fwd_cnt = 4; /* no new credit: no data, just the update */
	send_pkt(f, creq, NULL, 0);
	expect_pkt(f, VSOCK_OP_CREDIT_UPDATE, 40002, 5000, NULL);
	close(fd);
	close(lfd);
}

/* Forwarding a quarter of the buffer to the host earns the guest a CREDIT_UPDATE. */
static void guest_to_host_returns_credit(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	int fd = guest_connects(f, lfd, 40003);
	static uint8_t chunk[16384];
	memset(chunk, 'x', sizeof(chunk));
	for (unsigned i = 0; i < VSOCK_BUF_ALLOC / 4 / sizeof(chunk); i++) {
		send_pkt(f, hdr(VSOCK_OP_RW, 40003, 5000), chunk, sizeof(chunk));
		uint8_t sink[sizeof(chunk)];
		size_t got = 0;
		while (got < sizeof(chunk)) {
			ssize_t n = read_timeout(fd, sink, sizeof(chunk) - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
	}
	struct vsock_hdr h;
	expect_pkt(f, VSOCK_OP_CREDIT_UPDATE, 40003, 5000, &h);
	assert_int_equal(h.fwd_cnt, VSOCK_BUF_ALLOC / 4);
	close(fd);
	close(lfd);
}

/* A host socket that stops reading: bytes wait in the bounded buffer, and a guest sending past the
 * credit it was given is reset instead of growing memory. */
static void guest_exceeding_credit_is_reset(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	int fd = guest_connects(f, lfd, 40004);
	static uint8_t big[VSOCK_MAX_PAYLOAD];
	memset(big, 'y', sizeof(big));
	struct vsock_hdr h;
	unsigned sent = 0;
	bool reset = false;
	for (; sent < 64 && !reset; sent++) {
		send_pkt(f, hdr(VSOCK_OP_RW, 40004, 5000), big, sizeof(big));
		while (!reset && recv_pkt(f, &h, NULL, 0))
			reset = h.op != VSOCK_OP_CREDIT_UPDATE;
	}
	assert_true(reset);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
	close(fd);
	close(lfd);
}

static void host_connect_line_reaches_guest(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 5000\nearly", 18), 18);
	pump(f);
	struct vsock_hdr req;
	assert_true(recv_pkt(f, &req, NULL, 0));
	assert_int_equal(req.op, VSOCK_OP_REQUEST);
	assert_int_equal(req.dst_port, 5000);
	assert_true(req.src_port >= 1024);
	send_pkt(f, hdr(VSOCK_OP_RESPONSE, 5000, req.src_port), NULL, 0);
	char buf[64] = { 0 }, want[32];
	snprintf(want, sizeof(want), "OK %u\n", req.src_port);
	assert_int_equal(read_timeout(c, buf, strlen(want)), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	pump(f); /* the bytes after the line go to the guest */
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "early", 5);
	send_pkt(f, hdr(VSOCK_OP_RW, 5000, req.src_port), "pong", 4);
	assert_int_equal(read_timeout(c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	/* a second client gets another port */
	int c2 = host_connect(f);
	assert_int_equal(write(c2, "CONNECT 5000\n", 13), 13);
	pump(f);
	struct vsock_hdr req2;
	assert_true(recv_pkt(f, &req2, NULL, 0));
	assert_int_equal(req2.op, VSOCK_OP_REQUEST);
	assert_int_not_equal(req2.src_port, req.src_port);
	/* the guest refuses it: the client is closed */
	send_pkt(f, hdr(VSOCK_OP_RST, 5000, req2.src_port), NULL, 0);
	assert_int_equal(read_timeout(c2, buf, sizeof(buf)), 0);
	close(c2);
	close(c);
}

static void bad_connect_lines_are_closed(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	const char *lines[] = { "HELLO 5000\n", "CONNECT\n", "CONNECT abc\n", "CONNECT 99999999999\n",
				"CONNECT 5000 6000\n", "CONNECT 123456789012345678901234567890\n" };
	for (unsigned i = 0; i < ARRAY_SIZE(lines); i++) {
		int c = host_connect(f);
		assert_int_equal(write(c, lines[i], strlen(lines[i])), (ssize_t)strlen(lines[i]));
		pump(f);
		expect_closed(c);
		close(c);
	}
	/* a client that never finishes its line does not stall another */
	int slow = host_connect(f);
	assert_int_equal(write(slow, "CONN", 4), 4);
	int c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 7\n", 10), 10);
	pump(f);
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 7);
	expect_nothing(f);
	close(slow);
	close(c);
}

static void client_leaving_before_the_answer_resets_the_guest(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 5000\n", 13), 13);
	pump(f);
	struct vsock_hdr req;
	assert_true(recv_pkt(f, &req, NULL, 0));
	assert_int_equal(req.op, VSOCK_OP_REQUEST);
	close(c);
	pump(f);
	expect_pkt(f, VSOCK_OP_RST, 5000, req.src_port, NULL);
	/* the guest's late answer is for a connection that is gone */
	send_pkt(f, hdr(VSOCK_OP_RESPONSE, 5000, req.src_port), NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 5000, req.src_port, NULL);
}

static void idle_clients_give_way(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int idle[VSOCK_MAX_AWAITING + 1];
	for (unsigned i = 0; i < ARRAY_SIZE(idle); i++) {
		idle[i] = host_connect(f);
		pump(f);
	}
	expect_closed(idle[0]); /* the oldest made room for the newest */
	int c = host_connect(f);
	assert_int_equal(write(c, "CONNECT 9\n", 10), 10);
	pump(f);
	struct vsock_hdr req;
	assert_true(recv_pkt(f, &req, NULL, 0));
	assert_int_equal(req.op, VSOCK_OP_REQUEST);
	assert_int_equal(req.dst_port, 9);
	for (unsigned i = 0; i < ARRAY_SIZE(idle); i++)
		close(idle[i]);
	close(c);
}

static void malformed_headers(void **state)
{
	struct fx *f = *state;
	post_rx(f, 12);
	struct vsock_hdr h = hdr(VSOCK_OP_REQUEST, 1, 5000);
	h.src_cid = 7; /* spoofed source: dropped without a word */
	send_pkt(f, h, NULL, 0);
	expect_nothing(f);
	send_raw(f, &h, NULL, 20); /* shorter than a header */
	expect_nothing(f);
	h = hdr(VSOCK_OP_REQUEST, 2, 5000);
	h.dst_cid = 5;
	send_pkt(f, h, NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 2, 5000, NULL);
	h = hdr(VSOCK_OP_REQUEST, 3, 5000);
	h.type = 2; /* seqpacket was not offered */
	send_pkt(f, h, NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 3, 5000, NULL);
	send_pkt(f, hdr(99, 4, 5000), NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 4, 5000, NULL);
	h = hdr(VSOCK_OP_RW, 5, 5000);
	h.len = 100; /* more than the chain carries */
	send_raw(f, &h, "abc", sizeof(h) + 3);
	expect_pkt(f, VSOCK_OP_RST, 5, 5000, NULL);
	static uint8_t big[VSOCK_MAX_PAYLOAD + 1];
	send_pkt(f, hdr(VSOCK_OP_RW, 6, 5000), big, sizeof(big)); /* past the payload cap */
	expect_pkt(f, VSOCK_OP_RST, 6, 5000, NULL);
	send_pkt(f, hdr(VSOCK_OP_RW, 7, 5000), "x", 1); /* no such connection */
	expect_pkt(f, VSOCK_OP_RST, 7, 5000, NULL);
	send_pkt(f, hdr(VSOCK_OP_RST, 8, 5000), NULL, 0); /* an RST is never answered */
	expect_nothing(f);
	h = hdr(VSOCK_OP_REQUEST, 9, 5000);
	h.len = 3; /* a REQUEST carries no payload */
	send_pkt(f, h, "abc", 3);
	expect_pkt(f, VSOCK_OP_RST, 9, 5000, NULL);
	struct vsock_stats s;
	virtio_vsock_get_stats(f->h.dev, &s);
	assert_int_equal(s.bad_packets, 8);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
	assert_false(h_needs_reset(&f->h));
}

/* RSTs owed while the guest posts no rx buffer are bounded: the rest are dropped. */
static void pending_rsts_are_bounded(void **state)
{
	struct fx *f = *state;
	for (unsigned i = 0; i < VSOCK_PENDING_RST * 3; i++)
		send_pkt(f, hdr(VSOCK_OP_RW, 100 + i, 5000), "x", 1);
	unsigned got = 0;
	struct vsock_hdr h;
	for (unsigned round = 0; round < 8; round++) {
		post_rx(f, H_QSIZE / 2);
		while (recv_pkt(f, &h, NULL, 0))
			got++;
	}
	assert_int_equal(got, VSOCK_PENDING_RST);
}

static void connection_cap(void **state)
{
	struct fx *f = *state;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < 2 * VSOCK_MAX_CONNS + 64)
		skip();
	struct rlimit want = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
	setrlimit(RLIMIT_NOFILE, &want);
	int lfd = host_listen(f, 5000);
	static int fds[VSOCK_MAX_CONNS];
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		send_pkt(f, hdr(VSOCK_OP_REQUEST, 10000 + i, 5000), NULL, 0);
		fds[i] = accept(lfd, NULL, NULL);
		assert_true(fds[i] >= 0);
	}
	assert_int_equal(virtio_vsock_nconns(f->h.dev), VSOCK_MAX_CONNS);
	send_pkt(f, hdr(VSOCK_OP_REQUEST, 9999, 5000), NULL, 0);
	post_rx(f, 1);
	expect_pkt(f, VSOCK_OP_RST, 9999, 5000, NULL); /* owed RSTs go before the owed RESPONSEs */
	int c = host_connect(f); /* a host client past the cap is closed at once */
	pump(f);
	char b;
	assert_int_equal(read_timeout(c, &b, 1), 0);
	close(c);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		close(fds[i]);
	close(lfd);
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void shutdown_and_rst_teardown(void **state)
{
	struct fx *f = *state;
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	int fd = guest_connects(f, lfd, 41000);
	struct vsock_hdr sd = hdr(VSOCK_OP_SHUTDOWN, 41000, 5000);
	sd.flags = VSOCK_SHUTDOWN_SEND;
	send_pkt(f, sd, NULL, 0);
	char buf[8];
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 0); /* the host sees EOF */
	assert_int_equal(write(fd, "ab", 2), 2); /* the other direction still works */
	close(fd);                                /* and the host's close reaches the guest as SHUTDOWN */
	pump(f);
	struct vsock_hdr h;
	assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	expect_pkt(f, VSOCK_OP_SHUTDOWN, 41000, 5000, &h);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
	sd.flags = VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV;
	send_pkt(f, sd, NULL, 0);
	expect_pkt(f, VSOCK_OP_RST, 41000, 5000, NULL);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
	/* the guest resetting a connection closes the host side */
	fd = guest_connects(f, lfd, 41001);
	send_pkt(f, hdr(VSOCK_OP_RST, 41001, 5000), NULL, 0);
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 0);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
	expect_nothing(f);
	close(fd);
	close(lfd);
}

static void reset_closes_everything(void **state)
{
	struct fx *f = *state;
	int before = count_fds();
	post_rx(f, 8);
	int lfd = host_listen(f, 5000);
	int a = guest_connects(f, lfd, 42000);
	int b = guest_connects(f, lfd, 42001);
	int c = host_connect(f);
	assert_int_equal(write(c, "CONN", 4), 4);
	pump(f);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 3);
	h_bar_write(&f->h, VPCI_STATUS, 1, 0);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
	char buf[4];
	assert_int_equal(read_timeout(a, buf, sizeof(buf)), 0);
	assert_int_equal(read_timeout(b, buf, sizeof(buf)), 0);
	assert_int_equal(read_timeout(c, buf, sizeof(buf)), 0);
	close(a), close(b), close(c), close(lfd);
	assert_int_equal(count_fds(), before);
	/* with no driver, a host client is closed at once */
	c = host_connect(f);
	pump(f);
	assert_int_equal(read_timeout(c, buf, sizeof(buf)), 0);
	close(c);
	assert_int_equal(virtio_vsock_nconns(f->h.dev), 0);
}

static void create_refuses_bad_cid_and_paths(void **state)
{
	struct fx *f = *state;
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_vsock_create(2, "/tmp/x", &d, &err), -1);
	assert_non_null(strstr(err.msg, "CID"));
	assert_int_equal(virtio_vsock_create(3, f->path, &d, &err), -1); /* in use by the fixture */
	assert_non_null(strstr(err.msg, "in use"));
	char file[128];
	snprintf(file, sizeof(file), "%s/regular", f->dir);
	FILE *fp = fopen(file, "w");
	fputs("keep", fp);
	fclose(fp);
	assert_int_equal(virtio_vsock_create(3, file, &d, &err), -1);
	assert_non_null(strstr(err.msg, "not a socket"));
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_size, 4);
	/* a stale socket (nobody listening) is replaced */
	char stale[96];
	snprintf(stale, sizeof(stale), "%s/stale", f->dir);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	assert_int_equal(virtio_vsock_create(3, stale, &d, &err), 0);
	virtio_vsock_destroy(d);
	assert_int_equal(stat(stale, &st), -1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(config_holds_guest_cid),
		T(guest_connect_and_data_both_ways),
		T(guest_connect_to_nothing_is_reset),
		T(host_to_guest_respects_credit),
		T(guest_to_host_returns_credit),
		T(guest_exceeding_credit_is_reset),
		T(host_connect_line_reaches_guest),
		T(bad_connect_lines_are_closed),
		T(client_leaving_before_the_answer_resets_the_guest),
		T(idle_clients_give_way),
		T(malformed_headers),
		T(pending_rsts_are_bounded),
		T(connection_cap),
		T(shutdown_and_rst_teardown),
		T(reset_closes_everything),
		T(create_refuses_bad_cid_and_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
