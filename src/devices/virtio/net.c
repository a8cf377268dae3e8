/* virtio-net (virtio 1.x, 5.1) without merged rx buffers or offloads: every rx buffer chain the driver posts
 * holds one whole frame after a 12-byte header (Linux posts such buffers when MRG_RXBUF is not offered).
 *
 * Threads: tx runs on the device thread (queue_notify of the tx queue) and hands frames to the backend
 * synchronously. Frames for the guest arrive from the backend's thread into a bounded queue (`pending`,
 * its own mutex); an eventfd then wakes the device thread, which moves them into rx buffers under the
 * transport lock. Frames wait there while the driver has posted no buffer, and the driver's next rx kick
 * drains them; past RX_PENDING_MAX frames the newest are dropped, as a full NIC would (TCP recovers). */
#include "devices/virtio/net.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "lib/util.h"
#include "net/backend.h"

#define NET_QUEUE_SIZE 256
#define RX_PENDING_MAX 256
#define NET_CONFIG_LEN 8          /* mac[6], status */

struct pending_frame {
	size_t len;
	uint8_t data[];
};

struct virtio_net {
	struct virtio_device dev;
	uint8_t config[NET_CONFIG_LEN];
	struct net_backend *backend;
	int rx_fd;                    /* eventfd: frames are pending */
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
	size_t skip = VIRTIO_NET_HDR_LEN, out = 0;
	for (unsigned i = 0; i < c->nread; i++) {
		size_t n = c->iov[i].iov_len;
		const uint8_t *p = c->iov[i].iov_base;
		size_t s = MIN(skip, n);
		skip -= s;
		memcpy(buf + out, p + s, n - s);
		out += n - s;
	}
	return (long)out;
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

/* ---- Queues (device thread, transport lock held) -------------------------------------------------- */

/* Move pending frames into posted rx buffers. When the driver has none left, ask it to kick us when it
 * posts more (and re-check: it may have posted some meanwhile). */
static void rx_drain(struct virtio_net *n)
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
		virtq_push(vq, n->chain->head, virtio_net_rx_fill(n->chain, f->data, f->len));
		drop_first_pending(n);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&n->dev, VIRTIO_NET_RXQ, false);
}

static void tx_one(struct virtio_net *n)
{
	long len = virtio_net_tx_frame(n->chain, n->tx_buf, VIRTIO_NET_MAX_FRAME);
	if (len > 0)
		n->backend->send(n->backend, n->tx_buf, (size_t)len);
	virtq_push(&n->dev.vq[VIRTIO_NET_TXQ], n->chain->head, 0);
}

static void tx_drain(struct virtio_net *n)
{
	struct virtq *vq = &n->dev.vq[VIRTIO_NET_TXQ];
	int rc;
	do {
		while ((rc = virtq_pop(vq, n->chain)) == 1)
			tx_one(n);
	} while (rc == 0 && virtq_enable_notify(vq, true));
	if (rc < 0)
		virtio_mark_broken(&n->dev, "malformed tx descriptor chain");
	else
		virtio_queue_interrupt(&n->dev, VIRTIO_NET_TXQ, false);
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

int virtio_net_rx_fd(struct virtio_device *d)
{
	return to_net(d)->rx_fd;
}

/* The backend queued frames: drain them now if the driver is running and its rx queue is usable. */
void virtio_net_rx_ready(void *arg)
{
	struct virtio_net *n = arg;
	uint64_t cnt;
	if (read(n->rx_fd, &cnt, sizeof(cnt)) < 0)
		return;
	struct virtio_transport *t = n->dev.transport;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	bool live = (t->status & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_NEEDS_RESET) &&
		    t->q[VIRTIO_NET_RXQ].enabled && !t->vq[VIRTIO_NET_RXQ].broken;
	if (live)
		rx_drain(n);
	pthread_mutex_unlock(&t->lock);
}

static const struct virtio_device_ops net_ops = {
	.config_read = net_config_read,
	.queue_notify = net_queue_notify,
};

/* ---- Lifecycle ------------------------------------------------------------------------------------ */

static struct virtio_net *net_alloc(const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->rx_fd = -1;
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
	n->tx_buf = malloc(VIRTIO_NET_MAX_FRAME);
	n->rx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return n;
}

int virtio_net_create(const struct net_opts *o, struct virtio_device **out, vt_err *err)
{
	struct virtio_net *n = net_alloc(o->mac);
	if (!n)
		return vt_fail_errno(err, ENOMEM, "virtio-net");
	if (!n->chain || !n->tx_buf || n->rx_fd < 0) {
		vt_fail_errno(err, n->rx_fd < 0 ? errno : ENOMEM, "virtio-net");
		virtio_net_destroy(&n->dev);
		return -1;
	}
	struct net_sink sink = { .deliver = deliver, .opaque = n };
	if (net_slirp_create(o, sink, &n->backend, err) < 0) {
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
	pthread_mutex_destroy(&n->pending_lock);
	free(n->chain);
	free(n->tx_buf);
	free(n);
}
