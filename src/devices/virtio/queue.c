/* Split virtqueue (virtio 1.x, 2.7). Stand-in implementation of queue.h written by the vpci branch so the
 * transport links and runs; the vqueue branch owns this file and its version replaces this one. */
#include "devices/virtio/queue.h"

#include <string.h>

#define DESC_SIZE 16

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static uint16_t *avail_ring(const struct virtq *q) { return gmem_ptr(q->mem, q->avail_gpa, 6 + 2ULL * q->size); }
static uint8_t *used_ring(const struct virtq *q) { return gmem_ptr(q->mem, q->used_gpa, 6 + 8ULL * q->size); }

int virtq_init(struct virtq *q)
{
	q->last_avail = q->used_idx = q->signalled_used = 0;
	q->signalled_valid = false;
	q->broken = false;
	if (!q->mem || !q->size || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return -1;
	if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
		return -1;
	if (!gmem_ptr(q->mem, q->desc_gpa, (uint64_t)DESC_SIZE * q->size) || !avail_ring(q) || !used_ring(q))
		return -1;
	return 0;
}

static int fail(struct virtq *q)
{
	q->broken = true;
	return -1;
}

static int add_segment(struct virtq *q, struct virtq_chain *c, const struct desc *d)
{
	if (d->len == 0 || c->nread + c->nwrite >= VIRTQ_MAX_SEGS)
		return -1;
	void *p = gmem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return -1;
	bool w = d->flags & VIRTQ_DESC_F_WRITE;
	if (!w && c->nwrite)
		return -1; /* readable after writable */
	c->iov[c->nread + c->nwrite] = (struct iovec){ .iov_base = p, .iov_len = d->len };
	if (w)
		c->nwrite++, c->write_len += d->len;
	else
		c->nread++, c->read_len += d->len;
	return 0;
}

static int walk(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = gmem_ptr(q->mem, q->desc_gpa, (uint64_t)DESC_SIZE * q->size);
	uint32_t tsize = q->size, idx = head, count = 0;
	bool in_indirect = false;
	for (;;) {
		struct desc d;
		if (idx >= tsize || ++count > tsize)
			return -1; /* out of range, or a loop */
		memcpy(&d, table + (size_t)idx * DESC_SIZE, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT) || !d.len || d.len % DESC_SIZE)
				return -1;
			if (!(table = gmem_ptr(q->mem, d.addr, d.len)))
				return -1;
			tsize = d.len / DESC_SIZE, idx = 0, count = 0, in_indirect = true;
			continue;
		}
		if (add_segment(q, c, &d) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
	if (q->broken)
		return -1;
	uint16_t *avail = avail_ring(q);
	uint16_t idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
	if (idx == q->last_avail)
		return 0;
	if ((uint16_t)(idx - q->last_avail) > q->size)
		return fail(q);
	uint16_t head = __atomic_load_n(&avail[2 + q->last_avail % q->size], __ATOMIC_ACQUIRE);
	chain->head = head;
	chain->nread = chain->nwrite = 0;
	chain->read_len = chain->write_len = 0;
	if (head >= q->size || walk(q, head, chain) < 0)
		return fail(q);
	q->last_avail++;
	if (q->event_idx) /* ask for a kick as soon as anything new arrives */
		__atomic_store_n(&((uint16_t *)(used_ring(q) + 4 + 8ULL * q->size))[0], q->last_avail, __ATOMIC_RELEASE);
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	uint8_t *used = used_ring(q);
	uint32_t elem[2] = { head, written };
	memcpy(used + 4 + 8ULL * (q->used_idx % q->size), elem, sizeof(elem));
	q->used_idx++;
	__atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t *avail = avail_ring(q);
	if (!q->event_idx)
		return !(__atomic_load_n(&avail[0], __ATOMIC_ACQUIRE) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	uint16_t used_event = __atomic_load_n(&avail[2 + q->size], __ATOMIC_ACQUIRE);
	bool valid = q->signalled_valid;
	uint16_t old = q->signalled_used;
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return !valid || virtq_need_event(used_event, q->used_idx, old);
}

bool virtq_enable_notify(struct virtq *q, bool enable)
{
	uint8_t *used = used_ring(q);
	if (q->event_idx) {
		if (enable)
			__atomic_store_n((uint16_t *)(used + 4 + 8ULL * q->size), q->last_avail, __ATOMIC_RELEASE);
	} else {
		uint16_t flags = enable ? 0 : VIRTQ_USED_F_NO_NOTIFY;
		__atomic_store_n((uint16_t *)used, flags, __ATOMIC_RELEASE);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&avail_ring(q)[1], __ATOMIC_ACQUIRE) != q->last_avail;
}
