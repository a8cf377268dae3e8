/* virtio-blk request parsing (virtio 1.x 5.2.6): one descriptor chain -> a checked request the device can
 * hand to the block backend. The chain is guest-controlled: every length is checked here, and framing is
 * not assumed (the header, the data and the segment list may be split across descriptors anywhere).
 *
 * Layout: readable {le32 type, le32 reserved, le64 sector} header, then for OUT the data and for DISCARD /
 * WRITE_ZEROES the segment list; writable: for IN / GET_ID the data, then the 1-byte status, always the
 * last writable byte. */
#ifndef VIRTUS_VIRTIO_BLK_REQ_H
#define VIRTUS_VIRTIO_BLK_REQ_H

#include <linux/virtio_blk.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/queue.h"

#define BLK_REQ_HDR_SIZE   16
#define BLK_REQ_SEG_SIZE   16      /* {le64 sector, le32 num_sectors, le32 flags} */
#define BLK_REQ_MAX_SEGS   256     /* upper bound for max_discard_seg / max_write_zeroes_seg */

/* What the device advertises in its config space (and so what the guest may send). */
struct blk_req_limits {
	uint32_t max_discard_seg, max_discard_sectors;
	uint32_t max_write_zeroes_seg, max_write_zeroes_sectors;
};

struct blk_req_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct blk_req_parsed {
	uint32_t type;                      /* VIRTIO_BLK_T_* */
	uint64_t sector;
	uint8_t *status;                    /* the status byte in guest memory; NULL if the chain has none */
	unsigned ndata;                     /* IN / OUT / GET_ID: the data segments */
	uint64_t data_len;
	struct iovec data[VIRTQ_MAX_SEGS];
	unsigned nsegs;                     /* DISCARD / WRITE_ZEROES */
	struct blk_req_seg segs[BLK_REQ_MAX_SEGS];
};

enum blk_req_verdict {
	BLK_REQ_OK,          /* parsed: submit it */
	BLK_REQ_IOERR,       /* malformed: reply VIRTIO_BLK_S_IOERR */
	BLK_REQ_UNSUPP,      /* unknown type or flags: reply VIRTIO_BLK_S_UNSUPP */
	BLK_REQ_NO_STATUS,   /* not even a status byte: return the chain with nothing written */
};

/* Parse a chain. On anything but NO_STATUS, out->status is valid and the device writes the reply there. */
enum blk_req_verdict blk_req_parse(const struct virtq_chain *c, const struct blk_req_limits *lim,
				   struct blk_req_parsed *out);

#endif
