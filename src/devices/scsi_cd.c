/* An MMC CD-ROM logical unit (SPC-4, MMC-6 subset): the commands Linux's sr, cdrom and SCSI midlayer send.
 * Every reply is built in a small local buffer and copied out cut to the allocation length and the guest's
 * buffer; only READ writes into the guest's buffers directly (preadv from the image). */
#include "devices/scsi_cd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/iov.h"
#include "lib/util.h"

#define CDB_MAX          32
#define VENDOR           "VIRTUS  "            /* 8 bytes, space padded (SPC) */
#define PRODUCT          "CD-ROM          "    /* 16 */
#define REVISION         "1.0 "                /* 4 */
#define SERIAL           "virtus-cd0"
#define CD_MAX_BYTES     (700 * MiB)           /* larger images are presented as DVDs */
#define READ_SPEED_KBS   7056                  /* 40x, what sr shows as the drive's speed */
#define TRACK_CONTROL    0x14                  /* ADR 1 (Q sub-channel position), control 4 (data track) */
#define LEAD_OUT         0xAA
#define READ_SEGS        64                    /* iovecs per preadv: any chain is read in pieces */

/* Operation codes. */
enum {
	OP_TEST_UNIT_READY = 0x00, OP_REQUEST_SENSE = 0x03, OP_INQUIRY = 0x12, OP_MODE_SENSE_6 = 0x1A,
	OP_START_STOP_UNIT = 0x1B, OP_PREVENT_ALLOW = 0x1E, OP_READ_CAPACITY = 0x25, OP_READ_10 = 0x28,
	OP_SEEK_10 = 0x2B, OP_SYNC_CACHE = 0x35, OP_READ_TOC = 0x43, OP_GET_CONFIGURATION = 0x46,
	OP_GET_EVENT_STATUS = 0x4A, OP_READ_DISC_INFO = 0x51, OP_MODE_SENSE_10 = 0x5A, OP_REPORT_LUNS = 0xA0,
	OP_READ_12 = 0xA8, OP_SET_CD_SPEED = 0xBB,
};

/* GET EVENT STATUS NOTIFICATION media event codes (MMC). */
enum { EVENT_NONE, EVENT_EJECT_REQUEST, EVENT_NEW_MEDIA, EVENT_MEDIA_REMOVAL };

/* MMC profiles. */
#define PROFILE_CD_ROM  0x0008
#define PROFILE_DVD_ROM 0x0010

struct scsi_cd {
	struct scsi_cd_medium medium;          /* fd -1: the drive is empty */
	bool tray_open;
	bool locked;
	bool unit_attention;
	uint8_t media_event;
};

/* ---- The host's side ---- */

/* The size of what path opened: a regular file or a block device of at least one block. */
static int medium_size(const char *path, int fd, uint64_t *size, vt_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vt_fail_errno(err, errno, "%s", path);
	if (S_ISDIR(st.st_mode))
		return vt_fail(err, "%s: is a directory, not a CD image", path);
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return vt_fail_errno(err, errno, "%s: cannot get the block device's size", path);
	} else {
		return vt_fail(err, "%s: not a regular file or block device (a CD image is needed)", path);
	}
	if (*size < SCSI_CD_BLOCK)
		return vt_fail(err, "%s: not a CD image: smaller than one %u-byte block", path, SCSI_CD_BLOCK);
	return 0;
}

int scsi_cd_medium_open(const char *path, struct scsi_cd_medium *out, vt_err *err)
{
	*out = (struct scsi_cd_medium){ .fd = -1 };
	/* Non-blocking, so that a FIFO does not hang open(); blocking again once the file is known to be a disc. */
	int fd cleanup_close = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return vt_fail_errno(err, errno, "%s", path);
	uint64_t size;
	if (medium_size(path, fd, &size, err) < 0)
		return -1;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return vt_fail_errno(err, errno, "%s", path);
	*out = (struct scsi_cd_medium){ .fd = steal_fd(fd), .blocks = size / SCSI_CD_BLOCK };
	return 0;
}

void scsi_cd_medium_close(struct scsi_cd_medium *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	*m = (struct scsi_cd_medium){ .fd = -1 };
}

int scsi_cd_create(struct scsi_cd **out, vt_err *err)
{
	struct scsi_cd *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return vt_fail_errno(err, ENOMEM, "CD drive");
	cd->medium.fd = -1;
	*out = cd;
	return 0;
}

void scsi_cd_destroy(struct scsi_cd *cd)
{
	if (!cd)
		return;
	scsi_cd_medium_close(&cd->medium);
	free(cd);
}

bool scsi_cd_has_medium(const struct scsi_cd *cd)
{
	return cd->medium.fd >= 0;
}

bool scsi_cd_locked(const struct scsi_cd *cd)
{
	return cd->locked;
}

bool scsi_cd_tray_open(const struct scsi_cd *cd)
{
	return cd->tray_open;
}

static bool readable(const struct scsi_cd *cd)
{
	return scsi_cd_has_medium(cd) && !cd->tray_open;
}

/* The guest's lock wins over the host unless forced; a forced change drops it, as the disc it protected is
 * gone (the guest's later ALLOW finds nothing to undo). */
static int check_lock(struct scsi_cd *cd, bool force, vt_err *err)
{
	if (cd->locked && !force) {
		if (cd->media_event == EVENT_NONE)
			cd->media_event = EVENT_EJECT_REQUEST;   /* the guest hears that the host wants the disc */
		return vt_fail(err, "the guest has locked the CD tray (a mounted disc?): nothing changed; force it with "
				    "vm cd --force (API: \"force\": true), and the guest's reads of the disc then fail");
	}
	cd->locked = false;
	return 0;
}

int scsi_cd_insert(struct scsi_cd *cd, struct scsi_cd_medium *m, bool force, vt_err *err)
{
	if (m->fd < 0 || m->blocks == 0)
		return vt_fail(err, "inserting a CD: no open image");
	if (check_lock(cd, force, err) < 0)
		return -1;
	scsi_cd_medium_close(&cd->medium);
	cd->medium = *m;
	m->fd = -1;
	cd->tray_open = false;
	cd->unit_attention = true;
	cd->media_event = EVENT_NEW_MEDIA;
	return 0;
}

int scsi_cd_eject(struct scsi_cd *cd, bool force, vt_err *err)
{
	if (check_lock(cd, force, err) < 0)
		return -1;
	bool had = scsi_cd_has_medium(cd);
	scsi_cd_medium_close(&cd->medium);
	cd->tray_open = false;
	if (had) {
		cd->unit_attention = true;
		cd->media_event = EVENT_MEDIA_REMOVAL;
	}
	return 0;
}

void scsi_cd_get_state(const struct scsi_cd *cd, struct scsi_cd_state *st)
{
	*st = (struct scsi_cd_state){
		.has_medium = scsi_cd_has_medium(cd), .tray_open = cd->tray_open, .locked = cd->locked,
		.unit_attention = cd->unit_attention, .media_event = cd->media_event,
	};
}

int scsi_cd_set_state(struct scsi_cd *cd, const struct scsi_cd_state *st, vt_err *err)
{
	if (st->has_medium > 1 || st->tray_open > 1 || st->locked > 1 || st->unit_attention > 1)
		return vt_fail(err, "CD drive state: a flag is neither 0 nor 1");
	if (st->media_event > EVENT_MEDIA_REMOVAL)
		return vt_fail(err, "CD drive state: unknown media event code %u", st->media_event);
	if (st->reserved[0] || st->reserved[1] || st->reserved[2])
		return vt_fail(err, "CD drive state: reserved bytes are not zero");
	if (st->has_medium != scsi_cd_has_medium(cd))
		return vt_fail(err, "CD drive state: the saved drive %s, this one %s",
			       st->has_medium ? "had a disc" : "was empty", scsi_cd_has_medium(cd) ? "has one" : "is empty");
	cd->tray_open = st->tray_open;
	cd->locked = st->locked;
	cd->unit_attention = st->unit_attention;
	cd->media_event = st->media_event;
	return 0;
}

/* ---- One command ---- */

/* A command's outcome: GOOD (0), or the sense key and additional sense code of a CHECK CONDITION. */
typedef uint32_t sense_code;
#define SENSE(key, asc, ascq) ((sense_code)(key) << 16 | (sense_code)(asc) << 8 | (sense_code)(ascq))
#define GOOD                    0
#define INVALID_OPCODE          SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00)
#define LBA_OUT_OF_RANGE        SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00)
#define INVALID_FIELD           SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00)
#define LUN_NOT_SUPPORTED       SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00)
#define SAVING_NOT_SUPPORTED    SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x39, 0x00)
#define REMOVAL_PREVENTED       SENSE(SCSI_SENSE_ILLEGAL_REQUEST, 0x53, 0x02)
#define MEDIUM_MAY_HAVE_CHANGED SENSE(SCSI_SENSE_UNIT_ATTENTION, 0x28, 0x00)
#define UNRECOVERED_READ        SENSE(SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00)
#define NO_MEDIUM_TRAY_CLOSED   SENSE(SCSI_SENSE_NOT_READY, 0x3A, 0x01)
#define NO_MEDIUM_TRAY_OPEN     SENSE(SCSI_SENSE_NOT_READY, 0x3A, 0x02)

struct cmd {
	struct scsi_cd *cd;
	uint64_t lun;
	const uint8_t *cdb;                    /* CDB_MAX bytes, zero past what the guest sent */
	const struct iovec *datain;
	unsigned n;
	uint64_t room;                         /* bytes the data-in buffer really has */
	uint64_t *data_len;                    /* the result's */
};

static uint16_t be16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)be16_at(p) << 16 | be16_at(p + 2);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16)), put_be16(p + 2, (uint16_t)v);
}

/* Fixed-format sense data: a CHECK CONDITION's, or REQUEST SENSE's reply. */
static void fixed_sense(uint8_t out[SCSI_CD_SENSE_LEN], sense_code s)
{
	memset(out, 0, SCSI_CD_SENSE_LEN);
	out[0] = 0x70;                         /* current error, fixed format */
	out[2] = (uint8_t)(s >> 16);
	out[7] = SCSI_CD_SENSE_LEN - 8;        /* additional sense length */
	out[12] = (uint8_t)(s >> 8);
	out[13] = (uint8_t)s;
}

/* A reply cut to the CDB's allocation length and to the buffer (SPC). */
static sense_code reply(struct cmd *c, const void *buf, size_t len, uint32_t alloc)
{
	size_t want = (size_t)MIN(MIN((uint64_t)len, (uint64_t)alloc), c->room);
	*c->data_len = iov_from_buf(c->datain, c->n, 0, buf, want);
	return GOOD;
}

static sense_code no_medium(const struct scsi_cd *cd)
{
	return cd->tray_open ? NO_MEDIUM_TRAY_OPEN : NO_MEDIUM_TRAY_CLOSED;
}

/* -- INQUIRY -- */

static size_t standard_inquiry(uint8_t *b)
{
	b[0] = 0x05;                           /* CD/DVD device */
	b[1] = 0x80;                           /* removable medium */
	b[2] = 0x05;                           /* SPC-3 */
	b[3] = 0x02;                           /* response data format 2 */
	b[4] = 36 - 5;                         /* additional length */
	memcpy(b + 8, VENDOR, 8);
	memcpy(b + 16, PRODUCT, 16);
	memcpy(b + 32, REVISION, 4);
	return 36;
}

/* A vital product data page; 0 when the page is not supported. */
static size_t vpd_page(uint8_t page, uint8_t *b)
{
	static const uint8_t supported[] = { 0x00, 0x80, 0x83 };
	static const char t10_id[] = VENDOR SERIAL;   /* T10 vendor ID: 8 bytes of vendor, then anything */
	size_t len;
	switch (page) {
	case 0x00:
		len = sizeof(supported);
		memcpy(b + 4, supported, len);
		break;
	case 0x80:
		len = strlen(SERIAL);
		memcpy(b + 4, SERIAL, len);
		break;
	case 0x83:
		b[4] = 0x02;                   /* code set ASCII */
		b[5] = 0x01;                   /* of the logical unit, type T10 vendor ID */
		b[7] = (uint8_t)strlen(t10_id);
		memcpy(b + 8, t10_id, b[7]);
		len = 4 + (size_t)b[7];
		break;
	default:
		return 0;
	}
	b[0] = 0x05;
	b[1] = page;
	put_be16(b + 2, (uint16_t)len);
	return 4 + len;
}

/* Another LUN gets the same data, marked "no device can be here" (peripheral qualifier 3, type 0x1F). */
static sense_code cmd_inquiry(struct cmd *c)
{
	const uint8_t *cdb = c->cdb;
	bool evpd = cdb[1] & 0x01;
	if ((cdb[1] & 0x02) || (!evpd && cdb[2]))      /* CmdDt (obsolete); a page without EVPD */
		return INVALID_FIELD;
	uint8_t b[64] = { 0 };
	size_t len = evpd ? vpd_page(cdb[2], b) : standard_inquiry(b);
	if (!len)
		return INVALID_FIELD;
	if (c->lun) {
		b[0] = 0x7F;
		if (!evpd)
			b[1] = 0;
	}
	return reply(c, b, len, be16_at(cdb + 3));
}

/* -- REPORT LUNS, REQUEST SENSE -- */

static sense_code cmd_report_luns(struct cmd *c)
{
	uint8_t select = c->cdb[2];
	uint32_t alloc = be32_at(c->cdb + 6);
	if (alloc < 16 || select > 0x02)
		return INVALID_FIELD;
	uint8_t b[16] = { 0 };                 /* the header, then LUN 0: all zero */
	if (select == 0x01)                    /* well-known logical units only: there are none */
		return reply(c, b, 8, alloc);
	put_be32(b, 8);
	return reply(c, b, sizeof(b), alloc);
}

/* No contingent allegiance (the transport returns sense with every CHECK CONDITION): the reply says what
 * the next command would hear, and a unit attention is reported here once. Fixed format whatever DESC
 * asks. */
static sense_code cmd_request_sense(struct cmd *c)
{
	struct scsi_cd *cd = c->cd;
	sense_code s = GOOD;                   /* NO SENSE */
	if (c->lun)
		s = LUN_NOT_SUPPORTED;         /* SPC: GOOD status, the sense in the data */
	else if (cd->unit_attention)
		s = MEDIUM_MAY_HAVE_CHANGED, cd->unit_attention = false;
	else if (!readable(cd))
		s = no_medium(cd);
	uint8_t b[SCSI_CD_SENSE_LEN];
	fixed_sense(b, s);
	return reply(c, b, sizeof(b), c->cdb[4]);
}

/* -- Reading -- */

static sense_code cmd_test_unit_ready(struct cmd *c)
{
	(void)c;                               /* the medium check ran before */
	return GOOD;
}

static sense_code cmd_read_capacity(struct cmd *c)
{
	uint8_t b[8];
	put_be32(b, (uint32_t)MIN(c->cd->medium.blocks - 1, UINT32_MAX));   /* the last LBA */
	put_be32(b + 4, SCSI_CD_BLOCK);
	return reply(c, b, sizeof(b), sizeof(b));
}

/* preadv straight into the guest's buffers, a piece of the chain at a time, through EINTR and short reads.
 * Returns the bytes read: fewer than len on an error or at the image's end. */
static uint64_t read_into(int fd, const struct iovec *iov, unsigned n, uint64_t off, uint64_t len)
{
	struct iovec part[READ_SEGS];
	uint64_t done = 0;
	while (done < len) {
		unsigned k = iov_slice(iov, n, done, len - done, part, READ_SEGS);
		if (k == 0)
			break;
		ssize_t r = preadv(fd, part, (int)k, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (uint64_t)r;
	}
	return done;
}

static sense_code read_blocks(struct cmd *c, uint32_t lba, uint32_t count)
{
	const struct scsi_cd_medium *m = &c->cd->medium;
	if ((uint64_t)lba + count > m->blocks)
		return LBA_OUT_OF_RANGE;
	uint64_t bytes = (uint64_t)count * SCSI_CD_BLOCK;
	if (bytes > SCSI_CD_MAX_TRANSFER || bytes > c->room)
		return INVALID_FIELD;
	*c->data_len = read_into(m->fd, c->datain, c->n, (uint64_t)lba * SCSI_CD_BLOCK, bytes);
	return *c->data_len < bytes ? UNRECOVERED_READ : GOOD;   /* the image shrank, or the host's disk failed */
}

static sense_code cmd_read_10(struct cmd *c)
{
	return read_blocks(c, be32_at(c->cdb + 2), be16_at(c->cdb + 7));
}

static sense_code cmd_read_12(struct cmd *c)
{
	return read_blocks(c, be32_at(c->cdb + 2), be32_at(c->cdb + 6));
}

/* -- READ TOC/PMA/ATIP: one data track, one session -- */

/* An address as an LBA, or as [0, minute, second, frame] after the 2-second pre-gap at 75 frames a second
 * (held at 255:59:74, the last MSF can say). */
static void put_address(uint8_t *p, uint64_t lba, bool msf)
{
	if (!msf) {
		put_be32(p, (uint32_t)MIN(lba, UINT32_MAX));
		return;
	}
	uint64_t frames = MIN(lba + 150, 255ull * 60 * 75 + 59 * 75 + 74);
	p[0] = 0;
	p[1] = (uint8_t)(frames / (60 * 75));
	p[2] = (uint8_t)(frames / 75 % 60);
	p[3] = (uint8_t)(frames % 75);
}

static size_t put_track(uint8_t *p, uint8_t track, uint64_t lba, bool msf)
{
	memset(p, 0, 8);
	p[1] = TRACK_CONTROL;
	p[2] = track;
	put_address(p + 4, lba, msf);
	return 8;
}

/* Format 0: from the starting track on (0 means the first), then the lead-out; 0 for a track not there. */
static size_t toc_tracks(const struct scsi_cd *cd, uint8_t start, uint8_t *b, bool msf)
{
	if (start > 1 && start != LEAD_OUT)
		return 0;
	size_t len = 4;
	if (start != LEAD_OUT)
		len += put_track(b + len, 1, 0, msf);
	len += put_track(b + len, LEAD_OUT, cd->medium.blocks, msf);
	b[2] = 1, b[3] = 1;                    /* first and last track */
	return len;
}

/* Format 1: the first track of the last (only) session. */
static size_t toc_session(uint8_t *b, bool msf)
{
	b[2] = 1, b[3] = 1;                    /* first and last session */
	return 4 + put_track(b + 4, 1, 0, msf);
}

static sense_code cmd_read_toc(struct cmd *c)
{
	const uint8_t *cdb = c->cdb;
	bool msf = cdb[1] & 0x02;
	uint8_t format = cdb[2] & 0x0F;
	if (!format)
		format = cdb[9] >> 6;          /* where older drivers put it (SFF-8020) */
	uint8_t b[4 + 2 * 8] = { 0 };
	size_t len = format == 0 ? toc_tracks(c->cd, cdb[6], b, msf) : format == 1 ? toc_session(b, msf) : 0;
	if (!len)
		return INVALID_FIELD;
	put_be16(b, (uint16_t)(len - 2));
	return reply(c, b, len, be16_at(cdb + 7));
}

/* -- READ DISC INFORMATION: a complete disc, one session, one track -- */

static sense_code cmd_read_disc_info(struct cmd *c)
{
	if (c->cdb[1] & 0x07)                  /* only the standard disc information */
		return INVALID_FIELD;
	uint8_t b[34] = { 0 };
	put_be16(b, sizeof(b) - 2);
	b[2] = 0x0E;                           /* last session complete, disc finalized */
	b[3] = 1;                              /* first track */
	b[4] = 1;                              /* sessions */
	b[5] = 1, b[6] = 1;                    /* first and last track of the last session */
	put_be32(b + 16, UINT32_MAX);          /* no lead-in or lead-out left to write */
	put_be32(b + 20, UINT32_MAX);
	return reply(c, b, sizeof(b), be16_at(c->cdb + 7));
}

/* -- GET CONFIGURATION: Profile List, Core and Removable Medium, all persistent -- */

static uint16_t current_profile(const struct scsi_cd *cd)
{
	if (!readable(cd))
		return 0;
	return cd->medium.blocks * SCSI_CD_BLOCK <= CD_MAX_BYTES ? PROFILE_CD_ROM : PROFILE_DVD_ROM;
}

static size_t feature_profiles(uint8_t *p, uint16_t current)
{
	static const uint16_t profiles[] = { PROFILE_DVD_ROM, PROFILE_CD_ROM };
	p[2] = 0x03;                           /* version 0, persistent, current */
	p[3] = 4 * ARRAY_SIZE(profiles);
	for (size_t i = 0; i < ARRAY_SIZE(profiles); i++) {
		put_be16(p + 4 + 4 * i, profiles[i]);
		p[4 + 4 * i + 2] = profiles[i] == current;
	}
	return 4 + p[3];
}

static size_t feature_core(uint8_t *p, uint16_t current)
{
	(void)current;
	p[2] = 0x0B;                           /* version 2, persistent, current */
	p[3] = 8;                              /* physical interface 0 (unspecified), no DBE, no INQ2 */
	return 4 + p[3];
}

static size_t feature_removable(uint8_t *p, uint16_t current)
{
	(void)current;
	p[2] = 0x03;                           /* version 0, persistent, current */
	p[3] = 4;
	p[4] = 0x29;                           /* tray, eject, lock */
	return 4 + p[3];
}

static sense_code cmd_get_configuration(struct cmd *c)
{
	static const struct {
		uint16_t code;
		size_t (*put)(uint8_t *p, uint16_t current);
	} features[] = {
		{ 0x0000, feature_profiles }, { 0x0001, feature_core }, { 0x0003, feature_removable },
	};
	uint8_t rt = c->cdb[1] & 0x03;
	uint16_t start = be16_at(c->cdb + 2), current = current_profile(c->cd);
	if (rt == 3)
		return INVALID_FIELD;
	uint8_t b[8 + 12 + 12 + 8] = { 0 };
	size_t len = 8;
	for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
		/* All three are always current, so RT 1 (current ones) lists what RT 0 (all) does. */
		if (features[i].code < start || (rt == 2 && features[i].code != start))
			continue;
		put_be16(b + len, features[i].code);
		len += features[i].put(b + len, current);
	}
	put_be32(b, (uint32_t)(len - 4));
	put_be16(b + 6, current);
	return reply(c, b, len, be16_at(c->cdb + 7));
}

/* -- GET EVENT STATUS NOTIFICATION: the media class, polled -- */

static sense_code cmd_get_event_status(struct cmd *c)
{
	struct scsi_cd *cd = c->cd;
	uint16_t alloc = be16_at(c->cdb + 7);
	if (!(c->cdb[1] & 0x01))               /* asynchronous notification is not supported */
		return INVALID_FIELD;
	uint8_t b[8] = { 0 };
	b[3] = 0x10;                           /* supported classes: media */
	if (!(c->cdb[4] & 0x10)) {
		put_be16(b, 2);
		b[2] = 0x80;                   /* no event available in the classes asked for */
		return reply(c, b, 4, alloc);
	}
	put_be16(b, 6);
	b[2] = 0x04;                           /* media class */
	b[4] = cd->media_event & 0x0F;
	b[5] = (cd->tray_open ? 0x01 : 0) | (scsi_cd_has_medium(cd) ? 0x02 : 0);
	reply(c, b, sizeof(b), alloc);
	if (*c->data_len == sizeof(b))         /* reported once the guest has had all of it */
		cd->media_event = EVENT_NONE;
	return GOOD;
}

/* -- MODE SENSE: the capabilities page (0x2A) only -- */

static size_t capabilities_page(const struct scsi_cd *cd, uint8_t *p, bool changeable)
{
	memset(p, 0, 20);
	p[0] = 0x2A;
	p[1] = 20 - 2;
	if (changeable)                        /* nothing is: there is no MODE SELECT */
		return 20;
	p[2] = 0x08;                           /* reads DVD-ROM (and CD-ROM) */
	p[6] = 0x29 | (cd->locked ? 0x02 : 0); /* tray, eject, lock; lock state */
	put_be16(p + 8, READ_SPEED_KBS);       /* maximum read speed */
	put_be16(p + 14, READ_SPEED_KBS);      /* current read speed */
	return 20;
}

/* The pages asked for into b after a header of hdr bytes; *len is the whole reply. */
static sense_code mode_pages(const struct cmd *c, uint8_t *b, size_t hdr, size_t *len)
{
	uint8_t pc = c->cdb[2] >> 6, page = c->cdb[2] & 0x3F, subpage = c->cdb[3];
	if (pc == 3)                           /* saved values */
		return SAVING_NOT_SUPPORTED;
	if ((page != 0x2A && page != 0x3F) || (subpage != 0x00 && subpage != 0xFF))
		return INVALID_FIELD;
	*len = hdr + capabilities_page(c->cd, b + hdr, pc == 1);
	return GOOD;
}

static sense_code cmd_mode_sense_6(struct cmd *c)
{
	uint8_t b[4 + 20] = { 0 };
	size_t len;
	sense_code s = mode_pages(c, b, 4, &len);
	if (s)
		return s;
	b[0] = (uint8_t)(len - 1);             /* mode data length; no block descriptors */
	return reply(c, b, len, c->cdb[4]);
}

static sense_code cmd_mode_sense_10(struct cmd *c)
{
	uint8_t b[8 + 20] = { 0 };
	size_t len;
	sense_code s = mode_pages(c, b, 8, &len);
	if (s)
		return s;
	put_be16(b, (uint16_t)(len - 2));
	return reply(c, b, len, be16_at(c->cdb + 7));
}

/* -- The tray -- */

static sense_code cmd_prevent_allow(struct cmd *c)
{
	c->cd->locked = c->cdb[4] & 0x01;
	return GOOD;
}

/* LoEj with Start loads (closes the tray), without Start ejects (opens it); no LoEj, or a power condition,
 * changes nothing here. */
static sense_code cmd_start_stop_unit(struct cmd *c)
{
	struct scsi_cd *cd = c->cd;
	uint8_t b4 = c->cdb[4];
	bool loej = b4 & 0x02, start = b4 & 0x01;
	if ((b4 >> 4) || !loej)
		return GOOD;
	if (!start) {
		if (cd->locked)
			return REMOVAL_PREVENTED;
		if (!cd->tray_open && scsi_cd_has_medium(cd))
			cd->media_event = EVENT_MEDIA_REMOVAL;
		cd->tray_open = true;
		return GOOD;
	}
	if (cd->tray_open && scsi_cd_has_medium(cd)) {
		cd->media_event = EVENT_NEW_MEDIA;
		cd->unit_attention = true;
	}
	cd->tray_open = false;
	return GOOD;
}

/* SEEK, SET CD SPEED, SYNCHRONIZE CACHE: nothing to do for a read-only image. */
static sense_code cmd_nothing(struct cmd *c)
{
	(void)c;
	return GOOD;
}

/* ---- Dispatch ---- */

enum {
	ANY_LUN = 1 << 0,      /* answered for a LUN without a device too */
	NO_UA = 1 << 1,        /* runs without reporting a pending unit attention (SPC) */
	MEDIUM = 1 << 2,       /* needs a readable disc */
};

static const struct command {
	uint8_t op;
	uint8_t flags;
	sense_code (*run)(struct cmd *c);
} commands[] = {
	{ OP_TEST_UNIT_READY, MEDIUM, cmd_test_unit_ready },
	{ OP_REQUEST_SENSE, ANY_LUN | NO_UA, cmd_request_sense },
	{ OP_INQUIRY, ANY_LUN | NO_UA, cmd_inquiry },
	{ OP_MODE_SENSE_6, 0, cmd_mode_sense_6 },
	{ OP_START_STOP_UNIT, 0, cmd_start_stop_unit },
	{ OP_PREVENT_ALLOW, 0, cmd_prevent_allow },
	{ OP_READ_CAPACITY, MEDIUM, cmd_read_capacity },
	{ OP_READ_10, MEDIUM, cmd_read_10 },
	{ OP_SEEK_10, 0, cmd_nothing },
	{ OP_SYNC_CACHE, 0, cmd_nothing },
	{ OP_READ_TOC, MEDIUM, cmd_read_toc },
	{ OP_GET_CONFIGURATION, 0, cmd_get_configuration },
	{ OP_GET_EVENT_STATUS, NO_UA, cmd_get_event_status },
	{ OP_READ_DISC_INFO, MEDIUM, cmd_read_disc_info },
	{ OP_MODE_SENSE_10, 0, cmd_mode_sense_10 },
	{ OP_REPORT_LUNS, ANY_LUN | NO_UA, cmd_report_luns },
	{ OP_READ_12, MEDIUM, cmd_read_12 },
	{ OP_SET_CD_SPEED, 0, cmd_nothing },
};

static const struct command *find_command(uint8_t op)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i].op == op)
			return &commands[i];
	return NULL;
}

/* What the checks before the command itself say: the LUN, a pending unit attention, the opcode, the disc. */
static sense_code precheck(struct scsi_cd *cd, uint64_t lun, const struct command *cmd)
{
	if (lun)
		return cmd && (cmd->flags & ANY_LUN) ? GOOD : LUN_NOT_SUPPORTED;
	if (cd->unit_attention && !(cmd && (cmd->flags & NO_UA))) {
		cd->unit_attention = false;    /* reported once, then cleared */
		return MEDIUM_MAY_HAVE_CHANGED;
	}
	if (!cmd)
		return INVALID_OPCODE;
	if ((cmd->flags & MEDIUM) && !readable(cd))
		return no_medium(cd);
	return GOOD;
}

void scsi_cd_exec(struct scsi_cd *cd, uint64_t lun, const uint8_t *cdb, unsigned cdb_len, const struct iovec *datain,
		  unsigned n, uint64_t datain_len, struct scsi_cd_result *res)
{
	*res = (struct scsi_cd_result){ .status = SCSI_STATUS_GOOD };
	uint8_t padded[CDB_MAX] = { 0 };       /* a short CDB reads as zeros past its end */
	memcpy(padded, cdb, MIN(cdb_len, CDB_MAX));
	const struct command *cmd = cdb_len ? find_command(padded[0]) : NULL;
	sense_code s = precheck(cd, lun, cmd);
	if (s == GOOD) {
		struct cmd c = {
			.cd = cd, .lun = lun, .cdb = padded, .datain = datain, .n = n,
			.room = MIN(datain_len, iov_total(datain, n)), .data_len = &res->data_len,
		};
		s = cmd->run(&c);
	}
	if (s == GOOD)
		return;
	res->status = SCSI_STATUS_CHECK_CONDITION;
	fixed_sense(res->sense, s);
	res->sense_len = SCSI_CD_SENSE_LEN;
}
