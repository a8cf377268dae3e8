/* One bounded pass over a queue (virtio.h: struct virtio_pass): the loop every device runs when kicked. */
#include "devices/virtio/virtio.h"

int virtio_pass_pop(struct virtio_pass *p, struct virtq_chain *chain)
{
	struct virtq *vq = &p->d->vq[p->q];
	if (!p->left) {
		virtio_queue_reschedule(p->d, p->q);
		return 0;
	}
	for (;;) {
		int rc = virtq_pop(vq, chain);
		if (rc == 1) {
			p->left--;
			return 1;
		}
		if (rc < 0) {
			virtio_mark_broken(p->d, "malformed descriptor chain");
			return -1;
		}
		if (!virtq_enable_notify(vq, true)) /* true: a buffer raced in, take it */
			return 0;
	}
}

/* For devices whose whole state is in their transport and rings (virtio.h). */
void virtio_stateless_save(struct virtio_device *d, struct state_writer *w, const char *name)
{
	(void)d, (void)w, (void)name;
}

int virtio_stateless_load(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err)
{
	(void)d, (void)r, (void)name, (void)err;
	return 0;
}
