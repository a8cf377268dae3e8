/* virtio-balloon over a real anonymous mapping used as guest RAM, through the real virtio-pci transport:
 * PFN bounds (a PFN outside RAM is counted and skipped), MADV_DONTNEED really returning memory (resident
 * pages counted with mincore before and after), the config space (num_pages set by the host, actual
 * written by the guest), and malformed chains. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/balloon.h"
#include "vdev_harness.h"

#define TARGET_BYTES (2u << 20)
#define PAGE 4096u
#define PFN_GPA 0x30000u /* where the driver's PFN arrays live */

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h_init(h);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_balloon_create(&d, &h->mem, TARGET_BYTES, &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_BALLOON);
	h_plug(h, d);
	*state = h;
	return 0;
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

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(release_pfn_checks_bounds),
		T(madvise_drops_rss),
		T(config_num_pages_and_actual),
		T(inflate_releases_good_pfns_skips_bad),
		T(odd_length_and_bad_chain),
	};
	return cmocka_run_group_tests_name("virtio_balloon", tests, NULL, NULL);
}
