/* Device state in snapshots (virtio_pci_state_save/load): a device restored into a new transport over a copy
 * of guest memory goes on where the old one was (negotiation, status, queue addresses, ring positions); a
 * snapshot of another device is refused and leaves the device reset; vsock tells the driver its connections
 * are gone; a device without state handlers cannot be built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/balloon.h"
#include "devices/virtio/vsock.h"
#include "lib/state_file.h"
#include "vdev_harness.h"

static char dir[] = "/tmp/virtus-vstate-XXXXXX";
static char path[64], sock[64];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(sock, sizeof(sock), "%s/v.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void save(struct harness *h)
{
	struct state_writer w;
	vt_err err;
	unlink(path);
	assert_int_equal(state_writer_open(&w, path, &err), 0);
	virtio_pci_lock(h->t);
	assert_true(virtio_pci_quiesced(h->t));
	assert_int_equal(virtio_pci_state_save(h->t, &w, "pci0", &err), 0);
	virtio_pci_unlock(h->t);
	assert_int_equal(state_writer_finish(&w, &err), 0);
}

static int load(struct harness *h, vt_err *err)
{
	struct state_reader r;
	assert_int_equal(state_reader_open(&r, path, err), 0);
	int rc = virtio_pci_state_load(h->t, &r, "pci0", err);
	state_reader_close(&r);
	return rc;
}

/* The restored machine's memory is the snapshot's, and its driver (the harness) knows what it posted. */
static void copy_machine(struct harness *to, const struct harness *from)
{
	memcpy(to->ram, from->ram, H_RAM);
	memcpy(to->avail_idx, from->avail_idx, sizeof(to->avail_idx));
	memcpy(to->next_desc, from->next_desc, sizeof(to->next_desc));
}

static struct virtio_device *new_rng(void)
{
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_rng_create(&d, &err), 0);
	return d;
}

static void rng_goes_on_after_restore(void **state)
{
	(void)state;
	struct harness a, b;
	h_init(&a);
	h_plug(&a, new_rng());
	h_driver_ok(&a, 1u << VIRTIO_F_EVENT_IDX);
	h_bar_write(&a, VPCI_Q_SELECT, 2, 0);
	h_bar_write(&a, VPCI_MSIX_CONFIG, 2, 1);
	for (int i = 0; i < 3; i++)
		h_post(&a, 0, H_BUF + 64u * (unsigned)i, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&a, 0);
	assert_int_equal(h_used_idx(&a, 0), 3);
	save(&a);

	h_init(&b);
	h_plug(&b, new_rng());
	copy_machine(&b, &a);
	vt_err err;
	assert_int_equal(load(&b, &err), 0);
	uint8_t want = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	assert_int_equal(h_bar_read(&b, VPCI_STATUS, 1), want);
	h_bar_write(&b, VPCI_GFSELECT, 4, 0);
	assert_int_equal(h_bar_read(&b, VPCI_GF, 4), 1u << VIRTIO_F_EVENT_IDX);
	assert_int_equal(h_bar_read(&b, VPCI_MSIX_CONFIG, 2), 1);
	h_bar_write(&b, VPCI_Q_SELECT, 2, 0);
	assert_int_equal(h_bar_read(&b, VPCI_Q_ENABLE, 2), 1);
	assert_int_equal(h_bar_read(&b, VPCI_Q_SIZE, 2), H_QSIZE);
	assert_int_equal(h_bar_read(&b, VPCI_Q_DESC, 8), H_RING(0));

	/* the next buffer is the fourth: the device's ring positions came back, nothing is served twice */
	memset(b.ram + H_BUF + 192, 0, 64);
	h_post(&b, 0, H_BUF + 192, 64, VIRTQ_DESC_F_WRITE);
	h_kick(&b, 0);
	assert_int_equal(h_used_idx(&b, 0), 4);
	assert_int_equal(h_used_len(&b, 0, 3), 64);
	static const uint8_t zero[64];
	assert_memory_not_equal(b.ram + H_BUF + 192, zero, 64);
	h_fini(&a, virtio_rng_destroy);
	h_fini(&b, virtio_rng_destroy);
}

static void another_device_is_refused(void **state)
{
	(void)state;
	struct harness a, b;
	struct virtio_device *balloon;
	vt_err err;
	h_init(&a);
	h_plug(&a, new_rng());
	h_driver_ok(&a, 0);
	save(&a);
	h_init(&b);
	assert_int_equal(virtio_balloon_create(&balloon, &b.mem, 0, &err), 0);
	h_plug(&b, balloon);
	h_driver_ok(&b, 0);
	assert_int_equal(load(&b, &err), -1);
	assert_non_null(strstr(err.msg, "virtio device 4"));
	assert_non_null(strstr(err.msg, "virtio-balloon"));
	assert_int_equal(h_bar_read(&b, VPCI_STATUS, 1), 0); /* a refused load leaves a reset device */
	h_fini(&a, virtio_rng_destroy);
	h_fini(&b, virtio_balloon_destroy);
}

static void truncated_section_is_refused(void **state)
{
	(void)state;
	struct harness a;
	struct state_writer w;
	vt_err err;
	h_init(&a);
	h_plug(&a, new_rng());
	unlink(path);
	assert_int_equal(state_writer_open(&w, path, &err), 0);
	uint8_t junk[100] = { 0 };
	state_put(&w, "pci0", 1, junk, sizeof(junk));
	assert_int_equal(state_writer_finish(&w, &err), 0);
	assert_int_equal(load(&a, &err), -1);
	assert_non_null(strstr(err.msg, "pci0"));
	h_fini(&a, virtio_rng_destroy);
}

static void balloon_keeps_target_and_report(void **state)
{
	(void)state;
	struct harness a, b;
	struct virtio_device *d;
	vt_err err;
	h_init(&a);
	assert_int_equal(virtio_balloon_create(&d, &a.mem, 8u << 20, &err), 0);
	h_plug(&a, d);
	h_driver_ok(&a, 0);
	h_bar_write(&a, VPCI_DEVICE_OFF + 4, 4, 1000); /* the guest reports 1000 pages given */
	save(&a);
	h_init(&b);
	assert_int_equal(virtio_balloon_create(&d, &b.mem, 4u << 20, &err), 0);
	h_plug(&b, d);
	copy_machine(&b, &a);
	assert_int_equal(load(&b, &err), 0);
	assert_int_equal(h_bar_read(&b, VPCI_DEVICE_OFF, 4), (8u << 20) / 4096); /* the snapshot's target */
	assert_int_equal(h_bar_read(&b, VPCI_DEVICE_OFF + 4, 4), 1000);
	h_fini(&a, virtio_balloon_destroy);
	h_fini(&b, virtio_balloon_destroy);
}

static void vsock_resets_the_drivers_connections(void **state)
{
	(void)state;
	struct harness a, b;
	struct virtio_device *d;
	vt_err err;
	h_init(&a);
	assert_int_equal(virtio_vsock_create(3, sock, &d, &err), 0);
	h_plug(&a, d);
	h_driver_ok(&a, 0);
	h_post(&a, VSOCK_EVQ, H_BUF, 8, VIRTQ_DESC_F_WRITE);
	memset(a.ram + H_BUF, 0xaa, 8);
	save(&a);
	h_init(&b);
	copy_machine(&b, &a);
	h_fini(&a, virtio_vsock_destroy); /* its socket path is the new device's */

	assert_int_equal(virtio_vsock_create(3, sock, &d, &err), 0);
	h_plug(&b, d);
	assert_int_equal(load(&b, &err), 0);
	assert_int_equal(h_used_idx(&b, VSOCK_EVQ), 1);
	assert_int_equal(h_used_len(&b, VSOCK_EVQ, 0), 4);
	uint32_t id;
	memcpy(&id, b.ram + H_BUF, 4);
	assert_int_equal(id, 0); /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
	assert_int_equal(h_bar_read(&b, VPCI_ISR_OFF, 1) & 1, 1); /* the driver is interrupted */
	h_fini(&b, virtio_vsock_destroy);
}

static void noop_notify(struct virtio_device *d, unsigned q)
{
	(void)d, (void)q;
}

static void a_device_without_state_cannot_be_built(void **state)
{
	(void)state;
	static const struct virtio_device_ops ops = { .queue_notify = noop_notify };
	struct virtio_device dev = { .id = VIRTIO_ID_RNG, .nqueues = 1, .queue_max = { 8 }, .ops = &ops, .name = "forgetful" };
	struct harness h;
	struct virtio_transport *t;
	struct virtio_pci_host host = { .msix_ops = &h_msix_ops, .msix_opaque = &h };
	vt_err err;
	h_init(&h);
	assert_int_equal(virtio_pci_create(&dev, &h.mem, &host, &t, &err), -1);
	assert_non_null(strstr(err.msg, "snapshot"));
	dev.snapshot_refusal = "it forgets";
	assert_int_equal(virtio_pci_create(&dev, &h.mem, &host, &t, &err), 0);
	struct state_writer w;
	unlink(path);
	assert_int_equal(state_writer_open(&w, path, &err), 0);
	assert_int_equal(virtio_pci_state_save(t, &w, "pci0", &err), -1);
	assert_string_equal(err.msg, "it forgets");
	state_writer_abort(&w);
	virtio_pci_destroy(t);
	munmap(h.ram, H_RAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rng_goes_on_after_restore),
		cmocka_unit_test(another_device_is_refused),
		cmocka_unit_test(truncated_section_is_refused),
		cmocka_unit_test(balloon_keeps_target_and_report),
		cmocka_unit_test(vsock_resets_the_drivers_connections),
		cmocka_unit_test(a_device_without_state_cannot_be_built),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
