/* SMP: the bootstrap processor starts every application processor with INIT-SIPI-SIPI through the local
 * APIC; each AP runs real-mode code at 0x8000 that counts itself in and halts. The BSP waits for the count
 * given as the first character of the command line ("2" for two vCPUs), prints how many CPUs are up, and
 * powers off. A wrong count times out and prints "smp: timeout". */
#include "pvh_note.h"
#define LAPIC_ICR_LO 0xfee00300
#define COUNTER 0x7f00
PVH_NOTE

	.section .tramp, "ax"
	.code16
ap_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lock incw COUNTER
1:	hlt
	jmp 1b

	.code32
	.text
	.globl _start
_start:
	mov $0x7000, %esp
	movl $0, COUNTER
	mov 24(%ebx), %esi            /* hvm_start_info.cmdline_paddr */
	movzbl (%esi), %edi
	sub $'1', %edi                /* APs expected = N - 1 */
	movl $0x000c4500, LAPIC_ICR_LO   /* INIT, all excluding self */
	movl $0x000c4608, LAPIC_ICR_LO   /* SIPI, vector 0x08 -> 0x8000 */
	movl $0x000c4608, LAPIC_ICR_LO
	mov $3000000, %ecx
wait:	cmpw COUNTER, %di
	je up
	pause
	loop wait
	PUTS(timeout)
	jmp off
up:	mov COUNTER, %eax
	add $'1', %al
	mov %al, count
	PUTS(msg)
off:	POWEROFF
halt:	hlt
	jmp halt
PUTS_FUNC
	.data
msg:	.ascii "smp: "
count:	.ascii "?"
	.asciz " cpus up\n"
timeout: .asciz "smp: timeout\n"
