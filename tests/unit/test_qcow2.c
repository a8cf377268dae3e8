/* qcow2 images (block/qcow2.h) against Debian's qemu-img, both ways: images qemu-img makes (plain, with
 * backing files, compressed, with internal snapshots, version 2, small clusters) are read and written here
 * and must read back what a shadow copy holds; every image written here must pass `qemu-img check` and
 * `qemu-img compare` against a raw file with the same data, and a chain of overlays made here must commit
 * with `qemu-img commit`. Hostile images are refused at open or give I/O errors, and a VMM killed while
 * allocating leaves at worst leaked clusters. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "block/qcow2.h"
#include "block/raw.h"
#include "lib/util.h"

#define MIB (1024 * 1024)

static char dir[] = "/var/tmp/virtus-qcow2-XXXXXX";

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A path in the test directory; valid for the next 15 calls. */
static char *img(const char *name)
{
	static char paths[16][256];
	static unsigned k;
	char *p = paths[k++ % 16];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static int setup(void **state)
{
	(void)state;
	if (sh("command -v qemu-img >/dev/null") != 0) {
		fprintf(stderr, "qemu-img is missing (package qemu-utils, installed by scripts/deps)\n");
		return -1;
	}
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return sh("rm -rf %s", dir);
}

/* An open image: the file and the driver on it. */
struct image {
	int fd;
	struct qcow2 *q;
};

static void open_img(struct image *im, const char *path, bool readonly)
{
	vt_err err;
	im->fd = open(path, readonly ? O_RDONLY : O_RDWR);
	assert_true(im->fd >= 0);
	if (qcow2_open(im->fd, path, readonly, &im->q, &err) < 0)
		fail_msg("qcow2_open %s: %s", path, err.msg);
}

static void close_img(struct image *im)
{
	qcow2_close(im->q);
	close(im->fd);
}

static void pwrite_q(struct image *im, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)buf, len };
	assert_int_equal(qcow2_io(im->q, true, &v, 1, off, len), (int64_t)len);
}

static void pread_q(struct image *im, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	assert_int_equal(qcow2_io(im->q, false, &v, 1, off, len), (int64_t)len);
}

/* A deterministic pattern: byte i of a write tagged t. */
static void fill(uint8_t *p, size_t len, unsigned tag)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(tag * 31 + i * 7 + (i >> 9));
}

/* The whole virtual disk equals the shadow buffer. */
static void assert_content(struct image *im, const uint8_t *shadow, size_t size)
{
	uint8_t *got = malloc(size);
	assert_non_null(got);
	pread_q(im, got, size, 0);
	for (size_t i = 0; i < size; i++)
		if (got[i] != shadow[i])
			fail_msg("byte %zu: 0x%02x, expected 0x%02x", i, got[i], shadow[i]);
	free(got);
}

static void write_shadow_file(const char *path, const uint8_t *shadow, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, shadow, size), 0);
	close(fd);
}

/* qemu-img check: 0 clean; with leaks_ok also 3 (leaked clusters only). */
static void assert_check(const char *path, bool leaks_ok)
{
	int st = sh("qemu-img check -q %s >%s/check.out 2>&1", path, dir);
	if (st != 0 && !(leaks_ok && st == 3)) {
		sh("cat %s/check.out >&2", dir);
		fail_msg("qemu-img check %s: status %d", path, st);
	}
}

static void assert_same_as_raw(const char *path, const uint8_t *shadow, size_t size)
{
	char *raw = img("shadow.raw");
	write_shadow_file(raw, shadow, size);
	assert_int_equal(sh("qemu-img compare -q -f raw -F qcow2 %s %s", raw, path), 0);
}

/* Writes of every alignment: inside a cluster, across clusters, whole clusters, the last bytes. */
static void write_mix(struct image *im, uint8_t *shadow, size_t size, uint64_t cs)
{
	static const struct { uint64_t off, len; } w[] = {
		{ 0, 512 }, { 4096, 8192 }, { 65536 - 512, 1024 }, { 3 * 65536, 65536 }, { 100 * 512, 300 * 512 },
		{ 1 * MIB + 512, 2 * MIB }, { 4096, 512 },
	};
	uint8_t *buf = malloc(4 * MIB);
	assert_non_null(buf);
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		uint64_t off = w[i].off % size, len = MIN(w[i].len, size - off);
		fill(buf, len, (unsigned)(i + cs));
		pwrite_q(im, buf, len, off);
		memcpy(shadow + off, buf, len);
	}
	fill(buf, 512, 99);
	pwrite_q(im, buf, 512, size - 512);
	memcpy(shadow + size - 512, buf, 512);
	free(buf);
}

static void created_image_round_trips_and_passes_check(void **state)
{
	(void)state;
	const size_t size = 8 * MIB;
	for (unsigned cb = 9; cb <= 21; cb += 4) {          /* 512 B, 8 KiB, 128 KiB, 2 MiB clusters */
		char name[32];
		snprintf(name, sizeof(name), "new-%u.qcow2", cb);
		char *path = img(name);
		vt_err err;
		struct qcow2_create_opts o = { .size = size, .cluster_bits = cb };
		if (qcow2_create(path, &o, &err) < 0)
			fail_msg("create: %s", err.msg);
		uint8_t *shadow = calloc(1, size);
		struct image im;
		open_img(&im, path, false);
		write_mix(&im, shadow, size, 1ULL << cb);
		assert_int_equal(qcow2_flush(im.q), 0);
		assert_content(&im, shadow, size);
		close_img(&im);
		assert_check(path, false);
		assert_same_as_raw(path, shadow, size);
		open_img(&im, path, true);                  /* and again from the file */
		assert_content(&im, shadow, size);
		close_img(&im);
		free(shadow);
	}
}

/* 512-byte clusters fill a refcount block every 128 KiB and the refcount table soon after: growth of both. */
static void small_clusters_grow_the_refcount_table(void **state)
{
	(void)state;
	const size_t size = 24 * MIB;
	char *path = img("grow.qcow2");
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o cluster_size=512 %s 24M", path), 0);
	uint8_t *shadow = calloc(1, size), *buf = malloc(size);
	fill(buf, size, 7);
	struct image im;
	open_img(&im, path, false);
	pwrite_q(&im, buf, size, 0);
	memcpy(shadow, buf, size);
	close_img(&im);
	assert_check(path, false);
	assert_same_as_raw(path, shadow, size);
	free(shadow);
	free(buf);
}

static void qemu_img_images_are_read_and_written(void **state)
{
	(void)state;
	const size_t size = 6 * MIB;
	uint8_t *shadow = malloc(size);
	fill(shadow, size, 3);
	char raw[256];
	snprintf(raw, sizeof(raw), "%s", img("data.raw"));     /* img()'s buffers are reused */
	write_shadow_file(raw, shadow, size);
	static const char *const variants[] = {
		"-o compat=1.1",                   /* version 3 */
		"-o compat=0.10",                  /* version 2 */
		"-o cluster_size=4096",
		"-c",                              /* compressed clusters */
		"-o refcount_bits=1", "-o refcount_bits=64",
	};
	for (size_t v = 0; v < ARRAY_SIZE(variants); v++) {
		char *path = img("conv.qcow2");
		unlink(path);
		assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 %s %s %s", variants[v], raw, path), 0);
		struct image im;
		open_img(&im, path, false);
		print_message("qemu-img convert %s\n", variants[v]);
		assert_content(&im, shadow, size);
		uint8_t *local = malloc(size);
		memcpy(local, shadow, size);
		write_mix(&im, local, size, v);
		assert_content(&im, local, size);
		close_img(&im);
		assert_check(path, false);
		assert_same_as_raw(path, local, size);
		free(local);
	}
	free(shadow);
}

static void backing_chain_reads_through_and_commits(void **state)
{
	(void)state;
	const size_t size = 4 * MIB;
	uint8_t *base_data = malloc(size), *shadow = malloc(size);
	fill(base_data, size, 11);
	char *raw = img("base.raw"), *base = img("base.qcow2"), *mid = img("mid.qcow2"), *top = img("top.qcow2");
	write_shadow_file(raw, base_data, size);
	assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 %s %s", raw, base), 0);
	/* mid: qemu-img's overlay (relative name); top: ours over a raw image, to show both backing kinds */
	assert_int_equal(sh("cd %s && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2", dir), 0);
	vt_err err;
	struct qcow2_create_opts o = { .backing = "mid.qcow2" };
	if (qcow2_create(top, &o, &err) < 0)
		fail_msg("create: %s", err.msg);
	memcpy(shadow, base_data, size);
	struct image im;
	open_img(&im, mid, false);
	uint8_t buf[3000];
	fill(buf, sizeof(buf), 5);
	pwrite_q(&im, buf, sizeof(buf), 70000);
	memcpy(shadow + 70000, buf, sizeof(buf));
	close_img(&im);
	open_img(&im, top, false);
	assert_content(&im, shadow, size);
	write_mix(&im, shadow, size, 2);
	assert_int_equal(qcow2_zero(im.q, 2 * MIB, 65536, QCOW2_ZERO_UNMAP), 0);   /* zero cluster over backing data */
	memset(shadow + 2 * MIB, 0, 65536);
	assert_content(&im, shadow, size);
	close_img(&im);
	assert_check(top, false);
	assert_check(mid, false);
	assert_int_equal(sh("qemu-img compare -q -f raw -F qcow2 %s %s", raw, base), 0);   /* base untouched */
	char *flat = img("flat.raw");
	write_shadow_file(flat, shadow, size);
	assert_int_equal(sh("qemu-img compare -q -f raw -F qcow2 %s %s", flat, top), 0);
	/* qemu-img commit: top into mid, then mid into base; base then holds everything */
	assert_int_equal(sh("qemu-img commit -q %s && qemu-img commit -q %s", top, mid), 0);
	assert_check(base, false);
	assert_int_equal(sh("qemu-img compare -q -f raw -F qcow2 %s %s", flat, base), 0);
	free(base_data);
	free(shadow);
}

static void internal_snapshots_are_preserved(void **state)
{
	(void)state;
	const size_t size = 4 * MIB;
	uint8_t *before = malloc(size), *after = malloc(size);
	fill(before, size, 21);
	char *raw = img("snap.raw"), *path = img("snap.qcow2");
	write_shadow_file(raw, before, size);
	unlink(path);
	assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 %s %s && qemu-img snapshot -c s1 %s", raw, path, path), 0);
	memcpy(after, before, size);
	struct image im;
	open_img(&im, path, false);
	write_mix(&im, after, size, 4);                  /* every cluster written is shared with s1: copied */
	assert_int_equal(qcow2_zero(im.q, 0, MIB, QCOW2_DISCARD), 0);
	memset(after, 0, MIB);
	assert_content(&im, after, size);
	close_img(&im);
	assert_check(path, false);
	assert_same_as_raw(path, after, size);
	assert_int_equal(sh("qemu-img snapshot -a s1 %s", path), 0);       /* the snapshot still holds the old data */
	assert_same_as_raw(path, before, size);
	free(before);
	free(after);
}

static uint64_t allocated_bytes(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void discard_gives_space_back(void **state)
{
	(void)state;
	const size_t size = 64 * MIB;
	char *path = img("thin.qcow2");
	vt_err err;
	struct qcow2_create_opts o = { .size = 10ULL << 30 };     /* a 10 GiB disk */
	if (qcow2_create(path, &o, &err) < 0)
		fail_msg("create: %s", err.msg);
	uint8_t *buf = malloc(size);
	fill(buf, size, 9);
	struct image im;
	open_img(&im, path, false);
	pwrite_q(&im, buf, size, MIB);
	assert_int_equal(qcow2_flush(im.q), 0);
	uint64_t full = allocated_bytes(path);
	assert_true(full >= size && full < size + 4 * MIB);      /* thin: the data, and little more */
	assert_int_equal(qcow2_zero(im.q, MIB, size, QCOW2_DISCARD), 0);
	memset(buf, 0xee, size);
	pread_q(&im, buf, size, MIB);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(buf[i], 0);
	close_img(&im);
	uint64_t after = allocated_bytes(path);
	assert_true(after < 2 * MIB);
	assert_check(path, false);
	free(buf);
}

struct worker {
	struct image *im;
	unsigned id;
	uint64_t base, len;
	uint8_t *shadow;
};

static void *write_region(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[12288];
	for (unsigned i = 0; i < 200; i++) {
		uint64_t off = w->base + (uint64_t)(rand_r(&w->id) % (unsigned)(w->len / 512 - 24)) * 512;
		size_t len = (size_t)(1 + rand_r(&w->id) % 24) * 512;
		fill(buf, len, i + w->id);
		struct iovec v = { buf, len };
		if (qcow2_io(w->im->q, true, &v, 1, off, len) != (int64_t)len)
			return (void *)1;
		memcpy(w->shadow + off, buf, len);
	}
	return NULL;
}

/* Four threads at once, as the block layer's worker pool runs them, allocating in disjoint regions. */
static void parallel_writers_keep_the_image_consistent(void **state)
{
	(void)state;
	const size_t size = 16 * MIB;
	char *path = img("par.qcow2");
	unlink(path);
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o cluster_size=16384 %s 16M", path), 0);
	uint8_t *shadow = calloc(1, size);
	struct image im;
	open_img(&im, path, false);
	pthread_t t[4];
	struct worker w[4];
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct worker){ &im, i + 1, i * (size / 4), size / 4, shadow };
		assert_int_equal(pthread_create(&t[i], NULL, write_region, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *res;
		pthread_join(t[i], &res);
		assert_null(res);
	}
	assert_content(&im, shadow, size);
	close_img(&im);
	assert_check(path, false);
	assert_same_as_raw(path, shadow, size);
	free(shadow);
}

/* kill -9 while clusters are being allocated: the image may leak clusters, never be corrupt. */
static void killed_writer_leaves_no_corruption(void **state)
{
	(void)state;
	char *path = img("kill.qcow2");
	unlink(path);
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o cluster_size=4096 %s 256M", path), 0);
	for (unsigned round = 0; round < 3; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct image im;
			open_img(&im, path, false);
			uint8_t buf[8192];
			for (unsigned i = 0;; i++) {
				fill(buf, sizeof(buf), i);
				struct iovec v = { buf, sizeof(buf) };
				qcow2_io(im.q, true, &v, 1, (uint64_t)((i * 7919u) % 30000u) * 8192, sizeof(buf));
			}
		}
		usleep(150000 + round * 100000);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		assert_check(path, true);
	}
}

/* A migration hands an image over: the new owner sees what the old one wrote once it is released. */
static void release_and_reload_hand_the_image_over(void **state)
{
	(void)state;
	char *path = img("hand.qcow2");
	unlink(path);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 8M", path), 0);
	struct image src, dst;
	open_img(&src, path, false);
	open_img(&dst, path, false);               /* opened early, as a destination does */
	uint8_t buf[65536], got[65536];
	fill(buf, sizeof(buf), 77);
	pwrite_q(&src, buf, sizeof(buf), 3 * MIB);
	qcow2_release(src.q);
	vt_err err;
	assert_int_equal(qcow2_reload(dst.q, &err), 0);
	pread_q(&dst, got, sizeof(got), 3 * MIB);
	assert_memory_equal(got, buf, sizeof(buf));
	close_img(&src);
	fill(buf, sizeof(buf), 78);
	pwrite_q(&dst, buf, sizeof(buf), 5 * MIB);
	close_img(&dst);
	assert_check(path, false);
}

/* ---- Hostile images ---- */

static void patch(const char *path, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void patch_be64(const char *path, uint64_t off, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	patch(path, off, b, 8);
}

static void patch_be32(const char *path, uint64_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	patch(path, off, b, 4);
}

static void assert_open_fails(const char *path, const char *words)
{
	vt_err err;
	struct qcow2 *q;
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(qcow2_open(fd, path, false, &q, &err), -1);
	if (!strstr(err.msg, words))
		fail_msg("'%s' does not say '%s'", err.msg, words);
	close(fd);
}

static char *fresh(void)
{
	char *path = img("hostile.qcow2");
	unlink(path);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 64M", path), 0);
	return path;
}

static void hostile_headers_are_refused(void **state)
{
	(void)state;
	char *p;
	p = fresh(), patch_be32(p, 20, 30), assert_open_fails(p, "cluster size");
	p = fresh(), patch_be32(p, 20, 8), assert_open_fails(p, "cluster size");
	p = fresh(), patch_be32(p, 4, 4), assert_open_fails(p, "version 4");
	p = fresh(), patch_be32(p, 32, 1), assert_open_fails(p, "encrypted");
	p = fresh(), patch_be64(p, 40, 1ULL << 40), assert_open_fails(p, "L1 table lies outside");
	p = fresh(), patch_be32(p, 36, 0x10000000), assert_open_fails(p, "L1 table");
	p = fresh(), patch_be32(p, 36, 0), assert_open_fails(p, "does not fit");
	p = fresh(), patch_be64(p, 48, 3), assert_open_fails(p, "refcount table");
	p = fresh(), patch_be32(p, 56, 0x7fffffff), assert_open_fails(p, "refcount table");
	p = fresh(), patch_be64(p, 24, 1ULL << 62), assert_open_fails(p, "virtual size");
	p = fresh(), patch_be64(p, 72, 1ULL << 40), assert_open_fails(p, "unknown incompatible");
	p = fresh(), patch_be64(p, 72, 2), assert_open_fails(p, "marked corrupt");
	p = fresh(), patch_be32(p, 100, 4096 * 32), assert_open_fails(p, "header length");
	p = fresh(), patch_be32(p, 96, 7), assert_open_fails(p, "refcount order");
	/* a header extension whose length runs past the header */
	p = fresh(), patch_be32(p, 112, 0x12345678), patch_be32(p, 116, 0x7fffffff), assert_open_fails(p, "runs past");
	/* a marked-corrupt image still opens read-only */
	p = fresh(), patch_be64(p, 72, 2);
	struct image im;
	open_img(&im, p, true);
	close_img(&im);
}

static void set_backing_name(const char *path, const char *name)
{
	patch_be64(path, 8, 4000);
	patch_be32(path, 16, (uint32_t)strlen(name));
	patch(path, 4000, name, strlen(name));
}

static void hostile_backing_files_are_refused(void **state)
{
	(void)state;
	char *a = img("loop-a.qcow2"), *b = img("loop-b.qcow2");
	unlink(a), unlink(b);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M && qemu-img create -q -f qcow2 %s 1M", a, b), 0);
	set_backing_name(a, "loop-b.qcow2");
	set_backing_name(b, "loop-a.qcow2");
	assert_open_fails(a, "loop");
	char *p = fresh();
	set_backing_name(p, "json:{\"file.filename\":\"/etc/passwd\"}");
	assert_open_fails(p, "protocols are not supported");
	p = fresh(), set_backing_name(p, "/dev/null"), assert_open_fails(p, "not a regular file");
	p = fresh(), set_backing_name(p, "/nonexistent/base.qcow2"), assert_open_fails(p, "cannot open its backing file");
	p = fresh(), set_backing_name(p, "."), assert_open_fails(p, "not a regular file");
	/* a chain deeper than the limit: each image backed by the next */
	char name[64], next[64];
	for (int i = QCOW2_MAX_CHAIN + 1; i >= 0; i--) {
		snprintf(name, sizeof(name), "%s/deep%d.qcow2", dir, i);
		snprintf(next, sizeof(next), "deep%d.qcow2", i + 1);
		if (i == QCOW2_MAX_CHAIN + 1)
			assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M", name), 0);
		else
			assert_int_equal(sh("qemu-img create -q -f qcow2 -u -b %s -F qcow2 %s 1M", next, name), 0);
	}
	snprintf(name, sizeof(name), "%s/deep0.qcow2", dir);
	assert_open_fails(name, "backing files in a chain");
}

/* Tables that point outside the file or at the header: I/O errors for the guest, never a crash. */
static void hostile_tables_give_io_errors(void **state)
{
	(void)state;
	char *p = fresh();
	struct image im;
	uint8_t buf[4096] = { 1 };
	open_img(&im, p, false);
	pwrite_q(&im, buf, sizeof(buf), 0);        /* allocates an L2 table and a data cluster */
	close_img(&im);
	uint8_t hdr[64];
	int fd = open(p, O_RDONLY);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	uint64_t l1_off = 0;
	for (int i = 0; i < 8; i++)
		l1_off = l1_off << 8 | hdr[40 + i];
	/* L1 entry 0 -> an L2 table far past the end of the file */
	patch_be64(p, l1_off, (1ULL << 63) | (1ULL << 40));
	open_img(&im, p, false);
	struct iovec v = { buf, sizeof(buf) };
	assert_int_equal(qcow2_io(im.q, false, &v, 1, 0, sizeof(buf)), -EIO);
	assert_int_equal(qcow2_io(im.q, true, &v, 1, 0, sizeof(buf)), -EIO);
	close_img(&im);
	/* L1 entry with reserved bits */
	patch_be64(p, l1_off, (1ULL << 63) | 0x1ff);
	open_img(&im, p, false);
	assert_int_equal(qcow2_io(im.q, false, &v, 1, 0, sizeof(buf)), -EIO);
	close_img(&im);
}

/* The block layer picks the format from the file, keeps a stated one, and guards a probed raw image. */
static void block_layer_detects_format_and_overlays(void **state)
{
	(void)state;
	char *q = img("blk.qcow2"), *raw = img("blk.raw");
	unlink(q);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 3M && truncate -s 1M %s", q, raw), 0);
	vt_err err;
	struct blk *b;
	struct blk_opts o = { .format = BLK_FORMAT_AUTO };
	assert_int_equal(blk_open_opts(q, &o, &b, &err), 0);
	assert_int_equal(blk_format_used(b), BLK_FORMAT_QCOW2);
	assert_int_equal(blk_sectors(b), 3 * MIB / 512);
	assert_int_equal(blk_engine_used(b), BLK_ENGINE_POOL);
	blk_close(b);
	o.format = BLK_FORMAT_QCOW2;
	assert_int_equal(blk_open_opts(raw, &o, &b, &err), -1);
	assert_non_null(strstr(err.msg, "not a qcow2 image"));
	o.format = BLK_FORMAT_RAW;
	assert_int_equal(blk_open_opts(q, &o, &b, &err), 0);        /* stated raw: the qcow2 file's bytes */
	assert_int_equal(blk_format_used(b), BLK_FORMAT_RAW);
	blk_close(b);
	o = (struct blk_opts){ .overlay = true };
	assert_int_equal(blk_open_opts(q, &o, &b, &err), 0);
	assert_true(blk_is_overlay(b));
	assert_int_equal(blk_sectors(b), 3 * MIB / 512);
	blk_close(b);
	o.readonly = true;
	assert_int_equal(blk_open_opts(q, &o, &b, &err), -1);
	assert_non_null(strstr(err.msg, "read-only or has an overlay"));
}

/* One request through the block layer, waited for; returns its status. */
static void rw_done(struct blk_req *req, enum blk_status status, size_t bytes)
{
	(void)bytes;
	*(int *)req->opaque = (int)status;
}

static int blk_rw(struct blk *b, bool write, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	int status = -1;
	struct blk_req r = { .op = write ? BLK_OP_WRITE : BLK_OP_READ, .sector = off / 512, .iov = &v, .niov = 1,
			     .done = rw_done, .opaque = &status };
	blk_submit(b, &r);
	blk_kick(b);
	while (status < 0)
		blk_wait_completions(b);
	return status;
}

static void blk_write_tag(struct blk *b, uint8_t *shadow, uint64_t off, size_t len, unsigned tag)
{
	fill(shadow + off, len, tag);
	assert_int_equal(blk_rw(b, true, shadow + off, len, off), BLK_S_OK);
}

static void assert_blk_content(struct blk *b, const uint8_t *shadow, size_t size)
{
	uint8_t *got = malloc(size);
	assert_non_null(got);
	assert_int_equal(blk_rw(b, false, got, size, 0), BLK_S_OK);
	assert_memory_equal(got, shadow, size);
	free(got);
}

/* path (of format fmt) holds exactly shadow: compared by qemu-img against a raw copy. */
static void assert_image_is(const char *path, const char *fmt, const uint8_t *shadow, size_t size)
{
	char *ref = img("expect.raw");
	write_shadow_file(ref, shadow, size);
	assert_int_equal(sh("qemu-img compare -q -f %s -F raw %s %s", fmt, path, ref), 0);
}

/* The same while a disk holds the image (qemu-img refuses any image with a lock on it, -U or not): read
 * through a second, read-only block device. */
static void assert_held_image_is(const char *path, enum blk_format fmt, const uint8_t *shadow, size_t size)
{
	vt_err err;
	struct blk *b;
	struct blk_opts o = { .readonly = true, .format = fmt };
	if (blk_open_opts(path, &o, &b, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(blk_sectors(b) * 512, size);
	assert_blk_content(b, shadow, size);
	blk_close(b);
}

/* Write-zeroes without unmap keeps a cluster's storage (a preallocated zero cluster, version 3; zeros
 * written in place, version 2), and the next write goes back to it; with unmap the storage is freed. */
static void write_zeroes_without_unmap_keeps_the_storage(void **state)
{
	(void)state;
	const size_t cs = 64 * 1024, size = MIB;
	for (unsigned v2 = 0; v2 <= 1; v2++) {
		char *p = img(v2 ? "keep-v2.qcow2" : "keep.qcow2");
		unlink(p);
		assert_int_equal(sh("qemu-img create -q -f qcow2 %s %s 1M", v2 ? "-o compat=0.10" : "", p), 0);
		uint8_t *shadow = calloc(1, size);
		assert_non_null(shadow);
		struct image im;
		open_img(&im, p, false);
		fill(shadow, 4 * cs, 1);
		pwrite_q(&im, shadow, 4 * cs, 0);
		uint64_t host[2], again;
		int fd;
		for (unsigned c = 0; c < 2; c++) {
			assert_true(qcow2_map_direct(im.q, false, c * cs, 4096, &fd, &host[c]));
			qcow2_direct_done(im.q);
		}
		assert_int_equal(fsync(im.fd), 0);
		uint64_t used = allocated_bytes(p);
		assert_int_equal(qcow2_zero(im.q, 0, 2 * cs, QCOW2_ZERO_KEEP), 0);
		memset(shadow, 0, 2 * cs);
		assert_content(&im, shadow, size);
		assert_int_equal(fsync(im.fd), 0);
		assert_int_equal(allocated_bytes(p), used);                 /* nothing punched */
		fill(shadow + 4096, 4096, 2);
		pwrite_q(&im, shadow + 4096, 4096, 4096);
		assert_true(qcow2_map_direct(im.q, true, 0, 4096, &fd, &again));
		qcow2_direct_done(im.q);
		assert_int_equal(again, host[0]);                            /* the same storage again */
		assert_content(&im, shadow, size);
		/* with unmap, cluster 1's storage goes back to the file system */
		assert_int_equal(qcow2_zero(im.q, cs, cs, QCOW2_ZERO_UNMAP), 0);
		assert_false(qcow2_map_direct(im.q, false, cs, 4096, &fd, &again));
		assert_int_equal(fsync(im.fd), 0);
		assert_true(allocated_bytes(p) <= used - cs);
		assert_content(&im, shadow, size);
		close_img(&im);
		assert_check(p, false);
		assert_same_as_raw(p, shadow, size);
		free(shadow);
	}
}

/* ---- Requests done in place by io_uring (qcow2_map_direct) ---- */

/* A write of whole new clusters places them one after another in the file (one transfer, one L2 write),
 * around a cluster already in place, over a backing file; the image reads back and checks clean. */
static void whole_cluster_writes_are_placed_in_runs(void **state)
{
	(void)state;
	const size_t cs = 64 * 1024, size = 4 * MIB;
	char *base = img("run-base.qcow2"), *p = img("run.qcow2");
	unlink(base), unlink(p);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 4M && qemu-io -c 'write -P 7 0 4M' %s >/dev/null && "
			    "qemu-img create -q -f qcow2 -b %s -F qcow2 %s", base, base, base, p), 0);
	uint8_t *shadow = malloc(size);
	assert_non_null(shadow);
	memset(shadow, 7, size);
	struct image im;
	open_img(&im, p, false);
	fill(shadow + 3 * cs, 4096, 1);
	pwrite_q(&im, shadow + 3 * cs, 4096, 3 * cs);                 /* cluster 3: copied up, in place */
	fill(shadow, 16 * cs, 2);
	pwrite_q(&im, shadow, 16 * cs, 0);                            /* 0-2 and 4-15: new, in two runs */
	assert_content(&im, shadow, size);
	uint64_t h[16];
	int fd;
	for (unsigned c = 0; c < 16; c++) {
		assert_true(qcow2_map_direct(im.q, false, c * cs, 4096, &fd, &h[c]));
		qcow2_direct_done(im.q);
	}
	for (unsigned c = 1; c < 16; c++)
		if (c != 3 && c != 4 && h[c] != h[c - 1] + cs)
			fail_msg("cluster %u at %llu, cluster %u at %llu: not one run", c - 1,
				 (unsigned long long)h[c - 1], c, (unsigned long long)h[c]);
	close_img(&im);
	assert_check(p, false);
	assert_same_as_raw(p, shadow, size);
	free(shadow);
}


/* Write len bytes of tag straight into the file at a mapping qcow2_map_direct gave, as io_uring would. */
static void write_at_mapping(int fd, uint64_t host, size_t len, unsigned tag, uint8_t *shadow)
{
	fill(shadow, len, tag);
	assert_int_equal(pwrite(fd, shadow, len, (off_t)host), (ssize_t)len);
}

/* Only clusters of the image itself, in place (for writes: not shared), contiguous and known from cached
 * tables are mapped; a mapping is where qcow2_io finds the data. */
static void in_place_mapping_only_where_it_is_safe(void **state)
{
	(void)state;
	const size_t cs = 64 * 1024;
	char *p = img("direct.qcow2");
	unlink(p);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M", p), 0);
	struct image im;
	open_img(&im, p, false);
	uint8_t buf[8192], got[8192];
	int fd;
	uint64_t host;
	assert_false(qcow2_map_direct(im.q, false, 0, 4096, &fd, &host));     /* not allocated */
	uint8_t *four = malloc(4 * cs);
	assert_non_null(four);
	fill(four, 4 * cs, 1);
	pwrite_q(&im, four, 4 * cs, 0);
	/* a write into cluster 0, through the file at the mapped offset, reads back through the image */
	assert_true(qcow2_map_direct(im.q, true, 4096, 4096, &fd, &host));
	assert_int_equal(fd, im.fd);
	write_at_mapping(fd, host, 4096, 2, buf);
	qcow2_direct_done(im.q);
	pread_q(&im, got, 4096, 4096);
	assert_memory_equal(got, buf, 4096);
	/* across two clusters: one mapping exactly where they follow each other in the file (clusters 2 and 3
	 * do: 0's allocation also placed the L2 table) */
	unsigned contiguous = 0;
	for (uint64_t c = 0; c < 3; c++) {
		uint64_t h0, h1;
		assert_true(qcow2_map_direct(im.q, false, c * cs, 4096, &fd, &h0));
		assert_true(qcow2_map_direct(im.q, false, (c + 1) * cs, 4096, &fd, &h1));
		qcow2_direct_done(im.q), qcow2_direct_done(im.q);
		bool span = qcow2_map_direct(im.q, true, (c + 1) * cs - 4096, 8192, &fd, &host);
		assert_int_equal(span, h1 == h0 + cs);
		if (!span)
			continue;
		contiguous++;
		assert_int_equal(host, h0 + cs - 4096);
		write_at_mapping(fd, host, 8192, 3, buf);
		qcow2_direct_done(im.q);
		pread_q(&im, got, 8192, (c + 1) * cs - 4096);
		assert_memory_equal(got, buf, 8192);
	}
	assert_true(contiguous > 0);
	assert_false(qcow2_map_direct(im.q, false, 3 * cs, 2 * cs, &fd, &host));   /* runs into cluster 4 */
	assert_false(qcow2_map_direct(im.q, false, MIB - 4096, 8192, &fd, &host)); /* past the disk's end */
	assert_false(qcow2_map_direct(im.q, false, 0, 0, &fd, &host));
	close_img(&im);
	/* an internal snapshot shares the clusters: reads in place, writes copy first (through qcow2_io) */
	assert_int_equal(sh("qemu-img snapshot -c s1 %s", p), 0);
	open_img(&im, p, false);
	assert_false(qcow2_map_direct(im.q, false, 0, 4096, &fd, &host));     /* its L2 table not read yet */
	pread_q(&im, got, 4096, 0);
	assert_true(qcow2_map_direct(im.q, false, 0, 4096, &fd, &host));
	qcow2_direct_done(im.q);
	assert_false(qcow2_map_direct(im.q, true, 0, 4096, &fd, &host));
	pwrite_q(&im, buf, 4096, 0);                                            /* now its own copy */
	assert_true(qcow2_map_direct(im.q, true, 0, 4096, &fd, &host));
	qcow2_direct_done(im.q);
	close_img(&im);
	open_img(&im, p, true);
	pread_q(&im, got, 4096, 0);
	assert_false(qcow2_map_direct(im.q, true, 0, 4096, &fd, &host));      /* read-only */
	assert_true(qcow2_map_direct(im.q, false, 0, 4096, &fd, &host));
	qcow2_direct_done(im.q);
	close_img(&im);
	assert_check(p, false);
	free(four);
}

struct discard_job {
	struct qcow2 *q;
	uint64_t off, len;
	atomic_int finished;
	int64_t result;
};

static void *discard_thread(void *arg)
{
	struct discard_job *j = arg;
	j->result = qcow2_zero(j->q, j->off, j->len, QCOW2_DISCARD);
	atomic_store(&j->finished, 1);
	return NULL;
}

/* A discard, which frees clusters, waits for the requests in place to finish: a freed cluster could be
 * handed out again at once, and a write still in flight to it would land in another part of the disk. */
static void discard_waits_for_requests_in_place(void **state)
{
	(void)state;
	const size_t cs = 64 * 1024;
	char *p = img("hold.qcow2");
	unlink(p);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M", p), 0);
	struct image im;
	open_img(&im, p, false);
	uint8_t *data = malloc(2 * cs), *got = malloc(cs), buf[4096];
	assert_non_null(data), assert_non_null(got);
	fill(data, 2 * cs, 1);
	pwrite_q(&im, data, 2 * cs, 0);
	int fd;
	uint64_t host;
	assert_true(qcow2_map_direct(im.q, true, 0, 4096, &fd, &host));
	struct discard_job j = { .q = im.q, .off = 0, .len = cs };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, discard_thread, &j), 0);
	usleep(200 * 1000);
	assert_int_equal(atomic_load(&j.finished), 0);                      /* held back */
	write_at_mapping(fd, host, 4096, 2, buf);                            /* the request in place lands */
	qcow2_direct_done(im.q);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.result, 0);
	/* cluster 0 reads as zeros; a new cluster (which may reuse its storage) holds its own data */
	pread_q(&im, got, cs, 0);
	for (size_t i = 0; i < cs; i++)
		if (got[i])
			fail_msg("byte %zu of the discarded cluster: 0x%02x", i, got[i]);
	fill(data, cs, 3);
	pwrite_q(&im, data, cs, 5 * cs);
	pread_q(&im, got, cs, 5 * cs);
	assert_memory_equal(got, data, cs);
	pread_q(&im, got, cs, cs);
	fill(data, 2 * cs, 1);
	assert_memory_equal(got, data + cs, cs);
	close_img(&im);
	assert_check(p, false);
	free(data);
	free(got);
}

/* Through the block layer with io_uring: rewrites and reads of allocated clusters go in place, while
 * allocations, discards and fresh writes run on the pool at the same time; rounds of requests in flight
 * together (never two on one cluster) leave the image equal to a shadow copy and clean to qemu-img. */
static void block_layer_mixes_in_place_and_pool_requests(void **state)
{
	(void)state;
	enum { CLUSTERS = 128, ROUNDS = 40, PER_ROUND = 48 };
	const size_t cs = 64 * 1024, size = CLUSTERS * cs;
	char *p = img("mixed.qcow2");
	unlink(p);
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s %zu", p, size), 0);
	vt_err err;
	struct blk *b;
	struct blk_opts o = { 0 };
	if (blk_open_opts(p, &o, &b, &err) < 0)
		fail_msg("%s", err.msg);
	uint8_t *shadow = calloc(1, size), *data = malloc(PER_ROUND * cs);
	assert_non_null(shadow), assert_non_null(data);
	struct blk_req req[PER_ROUND];
	struct iovec iov[PER_ROUND];
	int status[PER_ROUND];
	unsigned seed = 7, tag = 1;
	for (unsigned round = 0; round < ROUNDS; round++) {
		unsigned order[CLUSTERS];
		for (unsigned c = 0; c < CLUSTERS; c++)
			order[c] = c;
		for (unsigned c = CLUSTERS - 1; c > 0; c--) {
			unsigned k = rand_r(&seed) % (c + 1), t = order[c];
			order[c] = order[k], order[k] = t;
		}
		for (unsigned i = 0; i < PER_ROUND; i++) {
			uint64_t base = (uint64_t)order[i] * cs;
			unsigned kind = rand_r(&seed) % 4;
			status[i] = -1;
			req[i] = (struct blk_req){ .done = rw_done, .opaque = &status[i], .iov = &iov[i], .niov = 1 };
			if (kind == 0) {                     /* discard the whole cluster */
				req[i].op = BLK_OP_DISCARD;
				req[i].sector = base / 512, req[i].nsectors = (uint32_t)(cs / 512);
				memset(shadow + base, 0, cs);
				continue;
			}
			size_t len = kind == 1 ? cs : 4096 * (1 + (size_t)rand_r(&seed) % 4);
			uint64_t off = base + (kind == 1 ? 0 : 4096 * (rand_r(&seed) % (unsigned)((cs - len) / 4096 + 1)));
			bool write = kind != 3;
			iov[i] = (struct iovec){ data + (size_t)i * cs, len };
			if (write) {
				fill(data + (size_t)i * cs, len, tag++);
				memcpy(shadow + off, data + (size_t)i * cs, len);
			}
			req[i].op = write ? BLK_OP_WRITE : BLK_OP_READ;
			req[i].sector = off / 512;
		}
		for (unsigned i = 0; i < PER_ROUND; i++)
			blk_submit(b, &req[i]);
		blk_kick(b);
		while (blk_inflight(b) > 0)
			blk_wait_completions(b);
		for (unsigned i = 0; i < PER_ROUND; i++) {
			assert_int_equal(status[i], BLK_S_OK);
			if (req[i].op == BLK_OP_READ)
				assert_memory_equal(iov[i].iov_base, shadow + req[i].sector * 512, iov[i].iov_len);
		}
	}
	assert_blk_content(b, shadow, size);
	uint64_t in_place = blk_in_place_count(b);
	blk_close(b);
	/* io_uring where the kernel allows it (this test's raw twin tells), and then some requests in place */
	char *raw = img("mixed-probe.raw");
	assert_int_equal(sh("truncate -s 1M %s", raw), 0);
	assert_int_equal(blk_open_opts(raw, &o, &b, &err), 0);
	bool uring = blk_engine_used(b) == BLK_ENGINE_URING;
	blk_close(b);
	if (uring && in_place < ROUNDS)
		fail_msg("only %llu of the requests went in place", (unsigned long long)in_place);
	assert_image_is(p, "qcow2", shadow, size);
	assert_check(p, false);
	/* the pool engine, asked for, does everything itself */
	o.engine = BLK_ENGINE_POOL;
	assert_int_equal(blk_open_opts(p, &o, &b, &err), 0);
	assert_blk_content(b, shadow, size);
	assert_int_equal(blk_in_place_count(b), 0);
	blk_close(b);
	free(shadow);
	free(data);
}

/* A snapshot's disk checkpoint (blk_checkpoint), on a raw and on a qcow2 disk: the image keeps its content
 * under the layer's name while the disk goes on in a qcow2 overlay at its path (qemu-img sees the chain and
 * checks it clean); a second checkpoint chains; a restore makes the path an overlay over a layer again
 * (the later writes gone, other layers untouched) and is refused while a disk has the image open; a failed
 * checkpoint and an undo leave the disk as it was, with nothing left behind. */
static void checkpoint_freezes_the_image(const char *fmt)
{
	const size_t size = 2 * MIB;
	uint8_t *shadow = malloc(size), *at_first = malloc(size), *at_second = malloc(size);
	assert_non_null(shadow), assert_non_null(at_first), assert_non_null(at_second);
	char disk[256], layer1[256], layer2[256], layer3[256];
	snprintf(disk, sizeof(disk), "%s/ck-%s.img", dir, fmt);
	snprintf(layer1, sizeof(layer1), "%s/ck1-%s", dir, fmt);
	snprintf(layer2, sizeof(layer2), "%s/ck2-%s", dir, fmt);
	snprintf(layer3, sizeof(layer3), "%s/ck3-%s", dir, fmt);
	fill(shadow, size, 1);
	write_shadow_file(img("ck-start.raw"), shadow, size);
	assert_int_equal(sh("qemu-img convert -f raw -O %s %s %s", fmt, img("ck-start.raw"), disk), 0);
	vt_err err;
	struct blk *b;
	struct blk_opts o = { .format = BLK_FORMAT_AUTO };
	enum blk_format ffmt = !strcmp(fmt, "raw") ? BLK_FORMAT_RAW : BLK_FORMAT_QCOW2;
	assert_int_equal(blk_open_opts(disk, &o, &b, &err), 0);
	blk_write_tag(b, shadow, 64 * 1024, 128 * 1024, 2);
	memcpy(at_first, shadow, size);

	if (blk_checkpoint(b, layer1, &err) < 0)
		fail_msg("checkpoint: %s", err.msg);
	assert_int_equal(blk_format_used(b), BLK_FORMAT_QCOW2);
	blk_write_tag(b, shadow, 1 * MIB, 300 * 1024, 3);
	assert_blk_content(b, shadow, size);
	assert_held_image_is(layer1, ffmt, at_first, size);

	memcpy(at_second, shadow, size);
	if (blk_checkpoint(b, layer2, &err) < 0)
		fail_msg("second checkpoint: %s", err.msg);
	blk_write_tag(b, shadow, 0, 4096, 4);
	assert_blk_content(b, shadow, size);

	/* failures: a relative layer, a layer nowhere; an undo */
	assert_int_equal(blk_checkpoint(b, "rel/layer", &err), -1);
	assert_non_null(strstr(err.msg, "absolute"));
	assert_int_equal(blk_checkpoint(b, img("no/such/dir/layer"), &err), -1);
	assert_non_null(strstr(err.msg, "cannot keep the image"));
	assert_int_equal(blk_checkpoint(b, layer3, &err), 0);
	assert_int_equal(blk_checkpoint_undo(b, layer3, &err), 0);
	assert_int_equal(access(layer3, F_OK), -1);
	blk_write_tag(b, shadow, 512 * 1024, 4096, 5);
	assert_blk_content(b, shadow, size);
	assert_int_equal(sh("ls %s | grep -q -e checkpoint- -e restore-", dir), 1);

	assert_int_equal(blk_restore_layer(disk, layer1, &err), -1);     /* b has it open */
	assert_non_null(strstr(err.msg, "in use"));
	blk_close(b);
	assert_image_is(disk, "qcow2", shadow, size);
	assert_int_equal(sh("qemu-img check -q %s", disk), 0);
	assert_int_equal(sh("qemu-img info %s | grep -q '^backing file: %s$'", disk, layer2), 0);
	assert_int_equal(sh("qemu-img info %s | grep -q '^backing file: %s$'", layer2, layer1), 0);
	assert_image_is(layer1, fmt, at_first, size);
	assert_image_is(layer2, "qcow2", at_second, size);

	if (blk_restore_layer(disk, layer1, &err) < 0)
		fail_msg("restore: %s", err.msg);
	assert_image_is(disk, "qcow2", at_first, size);
	assert_image_is(layer1, fmt, at_first, size);
	assert_image_is(layer2, "qcow2", at_second, size);
	assert_int_equal(blk_open_opts(disk, &o, &b, &err), 0);          /* and it runs again */
	assert_blk_content(b, at_first, size);
	blk_close(b);
	assert_int_equal(sh("ls %s | grep -q -e checkpoint- -e restore-", dir), 1);
	free(shadow), free(at_first), free(at_second);
}

static void checkpoint_of_a_raw_disk(void **state)
{
	(void)state;
	checkpoint_freezes_the_image("raw");
}

static void checkpoint_of_a_qcow2_disk(void **state)
{
	(void)state;
	checkpoint_freezes_the_image("qcow2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(created_image_round_trips_and_passes_check),
		cmocka_unit_test(small_clusters_grow_the_refcount_table),
		cmocka_unit_test(qemu_img_images_are_read_and_written),
		cmocka_unit_test(backing_chain_reads_through_and_commits),
		cmocka_unit_test(internal_snapshots_are_preserved),
		cmocka_unit_test(discard_gives_space_back),
		cmocka_unit_test(parallel_writers_keep_the_image_consistent),
		cmocka_unit_test(killed_writer_leaves_no_corruption),
		cmocka_unit_test(release_and_reload_hand_the_image_over),
		cmocka_unit_test(hostile_headers_are_refused),
		cmocka_unit_test(hostile_backing_files_are_refused),
		cmocka_unit_test(hostile_tables_give_io_errors),
		cmocka_unit_test(block_layer_detects_format_and_overlays),
		cmocka_unit_test(checkpoint_of_a_raw_disk),
		cmocka_unit_test(checkpoint_of_a_qcow2_disk),
		cmocka_unit_test(in_place_mapping_only_where_it_is_safe),
		cmocka_unit_test(whole_cluster_writes_are_placed_in_runs),
		cmocka_unit_test(write_zeroes_without_unmap_keeps_the_storage),
		cmocka_unit_test(discard_waits_for_requests_in_place),
		cmocka_unit_test(block_layer_mixes_in_place_and_pool_requests),
	};
	return cmocka_run_group_tests_name("qcow2", tests, setup, teardown);
}
