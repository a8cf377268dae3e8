/* `virtus vm run`, before /dev/kvm is opened: find the default guest, read and check the kernel, check the
 * initrd, the disks and the memory size against this host, and settle the command line. A mistake in any
 * of them is reported as such, not hidden behind "no /dev/kvm" or a guest that crashes or hangs. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli/cli.h"
#include "devices/scsi_cd.h"
#include "lib/util.h"

#define KERNEL_FILE_MAX (512 * MiB)
#define DEFAULT_CMDLINE "console=ttyS0 panic=-1"
#define DEFAULT_HVC_CMDLINE "console=hvc0 panic=-1"
#define DEFAULT_GUEST_EXTRA " quiet virtus.init=shell"

static bool readable_in(char *path, size_t size, const char *dir, const char *name)
{
	return snprintf(path, size, "%s/%s", dir, name) < (int)size && access(path, R_OK) == 0;
}

static bool has_guest(const char *dir, struct vm_preflight *pf)
{
	char *kernel = pf->guest_kernel, *initrd = pf->guest_initrd;
	return (readable_in(kernel, sizeof(pf->guest_kernel), dir, "vmlinux") ||
		readable_in(kernel, sizeof(pf->guest_kernel), dir, "bzImage")) &&
	       readable_in(initrd, sizeof(pf->guest_initrd), dir, "initramfs.cpio.gz");
}

/* $VIRTUS_GUEST_DIR if set; else guest/ next to the binary (the build tree: build/guest), then
 * ../lib/virtus/guest from the binary's directory (where `make install` puts it). */
static int find_default_guest(struct vm_preflight *pf, vt_err *err)
{
	char dirs[2][PATH_MAX];
	unsigned n = 0;
	const char *env = getenv("VIRTUS_GUEST_DIR");
	if (env && *env) {
		if (strlen(env) >= sizeof(dirs[0]))
			return vt_fail(err, "VIRTUS_GUEST_DIR is too long");
		snprintf(dirs[n++], sizeof(dirs[0]), "%s", env);
	} else {
		char self[PATH_MAX];
		ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (len < 0)
			return vt_fail_errno(err, errno, "cannot find the virtus binary's directory");
		self[len] = '\0';
		char *bindir = dirname(self);
		if (snprintf(dirs[n++], sizeof(dirs[0]), "%s/guest", bindir) >= (int)sizeof(dirs[0]))
			return vt_fail(err, "the virtus binary's path is too long");
		const char *prefix = dirname(bindir);
		snprintf(dirs[n++], sizeof(dirs[0]), "%s/lib/virtus/guest", strcmp(prefix, "/") ? prefix : "");
	}
	for (unsigned i = 0; i < n; i++)
		if (has_guest(dirs[i], pf))
			return 0;
	return vt_fail(err, "no default guest in %s%s%s (expected vmlinux or bzImage, and initramfs.cpio.gz): "
		       "build it with guest/build, or pass --kernel", dirs[0], n > 1 ? " or " : "", n > 1 ? dirs[1] : "");
}

static void settle_cmdline(struct vm_config *cfg, bool default_guest, struct vm_preflight *pf)
{
	const char *base = cfg->cmdline;
	if (!base)
		base = cfg->virtio_console ? DEFAULT_HVC_CMDLINE : DEFAULT_CMDLINE;
	snprintf(pf->cmdline, sizeof(pf->cmdline), "%s%s", base, !cfg->cmdline && default_guest ? DEFAULT_GUEST_EXTRA : "");
	cfg->cmdline = pf->cmdline;
}

/* The guest's console is chosen by console= on its command line: without one, Linux writes to a
 * console that does not exist here and nothing appears. Worth one line, since nothing else would say. */
static void warn_without_console(const struct vm_config *cfg, const char *user_cmdline, bool console_discarded)
{
	if (!user_cmdline || console_discarded || strstr(user_cmdline, "console="))
		return;
	fprintf(stderr, "virtus: warning: --cmdline has no console= option, so Linux's console output goes nowhere; "
		"add console=%s\n", cfg->virtio_console ? "hvc0" : "ttyS0");
}

static int read_kernel(struct vm_config *cfg, struct vm_preflight *pf, vt_err *err)
{
	size_t size;
	if (read_file(cfg->kernel_path, KERNEL_FILE_MAX, &pf->kernel, &size, err) < 0)
		return vt_err_prefix(err, "kernel");
	if (boot_check(pf->kernel, size, strlen(cfg->cmdline), err) < 0)
		return vt_err_prefix(err, "%s", cfg->kernel_path);
	cfg->kernel_data = pf->kernel;
	cfg->kernel_size = size;
	return 0;
}

/* A file that must be readable now: open it (a stat alone would miss permissions) and return its stat. */
static int check_readable(const char *what, const char *path, int flags, struct stat *st, vt_err *err)
{
	cleanup_close int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && (flags & O_ACCMODE) == O_RDWR && (errno == EACCES || errno == EROFS))
		return vt_fail_errno(err, errno, "%s %s: cannot open for writing (add ,ro for a read-only disk)", what, path);
	if (fd < 0)
		return vt_fail_errno(err, errno, "%s %s: cannot open", what, path);
	if (fstat(fd, st) < 0)
		return vt_fail_errno(err, errno, "%s %s: cannot stat", what, path);
	if (S_ISDIR(st->st_mode))
		return vt_fail(err, "%s %s is a directory", what, path);
	if (!S_ISREG(st->st_mode))
		return vt_fail(err, "%s %s is not a regular file", what, path);
	return 0;
}

static int check_initrd(const struct vm_config *cfg, vt_err *err)
{
	struct stat st;
	if (!cfg->initrd_path)
		return 0;
	if (check_readable("initrd", cfg->initrd_path, O_RDONLY, &st, err) < 0)
		return -1;
	if ((uint64_t)st.st_size >= cfg->mem_size)
		return vt_fail(err, "initrd %s is larger than guest memory (%llu MiB); give the guest more --memory",
			       cfg->initrd_path, (unsigned long long)(cfg->mem_size / MiB));
	return 0;
}

/* Each --disk must be its own image: the same file twice would be locked against itself. */
static int check_disks(const struct vm_config *cfg, vt_err *err)
{
	struct stat st[VM_MAX_DISKS];
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct vm_disk_config *d = &cfg->disk[i];
		if (check_readable("--disk", d->path, d->readonly ? O_RDONLY : O_RDWR, &st[i], err) < 0)
			return -1;
		for (unsigned j = 0; j < i; j++)
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino)
				return vt_fail(err, "--disk %s is the same file as --disk %s (disk %u); give each disk its "
					       "own image", d->path, cfg->disk[j].path, j + 1);
	}
	return 0;
}

/* The CD's disc, opened as the drive will open it (a block device is a fine disc too). */
static int check_cdrom(const struct vm_config *cfg, vt_err *err)
{
	struct scsi_cd_medium m;
	if (!cfg->cdrom || !cfg->cdrom_path)
		return 0;
	if (scsi_cd_medium_open(cfg->cdrom_path, &m, err) < 0)
		return vt_err_prefix(err, "--cdrom");
	scsi_cd_medium_close(&m);
	return 0;
}

/* Under the kernel's default (heuristic) overcommit, a mapping larger than RAM + swap fails anyway;
 * saying so here names the cause. With overcommit_memory=1 the host owner asked for no such limit. */
static int check_memory(const struct vm_config *cfg, vt_err *err)
{
	char mode = '0';
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "re");
	if (f) {
		mode = (char)fgetc(f);
		fclose(f);
	}
	struct sysinfo si;
	if (mode == '1' || sysinfo(&si) < 0)
		return 0;
	uint64_t ram = (uint64_t)si.totalram * si.mem_unit, swap = (uint64_t)si.totalswap * si.mem_unit;
	if (cfg->mem_size > ram + swap)
		return vt_fail(err, "--memory %llu MiB is more than this host has (%llu MiB of RAM, %llu MiB of swap)",
			       (unsigned long long)(cfg->mem_size / MiB), (unsigned long long)(ram / MiB),
			       (unsigned long long)(swap / MiB));
	return 0;
}

/* The vsock socket may replace only a stale socket: refuse anything else now, before KVM. */
static int check_vsock(const struct vm_config *cfg, vt_err *err)
{
	struct stat st;
	if (!cfg->vsock_cid || lstat(cfg->vsock_path, &st) < 0 || S_ISSOCK(st.st_mode))
		return 0;
	return vt_fail(err, "--vsock: %s exists and is not a socket; not touching it", cfg->vsock_path);
}

int vm_preflight(struct vm_config *cfg, bool console_discarded, struct vm_preflight *pf, vt_err *err)
{
	bool default_guest = !cfg->kernel_path;
	const char *user_cmdline = cfg->cmdline;
	pf->kernel = NULL;
	if (default_guest) {
		if (find_default_guest(pf, err) < 0)
			return -1;
		cfg->kernel_path = pf->guest_kernel;
		if (!cfg->initrd_path)
			cfg->initrd_path = pf->guest_initrd;
	}
	settle_cmdline(cfg, default_guest, pf);
	if (read_kernel(cfg, pf, err) < 0 || check_initrd(cfg, err) < 0 || check_disks(cfg, err) < 0 ||
	    check_cdrom(cfg, err) < 0 || check_memory(cfg, err) < 0 || check_vsock(cfg, err) < 0)
		return -1;
	warn_without_console(cfg, user_cmdline, console_discarded);
	return 0;
}

void vm_preflight_free(struct vm_preflight *pf)
{
	free(pf->kernel);
	pf->kernel = NULL;
}
