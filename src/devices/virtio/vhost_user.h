/* A vhost-user frontend: virtus hands a virtio device's rings to a backend process (e.g. virtiofsd) over a
 * Unix socket, with guest memory shared by file descriptor; the backend then serves the queues itself,
 * woken by the queue's kick eventfd and signalling completions on a call eventfd.
 *
 * Messages (the vhost-user protocol: a 12-byte header request/flags/size, a payload, file descriptors as
 * SCM_RIGHTS) are sent synchronously by whoever owns the frontend; replies are checked (request code, reply
 * flag, size) and bounded by a timeout, so a backend that is gone or confused is an error, never a hang or a
 * crash. */
#ifndef VIRTUS_VHOST_USER_H
#define VIRTUS_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

#define VHU_F_PROTOCOL_FEATURES 30     /* feature bit: the backend speaks GET/SET_PROTOCOL_FEATURES */
#define VHU_PROTOCOL_F_REPLY_ACK 3
#define VHU_MAX_REGIONS 8
#define VHU_REPLY_TIMEOUT_MS 5000

enum vhu_request {
	VHU_GET_FEATURES = 1, VHU_SET_FEATURES = 2, VHU_SET_OWNER = 3, VHU_SET_MEM_TABLE = 5,
	VHU_SET_VRING_NUM = 8, VHU_SET_VRING_ADDR = 9, VHU_SET_VRING_BASE = 10, VHU_GET_VRING_BASE = 11,
	VHU_SET_VRING_KICK = 12, VHU_SET_VRING_CALL = 13, VHU_GET_PROTOCOL_FEATURES = 15,
	VHU_SET_PROTOCOL_FEATURES = 16, VHU_SET_VRING_ENABLE = 18,
};

struct vhu_region {
	uint64_t gpa, size, hva, offset;   /* offset of the region within fd's file */
	int fd;
};

struct vhost_user {
	int fd;                  /* the connected socket, -1 when closed */
	uint64_t features;       /* what the backend offers (GET_FEATURES) */
	uint64_t protocol;       /* protocol features agreed (only REPLY_ACK is used) */
	bool broken;             /* a send or reply failed: every later call fails at once */
};

/* Connect to PATH, take ownership, learn the backend's features and agree on protocol features. */
int vhu_connect(struct vhost_user *v, const char *path, vt_err *err);
/* The same over an already connected socket (tests). Takes fd. */
int vhu_open_fd(struct vhost_user *v, int fd, vt_err *err);
void vhu_close(struct vhost_user *v);

int vhu_set_features(struct vhost_user *v, uint64_t features, vt_err *err);
int vhu_set_mem_table(struct vhost_user *v, const struct vhu_region *r, unsigned n, vt_err *err);
/* Ring q: size, first available index, the host virtual addresses of its three parts, kick and call fds. */
int vhu_start_ring(struct vhost_user *v, unsigned q, unsigned size, uint64_t desc, uint64_t avail, uint64_t used,
		   int kick_fd, int call_fd, vt_err *err);
/* Stop ring q (GET_VRING_BASE); *base receives where the backend stopped. */
int vhu_stop_ring(struct vhost_user *v, unsigned q, uint32_t *base, vt_err *err);

#endif
