/* Prints a line on COM1 and powers off through the ACPI sleep register: exit status 0. */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(msg)
	POWEROFF
halt:	hlt
	jmp halt
PUTS_FUNC
msg:	.asciz "virtus-test: hello from the guest\n"
