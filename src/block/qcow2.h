/* qcow2 images (versions 2 and 3, written as 3) under the block layer: the mapping from guest offsets to
 * clusters of the image file, backing files (qcow2 or raw) to any depth, zero clusters, discard that gives
 * clusters back, reads of zlib-compressed clusters, and images with internal snapshots (shared clusters are
 * copied before they are written). Written from the public specification (QEMU's docs/interop/qcow2.txt).
 *
 * Crash safety (kill -9 or a power cut never leaves an image that `qemu-img check` calls corrupt):
 * metadata is written through, never cached dirty; a data cluster is written before the L2 entry that
 * points at it; and clusters are handed out from a reserve whose refcounts were made durable (fdatasync)
 * before any table can point at them, so the worst a crash leaves is leaked clusters. The reserve grows from
 * 16 to 512 clusters while an image is being filled, so a fresh image pays one sync per reserve.
 *
 * Threading: any number of threads may call qcow2_io and qcow2_zero at once (the block layer's worker
 * pool does). I/O to clusters that are already in place runs in parallel; allocation, copy-on-write and
 * discard take the image exclusively for the time of one cluster. */
#ifndef VIRTUS_BLOCK_QCOW2_H
#define VIRTUS_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/err.h"

#define QCOW2_DEFAULT_CLUSTER_BITS 16
#define QCOW2_MAX_CHAIN 32          /* backing files below one image */

struct qcow2;

/* Does the file at fd start with qcow2's magic? false on a short read. */
bool qcow2_has_magic(int fd);

/* Open the image on fd (which stays the caller's, and must stay open until qcow2_close). path names it in
 * messages and is the directory that relative backing file names are resolved in. Backing files are opened
 * read-only, with a shared lock, and must be regular files. Refused with a message: encrypted images,
 * external data files, extended L2 entries, zstd compression, unknown incompatible features, tables outside
 * the file or too large; for writing also images marked corrupt or dirty (lazy refcounts). */
int qcow2_open(int fd, const char *path, bool readonly, struct qcow2 **out, vt_err *err);

/* An image that is already open, put under a new one by qcow2_open_over: its descriptor, and its qcow2
 * image on that descriptor (NULL: a raw file of raw_size bytes). */
struct qcow2_below {
	int fd;
	struct qcow2 *image;
	uint64_t raw_size;
};

/* Open the new image on fd (read-write), which names a backing file, over below instead of opening that
 * file: a checkpoint freezes a disk's image under a new overlay without opening anything by name. The new
 * image owns below from then on (closes it and its descriptor); below's image becomes read-only, its
 * reserve given back. */
int qcow2_open_over(int fd, const char *path, const struct qcow2_below *below, struct qcow2 **out, vt_err *err);
/* Undo qcow2_open_over: below is handed back (its image writable again) and q is closed. */
void qcow2_take_below(struct qcow2 *q, struct qcow2_below *below);

/* Give back reserved clusters (refcounts of clusters never used back to 0) and free everything; the fd
 * stays open. NULL is fine. */
void qcow2_close(struct qcow2 *q);

uint64_t qcow2_size(const struct qcow2 *q);              /* virtual size in bytes */
const char *qcow2_backing_name(const struct qcow2 *q);   /* as stored in the image; NULL: none */

/* Read or write len bytes at virtual offset off (off and len need not be cluster aligned; the range must
 * be inside the disk). Returns len or -errno. */
int64_t qcow2_io(struct qcow2 *q, bool write, const struct iovec *iov, unsigned niov, uint64_t off, size_t len);

/* For an asynchronous engine (io_uring), which cannot map clusters itself: if [off, off + len) lies in
 * clusters of this image that are in place (for a write: not shared), contiguous in the file and known from
 * cached tables, true with the file (*fd) and offset (*host) to transfer at, and a hold on the mapping:
 * until qcow2_direct_done, no cluster is freed (a discard or copy-on-write that would free one waits). false:
 * do the request through qcow2_io. Never blocks: a mapping being changed, or a table not yet read, is
 * false. */
bool qcow2_map_direct(struct qcow2 *q, bool write, uint64_t off, size_t len, int *fd, uint64_t *host);
void qcow2_direct_done(struct qcow2 *q);

/* Zero [off, off + len). Whole clusters become zero clusters (version 3) or unallocated (no backing file):
 * - QCOW2_ZERO_UNMAP: their host clusters are freed and punched out of the file;
 * - QCOW2_ZERO_KEEP: a cluster with storage of its own keeps it, as a preallocated zero cluster that the
 *   next write fills again (a version 2 image, or a shared cluster, is written with zeros instead);
 * - QCOW2_DISCARD: as UNMAP, but only a hint: partial clusters, and whole ones that cannot be made to read
 *   as zeros, are left alone.
 * Partial clusters are written with zeros (except by DISCARD). Returns 0 or -errno. */
enum qcow2_zero_mode { QCOW2_ZERO_UNMAP, QCOW2_ZERO_KEEP, QCOW2_DISCARD };
int64_t qcow2_zero(struct qcow2 *q, uint64_t off, uint64_t len, enum qcow2_zero_mode mode);

/* Data and metadata on stable storage. */
int qcow2_flush(struct qcow2 *q);

/* Hand-over to another process (a migration): qcow2_release gives back the reserve so that the image is
 * exact on disk; qcow2_reload reads the header and tables again, after another process wrote the image. */
void qcow2_release(struct qcow2 *q);
int qcow2_reload(struct qcow2 *q, vt_err *err);

struct qcow2_create_opts {
	uint64_t size;              /* virtual size in bytes; 0 with a backing file: the backing file's size */
	unsigned cluster_bits;      /* 0: QCOW2_DEFAULT_CLUSTER_BITS (64 KiB clusters) */
	const char *backing;        /* stored as given: relative names are relative to the new image */
	const char *backing_fmt;    /* "qcow2" or "raw"; NULL: probed now and recorded */
};

/* Write a new, empty version 3 image into the empty file at fd. path is the new image's name (for
 * messages, and to find a relative backing file). */
int qcow2_format_fd(int fd, const char *path, const struct qcow2_create_opts *o, vt_err *err);

/* Create PATH (which must not exist) as a new image. Nothing is left behind on failure. */
int qcow2_create(const char *path, const struct qcow2_create_opts *o, vt_err *err);

#endif
