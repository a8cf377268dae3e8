#include "vmm/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "vmm/layout.h"

static void layout_regions(struct guest_mem *m, uint8_t *base, uint64_t ram_size)
{
	uint64_t low = MIN(ram_size, LAYOUT_MMIO_HOLE);
	m->region[0] = (struct gmem_region){ .gpa = 0, .size = low, .hva = base };
	m->nregions = 1;
	if (ram_size > low) {
		m->region[1] = (struct gmem_region){ .gpa = LAYOUT_HIGH_RAM, .size = ram_size - low, .hva = base + low };
		m->nregions = 2;
	}
	m->ram_size = ram_size;
}

/* Guest RAM is the mapping p from now on (freed with m); offered to KSM if asked. */
static int adopt_mapping(struct guest_mem *m, void *p, uint64_t ram_size, unsigned flags, vt_err *err)
{
	m->mapping = p;
	m->mapping_size = ram_size;
	if ((flags & GMEM_MERGEABLE) && madvise(p, ram_size, MADV_MERGEABLE) < 0) {
		int e = errno;
		gmem_free(m);
		return vt_fail_errno(err, e, "--ksm: this kernel cannot merge guest memory (no KSM?)");
	}
	layout_regions(m, p, ram_size);
	return 0;
}

static int shared_fd(struct guest_mem *m, uint64_t ram_size, vt_err *err)
{
	m->fd = memfd_create("virtus-guest-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		return vt_fail_errno(err, errno, "memfd_create for shared guest memory");
	if (ftruncate(m->fd, (off_t)ram_size)) {
		int e = errno;
		gmem_free(m);
		return vt_fail_errno(err, e, "cannot size shared guest memory to %llu MiB",
				     (unsigned long long)(ram_size / MiB));
	}
	return 0;
}

int gmem_init(struct guest_mem *m, uint64_t ram_size, unsigned flags, vt_err *err)
{
	memset(m, 0, sizeof(*m));
	if (ram_size < VM_MIN_MEMORY)
		return vt_fail(err, "guest memory must be at least %llu MiB", VM_MIN_MEMORY / MiB);
	if (ram_size != ALIGN_DOWN(ram_size, 4096ULL))
		return vt_fail(err, "guest memory must be a multiple of 4 KiB");
	if (ram_size > SIZE_MAX)
		return vt_fail(err, "guest memory of %llu bytes cannot be mapped on this host", (unsigned long long)ram_size);
	m->fd = -1;
	if ((flags & GMEM_SHARED) && shared_fd(m, ram_size, err) < 0)
		return -1;
	/* No MAP_NORESERVE: the kernel's overcommit check is what tells "larger than this host can back". */
	void *p = m->fd >= 0 ? mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0)
			     : mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		gmem_free(m);
		return vt_fail_errno(err, e, "cannot map %llu MiB of guest memory", (unsigned long long)(ram_size / MiB));
	}
	return adopt_mapping(m, p, ram_size, flags, err);
}

int gmem_init_file(struct guest_mem *m, uint64_t ram_size, const char *path, unsigned flags, vt_err *err)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (flags & GMEM_SHARED)
		return vt_fail(err, "a VM with shared memory (virtio-fs) cannot be restored from a memory file");
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open the memory file %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != ram_size)
		return vt_fail(err, "%s is not a memory file of %llu MiB", path, (unsigned long long)(ram_size / MiB));
	void *p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return vt_fail_errno(err, errno, "cannot map %s", path);
	return adopt_mapping(m, p, ram_size, flags, err);
}

void gmem_init_fixed(struct guest_mem *m, void *hva, uint64_t ram_size)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	layout_regions(m, hva, ram_size);
}

void gmem_free(struct guest_mem *m)
{
	if (m->mapping)
		munmap(m->mapping, m->mapping_size);
	if (m->fd > 0)
		close(m->fd);
	free(m->user_dirty);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->region[i];
		/* Written so that no sum can overflow: gpa - r->gpa is only computed once gpa >= r->gpa. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		uint64_t off = gpa - r->gpa;
		if (len > r->size - off)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}

int gmem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

int64_t gmem_ram_offset(const struct guest_mem *m, uint64_t gpa)
{
	uint64_t base = 0;
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->region[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (int64_t)(base + (gpa - r->gpa));
		base += r->size;
	}
	return -1;
}

void gmem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (!__atomic_load_n(&m->track_user_writes, __ATOMIC_ACQUIRE) || !len)
		return;
	uint64_t *bits = m->user_dirty;
	int64_t off = gmem_ram_offset(m, gpa);
	if (off < 0 || len > m->ram_size - (uint64_t)off)
		return; /* the accessors refused it already: nothing was written */
	for (uint64_t p = (uint64_t)off >> 12; p <= ((uint64_t)off + len - 1) >> 12; p++)
		__atomic_fetch_or(&bits[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
}

uint64_t gmem_low_end(const struct guest_mem *m)
{
	return m->nregions ? m->region[0].size : 0;
}
