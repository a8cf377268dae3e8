/* virtio-balloon: inflate/deflate queues of little-endian 32-bit page frame numbers (4 KiB units, whatever
 * the guest's page size), config { le32 num_pages (host's target), le32 actual (guest's report) }.
 *
 * Every PFN comes from the guest and is checked against guest RAM (gmem_ptr) before madvise: a PFN outside
 * RAM is counted and skipped, never a crash. Deflate needs no host work: a dropped page of a private
 * anonymous mapping faults back in zeroed. DEFLATE_ON_OOM is offered so a guest under memory pressure may
 * take pages back without asking. */
#include "devices/virtio/balloon.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/util.h"

#define VBALLOON_QUEUE_SIZE 128
#define VBALLOON_PAGE_SIZE (1u << VBALLOON_PAGE_SHIFT)
#define VBALLOON_CONFIG_LEN 8

struct vballoon {
	struct virtio_device dev; /* first: the device pointer is the vballoon pointer */
	const struct guest_mem *mem;
	uint32_t num_pages;       /* target, host-written */
	uint32_t actual;          /* guest-written (atomic: read by --stats from another thread) */
	uint32_t actual_max;      /* the most the guest ever reported: --stats, after a final reset */
	struct vballoon_counters counters;
	struct virtq_chain *chain;
};

static struct vballoon *to_vb(struct virtio_device *d)
{
	return (struct vballoon *)d;
}

bool vballoon_release_pfn(const struct guest_mem *mem, uint32_t pfn)
{
	uint64_t gpa = (uint64_t)pfn << VBALLOON_PAGE_SHIFT;
	void *hva = gmem_ptr(mem, gpa, VBALLOON_PAGE_SIZE);
	if (!hva)
		return false;
	/* gmem_ptr gives page-aligned host addresses for page-aligned gpas (RAM slots are page-aligned). */
	madvise(hva, VBALLOON_PAGE_SIZE, MADV_DONTNEED);
	return true;
}

/* Walk the PFN array of one chain (readable part, possibly split across segments at any byte). */
static void handle_pfns(struct vballoon *b, const struct virtq_chain *ch, bool inflate)
{
	uint8_t word[4];
	unsigned have = 0;
	for (unsigned i = 0; i < ch->nread; i++) {
		const uint8_t *p = ch->iov[i].iov_base;
		for (size_t k = 0; k < ch->iov[i].iov_len; k++) {
			word[have++] = p[k];
			if (have < 4)
				continue;
			have = 0;
			uint32_t pfn;
			memcpy(&pfn, word, 4);
			pfn = le32toh(pfn);
			if (!inflate)
				b->counters.deflated++;
			else if (vballoon_release_pfn(b->mem, pfn))
				b->counters.inflated++;
			else
				b->counters.bad_pfns++;
		}
	}
}

static void vb_queue_notify(struct virtio_device *d, unsigned q)
{
	struct vballoon *b = to_vb(d);
	if (q != VBALLOON_INFLATEQ && q != VBALLOON_DEFLATEQ)
		return;
	struct virtq *vq = &d->vq[q];
	int rc;
	do {
		while ((rc = virtq_pop(vq, b->chain)) == 1) {
			handle_pfns(b, b->chain, q == VBALLOON_INFLATEQ);
			virtq_push(vq, b->chain->head, 0);
		}
	} while (rc == 0 && virtq_enable_notify(vq, true));
	if (rc < 0)
		virtio_mark_broken(d, "malformed balloon chain");
	else
		virtio_queue_interrupt(d, q, false);
}

static void vb_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vballoon *b = to_vb(d);
	uint8_t cfg[VBALLOON_CONFIG_LEN];
	uint32_t num = htole32(b->num_pages), act = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
	memcpy(cfg, &num, 4);
	memcpy(cfg + 4, &act, 4);
	memcpy(data, cfg + off, len); /* the transport checked off + len <= config_len */
}

/* Only `actual` is driver-writable; a write to num_pages is ignored. */
static void vb_config_write(struct virtio_device *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct vballoon *b = to_vb(d);
	uint8_t cfg[VBALLOON_CONFIG_LEN];
	uint32_t act = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
	memcpy(cfg + 4, &act, 4);
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= 4)
			cfg[off + i] = data[i];
	memcpy(&act, cfg + 4, 4);
	act = le32toh(act);
	__atomic_store_n(&b->actual, act, __ATOMIC_RELAXED);
	if (act > __atomic_load_n(&b->actual_max, __ATOMIC_RELAXED))
		__atomic_store_n(&b->actual_max, act, __ATOMIC_RELAXED);
}

static void vb_reset(struct virtio_device *d)
{
	__atomic_store_n(&to_vb(d)->actual, 0, __ATOMIC_RELAXED);
}

static const struct virtio_device_ops vb_ops = {
	.config_read = vb_config_read, .config_write = vb_config_write,
	.reset = vb_reset, .queue_notify = vb_queue_notify,
};

int virtio_balloon_create(struct virtio_device **out, const struct guest_mem *mem, uint64_t target_bytes,
			  vt_err *err)
{
	uint64_t pages = target_bytes >> VBALLOON_PAGE_SHIFT;
	if (pages > UINT32_MAX)
		return vt_fail(err, "virtio-balloon: target of %llu bytes is too large",
			       (unsigned long long)target_bytes);
	struct vballoon *b = calloc(1, sizeof(*b));
	if (!b || !(b->chain = malloc(sizeof(*b->chain)))) {
		free(b);
		return vt_fail_errno(err, ENOMEM, "virtio-balloon");
	}
	b->mem = mem;
	b->num_pages = (uint32_t)pages;
	struct virtio_device *d = &b->dev;
	d->id = VIRTIO_ID_BALLOON;
	d->features = (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | (1ULL << VIRTIO_F_EVENT_IDX) |
		      (1ULL << VIRTIO_F_INDIRECT_DESC);
	d->nqueues = 2;
	d->queue_max[VBALLOON_INFLATEQ] = d->queue_max[VBALLOON_DEFLATEQ] = VBALLOON_QUEUE_SIZE;
	d->config_len = VBALLOON_CONFIG_LEN;
	d->ops = &vb_ops;
	d->name = "virtio-balloon";
	*out = d;
	return 0;
}

void virtio_balloon_destroy(struct virtio_device *d)
{
	if (!d)
		return;
	free(to_vb(d)->chain);
	free(to_vb(d));
}

void virtio_balloon_counters(struct virtio_device *d, struct vballoon_counters *out)
{
	*out = to_vb(d)->counters;
}

uint32_t virtio_balloon_actual(struct virtio_device *d)
{
	return __atomic_load_n(&to_vb(d)->actual, __ATOMIC_RELAXED);
}

void virtio_balloon_print_stats(struct virtio_device *d, FILE *f)
{
	const struct vballoon *b = to_vb(d);
	fprintf(f, "virtio-balloon: target %u pages, actual %u pages (at most %u), %llu inflated, %llu deflated, "
		"%llu bad pfns\n", b->num_pages, virtio_balloon_actual(d),
		__atomic_load_n(&b->actual_max, __ATOMIC_RELAXED), (unsigned long long)b->counters.inflated,
		(unsigned long long)b->counters.deflated, (unsigned long long)b->counters.bad_pfns);
}
