/* A hand-written virtio driver for device unit tests: drives one virtio device through the virtio-pci
 * transport's BAR (no PCI bus, no KVM, no device thread: a notify write runs the device at once) over fake
 * guest memory that is a real anonymous mapping (so madvise works on it). Included by one test file each. */
#ifndef VIRTUS_TEST_VDEV_HARNESS_H
#define VIRTUS_TEST_VDEV_HARNESS_H

#include <string.h>
#include <sys/mman.h>

#include "devices/virtio/pci.h"
#include "devices/virtio/virtio.h"

#define H_RAM      (4u << 20)
#define H_QSIZE    16
#define H_RING(q)  (0x10000u + (q) * 0x4000u) /* desc; avail at +0x1000, used at +0x2000 */
#define H_BUF      0x100000u

struct harness {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtio_device *dev;
	struct virtio_transport *t;
	unsigned signals;
	uint16_t avail_idx[VIRTIO_MAX_QUEUES];
	uint16_t next_desc[VIRTIO_MAX_QUEUES];
};

static inline int h_route(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	(void)opaque, (void)vector, (void)addr, (void)data;
	return 0;
}

static inline void h_signal(void *opaque, unsigned vector)
{
	(void)vector;
	((struct harness *)opaque)->signals++;
}

static const struct msix_ops h_msix_ops = { .set_route = h_route, .signal = h_signal };

static inline void h_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	h->ram = mmap(NULL, H_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(h->ram != MAP_FAILED);
	gmem_init_fixed(&h->mem, h->ram, H_RAM);
}

static inline void h_plug(struct harness *h, struct virtio_device *dev)
{
	vt_err err;
	h->dev = dev;
	struct virtio_pci_host host = { .msix_ops = &h_msix_ops, .msix_opaque = h };
	assert_int_equal(virtio_pci_create(dev, &h->mem, &host, &h->t, &err), 0);
}

static inline void h_fini(struct harness *h, void (*destroy)(struct virtio_device *))
{
	virtio_pci_destroy(h->t);
	destroy(h->dev);
	munmap(h->ram, H_RAM);
}

static inline uint64_t h_bar_read(struct harness *h, uint64_t off, unsigned len)
{
	uint8_t d[8] = { 0 };
	virtio_pci_bar_io(h->t, PCI_BAR_ADDR(0, off), d, len, false);
	uint64_t v = 0;
	memcpy(&v, d, len);
	return v;
}

static inline void h_bar_write(struct harness *h, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t d[8];
	memcpy(d, &v, sizeof(d));
	virtio_pci_bar_io(h->t, PCI_BAR_ADDR(0, off), d, len, true);
}

/* Queue q with `size` entries at H_RING(q): desc, avail at +0x1000, used at +0x2000; enabled. */
static inline void h_enable_queue(struct harness *h, unsigned q, uint16_t size)
{
	h_bar_write(h, VPCI_Q_SELECT, 2, q);
	h_bar_write(h, VPCI_Q_SIZE, 2, size);
	h_bar_write(h, VPCI_Q_DESC, 8, H_RING(q));
	h_bar_write(h, VPCI_Q_DRIVER, 8, H_RING(q) + 0x1000);
	h_bar_write(h, VPCI_Q_DEVICE, 8, H_RING(q) + 0x2000);
	h_bar_write(h, VPCI_Q_ENABLE, 2, 1);
}

/* Negotiate VERSION_1 plus features_lo, enable every queue, DRIVER_OK. */
static inline void h_driver_ok(struct harness *h, uint32_t features_lo)
{
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	h_bar_write(h, VPCI_GFSELECT, 4, 0);
	h_bar_write(h, VPCI_GF, 4, features_lo);
	h_bar_write(h, VPCI_GFSELECT, 4, 1);
	h_bar_write(h, VPCI_GF, 4, 1);
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < h->dev->nqueues; q++)
		h_enable_queue(h, q, H_QSIZE);
	h_bar_write(h, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(h_bar_read(h, VPCI_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
}

/* Post a one-descriptor chain on queue q (no kick). */
static inline void h_post(struct harness *h, unsigned q, uint64_t gpa, uint32_t len, uint16_t flags)
{
	uint16_t desc = h->next_desc[q]++ % H_QSIZE;
	uint8_t *d = h->ram + H_RING(q) + 16u * desc;
	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	uint16_t *avail = (uint16_t *)(void *)(h->ram + H_RING(q) + 0x1000);
	avail[2 + h->avail_idx[q] % H_QSIZE] = desc;
	avail[1] = ++h->avail_idx[q];
}

/* Post a chain of n descriptors on queue q (no kick): readable ones first, as the driver must. */
struct h_seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static inline void h_post_chain(struct harness *h, unsigned q, const struct h_seg *segs, unsigned n)
{
	uint16_t head = h->next_desc[q] % H_QSIZE;
	for (unsigned i = 0; i < n; i++) {
		uint16_t desc = h->next_desc[q]++ % H_QSIZE, next = h->next_desc[q] % H_QSIZE;
		uint16_t flags = (uint16_t)((segs[i].writable ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		uint8_t *d = h->ram + H_RING(q) + 16u * desc;
		memcpy(d, &segs[i].gpa, 8);
		memcpy(d + 8, &segs[i].len, 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	uint16_t *avail = (uint16_t *)(void *)(h->ram + H_RING(q) + 0x1000);
	avail[2 + h->avail_idx[q] % H_QSIZE] = head;
	avail[1] = ++h->avail_idx[q];
}

static inline void h_kick(struct harness *h, unsigned q)
{
	h_bar_write(h, VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, 2, q);
}

static inline uint16_t h_used_idx(struct harness *h, unsigned q)
{
	uint16_t v;
	memcpy(&v, h->ram + H_RING(q) + 0x2000 + 2, 2);
	return v;
}

/* The used element at slot i of queue q: written length. */
static inline uint32_t h_used_len(struct harness *h, unsigned q, unsigned i)
{
	uint32_t v;
	memcpy(&v, h->ram + H_RING(q) + 0x2000 + 4 + 8 * (i % H_QSIZE) + 4, 4);
	return v;
}

static inline bool h_needs_reset(struct harness *h)
{
	return h_bar_read(h, VPCI_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET;
}

#endif
