/* PCI with --rng: reads 00:01.0's vendor/device and BAR 0 through conf1 and reports them to TEST_PORT,
 * turns on memory decode, kicks queue 0 1000 times through BAR 0's notify area and reports the TSC ticks
 * that took, reads BAR 2 (the I/O BAR) and reports it, turns on I/O decode, kicks queue 0 1000 times through
 * the port and reports those ticks (ioeventfds: no exits to userspace either way), reads num_queues from the
 * common configuration (one MMIO exit) and reports it, then powers off. */
#include "pvh_note.h"
#define CONF1_ADDR 0xcf8
#define CONF1_DATA 0xcfc
#define SLOT1      0x80000800
#define KICKS      1000
GUEST_ENTRY
	mov $CONF1_ADDR, %dx
	mov $SLOT1, %eax
	outl %eax, %dx
	mov $CONF1_DATA, %dx
	inl %dx, %eax
	mov $TEST_PORT, %dx
	outl %eax, %dx
	mov $CONF1_ADDR, %dx
	mov $SLOT1 + 0x10, %eax
	outl %eax, %dx
	mov $CONF1_DATA, %dx
	inl %dx, %eax
	mov %eax, %ebx
	mov $TEST_PORT, %dx
	outl %eax, %dx
	mov $CONF1_ADDR, %dx
	mov $SLOT1 + 0x04, %eax
	outl %eax, %dx
	mov $CONF1_DATA, %dx
	mov $2, %ax
	outw %ax, %dx
	lea 0x3000(%ebx), %edi
	rdtsc
	mov %eax, %ebp
	mov $KICKS, %ecx
1:	movw $0, (%edi)
	loop 1b
	rdtsc
	sub %ebp, %eax
	mov $TEST_PORT, %dx
	outl %eax, %dx
	mov $CONF1_ADDR, %dx
	mov $SLOT1 + 0x18, %eax
	outl %eax, %dx
	mov $CONF1_DATA, %dx
	inl %dx, %eax
	mov %eax, %esi
	mov $TEST_PORT, %dx
	outl %eax, %dx
	mov $CONF1_ADDR, %dx
	mov $SLOT1 + 0x04, %eax
	outl %eax, %dx
	mov $CONF1_DATA, %dx
	mov $3, %ax
	outw %ax, %dx
	and $~3, %esi
	rdtsc
	mov %eax, %ebp
	mov $KICKS, %ecx
	mov %si, %dx
	xor %eax, %eax
2:	outw %ax, %dx
	loop 2b
	rdtsc
	sub %ebp, %eax
	mov $TEST_PORT, %dx
	outl %eax, %dx
	movzwl 0x12(%ebx), %eax
	mov $TEST_PORT, %dx
	outl %eax, %dx
	POWEROFF
halt:	hlt
	jmp halt
