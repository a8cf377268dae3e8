/* libFuzzer target for virtio-blk driven whole through the virtio-pci transport like a (hostile) driver, on a
 * real 1 MiB image file: the input is the guest's RAM (the request ring, headers, data, status bytes) and a
 * script of kicks, completions, resets (with requests in flight) and config reads. The avail ring is the
 * input's, so heads still in flight are posted again whenever the input says: the device must then mark
 * itself broken, never hold more requests than the queue has entries. Every byte a kick changes lies in a
 * device-writable buffer or the used ring (fuzz_kick_checked); completions are reaped by script (op & 7 == 4),
 * as the event loop would when the backend's eventfd fires.
 * Build and run: tests/fuzz/run-fuzz-blk.sh [seconds]. Input layout: tests/fuzz/fuzz_ring.h. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz_ring.h"

static char image[64];

static void make_image(void)
{
	if (image[0])
		return;
	snprintf(image, sizeof(image), "/tmp/virtus-fuzz-blk-%d.img", (int)getpid());
	int fd = open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fuzz_check(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
}

static void remove_image(void)
{
	unlink(image);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_guest g;
	if (!fuzz_guest_init(&g, data, size))
		return 0;
	make_image();
	static bool registered;
	if (!registered)
		registered = atexit(remove_image) == 0;
	struct virtio_device *dev;
	vt_err err;
	fuzz_check(virtio_blk_create(image, false, "fuzz", &dev, &err) == 0);
	fuzz_plug(&g, dev);
	fuzz_driver_ok(&g, data);
	for (unsigned i = 0; i < g.nops; i++) {
		uint8_t op = g.script[i];
		if (fuzz_common_op(&g, data, op))
			continue;
		if ((op & 7) == 4)
			virtio_blk_complete(dev);
		else
			fuzz_kick_checked(&g, 0);
		fuzz_check(virtio_blk_in_flight(dev) <= g.t->q[0].size);
	}
	/* As the VMM tears down: the transport, then the device (which waits for what is in flight and writes its
	 * status bytes), and only then guest RAM. */
	virtio_pci_destroy(g.t);
	g.t = NULL;
	virtio_blk_destroy(dev);
	fuzz_guest_fini(&g);
	return 0;
}
