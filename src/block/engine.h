/* Internal to src/block: the backend object and the engine interface both engines implement. */
#ifndef VIRTUS_BLOCK_ENGINE_H
#define VIRTUS_BLOCK_ENGINE_H

#include "block/qcow2.h"
#include "block/raw.h"

/* An engine's state is its own (*state, set by start); a disk may run two: its engine for everything, and
 * for a qcow2 image an io_uring lane for requests to clusters already in place (blk.direct). */
struct blk_engine_ops {
	enum blk_engine kind;
	int (*start)(struct blk *b, void **state, vt_err *err);
	void (*submit)(struct blk *b, void *state, struct blk_req *req);   /* req is valid: range and mode checked */
	void (*kick)(struct blk *b, void *state);
	unsigned (*reap)(struct blk *b, void *state);                      /* run callbacks of finished requests */
	void (*stop)(struct blk *b, void *state);                          /* nothing in flight any more */
};

/* Singly linked FIFO of requests, threaded through blk_req.next. */
struct blk_fifo {
	struct blk_req *head, *tail;
};

struct blk {
	int fd;
	int efd;                      /* eventfd: completions waiting */
	uint64_t sectors;
	bool readonly;
	unsigned depth;
	unsigned pool_threads;
	unsigned inflight;            /* submitted, callback not yet run */
	char serial[BLK_SERIAL_MAX + 1];
	char *path;                   /* for messages */
	const struct blk_engine_ops *ops;
	void *engine;                 /* engine-private state */
	void *direct;                 /* qcow2: an io_uring lane (blk_uring_ops) for I/O to clusters in place; NULL: none */
	uint64_t in_place;            /* requests sent to that lane */
	struct blk_fifo immediate;    /* decided at submit (invalid, empty): completed at the next poll */
	void *zeroes;                 /* BLK_ZERO_BUF bytes of zeroes for the write-zeroes fallback */
	struct qcow2 *qcow2;          /* NULL: a raw image, sectors map 1:1 to the file */
	bool overlay;
	bool guard_magic;             /* a raw image found by probing: see open_format in raw.c */
	bool guard_before_checkpoint; /* guard_magic before blk_checkpoint, for blk_checkpoint_undo */
};

#define BLK_ZERO_BUF (64 * 1024)

extern const struct blk_engine_ops blk_uring_ops;
extern const struct blk_engine_ops blk_pool_ops;

void blk_fifo_push(struct blk_fifo *f, struct blk_req *r);
struct blk_req *blk_fifo_pop(struct blk_fifo *f);

/* Finish a request: set error, run its callback, drop the in-flight count. res: bytes or -errno. */
void blk_complete(struct blk *b, struct blk_req *r, int64_t res);

/* Continue a transfer at file offset base + done on fd, from byte done of r's data, to its end. At the end
 * of the file: zeros for a read if zero_eof, else -EIO. Returns r->len or -errno. */
int64_t blk_transfer_rest(int fd, const struct blk_req *r, uint64_t base, size_t done, bool write, bool zero_eof);

/* Execute a request synchronously on the calling thread; returns bytes (or 0) or -errno. Used by the
 * worker pool for everything and by io_uring for the write-zeroes fallback. */
int64_t blk_exec_sync(struct blk *b, struct blk_req *r);

/* The fallocate mode a DISCARD / WRITE_ZEROES request tries first. */
int blk_fallocate_mode(const struct blk_req *r);
/* That first fallocate failed with -errno res: fall back as the file system allows (punch -> zero range ->
 * write zeroes; an unsupported DISCARD is a hint and succeeds). Returns 0 or -errno. */
int64_t blk_fallocate_fallback(struct blk *b, struct blk_req *r, int mode, int64_t res);

/* Wake the owner: add one to the eventfd. */
void blk_signal(struct blk *b);

#endif
