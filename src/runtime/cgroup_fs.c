/* Reading and writing cgroup control files, creating and removing cgroup directories. */
#include "runtime/cgroup_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/util.h"

static int join_path(const char *dir, const char *file, char *buf, size_t len, vt_err *err)
{
	int n = snprintf(buf, len, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= len)
		return vt_fail(err, "cgroup path too long: %s/%s", dir, file);
	return 0;
}

int rt_cg_write(const char *dir, const char *file, const char *value, vt_err *err)
{
	char path[4096];
	if (join_path(dir, file, path, sizeof(path), err) < 0)
		return -1;
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	/* Control files take one value per write(2); a short write is an error, not a partial value. */
	ssize_t n = write(fd, value, strlen(value));
	if (n < 0)
		return vt_fail_errno(err, errno, "writing '%s' to %s", value, path);
	return 0;
}

int rt_cg_read(const char *dir, const char *file, char *buf, size_t len, vt_err *err)
{
	char path[4096];
	if (join_path(dir, file, path, sizeof(path), err) < 0)
		return -1;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open %s", path);
	size_t done = 0;
	while (done + 1 < len) {
		ssize_t n = read(fd, buf + done, len - 1 - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vt_fail_errno(err, errno, "cannot read %s", path);
		if (n == 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	return 0;
}

bool rt_cg_file_exists(const char *dir, const char *file)
{
	char path[4096];
	if (join_path(dir, file, path, sizeof(path), NULL) < 0)
		return false;
	return access(path, F_OK) == 0;
}

static int remember_dir(char ***created, size_t *ncreated, const char *dir, vt_err *err)
{
	char **grown = realloc(*created, (*ncreated + 1) * sizeof(**created));
	if (!grown)
		return vt_fail_errno(err, ENOMEM, "creating cgroup %s", dir);
	*created = grown;
	grown[*ncreated] = strdup(dir);
	if (!grown[*ncreated])
		return vt_fail_errno(err, ENOMEM, "creating cgroup %s", dir);
	(*ncreated)++;
	return 0;
}

int rt_cg_mkdir_p(const char *mount, const char *path, char ***created, size_t *ncreated, vt_err *err)
{
	char dir[4096];
	int n = snprintf(dir, sizeof(dir), "%s%s", mount, path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return vt_fail(err, "cgroup path too long: %s%s", mount, path);
	/* Walk every '/' after the mount point, creating each level in turn. */
	for (char *p = dir + strlen(mount) + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(dir, 0755) == 0) {
			if (remember_dir(created, ncreated, dir, err) < 0)
				return -1;
		} else if (errno != EEXIST) {
			return vt_fail_errno(err, errno, "cannot create cgroup %s", dir);
		}
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

int rt_cg_rmdir(const char *dir, vt_err *err)
{
	/* A cgroup whose last task is still exiting stays busy for a moment: back off from 0.5 ms (the common
	 * case, right after the container's exit) up to 20 ms steps, about 2 s in all. */
	long wait_ns = 500 * 1000, waited_ns = 0;
	for (;;) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited_ns >= 2000L * 1000 * 1000)
			return vt_fail_errno(err, errno, "cannot remove cgroup %s", dir);
		nanosleep(&(struct timespec){ .tv_nsec = wait_ns }, NULL);
		waited_ns += wait_ns;
		wait_ns = MIN(wait_ns * 2, 20L * 1000 * 1000);
	}
}

int rt_cg_rmdir_tree(const char *dir, vt_err *err)
{
	/* Children first: cgroups the container made inside its own (cgroup namespaces allow that). */
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : vt_fail_errno(err, errno, "cannot list cgroup %s", dir);
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char sub[4096];
		int n = snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		rc = n < 0 || (size_t)n >= sizeof(sub) ? vt_fail(err, "cgroup path too long: %s/%s", dir, e->d_name) :
							 rt_cg_rmdir_tree(sub, err);
	}
	closedir(d);
	return rc < 0 ? -1 : rt_cg_rmdir(dir, err);
}
