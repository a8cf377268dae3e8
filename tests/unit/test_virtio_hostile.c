/* A hostile driver against the virtio-pci transport and its devices: the cases a review found by driving the
 * device code the way a guest can. Each test fails on the code before its fix:
 *   - a queue the driver never enabled is never touched (virtio-console popped its zeroed receive queue and
 *     dereferenced NULL);
 *   - one kick cannot hold the shared device thread while the guest keeps posting (virtio-rng served 26,690
 *     buffers in 5 s from a single kick);
 *   - features cannot be renegotiated by clearing FEATURES_OK without a reset.
 * The in-flight bound of virtio-blk is in test_virtio_blk. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/console.h"
#include "vdev_harness.h"

/* ---- virtio-console with only its transmit queue enabled ------------------------------------------ */

/* Features VERSION_1 only; one queue of `size` at H_RING(q); DRIVER_OK. */
static void enable_only(struct harness *h, unsigned only_q, uint16_t size)
{
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	h_bar_write(h, VPCI_GFSELECT, 4, 1);
	h_bar_write(h, VPCI_GF, 4, 1);
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	h_enable_queue(h, only_q, size);
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		    VIRTIO_STATUS_DRIVER_OK);
}

static void console_never_touches_a_disabled_queue(void **state)
{
	(void)state;
	struct harness h;
	int out[2];
	assert_int_equal(pipe2(out, O_NONBLOCK), 0);
	h_init(&h);
	struct virtio_device *dev;
	vt_err err;
	assert_int_equal(virtio_console_create(&dev, out[1], &err), 0);
	h_plug(&h, dev);
	assert_int_equal(virtio_console_input(dev, (const uint8_t *)"typed", 5), 5); /* host input waiting */
	enable_only(&h, VCON_TXQ, H_QSIZE);
	memcpy(h.ram + H_BUF, "x", 1);
	h_post(&h, VCON_TXQ, H_BUF, 1, 0);
	h_kick(&h, VCON_TXQ); /* the guest speaks: the device flushes held input to the receive queue */
	char got[4] = { 0 };
	assert_int_equal(read(out[0], got, sizeof(got)), 1);
	assert_int_equal(got[0], 'x');
	assert_int_equal(h_used_idx(&h, VCON_TXQ), 1);
	assert_false(h_needs_reset(&h)); /* an unused queue is not an error, just not there */
	h_kick(&h, VCON_RXQ);            /* a kick of the disabled queue does nothing either */
	assert_false(h_needs_reset(&h));
	h_fini(&h, virtio_console_destroy);
	close(out[0]), close(out[1]);
}

/* ---- virtio-rng: one pass is bounded while a guest thread keeps posting --------------------------- */

/* A fake event loop: the transport registers each queue's kick eventfd here; the test runs the handler. */
struct fake_loop {
	int fd[VIRTIO_MAX_QUEUES];
	void (*fn[VIRTIO_MAX_QUEUES])(void *);
	void *arg[VIRTIO_MAX_QUEUES];
	unsigned n;
};

static int fake_watch(void *opaque, int fd, void (*fn)(void *), void *arg, vt_err *err)
{
	(void)err;
	struct fake_loop *l = opaque;
	l->fd[l->n] = fd, l->fn[l->n] = fn, l->arg[l->n] = arg;
	l->n++;
	return 0;
}

struct poster {
	struct harness *h;
	bool stop;
	uint64_t posted;
};

#define RNG_RING 256
#define RNG_BUF 4096
#define POSTER_MAX 50000 /* so that a device without a budget ends its pass too (the old code: all of them) */

/* The hostile driver: re-posts a buffer for every one the device returns, as fast as it can. */
static void *keep_posting(void *arg)
{
	struct poster *p = arg;
	uint16_t *avail = (uint16_t *)(void *)(p->h->ram + H_RING(0) + 0x1000);
	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) && p->posted < POSTER_MAX) {
		uint16_t used = __atomic_load_n((uint16_t *)(void *)(p->h->ram + H_RING(0) + 0x2002), __ATOMIC_ACQUIRE);
		uint16_t idx = avail[1];
		if ((uint16_t)(idx - used) >= RNG_RING)
			continue; /* ring full: wait for the device */
		avail[2 + idx % RNG_RING] = idx % RNG_RING;
		__atomic_store_n(&avail[1], (uint16_t)(idx + 1), __ATOMIC_RELEASE);
		__atomic_add_fetch(&p->posted, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void rng_kick_is_bounded_while_the_guest_keeps_posting(void **state)
{
	(void)state;
	struct harness h;
	h_init(&h);
	struct virtio_device *dev;
	vt_err err;
	assert_int_equal(virtio_rng_create(&dev, &err), 0);
	struct fake_loop loop = { .n = 0 };
	struct virtio_pci_host host = { .msix_ops = &h_msix_ops, .msix_opaque = &h, .watch = fake_watch,
					.watch_opaque = &loop };
	h.dev = dev;
	assert_int_equal(virtio_pci_create(dev, &h.mem, &host, &h.t, &err), 0);
	assert_int_equal(loop.n, 1);
	enable_only(&h, 0, RNG_RING);
	for (uint16_t i = 0; i < RNG_RING; i++) { /* descriptor i: a 4 KiB writable buffer */
		uint64_t gpa = H_BUF + (uint64_t)RNG_BUF * i;
		uint32_t len = RNG_BUF;
		uint16_t flags = VIRTQ_DESC_F_WRITE;
		uint8_t *d = h.ram + H_RING(0) + 16u * i;
		memcpy(d, &gpa, 8), memcpy(d + 8, &len, 4), memcpy(d + 12, &flags, 2);
	}
	struct poster p = { .h = &h };
	pthread_t thr;
	assert_int_equal(pthread_create(&thr, NULL, keep_posting, &p), 0);
	while (__atomic_load_n(&p.posted, __ATOMIC_ACQUIRE) < RNG_RING) /* a full ring: work for the whole budget */
		;
	uint64_t one = 1;
	assert_int_equal(write(loop.fd[0], &one, sizeof(one)), sizeof(one)); /* the guest's one kick */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint16_t used_before = h_used_idx(&h, 0);
	loop.fn[0](loop.arg[0]); /* one turn of the event loop for this queue */
	double held = seconds_since(&t0);
	uint16_t served = (uint16_t)(h_used_idx(&h, 0) - used_before);
	__atomic_store_n(&p.stop, true, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	print_message("# one kick: %u buffers served, thread held %.6f s\n", served, held);
	assert_int_equal(served, VIRTIO_PASS_BUDGET);
	uint64_t pending = 0; /* the rest was re-queued on the loop: the kick eventfd is readable again */
	assert_int_equal(read(loop.fd[0], &pending, sizeof(pending)), sizeof(pending));
	assert_true(pending >= 1);
	assert_int_equal(h.t->q[0].deferred_passes, 1);
	h_fini(&h, virtio_rng_destroy);
}

/* A virtio-rng through the harness, its driver up with no optional features. */
static struct virtio_device *rng_up(struct harness *h)
{
	struct virtio_device *dev;
	vt_err err;
	h_init(h);
	assert_int_equal(virtio_rng_create(&dev, &err), 0);
	h_plug(h, dev);
	h_driver_ok(h, 0);
	return dev;
}

/* ---- status rules: no renegotiation without a reset ----------------------------------------------- */

static void clearing_features_ok_does_not_renegotiate(void **state)
{
	(void)state;
	struct harness h;
	struct virtio_device *dev = rng_up(&h); /* no EVENT_IDX, no INDIRECT_DESC */
	uint64_t agreed = dev->negotiated;
	/* The hostile driver clears FEATURES_OK and DRIVER_OK, offers new features, sets FEATURES_OK again. */
	h_bar_write(&h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	h_bar_write(&h, VPCI_GFSELECT, 4, 0);
	h_bar_write(&h, VPCI_GF, 4, (1u << VIRTIO_F_EVENT_IDX) | (1u << VIRTIO_F_INDIRECT_DESC));
	h_bar_write(&h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(dev->negotiated, agreed);
	assert_false(h.t->vq[0].event_idx);
	uint8_t status = (uint8_t)h_bar_read(&h, VPCI_STATUS, 1);
	assert_true(status & VIRTIO_STATUS_FEATURES_OK); /* bits stay set until a reset */
	assert_true(status & VIRTIO_STATUS_DRIVER_OK);
	/* A reset is the way back: then new features are taken. */
	h_bar_write(&h, VPCI_STATUS, 1, 0);
	assert_int_equal(h_bar_read(&h, VPCI_STATUS, 1), 0);
	h_driver_ok(&h, 1u << VIRTIO_F_EVENT_IDX);
	assert_true(dev->negotiated & (1ULL << VIRTIO_F_EVENT_IDX));
	h_fini(&h, virtio_rng_destroy);
}

/* A reset leaves queues that refuse work: a kick after reset (before the driver re-enables) is a no-op. */
static void reset_queues_refuse_work(void **state)
{
	(void)state;
	struct harness h;
	rng_up(&h);
	h_bar_write(&h, VPCI_STATUS, 1, 0);
	assert_false(virtq_usable(&h.t->vq[0]));
	struct virtq_chain *c = malloc(sizeof(*c));
	assert_int_equal(virtq_pop(&h.t->vq[0], c), 0); /* nothing, and no guest memory read */
	virtq_push(&h.t->vq[0], 0, 0);                   /* nothing written */
	assert_false(virtq_should_notify(&h.t->vq[0]));
	free(c);
	h_kick(&h, 0);
	assert_int_equal(h.signals, 0);
	h_fini(&h, virtio_rng_destroy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(console_never_touches_a_disabled_queue),
		cmocka_unit_test(rng_kick_is_bounded_while_the_guest_keeps_posting),
		cmocka_unit_test(clearing_features_ok_does_not_renegotiate),
		cmocka_unit_test(reset_queues_refuse_work),
	};
	return cmocka_run_group_tests_name("virtio_hostile", tests, NULL, NULL);
}
