/* libFuzzer target for virtio-console, driven through the virtio-pci transport like a (hostile) driver:
 * the input is the guest's RAM (rings, transmit buffers, receive buffers) and a script of receive and
 * transmit kicks, host input arriving (so receive buffers get filled, with the guest's console up or not
 * yet), resets and config reads. Every buffer the device fills or sends must be guest RAM, which has
 * inaccessible guard pages around it; the transmitted bytes go to /dev/null through write(). Checks: the
 * host input the device takes never exceeds what it was offered, and a device that marked itself
 * broken stays quiet (fuzz_kick_checked). Build and run: tests/fuzz/run-fuzz-console.sh [seconds].
 * Input layout: tests/fuzz/fuzz_ring.h. */
#include <fcntl.h>

#include "devices/virtio/console.h"
#include "fuzz_ring.h"

/* Host input: op & 7 == 4 offers (op >> 3) * 16 + 1 bytes (up to 497), so the FIFO can fill and wrap. */
static void host_input(struct fuzz_guest *g, uint8_t op, uint64_t *accepted)
{
	uint8_t buf[512];
	size_t n = (size_t)(op >> 3) * 16 + 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(*accepted + i);
	size_t took = virtio_console_input(g->t->dev, buf, n);
	fuzz_check(took <= n);
	*accepted += took;
	fuzz_kick_checked(g, VCON_RXQ); /* no host loop here: deliver the wake-up the eventfd would */
}

static void run_script(struct fuzz_guest *g, const uint8_t *hdr)
{
	uint64_t accepted = 0;
	for (unsigned i = 0; i < g->nops; i++) {
		uint8_t op = g->script[i];
		if (fuzz_common_op(g, hdr, op))
			continue;
		if ((op & 7) == 4) {
			host_input(g, op, &accepted);
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
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	fuzz_check(out >= 0);
	struct virtio_device *dev;
	vt_err err;
	fuzz_check(virtio_console_create(&dev, out, &err) == 0);
	fuzz_plug(&g, dev);
	fuzz_driver_ok(&g, data);
	run_script(&g, data);
	fuzz_guest_fini(&g);
	virtio_console_destroy(dev);
	close(out);
	return 0;
}
