/* virtio-blk request execution: chains built in fake guest memory, parsed, run on a real image file;
 * checks the status byte, the used length and the file. */
#include <endian.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "block/vblk.h"
#include "lib/util.h"

#define IMG_SECTORS 2048     /* 1 MiB */

static const struct blk_req_limits limits = {
	.max_discard_seg = 8, .max_discard_sectors = IMG_SECTORS,
	.max_write_zeroes_seg = 8, .max_write_zeroes_sectors = IMG_SECTORS,
};

struct ctx {
	char path[64];
	struct blk *disk;
	struct virtq_chain chain;
	struct blk_req_parsed parsed;
	uint8_t mem[256 * 1024];     /* stands in for guest memory */
	size_t used;
	int calls;                   /* done callbacks */
	uint16_t head;
	uint32_t used_len;
};

static void on_done(void *opaque, uint16_t head, uint32_t used_len)
{
	struct ctx *c = opaque;
	c->calls++;
	c->head = head;
	c->used_len = used_len;
}

static struct ctx *ctx_new(bool readonly)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "/var/tmp/virtus-vblk-XXXXXX");
	int fd = mkstemp(c->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SECTORS * 512), 0);
	close(fd);
	struct blk_opts o = { .readonly = readonly, .serial = "vblk-serial" };
	vt_err err;
	assert_int_equal(blk_open_opts(c->path, &o, &c->disk, &err), 0);
	return c;
}

static int setup(void **state) { *state = ctx_new(false); return 0; }

static int teardown(void **state)
{
	struct ctx *c = *state;
	blk_close(c->disk);
	unlink(c->path);
	free(c);
	return 0;
}

static void chain_reset(struct ctx *c)
{
	memset(&c->chain, 0, sizeof(c->chain));
	c->used = 0;
	c->calls = 0;
}

static uint8_t *add(struct ctx *c, bool writable, const void *data, size_t len)
{
	assert_true(c->used + len <= sizeof(c->mem));
	uint8_t *p = c->mem + c->used;
	if (data)
		memcpy(p, data, len);
	else
		memset(p, 0xcc, len);
	c->used += len;
	c->chain.iov[c->chain.nread + c->chain.nwrite] = (struct iovec){ p, len };
	if (writable)
		c->chain.nwrite++;
	else
		c->chain.nread++;
	return p;
}

static void add_header(struct ctx *c, uint32_t type, uint64_t sector)
{
	uint8_t h[16] = { 0 };
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);
	memcpy(h, &t, 4), memcpy(h + 8, &s, 8);
	add(c, false, h, sizeof(h));
}

static void add_segment(struct ctx *c, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint8_t s[16];
	uint64_t sec = htole64(sector);
	uint32_t n = htole32(num), f = htole32(flags);
	memcpy(s, &sec, 8), memcpy(s + 8, &n, 4), memcpy(s + 12, &f, 4);
	add(c, false, s, sizeof(s));
}

/* Parse and run the chain to the end; returns the used length, checks it came exactly once. */
static uint32_t run_chain(struct ctx *c, uint16_t head)
{
	enum blk_req_verdict v = blk_req_parse(&c->chain, &limits, &c->parsed);
	uint32_t used = 0xdead;
	if (!vblk_start(c->disk, &c->parsed, v, head, on_done, c, &used)) {
		assert_int_equal(c->calls, 0);
		return used;
	}
	blk_kick(c->disk);
	while (blk_inflight(c->disk) > 0)
		blk_wait_completions(c->disk);
	assert_int_equal(c->calls, 1);
	assert_int_equal(c->head, head);
	return c->used_len;
}

static void write_then_read(void **state)
{
	struct ctx *c = *state;
	uint8_t data[1536];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_OUT, 9);
	add(c, false, data, 1000);
	add(c, false, data + 1000, 536);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 7), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);

	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_IN, 9);
	uint8_t *in = add(c, true, NULL, 1536);
	st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 8), 1537);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
	assert_memory_equal(in, data, sizeof(data));

	uint8_t file[1536];
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, file, sizeof(file), 9 * 512), sizeof(file));
	close(fd);
	assert_memory_equal(file, data, sizeof(data));
}

static void out_of_range_is_ioerr(void **state)
{
	struct ctx *c = *state;
	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_IN, IMG_SECTORS);
	add(c, true, NULL, 512);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 1), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_IOERR);
}

static void read_only_write_is_ioerr(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(true);
	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_OUT, 0);
	add(c, false, NULL, 512);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 1), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_IOERR);
	void *s = c;
	teardown(&s);
}

static void get_id_writes_serial(void **state)
{
	struct ctx *c = *state;
	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_GET_ID, 0);
	uint8_t *id1 = add(c, true, NULL, 5);
	uint8_t *id2 = add(c, true, NULL, 15);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 3), 21);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
	assert_memory_equal(id1, "vblk-", 5);
	uint8_t rest[15] = "serial";
	assert_memory_equal(id2, rest, sizeof(rest));     /* NUL-padded */
}

static void discard_segments_and_flush(void **state)
{
	struct ctx *c = *state;
	uint8_t ones[4096];
	memset(ones, 1, sizeof(ones));
	int fd = open(c->path, O_RDWR | O_CLOEXEC);
	assert_int_equal(pwrite(fd, ones, sizeof(ones), 0), sizeof(ones));
	assert_int_equal(pwrite(fd, ones, sizeof(ones), 64 * 512), sizeof(ones));

	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_DISCARD, 0);
	add_segment(c, 0, 8, 0);
	add_segment(c, 64, 8, 0);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 2), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
	uint8_t back[4096], zero[4096] = { 0 };
	assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
	assert_memory_equal(back, zero, sizeof(zero));
	assert_int_equal(pread(fd, back, sizeof(back), 64 * 512), sizeof(back));
	assert_memory_equal(back, zero, sizeof(zero));

	/* The second segment is out of range: the request fails, after the first ran. */
	assert_int_equal(pwrite(fd, ones, sizeof(ones), 0), sizeof(ones));
	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	add_segment(c, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	add_segment(c, IMG_SECTORS - 1, 2, 0);
	st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 4), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
	assert_memory_equal(back, zero, sizeof(zero));
	close(fd);

	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_FLUSH, 0);
	st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 5), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
}

static void bad_chains_answered_at_once(void **state)
{
	struct ctx *c = *state;
	chain_reset(c);
	add_header(c, 42, 0);
	uint8_t *st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 1), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_UNSUPP);

	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_IN, 0);
	add(c, true, NULL, 100);
	st = add(c, true, NULL, 1);
	assert_int_equal(run_chain(c, 1), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_IOERR);

	chain_reset(c);
	add_header(c, VIRTIO_BLK_T_OUT, 0);
	add(c, false, NULL, 512);
	assert_int_equal(run_chain(c, 1), 0);      /* no status byte: nothing written */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(write_then_read),
		T(out_of_range_is_ioerr),
		cmocka_unit_test(read_only_write_is_ioerr),
		T(get_id_writes_serial),
		T(discard_segments_and_flush),
		T(bad_chains_answered_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
