/* Raw image backend: opening and locking the image, request validation, completion plumbing. The I/O
 * itself is the engine's (uring.c, pool.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "block/engine.h"
#include "lib/iov.h"
#include "lib/util.h"

#define BLK_DEFAULT_DEPTH   128
#define BLK_DEFAULT_THREADS 4
#define BLK_MAX_DEPTH       4096
#define BLK_MAX_THREADS     64

/* Default engine: io_uring, chosen by bench/blk-engine on this machine (2 cores shared with other work,
 * ext4 on virtio, medians of 5-9 alternating runs). 4 KiB random reads at queue depth 32: from the page
 * cache 0.59-1.07 M IOPS with io_uring against 0.30-0.44 M with 4 pool threads (cached reads complete
 * inline in io_uring_enter; the pool pays two thread hand-offs per request); from the disk (cache dropped)
 * 48-51 K against 30-33 K. 1 MiB sequential writes with a final flush are disk-bound and equal within the
 * noise of a shared machine (1.1-4.5 GiB/s, either engine ahead from run to run). io_uring also needs no
 * threads. The pool stays as the fallback for kernels or sandboxes that forbid io_uring. */
static const struct blk_engine_ops *engine_ops(enum blk_engine e)
{
	return e == BLK_ENGINE_POOL ? &blk_pool_ops : &blk_uring_ops;
}

const char *blk_format_name(enum blk_format f)
{
	return f == BLK_FORMAT_QCOW2 ? "qcow2" : f == BLK_FORMAT_RAW ? "raw" : "auto";
}

const char *blk_engine_name(enum blk_engine e)
{
	switch (e) {
	case BLK_ENGINE_URING: return "io_uring";
	case BLK_ENGINE_POOL: return "worker pool";
	case BLK_ENGINE_DEFAULT: break;
	}
	return "default";
}

void blk_fifo_push(struct blk_fifo *f, struct blk_req *r)
{
	r->next = NULL;
	if (f->tail)
		f->tail->next = r;
	else
		f->head = r;
	f->tail = r;
}

struct blk_req *blk_fifo_pop(struct blk_fifo *f)
{
	struct blk_req *r = f->head;
	if (r) {
		f->head = r->next;
		if (!f->head)
			f->tail = NULL;
		r->next = NULL;
	}
	return r;
}

void blk_signal(struct blk *b)
{
	uint64_t one = 1;
	/* Only fails with EAGAIN when the counter is about to overflow: the owner is woken anyway. */
	if (write(b->efd, &one, sizeof(one)) < 0)
		return;
}

void blk_complete(struct blk *b, struct blk_req *r, int64_t res)
{
	r->res = res;
	r->error = res < 0 ? (int)-res : 0;
	b->inflight--;
	if (r->direct) {
		r->direct = false;
		qcow2_direct_done(b->qcow2);
	}
	r->done(r, res < 0 ? BLK_S_IOERR : BLK_S_OK, res > 0 ? (size_t)res : 0);
}

/* ---- Opening ---- */

static int check_file_type(const char *path, const struct stat *st, vt_err *err)
{
	if (S_ISBLK(st->st_mode))
		return vt_fail(err, "%s: block devices are not supported yet; use a raw image file", path);
	if (S_ISDIR(st->st_mode))
		return vt_fail(err, "%s: is a directory, not a disk image", path);
	if (!S_ISREG(st->st_mode))
		return vt_fail(err, "%s: not a regular file (a raw disk image is needed)", path);
	if (st->st_size < BLK_SECTOR_SIZE)
		return vt_fail(err, "%s: image is %lld bytes, smaller than one 512-byte sector", path,
			       (long long)st->st_size);
	return 0;
}

/* OFD locks belong to the open file description, so they also keep two opens in one process apart. */
static int lock_image(int fd, const char *path, bool readonly, vt_err *err)
{
	struct flock fl = { .l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return vt_fail(err, "%s: image is in use: another process has it open%s (advisory lock); "
			       "stop it, or open the image read-only everywhere", path,
			       readonly ? " for writing" : "");
	return vt_fail_errno(err, errno, "%s: cannot lock image", path);
}

static int set_serial(struct blk *b, const char *serial, const struct stat *st, vt_err *err)
{
	if (!serial) {
		/* FNV-1a over device and inode: stable for one image, opaque, fits in 20 bytes. */
		uint64_t h = 14695981039346656037ULL, v[2] = { st->st_dev, st->st_ino };
		const unsigned char *p = (const unsigned char *)v;
		for (size_t i = 0; i < sizeof(v); i++)
			h = (h ^ p[i]) * 1099511628211ULL;
		snprintf(b->serial, sizeof(b->serial), "vt-%016llx", (unsigned long long)h);
		return 0;
	}
	size_t n = strlen(serial);
	if (n == 0 || n > BLK_SERIAL_MAX)
		return vt_fail(err, "disk serial '%s' must be 1 to %d bytes long", serial, BLK_SERIAL_MAX);
	for (size_t i = 0; i < n; i++)
		if (serial[i] < 0x21 || serial[i] > 0x7e)
			return vt_fail(err, "disk serial '%s': only printable ASCII without spaces", serial);
	memcpy(b->serial, serial, n + 1);
	return 0;
}

static int check_opts(const struct blk_opts *o, vt_err *err)
{
	if (o->queue_depth > BLK_MAX_DEPTH)
		return vt_fail(err, "queue depth %u is over the limit of %d", o->queue_depth, BLK_MAX_DEPTH);
	if (o->pool_threads > BLK_MAX_THREADS)
		return vt_fail(err, "%u I/O threads is over the limit of %d", o->pool_threads, BLK_MAX_THREADS);
	return 0;
}

static struct blk *blk_alloc(const struct blk_opts *o)
{
	struct blk *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->fd = b->efd = -1;
	b->readonly = o->readonly;
	b->depth = o->queue_depth ? o->queue_depth : BLK_DEFAULT_DEPTH;
	b->pool_threads = o->pool_threads ? o->pool_threads : BLK_DEFAULT_THREADS;
	b->zeroes = calloc(1, BLK_ZERO_BUF);
	if (!b->zeroes) {
		free(b);
		return NULL;
	}
	return b;
}

static void blk_free(struct blk *b)
{
	qcow2_close(b->qcow2);
	if (b->fd >= 0)
		close(b->fd);
	if (b->efd >= 0)
		close(b->efd);
	free(b->zeroes);
	free(b->path);
	free(b);
}

/* An unnamed file for a throwaway overlay: in $TMPDIR, else /var/tmp (not /tmp, often RAM), else /tmp. It
 * vanishes with its last descriptor, so nothing is left behind. */
static int open_unnamed_file(const char **dir)
{
	const char *env = getenv("TMPDIR");
	const char *const dirs[] = { env && *env ? env : "/var/tmp", "/tmp" };
	int fd = -1;
	for (size_t i = 0; i < ARRAY_SIZE(dirs) && fd < 0; i++) {
		*dir = dirs[i];
		fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0 && errno != ENOENT)
			break;      /* a directory that exists but refuses (permissions, no O_TMPFILE): say so */
	}
	return fd;
}

/* A throwaway qcow2 overlay over the image at b->fd (opened read-only). */
static int open_overlay(struct blk *b, const char *path, bool base_is_qcow2, vt_err *err)
{
	const char *dir;
	char *base = realpath(path, NULL);
	if (!base)
		return vt_fail_errno(err, errno, "%s", path);
	int fd = open_unnamed_file(&dir), r = -1;
	struct qcow2_create_opts o = { .backing = base, .backing_fmt = base_is_qcow2 ? "qcow2" : "raw" };
	if (fd < 0)
		vt_fail_errno(err, errno, "%s: cannot create an overlay in %s", path, dir);
	else if (qcow2_format_fd(fd, path, &o, err) == 0 && qcow2_open(fd, base, false, &b->qcow2, err) == 0)
		r = 0;
	free(base);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return vt_err_prefix(err, "overlay");
	}
	close(b->fd);             /* the overlay holds the image open (read-only, shared lock) itself */
	b->fd = fd;
	b->overlay = true;
	b->sectors = qcow2_size(b->qcow2) / BLK_SECTOR_SIZE;
	return 0;
}

static int open_format(struct blk *b, const char *path, const struct blk_opts *o, vt_err *err)
{
	bool qcow2 = qcow2_has_magic(b->fd);
	if (o->format == BLK_FORMAT_QCOW2 && !qcow2)
		return vt_fail(err, "%s: not a qcow2 image (format=qcow2 was given)", path);
	if (o->format == BLK_FORMAT_RAW)
		qcow2 = false;
	/* A guessed raw image must not become a qcow2 one because its guest wrote the magic into sector 0:
	 * that image would name any file on the host as its backing file at the next start. */
	b->guard_magic = o->format == BLK_FORMAT_AUTO && !qcow2 && !o->overlay;
	if (o->overlay)
		return open_overlay(b, path, qcow2, err);
	if (!qcow2)
		return 0;
	if (qcow2_open(b->fd, path, o->readonly, &b->qcow2, err) < 0)
		return -1;
	b->sectors = qcow2_size(b->qcow2) / BLK_SECTOR_SIZE;
	return 0;
}

static int open_image(struct blk *b, const char *path, const struct blk_opts *o, vt_err *err)
{
	bool readonly = o->readonly || o->overlay;
	/* O_NONBLOCK: opening a FIFO must not hang before the type check refuses it. */
	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (b->fd < 0) {
		if (errno == EROFS || (errno == EACCES && !readonly))
			return vt_fail_errno(err, errno, "%s: cannot open for writing (add ,ro for a read-only disk)", path);
		return vt_fail_errno(err, errno, "%s: cannot open disk image", path);
	}
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return vt_fail_errno(err, errno, "%s: cannot stat", path);
	if (!(b->path = strdup(path)))
		return vt_fail_errno(err, ENOMEM, "%s", path);
	if (check_file_type(path, &st, err) < 0 || (!o->defer_lock && lock_image(b->fd, path, readonly, err) < 0))
		return -1;
	int fl = fcntl(b->fd, F_GETFL);
	if (fl < 0 || fcntl(b->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return vt_fail_errno(err, errno, "%s: cannot clear O_NONBLOCK", path);
	b->sectors = (uint64_t)st.st_size / BLK_SECTOR_SIZE;   /* a partial last sector is not exposed */
	if (set_serial(b, o->serial, &st, err) < 0)
		return -1;
	return open_format(b, path, o, err);
}

/* qcow2: the worker pool maps clusters (it may read tables, allocate, copy); reads and writes to clusters
 * already in place skip it and go to io_uring directly, unless the pool was asked for. */
static int start_qcow2_engines(struct blk *b, enum blk_engine want, vt_err *err)
{
	b->ops = &blk_pool_ops;
	if (b->ops->start(b, &b->engine, err) < 0)
		return -1;
	vt_err ignored;
	if (want != BLK_ENGINE_POOL && blk_uring_ops.start(b, &b->direct, &ignored) < 0)
		b->direct = NULL;         /* io_uring refused: the pool does everything */
	return 0;
}

static int start_engine(struct blk *b, enum blk_engine want, vt_err *err)
{
	b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->efd < 0)
		return vt_fail_errno(err, errno, "cannot create eventfd");
	if (b->qcow2)
		return start_qcow2_engines(b, want, err);
	b->ops = engine_ops(want);
	if (b->ops->start(b, &b->engine, err) == 0)
		return 0;
	if (want != BLK_ENGINE_DEFAULT)
		return -1;
	b->ops = &blk_pool_ops;     /* io_uring refused (old kernel, seccomp, sysctl): use threads */
	return b->ops->start(b, &b->engine, err);
}

int blk_open_opts(const char *path, const struct blk_opts *o, struct blk **out, vt_err *err)
{
	if (check_opts(o, err) < 0)
		return -1;
	if (o->overlay && o->readonly)
		return vt_fail(err, "%s: a disk is either read-only or has an overlay, not both", path);
	if (o->overlay && o->defer_lock)
		return vt_fail(err, "%s: a throwaway overlay cannot be handed over by a migration", path);
	struct blk *b = blk_alloc(o);
	if (!b)
		return vt_fail_errno(err, ENOMEM, "%s: cannot allocate disk", path);
	if (open_image(b, path, o, err) < 0 || start_engine(b, o->engine, err) < 0) {
		blk_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

int blk_open(const char *path, bool readonly, struct blk **out, vt_err *err)
{
	struct blk_opts o = { .readonly = readonly };
	return blk_open_opts(path, &o, out, err);
}

/* A qcow2 image was written by the process that had it: its tables are read again. */
int blk_lock(struct blk *b, vt_err *err)
{
	if (lock_image(b->fd, b->path, b->readonly, err) < 0)
		return -1;
	return b->qcow2 ? qcow2_reload(b->qcow2, err) : 0;
}

void blk_unlock(struct blk *b)
{
	if (b->qcow2)
		qcow2_release(b->qcow2);
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
	if (fcntl(b->fd, F_OFD_SETLK, &fl) < 0) {
		/* only for a bad fd: nothing is held then */
	}
}

void blk_close(struct blk *b)
{
	if (!b)
		return;
	while (b->inflight > 0)
		blk_wait_completions(b);
	b->ops->stop(b, b->engine);
	if (b->direct)
		blk_uring_ops.stop(b, b->direct);
	blk_free(b);
}

/* ---- Changing the medium ---- */

int blk_medium_open(const struct blk *b, const char *path, enum blk_format format, struct blk **out, vt_err *err)
{
	struct stat now, next;
	if (b->overlay)
		return vt_fail(err, "%s: a disk with a throwaway overlay keeps its image", b->path);
	if (fstat(b->fd, &now) == 0 && stat(path, &next) == 0 && now.st_dev == next.st_dev && now.st_ino == next.st_ino)
		return vt_fail(err, "%s: is already this disk's image", path);
	struct blk_opts o = { .readonly = b->readonly, .format = format, .serial = b->serial };
	struct blk *m = blk_alloc(&o);
	if (!m)
		return vt_fail_errno(err, ENOMEM, "%s", path);
	if (open_image(m, path, &o, err) < 0) {
		blk_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

void blk_medium_swap(struct blk *b, struct blk *medium)
{
	SWAP(b->fd, medium->fd);
	SWAP(b->sectors, medium->sectors);
	SWAP(b->path, medium->path);
	SWAP(b->qcow2, medium->qcow2);
	SWAP(b->guard_magic, medium->guard_magic);
	b->guard_before_checkpoint = false;
}

void blk_medium_close(struct blk *medium)
{
	if (medium)
		blk_free(medium);
}

/* ---- Accessors ---- */

uint64_t blk_sectors(const struct blk *b) { return b->sectors; }
bool blk_readonly(const struct blk *b) { return b->readonly; }
const char *blk_serial(const struct blk *b) { return b->serial; }
enum blk_engine blk_engine_used(const struct blk *b) { return b->ops->kind; }
enum blk_format blk_format_used(const struct blk *b) { return b->qcow2 ? BLK_FORMAT_QCOW2 : BLK_FORMAT_RAW; }
bool blk_is_overlay(const struct blk *b) { return b->overlay; }
int blk_eventfd(const struct blk *b) { return b->efd; }
unsigned blk_inflight(const struct blk *b) { return b->inflight; }
uint64_t blk_in_place_count(const struct blk *b) { return b->in_place; }

/* ---- Requests ---- */

static bool range_ok(const struct blk *b, uint64_t sector, uint64_t nsectors)
{
	return sector <= b->sectors && nsectors <= b->sectors - sector;
}

/* Total length of the iovecs, or -1 if it overflows or is not whole sectors. */
static int64_t iov_bytes(const struct blk_req *r)
{
	uint64_t total = 0;
	if (r->niov == 0 || r->niov > IOV_MAX || !r->iov)
		return -1;
	for (unsigned i = 0; i < r->niov; i++) {
		if (r->iov[i].iov_len > (uint64_t)SSIZE_MAX - total)
			return -1;
		total += r->iov[i].iov_len;
	}
	return total % BLK_SECTOR_SIZE ? -1 : (int64_t)total;
}

/* A write of qcow2's magic to the first sector of a guessed raw image (see open_format). */
static bool writes_magic(const struct blk *b, const struct blk_req *r)
{
	static const uint8_t magic[4] = { 'Q', 'F', 'I', 0xfb };
	uint8_t head[4];
	return b->guard_magic && r->sector == 0 && iov_to_buf(r->iov, r->niov, 0, head, 4) == 4 &&
	       !memcmp(head, magic, 4);
}

/* 0: submit; 1: nothing to do, succeeds; -errno: fails. */
static int validate(const struct blk *b, struct blk_req *r)
{
	int64_t len;
	r->len = 0;
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (r->op == BLK_OP_WRITE && b->readonly)
			return -EROFS;
		len = iov_bytes(r);
		if (len < 0)
			return -EINVAL;
		r->len = (size_t)len;
		if (r->op == BLK_OP_WRITE && writes_magic(b, r))
			return -EPERM;
		return range_ok(b, r->sector, (uint64_t)len / BLK_SECTOR_SIZE) ? 0 : -ERANGE;
	case BLK_OP_FLUSH:
		return 0;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (b->readonly)
			return -EROFS;
		if (!range_ok(b, r->sector, r->nsectors))
			return -ERANGE;
		return r->nsectors ? 0 : 1;      /* an empty range is done (fallocate would say EINVAL) */
	}
	return -EINVAL;
}

/* A qcow2 read or write to clusters in place: io_uring does it at the mapped offset (qcow2_map_direct). */
static bool try_direct(struct blk *b, struct blk_req *r)
{
	if (r->op != BLK_OP_READ && r->op != BLK_OP_WRITE)
		return false;
	r->direct = qcow2_map_direct(b->qcow2, r->op == BLK_OP_WRITE, r->sector * BLK_SECTOR_SIZE, r->len,
				     &r->host_fd, &r->host_off);
	return r->direct;
}

void blk_submit(struct blk *b, struct blk_req *r)
{
	b->inflight++;
	r->error = 0;
	r->direct = false;
	int v = validate(b, r);
	if (v != 0) {
		r->res = v < 0 ? v : 0;
		blk_fifo_push(&b->immediate, r);
		blk_signal(b);
		return;
	}
	if (b->qcow2 && b->ops->kind == BLK_ENGINE_URING) {
		r->res = blk_exec_sync(b, r);   /* a raw disk became a qcow2 overlay (blk_checkpoint) */
		blk_fifo_push(&b->immediate, r);
		blk_signal(b);
		return;
	}
	if (b->direct && b->qcow2 && try_direct(b, r)) {
		b->in_place++;
		blk_uring_ops.submit(b, b->direct, r);
		return;
	}
	b->ops->submit(b, b->engine, r);
}

void blk_kick(struct blk *b)
{
	b->ops->kick(b, b->engine);
	if (b->direct)
		blk_uring_ops.kick(b, b->direct);
}

static void drain_eventfd(struct blk *b)
{
	uint64_t count;
	if (read(b->efd, &count, sizeof(count)) < 0)
		return;          /* EAGAIN: nothing signalled, reap anyway */
}

unsigned blk_poll_completions(struct blk *b)
{
	unsigned n = 0;
	struct blk_req *r;
	/* Clear the eventfd before reaping, so a completion that lands meanwhile signals it again. */
	drain_eventfd(b);
	while ((r = blk_fifo_pop(&b->immediate))) {
		blk_complete(b, r, r->res);
		n++;
	}
	n += b->ops->reap(b, b->engine);
	if (b->direct)
		n += blk_uring_ops.reap(b, b->direct);
	blk_kick(b);     /* callbacks may have submitted follow-up requests */
	return n;
}

unsigned blk_wait_completions(struct blk *b)
{
	if (b->inflight == 0)
		return 0;
	blk_kick(b);
	struct pollfd p = { .fd = b->efd, .events = POLLIN };
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return blk_poll_completions(b);
}
