/* virtio-net (virtio 1.x, 5.1): one receive and one transmit queue, MAC and link status in config space.
 * Frames go to and come from a struct net_backend (net/backend.h). On a backend that carries virtio-net
 * headers (tap) the device also offers checksum and TCP segmentation offloads both ways and merged rx
 * buffers; on the others (slirp) no offloads and zeroed headers. */
#ifndef VIRTUS_VIRTIO_NET_H
#define VIRTUS_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/virtio/virtio.h"
#include "lib/err.h"
#include "net/net_opts.h"

#define VIRTIO_NET_F_CSUM       0   /* device takes partially checksummed frames (tx) */
#define VIRTIO_NET_F_GUEST_CSUM 1   /* driver takes partially checksummed frames (rx) */
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_LEN   12   /* struct virtio_net_hdr with num_buffers: the VERSION_1 size */
#define VIRTIO_NET_RXQ       0
#define VIRTIO_NET_TXQ       1
#define VIRTIO_NET_MAX_FRAME 65536 /* no TSO is offered, but a driver may still send big frames: cap them */
#define VIRTIO_NET_MAX_GSO_FRAME (65536 + 14) /* a 64 KiB GSO packet plus its Ethernet header */

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE  0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP   3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN   0x80

/* The header in front of every frame (little-endian fields; virtus runs on x86 only). */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

struct net_backend;

/* Build the device and its backend (per o). */
int virtio_net_create(const struct net_opts *o, struct virtio_device **out, vt_err *err);
/* The same on a backend built by the caller (tests, fuzzing); the device owns be from then on, also on
 * failure. */
int virtio_net_create_on(const struct net_opts *o, struct net_backend *be, struct virtio_device **out, vt_err *err);
void virtio_net_destroy(struct virtio_device *d);
/* One --stats line: frames and bytes each way, and frames dropped (malformed headers, no room). */
void virtio_net_print_stats(struct virtio_device *d, FILE *f);
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
/* Is h a header the other side may act on, for a frame of frame_len bytes after it? Only the offloads the
 * negotiated features allow (from_guest: CSUM/HOST_*; else GUEST_*), checksum start and offset and the GSO
 * header length inside the frame, a nonzero segment size for GSO. Anything else is dropped. */
bool virtio_net_hdr_valid(const struct virtio_net_hdr *h, size_t frame_len, uint64_t features, bool from_guest);

#endif
