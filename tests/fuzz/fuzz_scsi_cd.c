/* libFuzzer target for the CD-ROM drive's command decoder (devices/scsi_cd.c). The input sets up a drive
 * (a disc or none, the tray, the lock, a pending unit attention and media event), a data-in buffer split
 * into heap segments (so ASan sees any write past one), then runs a few commands, each maybe after a host
 * insert or eject. Checks the promises of scsi_cd_exec: a GOOD or CHECK CONDITION status, 18 bytes of
 * fixed-format sense exactly with CHECK CONDITION, data_len within the buffer and nothing written past
 * data_len, a successful READ returning the disc's bytes, and a state that scsi_cd_set_state takes back.
 *
 * Input: [state] [data-in length, 2 bytes BE] [buffer flags] [3 split bytes], then commands:
 * [control] [CDB length] [CDB bytes]. Build and run: tests/fuzz/run-fuzz-scsi-cd.sh [seconds]. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/scsi_cd.h"
#include "lib/util.h"

#define DISC_BLOCKS  16
#define MAX_DATAIN   8192
#define MAX_SEGS     4
#define MAX_COMMANDS 8
#define CANARY       0xA5

/* The disc: block i filled with byte i, in a memfd opened by its /proc path like any image. */
static const char *disc_path(void)
{
	static char path[64];
	if (path[0])
		return path;
	int fd = memfd_create("fuzz-disc.iso", 0);
	if (fd < 0)
		abort();
	uint8_t block[SCSI_CD_BLOCK];
	for (int i = 0; i < DISC_BLOCKS; i++) {
		memset(block, i, sizeof(block));
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
			abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return path;
}

static void insert_disc(struct scsi_cd *cd, bool force)
{
	struct scsi_cd_medium m;
	if (scsi_cd_medium_open(disc_path(), &m, NULL) < 0)
		abort();
	if (scsi_cd_insert(cd, &m, force, NULL) < 0)
		scsi_cd_medium_close(&m);      /* refused: the medium is still ours */
}

struct datain {
	struct iovec iov[MAX_SEGS];
	unsigned n;
	uint64_t total;                        /* what the segments hold */
	uint64_t claimed;                      /* what scsi_cd_exec is told */
};

/* Segment lengths cut from the total by the split bytes; the last takes the rest. */
static void datain_alloc(struct datain *d, uint64_t total, uint8_t flags, const uint8_t split[3])
{
	d->n = 1 + (flags & 3);
	d->total = total;
	uint64_t left = total;
	for (unsigned i = 0; i < d->n; i++) {
		size_t len = (size_t)(i + 1 == d->n ? left : left * split[i] / 255);
		d->iov[i] = (struct iovec){ malloc(len ? len : 1), len };
		if (!d->iov[i].iov_base)
			abort();
		left -= len;
	}
	/* Mostly the truth; sometimes a transport that claims more or less than the segments hold. */
	switch (flags >> 2 & 3) {
	case 2: d->claimed = total + 4096; break;
	case 3: d->claimed = total / 2; break;
	default: d->claimed = total;
	}
}

static void datain_free(struct datain *d)
{
	for (unsigned i = 0; i < d->n; i++)
		free(d->iov[i].iov_base);
}

static void datain_fill(struct datain *d)
{
	for (unsigned i = 0; i < d->n; i++)
		memset(d->iov[i].iov_base, CANARY, d->iov[i].iov_len);
}

/* Whether every byte from off on is what expect(offset) says (per segment: this runs for every command). */
static bool datain_holds(const struct datain *d, uint64_t off, uint64_t end, uint8_t (*expect)(uint64_t, uint32_t),
			 uint32_t arg)
{
	uint64_t base = 0;
	for (unsigned i = 0; i < d->n; base += d->iov[i].iov_len, i++) {
		const uint8_t *p = d->iov[i].iov_base;
		for (uint64_t o = MAX(off, base); o < MIN(end, base + d->iov[i].iov_len); o++)
			if (p[o - base] != expect(o, arg))
				return false;
	}
	return true;
}

static uint8_t canary(uint64_t off, uint32_t arg)
{
	(void)off, (void)arg;
	return CANARY;
}

static uint8_t disc_byte(uint64_t off, uint32_t lba)
{
	return (uint8_t)(lba + off / SCSI_CD_BLOCK);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void check(struct scsi_cd *cd, const uint8_t *cdb, unsigned cdb_len, const struct datain *d,
		  const struct scsi_cd_result *r)
{
	bool cc = r->status == SCSI_STATUS_CHECK_CONDITION;
	if (r->status != SCSI_STATUS_GOOD && !cc)
		abort();
	if (cc != (r->sense_len == SCSI_CD_SENSE_LEN) || (r->sense_len != 0 && r->sense_len != SCSI_CD_SENSE_LEN))
		abort();
	if (cc && (r->sense[0] != 0x70 || r->sense[7] != 10 || (r->sense[2] & 0xF) == SCSI_SENSE_NO_SENSE))
		abort();
	if (r->data_len > d->claimed || r->data_len > d->total)
		abort();
	if (!datain_holds(d, r->data_len, d->total, canary, 0))
		abort();
	/* A READ that succeeded returned the disc's blocks. */
	uint8_t op = cdb_len ? cdb[0] : 0xFF;
	if (!cc && (op == 0x28 || op == 0xA8)) {
		uint32_t lba = be32(cdb + 2), count = op == 0x28 ? (uint32_t)(cdb[7] << 8 | cdb[8]) : be32(cdb + 6);
		if (r->data_len != (uint64_t)count * SCSI_CD_BLOCK)
			abort();
		if (!datain_holds(d, 0, r->data_len, disc_byte, lba))
			abort();
	}
	struct scsi_cd_state st;
	scsi_cd_get_state(cd, &st);
	if (scsi_cd_set_state(cd, &st, NULL) < 0)
		abort();
}

/* The drive the first byte describes. */
static struct scsi_cd *drive(uint8_t s)
{
	struct scsi_cd *cd;
	if (scsi_cd_create(&cd, NULL) < 0)
		abort();
	if (s & 0x01)
		insert_disc(cd, false);
	struct scsi_cd_state st = {
		.has_medium = s & 0x01, .tray_open = s >> 1 & 1, .locked = s >> 2 & 1, .unit_attention = s >> 3 & 1,
		.media_event = s >> 4 & 3,
	};
	if (scsi_cd_set_state(cd, &st, NULL) < 0)
		abort();
	return cd;
}

/* control: bits 0..1 a host action first (2 eject, 3 insert; bit 2 forces it), bit 3 another LUN (1 plus
 * bits 4..7). */
static void host_action(struct scsi_cd *cd, uint8_t control)
{
	bool force = control & 0x04;
	if ((control & 3) == 2)
		scsi_cd_eject(cd, force, NULL);
	else if ((control & 3) == 3)
		insert_disc(cd, force);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 7)
		return 0;
	struct scsi_cd *cd = drive(data[0]);
	struct datain d;
	datain_alloc(&d, (uint64_t)(data[1] << 8 | data[2]) % (MAX_DATAIN + 1), data[3], data + 4);
	data += 7, size -= 7;
	for (int i = 0; i < MAX_COMMANDS && size >= 2; i++) {
		uint8_t control = data[0];
		unsigned cdb_len = MIN((unsigned)data[1] % 33, (unsigned)size - 2);
		uint8_t cdb[32] = { 0 };
		memcpy(cdb, data + 2, cdb_len);
		data += 2 + cdb_len, size -= 2 + cdb_len;
		host_action(cd, control);
		uint64_t lun = control & 0x08 ? 1 + (control >> 4) : 0;
		struct scsi_cd_result r;
		datain_fill(&d);
		scsi_cd_exec(cd, lun, cdb, cdb_len, d.iov, d.n, d.claimed, &r);
		check(cd, cdb, cdb_len, &d, &r);
	}
	datain_free(&d);
	scsi_cd_destroy(cd);
	return 0;
}
