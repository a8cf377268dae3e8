/* Raw image block backend on real temporary files, every behaviour checked with both engines. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "block/raw.h"
#include "lib/util.h"

struct fixture {
	enum blk_engine engine;
	char dir[64];
	char path[128];
};

/* Completion record of one request. */
struct done {
	struct blk_req req;
	int calls;
	enum blk_status status;
	size_t bytes;
	unsigned order;           /* position among completions */
	unsigned *counter;
};

static void on_done(struct blk_req *req, enum blk_status status, size_t bytes)
{
	struct done *d = (struct done *)req;
	d->calls++;
	d->status = status;
	d->bytes = bytes;
	if (d->counter)
		d->order = (*d->counter)++;
}

/* Images live on a disk file system (/var/tmp: /tmp may be tmpfs), or on tmpfs (/dev/shm) for the
 * fallbacks: tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE. */
static int setup(void **state, enum blk_engine engine, const char *base)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->engine = engine;
	snprintf(f->dir, sizeof(f->dir), "%s/virtus-blk-XXXXXX", base);
	if (!mkdtemp(f->dir))
		f->dir[0] = 0;               /* no such file system here: the test skips */
	snprintf(f->path, sizeof(f->path), "%s/disk.img", f->dir);
	*state = f;
	return 0;
}
static int setup_uring(void **state) { return setup(state, BLK_ENGINE_URING, "/var/tmp"); }
static int setup_pool(void **state) { return setup(state, BLK_ENGINE_POOL, "/var/tmp"); }
static int setup_uring_shm(void **state) { return setup(state, BLK_ENGINE_URING, "/dev/shm"); }
static int setup_pool_shm(void **state) { return setup(state, BLK_ENGINE_POOL, "/dev/shm"); }

static void need_dir(const struct fixture *f)
{
	if (!f->dir[0])
		skip();
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];
	if (!f->dir[0]) {
		free(f);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* A sparse image of `size` bytes. */
static void make_image(const struct fixture *f, off_t size)
{
	need_dir(f);
	int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static struct blk *open_disk(const struct fixture *f, bool readonly, unsigned depth)
{
	struct blk_opts o = { .readonly = readonly, .engine = f->engine, .queue_depth = depth };
	struct blk *b = NULL;
	vt_err err = { 0 };
	int ret = blk_open_opts(f->path, &o, &b, &err);
	if (ret < 0)
		fail_msg("blk_open: %s", err.msg);
	assert_int_equal(blk_engine_used(b), f->engine);
	return b;
}

static void wait_all(struct blk *b)
{
	blk_kick(b);
	while (blk_inflight(b) > 0)
		blk_wait_completions(b);
}

/* Run one request to completion; returns its status. */
static enum blk_status run(struct blk *b, struct done *d)
{
	d->req.done = on_done;
	d->calls = 0;
	blk_submit(b, &d->req);
	wait_all(b);
	assert_int_equal(d->calls, 1);
	return d->status;
}

static enum blk_status rw(struct blk *b, enum blk_op op, uint64_t sector, void *buf, size_t len)
{
	struct iovec iov = { buf, len };
	struct done d = { .req = { .op = op, .sector = sector, .iov = &iov, .niov = 1 } };
	enum blk_status s = run(b, &d);
	assert_int_equal(d.bytes, s == BLK_S_OK ? len : 0);
	return s;
}

static enum blk_status range_op(struct blk *b, enum blk_op op, uint64_t sector, uint32_t n, bool unmap)
{
	struct done d = { .req = { .op = op, .sector = sector, .nsectors = n, .unmap = unmap } };
	return run(b, &d);
}

static enum blk_status flush(struct blk *b)
{
	struct done d = { .req = { .op = BLK_OP_FLUSH } };
	return run(b, &d);
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9)) ^ 0x5a);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static blkcnt_t blocks_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_blocks;
}

static void pattern_round_trip(void **state)
{
	struct fixture *f = *state;
	make_image(f, 4 * MiB);
	struct blk *b = open_disk(f, false, 0);
	assert_int_equal(blk_sectors(b), 4 * MiB / 512);

	/* Written through three segments, read back through a different split. */
	static uint8_t out[6144], in[6144];
	fill_pattern(out, sizeof(out), 1);
	struct iovec wv[3] = { { out, 512 }, { out + 512, 4096 }, { out + 4608, 1536 } };
	struct done w = { .req = { .op = BLK_OP_WRITE, .sector = 100, .iov = wv, .niov = 3 } };
	assert_int_equal(run(b, &w), BLK_S_OK);
	assert_int_equal(w.bytes, sizeof(out));

	struct iovec rv[2] = { { in, 1024 }, { in + 1024, 5120 } };
	struct done r = { .req = { .op = BLK_OP_READ, .sector = 100, .iov = rv, .niov = 2 } };
	assert_int_equal(run(b, &r), BLK_S_OK);
	assert_int_equal(r.bytes, sizeof(in));
	assert_memory_equal(in, out, sizeof(out));

	/* And the file itself holds it at the right offset. */
	memset(in, 0, sizeof(in));
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, in, sizeof(in), 100 * 512), sizeof(in));
	close(fd);
	assert_memory_equal(in, out, sizeof(out));
	blk_close(b);
}

static void out_of_range_fails(void **state)
{
	struct fixture *f = *state;
	make_image(f, 64 * KiB + 100);       /* a partial last sector is not exposed */
	struct blk *b = open_disk(f, false, 0);
	uint64_t n = blk_sectors(b);
	assert_int_equal(n, 128);
	static uint8_t buf[1024];
	fill_pattern(buf, sizeof(buf), 2);

	assert_int_equal(rw(b, BLK_OP_READ, n - 2, buf, 1024), BLK_S_OK);   /* last two sectors */
	assert_int_equal(rw(b, BLK_OP_READ, n, buf, 512), BLK_S_IOERR);
	assert_int_equal(rw(b, BLK_OP_WRITE, n - 1, buf, 1024), BLK_S_IOERR); /* straddles the end */
	assert_int_equal(rw(b, BLK_OP_WRITE, UINT64_MAX, buf, 512), BLK_S_IOERR);
	assert_int_equal(rw(b, BLK_OP_WRITE, UINT64_MAX / 512 + 1, buf, 512), BLK_S_IOERR);
	assert_int_equal(rw(b, BLK_OP_WRITE, 0, buf, 100), BLK_S_IOERR);     /* not whole sectors */
	assert_int_equal(range_op(b, BLK_OP_DISCARD, n - 1, 2, false), BLK_S_IOERR);
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, UINT64_MAX - 1, 4, true), BLK_S_IOERR);
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, n - 1, 1, false), BLK_S_OK);
	assert_int_equal(range_op(b, BLK_OP_DISCARD, n, 0, false), BLK_S_OK);      /* empty: nothing to do */
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, n + 1, 0, false), BLK_S_IOERR);

	struct done none = { .req = { .op = BLK_OP_WRITE, .sector = 0, .iov = NULL, .niov = 0 } };
	assert_int_equal(run(b, &none), BLK_S_IOERR);
	blk_close(b);

	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 64 * KiB + 100);   /* never grown */
}

static void read_only_refuses_writes(void **state)
{
	struct fixture *f = *state;
	make_image(f, 1 * MiB);
	static uint8_t data[4096], back[4096];
	fill_pattern(data, sizeof(data), 3);
	struct blk *b = open_disk(f, false, 0);
	assert_int_equal(rw(b, BLK_OP_WRITE, 0, data, sizeof(data)), BLK_S_OK);
	blk_close(b);

	b = open_disk(f, true, 0);
	assert_true(blk_readonly(b));
	static uint8_t junk[4096];
	memset(junk, 0xee, sizeof(junk));
	struct iovec iov = { junk, sizeof(junk) };
	struct done w = { .req = { .op = BLK_OP_WRITE, .iov = &iov, .niov = 1 } };
	assert_int_equal(run(b, &w), BLK_S_IOERR);
	assert_int_equal(w.req.error, EROFS);
	assert_int_equal(range_op(b, BLK_OP_DISCARD, 0, 8, false), BLK_S_IOERR);
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, 0, 8, true), BLK_S_IOERR);
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, 0, 8, false), BLK_S_IOERR);
	assert_int_equal(flush(b), BLK_S_OK);
	assert_int_equal(rw(b, BLK_OP_READ, 0, back, sizeof(back)), BLK_S_OK);
	assert_memory_equal(back, data, sizeof(data));
	blk_close(b);
}

/* Write 1 MiB at 1 MiB, make it durable, and return the allocated blocks. */
static blkcnt_t write_one_mib(struct blk *b, const char *path, uint8_t *buf)
{
	fill_pattern(buf, MiB, 4);
	blkcnt_t before = blocks_of(path);
	assert_int_equal(rw(b, BLK_OP_WRITE, MiB / 512, buf, MiB), BLK_S_OK);
	assert_int_equal(flush(b), BLK_S_OK);
	blkcnt_t after = blocks_of(path);
	assert_true(after - before >= (blkcnt_t)(MiB / 512));
	return after;
}

static void expect_zeroes(struct blk *b, uint8_t *buf)
{
	memset(buf, 0xff, MiB);
	assert_int_equal(rw(b, BLK_OP_READ, MiB / 512, buf, MiB), BLK_S_OK);
	assert_true(all_zero(buf, MiB));
}

/* op over the second MiB of a written MiB-and-more image frees its blocks and reads back as zeroes. */
static void expect_range_op_punches(struct fixture *f, enum blk_op op, bool unmap)
{
	make_image(f, 8 * MiB);
	struct blk *b = open_disk(f, false, 0);
	uint8_t *buf = malloc(MiB);
	assert_non_null(buf);
	blkcnt_t full = write_one_mib(b, f->path, buf);
	assert_int_equal(range_op(b, op, MiB / 512, MiB / 512, unmap), BLK_S_OK);
	assert_true(blocks_of(f->path) <= full - (blkcnt_t)(MiB / 512));
	expect_zeroes(b, buf);
	free(buf);
	blk_close(b);
}

static void discard_punches_hole(void **state)
{
	expect_range_op_punches(*state, BLK_OP_DISCARD, false);
}

static void write_zeroes_unmap_punches(void **state)
{
	expect_range_op_punches(*state, BLK_OP_WRITE_ZEROES, true);
}

static void write_zeroes_keeps_allocation(void **state)
{
	struct fixture *f = *state;
	make_image(f, 8 * MiB);
	struct blk *b = open_disk(f, false, 0);
	uint8_t *buf = malloc(MiB);
	assert_non_null(buf);
	write_one_mib(b, f->path, buf);
	/* Only part of it, so the neighbours show the range is exact. */
	assert_int_equal(range_op(b, BLK_OP_WRITE_ZEROES, MiB / 512 + 1, 2, false), BLK_S_OK);
	assert_int_equal(rw(b, BLK_OP_READ, MiB / 512, buf, 4 * 512), BLK_S_OK);
	uint8_t expect[512];
	uint8_t *ref = malloc(MiB);
	assert_non_null(ref);
	fill_pattern(ref, MiB, 4);
	assert_memory_equal(buf, ref, 512);
	memset(expect, 0, sizeof(expect));
	assert_memory_equal(buf + 512, expect, 512);
	assert_memory_equal(buf + 1024, expect, 512);
	assert_memory_equal(buf + 1536, ref + 1536, 512);
	free(ref);
	free(buf);
	blk_close(b);
}

/* Writes, a flush, more writes, all in one batch: the flush completes after every write before it, and
 * (drain semantics, documented in uring.c and pool.c) the writes behind it complete after it. */
static void flush_completes_after_writes(void **state)
{
	struct fixture *f = *state;
	make_image(f, 16 * MiB);
	struct blk *b = open_disk(f, false, 0);
	enum { NW = 16 };
	static uint8_t bufs[NW][64 * 1024];
	struct iovec iov[NW];
	struct done w[NW], fl = { .req = { .op = BLK_OP_FLUSH, .done = on_done } };
	unsigned counter = 0;
	fl.counter = &counter;
	for (unsigned i = 0; i < NW; i++) {
		fill_pattern(bufs[i], sizeof(bufs[i]), i);
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		w[i] = (struct done){ .req = { .op = BLK_OP_WRITE, .sector = i * 128, .iov = &iov[i], .niov = 1,
					      .done = on_done }, .counter = &counter };
		if (i == NW / 2)
			blk_submit(b, &fl.req);
		blk_submit(b, &w[i].req);
	}
	wait_all(b);
	assert_int_equal(fl.calls, 1);
	assert_int_equal(fl.status, BLK_S_OK);
	for (unsigned i = 0; i < NW; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].status, BLK_S_OK);
		if (i < NW / 2)
			assert_true(w[i].order < fl.order);
		else
			assert_true(w[i].order > fl.order);
	}
	blk_close(b);
}

/* 64 requests in flight at once, with a queue depth of 16 so the backlog is used too. */
static void many_in_flight(void **state)
{
	struct fixture *f = *state;
	make_image(f, 4 * MiB);
	struct blk *b = open_disk(f, false, 16);
	enum { N = 64, SZ = 8192 };
	static uint8_t bufs[N][SZ], back[N][SZ];
	struct iovec iov[N];
	static struct done d[N];
	for (unsigned i = 0; i < N; i++) {
		fill_pattern(bufs[i], SZ, i + 10);
		iov[i] = (struct iovec){ bufs[i], SZ };
		d[i] = (struct done){ .req = { .op = BLK_OP_WRITE, .sector = i * (SZ / 512), .iov = &iov[i],
					      .niov = 1, .done = on_done } };
		blk_submit(b, &d[i].req);
	}
	assert_int_equal(blk_inflight(b), N);
	wait_all(b);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, BLK_S_OK);
		iov[i] = (struct iovec){ back[i], SZ };
		d[i] = (struct done){ .req = { .op = BLK_OP_READ, .sector = i * (SZ / 512), .iov = &iov[i],
					      .niov = 1, .done = on_done } };
		blk_submit(b, &d[i].req);
	}
	wait_all(b);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].bytes, SZ);
		assert_memory_equal(back[i], bufs[i], SZ);
	}
	assert_int_equal(blk_poll_completions(b), 0);   /* nothing runs twice */
	blk_close(b);
}

/* Completions wake the eventfd and are only run by blk_poll_completions. */
static void eventfd_signals_completion(void **state)
{
	struct fixture *f = *state;
	make_image(f, 1 * MiB);
	struct blk *b = open_disk(f, false, 0);
	static uint8_t buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct done d = { .req = { .op = BLK_OP_READ, .iov = &iov, .niov = 1, .done = on_done } };
	blk_submit(b, &d.req);
	blk_kick(b);
	struct pollfd p = { .fd = blk_eventfd(b), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(d.calls, 0);
	unsigned ran = 0;
	while (ran == 0)
		ran = blk_poll_completions(b);
	assert_int_equal(ran, 1);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, BLK_S_OK);
	blk_close(b);
}

static int try_open(const char *path, bool readonly, enum blk_engine e, struct blk **b, vt_err *err)
{
	struct blk_opts o = { .readonly = readonly, .engine = e };
	*b = NULL;
	memset(err, 0, sizeof(*err));
	return blk_open_opts(path, &o, b, err);
}

static void locked_image_cannot_be_opened_twice(void **state)
{
	struct fixture *f = *state;
	make_image(f, 1 * MiB);
	struct blk *a = open_disk(f, false, 0), *b;
	vt_err err;
	assert_int_equal(try_open(f->path, false, f->engine, &b, &err), -1);
	assert_null(b);
	assert_non_null(strstr(err.msg, "in use"));
	assert_non_null(strstr(err.msg, f->path));
	assert_int_equal(try_open(f->path, true, f->engine, &b, &err), -1);  /* no reading under a writer */
	blk_close(a);

	/* Readers share; a writer is then refused. */
	struct blk *r1 = open_disk(f, true, 0), *r2 = open_disk(f, true, 0);
	assert_int_equal(try_open(f->path, false, f->engine, &b, &err), -1);
	assert_non_null(strstr(err.msg, "in use"));
	blk_close(r1);
	blk_close(r2);
	a = open_disk(f, false, 0);        /* the locks went with the closes */
	blk_close(a);
}

static void expect_open_error(const char *path, bool ro, enum blk_engine e, const char *needle)
{
	struct blk *b;
	vt_err err;
	assert_int_equal(try_open(path, ro, e, &b, &err), -1);
	assert_null(b);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void bad_paths_give_clear_errors(void **state)
{
	struct fixture *f = *state;
	need_dir(f);
	char p[200];
	snprintf(p, sizeof(p), "%s/missing.img", f->dir);
	expect_open_error(p, false, f->engine, "No such file");
	expect_open_error(p, false, f->engine, p);
	expect_open_error(f->dir, true, f->engine, "directory");
	expect_open_error("/dev/null", true, f->engine, "not a regular file");
	snprintf(p, sizeof(p), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_open_error(p, true, f->engine, "not a regular file");
	make_image(f, 100);
	expect_open_error(f->path, false, f->engine, "smaller than one 512-byte sector");
	make_image(f, 1 * MiB);
	chmod(f->path, 0444);
	if (geteuid() != 0)   /* root ignores the mode */
		expect_open_error(f->path, false, f->engine, ",ro");
	struct blk_opts o = { .engine = f->engine, .serial = "this-serial-is-too-long" };
	struct blk *b;
	vt_err err;
	assert_int_equal(blk_open_opts(f->path, &o, &b, &err), -1);
	assert_non_null(strstr(err.msg, "1 to 20 bytes"));
}

static void serial_default_and_override(void **state)
{
	struct fixture *f = *state;
	make_image(f, 1 * MiB);
	struct blk *b = open_disk(f, false, 0);
	char first[BLK_SERIAL_MAX + 1];
	snprintf(first, sizeof(first), "%s", blk_serial(b));
	assert_true(strlen(first) > 0 && strlen(first) <= BLK_SERIAL_MAX);
	blk_close(b);
	b = open_disk(f, false, 0);
	assert_string_equal(blk_serial(b), first);     /* stable for one image */
	blk_close(b);

	struct blk_opts o = { .engine = f->engine, .serial = "disk-0123456789abcde" };
	vt_err err;
	assert_int_equal(blk_open_opts(f->path, &o, &b, &err), 0);
	assert_string_equal(blk_serial(b), "disk-0123456789abcde");
	blk_close(b);
}

/* Under a seccomp filter that forbids io_uring_setup, the default engine falls back to the pool. */
static void default_falls_back_without_io_uring(void **state)
{
	struct fixture *f = *state;
	make_image(f, 1 * MiB);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
		if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0) < 0 ||
		    seccomp_load(ctx) < 0)
			_exit(2);
		struct blk *b;
		vt_err err;
		if (blk_open(f->path, false, &b, &err) < 0)
			_exit(3);
		static uint8_t buf[512];
		struct iovec iov = { buf, sizeof(buf) };
		struct done d = { .req = { .op = BLK_OP_READ, .iov = &iov, .niov = 1, .done = on_done } };
		blk_submit(b, &d.req);
		while (d.calls == 0)
			blk_wait_completions(b);
		int code = blk_engine_used(b) == BLK_ENGINE_POOL && d.status == BLK_S_OK ? 0 : 4;
		blk_close(b);
		_exit(code);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Each test twice, named by engine so a failure says which one broke. */
#define BOTH(t) { "io_uring: " #t, t, setup_uring, teardown, NULL }, \
		{ "pool: " #t, t, setup_pool, teardown, NULL }
#define BOTH_TMPFS(t) { "io_uring: tmpfs: " #t, t, setup_uring_shm, teardown, NULL }, \
		{ "pool: tmpfs: " #t, t, setup_pool_shm, teardown, NULL }

/* A file of `size` bytes whose first sector is `fill`. */
static void make_medium(const char *path, off_t size, uint8_t fill)
{
	uint8_t sector[512];
	memset(sector, fill, sizeof(sector));
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(pwrite(fd, sector, sizeof(sector), 0), sizeof(sector));
	close(fd);
}

static void expect_first_sector(struct blk *b, uint8_t fill)
{
	uint8_t in[512], want[512];
	memset(want, fill, sizeof(want));
	assert_int_equal(rw(b, BLK_OP_READ, 0, in, sizeof(in)), BLK_S_OK);
	assert_memory_equal(in, want, sizeof(want));
}

/* A new medium under a running disk: reads and writes go to it, at its size; the old image is closed and
 * unlocked; refusals (a missing file, the disk's own image) change nothing. */
static void medium_change(void **state)
{
	struct fixture *f = *state;
	need_dir(f);
	char second[160], missing[160], third[200];
	snprintf(second, sizeof(second), "%s/second.img", f->dir);
	snprintf(missing, sizeof(missing), "%s/missing.img", f->dir);
	snprintf(third, sizeof(third), "%s/third.qcow2", f->dir);
	make_medium(f->path, 1 * MiB, 0xaa);
	make_medium(second, 2 * MiB, 0xbb);
	struct blk *b = open_disk(f, false, 0), *m = NULL;
	vt_err err = { 0 };
	assert_int_equal(blk_medium_open(b, f->path, BLK_FORMAT_AUTO, &m, &err), -1);
	assert_non_null(strstr(err.msg, "already this disk's image"));
	assert_int_equal(blk_medium_open(b, missing, BLK_FORMAT_AUTO, &m, &err), -1);
	assert_non_null(strstr(err.msg, "cannot open"));
	assert_int_equal(blk_sectors(b), 1 * MiB / 512);
	expect_first_sector(b, 0xaa);

	assert_int_equal(blk_medium_open(b, second, BLK_FORMAT_AUTO, &m, &err), 0);
	blk_medium_swap(b, m);
	blk_medium_close(m);
	assert_int_equal(blk_sectors(b), 2 * MiB / 512);
	expect_first_sector(b, 0xbb);
	static uint8_t out[4096], in[4096];
	fill_pattern(out, sizeof(out), 7);
	assert_int_equal(rw(b, BLK_OP_WRITE, 3000, out, sizeof(out)), BLK_S_OK);   /* past the old image's end */
	int fd = open(second, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, in, sizeof(in), 3000 * 512), sizeof(in));
	close(fd);
	assert_memory_equal(in, out, sizeof(out));
	struct blk *again = NULL;                          /* the old image is closed: nothing holds its lock */
	assert_int_equal(try_open(f->path, false, f->engine, &again, &err), 0);
	blk_close(again);

	/* a qcow2 image as the next medium (io_uring runs its requests on the owner thread) */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 '%s' 3M", third);
	if (system(cmd) != 0)
		skip();
	assert_int_equal(blk_medium_open(b, third, BLK_FORMAT_AUTO, &m, &err), 0);
	blk_medium_swap(b, m);
	blk_medium_close(m);
	assert_int_equal(blk_format_used(b), BLK_FORMAT_QCOW2);
	assert_int_equal(blk_sectors(b), 3 * MiB / 512);
	expect_first_sector(b, 0);
	assert_int_equal(rw(b, BLK_OP_WRITE, 5000, out, sizeof(out)), BLK_S_OK);
	assert_int_equal(rw(b, BLK_OP_READ, 5000, in, sizeof(in)), BLK_S_OK);
	assert_memory_equal(in, out, sizeof(out));
	blk_close(b);
}

/* A read-only disk's new medium is read-only too. */
static void medium_of_a_read_only_disk(void **state)
{
	struct fixture *f = *state;
	need_dir(f);
	char second[160];
	snprintf(second, sizeof(second), "%s/second.img", f->dir);
	make_medium(f->path, 1 * MiB, 0xaa);
	make_medium(second, 1 * MiB, 0xcc);
	struct blk *b = open_disk(f, true, 0), *m = NULL;
	vt_err err = { 0 };
	assert_int_equal(blk_medium_open(b, second, BLK_FORMAT_AUTO, &m, &err), 0);
	blk_medium_swap(b, m);
	blk_medium_close(m);
	expect_first_sector(b, 0xcc);
	static uint8_t out[512];
	assert_int_equal(rw(b, BLK_OP_WRITE, 0, out, sizeof(out)), BLK_S_IOERR);
	expect_first_sector(b, 0xcc);
	blk_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(pattern_round_trip),
		BOTH(out_of_range_fails),
		BOTH(read_only_refuses_writes),
		BOTH(discard_punches_hole),
		BOTH(write_zeroes_unmap_punches),
		BOTH(write_zeroes_keeps_allocation),
		BOTH_TMPFS(discard_punches_hole),
		BOTH_TMPFS(write_zeroes_unmap_punches),
		BOTH_TMPFS(write_zeroes_keeps_allocation),
		BOTH(flush_completes_after_writes),
		BOTH(many_in_flight),
		BOTH(eventfd_signals_completion),
		BOTH(locked_image_cannot_be_opened_twice),
		BOTH(bad_paths_give_clear_errors),
		BOTH(serial_default_and_override),
		BOTH(medium_change),
		BOTH(medium_of_a_read_only_disk),
		cmocka_unit_test_setup_teardown(default_falls_back_without_io_uring, setup_uring, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
