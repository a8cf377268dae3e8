/* vhost-user frontend messages (see vhost_user.h). */
#include "devices/virtio/vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/util.h"

#define VHU_VERSION      0x1
#define VHU_FLAG_REPLY   (1u << 2)
#define VHU_FLAG_NEED_REPLY (1u << 3)
#define VHU_NO_FD        (1ULL << 8)  /* in a KICK/CALL payload: no fd follows */

struct vhu_hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

struct vhu_state {
	uint32_t index, num;
};

struct vhu_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct vhu_mem {
	uint32_t nregions, padding;
	struct { uint64_t gpa, size, hva, offset; } region[VHU_MAX_REGIONS];
};

struct vhu_msg {
	struct vhu_hdr h;
	union {
		uint64_t u64;
		struct vhu_state state;
		struct vhu_addr addr;
		struct vhu_mem mem;
	} p;
} __attribute__((packed)); /* the payload follows the 12-byte header directly */
_Static_assert(offsetof(struct vhu_msg, p) == 12, "vhost-user payload right after the header");

static int broken(struct vhost_user *v, vt_err *err, int e, const char *what, unsigned req)
{
	v->broken = true;
	return vt_fail_errno(err, e, "vhost-user: %s (request %u)", what, req);
}

static int send_msg(struct vhost_user *v, const struct vhu_msg *m, const int *fds, unsigned nfds, vt_err *err)
{
	if (v->broken || v->fd < 0)
		return vt_fail(err, "vhost-user: the backend connection is gone");
	char cbuf[CMSG_SPACE(sizeof(int) * VHU_MAX_REGIONS)] = { 0 };
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(m->h) + m->h.size };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		h.msg_control = cbuf;
		h.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(v->fd, &h, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len)
		return broken(v, err, n < 0 ? errno : EPIPE, "cannot send to the backend", m->h.request);
	return 0;
}

/* Read exactly len bytes within the reply timeout. */
static int read_full(struct vhost_user *v, void *buf, size_t len, unsigned req, vt_err *err)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { .fd = v->fd, .events = POLLIN };
		int r = poll(&p, 1, VHU_REPLY_TIMEOUT_MS);
		if (r == 0)
			return broken(v, err, ETIMEDOUT, "the backend did not answer", req);
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t n = r < 0 ? -1 : read(v->fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return broken(v, err, n < 0 ? errno : ECONNRESET, "the backend closed the connection", req);
		got += (size_t)n;
	}
	return 0;
}

/* The reply to req: right request code, the reply flag, exactly want bytes of payload. */
static int recv_reply(struct vhost_user *v, unsigned req, void *payload, uint32_t want, vt_err *err)
{
	struct vhu_hdr h;
	if (read_full(v, &h, sizeof(h), req, err))
		return -1;
	if (h.request != req || !(h.flags & VHU_FLAG_REPLY) || (h.flags & 0x3) != VHU_VERSION || h.size != want)
		return broken(v, err, EPROTO, "malformed reply from the backend", req);
	return read_full(v, payload, want, req, err);
}

/* A SET_* request; with REPLY_ACK agreed, wait for the backend's verdict. */
static int set(struct vhost_user *v, struct vhu_msg *m, const int *fds, unsigned nfds, vt_err *err)
{
	bool ack = v->protocol & (1ULL << VHU_PROTOCOL_F_REPLY_ACK);
	m->h.flags = VHU_VERSION | (ack ? VHU_FLAG_NEED_REPLY : 0);
	if (send_msg(v, m, fds, nfds, err))
		return -1;
	if (!ack)
		return 0;
	uint64_t status;
	if (recv_reply(v, m->h.request, &status, sizeof(status), err))
		return -1;
	return status ? vt_fail(err, "vhost-user: the backend refused request %u", m->h.request) : 0;
}

static int set_u64(struct vhost_user *v, unsigned req, uint64_t value, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = req, .size = sizeof(uint64_t) }, .p.u64 = value };
	return set(v, &m, NULL, 0, err);
}

static int get_u64(struct vhost_user *v, unsigned req, uint64_t *out, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = req, .flags = VHU_VERSION } };
	if (send_msg(v, &m, NULL, 0, err))
		return -1;
	return recv_reply(v, req, out, sizeof(*out), err);
}

static int set_state(struct vhost_user *v, unsigned req, unsigned q, unsigned num, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = req, .size = sizeof(struct vhu_state) },
			     .p.state = { .index = q, .num = num } };
	return set(v, &m, NULL, 0, err);
}

static int set_ring_fd(struct vhost_user *v, unsigned req, unsigned q, int fd, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = req, .size = sizeof(uint64_t) },
			     .p.u64 = q | (fd < 0 ? VHU_NO_FD : 0) };
	return set(v, &m, &fd, fd < 0 ? 0 : 1, err);
}

int vhu_open_fd(struct vhost_user *v, int fd, vt_err *err)
{
	*v = (struct vhost_user){ .fd = fd };
	struct vhu_msg owner = { .h = { .request = VHU_SET_OWNER } };
	uint64_t offered = 0;
	if (set(v, &owner, NULL, 0, err) || get_u64(v, VHU_GET_FEATURES, &v->features, err))
		goto fail;
	if (v->features & (1ULL << VHU_F_PROTOCOL_FEATURES)) {
		if (get_u64(v, VHU_GET_PROTOCOL_FEATURES, &offered, err))
			goto fail;
		uint64_t want = offered & (1ULL << VHU_PROTOCOL_F_REPLY_ACK);
		if (set_u64(v, VHU_SET_PROTOCOL_FEATURES, want, err))
			goto fail;
		v->protocol = want;
	}
	return 0;
fail:
	vhu_close(v);
	return -1;
}

int vhu_connect(struct vhost_user *v, const char *path, vt_err *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s", path) >= (int)sizeof(a.sun_path))
		return vt_fail(err, "vhost-user socket path %s is too long", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vt_fail_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "cannot connect to the vhost-user backend at %s", path);
	}
	if (vhu_open_fd(v, fd, err))
		return vt_err_prefix(err, "vhost-user backend %s", path);
	return 0;
}

void vhu_close(struct vhost_user *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

int vhu_set_features(struct vhost_user *v, uint64_t features, vt_err *err)
{
	return set_u64(v, VHU_SET_FEATURES, features, err);
}

int vhu_set_mem_table(struct vhost_user *v, const struct vhu_region *r, unsigned n, vt_err *err)
{
	if (n == 0 || n > VHU_MAX_REGIONS)
		return vt_fail(err, "vhost-user: %u memory regions (1 to %d)", n, VHU_MAX_REGIONS);
	struct vhu_msg m = { .h = { .request = VHU_SET_MEM_TABLE,
				    .size = (uint32_t)(8 + n * sizeof(m.p.mem.region[0])) } };
	int fds[VHU_MAX_REGIONS];
	m.p.mem.nregions = n;
	for (unsigned i = 0; i < n; i++) {
		m.p.mem.region[i].gpa = r[i].gpa;
		m.p.mem.region[i].size = r[i].size;
		m.p.mem.region[i].hva = r[i].hva;
		m.p.mem.region[i].offset = r[i].offset;
		fds[i] = r[i].fd;
	}
	return set(v, &m, fds, n, err);
}

int vhu_start_ring(struct vhost_user *v, unsigned q, unsigned size, uint64_t desc, uint64_t avail, uint64_t used,
		   int kick_fd, int call_fd, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = VHU_SET_VRING_ADDR, .size = sizeof(struct vhu_addr) },
			     .p.addr = { .index = q, .desc = desc, .used = used, .avail = avail } };
	if (set_state(v, VHU_SET_VRING_NUM, q, size, err) || set_state(v, VHU_SET_VRING_BASE, q, 0, err) ||
	    set(v, &m, NULL, 0, err) || set_ring_fd(v, VHU_SET_VRING_KICK, q, kick_fd, err) ||
	    set_ring_fd(v, VHU_SET_VRING_CALL, q, call_fd, err))
		return -1;
	/* With protocol features a ring starts disabled and waits for SET_VRING_ENABLE. */
	if ((v->features & (1ULL << VHU_F_PROTOCOL_FEATURES)) && set_state(v, VHU_SET_VRING_ENABLE, q, 1, err))
		return -1;
	return 0;
}

int vhu_stop_ring(struct vhost_user *v, unsigned q, uint32_t *base, vt_err *err)
{
	struct vhu_msg m = { .h = { .request = VHU_GET_VRING_BASE, .flags = VHU_VERSION, .size = sizeof(struct vhu_state) },
			     .p.state = { .index = q } };
	struct vhu_state st;
	if (send_msg(v, &m, NULL, 0, err) || recv_reply(v, VHU_GET_VRING_BASE, &st, sizeof(st), err))
		return -1;
	*base = st.num;
	return 0;
}
