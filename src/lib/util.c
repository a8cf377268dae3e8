#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

int read_file(const char *path, size_t max_size, void **data, size_t *size, vt_err *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vt_fail_errno(err, errno, "cannot stat %s", path);
	if (!S_ISREG(st.st_mode))
		return vt_fail(err, "%s is not a regular file", path);
	if ((uint64_t)st.st_size > max_size)
		return vt_fail(err, "%s is too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max_size);
	size_t len = (size_t)st.st_size;
	cleanup_free char *buf = malloc(len + 1); /* NUL-terminated: text can be parsed in place */
	if (!buf)
		return vt_fail_errno(err, ENOMEM, "reading %s", path);
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "cannot read %s", path);
		if (n == 0)
			return vt_fail(err, "%s shrank while being read", path);
		done += (size_t)n;
	}
	buf[len] = '\0';
	*data = steal_ptr(buf);
	*size = len;
	return 0;
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *bytes, vt_err *err)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return vt_fail(err, "invalid size '%s'", s ? s : "");
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return vt_fail(err, "invalid size '%s'", s);
	unsigned shift = 0;
	if (*end) {
		const char *units = "KMGT";
		int letter = end[0] & ~0x20; /* upper-case it */
		const char *u = letter ? strchr(units, letter) : NULL;
		const char *rest = end + 1;
		if (!u || (*rest && strcmp(rest, "B") && strcmp(rest, "iB")))
			return vt_fail(err, "invalid size '%s' (use a number with K, M, G or T)", s);
		shift = 10 * (unsigned)(u - units + 1);
	}
	if (v == 0)
		return vt_fail(err, "size '%s' must be greater than zero", s);
	if (shift && v > (UINT64_MAX >> shift))
		return vt_fail(err, "size '%s' is too large", s);
	*bytes = (uint64_t)v << shift;
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = ECONNRESET;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool is_tmpfs(const char *path)
{
	struct statfs f;
	return !statfs(path, &f) && f.f_type == TMPFS_MAGIC;
}

bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	bool empty = true;
	for (struct dirent *e; empty && (e = readdir(d));)
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

int mkdir_on_tmpfs(const char *dir, mode_t mode)
{
	if (mkdir(dir, mode) && errno != EEXIST)
		return -1;
	if (is_tmpfs(dir))
		return 0;
	int below = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (below < 0)
		return -1;
	while (flock(below, LOCK_EX) && errno == EINTR)
		;
	char opts[32];
	snprintf(opts, sizeof(opts), "mode=%o,size=10%%", (unsigned)mode & 07777);
	/* A refusal (not root) is no error: the dir serves as it is. */
	if (!is_tmpfs(dir) && dir_is_empty(dir))
		mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
	close(below);
	return 0;
}
