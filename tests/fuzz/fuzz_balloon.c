/* libFuzzer target for virtio-balloon, driven through the virtio-pci transport like a (hostile) driver:
 * the input is the guest's RAM (rings, PFN arrays) and a script of kicks on every queue the device has,
 * config writes of `actual`, resets. PFN arrays may hold out-of-range, duplicate or ring-covering PFNs.
 * Checks: every madvise the balloon makes covers whole pages inside the fake guest RAM (the link wraps
 * madvise, see run-fuzz-balloon.sh), its inflated counter equals the pages actually released, and a
 * device that marked itself broken stays quiet (fuzz_kick_checked).
 * Build and run: tests/fuzz/run-fuzz-balloon.sh [seconds]. Input layout: tests/fuzz/fuzz_ring.h. */
#include <sys/mman.h>

#include "devices/virtio/balloon.h"
#include "fuzz_ring.h"

int __real_madvise(void *addr, size_t len, int advice);

/* The one run in progress (libFuzzer runs inputs one at a time): what madvise may touch. */
static struct fuzz_guest *current;
static uint64_t released_pages;

int __wrap_madvise(void *addr, size_t len, int advice)
{
	if (current) {
		fuzz_check(fuzz_in_ram(current, addr, len));
		fuzz_check(((uintptr_t)addr | len) % FUZZ_PAGE == 0 && len > 0);
		if (advice == MADV_DONTNEED) {
			released_pages += len / FUZZ_PAGE;
			for (size_t off = 0; off < len; off += FUZZ_PAGE)
				current->dropped_pages |= 1u << ((size_t)((uint8_t *)addr + off - current->ram) / FUZZ_PAGE);
		}
	}
	return __real_madvise(addr, len, advice);
}

static void run_script(struct fuzz_guest *g, const uint8_t *hdr)
{
	for (unsigned i = 0; i < g->nops; i++) {
		uint8_t op = g->script[i];
		if (fuzz_common_op(g, hdr, op))
			continue;
		if ((op & 7) == 4) {
			/* The driver reports `actual` (any offset/width inside the 8-byte config). */
			unsigned len = 1u << ((op >> 3) & 3), off = (op >> 5) & (8 - len);
			fuzz_bar_write(g, VPCI_DEVICE_OFF + off, len, 0x01010101u * op);
		} else {
			fuzz_kick_checked(g, (op >> 3) % fuzz_nqueues(g));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_guest g;
	if (!fuzz_guest_init(&g, data, size))
		return 0;
	struct virtio_device *dev;
	vt_err err;
	fuzz_check(virtio_balloon_create(&dev, &g.mem, 8 * FUZZ_PAGE, &err) == 0);
	/* The statistics queue too (queue 2): its buffers are parsed on every kick. */
	fuzz_check(virtio_balloon_enable_stats(dev, 1, &err) == 0);
	fuzz_plug(&g, dev);
	current = &g;
	released_pages = 0;
	fuzz_driver_ok(&g, data);
	run_script(&g, data);
	struct vballoon_counters c;
	virtio_balloon_counters(dev, &c);
	fuzz_check(c.inflated == released_pages);
	current = NULL;
	fuzz_guest_fini(&g);
	virtio_balloon_destroy(dev);
	return 0;
}
