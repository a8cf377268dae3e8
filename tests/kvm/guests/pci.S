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
/* eax = the dword at config offset `off` of 00:01.0 (clobbers edx) */
#define CONF1_READ(off) mov $CONF1_ADDR, %dx; mov $SLOT1 + off, %eax; outl %eax, %dx; mov $CONF1_DATA, %dx; inl %dx, %eax
/* the command register of 00:01.0 = bits (clobbers eax, edx) */
#define COMMAND(bits) mov $CONF1_ADDR, %dx; mov $SLOT1 + 0x04, %eax; outl %eax, %dx; mov $CONF1_DATA, %dx; \
	mov $bits, %ax; outw %ax, %dx
/* eax to TEST_PORT (clobbers edx) */
#define REPORT mov $TEST_PORT, %dx; outl %eax, %dx
/* eax = TSC ticks since ebp was set by START_CLOCK (low halves: a delta of well under 2^32) */
#define START_CLOCK rdtsc; mov %eax, %ebp
#define STOP_CLOCK rdtsc; sub %ebp, %eax
GUEST_ENTRY
	CONF1_READ(0)
	REPORT
	CONF1_READ(0x10)
	mov %eax, %ebx
	REPORT
	COMMAND(2)
	lea 0x3000(%ebx), %edi
	START_CLOCK
	mov $KICKS, %ecx
1:	movw $0, (%edi)
	loop 1b
	STOP_CLOCK
	REPORT
	CONF1_READ(0x18)
	mov %eax, %esi
	REPORT
	COMMAND(3)
	and $~3, %esi
	START_CLOCK
	mov $KICKS, %ecx
	mov %si, %dx
	xor %eax, %eax
2:	outw %ax, %dx
	loop 2b
	STOP_CLOCK
	REPORT
	movzwl 0x12(%ebx), %eax
	REPORT
	POWEROFF
halt:	hlt
	jmp halt
