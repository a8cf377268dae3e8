/* qcow2: header and table parsing, cluster mapping, allocation with refcounts, backing chains. See
 * qcow2.h for the contract and the crash-safety rules; field offsets and bit layouts are the
 * specification's (docs/interop/qcow2.txt). All on-disk integers are big-endian. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "block/qcow2.h"
#include "lib/iov.h"
#include "lib/util.h"

#define QCOW2_MAGIC        0x514649fbU
#define HDR_V2_LEN         72
#define HDR_V3_LEN         104
#define MIN_CLUSTER_BITS   9
#define MAX_CLUSTER_BITS   21
#define MAX_L1_BYTES       (32u << 20)
#define MAX_REFTABLE_BYTES (8u << 20)
#define MAX_BACKING_NAME   1023
#define MAX_VIRTUAL_SIZE   (1ULL << 55)    /* what a 56-bit host offset can describe, as QEMU */

#define TABLE_OFFSET_MASK  0x00fffffffffffe00ULL   /* L1 and standard L2 entries: bits 9-55 */
#define L1_RESERVED        0x7f000000000001ffULL
#define L2_RESERVED        0x3f000000000001feULL
#define OFLAG_COPIED       (1ULL << 63)
#define OFLAG_COMPRESSED   (1ULL << 62)
#define OFLAG_ZERO         1ULL
#define REFT_OFFSET_MASK   0xfffffffffffffe00ULL

#define INCOMPAT_DIRTY       (1ULL << 0)
#define INCOMPAT_CORRUPT     (1ULL << 1)
#define INCOMPAT_DATA_FILE   (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2       (1ULL << 4)

#define EXT_END         0x00000000U
#define EXT_BACKING_FMT 0xe2792acaU

/* Header field offsets. */
#define H_BACKING_OFF   8
#define H_BACKING_LEN   16
#define H_CLUSTER_BITS  20
#define H_SIZE          24
#define H_CRYPT         32
#define H_L1_SIZE       36
#define H_L1_OFF        40
#define H_REFT_OFF      48
#define H_REFT_CLUSTERS 56
#define H_INCOMPAT      72
#define H_AUTOCLEAR     88
#define H_REFCOUNT_ORD  96
#define H_HEADER_LEN    100
#define H_COMPRESSION   104

#define RESERVE_MIN 16
#define RESERVE_MAX 512
#define L2_CACHE_BYTES (32u << 20)
#define WRITE_RUN_MAX 64           /* whole clusters placed by one write_new_clusters */

enum ckind { C_UNALLOC, C_ZERO, C_NORMAL, C_COMPRESSED };

struct cmap {
	enum ckind kind;
	uint64_t host;            /* NORMAL: cluster offset; COMPRESSED: byte offset of the data */
	uint64_t clen;            /* COMPRESSED: bytes of compressed data that may be read */
	bool copied;              /* NORMAL: refcount is exactly 1, the cluster can be written in place */
	uint64_t entry;           /* the raw L2 entry */
};

struct l2_slot {
	uint64_t off;             /* the table's offset in the file; 0: empty */
	uint64_t *t;              /* big-endian entries, as on disk */
};

struct qcow2 {
	int fd;
	char *path;
	bool readonly;
	unsigned version;
	unsigned cluster_bits;
	uint64_t cs;                  /* cluster size */
	uint64_t size;
	uint64_t file_end;            /* bytes: the file's size as far as this process made it */
	/* L1 (host-order copy) and a direct-mapped cache of L2 tables keyed by L1 index. */
	uint32_t l1_size;
	uint64_t l1_off;
	uint64_t *l1;
	unsigned l2_bits;
	struct l2_slot *l2c;
	unsigned l2c_slots;
	/* Refcounts: the table (host order) and every block read so far, as on disk. */
	uint64_t reft_off;
	uint32_t reft_clusters;
	uint64_t *reft;
	uint64_t reft_entries;
	unsigned refcount_order;
	uint64_t refblock_entries;
	uint8_t **refblocks;
	uint64_t free_hint;           /* no free cluster below this index */
	uint64_t *reserve;            /* clusters with a durable refcount of 1 that nothing points at yet */
	unsigned reserve_n, reserve_used, reserve_batch;
	/* What lies below. */
	char *backing_name;
	struct qcow2 *backing;        /* a qcow2 backing file, or */
	int backing_fd;               /* a raw one (-1: none) */
	uint64_t backing_size;
	/* io: shared for I/O to clusters in place, exclusive to change the mapping. meta: the caches. */
	pthread_rwlock_t io;
	pthread_mutex_t meta;
	/* Requests an asynchronous engine is doing in place (qcow2_map_direct): while there are any, no
	 * cluster's last reference is dropped, so none is reused under them. */
	atomic_uint direct_holds;
	pthread_mutex_t hold_lock;
	pthread_cond_t holds_gone;
};

struct chain {                    /* the files above, to refuse loops */
	dev_t dev[QCOW2_MAX_CHAIN + 1];
	ino_t ino[QCOW2_MAX_CHAIN + 1];
	unsigned n;
};

static int open_image(int fd, const char *path, bool readonly, struct chain *ch, const struct qcow2_below *below,
		      struct qcow2 **out, vt_err *err);

/* ---- Small helpers ---- */

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static void put32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }

/* Read all of [off, off + len). A read past the end of the file is an error, or with zero_tail gives
 * zeroes (a preallocated or sparse image may end early). */
static int pread_range(int fd, void *buf, size_t len, uint64_t off, bool zero_tail)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (!zero_tail)
				return -EIO;
			memset(p, 0, len);
			return 0;
		}
		p += n, off += (uint64_t)n, len -= (size_t)n;
	}
	return 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off) { return pread_range(fd, buf, len, off, false); }
static int pread_zero_tail(int fd, void *buf, size_t len, uint64_t off) { return pread_range(fd, buf, len, off, true); }

static int pwrite_full(struct qcow2 *q, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	uint64_t end = off + len;
	while (len > 0) {
		ssize_t n = pwrite(q->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n, off += (uint64_t)n, len -= (size_t)n;
	}
	if (end > q->file_end)
		q->file_end = end;
	return 0;
}

/* preadv/pwritev of a whole range; a read that runs off the end of the file is zero-filled. */
static int64_t rw_host(struct qcow2 *q, bool write, const struct iovec *iov, unsigned niov, uint64_t host, size_t len)
{
	size_t done = 0;
	while (done < len) {
		struct iovec part[IOV_MAX];
		unsigned n = iov_slice(iov, niov, done, len - done, part, IOV_MAX);
		ssize_t r = write ? pwritev(q->fd, part, (int)n, (off_t)(host + done))
				  : preadv(q->fd, part, (int)n, (off_t)(host + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (write)
				return -EIO;
			iov_zero(iov, niov, done, len - done);
			break;
		}
		done += (size_t)r;
	}
	if (write && host + len > q->file_end)
		q->file_end = host + len;
	return (int64_t)len;
}

static uint64_t l2_entries(const struct qcow2 *q) { return 1ULL << q->l2_bits; }

/* ---- Refcounts ---- */

static uint64_t refcount_get_raw(const struct qcow2 *q, const uint8_t *blk, uint64_t i)
{
	unsigned order = q->refcount_order;
	if (order <= 3) {
		unsigned bits = 1u << order;
		uint64_t bit = i * bits;
		return (blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	switch (order) {
	case 4: return (uint64_t)blk[i * 2] << 8 | blk[i * 2 + 1];
	case 5: return get32(blk + i * 4);
	default: return get64(blk + i * 8);
	}
}

/* Sets entry i; returns the byte range of the block that changed, for writing it through. */
static void refcount_set_raw(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v, uint64_t *byte,
			     unsigned *nbytes)
{
	unsigned order = q->refcount_order;
	if (order <= 3) {
		unsigned bits = 1u << order;
		uint64_t bit = i * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
		blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
		*byte = bit / 8, *nbytes = 1;
		return;
	}
	unsigned w = 1u << (order - 3);
	for (unsigned k = 0; k < w; k++)
		blk[i * w + k] = (uint8_t)(v >> (8 * (w - 1 - k)));
	*byte = i * w, *nbytes = w;
}

static bool cluster_offset_ok(const struct qcow2 *q, uint64_t off)
{
	return off >= q->cs && (off & (q->cs - 1)) == 0 && off < q->file_end;
}

/* The refcount block for table index ti: NULL with *absent when the table has no block there. */
static int refblock_get(struct qcow2 *q, uint64_t ti, uint8_t **out)
{
	*out = NULL;
	if (ti >= q->reft_entries)
		return 0;
	if (q->refblocks[ti]) {
		*out = q->refblocks[ti];
		return 0;
	}
	uint64_t off = q->reft[ti] & REFT_OFFSET_MASK;
	if (!off)
		return 0;
	if (!cluster_offset_ok(q, off))
		return -EIO;
	uint8_t *b = malloc(q->cs);
	if (!b)
		return -ENOMEM;
	int r = pread_full(q->fd, b, q->cs, off);
	if (r < 0) {
		free(b);
		return r;
	}
	q->refblocks[ti] = *out = b;
	return 0;
}

static int refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc)
{
	uint8_t *b;
	int r = refblock_get(q, cluster / q->refblock_entries, &b);
	if (r < 0)
		return r;
	*rc = b ? refcount_get_raw(q, b, cluster % q->refblock_entries) : 0;
	return 0;
}

/* The block covering cluster must exist (allocation makes it first). */
static int refcount_set(struct qcow2 *q, uint64_t cluster, uint64_t v)
{
	uint64_t ti = cluster / q->refblock_entries, byte;
	unsigned nbytes;
	uint8_t *b;
	int r = refblock_get(q, ti, &b);
	if (r < 0)
		return r;
	if (!b)
		return -EIO;
	refcount_set_raw(q, b, cluster % q->refblock_entries, v, &byte, &nbytes);
	return pwrite_full(q, b + byte, nbytes, (q->reft[ti] & REFT_OFFSET_MASK) + byte);
}

static int write_header_fields(struct qcow2 *q, unsigned at, const uint8_t *buf, size_t len)
{
	return pwrite_full(q, buf, len, at);
}

/* Grow the refcount table so that it has an entry ti (= its current entry count), with a new block for
 * that entry placed at `base` and the new table right behind it, both counted by that block. The header
 * switches to the new table in one 12-byte write, after everything it points at is durable. */
static int grow_reftable(struct qcow2 *q, uint64_t ti, uint64_t base)
{
	uint64_t per_cluster = q->cs / 8;
	uint64_t nclusters = MAX((uint64_t)q->reft_clusters * 2, (ti + 1 + per_cluster - 1) / per_cluster);
	if (nclusters * q->cs > MAX_REFTABLE_BYTES || base % q->refblock_entries + 1 + nclusters > q->refblock_entries)
		return -EFBIG;
	uint64_t entries = nclusters * per_cluster;
	uint8_t *blk = calloc(1, q->cs);
	uint8_t *table = calloc(nclusters, q->cs);
	uint64_t *host = calloc(entries, sizeof(uint64_t));
	uint8_t **blocks = calloc(entries, sizeof(uint8_t *));
	int r = -ENOMEM;
	if (!blk || !table || !host || !blocks)
		goto out;
	uint64_t byte;
	unsigned nb;
	for (uint64_t c = 0; c <= nclusters; c++)
		refcount_set_raw(q, blk, base % q->refblock_entries + c, 1, &byte, &nb);
	memcpy(host, q->reft, q->reft_entries * sizeof(uint64_t));
	host[ti] = base * q->cs;
	for (uint64_t i = 0; i < entries; i++)
		put64(table + i * 8, host[i]);
	uint64_t table_off = (base + 1) * q->cs;
	if ((r = pwrite_full(q, blk, q->cs, base * q->cs)) < 0 || (r = pwrite_full(q, table, nclusters * q->cs, table_off)) < 0)
		goto out;
	if (fdatasync(q->fd) < 0) {
		r = -errno;
		goto out;
	}
	uint8_t hdr[12];
	put64(hdr, table_off);
	put32(hdr + 8, (uint32_t)nclusters);
	if ((r = write_header_fields(q, H_REFT_OFF, hdr, sizeof(hdr))) < 0)
		goto out;
	if (fdatasync(q->fd) < 0) {
		r = -errno;
		goto out;
	}
	uint64_t old_off = q->reft_off, old_clusters = q->reft_clusters;
	memcpy(blocks, q->refblocks, q->reft_entries * sizeof(uint8_t *));
	blocks[ti] = blk;
	blk = NULL;
	free(q->reft);
	free(q->refblocks);
	q->reft = host, q->refblocks = blocks, host = NULL, blocks = NULL;
	q->reft_entries = entries, q->reft_off = table_off, q->reft_clusters = (uint32_t)nclusters;
	/* The old table's clusters are free now; a crash before this leaves them leaked, nothing worse. */
	for (uint64_t c = 0; c < old_clusters && r == 0; c++)
		r = refcount_set(q, old_off / q->cs + c, 0);
	q->free_hint = MIN(q->free_hint, old_off / q->cs);
out:
	free(blk);
	free(table);
	free(host);
	free(blocks);
	return r;
}

/* A refcount block for table index ti, which has none: it goes at the first cluster it covers that is
 * past the end of the file, and counts itself. */
static int add_refblock(struct qcow2 *q, uint64_t ti)
{
	uint64_t first = ti * q->refblock_entries;
	uint64_t end_cluster = (q->file_end + q->cs - 1) / q->cs;
	uint64_t base = MAX(first, end_cluster);
	if (base >= first + q->refblock_entries)
		return -EIO;      /* the file runs past what this block would count: not an image we made */
	if (ti >= q->reft_entries)
		return grow_reftable(q, ti, base);
	uint8_t *blk = calloc(1, q->cs);
	if (!blk)
		return -ENOMEM;
	uint64_t byte;
	unsigned nb;
	refcount_set_raw(q, blk, base - first, 1, &byte, &nb);
	int r = pwrite_full(q, blk, q->cs, base * q->cs);
	uint8_t e[8];
	put64(e, base * q->cs);
	if (r == 0 && fdatasync(q->fd) < 0)
		r = -errno;         /* the table must never point at a block that a power cut can lose */
	if (r == 0)
		r = pwrite_full(q, e, 8, q->reft_off + ti * 8);
	if (r < 0) {
		free(blk);
		return r;
	}
	q->reft[ti] = base * q->cs;
	q->refblocks[ti] = blk;
	return 0;
}

/* Fill the reserve: find free clusters from the hint up, count each as used, and make that durable. */
static int refill_reserve(struct qcow2 *q)
{
	unsigned want = q->reserve_batch;
	uint64_t c = MAX(q->free_hint, 1);
	q->reserve_n = q->reserve_used = 0;
	while (q->reserve_n < want) {
		uint64_t ti = c / q->refblock_entries, rc;
		uint8_t *b;
		int r = refblock_get(q, ti, &b);
		if (r < 0)
			return r;
		if (!b) {
			if ((r = add_refblock(q, ti)) < 0)
				return r;
			continue;      /* look at this range again: the block (and a new table) took clusters */
		}
		rc = refcount_get_raw(q, b, c % q->refblock_entries);
		if (rc == 0) {
			if ((r = refcount_set(q, c, 1)) < 0)
				return r;
			q->reserve[q->reserve_n++] = c;
		} else if (q->reserve_n == 0) {
			q->free_hint = c + 1;
		}
		c++;
	}
	if (q->reserve_batch < RESERVE_MAX)
		q->reserve_batch *= 2;
	return fdatasync(q->fd) == 0 ? 0 : -errno;
}

/* One cluster whose refcount is durably 1 and that nothing points at yet; its offset, or -errno. */
static int64_t alloc_cluster(struct qcow2 *q)
{
	if (q->reserve_used == q->reserve_n) {
		int r = refill_reserve(q);
		if (r < 0) {
			q->reserve_n = q->reserve_used = 0;   /* what was counted is leaked, not lost */
			return r;
		}
	}
	return (int64_t)(q->reserve[q->reserve_used++] * q->cs);
}

/* Up to want clusters that follow each other in the file, from the reserve: the first one's offset (or
 * -errno), and how many in *got (at least 1). */
static int64_t alloc_run(struct qcow2 *q, unsigned want, unsigned *got)
{
	int64_t first = alloc_cluster(q);
	*got = 1;
	if (first < 0)
		return first;
	uint64_t next = (uint64_t)first / q->cs + 1;
	while (*got < want && q->reserve_used < q->reserve_n && q->reserve[q->reserve_used] == next)
		q->reserve_used++, next++, (*got)++;
	return first;
}

static void release_reserve(struct qcow2 *q)
{
	while (q->reserve_used < q->reserve_n) {
		uint64_t c = q->reserve[q->reserve_used++];
		if (refcount_set(q, c, 0) == 0)
			q->free_hint = MIN(q->free_hint, c);
	}
	q->reserve_n = q->reserve_used = 0;
	q->reserve_batch = RESERVE_MIN;
}

/* Called with io held exclusively (so no new hold can start): until the requests in place have finished. */
static void wait_for_direct_holds(struct qcow2 *q)
{
	pthread_mutex_lock(&q->hold_lock);
	while (atomic_load(&q->direct_holds) > 0)
		pthread_cond_wait(&q->holds_gone, &q->hold_lock);
	pthread_mutex_unlock(&q->hold_lock);
}

/* Drop one reference to the host clusters [off, off + len); a cluster nobody uses any more is punched out
 * of the file so that the image stays thin. */
static int unref_clusters(struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t first = off / q->cs, last = (off + len - 1) / q->cs;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t rc;
		int r = refcount_get(q, c, &rc);
		if (r < 0)
			return r;
		if (rc == 0 || c == 0)
			return -EIO;      /* a table pointed at a free cluster, or at the header */
		if (rc == 1)
			wait_for_direct_holds(q);   /* a cluster freed here may be handed out again at once */
		if ((r = refcount_set(q, c, rc - 1)) < 0)
			return r;
		if (rc == 1) {
			q->free_hint = MIN(q->free_hint, c);
			if (fallocate(q->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(c * q->cs), (off_t)q->cs) < 0) {
				/* a file system without hole punching keeps the bytes: still correct */
			}
		}
	}
	return 0;
}

/* ---- L1 and L2 tables ---- */

/* The L2 table at off, from the cache or read into it (-EAGAIN instead of reading, with cached_only). */
static int l2_table(struct qcow2 *q, uint32_t l1i, uint64_t off, bool cached_only, uint64_t **out)
{
	struct l2_slot *s = &q->l2c[l1i % q->l2c_slots];
	if (s->off == off && s->t) {
		*out = s->t;
		return 0;
	}
	if (cached_only)
		return -EAGAIN;
	if (!cluster_offset_ok(q, off))
		return -EIO;
	if (!s->t && !(s->t = malloc(q->cs)))
		return -ENOMEM;
	s->off = 0;
	int r = pread_full(q->fd, s->t, q->cs, off);
	if (r < 0)
		return r;
	s->off = off;
	*out = s->t;
	return 0;
}

static int decode_l2(const struct qcow2 *q, uint64_t e, struct cmap *m)
{
	m->entry = e;
	if (e & OFLAG_COMPRESSED) {
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t off = e & ((1ULL << x) - 1);
		uint64_t sectors = ((e & ~OFLAG_COPIED & ~OFLAG_COMPRESSED) >> x) + 1;
		uint64_t end = (off & ~511ULL) + sectors * 512;
		if (off < q->cs || end <= off)
			return -EIO;
		m->kind = C_COMPRESSED, m->host = off, m->clen = MIN(end - off, 2 * q->cs);
		return 0;
	}
	if (e & L2_RESERVED)
		return -EIO;
	uint64_t off = e & TABLE_OFFSET_MASK;
	m->copied = (e & OFLAG_COPIED) != 0;
	m->host = off;
	if (e & OFLAG_ZERO) {
		if (q->version < 3)
			return -EIO;
		m->kind = C_ZERO;
		return 0;
	}
	if (!off) {
		m->kind = C_UNALLOC;
		return 0;
	}
	if (off < q->cs)
		return -EIO;
	m->kind = C_NORMAL;
	return 0;
}

/* Where virtual cluster vc is, with meta held. */
static int lookup_locked(struct qcow2 *q, uint64_t vc, bool cached_only, struct cmap *m)
{
	uint64_t l1i = vc >> q->l2_bits, l2i = vc & (l2_entries(q) - 1);
	memset(m, 0, sizeof(*m));
	if (l1i >= q->l1_size)
		return -EIO;
	uint64_t l1e = q->l1[l1i], *t;
	int r = 0;
	if (l1e & L1_RESERVED)
		r = -EIO;
	else if (!(l1e & TABLE_OFFSET_MASK))
		m->kind = C_UNALLOC;
	else if ((r = l2_table(q, (uint32_t)l1i, l1e & TABLE_OFFSET_MASK, cached_only, &t)) == 0)
		r = decode_l2(q, be64toh(t[l2i]), m);
	return r;
}

/* Where virtual cluster vc is. Takes meta. */
static int lookup(struct qcow2 *q, uint64_t vc, struct cmap *m)
{
	pthread_mutex_lock(&q->meta);
	int r = lookup_locked(q, vc, false, m);
	pthread_mutex_unlock(&q->meta);
	return r;
}

static int write_l1_entry(struct qcow2 *q, uint64_t l1i, uint64_t v)
{
	uint8_t e[8];
	put64(e, v);
	int r = pwrite_full(q, e, 8, q->l1_off + l1i * 8);
	if (r == 0)
		q->l1[l1i] = v;
	return r;
}

/* The L2 table of l1i, made private to the active image (copied if a snapshot shares it, created if
 * there is none); its offset, or -errno. Exclusive (io held for writing). */
static int64_t l2_for_write(struct qcow2 *q, uint64_t l1i)
{
	uint64_t l1e = q->l1[l1i], old = l1e & TABLE_OFFSET_MASK;
	if (l1e & L1_RESERVED)
		return -EIO;
	if (old && (l1e & OFLAG_COPIED))
		return (int64_t)old;
	uint64_t *content = NULL;
	if (old) {
		int r = l2_table(q, (uint32_t)l1i, old, false, &content);
		if (r < 0)
			return r;
	}
	int64_t new_off = alloc_cluster(q);
	if (new_off < 0)
		return new_off;
	struct l2_slot *s = &q->l2c[l1i % q->l2c_slots];
	if (!s->t && !(s->t = malloc(q->cs)))
		return -ENOMEM;
	if (content != s->t) {
		if (content)
			memcpy(s->t, content, q->cs);
		else
			memset(s->t, 0, q->cs);
	}
	s->off = 0;
	int r = pwrite_full(q, s->t, q->cs, (uint64_t)new_off);
	if (r == 0)
		r = write_l1_entry(q, l1i, (uint64_t)new_off | OFLAG_COPIED);
	if (r < 0)
		return r;
	s->off = (uint64_t)new_off;
	if (old && (r = unref_clusters(q, old, q->cs)) < 0)
		return r;
	return new_off;
}

static int set_l2_entry(struct qcow2 *q, uint64_t vc, uint64_t v)
{
	uint64_t l1i = vc >> q->l2_bits, l2i = vc & (l2_entries(q) - 1), *t;
	int64_t off = l2_for_write(q, l1i);
	if (off < 0)
		return (int)off;
	int r = l2_table(q, (uint32_t)l1i, (uint64_t)off, false, &t);
	if (r < 0)
		return r;
	uint64_t be = htobe64(v);
	if ((r = pwrite_full(q, &be, 8, (uint64_t)off + l2i * 8)) == 0)
		t[l2i] = be;
	return r;
}

/* Drop the active image's reference to what a mapping pointed at. */
static int unref_mapping(struct qcow2 *q, const struct cmap *m)
{
	if (m->kind == C_NORMAL)
		return unref_clusters(q, m->host, q->cs);
	if (m->kind == C_COMPRESSED)
		return unref_clusters(q, m->host, m->clen);
	if (m->kind == C_ZERO && m->host)
		return unref_clusters(q, m->host, q->cs);   /* a preallocated zero cluster */
	return 0;
}

/* ---- Reading what is not in this file ---- */

static int64_t read_backing(struct qcow2 *q, const struct iovec *iov, unsigned niov, uint64_t off, size_t len)
{
	if (!q->backing && q->backing_fd < 0) {
		iov_zero(iov, niov, 0, len);
		return (int64_t)len;
	}
	size_t have = off >= q->backing_size ? 0 : (size_t)MIN((uint64_t)len, q->backing_size - off);
	if (have < len)
		iov_zero(iov, niov, have, len - have);
	if (have == 0)
		return (int64_t)len;
	struct iovec part[IOV_MAX];
	unsigned n = iov_slice(iov, niov, 0, have, part, IOV_MAX);
	int64_t r;
	if (q->backing) {
		r = qcow2_io(q->backing, false, part, n, off, have);
	} else {
		struct qcow2 raw = { .fd = q->backing_fd };
		r = rw_host(&raw, false, part, n, off, have);
	}
	return r < 0 ? r : (int64_t)len;
}

static int inflate_cluster(struct qcow2 *q, const struct cmap *m, uint8_t *out)
{
	uint8_t *in = malloc(m->clen);
	if (!in)
		return -ENOMEM;
	int r = pread_zero_tail(q->fd, in, m->clen, m->host);
	if (r == 0) {
		z_stream z = { .next_in = in, .avail_in = (uInt)m->clen, .next_out = out, .avail_out = (uInt)q->cs };
		if (inflateInit2(&z, -12) != Z_OK) {
			r = -ENOMEM;
		} else {
			int zr = inflate(&z, Z_FINISH);
			/* The stored length is rounded up to sectors: input may be left over, output never short. */
			if (z.avail_out != 0 || (zr != Z_STREAM_END && zr != Z_OK && zr != Z_BUF_ERROR))
				r = -EIO;
			inflateEnd(&z);
		}
	}
	free(in);
	return r;
}

/* The current content of one virtual cluster as a flat buffer (for copy-on-write). */
static int read_cluster(struct qcow2 *q, uint64_t vc, const struct cmap *m, uint8_t *buf)
{
	struct iovec v = { buf, q->cs };
	uint64_t voff = vc * q->cs;
	size_t len = (size_t)MIN(q->cs, q->size - voff);
	if (len < q->cs)
		memset(buf + len, 0, q->cs - len);
	switch (m->kind) {
	case C_ZERO:
		memset(buf, 0, q->cs);
		return 0;
	case C_UNALLOC: {
		int64_t r = read_backing(q, &v, 1, voff, len);
		return r < 0 ? (int)r : 0;
	}
	case C_NORMAL:
		return pread_zero_tail(q->fd, buf, q->cs, m->host);
	case C_COMPRESSED:
		return inflate_cluster(q, m, buf);
	}
	return -EIO;
}

/* ---- The request path ---- */

/* Read one piece that lies within virtual cluster vc. */
static int64_t read_piece(struct qcow2 *q, const struct cmap *m, const struct iovec *iov, unsigned niov,
			  uint64_t off, size_t len)
{
	uint64_t in = off & (q->cs - 1);
	switch (m->kind) {
	case C_ZERO:
		iov_zero(iov, niov, 0, len);
		return (int64_t)len;
	case C_UNALLOC:
		return read_backing(q, iov, niov, off, len);
	case C_NORMAL:
		return rw_host(q, false, iov, niov, m->host + in, len);
	case C_COMPRESSED: {
		uint8_t *buf = malloc(q->cs);
		if (!buf)
			return -ENOMEM;
		int r = inflate_cluster(q, m, buf);
		if (r == 0)
			iov_from_buf(iov, niov, 0, buf + in, len);
		free(buf);
		return r < 0 ? r : (int64_t)len;
	}
	}
	return -EIO;
}

/* Write one piece into a cluster that cannot be written in place: a new cluster gets the old content
 * with the piece over it, then the L2 entry moves to it, then the old one loses a reference. Exclusive. */
static int64_t write_alloc(struct qcow2 *q, uint64_t vc, const struct iovec *iov, unsigned niov, uint64_t off,
			   size_t len)
{
	struct cmap m;
	int r = lookup(q, vc, &m);
	if (r < 0)
		return r;
	uint64_t in = off & (q->cs - 1);
	if (m.kind == C_NORMAL && m.copied)     /* someone allocated it while we waited for the lock */
		return rw_host(q, true, iov, niov, m.host + in, len);
	bool reuse = m.kind == C_ZERO && m.host && m.copied;   /* a preallocated zero cluster: its own storage */
	uint8_t *buf = NULL;
	if (len < q->cs) {
		if (!(buf = malloc(q->cs)))
			return -ENOMEM;
		if ((r = read_cluster(q, vc, &m, buf)) < 0)
			goto out;
		iov_to_buf(iov, niov, 0, buf + in, len);
	}
	pthread_mutex_lock(&q->meta);
	int64_t host = reuse ? (int64_t)m.host : alloc_cluster(q);
	pthread_mutex_unlock(&q->meta);
	if (host < 0) {
		r = (int)host;
		goto out;
	}
	struct iovec whole = { buf, q->cs };
	int64_t w = buf ? rw_host(q, true, &whole, 1, (uint64_t)host, q->cs) : rw_host(q, true, iov, niov, (uint64_t)host, len);
	if (w < 0) {
		r = (int)w;      /* the cluster stays counted and unused: leaked, harmless */
		goto out;
	}
	pthread_mutex_lock(&q->meta);
	r = set_l2_entry(q, vc, (uint64_t)host | OFLAG_COPIED);
	if (r == 0 && !reuse)
		r = unref_mapping(q, &m);
	pthread_mutex_unlock(&q->meta);
out:
	free(buf);
	return r < 0 ? r : (int64_t)len;
}

/* How many whole clusters from pos (cluster aligned) on, within len and one L2 table, need new storage:
 * a write that covers them all copies nothing, so they can be placed in one run. Exclusive. */
static unsigned new_cluster_run(struct qcow2 *q, uint64_t pos, size_t len, struct cmap *old, unsigned max)
{
	uint64_t vc = pos / q->cs;
	unsigned n = 0;
	if (pos & (q->cs - 1))
		return 0;
	while (n < max && (uint64_t)(n + 1) * q->cs <= len && ((vc + n) >> q->l2_bits) == (vc >> q->l2_bits)) {
		if (lookup(q, vc + n, &old[n]) < 0 || (old[n].kind != C_UNALLOC && old[n].host && old[n].copied))
			break;            /* in place, or storage of its own to reuse: write_alloc */
		n++;
	}
	return n;
}

/* Whole clusters [vc, vc + n), their old mappings in old: new storage in as few runs as the reserve
 * allows, each written with one transfer, then its L2 entries with one write, then the old clusters
 * unreferenced. The crash-safe order of write_alloc, a run at a time. Exclusive. Returns bytes or -errno. */
static int64_t write_new_clusters(struct qcow2 *q, uint64_t vc, unsigned n, const struct cmap *old,
				  const struct iovec *iov, unsigned niov)
{
	uint64_t l1i = vc >> q->l2_bits, l2i = vc & (l2_entries(q) - 1), entries[WRITE_RUN_MAX], *t;
	unsigned done = 0;
	pthread_mutex_lock(&q->meta);
	int64_t r = l2_for_write(q, l1i);       /* a new table is placed before the data, not between it */
	pthread_mutex_unlock(&q->meta);
	while (r >= 0 && done < n) {
		unsigned got;
		pthread_mutex_lock(&q->meta);
		int64_t host = alloc_run(q, n - done, &got);
		pthread_mutex_unlock(&q->meta);
		if (host < 0)
			return host;
		struct iovec part[IOV_MAX];
		unsigned np = iov_slice(iov, niov, done * q->cs, got * q->cs, part, IOV_MAX);
		if ((r = rw_host(q, true, part, np, (uint64_t)host, got * q->cs)) < 0)
			return r;                 /* the clusters stay counted and unused: leaked, harmless */
		for (unsigned i = 0; i < got; i++)
			entries[i] = htobe64(((uint64_t)host + i * q->cs) | OFLAG_COPIED);
		pthread_mutex_lock(&q->meta);
		int64_t off = l2_for_write(q, l1i);
		if ((r = off) >= 0 && (r = l2_table(q, (uint32_t)l1i, (uint64_t)off, false, &t)) == 0 &&
		    (r = pwrite_full(q, entries, got * 8, (uint64_t)off + (l2i + done) * 8)) == 0) {
			memcpy(&t[l2i + done], entries, got * 8);
			for (unsigned i = 0; i < got && r == 0; i++)
				r = unref_mapping(q, &old[done + i]);
		}
		pthread_mutex_unlock(&q->meta);
		done += got;
	}
	return r < 0 ? r : (int64_t)(n * q->cs);
}

/* Walk [off, off + len) cluster by cluster; runs of clusters that are in place and contiguous in the
 * file become one host transfer. Returns the pieces not done in place (for a write: clusters needing
 * allocation) through *stop_at, so the caller can redo them exclusively. */
static int64_t io_shared(struct qcow2 *q, bool write, const struct iovec *iov, unsigned niov, uint64_t off,
			 size_t len, uint64_t *stop_at)
{
	size_t done = 0;
	*stop_at = UINT64_MAX;
	while (done < len) {
		uint64_t pos = off + done, vc = pos / q->cs;
		size_t piece = (size_t)MIN((uint64_t)(len - done), q->cs - (pos & (q->cs - 1)));
		struct cmap m;
		int r = lookup(q, vc, &m);
		if (r < 0)
			return r;
		if (write && !(m.kind == C_NORMAL && m.copied)) {
			*stop_at = done;
			return (int64_t)done;
		}
		/* extend over following clusters that continue this one in the file */
		uint64_t host_end = m.host + (pos & (q->cs - 1)) + piece;
		while (m.kind == C_NORMAL && done + piece < len) {
			struct cmap n;
			if (lookup(q, vc + 1, &n) < 0 || n.kind != C_NORMAL || n.host != host_end || (write && !n.copied))
				break;
			size_t more = (size_t)MIN((uint64_t)(len - done - piece), q->cs);
			piece += more, host_end += more, vc++;
		}
		struct iovec part[IOV_MAX];
		unsigned n = iov_slice(iov, niov, done, piece, part, IOV_MAX);
		int64_t w = write ? rw_host(q, true, part, n, host_end - piece, piece) : read_piece(q, &m, part, n, pos, piece);
		if (w < 0)
			return w;
		done += piece;
	}
	return (int64_t)done;
}

int64_t qcow2_io(struct qcow2 *q, bool write, const struct iovec *iov, unsigned niov, uint64_t off, size_t len)
{
	if (off > q->size || len > q->size - off)
		return -ERANGE;
	if (write && q->readonly)
		return -EROFS;
	uint64_t stop;
	pthread_rwlock_rdlock(&q->io);
	int64_t done = io_shared(q, write, iov, niov, off, len, &stop);
	pthread_rwlock_unlock(&q->io);
	if (done < 0 || (size_t)done == len)
		return done;
	/* The rest needs clusters allocated or copied: one cluster at a time, with the image to ourselves. */
	pthread_rwlock_wrlock(&q->io);
	while ((size_t)done < len) {
		uint64_t pos = off + (uint64_t)done;
		size_t piece = (size_t)MIN((uint64_t)(len - (size_t)done), q->cs - (pos & (q->cs - 1)));
		struct cmap old[WRITE_RUN_MAX];
		unsigned run = new_cluster_run(q, pos, len - (size_t)done, old, WRITE_RUN_MAX);
		if (run > 1)
			piece = run * q->cs;
		struct iovec part[IOV_MAX];
		unsigned n = iov_slice(iov, niov, (uint64_t)done, piece, part, IOV_MAX);
		int64_t w = run > 1 ? write_new_clusters(q, pos / q->cs, run, old, part, n)
				    : write_alloc(q, pos / q->cs, part, n, pos, piece);
		if (w < 0) {
			done = w;
			break;
		}
		done += (int64_t)piece;
	}
	pthread_rwlock_unlock(&q->io);
	return done;
}

/* [off, off + len) as one run of the image's own clusters, in place (for a write: not shared) and
 * contiguous in the file, below its end, all known from cached tables. With meta held. */
static bool map_in_place(struct qcow2 *q, bool write, uint64_t off, size_t len, uint64_t *host)
{
	uint64_t first = off / q->cs, last = (off + len - 1) / q->cs, start = 0;
	for (uint64_t vc = first; vc <= last; vc++) {
		struct cmap m;
		if (lookup_locked(q, vc, true, &m) < 0 || m.kind != C_NORMAL || (write && !m.copied))
			return false;
		if (vc == first)
			start = m.host;
		else if (m.host != start + (vc - first) * q->cs)
			return false;
	}
	*host = start + (off & (q->cs - 1));
	return *host + len <= q->file_end;
}

bool qcow2_map_direct(struct qcow2 *q, bool write, uint64_t off, size_t len, int *fd, uint64_t *host)
{
	if (len == 0 || off > q->size || len > q->size - off || (write && q->readonly))
		return false;
	if (pthread_rwlock_tryrdlock(&q->io) != 0)
		return false;             /* the mapping is changing: the worker pool waits for it instead */
	bool ok = false;
	if (pthread_mutex_trylock(&q->meta) == 0) {
		ok = map_in_place(q, write, off, len, host);
		pthread_mutex_unlock(&q->meta);
	}
	if (ok)
		atomic_fetch_add(&q->direct_holds, 1);
	pthread_rwlock_unlock(&q->io);
	*fd = q->fd;
	return ok;
}

void qcow2_direct_done(struct qcow2 *q)
{
	if (atomic_fetch_sub(&q->direct_holds, 1) != 1)
		return;
	pthread_mutex_lock(&q->hold_lock);
	pthread_cond_broadcast(&q->holds_gone);
	pthread_mutex_unlock(&q->hold_lock);
}

/* KEEP: a cluster with storage of its own keeps it, as a preallocated zero cluster (version 3; the next
 * write goes there again); -EOPNOTSUPP: the caller writes zeros. 1: not a cluster with storage. */
static int zero_keeping_storage(struct qcow2 *q, uint64_t vc, const struct cmap *m)
{
	if (m->kind == C_ZERO && m->host)
		return 0;
	if (m->kind == C_UNALLOC || m->kind == C_ZERO)
		return 1;
	if (m->kind != C_NORMAL || !m->copied || q->version < 3)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&q->meta);
	int r = set_l2_entry(q, vc, m->host | OFLAG_ZERO | OFLAG_COPIED);
	pthread_mutex_unlock(&q->meta);
	return r;
}

/* One whole cluster made to read as zeros, its storage given back (except with QCOW2_ZERO_KEEP). */
static int zero_cluster(struct qcow2 *q, uint64_t vc, enum qcow2_zero_mode mode)
{
	struct cmap m;
	int r = lookup(q, vc, &m);
	if (r < 0)
		return r;
	if (mode == QCOW2_ZERO_KEEP && (r = zero_keeping_storage(q, vc, &m)) <= 0)
		return r;
	bool below = q->backing || q->backing_fd >= 0;
	uint64_t v;
	if (!below)
		v = 0;                            /* unallocated reads as zeros */
	else if (q->version >= 3)
		v = OFLAG_ZERO;
	else if (mode == QCOW2_DISCARD)
		return 0;                         /* version 2 over a backing file: keep, discard is a hint */
	else
		return -EOPNOTSUPP;               /* caller writes zeros */
	if (m.kind == C_UNALLOC && v == 0)
		return 0;
	if (m.kind == C_ZERO && !m.host && v == OFLAG_ZERO)
		return 0;
	pthread_mutex_lock(&q->meta);
	r = set_l2_entry(q, vc, v);
	if (r == 0)
		r = unref_mapping(q, &m);
	pthread_mutex_unlock(&q->meta);
	return r;
}

static int64_t write_zero_bytes(struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint8_t *z = calloc(1, q->cs);
	if (!z)
		return -ENOMEM;
	int64_t r = 0;
	while (len > 0 && r >= 0) {
		size_t piece = (size_t)MIN(len, q->cs - (off & (q->cs - 1)));
		struct iovec v = { z, piece };
		r = qcow2_io(q, true, &v, 1, off, piece);
		off += piece, len -= piece;
	}
	free(z);
	return r < 0 ? r : 0;
}

int64_t qcow2_zero(struct qcow2 *q, uint64_t off, uint64_t len, enum qcow2_zero_mode mode)
{
	bool discard = mode == QCOW2_DISCARD;
	if (off > q->size || len > q->size - off)
		return -ERANGE;
	if (q->readonly)
		return -EROFS;
	while (len > 0) {
		uint64_t in = off & (q->cs - 1);
		uint64_t piece = MIN(len, q->cs - in);
		/* the last cluster of a disk whose size is not a multiple of the cluster size counts as whole */
		bool whole = in == 0 && (piece == q->cs || off + piece == q->size);
		int64_t r = 0;
		if (whole) {
			pthread_rwlock_wrlock(&q->io);
			r = zero_cluster(q, off / q->cs, mode);
			pthread_rwlock_unlock(&q->io);
		}
		if (!discard && (!whole || r == -EOPNOTSUPP))
			r = write_zero_bytes(q, off, piece);
		if (r < 0)
			return r;
		off += piece, len -= piece;
	}
	return 0;
}

int qcow2_flush(struct qcow2 *q)
{
	return fdatasync(q->fd) == 0 ? 0 : -errno;
}

/* ---- Opening ---- */

struct header {
	uint32_t version, cluster_bits, crypt, l1_size, reft_clusters, refcount_order, header_len, backing_len;
	uint64_t backing_off, size, l1_off, reft_off, incompat, autoclear;
	uint8_t compression;
};

static void parse_header(const uint8_t *h, struct header *o)
{
	memset(o, 0, sizeof(*o));
	o->version = get32(h + 4);
	o->backing_off = get64(h + H_BACKING_OFF);
	o->backing_len = get32(h + H_BACKING_LEN);
	o->cluster_bits = get32(h + H_CLUSTER_BITS);
	o->size = get64(h + H_SIZE);
	o->crypt = get32(h + H_CRYPT);
	o->l1_size = get32(h + H_L1_SIZE);
	o->l1_off = get64(h + H_L1_OFF);
	o->reft_off = get64(h + H_REFT_OFF);
	o->reft_clusters = get32(h + H_REFT_CLUSTERS);
	o->refcount_order = 4;
	o->header_len = HDR_V2_LEN;
	if (o->version >= 3) {
		o->incompat = get64(h + H_INCOMPAT);
		o->autoclear = get64(h + H_AUTOCLEAR);
		o->refcount_order = get32(h + H_REFCOUNT_ORD);
		o->header_len = get32(h + H_HEADER_LEN);
		if (o->header_len > H_COMPRESSION)
			o->compression = h[H_COMPRESSION];
	}
}

static int check_features(const struct header *h, const char *path, bool readonly, vt_err *err)
{
	if (h->crypt)
		return vt_fail(err, "%s: encrypted qcow2 images are not supported; decrypt it with qemu-img convert", path);
	if (h->incompat & INCOMPAT_DATA_FILE)
		return vt_fail(err, "%s: qcow2 images with an external data file are not supported", path);
	if (h->incompat & INCOMPAT_EXTL2)
		return vt_fail(err, "%s: qcow2 images with extended L2 entries (subclusters) are not supported", path);
	if ((h->incompat & INCOMPAT_COMPRESSION) && h->compression != 0)
		return vt_fail(err, "%s: qcow2 compression type %u (zstd) is not supported, only zlib", path, h->compression);
	uint64_t unknown = h->incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION);
	if (unknown)
		return vt_fail(err, "%s: qcow2 image uses unknown incompatible features 0x%llx", path, (unsigned long long)unknown);
	if (!readonly && (h->incompat & INCOMPAT_CORRUPT))
		return vt_fail(err, "%s: qcow2 image is marked corrupt; repair it with `qemu-img check -r all` or open it read-only", path);
	if (!readonly && (h->incompat & INCOMPAT_DIRTY))
		return vt_fail(err, "%s: qcow2 image was not closed cleanly with lazy refcounts; repair it with `qemu-img check -r all`", path);
	return 0;
}

static int check_geometry(const struct header *h, uint64_t file_size, const char *path, vt_err *err)
{
	if (h->version != 2 && h->version != 3)
		return vt_fail(err, "%s: qcow2 version %u is not supported (2 and 3 are)", path, h->version);
	if (h->cluster_bits < MIN_CLUSTER_BITS || h->cluster_bits > MAX_CLUSTER_BITS)
		return vt_fail(err, "%s: qcow2 cluster size 2^%u is outside 512 B to 2 MiB", path, h->cluster_bits);
	uint64_t cs = 1ULL << h->cluster_bits;
	if (h->version >= 3 && (h->header_len < HDR_V3_LEN || h->header_len % 8 || h->header_len > cs))
		return vt_fail(err, "%s: qcow2 header length %u is invalid", path, h->header_len);
	if (h->refcount_order > 6)
		return vt_fail(err, "%s: qcow2 refcount order %u is over 6 (64 bits)", path, h->refcount_order);
	if (h->size > MAX_VIRTUAL_SIZE)
		return vt_fail(err, "%s: qcow2 virtual size %llu is too large", path, (unsigned long long)h->size);
	unsigned l2_bits = h->cluster_bits - 3;
	uint64_t need = (h->size + (cs << l2_bits) - 1) >> (h->cluster_bits + l2_bits);
	if (h->l1_size < need || (uint64_t)h->l1_size * 8 > MAX_L1_BYTES)
		return vt_fail(err, "%s: qcow2 L1 table of %u entries does not fit the disk size", path, h->l1_size);
	if (h->l1_size && ((h->l1_off & (cs - 1)) || h->l1_off < cs || h->l1_off > file_size ||
			   (uint64_t)h->l1_size * 8 > file_size - h->l1_off))
		return vt_fail(err, "%s: qcow2 L1 table lies outside the file", path);
	if (!h->reft_clusters || (uint64_t)h->reft_clusters * cs > MAX_REFTABLE_BYTES || (h->reft_off & (cs - 1)) ||
	    h->reft_off < cs || h->reft_off > file_size || (uint64_t)h->reft_clusters * cs > file_size - h->reft_off)
		return vt_fail(err, "%s: qcow2 refcount table lies outside the file or is too large", path);
	if (h->backing_off && (h->backing_len == 0 || h->backing_len > MAX_BACKING_NAME || h->backing_off > cs ||
			       h->backing_len > cs - h->backing_off))
		return vt_fail(err, "%s: qcow2 backing file name is out of bounds", path);
	return 0;
}

/* Header extensions: only the backing format is wanted; the walk checks every length. */
static int parse_extensions(const uint8_t *h, size_t hlen, const struct header *hd, char *fmt, size_t fmtlen,
			    const char *path, vt_err *err)
{
	uint64_t pos = hd->header_len, end = hd->backing_off ? MIN(hd->backing_off, hlen) : hlen;
	fmt[0] = 0;
	while (pos + 8 <= end) {
		uint32_t type = get32(h + pos), len = get32(h + pos + 4);
		if (type == EXT_END)
			return 0;
		if (len > end - pos - 8)
			return vt_fail(err, "%s: qcow2 header extension 0x%08x runs past the header", path, type);
		if (type == EXT_BACKING_FMT) {
			if (len == 0 || len >= fmtlen)
				return vt_fail(err, "%s: qcow2 backing format name is %u bytes long", path, len);
			memcpy(fmt, h + pos + 8, len);
			fmt[len] = 0;
		}
		pos += 8 + ((uint64_t)len + 7) / 8 * 8;
	}
	return 0;
}

/* Protocol names (json:, nbd:, http:...) are QEMU's, not files: refused rather than looked up. */
static bool names_protocol(const char *name)
{
	const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
	if (!colon || (slash && slash < colon))
		return false;
	for (const char *p = name; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-'))
			return false;
	return colon > name;
}

static char *resolve_backing(const char *image, const char *name)
{
	if (name[0] == '/')
		return strdup(name);
	char *copy = strdup(image);
	if (!copy)
		return NULL;
	char *dir = dirname(copy), *out = NULL;
	if (asprintf(&out, "%s/%s", dir, name) < 0)
		out = NULL;
	free(copy);
	return out;
}

static int open_backing(struct qcow2 *q, const char *fmt, struct chain *ch, vt_err *err)
{
	if (names_protocol(q->backing_name))
		return vt_fail(err, "%s: backing file '%s' is not a file name (protocols are not supported)", q->path, q->backing_name);
	if (ch->n >= QCOW2_MAX_CHAIN)
		return vt_fail(err, "%s: more than %d backing files in a chain", q->path, QCOW2_MAX_CHAIN);
	if (fmt[0] && strcmp(fmt, "qcow2") && strcmp(fmt, "raw"))
		return vt_fail(err, "%s: backing file format '%s' is not supported (qcow2 and raw are)", q->path, fmt);
	char *full = resolve_backing(q->path, q->backing_name);
	if (!full)
		return vt_fail_errno(err, ENOMEM, "%s", q->path);
	int r = -1, fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	if (fd < 0) {
		vt_fail_errno(err, errno, "%s: cannot open its backing file %s", q->path, full);
	} else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vt_fail(err, "%s: backing file %s is not a regular file", q->path, full);
	} else if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		vt_fail(err, "%s: backing file %s is in use for writing by another process (advisory lock)", q->path, full);
	} else {
		bool loop = false;
		for (unsigned i = 0; i < ch->n; i++)
			loop |= ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino;
		bool is_qcow2 = qcow2_has_magic(fd);
		if (loop)
			vt_fail(err, "%s: backing file %s is already in the chain above it (a loop)", q->path, full);
		else if (!strcmp(fmt, "qcow2") && !is_qcow2)
			vt_fail(err, "%s: backing file %s is named qcow2 but is not a qcow2 image", q->path, full);
		else if (!strcmp(fmt, "raw") || !is_qcow2)
			q->backing_fd = fd, q->backing_size = (uint64_t)st.st_size, fd = -1, r = 0;
		else if (open_image(fd, full, true, ch, NULL, &q->backing, err) == 0)
			q->backing_size = q->backing->size, fd = -1, r = 0;
	}
	if (fd >= 0)
		close(fd);
	free(full);
	return r;
}

static int load_tables(struct qcow2 *q, vt_err *err)
{
	uint64_t *l1 = calloc(MAX(q->l1_size, 1), 8);
	uint64_t reft_entries = (uint64_t)q->reft_clusters * q->cs / 8;
	uint64_t *reft = calloc(reft_entries, 8);
	uint8_t **blocks = calloc(reft_entries, sizeof(uint8_t *));
	if (!l1 || !reft || !blocks) {
		free(l1), free(reft), free(blocks);
		return vt_fail_errno(err, ENOMEM, "%s: qcow2 tables", q->path);
	}
	int r = q->l1_size ? pread_full(q->fd, l1, (size_t)q->l1_size * 8, q->l1_off) : 0;
	if (r == 0)
		r = pread_full(q->fd, reft, reft_entries * 8, q->reft_off);
	if (r < 0) {
		free(l1), free(reft), free(blocks);
		return vt_fail_errno(err, -r, "%s: cannot read qcow2 tables", q->path);
	}
	for (uint32_t i = 0; i < q->l1_size; i++)
		l1[i] = be64toh(l1[i]);
	for (uint64_t i = 0; i < reft_entries; i++)
		reft[i] = be64toh(reft[i]);
	q->l1 = l1, q->reft = reft, q->refblocks = blocks, q->reft_entries = reft_entries;
	return 0;
}

static void drop_tables(struct qcow2 *q)
{
	for (uint64_t i = 0; q->refblocks && i < q->reft_entries; i++)
		free(q->refblocks[i]);
	for (unsigned i = 0; q->l2c && i < q->l2c_slots; i++)
		free(q->l2c[i].t), q->l2c[i].t = NULL, q->l2c[i].off = 0;
	free(q->refblocks), free(q->reft), free(q->l1);
	q->refblocks = NULL, q->reft = NULL, q->l1 = NULL;
}

/* The backing file name and the header extensions, all inside the first cluster. */
static int read_first_cluster(struct qcow2 *q, const struct header *hd, char *fmt, size_t fmtlen, vt_err *err)
{
	uint8_t *hc = malloc(q->cs);
	if (!hc)
		return vt_fail_errno(err, ENOMEM, "%s", q->path);
	int r = pread_zero_tail(q->fd, hc, q->cs, 0);
	if (r < 0) {
		vt_fail_errno(err, -r, "%s: cannot read qcow2 header", q->path);
	} else if (hd->backing_off) {
		free(q->backing_name);
		q->backing_name = strndup((char *)hc + hd->backing_off, hd->backing_len);
		if (!q->backing_name)
			r = vt_fail_errno(err, ENOMEM, "%s", q->path);
		else if (strlen(q->backing_name) != hd->backing_len)
			r = vt_fail(err, "%s: qcow2 backing file name holds a NUL byte", q->path);
	}
	if (r == 0)
		r = parse_extensions(hc, q->cs, hd, fmt, fmtlen, q->path, err);
	free(hc);
	return r < 0 ? -1 : 0;
}

/* Read and check the header and tables into q (fd, path and readonly set). */
static int read_metadata(struct qcow2 *q, struct header *hd, char *fmt, size_t fmtlen, vt_err *err)
{
	struct stat st;
	if (fstat(q->fd, &st) < 0)
		return vt_fail_errno(err, errno, "%s: cannot stat", q->path);
	uint8_t first[HDR_V3_LEN + 8] = { 0 };
	int r = pread_full(q->fd, first, sizeof(first), 0);
	if (r < 0 || get32(first) != QCOW2_MAGIC)
		return vt_fail(err, "%s: not a qcow2 image", q->path);
	parse_header(first, hd);
	if (check_geometry(hd, (uint64_t)st.st_size, q->path, err) < 0 || check_features(hd, q->path, q->readonly, err) < 0)
		return -1;
	q->version = hd->version;
	q->cluster_bits = hd->cluster_bits;
	q->cs = 1ULL << hd->cluster_bits;
	q->size = hd->size;
	q->file_end = (uint64_t)st.st_size;
	q->l1_size = hd->l1_size, q->l1_off = hd->l1_off;
	q->l2_bits = hd->cluster_bits - 3;
	q->reft_off = hd->reft_off, q->reft_clusters = hd->reft_clusters;
	q->refcount_order = hd->refcount_order;
	q->refblock_entries = q->cs * 8 >> hd->refcount_order;
	if (read_first_cluster(q, hd, fmt, fmtlen, err) < 0)
		return -1;
	return load_tables(q, err);
}

static int clear_autoclear(struct qcow2 *q, const struct header *hd, vt_err *err)
{
	if (q->readonly || hd->version < 3 || !hd->autoclear)
		return 0;
	/* Features we do not maintain (bitmaps) must be marked stale by a writer that does not know them. */
	uint8_t zero[8] = { 0 };
	int r = write_header_fields(q, H_AUTOCLEAR, zero, 8);
	return r < 0 ? vt_fail_errno(err, -r, "%s: cannot update qcow2 header", q->path) : 0;
}

static int setup_caches(struct qcow2 *q, vt_err *err)
{
	uint64_t slots = MIN((uint64_t)MAX(q->l1_size, 1), MAX(16, L2_CACHE_BYTES / q->cs));
	q->l2c_slots = (unsigned)slots;
	q->l2c = calloc(slots, sizeof(*q->l2c));
	q->reserve = calloc(RESERVE_MAX, sizeof(uint64_t));
	if (!q->l2c || !q->reserve)
		return vt_fail_errno(err, ENOMEM, "%s: qcow2 caches", q->path);
	q->reserve_batch = RESERVE_MIN;
	q->free_hint = 1;
	return 0;
}

/* What lies below, already open, becomes the image's backing file (qcow2_open_over). */
static int adopt_below(struct qcow2 *q, const struct qcow2_below *below, vt_err *err)
{
	if (!q->backing_name)
		return vt_fail(err, "%s: the new image names no backing file", q->path);
	if (below->image) {
		qcow2_release(below->image);  /* exact on disk from now on: nothing writes it any more */
		below->image->readonly = true;
		q->backing = below->image, q->backing_size = below->image->size;
	} else {
		q->backing_fd = below->fd, q->backing_size = below->raw_size;
	}
	return 0;
}

static int open_image(int fd, const char *path, bool readonly, struct chain *ch, const struct qcow2_below *below,
		      struct qcow2 **out, vt_err *err)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q)
		return vt_fail_errno(err, ENOMEM, "%s", path);
	q->fd = fd;
	q->backing_fd = -1;
	q->readonly = readonly;
	pthread_rwlock_init(&q->io, NULL);
	pthread_mutex_init(&q->meta, NULL);
	pthread_mutex_init(&q->hold_lock, NULL);
	pthread_cond_init(&q->holds_gone, NULL);
	struct stat st;
	struct header hd;
	char fmt[32];
	int r = -1;
	if (!(q->path = strdup(path)))
		vt_fail_errno(err, ENOMEM, "%s", path);
	else if (fstat(fd, &st) < 0)
		vt_fail_errno(err, errno, "%s: cannot stat", path);
	else if (read_metadata(q, &hd, fmt, sizeof(fmt), err) == 0 && setup_caches(q, err) == 0 &&
		 clear_autoclear(q, &hd, err) == 0) {
		ch->dev[ch->n] = st.st_dev, ch->ino[ch->n] = st.st_ino, ch->n++;
		r = below ? adopt_below(q, below, err) : q->backing_name ? open_backing(q, fmt, ch, err) : 0;
		ch->n--;
	}
	if (r < 0) {
		q->readonly = true;       /* nothing reserved: close must not write */
		qcow2_close(q);
		return -1;
	}
	*out = q;
	return 0;
}

int qcow2_open(int fd, const char *path, bool readonly, struct qcow2 **out, vt_err *err)
{
	struct chain ch = { .n = 0 };
	return open_image(fd, path, readonly, &ch, NULL, out, err);
}

int qcow2_open_over(int fd, const char *path, const struct qcow2_below *below, struct qcow2 **out, vt_err *err)
{
	struct chain ch = { .n = 0 };
	return open_image(fd, path, false, &ch, below, out, err);
}

void qcow2_take_below(struct qcow2 *q, struct qcow2_below *below)
{
	*below = (struct qcow2_below){ .fd = q->backing ? q->backing->fd : q->backing_fd, .image = q->backing,
				       .raw_size = q->backing_size };
	if (q->backing)
		q->backing->readonly = false;
	q->backing = NULL;
	q->backing_fd = -1;
	qcow2_close(q);
}

bool qcow2_has_magic(int fd)
{
	uint8_t m[4];
	return pread_full(fd, m, 4, 0) == 0 && get32(m) == QCOW2_MAGIC;
}

void qcow2_release(struct qcow2 *q)
{
	pthread_rwlock_wrlock(&q->io);
	pthread_mutex_lock(&q->meta);
	if (!q->readonly)
		release_reserve(q);
	pthread_mutex_unlock(&q->meta);
	pthread_rwlock_unlock(&q->io);
}

int qcow2_reload(struct qcow2 *q, vt_err *err)
{
	struct header hd;
	char fmt[32];
	pthread_rwlock_wrlock(&q->io);
	pthread_mutex_lock(&q->meta);
	drop_tables(q);
	q->reserve_n = q->reserve_used = 0;
	q->free_hint = 1;
	uint64_t size = q->size;
	int r = read_metadata(q, &hd, fmt, sizeof(fmt), err);
	if (r == 0 && q->size != size)
		r = vt_fail(err, "%s: the image's size changed from %llu to %llu bytes", q->path,
			    (unsigned long long)size, (unsigned long long)q->size);
	pthread_mutex_unlock(&q->meta);
	pthread_rwlock_unlock(&q->io);
	return r;
}

void qcow2_close(struct qcow2 *q)
{
	if (!q)
		return;
	if (!q->readonly && q->reserve)
		release_reserve(q);
	int backing_qcow2_fd = q->backing ? q->backing->fd : -1;
	qcow2_close(q->backing);
	if (backing_qcow2_fd >= 0)
		close(backing_qcow2_fd);
	if (q->backing_fd >= 0)
		close(q->backing_fd);
	drop_tables(q);
	free(q->l2c);
	free(q->reserve);
	free(q->backing_name);
	free(q->path);
	pthread_rwlock_destroy(&q->io);
	pthread_mutex_destroy(&q->meta);
	pthread_mutex_destroy(&q->hold_lock);
	pthread_cond_destroy(&q->holds_gone);
	free(q);
}

uint64_t qcow2_size(const struct qcow2 *q) { return q->size; }
const char *qcow2_backing_name(const struct qcow2 *q) { return q->backing_name; }

/* ---- Creating ---- */

static int backing_size_and_format(const char *image, const char *backing, const char **fmt, uint64_t *size,
				   vt_err *err)
{
	char *full = resolve_backing(image, backing);
	if (!full)
		return vt_fail_errno(err, ENOMEM, "%s", image);
	int r = -1, fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0) {
		vt_fail_errno(err, errno, "backing file %s", full);
	} else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vt_fail(err, "backing file %s is not a regular file", full);
	} else if (qcow2_has_magic(fd) && (!*fmt || !strcmp(*fmt, "qcow2"))) {
		struct qcow2 *b;
		if (qcow2_open(fd, full, true, &b, err) == 0) {
			*size = b->size, *fmt = "qcow2", r = 0;
			qcow2_close(b);
		}
	} else if (*fmt && !strcmp(*fmt, "qcow2")) {
		vt_fail(err, "backing file %s is not a qcow2 image", full);
	} else {
		*size = (uint64_t)st.st_size, *fmt = "raw", r = 0;
	}
	if (fd >= 0)
		close(fd);
	free(full);
	return r;
}

int qcow2_format_fd(int fd, const char *path, const struct qcow2_create_opts *o, vt_err *err)
{
	unsigned cb = o->cluster_bits ? o->cluster_bits : QCOW2_DEFAULT_CLUSTER_BITS;
	const char *fmt = o->backing_fmt;
	uint64_t size = o->size;
	if (cb < MIN_CLUSTER_BITS || cb > MAX_CLUSTER_BITS)
		return vt_fail(err, "%s: cluster size 2^%u is outside 512 B to 2 MiB", path, cb);
	if (fmt && strcmp(fmt, "qcow2") && strcmp(fmt, "raw"))
		return vt_fail(err, "%s: backing format '%s' is not supported (qcow2 and raw are)", path, fmt);
	if (o->backing && (strlen(o->backing) > MAX_BACKING_NAME || names_protocol(o->backing)))
		return vt_fail(err, "%s: '%s' cannot be a backing file name", path, o->backing);
	uint64_t bsize = 0;
	/* with both stated the backing file is not opened (a sandboxed VMM cannot) */
	if (o->backing && !(fmt && size) && backing_size_and_format(path, o->backing, &fmt, &bsize, err) < 0)
		return -1;
	if (!size)
		size = bsize;
	size = (size + 511) & ~511ULL;
	if (!size || size > MAX_VIRTUAL_SIZE)
		return vt_fail(err, "%s: disk size %llu is not between 512 bytes and 32 PiB", path, (unsigned long long)size);
	uint64_t cs = 1ULL << cb, l2_cover = cs << (cb - 3);
	uint64_t l1_size = (size + l2_cover - 1) / l2_cover, l1_clusters = MAX((l1_size * 8 + cs - 1) / cs, 1);
	uint64_t meta = 3 + l1_clusters;             /* header, refcount table, refcount block, L1 */
	if (meta > cs * 8 / 16 || l1_size * 8 > MAX_L1_BYTES)
		return vt_fail(err, "%s: %llu bytes is too large a disk for %llu-byte clusters", path,
			       (unsigned long long)size, (unsigned long long)cs);
	uint8_t *img = calloc(meta, cs);
	if (!img)
		return vt_fail_errno(err, ENOMEM, "%s", path);
	put32(img, QCOW2_MAGIC);
	put32(img + 4, 3);
	put32(img + H_CLUSTER_BITS, cb);
	put64(img + H_SIZE, size);
	put32(img + H_L1_SIZE, (uint32_t)l1_size);
	put64(img + H_L1_OFF, 3 * cs);
	put64(img + H_REFT_OFF, cs);
	put32(img + H_REFT_CLUSTERS, 1);
	put32(img + H_REFCOUNT_ORD, 4);
	put32(img + H_HEADER_LEN, HDR_V3_LEN);
	uint64_t pos = HDR_V3_LEN;
	if (o->backing) {
		size_t flen = strlen(fmt), blen = strlen(o->backing);
		put32(img + pos, EXT_BACKING_FMT);
		put32(img + pos + 4, (uint32_t)flen);
		memcpy(img + pos + 8, fmt, flen);
		pos += 8 + (flen + 7) / 8 * 8;
		pos += 8;                                /* end of extensions */
		put64(img + H_BACKING_OFF, pos);
		put32(img + H_BACKING_LEN, (uint32_t)blen);
		memcpy(img + pos, o->backing, blen);
	}
	put64(img + cs, 2 * cs);                         /* refcount table entry 0: the block */
	for (uint64_t c = 0; c < meta; c++)
		img[2 * cs + c * 2 + 1] = 1;             /* 16-bit refcounts of 1 */
	int r = write_all(fd, img, meta * cs) < 0 || fdatasync(fd) < 0 ? vt_fail_errno(err, errno, "%s: cannot write", path) : 0;
	free(img);
	return r;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *o, vt_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", path);
	int r = qcow2_format_fd(fd, path, o, err);
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}
