/* The container's root file system, built inside its own mount namespace.
 * Every mount destination is resolved under the root with openat2(RESOLVE_IN_ROOT), so a symlink in the
 * image can never send a mount outside it; the mount then targets /proc/self/fd/N of that exact inode. */
#include "runtime/rt.h"

#include "runtime/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static bool same_inode(int a, int b)
{
	struct stat sa, sb;
	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* One step of the walk: enter `name` from *cur, or queue a symlink's target in front of *rest. */
static int walk_step(int rootfd, int *cur, const char *name, char **rest, int *links)
{
	if (!strcmp(name, "..") && same_inode(*cur, rootfd))
		return 0; /* ".." at the root stays at the root */
	int next = openat(*cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (next < 0)
		return -1;
	struct stat st;
	if (fstat(next, &st)) {
		close(next);
		return -1;
	}
	if (!S_ISLNK(st.st_mode)) {
		close(*cur);
		*cur = next;
		return 0;
	}
	char target[4096];
	ssize_t n = readlinkat(next, "", target, sizeof(target) - 1);
	close(next);
	if (n < 0 || ++*links > 40)
		return n < 0 ? -1 : (errno = ELOOP, -1);
	target[n] = 0;
	char *joined;
	if (asprintf(&joined, "%s/%s", target, *rest ? *rest : "") < 0)
		return -1;
	free(*rest);
	*rest = joined;
	if (target[0] == '/') { /* absolute: from the container's root */
		int r = dup(rootfd);
		if (r < 0)
			return -1;
		close(*cur);
		*cur = r;
	}
	return 0;
}

int rt_rootfs_resolve_walk(int rootfd, const char *path, vt_err *err)
{
	char *rest = strdup(path);
	int cur = dup(rootfd), links = 0, rc = 0;
	if (!rest || cur < 0)
		rc = -1;
	while (!rc && rest && *rest) {
		char *slash = strchr(rest, '/');
		char *tail = slash ? strdup(slash + 1) : NULL;
		if (slash)
			*slash = 0;
		char *name = rest;
		rest = tail;
		if (slash && !tail)
			rc = -1;
		else if (*name && strcmp(name, "."))
			rc = walk_step(rootfd, &cur, name, &rest, &links);
		free(name);
	}
	int e = errno;
	free(rest);
	if (rc) {
		if (cur >= 0)
			close(cur);
		return vt_fail_errno(err, e, "cannot resolve '%s' in the container root", path);
	}
	return cur;
}

static int open_in_root(int rootfd, const char *path, vt_err *err)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	while (*path == '/')
		path++;
	int fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
	/* Kernels before 5.6: walk component by component, with the same confinement. */
	if (fd < 0 && (errno == ENOSYS || errno == E2BIG))
		return rt_rootfs_resolve_walk(rootfd, path, err);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot resolve '/%s' in the container root", path);
	return fd;
}

static int ensure_depth(int rootfd, const char *path, bool dir, int depth, vt_err *err);

/* The last component exists but does not resolve: it is a dangling symlink. Create its target, still
 * resolved under the root (an absolute target means the container's root, not the host's). */
static int ensure_link_target(int rootfd, int parent, const char *parent_path, const char *last, bool dir,
			      int depth, vt_err *err)
{
	char target[4096];
	ssize_t n = readlinkat(parent, last, target, sizeof(target) - 1);
	if (n < 0)
		return vt_fail_errno(err, errno, "cannot create '%s/%s' in the container root", parent_path, last);
	target[n] = 0;
	cleanup_free char *next = NULL;
	if (target[0] == '/' ? !(next = strdup(target)) : asprintf(&next, "%s/%s", parent_path, target) < 0)
		return vt_fail_errno(err, ENOMEM, "resolving %s", last);
	return ensure_depth(rootfd, next, dir, depth + 1, err);
}

static int ensure_depth(int rootfd, const char *path, bool dir, int depth, vt_err *err)
{
	if (depth > 40)
		return vt_fail_errno(err, ELOOP, "cannot resolve '%s' in the container root", path);
	int fd = open_in_root(rootfd, path, err);
	if (fd >= 0 || err->errnum != ENOENT)
		return fd;
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "resolving %s", path);
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = 0;
	char *slash = strrchr(copy, '/');
	const char *last = slash ? slash + 1 : copy;
	if (slash)
		*slash = 0;
	const char *parent_path = slash ? copy : "";
	if (!*last || !strcmp(last, ".") || !strcmp(last, ".."))
		return vt_fail(err, "cannot create '%s' in the container root", path);
	cleanup_close int parent = ensure_depth(rootfd, parent_path, true, depth + 1, err);
	if (parent < 0)
		return -1;
	int rc;
	if (dir) {
		rc = mkdirat(parent, last, 0755);
	} else {
		rc = openat(parent, last, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (rc >= 0)
			close(rc);
	}
	struct stat st;
	if (rc < 0 && errno == EEXIST && !fstatat(parent, last, &st, AT_SYMLINK_NOFOLLOW) && S_ISLNK(st.st_mode))
		return ensure_link_target(rootfd, parent, parent_path, last, dir, depth, err);
	if (rc < 0 && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create '%s' in the container root", path);
	return open_in_root(rootfd, path, err);
}

int rt_rootfs_ensure(int rootfd, const char *path, bool dir, vt_err *err)
{
	return ensure_depth(rootfd, path, dir, 0, err);
}

static int ensure_in_root(int rootfd, const char *path, bool dir, vt_err *err)
{
	return rt_rootfs_ensure(rootfd, path, dir, err);
}

static void fd_path(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/* Flags that a less privileged mount namespace may not drop when remounting (they are "locked"). */
static unsigned long locked_flags(const char *target)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(target, &sv))
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int remount_bind(const char *target, unsigned long flags, const char *what, vt_err *err)
{
	unsigned long keep = locked_flags(target) & ~(unsigned long)MS_RDONLY;
	if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | keep | flags, NULL))
		return vt_fail_errno(err, errno, "%s: cannot remount with the requested flags", what);
	return 0;
}

static bool is_cgroup2_host(void)
{
	struct statfs sf;
	return !statfs("/sys/fs/cgroup", &sf) && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* One hierarchy of a v1/hybrid view: the container's own cgroup bound at <tmpfs>/<name>, as the cgroup
 * namespace would show a v2 tree, plus a link for each controller of a combined name ("cpu" -> "cpu,cpuacct"). */
static int bind_cgroup_view(int tmpfs, const char *target, const struct rt_cgroup_view *v, unsigned long flags,
			    const char *what, vt_err *err)
{
	char path[4096];
	if (mkdirat(tmpfs, v->name, 0755) && errno != EEXIST)
		return vt_fail_errno(err, errno, "%s: cannot create %s/%s", what, target, v->name);
	snprintf(path, sizeof(path), "%s/%s", target, v->name);
	if (mount(v->dir, path, NULL, MS_BIND, NULL))
		return vt_fail_errno(err, errno, "%s: cannot bind the container's cgroup %s", what, v->dir);
	unsigned long keep = MS_NOSUID | MS_NODEV | MS_NOEXEC | (flags & MS_RDONLY);
	if (remount_bind(path, keep, what, err))
		return -1;
	if (!strchr(v->name, ','))
		return 0;
	cleanup_free char *names = strdup(v->name);
	char *save = NULL;
	for (char *c = names ? strtok_r(names, ",", &save) : NULL; c; c = strtok_r(NULL, ",", &save))
		if (symlinkat(v->name, tmpfs, c) && errno != EEXIST)
			return vt_fail_errno(err, errno, "%s: cannot link %s to %s", what, c, v->name);
	return 0;
}

/* v1/hybrid host: a tmpfs with each hierarchy's view of the container's own cgroup (read-only unless the
 * mount says rw), as runc and crun show it. `target` names the new tmpfs (looked up after the mount); it takes
 * the mount's flags once it is filled. */
static int fill_cgroup_views(const struct rt_mount *m, const char *target, const struct rt_rootfs_opts *o,
			     const char *what, vt_err *err)
{
	unsigned long flags = m->flags & ~(unsigned long)MS_REMOUNT;
	cleanup_close int dir = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return vt_fail_errno(err, errno, "%s: cannot open %s", what, m->destination);
	for (size_t i = 0; i < o->n_cgroup_views; i++)
		if (bind_cgroup_view(dir, target, &o->cgroup_views[i], flags, what, err))
			return -1;
	if ((flags & MS_RDONLY) &&
	    mount(NULL, target, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | flags, "mode=755"))
		return vt_fail_errno(err, errno, "%s: cannot make %s read-only", what, m->destination);
	return 0;
}

/* Mount a file system; *bound says a bind was used instead (it still needs the flags by remount). */
static int mount_special(const struct rt_mount *m, const char *target, const struct rt_rootfs_opts *o,
			 const char *what, bool *bound, vt_err *err)
{
	const char *type = m->type, *source = m->source;
	unsigned long flags = m->flags & ~(unsigned long)MS_REMOUNT;
	if (!strcmp(type, "cgroup") || !strcmp(type, "cgroup2")) {
		if (is_cgroup2_host()) {
			type = "cgroup2";
			source = "cgroup2";
		} else if (o->n_cgroup_views) {
			/* filled by fill_cgroup_views once the destination is looked up again */
			if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755"))
				return vt_fail_errno(err, errno, "%s: cannot mount a tmpfs on %s", what, m->destination);
			return 0;
		} else {
			/* v1/hybrid host: show the host's hierarchies read-only rather than an empty dir. */
			if (mount("/sys/fs/cgroup", target, NULL, MS_BIND | MS_REC, NULL))
				return vt_fail_errno(err, errno, "%s: cannot bind /sys/fs/cgroup", what);
			*bound = true;
			return 0;
		}
	}
	if (!mount(source, target, type, flags, m->data))
		return 0;
	int e = errno;
	/* sysfs refuses a mount from a user namespace that does not own the network namespace. */
	if (!strcmp(type, "sysfs") && e == EPERM) {
		if (mount("/sys", target, NULL, MS_BIND | MS_REC, NULL))
			return vt_fail_errno(err, errno, "%s: cannot mount sysfs nor bind /sys", what);
		*bound = true;
		return 0;
	}
	return vt_fail_errno(err, e, "%s: cannot mount %s on %s", what, type, m->destination);
}

static int copy_tree(int src, int dst, int depth);

static int copy_file(int src, int dst, const char *name, const struct stat *st)
{
	cleanup_close int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	cleanup_close int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
	if (in < 0 || out < 0)
		return -1;
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n))
			return -1;
	return n < 0 ? -1 : 0;
}

static int copy_entry(int src, int dst, const char *name, int depth)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW))
		return -1;
	int rc = 0;
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dst, name, st.st_mode & 07777))
			return -1;
		cleanup_close int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		cleanup_close int d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = s < 0 || d < 0 ? -1 : copy_tree(s, d, depth + 1);
	} else if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			return -1;
		target[n] = 0;
		rc = symlinkat(target, dst, name);
	} else if (S_ISREG(st.st_mode)) {
		rc = copy_file(src, dst, name, &st);
	} else {
		return 0; /* devices, sockets, fifos: not worth copying into a fresh tmpfs */
	}
	if (!rc)
		rc = fchownat(dst, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
	return rc;
}

/* tmpcopyup: the image's files at a tmpfs destination are copied into the new tmpfs. */
static int copy_tree(int src, int dst, int depth)
{
	if (depth > 64)
		return -1;
	int dfd = dup(src);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = copy_entry(src, dst, e->d_name, depth);
	closedir(d);
	return rc;
}

static int reopen_dir(int opath_fd)
{
	char p[64];
	fd_path(opath_fd, p, sizeof(p));
	return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int mount_one(int rootfd, const struct rt_mount *m, size_t i, const struct rt_rootfs_opts *o, vt_err *err)
{
	char what[64], target[64];
	snprintf(what, sizeof(what), "mounts[%zu]", i);
	bool dir = true, bound = m->bind;
	if (m->bind) {
		struct stat st;
		if (stat(m->source, &st))
			return vt_fail_errno(err, errno, "%s.source '%s'", what, m->source);
		dir = S_ISDIR(st.st_mode);
	}
	cleanup_close int fd = ensure_in_root(rootfd, m->destination, dir, err);
	if (fd < 0)
		return vt_err_prefix(err, "%s.destination", what);
	fd_path(fd, target, sizeof(target));
	cleanup_close int lower = m->tmpcopyup ? reopen_dir(fd) : -1;
	if (m->tmpcopyup && lower < 0)
		return vt_fail_errno(err, errno, "%s: tmpcopyup needs a directory at %s", what, m->destination);
	if (m->bind) {
		if (mount(m->source, target, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL))
			return vt_fail_errno(err, errno, "%s: cannot bind %s to %s", what, m->source, m->destination);
	} else if (mount_special(m, target, o, what, &bound, err)) {
		return -1;
	}
	/* The fd still names the covered directory; look the destination up again to reach the new mount. */
	cleanup_close int top = open_in_root(rootfd, m->destination, err);
	if (top < 0)
		return -1;
	fd_path(top, target, sizeof(target));
	if (!m->bind && !strncmp(m->type, "cgroup", 6) && !is_cgroup2_host() && o->n_cgroup_views)
		return fill_cgroup_views(m, target, o, what, err);
	unsigned long extra = m->flags & ~(unsigned long)MS_REMOUNT;
	if (bound && !m->bind && !strncmp(m->type, "cgroup", 6))
		extra |= MS_RDONLY; /* the host's hierarchies, shown to the container: never writable */
	if (bound && extra && remount_bind(target, extra, what, err))
		return -1;
	if (m->tmpcopyup) {
		cleanup_close int upper = reopen_dir(top);
		if (upper < 0 || copy_tree(lower, upper, 0))
			return vt_fail_errno(err, errno, "%s: tmpcopyup of %s failed", what, m->destination);
	}
	if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL))
		return vt_fail_errno(err, errno, "%s: cannot set mount propagation", what);
	return 0;
}

static const char *const default_devices[] = { "null", "zero", "full", "random", "urandom", "tty" };

static const struct {
	const char *target, *name;
} default_links[] = {
	{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
	{ "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" }, { "/proc/kcore", "core" },
};

/* Device nodes are bind mounts of the host's: that works the same with and without a user namespace. */
static int setup_devices(int rootfd, vt_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
		char rel[32], host[32], target[64];
		snprintf(rel, sizeof(rel), "dev/%s", default_devices[i]);
		snprintf(host, sizeof(host), "/dev/%s", default_devices[i]);
		cleanup_close int fd = ensure_in_root(rootfd, rel, false, err);
		if (fd < 0)
			return vt_err_prefix(err, "device %s", host);
		fd_path(fd, target, sizeof(target));
		if (mount(host, target, NULL, MS_BIND, NULL))
			return vt_fail_errno(err, errno, "cannot bind device %s", host);
	}
	cleanup_close int dev = ensure_in_root(rootfd, "dev", true, err);
	if (dev < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(default_links); i++)
		if (symlinkat(default_links[i].target, dev, default_links[i].name) && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create /dev/%s", default_links[i].name);
	return 0;
}

/* linux.devices: mknod when we may (no user namespace), else a bind mount of the host's node. */
static int create_device(int rootfd, const struct rt_device *d, size_t i, vt_err *err)
{
	cleanup_free char *dir = strdup(d->path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (!slash)
		return vt_fail_errno(err, ENOMEM, "linux.devices[%zu]", i);
	*slash = 0;
	cleanup_close int parent = ensure_in_root(rootfd, dir, true, err);
	if (parent < 0)
		return vt_err_prefix(err, "linux.devices[%zu]", i);
	const char *name = slash + 1;
	unlinkat(parent, name, 0);
	if (!mknodat(parent, name, d->type | d->mode, makedev(d->major, d->minor))) {
		/* mknod honours our umask; the config's mode is exact. */
		if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) || fchmodat(parent, name, d->mode, 0))
			return vt_fail_errno(err, errno, "linux.devices[%zu]: chown/chmod %s", i, d->path);
		return 0;
	}
	if (errno != EPERM)
		return vt_fail_errno(err, errno, "linux.devices[%zu]: mknod %s", i, d->path);
	cleanup_close int fd = ensure_in_root(rootfd, d->path, false, err);
	char target[64];
	if (fd < 0)
		return vt_err_prefix(err, "linux.devices[%zu]", i);
	fd_path(fd, target, sizeof(target));
	if (mount(d->path, target, NULL, MS_BIND, NULL))
		return vt_fail_errno(err, errno, "linux.devices[%zu]: cannot bind the host's %s", i, d->path);
	return 0;
}

static int pivot_into(int rootfd, vt_err *err)
{
	if (fchdir(rootfd))
		return vt_fail_errno(err, errno, "cannot enter the rootfs");
	if (syscall(SYS_pivot_root, ".", "."))
		return vt_fail_errno(err, errno, "pivot_root failed (use --no-pivot on a ramfs root)");
	/* The old root is now stacked under "."; detach it without propagating the unmount to the host. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) || umount2(".", MNT_DETACH))
		return vt_fail_errno(err, errno, "cannot detach the old root");
	if (chdir("/"))
		return vt_fail_errno(err, errno, "chdir /");
	return 0;
}

static int move_into(const char *rootfs, int rootfd, vt_err *err)
{
	if (fchdir(rootfd))
		return vt_fail_errno(err, errno, "cannot enter the rootfs");
	if (mount(rootfs, "/", NULL, MS_MOVE, NULL))
		return vt_fail_errno(err, errno, "cannot move the rootfs to /");
	if (chroot(".") || chdir("/"))
		return vt_fail_errno(err, errno, "cannot chroot into the rootfs");
	return 0;
}

/* Without a mount namespace of our own, pivot_root would move the root of every process in the runtime's
 * namespace and MS_MOVE would move the host's mount: a chroot confines only the container. */
static int chroot_into(int rootfd, vt_err *err)
{
	if (fchdir(rootfd))
		return vt_fail_errno(err, errno, "cannot enter the rootfs");
	if (chroot(".") || chdir("/"))
		return vt_fail_errno(err, errno, "cannot chroot into the rootfs");
	return 0;
}

static int switch_root(const struct rt_spec *spec, const struct rt_rootfs_opts *o, int rootfd, vt_err *err)
{
	if (o->shared_mount_ns)
		return chroot_into(rootfd, err);
	return o->no_pivot ? move_into(spec->rootfs, rootfd, err) : pivot_into(rootfd, err);
}

int rt_mount_id(const char *path, uint64_t *id)
{
	struct statx sx;
	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx) || !(sx.stx_mask & STATX_MNT_ID))
		return -1;
	*id = sx.stx_mnt_id;
	return 0;
}

void rt_rootfs_release_shared(const char *rootfs, uint64_t base)
{
	uint64_t now;
	/* One layer: our bind. A lazy unmount takes every mount below it along. */
	if (rootfs && !rt_mount_id(rootfs, &now) && now != base)
		umount2(rootfs, MNT_DETACH);
}

static int mask_path(const char *path, vt_err *err)
{
	struct stat st;
	if (stat(path, &st))
		return 0; /* nothing to hide */
	int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
				     : mount("/dev/null", path, NULL, MS_BIND, NULL);
	if (rc)
		return vt_fail_errno(err, errno, "linux.maskedPaths: cannot mask %s", path);
	return 0;
}

static int readonly_path(const char *path, vt_err *err)
{
	if (access(path, F_OK))
		return 0;
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL))
		return vt_fail_errno(err, errno, "linux.readonlyPaths: cannot bind %s", path);
	return remount_bind(path, MS_RDONLY, "linux.readonlyPaths", err);
}

static int finish_root(const struct rt_spec *spec, vt_err *err)
{
	if (spec->rootfs_propagation && mount(NULL, "/", NULL, spec->rootfs_propagation, NULL))
		return vt_fail_errno(err, errno, "linux.rootfsPropagation");
	for (size_t i = 0; i < spec->n_masked_paths; i++)
		if (mask_path(spec->masked_paths[i], err))
			return -1;
	for (size_t i = 0; i < spec->n_readonly_paths; i++)
		if (readonly_path(spec->readonly_paths[i], err))
			return -1;
	if (spec->rootfs_readonly && remount_bind("/", MS_RDONLY, "root.readonly", err))
		return -1;
	return 0;
}

int rt_rootfs_setup(const struct rt_spec *spec, const struct rt_rootfs_opts *o, vt_err *err)
{
	/* Nothing we mount may propagate back to the host. In the runtime's own mount namespace "/" is the host's
	 * and stays as it is: only our bind of the rootfs is made private (and removed at delete). */
	if (!o->shared_mount_ns && mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL))
		return vt_fail_errno(err, errno, "cannot make / a slave mount");
	if (mount(spec->rootfs, spec->rootfs, NULL, MS_BIND | MS_REC, NULL))
		return vt_fail_errno(err, errno, "cannot bind the rootfs %s", spec->rootfs);
	if (o->shared_mount_ns && mount(NULL, spec->rootfs, NULL, MS_PRIVATE | MS_REC, NULL))
		return vt_fail_errno(err, errno, "cannot make the rootfs bind mount private");
	cleanup_close int rootfd = open(spec->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return vt_fail_errno(err, errno, "cannot open the rootfs %s", spec->rootfs);
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (mount_one(rootfd, &spec->mounts[i], i, o, err))
			return -1;
	if (setup_devices(rootfd, err))
		return -1;
	for (size_t i = 0; i < spec->n_devices; i++)
		if (create_device(rootfd, &spec->devices[i], i, err))
			return -1;
	if (o->before_switch && o->before_switch(o->arg, err))
		return -1;
	if (switch_root(spec, o, rootfd, err))
		return -1;
	return finish_root(spec, err);
}
