/* libFuzzer target for the qcow2 parser and mapping (block/qcow2.c): the input is a whole image file. It
 * is opened for writing (header, extensions, backing name, L1 and refcount tables are checked), then read
 * at a few offsets, written once (allocation, copy-on-write, refcount updates, table growth) and discarded
 * once; mappings for requests in place (qcow2_map_direct) are taken and used. A crafted image must give a clear refusal or I/O errors: never a crash, a hang or an out-of-bounds
 * access (ASan). Backing files named by the input are opened read-only, as the VMM would. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "lib/util.h"

/* What io_uring would do with a mapping in place: a transfer at that offset, then the hold dropped. A
 * mapping must lie inside the file. */
static void in_place(struct qcow2 *q, bool write, uint64_t off, size_t len)
{
	static uint8_t buf[2 * 65536];
	int fd;
	uint64_t host;
	if (!qcow2_map_direct(q, write, off, len, &fd, &host))
		return;
	if (lseek(fd, 0, SEEK_END) < (off_t)(host + len))
		abort();
	if ((write ? pwrite(fd, buf, len, (off_t)host) : pread(fd, buf, len, (off_t)host)) != (ssize_t)len)
		abort();
	qcow2_direct_done(q);
}

static void exercise(struct qcow2 *q, const uint8_t *data, size_t size)
{
	static uint8_t buf[2 * 65536];
	uint64_t vsize = qcow2_size(q);
	uint64_t pick = size >= 8 ? (uint64_t)data[size - 1] << 16 | (uint64_t)data[size - 2] << 8 | data[size - 3] : 0;
	uint64_t offs[3] = { 0, pick * 512, vsize > sizeof(buf) ? vsize - sizeof(buf) : 0 };
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
		uint64_t off = MIN(offs[i], vsize), len = MIN((uint64_t)sizeof(buf), vsize - off);
		struct iovec v = { buf, (size_t)len };
		if (len)
			qcow2_io(q, false, &v, 1, off, (size_t)len);
		in_place(q, i == 1, off, (size_t)len);
	}
	uint64_t woff = MIN(pick * 512, vsize), wlen = MIN((uint64_t)6000, vsize - woff);
	memset(buf, 0xa5, sizeof(buf));
	struct iovec v = { buf, (size_t)wlen };
	if (wlen)
		qcow2_io(q, true, &v, 1, woff, (size_t)wlen);
	if (vsize)
		qcow2_zero(q, 0, MIN(vsize, (uint64_t)1 << 20), QCOW2_DISCARD);
	if (vsize > 65536)
		qcow2_zero(q, 65536, MIN(vsize - 65536, (uint64_t)1 << 20), QCOW2_ZERO_KEEP);
	qcow2_flush(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.qcow2", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	struct qcow2 *q;
	vt_err err;
	if (qcow2_open(fd, "/nonexistent-fuzz-dir/fuzz.qcow2", false, &q, &err) == 0) {
		exercise(q, data, size);
		qcow2_close(q);
	}
	close(fd);
	return 0;
}
