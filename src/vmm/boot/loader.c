#include <string.h>

#include "lib/util.h"
#include "vmm/boot/boot.h"
#include "vmm/boot/bzimage.h"

enum kernel_format kernel_detect(const void *data, size_t size)
{
	const uint8_t *p = data;
	if (size >= 0x206 && memcmp(p + 0x202, "HdrS", 4) == 0 && p[0x1fe] == 0x55 && p[0x1ff] == 0xaa)
		return KERNEL_BZIMAGE;
	if (size >= 4 && memcmp(p, "\x7f" "ELF", 4) == 0)
		return KERNEL_ELF;
	return KERNEL_UNKNOWN;
}

int boot_check(const void *kernel, size_t size, size_t cmdline_len, vt_err *err)
{
	struct bzimage_info info;
	switch (kernel_detect(kernel, size)) {
	case KERNEL_BZIMAGE:
		if (bzimage_parse(kernel, size, &info, err) < 0)
			return -1;
		if (cmdline_len > info.cmdline_max)
			return vt_fail(err, "command line is %zu bytes; this kernel accepts at most %u", cmdline_len,
				       info.cmdline_max);
		return 0;
	case KERNEL_ELF:
		return pvh_check(kernel, size, cmdline_len, err);
	default:
		return vt_fail(err, "kernel is neither a bzImage (no \"HdrS\" boot header) nor an ELF vmlinux");
	}
}

int boot_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err)
{
	switch (kernel_detect(in->kernel, in->kernel_size)) {
	case KERNEL_BZIMAGE:
		return bzimage_load(m, in, out, err);
	case KERNEL_ELF:
		return pvh_load(m, in, out, err);
	default:
		return vt_fail(err, "kernel is neither a bzImage (no \"HdrS\" boot header) nor an ELF vmlinux");
	}
}

int initrd_place(const struct guest_mem *m, size_t size, uint64_t floor, uint64_t limit, uint64_t *gpa, vt_err *err)
{
	uint64_t top = MIN(limit, gmem_low_end(m));
	uint64_t need = ALIGN_UP((uint64_t)size, 4096ULL);
	if (need < size || top < floor || top - floor < need)
		return vt_fail(err, "initrd (%zu KiB) does not fit in guest memory below 0x%llx after the kernel; "
			       "give the guest more --memory", size / 1024, (unsigned long long)top);
	*gpa = ALIGN_DOWN(top - need, 4096ULL);
	return 0;
}
