/* Exercises port I/O and MMIO dispatch against the test devices the KVM tests register:
 *   outb/outw/outl to TEST_PORT, rep outsb of a string to TEST_PORT+4, inl from TEST_PORT+8 echoed back
 *   to TEST_PORT+12; MMIO: 32-bit write to TEST_MMIO, 32-bit read of TEST_MMIO+8 echoed to TEST_MMIO+16,
 *   64-bit write to TEST_MMIO+24 (two movs are fine too). Then power off. */
#include "pvh_note.h"
GUEST_ENTRY
	mov $TEST_PORT, %dx
	mov $0x5a, %al
	outb %al, %dx
	mov $0xbeef, %ax
	outw %ax, %dx
	mov $0x12345678, %eax
	outl %eax, %dx
	mov $TEST_PORT + 4, %dx
	mov $str, %esi
	mov $5, %ecx
	cld
	rep outsb
	mov $TEST_PORT + 8, %dx
	inl %dx, %eax
	mov $TEST_PORT + 12, %dx
	outl %eax, %dx
	movl $0xa5a5f00d, TEST_MMIO
	mov TEST_MMIO + 8, %eax
	mov %eax, TEST_MMIO + 16
	POWEROFF
halt:	hlt
	jmp halt
str:	.ascii "virt!"
