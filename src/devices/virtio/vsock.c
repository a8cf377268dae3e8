/* virtio-vsock, hybrid style (see vsock.h). Stream sockets only; the event queue carries its one event,
 * TRANSPORT_RESET, once after a restore: the connections' host ends stayed with the process that took the
 * snapshot, and the driver then resets its sockets and reads the (perhaps new) guest CID.
 *
 * Data paths. Guest -> host: an RW packet's payload is written straight from guest memory to the host socket;
 * what the socket does not take waits in the connection's buffer (at most VSOCK_BUF_ALLOC, the credit the
 * guest was given; a guest sending past it is reset). Guest credit is returned with CREDIT_UPDATE once a
 * quarter of the buffer has been forwarded. Host -> guest: nothing is buffered; a readable host socket is
 * read straight into the guest's next rx buffer, never more than the guest's credit, and while there is no
 * credit or no rx buffer the socket is simply not read (its EPOLLIN disarmed), so the host writer blocks.
 *
 * Packets the device owes the guest (RESPONSE, REQUEST, CREDIT_UPDATE, SHUTDOWN, RST) are bits on their
 * connection, plus a small bounded ring of RSTs for packets that matched no connection; the rx pump sends
 * them whenever the guest has rx buffers. Nothing grows with what the guest sends. */
#include "devices/virtio/vsock.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "lib/iov.h"
#include "lib/state_file.h"
#include "lib/unixsock.h"
#include "lib/util.h"

#define VSOCK_QUEUE_SIZE   256
#define VSOCK_CONFIG_LEN   8
#define CREDIT_THRESHOLD   (VSOCK_BUF_ALLOC / 4)
#define BURST_PER_CONN     16   /* rx packets for one connection before the pump moves on (fairness) */
#define EPOLL_BATCH        64
#define ACCEPT_BATCH       16
#define HDR_LEN            sizeof(struct vsock_hdr)

enum conn_state {
	CONN_AWAIT_LINE,   /* host client accepted, its "CONNECT P" line not complete yet */
	CONN_REQUESTED,    /* REQUEST sent (or owed) to the guest, waiting for RESPONSE or RST */
	CONN_CONNECTED,
	CONN_DEAD,         /* host fd closed; only an owed RST keeps it */
};

/* Packets owed to the guest. */
#define OWE_REQUEST  1u
#define OWE_RESPONSE 2u
#define OWE_CREDIT   4u
#define OWE_SHUTDOWN 8u
#define OWE_RST      16u

struct conn {
	struct conn *next, *prev;
	int fd;
	enum conn_state state;
	uint32_t host_port, guest_port;
	uint32_t armed;                 /* epoll events currently registered (0: not registered) */
	unsigned owe;                   /* OWE_* */
	/* Guest -> host: bytes waiting for the host socket. */
	uint8_t *buf;
	uint32_t head, len, cap;
	uint32_t fwd_cnt, fwd_cnt_told; /* bytes forwarded to the host; what the guest last heard */
	/* Host -> guest: the guest's credit. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	bool host_readable;             /* EPOLLIN seen and not yet drained */
	bool host_eof;                  /* the host side will send nothing more */
	bool host_wr_shut;              /* shutdown(SHUT_WR) done after the guest's SHUTDOWN_SEND */
	bool guest_no_send, guest_no_rcv;
	char line[VSOCK_MAX_LINE];
	unsigned line_len;
};

struct rst_addr {
	uint32_t host_port, guest_port;
};

struct vsock {
	struct virtio_device dev;
	uint64_t guest_cid;
	char *path;                     /* listening socket, removed at destroy */
	int listen_fd, epfd;
	struct conn *conns;             /* every connection, newest first */
	unsigned nconns;
	uint32_t next_port;
	struct rst_addr rst[VSOCK_PENDING_RST];
	unsigned rst_head, rst_count;
	struct virtq_chain *chain;      /* tx scratch */
	struct virtq_chain *rx_chain;   /* an rx chain popped but not yet used */
	bool rx_held;
	struct iovec slice[VIRTQ_MAX_SEGS];
	struct vsock_stats stats;
};

static struct vsock *to_vsock(struct virtio_device *d)
{
	return (struct vsock *)d; /* dev is the first member */
}

/* ---- Connections ---------------------------------------------------------------------------------- */

static struct conn *conn_find(struct vsock *v, uint32_t host_port, uint32_t guest_port)
{
	for (struct conn *c = v->conns; c; c = c->next)
		if (c->host_port == host_port && c->guest_port == guest_port && c->state != CONN_AWAIT_LINE)
			return c;
	return NULL;
}

static struct conn *conn_new(struct vsock *v, int fd, enum conn_state state)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->state = state;
	c->next = v->conns;
	if (v->conns)
		v->conns->prev = c;
	v->conns = c;
	v->nconns++;
	return c;
}

static void conn_close_fd(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->armed = 0;
}

static void conn_free(struct vsock *v, struct conn *c)
{
	conn_close_fd(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		v->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	v->nconns--;
	free(c->buf);
	free(c);
}

/* Close the host side and owe the guest an RST; the connection goes once that is sent. A connection the
 * guest never heard of (still awaiting its line) just goes. */
static void conn_reset(struct vsock *v, struct conn *c)
{
	if (c->state == CONN_AWAIT_LINE) {
		conn_free(v, c);
		return;
	}
	conn_close_fd(c);
	c->state = CONN_DEAD;
	c->owe = OWE_RST;
	c->len = 0;
}

/* Register exactly the events the connection wants now: input while it may be read, output while bytes
 * wait. Deregistered when it wants nothing, so a hung-up socket cannot spin the loop. */
static void conn_arm(struct vsock *v, struct conn *c)
{
	if (c->fd < 0)
		return;
	uint32_t want = 0;
	if (c->state == CONN_AWAIT_LINE ||
	    (c->state == CONN_CONNECTED && !c->host_readable && !c->host_eof && !c->guest_no_rcv))
		want |= EPOLLIN;
	if (c->len)
		want |= EPOLLOUT;
	if (c->state == CONN_REQUESTED)
		want |= EPOLLHUP; /* reported anyway once registered: notice a client that gives up waiting */
	if (want == c->armed)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	int op = !c->armed ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
	if (epoll_ctl(v->epfd, op, c->fd, &ev) == 0)
		c->armed = want;
}

static uint32_t guest_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void conn_note_forwarded(struct conn *c, size_t n)
{
	c->fwd_cnt += (uint32_t)n;
	if (c->fwd_cnt - c->fwd_cnt_told >= CREDIT_THRESHOLD)
		c->owe |= OWE_CREDIT;
}

/* After the guest shut down its sending side and every byte reached the host: pass the EOF on. When the
 * guest shut down both sides, the connection ends with an RST (virtio 1.x 5.10.6.6). */
static void conn_check_shutdown(struct vsock *v, struct conn *c)
{
	if (c->state != CONN_CONNECTED || c->len)
		return;
	if (c->guest_no_send && !c->host_wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->guest_no_send && c->guest_no_rcv)
		conn_reset(v, c);
}

/* Write the buffered guest bytes to the host socket; -1 if the host side is gone (connection reset). */
static int conn_flush(struct vsock *v, struct conn *c)
{
	while (c->len) {
		ssize_t n = send(c->fd, c->buf + c->head, c->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_reset(v, c);
			return -1;
		}
		c->head += (uint32_t)n, c->len -= (uint32_t)n;
		v->stats.bytes_to_host += (uint64_t)n;
		conn_note_forwarded(c, (size_t)n);
	}
	if (!c->len)
		c->head = 0;
	conn_check_shutdown(v, c);
	return 0;
}

/* Keep n bytes of a guest payload (at iov) the host socket did not take; the caller checked the bound. */
static int conn_buffer(struct conn *c, const struct iovec *iov, unsigned niov, size_t off, uint32_t n)
{
	if (c->head + c->len + n > c->cap && c->head) {
		memmove(c->buf, c->buf + c->head, c->len);
		c->head = 0;
	}
	if (c->len + n > c->cap) {
		uint32_t cap = MIN(MAX(MAX(c->cap * 2, c->len + n), 4096u), VSOCK_BUF_ALLOC);
		uint8_t *b = realloc(c->buf, cap);
		if (!b)
			return -1;
		c->buf = b, c->cap = cap;
	}
	iov_to_buf(iov, niov, off, c->buf + c->head + c->len, n);
	c->len += n;
	return 0;
}

/* ---- Guest -> host (tx queue) --------------------------------------------------------------------- */

static void owe_rst(struct vsock *v, uint32_t host_port, uint32_t guest_port)
{
	if (v->rst_count == VSOCK_PENDING_RST)
		return; /* a guest flooding us with junk loses some RSTs, not our memory */
	v->rst[(v->rst_head + v->rst_count++) % VSOCK_PENDING_RST] = (struct rst_addr){ host_port, guest_port };
}

static int unix_addr(struct sockaddr_un *sa, const char *path, uint32_t port, bool with_port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = with_port ? snprintf(sa->sun_path, sizeof(sa->sun_path), "%s_%" PRIu32, path, port)
			  : snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return n < 0 || (size_t)n >= sizeof(sa->sun_path) ? -1 : 0;
}

/* Guest REQUEST to host port P: connect to PATH_P now (Unix sockets connect at once or fail). */
static void guest_request(struct vsock *v, const struct vsock_hdr *h)
{
	if (conn_find(v, h->dst_port, h->src_port) || v->nconns >= VSOCK_MAX_CONNS) {
		owe_rst(v, h->dst_port, h->src_port);
		return;
	}
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || unix_addr(&sa, v->path, h->dst_port, true) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		owe_rst(v, h->dst_port, h->src_port);
		return;
	}
	struct conn *c = conn_new(v, fd, CONN_CONNECTED);
	if (!c) {
		close(fd);
		owe_rst(v, h->dst_port, h->src_port);
		return;
	}
	c->host_port = h->dst_port, c->guest_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc, c->peer_fwd_cnt = h->fwd_cnt;
	c->owe |= OWE_RESPONSE;
	v->stats.conns_from_guest++;
	conn_arm(v, c);
}

/* The guest accepted our REQUEST: tell the host client, then bridge. */
static void guest_response(struct vsock *v, struct conn *c)
{
	if (c->state != CONN_REQUESTED) {
		conn_reset(v, c);
		return;
	}
	char ok[24];
	int n = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->host_port);
	if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		conn_reset(v, c); /* a fresh socket takes a few bytes; if not, the client is gone */
		return;
	}
	c->state = CONN_CONNECTED;
	conn_arm(v, c);
}

static void guest_shutdown(struct vsock *v, struct conn *c, uint32_t flags)
{
	if (c->state != CONN_CONNECTED) {
		conn_reset(v, c);
		return;
	}
	c->guest_no_send |= !!(flags & VSOCK_SHUTDOWN_SEND);
	c->guest_no_rcv |= !!(flags & VSOCK_SHUTDOWN_RCV);
	conn_check_shutdown(v, c);
	if (c->state == CONN_CONNECTED)
		conn_arm(v, c);
}

/* Payload of an RW packet: to the host socket directly, the rest into the bounded buffer. */
static void guest_rw(struct vsock *v, struct conn *c, const struct virtq_chain *ch, uint32_t len)
{
	if (c->state != CONN_CONNECTED || c->guest_no_send || c->len + len > VSOCK_BUF_ALLOC) {
		conn_reset(v, c); /* data after SHUTDOWN or past the credit we gave: a broken peer */
		return;
	}
	size_t sent = 0;
	if (!c->len && len) {
		unsigned k = iov_slice(ch->iov, ch->nread, HDR_LEN, len, v->slice, VIRTQ_MAX_SEGS);
		struct msghdr m = { .msg_iov = v->slice, .msg_iovlen = k };
		ssize_t n;
		do
			n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_reset(v, c);
			return;
		}
		sent = n > 0 ? (size_t)n : 0;
		v->stats.bytes_to_host += sent;
		conn_note_forwarded(c, sent);
	}
	if (sent < len && conn_buffer(c, ch->iov, ch->nread, HDR_LEN + sent, len - (uint32_t)sent) < 0) {
		conn_reset(v, c);
		return;
	}
	conn_arm(v, c);
}

static void guest_packet_for(struct vsock *v, struct conn *c, const struct vsock_hdr *h,
			     const struct virtq_chain *ch)
{
	c->peer_buf_alloc = h->buf_alloc, c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RESPONSE: guest_response(v, c); break;
	case VSOCK_OP_SHUTDOWN: guest_shutdown(v, c, h->flags); break;
	case VSOCK_OP_RW: guest_rw(v, c, ch, h->len); break;
	case VSOCK_OP_CREDIT_UPDATE: break; /* the credit fields above are the update */
	case VSOCK_OP_CREDIT_REQUEST: c->owe |= OWE_CREDIT; break;
	default: conn_reset(v, c); break; /* REQUEST on a live connection, or an unknown op */
	}
}

void virtio_vsock_tx_packet(struct virtio_device *d, const struct virtq_chain *ch)
{
	struct vsock *v = to_vsock(d);
	struct vsock_hdr h;
	if (ch->read_len < HDR_LEN || iov_to_buf(ch->iov, ch->nread, 0, &h, HDR_LEN) != HDR_LEN) {
		v->stats.bad_packets++;
		return; /* no header: nobody to answer */
	}
	if (h.src_cid != v->guest_cid) {
		v->stats.bad_packets++;
		return; /* spoofed source: answering would address someone else */
	}
	bool bad = h.dst_cid != VSOCK_HOST_CID || h.type != VSOCK_TYPE_STREAM || h.len > VSOCK_MAX_PAYLOAD ||
		   h.len > ch->read_len - HDR_LEN || (h.op != VSOCK_OP_RW && h.len) || h.op == VSOCK_OP_INVALID ||
		   h.op > VSOCK_OP_CREDIT_REQUEST;
	v->stats.bad_packets += bad;
	struct conn *c = conn_find(v, h.dst_port, h.src_port);
	if (h.op == VSOCK_OP_RST) {
		if (c && !bad)
			conn_free(v, c);
		return; /* never answer an RST with an RST */
	}
	if (bad) {
		if (c)
			conn_reset(v, c);
		else
			owe_rst(v, h.dst_port, h.src_port);
		return;
	}
	if (h.op == VSOCK_OP_REQUEST && !c)
		guest_request(v, &h);
	else if (c && c->state != CONN_DEAD)
		guest_packet_for(v, c, &h, ch);
	else if (!c)
		owe_rst(v, h.dst_port, h.src_port);
}

/* ---- Host -> guest (rx queue) --------------------------------------------------------------------- */

static bool queue_live(struct vsock *v, unsigned q)
{
	return v->dev.transport && virtio_queue_live(&v->dev, q);
}

/* The next rx chain (or the one held back), re-arming the driver's kick when the ring runs dry. */
static bool rx_get(struct vsock *v)
{
	if (v->rx_held)
		return true;
	struct virtq *vq = &v->dev.vq[VSOCK_RXQ];
	for (;;) {
		int rc = virtq_pop(vq, v->rx_chain);
		if (rc == 0 && virtq_enable_notify(vq, true))
			rc = virtq_pop(vq, v->rx_chain);
		if (rc < 0)
			virtio_mark_broken(&v->dev, "malformed rx descriptor chain");
		if (rc != 1)
			return false;
		if (v->rx_chain->write_len >= HDR_LEN)
			break;
		virtq_push(vq, v->rx_chain->head, 0); /* too small for a header: give it back unused */
	}
	v->rx_held = true;
	return true;
}

static void hdr_for(const struct vsock *v, const struct conn *c, struct vsock_hdr *h, uint16_t op)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID, .dst_cid = v->guest_cid, .src_port = c->host_port,
		.dst_port = c->guest_port, .type = VSOCK_TYPE_STREAM, .op = op,
		.buf_alloc = VSOCK_BUF_ALLOC, .fwd_cnt = c->fwd_cnt,
	};
}

/* Send a header-only packet in the held rx chain. */
static void rx_send_hdr(struct vsock *v, const struct vsock_hdr *h)
{
	struct virtq_chain *ch = v->rx_chain;
	iov_from_buf(ch->iov + ch->nread, ch->nwrite, 0, h, HDR_LEN);
	virtq_push(&v->dev.vq[VSOCK_RXQ], ch->head, HDR_LEN);
	v->rx_held = false;
	if (h->op == VSOCK_OP_RST)
		v->stats.rsts_sent++;
}

static bool rx_send_pending_rsts(struct vsock *v)
{
	while (v->rst_count) {
		if (!rx_get(v))
			return false;
		struct rst_addr a = v->rst[v->rst_head];
		struct conn stub = { .host_port = a.host_port, .guest_port = a.guest_port };
		struct vsock_hdr h;
		hdr_for(v, &stub, &h, VSOCK_OP_RST);
		rx_send_hdr(v, &h);
		v->rst_head = (v->rst_head + 1) % VSOCK_PENDING_RST;
		v->rst_count--;
	}
	return true;
}

/* One owed control packet of c; false when the guest has no rx buffer. */
static bool rx_send_owed(struct vsock *v, struct conn *c, unsigned bit, uint16_t op)
{
	if (!rx_get(v))
		return false;
	struct vsock_hdr h;
	hdr_for(v, c, &h, op);
	if (op == VSOCK_OP_SHUTDOWN)
		h.flags = VSOCK_SHUTDOWN_SEND;
	c->fwd_cnt_told = c->fwd_cnt;
	c->owe &= ~(bit | OWE_CREDIT); /* every packet carries fwd_cnt */
	rx_send_hdr(v, &h);
	return true;
}

/* Read from the host socket straight into the held rx chain. 1 sent data, 0 nothing to read now, -1 no
 * rx buffer. EOF owes the guest a SHUTDOWN; a read error resets the connection. */
static int rx_send_data(struct vsock *v, struct conn *c)
{
	if (!rx_get(v))
		return -1;
	struct virtq_chain *ch = v->rx_chain;
	size_t room = MIN(MIN(ch->write_len - HDR_LEN, (uint64_t)guest_credit(c)), VSOCK_MAX_PAYLOAD);
	if (!room)
		return 0; /* a header-only buffer: keep it for a control packet */
	unsigned k = iov_slice(ch->iov + ch->nread, ch->nwrite, HDR_LEN, room, v->slice, VIRTQ_MAX_SEGS);
	struct msghdr m = { .msg_iov = v->slice, .msg_iovlen = k };
	ssize_t n;
	do
		n = recvmsg(c->fd, &m, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->host_readable = false;
		conn_arm(v, c);
		return 0;
	}
	if (n <= 0) {
		c->host_readable = false;
		if (n == 0) {
			c->host_eof = true;
			c->owe |= OWE_SHUTDOWN;
		} else {
			conn_reset(v, c);
		}
		conn_arm(v, c);
		return 0;
	}
	struct vsock_hdr h;
	hdr_for(v, c, &h, VSOCK_OP_RW);
	h.len = (uint32_t)n;
	iov_from_buf(ch->iov + ch->nread, ch->nwrite, 0, &h, HDR_LEN);
	virtq_push(&v->dev.vq[VSOCK_RXQ], ch->head, (uint32_t)(HDR_LEN + (size_t)n));
	v->rx_held = false;
	c->tx_cnt += (uint32_t)n;
	c->fwd_cnt_told = c->fwd_cnt;
	c->owe &= ~OWE_CREDIT;
	v->stats.bytes_to_guest += (uint64_t)n;
	return 1;
}

/* Everything c owes the guest, up to a burst of data packets. -1: out of rx buffers. 1: more to do. */
static int rx_serve_conn(struct vsock *v, struct conn *c)
{
	if (c->owe & OWE_RST) {
		if (!rx_send_owed(v, c, OWE_RST, VSOCK_OP_RST))
			return -1;
		conn_free(v, c);
		return 0;
	}
	if ((c->owe & OWE_REQUEST) && !rx_send_owed(v, c, OWE_REQUEST, VSOCK_OP_REQUEST))
		return -1;
	if ((c->owe & OWE_RESPONSE) && !rx_send_owed(v, c, OWE_RESPONSE, VSOCK_OP_RESPONSE))
		return -1;
	for (unsigned i = 0; i < BURST_PER_CONN; i++) {
		if (c->state != CONN_CONNECTED || !c->host_readable || c->guest_no_rcv || !guest_credit(c))
			break;
		int rc = rx_send_data(v, c);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (i == BURST_PER_CONN - 1)
			return 1;
	}
	if (c->state == CONN_DEAD)
		return rx_serve_conn(v, c); /* a read error just owed an RST */
	if ((c->owe & OWE_SHUTDOWN) && !rx_send_owed(v, c, OWE_SHUTDOWN, VSOCK_OP_SHUTDOWN))
		return -1;
	if ((c->owe & OWE_CREDIT) && !rx_send_owed(v, c, OWE_CREDIT, VSOCK_OP_CREDIT_UPDATE))
		return -1;
	return 0;
}

/* Give the guest what it is owed while it has rx buffers, round-robin over connections. */
static void rx_pump(struct vsock *v)
{
	if (!queue_live(v, VSOCK_RXQ))
		return;
	struct virtq *vq = &v->dev.vq[VSOCK_RXQ];
	uint16_t used_before = vq->used_idx;
	bool more = rx_send_pending_rsts(v);
	while (more) {
		if ((uint16_t)(vq->used_idx - used_before) >= VIRTIO_PASS_BUDGET) {
			virtio_queue_reschedule(&v->dev, VSOCK_RXQ); /* the other devices' turn first */
			break;
		}
		more = false;
		for (struct conn *c = v->conns, *next; c; c = next) {
			next = c->next; /* c may be freed */
			int rc = rx_serve_conn(v, c);
			if (rc < 0)
				goto out;
			more |= rc > 0;
		}
	}
out:
	if (vq->used_idx != used_before)
		virtio_queue_interrupt(&v->dev, VSOCK_RXQ, false);
}

static void tx_drain(struct vsock *v)
{
	struct virtq *vq = &v->dev.vq[VSOCK_TXQ];
	uint16_t used_before = vq->used_idx;
	struct virtio_pass pass = virtio_pass_begin(&v->dev, VSOCK_TXQ);
	while (virtio_pass_pop(&pass, v->chain) == 1) {
		virtio_vsock_tx_packet(&v->dev, v->chain);
		virtq_push(vq, v->chain->head, 0);
		if (v->rst_count >= VSOCK_PENDING_RST / 2)
			rx_pump(v); /* a long batch must not overflow the RST ring */
	}
	if (vq->used_idx != used_before)
		virtio_queue_interrupt(&v->dev, VSOCK_TXQ, false);
}

static void vsock_queue_notify(struct virtio_device *d, unsigned q)
{
	struct vsock *v = to_vsock(d);
	if (q == VSOCK_TXQ)
		tx_drain(v);
	if (q == VSOCK_TXQ || q == VSOCK_RXQ)
		rx_pump(v);
}

/* ---- Host sockets --------------------------------------------------------------------------------- */

static uint32_t fresh_host_port(struct vsock *v)
{
	for (;;) {
		uint32_t p = v->next_port++;
		if (v->next_port < 1024 || v->next_port == UINT32_MAX)
			v->next_port = 1024;
		bool used = false;
		for (struct conn *c = v->conns; c && !used; c = c->next)
			used = c->host_port == p && c->state != CONN_AWAIT_LINE;
		if (!used)
			return p;
	}
}

/* "CONNECT P" with P a decimal port: -1 if malformed. */
static int parse_connect_line(const char *line, uint32_t *port)
{
	if (strncmp(line, "CONNECT ", 8))
		return -1;
	uint64_t p;
	if (parse_uint(line + 8, 0, UINT32_MAX, &p) < 0)
		return -1;
	*port = (uint32_t)p;
	return 0;
}

/* Read the client's first line a byte at a time (so nothing after it is consumed), then ask the guest. */
static void host_line(struct vsock *v, struct conn *c)
{
	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || c->line_len == VSOCK_MAX_LINE - 1) {
			conn_free(v, c); /* gone, or an overlong line */
			return;
		}
		if (ch != '\n') {
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = 0;
		uint32_t port;
		if (parse_connect_line(c->line, &port) < 0) {
			conn_free(v, c);
			return;
		}
		c->guest_port = port;
		c->host_port = fresh_host_port(v);
		c->state = CONN_REQUESTED;
		c->owe |= OWE_REQUEST;
		v->stats.conns_from_host++;
		conn_arm(v, c);
		return;
	}
}

/* Clients still typing their CONNECT line are capped (VSOCK_MAX_AWAITING): a new one closes the oldest, so
 * idle clients cannot use up the connection slots. */
static void make_room_for_awaiting(struct vsock *v)
{
	struct conn *oldest = NULL;
	unsigned n = 0;
	for (struct conn *c = v->conns; c; c = c->next)
		if (c->state == CONN_AWAIT_LINE)
			n++, oldest = c; /* the list is newest first */
	if (n >= VSOCK_MAX_AWAITING)
		conn_free(v, oldest);
}

static void host_accept(struct vsock *v, bool live)
{
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (live)
			make_room_for_awaiting(v);
		struct conn *c = live && v->nconns < VSOCK_MAX_CONNS ? conn_new(v, fd, CONN_AWAIT_LINE) : NULL;
		if (!c) {
			close(fd); /* no guest driver yet, or too many connections */
			continue;
		}
		conn_arm(v, c);
	}
}

static void host_event(struct vsock *v, struct conn *c, uint32_t events)
{
	if (c->state == CONN_AWAIT_LINE) {
		host_line(v, c);
		return;
	}
	if (c->state == CONN_REQUESTED && (events & (EPOLLHUP | EPOLLERR))) {
		conn_reset(v, c); /* the client left before the guest answered: the guest hears RST */
		return;
	}
	if (c->state != CONN_CONNECTED)
		return;
	if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->len && conn_flush(v, c) < 0)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		c->host_readable = true;
	conn_arm(v, c);
}

/* A connection freed while its event is in the same batch must not be touched: events name connections
 * by pointer, so the batch is handled only for connections still on the list. */
static bool conn_listed(const struct vsock *v, const struct conn *c)
{
	for (const struct conn *x = v->conns; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

static void handle_socket_events(struct vsock *v, bool live)
{
	struct epoll_event ev[EPOLL_BATCH];
	int n = epoll_wait(v->epfd, ev, EPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		if (!ev[i].data.ptr)
			host_accept(v, live);
		else if (conn_listed(v, ev[i].data.ptr))
			host_event(v, ev[i].data.ptr, ev[i].events);
	}
}

void virtio_vsock_ready(void *arg)
{
	struct vsock *v = arg;
	struct virtio_transport *t = v->dev.transport;
	if (t)
		pthread_mutex_lock(&t->lock);
	bool live = queue_live(v, VSOCK_RXQ) && queue_live(v, VSOCK_TXQ);
	handle_socket_events(v, live);
	if (live)
		rx_pump(v);
	if (t)
		pthread_mutex_unlock(&t->lock);
}

/* ---- Device ops and lifecycle --------------------------------------------------------------------- */

static void close_all(struct vsock *v)
{
	while (v->conns)
		conn_free(v, v->conns);
	v->rst_count = v->rst_head = 0;
	v->rx_held = false;
}

static void vsock_reset(struct virtio_device *d)
{
	close_all(to_vsock(d));
}

static void vsock_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	uint8_t cfg[VSOCK_CONFIG_LEN];
	memcpy(cfg, &to_vsock(d)->guest_cid, sizeof(cfg)); /* le64 guest_cid */
	memcpy(data, cfg + off, len);
}

/* Connections are not part of a snapshot (their host sockets cannot be); an rx buffer the device holds
 * unused goes back to the ring, where the snapshot's ring positions find it. */
static void vsock_state_save(struct virtio_device *d, struct state_writer *w, const char *name)
{
	struct vsock *v = to_vsock(d);
	(void)w, (void)name;
	if (v->rx_held) {
		virtq_unpop(&d->vq[VSOCK_RXQ], 1);
		v->rx_held = false;
	}
}

#define VSOCK_EVENT_TRANSPORT_RESET 0

/* virtio 1.x 5.10.6.7: a transport reset event in the driver's next event buffer. A driver without one
 * posted keeps its old connections until they time out; it is not an error of the snapshot. */
static int vsock_state_load(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err)
{
	struct vsock *v = to_vsock(d);
	(void)r, (void)name, (void)err;
	if (!virtio_queue_live(d, VSOCK_EVQ) || virtq_pop(&d->vq[VSOCK_EVQ], v->chain) != 1)
		return 0;
	uint32_t id = htole32(VSOCK_EVENT_TRANSPORT_RESET);
	size_t n = iov_from_buf(v->chain->iov + v->chain->nread, v->chain->nwrite, 0, &id, sizeof(id));
	virtq_push(&d->vq[VSOCK_EVQ], v->chain->head, (uint32_t)n);
	virtio_queue_interrupt(d, VSOCK_EVQ, true);
	v->stats.transport_resets++;
	return 0;
}

static unsigned vsock_counters(struct virtio_device *d, struct virtio_counter *out)
{
	const struct vsock *v = to_vsock(d);
	const struct vsock_stats *s = &v->stats;
	const struct virtio_counter c[] = {
		{ "connections_from_guest", s->conns_from_guest }, { "connections_from_host", s->conns_from_host },
		{ "bytes_to_host", s->bytes_to_host }, { "bytes_to_guest", s->bytes_to_guest },
		{ "resets_sent", s->rsts_sent }, { "bad_packets", s->bad_packets },
		{ "transport_resets", s->transport_resets }, { "open_connections", v->nconns },
	};
	memcpy(out, c, sizeof(c));
	return ARRAY_SIZE(c);
}

static const struct virtio_device_ops vsock_ops = {
	.counters = vsock_counters,
	.config_read = vsock_config_read,
	.reset = vsock_reset,
	.queue_notify = vsock_queue_notify,
	.state_save = vsock_state_save,
	.state_load = vsock_state_load,
};

int vsock_check_path(const char *path, vt_err *err)
{
	struct sockaddr_un sa;
	if (!path || !*path)
		return vt_fail(err, "--vsock: the socket path is empty");
	if (strlen(path) + VSOCK_PATH_SUFFIX >= sizeof(sa.sun_path))
		return vt_fail(err, "--vsock: socket path '%s' is too long (at most %zu bytes, to leave room for "
			       "the _PORT suffix)", path, sizeof(sa.sun_path) - 1 - VSOCK_PATH_SUFFIX);
	return 0;
}

/* PATH may be replaced only if it is a socket nobody listens on (left by a crashed run): lib/unixsock. */
static int vsock_listen(struct vsock *v, vt_err *err)
{
	if (vsock_check_path(v->path, err) < 0)
		return -1;
	if ((v->listen_fd = unix_listen(v->path, 64, err)) < 0)
		return vt_err_prefix(err, "--vsock");
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->listen_fd, &ev) < 0) {
		vt_fail_errno(err, errno, "--vsock: epoll");
		unlink(v->path);
		return -1;
	}
	return 0;
}

static struct vsock *vsock_alloc(uint64_t guest_cid)
{
	struct vsock *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->guest_cid = guest_cid;
	v->listen_fd = -1;
	v->next_port = 1024;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->chain = malloc(sizeof(*v->chain));
	v->rx_chain = malloc(sizeof(*v->rx_chain));
	v->dev.id = VIRTIO_ID_VSOCK;
	v->dev.features = (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
	v->dev.nqueues = 3;
	for (unsigned q = 0; q < 3; q++)
		v->dev.queue_max[q] = VSOCK_QUEUE_SIZE;
	v->dev.config_len = VSOCK_CONFIG_LEN;
	v->dev.ops = &vsock_ops;
	v->dev.name = "virtio-vsock";
	return v;
}

static void vsock_free(struct vsock *v, bool remove_path)
{
	close_all(v);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	if (remove_path && v->path)
		unlink(v->path);
	if (v->epfd >= 0)
		close(v->epfd);
	free(v->path);
	free(v->chain);
	free(v->rx_chain);
	free(v);
}

int virtio_vsock_create(uint64_t guest_cid, const char *path, struct virtio_device **out, vt_err *err)
{
	if (guest_cid < VSOCK_CID_MIN || guest_cid > VSOCK_CID_MAX)
		return vt_fail(err, "--vsock: CID %" PRIu64 " is out of range (3..4294967294)", guest_cid);
	struct vsock *v = vsock_alloc(guest_cid);
	if (!v)
		return vt_fail_errno(err, ENOMEM, "virtio-vsock");
	v->path = strdup(path ? path : "");
	if (v->epfd < 0 || !v->chain || !v->rx_chain || !v->path) {
		vt_fail_errno(err, v->epfd < 0 ? errno : ENOMEM, "virtio-vsock");
		vsock_free(v, false);
		return -1;
	}
	if (vsock_listen(v, err) < 0) {
		vsock_free(v, false); /* vsock_listen removed what it created */
		return -1;
	}
	*out = &v->dev;
	return 0;
}

void virtio_vsock_destroy(struct virtio_device *d)
{
	vsock_free(to_vsock(d), true);
}

int virtio_vsock_fd(struct virtio_device *d)
{
	return to_vsock(d)->epfd;
}

void virtio_vsock_get_stats(struct virtio_device *d, struct vsock_stats *s)
{
	*s = to_vsock(d)->stats;
}

unsigned virtio_vsock_nconns(struct virtio_device *d)
{
	return to_vsock(d)->nconns;
}

void virtio_vsock_print_stats(struct virtio_device *d, FILE *f)
{
	const struct vsock_stats *s = &to_vsock(d)->stats;
	fprintf(f, "virtio-vsock: connections %" PRIu64 " from guest, %" PRIu64 " from host; bytes %" PRIu64
		" to host, %" PRIu64 " to guest; %" PRIu64 " RSTs sent, %" PRIu64 " bad packets, %" PRIu64
		" transport resets\n", s->conns_from_guest, s->conns_from_host, s->bytes_to_host, s->bytes_to_guest,
		s->rsts_sent, s->bad_packets, s->transport_resets);
}
