/* Disk checkpoints (contract in raw.h): the image a disk writes is kept, as it is at the checkpoint, under a
 * second name, and the disk goes on in a new qcow2 overlay over it at the image's own path.
 *
 * Everything works on descriptors the VMM already holds, so a sandboxed VMM (no open of existing files, no
 * new threads) can do it: the frozen image is linked from its open descriptor, the overlay is a new file,
 * and the overlay's backing file is the image object already open (qcow2_open_over). Names: the layer is
 * linked first, the overlay is made under a temporary name and renamed over the image's path last, so the
 * disk's path never stops naming an image, and a crash leaves at worst a stray link or temporary file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/engine.h"
#include "lib/util.h"

/* A second name for the open image: from its descriptor, so it is the very file this disk writes even if
 * its path was renamed meanwhile. AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd does not. */
static int link_open_file(int fd, const char *to)
{
	if (linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -1;
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
}

static int flush_image(struct blk *b)
{
	if (b->qcow2)
		return qcow2_flush(b->qcow2);
	return fdatasync(b->fd) < 0 ? -errno : 0;
}

static int set_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static int check_can_checkpoint(const struct blk *b, const char *layer_path, vt_err *err)
{
	if (b->readonly)
		return vt_fail(err, "%s: a read-only disk needs no checkpoint", b->path);
	if (b->overlay)
		return vt_fail(err, "%s: a disk with a throwaway overlay cannot be checkpointed", b->path);
	if (b->inflight)
		return vt_fail(err, "%s: %u requests are in flight", b->path, b->inflight);
	if (layer_path[0] != '/')
		return vt_fail(err, "%s: a checkpoint's layer needs an absolute path (the overlay names it)", b->path);
	return 0;
}

/* A new, empty qcow2 image next to the disk's path, naming layer_path as its backing file. */
static int make_overlay(struct blk *b, const char *layer_path, char **tmp_out, vt_err *err)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.checkpoint-XXXXXX", b->path) < 0)
		return vt_fail_errno(err, ENOMEM, "%s", b->path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		vt_fail_errno(err, errno, "%s: cannot create a new overlay next to it", b->path);
		free(tmp);
		return -1;
	}
	struct qcow2_create_opts o = { .size = b->sectors * BLK_SECTOR_SIZE, .backing = layer_path,
				       .backing_fmt = blk_format_name(blk_format_used(b)) };
	if (qcow2_format_fd(fd, tmp, &o, err) < 0 || set_lock(fd, F_WRLCK) < 0) {
		if (!err->msg[0])
			vt_fail_errno(err, errno, "%s: cannot lock", tmp);
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	*tmp_out = tmp;
	return fd;
}

/* Take the layer's name back and remove the unused overlay: the disk is as before the checkpoint. */
static void drop_checkpoint(const char *layer_path, int overlay_fd, char *tmp)
{
	close(overlay_fd);
	unlink(tmp);
	unlink(layer_path);
	free(tmp);
}

int blk_checkpoint(struct blk *b, const char *layer_path, vt_err *err)
{
	err->msg[0] = '\0';
	struct stat st;
	if (check_can_checkpoint(b, layer_path, err) < 0)
		return -1;
	int r = flush_image(b);
	if (r < 0)
		return vt_fail_errno(err, -r, "%s: cannot flush", b->path);
	if (fstat(b->fd, &st) < 0)
		return vt_fail_errno(err, errno, "%s: cannot stat", b->path);
	if (link_open_file(b->fd, layer_path) < 0)
		return vt_fail_errno(err, errno, "%s: cannot keep the image as %s%s", b->path, layer_path,
				     errno == EXDEV ? " (a checkpoint must be on the disk's file system)" : "");
	char *tmp = NULL;
	int fd = make_overlay(b, layer_path, &tmp, err);
	if (fd < 0) {
		unlink(layer_path);
		return -1;
	}
	struct qcow2_below below = { .fd = b->fd, .image = b->qcow2, .raw_size = (uint64_t)st.st_size };
	struct qcow2 *over = NULL;
	if (qcow2_open_over(fd, b->path, &below, &over, err) < 0) {
		drop_checkpoint(layer_path, fd, tmp);
		return -1;
	}
	if (rename(tmp, b->path) < 0) {
		vt_fail_errno(err, errno, "%s: cannot rename the new overlay over it", b->path);
		qcow2_take_below(over, &below);
		drop_checkpoint(layer_path, fd, tmp);
		return -1;
	}
	free(tmp);
	set_lock(b->fd, F_RDLCK);   /* the layer is read-only now: others may read it (a restore, a copy) */
	b->fd = fd;                 /* the old descriptor is the overlay's backing file's now */
	b->qcow2 = over;
	b->guard_before_checkpoint = b->guard_magic;
	b->guard_magic = false;
	return 0;
}

int blk_checkpoint_undo(struct blk *b, const char *layer_path, vt_err *err)
{
	if (!b->qcow2 || b->inflight)
		return vt_fail(err, "%s: no checkpoint to undo", b->path);
	if (rename(layer_path, b->path) < 0)
		return vt_fail_errno(err, errno, "%s: cannot put the image back from %s", b->path, layer_path);
	struct qcow2_below below;
	qcow2_take_below(b->qcow2, &below);
	close(b->fd);
	b->fd = below.fd;
	b->qcow2 = below.image;
	b->guard_magic = b->guard_before_checkpoint;
	if (set_lock(b->fd, F_WRLCK) < 0)
		return vt_fail_errno(err, errno, "%s: cannot lock it for writing again", b->path);
	return 0;
}

/* path's advisory lock, as blk_open takes it, tells whether a VMM writes the image now. */
static int check_not_in_use(const char *path, vt_err *err)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : vt_fail_errno(err, errno, "%s", path);
	int r = set_lock(fd, F_WRLCK) == 0 ? 0 : vt_fail(err, "%s is in use by a running VM (advisory lock): stop it "
							    "first, or restore onto another disk with --disk", path);
	close(fd);
	return r;
}

int blk_restore_layer(const char *path, const char *layer, vt_err *err)
{
	if (check_not_in_use(path, err) < 0)
		return -1;
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.restore-XXXXXX", path) < 0)
		return vt_fail_errno(err, ENOMEM, "%s", path);
	int fd = mkostemp(tmp, O_CLOEXEC), r = -1;
	struct qcow2_create_opts o = { .backing = layer };
	if (fd < 0)
		vt_fail_errno(err, errno, "%s: cannot create a new overlay next to it", path);
	else if (qcow2_format_fd(fd, tmp, &o, err) == 0 && (r = rename(tmp, path)) < 0)
		vt_fail_errno(err, errno, "%s: cannot rename the new overlay over it", path);
	if (fd >= 0)
		close(fd);
	if (r < 0 && fd >= 0)
		unlink(tmp);
	free(tmp);
	return r;
}
