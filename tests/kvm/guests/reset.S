/* Prints a line and pulses the i8042 reset line: the VMM's reboot policy applies (exit status 3). */
#include "pvh_note.h"
PVH_NOTE
	.code32
	.text
	.globl _start
_start:
	mov $0x7000, %esp
	PUTS(msg)
	mov $0xfe, %al
	outb %al, $0x64
halt:	hlt
	jmp halt
PUTS_FUNC
msg:	.asciz "virtus-test: resetting\n"
