/* The command's side of running a container: mount its rootfs, reserve its network, fork its monitor and wait
 * for the monitor's word (and, in the foreground, for the container's end). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"


int ctr_error_status(const vt_err *err)
{
	if (!strncmp(err->msg, "process.args[0]", 15) || strstr(err->msg, ": process.args[0]"))
		return err->errnum == EACCES ? CTR_EXIT_CANNOT_RUN : CTR_EXIT_NOT_FOUND;
	return CTR_EXIT_ERROR;
}

static int mount_plain_rootfs(const char *lower, const char *upper, const char *work, const char *target,
			      bool scratch, vt_err *err)
{
	cleanup_free char *data = NULL;
	if (asprintf(&data, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0)
		return vt_fail_errno(err, ENOMEM, "mount");
	if (img_mount_overlay(data, scratch, target))
		return vt_fail_errno(err, errno, "cannot mount the overlay of %s at %s", lower, target);
	return 0;
}

static int mount_image_rootfs(const struct ctr_store *s, const char *image_id, const char *upper,
			      const char *work, const char *target, bool scratch, vt_err *err)
{
	struct img_store *st;
	struct img_image *img;
	if (img_store_open(s->root, &st, err))
		return -1;
	int rc = img_resolve(st, image_id, &img, err);
	if (!rc) {
		rc = img_mount(st, img, upper, work, target, scratch, err);
		img_image_free(img);
	}
	img_store_close(st);
	return rc;
}

int ctr_mount_rootfs(const struct ctr_store *s, const char *id, json_object *rec, struct img_store *store,
		     const struct img_image *img, vt_err *err)
{
	cleanup_free char *upper = ctr_path(s, id, "upper");
	cleanup_free char *work = ctr_path(s, id, "work");
	cleanup_free char *target = ctr_rootfs(s, id);
	if (!upper || !work || !target)
		return vt_fail_errno(err, ENOMEM, "mount");
	if (ctr_run_dir_make(s, id, err))
		return -1;
	if (mkdir(target, 0755) && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create %s", target);
	/* a --rm container's changes are thrown away: never synced */
	bool scratch = json_object_get_boolean(json_object_object_get(rec, "AutoRemove"));
	const char *lower = ctr_rec_str(rec, "Rootfs");
	if (*lower)
		return mount_plain_rootfs(lower, upper, work, target, scratch, err);
	if (store && img)
		return img_mount(store, img, upper, work, target, scratch, err);
	return mount_image_rootfs(s, ctr_rec_str(rec, "ImageId"), upper, work, target, scratch, err);
}

void ctr_unmount_rootfs(const struct ctr_store *s, const char *id)
{
	cleanup_free char *target = ctr_rootfs(s, id);
	if (target && umount2(target, 0) && errno == EBUSY)
		umount2(target, MNT_DETACH);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int ctr_remove_dir(const struct ctr_store *s, const char *id, vt_err *err)
{
	cleanup_free char *dir = ctr_dir(s, id);
	if (!dir)
		return vt_fail_errno(err, ENOMEM, "remove");
	ctr_unmount_rootfs(s, id);
	ctr_run_dir_remove(s, id);
	/* FTW_MOUNT: never descend into a mount (a bind that could not be unmounted). */
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) && errno != ENOENT)
		return vt_fail_errno(err, errno, "cannot remove %s", dir);
	if (!access(dir, F_OK))
		return vt_fail(err, "cannot remove all of %s", dir);
	return 0;
}

int ctr_record_update(const struct ctr_store *s, const char *id, void (*fn)(json_object *rec, void *arg), void *arg,
		      vt_err *err)
{
	cleanup_close int lock = ctr_lock(s, id, err);
	json_object *rec;
	if (lock < 0 || ctr_record_load(s, id, &rec, err))
		return -1;
	fn(rec, arg);
	int rc = ctr_record_save(s, id, rec, err);
	json_object_put(rec);
	return rc;
}

int ctr_launch_from_record(struct ctr_launch *l, json_object *rec, vt_err *err)
{
	const char *mode = ctr_rec_str(rec, "Network");
	if (cnet_parse_mode(*mode ? mode : "bridge", &l->net.mode, err))
		return -1;
	json_object *ports;
	size_t n = 0;
	if (json_object_object_get_ex(rec, "Ports", &ports))
		n = json_object_array_length(ports);
	if (n > CNET_MAX_PORTS)
		return vt_fail(err, "too many published ports (at most %d)", CNET_MAX_PORTS);
	for (size_t i = 0; i < n; i++)
		if (cnet_parse_port(json_object_get_string(json_object_array_get_idx(ports, i)), &l->ports[i], err))
			return -1;
	l->net.ports = l->ports;
	l->net.n_ports = n;
	l->auto_remove = json_object_get_boolean(json_object_object_get(rec, "AutoRemove"));
	l->tty = json_object_get_boolean(json_object_object_get(rec, "Tty"));
	l->vm = !strcmp(ctr_rec_str(rec, "Isolation"), "vm");
	l->memory = (uint64_t)ctr_rec_int(rec, "Memory");
	l->cpu_quota = (uint64_t)ctr_rec_int(rec, "CpuQuota");
	return 0;
}

/* ---------------- shared by the two monitors (monitor.c, vm_monitor.c) ---------------- */

int ctr_monitor_send(int sock, int type, int value, const char *text, int fd)
{
	struct ctr_msg m = { .type = type, .value = value };
	if (text)
		snprintf(m.msg, sizeof(m.msg), "%s", text);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		h.msg_control = cbuf;
		h.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &h, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

void ctr_rec_set_running(json_object *rec, void *arg)
{
	const struct ctr_started *s = arg;
	cleanup_free char *now = rt_now_rfc3339();
	ctr_rec_set_str(rec, "State", "running");
	ctr_rec_set_int(rec, "Pid", s->pid);
	ctr_rec_set_int(rec, "MonitorPid", s->monitor);
	ctr_rec_set_int(rec, "MonitorStartTime", (long long)s->monitor_start);
	ctr_rec_set_str(rec, "StartedAt", now);
	ctr_rec_set_str(rec, "FinishedAt", "");
	ctr_rec_set_int(rec, "ExitCode", 0);
	ctr_rec_set_str(rec, "IPAddress", s->addr);
}

void ctr_rec_set_exited(json_object *rec, void *arg)
{
	cleanup_free char *now = rt_now_rfc3339();
	ctr_rec_set_str(rec, "State", "exited");
	ctr_rec_set_int(rec, "ExitCode", *(int *)arg);
	ctr_rec_set_str(rec, "FinishedAt", now);
	ctr_rec_set_int(rec, "Pid", 0);
}

/* ---------------- talking to the monitor ---------------- */

static int recv_msg(int sock, struct ctr_msg *m, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	do
		n = recvmsg(sock, &h, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*m))
		return -1;
	m->msg[sizeof(m->msg) - 1] = 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&h);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

/* The caller's window size onto the container's terminal. */
static void copy_window_size(int master)
{
	struct winsize ws;
	if (!ioctl(0, TIOCGWINSZ, &ws))
		ioctl(master, TIOCSWINSZ, &ws);
}

/* With a terminal the output is relayed here, and copied to the log (without, the monitor logs it). */
static int wait_foreground(const struct ctr_launch *l, pid_t monitor, int master, int *status)
{
	if (master < 0)
		return rt_wait_forwarding(monitor, status);
	copy_window_size(master);
	cleanup_free char *path = ctr_path(l->store, l->id, "ctr.log");
	cleanup_close int log = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	return rt_wait_relaying_logged(monitor, master, log, status);
}

int ctr_launch(struct ctr_launch *l, int *status, vt_err *err)
{
	*status = CTR_EXIT_ERROR;
	if (cnet_prepare(l->store->root, l->id, &l->net, &l->lease, err))
		return -1;
	int sv[2];
	if (ctr_etc_write(l, err)) {
		vt_err ignored;
		cnet_detach(l->store->root, l->id, &l->lease, &ignored);
		ctr_run_dir_remove(l->store, l->id);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		cnet_release_ports(&l->lease);
		return vt_fail_errno(err, errno, "socketpair");
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		cnet_release_ports(&l->lease);
		return vt_fail_errno(err, errno, "cannot fork the container's monitor");
	}
	if (pid == 0) {
		close(sv[0]);
		ctr_monitor_main(l, sv[1]);
	}
	close(sv[1]);
	cnet_release_ports(&l->lease);
	struct ctr_msg m = { 0 };
	cleanup_close int master = -1;
	int got = recv_msg(sv[0], &m, &master);
	close(sv[0]);
	if (got || m.type != CTR_MSG_STARTED) {
		int ws = rt_reap(pid);
		if (got)
			return vt_fail(err, "the container's monitor died before the container started (wait status %d)",
				       ws);
		*status = m.value;
		return vt_fail(err, "%s", m.msg);
	}
	if (l->detach) {
		*status = 0;
		return 0;
	}
	if (wait_foreground(l, pid, master, status))
		return vt_fail_errno(err, errno, "waiting for the container");
	return 0;
}
