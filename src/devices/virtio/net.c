/* virtio-net (virtio 1.x, 5.1).
 *
 * Sink backends (slirp): no offloads, no merged rx buffers: every rx buffer chain the driver posts holds one
 * whole frame after a zeroed 12-byte header. Frames for the guest arrive from the backend's thread into a
 * bounded queue (`pending`, its own mutex); an eventfd then wakes the device thread, which moves them into
 * rx buffers under the transport lock. Frames wait there while the driver has posted no buffer, and the
 * driver's next rx kick drains them; past RX_PENDING_MAX frames the newest are dropped, as a full NIC would.
 *
 * Header-carrying backends (tap): checksum/TSO offloads both ways and MRG_RXBUF. tx: the guest's header is
 * checked (only negotiated offloads, offsets inside the frame) and copied out, then header copy plus the
 * frame's guest buffers go to the backend in one writev (no copy of the frame). rx: the device reads one
 * frame into a bounce buffer on its own thread and spreads it over as many rx chains as it takes (merged
 * buffers; num_buffers in the first header, all used entries published together) or into one big chain
 * (no MRG_RXBUF: Linux then posts 64 KiB chains if it asked for GSO). With no rx buffer posted, the frame
 * stays in the bounce buffer and the backend's fd is taken out of the watched set until the driver kicks,
 * so frames back up in the kernel's tap queue rather than spinning the loop.
 *
 * tx completions are published at once but their interrupt waits (TX_IRQ_DEFER_NS at most): a driver that
 * streams frees them itself on its next transmit or in its rx poll (Linux's virtnet_poll_cleantx) and moves
 * used_event past them, so the interrupt is checked again at the next tx kick or when the timer fires, and
 * sent only if the driver still asks for it. A stream of frames then costs one interrupt per ACK, not one
 * per ACK plus one per frame; nothing waits longer than the timer, or past TX_IRQ_DEFER_MAX completions (half
 * the ring at most): a driver that stopped its queue for want of descriptors is not kept waiting.
 *
 * The event loop watches one fd per device: an epoll set holding the eventfd (sink) or the backend's fd
 * (tap), and the tx interrupt's timerfd, so the device can stop watching the tap without a change to the
 * loop. tx runs on the device thread (queue_notify). */
#include "devices/virtio/net.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "lib/iov.h"
#include "lib/util.h"
#include "net/backend.h"

#define NET_QUEUE_SIZE 256
#define RX_PENDING_MAX 256
#define NET_CONFIG_LEN 8          /* mac[6], status */
#define RX_BUF_CAP (VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_GSO_FRAME + 1) /* +1: a full read means truncated */
#define RX_BUDGET 256             /* frames per wake-up before the loop serves other devices */
/* Longest wait of a tx completion's interrupt, as a NIC's tx coalescing: short, because a TCP socket with
 * an unfreed skb corks its next small write until the skb is freed (autocork), and a lone sender frees it
 * only on this interrupt. */
#define TX_IRQ_DEFER_NS 50000
#define TX_IRQ_DEFER_MAX 64       /* or completions: a driver that waits for them gets them in bulk */
#define NET_OFFLOAD_FEATURES                                                                          \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) | \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN) | (1ULL << VIRTIO_NET_F_HOST_TSO4) | \
	 (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_MRG_RXBUF))

struct pending_frame {
	size_t len;
	uint8_t data[];
};

struct net_stats {
	uint64_t tx_frames, tx_bytes, tx_bad, tx_errors;
	uint64_t tx_irq_deferred, tx_irq_unneeded; /* tx passes whose interrupt waited; of those, not needed */
	uint64_t rx_frames, rx_bytes, rx_bad, rx_no_driver;
};

struct virtio_net {
	struct virtio_device dev;
	uint8_t config[NET_CONFIG_LEN];
	struct net_backend *backend;
	int rx_fd;                    /* eventfd: frames are pending (sink backends) */
	int poll_fd;                  /* epoll set watched by the loop: rx_fd or the backend's fd */
	bool backend_watched;         /* the backend's fd is in poll_fd (header-carrying backends) */
	int tx_timer_fd;              /* timerfd in poll_fd: a deferred tx interrupt is due */
	bool tx_irq_due;              /* completions published whose interrupt was not checked yet */
	unsigned tx_unchecked;        /* how many */
	bool tx_timer_armed;          /* tx_timer_fd is set and its expiry not yet read */
	uint64_t tx_deadline;         /* now_ns() at which it expires */
	struct net_stats st;          /* device thread only (read at exit) */
	uint8_t *rx_buf;              /* RX_BUF_CAP: one frame read from the backend, device thread only */
	size_t rx_len;                /* bytes in rx_buf (header + frame), 0 none */
	uint16_t rx_heads[NET_QUEUE_SIZE]; /* chains of one merged-buffer frame */
	uint32_t rx_lens[NET_QUEUE_SIZE];
	struct iovec *tx_iov;         /* VIRTQ_MAX_SEGS + 1: the header copy and the frame's segments */
	pthread_mutex_t pending_lock;
	unsigned head, count;         /* ring of pending frames */
	struct pending_frame *pending[RX_PENDING_MAX];
	uint64_t rx_dropped;
	struct virtq_chain *chain;    /* scratch, used only on the device thread */
	uint8_t *tx_buf;              /* VIRTIO_NET_MAX_FRAME bytes, device thread only */
};

#define to_net(d) ((struct virtio_net *)(d))

/* ---- Data path helpers ---------------------------------------------------------------------------- */

long virtio_net_tx_frame(const struct virtq_chain *c, uint8_t *buf, size_t cap)
{
	if (c->read_len < VIRTIO_NET_HDR_LEN || c->read_len - VIRTIO_NET_HDR_LEN > cap)
		return -1;
	return (long)iov_to_buf(c->iov, c->nread, VIRTIO_NET_HDR_LEN, buf, c->read_len - VIRTIO_NET_HDR_LEN);
}

uint32_t virtio_net_rx_fill(const struct virtq_chain *c, const uint8_t *frame, size_t len)
{
	if (c->write_len < VIRTIO_NET_HDR_LEN + (uint64_t)len)
		return 0;
	uint8_t hdr[VIRTIO_NET_HDR_LEN] = { 0 };
	hdr[10] = 1; /* num_buffers (le16) = 1: the frame is in this one chain */
	size_t done = 0, total = VIRTIO_NET_HDR_LEN + len;
	for (unsigned i = c->nread; i < c->nread + c->nwrite && done < total; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t n = MIN(c->iov[i].iov_len, total - done);
		for (size_t k = 0; k < n; k++, done++)
			p[k] = done < VIRTIO_NET_HDR_LEN ? hdr[done] : frame[done - VIRTIO_NET_HDR_LEN];
	}
	return (uint32_t)done;
}

static bool has(uint64_t features, unsigned bit)
{
	return features & (1ULL << bit);
}

static bool gso_allowed(unsigned gso, uint64_t f, bool from_guest)
{
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return has(f, from_guest ? VIRTIO_NET_F_HOST_TSO4 : VIRTIO_NET_F_GUEST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return has(f, from_guest ? VIRTIO_NET_F_HOST_TSO6 : VIRTIO_NET_F_GUEST_TSO6);
	default: /* UDP (UFO) is never offered */
		return false;
	}
}

bool virtio_net_hdr_valid(const struct virtio_net_hdr *h, size_t frame_len, uint64_t f, bool from_guest)
{
	uint8_t known = from_guest ? VIRTIO_NET_HDR_F_NEEDS_CSUM : VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	if (h->flags & ~known)
		return false;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!has(f, from_guest ? VIRTIO_NET_F_CSUM : VIRTIO_NET_F_GUEST_CSUM))
			return false;
		if ((size_t)h->csum_start + h->csum_offset + 2 > frame_len)
			return false;
	}
	unsigned gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return !(h->gso_type & VIRTIO_NET_HDR_GSO_ECN);
	if (!gso_allowed(gso, f, from_guest))
		return false;
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(f, from_guest ? VIRTIO_NET_F_HOST_ECN : VIRTIO_NET_F_GUEST_ECN))
		return false;
	return h->gso_size != 0 && h->hdr_len <= frame_len;
}

/* Copy len bytes of data into the writable part of c; returns the bytes copied. Records where bytes 10
 * and 11 of the whole frame (num_buffers of the header) landed, at offset `at` into the frame. */
static uint32_t copy_to_chain(const struct virtq_chain *c, const uint8_t *data, size_t len, size_t at,
			      uint8_t *num_buffers[2])
{
	size_t done = 0;
	for (unsigned i = c->nread; i < c->nread + c->nwrite && done < len; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t k = MIN(c->iov[i].iov_len, len - done);
		memcpy(p, data + done, k);
		for (size_t b = 0; b < 2; b++) {
			size_t pos = offsetof(struct virtio_net_hdr, num_buffers) + b;
			if (pos >= at + done && pos < at + done + k)
				num_buffers[b] = p + (pos - at - done);
		}
		done += k;
	}
	return (uint32_t)done;
}

/* ---- Pending rx frames (any thread) --------------------------------------------------------------- */

static void deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;
	struct pending_frame *f = malloc(sizeof(*f) + len);
	pthread_mutex_lock(&n->pending_lock);
	if (!f || n->count == RX_PENDING_MAX) {
		n->rx_dropped++;
		pthread_mutex_unlock(&n->pending_lock);
		free(f);
		return;
	}
	f->len = len;
	memcpy(f->data, frame, len);
	n->pending[(n->head + n->count++) % RX_PENDING_MAX] = f;
	pthread_mutex_unlock(&n->pending_lock);
	uint64_t one = 1;
	if (write(n->rx_fd, &one, sizeof(one)) < 0) {
		/* saturated counter: a wake-up is pending anyway */
	}
}

static struct pending_frame *peek_pending(struct virtio_net *n)
{
	pthread_mutex_lock(&n->pending_lock);
	struct pending_frame *f = n->count ? n->pending[n->head] : NULL;
	pthread_mutex_unlock(&n->pending_lock);
	return f;
}

static void drop_first_pending(struct virtio_net *n)
{
	pthread_mutex_lock(&n->pending_lock);
	free(n->pending[n->head]);
	n->head = (n->head + 1) % RX_PENDING_MAX;
	n->count--;
	pthread_mutex_unlock(&n->pending_lock);
}

/* ---- Sink backends (device thread, transport lock held) ------------------------------------------- */

/* Move pending frames into posted rx buffers. When the driver has none left, ask it to kick us when it
 * posts more (and re-check: it may have posted some meanwhile). */
static void sink_rx_drain(struct virtio_net *n)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_RXQ];
	bool pushed = false;
	struct pending_frame *f;
	while ((f = peek_pending(n))) {
		int rc = virtq_pop(vq, n->chain);
		if (rc < 0) {
			virtio_mark_broken(&n->dev, "malformed rx descriptor chain");
			return;
		}
		if (rc == 0) {
			if (virtq_enable_notify(vq, true))
				continue;
			break;
		}
		uint32_t written = virtio_net_rx_fill(n->chain, f->data, f->len);
		virtq_push(vq, n->chain->head, written);
		if (written)
			n->st.rx_frames++, n->st.rx_bytes += f->len;
		else
			n->st.rx_bad++;
		drop_first_pending(n);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&n->dev, VIRTIO_NET_RXQ, false);
}

static void sink_tx_one(struct virtio_net *n)
{
	long len = virtio_net_tx_frame(n->chain, n->tx_buf, VIRTIO_NET_MAX_FRAME);
	if (len > 0) {
		n->backend->send(n->backend, n->tx_buf, (size_t)len);
		n->st.tx_frames++, n->st.tx_bytes += (uint64_t)len;
	} else {
		n->st.tx_bad++;
	}
}

/* ---- Header-carrying backends (device thread) ----------------------------------------------------- */

static void watch_backend(struct virtio_net *n, bool on)
{
	if (n->backend_watched == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN };
	if (epoll_ctl(n->poll_fd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, n->backend->rx_fd, &ev) == 0)
		n->backend_watched = on;
}

/* The guest's header, wherever its 12 bytes are among the readable segments. */
static void read_header(const struct virtq_chain *c, struct virtio_net_hdr *h)
{
	iov_to_buf(c->iov, c->nread, 0, h, sizeof(*h));
}

/* iov[0] = our checked copy of the header, then the frame's segments as they are in guest memory (the
 * guest may still change the frame: the kernel checks what it parses, and we never read it again). */
static int tx_iovec(struct virtio_net *n, const struct virtq_chain *c, struct virtio_net_hdr *h)
{
	struct iovec *iov = n->tx_iov;
	iov[0] = (struct iovec){ .iov_base = h, .iov_len = sizeof(*h) };
	int cnt = 1;
	size_t skip = sizeof(*h);
	for (unsigned i = 0; i < c->nread; i++) {
		size_t s = MIN(skip, c->iov[i].iov_len);
		skip -= s;
		if (c->iov[i].iov_len > s)
			iov[cnt++] = (struct iovec){ .iov_base = (uint8_t *)c->iov[i].iov_base + s,
						     .iov_len = c->iov[i].iov_len - s };
	}
	return cnt;
}

static void vnet_tx_one(struct virtio_net *n)
{
	const struct virtq_chain *c = n->chain;
	if (c->read_len < VIRTIO_NET_HDR_LEN || c->read_len - VIRTIO_NET_HDR_LEN > VIRTIO_NET_MAX_GSO_FRAME) {
		n->st.tx_bad++;
		return;
	}
	size_t frame_len = c->read_len - VIRTIO_NET_HDR_LEN;
	struct virtio_net_hdr h;
	read_header(c, &h);
	if (!virtio_net_hdr_valid(&h, frame_len, n->dev.negotiated, true)) {
		n->st.tx_bad++;
		return;
	}
	h.num_buffers = 0;
	int cnt = tx_iovec(n, c, &h);
	if (cnt > IOV_MAX) { /* a chain of tiny segments: flatten it */
		long len = virtio_net_tx_frame(c, n->tx_buf, VIRTIO_NET_MAX_GSO_FRAME);
		n->tx_iov[1] = (struct iovec){ .iov_base = n->tx_buf, .iov_len = (size_t)len };
		cnt = 2;
	}
	if (n->backend->sendv(n->backend, n->tx_iov, cnt) < 0) {
		n->st.tx_errors++;
		return;
	}
	n->st.tx_frames++, n->st.tx_bytes += frame_len;
}

enum rx_result { RX_DONE, RX_NO_BUFFERS, RX_BROKEN };

/* No MRG_RXBUF: the whole frame in one chain, or dropped if the chain is too small (the chain is then
 * kept for the next frame). */
static enum rx_result rx_fill_one_chain(struct virtio_net *n, uint8_t *frame, size_t len)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_RXQ];
	int rc = virtq_pop(vq, n->chain);
	if (rc <= 0)
		return rc < 0 ? RX_BROKEN : RX_NO_BUFFERS;
	if (n->chain->write_len < len) {
		virtq_unpop(vq, 1);
		n->st.rx_bad++;
		return RX_DONE;
	}
	uint8_t *nb[2] = { NULL, NULL };
	((struct virtio_net_hdr *)(void *)frame)->num_buffers = 1;
	virtq_push(vq, n->chain->head, copy_to_chain(n->chain, frame, len, 0, nb));
	n->st.rx_frames++, n->st.rx_bytes += len - VIRTIO_NET_HDR_LEN;
	return RX_DONE;
}

/* MRG_RXBUF: as many chains as the frame needs, num_buffers set in the first header, all used entries
 * published at once. Out of chains midway: give them back and wait for more. */
static enum rx_result rx_fill_merged(struct virtio_net *n, const uint8_t *frame, size_t len)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_RXQ];
	uint8_t *nb[2] = { NULL, NULL };
	unsigned k = 0;
	for (size_t done = 0; done < len; k++) {
		if (k == vq->size) { /* the whole ring cannot hold it */
			virtq_unpop(vq, k);
			n->st.rx_bad++;
			return RX_DONE;
		}
		int rc = virtq_pop(vq, n->chain);
		if (rc < 0)
			return RX_BROKEN;
		if (rc == 0) {
			virtq_unpop(vq, k);
			return RX_NO_BUFFERS;
		}
		uint32_t w = copy_to_chain(n->chain, frame + done, len - done, done, nb);
		n->rx_heads[k] = n->chain->head, n->rx_lens[k] = w;
		done += w;
	}
	*nb[0] = (uint8_t)k, *nb[1] = (uint8_t)(k >> 8);
	for (unsigned i = 0; i < k; i++)
		virtq_fill(vq, i, n->rx_heads[i], n->rx_lens[i]);
	virtq_flush(vq, k);
	n->st.rx_frames++, n->st.rx_bytes += len - VIRTIO_NET_HDR_LEN;
	return RX_DONE;
}

static enum rx_result vnet_rx_one(struct virtio_net *n, uint8_t *frame, size_t len)
{
	struct virtio_net_hdr h;
	memcpy(&h, frame, sizeof(h));
	if (!virtio_net_hdr_valid(&h, len - VIRTIO_NET_HDR_LEN, n->dev.negotiated, false)) {
		n->st.rx_bad++;
		return RX_DONE;
	}
	if (virtio_has_feature(&n->dev, VIRTIO_NET_F_MRG_RXBUF))
		return rx_fill_merged(n, frame, len);
	return rx_fill_one_chain(n, frame, len);
}

/* Read the next frame into rx_buf unless one waits there already; false when the backend has none. */
static bool vnet_next_frame(struct virtio_net *n)
{
	while (!n->rx_len) {
		ssize_t r = n->backend->recv(n->backend, n->rx_buf, RX_BUF_CAP);
		if (r <= 0) /* none (EAGAIN), or a backend gone (0): either way nothing more to read now */
			return false;
		if (r > VIRTIO_NET_HDR_LEN && r < RX_BUF_CAP)
			n->rx_len = (size_t)r;
		else
			n->st.rx_bad++; /* no frame, or truncated */
	}
	return true;
}

static void vnet_rx_drain(struct virtio_net *n)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_RXQ];
	bool pushed = false;
	for (unsigned budget = RX_BUDGET; budget && vnet_next_frame(n); budget--) {
		enum rx_result r = vnet_rx_one(n, n->rx_buf, n->rx_len);
		if (r == RX_BROKEN) {
			virtio_mark_broken(&n->dev, "malformed rx descriptor chain");
			return;
		}
		if (r == RX_NO_BUFFERS) {
			if (virtq_enable_notify(vq, true))
				continue;
			watch_backend(n, false); /* until the driver posts buffers and kicks */
			break;
		}
		pushed = pushed || n->rx_len;
		n->rx_len = 0;
	}
	if (!n->rx_len)
		watch_backend(n, true);
	if (pushed)
		virtio_queue_interrupt(&n->dev, VIRTIO_NET_RXQ, false);
}

/* The driver is not ready for frames: drop what the backend has, as a NIC without a driver would. */
static void vnet_rx_discard(struct virtio_net *n)
{
	n->rx_len = 0;
	for (unsigned budget = RX_BUDGET; budget && vnet_next_frame(n); budget--)
		n->rx_len = 0, n->st.rx_no_driver++;
	watch_backend(n, true);
}

/* ---- Queues (device thread, transport lock held) -------------------------------------------------- */

static void rx_drain(struct virtio_net *n)
{
	if (n->backend->vnet_hdr)
		vnet_rx_drain(n);
	else
		sink_rx_drain(n);
}

/* The deferred tx interrupt, checked against the driver's suppression state as it is now. */
static void tx_irq_flush(struct virtio_net *n)
{
	if (!n->tx_irq_due)
		return;
	n->tx_irq_due = false;
	n->tx_unchecked = 0;
	if (virtq_should_notify(&n->dev.vq[VIRTIO_NET_TXQ]))
		virtio_queue_interrupt(&n->dev, VIRTIO_NET_TXQ, true);
	else
		n->st.tx_irq_unneeded++;
}

/* Completions were published: check their interrupt at the next tx kick, or when the timer fires. The
 * timer stays armed until its expiry is read (tx_timer_expired), so it is set at most once per period. */
static void tx_irq_defer(struct virtio_net *n, unsigned completions)
{
	n->tx_irq_due = true;
	n->tx_unchecked += completions;
	if (n->tx_unchecked >= MIN(TX_IRQ_DEFER_MAX, n->dev.vq[VIRTIO_NET_TXQ].size / 2u)) {
		tx_irq_flush(n);
		return;
	}
	n->st.tx_irq_deferred++;
	if (n->tx_timer_armed)
		return;
	struct itimerspec its = { .it_value = { .tv_nsec = TX_IRQ_DEFER_NS } };
	if (timerfd_settime(n->tx_timer_fd, 0, &its, NULL) < 0) {
		tx_irq_flush(n); /* no timer: no waiting */
		return;
	}
	n->tx_deadline = now_ns() + TX_IRQ_DEFER_NS;
	n->tx_timer_armed = true;
}

/* On the loop's wake-up: if the timer is due, read its expiry (or poll_fd would stay readable) and send
 * the interrupt if it is still needed. Before the deadline no syscall: the wake-up was for rx. */
static void tx_timer_expired(struct virtio_net *n)
{
	uint64_t ticks;
	if (!n->tx_timer_armed || now_ns() < n->tx_deadline)
		return;
	if (read(n->tx_timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return; /* not yet signalled: the next wake-up reads it */
	n->tx_timer_armed = false;
	tx_irq_flush(n);
}

static void tx_irq_cancel(struct virtio_net *n)
{
	struct itimerspec off = { 0 };
	n->tx_irq_due = false;
	n->tx_unchecked = 0;
	if (n->tx_timer_armed && timerfd_settime(n->tx_timer_fd, 0, &off, NULL) == 0)
		n->tx_timer_armed = false; /* disarming also drops an expiry not yet read */
}

static void tx_drain(struct virtio_net *n)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_TXQ];
	struct virtio_pass pass = virtio_pass_begin(&n->dev, VIRTIO_NET_TXQ);
	tx_irq_flush(n); /* the driver's used_event as it is at its kick */
	unsigned pushed = 0;
	int rc;
	while ((rc = virtio_pass_pop(&pass, n->chain)) == 1) {
		if (n->backend->vnet_hdr)
			vnet_tx_one(n);
		else
			sink_tx_one(n);
		virtq_push(vq, n->chain->head, 0);
		pushed++;
	}
	if (rc == 0 && pushed)
		tx_irq_defer(n, pushed);
}

static void net_queue_notify(struct virtio_device *d, unsigned q)
{
	if (q == VIRTIO_NET_RXQ)
		rx_drain(to_net(d));
	else if (q == VIRTIO_NET_TXQ)
		tx_drain(to_net(d));
}

static void net_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, to_net(d)->config + off, len);
}

/* Features are final: let the backend hand us exactly the offloaded frames the driver accepted. */
static int net_activate(struct virtio_device *d)
{
	struct virtio_net *n = to_net(d);
	vt_err err;
	if (n->backend->vnet_hdr && n->backend->set_offload(n->backend, d->negotiated, &err) < 0)
		return -1;
	return 0;
}

static void net_reset(struct virtio_device *d)
{
	struct virtio_net *n = to_net(d);
	vt_err err;
	tx_irq_cancel(n);
	if (n->backend->vnet_hdr)
		n->backend->set_offload(n->backend, 0, &err);
}

int virtio_net_rx_fd(struct virtio_device *d)
{
	return to_net(d)->poll_fd;
}

/* The backend has frames: move them to the guest if the driver is running and its rx queue is usable. */
void virtio_net_rx_ready(void *arg)
{
	struct virtio_net *n = arg;
	uint64_t cnt;
	/* a sink's frames are pending only if its eventfd was written: the wake-up may be the timer's */
	bool rx_woken = n->backend->vnet_hdr || read(n->rx_fd, &cnt, sizeof(cnt)) == sizeof(cnt);
	struct virtio_transport *t = n->dev.transport;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	tx_timer_expired(n);
	if (rx_woken && virtio_queue_live(&n->dev, VIRTIO_NET_RXQ))
		rx_drain(n);
	else if (rx_woken && n->backend->vnet_hdr)
		vnet_rx_discard(n);
	pthread_mutex_unlock(&t->lock);
}

void virtio_net_print_stats(struct virtio_device *d, FILE *f)
{
	const struct net_stats *s = &to_net(d)->st;
	fprintf(f, "virtio-net: tx %llu frames %llu bytes, %llu malformed, %llu send errors; rx %llu frames %llu bytes, "
		"%llu dropped, %llu before the driver was ready; tx interrupts deferred %llu times, %llu of them not "
		"needed\n", (unsigned long long)s->tx_frames,
		(unsigned long long)s->tx_bytes, (unsigned long long)s->tx_bad, (unsigned long long)s->tx_errors,
		(unsigned long long)s->rx_frames, (unsigned long long)s->rx_bytes, (unsigned long long)s->rx_bad,
		(unsigned long long)s->rx_no_driver, (unsigned long long)s->tx_irq_deferred,
		(unsigned long long)s->tx_irq_unneeded);
}

static unsigned net_counters(struct virtio_device *d, struct virtio_counter *out)
{
	const struct net_stats *s = &to_net(d)->st;
	const struct virtio_counter c[] = {
		{ "tx_frames", s->tx_frames }, { "tx_bytes", s->tx_bytes }, { "tx_malformed", s->tx_bad },
		{ "tx_send_errors", s->tx_errors }, { "rx_frames", s->rx_frames }, { "rx_bytes", s->rx_bytes },
		{ "rx_dropped", s->rx_bad }, { "rx_before_driver", s->rx_no_driver },
		{ "tx_irq_deferred", s->tx_irq_deferred }, { "tx_irq_unneeded", s->tx_irq_unneeded },
	};
	memcpy(out, c, sizeof(c));
	return ARRAY_SIZE(c);
}

/* A frame the backend gave but the guest has not got is not part of a snapshot: the network lost it. */
static const struct virtio_device_ops net_ops = {
	.counters = net_counters,
	.config_read = net_config_read,
	.queue_notify = net_queue_notify,
	.activate = net_activate,
	.reset = net_reset,
	.state_save = virtio_stateless_save,
	.state_load = virtio_stateless_load,
};

/* ---- Lifecycle ------------------------------------------------------------------------------------ */

static struct virtio_net *net_alloc(const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->rx_fd = n->poll_fd = n->tx_timer_fd = -1;
	pthread_mutex_init(&n->pending_lock, NULL);
	n->dev.id = VIRTIO_ID_NET;
	n->dev.features = (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
			  (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS);
	n->dev.nqueues = 2;
	n->dev.queue_max[VIRTIO_NET_RXQ] = n->dev.queue_max[VIRTIO_NET_TXQ] = NET_QUEUE_SIZE;
	n->dev.config_len = NET_CONFIG_LEN;
	n->dev.ops = &net_ops;
	n->dev.name = "virtio-net";
	memcpy(n->config, mac, 6);
	n->config[6] = VIRTIO_NET_S_LINK_UP; /* status, le16 */
	n->chain = malloc(sizeof(*n->chain));
	n->tx_buf = malloc(VIRTIO_NET_MAX_GSO_FRAME);
	n->rx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->poll_fd = epoll_create1(EPOLL_CLOEXEC);
	n->tx_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	return n;
}

/* The fd that goes into the watched set: the eventfd for sink backends, the backend's own for the rest. */
static int attach_backend(struct virtio_net *n, struct net_backend *be, vt_err *err)
{
	n->backend = be;
	if (be->vnet_hdr) {
		n->dev.features |= NET_OFFLOAD_FEATURES;
		n->rx_buf = malloc(RX_BUF_CAP);
		n->tx_iov = calloc(VIRTQ_MAX_SEGS + 1, sizeof(*n->tx_iov));
		if (!n->rx_buf || !n->tx_iov)
			return vt_fail_errno(err, ENOMEM, "virtio-net");
		watch_backend(n, true);
		if (!n->backend_watched)
			return vt_fail_errno(err, errno, "virtio-net: epoll");
		return 0;
	}
	struct epoll_event ev = { .events = EPOLLIN };
	if (epoll_ctl(n->poll_fd, EPOLL_CTL_ADD, n->rx_fd, &ev) < 0)
		return vt_fail_errno(err, errno, "virtio-net: epoll");
	return 0;
}

static struct virtio_net *net_new(const struct net_opts *o, vt_err *err)
{
	struct virtio_net *n = net_alloc(o->mac);
	if (!n) {
		vt_fail_errno(err, ENOMEM, "virtio-net");
		return NULL;
	}
	struct epoll_event timer_ev = { .events = EPOLLIN };
	if (!n->chain || !n->tx_buf || n->rx_fd < 0 || n->poll_fd < 0 || n->tx_timer_fd < 0 ||
	    epoll_ctl(n->poll_fd, EPOLL_CTL_ADD, n->tx_timer_fd, &timer_ev) < 0) {
		vt_fail_errno(err, !n->chain || !n->tx_buf ? ENOMEM : errno, "virtio-net");
		virtio_net_destroy(&n->dev);
		return NULL;
	}
	return n;
}

int virtio_net_create_on(const struct net_opts *o, struct net_backend *be, struct virtio_device **out, vt_err *err)
{
	struct virtio_net *n = net_new(o, err);
	if (!n) {
		be->destroy(be);
		return -1;
	}
	if (attach_backend(n, be, err) < 0) {
		virtio_net_destroy(&n->dev);
		return -1;
	}
	*out = &n->dev;
	return 0;
}

int virtio_net_create(const struct net_opts *o, struct virtio_device **out, vt_err *err)
{
	struct virtio_net *n = net_new(o, err);
	if (!n)
		return -1;
	struct net_backend *be;
	struct net_sink sink = { .deliver = deliver, .opaque = n };
	int rc = o->kind == NET_TAP ? net_tap_create(o, &be, err) : net_slirp_create(o, sink, &be, err);
	if (rc < 0 || attach_backend(n, be, err) < 0) {
		virtio_net_destroy(&n->dev);
		return vt_err_prefix(err, "--net");
	}
	*out = &n->dev;
	return 0;
}

void virtio_net_destroy(struct virtio_device *d)
{
	struct virtio_net *n = to_net(d);
	if (n->backend)
		n->backend->destroy(n->backend); /* first: no more deliveries */
	while (n->count)
		drop_first_pending(n);
	if (n->rx_fd >= 0)
		close(n->rx_fd);
	if (n->poll_fd >= 0)
		close(n->poll_fd);
	if (n->tx_timer_fd >= 0)
		close(n->tx_timer_fd);
	pthread_mutex_destroy(&n->pending_lock);
	free(n->chain);
	free(n->tx_buf);
	free(n->rx_buf);
	free(n->tx_iov);
	free(n);
}
