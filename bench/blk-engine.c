/* Block engine benchmark: io_uring vs worker pool through the real backend (src/block), on a temporary
 * file. Built and run by bench/blk-engine; see there for usage. Prints one line per run and medians.
 *
 *   randread: 4 KiB reads at random sector-aligned offsets, queue depth 32 kept full, for a fixed count.
 *   cold:     the same after dropping the file from the page cache (POSIX_FADV_DONTNEED), a tenth of the
 *             count: reads that go to the disk, where io_uring punts to its own kernel workers.
 *   seqwrite: 1 MiB sequential writes, queue depth 4, over the whole file, then one flush (included). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/raw.h"
#include "lib/util.h"

#define RR_SIZE   4096
#define RR_DEPTH  32
#define SW_SIZE   (1024 * 1024)
#define SW_DEPTH  4

struct slot {
	struct blk_req req;
	struct iovec iov;
	struct job *job;
};

struct job {
	struct blk *b;
	uint64_t next;            /* randread: ops left to issue; seqwrite: next sector */
	uint64_t limit;
	uint64_t done;
	uint64_t rng;
	bool sequential;
	int errors;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return *s;
}

static void issue(struct slot *s);

static void on_done(struct blk_req *req, enum blk_status st, size_t bytes)
{
	struct slot *s = (struct slot *)req;
	(void)bytes;
	s->job->done++;
	if (st != BLK_S_OK)
		s->job->errors++;
	issue(s);
}

static void issue(struct slot *s)
{
	struct job *j = s->job;
	if (j->next >= j->limit)
		return;
	uint64_t sector;
	if (j->sequential) {
		sector = j->next;
		j->next += SW_SIZE / 512;
	} else {
		sector = xorshift(&j->rng) % (blk_sectors(j->b) - RR_SIZE / 512);
		sector &= ~(uint64_t)(RR_SIZE / 512 - 1);
		j->next++;
	}
	s->req = (struct blk_req){ .op = j->sequential ? BLK_OP_WRITE : BLK_OP_READ, .sector = sector,
				   .iov = &s->iov, .niov = 1, .done = on_done };
	blk_submit(j->b, &s->req);
}

static double run_job(struct job *j, unsigned depth, size_t bufsize)
{
	struct slot *slots = calloc(depth, sizeof(*slots));
	uint8_t *bufs = aligned_alloc(4096, depth * bufsize);
	if (!slots || !bufs)
		exit(1);
	memset(bufs, 0xab, depth * bufsize);
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < depth; i++) {
		slots[i] = (struct slot){ .iov = { bufs + i * bufsize, bufsize }, .job = j };
		issue(&slots[i]);
	}
	while (blk_inflight(j->b) > 0)
		blk_wait_completions(j->b);
	if (j->sequential) {
		struct slot fl = { .req = { .op = BLK_OP_FLUSH, .done = on_done }, .job = j };
		blk_submit(j->b, &fl.req);
		while (blk_inflight(j->b) > 0)
			blk_wait_completions(j->b);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	free(slots);
	free(bufs);
	return secs;
}

static struct blk *open_engine(const char *path, enum blk_engine e)
{
	struct blk_opts o = { .engine = e };
	struct blk *b;
	vt_err err;
	if (blk_open_opts(path, &o, &b, &err) < 0) {
		fprintf(stderr, "blk-engine: %s\n", err.msg);
		exit(1);
	}
	return b;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
		fprintf(stderr, "blk-engine: cannot drop %s from the page cache\n", path);
	if (fd >= 0)
		close(fd);
}

static double randread_iops(const char *path, enum blk_engine e, uint64_t ops, bool cold)
{
	if (cold)
		drop_cache(path);
	struct job j = { .b = open_engine(path, e), .limit = ops, .rng = 88172645463325252ULL + ops };
	double secs = run_job(&j, RR_DEPTH, RR_SIZE);
	if (j.errors || j.done != ops)
		fprintf(stderr, "blk-engine: randread: %d errors, %llu done\n", j.errors, (unsigned long long)j.done);
	blk_close(j.b);
	return (double)ops / secs;
}

static double seqwrite_mibs(const char *path, enum blk_engine e)
{
	struct job j = { .b = open_engine(path, e), .sequential = true };
	j.limit = blk_sectors(j.b);
	double secs = run_job(&j, SW_DEPTH, SW_SIZE);
	if (j.errors)
		fprintf(stderr, "blk-engine: seqwrite: %d errors\n", j.errors);
	double mib = (double)(j.limit * 512) / (1024.0 * 1024.0);
	blk_close(j.b);
	return mib / secs;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: blk-engine FILE SIZE_MIB RUNS READ_OPS\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t size = strtoull(argv[2], NULL, 10) * MiB;
	int runs = atoi(argv[3]);
	uint64_t ops = strtoull(argv[4], NULL, 10);
	if (size < MiB || runs < 1 || runs > 100 || ops < 1) {
		fprintf(stderr, "blk-engine: bad arguments\n");
		return 2;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "blk-engine: %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	enum blk_engine engines[2] = { BLK_ENGINE_URING, BLK_ENGINE_POOL };
	double rr[2][100], sw[2][100], cr[2][100];
	/* The first write fills the file, so reads hit data; runs alternate engines to share any drift. */
	seqwrite_mibs(path, BLK_ENGINE_URING);
	for (int r = 0; r < runs; r++) {
		for (int e = 0; e < 2; e++) {
			sw[e][r] = seqwrite_mibs(path, engines[e]);
			rr[e][r] = randread_iops(path, engines[e], ops, false);
			cr[e][r] = randread_iops(path, engines[e], ops / 10 + 1, true);
			printf("run %d %-11s randread %9.0f IOPS  cold %8.0f IOPS  seqwrite %7.1f MiB/s\n", r + 1,
			       blk_engine_name(engines[e]), rr[e][r], cr[e][r], sw[e][r]);
		}
	}
	for (int e = 0; e < 2; e++)
		printf("median %-11s randread-4k-qd32 %9.0f IOPS  cold %8.0f IOPS  seqwrite-1m-qd4+flush %7.1f MiB/s\n",
		       blk_engine_name(engines[e]), median(rr[e], runs), median(cr[e], runs), median(sw[e], runs));
	unlink(path);
	return 0;
}
