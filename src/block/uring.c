/* io_uring engine. Requests become SQEs as they are submitted and go to the kernel in one io_uring_enter
 * per kick; the kernel signals the registered eventfd when CQEs are posted.
 *
 * Flush ordering: the fsync SQE carries IOSQE_IO_DRAIN, so it starts only after every request submitted
 * before it has completed, and later requests wait for it. That is stronger than virtio asks (only writes
 * *completed* before the flush must be durable) but it makes "flush after these writes" true for any batch,
 * costs nothing when the guest already waits for its writes (Linux does), and needs no bookkeeping here.
 *
 * At most `depth` requests are in the kernel (the CQ ring has twice that, so it never overflows); more wait
 * in a FIFO backlog, which also keeps their order relative to a draining flush.
 *
 * The ring accepts only the four opcodes below (IORING_REGISTER_RESTRICTIONS): io_uring operations run in
 * kernel workers that the VMM's seccomp lists do not see, so without this a compromised device thread could
 * open files or sockets through the ring. A kernel without restrictions (before 5.10) gets the pool. */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "block/engine.h"
#include "lib/util.h"

struct uring {
	struct io_uring ring;
	struct blk_fifo backlog;
	unsigned prepared;        /* SQEs filled, not yet handed to the kernel */
	unsigned active;          /* SQEs prepared or in the kernel */
};

/* Debian's liburing 2.3 declares io_uring_register_restrictions and io_uring_enable_rings but does not
 * export them: the system call directly. */
static int ring_register(struct io_uring *ring, unsigned op, const void *arg, unsigned n)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/* What prep() below submits, and nothing else; no io_uring_register calls once enabled. */
static int restrict_ring(struct io_uring *ring)
{
	struct io_uring_restriction allow[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FALLOCATE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_IO_DRAIN },
	};
	return ring_register(ring, IORING_REGISTER_RESTRICTIONS, allow, ARRAY_SIZE(allow));
}

static int uring_start(struct blk *b, void **state, vt_err *err)
{
	struct uring *u = calloc(1, sizeof(*u));
	if (!u)
		return vt_fail_errno(err, ENOMEM, "io_uring engine");
	struct io_uring_params params = { .flags = IORING_SETUP_R_DISABLED }; /* enabled once restricted */
	int ret = io_uring_queue_init_params(b->depth, &u->ring, &params);
	if (ret < 0) {
		free(u);
		return vt_fail_errno(err, -ret, "io_uring_queue_init (depth %u)", b->depth);
	}
	const char *step = "io_uring_register_eventfd";
	ret = io_uring_register_eventfd(&u->ring, b->efd);
	if (ret == 0 && (ret = restrict_ring(&u->ring)) < 0)
		step = "io_uring_register_restrictions";
	if (ret == 0 && (ret = ring_register(&u->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0)
		step = "io_uring_enable_rings";
	if (ret < 0) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return vt_fail_errno(err, -ret, "%s", step);
	}
	*state = u;
	return 0;
}

static void prep(struct blk *b, struct io_uring_sqe *sqe, struct blk_req *r)
{
	off_t off = (off_t)(r->sector * BLK_SECTOR_SIZE);
	switch (r->op) {
	case BLK_OP_READ:
		if (r->direct)
			io_uring_prep_readv(sqe, r->host_fd, r->iov, r->niov, (off_t)r->host_off);
		else
			io_uring_prep_readv(sqe, b->fd, r->iov, r->niov, off);
		break;
	case BLK_OP_WRITE:
		if (r->direct)
			io_uring_prep_writev(sqe, r->host_fd, r->iov, r->niov, (off_t)r->host_off);
		else
			io_uring_prep_writev(sqe, b->fd, r->iov, r->niov, off);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_IO_DRAIN;
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, b->fd, blk_fallocate_mode(r), off,
					(off_t)r->nsectors * BLK_SECTOR_SIZE);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
}

/* Move a request to the SQ ring; false if the ring is full (at most depth requests are active). */
static bool try_prepare(struct blk *b, struct uring *u, struct blk_req *r)
{
	if (u->active >= b->depth)
		return false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return false;
	prep(b, sqe, r);
	u->prepared++;
	u->active++;
	return true;
}

static void uring_submit(struct blk *b, void *state, struct blk_req *r)
{
	struct uring *u = state;
	if (u->backlog.head || !try_prepare(b, u, r))
		blk_fifo_push(&u->backlog, r);
}

static void uring_kick(struct blk *b, void *state)
{
	(void)b;
	struct uring *u = state;
	if (u->prepared == 0)
		return;
	int ret = io_uring_submit(&u->ring);
	/* On EAGAIN/EBUSY/EINTR the SQEs stay in the ring and go with the next kick or reap. */
	if (ret > 0)
		u->prepared -= MIN((unsigned)ret, u->prepared);
}

/* Kernel result -> final result, doing what io_uring could not. */
static int64_t finish(struct blk *b, struct blk_req *r, int64_t res)
{
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		/* A short transfer (rare on regular files: the kernel retries them): the rest synchronously. In a
		 * qcow2 image a cluster past the file's end reads as zeros. */
		if (res >= 0 && (size_t)res != r->len && r->direct)
			return blk_transfer_rest(r->host_fd, r, r->host_off, (size_t)res, r->op == BLK_OP_WRITE, true);
		if (res >= 0 && (size_t)res != r->len)
			return blk_exec_sync(b, r);
		return res;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		/* Unsupported fallocate modes (tmpfs has no ZERO_RANGE) fall back synchronously: rare, bounded. */
		return blk_fallocate_fallback(b, r, blk_fallocate_mode(r), res);
	case BLK_OP_FLUSH:
		break;
	}
	return res;
}

static void refill_from_backlog(struct blk *b, struct uring *u)
{
	while (u->backlog.head && try_prepare(b, u, u->backlog.head))
		blk_fifo_pop(&u->backlog);
}

static unsigned uring_reap(struct blk *b, void *state)
{
	struct uring *u = state;
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	uring_kick(b, u);   /* anything a failed kick left behind */
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct blk_req *r = io_uring_cqe_get_data(cqe);
		int64_t res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		u->active--;
		blk_complete(b, r, finish(b, r, res));
		n++;
	}
	refill_from_backlog(b, u);
	uring_kick(b, u);
	return n;
}

static void uring_stop(struct blk *b, void *state)
{
	(void)b;
	struct uring *u = state;
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
}

const struct blk_engine_ops blk_uring_ops = {
	.kind = BLK_ENGINE_URING,
	.start = uring_start,
	.submit = uring_submit,
	.kick = uring_kick,
	.reap = uring_reap,
	.stop = uring_stop,
};
