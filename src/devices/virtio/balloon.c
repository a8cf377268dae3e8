/* virtio-balloon: inflate/deflate queues of little-endian 32-bit page frame numbers (4 KiB units, whatever
 * the guest's page size), config { le32 num_pages (host's target), le32 actual (guest's report) }.
 *
 * Every PFN comes from the guest and is checked against guest RAM (gmem_ptr) before madvise: a PFN outside
 * RAM is counted and skipped, never a crash. Deflate needs no host work: a dropped page of a private
 * anonymous mapping faults back in zeroed. DEFLATE_ON_OOM is offered so a guest under memory pressure may
 * take pages back without asking.
 *
 * Statistics (optional, virtio_balloon_enable_stats): the driver posts one buffer of (le16 tag, le64 value)
 * entries on queue 2 and the device keeps it; a timerfd on the event loop hands it back every N seconds
 * (used length 0), the driver refills it and posts it again. The values of the latest buffer are kept
 * per tag for --stats. A buffer that is not a whole number of entries or is absurdly large is counted and
 * its values ignored (it is still kept and handed back, so a confused driver can recover). */
#include "devices/virtio/balloon.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "devices/virtio/pci.h"
#include "lib/iov.h"
#include "lib/state_file.h"
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
	int stats_fd;             /* refresh timerfd; -1: no stats queue */
	unsigned stats_interval_s; /* its period; 0: no stats queue */
	bool stats_held;          /* the driver's stats buffer is with the device */
	uint16_t stats_head;      /* ... and this is its head, to hand back */
	struct vballoon_stats stats;
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

static void record_stat(struct vballoon_stats *s, uint16_t tag, uint64_t val)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->stat[i].tag == tag) {
			s->stat[i].val = val;
			return;
		}
	}
	if (s->n == VBALLOON_STATS_MAX_TAGS) {
		s->dropped_tags++;
		return;
	}
	s->stat[s->n++] = (struct vballoon_stat){ .tag = tag, .val = val };
}

/* Record the entries of one stats buffer (its readable part; entries may straddle segments). */
static void take_stats(struct vballoon *b, const struct virtq_chain *ch)
{
	uint8_t buf[VBALLOON_STATS_MAX_BYTES];
	if (ch->read_len > sizeof(buf)) {
		b->stats.malformed++;
		return;
	}
	size_t len = iov_to_buf(ch->iov, ch->nread, 0, buf, (size_t)ch->read_len);
	if (len % VBALLOON_STAT_SIZE) {
		b->stats.malformed++;
		return;
	}
	for (size_t off = 0; off < len; off += VBALLOON_STAT_SIZE) {
		uint16_t tag;
		uint64_t val;
		memcpy(&tag, buf + off, 2);
		memcpy(&val, buf + off + 2, 8);
		record_stat(&b->stats, le16toh(tag), le64toh(val));
	}
	b->stats.updates++;
}

/* The driver keeps one buffer with the device; should a second arrive, the newer one is kept and the older
 * handed back at once (a driver may not be starved of its own buffers). */
static void stats_queue_notify(struct vballoon *b)
{
	struct virtio_device *d = &b->dev;
	struct virtq *vq = &d->vq[VBALLOON_STATSQ];
	bool returned = false;
	struct virtio_pass pass = virtio_pass_begin(d, VBALLOON_STATSQ);
	int rc;
	while ((rc = virtio_pass_pop(&pass, b->chain)) == 1) {
		if (b->stats_held) {
			virtq_push(vq, b->stats_head, 0);
			returned = true;
		}
		take_stats(b, b->chain);
		b->stats_head = b->chain->head;
		b->stats_held = true;
	}
	if (rc == 0 && returned)
		virtio_queue_interrupt(d, VBALLOON_STATSQ, false);
}

void virtio_balloon_stats_tick(void *dev)
{
	struct vballoon *b = dev;
	uint64_t expirations;
	if (b->stats_fd < 0)
		return;
	if (read(b->stats_fd, &expirations, sizeof(expirations)) != sizeof(expirations)) {
		/* EAGAIN: called directly rather than by the timer; the request goes out all the same. */
	}
	struct virtio_transport *t = b->dev.transport;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	if (b->stats_held && virtio_queue_live(&b->dev, VBALLOON_STATSQ)) {
		b->stats_held = false;
		b->stats.requests++;
		virtq_push(&b->dev.vq[VBALLOON_STATSQ], b->stats_head, 0);
		virtio_queue_interrupt(&b->dev, VBALLOON_STATSQ, false);
	}
	pthread_mutex_unlock(&t->lock);
}

static void vb_queue_notify(struct virtio_device *d, unsigned q)
{
	struct vballoon *b = to_vb(d);
	if (q == VBALLOON_STATSQ && b->stats_fd >= 0) {
		stats_queue_notify(b);
		return;
	}
	if (q != VBALLOON_INFLATEQ && q != VBALLOON_DEFLATEQ)
		return;
	struct virtq *vq = &d->vq[q];
	struct virtio_pass pass = virtio_pass_begin(d, q);
	int rc;
	while ((rc = virtio_pass_pop(&pass, b->chain)) == 1) {
		handle_pfns(b, b->chain, q == VBALLOON_INFLATEQ);
		virtq_push(vq, b->chain->head, 0);
	}
	if (rc == 0)
		virtio_queue_interrupt(d, q, false);
}

static void vb_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vballoon *b = to_vb(d);
	uint8_t cfg[VBALLOON_CONFIG_LEN];
	uint32_t num = htole32(__atomic_load_n(&b->num_pages, __ATOMIC_RELAXED)), act = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
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

/* The held stats buffer belongs to the old ring: forget it. The last values stay for --stats. */
static void vb_reset(struct virtio_device *d)
{
	__atomic_store_n(&to_vb(d)->actual, 0, __ATOMIC_RELAXED);
	to_vb(d)->stats_held = false;
}

#define VB_STATE_VERSION 1

struct vb_state {
	uint32_t num_pages, actual, actual_max;
	uint16_t stats_head;
	uint8_t stats_held, pad;
};

/* The target and what the guest has given, and the statistics buffer the device holds (its head). */
static void vb_state_save(struct virtio_device *d, struct state_writer *w, const char *name)
{
	struct vballoon *b = to_vb(d);
	struct vb_state s = {
		.num_pages = __atomic_load_n(&b->num_pages, __ATOMIC_RELAXED), .actual = __atomic_load_n(&b->actual, __ATOMIC_RELAXED),
		.actual_max = __atomic_load_n(&b->actual_max, __ATOMIC_RELAXED), .stats_head = b->stats_head,
		.stats_held = b->stats_held,
	};
	state_put(w, name, VB_STATE_VERSION, &s, sizeof(s));
}

static int vb_state_load(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err)
{
	struct vballoon *b = to_vb(d);
	struct vb_state s;
	if (state_get(r, name, VB_STATE_VERSION, &s, sizeof(s), err) < 0)
		return -1;
	if (s.stats_held && (b->stats_fd < 0 || s.stats_head >= d->vq[VBALLOON_STATSQ].size))
		return vt_fail(err, "snapshot section %s: a statistics buffer this balloon cannot hold", name);
	__atomic_store_n(&b->num_pages, s.num_pages, __ATOMIC_RELAXED);
	__atomic_store_n(&b->actual, s.actual, __ATOMIC_RELAXED);
	__atomic_store_n(&b->actual_max, s.actual_max, __ATOMIC_RELAXED);
	b->stats_head = s.stats_head;
	b->stats_held = s.stats_held;
	return 0;
}

static unsigned vb_counters(struct virtio_device *d, struct virtio_counter *out)
{
	const struct vballoon *b = to_vb(d);
	const struct virtio_counter c[] = {
		{ "target_pages", __atomic_load_n(&b->num_pages, __ATOMIC_RELAXED) },
		{ "actual_pages", __atomic_load_n(&b->actual, __ATOMIC_RELAXED) },
		{ "pages_inflated", b->counters.inflated }, { "pages_deflated", b->counters.deflated },
		{ "bad_pfns", b->counters.bad_pfns }, { "guest_stats_updates", b->stats.updates },
	};
	memcpy(out, c, sizeof(c));
	return ARRAY_SIZE(c);
}

static const struct virtio_device_ops vb_ops = {
	.counters = vb_counters,
	.config_read = vb_config_read, .config_write = vb_config_write,
	.reset = vb_reset, .queue_notify = vb_queue_notify,
	.state_save = vb_state_save, .state_load = vb_state_load,
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
	b->stats_fd = -1;
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
	if (to_vb(d)->stats_fd >= 0)
		close(to_vb(d)->stats_fd);
	free(to_vb(d)->chain);
	free(to_vb(d));
}

int virtio_balloon_enable_stats(struct virtio_device *d, unsigned seconds, vt_err *err)
{
	struct vballoon *b = to_vb(d);
	if (!seconds)
		return vt_fail(err, "virtio-balloon: statistics interval must be at least 1 s");
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "virtio-balloon: timerfd_create");
	struct itimerspec every = { .it_interval = { .tv_sec = seconds }, .it_value = { .tv_sec = seconds } };
	if (timerfd_settime(fd, 0, &every, NULL) < 0) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "virtio-balloon: timerfd_settime");
	}
	if (b->stats_fd >= 0)
		close(b->stats_fd);
	b->stats_fd = fd;
	b->stats_interval_s = seconds;
	d->features |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	d->nqueues = 3;
	d->queue_max[VBALLOON_STATSQ] = VBALLOON_QUEUE_SIZE;
	return 0;
}

/* The target is read by the guest through config space (vCPU threads) and by --stats: atomics. The
 * transport lock orders the change with the config interrupt and its generation. */
int virtio_balloon_set_target(struct virtio_device *d, uint64_t target_bytes, vt_err *err)
{
	struct vballoon *b = to_vb(d);
	uint64_t pages = target_bytes >> VBALLOON_PAGE_SHIFT;
	if (pages > UINT32_MAX)
		return vt_fail(err, "virtio-balloon: target of %llu bytes is too large", (unsigned long long)target_bytes);
	struct virtio_transport *t = d->transport;
	if (t)
		pthread_mutex_lock(&t->lock);
	__atomic_store_n(&b->num_pages, (uint32_t)pages, __ATOMIC_RELAXED);
	if (t) {
		virtio_config_changed(d);
		pthread_mutex_unlock(&t->lock);
	}
	return 0;
}

uint64_t virtio_balloon_target(struct virtio_device *d)
{
	return (uint64_t)__atomic_load_n(&to_vb(d)->num_pages, __ATOMIC_RELAXED) << VBALLOON_PAGE_SHIFT;
}

int virtio_balloon_set_stats_interval(struct virtio_device *d, unsigned seconds, vt_err *err)
{
	struct vballoon *b = to_vb(d);
	if (b->stats_fd < 0)
		return vt_fail(err, "virtio-balloon: the guest's statistics are off (they can only be turned on at start)");
	if (!seconds)
		return vt_fail(err, "virtio-balloon: statistics interval must be at least 1 s (they cannot be turned off "
				    "while the VM runs)");
	struct itimerspec every = { .it_interval = { .tv_sec = seconds }, .it_value = { .tv_sec = seconds } };
	if (timerfd_settime(b->stats_fd, 0, &every, NULL) < 0)
		return vt_fail_errno(err, errno, "virtio-balloon: timerfd_settime");
	__atomic_store_n(&b->stats_interval_s, seconds, __ATOMIC_RELAXED);
	return 0;
}

unsigned virtio_balloon_stats_interval(struct virtio_device *d)
{
	return __atomic_load_n(&to_vb(d)->stats_interval_s, __ATOMIC_RELAXED);
}

int virtio_balloon_stats_fd(const struct virtio_device *d)
{
	return ((const struct vballoon *)d)->stats_fd;
}

void virtio_balloon_stats(struct virtio_device *d, struct vballoon_stats *out)
{
	struct virtio_transport *t = d->transport;
	if (t)
		pthread_mutex_lock(&t->lock);
	*out = to_vb(d)->stats;
	if (t)
		pthread_mutex_unlock(&t->lock);
}

/* Tags 0-9: virtio 1.x 5.5.6.3.1; 10-15: added by Linux 6.12. Sizes are in bytes, the rest are counts. */
static const struct {
	const char *name;
	bool bytes;
} stat_names[] = {
	{ "swap-in", true }, { "swap-out", true }, { "major-faults", false }, { "minor-faults", false },
	{ "free-memory", true }, { "total-memory", true }, { "available-memory", true }, { "disk-caches", true },
	{ "hugetlb-allocations", false }, { "hugetlb-failures", false }, { "oom-kills", false },
	{ "alloc-stalls", false }, { "async-scans", false }, { "direct-scans", false },
	{ "async-reclaims", false }, { "direct-reclaims", false },
};

const char *vballoon_stat_name(uint16_t tag)
{
	return tag < ARRAY_SIZE(stat_names) ? stat_names[tag].name : NULL;
}

static void print_guest_stats(struct virtio_device *d, FILE *f)
{
	struct vballoon_stats s;
	virtio_balloon_stats(d, &s);
	fprintf(f, "virtio-balloon: guest memory statistics: %llu updates, %llu requests, %llu malformed buffers, "
		"%llu tags dropped\n", (unsigned long long)s.updates, (unsigned long long)s.requests,
		(unsigned long long)s.malformed, (unsigned long long)s.dropped_tags);
	for (unsigned i = 0; i < s.n; i++) {
		char unknown[16];
		const char *name = vballoon_stat_name(s.stat[i].tag);
		if (!name) {
			snprintf(unknown, sizeof(unknown), "tag-%u", s.stat[i].tag);
			name = unknown;
		}
		bool bytes = s.stat[i].tag < ARRAY_SIZE(stat_names) && stat_names[s.stat[i].tag].bytes;
		fprintf(f, "  balloon %-20s %20llu%s\n", name, (unsigned long long)s.stat[i].val, bytes ? " bytes" : "");
	}
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
		"%llu bad pfns\n", __atomic_load_n(&b->num_pages, __ATOMIC_RELAXED), virtio_balloon_actual(d),
		__atomic_load_n(&b->actual_max, __ATOMIC_RELAXED), (unsigned long long)b->counters.inflated,
		(unsigned long long)b->counters.deflated, (unsigned long long)b->counters.bad_pfns);
	if (b->stats_fd >= 0)
		print_guest_stats(d, f);
}
