/* libFuzzer target for the virtio-blk request parser: the input describes a descriptor chain (how many
 * readable and writable segments, their lengths, their bytes) and the device limits. Every segment is its
 * own heap block, so ASan sees any read or write past a descriptor. Checks the parser's promises: data and
 * status lie inside the writable/readable segments, data_len matches the iovecs, counts are bounded.
 * Build and run: tests/fuzz/run-fuzz-blk-req.sh [seconds]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/blk_req.h"

#define MAX_FUZZ_SEGS 12

static bool inside(const struct virtq_chain *c, unsigned from, unsigned to, const void *p, size_t len)
{
	for (unsigned i = from; i < to; i++) {
		const uint8_t *b = c->iov[i].iov_base;
		if ((const uint8_t *)p >= b && (const uint8_t *)p + len <= b + c->iov[i].iov_len)
			return true;
	}
	return false;
}

static void check(const struct virtq_chain *c, enum blk_req_verdict v, const struct blk_req_parsed *o)
{
	if (v == BLK_REQ_NO_STATUS)
		return;
	if (!o->status || !inside(c, c->nread, c->nread + c->nwrite, o->status, 1))
		abort();
	*o->status = (uint8_t)v;                 /* the device writes it: must be writable memory */
	if (v != BLK_REQ_OK)
		return;
	uint64_t total = 0;
	for (unsigned i = 0; i < o->ndata; i++) {
		if (!inside(c, 0, c->nread + c->nwrite, o->data[i].iov_base, o->data[i].iov_len))
			abort();
		total += o->data[i].iov_len;
	}
	if (total != o->data_len || o->nsegs > BLK_REQ_MAX_SEGS || o->ndata > c->nread + c->nwrite)
		abort();
	if ((o->type == VIRTIO_BLK_T_IN || o->type == VIRTIO_BLK_T_OUT) && (total == 0 || total % 512))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 6)
		return 0;
	struct blk_req_limits lim = { data[2] % 8, 1u << (data[3] % 24), data[4] % 4, 1u << (data[5] % 24) };
	unsigned nread = data[0] % MAX_FUZZ_SEGS, nwrite = data[1] % MAX_FUZZ_SEGS;
	data += 6, size -= 6;
	if (size < nread + nwrite)
		return 0;
	static struct virtq_chain chain;          /* 16 KiB: keep it off the stack */
	static struct blk_req_parsed out;
	memset(&chain, 0, sizeof(chain));
	const uint8_t *lens = data;
	data += nread + nwrite, size -= nread + nwrite;
	for (unsigned i = 0; i < nread + nwrite; i++) {
		/* Lengths 1..64, or 512/520/1024-ish so whole-sector data is reachable. */
		size_t len = lens[i] < 192 ? (size_t)(lens[i] % 64) + 1 : (size_t)(lens[i] - 191) * 8 + 448;
		uint8_t *p = malloc(len);
		size_t take = len < size ? len : size;
		memcpy(p, data, take);
		memset(p + take, 0, len - take);
		data += take, size -= take;
		chain.iov[i] = (struct iovec){ p, len };
		if (i < nread)
			chain.nread++, chain.read_len += len;
		else
			chain.nwrite++, chain.write_len += len;
	}
	check(&chain, blk_req_parse(&chain, &lim, &out), &out);
	for (unsigned i = 0; i < nread + nwrite; i++)
		free(chain.iov[i].iov_base);
	return 0;
}
