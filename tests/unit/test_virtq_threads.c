/* The virtqueue with a real concurrent driver: a "guest" thread offers chains and reclaims used ones while
 * the device thread pops, answers and pushes, across several wraps of the 16-bit ring indices. Every
 * payload must arrive intact and in order, and every answer must reach the driver, with and without
 * event idx, while the device toggles notifications the way a polling device does. */
#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "devices/virtio/queue.h"
#include "lib/util.h"

#define QSIZE      64
#define DESC_GPA   0x0000ULL
#define AVAIL_GPA  0x1000ULL
#define USED_GPA   0x2000ULL
#define DATA_GPA   0x4000ULL   /* per head: 8 readable bytes, then 8 writable bytes */
#define RAM_SIZE   0x8000ULL
#define CHAINS     200000u     /* a bit more than 3 wraps of the ring indices */
#define TIMEOUT_NS (60ULL * 1000000000ULL)

struct bed {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq q;
	uint64_t deadline;
	int stop;               /* set by either side on failure or timeout */
	unsigned device_done;   /* chains the device completed */
	char failure[128];
};

static void bed_fail(struct bed *b, const char *what)
{
	if (!__atomic_exchange_n(&b->stop, 1, __ATOMIC_SEQ_CST))
		snprintf(b->failure, sizeof(b->failure), "%s", what);
}

static bool bed_stopped(struct bed *b)
{
	if (now_ns() > b->deadline)
		bed_fail(b, "timed out");
	return __atomic_load_n(&b->stop, __ATOMIC_ACQUIRE);
}

static uint16_t *ring16(struct bed *b, uint64_t gpa) { return (uint16_t *)(void *)(b->ram + gpa); }
static uint64_t *data64(struct bed *b, uint64_t gpa) { return (uint64_t *)(void *)(b->ram + gpa); }

/* ---- the driver (guest) side, written from the spec's driver rules ---- */

struct driver {
	uint16_t avail_idx, used_seen;
	uint16_t free[QSIZE];
	unsigned nfree;
	uint64_t seq_of[QSIZE];   /* which request each head carries */
	unsigned completed;
};

/* The device "writes" a length that varies per request, so a stale used entry cannot pass for a new one. */
static uint32_t answer_len(uint64_t seq) { return 1 + seq % 7; } /* 7: prime to the ring size */

static void put_desc(struct bed *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = b->ram + DESC_GPA + i * 16ULL;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);
	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
}

/* Heads are even descriptors; each chain is head (readable) -> head + 1 (writable). */
static void driver_offer(struct bed *b, struct driver *d, uint64_t seq)
{
	uint16_t head = d->free[--d->nfree];
	uint64_t buf = DATA_GPA + head * 8ULL;
	*data64(b, buf) = htole64(seq);
	*data64(b, buf + 8) = 0;
	put_desc(b, head, buf, 8, VIRTQ_DESC_F_NEXT, head + 1);
	put_desc(b, head + 1, buf + 8, 8, VIRTQ_DESC_F_WRITE, 0);
	d->seq_of[head] = seq;
	*ring16(b, AVAIL_GPA + 4 + 2 * (d->avail_idx % QSIZE)) = htole16(head);
	d->avail_idx++;
	__atomic_store_n(ring16(b, AVAIL_GPA + 2), htole16(d->avail_idx), __ATOMIC_RELEASE);
}

static void driver_reclaim(struct bed *b, struct driver *d)
{
	uint16_t used = le16toh(__atomic_load_n(ring16(b, USED_GPA + 2), __ATOMIC_ACQUIRE));
	for (; d->used_seen != used; d->used_seen++) {
		const uint8_t *e = b->ram + USED_GPA + 4 + 8 * (d->used_seen % QSIZE);
		uint32_t id, len;
		memcpy(&id, e, 4);
		memcpy(&len, e + 4, 4);
		id = le32toh(id);
		if (id >= QSIZE || id % 2 || le32toh(len) != answer_len(d->seq_of[id])) {
			bed_fail(b, "bad used entry");
			return;
		}
		if (le64toh(*data64(b, DATA_GPA + id * 8ULL + 8)) != ~d->seq_of[id]) {
			bed_fail(b, "device answer lost or wrong");
			return;
		}
		d->free[d->nfree++] = (uint16_t)id;
		d->completed++;
	}
	/* With event idx: ask for an interrupt only after the next entry (ignored by the device model here,
	 * but it makes the device's should_notify path run against a moving used_event). */
	__atomic_store_n(ring16(b, AVAIL_GPA + 4 + 2 * QSIZE), htole16(d->used_seen), __ATOMIC_RELAXED);
}

static void *driver_thread(void *arg)
{
	struct bed *b = arg;
	struct driver *d = calloc(1, sizeof(*d));
	for (uint16_t h = 0; h < QSIZE; h += 2)
		d->free[d->nfree++] = h;
	uint64_t seq = 0;
	while (d->completed < CHAINS && !bed_stopped(b)) {
		driver_reclaim(b, d);
		while (d->nfree && seq < CHAINS)
			driver_offer(b, d, seq++);
		sched_yield();
	}
	free(d);
	return NULL;
}

/* ---- the device side: the code under test ---- */

static bool device_answer(struct bed *b, const struct virtq_chain *c, uint64_t expect)
{
	if (c->nread != 1 || c->nwrite != 1 || c->read_len != 8 || c->write_len != 8)
		return false;
	uint64_t seq;
	memcpy(&seq, c->iov[0].iov_base, 8);
	if (le64toh(seq) != expect)
		return false;
	uint64_t answer = htole64(~expect);
	memcpy(c->iov[1].iov_base, &answer, 8);
	virtq_push(&b->q, c->head, answer_len(expect));
	return true;
}

static void *device_thread(void *arg)
{
	struct bed *b = arg;
	struct virtq_chain *c = malloc(sizeof(*c));
	unsigned done = 0;
	while (done < CHAINS && !bed_stopped(b)) {
		int r = virtq_pop(&b->q, c);
		if (r < 0) {
			bed_fail(b, "queue broke");
			break;
		}
		if (r == 1) {
			if (!device_answer(b, c, done++)) {
				bed_fail(b, "chain out of order or malformed");
				break;
			}
			virtq_should_notify(&b->q);
			continue;
		}
		/* Idle: re-enable notifications, and keep polling if something slipped in meanwhile. */
		if (!virtq_enable_notify(&b->q, true))
			sched_yield();
		virtq_enable_notify(&b->q, false);
	}
	__atomic_store_n(&b->device_done, done, __ATOMIC_RELEASE);
	free(c);
	return NULL;
}

static void run_bed(bool event_idx)
{
	struct bed *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	b->ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(b->ram);
	memset(b->ram, 0, RAM_SIZE);
	gmem_init_fixed(&b->mem, b->ram, RAM_SIZE);
	b->q = (struct virtq){ .size = QSIZE, .desc_gpa = DESC_GPA, .avail_gpa = AVAIL_GPA, .used_gpa = USED_GPA,
			       .event_idx = event_idx, .mem = &b->mem };
	assert_int_equal(virtq_init(&b->q), 0);
	b->deadline = now_ns() + TIMEOUT_NS;

	pthread_t drv, dev;
	assert_int_equal(pthread_create(&dev, NULL, device_thread, b), 0);
	assert_int_equal(pthread_create(&drv, NULL, driver_thread, b), 0);
	pthread_join(drv, NULL);
	pthread_join(dev, NULL);
	struct bed result = *b; /* assertions last, so that a failure leaks nothing */
	free(b->ram);
	free(b);
	if (result.stop)
		fail_msg("%s", result.failure);
	assert_int_equal(result.device_done, CHAINS);
	assert_int_equal(result.q.used_idx, (uint16_t)CHAINS);
	assert_int_equal(result.q.last_avail, (uint16_t)CHAINS);
	assert_false(result.q.broken);
}

static void concurrent_driver_plain(void **state)
{
	(void)state;
	run_bed(false);
}

static void concurrent_driver_event_idx(void **state)
{
	(void)state;
	run_bed(true);
}

/* ---- a hostile guest: rewrites descriptors and the avail ring while the device walks them ----
 * Catches double fetches (a field re-read after it was checked) when the two threads really run in
 * parallel; on a single busy core it still checks that nothing escapes RAM, just with fewer races. */

#define HOSTILE_NS     (1000ULL * 1000000ULL)
#define HOSTILE_MAX_NS (30ULL * 1000000000ULL)

struct hostile {
	struct bed bed;
	int done;
	uint16_t device_pos;   /* the device's last_avail, so the guest can pace itself (below) */
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Values near the edges: mostly inside RAM, sometimes just across its end or far outside. */
static void *hostile_thread(void *arg)
{
	struct hostile *h = arg;
	struct bed *b = &h->bed;
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	while (!__atomic_load_n(&h->done, __ATOMIC_ACQUIRE)) {
		uint64_t r = xorshift(&s);
		uint16_t i = r % QSIZE;
		uint64_t addr = (r >> 8) % (RAM_SIZE + 64);
		uint32_t len = (r >> 24) % 4 == 0 ? (uint32_t)(r >> 32) : (r >> 32) % 256;
		uint16_t flags = ((r >> 40) & 3) | ((r >> 42) % 8 == 0 ? VIRTQ_DESC_F_INDIRECT : 0);
		uint16_t next = (r >> 48) % (QSIZE + 2);
		uint8_t *d = b->ram + DESC_GPA + i * 16ULL;
		__atomic_store_n((uint64_t *)(void *)d, htole64(addr), __ATOMIC_RELAXED);
		__atomic_store_n((uint32_t *)(void *)(d + 8), htole32(len), __ATOMIC_RELAXED);
		__atomic_store_n((uint16_t *)(void *)(d + 12), htole16(flags), __ATOMIC_RELAXED);
		__atomic_store_n((uint16_t *)(void *)(d + 14), htole16(next), __ATOMIC_RELAXED);
		__atomic_store_n(ring16(b, AVAIL_GPA + 4 + 2 * (r % QSIZE)), htole16((r >> 20) % (QSIZE + 1)),
				 __ATOMIC_RELAXED);
		/* Offer more only while the device keeps up (else every pop would just see an overrun ring),
		 * but now and then jump far ahead; yield often so that one shared core still interleaves. */
		uint16_t idx = le16toh(__atomic_load_n(ring16(b, AVAIL_GPA + 2), __ATOMIC_RELAXED));
		uint16_t ahead = idx - __atomic_load_n(&h->device_pos, __ATOMIC_RELAXED);
		if (r % 16 == 0 && ahead < QSIZE / 2)
			__atomic_store_n(ring16(b, AVAIL_GPA + 2), htole16(idx + ((r >> 12) % 64 ? 1 : QSIZE + 1)),
					 __ATOMIC_RELEASE);
		if (r % 256 == 0)
			sched_yield();
	}
	return NULL;
}

/* Every segment of every chain must lie in RAM, whatever the guest does meanwhile. */
static bool chain_in_ram(const struct bed *b, const struct virtq_chain *c)
{
	for (unsigned i = 0; i < c->nread + c->nwrite; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		size_t len = c->iov[i].iov_len;
		if (p < b->ram || len == 0 || len > RAM_SIZE || (size_t)(p - b->ram) > RAM_SIZE - len)
			return false;
	}
	return true;
}

static void hostile_guest(void **state)
{
	(void)state;
	struct hostile *h = calloc(1, sizeof(*h));
	struct virtq_chain *c = malloc(sizeof(*c));
	assert_non_null(h);
	assert_non_null(c);
	struct bed *b = &h->bed;
	b->ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(b->ram);
	memset(b->ram, 0, RAM_SIZE);
	gmem_init_fixed(&b->mem, b->ram, RAM_SIZE);
	b->q = (struct virtq){ .size = QSIZE, .desc_gpa = DESC_GPA, .avail_gpa = AVAIL_GPA, .used_gpa = USED_GPA,
			       .indirect = true, .mem = &b->mem };
	assert_int_equal(virtq_init(&b->q), 0);

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hostile_thread, h), 0);
	/* At least HOSTILE_NS, and on until both outcomes were seen often (the box may be loaded). */
	unsigned got = 0, broke = 0, bad = 0;
	uint64_t start = now_ns();
	for (uint64_t t_now = start; t_now < start + HOSTILE_MAX_NS; t_now = now_ns()) {
		if (t_now > start + HOSTILE_NS && got >= 200 && broke >= 200)
			break;
		int r = virtq_pop(&b->q, c);
		if (r == 1) {
			got++;
			bad += !chain_in_ram(b, c);
			virtq_push(&b->q, c->head, 0);
		} else if (r < 0) {
			broke++;
			/* What a device reset and the driver's re-initialisation do. */
			assert_int_equal(virtq_init(&b->q), 0);
			b->q.last_avail = b->q.used_idx = le16toh(__atomic_load_n(ring16(b, AVAIL_GPA + 2), __ATOMIC_ACQUIRE));
		} else {
			sched_yield();
		}
		__atomic_store_n(&h->device_pos, b->q.last_avail, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	free(b->ram);
	free(h);
	free(c);
	print_message("# hostile guest: %u chains taken, %u guest errors\n", got, broke);
	assert_int_equal(bad, 0);
	assert_true(got >= 200 && broke >= 200); /* both paths really ran */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(concurrent_driver_plain),
		cmocka_unit_test(concurrent_driver_event_idx),
		cmocka_unit_test(hostile_guest),
	};
	return cmocka_run_group_tests_name("virtq_threads", tests, NULL, NULL);
}
