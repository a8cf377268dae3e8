/* Shared pieces of the device fuzz targets: a fake guest RAM built from the fuzzer's input and a minimal
 * virtio driver that brings a device up through the virtio-pci transport's BAR (the device's public ops
 * only, never its internals), so each target drives the real queue_notify path of one device.
 *
 * Input layout common to the device targets (FUZZ_HDR bytes, then the script, then RAM):
 *   byte 0    driver features: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 2-7 device bits 0-5 accepted
 *             (only where the device offers them)
 *   byte 1..4 queues 0..3: size 1 << ((byte & 0x7f) % 5) = 1..16; bit 7 set: the driver leaves the queue
 *             disabled (a device must never touch a queue that is not enabled)
 *   byte 5    script length S (S % FUZZ_MAX_OPS); the next S bytes are the script (the target reads them)
 *   the rest  guest RAM contents from gpa 0 (zeros beyond the input), FUZZ_RAM bytes in all.
 * Queue q's rings live at FUZZ_RING(q): descriptors, then avail, then used (4-aligned), all inside
 * FUZZ_RING_STRIDE; the input decides every descriptor, index and buffer, so rings may be malformed,
 * overlap each other, or point anywhere.
 *
 * RAM is an mmap with an inaccessible guard page on each side: any stray access by a device outside guest
 * RAM faults (mmap memory has no ASan redzones). Every kick is checked (fuzz_kick_checked): the bytes it
 * changed must lie in device-writable buffers or used rings, and after NEEDS_RESET nothing may change.
 * Each target keeps its state in struct fuzz_guest (the balloon's madvise wrapper needs a pointer to it). */
#ifndef VIRTUS_FUZZ_RING_H
#define VIRTUS_FUZZ_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "devices/virtio/virtio.h"

#define FUZZ_RAM          (64u << 10)   /* 16 pages of 4 KiB */
#define FUZZ_PAGE         4096u
#define FUZZ_RING_STRIDE  0x200u
#define FUZZ_RING(q)      ((uint64_t)(q) * FUZZ_RING_STRIDE)
#define FUZZ_QUEUES       4
#define FUZZ_HDR          6
#define FUZZ_MAX_OPS      32

static inline void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

struct fuzz_guest {
	uint8_t *map;          /* guard page, RAM, guard page */
	uint8_t *ram;
	struct guest_mem mem;
	const uint8_t *script; /* the input's script bytes */
	unsigned nops;
	struct virtio_transport *t;
	unsigned signals;      /* MSI-X messages the device sent */
	uint32_t dropped_pages; /* bit per RAM page the device gave back (balloon): it reads as zeros after */
	/* Scratch for fuzz_kick_checked, FUZZ_RAM bytes each: RAM before the kick, bytes the device may write,
	 * bytes holding descriptor tables. */
	uint8_t *before, *writable, *tables;
};

/* Parse the header and build RAM; false if the input is too short to mean anything. */
static inline bool fuzz_guest_init(struct fuzz_guest *g, const uint8_t *data, size_t size)
{
	memset(g, 0, sizeof(*g));
	if (size < FUZZ_HDR)
		return false;
	g->nops = data[5] % FUZZ_MAX_OPS;
	if (size < FUZZ_HDR + g->nops)
		return false;
	g->script = data + FUZZ_HDR;
	g->map = mmap(NULL, FUZZ_RAM + 2 * FUZZ_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fuzz_check(g->map != MAP_FAILED);
	g->ram = g->map + FUZZ_PAGE;
	fuzz_check(mprotect(g->ram, FUZZ_RAM, PROT_READ | PROT_WRITE) == 0);
	size_t body = size - FUZZ_HDR - g->nops;
	memcpy(g->ram, data + FUZZ_HDR + g->nops, body < FUZZ_RAM ? body : FUZZ_RAM);
	gmem_init_fixed(&g->mem, g->ram, FUZZ_RAM);
	g->before = malloc(FUZZ_RAM), g->writable = malloc(FUZZ_RAM), g->tables = malloc(FUZZ_RAM);
	fuzz_check(g->before && g->writable && g->tables);
	return true;
}

static inline void fuzz_guest_fini(struct fuzz_guest *g)
{
	virtio_pci_destroy(g->t);
	free(g->before), free(g->writable), free(g->tables);
	if (g->map)
		munmap(g->map, FUZZ_RAM + 2 * FUZZ_PAGE);
}

/* Whether [p, p+len) lies wholly inside the fake guest RAM. */
static inline bool fuzz_in_ram(const struct fuzz_guest *g, const void *p, size_t len)
{
	const uint8_t *b = p;
	return b >= g->ram && len <= FUZZ_RAM && (size_t)(b - g->ram) <= FUZZ_RAM - len;
}

/* ---- The driver side, through BAR 0 ----------------------------------------------------------------- */

static inline int fuzz_route(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	(void)opaque, (void)vector, (void)addr, (void)data;
	return 0;
}

static inline void fuzz_signal(void *opaque, unsigned vector)
{
	(void)vector;
	((struct fuzz_guest *)opaque)->signals++;
}

static const struct msix_ops fuzz_msix_ops = { .set_route = fuzz_route, .signal = fuzz_signal };

static inline uint64_t fuzz_bar_read(struct fuzz_guest *g, uint64_t off, unsigned len)
{
	uint8_t d[8] = { 0 };
	virtio_pci_bar_io(g->t, PCI_BAR_ADDR(VPCI_BAR, off), d, len, false);
	uint64_t v = 0;
	memcpy(&v, d, len);
	return v;
}

static inline void fuzz_bar_write(struct fuzz_guest *g, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t d[8];
	memcpy(d, &v, sizeof(d));
	virtio_pci_bar_io(g->t, PCI_BAR_ADDR(VPCI_BAR, off), d, len, true);
}

/* Plug dev into a transport with no host loop (a kick runs queue_notify at once on this thread). */
static inline void fuzz_plug(struct fuzz_guest *g, struct virtio_device *dev)
{
	vt_err err;
	struct virtio_pci_host host = { .msix_ops = &fuzz_msix_ops, .msix_opaque = g };
	fuzz_check(virtio_pci_create(dev, &g->mem, &host, &g->t, &err) == 0);
}

/* Negotiate the features the header asks for (masked by what the device offers), place every queue's rings
 * per the header, enable those the header enables and set DRIVER_OK. Also the path taken again after a
 * reset. */
static inline void fuzz_driver_ok(struct fuzz_guest *g, const uint8_t *hdr)
{
	fuzz_bar_write(g, VPCI_STATUS, 1, 0);
	fuzz_bar_write(g, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fuzz_bar_write(g, VPCI_DFSELECT, 4, 0);
	uint32_t offered = (uint32_t)fuzz_bar_read(g, VPCI_DF, 4);
	uint32_t want = ((hdr[0] & 1u) << VIRTIO_F_EVENT_IDX) | ((hdr[0] & 2u) << (VIRTIO_F_INDIRECT_DESC - 1)) |
			(hdr[0] >> 2);
	fuzz_bar_write(g, VPCI_GFSELECT, 4, 0);
	fuzz_bar_write(g, VPCI_GF, 4, want & offered);
	fuzz_bar_write(g, VPCI_GFSELECT, 4, 1);
	fuzz_bar_write(g, VPCI_GF, 4, 1); /* VERSION_1 */
	fuzz_bar_write(g, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	unsigned nq = (unsigned)fuzz_bar_read(g, VPCI_NUM_QUEUES, 2);
	for (unsigned q = 0; q < nq && q < FUZZ_QUEUES; q++) {
		if (hdr[1 + q] & 0x80)
			continue;
		uint16_t size = (uint16_t)(1u << ((hdr[1 + q] & 0x7f) % 5));
		uint64_t desc = FUZZ_RING(q), avail = desc + 16u * size, used = (avail + 6 + 2u * size + 3) & ~3ull;
		fuzz_bar_write(g, VPCI_Q_SELECT, 2, q);
		fuzz_bar_write(g, VPCI_Q_SIZE, 2, size);
		fuzz_bar_write(g, VPCI_Q_MSIX, 2, q);
		fuzz_bar_write(g, VPCI_Q_DESC, 8, desc);
		fuzz_bar_write(g, VPCI_Q_DRIVER, 8, avail);
		fuzz_bar_write(g, VPCI_Q_DEVICE, 8, used);
		fuzz_bar_write(g, VPCI_Q_ENABLE, 2, 1);
	}
	fuzz_bar_write(g, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

/* The driver's notify write for queue q (the trapped-kick path of the transport). */
static inline void fuzz_kick(struct fuzz_guest *g, unsigned q)
{
	fuzz_bar_write(g, VPCI_NOTIFY_OFF + (uint64_t)q * VPCI_NOTIFY_MULT, 2, q);
}

/* ---- What a kick may change ----------------------------------------------------------------------- */

static inline void fuzz_mark(uint8_t *map, uint64_t gpa, uint64_t len)
{
	if (gpa < FUZZ_RAM)
		memset(map + gpa, 1, len < FUZZ_RAM - gpa ? len : FUZZ_RAM - gpa);
}

struct fuzz_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static inline bool fuzz_desc_at(const uint8_t *ram, uint64_t gpa, struct fuzz_desc *d)
{
	if (gpa > FUZZ_RAM - 16)
		return false;
	memcpy(&d->addr, ram + gpa, 8);
	memcpy(&d->len, ram + gpa + 8, 4);
	memcpy(&d->flags, ram + gpa + 12, 2);
	return true;
}

/* From the RAM image before a kick, independently of queue.c: the bytes a device may write (every buffer a
 * descriptor of an enabled queue marks device-writable, directly or in an indirect table, and the used
 * rings) and the bytes that hold descriptor tables. A superset of what any chain allows. */
static inline void fuzz_map_writable(struct fuzz_guest *g)
{
	memset(g->writable, 0, FUZZ_RAM);
	memset(g->tables, 0, FUZZ_RAM);
	for (unsigned q = 0; q < g->t->dev->nqueues; q++) {
		const struct vpci_queue *vq = &g->t->q[q];
		if (!vq->enabled)
			continue;
		fuzz_mark(g->tables, vq->desc, 16ull * vq->size);
		fuzz_mark(g->writable, vq->device, 6 + 8ull * vq->size);
		for (unsigned i = 0; i < vq->size; i++) {
			struct fuzz_desc d, e;
			if (!fuzz_desc_at(g->before, vq->desc + 16ull * i, &d))
				break;
			if (!(d.flags & VIRTQ_DESC_F_INDIRECT)) {
				if (d.flags & VIRTQ_DESC_F_WRITE)
					fuzz_mark(g->writable, d.addr, d.len);
				continue;
			}
			fuzz_mark(g->tables, d.addr, d.len);
			for (uint32_t j = 0; j < d.len / 16 && fuzz_desc_at(g->before, d.addr + 16ull * j, &e); j++)
				if (e.flags & VIRTQ_DESC_F_WRITE)
					fuzz_mark(g->writable, e.addr, e.len);
		}
	}
}

/* Every byte the kick changed lies in a writable buffer, a used ring or a page the device dropped. Skipped
 * when a descriptor table itself changed (a buffer overlapping it rewrote the chains mid-kick). */
static inline void fuzz_check_writes(struct fuzz_guest *g)
{
	enum { BLOCK = 256, NBLOCKS = FUZZ_RAM / BLOCK };
	uint16_t changed[NBLOCKS];
	unsigned n = 0;
	for (size_t blk = 0; blk < NBLOCKS; blk++) /* memcmp finds the few changed blocks */
		if (memcmp(g->before + blk * BLOCK, g->ram + blk * BLOCK, BLOCK))
			changed[n++] = (uint16_t)blk;
	for (unsigned i = 0; i < n; i++)
		for (size_t b = changed[i] * (size_t)BLOCK; b < (changed[i] + 1u) * (size_t)BLOCK; b++)
			if (g->before[b] != g->ram[b] && g->tables[b])
				return;
	for (unsigned i = 0; i < n; i++)
		for (size_t b = changed[i] * (size_t)BLOCK; b < (changed[i] + 1u) * (size_t)BLOCK; b++)
			if (g->before[b] != g->ram[b])
				fuzz_check(g->writable[b] || (g->dropped_pages >> (b / FUZZ_PAGE) & 1));
}

/* A kick, checked: the device writes only where fuzz_map_writable allows, and once NEEDS_RESET is set (or
 * before DRIVER_OK, after a reset) the transport ignores kicks altogether (no guest byte written, no
 * interrupt). */
static inline void fuzz_kick_checked(struct fuzz_guest *g, unsigned q)
{
	uint8_t status = (uint8_t)fuzz_bar_read(g, VPCI_STATUS, 1);
	bool broken = (status & VIRTIO_STATUS_NEEDS_RESET) || !(status & VIRTIO_STATUS_DRIVER_OK);
	unsigned signals = g->signals;
	memcpy(g->before, g->ram, FUZZ_RAM);
	fuzz_map_writable(g);
	g->dropped_pages = 0;
	fuzz_kick(g, q);
	if (broken)
		fuzz_check(g->signals == signals && !memcmp(g->before, g->ram, FUZZ_RAM));
	else
		fuzz_check_writes(g);
}

static inline unsigned fuzz_nqueues(struct fuzz_guest *g)
{
	return g->t->dev->nqueues;
}

/* Script bytes every target shares: op & 7 == 5 resets the device and (op bit 3 clear) initialises it again,
 * or (bit 3 set) leaves it reset, so later kicks and host events meet a device without a driver; 6 reads
 * the ISR and the whole device config; 7 kicks every queue. Returns false for ops the target handles
 * itself. */
static inline bool fuzz_common_op(struct fuzz_guest *g, const uint8_t *hdr, uint8_t op)
{
	switch (op & 7) {
	case 5:
		if (op & 8)
			fuzz_bar_write(g, VPCI_STATUS, 1, 0);
		else
			fuzz_driver_ok(g, hdr);
		return true;
	case 6:
		fuzz_bar_read(g, VPCI_ISR_OFF, 1);
		for (uint32_t off = 0; off < g->t->dev->config_len; off++)
			fuzz_bar_read(g, VPCI_DEVICE_OFF + off, 1);
		return true;
	case 7:
		for (unsigned q = 0; q < fuzz_nqueues(g); q++)
			fuzz_kick_checked(g, q);
		return true;
	default:
		return false;
	}
}

#endif
