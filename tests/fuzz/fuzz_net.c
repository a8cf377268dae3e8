/* libFuzzer target for virtio-net on a header-carrying backend (the tap path): a hostile driver posts tx and
 * rx chains of its choosing over negotiated features of its choosing, and a hostile network hands the device
 * frames with arbitrary headers. The device runs its real queue code (net.c + queue.c) over guest memory
 * that is one heap block of exactly its size, so ASan sees any access outside it.
 * Build and run: tests/fuzz/run-fuzz-net.sh [seconds].
 *
 * Checks the device's promises: every header it hands the network is one virtio_net_hdr_valid accepts for the
 * negotiated features, frames stay within the size cap, every iovec it writes lies in guest memory, a used
 * length never exceeds what the chain offered, num_buffers of a merged frame counts its chains, every byte a
 * kick changes lies in a used ring or in an rx buffer the device owns at that moment (posted and not yet
 * returned: a write into a buffer already handed back corrupts the guest), and one pass takes at most
 * VIRTIO_PASS_BUDGET chains (a cut-short pass asks to be rescheduled and is run again here).
 *
 * Input: byte 0 features (bit i -> the i-th entry of feature_bits), byte 1 queue sizes (rx 1 << (b & 7),
 * tx 1 << (b >> 4 & 7)), then ops until the input ends:
 *   0 tx chain: n = 1 + b % 4 segments; n le16 lengths (% 2048 + 1); then bytes filling the segments
 *   1 rx chain: n = 1 + b % 4 segments; n le16 lengths (% 4096 + 1)
 *   2 network frame: le16 length (% 70000 + 1 bytes incl. the 12-byte header), its bytes from the input
 *   3 kick tx, 4 kick rx */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "net/backend.h"

#define RAM_SIZE  (512u << 10)
#define RING_AREA 0x8000u        /* each queue's rings: desc, avail, used within 8 KiB */
#define BUF_START 0x10000u
#define MAX_NET_FRAMES 16

static const unsigned feature_bits[8] = {
	VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO4,
	VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_HOST_ECN,
};

struct fuzz_backend {
	struct net_backend be;
	uint64_t negotiated;
	const uint8_t *frames[MAX_NET_FRAMES];
	size_t lens[MAX_NET_FRAMES];
	unsigned head, count;
};

static struct fuzz_backend fb;

static void check_at(bool ok, int line)
{
	if (!ok) {
		fprintf(stderr, "fuzz_net.c:%d: check failed\n", line);
		abort();
	}
}
#define check(ok) check_at((ok), __LINE__)

/* The transport's side, as the device sees it. */
void virtio_queue_interrupt(struct virtio_device *d, unsigned q, bool force)
{
	(void)d, (void)q, (void)force;
}

void virtio_mark_broken(struct virtio_device *d, const char *why)
{
	(void)d, (void)why;
}

static bool rescheduled;

void virtio_queue_reschedule(struct virtio_device *d, unsigned q)
{
	(void)d, (void)q;
	rescheduled = true;
}

bool virtio_queue_live(const struct virtio_device *d, unsigned q)
{
	(void)d, (void)q;
	return true;
}

int net_slirp_create(const struct net_opts *o, struct net_sink sink, struct net_backend **out, vt_err *err)
{
	(void)o, (void)sink, (void)out;
	return vt_fail(err, "not in the fuzzer");
}

int net_tap_create(const struct net_opts *o, struct net_backend **out, vt_err *err)
{
	(void)o, (void)out;
	return vt_fail(err, "not in the fuzzer");
}

static ssize_t fb_sendv(struct net_backend *be, const struct iovec *iov, int n)
{
	(void)be;
	check(n >= 1 && iov[0].iov_len == sizeof(struct virtio_net_hdr));
	size_t total = 0;
	volatile uint8_t sink = 0;
	for (int i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len; k++)
			sink ^= p[k]; /* ASan: every byte must be readable */
		total += iov[i].iov_len;
	}
	(void)sink;
	size_t frame = total - sizeof(struct virtio_net_hdr);
	check(frame <= VIRTIO_NET_MAX_GSO_FRAME);
	struct virtio_net_hdr h;
	memcpy(&h, iov[0].iov_base, sizeof(h));
	check(virtio_net_hdr_valid(&h, frame, fb.negotiated, true));
	return (ssize_t)total;
}

static ssize_t fb_recv(struct net_backend *be, uint8_t *buf, size_t cap)
{
	(void)be;
	if (!fb.count) {
		errno = EAGAIN;
		return -1;
	}
	size_t len = fb.lens[fb.head] < cap ? fb.lens[fb.head] : cap;
	memcpy(buf, fb.frames[fb.head], len);
	fb.head = (fb.head + 1) % MAX_NET_FRAMES, fb.count--;
	return (ssize_t)len;
}

static int fb_set_offload(struct net_backend *be, uint64_t f, vt_err *err)
{
	(void)be, (void)err;
	check((f & fb.negotiated) == f);
	return 0;
}

static void fb_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	(void)be, (void)frame, (void)len;
	abort(); /* a header-carrying backend never gets bare frames */
}

static void fb_destroy(struct net_backend *be)
{
	close(be->rx_fd);
}

struct rig {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq vq[2];
	uint16_t avail_idx[2];
	uint16_t free_desc[2][256], nfree[2];   /* descriptors the driver may use */
	uint16_t chain_desc[2][256][4];         /* the descriptors of the chain with head i, while in flight */
	uint8_t chain_n[2][256];                /* 0: not in flight */
	uint16_t used_seen[2];
	bool rx_unsynced;                       /* frame boundaries no longer known */
	uint32_t buf_next;
	uint32_t rx_cap[256];        /* writable bytes of the rx chain with head i */
	uint32_t rx_gpa[256];       /* where it starts (a chain's segments are contiguous here) */
	uint8_t *before, *owned;     /* RAM_SIZE each: RAM before a kick; bytes the device may write then */
};

static uint32_t ring_base(unsigned q)
{
	return q * RING_AREA;
}

static void setup_queue(struct rig *r, unsigned q, uint16_t size)
{
	struct virtq *v = &r->vq[q];
	memset(v, 0, sizeof(*v));
	v->size = size;
	v->desc_gpa = ring_base(q);
	v->avail_gpa = v->desc_gpa + 16u * size;
	v->used_gpa = (v->avail_gpa + 6 + 2u * size + 3) & ~3ull;
	v->mem = &r->mem;
	check(virtq_init(v) == 0);
	for (unsigned i = 0; i < size; i++)
		r->free_desc[q][i] = (uint16_t)(size - 1 - i);
	r->nfree[q] = size;
}

/* A chain of n segments (lengths len[]), writable if w; false when there is no room left. */
static bool post(struct rig *r, unsigned q, const uint32_t *len, unsigned n, bool w, uint16_t *head)
{
	struct virtq *v = &r->vq[q];
	uint32_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += len[i];
	if (n > r->nfree[q] || r->buf_next + total > RAM_SIZE)
		return false;
	uint16_t ds[4];
	for (unsigned i = 0; i < n; i++)
		ds[i] = r->free_desc[q][--r->nfree[q]];
	uint8_t *desc = r->ram + v->desc_gpa;
	*head = ds[0];
	memcpy(r->chain_desc[q][*head], ds, sizeof(ds));
	r->chain_n[q][*head] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		uint16_t d = ds[i];
		uint64_t gpa = r->buf_next;
		uint16_t flags = (i + 1 < n ? 1 : 0) | (w ? 2 : 0), next = i + 1 < n ? ds[i + 1] : 0;
		memcpy(desc + 16u * d, &gpa, 8);
		memcpy(desc + 16u * d + 8, &len[i], 4);
		memcpy(desc + 16u * d + 12, &flags, 2);
		memcpy(desc + 16u * d + 14, &next, 2);
		r->buf_next += len[i];
	}
	uint8_t *avail = r->ram + v->avail_gpa;
	memcpy(avail + 4 + 2u * (r->avail_idx[q] % v->size), head, 2);
	r->avail_idx[q]++;
	memcpy(avail + 2, &r->avail_idx[q], 2);
	return true;
}

static uint16_t get16(const uint8_t **d, size_t *n)
{
	uint16_t v = 0;
	if (*n >= 2)
		v = (uint16_t)((*d)[0] | (*d)[1] << 8), *d += 2, *n -= 2;
	else
		*n = 0;
	return v;
}

static uint16_t used_idx(const struct rig *r, unsigned q)
{
	uint16_t idx;
	memcpy(&idx, r->ram + r->vq[q].used_gpa + 2, 2);
	return idx;
}

/* Take back the chain with head id (it must be in flight). */
static void reclaim(struct rig *r, unsigned q, uint32_t id)
{
	check(id < r->vq[q].size && r->chain_n[q][id]);
	for (unsigned i = 0; i < r->chain_n[q][id]; i++)
		r->free_desc[q][r->nfree[q]++] = r->chain_desc[q][id][i];
	r->chain_n[q][id] = 0;
}

static void used_entry(const struct rig *r, uint16_t i, uint32_t *id, uint32_t *len)
{
	const struct virtq *v = &r->vq[VIRTIO_NET_RXQ];
	const uint8_t *used = r->ram + v->used_gpa;
	memcpy(id, used + 4 + 8u * (i % v->size), 4);
	memcpy(len, used + 8 + 8u * (i % v->size), 4);
}

/* Used rx entries since the last look: lengths within what each chain offered; each frame's num_buffers
 * (1 without MRG_RXBUF) names chains that were all published with it. */
static void check_rx_used(struct rig *r, bool mrg)
{
	uint16_t idx = used_idx(r, VIRTIO_NET_RXQ), *seen = &r->used_seen[VIRTIO_NET_RXQ];
	while (*seen != idx) {
		uint32_t id, len;
		used_entry(r, *seen, &id, &len);
		check(id < r->vq[VIRTIO_NET_RXQ].size && len <= r->rx_cap[id]);
		if (len < sizeof(struct virtio_net_hdr))
			r->rx_unsynced = true; /* a buffer smaller than a header (the spec forbids it): no grouping */
		if (r->rx_unsynced) {
			reclaim(r, VIRTIO_NET_RXQ, id);
			(*seen)++;
			continue;
		}
		struct virtio_net_hdr h;
		memcpy(&h, r->ram + r->rx_gpa[id], sizeof(h));
		check(h.num_buffers >= 1 && (mrg || h.num_buffers == 1));
		check((uint16_t)(idx - *seen) >= h.num_buffers);
		reclaim(r, VIRTIO_NET_RXQ, id);
		for (unsigned k = 1; k < h.num_buffers; k++) {
			used_entry(r, (uint16_t)(*seen + k), &id, &len);
			check(len <= r->rx_cap[id]);
			reclaim(r, VIRTIO_NET_RXQ, id);
		}
		*seen = (uint16_t)(*seen + h.num_buffers);
	}
}

/* Every tx chain comes back with nothing written. */
static void check_tx_used(struct rig *r)
{
	const struct virtq *v = &r->vq[VIRTIO_NET_TXQ];
	const uint8_t *used = r->ram + v->used_gpa;
	uint16_t idx = used_idx(r, VIRTIO_NET_TXQ), *seen = &r->used_seen[VIRTIO_NET_TXQ];
	for (; *seen != idx; (*seen)++) {
		uint32_t id, len;
		memcpy(&id, used + 4 + 8u * (*seen % v->size), 4);
		memcpy(&len, used + 8 + 8u * (*seen % v->size), 4);
		check(len == 0);
		reclaim(r, VIRTIO_NET_TXQ, id);
	}
}

static void mark(uint8_t *map, uint64_t gpa, uint64_t len)
{
	if (gpa < RAM_SIZE)
		memset(map + gpa, 1, len < RAM_SIZE - gpa ? len : RAM_SIZE - gpa);
}

/* What the device owns before a kick: both used rings (avail_event included) and the writable buffers of
 * the rx chains posted and not yet returned. */
static void mark_owned(struct rig *r)
{
	memset(r->owned, 0, r->buf_next);
	for (unsigned q = 0; q < 2; q++)
		mark(r->owned, r->vq[q].used_gpa, 6 + 8ull * r->vq[q].size);
	for (unsigned head = 0; head < r->vq[VIRTIO_NET_RXQ].size; head++)
		if (r->chain_n[VIRTIO_NET_RXQ][head])
			mark(r->owned, r->rx_gpa[head], r->rx_cap[head]);
}

/* One kick as the event loop runs it (passes until none asks to be rescheduled), checked: no byte outside
 * what the device owns changed. */
static void notify_checked(struct rig *r, struct virtio_device *d, unsigned q)
{
	size_t span = r->buf_next; /* rings and every buffer posted so far lie below */
	memcpy(r->before, r->ram, span);
	mark_owned(r);
	do {
		rescheduled = false;
		uint16_t pass_start = used_idx(r, q);
		d->ops->queue_notify(d, q);
		check(q != VIRTIO_NET_TXQ || (uint16_t)(used_idx(r, q) - pass_start) <= VIRTIO_PASS_BUDGET);
	} while (rescheduled);
	for (size_t b = 0; b < span; b += 64) {
		size_t n = span - b < 64 ? span - b : 64;
		if (!memcmp(r->before + b, r->ram + b, n))
			continue;
		for (size_t k = b; k < b + n; k++)
			check(r->before[k] == r->ram[k] || r->owned[k]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static struct rig r;
	memset(&r, 0, sizeof(r));
	r.ram = calloc(1, RAM_SIZE);
	r.before = malloc(RAM_SIZE), r.owned = malloc(RAM_SIZE);
	check(r.ram && r.before && r.owned);
	gmem_init_fixed(&r.mem, r.ram, RAM_SIZE);
	r.buf_next = BUF_START;

	memset(&fb, 0, sizeof(fb));
	fb.be = (struct net_backend){ .send = fb_send, .destroy = fb_destroy, .vnet_hdr = true,
				      .rx_fd = eventfd(0, EFD_CLOEXEC), .sendv = fb_sendv, .recv = fb_recv,
				      .set_offload = fb_set_offload };
	check(fb.be.rx_fd >= 0);
	struct net_opts o = { .kind = NET_TAP, .mac = { 0x52, 0x54, 0, 1, 2, 3 } };
	struct virtio_device *d;
	vt_err err;
	check(virtio_net_create_on(&o, &fb.be, &d, &err) == 0);
	for (unsigned i = 0; i < 8; i++)
		if (data[0] & (1u << i))
			d->negotiated |= 1ULL << feature_bits[i];
	d->negotiated &= d->features;
	fb.negotiated = d->negotiated;
	setup_queue(&r, VIRTIO_NET_RXQ, (uint16_t)(1u << (data[1] & 7)));
	setup_queue(&r, VIRTIO_NET_TXQ, (uint16_t)(1u << ((data[1] >> 4) & 7)));
	d->vq = r.vq;
	check(d->ops->activate(d) == 0);
	data += 2, size -= 2;

	while (size > 0) {
		uint8_t op = *data++;
		size--;
		unsigned nseg = 1 + (op >> 3) % 4;
		uint32_t len[4];
		uint16_t head;
		switch (op % 5) {
		case 0:
			for (unsigned i = 0; i < nseg; i++)
				len[i] = get16(&data, &size) % 2048 + 1;
			if (post(&r, VIRTIO_NET_TXQ, len, nseg, false, &head)) {
				uint32_t total = 0;
				for (unsigned i = 0; i < nseg; i++)
					total += len[i];
				size_t take = total < size ? total : size;
				memcpy(r.ram + r.buf_next - total, data, take);
				data += take, size -= take;
			}
			break;
		case 1:
			for (unsigned i = 0; i < nseg; i++)
				len[i] = get16(&data, &size) % 4096 + 1;
			if (post(&r, VIRTIO_NET_RXQ, len, nseg, true, &head)) {
				uint32_t total = 0;
				for (unsigned i = 0; i < nseg; i++)
					total += len[i];
				r.rx_cap[head] = total;
				r.rx_gpa[head] = r.buf_next - total;
			}
			break;
		case 2: {
			size_t flen = get16(&data, &size) % 70000 + 1;
			if (fb.count < MAX_NET_FRAMES) {
				/* The frame's bytes are the input's (short inputs: shorter frames). */
				size_t take = flen < size ? flen : size;
				unsigned slot = (fb.head + fb.count++) % MAX_NET_FRAMES;
				fb.frames[slot] = data, fb.lens[slot] = take;
				data += take, size -= take;
			}
			break;
		}
		case 3:
			notify_checked(&r, d, VIRTIO_NET_TXQ);
			check_tx_used(&r);
			break;
		case 4:
			notify_checked(&r, d, VIRTIO_NET_RXQ);
			check_rx_used(&r, d->negotiated & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
			break;
		}
	}
	notify_checked(&r, d, VIRTIO_NET_TXQ);
	check_tx_used(&r);
	notify_checked(&r, d, VIRTIO_NET_RXQ);
	check_rx_used(&r, d->negotiated & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	virtio_net_destroy(d);
	free(r.ram), free(r.before), free(r.owned);
	return 0;
}
