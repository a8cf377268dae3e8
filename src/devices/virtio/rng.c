/* virtio-rng (virtio 1.x, 5.4): one request queue; every device-writable buffer the driver posts is filled
 * with bytes from getrandom() and returned. No configuration space, no device features. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "devices/virtio/virtio.h"
#include "lib/util.h"

#define RNG_QUEUE_SIZE 256

/* Fill the writable part of a chain; returns the bytes written (short only if getrandom fails). */
static uint32_t fill_random(const struct virtq_chain *c)
{
	uint64_t total = 0;
	for (unsigned i = c->nread; i < c->nread + c->nwrite; i++) {
		size_t done = 0;
		while (done < c->iov[i].iov_len) {
			ssize_t n = getrandom((uint8_t *)c->iov[i].iov_base + done, c->iov[i].iov_len - done, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return (uint32_t)(total + done);
			done += (size_t)n;
		}
		total += done;
	}
	return (uint32_t)MIN(total, UINT32_MAX);
}

/* One pass (virtio_pass_pop: bounded, notifications re-armed when the queue runs dry). */
static void rng_queue_notify(struct virtio_device *d, unsigned q)
{
	struct virtq *vq = &d->vq[q];
	struct virtq_chain *chain = malloc(sizeof(*chain)); /* ~16 KiB: not on the loop thread's stack */
	if (!chain)
		return; /* host out of memory: the buffers stay queued for the next kick */
	struct virtio_pass pass = virtio_pass_begin(d, q);
	int rc;
	while ((rc = virtio_pass_pop(&pass, chain)) == 1)
		virtq_push(vq, chain->head, fill_random(chain));
	free(chain);
	if (rc == 0)
		virtio_queue_interrupt(d, q, false);
}

static const struct virtio_device_ops rng_ops = {
	.queue_notify = rng_queue_notify, .state_save = virtio_stateless_save, .state_load = virtio_stateless_load,
};

int virtio_rng_create(struct virtio_device **out, vt_err *err)
{
	struct virtio_device *d = calloc(1, sizeof(*d));
	if (!d)
		return vt_fail_errno(err, ENOMEM, "virtio-rng");
	d->id = VIRTIO_ID_RNG;
	d->features = (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
	d->nqueues = 1;
	d->queue_max[0] = RNG_QUEUE_SIZE;
	d->ops = &rng_ops;
	d->name = "virtio-rng";
	*out = d;
	return 0;
}

void virtio_rng_destroy(struct virtio_device *d)
{
	free(d);
}
