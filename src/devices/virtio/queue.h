/* Split virtqueues (virtio 1.x, 2.7): the one piece of code that reads descriptor chains the guest wrote.
 * Everything here treats guest memory as hostile: every address goes through gmem_ptr(), and a malformed
 * chain (out-of-range address or index, a loop, a chain longer than the queue, a zero-length or overflowing
 * buffer, a nested indirect table, a readable descriptor after a writable one) is a guest error that breaks
 * the queue (the device then sets DEVICE_NEEDS_RESET), never a VMM crash or an out-of-bounds access.
 *
 * Threading: one queue is driven by one thread at a time (the device's); no locks inside. */
#ifndef VIRTUS_VIRTIO_QUEUE_H
#define VIRTUS_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/guest_mem.h"

#define VIRTQ_MAX_SIZE   32768   /* split ring limit (power of two) */
#define VIRTQ_MAX_SEGS   1024    /* longest chain virtus accepts (direct + indirect) */

/* Descriptor flags (virtio 1.x 2.7.5). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_USED_F_NO_NOTIFY 1
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq {
	/* Set by the transport from the driver's configuration. */
	uint16_t size;            /* power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;           /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;            /* VIRTIO_F_INDIRECT_DESC negotiated */
	const struct guest_mem *mem;
	/* Device-side state. */
	uint16_t last_avail;      /* next avail ring slot to consume */
	uint16_t used_idx;        /* our copy of used->idx */
	uint16_t signalled_used;  /* used_idx when the driver was last interrupted (event idx) */
	bool signalled_valid;
	bool ready;               /* virtq_init succeeded: the rings below are mapped */
	bool broken;              /* a guest error was seen: stop using the queue */
	/* Private to queue.c: host addresses of the three areas, resolved and bounds-checked by virtq_init. */
	uint8_t *desc_hva, *avail_hva, *used_hva;
};

/* One buffer chain, resolved to host memory. Readable segments come first, then writable ones. */
struct virtq_chain {
	uint16_t head;            /* index to return in the used ring */
	unsigned nread, nwrite;   /* iov[0..nread) readable, iov[nread..nread+nwrite) device-writable */
	uint64_t read_len, write_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
};

/* Check the ring addresses against guest memory and reset device state; -1 if the rings do not fit. */
int virtq_init(struct virtq *q);

/* A queue the driver has not enabled (or that a reset took away): every operation below refuses to touch
 * guest memory (pop finds nothing, push and notify do nothing) until virtq_init succeeds on it again. */
void virtq_disable(struct virtq *q);

/* Whether the queue is enabled with its rings mapped, and no guest error was seen. */
static inline bool virtq_usable(const struct virtq *q)
{
	return q->ready && !q->broken;
}

/* Take the next available chain: 1 got one, 0 none pending (or the queue is not enabled), -1 guest error
 * (q->broken is set). */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);

/* Return a chain to the driver with `written` bytes written into its writable part. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* A batch published at once (virtio-net's merged rx buffers: the driver must see every chain of a frame
 * together). virtq_fill writes the used entry i slots past the last published one without publishing it;
 * virtq_flush then publishes n filled entries with one index update. */
void virtq_fill(struct virtq *q, unsigned i, uint16_t head, uint32_t written);
void virtq_flush(struct virtq *q, unsigned n);

/* Give the last n popped (and not pushed) chains back: the next virtq_pop returns them again. */
void virtq_unpop(struct virtq *q, unsigned n);

/* After a batch of pushes: must the driver be interrupted? Honours VIRTQ_AVAIL_F_NO_INTERRUPT or, with
 * event idx, used_event (wrap-around safe). */
bool virtq_should_notify(struct virtq *q);

/* Ask the driver not to notify (while the device is busy polling) or to notify again. With event idx this
 * writes avail_event; otherwise VIRTQ_USED_F_NO_NOTIFY. Returns true if buffers arrived meanwhile (callers
 * re-check after enabling to close the race). */
bool virtq_enable_notify(struct virtq *q, bool enable);

/* Where both sides are, for diagnostics (a stalled queue: who waits for whom). False if the queue is not
 * usable. The driver's fields are read as they are now. */
struct virtq_positions {
	uint16_t avail_idx, last_avail;   /* the driver's avail->idx; the next one the device takes */
	uint16_t used_idx;                /* the device's used->idx */
	uint16_t used_event, avail_event; /* event idx: the driver's wish, the device's */
};
bool virtq_positions(const struct virtq *q, struct virtq_positions *p);

/* The event-idx test of virtio 1.x 2.7.7.2, exposed for tests. */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
