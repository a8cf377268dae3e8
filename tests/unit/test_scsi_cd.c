/* src/devices/scsi_cd.c: the MMC CD-ROM drive's replies byte by byte, its sense data, the tray and the lock,
 * the host's insert and eject, the saved state, and that nothing writes past the guest's buffer. The disc
 * is an 8-block stand-in for an ISO image whose block i is filled with byte i. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/scsi_cd.h"
#include "lib/util.h"

#define BLOCKS 8

struct fx {
	char dir[32];                          /* a temporary directory for the images */
	char iso[64];
	struct scsi_cd *cd;
	struct scsi_cd_result res;
	uint8_t buf[16 * SCSI_CD_BLOCK];
};

/* A file of `blocks` blocks, block i filled with byte i; `sparse` only sets the size. */
static void make_image(const char *path, uint64_t blocks, bool sparse)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	if (sparse) {
		assert_int_equal(ftruncate(fd, (off_t)(blocks * SCSI_CD_BLOCK)), 0);
	} else {
		uint8_t block[SCSI_CD_BLOCK];
		for (uint64_t i = 0; i < blocks; i++) {
			memset(block, (int)(i & 0xFF), sizeof(block));
			assert_int_equal(write(fd, block, sizeof(block)), sizeof(block));
		}
	}
	close(fd);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/scsi-cd-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->iso, sizeof(f->iso), "%s/disc.iso", f->dir);
	make_image(f->iso, BLOCKS, false);
	vt_err err;
	if (scsi_cd_create(&f->cd, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	scsi_cd_destroy(f->cd);
	DIR *d = opendir(f->dir);
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	int rc = rmdir(f->dir);
	free(f);
	return rc;
}

/* Run a CDB with one data-in buffer of `room` bytes (f->buf, filled with 0xEE first). */
static void exec_lun(struct fx *f, uint64_t lun, const uint8_t *cdb, unsigned len, size_t room)
{
	assert_true(room <= sizeof(f->buf));
	memset(f->buf, 0xEE, sizeof(f->buf));
	struct iovec iov = { f->buf, room };
	memset(&f->res, 0x5A, sizeof(f->res));         /* exec must clear what it does not set */
	scsi_cd_exec(f->cd, lun, cdb, len, &iov, 1, room, &f->res);
}

#define CDB(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define EXEC(f, room, ...) exec_lun(f, 0, CDB(__VA_ARGS__), room)

static void assert_good(const struct fx *f)
{
	assert_int_equal(f->res.status, SCSI_STATUS_GOOD);
	assert_int_equal(f->res.sense_len, 0);
}

static void assert_sense(const struct fx *f, uint8_t key, uint8_t asc, uint8_t ascq)
{
	const struct scsi_cd_result *r = &f->res;
	assert_int_equal(r->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(r->sense_len, SCSI_CD_SENSE_LEN);
	assert_int_equal(r->sense[0], 0x70);
	assert_int_equal(r->sense[2], key);
	assert_int_equal(r->sense[7], 10);
	assert_int_equal(r->sense[12], asc);
	assert_int_equal(r->sense[13], ascq);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void insert_path(struct fx *f, const char *path)
{
	struct scsi_cd_medium m;
	vt_err err;
	assert_int_equal(scsi_cd_medium_open(path, &m, &err), 0);
	assert_int_equal(scsi_cd_insert(f->cd, &m, false, &err), 0);
	assert_int_equal(m.fd, -1);
}

/* The disc in, and the unit attention it raises heard. */
static void load(struct fx *f)
{
	insert_path(f, f->iso);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
}

/* ---- INQUIRY, REPORT LUNS, other LUNs ---- */

static void inquiry_standard_and_cut(void **state)
{
	struct fx *f = *state;
	EXEC(f, 256, 0x12, 0, 0, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 36);
	const uint8_t *b = f->buf;
	assert_int_equal(b[0], 0x05);
	assert_int_equal(b[1], 0x80);
	assert_int_equal(b[2], 0x05);
	assert_int_equal(b[3], 0x02);
	assert_int_equal(b[4], 31);
	assert_memory_equal(b + 8, "VIRTUS  ", 8);
	assert_memory_equal(b + 16, "CD-ROM          ", 16);
	assert_memory_equal(b + 32, "1.0 ", 4);
	assert_int_equal(b[36], 0xEE);

	EXEC(f, 256, 0x12, 0, 0, 0, 5, 0);                 /* allocation length 5 */
	assert_good(f);
	assert_int_equal(f->res.data_len, 5);
	assert_int_equal(f->buf[4], 31);
	assert_int_equal(f->buf[5], 0xEE);
	EXEC(f, 256, 0x12, 0, 0, 0x01, 0x00, 0);           /* 256, big-endian in bytes 3..4 */
	assert_int_equal(f->res.data_len, 36);
	EXEC(f, 10, 0x12, 0, 0, 0, 255, 0);                /* a 10-byte buffer */
	assert_good(f);
	assert_int_equal(f->res.data_len, 10);
	assert_int_equal(f->buf[10], 0xEE);
	EXEC(f, 256, 0x12, 0, 0, 0, 0, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 0);
	assert_int_equal(f->buf[0], 0xEE);
	EXEC(f, 256, 0x12, 0, 0x80, 0, 255, 0);            /* a page without EVPD */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x12, 0x02, 0, 0, 255, 0);            /* CmdDt */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
}

static void inquiry_vpd_pages(void **state)
{
	struct fx *f = *state;
	EXEC(f, 256, 0x12, 0x01, 0x00, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 7);
	assert_memory_equal(f->buf, ((uint8_t[]){ 0x05, 0x00, 0, 3, 0x00, 0x80, 0x83 }), 7);

	EXEC(f, 256, 0x12, 0x01, 0x80, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->buf[0], 0x05);
	assert_int_equal(f->buf[1], 0x80);
	uint16_t n = be16(f->buf + 2);
	assert_int_equal(f->res.data_len, 4 + n);
	assert_memory_equal(f->buf + 4, "virtus-cd0", n);

	EXEC(f, 256, 0x12, 0x01, 0x83, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->buf[1], 0x83);
	assert_int_equal(f->res.data_len, 4 + be16(f->buf + 2));
	const uint8_t *d = f->buf + 4;
	assert_int_equal(d[0] & 0x0F, 0x02);               /* ASCII */
	assert_int_equal(d[1] & 0x0F, 0x01);               /* T10 vendor ID */
	assert_int_equal(4 + d[3], be16(f->buf + 2));      /* the only designator fills the page */
	assert_memory_equal(d + 4, "VIRTUS  ", 8);

	EXEC(f, 256, 0x12, 0x01, 0x81, 0, 255, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x12, 0x01, 0xB0, 0, 255, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
}

static void report_luns(void **state)
{
	struct fx *f = *state;
	for (uint64_t lun = 0; lun < 3; lun += 2) {
		exec_lun(f, lun, CDB(0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0), 256);
		assert_good(f);
		assert_int_equal(f->res.data_len, 16);
		assert_int_equal(be32(f->buf), 8);
		for (int i = 4; i < 16; i++)
			assert_int_equal(f->buf[i], 0);
	}
	EXEC(f, 256, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0);   /* under 16 bytes */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 12, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0);    /* a 12-byte buffer: cut */
	assert_good(f);
	assert_int_equal(f->res.data_len, 12);
	assert_int_equal(f->buf[12], 0xEE);
}

static void other_lun_has_no_device(void **state)
{
	struct fx *f = *state;
	load(f);
	exec_lun(f, 1, CDB(0x12, 0, 0, 0, 96, 0), 256);
	assert_good(f);
	assert_int_equal(f->res.data_len, 36);
	assert_int_equal(f->buf[0], 0x7F);
	exec_lun(f, 1, CDB(0x00, 0, 0, 0, 0, 0), 256);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00);
	exec_lun(f, 7, CDB(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0), 4096);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00);
	exec_lun(f, 1, CDB(0xFF, 0, 0, 0, 0, 0), 256);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00);
	exec_lun(f, 1, CDB(0x03, 0, 0, 0, 18, 0), 256);          /* SPC: GOOD, the reason in the data */
	assert_good(f);
	assert_int_equal(f->res.data_len, 18);
	assert_int_equal(f->buf[2], SCSI_SENSE_ILLEGAL_REQUEST);
	assert_int_equal(f->buf[12], 0x25);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);                         /* LUN 0 is fine */
	assert_good(f);
}

/* ---- Medium, unit attention, sense ---- */

static void empty_drive_not_ready(void **state)
{
	struct fx *f = *state;
	assert_false(scsi_cd_has_medium(f->cd));
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	EXEC(f, 256, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	assert_int_equal(f->res.data_len, 0);
	EXEC(f, 4096, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	assert_int_equal(f->buf[0], 0xEE);
	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	EXEC(f, 256, 0x03, 0, 0, 0, 252, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 18);
	assert_int_equal(f->buf[0], 0x70);
	assert_int_equal(f->buf[2], SCSI_SENSE_NOT_READY);
	assert_int_equal(f->buf[12], 0x3A);
	assert_int_equal(f->buf[13], 0x01);
	EXEC(f, 256, 0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	assert_good(f);
	assert_int_equal(be16(f->buf + 6), 0);                   /* no current profile */
}

static void insert_raises_unit_attention_once(void **state)
{
	struct fx *f = *state;
	insert_path(f, f->iso);
	assert_true(scsi_cd_has_medium(f->cd));
	EXEC(f, 256, 0x12, 0, 0, 0, 36, 0);                      /* INQUIRY does not hear it */
	assert_good(f);
	EXEC(f, 256, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0);   /* nor REPORT LUNS */
	assert_good(f);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);
	EXEC(f, 256, 0x03, 0, 0, 0, 18, 0);
	assert_good(f);
	assert_int_equal(f->buf[2], SCSI_SENSE_NO_SENSE);
	assert_int_equal(f->buf[12], 0);

	/* A swap: REQUEST SENSE reports the unit attention and clears it. */
	insert_path(f, f->iso);
	EXEC(f, 256, 0x03, 0, 0, 0, 18, 0);
	assert_good(f);
	assert_int_equal(f->buf[2], SCSI_SENSE_UNIT_ATTENTION);
	assert_int_equal(f->buf[12], 0x28);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);

	/* An unknown opcode hears the unit attention first. */
	insert_path(f, f->iso);
	EXEC(f, 0, 0xFF, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	EXEC(f, 0, 0xFF, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
}

static void unknown_opcodes(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 256, 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0);           /* WRITE(10) */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
	EXEC(f, 256, 0xFF);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
	exec_lun(f, 0, (const uint8_t[]){ 0 }, 0, 256);          /* no CDB at all */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
	assert_int_equal(f->res.data_len, 0);
}

/* ---- Reading ---- */

static void read_capacity(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 256, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 8);
	assert_int_equal(be32(f->buf), BLOCKS - 1);
	assert_int_equal(be32(f->buf + 4), 2048);
	EXEC(f, 5, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 5);
	assert_int_equal(f->buf[5], 0xEE);
}

static void assert_blocks(const uint8_t *data, uint32_t first, uint32_t count)
{
	for (uint32_t i = 0; i < count * SCSI_CD_BLOCK; i++)
		if (data[i] != (uint8_t)(first + i / SCSI_CD_BLOCK))
			fail_msg("byte %u of the read is 0x%02x, not block %u's 0x%02x", i, data[i],
				 first + i / SCSI_CD_BLOCK, first + i / SCSI_CD_BLOCK);
}

static void read10_across_split_buffer(void **state)
{
	struct fx *f = *state;
	load(f);
	/* Blocks 2..4 into 1001 + 0 + 4000 + (the rest + 100) bytes. */
	uint8_t *mem = f->buf;
	memset(mem, 0xEE, sizeof(f->buf));
	struct iovec iov[4] = {
		{ mem, 1001 }, { mem + 1001, 0 }, { mem + 1001, 4000 }, { mem + 5001, 3 * SCSI_CD_BLOCK - 5001 + 100 },
	};
	uint64_t room = 3 * SCSI_CD_BLOCK + 100;
	scsi_cd_exec(f->cd, 0, CDB(0x28, 0, 0, 0, 0, 2, 0, 0, 3, 0), iov, 4, room, &f->res);
	assert_good(f);
	assert_int_equal(f->res.data_len, 3 * SCSI_CD_BLOCK);
	assert_blocks(mem, 2, 3);
	assert_int_equal(mem[3 * SCSI_CD_BLOCK], 0xEE);              /* nothing past the transfer */

	EXEC(f, 4096, 0x28, 0, 0, 0, 0, 7, 0, 0, 1, 0);             /* the last block */
	assert_good(f);
	assert_blocks(f->buf, 7, 1);
	EXEC(f, 4096, 0x28, 0, 0, 0, 0, 3, 0, 0, 0, 0);             /* length 0 */
	assert_good(f);
	assert_int_equal(f->res.data_len, 0);
	assert_int_equal(f->buf[0], 0xEE);
}

static void read_refusals(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, sizeof(f->buf), 0x28, 0, 0, 0, 0, 6, 0, 0, 3, 0);   /* 6..8: past the end */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
	assert_int_equal(f->res.data_len, 0);
	assert_int_equal(f->buf[0], 0xEE);
	EXEC(f, sizeof(f->buf), 0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
	EXEC(f, sizeof(f->buf), 0x28, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0);   /* would wrap 32 bits */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
	EXEC(f, sizeof(f->buf), 0xA8, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
	EXEC(f, 2 * SCSI_CD_BLOCK - 1, 0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0);   /* bigger than the buffer */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	assert_int_equal(f->res.data_len, 0);
	assert_int_equal(f->buf[0], 0xEE);
	EXEC(f, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
}

static void read12(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, sizeof(f->buf), 0xA8, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 2 * SCSI_CD_BLOCK);
	assert_blocks(f->buf, 5, 2);
	assert_int_equal(f->buf[2 * SCSI_CD_BLOCK], 0xEE);
}

/* A 1 MiB transfer is the most one READ may ask for. */
static void read_transfer_limit(void **state)
{
	struct fx *f = *state;
	char big[96];
	snprintf(big, sizeof(big), "%s/big.iso", f->dir);
	make_image(big, 1024, true);
	insert_path(f, big);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	uint32_t most = SCSI_CD_MAX_TRANSFER / SCSI_CD_BLOCK;
	uint8_t *mem = malloc(SCSI_CD_MAX_TRANSFER + SCSI_CD_BLOCK);
	assert_non_null(mem);
	struct iovec iov = { mem, SCSI_CD_MAX_TRANSFER + SCSI_CD_BLOCK };
	uint8_t cdb[12] = { 0xA8 };
	cdb[8] = (uint8_t)((most + 1) >> 8), cdb[9] = (uint8_t)(most + 1);
	scsi_cd_exec(f->cd, 0, cdb, sizeof(cdb), &iov, 1, iov.iov_len, &f->res);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	cdb[8] = (uint8_t)(most >> 8), cdb[9] = (uint8_t)most;
	scsi_cd_exec(f->cd, 0, cdb, sizeof(cdb), &iov, 1, iov.iov_len, &f->res);
	assert_good(f);
	assert_int_equal(f->res.data_len, SCSI_CD_MAX_TRANSFER);
	assert_int_equal(mem[0], 0);                           /* a sparse image reads as zeros */
	free(mem);
}

/* An image that shrinks under the drive: the read hits its end, the guest hears a medium error. */
static void read_error_is_medium_error(void **state)
{
	struct fx *f = *state;
	load(f);
	assert_int_equal(truncate(f->iso, 5 * SCSI_CD_BLOCK + 100), 0);
	EXEC(f, sizeof(f->buf), 0x28, 0, 0, 0, 0, 4, 0, 0, 2, 0);
	assert_sense(f, SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00);
	assert_true(f->res.data_len < 2 * SCSI_CD_BLOCK);
	EXEC(f, sizeof(f->buf), 0x28, 0, 0, 0, 0, 6, 0, 0, 1, 0);
	assert_sense(f, SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00);
	assert_int_equal(f->res.data_len, 0);
}

/* ---- READ TOC, GET CONFIGURATION, READ DISC INFORMATION ---- */

static void read_toc_format0(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 20);
	static const uint8_t lba[20] = {
		0, 18, 1, 1,
		0, 0x14, 1, 0, 0, 0, 0, 0,
		0, 0x14, 0xAA, 0, 0, 0, 0, BLOCKS,
	};
	assert_memory_equal(f->buf, lba, sizeof(lba));

	EXEC(f, 256, 0x43, 0x02, 0, 0, 0, 0, 0, 0, 255, 0);        /* MSF */
	assert_good(f);
	static const uint8_t msf[20] = {
		0, 18, 1, 1,
		0, 0x14, 1, 0, 0, 0, 2, 0,                          /* 00:02:00 */
		0, 0x14, 0xAA, 0, 0, 0, 2, 8,                       /* 8 blocks later: 00:02:08 */
	};
	assert_memory_equal(f->buf, msf, sizeof(msf));

	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0xAA, 0, 255, 0);        /* from the lead-out */
	assert_good(f);
	assert_int_equal(f->res.data_len, 12);
	assert_int_equal(be16(f->buf), 10);
	assert_int_equal(f->buf[6], 0xAA);
	assert_int_equal(be32(f->buf + 8), BLOCKS);

	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 1, 0, 255, 0);           /* from track 1 */
	assert_int_equal(f->res.data_len, 20);
	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 2, 0, 255, 0);           /* no track 2 */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0, 0, 4, 0);             /* allocation 4: the header only */
	assert_good(f);
	assert_int_equal(f->res.data_len, 4);
	assert_int_equal(be16(f->buf), 18);
	assert_int_equal(f->buf[4], 0xEE);
}

static void read_toc_sessions_and_old_format(void **state)
{
	struct fx *f = *state;
	load(f);
	static const uint8_t session[12] = { 0, 0x0A, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0 };
	EXEC(f, 256, 0x43, 0, 0x01, 0, 0, 0, 0, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 12);
	assert_memory_equal(f->buf, session, sizeof(session));

	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0x40);        /* format 1 where SFF-8020 put it */
	assert_good(f);
	assert_memory_equal(f->buf, session, sizeof(session));

	EXEC(f, 256, 0x43, 0x02, 0, 0, 0, 0, 0, 0, 255, 0x40);     /* and in MSF */
	assert_good(f);
	assert_memory_equal(f->buf + 8, ((uint8_t[]){ 0, 0, 2, 0 }), 4);

	EXEC(f, 256, 0x43, 0, 0x02, 0, 0, 0, 0, 0, 255, 0);        /* full TOC: not supported */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0x80);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
}

/* The features of a GET CONFIGURATION reply, in order, as their codes. */
static unsigned feature_codes(const uint8_t *b, size_t len, uint16_t *codes, unsigned max)
{
	unsigned k = 0;
	for (size_t off = 8; off + 4 <= len && k < max; off += 4 + b[off + 3])
		codes[k++] = be16(b + off);
	return k;
}

static void get_configuration(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 256, 0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	assert_good(f);
	const uint8_t *b = f->buf;
	assert_int_equal(be32(b) + 4, f->res.data_len);
	assert_int_equal(be16(b + 6), 0x0008);                     /* CD-ROM */
	uint16_t codes[8];
	assert_int_equal(feature_codes(b, f->res.data_len, codes, 8), 3);
	assert_int_equal(codes[0], 0x0000);
	assert_int_equal(codes[1], 0x0001);
	assert_int_equal(codes[2], 0x0003);
	/* The profile list: DVD-ROM not current, CD-ROM current. */
	assert_int_equal(b[10], 0x03);
	assert_int_equal(b[11], 8);
	assert_memory_equal(b + 12, ((uint8_t[]){ 0x00, 0x10, 0, 0, 0x00, 0x08, 1, 0 }), 8);
	size_t rm = 8 + 12 + 12;
	assert_int_equal(b[rm + 3], 4);
	assert_int_equal(b[rm + 4], 0x29);

	EXEC(f, 256, 0x46, 0x02, 0, 0x01, 0, 0, 0, 1, 0, 0);     /* RT 2: Core only */
	assert_good(f);
	assert_int_equal(feature_codes(f->buf, f->res.data_len, codes, 8), 1);
	assert_int_equal(codes[0], 0x0001);
	assert_int_equal(be32(f->buf) + 4, f->res.data_len);
	EXEC(f, 256, 0x46, 0x02, 0, 0x28, 0, 0, 0, 1, 0, 0);     /* RT 2, a feature not there: the header */
	assert_good(f);
	assert_int_equal(f->res.data_len, 8);
	assert_int_equal(be32(f->buf), 4);
	assert_int_equal(be16(f->buf + 6), 0x0008);
	EXEC(f, 256, 0x46, 0x01, 0, 0x02, 0, 0, 0, 1, 0, 0);     /* RT 1 from 2: Removable Medium */
	assert_good(f);
	assert_int_equal(feature_codes(f->buf, f->res.data_len, codes, 8), 1);
	assert_int_equal(codes[0], 0x0003);
	EXEC(f, 256, 0x46, 0x03, 0, 0, 0, 0, 0, 1, 0, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0);             /* allocation 8 */
	assert_good(f);
	assert_int_equal(f->res.data_len, 8);
	assert_int_equal(f->buf[8], 0xEE);
}

static void get_configuration_dvd(void **state)
{
	struct fx *f = *state;
	char big[96];
	snprintf(big, sizeof(big), "%s/dvd.iso", f->dir);
	make_image(big, 700 * 512 + 1, true);                      /* one block over 700 MiB */
	insert_path(f, big);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	EXEC(f, 256, 0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	assert_good(f);
	assert_int_equal(be16(f->buf + 6), 0x0010);
	assert_int_equal(f->buf[14], 1);                           /* DVD-ROM current */
	assert_int_equal(f->buf[18], 0);
}

static void read_disc_information(void **state)
{
	struct fx *f = *state;
	EXEC(f, 256, 0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
	load(f);
	EXEC(f, 256, 0x51, 0, 0, 0, 0, 0, 0, 0, 255, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 34);
	assert_int_equal(be16(f->buf), 32);
	assert_int_equal(f->buf[2], 0x0E);
	assert_memory_equal(f->buf + 3, ((uint8_t[]){ 1, 1, 1, 1 }), 4);
	EXEC(f, 256, 0x51, 0x01, 0, 0, 0, 0, 0, 0, 255, 0);
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
}

/* ---- Events, mode page, tray and lock ---- */

static void gesn(struct fx *f)
{
	EXEC(f, 256, 0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 8);
	assert_int_equal(be16(f->buf), 6);
	assert_int_equal(f->buf[2], 0x04);
	assert_int_equal(f->buf[3], 0x10);
}

static void event_status_new_media_then_nothing(void **state)
{
	struct fx *f = *state;
	gesn(f);
	assert_int_equal(f->buf[4], 0);
	assert_int_equal(f->buf[5], 0x00);                         /* closed, empty */
	insert_path(f, f->iso);
	gesn(f);                                                   /* not stopped by the unit attention */
	assert_int_equal(f->buf[4], 2);                            /* new media */
	assert_int_equal(f->buf[5], 0x02);                         /* medium present */
	gesn(f);
	assert_int_equal(f->buf[4], 0);
	assert_int_equal(f->buf[5], 0x02);

	EXEC(f, 256, 0x4A, 0x00, 0, 0, 0x10, 0, 0, 0, 8, 0);       /* not polled */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
	EXEC(f, 256, 0x4A, 0x01, 0, 0, 0x02, 0, 0, 0, 8, 0);       /* another class: no event */
	assert_good(f);
	assert_int_equal(f->res.data_len, 4);
	assert_memory_equal(f->buf, ((uint8_t[]){ 0, 2, 0x80, 0x10 }), 4);

	/* A cut reply does not use the event up. */
	vt_err err;
	assert_int_equal(scsi_cd_eject(f->cd, false, &err), 0);
	EXEC(f, 256, 0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 4, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 4);
	gesn(f);
	assert_int_equal(f->buf[4], 3);                            /* media removal */
	assert_int_equal(f->buf[5], 0x00);
}

static void mode_sense(struct fx *f)
{
	EXEC(f, 256, 0x5A, 0, 0x2A, 0, 0, 0, 0, 1, 0, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 28);
	assert_int_equal(be16(f->buf), 26);
	assert_int_equal(be16(f->buf + 6), 0);                     /* no block descriptors */
	assert_int_equal(f->buf[8], 0x2A);
	assert_int_equal(f->buf[9], 0x12);
}

static void mode_sense_capabilities_and_lock(void **state)
{
	struct fx *f = *state;
	load(f);
	mode_sense(f);
	const uint8_t *page = f->buf + 8;
	assert_int_equal(page[2] & 0x08, 0x08);                    /* reads DVD-ROM */
	assert_int_equal(page[3], 0);                              /* writes nothing */
	assert_int_equal(page[6], 0x29);
	assert_int_equal(be16(page + 8), 7056);
	EXEC(f, 0, 0x1E, 0, 0, 0, 0x01, 0);                        /* PREVENT */
	assert_good(f);
	assert_true(scsi_cd_locked(f->cd));
	mode_sense(f);
	assert_int_equal(page[6], 0x2B);
	EXEC(f, 0, 0x1E, 0, 0, 0, 0x00, 0);                        /* ALLOW */
	assert_false(scsi_cd_locked(f->cd));
	mode_sense(f);
	assert_int_equal(page[6], 0x29);

	EXEC(f, 256, 0x5A, 0, 0x3F, 0, 0, 0, 0, 1, 0, 0);          /* all pages: the same */
	assert_good(f);
	assert_int_equal(f->res.data_len, 28);
	assert_int_equal(f->buf[8], 0x2A);
	EXEC(f, 256, 0x5A, 0, 0x40 | 0x2A, 0, 0, 0, 0, 1, 0, 0);   /* changeable: nothing */
	assert_good(f);
	assert_int_equal(f->buf[8], 0x2A);
	assert_int_equal(f->buf[14], 0);
	EXEC(f, 256, 0x5A, 0, 0xC0 | 0x2A, 0, 0, 0, 0, 1, 0, 0);   /* saved values */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x39, 0x00);
	EXEC(f, 256, 0x5A, 0, 0x08, 0, 0, 0, 0, 1, 0, 0);          /* the caching page: not here */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);

	EXEC(f, 256, 0x1A, 0, 0x2A, 0, 255, 0);                    /* MODE SENSE(6) */
	assert_good(f);
	assert_int_equal(f->res.data_len, 24);
	assert_int_equal(f->buf[0], 23);
	assert_int_equal(f->buf[3], 0);
	assert_int_equal(f->buf[4], 0x2A);
	assert_int_equal(f->buf[10], 0x29);
	EXEC(f, 256, 0x1A, 0, 0x2A, 0, 10, 0);
	assert_good(f);
	assert_int_equal(f->res.data_len, 10);
	assert_int_equal(f->buf[10], 0xEE);
}

static void guest_eject_and_load(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 0, 0x1E, 0, 0, 0, 0x01, 0);                        /* PREVENT */
	EXEC(f, 0, 0x1B, 0, 0, 0, 0x02, 0);                        /* eject */
	assert_sense(f, SCSI_SENSE_ILLEGAL_REQUEST, 0x53, 0x02);
	assert_false(scsi_cd_tray_open(f->cd));
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);
	EXEC(f, 0, 0x1E, 0, 0, 0, 0x00, 0);                        /* ALLOW */
	EXEC(f, 0, 0x1B, 0, 0, 0, 0x01, 0);                        /* Start without LoEj: nothing */
	assert_good(f);
	assert_false(scsi_cd_tray_open(f->cd));
	EXEC(f, 0, 0x1B, 0, 0, 0, 0x02, 0);
	assert_good(f);
	assert_true(scsi_cd_tray_open(f->cd));
	assert_true(scsi_cd_has_medium(f->cd));
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x02);          /* tray open */
	EXEC(f, 4096, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x02);
	gesn(f);
	assert_int_equal(f->buf[4], 3);                            /* media removal */
	assert_int_equal(f->buf[5], 0x03);                         /* open, a disc in it */

	EXEC(f, 0, 0x1B, 0, 0, 0, 0x03, 0);                        /* load */
	assert_good(f);
	assert_false(scsi_cd_tray_open(f->cd));
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);
	gesn(f);
	assert_int_equal(f->buf[4], 2);                            /* new media */
	EXEC(f, 0, 0x1B, 0, 0, 0, 0x03, 0);                        /* loading a closed tray changes nothing */
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);
}

static void host_eject_and_insert_honour_the_lock(void **state)
{
	struct fx *f = *state;
	load(f);
	EXEC(f, 0, 0x1E, 0, 0, 0, 0x01, 0);
	vt_err err = { 0 };
	assert_int_equal(scsi_cd_eject(f->cd, false, &err), -1);
	assert_non_null(strstr(err.msg, "locked"));
	assert_true(scsi_cd_has_medium(f->cd));

	struct scsi_cd_medium m;
	assert_int_equal(scsi_cd_medium_open(f->iso, &m, &err), 0);
	assert_int_equal(scsi_cd_insert(f->cd, &m, false, &err), -1);
	assert_true(m.fd >= 0);                                    /* still the caller's */
	assert_int_equal(fcntl(m.fd, F_GETFD), FD_CLOEXEC);
	scsi_cd_medium_close(&m);
	assert_int_equal(m.fd, -1);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_good(f);                                            /* nothing happened */

	assert_int_equal(scsi_cd_eject(f->cd, true, &err), 0);
	assert_false(scsi_cd_has_medium(f->cd));
	assert_false(scsi_cd_locked(f->cd));
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);

	/* Ejecting an empty drive is fine and raises nothing. */
	assert_int_equal(scsi_cd_eject(f->cd, false, &err), 0);
	EXEC(f, 0, 0x00, 0, 0, 0, 0, 0);
	assert_sense(f, SCSI_SENSE_NOT_READY, 0x3A, 0x01);
}

static void saved_state(void **state)
{
	struct fx *f = *state;
	load(f);
	struct scsi_cd_state st, got;
	scsi_cd_get_state(f->cd, &st);
	assert_int_equal(st.has_medium, 1);
	assert_int_equal(st.unit_attention, 0);
	assert_int_equal(st.media_event, 2);
	vt_err err;
	struct scsi_cd_state bad;
	bad = st, bad.locked = 2;
	assert_int_equal(scsi_cd_set_state(f->cd, &bad, &err), -1);
	bad = st, bad.media_event = 4;
	assert_int_equal(scsi_cd_set_state(f->cd, &bad, &err), -1);
	bad = st, bad.reserved[2] = 1;
	assert_int_equal(scsi_cd_set_state(f->cd, &bad, &err), -1);
	bad = st, bad.has_medium = 0;
	assert_int_equal(scsi_cd_set_state(f->cd, &bad, &err), -1);
	scsi_cd_get_state(f->cd, &got);
	assert_memory_equal(&got, &st, sizeof(st));                /* refusals change nothing */

	struct scsi_cd_state good = { .has_medium = 1, .tray_open = 1, .locked = 1, .unit_attention = 1,
				      .media_event = 1 };
	assert_int_equal(scsi_cd_set_state(f->cd, &good, &err), 0);
	scsi_cd_get_state(f->cd, &got);
	assert_memory_equal(&got, &good, sizeof(good));
	assert_true(scsi_cd_locked(f->cd));
	assert_true(scsi_cd_tray_open(f->cd));

	/* An empty drive takes an empty drive's state only. */
	struct scsi_cd *empty;
	assert_int_equal(scsi_cd_create(&empty, &err), 0);
	assert_int_equal(scsi_cd_set_state(empty, &good, &err), -1);
	good.has_medium = 0;
	assert_int_equal(scsi_cd_set_state(empty, &good, &err), 0);
	scsi_cd_destroy(empty);
}

static void medium_open_errors(void **state)
{
	struct fx *f = *state;
	char path[96];
	vt_err err = { 0 };
	struct scsi_cd_medium m;

	snprintf(path, sizeof(path), "%s/small.iso", f->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(scsi_cd_medium_open(path, &m, &err), -1);
	assert_int_equal(m.fd, -1);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "smaller than one 2048-byte block"));

	assert_int_equal(scsi_cd_medium_open(f->dir, &m, &err), -1);
	assert_non_null(strstr(err.msg, f->dir));
	assert_non_null(strstr(err.msg, "is a directory"));

	snprintf(path, sizeof(path), "%s/missing.iso", f->dir);
	assert_int_equal(scsi_cd_medium_open(path, &m, &err), -1);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "No such file"));

	snprintf(path, sizeof(path), "%s/fifo", f->dir);           /* not a disc; and open() does not hang */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(scsi_cd_medium_open(path, &m, &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file or block device"));

	assert_int_equal(scsi_cd_medium_open(f->iso, &m, &err), 0);
	assert_int_equal(m.blocks, BLOCKS);
	assert_int_equal(fcntl(m.fd, F_GETFL) & O_NONBLOCK, 0);
	scsi_cd_medium_close(&m);
}

/* Every command with a generous allocation length into a 1-byte buffer: at most that byte is written. */
static void one_byte_buffer_never_overrun(void **state)
{
	struct fx *f = *state;
	static const uint8_t cdbs[][12] = {
		{ 0x00 },
		{ 0x03, 0, 0, 0, 255 },
		{ 0x12, 0, 0, 0, 255 },
		{ 0x12, 1, 0x00, 0, 255 },
		{ 0x12, 1, 0x80, 0, 255 },
		{ 0x12, 1, 0x83, 0, 255 },
		{ 0x1A, 0, 0x3F, 0, 255 },
		{ 0x1E, 0, 0, 0, 0 },
		{ 0x25 },
		{ 0x28, 0, 0, 0, 0, 0, 0, 0, 1 },
		{ 0x28, 0, 0, 0, 0, 0, 0, 0, 0 },
		{ 0x2B },
		{ 0x35 },
		{ 0x43, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF },
		{ 0x43, 2, 1, 0, 0, 0, 0, 0xFF, 0xFF },
		{ 0x46, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF },
		{ 0x4A, 1, 0, 0, 0x10, 0, 0, 0xFF, 0xFF },
		{ 0x4A, 1, 0, 0, 0x00, 0, 0, 0xFF, 0xFF },
		{ 0x51, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF },
		{ 0x5A, 0, 0x2A, 0, 0, 0, 0, 0xFF, 0xFF },
		{ 0xA0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF },
		{ 0xA8, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
		{ 0xBB, 0, 0xFF, 0xFF },
		{ 0x1B, 0, 0, 0, 0x03 },
	};
	load(f);
	for (uint64_t lun = 0; lun < 2; lun++) {
		for (size_t i = 0; i < ARRAY_SIZE(cdbs); i++) {
			uint8_t mem[64];
			memset(mem, 0xA5, sizeof(mem));
			struct iovec iov = { mem, 1 };
			scsi_cd_exec(f->cd, lun, cdbs[i], sizeof(cdbs[i]), &iov, 1, 1, &f->res);
			assert_true(f->res.data_len <= 1);
			for (size_t k = 1; k < sizeof(mem); k++)
				if (mem[k] != 0xA5)
					fail_msg("opcode 0x%02x (LUN %u) wrote byte %zu", cdbs[i][0], (unsigned)lun, k);
			assert_int_equal(f->res.sense_len,
					 f->res.status == SCSI_STATUS_CHECK_CONDITION ? SCSI_CD_SENSE_LEN : 0);
		}
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(inquiry_standard_and_cut),
		T(inquiry_vpd_pages),
		T(report_luns),
		T(other_lun_has_no_device),
		T(empty_drive_not_ready),
		T(insert_raises_unit_attention_once),
		T(unknown_opcodes),
		T(read_capacity),
		T(read10_across_split_buffer),
		T(read_refusals),
		T(read12),
		T(read_transfer_limit),
		T(read_error_is_medium_error),
		T(read_toc_format0),
		T(read_toc_sessions_and_old_format),
		T(get_configuration),
		T(get_configuration_dvd),
		T(read_disc_information),
		T(event_status_new_media_then_nothing),
		T(mode_sense_capabilities_and_lock),
		T(guest_eject_and_load),
		T(host_eject_and_insert_honour_the_lock),
		T(saved_state),
		T(medium_open_errors),
		T(one_byte_buffer_never_overrun),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
