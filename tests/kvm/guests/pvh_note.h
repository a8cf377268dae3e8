/* Shared pieces of the tiny test guests (GNU as, AT&T syntax). */
#define COM1 0x3f8
#define ACPI_SLEEP_CTL 0x600
#define ACPI_S5_SLP_EN 0x34
#define TEST_PORT 0x510       /* the KVM tests register a device here */
#define TEST_MMIO 0xd0000000  /* and here, in the MMIO hole */

/* PVH entry note: XEN_ELFNOTE_PHYS32_ENTRY (18) pointing at _start. */
#define PVH_NOTE \
	.pushsection .note.Xen, "a"; .balign 4; .long 4, 4, 18; .asciz "Xen"; .long _start; .popsection

/* Every guest starts here: 32-bit protected mode, paging off (PVH), a stack below the boot structures. */
#define GUEST_ENTRY PVH_NOTE; .code32; .text; .globl _start; _start: mov $0x7000, %esp

/* Print the NUL-terminated string at label via COM1 (clobbers eax, edx, esi). */
#define PUTS(label) mov $label, %esi; call puts

#define POWEROFF mov $ACPI_SLEEP_CTL, %dx; mov $ACPI_S5_SLP_EN, %al; outb %al, %dx

#define PUTS_FUNC \
puts: mov $COM1, %dx; \
1:    lodsb; test %al, %al; jz 2f; outb %al, %dx; jmp 1b; \
2:    ret
