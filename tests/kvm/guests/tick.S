/* Prints a '.' on COM1 after every 64 x 65536 turns of a busy loop, forever, and echoes each byte it
 * receives as "<c>" (the receive register is read between rounds: an exit each, so not every turn). The
 * host sees whether the vCPU runs (pause, resume) by whether the console grows, and whether input arrives
 * (an attached console). It prints "tick: start" once, at boot: a restored snapshot goes on without it. */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(banner)
tick:	mov $64, %edi
round:	mov $0x10000, %ecx
spin:	dec %ecx
	jnz spin
	mov $COM1 + 5, %dx
	inb %dx, %al
	test $1, %al
	jz next
	mov $COM1, %dx
	inb %dx, %al
	mov %al, %bl
	mov $'<', %al
	outb %al, %dx
	mov %bl, %al
	outb %al, %dx
	mov $'>', %al
	outb %al, %dx
next:	dec %edi
	jnz round
	mov $COM1, %dx
	mov $'.', %al
	outb %al, %dx
	jmp tick
PUTS_FUNC
banner:	.asciz "tick: start\n"
