/* PVH boot of an ELF vmlinux: load PT_LOAD segments at their physical addresses and enter the
 * XEN_ELFNOTE_PHYS32_ENTRY point in 32-bit protected mode with EBX = hvm_start_info. Skips the
 * bzImage decompressor entirely. Every offset and address in the file is checked before use. */
#include <elf.h>
#include <string.h>

#include "lib/util.h"
#include "vmm/boot/boot.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/pvh.h"
#include "vmm/layout.h"

/* One loadable view of ELF32 and ELF64 program headers. */
struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

struct elf_view {
	const uint8_t *data;
	size_t size;
	bool is64;
	uint64_t phoff;
	unsigned phnum, phentsize;
};

static bool in_file(const struct elf_view *e, uint64_t off, uint64_t len)
{
	return off <= e->size && len <= e->size - off;
}

static int elf_open(const void *data, size_t size, struct elf_view *e, vt_err *err)
{
	const uint8_t *p = data;
	e->data = p;
	e->size = size;
	if (size < EI_NIDENT || memcmp(p, ELFMAG, SELFMAG) != 0)
		return vt_fail(err, "not an ELF file");
	if (p[EI_DATA] != ELFDATA2LSB)
		return vt_fail(err, "ELF kernel is not little-endian");
	e->is64 = p[EI_CLASS] == ELFCLASS64;
	if (e->is64 && size >= sizeof(Elf64_Ehdr)) {
		Elf64_Ehdr h;
		memcpy(&h, p, sizeof(h));
		e->phoff = h.e_phoff, e->phnum = h.e_phnum, e->phentsize = h.e_phentsize;
		if (h.e_machine != EM_X86_64)
			return vt_fail(err, "ELF kernel is not for x86-64 (e_machine %u)", h.e_machine);
		if (e->phentsize < sizeof(Elf64_Phdr))
			return vt_fail(err, "ELF kernel has malformed program headers");
	} else if (!e->is64 && p[EI_CLASS] == ELFCLASS32 && size >= sizeof(Elf32_Ehdr)) {
		Elf32_Ehdr h;
		memcpy(&h, p, sizeof(h));
		e->phoff = h.e_phoff, e->phnum = h.e_phnum, e->phentsize = h.e_phentsize;
		if (h.e_machine != EM_386 && h.e_machine != EM_X86_64)
			return vt_fail(err, "ELF kernel is not for x86 (e_machine %u)", h.e_machine);
		if (e->phentsize < sizeof(Elf32_Phdr))
			return vt_fail(err, "ELF kernel has malformed program headers");
	} else {
		return vt_fail(err, "ELF kernel is truncated or of an unknown class");
	}
	if (e->phnum == 0 || !in_file(e, e->phoff, (uint64_t)e->phnum * e->phentsize))
		return vt_fail(err, "ELF kernel's program headers lie outside the file");
	return 0;
}

static struct phdr elf_phdr(const struct elf_view *e, unsigned i)
{
	const uint8_t *p = e->data + e->phoff + (uint64_t)i * e->phentsize;
	if (e->is64) {
		Elf64_Phdr h;
		memcpy(&h, p, sizeof(h));
		return (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz };
	}
	Elf32_Phdr h;
	memcpy(&h, p, sizeof(h));
	return (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz };
}

/* Search one PT_NOTE segment for Xen's PHYS32_ENTRY note. */
static bool find_pvh_note(const struct elf_view *e, const struct phdr *ph, uint64_t *entry)
{
	uint64_t off = ph->offset, end = ph->offset + ph->filesz;
	while (off + 12 <= end) {
		uint32_t hdr[3];
		memcpy(hdr, e->data + off, sizeof(hdr));
		uint64_t name_len = ALIGN_UP((uint64_t)hdr[0], 4ULL), desc_len = ALIGN_UP((uint64_t)hdr[1], 4ULL);
		uint64_t name_off = off + 12, desc_off = name_off + name_len;
		if (desc_off > end || desc_len > end - desc_off)
			return false;
		if (hdr[2] == XEN_ELFNOTE_PHYS32_ENTRY && hdr[0] == 4 && memcmp(e->data + name_off, "Xen", 4) == 0 &&
		    (hdr[1] == 4 || hdr[1] == 8)) {
			uint64_t v = 0;
			memcpy(&v, e->data + desc_off, hdr[1]);
			*entry = v;
			return true;
		}
		off = desc_off + desc_len;
	}
	return false;
}

/* Everything about the file, before any of it is loaded: segments inside the file, a PVH entry note. */
static int check_elf(const struct elf_view *e, uint64_t *entry, vt_err *err)
{
	bool have_entry = false, have_load = false;
	for (unsigned i = 0; i < e->phnum; i++) {
		struct phdr ph = elf_phdr(e, i);
		if (ph.type == PT_NOTE && in_file(e, ph.offset, ph.filesz) && !have_entry)
			have_entry = find_pvh_note(e, &ph, entry);
		if (ph.type != PT_LOAD)
			continue;
		if (!in_file(e, ph.offset, ph.filesz) || ph.filesz > ph.memsz)
			return vt_fail(err, "ELF kernel segment %u lies outside the file (is the file truncated?)", i);
		have_load = true;
	}
	if (!have_entry)
		return vt_fail(err, "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): it was built without "
			       "CONFIG_PVH; boot its bzImage instead");
	if (!have_load)
		return vt_fail(err, "ELF kernel has no loadable segments");
	if (*entry >= 4 * GiB)
		return vt_fail(err, "PVH entry point 0x%llx is not a 32-bit address", (unsigned long long)*entry);
	return 0;
}

/* Copy the PT_LOAD segments (already checked against the file) to their physical addresses. */
static int load_segments(struct guest_mem *m, const struct elf_view *e, uint64_t *end, vt_err *err)
{
	*end = 0;
	for (unsigned i = 0; i < e->phnum; i++) {
		struct phdr ph = elf_phdr(e, i);
		if (ph.type != PT_LOAD)
			continue;
		uint8_t *dst = gmem_ptr(m, ph.paddr, ph.memsz);
		if (!dst)
			return vt_fail(err, "ELF kernel segment %u (0x%llx, %llu KiB) does not fit in guest memory; give it more --memory",
				       i, (unsigned long long)ph.paddr, (unsigned long long)(ph.memsz / 1024));
		memcpy(dst, e->data + ph.offset, ph.filesz);
		memset(dst + ph.filesz, 0, ph.memsz - ph.filesz);
		*end = MAX(*end, ph.paddr + ph.memsz);
	}
	return 0;
}

/* PVH has no header field for the limit: it is Linux's COMMAND_LINE_SIZE (beyond it the boot hangs). */
static int check_cmdline(size_t len, vt_err *err)
{
	if (len > BOOT_CMDLINE_MAX)
		return vt_fail(err, "command line is %zu bytes; Linux on x86 accepts at most %d (COMMAND_LINE_SIZE %d "
			       "with the final NUL)", len, BOOT_CMDLINE_MAX, BOOT_CMDLINE_MAX + 1);
	return 0;
}

int pvh_check(const void *kernel, size_t size, size_t cmdline_len, vt_err *err)
{
	struct elf_view e = { 0 };
	uint64_t entry = 0;
	if (elf_open(kernel, size, &e, err) < 0 || check_elf(&e, &entry, err) < 0)
		return -1;
	return check_cmdline(cmdline_len, err);
}

static void write_start_info(struct guest_mem *m, const struct boot_params_in *in, const struct boot_entry *out)
{
	uint8_t *page = gmem_ptr(m, LAYOUT_PVH_START_INFO, 4096);
	memset(page, 0, 4096);
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = LAYOUT_CMDLINE,
		.rsdp_paddr = in->rsdp_gpa,
		.memmap_paddr = LAYOUT_PVH_START_INFO + PVH_MEMMAP_OFFSET,
	};
	if (out->initrd_gpa) {
		struct hvm_modlist_entry mod = { .paddr = out->initrd_gpa, .size = in->initrd_size };
		memcpy(page + PVH_MODLIST_OFFSET, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_START_INFO + PVH_MODLIST_OFFSET;
	}
	struct e820_entry map[E820_MAX_BUILT];
	unsigned n = e820_build(m, map);
	for (unsigned i = 0; i < n; i++) {
		struct hvm_memmap_table_entry me = { .addr = map[i].addr, .size = map[i].size, .type = map[i].type };
		memcpy(page + PVH_MEMMAP_OFFSET + i * sizeof(me), &me, sizeof(me));
	}
	si.memmap_entries = n;
	memcpy(page, &si, sizeof(si));
}

int pvh_load(struct guest_mem *m, const struct boot_params_in *in, struct boot_entry *out, vt_err *err)
{
	struct elf_view e = { 0 };
	uint64_t entry = 0, end = 0;
	if (elf_open(in->kernel, in->kernel_size, &e, err) < 0 || check_elf(&e, &entry, err) < 0)
		return -1;
	size_t cmdlen = strlen(in->cmdline);
	if (check_cmdline(cmdlen, err) < 0)
		return -1;
	if (!gmem_ptr(m, 0, LAYOUT_HIMEM_START))
		return vt_fail(err, "guest memory is too small for a PVH boot");
	if (load_segments(m, &e, &end, err) < 0)
		return -1;
	memcpy(gmem_ptr(m, LAYOUT_CMDLINE, cmdlen + 1), in->cmdline, cmdlen + 1);
	out->initrd_gpa = 0;
	if (in->initrd && initrd_place(m, in->initrd_size, ALIGN_UP(end, 4096ULL), UINT64_MAX, &out->initrd_gpa, err) < 0)
		return -1;
	if (in->initrd)
		gmem_write(m, out->initrd_gpa, in->initrd, in->initrd_size);
	out->mode = BOOT_MODE_PVH;
	out->entry = entry;
	out->arg = LAYOUT_PVH_START_INFO;
	out->kernel_end = end;
	write_start_info(m, in, out);
	return 0;
}
