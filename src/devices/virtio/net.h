/* virtio-net (virtio 1.x, 5.1): one receive and one transmit queue, MAC and link status in config space.
 * Frames go to and come from a struct net_backend (net/backend.h). */
#ifndef VIRTUS_VIRTIO_NET_H
#define VIRTUS_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "lib/err.h"
#include "net/net_opts.h"

#define VIRTIO_NET_F_MAC     5
#define VIRTIO_NET_F_STATUS  16
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_LEN   12   /* struct virtio_net_hdr with num_buffers: the VERSION_1 size */
#define VIRTIO_NET_RXQ       0
#define VIRTIO_NET_TXQ       1
#define VIRTIO_NET_MAX_FRAME 65536 /* no TSO is offered, but a driver may still send big frames: cap them */

/* Build the device and its backend (per o). */
int virtio_net_create(const struct net_opts *o, struct virtio_device **out, vt_err *err);
void virtio_net_destroy(struct virtio_device *d);
/* An fd (readable when the backend has queued frames for the guest) and what to call on the device
 * thread when it is: the caller watches it on the event loop. */
int virtio_net_rx_fd(struct virtio_device *d);
void virtio_net_rx_ready(void *d);

/* The data path, exposed for tests. Copy the frame of a tx chain (its readable part minus the virtio-net
 * header) into buf; returns its length, or -1 for a chain shorter than the header or longer than cap. */
long virtio_net_tx_frame(const struct virtq_chain *c, uint8_t *buf, size_t cap);
/* Write a header (no offloads, num_buffers 1) and the frame into the writable part of an rx chain; returns
 * the bytes written, 0 if the buffers are too small for the whole frame. */
uint32_t virtio_net_rx_fill(const struct virtq_chain *c, const uint8_t *frame, size_t len);

#endif
