/* virtio-vsock (virtio 1.x, 5.10) in userspace, "hybrid" style: the host side of every guest connection is
 * a Unix socket. A guest connect() to CID 2 port P becomes a connect() to the Unix socket "PATH_P"; a host
 * client of the listening socket PATH that sends "CONNECT P\n" reaches guest port P and gets "OK <port>\n".
 *
 * Threads: everything runs on the device (event-loop) thread under the transport lock: queue kicks and the
 * device's sockets, which sit behind one epoll fd (virtio_vsock_fd) the event loop watches. Reset runs on a
 * vCPU thread under the same lock. No socket call blocks: bytes the host side cannot take yet wait in a
 * bounded per-connection buffer and the guest gets no more credit until they drain. */
#ifndef VIRTUS_VIRTIO_VSOCK_H
#define VIRTUS_VIRTIO_VSOCK_H

#include <stdint.h>
#include <stdio.h>

#include "devices/virtio/virtio.h"
#include "lib/err.h"

#define VSOCK_RXQ   0
#define VSOCK_TXQ   1
#define VSOCK_EVQ   2

#define VSOCK_HOST_CID      2
#define VSOCK_CID_MIN       3
#define VSOCK_CID_MAX       0xfffffffeULL
#define VSOCK_TYPE_STREAM   1

enum vsock_op {
	VSOCK_OP_INVALID, VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_RST, VSOCK_OP_SHUTDOWN, VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_CREDIT_REQUEST,
};
#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2

/* The packet header (virtio 1.x 5.10.6), little-endian on the wire (x86: as is). */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vsock_hdr) == 44, "virtio-vsock header is 44 bytes");

#define VSOCK_BUF_ALLOC     (256u * 1024)  /* per-connection receive buffer advertised to the guest */
#define VSOCK_MAX_PAYLOAD   (64u * 1024)   /* longest payload accepted in one guest packet (Linux's max) */
#define VSOCK_MAX_CONNS     1024           /* connections (and host clients awaiting their line) at once */
#define VSOCK_MAX_LINE      32             /* "CONNECT 4294967295\n" fits */
#define VSOCK_MAX_AWAITING  16             /* host clients still sending their line; a new one closes the oldest */
#define VSOCK_PATH_SUFFIX   11             /* "_4294967295" */
#define VSOCK_PENDING_RST   64             /* RSTs owed for unknown connections; more are dropped */

struct vsock_stats {
	uint64_t conns_from_guest, conns_from_host, bytes_to_host, bytes_to_guest, rsts_sent, bad_packets;
	uint64_t transport_resets;       /* events sent after a restore */
};

/* Check PATH for use as --vsock's socket path (length with the "_P" suffix). */
int vsock_check_path(const char *path, vt_err *err);

/* Create the device and its listening socket PATH (mode 0600). Fails if PATH exists and is not a stale
 * socket (one nobody listens on, which is replaced). PATH is removed by virtio_vsock_destroy. */
int virtio_vsock_create(uint64_t guest_cid, const char *path, struct virtio_device **out, vt_err *err);
void virtio_vsock_destroy(struct virtio_device *d);

/* An fd readable whenever one of the device's sockets needs attention, and what to call on the device
 * thread then: the caller watches it on the event loop. */
int virtio_vsock_fd(struct virtio_device *d);
void virtio_vsock_ready(void *d);

void virtio_vsock_get_stats(struct virtio_device *d, struct vsock_stats *s);
void virtio_vsock_print_stats(struct virtio_device *d, FILE *f);
/* Open connections (tests). */
unsigned virtio_vsock_nconns(struct virtio_device *d);

/* One transmitted packet (a tx chain), exposed for the fuzzer: runs without a transport. */
void virtio_vsock_tx_packet(struct virtio_device *d, const struct virtq_chain *c);

#endif
