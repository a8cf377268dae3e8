/* Prints a line and pulses the i8042 reset line: the VMM's reboot policy applies (exit status 3). */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(msg)
	mov $0xfe, %al
	outb %al, $0x64
halt:	hlt
	jmp halt
PUTS_FUNC
msg:	.asciz "virtus-test: resetting\n"
