/* libFuzzer target for virtio-rng, driven through the virtio-pci transport like a (hostile) driver: the
 * input is the guest's RAM (the request ring and its buffers) and a script of kicks and resets. Every byte
 * getrandom() writes must land in guest RAM (guard pages around it fault otherwise), and a device that
 * marked itself broken stays quiet (fuzz_kick_checked).
 * Build and run: tests/fuzz/run-fuzz-rng.sh [seconds]. Input layout: tests/fuzz/fuzz_ring.h. */
#include "fuzz_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_guest g;
	if (!fuzz_guest_init(&g, data, size))
		return 0;
	struct virtio_device *dev;
	vt_err err;
	fuzz_check(virtio_rng_create(&dev, &err) == 0);
	fuzz_plug(&g, dev);
	fuzz_driver_ok(&g, data);
	for (unsigned i = 0; i < g.nops; i++)
		if (!fuzz_common_op(&g, data, g.script[i]))
			fuzz_kick_checked(&g, 0);
	fuzz_guest_fini(&g);
	virtio_rng_destroy(dev);
	return 0;
}
