/* blkbench: the guest side of the virtio-blk benchmarks and of the nested random-offset test. Static,
 * no liburing (glibc static has none): queue depth N is N threads each doing O_DIRECT pread/pwrite, which
 * keeps N requests in flight on one vCPU because every thread sleeps in the kernel while its I/O runs.
 *
 *   blkbench randread DEV [--bs 4096] [--qd N] [--seconds S] [--seed X]
 *       uniformly random bs-aligned offsets over the whole device; prints
 *       "blkbench randread bs=4096 qd=1 ios=N seconds=S iops=X"
 *   blkbench randwrite DEV [--bs 4096] [--qd N] [--seconds S] [--seed X]
 *       the same offsets, written (a non-zero pattern), then fdatasync (inside the timing); prints
 *       "blkbench randwrite bs=4096 qd=1 ios=N seconds=S iops=X"
 *   blkbench seqwrite DEV [--bs 1M] [--mib M]
 *       M MiB of bs-sized writes from offset 0, then fdatasync (inside the timing); prints
 *       "blkbench seqwrite bs=1048576 mib=M seconds=S mibps=X"
 *   blkbench verify DEV [--count N] [--qd N] [--seed X]
 *       reads N random 4 KiB blocks of an image whose every block starts with its block number (le64,
 *       written by the host); any mismatch prints "blkbench verify: MISMATCH ..." and exits 1; else prints
 *       "blkbench verify bs=4096 qd=N blocks=N mismatches=0 ok"
 *
 * DEV may also be a regular file (its size then comes from fstat), which lets the host test the tool.
 * Exit status: 0 done, 1 I/O error or mismatch, 2 usage error. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_QD 64
#define VERIFY_BS 4096

struct opts {
	const char *mode, *dev;
	uint64_t bs, qd, seconds, seed, mib, count;
};

/* Shared by the worker threads of one run; each thread writes only its own slot of `done`/`bad`. */
struct run {
	int fd;
	bool verify, write;
	uint64_t bs, nblocks, count, seed; /* count: verify's total reads, shared out among the threads */
	unsigned qd;
	double deadline;
	uint64_t done[MAX_QD], bad[MAX_QD];
	int err[MAX_QD];
};

struct worker {
	struct run *run;
	unsigned idx;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: fast, good enough to spread offsets uniformly; never seeded with 0. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t rand_below(uint64_t *s, uint64_t n)
{
	/* Reject the top sliver so every block is equally likely (n is far below 2^64). */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
	do
		r = next_rand(s);
	while (r >= limit);
	return r % n;
}

static int usage(const char *why, const char *arg)
{
	fprintf(stderr, "blkbench: %s%s%s\n", why, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "usage: blkbench randread|randwrite DEV [--bs 4096] [--qd N] [--seconds S] [--seed X]\n"
			"       blkbench seqwrite DEV [--bs 1M] [--mib M]\n"
			"       blkbench verify DEV [--count N] [--qd N] [--seed X]\n");
	return 2;
}

/* A number with an optional K/M/G suffix (powers of 1024). */
static bool parse_num(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return false;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	if (argc < 3)
		return usage("missing mode or device", NULL);
	bool write = !strcmp(argv[1], "seqwrite");
	*o = (struct opts){ .mode = argv[1], .dev = argv[2], .bs = write ? 1 << 20 : 4096, .qd = 1, .seconds = 5,
			    .seed = 1, .mib = 64, .count = 2000 };
	if (strcmp(o->mode, "randread") && strcmp(o->mode, "randwrite") && strcmp(o->mode, "seqwrite") &&
	    strcmp(o->mode, "verify"))
		return usage("unknown mode", o->mode);
	for (int i = 3; i < argc; i += 2) {
		static const char *const names[] = { "--bs", "--qd", "--seconds", "--seed", "--mib", "--count" };
		uint64_t *slots[] = { &o->bs, &o->qd, &o->seconds, &o->seed, &o->mib, &o->count };
		unsigned k = 0;
		while (k < 6 && strcmp(argv[i], names[k]))
			k++;
		if (k == 6)
			return usage("unknown option", argv[i]);
		if (i + 1 >= argc || !parse_num(argv[i + 1], slots[k]))
			return usage("bad or missing value for", argv[i]);
	}
	if (o->bs < 512 || o->bs % 512 || o->bs > (64 << 20))
		return usage("--bs must be a multiple of 512 up to 64M", NULL);
	if (!o->qd || o->qd > MAX_QD)
		return usage("--qd must be 1..64", NULL);
	if (!o->seconds || !o->mib || !o->count)
		return usage("--seconds, --mib and --count must be positive", NULL);
	if (!strcmp(o->mode, "verify"))
		o->bs = VERIFY_BS;
	return -1;
}

static bool device_size(int fd, const char *dev, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "blkbench: %s: %s\n", dev, strerror(errno));
		return false;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			fprintf(stderr, "blkbench: %s: BLKGETSIZE64: %s\n", dev, strerror(errno));
			return false;
		}
	} else {
		*size = (uint64_t)st.st_size;
	}
	return true;
}

/* One block read (in verify mode, checked) or written. Returns false on an I/O error (run->err set). */
static bool io_one(struct run *r, unsigned idx, uint8_t *buf, uint64_t *rng)
{
	uint64_t block = rand_below(rng, r->nblocks);
	ssize_t n = r->write ? pwrite(r->fd, buf, r->bs, (off_t)(block * r->bs)) :
			       pread(r->fd, buf, r->bs, (off_t)(block * r->bs));
	if (n != (ssize_t)r->bs) {
		r->err[idx] = n < 0 ? errno : EIO;
		fprintf(stderr, "blkbench: %s of block %" PRIu64 ": %s\n", r->write ? "write" : "read", block,
			n < 0 ? strerror(errno) : "short transfer");
		return false;
	}
	r->done[idx]++;
	if (r->verify) {
		uint64_t got;
		memcpy(&got, buf, sizeof(got));
		if (le64toh(got) != block) {
			r->bad[idx]++;
			fprintf(stderr, "blkbench verify: MISMATCH block %" PRIu64 " (offset %" PRIu64
				") starts with %" PRIu64 "\n", block, block * r->bs, le64toh(got));
		}
	}
	return true;
}

static void *io_worker(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	void *buf;
	if (posix_memalign(&buf, 4096, r->bs)) {
		r->err[w->idx] = ENOMEM;
		return NULL;
	}
	memset(buf, 0xa5, r->bs); /* what randwrite writes: not zeros, no backend may shortcut them */
	uint64_t rng = r->seed * 0x9E3779B97F4A7C15ULL + w->idx + 1;
	if (!rng)
		rng = 1;
	uint64_t mine = r->count / r->qd + (w->idx < r->count % r->qd);
	for (uint64_t i = 0; r->verify ? i < mine : true; i++) {
		/* Time checks every 16 reads: clock_gettime is cheap (vDSO), but not free at high IOPS. */
		if (!r->verify && !(i & 15) && now() >= r->deadline)
			break;
		if (!io_one(r, w->idx, buf, &rng))
			break;
	}
	free(buf);
	return NULL;
}

/* Runs qd workers to completion; returns elapsed seconds, or < 0 if a thread could not start. */
static double run_workers(struct run *r, unsigned qd)
{
	pthread_t th[MAX_QD];
	struct worker w[MAX_QD];
	double t0 = now();
	unsigned started = 0;
	for (; started < qd; started++) {
		w[started] = (struct worker){ r, started };
		if (pthread_create(&th[started], NULL, io_worker, &w[started])) {
			r->err[started] = EAGAIN;
			break;
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return now() - t0;
}

static int sum_run(const struct run *r, unsigned qd, uint64_t *done, uint64_t *bad)
{
	int err = 0;
	*done = *bad = 0;
	for (unsigned i = 0; i < qd; i++) {
		*done += r->done[i];
		*bad += r->bad[i];
		if (r->err[i])
			err = r->err[i];
	}
	return err;
}

static int cmd_random(const struct opts *o, bool verify, bool write)
{
	int fd = open(o->dev, (write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "blkbench: %s: %s\n", o->dev, strerror(errno));
		return 1;
	}
	uint64_t size = 0;
	bool sized = device_size(fd, o->dev, &size);
	if (!sized || size < o->bs) {
		if (sized)
			fprintf(stderr, "blkbench: %s: smaller than one block\n", o->dev);
		close(fd);
		return 1;
	}
	static struct run r; /* 1 KiB of counters: keep it off the stack */
	r = (struct run){ .fd = fd, .verify = verify, .write = write, .bs = o->bs, .nblocks = size / o->bs, .seed = o->seed,
			  .count = o->count, .qd = (unsigned)o->qd, .deadline = now() + (double)o->seconds };
	double t0 = now(), secs = run_workers(&r, (unsigned)o->qd);
	if (write && fdatasync(fd) < 0) {
		fprintf(stderr, "blkbench: fdatasync: %s\n", strerror(errno));
		r.err[0] = errno;
	}
	if (write)
		secs = now() - t0;
	close(fd);
	uint64_t done, bad;
	int err = sum_run(&r, (unsigned)o->qd, &done, &bad);
	if (err)
		return 1;
	if (verify) {
		printf("blkbench verify bs=%" PRIu64 " qd=%" PRIu64 " blocks=%" PRIu64 " mismatches=%" PRIu64 " %s\n",
		       o->bs, o->qd, done, bad, bad ? "FAILED" : "ok");
		return bad ? 1 : 0;
	}
	printf("blkbench %s bs=%" PRIu64 " qd=%" PRIu64 " ios=%" PRIu64 " seconds=%.3f iops=%.0f\n", o->mode,
	       o->bs, o->qd, done, secs, done / secs);
	return 0;
}

static int cmd_seqwrite(const struct opts *o)
{
	uint64_t total = o->mib << 20, nwrites = (total + o->bs - 1) / o->bs;
	int fd = open(o->dev, O_WRONLY | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "blkbench: %s: %s\n", o->dev, strerror(errno));
		return 1;
	}
	uint64_t size;
	void *buf = NULL;
	int rc = 1;
	if (!device_size(fd, o->dev, &size))
		goto out;
	if (nwrites * o->bs > size) {
		fprintf(stderr, "blkbench: %s: %" PRIu64 " MiB do not fit in its %" PRIu64 " bytes\n", o->dev, o->mib,
			size);
		goto out;
	}
	if (posix_memalign(&buf, 4096, o->bs)) {
		fprintf(stderr, "blkbench: out of memory\n");
		goto out;
	}
	memset(buf, 0xa5, o->bs); /* not zeros: no backend may shortcut them */
	double t0 = now();
	for (uint64_t i = 0; i < nwrites; i++) {
		ssize_t n = pwrite(fd, buf, o->bs, (off_t)(i * o->bs));
		if (n != (ssize_t)o->bs) {
			fprintf(stderr, "blkbench: write at %" PRIu64 ": %s\n", i * o->bs,
				n < 0 ? strerror(errno) : "short write");
			goto out;
		}
	}
	if (fdatasync(fd) < 0) {
		fprintf(stderr, "blkbench: fdatasync: %s\n", strerror(errno));
		goto out;
	}
	double secs = now() - t0;
	printf("blkbench seqwrite bs=%" PRIu64 " mib=%.1f seconds=%.3f mibps=%.1f\n", o->bs,
	       (double)(nwrites * o->bs) / (1 << 20), secs, (double)(nwrites * o->bs) / (1 << 20) / secs);
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (!strcmp(o.mode, "seqwrite"))
		return cmd_seqwrite(&o);
	return cmd_random(&o, !strcmp(o.mode, "verify"), !strcmp(o.mode, "randwrite"));
}
