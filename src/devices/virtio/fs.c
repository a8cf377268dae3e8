/* virtio-fs through vhost-user: see fs.h. The device itself moves no data; it hands the rings over. */
#include "devices/virtio/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/vhost_user.h"
#include "lib/util.h"

#define FS_QUEUES 2   /* hiprio + one request queue */

struct virtio_fs_config {
	char tag[VIRTIO_FS_TAG_MAX];
	uint32_t num_request_queues;
} __attribute__((packed));

struct virtio_fs {
	struct virtio_device dev;
	struct virtio_fs_config config;
	const struct guest_mem *mem;
	struct vhost_user vu;
	int epfd;
	int call_fd[FS_QUEUES];
	bool started[FS_QUEUES];
	bool said_gone;
};

static struct virtio_fs *to_fs(struct virtio_device *d)
{
	return (struct virtio_fs *)d; /* dev is the first member */
}

static void fs_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, (const uint8_t *)&to_fs(d)->config + off, len);
}

/* Once per VM: a backend that died is worth one line on stderr (the guest then sees I/O errors). */
static void backend_gone(struct virtio_fs *f, const vt_err *err)
{
	if (f->said_gone)
		return;
	f->said_gone = true;
	fprintf(stderr, "virtus: virtio-fs '%.*s': %s\n", VIRTIO_FS_TAG_MAX, f->config.tag, err->msg);
}

static int share_memory(struct virtio_fs *f, vt_err *err)
{
	struct vhu_region r[GMEM_MAX_REGIONS];
	const struct guest_mem *m = f->mem;
	for (unsigned i = 0; i < m->nregions; i++)
		r[i] = (struct vhu_region){ .gpa = m->region[i].gpa, .size = m->region[i].size,
					    .hva = (uint64_t)(uintptr_t)m->region[i].hva,
					    .offset = (uint64_t)(m->region[i].hva - (uint8_t *)m->mapping), .fd = m->fd };
	return vhu_set_mem_table(&f->vu, r, m->nregions, err);
}

/* The ring's three parts as host addresses; NULL when the driver put one outside RAM (a guest error). */
static int ring_hvas(const struct virtio_fs *f, const struct virtio_queue_info *qi, uint64_t hva[3])
{
	uint64_t n = qi->size;
	void *desc = gmem_ptr(f->mem, qi->desc, 16 * n);
	void *avail = gmem_ptr(f->mem, qi->driver, 6 + 2 * n);
	void *used = gmem_ptr(f->mem, qi->device, 6 + 8 * n);
	if (!desc || !avail || !used)
		return -1;
	hva[0] = (uint64_t)(uintptr_t)desc, hva[1] = (uint64_t)(uintptr_t)avail, hva[2] = (uint64_t)(uintptr_t)used;
	return 0;
}

static int fs_activate(struct virtio_device *d)
{
	struct virtio_fs *f = to_fs(d);
	vt_err err = { 0 };
	uint64_t features = d->negotiated | (f->vu.features & (1ULL << VHU_F_PROTOCOL_FEATURES));
	if (vhu_set_features(&f->vu, features, &err) || share_memory(f, &err))
		goto gone;
	for (unsigned q = 0; q < FS_QUEUES; q++) {
		struct virtio_queue_info qi;
		uint64_t hva[3];
		virtio_queue_get_info(d, q, &qi);
		if (!qi.enabled)
			continue;
		if (ring_hvas(f, &qi, hva))
			return -1; /* the transport marks the device broken */
		if (vhu_start_ring(&f->vu, q, qi.size, hva[0], hva[1], hva[2], qi.kick_fd, f->call_fd[q], &err))
			goto gone;
		f->started[q] = true;
	}
	return 0;
gone:
	backend_gone(f, &err);
	return -1;
}

static void fs_reset(struct virtio_device *d)
{
	struct virtio_fs *f = to_fs(d);
	for (unsigned q = 0; q < FS_QUEUES; q++) {
		uint32_t base;
		vt_err err = { 0 };
		if (f->started[q] && vhu_stop_ring(&f->vu, q, &base, &err))
			backend_gone(f, &err);
		f->started[q] = false;
	}
}

static void fs_queue_notify(struct virtio_device *d, unsigned q)
{
	(void)d, (void)q; /* never called: the backend reads the kicks (external_queues) */
}

static const struct virtio_device_ops fs_ops = {
	.config_read = fs_config_read, .activate = fs_activate, .reset = fs_reset, .queue_notify = fs_queue_notify,
};

void virtio_fs_ready(void *dev)
{
	struct virtio_fs *f = dev;
	struct epoll_event ev[FS_QUEUES];
	int n = epoll_wait(f->epfd, ev, FS_QUEUES, 0);
	for (int i = 0; i < n; i++) {
		unsigned q = ev[i].data.u32;
		uint64_t count;
		if (read(f->call_fd[q], &count, sizeof(count)) == sizeof(count))
			virtio_queue_signal(&f->dev, q);
	}
}

int virtio_fs_fd(struct virtio_device *d)
{
	return to_fs(d)->epfd;
}

static int make_call_fds(struct virtio_fs *f, vt_err *err)
{
	if ((f->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "virtio-fs: epoll");
	for (unsigned q = 0; q < FS_QUEUES; q++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = q };
		if ((f->call_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
		    epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->call_fd[q], &ev))
			return vt_fail_errno(err, errno, "virtio-fs: eventfd");
	}
	return 0;
}

int virtio_fs_create(const char *tag, const char *socket_path, const struct guest_mem *mem,
		     struct virtio_device **out, vt_err *err)
{
	size_t len = strlen(tag);
	if (!len || len > VIRTIO_FS_TAG_MAX)
		return vt_fail(err, "--fs tag '%s': 1 to %d bytes", tag, VIRTIO_FS_TAG_MAX);
	if (mem->fd < 0)
		return vt_fail(err, "virtio-fs needs shared guest memory");
	struct virtio_fs *f = calloc(1, sizeof(*f));
	if (!f)
		return vt_fail_errno(err, ENOMEM, "virtio-fs");
	f->epfd = f->call_fd[0] = f->call_fd[1] = -1;
	f->vu.fd = -1;
	f->mem = mem;
	memcpy(f->config.tag, tag, len);
	f->config.num_request_queues = FS_QUEUES - 1;
	f->dev = (struct virtio_device){ .id = VIRTIO_ID_FS, .nqueues = FS_QUEUES, .config_len = sizeof(f->config),
					 .ops = &fs_ops, .name = "virtio-fs", .external_queues = true,
					 .snapshot_refusal = "virtio-fs (--fs): its state is in virtiofsd, which cannot be "
							     "snapshotted" };
	for (unsigned q = 0; q < FS_QUEUES; q++)
		f->dev.queue_max[q] = VIRTIO_FS_QUEUE_SIZE;
	if (make_call_fds(f, err) || vhu_connect(&f->vu, socket_path, err)) {
		virtio_fs_destroy(&f->dev);
		return vt_err_prefix(err, "--fs tag=%s", tag);
	}
	/* What the guest may use: the ring features the backend implements (VERSION_1 comes from the transport). */
	f->dev.features = f->vu.features & ((1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX));
	*out = &f->dev;
	return 0;
}

void virtio_fs_destroy(struct virtio_device *d)
{
	struct virtio_fs *f = to_fs(d);
	vhu_close(&f->vu);
	for (unsigned q = 0; q < FS_QUEUES; q++)
		if (f->call_fd[q] >= 0)
			close(f->call_fd[q]);
	if (f->epfd >= 0)
		close(f->epfd);
	free(f);
}
