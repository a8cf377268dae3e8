/* What a kernel loader produces: where the first vCPU starts and in which mode. The register setup that
 * turns this into CPU state lives in vcpu.c; the loaders only write guest memory. */
#ifndef VIRTUS_BOOT_H
#define VIRTUS_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "vmm/guest_mem.h"

enum boot_mode {
	BOOT_MODE_LINUX64,   /* 64-bit boot protocol: long mode, RSI = boot_params */
	BOOT_MODE_PVH,       /* PVH: 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct boot_params_in {
	const void *kernel;      /* whole kernel file */
	size_t kernel_size;
	const void *initrd;      /* may be NULL */
	size_t initrd_size;
	const char *cmdline;     /* never NULL */
	uint64_t rsdp_gpa;       /* 0: no ACPI */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t entry;          /* guest-physical entry point */
	uint64_t arg;            /* boot_params (RSI) or hvm_start_info (EBX) */
	uint64_t kernel_end;     /* first byte past the loaded kernel image (for tests and diagnostics) */
	uint64_t initrd_gpa;
};

/* Linux on x86: COMMAND_LINE_SIZE is 2048 bytes with the final NUL. A bzImage states its own limit in
 * the header (cmdline_size, 2047 on x86); a PVH vmlinux has no header field, so this is its limit. */
#define BOOT_CMDLINE_MAX 2047

enum kernel_format { KERNEL_UNKNOWN, KERNEL_BZIMAGE, KERNEL_ELF };
enum kernel_format kernel_detect(const void *data, size_t size);

/* Check a kernel file and a command line of cmdline_len bytes without loading anything: the header's
 * sizes against the file, the PVH entry note, the command line against the kernel's limit. */
int boot_check(const void *kernel, size_t size, size_t cmdline_len, vt_err *err);
int pvh_check(const void *kernel, size_t size, size_t cmdline_len, vt_err *err);

/* Load whatever kernel_detect() recognises. Errors name what is wrong with the file or the fit. */
int boot_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err);

int bzimage_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err);
int pvh_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err);

/* Place the initrd as high as possible below min(limit, end of low RAM), page aligned, above floor. */
int initrd_place(const struct guest_mem *m, size_t size, uint64_t floor, uint64_t limit, uint64_t *gpa, vt_err *err);

#endif
