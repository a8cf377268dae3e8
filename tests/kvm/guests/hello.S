/* Prints a line on COM1 and powers off through the ACPI sleep register: exit status 0. */
#include "pvh_note.h"
PVH_NOTE
	.code32
	.text
	.globl _start
_start:
	mov $0x7000, %esp
	PUTS(msg)
	POWEROFF
halt:	hlt
	jmp halt
PUTS_FUNC
msg:	.asciz "virtus-test: hello from the guest\n"
