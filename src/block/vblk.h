/* Executing parsed virtio-blk requests (devices/virtio/blk_req.h) on a block backend (block/raw.h): the
 * transport-independent core of a virtio-blk device. The device pops a chain, parses it, calls
 * vblk_start(), and returns the chain to the driver with the used length it is given, either at once or
 * from the done callback (which runs inside blk_poll_completions on the owner thread).
 *
 * The status byte is written here; DISCARD / WRITE_ZEROES segment lists run one segment after another and
 * stop at the first failure; GET_ID writes the disk serial, NUL-padded to 20 bytes. */
#ifndef VIRTUS_BLOCK_VBLK_H
#define VIRTUS_BLOCK_VBLK_H

#include <stdbool.h>
#include <stdint.h>

#include "block/raw.h"
#include "devices/virtio/blk_req.h"

typedef void vblk_done_fn(void *opaque, uint16_t head, uint32_t used_len);

/* Start the request a chain was parsed into. Returns true if it is in flight (done(opaque, head, used)
 * follows later, exactly once), false if it finished already: then *used_len holds the bytes written
 * into the chain (0 for BLK_REQ_NO_STATUS). The chain's memory must stay mapped until it is returned. */
bool vblk_start(struct blk *disk, const struct blk_req_parsed *p, enum blk_req_verdict v, uint16_t head,
		vblk_done_fn *done, void *opaque, uint32_t *used_len);

#endif
