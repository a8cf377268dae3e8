/* libFuzzer target for virtio-scsi with its CD drive, driven whole through the virtio-pci transport like a
 * (hostile) driver, on a real 8-block ISO file: the input is the guest's RAM (the control, event and request
 * rings, requests with any CDB, response and data-in buffers of any size) and a script of kicks, host
 * inserts and ejects (forced or not), resets and config reads. Every byte a kick changes lies in a
 * device-writable buffer or a used ring (fuzz_kick_checked), and the drive's state stays one it can be in.
 * Script: op & 7 == 4 is the host's change (bit 3: force, bit 4: eject rather than insert); 5-7 are the
 * shared ops (fuzz_ring.h); anything else kicks queue (op >> 3) % 3.
 * Build and run: tests/fuzz/run-fuzz-scsi.sh [seconds]. Input layout: tests/fuzz/fuzz_ring.h. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "devices/virtio/scsi.h"
#include "fuzz_ring.h"

static char iso[64];

static void remove_iso(void)
{
	unlink(iso);
}

/* 8 blocks of 2048 bytes, each filled with its number */
static void make_iso(void)
{
	if (iso[0])
		return;
	snprintf(iso, sizeof(iso), "/tmp/virtus-fuzz-scsi-%d.iso", (int)getpid());
	int fd = open(iso, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fuzz_check(fd >= 0);
	uint8_t block[2048];
	for (unsigned b = 0; b < 8; b++) {
		memset(block, (int)b, sizeof(block));
		fuzz_check(write(fd, block, sizeof(block)) == (ssize_t)sizeof(block));
	}
	close(fd);
	atexit(remove_iso);
}

static void host_change(struct virtio_device *dev, uint8_t op)
{
	vt_err err;
	bool force = op & 8;
	struct virtio_scsi_cd_status before, after;
	virtio_scsi_cd_status(dev, &before);
	int rc = op & 16 ? virtio_scsi_cd_eject(dev, force, &err) : virtio_scsi_cd_insert(dev, iso, force, &err);
	virtio_scsi_cd_status(dev, &after);
	/* the lock rule: refused exactly when locked and not forced, and a refusal changes nothing */
	fuzz_check((rc < 0) == (before.locked && !force));
	if (rc < 0)
		fuzz_check(after.medium == before.medium && after.locked && after.tray_open == before.tray_open);
	else
		fuzz_check(after.medium == !(op & 16) && !after.locked && !after.tray_open);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_guest g;
	if (!fuzz_guest_init(&g, data, size))
		return 0;
	make_iso();
	struct virtio_device *dev;
	vt_err err;
	fuzz_check(virtio_scsi_cd_create(iso, &dev, &err) == 0);
	fuzz_plug(&g, dev);
	fuzz_driver_ok(&g, data);
	for (unsigned i = 0; i < g.nops; i++) {
		uint8_t op = g.script[i];
		if (fuzz_common_op(&g, data, op))
			continue;
		if ((op & 7) == 4)
			host_change(dev, op);
		else
			fuzz_kick_checked(&g, (unsigned)(op >> 3) % 3);
	}
	fuzz_guest_fini(&g);
	virtio_scsi_cd_destroy(dev);
	return 0;
}
