/* Faults with no IDT: #UD -> #DF -> triple fault. The VMM must report a crash (exit status 4). */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(msg)
	lidt idt_empty
	ud2
PUTS_FUNC
msg:	.asciz "virtus-test: about to triple-fault\n"
	.balign 8
idt_empty: .word 0
	.long 0
