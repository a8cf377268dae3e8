/* virtio-blk request parser: well-formed requests in several framings, and every malformed case. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/virtio/blk_req.h"
#include "lib/util.h"

static const struct blk_req_limits limits = {
	.max_discard_seg = 4, .max_discard_sectors = 1 << 20,
	.max_write_zeroes_seg = 1, .max_write_zeroes_sectors = 1 << 16,
};

/* A chain under construction, backed by one buffer standing in for guest memory. */
struct builder {
	struct virtq_chain chain;
	uint8_t mem[64 * 1024];
	size_t used;
	struct blk_req_parsed out;
};

static int setup(void **state)
{
	*state = calloc(1, sizeof(struct builder));
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static uint8_t *add(struct builder *b, bool writable, const void *data, size_t len)
{
	struct virtq_chain *c = &b->chain;
	assert_true(b->used + len <= sizeof(b->mem));
	assert_true(writable || c->nwrite == 0);
	uint8_t *p = b->mem + b->used;
	if (data)
		memcpy(p, data, len);
	else
		memset(p, 0xcc, len);
	b->used += len;
	c->iov[c->nread + c->nwrite] = (struct iovec){ p, len };
	if (writable)
		c->nwrite++, c->write_len += len;
	else
		c->nread++, c->read_len += len;
	return p;
}

static void header(uint8_t h[16], uint32_t type, uint64_t sector)
{
	uint32_t t = htole32(type), z = 0;
	uint64_t s = htole64(sector);
	memcpy(h, &t, 4), memcpy(h + 4, &z, 4), memcpy(h + 8, &s, 8);
}

static uint8_t *add_header(struct builder *b, uint32_t type, uint64_t sector)
{
	uint8_t h[16];
	header(h, type, sector);
	return add(b, false, h, sizeof(h));
}

static void segment(uint8_t s[16], uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t sec = htole64(sector);
	uint32_t n = htole32(num), f = htole32(flags);
	memcpy(s, &sec, 8), memcpy(s + 8, &n, 4), memcpy(s + 12, &f, 4);
}

static enum blk_req_verdict parse(struct builder *b)
{
	return blk_req_parse(&b->chain, &limits, &b->out);
}

static void read_split_data(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_IN, 7);
	uint8_t *d1 = add(b, true, NULL, 1000);
	uint8_t *d2 = add(b, true, NULL, 3096);
	uint8_t *st = add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_OK);
	assert_int_equal(b->out.type, VIRTIO_BLK_T_IN);
	assert_int_equal(b->out.sector, 7);
	assert_int_equal(b->out.data_len, 4096);
	assert_int_equal(b->out.ndata, 2);
	assert_ptr_equal(b->out.data[0].iov_base, d1);
	assert_ptr_equal(b->out.data[1].iov_base, d2);
	assert_int_equal(b->out.data[1].iov_len, 3096);
	assert_ptr_equal(b->out.status, st);
}

static void read_status_in_data_descriptor(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_IN, 0);
	uint8_t *d = add(b, true, NULL, 513);
	assert_int_equal(parse(b), BLK_REQ_OK);
	assert_int_equal(b->out.ndata, 1);
	assert_int_equal(b->out.data[0].iov_len, 512);
	assert_ptr_equal(b->out.status, d + 512);
}

/* Header split 5 + 11, and the data starting in the same descriptor as the header's end. */
static void write_header_split_anywhere(void **state)
{
	struct builder *b = *state;
	uint8_t h[16 + 512];
	header(h, VIRTIO_BLK_T_OUT, 0x1122334455667788ULL);
	memset(h + 16, 0x42, 512);
	add(b, false, h, 5);
	uint8_t *rest = add(b, false, h + 5, sizeof(h) - 5);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_OK);
	assert_int_equal(b->out.sector, 0x1122334455667788ULL);
	assert_int_equal(b->out.ndata, 1);
	assert_ptr_equal(b->out.data[0].iov_base, rest + 11);
	assert_int_equal(b->out.data[0].iov_len, 512);
}

static void no_writable_part_has_no_status(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_OUT, 0);
	add(b, false, NULL, 512);
	assert_int_equal(parse(b), BLK_REQ_NO_STATUS);
	assert_null(b->out.status);
}

static void too_many_segments_has_no_status(void **state)
{
	struct builder *b = *state;
	b->chain.nread = VIRTQ_MAX_SEGS;
	b->chain.nwrite = 1;
	assert_int_equal(parse(b), BLK_REQ_NO_STATUS);
}

static void short_or_missing_header(void **state)
{
	struct builder *b = *state;
	uint8_t h[16];
	header(h, VIRTIO_BLK_T_FLUSH, 0);
	add(b, false, h, 15);
	uint8_t *st = add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);
	assert_ptr_equal(b->out.status, st);

	memset(&b->chain, 0, sizeof(b->chain));
	st = add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);
	assert_ptr_equal(b->out.status, st);
}

static void read_malformed(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_IN, 0);
	add(b, false, NULL, 512);           /* readable data on a read */
	add(b, true, NULL, 513);
	assert_int_equal(parse(b), BLK_REQ_IOERR);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_IN, 0);
	add(b, true, NULL, 100);            /* not whole sectors */
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_IN, 0);
	add(b, true, NULL, 1);              /* no data at all */
	assert_int_equal(parse(b), BLK_REQ_IOERR);
}

static void write_malformed(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_OUT, 0);
	add(b, false, NULL, 512);
	add(b, true, NULL, 2);              /* writable bytes besides the status */
	assert_int_equal(parse(b), BLK_REQ_IOERR);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_OUT, 0);
	add(b, false, NULL, 511);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);
}

static void flush_and_get_id(void **state)
{
	struct builder *b = *state;
	add_header(b, VIRTIO_BLK_T_FLUSH, 99);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_OK);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_FLUSH, 0);
	add(b, false, NULL, 512);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_GET_ID, 0);
	uint8_t *id = add(b, true, NULL, VIRTIO_BLK_ID_BYTES);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_OK);
	assert_int_equal(b->out.data_len, VIRTIO_BLK_ID_BYTES);
	assert_ptr_equal(b->out.data[0].iov_base, id);

	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_GET_ID, 0);
	add(b, true, NULL, VIRTIO_BLK_ID_BYTES - 1);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);
}

static void unknown_types_unsupported(void **state)
{
	struct builder *b = *state;
	uint32_t types[] = { 2, 3, 5, 10, 14, 0x80000000u, UINT32_MAX };
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		memset(&b->chain, 0, sizeof(b->chain));
		add_header(b, types[i], 0);
		uint8_t *st = add(b, true, NULL, 1);
		assert_int_equal(parse(b), BLK_REQ_UNSUPP);
		assert_ptr_equal(b->out.status, st);
	}
}

/* Discard / write-zeroes: the header and `n` segments, optionally with each segment split in two. */
static enum blk_req_verdict seg_request(struct builder *b, uint32_t type, const uint8_t (*segs)[16], unsigned n,
					bool split)
{
	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, type, 0);
	for (unsigned i = 0; i < n; i++) {
		if (split) {
			add(b, false, segs[i], 3);
			add(b, false, segs[i] + 3, 13);
		} else {
			add(b, false, segs[i], 16);
		}
	}
	add(b, true, NULL, 1);
	return parse(b);
}

static void discard_segments(void **state)
{
	struct builder *b = *state;
	uint8_t s[5][16];
	for (unsigned i = 0; i < 5; i++)
		segment(s[i], 1000 * i + 1, 8 * (i + 1), 0);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_DISCARD, s, 4, true), BLK_REQ_OK);
	assert_int_equal(b->out.nsegs, 4);
	assert_int_equal(b->out.segs[3].sector, 3001);
	assert_int_equal(b->out.segs[3].num_sectors, 32);
	assert_int_equal(b->out.segs[3].flags, 0);

	assert_int_equal(seg_request(b, VIRTIO_BLK_T_DISCARD, s, 5, false), BLK_REQ_IOERR);  /* > max_seg */
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_DISCARD, s, 0, false), BLK_REQ_IOERR);  /* none */
	segment(s[0], 0, (1 << 20) + 1, 0);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_DISCARD, s, 1, false), BLK_REQ_IOERR);  /* too long */
	segment(s[0], 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_DISCARD, s, 1, false), BLK_REQ_UNSUPP); /* unmap on discard */

	/* A segment list that is not whole segments. */
	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_DISCARD, 0);
	add(b, false, s[1], 12);
	add(b, true, NULL, 1);
	assert_int_equal(parse(b), BLK_REQ_IOERR);

	/* Writable bytes besides the status. */
	memset(&b->chain, 0, sizeof(b->chain));
	add_header(b, VIRTIO_BLK_T_DISCARD, 0);
	add(b, false, s[1], 16);
	add(b, true, NULL, 2);
	assert_int_equal(parse(b), BLK_REQ_IOERR);
}

static void write_zeroes_segments(void **state)
{
	struct builder *b = *state;
	uint8_t s[2][16];
	segment(s[0], 77, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	segment(s[1], 99, 16, 0);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_WRITE_ZEROES, s, 1, false), BLK_REQ_OK);
	assert_int_equal(b->out.segs[0].sector, 77);
	assert_int_equal(b->out.segs[0].flags, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_WRITE_ZEROES, s, 2, false), BLK_REQ_IOERR);  /* max 1 */
	segment(s[0], 0, 16, 2);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_WRITE_ZEROES, s, 1, false), BLK_REQ_UNSUPP); /* unknown flag */
	segment(s[0], 0, (1 << 16) + 1, 0);
	assert_int_equal(seg_request(b, VIRTIO_BLK_T_WRITE_ZEROES, s, 1, false), BLK_REQ_IOERR);
}

static void feature_not_offered_unsupported(void **state)
{
	struct builder *b = *state;
	struct blk_req_limits none = { 0 };
	uint8_t s[16];
	segment(s, 0, 8, 0);
	add_header(b, VIRTIO_BLK_T_DISCARD, 0);
	add(b, false, s, 16);
	add(b, true, NULL, 1);
	assert_int_equal(blk_req_parse(&b->chain, &none, &b->out), BLK_REQ_UNSUPP);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(read_split_data),
		T(read_status_in_data_descriptor),
		T(write_header_split_anywhere),
		T(no_writable_part_has_no_status),
		T(too_many_segments_has_no_status),
		T(short_or_missing_header),
		T(read_malformed),
		T(write_malformed),
		T(flush_and_get_id),
		T(unknown_types_unsupported),
		T(discard_segments),
		T(write_zeroes_segments),
		T(feature_not_offered_unsupported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
