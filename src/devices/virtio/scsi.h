/* virtio-scsi (virtio 1.x, 5.6) with one logical unit: an MMC CD-ROM drive (devices/scsi_cd.h) at target 0,
 * LUN 0, whose disc the host inserts, swaps and ejects while the guest runs. virtio-blk has no removable
 * media; a SCSI CD drive is what guests know how to watch for a new disc (Linux's sr driver: the unit
 * attention and the media event tell it, at the next open or media poll). */
#ifndef VIRTUS_VIRTIO_SCSI_H
#define VIRTUS_VIRTIO_SCSI_H

#include <stdbool.h>

#include "devices/virtio/virtio.h"

#define VIRTIO_ID_SCSI 8

/* A controller with a CD drive holding the ISO image at path (NULL: an empty drive). */
int virtio_scsi_cd_create(const char *path, struct virtio_device **out, vt_err *err);
void virtio_scsi_cd_destroy(struct virtio_device *d);

/* From a thread other than the device thread (the image is opened before the device lock is taken). Both
 * refuse, changing nothing, while the guest has locked the tray, unless force. */
int virtio_scsi_cd_insert(struct virtio_device *d, const char *path, bool force, vt_err *err);
int virtio_scsi_cd_eject(struct virtio_device *d, bool force, vt_err *err);

struct virtio_scsi_cd_status {
	bool medium;      /* a disc is in the drive */
	bool locked;      /* the guest prevents its removal (a mounted disc) */
	bool tray_open;   /* the guest opened the tray */
};
void virtio_scsi_cd_status(struct virtio_device *d, struct virtio_scsi_cd_status *st);

#endif
