/* Boot structures without KVM: bzImage boot_params, PVH start info, e820, over fake guest memory. */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/boot/boot.h"
#include "vmm/boot/bzimage.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/pvh.h"
#include "vmm/layout.h"

#define RAM (64 * MiB)

struct fixture {
	void *ram;
	struct guest_mem mem;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, RAM);
	gmem_init_fixed(&f->mem, f->ram, RAM);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->ram);
	free(f);
	return 0;
}

static void put16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, 2); }
static void put32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static uint32_t get32(const uint8_t *p, size_t off) { uint32_t v; memcpy(&v, p + off, 4); return v; }
static uint64_t get64(const uint8_t *p, size_t off) { uint64_t v; memcpy(&v, p + off, 8); return v; }

/* A synthetic bzImage: 4 setup sectors + 1 boot sector, then `payload` bytes of "kernel". */
static uint8_t *make_bzimage(size_t payload, size_t *size)
{
	*size = 5 * 512 + payload;
	uint8_t *p = calloc(1, *size);
	p[BP_SETUP_SECTS] = 4;
	put16(p, BP_BOOT_FLAG, 0xaa55);
	p[0x201] = 0x66; /* header ends at 0x268 */
	memcpy(p + BP_HDR_MAGIC, "HdrS", 4);
	put16(p, BP_VERSION, 0x20f);
	p[BP_LOADFLAGS] = LOADFLAG_LOADED_HIGH;
	put32(p, BP_INITRD_ADDR_MAX, 0x37ffffff);
	put16(p, BP_XLOADFLAGS, XLF_KERNEL_64);
	put32(p, BP_CMDLINE_SIZE, 2047);
	put32(p, BP_INIT_SIZE, 8 * MiB);
	for (size_t i = 0; i < payload; i++)
		p[5 * 512 + i] = (uint8_t)(i * 7 + 1);
	return p;
}

static void bzimage_fills_boot_params(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *img = make_bzimage(4096, &size);
	uint8_t initrd[10000];
	memset(initrd, 0x5a, sizeof(initrd));
	struct boot_params_in in = { img, size, initrd, sizeof(initrd), "console=ttyS0 root=/dev/vda", 0xe0000 };
	struct boot_entry out;
	vt_err err;
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), 0);
	assert_int_equal(out.mode, BOOT_MODE_LINUX64);
	assert_int_equal(out.entry, 0x100200);
	assert_int_equal(out.arg, LAYOUT_ZERO_PAGE);
	const uint8_t *zp = gmem_ptr(&f->mem, LAYOUT_ZERO_PAGE, BP_SIZE);
	assert_int_equal(zp[BP_TYPE_OF_LOADER], 0xff);
	assert_true(zp[BP_LOADFLAGS] & LOADFLAG_CAN_USE_HEAP);
	assert_int_equal(get64(zp, BP_ACPI_RSDP_ADDR), 0xe0000);
	assert_string_equal((char *)gmem_ptr(&f->mem, get32(zp, BP_CMD_LINE_PTR), 1), "console=ttyS0 root=/dev/vda");
	/* kernel payload copied to 1 MiB */
	assert_memory_equal(gmem_ptr(&f->mem, 0x100000, 4096), img + 5 * 512, 4096);
	/* initrd: page aligned, below initrd_addr_max and RAM end, after the kernel's init_size, intact */
	uint32_t rd = get32(zp, BP_RAMDISK_IMAGE);
	assert_int_equal(rd % 4096, 0);
	assert_true(rd >= 0x100000 + 8 * MiB);
	assert_true(rd + sizeof(initrd) <= RAM);
	assert_int_equal(get32(zp, BP_RAMDISK_SIZE), sizeof(initrd));
	assert_memory_equal(gmem_ptr(&f->mem, rd, sizeof(initrd)), initrd, sizeof(initrd));
	/* e820: RAM below the EBDA, the reserved BIOS area, RAM from 1 MiB to the end */
	assert_int_equal(zp[BP_E820_ENTRIES], 3);
	struct e820_entry e[3];
	memcpy(e, zp + BP_E820_TABLE, sizeof(e));
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].type, E820_RAM);
	assert_int_equal(e[1].type, E820_RESERVED);
	assert_int_equal(e[2].addr, 0x100000);
	assert_int_equal(e[2].addr + e[2].size, RAM);
	free(img);
}

static void bzimage_rejects_bad_input(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *img = make_bzimage(4096, &size);
	struct boot_entry out;
	vt_err err;
	struct boot_params_in in = { img, size, NULL, 0, "x", 0 };

	char longline[3000];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	in.cmdline = longline;
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "accepts at most 2047"));
	in.cmdline = "x";

	uint8_t big_initrd_dummy;
	in.initrd = &big_initrd_dummy;
	in.initrd_size = RAM; /* cannot fit */
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));
	in.initrd = NULL, in.initrd_size = 0;

	put16(img, BP_XLOADFLAGS, 0);
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "64-bit"));
	put16(img, BP_XLOADFLAGS, XLF_KERNEL_64);

	put16(img, BP_VERSION, 0x20a);
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "too old"));
	put16(img, BP_VERSION, 0x20f);

	in.kernel_size = 5 * 512; /* no protected-mode code after the setup */
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	in.kernel_size = 0x100;
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "not a bzImage"));
	in.kernel_size = size;

	put32(img, BP_INIT_SIZE, 200 * MiB); /* more than the guest has */
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "more --memory"));
	free(img);
}

/* A synthetic ELF64 vmlinux: one PT_LOAD at 16 MiB (filesz < memsz) and a PT_NOTE with the PVH entry. */
struct elf_img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	uint32_t note[3];
	char name[4];
	uint64_t entry;
	uint8_t code[64];
} __attribute__((packed));

static void make_elf(struct elf_img *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_phoff = offsetof(struct elf_img, ph);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 2;
	e->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = offsetof(struct elf_img, code), .p_paddr = 16 * MiB,
				 .p_filesz = 64, .p_memsz = 4096 };
	e->ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = offsetof(struct elf_img, note), .p_filesz = 24 };
	e->note[0] = 4, e->note[1] = 8, e->note[2] = XEN_ELFNOTE_PHYS32_ENTRY;
	memcpy(e->name, "Xen", 4);
	e->entry = 16 * MiB + 0x10;
	memset(e->code, 0xcc, sizeof(e->code));
}

static void pvh_fills_start_info(void **state)
{
	struct fixture *f = *state;
	struct elf_img e;
	make_elf(&e);
	memset(gmem_ptr(&f->mem, 16 * MiB, 4096), 0xee, 4096); /* the bss part must be zeroed */
	uint8_t initrd[5000];
	memset(initrd, 0x33, sizeof(initrd));
	struct boot_params_in in = { &e, sizeof(e), initrd, sizeof(initrd), "console=hvc0", 0xe0000 };
	struct boot_entry out;
	vt_err err;
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), 0);
	assert_int_equal(out.mode, BOOT_MODE_PVH);
	assert_int_equal(out.entry, 16 * MiB + 0x10);
	assert_int_equal(out.kernel_end, 16 * MiB + 4096);
	const uint8_t *seg = gmem_ptr(&f->mem, 16 * MiB, 4096);
	assert_int_equal(seg[0], 0xcc);
	assert_int_equal(seg[63], 0xcc);
	assert_int_equal(seg[64], 0);
	assert_int_equal(seg[4095], 0);

	struct hvm_start_info si;
	assert_int_equal(gmem_read(&f->mem, out.arg, &si, sizeof(si)), 0);
	assert_int_equal(si.magic, HVM_START_MAGIC);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.rsdp_paddr, 0xe0000);
	assert_string_equal((char *)gmem_ptr(&f->mem, si.cmdline_paddr, 1), "console=hvc0");
	assert_int_equal(si.nr_modules, 1);
	struct hvm_modlist_entry mod;
	assert_int_equal(gmem_read(&f->mem, si.modlist_paddr, &mod, sizeof(mod)), 0);
	assert_int_equal(mod.size, sizeof(initrd));
	assert_true(mod.paddr >= 16 * MiB + 4096);
	assert_memory_equal(gmem_ptr(&f->mem, mod.paddr, sizeof(initrd)), initrd, sizeof(initrd));
	assert_int_equal(si.memmap_entries, 3);
	struct hvm_memmap_table_entry mm[3];
	assert_int_equal(gmem_read(&f->mem, si.memmap_paddr, mm, sizeof(mm)), 0);
	assert_int_equal(mm[2].addr, 0x100000);
	assert_int_equal(mm[2].addr + mm[2].size, RAM);
	assert_int_equal(mm[2].type, E820_RAM);
}

static void pvh_rejects_bad_elf(void **state)
{
	struct fixture *f = *state;
	struct elf_img e;
	struct boot_entry out;
	vt_err err;
	struct boot_params_in in = { &e, sizeof(e), NULL, 0, "", 0 };

	make_elf(&e);
	e.note[2] = 17; /* some other Xen note */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "no PVH entry note"));

	make_elf(&e);
	e.note[1] = 0xfffffff0; /* descriptor length running off the note */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);

	make_elf(&e);
	e.ph[0].p_offset = sizeof(e) - 8; /* segment data past the end of the file */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "outside the file"));

	make_elf(&e);
	e.ph[0].p_paddr = RAM - 100; /* does not fit in guest RAM */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));

	make_elf(&e);
	e.ph[0].p_paddr = UINT64_MAX - 10; /* address arithmetic must not wrap */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);

	make_elf(&e);
	e.eh.e_phnum = 1000; /* program headers past the end */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);

	make_elf(&e);
	e.eh.e_machine = EM_ARM;
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "x86"));

	in.kernel_size = 10; /* truncated header */
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
}

static void format_detection(void **state)
{
	(void)state;
	size_t size;
	uint8_t *img = make_bzimage(16, &size);
	struct elf_img e;
	make_elf(&e);
	assert_int_equal(kernel_detect(img, size), KERNEL_BZIMAGE);
	assert_int_equal(kernel_detect(&e, sizeof(e)), KERNEL_ELF);
	assert_int_equal(kernel_detect("#!/bin/sh\necho hi\n", 18), KERNEL_UNKNOWN);
	assert_int_equal(kernel_detect("", 0), KERNEL_UNKNOWN);
	free(img);
}

static void e820_with_high_memory(void **state)
{
	(void)state;
	struct guest_mem m;
	/* Describe 5 GiB without backing it: e820_build only reads the layout. */
	gmem_init_fixed(&m, (void *)0x1000, 5 * GiB);
	struct e820_entry e[E820_MAX_BUILT];
	unsigned n = e820_build(&m, e);
	assert_int_equal(n, 4);
	assert_int_equal(e[2].addr + e[2].size, LAYOUT_MMIO_HOLE);
	assert_int_equal(e[3].addr, 4 * GiB);
	assert_int_equal(e[3].size, 2 * GiB);
	uint64_t ram = 0;
	for (unsigned i = 0; i < n; i++)
		if (e[i].type == E820_RAM)
			ram += e[i].size;
	assert_int_equal(ram, 5 * GiB - (LAYOUT_HIMEM_START - LAYOUT_EBDA_START));
}

/* The header's sizes (syssize, payload) must lie inside the file: a truncated image is refused before
 * loading, naming what is missing, instead of triple-faulting in the guest. */
static void bzimage_truncated_is_refused(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *img = make_bzimage(4096, &size);
	struct boot_entry out;
	vt_err err;
	struct boot_params_in in = { img, size, NULL, 0, "x", 0 };
	put32(img, BP_SYSSIZE, 4096 / 16);
	put32(img, BP_PAYLOAD_OFFSET, 100);
	put32(img, BP_PAYLOAD_LENGTH, 3000);
	assert_int_equal(boot_check(img, size, 1, &err), 0);
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), 0);

	in.kernel_size = size - 16; /* one paragraph of protected-mode code missing */
	assert_int_equal(boot_check(img, in.kernel_size, 1, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_int_equal(bzimage_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));

	put32(img, BP_SYSSIZE, 0);
	put32(img, BP_PAYLOAD_LENGTH, 4096); /* the payload runs past the end */
	in.kernel_size = size;
	assert_int_equal(boot_check(img, size, 1, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	put32(img, BP_PAYLOAD_OFFSET, UINT32_MAX); /* no wrap-around in the sum */
	assert_int_equal(boot_check(img, size, 1, &err), -1);
	free(img);
}

/* Linux's COMMAND_LINE_SIZE (2048 with the NUL) on both paths: PVH has no header field, so 2047 is the
 * limit there (a longer one made the guest hang); a bzImage's own cmdline_size is checked too. */
static void cmdline_limit_on_both_paths(void **state)
{
	struct fixture *f = *state;
	struct elf_img e;
	make_elf(&e);
	static char line[BOOT_CMDLINE_MAX + 2];
	memset(line, 'a', BOOT_CMDLINE_MAX + 1); /* 2048 bytes */
	struct boot_params_in in = { &e, sizeof(e), NULL, 0, line, 0 };
	struct boot_entry out;
	vt_err err;
	assert_int_equal(boot_check(&e, sizeof(e), strlen(line), &err), -1);
	assert_non_null(strstr(err.msg, "at most 2047"));
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), -1);
	assert_non_null(strstr(err.msg, "COMMAND_LINE_SIZE 2048"));
	line[BOOT_CMDLINE_MAX] = 0; /* 2047 bytes: fine */
	assert_int_equal(boot_check(&e, sizeof(e), strlen(line), &err), 0);
	assert_int_equal(pvh_load(&f->mem, &in, &out, &err), 0);

	size_t size;
	uint8_t *img = make_bzimage(4096, &size);
	put32(img, BP_CMDLINE_SIZE, 64);
	assert_int_equal(boot_check(img, size, 64, &err), 0);
	assert_int_equal(boot_check(img, size, 65, &err), -1);
	assert_non_null(strstr(err.msg, "accepts at most 64"));
	free(img);
}

/* boot_check sees what pvh_load would refuse, without guest memory. */
static void pvh_check_without_memory(void **state)
{
	(void)state;
	struct elf_img e;
	vt_err err;
	make_elf(&e);
	assert_int_equal(boot_check(&e, sizeof(e), 0, &err), 0);
	assert_int_equal(boot_check(&e, sizeof(e) - 8, 0, &err), -1); /* the segment's last bytes cut off */
	assert_non_null(strstr(err.msg, "outside the file"));
	make_elf(&e);
	e.note[2] = 17;
	assert_int_equal(boot_check(&e, sizeof(e), 0, &err), -1);
	assert_non_null(strstr(err.msg, "no PVH entry note"));
	assert_int_equal(boot_check("#!/bin/sh\n", 10, 0, &err), -1);
	assert_non_null(strstr(err.msg, "neither a bzImage"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(bzimage_fills_boot_params, setup, teardown),
		cmocka_unit_test_setup_teardown(bzimage_rejects_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(pvh_fills_start_info, setup, teardown),
		cmocka_unit_test_setup_teardown(pvh_rejects_bad_elf, setup, teardown),
		cmocka_unit_test_setup_teardown(bzimage_truncated_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(cmdline_limit_on_both_paths, setup, teardown),
		cmocka_unit_test(pvh_check_without_memory),
		cmocka_unit_test(format_detection),
		cmocka_unit_test(e820_with_high_memory),
	};
	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
