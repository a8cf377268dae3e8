/* Raw image block backend: the part below a virtio-blk device. The device turns guest requests into
 * struct blk_req (data as iovecs into guest memory), submits them here, and later reaps completions on its
 * own thread or event loop: poll blk_eventfd(), then call blk_poll_completions(), which runs each request's
 * callback exactly once, on the calling thread.
 *
 * Two engines behind one interface: io_uring (liburing) and a small pthread worker pool (used when
 * io_uring_queue_init fails, e.g. under a seccomp filter or with io_uring disabled). See bench/blk-engine
 * for the measurements behind the default.
 *
 * Threading: one owner thread submits, kicks and polls; no calls from several threads at once. */
#ifndef VIRTUS_BLOCK_RAW_H
#define VIRTUS_BLOCK_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/err.h"

#define BLK_SECTOR_SIZE 512
#define BLK_SERIAL_MAX  20     /* VIRTIO_BLK_ID_BYTES */

enum blk_op { BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH, BLK_OP_DISCARD, BLK_OP_WRITE_ZEROES };

/* Values match VIRTIO_BLK_S_* so the device can copy them into the status byte. */
enum blk_status { BLK_S_OK = 0, BLK_S_IOERR = 1, BLK_S_UNSUPP = 2 };

enum blk_engine { BLK_ENGINE_DEFAULT, BLK_ENGINE_URING, BLK_ENGINE_POOL };

/* AUTO: qcow2 if the file starts with qcow2's magic, else raw. A stated format is never guessed. */
enum blk_format { BLK_FORMAT_AUTO, BLK_FORMAT_RAW, BLK_FORMAT_QCOW2 };

struct blk;
struct blk_req;

/* bytes: data moved (reads and writes), 0 for the other operations or on failure. */
typedef void blk_done_fn(struct blk_req *req, enum blk_status status, size_t bytes);

/* One request, owned by the caller; it must stay valid (and so must iov and the memory it points to)
 * until its callback has run. */
struct blk_req {
	enum blk_op op;
	uint64_t sector;              /* first sector (not used by FLUSH) */
	const struct iovec *iov;      /* READ / WRITE: data, total a multiple of 512 bytes */
	unsigned niov;
	uint32_t nsectors;            /* DISCARD / WRITE_ZEROES: length of the range */
	bool unmap;                   /* WRITE_ZEROES: the range may be deallocated (punched) */
	blk_done_fn *done;
	void *opaque;                 /* for the caller */
	/* Filled by the backend. */
	int error;                    /* errno of a failure, for logs; 0 on success */
	/* Backend-private. */
	struct blk_req *next;
	size_t len;
	int64_t res;
	bool direct;                  /* a qcow2 request done in place: host_fd at host_off, a mapping held */
	int host_fd;
	uint64_t host_off;
};

struct blk_opts {
	bool readonly;
	enum blk_engine engine;       /* DEFAULT: io_uring if the kernel allows it, else the worker pool */
	const char *serial;           /* NULL: derived from the image's device and inode */
	unsigned queue_depth;         /* 0: 128 */
	unsigned pool_threads;        /* 0: 4 */
	bool defer_lock;              /* no lock until blk_lock: a migration's destination, while the source has it */
	enum blk_format format;
	bool overlay;                 /* writes go to a throwaway qcow2 overlay (deleted at close); the image is
	                               * opened read-only and never written */
};

/* Open a disk image (a regular file, raw or qcow2: block/qcow2.h) and take an advisory lock on it:
 * exclusive for read-write, shared for read-only, so two VMMs never write one image. qcow2 images run on
 * the worker pool (the cluster mapping is done on the worker threads), except reads and writes to clusters
 * already in place, which io_uring does at their offset in the file (unless the pool engine is asked for). */
int blk_open(const char *path, bool readonly, struct blk **out, vt_err *err);
int blk_open_opts(const char *path, const struct blk_opts *opts, struct blk **out, vt_err *err);

/* Take the advisory lock (after defer_lock or blk_unlock), or give it up: a migration hands an image from
 * the source to the destination. */
int blk_lock(struct blk *b, vt_err *err);
void blk_unlock(struct blk *b);

/* A checkpoint of a writable disk with nothing in flight: its image, as it is now, keeps a second name,
 * layer_path (a hard link: on the image's file system), and the disk goes on in a new qcow2 overlay at its
 * own path whose backing file is layer_path (absolute). Works in a sandboxed VMM (nothing opened
 * by name). A raw disk on io_uring runs its overlay's requests on the owner thread from then on (the
 * worker pool cannot be started in a sandbox). On failure the disk goes on as before, nothing is left. */
int blk_checkpoint(struct blk *b, const char *layer_path, vt_err *err);
/* Undo the checkpoint just made (nothing written since): the image gets its path back from layer_path. */
int blk_checkpoint_undo(struct blk *b, const char *layer_path, vt_err *err);

/* A restore of a checkpoint: path becomes a new qcow2 overlay over layer (absolute; the image a
 * checkpoint kept), replacing what path was: the disk's writes since the checkpoint are dropped (earlier
 * checkpoints keep theirs). Refused while a VMM has path open for writing. */
int blk_restore_layer(const char *path, const char *layer, vt_err *err);

/* A new medium under a running disk (the API's PATCH /drives/ID): blk_medium_open opens path as b would
 * open it (b's read-only mode and serial; format AUTO probes), locked, without an engine; with nothing in
 * flight on b, blk_medium_swap exchanges the two images (b goes on, on its engine, with the new one; the
 * medium holds the old one), and blk_medium_close closes what the medium holds. A disk with a throwaway
 * overlay, and b's own image again, are refused. */
int blk_medium_open(const struct blk *b, const char *path, enum blk_format format, struct blk **out, vt_err *err);
void blk_medium_swap(struct blk *b, struct blk *medium);
void blk_medium_close(struct blk *medium);

/* Wait for every request in flight, run their callbacks, then release everything. NULL is fine. */
void blk_close(struct blk *b);

uint64_t blk_sectors(const struct blk *b);
bool blk_readonly(const struct blk *b);
const char *blk_serial(const struct blk *b);     /* NUL-terminated, at most BLK_SERIAL_MAX bytes */
enum blk_engine blk_engine_used(const struct blk *b);
enum blk_format blk_format_used(const struct blk *b);          /* RAW or QCOW2 */
const char *blk_format_name(enum blk_format f);
bool blk_is_overlay(const struct blk *b);
const char *blk_engine_name(enum blk_engine e);

/* Queue a request. Bad requests (out of range, write to a read-only disk, misaligned length) are not
 * refused here: they complete with BLK_S_IOERR through the callback like every other request. */
void blk_submit(struct blk *b, struct blk_req *req);

/* Hand every request queued since the last kick to the engine (one io_uring_enter for a whole batch). */
void blk_kick(struct blk *b);

/* Readable when completions are waiting. Owned by the backend. */
int blk_eventfd(const struct blk *b);

/* Run the callbacks of every finished request; returns how many ran. Never blocks. Callbacks may submit
 * new requests; they are kicked before this returns. */
unsigned blk_poll_completions(struct blk *b);

/* Block until at least one completion is waiting (or nothing is in flight), then poll. */
unsigned blk_wait_completions(struct blk *b);

/* Requests submitted and not yet completed. */
unsigned blk_inflight(const struct blk *b);

/* qcow2: reads and writes that io_uring did at their mapped offset (clusters in place), since the open. */
uint64_t blk_in_place_count(const struct blk *b);

#endif
