/* virtio-blk through the virtio-pci transport over fake guest memory and a real image file: config space,
 * offered features (read-write and read-only), requests round-tripped to the file and back (write, read,
 * flush, GET_ID, discard, a write to a read-only disk), and reset / teardown with requests in flight. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>

#include "devices/pci.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/virtio.h"
#include "pci_driver.h"

#define MMIO_BASE 0xc0000000ULL
#define MMIO_SIZE 0x20000000ULL
#define ECAM_BASE 0xe0000000ULL
#define GUEST_RAM (1u << 20)
#define IMAGE_SIZE (1u << 20)
#define QSIZE 16

#define DESC_GPA  0x10000
#define AVAIL_GPA 0x11000
#define USED_GPA  0x12000
#define HDR_GPA   0x20000
#define DATA_GPA  0x30000
#define STATUS_GPA 0x40000


struct fixture {
	struct pci_bus bus;
	struct fake_irq irq;
	struct guest_mem mem;
	uint8_t *ram;
	char image[64];
	int image_fd;                 /* the test's own view of the image */
	struct virtio_device *blk;
	struct virtio_transport *t;
	unsigned slot;
	uint16_t next_avail;
};

static void make_device(struct fixture *f, bool readonly)
{
	vt_err err;
	struct virtio_pci_host host = { .msix_ops = &fake_msix_ops, .msix_opaque = &f->irq };
	if (virtio_blk_create(f->image, readonly, "test-serial-1", &f->blk, &err) < 0)
		fail_msg("virtio_blk_create: %s", err.msg);
	assert_int_equal(virtio_pci_create(f->blk, &f->mem, &host, &f->t, &err), 0);
	assert_int_equal(pci_bus_plug(&f->bus, &f->t->pci, &f->slot, &err), 0);
}

static struct fixture *fixture_new(bool readonly)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, GUEST_RAM);
	gmem_init_fixed(&f->mem, f->ram, GUEST_RAM);
	pci_bus_init(&f->bus, MMIO_BASE, MMIO_SIZE, ECAM_BASE);
	pci_bus_set_io_window(&f->bus, 0x1000, 0x1000);
	strcpy(f->image, "/tmp/virtus-test-vblk-XXXXXX");
	f->image_fd = mkstemp(f->image);
	assert_true(f->image_fd >= 0);
	assert_int_equal(ftruncate(f->image_fd, IMAGE_SIZE), 0);
	make_device(f, readonly);
	return f;
}

static int setup_rw(void **state)
{
	*state = fixture_new(false);
	return 0;
}

static int setup_ro(void **state)
{
	*state = fixture_new(true);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pci_bus_destroy(&f->bus);  /* before the transport: the bus does not own it */
	virtio_pci_destroy(f->t);
	virtio_blk_destroy(f->blk);
	close(f->image_fd);
	unlink(f->image);
	free(f->ram);
	free(f);
	return 0;
}

/* ---- transport helpers (the driver side) ---- */

static void enable_msix(struct fixture *f)
{
	unsigned ptr = conf1_read(&f->bus, f->slot, PCI_CAP_PTR, 1);
	while (ptr && conf1_read(&f->bus, f->slot, ptr, 1) != PCI_CAP_ID_MSIX)
		ptr = conf1_read(&f->bus, f->slot, ptr + 1, 1);
	assert_true(ptr != 0);
	conf1_write(&f->bus, f->slot, ptr + 2, 2, MSIX_CTRL_ENABLE);
	for (unsigned v = 0; v < 2; v++) {
		uint64_t base = VPCI_MSIX_TABLE_OFF + v * MSIX_ENTRY_SIZE;
		bar_write(f, base, 4, 0xfee00000);
		bar_write(f, base + 8, 4, 0x30 + v);
		bar_write(f, base + 12, 4, 0);
	}
}

static uint64_t device_features(struct fixture *f)
{
	bar_write(f, VPCI_DFSELECT, 4, 0);
	uint64_t lo = bar_read(f, VPCI_DF, 4);
	bar_write(f, VPCI_DFSELECT, 4, 1);
	return lo | bar_read(f, VPCI_DF, 4) << 32;
}

static void driver_ok(struct fixture *f)
{
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint64_t want = device_features(f) & ~(1ULL << VIRTIO_F_EVENT_IDX);
	bar_write(f, VPCI_GFSELECT, 4, 0);
	bar_write(f, VPCI_GF, 4, (uint32_t)want);
	bar_write(f, VPCI_GFSELECT, 4, 1);
	bar_write(f, VPCI_GF, 4, want >> 32);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	bar_write(f, VPCI_MSIX_CONFIG, 2, 1);
	bar_write(f, VPCI_Q_SELECT, 2, 0);
	bar_write(f, VPCI_Q_SIZE, 2, QSIZE);
	bar_write(f, VPCI_Q_MSIX, 2, 0);
	bar_write(f, VPCI_Q_DESC, 8, DESC_GPA);
	bar_write(f, VPCI_Q_DRIVER, 8, AVAIL_GPA);
	bar_write(f, VPCI_Q_DEVICE, 8, USED_GPA);
	bar_write(f, VPCI_Q_ENABLE, 2, 1);
	bar_write(f, VPCI_STATUS, 1, VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
	enable_msix(f);
}

static void put_desc(struct fixture *f, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = f->ram + DESC_GPA + 16u * i;
	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Post one request: header, optional data (device-writable for reads), status; kick the queue. */
static void post_request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable)
{
	uint8_t hdr[16] = { 0 };
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(f->ram + HDR_GPA, hdr, sizeof(hdr));
	f->ram[STATUS_GPA] = 0xee;
	put_desc(f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	uint16_t status_desc = 1;
	if (data_len) {
		put_desc(f, 1, DATA_GPA, data_len, VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0), 2);
		status_desc = 2;
	}
	put_desc(f, status_desc, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	uint16_t *avail = (uint16_t *)(void *)(f->ram + AVAIL_GPA);
	avail[2 + f->next_avail % QSIZE] = 0;
	avail[1] = ++f->next_avail;
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0); /* no device thread in tests: handled at once */
}

static uint16_t used_idx(struct fixture *f)
{
	uint16_t v;
	memcpy(&v, f->ram + USED_GPA + 2, 2);
	return v;
}

static uint32_t last_used_len(struct fixture *f)
{
	uint32_t len;
	memcpy(&len, f->ram + USED_GPA + 4 + 8u * ((used_idx(f) - 1u) % QSIZE) + 4, 4);
	return len;
}

/* What the event loop does: wait for the backend's eventfd, then run the completion handler. */
static void complete_until(struct fixture *f, uint16_t want_used)
{
	for (int tries = 0; used_idx(f) != want_used && tries < 500; tries++) {
		struct pollfd p = { .fd = virtio_blk_eventfd(f->blk), .events = POLLIN };
		poll(&p, 1, 10);
		virtio_blk_complete(f->blk);
	}
	assert_int_equal(used_idx(f), want_used);
}

/* ---- tests ---- */

static uint64_t config(struct fixture *f, unsigned off, unsigned len)
{
	return bar_read(f, VPCI_DEVICE_OFF + off, len);
}

static void config_space(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, capacity), 8), IMAGE_SIZE / 512);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, seg_max), 4), 254);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, blk_size), 4), 512);
	assert_true(config(f, offsetof(struct virtio_blk_config, max_discard_sectors), 4) >= 8);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, max_discard_seg), 4), 32);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, discard_sector_alignment), 4), 8);
	assert_true(config(f, offsetof(struct virtio_blk_config, max_write_zeroes_sectors), 4) >= 8);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, max_write_zeroes_seg), 4), 32);
	assert_int_equal(config(f, offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 1), 1);
	/* the device reports the VIRTIO_PCI_CAP_DEVICE_CFG window as 60 bytes: past it reads as all-ones */
	assert_int_equal(f->blk->config_len, 60);
}

static void features_rw(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = device_features(f);
	static const unsigned want[] = { VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH,
					 VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_F_EVENT_IDX,
					 VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1 };
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_true(feat & (1ULL << want[i]));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_MQ));
}

static void features_ro(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = device_features(f);
	assert_true(feat & (1ULL << VIRTIO_BLK_F_RO));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
}

static void write_read_flush_round_trip(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	for (unsigned i = 0; i < 4096; i++)
		f->ram[DATA_GPA + i] = (uint8_t)(i * 7 + 3);
	post_request(f, VIRTIO_BLK_T_OUT, 8, 4096, false);
	complete_until(f, 1);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(f), 1);
	assert_true(f->irq.signals[0] >= 1);
	uint8_t file[4096];
	assert_int_equal(pread(f->image_fd, file, sizeof(file), 8 * 512), sizeof(file));
	assert_memory_equal(file, f->ram + DATA_GPA, sizeof(file));

	post_request(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	complete_until(f, 2);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);

	memset(f->ram + DATA_GPA, 0, 4096);
	post_request(f, VIRTIO_BLK_T_IN, 8, 4096, true);
	complete_until(f, 3);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(f), 4097);
	assert_memory_equal(file, f->ram + DATA_GPA, sizeof(file));
}

static void get_id_and_out_of_range(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	post_request(f, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true);
	assert_int_equal(used_idx(f), 1); /* answered at once, without the backend */
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_string_equal((char *)f->ram + DATA_GPA, "test-serial-1");
	post_request(f, VIRTIO_BLK_T_IN, IMAGE_SIZE / 512, 512, true);
	complete_until(f, 2);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_IOERR);
	post_request(f, 0x7777, 0, 0, false);
	complete_until(f, 3);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_UNSUPP);
}

static void discard_punches_hole(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	memset(f->ram + DATA_GPA, 0xab, 65536);
	post_request(f, VIRTIO_BLK_T_OUT, 0, 65536, false);
	complete_until(f, 1);
	assert_int_equal(fsync(f->image_fd), 0);
	struct stat before, after;
	assert_int_equal(fstat(f->image_fd, &before), 0);
	struct { uint64_t sector; uint32_t num, flags; } seg = { 0, 128, 0 };
	memcpy(f->ram + DATA_GPA, &seg, sizeof(seg));
	post_request(f, VIRTIO_BLK_T_DISCARD, 0, sizeof(seg), false);
	complete_until(f, 2);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_int_equal(fstat(f->image_fd, &after), 0);
	if (before.st_blocks == 0)
		skip(); /* a file system that does not allocate (tmpfs allocates; so do ext4/xfs) */
	assert_true(after.st_blocks < before.st_blocks);
}

static void read_only_refuses_writes(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	memset(f->ram + DATA_GPA, 0x5a, 512);
	post_request(f, VIRTIO_BLK_T_OUT, 0, 512, false);
	complete_until(f, 1);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_IOERR);
	uint8_t file[512], zeros[512] = { 0 };
	assert_int_equal(pread(f->image_fd, file, sizeof(file), 0), sizeof(file));
	assert_memory_equal(file, zeros, sizeof(file));
}

/* Several requests from one kick are in flight together and complete with one interrupt for the batch. */
static void batch_in_flight_one_interrupt(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	enum { N = 4 };
	uint16_t *avail = (uint16_t *)(void *)(f->ram + AVAIL_GPA);
	for (uint16_t r = 0; r < N; r++) {
		uint64_t hdr = HDR_GPA + 16u * r, data = DATA_GPA + 4096u * r, status = STATUS_GPA + r;
		uint32_t type = VIRTIO_BLK_T_OUT;
		uint64_t sector = 8u * r;
		memcpy(f->ram + hdr, &type, 4);
		memcpy(f->ram + hdr + 8, &sector, 8);
		memset(f->ram + data, 'a' + r, 4096);
		f->ram[status] = 0xee;
		put_desc(f, (uint16_t)(3 * r), hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(3 * r + 1));
		put_desc(f, (uint16_t)(3 * r + 1), data, 4096, VIRTQ_DESC_F_NEXT, (uint16_t)(3 * r + 2));
		put_desc(f, (uint16_t)(3 * r + 2), status, 1, VIRTQ_DESC_F_WRITE, 0);
		avail[2 + r] = (uint16_t)(3 * r);
	}
	avail[1] = f->next_avail = N;
	bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
	assert_int_equal(f->irq.signals[0], 0);     /* nothing finished inside the kick */
	usleep(200 * 1000);                         /* let the backend finish all of them */
	virtio_blk_complete(f->blk);
	assert_int_equal(used_idx(f), N);
	assert_int_equal(f->irq.signals[0], 1);
	for (unsigned r = 0; r < N; r++) {
		assert_int_equal(f->ram[STATUS_GPA + r], VIRTIO_BLK_S_OK);
		uint8_t c;
		assert_int_equal(pread(f->image_fd, &c, 1, 4096u * r + 4095), 1);
		assert_int_equal(c, 'a' + r);
	}
}

/* After a reset the driver sets the device up anew, with fresh rings, and a request completes. */
static void works_again_after_reset(struct fixture *f)
{
	memset(f->ram + USED_GPA, 0, 4096);
	memset(f->ram + AVAIL_GPA, 0, 4096);
	f->next_avail = 0;
	driver_ok(f);
	post_request(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	complete_until(f, 1);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
}

/* A reset while requests are in flight drains them without touching the (now forgotten) rings. */
static void reset_with_requests_in_flight(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	post_request(f, VIRTIO_BLK_T_OUT, 0, 65536, false);
	bar_write(f, VPCI_STATUS, 1, 0);
	assert_int_equal(bar_read(f, VPCI_STATUS, 1), 0);
	assert_int_equal(used_idx(f), 0);
	virtio_blk_complete(f->blk); /* a late eventfd wake-up finds nothing */
	assert_int_equal(used_idx(f), 0);
	/* and the device works again after the driver sets it up anew */
	works_again_after_reset(f);
}

/* Teardown (in the fixture) with a request still in flight: ASan reports a leak or a use after free. */
static void teardown_with_request_in_flight(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	post_request(f, VIRTIO_BLK_T_OUT, 0, 65536, false);
}

static bool needs_reset(struct fixture *f)
{
	return bar_read(f, VPCI_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET;
}

/* The driver posts head 0 again while its request is still in flight: a guest error (NEEDS_RESET), and the
 * second request is never started. */
static void head_posted_again_while_in_flight(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	post_request(f, VIRTIO_BLK_T_OUT, 0, 65536, false);
	assert_int_equal(virtio_blk_in_flight(f->blk), 1);
	assert_false(needs_reset(f));
	post_request(f, VIRTIO_BLK_T_OUT, 0, 65536, false);
	assert_true(needs_reset(f));
	assert_int_equal(virtio_blk_in_flight(f->blk), 1);
	/* the reset drains what is in flight and the device works again */
	bar_write(f, VPCI_STATUS, 1, 0);
	assert_int_equal(virtio_blk_in_flight(f->blk), 0);
	works_again_after_reset(f);
}

static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (fp)
		fclose(fp);
	return kib;
}

/* The flood from the review: round after round, the driver fills the whole ring with the same heads and
 * kicks, never waiting for completions (the loop model: completions are not reaped in between). Before the
 * fix every round added a queue's worth of requests in flight (1000 rounds of 256: 128,000 requests, RSS
 * +148 MB); now the first re-posted head breaks the device and nothing more starts. */
static void reposting_flood_stays_bounded(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	long rss0 = rss_kib();
	uint16_t *avail = (uint16_t *)(void *)(f->ram + AVAIL_GPA);
	uint32_t type = VIRTIO_BLK_T_IN;
	memcpy(f->ram + HDR_GPA, &type, 4);
	for (uint16_t r = 0; r < QSIZE / 2; r++) { /* head 2r: header, then a 512-byte writable sector+status */
		put_desc(f, (uint16_t)(2 * r), HDR_GPA, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(2 * r + 1));
		put_desc(f, (uint16_t)(2 * r + 1), DATA_GPA, 513, VIRTQ_DESC_F_WRITE, 0);
	}
	unsigned max_in_flight = 0;
	for (unsigned round = 0; round < 1000; round++) {
		for (uint16_t r = 0; r < QSIZE / 2; r++)
			avail[2 + (f->next_avail + r) % QSIZE] = (uint16_t)(2 * r);
		f->next_avail = (uint16_t)(f->next_avail + QSIZE / 2);
		avail[1] = f->next_avail;
		bar_write(f, VPCI_NOTIFY_OFF, 2, 0);
		if (virtio_blk_in_flight(f->blk) > max_in_flight)
			max_in_flight = virtio_blk_in_flight(f->blk);
	}
	print_message("# blk flood: 1000 rounds, at most %u requests in flight, RSS %+ld KiB\n", max_in_flight,
		      rss_kib() - rss0);
	assert_true(needs_reset(f));
	assert_true(max_in_flight <= QSIZE);
}

/* PATCH /drives: a new image under the running device. The driver reads the new capacity, is told by a
 * configuration interrupt (generation and ISR), and its next read gets the new image's data; a missing
 * image changes nothing. */
static void change_medium_while_running(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	char second[64] = "/tmp/virtus-test-vblk2-XXXXXX";
	int fd = mkstemp(second);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * IMAGE_SIZE), 0);
	uint8_t sector[512];
	memset(sector, 0xbb, sizeof(sector));
	assert_int_equal(pwrite(fd, sector, sizeof(sector), 0), sizeof(sector));
	close(fd);
	vt_err err;
	uint8_t gen = (uint8_t)bar_read(f, VPCI_CFG_GEN, 1);
	(void)bar_read(f, VPCI_ISR_OFF, 1);
	assert_int_equal(virtio_blk_change(f->blk, "/tmp/virtus-test-vblk-missing", BLK_FORMAT_AUTO, &err), -1);
	assert_int_equal(bar_read(f, VPCI_DEVICE_OFF, 8), IMAGE_SIZE / 512);
	assert_int_equal((uint8_t)bar_read(f, VPCI_CFG_GEN, 1), gen);
	assert_int_equal(virtio_blk_change(f->blk, second, BLK_FORMAT_AUTO, &err), 0);
	assert_int_equal(bar_read(f, VPCI_DEVICE_OFF, 8), 2 * IMAGE_SIZE / 512);
	assert_int_equal((uint8_t)bar_read(f, VPCI_CFG_GEN, 1), (uint8_t)(gen + 1));
	assert_int_equal(bar_read(f, VPCI_ISR_OFF, 1) & 2, 2);
	post_request(f, VIRTIO_BLK_T_IN, 0, 512, true);
	complete_until(f, 1);
	assert_int_equal(f->ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_memory_equal(f->ram + DATA_GPA, sector, sizeof(sector));
	post_request(f, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true);   /* the device keeps its serial */
	assert_string_equal((char *)f->ram + DATA_GPA, "test-serial-1");
	unlink(second);
}

static void missing_image_is_an_error(void **state)
{
	(void)state;
	struct virtio_device *d = NULL;
	vt_err err;
	assert_int_equal(virtio_blk_create("/nonexistent/virtus.img", false, NULL, &d, &err), -1);
	assert_null(d);
	assert_non_null(strstr(err.msg, "/nonexistent/virtus.img"));
}

int main(void)
{
#define RW(fn) cmocka_unit_test_setup_teardown(fn, setup_rw, teardown)
	const struct CMUnitTest tests[] = {
		RW(config_space),
		RW(features_rw),
		cmocka_unit_test_setup_teardown(features_ro, setup_ro, teardown),
		RW(write_read_flush_round_trip),
		RW(get_id_and_out_of_range),
		RW(discard_punches_hole),
		cmocka_unit_test_setup_teardown(read_only_refuses_writes, setup_ro, teardown),
		RW(batch_in_flight_one_interrupt),
		RW(reset_with_requests_in_flight),
		RW(teardown_with_request_in_flight),
		RW(head_posted_again_while_in_flight),
		RW(reposting_flood_stays_bounded),
		RW(change_medium_while_running),
		cmocka_unit_test(missing_image_is_an_error),
	};
	return cmocka_run_group_tests_name("virtio_blk", tests, NULL, NULL);
}
