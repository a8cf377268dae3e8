/* virtio-balloon over a real anonymous mapping used as guest RAM, through the real virtio-pci transport:
 * PFN bounds (a PFN outside RAM is counted and skipped), MADV_DONTNEED really returning memory (resident
 * pages counted with mincore before and after), the config space (num_pages set by the host, actual
 * written by the guest), malformed chains, and the statistics queue (a buffer kept until the timer hands it
 * back; entries across descriptors; a hostile driver's odd, huge, doubled or missing buffers). */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/balloon.h"
#include "vdev_harness.h"

#define TARGET_BYTES (2u << 20)
#define PAGE 4096u
#define PFN_GPA 0x30000u /* where the driver's PFN arrays live */

/* A plugged balloon; with stats_seconds > 0, its statistics queue too (the tests tick it by hand). */
static int setup_with(void **state, unsigned stats_seconds)
{
	struct harness *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h_init(h);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_balloon_create(&d, &h->mem, TARGET_BYTES, &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_BALLOON);
	if (stats_seconds)
		assert_int_equal(virtio_balloon_enable_stats(d, stats_seconds, &err), 0);
	h_plug(h, d);
	*state = h;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, 0);
}

#define STATS_GPA 0x40000u /* where the driver's stats buffers live */

static int setup_stats(void **state)
{
	return setup_with(state, 3600);
}

static int teardown(void **state)
{
	struct harness *h = *state;
	h_fini(h, virtio_balloon_destroy);
	free(h);
	return 0;
}

/* Resident pages of [p, p + len) in this process (mincore). */
static size_t resident_pages(const uint8_t *p, size_t len)
{
	size_t n = len / PAGE, count = 0;
	unsigned char *vec = malloc(n);
	assert_non_null(vec);
	assert_int_equal(mincore((void *)(uintptr_t)p, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	free(vec);
	return count;
}

static long vm_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void release_pfn_checks_bounds(void **state)
{
	struct harness *h = *state;
	uint32_t last = H_RAM / PAGE - 1;
	h->ram[(uint64_t)last * PAGE] = 0x5a;
	assert_true(vballoon_release_pfn(&h->mem, last));
	assert_int_equal(h->ram[(uint64_t)last * PAGE], 0); /* dropped: reads back as a fresh zero page */
	assert_false(vballoon_release_pfn(&h->mem, last + 1));
	assert_false(vballoon_release_pfn(&h->mem, UINT32_MAX));
	assert_false(vballoon_release_pfn(&h->mem, 0xfee00)); /* the APIC page: never RAM */
}

/* A bigger real mapping than the harness's: 64 MiB touched, then every page released. */
static void madvise_drops_rss(void **state)
{
	(void)state;
	const size_t size = 64u << 20;
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	struct guest_mem mem;
	gmem_init_fixed(&mem, ram, size);
	memset(ram, 0xa5, size);
	long rss_before = vm_rss_kb();
	assert_int_equal(resident_pages(ram, size), size / PAGE);
	for (uint32_t pfn = 0; pfn < size / PAGE; pfn++)
		assert_true(vballoon_release_pfn(&mem, pfn));
	long rss_after = vm_rss_kb();
	print_message("# VmRSS %ld kB -> %ld kB after releasing 64 MiB\n", rss_before, rss_after);
	assert_int_equal(resident_pages(ram, size), 0);
	assert_true(rss_before - rss_after >= 60 * 1024);
	assert_int_equal(ram[size / 2], 0);
	munmap(ram, size);
}

static uint32_t config_read32(struct harness *h, unsigned off)
{
	return le32toh((uint32_t)h_bar_read(h, VPCI_DEVICE_OFF + off, 4));
}

static void config_num_pages_and_actual(void **state)
{
	struct harness *h = *state;
	assert_int_equal(config_read32(h, 0), TARGET_BYTES / PAGE);
	assert_int_equal(config_read32(h, 4), 0);
	h_bar_write(h, VPCI_DEVICE_OFF + 4, 4, htole32(123));
	assert_int_equal(config_read32(h, 4), 123);
	assert_int_equal(virtio_balloon_actual(h->dev), 123);
	h_bar_write(h, VPCI_DEVICE_OFF + 0, 4, htole32(7)); /* num_pages is the host's: ignored */
	assert_int_equal(config_read32(h, 0), TARGET_BYTES / PAGE);
	h_bar_write(h, VPCI_DEVICE_OFF + 5, 1, 1); /* byte-wise write of actual's second byte */
	assert_int_equal(virtio_balloon_actual(h->dev), 123 + 256);
	/* offered features: DEFLATE_ON_OOM, not MUST_TELL_HOST */
	assert_true(h->dev->features & (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	assert_false(h->dev->features & (1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST));
}

static void put_pfns(struct harness *h, uint64_t gpa, const uint32_t *pfns, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t le = htole32(pfns[i]);
		memcpy(h->ram + gpa + 4 * i, &le, 4);
	}
}

static void inflate_releases_good_pfns_skips_bad(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 1u << VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	uint32_t first = 0x200000 / PAGE; /* pages at 2 MiB.. */
	memset(h->ram + 0x200000, 0x77, 8 * PAGE);
	uint32_t pfns[] = { first, first + 1, 0xffffffffu, first + 2, H_RAM / PAGE, first + 3 };
	put_pfns(h, PFN_GPA, pfns, 6);
	size_t before = resident_pages(h->ram + 0x200000, 8 * PAGE);
	assert_int_equal(before, 8);
	h_post(h, VBALLOON_INFLATEQ, PFN_GPA, sizeof(pfns), 0);
	h_kick(h, VBALLOON_INFLATEQ);
	assert_int_equal(h_used_idx(h, VBALLOON_INFLATEQ), 1);
	assert_false(h_needs_reset(h)); /* bad PFNs are skipped, not a device error */
	struct vballoon_counters c;
	virtio_balloon_counters(h->dev, &c);
	assert_int_equal(c.inflated, 4);
	assert_int_equal(c.bad_pfns, 2);
	assert_int_equal(resident_pages(h->ram + 0x200000, 8 * PAGE), 4); /* the 4 others untouched */
	assert_int_equal(h->ram[0x200000 + 3 * PAGE], 0);
	assert_int_equal(h->ram[0x200000 + 4 * PAGE], 0x77);
	/* deflate: acknowledged, counted; the pages fault back in on use */
	put_pfns(h, PFN_GPA, pfns, 2);
	h_post(h, VBALLOON_DEFLATEQ, PFN_GPA, 8, 0);
	h_kick(h, VBALLOON_DEFLATEQ);
	assert_int_equal(h_used_idx(h, VBALLOON_DEFLATEQ), 1);
	virtio_balloon_counters(h->dev, &c);
	assert_int_equal(c.deflated, 2);
}

static void odd_length_and_bad_chain(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 0);
	uint32_t pfns[] = { 0x300, 0x301 };
	put_pfns(h, PFN_GPA, pfns, 2);
	h_post(h, VBALLOON_INFLATEQ, PFN_GPA, 7, 0); /* a trailing partial PFN is ignored */
	h_kick(h, VBALLOON_INFLATEQ);
	struct vballoon_counters c;
	virtio_balloon_counters(h->dev, &c);
	assert_int_equal(c.inflated, 1);
	h_post(h, VBALLOON_INFLATEQ, H_RAM - 4, 64, 0); /* runs off the end of RAM */
	h_kick(h, VBALLOON_INFLATEQ);
	assert_true(h_needs_reset(h));
}

/* Write n (tag, value) entries, packed, at gpa. */
static void put_stats(struct harness *h, uint64_t gpa, const uint16_t *tags, const uint64_t *vals, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t t = htole16(tags[i]);
		uint64_t v = htole64(vals[i]);
		memcpy(h->ram + gpa + VBALLOON_STAT_SIZE * i, &t, 2);
		memcpy(h->ram + gpa + VBALLOON_STAT_SIZE * i + 2, &v, 8);
	}
}

static uint16_t used_id(struct harness *h, unsigned q, unsigned i)
{
	uint32_t v;
	memcpy(&v, h->ram + H_RING(q) + 0x2000 + 4 + 8 * (i % H_QSIZE), 4);
	return (uint16_t)v;
}

static uint64_t stat_of(struct virtio_device *d, uint16_t tag)
{
	struct vballoon_stats s;
	virtio_balloon_stats(d, &s);
	for (unsigned i = 0; i < s.n; i++)
		if (s.stat[i].tag == tag)
			return s.stat[i].val;
	return UINT64_MAX;
}

static struct vballoon_stats stats_of(struct virtio_device *d)
{
	struct vballoon_stats s;
	virtio_balloon_stats(d, &s);
	return s;
}

static void stats_queue_offered_only_when_enabled(void **state)
{
	struct harness *h = *state;
	assert_false(h->dev->features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)); /* plain setup: no stats */
	assert_int_equal(h->dev->nqueues, 2);
	assert_int_equal(virtio_balloon_stats_fd(h->dev), -1);
	virtio_balloon_stats_tick(h->dev); /* no timer, no queue: nothing happens */
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_balloon_create(&d, &h->mem, TARGET_BYTES, &err), 0);
	assert_int_equal(virtio_balloon_enable_stats(d, 0, &err), -1);
	assert_non_null(strstr(err.msg, "at least 1 s"));
	assert_int_equal(virtio_balloon_enable_stats(d, 2, &err), 0);
	assert_true(d->features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ));
	assert_int_equal(d->nqueues, 3);
	assert_true(virtio_balloon_stats_fd(d) >= 0);
	virtio_balloon_destroy(d);
}

static void stats_buffer_kept_then_handed_back(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	uint16_t tags[] = { 4, 5, 42 };
	uint64_t vals[] = { 1000000, 2000000, 7 };
	put_stats(h, STATS_GPA, tags, vals, 3);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, 3 * VBALLOON_STAT_SIZE, 0);
	h_kick(h, VBALLOON_STATSQ);
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), 0); /* kept, not returned */
	assert_int_equal(stat_of(h->dev, 4), 1000000);
	assert_int_equal(stat_of(h->dev, 5), 2000000);
	assert_int_equal(stat_of(h->dev, 42), 7);
	assert_int_equal(stats_of(h->dev).updates, 1);
	assert_int_equal(h_bar_read(h, VPCI_ISR_OFF, 1), 0); /* reading ISR clears it */
	virtio_balloon_stats_tick(h->dev); /* the timer: give it back for fresh values */
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), 1);
	assert_int_equal(used_id(h, VBALLOON_STATSQ, 0), 0);
	assert_int_equal(h_used_len(h, VBALLOON_STATSQ, 0), 0);
	assert_int_equal(h_bar_read(h, VPCI_ISR_OFF, 1) & 1, 1); /* the driver was interrupted */
	virtio_balloon_stats_tick(h->dev); /* nothing held: nothing to return */
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), 1);
	assert_int_equal(stats_of(h->dev).requests, 1);
	vals[0] = 900000; /* the driver refills and posts again */
	put_stats(h, STATS_GPA, tags, vals, 1);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, VBALLOON_STAT_SIZE, 0);
	h_kick(h, VBALLOON_STATSQ);
	assert_int_equal(stat_of(h->dev, 4), 900000);
	assert_int_equal(stat_of(h->dev, 5), 2000000); /* not in this buffer: the last value stays */
	assert_int_equal(stats_of(h->dev).n, 3);
	assert_int_equal(stats_of(h->dev).updates, 2);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	virtio_balloon_print_stats(h->dev, f);
	fclose(f);
	assert_non_null(strstr(out, "2 updates, 1 requests, 0 malformed"));
	assert_non_null(strstr(out, "free-memory"));
	assert_non_null(strstr(out, "900000 bytes"));
	assert_non_null(strstr(out, "total-memory"));
	assert_non_null(strstr(out, "tag-42"));
	free(out);
	assert_false(h_needs_reset(h));
}

/* A two-descriptor chain on queue q, split at `first` bytes (entries straddle the boundary). */
static void post_split(struct harness *h, unsigned q, uint64_t gpa, uint32_t first, uint32_t len)
{
	uint16_t d0 = h->next_desc[q]++ % H_QSIZE, d1 = h->next_desc[q]++ % H_QSIZE;
	uint64_t gpa1 = gpa + first;
	uint32_t len0 = first, len1 = len - first;
	uint16_t next = VIRTQ_DESC_F_NEXT, none = 0;
	uint8_t *a = h->ram + H_RING(q) + 16u * d0, *b = h->ram + H_RING(q) + 16u * d1;
	memcpy(a, &gpa, 8), memcpy(a + 8, &len0, 4), memcpy(a + 12, &next, 2), memcpy(a + 14, &d1, 2);
	memcpy(b, &gpa1, 8), memcpy(b + 8, &len1, 4), memcpy(b + 12, &none, 2);
	uint16_t *avail = (uint16_t *)(void *)(h->ram + H_RING(q) + 0x1000);
	avail[2 + h->avail_idx[q] % H_QSIZE] = d0;
	avail[1] = ++h->avail_idx[q];
}

static void stats_entries_across_descriptors(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	uint16_t tags[] = { 0, 3, 5 };
	uint64_t vals[] = { 0x1122334455667788ull, 99, 1ull << 40 };
	put_stats(h, STATS_GPA, tags, vals, 3);
	post_split(h, VBALLOON_STATSQ, STATS_GPA, 13, 3 * VBALLOON_STAT_SIZE); /* mid-value of entry 1 */
	h_kick(h, VBALLOON_STATSQ);
	assert_int_equal(stat_of(h->dev, 0), 0x1122334455667788ull);
	assert_int_equal(stat_of(h->dev, 3), 99);
	assert_int_equal(stat_of(h->dev, 5), 1ull << 40);
	assert_int_equal(stats_of(h->dev).malformed, 0);
}

static void stats_hostile_driver(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	h_kick(h, VBALLOON_STATSQ); /* a kick with no buffer */
	assert_false(h_needs_reset(h));
	assert_int_equal(stats_of(h->dev).updates, 0);
	uint16_t tags[] = { 5 };
	uint64_t vals[] = { 4096 };
	put_stats(h, STATS_GPA, tags, vals, 1);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, 15, 0); /* one and a half entries: ignored, still kept */
	h_kick(h, VBALLOON_STATSQ);
	assert_int_equal(stats_of(h->dev).malformed, 1);
	assert_int_equal(stats_of(h->dev).n, 0);
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), 0);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, 8000, 0); /* whole entries, absurdly many: ignored */
	h_kick(h, VBALLOON_STATSQ);
	assert_int_equal(stats_of(h->dev).malformed, 2);
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), 1); /* a second buffer: the older goes back at once */
	assert_int_equal(used_id(h, VBALLOON_STATSQ, 0), 0);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, 0, VIRTQ_DESC_F_WRITE); /* zero length: a malformed chain */
	h_kick(h, VBALLOON_STATSQ);
	assert_true(h_needs_reset(h));
	unsigned used = h_used_idx(h, VBALLOON_STATSQ);
	virtio_balloon_stats_tick(h->dev); /* a broken queue is left alone */
	assert_int_equal(h_used_idx(h, VBALLOON_STATSQ), used);
}

static void stats_too_many_tags_and_reset(void **state)
{
	struct harness *h = *state;
	h_driver_ok(h, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	enum { N = VBALLOON_STATS_MAX_TAGS + 8 };
	uint16_t tags[N];
	uint64_t vals[N];
	for (unsigned i = 0; i < N; i++)
		tags[i] = (uint16_t)(1000 + i), vals[i] = i;
	put_stats(h, STATS_GPA, tags, vals, N);
	h_post(h, VBALLOON_STATSQ, STATS_GPA, N * VBALLOON_STAT_SIZE, 0);
	h_kick(h, VBALLOON_STATSQ);
	struct vballoon_stats s = stats_of(h->dev);
	assert_int_equal(s.n, VBALLOON_STATS_MAX_TAGS);
	assert_int_equal(s.dropped_tags, 8);
	assert_int_equal(stat_of(h->dev, 1000 + VBALLOON_STATS_MAX_TAGS - 1), VBALLOON_STATS_MAX_TAGS - 1);
	assert_null(vballoon_stat_name(1000));
	assert_string_equal(vballoon_stat_name(4), "free-memory");
	h_bar_write(h, VPCI_STATUS, 1, 0); /* reset: the held buffer is forgotten, the values are not */
	virtio_balloon_stats_tick(h->dev);
	assert_int_equal(stats_of(h->dev).requests, 0);
	assert_int_equal(stats_of(h->dev).n, VBALLOON_STATS_MAX_TAGS);
}

/* A target changed while the VM runs: the driver reads it from config space, and learns of it from a new
 * configuration generation and the ISR's configuration bit (its interrupt). A target too large for the
 * 32-bit page count is refused and changes nothing. */
static void target_changed_while_running(void **state)
{
	struct harness *h = *state;
	vt_err err;
	uint8_t gen = (uint8_t)h_bar_read(h, VPCI_COMMON_OFF + VPCI_CFG_GEN, 1);
	(void)h_bar_read(h, VPCI_ISR_OFF, 1); /* acknowledge anything pending */
	assert_int_equal(virtio_balloon_set_target(h->dev, 3u << 20, &err), 0);
	assert_int_equal(config_read32(h, 0), (3u << 20) / PAGE);
	assert_int_equal(virtio_balloon_target(h->dev), 3u << 20);
	assert_int_equal((uint8_t)h_bar_read(h, VPCI_COMMON_OFF + VPCI_CFG_GEN, 1), (uint8_t)(gen + 1));
	assert_int_equal(h_bar_read(h, VPCI_ISR_OFF, 1) & 2, 2);
	assert_int_equal(virtio_balloon_set_target(h->dev, 0, &err), 0); /* everything back */
	assert_int_equal(config_read32(h, 0), 0);
	assert_int_equal(virtio_balloon_set_target(h->dev, (uint64_t)UINT32_MAX * PAGE + PAGE, &err), -1);
	assert_non_null(strstr(err.msg, "too large"));
	assert_int_equal(config_read32(h, 0), 0);
	assert_int_equal((uint8_t)h_bar_read(h, VPCI_COMMON_OFF + VPCI_CFG_GEN, 1), (uint8_t)(gen + 2));
	/* no statistics queue: its interval cannot be changed */
	assert_int_equal(virtio_balloon_stats_interval(h->dev), 0);
	assert_int_equal(virtio_balloon_set_stats_interval(h->dev, 5, &err), -1);
	assert_non_null(strstr(err.msg, "statistics are off"));
}

static void stats_interval_changed_while_running(void **state)
{
	struct harness *h = *state;
	vt_err err;
	assert_int_equal(virtio_balloon_stats_interval(h->dev), 3600);
	assert_int_equal(virtio_balloon_set_stats_interval(h->dev, 2, &err), 0);
	assert_int_equal(virtio_balloon_stats_interval(h->dev), 2);
	struct itimerspec now;
	assert_int_equal(timerfd_gettime(virtio_balloon_stats_fd(h->dev), &now), 0);
	assert_int_equal(now.it_interval.tv_sec, 2);
	assert_int_equal(virtio_balloon_set_stats_interval(h->dev, 0, &err), -1);
	assert_non_null(strstr(err.msg, "at least 1 s"));
	assert_int_equal(virtio_balloon_stats_interval(h->dev), 2);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(release_pfn_checks_bounds),
		T(madvise_drops_rss),
		T(config_num_pages_and_actual),
		T(target_changed_while_running),
		T(inflate_releases_good_pfns_skips_bad),
		T(odd_length_and_bad_chain),
		T(stats_queue_offered_only_when_enabled),
#define TS(name) cmocka_unit_test_setup_teardown(name, setup_stats, teardown)
		TS(stats_buffer_kept_then_handed_back),
		TS(stats_entries_across_descriptors),
		TS(stats_hostile_driver),
		TS(stats_too_many_tags_and_reset),
		TS(stats_interval_changed_while_running),
	};
	return cmocka_run_group_tests_name("virtio_balloon", tests, NULL, NULL);
}
