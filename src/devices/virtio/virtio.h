/* What a virtio device implements, and what its transport gives back (virtio 1.x).
 *
 * A device (rng, blk, net, ...) fills a struct virtio_device: its id, the features it offers, its queues and
 * a small ops table. The transport (virtio-pci) owns feature negotiation, the status state machine, queue
 * configuration and interrupts; it calls the ops below and the device calls virtio_* back.
 *
 * Threading: every op except config_read/config_write runs with the transport's device lock held.
 * queue_notify runs on the event-loop thread; config_*, activate and reset run on a vCPU thread. So a device
 * never sees a reset while it is processing a queue, and needs no lock of its own for queue state. */
#ifndef VIRTUS_VIRTIO_H
#define VIRTUS_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "block/raw.h"
#include "devices/virtio/queue.h"
#include "lib/err.h"

/* Device ids (virtio 1.x, 5). */
#define VIRTIO_ID_NET      1
#define VIRTIO_ID_BLOCK    2
#define VIRTIO_ID_CONSOLE  3
#define VIRTIO_ID_RNG      4
#define VIRTIO_ID_BALLOON  5
#define VIRTIO_ID_VSOCK    19
#define VIRTIO_ID_FS       26

/* Device-independent feature bits (virtio 1.x, 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* Device status bits (virtio 1.x, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE  1
#define VIRTIO_STATUS_DRIVER       2
#define VIRTIO_STATUS_DRIVER_OK    4
#define VIRTIO_STATUS_FEATURES_OK  8
#define VIRTIO_STATUS_NEEDS_RESET  0x40
#define VIRTIO_STATUS_FAILED       0x80

#define VIRTIO_MAX_QUEUES 8

struct virtio_device;
struct state_writer;
struct state_reader;

#define VIRTIO_MAX_COUNTERS 16
struct virtio_counter {
	const char *name;                 /* snake_case, static */
	uint64_t value;
};

struct virtio_device_ops {
	/* Device-specific configuration space (virtio 1.x, 4.1.4.6), offset within it; the transport has
	 * already checked off + len <= config_len. Optional: absent means reads of zeros, writes dropped. */
	void (*config_read)(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_device *d, uint32_t off, const uint8_t *data, uint32_t len);
	/* The driver set DRIVER_OK: negotiated features and enabled queues are final. Return -1 to fail the
	 * device (status NEEDS_RESET). Optional. */
	int (*activate)(struct virtio_device *d);
	/* The driver wrote 0 to status (or the VM stops): forget everything. Optional. */
	void (*reset)(struct virtio_device *d);
	/* Queue q was kicked (ioeventfd or a trapped notify write): consume it. Runs on the event loop. */
	void (*queue_notify)(struct virtio_device *d, unsigned q);

	/* Snapshot (docs/snapshot.md). Every device has both, or says in snapshot_refusal why it cannot be
	 * snapshotted: virtio_pci_create refuses a device with neither, so a new device cannot forget its state.
	 * state_save writes the device's own state (beyond the transport's: rings, features, status) as section
	 * `name`, with the transport lock held and the VM paused; it may give back chains it holds unused
	 * (virtq_unpop). state_load reads it into a device just built the same way, after the transport's state
	 * and before activate; it may use its queues (vsock's transport-reset event). virtio_stateless_save/load
	 * are for devices whose state is all in the transport and their rings. */
	void (*state_save)(struct virtio_device *d, struct state_writer *w, const char *name);
	int (*state_load)(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err);
	/* Whether the device holds no request its state cannot describe (virtio-blk: requests in the backend).
	 * A snapshot waits, devices running, until every device says so. Optional: absent means always. */
	bool (*quiesced)(struct virtio_device *d);
	/* The device's counters (GET /metrics), at most VIRTIO_MAX_COUNTERS, read with the transport lock held
	 * (the device updates them under it). Optional. */
	unsigned (*counters)(struct virtio_device *d, struct virtio_counter *out);
};

struct virtio_transport;

struct virtio_device {
	/* Filled by the device before it is plugged. */
	uint16_t id;                      /* VIRTIO_ID_* */
	uint64_t features;                /* offered; the transport adds VERSION_1 */
	unsigned nqueues;                 /* 1..VIRTIO_MAX_QUEUES */
	uint16_t queue_max[VIRTIO_MAX_QUEUES]; /* largest ring the device accepts (power of two) */
	uint32_t config_len;              /* bytes of device config space, <= 4096 */
	const struct virtio_device_ops *ops;
	const char *name;                 /* "virtio-rng": diagnostics and --stats */
	const char *snapshot_refusal;     /* why this device cannot be snapshotted (instead of state ops) */
	/* Another process serves the queues (vhost-user): the transport makes each queue's kick eventfd and
	 * attaches it as an ioeventfd but never reads it, and never calls queue_notify. */
	bool external_queues;

	/* Filled by the transport. */
	uint64_t negotiated;              /* valid once FEATURES_OK is set */
	struct virtq *vq;                 /* vq[0..nqueues): the rings, valid for enabled queues */
	struct virtio_transport *transport;
};

/* Interrupt the driver for queue q if the ring says so (virtq_should_notify), or unconditionally (force). */
void virtio_queue_interrupt(struct virtio_device *d, unsigned q, bool force);
/* Device configuration changed: bump config_generation and send the config interrupt. */
void virtio_config_changed(struct virtio_device *d);
/* A guest error (malformed ring): set DEVICE_NEEDS_RESET and tell the driver. The device stops using
 * its queues until the driver resets it. */
void virtio_mark_broken(struct virtio_device *d, const char *why);

/* Whether queue q may be used now: DRIVER_OK, not NEEDS_RESET, the queue enabled with valid rings.
 * Call with the transport lock held (every op but config_* has it). */
bool virtio_queue_live(const struct virtio_device *d, unsigned q);

/* For a device with external_queues, at activate (transport lock held): queue q as the driver set it up. */
struct virtio_queue_info {
	bool enabled;
	uint16_t size;
	uint64_t desc, driver, device;    /* guest-physical addresses of the three parts of the split ring */
	int kick_fd;                      /* where the guest's kicks arrive */
};
void virtio_queue_get_info(const struct virtio_device *d, unsigned q, struct virtio_queue_info *out);
/* From any thread, without the lock held: interrupt the driver for queue q (a backend used it). */
void virtio_queue_signal(struct virtio_device *d, unsigned q);

/* Run queue_notify(q) again soon, on the event loop, after the other devices had their turn. */
void virtio_queue_reschedule(struct virtio_device *d, unsigned q);

/* One pass over a queue, fair to the other devices on the shared event-loop thread: it ends when the queue
 * is empty (with notifications re-armed and the race with a new buffer closed) or when VIRTIO_PASS_BUDGET
 * chains were taken (the rest waits for the next pass, already re-queued), so a guest that keeps posting
 * cannot hold the thread. */
#define VIRTIO_PASS_BUDGET 256

struct virtio_pass {
	struct virtio_device *d;
	unsigned q;
	unsigned left;
};

static inline struct virtio_pass virtio_pass_begin(struct virtio_device *d, unsigned q)
{
	return (struct virtio_pass){ .d = d, .q = q, .left = VIRTIO_PASS_BUDGET };
}

/* 1: *chain is the next chain. 0: the pass is over. -1: a malformed chain; the device is marked broken. */
int virtio_pass_pop(struct virtio_pass *p, struct virtq_chain *chain);

void virtio_stateless_save(struct virtio_device *d, struct state_writer *w, const char *name);
int virtio_stateless_load(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err);

static inline bool virtio_has_feature(const struct virtio_device *d, unsigned bit)
{
	return d->negotiated & (1ULL << bit);
}

/* Devices. */
/* virtio-fs served by a vhost-user backend (virtiofsd) at socket: see devices/virtio/fs.h. */
int virtio_rng_create(struct virtio_device **out, vt_err *err);
void virtio_rng_destroy(struct virtio_device *d);
/* virtio-blk over a raw or qcow2 image (serial NULL: derived from the image). Its backend's completions
 * arrive on virtio_blk_eventfd(): call virtio_blk_complete(dev) on the event loop when it is readable. */
int virtio_blk_create(const char *path, bool readonly, const char *serial, struct virtio_device **out, vt_err *err);
/* The same with every option of the block layer (block/raw.h). With defer_lock the image's lock waits for
 * virtio_blk_lock (a migration's destination opens the image while the source still holds it);
 * virtio_blk_unlock gives it up (the source, once the guest is gone). A disk with a throwaway overlay
 * refuses snapshots and migration. */
struct blk_opts;
int virtio_blk_create_opts(const char *path, const struct blk_opts *o, struct virtio_device **out, vt_err *err);
int virtio_blk_lock(struct virtio_device *d, vt_err *err);
void virtio_blk_unlock(struct virtio_device *d);
void virtio_blk_destroy(struct virtio_device *d);
/* A disk checkpoint (blk_checkpoint in block/raw.h), for a snapshot of a paused VM whose devices are frozen. */
int virtio_blk_checkpoint(struct virtio_device *d, const char *layer_path, vt_err *err);
int virtio_blk_checkpoint_undo(struct virtio_device *d, const char *layer_path, vt_err *err);
bool virtio_blk_writable_image(const struct virtio_device *d);   /* what a checkpoint freezes */
/* A new image under the running disk (block/raw.h blk_medium_*): its capacity is the new image's, the
 * driver gets a configuration interrupt; read-only mode and serial stay the device's. On failure nothing
 * changed. Safe for the guest only while it does not use the disk (nothing mounted). */
int virtio_blk_change(struct virtio_device *d, const char *path, enum blk_format format, vt_err *err);
const char *virtio_blk_serial(const struct virtio_device *d);
enum blk_format virtio_blk_format(const struct virtio_device *d);
int virtio_blk_eventfd(const struct virtio_device *d);
void virtio_blk_complete(void *dev);
/* Requests the device holds in flight (at most the queue size: a head posted again while in flight is a
 * guest error). */
unsigned virtio_blk_in_flight(const struct virtio_device *d);

#endif
