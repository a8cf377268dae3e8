/* A network backend: where the virtio-net device's frames go and come from.
 *
 * Two kinds:
 * - Sink backends (slirp, vnet_hdr false): send() takes a bare Ethernet frame on the device thread; received
 *   frames are delivered by calling sink.deliver() from any thread of the backend's own; the sink copies
 *   the frame and returns at once.
 * - Header-carrying backends (tap, vnet_hdr true): every frame is preceded by a 12-byte struct
 *   virtio_net_hdr (the VERSION_1 layout, num_buffers included), so checksum and segmentation offloads pass
 *   through. The device writes with sendv() and reads with recv() itself, on its own thread, whenever
 *   rx_fd is readable: no backend thread, no sink. */
#ifndef VIRTUS_NET_BACKEND_H
#define VIRTUS_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lib/err.h"
#include "net/net_opts.h"

struct net_sink {
	void (*deliver)(void *opaque, const uint8_t *frame, size_t len);
	void *opaque;
};

struct net_backend {
	/* Hand one Ethernet frame (no virtio header) to the network. Frames may be dropped, like on a wire. */
	void (*send)(struct net_backend *be, const uint8_t *frame, size_t len);
	/* Stop the backend's threads and free it; sink.deliver is never called after this returns. */
	void (*destroy)(struct net_backend *be);

	/* Header-carrying backends only (vnet_hdr true; the rest are then set). */
	bool vnet_hdr;
	int rx_fd;        /* non-blocking; readable when recv() has a frame */
	/* Write one frame, header first; -1 with errno on failure (the frame is lost, like on a wire). */
	ssize_t (*sendv)(struct net_backend *be, const struct iovec *iov, int iovcnt);
	/* Read one frame with its header into buf; -1 with errno EAGAIN when there is none. */
	ssize_t (*recv)(struct net_backend *be, uint8_t *buf, size_t cap);
	/* Which offloaded frames the backend may hand us: the VIRTIO_NET_F_GUEST_* bits the driver accepted
	 * (the guest must never get a GSO or partial-checksum frame it did not ask for). */
	int (*set_offload)(struct net_backend *be, uint64_t guest_features, vt_err *err);
};

/* User-mode networking (libslirp): NAT on 10.0.2.0/24, host 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15,
 * and the port forwards of o. Fails (nothing left behind) if a forward's host port cannot be bound. */
int net_slirp_create(const struct net_opts *o, struct net_sink sink, struct net_backend **out, vt_err *err);

/* A TAP device named o->ifname (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR). An existing tap is
 * attached; a missing one is created by the kernel and vanishes when its fd is closed (when virtus exits).
 * Fails with a clear message if the name is another kind of interface or the tap is busy. */
int net_tap_create(const struct net_opts *o, struct net_backend **out, vt_err *err);

#endif
