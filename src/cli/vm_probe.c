/* `virtus vm probe`: can this host's KVM run guest kernel code natively? Decided by behaviour, not by
 * CPUID flags: a tiny guest executes an SSE instruction in kernel mode. Real VT-x/AMD-V runs it; a PVM host
 * emulates kernel mode and fails on it (KVM_EXIT_INTERNAL_ERROR), which is also what stops Linux there. */
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/util.h"
#include "vmm/boot/pvh.h"
#include "vmm/layout.h"

static const uint8_t probe_code[] = {
	0x0f, 0x20, 0xe0,                   /* mov eax, cr4 */
	0x0d, 0x00, 0x06, 0x00, 0x00,       /* or eax, OSFXSR|OSXMMEXCPT */
	0x0f, 0x22, 0xe0,                   /* mov cr4, eax */
	0x66, 0x0f, 0xef, 0xc0,             /* pxor xmm0, xmm0 */
	0x66, 0xba, 0x00, 0x06,             /* mov dx, PORT_ACPI_SLEEP_CTL */
	0xb0, 0x34,                         /* mov al, SLP_EN | S5 << 2 */
	0xee,                               /* out dx, al: power off */
	0xf4, 0xeb, 0xfd,                   /* 1: hlt; jmp 1b */
};

struct probe_image {
	Elf32_Ehdr eh;
	Elf32_Phdr ph[2];
	uint32_t note_hdr[3];
	char note_name[4];
	uint32_t note_entry;
	uint8_t code[sizeof(probe_code)];
} __attribute__((packed));

#define PROBE_LOAD LAYOUT_HIMEM_START

/* A minimal PVH ELF so the probe goes through the same loader as a real kernel. */
static void build_probe_image(struct probe_image *img)
{
	memset(img, 0, sizeof(*img));
	memcpy(img->eh.e_ident, ELFMAG, SELFMAG);
	img->eh.e_ident[EI_CLASS] = ELFCLASS32;
	img->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh.e_ident[EI_VERSION] = EV_CURRENT;
	img->eh.e_type = ET_EXEC;
	img->eh.e_machine = EM_386;
	img->eh.e_version = EV_CURRENT;
	img->eh.e_phoff = offsetof(struct probe_image, ph);
	img->eh.e_ehsize = sizeof(Elf32_Ehdr);
	img->eh.e_phentsize = sizeof(Elf32_Phdr);
	img->eh.e_phnum = 2;
	img->ph[0] = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = 0, .p_paddr = PROBE_LOAD, .p_vaddr = PROBE_LOAD,
				   .p_filesz = sizeof(*img), .p_memsz = sizeof(*img), .p_flags = PF_R | PF_X };
	img->ph[1] = (Elf32_Phdr){ .p_type = PT_NOTE, .p_offset = offsetof(struct probe_image, note_hdr), .p_filesz = 20 };
	img->note_hdr[0] = 4, img->note_hdr[1] = 4, img->note_hdr[2] = XEN_ELFNOTE_PHYS32_ENTRY;
	memcpy(img->note_name, "Xen", 4);
	img->note_entry = (uint32_t)(PROBE_LOAD + offsetof(struct probe_image, code));
	memcpy(img->code, probe_code, sizeof(probe_code));
}

const char vm_probe_usage[] =
	"usage: virtus vm probe [-h|--help]\n"
	"\n"
	"Runs a tiny guest that executes an SSE instruction in kernel mode, and says whether this host's KVM\n"
	"runs guest kernel code natively (Linux guests can boot) or not (nested PVM: use the nested test bed).\n"
	"Exit status: 0 natively, 1 not natively, 2 no usable /dev/kvm (or a usage error).\n";

int cmd_vm_probe(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(vm_probe_usage, stdout);
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "virtus vm probe: unexpected argument '%s'\n%s", argv[1], vm_probe_usage);
		return EXIT_USAGE;
	}
	struct probe_image img;
	build_probe_image(&img);
	struct vm_config cfg = { .kernel_data = &img, .kernel_size = sizeof(img), .cmdline = "",
				 .ncpus = 1, .mem_size = VM_MIN_MEMORY, .console_out_fd = -1 };
	struct vm *vm;
	vt_err err;
	if (vm_create(&cfg, &vm, &err) < 0) {
		printf("no usable KVM: %s\n", err.msg);
		return 2;
	}
	enum vm_exit why = VM_EXIT_ERROR;
	if (vm_start(vm, &err) == 0)
		why = vm_wait(vm);
	vm_destroy(vm);
	if (why == VM_EXIT_POWEROFF) {
		printf("KVM runs guest kernel code natively: Linux guests can boot here\n");
		return 0;
	}
	printf("KVM cannot run guest kernel code natively%s: Linux guests cannot boot here; use the nested test bed\n",
	       host_kvm_is_pvm() ? " (nested PVM emulates guest kernel mode)" : "");
	return 1;
}
