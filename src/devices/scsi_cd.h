/* An MMC CD-ROM drive (SCSI logical unit 0 of target 0) over a read-only ISO image: the commands Linux's sr
 * and cdrom drivers send, a tray that opens and closes, a medium the host swaps while the guest runs, and
 * the sense data that tell the guest so ("no medium", "medium may have changed").
 *
 * The command decoder is a pure function of the drive's state and the CDB: every CDB byte is guest input,
 * every length and address is checked, a command that does not fit gets CHECK CONDITION with ILLEGAL
 * REQUEST, never a short or out-of-bounds access. The transport (devices/virtio/scsi.c) hands over the CDB
 * and the guest's data-in buffers.
 *
 * Threading: none inside. The transport serializes scsi_cd_exec and the host's insert/eject (its lock). */
#ifndef VIRTUS_SCSI_CD_H
#define VIRTUS_SCSI_CD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/err.h"

#define SCSI_CD_BLOCK        2048u         /* bytes per logical block of a CD/DVD */
#define SCSI_CD_SENSE_LEN    18u           /* fixed-format sense data */
#define SCSI_CD_MAX_TRANSFER (1u << 20)    /* bytes one READ may ask for (what the transport advertises) */

/* SCSI status codes (SAM). */
#define SCSI_STATUS_GOOD            0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02

/* Sense keys (SPC). */
#define SCSI_SENSE_NO_SENSE        0x0
#define SCSI_SENSE_NOT_READY       0x2
#define SCSI_SENSE_MEDIUM_ERROR    0x3
#define SCSI_SENSE_ILLEGAL_REQUEST 0x5
#define SCSI_SENSE_UNIT_ATTENTION  0x6

/* A disc image opened by the host, not yet in the drive. */
struct scsi_cd_medium {
	int fd;
	uint64_t blocks;       /* whole 2048-byte blocks */
};

/* Open an ISO image read-only: a regular file or block device of at least one block. On failure the error
 * names the path and the reason. */
int scsi_cd_medium_open(const char *path, struct scsi_cd_medium *out, vt_err *err);
void scsi_cd_medium_close(struct scsi_cd_medium *m);   /* one whose fd is -1 (failed, or taken) too */

struct scsi_cd;

/* An empty drive, tray closed. */
int scsi_cd_create(struct scsi_cd **out, vt_err *err);
/* Closes the medium's fd too. NULL is fine. */
void scsi_cd_destroy(struct scsi_cd *cd);

/* The host puts a disc in (the drive takes the fd; a disc already there is swapped out and closed) and
 * closes the tray; the guest sees "medium may have changed" and a new-media event. Fails (changes nothing,
 * medium stays the caller's) when the guest has locked the tray (PREVENT ALLOW MEDIUM REMOVAL) and force is
 * false; the guest is then sent an eject-request media event (Linux passes it on to user space). */
int scsi_cd_insert(struct scsi_cd *cd, struct scsi_cd_medium *m, bool force, vt_err *err);
/* The host takes the disc out (closing its fd); the tray ends closed and empty. Same lock rule. Ejecting an
 * empty drive succeeds. */
int scsi_cd_eject(struct scsi_cd *cd, bool force, vt_err *err);

bool scsi_cd_has_medium(const struct scsi_cd *cd);
bool scsi_cd_locked(const struct scsi_cd *cd);       /* the guest prevents medium removal */
bool scsi_cd_tray_open(const struct scsi_cd *cd);    /* the guest opened it (START STOP UNIT, LoEj) */

/* The outcome of one command. */
struct scsi_cd_result {
	uint8_t status;                        /* SCSI_STATUS_* */
	uint8_t sense[SCSI_CD_SENSE_LEN];      /* fixed format (response code 0x70), valid for CHECK CONDITION */
	uint32_t sense_len;                    /* 0 or SCSI_CD_SENSE_LEN */
	uint64_t data_len;                     /* bytes written at the start of the data-in buffer */
};

/* Run one command addressed to `lun` (0 is the drive; another LUN answers INQUIRY with "no device here" and
 * REPORT LUNS with the list, and refuses the rest). cdb[0..cdb_len) is the guest's CDB (up to 32 bytes, the
 * unused tail zero); datain[0..n) is the guest's data-in buffer of datain_len bytes. A reply longer than
 * the buffer, or than the CDB's allocation length, is cut (SPC); a READ whose data does not fit is refused
 * with ILLEGAL REQUEST. */
void scsi_cd_exec(struct scsi_cd *cd, uint64_t lun, const uint8_t *cdb, unsigned cdb_len, const struct iovec *datain,
		  unsigned n, uint64_t datain_len, struct scsi_cd_result *res);

/* What a snapshot keeps (the medium's path is the VM config's: the transport reopens it). */
struct scsi_cd_state {
	uint8_t has_medium;
	uint8_t tray_open;
	uint8_t locked;
	uint8_t unit_attention;                /* "medium may have changed" still to report */
	uint8_t media_event;                   /* GET EVENT STATUS NOTIFICATION media event code still to report */
	uint8_t reserved[3];
};
void scsi_cd_get_state(const struct scsi_cd *cd, struct scsi_cd_state *st);
/* Into a drive just built (with its medium already inserted if st->has_medium); -1 with a message when the
 * state is not one a drive can be in (a medium the drive lacks, an unknown event code). */
int scsi_cd_set_state(struct scsi_cd *cd, const struct scsi_cd_state *st, vt_err *err);

#endif
