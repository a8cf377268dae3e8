/* Synchronous execution of one request: the worker pool runs everything through here, io_uring only the
 * fallocate fallbacks. Ranges were checked at submit time, so nothing here can touch the file beyond its
 * size. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "block/engine.h"
#include "lib/iov.h"
#include "lib/util.h"

static off_t req_offset(const struct blk_req *r)
{
	return (off_t)(r->sector * BLK_SECTOR_SIZE);
}

int64_t blk_transfer_rest(int fd, const struct blk_req *r, uint64_t base, size_t done, bool write, bool zero_eof)
{
	off_t off = (off_t)(base + done);
	size_t skip = done;
	for (unsigned i = 0; i < r->niov; i++) {
		if (skip >= r->iov[i].iov_len) {
			skip -= r->iov[i].iov_len;
			continue;
		}
		char *p = (char *)r->iov[i].iov_base + skip;
		size_t left = r->iov[i].iov_len - skip;
		skip = 0;
		while (left > 0) {
			ssize_t n = write ? pwrite(fd, p, left, off) : pread(fd, p, left, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0 && !(zero_eof && !write))
				return -EIO;     /* the image shrank under us */
			if (n == 0) {
				iov_zero(r->iov, r->niov, (uint64_t)(off - (off_t)base), r->len - (size_t)(off - (off_t)base));
				return (int64_t)r->len;
			}
			p += n, off += n, left -= (size_t)n;
		}
	}
	return (int64_t)r->len;
}

static int64_t transfer(int fd, const struct blk_req *r, bool write)
{
	ssize_t n;
	do {
		n = write ? pwritev(fd, r->iov, (int)r->niov, req_offset(r))
			  : preadv(fd, r->iov, (int)r->niov, req_offset(r));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n == r->len)
		return n;
	return blk_transfer_rest(fd, r, (uint64_t)req_offset(r), (size_t)n, write, false);
}

static int64_t try_fallocate(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len) == 0 ? 0 : -errno;
}

static bool unsupported(int64_t res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS;
}

static int64_t write_zeroes(struct blk *b, off_t off, off_t len)
{
	while (len > 0) {
		size_t chunk = (size_t)MIN(len, (off_t)BLK_ZERO_BUF);
		ssize_t n = pwrite(b->fd, b->zeroes, chunk, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += n, len -= n;
	}
	return 0;
}

int blk_fallocate_mode(const struct blk_req *r)
{
	if (r->op == BLK_OP_DISCARD || r->unmap)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

int64_t blk_fallocate_fallback(struct blk *b, struct blk_req *r, int mode, int64_t res)
{
	off_t off = req_offset(r), len = (off_t)r->nsectors * BLK_SECTOR_SIZE;
	if (res == 0 || !unsupported(res))
		return res;
	if (r->op == BLK_OP_DISCARD)
		return 0;                /* discard is a hint: keeping the data is allowed */
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		res = try_fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
		if (res == 0 || !unsupported(res))
			return res;
	}
	return write_zeroes(b, off, len);
}

static int64_t zero_range(struct blk *b, struct blk_req *r)
{
	int mode = blk_fallocate_mode(r);
	int64_t res = try_fallocate(b->fd, mode, req_offset(r), (off_t)r->nsectors * BLK_SECTOR_SIZE);
	return blk_fallocate_fallback(b, r, mode, res);
}

/* qcow2: the image maps guest offsets to its clusters (block/qcow2.h). */
static int64_t exec_qcow2(struct blk *b, struct blk_req *r)
{
	uint64_t off = r->sector * BLK_SECTOR_SIZE;
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return qcow2_io(b->qcow2, r->op == BLK_OP_WRITE, r->iov, r->niov, off, r->len);
	case BLK_OP_FLUSH:
		return qcow2_flush(b->qcow2);
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		return qcow2_zero(b->qcow2, off, (uint64_t)r->nsectors * BLK_SECTOR_SIZE,
				  r->op == BLK_OP_DISCARD ? QCOW2_DISCARD : r->unmap ? QCOW2_ZERO_UNMAP : QCOW2_ZERO_KEEP);
	}
	return -EINVAL;
}

int64_t blk_exec_sync(struct blk *b, struct blk_req *r)
{
	if (b->qcow2)
		return exec_qcow2(b, r);
	switch (r->op) {
	case BLK_OP_READ:
		return transfer(b->fd, r, false);
	case BLK_OP_WRITE:
		return transfer(b->fd, r, true);
	case BLK_OP_FLUSH:
		return fdatasync(b->fd) == 0 ? 0 : -errno;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		return zero_range(b, r);
	}
	return -EINVAL;
}
