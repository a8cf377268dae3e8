/* virtio-blk request parsing: lengths computed from the chain itself, every field checked before use. */
#include <endian.h>
#include <string.h>

#include "devices/virtio/blk_req.h"
#include "lib/iov.h"
#include "lib/util.h"

static uint8_t *iov_byte(const struct iovec *iov, unsigned n, uint64_t off)
{
	struct iovec one;
	return iov_slice(iov, n, off, 1, &one, 1) ? one.iov_base : NULL;
}

/* A data buffer for IN / OUT: whole sectors, at least one. */
static enum blk_req_verdict take_data(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
				      struct blk_req_parsed *out)
{
	if (len == 0 || len % 512 || len >= UINT32_MAX)   /* the used length (data + status) is 32-bit */
		return BLK_REQ_IOERR;
	out->data_len = len;
	out->ndata = iov_slice(iov, n, skip, len, out->data, ARRAY_SIZE(out->data));
	return BLK_REQ_OK;
}

static enum blk_req_verdict parse_segments(const struct iovec *iov, unsigned n, uint64_t len, bool discard,
					   const struct blk_req_limits *lim, struct blk_req_parsed *out)
{
	uint32_t max_seg = MIN(discard ? lim->max_discard_seg : lim->max_write_zeroes_seg, BLK_REQ_MAX_SEGS);
	uint32_t max_sectors = discard ? lim->max_discard_sectors : lim->max_write_zeroes_sectors;
	if (max_seg == 0)
		return BLK_REQ_UNSUPP;             /* the feature was not offered */
	if (len == 0 || len % BLK_REQ_SEG_SIZE || len / BLK_REQ_SEG_SIZE > max_seg)
		return BLK_REQ_IOERR;
	out->nsegs = (unsigned)(len / BLK_REQ_SEG_SIZE);
	for (unsigned i = 0; i < out->nsegs; i++) {
		uint8_t raw[BLK_REQ_SEG_SIZE];
		iov_to_buf(iov, n, BLK_REQ_HDR_SIZE + (uint64_t)i * BLK_REQ_SEG_SIZE, raw, sizeof(raw));
		struct blk_req_seg *s = &out->segs[i];
		uint64_t sector; uint32_t num, flags;
		memcpy(&sector, raw, 8), memcpy(&num, raw + 8, 4), memcpy(&flags, raw + 12, 4);
		*s = (struct blk_req_seg){ le64toh(sector), le32toh(num), le32toh(flags) };
		/* Unknown flags, and unmap on a discard, are UNSUPP (virtio 1.x 5.2.6.2). */
		if (s->flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			return BLK_REQ_UNSUPP;
		if (discard && s->flags)
			return BLK_REQ_UNSUPP;
		if (s->num_sectors > max_sectors)
			return BLK_REQ_IOERR;
	}
	return BLK_REQ_OK;
}

static enum blk_req_verdict parse_body(const struct virtq_chain *c, uint64_t rlen, uint64_t wlen,
				       const struct blk_req_limits *lim, struct blk_req_parsed *out)
{
	const struct iovec *rd = c->iov, *wr = c->iov + c->nread;
	uint64_t extra_r = rlen - BLK_REQ_HDR_SIZE, extra_w = wlen - 1;
	switch (out->type) {
	case VIRTIO_BLK_T_IN:
		return extra_r ? BLK_REQ_IOERR : take_data(wr, c->nwrite, 0, extra_w, out);
	case VIRTIO_BLK_T_OUT:
		return extra_w ? BLK_REQ_IOERR : take_data(rd, c->nread, BLK_REQ_HDR_SIZE, extra_r, out);
	case VIRTIO_BLK_T_FLUSH:
		return extra_r || extra_w ? BLK_REQ_IOERR : BLK_REQ_OK;
	case VIRTIO_BLK_T_GET_ID:
		if (extra_r || extra_w < VIRTIO_BLK_ID_BYTES)
			return BLK_REQ_IOERR;
		out->data_len = VIRTIO_BLK_ID_BYTES;
		out->ndata = iov_slice(wr, c->nwrite, 0, VIRTIO_BLK_ID_BYTES, out->data, ARRAY_SIZE(out->data));
		return BLK_REQ_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (extra_w)
			return BLK_REQ_IOERR;
		return parse_segments(rd, c->nread, extra_r, out->type == VIRTIO_BLK_T_DISCARD, lim, out);
	}
	return BLK_REQ_UNSUPP;
}

enum blk_req_verdict blk_req_parse(const struct virtq_chain *c, const struct blk_req_limits *lim,
				   struct blk_req_parsed *out)
{
	out->status = NULL;
	out->ndata = out->nsegs = 0;
	out->data_len = 0;
	out->type = UINT32_MAX;
	if (c->nread > VIRTQ_MAX_SEGS || c->nwrite > VIRTQ_MAX_SEGS - c->nread)
		return BLK_REQ_NO_STATUS;
	uint64_t rlen = iov_total(c->iov, c->nread), wlen = iov_total(c->iov + c->nread, c->nwrite);
	if (wlen == 0)
		return BLK_REQ_NO_STATUS;
	out->status = iov_byte(c->iov + c->nread, c->nwrite, wlen - 1);
	if (rlen < BLK_REQ_HDR_SIZE)
		return BLK_REQ_IOERR;
	uint8_t hdr[BLK_REQ_HDR_SIZE];
	iov_to_buf(c->iov, c->nread, 0, hdr, sizeof(hdr));
	uint32_t type; uint64_t sector;
	memcpy(&type, hdr, 4), memcpy(&sector, hdr + 8, 8);
	out->type = le32toh(type);
	out->sector = le64toh(sector);
	return parse_body(c, rlen, wlen, lim, out);
}
