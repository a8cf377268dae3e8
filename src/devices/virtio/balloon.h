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
#define VBALLOON_STATSQ 2
#define VBALLOON_STATS_DEFAULT_SECONDS 5
#define VBALLOON_STATS_MAX_TAGS 32     /* distinct tags remembered; the spec defines 10, Linux 6.12 sends 16 */
#define VBALLOON_STATS_MAX_BYTES 4096  /* a larger stats buffer is a guest error (a real one is 10 per tag) */
#define VBALLOON_STAT_SIZE 10          /* one entry: le16 tag, le64 value, packed */

struct vballoon_counters {
	uint64_t inflated, deflated, bad_pfns; /* pages, over the device's life */
};

/* The guest's memory statistics (virtio 1.x 5.5.6.3), the last values the driver reported per tag. */
struct vballoon_stat {
	uint16_t tag;
	uint64_t val;
};

struct vballoon_stats {
	unsigned n;                /* stat[0..n): tags in the order first seen */
	struct vballoon_stat stat[VBALLOON_STATS_MAX_TAGS];
	uint64_t updates;          /* stats buffers taken in */
	uint64_t requests;         /* buffers handed back to ask for fresh values */
	uint64_t malformed;        /* buffers ignored: not whole entries, or larger than VBALLOON_STATS_MAX_BYTES */
	uint64_t dropped_tags;     /* entries ignored because VBALLOON_STATS_MAX_TAGS distinct tags were known */
};

/* target_bytes: how much memory to ask the guest for at start (rounded down to 4 KiB pages). */
int virtio_balloon_create(struct virtio_device **out, const struct guest_mem *mem, uint64_t target_bytes,
			  vt_err *err);
void virtio_balloon_destroy(struct virtio_device *d);
/* Offer the statistics queue (VIRTIO_BALLOON_F_STATS_VQ, queue 2), asking the guest for fresh values every
 * `seconds` (> 0). Call before the device is plugged into its transport. Makes a timerfd: watch it on the
 * device's event loop with virtio_balloon_stats_tick. */
int virtio_balloon_enable_stats(struct virtio_device *d, unsigned seconds, vt_err *err);
/* Change the target while the VM runs (any thread): the driver learns it from a configuration-change
 * interrupt and inflates or deflates towards it. Takes the transport lock. */
int virtio_balloon_set_target(struct virtio_device *d, uint64_t target_bytes, vt_err *err);
/* The target in bytes (whole 4 KiB pages). */
uint64_t virtio_balloon_target(struct virtio_device *d);
/* Change how often the guest is asked for statistics (> 0; only when the stats queue was enabled). */
int virtio_balloon_set_stats_interval(struct virtio_device *d, unsigned seconds, vt_err *err);
/* That period in seconds; 0 without statistics. */
unsigned virtio_balloon_stats_interval(struct virtio_device *d);
/* The refresh timer's fd, -1 without stats. */
int virtio_balloon_stats_fd(const struct virtio_device *d);
/* Event-loop callback of that fd: hand the held stats buffer back to the driver so it refills it. Takes the
 * transport lock. Also callable directly (tests): an unexpired timer is not an error. */
void virtio_balloon_stats_tick(void *dev);
/* A consistent copy of the latest statistics (takes the transport lock). */
void virtio_balloon_stats(struct virtio_device *d, struct vballoon_stats *out);
/* "free-memory", ...; NULL for a tag the spec (or Linux) does not define. */
const char *vballoon_stat_name(uint16_t tag);
void virtio_balloon_counters(struct virtio_device *d, struct vballoon_counters *out);
uint32_t virtio_balloon_actual(struct virtio_device *d);
/* One --stats line: target, actual, pages inflated/deflated, bad PFNs; then, with the stats queue, the
 * guest's latest memory statistics, one per line, by name (unknown tags as "tag-N"). */
void virtio_balloon_print_stats(struct virtio_device *d, FILE *f);

/* Release one guest page frame to the host: false (and nothing done) if the page is not wholly guest RAM.
 * Exposed for tests. */
bool vballoon_release_pfn(const struct guest_mem *mem, uint32_t pfn);

#endif
