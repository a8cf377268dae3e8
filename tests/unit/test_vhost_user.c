/* The vhost-user frontend (devices/virtio/vhost_user.h) against a fake backend on a socketpair: the message
 * sequence, the file descriptors that travel with it (the memory table's fd maps the same bytes), replies
 * checked, and a backend that answers wrongly or goes away is an error, not a hang or a crash. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/vhost_user.h"

#define NEED_REPLY (1u << 3)
#define REPLY (1u << 2)

enum fake_mode { FAKE_GOOD, FAKE_WRONG_REPLY, FAKE_HANG_UP };

struct fake {
	int fd;
	enum fake_mode mode;
	unsigned requests[64], n;
	unsigned fds_with[64];            /* fds received with each request */
	char mem_seen[16];                /* first bytes of the shared memory, read through the received fd */
	uint64_t features_set;
	uint64_t ring_addr[4];            /* index, desc, used, avail of the last SET_VRING_ADDR */
};

static void reply(int fd, uint32_t req, const void *payload, uint32_t size)
{
	uint8_t buf[64];
	uint32_t h[3] = { req, 0x1 | REPLY, size };
	memcpy(buf, h, sizeof(h));
	memcpy(buf + sizeof(h), payload, size);
	assert_int_equal(write(fd, buf, sizeof(h) + size), (ssize_t)(sizeof(h) + size));
}

static void on_mem_table(struct fake *f, const uint8_t *payload, int fd)
{
	uint64_t size, offset;
	memcpy(&size, payload + 8 + 8, 8);
	memcpy(&offset, payload + 8 + 24, 8);
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, (off_t)offset);
	if (p != MAP_FAILED) {
		memcpy(f->mem_seen, p, sizeof(f->mem_seen) - 1);
		munmap(p, size);
	}
}

static void *backend(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		uint8_t buf[512];
		char cbuf[CMSG_SPACE(sizeof(int) * 8)];
		struct iovec iov = { buf, 12 };  /* the header (and the fds sent with it), then its payload */
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		if (recvmsg(f->fd, &h, MSG_WAITALL) != 12)
			break;
		uint32_t req, flags, size;
		memcpy(&req, buf, 4), memcpy(&flags, buf + 4, 4), memcpy(&size, buf + 8, 4);
		if (size > sizeof(buf) - 12 || (size && recv(f->fd, buf + 12, size, MSG_WAITALL) != (ssize_t)size))
			break;
		struct cmsghdr *c = CMSG_FIRSTHDR(&h);
		int nfds = c ? (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0, fd0 = -1;
		if (nfds)
			memcpy(&fd0, CMSG_DATA(c), sizeof(int));
		f->requests[f->n] = req, f->fds_with[f->n] = (unsigned)nfds;
		f->n++;
		if (f->mode == FAKE_HANG_UP && req == 1)
			break;
		uint64_t v;
		if (req == 1) { /* GET_FEATURES */
			v = (1ULL << 30) | (1ULL << 29) | (1ULL << 32);
			reply(f->fd, f->mode == FAKE_WRONG_REPLY ? 15 : 1, &v, 8);
		} else if (req == 15) { /* GET_PROTOCOL_FEATURES: REPLY_ACK and MQ */
			v = (1ULL << 3) | 1;
			reply(f->fd, 15, &v, 8);
		} else if (req == 11) { /* GET_VRING_BASE */
			uint32_t st[2] = { 1, 42 };
			reply(f->fd, 11, st, 8);
		} else {
			if (req == 2)
				memcpy(&f->features_set, buf + 12, 8);
			if (req == 5)
				on_mem_table(f, buf + 12, fd0);
			if (req == 9) {
				uint32_t index;
				memcpy(&index, buf + 12, 4);
				f->ring_addr[0] = index;
				memcpy(&f->ring_addr[1], buf + 12 + 8, 24);
			}
			if (flags & NEED_REPLY) {
				v = 0;
				reply(f->fd, req, &v, 8);
			}
		}
		for (int i = 0; i < nfds; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
	close(f->fd);
	return NULL;
}

static pthread_t start_fake(struct fake *f, enum fake_mode mode, int *front)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*f = (struct fake){ .fd = sv[1], .mode = mode };
	*front = sv[0];
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, backend, f), 0);
	return t;
}

static void handshake_memory_and_rings(void **state)
{
	(void)state;
	struct fake f;
	int front;
	pthread_t t = start_fake(&f, FAKE_GOOD, &front);
	struct vhost_user v;
	vt_err err = { 0 };
	assert_int_equal(vhu_open_fd(&v, front, &err), 0);
	assert_true(v.features & (1ULL << VHU_F_PROTOCOL_FEATURES));
	assert_int_equal(v.protocol, 1ULL << VHU_PROTOCOL_F_REPLY_ACK); /* MQ offered, not taken */

	int mfd = memfd_create("ram", MFD_CLOEXEC);
	assert_int_equal(ftruncate(mfd, 1 << 20), 0);
	char *ram = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	strcpy(ram, "guest-bytes");
	struct vhu_region r = { .gpa = 0, .size = 1 << 20, .hva = (uintptr_t)ram, .offset = 0, .fd = mfd };
	int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	uint32_t base = 0;
	assert_int_equal(vhu_set_features(&v, (1ULL << 32) | (1ULL << 30), &err), 0);
	assert_int_equal(vhu_set_mem_table(&v, &r, 1, &err), 0);
	assert_int_equal(vhu_start_ring(&v, 1, 256, 0x1000, 0x2000, 0x3000, kick, call, &err), 0);
	assert_int_equal(vhu_stop_ring(&v, 1, &base, &err), 0);
	assert_int_equal(base, 42);
	vhu_close(&v);
	pthread_join(t, NULL);

	static const unsigned want[] = { 3, 1, 15, 16, 2, 5, 8, 10, 9, 12, 13, 18, 11 };
	assert_int_equal(f.n, sizeof(want) / sizeof(want[0]));
	for (unsigned i = 0; i < f.n; i++)
		assert_int_equal(f.requests[i], want[i]);
	assert_int_equal(f.fds_with[5], 1);  /* SET_MEM_TABLE: the memfd */
	assert_int_equal(f.fds_with[9], 1);  /* SET_VRING_KICK */
	assert_int_equal(f.fds_with[10], 1); /* SET_VRING_CALL */
	assert_string_equal(f.mem_seen, "guest-bytes");
	assert_int_equal(f.features_set, (1ULL << 32) | (1ULL << 30));
	assert_int_equal(f.ring_addr[0], 1);
	assert_int_equal(f.ring_addr[1], 0x1000); /* desc */
	assert_int_equal(f.ring_addr[2], 0x3000); /* used */
	assert_int_equal(f.ring_addr[3], 0x2000); /* avail */
	munmap(ram, 1 << 20);
	close(mfd), close(kick), close(call);
}

static void a_reply_to_another_request_is_an_error(void **state)
{
	(void)state;
	struct fake f;
	int front;
	pthread_t t = start_fake(&f, FAKE_WRONG_REPLY, &front);
	struct vhost_user v;
	vt_err err = { 0 };
	assert_int_equal(vhu_open_fd(&v, front, &err), -1);
	assert_non_null(strstr(err.msg, "malformed reply"));
	assert_int_equal(v.fd, -1);
	pthread_join(t, NULL);
}

static void a_backend_that_hangs_up_is_an_error(void **state)
{
	(void)state;
	struct fake f;
	int front;
	pthread_t t = start_fake(&f, FAKE_HANG_UP, &front);
	struct vhost_user v;
	vt_err err = { 0 };
	assert_int_equal(vhu_open_fd(&v, front, &err), -1);
	assert_non_null(strstr(err.msg, "closed the connection"));
	pthread_join(t, NULL);
	vt_err err2 = { 0 };
	assert_int_equal(vhu_set_features(&v, 0, &err2), -1); /* no send on a closed frontend */
}

/* The real backend this frontend is for: Debian's virtiofsd (skipped where it is not installed or we are not
 * root, which it needs). Handshake, memory, one ring started and stopped. */
static void debian_virtiofsd_accepts_the_sequence(void **state)
{
	(void)state;
	if (access("/usr/lib/qemu/virtiofsd", X_OK) || geteuid()) {
		skip();
		return;
	}
	char dir[] = "/tmp/vt-vhu.XXXXXX", sock[64];
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/s", dir);
	pid_t pid = fork();
	if (pid == 0) {
		char src[64], path[80];
		snprintf(src, sizeof(src), "source=%s", dir);
		snprintf(path, sizeof(path), "--socket-path=%s", sock);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execl("/usr/lib/qemu/virtiofsd", "virtiofsd", path, "-o", src, "-o", "sandbox=chroot",
		      (char *)NULL);
		_exit(127);
	}
	struct vhost_user v;
	vt_err err = { 0 };
	int rc = -1;
	for (int i = 0; i < 100 && rc; i++) { /* it creates the socket once it is ready */
		rc = vhu_connect(&v, sock, &err);
		if (rc)
			usleep(20000);
	}
	assert_int_equal(rc, 0);
	assert_true(v.features & (1ULL << 32)); /* VERSION_1 */
	int mfd = memfd_create("ram", MFD_CLOEXEC);
	assert_int_equal(ftruncate(mfd, 1 << 20), 0);
	void *ram = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	struct vhu_region r = { .gpa = 0, .size = 1 << 20, .hva = (uintptr_t)ram, .offset = 0, .fd = mfd };
	int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	uintptr_t base = (uintptr_t)ram;
	uint32_t last = 7;
	assert_int_equal(vhu_set_features(&v, (1ULL << 32) | (v.features & (1ULL << VHU_F_PROTOCOL_FEATURES)), &err), 0);
	assert_int_equal(vhu_set_mem_table(&v, &r, 1, &err), 0);
	assert_int_equal(vhu_start_ring(&v, 1, 128, base, base + 0x1000, base + 0x2000, kick, call, &err), 0);
	assert_int_equal(vhu_stop_ring(&v, 1, &last, &err), 0);
	assert_int_equal(last, 0); /* nothing was posted */
	vhu_close(&v);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	munmap(ram, 1 << 20);
	close(mfd), close(kick), close(call);
	unlink(sock);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handshake_memory_and_rings),
		cmocka_unit_test(a_reply_to_another_request_is_an_error),
		cmocka_unit_test(a_backend_that_hangs_up_is_an_error),
		cmocka_unit_test(debian_virtiofsd_accepts_the_sequence),
	};
	return cmocka_run_group_tests_name("vhost_user", tests, NULL, NULL);
}
