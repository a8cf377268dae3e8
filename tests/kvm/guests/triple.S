/* Faults with no IDT: #UD -> #DF -> triple fault. The VMM must report a crash (exit status 4). */
#include "pvh_note.h"
PVH_NOTE
	.code32
	.text
	.globl _start
_start:
	mov $0x7000, %esp
	PUTS(msg)
	lidt idt_empty
	ud2
PUTS_FUNC
msg:	.asciz "virtus-test: about to triple-fault\n"
	.balign 8
idt_empty: .word 0
	.long 0
