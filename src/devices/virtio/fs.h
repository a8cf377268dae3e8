/* virtio-fs (virtio 1.x, 5.11) whose queues a vhost-user backend serves (Debian's virtiofsd): virtus owns
 * the PCI function, the configuration (tag, number of request queues) and the MSI-X vectors; the backend
 * maps guest RAM (which must be GMEM_SHARED) and reads the rings itself.
 *
 * Threads: create on the main thread (it connects to the backend and learns its features, before any
 * sandbox); activate and reset on a vCPU thread under the transport lock (they send the ring setup and stop
 * the rings); the backend's completions arrive on per-queue call eventfds behind one epoll fd (virtio_fs_fd)
 * that the caller watches on the event loop, calling virtio_fs_ready there. */
#ifndef VIRTUS_VIRTIO_FS_H
#define VIRTUS_VIRTIO_FS_H

#include "devices/virtio/virtio.h"
#include "lib/err.h"
#include "vmm/guest_mem.h"

#define VIRTIO_FS_TAG_MAX 36   /* bytes of the config's tag, not NUL-terminated when full */
#define VIRTIO_FS_QUEUE_SIZE 256

int virtio_fs_create(const char *tag, const char *socket_path, const struct guest_mem *mem,
		     struct virtio_device **out, vt_err *err);
void virtio_fs_destroy(struct virtio_device *d);
int virtio_fs_fd(struct virtio_device *d);
void virtio_fs_ready(void *d);

#endif
