/* A network backend: where the virtio-net device's frames go and come from.
 *
 * Threads: send() is called on the device thread (event loop). The backend delivers received frames by
 * calling sink.deliver() from any thread of its own; the sink copies the frame and returns at once. */
#ifndef VIRTUS_NET_BACKEND_H
#define VIRTUS_NET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

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
};

/* User-mode networking (libslirp): NAT on 10.0.2.0/24, host 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15,
 * and the port forwards of o. Fails (nothing left behind) if a forward's host port cannot be bound. */
int net_slirp_create(const struct net_opts *o, struct net_sink sink, struct net_backend **out, vt_err *err);

#endif
