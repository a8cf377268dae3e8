/* virtio-console (virtio 1.x, 5.3): one port, the guest's hvc0. Host input is handed in from any thread
 * with virtio_console_input() and held (bounded) until the driver posts receive buffers; what the guest
 * transmits is written to an fd (the same output the serial console uses). */
#ifndef VIRTUS_VIRTIO_CONSOLE_H
#define VIRTUS_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"

#define VCON_RXQ 0
#define VCON_TXQ 1
#define VCON_PENDING_MAX 4096 /* host input held while the guest posts no receive buffers */

/* out_fd: where the guest's output goes; -1 discards it. */
int virtio_console_create(struct virtio_device **out, int out_fd, vt_err *err);
void virtio_console_destroy(struct virtio_device *d);

/* Queue host input for the guest (any thread). Returns how many bytes were accepted: fewer than n only
 * when the held input is full (the caller retries later). Wakes the device through the receive queue's
 * kick so the bytes are delivered on the event loop. */
size_t virtio_console_input(struct virtio_device *d, const uint8_t *buf, size_t n);

/* Move held input into posted receive buffers; exposed for tests (runs under the device's queue lock). */
void virtio_console_flush_rx(struct virtio_device *d);

#endif
