/* Split virtqueues (virtio 1.x, 2.7). The guest may rewrite any ring byte at any moment, so: every address
 * goes through gmem_ptr(), each descriptor is copied once and only the copy is checked and used, and the
 * first malformed thing breaks the queue for good (a broken queue never touches guest memory again). */
#include "devices/virtio/queue.h"

#include <endian.h>
#include <string.h>

/* Ring layout (2.7.5, 2.7.6, 2.7.8): byte offsets inside each area. */
#define DESC_SIZE          16
#define RING_FLAGS_OFF     0
#define RING_IDX_OFF       2
#define RING_ENTRIES_OFF   4
#define AVAIL_ENTRY_SIZE   2
#define USED_ENTRY_SIZE    8

/* One descriptor: in guest memory (little-endian), and as the device uses it after one read (host order). */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* State of one chain walk: where segments go and what ordering rules have been seen so far. */
struct walk {
	const struct virtq *q;
	struct virtq_chain *chain;
	bool seen_writable;
};

static uint64_t desc_table_bytes(uint16_t size) { return (uint64_t)size * DESC_SIZE; }
static uint64_t avail_bytes(uint16_t size) { return RING_ENTRIES_OFF + (uint64_t)size * AVAIL_ENTRY_SIZE + 2; }
static uint64_t used_bytes(uint16_t size) { return RING_ENTRIES_OFF + (uint64_t)size * USED_ENTRY_SIZE + 2; }

/* Shared ring fields are read and written as single relaxed atomics: one access each, never torn. The
 * offsets are aligned because virtq_init checked the area alignments. */
static uint16_t load16(const uint8_t *area, uint64_t off)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)(area + off), __ATOMIC_RELAXED));
}

static void store16(uint8_t *area, uint64_t off, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)(area + off), htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint8_t *area, uint64_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)(area + off), htole32(v), __ATOMIC_RELAXED);
}

static uint64_t avail_entry_off(const struct virtq *q, uint16_t idx)
{
	return RING_ENTRIES_OFF + (uint64_t)(idx & (q->size - 1)) * AVAIL_ENTRY_SIZE;
}

static uint64_t used_entry_off(const struct virtq *q, uint16_t idx)
{
	return RING_ENTRIES_OFF + (uint64_t)(idx & (q->size - 1)) * USED_ENTRY_SIZE;
}

/* used_event ends the avail ring, avail_event ends the used ring (2.7.7, 2.7.10). */
static uint64_t used_event_off(const struct virtq *q) { return RING_ENTRIES_OFF + (uint64_t)q->size * AVAIL_ENTRY_SIZE; }
static uint64_t avail_event_off(const struct virtq *q) { return RING_ENTRIES_OFF + (uint64_t)q->size * USED_ENTRY_SIZE; }

static int guest_error(struct virtq *q)
{
	q->broken = true;
	return -1;
}

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* Resolve one ring area: aligned as the spec requires and wholly inside one RAM region. */
static uint8_t *map_area(const struct guest_mem *mem, uint64_t gpa, uint64_t len, uint64_t align)
{
	if (gpa & (align - 1))
		return NULL;
	return gmem_ptr(mem, gpa, len);
}

int virtq_init(struct virtq *q)
{
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	q->desc_hva = q->avail_hva = q->used_hva = NULL;
	q->ready = false;
	q->broken = true; /* until every check below passed */
	if (!q->mem || q->size > VIRTQ_MAX_SIZE || !is_pow2(q->size))
		return -1;
	q->desc_hva = map_area(q->mem, q->desc_gpa, desc_table_bytes(q->size), 16);
	q->avail_hva = map_area(q->mem, q->avail_gpa, avail_bytes(q->size), 2);
	q->used_hva = map_area(q->mem, q->used_gpa, used_bytes(q->size), 4);
	if (!q->desc_hva || !q->avail_hva || !q->used_hva)
		return -1;
	q->broken = false;
	q->ready = true;
	return 0;
}

void virtq_disable(struct virtq *q)
{
	memset(q, 0, sizeof(*q)); /* ready = false */
}

/* Copy one descriptor out of guest memory exactly once. memcpy copes with unaligned indirect tables; the
 * compiler barrier stops the compiler from re-reading guest memory in place of the local copy. */
static struct desc read_desc(const uint8_t *table, uint32_t i)
{
	struct desc raw; /* same layout as the guest's, little-endian */
	_Static_assert(sizeof(raw) == DESC_SIZE, "descriptor layout");
	memcpy(&raw, table + (uint64_t)i * DESC_SIZE, sizeof(raw));
	__asm__ __volatile__("" ::: "memory");
	return (struct desc){ .addr = le64toh(raw.addr), .len = le32toh(raw.len), .flags = le16toh(raw.flags),
			      .next = le16toh(raw.next) };
}

/* Append one data buffer to the chain. Totals are kept within uint32 so that the used ring's le32 len (and
 * device code) can always represent them. */
static int add_segment(struct walk *w, const struct desc *d)
{
	struct virtq_chain *c = w->chain;
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	if (!c) { /* a walk that only marks what the device wrote (mark_device_writes) */
		if (writable)
			gmem_mark_dirty(w->q->mem, d->addr, d->len);
		return 0;
	}
	if (d->len == 0 || d->addr + d->len < d->addr)
		return -1;
	if (!writable && w->seen_writable)
		return -1; /* 2.7.4.2: readable buffers come first */
	if (c->nread + c->nwrite >= VIRTQ_MAX_SEGS)
		return -1;
	uint64_t *total = writable ? &c->write_len : &c->read_len;
	if (*total + d->len > UINT32_MAX)
		return -1;
	void *hva = gmem_ptr(w->q->mem, d->addr, d->len);
	if (!hva)
		return -1;
	c->iov[c->nread + c->nwrite] = (struct iovec){ .iov_base = hva, .iov_len = d->len };
	*total += d->len;
	if (writable) {
		c->nwrite++;
		w->seen_writable = true;
	} else {
		c->nread++;
	}
	return 0;
}

static int walk_table(struct walk *w, const uint8_t *table, uint32_t n, uint16_t first, bool in_indirect);

/* An indirect descriptor (2.7.5.3): the table replaces the rest of the chain, so it must be last; tables
 * do not nest. Its WRITE flag means nothing and is ignored, as the spec requires. */
static int walk_indirect(struct walk *w, const struct desc *d, bool in_indirect)
{
	if (!w->q->indirect || in_indirect || (d->flags & VIRTQ_DESC_F_NEXT))
		return -1;
	if (d->len == 0 || d->len % DESC_SIZE || d->addr + d->len < d->addr)
		return -1;
	const uint8_t *table = gmem_ptr(w->q->mem, d->addr, d->len);
	if (!table)
		return -1;
	return walk_table(w, table, d->len / DESC_SIZE, 0, true);
}

/* Follow NEXT links through one table of n descriptors. A chain cannot have more links than the table
 * has entries, so counting steps bounds every loop without remembering visited entries. The total
 * number of segments is bounded separately by VIRTQ_MAX_SEGS in add_segment. */
static int walk_table(struct walk *w, const uint8_t *table, uint32_t n, uint16_t first, bool in_indirect)
{
	uint32_t i = first;
	for (uint32_t steps = 1;; steps++) {
		if (i >= n || steps > n)
			return -1;
		struct desc d = read_desc(table, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return walk_indirect(w, &d, in_indirect);
		if (add_segment(w, &d) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

static void chain_reset(struct virtq_chain *c, uint16_t head)
{
	c->head = head;
	c->nread = c->nwrite = 0;
	c->read_len = c->write_len = 0;
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
	chain_reset(chain, 0);
	if (q->broken)
		return -1;
	if (!q->ready)
		return 0;
	uint16_t avail_idx = load16(q->avail_hva, RING_IDX_OFF);
	uint16_t pending = avail_idx - q->last_avail;
	if (pending > q->size)
		return guest_error(q);
	if (pending == 0)
		return 0;
	/* Pairs with the driver's write barrier before it published avail->idx: the ring entry and the
	 * descriptors it names are visible once the index is. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint16_t head = load16(q->avail_hva, avail_entry_off(q, q->last_avail));
	chain_reset(chain, head);
	struct walk w = { .q = q, .chain = chain };
	if (walk_table(&w, q->desc_hva, q->size, head, false) < 0) {
		chain_reset(chain, head);
		return guest_error(q);
	}
	q->last_avail++;
	return 1;
}

/* While a migration runs, what the device wrote into guest memory must be sent again (KVM's dirty log sees
 * only the guest's writes): the used ring, and with a head the chain's writable buffers, walked again from
 * the descriptors as they are now (a guest that changed them only loses its own data). */
static void mark_device_writes(struct virtq *q, int head)
{
	if (!__atomic_load_n(&q->mem->track_user_writes, __ATOMIC_RELAXED))
		return;
	gmem_mark_dirty(q->mem, q->used_gpa, used_bytes(q->size));
	if (head >= 0) {
		struct walk w = { .q = q };
		walk_table(&w, q->desc_hva, q->size, (uint16_t)head, false);
	}
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	if (!virtq_usable(q))
		return;
	mark_device_writes(q, head);
	uint64_t off = used_entry_off(q, q->used_idx);
	store32(q->used_hva, off, head);
	store32(q->used_hva, off + 4, written);
	/* The driver must see the entry before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx++;
	store16(q->used_hva, RING_IDX_OFF, q->used_idx);
}

void virtq_fill(struct virtq *q, unsigned i, uint16_t head, uint32_t written)
{
	if (!virtq_usable(q))
		return;
	mark_device_writes(q, head);
	uint64_t off = used_entry_off(q, (uint16_t)(q->used_idx + i));
	store32(q->used_hva, off, head);
	store32(q->used_hva, off + 4, written);
}

void virtq_flush(struct virtq *q, unsigned n)
{
	if (!virtq_usable(q))
		return;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx = (uint16_t)(q->used_idx + n);
	store16(q->used_hva, RING_IDX_OFF, q->used_idx);
}

void virtq_unpop(struct virtq *q, unsigned n)
{
	q->last_avail = (uint16_t)(q->last_avail - n);
}

bool virtq_should_notify(struct virtq *q)
{
	if (!virtq_usable(q))
		return false;
	/* used->idx must be visible before we read the driver's suppression state, or the driver could
	 * decide to wait for an interrupt we decide not to send. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(q->avail_hva, RING_FLAGS_OFF) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	uint16_t event = load16(q->avail_hva, used_event_off(q));
	uint16_t old = q->signalled_used;
	bool valid = q->signalled_valid;
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return !valid || virtq_need_event(event, q->used_idx, old);
}

bool virtq_enable_notify(struct virtq *q, bool enable)
{
	if (!virtq_usable(q))
		return false;
	mark_device_writes(q, -1);
	if (q->event_idx) {
		/* Disabling needs no write: the driver notifies at most once more, when it passes the
		 * avail_event we last wrote. */
		if (enable)
			store16(q->used_hva, avail_event_off(q), q->last_avail);
	} else {
		store16(q->used_hva, RING_FLAGS_OFF, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
	}
	/* The write above must be visible before we look at avail->idx again: otherwise a buffer added in
	 * between would be seen by neither side. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(q->avail_hva, RING_IDX_OFF) != q->last_avail;
}

bool virtq_positions(const struct virtq *q, struct virtq_positions *p)
{
	if (!virtq_usable(q))
		return false;
	*p = (struct virtq_positions){ .avail_idx = load16(q->avail_hva, RING_IDX_OFF), .last_avail = q->last_avail,
				       .used_idx = q->used_idx, .used_event = load16(q->avail_hva, used_event_off(q)),
				       .avail_event = load16(q->used_hva, avail_event_off(q)) };
	return true;
}
