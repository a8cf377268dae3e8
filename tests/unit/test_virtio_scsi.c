/* virtio-scsi with its CD drive, over fake guest memory through the real virtio-pci transport: the config
 * space (and the two sizes the driver may set, clamped), commands framed as Linux frames them (request,
 * response header with sense, data-in), a disc read back, a disc swapped by the host and announced by a unit
 * attention, the lock rule for the host's insert and eject, task management and notification requests, and
 * malformed requests answered without a crash. */
#include <endian.h>
#include <linux/virtio_scsi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/scsi_cd.h"
#include "devices/virtio/scsi.h"
#include "vdev_harness.h"

#define CONTROLQ 0
#define REQUESTQ 2
#define REQ_GPA  H_BUF
#define RESP_GPA (H_BUF + 0x1000)
#define DATA_GPA (H_BUF + 0x2000)
#define REQ_LEN  (19 + 32)                    /* lun, id, attr, prio, crn, then the 32-byte CDB */
#define RESP_LEN (12 + 96)                    /* sense_len, resid, qualifier, status, response, then sense */
#define BLOCKS   4

struct fx {
	struct harness h;
	char iso[2][64];                           /* two discs: every byte of block b of disc d is 'A' + 4d + b */
};

static void write_disc(char *path, unsigned disc)
{
	snprintf(path, 64, "/tmp/virtus-test-scsi-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t block[SCSI_CD_BLOCK];
	for (unsigned b = 0; b < BLOCKS; b++) {
		memset(block, 'A' + 4 * disc + b, sizeof(block));
		assert_int_equal(write(fd, block, sizeof(block)), sizeof(block));
	}
	close(fd);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	write_disc(f->iso[0], 0);
	write_disc(f->iso[1], 1);
	h_init(&f->h);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_scsi_cd_create(f->iso[0], &d, &err), 0);
	assert_int_equal(d->id, VIRTIO_ID_SCSI);
	assert_int_equal(d->nqueues, 3);
	h_plug(&f->h, d);
	h_driver_ok(&f->h, 1u << VIRTIO_F_EVENT_IDX);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	h_fini(&f->h, virtio_scsi_cd_destroy);
	unlink(f->iso[0]);
	unlink(f->iso[1]);
	free(f);
	return 0;
}

static uint32_t cfg32(struct fx *f, unsigned off)
{
	return (uint32_t)h_bar_read(&f->h, VPCI_DEVICE_OFF + off, 4);
}

/* What the device wrote back for one command. */
struct answer {
	uint32_t used, sense_len, resid;
	uint8_t status, response;
	const uint8_t *sense, *data;
};

/* One command to target 0 (lun_byte1), LUN lun, with a data-in buffer of datain bytes. */
static struct answer command_to(struct fx *f, uint8_t target, uint16_t lun, const uint8_t *cdb, unsigned cdb_len,
				uint32_t datain)
{
	uint8_t *req = f->h.ram + REQ_GPA;
	memset(req, 0, REQ_LEN);
	req[0] = 1, req[1] = target, req[2] = (uint8_t)(0x40 | lun >> 8), req[3] = (uint8_t)lun;
	memcpy(req + 19, cdb, cdb_len);
	memset(f->h.ram + RESP_GPA, 0xEE, RESP_LEN);
	memset(f->h.ram + DATA_GPA, 0xEE, datain + 16);
	struct h_seg segs[3] = { { REQ_GPA, REQ_LEN, false }, { RESP_GPA, RESP_LEN, true }, { DATA_GPA, datain, true } };
	uint16_t before = h_used_idx(&f->h, REQUESTQ);
	h_post_chain(&f->h, REQUESTQ, segs, datain ? 3 : 2);
	h_kick(&f->h, REQUESTQ);
	assert_int_equal(h_used_idx(&f->h, REQUESTQ), (uint16_t)(before + 1));
	const uint8_t *resp = f->h.ram + RESP_GPA;
	struct answer a = { .used = h_used_len(&f->h, REQUESTQ, before), .status = resp[10], .response = resp[11],
			    .sense = resp + 12, .data = f->h.ram + DATA_GPA };
	memcpy(&a.sense_len, resp, 4), memcpy(&a.resid, resp + 4, 4);
	a.sense_len = le32toh(a.sense_len), a.resid = le32toh(a.resid);
	return a;
}

static struct answer command(struct fx *f, const uint8_t *cdb, unsigned cdb_len, uint32_t datain)
{
	return command_to(f, 0, 0, cdb, cdb_len, datain);
}

static void assert_sense(const struct answer *a, uint8_t key, uint8_t asc, uint8_t ascq)
{
	assert_int_equal(a->response, VIRTIO_SCSI_S_OK);
	assert_int_equal(a->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(a->sense_len, SCSI_CD_SENSE_LEN);
	assert_int_equal(a->sense[2] & 0xf, key);
	assert_int_equal(a->sense[12], asc);
	assert_int_equal(a->sense[13], ascq);
}

static const uint8_t tur[6] = { 0x00 };

/* The disc given at creation announces itself once (a unit attention), then the drive is ready. */
static void consume_unit_attention(struct fx *f)
{
	struct answer a = command(f, tur, sizeof(tur), 0);
	assert_sense(&a, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	a = command(f, tur, sizeof(tur), 0);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_int_equal(a.sense_len, 0);
}

static void config_space_and_driver_sizes(void **state)
{
	struct fx *f = *state;
	assert_int_equal(cfg32(f, 0), 1);                           /* one request queue */
	assert_int_equal(cfg32(f, 8), SCSI_CD_MAX_TRANSFER / 512);  /* max_sectors */
	assert_int_equal(cfg32(f, 20), 96);                         /* sense_size */
	assert_int_equal(cfg32(f, 24), 32);                         /* cdb_size */
	assert_int_equal(cfg32(f, 32), 0);                          /* max_lun: one unit */
	h_bar_write(&f->h, VPCI_DEVICE_OFF + 24, 4, 100000);        /* a CDB size no request could carry */
	assert_int_equal(cfg32(f, 24), 256);
	h_bar_write(&f->h, VPCI_DEVICE_OFF + 20, 4, 1u << 30);
	assert_int_equal(cfg32(f, 20), 256);
	h_bar_write(&f->h, VPCI_DEVICE_OFF + 0, 4, 7);              /* read-only fields stay */
	assert_int_equal(cfg32(f, 0), 1);
	h_bar_write(&f->h, VPCI_STATUS, 1, 0);                      /* a reset restores the defaults */
	assert_int_equal(cfg32(f, 24), 32);
	assert_int_equal(cfg32(f, 20), 96);
}

static void inquiry_answers_with_data_and_residual(void **state)
{
	struct fx *f = *state;
	const uint8_t inquiry[6] = { 0x12, 0, 0, 0, 96, 0 };
	struct answer a = command(f, inquiry, sizeof(inquiry), 64);
	assert_int_equal(a.response, VIRTIO_SCSI_S_OK);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_int_equal(a.data[0], 0x05);                          /* a CD/DVD device */
	assert_int_equal(a.data[1], 0x80);                          /* removable */
	assert_memory_equal(a.data + 8, "VIRTUS  ", 8);
	assert_int_equal(a.resid, 64 - 36);
	assert_int_equal(a.used, RESP_LEN + 36);
	assert_int_equal(a.data[36], 0xEE);                         /* nothing past the reply */
	/* another LUN: "no device here"; another target: the transport says so */
	a = command_to(f, 0, 3, inquiry, sizeof(inquiry), 64);
	assert_int_equal(a.data[0], 0x7F);
	a = command_to(f, 1, 0, inquiry, sizeof(inquiry), 64);
	assert_int_equal(a.response, VIRTIO_SCSI_S_BAD_TARGET);
	assert_int_equal(a.used, RESP_LEN);
}

static void reads_the_disc(void **state)
{
	struct fx *f = *state;
	consume_unit_attention(f);
	const uint8_t capacity[10] = { 0x25 };
	struct answer a = command(f, capacity, sizeof(capacity), 8);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_memory_equal(a.data, ((uint8_t[]){ 0, 0, 0, BLOCKS - 1, 0, 0, 0x08, 0 }), 8);
	const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0 };   /* blocks 1 and 2 */
	a = command(f, read10, sizeof(read10), 2 * SCSI_CD_BLOCK);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_int_equal(a.used, RESP_LEN + 2 * SCSI_CD_BLOCK);
	assert_int_equal(a.resid, 0);
	assert_int_equal(a.data[0], 'B');
	assert_int_equal(a.data[2 * SCSI_CD_BLOCK - 1], 'C');
	assert_int_equal(a.data[2 * SCSI_CD_BLOCK], 0xEE);
	const uint8_t past_end[10] = { 0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0 };
	a = command(f, past_end, sizeof(past_end), 2 * SCSI_CD_BLOCK);
	assert_sense(&a, SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
	assert_int_equal(a.used, RESP_LEN);
}

static void host_swaps_the_disc(void **state)
{
	struct fx *f = *state;
	consume_unit_attention(f);
	vt_err err;
	assert_int_equal(virtio_scsi_cd_insert(f->h.dev, f->iso[1], false, &err), 0);
	struct answer a = command(f, tur, sizeof(tur), 0);
	assert_sense(&a, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	a = command(f, read10, sizeof(read10), SCSI_CD_BLOCK);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_int_equal(a.data[0], 'E');                           /* block 0 of the second disc */
	assert_int_equal(virtio_scsi_cd_eject(f->h.dev, false, &err), 0);
	struct virtio_scsi_cd_status st;
	virtio_scsi_cd_status(f->h.dev, &st);
	assert_false(st.medium);
	command(f, tur, sizeof(tur), 0);                            /* the removal's unit attention */
	a = command(f, tur, sizeof(tur), 0);
	assert_sense(&a, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	/* a disc that cannot be one changes nothing */
	assert_int_equal(virtio_scsi_cd_insert(f->h.dev, "/nonexistent/disc.iso", false, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/disc.iso"));
	virtio_scsi_cd_status(f->h.dev, &st);
	assert_false(st.medium);
}

static void a_locked_tray_needs_force(void **state)
{
	struct fx *f = *state;
	consume_unit_attention(f);
	const uint8_t gesn[10] = { 0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8, 0 };
	struct answer a = command(f, gesn, sizeof(gesn), 8);
	assert_int_equal(a.data[4] & 0xf, 2);                       /* the disc's arrival, reported once */
	const uint8_t prevent[6] = { 0x1E, 0, 0, 0, 1, 0 };
	a = command(f, prevent, sizeof(prevent), 0);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	struct virtio_scsi_cd_status st;
	virtio_scsi_cd_status(f->h.dev, &st);
	assert_true(st.locked);
	vt_err err;
	assert_int_equal(virtio_scsi_cd_eject(f->h.dev, false, &err), -1);
	assert_non_null(strstr(err.msg, "locked"));
	/* the guest hears that the host wants the disc: an eject-request media event, with the disc present */
	a = command(f, gesn, sizeof(gesn), 8);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_int_equal(a.data[4] & 0xf, 1);
	assert_int_equal(a.data[5], 0x02);
	assert_int_equal(virtio_scsi_cd_insert(f->h.dev, f->iso[1], false, &err), -1);
	const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	a = command(f, read10, sizeof(read10), SCSI_CD_BLOCK);
	assert_int_equal(a.data[0], 'A');                           /* the first disc is still in */
	assert_int_equal(virtio_scsi_cd_insert(f->h.dev, f->iso[1], true, &err), 0);
	virtio_scsi_cd_status(f->h.dev, &st);
	assert_true(st.medium);
	assert_false(st.locked);
}

static void task_management_and_notifications(void **state)
{
	struct fx *f = *state;
	uint8_t *req = f->h.ram + REQ_GPA, *resp = f->h.ram + RESP_GPA;
	memset(req, 0, 32);
	req[4] = VIRTIO_SCSI_T_TMF_ABORT_TASK;                      /* type 0 (TMF), subtype abort */
	resp[0] = 0xEE;
	struct h_seg tmf[2] = { { REQ_GPA, 24, false }, { RESP_GPA, 1, true } };
	h_post_chain(&f->h, CONTROLQ, tmf, 2);
	h_kick(&f->h, CONTROLQ);
	assert_int_equal(h_used_idx(&f->h, CONTROLQ), 1);
	assert_int_equal(h_used_len(&f->h, CONTROLQ, 0), 1);
	assert_int_equal(resp[0], 0);                               /* function complete */
	memset(req, 0, 32);
	req[0] = VIRTIO_SCSI_T_AN_QUERY;
	memset(resp, 0xEE, 8);
	struct h_seg an[2] = { { REQ_GPA, 16, false }, { RESP_GPA, 5, true } };
	h_post_chain(&f->h, CONTROLQ, an, 2);
	h_kick(&f->h, CONTROLQ);
	assert_int_equal(h_used_len(&f->h, CONTROLQ, 1), 5);
	assert_memory_equal(resp, ((uint8_t[]){ 0, 0, 0, 0, VIRTIO_SCSI_S_OK }), 5);
	/* an unknown type: back with nothing written */
	req[0] = 77;
	h_post_chain(&f->h, CONTROLQ, an, 2);
	h_kick(&f->h, CONTROLQ);
	assert_int_equal(h_used_len(&f->h, CONTROLQ, 2), 0);
	assert_false(h_needs_reset(&f->h));
}

static void malformed_requests(void **state)
{
	struct fx *f = *state;
	/* a response buffer shorter than the response header: returned untouched */
	memset(f->h.ram + RESP_GPA, 0xEE, RESP_LEN);
	struct h_seg short_resp[2] = { { REQ_GPA, REQ_LEN, false }, { RESP_GPA, 20, true } };
	h_post_chain(&f->h, REQUESTQ, short_resp, 2);
	h_kick(&f->h, REQUESTQ);
	assert_int_equal(h_used_len(&f->h, REQUESTQ, 0), 0);
	assert_int_equal(f->h.ram[RESP_GPA], 0xEE);
	/* a request shorter than its CDB: a transport failure, reported */
	struct h_seg short_req[2] = { { REQ_GPA, 20, false }, { RESP_GPA, RESP_LEN, true } };
	h_post_chain(&f->h, REQUESTQ, short_req, 2);
	h_kick(&f->h, REQUESTQ);
	assert_int_equal(h_used_len(&f->h, REQUESTQ, 1), RESP_LEN);
	assert_int_equal(f->h.ram[RESP_GPA + 11], VIRTIO_SCSI_S_FAILURE);
	/* no request at all, only a response */
	struct h_seg only_resp[1] = { { RESP_GPA, RESP_LEN, true } };
	h_post_chain(&f->h, REQUESTQ, only_resp, 1);
	h_kick(&f->h, REQUESTQ);
	assert_int_equal(h_used_idx(&f->h, REQUESTQ), 3);
	/* the device still works */
	const uint8_t inquiry[6] = { 0x12, 0, 0, 0, 36, 0 };
	struct answer a = command(f, inquiry, sizeof(inquiry), 36);
	assert_int_equal(a.status, SCSI_STATUS_GOOD);
	assert_false(h_needs_reset(&f->h));
}

static void an_empty_drive(void **state)
{
	(void)state;
	struct harness h;
	h_init(&h);
	struct virtio_device *d;
	vt_err err;
	assert_int_equal(virtio_scsi_cd_create(NULL, &d, &err), 0);
	struct virtio_scsi_cd_status st;
	h_plug(&h, d);
	virtio_scsi_cd_status(d, &st);
	assert_false(st.medium);
	assert_int_equal(virtio_scsi_cd_eject(d, false, &err), 0);  /* ejecting nothing is fine */
	h_fini(&h, virtio_scsi_cd_destroy);
	assert_int_equal(virtio_scsi_cd_create("/nonexistent.iso", &d, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent.iso"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(config_space_and_driver_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(inquiry_answers_with_data_and_residual, setup, teardown),
		cmocka_unit_test_setup_teardown(reads_the_disc, setup, teardown),
		cmocka_unit_test_setup_teardown(host_swaps_the_disc, setup, teardown),
		cmocka_unit_test_setup_teardown(a_locked_tray_needs_force, setup, teardown),
		cmocka_unit_test_setup_teardown(task_management_and_notifications, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_requests, setup, teardown),
		cmocka_unit_test(an_empty_drive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
