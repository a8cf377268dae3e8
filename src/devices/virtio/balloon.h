/* virtio-balloon (virtio 1.x, 5.5): the host sets a target (num_pages, 4 KiB units); the guest's driver
 * gives pages back through the inflate queue (virtus drops them with madvise(MADV_DONTNEED), so the VMM's
 * RSS falls) and takes them back through the deflate queue (they fault in again, zeroed, on next touch). */
#ifndef VIRTUS_VIRTIO_BALLOON_H
#define VIRTUS_VIRTIO_BALLOON_H

#include <stdint.h>
#include <stdio.h>

#include "devices/virtio/virtio.h"
#include "vmm/guest_mem.h"

#define VIRTIO_BALLOON_F_MUST_TELL_HOST   0
#define VIRTIO_BALLOON_F_STATS_VQ         1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM   2
#define VBALLOON_PAGE_SHIFT 12
#define VBALLOON_INFLATEQ 0
#define VBALLOON_DEFLATEQ 1

struct vballoon_counters {
	uint64_t inflated, deflated, bad_pfns; /* pages, over the device's life */
};

/* target_bytes: how much memory to ask the guest for at start (rounded down to 4 KiB pages). */
int virtio_balloon_create(struct virtio_device **out, const struct guest_mem *mem, uint64_t target_bytes,
			  vt_err *err);
void virtio_balloon_destroy(struct virtio_device *d);
void virtio_balloon_counters(struct virtio_device *d, struct vballoon_counters *out);
uint32_t virtio_balloon_actual(struct virtio_device *d);
/* One --stats line: target, actual, pages inflated/deflated, bad PFNs. */
void virtio_balloon_print_stats(struct virtio_device *d, FILE *f);

/* Release one guest page frame to the host: false (and nothing done) if the page is not wholly guest RAM.
 * Exposed for tests. */
bool vballoon_release_pfn(const struct guest_mem *mem, uint32_t pfn);

#endif
