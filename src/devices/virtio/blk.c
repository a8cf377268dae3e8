/* virtio-blk (virtio 1.x, 5.2) over a raw image: one request queue. The device glues three tested pieces
 * together: the ring (queue.h) gives chains, blk_req.h checks them, vblk.h runs them on the backend
 * (block/raw.h). Requests stay in flight in the backend (io_uring or the worker pool); their completions
 * arrive through the backend's eventfd, which the VM's event loop watches (virtio_blk_complete), and are
 * pushed to the used ring with one interrupt per batch.
 *
 * Threading: queue_notify, reset and the completion handler all run under the transport's lock (the first
 * two are called with it held, the third takes it), so the backend has one owner at a time as it requires. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/vblk.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/virtio.h"
#include "lib/util.h"

#define BLK_QUEUE_SIZE        256
#define BLK_SEG_MAX           (BLK_QUEUE_SIZE - 2)   /* data segments; header and status take the rest */
#define BLK_MAX_DISCARD       (1u << 22)             /* sectors per segment: 2 GiB */
#define BLK_MAX_DISCARD_SEG   32
#define BLK_DISCARD_ALIGN     8                      /* 4 KiB: what a hole punch frees in ext4/xfs */

/* Config space offsets (struct virtio_blk_config, virtio 1.x 5.2.4). */
#define CFG_CAPACITY          0
#define CFG_SEG_MAX           12
#define CFG_BLK_SIZE          20
#define CFG_MAX_DISCARD_SEC   36
#define CFG_MAX_DISCARD_SEG   40
#define CFG_DISCARD_ALIGN     44
#define CFG_MAX_WZ_SEC        48
#define CFG_MAX_WZ_SEG        52
#define CFG_WZ_MAY_UNMAP      56
#define CFG_LEN               60

struct vblk_dev {
	struct virtio_device dev;     /* first: ops get this pointer */
	struct blk *disk;
	struct blk_req_limits limits;
	uint8_t config[CFG_LEN];
	bool drop_completions;        /* reset or teardown: the rings the requests came from are gone */
	bool pushed;                  /* a completion was pushed since the last interrupt */
	uint64_t in_flight[BLK_QUEUE_SIZE / 64]; /* bit per head whose request the backend holds */
	uint64_t reposted_heads;      /* guest errors: a head posted again while in flight */
	struct blk_counts {           /* requests as the guest asked them (GET /metrics), under the transport lock */
		uint64_t reads, read_bytes, writes, write_bytes, flushes, discards, write_zeroes, malformed;
	} count;
	/* Scratch for one request at a time (~36 KiB: kept off the loop thread's stack). */
	struct virtq_chain chain;
	struct blk_req_parsed parsed;
};

static struct vblk_dev *to_vblk(struct virtio_device *d)
{
	return (struct vblk_dev *)d;
}

static void put_le(uint8_t *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void build_config(struct vblk_dev *b)
{
	uint8_t *c = b->config;
	put_le(c + CFG_CAPACITY, 8, blk_sectors(b->disk));
	put_le(c + CFG_SEG_MAX, 4, BLK_SEG_MAX);
	put_le(c + CFG_BLK_SIZE, 4, BLK_SECTOR_SIZE);
	put_le(c + CFG_MAX_DISCARD_SEC, 4, b->limits.max_discard_sectors);
	put_le(c + CFG_MAX_DISCARD_SEG, 4, b->limits.max_discard_seg);
	put_le(c + CFG_DISCARD_ALIGN, 4, BLK_DISCARD_ALIGN);
	put_le(c + CFG_MAX_WZ_SEC, 4, b->limits.max_write_zeroes_sectors);
	put_le(c + CFG_MAX_WZ_SEG, 4, b->limits.max_write_zeroes_seg);
	c[CFG_WZ_MAY_UNMAP] = 1;
}

static uint64_t offered_features(bool readonly)
{
	uint64_t f = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
		     (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
	if (readonly)
		return f | (1ULL << VIRTIO_BLK_F_RO);
	return f | (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
}

static void blk_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, to_vblk(d)->config + off, len);  /* the transport checked off + len <= config_len */
}

/* A head the device still holds (its request in flight) posted again: the driver broke the ring's
 * contract, and honouring it would let a guest keep any number of requests in flight. */
static bool head_in_flight(const struct vblk_dev *b, uint16_t head)
{
	return b->in_flight[head / 64] & (1ULL << (head % 64));
}

static void set_in_flight(struct vblk_dev *b, uint16_t head, bool on)
{
	if (on)
		b->in_flight[head / 64] |= 1ULL << (head % 64);
	else
		b->in_flight[head / 64] &= ~(1ULL << (head % 64));
}

/* Backend completion (inside blk_poll_completions / blk_wait_completions). */
static void request_done(void *opaque, uint16_t head, uint32_t used_len)
{
	struct vblk_dev *b = opaque;
	set_in_flight(b, head, false);
	if (b->drop_completions)
		return;
	virtq_push(&b->dev.vq[0], head, used_len);
	b->pushed = true;
}

/* Parse and start one chain; finished-at-once requests (errors, GET_ID) are pushed here. */
static void count_request(struct blk_counts *c, const struct blk_req_parsed *p, enum blk_req_verdict v)
{
	if (v != BLK_REQ_OK) {
		c->malformed++;
		return;
	}
	switch (p->type) {
	case VIRTIO_BLK_T_IN: c->reads++, c->read_bytes += p->data_len; break;
	case VIRTIO_BLK_T_OUT: c->writes++, c->write_bytes += p->data_len; break;
	case VIRTIO_BLK_T_FLUSH: c->flushes++; break;
	case VIRTIO_BLK_T_DISCARD: c->discards++; break;
	case VIRTIO_BLK_T_WRITE_ZEROES: c->write_zeroes++; break;
	}
}

static void start_request(struct vblk_dev *b, struct virtq *vq)
{
	enum blk_req_verdict v = blk_req_parse(&b->chain, &b->limits, &b->parsed);
	uint32_t used;
	count_request(&b->count, &b->parsed, v);
	if (vblk_start(b->disk, &b->parsed, v, b->chain.head, request_done, b, &used)) {
		set_in_flight(b, b->chain.head, true);
		return;
	}
	virtq_push(vq, b->chain.head, used);
	b->pushed = true;
}

/* One pass over the ring (bounded: virtio_pass_pop), then the whole batch goes to the backend with one
 * kick. At most one request per head is in flight, so never more than the queue size. */
static void blk_queue_notify(struct virtio_device *d, unsigned q)
{
	struct vblk_dev *b = to_vblk(d);
	struct virtq *vq = &d->vq[q];
	struct virtio_pass pass = virtio_pass_begin(d, q);
	while (virtio_pass_pop(&pass, &b->chain) == 1) {
		if (head_in_flight(b, b->chain.head)) {
			b->reposted_heads++;
			vq->broken = true;
			virtio_mark_broken(d, "a request's head posted again while in flight");
			break;
		}
		start_request(b, vq);
	}
	blk_kick(b->disk);
	if (b->pushed) {
		b->pushed = false;
		virtio_queue_interrupt(d, q, false);
	}
}

/* Wait out every request in flight without touching the rings: the driver is forgetting them. */
static void drain_inflight(struct vblk_dev *b)
{
	b->drop_completions = true;
	while (blk_inflight(b->disk))
		blk_wait_completions(b->disk);
	b->drop_completions = false;
	b->pushed = false;
}

static void blk_reset(struct virtio_device *d)
{
	struct vblk_dev *b = to_vblk(d);
	drain_inflight(b);
	memset(b->in_flight, 0, sizeof(b->in_flight));
}

/* A snapshot waits for the backend's requests: their completions are written into guest memory. */
static bool blk_quiesced(struct virtio_device *d)
{
	return virtio_blk_in_flight(d) == 0;
}

static unsigned blk_counters(struct virtio_device *d, struct virtio_counter *out)
{
	const struct vblk_dev *b = to_vblk(d);
	const struct blk_counts *c = &b->count;
	const struct virtio_counter all[] = {
		{ "read_ops", c->reads }, { "read_bytes", c->read_bytes }, { "write_ops", c->writes },
		{ "write_bytes", c->write_bytes }, { "flush_ops", c->flushes }, { "discard_ops", c->discards },
		{ "write_zeroes_ops", c->write_zeroes }, { "malformed", c->malformed }, { "reposted_heads", b->reposted_heads },
		{ "in_flight", blk_inflight(b->disk) },
	};
	memcpy(out, all, sizeof(all));
	return ARRAY_SIZE(all);
}

static const struct virtio_device_ops blk_ops = {
	.counters = blk_counters,
	.config_read = blk_config_read,
	.reset = blk_reset,
	.queue_notify = blk_queue_notify,
	.state_save = virtio_stateless_save,
	.state_load = virtio_stateless_load,
	.quiesced = blk_quiesced,
};

void virtio_blk_complete(void *dev)
{
	struct vblk_dev *b = dev;
	struct virtio_transport *t = b->dev.transport;
	pthread_mutex_lock(&t->lock);
	blk_poll_completions(b->disk);
	if (b->pushed) {
		b->pushed = false;
		virtio_queue_interrupt(&b->dev, 0, false);
	}
	pthread_mutex_unlock(&t->lock);
}

/* The image is opened before the transport lock is taken (a slow open must not stall the vCPUs that touch
 * this device); under it, the requests in flight finish on the old image and reach the driver, then the
 * images are exchanged and the driver is told of the new capacity. */
int virtio_blk_change(struct virtio_device *d, const char *path, enum blk_format format, vt_err *err)
{
	struct vblk_dev *b = to_vblk(d);
	struct virtio_transport *t = d->transport;
	struct blk *medium;
	if (blk_medium_open(b->disk, path, format, &medium, err) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	while (blk_inflight(b->disk))
		blk_wait_completions(b->disk);
	blk_medium_swap(b->disk, medium);   /* the medium holds the old image now */
	build_config(b);
	virtio_config_changed(d);
	if (b->pushed) {
		b->pushed = false;
		virtio_queue_interrupt(d, 0, false);
	}
	pthread_mutex_unlock(&t->lock);
	blk_medium_close(medium);
	return 0;
}

unsigned virtio_blk_in_flight(const struct virtio_device *d)
{
	const struct vblk_dev *b = (const struct vblk_dev *)d;
	unsigned n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(b->in_flight); i++)
		n += (unsigned)__builtin_popcountll(b->in_flight[i]);
	return n;
}

int virtio_blk_eventfd(const struct virtio_device *d)
{
	return blk_eventfd(((const struct vblk_dev *)d)->disk);
}

int virtio_blk_lock(struct virtio_device *d, vt_err *err)
{
	return blk_lock(((struct vblk_dev *)d)->disk, err);
}

void virtio_blk_unlock(struct virtio_device *d)
{
	blk_unlock(((struct vblk_dev *)d)->disk);
}

/* The VM is frozen (vm_pci_freeze holds the transport's lock): the device thread's completion poll waits. */
int virtio_blk_checkpoint(struct virtio_device *d, const char *layer_path, vt_err *err)
{
	return blk_checkpoint(to_vblk(d)->disk, layer_path, err);
}

int virtio_blk_checkpoint_undo(struct virtio_device *d, const char *layer_path, vt_err *err)
{
	return blk_checkpoint_undo(to_vblk(d)->disk, layer_path, err);
}

bool virtio_blk_writable_image(const struct virtio_device *d)
{
	const struct blk *disk = ((const struct vblk_dev *)d)->disk;
	return !blk_readonly(disk) && !blk_is_overlay(disk);
}

const char *virtio_blk_serial(const struct virtio_device *d)
{
	return blk_serial(((const struct vblk_dev *)d)->disk);
}

enum blk_format virtio_blk_format(const struct virtio_device *d)
{
	return blk_format_used(((const struct vblk_dev *)d)->disk);
}

int virtio_blk_create(const char *path, bool readonly, const char *serial, struct virtio_device **out, vt_err *err)
{
	struct blk_opts o = { .readonly = readonly, .serial = serial };
	return virtio_blk_create_opts(path, &o, out, err);
}

int virtio_blk_create_opts(const char *path, const struct blk_opts *o, struct virtio_device **out, vt_err *err)
{
	bool readonly = o->readonly;
	struct vblk_dev *b = calloc(1, sizeof(*b));
	if (!b)
		return vt_fail_errno(err, ENOMEM, "virtio-blk");
	if (blk_open_opts(path, o, &b->disk, err) < 0) {
		free(b);
		return -1;
	}
	b->limits = (struct blk_req_limits){
		.max_discard_seg = BLK_MAX_DISCARD_SEG, .max_discard_sectors = BLK_MAX_DISCARD,
		.max_write_zeroes_seg = BLK_MAX_DISCARD_SEG, .max_write_zeroes_sectors = BLK_MAX_DISCARD,
	};
	build_config(b);
	struct virtio_device *d = &b->dev;
	d->id = VIRTIO_ID_BLOCK;
	d->features = offered_features(readonly);
	d->nqueues = 1;
	d->queue_max[0] = BLK_QUEUE_SIZE;
	d->config_len = CFG_LEN;
	d->ops = &blk_ops;
	d->name = "virtio-blk";
	if (blk_is_overlay(b->disk))
		d->snapshot_refusal = "a disk with a throwaway overlay (--disk PATH,overlay): its writes live only "
				      "in this VMM";
	*out = d;
	return 0;
}

/* After the transport is gone: completions still arriving must not touch it. */
void virtio_blk_destroy(struct virtio_device *d)
{
	if (!d)
		return;
	struct vblk_dev *b = to_vblk(d);
	b->drop_completions = true;
	blk_close(b->disk);
	free(b);
}
