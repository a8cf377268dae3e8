/* Echoes COM1 input back (polling LSR) until it reads 'q', then powers off. Drives console-input tests. */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(prompt)
poll:	mov $COM1 + 5, %dx
	inb %dx, %al
	test $1, %al
	jz poll
	mov $COM1, %dx
	inb %dx, %al
	outb %al, %dx
	cmp $'q', %al
	jne poll
	POWEROFF
halt:	hlt
	jmp halt
PUTS_FUNC
prompt:	.asciz "echo> "
