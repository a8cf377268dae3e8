/* Split virtqueues over fake guest memory: rings are built by hand the way a driver would, and every
 * malformed chain the guest could write must break the queue without touching memory again.
 *
 * Fake guest memory is a PROT_NONE reservation the size of a 2-region guest (3 GiB low + 64 KiB high) with
 * only the first 64 KiB of each region readable, so huge lengths can be described without backing them, and
 * "never touches memory again" is checked by revoking all access: a stray read is a SIGSEGV (a failure). */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "devices/virtio/queue.h"
#include "lib/util.h"
#include "vmm/layout.h"

#define QSIZE      16
#define DESC_GPA   0x0000ULL
#define AVAIL_GPA  0x1000ULL
#define USED_GPA   0x2000ULL
#define TABLE_GPA  0x4000ULL   /* indirect tables, up to 0x9000 */
#define DATA_GPA   0x9000ULL
#define RW_SIZE    0x10000ULL  /* accessible bytes at the start of each region */
#define RAM_SIZE   (LAYOUT_MMIO_HOLE + RW_SIZE)

#define R 0
#define W VIRTQ_DESC_F_WRITE
#define N VIRTQ_DESC_F_NEXT
#define I VIRTQ_DESC_F_INDIRECT

struct fx {
	uint8_t *base;
	struct guest_mem mem;
	struct virtq q;
	struct virtq_chain chain;
	uint16_t avail_idx;   /* the driver's copy */
};

/* ---- fake guest memory and a hand-written driver side ---- */

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->base = mmap(NULL, RAM_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(f->base != MAP_FAILED);
	assert_int_equal(mprotect(f->base, RW_SIZE, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(mprotect(f->base + LAYOUT_MMIO_HOLE, RW_SIZE, PROT_READ | PROT_WRITE), 0);
	gmem_init_fixed(&f->mem, f->base, RAM_SIZE);
	f->q = (struct virtq){ .size = QSIZE, .desc_gpa = DESC_GPA, .avail_gpa = AVAIL_GPA, .used_gpa = USED_GPA,
			       .indirect = true, .mem = &f->mem };
	assert_int_equal(virtq_init(&f->q), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	munmap(f->base, RAM_SIZE);
	free(f);
	return 0;
}

static uint8_t *gpa(struct fx *f, uint64_t addr) { return gmem_ptr(&f->mem, addr, 1); }

static void put16(struct fx *f, uint64_t addr, uint16_t v) { v = htole16(v); memcpy(gpa(f, addr), &v, 2); }
static uint16_t get16(struct fx *f, uint64_t addr) { uint16_t v; memcpy(&v, gpa(f, addr), 2); return le16toh(v); }
static uint32_t get32(struct fx *f, uint64_t addr) { uint32_t v; memcpy(&v, gpa(f, addr), 4); return le32toh(v); }

static void put_desc(struct fx *f, uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = gpa(f, table + (uint64_t)i * 16);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), n = htole16(next);
	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &fl, 2);
	memcpy(d + 14, &n, 2);
}

static void desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	put_desc(f, DESC_GPA, i, addr, len, flags, next);
}

/* Make one more chain available, as a driver does: ring entry first, then the index. */
static void offer(struct fx *f, uint16_t head)
{
	put16(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % QSIZE), head);
	put16(f, AVAIL_GPA + 2, ++f->avail_idx);
}

/* Start both sides at the same ring index (to test wrap-around without 65536 round trips). */
static void start_at(struct fx *f, uint16_t idx)
{
	f->q.last_avail = f->q.used_idx = f->avail_idx = idx;
	put16(f, AVAIL_GPA + 2, idx);
	put16(f, USED_GPA + 2, idx);
}

static uint16_t used_idx(struct fx *f) { return get16(f, USED_GPA + 2); }
static uint32_t used_id(struct fx *f, uint16_t slot) { return get32(f, USED_GPA + 4 + 8 * (slot % QSIZE)); }
static uint32_t used_len(struct fx *f, uint16_t slot) { return get32(f, USED_GPA + 8 + 8 * (slot % QSIZE)); }
static uint16_t avail_event(struct fx *f) { return get16(f, USED_GPA + 4 + 8 * QSIZE); }
static void set_used_event(struct fx *f, uint16_t v) { put16(f, AVAIL_GPA + 4 + 2 * QSIZE, v); }

static void assert_seg(struct fx *f, unsigned i, uint64_t addr, uint32_t len)
{
	assert_ptr_equal(f->chain.iov[i].iov_base, gpa(f, addr));
	assert_int_equal(f->chain.iov[i].iov_len, len);
}

static void pop_one(struct fx *f, uint16_t head, unsigned nread, unsigned nwrite)
{
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.head, head);
	assert_int_equal(f->chain.nread, nread);
	assert_int_equal(f->chain.nwrite, nwrite);
}

/* The guest error contract: -1, broken, and afterwards nothing touches guest memory (all access revoked:
 * a read or write would fault) while pop keeps failing and the other calls are harmless no-ops. */
static void assert_guest_error(struct fx *f)
{
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	assert_true(f->q.broken);
	uint16_t last_avail = f->q.last_avail;
	assert_int_equal(mprotect(f->base, RW_SIZE, PROT_NONE), 0);
	assert_int_equal(mprotect(f->base + LAYOUT_MMIO_HOLE, RW_SIZE, PROT_NONE), 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	virtq_push(&f->q, 0, 0);
	assert_false(virtq_should_notify(&f->q));
	assert_false(virtq_enable_notify(&f->q, true));
	assert_int_equal(f->q.last_avail, last_avail);
	assert_int_equal(f->chain.nread + f->chain.nwrite, 0);
}

/* ---- init ---- */

static void init_checks_layout(void **state)
{
	struct fx *f = *state;
	struct virtq good = f->q;
	struct {
		const char *what;
		uint16_t size;
		uint64_t desc, avail, used;
	} bad[] = {
		{ "size 0", 0, DESC_GPA, AVAIL_GPA, USED_GPA },
		{ "size not a power of two", 12, DESC_GPA, AVAIL_GPA, USED_GPA },
		{ "size 65535", 65535, DESC_GPA, AVAIL_GPA, USED_GPA },
		{ "desc not 16-aligned", QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA },
		{ "avail not 2-aligned", QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA },
		{ "used not 4-aligned", QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2 },
		{ "desc past RAM", QSIZE, LAYOUT_HIGH_RAM + RW_SIZE - 128, AVAIL_GPA, USED_GPA },
		{ "avail in the MMIO hole", QSIZE, DESC_GPA, LAYOUT_MMIO_HOLE, USED_GPA },
		{ "used across the end of RAM", QSIZE, DESC_GPA, AVAIL_GPA, LAYOUT_HIGH_RAM + RW_SIZE - 64 },
		{ "used_event (last 2 bytes) past RAM", QSIZE, DESC_GPA, LAYOUT_HIGH_RAM + RW_SIZE - 36, USED_GPA },
		{ "address overflow", QSIZE, UINT64_MAX - 15, AVAIL_GPA, USED_GPA },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct virtq q = good;
		q.size = bad[i].size;
		q.desc_gpa = bad[i].desc;
		q.avail_gpa = bad[i].avail;
		q.used_gpa = bad[i].used;
		if (virtq_init(&q) != -1 || !q.broken)
			fail_msg("virtq_init accepted: %s", bad[i].what);
		assert_int_equal(virtq_pop(&q, &f->chain), -1);
	}
	struct virtq q = good;
	q.mem = NULL;
	assert_int_equal(virtq_init(&q), -1);

	/* Areas ending at (or just before) the end of RAM are fine, also in high RAM. */
	q = good;
	q.avail_gpa = LAYOUT_HIGH_RAM + RW_SIZE - (6 + 2 * QSIZE);
	q.used_gpa = LAYOUT_HIGH_RAM + RW_SIZE - (6 + 8 * QSIZE) - 2; /* 4-aligned */
	q.last_avail = 7;
	q.broken = true;
	assert_int_equal(virtq_init(&q), 0);
	assert_false(q.broken);
	assert_int_equal(q.last_avail, 0);
	q.size = VIRTQ_MAX_SIZE;
	q.desc_gpa = LAYOUT_HIGH_RAM;
	assert_int_equal(virtq_init(&q), -1); /* 512 KiB of descriptors do not fit in 64 KiB... */
	q.mem = &f->mem;
	q.desc_gpa = 0x100000; /* ...but do in low RAM (not accessed by init) */
	q.avail_gpa = 0x200000;
	q.used_gpa = 0x300000;
	assert_int_equal(virtq_init(&q), 0);
}

/* ---- well-formed chains ---- */

static void empty_queue(void **state)
{
	struct fx *f = *state;
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
	assert_false(f->q.broken);
}

static void simple_chain(void **state)
{
	struct fx *f = *state;
	desc(f, 3, DATA_GPA + 100, 42, R, 0);
	offer(f, 3);
	pop_one(f, 3, 1, 0);
	assert_seg(f, 0, DATA_GPA + 100, 42);
	assert_int_equal(f->chain.read_len, 42);
	assert_int_equal(f->chain.write_len, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);

	virtq_push(&f->q, 3, 0);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(used_id(f, 0), 3);
	assert_int_equal(used_len(f, 0), 0);
}

static void readable_then_writable(void **state)
{
	struct fx *f = *state;
	/* A block request: header (R), data (R), data (W in high RAM), status (W); scattered indices. */
	desc(f, 5, DATA_GPA, 16, R | N, 2);
	desc(f, 2, DATA_GPA + 0x1000, 4096, R | N, 15);
	desc(f, 15, LAYOUT_HIGH_RAM + 0x100, 512, W | N, 0);
	desc(f, 0, DATA_GPA + 0x3000, 1, W, 9); /* next is ignored without F_NEXT */
	offer(f, 5);
	pop_one(f, 5, 2, 2);
	assert_seg(f, 0, DATA_GPA, 16);
	assert_seg(f, 1, DATA_GPA + 0x1000, 4096);
	assert_seg(f, 2, LAYOUT_HIGH_RAM + 0x100, 512);
	assert_seg(f, 3, DATA_GPA + 0x3000, 1);
	assert_int_equal(f->chain.read_len, 16 + 4096);
	assert_int_equal(f->chain.write_len, 513);

	virtq_push(&f->q, 5, 513);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(used_id(f, 0), 5);
	assert_int_equal(used_len(f, 0), 513);
}

static void writable_only(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 64, W | N, 1);
	desc(f, 1, DATA_GPA + 64, 64, W, 0);
	offer(f, 0);
	pop_one(f, 0, 0, 2);
	assert_seg(f, 0, DATA_GPA, 64);
	assert_seg(f, 1, DATA_GPA + 64, 64);
	assert_int_equal(f->chain.write_len, 128);
}

static void longest_direct_chain(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(f, i, DATA_GPA + i * 8, 8, (i + 1 < QSIZE) ? N : 0, i + 1);
	offer(f, 0);
	pop_one(f, 0, QSIZE, 0);
	assert_seg(f, QSIZE - 1, DATA_GPA + (QSIZE - 1) * 8, 8);
	assert_int_equal(f->chain.read_len, QSIZE * 8);
}

static void indirect_only(void **state)
{
	struct fx *f = *state;
	uint64_t t = TABLE_GPA + 3; /* indirect tables need no alignment */
	put_desc(f, t, 0, DATA_GPA, 16, R | N, 2);
	put_desc(f, t, 2, DATA_GPA + 16, 100, W | N, 1);
	put_desc(f, t, 1, DATA_GPA + 200, 1, W, 0);
	desc(f, 7, t, 3 * 16, I | W, 0); /* F_WRITE on the table descriptor is ignored */
	offer(f, 7);
	pop_one(f, 7, 1, 2);
	assert_seg(f, 0, DATA_GPA, 16);
	assert_seg(f, 1, DATA_GPA + 16, 100);
	assert_seg(f, 2, DATA_GPA + 200, 1);
	assert_int_equal(f->chain.read_len, 16);
	assert_int_equal(f->chain.write_len, 101);
}

static void direct_then_indirect(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA + 32, 32, R | N, 1);
	put_desc(f, TABLE_GPA, 1, DATA_GPA + 64, 8, W, 0);
	desc(f, 1, DATA_GPA, 32, R | N, 4);
	desc(f, 4, TABLE_GPA, 2 * 16, I, 0);
	offer(f, 1);
	pop_one(f, 1, 2, 1);
	assert_seg(f, 0, DATA_GPA, 32);
	assert_seg(f, 1, DATA_GPA + 32, 32);
	assert_seg(f, 2, DATA_GPA + 64, 8);
}

static void indirect_longer_than_queue(void **state)
{
	/* Linux puts more segments than the queue size into one indirect table (e.g. virtio-blk with
	 * seg_max > queue size): bounded by VIRTQ_MAX_SEGS, not by the queue size. */
	struct fx *f = *state;
	for (uint16_t i = 0; i < VIRTQ_MAX_SEGS; i++)
		put_desc(f, TABLE_GPA, i, DATA_GPA + i, 1, W | ((i + 1 < VIRTQ_MAX_SEGS) ? N : 0), i + 1);
	desc(f, 0, TABLE_GPA, VIRTQ_MAX_SEGS * 16, I, 0);
	offer(f, 0);
	pop_one(f, 0, 0, VIRTQ_MAX_SEGS);
	assert_seg(f, VIRTQ_MAX_SEGS - 1, DATA_GPA + VIRTQ_MAX_SEGS - 1, 1);
	assert_int_equal(f->chain.write_len, VIRTQ_MAX_SEGS);
}

static void batch_out_of_order_completion(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 10, R, 0);
	desc(f, 1, DATA_GPA + 10, 20, W, 0);
	desc(f, 2, DATA_GPA + 30, 30, R | N, 3);
	desc(f, 3, DATA_GPA + 60, 40, W, 0);
	offer(f, 0);
	offer(f, 1);
	offer(f, 2);
	pop_one(f, 0, 1, 0);
	pop_one(f, 1, 0, 1);
	pop_one(f, 2, 1, 1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
	virtq_push(&f->q, 2, 40);
	virtq_push(&f->q, 0, 0);
	virtq_push(&f->q, 1, 20);
	assert_int_equal(used_idx(f), 3);
	assert_int_equal(used_id(f, 0), 2);
	assert_int_equal(used_len(f, 0), 40);
	assert_int_equal(used_id(f, 1), 0);
	assert_int_equal(used_id(f, 2), 1);
	assert_int_equal(used_len(f, 2), 20);
	/* The same descriptors again: the driver reuses them once they are used. */
	offer(f, 2);
	pop_one(f, 2, 1, 1);
}

static void full_ring_of_chains(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(f, i, DATA_GPA + i * 4, 4, W, 0);
		offer(f, i);
	}
	for (uint16_t i = 0; i < QSIZE; i++)
		pop_one(f, i, 0, 1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
}

static void avail_index_wraps(void **state)
{
	struct fx *f = *state;
	start_at(f, 65533);
	for (uint16_t i = 0; i < 6; i++) {
		desc(f, i, DATA_GPA + i * 4, 4, W, 0);
		offer(f, i); /* avail idx 65534, 65535, 0, 1, 2, 3 */
	}
	assert_int_equal(get16(f, AVAIL_GPA + 2), 3);
	for (uint16_t i = 0; i < 6; i++) {
		pop_one(f, i, 0, 1);
		assert_seg(f, 0, DATA_GPA + i * 4, 4);
		virtq_push(&f->q, i, 4);
	}
	assert_int_equal(f->q.last_avail, 3);
	assert_int_equal(used_idx(f), 3);
	assert_int_equal(used_id(f, 65535), 2); /* slot 15 */
	assert_int_equal(used_id(f, 0), 3);     /* slot 0 after the wrap */
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
}

/* ---- notification suppression ---- */

static void need_event_table(void **state)
{
	(void)state;
	struct {
		uint16_t event, new_idx, old_idx;
		bool notify;
	} t[] = {
		{ 0, 1, 0, true },            /* the driver waits for entry 0: it arrived */
		{ 1, 1, 0, false },           /* waits for entry 1: not yet */
		{ 5, 10, 3, true },           /* event inside (old, new] */
		{ 2, 10, 3, false },          /* event before old: already signalled */
		{ 9, 10, 3, true },           /* event is the last new entry */
		{ 10, 10, 3, false },         /* event not reached */
		{ 3, 10, 3, true },           /* event == old: entry old was just published */
		{ 65535, 2, 65534, true },    /* across the wrap */
		{ 65533, 2, 65534, false },   /* before old, across the wrap */
		{ 1, 2, 65534, true },
		{ 2, 2, 65534, false },
		{ 65534, 0, 65534, true },    /* new wrapped to 0 */
		{ 7, 7, 7, false },           /* nothing new */
		{ 6, 7, 7, false },
		{ 0, 0, 0, false },
		{ 100, 200, 100, true },      /* big batches */
		{ 99, 200, 100, false },
		{ 199, 200, 100, true },
		{ 65535, 0, 65535, true },
		{ 0, 0, 65535, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (virtq_need_event(t[i].event, t[i].new_idx, t[i].old_idx) != t[i].notify)
			fail_msg("need_event(event=%u, new=%u, old=%u) != %d", t[i].event, t[i].new_idx, t[i].old_idx,
				 t[i].notify);
}

static void push_one(struct fx *f, uint16_t head)
{
	desc(f, head, DATA_GPA, 8, W, 0);
	offer(f, head);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	virtq_push(&f->q, head, 8);
}

static void notify_without_event_idx(void **state)
{
	struct fx *f = *state;
	push_one(f, 0);
	assert_true(virtq_should_notify(&f->q));
	put16(f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	push_one(f, 1);
	assert_false(virtq_should_notify(&f->q));
	set_used_event(f, 0); /* used_event means nothing without the feature */
	put16(f, AVAIL_GPA, 0);
	assert_true(virtq_should_notify(&f->q));
}

static void notify_with_event_idx(void **state)
{
	struct fx *f = *state;
	f->q.event_idx = true;
	put16(f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT); /* ignored with event idx */
	set_used_event(f, 100);
	push_one(f, 0);
	assert_true(virtq_should_notify(&f->q)); /* the first push after init always notifies */
	push_one(f, 1);
	assert_false(virtq_should_notify(&f->q)); /* used idx 2, driver waits for entry 100 */
	set_used_event(f, 2);                     /* driver: interrupt me once entry 2 is used */
	push_one(f, 2);
	assert_true(virtq_should_notify(&f->q));
	assert_false(virtq_should_notify(&f->q)); /* nothing new since */
	push_one(f, 3);
	assert_false(virtq_should_notify(&f->q)); /* entry 2 was already signalled */
	/* A batch that passes the event in the middle. */
	set_used_event(f, 5);
	push_one(f, 4);
	push_one(f, 5);
	push_one(f, 6);
	assert_true(virtq_should_notify(&f->q));
	assert_int_equal(f->q.signalled_used, 7);
}

static void notify_event_idx_across_wrap(void **state)
{
	struct fx *f = *state;
	f->q.event_idx = true;
	start_at(f, 65534);
	set_used_event(f, 65534);
	push_one(f, 0); /* used idx 65535 */
	assert_true(virtq_should_notify(&f->q));
	set_used_event(f, 0);
	push_one(f, 1); /* used idx 0: entry 65535 is used, the driver waits for entry 0 */
	assert_false(virtq_should_notify(&f->q));
	push_one(f, 2); /* used idx 1: entry 0 is used */
	assert_true(virtq_should_notify(&f->q));
	assert_int_equal(f->q.used_idx, 1);
	set_used_event(f, 65535); /* far behind: no interrupt until the index comes round again */
	push_one(f, 3);
	assert_false(virtq_should_notify(&f->q));
}

static void enable_notify_without_event_idx(void **state)
{
	struct fx *f = *state;
	assert_false(virtq_enable_notify(&f->q, false));
	assert_int_equal(get16(f, USED_GPA), VIRTQ_USED_F_NO_NOTIFY);
	desc(f, 0, DATA_GPA, 8, R, 0);
	offer(f, 0); /* arrives while notifications are off */
	assert_true(virtq_enable_notify(&f->q, true));
	assert_int_equal(get16(f, USED_GPA), 0);
	pop_one(f, 0, 1, 0);
	assert_false(virtq_enable_notify(&f->q, true));
	assert_int_equal(avail_event(f), 0); /* avail_event is left alone */
}

static void enable_notify_with_event_idx(void **state)
{
	struct fx *f = *state;
	f->q.event_idx = true;
	start_at(f, 65535);
	assert_false(virtq_enable_notify(&f->q, true));
	assert_int_equal(avail_event(f), 65535); /* notify me when you add entry 65535 */
	assert_int_equal(get16(f, USED_GPA), 0);  /* flags untouched with event idx */
	desc(f, 0, DATA_GPA, 8, R, 0);
	offer(f, 0);
	offer(f, 0);
	assert_true(virtq_enable_notify(&f->q, false)); /* reports what is pending */
	assert_int_equal(avail_event(f), 65535); /* disabling writes nothing */
	pop_one(f, 0, 1, 0);
	assert_true(virtq_enable_notify(&f->q, true)); /* one more is pending */
	assert_int_equal(avail_event(f), 0);
	pop_one(f, 0, 1, 0);
	assert_false(virtq_enable_notify(&f->q, true));
	assert_int_equal(avail_event(f), 1);
}

/* ---- guest errors: every one breaks the queue ---- */

static void bad_avail_idx_jump(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, R, 0);
	put16(f, AVAIL_GPA + 2, QSIZE + 1);
	assert_guest_error(f);
}

static void bad_avail_idx_backwards(void **state)
{
	struct fx *f = *state;
	start_at(f, 10);
	put16(f, AVAIL_GPA + 2, 9); /* 65535 ahead of last_avail */
	assert_guest_error(f);
}

static void bad_head_index(void **state)
{
	struct fx *f = *state;
	offer(f, QSIZE);
	assert_guest_error(f);
}

static void bad_next_index(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, R | N, QSIZE);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_self_loop(void **state)
{
	struct fx *f = *state;
	desc(f, 4, DATA_GPA, 8, R | N, 4);
	offer(f, 4);
	assert_guest_error(f);
}

static void bad_loop(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, R | N, 1);
	desc(f, 1, DATA_GPA, 8, R | N, 2);
	desc(f, 2, DATA_GPA, 8, R | N, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_chain_longer_than_queue(void **state)
{
	struct fx *f = *state;
	/* Every descriptor used once, but the last one links back: QSIZE + 1 links. */
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(f, i, DATA_GPA + i, 1, R | N, (i + 1) % QSIZE);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_loop(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R | N, 1);
	put_desc(f, TABLE_GPA, 1, DATA_GPA, 8, R | N, 0);
	desc(f, 0, TABLE_GPA, 2 * 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_next_out_of_table(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R | N, 2); /* table has 2 entries */
	put_desc(f, TABLE_GPA, 1, DATA_GPA, 8, R, 0);
	put_desc(f, TABLE_GPA, 2, DATA_GPA, 8, R, 0);
	desc(f, 0, TABLE_GPA, 2 * 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_too_many_segments(void **state)
{
	struct fx *f = *state;
	const uint16_t n = VIRTQ_MAX_SEGS + 1;
	for (uint16_t i = 0; i < n; i++)
		put_desc(f, TABLE_GPA, i, DATA_GPA, 1, R | ((i + 1 < n) ? N : 0), i + 1);
	desc(f, 0, TABLE_GPA, n * 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_too_many_segments_direct_plus_indirect(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < VIRTQ_MAX_SEGS; i++)
		put_desc(f, TABLE_GPA, i, DATA_GPA, 1, W | ((i + 1 < VIRTQ_MAX_SEGS) ? N : 0), i + 1);
	desc(f, 0, DATA_GPA, 1, R | N, 1);
	desc(f, 1, TABLE_GPA, VIRTQ_MAX_SEGS * 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_addr_overflow(void **state)
{
	struct fx *f = *state;
	desc(f, 0, UINT64_MAX - 15, 32, R, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_addr_outside_ram(void **state)
{
	struct fx *f = *state;
	desc(f, 0, LAYOUT_HIGH_RAM + RW_SIZE - 4, 8, W, 0); /* crosses the end of RAM */
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_addr_in_hole(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, R | N, 1);
	desc(f, 1, LAYOUT_MMIO_HOLE + 0x1000, 8, W, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_buffer_across_regions(void **state)
{
	struct fx *f = *state;
	/* Contiguous in the host mapping, but not in guest-physical space: rejected. */
	desc(f, 0, LAYOUT_MMIO_HOLE - 8, 16, R, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_zero_length(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, R | N, 1);
	desc(f, 1, DATA_GPA, 0, W, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_with_next(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R, 0);
	desc(f, 0, TABLE_GPA, 16, I | N, 1);
	desc(f, 1, DATA_GPA, 8, W, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_zero_length(void **state)
{
	struct fx *f = *state;
	desc(f, 0, TABLE_GPA, 0, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_length_not_multiple(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R, 0);
	desc(f, 0, TABLE_GPA, 24, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_table_outside_ram(void **state)
{
	struct fx *f = *state;
	desc(f, 0, LAYOUT_HIGH_RAM + RW_SIZE - 16, 32, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_nested_indirect(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA + 0x100, 0, DATA_GPA, 8, R, 0);
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R | N, 1);
	put_desc(f, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, I, 0);
	desc(f, 0, TABLE_GPA, 2 * 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;
	f->q.indirect = false;
	put_desc(f, TABLE_GPA, 0, DATA_GPA, 8, R, 0);
	desc(f, 0, TABLE_GPA, 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_readable_after_writable(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 8, W | N, 1);
	desc(f, 1, DATA_GPA + 8, 8, R, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_readable_after_writable_into_indirect(void **state)
{
	struct fx *f = *state;
	put_desc(f, TABLE_GPA, 0, DATA_GPA + 8, 8, R, 0);
	desc(f, 0, DATA_GPA, 8, W | N, 1);
	desc(f, 1, TABLE_GPA, 16, I, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void bad_total_length_over_32_bits(void **state)
{
	struct fx *f = *state;
	/* Two 2 GiB writable buffers in (mostly unbacked) low RAM: 4 GiB cannot be reported in used.len. */
	desc(f, 0, 0x1000000, 0x80000000u, W | N, 1);
	desc(f, 1, 0x1000000, 0x80000000u, W, 0);
	offer(f, 0);
	assert_guest_error(f);
}

static void total_length_just_fits(void **state)
{
	struct fx *f = *state;
	desc(f, 0, 0x1000000, 0x80000000u, R | N, 1);
	desc(f, 1, 0x1000000, 0x7fffffffu, R | N, 2);
	desc(f, 2, 0x1000000, 0x80000000u, W, 0);
	offer(f, 0);
	pop_one(f, 0, 2, 1);
	assert_int_equal(f->chain.read_len, UINT32_MAX);
	assert_int_equal(f->chain.write_len, 0x80000000u);
}

static void good_chain_after_error_still_refused(void **state)
{
	struct fx *f = *state;
	desc(f, 0, DATA_GPA, 0, R, 0);
	desc(f, 1, DATA_GPA, 8, R, 0);
	offer(f, 0);
	offer(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1); /* the good chain behind it is not consumed */
	assert_int_equal(f->q.last_avail, 0);
	assert_int_equal(used_idx(f), 0);
	/* A reset (virtq_init again) makes the queue usable. */
	desc(f, 0, DATA_GPA, 8, R, 0);
	assert_int_equal(virtq_init(&f->q), 0);
	pop_one(f, 0, 1, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(init_checks_layout),
		T(empty_queue),
		T(simple_chain),
		T(readable_then_writable),
		T(writable_only),
		T(longest_direct_chain),
		T(indirect_only),
		T(direct_then_indirect),
		T(indirect_longer_than_queue),
		T(batch_out_of_order_completion),
		T(full_ring_of_chains),
		T(avail_index_wraps),
		cmocka_unit_test(need_event_table),
		T(notify_without_event_idx),
		T(notify_with_event_idx),
		T(notify_event_idx_across_wrap),
		T(enable_notify_without_event_idx),
		T(enable_notify_with_event_idx),
		T(bad_avail_idx_jump),
		T(bad_avail_idx_backwards),
		T(bad_head_index),
		T(bad_next_index),
		T(bad_self_loop),
		T(bad_loop),
		T(bad_chain_longer_than_queue),
		T(bad_indirect_loop),
		T(bad_indirect_next_out_of_table),
		T(bad_too_many_segments),
		T(bad_too_many_segments_direct_plus_indirect),
		T(bad_addr_overflow),
		T(bad_addr_outside_ram),
		T(bad_addr_in_hole),
		T(bad_buffer_across_regions),
		T(bad_zero_length),
		T(bad_indirect_with_next),
		T(bad_indirect_zero_length),
		T(bad_indirect_length_not_multiple),
		T(bad_indirect_table_outside_ram),
		T(bad_nested_indirect),
		T(bad_indirect_not_negotiated),
		T(bad_readable_after_writable),
		T(bad_readable_after_writable_into_indirect),
		T(bad_total_length_over_32_bits),
		T(total_length_just_fits),
		T(good_chain_after_error_still_refused),
	};
	return cmocka_run_group_tests_name("virtq", tests, NULL, NULL);
}
