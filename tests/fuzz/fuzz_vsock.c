/* libFuzzer target for virtio-vsock's transmit path (what a hostile guest controls): the input is a series
 * of packets, each a descriptor chain of 1..4 readable segments (each its own heap block, so ASan sees any
 * access past a descriptor). A flags byte per packet may force the addresses and type a real guest would
 * use, so the fuzzer reaches connection state (REQUEST to a real listening Unix socket, RW, SHUTDOWN, ...)
 * and not only the early rejections. After every input the device is reset: connections and fds must all
 * go (checked), so nothing leaks or piles up across inputs.
 * Build and run: tests/fuzz/run-fuzz-vsock.sh [seconds]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "lib/util.h"

#define MAX_FUZZ_SEGS 4
#define GUEST_CID     3

/* Without a transport the device never touches a queue: these are never reached. */
int virtq_pop(struct virtq *q, struct virtq_chain *c) { (void)q, (void)c; abort(); }
void virtq_push(struct virtq *q, uint16_t head, uint32_t written) { (void)q, (void)head, (void)written; abort(); }
void virtq_unpop(struct virtq *q, unsigned n) { (void)q, (void)n; abort(); }
bool virtq_enable_notify(struct virtq *q, bool enable) { (void)q, (void)enable; abort(); }
void virtio_queue_interrupt(struct virtio_device *d, unsigned q, bool force) { (void)d, (void)q, (void)force; abort(); }
void virtio_mark_broken(struct virtio_device *d, const char *why) { (void)d, (void)why; abort(); }
int virtio_pass_pop(struct virtio_pass *p, struct virtq_chain *c) { (void)p, (void)c; abort(); }
void virtio_queue_reschedule(struct virtio_device *d, unsigned q) { (void)d, (void)q; abort(); }
bool virtio_queue_live(const struct virtio_device *d, unsigned q) { (void)d, (void)q; abort(); }

struct fixture {
	struct virtio_device *dev;
	int listen_fd;             /* PATH_5000: guest REQUESTs to port 5000 succeed */
	char dir[32], path5000[96];
};

static struct fixture f;

/* libFuzzer ends with exit(): leave no socket or directory behind in /tmp. */
static void remove_fixture(void)
{
	virtio_vsock_destroy(f.dev); /* removes PATH */
	close(f.listen_fd);
	unlink(f.path5000);
	rmdir(f.dir);
}

static struct fixture *fixture(void)
{
	if (f.dev)
		return &f;
	char path[96];
	snprintf(f.dir, sizeof(f.dir), "/tmp/fuzz-vsock.XXXXXX");
	if (!mkdtemp(f.dir))
		abort();
	snprintf(path, sizeof(path), "%s/v.sock", f.dir);
	vt_err err;
	if (virtio_vsock_create(GUEST_CID, path, &f.dev, &err) < 0)
		abort();
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(f.path5000, sizeof(f.path5000), "%s_5000", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path5000);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (f.listen_fd < 0 || bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f.listen_fd, 4096) < 0)
		abort();
	atexit(remove_fixture);
	return &f;
}

/* Segment lengths 1..64, or multiples of 512 up to 32 KiB so payload-sized chains are reachable. */
static size_t seg_len(uint8_t code)
{
	return code < 192 ? (size_t)(code % 64) + 1 : (size_t)(code - 191) * 512;
}

/* One packet from the input; returns the bytes consumed, 0 when the input is used up. */
static size_t one_packet(struct fixture *fx, const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	unsigned nsegs = data[1] % MAX_FUZZ_SEGS + 1;
	size_t used = 2;
	if (size < used + nsegs)
		return 0;
	const uint8_t *lens = data + used;
	used += nsegs;
	static struct virtq_chain chain; /* 16 KiB: keep it off the stack */
	memset(&chain, 0, sizeof(chain));
	for (unsigned i = 0; i < nsegs; i++) {
		size_t len = seg_len(lens[i]), take = MIN(len, size - used);
		uint8_t *p = calloc(1, len);
		memcpy(p, data + used, take);
		used += take;
		chain.iov[i] = (struct iovec){ p, len };
		chain.nread++, chain.read_len += len;
	}
	struct vsock_hdr h;
	if (chain.iov[0].iov_len >= sizeof(h)) { /* make the header plausible when the flags say so */
		memcpy(&h, chain.iov[0].iov_base, sizeof(h));
		if (flags & 1)
			h.src_cid = GUEST_CID, h.dst_cid = VSOCK_HOST_CID;
		if (flags & 2)
			h.type = VSOCK_TYPE_STREAM, h.op = (uint16_t)(h.op % 8);
		if (flags & 4)
			h.dst_port = 5000, h.src_port %= 4;
		if (flags & 8)
			h.len = (uint32_t)(chain.read_len - sizeof(h));
		memcpy(chain.iov[0].iov_base, &h, sizeof(h));
	}
	virtio_vsock_tx_packet(fx->dev, &chain);
	for (unsigned i = 0; i < nsegs; i++)
		free(chain.iov[i].iov_base);
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fixture *fx = fixture();
	int hosts[64], nhosts = 0;
	for (size_t n; (n = one_packet(fx, data, size)) > 0; data += n, size -= n)
		for (int fd; nhosts < 64 && (fd = accept(fx->listen_fd, NULL, NULL)) >= 0;)
			hosts[nhosts++] = fd; /* keep the host ends open while the input runs */
	fx->dev->ops->reset(fx->dev);
	if (virtio_vsock_nconns(fx->dev))
		abort();
	for (int fd; (fd = accept(fx->listen_fd, NULL, NULL)) >= 0;)
		close(fd);
	for (int i = 0; i < nhosts; i++)
		close(hosts[i]);
	return 0;
}
