/* libFuzzer target for the split virtqueue: the input is a hostile guest's memory. Every popped chain must
 * lie inside guest memory (each iov byte is read, writable ones written, so ASan sees any stray pointer),
 * lengths must add up, and a guest error must leave a queue that refuses everything afterwards.
 * Build and run: tests/fuzz/run-fuzz-virtq.sh [seconds].
 *
 * Input: 4 header bytes, then guest memory (copied to a buffer of exactly that size, so ASan's redzone
 * starts where guest RAM ends):
 *   byte 0   queue size = 1 << (byte % 9)            (1..256)
 *   byte 1   bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 the device writes into writable buffers
 *   byte 2-3 starting ring index (le16) of last_avail / used_idx
 * Layout in guest memory: descriptor table at 0, avail ring right after it, used ring after that
 * (4-aligned), anything beyond is free for buffers and indirect tables. */
#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/queue.h"

#define HEADER_SIZE 4

struct fuzz_mem {
	uint8_t *ram;
	size_t size;
};

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void place_rings(struct virtq *q, const uint8_t *hdr, const struct guest_mem *mem)
{
	q->size = (uint16_t)(1u << (hdr[0] % 9));
	q->event_idx = hdr[1] & 1;
	q->indirect = hdr[1] & 2;
	q->mem = mem;
	q->desc_gpa = 0;
	q->avail_gpa = (uint64_t)q->size * 16;
	q->used_gpa = (q->avail_gpa + 6 + 2ULL * q->size + 3) & ~3ULL;
}

/* Every segment must be inside guest RAM; touch each byte so that ASan would catch it otherwise. */
static void touch_chain(const struct fuzz_mem *m, const struct virtq_chain *c, bool write)
{
	uint64_t read_len = 0, write_len = 0;
	volatile uint8_t sink = 0;
	check(c->nread + c->nwrite >= 1 && c->nread + c->nwrite <= VIRTQ_MAX_SEGS);
	for (unsigned i = 0; i < c->nread + c->nwrite; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t len = c->iov[i].iov_len;
		check(len > 0 && p >= m->ram && len <= m->size && (size_t)(p - m->ram) <= m->size - len);
		for (size_t j = 0; j < len; j++)
			sink ^= p[j];
		if (i >= c->nread && write)
			memset(p, 0xa5, len);
		*(i < c->nread ? &read_len : &write_len) += len;
	}
	(void)sink;
	check(read_len == c->read_len && write_len == c->write_len);
	check(c->read_len <= UINT32_MAX && c->write_len <= UINT32_MAX);
}

/* After a guest error nothing may touch guest memory: poison all of it so that ASan reports any access. */
static void check_broken_stays_away(struct virtq *q, const struct fuzz_mem *m, struct virtq_chain *c)
{
	check(q->broken);
	ASAN_POISON_MEMORY_REGION(m->ram, m->size);
	check(virtq_pop(q, c) == -1 && c->nread + c->nwrite == 0);
	virtq_push(q, 0, 0);
	check(!virtq_should_notify(q));
	check(!virtq_enable_notify(q, true));
	ASAN_UNPOISON_MEMORY_REGION(m->ram, m->size);
}

static void drain(struct virtq *q, const struct fuzz_mem *m, struct virtq_chain *chain_buf, bool write)
{
	struct virtq_chain *c = chain_buf;
	/* Bounded: writable buffers may overlap the rings and keep refilling them. */
	for (unsigned n = 0; n < 4u * q->size + 16; n++) {
		int r = virtq_pop(q, c);
		if (r < 0) {
			check_broken_stays_away(q, m, c);
			return;
		}
		if (r == 0)
			break;
		check(c->head < q->size);
		touch_chain(m, c, write);
		virtq_push(q, c->head, (uint32_t)c->write_len);
	}
	virtq_should_notify(q);
	virtq_enable_notify(q, false);
	virtq_enable_notify(q, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER_SIZE)
		return 0;
	struct fuzz_mem m = { .size = size - HEADER_SIZE };
	m.ram = malloc(m.size ? m.size : 1);
	check(m.ram != NULL);
	memcpy(m.ram, data + HEADER_SIZE, m.size);
	struct guest_mem mem;
	gmem_init_fixed(&mem, m.ram, m.size);
	struct virtq q = { 0 };
	place_rings(&q, data, &mem);
	if (virtq_init(&q) == 0) {
		q.last_avail = q.used_idx = (uint16_t)(data[2] | data[3] << 8);
		struct virtq_chain *chain = malloc(sizeof(*chain)); /* 16 KiB: off the stack */
		check(chain != NULL);
		drain(&q, &m, chain, data[1] & 4);
		free(chain);
	} else {
		check(q.broken);
	}
	free(m.ram);
	return 0;
}
