/* Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst): the VMM plays the boot loader,
 * fills boot_params ("the zero page") and enters startup_64 in long mode. */
#include <string.h>

#include "lib/util.h"
#include "vmm/boot/boot.h"
#include "vmm/boot/bzimage.h"
#include "vmm/boot/e820.h"
#include "vmm/layout.h"

static uint16_t rd16(const uint8_t *p, size_t off) { uint16_t v; memcpy(&v, p + off, 2); return v; }
static uint32_t rd32(const uint8_t *p, size_t off) { uint32_t v; memcpy(&v, p + off, 4); return v; }
static void wr16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, 2); }
static void wr32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void wr64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }

/* The header says how much protected-mode code follows the setup (syssize) and where the compressed
 * kernel lies in it (payload): all of it must be in the file. A signed image may carry more at the end. */
static int check_sizes(const uint8_t *p, size_t size, const struct bzimage_info *info, vt_err *err)
{
	uint64_t code = (uint64_t)rd32(p, BP_SYSSIZE) * 16;
	uint64_t payload_end = (uint64_t)rd32(p, BP_PAYLOAD_OFFSET) + rd32(p, BP_PAYLOAD_LENGTH);
	uint64_t need = info->setup_size + MAX(code, payload_end);
	if (need > size)
		return vt_fail(err, "bzImage is truncated: its header describes %llu bytes (setup %zu, kernel %llu, "
			       "compressed payload ending at %llu), the file has %zu",
			       (unsigned long long)need, info->setup_size, (unsigned long long)code,
			       (unsigned long long)payload_end, size);
	return 0;
}

int bzimage_parse(const void *image, size_t size, struct bzimage_info *info, vt_err *err)
{
	const uint8_t *p = image;
	if (size < BP_SETUP_HDR_END_MIN || memcmp(p + BP_HDR_MAGIC, "HdrS", 4) != 0 || rd16(p, BP_BOOT_FLAG) != 0xaa55)
		return vt_fail(err, "not a bzImage: no Linux boot header");
	memset(info, 0, sizeof(*info));
	info->version = rd16(p, BP_VERSION);
	if (info->version < 0x20c)
		return vt_fail(err, "bzImage boot protocol %u.%02u is too old; 2.12 (Linux 3.8) or newer is needed for the 64-bit entry",
			       info->version >> 8, info->version & 0xff);
	if (!(rd16(p, BP_XLOADFLAGS) & XLF_KERNEL_64))
		return vt_fail(err, "bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
	unsigned setup_sects = p[BP_SETUP_SECTS] ? p[BP_SETUP_SECTS] : 4;
	info->setup_size = (size_t)(setup_sects + 1) * 512;
	/* The setup header ends at 0x202 + the byte at 0x201 (the jump's offset). */
	info->header_end = 0x202 + p[0x201];
	if (info->setup_size >= size || info->header_end > info->setup_size || info->header_end > BP_SIZE)
		return vt_fail(err, "bzImage is truncated or its setup header is malformed");
	info->cmdline_max = rd32(p, BP_CMDLINE_SIZE);
	info->initrd_addr_max = rd32(p, BP_INITRD_ADDR_MAX);
	info->init_size = rd32(p, BP_INIT_SIZE);
	info->kernel_size = size - info->setup_size;
	return check_sizes(p, size, info, err);
}

int bzimage_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err)
{
	struct bzimage_info info;
	if (bzimage_parse(in->kernel, in->kernel_size, &info, err) < 0)
		return -1;
	size_t cmdlen = strlen(in->cmdline);
	if (cmdlen > info.cmdline_max || cmdlen >= LAYOUT_CMDLINE_MAX)
		return vt_fail(err, "command line is %zu bytes; this kernel accepts at most %u", cmdlen, info.cmdline_max);

	uint64_t footprint = MAX((uint64_t)info.init_size, (uint64_t)info.kernel_size);
	void *dst = gmem_ptr(m, LAYOUT_HIMEM_START, footprint);
	if (!dst)
		return vt_fail(err, "kernel needs %llu MiB at 1 MiB but guest memory is %llu MiB; give it more --memory",
			       (unsigned long long)(footprint / MiB + 1), (unsigned long long)(m->ram_size / MiB));
	memcpy(dst, (const uint8_t *)in->kernel + info.setup_size, info.kernel_size);

	uint8_t *zp = gmem_ptr(m, LAYOUT_ZERO_PAGE, BP_SIZE);
	memset(zp, 0, BP_SIZE);
	memcpy(zp + 0x1f1, (const uint8_t *)in->kernel + 0x1f1, info.header_end - 0x1f1);
	zp[BP_TYPE_OF_LOADER] = 0xff;
	zp[BP_LOADFLAGS] |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
	wr16(zp, BP_HEAP_END_PTR, 0xfe00);
	wr32(zp, BP_CODE32_START, (uint32_t)LAYOUT_HIMEM_START);
	memcpy(gmem_ptr(m, LAYOUT_CMDLINE, cmdlen + 1), in->cmdline, cmdlen + 1);
	wr32(zp, BP_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);
	wr64(zp, BP_ACPI_RSDP_ADDR, in->rsdp_gpa);

	out->initrd_gpa = 0;
	if (in->initrd) {
		uint64_t limit = (uint64_t)info.initrd_addr_max + 1;
		if (initrd_place(m, in->initrd_size, LAYOUT_HIMEM_START + footprint, limit, &out->initrd_gpa, err) < 0)
			return -1;
		gmem_write(m, out->initrd_gpa, in->initrd, in->initrd_size);
		wr32(zp, BP_RAMDISK_IMAGE, (uint32_t)out->initrd_gpa);
		wr32(zp, BP_RAMDISK_SIZE, (uint32_t)in->initrd_size);
		wr32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)in->initrd_size >> 32));
	}

	struct e820_entry map[E820_MAX_BUILT];
	unsigned n = e820_build(m, map);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, map, n * sizeof(map[0]));

	out->mode = BOOT_MODE_LINUX64;
	out->entry = LAYOUT_HIMEM_START + 0x200; /* startup_64 */
	out->arg = LAYOUT_ZERO_PAGE;
	out->kernel_end = LAYOUT_HIMEM_START + footprint;
	return 0;
}
