/* virtio-blk request execution on a block backend: one heap object per request in flight, holding copies
 * of the data iovecs and segment list (the parsed request is the caller's scratch space). */
#include <stdlib.h>
#include <string.h>

#include "block/vblk.h"
#include "lib/util.h"

struct vblk_io {
	struct blk_req req;           /* first: the backend callback gets this pointer */
	struct blk *disk;
	uint8_t *status;
	uint16_t head;
	uint32_t data_len;            /* IN: bytes the device writes before the status */
	vblk_done_fn *done;
	void *opaque;
	unsigned seg, nsegs;          /* DISCARD / WRITE_ZEROES progress */
	struct blk_req_seg *segs;
	struct iovec iov[];
};

/* Bytes written into the chain: the data of a successful read, plus the status byte. */
static uint32_t used_len(uint32_t type, uint8_t status, uint32_t data_len)
{
	return type == VIRTIO_BLK_T_IN && status == VIRTIO_BLK_S_OK ? data_len + 1 : 1;
}

static void finish(struct vblk_io *io, uint8_t status)
{
	*io->status = status;
	uint32_t used = used_len(io->req.op == BLK_OP_READ ? VIRTIO_BLK_T_IN : UINT32_MAX, status, io->data_len);
	io->done(io->opaque, io->head, used);
	free(io);
}

static void submit_segment(struct vblk_io *io)
{
	const struct blk_req_seg *s = &io->segs[io->seg];
	io->req.sector = s->sector;
	io->req.nsectors = s->num_sectors;
	io->req.unmap = s->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	blk_submit(io->disk, &io->req);
}

static void on_backend_done(struct blk_req *req, enum blk_status st, size_t bytes)
{
	struct vblk_io *io = (struct vblk_io *)req;
	(void)bytes;
	if (st == BLK_S_OK && ++io->seg < io->nsegs) {
		submit_segment(io);
		return;
	}
	finish(io, (uint8_t)st);      /* BLK_S_* are the VIRTIO_BLK_S_* values */
}

/* Copy the serial into the GET_ID buffer, NUL-padded (a 20-byte serial has no terminator). */
static void write_serial(const struct blk *disk, const struct blk_req_parsed *p)
{
	char id[VIRTIO_BLK_ID_BYTES] = { 0 };
	const char *serial = blk_serial(disk);
	memcpy(id, serial, MIN(strlen(serial), sizeof(id)));
	size_t off = 0;
	for (unsigned i = 0; i < p->ndata; i++) {
		memcpy(p->data[i].iov_base, id + off, p->data[i].iov_len);
		off += p->data[i].iov_len;
	}
}

static enum blk_op backend_op(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN: return BLK_OP_READ;
	case VIRTIO_BLK_T_OUT: return BLK_OP_WRITE;
	case VIRTIO_BLK_T_DISCARD: return BLK_OP_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES: return BLK_OP_WRITE_ZEROES;
	default: return BLK_OP_FLUSH;
	}
}

static struct vblk_io *io_alloc(const struct blk_req_parsed *p)
{
	size_t iov_bytes = p->ndata * sizeof(struct iovec), seg_bytes = p->nsegs * sizeof(struct blk_req_seg);
	struct vblk_io *io = calloc(1, sizeof(*io) + iov_bytes + seg_bytes);
	if (!io)
		return NULL;
	memcpy(io->iov, p->data, iov_bytes);
	io->segs = (struct blk_req_seg *)((uint8_t *)io->iov + iov_bytes);
	memcpy(io->segs, p->segs, seg_bytes);
	io->nsegs = p->nsegs;
	return io;
}

/* Requests that finish without the backend: verdicts other than OK, GET_ID, and host out of memory. */
static bool finish_now(const struct blk_req_parsed *p, uint8_t status, uint32_t *used)
{
	*p->status = status;
	*used = used_len(p->type, status, 0);
	return false;
}

bool vblk_start(struct blk *disk, const struct blk_req_parsed *p, enum blk_req_verdict v, uint16_t head,
		vblk_done_fn *done, void *opaque, uint32_t *used)
{
	*used = 0;
	switch (v) {
	case BLK_REQ_NO_STATUS: return false;
	case BLK_REQ_IOERR: return finish_now(p, VIRTIO_BLK_S_IOERR, used);
	case BLK_REQ_UNSUPP: return finish_now(p, VIRTIO_BLK_S_UNSUPP, used);
	case BLK_REQ_OK: break;
	}
	if (p->type == VIRTIO_BLK_T_GET_ID) {
		write_serial(disk, p);
		*p->status = VIRTIO_BLK_S_OK;
		*used = VIRTIO_BLK_ID_BYTES + 1;
		return false;
	}
	struct vblk_io *io = io_alloc(p);
	if (!io)
		return finish_now(p, VIRTIO_BLK_S_IOERR, used);
	*io = (struct vblk_io){ .req = { .op = backend_op(p->type), .sector = p->sector, .iov = io->iov,
					 .niov = p->ndata, .done = on_backend_done },
				.disk = disk, .status = p->status, .head = head, .done = done, .opaque = opaque,
				.data_len = (uint32_t)p->data_len, .segs = io->segs, .nsegs = io->nsegs };
	if (io->nsegs)
		submit_segment(io);
	else
		blk_submit(disk, &io->req);
	return true;
}
