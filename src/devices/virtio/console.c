/* virtio-console (virtio 1.x, 5.3) with a single port and no features: receiveq 0 carries host input to
 * the guest, transmitq 1 carries the guest's output to out_fd (filtered when it is a terminal: lib/termsafe.h).
 *
 * Host input comes from the console pump (main thread) while the queues are driven on the event loop, so
 * input is first appended to a bounded byte FIFO under the device's own mutex, then the receive queue's
 * kick eventfd is signalled: the loop runs queue_notify(RXQ) with the transport lock held, which drains
 * the FIFO into whatever buffers the driver has posted. Bytes that find no buffer stay in the FIFO until
 * the driver posts more (which kicks RXQ again), and all input waits until the guest has first written to
 * the console (see guest_spoke). */
#include "devices/virtio/console.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "lib/termsafe.h"
#include "lib/util.h"

#define VCON_QUEUE_SIZE 128

struct vcon {
	struct virtio_device dev; /* first: the device pointer is the vcon pointer */
	struct console_sink out;
	pthread_mutex_t lock;     /* the FIFO below: written by the pump, read by the loop */
	uint8_t pending[VCON_PENDING_MAX];
	size_t head, len;         /* circular FIFO */
	struct virtq_chain *chain; /* scratch (~16 KiB), only used under the transport lock */
	/* The guest has transmitted since the driver started. Linux posts receive buffers before its console
	 * port is connected and discards input that arrives before then; its first output proves the port
	 * is connected, so held input waits for it. */
	bool guest_spoke;
};

static struct vcon *to_vcon(struct virtio_device *d)
{
	return (struct vcon *)d;
}

/* Have the event loop run the receive queue (a kick on its eventfd): the transport then checks that the
 * driver is live and calls queue_notify with its lock held. */
static void wake_rx(struct virtio_device *d)
{
	struct virtio_transport *t = d->transport;
	if (t && t->q[VCON_RXQ].kick_fd >= 0)
		eventfd_write(t->q[VCON_RXQ].kick_fd, 1);
}

size_t virtio_console_input(struct virtio_device *d, const uint8_t *buf, size_t n)
{
	struct vcon *c = to_vcon(d);
	pthread_mutex_lock(&c->lock);
	size_t room = VCON_PENDING_MAX - c->len, take = MIN(n, room);
	for (size_t i = 0; i < take; i++)
		c->pending[(c->head + c->len + i) % VCON_PENDING_MAX] = buf[i];
	c->len += take;
	pthread_mutex_unlock(&c->lock);
	if (take)
		wake_rx(d);
	return take;
}

/* Copy up to the writable size of one chain out of the FIFO; returns bytes copied. */
static uint32_t fill_chain(struct vcon *c, const struct virtq_chain *ch)
{
	uint32_t total = 0;
	for (unsigned i = ch->nread; i < ch->nread + ch->nwrite && c->len; i++) {
		uint8_t *dst = ch->iov[i].iov_base;
		size_t room = ch->iov[i].iov_len, done = 0;
		while (done < room && c->len) {
			size_t run = MIN(MIN(room - done, c->len), VCON_PENDING_MAX - c->head);
			memcpy(dst + done, c->pending + c->head, run);
			c->head = (c->head + run) % VCON_PENDING_MAX;
			c->len -= run;
			done += run;
		}
		total += (uint32_t)done;
	}
	return total;
}

void virtio_console_flush_rx(struct virtio_device *d)
{
	struct vcon *c = to_vcon(d);
	struct virtq *vq = &d->vq[VCON_RXQ];
	bool pushed = false;
	int rc = 0;
	if (!c->guest_spoke)
		return; /* held: drain_tx flushes once the guest's console is up */
	pthread_mutex_lock(&c->lock);
	/* Input left over with no buffer: the pass re-arms the driver's kicks (its next posted buffer wakes us). */
	struct virtio_pass pass = virtio_pass_begin(d, VCON_RXQ);
	while (c->len && (rc = virtio_pass_pop(&pass, c->chain)) == 1) {
		virtq_push(vq, c->chain->head, fill_chain(c, c->chain));
		pushed = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc >= 0 && pushed)
		virtio_queue_interrupt(d, VCON_RXQ, false);
}

/* A safety net for input the driver has not taken: an interrupt that reached it before its port was ready
 * is not repeated by anyone, and the used entries would sit there forever. With event idx the driver
 * writes used_event as it takes used buffers, so whenever the guest transmits (its console is up) while
 * used_event is behind, send the receive interrupt again (a spurious one is harmless). */
static void reinterrupt_untaken_rx(struct virtio_device *d)
{
	struct virtq *vq = &d->vq[VCON_RXQ];
	uint16_t used_event;
	if (!d->transport || !virtq_usable(vq) || !vq->event_idx ||
	    gmem_read(vq->mem, vq->avail_gpa + 4 + 2ull * vq->size, &used_event, 2) < 0)
		return;
	if (le16toh(used_event) != vq->used_idx)
		virtio_queue_interrupt(d, VCON_RXQ, true);
}

static void write_segments(struct console_sink *out, const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		console_sink_write(out, iov[i].iov_base, iov[i].iov_len);
}

static void drain_tx(struct virtio_device *d)
{
	struct vcon *c = to_vcon(d);
	struct virtq *vq = &d->vq[VCON_TXQ];
	bool spoke = c->guest_spoke;
	struct virtio_pass pass = virtio_pass_begin(d, VCON_TXQ);
	int rc;
	while ((rc = virtio_pass_pop(&pass, c->chain)) == 1) {
		c->guest_spoke = true;
		write_segments(&c->out, c->chain->iov, c->chain->nread);
		virtq_push(vq, c->chain->head, 0);
	}
	if (rc < 0)
		return;
	virtio_queue_interrupt(d, VCON_TXQ, false);
	if (!spoke && c->guest_spoke)
		virtio_console_flush_rx(d);
	else
		reinterrupt_untaken_rx(d);
}

static void vcon_queue_notify(struct virtio_device *d, unsigned q)
{
	if (q == VCON_TXQ)
		drain_tx(d);
	else if (q == VCON_RXQ)
		virtio_console_flush_rx(d);
}

static void vcon_reset(struct virtio_device *d)
{
	to_vcon(d)->guest_spoke = false; /* held input stays held for the next driver */
}

/* Host input not yet given to the guest is not part of a snapshot: like keys typed while it was down. */
static const struct virtio_device_ops vcon_ops = {
	.reset = vcon_reset, .queue_notify = vcon_queue_notify,
	.state_save = virtio_stateless_save, .state_load = virtio_stateless_load,
};

int virtio_console_create(struct virtio_device **out, int out_fd, vt_err *err)
{
	struct vcon *c = calloc(1, sizeof(*c));
	if (!c || !(c->chain = malloc(sizeof(*c->chain)))) {
		free(c);
		return vt_fail_errno(err, ENOMEM, "virtio-console");
	}
	pthread_mutex_init(&c->lock, NULL);
	console_sink_init(&c->out, out_fd);
	struct virtio_device *d = &c->dev;
	d->id = VIRTIO_ID_CONSOLE;
	d->features = (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
	d->nqueues = 2;
	d->queue_max[VCON_RXQ] = d->queue_max[VCON_TXQ] = VCON_QUEUE_SIZE;
	d->ops = &vcon_ops;
	d->name = "virtio-console";
	*out = d;
	return 0;
}

void virtio_console_destroy(struct virtio_device *d)
{
	if (!d)
		return;
	struct vcon *c = to_vcon(d);
	pthread_mutex_destroy(&c->lock);
	free(c->chain);
	free(c);
}
